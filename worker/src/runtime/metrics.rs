//! Counters per node, shared by its subtasks, read by progress output and the job result.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

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
    /// The failures that restarted or ended the job, newest last.
    pub exceptions: Arc<Exceptions>,
}

/// How many failures [`Exceptions`] keeps.
pub const EXCEPTIONS_KEPT: usize = 32;

/// One failure of a job's run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

    /// The failures kept, oldest first.
    pub fn list(&self) -> Vec<ExceptionRecord> {
        self.0.lock().expect("exceptions lock").iter().cloned().collect()
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
