//! Rows of a batch as compact byte strings, for state that keeps rows one by one (the interval
//! join's row log): a row is a null bitmap, then each non-null column's value — fixed-width
//! values as their bytes, strings and binaries as a LEB128 length and their bytes, booleans as
//! one byte. About a third smaller than Arrow's row format for Nexmark's rows (which stores
//! strings in blocks with continuation bytes, and a null byte per value, so that rows sort as
//! bytes — which state rows never need).
//!
//! Columns of other types (lists, structs, dictionaries…) make the codec fall back to Arrow's
//! row format for the whole row.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayData, ArrayRef, AsArray, BinaryViewBuilder, BooleanBufferBuilder, StringViewBuilder, make_array,
};
use arrow::buffer::{Buffer, NullBuffer};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::{RowConverter, SortField};

use crate::contract::UserResult;
use crate::contract::error::Result;

/// Rows [`RowCodec::decode`] reads before it makes room for the rest of a batch's bytes.
const SAMPLE: usize = 16;

/// How one column is stored.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A primitive of this many bytes.
    Fixed(usize),
    Bool,
    /// Utf8 / Binary (`i32` offsets), their `Large` forms (`i64`), or their views.
    Bytes {
        large: bool,
        view: bool,
        utf8: bool,
    },
}

/// Encodes a schema's rows compactly and decodes them back into columns.
pub struct RowCodec {
    form: Form,
}

enum Form {
    Compact {
        types: Vec<DataType>,
        kinds: Vec<Kind>,
    },
    /// A column the compact form does not know: Arrow's row format for every column.
    Arrow(RowConverter, Vec<DataType>),
}

/// A batch's rows, encoded: `row(i)` is row `i`'s bytes.
pub struct EncodedRows {
    data: Vec<u8>,
    offsets: Vec<usize>,
}

impl EncodedRows {
    /// Row `i`'s bytes.
    pub fn row(&self, i: usize) -> &[u8] {
        &self.data[self.offsets[i]..self.offsets[i + 1]]
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn kind(t: &DataType) -> Option<Kind> {
    let bytes = |large, view, utf8| Kind::Bytes { large, view, utf8 };
    Some(match t {
        DataType::Boolean => Kind::Bool,
        DataType::Utf8 => bytes(false, false, true),
        DataType::LargeUtf8 => bytes(true, false, true),
        DataType::Utf8View => bytes(false, true, true),
        DataType::Binary => bytes(false, false, false),
        DataType::LargeBinary => bytes(true, false, false),
        DataType::BinaryView => bytes(false, true, false),
        t if t.is_primitive() => Kind::Fixed(t.primitive_width()?),
        _ => return None,
    })
}

fn varint_len(mut n: usize) -> usize {
    let mut bytes = 1;
    while n >= 0x80 {
        n >>= 7;
        bytes += 1;
    }
    bytes
}

fn put_varint(out: &mut [u8], mut n: usize) -> usize {
    let mut at = 0;
    while n >= 0x80 {
        out[at] = (n as u8) | 0x80;
        n >>= 7;
        at += 1;
    }
    out[at] = n as u8;
    at + 1
}

/// Reads a row's fields in order, refusing to read past its end.
struct Reader<'a> {
    row: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> UserResult<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.row.len())
            .ok_or("a stored row ends early (its state is damaged, or was written by another version)")?;
        let bytes = &self.row[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn varint(&mut self) -> UserResult<usize> {
        let mut n = 0usize;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            n |= ((b & 0x7f) as usize) << shift;
            if b < 0x80 {
                return Ok(n);
            }
        }
        Err("a stored row has a malformed length".into())
    }
}

/// One column being decoded.
enum Builder {
    Fixed {
        width: usize,
        values: Vec<u8>,
    },
    Bool(BooleanBufferBuilder),
    Bytes {
        large: bool,
        offsets: Vec<i64>,
        values: Vec<u8>,
    },
    StringView(StringViewBuilder),
    BinaryView(BinaryViewBuilder),
}

impl RowCodec {
    /// A codec for rows of `schema`.
    pub fn new(schema: &SchemaRef) -> Result<Self> {
        let types: Vec<DataType> = schema.fields().iter().map(|f| f.data_type().clone()).collect();
        let kinds: Option<Vec<Kind>> = types.iter().map(kind).collect();
        let form = match kinds {
            Some(kinds) => Form::Compact { types, kinds },
            None => Form::Arrow(
                RowConverter::new(types.iter().cloned().map(SortField::new).collect())?,
                types,
            ),
        };
        Ok(RowCodec { form })
    }

    /// The rows of `columns` (the schema's columns, in order).
    pub fn encode(&self, columns: &[ArrayRef]) -> UserResult<EncodedRows> {
        let rows = columns.first().map_or(0, |c| c.len());
        let (types, kinds) = match &self.form {
            Form::Compact { types, kinds } => (types, kinds),
            Form::Arrow(converter, _) => {
                let converted = converter.convert_columns(columns)?;
                let mut data = Vec::new();
                let mut offsets = Vec::with_capacity(rows + 1);
                offsets.push(0);
                for row in converted.iter() {
                    data.extend_from_slice(row.as_ref());
                    offsets.push(data.len());
                }
                return Ok(EncodedRows { data, offsets });
            }
        };
        debug_assert_eq!(columns.len(), types.len());
        let bitmap = types.len().div_ceil(8);
        // Each row's length, then where each begins.
        let mut lens = vec![bitmap; rows];
        for (column, kind) in columns.iter().zip(kinds) {
            match kind {
                Kind::Fixed(w) => add_present(&mut lens, column, *w),
                Kind::Bool => add_present(&mut lens, column, 1),
                Kind::Bytes { .. } => {
                    for (i, len) in lens.iter_mut().enumerate() {
                        if column.is_valid(i) {
                            let n = value_bytes(column, *kind, i).len();
                            *len += varint_len(n) + n;
                        }
                    }
                }
            }
        }
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0usize);
        for len in &lens {
            offsets.push(offsets.last().expect("one") + len);
        }
        let mut data = vec![0u8; *offsets.last().expect("one")];
        let mut cursor: Vec<usize> = offsets[..rows].iter().map(|o| o + bitmap).collect();
        for (c, (column, kind)) in columns.iter().zip(kinds).enumerate() {
            let nulls = column.logical_nulls();
            // A fixed-width column's data: its value bytes start at its offset.
            let fixed = match kind {
                Kind::Fixed(w) => Some((column.to_data(), *w)),
                _ => None,
            };
            let fixed = fixed
                .as_ref()
                .map(|(d, w)| &d.buffers()[0].as_slice()[d.offset() * w..]);
            for i in 0..rows {
                if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                    data[offsets[i] + c / 8] |= 1 << (c % 8);
                    continue;
                }
                let at = cursor[i];
                cursor[i] += match kind {
                    Kind::Fixed(w) => {
                        let values = fixed.expect("a fixed-width column's values");
                        data[at..at + w].copy_from_slice(&values[i * w..(i + 1) * w]);
                        *w
                    }
                    Kind::Bool => {
                        data[at] = u8::from(column.as_boolean().value(i));
                        1
                    }
                    Kind::Bytes { .. } => {
                        let v = value_bytes(column, *kind, i);
                        let n = put_varint(&mut data[at..], v.len());
                        data[at + n..at + n + v.len()].copy_from_slice(v);
                        n + v.len()
                    }
                };
            }
        }
        Ok(EncodedRows { data, offsets })
    }

    /// A row of nulls in every column.
    pub fn null_row(&self) -> Result<Vec<u8>> {
        match &self.form {
            Form::Compact { types, .. } => {
                let mut row = vec![0u8; types.len().div_ceil(8)];
                for c in 0..types.len() {
                    row[c / 8] |= 1 << (c % 8);
                }
                Ok(row)
            }
            Form::Arrow(converter, types) => {
                let nulls: Vec<ArrayRef> = types.iter().map(|t| arrow::array::new_null_array(t, 1)).collect();
                Ok(converter.convert_columns(&nulls)?.row(0).as_ref().to_vec())
            }
        }
    }

    /// The columns of `rows` (each encoded by this codec).
    pub fn decode<'a, I>(&self, rows: I) -> UserResult<Vec<ArrayRef>>
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: ExactSizeIterator,
    {
        let rows = rows.into_iter();
        let (types, kinds) = match &self.form {
            Form::Compact { types, kinds } => (types, kinds),
            Form::Arrow(converter, _) => {
                let parser = converter.parser();
                let parsed: Vec<arrow::row::Row<'_>> = rows.map(|r| parser.parse(r)).collect();
                return Ok(converter.convert_rows(parsed)?);
            }
        };
        let n = rows.len();
        let bitmap = types.len().div_ceil(8);
        let mut builders: Vec<Builder> = kinds
            .iter()
            .map(|k| match *k {
                Kind::Fixed(width) => Builder::Fixed {
                    width,
                    values: Vec::with_capacity(n * width),
                },
                Kind::Bool => Builder::Bool(BooleanBufferBuilder::new(n)),
                Kind::Bytes {
                    view: true, utf8: true, ..
                } => Builder::StringView(StringViewBuilder::with_capacity(n)),
                Kind::Bytes { view: true, .. } => Builder::BinaryView(BinaryViewBuilder::with_capacity(n)),
                Kind::Bytes { large, .. } => {
                    let mut offsets = Vec::with_capacity(n + 1);
                    offsets.push(0);
                    Builder::Bytes {
                        large,
                        offsets,
                        values: Vec::new(),
                    }
                }
            })
            .collect();
        let mut valid: Vec<BooleanBufferBuilder> = kinds.iter().map(|_| BooleanBufferBuilder::new(n)).collect();
        for (i, row) in rows.enumerate() {
            // The bytes of the first rows foretell the rest: room for them all at once, not
            // grown by doubling (each time a copy).
            if i == SAMPLE && n > 2 * SAMPLE {
                for builder in &mut builders {
                    if let Builder::Bytes { values, .. } = builder {
                        values.reserve(values.len() / SAMPLE * (n - SAMPLE) * 9 / 8);
                    }
                }
            }
            let mut r = Reader { row, at: 0 };
            let nulls = r.take(bitmap)?;
            for (c, builder) in builders.iter_mut().enumerate() {
                let null = nulls[c / 8] & (1 << (c % 8)) != 0;
                valid[c].append(!null);
                match builder {
                    Builder::Fixed { width, values } => {
                        if null {
                            values.resize(values.len() + *width, 0);
                        } else {
                            values.extend_from_slice(r.take(*width)?);
                        }
                    }
                    Builder::Bool(b) => b.append(!null && r.take(1)?[0] != 0),
                    Builder::Bytes { offsets, values, .. } => {
                        if !null {
                            let len = r.varint()?;
                            values.extend_from_slice(r.take(len)?);
                        }
                        offsets.push(values.len() as i64);
                    }
                    Builder::StringView(b) => {
                        if null {
                            b.append_null();
                        } else {
                            let len = r.varint()?;
                            let s = std::str::from_utf8(r.take(len)?).map_err(|_| "a stored string is not UTF-8")?;
                            b.append_value(s);
                        }
                    }
                    Builder::BinaryView(b) => {
                        if null {
                            b.append_null();
                        } else {
                            let len = r.varint()?;
                            b.append_value(r.take(len)?);
                        }
                    }
                }
            }
        }
        let mut columns = Vec::with_capacity(types.len());
        for ((builder, mut valid), t) in builders.into_iter().zip(valid).zip(types) {
            let nulls = NullBuffer::new(valid.finish());
            let nulls = (nulls.null_count() > 0).then_some(nulls);
            let column: ArrayRef = match builder {
                Builder::Fixed { values, .. } => make_array(
                    ArrayData::builder(t.clone())
                        .len(n)
                        .add_buffer(Buffer::from_vec(values))
                        .nulls(nulls)
                        .build()?,
                ),
                Builder::Bool(mut b) => make_array(
                    ArrayData::builder(DataType::Boolean)
                        .len(n)
                        .add_buffer(b.finish().into_inner())
                        .nulls(nulls)
                        .build()?,
                ),
                Builder::Bytes { large, offsets, values } => {
                    let offsets = if large {
                        Buffer::from_vec(offsets)
                    } else {
                        let narrow: Vec<i32> = offsets
                            .iter()
                            .map(|o| i32::try_from(*o).map_err(|_| "stored strings exceed 2 GiB in one batch"))
                            .collect::<std::result::Result<_, _>>()?;
                        Buffer::from_vec(narrow)
                    };
                    // Validated (UTF-8 included) by `build`: stored rows may come from a checkpoint.
                    make_array(
                        ArrayData::builder(t.clone())
                            .len(n)
                            .add_buffer(offsets)
                            .add_buffer(Buffer::from_vec(values))
                            .nulls(nulls)
                            .build()?,
                    )
                }
                Builder::StringView(mut b) => Arc::new(b.finish()),
                Builder::BinaryView(mut b) => Arc::new(b.finish()),
            };
            columns.push(column);
        }
        Ok(columns)
    }
}

/// Adds `width` to the length of each row where `column` is not null.
fn add_present(lens: &mut [usize], column: &ArrayRef, width: usize) {
    match column.logical_nulls() {
        None => lens.iter_mut().for_each(|l| *l += width),
        Some(nulls) => {
            for (i, l) in lens.iter_mut().enumerate() {
                if nulls.is_valid(i) {
                    *l += width;
                }
            }
        }
    }
}

/// The bytes of a string or binary column's value `i`.
fn value_bytes(column: &ArrayRef, kind: Kind, i: usize) -> &[u8] {
    match kind {
        Kind::Bytes {
            view: true, utf8: true, ..
        } => column.as_string_view().value(i).as_bytes(),
        Kind::Bytes { view: true, .. } => column.as_binary_view().value(i),
        Kind::Bytes {
            large: true,
            utf8: true,
            ..
        } => column.as_string::<i64>().value(i).as_bytes(),
        Kind::Bytes { large: true, .. } => column.as_binary::<i64>().value(i),
        Kind::Bytes { utf8: true, .. } => column.as_string::<i32>().value(i).as_bytes(),
        _ => column.as_binary::<i32>().value(i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        BooleanArray, Int32Array, Int64Array, LargeStringArray, ListArray, RecordBatch, StringArray, StringViewArray,
        TimestampMillisecondArray,
    };
    use arrow::datatypes::{Field, Int32Type, Schema, TimeUnit};

    fn round_trip(batch: &RecordBatch) -> Vec<ArrayRef> {
        let codec = RowCodec::new(&batch.schema()).unwrap();
        let rows = codec.encode(batch.columns()).unwrap();
        assert_eq!(rows.len(), batch.num_rows());
        // Out of order and repeated, as a join gathers them.
        let picked: Vec<&[u8]> = (0..rows.len()).rev().chain(0..1).map(|i| rows.row(i)).collect();
        let columns = codec.decode(picked).unwrap();
        let order: Vec<u32> = (0..rows.len() as u32).rev().chain(0..1).collect();
        let order = arrow::array::UInt32Array::from(order);
        for (got, want) in columns.iter().zip(batch.columns()) {
            let want = arrow::compute::take(want.as_ref(), &order, None).unwrap();
            assert_eq!(got.as_ref(), want.as_ref());
        }
        columns
    }

    #[test]
    fn rows_of_every_supported_type_with_nulls_come_back_as_they_went_in() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Boolean, true),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new("l", DataType::LargeUtf8, true),
            Field::new("v", DataType::Utf8View, true),
            Field::new("x", DataType::Int32, true),
            Field::new("y", DataType::Int32, false),
            Field::new("z", DataType::Int32, false),
        ]));
        let long = "x".repeat(300);
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None, Some(-7)])),
                Arc::new(StringArray::from(vec![Some(""), Some(long.as_str()), None])),
                Arc::new(BooleanArray::from(vec![None, Some(true), Some(false)])),
                Arc::new(TimestampMillisecondArray::from(vec![Some(5), Some(6), None]).with_timezone("UTC")),
                Arc::new(LargeStringArray::from(vec![None, Some("l"), Some("ll")])),
                Arc::new(StringViewArray::from(vec![
                    Some("a view longer than twelve"),
                    None,
                    Some("v"),
                ])),
                Arc::new(Int32Array::from(vec![None, None, None])),
                Arc::new(Int32Array::from(vec![1, 2, 3])),
                Arc::new(Int32Array::from(vec![4, 5, 6])),
            ],
        )
        .unwrap();
        round_trip(&batch);
        // A slice reads from its offset.
        round_trip(&batch.slice(1, 2));
    }

    #[test]
    fn the_compact_form_is_smaller_than_arrows_row_format_for_a_bid() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("auction", DataType::Int64, false),
            Field::new("price", DataType::Int64, false),
            Field::new("extra", DataType::Utf8, false),
        ]));
        let extra = "e".repeat(68);
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1])),
                Arc::new(Int64Array::from(vec![2])),
                Arc::new(StringArray::from(vec![extra.as_str()])),
            ],
        )
        .unwrap();
        let compact = RowCodec::new(&schema).unwrap().encode(batch.columns()).unwrap();
        let arrow = RowConverter::new(
            schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )
        .unwrap()
        .convert_columns(batch.columns())
        .unwrap();
        assert_eq!(compact.row(0).len(), 1 + 8 + 8 + 1 + 68);
        assert!(arrow.row(0).as_ref().len() > compact.row(0).len() + 30);
    }

    #[test]
    fn a_null_row_decodes_to_nulls_and_damaged_rows_are_refused() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let codec = RowCodec::new(&schema).unwrap();
        let nulls = codec.null_row().unwrap();
        let columns = codec.decode([nulls.as_slice()]).unwrap();
        assert!(columns.iter().all(|c| c.is_null(0)));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1])),
                Arc::new(StringArray::from(vec!["abc"])),
            ],
        )
        .unwrap();
        let rows = codec.encode(batch.columns()).unwrap();
        let row = rows.row(0);
        let err = codec.decode([&row[..row.len() - 1]]).unwrap_err();
        assert!(err.to_string().contains("ends early"), "{err}");
        let mut bad = row.to_vec();
        *bad.last_mut().unwrap() = 0xff;
        assert!(codec.decode([bad.as_slice()]).is_err(), "not UTF-8");
    }

    #[test]
    fn other_types_fall_back_to_arrows_row_format() {
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1), None]), None]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("l", list.data_type().clone(), true),
            Field::new("i", DataType::Int32, false),
        ]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(list), Arc::new(Int32Array::from(vec![1, 2]))]).unwrap();
        round_trip(&batch);
    }
}
