//! `key_by` with a Python key selector: an operator that appends the selector's key of each
//! record as one more column (declared at plan time, so the engine can partition on it).

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use pyo3::prelude::*;
use weir::contract::error::{Result, WeirError};
use weir::contract::{Operator, OperatorFactory, TaskContext, UserResult};

use crate::call;
use crate::map::conform;

/// Appends column `field` computed by a Python function of the batch (its input plus the key).
pub struct KeyColumn {
    pub field: Field,
    pub f: Arc<Py<PyAny>>,
}

impl OperatorFactory for KeyColumn {
    fn kind(&self) -> &'static str {
        "key_selector"
    }
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        if input.field_with_name(self.field.name()).is_ok() {
            return Err(WeirError::plan(format!(
                "key_by: the stream already has a field '{}' (key by a function once, or by field names)",
                self.field.name()
            )));
        }
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(self.field.clone());
        Ok(Arc::new(Schema::new_with_metadata(fields, input.metadata().clone())))
    }
    fn create(&self, input: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(KeyColumnOp {
            output: self.output_schema(input)?,
            f: self.f.clone(),
        }))
    }
}

struct KeyColumnOp {
    output: SchemaRef,
    f: Arc<Py<PyAny>>,
}

impl Operator for KeyColumnOp {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let result = call::batch_to_batch(&self.f, batch)?;
        out.push(conform(result, &self.output, "a key selector")?);
        Ok(())
    }
}
