//! `window(...).aggregate(...)`: event-time tumbling and sliding windows per key with
//! incremental built-in aggregates. Output rows: the key fields, `window_start`, `window_end`,
//! then one column per aggregate.
//!
//! Cumulating windows (SQL's `CUMULATE`) share their start, so they are filed by their end.
//!
//! Sliding windows whose size is a multiple of their slide are kept per **slice** (Flink SQL's
//! slicing): a record goes into the one slice `[s, s + slide)` it falls in, not into each of
//! the `size / slide` windows that contain it, and a window that fires merges the contents of
//! its slices per key. That is `size / slide` times fewer state updates per record, and as many
//! times fewer entries changed between two checkpoints. A slice goes when the last window that
//! contains it (the one starting with it) is past its allowed lateness.
//!
//! State is [`Panes`]: per window start (end, when cumulating) and key (Arrow row format bytes),
//! the contents, in memory (a copy-on-write table per window: a checkpoint freezes them and
//! encodes on the checkpoint thread while the windows go on filling) or on disk. A watermark `W` fires every window whose end − 1 ≤ `W` and drops windows past
//! their allowed lateness. A record for a window that already fired, within the lateness,
//! updates it and fires it again; a record all of whose windows are past lateness is late: it
//! is counted in the node's `late_records` and logged.

use std::borrow::Cow;
use std::collections::BTreeSet;

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
use crate::window::assigner::WindowKind;
use crate::window::contents::{Fired, TimeWindow, WindowContents};

/// One subtask's tumbling or sliding windows.
pub(crate) struct WindowAggregateOp<C: WindowContents> {
    ctx: TaskContext,
    assigner: WindowAssigner,
    lateness: i64,
    planned: Planned,
    converter: Option<RowConverter>,
    contents: C,
    /// Window start (or slice start) → key → contents.
    windows: Panes<C::State>,
    /// Slices per window when sliding windows are kept per slice (see the module docs).
    slices: Option<i64>,
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
        let (size, slide) = (assigner.size, assigner.slide);
        let slices = (assigner.kind == WindowKind::Sliding && size > slide && slide > 0 && size % slide == 0)
            .then_some(size / slide);
        Ok(WindowAggregateOp {
            slices,
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
            if let Some(k) = self.slices {
                let slice = self.assigner.last_start(t);
                if i128::from(slice) <= expired_by {
                    late += 1;
                    late_rows.push(row as u32);
                    continue;
                }
                let group = groups.as_ref().map_or(0, |g| g[row]);
                let contents = &mut self.contents;
                let state = self.windows.add(slice, group, key, || contents.new_state())?;
                contents.add(state, row)?;
                // The windows with this slice that fired already (within lateness) fire again.
                for j in 0..k {
                    let window = slice - j * self.assigner.slide;
                    if i128::from(window) <= fired_by && i128::from(window) > expired_by {
                        refire.push((window, group, key.into()));
                    }
                }
                continue;
            }
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
            let states = match self.slices {
                Some(k) => {
                    let mut merged = Vec::with_capacity(refire.len());
                    for (window, group, key) in &refire {
                        let which: Vec<(i64, u32, Box<[u8]>)> = (0..k)
                            .map(|j| (window + j * self.assigner.slide, *group, key.clone()))
                            .collect();
                        let mut acc: Option<C::State> = None;
                        for part in self.windows.get_each(&which)?.into_iter().flatten() {
                            let part = part.into_owned();
                            match &mut acc {
                                Some(into) => self.contents.merge(into, part)?,
                                None => acc = Some(part),
                            }
                        }
                        merged.push(Cow::Owned(acc.ok_or("a window lost the contents just added to it")?));
                    }
                    merged
                }
                None => self.windows.get_many(&refire)?,
            };
            let assigner = &self.assigner;
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
        let first = self.windows.first()?;
        let Some(k) = self.slices else {
            return Some(first + self.assigner.key_to_end() - 1);
        };
        // The earliest window with the first slice that has not fired yet.
        let slide = i128::from(self.assigner.slide);
        let (earliest, fired) = (
            i128::from(first) - (i128::from(k) - 1) * slide,
            self.fired_by(self.watermark),
        );
        let window = if earliest > fired {
            earliest
        } else {
            earliest + ((fired - earliest) / slide + 1) * slide
        };
        i64::try_from(window + i128::from(self.assigner.size) - 1).ok()
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        if self.assigner.processing_time {
            self.advance(now, out)
        } else {
            Ok(())
        }
    }

    fn snapshot(&mut self, _checkpoint_id: u64, changes_only: bool) -> UserResult<Snapshot> {
        // Sliced contents are marked after the watermark, so they are never read as windows.
        let watermark = match self.slices {
            Some(_) => checkpoint::encode(&(self.watermark, SLICED))?,
            None => checkpoint::encode(&self.watermark)?,
        };
        self.windows.snapshot(changes_only, Some(watermark))
    }

    fn restore(&mut self, state: OperatorState) -> UserResult<()> {
        let has_contents = !state.keyed.is_empty() || state.deltas.iter().any(|d| !d.is_empty());
        let per_window = state
            .union
            .iter()
            .any(|bytes| postcard::take_from_bytes::<i64>(bytes).is_ok_and(|(_, rest)| rest != [SLICED]));
        if self.slices.is_some() && has_contents && per_window {
            return Err(format!(
                "{}: this snapshot keeps sliding windows per window (taken by an earlier version); this version keeps them per slice and cannot read them: let the windows drain in the earlier version, or start without this operator's state",
                self.ctx.node
            )
            .into());
        }
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
        if let Some(k) = self.slices {
            self.fire_slices(k, before, after, groups.clone(), out)?;
            self.windows.drop_through(after - i128::from(self.lateness), groups)?;
            return Ok(());
        }
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

    /// Fires every window in `(before, after]` that has a slice, each from its `k` slices
    /// merged per key (on disk one key group at a time, so the merge stays small).
    fn fire_slices(
        &mut self,
        k: i64,
        before: i128,
        after: i128,
        groups: std::ops::RangeInclusive<u32>,
        out: &mut Vec<RecordBatch>,
    ) -> UserResult<()> {
        let slide = self.assigner.slide;
        let mut due = BTreeSet::new();
        for slice in self.windows.keys() {
            for j in 0..k {
                let window = slice - j * slide;
                if i128::from(window) > before && i128::from(window) <= after {
                    due.insert(window);
                }
            }
        }
        let parts: Vec<std::ops::RangeInclusive<u32>> = match self.windows.on_disk() {
            true => groups.map(|g| g..=g).collect(),
            false => vec![groups],
        };
        type Merged<S> = hashbrown::HashMap<Box<[u8]>, S, foldhash::fast::RandomState>;
        for window in due {
            let span = time_window(&self.assigner, window);
            // In memory the slices are read in place: a key's contents are copied only when a
            // second slice has some to merge.
            if let Some(tables) = self.windows.memory_tables(window, window + (k - 1) * slide) {
                let mut merged: hashbrown::HashMap<&[u8], Cow<'_, C::State>, foldhash::fast::RandomState> =
                    hashbrown::HashMap::with_capacity_and_hasher(
                        tables.iter().map(|t| t.len()).max().unwrap_or(0),
                        Default::default(),
                    );
                for table in &tables {
                    for (key, state) in table.iter() {
                        match merged.entry(key) {
                            hashbrown::hash_map::Entry::Vacant(e) => {
                                e.insert(Cow::Borrowed(state));
                            }
                            hashbrown::hash_map::Entry::Occupied(mut e) => {
                                self.contents.merge(e.get_mut().to_mut(), state.clone())?;
                            }
                        }
                    }
                }
                let rows = merged.iter().map(|(key, state)| (*key, state.as_ref()));
                emit_window(&mut self.contents, span, rows, out)?;
                continue;
            }
            let (first, last) = (i128::from(window), i128::from(window + (k - 1) * slide));
            let mut merged: Merged<C::State> = Merged::default();
            for (i, part) in parts.iter().enumerate() {
                let contents = &mut self.contents;
                self.windows.fire(first - 1, last, part.clone(), |_, entries| {
                    for &(key, state) in entries {
                        match merged.get_mut(key) {
                            Some(into) => contents.merge(into, state.clone())?,
                            None => {
                                merged.insert(key.into(), state.clone());
                            }
                        }
                    }
                    Ok(())
                })?;
                // Out once the window is complete, or (on disk) once enough keys are merged.
                if i + 1 < parts.len() && merged.len() < MERGED_CHUNK {
                    continue;
                }
                let rows = merged.iter().map(|(key, state)| (key.as_ref(), state));
                emit_window(&mut self.contents, span, rows, out)?;
                merged.clear();
            }
        }
        Ok(())
    }
}

/// Hands the merged contents of `window` per key to `contents` to emit (nothing when empty).
fn emit_window<'a, C: WindowContents>(
    contents: &mut C,
    window: TimeWindow,
    rows: impl Iterator<Item = (&'a [u8], &'a C::State)>,
    out: &mut Vec<RecordBatch>,
) -> UserResult<()>
where
    C::State: 'a,
{
    let rows: Vec<Fired<'_, C::State>> = rows.map(|(key, state)| Fired { window, key, state }).collect();
    if !rows.is_empty() {
        out.extend(contents.emit(&rows)?);
    }
    Ok(())
}

/// Keys of a window merged from its slices on disk that are handed out at once.
const MERGED_CHUNK: usize = 8192;

/// The mark after the watermark in the snapshot of sliced windows.
const SLICED: u8 = 1;

/// The window a key of the assigner's stands for.
fn time_window(assigner: &WindowAssigner, key: i64) -> TimeWindow {
    let (start, end) = assigner.window_of(key);
    TimeWindow { start, end }
}
