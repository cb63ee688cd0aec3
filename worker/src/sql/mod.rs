//! Flink SQL on Weir: a script of `CREATE TABLE … WITH (…)`, views, `SET`, `INSERT INTO` (one
//! or a statement set) and queries becomes one job. The front end parses Flink's spelling
//! ([`script`], [`ddl`]); DataFusion plans and optimizes each query against the [`catalog`];
//! the [`lower`] pass turns the optimized plan into Weir's graph through the DataStream API.

pub mod catalog;
pub mod connectors;
mod date_parts;
pub mod ddl;
pub mod debezium;
pub mod functions;
mod interval;
mod lookup;
pub mod lower;
pub mod script;
pub mod source_calc;
mod string_functions;
pub mod table_env;
pub mod tokens;
pub mod types;

use std::time::Duration;

use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::tokenizer::Location;

use crate::api::StreamExecutionEnvironment;
use crate::contract::error::{Result, WeirError};
use catalog::Catalog;
use script::{Located, Statement};
use tokens::located;

/// A SQL script built into a job.
pub struct SqlJob {
    /// The job, ready to run.
    pub env: StreamExecutionEnvironment,
    /// Its name (`SET 'pipeline.name'`, else given by the caller).
    pub name: String,
    /// The optimized plan of each statement that writes, as text (what `EXPLAIN` shows).
    pub plans: Vec<String>,
    /// The script asked for `EXPLAIN` only.
    pub explain_only: bool,
    /// What `SET` chose for the planner.
    pub options: PlanOptions,
}

/// Planner options `SET` chooses.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// `table.optimizer.source.predicate-pushdown-enabled`: filters the source can apply itself
    /// go into it (a Nexmark table filtered by `event_type` generates only that kind).
    pub pushdown: bool,
    /// `table.exec.mini-batch.enabled`.
    pub mini_batch: bool,
    /// `table.exec.mini-batch.allow-latency`.
    pub mini_batch_latency: Option<Duration>,
    /// `table.exec.mini-batch.size`.
    pub mini_batch_size: Option<usize>,
    /// `table.exec.state.ttl`: how long unbounded operator state (regular joins, group
    /// aggregates, Top-N, deduplication) lives after its last write; none or zero: forever.
    pub state_ttl: Option<Duration>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            pushdown: true,
            mini_batch: false,
            mini_batch_latency: None,
            mini_batch_size: None,
            state_ttl: None,
        }
    }
}

impl PlanOptions {
    /// The mini-batch an updating aggregate's changelog is folded in (latency ms, rows), if
    /// enabled; enabled without a positive latency and size is an error naming the option, as
    /// in Flink.
    pub fn mini_batch(&self) -> Result<Option<(i64, usize)>> {
        if !self.mini_batch {
            return Ok(None);
        }
        let latency = self.mini_batch_latency.filter(|d| !d.is_zero()).ok_or_else(|| {
            WeirError::plan(
                "'table.exec.mini-batch.enabled' is true, so 'table.exec.mini-batch.allow-latency' must be set to a positive duration",
            )
        })?;
        let size = self.mini_batch_size.ok_or_else(|| {
            WeirError::plan(
                "'table.exec.mini-batch.enabled' is true, so 'table.exec.mini-batch.size' must be set to a positive number of rows",
            )
        })?;
        Ok(Some((latency.as_millis() as i64, size)))
    }
}

/// Options `SET` accepts.
pub const OPTIONS: &[&str] = &[
    "parallelism.default",
    "pipeline.name",
    "pipeline.max-parallelism",
    "execution.checkpointing.interval",
    "execution.checkpointing.dir",
    "state.checkpoints.dir",
    "execution.checkpointing.mode",
    "execution.checkpointing.incremental",
    "state.backend.incremental",
    "state.backend.type",
    "state.backend",
    "state.backend.local-dir",
    "state.backend.rocksdb.localdir",
    "state.backend.memory",
    "state.backend.local-recovery",
    "execution.checkpointing.local-backup.enabled",
    "execution.runtime-mode",
    "table.exec.mini-batch.enabled",
    "table.exec.mini-batch.allow-latency",
    "table.exec.mini-batch.size",
    "table.exec.state.ttl",
    "table.optimizer.distinct-agg.split.enabled",
    "table.optimizer.source.predicate-pushdown-enabled",
];

/// Builds the job a SQL script describes; `origin` names it in errors, `name` is the job's
/// name unless the script sets `pipeline.name`.
pub fn build(text: &str, origin: &str, name: &str) -> Result<SqlJob> {
    let mut session = Session::new(StreamExecutionEnvironment::new(), origin, name);
    session.execute(text)?;
    if session.writes == 0 && !session.job.explain_only {
        return Err(WeirError::plan(format!(
            "{origin}: the script has no INSERT INTO or SELECT, so there is nothing to run"
        )));
    }
    Ok(session.job)
}

/// The state of SQL planning across statements (and across calls, for a
/// [`table_env::TableEnvironment`]): the catalog, the job being built, the statement set.
pub(crate) struct Session {
    pub(crate) job: SqlJob,
    pub(crate) catalog: Catalog,
    origin: String,
    writes: usize,
    in_set: bool,
    windows: usize,
}

impl Session {
    pub(crate) fn new(env: StreamExecutionEnvironment, origin: &str, name: &str) -> Self {
        Session {
            job: SqlJob {
                env,
                name: name.to_string(),
                plans: Vec::new(),
                explain_only: false,
                options: PlanOptions::default(),
            },
            catalog: Catalog::new(origin),
            origin: origin.to_string(),
            writes: 0,
            in_set: false,
            windows: 0,
        }
    }

    /// Parses and carries out a script's statements.
    pub(crate) fn execute(&mut self, text: &str) -> Result<()> {
        let script = script::parse_numbered(text, &self.origin, self.windows)?;
        self.windows += script.windows.len();
        for statement in &script.statements {
            self.catalog.add_windows(&script.windows)?;
            self.catalog.add_lookups(&script.lookups)?;
            self.statement(statement)?;
        }
        if self.in_set {
            return Err(WeirError::plan(format!(
                "{}: the statement set is not closed with END",
                self.origin
            )));
        }
        Ok(())
    }

    /// Plans a single query (for `sql_query`): parsed, planned and optimized, not lowered.
    pub(crate) fn query(&mut self, text: &str) -> Result<LogicalPlan> {
        let script = script::parse_numbered(text, &self.origin, self.windows)?;
        self.windows += script.windows.len();
        self.catalog.add_windows(&script.windows)?;
        self.catalog.add_lookups(&script.lookups)?;
        match script.statements.as_slice() {
            [
                Located {
                    statement: statement @ Statement::Query(_),
                    at,
                },
            ] => plan_statement(&self.catalog, statement, *at),
            _ => Err(WeirError::plan(format!("{}: expected one SELECT query", self.origin))),
        }
    }

    /// Plans an `INSERT` or a query, keeps its plan for `EXPLAIN`, and lowers it into the job
    /// (nodes named after `prefix`).
    fn write(&mut self, statement: &Statement, at: Location, prefix: &str) -> Result<()> {
        let plan = plan_statement(&self.catalog, statement, at)?;
        self.job.plans.push(plan.display_indent().to_string());
        let mut lowering = lower::Lowering::new(&self.job.env, &self.catalog, prefix, &self.job.options)?;
        match statement {
            Statement::Insert(_) => lowering.insert(&plan),
            _ => lowering.print(&plan),
        }
        .map_err(|e| locate(&self.origin, at, e))?;
        Ok(())
    }

    fn statement(&mut self, located_statement: &Located) -> Result<()> {
        let origin = self.origin.clone();
        let origin = origin.as_str();
        let Located { statement, at } = located_statement;
        let at = *at;
        match statement {
            Statement::CreateTable(def) => self.catalog.add_table(def.clone())?,
            Statement::CreateView { name, query } => self.catalog.add_view(name, (**query).clone(), at)?,
            Statement::Set { key, value } => set(&mut self.job, key, value).map_err(|m| located(origin, at, m))?,
            Statement::BeginSet => {
                if self.in_set {
                    return Err(located(origin, at, "a statement set is already open"));
                }
                self.in_set = true;
            }
            Statement::EndSet => {
                if !self.in_set {
                    return Err(located(origin, at, "END without BEGIN STATEMENT SET"));
                }
                self.in_set = false;
            }
            Statement::Insert(_) | Statement::Query(_) => {
                self.writes += 1;
                let prefix = match statement {
                    Statement::Insert(_) => format!("insert-{}", self.writes),
                    _ => format!("query-{}", self.writes),
                };
                self.write(statement, at, &prefix)?;
            }
            Statement::Explain(inner) => {
                self.job.explain_only = true;
                self.write(&inner.statement, inner.at, "explain")?;
            }
        }
        Ok(())
    }
}

fn plan_statement(catalog: &Catalog, statement: &Statement, at: Location) -> Result<LogicalPlan> {
    use datafusion::sql::sqlparser::ast;
    let ast = match statement {
        Statement::Insert(s) => (**s).clone(),
        Statement::Query(q) => ast::Statement::Query(q.clone()),
        _ => return Err(WeirError::plan("only INSERT and SELECT can be planned")),
    };
    let plan = catalog.plan(ast, at)?;
    let plan = lower::mark_temporal_joins(plan, catalog).map_err(|e| locate(catalog.origin(), at, e))?;
    catalog.optimize(&plan, at)
}

/// A lowering error with the statement's position, unless it has one.
fn locate(origin: &str, at: Location, e: WeirError) -> WeirError {
    match e {
        WeirError::Plan(m) if !m.starts_with(origin) => located(origin, at, m),
        other => other,
    }
}

fn set(job: &mut SqlJob, key: &str, value: &str) -> std::result::Result<(), String> {
    let env = &job.env;
    match key {
        "parallelism.default" => {
            let p: usize = value
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("SET '{key}': '{value}' is not a positive number"))?;
            env.set_parallelism(p);
        }
        "pipeline.max-parallelism" => {
            let p: u32 = value
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("SET '{key}': '{value}' is not a positive number"))?;
            env.set_max_parallelism(p);
        }
        "pipeline.name" => job.name = value.to_string(),
        "execution.checkpointing.interval" => {
            let d = duration(value)
                .ok_or_else(|| format!("SET '{key}': '{value}' is not a duration (e.g. 10s, 1min, 500ms)"))?;
            env.enable_checkpointing(d);
        }
        "execution.checkpointing.dir" | "state.checkpoints.dir" => {
            env.set_checkpoint_storage(value.to_string());
        }
        "execution.checkpointing.incremental" | "state.backend.incremental" => {
            env.set_incremental_checkpoints(boolean(key, value)?);
        }
        "state.backend.type" | "state.backend" => {
            let mut backend = crate::state::StateBackend::parse(key, value).map_err(|e| e.to_string())?;
            if let (crate::state::StateBackend::Disk(now), crate::state::StateBackend::Disk(new)) =
                (env.config().state, &mut backend)
            {
                *new = now; // keep a directory or budget set before
            }
            env.set_state_backend(backend);
        }
        "state.backend.local-recovery" | "execution.checkpointing.local-backup.enabled" => {
            let crate::state::StateBackend::Disk(mut disk) = env.config().state else {
                return Err(format!(
                    "SET '{key}': local recovery is kept by the disk backend; SET 'state.backend.type' = 'disk' first"
                ));
            };
            disk.local_recovery = boolean(key, value)?;
            env.set_state_backend(crate::state::StateBackend::Disk(disk));
        }
        "state.backend.local-dir" | "state.backend.rocksdb.localdir" | "state.backend.memory" => {
            let crate::state::StateBackend::Disk(mut disk) = env.config().state else {
                return Err(format!(
                    "SET '{key}': applies to the disk backend; SET 'state.backend.type' = 'disk' first"
                ));
            };
            if key == "state.backend.memory" {
                disk.memory = crate::state::backend::parse_bytes(key, value).map_err(|e| e.to_string())?;
            } else {
                disk.dir = value.into();
            }
            env.set_state_backend(crate::state::StateBackend::Disk(disk));
        }
        "execution.checkpointing.mode" => {
            if !value.eq_ignore_ascii_case("EXACTLY_ONCE") && !value.eq_ignore_ascii_case("AT_LEAST_ONCE") {
                return Err(format!("SET '{key}': '{value}' (known: EXACTLY_ONCE, AT_LEAST_ONCE)"));
            }
        }
        "execution.runtime-mode" => {
            if !value.eq_ignore_ascii_case("streaming") {
                return Err(format!(
                    "SET '{key}': Weir runs streaming jobs ('{value}' is not supported)"
                ));
            }
        }
        "table.optimizer.source.predicate-pushdown-enabled" => {
            job.options.pushdown = boolean(key, value)?;
        }
        "table.exec.mini-batch.enabled" => job.options.mini_batch = boolean(key, value)?,
        "table.exec.mini-batch.allow-latency" => {
            let d =
                duration(value).ok_or_else(|| format!("SET '{key}': '{value}' is not a duration (e.g. 5s, 500ms)"))?;
            job.options.mini_batch_latency = Some(d);
        }
        "table.exec.state.ttl" => {
            let d = duration(value)
                .ok_or_else(|| format!("SET '{key}': '{value}' is not a duration (e.g. 1 h, 30 min, 0 for forever)"))?;
            job.options.state_ttl = Some(d);
        }
        "table.exec.mini-batch.size" => {
            let n: usize = value
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("SET '{key}': '{value}' is not a positive number of rows"))?;
            job.options.mini_batch_size = Some(n);
        }
        k if k.starts_with("table.optimizer.") => {
            tracing::info!(option = k, value, "accepted; it does not change Weir's plans");
        }
        other => return Err(format!("unknown option '{other}' (known: {})", OPTIONS.join(", "))),
    }
    Ok(())
}

/// `true` or `false`.
fn boolean(key: &str, value: &str) -> std::result::Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("SET '{key}': '{value}' should be 'true' or 'false'")),
    }
}

/// `10s`, `1 min`, `500ms`, `2h` or plain milliseconds.
pub(crate) fn duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().ok()?;
    let ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1.0,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000.0,
        "min" | "mins" | "minute" | "minutes" | "m" => 60_000.0,
        "h" | "hour" | "hours" => 3_600_000.0,
        _ => return None,
    };
    Some(Duration::from_millis((n * ms) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_flinks_spelling() {
        assert_eq!(duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(duration("1 min"), Some(Duration::from_secs(60)));
        assert_eq!(duration("500"), Some(Duration::from_millis(500)));
        assert_eq!(duration("ten"), None);
    }

    #[test]
    fn local_recovery_is_set_on_the_disk_backend_in_flinks_spelling() {
        let mut job = SqlJob {
            env: StreamExecutionEnvironment::new(),
            name: "j".into(),
            plans: Vec::new(),
            explain_only: false,
            options: PlanOptions::default(),
        };
        let key = "execution.checkpointing.local-backup.enabled";
        let e = set(&mut job, key, "false").unwrap_err();
        assert!(e.contains(key) && e.contains("disk"), "{e}");
        set(&mut job, "state.backend.type", "rocksdb").unwrap();
        set(&mut job, key, "false").unwrap();
        set(&mut job, "state.backend.memory", "1g").unwrap();
        let crate::state::StateBackend::Disk(d) = job.env.config().state else {
            panic!("disk backend expected")
        };
        assert!(!d.local_recovery, "kept across later settings");
        assert_eq!(d.memory, 1 << 30);
        set(&mut job, "state.backend.local-recovery", "true").unwrap();
        assert!(matches!(job.env.config().state, crate::state::StateBackend::Disk(d) if d.local_recovery));
        assert!(set(&mut job, key, "maybe").unwrap_err().contains(key));
    }
}
