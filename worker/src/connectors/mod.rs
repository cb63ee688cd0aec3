//! Connectors: one folder each (config, source and/or sink, tests).
//!
//! A source is a [`SourceFactory`] in the graph and one [`Source`] per subtask; a sink is a
//! [`SinkFactory`] and one [`Sink`] per subtask. Options from the pipeline form are parsed by
//! each connector's `config.rs` with unknown fields refused.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use crate::error::Result;
use crate::operators::TaskContext;
use crate::runtime::source_context::SourceContext;

pub mod blackhole;
pub mod collect;
pub mod datagen;
pub mod file;
pub mod format;
pub mod http;
pub mod kafka;
pub mod nexmark;
pub mod registry;
pub mod socket;
pub mod stdout;

/// One running instance of a source.
#[async_trait]
pub trait Source: Send {
    /// Produces batches into `ctx` until the input ends or `ctx` is cancelled.
    async fn run(&mut self, ctx: &mut SourceContext) -> Result<()>;
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

/// One running instance of a sink.
#[async_trait]
pub trait Sink: Send {
    /// Writes one batch.
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()>;
    /// The input ended: flush and close (and publish what awaits a checkpoint: a bounded job
    /// that ends is complete).
    async fn finish(&mut self) -> Result<()>;

    /// The job stops while checkpointing (it will resume from its last checkpoint): close
    /// without publishing what no completed checkpoint covers. Defaults to [`Sink::finish`].
    async fn stop(&mut self) -> Result<()> {
        self.finish().await
    }

    /// State for checkpoint `checkpoint_id` at its barrier (e.g. files awaiting commit).
    async fn snapshot(&mut self, _checkpoint_id: u64) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }

    /// Loads the state of a restored checkpoint before the first record: this subtask's own
    /// (when the parallelism is unchanged) and every old subtask's (`union`, for rescaling).
    /// Called with nothing when a checkpointing job starts fresh.
    async fn restore(&mut self, _own: Option<Vec<u8>>, _union: Vec<Vec<u8>>) -> Result<()> {
        Ok(())
    }

    /// Every task of the job ended well (after [`Sink::finish`]): publish what waited for the
    /// job's end.
    async fn commit_final(&mut self) -> Result<()> {
        Ok(())
    }

    /// Checkpoint `checkpoint_id` is complete: publish what it covers.
    async fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<()> {
        Ok(())
    }
}

/// Describes a sink in the logical graph.
pub trait SinkFactory: Send + Sync {
    /// Connector name.
    fn connector(&self) -> &'static str;
    /// Checks that the sink can write this schema.
    fn check_schema(&self, _input: &SchemaRef) -> Result<()> {
        Ok(())
    }
    /// A new instance for one subtask.
    fn create(&self, input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Sink>>;
}
