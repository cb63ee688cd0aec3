//! `map`: one output row per input row (record function) or one batch per batch (vectorized).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::{Operator, OperatorFactory, TaskContext, UserResult};
use crate::contract::error::Result;
use crate::row::{Row, RowRef, rows_to_batch};

/// A record function: one row in, one row out.
pub type RowMapFn = dyn Fn(RowRef<'_>) -> UserResult<Row> + Send + Sync;
/// A batch function, given where it runs.
pub type BatchMapFn = dyn Fn(&TaskContext, RecordBatch) -> UserResult<RecordBatch> + Send + Sync;

/// `map` over rows into `output` schema.
pub struct MapRows {
    /// Output schema.
    pub output: SchemaRef,
    /// The function.
    pub f: Arc<RowMapFn>,
}

impl OperatorFactory for MapRows {
    fn kind(&self) -> &'static str {
        "map"
    }
    fn output_schema(&self, _input: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.output.clone())
    }
    fn create(&self, _input: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(MapRowsOp {
            output: self.output.clone(),
            f: self.f.clone(),
            rows: Vec::new(),
        }))
    }
}

struct MapRowsOp {
    output: SchemaRef,
    f: Arc<RowMapFn>,
    rows: Vec<Row>,
}

impl Operator for MapRowsOp {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        self.rows.clear();
        for i in 0..batch.num_rows() {
            self.rows.push((self.f)(RowRef::new(&batch, i))?);
        }
        out.push(rows_to_batch(&self.output, &self.rows)?);
        Ok(())
    }
}

/// `map_batches`: a vectorized function; its output schema is declared up front (or the input's).
pub struct MapBatches {
    /// Output schema; `None` keeps the input schema.
    pub output: Option<SchemaRef>,
    /// The function.
    pub f: Arc<BatchMapFn>,
}

impl OperatorFactory for MapBatches {
    fn kind(&self) -> &'static str {
        "map_batches"
    }
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.output.clone().unwrap_or_else(|| input.clone()))
    }
    fn create(&self, input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(MapBatchesOp {
            ctx: ctx.clone(),
            output: self.output_schema(input)?,
            f: self.f.clone(),
        }))
    }
}

struct MapBatchesOp {
    ctx: TaskContext,
    output: SchemaRef,
    f: Arc<BatchMapFn>,
}

impl Operator for MapBatchesOp {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let result = (self.f)(&self.ctx, batch)?;
        if result.schema().fields() != self.output.fields() {
            return Err(format!(
                "map_batches returned schema {:?}, declared {:?}",
                result.schema().fields(),
                self.output.fields()
            )
            .into());
        }
        out.push(result);
        Ok(())
    }
}
