//! `key_by(..).aggregate(..)`: running aggregates per key (Flink's keyed `sum`/`min`/`max`, or an
//! updating SQL `GROUP BY`): for every input row, one output row with its key fields and the
//! key's aggregates so far. Vectorized: keys are encoded per batch, accumulators live in one map,
//! and output columns are built column-wise.

use arrow::array::ArrayRef;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::RowConverter;

use super::{Operator, OperatorFactory, TaskContext, UserResult};
use crate::checkpoint::OperatorState;
use crate::contract::error::{Result, WeirError};
use crate::contract::state::Snapshot;
use crate::state::StateTable;
use crate::state::ttl::{Stamp, Ttl};
use crate::window::Agg;
use crate::window::aggregate::{Acc, PlannedAgg, Values, key_converter, plan_keyed_output};

/// The running aggregate's description.
#[derive(Debug, Clone)]
pub struct RunningAggregate {
    /// Key fields.
    pub keys: Vec<String>,
    /// Aggregates.
    pub aggs: Vec<Agg>,
    /// Emit a changelog (an updating SQL `GROUP BY`): a key's first row is an insert (`+I`),
    /// each later one retracts the key's previous result (`-U`) before the new one (`+U`), in
    /// a trailing [`OP_COLUMN`]. Without it every row is the key's result so far.
    pub changelog: bool,
    /// `table.exec.state.ttl` (ms): a key not updated for this long is dropped; its next row
    /// starts it afresh (`+I`), as in Flink.
    pub state_ttl: Option<i64>,
}

pub use crate::contract::schema::OP_COLUMN;

impl RunningAggregate {
    fn plan(&self, input: &SchemaRef) -> Result<(Vec<usize>, Vec<PlannedAgg>, SchemaRef)> {
        let (keys, aggs, output) = plan_keyed_output(input, &self.keys, &self.aggs, None, "aggregate")?;
        if !self.changelog {
            return Ok((keys, aggs, output));
        }
        let mut fields: Vec<arrow::datatypes::FieldRef> = output.fields().iter().cloned().collect();
        fields.push(std::sync::Arc::new(arrow::datatypes::Field::new(
            OP_COLUMN,
            arrow::datatypes::DataType::Utf8,
            false,
        )));
        Ok((keys, aggs, std::sync::Arc::new(arrow::datatypes::Schema::new(fields))))
    }
}

impl OperatorFactory for RunningAggregate {
    fn kind(&self) -> &'static str {
        "aggregate"
    }
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.plan(input)?.2)
    }
    fn create(&self, input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let (keys, aggs, output) = self.plan(input)?;
        let converter = key_converter(input, &keys)?.ok_or_else(|| WeirError::plan("aggregate needs key_by first"))?;
        Ok(Box::new(RunningAggregateOp {
            keys,
            aggs,
            output,
            converter,
            state: StateTable::new(&ctx.state)?,
            max_parallelism: ctx.max_parallelism,
            changelog: self.changelog,
            ttl: Ttl::new(self.state_ttl, &ctx.clock),
        }))
    }
}

struct RunningAggregateOp {
    keys: Vec<usize>,
    aggs: Vec<PlannedAgg>,
    output: SchemaRef,
    converter: RowConverter,
    /// Key (Arrow row format) → accumulators.
    state: StateTable<KeyAccs>,
    max_parallelism: u32,
    changelog: bool,
    ttl: Ttl,
}

/// One key's accumulators, and with a state TTL when they were last updated.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct KeyAccs {
    accs: Vec<Acc>,
    stamp: Stamp,
}

crate::state::ttl::stamped!(KeyAccs);

impl Operator for RunningAggregateOp {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let n = batch.num_rows();
        let now = self.ttl.begin(&mut self.state)?;
        let key_cols: Vec<ArrayRef> = self.keys.iter().map(|k| batch.column(*k).clone()).collect();
        let rows = self.converter.convert_columns(&key_cols)?;
        let groups = crate::keys::key_groups(&key_cols, n, self.max_parallelism)?;
        let values: Vec<Values> = self.aggs.iter().map(|a| a.values(&batch)).collect::<Result<_>>()?;
        // Per aggregate, the key's accumulator after each row (and before it, for a changelog's
        // retraction): output row i shows input row `taken[i]`'s key.
        let mut snapshots: Vec<Vec<Acc>> = vec![Vec::with_capacity(n); self.aggs.len()];
        let mut taken: Vec<u32> = Vec::new();
        let mut ops: Vec<&'static str> = Vec::new();
        for (row, &group) in groups.iter().enumerate() {
            let key = rows.row(row);
            let key = key.data();
            let width = self.aggs.len();
            let (state, existed) = self.state.entry(group, key, || KeyAccs {
                accs: vec![Acc::default(); width],
                stamp: Stamp::default(),
            })?;
            self.ttl.touch(state, group, key, now);
            let accs = &mut state.accs;
            if self.changelog {
                if existed {
                    for (i, acc) in accs.iter().enumerate() {
                        snapshots[i].push(*acc);
                    }
                    taken.push(row as u32);
                    ops.push("-U");
                }
                taken.push(row as u32);
                ops.push(if existed { "+U" } else { "+I" });
            }
            for (i, (agg, acc)) in self.aggs.iter().zip(accs.iter_mut()).enumerate() {
                agg.update(acc, &values[i], row);
                snapshots[i].push(*acc);
            }
        }
        let mut columns = if self.changelog {
            let indices = arrow::array::UInt32Array::from(taken);
            key_cols
                .iter()
                .map(|c| arrow::compute::take(c.as_ref(), &indices, None))
                .collect::<std::result::Result<Vec<_>, _>>()?
        } else {
            key_cols
        };
        for (agg, snap) in self.aggs.iter().zip(&snapshots) {
            let refs: Vec<&Acc> = snap.iter().collect();
            columns.push(agg.finish(&refs)?);
        }
        if self.changelog {
            columns.push(std::sync::Arc::new(arrow::array::StringArray::from(ops)));
        }
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
    use crate::operators::testing::{batch_of, ctx, ints};

    #[test]
    fn every_row_emits_its_keys_aggregates_so_far_and_they_survive_a_restore() {
        let agg = RunningAggregate {
            keys: vec!["k".into()],
            aggs: vec![Agg::count().alias("n"), Agg::sum("v").alias("total")],
            changelog: false,
            state_ttl: None,
        };
        let input = batch_of(&[("k", vec![1, 2, 1, 1]), ("v", vec![10, 5, 1, 2])]);
        let mut op = agg.create(&input.schema(), &ctx()).unwrap();
        let mut out = Vec::new();
        op.process_batch(input.clone(), &mut out).unwrap();
        assert_eq!(ints(&out, "n"), [1, 1, 2, 3]);
        assert_eq!(ints(&out, "total"), [10, 5, 11, 13]);
        let state = op.snapshot(1, false).unwrap().into_state().unwrap();
        assert!(!state.keyed.is_empty());
        let mut restored = agg.create(&input.schema(), &ctx()).unwrap();
        restored.restore(state).unwrap();
        let mut out = Vec::new();
        restored
            .process_batch(batch_of(&[("k", vec![1]), ("v", vec![100])]), &mut out)
            .unwrap();
        assert_eq!((ints(&out, "n"), ints(&out, "total")), (vec![4], vec![113]));
    }

    #[test]
    fn a_changelog_retracts_a_keys_previous_result_before_the_new_one() {
        let agg = RunningAggregate {
            keys: vec!["k".into()],
            aggs: vec![Agg::sum("v").alias("total")],
            changelog: true,
            state_ttl: None,
        };
        let input = batch_of(&[("k", vec![1, 2, 1]), ("v", vec![10, 5, 1])]);
        let mut op = agg.create(&input.schema(), &ctx()).unwrap();
        let mut out = Vec::new();
        op.process_batch(input, &mut out).unwrap();
        assert_eq!(ints(&out, "k"), [1, 2, 1, 1]);
        assert_eq!(ints(&out, "total"), [10, 5, 10, 11]);
        let ops: Vec<String> = out[0]
            .column_by_name(OP_COLUMN)
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap()
            .iter()
            .map(|s| s.unwrap().to_string())
            .collect();
        assert_eq!(ops, ["+I", "+I", "-U", "+U"]);
    }

    #[test]
    fn with_a_state_ttl_a_key_not_updated_for_the_ttl_starts_afresh() {
        let clock = crate::contract::ManualClock::new(0);
        let agg = RunningAggregate {
            keys: vec!["k".into()],
            aggs: vec![Agg::count().alias("n")],
            changelog: true,
            state_ttl: Some(1_000),
        };
        let rows = |k: Vec<i64>| batch_of(&[("v", vec![0; k.len()]), ("k", k)]);
        let mut op = agg
            .create(&rows(vec![1]).schema(), &crate::operators::testing::ctx_on(&clock))
            .unwrap();
        let mut out = Vec::new();
        op.process_batch(rows(vec![1, 2]), &mut out).unwrap();
        clock.set(500);
        op.process_batch(rows(vec![1]), &mut out).unwrap();
        clock.set(1_200);
        // Key 2 (written at 0) expired; key 1 (written at 500) lives until 1,500.
        op.process_batch(rows(vec![1, 2]), &mut out).unwrap();
        clock.set(2_500);
        op.on_processing_time(2_500, &mut out).unwrap();
        assert_eq!(op.next_processing_timer(), None, "every key gone");
        op.process_batch(rows(vec![1]), &mut out).unwrap();
        assert_eq!(ints(&out, "k"), [1, 2, 1, 1, 1, 1, 2, 1]);
        assert_eq!(ints(&out, "n"), [1, 1, 1, 2, 2, 3, 1, 1]);
    }
}
