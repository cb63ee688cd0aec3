//! `flat_map`: any number of output rows per input row.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::{Operator, OperatorFactory, TaskContext, UserResult};
use crate::contract::error::Result;
use crate::row::{Row, RowRef, rows_to_batch};

/// A record function that appends output rows.
pub type FlatMapFn = dyn Fn(RowRef<'_>, &mut Vec<Row>) -> UserResult<()> + Send + Sync;

/// `flat_map` into `output` schema.
pub struct FlatMapRows {
    /// Output schema.
    pub output: SchemaRef,
    /// The function.
    pub f: Arc<FlatMapFn>,
}

impl OperatorFactory for FlatMapRows {
    fn kind(&self) -> &'static str {
        "flat_map"
    }
    fn output_schema(&self, _input: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.output.clone())
    }
    fn create(&self, _input: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(FlatMapOp {
            output: self.output.clone(),
            f: self.f.clone(),
            rows: Vec::new(),
        }))
    }
}

struct FlatMapOp {
    output: SchemaRef,
    f: Arc<FlatMapFn>,
    rows: Vec<Row>,
}

impl Operator for FlatMapOp {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        self.rows.clear();
        for i in 0..batch.num_rows() {
            (self.f)(RowRef::new(&batch, i), &mut self.rows)?;
        }
        if !self.rows.is_empty() {
            out.push(rows_to_batch(&self.output, &self.rows)?);
        }
        Ok(())
    }
}
