//! The job master, on worker ordinal 0: workers attach to it, it deploys each run of the job
//! as a new generation, runs the checkpoint coordinator across the workers, watches
//! heartbeats, and restarts the job from the newest complete checkpoint when a worker fails or
//! goes silent.
//!
//! The job's life as the master sees it ([`Phase`]):
//! waiting for workers → deploying generation g → running → (finishing → finished) or
//! (restarting → waiting for workers → deploying g' > g …) or failed after the restart
//! strategy's attempts.
//!
//! Generations are claimed in the checkpoint storage with a create-only write, so even a
//! restarted master never reuses one; every call from a worker carries its generation and the
//! master refuses any but the current one, so a zombie of an older run cannot acknowledge a
//! checkpoint (its state is never referenced) or report progress.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use weir_proto::rpc::{self, command::Kind as Cmd, task_report::Kind as ReportKind};

use super::Heartbeats;
use crate::checkpoint::coordinator::{Ack, CheckpointChannels, CheckpointCoordinator};
use crate::checkpoint::metadata::SubtaskSnapshot;
use crate::checkpoint::restore::Restore;
use crate::checkpoint::{CheckpointStore, SnapshotDir};
use crate::contract::error::{Result, WeirError};
use crate::contract::message::Barrier;
use crate::graph::{JobConfig, LogicalGraph, RestoreFrom};
use crate::runtime::control::JobControl;
use crate::runtime::metrics::{CheckpointMetrics, NodeStats};
use crate::runtime::process_usage::ProcessUsage;

/// Where the job is: the phase the gRPC status reports (one enum for both sides).
pub use weir_proto::rpc::JobPhase as Phase;

type CommandSender = mpsc::UnboundedSender<std::result::Result<rpc::Command, Status>>;

struct Attached {
    commands: CommandSender,
    last_seen: Instant,
    metrics: Vec<NodeStats>,
    /// Its subtasks' figures, from its last heartbeat.
    subtasks: Vec<crate::runtime::metrics::SubtaskStats>,
    exchange: (u64, u64),
    /// State bytes its restores read locally and from storage.
    restored: (u64, u64),
    /// Its process's memory and CPU time, from its last heartbeat.
    usage: Option<ProcessUsage>,
    address: String,
}

/// What the gRPC handlers tell the control loop.
#[derive(Debug)]
enum Event {
    Attached,
    Detached { reason: String },
    Report(rpc::TaskReport),
}

struct State {
    phase: Phase,
    generation: u64,
    /// Whether the current generation runs (false while restarting: its calls are refused).
    live: bool,
    workers: Vec<Option<Attached>>,
    restarts: u32,
    last_checkpoint: u64,
    /// The newest savepoint taken, and whether it stopped the job.
    last_savepoint: Option<(String, bool)>,
    acks: Option<mpsc::UnboundedSender<Ack>>,
    /// Triggered savepoints by id, newest last (the last [`TRIGGERS_KEPT`]).
    triggers: std::collections::VecDeque<(String, Triggered)>,
    /// Triggers handed out (ids are `<start time>-<n>`, so a restarted master's never repeat).
    triggered: u64,
    /// The snapshot the current run restored from, and its checkpoint id: kept from disposal
    /// until a newer checkpoint completes.
    restored: Option<(String, u64)>,
}

/// How many triggered savepoints' outcomes a master keeps for polling.
const TRIGGERS_KEPT: usize = 32;

/// A triggered savepoint's state.
#[derive(Debug, Clone)]
enum Triggered {
    Pending,
    Completed(String),
    Failed(String),
}

struct Shared {
    job: String,
    /// The deployment this master belongs to (empty: any).
    deployment: String,
    heartbeats: Heartbeats,
    state: Mutex<State>,
    events: mpsc::UnboundedSender<Event>,
    control: JobControl,
    checkpoints: Arc<CheckpointMetrics>,
    /// The runs' failures, newest last (the status's `last_error` is the newest).
    exceptions: crate::runtime::metrics::Exceptions,
    /// The job's graph and settings, for the REST API's plan.
    graph: LogicalGraph,
    config: JobConfig,
    /// When this master started, ms since the epoch.
    started_ms: i64,
    /// The job's checkpoint store (none without checkpointing): disposals are checked against it.
    store: Option<CheckpointStore>,
}

/// The master's gRPC service (and a handle for status and control).
#[derive(Clone)]
pub struct JobMaster {
    shared: Arc<Shared>,
}

/// The master's control loop, run once per job by [`JobMaster::new`]'s caller.
pub struct JobMasterLoop {
    shared: Arc<Shared>,
    events: mpsc::UnboundedReceiver<Event>,
    /// Reports of the running generation that came while the loop waited for others (a fast
    /// job's `Finished` before every worker's `Deployed`): handled before new events.
    backlog: std::collections::VecDeque<Event>,
    graph: LogicalGraph,
    config: JobConfig,
}

/// A snapshot of the job for `weir status` and the REST API (defined with the API).
pub use crate::rest::status::StatusView;

/// Takes a savepoint through the job's control (with `stop`, stops the job once it is
/// complete) and records it as the master's last; a job that ended takes none.
async fn take_savepoint(shared: &Shared, stop: bool) -> std::result::Result<String, Status> {
    let control = shared.control.clone();
    let phase = shared.state.lock().expect("master lock").phase;
    if matches!(phase, Phase::Stopped | Phase::Finished | Phase::Failed) {
        // No run will take it: answer now rather than queue it for ever.
        return match control.inbox().stopped_with() {
            Some(path) if stop => Ok(path),
            _ => Err(Status::failed_precondition(format!(
                "the job is {}; no savepoint can be taken",
                phase.name()
            ))),
        };
    }
    let result = if stop {
        control.stop_with_savepoint().await
    } else {
        control.savepoint().await
    };
    match result {
        Ok(path) => {
            shared.state.lock().expect("master lock").last_savepoint = Some((path.clone(), stop));
            Ok(path)
        }
        Err(e) => Err(Status::failed_precondition(e.to_string())),
    }
}

/// When this process started, ms since the epoch (a prefix that keeps trigger ids unique
/// across master restarts).
fn started_ms() -> u128 {
    static START: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    *START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    })
}

impl JobMaster {
    /// A master for `workers` workers of this job; run the returned loop to drive it.
    /// Workers of another `deployment` (when both name one) are refused.
    pub fn new(
        graph: LogicalGraph,
        config: JobConfig,
        workers: usize,
        heartbeats: Heartbeats,
        deployment: String,
    ) -> (JobMaster, JobMasterLoop) {
        let (events, events_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            job: config.name.clone(),
            deployment,
            heartbeats,
            state: Mutex::new(State {
                phase: Phase::WaitingForWorkers,
                generation: 0,
                live: false,
                workers: (0..workers).map(|_| None).collect(),
                restarts: 0,
                last_checkpoint: 0,
                last_savepoint: None,
                acks: None,
                triggers: Default::default(),
                triggered: 0,
                restored: None,
            }),
            events,
            control: JobControl::default(),
            checkpoints: Arc::default(),
            exceptions: Default::default(),
            graph: graph.clone(),
            config: config.clone(),
            started_ms: crate::contract::clock::wall_ms(),
            store: config
                .checkpoint
                .as_ref()
                .and_then(|c| CheckpointStore::open(&c.storage, &config.name).ok()),
        });
        (
            JobMaster { shared: shared.clone() },
            JobMasterLoop {
                shared,
                events: events_rx,
                backlog: Default::default(),
                graph,
                config,
            },
        )
    }

    /// The job's status now.
    pub fn status(&self) -> StatusView {
        use std::sync::atomic::Ordering::Relaxed;
        let s = self.shared.state.lock().expect("master lock");
        let mut nodes: Vec<NodeStats> = Vec::new();
        for w in s.workers.iter().flatten() {
            for n in &w.metrics {
                match nodes.iter_mut().find(|m| m.name == n.name) {
                    Some(m) => {
                        m.records_in += n.records_in;
                        m.records_out += n.records_out;
                        m.dead_letters += n.dead_letters;
                        m.late_records += n.late_records;
                    }
                    None => nodes.push(n.clone()),
                }
            }
        }
        let c = &self.shared.checkpoints;
        StatusView {
            job: self.shared.job.clone(),
            state: s.phase.name().into(),
            generation: s.generation,
            workers: s.workers.len(),
            workers_attached: s.workers.iter().filter(|w| w.is_some()).count(),
            restarts: s.restarts,
            last_checkpoint: s.last_checkpoint,
            checkpoints_completed: c.completed.load(Relaxed),
            checkpoints_failed: c.failed.load(Relaxed),
            checkpoint_last_duration_ms: c.last_duration_ms.load(Relaxed),
            checkpoint_last_bytes: c.last_bytes.load(Relaxed),
            last_error: self.shared.exceptions.last_message(),
            last_savepoint: s.last_savepoint.as_ref().map(|(p, _)| p.clone()),
            exchange_bytes_out: s.workers.iter().flatten().map(|w| w.exchange.0).sum(),
            exchange_credit_waits: s.workers.iter().flatten().map(|w| w.exchange.1).sum(),
            restore_local_bytes: s.workers.iter().flatten().map(|w| w.restored.0).sum(),
            restore_remote_bytes: s.workers.iter().flatten().map(|w| w.restored.1).sum(),
            nodes,
        }
    }

    /// Every attached worker's subtasks' figures (from their last heartbeats).
    fn subtasks(&self) -> Vec<crate::runtime::metrics::SubtaskStats> {
        let s = self.shared.state.lock().expect("master lock");
        s.workers
            .iter()
            .flatten()
            .flat_map(|w| w.subtasks.iter().cloned())
            .collect()
    }

    /// The workers as the REST API lists them.
    fn workers_view(&self) -> Vec<crate::rest::WorkerSnapshot> {
        let s = self.shared.state.lock().expect("master lock");
        s.workers
            .iter()
            .enumerate()
            .map(|(ordinal, w)| crate::rest::WorkerSnapshot {
                ordinal,
                address: w.as_ref().map(|w| w.address.clone()),
                last_seen_ago_ms: w.as_ref().map(|w| w.last_seen.elapsed().as_millis() as u64),
                nodes: w.as_ref().map(|w| w.metrics.clone()).unwrap_or_default(),
                subtasks: w.as_ref().map(|w| w.subtasks.clone()).unwrap_or_default(),
                exchange_bytes_out: w.as_ref().map_or(0, |w| w.exchange.0),
                usage: w.as_ref().and_then(|w| w.usage),
            })
            .collect()
    }

    /// Refuses calls from any generation but the running one (`stopping`: also from the one
    /// being stopped, for its workers' confirmations).
    fn check_generation(&self, generation: u64, stopping: bool) -> std::result::Result<(), Status> {
        let s = self.shared.state.lock().expect("master lock");
        let current = s.generation;
        if generation != current || !(s.live || stopping) {
            return Err(Status::failed_precondition(format!(
                "generation {generation} is fenced: the job runs generation {current}"
            )));
        }
        Ok(())
    }
}

/// The next event: the backlog's first, else the next to arrive.
async fn next_event(
    backlog: &mut std::collections::VecDeque<Event>,
    events: &mut mpsc::UnboundedReceiver<Event>,
) -> Option<Event> {
    match backlog.pop_front() {
        Some(e) => Some(e),
        None => events.recv().await,
    }
}

fn worker_index(ordinal: u32, workers: usize) -> std::result::Result<usize, Status> {
    let i = ordinal as usize;
    if i >= workers {
        return Err(Status::invalid_argument(format!(
            "ordinal {ordinal} is out of range: the job has {workers} workers (0..{})",
            workers - 1
        )));
    }
    Ok(i)
}

#[tonic::async_trait]
impl rpc::coordinator_server::Coordinator for JobMaster {
    type AttachStream = Pin<Box<dyn futures::Stream<Item = std::result::Result<rpc::Command, Status>> + Send>>;

    async fn attach(
        &self,
        request: Request<rpc::RegisterRequest>,
    ) -> std::result::Result<Response<Self::AttachStream>, Status> {
        let r = request.into_inner();
        if r.job != self.shared.job {
            return Err(Status::invalid_argument(format!(
                "this coordinator runs job '{}', not '{}'",
                self.shared.job, r.job
            )));
        }
        if !r.deployment.is_empty() && !self.shared.deployment.is_empty() && r.deployment != self.shared.deployment {
            let newer = matches!(
                (r.deployment.parse::<u64>(), self.shared.deployment.parse::<u64>()),
                (Ok(worker), Ok(coordinator)) if worker > coordinator
            );
            if newer {
                // A rolling change started this worker before the coordinator's pod was replaced:
                // the worker waits for its own deployment's coordinator instead of leaving the job.
                return Err(Status::unavailable(format!(
                    "worker {} belongs to deployment {}, newer than this coordinator's {}; it waits for its own",
                    r.ordinal, r.deployment, self.shared.deployment
                )));
            }
            return Err(Status::aborted(format!(
                "worker {} belongs to deployment {}; this coordinator runs deployment {}",
                r.ordinal, r.deployment, self.shared.deployment
            )));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut s = self.shared.state.lock().expect("master lock");
            let workers = s.workers.len();
            if r.workers as usize != workers {
                return Err(Status::invalid_argument(format!(
                    "worker {} was started for {} workers; the job has {workers}",
                    r.ordinal, r.workers
                )));
            }
            let i = worker_index(r.ordinal, workers)?;
            if let Some(previous) = &s.workers[i] {
                tracing::warn!(ordinal = i, "worker attached again; its previous attachment is gone");
                // If the previous process still lives (a zombie: a pod deleted by force whose
                // container still runs), it must stop instead of attaching back in turn.
                let _ = previous.commands.send(Err(Status::aborted(format!(
                    "superseded: another worker attached as ordinal {i}"
                ))));
                let _ = self.shared.events.send(Event::Detached {
                    reason: "it attached again (it restarted)".into(),
                });
            }
            s.workers[i] = Some(Attached {
                commands: tx,
                last_seen: Instant::now(),
                metrics: Vec::new(),
                subtasks: Vec::new(),
                exchange: (0, 0),
                restored: (0, 0),
                usage: None,
                address: r.address.clone(),
            });
            tracing::info!(ordinal = i, address = %r.address, "worker attached");
        }
        let _ = self.shared.events.send(Event::Attached);
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }

    async fn heartbeat(
        &self,
        request: Request<rpc::HeartbeatRequest>,
    ) -> std::result::Result<Response<rpc::HeartbeatReply>, Status> {
        let r = request.into_inner();
        let mut s = self.shared.state.lock().expect("master lock");
        let workers = s.workers.len();
        let i = worker_index(r.ordinal, workers)?;
        let generation = s.generation;
        match &mut s.workers[i] {
            Some(w) => {
                w.last_seen = Instant::now();
                w.exchange = (r.exchange_bytes_out, r.exchange_credit_waits);
                w.restored = (r.restore_local_bytes, r.restore_remote_bytes);
                w.usage = (r.usage_at_ms > 0).then_some(ProcessUsage {
                    rss_bytes: r.memory_bytes,
                    cpu_ms: r.cpu_ms,
                    at_ms: r.usage_at_ms,
                });
                if r.generation == generation
                    && let Ok(m) = serde_json::from_slice::<Vec<NodeStats>>(&r.metrics_json)
                {
                    w.metrics = m;
                    w.subtasks = serde_json::from_slice(&r.subtasks_json).unwrap_or_default();
                }
            }
            None => return Err(Status::not_found(format!("worker {i} is not attached; attach first"))),
        }
        Ok(Response::new(rpc::HeartbeatReply { generation }))
    }

    async fn acknowledge(
        &self,
        request: Request<rpc::CheckpointAck>,
    ) -> std::result::Result<Response<rpc::Empty>, Status> {
        let a = request.into_inner();
        self.check_generation(a.generation, false)?;
        let result = if !a.error.is_empty() {
            Err(a.error)
        } else if a.snapshot_json.is_empty() {
            Ok(None)
        } else {
            let snapshot: SubtaskSnapshot = serde_json::from_slice(&a.snapshot_json)
                .map_err(|e| Status::invalid_argument(format!("snapshot_json: {e}")))?;
            Ok(Some(snapshot))
        };
        let ack = Ack {
            checkpoint_id: a.checkpoint_id,
            uid: a.uid,
            subtask: a.subtask as usize,
            parallelism: a.parallelism as usize,
            result,
        };
        let s = self.shared.state.lock().expect("master lock");
        if let Some(acks) = &s.acks {
            let _ = acks.send(ack);
        }
        Ok(Response::new(rpc::Empty {}))
    }

    async fn report(&self, request: Request<rpc::TaskReport>) -> std::result::Result<Response<rpc::Empty>, Status> {
        let r = request.into_inner();
        self.check_generation(r.generation, r.kind() == ReportKind::Stopped)?;
        let _ = self.shared.events.send(Event::Report(r));
        Ok(Response::new(rpc::Empty {}))
    }

    async fn savepoint(
        &self,
        request: Request<rpc::SavepointRequest>,
    ) -> std::result::Result<Response<rpc::SavepointReply>, Status> {
        let path = take_savepoint(&self.shared, request.into_inner().stop).await?;
        Ok(Response::new(rpc::SavepointReply { path }))
    }

    async fn trigger_savepoint(
        &self,
        request: Request<rpc::SavepointRequest>,
    ) -> std::result::Result<Response<rpc::SavepointTrigger>, Status> {
        let request = request.into_inner();
        let stop = request.stop;
        let id = {
            let mut s = self.shared.state.lock().expect("master lock");
            if !request.trigger_id.is_empty() {
                let known = s.triggers.iter().position(|(k, _)| *k == request.trigger_id);
                match known.map(|i| &s.triggers[i].1) {
                    // Triggered already: the same savepoint, not a second one.
                    Some(Triggered::Pending | Triggered::Completed(_)) => {
                        return Ok(Response::new(rpc::SavepointTrigger { id: request.trigger_id }));
                    }
                    // It failed: this is a new try under the same id.
                    Some(Triggered::Failed(_)) => {
                        s.triggers.remove(known.expect("known"));
                    }
                    None => {}
                }
            }
            s.triggered += 1;
            let id = if request.trigger_id.is_empty() {
                format!("{}-{}", started_ms(), s.triggered)
            } else {
                request.trigger_id
            };
            s.triggers.push_back((id.clone(), Triggered::Pending));
            while s.triggers.len() > TRIGGERS_KEPT {
                s.triggers.pop_front();
            }
            id
        };
        let (shared, key) = (self.shared.clone(), id.clone());
        tokio::spawn(async move {
            let outcome = match take_savepoint(&shared, stop).await {
                Ok(path) => Triggered::Completed(path),
                Err(status) => Triggered::Failed(status.message().to_string()),
            };
            let mut s = shared.state.lock().expect("master lock");
            if let Some((_, t)) = s.triggers.iter_mut().find(|(k, _)| *k == key) {
                *t = outcome;
            }
        });
        Ok(Response::new(rpc::SavepointTrigger { id }))
    }

    async fn savepoint_status(
        &self,
        request: Request<rpc::SavepointTrigger>,
    ) -> std::result::Result<Response<rpc::SavepointState>, Status> {
        let id = request.into_inner().id;
        let s = self.shared.state.lock().expect("master lock");
        let (_, t) = s
            .triggers
            .iter()
            .find(|(k, _)| *k == id)
            .ok_or_else(|| Status::not_found(format!("no savepoint was triggered here as '{id}'")))?;
        use rpc::savepoint_state::Kind;
        let (kind, path, error) = match t {
            Triggered::Pending => (Kind::Pending, String::new(), String::new()),
            Triggered::Completed(p) => (Kind::Completed, p.clone(), String::new()),
            Triggered::Failed(e) => (Kind::Failed, String::new(), e.clone()),
        };
        Ok(Response::new(rpc::SavepointState {
            kind: kind as i32,
            path,
            error,
        }))
    }

    async fn dispose_snapshots(
        &self,
        request: Request<rpc::DisposeRequest>,
    ) -> std::result::Result<Response<rpc::DisposeReply>, Status> {
        use crate::checkpoint::dispose::{self, Disposal, Keep};
        let request = request.into_inner();
        let own = self
            .shared
            .store
            .as_ref()
            .ok_or_else(|| Status::failed_precondition("the job has no checkpoint storage"))?;
        let restored_from = {
            let s = self.shared.state.lock().expect("master lock");
            s.restored
                .as_ref()
                .filter(|(_, id)| s.last_checkpoint <= *id)
                .map(|(dir, _)| dir.clone())
        };
        let disposal = Disposal {
            savepoints: request.savepoints,
            checkpoint_dirs: request.checkpoint_dirs,
        };
        let keep = Keep {
            own,
            restored_from: restored_from.as_deref(),
        };
        match dispose::dispose(&disposal, &keep).await {
            Ok(disposed) => {
                tracing::info!(?disposed, "snapshots disposed");
                Ok(Response::new(rpc::DisposeReply { disposed }))
            }
            Err(e @ dispose::DisposeError::Refused { .. }) => Err(Status::failed_precondition(e.to_string())),
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }

    async fn cancel(&self, _: Request<rpc::CancelRequest>) -> std::result::Result<Response<rpc::Empty>, Status> {
        self.shared.control.cancel();
        Ok(Response::new(rpc::Empty {}))
    }

    async fn status(&self, _: Request<rpc::StatusRequest>) -> std::result::Result<Response<rpc::JobStatus>, Status> {
        let v = self.status();
        Ok(Response::new(rpc::JobStatus {
            job: v.job.clone(),
            phase: Phase::from_name(&v.state).unwrap_or(Phase::Unspecified) as i32,
            generation: v.generation,
            workers: v.workers as u32,
            workers_attached: v.workers_attached as u32,
            restarts: v.restarts,
            last_checkpoint: v.last_checkpoint,
            details_json: serde_json::to_vec(&v).unwrap_or_default(),
            subtasks_json: serde_json::to_vec(&self.subtasks()).unwrap_or_default(),
        }))
    }
}

/// How a run of the job ended.
enum RunEnd {
    /// Every task ended (drained: stopped on request rather than at the end of the input).
    Finished { drained: bool },
    /// Something failed; restart.
    Failed(String),
    /// The job itself is wrong (a worker said its failure is permanent): no restart helps.
    Fatal(String),
}

impl JobMasterLoop {
    fn set_phase(&self, phase: Phase) {
        let mut s = self.shared.state.lock().expect("master lock");
        if s.phase != phase {
            tracing::info!(job = %self.shared.job, phase = phase.name(), generation = s.generation, "job phase");
        }
        s.phase = phase;
    }

    /// Sends `command` to every attached worker.
    fn broadcast(&self, command: Cmd) {
        let s = self.shared.state.lock().expect("master lock");
        for w in s.workers.iter().flatten() {
            let _ = w.commands.send(Ok(rpc::Command {
                kind: Some(command.clone()),
            }));
        }
    }

    fn all_attached(&self) -> bool {
        self.shared
            .state
            .lock()
            .expect("master lock")
            .workers
            .iter()
            .all(Option::is_some)
    }

    /// Drops workers that have not been heard from within the timeout, reporting them.
    fn detach_silent(&self) -> Option<String> {
        let mut s = self.shared.state.lock().expect("master lock");
        let timeout = self.shared.heartbeats.timeout;
        let mut reason = None;
        for (i, slot) in s.workers.iter_mut().enumerate() {
            let silent = slot.as_ref().is_some_and(|w| w.last_seen.elapsed() > timeout);
            let gone = slot.as_ref().is_some_and(|w| w.commands.is_closed());
            if silent || gone {
                let why = if silent {
                    format!("worker {i} sent no heartbeat for {timeout:?}")
                } else {
                    format!("worker {i} disconnected")
                };
                tracing::warn!(ordinal = i, "{why}");
                *slot = None;
                reason.get_or_insert(why);
            }
        }
        reason
    }

    /// Runs the job to its end. Ends with the workers told to shut down.
    pub async fn run(mut self) -> Result<()> {
        let outcome = self.run_job().await;
        let (success, message) = match &outcome {
            Ok(()) => (true, "the job ended".to_string()),
            Err(e) => (false, e.to_string()),
        };
        let stopped = matches!(
            self.shared.state.lock().expect("master lock").last_savepoint,
            Some((_, true))
        );
        self.set_phase(match (success, stopped) {
            (true, true) => Phase::Stopped,
            (true, false) => Phase::Finished,
            (false, _) => Phase::Failed,
        });
        if let Err(e) = &outcome {
            let generation = self.shared.state.lock().expect("master lock").generation;
            self.shared.exceptions.record(generation, e.to_string());
        }
        self.broadcast(Cmd::Shutdown(rpc::Shutdown { success, message }));
        outcome
    }

    async fn run_job(&mut self) -> Result<()> {
        let store = match &self.config.checkpoint {
            Some(c) => {
                c.validate()?;
                Some(CheckpointStore::open(&c.storage, &self.config.name)?)
            }
            None => None,
        };
        let plan = crate::plan::plan(&self.graph, &self.config).await?;
        let total_sources = plan.source_subtasks(&self.graph);
        let workers = self.shared.state.lock().expect("master lock").workers.len();
        let savepoint = match &self.config.restore {
            RestoreFrom::Snapshot(url) => Some(url.clone()),
            _ => None,
        };
        let mut restarts = 0u32;
        let mut in_a_row = 0u32;
        let drain = self.shared.control.cancel_token();
        let mut tick = tokio::time::interval(self.shared.heartbeats.interval);
        loop {
            // 1. Every worker attached.
            self.set_phase(Phase::WaitingForWorkers);
            while !self.all_attached() {
                tokio::select! {
                    Some(_) = self.events.recv() => {}
                    _ = tick.tick() => { self.detach_silent(); }
                }
                if drain.is_cancelled() {
                    return Ok(());
                }
            }
            // 2. Find what to restore; claim a generation. A cluster always resumes: from the
            // newest complete checkpoint, or the start savepoint while none is newer than it
            // (checkpoint ids continue from the restored one), so a restarted master carries on.
            let restore = match self.newest_state(store.as_ref(), savepoint.as_deref()).await {
                Ok(r) => r,
                Err(e) => return Err(e),
            };
            let previous = self.shared.state.lock().expect("master lock").generation;
            let at_least = previous.max(restore.as_ref().map_or(0, |r| r.meta.generation)) + 1;
            let generation = match &store {
                Some(s) => s.claim_generation(at_least).await?,
                None => at_least,
            };
            let (ack_tx, ack_rx) = mpsc::unbounded_channel();
            let addresses: Vec<String> = {
                let mut s = self.shared.state.lock().expect("master lock");
                s.generation = generation;
                s.live = true;
                s.acks = Some(ack_tx);
                s.last_checkpoint = restore.as_ref().map_or(s.last_checkpoint, |r| r.meta.checkpoint_id);
                s.restored = restore
                    .as_ref()
                    .map(|r| (r.dir.display().to_string(), r.meta.checkpoint_id));
                s.workers.iter().flatten().map(|w| w.address.clone()).collect()
            };
            // 3. Deploy.
            let run_started = Instant::now();
            self.set_phase(Phase::Deploying);
            tracing::info!(
                generation,
                restore = restore.as_ref().map(|r| r.dir.display().to_string()),
                "deploying"
            );
            self.broadcast(Cmd::Deploy(rpc::Deploy {
                generation,
                restore: restore
                    .as_ref()
                    .map(|r| r.dir.display().to_string())
                    .unwrap_or_default(),
                addresses,
            }));
            let end = self
                .run_generation(RunArgs {
                    generation,
                    workers,
                    total_sources,
                    restore: restore.as_ref(),
                    store: store.as_ref(),
                    acks: ack_rx,
                    drain: &drain,
                    tick: &mut tick,
                })
                .await;
            let fatal = matches!(end, RunEnd::Fatal(_));
            match end {
                RunEnd::Finished { drained } => {
                    if !drained {
                        self.set_phase(Phase::Finishing);
                        self.broadcast(Cmd::CommitFinal(rpc::CommitFinal { generation }));
                        if let Err(reason) = self
                            .wait_reports(generation, ReportKind::Committed, workers, &mut tick)
                            .await
                        {
                            return Err(WeirError::Cluster(format!(
                                "the final commit did not complete: {reason}"
                            )));
                        }
                    }
                    return Ok(());
                }
                RunEnd::Failed(reason) | RunEnd::Fatal(reason) => {
                    self.set_phase(Phase::Restarting);
                    tracing::warn!(job = %self.shared.job, generation, %reason, "run failed; stopping its tasks");
                    {
                        self.shared.state.lock().expect("master lock").live = false;
                        self.shared.exceptions.record(generation, reason.clone());
                    }
                    self.broadcast(Cmd::Stop(rpc::Stop {
                        generation,
                        drain: false,
                    }));
                    let attached = self
                        .shared
                        .state
                        .lock()
                        .expect("master lock")
                        .workers
                        .iter()
                        .flatten()
                        .count();
                    let _ = tokio::time::timeout(
                        self.shared.heartbeats.timeout,
                        self.wait_reports(generation, ReportKind::Stopped, attached, &mut tick),
                    )
                    .await;
                    if fatal {
                        return Err(WeirError::Cluster(format!(
                            "the job cannot run (not restarted): {reason}"
                        )));
                    }
                    let next = if store.is_some() && !drain.is_cancelled() {
                        self.config.restart.next_restart(&mut in_a_row, run_started.elapsed())
                    } else {
                        None
                    };
                    let Some(wait) = next else {
                        if restarts > 0 {
                            tracing::error!(restarts, "giving up after the restart strategy's attempts");
                        }
                        return Err(WeirError::Cluster(format!(
                            "the job failed after {restarts} restarts: {reason}"
                        )));
                    };
                    restarts += 1;
                    self.shared.state.lock().expect("master lock").restarts = restarts;
                    tracing::warn!(
                        restart = restarts,
                        in_a_row,
                        of = %self.config.restart.attempts_text(),
                        wait_ms = wait.as_millis() as u64,
                        "restarting from the newest checkpoint"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// What a new run restores: the newest complete snapshot in the job's storage (checkpoint or
    /// savepoint, so a job stopped with a savepoint resumes from it), or the start savepoint
    /// when nothing there is newer than it.
    async fn newest_state(&self, store: Option<&CheckpointStore>, savepoint: Option<&str>) -> Result<Option<Restore>> {
        let latest = match store {
            Some(s) => s.newest().await?.map(|(dir, meta)| Restore::new(dir, meta)),
            None => None,
        };
        let savepoint = match savepoint {
            Some(url) => Some(Restore::open(SnapshotDir::at(url)?).await?),
            None => None,
        };
        Ok(match (latest, savepoint) {
            (Some(l), Some(s)) if l.meta.checkpoint_id > s.meta.checkpoint_id => Some(l),
            (_, Some(s)) => Some(s),
            (l, None) => l,
        })
    }

    /// Waits until `count` workers reported `kind` for `generation`.
    async fn wait_reports(
        &mut self,
        generation: u64,
        kind: ReportKind,
        count: usize,
        tick: &mut tokio::time::Interval,
    ) -> std::result::Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < count {
            tokio::select! {
                Some(e) = self.events.recv() => match e {
                    Event::Report(r) if r.generation == generation && r.kind() == kind => { seen.insert(r.ordinal); }
                    Event::Report(r) if r.kind() == ReportKind::Failed => return Err(r.error),
                    Event::Detached { reason, .. } => return Err(reason),
                    _ => {}
                },
                _ = tick.tick() => if let Some(reason) = self.detach_silent() { return Err(reason) },
            }
        }
        Ok(())
    }

    async fn run_generation(&mut self, args: RunArgs<'_>) -> RunEnd {
        let RunArgs {
            generation,
            workers,
            total_sources,
            restore,
            store,
            acks,
            drain,
            tick,
        } = args;
        // Deployed everywhere: the number of checkpoint participants is known.
        let mut participants = 0usize;
        let mut deployed = std::collections::BTreeSet::new();
        while deployed.len() < workers {
            tokio::select! {
                Some(e) = self.events.recv() => match e {
                    Event::Report(r) if r.generation == generation && r.kind() == ReportKind::Deployed && deployed.insert(r.ordinal) => {
                        participants += r.count as usize;
                    }
                    Event::Report(r) if r.kind() == ReportKind::Failed => {
                        let reason = format!("worker {} could not deploy: {}", r.ordinal, r.error);
                        return if r.permanent { RunEnd::Fatal(reason) } else { RunEnd::Failed(reason) };
                    }
                    Event::Detached { reason, .. } => return RunEnd::Failed(reason),
                    Event::Report(r) if r.generation == generation => self.backlog.push_back(Event::Report(r)),
                    _ => {}
                },
                _ = tick.tick() => if let Some(reason) = self.detach_silent() { return RunEnd::Failed(reason) },
            }
        }
        self.set_phase(Phase::Running);
        // The checkpoint coordinator, bridged to the workers.
        let (trigger_tx, mut trigger_rx) = watch::channel::<Option<Barrier>>(None);
        let (complete_tx, mut complete_rx) = watch::channel(restore.map_or(0, |r| r.meta.checkpoint_id));
        let sources_remaining = Arc::new(watch::channel(total_sources).0);
        let coordinator_stop = CancellationToken::new();
        let coordinator = match (store, &self.config.checkpoint) {
            (Some(store), Some(cfg)) => {
                let highest = match store.highest_id().await {
                    Ok(h) => h,
                    Err(e) => return RunEnd::Failed(e.to_string()),
                };
                let c = CheckpointCoordinator {
                    config: cfg.clone(),
                    store: store.clone(),
                    job: self.config.name.clone(),
                    generation,
                    max_parallelism: self.config.max_parallelism,
                    expected: participants,
                    metrics: self.shared.checkpoints.clone(),
                    first_id: restore.map_or(0, |r| r.meta.checkpoint_id).max(highest) + 1,
                };
                let channels = CheckpointChannels {
                    trigger: trigger_tx,
                    acks,
                    complete: complete_tx,
                    sources_remaining: sources_remaining.clone(),
                    stop: coordinator_stop.clone(),
                    requests: self.shared.control.inbox(),
                    job_cancel: drain.clone(),
                };
                Some(tokio::spawn(c.run(channels)))
            }
            _ => None,
        };
        let mut coordinator = coordinator;
        let mut ended = vec![0u32; workers];
        let mut finished = std::collections::BTreeSet::new();
        let mut drain_sent = false;
        let end = loop {
            if drain.is_cancelled() && !drain_sent {
                drain_sent = true;
                tracing::info!(generation, "stopping the job: sources stop, data in flight drains");
                self.broadcast(Cmd::Stop(rpc::Stop {
                    generation,
                    drain: true,
                }));
            }
            tokio::select! {
                Some(e) = next_event(&mut self.backlog, &mut self.events) => match e {
                    Event::Report(r) if r.generation != generation => {}
                    Event::Report(r) => match r.kind() {
                        ReportKind::Failed if r.permanent => break RunEnd::Fatal(format!("worker {}: {}", r.ordinal, r.error)),
                        ReportKind::Failed => break RunEnd::Failed(format!("worker {}: {}", r.ordinal, r.error)),
                        ReportKind::Finished => {
                            finished.insert(r.ordinal);
                            if finished.len() == workers {
                                break RunEnd::Finished { drained: drain_sent };
                            }
                        }
                        ReportKind::SourcesEnded => {
                            if let Some(slot) = ended.get_mut(r.ordinal as usize) {
                                *slot = (*slot).max(r.count as u32);
                            }
                            let sum: usize = ended.iter().map(|n| *n as usize).sum();
                            sources_remaining.send_replace(total_sources.saturating_sub(sum));
                            self.broadcast(Cmd::SourcesEnded(rpc::SourcesEnded { generation, ended: ended.clone() }));
                        }
                        _ => {}
                    },
                    Event::Detached { reason, .. } => break RunEnd::Failed(reason),
                    Event::Attached => {}
                },
                Ok(()) = trigger_rx.changed() => {
                    if let Some(b) = *trigger_rx.borrow_and_update() {
                        self.broadcast(Cmd::Trigger(rpc::Trigger {
                            generation,
                            checkpoint_id: b.checkpoint_id,
                            timestamp_ms: b.timestamp_ms,
                            savepoint: b.savepoint,
                            stop: b.stop,
                        }));
                    }
                }
                Ok(()) = complete_rx.changed() => {
                    let id = *complete_rx.borrow_and_update();
                    self.shared.state.lock().expect("master lock").last_checkpoint = id;
                    self.broadcast(Cmd::Complete(rpc::Complete { generation, checkpoint_id: id }));
                }
                Some(result) = async { match &mut coordinator { Some(c) => Some(c.await), None => std::future::pending().await } } => {
                    coordinator = None;
                    match result {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => break RunEnd::Failed(e.to_string()),
                        Err(e) => break RunEnd::Failed(format!("checkpoint coordinator ended abnormally: {e}")),
                    }
                }
                _ = drain.cancelled(), if !drain_sent => {}
                _ = tick.tick() => {
                    self.broadcast(Cmd::Ping(rpc::Ping {}));
                    if let Some(reason) = self.detach_silent() {
                        break RunEnd::Failed(reason);
                    }
                }
            }
        };
        coordinator_stop.cancel();
        if let Some(c) = coordinator {
            let _ = c.await;
        }
        self.shared.state.lock().expect("master lock").acks = None;
        end
    }
}

struct RunArgs<'a> {
    generation: u64,
    workers: usize,
    total_sources: usize,
    restore: Option<&'a Restore>,
    store: Option<&'a CheckpointStore>,
    acks: mpsc::UnboundedReceiver<Ack>,
    drain: &'a CancellationToken,
    tick: &'a mut tokio::time::Interval,
}

#[async_trait::async_trait]
impl crate::rest::JobSource for JobMaster {
    fn snapshot(&self) -> crate::rest::JobSnapshot {
        crate::rest::JobSnapshot {
            status: self.status(),
            started_ms: self.shared.started_ms,
            checkpoints: self.shared.checkpoints.history(),
            exceptions: self.shared.exceptions.list(),
            workers: self.workers_view(),
        }
    }

    fn graph(&self) -> (&LogicalGraph, &JobConfig) {
        (&self.shared.graph, &self.shared.config)
    }

    async fn savepoint(&self, stop: bool) -> std::result::Result<String, String> {
        take_savepoint(&self.shared, stop)
            .await
            .map_err(|s| s.message().to_string())
    }
}
