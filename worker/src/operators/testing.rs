//! Helpers for operators' unit tests: a task context, batches of integer columns, and a column's
//! values back. Operators are synchronous, so a test calls them directly.

use std::sync::Arc;

use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::contract::{ManualClock, NodeMetrics, TaskContext};

/// Subtask 0 of 1, 128 key groups, on a manual clock at 0.
pub fn ctx() -> TaskContext {
    ctx_on(&ManualClock::new(0))
}

/// [`ctx`] on `clock`, which the test moves.
pub fn ctx_on(clock: &ManualClock) -> TaskContext {
    TaskContext {
        metrics: Arc::new(NodeMetrics::default()),
        node: "op".into(),
        subtask: 0,
        parallelism: 1,
        max_parallelism: 128,
        clock: clock.shared(),
        state: Default::default(),
        dead_letter: None,
    }
}

/// The schema of `batch_of(columns)`.
pub fn schema_of(names: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Int64, false))
            .collect::<Vec<_>>(),
    ))
}

/// A batch of non-null `Int64` columns.
pub fn batch_of(columns: &[(&str, Vec<i64>)]) -> RecordBatch {
    let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
    RecordBatch::try_new(
        schema_of(&names),
        columns
            .iter()
            .map(|(_, v)| Arc::new(Int64Array::from(v.clone())) as _)
            .collect(),
    )
    .unwrap()
}

/// The values of `Int64` column `name` over `batches`, in order.
pub fn ints(batches: &[RecordBatch], name: &str) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name(name).unwrap_or_else(|| panic!("no column {name}"));
            let c = arrow::compute::cast(c, &DataType::Int64).unwrap();
            let c = c.as_primitive::<Int64Type>();
            (0..c.len()).map(|i| c.value(i)).collect::<Vec<_>>()
        })
        .collect()
}
