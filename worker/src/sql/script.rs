//! A SQL script split into statements: Flink's `CREATE TABLE` (parsed here), views, `INSERT`s,
//! queries, `SET`, `EXPLAIN` and statement sets. Window table functions
//! (`TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECOND))`), which sqlparser does not
//! parse, are cut out of the token stream here and replaced by the name of a table the planner
//! defines for them ([`WindowTvf`]).

use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Word};

use super::ddl::{TableDef, parse_create_table};
use super::tokens::{Cursor, DIALECT, is_keyword, located, tokenize};
use crate::contract::error::{Result, WeirError};

/// One statement of a script.
#[derive(Debug, Clone)]
pub enum Statement {
    /// `CREATE [TEMPORARY] TABLE`.
    CreateTable(TableDef),
    /// `CREATE [TEMPORARY] VIEW name AS query`.
    CreateView {
        /// View name.
        name: String,
        /// Its query.
        query: Box<ast::Query>,
    },
    /// `INSERT INTO table SELECT …`.
    Insert(Box<ast::Statement>),
    /// A bare query: its rows are printed.
    Query(Box<ast::Query>),
    /// `SET 'key' = 'value'`.
    Set {
        /// Option name.
        key: String,
        /// Its value.
        value: String,
    },
    /// `EXPLAIN …`: plan the statement(s) and print the plan instead of running.
    Explain(Box<Located>),
    /// `BEGIN STATEMENT SET` or `EXECUTE STATEMENT SET BEGIN`.
    BeginSet,
    /// `END` of a statement set.
    EndSet,
}

/// A statement and where it starts.
#[derive(Debug, Clone)]
pub struct Located {
    /// The statement.
    pub statement: Statement,
    /// Its first token's position.
    pub at: Location,
}

/// The kind of a window table function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TvfKind {
    /// `TUMBLE(TABLE t, DESCRIPTOR(ts), size)`.
    Tumble,
    /// `HOP(TABLE t, DESCRIPTOR(ts), slide, size)`.
    Hop,
    /// `CUMULATE(TABLE t, DESCRIPTOR(ts), step, size)`.
    Cumulate,
    /// `SESSION(TABLE t [PARTITION BY k], DESCRIPTOR(ts), gap)`.
    Session,
}

/// A window table function found in a query, replaced there by the table `name`.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowTvf {
    /// The placeholder table's name.
    pub name: String,
    /// Which function.
    pub kind: TvfKind,
    /// The table (or view) it reads.
    pub table: String,
    /// The time attribute column (`DESCRIPTOR(col)`).
    pub time_column: String,
    /// Window size (the gap for sessions), ms.
    pub size_ms: i64,
    /// Slide (hop) or step (cumulate), ms; the size for tumbling windows and sessions.
    pub slide_ms: i64,
    /// Where it is.
    pub at: Location,
}

/// A table joined `FOR SYSTEM_TIME AS OF` a time attribute, replaced in the query by the
/// placeholder table `name` (a lookup join's right side).
#[derive(Debug, Clone, PartialEq)]
pub struct LookupRef {
    /// The placeholder table's name.
    pub name: String,
    /// The table looked up.
    pub table: String,
    /// The time attribute it is taken as of, as written.
    pub time: String,
    /// Where it is.
    pub at: Location,
}

/// The placeholder name of `table` joined `FOR SYSTEM_TIME AS OF`.
pub fn lookup_name(table: &str) -> String {
    format!("{LOOKUP_PREFIX}{table}")
}

/// The start of every lookup placeholder's name.
pub const LOOKUP_PREFIX: &str = "__weir_lookup_";

/// A parsed script.
#[derive(Debug, Default)]
pub struct Script {
    /// Statements in order.
    pub statements: Vec<Located>,
    /// Window table functions the queries use.
    pub windows: Vec<WindowTvf>,
    /// Tables the queries join `FOR SYSTEM_TIME AS OF`.
    pub lookups: Vec<LookupRef>,
    /// The number of the first window function's placeholder table.
    pub first_window: usize,
}

/// Splits and parses `text`; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Script> {
    parse_numbered(text, origin, 0)
}

/// [`parse`], numbering window functions' placeholder tables from `first_window` (a session
/// parsing several scripts keeps the names apart).
pub fn parse_numbered(text: &str, origin: &str, first_window: usize) -> Result<Script> {
    let tokens = tokenize(text).map_err(|e| WeirError::plan(format!("{origin}:{e}")))?;
    let mut script = Script {
        first_window,
        ..Script::default()
    };
    let mut start = 0;
    for (i, t) in tokens.iter().enumerate().chain(std::iter::once((tokens.len(), &EOF))) {
        if t.token == Token::SemiColon || i == tokens.len() {
            let piece = &tokens[start..i];
            start = i + 1;
            if piece.is_empty() {
                continue;
            }
            parse_statement(piece, origin, &mut script)?;
        }
    }
    Ok(script)
}

static EOF: TokenWithSpan = TokenWithSpan {
    token: Token::EOF,
    span: datafusion::sql::sqlparser::tokenizer::Span {
        start: Location { line: 0, column: 0 },
        end: Location { line: 0, column: 0 },
    },
};

fn parse_statement(tokens: &[TokenWithSpan], origin: &str, script: &mut Script) -> Result<()> {
    let at = tokens[0].span.start;
    let kw = |i: usize, k: &str| tokens.get(i).is_some_and(|t| is_keyword(&t.token, k));
    let push = |script: &mut Script, statement| script.statements.push(Located { statement, at });
    // Statement sets: `BEGIN STATEMENT SET;` … `END;` or `EXECUTE STATEMENT SET BEGIN … END;`.
    if kw(0, "EXECUTE") && kw(1, "STATEMENT") && kw(2, "SET") && kw(3, "BEGIN") {
        push(script, Statement::BeginSet);
        return parse_statement_rest(&tokens[4..], origin, script);
    }
    if kw(0, "BEGIN") && kw(1, "STATEMENT") && kw(2, "SET") {
        push(script, Statement::BeginSet);
        return parse_statement_rest(&tokens[3..], origin, script);
    }
    if kw(0, "END") && tokens.len() == 1 {
        push(script, Statement::EndSet);
        return Ok(());
    }
    if kw(0, "EXPLAIN") {
        let mut inner = Script {
            first_window: script.first_window + script.windows.len(),
            ..Script::default()
        };
        let mut rest = &tokens[1..];
        // `EXPLAIN PLAN FOR`, and Flink's detail words, are accepted and ignored.
        while rest.first().is_some_and(|t| {
            [
                "PLAN",
                "FOR",
                "ESTIMATED_COST",
                "CHANGELOG_MODE",
                "JSON_EXECUTION_PLAN",
                "PLAN_ADVICE",
            ]
            .iter()
            .any(|k| is_keyword(&t.token, k))
        }) || rest.first().is_some_and(|t| t.token == Token::Comma)
        {
            rest = &rest[1..];
        }
        parse_statement_rest(rest, origin, &mut inner)?;
        script.windows.extend(inner.windows);
        script.lookups.extend(inner.lookups);
        for s in inner.statements {
            push(script, Statement::Explain(Box::new(s)));
        }
        return Ok(());
    }
    parse_statement_rest(tokens, origin, script)
}

fn parse_statement_rest(tokens: &[TokenWithSpan], origin: &str, script: &mut Script) -> Result<()> {
    let Some(first) = tokens.first() else {
        return Ok(());
    };
    let at = first.span.start;
    let kw = |i: usize, k: &str| tokens.get(i).is_some_and(|t| is_keyword(&t.token, k));
    let push = |script: &mut Script, statement| script.statements.push(Located { statement, at });
    let temporary = usize::from(kw(1, "TEMPORARY"));
    if kw(0, "CREATE") && kw(1 + temporary, "TABLE") {
        let table = parse_create_table(&mut Cursor::new(tokens, origin))?;
        push(script, Statement::CreateTable(table));
        return Ok(());
    }
    if kw(0, "CREATE") && kw(1 + temporary, "VIEW") {
        let mut c = Cursor::new(tokens, origin);
        c.advance();
        c.keyword("TEMPORARY");
        c.advance();
        if c.keyword("IF") {
            c.expect_keyword("NOT")?;
            c.expect_keyword("EXISTS")?;
        }
        let name = c.object_name("a view name")?;
        c.expect_keyword("AS")?;
        let rest = rewrite_windows(&c.rest(), origin, &mut script.windows, script.first_window)?;
        let rest = rewrite_lookups(&rest, origin, &mut script.lookups)?;
        let mut parser = Parser::new(&DIALECT).with_tokens_with_locations(rest);
        let end = tokens.last().map(|t| t.span.end).unwrap_or(at);
        let mut query = parser.parse_query().map_err(|e| sql_error(origin, e, end))?;
        flink_names(&mut query);
        push(script, Statement::CreateView { name, query });
        return Ok(());
    }
    if kw(0, "SET") || kw(0, "RESET") {
        let mut c = Cursor::new(tokens, origin);
        if c.keyword("RESET") {
            return Err(c.error_before("RESET is not supported; SET the option to the value you want"));
        }
        c.advance();
        let key = match c.peek() {
            Token::SingleQuotedString(_) | Token::DoubleQuotedString(_) => c.string("an option name")?,
            _ => {
                let mut k = c.word("an option name")?;
                while c.eat(&Token::Period) {
                    k.push('.');
                    k.push_str(&c.word("an option name")?);
                }
                k
            }
        };
        c.expect(&Token::Eq, "'=' after the option name")?;
        let value = match c.advance() {
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => s,
            Token::Number(n, _) => n,
            Token::Word(w) => w.value,
            other => return Err(c.error_before(format!("expected the value of '{key}', found '{other}'"))),
        };
        if !c.at_end() {
            return Err(c.error_here(format!("unexpected '{}' after SET's value", c.peek())));
        }
        push(script, Statement::Set { key, value });
        return Ok(());
    }
    let rewritten = rewrite_windows(tokens, origin, &mut script.windows, script.first_window)?;
    let rewritten = rewrite_lookups(&rewritten, origin, &mut script.lookups)?;
    let mut parser = Parser::new(&DIALECT).with_tokens_with_locations(rewritten);
    let end = tokens.last().map(|t| t.span.end).unwrap_or(at);
    let mut statement = parser.parse_statement().map_err(|e| sql_error(origin, e, end))?;
    let statement = match &mut statement {
        ast::Statement::Insert(insert) => {
            if let Some(q) = insert.source.as_mut() {
                flink_names(q);
            }
            Statement::Insert(Box::new(statement))
        }
        ast::Statement::Query(q) => {
            flink_names(q);
            Statement::Query(q.clone())
        }
        other => {
            let text = other.to_string();
            let head: String = text.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
            return Err(located(
                origin,
                at,
                format!(
                    "'{head} …' is not supported (a job takes CREATE TABLE, CREATE VIEW, INSERT INTO, SELECT, SET, \
                     EXPLAIN and statement sets)"
                ),
            ));
        }
    };
    push(script, statement);
    Ok(())
}

/// Flink's column names: `SELECT t.row.field` is named `field` (DataFusion would name it
/// after the whole path), in every select list of the query, subqueries included.
pub fn flink_names(query: &mut ast::Query) {
    set_expr_names(&mut query.body);
}

fn set_expr_names(body: &mut ast::SetExpr) {
    match body {
        ast::SetExpr::Select(select) => {
            for item in &mut select.projection {
                if let ast::SelectItem::UnnamedExpr(ast::Expr::CompoundIdentifier(parts)) = item
                    && parts.len() >= 2
                {
                    let alias = parts.last().expect("two parts").clone();
                    let expr = ast::Expr::CompoundIdentifier(parts.clone());
                    *item = ast::SelectItem::ExprWithAlias { expr, alias };
                }
            }
            for from in &mut select.from {
                table_names(&mut from.relation);
                for j in &mut from.joins {
                    table_names(&mut j.relation);
                }
            }
        }
        ast::SetExpr::Query(q) => flink_names(q),
        ast::SetExpr::SetOperation { left, right, .. } => {
            set_expr_names(left);
            set_expr_names(right);
        }
        _ => {}
    }
}

fn table_names(t: &mut ast::TableFactor) {
    match t {
        ast::TableFactor::Derived { subquery, .. } => flink_names(subquery),
        ast::TableFactor::NestedJoin { table_with_joins, .. } => {
            table_names(&mut table_with_joins.relation);
            for j in &mut table_with_joins.joins {
                table_names(&mut j.relation);
            }
        }
        _ => {}
    }
}

/// A sqlparser error with the file name in front (its message has the line and column; at the
/// end of the input it has none, and `end` is used).
pub fn sql_error(origin: &str, e: impl std::fmt::Display, end: Location) -> WeirError {
    let m = e.to_string();
    let m = m.strip_prefix("sql parser error: ").unwrap_or(&m);
    // "… at Line: 7, Column: 12" → "origin:7:12: …"
    if let Some((msg, pos)) = m.rsplit_once(" at Line: ")
        && let Some((line, col)) = pos.split_once(", Column: ")
    {
        return WeirError::plan(format!("{origin}:{line}:{col}: {msg}"));
    }
    located(origin, end, m)
}

/// Replaces each `TABLE(KIND(TABLE t, DESCRIPTOR(c), INTERVAL …))` with a placeholder table
/// name, recording the function in `windows`.
fn rewrite_windows(
    tokens: &[TokenWithSpan],
    origin: &str,
    windows: &mut Vec<WindowTvf>,
    first: usize,
) -> Result<Vec<TokenWithSpan>> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let is_tvf = is_keyword(&tokens[i].token, "TABLE")
            && tokens.get(i + 1).is_some_and(|t| t.token == Token::LParen)
            && tokens.get(i + 2).is_some_and(|t| kind_of(&t.token).is_some())
            && tokens.get(i + 3).is_some_and(|t| t.token == Token::LParen);
        if !is_tvf {
            out.push(tokens[i].clone());
            i += 1;
            continue;
        }
        let at = tokens[i].span.start;
        let kind = kind_of(&tokens[i + 2].token).expect("checked");
        let mut c = Cursor::new(&tokens[i + 4..], origin);
        c.expect_keyword("TABLE")?;
        let table = c.object_name("the table the window function reads")?;
        if c.keyword("PARTITION") {
            // `PARTITION BY k` or `PARTITION BY (k1, k2)`: the GROUP BY keys partition anyway.
            c.expect_keyword("BY")?;
            if c.eat(&Token::LParen) {
                c.ident("a column")?;
                while c.eat(&Token::Comma) {
                    c.ident("a column")?;
                }
                c.expect(&Token::RParen, "')'")?;
            } else {
                c.ident("a column")?;
            }
        }
        c.expect(&Token::Comma, "',' after the table")?;
        c.expect_keyword("DESCRIPTOR")?;
        c.expect(&Token::LParen, "'(' after DESCRIPTOR")?;
        let time_column = c.ident("the time attribute column")?;
        c.expect(&Token::RParen, "')'")?;
        let mut sizes = Vec::new();
        while c.eat(&Token::Comma) {
            sizes.push(interval_ms(&mut c)?);
        }
        c.expect(&Token::RParen, "')' closing the window function")?;
        c.expect(&Token::RParen, "')' closing TABLE(…)")?;
        let wanted = match kind {
            TvfKind::Tumble | TvfKind::Session => 1,
            TvfKind::Hop | TvfKind::Cumulate => 2,
        };
        if sizes.len() != wanted {
            return Err(located(
                origin,
                at,
                format!(
                    "{} takes {wanted} interval(s) after DESCRIPTOR(..), found {}",
                    format!("{kind:?}").to_uppercase(),
                    sizes.len()
                ),
            ));
        }
        let (size_ms, slide_ms) = match kind {
            TvfKind::Tumble | TvfKind::Session => (sizes[0], sizes[0]),
            TvfKind::Hop | TvfKind::Cumulate => (sizes[1], sizes[0]),
        };
        if size_ms <= 0 || slide_ms <= 0 || slide_ms > size_ms || size_ms % slide_ms != 0 && kind == TvfKind::Cumulate {
            return Err(located(
                origin,
                at,
                format!(
                    "window sizes must be positive, the slide or step at most the size (size {size_ms} ms, slide {slide_ms} ms)"
                ),
            ));
        }
        let name = format!("__weir_window_{}", first + windows.len());
        windows.push(WindowTvf {
            name: name.clone(),
            kind,
            table,
            time_column,
            size_ms,
            slide_ms,
            at,
        });
        out.push(TokenWithSpan {
            token: Token::Word(Word {
                value: name,
                quote_style: Some('`'),
                keyword: datafusion::sql::sqlparser::keywords::Keyword::NoKeyword,
            }),
            span: tokens[i].span,
        });
        i += 4 + c.index();
    }
    Ok(out)
}

/// Replaces each `t FOR SYSTEM_TIME AS OF time` with the placeholder table of `t`'s lookup,
/// recording it in `lookups` (sqlparser's generic dialect does not parse the clause).
fn rewrite_lookups(tokens: &[TokenWithSpan], origin: &str, lookups: &mut Vec<LookupRef>) -> Result<Vec<TokenWithSpan>> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let clause = ["FOR", "SYSTEM_TIME", "AS", "OF"]
            .iter()
            .enumerate()
            .all(|(k, w)| tokens.get(i + k).is_some_and(|t| is_keyword(&t.token, w)));
        if !clause {
            out.push(tokens[i].clone());
            i += 1;
            continue;
        }
        let at = tokens[i].span.start;
        let table = match out.last().map(|t| &t.token) {
            Some(Token::Word(w)) if out.iter().rev().nth(1).is_none_or(|t| t.token != Token::Period) => w.value.clone(),
            _ => {
                return Err(located(
                    origin,
                    at,
                    "FOR SYSTEM_TIME AS OF must follow the name of a table declared in this job",
                ));
            }
        };
        // The time attribute: `alias.column`, `column`, or a call such as `PROCTIME()`.
        let mut j = i + 4;
        let mut time = String::new();
        while let Some(t) = tokens.get(j) {
            match &t.token {
                Token::Word(w) if time.is_empty() || time.ends_with('.') => time.push_str(&w.value),
                Token::Period if !time.is_empty() && !time.ends_with('.') => time.push('.'),
                _ => break,
            }
            j += 1;
        }
        if tokens.get(j).is_some_and(|t| t.token == Token::LParen)
            && tokens.get(j + 1).is_some_and(|t| t.token == Token::RParen)
        {
            time.push_str("()");
            j += 2;
        }
        if time.is_empty() || time.ends_with('.') {
            return Err(located(
                origin,
                at,
                format!(
                    "FOR SYSTEM_TIME AS OF after '{table}' needs a time attribute, such as the left side's PROCTIME() column"
                ),
            ));
        }
        let name = lookup_name(&table);
        let last = out.last_mut().expect("checked");
        last.token = Token::Word(Word {
            value: name.clone(),
            quote_style: Some('`'),
            keyword: datafusion::sql::sqlparser::keywords::Keyword::NoKeyword,
        });
        lookups.push(LookupRef { name, table, time, at });
        i = j;
    }
    Ok(out)
}

fn kind_of(t: &Token) -> Option<TvfKind> {
    [
        ("TUMBLE", TvfKind::Tumble),
        ("HOP", TvfKind::Hop),
        ("CUMULATE", TvfKind::Cumulate),
        ("SESSION", TvfKind::Session),
    ]
    .into_iter()
    .find(|(k, _)| is_keyword(t, k))
    .map(|(_, kind)| kind)
}

/// `INTERVAL 'n' UNIT` in milliseconds.
pub fn interval_ms(c: &mut Cursor) -> Result<i64> {
    c.expect_keyword("INTERVAL")?;
    let n = c.string("the interval's amount")?;
    let unit = c.word("the interval's unit")?.to_ascii_uppercase();
    let ms: f64 = match unit.trim_end_matches('S') {
        "MILLISECOND" => 1.0,
        "SECOND" => 1_000.0,
        "MINUTE" => 60_000.0,
        "HOUR" => 3_600_000.0,
        "DAY" => 86_400_000.0,
        other => {
            return Err(c.error_before(format!(
                "unknown interval unit '{other}' (known: MILLISECOND, SECOND, MINUTE, HOUR, DAY)"
            )));
        }
    };
    let amount: f64 = n
        .trim()
        .parse()
        .map_err(|_| c.error_before(format!("interval amount '{n}' is not a number")))?;
    Ok((amount * ms).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_sets_and_window_functions() {
        let s = parse(
            "-- a job\n\
             SET 'parallelism.default' = '2';\n\
             CREATE TEMPORARY TABLE t (a BIGINT, ts TIMESTAMP(3)) WITH ('connector' = 'datagen');\n\
             CREATE TEMPORARY VIEW v AS SELECT * FROM t WHERE a > 1;\n\
             EXECUTE STATEMENT SET BEGIN\n\
             INSERT INTO s SELECT a, window_start FROM TABLE(HOP(TABLE v, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND)) GROUP BY a, window_start, window_end;\n\
             INSERT INTO s2 SELECT * FROM t;\n\
             END;",
            "job.sql",
        )
        .unwrap();
        let kinds: Vec<String> = s
            .statements
            .iter()
            .map(|l| {
                format!("{:?}", l.statement)
                    .split(['(', ' '])
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "Set",
                "CreateTable",
                "CreateView",
                "BeginSet",
                "Insert",
                "Insert",
                "EndSet"
            ]
        );
        assert_eq!(s.statements[0].at.line, 2);
        assert_eq!(s.windows.len(), 1);
        let w = &s.windows[0];
        assert_eq!(
            (w.kind, w.table.as_str(), w.time_column.as_str()),
            (TvfKind::Hop, "v", "ts")
        );
        assert_eq!((w.size_ms, w.slide_ms), (10_000, 2_000));
        let Statement::Insert(i) = &s.statements[4].statement else {
            panic!()
        };
        assert!(i.to_string().contains("`__weir_window_0`"), "{i}");
    }

    #[test]
    fn syntax_errors_name_the_file_line_and_column() {
        let e = parse("SELECT a FROM t;\nSELECT a FROM t WHERE", "job.sql").unwrap_err();
        assert!(e.to_string().contains("job.sql:2:22: Expected: an expression"), "{e}");
        let e = parse("DROP TABLE t", "job.sql").unwrap_err();
        assert!(e.to_string().contains("is not supported"), "{e}");
    }
}
