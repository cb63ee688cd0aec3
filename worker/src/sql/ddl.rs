//! Flink's `CREATE [TEMPORARY] TABLE`: physical columns, computed columns (`x AS expr`),
//! `WATERMARK FOR ts AS expr`, `PRIMARY KEY (..) NOT ENFORCED` and `WITH ('k' = 'v', ..)`.
//! Parsed here (sqlparser has no Flink DDL); expressions are kept as SQL text and planned
//! against the table's schema.

use std::collections::BTreeMap;

use arrow::datatypes::DataType;
use datafusion::sql::sqlparser::tokenizer::{Location, Token};

use super::tokens::Cursor;
use super::types::parse_type;
use crate::contract::error::Result;

/// A column of a table.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnDef {
    /// Read from the connector.
    Physical {
        /// Name.
        name: String,
        /// Type.
        data_type: DataType,
        /// Nulls allowed.
        nullable: bool,
    },
    /// Computed from the others: `name AS expr`.
    Computed {
        /// Name.
        name: String,
        /// The expression, as SQL.
        expr: String,
    },
}

impl ColumnDef {
    /// The column's name.
    pub fn name(&self) -> &str {
        match self {
            ColumnDef::Physical { name, .. } | ColumnDef::Computed { name, .. } => name,
        }
    }
}

/// `WATERMARK FOR column AS expr`.
#[derive(Debug, Clone, PartialEq)]
pub struct WatermarkDef {
    /// The rowtime column.
    pub column: String,
    /// The watermark expression, as SQL.
    pub expr: String,
    /// Where the clause is, for errors.
    pub at: Location,
}

/// A `CREATE TABLE` statement.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDef {
    /// Table name (the last part of a dotted name).
    pub name: String,
    /// Columns in declared order.
    pub columns: Vec<ColumnDef>,
    /// Event time, if declared.
    pub watermark: Option<WatermarkDef>,
    /// `PRIMARY KEY` columns (empty if none).
    pub primary_key: Vec<String>,
    /// `WITH` options, keys as written.
    pub options: BTreeMap<String, String>,
    /// Where the statement is.
    pub at: Location,
}

/// Parses `CREATE [TEMPORARY] TABLE [IF NOT EXISTS] name (...) WITH (...)`; the cursor is at
/// `CREATE`.
pub fn parse_create_table(c: &mut Cursor) -> Result<TableDef> {
    let at = c.location();
    c.expect_keyword("CREATE")?;
    c.keyword("TEMPORARY");
    c.expect_keyword("TABLE")?;
    if c.keyword("IF") {
        c.expect_keyword("NOT")?;
        c.expect_keyword("EXISTS")?;
    }
    let name = c.object_name("a table name")?;
    c.expect(&Token::LParen, "'(' and the column list")?;
    let mut table = TableDef {
        name,
        columns: Vec::new(),
        watermark: None,
        primary_key: Vec::new(),
        options: BTreeMap::new(),
        at,
    };
    loop {
        if c.keyword("WATERMARK") {
            let wat = c.location();
            c.expect_keyword("FOR")?;
            let column = c.ident("the rowtime column")?;
            c.expect_keyword("AS")?;
            let expr = expression_text(c)?;
            if table.watermark.is_some() {
                return Err(c.error_here("a table has at most one WATERMARK"));
            }
            table.watermark = Some(WatermarkDef { column, expr, at: wat });
        } else if c.keyword("CONSTRAINT") || c.keyword("PRIMARY") {
            if !is_after_primary(c) {
                c.ident("a constraint name")?;
                c.expect_keyword("PRIMARY")?;
            }
            c.expect_keyword("KEY")?;
            table.primary_key = column_list(c)?;
            c.expect_keyword("NOT")?;
            c.expect_keyword("ENFORCED")?;
        } else {
            let col_at = c.location();
            let name = c.ident("a column name")?;
            if table.columns.iter().any(|x| x.name() == name) {
                return Err(c.error_at(col_at, format!("column '{name}' is declared twice")));
            }
            if c.keyword("AS") {
                let expr = expression_text(c)?;
                table.columns.push(ColumnDef::Computed { name, expr });
            } else {
                let (data_type, mut nullable) = parse_type(c)?;
                if c.keyword("METADATA") {
                    return Err(c.error_before(format!(
                        "column '{name}': METADATA columns are not supported yet; declare it as a physical column"
                    )));
                }
                if c.keyword("PRIMARY") {
                    c.expect_keyword("KEY")?;
                    c.expect_keyword("NOT")?;
                    c.expect_keyword("ENFORCED")?;
                    table.primary_key = vec![name.clone()];
                    nullable = false;
                }
                table.columns.push(ColumnDef::Physical {
                    name,
                    data_type,
                    nullable,
                });
            }
            if c.keyword("COMMENT") {
                c.string("a comment")?;
            }
        }
        if c.eat(&Token::Comma) {
            continue;
        }
        c.expect(&Token::RParen, "',' or ')' after a column")?;
        break;
    }
    if c.keyword("COMMENT") {
        c.string("a comment")?;
    }
    if c.keyword("PARTITIONED") {
        c.expect_keyword("BY")?;
        column_list(c)?;
    }
    c.expect_keyword("WITH")?;
    c.expect(&Token::LParen, "'(' and the connector options")?;
    loop {
        let key = c.string("an option name")?;
        c.expect(&Token::Eq, "'=' after the option name")?;
        let value = c.string(&format!("the value of option '{key}'"))?;
        if table.options.insert(key.clone(), value).is_some() {
            return Err(c.error_before(format!("option '{key}' is given twice")));
        }
        if c.eat(&Token::Comma) {
            continue;
        }
        c.expect(&Token::RParen, "',' or ')' after an option")?;
        break;
    }
    if !c.at_end() {
        return Err(c.error_here(format!("unexpected '{}' after the WITH options", c.peek())));
    }
    for pk in &table.primary_key {
        if !table.columns.iter().any(|x| x.name() == pk) {
            return Err(c.error_at(
                at,
                format!("PRIMARY KEY column '{pk}' is not a column of table '{}'", table.name),
            ));
        }
    }
    if let Some(w) = &table.watermark
        && !table.columns.iter().any(|x| x.name() == w.column)
    {
        return Err(c.error_at(
            w.at,
            format!("WATERMARK FOR '{}': no such column in table '{}'", w.column, table.name),
        ));
    }
    Ok(table)
}

fn is_after_primary(c: &Cursor) -> bool {
    super::tokens::is_keyword(&c.peek(), "KEY")
}

fn column_list(c: &mut Cursor) -> Result<Vec<String>> {
    c.expect(&Token::LParen, "'(' and a column list")?;
    let mut out = vec![c.ident("a column name")?];
    while c.eat(&Token::Comma) {
        out.push(c.ident("a column name")?);
    }
    c.expect(&Token::RParen, "')'")?;
    Ok(out)
}

/// The SQL text of the expression at the cursor (checked by sqlparser).
fn expression_text(c: &mut Cursor) -> Result<String> {
    let tokens = c.expression_tokens();
    if tokens.is_empty() {
        return Err(c.error_here("expected an expression"));
    }
    let mut parser = datafusion::sql::sqlparser::parser::Parser::new(&super::tokens::DIALECT)
        .with_tokens_with_locations(tokens.clone());
    let expr = parser.parse_expr().map_err(|e| c.error_at(tokens[0].span.start, e))?;
    Ok(expr.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::tokens::tokenize;

    fn parse(text: &str) -> Result<TableDef> {
        let tokens = tokenize(text).unwrap();
        parse_create_table(&mut Cursor::new(&tokens, "t.sql"))
    }

    #[test]
    fn a_flink_table_with_computed_column_watermark_and_key() {
        let t = parse(
            "CREATE TEMPORARY TABLE orders (
                id BIGINT,
                `user` ROW<name STRING, age INT>,
                price DECIMAL(10, 2),
                ts_ms BIGINT,
                ts AS TO_TIMESTAMP_LTZ(ts_ms, 3),
                WATERMARK FOR ts AS ts - INTERVAL '5' SECOND,
                PRIMARY KEY (id) NOT ENFORCED
            ) WITH ('connector' = 'kafka', 'topic' = 'orders')",
        )
        .unwrap();
        assert_eq!(t.name, "orders");
        assert_eq!(t.columns.len(), 5);
        assert_eq!(t.columns[1].name(), "user");
        assert!(matches!(&t.columns[4], ColumnDef::Computed { expr, .. } if expr.contains("TO_TIMESTAMP_LTZ")));
        let w = t.watermark.unwrap();
        assert_eq!(w.column, "ts");
        assert_eq!(w.expr, "ts - INTERVAL '5' SECOND");
        assert_eq!(t.primary_key, ["id"]);
        assert_eq!(t.options["topic"], "orders");
    }

    #[test]
    fn mistakes_name_what_was_expected() {
        let e = parse("CREATE TABLE t (a BIGINT) WITH ('connector' 'kafka')").unwrap_err();
        assert!(e.to_string().contains("'=' after the option name"), "{e}");
        let e = parse("CREATE TABLE t (a BIGINT, WATERMARK FOR b AS b) WITH ('connector' = 'x')").unwrap_err();
        assert!(e.to_string().contains("WATERMARK FOR 'b'"), "{e}");
        let e = parse("CREATE TABLE t (a BIGINT, a INT) WITH ('connector' = 'x')").unwrap_err();
        assert!(e.to_string().contains("declared twice"), "{e}");
    }
}
