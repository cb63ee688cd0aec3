//! The REST API's documents, built from a [`JobSnapshot`] and the job's planned vertices.

use crate::checkpoint::metrics::{CheckpointRecord, CheckpointStatus};
use crate::contract::error::Result;
use crate::graph::{JobConfig, LogicalGraph, NodeId};
use crate::runtime::metrics::{NodeStats, SubtaskStats};

use super::JobSnapshot;
use super::model::*;
use super::rates::{CpuWindows, Rates};

/// Every subtask that reported: the worker it runs on, its figures and its rates.
pub type Subtasks = [(usize, SubtaskStats, Rates)];

fn subtask_view(worker: usize, s: &SubtaskStats, r: &Rates) -> SubtaskView {
    SubtaskView {
        subtask: s.subtask,
        taskmanager_id: format!("worker-{worker}"),
        read_records: s.records_in,
        write_records: s.records_out,
        read_records_per_second: r.records_in_per_s,
        write_records_per_second: r.records_out_per_s,
        read_bytes: s.bytes_in,
        write_bytes: s.bytes_out,
        read_bytes_per_second: r.bytes_in_per_s,
        write_bytes_per_second: r.bytes_out_per_s,
        busy_ratio: r.busy,
        idle_ratio: r.idle,
        backpressured_ratio: r.backpressured,
        input_watermark: s.input_watermark,
        output_watermark: s.output_watermark,
        checkpoint: s.checkpoint.clone(),
        lag: s.lag,
    }
}

/// Flink's back-pressure level of a share of time.
fn level(ratio: f64) -> &'static str {
    if ratio < 0.1 {
        "ok"
    } else if ratio <= 0.5 {
        "low"
    } else {
        "high"
    }
}

pub fn backpressure(vertex: &Vertex) -> BackPressure {
    let subtasks: Vec<SubtaskBackPressure> = vertex
        .subtasks
        .iter()
        .map(|s| SubtaskBackPressure {
            subtask: s.subtask,
            backpressure_level: level(s.backpressured_ratio).into(),
            ratio: s.backpressured_ratio,
            idle_ratio: s.idle_ratio,
            busy_ratio: s.busy_ratio,
        })
        .collect();
    BackPressure {
        status: "ok".into(),
        backpressure_level: level(vertex.backpressured_ratio).into(),
        end_timestamp: crate::contract::clock::wall_ms(),
        subtasks,
    }
}

pub fn watermarks(vertex: &Vertex) -> Vec<WatermarkEntry> {
    let mut out = Vec::new();
    for s in &vertex.subtasks {
        for (name, value) in [
            ("currentInputWatermark", s.input_watermark),
            ("currentOutputWatermark", s.output_watermark),
        ] {
            if let Some(value) = value {
                out.push(WatermarkEntry {
                    id: format!("{}.{name}", s.subtask),
                    value,
                });
            }
        }
    }
    out
}

/// The job's vertices as planned: chains of nodes with their parallelism and inputs.
pub struct Layout {
    vertices: Vec<LaidOut>,
}

struct LaidOut {
    nodes: Vec<NodeId>,
    parallelism: usize,
    /// Upstream vertex and how records reach this one.
    inputs: Vec<(usize, &'static str)>,
}

impl Layout {
    /// Plans `graph` as the job runs it.
    pub async fn plan(graph: &LogicalGraph, config: &JobConfig) -> Result<Layout> {
        let plan = crate::plan::plan(graph, config).await?;
        let vertices = plan
            .chains
            .iter()
            .enumerate()
            .map(|(ci, chain)| {
                let mut inputs = Vec::new();
                for n in chain {
                    for (edge, route) in graph.nodes[*n].inputs.iter().zip(&plan.nodes[*n].routes) {
                        let from = plan.chain_of[edge.from];
                        if from != ci {
                            inputs.push((from, route.name()));
                        }
                    }
                }
                LaidOut {
                    nodes: chain.clone(),
                    parallelism: plan.nodes[chain[0]].parallelism,
                    inputs,
                }
            })
            .collect();
        Ok(Layout { vertices })
    }
}

fn vertex_id(i: usize) -> String {
    format!("v{i}")
}

fn counters(s: &NodeStats) -> VertexMetrics {
    VertexMetrics {
        read_records: s.records_in,
        write_records: s.records_out,
        dead_letters: s.dead_letters,
        late_records: s.late_records,
    }
}

/// A vertex's counters from its operators': records into the first, out of the last, dead
/// letters and late records of all.
fn vertex_counters(ops: &[VertexMetrics]) -> VertexMetrics {
    VertexMetrics {
        read_records: ops.first().map_or(0, |m| m.read_records),
        write_records: ops.last().map_or(0, |m| m.write_records),
        dead_letters: ops.iter().map(|m| m.dead_letters).sum(),
        late_records: ops.iter().map(|m| m.late_records).sum(),
    }
}

fn node_counters(nodes: &[NodeStats], name: &str) -> VertexMetrics {
    nodes.iter().find(|n| n.name == name).map(counters).unwrap_or_default()
}

/// Whether the job's state counts as running, finished, failed or stopped for `/overview`.
fn tally(state: &str) -> [usize; 4] {
    match state {
        "finished" => [0, 1, 0, 0],
        "failed" => [0, 0, 1, 0],
        "stopped" => [0, 0, 0, 1],
        _ => [1, 0, 0, 0],
    }
}

pub fn overview(s: &JobSnapshot) -> Overview {
    let [running, finished, failed, cancelled] = tally(&s.status.state);
    Overview {
        taskmanagers: s.status.workers_attached,
        jobs_running: running,
        jobs_finished: finished,
        jobs_failed: failed,
        jobs_cancelled: cancelled,
        weir_version: env!("CARGO_PKG_VERSION").into(),
    }
}

pub fn jobs(s: &JobSnapshot) -> JobList {
    JobList {
        jobs: vec![JobId {
            id: s.status.job.clone(),
            status: s.status.state.clone(),
        }],
    }
}

pub fn job(s: &JobSnapshot, layout: &Layout, graph: &LogicalGraph, subtasks: &Subtasks) -> JobDetail {
    let now = crate::contract::clock::wall_ms();
    let vertices: Vec<Vertex> = layout
        .vertices
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let operators: Vec<OperatorView> = v
                .nodes
                .iter()
                .map(|n| {
                    let node = &graph.nodes[*n];
                    OperatorView {
                        name: node.name.clone(),
                        kind: node.kind.describe(),
                        metrics: node_counters(&s.status.nodes, &node.name),
                    }
                })
                .collect();
            let metrics = vertex_counters(&operators.iter().map(|o| o.metrics.clone()).collect::<Vec<_>>());
            let name = operators
                .iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>()
                .join(" -> ");
            let mut mine: Vec<SubtaskView> = subtasks
                .iter()
                .filter(|(_, st, _)| st.vertex == name)
                .map(|(w, st, r)| subtask_view(*w, st, r))
                .collect();
            mine.sort_by_key(|v| v.subtask);
            let most = |f: fn(&SubtaskView) -> f64| mine.iter().map(f).fold(0.0, f64::max);
            Vertex {
                id: vertex_id(i),
                name,
                parallelism: v.parallelism,
                status: s.status.state.clone(),
                operators,
                metrics,
                busy_ratio: most(|v| v.busy_ratio),
                backpressured_ratio: most(|v| v.backpressured_ratio),
                state_size: mine
                    .iter()
                    .filter_map(|s| s.checkpoint.as_ref())
                    .map(|c| c.state_bytes)
                    .sum(),
                subtasks: mine,
            }
        })
        .collect();
    let nodes = layout
        .vertices
        .iter()
        .zip(&vertices)
        .map(|(v, vertex)| PlanNode {
            id: vertex.id.clone(),
            parallelism: v.parallelism,
            description: vertex
                .operators
                .iter()
                .map(|o| format!("{} [{}]", o.name, o.kind))
                .collect::<Vec<_>>()
                .join(" -> "),
            inputs: v
                .inputs
                .iter()
                .map(|(from, how)| PlanInput {
                    id: vertex_id(*from),
                    ship_strategy: (*how).into(),
                })
                .collect(),
        })
        .collect();
    JobDetail {
        jid: s.status.job.clone(),
        name: s.status.job.clone(),
        state: s.status.state.clone(),
        start_time: s.started_ms,
        duration: now - s.started_ms,
        now,
        generation: s.status.generation,
        restarts: s.status.restarts,
        vertices,
        plan: Plan {
            jid: s.status.job.clone(),
            name: s.status.job.clone(),
            nodes,
        },
    }
}

pub fn vertex_workers(s: &JobSnapshot, layout: &Layout, graph: &LogicalGraph, vid: &str) -> Option<VertexWorkers> {
    let (i, v) = layout.vertices.iter().enumerate().find(|(i, _)| vertex_id(*i) == vid)?;
    let names: Vec<&str> = v.nodes.iter().map(|n| graph.nodes[*n].name.as_str()).collect();
    let taskmanagers = s
        .workers
        .iter()
        .filter(|w| w.address.is_some())
        .map(|w| {
            let ops: Vec<VertexMetrics> = names.iter().map(|n| node_counters(&w.nodes, n)).collect();
            VertexOnWorker {
                taskmanager_id: format!("worker-{}", w.ordinal),
                host: w.address.clone().unwrap_or_default(),
                metrics: vertex_counters(&ops),
            }
        })
        .collect();
    Some(VertexWorkers {
        id: vertex_id(i),
        name: names.join(" -> "),
        now: crate::contract::clock::wall_ms(),
        taskmanagers,
    })
}

fn min_avg_max(values: impl Iterator<Item = u64>) -> MinAvgMax {
    let v: Vec<u64> = values.collect();
    if v.is_empty() {
        return MinAvgMax::default();
    }
    MinAvgMax {
        min: *v.iter().min().expect("some"),
        avg: v.iter().sum::<u64>() as f64 / v.len() as f64,
        max: *v.iter().max().expect("some"),
    }
}

pub fn checkpoints(s: &JobSnapshot) -> Checkpoints {
    let completed: Vec<&CheckpointRecord> = s
        .checkpoints
        .iter()
        .filter(|c| c.status == CheckpointStatus::Completed)
        .collect();
    let newest = |pick: &dyn Fn(&CheckpointRecord) -> bool| s.checkpoints.iter().rev().find(|c| pick(c)).cloned();
    Checkpoints {
        counts: CheckpointCounts {
            total: s.status.checkpoints_completed + s.status.checkpoints_failed,
            completed: s.status.checkpoints_completed,
            failed: s.status.checkpoints_failed,
            restored: u64::from(s.status.restarts),
        },
        summary: CheckpointSummary {
            state_size: min_avg_max(completed.iter().map(|c| c.state_size_bytes)),
            end_to_end_duration: min_avg_max(completed.iter().map(|c| c.duration_ms)),
        },
        latest: LatestCheckpoints {
            completed: newest(&|c| c.status == CheckpointStatus::Completed && !c.savepoint),
            savepoint: newest(&|c| c.status == CheckpointStatus::Completed && c.savepoint),
            failed: newest(&|c| c.status == CheckpointStatus::Failed),
        },
        history: s.checkpoints.iter().rev().cloned().collect(),
    }
}

pub fn checkpoint_config(config: &JobConfig) -> CheckpointConfigView {
    let c = config.checkpoint.as_ref();
    CheckpointConfigView {
        enabled: c.is_some(),
        mode: c.map(|_| "exactly_once".into()),
        interval: c.map(|c| c.interval.as_millis() as u64),
        timeout: c.map(|c| c.timeout.as_millis() as u64),
        min_pause: c.map(|c| c.min_pause.as_millis() as u64),
        tolerable_failed_checkpoints: c.map(|c| c.tolerable_failures),
        retained: c.map(|c| c.retain),
        incremental: c.map(|c| c.incremental),
        storage: c.map(|c| c.storage.clone()),
    }
}

pub fn exceptions(s: &JobSnapshot) -> Exceptions {
    Exceptions {
        entries: s.exceptions.iter().rev().cloned().collect(),
    }
}

pub fn taskmanagers(s: &JobSnapshot, cpu: &CpuWindows) -> TaskManagers {
    TaskManagers {
        taskmanagers: s
            .workers
            .iter()
            .map(|w| TaskManager {
                id: format!("worker-{}", w.ordinal),
                ordinal: w.ordinal,
                attached: w.address.is_some(),
                address: w.address.clone().unwrap_or_default(),
                last_heartbeat_ago_ms: w.last_seen_ago_ms,
                read_records: w.nodes.iter().map(|n| n.records_in).sum(),
                write_records: w.nodes.iter().map(|n| n.records_out).sum(),
                exchange_bytes_out: w.exchange_bytes_out,
                memory_bytes: w.usage.map(|u| u.rss_bytes),
                cpu_ms: w.usage.map(|u| u.cpu_ms),
                cpu_cores: w.usage.and_then(|u| cpu.cores(w.ordinal, u)),
            })
            .collect(),
    }
}
