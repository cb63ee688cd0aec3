//! Built-in incremental aggregates: count, sum, min, max, avg, first, last.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Builder, Int64Builder};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use crate::contract::error::{Result, WeirError};
use crate::contract::schema::field_index;

/// The kind of an aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggKind {
    /// Rows (or non-null values of a field).
    Count,
    /// Sum.
    Sum,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Average (a double).
    Avg,
    /// The first value to arrive.
    First,
    /// The last value to arrive.
    Last,
}

/// One aggregate of a window: what, over which field, named how.
#[derive(Debug, Clone, PartialEq)]
pub struct Agg {
    /// What it computes.
    pub kind: AggKind,
    /// Input field (`None` only for `count`: rows).
    pub field: Option<String>,
    /// Output column name.
    pub name: String,
}

impl Agg {
    fn of(kind: AggKind, field: &str, prefix: &str) -> Self {
        Agg {
            kind,
            field: Some(field.to_string()),
            name: format!("{prefix}_{field}"),
        }
    }
    /// Number of rows, as `count`.
    pub fn count() -> Self {
        Agg {
            kind: AggKind::Count,
            field: None,
            name: "count".into(),
        }
    }
    /// Sum of `field`, as `sum_<field>`.
    pub fn sum(field: &str) -> Self {
        Self::of(AggKind::Sum, field, "sum")
    }
    /// Minimum of `field`, as `min_<field>`.
    pub fn min(field: &str) -> Self {
        Self::of(AggKind::Min, field, "min")
    }
    /// Maximum of `field`, as `max_<field>`.
    pub fn max(field: &str) -> Self {
        Self::of(AggKind::Max, field, "max")
    }
    /// Average of `field`, as `avg_<field>`.
    pub fn avg(field: &str) -> Self {
        Self::of(AggKind::Avg, field, "avg")
    }
    /// First value of `field`, as `first_<field>`.
    pub fn first(field: &str) -> Self {
        Self::of(AggKind::First, field, "first")
    }
    /// Last value of `field`, as `last_<field>`.
    pub fn last(field: &str) -> Self {
        Self::of(AggKind::Last, field, "last")
    }
    /// Renames the output column.
    pub fn alias(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }
}

/// How an aggregate reads its input.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Input {
    Rows,
    Int,
    Float,
}

/// An aggregate checked against a schema.
#[derive(Debug, Clone)]
pub struct PlannedAgg {
    kind: AggKind,
    column: Option<usize>,
    input: Input,
    output: Field,
}

/// The running value of one aggregate for one key and window.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Acc {
    n: i64,
    int: i64,
    float: f64,
}

/// Input values of one batch, per aggregate.
pub enum Values {
    /// No input column (count of rows).
    Rows,
    /// Integers (and times, as ms).
    Int(arrow::array::Int64Array),
    /// Floats.
    Float(arrow::array::Float64Array),
}

impl PlannedAgg {
    /// Checks `agg` against `schema`.
    pub fn plan(agg: &Agg, schema: &SchemaRef) -> Result<Self> {
        let Some(field) = &agg.field else {
            if agg.kind != AggKind::Count {
                return Err(WeirError::plan(format!("aggregate {:?} needs a field", agg.kind)));
            }
            return Ok(PlannedAgg {
                kind: agg.kind,
                column: None,
                input: Input::Rows,
                output: Field::new(&agg.name, DataType::Int64, false),
            });
        };
        let column = field_index(schema, field, "aggregate")?;
        let dt = schema.field(column).data_type().clone();
        let input = if dt.is_integer() || matches!(dt, DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64)
        {
            Input::Int
        } else if dt.is_floating() || matches!(dt, DataType::Decimal128(_, _) | DataType::Decimal256(_, _)) {
            Input::Float
        } else {
            return Err(WeirError::plan(format!(
                "aggregate {:?}({field}): field '{field}' is {dt}; use a number or a time",
                agg.kind
            )));
        };
        let out = match (agg.kind, input) {
            (AggKind::Count, _) => DataType::Int64,
            (AggKind::Avg, _) => DataType::Float64,
            (AggKind::Sum, Input::Int) if matches!(dt, DataType::Timestamp(_, _)) => {
                return Err(WeirError::plan(format!(
                    "aggregate sum({field}): cannot sum timestamps"
                )));
            }
            (AggKind::Sum, Input::Int) => DataType::Int64,
            (AggKind::Sum, _) => DataType::Float64,
            (_, Input::Int) if matches!(dt, DataType::Timestamp(_, _)) => {
                DataType::Timestamp(TimeUnit::Millisecond, None)
            }
            (_, Input::Int) => DataType::Int64,
            (_, _) => DataType::Float64,
        };
        let nullable = agg.kind != AggKind::Count;
        Ok(PlannedAgg {
            kind: agg.kind,
            column: Some(column),
            input,
            output: Field::new(&agg.name, out, nullable),
        })
    }

    /// The output field.
    pub fn output(&self) -> &Field {
        &self.output
    }

    /// This aggregate's input values in `batch`.
    pub fn values(&self, batch: &RecordBatch) -> Result<Values> {
        let Some(c) = self.column else { return Ok(Values::Rows) };
        let col = batch.column(c);
        Ok(match self.input {
            Input::Rows => Values::Rows,
            Input::Int => {
                let ms = match col.data_type() {
                    DataType::Timestamp(u, _) if *u != TimeUnit::Millisecond => {
                        cast(col, &DataType::Timestamp(TimeUnit::Millisecond, None))?
                    }
                    _ => col.clone(),
                };
                Values::Int(cast(&ms, &DataType::Int64)?.as_primitive::<Int64Type>().clone())
            }
            Input::Float => Values::Float(cast(col, &DataType::Float64)?.as_primitive::<Float64Type>().clone()),
        })
    }

    /// Adds row `i` of `values` to `acc`.
    #[inline]
    pub fn update(&self, acc: &mut Acc, values: &Values, i: usize) {
        let (int, float) = match values {
            Values::Rows => {
                acc.n += 1;
                return;
            }
            Values::Int(a) if a.is_valid(i) => (a.value(i), 0.0),
            Values::Float(a) if a.is_valid(i) => (0, a.value(i)),
            _ => return, // nulls do not count
        };
        let is_int = matches!(values, Values::Int(_));
        let first = acc.n == 0;
        acc.n += 1;
        match self.kind {
            AggKind::Count => {}
            AggKind::Sum => {
                acc.int = acc.int.wrapping_add(int);
                acc.float += float;
            }
            AggKind::Avg => acc.float += if is_int { int as f64 } else { float },
            AggKind::Min => {
                if first || (is_int && int < acc.int) || (!is_int && float < acc.float) {
                    (acc.int, acc.float) = (int, float);
                }
            }
            AggKind::Max => {
                if first || (is_int && int > acc.int) || (!is_int && float > acc.float) {
                    (acc.int, acc.float) = (int, float);
                }
            }
            AggKind::First => {
                if first {
                    (acc.int, acc.float) = (int, float);
                }
            }
            AggKind::Last => (acc.int, acc.float) = (int, float),
        }
    }

    /// Whether this aggregate can merge two partial results (first/last cannot: they depend on
    /// arrival order across the merged parts).
    pub fn mergeable(&self) -> bool {
        !matches!(self.kind, AggKind::First | AggKind::Last)
    }

    /// Adds the partial result `other` into `acc` (session windows merging).
    pub fn merge(&self, acc: &mut Acc, other: &Acc) {
        if other.n == 0 {
            return;
        }
        if acc.n == 0 {
            *acc = *other;
            return;
        }
        let is_int = self.input == Input::Int;
        match self.kind {
            AggKind::Count | AggKind::First | AggKind::Last => {}
            AggKind::Sum => {
                acc.int = acc.int.wrapping_add(other.int);
                acc.float += other.float;
            }
            AggKind::Avg => acc.float += other.float,
            AggKind::Min => {
                if (is_int && other.int < acc.int) || (!is_int && other.float < acc.float) {
                    (acc.int, acc.float) = (other.int, other.float);
                }
            }
            AggKind::Max => {
                if (is_int && other.int > acc.int) || (!is_int && other.float > acc.float) {
                    (acc.int, acc.float) = (other.int, other.float);
                }
            }
        }
        acc.n += other.n;
    }

    /// Adds the partial result `later` (of records that arrived after those in `acc`) into `acc`:
    /// like [`Self::merge`], and well defined for `first` and `last` too.
    pub fn merge_in_order(&self, acc: &mut Acc, later: &Acc) {
        match self.kind {
            AggKind::First if acc.n > 0 => acc.n += later.n,
            AggKind::Last if later.n > 0 => {
                let n = acc.n + later.n;
                *acc = *later;
                acc.n = n;
            }
            _ => self.merge(acc, later),
        }
    }

    /// The aggregate's kind.
    pub fn kind(&self) -> AggKind {
        self.kind
    }

    /// The output column for these accumulators.
    pub fn finish(&self, accs: &[&Acc]) -> Result<ArrayRef> {
        let float_out = matches!(self.output.data_type(), DataType::Float64);
        let col: ArrayRef = if float_out {
            let mut b = Float64Builder::with_capacity(accs.len());
            for a in accs {
                match (self.kind, self.input, a.n) {
                    (_, _, 0) => b.append_null(),
                    (AggKind::Avg, _, n) => b.append_value(a.float / n as f64),
                    (_, Input::Int, _) => b.append_value(a.int as f64),
                    _ => b.append_value(a.float),
                }
            }
            Arc::new(b.finish())
        } else {
            let mut b = Int64Builder::with_capacity(accs.len());
            for a in accs {
                match (self.kind, a.n) {
                    (AggKind::Count, n) => b.append_value(n),
                    (_, 0) => b.append_null(),
                    _ => b.append_value(a.int),
                }
            }
            Arc::new(b.finish())
        };
        Ok(if col.data_type() == self.output.data_type() {
            col
        } else {
            cast(&col, self.output.data_type())?
        })
    }
}

/// What keyed aggregating operators share: key column indices, planned aggregates, and the
/// output schema `key fields…, [window_start, window_end,] aggregates…` (window columns when
/// `window` is `Some(nullable)`), with duplicate output names refused.
pub(crate) fn plan_keyed_output(
    input: &SchemaRef,
    keys: &[String],
    aggs: &[Agg],
    window: Option<bool>,
    what: &str,
) -> Result<(Vec<usize>, Vec<PlannedAgg>, SchemaRef)> {
    if aggs.is_empty() {
        return Err(WeirError::plan(format!("{what}: no aggregates given")));
    }
    let key_columns = keys
        .iter()
        .map(|k| field_index(input, k, &format!("{what} key")))
        .collect::<Result<Vec<_>>>()?;
    let planned = aggs
        .iter()
        .map(|a| PlannedAgg::plan(a, input))
        .collect::<Result<Vec<_>>>()?;
    let mut fields: Vec<Field> = key_columns.iter().map(|c| input.field(*c).clone()).collect();
    if let Some(nullable) = window {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        fields.push(Field::new("window_start", ts.clone(), nullable));
        fields.push(Field::new("window_end", ts, nullable));
    }
    fields.extend(planned.iter().map(|a| a.output().clone()));
    let mut seen = std::collections::HashSet::new();
    if let Some(f) = fields.iter().find(|f| !seen.insert(f.name().clone())) {
        return Err(WeirError::plan(format!(
            "{what}: two output columns are named '{}'",
            f.name()
        )));
    }
    Ok((key_columns, planned, Arc::new(arrow::datatypes::Schema::new(fields))))
}

/// A converter of the key columns to Arrow's row format (`None` without keys).
pub(crate) fn key_converter(input: &SchemaRef, key_columns: &[usize]) -> Result<Option<arrow::row::RowConverter>> {
    if key_columns.is_empty() {
        return Ok(None);
    }
    let fields = key_columns
        .iter()
        .map(|c| arrow::row::SortField::new(input.field(*c).data_type().clone()))
        .collect();
    Ok(Some(arrow::row::RowConverter::new(fields)?))
}
