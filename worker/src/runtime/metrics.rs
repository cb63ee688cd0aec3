//! Counters per node, shared by its subtasks, read by progress output and the job result.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::checkpoint::metrics::CheckpointMetrics;
pub use crate::contract::NodeMetrics;

/// What kind of node a counter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub enum NodeRole {
    /// A source.
    Source,
    /// An operator.
    Operator,
    /// A sink.
    Sink,
}

/// Counters of every node of a job, and of its checkpoints.
#[derive(Debug, Clone, Default)]
pub struct JobMetrics {
    nodes: Vec<(String, NodeRole, Arc<NodeMetrics>)>,
    /// Checkpoint counters.
    pub checkpoints: Arc<CheckpointMetrics>,
    /// Restarts after failures so far (shown in the progress line).
    pub restarts: Arc<std::sync::atomic::AtomicU64>,
    /// The failures that restarted or ended the job, newest last.
    pub exceptions: Arc<Exceptions>,
    /// Per subtask of each vertex running here.
    subtasks: Arc<Mutex<Vec<Registered>>>,
}

/// A subtask's counters under its vertex and index.
type Registered = (String, usize, Arc<SubtaskMetrics>);

/// Counters and times of one subtask of a vertex (a task: a chain of operators), cheap enough
/// to stay on (a clock read per event and per full channel): records in and out, time spent
/// waiting for input (idle) and for room in an output channel (back-pressured), the rest being
/// busy; and the watermarks it received and sent.
#[derive(Debug)]
pub struct SubtaskMetrics {
    /// Records into the vertex's first operator.
    pub records_in: AtomicU64,
    /// Records out of its last (sent downstream).
    pub records_out: AtomicU64,
    /// Bytes of the batches into its first operator (their Arrow buffers).
    pub bytes_in: AtomicU64,
    /// Bytes of the batches it sent downstream.
    pub bytes_out: AtomicU64,
    idle_ns: AtomicU64,
    backpressured_ns: AtomicU64,
    input_watermark: AtomicI64,
    output_watermark: AtomicI64,
    started: Instant,
    /// Whether its vertex reads a source.
    source: bool,
    /// Records its source has not read yet (−1: unknown).
    lag: AtomicI64,
    /// The newest checkpoint this subtask took part in, and its figures for it.
    checkpoint_id: AtomicU64,
    alignment_ms: AtomicU64,
    sync_ms: AtomicU64,
    async_ms: AtomicU64,
    checkpointed_bytes: AtomicU64,
    state_bytes: AtomicU64,
}

impl Default for SubtaskMetrics {
    fn default() -> Self {
        SubtaskMetrics {
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            idle_ns: AtomicU64::new(0),
            backpressured_ns: AtomicU64::new(0),
            input_watermark: AtomicI64::new(i64::MIN),
            output_watermark: AtomicI64::new(i64::MIN),
            started: Instant::now(),
            source: false,
            lag: AtomicI64::new(-1),
            checkpoint_id: AtomicU64::new(0),
            alignment_ms: AtomicU64::new(0),
            sync_ms: AtomicU64::new(0),
            async_ms: AtomicU64::new(0),
            checkpointed_bytes: AtomicU64::new(0),
            state_bytes: AtomicU64::new(0),
        }
    }
}

impl SubtaskMetrics {
    /// Adds time spent waiting for input.
    pub fn idle(&self, d: Duration) {
        self.idle_ns.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Adds time spent waiting for room downstream.
    pub fn backpressured(&self, d: Duration) {
        self.backpressured_ns.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Records a watermark received.
    pub fn input_watermark(&self, w: i64) {
        self.input_watermark.store(w, Ordering::Relaxed);
    }

    /// Records a watermark sent.
    pub fn output_watermark(&self, w: i64) {
        self.output_watermark.store(w, Ordering::Relaxed);
    }

    /// Records its source has not read yet.
    pub fn source_lag(&self, records: u64) {
        self.lag
            .store(i64::try_from(records).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// Checkpoint `id` reached this subtask after `alignment` (from its first input's barrier
    /// to its last's; zero with one input or at a source).
    pub fn checkpoint_aligned(&self, id: u64, alignment: Duration) {
        self.checkpoint_id.store(id, Ordering::Relaxed);
        self.alignment_ms.store(alignment.as_millis() as u64, Ordering::Relaxed);
        for figure in [
            &self.sync_ms,
            &self.async_ms,
            &self.checkpointed_bytes,
            &self.state_bytes,
        ] {
            figure.store(0, Ordering::Relaxed);
        }
    }

    /// The subtask's operators took their snapshots of checkpoint `id` in `sync` (the task
    /// stood still meanwhile).
    pub fn checkpoint_synced(&self, id: u64, sync: Duration) {
        if self.checkpoint_id.load(Ordering::Relaxed) == id {
            self.sync_ms.store(sync.as_millis() as u64, Ordering::Relaxed);
        }
    }

    /// One of its state files of checkpoint `id` was stored `took` after the barrier (encoding
    /// and upload, in the background), `written` bytes, its state `full` bytes (what a restore
    /// reads: with an incremental chain's earlier files). The subtask's async time is its
    /// slowest file's; its bytes are its files' sums.
    pub fn checkpoint_stored(&self, id: u64, took: Duration, written: u64, full: u64) {
        if self.checkpoint_id.load(Ordering::Relaxed) == id {
            self.async_ms.fetch_max(took.as_millis() as u64, Ordering::Relaxed);
            self.checkpointed_bytes.fetch_add(written, Ordering::Relaxed);
            self.state_bytes.fetch_add(full, Ordering::Relaxed);
        }
    }

    fn stats(&self, vertex: &str, subtask: usize) -> SubtaskStats {
        let watermark = |a: &AtomicI64| Some(a.load(Ordering::Relaxed)).filter(|w| *w != i64::MIN);
        SubtaskStats {
            vertex: vertex.to_string(),
            subtask,
            source: self.source,
            lag: u64::try_from(self.lag.load(Ordering::Relaxed)).ok(),
            records_in: self.records_in.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            idle_ms: self.idle_ns.load(Ordering::Relaxed) / 1_000_000,
            backpressured_ms: self.backpressured_ns.load(Ordering::Relaxed) / 1_000_000,
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            input_watermark: watermark(&self.input_watermark),
            output_watermark: watermark(&self.output_watermark),
            checkpoint: match self.checkpoint_id.load(Ordering::Relaxed) {
                0 => None,
                id => Some(SubtaskCheckpoint {
                    id,
                    alignment_ms: self.alignment_ms.load(Ordering::Relaxed),
                    sync_ms: self.sync_ms.load(Ordering::Relaxed),
                    async_ms: self.async_ms.load(Ordering::Relaxed),
                    checkpointed_bytes: self.checkpointed_bytes.load(Ordering::Relaxed),
                    state_bytes: self.state_bytes.load(Ordering::Relaxed),
                }),
            },
        }
    }
}

/// A subtask's part in its newest checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct SubtaskCheckpoint {
    /// Checkpoint id.
    pub id: u64,
    /// From the first input's barrier to the last's (the inputs that delivered theirs wait), ms.
    pub alignment_ms: u64,
    /// The operators' snapshots, taken while the task stands still, ms.
    pub sync_ms: u64,
    /// From the barrier to its slowest state file stored (encoding and upload in the
    /// background), ms.
    pub async_ms: u64,
    /// Bytes it wrote for this checkpoint (an incremental one: its changes).
    pub checkpointed_bytes: u64,
    /// Bytes of its state as of this checkpoint: what a restore reads (with an incremental
    /// chain's earlier files).
    pub state_bytes: u64,
}

/// Whether subtasks count their records and time their waits (busy, idle, back-pressured):
/// on unless the environment says `WEIR_SUBTASK_METRICS=off` (to measure what they cost;
/// checkpoint figures and watermarks are kept either way).
pub fn subtask_timing() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        !matches!(
            std::env::var("WEIR_SUBTASK_METRICS").as_deref(),
            Ok("off" | "false" | "0")
        )
    })
}

/// One subtask's figures at one moment (what workers send the coordinator).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubtaskStats {
    /// The vertex: its operators' names joined with ` -> `.
    pub vertex: String,
    /// Subtask index.
    pub subtask: usize,
    /// Whether its vertex reads a source (its records are the ones read).
    #[serde(default)]
    pub source: bool,
    /// Records its source has not read yet (Kafka: end offsets − positions), when it tells.
    #[serde(default)]
    pub lag: Option<u64>,
    /// Records in.
    pub records_in: u64,
    /// Records out.
    pub records_out: u64,
    /// Bytes in (Arrow buffers of the batches).
    #[serde(default)]
    pub bytes_in: u64,
    /// Bytes out.
    #[serde(default)]
    pub bytes_out: u64,
    /// Time waiting for input since it started, ms.
    pub idle_ms: u64,
    /// Time waiting for room downstream since it started, ms.
    pub backpressured_ms: u64,
    /// Since it started, ms (busy = elapsed − idle − back-pressured).
    pub elapsed_ms: u64,
    /// The newest watermark received.
    pub input_watermark: Option<i64>,
    /// The newest watermark sent.
    pub output_watermark: Option<i64>,
    /// Its part in the newest checkpoint it took part in.
    #[serde(default)]
    pub checkpoint: Option<SubtaskCheckpoint>,
}

/// How many failures [`Exceptions`] keeps.
pub const EXCEPTIONS_KEPT: usize = 32;

/// One failure of a job's run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ExceptionRecord {
    /// When it was seen, ms since the epoch.
    pub timestamp_ms: i64,
    /// The error, as the run reported it (it names the operator or connector).
    pub message: String,
    /// The run (generation) it ended.
    pub generation: u64,
}

/// The last [`EXCEPTIONS_KEPT`] failures of a job, for the REST API and dashboard.
#[derive(Debug, Default)]
pub struct Exceptions(Mutex<VecDeque<ExceptionRecord>>);

impl Exceptions {
    /// Records a failure of run `generation`.
    pub fn record(&self, generation: u64, message: impl Into<String>) {
        let mut list = self.0.lock().expect("exceptions lock");
        if list.len() == EXCEPTIONS_KEPT {
            list.pop_front();
        }
        list.push_back(ExceptionRecord {
            timestamp_ms: crate::contract::clock::wall_ms(),
            message: message.into(),
            generation,
        });
    }

    /// The newest failure's message.
    pub fn last_message(&self) -> Option<String> {
        self.0
            .lock()
            .expect("exceptions lock")
            .back()
            .map(|e| e.message.clone())
    }

    /// The failures kept, oldest first.
    pub fn list(&self) -> Vec<ExceptionRecord> {
        self.0.lock().expect("exceptions lock").iter().cloned().collect()
    }
}

/// A snapshot of one node's counters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct NodeStats {
    /// Node id.
    pub name: String,
    /// Role.
    pub role: NodeRole,
    /// Rows in.
    pub records_in: u64,
    /// Rows out.
    pub records_out: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// Late records.
    pub late_records: u64,
}

impl JobMetrics {
    /// Registers a node; returns its counters.
    pub fn register(&mut self, name: &str, role: NodeRole) -> Arc<NodeMetrics> {
        let m = Arc::new(NodeMetrics::default());
        self.nodes.push((name.to_string(), role, m.clone()));
        m
    }

    /// Counters for subtask `subtask` of `vertex` (a run's subtask replaces the previous
    /// run's).
    pub fn register_subtask(&self, vertex: &str, subtask: usize, source: bool) -> Arc<SubtaskMetrics> {
        let m = Arc::new(SubtaskMetrics {
            source,
            ..SubtaskMetrics::default()
        });
        let mut list = self.subtasks.lock().expect("subtask metrics lock");
        list.retain(|(v, i, _)| !(v == vertex && *i == subtask));
        list.push((vertex.to_string(), subtask, m.clone()));
        m
    }

    /// Every subtask's figures now.
    pub fn subtask_snapshot(&self) -> Vec<SubtaskStats> {
        let list = self.subtasks.lock().expect("subtask metrics lock");
        list.iter().map(|(v, i, m)| m.stats(v, *i)).collect()
    }

    /// Counters in registration order.
    pub fn nodes_in_order(&self) -> Vec<Arc<NodeMetrics>> {
        self.nodes.iter().map(|(_, _, m)| m.clone()).collect()
    }

    /// Current values.
    pub fn snapshot(&self) -> Vec<NodeStats> {
        self.nodes
            .iter()
            .map(|(name, role, m)| NodeStats {
                name: name.clone(),
                role: *role,
                records_in: m.records_in.load(Ordering::Relaxed),
                records_out: m.records_out.load(Ordering::Relaxed),
                dead_letters: m.dead_letters.load(Ordering::Relaxed),
                late_records: m.late_records.load(Ordering::Relaxed),
            })
            .collect()
    }
}
