//! The YAML pipeline form of a job: the DataStream API as data.
//!
//! ```yaml
//! name: expensive-bids
//! parallelism: 2
//! sources:
//!   - id: bids
//!     connector: nexmark
//!     events: 1000000
//!     stream: bid
//! operators:
//!   - id: expensive
//!     input: bids
//!     filter: "price > 1000000"
//!   - id: by_auction
//!     input: expensive
//!     key_by: auction
//!   - id: euros
//!     input: by_auction
//!     select: ["auction", "price * 0.908 AS euros"]
//! sinks:
//!   - input: euros
//!     connector: stdout
//! ```
//!
//! Every node has an `id`; operators and sinks name their `input` (one id, or a list, which is a
//! union). Connector options sit beside `connector` and are checked by the connector itself.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A whole job in pipeline form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// Job name; names the job's directory under the state root.
    pub name: String,
    /// Default parallelism of every node (default: the number of cores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// Number of key groups (default 128, at most 32768). Fixed once the job has state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallelism: Option<u32>,
    /// Where malformed records go (a directory path or object_store URL).
    /// Default: `.weir/<name>/dead-letter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<String>,
    /// Rows per batch produced by generating sources (default 4096).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Capacity of each channel between subtasks, in batches (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_capacity: Option<usize>,
    /// Checkpointing (off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointSpec>,
    /// Restarts after a failure, from the newest checkpoint (with checkpointing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartSpec>,
    /// Where keyed state lives (default: in memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateSpec>,
    /// The sources of the job.
    pub sources: Vec<SourceSpec>,
    /// Operators, in any order; each names its input.
    #[serde(default)]
    pub operators: Vec<OperatorSpec>,
    /// The sinks of the job.
    pub sinks: Vec<SinkSpec>,
}

/// A source node: a connector name and its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SourceSpec {
    /// Node id, referenced by operators' and sinks' `input`.
    pub id: String,
    /// Connector: `datagen`, `nexmark`, `file`, `socket`, `http`.
    pub connector: String,
    /// Parallelism of this source (default: the job's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// Event time: which field holds it and how watermarks follow it. None = processing time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<WatermarkSpec>,
    /// Connector options (checked by the connector).
    #[serde(flatten)]
    pub options: serde_json::Map<String, serde_json::Value>,
}

/// The watermark strategy of a source (Flink's `WatermarkStrategy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WatermarkSpec {
    /// The event-time field (a timestamp, or integer milliseconds since the epoch).
    pub field: String,
    /// How late a record may be relative to the latest seen, in ms (0 = monotonous; default 0).
    #[serde(default)]
    pub max_out_of_orderness_ms: u64,
    /// Mark this source idle after this many ms without data, so it does not hold back
    /// event time downstream (default: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
}

/// A sink node: its input, a connector name and options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SinkSpec {
    /// Optional node id (for metrics and errors); defaults to `sink-<n>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Input node id(s); several ids are a union.
    pub input: Inputs,
    /// Connector: `stdout`, `blackhole`, `file`.
    pub connector: String,
    /// Parallelism of this sink (default: the job's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// Connector options (checked by the connector).
    #[serde(flatten)]
    pub options: serde_json::Map<String, serde_json::Value>,
}

/// One input id or several (a union of streams).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Inputs {
    /// A single input.
    One(String),
    /// Several inputs, unioned.
    Many(Vec<String>),
}

impl Inputs {
    /// The ids as a list.
    pub fn ids(&self) -> Vec<&str> {
        match self {
            Inputs::One(s) => vec![s.as_str()],
            Inputs::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// An operator node: its id, input and parallelism, and exactly one operation (`filter`,
/// `select`, `flat_map`, `key_by`, …) beside them. "Exactly one" is the type's: a node with
/// none, two, or an unknown key is refused while the file is read, naming every kind.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct OperatorSpec {
    /// Node id.
    pub id: String,
    /// Input node id(s); not used by `union` and `late_data`, which name their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Inputs>,
    /// Parallelism of this operator (default: the job's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// What the node does.
    #[serde(flatten)]
    pub op: Operation,
}

/// What an operator node does: one key beside `id` and `input`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Keep rows for which this SQL expression is true.
    Filter(String),
    /// Projection: SQL expressions, each optionally `AS name`.
    Select(Vec<String>),
    /// Split a text field into one row per piece.
    FlatMap(SplitSpec),
    /// Partition by the hash of these fields (key groups).
    KeyBy(Inputs),
    /// Round-robin partitioning (`rebalance: true`).
    Rebalance(bool),
    /// Random partitioning (`shuffle: true`).
    Shuffle(bool),
    /// Every row to every downstream subtask (`broadcast: true`).
    Broadcast(bool),
    /// Partitioning by ranges of one field.
    PartitionByRange(RangeSpec),
    /// Union of these node ids.
    Union(Vec<String>),
    /// The late records of this window node (its side output), as a stream of its input rows.
    LateData(String),
    /// Running aggregates per key (a row out per row in, with the key's aggregates so far).
    Aggregate(Vec<AggregateSpec>),
    /// Windows with aggregates: per key after `key_by`, else over the whole stream.
    Window(WindowSpec),
}

impl Operation {
    /// Every operation's key, in the order the docs list them.
    pub const KINDS: &'static [&'static str] = &[
        "filter",
        "select",
        "flat_map",
        "key_by",
        "rebalance",
        "shuffle",
        "broadcast",
        "partition_by_range",
        "union",
        "late_data",
        "aggregate",
        "window",
    ];

    /// This operation's key.
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::Filter(_) => "filter",
            Operation::Select(_) => "select",
            Operation::FlatMap(_) => "flat_map",
            Operation::KeyBy(_) => "key_by",
            Operation::Rebalance(_) => "rebalance",
            Operation::Shuffle(_) => "shuffle",
            Operation::Broadcast(_) => "broadcast",
            Operation::PartitionByRange(_) => "partition_by_range",
            Operation::Union(_) => "union",
            Operation::LateData(_) => "late_data",
            Operation::Aggregate(_) => "aggregate",
            Operation::Window(_) => "window",
        }
    }

    /// Whether it makes a node of its own (and so takes a parallelism), rather than saying how
    /// the stream is partitioned or merged.
    pub fn is_node(&self) -> bool {
        matches!(
            self,
            Operation::Filter(_)
                | Operation::Select(_)
                | Operation::FlatMap(_)
                | Operation::Aggregate(_)
                | Operation::Window(_)
        )
    }
}

impl<'de> Deserialize<'de> for OperatorSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(OperatorVisitor)
    }
}

struct OperatorVisitor;

impl<'de> serde::de::Visitor<'de> for OperatorVisitor {
    type Value = OperatorSpec;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an operator: id, input, and one operation")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<OperatorSpec, A::Error> {
        use serde::de::Error;
        let (mut id, mut input, mut parallelism) = (None, None, None);
        let mut op: Option<Operation> = None;
        while let Some(key) = map.next_key::<OperatorKey>()? {
            let next = match key {
                OperatorKey::Id => {
                    id = Some(map.next_value()?);
                    continue;
                }
                OperatorKey::Input => {
                    input = Some(map.next_value()?);
                    continue;
                }
                OperatorKey::Parallelism => {
                    parallelism = Some(map.next_value()?);
                    continue;
                }
                OperatorKey::Filter => Operation::Filter(map.next_value()?),
                OperatorKey::Select => Operation::Select(map.next_value()?),
                OperatorKey::FlatMap => Operation::FlatMap(map.next_value()?),
                OperatorKey::KeyBy => Operation::KeyBy(map.next_value()?),
                OperatorKey::Rebalance => Operation::Rebalance(map.next_value()?),
                OperatorKey::Shuffle => Operation::Shuffle(map.next_value()?),
                OperatorKey::Broadcast => Operation::Broadcast(map.next_value()?),
                OperatorKey::PartitionByRange => Operation::PartitionByRange(map.next_value()?),
                OperatorKey::Union => Operation::Union(map.next_value()?),
                OperatorKey::LateData => Operation::LateData(map.next_value()?),
                OperatorKey::Aggregate => Operation::Aggregate(map.next_value()?),
                OperatorKey::Window => Operation::Window(map.next_value()?),
            };
            if let Some(first) = &op {
                return Err(A::Error::custom(format!(
                    "operator{}: has {} and {} — one operation per node",
                    id.as_ref().map(|i: &String| format!(" '{i}'")).unwrap_or_default(),
                    first.kind(),
                    next.kind()
                )));
            }
            op = Some(next);
        }
        let id: String = id.ok_or_else(|| A::Error::missing_field("id"))?;
        let op = op.ok_or_else(|| {
            A::Error::custom(format!(
                "operator '{id}': say what it does with one of {}",
                Operation::KINDS.join(", ")
            ))
        })?;
        Ok(OperatorSpec {
            id,
            input,
            parallelism,
            op,
        })
    }
}

/// The keys an operator may have: an unknown one is refused where it stands in the file.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum OperatorKey {
    Id,
    Input,
    Parallelism,
    Filter,
    Select,
    FlatMap,
    KeyBy,
    Rebalance,
    Shuffle,
    Broadcast,
    PartitionByRange,
    Union,
    LateData,
    Aggregate,
    Window,
}

/// `window` in pipeline form: tumbling (`size_ms`), sliding (`size_ms` and `slide_ms`),
/// session (`gap_ms`) or count (`count`, optionally `slide_count`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// Window length, ms (tumbling and sliding windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_ms: Option<u64>,
    /// Session gap, ms (session windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_ms: Option<u64>,
    /// Records per window (count windows, per key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Records between firings of a count window (default: `count`, tumbling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slide_count: Option<u64>,
    /// Distance between window starts, ms (default: `size_ms`, tumbling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slide_ms: Option<u64>,
    /// Event-time field (default: the one the source's watermark names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_field: Option<String>,
    /// Keep windows this long after they fire, re-firing them for late records (default 0).
    #[serde(default)]
    pub allowed_lateness_ms: u64,
    /// One window per key for all time, fired by `trigger` (Flink's `GlobalWindows`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub global: bool,
    /// When a global window fires (required with `global`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<TriggerSpec>,
    /// The aggregates.
    pub aggregates: Vec<AggregateSpec>,
}

/// A trigger for global windows: exactly one of `count`, `event_time_interval_ms`,
/// `processing_time_interval_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    /// Fire every this many records of a key (Flink's `CountTrigger`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Fire every this many ms of event time (Flink's `ContinuousEventTimeTrigger`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time_interval_ms: Option<u64>,
    /// Fire every this many ms of wall-clock time (Flink's `ContinuousProcessingTimeTrigger`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_time_interval_ms: Option<u64>,
    /// Drop the window's contents whenever it fires (Flink's `PurgingTrigger`).
    #[serde(default)]
    pub purge: bool,
}

/// One aggregate: `count`, `sum`, `min`, `max`, `avg`, `first`, `last`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateSpec {
    /// Which aggregate.
    pub kind: String,
    /// Input field (none for `count` of rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Output column name (default `<kind>_<field>`, or `count`).
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub as_field: Option<String>,
}

/// `flat_map` in pipeline form: split `field` by `separator`, one output row per non-empty piece,
/// with the piece in column `as` (other columns are copied).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    /// The text field to split.
    pub split: String,
    /// Separator (default: any whitespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    /// Name of the output column holding a piece (default: the split field's name).
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub as_field: Option<String>,
}

/// Range partitioning: `boundaries` are sorted upper bounds (exclusive) of every range but the
/// last; downstream parallelism is `boundaries.len() + 1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RangeSpec {
    /// The field whose value picks the range.
    pub field: String,
    /// Sorted boundaries (numbers or strings).
    pub boundaries: Vec<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_options_sit_beside_the_connector_and_round_trip() {
        let json = serde_json::json!({
            "name": "j",
            "sources": [{"id": "s", "connector": "datagen", "rows": 10, "parallelism": 2}],
            "operators": [{"id": "k", "input": "s", "key_by": ["a", "b"]}, {"id": "u", "union": ["s", "k"]}],
            "sinks": [{"input": ["k", "u"], "connector": "blackhole"}]
        });
        let spec: PipelineSpec = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(spec.sources[0].parallelism, Some(2));
        assert_eq!(spec.sources[0].options["rows"], 10);
        assert_eq!(
            spec.operators[0].op,
            Operation::KeyBy(Inputs::Many(vec!["a".into(), "b".into()]))
        );
        assert_eq!(spec.sinks[0].input.ids(), vec!["k", "u"]);
        let back: PipelineSpec = serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn unknown_operator_fields_are_refused() {
        let json = serde_json::json!({"id": "f", "input": "s", "fliter": "x > 1"});
        let e = serde_json::from_value::<OperatorSpec>(json).unwrap_err().to_string();
        assert!(e.contains("unknown field `fliter`"), "{e}");
    }

    #[test]
    fn an_operator_has_exactly_one_operation() {
        let two = serde_json::json!({"id": "f", "input": "s", "filter": "x > 1", "select": ["x"]});
        let e = serde_json::from_value::<OperatorSpec>(two).unwrap_err().to_string();
        assert!(
            e.contains("operator 'f': has filter and select — one operation per node"),
            "{e}"
        );
        let none = serde_json::json!({"id": "f", "input": "s"});
        let e = serde_json::from_value::<OperatorSpec>(none).unwrap_err().to_string();
        for kind in Operation::KINDS {
            assert!(e.contains(kind), "{kind} in {e}");
        }
        let yaml = "id: w\ninput: s\nwindow: {size_ms: 10, aggregates: [{kind: count}]}\nparallelism: 2\n";
        let op: OperatorSpec = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(
            (op.op.kind(), op.parallelism, op.op.is_node()),
            ("window", Some(2), true)
        );
        assert_eq!(
            serde_yaml::from_str::<OperatorSpec>(&serde_yaml::to_string(&op).unwrap()).unwrap(),
            op
        );
    }

    #[test]
    fn the_json_schema_names_every_operation() {
        let schema = serde_json::to_string(&schemars::schema_for!(PipelineSpec)).unwrap();
        for field in ["key_by", "partition_by_range", "flat_map", "union", "max_parallelism"] {
            assert!(schema.contains(field), "{field}");
        }
    }
}

/// Checkpoint settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSpec {
    /// Time between checkpoints, ms.
    pub interval_ms: u64,
    /// Where snapshots go: a path, `file://`, `s3://bucket/prefix` (default `.weir/checkpoints`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// Abandon a checkpoint after this long, ms (default 600000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Least time between the end of one checkpoint and the next, ms (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_pause_ms: Option<u64>,
    /// Complete checkpoints kept (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain: Option<usize>,
    /// Checkpoints that may fail in a row before the job fails (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerable_failures: Option<u32>,
    /// Upload only the state that changed since the previous checkpoint (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<bool>,
    /// With `incremental`: a full snapshot at least every this many checkpoints (default 100;
    /// also whenever the change files since the last full one outweigh it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_every: Option<u32>,
}

/// State backend settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateSpec {
    /// `memory` (default: hash maps, fastest) or `disk` (an LSM tree per operator subtask on
    /// local disk, for state larger than memory).
    pub backend: String,
    /// With `disk`: the directory state files go under (default: the system's temp directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// With `disk`: memory the backend may use per worker, as `512m` or `1Gi` (default 512m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// With `disk`: keep a local copy of each checkpoint's state files beside the state, so a
    /// worker restarted on the same machine reads them from there instead of checkpoint
    /// storage (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_recovery: Option<bool>,
}

/// Restart strategy: fixed delay (`backoff: 1`) or exponential backoff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartSpec {
    /// Restarts in a row before giving up (default: no limit, as Flink 2 with checkpointing;
    /// 0 fails at the first error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Wait before the first restart, ms (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Each further wait is the previous one times this (default 1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<f64>,
    /// Longest wait, ms (default 60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay_ms: Option<u64>,
    /// A run that lasted this long before failing starts the backoff and the attempts over, ms
    /// (default 3600000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_after_ms: Option<u64>,
}
