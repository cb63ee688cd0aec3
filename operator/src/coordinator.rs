//! The operator's line to a job's coordinator (worker ordinal 0): its gRPC `Coordinator`
//! service, reached at the pod's IP (read from the API server, so the operator needs neither
//! cluster DNS nor a Service of its own), or at the address a StreamJob's
//! [`ADDRESS_ANNOTATION`] names (an operator run outside the cluster reaches the coordinator
//! through `kubectl port-forward`).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tonic::transport::{Channel, Endpoint};
use weir_proto::rpc::{self, JobPhase, coordinator_client::CoordinatorClient};

use crate::resources::GRPC_PORT;

/// Why the coordinator could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// Pod 0 does not exist, or has no IP yet.
    #[error("the coordinator pod {0} has no IP yet")]
    NoPod(String),
    /// Reading pod 0 failed.
    #[error("reading the coordinator pod {pod}: {source}")]
    Kube {
        /// The pod.
        pod: String,
        /// What the API server said.
        source: kube::Error,
    },
    /// No connection.
    #[error("the coordinator at {address} is unreachable: {message}")]
    Unreachable {
        /// `ip:port`.
        address: String,
        /// The transport's error.
        message: String,
    },
    /// The coordinator answered with an error.
    #[error("the coordinator refused: {0}")]
    Refused(String),
}

/// The job's state as the coordinator reports it.
#[derive(Debug, Clone, Default)]
pub struct JobView {
    /// Where the job is.
    pub phase: JobPhase,
    /// The job's name (its checkpoints live under `<storage>/<job>/`).
    pub job: String,
    /// Newest completed checkpoint id (0: none yet).
    pub last_checkpoint: u64,
    /// The newest savepoint the coordinator took.
    pub last_savepoint: Option<String>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Workers attached / expected.
    pub workers_attached: u32,
    /// Workers the job has.
    pub workers: u32,
    /// Restarts of the current run after failures.
    pub restarts: u32,
    /// Every attached worker's subtasks' running totals (the autoscaler's input).
    pub subtasks: Vec<weir_autoscale::SubtaskTotals>,
}

/// The StreamJob annotation naming `host:port` of its coordinator, for an operator that cannot
/// reach pod IPs (run outside the cluster, through a port-forward).
pub const ADDRESS_ANNOTATION: &str = "weir.dev/coordinator-address";

/// Opens a client to the coordinator of `job` (pod `<job>-0`, or `address` when given).
pub async fn connect(
    pods: &Api<Pod>,
    job: &str,
    address: Option<&str>,
) -> Result<CoordinatorClient<Channel>, CoordinatorError> {
    let address = match address {
        Some(a) => a.to_string(),
        None => {
            let pod = format!("{job}-0");
            let found = pods.get_opt(&pod).await.map_err(|source| CoordinatorError::Kube {
                pod: pod.clone(),
                source,
            })?;
            let ip = found
                .and_then(|p| p.status)
                .and_then(|s| s.pod_ip)
                .ok_or_else(|| CoordinatorError::NoPod(pod.clone()))?;
            if ip.contains(':') {
                format!("[{ip}]:{GRPC_PORT}")
            } else {
                format!("{ip}:{GRPC_PORT}")
            }
        }
    };
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| CoordinatorError::Unreachable {
            address: address.clone(),
            message: e.to_string(),
        })?
        .connect_timeout(Duration::from_secs(2));
    let channel = endpoint.connect().await.map_err(|e| CoordinatorError::Unreachable {
        address: address.clone(),
        message: e.to_string(),
    })?;
    Ok(CoordinatorClient::new(channel))
}

/// The job's state.
pub async fn status(client: &mut CoordinatorClient<Channel>) -> Result<JobView, CoordinatorError> {
    let reply = tokio::time::timeout(Duration::from_secs(5), client.status(rpc::StatusRequest {}))
        .await
        .map_err(|_| CoordinatorError::Refused("no status reply within 5 s".into()))?
        .map_err(|s| CoordinatorError::Refused(s.message().to_string()))?
        .into_inner();
    let details: serde_json::Value = serde_json::from_slice(&reply.details_json).unwrap_or_default();
    let text = |k: &str| details.get(k).and_then(|v| v.as_str()).map(str::to_string);
    Ok(JobView {
        phase: reply.phase(),
        job: reply.job,
        last_checkpoint: reply.last_checkpoint,
        last_savepoint: text("last_savepoint"),
        last_error: text("last_error"),
        workers_attached: reply.workers_attached,
        workers: reply.workers,
        restarts: reply.restarts,
        subtasks: serde_json::from_slice(&reply.subtasks_json).unwrap_or_default(),
    })
}

/// Takes a savepoint (with `stop`, stops the job once it is complete) and returns its path;
/// gives up after `timeout`.
pub async fn savepoint(
    client: &mut CoordinatorClient<Channel>,
    stop: bool,
    timeout: Duration,
) -> Result<String, CoordinatorError> {
    let request = rpc::SavepointRequest {
        stop,
        ..Default::default()
    };
    let reply = tokio::time::timeout(timeout, client.savepoint(request))
        .await
        .map_err(|_| {
            CoordinatorError::Refused(format!("the savepoint did not complete within {} s", timeout.as_secs()))
        })?
        .map_err(|s| CoordinatorError::Refused(s.message().to_string()))?;
    Ok(reply.into_inner().path)
}

/// How a triggered savepoint goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Still being taken.
    Pending,
    /// Done, there.
    Completed(String),
    /// It failed (why).
    Failed(String),
    /// The coordinator does not know the trigger (it restarted): trigger again.
    Unknown,
    /// The coordinator predates triggers: take the savepoint with [`savepoint`].
    Unsupported,
}

/// Starts savepoint `id` (with `stop`, the job stops once it is complete) and returns at once;
/// triggering an id again takes no second savepoint. `Ok(false)`: this coordinator predates
/// triggers (take the savepoint with [`savepoint`]).
pub async fn trigger_savepoint(
    client: &mut CoordinatorClient<Channel>,
    id: &str,
    stop: bool,
) -> Result<bool, CoordinatorError> {
    let request = rpc::SavepointRequest {
        stop,
        trigger_id: id.to_string(),
    };
    match tokio::time::timeout(Duration::from_secs(10), client.trigger_savepoint(request)).await {
        Err(_) => Err(CoordinatorError::Refused("no trigger reply within 10 s".into())),
        Ok(Err(s)) if s.code() == tonic::Code::Unimplemented => Ok(false),
        Ok(Err(s)) => Err(CoordinatorError::Refused(s.message().to_string())),
        Ok(Ok(_)) => Ok(true),
    }
}

/// How savepoint `id` goes.
pub async fn savepoint_progress(
    client: &mut CoordinatorClient<Channel>,
    id: &str,
) -> Result<Progress, CoordinatorError> {
    let request = rpc::SavepointTrigger { id: id.to_string() };
    let reply = match tokio::time::timeout(Duration::from_secs(10), client.savepoint_status(request)).await {
        Err(_) => return Err(CoordinatorError::Refused("no savepoint status within 10 s".into())),
        Ok(Err(s)) if s.code() == tonic::Code::NotFound => return Ok(Progress::Unknown),
        Ok(Err(s)) if s.code() == tonic::Code::Unimplemented => return Ok(Progress::Unsupported),
        Ok(Err(s)) => return Err(CoordinatorError::Refused(s.message().to_string())),
        Ok(Ok(r)) => r.into_inner(),
    };
    use rpc::savepoint_state::Kind;
    Ok(match reply.kind() {
        Kind::Completed => Progress::Completed(reply.path),
        Kind::Failed => Progress::Failed(reply.error),
        Kind::Pending | Kind::Unspecified => Progress::Pending,
    })
}

/// Asks the coordinator to delete `savepoints` (whole) and the checkpoints of `checkpoint_dirs`
/// (job directories of older state namespaces); what it deleted, or `None` when this
/// coordinator predates disposal.
pub async fn dispose(
    client: &mut CoordinatorClient<Channel>,
    savepoints: &[String],
    checkpoint_dirs: &[String],
) -> Result<Option<Vec<String>>, CoordinatorError> {
    let request = rpc::DisposeRequest {
        savepoints: savepoints.to_vec(),
        checkpoint_dirs: checkpoint_dirs.to_vec(),
    };
    match tokio::time::timeout(Duration::from_secs(60), client.dispose_snapshots(request)).await {
        Err(_) => Err(CoordinatorError::Refused("no dispose reply within 60 s".into())),
        Ok(Err(s)) if s.code() == tonic::Code::Unimplemented => Ok(None),
        Ok(Err(s)) => Err(CoordinatorError::Refused(s.message().to_string())),
        Ok(Ok(r)) => Ok(Some(r.into_inner().disposed)),
    }
}
