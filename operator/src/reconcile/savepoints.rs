//! The savepoint lifecycle of a steady job: periodic savepoints (triggered, recorded, polled),
//! the bounded history in the status and the disposal of what it no longer keeps (files first,
//! through the coordinator, then the entry), the disposal of state namespaces left behind by
//! stateless upgrades, and the savepoint taken when a StreamJob is deleted (a finalizer holds
//! the deletion until it is).

use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use weir_proto::rpc::JobPhase;

use super::{Error, Reconciler, now_text};
use crate::coordinator::{self, JobView};
use crate::crd::{Deployed, PendingSavepoint, SavepointCause, SavepointEntry, SnapshotRef, StreamJobStatus};
use crate::resources;
use crate::retention;

/// The finalizer a StreamJob with `savepoint.onDelete` carries.
pub const FINALIZER: &str = "weir.dev/savepoint-on-delete";

/// Records a completed savepoint: the status' last savepoint and an entry in the history.
pub(super) fn record(status: &mut StreamJobStatus, path: &str, cause: SavepointCause) {
    let time = now_text();
    status.last_savepoint = Some(SnapshotRef {
        path: path.to_string(),
        time: time.clone(),
    });
    if !status.savepoints.iter().any(|e| e.path == path) {
        status.savepoints.push(SavepointEntry {
            path: path.to_string(),
            time,
            cause,
        });
    }
}

impl Reconciler<'_> {
    /// A periodic savepoint of a running job: triggered when due (the trigger recorded first),
    /// then polled each reconcile until it completes; whether one is in progress.
    pub(super) async fn periodic_savepoint(&self, status: &mut StreamJobStatus, v: &JobView) -> Result<bool, Error> {
        let policy = &self.job.spec.savepoint;
        let now = Timestamp::now().as_second();
        let pending = match status.pending_savepoint.clone() {
            Some(p) => p,
            None => {
                let newest = status.savepoints.iter().filter_map(|e| retention::unix(&e.time)).max();
                let since = status.healthy.as_ref().and_then(|h| retention::unix(&h.since));
                if v.phase != JobPhase::Running || !retention::periodic_due(policy, newest, since, now) {
                    return Ok(false);
                }
                let p = PendingSavepoint {
                    trigger_id: format!("periodic-{now}"),
                    started_at: now_text(),
                };
                status.pending_savepoint = Some(p.clone());
                self.write_status(status).await?;
                p
            }
        };
        let mut client = self.connect().await?;
        let taken = match self.savepoint_by_trigger(&mut client, &pending.trigger_id, false).await {
            Ok(taken) => taken,
            Err(e) => {
                let started = retention::unix(&pending.started_at).unwrap_or(now);
                if now - started < self.job.spec.upgrade.timeout_seconds {
                    return Err(e);
                }
                // Given up after `upgrade.timeoutSeconds`: the next reconcile triggers a new one
                // (so a job that cannot take savepoints tries once per timeout, not more often).
                status.pending_savepoint = None;
                self.event(
                    EventType::Warning,
                    "SavepointFailed",
                    "Savepoint",
                    format!("periodic savepoint {}: {e}", pending.trigger_id),
                )
                .await;
                return Ok(false);
            }
        };
        let Some(path) = taken else {
            return Ok(true);
        };
        status.pending_savepoint = None;
        record(status, &path, SavepointCause::Periodic);
        self.ctx.metrics.savepoints.fetch_add(1, Ordering::Relaxed);
        self.event(
            EventType::Normal,
            "SavepointTaken",
            "Savepoint",
            format!("periodic: {path}"),
        )
        .await;
        Ok(false)
    }

    /// Disposes what the history no longer keeps, and the checkpoints of state namespaces
    /// nothing restores from any more, through the coordinator of the running job; the
    /// entries go once their files are gone.
    pub(super) async fn dispose(&self, status: &mut StreamJobStatus, v: &JobView, d: &Deployed) {
        if v.phase != JobPhase::Running || status.upgrade.is_some() {
            return;
        }
        let keep: Vec<&str> = d.restore_from.as_deref().into_iter().collect();
        let now = Timestamp::now().as_second();
        let savepoints = retention::to_dispose(&status.savepoints, &self.job.spec.savepoint, now, &keep);
        let stable = status.last_stable_spec.as_ref().map(|s| s.state_epoch);
        let epochs = retention::epochs_to_dispose(
            d.state_epoch,
            status.disposed_below_epoch,
            stable,
            v.last_checkpoint > 0,
        );
        let dirs: Vec<String> = match &self.job.spec.checkpoint {
            Some(c) if !v.job.is_empty() => epochs
                .clone()
                .map(|e| {
                    format!(
                        "{}/{}",
                        resources::checkpoint_storage(&c.storage, e).trim_end_matches('/'),
                        v.job
                    )
                })
                .collect(),
            _ => Vec::new(),
        };
        if savepoints.is_empty() && dirs.is_empty() {
            return;
        }
        let outcome = match self.connect().await {
            Ok(mut client) => coordinator::dispose(&mut client, &savepoints, &dirs).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(Some(disposed)) => {
                status.savepoints.retain(|e| !disposed.contains(&e.path));
                if !dirs.is_empty() && dirs.iter().all(|d| disposed.contains(d)) {
                    status.disposed_below_epoch = epochs.end;
                }
                tracing::info!(job = %self.name, ?disposed, "disposed");
            }
            // An older coordinator cannot dispose: the history is kept as it is.
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(job = %self.name, error = %e, "could not dispose old snapshots; tried again later")
            }
        }
    }

    /// Adds or removes the savepoint-on-delete finalizer as `savepoint.onDelete` says; whether it
    /// changed anything.
    pub(super) async fn sync_finalizer(&self) -> Result<bool, Error> {
        let want = self.job.spec.savepoint.on_delete;
        let has = self.job.finalizers().iter().any(|f| f == FINALIZER);
        if want == has {
            return Ok(false);
        }
        self.set_finalizer(want, self.job.resource_version()).await?;
        Ok(true)
    }

    /// The StreamJob's finalizers with or without ours, by a merge patch that names the
    /// resourceVersion read (a concurrent change of the list makes it fail and be retried).
    async fn set_finalizer(&self, present: bool, version: Option<String>) -> Result<(), Error> {
        let mut finalizers: Vec<String> = self
            .job
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        if present {
            finalizers.push(FINALIZER.to_string());
        }
        let patch = serde_json::json!({
            "metadata": {"finalizers": finalizers, "resourceVersion": version}
        });
        self.jobs
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// A StreamJob being deleted: with the finalizer, stop the job with a savepoint first
    /// (triggered and polled like any other), record it, then let the deletion go on. A job
    /// that is not running, or a savepoint that takes longer than `upgrade.timeoutSeconds`,
    /// lets the deletion go on without one (with a warning event).
    pub(super) async fn finalize(&self, status: &mut StreamJobStatus) -> Result<Action, Error> {
        if !self.job.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(Action::await_change());
        }
        let deleting_since = self
            .job
            .metadata
            .deletion_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or_else(|| Timestamp::now().as_second());
        let overdue = Timestamp::now().as_second() - deleting_since > self.job.spec.upgrade.timeout_seconds;
        let running = status.deployed.as_ref().is_some_and(|d| d.parallelism > 0);
        // One connection for the status and the savepoint.
        let mut client = if running { self.connect().await.ok() } else { None };
        let view = match client.as_mut() {
            Some(c) => coordinator::status(c).await.ok(),
            None => None,
        };
        let outcome: Result<Option<String>, String> = match (&view, client.as_mut()) {
            (Some(v), _) if v.phase == JobPhase::Stopped => Ok(v.last_savepoint.clone()),
            (Some(v), Some(c))
                if matches!(
                    v.phase,
                    JobPhase::Running | JobPhase::Deploying | JobPhase::WaitingForWorkers
                ) =>
            {
                let id = format!("delete-{}", self.job.uid().unwrap_or_default());
                match self.savepoint_by_trigger(c, &id, true).await {
                    Ok(Some(path)) => Ok(Some(path)),
                    Ok(None) if !overdue => return Ok(Action::requeue(Duration::from_secs(1))),
                    Ok(None) => Err(format!(
                        "the savepoint took longer than upgrade.timeoutSeconds ({} s)",
                        self.job.spec.upgrade.timeout_seconds
                    )),
                    Err(e) if !overdue => return Err(e),
                    Err(e) => Err(e.to_string()),
                }
            }
            (Some(v), _) => Err(format!("the job is {}", v.phase.name())),
            (None, _) if running && !overdue => return Ok(Action::requeue(Duration::from_secs(2))),
            (None, _) if running => Err("its coordinator cannot be reached".into()),
            (None, _) => Err("the job is suspended (its savepoint was taken then)".into()),
        };
        let mut version = self.job.resource_version();
        match outcome {
            Ok(Some(path)) => {
                record(status, &path, SavepointCause::Delete);
                version = self.write_status(status).await?;
                self.event(
                    EventType::Normal,
                    "SavepointOnDelete",
                    "Delete",
                    format!("stopped with savepoint {path} before the StreamJob is deleted"),
                )
                .await;
            }
            Ok(None) => {
                self.event(
                    EventType::Warning,
                    "DeletedWithoutSavepoint",
                    "Delete",
                    "the job had stopped, and its coordinator knows no savepoint".into(),
                )
                .await
            }
            Err(why) => {
                self.event(
                    EventType::Warning,
                    "DeletedWithoutSavepoint",
                    "Delete",
                    format!("no savepoint on delete: {why}"),
                )
                .await
            }
        }
        self.set_finalizer(false, version).await?;
        Ok(Action::await_change())
    }
}
