//! What the two-input joins (regular, interval, temporal) check of their inputs and how they
//! name their output's columns, in one place so their errors read alike.

use arrow::datatypes::{Field, SchemaRef};

use crate::contract::error::{Result, WeirError};
use crate::contract::schema::{EVENT_TIME_METADATA, field_index};
use crate::contract::watermark::event_millis;

/// Refuses key lists of different lengths or none (`join` names the join in the message).
pub(crate) fn key_counts(join: &str, left: &[String], right: &[String]) -> Result<()> {
    if left.len() != right.len() || left.is_empty() {
        return Err(WeirError::plan(format!(
            "{join} needs as many key columns on each side, at least one ({left:?} and {right:?})"
        )));
    }
    Ok(())
}

/// Refuses join keys whose types differ, naming both (a join compares encoded keys).
pub(crate) fn same_key_types(left: &SchemaRef, lk: &[usize], right: &SchemaRef, rk: &[usize]) -> Result<()> {
    for (a, b) in lk.iter().zip(rk) {
        let (fa, fb) = (left.field(*a), right.field(*b));
        if fa.data_type() != fb.data_type() {
            return Err(WeirError::plan(format!(
                "join keys '{}' ({}) and '{}' ({}) differ in type; cast one side to the other's",
                fa.name(),
                fa.data_type(),
                fb.name(),
                fb.data_type()
            )));
        }
    }
    Ok(())
}

/// The index of the `side` input's time column: `name`, or (`None`) the column its watermark
/// strategy marked; refused unless it is a timestamp or integer milliseconds.
pub(crate) fn time_column(schema: &SchemaRef, name: Option<&str>, join: &str, side: &str) -> Result<usize> {
    let time = match name {
        Some(t) => field_index(schema, t, &format!("{side} time column"))?,
        None => schema
            .fields()
            .iter()
            .position(|f| f.metadata().contains_key(EVENT_TIME_METADATA))
            .ok_or_else(|| {
                WeirError::plan(format!(
                    "{join}: the {side} input has no event time; give its source a watermark strategy or name its time column"
                ))
            })?,
    };
    let f = schema.field(time);
    if event_millis(&arrow::array::new_empty_array(f.data_type())).is_err() {
        return Err(WeirError::plan(format!(
            "{join}: the {side} time column '{}' is {}; use a timestamp or integer milliseconds",
            f.name(),
            f.data_type()
        )));
    }
    Ok(time)
}

/// Adds the columns `columns` of input `side` (0 left, 1 right) to a join's output `fields`,
/// nullable when that side may be padded with nulls. A name already there is refused; the right
/// input's event-time mark is dropped (the output's event time is the left row's: one column
/// says so).
pub(crate) fn add_side(
    fields: &mut Vec<Field>,
    side: usize,
    schema: &SchemaRef,
    columns: impl IntoIterator<Item = usize>,
    padded: bool,
) -> Result<()> {
    let right = side == 1;
    for c in columns {
        let f = schema.field(c);
        if fields.iter().any(|x| x.name() == f.name()) {
            return Err(WeirError::plan(format!(
                "both join inputs have a column '{}'; rename one side's (select … AS …)",
                f.name()
            )));
        }
        let mut f = f.clone().with_nullable(f.is_nullable() || padded);
        if right && f.metadata().contains_key(EVENT_TIME_METADATA) {
            let mut metadata = f.metadata().clone();
            metadata.remove(EVENT_TIME_METADATA);
            f = f.with_metadata(metadata);
        }
        fields.push(f);
    }
    Ok(())
}
