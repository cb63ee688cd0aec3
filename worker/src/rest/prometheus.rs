//! `/metrics`: the job's figures as typed Prometheus metrics (the `prometheus-client` crate), in
//! the OpenMetrics text format, labelled by job and, per node, by node.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::JobSnapshot;

/// The response's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabel {
    job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    job: String,
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    job: String,
    worker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubtaskLabels {
    job: String,
    vertex: String,
    subtask: String,
    worker: String,
}

/// The snapshot's metrics as OpenMetrics text.
pub fn render(s: &JobSnapshot) -> String {
    let v = &s.status;
    let mut registry = Registry::with_prefix("weir");
    let job = JobLabel { job: v.job.clone() };
    let mut gauge = |name: &str, help: &str, value: u64| {
        let family = Family::<JobLabel, Gauge>::default();
        family.get_or_create(&job).set(i64::try_from(value).unwrap_or(i64::MAX));
        registry.register(name, help, family);
    };
    gauge("generation", "Current run (generation) of the job", v.generation);
    gauge(
        "workers_attached",
        "Workers attached to the coordinator",
        v.workers_attached as u64,
    );
    gauge("last_checkpoint", "Newest completed checkpoint id", v.last_checkpoint);
    gauge(
        "checkpoint_last_duration_ms",
        "Duration of the newest checkpoint, ms",
        v.checkpoint_last_duration_ms,
    );
    gauge(
        "checkpoint_last_bytes",
        "State bytes the newest checkpoint wrote",
        v.checkpoint_last_bytes,
    );
    let mut counter = |name: &str, help: &str, value: u64| {
        let family = Family::<JobLabel, Counter>::default();
        family.get_or_create(&job).inc_by(value);
        registry.register(name, help, family);
    };
    counter("restarts", "Restarts after failures", u64::from(v.restarts));
    counter(
        "checkpoints_completed",
        "Completed checkpoints",
        v.checkpoints_completed,
    );
    counter("checkpoints_failed", "Failed checkpoints", v.checkpoints_failed);
    counter("exchange_bytes_out", "Bytes sent between workers", v.exchange_bytes_out);
    counter(
        "exchange_credit_waits",
        "Times a sender waited for credit (back-pressure from a slower receiver)",
        v.exchange_credit_waits,
    );
    counter(
        "restore_local_bytes",
        "State bytes restores read from local copies (local recovery)",
        v.restore_local_bytes,
    );
    counter(
        "restore_remote_bytes",
        "State bytes restores read from checkpoint storage",
        v.restore_remote_bytes,
    );
    type Pick = fn(&crate::runtime::metrics::NodeStats) -> u64;
    let per_node: [(&str, &str, Pick); 4] = [
        ("records_in", "Records into a node", |n| n.records_in),
        ("records_out", "Records out of a node", |n| n.records_out),
        (
            "dead_letters",
            "Malformed records sent to the dead-letter output",
            |n| n.dead_letters,
        ),
        ("late_records", "Records later than the allowed lateness", |n| {
            n.late_records
        }),
    ];
    for (name, help, pick) in per_node {
        let family = Family::<NodeLabels, Counter>::default();
        for n in &v.nodes {
            let labels = NodeLabels {
                job: v.job.clone(),
                node: n.name.clone(),
            };
            family.get_or_create(&labels).inc_by(pick(n));
        }
        registry.register(name, help, family);
    }
    // Per subtask: cumulative times (a rate over them is the share of time busy, idle or
    // back-pressured) and records, and the watermark sent.
    type Time = fn(&crate::runtime::metrics::SubtaskStats) -> u64;
    let per_subtask: [(&str, &str, Time); 7] = [
        (
            "subtask_bytes_in",
            "Bytes into a subtask's vertex (Arrow buffers)",
            |t| t.bytes_in,
        ),
        (
            "subtask_bytes_out",
            "Bytes out of a subtask's vertex (Arrow buffers)",
            |t| t.bytes_out,
        ),
        ("subtask_records_in", "Records into a subtask's vertex", |t| {
            t.records_in
        }),
        ("subtask_records_out", "Records out of a subtask's vertex", |t| {
            t.records_out
        }),
        ("subtask_idle_ms", "Time a subtask waited for input, ms", |t| t.idle_ms),
        (
            "subtask_backpressured_ms",
            "Time a subtask waited for room downstream (back-pressure), ms",
            |t| t.backpressured_ms,
        ),
        ("subtask_time_ms", "Time since a subtask started, ms", |t| t.elapsed_ms),
    ];
    let labels = |w: usize, t: &crate::runtime::metrics::SubtaskStats| SubtaskLabels {
        job: v.job.clone(),
        vertex: t.vertex.clone(),
        subtask: t.subtask.to_string(),
        worker: w.to_string(),
    };
    for (name, help, pick) in per_subtask {
        let family = Family::<SubtaskLabels, Counter>::default();
        for w in &s.workers {
            for t in &w.subtasks {
                family.get_or_create(&labels(w.ordinal, t)).inc_by(pick(t));
            }
        }
        registry.register(name, help, family);
    }
    let watermark = Family::<SubtaskLabels, Gauge>::default();
    for w in &s.workers {
        for t in w.subtasks.iter().filter(|t| t.output_watermark.is_some()) {
            watermark
                .get_or_create(&labels(w.ordinal, t))
                .set(t.output_watermark.unwrap_or_default());
        }
    }
    registry.register(
        "subtask_output_watermark",
        "The newest watermark a subtask sent, ms since the epoch",
        watermark,
    );
    let lag = Family::<SubtaskLabels, Gauge>::default();
    for w in &s.workers {
        for t in &w.subtasks {
            if let Some(l) = t.lag {
                lag.get_or_create(&labels(w.ordinal, t))
                    .set(i64::try_from(l).unwrap_or(i64::MAX));
            }
        }
    }
    registry.register(
        "subtask_source_lag",
        "Records a source subtask has not read yet (Kafka: end offsets - positions)",
        lag,
    );
    // Per subtask, its part in its newest checkpoint.
    type Part = fn(&crate::runtime::metrics::SubtaskCheckpoint) -> u64;
    let per_checkpoint: [(&str, &str, Part); 5] = [
        (
            "subtask_state_bytes",
            "A subtask's state as of its newest checkpoint, bytes (what a restore reads)",
            |c| c.state_bytes,
        ),
        (
            "subtask_checkpointed_bytes",
            "Bytes a subtask wrote for its newest checkpoint (incremental: its changes)",
            |c| c.checkpointed_bytes,
        ),
        (
            "subtask_checkpoint_alignment_ms",
            "Time a subtask's newest checkpoint barrier waited for all its inputs, ms",
            |c| c.alignment_ms,
        ),
        (
            "subtask_checkpoint_sync_ms",
            "Time a subtask stood still taking its newest checkpoint's snapshots, ms",
            |c| c.sync_ms,
        ),
        (
            "subtask_checkpoint_async_ms",
            "From a subtask's newest checkpoint barrier to its state stored, ms",
            |c| c.async_ms,
        ),
    ];
    for (name, help, pick) in per_checkpoint {
        let family = Family::<SubtaskLabels, Gauge>::default();
        for w in &s.workers {
            for t in &w.subtasks {
                if let Some(c) = &t.checkpoint {
                    family
                        .get_or_create(&labels(w.ordinal, t))
                        .set(i64::try_from(pick(c)).unwrap_or(i64::MAX));
                }
            }
        }
        registry.register(name, help, family);
    }
    // Per worker process: resident memory and CPU time (as of its last heartbeat).
    let memory = Family::<WorkerLabels, Gauge>::default();
    let cpu = Family::<WorkerLabels, Counter<f64>>::default();
    for w in &s.workers {
        if let Some(u) = w.usage {
            let labels = WorkerLabels {
                job: v.job.clone(),
                worker: w.ordinal.to_string(),
            };
            memory
                .get_or_create(&labels)
                .set(i64::try_from(u.rss_bytes).unwrap_or(i64::MAX));
            cpu.get_or_create(&labels).inc_by(u.cpu_ms as f64 / 1000.0);
        }
    }
    registry.register(
        "worker_memory_bytes",
        "A worker process's resident memory, bytes",
        memory,
    );
    registry.register(
        "worker_cpu_seconds",
        "A worker process's CPU time (user and system), seconds",
        cpu,
    );
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}
