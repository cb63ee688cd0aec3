//! Flink SQL data types (`BIGINT`, `VARCHAR`, `DECIMAL(23, 3)`, `TIMESTAMP(3)`,
//! `ROW<a INT, b STRING>`, `ARRAY<T>`, `MAP<K, V>`) as Arrow types.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use datafusion::sql::sqlparser::tokenizer::Token;

use super::tokens::Cursor;
use crate::contract::error::Result;

/// Parses one data type at the cursor; returns the type and whether it allows nulls.
pub fn parse_type(c: &mut Cursor) -> Result<(DataType, bool)> {
    let name = c.word("a data type")?.to_ascii_uppercase();
    let t = match name.as_str() {
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "TINYINT" => DataType::Int8,
        "SMALLINT" => DataType::Int16,
        "INT" | "INTEGER" => DataType::Int32,
        "BIGINT" => DataType::Int64,
        "FLOAT" | "REAL" => DataType::Float32,
        "DOUBLE" => {
            c.keyword("PRECISION");
            DataType::Float64
        }
        "DECIMAL" | "DEC" | "NUMERIC" => {
            let args = numbers(c)?;
            let p = args.first().copied().unwrap_or(10);
            let s = args.get(1).copied().unwrap_or(0);
            if !(1..=38).contains(&p) || s > p {
                return Err(c.error_here(format!(
                    "DECIMAL({p}, {s}): precision must be 1..38 and scale at most it"
                )));
            }
            DataType::Decimal128(p as u8, s as i8)
        }
        "CHAR" | "VARCHAR" | "STRING" => {
            numbers(c)?;
            DataType::Utf8
        }
        "BINARY" | "VARBINARY" | "BYTES" => {
            numbers(c)?;
            DataType::Binary
        }
        "DATE" => DataType::Date32,
        "TIME" => {
            numbers(c)?;
            DataType::Time32(TimeUnit::Millisecond)
        }
        "TIMESTAMP" | "TIMESTAMP_LTZ" => {
            let p = numbers(c)?.first().copied().unwrap_or(6);
            let unit = match p {
                0..=3 => TimeUnit::Millisecond,
                4..=6 => TimeUnit::Microsecond,
                _ => TimeUnit::Nanosecond,
            };
            let mut zone = name == "TIMESTAMP_LTZ";
            if c.keyword("WITH") {
                c.expect_keyword("LOCAL")?;
                c.expect_keyword("TIME")?;
                c.expect_keyword("ZONE")?;
                zone = true;
            } else if c.keyword("WITHOUT") {
                c.expect_keyword("TIME")?;
                c.expect_keyword("ZONE")?;
            }
            DataType::Timestamp(unit, zone.then(|| "UTC".into()))
        }
        "ROW" => {
            let close = if c.eat(&Token::Lt) {
                Token::Gt
            } else {
                c.expect(&Token::LParen, "'<' or '(' after ROW")?;
                Token::RParen
            };
            let mut fields = Vec::new();
            loop {
                let name = c.ident("a field name")?;
                let (t, nullable) = parse_type(c)?;
                fields.push(Field::new(name, t, nullable));
                if let Token::SingleQuotedString(_) = c.peek() {
                    c.advance(); // a field comment
                }
                if c.eat(&Token::Comma) {
                    continue;
                }
                close_angle(c, &close)?;
                break;
            }
            DataType::Struct(Fields::from(fields))
        }
        "ARRAY" => {
            c.expect(&Token::Lt, "'<' after ARRAY")?;
            let (t, nullable) = parse_type(c)?;
            close_angle(c, &Token::Gt)?;
            DataType::List(Arc::new(Field::new("item", t, nullable)))
        }
        "MAP" => {
            c.expect(&Token::Lt, "'<' after MAP")?;
            let (k, _) = parse_type(c)?;
            c.expect(&Token::Comma, "',' between a MAP's key and value types")?;
            let (v, nullable) = parse_type(c)?;
            close_angle(c, &Token::Gt)?;
            let entries = Field::new(
                "entries",
                DataType::Struct(Fields::from(vec![
                    Field::new("key", k, false),
                    Field::new("value", v, nullable),
                ])),
                false,
            );
            DataType::Map(Arc::new(entries), false)
        }
        other => {
            return Err(c.error_before(format!(
                "unknown data type '{other}' (known: BOOLEAN, TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, \
                 DECIMAL(p, s), CHAR, VARCHAR, STRING, BYTES, DATE, TIME, TIMESTAMP(p), TIMESTAMP_LTZ(p), \
                 ROW<..>, ARRAY<..>, MAP<..>)"
            )));
        }
    };
    let nullable = if c.keyword("NOT") {
        c.expect_keyword("NULL")?;
        false
    } else {
        c.keyword("NULL");
        true
    };
    Ok((t, nullable))
}

/// `(n)` or `(n, m)` after a type name, if present.
fn numbers(c: &mut Cursor) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    if !c.eat(&Token::LParen) {
        return Ok(out);
    }
    loop {
        match c.advance() {
            Token::Number(n, _) => out.push(
                n.parse()
                    .map_err(|_| c.error_before(format!("'{n}' is not a type length")))?,
            ),
            other => return Err(c.error_before(format!("expected a number in a type's parentheses, found '{other}'"))),
        }
        if c.eat(&Token::Comma) {
            continue;
        }
        c.expect(&Token::RParen, "')'")?;
        return Ok(out);
    }
}

/// Closes a `<…>`: `>>` closes two nested ones, so the tokenizer's `ShiftRight` is split.
fn close_angle(c: &mut Cursor, close: &Token) -> Result<()> {
    if *close == Token::Gt && c.peek() == Token::ShiftRight {
        c.replace_next(Token::Gt);
        return Ok(());
    }
    c.expect(close, &format!("'{close}'"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::tokens::tokenize;

    fn ty(text: &str) -> (DataType, bool) {
        let tokens = tokenize(text).unwrap();
        let mut c = Cursor::new(&tokens, "t.sql");
        parse_type(&mut c).unwrap()
    }

    #[test]
    fn flink_types_map_to_arrow() {
        assert_eq!(ty("BIGINT"), (DataType::Int64, true));
        assert_eq!(ty("INT NOT NULL"), (DataType::Int32, false));
        assert_eq!(ty("DECIMAL(23, 3)").0, DataType::Decimal128(23, 3));
        assert_eq!(ty("VARCHAR(20)").0, DataType::Utf8);
        assert_eq!(ty("TIMESTAMP(3)").0, DataType::Timestamp(TimeUnit::Millisecond, None));
        assert_eq!(
            ty("TIMESTAMP(3) WITH LOCAL TIME ZONE").0,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        let DataType::Struct(f) = ty("ROW<id BIGINT, `dateTime` TIMESTAMP(3), tags ARRAY<STRING>>").0 else {
            panic!()
        };
        assert_eq!(f.len(), 3);
        assert_eq!(f[1].name(), "dateTime");
        assert!(matches!(f[2].data_type(), DataType::List(_)));
        assert!(matches!(ty("MAP<STRING, BIGINT>").0, DataType::Map(..)));
    }

    #[test]
    fn an_unknown_type_is_named_with_its_position() {
        let tokens = tokenize("x  BIGNUM").unwrap();
        let mut c = Cursor::new(&tokens, "t.sql");
        c.advance();
        let e = parse_type(&mut c).unwrap_err().to_string();
        assert!(e.contains("t.sql:1:4") && e.contains("BIGNUM"), "{e}");
    }
}
