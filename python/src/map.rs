//! A Python function of whole batches as an operator. Its declared output schema keeps the
//! input's event-time field marked when it has a field of that name and type (a record's time
//! travels with it through Python functions, as in Flink), and the batches it returns are
//! checked against the declaration by field names and types, then given the declared schema.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use pyo3::prelude::*;
use weir::contract::error::Result;
use weir::contract::{Operator, OperatorFactory, TaskContext, UserResult};

use crate::call;

/// `f(batch) -> batch` with `output` declared (none: the input's schema).
pub struct PyMapBatches {
    pub output: Option<SchemaRef>,
    pub f: Arc<Py<PyAny>>,
}

/// `declared` with the metadata (the event-time mark among it) of `input`'s fields that it keeps
/// under the same name and type.
pub fn carry_marks(input: &SchemaRef, declared: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = declared
        .fields()
        .iter()
        .map(|f| match input.field_with_name(f.name()) {
            Ok(i) if i.data_type() == f.data_type() && f.metadata().is_empty() => {
                f.as_ref().clone().with_metadata(i.metadata().clone())
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, declared.metadata().clone()))
}

/// `batch` under `schema` when its fields have the same names and types (metadata aside).
pub fn conform(batch: RecordBatch, schema: &SchemaRef, what: &str) -> UserResult<RecordBatch> {
    let got = batch.schema();
    let same = got.fields().len() == schema.fields().len()
        && got
            .fields()
            .iter()
            .zip(schema.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if !same {
        let show = |s: &Schema| {
            s.fields()
                .iter()
                .map(|f| format!("{} {}", f.name(), f.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(format!(
            "{what} returned fields ({}) where ({}) were declared",
            show(&got),
            show(schema)
        )
        .into());
    }
    let options = RecordBatchOptions::default().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        batch.columns().to_vec(),
        &options,
    )?)
}

impl OperatorFactory for PyMapBatches {
    fn kind(&self) -> &'static str {
        "python"
    }
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(match &self.output {
            Some(declared) => carry_marks(input, declared),
            None => input.clone(),
        })
    }
    fn create(&self, input: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(PyMapBatchesOp {
            output: self.output_schema(input)?,
            f: call::copy_for_subtask(&self.f),
        }))
    }
}

struct PyMapBatchesOp {
    output: SchemaRef,
    /// This subtask's copy of the function.
    f: Py<PyAny>,
}

impl Operator for PyMapBatchesOp {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let result = call::batch_to_batch(&self.f, batch)?;
        out.push(conform(result, &self.output, "a Python function")?);
        Ok(())
    }

    fn on_end(&mut self, _out: &mut Vec<RecordBatch>) -> UserResult<()> {
        call::close(&self.f)
    }
}
