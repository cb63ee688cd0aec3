//! Count windows per key (Flink's `countWindow(size)` and `countWindow(size, slide)`): fire
//! every `slide` records of a key with its last `size` records (tumbling when equal). A window
//! that never fills does not fire, as in Flink. `window_start` / `window_end` span the event
//! times of the window's records when the stream has event time, else they are null.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{Array, TimestampMillisecondArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::RowConverter;

use super::bounds::{shown, shown_schema};
use super::planned::Planned;
use crate::checkpoint::OperatorState;
use crate::contract::error::{Result, WeirError};
use crate::contract::state::Snapshot;
use crate::operators::{Operator, OperatorFactory, TaskContext, UserResult};
use crate::state::StateTable;
use crate::window::aggregate::{Acc, key_converter, plan_keyed_output};
use crate::window::{Agg, EVENT_TIME_METADATA};

/// The count window operator's description.
#[derive(Debug, Clone)]
pub struct CountWindowAggregate {
    /// Key fields.
    pub keys: Vec<String>,
    /// Records per window.
    pub size: u64,
    /// Records between firings.
    pub slide: u64,
    /// Aggregates.
    pub aggs: Vec<Agg>,
}

impl CountWindowAggregate {
    fn plan(&self, input: &SchemaRef) -> Result<Planned> {
        if self.size == 0 || self.slide == 0 || self.slide > self.size {
            return Err(WeirError::plan(format!(
                "count window: size ({}) and slide ({}) must be positive, slide at most size",
                self.size, self.slide
            )));
        }
        let (key_columns, aggs, output) = plan_keyed_output(input, &self.keys, &self.aggs, Some(true), "count window")?;
        let time_column = input
            .fields()
            .iter()
            .position(|f| f.metadata().contains_key(EVENT_TIME_METADATA));
        Ok(Planned {
            key_columns,
            time_column,
            aggs,
            output,
        })
    }
}

impl OperatorFactory for CountWindowAggregate {
    fn kind(&self) -> &'static str {
        "count_window"
    }
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        let planned = self.plan(input)?;
        Ok(shown_schema(input, planned.time_column, &planned.output))
    }
    fn create(&self, input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let planned = self.plan(input)?;
        let (time_column, output) = (planned.time_column, planned.output.clone());
        let converter = key_converter(input, &planned.key_columns)?
            .ok_or_else(|| WeirError::plan("count windows need key_by first"))?;
        let op = Box::new(CountWindowOp {
            size: self.size as usize,
            slide: self.slide as usize,
            planned,
            converter,
            per_key: StateTable::new(&ctx.state)?,
            max_parallelism: ctx.max_parallelism,
        });
        Ok(shown(input, time_column, &output, op))
    }
}

#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
struct KeyWindow {
    /// The last `size` records: event time and single-record accumulators.
    recent: VecDeque<(Option<i64>, Vec<Acc>)>,
    since_fire: usize,
}

/// A window that fired: key, event-time span, accumulators.
type Fired = (Box<[u8]>, Option<i64>, Option<i64>, Vec<Acc>);

struct CountWindowOp {
    size: usize,
    slide: usize,
    planned: Planned,
    converter: RowConverter,
    per_key: StateTable<KeyWindow>,
    max_parallelism: u32,
}

impl Operator for CountWindowOp {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let values = self.planned.values(&batch)?;
        let keys = self
            .planned
            .keys(Some(&self.converter), &batch)?
            .expect("a converter gives keys");
        // Event time in ms when the stream has it (the window's span), else none.
        let time = self.planned.event_times(&batch)?;
        let time = time.as_ref();
        let groups = self
            .planned
            .key_groups(true, &batch, self.max_parallelism)?
            .expect("keyed");
        let mut fired: Vec<Fired> = Vec::new();
        for (row, &group) in groups.iter().enumerate() {
            let key = keys.row(row);
            let key = key.data();
            let w = self.per_key.get_or_insert_with(group, key, KeyWindow::default)?;
            let mut accs = vec![Acc::default(); self.planned.aggs.len()];
            for (agg, (acc, v)) in self.planned.aggs.iter().zip(accs.iter_mut().zip(&values)) {
                agg.update(acc, v, row);
            }
            let ts = time.and_then(|t| t.is_valid(row).then(|| t.value(row)));
            w.recent.push_back((ts, accs));
            if w.recent.len() > self.size {
                w.recent.pop_front();
            }
            w.since_fire += 1;
            if w.since_fire == self.slide && (self.slide < self.size || w.recent.len() == self.size) {
                w.since_fire = 0;
                let mut total = vec![Acc::default(); self.planned.aggs.len()];
                for (_, part) in &w.recent {
                    for (agg, (into, from)) in self.planned.aggs.iter().zip(total.iter_mut().zip(part)) {
                        agg.merge_in_order(into, from);
                    }
                }
                let start = w.recent.iter().filter_map(|r| r.0).min();
                let end = w.recent.iter().filter_map(|r| r.0).max().map(|t| t + 1);
                fired.push((key.into(), start, end, total));
                if self.slide == self.size {
                    w.recent.clear();
                }
            }
        }
        if fired.is_empty() {
            return Ok(());
        }
        let parser = self.converter.parser();
        let mut columns = self.converter.convert_rows(fired.iter().map(|f| parser.parse(&f.0)))?;
        columns.push(Arc::new(
            fired.iter().map(|f| f.1).collect::<TimestampMillisecondArray>(),
        ));
        columns.push(Arc::new(
            fired.iter().map(|f| f.2).collect::<TimestampMillisecondArray>(),
        ));
        for (i, agg) in self.planned.aggs.iter().enumerate() {
            let accs: Vec<&Acc> = fired.iter().map(|f| &f.3[i]).collect();
            columns.push(agg.finish(&accs)?);
        }
        out.push(RecordBatch::try_new(self.planned.output.clone(), columns)?);
        Ok(())
    }

    fn snapshot(&mut self, _checkpoint_id: u64, changes_only: bool) -> UserResult<Snapshot> {
        self.per_key.snapshot(changes_only, None)
    }

    fn restore(&mut self, state: OperatorState) -> UserResult<()> {
        self.per_key.restore(&state)
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
    fn a_count_window_fires_every_slide_records_of_a_key() {
        let w = CountWindowAggregate {
            keys: vec!["k".into()],
            size: 3,
            slide: 2,
            aggs: vec![Agg::sum("v").alias("total")],
        };
        let input = batch_of(&[("k", vec![1, 1, 2, 1, 1, 1]), ("v", vec![1, 2, 100, 3, 4, 5])]);
        let mut op = w.create(&input.schema(), &ctx()).unwrap();
        let mut out = Vec::new();
        op.process_batch(input, &mut out).unwrap();
        // Key 1 sees 1, 2, 3, 4, 5: fires after 2 (1+2), 4 (2+3+4: the last 3) records.
        assert_eq!(ints(&out, "total"), [3, 9]);
        assert_eq!(ints(&out, "k"), [1, 1]);
    }
}
