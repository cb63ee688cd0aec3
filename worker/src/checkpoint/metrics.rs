//! Checkpoint counters of a job, read by progress output, `/status` and `/metrics`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// How many checkpoints the history keeps (newest last), for the REST API and dashboard.
pub const HISTORY: usize = 50;

/// Checkpoint counters of a job (over all its runs).
#[derive(Debug, Default)]
pub struct CheckpointMetrics {
    /// Checkpoints and savepoints completed.
    pub completed: AtomicU64,
    /// Checkpoints that failed or timed out.
    pub failed: AtomicU64,
    /// Trigger to `_metadata` of the last completed one, ms.
    pub last_duration_ms: AtomicU64,
    /// Longest so far, ms.
    pub max_duration_ms: AtomicU64,
    /// Sum of the durations of all completed ones, ms (for their mean).
    pub total_duration_ms: AtomicU64,
    /// State bytes the last completed one wrote (an incremental one: its changes).
    pub last_bytes: AtomicU64,
    /// Time to load restored state in the last run that restored, ms.
    pub restore_ms: AtomicU64,
    /// State bytes restores read, from local copies and from storage (over all runs).
    pub restore_reads: Arc<RestoreReads>,
    /// The last [`HISTORY`] checkpoints and savepoints, completed or failed, oldest first.
    history: Mutex<VecDeque<CheckpointRecord>>,
}

/// One checkpoint or savepoint as the history shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckpointRecord {
    /// Checkpoint id.
    pub id: u64,
    /// Taken as a savepoint.
    pub savepoint: bool,
    /// `completed` or `failed`.
    pub status: CheckpointStatus,
    /// When the barrier was injected, ms since the epoch.
    pub trigger_timestamp_ms: i64,
    /// Trigger to `_metadata` written (or to the failure), ms.
    pub duration_ms: u64,
    /// State bytes written (an incremental checkpoint: its changes).
    pub state_size_bytes: u64,
    /// Where it is (completed ones).
    pub path: Option<String>,
    /// Why it failed (failed ones).
    pub failure: Option<String>,
    /// Per operator (completed ones): its state's bytes and when its last subtask acknowledged.
    #[serde(default)]
    pub operators: Vec<OperatorCheckpoint>,
}

/// One operator's part in a completed checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OperatorCheckpoint {
    /// The operator (its `uid`).
    pub uid: String,
    /// State bytes its subtasks wrote.
    pub state_size_bytes: u64,
    /// Subtasks that wrote state.
    pub subtasks_with_state: usize,
    /// From the trigger to its last subtask's acknowledgement, ms.
    pub acknowledged_ms: u64,
}

/// How a checkpoint ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckpointStatus {
    /// `_metadata` written.
    Completed,
    /// Declined, timed out or not written.
    Failed,
}

/// Bytes restores read from local copies (local recovery) and from checkpoint storage.
#[derive(Debug, Default)]
pub struct RestoreReads {
    /// From local copies.
    pub local: AtomicU64,
    /// From checkpoint storage.
    pub remote: AtomicU64,
}

impl RestoreReads {
    /// Counts `bytes` read locally or from storage.
    pub fn add(&self, local: bool, bytes: u64) {
        let counter = if local { &self.local } else { &self.remote };
        counter.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl CheckpointMetrics {
    /// Records a checkpoint that ended, completed or failed.
    pub fn ended(&self, record: CheckpointRecord) {
        match record.status {
            CheckpointStatus::Completed => {
                let duration_ms = record.duration_ms;
                self.completed.fetch_add(1, Ordering::Relaxed);
                self.last_duration_ms.store(duration_ms, Ordering::Relaxed);
                self.max_duration_ms.fetch_max(duration_ms, Ordering::Relaxed);
                self.total_duration_ms.fetch_add(duration_ms, Ordering::Relaxed);
                self.last_bytes.store(record.state_size_bytes, Ordering::Relaxed);
            }
            CheckpointStatus::Failed => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut history = self.history.lock().expect("checkpoint history lock");
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(record);
    }

    /// The last [`HISTORY`] checkpoints, oldest first.
    pub fn history(&self) -> Vec<CheckpointRecord> {
        self.history
            .lock()
            .expect("checkpoint history lock")
            .iter()
            .cloned()
            .collect()
    }
}
