//! SQL expressions on batches, planned with DataFusion against a stream's schema.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{FieldRef, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::SelectItem;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::contract::error::{Result, WeirError};

/// Identifiers keep their case (`dateTime` is `dateTime`), as in Flink SQL; `VARCHAR` is Arrow
/// `Utf8`, the type every source produces, so streams from SQL and from sources union.
static CONTEXT: LazyLock<SessionContext> = LazyLock::new(|| {
    let config = datafusion::prelude::SessionConfig::new()
        .set_bool("datafusion.sql_parser.enable_ident_normalization", false)
        .set_bool("datafusion.sql_parser.map_string_types_to_utf8view", false);
    SessionContext::new_with_config(config)
});

/// The session expressions are planned with (case-preserving identifiers, `VARCHAR` as Utf8).
pub fn planning_context() -> &'static SessionContext {
    &CONTEXT
}

/// Plans one SQL expression over `schema`: the physical expression and its output field.
pub fn plan_expr(sql: &str, schema: &SchemaRef) -> Result<(Arc<dyn PhysicalExpr>, FieldRef)> {
    let df_schema =
        DFSchema::try_from(schema.as_ref().clone()).map_err(|e| WeirError::plan(format!("expression '{sql}': {e}")))?;
    let bad = |e: datafusion::error::DataFusionError| WeirError::plan(format!("expression '{sql}': {e}"));
    let expr = CONTEXT.parse_sql_expr(sql, &df_schema).map_err(bad)?;
    let physical = CONTEXT.create_physical_expr(expr, &df_schema).map_err(bad)?;
    let physical = super::expr_kernels::specialize(physical, schema);
    let field = physical.return_field(schema.as_ref()).map_err(bad)?;
    Ok((physical, field))
}

/// Plans an expression the SQL planner made over `schema` (columns are matched by name; their
/// table qualifiers are dropped).
pub fn plan_logical(expr: &Expr, schema: &SchemaRef) -> Result<(Arc<dyn PhysicalExpr>, FieldRef)> {
    let bad = |e: datafusion::error::DataFusionError| WeirError::plan(format!("expression '{expr}': {e}"));
    let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(bad)?;
    let expr = unqualified(expr.clone());
    let physical = CONTEXT.create_physical_expr(expr, &df_schema).map_err(bad)?;
    let physical = super::expr_kernels::specialize(physical, schema);
    let field = physical.return_field(schema.as_ref()).map_err(bad)?;
    Ok((physical, field))
}

/// `expr` with the table qualifiers of its columns dropped.
pub fn unqualified(expr: Expr) -> Expr {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    expr.transform(|e| {
        Ok(match e {
            Expr::Column(c) if c.relation.is_some() => {
                Transformed::yes(Expr::Column(datafusion::common::Column::new_unqualified(c.name)))
            }
            other => Transformed::no(other),
        })
    })
    .map(|t| t.data)
    .expect("renaming columns cannot fail")
}

/// One item of a select list: `*`, `expr` or `expr AS name`.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItemSpec {
    /// Every input column.
    Wildcard,
    /// An expression the SQL planner made, and its output name.
    Planned {
        /// The expression.
        expr: Expr,
        /// Output column name.
        name: String,
    },
    /// An expression and its output name.
    Expr {
        /// SQL text of the expression.
        sql: String,
        /// Output column name.
        name: String,
    },
}

/// Parses one select item with SQL's syntax.
pub fn parse_select_item(text: &str) -> Result<SelectItemSpec> {
    let bad = |e: &dyn std::fmt::Display| WeirError::plan(format!("select item '{text}': {e}"));
    let mut parser = Parser::new(&GenericDialect {})
        .try_with_sql(text)
        .map_err(|e| bad(&e))?;
    let item = parser.parse_select_item().map_err(|e| bad(&e))?;
    let rest = parser.peek_token();
    if rest.token != Token::EOF {
        return Err(bad(&format!("unexpected '{}' after the expression", rest.token)));
    }
    Ok(match item {
        SelectItem::UnnamedExpr(e) => {
            let sql = e.to_string();
            let name = match &e {
                datafusion::sql::sqlparser::ast::Expr::Identifier(id) => id.value.clone(),
                _ => sql.clone(),
            };
            SelectItemSpec::Expr { sql, name }
        }
        SelectItem::ExprWithAlias { expr, alias } => SelectItemSpec::Expr {
            sql: expr.to_string(),
            name: alias.value,
        },
        SelectItem::Wildcard(_) => SelectItemSpec::Wildcard,
        other => return Err(bad(&format!("unsupported select item {other}"))),
    })
}
