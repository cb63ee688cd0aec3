//! Conventions on Arrow schemas that several parts rely on.

use arrow::datatypes::SchemaRef;

use super::error::{Result, WeirError};

/// Field metadata key marking the event-time field (set by the planner on a source's output
/// when it has a watermark strategy, so windows downstream find it).
pub const EVENT_TIME_METADATA: &str = "weir.event_time";

/// Index of `field` in `schema`, or an error listing the fields there are.
pub fn field_index(schema: &SchemaRef, field: &str, what: &str) -> Result<usize> {
    schema.index_of(field).map_err(|_| {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        WeirError::plan(format!(
            "{what}: no field '{field}' in the stream (fields: {})",
            names.join(", ")
        ))
    })
}

/// The changelog column of updating streams: `+I`, `-U`, `+U` or `-D` per row (Flink's
/// `RowKind`), always the last column.
pub const OP_COLUMN: &str = "__op";
