//! A chain: forward-connected operators of equal parallelism fused into one task, ending in
//! outgoing edges or a sink. Batches pass from operator to operator without a channel.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;

use crate::checkpoint::coordinator::TaskCheckpoints;
use crate::checkpoint::incremental::StateChain;
use crate::checkpoint::restore::Restore;
use crate::contract::NodeMetrics;
use crate::contract::OperatorState;
use crate::contract::Sink;
use crate::contract::error::{Result, WeirError};
use crate::contract::message::{Barrier, Message};
use crate::contract::{Operator, TaskContext, UserError};
use crate::runtime::metrics::SubtaskMetrics;
use crate::runtime::output::{Outputs, SendError};

/// Stored bytes of keyed state read per part when an operator restores in parts.
pub const RESTORE_PART_BYTES: u64 = 64 << 20;
/// One operator of a chain with its context and counters.
pub struct ChainedOperator {
    /// Where it runs.
    pub ctx: TaskContext,
    /// The instance.
    pub operator: Box<dyn Operator>,
    /// Counters of rows in.
    pub metrics_in: Arc<NodeMetrics>,
    /// Counters of rows out (another node's when operators were fused).
    pub metrics_out: Arc<NodeMetrics>,
    /// Where its side output (a window's late records) goes, if anything reads it.
    pub side: Option<Outputs>,
    /// Its chain of incremental snapshots.
    pub state_chain: StateChain,
}

impl ChainedOperator {
    /// Sends what the operator put on its side output.
    async fn drain_side(&mut self) -> Result<()> {
        let batches = self.operator.take_side_output();
        if let Some(side) = &mut self.side {
            for b in batches {
                side.send_data(b).await.map_err(send_error)?;
            }
        }
        Ok(())
    }

    /// Sends a control message to the side output's readers.
    async fn side_broadcast(&mut self, msg: Message) -> Result<()> {
        if let Some(side) = &mut self.side {
            side.broadcast(msg).await.map_err(send_error)?;
        }
        Ok(())
    }
}

/// Where a chain's output goes.
pub enum Tail {
    /// To other chains.
    Outputs(Outputs),
    /// Into a sink.
    Sink {
        /// Where it runs.
        ctx: TaskContext,
        /// The instance.
        sink: Box<dyn Sink>,
        /// Its counters.
        metrics: Arc<NodeMetrics>,
    },
}

/// The operators of one subtask of a chain, and its tail.
pub struct Chain {
    operators: Vec<ChainedOperator>,
    tail: Tail,
    checkpoints: Option<TaskCheckpoints>,
    /// The newest checkpoint whose completion the chain has passed on.
    completed: u64,
    /// The subtask's figures (its checkpoints' sync time and state size go there).
    meter: Option<Arc<SubtaskMetrics>>,
}

fn op_error(ctx: &TaskContext, e: UserError) -> WeirError {
    WeirError::operator(&ctx.node, ctx.subtask, e)
}

fn send_error(e: SendError) -> WeirError {
    match e {
        SendError::Partition(e) => e,
        SendError::Gone(_) => WeirError::DownstreamGone,
    }
}

impl Chain {
    /// A chain of these operators into `tail`.
    pub fn new(operators: Vec<ChainedOperator>, tail: Tail) -> Self {
        Chain {
            operators,
            tail,
            checkpoints: None,
            completed: 0,
            meter: None,
        }
    }

    /// Records its checkpoint figures in `meter`.
    pub fn with_meter(mut self, meter: Arc<SubtaskMetrics>) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Its source has `records` not read yet.
    pub fn lag(&self, records: u64) {
        if let Some(meter) = &self.meter {
            meter.source_lag(records);
        }
    }

    /// Checkpoint `id` reached this subtask, its barrier aligned after `alignment`.
    pub fn aligned(&self, id: u64, alignment: std::time::Duration) {
        if let Some(meter) = &self.meter {
            meter.checkpoint_aligned(id, alignment);
        }
    }

    /// Takes part in checkpoints through `checkpoints`.
    pub fn with_checkpoints(mut self, checkpoints: Option<TaskCheckpoints>) -> Self {
        self.checkpoints = checkpoints;
        self
    }

    /// Whether this chain takes part in checkpoints.
    pub fn checkpointing(&self) -> bool {
        self.checkpoints.is_some()
    }

    /// Acknowledgements this chain gives per checkpoint (one per operator and sink).
    pub fn participants(&self) -> usize {
        self.operators.len() + usize::from(matches!(self.tail, Tail::Sink { .. }))
    }

    /// Loads every operator's and the sink's state from `restore` (in parts of about
    /// [`RESTORE_PART_BYTES`] for operators that can take their keyed state so).
    pub async fn restore(&mut self, restore: &Restore) -> Result<()> {
        for op in &mut self.operators {
            let (uid, subtask, p) = (&op.ctx.node, op.ctx.subtask, op.ctx.parallelism);
            if !op.operator.restores_in_parts() {
                let state = restore.state_for(uid, subtask, p).await?;
                op.operator.restore(state).map_err(|e| op_error(&op.ctx, e))?;
                continue;
            }
            for (lo, hi) in restore.parts(uid, subtask, p, RESTORE_PART_BYTES) {
                let started = std::time::Instant::now();
                let state = restore.state_for_groups(uid, subtask, p, lo, hi).await?;
                let read = started.elapsed();
                op.operator.restore(state).map_err(|e| op_error(&op.ctx, e))?;
                let (read_ms, load_ms) = (read.as_millis() as u64, (started.elapsed() - read).as_millis() as u64);
                tracing::debug!(uid, subtask, key_groups = ?(lo..=hi), read_ms, load_ms, "restored a part of keyed state");
            }
        }
        if let Tail::Sink { sink, ctx, .. } = &mut self.tail {
            let state = restore.state_for(&ctx.node, ctx.subtask, ctx.parallelism).await?;
            sink.restore(state.operator, state.union).await?;
        }
        self.completed = restore.meta.checkpoint_id;
        Ok(())
    }

    /// Starts a checkpointing job without restored state: a two-phase-commit sink writes
    /// in-progress files from the first row and drops what a failed earlier attempt left.
    pub async fn start_fresh(&mut self) -> Result<()> {
        if self.checkpoints.is_some()
            && let Tail::Sink { sink, .. } = &mut self.tail
        {
            sink.restore(None, Vec::new()).await?;
        }
        Ok(())
    }

    /// The whole job ended well: the sink publishes what waited for it.
    pub async fn commit_final(&mut self) -> Result<()> {
        if let Tail::Sink { sink, .. } = &mut self.tail {
            sink.commit_final().await?;
        }
        Ok(())
    }

    /// A watch on completed checkpoints, if this chain checkpoints.
    pub fn completions(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.checkpoints.as_ref().map(|c| c.complete.clone())
    }

    /// Checkpoint `id` completed: operators and the sink publish what it covers.
    pub async fn notify_complete(&mut self, id: u64) -> Result<()> {
        if id <= self.completed {
            return Ok(());
        }
        self.completed = id;
        for op in &mut self.operators {
            op.operator
                .notify_checkpoint_complete(id)
                .map_err(|e| op_error(&op.ctx, e))?;
        }
        if let Tail::Sink { sink, .. } = &mut self.tail {
            sink.notify_checkpoint_complete(id).await?;
        }
        Ok(())
    }

    /// Runs `batches` through operators `start..` and into the tail; the first operator of the
    /// chain gets them as from input `input`.
    async fn run_from(&mut self, start: usize, input: usize, mut batches: Vec<RecordBatch>) -> Result<()> {
        for (k, op) in self.operators[start..].iter_mut().enumerate() {
            if batches.is_empty() {
                return Ok(());
            }
            let mut next = Vec::new();
            for b in batches {
                // Counted once processed, so a test that waits for a count sees the rows' effects.
                let rows = b.num_rows();
                let r = if start + k == 0 {
                    op.operator.process_input(input, b, &mut next)
                } else {
                    op.operator.process_batch(b, &mut next)
                };
                r.map_err(|e| op_error(&op.ctx, e))?;
                op.metrics_in.add_in(rows);
            }
            op.metrics_out.add_out(next.iter().map(RecordBatch::num_rows).sum());
            op.drain_side().await?;
            batches = next;
        }
        for b in batches {
            if b.num_rows() == 0 {
                continue;
            }
            match &mut self.tail {
                Tail::Outputs(o) => o.send_data(b).await.map_err(send_error)?,
                Tail::Sink { sink, metrics, .. } => {
                    metrics.add_in(b.num_rows());
                    sink.write_batch(b).await?;
                }
            }
        }
        Ok(())
    }

    /// Calls `hook` on each operator in order; what one emits flows through the rest.
    async fn each_operator(
        &mut self,
        mut hook: impl FnMut(&mut dyn Operator, &mut Vec<RecordBatch>) -> crate::contract::UserResult<()>,
    ) -> Result<()> {
        for i in 0..self.operators.len() {
            let mut out = Vec::new();
            let op = &mut self.operators[i];
            hook(op.operator.as_mut(), &mut out).map_err(|e| op_error(&op.ctx, e))?;
            op.metrics_out.add_out(out.iter().map(RecordBatch::num_rows).sum());
            op.drain_side().await?;
            self.run_from(i + 1, 0, out).await?;
        }
        Ok(())
    }

    /// Pushes one batch through the chain.
    pub async fn push(&mut self, batch: RecordBatch) -> Result<()> {
        self.run_from(0, 0, vec![batch]).await
    }

    /// Pushes one batch from input `input` of the chain's first node through the chain.
    pub async fn push_from(&mut self, input: usize, batch: RecordBatch) -> Result<()> {
        self.run_from(0, input, vec![batch]).await
    }

    /// Input `input` of the chain's first operator reached `watermark` (nodes with several
    /// inputs; the combined watermark follows through [`Self::watermark`]).
    pub async fn input_watermark(&mut self, input: usize, watermark: i64) -> Result<()> {
        let Some(op) = self.operators.first_mut() else {
            return Ok(());
        };
        let mut out = Vec::new();
        op.operator
            .on_input_watermark(input, watermark, &mut out)
            .map_err(|e| op_error(&op.ctx, e))?;
        op.metrics_out.add_out(out.iter().map(RecordBatch::num_rows).sum());
        op.drain_side().await?;
        self.run_from(1, 0, out).await
    }

    /// Advances event time through every operator, then downstream.
    pub async fn watermark(&mut self, watermark: i64) -> Result<()> {
        self.each_operator(|op, out| op.on_watermark(watermark, out)).await?;
        self.side_broadcast(Message::Watermark(watermark)).await?;
        if let Tail::Outputs(o) = &mut self.tail {
            o.broadcast(Message::Watermark(watermark)).await.map_err(send_error)?;
        }
        Ok(())
    }

    /// The earliest processing-time timer of any operator in the chain (ms).
    pub fn next_timer(&self) -> Option<i64> {
        self.operators
            .iter()
            .filter_map(|o| o.operator.next_processing_timer())
            .min()
    }

    /// The wall clock reached `now`: operators fire their due timers.
    pub async fn processing_time(&mut self, now: i64) -> Result<()> {
        self.each_operator(|op, out| op.on_processing_time(now, out)).await?;
        Ok(())
    }

    /// Sends a control message to every operator's side-output readers.
    async fn side_broadcast(&mut self, msg: Message) -> Result<()> {
        for op in &mut self.operators {
            op.side_broadcast(msg.clone()).await?;
        }
        Ok(())
    }

    /// Tells downstream that this subtask is idle.
    pub async fn idle(&mut self) -> Result<()> {
        self.side_broadcast(Message::Idle).await?;
        if let Tail::Outputs(o) = &mut self.tail {
            o.broadcast(Message::Idle).await.map_err(send_error)?;
        }
        Ok(())
    }

    /// Lets operators emit what they buffer, snapshots every operator and the sink for the
    /// barrier's checkpoint (uploads go on in the background), then passes the barrier
    /// downstream.
    pub async fn barrier(&mut self, barrier: Barrier) -> Result<()> {
        let id = barrier.checkpoint_id;
        self.each_operator(|op, out| op.before_barrier(id, out)).await?;
        if let Some(cp) = &self.checkpoints {
            let sync_began = std::time::Instant::now();
            for op in &mut self.operators {
                let changes = op.state_chain.wants_changes(&barrier, cp.full_every);
                let began = std::time::Instant::now();
                let state = op.operator.snapshot(id, changes).map_err(|e| op_error(&op.ctx, e))?;
                tracing::debug!(
                    node = %op.ctx.node, checkpoint = id, wanted_changes = changes, changes = state.is_changes(),
                    sync_ms = began.elapsed().as_millis() as u64, "operator snapshot taken"
                );
                let link = op.state_chain.link(&barrier, state.is_changes(), state.live_bytes());
                let (node, subtask, parallelism) = (&op.ctx.node, op.ctx.subtask, op.ctx.parallelism);
                cp.store(&barrier, node, subtask, parallelism, state, Some(link));
            }
            if let Tail::Sink { sink, ctx, .. } = &mut self.tail {
                let state = OperatorState {
                    operator: sink.snapshot(id).await?,
                    ..Default::default()
                };
                cp.store(&barrier, &ctx.node, ctx.subtask, ctx.parallelism, state.into(), None);
            }
            if let Some(meter) = &self.meter {
                meter.checkpoint_synced(id, sync_began.elapsed());
            }
        }
        self.side_broadcast(Message::Barrier(barrier)).await?;
        if let Tail::Outputs(o) = &mut self.tail {
            o.broadcast(Message::Barrier(barrier)).await.map_err(send_error)?;
        }
        Ok(())
    }

    /// The job is being stopped while it checkpoints: what operators hold stays in the last
    /// checkpoint (no end-of-input firing), the sink publishes nothing new, and the end passes
    /// downstream. Resuming continues from that checkpoint.
    pub async fn stop(&mut self) -> Result<()> {
        self.side_broadcast(Message::EndOfStream).await?;
        match &mut self.tail {
            Tail::Outputs(o) => o.broadcast(Message::EndOfStream).await.map_err(send_error)?,
            Tail::Sink { sink, .. } => sink.stop().await?,
        }
        Ok(())
    }

    /// The input ended (or, when `stopping` a checkpointing job, the job stops: see
    /// [`Self::stop`]): lets every operator emit what it holds, then ends the outputs or closes
    /// the sink.
    pub async fn end(&mut self, stopping: bool) -> Result<()> {
        if stopping && self.checkpoints.is_some() {
            self.stop().await
        } else {
            self.finish().await
        }
    }

    /// The input ended: lets every operator emit what it holds, then ends the outputs or
    /// closes the sink.
    pub async fn finish(&mut self) -> Result<()> {
        self.each_operator(|op, out| op.on_end(out)).await?;
        self.side_broadcast(Message::EndOfStream).await?;
        match &mut self.tail {
            Tail::Outputs(o) => o.broadcast(Message::EndOfStream).await.map_err(send_error)?,
            Tail::Sink { sink, ctx, .. } => sink.finish().await.map_err(|e| match e {
                WeirError::Io { .. } | WeirError::Config { .. } => e,
                other => WeirError::io(&ctx.node, other),
            })?,
        }
        Ok(())
    }
}
