//! Counters an operator or connector adds to: one set per node, shared by its subtasks, read by
//! progress output, `/metrics` and the job result.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one node (all subtasks together).
#[derive(Debug, Default)]
pub struct NodeMetrics {
    /// Rows received.
    pub records_in: AtomicU64,
    /// Rows emitted.
    pub records_out: AtomicU64,
    /// Malformed records sent to the dead-letter output.
    pub dead_letters: AtomicU64,
    /// Records that arrived after their windows' allowed lateness.
    pub late_records: AtomicU64,
}

impl NodeMetrics {
    /// Adds to `records_in`.
    pub fn add_in(&self, n: usize) {
        self.records_in.fetch_add(n as u64, Ordering::Relaxed);
    }
    /// Adds to `records_out`.
    pub fn add_out(&self, n: usize) {
        self.records_out.fetch_add(n as u64, Ordering::Relaxed);
    }
}
