//! Window operators: `window(...)` over a keyed or whole stream. The [`WindowAggregate`]
//! factory plans a window against its input ([`planned`]) and creates the operator for its kind,
//! one file each: [`time_window`] (tumbling and sliding), [`session`], [`global`] (with a
//! trigger), and [`count`] (count windows, their own factory).

mod bounds;
pub mod count;
pub mod global;
mod panes;
pub mod planned;
pub mod session;
pub mod time_window;

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::RowConverter;

use crate::contract::error::{Result, WeirError};
use crate::contract::schema::field_index;
use crate::operators::{Operator, OperatorFactory, TaskContext};
use crate::window::aggregate::{key_converter, plan_keyed_output};
use crate::window::contents::{Builtin, WindowContents};
use crate::window::functions::UserWindowFn;
use crate::window::trigger::Trigger;
use crate::window::{Agg, EVENT_TIME_METADATA, WindowAssigner, WindowKind};

pub(crate) use planned::Planned;

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
        let planned = self.plan(input)?;
        Ok(bounds::shown_schema(input, planned.time_column, &planned.output))
    }
    fn create(&self, input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let planned = self.plan(input)?;
        let (time_column, output) = (planned.time_column, planned.output.clone());
        let op = self.create_planned(input, ctx, planned)?;
        Ok(bounds::shown(input, time_column, &output, op))
    }
}

impl WindowAggregate {
    /// The operator for a planned window (bounds as timestamps).
    fn create_planned(&self, input: &SchemaRef, ctx: &TaskContext, planned: Planned) -> Result<Box<dyn Operator>> {
        let converter = key_converter(input, &planned.key_columns)?;
        match &self.function {
            WindowFunction::Aggregates(_) => {
                let contents = Builtin::new(
                    planned.aggs.clone(),
                    planned.output.clone(),
                    key_converter(input, &planned.key_columns)?,
                );
                self.operator(ctx, planned, converter, contents)
            }
            WindowFunction::User(f) => {
                let contents = f.contents(
                    input.clone(),
                    planned.output.clone(),
                    key_converter(input, &planned.key_columns)?,
                );
                self.operator(ctx, planned, converter, contents)
            }
        }
    }

    /// The operator for this window kind, holding `contents`.
    fn operator<C: WindowContents>(
        &self,
        ctx: &TaskContext,
        planned: Planned,
        converter: Option<RowConverter>,
        contents: C,
    ) -> Result<Box<dyn Operator>> {
        Ok(match self.assigner.kind {
            WindowKind::Session => Box::new(session::SessionWindowOp::new(
                ctx.clone(),
                self.assigner.size,
                self.allowed_lateness,
                planned,
                converter,
                contents,
            )?),
            WindowKind::Global => Box::new(global::GlobalWindowOp::new(
                ctx,
                self.trigger.clone().expect("checked by plan"),
                planned,
                converter,
                contents,
            )?),
            WindowKind::Sliding | WindowKind::Cumulate => Box::new(time_window::WindowAggregateOp::new(
                ctx.clone(),
                self.assigner.clone(),
                self.allowed_lateness,
                planned,
                converter,
                contents,
            )?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::testing::{batch_of, ctx, ints};
    use crate::window::{EventTimeSessionWindows, TumblingEventTimeWindows};
    use std::time::Duration;

    fn window(assigner: WindowAssigner, aggs: Vec<Agg>) -> WindowAggregate {
        WindowAggregate {
            keys: vec!["k".into()],
            assigner: assigner.on("ts"),
            function: WindowFunction::Aggregates(aggs),
            allowed_lateness: 0,
            trigger: None,
        }
    }

    #[test]
    fn tumbling_windows_fire_when_the_watermark_passes_their_end_and_late_rows_go_aside() {
        let w = window(
            TumblingEventTimeWindows::of(Duration::from_millis(10)),
            vec![Agg::count()],
        );
        let input = batch_of(&[("k", vec![1, 1, 2, 1]), ("ts", vec![1, 5, 9, 12])]);
        let ctx = ctx();
        let mut op = w.create(&input.schema(), &ctx).unwrap();
        let mut out = Vec::new();
        op.process_batch(input, &mut out).unwrap();
        op.on_watermark(8, &mut out).unwrap();
        assert!(out.is_empty(), "[0, 10) is open until the watermark reaches 9");
        op.on_watermark(9, &mut out).unwrap();
        let mut fired: Vec<(i64, i64)> = ints(&out, "k").into_iter().zip(ints(&out, "count")).collect();
        fired.sort();
        assert_eq!(fired, [(1, 2), (2, 1)]);
        // Integer milliseconds in, integer milliseconds out (the schema says so too).
        assert_eq!(
            out[0].schema(),
            w.output_schema(&batch_of(&[("k", vec![]), ("ts", vec![])]).schema())
                .unwrap()
        );
        assert_eq!(
            out[0].column_by_name("window_start").unwrap().data_type(),
            &DataType::Int64
        );
        assert_eq!(ints(&out, "window_end"), [10, 10]);
        // A row for [0, 10) now is late: counted and put on the side output.
        op.process_batch(batch_of(&[("k", vec![1]), ("ts", vec![3])]), &mut out)
            .unwrap();
        assert_eq!(ctx.metrics.late_records.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(ints(&op.take_side_output(), "ts"), [3]);
        let mut rest = Vec::new();
        op.on_end(&mut rest).unwrap();
        assert_eq!(ints(&rest, "count"), [1], "[10, 20) fires at the end of input");
    }

    #[test]
    fn sessions_merge_rows_closer_than_the_gap() {
        let w = window(
            EventTimeSessionWindows::with_gap(Duration::from_millis(5)),
            vec![Agg::count()],
        );
        let input = batch_of(&[("k", vec![1, 1, 1, 1]), ("ts", vec![0, 4, 8, 20])]);
        let mut op = w.create(&input.schema(), &ctx()).unwrap();
        let mut out = Vec::new();
        op.process_batch(input, &mut out).unwrap();
        op.on_watermark(i64::MAX, &mut out).unwrap();
        let mut counts = ints(&out, "count");
        counts.sort();
        assert_eq!(counts, [1, 3]);
    }

    #[test]
    fn a_window_without_a_time_field_or_with_a_trigger_is_refused() {
        let schema = batch_of(&[("k", vec![1]), ("ts", vec![1])]).schema();
        let mut w = window(
            TumblingEventTimeWindows::of(Duration::from_millis(10)),
            vec![Agg::count()],
        );
        w.assigner.time_field = None;
        let e = w.output_schema(&schema).unwrap_err().to_string();
        assert!(e.contains("no event time"), "{e}");
        let mut w = window(
            TumblingEventTimeWindows::of(Duration::from_millis(10)),
            vec![Agg::count()],
        );
        w.trigger = Some(crate::window::CountTrigger::of(2));
        assert!(w.output_schema(&schema).is_err());
    }
}
