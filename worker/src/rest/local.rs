//! A job running in this process (`weir run --ui`) as the REST API's [`JobSource`].

use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;

use super::StatusView;
use super::{JobSnapshot, JobSource, WorkerSnapshot};
use crate::checkpoint::metrics::CheckpointStatus;
use crate::graph::{JobConfig, LogicalGraph};
use crate::runtime::control::JobControl;
use crate::runtime::metrics::JobMetrics;

/// A job run by this process: its graph, its live counters and its control handle.
pub struct LocalJob {
    graph: LogicalGraph,
    config: JobConfig,
    metrics: JobMetrics,
    control: JobControl,
    started_ms: i64,
    state: Mutex<&'static str>,
}

impl LocalJob {
    /// The job of `graph`/`config`, counted by `metrics`, controlled through `control`.
    pub fn new(graph: LogicalGraph, config: JobConfig, metrics: JobMetrics, control: JobControl) -> Self {
        LocalJob {
            graph,
            config,
            metrics,
            control,
            started_ms: crate::contract::clock::wall_ms(),
            state: Mutex::new("running"),
        }
    }

    /// Marks how the run ended (`finished`, `stopped`, `failed`).
    pub fn ended(&self, state: &'static str) {
        *self.state.lock().expect("state lock") = state;
    }
}

#[async_trait::async_trait]
impl JobSource for LocalJob {
    fn snapshot(&self) -> JobSnapshot {
        let c = &self.metrics.checkpoints;
        let history = c.history();
        let exceptions = self.metrics.exceptions.list();
        let restarts = self.metrics.restarts.load(Relaxed) as u32;
        let nodes = self.metrics.snapshot();
        let completed = |savepoint: bool| {
            history
                .iter()
                .rev()
                .find(|r| r.status == CheckpointStatus::Completed && r.savepoint == savepoint)
        };
        let status = StatusView {
            job: self.config.name.clone(),
            state: (*self.state.lock().expect("state lock")).into(),
            generation: u64::from(restarts) + 1,
            workers: 1,
            workers_attached: 1,
            restarts,
            last_checkpoint: completed(false).map_or(0, |r| r.id),
            checkpoints_completed: c.completed.load(Relaxed),
            checkpoints_failed: c.failed.load(Relaxed),
            checkpoint_last_duration_ms: c.last_duration_ms.load(Relaxed),
            checkpoint_last_bytes: c.last_bytes.load(Relaxed),
            last_error: exceptions.last().map(|e| e.message.clone()),
            last_savepoint: completed(true).and_then(|r| r.path.clone()),
            exchange_bytes_out: 0,
            exchange_credit_waits: 0,
            restore_local_bytes: c.restore_reads.local.load(Relaxed),
            restore_remote_bytes: c.restore_reads.remote.load(Relaxed),
            nodes: nodes.clone(),
        };
        JobSnapshot {
            status,
            started_ms: self.started_ms,
            checkpoints: history,
            exceptions,
            workers: vec![WorkerSnapshot {
                ordinal: 0,
                address: Some("this process".into()),
                last_seen_ago_ms: Some(0),
                nodes,
                subtasks: self.metrics.subtask_snapshot(),
                exchange_bytes_out: 0,
                usage: crate::runtime::process_usage::read(),
            }],
        }
    }

    fn graph(&self) -> (&LogicalGraph, &JobConfig) {
        (&self.graph, &self.config)
    }

    async fn savepoint(&self, stop: bool) -> std::result::Result<String, String> {
        let r = if stop {
            self.control.stop_with_savepoint().await
        } else {
            self.control.savepoint().await
        };
        r.map_err(|e| e.to_string())
    }
}
