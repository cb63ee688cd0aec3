//! Rows for record-at-a-time user functions (`map`, `filter`, `flat_map`).
//!
//! Data flows as Arrow batches; these types give a user closure one row at a time
//! ([`RowRef`], a view into a batch) and collect what it returns ([`Row`], owned values) back
//! into a batch of the declared output schema.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMillisecondBuilder, UInt64Builder,
};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, SchemaRef, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow::record_batch::RecordBatch;

use crate::contract::UserResult;

/// One value of a row.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Boolean.
    Bool(bool),
    /// Any signed integer.
    Int(i64),
    /// Any unsigned integer.
    UInt(u64),
    /// Any float.
    Float(f64),
    /// Text.
    Str(String),
    /// Timestamp, milliseconds since the epoch.
    Timestamp(i64),
}

impl Value {
    /// As an i64, if it is a number or timestamp.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) | Value::Timestamp(v) => Some(*v),
            Value::UInt(v) => i64::try_from(*v).ok(),
            Value::Float(v) => Some(*v as i64),
            _ => None,
        }
    }

    /// As an f64, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(v) | Value::Timestamp(v) => Some(*v as f64),
            Value::UInt(v) => Some(*v as f64),
            Value::Float(v) => Some(*v),
            _ => None,
        }
    }

    /// As text, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// An owned row: values in the order of the output schema's fields.
pub type Row = Vec<Value>;

/// A view of row `index` of a batch.
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    batch: &'a RecordBatch,
    index: usize,
}

impl<'a> RowRef<'a> {
    /// A view of one row.
    pub fn new(batch: &'a RecordBatch, index: usize) -> Self {
        RowRef { batch, index }
    }

    /// The schema of the row.
    pub fn schema(&self) -> SchemaRef {
        self.batch.schema()
    }

    /// The value of field `name` (Null when there is no such field).
    pub fn get(&self, name: &str) -> Value {
        match self.batch.schema_ref().index_of(name) {
            Ok(i) => self.value(i),
            Err(_) => Value::Null,
        }
    }

    /// Field `name` as an i64 (read in place for integer columns: no `Value` built).
    pub fn get_i64(&self, name: &str) -> Option<i64> {
        let i = self.batch.schema_ref().index_of(name).ok()?;
        let c = self.batch.column(i);
        match c.data_type() {
            DataType::Int64 if c.is_valid(self.index) => Some(c.as_primitive::<Int64Type>().value(self.index)),
            DataType::Int64 => None,
            _ => self.value(i).as_i64(),
        }
    }

    /// Field `name` as an f64.
    pub fn get_f64(&self, name: &str) -> Option<f64> {
        self.get(name).as_f64()
    }

    /// Field `name` as text.
    pub fn get_str(&self, name: &str) -> Option<&'a str> {
        let i = self.batch.schema_ref().index_of(name).ok()?;
        let c = self.batch.column(i);
        if c.is_null(self.index) {
            return None;
        }
        match c.data_type() {
            DataType::Utf8 => Some(c.as_string::<i32>().value(self.index)),
            DataType::LargeUtf8 => Some(c.as_string::<i64>().value(self.index)),
            DataType::Utf8View => Some(c.as_string_view().value(self.index)),
            _ => None,
        }
    }

    /// The value of column `i`.
    pub fn value(&self, i: usize) -> Value {
        value_at(self.batch.column(i), self.index)
    }

    /// All values, in schema order.
    pub fn to_row(&self) -> Row {
        (0..self.batch.num_columns()).map(|i| self.value(i)).collect()
    }
}

/// The value at `row` of `column` (nested and exotic types become their text form).
pub fn value_at(column: &ArrayRef, row: usize) -> Value {
    if column.is_null(row) {
        return Value::Null;
    }
    match column.data_type() {
        DataType::Boolean => Value::Bool(column.as_boolean().value(row)),
        DataType::Int8 => Value::Int(column.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => Value::Int(column.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => Value::Int(column.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => Value::Int(column.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Value::UInt(column.as_primitive::<UInt8Type>().value(row).into()),
        DataType::UInt16 => Value::UInt(column.as_primitive::<UInt16Type>().value(row).into()),
        DataType::UInt32 => Value::UInt(column.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt64 => Value::UInt(column.as_primitive::<UInt64Type>().value(row)),
        DataType::Float32 => Value::Float(column.as_primitive::<Float32Type>().value(row).into()),
        DataType::Float64 => Value::Float(column.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::Str(column.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Value::Str(column.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Value::Str(column.as_string_view().value(row).to_string()),
        DataType::Timestamp(unit, _) => Value::Timestamp(match unit {
            TimeUnit::Second => column.as_primitive::<TimestampSecondType>().value(row) * 1000,
            TimeUnit::Millisecond => column.as_primitive::<TimestampMillisecondType>().value(row),
            TimeUnit::Microsecond => column.as_primitive::<TimestampMicrosecondType>().value(row) / 1000,
            TimeUnit::Nanosecond => column.as_primitive::<TimestampNanosecondType>().value(row) / 1_000_000,
        }),
        _ => Value::Str(arrow::util::display::array_value_to_string(column, row).unwrap_or_else(|e| format!("<{e}>"))),
    }
}

/// Builds a batch of `schema` from rows. Supported output types: Boolean, Int32, Int64, UInt64,
/// Float32, Float64, Utf8 and Timestamp(ms). A value of the wrong type is an error naming the
/// field.
pub fn rows_to_batch(schema: &SchemaRef, rows: &[Row]) -> UserResult<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let name = field.name();
        let bad = |v: &Value| -> crate::contract::UserError {
            format!("field '{name}' is {}, but a row has {v:?}", field.data_type()).into()
        };
        macro_rules! build {
            ($builder:expr, $conv:expr) => {{
                let mut b = $builder;
                for row in rows {
                    match row.get(i).unwrap_or(&Value::Null) {
                        Value::Null => b.append_null(),
                        v => b.append_value($conv(v).ok_or_else(|| bad(v))?),
                    }
                }
                Arc::new(b.finish()) as ArrayRef
            }};
        }
        let col = match field.data_type() {
            DataType::Boolean => build!(BooleanBuilder::new(), |v: &Value| match v {
                Value::Bool(b) => Some(*b),
                _ => None,
            }),
            DataType::Int32 => build!(Int32Builder::new(), |v: &Value| v
                .as_i64()
                .and_then(|x| i32::try_from(x).ok())),
            DataType::Int64 => build!(Int64Builder::new(), |v: &Value| match v {
                Value::Float(_) => None,
                v => v.as_i64(),
            }),
            DataType::UInt64 => build!(UInt64Builder::new(), |v: &Value| match v {
                Value::UInt(x) => Some(*x),
                Value::Int(x) => u64::try_from(*x).ok(),
                _ => None,
            }),
            DataType::Float32 => build!(Float32Builder::new(), |v: &Value| v.as_f64().map(|x| x as f32)),
            DataType::Float64 => build!(Float64Builder::new(), |v: &Value| v.as_f64()),
            DataType::Utf8 => build!(StringBuilder::new(), |v: &Value| v.as_str().map(str::to_string)),
            DataType::Timestamp(TimeUnit::Millisecond, tz) => {
                let b = TimestampMillisecondBuilder::new().with_timezone_opt(tz.clone());
                build!(b, |v: &Value| match v {
                    Value::Timestamp(t) | Value::Int(t) => Some(*t),
                    _ => None,
                })
            }
            other => {
                return Err(format!("field '{name}': output type {other} is not supported by row functions").into());
            }
        };
        columns.push(col);
    }
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows.len())),
    )?)
}
