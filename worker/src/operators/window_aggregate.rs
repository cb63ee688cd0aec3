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

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::row::RowConverter;

use super::{Operator, OperatorFactory, TaskContext, UserResult};
use crate::checkpoint::{self, OperatorState};
use crate::error::{Result, WeirError};
use crate::partition::field_index;
use crate::state::FastMap;
use crate::window::aggregate::{PlannedAgg, Values, key_converter, plan_keyed_output};
use crate::window::contents::{Builtin, Fired, TimeWindow, WindowContents};
use crate::window::functions::UserWindowFn;
use crate::window::trigger::Trigger;
use crate::window::{Agg, EVENT_TIME_METADATA, WindowAssigner, WindowKind};

/// What a window computes when it fires.
#[derive(Debug, Clone)]
pub(crate) enum WindowFunction {
    /// Built-in incremental aggregates (column-wise, the fast path).
    Aggregates(Vec<Agg>),
    /// A user function: process, reduce or `AggregateFunction`.
    User(UserWindowFn),
}

/// The window operator's description.
#[derive(Clone)]
pub struct WindowAggregate {
    /// Key fields (empty: one global key, parallelism 1).
    pub keys: Vec<String>,
    /// Window assigner.
    pub assigner: WindowAssigner,
    /// What to compute per window.
    pub(crate) function: WindowFunction,
    /// Allowed lateness, ms.
    pub allowed_lateness: i64,
    /// When global windows fire (required for them, refused for the others).
    pub trigger: Option<Arc<dyn Trigger>>,
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
        let global = self.assigner.kind == WindowKind::Global;
        if global != self.trigger.is_some() {
            return Err(WeirError::plan(if global {
                "window: global windows need a trigger (e.g. CountTrigger::of(100))"
            } else {
                "window: custom triggers are only available on global windows"
            }));
        }
        if self.allowed_lateness < 0 {
            return Err(WeirError::plan("window: allowed lateness must not be negative"));
        }
        let event_time = input
            .fields()
            .iter()
            .position(|f| f.metadata().contains_key(EVENT_TIME_METADATA));
        let time_column = if global {
            match &self.assigner.time_field {
                Some(f) => Some(field_index(input, f, "window time field")?),
                None => event_time,
            }
        } else if self.assigner.processing_time {
            if self.assigner.kind == WindowKind::Session {
                return Err(WeirError::plan(
                    "window: processing-time session windows are not supported yet",
                ));
            }
            None
        } else {
            let column = match &self.assigner.time_field {
                Some(f) => field_index(input, f, "window time field")?,
                None => event_time.ok_or_else(|| {
                    WeirError::plan(
                        "window: no event time in this stream; give the source a watermark strategy or name the time field",
                    )
                })?,
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
        let (key_columns, aggs, output) = match &self.function {
            WindowFunction::Aggregates(aggs) => {
                plan_keyed_output(input, &self.keys, aggs, Some(global), "window aggregate")?
            }
            WindowFunction::User(f) => {
                let key_columns = self
                    .keys
                    .iter()
                    .map(|k| field_index(input, k, "window key"))
                    .collect::<Result<Vec<_>>>()?;
                let output = f.output_schema(input, &key_columns, global)?;
                (key_columns, Vec::new(), output)
            }
        };
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
        match &self.function {
            WindowFunction::Aggregates(_) => {
                let contents = Builtin::new(
                    planned.aggs.clone(),
                    planned.output.clone(),
                    key_converter(input, &planned.key_columns)?,
                );
                Ok(self.operator(ctx, planned, converter, contents))
            }
            WindowFunction::User(f) => {
                let contents = f.contents(planned.output.clone(), key_converter(input, &planned.key_columns)?);
                Ok(self.operator(ctx, planned, converter, contents))
            }
        }
    }
}

impl WindowAggregate {
    /// The operator for this window kind, holding `contents`.
    fn operator<C: WindowContents>(
        &self,
        ctx: &TaskContext,
        planned: Planned,
        converter: Option<RowConverter>,
        contents: C,
    ) -> Box<dyn Operator> {
        match self.assigner.kind {
            WindowKind::Session => Box::new(super::session_window::SessionWindowOp::new(
                ctx.clone(),
                self.assigner.size,
                self.allowed_lateness,
                planned,
                converter,
                contents,
            )),
            WindowKind::Global => Box::new(super::global_window::GlobalWindowOp::new(
                ctx.max_parallelism,
                self.trigger.clone().expect("checked by plan"),
                planned,
                converter,
                contents,
            )),
            WindowKind::Sliding => Box::new(WindowAggregateOp {
                ctx: ctx.clone(),
                assigner: self.assigner.clone(),
                lateness: self.allowed_lateness,
                planned,
                converter,
                contents,
                windows: BTreeMap::new(),
                watermark: i64::MIN,
                late: 0,
                side: Vec::new(),
            }),
        }
    }
}

struct WindowAggregateOp<C: WindowContents> {
    ctx: TaskContext,
    assigner: WindowAssigner,
    lateness: i64,
    planned: Planned,
    converter: Option<RowConverter>,
    contents: C,
    /// Window start → key → contents.
    windows: BTreeMap<i64, FastMap<Box<[u8]>, C::State>>,
    watermark: i64,
    late: u64,
    /// Late records waiting to go to the side output.
    side: Vec<RecordBatch>,
}

impl<C: WindowContents> WindowAggregateOp<C> {
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

impl<C: WindowContents> Operator for WindowAggregateOp<C> {
    fn take_side_output(&mut self) -> Vec<RecordBatch> {
        std::mem::take(&mut self.side)
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let n = batch.num_rows();
        let time = self.planned.times(&batch)?;
        self.contents.prepare(&batch)?;
        let keys = self.planned.keys(self.converter.as_ref(), &batch)?;
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
                let state = match per_key.get_mut(key) {
                    Some(a) => a,
                    None => per_key.entry(key.into()).or_insert_with(|| self.contents.new_state()),
                };
                self.contents.add(state, row)?;
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
            let rows: Vec<Fired<'_, C::State>> = refire
                .iter()
                .map(|(s, k)| Fired {
                    window: TimeWindow {
                        start: *s,
                        end: *s + size,
                    },
                    key: k.as_ref(),
                    state: &self.windows[s][k.as_ref()],
                })
                .collect();
            out.extend(self.contents.emit(&rows)?);
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

    fn snapshot(&mut self, _checkpoint_id: u64) -> UserResult<OperatorState> {
        let mut per_key: HashMap<&[u8], Vec<(i64, Vec<u8>)>> = HashMap::new();
        for (start, keys) in &self.windows {
            for (key, state) in keys {
                per_key
                    .entry(key.as_ref())
                    .or_default()
                    .push((*start, self.contents.encode_state(state)?));
            }
        }
        Ok(OperatorState {
            keyed: checkpoint::keyed_groups(
                self.converter.as_ref(),
                per_key.into_iter().collect(),
                self.ctx.max_parallelism,
            )?,
            operator: Some(checkpoint::encode(&self.watermark)?),
            union: Vec::new(),
        })
    }

    fn restore(&mut self, state: OperatorState) -> UserResult<()> {
        for (key, windows) in checkpoint::keyed_entries::<Vec<(i64, Vec<u8>)>>(&state)? {
            for (start, bytes) in windows {
                let restored = self.contents.decode_state(&bytes)?;
                self.windows
                    .entry(start)
                    .or_default()
                    .insert(key.clone().into_boxed_slice(), restored);
            }
        }
        self.watermark = checkpoint::least_watermark(&state)?;
        Ok(())
    }

    fn on_end(&mut self, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        if self.assigner.processing_time {
            return Ok(()); // as in Flink: processing-time windows still open are dropped
        }
        // The end of input arrives as the final watermark; fire anything left regardless.
        self.advance(i64::MAX, out)
    }
}

impl<C: WindowContents> WindowAggregateOp<C> {
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
            let mut rows: Vec<Fired<'_, C::State>> = Vec::new();
            for (start, per_key) in &self.windows {
                let s = i128::from(*start);
                if s > after {
                    break;
                }
                if s > before {
                    rows.extend(per_key.iter().map(|(k, a)| Fired {
                        window: TimeWindow {
                            start: *start,
                            end: *start + size,
                        },
                        key: k.as_ref(),
                        state: a,
                    }));
                }
            }
            out.extend(self.contents.emit(&rows)?);
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
