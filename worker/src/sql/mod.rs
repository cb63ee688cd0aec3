//! Flink SQL on Weir: a script of `CREATE TABLE … WITH (…)`, views, `SET`, `INSERT INTO` (one
//! or a statement set) and queries becomes one job. The front end parses Flink's spelling
//! ([`script`], [`ddl`]); DataFusion plans and optimizes each query against the [`catalog`];
//! the [`lower`] pass turns the optimized plan into Weir's graph through the DataStream API.

pub mod catalog;
pub mod connectors;
pub mod ddl;
pub mod functions;
pub mod lower;
pub mod script;
pub mod source_calc;
pub mod tokens;
pub mod types;

use std::time::Duration;

use datafusion::logical_expr::LogicalPlan;

use crate::api::{DataStream, StreamExecutionEnvironment};
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
    "execution.runtime-mode",
    "table.exec.mini-batch.enabled",
    "table.exec.mini-batch.allow-latency",
    "table.exec.mini-batch.size",
    "table.optimizer.distinct-agg.split.enabled",
];

/// Builds the job a SQL script describes; `origin` names it in errors, `name` is the job's
/// name unless the script sets `pipeline.name`.
pub fn build(text: &str, origin: &str, name: &str) -> Result<SqlJob> {
    let script = script::parse(text, origin)?;
    let env = StreamExecutionEnvironment::new();
    let mut catalog = Catalog::new(origin);
    let mut job = SqlJob {
        env,
        name: name.to_string(),
        plans: Vec::new(),
        explain_only: false,
    };
    let mut sinks: Vec<DataStream> = Vec::new();
    let mut in_set = false;
    let mut writes = 0usize;
    for located_statement in &script.statements {
        catalog.add_windows(&script.windows)?;
        let Located { statement, at } = located_statement;
        let at = *at;
        match statement {
            Statement::CreateTable(def) => catalog.add_table(def.clone())?,
            Statement::CreateView { name, query } => catalog.add_view(name, (**query).clone(), at)?,
            Statement::Set { key, value } => set(&mut job, key, value).map_err(|m| located(origin, at, m))?,
            Statement::BeginSet => {
                if in_set {
                    return Err(located(origin, at, "a statement set is already open"));
                }
                in_set = true;
            }
            Statement::EndSet => {
                if !in_set {
                    return Err(located(origin, at, "END without BEGIN STATEMENT SET"));
                }
                in_set = false;
            }
            Statement::Insert(_) | Statement::Query(_) => {
                writes += 1;
                let plan = plan_statement(&catalog, statement, at)?;
                job.plans.push(plan.display_indent().to_string());
                let prefix = match statement {
                    Statement::Insert(_) => format!("insert-{writes}"),
                    _ => format!("query-{writes}"),
                };
                let mut lowering = lower::Lowering::new(&job.env, &catalog, &prefix);
                let sink = match statement {
                    Statement::Insert(_) => lowering.insert(&plan),
                    _ => lowering.print(&plan),
                }
                .map_err(|e| locate(origin, at, e))?;
                sinks.push(sink);
            }
            Statement::Explain(inner) => {
                job.explain_only = true;
                let plan = plan_statement(&catalog, &inner.statement, inner.at)?;
                job.plans.push(plan.display_indent().to_string());
                let mut lowering = lower::Lowering::new(&job.env, &catalog, "explain");
                match &inner.statement {
                    Statement::Insert(_) => lowering.insert(&plan),
                    _ => lowering.print(&plan),
                }
                .map_err(|e| locate(origin, inner.at, e))?;
            }
        }
    }
    if in_set {
        return Err(WeirError::plan(format!(
            "{origin}: the statement set is not closed with END"
        )));
    }
    if sinks.is_empty() && !job.explain_only {
        return Err(WeirError::plan(format!(
            "{origin}: the script has no INSERT INTO or SELECT, so there is nothing to run"
        )));
    }
    Ok(job)
}

fn plan_statement(
    catalog: &Catalog,
    statement: &Statement,
    at: datafusion::sql::sqlparser::tokenizer::Location,
) -> Result<LogicalPlan> {
    use datafusion::sql::sqlparser::ast;
    let ast = match statement {
        Statement::Insert(s) => (**s).clone(),
        Statement::Query(q) => ast::Statement::Query(q.clone()),
        _ => return Err(WeirError::plan("only INSERT and SELECT can be planned")),
    };
    let plan = catalog.plan(ast, at)?;
    catalog.optimize(&plan, at)
}

/// A lowering error with the statement's position, unless it has one.
fn locate(origin: &str, at: datafusion::sql::sqlparser::tokenizer::Location, e: WeirError) -> WeirError {
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
        k if k.starts_with("table.exec.mini-batch.") || k.starts_with("table.optimizer.") => {
            tracing::info!(option = k, value, "accepted; Weir's operators already work on batches");
        }
        other => return Err(format!("unknown option '{other}' (known: {})", OPTIONS.join(", "))),
    }
    Ok(())
}

/// `10s`, `1 min`, `500ms`, `2h` or plain milliseconds.
fn duration(text: &str) -> Option<Duration> {
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
}
