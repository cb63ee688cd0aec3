//! Rows of a batch as compact byte strings, for state that keeps rows one by one (the interval
//! join's row log): a row is a null bitmap, then each non-null column's value — integers of 2 to
//! 8 bytes (timestamps, dates and durations included) as LEB128 varints (signed ones zigzagged),
//! other fixed-width values as their bytes, strings and binaries as a LEB128 length and their
//! bytes, booleans as one byte. Less than half of Arrow's row format for Nexmark's rows (which
//! stores strings in blocks with continuation bytes, and a null byte per value, so that rows sort
//! as bytes — which state rows never need): a bid's four integers take about 14 bytes, not 32.
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

use super::leb128;
use crate::contract::UserResult;
use crate::contract::error::Result;

/// Rows [`RowCodec::decode`] reads before it makes room for the rest of a batch's bytes.
const SAMPLE: usize = 16;

/// How one column is stored.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A primitive of this many bytes, stored as they are (floats, decimals, intervals, bytes).
    Fixed(usize),
    /// An integer of this many bytes (2, 4 or 8), stored as a varint; signed ones zigzagged so
    /// that small negatives stay short.
    Int {
        width: usize,
        signed: bool,
    },
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
        DataType::Int16 => Kind::Int { width: 2, signed: true },
        DataType::UInt16 => Kind::Int {
            width: 2,
            signed: false,
        },
        DataType::Int32 | DataType::Date32 | DataType::Time32(_) => Kind::Int { width: 4, signed: true },
        DataType::UInt32 => Kind::Int {
            width: 4,
            signed: false,
        },
        DataType::Int64 | DataType::Date64 | DataType::Time64(_) | DataType::Timestamp(..) | DataType::Duration(_) => {
            Kind::Int { width: 8, signed: true }
        }
        DataType::UInt64 => Kind::Int {
            width: 8,
            signed: false,
        },
        t if t.is_primitive() => Kind::Fixed(t.primitive_width()?),
        _ => return None,
    })
}

/// An integer's little-endian bytes as the varint's number (signed ones zigzagged).
fn int_to_varint(bytes: &[u8], signed: bool) -> u64 {
    let mut raw = [0u8; 8];
    raw[..bytes.len()].copy_from_slice(bytes);
    let n = u64::from_le_bytes(raw);
    if !signed {
        return n;
    }
    // Sign-extend from the value's width, then zigzag.
    let shift = 64 - 8 * bytes.len() as u32;
    leb128::zigzag(((n << shift) as i64) >> shift)
}

/// The varint's number back as an integer of `width` little-endian bytes, or `None` when it does
/// not fit (damaged state).
fn varint_to_int(n: u64, width: usize, signed: bool) -> Option<[u8; 8]> {
    let bits = 8 * width as u32;
    if signed {
        let v = leb128::unzigzag(n);
        let fits = bits == 64 || (-(1i64 << (bits - 1))..(1i64 << (bits - 1))).contains(&v);
        fits.then(|| v.to_le_bytes())
    } else {
        (bits == 64 || n < (1u64 << bits)).then(|| n.to_le_bytes())
    }
}

/// Reads a row's fields in order, refusing to read past its end.
struct Reader<'a> {
    row: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    #[inline]
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

    #[inline]
    fn varint(&mut self) -> UserResult<usize> {
        usize::try_from(self.varint64()?).map_err(|_| "a stored row has a malformed length".into())
    }

    #[inline]
    fn varint64(&mut self) -> UserResult<u64> {
        leb128::read_checked(self.row, &mut self.at)
            .ok_or_else(|| "a stored row ends early or has a malformed varint (its state is damaged)".into())
    }
}

/// One column being decoded.
enum Builder {
    Fixed {
        width: usize,
        values: Vec<u8>,
    },
    Int {
        width: usize,
        signed: bool,
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
        let datas: Vec<ArrayData> = columns.iter().map(|c| c.to_data()).collect();
        let views: Vec<Column<'_>> = columns
            .iter()
            .zip(&datas)
            .zip(kinds)
            .map(|((column, data), kind)| Column::new(column, data, *kind))
            .collect();
        let nulls: Vec<Option<NullBuffer>> = columns.iter().map(|c| c.logical_nulls()).collect();
        // Room for every row at once: a bound from the columns' buffers (varints are never
        // longer than the value's bytes plus one).
        let room = rows * bitmap + views.iter().map(|v| v.room(rows)).sum::<usize>();
        // Written at a cursor into zeroed room (null bitmaps start clear), cut to size after.
        let mut data = vec![0u8; room];
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0usize);
        let mut at = 0;
        // Row by row, so each row is written once, in order.
        for i in 0..rows {
            let head = at;
            at += bitmap;
            for (c, (view, nulls)) in views.iter().zip(&nulls).enumerate() {
                if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                    data[head + c / 8] |= 1 << (c % 8);
                    continue;
                }
                at += view.write(i, &mut data[at..]);
            }
            offsets.push(at);
        }
        data.truncate(at);
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
                Kind::Int { width, signed } => Builder::Int {
                    width,
                    signed,
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
                    Builder::Int { width, signed, values } => {
                        if null {
                            values.resize(values.len() + *width, 0);
                        } else {
                            let bytes = varint_to_int(r.varint64()?, *width, *signed)
                                .ok_or("a stored integer does not fit its column (damaged state)")?;
                            values.extend_from_slice(&bytes[..*width]);
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
                Builder::Fixed { values, .. } | Builder::Int { values, .. } => make_array(
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

/// One column of a batch being encoded, its values reachable without dynamic dispatch.
enum Column<'a> {
    /// Fixed-width values from the column's offset on.
    Fixed {
        values: &'a [u8],
        width: usize,
    },
    Int {
        values: &'a [u8],
        width: usize,
        signed: bool,
    },
    Bool(&'a arrow::array::BooleanArray),
    /// Utf8 / Binary: offsets and values.
    Bytes {
        offsets: &'a [i32],
        values: &'a [u8],
    },
    LargeBytes {
        offsets: &'a [i64],
        values: &'a [u8],
    },
    /// Views, read through the array.
    Views(&'a ArrayRef, Kind),
}

impl<'a> Column<'a> {
    fn new(column: &'a ArrayRef, data: &'a ArrayData, kind: Kind) -> Self {
        let from_offset = |width: usize| &data.buffers()[0].as_slice()[data.offset() * width..];
        match kind {
            Kind::Fixed(width) => Column::Fixed {
                values: from_offset(width),
                width,
            },
            Kind::Int { width, signed } => Column::Int {
                values: from_offset(width),
                width,
                signed,
            },
            Kind::Bool => Column::Bool(column.as_boolean()),
            Kind::Bytes { view: true, .. } => Column::Views(column, kind),
            Kind::Bytes { large: true, .. } => Column::LargeBytes {
                offsets: data.buffer::<i64>(0),
                values: data.buffers()[1].as_slice(),
            },
            Kind::Bytes { .. } => Column::Bytes {
                offsets: data.buffer::<i32>(0),
                values: data.buffers()[1].as_slice(),
            },
        }
    }

    /// At most how many bytes the first `rows` rows of this column take (the room
    /// [`RowCodec::encode`] writes them into: never less than they need).
    fn room(&self, rows: usize) -> usize {
        // A length's varint: 5 bytes hold any length below 32 GiB.
        const LEN: usize = 5;
        match self {
            Column::Fixed { width, .. } => rows * width,
            // An 8-byte integer takes up to 10 bytes, a 4-byte one 5, a 2-byte one 3.
            Column::Int { width, .. } => rows * (width + 2),
            Column::Bool(_) => rows,
            Column::Bytes { offsets, .. } => (offsets[rows] - offsets[0]) as usize + rows * LEN,
            Column::LargeBytes { offsets, .. } => (offsets[rows] - offsets[0]) as usize + rows * LEN,
            Column::Views(column, kind) => (0..rows).map(|i| value_bytes(column, *kind, i).len() + LEN).sum(),
        }
    }

    /// Writes value `i` (not null) at the start of `out`; how many bytes it took.
    #[inline]
    fn write(&self, i: usize, out: &mut [u8]) -> usize {
        match *self {
            Column::Fixed { values, width } => {
                out[..width].copy_from_slice(&values[i * width..(i + 1) * width]);
                width
            }
            Column::Int { values, width, signed } => {
                put_varint(out, int_to_varint(&values[i * width..(i + 1) * width], signed))
            }
            Column::Bool(b) => {
                out[0] = u8::from(b.value(i));
                1
            }
            Column::Bytes { offsets, values } => put_bytes(out, &values[offsets[i] as usize..offsets[i + 1] as usize]),
            Column::LargeBytes { offsets, values } => {
                put_bytes(out, &values[offsets[i] as usize..offsets[i + 1] as usize])
            }
            Column::Views(column, kind) => put_bytes(out, value_bytes(column, kind, i)),
        }
    }
}

/// Writes `n` as a LEB128 varint at the start of `out`; how many bytes it took.
#[inline]
fn put_varint(out: &mut [u8], mut n: u64) -> usize {
    let mut at = 0;
    while n >= 0x80 {
        out[at] = (n as u8) | 0x80;
        n >>= 7;
        at += 1;
    }
    out[at] = n as u8;
    at + 1
}

/// Writes a length and the bytes at the start of `out`; how many bytes they took.
#[inline]
fn put_bytes(out: &mut [u8], v: &[u8]) -> usize {
    let n = put_varint(out, v.len() as u64);
    out[n..n + v.len()].copy_from_slice(v);
    n + v.len()
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
    fn integers_at_their_extremes_round_trip_as_varints_and_oversized_ones_are_refused() {
        use arrow::array::{Date32Array, Int16Array, UInt16Array, UInt64Array};
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int32, true),
            Field::new("c", DataType::Int16, true),
            Field::new("d", DataType::UInt64, true),
            Field::new("e", DataType::UInt16, true),
            Field::new("f", DataType::Date32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![
                    Some(i64::MIN),
                    Some(i64::MAX),
                    Some(-1),
                    None,
                    Some(0),
                ])),
                Arc::new(Int32Array::from(vec![
                    Some(i32::MIN),
                    Some(i32::MAX),
                    Some(-64),
                    Some(63),
                    None,
                ])),
                Arc::new(Int16Array::from(vec![
                    Some(i16::MIN),
                    Some(i16::MAX),
                    None,
                    Some(-1),
                    Some(1),
                ])),
                Arc::new(UInt64Array::from(vec![
                    Some(u64::MAX),
                    Some(0),
                    Some(127),
                    Some(128),
                    None,
                ])),
                Arc::new(UInt16Array::from(vec![
                    Some(u16::MAX),
                    None,
                    Some(0),
                    Some(300),
                    Some(1),
                ])),
                Arc::new(Date32Array::from(vec![
                    Some(-719_162),
                    Some(20_000),
                    None,
                    Some(0),
                    Some(1),
                ])),
            ],
        )
        .unwrap();
        round_trip(&batch);
        round_trip(&batch.slice(2, 3));
        // A varint of 70,000 read back into an Int16 column does not fit.
        let wide = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
        let narrow = Arc::new(Schema::new(vec![Field::new("x", DataType::Int16, false)]));
        let big = RecordBatch::try_new(wide.clone(), vec![Arc::new(Int32Array::from(vec![70_000]))]).unwrap();
        let rows = RowCodec::new(&wide).unwrap().encode(big.columns()).unwrap();
        let err = RowCodec::new(&narrow).unwrap().decode([rows.row(0)]).unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
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
        // Two one-byte varints (1 and 2, zigzagged), the length and the text.
        assert_eq!(compact.row(0).len(), 1 + 1 + 1 + 1 + 68);
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
