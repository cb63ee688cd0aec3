//! Keys and key groups: the formulas that must never change once a job has state.
//!
//! **Canonical key encoding.** The key of a row is the values of its key columns, in the order
//! given to `key_by`. Each value is appended to a byte buffer as a one-byte type tag followed
//! by the value:
//!
//! | value | tag | bytes |
//! | --- | --- | --- |
//! | null | `0x00` | none |
//! | signed integer (any width), date, time, timestamp, duration | `0x01` | `i64` little-endian |
//! | unsigned integer (any width) | `0x02` | `u64` little-endian |
//! | float (any width) | `0x03` | `f64` bits little-endian; `-0.0` is `0.0`, every NaN is `f64::NAN` |
//! | boolean | `0x04` | `0x00` or `0x01` |
//! | string | `0x05` | `u32` little-endian byte length, then UTF-8 bytes |
//! | binary | `0x06` | `u32` little-endian length, then the bytes |
//!
//! So `5i32` and `5i64` are the same key, and the encoding depends on no library's layout.
//! **Hash**: `xxh3_64` (seed 0) of those bytes. **Key group**: `hash mod max_parallelism`.
//! **Ranges** (Flink's): subtask `i` of `p` owns key groups `ceil(i*max/p) ..= ceil((i+1)*max/p)-1`;
//! the owner of group `kg` is `kg * p / max`.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType,
    DurationSecondType, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use xxhash_rust::xxh3::xxh3_64;

use crate::contract::error::{Result, WeirError};

/// Default number of key groups.
pub const DEFAULT_MAX_PARALLELISM: u32 = 128;
/// Upper bound of `max_parallelism` (Flink's).
pub const MAX_MAX_PARALLELISM: u32 = 32768;

/// The key group of a key hash.
pub fn key_group_of_hash(hash: u64, max_parallelism: u32) -> u32 {
    (hash % u64::from(max_parallelism)) as u32
}

/// The key group of every row whose key is `columns` (the partitioner's hash): operators store it
/// with their state so snapshots group by key group without hashing again.
pub fn key_groups(columns: &[ArrayRef], num_rows: usize, max_parallelism: u32) -> Result<Vec<u32>> {
    Ok(hash_rows(columns, num_rows)?
        .into_iter()
        .map(|h| key_group_of_hash(h, max_parallelism))
        .collect())
}

/// The subtask (of `parallelism`) that owns key group `kg`.
pub fn operator_index_for_key_group(kg: u32, max_parallelism: u32, parallelism: u32) -> u32 {
    (u64::from(kg) * u64::from(parallelism) / u64::from(max_parallelism)) as u32
}

/// The inclusive range of key groups that subtask `index` of `parallelism` owns.
pub fn key_group_range(index: u32, max_parallelism: u32, parallelism: u32) -> (u32, u32) {
    let (i, m, p) = (u64::from(index), u64::from(max_parallelism), u64::from(parallelism));
    let start = (i * m).div_ceil(p);
    let end = ((i + 1) * m).div_ceil(p) - 1;
    (start as u32, end as u32)
}

/// Hash of an already encoded key.
pub fn hash_key_bytes(bytes: &[u8]) -> u64 {
    xxh3_64(bytes)
}

/// The rows among `rows` that are each key's last, in order: the key of a row is `columns`
/// at that row in the canonical encoding (what `key_by` hashes). What an upsert sink writes
/// when only a key's final change in a batch matters.
pub fn last_row_per_key(columns: &[&ArrayRef], rows: usize) -> Result<Vec<usize>> {
    let mut seen = std::collections::HashSet::with_capacity(rows);
    let mut last = Vec::new();
    for i in (0..rows).rev() {
        let mut key = Vec::new();
        for c in columns {
            encode_value(c, i, &mut key)?;
        }
        if seen.insert(key) {
            last.push(i);
        }
    }
    last.reverse();
    Ok(last)
}

/// Appends the canonical encoding of `column[row]` to `buf`.
pub fn encode_value(column: &ArrayRef, row: usize, buf: &mut Vec<u8>) -> Result<()> {
    if column.is_null(row) {
        buf.push(0x00);
        return Ok(());
    }
    macro_rules! signed {
        ($t:ty) => {{
            buf.push(0x01);
            buf.extend_from_slice(&(column.as_primitive::<$t>().value(row) as i64).to_le_bytes());
        }};
    }
    macro_rules! unsigned {
        ($t:ty) => {{
            buf.push(0x02);
            buf.extend_from_slice(&(column.as_primitive::<$t>().value(row) as u64).to_le_bytes());
        }};
    }
    let float = |buf: &mut Vec<u8>, v: f64| {
        let v = if v == 0.0 {
            0.0
        } else if v.is_nan() {
            f64::NAN
        } else {
            v
        };
        buf.push(0x03);
        buf.extend_from_slice(&v.to_bits().to_le_bytes());
    };
    match column.data_type() {
        DataType::Int8 => signed!(Int8Type),
        DataType::Int16 => signed!(Int16Type),
        DataType::Int32 => signed!(Int32Type),
        DataType::Int64 => signed!(Int64Type),
        DataType::Date32 => signed!(Date32Type),
        DataType::Date64 => signed!(Date64Type),
        // Times and durations encode as their stored integer (what a cast to Int64 or Int32
        // gives), read in place: no per-row cast.
        DataType::Timestamp(TimeUnit::Second, _) => signed!(TimestampSecondType),
        DataType::Timestamp(TimeUnit::Millisecond, _) => signed!(TimestampMillisecondType),
        DataType::Timestamp(TimeUnit::Microsecond, _) => signed!(TimestampMicrosecondType),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => signed!(TimestampNanosecondType),
        DataType::Duration(TimeUnit::Second) => signed!(DurationSecondType),
        DataType::Duration(TimeUnit::Millisecond) => signed!(DurationMillisecondType),
        DataType::Duration(TimeUnit::Microsecond) => signed!(DurationMicrosecondType),
        DataType::Duration(TimeUnit::Nanosecond) => signed!(DurationNanosecondType),
        DataType::Time64(TimeUnit::Nanosecond) => signed!(Time64NanosecondType),
        DataType::Time64(_) => signed!(Time64MicrosecondType),
        DataType::Time32(TimeUnit::Second) => signed!(Time32SecondType),
        DataType::Time32(_) => signed!(Time32MillisecondType),
        DataType::UInt8 => unsigned!(UInt8Type),
        DataType::UInt16 => unsigned!(UInt16Type),
        DataType::UInt32 => unsigned!(UInt32Type),
        DataType::UInt64 => unsigned!(UInt64Type),
        DataType::Float16 => float(buf, column.as_primitive::<Float16Type>().value(row).to_f64()),
        DataType::Float32 => float(buf, f64::from(column.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => float(buf, column.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => {
            buf.push(0x04);
            buf.push(u8::from(column.as_boolean().value(row)));
        }
        DataType::Utf8 => string(buf, column.as_string::<i32>().value(row).as_bytes(), 0x05),
        DataType::LargeUtf8 => string(buf, column.as_string::<i64>().value(row).as_bytes(), 0x05),
        DataType::Utf8View => string(buf, column.as_string_view().value(row).as_bytes(), 0x05),
        DataType::Binary => string(buf, column.as_binary::<i32>().value(row), 0x06),
        DataType::LargeBinary => string(buf, column.as_binary::<i64>().value(row), 0x06),
        other => {
            return Err(WeirError::plan(format!(
                "cannot use a column of type {other} as a key (use integers, floats, booleans, strings, binary or times)"
            )));
        }
    }
    Ok(())
}

fn string(buf: &mut Vec<u8>, bytes: &[u8], tag: u8) {
    buf.push(tag);
    buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// Whether a column type can be a key.
pub fn is_key_type(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Boolean
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::Date32
            | DataType::Date64
            | DataType::Timestamp(_, _)
            | DataType::Duration(_)
            | DataType::Time32(_)
            | DataType::Time64(_)
    )
}

/// Hashes of the keys of every row (columns are the key columns, in key order).
pub fn hash_rows(columns: &[ArrayRef], num_rows: usize) -> Result<Vec<u64>> {
    let mut out = Vec::with_capacity(num_rows);
    // Fast path: one 64-bit integer column (Int64, or a time stored as one) without nulls,
    // the most common key.
    let wide = |t: &DataType| {
        matches!(
            t,
            DataType::Int64 | DataType::Date64 | DataType::Timestamp(..) | DataType::Duration(_) | DataType::Time64(_)
        )
    };
    if let [c] = columns
        && wide(c.data_type())
        && c.null_count() == 0
    {
        let data = c.to_data();
        let values = &data.buffers()[0].typed_data::<i64>()[data.offset()..data.offset() + data.len()];
        let mut buf = [0u8; 9];
        buf[0] = 0x01;
        for v in values {
            buf[1..].copy_from_slice(&v.to_le_bytes());
            out.push(xxh3_64(&buf));
        }
        return Ok(out);
    }
    let mut buf = Vec::with_capacity(64);
    for row in 0..num_rows {
        buf.clear();
        for c in columns {
            encode_value(c, row, &mut buf)?;
        }
        out.push(xxh3_64(&buf));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, Int64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn each_keys_last_row_is_kept_in_order() {
        let a: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 1, 3, 2, 1]));
        let b: ArrayRef = Arc::new(StringArray::from(vec!["x", "x", "y", "x", "x", "x"]));
        assert_eq!(last_row_per_key(&[&a], 6).unwrap(), [3, 4, 5]);
        assert_eq!(last_row_per_key(&[&a, &b], 6).unwrap(), [2, 3, 4, 5]);
        assert_eq!(last_row_per_key(&[&a], 0).unwrap(), Vec::<usize>::new());
    }

    #[test]
    fn ranges_cover_all_groups_and_match_owner_formula() {
        for max in [1u32, 7, 128, 1000, 32768] {
            for p in 1..=max.min(40) {
                let mut next = 0;
                for i in 0..p {
                    let (s, e) = key_group_range(i, max, p);
                    assert_eq!(s, next, "max {max} p {p} i {i}");
                    for kg in [s, e] {
                        assert_eq!(operator_index_for_key_group(kg, max, p), i);
                    }
                    next = e + 1;
                }
                assert_eq!(next, max);
            }
        }
    }

    #[test]
    fn integer_widths_hash_alike_and_fast_path_matches() {
        let a: ArrayRef = Arc::new(Int32Array::from(vec![5, -1, 1 << 20]));
        let b: ArrayRef = Arc::new(Int64Array::from(vec![5, -1, 1 << 20]));
        let ha = hash_rows(&[a], 3).unwrap();
        let hb = hash_rows(&[b], 3).unwrap();
        assert_eq!(ha, hb);
    }

    #[test]
    fn times_and_durations_hash_as_their_stored_integers() {
        use arrow::array::{DurationSecondArray, Time32MillisecondArray, TimestampMillisecondArray};
        let values = vec![0i64, -7, 1_700_000_000_000];
        let ints: ArrayRef = Arc::new(Int64Array::from(values.clone()));
        let expected = hash_rows(&[ints], 3).unwrap();
        let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from(values.clone()).with_timezone("UTC"));
        let dur: ArrayRef = Arc::new(DurationSecondArray::from(values));
        assert_eq!(
            hash_rows(&[ts.slice(1, 2)], 2).unwrap(),
            expected[1..],
            "a slice reads its own rows"
        );
        assert_eq!(hash_rows(&[ts], 3).unwrap(), expected);
        assert_eq!(hash_rows(&[dur], 3).unwrap(), expected);
        let t32: ArrayRef = Arc::new(Time32MillisecondArray::from(vec![0, -7, 86_399_999]));
        let i32s: ArrayRef = Arc::new(Int32Array::from(vec![0, -7, 86_399_999]));
        assert_eq!(hash_rows(&[t32], 3).unwrap(), hash_rows(&[i32s], 3).unwrap());
    }

    const PINNED_AB: u64 = 16753793908218020872;

    #[test]
    fn encoding_is_documented_bytes() {
        let s: ArrayRef = Arc::new(StringArray::from(vec!["ab"]));
        let mut buf = vec![];
        encode_value(&s, 0, &mut buf).unwrap();
        assert_eq!(buf, vec![0x05, 2, 0, 0, 0, b'a', b'b']);
        // Pinned: if these change, the state of every job lands in other key groups.
        assert_eq!(hash_key_bytes(&buf), PINNED_AB);
        let i: ArrayRef = Arc::new(Int64Array::from(vec![42]));
        assert_eq!(hash_rows(&[i], 1).unwrap()[0], 4435642637180117100);
        assert_eq!(key_group_of_hash(4435642637180117100, 128), 108);
    }
}
