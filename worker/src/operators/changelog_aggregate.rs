//! An updating `GROUP BY` over an updating input (a changelog): each input row's kind (`+I`,
//! `+U` add it; `-U`, `-D` take it back) changes its key's aggregates, which support
//! retraction — `COUNT`, `SUM`, `AVG`, and `MIN` / `MAX` keeping every value's multiplicity (a
//! retracted minimum gives way to the next), and `COUNT(DISTINCT …)` the same way. An input
//! without the changelog column is all inserts. Output is a changelog too: a key's first row
//! `+I`; later changes `-U` (the previous result) then `+U`; a key whose last row was
//! retracted `-D`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use serde::{Deserialize, Serialize};

use super::running_aggregate::OP_COLUMN;
use super::{Operator, OperatorFactory, TaskContext, UserResult};
use crate::checkpoint::OperatorState;
use crate::contract::error::{Result, WeirError};
use crate::contract::schema::field_index;
use crate::contract::state::Snapshot;
use crate::state::StateTable;
use crate::state::ttl::{Stamp, Ttl};

/// What an aggregate computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetractKind {
    /// Rows (`field` none) or non-null values.
    Count,
    /// Sum of non-null values (null when there are none).
    Sum,
    /// Average of non-null values, a double.
    Avg,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Distinct non-null values (`COUNT(DISTINCT x)`).
    CountDistinct,
}

/// One aggregate: what, over which field, named how.
#[derive(Debug, Clone, PartialEq)]
pub struct RetractAgg {
    /// What it computes.
    pub kind: RetractKind,
    /// Input field (none: `COUNT(*)`).
    pub field: Option<String>,
    /// Output column.
    pub name: String,
}

/// The operator's description: group keys and aggregates over a changelog input.
#[derive(Debug, Clone)]
pub struct ChangelogAggregate {
    /// Key fields.
    pub keys: Vec<String>,
    /// Aggregates.
    pub aggs: Vec<RetractAgg>,
    /// `table.exec.state.ttl` (ms): a group not updated for this long is dropped; its next row
    /// starts it afresh (`+I`), as in Flink.
    pub state_ttl: Option<i64>,
}

/// The operator planned against its input: key columns, aggregates, the changelog column (if
/// the input has one) and the output schema.
struct Plan {
    keys: Vec<usize>,
    aggs: Vec<Planned>,
    op: Option<usize>,
    output: SchemaRef,
}

/// How an aggregate reads its input column and writes its output.
#[derive(Debug, Clone)]
struct Planned {
    kind: RetractKind,
    column: Option<usize>,
    /// The input type values are read as (Int64 or Float64 for sums and averages).
    read_as: DataType,
    output: Field,
}

impl ChangelogAggregate {
    fn plan(&self, input: &SchemaRef) -> Result<Plan> {
        let keys = self
            .keys
            .iter()
            .map(|k| field_index(input, k, "aggregate key"))
            .collect::<Result<Vec<_>>>()?;
        let op = input.index_of(OP_COLUMN).ok();
        let mut planned = Vec::new();
        for a in &self.aggs {
            let column = a
                .field
                .as_ref()
                .map(|f| field_index(input, f, "aggregate"))
                .transpose()?;
            let input_type = column.map(|c| input.field(c).data_type().clone());
            let (read_as, out_type) = match (a.kind, &input_type) {
                (RetractKind::Count, _) => (DataType::Int64, DataType::Int64),
                (RetractKind::Sum, Some(t)) if t.is_floating() || matches!(t, DataType::Decimal128(..)) => {
                    (DataType::Float64, DataType::Float64)
                }
                (RetractKind::Sum, Some(t)) if t.is_integer() => (DataType::Int64, DataType::Int64),
                (RetractKind::Avg, Some(t)) if t.is_numeric() => (DataType::Float64, DataType::Float64),
                (RetractKind::Min | RetractKind::Max, Some(t)) => (t.clone(), t.clone()),
                (RetractKind::CountDistinct, Some(t)) => (t.clone(), DataType::Int64),
                (kind, t) => {
                    return Err(WeirError::plan(format!(
                        "aggregate '{}': {kind:?} over {} is not supported on an updating input",
                        a.name,
                        t.as_ref().map_or("no field".to_string(), |t| t.to_string())
                    )));
                }
            };
            planned.push(Planned {
                kind: a.kind,
                column,
                read_as,
                output: Field::new(&a.name, out_type, true),
            });
        }
        let mut fields: Vec<Field> = keys.iter().map(|k| input.field(*k).clone()).collect();
        fields.extend(planned.iter().map(|p| p.output.clone()));
        fields.push(Field::new(OP_COLUMN, DataType::Utf8, false));
        Ok(Plan {
            keys,
            aggs: planned,
            op,
            output: Arc::new(Schema::new(fields)),
        })
    }
}

impl OperatorFactory for ChangelogAggregate {
    fn kind(&self) -> &'static str {
        "aggregate"
    }
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.plan(input)?.output)
    }
    fn create(&self, input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let Plan { keys, aggs, op, output } = self.plan(input)?;
        let key_fields = keys
            .iter()
            .map(|k| SortField::new(input.field(*k).data_type().clone()))
            .collect();
        let values = aggs
            .iter()
            .map(|a| RowConverter::new(vec![SortField::new(a.read_as.clone())]))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Box::new(ChangelogAggregateOp {
            keys,
            aggs,
            op,
            output,
            converter: RowConverter::new(key_fields)?,
            values,
            state: StateTable::new(&ctx.state)?,
            max_parallelism: ctx.max_parallelism,
            ttl: Ttl::new(self.state_ttl, &ctx.clock),
        }))
    }
}

/// One key's aggregates.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct KeyState {
    /// Rows added minus rows taken back.
    rows: i64,
    accs: Vec<Acc>,
    /// Last update (processing time), with a state TTL.
    stamp: Stamp,
}

crate::state::ttl::stamped!(KeyState);

/// One aggregate's accumulator.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Acc {
    count: i64,
    int_sum: i128,
    float_sum: f64,
    /// Min/max: each value (in Arrow's row format, which orders as the values do) and how
    /// many times it is present.
    values: BTreeMap<Vec<u8>, i64>,
}

struct ChangelogAggregateOp {
    keys: Vec<usize>,
    aggs: Vec<Planned>,
    op: Option<usize>,
    output: SchemaRef,
    converter: RowConverter,
    /// Per aggregate: the row format of its values (min/max).
    values: Vec<RowConverter>,
    state: StateTable<KeyState>,
    max_parallelism: u32,
    ttl: Ttl,
}

/// An aggregate's result for one output row.
#[derive(Debug, Clone)]
enum Out {
    Null,
    Int(i64),
    Float(f64),
    Value(Vec<u8>),
}

impl ChangelogAggregateOp {
    fn results(&self, state: &KeyState) -> Vec<Out> {
        self.aggs
            .iter()
            .zip(&state.accs)
            .map(|(p, a)| match p.kind {
                RetractKind::Count => Out::Int(a.count),
                RetractKind::CountDistinct => Out::Int(a.values.len() as i64),
                _ if a.count == 0 => Out::Null,
                RetractKind::Sum if p.read_as == DataType::Int64 => Out::Int(a.int_sum as i64),
                RetractKind::Sum => Out::Float(a.float_sum),
                RetractKind::Avg => Out::Float(a.float_sum / a.count as f64),
                RetractKind::Min => a.values.keys().next().map_or(Out::Null, |v| Out::Value(v.clone())),
                RetractKind::Max => a.values.keys().next_back().map_or(Out::Null, |v| Out::Value(v.clone())),
            })
            .collect()
    }

    fn column(&self, i: usize, outs: &[Out]) -> Result<ArrayRef> {
        let p = &self.aggs[i];
        Ok(match p.output.data_type() {
            DataType::Int64 if !matches!(p.kind, RetractKind::Min | RetractKind::Max) => Arc::new(
                outs.iter()
                    .map(|o| match o {
                        Out::Int(v) => Some(*v),
                        _ => None,
                    })
                    .collect::<arrow::array::Int64Array>(),
            ),
            DataType::Float64 if !matches!(p.kind, RetractKind::Min | RetractKind::Max) => Arc::new(
                outs.iter()
                    .map(|o| match o {
                        Out::Float(v) => Some(*v),
                        _ => None,
                    })
                    .collect::<arrow::array::Float64Array>(),
            ),
            _ => {
                // Min/max: decode the present values, then place them (nulls elsewhere).
                let parser = self.values[i].parser();
                let present: Vec<&Vec<u8>> = outs
                    .iter()
                    .filter_map(|o| match o {
                        Out::Value(v) => Some(v),
                        _ => None,
                    })
                    .collect();
                let decoded = self.values[i].convert_rows(present.iter().map(|b| parser.parse(b)))?;
                let mut next = 0u32;
                let indices: UInt32Array = outs
                    .iter()
                    .map(|o| match o {
                        Out::Value(_) => {
                            next += 1;
                            Some(next - 1)
                        }
                        _ => None,
                    })
                    .collect();
                take(decoded[0].as_ref(), &indices, None)?
            }
        })
    }
}

impl Operator for ChangelogAggregateOp {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let n = batch.num_rows();
        let now = self.ttl.begin(&mut self.state)?;
        let key_cols: Vec<ArrayRef> = self.keys.iter().map(|k| batch.column(*k).clone()).collect();
        let rows = self.converter.convert_columns(&key_cols)?;
        let groups = crate::keys::key_groups(&key_cols, n, self.max_parallelism)?;
        let ops = self.op.map(|c| batch.column(c).as_string::<i32>().clone());
        // Each aggregate's input, read as its accumulating type.
        let mut inputs: Vec<Option<ArrayRef>> = Vec::with_capacity(self.aggs.len());
        let mut encoded: Vec<Option<arrow::row::Rows>> = Vec::with_capacity(self.aggs.len());
        for (i, p) in self.aggs.iter().enumerate() {
            let col = p.column.map(|c| cast(batch.column(c), &p.read_as)).transpose()?;
            encoded.push(match (&col, p.kind) {
                (Some(c), RetractKind::Min | RetractKind::Max | RetractKind::CountDistinct) => {
                    Some(self.values[i].convert_columns(std::slice::from_ref(c))?)
                }
                _ => None,
            });
            inputs.push(col);
        }
        let mut taken: Vec<u32> = Vec::new();
        let mut kinds: Vec<&'static str> = Vec::new();
        let mut results: Vec<Vec<Out>> = vec![Vec::new(); self.aggs.len()];
        for (row, &group) in groups.iter().enumerate() {
            let retract = match ops.as_ref().map_or("+I", |o| o.value(row)) {
                "+I" | "+U" => false,
                "-U" | "-D" => true,
                other => {
                    return Err(WeirError::plan(format!("changelog aggregate: unknown row kind '{other}'")).into());
                }
            };
            let key = rows.row(row);
            self.state.get(group, key.data())?;
            let (before, existed) = match self.state.cached(key.data()) {
                Some(s) if s.rows > 0 => (Some(self.results(s)), true),
                _ => (None, false),
            };
            let width = self.aggs.len();
            let state = self.state.get_or_insert_with(group, key.data(), || KeyState {
                rows: 0,
                accs: vec![Acc::default(); width],
                stamp: Stamp::default(),
            })?;
            self.ttl.touch(state, group, key.data(), now);
            let sign: i64 = if retract { -1 } else { 1 };
            state.rows += sign;
            for (i, (p, acc)) in self.aggs.iter().zip(state.accs.iter_mut()).enumerate() {
                let Some(col) = &inputs[i] else {
                    acc.count += sign; // COUNT(*)
                    continue;
                };
                if col.is_null(row) {
                    continue;
                }
                acc.count += sign;
                match p.kind {
                    RetractKind::Count => {}
                    RetractKind::Sum | RetractKind::Avg => {
                        if p.read_as == DataType::Int64 {
                            let v = col.as_primitive::<arrow::datatypes::Int64Type>().value(row);
                            acc.int_sum += i128::from(v) * i128::from(sign);
                        } else {
                            let v = col.as_primitive::<arrow::datatypes::Float64Type>().value(row);
                            acc.float_sum += v * sign as f64;
                        }
                    }
                    RetractKind::Min | RetractKind::Max | RetractKind::CountDistinct => {
                        let bytes = encoded[i].as_ref().expect("encoded").row(row).data().to_vec();
                        let c = acc.values.entry(bytes.clone()).or_insert(0);
                        *c += sign;
                        if *c <= 0 {
                            acc.values.remove(&bytes);
                        }
                    }
                }
            }
            let after = if state.rows > 0 {
                Some(self.results(self.state.cached(key.data()).expect("just updated")))
            } else {
                self.state.remove(group, key.data())?;
                None
            };
            let mut emit = |kind: &'static str, outs: Vec<Out>| {
                taken.push(row as u32);
                kinds.push(kind);
                for (i, o) in outs.into_iter().enumerate() {
                    results[i].push(o);
                }
            };
            match (before, after) {
                (Some(b), Some(a)) => {
                    emit("-U", b);
                    emit("+U", a);
                }
                (Some(b), None) => emit("-D", b),
                (None, Some(a)) => emit(if existed { "+U" } else { "+I" }, a),
                (None, None) => {} // a retraction of a row never added here
            }
        }
        if taken.is_empty() {
            return Ok(());
        }
        let indices = UInt32Array::from(taken);
        let mut columns = key_cols
            .iter()
            .map(|c| take(c.as_ref(), &indices, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for (i, outs) in results.iter().enumerate() {
            let col = self.column(i, outs)?;
            columns.push(if col.data_type() == self.aggs[i].output.data_type() {
                col
            } else {
                cast(&col, self.aggs[i].output.data_type())?
            });
        }
        columns.push(Arc::new(StringArray::from(kinds)));
        out.push(RecordBatch::try_new(self.output.clone(), columns)?);
        Ok(())
    }

    fn snapshot(&mut self, _checkpoint_id: u64, changes_only: bool) -> UserResult<Snapshot> {
        self.state.snapshot(changes_only, None)
    }

    fn restore(&mut self, state: OperatorState) -> UserResult<()> {
        self.ttl.restore(&mut self.state, &state)
    }

    fn next_processing_timer(&self) -> Option<i64> {
        self.ttl.next()
    }

    fn on_processing_time(&mut self, now: i64, _out: &mut Vec<RecordBatch>) -> UserResult<()> {
        self.ttl.on_time(&mut self.state, now)
    }

    fn restores_in_parts(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::testing::ctx;

    fn changelog(k: Vec<i64>, v: Vec<i64>, ops: Vec<&str>) -> RecordBatch {
        RecordBatch::try_from_iter(vec![
            ("k", Arc::new(arrow::array::Int64Array::from(k)) as ArrayRef),
            ("v", Arc::new(arrow::array::Int64Array::from(v)) as ArrayRef),
            (OP_COLUMN, Arc::new(StringArray::from(ops)) as ArrayRef),
        ])
        .unwrap()
    }

    #[test]
    fn retractions_update_counts_sums_and_the_minimum_and_a_last_retraction_deletes() {
        let agg = ChangelogAggregate {
            keys: vec!["k".into()],
            aggs: vec![
                RetractAgg {
                    kind: RetractKind::Count,
                    field: None,
                    name: "n".into(),
                },
                RetractAgg {
                    kind: RetractKind::Sum,
                    field: Some("v".into()),
                    name: "total".into(),
                },
                RetractAgg {
                    kind: RetractKind::Min,
                    field: Some("v".into()),
                    name: "lo".into(),
                },
            ],
            state_ttl: None,
        };
        let input = changelog(
            vec![1, 1, 1, 1, 1],
            vec![5, 3, 3, 5, 3],
            vec!["+I", "+I", "-U", "-D", "+I"],
        );
        let mut op = agg.create(&input.schema(), &ctx()).unwrap();
        let mut out = Vec::new();
        op.process_batch(input, &mut out).unwrap();
        let b = &out[0];
        let col = |name: &str| -> Vec<Option<i64>> {
            b.column_by_name(name)
                .unwrap()
                .as_primitive::<arrow::datatypes::Int64Type>()
                .iter()
                .collect()
        };
        let ops: Vec<&str> = b
            .column_by_name(OP_COLUMN)
            .unwrap()
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(ops, ["+I", "-U", "+U", "-U", "+U", "-D", "+I"]);
        assert_eq!(
            col("n"),
            [Some(1), Some(1), Some(2), Some(2), Some(1), Some(1), Some(1)]
        );
        assert_eq!(
            col("total"),
            [Some(5), Some(5), Some(8), Some(8), Some(5), Some(5), Some(3)]
        );
        assert_eq!(
            col("lo"),
            [Some(5), Some(5), Some(3), Some(3), Some(5), Some(5), Some(3)]
        );
        // State survives a restore.
        let state = op.snapshot(1, false).unwrap().into_state().unwrap();
        let mut restored = agg.create(&b.schema().clone(), &ctx());
        assert!(restored.is_err(), "the output is not an input");
        restored = agg.create(&changelog(vec![], vec![], vec![]).schema(), &ctx());
        let mut restored = restored.unwrap();
        restored.restore(state).unwrap();
        let mut out = Vec::new();
        restored
            .process_batch(changelog(vec![1], vec![1], vec!["+I"]), &mut out)
            .unwrap();
        let ops: Vec<&str> = out[0]
            .column_by_name(OP_COLUMN)
            .unwrap()
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(ops, ["-U", "+U"]);
    }
}
