//! Event time: a source with a watermark strategy gets its event-time field marked in its output
//! schema, so windows downstream find the field without being told.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};

use crate::contract::error::Result;
use crate::contract::schema::EVENT_TIME_METADATA;
use crate::contract::watermark::WatermarkStrategy;

/// `schema` with the strategy's field marked as the event-time field.
pub fn mark(schema: &SchemaRef, strategy: &WatermarkStrategy) -> Result<SchemaRef> {
    let i = strategy.resolve(schema)?;
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut meta = fields[i].metadata().clone();
    meta.insert(EVENT_TIME_METADATA.to_string(), "true".to_string());
    fields[i] = fields[i].clone().with_metadata(meta);
    Ok(Arc::new(Schema::new(fields)))
}
