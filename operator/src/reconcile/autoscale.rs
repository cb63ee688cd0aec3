//! The autoscaler in the reconcile loop: each reconcile of a running job with
//! `spec.autoscaler.enabled` reads its coordinator's subtask totals, turns their difference to
//! the previous reading into a sample, and asks the job's [`Autoscaler`]. A decision to rescale
//! is recorded (`status.autoscaler`, an Event with the figures behind it) and, unless `dryRun`,
//! carried out by setting `spec.parallelism` — the rescale then runs as any other (the scale
//! subresource's path), and its measured downtime is told to the autoscaler once it completes.

use std::collections::HashMap;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use weir_autoscale::{Action, Autoscaler, Decision};

use super::{Error, Reconciler, key};
use crate::coordinator::JobView;
use crate::crd::{AUTOSCALER_HISTORY, AutoscalerChange, Deployed, StreamJobStatus};
use crate::resources::DesiredError;

/// The field manager of the autoscaler's `spec.parallelism` patches.
const MANAGER: &str = "weir-autoscaler";

/// One job's autoscaler and what it last read.
pub struct JobScaler {
    scaler: Autoscaler,
    /// The completion time of the last rescale told to the autoscaler.
    seen_change: Option<String>,
}

/// Every job's autoscaler, by `namespace/name`.
pub type Scalers = std::sync::Mutex<HashMap<String, JobScaler>>;

impl Reconciler<'_> {
    /// Samples the running job `v` (deployed as `d`) and acts on the decision.
    pub(super) async fn autoscale(&self, status: &mut StreamJobStatus, v: &JobView, d: &Deployed) -> Result<(), Error> {
        let key = key(self.job);
        let Some(spec) = self.job.spec.autoscaler.clone().filter(|a| a.enabled) else {
            self.ctx.autoscalers.lock().expect("autoscalers lock").remove(&key);
            status.autoscaler = None;
            return Ok(());
        };
        let key_groups = self.job.spec.max_parallelism.max(1) as u32;
        // A change in flight (the autoscaler's own, or anyone's): its figures would mislead.
        if status.upgrade.is_some() || status.rolled_back.is_some() || d.parallelism != self.job.spec.parallelism {
            return Ok(());
        }
        let now = Timestamp::now();
        let at = now.as_millisecond();
        let decision = {
            let mut all = self.ctx.autoscalers.lock().expect("autoscalers lock");
            if all.get(&key).is_none_or(|s| s.scaler.spec() != &spec) {
                let scaler = Autoscaler::new(spec.clone(), key_groups)
                    .map_err(|e| Error::Desired(DesiredError::Invalid(e.to_string())))?;
                all.insert(
                    key.clone(),
                    JobScaler {
                        scaler,
                        seen_change: status.last_upgrade.as_ref().map(|u| u.finished_at.clone()),
                    },
                );
            }
            let entry = all.get_mut(&key).expect("inserted");
            if let Some(u) = &status.last_upgrade
                && entry.seen_change.as_ref() != Some(&u.finished_at)
            {
                entry.seen_change = Some(u.finished_at.clone());
                entry.scaler.rescaled(at, u.duration_ms.max(0) as u64);
            }
            let p = d.parallelism.max(0) as u32;
            let Some(decision) = entry.scaler.observe_totals(at, p, v.subtasks.clone()) else {
                return Ok(());
            };
            decision
        };
        let st = status.autoscaler.get_or_insert_with(Default::default);
        st.recommended_parallelism = Some(decision.recommended);
        st.last_decision = Some(decision.clone());
        if decision.action == Action::Hold {
            return Ok(());
        }
        st.history.push(AutoscalerChange {
            time: now.to_string(),
            from: decision.current,
            to: decision.target,
            reason: decision.reason.clone(),
            dry_run: spec.dry_run,
        });
        let excess = st.history.len().saturating_sub(AUTOSCALER_HISTORY);
        st.history.drain(..excess);
        let (reason, verb) = match decision.action {
            Action::ScaleUp => ("AutoscalerScaleUp", "up"),
            _ => ("AutoscalerScaleDown", "down"),
        };
        self.event(
            EventType::Normal,
            reason,
            "Autoscale",
            format!("{}{}", if spec.dry_run { "dry run: " } else { "" }, figures(&decision)),
        )
        .await;
        // The next decision comes after a cool-down and a new window (done or not: a dry run's
        // decision is not repeated every sample, and a reconcile that still sees the old spec
        // does not decide again). The rescale's real downtime is told once it completes.
        if let Some(s) = self.ctx.autoscalers.lock().expect("autoscalers lock").get_mut(&key) {
            s.scaler.rescaled(at, 0);
        }
        if spec.dry_run {
            return Ok(());
        }
        tracing::info!(job = %key, from = decision.current, to = decision.target, reason = %decision.reason, "autoscaler: scaling {verb}");
        // Recorded first: the spec change wakes the next reconcile, which must see the decision
        // in the status it writes (a status written from an older object would drop it).
        self.write_status(status).await?;
        let patch = serde_json::json!({"spec": {"parallelism": decision.target}});
        self.jobs
            .patch(&self.name, &PatchParams::apply(MANAGER), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }
}

/// The decision in one line with the numbers behind it.
fn figures(d: &Decision) -> String {
    let vertices: Vec<String> = d
        .vertices
        .iter()
        .map(|v| {
            format!(
                "{} {:.0} % busy, {:.0}/s, needs {}",
                v.id,
                v.busy * 100.0,
                v.records_per_s,
                v.needed
            )
        })
        .collect();
    format!(
        "{} (input {:.0}/s, target {:.0}/s{}; {})",
        d.reason,
        d.input_rate,
        d.target_rate,
        d.lag
            .map(|l| format!(
                ", lag {l:.0}{}",
                d.lag_rate.map(|r| format!(" ({r:+.0}/s)")).unwrap_or_default()
            ))
            .unwrap_or_default(),
        vertices.join("; ")
    )
}
