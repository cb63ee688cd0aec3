//! PostgreSQL: a table source (a bounded scan split into ranges of an integer key, resumable)
//! and a sink into an existing table, appended (`INSERT`) or upserted by its primary key
//! (`INSERT … ON CONFLICT (key) DO UPDATE`; a retraction of an updating input deletes its key's
//! row). Rows the database refuses for their data (SQLSTATE classes 22 and 23) go to the
//! dead-letter output with its message, one by one, and the job goes on.
//!
//! - `at_least_once` (default): each batch is written as it arrives (autocommit), so everything
//!   before a checkpoint's barrier is in the table before the checkpoint completes; after a
//!   failure the rows since the checkpoint are written again (an upsert makes that harmless).
//! - `exactly_once`: each checkpoint's rows are written in one transaction, prepared at the
//!   barrier (`PREPARE TRANSACTION`) and committed when the checkpoint completes; a restored job
//!   commits the prepared transactions its checkpoint names and rolls back the later ones, so
//!   nothing is lost or written twice. The server needs `max_prepared_transactions` > 0.
//!
//! Client: `tokio-postgres` (the PostgreSQL wire protocol, no libpq).

mod cell;
mod connect;
mod sink;
mod source;

use serde::Deserialize;

pub use sink::PostgresSink;
pub use source::{PostgresScanConfig, PostgresSource};

/// Delivery guarantee of the PostgreSQL sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PgDelivery {
    /// Written as it arrives; rows since the last checkpoint are written again after a failure.
    #[default]
    AtLeastOnce,
    /// Each checkpoint's rows in one prepared transaction, committed with the checkpoint.
    ExactlyOnce,
}

/// Options of `connector: postgres`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgresql://user[:password]@host[:port]/database[?options]`.
    pub url: String,
    /// User name, over the URL's.
    #[serde(default)]
    pub user: Option<String>,
    /// Password, over the URL's.
    #[serde(default)]
    pub password: Option<String>,
    /// The table rows go to (`schema.table` allowed); it must exist, with a column named as
    /// each of the stream's fields.
    pub table: String,
    /// The table's primary key columns: rows are upserted by them, and retractions delete.
    /// Empty: rows are appended.
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// Rows per `INSERT` statement (default 500).
    #[serde(default = "batch_rows")]
    pub batch_rows: usize,
    /// `at_least_once` (default) or `exactly_once`.
    #[serde(default)]
    pub delivery: PgDelivery,
    /// Prefix of the prepared transactions' names (default `weir-<table>-<node>`): unique per
    /// job writing to the database.
    #[serde(default)]
    pub transaction_prefix: Option<String>,
    /// Attempts to connect before giving up (default 5; a second, then doubling).
    #[serde(default = "attempts")]
    pub connect_attempts: u32,
}

/// `a.b` as `"a"."b"`.
fn quoted(name: &str) -> String {
    name.split('.')
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

fn batch_rows() -> usize {
    500
}
fn attempts() -> u32 {
    5
}
