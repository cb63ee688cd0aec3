//! The steady job's health: how long it has run healthy (what makes its spec the last stable
//! one) and the health check that restarts a job restarting too often or not checkpointing.

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;

use super::{Error, Reconciler, now_text};
use crate::coordinator::JobView;
use crate::crd::{Deployed, Healthy, StableSpec, StreamJobStatus};
use crate::decide;

impl Reconciler<'_> {
    /// The health check of a job the coordinator reports on: one that restarts too often or
    /// stopped checkpointing is restarted (recorded first, then every pod replaced: it resumes
    /// from its newest checkpoint). Why, when it was restarted now or within the window.
    pub(super) async fn health_check(
        &self,
        status: &mut StreamJobStatus,
        v: &JobView,
    ) -> Result<Option<String>, Error> {
        use weir_proto::rpc::JobPhase;
        if !matches!(v.phase, JobPhase::Running | JobPhase::Restarting) {
            return Ok(None);
        }
        let now = Timestamp::now().as_second();
        let mut seen = status.health.clone().unwrap_or_default();
        let checkpointing = self.job.spec.checkpoint.is_some() && v.phase == JobPhase::Running;
        let why = decide::health(
            &mut seen,
            &self.job.spec.health_check,
            u64::from(v.restarts),
            v.last_checkpoint,
            checkpointing,
            now,
        );
        let Some(why) = why else {
            // Shown as Degraded for the window after a health restart.
            let window = self.job.spec.health_check.window_seconds;
            let recent = (seen.last_restart > 0 && now - seen.last_restart < window)
                .then(|| format!("restarted by the health check: {}", seen.last_reason));
            status.health = Some(seen);
            return Ok(recent);
        };
        seen.last_restart = now;
        seen.last_reason = why.clone();
        seen.restarts.clear();
        seen.checkpoint_since = now;
        status.health = Some(seen);
        self.write_status(status).await?;
        let pods = self.job_pods().await?;
        let replaced = self.delete_pods(pods.iter()).await?;
        self.event(
            EventType::Warning,
            "Unhealthy",
            "Restart",
            format!("{why}: {replaced} pods replaced; the job resumes from its newest checkpoint"),
        )
        .await;
        Ok(Some(why))
    }

    /// Follows how long the deployment has run, and records its spec as the last stable one
    /// once it has run `upgrade.stableSeconds` (not while a rolled-back spec is asked for).
    pub(super) fn note_health(
        &self,
        status: &mut StreamJobStatus,
        view: Option<&JobView>,
        d: &Deployed,
        rolled_back: bool,
    ) {
        let running = view.is_some_and(|v| v.phase == weir_proto::rpc::JobPhase::Running);
        if !running || rolled_back {
            status.healthy = None;
            return;
        }
        let since = match &status.healthy {
            Some(h) if h.serial == d.serial => h.since.parse::<Timestamp>().unwrap_or_else(|_| Timestamp::now()),
            _ => {
                let now = Timestamp::now();
                status.healthy = Some(Healthy {
                    serial: d.serial,
                    since: now.to_string(),
                });
                now
            }
        };
        let ran = (Timestamp::now().as_second() - since.as_second()).max(0);
        let recorded = status
            .last_stable_spec
            .as_ref()
            .is_some_and(|s| s.job_hash == d.job_hash && s.parallelism == d.parallelism);
        if ran >= self.job.spec.upgrade.stable_seconds && !recorded {
            status.last_stable_spec = Some(StableSpec {
                spec: serde_json::to_value(&self.job.spec).unwrap_or_default(),
                job_hash: d.job_hash.clone(),
                parallelism: d.parallelism,
                state_epoch: d.state_epoch,
                time: now_text(),
            });
        }
    }
}
