//! How a stream is split between the subtasks of the next operator.
//!
//! [`Partitioning`] is what the user asks for (in the logical graph); [`Partitioner`] is the
//! resolved form that a running subtask uses to route each batch.

use arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::contract::error::{Result, WeirError};
use crate::keys;

/// The partitioning of an edge, as written by the user.
#[derive(Debug, Clone, PartialEq)]
pub enum Partitioning {
    /// Forward when the parallelism is equal, else rebalance (Flink's default).
    Default,
    /// Batches in turn to each downstream subtask.
    Rebalance,
    /// Each row to a random downstream subtask.
    Shuffle,
    /// Each row to the owner of its key group (`key_by`).
    Hash(Vec<String>),
    /// Each row to the range that holds its value of `field`.
    Range {
        /// Field name.
        field: String,
        /// Sorted exclusive upper bounds of every range but the last.
        boundaries: Vec<serde_json::Value>,
    },
    /// Every batch to every downstream subtask.
    Broadcast,
}

impl Partitioning {
    /// Short name for plans and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Partitioning::Default => "forward",
            Partitioning::Rebalance => "rebalance",
            Partitioning::Shuffle => "shuffle",
            Partitioning::Hash(_) => "hash",
            Partitioning::Range { .. } => "range",
            Partitioning::Broadcast => "broadcast",
        }
    }
}

/// Range boundaries typed like the column they split.
#[derive(Debug, Clone)]
pub enum RangeBounds {
    /// Integer (and time) columns.
    Int(Vec<i64>),
    /// Float columns.
    Float(Vec<f64>),
    /// String columns.
    Str(Vec<String>),
}

impl RangeBounds {
    /// Checks `boundaries` against the type of `field` in `schema`.
    pub fn resolve(schema: &SchemaRef, field: &str, boundaries: &[serde_json::Value]) -> Result<(usize, Self)> {
        let idx = field_index(schema, field, "partition_by_range")?;
        let dt = schema.field(idx).data_type();
        let bad = |v: &serde_json::Value, want: &str| {
            WeirError::plan(format!(
                "partition_by_range: boundary {v} is not {want} (field '{field}' is {dt})"
            ))
        };
        let bounds = if dt.is_integer() || matches!(dt, DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64)
        {
            RangeBounds::Int(
                boundaries
                    .iter()
                    .map(|v| v.as_i64().ok_or_else(|| bad(v, "an integer")))
                    .collect::<Result<_>>()?,
            )
        } else if dt.is_floating() {
            RangeBounds::Float(
                boundaries
                    .iter()
                    .map(|v| v.as_f64().ok_or_else(|| bad(v, "a number")))
                    .collect::<Result<_>>()?,
            )
        } else if matches!(dt, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
            RangeBounds::Str(
                boundaries
                    .iter()
                    .map(|v| v.as_str().map(str::to_string).ok_or_else(|| bad(v, "a string")))
                    .collect::<Result<_>>()?,
            )
        } else {
            return Err(WeirError::plan(format!(
                "partition_by_range: field '{field}' has type {dt}; use an integer, float, time or string field"
            )));
        };
        let sorted = match &bounds {
            RangeBounds::Int(v) => v.is_sorted(),
            RangeBounds::Float(v) => v.is_sorted(),
            RangeBounds::Str(v) => v.is_sorted(),
        };
        if !sorted {
            return Err(WeirError::plan(format!(
                "partition_by_range: boundaries of '{field}' must be sorted ascending"
            )));
        }
        Ok((idx, bounds))
    }

    /// Number of ranges (downstream parallelism).
    pub fn ranges(&self) -> usize {
        match self {
            RangeBounds::Int(v) => v.len() + 1,
            RangeBounds::Float(v) => v.len() + 1,
            RangeBounds::Str(v) => v.len() + 1,
        }
    }

    fn targets(&self, column: &ArrayRef) -> Result<Vec<usize>> {
        let n = column.len();
        let mut out = Vec::with_capacity(n);
        match self {
            RangeBounds::Int(b) => {
                let c = cast(column, &DataType::Int64)?;
                let c = c.as_primitive::<Int64Type>();
                for i in 0..n {
                    out.push(if c.is_null(i) {
                        0
                    } else {
                        b.partition_point(|x| *x <= c.value(i))
                    });
                }
            }
            RangeBounds::Float(b) => {
                let c = cast(column, &DataType::Float64)?;
                let c = c.as_primitive::<Float64Type>();
                for i in 0..n {
                    out.push(if c.is_null(i) {
                        0
                    } else {
                        b.partition_point(|x| *x <= c.value(i))
                    });
                }
            }
            RangeBounds::Str(b) => {
                let c = cast(column, &DataType::Utf8)?;
                let c = c.as_string::<i32>();
                for i in 0..n {
                    out.push(if c.is_null(i) {
                        0
                    } else {
                        b.partition_point(|x| x.as_str() <= c.value(i))
                    });
                }
            }
        }
        Ok(out)
    }
}

pub use crate::contract::schema::field_index;

/// A resolved partitioner held by one sending subtask.
#[derive(Debug)]
pub enum Partitioner {
    /// To the one receiver of a forward edge.
    Forward,
    /// Round robin over receivers, one batch each.
    Rebalance {
        /// Next receiver.
        next: usize,
    },
    /// Random receiver per row.
    Shuffle(SmallRng),
    /// Key-group owner per row.
    Hash {
        /// Key column indices.
        columns: Vec<usize>,
        /// Number of key groups.
        max_parallelism: u32,
    },
    /// Range of one column.
    Range {
        /// Column index.
        column: usize,
        /// Boundaries.
        bounds: RangeBounds,
    },
    /// Every receiver.
    Broadcast,
}

impl Partitioner {
    /// Splits `batch` for `n` receivers into `(receiver, rows)` pairs.
    pub fn partition(&mut self, batch: &RecordBatch, n: usize, out: &mut Vec<(usize, RecordBatch)>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let targets: Vec<usize> = match self {
            Partitioner::Forward => {
                out.push((0, batch.clone()));
                return Ok(());
            }
            Partitioner::Rebalance { next } => {
                out.push((*next % n, batch.clone()));
                *next = (*next + 1) % n;
                return Ok(());
            }
            Partitioner::Broadcast => {
                out.extend((0..n).map(|i| (i, batch.clone())));
                return Ok(());
            }
            Partitioner::Shuffle(rng) => (0..batch.num_rows()).map(|_| rng.random_range(0..n)).collect(),
            Partitioner::Hash {
                columns,
                max_parallelism,
            } => {
                let cols: Vec<ArrayRef> = columns.iter().map(|c| batch.column(*c).clone()).collect();
                let hashes = keys::hash_rows(&cols, batch.num_rows())?;
                let (m, p) = (*max_parallelism, n as u32);
                hashes
                    .into_iter()
                    .map(|h| keys::operator_index_for_key_group(keys::key_group_of_hash(h, m), m, p) as usize)
                    .collect()
            }
            Partitioner::Range { column, bounds } => bounds.targets(batch.column(*column))?,
        };
        split_by_targets(batch, &targets, n, out)
    }

    /// A shuffle partitioner seeded per sending subtask (reproducible runs).
    pub fn shuffle(seed: u64) -> Self {
        Partitioner::Shuffle(SmallRng::seed_from_u64(seed))
    }
}

/// Splits rows by target index, keeping the order of rows within each target.
pub fn split_by_targets(
    batch: &RecordBatch,
    targets: &[usize],
    n: usize,
    out: &mut Vec<(usize, RecordBatch)>,
) -> Result<()> {
    if let Some(&first) = targets.first()
        && targets.iter().all(|t| *t == first)
    {
        out.push((first, batch.clone()));
        return Ok(());
    }
    let mut idx: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (row, t) in targets.iter().enumerate() {
        idx[*t].push(row as u32);
    }
    for (t, rows) in idx.into_iter().enumerate() {
        if !rows.is_empty() {
            let rows = UInt32Array::from(rows);
            out.push((t, take_record_batch(batch, &rows)?));
        }
    }
    Ok(())
}
