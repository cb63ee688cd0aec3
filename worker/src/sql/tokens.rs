//! Tokens of a SQL script (sqlparser's tokenizer, with positions) and a cursor over them for
//! the statements Weir parses itself (Flink's `CREATE TABLE`, `SET`, statement sets). Errors
//! name the file, line and column.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use crate::contract::error::{Result, WeirError};

/// The dialect of Weir's SQL: generic SQL with Flink's backtick identifiers.
pub const DIALECT: GenericDialect = GenericDialect {};

/// Tokenizes `text`, dropping whitespace and comments.
pub fn tokenize(text: &str) -> std::result::Result<Vec<TokenWithSpan>, String> {
    let tokens = Tokenizer::new(&DIALECT, text)
        .tokenize_with_location()
        .map_err(|e| format!("{}:{}: {}", e.location.line, e.location.column, e.message))?;
    Ok(tokens
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect())
}

/// The word of a token, if it is one (keywords included), as written.
pub fn word(t: &Token) -> Option<&str> {
    match t {
        Token::Word(w) => Some(&w.value),
        _ => None,
    }
}

/// Whether the token is the (unquoted) keyword `kw`.
pub fn is_keyword(t: &Token, kw: &str) -> bool {
    matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
}

/// `origin:line:column: message`.
pub fn located(origin: &str, at: Location, message: impl std::fmt::Display) -> WeirError {
    if at.line == 0 {
        WeirError::plan(format!("{origin}: {message}"))
    } else {
        WeirError::plan(format!("{origin}:{}:{}: {message}", at.line, at.column))
    }
}

/// A cursor over a statement's tokens.
pub struct Cursor<'a> {
    tokens: std::borrow::Cow<'a, [TokenWithSpan]>,
    pos: usize,
    origin: &'a str,
}

impl<'a> Cursor<'a> {
    /// A cursor at the first of `tokens`; `origin` names the file in errors.
    pub fn new(tokens: &'a [TokenWithSpan], origin: &'a str) -> Self {
        Cursor {
            tokens: std::borrow::Cow::Borrowed(tokens),
            pos: 0,
            origin,
        }
    }

    /// The next token without consuming it (`EOF` at the end).
    pub fn peek(&self) -> Token {
        self.peek_at(0)
    }

    /// The token `n` ahead of the next one.
    pub fn peek_at(&self, n: usize) -> Token {
        self.tokens
            .get(self.pos + n)
            .map(|t| t.token.clone())
            .unwrap_or(Token::EOF)
    }

    /// Consumes and returns the next token.
    pub fn advance(&mut self) -> Token {
        let t = self.peek();
        self.pos += 1;
        t
    }

    /// Replaces the next token (splitting `>>` into `>` after one `>` was consumed).
    pub fn replace_next(&mut self, token: Token) {
        let pos = self.pos;
        self.tokens.to_mut()[pos].token = token;
    }

    /// Position of the next token.
    pub fn location(&self) -> Location {
        self.tokens
            .get(self.pos)
            .or(self.tokens.last())
            .map(|t| t.span.start)
            .unwrap_or(Location { line: 0, column: 0 })
    }

    /// Index of the next token.
    pub fn index(&self) -> usize {
        self.pos
    }

    /// The tokens from `from` to the cursor.
    pub fn since(&self, from: usize) -> Vec<TokenWithSpan> {
        self.tokens[from..self.pos.min(self.tokens.len())].to_vec()
    }

    /// The tokens after the cursor.
    pub fn rest(&self) -> Vec<TokenWithSpan> {
        self.tokens[self.pos.min(self.tokens.len())..].to_vec()
    }

    /// Whether every token was consumed.
    pub fn at_end(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    /// An error at the next token.
    pub fn error_here(&self, message: impl std::fmt::Display) -> WeirError {
        located(self.origin, self.location(), message)
    }

    /// An error at `at`.
    pub fn error_at(&self, at: Location, message: impl std::fmt::Display) -> WeirError {
        located(self.origin, at, message)
    }

    /// An error at the token just consumed.
    pub fn error_before(&self, message: impl std::fmt::Display) -> WeirError {
        let at = self
            .tokens
            .get(self.pos.saturating_sub(1))
            .map(|t| t.span.start)
            .unwrap_or(Location { line: 0, column: 0 });
        located(self.origin, at, message)
    }

    /// Consumes the keyword `kw` if it is next.
    pub fn keyword(&mut self, kw: &str) -> bool {
        if is_keyword(&self.peek(), kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes the keyword `kw` or fails naming it.
    pub fn expect_keyword(&mut self, kw: &str) -> Result<()> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(self.error_here(format!("expected {kw}, found '{}'", self.peek())))
        }
    }

    /// Consumes `token` if it is next.
    pub fn eat(&mut self, token: &Token) -> bool {
        if &self.peek() == token {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes `token` or fails saying `what` was expected.
    pub fn expect(&mut self, token: &Token, what: &str) -> Result<()> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.error_here(format!("expected {what}, found '{}'", self.peek())))
        }
    }

    /// Consumes a word (keyword or identifier) and returns it as written.
    pub fn word(&mut self, what: &str) -> Result<String> {
        match self.peek() {
            Token::Word(w) => {
                self.pos += 1;
                Ok(w.value)
            }
            other => Err(self.error_here(format!("expected {what}, found '{other}'"))),
        }
    }

    /// Consumes an identifier (quoted or not; reserved words only when quoted).
    pub fn ident(&mut self, what: &str) -> Result<String> {
        match self.peek() {
            Token::Word(w) if w.quote_style.is_some() || !reserved(&w.value) => {
                self.pos += 1;
                Ok(w.value)
            }
            other => Err(self.error_here(format!("expected {what}, found '{other}'"))),
        }
    }

    /// Consumes a possibly dotted name (`catalog.db.table`) and returns its last part.
    pub fn object_name(&mut self, what: &str) -> Result<String> {
        let mut name = self.ident(what)?;
        while self.eat(&Token::Period) {
            name = self.ident(what)?;
        }
        Ok(name)
    }

    /// Consumes a string literal.
    pub fn string(&mut self, what: &str) -> Result<String> {
        match self.peek() {
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => {
                self.pos += 1;
                Ok(s)
            }
            other => Err(self.error_here(format!("expected {what} (a quoted string), found '{other}'"))),
        }
    }

    /// Skips to the end of the expression that starts here: up to (not including) a `,` or
    /// `)` outside parentheses, or the end. Returns the skipped tokens.
    pub fn expression_tokens(&mut self) -> Vec<TokenWithSpan> {
        let from = self.pos;
        let mut depth = 0usize;
        while !self.at_end() {
            match self.peek() {
                Token::LParen | Token::LBracket => depth += 1,
                Token::RParen | Token::RBracket if depth == 0 => break,
                Token::RParen | Token::RBracket => depth -= 1,
                Token::Comma if depth == 0 => break,
                _ => {}
            }
            self.pos += 1;
        }
        self.since(from)
    }
}

/// Words that cannot name a column unquoted in a column list.
fn reserved(word: &str) -> bool {
    ["WATERMARK", "PRIMARY", "CONSTRAINT", "SELECT", "FROM"]
        .iter()
        .any(|r| r.eq_ignore_ascii_case(word))
}
