//! What a running source sees: where to put batches, watermarks and malformed records, and
//! whether the job is being cancelled.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::record_batch::RecordBatch;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::checkpoint::coordinator::TaskCheckpoints;
use crate::dead_letter::DeadLetterWriter;
use crate::error::{Result, WeirError};
use crate::message::Barrier;
use crate::operators::TaskContext;
use crate::runtime::chain::Chain;
use crate::runtime::metrics::NodeMetrics;
use crate::time::{WatermarkGenerator, WatermarkStrategy};
use tokio::sync::watch;

/// Handed to [`crate::connectors::Source::run`].
pub struct SourceContext {
    task: TaskContext,
    chain: Chain,
    metrics: Arc<NodeMetrics>,
    dead_letter: DeadLetterWriter,
    cancel: CancellationToken,
    batch_size: usize,
    watermarks: Option<WatermarkGenerator>,
    idle_timeout: Option<Duration>,
    last_data: Instant,
    idle: bool,
    checkpoints: Option<SourceCheckpoints>,
    /// The watermark strategy and its column.
    strategy: Option<(WatermarkStrategy, usize)>,
    /// The position after the last batch, as the source last reported it.
    position: Option<Vec<u8>>,
    /// The position restored from a checkpoint.
    restored: Option<Vec<u8>>,
    /// Every old subtask's position, when the parallelism changed (redistributable sources).
    restored_union: Vec<Vec<u8>>,
    /// Positions stored in checkpoints not known complete yet.
    positions_at: std::collections::BTreeMap<u64, Option<Vec<u8>>>,
    /// The position in the newest completed checkpoint (taken by the source).
    committed_position: Option<Vec<u8>>,
}

/// A source's part in checkpoints: the trigger and where it acknowledges.
pub(crate) struct SourceCheckpoints {
    pub(crate) task: TaskCheckpoints,
    pub(crate) trigger: watch::Receiver<Option<Barrier>>,
    pub(crate) remaining: Arc<watch::Sender<usize>>,
    pub(crate) last: u64,
}

impl SourceContext {
    /// A context for one source subtask.
    pub fn new(
        task: TaskContext,
        chain: Chain,
        metrics: Arc<NodeMetrics>,
        dead_letter: DeadLetterWriter,
        cancel: CancellationToken,
        batch_size: usize,
    ) -> Self {
        SourceContext {
            task,
            chain,
            metrics,
            dead_letter,
            cancel,
            batch_size,
            watermarks: None,
            idle_timeout: None,
            last_data: Instant::now(),
            idle: false,
            checkpoints: None,
            strategy: None,
            position: None,
            restored: None,
            restored_union: Vec::new(),
            positions_at: std::collections::BTreeMap::new(),
            committed_position: None,
        }
    }

    /// Loads the state of the operators chained after this source (see [`crate::runtime::executor`]).
    pub(crate) async fn load_state(
        &mut self,
        restore: Option<&crate::checkpoint::restore::Restore>,
        metrics: &crate::runtime::metrics::CheckpointMetrics,
    ) -> Result<()> {
        crate::runtime::executor::load_state(&mut self.chain, restore, metrics).await
    }

    /// Takes part in checkpoints; `restored` is the position to resume from.
    pub(crate) fn with_checkpoints(
        mut self,
        checkpoints: Option<SourceCheckpoints>,
        restored: Option<Vec<u8>>,
        restored_union: Vec<Vec<u8>>,
    ) -> Self {
        self.checkpoints = checkpoints;
        // Until the source reports progress, a checkpoint keeps the restored position.
        self.position = restored.clone();
        self.restored = restored;
        self.restored_union = restored_union;
        self
    }

    /// Every old subtask's position, when the job was restored at another parallelism and the
    /// source's positions are redistributable ([`crate::connectors::SourceFactory::positions_redistributable`]).
    pub fn restored_positions_union<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.restored_union
            .iter()
            .map(|b| crate::checkpoint::decode(b).map_err(|e| WeirError::io(&self.task.node, e)))
            .collect()
    }

    /// Records where the source stands after the batches emitted so far (e.g. the next
    /// sequence number, a file offset); a checkpoint stores the latest. Call it after each
    /// [`Self::collect`].
    pub fn set_position<T: serde::Serialize>(&mut self, position: &T) -> Result<()> {
        if self.checkpoints.is_some() {
            let bytes = crate::checkpoint::encode(position).map_err(|e| WeirError::io(&self.task.node, e))?;
            self.position = Some(bytes);
        }
        Ok(())
    }

    /// The position stored in the newest checkpoint that completed since the last call (e.g.
    /// to commit Kafka offsets to the consumer group for monitoring tools).
    pub fn take_committed_position<T: serde::de::DeserializeOwned>(&mut self) -> Result<Option<T>> {
        match self.committed_position.take() {
            Some(b) => Ok(Some(
                crate::checkpoint::decode(&b).map_err(|e| WeirError::io(&self.task.node, e))?,
            )),
            None => Ok(None),
        }
    }

    /// The position to resume from, when the job was restored from a checkpoint.
    pub fn restored_position<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>> {
        match &self.restored {
            Some(b) => Ok(Some(
                crate::checkpoint::decode(b).map_err(|e| WeirError::io(&self.task.node, e))?,
            )),
            None => Ok(None),
        }
    }

    /// Takes a checkpoint if one was triggered: stores the position, snapshots the chain and
    /// emits the barrier; passes on completed checkpoints. Called between batches.
    pub async fn checkpoint_if_due(&mut self) -> Result<()> {
        let Some(cp) = &mut self.checkpoints else { return Ok(()) };
        if cp.task.complete.has_changed().unwrap_or(false) {
            let id = *cp.task.complete.borrow_and_update();
            // The position of the newest completed checkpoint, for the source to report.
            while let Some((&n, _)) = self.positions_at.first_key_value() {
                if n > id {
                    break;
                }
                let (_, p) = self.positions_at.pop_first().expect("checked");
                self.committed_position = p;
            }
            self.chain.notify_complete(id).await?;
        }
        let Some(cp) = &mut self.checkpoints else { return Ok(()) };
        if !cp.trigger.has_changed().unwrap_or(false) {
            return Ok(());
        }
        let Some(barrier) = *cp.trigger.borrow_and_update() else {
            return Ok(());
        };
        if barrier.checkpoint_id <= cp.last {
            return Ok(());
        }
        cp.last = barrier.checkpoint_id;
        self.positions_at.insert(barrier.checkpoint_id, self.position.clone());
        let state = crate::checkpoint::OperatorState {
            operator: self.position.clone(),
            ..Default::default()
        };
        cp.task.store(
            &barrier,
            &self.task.node,
            self.task.subtask,
            self.task.parallelism,
            state,
        );
        self.chain.barrier(barrier).await
    }

    /// Emits watermarks by `strategy` from the event-time column (its index in the schema).
    pub fn with_watermarks(mut self, strategy: Option<(WatermarkStrategy, usize)>) -> Self {
        if let Some((s, column)) = &strategy {
            self.idle_timeout = s.idle_timeout;
            self.watermarks = Some(WatermarkGenerator::new(s, *column));
        }
        self.strategy = strategy;
        self
    }

    /// Hands watermark generation to the source, per split (Kafka partitions): the context
    /// stops deriving watermarks from whole batches, and the source emits the least over its
    /// splits with [`Self::emit_watermark`] and marks itself idle when every split is. `None`
    /// when the stream has no watermark strategy.
    pub fn take_split_watermarks(&mut self) -> Option<crate::time::watermark::SplitWatermarks> {
        let (strategy, column) = self.strategy.as_ref()?;
        self.watermarks = None;
        self.idle_timeout = None;
        Some(crate::time::watermark::SplitWatermarks::new(strategy, *column))
    }

    /// Where this source runs.
    pub fn task(&self) -> &TaskContext {
        &self.task
    }

    /// Rows per batch the job asks for.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Emits a batch; waits while downstream is full.
    pub async fn collect(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.checkpoint_if_due().await?;
        self.metrics.add_out(batch.num_rows());
        self.last_data = Instant::now();
        self.idle = false;
        let watermark = match &mut self.watermarks {
            Some(g) => g.observe(&batch)?,
            None => None,
        };
        self.chain.push(batch).await?;
        match watermark {
            Some(w) => self.chain.watermark(w).await,
            None => Ok(()),
        }
    }

    /// When this source becomes idle if nothing arrives before (none: never, or already idle).
    pub fn idle_deadline(&self) -> Option<tokio::time::Instant> {
        match (self.idle, self.idle_timeout) {
            (false, Some(t)) => Some(tokio::time::Instant::from_std(self.last_data + t)),
            _ => None,
        }
    }

    /// Resolves at the idle deadline (never when there is none); borrows nothing, so it can sit
    /// in a `select!` beside a read. Call [`Self::mark_idle`] when it fires.
    pub fn idle_timer(&self) -> impl Future<Output = ()> + Send + 'static {
        let at = self.idle_deadline();
        async move {
            match at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        }
    }

    /// Declares this subtask idle: downstream stops waiting for its watermark until it emits
    /// again. Sources that wait for input (sockets, polling) select on [`Self::idle_deadline`]
    /// beside their read and call this when it passes.
    pub async fn mark_idle(&mut self) -> Result<()> {
        if self.idle {
            return Ok(());
        }
        self.idle = true;
        tracing::debug!(node = %self.task.node, subtask = self.task.subtask, "source idle");
        self.chain.idle().await
    }

    /// Emits a watermark.
    pub async fn emit_watermark(&mut self, watermark: i64) -> Result<()> {
        self.chain.watermark(watermark).await
    }

    /// Sends a malformed record to the dead-letter output and counts it.
    pub async fn dead_letter(&mut self, raw: &str, reason: &str) -> Result<()> {
        let n = self.metrics.dead_letters.fetch_add(1, Ordering::Relaxed);
        if n < 5 {
            tracing::warn!(node = %self.task.node, subtask = self.task.subtask, reason, "malformed record sent to the dead-letter output");
        }
        self.dead_letter.write(raw, reason).await
    }

    /// Emits the good rows of a decoded chunk and sends its bad records to the dead-letter
    /// output, in that order of records lost: none.
    pub async fn collect_decoded(&mut self, decoded: crate::connectors::format::Decoded) -> Result<()> {
        for (raw, reason) in decoded.bad {
            self.dead_letter(&raw, &reason).await?;
        }
        match decoded.batch {
            Some(b) => self.collect(b).await,
            None => Ok(()),
        }
    }

    /// The chain, once the source has ended (for the job's final commit).
    pub(crate) fn into_chain(self) -> Chain {
        self.chain
    }

    /// Whether the job is stopping; a source returns soon after this turns true.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// A token that fires when the job is stopping (for `select!` around blocking reads).
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// The source ended: closes the dead-letter file, advances event time to its end, and ends
    /// the chain.
    pub(crate) async fn finish(&mut self) -> Result<()> {
        if let Some(cp) = &self.checkpoints {
            // An ended source keeps taking part in checkpoints (its position is final) until
            // every source has ended, so a failure elsewhere restores a recent checkpoint rather
            // than one from before this end.
            cp.remaining.send_modify(|n| *n = n.saturating_sub(1));
            let mut remaining = cp.remaining.subscribe();
            let cancel = self.cancel.clone();
            while let Some(mut trigger) = self.checkpoints.as_ref().map(|cp| cp.trigger.clone()) {
                tokio::select! {
                    _ = async { drop(remaining.wait_for(|n| *n == 0).await) } => break,
                    _ = cancel.cancelled() => break,
                    changed = trigger.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        self.checkpoint_if_due().await?;
                    }
                }
            }
        }
        self.dead_letter.close().await?;
        let stopping = self.cancel.is_cancelled() && self.checkpoints.is_some();
        if !stopping {
            // The end of the input is the end of event time: whatever waits for time now fires.
            self.chain.watermark(i64::MAX).await?;
        }
        self.chain.end(stopping).await
    }
}
