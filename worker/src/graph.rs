//! The logical graph: what the user wrote, as nodes (sources, operators, sinks) and edges
//! that say how a stream is partitioned between them.

use std::sync::Arc;

use crate::contract::clock::SharedClock;
use crate::contract::{OperatorFactory, SinkFactory, SourceFactory};
use crate::partition::Partitioning;

/// Index of a node in [`LogicalGraph::nodes`].
pub type NodeId = usize;

/// What a node does.
#[derive(Clone)]
pub enum NodeKind {
    /// Produces a stream.
    Source(Arc<dyn SourceFactory>),
    /// Transforms streams.
    Operator(Arc<dyn OperatorFactory>),
    /// Consumes a stream.
    Sink(Arc<dyn SinkFactory>),
}

impl NodeKind {
    /// Short description for plans.
    pub fn describe(&self) -> String {
        match self {
            NodeKind::Source(s) => format!("source:{}", s.connector()),
            NodeKind::Operator(o) => o.kind().to_string(),
            NodeKind::Sink(s) => format!("sink:{}", s.connector()),
        }
    }
}

/// An input of a node: the upstream node and how its stream is partitioned.
#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    /// Upstream node.
    pub from: NodeId,
    /// Partitioning.
    pub partitioning: Partitioning,
    /// Reads the upstream's side output (a window's late records), not its main output.
    pub side: bool,
}

/// One node.
#[derive(Clone)]
pub struct Node {
    /// Unique name (the node id of the pipeline form).
    pub name: String,
    /// What it does.
    pub kind: NodeKind,
    /// Explicit parallelism, if set.
    pub parallelism: Option<usize>,
    /// Inputs (several = union).
    pub inputs: Vec<Edge>,
    /// Sources only: how event time and watermarks follow the records (none = processing time).
    pub watermark: Option<crate::contract::WatermarkStrategy>,
}

/// Settings of a job that are not nodes.
#[derive(Clone, Debug)]
pub struct JobConfig {
    /// Job name.
    pub name: String,
    /// Default parallelism.
    pub parallelism: usize,
    /// Number of key groups.
    pub max_parallelism: u32,
    /// Dead-letter directory (path or URL); `None` = `.weir/<name>/dead-letter`.
    pub dead_letter: Option<String>,
    /// Rows per batch for generating sources.
    pub batch_size: usize,
    /// Batches per channel.
    pub channel_capacity: usize,
    /// Checkpointing (off when `None`).
    pub checkpoint: Option<crate::checkpoint::CheckpointConfig>,
    /// Where the job starts from.
    pub restore: RestoreFrom,
    /// Start from a snapshot even if it holds state of operators the job no longer has.
    pub allow_non_restored_state: bool,
    /// What happens when a task fails while checkpointing.
    pub restart: RestartStrategy,
    /// The clock processing time follows (the wall clock; tests set a manual one).
    pub clock: SharedClock,
    /// Where keyed state lives.
    pub state: crate::state::StateBackend,
}

/// Where a job's state comes from at start.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum RestoreFrom {
    /// Empty state.
    #[default]
    Fresh,
    /// The newest complete checkpoint of the job, if there is one (`weir run --resume`).
    Latest,
    /// A checkpoint or savepoint directory (`--from-savepoint URL`).
    Snapshot(String),
}

/// Restarts after a failure, from the newest complete checkpoint (Flink's restart strategies).
/// The default is Flink 2's with checkpointing: exponential delay (1 s, ×1.5, at most 1 min)
/// with no limit on attempts, the backoff starting over after a run that lasted an hour.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartStrategy {
    /// Restarts in a row (since the backoff last started over) before giving up (0: fail at
    /// the first error; `u32::MAX`: never give up).
    pub attempts: u32,
    /// Wait before the first restart.
    pub delay: std::time::Duration,
    /// Each further wait is the previous times this (1: fixed delay).
    pub backoff: f64,
    /// Longest wait.
    pub max_delay: std::time::Duration,
    /// A run that lasted this long before failing starts the backoff (and the attempts) over.
    pub reset_after: std::time::Duration,
}

impl Default for RestartStrategy {
    fn default() -> Self {
        RestartStrategy {
            attempts: u32::MAX,
            delay: std::time::Duration::from_secs(1),
            backoff: 1.5,
            max_delay: std::time::Duration::from_secs(60),
            reset_after: std::time::Duration::from_secs(3600),
        }
    }
}

impl RestartStrategy {
    /// After a failure of a run that lasted `ran`: the wait before restarting, or `None` to give
    /// up. `in_a_row` counts the restarts since the backoff last started over.
    pub fn next_restart(&self, in_a_row: &mut u32, ran: std::time::Duration) -> Option<std::time::Duration> {
        if ran >= self.reset_after {
            *in_a_row = 0;
        }
        if *in_a_row >= self.attempts {
            return None;
        }
        *in_a_row += 1;
        Some(self.delay_before(*in_a_row))
    }

    /// The attempts as text for logs (`unlimited` for `u32::MAX`).
    pub fn attempts_text(&self) -> String {
        if self.attempts == u32::MAX {
            "unlimited".into()
        } else {
            self.attempts.to_string()
        }
    }

    /// Wait before restart number `n` (1-based).
    pub fn delay_before(&self, n: u32) -> std::time::Duration {
        let factor = self.backoff.max(1.0).powi(n.saturating_sub(1) as i32);
        self.delay.mul_f64(factor).min(self.max_delay)
    }
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            name: "weir-job".into(),
            parallelism: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            max_parallelism: crate::keys::DEFAULT_MAX_PARALLELISM,
            dead_letter: None,
            batch_size: 4096,
            channel_capacity: 8,
            checkpoint: None,
            restore: RestoreFrom::Fresh,
            allow_non_restored_state: false,
            restart: RestartStrategy::default(),
            clock: crate::contract::clock::system(),
            state: Default::default(),
        }
    }
}

/// Nodes in creation order: every node's inputs come before it.
#[derive(Clone, Default)]
pub struct LogicalGraph {
    /// The nodes.
    pub nodes: Vec<Node>,
}

impl LogicalGraph {
    /// Adds a node; returns its id.
    pub fn add(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// A name not used yet, from `base`.
    pub fn unique_name(&self, base: &str) -> String {
        if !self.nodes.iter().any(|n| n.name == base) {
            return base.to_string();
        }
        (2..)
            .map(|i| format!("{base}-{i}"))
            .find(|c| !self.nodes.iter().any(|n| &n.name == c))
            .expect("unbounded")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn restarts_back_off_without_a_limit_and_start_over_after_a_long_run() {
        let s = RestartStrategy::default();
        let short = Duration::from_secs(1);
        let mut in_a_row = 0;
        let waits: Vec<u64> = (0..12)
            .map(|_| s.next_restart(&mut in_a_row, short).unwrap().as_millis() as u64)
            .collect();
        assert_eq!(waits[..4], [1_000, 1_500, 2_250, 3_375]);
        assert_eq!(*waits.last().unwrap(), 60_000, "capped at a minute");
        // A run that lasted an hour starts the backoff over.
        assert_eq!(
            s.next_restart(&mut in_a_row, Duration::from_secs(3_600)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(in_a_row, 1);
        // An explicit cap gives up after that many restarts in a row.
        let capped = RestartStrategy { attempts: 2, ..s };
        let mut n = 0;
        assert!(capped.next_restart(&mut n, short).is_some());
        assert!(capped.next_restart(&mut n, short).is_some());
        assert_eq!(capped.next_restart(&mut n, short), None);
        assert_eq!(capped.attempts_text(), "2");
        assert_eq!(RestartStrategy::default().attempts_text(), "unlimited");
    }
}
