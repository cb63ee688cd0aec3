//! The DataStream API: `StreamExecutionEnvironment`, `DataStream`, `KeyedStream`, with the
//! names of Flink's API. Every call adds to one logical graph; `execute` plans and runs it.
//!
//! ```no_run
//! use weir::prelude::*;
//!
//! let env = StreamExecutionEnvironment::new();
//! env.set_parallelism(2);
//! let bids = env.add_source(Nexmark::new("bids", NexmarkConfig { events: Some(100_000), stream: NexmarkStream::Bid, ..Default::default() }).unwrap());
//! bids.filter_expr("price > 1000000")
//!     .key_by("auction")
//!     .select(&["auction", "price * 0.908 AS euros"])
//!     .add_sink(Stdout::default());
//! env.execute("expensive-bids").unwrap();
//! ```
//!
//! Mistakes found while building (a bad expression, an unknown field) are kept and returned by
//! `execute`, so calls chain without `?` at every step.

use std::sync::{Arc, Mutex, MutexGuard};

use arrow::datatypes::{Field, SchemaRef};
use arrow::record_batch::RecordBatch;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::CheckpointConfig;
use crate::connectors::stdout::Stdout;
use crate::connectors::{SinkFactory, SourceFactory};
use crate::contract::error::{Result, WeirError};
use crate::contract::watermark::WatermarkStrategy;
use crate::graph::{Edge, JobConfig, LogicalGraph, Node, NodeId, NodeKind, RestartStrategy, RestoreFrom};
use crate::operators::broadcast_process::{KeyedBroadcastProcess, KeyedBroadcastProcessFunction};
use crate::operators::co_process::{KeyedCoProcess, KeyedCoProcessFunction};
use crate::operators::filter::{FilterExpr, FilterRows};
use crate::operators::flat_map::FlatMapRows;
use crate::operators::interval_join::IntervalJoin;
use crate::operators::join::{JoinType, RegularJoin};
use crate::operators::keyed_process::{KeyedProcess, KeyedProcessFunction};
use crate::operators::map::{MapBatches, MapRows};
use crate::operators::rolling_reduce::{ReduceFunction, RollingReduce};
use crate::operators::running_aggregate::RunningAggregate;
use crate::operators::select::Select;
use crate::operators::split::Split;
use crate::operators::window::count::CountWindowAggregate;
use crate::operators::window::{WindowAggregate, WindowFunction};
use crate::operators::{OperatorFactory, TaskContext, UserResult};
use crate::partition::Partitioning;
use crate::row::{Row, RowRef};
use crate::runtime::control::JobControl;
use crate::runtime::executor::{self, JobResult, metrics_for};
use crate::runtime::metrics::JobMetrics;
use crate::state::AggregateFunction;
use crate::window::functions::{Typed, UserWindowFn};
use crate::window::{Agg, ProcessWindowFunction, Trigger, WindowAssigner};

struct EnvInner {
    graph: LogicalGraph,
    config: JobConfig,
    error: Option<WeirError>,
}

/// Where a job is built and run (Flink's `StreamExecutionEnvironment`).
#[derive(Clone)]
pub struct StreamExecutionEnvironment {
    inner: Arc<Mutex<EnvInner>>,
}

impl Default for StreamExecutionEnvironment {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamExecutionEnvironment {
    /// An empty job with default settings (parallelism = the number of cores).
    pub fn new() -> Self {
        StreamExecutionEnvironment {
            inner: Arc::new(Mutex::new(EnvInner {
                graph: LogicalGraph::default(),
                config: JobConfig::default(),
                error: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, EnvInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Default parallelism of every node.
    pub fn set_parallelism(&self, parallelism: usize) -> &Self {
        self.lock().config.parallelism = parallelism;
        self
    }

    /// Number of key groups (default 128).
    pub fn set_max_parallelism(&self, max_parallelism: u32) -> &Self {
        self.lock().config.max_parallelism = max_parallelism;
        self
    }

    /// Rows per batch for generating sources (default 4096).
    pub fn set_batch_size(&self, rows: usize) -> &Self {
        self.lock().config.batch_size = rows.max(1);
        self
    }

    /// Batches buffered per channel between subtasks (default 8).
    pub fn set_channel_capacity(&self, batches: usize) -> &Self {
        self.lock().config.channel_capacity = batches.max(1);
        self
    }

    /// Directory (path or URL) for malformed records.
    pub fn set_dead_letter(&self, location: impl Into<String>) -> &Self {
        self.lock().config.dead_letter = Some(location.into());
        self
    }

    /// Checkpoints every `interval` (Flink's `enableCheckpointing`) to the storage set with
    /// [`Self::set_checkpoint_storage`] (default `./.weir/checkpoints`).
    pub fn enable_checkpointing(&self, interval: std::time::Duration) -> &Self {
        let mut inner = self.lock();
        let mut c = inner.config.checkpoint.clone().unwrap_or_default();
        c.interval = interval;
        inner.config.checkpoint = Some(c);
        self
    }

    /// All checkpoint settings at once.
    pub fn set_checkpoint_config(&self, config: CheckpointConfig) -> &Self {
        self.lock().config.checkpoint = Some(config);
        self
    }

    /// Where checkpoints go: a path, `file://`, `s3://bucket/prefix`, `memory://`.
    pub fn set_checkpoint_storage(&self, url: impl Into<String>) -> &Self {
        let mut inner = self.lock();
        let mut c = inner.config.checkpoint.clone().unwrap_or_default();
        c.storage = url.into();
        inner.config.checkpoint = Some(c);
        self
    }

    /// Incremental checkpoints on or off (on by default): operators whose state can tell upload
    /// only what changed since the previous checkpoint, with a full one every `full_every`.
    pub fn set_incremental_checkpoints(&self, on: bool) -> &Self {
        let mut inner = self.lock();
        let mut c = inner.config.checkpoint.clone().unwrap_or_default();
        c.incremental = on;
        inner.config.checkpoint = Some(c);
        self
    }

    /// Where keyed state lives: [`StateBackend::Memory`](crate::state::StateBackend) (default)
    /// or on local disk for state larger than memory (Flink's `state.backend.type`).
    pub fn set_state_backend(&self, backend: crate::state::StateBackend) -> &Self {
        self.lock().config.state = backend;
        self
    }

    /// Where the job's state comes from: fresh, the newest checkpoint, or a snapshot URL.
    pub fn set_restore(&self, from: RestoreFrom) -> &Self {
        self.lock().config.restore = from;
        self
    }

    /// Starts from a snapshot even if some of its operator state has no operator in the job.
    pub fn allow_non_restored_state(&self, allow: bool) -> &Self {
        self.lock().config.allow_non_restored_state = allow;
        self
    }

    /// Restarts after failures (with checkpoints enabled).
    pub fn set_restart_strategy(&self, strategy: RestartStrategy) -> &Self {
        self.lock().config.restart = strategy;
        self
    }

    /// The clock processing time follows: processing-time timers and windows, trigger
    /// intervals and state TTLs. The wall clock by default; a test passes a
    /// [`ManualClock`](crate::contract::ManualClock) to move processing time itself.
    pub fn set_clock(&self, clock: crate::contract::SharedClock) -> &Self {
        self.lock().config.clock = clock;
        self
    }

    /// The settings so far.
    pub fn config(&self) -> JobConfig {
        self.lock().config.clone()
    }

    /// Adds a source; the node is named after its connector (rename with [`DataStream::name`]).
    pub fn add_source(&self, source: impl SourceFactory + 'static) -> DataStream {
        let name = source.connector().to_string();
        self.add_source_named(&name, Arc::new(source))
    }

    /// Adds a source named `name`.
    pub fn add_source_named(&self, name: &str, source: Arc<dyn SourceFactory>) -> DataStream {
        let id = self.add_node(name, NodeKind::Source(source), vec![]);
        DataStream::of_node(self.clone(), id)
    }

    fn add_node(&self, name: &str, kind: NodeKind, inputs: Vec<Edge>) -> NodeId {
        let mut inner = self.lock();
        let name = inner.graph.unique_name(name);
        inner.graph.add(Node {
            name,
            kind,
            parallelism: None,
            inputs,
            watermark: None,
        })
    }

    pub(crate) fn record_error(&self, e: WeirError) {
        let mut inner = self.lock();
        if inner.error.is_none() {
            inner.error = Some(e);
        }
    }

    /// The job's graph and configuration under `name`, checked, for a runner other than this
    /// process (the workers of a cluster).
    pub fn prepare(&self, name: &str) -> Result<(LogicalGraph, JobConfig)> {
        let mut inner = self.lock();
        if let Some(e) = inner.error.take() {
            return Err(e);
        }
        if name.is_empty() || name.contains(['/', '\\']) {
            return Err(WeirError::plan(format!(
                "job name '{name}' must be non-empty and contain no slashes"
            )));
        }
        inner.config.name = name.to_string();
        Ok((inner.graph.clone(), inner.config.clone()))
    }

    /// Runs the job to its end in this process (blocking; builds a runtime with one thread per
    /// core). Returns the final counters.
    pub fn execute(&self, name: &str) -> Result<JobResult> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| WeirError::plan(format!("cannot start the runtime: {e}")))?;
        rt.block_on(self.execute_async(name))
    }

    /// Runs the job on the current tokio runtime.
    pub async fn execute_async(&self, name: &str) -> Result<JobResult> {
        let (graph, config) = self.prepare(name)?;
        let metrics = metrics_for(&graph);
        executor::execute(&graph, &config, &metrics, CancellationToken::new()).await
    }

    /// Runs the job, stoppable through `cancel` (sources stop, in-flight data drains), with
    /// counters readable while it runs through `metrics` (see [`Self::metrics`]).
    pub async fn execute_with(&self, name: &str, metrics: &JobMetrics, cancel: CancellationToken) -> Result<JobResult> {
        let (graph, config) = self.prepare(name)?;
        executor::execute(&graph, &config, metrics, cancel).await
    }

    /// Runs the job with a handle for savepoints and stopping ([`JobControl`]).
    pub async fn execute_controlled(
        &self,
        name: &str,
        metrics: &JobMetrics,
        control: &JobControl,
    ) -> Result<JobResult> {
        let (graph, config) = self.prepare(name)?;
        executor::execute_controlled(&graph, &config, metrics, control).await
    }

    /// Counters for the job as built so far, to pass to [`Self::execute_with`].
    pub fn metrics(&self) -> JobMetrics {
        metrics_for(&self.lock().graph)
    }

    /// The physical plan (tasks, chains, edges) as text.
    pub async fn explain(&self) -> Result<String> {
        let (graph, config) = self.prepare("explain")?;
        executor::explain(&graph, &config).await
    }
}

/// A stream: the output of one node, or a union of several, with how it is partitioned to
/// whatever consumes it next.
#[derive(Clone)]
pub struct DataStream {
    env: StreamExecutionEnvironment,
    inputs: Vec<Edge>,
}

impl DataStream {
    fn of_node(env: StreamExecutionEnvironment, id: NodeId) -> Self {
        DataStream {
            env,
            inputs: vec![Edge {
                from: id,
                partitioning: Partitioning::Default,
                side: false,
            }],
        }
    }

    /// The environment this stream belongs to.
    pub fn env(&self) -> &StreamExecutionEnvironment {
        &self.env
    }

    /// The schema of this stream's rows (planning the graph up to it; sources may read a
    /// sample to infer theirs).
    pub async fn schema(&self) -> Result<SchemaRef> {
        let graph = self.env.lock().graph.clone();
        let planned = crate::plan::schema::infer(&graph).await?;
        let edge = self
            .inputs
            .first()
            .ok_or_else(|| WeirError::plan("a stream with no input"))?;
        Ok(crate::plan::schema::stream_of(&planned, edge))
    }

    fn single_node(&self, what: &str) -> Option<NodeId> {
        match self.inputs.as_slice() {
            [e] => Some(e.from),
            _ => {
                self.env.record_error(WeirError::plan(format!(
                    "{what} applies to one operator, not to a union"
                )));
                None
            }
        }
    }

    /// Names the node that produced this stream (its id in plans, metrics and errors).
    pub fn name(self, name: &str) -> Self {
        if let Some(id) = self.single_node("name") {
            let mut inner = self.env.lock();
            if inner
                .graph
                .nodes
                .iter()
                .enumerate()
                .any(|(i, n)| i != id && n.name == name)
            {
                drop(inner);
                self.env
                    .record_error(WeirError::plan(format!("two nodes are named '{name}'")));
            } else {
                inner.graph.nodes[id].name = name.to_string();
            }
        }
        self
    }

    /// The stable id checkpoints and savepoints map this node's state by (Flink's `uid`): the
    /// node's name, so the same as [`DataStream::name`].
    pub fn uid(self, uid: &str) -> Self {
        self.name(uid)
    }

    /// Event time for this source: records carry their time in a field, and the source emits
    /// watermarks by `strategy` (Flink's `WatermarkStrategy` given to `fromSource`).
    pub fn with_watermarks(self, strategy: WatermarkStrategy) -> Self {
        if let Some(id) = self.single_node("with_watermarks") {
            let mut inner = self.env.lock();
            if matches!(inner.graph.nodes[id].kind, NodeKind::Source(_)) {
                inner.graph.nodes[id].watermark = Some(strategy);
            } else {
                let name = inner.graph.nodes[id].name.clone();
                drop(inner);
                self.env.record_error(WeirError::plan(format!(
                    "with_watermarks applies to a source; '{name}' is not one"
                )));
            }
        }
        self
    }

    /// Sets the parallelism of the node that produced this stream.
    pub fn set_parallelism(self, parallelism: usize) -> Self {
        if let Some(id) = self.single_node("set_parallelism") {
            self.env.lock().graph.nodes[id].parallelism = Some(parallelism);
        }
        self
    }

    /// Adds an operator reading this stream.
    pub fn transform(&self, name: &str, op: Arc<dyn OperatorFactory>) -> DataStream {
        let id = self.env.add_node(name, NodeKind::Operator(op), self.inputs.clone());
        DataStream::of_node(self.env.clone(), id)
    }

    fn partitioned(&self, p: Partitioning) -> DataStream {
        let inputs = self
            .inputs
            .iter()
            .map(|e| Edge {
                from: e.from,
                partitioning: p.clone(),
                side: e.side,
            })
            .collect();
        DataStream {
            env: self.env.clone(),
            inputs,
        }
    }

    /// One output row per input row: `f` returns the values of `output`'s fields, in order.
    pub fn map(
        &self,
        output: SchemaRef,
        f: impl Fn(RowRef<'_>) -> UserResult<Row> + Send + Sync + 'static,
    ) -> DataStream {
        self.transform("map", Arc::new(MapRows { output, f: Arc::new(f) }))
    }

    /// A vectorized map over whole batches, keeping the schema.
    pub fn map_batches(
        &self,
        f: impl Fn(&TaskContext, RecordBatch) -> UserResult<RecordBatch> + Send + Sync + 'static,
    ) -> DataStream {
        self.transform(
            "map",
            Arc::new(MapBatches {
                output: None,
                f: Arc::new(f),
            }),
        )
    }

    /// A vectorized map over whole batches into `output`.
    pub fn map_batches_to(
        &self,
        output: SchemaRef,
        f: impl Fn(&TaskContext, RecordBatch) -> UserResult<RecordBatch> + Send + Sync + 'static,
    ) -> DataStream {
        self.transform(
            "map",
            Arc::new(MapBatches {
                output: Some(output),
                f: Arc::new(f),
            }),
        )
    }

    /// Keeps the rows for which `f` is true.
    pub fn filter(&self, f: impl Fn(RowRef<'_>) -> bool + Send + Sync + 'static) -> DataStream {
        self.transform("filter", Arc::new(FilterRows { f: Arc::new(f) }))
    }

    /// Keeps the rows for which the SQL condition is true, e.g. `"price > 100"`.
    pub fn filter_expr(&self, sql: &str) -> DataStream {
        self.transform("filter", Arc::new(FilterExpr::new(sql)))
    }

    /// Any number of rows (of `output`) per input row.
    pub fn flat_map(
        &self,
        output: SchemaRef,
        f: impl Fn(RowRef<'_>, &mut Vec<Row>) -> UserResult<()> + Send + Sync + 'static,
    ) -> DataStream {
        self.transform("flat_map", Arc::new(FlatMapRows { output, f: Arc::new(f) }))
    }

    /// Splits a text field into one row per piece (whitespace when `separator` is `None`),
    /// the piece in column `as_field`.
    pub fn split(&self, field: &str, separator: Option<&str>, as_field: &str) -> DataStream {
        self.transform(
            "flat_map",
            Arc::new(Split {
                field: field.into(),
                separator: separator.map(String::from),
                output_field: as_field.into(),
            }),
        )
    }

    /// Projection with SQL expressions: `["auction", "price * 0.908 AS euros", "*"]`.
    pub fn select(&self, items: &[&str]) -> DataStream {
        match Select::new(items) {
            Ok(s) => self.transform("select", Arc::new(s)),
            Err(e) => {
                self.env.record_error(e);
                self.clone()
            }
        }
    }

    /// Partitions by the hash of these fields: every row of a key goes to the one subtask that
    /// owns its key group.
    pub fn key_by(&self, keys: impl IntoKeys) -> KeyedStream {
        let keys = keys.into_keys();
        KeyedStream {
            stream: self.partitioned(Partitioning::Hash(keys.clone())),
            keys,
        }
    }

    /// Round-robin to the next operator's subtasks.
    pub fn rebalance(&self) -> DataStream {
        self.partitioned(Partitioning::Rebalance)
    }

    /// Random partitioning.
    pub fn shuffle(&self) -> DataStream {
        self.partitioned(Partitioning::Shuffle)
    }

    /// Every row to every subtask of the next operator.
    pub fn broadcast(&self) -> DataStream {
        self.partitioned(Partitioning::Broadcast)
    }

    /// Range partitioning on `field`: `boundaries` are sorted exclusive upper bounds; the next
    /// operator runs with `boundaries.len() + 1` subtasks, subtask `i` getting range `i`.
    pub fn partition_by_range(&self, field: &str, boundaries: Vec<serde_json::Value>) -> DataStream {
        self.partitioned(Partitioning::Range {
            field: field.into(),
            boundaries,
        })
    }

    /// The key fields, when every input of this stream is partitioned by the same keys.
    pub fn key_fields(&self) -> Option<Vec<String>> {
        match self.inputs.first().map(|e| &e.partitioning) {
            Some(Partitioning::Hash(k))
                if self
                    .inputs
                    .iter()
                    .all(|e| e.partitioning == Partitioning::Hash(k.clone())) =>
            {
                Some(k.clone())
            }
            _ => None,
        }
    }

    /// The records a window operator found too late (past its allowed lateness), as a stream
    /// of the window's input rows (Flink's `sideOutputLateData` + `getSideOutput`). Call it on
    /// the stream a window's `aggregate` returned.
    pub fn late_data(&self) -> DataStream {
        let Some(id) = self.single_node("late_data") else {
            return self.clone();
        };
        let is_window = matches!(&self.env.lock().graph.nodes[id].kind, NodeKind::Operator(o) if o.kind() == "window");
        if !is_window {
            self.env.record_error(WeirError::plan(
                "late_data applies to the output of a time window's aggregate",
            ));
            return self.clone();
        }
        DataStream {
            env: self.env.clone(),
            inputs: vec![Edge {
                from: id,
                partitioning: Partitioning::Default,
                side: true,
            }],
        }
    }

    /// Windows over the whole stream, not per key (Flink's `windowAll`); runs as one subtask.
    pub fn window_all(&self, assigner: WindowAssigner) -> WindowedStream {
        WindowedStream {
            stream: self.rebalance(),
            keys: vec![],
            assigner,
            allowed_lateness: 0,
            trigger: None,
        }
    }

    /// A window join with `other` (Flink's `join(other).where(..).equalTo(..).window(..)`):
    /// name each side's key fields, then the window; see [`JoinedStreams`].
    pub fn join(&self, other: &DataStream) -> JoinedStreams {
        JoinedStreams {
            left: self.clone(),
            right: other.clone(),
            left_keys: Vec::new(),
            right_keys: Vec::new(),
        }
    }

    /// Connects this stream with `other` (Flink's `connect`): one function then sees the rows of
    /// both, each with its own schema. Key both ([`ConnectedStreams::key_by`], or connect two
    /// keyed streams) and give a [`KeyedCoProcessFunction`] to
    /// [`ConnectedStreams::process`]; the key's state and timers are shared by the two inputs.
    pub fn connect(&self, other: &DataStream) -> ConnectedStreams {
        ConnectedStreams {
            first: self.clone(),
            second: other.clone(),
            keys: None,
        }
    }

    /// This stream as one input edge (a union becomes one through a pass-through step), for
    /// operators that tell their inputs apart.
    fn single_input(&self) -> DataStream {
        if self.inputs.len() <= 1 {
            return self.clone();
        }
        self.map_batches(|_, batch| Ok(batch))
    }

    /// The union of this stream and `others` (equal schemas).
    pub fn union(&self, others: &[&DataStream]) -> DataStream {
        let mut inputs = self.inputs.clone();
        for o in others {
            inputs.extend(o.inputs.iter().cloned());
        }
        DataStream {
            env: self.env.clone(),
            inputs,
        }
    }

    /// Writes the stream to a sink.
    pub fn add_sink(&self, sink: impl SinkFactory + 'static) -> DataStream {
        let name = format!("sink-{}", sink.connector());
        self.add_sink_named(&name, Arc::new(sink))
    }

    /// Writes the stream to a sink named `name`.
    pub fn add_sink_named(&self, name: &str, sink: Arc<dyn SinkFactory>) -> DataStream {
        let id = self.env.add_node(name, NodeKind::Sink(sink), self.inputs.clone());
        DataStream::of_node(self.env.clone(), id)
    }

    /// Prints the stream to stdout as JSON lines (Flink's `print()`).
    pub fn print(&self) -> DataStream {
        self.add_sink(Stdout::default())
    }
}

/// A stream partitioned by key (`key_by`): windows per key; every `DataStream` method is
/// available through deref.
#[derive(Clone)]
pub struct KeyedStream {
    stream: DataStream,
    keys: Vec<String>,
}

impl KeyedStream {
    /// The key fields.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// A function per record with keyed state and timers (Flink's `KeyedProcessFunction`);
    /// it appends rows of `output` to its output.
    pub fn process<F: KeyedProcessFunction + Clone>(&self, output: SchemaRef, function: F) -> DataStream {
        let op = KeyedProcess {
            keys: self.keys.clone(),
            output: Some(output),
            function: Arc::new(std::sync::Mutex::new(function)),
        };
        self.stream.transform("process", Arc::new(op))
    }

    /// Flink's rolling `reduce`: per record, `f(running, record)` becomes the key's running value
    /// and goes out (a key's first record goes out as it is). The running value is keyed state:
    /// checkpointed, restored and split by key group like any other.
    pub fn reduce(&self, f: impl ReduceFunction) -> DataStream {
        let op = KeyedProcess {
            keys: self.keys.clone(),
            output: None,
            function: Arc::new(std::sync::Mutex::new(RollingReduce::new(f))),
        };
        self.stream.transform("reduce", Arc::new(op))
    }

    /// Running aggregates per key: for every row, its key fields and the key's aggregates so far
    /// (Flink's keyed `sum`/`max`, or an updating `GROUP BY`).
    pub fn aggregate(&self, aggs: &[Agg]) -> DataStream {
        let op = RunningAggregate {
            keys: self.keys.clone(),
            aggs: aggs.to_vec(),
            changelog: false,
            state_ttl: None,
        };
        self.stream.transform("aggregate", Arc::new(op))
    }

    /// A regular join with `other` on this stream's keys = `other`'s keys (equal types, in
    /// order): every pair of rows with equal keys, kept in keyed state on both sides (Flink
    /// SQL's regular join, usable here on changelogs too). Output: this stream's columns, then
    /// `other`'s (names must differ), then `__op` when the result updates (an updating input
    /// or an outer join). See [`crate::operators::join`].
    pub fn join(&self, other: &KeyedStream, join_type: JoinType) -> DataStream {
        let op = RegularJoin {
            join_type,
            left_keys: self.keys.clone(),
            right_keys: other.keys.clone(),
            condition: None,
            state_ttl: None,
        };
        self.stream.union(&[&other.stream]).transform("join", Arc::new(op))
    }

    /// An interval join with `other` (Flink's `intervalJoin`): rows with equal keys join when
    /// the other row's event time lies within bounds of this row's, given by
    /// [`IntervalJoinBuilder::between`]. Each side's event time is the column its watermark
    /// strategy named (or [`IntervalJoinBuilder::time_columns`]); state is cleared as the
    /// watermark passes. See [`crate::operators::interval_join`].
    pub fn interval_join(&self, other: &KeyedStream) -> IntervalJoinBuilder {
        IntervalJoinBuilder {
            left: self.clone(),
            right: other.clone(),
            times: (None, None),
        }
    }

    /// The partitioned stream (to add an operator of one's own that works per key).
    pub fn stream(&self) -> &DataStream {
        &self.stream
    }

    /// An updating aggregate per key, as a changelog (Flink's `toChangelogStream` of a
    /// `GROUP BY`): a key's first row is an insert (`+I`); each later row retracts the key's
    /// previous result (`-U`) and emits the new one (`+U`), in the trailing `__op` column.
    pub fn changelog_aggregate(&self, aggs: &[Agg]) -> DataStream {
        let op = RunningAggregate {
            keys: self.keys.clone(),
            aggs: aggs.to_vec(),
            changelog: true,
            state_ttl: None,
        };
        self.stream.transform("aggregate", Arc::new(op))
    }

    /// Tumbling count windows: every `size` records of a key (Flink's `countWindow(size)`).
    pub fn count_window(&self, size: u64) -> CountWindowedStream {
        self.count_window_sliding(size, size)
    }

    /// Sliding count windows: every `slide` records of a key, over its last `size` records.
    pub fn count_window_sliding(&self, size: u64, slide: u64) -> CountWindowedStream {
        CountWindowedStream {
            stream: self.stream.clone(),
            keys: self.keys.clone(),
            size,
            slide,
        }
    }

    /// Windows per key (Flink's `keyBy(..).window(..)`).
    pub fn window(&self, assigner: WindowAssigner) -> WindowedStream {
        WindowedStream {
            stream: self.stream.clone(),
            keys: self.keys.clone(),
            assigner,
            allowed_lateness: 0,
            trigger: None,
        }
    }
}

/// Two streams to join window by window (Flink's `JoinedStreams`): every pair of a left and a
/// right row with equal keys in the same window. `where_` names the left keys (`where` is a
/// Rust keyword), `equal_to` the right's.
#[derive(Clone)]
pub struct JoinedStreams {
    left: DataStream,
    right: DataStream,
    left_keys: Vec<String>,
    right_keys: Vec<String>,
}

impl JoinedStreams {
    /// The left stream's key fields.
    pub fn where_(mut self, keys: impl IntoKeys) -> Self {
        self.left_keys = keys.into_keys();
        self
    }

    /// The right stream's key fields (equal types, in order).
    pub fn equal_to(mut self, keys: impl IntoKeys) -> Self {
        self.right_keys = keys.into_keys();
        self
    }

    /// Joins within tumbling or sliding event-time windows (`TumblingEventTimeWindows::of(..)`,
    /// `SlidingEventTimeWindows::of(..)`, the time field named with `.on(..)` or the one each
    /// side's watermark strategy named). Output, append-only: the left columns, then the right's
    /// (names must differ); a pair shows once per window holding both rows, as in Flink. A pair
    /// comes out as soon as both rows are there rather than when the window closes: the same
    /// pairs, sooner; each row is kept until the watermark passes its last window. Session
    /// windows (which merge) are refused.
    pub fn window(&self, assigner: WindowAssigner) -> DataStream {
        let env = self.left.env.clone();
        if self.left_keys.is_empty() || self.right_keys.is_empty() {
            env.record_error(WeirError::plan(
                "window join: name each side's key fields with .where_(..) and .equal_to(..)",
            ));
        }
        let span = assigner.size.saturating_sub(1);
        let op = IntervalJoin {
            left_keys: self.left_keys.clone(),
            right_keys: self.right_keys.clone(),
            left_time: assigner.time_field.clone(),
            right_time: assigner.time_field.clone(),
            lower: -span,
            upper: span,
            semi: false,
            window: Some(assigner),
            outer: [false, false],
            condition: None,
        };
        let (left, right) = (
            self.left.key_by(self.left_keys.clone()),
            self.right.key_by(self.right_keys.clone()),
        );
        left.stream
            .union(&[&right.stream])
            .transform("window_join", Arc::new(op))
    }
}

/// Two connected streams (Flink's `ConnectedStreams`), waiting for their keys and function.
#[derive(Clone)]
pub struct ConnectedStreams {
    first: DataStream,
    second: DataStream,
    keys: Option<(Vec<String>, Vec<String>)>,
}

impl ConnectedStreams {
    /// Keys the first stream by `first` and the second by `second` (as many fields, of the same
    /// types, in order; Flink's `keyBy(key1, key2)`): rows of equal keys meet in one subtask.
    pub fn key_by(&self, first: impl IntoKeys, second: impl IntoKeys) -> ConnectedStreams {
        let (a, b) = (
            self.first.single_input().key_by(first),
            self.second.single_input().key_by(second),
        );
        ConnectedStreams {
            keys: Some((a.keys.clone(), b.keys.clone())),
            first: a.stream,
            second: b.stream,
        }
    }

    /// Runs `function` over both streams per key (Flink's `KeyedCoProcessFunction`): rows of
    /// the first go to `process_element1`, of the second to `process_element2`, timers to
    /// `on_timer`; it appends rows of `output`. Both streams must be keyed.
    pub fn process<F: KeyedCoProcessFunction + Clone>(&self, output: SchemaRef, function: F) -> DataStream {
        let keys = self
            .keys
            .clone()
            .or_else(|| Some((self.first.key_fields()?, self.second.key_fields()?)));
        let single = self.first.inputs.len() == 1 && self.second.inputs.len() == 1;
        let Some((keys1, keys2)) = keys.filter(|_| single) else {
            self.first.env.record_error(WeirError::plan(
                "connect(..).process needs both streams keyed, each one stream (connect(..).key_by(k1, k2),                  or connect two key_by streams that are not unions)",
            ));
            return self.first.clone();
        };
        let op = KeyedCoProcess {
            keys1,
            keys2,
            output,
            function: Arc::new(std::sync::Mutex::new(function)),
        };
        self.first.union(&[&self.second]).transform("co_process", Arc::new(op))
    }
}

impl ConnectedStreams {
    /// Flink's broadcast state pattern: this keyed stream connected with a `broadcast()`
    /// stream. Rows of the broadcast stream reach every subtask and write the
    /// [`crate::state::broadcast::BroadcastState`] in `process_broadcast_element`; keyed rows
    /// read it in `process_element`, with their key's state and timers. The broadcast state is
    /// checkpointed and restored at any parallelism.
    pub fn process_broadcast<F: KeyedBroadcastProcessFunction + Clone>(
        &self,
        output: SchemaRef,
        function: F,
    ) -> DataStream {
        let keys = self.keys.clone().map(|k| k.0).or_else(|| self.first.key_fields());
        let broadcast = !self.second.inputs.is_empty()
            && self
                .second
                .inputs
                .iter()
                .all(|e| e.partitioning == Partitioning::Broadcast);
        let single = self.first.inputs.len() == 1 && self.second.inputs.len() == 1;
        let Some(keys) = keys.filter(|_| broadcast && single) else {
            self.first.env.record_error(WeirError::plan(
                "process_broadcast connects a keyed stream (key_by, not a union) with a broadcast one: \
                 events.key_by(\"k\").connect(&rules.broadcast())",
            ));
            return self.first.clone();
        };
        let op = KeyedBroadcastProcess {
            keys,
            output,
            function: Arc::new(std::sync::Mutex::new(function)),
        };
        self.first
            .union(&[&self.second])
            .transform("broadcast_process", Arc::new(op))
    }
}

/// An interval join waiting for its bounds (Flink's `IntervalJoin`).
#[derive(Clone)]
pub struct IntervalJoinBuilder {
    left: KeyedStream,
    right: KeyedStream,
    times: (Option<String>, Option<String>),
}

impl IntervalJoinBuilder {
    /// Names each side's time column instead of the ones their watermark strategies named.
    pub fn time_columns(mut self, left: &str, right: &str) -> Self {
        self.times = (Some(left.into()), Some(right.into()));
        self
    }

    /// Joins a left row `l` and a right row `r` with equal keys when
    /// `l.time + lower <= r.time <= l.time + upper` (milliseconds, inclusive; `lower` may be
    /// negative), as Flink's `between(lower, upper)`. Output, append-only: the left stream's
    /// columns, then the right's (names must differ).
    pub fn between(&self, lower_ms: i64, upper_ms: i64) -> DataStream {
        let op = IntervalJoin {
            left_keys: self.left.keys.clone(),
            right_keys: self.right.keys.clone(),
            left_time: self.times.0.clone(),
            right_time: self.times.1.clone(),
            lower: lower_ms,
            upper: upper_ms,
            semi: false,
            window: None,
            outer: [false, false],
            condition: None,
        };
        self.left
            .stream
            .union(&[&self.right.stream])
            .transform("interval_join", Arc::new(op))
    }
}

/// A count-windowed stream, waiting for what to compute per window.
#[derive(Clone)]
pub struct CountWindowedStream {
    stream: DataStream,
    keys: Vec<String>,
    size: u64,
    slide: u64,
}

impl CountWindowedStream {
    /// Aggregates per count window: key fields, `window_start`, `window_end` (the event-time
    /// span of the window's records, when the stream has event time), then the aggregates.
    pub fn aggregate(&self, aggs: &[Agg]) -> DataStream {
        let op = CountWindowAggregate {
            keys: self.keys.clone(),
            size: self.size,
            slide: self.slide,
            aggs: aggs.to_vec(),
        };
        self.stream.transform("count_window", Arc::new(op))
    }
}

/// A windowed stream, waiting for what to compute per window.
#[derive(Clone)]
pub struct WindowedStream {
    stream: DataStream,
    keys: Vec<String>,
    assigner: WindowAssigner,
    allowed_lateness: i64,
    trigger: Option<Arc<dyn Trigger>>,
}

impl WindowedStream {
    /// Keeps windows this long after they fire; records arriving then update and re-fire them.
    pub fn allowed_lateness(mut self, lateness: std::time::Duration) -> Self {
        self.allowed_lateness = lateness.as_millis() as i64;
        self
    }

    /// When a global window fires and purges (e.g. `PurgingTrigger::of(CountTrigger::of(100))`).
    pub fn trigger(mut self, trigger: Arc<dyn Trigger>) -> Self {
        self.trigger = Some(trigger);
        self
    }

    fn apply(&self, name: &str, function: WindowFunction) -> DataStream {
        let op = WindowAggregate {
            keys: self.keys.clone(),
            assigner: self.assigner.clone(),
            function,
            allowed_lateness: self.allowed_lateness,
            trigger: self.trigger.clone(),
        };
        let out = self.stream.transform(name, Arc::new(op));
        if self.keys.is_empty() {
            out.set_parallelism(1)
        } else {
            out
        }
    }

    /// Incremental built-in aggregates per window: rows of key fields, `window_start`,
    /// `window_end`, then the aggregates.
    pub fn aggregate(&self, aggs: &[Agg]) -> DataStream {
        self.apply("window", WindowFunction::Aggregates(aggs.to_vec()))
    }

    /// A user [`AggregateFunction`] per window, fed incrementally (Flink's
    /// `aggregate(AggregateFunction)`): rows of key fields, `window_start`, `window_end`, then the
    /// function's result, whose values are `fields`. The accumulator is `Clone + Sync`: a
    /// checkpoint freezes window contents and copies an accumulator only when it next changes.
    pub fn aggregate_function<F, Acc>(&self, function: F, fields: Vec<Field>) -> DataStream
    where
        F: AggregateFunction<Row, Acc, Row> + 'static,
        Acc: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
    {
        self.apply(
            "window",
            WindowFunction::User(UserWindowFn::Aggregate {
                fields,
                function: Arc::new(Typed(function, std::marker::PhantomData)),
            }),
        )
    }

    /// Like [`WindowedStream::aggregate_function`] for a function whose result is any number of
    /// rows (each becomes an output row after the key fields and window bounds), e.g. every
    /// record with the window's highest price.
    pub fn aggregate_function_rows<F, Acc>(&self, function: F, fields: Vec<Field>) -> DataStream
    where
        F: AggregateFunction<Row, Acc, Vec<Row>> + 'static,
        Acc: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
    {
        self.apply(
            "window",
            WindowFunction::User(UserWindowFn::Aggregate {
                fields,
                function: Arc::new(Typed(function, std::marker::PhantomData)),
            }),
        )
    }

    /// Folds each window's records into one (Flink's `reduce`): rows of the input's fields,
    /// then `window_start`, `window_end`.
    pub fn reduce(&self, f: impl Fn(Row, Row) -> UserResult<Row> + Send + Sync + 'static) -> DataStream {
        self.apply("window", WindowFunction::User(UserWindowFn::Reduce(Arc::new(f))))
    }

    /// All records of each fired window, in arrival order, to `function` (Flink's
    /// `process(ProcessWindowFunction)`); it appends rows of `output`.
    pub fn process<F: ProcessWindowFunction + Clone>(&self, output: SchemaRef, function: F) -> DataStream {
        self.process_into(Some(output), function)
    }

    /// Like [`WindowedStream::process`] for a function whose rows have the input's schema (a
    /// reduce or a top-k written as a process function).
    pub fn process_keeping_schema<F: ProcessWindowFunction + Clone>(&self, function: F) -> DataStream {
        self.process_into(None, function)
    }

    fn process_into<F: ProcessWindowFunction + Clone>(&self, output: Option<SchemaRef>, function: F) -> DataStream {
        let prototype = std::sync::Mutex::new(function);
        let make: Arc<dyn Fn() -> Box<dyn ProcessWindowFunction> + Send + Sync> = Arc::new(move || {
            Box::new(prototype.lock().unwrap_or_else(|e| e.into_inner()).clone()) as Box<dyn ProcessWindowFunction>
        });
        self.apply("window", WindowFunction::User(UserWindowFn::Process { output, make }))
    }
}

impl std::ops::Deref for KeyedStream {
    type Target = DataStream;
    fn deref(&self) -> &DataStream {
        &self.stream
    }
}

/// Key fields for `key_by`: a name, a list of names.
pub trait IntoKeys {
    /// The field names.
    fn into_keys(self) -> Vec<String>;
}

impl IntoKeys for &str {
    fn into_keys(self) -> Vec<String> {
        vec![self.to_string()]
    }
}
impl IntoKeys for &[&str] {
    fn into_keys(self) -> Vec<String> {
        self.iter().map(|s| s.to_string()).collect()
    }
}
impl<const N: usize> IntoKeys for [&str; N] {
    fn into_keys(self) -> Vec<String> {
        self.iter().map(|s| s.to_string()).collect()
    }
}
impl IntoKeys for Vec<String> {
    fn into_keys(self) -> Vec<String> {
        self
    }
}
