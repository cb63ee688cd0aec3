//! A SQL table's source: the connector's source with a step inside its task that turns the
//! connector's batches into the table's rows — computed columns (`x AS expr`), and for a
//! narrowed Nexmark source the unified layout rebuilt from the flat stream. It runs before
//! the source's watermarks are generated, so `WATERMARK FOR` a computed column works as in
//! Flink.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::contract::error::{Result, WeirError};
use crate::contract::watermark::{EventTimeFn, SplitWatermarks};
use crate::contract::{Source, SourceContext, SourceFactory, TaskContext};

/// Turns one connector batch into one table batch; rows it cannot turn (a malformed change)
/// are pushed to the rejects, each rendered as text with the reason, for the dead-letter output.
pub type BatchFn = Arc<dyn Fn(RecordBatch, &mut Rejects) -> Result<RecordBatch> + Send + Sync>;

/// Rows a [`BatchFn`] rejected: (the row as text, why).
pub type Rejects = Vec<(String, String)>;

/// A source factory whose batches pass through `calc`.
pub struct SourceCalc {
    /// The connector's source.
    pub inner: Arc<dyn SourceFactory>,
    /// The connector's schema (what `calc` takes).
    pub inner_schema: SchemaRef,
    /// The table's rows.
    pub output: SchemaRef,
    /// The step.
    pub calc: BatchFn,
    /// The rowtime column computed from a connector batch (one value per row), when the table
    /// has a watermark: a source that keeps watermarks per split (Kafka's partitions) places
    /// each connector row in event time with it.
    pub event_time: Option<EventTimeFn>,
}

#[async_trait]
impl SourceFactory for SourceCalc {
    fn connector(&self) -> &'static str {
        self.inner.connector()
    }
    async fn schema(&self) -> Result<SchemaRef> {
        let actual = self.inner.schema().await?;
        let shape = |s: &SchemaRef| -> Vec<(String, arrow::datatypes::DataType)> {
            s.fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect()
        };
        if shape(&actual) != shape(&self.inner_schema) {
            let show = |s: &SchemaRef| {
                s.fields()
                    .iter()
                    .map(|f| format!("{} {}", f.name(), f.data_type()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(WeirError::plan(format!(
                "the {} connector reads rows of ({}), but the table declares ({})",
                self.inner.connector(),
                show(&actual),
                show(&self.inner_schema)
            )));
        }
        Ok(self.output.clone())
    }
    fn max_parallelism(&self) -> Option<usize> {
        self.inner.max_parallelism()
    }
    fn positions_redistributable(&self) -> bool {
        self.inner.positions_redistributable()
    }
    fn create(&self, _schema: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Source>> {
        Ok(Box::new(CalcSource {
            inner: self.inner.create(&self.inner_schema, ctx)?,
            calc: self.calc.clone(),
            event_time: self.event_time.clone(),
        }))
    }
}

struct CalcSource {
    inner: Box<dyn Source>,
    calc: BatchFn,
    event_time: Option<EventTimeFn>,
}

#[async_trait]
impl Source for CalcSource {
    async fn run(&mut self, ctx: &mut dyn SourceContext) -> Result<()> {
        let mut wrapped = CalcContext {
            inner: ctx,
            calc: self.calc.clone(),
            event_time: self.event_time.clone(),
        };
        self.inner.run(&mut wrapped).await
    }
}

struct CalcContext<'a> {
    inner: &'a mut dyn SourceContext,
    calc: BatchFn,
    event_time: Option<EventTimeFn>,
}

#[async_trait]
impl SourceContext for CalcContext<'_> {
    fn task(&self) -> &TaskContext {
        self.inner.task()
    }
    fn batch_size(&self) -> usize {
        self.inner.batch_size()
    }
    fn checkpointing(&self) -> bool {
        self.inner.checkpointing()
    }
    async fn collect(&mut self, batch: RecordBatch) -> Result<()> {
        let mut rejects = Rejects::new();
        let batch = (self.calc)(batch, &mut rejects)?;
        for (raw, reason) in rejects {
            self.inner.dead_letter(&raw, &reason).await?;
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.inner.collect(batch).await
    }
    async fn emit_watermark(&mut self, watermark: i64) -> Result<()> {
        self.inner.emit_watermark(watermark).await
    }
    async fn mark_idle(&mut self) -> Result<()> {
        self.inner.mark_idle().await
    }
    fn idle_deadline(&self) -> Option<i64> {
        self.inner.idle_deadline()
    }
    async fn dead_letter(&mut self, raw: &str, reason: &str) -> Result<()> {
        self.inner.dead_letter(raw, reason).await
    }
    async fn checkpoint_if_due(&mut self) -> Result<()> {
        self.inner.checkpoint_if_due().await
    }
    fn take_split_watermarks(&mut self) -> Option<SplitWatermarks> {
        // The connector's batches are not the table's rows (the rowtime may be computed, and
        // columns are placed differently): each split's event time comes from the rowtime
        // computed from its records. Without it, the subtask's watermark follows the table's rows.
        let event_time = self.event_time.clone()?;
        let split = self.inner.take_split_watermarks()?;
        Some(split.with_event_time(event_time))
    }
    fn set_position_bytes(&mut self, position: Vec<u8>) {
        self.inner.set_position_bytes(position)
    }
    fn restored_position_bytes(&self) -> Option<&[u8]> {
        self.inner.restored_position_bytes()
    }
    fn restored_positions_union_bytes(&self) -> &[Vec<u8>] {
        self.inner.restored_positions_union_bytes()
    }
    fn take_committed_position_bytes(&mut self) -> Option<Vec<u8>> {
        self.inner.take_committed_position_bytes()
    }
    fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }
    fn report_lag(&mut self, records: u64) {
        self.inner.report_lag(records)
    }
    fn cancel_token(&self) -> CancellationToken {
        self.inner.cancel_token()
    }
}
