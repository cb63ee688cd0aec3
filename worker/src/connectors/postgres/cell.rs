//! One value of a stream's row as a statement parameter, written in the binary form of whatever
//! type the table's column has (so an `Int64` field fills a `smallint`, `integer` or `bigint`
//! column alike, checked for range), with an error naming both types when it cannot be.

use std::error::Error;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800_000_000;
/// Days from the Unix epoch to PostgreSQL's.
const PG_EPOCH_DAYS: i32 = 10_957;

/// A value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    /// Microseconds since the Unix epoch.
    Timestamp(i64),
    /// Days since the Unix epoch.
    Date(i32),
}

/// Whether the sink can write fields of type `t`.
pub fn supported(t: &DataType) -> bool {
    use DataType::*;
    matches!(
        t,
        Int8 | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Float32
            | Float64
            | Boolean
            | Utf8
            | LargeUtf8
            | Utf8View
            | Date32
            | Timestamp(_, _)
            | Null
    )
}

/// Row `i` of `column`, or `None` for a type the sink does not write.
pub fn cell(column: &dyn Array, i: usize) -> Option<Cell> {
    if !supported(column.data_type()) {
        return None;
    }
    if column.is_null(i) {
        return Some(Cell::Null);
    }
    Some(match column.data_type() {
        DataType::Int8 => Cell::Int(column.as_primitive::<Int8Type>().value(i).into()),
        DataType::Int16 => Cell::Int(column.as_primitive::<Int16Type>().value(i).into()),
        DataType::Int32 => Cell::Int(column.as_primitive::<Int32Type>().value(i).into()),
        DataType::Int64 => Cell::Int(column.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => Cell::Int(column.as_primitive::<UInt8Type>().value(i).into()),
        DataType::UInt16 => Cell::Int(column.as_primitive::<UInt16Type>().value(i).into()),
        DataType::UInt32 => Cell::Int(column.as_primitive::<UInt32Type>().value(i).into()),
        DataType::UInt64 => match i64::try_from(column.as_primitive::<UInt64Type>().value(i)) {
            Ok(v) => Cell::Int(v),
            Err(_) => Cell::Text(column.as_primitive::<UInt64Type>().value(i).to_string()),
        },
        DataType::Float32 => Cell::Float(column.as_primitive::<Float32Type>().value(i).into()),
        DataType::Float64 => Cell::Float(column.as_primitive::<Float64Type>().value(i)),
        DataType::Boolean => Cell::Bool(column.as_boolean().value(i)),
        DataType::Utf8 => Cell::Text(column.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Cell::Text(column.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Cell::Text(column.as_string_view().value(i).to_string()),
        DataType::Date32 => Cell::Date(column.as_primitive::<Date32Type>().value(i)),
        DataType::Timestamp(unit, _) => Cell::Timestamp(match unit {
            TimeUnit::Second => column.as_primitive::<TimestampSecondType>().value(i) * 1_000_000,
            TimeUnit::Millisecond => column.as_primitive::<TimestampMillisecondType>().value(i) * 1_000,
            TimeUnit::Microsecond => column.as_primitive::<TimestampMicrosecondType>().value(i),
            TimeUnit::Nanosecond => column.as_primitive::<TimestampNanosecondType>().value(i) / 1_000,
        }),
        DataType::Null => Cell::Null,
        _ => return None,
    })
}

type BoxError = Box<dyn Error + Sync + Send>;

fn refuse(value: &Cell, ty: &Type) -> BoxError {
    format!("cannot write {value:?} into a column of type {ty}").into()
}

impl Cell {
    /// Its text, for `text`-like and JSON columns.
    fn text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Int(v) => v.to_string(),
            Cell::Float(v) => v.to_string(),
            Cell::Bool(v) => v.to_string(),
            Cell::Text(s) => s.clone(),
            // Arrow's conversions (chrono's calendar) print e.g. `2000-01-01 00:00:00.123`.
            Cell::Timestamp(us) => arrow::temporal_conversions::timestamp_us_to_datetime(*us)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            Cell::Date(d) => arrow::temporal_conversions::date32_to_datetime(*d)
                .map(|t| t.date().to_string())
                .unwrap_or_default(),
        }
    }
}

impl ToSql for Cell {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        if *self == Cell::Null {
            return Ok(IsNull::Yes);
        }
        let int = || match self {
            Cell::Int(v) => Ok(*v),
            Cell::Bool(b) => Ok(*b as i64),
            _ => Err(refuse(self, ty)),
        };
        match *ty {
            Type::BOOL => match self {
                Cell::Bool(b) => out.put_u8(*b as u8),
                _ => return Err(refuse(self, ty)),
            },
            Type::INT2 => {
                out.put_i16(i16::try_from(int()?).map_err(|_| format!("{self:?} is out of range for smallint"))?)
            }
            Type::INT4 => {
                out.put_i32(i32::try_from(int()?).map_err(|_| format!("{self:?} is out of range for integer"))?)
            }
            Type::INT8 => out.put_i64(int()?),
            Type::FLOAT4 | Type::FLOAT8 => {
                let v = match self {
                    Cell::Float(v) => *v,
                    Cell::Int(v) => *v as f64,
                    _ => return Err(refuse(self, ty)),
                };
                if *ty == Type::FLOAT4 {
                    out.put_f32(v as f32);
                } else {
                    out.put_f64(v);
                }
            }
            Type::TIMESTAMP | Type::TIMESTAMPTZ => match self {
                Cell::Timestamp(us) => out.put_i64(us - PG_EPOCH_US),
                _ => return Err(refuse(self, ty)),
            },
            Type::DATE => match self {
                Cell::Date(d) => out.put_i32(d - PG_EPOCH_DAYS),
                Cell::Timestamp(us) => out.put_i32(us.div_euclid(86_400_000_000) as i32 - PG_EPOCH_DAYS),
                _ => return Err(refuse(self, ty)),
            },
            Type::JSONB => {
                out.put_u8(1);
                out.put_slice(self.text().as_bytes());
            }
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::UNKNOWN => {
                out.put_slice(self.text().as_bytes())
            }
            _ => return Err(refuse(self, ty)),
        }
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        // Checked per value in `to_sql`, with the column's type in the message.
        true
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray, TimestampMillisecondArray};

    #[test]
    fn values_are_written_in_the_columns_types_and_refused_by_name_when_they_do_not_fit() {
        let ints = Int64Array::from(vec![Some(7), None, Some(1 << 40)]);
        assert_eq!(cell(&ints, 0), Some(Cell::Int(7)));
        assert_eq!(cell(&ints, 1), Some(Cell::Null));
        let mut out = BytesMut::new();
        Cell::Int(7).to_sql(&Type::INT4, &mut out).unwrap();
        assert_eq!(&out[..], &7i32.to_be_bytes());
        let err = Cell::Int(1 << 40).to_sql(&Type::INT4, &mut out).err().unwrap();
        assert!(err.to_string().contains("out of range for integer"), "{err}");
        let err = Cell::Text("x".into()).to_sql(&Type::INT8, &mut out).err().unwrap();
        assert!(err.to_string().contains("int8"), "{err}");

        let ts = TimestampMillisecondArray::from(vec![946_684_800_123]);
        let mut out = BytesMut::new();
        cell(&ts, 0).unwrap().to_sql(&Type::TIMESTAMP, &mut out).unwrap();
        assert_eq!(&out[..], &123_000i64.to_be_bytes());
        assert_eq!(cell(&ts, 0).unwrap().text(), "2000-01-01 00:00:00.123");
        assert_eq!(Cell::Date(19_723).text(), "2024-01-01");
        assert_eq!(Cell::Timestamp(-1).text(), "1969-12-31 23:59:59.999999");

        let s = StringArray::from(vec!["héllo"]);
        let mut out = BytesMut::new();
        cell(&s, 0).unwrap().to_sql(&Type::VARCHAR, &mut out).unwrap();
        assert_eq!(&out[..], "héllo".as_bytes());
        assert!(supported(&DataType::Utf8));
        assert!(!supported(&DataType::List(std::sync::Arc::new(
            arrow::datatypes::Field::new("x", DataType::Int64, true)
        ))));
    }
}
