//! The PostgreSQL table source: a bounded scan of a table, split into ranges of an integer,
//! unique, non-null column (the primary key by default), read page by page in that column's
//! order so a restored job resumes after the last value it emitted.
//!
//! The ranges are fixed when the job first starts (from `lower_bound`/`upper_bound`, or the
//! column's min and max then); the first is open below and the last open above, so a row
//! inserted outside them later is still read. Subtask `i` of `p` reads ranges `j` with
//! `j % p == i`; each range's progress is the source's checkpointed position, handed to other
//! subtasks when the job is restored at another parallelism.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use tokio_postgres::{Client, Row};

use super::connect::{Target, connect};
use super::quoted;
use crate::connectors::format::SchemaSpec;
use crate::connectors::{Source, SourceContext, SourceFactory};
use crate::contract::TaskContext;
use crate::contract::error::{Result, WeirError};

/// Options of `connector: postgres` as a source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresScanConfig {
    /// `postgresql://user[:password]@host[:port]/database[?options]`.
    pub url: String,
    /// User name, over the URL's.
    #[serde(default)]
    pub user: Option<String>,
    /// Password, over the URL's.
    #[serde(default)]
    pub password: Option<String>,
    /// The table read (`schema.table` allowed).
    pub table: String,
    /// The columns read, in this order (default: all of them).
    #[serde(default)]
    pub columns: Vec<String>,
    /// The columns read and the types they are cast to (`"id BIGINT, name STRING"`; default:
    /// the table's columns in the Arrow types their PostgreSQL types map to). SQL tables pass
    /// their declared schema here.
    #[serde(default)]
    pub schema: Option<SchemaSpec>,
    /// The column the scan is split and ordered by: integer, unique and NOT NULL (default: the
    /// table's primary key when it is one such column).
    #[serde(default)]
    pub partition_column: Option<String>,
    /// Ranges the scan is split into (default 8; each subtask reads every p-th).
    #[serde(default = "partitions")]
    pub partitions: usize,
    /// The partition column's expected lowest and highest values (default: the table's min and
    /// max when the job first starts); only the split points follow from them.
    #[serde(default)]
    pub lower_bound: Option<i64>,
    /// See `lower_bound`.
    #[serde(default)]
    pub upper_bound: Option<i64>,
    /// Rows per query (default 10,000).
    #[serde(default = "fetch_rows")]
    pub fetch_rows: usize,
    /// Attempts to connect before giving up (default 5; a second, then doubling).
    #[serde(default = "attempts")]
    pub connect_attempts: u32,
}

fn partitions() -> usize {
    8
}
fn fetch_rows() -> usize {
    10_000
}
fn attempts() -> u32 {
    5
}

/// How a column is selected and decoded.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    I64,
    I32,
    I16,
    F64,
    F32,
    Bool,
    Text,
    /// `timestamp`: ms since the epoch.
    Timestamp,
    /// `timestamptz`: ms since the epoch, UTC.
    TimestampTz,
    /// `date`: days since the epoch.
    Date,
}

impl Kind {
    /// The kind for a PostgreSQL type name (`pg_type.typname`); anything else is read as text.
    fn of(typname: &str) -> Kind {
        match typname {
            "int8" => Kind::I64,
            "int4" => Kind::I32,
            "int2" => Kind::I16,
            "float8" => Kind::F64,
            "float4" => Kind::F32,
            "bool" => Kind::Bool,
            "timestamp" => Kind::Timestamp,
            "timestamptz" => Kind::TimestampTz,
            "date" => Kind::Date,
            _ => Kind::Text,
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Kind::I64 => DataType::Int64,
            Kind::I32 => DataType::Int32,
            Kind::I16 => DataType::Int16,
            Kind::F64 => DataType::Float64,
            Kind::F32 => DataType::Float32,
            Kind::Bool => DataType::Boolean,
            Kind::Text => DataType::Utf8,
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
            Kind::TimestampTz => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            Kind::Date => DataType::Date32,
        }
    }

    /// The select expression for column `c` (quoted) decoding as this kind.
    fn select(self, c: &str) -> String {
        match self {
            Kind::Timestamp | Kind::TimestampTz => format!("(EXTRACT(EPOCH FROM {c}) * 1000)::int8"),
            Kind::Date => format!("({c} - DATE '1970-01-01')"),
            Kind::Text => format!("{c}::text"),
            _ => c.to_string(),
        }
    }

    fn is_integer(self) -> bool {
        matches!(self, Kind::I64 | Kind::I32 | Kind::I16)
    }
}

/// What a scan reads: columns, their kinds, the partition column and the ranges.
#[derive(Debug)]
struct Plan {
    /// What the source emits.
    schema: SchemaRef,
    kinds: Vec<Kind>,
    /// `SELECT <columns>, <partition column>::int8 FROM <table>`.
    select: String,
    partition_column: String,
    ranges: Vec<Range>,
}

/// Rows with `after < column <= until` (`None`: unbounded), read up to `after`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Range {
    after: Option<i64>,
    until: Option<i64>,
}

/// The PostgreSQL table source factory.
pub struct PostgresSource {
    node: String,
    config: PostgresScanConfig,
    plan: OnceCell<Arc<Plan>>,
}

impl PostgresSource {
    /// Checks `config` and makes the source `node`.
    pub fn new(node: &str, config: PostgresScanConfig) -> Result<Self> {
        let bad = |m: String| WeirError::config("postgres", node, m);
        <tokio_postgres::Config as std::str::FromStr>::from_str(&config.url).map_err(|e| bad(format!("url: {e}")))?;
        if config.table.trim().is_empty() {
            return Err(bad("table: empty".into()));
        }
        if config.partitions == 0 {
            return Err(bad("partitions: must be at least 1".into()));
        }
        if config.fetch_rows == 0 {
            return Err(bad("fetch_rows: must be at least 1".into()));
        }
        if let (Some(lo), Some(hi)) = (config.lower_bound, config.upper_bound)
            && lo > hi
        {
            return Err(bad(format!("lower_bound {lo} is above upper_bound {hi}")));
        }
        Ok(PostgresSource {
            node: node.into(),
            config,
            plan: OnceCell::new(),
        })
    }

    fn bad(&self, m: impl Into<String>) -> WeirError {
        WeirError::config("postgres", &self.node, m.into())
    }

    fn io(&self, context: &str, e: impl std::fmt::Display) -> WeirError {
        WeirError::io(&self.node, format!("{context}: {e}"))
    }

    fn connect(&self) -> impl Future<Output = Result<Client>> + Send + 'static {
        connect(Target {
            node: self.node.clone(),
            url: self.config.url.clone(),
            user: self.config.user.clone(),
            password: self.config.password.clone(),
            attempts: self.config.connect_attempts,
        })
    }

    /// Reads the table's columns, finds the partition column and splits its range (once per
    /// process: the ranges are checkpointed with the progress, so a restored job keeps them).
    async fn plan(&self) -> Result<Arc<Plan>> {
        self.plan
            .get_or_try_init(|| async { self.make_plan().await.map(Arc::new) })
            .await
            .cloned()
    }

    async fn make_plan(&self) -> Result<Plan> {
        let client = self.connect().await?;
        let table = &self.config.table;
        let columns = client
            .query(
                "SELECT a.attname::text, t.typname::text, a.attnotnull, a.attnum::int4
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
                 ORDER BY a.attnum",
                &[table],
            )
            .await
            .map_err(|e| self.io("reading the table's columns", e))?;
        if columns.is_empty() {
            return Err(self.bad(format!(
                "table: no table '{table}' in the database (or it has no columns)"
            )));
        }
        let all: Vec<(String, Kind, bool, i32)> = columns
            .iter()
            .map(|r| (r.get(0), Kind::of(r.get::<_, &str>(1)), r.get(2), r.get(3)))
            .collect();
        let declared = match &self.config.schema {
            Some(spec) => Some(spec.to_schema().map_err(|e| self.bad(format!("schema: {e}")))?),
            None => None,
        };
        let wanted: Vec<String> = match &declared {
            Some(d) => d.fields().iter().map(|f| f.name().clone()).collect(),
            None => self.config.columns.clone(),
        };
        let chosen: Vec<&(String, Kind, bool, i32)> = if wanted.is_empty() {
            all.iter().collect()
        } else {
            wanted
                .iter()
                .map(|c| {
                    all.iter().find(|(n, ..)| n == c).ok_or_else(|| {
                        let names: Vec<&str> = all.iter().map(|(n, ..)| n.as_str()).collect();
                        self.bad(format!(
                            "columns: '{table}' has no column '{c}' (it has {})",
                            names.join(", ")
                        ))
                    })
                })
                .collect::<Result<_>>()?
        };
        let partition_column = match &self.config.partition_column {
            Some(c) => c.clone(),
            None => {
                let key = client
                    .query(
                        "SELECT a.attname::text FROM pg_index i
                         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                         WHERE i.indrelid = to_regclass($1) AND i.indisprimary",
                        &[table],
                    )
                    .await
                    .map_err(|e| self.io("reading the table's primary key", e))?;
                match key.as_slice() {
                    [one] => one.get(0),
                    _ => {
                        return Err(self.bad(format!(
                            "partition_column: '{table}' has no single-column primary key; name an integer, unique, NOT NULL column to split and order the scan by"
                        )));
                    }
                }
            }
        };
        let Some((_, kind, not_null, attnum)) = all.iter().find(|(n, ..)| *n == partition_column) else {
            return Err(self.bad(format!(
                "partition_column: '{table}' has no column '{partition_column}'"
            )));
        };
        if !kind.is_integer() || !not_null {
            return Err(self.bad(format!(
                "partition_column '{partition_column}': must be an integer column declared NOT NULL (the scan reads ranges of it)"
            )));
        }
        let unique = client
            .query(
                "SELECT 1 FROM pg_index i WHERE i.indrelid = to_regclass($1) AND i.indisunique
                 AND i.indnkeyatts = 1 AND i.indkey[0] = $2::int2 AND i.indpred IS NULL",
                &[table, &(*attnum as i16)],
            )
            .await
            .map_err(|e| self.io("reading the table's indexes", e))?;
        if unique.is_empty() {
            return Err(self.bad(format!(
                "partition_column '{partition_column}': must be unique (a primary key or a unique index): a restored scan resumes after the last value it read"
            )));
        }
        let pc = quoted(&partition_column);
        let (lo, hi) = match (self.config.lower_bound, self.config.upper_bound) {
            (Some(lo), Some(hi)) => (Some(lo), Some(hi)),
            (lo, hi) => {
                let sql = format!("SELECT min({pc})::int8, max({pc})::int8 FROM {}", quoted(table));
                let row = client.query_one(&sql, &[]).await.map_err(|e| self.io(&sql, e))?;
                (lo.or(row.get(0)), hi.or(row.get(1)))
            }
        };
        let ranges = split(lo, hi, self.config.partitions);
        let read: Vec<Field> = chosen
            .iter()
            .map(|(n, k, not_null, _)| Field::new(n, k.data_type(), !not_null))
            .collect();
        let schema = match declared {
            Some(d) => {
                for (f, r) in d.fields().iter().zip(&read) {
                    if !arrow::compute::can_cast_types(r.data_type(), f.data_type()) {
                        return Err(self.bad(format!(
                            "schema: column '{}' is {} in the table and cannot be read as {}",
                            f.name(),
                            r.data_type(),
                            f.data_type()
                        )));
                    }
                }
                d
            }
            None => Arc::new(Schema::new(read)),
        };
        let mut select: Vec<String> = chosen.iter().map(|(n, k, ..)| k.select(&quoted(n))).collect();
        select.push(format!("{pc}::int8"));
        Ok(Plan {
            schema,
            kinds: chosen.iter().map(|(_, k, ..)| *k).collect(),
            select: format!("SELECT {} FROM {}", select.join(", "), quoted(table)),
            partition_column: pc,
            ranges,
        })
    }
}

/// `n` ranges over `[lo, hi]` of about equal width, the first open below and the last open
/// above (one open range when the table is empty).
fn split(lo: Option<i64>, hi: Option<i64>, n: usize) -> Vec<Range> {
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return vec![Range {
            after: None,
            until: None,
        }];
    };
    let width = (hi as i128 - lo as i128 + 1).max(1);
    let n = (n as i128).min(width).max(1);
    let mut cuts: Vec<i64> = (1..n).map(|k| (lo as i128 + width * k / n - 1) as i64).collect();
    cuts.dedup();
    let mut ranges = Vec::with_capacity(cuts.len() + 1);
    let mut after = None;
    for c in cuts {
        ranges.push(Range { after, until: Some(c) });
        after = Some(c);
    }
    ranges.push(Range { after, until: None });
    ranges
}

#[async_trait]
impl SourceFactory for PostgresSource {
    fn connector(&self) -> &'static str {
        "postgres"
    }

    async fn schema(&self) -> Result<SchemaRef> {
        Ok(self.plan().await?.schema.clone())
    }

    fn positions_redistributable(&self) -> bool {
        true
    }

    fn create(&self, _schema: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Source>> {
        let plan = self
            .plan
            .get()
            .cloned()
            .ok_or_else(|| WeirError::Internal("postgres source created before its schema was read".into()))?;
        Ok(Box::new(ScanTask {
            factory: PostgresSource {
                node: self.node.clone(),
                config: self.config.clone(),
                plan: OnceCell::new(),
            },
            plan,
            subtask: ctx.subtask,
            parallelism: ctx.parallelism,
        }))
    }
}

struct ScanTask {
    /// The factory's options, for connecting and messages (the plan is `plan`).
    factory: PostgresSource,
    plan: Arc<Plan>,
    subtask: usize,
    parallelism: usize,
}

impl ScanTask {
    /// The ranges this subtask reads, with their progress: its own from a checkpoint, its share
    /// of every old subtask's after a rescale, or its share of the plan on a fresh start.
    fn ranges(&self, ctx: &mut dyn SourceContext) -> Result<Vec<Range>> {
        if let Some(own) = ctx.restored_position::<Vec<Range>>()? {
            return Ok(own);
        }
        let union: Vec<Vec<Range>> = ctx.restored_positions_union()?;
        let mut all: Vec<Range> = if union.is_empty() {
            self.plan.ranges.clone()
        } else {
            union.into_iter().flatten().collect()
        };
        all.sort_by_key(|r| r.until.unwrap_or(i64::MAX));
        Ok(all
            .into_iter()
            .enumerate()
            .filter(|(j, _)| j % self.parallelism == self.subtask)
            .map(|(_, r)| r)
            .collect())
    }

    /// One page of range `r` as a batch, and the last partition value in it.
    async fn page(&self, client: &Client, r: Range) -> Result<(RecordBatch, Option<i64>)> {
        let pc = &self.plan.partition_column;
        let mut sql = self.plan.select.clone();
        let mut conditions = Vec::new();
        let mut params: Vec<i64> = Vec::new();
        if let Some(a) = r.after {
            params.push(a);
            conditions.push(format!("{pc} > ${}::int8", params.len()));
        }
        if let Some(u) = r.until {
            params.push(u);
            conditions.push(format!("{pc} <= ${}::int8", params.len()));
        }
        if !conditions.is_empty() {
            sql += &format!(" WHERE {}", conditions.join(" AND "));
        }
        sql += &format!(" ORDER BY {pc} LIMIT {}", self.factory.config.fetch_rows);
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let rows = client
            .query(&sql, &refs)
            .await
            .map_err(|e| self.factory.io(&format!("reading {}", self.factory.config.table), e))?;
        let last = rows.last().map(|row| row.get::<_, i64>(self.plan.kinds.len()));
        Ok((self.batch(&rows)?, last))
    }

    fn batch(&self, rows: &[Row]) -> Result<RecordBatch> {
        let n = rows.len();
        let columns: Vec<ArrayRef> = self
            .plan
            .kinds
            .iter()
            .enumerate()
            .map(|(c, kind)| -> ArrayRef {
                macro_rules! column {
                    ($builder:ty, $t:ty) => {{
                        let mut b = <$builder>::with_capacity(n);
                        for row in rows {
                            b.append_option(row.get::<_, Option<$t>>(c));
                        }
                        Arc::new(b.finish())
                    }};
                }
                match kind {
                    Kind::I64 => column!(Int64Builder, i64),
                    Kind::I32 => column!(Int32Builder, i32),
                    Kind::I16 => column!(Int16Builder, i16),
                    Kind::F64 => column!(Float64Builder, f64),
                    Kind::F32 => column!(Float32Builder, f32),
                    Kind::Bool => column!(BooleanBuilder, bool),
                    Kind::Date => column!(Date32Builder, i32),
                    Kind::Timestamp => column!(TimestampMillisecondBuilder, i64),
                    Kind::TimestampTz => {
                        let mut b = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
                        for row in rows {
                            b.append_option(row.get::<_, Option<i64>>(c));
                        }
                        Arc::new(b.finish())
                    }
                    Kind::Text => {
                        let mut b = StringBuilder::with_capacity(n, n * 16);
                        for row in rows {
                            b.append_option(row.get::<_, Option<&str>>(c));
                        }
                        Arc::new(b.finish())
                    }
                }
            })
            .collect();
        let columns = columns
            .into_iter()
            .zip(self.plan.schema.fields())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(c)
                } else {
                    arrow::compute::cast(&c, f.data_type())
                }
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(RecordBatch::try_new_with_options(
            self.plan.schema.clone(),
            columns,
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(n)),
        )?)
    }
}

#[async_trait]
impl Source for ScanTask {
    async fn run(&mut self, ctx: &mut dyn SourceContext) -> Result<()> {
        let mut ranges = self.ranges(ctx)?;
        ctx.set_position(&ranges)?;
        if ranges.is_empty() {
            return Ok(());
        }
        let client = self.factory.connect().await?;
        while !ranges.is_empty() {
            let (batch, last) = self.page(&client, ranges[0]).await?;
            let full = batch.num_rows() >= self.factory.config.fetch_rows;
            if batch.num_rows() > 0 {
                ctx.collect(batch).await?;
            }
            match last {
                Some(v) if full => ranges[0].after = Some(v),
                _ => {
                    ranges.remove(0);
                }
            }
            ctx.set_position(&ranges)?;
            if ctx.is_cancelled() {
                return Ok(());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_value_once_with_open_ends() {
        let r = split(Some(1), Some(100), 4);
        assert_eq!(r.len(), 4);
        assert_eq!(
            r[0],
            Range {
                after: None,
                until: Some(25)
            }
        );
        assert_eq!(
            r[1],
            Range {
                after: Some(25),
                until: Some(50)
            }
        );
        assert_eq!(
            r[3],
            Range {
                after: Some(75),
                until: None
            }
        );
        // Fewer values than partitions: one range per value at most.
        assert_eq!(split(Some(5), Some(6), 8).len(), 2);
        // An empty table: one range, open both ways.
        assert_eq!(
            split(None, None, 8),
            vec![Range {
                after: None,
                until: None
            }]
        );
        // Extremes do not overflow.
        let r = split(Some(i64::MIN), Some(i64::MAX), 3);
        assert_eq!(r.len(), 3);
        assert!(r[0].until < r[1].until);
    }
}
