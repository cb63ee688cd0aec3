//! `key_by(..).aggregate(..)`: running aggregates per key (Flink's keyed `sum`/`min`/`max`, or an
//! updating SQL `GROUP BY`): for every input row, one output row with its key fields and the
//! key's aggregates so far. Vectorized: keys are encoded per batch, accumulators live in one map,
//! and output columns are built column-wise.

use arrow::array::ArrayRef;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::RowConverter;

use super::{Operator, OperatorFactory, TaskContext, UserResult};
use crate::checkpoint::{self, OperatorState};
use crate::contract::error::{Result, WeirError};
use crate::state::FastMap;
use crate::window::Agg;
use crate::window::aggregate::{Acc, PlannedAgg, Values, key_converter, plan_keyed_output};

/// The running aggregate's description.
#[derive(Debug, Clone)]
pub struct RunningAggregate {
    /// Key fields.
    pub keys: Vec<String>,
    /// Aggregates.
    pub aggs: Vec<Agg>,
}

impl RunningAggregate {
    fn plan(&self, input: &SchemaRef) -> Result<(Vec<usize>, Vec<PlannedAgg>, SchemaRef)> {
        plan_keyed_output(input, &self.keys, &self.aggs, None, "aggregate")
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
            state: FastMap::default(),
            max_parallelism: ctx.max_parallelism,
        }))
    }
}

struct RunningAggregateOp {
    keys: Vec<usize>,
    aggs: Vec<PlannedAgg>,
    output: SchemaRef,
    converter: RowConverter,
    /// Key (Arrow row format) → accumulators.
    state: FastMap<Box<[u8]>, Vec<Acc>>,
    max_parallelism: u32,
}

impl Operator for RunningAggregateOp {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let n = batch.num_rows();
        let key_cols: Vec<ArrayRef> = self.keys.iter().map(|k| batch.column(*k).clone()).collect();
        let rows = self.converter.convert_columns(&key_cols)?;
        let values: Vec<Values> = self.aggs.iter().map(|a| a.values(&batch)).collect::<Result<_>>()?;
        // Per aggregate, the key's accumulator after each row.
        let mut snapshots: Vec<Vec<Acc>> = vec![Vec::with_capacity(n); self.aggs.len()];
        for row in 0..n {
            let key = rows.row(row);
            let key = key.data();
            let accs = match self.state.get_mut(key) {
                Some(a) => a,
                None => self
                    .state
                    .entry(key.into())
                    .or_insert_with(|| vec![Acc::default(); self.aggs.len()]),
            };
            for (i, (agg, acc)) in self.aggs.iter().zip(accs.iter_mut()).enumerate() {
                agg.update(acc, &values[i], row);
                snapshots[i].push(*acc);
            }
        }
        let mut columns = key_cols;
        for (agg, snap) in self.aggs.iter().zip(&snapshots) {
            let refs: Vec<&Acc> = snap.iter().collect();
            columns.push(agg.finish(&refs)?);
        }
        out.push(RecordBatch::try_new(self.output.clone(), columns)?);
        Ok(())
    }

    fn snapshot(&mut self, _checkpoint_id: u64) -> UserResult<OperatorState> {
        let entries: Vec<(&[u8], &Vec<Acc>)> = self.state.iter().map(|(k, a)| (k.as_ref(), a)).collect();
        Ok(OperatorState {
            keyed: checkpoint::keyed_groups(Some(&self.converter), entries, self.max_parallelism)?,
            ..Default::default()
        })
    }

    fn restore(&mut self, state: OperatorState) -> UserResult<()> {
        let entries = checkpoint::keyed_entries::<Vec<Acc>>(&state)?;
        self.state.reserve(entries.len());
        for (key, accs) in entries {
            self.state.insert(key.into_boxed_slice(), accs);
        }
        Ok(())
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
        };
        let input = batch_of(&[("k", vec![1, 2, 1, 1]), ("v", vec![10, 5, 1, 2])]);
        let mut op = agg.create(&input.schema(), &ctx()).unwrap();
        let mut out = Vec::new();
        op.process_batch(input.clone(), &mut out).unwrap();
        assert_eq!(ints(&out, "n"), [1, 1, 2, 3]);
        assert_eq!(ints(&out, "total"), [10, 5, 11, 13]);
        let state = op.snapshot(1).unwrap();
        assert!(!state.keyed.is_empty());
        let mut restored = agg.create(&input.schema(), &ctx()).unwrap();
        restored.restore(state).unwrap();
        let mut out = Vec::new();
        restored
            .process_batch(batch_of(&[("k", vec![1]), ("v", vec![100])]), &mut out)
            .unwrap();
        assert_eq!((ints(&out, "n"), ints(&out, "total")), (vec![4], vec![113]));
    }
}
