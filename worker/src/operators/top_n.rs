//! Top-N per key (Flink's rank: `ROW_NUMBER() OVER (PARTITION BY … ORDER BY …)` filtered by
//! `rownum <= N`, and deduplication with `N = 1`) over an append-only input: each key keeps
//! its best `n` rows in order (a row pushed out can never come back, so nothing else is kept),
//! in keyed state per key group. The output is a changelog of the rows with their rank: a row
//! entering at rank `r` is `+I`; the rows it moves down are `-U` at their old rank and `+U` at
//! the new one; the row pushed out of the top `n` is `-D`. Ties keep the earlier row first.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use serde::{Deserialize, Serialize};

use super::join_rows::ROW_BYTES;
use super::row_codec::RowCodec;
use super::running_aggregate::OP_COLUMN;
use super::{Operator, OperatorFactory, TaskContext, UserResult};
use crate::checkpoint::OperatorState;
use crate::contract::error::{Result, WeirError};
use crate::contract::schema::field_index;
use crate::contract::state::Snapshot;
use crate::state::StateTable;
use crate::state::ttl::{Stamp, Ttl};

/// One sort column: its name, descending or not, nulls first or not.
#[derive(Debug, Clone, PartialEq)]
pub struct SortColumn {
    /// Column name.
    pub name: String,
    /// Largest first.
    pub descending: bool,
    /// Nulls before the values.
    pub nulls_first: bool,
}

/// The operator's description.
#[derive(Debug, Clone)]
pub struct TopN {
    /// Key columns (`PARTITION BY`).
    pub keys: Vec<String>,
    /// Order within a key (`ORDER BY`).
    pub order: Vec<SortColumn>,
    /// Rows kept per key.
    pub n: usize,
    /// Name of the rank column appended to each row.
    pub rank: String,
    /// `table.exec.state.ttl` (ms): a key whose rows did not change for this long is dropped.
    pub state_ttl: Option<i64>,
}

impl TopN {
    fn plan(&self, input: &SchemaRef) -> Result<(Vec<usize>, Vec<usize>, SchemaRef)> {
        if input.index_of(OP_COLUMN).is_ok() {
            return Err(WeirError::plan(
                "Top-N (ROW_NUMBER() … WHERE rownum <= N) over an updating input is not supported yet",
            ));
        }
        if self.n == 0 {
            return Err(WeirError::plan("Top-N keeps at least one row per key"));
        }
        let keys = self
            .keys
            .iter()
            .map(|k| field_index(input, k, "Top-N key"))
            .collect::<Result<Vec<_>>>()?;
        let order = self
            .order
            .iter()
            .map(|o| field_index(input, &o.name, "Top-N order"))
            .collect::<Result<Vec<_>>>()?;
        if order.is_empty() {
            return Err(WeirError::plan("Top-N needs an ORDER BY"));
        }
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(&self.rank, DataType::UInt64, false));
        fields.push(Field::new(OP_COLUMN, DataType::Utf8, false));
        Ok((keys, order, Arc::new(Schema::new(fields))))
    }
}

impl OperatorFactory for TopN {
    fn kind(&self) -> &'static str {
        "top-n"
    }
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.plan(input)?.2)
    }
    fn create(&self, input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let (keys, order, output) = self.plan(input)?;
        let field = |i: &usize| input.field(*i).data_type().clone();
        let key_converter = RowConverter::new(keys.iter().map(|k| SortField::new(field(k))).collect())?;
        let sort_converter = RowConverter::new(
            order
                .iter()
                .zip(&self.order)
                .map(|(c, o)| {
                    SortField::new_with_options(
                        field(c),
                        SortOptions {
                            descending: o.descending,
                            nulls_first: o.nulls_first,
                        },
                    )
                })
                .collect(),
        )?;
        let rows = RowCodec::new(input)?;
        Ok(Box::new(TopNOp {
            n: self.n,
            keys,
            order,
            key_converter,
            sort_converter,
            rows,
            output,
            // Weighed by its rows: a key made empty fills up after the disk backend weighed it.
            state: StateTable::with_codec(
                &ctx.state,
                crate::state::Codec::serde()
                    .weighed(|s: &KeyState| s.rows.iter().map(|(k, r)| k.len() + r.len() + ROW_BYTES).sum()),
            )?,
            max_parallelism: ctx.max_parallelism,
            ttl: Ttl::new(self.state_ttl, &ctx.clock),
        }))
    }
}

/// One key's best rows, best first: (sort key in Arrow's row format, row as [`RowCodec`] bytes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct KeyState {
    rows: Vec<(Vec<u8>, Vec<u8>)>,
    /// Last change (processing time), with a state TTL.
    stamp: Stamp,
}

crate::state::ttl::stamped!(KeyState);

struct TopNOp {
    n: usize,
    keys: Vec<usize>,
    order: Vec<usize>,
    key_converter: RowConverter,
    sort_converter: RowConverter,
    rows: RowCodec,
    output: SchemaRef,
    state: StateTable<KeyState>,
    max_parallelism: u32,
    ttl: Ttl,
}

impl Operator for TopNOp {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let now = self.ttl.begin(&mut self.state)?;
        let columns = |idx: &[usize]| idx.iter().map(|i| batch.column(*i).clone()).collect::<Vec<ArrayRef>>();
        let key_columns = columns(&self.keys);
        let keys = self.key_converter.convert_columns(&key_columns)?;
        let groups = crate::keys::key_groups(&key_columns, batch.num_rows(), self.max_parallelism)?;
        let sorts = self.sort_converter.convert_columns(&columns(&self.order))?;
        let rows = self.rows.encode(batch.columns())?;
        // Output rows: (row, rank, op).
        let mut emitted: Vec<(Vec<u8>, u64, &'static str)> = Vec::new();
        for (i, &group) in groups.iter().enumerate() {
            let sort = sorts.row(i);
            let sort: &[u8] = sort.as_ref();
            let key = keys.row(i);
            let key: &[u8] = key.as_ref();
            // After every row that sorts before or equal to it: ties keep the earlier first.
            let place = |state: &KeyState| state.rows.partition_point(|(k, _)| k.as_slice() <= sort);
            // A row that does not make the top N leaves the key's state untouched (no copy for
            // the next checkpoint).
            if self.state.get(group, key)?.is_some_and(|s| place(s) >= self.n) {
                continue;
            }
            let state = self.state.get_or_insert_with(group, key, KeyState::default)?;
            self.ttl.touch(state, group, key, now);
            let at = place(state);
            state.rows.insert(at, (sort.to_vec(), rows.row(i).to_vec()));
            if state.rows.len() > self.n {
                let (_, gone) = state.rows.pop().expect("more than n");
                emitted.push((gone, self.n as u64, "-D"));
            }
            for (r, (_, moved)) in state.rows.iter().enumerate().skip(at + 1) {
                emitted.push((moved.clone(), r as u64, "-U"));
                emitted.push((moved.clone(), r as u64 + 1, "+U"));
            }
            emitted.push((state.rows[at].1.clone(), at as u64 + 1, "+I"));
        }
        if emitted.is_empty() {
            return Ok(());
        }
        let mut columns = self.rows.decode(emitted.iter().map(|(r, _, _)| r.as_slice()))?;
        columns.push(Arc::new(UInt64Array::from_iter_values(
            emitted.iter().map(|(_, r, _)| *r),
        )));
        columns.push(Arc::new(StringArray::from_iter_values(
            emitted.iter().map(|(_, _, op)| *op),
        )));
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
    use arrow::array::{AsArray, Int64Array};

    fn shown(out: &[RecordBatch]) -> Vec<String> {
        let mut rows = Vec::new();
        for b in out {
            let v = b
                .column_by_name("v")
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            let rank = b
                .column_by_name("rn")
                .unwrap()
                .as_any()
                .downcast_ref::<UInt64Array>()
                .unwrap();
            let op = b.column_by_name(OP_COLUMN).unwrap().as_string::<i32>();
            for i in 0..b.num_rows() {
                rows.push(format!("{} {} #{}", op.value(i), v.value(i), rank.value(i)));
            }
        }
        rows
    }

    fn top(n: usize, descending: bool) -> Box<dyn Operator> {
        TopN {
            keys: vec!["k".into()],
            order: vec![SortColumn {
                name: "v".into(),
                descending,
                nulls_first: false,
            }],
            n,
            rank: "rn".into(),
            state_ttl: None,
        }
        .create(&batch_of(&[("k", vec![0]), ("v", vec![0])]).schema(), &ctx())
        .unwrap()
    }

    #[test]
    fn the_best_two_per_key_move_down_and_out_as_better_rows_arrive() {
        let mut op = top(2, true);
        let mut out = Vec::new();
        op.process_batch(
            batch_of(&[("k", vec![1, 1, 2, 1, 1]), ("v", vec![5, 3, 9, 7, 1])]),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            shown(&out),
            [
                "+I 5 #1", "+I 3 #2", "+I 9 #1", // 7 enters first: 3 drops out, 5 moves to second.
                "-D 3 #2", "-U 5 #1", "+U 5 #2", "+I 7 #1",
                // 1 is not in the top two: nothing.
            ]
        );
    }

    #[test]
    fn deduplication_keeps_the_first_row_of_a_key_on_ties_and_restores() {
        let mut op = top(1, false);
        let mut out = Vec::new();
        op.process_batch(batch_of(&[("k", vec![1, 1]), ("v", vec![4, 4])]), &mut out)
            .unwrap();
        assert_eq!(shown(&out), ["+I 4 #1"], "a tie keeps the earlier row");
        let state = op.snapshot(1, false).unwrap().into_state().unwrap();
        let mut restored = top(1, false);
        restored.restore(state).unwrap();
        let mut out = Vec::new();
        restored
            .process_batch(batch_of(&[("k", vec![1]), ("v", vec![2])]), &mut out)
            .unwrap();
        assert_eq!(shown(&out), ["-D 4 #1", "+I 2 #1"]);
    }

    #[test]
    fn with_a_state_ttl_a_deduplicated_key_shows_again_once_its_row_expired() {
        let clock = crate::contract::ManualClock::new(0);
        let spec = TopN {
            keys: vec!["k".into()],
            order: vec![SortColumn {
                name: "t".into(),
                descending: false,
                nulls_first: false,
            }],
            n: 1,
            rank: "rn".into(),
            state_ttl: Some(1_000),
        };
        let rows = |k: i64, t: i64| batch_of(&[("k", vec![k]), ("t", vec![t])]);
        let mut op = spec
            .create(&rows(0, 0).schema(), &crate::operators::testing::ctx_on(&clock))
            .unwrap();
        let mut out = Vec::new();
        op.process_batch(rows(1, 5), &mut out).unwrap();
        clock.set(500);
        // Not first: it leaves the key (and its expiry) alone.
        op.process_batch(rows(1, 6), &mut out).unwrap();
        clock.set(1_000);
        op.process_batch(rows(1, 7), &mut out).unwrap();
        assert_eq!(
            ints(&out, "t"),
            [5, 7],
            "the first row, then the first after it expired"
        );
    }
}
