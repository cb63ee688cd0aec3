//! SQL mini-batch (`table.exec.mini-batch.*`): folds an updating aggregate's changelog per key
//! before it leaves the operator chain. Rows are buffered until `allow-latency` of processing
//! time has passed since the first one, `size` rows have arrived, a checkpoint barrier comes
//! (the buffer is emitted ahead of it, so a snapshot never holds unemitted changes) or the
//! input ends. A flush emits each key's net change once: the result the key had before the
//! batch (`-U`) and the one it has now (`+U`), `+I` for a key new in the batch, `-D` for one
//! whose result was withdrawn, and nothing where the result came back to what it was — as
//! Flink's mini-batch aggregate suppresses unchanged results. Downstream (an upsert sink, a
//! changelog file) sees fewer rows with the same final table.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::{OwnedRow, RowConverter, SortField};

use super::running_aggregate::OP_COLUMN;
use super::{Operator, OperatorFactory, TaskContext, UserResult};
use crate::contract::error::{Result, WeirError};
use crate::contract::schema::field_index;
use crate::state::FastMap;

/// The fold's description: the changelog's key fields and when a batch is complete.
#[derive(Debug, Clone)]
pub struct MiniBatch {
    /// The fields that identify a result row (the `GROUP BY` keys).
    pub keys: Vec<String>,
    /// Processing time (ms) a buffered row may wait (`table.exec.mini-batch.allow-latency`).
    pub allow_latency_ms: i64,
    /// Rows buffered before a flush (`table.exec.mini-batch.size`).
    pub size: usize,
}

impl MiniBatch {
    fn plan(&self, input: &SchemaRef) -> Result<(Vec<usize>, usize)> {
        let op = field_index(input, OP_COLUMN, "mini-batch changelog column")
            .map_err(|_| WeirError::plan("mini-batch folds a changelog: its input has no changelog column"))?;
        let keys = self
            .keys
            .iter()
            .map(|k| field_index(input, k, "mini-batch key"))
            .collect::<Result<Vec<_>>>()?;
        if self.size == 0 || self.allow_latency_ms <= 0 {
            return Err(WeirError::plan(
                "mini-batch needs a positive 'table.exec.mini-batch.size' and 'table.exec.mini-batch.allow-latency'",
            ));
        }
        Ok((keys, op))
    }
}

impl OperatorFactory for MiniBatch {
    fn kind(&self) -> &'static str {
        "mini-batch"
    }
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        self.plan(input)?;
        Ok(input.clone())
    }
    fn create(&self, input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let (keys, op) = self.plan(input)?;
        let sort = |i: usize| SortField::new(input.field(i).data_type().clone());
        let values: Vec<usize> = (0..input.fields().len()).filter(|i| *i != op).collect();
        Ok(Box::new(MiniBatchOp {
            key_converter: RowConverter::new(keys.iter().map(|i| sort(*i)).collect())?,
            row_converter: RowConverter::new(values.iter().map(|i| sort(*i)).collect())?,
            keys,
            values,
            op,
            output: input.clone(),
            slots: FastMap::default(),
            changes: Vec::new(),
            buffered: 0,
            deadline: None,
            allow_latency_ms: self.allow_latency_ms,
            size: self.size,
            ctx: ctx.clone(),
        }))
    }
}

/// One key's change within the batch.
struct Change {
    /// The key's result before the batch (`None`: it had none).
    before: Option<OwnedRow>,
    /// Its result now (`None`: withdrawn).
    after: Option<OwnedRow>,
}

struct MiniBatchOp {
    keys: Vec<usize>,
    /// Every column but the changelog kind, in order.
    values: Vec<usize>,
    op: usize,
    output: SchemaRef,
    key_converter: RowConverter,
    row_converter: RowConverter,
    /// Key → index into `changes` (first-seen order, so output is deterministic).
    slots: FastMap<Box<[u8]>, usize>,
    changes: Vec<Change>,
    buffered: usize,
    /// Processing time at which the buffer is flushed.
    deadline: Option<i64>,
    allow_latency_ms: i64,
    size: usize,
    ctx: TaskContext,
}

impl MiniBatchOp {
    fn flush(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        self.slots.clear();
        self.buffered = 0;
        self.deadline = None;
        let changes = std::mem::take(&mut self.changes);
        let mut rows = Vec::with_capacity(changes.len() * 2);
        let mut ops: Vec<&'static str> = Vec::with_capacity(changes.len() * 2);
        for change in &changes {
            match (&change.before, &change.after) {
                (None, Some(after)) => {
                    rows.push(after.row());
                    ops.push("+I");
                }
                (Some(before), Some(after)) if before != after => {
                    rows.extend([before.row(), after.row()]);
                    ops.extend(["-U", "+U"]);
                }
                (Some(before), None) => {
                    rows.push(before.row());
                    ops.push("-D");
                }
                _ => {}
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let values = self.row_converter.convert_rows(rows)?;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.output.fields().len());
        let mut values = values.into_iter();
        for i in 0..self.output.fields().len() {
            if i == self.op {
                columns.push(Arc::new(StringArray::from(ops.clone())));
            } else {
                columns.push(values.next().expect("one converted column per value field"));
            }
        }
        out.push(RecordBatch::try_new(self.output.clone(), columns)?);
        Ok(())
    }
}

impl Operator for MiniBatchOp {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let key_cols: Vec<ArrayRef> = self.keys.iter().map(|i| batch.column(*i).clone()).collect();
        let value_cols: Vec<ArrayRef> = self.values.iter().map(|i| batch.column(*i).clone()).collect();
        let keys = self.key_converter.convert_columns(&key_cols)?;
        let values = self.row_converter.convert_columns(&value_cols)?;
        let ops = batch.column(self.op).as_string::<i32>();
        for row in 0..n {
            let key = keys.row(row);
            let slot = match self.slots.get(key.data()) {
                Some(s) => *s,
                None => {
                    self.slots.insert(key.data().into(), self.changes.len());
                    self.changes.push(Change {
                        before: None,
                        after: None,
                    });
                    let change = self.changes.last_mut().expect("just pushed");
                    // A key's first row in the batch says what it had before: a retraction
                    // names the previous result; an insert means there was none.
                    if ops.is_valid(row) && matches!(ops.value(row), "-U" | "-D") {
                        change.before = Some(values.row(row).owned());
                    }
                    self.changes.len() - 1
                }
            };
            let change = &mut self.changes[slot];
            change.after = match ops.is_valid(row).then(|| ops.value(row)) {
                Some("-U") | Some("-D") => None,
                _ => Some(values.row(row).owned()),
            };
        }
        self.buffered += n;
        if self.deadline.is_none() {
            self.deadline = Some(self.ctx.now_ms().saturating_add(self.allow_latency_ms));
        }
        if self.buffered >= self.size {
            self.flush(out)?;
        }
        Ok(())
    }

    fn next_processing_timer(&self) -> Option<i64> {
        self.deadline
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        if self.deadline.is_some_and(|d| now >= d) {
            self.flush(out)?;
        }
        Ok(())
    }

    fn before_barrier(&mut self, _checkpoint_id: u64, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        Ok(self.flush(out)?)
    }

    fn on_end(&mut self, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        Ok(self.flush(out)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::testing::{ctx, ints};
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    fn changelog(rows: &[(i64, i64, &str)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("total", DataType::Int64, false),
            Field::new(OP_COLUMN, DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap()
    }

    fn ops(out: &[RecordBatch]) -> Vec<String> {
        out.iter()
            .flat_map(|b| {
                b.column(2)
                    .as_string::<i32>()
                    .iter()
                    .map(|s| s.unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn a_flush_emits_each_keys_net_change_once_and_nothing_for_an_unchanged_result() {
        let fold = MiniBatch {
            keys: vec!["k".into()],
            allow_latency_ms: 1_000,
            size: 1_000,
        };
        // The test's clock stands at 0.
        let task = ctx();
        let input = changelog(&[
            (1, 10, "+I"),
            (2, 5, "+I"),
            (1, 10, "-U"),
            (1, 11, "+U"),
            (3, 7, "-U"),
            (3, 9, "+U"),
            (3, 9, "-U"),
            (3, 7, "+U"),
            (4, 2, "-D"),
            (1, 11, "-U"),
            (1, 12, "+U"),
        ]);
        let mut op = fold.create(&input.schema(), &task).unwrap();
        let mut out = Vec::new();
        op.process_batch(input, &mut out).unwrap();
        assert!(out.is_empty(), "rows wait for the batch to end");
        assert_eq!(op.next_processing_timer(), Some(1_000));
        op.on_processing_time(999, &mut out).unwrap();
        assert!(out.is_empty());
        op.on_processing_time(1_000, &mut out).unwrap();
        // Key 1: new in the batch, ends at 12. Key 2: new. Key 3: back where it was (nothing).
        // Key 4: withdrawn.
        assert_eq!(ints(&out, "k"), [1, 2, 4]);
        assert_eq!(ints(&out, "total"), [12, 5, 2]);
        assert_eq!(ops(&out), ["+I", "+I", "-D"]);
        assert_eq!(op.next_processing_timer(), None);

        // The next batch retracts what the last flush emitted, once per key.
        let mut out = Vec::new();
        op.process_batch(
            changelog(&[(1, 12, "-U"), (1, 13, "+U"), (1, 13, "-U"), (1, 14, "+U")]),
            &mut out,
        )
        .unwrap();
        op.before_barrier(1, &mut out).unwrap();
        assert_eq!(ints(&out, "total"), [12, 14]);
        assert_eq!(ops(&out), ["-U", "+U"]);
    }

    #[test]
    fn the_size_limit_flushes_without_waiting_and_a_bad_setting_is_refused() {
        let fold = MiniBatch {
            keys: vec!["k".into()],
            allow_latency_ms: 60_000,
            size: 3,
        };
        let input = changelog(&[(1, 1, "+I"), (1, 1, "-U"), (1, 2, "+U")]);
        let mut op = fold.create(&input.schema(), &ctx()).unwrap();
        let mut out = Vec::new();
        op.process_batch(input.clone(), &mut out).unwrap();
        assert_eq!((ints(&out, "total"), ops(&out)), (vec![2], vec!["+I".to_string()]));
        let zero = MiniBatch { size: 0, ..fold };
        let err = zero.create(&input.schema(), &ctx()).err().unwrap().to_string();
        assert!(err.contains("table.exec.mini-batch.size"), "{err}");
    }
}
