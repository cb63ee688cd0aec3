//! The sink contract: a [`SinkFactory`] in the graph makes one [`Sink`] per subtask.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use super::error::Result;
use super::operator::TaskContext;

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
