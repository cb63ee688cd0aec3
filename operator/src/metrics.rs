//! The operator's metrics (Prometheus text at `/metrics`): counters over all jobs, and per job
//! (labelled `job="<namespace>/<name>"`) its phase, the age of its newest checkpoint, its
//! restarts, its changes and how long the last one took.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::jiff::Timestamp;

use crate::crd::StreamJobStatus;

/// The operator's counters (Prometheus text at `/metrics`).
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
    /// The counters in Prometheus' text format.
    pub fn prometheus(&self) -> String {
        let mut s = String::new();
        for (name, help, kind, v) in [
            (
                "weir_operator_reconciles_total",
                "Reconcile calls.",
                "counter",
                &self.reconciles,
            ),
            (
                "weir_operator_reconcile_failures_total",
                "Failed reconcile calls.",
                "counter",
                &self.failures,
            ),
            (
                "weir_operator_upgrades_total",
                "Rescales, upgrades, suspends and resumes completed.",
                "counter",
                &self.upgrades,
            ),
            (
                "weir_operator_last_upgrade_duration_ms",
                "Duration of the last completed change.",
                "gauge",
                &self.last_upgrade_ms,
            ),
            (
                "weir_operator_savepoints_total",
                "Savepoints taken on request.",
                "counter",
                &self.savepoints,
            ),
        ] {
            s.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        s.push_str(&self.per_job(Timestamp::now()));
        s
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

    /// The per-job series at `now`.
    fn per_job(&self, now: Timestamp) -> String {
        let jobs = self.jobs.lock().expect("metrics lock");
        let mut s = String::new();
        let mut family = |name: &str, help: &str, kind: &str, rows: Vec<(String, String)>| {
            if rows.is_empty() {
                return;
            }
            s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, value) in rows {
                s.push_str(&format!("{name}{{{labels}}} {value}\n"));
            }
        };
        let job = |j: &str| format!("job=\"{}\"", j.replace('\\', "\\\\").replace('"', "\\\""));
        family(
            "weir_operator_job_phase",
            "The job's phase (1 for the phase it is in).",
            "gauge",
            jobs.iter()
                .map(|(j, m)| (format!("{},phase=\"{}\"", job(j), m.phase), "1".into()))
                .collect(),
        );
        family(
            "weir_operator_job_last_checkpoint_age_seconds",
            "Seconds since the job's newest checkpoint was seen.",
            "gauge",
            jobs.iter()
                .filter(|(_, m)| m.last_checkpoint_at > 0)
                .map(|(j, m)| (job(j), (now.as_second() - m.last_checkpoint_at).max(0).to_string()))
                .collect(),
        );
        family(
            "weir_operator_job_restarts",
            "Restarts of the job's current run after failures (its coordinator's count).",
            "gauge",
            jobs.iter().map(|(j, m)| (job(j), m.restarts.to_string())).collect(),
        );
        family(
            "weir_operator_job_rolled_back",
            "1 while a failed change of the job is rolled back.",
            "gauge",
            jobs.iter()
                .map(|(j, m)| (job(j), u8::from(m.rolled_back).to_string()))
                .collect(),
        );
        family(
            "weir_operator_job_last_change_duration_ms",
            "How long the job's last rescale, upgrade, suspend, resume or rollback took.",
            "gauge",
            jobs.iter()
                .filter(|(_, m)| !m.last_change_reason.is_empty())
                .map(|(j, m)| {
                    (
                        format!("{},reason=\"{}\"", job(j), m.last_change_reason),
                        m.last_change_ms.to_string(),
                    )
                })
                .collect(),
        );
        s
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
        let text = m.per_job("2026-12-06T00:00:10Z".parse().unwrap());
        for line in [
            "weir_operator_job_phase{job=\"ns/a\",phase=\"Running\"} 1",
            "weir_operator_job_last_checkpoint_age_seconds{job=\"ns/a\"} 10",
            "weir_operator_job_restarts{job=\"ns/a\"} 2",
            "weir_operator_job_rolled_back{job=\"ns/a\"} 0",
            "weir_operator_job_last_change_duration_ms{job=\"ns/a\",reason=\"rescale\"} 2900",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        m.forget("ns/a");
        assert_eq!(m.per_job(Timestamp::now()), "");
    }
}
