//! Counters per node, shared by its subtasks, read by progress output and the job result.

use std::sync::Arc;
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

/// What kind of node a counter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
}

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
    /// State bytes of the last completed one.
    pub last_bytes: AtomicU64,
    /// Time to load restored state in the last run that restored, ms.
    pub restore_ms: AtomicU64,
}

impl CheckpointMetrics {
    /// Records a completed checkpoint.
    pub fn completed(&self, duration_ms: u64, bytes: u64) {
        self.completed.fetch_add(1, Ordering::Relaxed);
        self.last_duration_ms.store(duration_ms, Ordering::Relaxed);
        self.max_duration_ms.fetch_max(duration_ms, Ordering::Relaxed);
        self.last_bytes.store(bytes, Ordering::Relaxed);
    }
}

/// A snapshot of one node's counters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
