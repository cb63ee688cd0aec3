//! `window(...).aggregate(...)`: event-time tumbling and sliding windows per key with
//! incremental built-in aggregates. Output rows: the key fields, `window_start`, `window_end`,
//! then one column per aggregate.
//!
//! Cumulating windows (SQL's `CUMULATE`) share their start, so they are filed by their end.
//!
//! State is [`Panes`]: per window start (end, when cumulating) and key (Arrow row format bytes),
//! the contents, in memory (a copy-on-write table per window: a checkpoint freezes them and
//! encodes on the checkpoint thread while the windows go on filling) or on disk. A watermark `W` fires every window whose end − 1 ≤ `W` and drops windows past
//! their allowed lateness. A record for a window that already fired, within the lateness,
//! updates it and fires it again; a record all of whose windows are past lateness is late: it
//! is counted in the node's `late_records` and logged.

use arrow::array::Array;
use arrow::record_batch::RecordBatch;
use arrow::row::RowConverter;

use super::panes::Panes;
use super::planned::Planned;
use crate::checkpoint::{self, OperatorState};
use crate::contract::error::Result;
use crate::contract::state::Snapshot;
use crate::operators::{Operator, TaskContext, UserResult};
use crate::window::WindowAssigner;
use crate::window::contents::{Fired, TimeWindow, WindowContents};

/// One subtask's tumbling or sliding windows.
pub(crate) struct WindowAggregateOp<C: WindowContents> {
    ctx: TaskContext,
    assigner: WindowAssigner,
    lateness: i64,
    planned: Planned,
    converter: Option<RowConverter>,
    contents: C,
    /// Window start → key → contents.
    windows: Panes<C::State>,
    watermark: i64,
    late: u64,
    /// Late records waiting to go to the side output.
    side: Vec<RecordBatch>,
}

impl<C: WindowContents> WindowAggregateOp<C> {
    /// The operator over `planned`, holding `contents` per window and key.
    pub(crate) fn new(
        ctx: TaskContext,
        assigner: WindowAssigner,
        lateness: i64,
        planned: Planned,
        converter: Option<RowConverter>,
        contents: C,
    ) -> Result<Self> {
        let windows = Panes::new(&ctx.state, contents.codec())?;
        Ok(WindowAggregateOp {
            ctx,
            assigner,
            lateness,
            planned,
            converter,
            contents,
            windows,
            watermark: i64::MIN,
            late: 0,
            side: Vec::new(),
        })
    }

    /// This subtask's key groups (only group 0 holds the windows of a non-keyed stream).
    fn groups(&self) -> std::ops::RangeInclusive<u32> {
        if self.converter.is_none() {
            return 0..=0;
        }
        let (lo, hi) = crate::keys::key_group_range(
            self.ctx.subtask as u32,
            self.ctx.max_parallelism,
            self.ctx.parallelism as u32,
        );
        lo..=hi
    }

    /// Latest window key (start, or end for cumulating windows) whose window has fired by
    /// watermark `w` (end − 1 ≤ w).
    fn fired_by(&self, w: i64) -> i128 {
        i128::from(w) + 1 - i128::from(self.assigner.key_to_end())
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
        let time = self.planned.times(&batch, self.ctx.clock.as_ref())?;
        self.contents.prepare(&batch)?;
        let keys = self.planned.keys(self.converter.as_ref(), &batch)?;
        let groups = self
            .planned
            .key_groups(self.converter.is_some(), &batch, self.ctx.max_parallelism)?;
        let fired_by = self.fired_by(self.watermark);
        let expired_by = fired_by - i128::from(self.lateness);
        let mut refire: Vec<(i64, u32, Box<[u8]>)> = Vec::new();
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
            for start in self.assigner.keys(t) {
                if i128::from(start) <= expired_by {
                    continue; // past its allowed lateness
                }
                assigned = true;
                let group = groups.as_ref().map_or(0, |g| g[row]);
                let contents = &mut self.contents;
                let state = self.windows.add(start, group, key, || contents.new_state())?;
                contents.add(state, row)?;
                if i128::from(start) <= fired_by {
                    refire.push((start, group, key.into()));
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
            let assigner = &self.assigner;
            let states = self.windows.get_many(&refire)?;
            let rows: Vec<Fired<'_, C::State>> = refire
                .iter()
                .zip(&states)
                .map(|((s, _, k), state)| Fired {
                    window: time_window(assigner, *s),
                    key: k.as_ref(),
                    state: state.as_ref(),
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
        self.windows.first().map(|key| key + self.assigner.key_to_end() - 1)
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        if self.assigner.processing_time {
            self.advance(now, out)
        } else {
            Ok(())
        }
    }

    fn snapshot(&mut self, _checkpoint_id: u64, changes_only: bool) -> UserResult<Snapshot> {
        let watermark = checkpoint::encode(&self.watermark)?;
        self.windows.snapshot(changes_only, Some(watermark))
    }

    fn restore(&mut self, state: OperatorState) -> UserResult<()> {
        self.windows.restore(&state)?;
        self.watermark = checkpoint::least_watermark(&state)?;
        Ok(())
    }

    fn restores_in_parts(&self) -> bool {
        true
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
        // Fold what finished snapshots froze back into each window's base.
        self.windows.settle();
        let groups = self.groups();
        let (assigner, contents, out) = (&self.assigner, &mut self.contents, out);
        self.windows.fire(before, after, groups.clone(), |window, entries| {
            let rows: Vec<Fired<'_, C::State>> = entries
                .iter()
                .map(|&(key, state)| Fired {
                    window: time_window(assigner, window),
                    key,
                    state,
                })
                .collect();
            out.extend(contents.emit(&rows)?);
            Ok(())
        })?;
        // Drop windows past their allowed lateness.
        self.windows.drop_through(after - i128::from(self.lateness), groups)?;
        Ok(())
    }
}

/// The window a key of the assigner's stands for.
fn time_window(assigner: &WindowAssigner, key: i64) -> TimeWindow {
    let (start, end) = assigner.window_of(key);
    TimeWindow { start, end }
}
