//! The YAML pipeline form ([`weir_proto::PipelineSpec`]) lowered onto the DataStream API, so
//! both forms make the same graph. Errors name the file, the line and the field.

use std::collections::HashMap;
use std::path::Path;

use weir_proto::{Operation, OperatorSpec, PipelineSpec};

use crate::api::{DataStream, StreamExecutionEnvironment};
use crate::connectors::registry;
use crate::contract::error::{Result, WeirError};
use crate::contract::watermark::WatermarkStrategy;
use crate::window::{
    Agg, AggKind, ContinuousEventTimeTrigger, ContinuousProcessingTimeTrigger, CountTrigger, EventTimeSessionWindows,
    GlobalWindows, PurgingTrigger, SlidingEventTimeWindows, Trigger, TumblingEventTimeWindows,
};
use std::time::Duration;

/// A job read from a file — a YAML pipeline or a SQL script: the environment to execute and
/// the job's name.
pub struct PipelineJob {
    /// The built job.
    pub env: StreamExecutionEnvironment,
    /// Job name from the file.
    pub name: String,
    /// The parsed spec (pipeline files).
    pub spec: Option<PipelineSpec>,
    /// SQL scripts: each statement's optimized plan (what `weir explain` shows first).
    pub sql_plans: Vec<String>,
    /// The SQL script asked for `EXPLAIN` only.
    pub explain_only: bool,
    origin: String,
    text: String,
}

impl PipelineJob {
    /// Adds the file and line to a planning error that names a node of this file.
    pub fn locate(&self, e: WeirError) -> WeirError {
        match e {
            WeirError::Plan(m) => {
                let node = m
                    .strip_prefix("node '")
                    .and_then(|r| r.split_once('\''))
                    .map(|(id, _)| id.to_string());
                let at = node
                    .and_then(|id| line_of(&self.text, &id))
                    .map(|l| format!(":{l}"))
                    .unwrap_or_default();
                WeirError::Plan(format!("{}{at}: {m}", self.origin))
            }
            other => other,
        }
    }

    /// The dead-letter directory the job writes malformed records to.
    pub fn dead_letter_dir(&self) -> String {
        self.spec
            .as_ref()
            .and_then(|s| s.dead_letter.clone())
            .unwrap_or_else(|| format!(".weir/{}/dead-letter", self.name))
    }

    /// Runs the job to its end (see [`StreamExecutionEnvironment::execute_async`]), with
    /// planning errors located in the file.
    pub async fn execute(&self) -> Result<crate::runtime::executor::JobResult> {
        self.env.execute_async(&self.name).await.map_err(|e| self.locate(e))
    }
}

/// Reads and builds a job file: a SQL script (`.sql`) or a YAML pipeline (anything else).
pub fn load(path: &Path) -> Result<PipelineJob> {
    let text = std::fs::read_to_string(path).map_err(|e| WeirError::plan(format!("{}: {e}", path.display())))?;
    let origin = path.display().to_string();
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("sql")) {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "sql-job".into());
        return build_sql(&text, &origin, &name);
    }
    build(&text, &origin)
}

/// Builds the job a SQL script describes (named `name` unless it sets `pipeline.name`).
pub fn build_sql(text: &str, origin: &str, name: &str) -> Result<PipelineJob> {
    let job = crate::sql::build(text, origin, name)?;
    Ok(PipelineJob {
        env: job.env,
        name: job.name,
        spec: None,
        sql_plans: job.plans,
        explain_only: job.explain_only,
        origin: origin.to_string(),
        text: String::new(),
    })
}

/// Parses pipeline YAML (`origin` names it in errors).
pub fn parse(text: &str, origin: &str) -> Result<PipelineSpec> {
    serde_yaml::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        WeirError::plan(format!("{origin}{at}: {e}"))
    })
}

/// Builds the job described by pipeline YAML.
pub fn build(text: &str, origin: &str) -> Result<PipelineJob> {
    let spec = parse(text, origin)?;
    let env = lower(&spec).map_err(|(id, e)| {
        let at = id
            .and_then(|id| line_of(text, &id))
            .map(|l| format!(":{l}"))
            .unwrap_or_default();
        WeirError::plan(format!("{origin}{at}: {}", strip(e)))
    })?;
    Ok(PipelineJob {
        env,
        name: spec.name.clone(),
        spec: Some(spec),
        sql_plans: Vec::new(),
        explain_only: false,
        origin: origin.to_string(),
        text: text.to_string(),
    })
}

fn strip(e: WeirError) -> String {
    match e {
        WeirError::Plan(m) => m,
        other => other.to_string(),
    }
}

/// The line (1-based) where node `id` is declared.
fn line_of(text: &str, id: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let t = l.trim_start().trim_start_matches("- ").trim_start();
            t.strip_prefix("id:")
                .is_some_and(|rest| rest.trim().trim_matches(['"', '\'']) == id)
        })
        .map(|i| i + 1)
}

type Lowered<T> = std::result::Result<T, (Option<String>, WeirError)>;

fn at<T>(id: &str, r: Result<T>) -> Lowered<T> {
    r.map_err(|e| (Some(id.to_string()), e))
}

fn err<T>(id: &str, msg: String) -> Lowered<T> {
    Err((Some(id.to_string()), WeirError::plan(msg)))
}

fn lower(spec: &PipelineSpec) -> Lowered<StreamExecutionEnvironment> {
    let env = StreamExecutionEnvironment::new();
    if let Some(p) = spec.parallelism {
        env.set_parallelism(p as usize);
    }
    if let Some(m) = spec.max_parallelism {
        env.set_max_parallelism(m);
    }
    if let Some(b) = spec.batch_size {
        env.set_batch_size(b);
    }
    if let Some(c) = spec.channel_capacity {
        env.set_channel_capacity(c);
    }
    if let Some(d) = &spec.dead_letter {
        env.set_dead_letter(d.clone());
    }
    if let Some(c) = &spec.checkpoint {
        let defaults = crate::checkpoint::CheckpointConfig::default();
        let ms = Duration::from_millis;
        let config = crate::checkpoint::CheckpointConfig {
            interval: ms(c.interval_ms),
            timeout: c.timeout_ms.map_or(defaults.timeout, ms),
            min_pause: c.min_pause_ms.map_or(defaults.min_pause, ms),
            tolerable_failures: c.tolerable_failures.unwrap_or(defaults.tolerable_failures),
            retain: c.retain.unwrap_or(defaults.retain),
            incremental: c.incremental.unwrap_or(defaults.incremental),
            full_every: c.full_every.unwrap_or(defaults.full_every),
            storage: c.storage.clone().unwrap_or(defaults.storage),
        };
        config
            .validate()
            .map_err(|e| (None, WeirError::plan(format!("checkpoint: {e}"))))?;
        env.set_checkpoint_config(config);
    }
    if let Some(st) = &spec.state {
        let mut backend =
            crate::state::StateBackend::from_settings(&st.backend, st.dir.as_deref(), st.memory.as_deref())
                .map_err(|e| (None, e))?;
        if let Some(on) = st.local_recovery {
            backend.set_local_recovery(on);
        }
        env.set_state_backend(backend);
    }
    if let Some(r) = &spec.restart {
        let d = crate::graph::RestartStrategy::default();
        let ms = Duration::from_millis;
        if r.backoff.is_some_and(|b| b.is_nan() || b < 1.0) {
            return Err((None, WeirError::plan("restart.backoff must be at least 1")));
        }
        env.set_restart_strategy(crate::graph::RestartStrategy {
            attempts: r.attempts.unwrap_or(d.attempts),
            delay: r.delay_ms.map_or(d.delay, ms),
            backoff: r.backoff.unwrap_or(d.backoff),
            max_delay: r.max_delay_ms.map_or(d.max_delay, ms),
            reset_after: r.reset_after_ms.map_or(d.reset_after, ms),
        });
    }
    if spec.sources.is_empty() {
        return Err((None, WeirError::plan("sources: at least one source is needed")));
    }
    if spec.sinks.is_empty() {
        return Err((None, WeirError::plan("sinks: at least one sink is needed")));
    }
    let mut streams: HashMap<String, DataStream> = HashMap::new();
    let check_new = |id: &str, streams: &HashMap<String, DataStream>| -> Lowered<()> {
        if id.is_empty() {
            return err(id, "a node has an empty id".into());
        }
        if streams.contains_key(id) {
            return err(id, format!("id '{id}' is used by two nodes"));
        }
        Ok(())
    };
    for s in &spec.sources {
        check_new(&s.id, &streams)?;
        let factory = at(&s.id, registry::source(&s.connector, &s.id, &s.options))?;
        let mut stream = env.add_source_named(&s.id, factory);
        if let Some(p) = s.parallelism {
            stream = stream.set_parallelism(p as usize);
        }
        if let Some(w) = &s.watermark {
            let mut strategy = WatermarkStrategy::bounded_out_of_orderness(
                &w.field,
                std::time::Duration::from_millis(w.max_out_of_orderness_ms),
            );
            if let Some(idle) = w.idle_timeout_ms {
                strategy = strategy.with_idleness(std::time::Duration::from_millis(idle));
            }
            stream = stream.with_watermarks(strategy);
        }
        streams.insert(s.id.clone(), stream);
    }
    // Operators may be listed in any order: build each once its inputs exist.
    let mut pending: Vec<&OperatorSpec> = spec.operators.iter().collect();
    for op in &pending {
        check_new(&op.id, &streams)?;
    }
    if let Some(dup) = pending
        .iter()
        .enumerate()
        .find(|(i, o)| pending[..*i].iter().any(|p| p.id == o.id))
    {
        return err(&dup.1.id, format!("id '{}' is used by two nodes", dup.1.id));
    }
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for op in pending {
            let inputs = op_inputs(op)?;
            let known = |i: &&str| streams.contains_key(*i);
            if inputs.iter().all(known) {
                let built = lower_operator(op, &inputs, &streams)?;
                streams.insert(op.id.clone(), built);
            } else {
                rest.push(op);
            }
        }
        if rest.len() == before {
            let op = rest[0];
            let missing: Vec<String> = op_inputs(op)?
                .into_iter()
                .filter(|i| !streams.contains_key(*i))
                .map(String::from)
                .collect();
            let all_ids: Vec<&str> = rest.iter().map(|o| o.id.as_str()).collect();
            let why = if missing.iter().all(|m| all_ids.contains(&m.as_str())) {
                "the operators form a cycle".to_string()
            } else {
                format!(
                    "no node has id {}",
                    missing.iter().map(|m| format!("'{m}'")).collect::<Vec<_>>().join(", ")
                )
            };
            return err(
                &op.id,
                format!("operator '{}': input {}: {why}", op.id, missing.join(", ")),
            );
        }
        pending = rest;
    }
    for (i, s) in spec.sinks.iter().enumerate() {
        let id = s.id.clone().unwrap_or_else(|| format!("sink-{}", i + 1));
        let inputs = s.input.ids();
        let stream = union_of(&id, &inputs, &streams)?;
        let factory = at(&id, registry::sink(&s.connector, &id, &s.options))?;
        let mut out = stream.add_sink_named(&id, factory);
        if let Some(p) = s.parallelism {
            out = out.set_parallelism(p as usize);
        }
        let _ = out;
    }
    Ok(env)
}

fn op_inputs(op: &OperatorSpec) -> Lowered<Vec<&str>> {
    match (&op.op, &op.input) {
        (Operation::LateData(_), Some(_)) => err(
            &op.id,
            format!("operator '{}': late_data names its window; remove 'input'", op.id),
        ),
        (Operation::LateData(window), None) => Ok(vec![window.as_str()]),
        (Operation::Union(_), Some(_)) => err(
            &op.id,
            format!("operator '{}': union lists its inputs; remove 'input'", op.id),
        ),
        (Operation::Union(u), None) if u.len() < 2 => {
            err(&op.id, format!("operator '{}': union needs at least two inputs", op.id))
        }
        (Operation::Union(u), None) => Ok(u.iter().map(String::as_str).collect()),
        (_, Some(i)) => Ok(i.ids()),
        (_, None) => err(&op.id, format!("operator '{}': missing field 'input'", op.id)),
    }
}

fn union_of(id: &str, inputs: &[&str], streams: &HashMap<String, DataStream>) -> Lowered<DataStream> {
    let get = |i: &str| -> Lowered<&DataStream> {
        streams.get(i).ok_or_else(|| {
            (
                Some(id.to_string()),
                WeirError::plan(format!("'{id}': input '{i}': no node has this id")),
            )
        })
    };
    let first = get(inputs.first().copied().unwrap_or_default())?;
    let others = inputs[1..].iter().map(|i| get(i)).collect::<Lowered<Vec<_>>>()?;
    Ok(if others.is_empty() {
        first.clone()
    } else {
        first.union(&others)
    })
}

fn lower_operator(op: &OperatorSpec, inputs: &[&str], streams: &HashMap<String, DataStream>) -> Lowered<DataStream> {
    let id = op.id.as_str();
    let input = union_of(id, inputs, streams)?;
    let kind = op.op.kind();
    if op.parallelism.is_some() && !op.op.is_node() {
        return err(
            id,
            format!(
                "operator '{id}': parallelism cannot be set on {kind}; it partitions the stream, set it on the node that reads it"
            ),
        );
    }
    let out = match &op.op {
        Operation::Rebalance(false) | Operation::Shuffle(false) | Operation::Broadcast(false) => {
            return err(
                id,
                format!("operator '{id}': {kind}: false does nothing; remove the node"),
            );
        }
        Operation::Filter(condition) => input.filter_expr(condition),
        Operation::Select(items) => {
            let items: Vec<&str> = items.iter().map(String::as_str).collect();
            input.select(&items)
        }
        Operation::FlatMap(s) => input.split(
            &s.split,
            s.separator.as_deref(),
            s.as_field.as_deref().unwrap_or(&s.split),
        ),
        Operation::LateData(_) => return Ok(input.late_data()),
        Operation::Aggregate(aggs) => {
            let aggs = aggregates(id, aggs)?;
            let Some(keys) = input.key_fields() else {
                return err(
                    id,
                    format!("operator '{id}': a running aggregate is per key; key the stream first"),
                );
            };
            input.key_by(keys).aggregate(&aggs)
        }
        Operation::Window(w) => {
            let mut assigner = match (w.size_ms, w.slide_ms, w.gap_ms) {
                (None, None, None) if w.global => GlobalWindows::create(),
                (Some(size), None, None) => TumblingEventTimeWindows::of(Duration::from_millis(size)),
                (Some(size), Some(slide), None) => {
                    SlidingEventTimeWindows::of(Duration::from_millis(size), Duration::from_millis(slide))
                }
                (None, None, Some(gap)) => EventTimeSessionWindows::with_gap(Duration::from_millis(gap)),
                // Count windows need no time assigner; they are built below.
                (None, None, None) if w.count.is_some() => TumblingEventTimeWindows::of(Duration::from_millis(1)),
                _ => {
                    return err(
                        id,
                        format!(
                            "operator '{id}': window needs size_ms (tumbling), size_ms and slide_ms (sliding), gap_ms (session), count (count windows), or global with a trigger"
                        ),
                    );
                }
            };
            if let Some(f) = &w.time_field {
                assigner = assigner.on(f);
            }
            let aggs = aggregates(id, &w.aggregates)?;
            if let Some(count) = w.count {
                let Some(keys) = input.key_fields() else {
                    return err(
                        id,
                        format!("operator '{id}': count windows are per key; key the stream first"),
                    );
                };
                return Ok(input
                    .key_by(keys)
                    .count_window_sliding(count, w.slide_count.unwrap_or(count))
                    .aggregate(&aggs)
                    .name(id));
            }
            let windowed = match input.key_fields() {
                Some(keys) => input.key_by(keys).window(assigner),
                None if op.parallelism.is_some_and(|p| p != 1) => {
                    return err(
                        id,
                        format!(
                            "operator '{id}': a window without key_by runs as one subtask; key the stream first or drop parallelism"
                        ),
                    );
                }
                None => input.window_all(assigner),
            };
            let mut windowed = windowed.allowed_lateness(Duration::from_millis(w.allowed_lateness_ms));
            match (&w.trigger, w.global) {
                (Some(t), true) => windowed = windowed.trigger(trigger(id, t)?),
                (None, true) => {
                    return err(id, format!("operator '{id}': window.global needs a trigger"));
                }
                (Some(_), false) => {
                    return err(
                        id,
                        format!("operator '{id}': window.trigger is only for global windows (add global: true)"),
                    );
                }
                (None, false) => {}
            }
            windowed.aggregate(&aggs)
        }
        Operation::KeyBy(keys) => {
            let keys: Vec<String> = keys.ids().into_iter().map(String::from).collect();
            return Ok((*input.key_by(keys)).clone());
        }
        Operation::Rebalance(true) => return Ok(input.rebalance()),
        Operation::Shuffle(true) => return Ok(input.shuffle()),
        Operation::Broadcast(true) => return Ok(input.broadcast()),
        Operation::PartitionByRange(r) => return Ok(input.partition_by_range(&r.field, r.boundaries.clone())),
        Operation::Union(_) => return Ok(input),
    };
    let mut out = out.name(id);
    if let Some(p) = op.parallelism {
        out = out.set_parallelism(p as usize);
    }
    Ok(out)
}

/// The trigger of a global window.
fn trigger(id: &str, t: &weir_proto::TriggerSpec) -> Lowered<std::sync::Arc<dyn Trigger>> {
    let inner = match (t.count, t.event_time_interval_ms, t.processing_time_interval_ms) {
        (Some(0), None, None) => return err(id, format!("operator '{id}': window.trigger.count must be at least 1")),
        (Some(n), None, None) => CountTrigger::of(n),
        (None, Some(ms), None) if ms > 0 => ContinuousEventTimeTrigger::of(Duration::from_millis(ms)),
        (None, None, Some(ms)) if ms > 0 => ContinuousProcessingTimeTrigger::of(Duration::from_millis(ms)),
        _ => {
            return err(
                id,
                format!(
                    "operator '{id}': window.trigger needs exactly one of count, event_time_interval_ms, processing_time_interval_ms (positive)"
                ),
            );
        }
    };
    Ok(if t.purge { PurgingTrigger::of(inner) } else { inner })
}

/// The aggregates of a `window` or `aggregate` node.
fn aggregates(id: &str, specs: &[weir_proto::AggregateSpec]) -> Lowered<Vec<Agg>> {
    let mut aggs = Vec::new();
    for a in specs {
        let kind: AggKind = serde_json::from_value(serde_json::Value::String(a.kind.clone())).map_err(|_| {
            (
                Some(id.to_string()),
                WeirError::plan(format!(
                    "operator '{id}': unknown aggregate '{}' (use count, sum, min, max, avg, first, last)",
                    a.kind
                )),
            )
        })?;
        let mut agg = match (&a.field, kind) {
            (None, AggKind::Count) => Agg::count(),
            (None, _) => return err(id, format!("operator '{id}': aggregate '{}' needs a field", a.kind)),
            (Some(f), _) => Agg {
                kind,
                field: Some(f.clone()),
                name: format!("{}_{f}", a.kind),
            },
        };
        if let Some(n) = &a.as_field {
            agg = agg.alias(n);
        }
        aggs.push(agg);
    }
    Ok(aggs)
}
