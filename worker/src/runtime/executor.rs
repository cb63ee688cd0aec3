//! Runs a physical plan in this process: one tokio task per (chain, subtask), bounded
//! channels between them, so a slow consumer back-pressures its producers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use tokio::sync::watch;

use crate::checkpoint::coordinator::{CheckpointChannels, CheckpointCoordinator, TaskCheckpoints};
use crate::checkpoint::restore::Restore;
use crate::checkpoint::{CheckpointStore, SnapshotDir};
use crate::contract::TaskContext;
use crate::contract::error::{Result, WeirError};
use crate::contract::message::Message;
use crate::dead_letter::DeadLetterWriter;
use crate::graph::{JobConfig, LogicalGraph, NodeKind, RestoreFrom};
use crate::operators::calc;
use crate::plan::{PhysicalPlan, Route, Step};
use crate::runtime::chain::{Chain, ChainedOperator, Tail};
use crate::runtime::control::JobControl;
use crate::runtime::gate::InputGate;
use crate::runtime::metrics::{JobMetrics, NodeMetrics, NodeRole, NodeStats};
use crate::runtime::net::exchange::{self, ChannelId, ExchangeMetrics, Outbound};
use crate::runtime::output::{OutputEdge, Outputs};
use crate::runtime::source_emitter::{SourceCheckpoints, SourceEmitter};
use crate::runtime::task::{OperatorTask, SourceTask, guard};
use crate::storage;

/// What a finished job reports.
#[derive(Debug, Clone)]
pub struct JobResult {
    /// Job name.
    pub name: String,
    /// Wall time from start of execution to the end.
    pub duration: Duration,
    /// Final counters per node.
    pub metrics: Vec<NodeStats>,
    /// Whether the job was stopped by cancellation (Ctrl-C) rather than reaching its end.
    pub cancelled: bool,
    /// Restarts after failures (from the newest checkpoint).
    pub restarts: u32,
    /// When a resumed job had already run to its end (ms since the epoch): nothing ran.
    pub already_finished: Option<i64>,
}

impl JobResult {
    /// Counters of node `name`.
    pub fn node(&self, name: &str) -> Option<&NodeStats> {
        self.metrics.iter().find(|n| n.name == name)
    }

    /// Total dead-letter records over all sources.
    pub fn dead_letters(&self) -> u64 {
        self.metrics.iter().map(|n| n.dead_letters).sum()
    }
}

/// Counters for every node of `graph`, in node order (what [`execute`] expects).
pub fn metrics_for(graph: &LogicalGraph) -> JobMetrics {
    let mut m = JobMetrics::default();
    for n in &graph.nodes {
        let role = match n.kind {
            NodeKind::Source(_) => NodeRole::Source,
            NodeKind::Operator(_) => NodeRole::Operator,
            NodeKind::Sink(_) => NodeRole::Sink,
        };
        m.register(&n.name, role);
    }
    m
}

/// Plans and runs `graph` until every sink has seen the end of its input, a task fails, or
/// `cancel` fires (sources stop, everything in flight drains to the sinks). With checkpoints,
/// a failed run restarts from the newest complete checkpoint by the restart strategy.
pub async fn execute(
    graph: &LogicalGraph,
    config: &JobConfig,
    metrics: &JobMetrics,
    cancel: CancellationToken,
) -> Result<JobResult> {
    execute_controlled(graph, config, metrics, &JobControl::with_cancel(cancel)).await
}

/// [`execute`] with a handle for savepoints and stopping.
pub async fn execute_controlled(
    graph: &LogicalGraph,
    config: &JobConfig,
    metrics: &JobMetrics,
    control: &JobControl,
) -> Result<JobResult> {
    let cancel = control.cancel_token();
    let start = Instant::now();
    let store = match &config.checkpoint {
        Some(c) => {
            c.validate()?;
            Some(CheckpointStore::open(&c.storage, &config.name)?)
        }
        None => None,
    };
    // A job that ran to its end has nothing to resume: resuming it again would re-run what
    // followed its newest checkpoint and repeat that output.
    if let (RestoreFrom::Latest, Some(store)) = (&config.restore, &store)
        && let Some(at) = store.finished().await?
    {
        tracing::info!(
            checkpoints = store.display(),
            "the job already finished; nothing to resume"
        );
        return Ok(JobResult {
            name: config.name.clone(),
            duration: start.elapsed(),
            metrics: metrics.snapshot(),
            cancelled: false,
            restarts: 0,
            already_finished: Some(at),
        });
    }
    if let Some(store) = &store {
        // This run may end otherwise: until it finishes, the job has not.
        store.clear_finished().await?;
    }
    let mut restore = match (&config.restore, &store) {
        (RestoreFrom::Fresh, _) => None,
        (RestoreFrom::Snapshot(url), _) => Some(Restore::open(SnapshotDir::at(url)?).await?),
        (RestoreFrom::Latest, Some(store)) => match store.newest().await? {
            Some((dir, meta)) => Some(Restore::new(dir, meta)),
            None => {
                tracing::info!(
                    checkpoints = store.display(),
                    "no complete checkpoint yet; starting fresh"
                );
                None
            }
        },
        (RestoreFrom::Latest, None) => {
            return Err(WeirError::plan(
                "resuming needs checkpoints enabled (a checkpoint interval)",
            ));
        }
    };
    let mut generation = restore.as_ref().map_or(0, |r| r.meta.generation) + 1;
    let mut restarts = 0;
    let mut in_a_row = 0;
    loop {
        let run_started = Instant::now();
        if let Some(r) = &restore {
            tracing::info!(
                from = r.dir.display(),
                checkpoint = r.meta.checkpoint_id,
                generation,
                "restoring state"
            );
        }
        // A failing run stops its own tasks through a child token; the caller's token stops all.
        let attempt = run_once(
            graph,
            config,
            metrics,
            cancel.child_token(),
            control,
            Attempt {
                store: store.as_ref(),
                restore: restore.as_ref(),
                generation,
            },
        )
        .await;
        let mut err = match attempt {
            Ok(mut r) => {
                if let Some(store) = &store
                    && !r.cancelled
                {
                    store.mark_finished().await?;
                    // Nothing will restore this job's local copies any more.
                    if let Some(local) = crate::checkpoint::local::LocalCopies::for_job(&config.state, &config.name) {
                        local.clear();
                    }
                }
                r.duration = start.elapsed();
                r.restarts = restarts;
                return Ok(r);
            }
            Err(e) => e,
        };
        let recoverable = err.is_retryable();
        let Some(store) = &store else { return Err(err) };
        if !recoverable || cancel.is_cancelled() {
            return Err(err);
        }
        // Finding the newest checkpoint needs the checkpoint storage, which may be what failed
        // (a NameNode restarting, S3 unreachable): that is retried under the same strategy.
        let latest = loop {
            let Some(wait) = config.restart.next_restart(&mut in_a_row, run_started.elapsed()) else {
                tracing::error!(restarts, "giving up after the restart strategy's attempts");
                return Err(err);
            };
            restarts += 1;
            metrics.exceptions.record(generation, err.to_string());
            metrics
                .restarts
                .store(u64::from(restarts), std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(error = %err, restart = restarts, in_a_row, of = %config.restart.attempts_text(), wait_ms = wait.as_millis() as u64, "job failed; restarting from the newest checkpoint");
            tokio::time::sleep(wait).await;
            match store.newest().await {
                Ok(latest) => break latest,
                Err(e) if e.is_retryable() && !cancel.is_cancelled() => err = e,
                Err(e) => return Err(e),
            }
        };
        if let Some((dir, meta)) = latest {
            generation = generation.max(meta.generation) + 1;
            restore = Some(Restore::new(dir, meta));
        } else {
            generation += 1;
        }
    }
}

/// A runtime on threads of its own, shut down without waiting when dropped (dropping a runtime
/// from async code otherwise panics).
struct BackgroundRuntime(Option<tokio::runtime::Runtime>);

impl Drop for BackgroundRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// What one run of a job starts from and checkpoints into.
struct Attempt<'a> {
    store: Option<&'a CheckpointStore>,
    restore: Option<&'a Restore>,
    generation: u64,
}

/// One run of the job (a generation): from `restore` if given, checkpointing into `store`.
async fn run_once(
    graph: &LogicalGraph,
    config: &JobConfig,
    metrics: &JobMetrics,
    cancel: CancellationToken,
    control: &JobControl,
    attempt: Attempt<'_>,
) -> Result<JobResult> {
    let Attempt {
        store,
        restore,
        generation,
    } = attempt;
    let start = Instant::now();
    let plan = crate::plan::plan(graph, config).await?;
    if let Some(r) = restore {
        let uids: Vec<String> = graph.nodes.iter().map(|n| n.name.clone()).collect();
        r.check(&uids, config.max_parallelism, config.allow_non_restored_state)?;
    }
    // Checkpoint channels: a trigger for the sources, acknowledgements, completions.
    let (trigger_tx, trigger_rx) = watch::channel::<Option<crate::contract::message::Barrier>>(None);
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let (complete_tx, complete_rx) = watch::channel(restore.map_or(0, |r| r.meta.checkpoint_id));
    // Source subtasks still reading; an ended one keeps taking checkpoints until all have ended.
    let source_subtasks = plan.source_subtasks(graph);
    let sources_remaining = Arc::new(watch::channel(source_subtasks).0);
    // The coordinator and the uploads run on a thread of their own.
    let checkpoint_runtime = BackgroundRuntime(match store {
        Some(_) => Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("weir-checkpoints")
                .enable_all()
                .build()
                .map_err(|e| WeirError::internal(format!("cannot start the checkpoint runtime: {e}")))?,
        ),
        None => None,
    });
    let task_checkpoints = store.zip(checkpoint_runtime.0.as_ref()).map(|(s, rt)| TaskCheckpoints {
        uploads: rt.handle().clone(),
        store: s.clone(),
        generation,
        acks: ack_tx.clone(),
        complete: complete_rx.clone(),
        full_every: config.checkpoint.as_ref().and_then(|c| c.incremental_every()),
        local: crate::checkpoint::local::LocalCopies::for_job(&config.state, &config.name),
        stored: None,
    });
    let wiring = TaskWiring {
        checkpoints: task_checkpoints,
        trigger: trigger_rx,
        sources_remaining: sources_remaining.clone(),
    };
    let Spawned {
        mut tasks,
        participants,
        ..
    } = spawn_tasks(graph, &plan, config, metrics, &cancel, restore, &wiring, None).await?;
    drop(wiring);
    drop(ack_tx);
    let coordinator_stop = CancellationToken::new();
    let coordinator = match (store, &config.checkpoint) {
        (Some(store), Some(cfg)) => {
            let c = CheckpointCoordinator {
                config: cfg.clone(),
                store: store.clone(),
                job: config.name.clone(),
                generation,
                max_parallelism: config.max_parallelism,
                expected: participants,
                metrics: metrics.checkpoints.clone(),
                first_id: restore
                    .map_or(0, |r| r.meta.checkpoint_id)
                    .max(store.highest_id().await?)
                    + 1,
            };
            let channels = CheckpointChannels {
                trigger: trigger_tx,
                acks: ack_rx,
                complete: complete_tx,
                sources_remaining: sources_remaining.clone(),
                stop: coordinator_stop.clone(),
                requests: control.inbox(),
                job_cancel: cancel.clone(),
            };
            let job_cancel = cancel.clone();
            let rt = checkpoint_runtime.0.as_ref().expect("created with the store");
            Some(rt.spawn(async move {
                let r = c.run(channels).await;
                if r.is_err() {
                    job_cancel.cancel();
                }
                r
            }))
        }
        _ => None,
    };
    let (mut ended, failure) = join_tasks(&mut tasks, &cancel).await;
    coordinator_stop.cancel();
    let coordinator_result = match coordinator {
        Some(c) => match c.await {
            Ok(r) => r,
            Err(e) => Err(WeirError::internal(format!(
                "checkpoint coordinator ended abnormally: {e}"
            ))),
        },
        None => Ok(()),
    };
    drop(checkpoint_runtime);
    coordinator_result?;
    if let Some(e) = failure {
        return Err(e);
    }
    // Every task ended well: output that waited for the end of the whole job is published now
    // (a sink that ended early must not publish while another part of the job could still fail
    // and restore a checkpoint from before its end).
    if !cancel.is_cancelled() {
        for chain in &mut ended {
            chain.commit_final().await?;
        }
    }
    Ok(JobResult {
        name: config.name.clone(),
        duration: start.elapsed(),
        metrics: metrics.snapshot(),
        cancelled: cancel.is_cancelled(),
        restarts: 0,
        already_finished: None,
    })
}

/// A channel into a subtask, with the index of the node's input it belongs to.
type TaggedReceiver = (usize, mpsc::Receiver<Message>);

/// Checkpoint wiring shared by a run's tasks.
pub(crate) struct TaskWiring {
    /// Where tasks store state and acknowledge (none without checkpoints).
    pub checkpoints: Option<TaskCheckpoints>,
    /// The coordinator's trigger for the sources.
    pub trigger: watch::Receiver<Option<crate::contract::message::Barrier>>,
    /// Source subtasks of the whole job still reading.
    pub sources_remaining: Arc<watch::Sender<usize>>,
}

/// The subtasks of a run spawned in this process.
pub(crate) struct Spawned {
    /// The tasks; each returns its chain when it reached the end of its input.
    pub tasks: JoinSet<Result<Option<Chain>>>,
    /// Checkpoint acknowledgements expected per checkpoint from these tasks.
    pub participants: usize,
}

/// Where subtasks run when the job spans several worker processes, and what this worker
/// learned while wiring its part.
pub(crate) struct Placement<'a> {
    /// Workers in the job.
    pub workers: usize,
    /// This worker's ordinal.
    pub me: usize,
    /// Every worker's exchange address, by ordinal.
    pub addresses: &'a [String],
    /// The run's generation (in every channel's opening frame).
    pub generation: u64,
    /// Filled in: this worker's input channels that remote subtasks send to.
    pub inbound: HashMap<ChannelId, mpsc::Sender<Message>>,
    /// Exchange counters.
    pub exchange: Arc<ExchangeMetrics>,
}

/// Builds the channels and spawns the subtasks of one run (all of them, or with `placement`
/// only this worker's, with network channels to and from the others).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn spawn_tasks(
    graph: &LogicalGraph,
    plan: &PhysicalPlan,
    config: &JobConfig,
    metrics: &JobMetrics,
    cancel: &CancellationToken,
    restore: Option<&Restore>,
    wiring: &TaskWiring,
    mut placement: Option<&mut Placement<'_>>,
) -> Result<Spawned> {
    let cancel = cancel.clone();
    let task_checkpoints = &wiring.checkpoints;
    let trigger_rx = &wiring.trigger;
    let sources_remaining = &wiring.sources_remaining;
    let mut participants = 0usize;
    // Local recovery: a restore reads this machine's copies of its files where they match.
    let local = crate::checkpoint::local::LocalCopies::for_job(&config.state, &config.name);
    let shared_restore: Option<Arc<Restore>> = restore.map(|r| {
        Arc::new(
            r.clone()
                .with_local(local.clone(), metrics.checkpoints.restore_reads.clone()),
        )
    });
    let restore = shared_restore.as_deref();
    if restore.is_some() {
        metrics
            .checkpoints
            .restore_ms
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }
    tracing::info!(job = %config.name, tasks = plan.chains.len(), "starting job\n{}", plan.explain(graph));
    let dead_letter_dir = storage::resolve(
        &config
            .dead_letter
            .clone()
            .unwrap_or_else(|| format!(".weir/{}/dead-letter", config.name)),
    )?;
    let node_metrics = metrics.nodes_in_order();
    let n = graph.nodes.len();
    let max_p = config.max_parallelism;

    // Channels: receivers (tagged with their input) per (head node, subtask); output edges per
    // (tail node, subtask).
    let mut receivers: Vec<Vec<Vec<TaggedReceiver>>> = (0..n)
        .map(|i| (0..plan.nodes[i].parallelism).map(|_| Vec::new()).collect())
        .collect();
    let mut outputs: Vec<Vec<Vec<OutputEdge>>> = (0..n)
        .map(|i| (0..plan.nodes[i].parallelism).map(|_| Vec::new()).collect())
        .collect();
    // Side outputs (a window's late records) per (node, subtask).
    let mut side_outputs: Vec<Vec<Vec<OutputEdge>>> = (0..n)
        .map(|i| (0..plan.nodes[i].parallelism).map(|_| Vec::new()).collect())
        .collect();
    let (workers, me) = placement.as_ref().map_or((1, 0), |p| (p.workers, p.me));
    let worker_of = |node: usize, subtask: usize| plan.worker_of(plan.chain_of[node], subtask, workers);
    let mut tasks = JoinSet::new();
    for chain in &plan.chains {
        let head = chain[0];
        // Distinct inputs (a join) keep their index at the gate; a union reads them as one.
        let distinct = matches!(&graph.nodes[head].kind, NodeKind::Operator(o) if o.distinct_inputs());
        for (input, (edge, route)) in graph.nodes[head]
            .inputs
            .iter()
            .zip(&plan.nodes[head].routes)
            .enumerate()
        {
            let pd = plan.nodes[head].parallelism;
            let from = if edge.side {
                &mut side_outputs[edge.from]
            } else {
                &mut outputs[edge.from]
            };
            for (i, upstream) in from.iter_mut().enumerate() {
                let targets: Vec<usize> = if matches!(route, Route::Forward) {
                    vec![i]
                } else {
                    (0..pd).collect()
                };
                let sending_here = worker_of(edge.from, i) == me;
                let mut senders = Vec::with_capacity(targets.len());
                for j in targets {
                    let receiving_at = worker_of(head, j);
                    if !sending_here && receiving_at != me {
                        continue;
                    }
                    let (tx, rx) = mpsc::channel(config.channel_capacity.max(1));
                    let id = ChannelId {
                        node: head as u32,
                        input: input as u32,
                        from: i as u32,
                        to: j as u32,
                    };
                    match placement.as_deref_mut() {
                        // Sent from here to another worker: a network sender drains the channel.
                        Some(p) if receiving_at != me => {
                            senders.push(tx);
                            let outbound = Outbound {
                                address: p.addresses[receiving_at].clone(),
                                open: weir_proto::rpc::Open {
                                    job: config.name.clone(),
                                    generation: p.generation,
                                    node: id.node,
                                    input: id.input,
                                    from_subtask: id.from,
                                    to_subtask: id.to,
                                },
                            };
                            let exchange = p.exchange.clone();
                            tasks.spawn(async move {
                                exchange::send(outbound, rx, exchange).await?;
                                Ok(None)
                            });
                        }
                        // Sent from another worker to here: the exchange feeds the channel.
                        Some(p) if !sending_here => {
                            p.inbound.insert(id, tx);
                            receivers[head][j].push((if distinct { input } else { 0 }, rx));
                        }
                        _ => {
                            senders.push(tx);
                            receivers[head][j].push((if distinct { input } else { 0 }, rx));
                        }
                    }
                }
                if sending_here {
                    upstream.push(OutputEdge::new(route.partitioner(i, max_p), senders));
                }
            }
        }
    }

    for (chain, steps) in plan.chains.iter().zip(&plan.steps) {
        let head = chain[0];
        let p = plan.nodes[head].parallelism;
        let label = chain
            .iter()
            .map(|id| graph.nodes[*id].name.as_str())
            .collect::<Vec<_>>()
            .join(" -> ");
        for i in (0..p).rev() {
            if worker_of(head, i) != me {
                continue;
            }
            let meter = metrics.register_subtask(&label, i, matches!(graph.nodes[head].kind, NodeKind::Source(_)));
            let timed = crate::runtime::metrics::subtask_timing();
            // This subtask's checkpoint figures (alignment, sync and async time, state size) go
            // to its meter.
            let task_checkpoints = task_checkpoints.clone().map(|c| {
                let meter = meter.clone();
                c.with_stored_hook(Arc::new(move |id, took, written, full| {
                    meter.checkpoint_stored(id, took, written, full)
                }))
            });
            let ctx_of = |id: usize| TaskContext {
                metrics: node_metrics[id].clone(),
                node: graph.nodes[id].name.clone(),
                subtask: i,
                parallelism: p,
                max_parallelism: max_p,
                clock: config.clock.clone(),
                state: config.state.clone(),
                dead_letter: Some(dead_letter_dir.display.clone()),
            };
            let mut ops = chain_operators(graph, plan, steps, &node_metrics, &ctx_of)?;
            for op in &mut ops {
                let id = graph
                    .nodes
                    .iter()
                    .position(|n| n.name == op.ctx.node)
                    .expect("operators are nodes");
                let side = std::mem::take(&mut side_outputs[id][i]);
                if !side.is_empty() {
                    op.side = Some(Outputs::new(side));
                }
            }
            let last = *chain.last().expect("chains are not empty");
            let tail = match &graph.nodes[last].kind {
                NodeKind::Sink(f) => {
                    let ctx = ctx_of(last);
                    let input = plan.nodes[last].output_schema.clone();
                    Tail::Sink {
                        sink: f.create(&input, &ctx)?,
                        ctx,
                        metrics: node_metrics[last].clone(),
                    }
                }
                _ => {
                    let outputs = Outputs::new(std::mem::take(&mut outputs[last][i]));
                    Tail::Outputs(if timed {
                        outputs.with_meter(meter.clone())
                    } else {
                        outputs
                    })
                }
            };
            let chain_run = Chain::new(ops, tail)
                .with_checkpoints(task_checkpoints.clone())
                .with_meter(meter.clone());
            participants += chain_run.participants();
            // Each task loads its state itself, so subtasks restore in parallel.
            let task_restore = shared_restore.clone();
            let restore_ms = metrics.checkpoints.clone();
            match &graph.nodes[head].kind {
                NodeKind::Source(f) => {
                    let ctx = ctx_of(head);
                    let source = f.create(&plan.nodes[head].output_schema, &ctx)?;
                    let dl = DeadLetterWriter::new(Some(dead_letter_dir.clone()), &ctx.node, i);
                    let watermarks = match &graph.nodes[head].watermark {
                        Some(w) => Some((w.clone(), w.resolve(&plan.nodes[head].output_schema)?)),
                        None => None,
                    };
                    let mut emitter = SourceEmitter::new(
                        ctx,
                        chain_run,
                        node_metrics[head].clone(),
                        dl,
                        cancel.clone(),
                        config.batch_size,
                    )
                    .with_watermarks(watermarks);
                    if let Some(task) = &task_checkpoints {
                        participants += 1;
                        let (restored, union) = match restore {
                            Some(r) => {
                                let name = &graph.nodes[head].name;
                                source_position(r, name, i, p, f.positions_redistributable()).await?
                            }
                            None => (None, Vec::new()),
                        };
                        emitter = emitter.with_checkpoints(
                            Some(SourceCheckpoints {
                                task: task.clone(),
                                trigger: trigger_rx.clone(),
                                remaining: sources_remaining.clone(),
                                last: restore.map_or(0, |r| r.meta.checkpoint_id),
                            }),
                            restored,
                            union,
                        );
                    }
                    let task = SourceTask {
                        source,
                        emitter,
                        restore: task_restore,
                        metrics: restore_ms,
                    };
                    tasks.spawn(guard(label.clone(), i, task.run()));
                }
                _ => {
                    let task = OperatorTask {
                        gate: InputGate::with_inputs(std::mem::take(&mut receivers[head][i])),
                        chain: chain_run,
                        restore: task_restore,
                        metrics: restore_ms,
                        stopping: cancel.clone(),
                        clock: config.clock.clone(),
                        meter,
                        timed,
                    };
                    tasks.spawn(guard(label.clone(), i, task.run()));
                }
            }
        }
    }
    Ok(Spawned { tasks, participants })
}

/// Waits for every task; on the first failure stops the rest (sources stop, the failure
/// unwinds the others through closed channels). Returns the chains that reached their end and
/// the error that caused the failure (a consequence of another only when there is no cause).
pub(crate) async fn join_tasks(
    tasks: &mut JoinSet<Result<Option<Chain>>>,
    cancel: &CancellationToken,
) -> (Vec<Chain>, Option<WeirError>) {
    let mut first: Option<WeirError> = None;
    let mut secondary: Option<WeirError> = None;
    let mut ended: Vec<Chain> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let err = match joined {
            Ok(Ok(chain)) => {
                ended.extend(chain);
                continue;
            }
            Ok(Err(e)) => e,
            Err(e) => WeirError::internal(format!("task ended abnormally: {e}")),
        };
        cancel.cancel();
        if err.is_secondary() {
            secondary.get_or_insert(err);
        } else if first.is_none() {
            tracing::error!(error = %err, "task failed; stopping the job");
            first = Some(err);
        }
    }
    (ended, first.or(secondary))
}

/// The operators of one subtask of a chain, one per step of the plan (a fused Calc run is one).
fn chain_operators(
    graph: &LogicalGraph,
    plan: &PhysicalPlan,
    steps: &[Step],
    node_metrics: &[Arc<NodeMetrics>],
    ctx_of: &dyn Fn(usize) -> TaskContext,
) -> Result<Vec<ChainedOperator>> {
    let factory = |id: usize| match &graph.nodes[id].kind {
        NodeKind::Operator(f) => Ok(f),
        _ => Err(WeirError::internal(format!(
            "node '{}' is not an operator",
            graph.nodes[id].name
        ))),
    };
    let mut ops = Vec::with_capacity(steps.len());
    for step in steps {
        let (first, last, operator) = match step {
            Step::Node(id) => {
                let f = factory(*id)?;
                let node = &plan.nodes[*id];
                let operator = if f.distinct_inputs() {
                    f.create_of(&node.input_schemas, &ctx_of(*id))?
                } else {
                    let input = node.input_schema.as_ref().expect("operators have inputs");
                    f.create(input, &ctx_of(*id))?
                };
                (*id, *id, operator)
            }
            Step::Calc(ids) => {
                let mut parts = Vec::with_capacity(ids.len());
                for id in ids {
                    let part = factory(*id)?.calc_part().ok_or_else(|| {
                        WeirError::internal(format!("node '{}' cannot be fused", graph.nodes[*id].name))
                    })?;
                    parts.push((part, node_metrics[*id].clone()));
                }
                let input = plan.nodes[ids[0]].input_schema.as_ref().expect("operators have inputs");
                (ids[0], ids[ids.len() - 1], calc::create(parts, input)?)
            }
        };
        ops.push(ChainedOperator {
            operator,
            ctx: ctx_of(first),
            metrics_in: node_metrics[first].clone(),
            metrics_out: node_metrics[last].clone(),
            side: None,
            state_chain: Default::default(),
        });
    }
    Ok(ops)
}

/// A source subtask's restored position. Positions cannot be split or merged, so a source
/// with a position restores at the parallelism it was checkpointed with.
async fn source_position(
    r: &Restore,
    uid: &str,
    subtask: usize,
    parallelism: usize,
    redistributable: bool,
) -> Result<(Option<Vec<u8>>, Vec<Vec<u8>>)> {
    match r.operator_parallelism(uid) {
        Some(old) if old != parallelism => {
            let state = r.state_for(uid, 0, old).await?;
            if state.union.is_empty() || redistributable {
                return Ok((None, state.union));
            }
            Err(WeirError::plan(format!(
                "source '{uid}' was checkpointed at parallelism {old} and cannot resume its positions at {parallelism}; keep the source's parallelism (set_parallelism on it) and rescale the operators after it"
            )))
        }
        _ => Ok((r.state_for(uid, subtask, parallelism).await?.operator, Vec::new())),
    }
}

/// Plans `graph` without running it and renders the plan.
pub async fn explain(graph: &LogicalGraph, config: &JobConfig) -> Result<String> {
    let plan: PhysicalPlan = crate::plan::plan(graph, config).await?;
    Ok(plan.explain(graph))
}
