//! Checkpoint counters of a job, read by progress output, `/status` and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// Records a completed checkpoint.
    pub fn completed(&self, duration_ms: u64, bytes: u64) {
        self.completed.fetch_add(1, Ordering::Relaxed);
        self.last_duration_ms.store(duration_ms, Ordering::Relaxed);
        self.max_duration_ms.fetch_max(duration_ms, Ordering::Relaxed);
        self.total_duration_ms.fetch_add(duration_ms, Ordering::Relaxed);
        self.last_bytes.store(bytes, Ordering::Relaxed);
    }
}
