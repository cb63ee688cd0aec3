//! The PostgreSQL sink (see the module's description for its guarantees).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::cell::{Cell, cell, supported};
use super::{PgDelivery, PostgresConfig, quoted};
use crate::connectors::{Sink, SinkFactory};
use crate::contract::error::{Result, WeirError};
use crate::contract::schema::OP_COLUMN;
use crate::contract::{NodeMetrics, TaskContext};
use crate::dead_letter::DeadLetterWriter;

/// The PostgreSQL sink factory.
pub struct PostgresSink {
    node: String,
    config: PostgresConfig,
}

impl PostgresSink {
    /// Checks `config` and makes the sink `node`.
    pub fn new(node: &str, config: PostgresConfig) -> Result<Self> {
        let bad = |m: String| WeirError::config("postgres", node, m);
        tokio_postgres::Config::from_str(&config.url).map_err(|e| bad(format!("url: {e}")))?;
        if config.table.trim().is_empty() {
            return Err(bad("table: empty".into()));
        }
        if config.batch_rows == 0 {
            return Err(bad("batch_rows: must be at least 1".into()));
        }
        if config.delivery == PgDelivery::ExactlyOnce && !config.primary_key.is_empty() {
            return Err(bad(
                "delivery: exactly_once with a primary_key would hold each upserted key's lock in a prepared \
                 transaction until its checkpoint completes, blocking the next checkpoint's upserts of the same \
                 keys; upserts are idempotent, so at_least_once ends at the same table"
                    .into(),
            ));
        }
        if let Some(p) = &config.transaction_prefix
            && (p.is_empty() || p.contains(['\'', ':']))
        {
            return Err(bad(format!(
                "transaction_prefix '{p}': must be non-empty, without quotes or colons"
            )));
        }
        Ok(PostgresSink {
            node: node.into(),
            config,
        })
    }

    fn err(&self, m: impl Into<String>) -> WeirError {
        WeirError::config("postgres", &self.node, m)
    }
}

/// `($1, $2), ($3, $4)…`: `rows` tuples of `width` parameters.
fn placeholders(rows: usize, width: usize) -> Vec<String> {
    (0..rows)
        .map(|r| {
            let p: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", p.join(", "))
        })
        .collect()
}

impl SinkFactory for PostgresSink {
    fn connector(&self) -> &'static str {
        "postgres"
    }

    fn check_schema(&self, input: &SchemaRef) -> Result<()> {
        for f in input.fields() {
            if f.name() != OP_COLUMN && !supported(f.data_type()) {
                return Err(self.err(format!(
                    "field '{}': type {} cannot be written (integers, floats, booleans, strings, dates and timestamps can)",
                    f.name(),
                    f.data_type()
                )));
            }
        }
        for k in &self.config.primary_key {
            if input.index_of(k).is_err() {
                return Err(self.err(format!("primary_key: '{k}' is not a field of the stream")));
            }
        }
        if input.index_of(OP_COLUMN).is_ok() && self.config.primary_key.is_empty() {
            return Err(self.err(
                "primary_key: the input is a changelog (it updates rows), so the sink needs the table's \
                 primary key to upsert and delete by",
            ));
        }
        Ok(())
    }

    fn create(&self, input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Sink>> {
        self.check_schema(input)?;
        let columns: Vec<usize> = (0..input.fields().len())
            .filter(|i| input.field(*i).name() != OP_COLUMN)
            .collect();
        let names: Vec<String> = columns.iter().map(|i| input.field(*i).name().clone()).collect();
        let key: Vec<usize> = self
            .config
            .primary_key
            .iter()
            .map(|k| names.iter().position(|n| n == k).expect("checked"))
            .collect();
        let prefix = self
            .config
            .transaction_prefix
            .clone()
            .unwrap_or_else(|| format!("weir-{}-{}", self.config.table, self.node).replace(['\'', ':'], "_"));
        Ok(Box::new(PgSinkTask {
            node: self.node.clone(),
            config: self.config.clone(),
            table: quoted(&self.config.table),
            columns,
            names,
            key,
            op: input.index_of(OP_COLUMN).ok(),
            client: None,
            control: None,
            statements: HashMap::new(),
            in_txn: false,
            pending: Vec::new(),
            last_barrier: 0,
            prefix,
            subtask: ctx.subtask,
            parallelism: ctx.parallelism,
            dead_letter: DeadLetterWriter::new(
                ctx.dead_letter.as_deref().map(crate::storage::resolve).transpose()?,
                &ctx.node,
                ctx.subtask,
            ),
            metrics: ctx.metrics.clone(),
        }))
    }
}

/// What an exactly-once subtask keeps in a checkpoint: its prepared transactions not yet known
/// to be committed, by checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EosState {
    subtask: usize,
    pending: Vec<(u64, String)>,
}

struct PgSinkTask {
    node: String,
    config: PostgresConfig,
    /// The table, quoted.
    table: String,
    /// The stream's columns written (all but the changelog's op), and their names.
    columns: Vec<usize>,
    names: Vec<String>,
    /// The primary key's positions among `columns`.
    key: Vec<usize>,
    /// The changelog's op column, when the input updates.
    op: Option<usize>,
    /// The connection rows are written on (in a transaction, exactly-once).
    client: Option<Client>,
    /// A second connection for committing and rolling back prepared transactions (which cannot
    /// run inside the open transaction).
    control: Option<Client>,
    /// Prepared statements by kind and rows.
    statements: HashMap<(Kind, usize), Statement>,
    in_txn: bool,
    /// Prepared transactions awaiting their checkpoint's completion.
    pending: Vec<(u64, String)>,
    last_barrier: u64,
    prefix: String,
    subtask: usize,
    parallelism: usize,
    /// Rows the database refused, with its message.
    dead_letter: DeadLetterWriter,
    metrics: Arc<NodeMetrics>,
}

impl PgSinkTask {
    fn io(&self, context: &str, e: impl std::fmt::Display) -> WeirError {
        WeirError::io(&self.node, format!("{context}: {e}"))
    }

    fn exactly_once(&self) -> bool {
        self.config.delivery == PgDelivery::ExactlyOnce
    }

    /// Connecting borrows nothing of `self` (whose dead-letter writer is not `Sync`).
    fn connect(&self) -> impl Future<Output = Result<Client>> + Send + 'static {
        super::connect::connect(super::connect::Target {
            node: self.node.clone(),
            url: self.config.url.clone(),
            user: self.config.user.clone(),
            password: self.config.password.clone(),
            attempts: self.config.connect_attempts,
        })
    }

    /// The writing connection (connected on first use; a broken one is replaced, and with it
    /// any open transaction, which then fails the task so it resumes from its checkpoint).
    async fn client(&mut self) -> Result<&Client> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
            self.statements.clear();
            if self.in_txn {
                self.in_txn = false;
                return Err(self.io("writing", "the connection closed inside a checkpoint's transaction"));
            }
        }
        if self.client.is_none() {
            self.client = Some(self.connect().await?);
        }
        Ok(self.client.as_ref().expect("connected"))
    }

    async fn control(&mut self) -> Result<&Client> {
        if self.control.as_ref().is_none_or(Client::is_closed) {
            self.control = Some(self.connect().await?);
        }
        Ok(self.control.as_ref().expect("connected"))
    }

    fn insert_sql(&self, rows: usize) -> String {
        let n = self.names.len();
        let values = placeholders(rows, n);
        let cols: Vec<String> = self.names.iter().map(|c| quoted(c)).collect();
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            self.table,
            cols.join(", "),
            values.join(", ")
        );
        if !self.key.is_empty() {
            let keys: Vec<String> = self.key.iter().map(|k| quoted(&self.names[*k])).collect();
            let set: Vec<String> = (0..n)
                .filter(|c| !self.key.contains(c))
                .map(|c| format!("{0} = EXCLUDED.{0}", quoted(&self.names[c])))
                .collect();
            sql += &format!(" ON CONFLICT ({}) DO ", keys.join(", "));
            sql += &if set.is_empty() {
                "NOTHING".to_string()
            } else {
                format!("UPDATE SET {}", set.join(", "))
            };
        }
        sql
    }

    fn delete_sql(&self, rows: usize) -> String {
        let k = self.key.len();
        let keys: Vec<String> = self.key.iter().map(|c| quoted(&self.names[*c])).collect();
        let values = placeholders(rows, k);
        format!(
            "DELETE FROM {} WHERE ({}) IN ({})",
            self.table,
            keys.join(", "),
            values.join(", ")
        )
    }

    /// The rows of `batch` to write and to delete. Without a primary key every row is
    /// written. With one, only each key's last row counts (the table ends the same, and one
    /// statement cannot upsert a key twice): written when it is `+I`/`+U`, deleted when it is
    /// `-D` or a `-U` whose `+U` is not in the batch (a filter may have dropped it).
    fn rows(&self, batch: &RecordBatch) -> Result<(Vec<usize>, Vec<usize>)> {
        if self.key.is_empty() {
            return Ok(((0..batch.num_rows()).collect(), Vec::new()));
        }
        let ops = self.op.map(|c| batch.column(c).as_string::<i32>().clone());
        let keys: Vec<&ArrayRef> = self.key.iter().map(|k| batch.column(self.columns[*k])).collect();
        let (mut writes, mut deletes) = (Vec::new(), Vec::new());
        for i in crate::keys::last_row_per_key(&keys, batch.num_rows())? {
            match ops.as_ref().map_or("+I", |o| o.value(i)) {
                "-D" | "-U" => deletes.push(i),
                _ => writes.push(i),
            }
        }
        Ok((writes, deletes))
    }

    async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let cells: Vec<Vec<Cell>> = (0..batch.num_rows())
            .map(|i| {
                self.columns
                    .iter()
                    .map(|c| cell(batch.column(*c).as_ref(), i).unwrap_or(Cell::Null))
                    .collect()
            })
            .collect();
        let (writes, deletes) = self.rows(batch)?;
        if self.exactly_once() && !self.in_txn {
            self.client()
                .await?
                .batch_execute("BEGIN")
                .await
                .map_err(|e| self.io("BEGIN", e))?;
            self.in_txn = true;
        }
        // Parameters per statement stay under PostgreSQL's 65,535.
        let per = self.config.batch_rows.min(65_535 / self.names.len().max(1)).max(1);
        for chunk in deletes.chunks(per) {
            self.rows_or_refusals(Kind::Delete, chunk, &cells, batch).await?;
        }
        for chunk in writes.chunks(per) {
            self.rows_or_refusals(Kind::Insert, chunk, &cells, batch).await?;
        }
        Ok(())
    }

    /// Runs one statement for `rows`; if the database refuses it for its data (a constraint
    /// violated, a value it cannot take), runs one per row and sends each refused row to the
    /// dead-letter output with the database's message, so the others are written and the job
    /// goes on. Anything else (a lost connection, a server shutting down) fails the task.
    async fn rows_or_refusals(
        &mut self,
        kind: Kind,
        rows: &[usize],
        cells: &[Vec<Cell>],
        batch: &RecordBatch,
    ) -> Result<()> {
        let Err(refused) = self.statement_for(kind, rows, cells).await? else {
            return Ok(());
        };
        if rows.len() == 1 {
            return self.refuse(batch, rows[0], &refused).await;
        }
        for &row in rows {
            if let Err(refused) = self.statement_for(kind, &[row], cells).await? {
                self.refuse(batch, row, &refused).await?;
            }
        }
        Ok(())
    }

    /// One `kind` statement for `rows`: `Ok(Err(message))` when the database refused the data.
    /// Inside a checkpoint's transaction the statement runs under a savepoint (sent in the same
    /// round trip), so a refusal undoes only it and the transaction goes on.
    async fn statement_for(
        &mut self,
        kind: Kind,
        rows: &[usize],
        cells: &[Vec<Cell>],
    ) -> Result<std::result::Result<(), String>> {
        let statement = match self.statements.get(&(kind, rows.len())) {
            Some(s) => s.clone(),
            None => {
                let sql = match kind {
                    Kind::Insert => self.insert_sql(rows.len()),
                    Kind::Delete => self.delete_sql(rows.len()),
                };
                let s = self
                    .client()
                    .await?
                    .prepare(&sql)
                    .await
                    .map_err(|e| self.io(&format!("preparing {}", kind.verb()), db_message(&e)))?;
                self.statements.insert((kind, rows.len()), s.clone());
                s
            }
        };
        let params: Vec<&(dyn ToSql + Sync)> = match kind {
            Kind::Insert => rows
                .iter()
                .flat_map(|r| cells[*r].iter().map(|c| c as &(dyn ToSql + Sync)))
                .collect(),
            Kind::Delete => rows
                .iter()
                .flat_map(|r| self.key.iter().map(move |k| &cells[*r][*k] as &(dyn ToSql + Sync)))
                .collect(),
        };
        let in_txn = self.in_txn;
        let what = format!("{} {}", kind.verb(), self.table);
        self.client().await?;
        let (node, client) = (&self.node, self.client.as_ref().expect("connected"));
        let result = if in_txn {
            let (savepoint, result, _) = futures::join!(
                client.batch_execute("SAVEPOINT weir_rows"),
                client.execute(&statement, &params),
                client.batch_execute("RELEASE SAVEPOINT weir_rows"),
            );
            savepoint.map_err(|e| WeirError::io(node, format!("SAVEPOINT: {}", db_message(&e))))?;
            result
        } else {
            client.execute(&statement, &params).await
        };
        match result {
            Ok(_) => Ok(Ok(())),
            Err(e) if refused_for_its_data(&e) => {
                if in_txn {
                    client
                        .batch_execute("ROLLBACK TO SAVEPOINT weir_rows; RELEASE SAVEPOINT weir_rows")
                        .await
                        .map_err(|e| WeirError::io(node, format!("ROLLBACK TO SAVEPOINT: {}", db_message(&e))))?;
                }
                Ok(Err(db_message(&e)))
            }
            Err(e) => Err(WeirError::io(node, format!("{what}: {}", db_message(&e)))),
        }
    }

    /// Sends row `row` of `batch` to the dead-letter output with the database's `reason`.
    async fn refuse(&mut self, batch: &RecordBatch, row: usize, reason: &str) -> Result<()> {
        let n = self
            .metrics
            .dead_letters
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n < 5 {
            tracing::warn!(
                node = self.node,
                subtask = self.subtask,
                reason,
                "row refused by the database, sent to the dead-letter output"
            );
        }
        let mut raw = Vec::new();
        {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut raw);
            w.write(&batch.slice(row, 1))
                .map_err(|e| self.io("dead-letter output", e))?;
            w.finish().map_err(|e| self.io("dead-letter output", e))?;
        }
        let raw = String::from_utf8_lossy(&raw).trim_end().to_string();
        self.dead_letter.write(&raw, &format!("{}: {reason}", self.table)).await
    }

    fn gid(&self, checkpoint: u64) -> String {
        format!("{}:{}:{checkpoint}", self.prefix, self.subtask)
    }

    /// Prepares the open transaction as checkpoint `id`'s, if rows were written since the last.
    async fn prepare(&mut self, id: u64) -> Result<()> {
        if !self.in_txn {
            return Ok(());
        }
        let gid = self.gid(id);
        let sql = format!("PREPARE TRANSACTION '{gid}'");
        self.client()
            .await?
            .batch_execute(&sql)
            .await
            .map_err(|e| self.io(&sql, db_message(&e)))?;
        self.in_txn = false;
        self.pending.push((id, gid));
        Ok(())
    }

    /// Commits prepared transactions (one already committed is fine: a restored job may commit
    /// again what the failed one did).
    async fn commit(&mut self, gids: Vec<String>) -> Result<()> {
        for gid in gids {
            self.end_prepared("COMMIT", &gid).await?;
        }
        Ok(())
    }

    /// `COMMIT` or `ROLLBACK` the prepared transaction `gid` (gone already is fine).
    async fn end_prepared(&mut self, verb: &str, gid: &str) -> Result<()> {
        let sql = format!("{verb} PREPARED '{gid}'");
        match self.control().await?.batch_execute(&sql).await {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_OBJECT) => Ok(()),
            Err(e) => Err(self.io(&sql, db_message(&e))),
        }
    }

    /// Rolls back the prepared transactions of (old) subtask `subtask` still there.
    async fn roll_back(&mut self, subtask: usize) -> Result<()> {
        let mine = format!("{}:{subtask}:", self.prefix);
        let rows = self
            .control()
            .await?
            .query(
                "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()",
                &[],
            )
            .await
            .map_err(|e| self.io("listing prepared transactions", db_message(&e)))?;
        for row in rows {
            let gid: String = row.get(0);
            let ours = gid.strip_prefix(&mine).is_some_and(|rest| rest.parse::<u64>().is_ok());
            if ours {
                tracing::info!(
                    node = self.node,
                    gid,
                    "rolling back a transaction no completed checkpoint covers"
                );
                self.end_prepared("ROLLBACK", &gid).await?;
            }
        }
        Ok(())
    }
}

/// A statement refused for the rows it carries — SQLSTATE class 22 (data exception: a value out
/// of range, bad text for a type) or 23 (integrity constraint violation: NOT NULL, UNIQUE,
/// CHECK, FOREIGN KEY) — rather than for the connection or the server.
fn refused_for_its_data(e: &tokio_postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23"))
}

/// The kinds of statement the sink runs per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Insert,
    Delete,
}

impl Kind {
    fn verb(self) -> &'static str {
        match self {
            Kind::Insert => "INSERT INTO",
            Kind::Delete => "DELETE FROM",
        }
    }
}

/// The server's message (and detail) of a database error, or the client's.
fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{} ({d}) [SQLSTATE {}]", db.message(), db.code().code()),
            None => format!("{} [SQLSTATE {}]", db.message(), db.code().code()),
        },
        None => e.to_string(),
    }
}

#[async_trait]
impl Sink for PgSinkTask {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.write(&batch).await
    }

    async fn finish(&mut self) -> Result<()> {
        self.dead_letter.close().await?;
        if self.exactly_once() {
            // The rows after the last barrier wait for the end of the whole job (commit_final).
            let id = self.last_barrier + 1;
            return self.prepare(id).await;
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<()> {
        self.dead_letter.close().await?;
        if self.in_txn
            && let Some(c) = &self.client
        {
            // What no checkpoint covers is written again by the resumed job.
            let _ = c.batch_execute("ROLLBACK").await;
            self.in_txn = false;
        }
        Ok(())
    }

    async fn commit_final(&mut self) -> Result<()> {
        let gids = std::mem::take(&mut self.pending).into_iter().map(|(_, g)| g).collect();
        self.commit(gids).await
    }

    async fn snapshot(&mut self, checkpoint_id: u64) -> Result<Option<Vec<u8>>> {
        self.last_barrier = checkpoint_id;
        if !self.exactly_once() {
            // Every batch before the barrier was written (autocommit) before this returns.
            return Ok(None);
        }
        self.prepare(checkpoint_id).await?;
        let state = EosState {
            subtask: self.subtask,
            pending: self.pending.clone(),
        };
        Ok(Some(
            crate::contract::state::encode(&state).map_err(|e| self.io("checkpoint", e))?,
        ))
    }

    async fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        let (done, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(id, _)| *id <= checkpoint_id);
        self.pending = later;
        self.commit(done.into_iter().map(|(_, g)| g).collect()).await
    }

    async fn restore(&mut self, _own: Option<Vec<u8>>, union: Vec<Vec<u8>>) -> Result<()> {
        if !self.exactly_once() {
            return Ok(());
        }
        // The restored checkpoint is complete: each old subtask's prepared transactions it
        // names are committed, its later ones rolled back, by one new subtask.
        let mut seen_mine = false;
        for bytes in union {
            let state: EosState = crate::contract::state::decode(&bytes).map_err(|e| self.io("restoring", e))?;
            seen_mine |= state.subtask == self.subtask;
            if state.subtask % self.parallelism != self.subtask {
                continue;
            }
            self.commit(state.pending.into_iter().map(|(_, g)| g).collect()).await?;
            self.roll_back(state.subtask).await?;
        }
        if !seen_mine {
            // A fresh start, or a subtask new with a larger parallelism: nothing of an earlier
            // run under this subtask's name is covered by a checkpoint.
            self.roll_back(self.subtask).await?;
        }
        Ok(())
    }
}
