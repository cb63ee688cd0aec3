//! Changes: the savepoint step (triggered, then polled), the deploy and restore steps with
//! their deadlines, and what a failed change does (roll back, or wait to be superseded).

use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::{Error, Reconciler, is_ready, key, now_text, savepoints};
use crate::conditions::{self, ConditionType, Reason};
use crate::coordinator::{self, CoordinatorError, Progress};
use crate::crd::{
    Deployed, RolledBack, SavepointCause, StableSpec, StreamJob, StreamJobSpec, StreamJobStatus, Upgrade, UpgradeMode,
    UpgradeReason, UpgradeResult, UpgradeStep,
};
use crate::decide::{self, Outcome, PodCount, SavepointAction};
use crate::resources::{self, SERIAL_LABEL};

impl Reconciler<'_> {
    /// The savepoint a `savepointTriggerNonce` asks for, triggered on the coordinator under an
    /// id made of the nonce (so asking again never takes a second one) and polled until done;
    /// whether it is done.
    pub(super) async fn triggered_savepoint(&self, status: &mut StreamJobStatus, nonce: i64) -> Result<bool, Error> {
        let mut client = self.connect().await?;
        let Some(path) = self
            .savepoint_by_trigger(&mut client, &format!("nonce-{nonce}"), false)
            .await?
        else {
            return Ok(false);
        };
        self.ctx.metrics.savepoints.fetch_add(1, Ordering::Relaxed);
        savepoints::record(status, &path, SavepointCause::Manual);
        status.savepoint_trigger_nonce = Some(nonce);
        self.event(
            EventType::Normal,
            "SavepointTaken",
            "Savepoint",
            format!("savepointTriggerNonce {nonce}: {path}"),
        )
        .await;
        Ok(true)
    }

    /// Savepoint `id` through the coordinator's trigger-and-poll calls: `None` while it is being
    /// taken, its path once done. A failed one is triggered again (a new try under the same id)
    /// and its error returned; a coordinator without triggers takes it in one blocking call.
    pub(super) async fn savepoint_by_trigger(
        &self,
        client: &mut weir_proto::rpc::coordinator_client::CoordinatorClient<tonic::transport::Channel>,
        id: &str,
        stop: bool,
    ) -> Result<Option<String>, Error> {
        match coordinator::savepoint_progress(client, id).await {
            Ok(Progress::Completed(path)) => Ok(Some(path)),
            Ok(Progress::Pending) => Ok(None),
            Ok(Progress::Failed(e)) => {
                coordinator::trigger_savepoint(client, id, stop).await?;
                Err(Error::Coordinator(CoordinatorError::Refused(format!(
                    "savepoint {id} failed (trying again): {e}"
                ))))
            }
            Ok(Progress::Unknown) => {
                if coordinator::trigger_savepoint(client, id, stop).await? {
                    Ok(None)
                } else {
                    Ok(Some(coordinator::savepoint(client, stop, self.timeout()).await?))
                }
            }
            Ok(Progress::Unsupported) => Ok(Some(coordinator::savepoint(client, stop, self.timeout()).await?)),
            Err(e) => Err(e.into()),
        }
    }

    /// Each step's deadline.
    pub(super) fn timeout(&self) -> Duration {
        Duration::from_secs(self.job.spec.upgrade.timeout_seconds.max(1) as u64)
    }

    /// The savepoint step: `None` while the savepoint is being taken, then the path of the
    /// savepoint the change restores from (`Some(None)`: its newest checkpoint). The savepoint
    /// is triggered under an id made of the change's start, so a repeated step never takes a
    /// second one.
    pub(super) async fn take_savepoint(&self, u: &Upgrade) -> Result<Option<Option<String>>, Error> {
        let mut client = self.connect().await?;
        let view = coordinator::status(&mut client).await?;
        let id = format!("change-{}", u.started_at);
        Ok(match decide::savepoint_action(view.phase) {
            // Stopped: by this change's savepoint if the coordinator knows it, else by its last.
            SavepointAction::UseLast => match coordinator::savepoint_progress(&mut client, &id).await {
                Ok(Progress::Completed(path)) => Some(Some(path)),
                _ => Some(view.last_savepoint.clone()),
            },
            SavepointAction::Take => self.savepoint_by_trigger(&mut client, &id, true).await?.map(Some),
            SavepointAction::ResumeFromCheckpoint => {
                self.event(
                    EventType::Warning,
                    "NoSavepoint",
                    "Upgrade",
                    format!(
                        "the job is {}: it resumes from its newest checkpoint",
                        view.phase.name()
                    ),
                )
                .await;
                Some(None)
            }
            SavepointAction::Wait => {
                return Err(Error::Coordinator(CoordinatorError::Refused(format!(
                    "the job is {}; a savepoint is taken once it runs",
                    view.phase.name()
                ))));
            }
        })
    }

    /// Carries a change on from the step its status names.
    pub(super) async fn upgrade(
        &self,
        status: &mut StreamJobStatus,
        d: Deployed,
        target: i32,
        hash: String,
    ) -> Result<Action, Error> {
        let spec = &self.job.spec;
        let mut u = status.upgrade.clone().expect("an upgrade in progress");
        if u.step == UpgradeStep::Savepoint {
            let taken = match self.take_savepoint(&u).await {
                Ok(Some(path)) => Ok(path),
                Ok(None) if elapsed_s(&u) < spec.upgrade.timeout_seconds => {
                    // Being taken: look again in a moment (no call is held open meanwhile).
                    self.show(status, d.parallelism, None, false);
                    self.write_status(status).await?;
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
                Ok(None) => Err(Error::Coordinator(CoordinatorError::Refused(
                    "the savepoint is still being taken".into(),
                ))),
                Err(e) => Err(e),
            };
            let path = match taken {
                Ok(path) => path,
                Err(e) if elapsed_s(&u) < spec.upgrade.timeout_seconds => return Err(e),
                Err(e) if spec.upgrade.fallback_to_last_state => {
                    self.event(
                        EventType::Warning,
                        "NoSavepoint",
                        "Upgrade",
                        format!("no savepoint within {} s ({e}): the change goes on from the newest checkpoint (upgrade.fallbackToLastState)", spec.upgrade.timeout_seconds),
                    )
                    .await;
                    None
                }
                Err(e) => {
                    // Nothing was changed yet: the job keeps running as deployed, the change
                    // stays (marked failed) and is tried again until the spec is reverted or
                    // changed.
                    let why = format!("no savepoint within {} s: {e}", spec.upgrade.timeout_seconds);
                    if u.failed.is_none() {
                        self.event(
                            EventType::Warning,
                            "ChangeFailed",
                            "Upgrade",
                            format!(
                                "{}: {why}; the job runs as before; revert the spec, or set upgrade.fallbackToLastState",
                                u.reason
                            ),
                        )
                        .await;
                    }
                    u.failed = Some(why.clone());
                    status.upgrade = Some(u);
                    self.show_failed(status, d.parallelism, &why).await?;
                    return Ok(Action::requeue(Duration::from_secs(10)));
                }
            };
            if let Some(p) = &path {
                savepoints::record(status, p, SavepointCause::Change);
                self.event(
                    EventType::Normal,
                    "SavepointTaken",
                    "Upgrade",
                    format!("stopped with savepoint {p}"),
                )
                .await;
            }
            u.savepoint = path;
            u.failed = None;
            u.step = UpgradeStep::Deploy;
            u.step_started_at = Some(now_text());
            status.upgrade = Some(u.clone());
            self.write_status(status).await?;
        }
        if u.step == UpgradeStep::Deploy {
            // A rollback deploys the last stable spec; any other change the spec's.
            let (job, next) = match (u.reason, &status.last_stable_spec) {
                (UpgradeReason::Rollback, Some(stable)) => (
                    stable_job(self.job, stable)?,
                    Deployed {
                        parallelism: stable.parallelism,
                        job_hash: stable.job_hash.clone(),
                        restore_from: u.savepoint.clone().or(d.restore_from.clone()),
                        serial: d.serial + 1,
                        state_epoch: stable.state_epoch,
                    },
                ),
                _ => {
                    let stateless = spec.upgrade_mode == UpgradeMode::Stateless && d.job_hash != hash;
                    let next = Deployed {
                        parallelism: target,
                        job_hash: hash,
                        restore_from: if stateless {
                            None
                        } else {
                            u.savepoint.clone().or(d.restore_from.clone())
                        },
                        serial: d.serial + 1,
                        state_epoch: d.state_epoch + i64::from(stateless),
                    };
                    (self.job.clone(), next)
                }
            };
            self.apply_all(&job, &next).await?;
            u.step = UpgradeStep::Restore;
            u.to_parallelism = next.parallelism;
            u.step_started_at = Some(now_text());
            status.upgrade = Some(u.clone());
            status.deployed = Some(next);
            self.write_status(status).await?;
        }
        // restore: replace the pods of older deployments, wait for the job to run again.
        let d = status.deployed.clone().expect("deployed");
        let serial = d.serial.to_string();
        let pods = self.job_pods().await?;
        let of_this = |p: &&Pod| p.labels().get(SERIAL_LABEL) == Some(&serial);
        self.delete_pods(pods.iter().filter(|p| !of_this(p))).await?;
        let current = pods
            .iter()
            .filter(of_this)
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect::<Vec<_>>();
        let count = PodCount {
            total: pods.len(),
            ready_current: current.iter().filter(|p| is_ready(p)).count(),
        };
        // The coordinator is asked once the pods are there (or when they may have failed).
        let view = if d.parallelism > 0 && count.ready_current == d.parallelism as usize {
            self.coordinator_view().await
        } else {
            None
        };
        let crash = crash_looping(&current);
        let outcome = decide::restore_outcome(
            d.parallelism,
            count,
            view.as_ref().map(|v| (v.phase, v.last_error.as_deref())),
            crash.as_deref(),
            elapsed_s(&u),
            spec.upgrade.timeout_seconds,
        );
        match outcome {
            Outcome::Done => {}
            Outcome::Wait => {
                self.show(status, d.parallelism, None, false);
                self.write_status(status).await?;
                return Ok(Action::requeue(Duration::from_millis(500)));
            }
            Outcome::Failed(why) => return self.fail(status, d, u, why).await,
        }
        let started: Timestamp = u.started_at.parse().unwrap_or_else(|_| Timestamp::now());
        let took = (Timestamp::now().as_millisecond() - started.as_millisecond()).max(0);
        status.last_upgrade = Some(UpgradeResult {
            reason: u.reason,
            from_parallelism: u.from_parallelism,
            to_parallelism: d.parallelism,
            duration_ms: took,
            finished_at: now_text(),
        });
        status.upgrade = None;
        status.current_parallelism = Some(d.parallelism);
        if u.reason != UpgradeReason::Rollback {
            status.rolled_back = None;
        }
        self.show(status, d.parallelism, view.as_ref(), true);
        if status.rolled_back.is_none() {
            conditions::set(
                status,
                ConditionType::Degraded,
                false,
                Reason::Healthy,
                "",
                Timestamp::now(),
            );
        }
        self.write_status(status).await?;
        self.ctx
            .completed
            .lock()
            .expect("completed lock")
            .insert(key(self.job), u.started_at.clone());
        self.ctx.metrics.upgrades.fetch_add(1, Ordering::Relaxed);
        self.ctx.metrics.last_upgrade_ms.store(took as u64, Ordering::Relaxed);
        self.event(
            EventType::Normal,
            "ChangeCompleted",
            "Upgrade",
            format!(
                "{}: {} → {} workers in {:.1} s",
                u.reason,
                u.from_parallelism,
                d.parallelism,
                took as f64 / 1000.0
            ),
        )
        .await;
        Ok(Action::requeue(Duration::from_secs(1)))
    }

    /// A change failed: roll back to the last stable spec when that is allowed and differs from
    /// what failed; otherwise keep the change, marked failed, until a newer spec supersedes it.
    pub(super) async fn fail(
        &self,
        status: &mut StreamJobStatus,
        d: Deployed,
        mut u: Upgrade,
        why: String,
    ) -> Result<Action, Error> {
        let spec = &self.job.spec;
        let stable = status
            .last_stable_spec
            .clone()
            .filter(|s| s.job_hash != d.job_hash || s.parallelism != d.parallelism);
        match stable {
            Some(stable) if spec.upgrade.rollback && u.reason != UpgradeReason::Rollback => {
                // Intent first: the rollback's Deploy step is recorded before it deploys.
                status.rolled_back = Some(RolledBack {
                    job_hash: resources::job_hash(self.job),
                    parallelism: resources::replicas(self.job),
                    reason: why.clone(),
                    time: now_text(),
                });
                let now = now_text();
                status.upgrade = Some(Upgrade {
                    reason: UpgradeReason::Rollback,
                    step: UpgradeStep::Deploy,
                    from_parallelism: d.parallelism,
                    to_parallelism: stable.parallelism,
                    started_at: now.clone(),
                    savepoint: u.savepoint.clone(),
                    step_started_at: Some(now),
                    failed: None,
                });
                self.show_failed(status, d.parallelism, &why).await?;
                self.event(
                    EventType::Warning,
                    "RolledBack",
                    "Upgrade",
                    format!(
                        "{} failed ({why}): back to the last stable spec ({} workers, recorded {})",
                        u.reason, stable.parallelism, stable.time
                    ),
                )
                .await;
                // The next reconcile deploys it (from the recorded step).
                Ok(Action::requeue(Duration::from_millis(100)))
            }
            _ => {
                if u.failed.is_none() {
                    u.failed = Some(why.clone());
                    status.upgrade = Some(u.clone());
                    self.event(
                        EventType::Warning,
                        "ChangeFailed",
                        "Upgrade",
                        format!(
                            "{} failed ({why}); {}",
                            u.reason,
                            if u.reason == UpgradeReason::Rollback {
                                "the rollback failed too: change the spec"
                            } else if !spec.upgrade.rollback {
                                "upgrade.rollback is off: change the spec"
                            } else {
                                "no stable spec recorded to roll back to: change the spec"
                            }
                        ),
                    )
                    .await;
                }
                self.show_failed(status, d.parallelism, &why).await?;
                Ok(Action::requeue(Duration::from_secs(5)))
            }
        }
    }
}

/// Seconds the change's current step has taken.
fn elapsed_s(u: &Upgrade) -> i64 {
    let since = u.step_started_at.as_deref().unwrap_or(&u.started_at);
    let since: Timestamp = since.parse().unwrap_or_else(|_| Timestamp::now());
    (Timestamp::now().as_second() - since.as_second()).max(0)
}

/// `job` with the last stable spec in place of its own.
pub(super) fn stable_job(job: &StreamJob, stable: &StableSpec) -> Result<StreamJob, Error> {
    let spec: StreamJobSpec = serde_json::from_value(stable.spec.clone())
        .map_err(|e| Error::Unsupported(format!("status.lastStableSpec: {e}")))?;
    let mut job = job.clone();
    job.spec = spec;
    Ok(job)
}

/// The first worker container that crash-loops or cannot be created (a change with it fails
/// at once): `pod/container: reason: message`.
fn crash_looping(pods: &[&Pod]) -> Option<String> {
    const FATAL: &[&str] = &["CrashLoopBackOff", "CreateContainerConfigError", "InvalidImageName"];
    pods.iter().find_map(|p| {
        let statuses = p.status.as_ref()?.container_statuses.as_ref()?;
        statuses.iter().find_map(|c| {
            let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
            let reason = waiting.and_then(|w| w.reason.as_deref()).unwrap_or_default();
            let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref()).map(|t| {
                format!(
                    "exit code {}{}",
                    t.exit_code,
                    t.message
                        .as_deref()
                        .map(|m| format!(", {}", m.trim()))
                        .unwrap_or_default()
                )
            });
            (FATAL.contains(&reason) || c.restart_count >= 3).then(|| {
                format!(
                    "{}/{}: {} (restarted {} times{})",
                    p.name_any(),
                    c.name,
                    if reason.is_empty() { "restarting" } else { reason },
                    c.restart_count,
                    last.map(|l| format!("; last {l}")).unwrap_or_default()
                )
            })
        })
    })
}
