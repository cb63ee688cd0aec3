//! The tables and views of a SQL job, and the DataFusion session that plans its queries:
//! tables are registered as providers that only describe their schema (Weir's connectors read
//! them), views as their logical plans, and Flink's functions beside DataFusion's.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, not_impl_err};
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast;

use super::ddl::{ColumnDef, TableDef};
use super::functions;
use super::script::{LookupRef, WindowTvf};
use super::tokens::located;
use crate::contract::error::{Result, WeirError};

/// A table declared with `CREATE TABLE`, with its columns planned.
#[derive(Debug, Clone)]
pub struct Table {
    /// The statement.
    pub def: TableDef,
    /// The columns the connector reads, in declared order.
    pub physical: SchemaRef,
    /// Computed columns: name and expression over the physical columns.
    pub computed: Vec<(String, Expr)>,
    /// All columns in declared order (what queries see).
    pub schema: SchemaRef,
    /// `WATERMARK FOR column AS column - INTERVAL …`: the column and the delay, ms.
    pub watermark: Option<(String, i64)>,
}

/// Describes a table to the planner; reading it is the lowering's work.
#[derive(Debug)]
struct Described {
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for Described {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> TableType {
        TableType::Base
    }
    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        not_impl_err!("Weir's connectors read SQL tables")
    }
}

/// The catalog and planner of one SQL job.
pub struct Catalog {
    ctx: SessionContext,
    tables: HashMap<String, Arc<Table>>,
    views: HashMap<String, ()>,
    lookups: HashMap<String, LookupRef>,
    streams: HashMap<String, crate::api::DataStream>,
    origin: String,
}

impl Catalog {
    /// An empty catalog; `origin` names the script in errors.
    pub fn new(origin: &str) -> Self {
        let config = SessionConfig::new()
            .set_bool("datafusion.sql_parser.enable_ident_normalization", false)
            .set_bool("datafusion.sql_parser.map_string_types_to_utf8view", false)
            .set_bool("datafusion.sql_parser.parse_float_as_decimal", true)
            .set_bool("datafusion.sql_parser.collect_spans", true)
            .set_bool("datafusion.optimizer.enable_distinct_aggregation_soft_limit", false);
        let ctx = SessionContext::new_with_config(config);
        for f in functions::scalar_functions() {
            ctx.register_udf(f);
        }
        for f in functions::aggregate_functions() {
            ctx.register_udaf(f);
        }
        Catalog {
            ctx,
            tables: HashMap::new(),
            views: HashMap::new(),
            lookups: HashMap::new(),
            streams: HashMap::new(),
            origin: origin.to_string(),
        }
    }

    /// The name of the script, for errors.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The session (for EXPLAIN and expression planning).
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// The table `name`, if declared.
    pub fn table(&self, name: &str) -> Option<&Arc<Table>> {
        self.tables.get(name)
    }

    fn known(&self, name: &str) -> bool {
        self.tables.contains_key(name) || self.views.contains_key(name) || self.streams.contains_key(name)
    }

    /// The stream a table registered from the DataStream API reads, if `name` is one.
    pub fn stream(&self, name: &str) -> Option<&crate::api::DataStream> {
        self.streams.get(name)
    }

    /// Registers `stream` (rows of `schema`) as the table `name` (Flink's
    /// `createTemporaryView(name, dataStream)`).
    pub fn add_stream(&mut self, name: &str, schema: SchemaRef, stream: crate::api::DataStream) -> Result<()> {
        if self.known(name) {
            return Err(WeirError::plan(format!("table or view '{name}' already exists")));
        }
        self.ctx
            .register_table(name, Arc::new(Described { schema }))
            .map_err(|e| WeirError::plan(e.to_string()))?;
        self.streams.insert(name.to_string(), stream);
        Ok(())
    }

    /// Declares a table.
    pub fn add_table(&mut self, def: TableDef) -> Result<()> {
        if self.known(&def.name) {
            return Err(located(
                &self.origin,
                def.at,
                format!("table or view '{}' already exists", def.name),
            ));
        }
        let mut physical = Vec::new();
        for c in &def.columns {
            if let ColumnDef::Physical {
                name,
                data_type,
                nullable,
            } = c
            {
                physical.push(Field::new(name, data_type.clone(), *nullable));
            }
        }
        let physical = Arc::new(Schema::new(physical));
        let df_schema = DFSchema::try_from(physical.as_ref().clone()).map_err(|e| self.error_at(&def, e))?;
        let mut computed = Vec::new();
        let mut fields = Vec::new();
        for c in &def.columns {
            match c {
                ColumnDef::Physical { name, .. } => {
                    fields.push(physical.field_with_name(name).expect("declared").clone());
                }
                ColumnDef::Computed { name, expr } => {
                    let planned = self
                        .ctx
                        .parse_sql_expr(expr, &df_schema)
                        .map_err(|e| self.error_at(&def, format!("computed column '{name}' AS {expr}: {e}")))?;
                    let physical_expr = self
                        .ctx
                        .create_physical_expr(planned.clone(), &df_schema)
                        .map_err(|e| self.error_at(&def, format!("computed column '{name}' AS {expr}: {e}")))?;
                    let field = physical_expr
                        .return_field(physical.as_ref())
                        .map_err(|e| self.error_at(&def, format!("computed column '{name}': {e}")))?;
                    fields.push(field.as_ref().clone().with_name(name.clone()));
                    computed.push((name.clone(), planned));
                }
            }
        }
        let schema = Arc::new(Schema::new(fields));
        let watermark = match &def.watermark {
            None => None,
            Some(w) => {
                let delay = watermark_delay(&w.column, &w.expr).ok_or_else(|| {
                    located(
                        &self.origin,
                        w.at,
                        format!(
                            "WATERMARK FOR {} AS {}: expected '{0}' or '{0} - INTERVAL ''n'' UNIT'",
                            w.column, w.expr
                        ),
                    )
                })?;
                let field = schema.field_with_name(&w.column).expect("checked by the parser");
                if !matches!(
                    field.data_type(),
                    arrow::datatypes::DataType::Timestamp(..) | arrow::datatypes::DataType::Int64
                ) {
                    return Err(located(
                        &self.origin,
                        w.at,
                        format!(
                            "WATERMARK FOR {}: the column is {}, event time needs TIMESTAMP(3) or TIMESTAMP_LTZ(3)",
                            w.column,
                            field.data_type()
                        ),
                    ));
                }
                Some((w.column.clone(), delay))
            }
        };
        let table = Table {
            def,
            physical,
            computed,
            schema: schema.clone(),
            watermark,
        };
        self.ctx
            .register_table(table.def.name.as_str(), Arc::new(Described { schema }))
            .map_err(|e| WeirError::plan(e.to_string()))?;
        self.tables.insert(table.def.name.clone(), Arc::new(table));
        Ok(())
    }

    fn error_at(&self, def: &TableDef, e: impl std::fmt::Display) -> WeirError {
        located(&self.origin, def.at, format!("table '{}': {e}", def.name))
    }

    /// Declares a view.
    pub fn add_view(
        &mut self,
        name: &str,
        query: ast::Query,
        at: datafusion::sql::sqlparser::tokenizer::Location,
    ) -> Result<()> {
        if self.known(name) {
            return Err(located(
                &self.origin,
                at,
                format!("table or view '{name}' already exists"),
            ));
        }
        let definition = query.to_string();
        let plan = self.plan(ast::Statement::Query(Box::new(query)), at)?;
        self.ctx
            .register_table(name, Arc::new(ViewTable::new(plan, Some(definition))))
            .map_err(|e| WeirError::plan(e.to_string()))?;
        self.views.insert(name.to_string(), ());
        Ok(())
    }

    /// Defines the placeholder tables of window functions whose input is declared by now.
    pub fn add_windows(&mut self, windows: &[WindowTvf]) -> Result<()> {
        for w in windows {
            if self.known(&w.name) || !self.known(&w.table) {
                continue;
            }
            let code = functions::kind_code(w.kind);
            let args = format!("`{}`, {code}, {}, {}", w.time_column, w.size_ms, w.slide_ms);
            let sql = format!(
                "SELECT *, {start}({args}) AS window_start, {end}({args}) AS window_end, {time}({args}) AS window_time FROM `{}`",
                w.table,
                start = functions::WINDOW_START,
                end = functions::WINDOW_END,
                time = functions::WINDOW_TIME,
            );
            let statement = datafusion::sql::sqlparser::parser::Parser::parse_sql(&super::tokens::DIALECT, &sql)
                .map_err(|e| WeirError::plan(e.to_string()))?
                .remove(0);
            let plan = self.plan(statement, w.at).map_err(|e| {
                WeirError::plan(format!(
                    "{e} (in the window function over '{}', DESCRIPTOR({}))",
                    w.table, w.time_column
                ))
            })?;
            self.ctx
                .register_table(w.name.as_str(), Arc::new(ViewTable::new(plan, None)))
                .map_err(|e| WeirError::plan(e.to_string()))?;
            self.views.insert(w.name.clone(), ());
        }
        Ok(())
    }

    /// Defines the placeholder tables of lookups whose table is declared by now: the table's
    /// columns, under the placeholder's name (the lowering reads the table as a lookup join).
    pub fn add_lookups(&mut self, lookups: &[LookupRef]) -> Result<()> {
        for l in lookups {
            if self.known(&l.name) {
                continue;
            }
            let Some(table) = self.tables.get(&l.table).cloned() else {
                if self.known(&l.table) {
                    return Err(located(
                        &self.origin,
                        l.at,
                        format!(
                            "'{}' FOR SYSTEM_TIME AS OF: only a table declared with CREATE TABLE can be looked up (this is a view)",
                            l.table
                        ),
                    ));
                }
                continue;
            };
            self.ctx
                .register_table(
                    l.name.as_str(),
                    Arc::new(Described {
                        schema: table.schema.clone(),
                    }),
                )
                .map_err(|e| WeirError::plan(e.to_string()))?;
            self.tables.insert(l.name.clone(), table);
            self.lookups.insert(l.name.clone(), l.clone());
        }
        Ok(())
    }

    /// The lookup a placeholder table stands for, if `name` is one.
    pub fn lookup(&self, name: &str) -> Option<&LookupRef> {
        self.lookups.get(name)
    }

    /// Plans a statement (not optimized).
    pub fn plan(
        &self,
        statement: ast::Statement,
        at: datafusion::sql::sqlparser::tokenizer::Location,
    ) -> Result<LogicalPlan> {
        let state = self.ctx.state();
        futures::executor::block_on(state.statement_to_plan(DfStatement::Statement(Box::new(statement))))
            .map_err(|e| self.planning_error(e, at))
    }

    /// Analyzes and optimizes a plan (projection and filter push-down, constant folding, …).
    pub fn optimize(
        &self,
        plan: &LogicalPlan,
        at: datafusion::sql::sqlparser::tokenizer::Location,
    ) -> Result<LogicalPlan> {
        self.ctx.state().optimize(plan).map_err(|e| self.planning_error(e, at))
    }

    /// A DataFusion error as a located planning error, with a suggestion for a misspelt column.
    fn planning_error(
        &self,
        e: datafusion::error::DataFusionError,
        at: datafusion::sql::sqlparser::tokenizer::Location,
    ) -> WeirError {
        let at = e
            .diagnostic()
            .and_then(|d| d.span)
            .filter(|s| s.start.line > 0)
            .map(|s| datafusion::sql::sqlparser::tokenizer::Location {
                line: s.start.line,
                column: s.start.column,
            })
            .unwrap_or(at);
        let e = e.find_root();
        let message = match e {
            datafusion::error::DataFusionError::SchemaError(s, _) => match s.as_ref() {
                datafusion::common::SchemaError::FieldNotFound { field, valid_fields } => {
                    let names: Vec<String> = valid_fields.iter().map(|c| c.name.clone()).collect();
                    let near = closest(&field.name, &names);
                    let table = field
                        .relation
                        .as_ref()
                        .map(|r| format!(" in table '{r}'"))
                        .unwrap_or_default();
                    match near {
                        Some(n) => format!("unknown column '{}'{table} (did you mean '{n}'?)", field.name),
                        None => format!("unknown column '{}'{table} (columns: {})", field.name, names.join(", ")),
                    }
                }
                other => other.to_string(),
            },
            other => {
                let m = other.to_string();
                m.strip_prefix("Error during planning: ").unwrap_or(&m).to_string()
            }
        };
        located(&self.origin, at, message)
    }
}

/// The closest of `names` to `name` by edit distance, if close enough to be a typo.
fn closest(name: &str, names: &[String]) -> Option<String> {
    names
        .iter()
        .map(|n| (edit_distance(&name.to_lowercase(), &n.to_lowercase()), n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The delay of `column` or `column - INTERVAL 'n' UNIT`, ms.
fn watermark_delay(column: &str, expr: &str) -> Option<i64> {
    let tokens = super::tokens::tokenize(expr).ok()?;
    let mut c = super::tokens::Cursor::new(&tokens, "");
    if c.ident("").ok()? != column {
        return None;
    }
    if c.at_end() {
        return Some(0);
    }
    c.expect(&datafusion::sql::sqlparser::tokenizer::Token::Minus, "")
        .ok()?;
    let ms = super::script::interval_ms(&mut c).ok()?;
    c.at_end().then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_delays_and_typos() {
        assert_eq!(watermark_delay("ts", "ts - INTERVAL '4' SECOND"), Some(4000));
        assert_eq!(watermark_delay("ts", "`ts` - INTERVAL '0.001' SECOND"), Some(1));
        assert_eq!(watermark_delay("ts", "ts"), Some(0));
        assert_eq!(watermark_delay("ts", "other - INTERVAL '1' SECOND"), None);
        assert_eq!(
            closest("pricee", &["price".into(), "auction".into()]),
            Some("price".into())
        );
        assert_eq!(closest("zzz", &["price".into()]), None);
    }
}
