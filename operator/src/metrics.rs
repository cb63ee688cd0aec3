//! The operator's metrics (`/metrics`, OpenMetrics text through the `prometheus-client` crate):
//! counters over all jobs, and per job (labelled `job="<namespace>/<name>"`) its phase, the age
//! of its newest checkpoint, its restarts, its changes and how long the last one took.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::jiff::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::crd::StreamJobStatus;

/// The response's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabel {
    job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    job: String,
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    job: String,
    reason: String,
}

/// The operator's counters (`/metrics`).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Reconcile calls.
    pub reconciles: AtomicU64,
    /// Reconcile calls that failed.
    pub failures: AtomicU64,
    /// Rescales, upgrades, suspends and resumes completed.
    pub upgrades: AtomicU64,
    /// Duration of the last completed one, ms.
    pub last_upgrade_ms: AtomicU64,
    /// Savepoints taken on request.
    pub savepoints: AtomicU64,
    /// The StreamJobs of every watched namespace could be listed (`/readyz`).
    pub ready: std::sync::atomic::AtomicBool,
    /// Per job, what its status last said.
    jobs: Mutex<BTreeMap<String, JobMetrics>>,
}

/// One job's figures, from its status.
#[derive(Debug, Clone, Default, PartialEq)]
struct JobMetrics {
    phase: String,
    /// When its newest checkpoint was seen (unix seconds; 0: none).
    last_checkpoint_at: i64,
    restarts: u64,
    rolled_back: bool,
    last_change_ms: i64,
    last_change_reason: String,
}

impl Metrics {
    /// The metrics in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn prometheus(&self) -> String {
        let mut registry = Registry::with_prefix("weir_operator");
        let counter = |registry: &mut Registry, name: &str, help: &str, v: &AtomicU64| {
            let c = Counter::<u64>::default();
            c.inc_by(v.load(Ordering::Relaxed));
            registry.register(name, help, c);
        };
        counter(&mut registry, "reconciles", "Reconcile calls", &self.reconciles);
        counter(
            &mut registry,
            "reconcile_failures",
            "Failed reconcile calls",
            &self.failures,
        );
        counter(
            &mut registry,
            "upgrades",
            "Rescales, upgrades, suspends and resumes completed",
            &self.upgrades,
        );
        counter(
            &mut registry,
            "savepoints",
            "Savepoints taken on request",
            &self.savepoints,
        );
        let last = Gauge::<i64>::default();
        last.set(i64::try_from(self.last_upgrade_ms.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
        registry.register(
            "last_upgrade_duration_ms",
            "Duration of the last completed change, ms",
            last,
        );
        self.per_job(&mut registry, Timestamp::now());
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    /// Records what `job`'s status says now (and its coordinator's restart count, when known).
    pub fn observe(&self, job: &str, status: &StreamJobStatus, restarts: Option<u64>) {
        let mut jobs = self.jobs.lock().expect("metrics lock");
        let m = jobs.entry(job.to_string()).or_default();
        m.phase = status.phase.map(|p| p.as_str().to_string()).unwrap_or_default();
        m.last_checkpoint_at = status
            .last_checkpoint
            .as_ref()
            .and_then(|c| c.time.parse::<Timestamp>().ok())
            .map_or(0, |t| t.as_second());
        if let Some(r) = restarts {
            m.restarts = r;
        }
        m.rolled_back = status.rolled_back.is_some();
        if let Some(u) = &status.last_upgrade {
            m.last_change_ms = u.duration_ms;
            m.last_change_reason = u.reason.as_str().to_string();
        }
    }

    /// Forgets a job (deleted).
    pub fn forget(&self, job: &str) {
        self.jobs.lock().expect("metrics lock").remove(job);
    }

    /// Registers the per-job series at `now` (none without jobs).
    fn per_job(&self, registry: &mut Registry, now: Timestamp) {
        let jobs = self.jobs.lock().expect("metrics lock");
        if jobs.is_empty() {
            return;
        }
        let job = |j: &str| JobLabel { job: j.to_string() };
        let phase = Family::<PhaseLabels, Gauge>::default();
        let age = Family::<JobLabel, Gauge>::default();
        let restarts = Family::<JobLabel, Gauge>::default();
        let rolled_back = Family::<JobLabel, Gauge>::default();
        let change = Family::<ChangeLabels, Gauge>::default();
        for (j, m) in jobs.iter() {
            phase
                .get_or_create(&PhaseLabels {
                    job: j.clone(),
                    phase: m.phase.clone(),
                })
                .set(1);
            if m.last_checkpoint_at > 0 {
                age.get_or_create(&job(j))
                    .set((now.as_second() - m.last_checkpoint_at).max(0));
            }
            restarts
                .get_or_create(&job(j))
                .set(i64::try_from(m.restarts).unwrap_or(i64::MAX));
            rolled_back.get_or_create(&job(j)).set(i64::from(m.rolled_back));
            if !m.last_change_reason.is_empty() {
                change
                    .get_or_create(&ChangeLabels {
                        job: j.clone(),
                        reason: m.last_change_reason.clone(),
                    })
                    .set(m.last_change_ms);
            }
        }
        registry.register("job_phase", "The job's phase (1 for the phase it is in)", phase);
        registry.register(
            "job_last_checkpoint_age_seconds",
            "Seconds since the job's newest checkpoint was seen",
            age,
        );
        registry.register(
            "job_restarts",
            "Restarts of the job's current run after failures (its coordinator's count)",
            restarts,
        );
        registry.register(
            "job_rolled_back",
            "1 while a failed change of the job is rolled back",
            rolled_back,
        );
        registry.register(
            "job_last_change_duration_ms",
            "How long the job's last rescale, upgrade, suspend, resume or rollback took",
            change,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Phase, SnapshotRef, UpgradeReason, UpgradeResult};

    #[test]
    fn each_job_has_its_labelled_series() {
        let m = Metrics::default();
        let status = StreamJobStatus {
            phase: Some(Phase::Running),
            last_checkpoint: Some(SnapshotRef {
                path: "s3://b/j/chk-3".into(),
                time: "2026-12-06T00:00:00Z".into(),
            }),
            last_upgrade: Some(UpgradeResult {
                reason: UpgradeReason::Rescale,
                duration_ms: 2900,
                ..UpgradeResult::default()
            }),
            ..StreamJobStatus::default()
        };
        m.observe("ns/a", &status, Some(2));
        let mut registry = Registry::with_prefix("weir_operator");
        m.per_job(&mut registry, "2026-12-06T00:00:10Z".parse().unwrap());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "weir_operator_job_phase{job=\"ns/a\",phase=\"Running\"} 1",
            "weir_operator_job_last_checkpoint_age_seconds{job=\"ns/a\"} 10",
            "weir_operator_job_restarts{job=\"ns/a\"} 2",
            "weir_operator_job_rolled_back{job=\"ns/a\"} 0",
            "weir_operator_job_last_change_duration_ms{job=\"ns/a\",reason=\"rescale\"} 2900",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        // Every operator series the Grafana dashboard (docs/grafana) queries is exported.
        let all = m.prometheus();
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/grafana/weir-dashboard.json");
        let dashboard = std::fs::read_to_string(file).unwrap();
        let queried: Vec<&str> = dashboard
            .match_indices("weir_operator_")
            .map(|(i, _)| {
                let rest = &dashboard[i..];
                &rest[..rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap()]
            })
            .collect();
        assert!(queried.len() >= 4, "{queried:?}");
        for name in queried {
            assert!(
                all.contains(&format!("\n{name}{{")) || all.contains(&format!("\n{name} ")),
                "the dashboard queries {name}, not exported:\n{all}"
            );
        }
        m.forget("ns/a");
        assert!(!m.prometheus().contains("ns/a"));
        assert!(m.prometheus().contains("weir_operator_reconciles_total 0"));
    }
}
