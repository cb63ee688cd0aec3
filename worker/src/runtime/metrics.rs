//! Counters per node, shared by its subtasks, read by progress output and the job result.

use std::sync::Arc;
use std::sync::atomic::Ordering;

pub use crate::checkpoint::metrics::CheckpointMetrics;
pub use crate::contract::NodeMetrics;

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
    /// Restarts after failures so far (shown in the progress line).
    pub restarts: Arc<std::sync::atomic::AtomicU64>,
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
