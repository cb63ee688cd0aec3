//! What a running source sees: where to put batches, watermarks and malformed records, and
//! whether the job is being cancelled.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::record_batch::RecordBatch;
use tokio_util::sync::CancellationToken;

use crate::dead_letter::DeadLetterWriter;
use crate::error::Result;
use crate::operators::TaskContext;
use crate::runtime::chain::Chain;
use crate::runtime::metrics::NodeMetrics;

/// Handed to [`crate::connectors::Source::run`].
pub struct SourceContext {
    task: TaskContext,
    chain: Chain,
    metrics: Arc<NodeMetrics>,
    dead_letter: DeadLetterWriter,
    cancel: CancellationToken,
    batch_size: usize,
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
        }
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
        self.metrics.add_out(batch.num_rows());
        self.chain.push(batch).await
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

    /// Whether the job is stopping; a source returns soon after this turns true.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// A token that fires when the job is stopping (for `select!` around blocking reads).
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// The source ended: closes the dead-letter file and ends the chain.
    pub(crate) async fn finish(&mut self) -> Result<()> {
        self.dead_letter.close().await?;
        self.chain.finish().await
    }
}
