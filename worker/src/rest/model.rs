//! The REST API's JSON documents. Names follow Flink's REST API where a resource means the same
//! (`/overview`, `/jobs/{id}`, `…/checkpoints`, kebab-case keys), so habits and scripts carry
//! over; Weir's own fields (dead letters, late records, generations) sit beside them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::checkpoint::metrics::CheckpointRecord;
use crate::runtime::metrics::{ExceptionRecord, SubtaskCheckpoint};

/// `GET /overview`: the cluster at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct Overview {
    /// Workers attached (Flink: task managers).
    pub taskmanagers: usize,
    /// Jobs running (0 or 1: one job per coordinator).
    pub jobs_running: usize,
    /// Jobs finished.
    pub jobs_finished: usize,
    /// Jobs failed.
    pub jobs_failed: usize,
    /// Jobs stopped (with or without a savepoint).
    pub jobs_cancelled: usize,
    /// This build's version.
    pub weir_version: String,
}

/// `GET /jobs`: the job ids with their state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobList {
    /// One per job.
    pub jobs: Vec<JobId>,
}

/// A job's id and state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobId {
    /// The job id (its name: one name per job, as checkpoints are kept under it).
    pub id: String,
    /// `running`, `finished`, `failed`, `stopped`, `restarting`, …
    pub status: String,
}

/// `GET /jobs/{id}`: the job, its vertices (tasks: chains of operators) and its plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct JobDetail {
    /// Job id.
    pub jid: String,
    /// Job name.
    pub name: String,
    /// Job state.
    pub state: String,
    /// When this coordinator started the job, ms since the epoch.
    pub start_time: i64,
    /// Since then, ms.
    pub duration: i64,
    /// Now, ms since the epoch (the time the figures were read).
    pub now: i64,
    /// Current run (each restart is a new generation).
    pub generation: u64,
    /// Restarts after failures.
    pub restarts: u32,
    /// Tasks, in plan order.
    pub vertices: Vec<Vertex>,
    /// The dataflow: vertices with their inputs.
    pub plan: Plan,
}

/// A vertex: one task (a chain of operators run by the same subtasks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct Vertex {
    /// Vertex id (`v0`, `v1`, … in plan order).
    pub id: String,
    /// Its operators' names, joined with ` -> `.
    pub name: String,
    /// Subtasks.
    pub parallelism: usize,
    /// The job's state (every vertex runs while the job does).
    pub status: String,
    /// Its operators, in chain order.
    pub operators: Vec<OperatorView>,
    /// Records into its first operator and out of its last.
    pub metrics: VertexMetrics,
    /// The busiest subtask's share of time processing (0–1), over the last second or so.
    pub busy_ratio: f64,
    /// The most back-pressured subtask's share of time waiting for room downstream (0–1).
    pub backpressured_ratio: f64,
    /// Its operators' state over all subtasks as of their newest checkpoint, bytes (what a
    /// restore reads).
    pub state_size: u64,
    /// Per subtask (those that reported).
    pub subtasks: Vec<SubtaskView>,
}

/// One subtask of a vertex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct SubtaskView {
    /// Subtask index.
    pub subtask: usize,
    /// The worker it runs on (`worker-<ordinal>`).
    pub taskmanager_id: String,
    /// Records into the vertex's first operator.
    pub read_records: u64,
    /// Records out of its last.
    pub write_records: u64,
    /// Records in per second.
    pub read_records_per_second: f64,
    /// Records out per second.
    pub write_records_per_second: f64,
    /// Bytes into the vertex's first operator (the batches' Arrow buffers).
    pub read_bytes: u64,
    /// Bytes it sent downstream.
    pub write_bytes: u64,
    /// Bytes in per second.
    pub read_bytes_per_second: f64,
    /// Bytes out per second.
    pub write_bytes_per_second: f64,
    /// Share of time processing.
    pub busy_ratio: f64,
    /// Share of time waiting for input.
    pub idle_ratio: f64,
    /// Share of time waiting for room downstream (back-pressure from a slower consumer).
    pub backpressured_ratio: f64,
    /// The newest watermark it received, ms since the epoch.
    pub input_watermark: Option<i64>,
    /// The newest watermark it sent.
    pub output_watermark: Option<i64>,
    /// Its part in the newest checkpoint it took part in: alignment, sync and async time,
    /// state size.
    pub checkpoint: Option<SubtaskCheckpoint>,
    /// A source subtask: records not read yet (Kafka: end offsets − positions), when known.
    pub lag: Option<u64>,
}

/// `GET /jobs/{id}/vertices/{vid}/backpressure`, as Flink's: the level is `ok` below 10 % of
/// the time back-pressured, `low` up to 50 %, `high` above.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct BackPressure {
    /// `ok` (figures available).
    pub status: String,
    /// The worst subtask's level.
    pub backpressure_level: String,
    /// When the figures were read, ms since the epoch.
    pub end_timestamp: i64,
    /// Per subtask.
    pub subtasks: Vec<SubtaskBackPressure>,
}

/// One subtask's back-pressure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct SubtaskBackPressure {
    /// Subtask index.
    pub subtask: usize,
    /// `ok`, `low` or `high`.
    pub backpressure_level: String,
    /// Share of time back-pressured.
    pub ratio: f64,
    /// Share of time idle.
    pub idle_ratio: f64,
    /// Share of time busy.
    pub busy_ratio: f64,
}

/// One entry of `GET /jobs/{id}/vertices/{vid}/watermarks` (Flink's form: `<subtask>.<name>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WatermarkEntry {
    /// `<subtask>.currentInputWatermark` or `<subtask>.currentOutputWatermark`.
    pub id: String,
    /// The watermark, ms since the epoch.
    pub value: i64,
}

/// One operator of a vertex, with its counters over all subtasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct OperatorView {
    /// Node name (the `uid` its state is kept under).
    pub name: String,
    /// What it is (`source:kafka`, `window`, `join`, `sink:file`, …).
    pub kind: String,
    /// Counters.
    pub metrics: VertexMetrics,
}

/// Counters of a vertex or operator (Flink's `read-records` / `write-records`, plus Weir's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct VertexMetrics {
    /// Records in.
    pub read_records: u64,
    /// Records out.
    pub write_records: u64,
    /// Malformed records sent to the dead-letter output.
    pub dead_letters: u64,
    /// Records later than the allowed lateness.
    pub late_records: u64,
}

/// The dataflow, as Flink's `plan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    /// Job id.
    pub jid: String,
    /// Job name.
    pub name: String,
    /// Vertices with their inputs.
    pub nodes: Vec<PlanNode>,
}

/// A vertex in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlanNode {
    /// Vertex id.
    pub id: String,
    /// Subtasks.
    pub parallelism: usize,
    /// Its operators as `name [kind]`, joined with ` -> `.
    pub description: String,
    /// Upstream vertices.
    pub inputs: Vec<PlanInput>,
}

/// An edge into a vertex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlanInput {
    /// Upstream vertex id.
    pub id: String,
    /// How records are partitioned: `forward`, `rebalance`, `shuffle`, `hash`, `range`,
    /// `broadcast`.
    pub ship_strategy: String,
}

/// `GET /jobs/{id}/vertices/{vid}/taskmanagers`: a vertex's counters per worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct VertexWorkers {
    /// Vertex id.
    pub id: String,
    /// Vertex name.
    pub name: String,
    /// Now, ms since the epoch.
    pub now: i64,
    /// One per worker that reported.
    pub taskmanagers: Vec<VertexOnWorker>,
}

/// A vertex's counters on one worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct VertexOnWorker {
    /// Worker id (`worker-<ordinal>`).
    pub taskmanager_id: String,
    /// Its address.
    pub host: String,
    /// Counters of the vertex's subtasks there.
    pub metrics: VertexMetrics,
}

/// `GET /jobs/{id}/checkpoints`: counts, summary, latest and history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Checkpoints {
    /// How many.
    pub counts: CheckpointCounts,
    /// Over the completed ones in the history.
    pub summary: CheckpointSummary,
    /// The newest of each kind.
    pub latest: LatestCheckpoints,
    /// The last ones, newest first (as Flink lists them).
    pub history: Vec<CheckpointRecord>,
}

/// Checkpoint counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub struct CheckpointCounts {
    /// Completed and failed.
    pub total: u64,
    /// Completed.
    pub completed: u64,
    /// Failed.
    pub failed: u64,
    /// Restores from a checkpoint (restarts).
    pub restored: u64,
}

/// Minimum, average and maximum of a figure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MinAvgMax {
    /// Least.
    pub min: u64,
    /// Mean.
    pub avg: f64,
    /// Greatest.
    pub max: u64,
}

/// Summary over the completed checkpoints of the history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckpointSummary {
    /// Bytes written.
    pub state_size: MinAvgMax,
    /// Trigger to complete, ms.
    pub end_to_end_duration: MinAvgMax,
}

/// The newest completed checkpoint, savepoint and failure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LatestCheckpoints {
    /// Newest completed checkpoint.
    pub completed: Option<CheckpointRecord>,
    /// Newest completed savepoint.
    pub savepoint: Option<CheckpointRecord>,
    /// Newest failure.
    pub failed: Option<CheckpointRecord>,
}

/// `GET /jobs/{id}/checkpoints/config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub struct CheckpointConfigView {
    /// Whether the job checkpoints at all.
    pub enabled: bool,
    /// `exactly_once` (barriers are aligned) when enabled.
    pub mode: Option<String>,
    /// Trigger interval, ms.
    pub interval: Option<u64>,
    /// Abandoned after, ms.
    pub timeout: Option<u64>,
    /// Least pause between checkpoints, ms.
    pub min_pause: Option<u64>,
    /// Failures in a row tolerated.
    pub tolerable_failed_checkpoints: Option<u32>,
    /// Completed checkpoints kept.
    pub retained: Option<usize>,
    /// Incremental checkpoints.
    pub incremental: Option<bool>,
    /// Where snapshots go.
    pub storage: Option<String>,
}

/// `GET /jobs/{id}/exceptions`: the failures that restarted or ended runs, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Exceptions {
    /// Newest first.
    pub entries: Vec<ExceptionRecord>,
}

/// `GET /taskmanagers`: the workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskManagers {
    /// One per worker slot of the job (attached or not).
    pub taskmanagers: Vec<TaskManager>,
}

/// A worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct TaskManager {
    /// `worker-<ordinal>`.
    pub id: String,
    /// Its ordinal.
    pub ordinal: usize,
    /// Whether it is attached now.
    pub attached: bool,
    /// Where it listens (empty when not attached).
    pub address: String,
    /// Since its last heartbeat, ms (none when not attached).
    pub last_heartbeat_ago_ms: Option<u64>,
    /// Records its subtasks read (over all operators).
    pub read_records: u64,
    /// Records its subtasks wrote.
    pub write_records: u64,
    /// Bytes it sent to other workers.
    pub exchange_bytes_out: u64,
    /// Its process's resident memory, bytes (as of its last heartbeat).
    pub memory_bytes: Option<u64>,
    /// Its process's CPU time since it started, ms.
    pub cpu_ms: Option<u64>,
    /// CPU cores it used over the last window of at least a second between reads.
    pub cpu_cores: Option<f64>,
}

/// `POST /jobs/{id}/savepoints` and `PATCH /jobs/{id}?mode=stop`: the savepoint taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SavepointDone {
    /// `completed`.
    pub status: String,
    /// The savepoint's directory.
    pub location: String,
    /// Whether the job stops after it.
    pub stopped: bool,
}

/// An error, as Flink's REST API reports one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Errors {
    /// What went wrong.
    pub errors: Vec<String>,
}

/// `POST /jobs/{id}/savepoints` body (optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct SavepointRequest {
    /// Stop the job after the savepoint (Flink's `cancel-job`).
    #[serde(default)]
    pub cancel_job: bool,
}
