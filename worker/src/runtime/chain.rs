//! A chain: forward-connected operators of equal parallelism fused into one task, ending in
//! outgoing edges or a sink. Batches pass from operator to operator without a channel.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;

use crate::connectors::Sink;
use crate::error::{Result, WeirError};
use crate::message::{Barrier, Message};
use crate::operators::{Operator, TaskContext, UserError};
use crate::runtime::metrics::NodeMetrics;
use crate::runtime::output::{Outputs, SendError};

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
}

fn op_error(ctx: &TaskContext, e: UserError) -> WeirError {
    WeirError::Operator {
        node: ctx.node.clone(),
        subtask: ctx.subtask,
        message: e.to_string(),
    }
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
        Chain { operators, tail }
    }

    /// Runs `batches` through operators `start..` and into the tail.
    async fn run_from(&mut self, start: usize, mut batches: Vec<RecordBatch>) -> Result<()> {
        for op in &mut self.operators[start..] {
            if batches.is_empty() {
                return Ok(());
            }
            let mut next = Vec::new();
            for b in batches {
                op.metrics_in.add_in(b.num_rows());
                op.operator
                    .process_batch(b, &mut next)
                    .map_err(|e| op_error(&op.ctx, e))?;
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
        mut hook: impl FnMut(&mut dyn Operator, &mut Vec<RecordBatch>) -> crate::operators::UserResult<()>,
    ) -> Result<()> {
        for i in 0..self.operators.len() {
            let mut out = Vec::new();
            let op = &mut self.operators[i];
            hook(op.operator.as_mut(), &mut out).map_err(|e| op_error(&op.ctx, e))?;
            op.metrics_out.add_out(out.iter().map(RecordBatch::num_rows).sum());
            op.drain_side().await?;
            self.run_from(i + 1, out).await?;
        }
        Ok(())
    }

    /// Pushes one batch through the chain.
    pub async fn push(&mut self, batch: RecordBatch) -> Result<()> {
        self.run_from(0, vec![batch]).await
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

    /// Passes a barrier downstream (snapshots arrive with checkpoints).
    pub async fn barrier(&mut self, barrier: Barrier) -> Result<()> {
        self.side_broadcast(Message::Barrier(barrier)).await?;
        if let Tail::Outputs(o) = &mut self.tail {
            o.broadcast(Message::Barrier(barrier)).await.map_err(send_error)?;
        }
        Ok(())
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
