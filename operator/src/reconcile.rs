//! The reconciler: brings a `StreamJob`'s ConfigMap, Service and StatefulSet to what its spec
//! asks (server-side apply, owned by the StreamJob), drives rescales, upgrades, suspend/resume,
//! savepoints and restarts through the job's coordinator, and reports it all in the status
//! (server-side apply on the status subresource) and as Kubernetes events.
//!
//! Every step of a change is written to the status before the next begins (`status.upgrade`),
//! and every step is safe to repeat, so an operator restarted at any point carries on where the
//! last one stopped and creates nothing twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;

use crate::conditions::{self, ConditionType, Reason};
use crate::coordinator::{self, CoordinatorError, JobView};
use crate::crd::{Deployed, SnapshotRef, StreamJob, StreamJobStatus, Upgrade, UpgradeStep};
use crate::decide::{self, Decision, Target};
use crate::resources::{self, DesiredError};
use change::stable_job;

/// The field manager of everything the operator applies.
pub const MANAGER: &str = "weir-operator";

/// What the reconciler shares across calls.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Publishes Kubernetes events.
    pub recorder: Recorder,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The Ingress each job's dashboard gets (none: no Ingress).
    pub dashboard_ingress: Option<resources::DashboardIngress>,
    /// Each job's autoscaler (jobs with `spec.autoscaler.enabled`).
    autoscalers: autoscale::Scalers,
    /// Consecutive failures per job, for the back-off.
    failures: Mutex<HashMap<String, u32>>,
    /// Per job, the start time of the last change this process completed: a reconcile that
    /// still sees that change in progress reads a cache the completion's status write has not
    /// reached yet, and waits for it instead of completing the change twice.
    completed: Mutex<HashMap<String, String>>,
}

impl Context {
    /// A context for `client`, publishing events as `recorder`.
    pub fn new(client: Client, recorder: Recorder, metrics: Arc<Metrics>) -> Context {
        Context {
            client,
            recorder,
            metrics,
            dashboard_ingress: None,
            autoscalers: Mutex::default(),
            failures: Mutex::default(),
            completed: Mutex::default(),
        }
    }
}

pub use crate::metrics::Metrics;

mod autoscale;
mod change;
mod health;
mod savepoints;

pub use savepoints::FINALIZER;

/// Why a reconcile failed (it is retried with back-off).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The desired objects cannot be made.
    #[error(transparent)]
    Desired(#[from] DesiredError),
    /// The API server refused or failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The coordinator could not be asked, or refused.
    #[error(transparent)]
    Coordinator(#[from] CoordinatorError),
    /// The spec asks for something Weir cannot run.
    #[error("{0}")]
    Unsupported(String),
    /// An object the job needs exists and belongs to someone else.
    #[error("{0}")]
    Conflict(String),
}

/// Reconciles one StreamJob.
pub async fn reconcile(job: Arc<StreamJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciles.fetch_add(1, Ordering::Relaxed);
    let mut status = job.status.clone().unwrap_or_default();
    let r = Reconciler::new(&job, &ctx);
    let key = key(&job);
    if job.metadata.deletion_timestamp.is_some() {
        return r.finalize(&mut status).await;
    }
    let outcome = r.run(&mut status).await;
    let restarts = *r.restarts.lock().expect("restarts lock");
    ctx.metrics.observe(&key, &status, restarts);
    match &outcome {
        Ok(_) => {
            ctx.failures.lock().expect("failures lock").remove(&key);
        }
        Err(e) => {
            ctx.metrics.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(job = %key, error = %e, "reconcile failed");
            conditions::set(
                &mut status,
                ConditionType::Degraded,
                true,
                reason_of(e),
                &e.to_string(),
                Timestamp::now(),
            );
            if let Err(write) = r.write_status(&status).await {
                tracing::warn!(job = %key, error = %write, "could not record the failure in the status");
            }
            r.event(EventType::Warning, reason_of(e).as_str(), "Reconcile", e.to_string())
                .await;
        }
    }
    outcome
}

/// The back-off after a failed reconcile: 1 s, 2 s, 4 s … up to 5 minutes.
pub fn error_policy(job: Arc<StreamJob>, _error: &Error, ctx: Arc<Context>) -> Action {
    let mut failures = ctx.failures.lock().expect("failures lock");
    let n = failures.entry(key(&job)).or_insert(0);
    *n += 1;
    Action::requeue(backoff(*n))
}

/// The wait before retry `n` (1-based).
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs(1u64 << n.saturating_sub(1).min(9)).min(Duration::from_secs(300))
}

fn key(job: &StreamJob) -> String {
    format!("{}/{}", job.namespace().unwrap_or_default(), job.name_any())
}

fn reason_of(e: &Error) -> Reason {
    match e {
        Error::Desired(_) => Reason::InvalidSpec,
        Error::Kube(_) => Reason::ApiError,
        Error::Coordinator(CoordinatorError::Refused(_)) => Reason::CoordinatorRefused,
        Error::Coordinator(_) => Reason::CoordinatorUnreachable,
        Error::Unsupported(_) => Reason::Unsupported,
        Error::Conflict(_) => Reason::ObjectConflict,
    }
}

fn now_text() -> String {
    Timestamp::now().to_string()
}

/// One reconcile of one job.
struct Reconciler<'a> {
    job: &'a StreamJob,
    ctx: &'a Context,
    name: String,
    jobs: Api<StreamJob>,
    pods: Api<Pod>,
    /// The coordinator's restart count, when it was asked this time (for the metrics).
    restarts: Mutex<Option<u64>>,
}

impl<'a> Reconciler<'a> {
    fn new(job: &'a StreamJob, ctx: &'a Context) -> Reconciler<'a> {
        let ns = job.namespace().unwrap_or_else(|| "default".into());
        Reconciler {
            job,
            ctx,
            name: job.name_any(),
            jobs: Api::namespaced(ctx.client.clone(), &ns),
            pods: Api::namespaced(ctx.client.clone(), &ns),
            restarts: Mutex::new(None),
        }
    }

    async fn run(&self, status: &mut StreamJobStatus) -> Result<Action, Error> {
        if self.sync_finalizer().await? {
            // The patch brings the StreamJob back with the finalizer as the spec says.
            return Ok(Action::requeue(Duration::from_millis(200)));
        }
        status.observed_generation = self.job.metadata.generation;
        status.selector = Some(resources::selector(self.job));
        status.dashboard = Some(resources::dashboard(self.job, self.ctx.dashboard_ingress.as_ref()));
        let target = resources::replicas(self.job);
        let hash = resources::job_hash(self.job);
        let spec_target = Target {
            parallelism: target,
            hash: &hash,
        };
        let decision = decide::decide(&self.job.spec, status, spec_target);
        let deployed = status.deployed.clone();
        match (decision, deployed) {
            (Decision::Unsupported(why), _) => Err(Error::Unsupported(why)),
            (Decision::FirstDeploy, _) | (_, None) => self.first_deploy(status, target, hash).await,
            (Decision::Steady, Some(d)) => self.steady(status, &d, spec_target).await,
            (Decision::Cancel, Some(d))
                if self
                    .coordinator_view()
                    .await
                    .is_some_and(|v| v.phase == weir_proto::rpc::JobPhase::Stopped) =>
            {
                // The spec went back, but the job was stopped with a savepoint already (by an
                // operator that could not record it): dropping the change would leave it
                // stopped. Carry on instead: it restarts from that savepoint as the spec says.
                self.upgrade(status, d, target, hash).await
            }
            (Decision::Cancel, Some(d)) => {
                let u = status.upgrade.take().expect("a change to cancel");
                self.event(
                    EventType::Normal,
                    "ChangeCancelled",
                    "Upgrade",
                    format!(
                        "{} to {} workers: the spec is back to what runs",
                        u.reason, u.to_parallelism
                    ),
                )
                .await;
                self.steady(status, &d, spec_target).await
            }
            (Decision::Start(reason, step), Some(d)) => {
                let now = now_text();
                status.rolled_back = None;
                // A periodic savepoint in flight is dropped: the change takes its own.
                status.pending_savepoint = None;
                status.upgrade = Some(Upgrade {
                    reason,
                    step,
                    from_parallelism: d.parallelism,
                    to_parallelism: target,
                    started_at: now.clone(),
                    savepoint: None,
                    step_started_at: Some(now),
                    failed: None,
                });
                self.show(status, d.parallelism, None, false);
                self.write_status(status).await?;
                self.event(
                    EventType::Normal,
                    "ChangeStarted",
                    "Upgrade",
                    format!("{reason}: {} → {target} workers", d.parallelism),
                )
                .await;
                self.upgrade(status, d, target, hash).await
            }
            (Decision::Supersede, Some(d)) => {
                // Recorded before anything is deployed: a restart here deploys the newer spec.
                let mut u = status.upgrade.clone().expect("a change to supersede");
                let was = u.failed.take();
                u.reason = decide::reason(&d, spec_target);
                u.step = UpgradeStep::Deploy;
                u.to_parallelism = target;
                u.step_started_at = Some(now_text());
                status.upgrade = Some(u.clone());
                status.rolled_back = None;
                self.write_status(status).await?;
                self.event(
                    EventType::Normal,
                    "ChangeSuperseded",
                    "Upgrade",
                    format!(
                        "the spec changed while the last change waited for its pods{}: {} → {target} workers",
                        was.map(|w| format!(" ({w})")).unwrap_or_default(),
                        u.from_parallelism
                    ),
                )
                .await;
                self.upgrade(status, d, target, hash).await
            }
            (Decision::Continue(_), Some(d)) => {
                let started = status.upgrade.as_ref().map(|u| u.started_at.clone());
                let done = self
                    .ctx
                    .completed
                    .lock()
                    .expect("completed lock")
                    .get(&key(self.job))
                    .cloned();
                if started.is_some() && started == done {
                    // A stale view of a change completed here: wait for the cache to catch up.
                    return Ok(Action::requeue(Duration::from_millis(200)));
                }
                self.upgrade(status, d, target, hash).await
            }
        }
    }

    /// The job's first deployment: objects created, nonces in the manifest counted as handled.
    async fn first_deploy(&self, status: &mut StreamJobStatus, target: i32, hash: String) -> Result<Action, Error> {
        let d = Deployed {
            parallelism: target,
            job_hash: hash,
            restore_from: self.job.spec.initial_savepoint_path.clone(),
            serial: 1,
            state_epoch: 0,
        };
        self.apply_all(self.job, &d).await?;
        status.deployed = Some(d);
        status.current_parallelism = Some(target);
        status.savepoint_trigger_nonce = self.job.spec.savepoint_trigger_nonce;
        status.restart_nonce = self.job.spec.restart_nonce;
        self.show(status, target, None, false);
        self.write_status(status).await?;
        self.event(
            EventType::Normal,
            "Deployed",
            "Deploy",
            format!("StatefulSet {} with {target} workers", self.name),
        )
        .await;
        Ok(Action::requeue(Duration::from_secs(1)))
    }

    /// The job as deployed: with the last stable spec while a failed change is rolled back
    /// (the StreamJob's spec still asks for what failed), else as its spec says.
    fn deployed_job(&self, status: &StreamJobStatus, target: Target<'_>) -> Result<StreamJob, Error> {
        let rolled_back = decide::asks_for_rolled_back(status, target);
        let deployed_stable = status
            .deployed
            .as_ref()
            .zip(status.last_stable_spec.as_ref())
            .is_some_and(|(d, s)| d.job_hash == s.job_hash);
        match &status.last_stable_spec {
            Some(stable) if rolled_back && deployed_stable => stable_job(self.job, stable),
            _ => Ok(self.job.clone()),
        }
    }

    /// Nothing to change: keep the objects as desired, follow the job, handle the nonces.
    async fn steady(&self, status: &mut StreamJobStatus, d: &Deployed, target: Target<'_>) -> Result<Action, Error> {
        let job = self.deployed_job(status, target)?;
        self.apply_all(&job, d).await?;
        let view = if d.parallelism > 0 {
            self.coordinator_view().await
        } else {
            None
        };
        if let Some(v) = &view {
            self.note_checkpoint(status, v, d);
        }
        let rolled_back = status.rolled_back.clone();
        self.note_health(status, view.as_ref(), d, rolled_back.is_some());
        let unhealthy = match &view {
            Some(v) if rolled_back.is_none() => self.health_check(status, v).await?,
            _ => None,
        };
        let mut result = Ok(());
        let mut savepoint_pending = false;
        if let Some(v) = view.as_ref().filter(|_| rolled_back.is_none()) {
            match self.periodic_savepoint(status, v).await {
                Ok(pending) => savepoint_pending = pending,
                Err(e) => result = Err(e),
            }
            self.dispose(status, v, d).await;
            if unhealthy.is_none()
                && v.phase == weir_proto::rpc::JobPhase::Running
                && let Err(e) = self.autoscale(status, v, d).await
            {
                result = Err(e);
            }
        }
        if d.parallelism > 0
            && let Some(nonce) = self.job.spec.savepoint_trigger_nonce
            && status.savepoint_trigger_nonce != Some(nonce)
        {
            match self.triggered_savepoint(status, nonce).await {
                // A periodic savepoint still pending keeps the short requeue too.
                Ok(done) => savepoint_pending |= !done,
                Err(e) => result = Err(e),
            }
        }
        if let Some(nonce) = self.job.spec.restart_nonce
            && status.restart_nonce != Some(nonce)
        {
            // Recorded first: an operator stopped halfway does not replace the pods twice.
            status.restart_nonce = Some(nonce);
            self.write_status(status).await?;
            let pods = self.job_pods().await?;
            let deleted = self.delete_pods(pods.iter()).await?;
            self.event(
                EventType::Normal,
                "Restarted",
                "Restart",
                format!("restartNonce {nonce}: {deleted} pods replaced; the job resumes from its newest checkpoint"),
            )
            .await;
        }
        // Pods that are all Ready with a coordinator that does not answer: Unreachable.
        let pods_ready = if view.is_none() && d.parallelism > 0 {
            let pods = self.job_pods().await?;
            pods.len() == d.parallelism as usize && pods.iter().all(is_ready)
        } else {
            false
        };
        self.show(status, d.parallelism, view.as_ref(), pods_ready);
        if result.is_ok() {
            let seen = view.as_ref().map(|v| (v.phase, v.last_error.as_deref()));
            let (degraded, reason, message) = match (decide::degraded(seen), &rolled_back) {
                _ if unhealthy.is_some() => (true, Reason::Unhealthy, unhealthy.clone().unwrap_or_default()),
                (Some(e), _) => (true, Reason::JobFailing, e),
                (None, Some(r)) => (
                    true,
                    Reason::ChangeFailed,
                    format!("rolled back to the last stable spec: {}", r.reason),
                ),
                (None, None) if pods_ready => (
                    true,
                    Reason::CoordinatorUnreachable,
                    "every worker pod is Ready but the coordinator does not answer".to_string(),
                ),
                (None, None) => (false, Reason::Healthy, String::new()),
            };
            conditions::set(
                status,
                ConditionType::Degraded,
                degraded,
                reason,
                &message,
                Timestamp::now(),
            );
        }
        self.write_status(status).await?;
        result?;
        let autoscaling = self.job.spec.autoscaler.as_ref().filter(|a| a.enabled);
        Ok(Action::requeue(if savepoint_pending {
            Duration::from_secs(1)
        } else if let (Some(a), Some(_)) = (autoscaling, &view) {
            a.sample_every()
        } else if view.is_some() {
            Duration::from_secs(10)
        } else {
            Duration::from_secs(3)
        }))
    }

    /// A client to the job's coordinator.
    async fn connect(
        &self,
    ) -> Result<weir_proto::rpc::coordinator_client::CoordinatorClient<tonic::transport::Channel>, CoordinatorError>
    {
        let address = self
            .job
            .annotations()
            .get(coordinator::ADDRESS_ANNOTATION)
            .map(String::as_str);
        coordinator::connect(&self.pods, &self.name, address).await
    }

    /// The coordinator's view, or `None` when it cannot be asked now.
    async fn coordinator_view(&self) -> Option<JobView> {
        let mut client = self.connect().await.ok()?;
        let view = coordinator::status(&mut client).await.ok()?;
        *self.restarts.lock().expect("restarts lock") = Some(u64::from(view.restarts));
        Some(view)
    }

    fn note_checkpoint(&self, status: &mut StreamJobStatus, v: &JobView, d: &Deployed) {
        let Some(c) = &self.job.spec.checkpoint else { return };
        if v.last_checkpoint == 0 {
            return;
        }
        let path = format!(
            "{}/{}/chk-{}",
            resources::checkpoint_storage(&c.storage, d.state_epoch).trim_end_matches('/'),
            v.job,
            v.last_checkpoint
        );
        if status.last_checkpoint.as_ref().map(|s| &s.path) != Some(&path) {
            status.last_checkpoint = Some(SnapshotRef { path, time: now_text() });
        }
    }

    /// Degraded `ChangeFailed` with `why`, the phase, written.
    async fn show_failed(&self, status: &mut StreamJobStatus, p: i32, why: &str) -> Result<(), Error> {
        conditions::set(
            status,
            ConditionType::Degraded,
            true,
            Reason::ChangeFailed,
            why,
            Timestamp::now(),
        );
        self.show(status, p, None, false);
        self.write_status(status).await.map(drop)
    }

    /// Phase, Ready/Progressing and the scale subresource's replicas.
    fn show(&self, status: &mut StreamJobStatus, p: i32, view: Option<&JobView>, pods_ready: bool) {
        let phase = conditions::phase(
            p,
            view.map(|v| v.phase),
            pods_ready,
            status.upgrade.as_ref().map(|u| u.reason),
            status.rolled_back.is_some(),
        );
        conditions::from_phase(status, phase, Timestamp::now());
        status.replicas = Some(p);
    }

    /// ConfigMap, Service and StatefulSet of `job` (the StreamJob, or its last stable spec) by
    /// server-side apply.
    async fn apply_all(&self, job: &StreamJob, d: &Deployed) -> Result<(), Error> {
        let ns = self.job.namespace().unwrap_or_else(|| "default".into());
        let client = &self.ctx.client;
        let pp = PatchParams::apply(MANAGER).force();
        let configs = Api::<ConfigMap>::namespaced(client.clone(), &ns);
        let services = Api::<Service>::namespaced(client.clone(), &ns);
        let sets = Api::<StatefulSet>::namespaced(client.clone(), &ns);
        // Force-apply would take over a same-named object someone else made (and garbage
        // collection would later delete it with the job): refuse instead.
        self.owned_or_absent(&configs, "ConfigMap").await?;
        self.owned_or_absent(&services, "Service").await?;
        self.owned_or_absent(&sets, "StatefulSet").await?;
        let cm = resources::config_map(job)?;
        configs
            .patch(&self.name, &pp, &Patch::Apply(typed(cm, "v1", "ConfigMap")))
            .await?;
        let svc = resources::service(job)?;
        services
            .patch(&self.name, &pp, &Patch::Apply(typed(svc, "v1", "Service")))
            .await?;
        let ui = resources::ui_service(job)?;
        let ui_name = resources::ui_name(job);
        self.owned_or_absent_named(&services, &ui_name, "Service").await?;
        services
            .patch(&ui_name, &pp, &Patch::Apply(typed(ui, "v1", "Service")))
            .await?;
        if let Some(settings) = &self.ctx.dashboard_ingress {
            let ingresses = Api::<Ingress>::namespaced(client.clone(), &ns);
            self.owned_or_absent_named(&ingresses, &ui_name, "Ingress").await?;
            let ing = resources::ingress(job, settings)?;
            ingresses
                .patch(
                    &ui_name,
                    &pp,
                    &Patch::Apply(typed(ing, "networking.k8s.io/v1", "Ingress")),
                )
                .await?;
        }
        let sts = resources::stateful_set(job, d)?;
        sets.patch(&self.name, &pp, &Patch::Apply(typed(sts, "apps/v1", "StatefulSet")))
            .await?;
        Ok(())
    }

    /// `Ok` when the job's object of `kind` does not exist or is controlled by this StreamJob.
    async fn owned_or_absent<K>(&self, api: &Api<K>, kind: &str) -> Result<(), Error>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        self.owned_or_absent_named(api, &self.name, kind).await
    }

    /// [`Self::owned_or_absent`] for the job's object `name`.
    async fn owned_or_absent_named<K>(&self, api: &Api<K>, name: &str, kind: &str) -> Result<(), Error>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let Some(found) = api.get_metadata_opt(name).await? else {
            return Ok(());
        };
        let uid = self.job.uid();
        let ours = found
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref());
        if ours {
            return Ok(());
        }
        let owner = found
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
            .map(|o| format!("{} {}", o.kind, o.name))
            .unwrap_or_else(|| "nothing (made by hand?)".into());
        Err(Error::Conflict(format!(
            "{kind} {}/{name} exists and is controlled by {owner}, not by this StreamJob: rename the job or remove the {kind}",
            self.job.namespace().unwrap_or_default(),
        )))
    }

    /// The job's pods.
    async fn job_pods(&self) -> Result<Vec<Pod>, Error> {
        let selector = resources::selector(self.job);
        Ok(self.pods.list(&ListParams::default().labels(&selector)).await?.items)
    }

    /// Deletes `pods` (those not being deleted already); returns how many.
    async fn delete_pods<'p>(&self, pods: impl Iterator<Item = &'p Pod>) -> Result<usize, Error> {
        let mut n = 0;
        for p in pods.filter(|p| p.metadata.deletion_timestamp.is_none()) {
            match self.pods.delete(&p.name_any(), &DeleteParams::default()).await {
                Ok(_) => n += 1,
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(n)
    }

    /// Writes the status; returns the StreamJob's resourceVersion after the write.
    async fn write_status(&self, status: &StreamJobStatus) -> Result<Option<String>, Error> {
        let patch = serde_json::json!({
            "apiVersion": "weir.dev/v1alpha1",
            "kind": "StreamJob",
            "status": status,
        });
        let written = self
            .jobs
            .patch_status(&self.name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch))
            .await?;
        Ok(written.resource_version())
    }

    async fn event(&self, type_: EventType, reason: &str, action: &str, note: String) {
        tracing::info!(job = %self.name, reason, "{note}");
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.ctx.recorder.publish(&event, &self.job.object_ref(&())).await {
            tracing::warn!(job = %self.name, error = %e, "could not publish an event");
        }
    }
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// An object with its `apiVersion` and `kind` set, as server-side apply wants.
fn typed<T: Serialize>(object: T, api_version: &str, kind: &str) -> serde_json::Value {
    let mut v = serde_json::to_value(object).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), api_version.into());
        m.insert("kind".into(), kind.into());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_five_minutes() {
        let waits: Vec<u64> = (1..=11).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }
}
