//! What a running source sees: where to put batches, watermarks and malformed records, and
//! whether the job is being cancelled.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::record_batch::RecordBatch;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::dead_letter::DeadLetterWriter;
use crate::error::Result;
use crate::operators::TaskContext;
use crate::runtime::chain::Chain;
use crate::runtime::metrics::NodeMetrics;
use crate::time::{WatermarkGenerator, WatermarkStrategy};

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
        }
    }

    /// Emits watermarks by `strategy` from the event-time column (its index in the schema).
    pub fn with_watermarks(mut self, strategy: Option<(WatermarkStrategy, usize)>) -> Self {
        if let Some((s, column)) = strategy {
            self.idle_timeout = s.idle_timeout;
            self.watermarks = Some(WatermarkGenerator::new(&s, column));
        }
        self
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
        self.dead_letter.close().await?;
        // The end of the input is the end of event time: whatever waits for time now fires.
        self.chain.watermark(i64::MAX).await?;
        self.chain.finish().await
    }
}
