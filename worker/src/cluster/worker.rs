//! A worker process (`weir-worker`, one per pod): serves the data exchange (and on ordinal 0
//! the master), attaches to the master, and runs its share of each generation's subtasks.
//!
//! The worker follows the master's commands on the attach stream: deploy a generation (build
//! its subtasks and channels, restore their state), checkpoint triggers and completions, stop
//! (drain or abort), the final commit, shut down. It answers with reports and checkpoint
//! acknowledgements, each carrying its generation. When the master goes away (the stream ends,
//! heartbeats fail) the worker aborts its subtasks and attaches again: a run never continues
//! without the master that deployed it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use weir_proto::rpc::{
    self, command::Kind as Cmd, coordinator_client::CoordinatorClient, task_report::Kind as ReportKind,
};

use super::master::JobMaster;
use super::{Heartbeats, channel_to};
use crate::checkpoint::coordinator::{Ack, TaskCheckpoints};
use crate::checkpoint::restore::Restore;
use crate::checkpoint::{CheckpointStore, SnapshotDir};
use crate::contract::error::{Result, WeirError};
use crate::graph::{JobConfig, LogicalGraph};
use crate::runtime::chain::Chain;
use crate::runtime::executor::{self, Placement, Spawned, TaskWiring};
use crate::runtime::metrics::JobMetrics;
use crate::runtime::net::exchange::Inbound;

/// How a worker finds its place in the job.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// This worker's ordinal (0 also runs the master).
    pub ordinal: usize,
    /// Workers in the job.
    pub workers: usize,
    /// Where the gRPC server listens.
    pub listen: SocketAddr,
    /// How peers reach this worker (`host:port`; a pod's stable DNS name in Kubernetes).
    pub advertise: String,
    /// How to reach ordinal 0 (`host:port`).
    pub coordinator: String,
    /// Failure detection timing.
    pub heartbeats: Heartbeats,
    /// Ordinal 0: where the HTTP endpoint (the REST API, Prometheus `/metrics`) listens.
    pub status_listen: Option<SocketAddr>,
    /// Bearer token of the REST API's mutating endpoints (none: read-only).
    pub ui_token: Option<String>,
    /// Keep serving (status, the coordinator's answers) after the job ended, until SIGTERM.
    pub linger: bool,
    /// The deployment this worker belongs to (empty: any); see `RegisterRequest.deployment`.
    pub deployment: String,
}

/// What the worker ended with.
#[derive(Debug)]
pub struct WorkerExit {
    /// The job ended well.
    pub success: bool,
    /// The master's last word.
    pub message: String,
}

/// Runs a worker until the master says the job is over.
pub async fn run(graph: LogicalGraph, config: JobConfig, opts: WorkerOptions) -> Result<WorkerExit> {
    if opts.workers == 0 || opts.ordinal >= opts.workers {
        return Err(WeirError::Cluster(format!(
            "ordinal {} is out of range for {} workers",
            opts.ordinal, opts.workers
        )));
    }
    let inbound = Inbound::new(&config.name, config.channel_capacity);
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| WeirError::Cluster(format!("cannot listen on {}: {e}", opts.listen)))?;
    let mut router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .initial_stream_window_size(super::STREAM_WINDOW)
        .initial_connection_window_size(super::CONNECTION_WINDOW)
        .add_service(rpc::exchange_server::ExchangeServer::new(inbound.clone()));
    let mut master_loop = None;
    if opts.ordinal == 0 {
        let (master, looped) = JobMaster::new(
            graph.clone(),
            config.clone(),
            opts.workers,
            opts.heartbeats,
            opts.deployment.clone(),
        );
        if let Some(addr) = opts.status_listen {
            let options = crate::rest::RestOptions {
                token: opts.ui_token.clone(),
            };
            crate::rest::serve(addr, Arc::new(master.clone()), options).await?;
        }
        router = router.add_service(rpc::coordinator_server::CoordinatorServer::new(master));
        master_loop = Some(tokio::spawn(looped.run()));
    }
    let server = tokio::spawn(router.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)));
    tracing::info!(ordinal = opts.ordinal, listen = %opts.listen, advertise = %opts.advertise, "worker up");
    let mut worker = Worker {
        metrics: executor::metrics_for(&graph),
        graph,
        config,
        opts,
        inbound,
        deployment: None,
        superseded: false,
    };
    let exit = worker.attach_loop().await;
    let m = &worker.inbound.metrics;
    tracing::info!(
        ordinal = worker.opts.ordinal,
        exchange_bytes_out = m.bytes_out.load(Ordering::Relaxed),
        exchange_frames_out = m.frames_out.load(Ordering::Relaxed),
        exchange_credit_waits = m.credit_waits.load(Ordering::Relaxed),
        "exchange totals"
    );
    if let Some(m) = master_loop {
        // Let the master's last commands reach the other workers.
        let _ = tokio::time::timeout(Duration::from_secs(2), m).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if worker.opts.linger {
        match &exit {
            Ok(e) => {
                tracing::info!(message = %e.message, success = e.success, "the job is over; lingering until terminated")
            }
            Err(e) => tracing::error!(error = %e, "the worker failed; lingering until terminated"),
        }
        std::future::pending::<()>().await;
    }
    server.abort();
    exit
}

struct Worker {
    graph: LogicalGraph,
    config: JobConfig,
    metrics: JobMetrics,
    opts: WorkerOptions,
    inbound: Inbound,
    deployment: Option<Deployment>,
    /// Another process attached with this worker's ordinal: this one is the stale one.
    superseded: bool,
}

/// This worker's part of one generation.
struct Deployment {
    generation: u64,
    trigger: watch::Sender<Option<crate::contract::message::Barrier>>,
    complete: watch::Sender<u64>,
    remaining: Arc<watch::Sender<usize>>,
    remote_ended: Arc<AtomicUsize>,
    drain: CancellationToken,
    abort: CancellationToken,
    ended: Arc<tokio::sync::Mutex<Vec<Chain>>>,
    handle: JoinHandle<()>,
    helpers: Vec<JoinHandle<()>>,
}

impl Deployment {
    /// Stops accepting this generation's channels and aborts its subtasks.
    async fn abort(self, inbound: &Inbound) {
        inbound.retire(self.generation);
        self.abort.cancel();
        let _ = self.handle.await;
        for h in self.helpers {
            h.abort();
        }
    }
}

impl Worker {
    /// Attaches (again and again, while the master is away) until the job is over.
    async fn attach_loop(&mut self) -> Result<WorkerExit> {
        let mut wait = Duration::from_millis(50);
        let mut last_warning: Option<Instant> = None;
        loop {
            let client = CoordinatorClient::new(channel_to(&self.opts.coordinator)?);
            let attached = client
                .clone()
                .attach(rpc::RegisterRequest {
                    ordinal: self.opts.ordinal as u32,
                    address: self.opts.advertise.clone(),
                    job: self.config.name.clone(),
                    workers: self.opts.workers as u32,
                    deployment: self.opts.deployment.clone(),
                })
                .await;
            let stream = match attached {
                Ok(s) => s.into_inner(),
                Err(s) if matches!(s.code(), tonic::Code::InvalidArgument | tonic::Code::Aborted) => {
                    return Err(WeirError::Cluster(format!(
                        "the coordinator at {} refused this worker: {}",
                        self.opts.coordinator,
                        s.message()
                    )));
                }
                Err(s) => {
                    // The first failure and then one every 10 s.
                    if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(coordinator = %self.opts.coordinator, error = %s.message(), "cannot reach the coordinator; retrying");
                        last_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            wait = Duration::from_millis(50);
            tracing::info!(ordinal = self.opts.ordinal, "attached to the coordinator");
            let outcome = self.follow(client, stream).await;
            if let Some(d) = self.deployment.take() {
                tracing::warn!(generation = d.generation, "aborting this worker's subtasks");
                d.abort(&self.inbound).await;
            }
            match outcome {
                Some(exit) => return Ok(exit),
                None if self.superseded => {
                    return Ok(WorkerExit {
                        success: false,
                        message: format!(
                            "another worker attached as ordinal {}: this one stops",
                            self.opts.ordinal
                        ),
                    });
                }
                None => tracing::warn!("lost the coordinator; attaching again"),
            }
        }
    }

    /// Follows the master's commands until it goes away (`None`) or the job is over.
    async fn follow(
        &mut self,
        client: CoordinatorClient<Channel>,
        mut stream: tonic::Streaming<rpc::Command>,
    ) -> Option<WorkerExit> {
        let last_ok = Arc::new(std::sync::Mutex::new(Instant::now()));
        let heartbeat = tokio::spawn(heartbeats(
            client.clone(),
            self.opts.ordinal,
            self.opts.heartbeats,
            last_ok.clone(),
            self.metrics.clone(),
            self.inbound.clone(),
        ));
        let mut tick = tokio::time::interval(self.opts.heartbeats.interval);
        let exit = loop {
            let command = tokio::select! {
                c = stream.message() => c,
                _ = tick.tick() => {
                    let silent = last_ok.lock().expect("heartbeat lock").elapsed();
                    if silent > self.opts.heartbeats.timeout {
                        tracing::warn!(silent_ms = silent.as_millis() as u64, "the coordinator does not answer heartbeats");
                        break None;
                    }
                    continue;
                }
            };
            let kind = match command {
                Ok(Some(rpc::Command { kind: Some(k) })) => k,
                Ok(Some(_)) => continue,
                Err(s) if s.code() == tonic::Code::Aborted => {
                    tracing::warn!(reason = %s.message(), "the coordinator dropped this worker");
                    self.superseded = true;
                    break None;
                }
                Ok(None) | Err(_) => break None,
            };
            if let Some(exit) = self.handle(&client, kind).await {
                break Some(exit);
            }
        };
        heartbeat.abort();
        exit
    }

    fn current(&self, generation: u64) -> Option<&Deployment> {
        self.deployment.as_ref().filter(|d| d.generation == generation)
    }

    async fn handle(&mut self, client: &CoordinatorClient<Channel>, kind: Cmd) -> Option<WorkerExit> {
        match kind {
            Cmd::Deploy(d) => {
                if let Some(old) = self.deployment.take() {
                    old.abort(&self.inbound).await;
                }
                let generation = d.generation;
                match self.deploy(client.clone(), d).await {
                    Ok((deployment, participants)) => {
                        self.deployment = Some(deployment);
                        report(
                            client,
                            self.opts.ordinal,
                            generation,
                            ReportKind::Deployed,
                            participants as u64,
                            "",
                        )
                        .await;
                    }
                    Err(e) => {
                        tracing::error!(generation, error = %e, "cannot deploy");
                        report_failure(client, self.opts.ordinal, generation, &e).await;
                    }
                }
            }
            Cmd::Trigger(t) => {
                if let Some(d) = self.current(t.generation) {
                    let _ = d.trigger.send(Some(crate::contract::message::Barrier {
                        checkpoint_id: t.checkpoint_id,
                        timestamp_ms: t.timestamp_ms,
                        savepoint: t.savepoint,
                        stop: t.stop,
                    }));
                }
            }
            Cmd::Complete(c) => {
                if let Some(d) = self.current(c.generation) {
                    let _ = d.complete.send(c.checkpoint_id);
                }
            }
            Cmd::SourcesEnded(s) => {
                if let Some(d) = self.current(s.generation) {
                    let remote: usize = s
                        .ended
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i != self.opts.ordinal)
                        .map(|(_, n)| *n as usize)
                        .sum();
                    let applied = d.remote_ended.load(Ordering::SeqCst);
                    if remote > applied {
                        // Count it as applied first, so the bridge never mistakes it for a local end.
                        d.remote_ended.store(remote, Ordering::SeqCst);
                        d.remaining.send_modify(|n| *n = n.saturating_sub(remote - applied));
                    }
                }
            }
            Cmd::Stop(s) => {
                if self.current(s.generation).is_some() {
                    if s.drain {
                        if let Some(d) = &self.deployment {
                            d.drain.cancel();
                        }
                    } else if let Some(d) = self.deployment.take() {
                        d.abort(&self.inbound).await;
                        report(client, self.opts.ordinal, s.generation, ReportKind::Stopped, 0, "").await;
                    }
                } else {
                    report(client, self.opts.ordinal, s.generation, ReportKind::Stopped, 0, "").await;
                }
            }
            Cmd::CommitFinal(c) => {
                if let Some(d) = self.current(c.generation) {
                    let mut ended = d.ended.lock().await;
                    let mut result = Ok(());
                    for chain in ended.iter_mut() {
                        if let Err(e) = chain.commit_final().await {
                            result = Err(e);
                            break;
                        }
                    }
                    match result {
                        Ok(()) => report(client, self.opts.ordinal, c.generation, ReportKind::Committed, 0, "").await,
                        Err(e) => {
                            report(
                                client,
                                self.opts.ordinal,
                                c.generation,
                                ReportKind::Failed,
                                0,
                                &e.to_string(),
                            )
                            .await
                        }
                    }
                }
            }
            Cmd::Ping(_) => {}
            Cmd::Shutdown(s) => {
                if let Some(d) = self.deployment.take() {
                    d.abort(&self.inbound).await;
                }
                return Some(WorkerExit {
                    success: s.success,
                    message: s.message,
                });
            }
        }
        None
    }

    /// Builds this worker's subtasks of generation `d.generation`.
    async fn deploy(&mut self, client: CoordinatorClient<Channel>, d: rpc::Deploy) -> Result<(Deployment, usize)> {
        let generation = d.generation;
        let (graph, config) = (&self.graph, &self.config);
        if d.addresses.len() != self.opts.workers {
            return Err(WeirError::Cluster(format!(
                "deploy names {} workers; this worker was started for {}",
                d.addresses.len(),
                self.opts.workers
            )));
        }
        let plan = crate::plan::plan(graph, config).await?;
        let restore = match d.restore.as_str() {
            "" => None,
            url => Some(Restore::open(SnapshotDir::at(url)?).await?),
        };
        if let Some(r) = &restore {
            let uids: Vec<String> = graph.nodes.iter().map(|n| n.name.clone()).collect();
            r.check(&uids, config.max_parallelism, config.allow_non_restored_state)?;
        }
        let store = match &config.checkpoint {
            Some(c) => Some(CheckpointStore::open(&c.storage, &config.name)?),
            None => None,
        };
        let full_every = config.checkpoint.as_ref().and_then(|c| c.incremental_every());
        let (trigger, trigger_rx) = watch::channel(None);
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let (complete, complete_rx) = watch::channel(restore.as_ref().map_or(0, |r| r.meta.checkpoint_id));
        let total_sources = plan.source_subtasks(graph);
        let remaining = Arc::new(watch::channel(total_sources).0);
        let wiring = TaskWiring {
            checkpoints: store.map(|store| TaskCheckpoints {
                store,
                generation,
                acks: ack_tx,
                complete: complete_rx,
                uploads: tokio::runtime::Handle::current(),
                full_every,
                local: crate::checkpoint::local::LocalCopies::for_job(&config.state, &config.name),
                stored: None,
            }),
            trigger: trigger_rx,
            sources_remaining: remaining.clone(),
        };
        let mut placement = Placement {
            workers: self.opts.workers,
            me: self.opts.ordinal,
            addresses: &d.addresses,
            generation,
            inbound: Default::default(),
            exchange: self.inbound.metrics.clone(),
        };
        let drain = CancellationToken::new();
        // Subscribed before the tasks start: a source that ends at once is still reported.
        let mut source_ends = remaining.subscribe();
        source_ends.mark_changed();
        let Spawned {
            mut tasks,
            participants,
            ..
        } = executor::spawn_tasks(
            graph,
            &plan,
            config,
            &self.metrics,
            &drain,
            restore.as_ref(),
            &wiring,
            Some(&mut placement),
        )
        .await?;
        drop(wiring);
        self.inbound.deploy(generation, std::mem::take(&mut placement.inbound));
        let ordinal = self.opts.ordinal;
        let abort = CancellationToken::new();
        let ended = Arc::new(tokio::sync::Mutex::new(Vec::new()));
        let handle = {
            let (client, abort, ended, drain) = (client.clone(), abort.clone(), ended.clone(), drain.clone());
            tokio::spawn(async move {
                tokio::select! {
                    (chains, failure) = executor::join_tasks(&mut tasks, &drain) => {
                        *ended.lock().await = chains;
                        match failure {
                            None => report(&client, ordinal, generation, ReportKind::Finished, 0, "").await,
                            Some(e) => report_failure(&client, ordinal, generation, &e).await,
                        }
                    }
                    _ = abort.cancelled() => {
                        tasks.abort_all();
                        while tasks.join_next().await.is_some() {}
                    }
                }
            })
        };
        let remote_ended = Arc::new(AtomicUsize::new(0));
        let helpers = vec![
            tokio::spawn(forward_acks(client.clone(), generation, ack_rx)),
            tokio::spawn(report_source_ends(
                client,
                ordinal,
                generation,
                total_sources,
                source_ends,
                remote_ended.clone(),
            )),
        ];
        Ok((
            Deployment {
                generation,
                trigger,
                complete,
                remaining,
                remote_ended,
                drain,
                abort,
                ended,
                handle,
                helpers,
            },
            participants,
        ))
    }
}

/// Sends a report; a refusal (this worker's generation is fenced) is logged, not retried.
async fn report(
    client: &CoordinatorClient<Channel>,
    ordinal: usize,
    generation: u64,
    kind: ReportKind,
    count: u64,
    error: &str,
) {
    let request = rpc::TaskReport {
        ordinal: ordinal as u32,
        generation,
        kind: kind as i32,
        count,
        error: error.to_string(),
        permanent: false,
    };
    send_report(client, request).await;
}

/// Reports a failure, marked permanent when restarting cannot help (the job cannot be planned
/// against its state, a connector is configured wrong): the master then fails the job at once
/// instead of restarting it for ever.
async fn report_failure(client: &CoordinatorClient<Channel>, ordinal: usize, generation: u64, e: &WeirError) {
    let request = rpc::TaskReport {
        ordinal: ordinal as u32,
        generation,
        kind: ReportKind::Failed as i32,
        count: 0,
        error: e.to_string(),
        permanent: !e.is_retryable(),
    };
    send_report(client, request).await;
}

async fn send_report(client: &CoordinatorClient<Channel>, request: rpc::TaskReport) {
    let (generation, kind) = (request.generation, request.kind());
    if let Err(s) = client.clone().report(request).await {
        tracing::warn!(generation, kind = ?kind, error = %s.message(), "the coordinator did not take a report");
    }
}

/// Forwards this worker's checkpoint acknowledgements to the master.
async fn forward_acks(client: CoordinatorClient<Channel>, generation: u64, mut acks: mpsc::UnboundedReceiver<Ack>) {
    while let Some(a) = acks.recv().await {
        let (snapshot_json, error) = match &a.result {
            Ok(Some(s)) => (serde_json::to_vec(s).unwrap_or_default(), String::new()),
            Ok(None) => (Vec::new(), String::new()),
            Err(e) => (Vec::new(), e.clone()),
        };
        let request = rpc::CheckpointAck {
            generation,
            checkpoint_id: a.checkpoint_id,
            uid: a.uid,
            subtask: a.subtask as u32,
            parallelism: a.parallelism as u32,
            snapshot_json,
            error,
        };
        if let Err(s) = client.clone().acknowledge(request).await {
            tracing::warn!(generation, error = %s.message(), "checkpoint acknowledgement refused");
        }
    }
}

/// Reports how many of this worker's source subtasks ended, whenever that grows: the local
/// count is what the shared counter lost beyond the other workers' ends applied here.
async fn report_source_ends(
    client: CoordinatorClient<Channel>,
    ordinal: usize,
    generation: u64,
    total: usize,
    mut remaining: watch::Receiver<usize>,
    remote_ended: Arc<AtomicUsize>,
) {
    let mut reported = 0usize;
    while remaining.changed().await.is_ok() {
        let left = *remaining.borrow_and_update();
        let local = total
            .saturating_sub(left)
            .saturating_sub(remote_ended.load(Ordering::SeqCst));
        if local > reported {
            reported = local;
            report(&client, ordinal, generation, ReportKind::SourcesEnded, local as u64, "").await;
        }
    }
}

/// Tells the master this worker is alive, with its counters; records when it last answered.
async fn heartbeats(
    client: CoordinatorClient<Channel>,
    ordinal: usize,
    timing: Heartbeats,
    last_ok: Arc<std::sync::Mutex<Instant>>,
    metrics: JobMetrics,
    inbound: Inbound,
) {
    let mut tick = tokio::time::interval(timing.interval);
    loop {
        tick.tick().await;
        let usage = crate::runtime::process_usage::read().unwrap_or_default();
        let request = rpc::HeartbeatRequest {
            ordinal: ordinal as u32,
            generation: inbound.generation(),
            metrics_json: serde_json::to_vec(&metrics.snapshot()).unwrap_or_default(),
            subtasks_json: serde_json::to_vec(&metrics.subtask_snapshot()).unwrap_or_default(),
            exchange_bytes_out: inbound.metrics.bytes_out.load(Ordering::Relaxed),
            exchange_credit_waits: inbound.metrics.credit_waits.load(Ordering::Relaxed),
            restore_local_bytes: metrics.checkpoints.restore_reads.local.load(Ordering::Relaxed),
            restore_remote_bytes: metrics.checkpoints.restore_reads.remote.load(Ordering::Relaxed),
            memory_bytes: usage.rss_bytes,
            cpu_ms: usage.cpu_ms,
            usage_at_ms: usage.at_ms,
        };
        let mut client = client.clone();
        if let Ok(Ok(_)) = tokio::time::timeout(timing.timeout, client.heartbeat(request)).await {
            *last_ok.lock().expect("heartbeat lock") = Instant::now();
        }
    }
}
