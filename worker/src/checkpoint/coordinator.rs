//! The checkpoint coordinator (in the job master): triggers checkpoint `n` at the sources every
//! interval, collects one acknowledgement per operator subtask (each carrying the handle of the
//! state file it uploaded, or nothing when stateless), writes `_metadata` last with a
//! create-only put, then announces `n` complete so two-phase-commit sinks publish. Older
//! checkpoints beyond the retention are deleted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::config::CheckpointConfig;
use super::incremental::ChainLink;
use super::local::LocalCopies;
use super::metadata::{ChainedFile, FORMAT, OperatorSnapshot, SnapshotKind, SnapshotMetadata, SubtaskSnapshot};
use super::restore::layout;
use super::store::CheckpointStore;
use crate::contract::error::{Result, WeirError};
use crate::contract::message::Barrier;
use crate::contract::state::Snapshot;

/// A request for a savepoint; `stop` stops the job once it is complete.
#[derive(Debug)]
pub struct SavepointRequest {
    /// Stop the job after the savepoint.
    pub stop: bool,
    /// Where the answer goes: the savepoint's location, or why there is none.
    pub reply: oneshot::Sender<std::result::Result<String, String>>,
}

/// Where savepoint requests wait for the checkpoint coordinator, and the savepoint the job
/// stopped with once it did: a stop request that comes after (an operator repeating a stop
/// whose answer it lost) gets that savepoint at once instead of waiting for one that a stopping
/// job can no longer take.
pub struct SavepointInbox {
    sender: mpsc::UnboundedSender<SavepointRequest>,
    receiver: tokio::sync::Mutex<mpsc::UnboundedReceiver<SavepointRequest>>,
    stopped_with: std::sync::Mutex<Option<String>>,
}

impl Default for SavepointInbox {
    /// An empty inbox.
    fn default() -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        SavepointInbox {
            sender,
            receiver: tokio::sync::Mutex::new(receiver),
            stopped_with: std::sync::Mutex::new(None),
        }
    }
}

impl SavepointInbox {
    /// Queues `request`, or answers it when the job already stopped with a savepoint.
    pub fn send(&self, request: SavepointRequest) -> Result<()> {
        let stopped = self.stopped_with.lock().expect("savepoint inbox lock");
        if let Some(path) = stopped.as_ref() {
            let _ = request.reply.send(answer_after_stop(request.stop, path));
            return Ok(());
        }
        self.sender
            .send(request)
            .map_err(|_| WeirError::internal("the job is not running"))
    }

    /// The requests, for the coordinator of the current run (one at a time).
    pub(crate) fn receiver(&self) -> &tokio::sync::Mutex<mpsc::UnboundedReceiver<SavepointRequest>> {
        &self.receiver
    }

    /// A new run of the job starts: requests wait for its savepoints again.
    pub(crate) fn running(&self) {
        *self.stopped_with.lock().expect("savepoint inbox lock") = None;
    }

    /// The job stops with the savepoint at `path`: requests queued behind the stop, and any that
    /// come later, are answered now (stop: that savepoint; savepoint: refused).
    pub(crate) fn stopped(&self, path: &str, queued: &mut mpsc::UnboundedReceiver<SavepointRequest>) {
        let mut stopped = self.stopped_with.lock().expect("savepoint inbox lock");
        *stopped = Some(path.to_string());
        while let Ok(r) = queued.try_recv() {
            let _ = r.reply.send(answer_after_stop(r.stop, path));
        }
    }

    /// The savepoint the job stopped with, if it did.
    pub fn stopped_with(&self) -> Option<String> {
        self.stopped_with.lock().expect("savepoint inbox lock").clone()
    }
}

fn answer_after_stop(stop: bool, path: &str) -> std::result::Result<String, String> {
    if stop {
        Ok(path.to_string())
    } else {
        Err(format!("the job is stopping with savepoint {path}"))
    }
}

/// One operator subtask's answer to a barrier.
#[derive(Debug)]
pub struct Ack {
    /// Checkpoint id.
    pub checkpoint_id: u64,
    /// Operator uid.
    pub uid: String,
    /// Subtask index.
    pub subtask: usize,
    /// Parallelism of the operator.
    pub parallelism: usize,
    /// The stored state (none when the subtask has no state), or why it could not be stored.
    pub result: std::result::Result<Option<SubtaskSnapshot>, String>,
}

/// What a task needs to take part in checkpoints.
#[derive(Clone)]
pub struct TaskCheckpoints {
    /// Where state goes.
    pub store: CheckpointStore,
    /// This run's generation (in state file names).
    pub generation: u64,
    /// Acknowledgements to the coordinator.
    pub acks: mpsc::UnboundedSender<Ack>,
    /// The latest completed checkpoint.
    pub complete: watch::Receiver<u64>,
    /// Where uploads run: the checkpoint runtime's own thread, so busy operators on every
    /// worker thread cannot hold a checkpoint back.
    pub uploads: tokio::runtime::Handle,
    /// Incremental checkpoints: a full snapshot at least every this many (`None`: off).
    pub full_every: Option<u32>,
    /// Local recovery: where copies of the uploaded state files stay on this machine.
    pub local: Option<LocalCopies>,
    /// Told of each state file stored: the subtask's figures (see [`StoredHook`]).
    pub stored: Option<StoredHook>,
}

/// Told of a state file stored: the checkpoint id, the time from the barrier to stored, the
/// file's bytes, and the bytes a restore of that state reads (the file and the earlier files of
/// its incremental chain).
pub type StoredHook = Arc<dyn Fn(u64, std::time::Duration, u64, u64) + Send + Sync>;

impl TaskCheckpoints {
    /// These settings, telling `hook` of each state file stored.
    pub fn with_stored_hook(mut self, hook: StoredHook) -> Self {
        self.stored = Some(hook);
        self
    }

    /// Encodes (when deferred) and uploads `state` of (`uid`, `subtask`) for checkpoint `id` in
    /// the background, then acknowledges; processing goes on meanwhile. `link` ties the upload
    /// into the subtask's chain of incremental snapshots (see [`super::incremental`]).
    pub fn store(
        &self,
        barrier: &Barrier,
        uid: &str,
        subtask: usize,
        parallelism: usize,
        state: Snapshot,
        link: Option<ChainLink>,
    ) {
        let id = barrier.checkpoint_id;
        let ack = |result| Ack {
            checkpoint_id: id,
            uid: uid.to_string(),
            subtask,
            parallelism,
            result,
        };
        if state.is_empty() {
            if let Some(link) = link {
                link.sizes.stored(state.is_changes(), 0);
                let _ = link.outcome.send(Some(Vec::new()));
            }
            let _ = self.acks.send(ack(Ok(None)));
            return;
        }
        let file = format!("{uid}/{subtask}-g{}", self.generation);
        let dir = self.store.snapshot_dir(barrier);
        let acks = self.acks.clone();
        let mut done = ack(Ok(None));
        let uploads = self.uploads.clone();
        // Checkpoints (not savepoints, which are self-contained and kept) leave a local copy.
        let local = self.local.clone().filter(|_| !barrier.savepoint);
        let mut completions = self.complete.clone();
        let stored_hook = self.stored.clone();
        self.uploads.spawn(async move {
            let changes = state.is_changes();
            let (previous, outcome, broken, sizes) = match link {
                Some(l) => (l.previous, Some(l.outcome), Some(l.broken), Some(l.sizes)),
                None => (None, None, None, None),
            };
            let began = std::time::Instant::now();
            let stored = async {
                // Encoding (of a frozen view) is CPU work: off the upload thread's reactor.
                let encoded = uploads.spawn_blocking(move || match state.into_file() {
                    Ok(file) => file.map(Encoded::File),
                    Err(state) => state.into_state().map(|s| Encoded::Bytes(layout(&s))),
                });
                // A change file builds on the previous file of the chain: it must be stored.
                let chain = match (changes, previous) {
                    (false, _) => Vec::new(),
                    (true, Some(previous)) => previous
                        .await
                        .ok()
                        .flatten()
                        .ok_or("the previous snapshot of this subtask was not stored; the next one is full")?,
                    (true, None) => return Err("changes without a snapshot to apply them to".to_string()),
                };
                let encoded = encoded
                    .await
                    .map_err(|e| format!("encoding state: {e}"))?
                    .map_err(|e| format!("encoding state: {e}"))?;
                let encoded_ms = began.elapsed().as_millis();
                let (size, key_groups, operator_state) = match encoded {
                    Encoded::Bytes((bytes, key_groups, operator_state)) => {
                        if !changes && key_groups.is_empty() && operator_state.is_none() {
                            return Ok((None, chain));
                        }
                        let bytes = Bytes::from(bytes);
                        let size = dir.put_file(&file, bytes.clone()).await.map_err(|e| e.to_string())?;
                        if let Some(local) = local.clone() {
                            let rel = file.clone();
                            let kept = uploads.spawn_blocking(move || local.keep_bytes(id, &rel, &bytes));
                            warn_unkept(&file, kept.await);
                        }
                        (size, key_groups, operator_state)
                    }
                    Encoded::File(f) => {
                        if !changes && f.index.is_empty() && f.operator.is_none() {
                            return Ok((None, chain));
                        }
                        let name = f.name.map(Arc::new);
                        if let Some(local) = local.clone() {
                            let (rel, copy, size, name) = (file.clone(), f.file.try_clone(), f.size, name.clone());
                            let kept = uploads.spawn_blocking(move || {
                                local.keep_file(id, &rel, copy?, size, name.as_deref().map(|n| &**n))
                            });
                            warn_unkept(&file, kept.await);
                        }
                        let size = dir
                            .put_local_file(&file, f.file, f.size, name.as_deref().map(|n| &**n))
                            .await
                            .map_err(|e| e.to_string())?;
                        (size, f.index, f.operator)
                    }
                };
                tracing::debug!(
                    file = %file, changes, size, encoded_ms, stored_ms = began.elapsed().as_millis() as u64,
                    "snapshot stored"
                );
                let mut after = chain.clone();
                after.push(ChainedFile {
                    checkpoint: id,
                    file: file.clone(),
                    size,
                    key_groups: key_groups.clone(),
                });
                if let Some(hook) = &stored_hook {
                    hook(id, began.elapsed(), size, after.iter().map(|f| f.size).sum());
                }
                let snapshot = SubtaskSnapshot {
                    subtask: done.subtask,
                    file,
                    size,
                    key_groups,
                    operator_state,
                    chain,
                };
                Ok((Some(snapshot), after))
            }
            .await;
            let mut prune = None;
            done.result = match stored {
                Ok((snapshot, chain)) => {
                    if let Some(sizes) = &sizes {
                        sizes.stored(changes, snapshot.as_ref().map_or(0, |s| s.size));
                    }
                    prune = local.map(|l| (l, chain.iter().map(|c| c.checkpoint).collect::<Vec<_>>()));
                    if let Some(o) = outcome {
                        let _ = o.send(Some(chain));
                    }
                    Ok(snapshot)
                }
                Err(e) => {
                    if let Some(b) = broken {
                        b.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    if let Some(o) = outcome {
                        let _ = o.send(None);
                    }
                    Err(e)
                }
            };
            let (uid, subtask) = (done.uid.clone(), done.subtask);
            let _ = acks.send(done);
            // Once this checkpoint (or a later one) completes, older copies this chain does not
            // build on are not needed any more.
            if let Some((local, keep)) = prune
                && completions.wait_for(|c| *c >= id).await.is_ok()
            {
                let _ = tokio::task::spawn_blocking(move || local.prune(&uid, subtask, id, &keep)).await;
            }
        });
    }
}

/// The history's record of checkpoint `barrier`, triggered at `started`: its size and path, or
/// why it failed.
/// Per operator (uid), ms from the trigger to its last subtask's acknowledgement.
type Acked = BTreeMap<String, u64>;

fn record(
    barrier: &Barrier,
    started: Instant,
    outcome: std::result::Result<(&SnapshotMetadata, &Acked, String), String>,
) -> super::metrics::CheckpointRecord {
    use super::metrics::{CheckpointRecord, CheckpointStatus, OperatorCheckpoint};
    let (status, state_size_bytes, path, failure, operators) = match outcome {
        Ok((meta, acked, path)) => {
            let operators = meta
                .operators
                .iter()
                .map(|o| OperatorCheckpoint {
                    uid: o.uid.clone(),
                    state_size_bytes: o.subtasks.iter().map(|s| s.size).sum(),
                    subtasks_with_state: o.subtasks.len(),
                    acknowledged_ms: acked.get(&o.uid).copied().unwrap_or_default(),
                })
                .collect();
            (CheckpointStatus::Completed, meta.size(), Some(path), None, operators)
        }
        Err(reason) => (CheckpointStatus::Failed, 0, None, Some(reason), Vec::new()),
    };
    CheckpointRecord {
        operators,
        id: barrier.checkpoint_id,
        savepoint: barrier.savepoint,
        status,
        trigger_timestamp_ms: barrier.timestamp_ms,
        duration_ms: started.elapsed().as_millis() as u64,
        state_size_bytes,
        path,
        failure,
    }
}

/// Logs a local copy that could not be written (the checkpoint goes on without it).
fn warn_unkept(file: &str, kept: std::result::Result<std::io::Result<()>, tokio::task::JoinError>) {
    let error = match kept {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    tracing::warn!(
        file,
        error,
        "could not keep a local copy of a state file; a restart here downloads it"
    );
}

/// A snapshot encoded for upload: laid out in memory, or a file the operator wrote.
enum Encoded {
    Bytes(super::restore::Layout),
    File(crate::contract::state::StateFile),
}

/// The coordinator of one run of a job.
pub struct CheckpointCoordinator {
    /// Settings.
    pub config: CheckpointConfig,
    /// Where checkpoints go.
    pub store: CheckpointStore,
    /// Job name.
    pub job: String,
    /// This run's generation.
    pub generation: u64,
    /// Number of key groups.
    pub max_parallelism: u32,
    /// Acknowledgements per checkpoint: one per operator subtask.
    pub expected: usize,
    /// The id of the first checkpoint this run takes.
    pub first_id: u64,
    /// Where durations and sizes are counted.
    pub metrics: Arc<crate::checkpoint::metrics::CheckpointMetrics>,
}

/// Channels between the coordinator and the tasks.
pub struct CheckpointChannels {
    /// Trigger for the sources.
    pub trigger: watch::Sender<Option<Barrier>>,
    /// Acknowledgements from the tasks.
    pub acks: mpsc::UnboundedReceiver<Ack>,
    /// Completion notices to the tasks.
    pub complete: watch::Sender<u64>,
    /// Source subtasks still reading: no checkpoint is triggered once all have ended.
    pub sources_remaining: Arc<watch::Sender<usize>>,
    /// Stops the coordinator.
    pub stop: CancellationToken,
    /// Savepoint requests.
    pub requests: Arc<SavepointInbox>,
    /// Stops the job (after a stop-with-savepoint).
    pub job_cancel: CancellationToken,
}

impl CheckpointCoordinator {
    /// Runs until stopped or until checkpoints fail more often than tolerated in a row.
    pub async fn run(self, mut ch: CheckpointChannels) -> Result<()> {
        let mut id = self.first_id;
        let mut failures = 0u32;
        let mut last_done = Instant::now();
        let inbox = ch.requests.clone();
        let mut requests = inbox.receiver().lock().await;
        inbox.running();
        loop {
            let wait = self
                .config
                .interval
                .max(self.config.min_pause.saturating_sub(last_done.elapsed()));
            let mut savepoint = None;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                Some(request) = requests.recv() => savepoint = Some(request),
                _ = ch.stop.cancelled() => return Ok(()),
            }
            if *ch.sources_remaining.borrow() == 0 {
                if let Some(r) = savepoint {
                    let _ = r
                        .reply
                        .send(Err("the job's input has ended; there is nothing to savepoint".into()));
                }
                return Ok(());
            }
            let started = Instant::now();
            let barrier = Barrier {
                checkpoint_id: id,
                timestamp_ms: crate::contract::clock::wall_ms(),
                savepoint: savepoint.is_some(),
                stop: savepoint.as_ref().is_some_and(|r| r.stop),
            };
            let _ = ch.trigger.send(Some(barrier));
            let outcome = self.collect(barrier, started, &mut ch).await?;
            if let Some(request) = savepoint {
                id += 1;
                match outcome {
                    Ok((meta, acked)) => {
                        let path = self.store.snapshot_dir(&barrier).display().to_string();
                        self.metrics
                            .ended(record(&barrier, started, Ok((&meta, &acked, path.clone()))));
                        let _ = ch.complete.send(barrier.checkpoint_id);
                        tracing::info!(job = %self.job, savepoint = %path, "savepoint complete");
                        if request.stop {
                            inbox.stopped(&path, &mut requests);
                            ch.job_cancel.cancel();
                        }
                        let _ = request.reply.send(Ok(path));
                    }
                    Err(reason) => {
                        self.metrics.ended(record(&barrier, started, Err(reason.clone())));
                        let _ = request.reply.send(Err(reason));
                    }
                }
                continue;
            }
            match outcome {
                Ok((meta, acked)) => {
                    failures = 0;
                    last_done = Instant::now();
                    let path = self.store.snapshot_dir(&barrier).display().to_string();
                    self.metrics.ended(record(&barrier, started, Ok((&meta, &acked, path))));
                    let _ = ch.complete.send(id);
                    tracing::info!(
                        job = %self.job,
                        checkpoint = id,
                        duration_ms = started.elapsed().as_millis() as u64,
                        bytes = meta.size(),
                        "checkpoint complete"
                    );
                    match self.store.retain(self.config.retain).await {
                        Ok(deleted) if !deleted.is_empty() => {
                            tracing::debug!(?deleted, "old checkpoints deleted")
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "could not delete old checkpoints"),
                    }
                }
                Err(reason) => {
                    failures += 1;
                    self.metrics.ended(record(&barrier, started, Err(reason.clone())));
                    tracing::warn!(job = %self.job, checkpoint = id, %reason, failures, "checkpoint failed");
                    if failures > self.config.tolerable_failures {
                        return Err(WeirError::io(
                            "checkpoints",
                            format!(
                                "{failures} checkpoints failed in a row (tolerated: {}); last: {reason}",
                                self.config.tolerable_failures
                            ),
                        ));
                    }
                }
            }
            id += 1;
        }
    }

    /// Waits for every acknowledgement of `barrier` (triggered at `started`), then writes
    /// `_metadata`; with it, when each operator's last subtask acknowledged (ms after the
    /// trigger). The outer error stops the coordinator; the inner one fails only this checkpoint.
    async fn collect(
        &self,
        barrier: Barrier,
        started: Instant,
        ch: &mut CheckpointChannels,
    ) -> Result<std::result::Result<(SnapshotMetadata, Acked), String>> {
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        let mut acks: Vec<Ack> = Vec::with_capacity(self.expected);
        let mut acked = Acked::new();
        while acks.len() < self.expected {
            tokio::select! {
                ack = ch.acks.recv() => match ack {
                    Some(a) if a.checkpoint_id == barrier.checkpoint_id => {
                        let at = started.elapsed().as_millis() as u64;
                        let last = acked.entry(a.uid.clone()).or_default();
                        *last = (*last).max(at);
                        acks.push(a)
                    }
                    Some(_) => {} // a late answer to an abandoned checkpoint
                    None => return Ok(Err("tasks are gone".into())),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    return Ok(Err(format!(
                        "timed out after {:?} with {} of {} acknowledgements",
                        self.config.timeout, acks.len(), self.expected
                    )));
                }
                _ = ch.stop.cancelled() => return Ok(Err("job stopping".into())),
            }
        }
        let mut operators: BTreeMap<String, OperatorSnapshot> = BTreeMap::new();
        for a in acks {
            let op = operators.entry(a.uid.clone()).or_insert_with(|| OperatorSnapshot {
                uid: a.uid.clone(),
                parallelism: a.parallelism,
                subtasks: Vec::new(),
            });
            match a.result {
                Ok(Some(s)) => op.subtasks.push(s),
                Ok(None) => {}
                Err(e) => return Ok(Err(format!("{} subtask {}: {e}", a.uid, a.subtask))),
            }
        }
        let mut operators: Vec<OperatorSnapshot> = operators.into_values().collect();
        for op in &mut operators {
            op.subtasks.sort_by_key(|s| s.subtask);
        }
        let meta = SnapshotMetadata {
            format: FORMAT,
            job: self.job.clone(),
            checkpoint_id: barrier.checkpoint_id,
            generation: self.generation,
            kind: if barrier.savepoint {
                SnapshotKind::Savepoint
            } else {
                SnapshotKind::Checkpoint
            },
            timestamp_ms: barrier.timestamp_ms,
            max_parallelism: self.max_parallelism,
            operators,
        };
        match self.store.snapshot_dir(&barrier).write_metadata(&meta).await {
            Ok(()) => Ok(Ok((meta, acked))),
            Err(e) => Ok(Err(e.to_string())),
        }
    }
}
