//! The runtime's side of [`SourceContext`]: a source subtask's emitter, which runs what the
//! source emits through its chain, derives watermarks, takes checkpoints between batches and
//! writes dead letters.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::record_batch::RecordBatch;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::coordinator::TaskCheckpoints;
use crate::contract::NodeMetrics;
use crate::contract::SourceContext;
use crate::contract::TaskContext;
use crate::contract::error::Result;
use crate::contract::message::Barrier;
use crate::contract::watermark::{SplitWatermarks, WatermarkGenerator, WatermarkStrategy};
use crate::dead_letter::DeadLetterWriter;
use crate::runtime::chain::Chain;
use tokio::sync::watch;

/// What a source subtask emits into (handed to [`crate::contract::Source::run`] as its
/// [`SourceContext`]).
pub struct SourceEmitter {
    task: TaskContext,
    chain: Chain,
    metrics: Arc<NodeMetrics>,
    dead_letter: DeadLetterWriter,
    cancel: CancellationToken,
    batch_size: usize,
    watermarks: Option<WatermarkGenerator>,
    idle_timeout: Option<Duration>,
    /// When the source last emitted, ms on the job's clock.
    last_data: i64,
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

impl SourceEmitter {
    /// A context for one source subtask.
    pub fn new(
        task: TaskContext,
        chain: Chain,
        metrics: Arc<NodeMetrics>,
        dead_letter: DeadLetterWriter,
        cancel: CancellationToken,
        batch_size: usize,
    ) -> Self {
        let last_data = task.clock.now_ms();
        SourceEmitter {
            task,
            chain,
            metrics,
            dead_letter,
            cancel,
            batch_size,
            watermarks: None,
            idle_timeout: None,
            last_data,
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

    /// Emits watermarks by `strategy` from the event-time column (its index in the schema).
    pub fn with_watermarks(mut self, strategy: Option<(WatermarkStrategy, usize)>) -> Self {
        if let Some((s, column)) = &strategy {
            self.idle_timeout = s.idle_timeout;
            self.watermarks = Some(WatermarkGenerator::new(s, *column));
        }
        self.strategy = strategy;
        self
    }

    /// The chain, once the source has ended (for the job's final commit).
    pub(crate) fn into_chain(self) -> Chain {
        self.chain
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

    /// Passes the newest completed checkpoint on to the chain (sinks commit) and notes its
    /// position, for the source to report.
    async fn notify_completed(&mut self) -> Result<()> {
        let Some(cp) = &mut self.checkpoints else { return Ok(()) };
        if !cp.task.complete.has_changed().unwrap_or(false) {
            return Ok(());
        }
        let id = *cp.task.complete.borrow_and_update();
        while let Some((&n, _)) = self.positions_at.first_key_value() {
            if n > id {
                break;
            }
            let (_, p) = self.positions_at.pop_first().expect("checked");
            self.committed_position = p;
        }
        self.chain.notify_complete(id).await
    }

    /// After a stop-with-savepoint's barrier the source emits nothing: it waits until the job
    /// stops (the savepoint completed), or until a newer checkpoint is triggered (the savepoint
    /// failed: the job goes on). Completions are passed on meanwhile, so sinks commit the
    /// savepoint's output.
    async fn hold_after_stop(&mut self) -> Result<()> {
        let cancel = self.cancel.clone();
        loop {
            let Some(cp) = &self.checkpoints else { return Ok(()) };
            let (mut trigger, mut complete, last) = (cp.trigger.clone(), cp.task.complete.clone(), cp.last);
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                changed = trigger.changed() => {
                    if changed.is_err() || trigger.borrow().is_some_and(|b| b.checkpoint_id > last) {
                        return Ok(());
                    }
                }
                changed = complete.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    self.notify_completed().await?;
                }
            }
        }
    }

    /// The chain after the source (to load its restored state).
    pub(crate) fn chain_mut(&mut self) -> &mut Chain {
        &mut self.chain
    }
}

#[async_trait]
impl SourceContext for SourceEmitter {
    fn checkpointing(&self) -> bool {
        self.checkpoints.is_some()
    }

    fn set_position_bytes(&mut self, position: Vec<u8>) {
        self.position = Some(position);
    }

    fn restored_position_bytes(&self) -> Option<&[u8]> {
        self.restored.as_deref()
    }

    fn restored_positions_union_bytes(&self) -> &[Vec<u8>] {
        &self.restored_union
    }

    fn take_committed_position_bytes(&mut self) -> Option<Vec<u8>> {
        self.committed_position.take()
    }

    async fn checkpoint_if_due(&mut self) -> Result<()> {
        self.notify_completed().await?;
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
        // A source injects the barrier: nothing to align.
        self.chain.aligned(barrier.checkpoint_id, std::time::Duration::ZERO);
        self.positions_at.insert(barrier.checkpoint_id, self.position.clone());
        let state = crate::contract::OperatorState {
            operator: self.position.clone(),
            ..Default::default()
        };
        cp.task.store(
            &barrier,
            &self.task.node,
            self.task.subtask,
            self.task.parallelism,
            state.into(),
            None,
        );
        self.chain.barrier(barrier).await?;
        if barrier.stop {
            self.hold_after_stop().await?;
        }
        Ok(())
    }

    fn take_split_watermarks(&mut self) -> Option<SplitWatermarks> {
        let (strategy, column) = self.strategy.as_ref()?;
        self.watermarks = None;
        self.idle_timeout = None;
        Some(SplitWatermarks::new(strategy, *column))
    }

    fn task(&self) -> &TaskContext {
        &self.task
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    async fn collect(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.checkpoint_if_due().await?;
        if self.cancel.is_cancelled() && self.checkpoints.is_some() {
            // Stopping (after a stop-with-savepoint, or cancelled): the state resumes from a
            // checkpoint before this batch, which is read again then.
            return Ok(());
        }
        self.metrics.add_out(batch.num_rows());
        self.last_data = self.task.clock.now_ms();
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

    fn idle_deadline(&self) -> Option<i64> {
        match (self.idle, self.idle_timeout) {
            (false, Some(t)) => Some(self.last_data + t.as_millis() as i64),
            _ => None,
        }
    }

    async fn mark_idle(&mut self) -> Result<()> {
        if self.idle {
            return Ok(());
        }
        self.idle = true;
        tracing::debug!(node = %self.task.node, subtask = self.task.subtask, "source idle");
        self.chain.idle().await
    }

    async fn emit_watermark(&mut self, watermark: i64) -> Result<()> {
        self.chain.watermark(watermark).await
    }

    fn report_lag(&mut self, records: u64) {
        self.chain.lag(records);
    }

    async fn dead_letter(&mut self, raw: &str, reason: &str) -> Result<()> {
        let n = self.metrics.dead_letters.fetch_add(1, Ordering::Relaxed);
        if n < 5 {
            tracing::warn!(node = %self.task.node, subtask = self.task.subtask, reason, "malformed record sent to the dead-letter output");
        }
        self.dead_letter.write(raw, reason).await
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}
