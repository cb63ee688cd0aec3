//! What a window keeps between firings and how it turns into output rows.
//!
//! The window operators (time windows, sessions, global windows) decide *when* a window fires;
//! a [`WindowContents`] decides *what* it holds: accumulators of built-in aggregates, the
//! accumulator of a user `AggregateFunction`, a running `reduce` value, or every element for a
//! `process` function. One operator implementation per window kind serves all of them.

use std::sync::Arc;

use arrow::array::{ArrayRef, TimestampMillisecondArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::RowConverter;

use crate::contract::UserResult;
use crate::state::Codec;
use crate::window::aggregate::{Acc, PlannedAgg, Values};

/// A window's time span, `[start, end)` in ms; [`TimeWindow::GLOBAL`] for global windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeWindow {
    /// First millisecond in the window.
    pub start: i64,
    /// First millisecond after the window.
    pub end: i64,
}

impl TimeWindow {
    /// The one window of a global window assigner (no start, no end: output as nulls).
    pub const GLOBAL: TimeWindow = TimeWindow {
        start: i64::MIN,
        end: i64::MAX,
    };

    /// Whether this is the global window.
    pub fn is_global(&self) -> bool {
        *self == Self::GLOBAL
    }

    /// The last millisecond in the window (Flink's `maxTimestamp`).
    pub fn max_timestamp(&self) -> i64 {
        self.end - 1
    }
}

/// A window that fired: its span, key (Arrow row format) and contents.
pub(crate) struct Fired<'a, S> {
    pub(crate) window: TimeWindow,
    pub(crate) key: &'a [u8],
    pub(crate) state: &'a S,
}

/// Per-window contents: created empty, fed rows of a batch, merged (sessions), emitted.
pub(crate) trait WindowContents: Send + 'static {
    /// What one (key, window) holds: shared with the checkpoint thread and copied on write.
    type State: Clone + Send + Sync + 'static;
    /// Called once per input batch, before [`WindowContents::add`] for its rows.
    fn prepare(&mut self, batch: &RecordBatch) -> UserResult<()>;
    /// Empty contents.
    fn new_state(&self) -> Self::State;
    /// Adds row `row` of the prepared batch.
    fn add(&mut self, state: &mut Self::State, row: usize) -> UserResult<()>;
    /// Adds `from` (a window merged away) into `into`.
    fn merge(&mut self, into: &mut Self::State, from: Self::State) -> UserResult<()>;
    /// Output rows of fired windows, in the given order.
    fn emit(&mut self, fired: &[Fired<'_, Self::State>]) -> UserResult<Option<RecordBatch>>;
    /// How contents become checkpoint (and disk) bytes and back, on any thread.
    fn codec(&self) -> Codec<Self::State>;
}

/// `window_start` / `window_end` columns for fired windows (nulls for the global window).
pub(crate) fn window_columns<S>(fired: &[Fired<'_, S>]) -> [ArrayRef; 2] {
    let col = |f: fn(&TimeWindow) -> i64| -> ArrayRef {
        Arc::new(TimestampMillisecondArray::from_iter(
            fired.iter().map(|r| (!r.window.is_global()).then(|| f(&r.window))),
        ))
    };
    [col(|w| w.start), col(|w| w.end)]
}

/// Built-in aggregates (count, sum, min, max, avg, first, last), computed incrementally and
/// column-wise.
pub(crate) struct Builtin {
    pub(crate) aggs: Vec<PlannedAgg>,
    pub(crate) output: SchemaRef,
    pub(crate) converter: Option<RowConverter>,
    values: Vec<Values>,
}

impl Builtin {
    pub(crate) fn new(aggs: Vec<PlannedAgg>, output: SchemaRef, converter: Option<RowConverter>) -> Self {
        Builtin {
            aggs,
            output,
            converter,
            values: Vec::new(),
        }
    }
}

impl WindowContents for Builtin {
    type State = Vec<Acc>;

    fn prepare(&mut self, batch: &RecordBatch) -> UserResult<()> {
        self.values = self.aggs.iter().map(|a| a.values(batch)).collect::<Result<_, _>>()?;
        Ok(())
    }

    fn new_state(&self) -> Vec<Acc> {
        vec![Acc::default(); self.aggs.len()]
    }

    fn add(&mut self, state: &mut Vec<Acc>, row: usize) -> UserResult<()> {
        for (agg, (acc, v)) in self.aggs.iter().zip(state.iter_mut().zip(&self.values)) {
            agg.update(acc, v, row);
        }
        Ok(())
    }

    fn merge(&mut self, into: &mut Vec<Acc>, from: Vec<Acc>) -> UserResult<()> {
        for (agg, (acc, other)) in self.aggs.iter().zip(into.iter_mut().zip(&from)) {
            agg.merge(acc, other);
        }
        Ok(())
    }

    fn emit(&mut self, fired: &[Fired<'_, Vec<Acc>>]) -> UserResult<Option<RecordBatch>> {
        if fired.is_empty() {
            return Ok(None);
        }
        let mut columns: Vec<ArrayRef> = Vec::new();
        if let Some(conv) = &self.converter {
            let parser = conv.parser();
            columns.extend(conv.convert_rows(fired.iter().map(|r| parser.parse(r.key)))?);
        }
        columns.extend(window_columns(fired));
        for (i, agg) in self.aggs.iter().enumerate() {
            let accs: Vec<&Acc> = fired.iter().map(|r| &r.state[i]).collect();
            columns.push(agg.finish(&accs)?);
        }
        Ok(Some(RecordBatch::try_new(self.output.clone(), columns)?))
    }

    fn codec(&self) -> Codec<Vec<Acc>> {
        Codec::serde()
    }
}
