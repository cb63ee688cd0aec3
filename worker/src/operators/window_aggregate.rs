//! `window(...).aggregate(...)`: event-time tumbling and sliding windows per key with
//! incremental built-in aggregates. Output rows: the key fields, `window_start`, `window_end`,
//! then one column per aggregate.
//!
//! State is one map per window start, from the key (Arrow row format bytes) to the
//! accumulators. A watermark `W` fires every window whose end − 1 ≤ `W` and drops windows past
//! their allowed lateness. A record for a window that already fired, within the lateness,
//! updates it and fires it again; a record all of whose windows are past lateness is late: it
//! is counted in the node's `late_records` and logged.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::row::RowConverter;

use super::{Operator, OperatorFactory, TaskContext, UserResult};
use crate::error::{Result, WeirError};
use crate::partition::field_index;
use crate::window::aggregate::{Acc, PlannedAgg, Values, key_converter, plan_keyed_output};
use crate::window::{Agg, EVENT_TIME_METADATA, WindowAssigner, WindowKind};

/// The window operator's description.
#[derive(Debug, Clone)]
pub struct WindowAggregate {
    /// Key fields (empty: one global key, parallelism 1).
    pub keys: Vec<String>,
    /// Window assigner.
    pub assigner: WindowAssigner,
    /// Aggregates.
    pub aggs: Vec<Agg>,
    /// Allowed lateness, ms.
    pub allowed_lateness: i64,
}

/// A window operator checked against its input.
pub(crate) struct Planned {
    pub(crate) key_columns: Vec<usize>,
    /// None: processing time.
    pub(crate) time_column: Option<usize>,
    pub(crate) aggs: Vec<PlannedAgg>,
    pub(crate) output: SchemaRef,
}

impl Planned {
    /// Output rows for `(start, end, key, accumulators)`.
    pub(crate) fn emit(
        &self,
        converter: Option<&RowConverter>,
        rows: &[(i64, i64, &[u8], &[Acc])],
    ) -> UserResult<Option<RecordBatch>> {
        if rows.is_empty() {
            return Ok(None);
        }
        let mut columns: Vec<ArrayRef> = Vec::new();
        if let Some(conv) = converter {
            let parser = conv.parser();
            columns.extend(conv.convert_rows(rows.iter().map(|r| parser.parse(r.2)))?);
        }
        columns.push(Arc::new(TimestampMillisecondArray::from_iter_values(
            rows.iter().map(|r| r.0),
        )));
        columns.push(Arc::new(TimestampMillisecondArray::from_iter_values(
            rows.iter().map(|r| r.1),
        )));
        for (i, agg) in self.aggs.iter().enumerate() {
            let accs: Vec<&Acc> = rows.iter().map(|r| &r.3[i]).collect();
            columns.push(agg.finish(&accs)?);
        }
        Ok(Some(RecordBatch::try_new(self.output.clone(), columns)?))
    }

    /// Every aggregate's input values in `batch`.
    pub(crate) fn values(&self, batch: &RecordBatch) -> Result<Vec<Values>> {
        self.aggs.iter().map(|a| a.values(batch)).collect()
    }

    /// Event time of every row as milliseconds.
    pub(crate) fn times(&self, batch: &RecordBatch) -> UserResult<arrow::array::Int64Array> {
        let Some(column) = self.time_column else {
            let now = super::keyed_process::now_ms();
            return Ok(arrow::array::Int64Array::from_value(now, batch.num_rows()));
        };
        let time = batch.column(column);
        let time = match time.data_type() {
            DataType::Timestamp(u, _) if *u != TimeUnit::Millisecond => {
                cast(time, &DataType::Timestamp(TimeUnit::Millisecond, None))?
            }
            _ => time.clone(),
        };
        Ok(cast(&time, &DataType::Int64)?.as_primitive::<Int64Type>().clone())
    }

    /// The key of every row in Arrow's row format (none without keys).
    pub(crate) fn keys(
        &self,
        converter: Option<&RowConverter>,
        batch: &RecordBatch,
    ) -> UserResult<Option<arrow::row::Rows>> {
        match converter {
            Some(c) => {
                let cols: Vec<ArrayRef> = self.key_columns.iter().map(|k| batch.column(*k).clone()).collect();
                Ok(Some(c.convert_columns(&cols)?))
            }
            None => Ok(None),
        }
    }
}

impl WindowAggregate {
    fn plan(&self, input: &SchemaRef) -> Result<Planned> {
        self.assigner.validate()?;
        if self.aggs.is_empty() {
            return Err(WeirError::plan("window aggregate: no aggregates given"));
        }
        if self.allowed_lateness < 0 {
            return Err(WeirError::plan("window: allowed lateness must not be negative"));
        }
        let time_column = if self.assigner.processing_time {
            if self.assigner.kind == WindowKind::Session {
                return Err(WeirError::plan(
                    "window: processing-time session windows are not supported yet",
                ));
            }
            None
        } else {
            let column = match &self.assigner.time_field {
                Some(f) => field_index(input, f, "window time field")?,
                None => input.fields().iter().position(|f| f.metadata().contains_key(EVENT_TIME_METADATA)).ok_or_else(
                    || {
                        WeirError::plan(
                            "window: no event time in this stream; give the source a watermark strategy or name the time field",
                        )
                    },
                )?,
            };
            let tdt = input.field(column).data_type();
            if !matches!(tdt, DataType::Timestamp(_, _) | DataType::Int64) {
                return Err(WeirError::plan(format!(
                    "window: time field '{}' is {tdt}; use a timestamp or integer milliseconds",
                    input.field(column).name()
                )));
            }
            Some(column)
        };
        let (key_columns, aggs, output) =
            plan_keyed_output(input, &self.keys, &self.aggs, Some(false), "window aggregate")?;
        Ok(Planned {
            key_columns,
            time_column,
            aggs,
            output,
        })
    }
}

impl OperatorFactory for WindowAggregate {
    fn kind(&self) -> &'static str {
        "window"
    }
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.plan(input)?.output)
    }
    fn create(&self, input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let planned = self.plan(input)?;
        let converter = key_converter(input, &planned.key_columns)?;
        if self.assigner.kind == WindowKind::Session {
            return Ok(Box::new(super::session_window::SessionWindowOp::new(
                ctx.clone(),
                self.assigner.size,
                self.allowed_lateness,
                planned,
                converter,
            )));
        }
        Ok(Box::new(WindowAggregateOp {
            ctx: ctx.clone(),
            assigner: self.assigner.clone(),
            lateness: self.allowed_lateness,
            planned,
            converter,
            windows: BTreeMap::new(),
            watermark: i64::MIN,
            late: 0,
            side: Vec::new(),
        }))
    }
}

struct WindowAggregateOp {
    ctx: TaskContext,
    assigner: WindowAssigner,
    lateness: i64,
    planned: Planned,
    converter: Option<RowConverter>,
    /// Window start → key → accumulators.
    windows: BTreeMap<i64, HashMap<Box<[u8]>, Vec<Acc>>>,
    watermark: i64,
    late: u64,
    /// Late records waiting to go to the side output.
    side: Vec<RecordBatch>,
}

impl WindowAggregateOp {
    /// Latest window start whose window has fired by watermark `w` (end − 1 ≤ w).
    fn fired_by(&self, w: i64) -> i128 {
        i128::from(w) + 1 - i128::from(self.assigner.size)
    }

    fn note_late(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        self.late += n;
        self.ctx.add_late(n);
        if self.late == n {
            tracing::warn!(node = %self.ctx.node, subtask = self.ctx.subtask, "records arrived after their windows' allowed lateness (counted in late_records)");
        }
    }
}

impl Operator for WindowAggregateOp {
    fn take_side_output(&mut self) -> Vec<RecordBatch> {
        std::mem::take(&mut self.side)
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let n = batch.num_rows();
        let time = self.planned.times(&batch)?;
        let values = self.planned.values(&batch)?;
        let keys = self.planned.keys(self.converter.as_ref(), &batch)?;
        let naggs = self.planned.aggs.len();
        let fired_by = self.fired_by(self.watermark);
        let expired_by = fired_by - i128::from(self.lateness);
        let mut refire: Vec<(i64, Box<[u8]>)> = Vec::new();
        let mut late = 0;
        let mut late_rows: Vec<u32> = Vec::new();
        for row in 0..n {
            if time.is_null(row) {
                late += 1;
                late_rows.push(row as u32);
                continue;
            }
            let t = time.value(row);
            let key: &[u8] = keys.as_ref().map_or(&[], |k| k.row(row).data());
            let mut assigned = false;
            for start in self.assigner.starts(t) {
                if i128::from(start) <= expired_by {
                    continue; // past its allowed lateness
                }
                assigned = true;
                let per_key = self.windows.entry(start).or_default();
                let accs = match per_key.get_mut(key) {
                    Some(a) => a,
                    None => per_key.entry(key.into()).or_insert_with(|| vec![Acc::default(); naggs]),
                };
                for (agg, (acc, v)) in self.planned.aggs.iter().zip(accs.iter_mut().zip(&values)) {
                    agg.update(acc, v, row);
                }
                if i128::from(start) <= fired_by {
                    refire.push((start, key.into()));
                }
            }
            if !assigned {
                late += 1;
                late_rows.push(row as u32);
            }
        }
        if !late_rows.is_empty() {
            let rows = arrow::array::UInt32Array::from(std::mem::take(&mut late_rows));
            self.side.push(arrow::compute::take_record_batch(&batch, &rows)?);
        }
        self.note_late(late);
        if !refire.is_empty() {
            refire.sort();
            refire.dedup();
            let size = self.assigner.size;
            let rows: Vec<(i64, i64, &[u8], &[Acc])> = refire
                .iter()
                .map(|(s, k)| (*s, *s + size, k.as_ref(), self.windows[s][k.as_ref()].as_slice()))
                .collect();
            out.extend(self.planned.emit(self.converter.as_ref(), &rows)?);
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        if self.assigner.processing_time {
            return Ok(()); // the wall clock drives these windows
        }
        self.advance(watermark, out)
    }

    fn next_processing_timer(&self) -> Option<i64> {
        if !self.assigner.processing_time {
            return None;
        }
        self.windows
            .first_key_value()
            .map(|(start, _)| start + self.assigner.size - 1)
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        if self.assigner.processing_time {
            self.advance(now, out)
        } else {
            Ok(())
        }
    }

    fn on_end(&mut self, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        if self.assigner.processing_time {
            return Ok(()); // as in Flink: processing-time windows still open are dropped
        }
        // The end of input arrives as the final watermark; fire anything left regardless.
        self.advance(i64::MAX, out)
    }
}

impl WindowAggregateOp {
    /// Moves this operator's clock (the watermark, or the wall clock for processing time) to
    /// `watermark`: fires the windows it passed and drops those past their lateness.
    fn advance(&mut self, watermark: i64, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        if watermark <= self.watermark {
            return Ok(());
        }
        let (before, after) = (self.fired_by(self.watermark), self.fired_by(watermark));
        self.watermark = watermark;
        {
            let size = self.assigner.size;
            let mut rows: Vec<(i64, i64, &[u8], &[Acc])> = Vec::new();
            for (start, per_key) in &self.windows {
                let s = i128::from(*start);
                if s > after {
                    break;
                }
                if s > before {
                    rows.extend(
                        per_key
                            .iter()
                            .map(|(k, a)| (*start, *start + size, k.as_ref(), a.as_slice())),
                    );
                }
            }
            out.extend(self.planned.emit(self.converter.as_ref(), &rows)?);
        }
        // Drop windows past their allowed lateness.
        let expired = after - i128::from(self.lateness);
        while let Some((&start, _)) = self.windows.first_key_value() {
            if i128::from(start) > expired {
                break;
            }
            self.windows.pop_first();
        }
        Ok(())
    }
}
