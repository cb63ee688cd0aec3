//! `StreamJob` (`weir.dev/v1alpha1`): a Weir job as a Kubernetes resource.
//!
//! The schema carries what the API server can check at admission — CEL rules for
//! `parallelism <= maxParallelism`, `maxParallelism` immutable, exactly one job source — so a bad
//! manifest is refused by `kubectl apply` with the field named. The scale subresource maps
//! `kubectl scale streamjob/x --replicas=N` (and an HPA) to `spec.parallelism`.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// The desired state of a Weir job.
// kube's `printcolumn(...)` entries repeat the same keys by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "weir.dev",
    version = "v1alpha1",
    kind = "StreamJob",
    namespaced,
    status = "StreamJobStatus",
    shortname = "sj",
    derive = "PartialEq",
    scale(
        spec_replicas_path = ".spec.parallelism",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Parallelism", type_ = "integer", json_path = ".spec.parallelism"),
    printcolumn(
        name = "Last checkpoint",
        type_ = "string",
        json_path = ".status.lastCheckpoint.path"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    cel
)]
#[x_kube(
    cel,
    validation = Rule::new("self.parallelism <= self.maxParallelism").message("parallelism must not exceed maxParallelism")
)]
#[serde(rename_all = "camelCase")]
pub struct StreamJobSpec {
    /// The `weir-worker` image.
    pub image: String,
    /// Subtasks per operator (and worker pods).
    #[x_kube(validation = Rule::new("self >= 1").message("parallelism must be at least 1"))]
    pub parallelism: i32,
    /// Key groups: the most parallelism the job's state can ever be rescaled to. Fixed for the
    /// life of the job's state.
    #[serde(default = "default_max_parallelism")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("maxParallelism is immutable"))]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 32768").message("maxParallelism must be in 1..=32768"))]
    pub max_parallelism: i32,
    /// What to run.
    pub job: JobSource,
    /// Checkpointing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointSpec>,
    /// How a changed job is upgraded.
    #[serde(default)]
    pub upgrade_mode: UpgradeMode,
    /// Deadlines and rollback of changes (rescale, upgrade, suspend, resume).
    #[serde(default)]
    pub upgrade: UpgradePolicy,
    /// When a running job counts as unhealthy and is restarted (Flink operator's cluster health
    /// check).
    #[serde(default)]
    pub health_check: HealthCheck,
    /// `running`, or `suspended` (stopped with a savepoint, scaled to zero).
    #[serde(default)]
    pub state: JobState,
    /// Change to restart the job from its last checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_nonce: Option<i64>,
    /// Change to take a savepoint (recorded in the status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint_trigger_nonce: Option<i64>,
    /// Periodic savepoints, the savepoint history kept in the status and its disposal, and a
    /// savepoint when the StreamJob is deleted.
    #[serde(default)]
    pub savepoint: SavepointPolicy,
    /// Start the job from this savepoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_savepoint_path: Option<String>,
    /// Where keyed state lives (default: in memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_backend: Option<StateBackendSpec>,
    /// Resources of each worker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Overrides merged into the worker pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub pod_template: Option<serde_json::Value>,
    /// Parallelism follows the load: busy time per vertex, records per second and the
    /// sources' lag decide it (see the README's autoscaler section). The autoscaler sets
    /// `parallelism`; a `kubectl scale` while it is on holds until its next decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<weir_autoscale::AutoscalerSpec>,
}

fn default_max_parallelism() -> i32 {
    128
}

fn preserve_unknown_fields(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// The job: SQL, a pipeline (the YAML form of the DataStream API), a Python script, or a job
/// built into the image.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(
    cel,
    validation = Rule::new("[has(self.sql), has(self.pipeline), has(self.python), has(self.builtin)].filter(x, x).size() == 1").message("set exactly one of job.sql, job.pipeline, job.python, job.builtin"),
    validation = Rule::new("!has(self.builtin)").message("job.builtin: worker pods run job.sql, job.pipeline and job.python; built-in jobs are not available in the worker image yet")
)]
#[serde(rename_all = "camelCase")]
pub struct JobSource {
    /// Flink-style SQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// A pipeline file's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// A Python job script's text (the `weir` package's DataStream or Table API); its pods need
    /// an image with Python and the package: `weir-worker-python`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<String>,
    /// The name of a job compiled into the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<String>,
}

/// How long a change may take and what happens when it fails (the Flink Kubernetes operator's
/// `kubernetes.operator.deployment.readiness.timeout` and `…rollback.enabled`, on by default
/// here).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpgradePolicy {
    /// Seconds each step of a change may take (the savepoint, the new pods becoming Ready and
    /// the coordinator running the job) before the change counts as failed.
    #[serde(default = "default_timeout_seconds")]
    #[x_kube(validation = Rule::new("self >= 1").message("upgrade.timeoutSeconds must be at least 1"))]
    pub timeout_seconds: i64,
    /// A failed change (a deadline passed, workers crash-looping, the job failed) deploys the
    /// last stable spec again (`status.lastStableSpec`); the spec that failed is not retried
    /// until it changes.
    #[serde(default = "yes")]
    pub rollback: bool,
    /// Seconds a deployment must run (the coordinator reporting Running) before its spec is
    /// recorded as the last stable one.
    #[serde(default = "default_stable_seconds")]
    #[x_kube(validation = Rule::new("self >= 0").message("upgrade.stableSeconds must not be negative"))]
    pub stable_seconds: i64,
    /// In `savepoint` mode, a job that cannot take a savepoint before the deadline (crash-looping,
    /// its coordinator unreachable) is changed from its newest checkpoint instead, as in
    /// `last-state` mode. Off by default: the change fails and the job keeps running as it is.
    #[serde(default)]
    pub fallback_to_last_state: bool,
}

impl Default for UpgradePolicy {
    fn default() -> Self {
        UpgradePolicy {
            timeout_seconds: default_timeout_seconds(),
            rollback: true,
            stable_seconds: default_stable_seconds(),
            fallback_to_last_state: false,
        }
    }
}

fn default_timeout_seconds() -> i64 {
    300
}

fn default_stable_seconds() -> i64 {
    30
}

fn yes() -> bool {
    true
}

/// The savepoints the operator takes on its own and how long it keeps them (the Flink
/// Kubernetes operator's `kubernetes.operator.periodic.savepoint.interval` and
/// `…savepoint.history.max.count` / `…max.age`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SavepointPolicy {
    /// Seconds between periodic savepoints while the job runs (0: none). Counted from the
    /// newest savepoint of any kind, or from when the deployment started running.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0").message("savepoint.intervalSeconds must not be negative"))]
    pub interval_seconds: i64,
    /// Savepoints kept in `status.savepoints`; older ones are disposed (their files deleted
    /// first, then the entry). The newest is never disposed.
    #[serde(default = "default_history_max_count")]
    #[x_kube(validation = Rule::new("self >= 1").message("savepoint.historyMaxCount must be at least 1"))]
    pub history_max_count: i64,
    /// Savepoints older than this many seconds are disposed (0: no age limit).
    #[serde(default = "default_history_max_age_seconds")]
    #[x_kube(validation = Rule::new("self >= 0").message("savepoint.historyMaxAgeSeconds must not be negative"))]
    pub history_max_age_seconds: i64,
    /// Stop the job with a savepoint when the StreamJob is deleted: a finalizer holds the
    /// deletion until the savepoint is taken (or `upgrade.timeoutSeconds` pass, or the job is not
    /// running). The savepoint is kept; its path is in the event `SavepointOnDelete`.
    #[serde(default)]
    pub on_delete: bool,
}

impl Default for SavepointPolicy {
    fn default() -> Self {
        SavepointPolicy {
            interval_seconds: 0,
            history_max_count: default_history_max_count(),
            history_max_age_seconds: default_history_max_age_seconds(),
            on_delete: false,
        }
    }
}

fn default_history_max_count() -> i64 {
    10
}

fn default_history_max_age_seconds() -> i64 {
    7 * 24 * 3600
}

/// Why a savepoint was taken.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SavepointCause {
    /// `savepointTriggerNonce`.
    #[default]
    Manual,
    /// `savepoint.intervalSeconds`.
    Periodic,
    /// A rescale, upgrade or suspend stopped the job with it.
    Change,
    /// The StreamJob was deleted (`savepoint.onDelete`).
    Delete,
}

/// A savepoint in the history.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SavepointEntry {
    /// Where it is.
    pub path: String,
    /// When it completed (RFC 3339).
    pub time: String,
    /// Why it was taken.
    pub cause: SavepointCause,
}

/// A periodic savepoint triggered and not yet complete.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PendingSavepoint {
    /// The coordinator's trigger id.
    pub trigger_id: String,
    /// When it was triggered (RFC 3339).
    pub started_at: String,
}

/// When a running job counts as unhealthy: it restarts too often, or its checkpoints stopped
/// completing. An unhealthy job is restarted (every pod replaced; it resumes from its newest
/// checkpoint), at most once per `windowSeconds`, with a Degraded condition and an event.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// On by default.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Restarts (after failures, by the job's coordinator) within `windowSeconds` that make the
    /// job unhealthy.
    #[serde(default = "default_restarts_threshold")]
    #[x_kube(validation = Rule::new("self >= 1").message("healthCheck.restartsThreshold must be at least 1"))]
    pub restarts_threshold: i64,
    /// The window restarts are counted over, and the least time between two health restarts.
    #[serde(default = "default_window_seconds")]
    #[x_kube(validation = Rule::new("self >= 1").message("healthCheck.windowSeconds must be at least 1"))]
    pub window_seconds: i64,
    /// Seconds without a completed checkpoint, while the job runs with checkpointing, that make
    /// it unhealthy (0: not checked).
    #[serde(default = "default_checkpoint_progress_seconds")]
    #[x_kube(validation = Rule::new("self >= 0").message("healthCheck.checkpointProgressSeconds must not be negative"))]
    pub checkpoint_progress_seconds: i64,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            enabled: true,
            restarts_threshold: default_restarts_threshold(),
            window_seconds: default_window_seconds(),
            checkpoint_progress_seconds: default_checkpoint_progress_seconds(),
        }
    }
}

fn default_restarts_threshold() -> i64 {
    64
}

fn default_window_seconds() -> i64 {
    120
}

fn default_checkpoint_progress_seconds() -> i64 {
    600
}

/// Checkpoint settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointSpec {
    /// Time between checkpoints, ms.
    #[x_kube(validation = Rule::new("self >= 10").message("checkpoint.intervalMs must be at least 10"))]
    pub interval_ms: i64,
    /// Where snapshots go (`s3://bucket/prefix`).
    pub storage: String,
    /// A Secret with `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and optionally
    /// `AWS_ENDPOINT_URL`, `AWS_REGION`) for the storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}

/// Where keyed state lives: in memory, or on each worker's local disk for state larger than
/// memory.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StateBackendSpec {
    /// `memory` (default, fastest) or `disk`.
    #[serde(rename = "type", default)]
    pub kind: StateBackendKind,
    /// With `disk`: memory the backend may use per worker (block cache, write buffers, cached
    /// entries), e.g. `512Mi` (default 512Mi). Leave room for it in `resources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    /// With `disk`: size limit of each worker's state volume (an `emptyDir`), e.g. `20Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_size: Option<Quantity>,
    /// With `disk`: keep a copy of each checkpoint's state files on the state volume, so a
    /// worker container that restarts reads them from there instead of checkpoint storage
    /// (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_recovery: Option<bool>,
}

/// A state backend.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StateBackendKind {
    /// Hash maps in memory.
    #[default]
    Memory,
    /// An LSM tree per operator subtask on the worker's local volume.
    Disk,
}

/// How a changed job is upgraded (Flink Kubernetes operator's `upgradeMode`).
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UpgradeMode {
    /// Start the new job without state.
    Stateless,
    /// Stop with a savepoint, start the new job from it.
    #[default]
    Savepoint,
    /// Start the new job from the last checkpoint.
    LastState,
}

/// Whether the job should run.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Running.
    #[default]
    Running,
    /// Stopped with a savepoint, scaled to zero.
    Suspended,
}

/// Why a change of what runs was started.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum UpgradeReason {
    /// `parallelism` changed.
    #[default]
    Rescale,
    /// The job, image, resources or pod template changed.
    Upgrade,
    /// `state: suspended`.
    Suspend,
    /// `state: running` after a suspend.
    Resume,
    /// A failed change: the last stable spec deployed again.
    Rollback,
}

impl UpgradeReason {
    /// The name in the status and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            UpgradeReason::Rescale => "rescale",
            UpgradeReason::Upgrade => "upgrade",
            UpgradeReason::Suspend => "suspend",
            UpgradeReason::Resume => "resume",
            UpgradeReason::Rollback => "rollback",
        }
    }
}

impl std::fmt::Display for UpgradeReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The step a change is at. Each is recorded before it begins and is safe to repeat.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum UpgradeStep {
    /// Stopping the job with a savepoint.
    #[default]
    Savepoint,
    /// Updating the StatefulSet.
    Deploy,
    /// Waiting for the job to run again.
    Restore,
}

impl std::fmt::Display for UpgradeStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UpgradeStep::Savepoint => "savepoint",
            UpgradeStep::Deploy => "deploy",
            UpgradeStep::Restore => "restore",
        })
    }
}

/// The phase a StreamJob shows (`kubectl get streamjobs`).
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Phase {
    /// Pods are starting, or the coordinator cannot be reached yet.
    #[default]
    Deploying,
    /// The job runs on every worker.
    Running,
    /// A failure stopped a run; it restarts from the newest checkpoint.
    Restarting,
    /// A rescale is in progress.
    Rescaling,
    /// An upgrade is in progress.
    Upgrading,
    /// Stopping with a savepoint to scale to zero.
    Suspending,
    /// Scaled to zero.
    Suspended,
    /// Starting again after a suspend.
    Resuming,
    /// The job ended (bounded input).
    Finished,
    /// The job was stopped with a savepoint.
    Stopped,
    /// The job failed for good.
    Failed,
    /// Every worker pod is Ready but the coordinator does not answer.
    Unreachable,
    /// A failed change was rolled back: the last stable spec runs, not the spec asked for.
    RolledBack,
}

impl Phase {
    /// The name in the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Deploying => "Deploying",
            Phase::Running => "Running",
            Phase::Restarting => "Restarting",
            Phase::Rescaling => "Rescaling",
            Phase::Upgrading => "Upgrading",
            Phase::Suspending => "Suspending",
            Phase::Suspended => "Suspended",
            Phase::Resuming => "Resuming",
            Phase::Finished => "Finished",
            Phase::Stopped => "Stopped",
            Phase::Failed => "Failed",
            Phase::Unreachable => "Unreachable",
            Phase::RolledBack => "RolledBack",
        }
    }
}

/// A snapshot the operator knows of.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRef {
    /// Where it is.
    pub path: String,
    /// When it completed (RFC 3339).
    pub time: String,
}

/// What the StatefulSet runs now (the operator compares it with the spec to decide what to do).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Deployed {
    /// Worker pods (0 while suspended).
    pub parallelism: i32,
    /// Hash of what needs a restart to change: job text, image, checkpointing, resources, pod
    /// template.
    pub job_hash: String,
    /// The savepoint the workers restore from when no checkpoint is newer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<String>,
    /// Bumped by every deployment; pods carry it as a label, so older pods are found and
    /// replaced.
    pub serial: i64,
    /// Stateless upgrades start the job in a fresh state namespace `<storage>/epoch-<n>`.
    #[serde(default)]
    pub state_epoch: i64,
}

/// A rescale, upgrade, suspend or resume in progress (kept in the status, so an operator
/// restarted halfway picks it up where it was).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Upgrade {
    /// Why.
    pub reason: UpgradeReason,
    /// Where it is.
    pub step: UpgradeStep,
    /// Worker pods before.
    pub from_parallelism: i32,
    /// Worker pods after.
    pub to_parallelism: i32,
    /// When it began (RFC 3339).
    pub started_at: String,
    /// The savepoint taken on the way, once taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint: Option<String>,
    /// When its current step began (RFC 3339; the step's deadline counts from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<String>,
    /// Why it failed, once it did (kept while no rollback is possible, until a newer spec
    /// supersedes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// A spec that ran healthy, kept so a failed change can go back to it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StableSpec {
    /// The spec as it was.
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub spec: serde_json::Value,
    /// Its job hash.
    pub job_hash: String,
    /// Its worker pods.
    pub parallelism: i32,
    /// Its state namespace.
    #[serde(default)]
    pub state_epoch: i64,
    /// When it was recorded (RFC 3339).
    pub time: String,
}

/// The change that failed and was rolled back: not retried until the spec changes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolledBack {
    /// The failed spec's job hash.
    pub job_hash: String,
    /// The failed spec's worker pods.
    pub parallelism: i32,
    /// Why it failed.
    pub reason: String,
    /// When (RFC 3339).
    pub time: String,
}

/// Since when a deployment's job runs (for `upgrade.stableSeconds`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Healthy {
    /// The deployment's serial.
    pub serial: i64,
    /// When it was first seen Running (RFC 3339).
    pub since: String,
}

/// How the last rescale, upgrade, suspend or resume went.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeResult {
    /// Why.
    pub reason: UpgradeReason,
    /// Worker pods before.
    pub from_parallelism: i32,
    /// Worker pods after.
    pub to_parallelism: i32,
    /// From the spec change being seen to the job running again, ms.
    pub duration_ms: i64,
    /// When it ended (RFC 3339).
    pub finished_at: String,
}

/// What the operator observed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StreamJobStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where the job is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Ready, Progressing, Degraded, one per type.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Parallelism the running job has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_parallelism: Option<i32>,
    /// The newest completed checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checkpoint: Option<SnapshotRef>,
    /// The newest savepoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_savepoint: Option<SnapshotRef>,
    /// Worker pods (scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Label selector of the worker pods (scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The job's REST API inside the cluster (worker pod 0; reach it from a laptop with
    /// `kubectl port-forward pod/<job>-0 8081`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard: Option<String>,
    /// What the StatefulSet runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed: Option<Deployed>,
    /// A change in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<Upgrade>,
    /// The last change completed, and how long it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_upgrade: Option<UpgradeResult>,
    /// The `savepointTriggerNonce` handled last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint_trigger_nonce: Option<i64>,
    /// The `restartNonce` handled last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_nonce: Option<i64>,
    /// The last spec that ran healthy for `upgrade.stableSeconds`: what a failed change rolls
    /// back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_stable_spec: Option<StableSpec>,
    /// The change that failed and was rolled back, while the spec still asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<RolledBack>,
    /// Since when the current deployment's job runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<Healthy>,
    /// What the health check has seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthSeen>,
    /// The savepoints kept (oldest first; at most `savepoint.historyMaxCount`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub savepoints: Vec<SavepointEntry>,
    /// A periodic savepoint in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_savepoint: Option<PendingSavepoint>,
    /// The checkpoints of every state namespace below this epoch (left behind by stateless
    /// upgrades) were disposed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub disposed_below_epoch: i64,
    /// What the autoscaler decided, with the figures behind it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<AutoscalerStatus>,
}

/// `status.autoscaler`.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerStatus {
    /// The newest decision and the metrics it used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<weir_autoscale::Decision>,
    /// The parallelism it recommends now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_parallelism: Option<u32>,
    /// Its decisions to rescale, oldest first (at most [`AUTOSCALER_HISTORY`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<AutoscalerChange>,
}

/// How many rescale decisions `status.autoscaler.history` keeps.
pub const AUTOSCALER_HISTORY: usize = 10;

/// One rescale the autoscaler decided.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerChange {
    /// When (RFC 3339).
    pub time: String,
    /// From this parallelism.
    pub from: u32,
    /// To this one.
    pub to: u32,
    /// Why.
    pub reason: String,
    /// Decided only (`dryRun`): the parallelism was left alone.
    #[serde(default)]
    pub dry_run: bool,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// What the health check has seen of a running job.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HealthSeen {
    /// The coordinator's restart count over the window (oldest first).
    #[serde(default)]
    pub restarts: Vec<RestartSample>,
    /// The newest checkpoint id seen, and since when (unix seconds).
    #[serde(default)]
    pub checkpoint: u64,
    /// When that checkpoint was first seen (unix seconds).
    #[serde(default)]
    pub checkpoint_since: i64,
    /// When the health check last restarted the job (unix seconds; 0: never).
    #[serde(default)]
    pub last_restart: i64,
    /// Why it did.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_reason: String,
}

/// A restart count the coordinator reported.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RestartSample {
    /// When (unix seconds).
    pub time: i64,
    /// Its restarts so far.
    pub restarts: u64,
}

/// The CRD as YAML (what `crdgen` prints and `crds/streamjob.yaml` holds).
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    serde_yaml::to_string(&StreamJob::crd()).expect("a CRD serializes")
}
