//! The source contract: a [`SourceFactory`] in the graph makes one [`Source`] per subtask, and
//! the runtime hands each a [`SourceContext`] to emit into. Connectors see only this trait, never
//! the runtime's chains and channels.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::error::{Result, WeirError};
use super::operator::TaskContext;
use super::state::{decode, encode};
use super::watermark::SplitWatermarks;

/// One running instance of a source.
#[async_trait]
pub trait Source: Send {
    /// Produces batches into `ctx` until the input ends or `ctx` is cancelled.
    async fn run(&mut self, ctx: &mut dyn SourceContext) -> Result<()>;
}

/// Describes a source in the logical graph.
#[async_trait]
pub trait SourceFactory: Send + Sync {
    /// Connector name.
    fn connector(&self) -> &'static str;
    /// The schema of what it produces (may read the input to infer it).
    async fn schema(&self) -> Result<SchemaRef>;
    /// The most subtasks this source can run as (a socket: 1).
    fn max_parallelism(&self) -> Option<usize> {
        None
    }
    /// Whether positions from a checkpoint can be handed to a different number of subtasks
    /// (each subtask then sees every old subtask's position and takes what it now owns, as the
    /// Kafka source does with partitions). Sources whose positions cannot split (a sequence
    /// stride) restore at their old parallelism only.
    fn positions_redistributable(&self) -> bool {
        false
    }
    /// A new instance for one subtask.
    fn create(&self, schema: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Source>>;
}

/// What a running source sees: where to put batches, watermarks and malformed records, its
/// checkpointed position, and whether the job is being cancelled. The runtime implements it.
#[async_trait]
pub trait SourceContext: Send {
    /// Where this source runs.
    fn task(&self) -> &TaskContext;
    /// Rows per batch the job asks for.
    fn batch_size(&self) -> usize;
    /// Whether the job checkpoints (positions are only worth recording then).
    fn checkpointing(&self) -> bool;

    /// Emits a batch; waits while downstream is full. Takes a pending checkpoint first.
    async fn collect(&mut self, batch: RecordBatch) -> Result<()>;
    /// Emits a watermark.
    async fn emit_watermark(&mut self, watermark: i64) -> Result<()>;
    /// Declares this subtask idle: downstream stops waiting for its watermark until it emits
    /// again. Sources that wait for input select on [`SourceContext::idle_deadline`] beside
    /// their read and call this when it passes.
    async fn mark_idle(&mut self) -> Result<()>;
    /// When this source becomes idle if nothing arrives before (ms on the job's clock; none:
    /// never, or already idle).
    fn idle_deadline(&self) -> Option<i64>;
    /// Sends a malformed record to the dead-letter output and counts it.
    async fn dead_letter(&mut self, raw: &str, reason: &str) -> Result<()>;
    /// Takes a checkpoint if one was triggered (stores the position, snapshots what follows the
    /// source, emits the barrier). [`SourceContext::collect`] calls it; a source that may go a
    /// long time without emitting calls it between reads.
    async fn checkpoint_if_due(&mut self) -> Result<()>;

    /// Hands watermark generation to the source, per split (Kafka partitions): the context
    /// stops deriving watermarks from whole batches, and the source emits the least over its
    /// splits with [`SourceContext::emit_watermark`]. `None` without a watermark strategy.
    fn take_split_watermarks(&mut self) -> Option<SplitWatermarks>;

    /// Records the encoded position after the batches emitted so far.
    fn set_position_bytes(&mut self, position: Vec<u8>);
    /// The encoded position to resume from, when the job was restored from a checkpoint.
    fn restored_position_bytes(&self) -> Option<&[u8]>;
    /// Every old subtask's encoded position, when the job was restored at another parallelism
    /// and the source's positions are redistributable.
    fn restored_positions_union_bytes(&self) -> &[Vec<u8>];
    /// The encoded position stored in the newest checkpoint that completed since the last call.
    fn take_committed_position_bytes(&mut self) -> Option<Vec<u8>>;

    /// Whether the job is stopping; a source returns soon after this turns true.
    fn is_cancelled(&self) -> bool;
    /// A token that fires when the job is stopping (for `select!` around blocking reads).
    fn cancel_token(&self) -> CancellationToken;

    /// Records how many records the system this source reads holds that it has not read yet
    /// (Kafka: end offsets − positions over its partitions): the autoscaler and the dashboard
    /// show it. Sources that cannot tell never call it.
    fn report_lag(&mut self, _records: u64) {}
}

impl dyn SourceContext + '_ {
    fn state_error(&self, e: impl Into<super::error::BoxError>) -> WeirError {
        WeirError::io(&self.task().node, e)
    }

    /// Records where the source stands after the batches emitted so far (e.g. the next
    /// sequence number, a file offset); a checkpoint stores the latest. Call it after each
    /// [`SourceContext::collect`].
    pub fn set_position<T: Serialize>(&mut self, position: &T) -> Result<()> {
        if self.checkpointing() {
            let bytes = encode(position).map_err(|e| self.state_error(e))?;
            self.set_position_bytes(bytes);
        }
        Ok(())
    }

    /// The position to resume from, when the job was restored from a checkpoint.
    pub fn restored_position<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        match self.restored_position_bytes() {
            Some(b) => Ok(Some(decode(b).map_err(|e| self.state_error(e))?)),
            None => Ok(None),
        }
    }

    /// Every old subtask's position, when the job was restored at another parallelism and the
    /// source's positions are redistributable ([`SourceFactory::positions_redistributable`]).
    pub fn restored_positions_union<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.restored_positions_union_bytes()
            .iter()
            .map(|b| decode(b).map_err(|e| self.state_error(e)))
            .collect()
    }

    /// The position stored in the newest checkpoint that completed since the last call (e.g.
    /// to commit Kafka offsets to the consumer group for monitoring tools).
    pub fn take_committed_position<T: DeserializeOwned>(&mut self) -> Result<Option<T>> {
        match self.take_committed_position_bytes() {
            Some(b) => Ok(Some(decode(&b).map_err(|e| self.state_error(e))?)),
            None => Ok(None),
        }
    }

    /// Resolves at the idle deadline (never when there is none); borrows nothing, so it can sit
    /// in a `select!` beside a read. Call [`SourceContext::mark_idle`] when it fires.
    pub fn idle_timer(&self) -> impl Future<Output = ()> + Send + 'static {
        let wake = self.idle_deadline().map(|at| self.task().clock.sleep_until(at));
        async move {
            match wake {
                Some(wake) => wake.await,
                None => std::future::pending().await,
            }
        }
    }
}
