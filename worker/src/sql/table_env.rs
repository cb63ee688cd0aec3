//! The Table API in Rust (Flink's `StreamTableEnvironment`): SQL statements and queries over
//! tables declared with DDL or registered from DataStreams, and queries turned back into
//! DataStreams — append-only ones as they are, updating ones as a changelog.

use std::sync::{Arc, Mutex};

use datafusion::logical_expr::LogicalPlan;

use super::Session;
use super::lower::Lowering;
use crate::api::{DataStream, StreamExecutionEnvironment};
use crate::contract::error::{Result, WeirError};
use crate::operators::running_aggregate::OP_COLUMN;

/// SQL over a [`StreamExecutionEnvironment`]: `INSERT`s and the streams it returns become part
/// of that environment's job (run it with `env.execute`).
#[derive(Clone)]
pub struct TableEnvironment {
    session: Arc<Mutex<Session>>,
    queries: Arc<std::sync::atomic::AtomicUsize>,
}

/// A query's result, planned and optimized, not yet part of the job.
#[derive(Clone)]
pub struct Table {
    plan: LogicalPlan,
}

impl Table {
    /// The optimized logical plan, as text.
    pub fn explain(&self) -> String {
        self.plan.display_indent().to_string()
    }

    /// Column names.
    pub fn columns(&self) -> Vec<String> {
        self.plan.schema().fields().iter().map(|f| f.name().clone()).collect()
    }
}

impl TableEnvironment {
    /// A table environment adding to `env`'s job.
    pub fn create(env: &StreamExecutionEnvironment) -> Self {
        TableEnvironment {
            session: Arc::new(Mutex::new(Session::new(env.clone(), "sql", "sql-job"))),
            queries: Arc::default(),
        }
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Carries out SQL statements (`;`-separated): DDL, views and `SET` change the catalog;
    /// `INSERT INTO` (and a bare `SELECT`, printed) add to the job.
    pub fn execute_sql(&self, sql: &str) -> Result<()> {
        self.session().execute(sql)
    }

    /// Plans a query.
    pub fn sql_query(&self, query: &str) -> Result<Table> {
        Ok(Table {
            plan: self.session().query(query)?,
        })
    }

    /// Registers `stream` as the table `name`, its columns those of the stream (Flink's
    /// `createTemporaryView`).
    pub async fn create_temporary_view(&self, name: &str, stream: &DataStream) -> Result<()> {
        let schema = stream.schema().await?;
        self.session().catalog.add_stream(name, schema, stream.clone())
    }

    /// A stream of `stream`'s rows as a table (registered under a generated name).
    pub async fn from_data_stream(&self, stream: &DataStream) -> Result<Table> {
        let n = self.queries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("__weir_stream_{n}");
        self.create_temporary_view(&name, stream).await?;
        self.sql_query(&format!("SELECT * FROM `{name}`"))
    }

    fn lower(&self, table: &Table) -> Result<(DataStream, bool)> {
        let n = self.queries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let session = self.session();
        let mut lowering = Lowering::new(
            &session.job.env,
            &session.catalog,
            &format!("table-{n}"),
            &session.job.options,
        )?;
        lowering.stream(&table.plan)
    }

    /// The table's rows as a stream; an updating table is refused (use
    /// [`TableEnvironment::to_changelog_stream`]).
    pub fn to_data_stream(&self, table: &Table) -> Result<DataStream> {
        if super::lower::is_updating(&table.plan) {
            return Err(WeirError::plan(
                "to_data_stream: the table updates its results (a GROUP BY without a window); use to_changelog_stream",
            ));
        }
        Ok(self.lower(table)?.0)
    }

    /// The table as a changelog: its columns, then `op` (`+I`, `-U`, `+U`, `-D`; Flink's
    /// `RowKind`). An append-only table's rows are all `+I`.
    pub fn to_changelog_stream(&self, table: &Table) -> Result<DataStream> {
        let (stream, updating) = self.lower(table)?;
        let op = if updating {
            format!("`{OP_COLUMN}` AS op")
        } else {
            "'+I' AS op".to_string()
        };
        let mut items = vec![op];
        items.extend(table.columns().iter().map(|c| format!("`{c}`")));
        let refs: Vec<&str> = items.iter().map(String::as_str).collect();
        Ok(stream.select(&refs))
    }
}
