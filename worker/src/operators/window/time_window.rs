//! `window(...).aggregate(...)`: event-time tumbling and sliding windows per key with
//! incremental built-in aggregates. Output rows: the key fields, `window_start`, `window_end`,
//! then one column per aggregate.
//!
//! Cumulating windows (SQL's `CUMULATE`) share their start, so they are filed by their end.
//!
//! State is one [`KeyedTable`] per window start (end, when cumulating), from the key (Arrow row
//! format bytes) to the accumulators: a checkpoint freezes the tables and encodes them on the
//! checkpoint thread while the windows go on filling (copy-on-write). A watermark `W` fires every window whose end − 1 ≤ `W` and drops windows past
//! their allowed lateness. A record for a window that already fired, within the lateness,
//! updates it and fires it again; a record all of whose windows are past lateness is late: it
//! is counted in the node's `late_records` and logged.

use std::collections::BTreeMap;

use arrow::array::Array;
use arrow::record_batch::RecordBatch;
use arrow::row::RowConverter;

use super::planned::Planned;
use crate::checkpoint::{self, OperatorState};
use crate::contract::state::Snapshot;
use crate::operators::{Operator, TaskContext, UserResult};
use crate::state::{FastMap, KeyedTable};
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
    windows: BTreeMap<i64, KeyedTable<C::State>>,
    /// Windows dropped since the last snapshot (an incremental snapshot records them).
    dropped: Vec<i64>,
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
    ) -> Self {
        WindowAggregateOp {
            ctx,
            assigner,
            lateness,
            planned,
            converter,
            contents,
            windows: BTreeMap::new(),
            dropped: Vec::new(),
            watermark: i64::MIN,
            late: 0,
            side: Vec::new(),
        }
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
            for start in self.assigner.keys(t) {
                if i128::from(start) <= expired_by {
                    continue; // past its allowed lateness
                }
                assigned = true;
                let group = groups.as_ref().map_or(0, |g| g[row]);
                let contents = &mut self.contents;
                let state = self
                    .windows
                    .entry(start)
                    .or_default()
                    .get_or_insert_with(group, key, || contents.new_state());
                contents.add(state, row)?;
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
            let assigner = &self.assigner;
            let rows: Vec<Fired<'_, C::State>> = refire
                .iter()
                .map(|(s, k)| Fired {
                    window: time_window(assigner, *s),
                    key: k.as_ref(),
                    state: self.windows[s].get(k).expect("a window just added to"),
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
            .map(|(key, _)| key + self.assigner.key_to_end() - 1)
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        if self.assigner.processing_time {
            self.advance(now, out)
        } else {
            Ok(())
        }
    }

    fn snapshot(&mut self, _checkpoint_id: u64, changes_only: bool) -> UserResult<Snapshot> {
        let views: Vec<_> = self.windows.iter_mut().map(|(start, t)| (*start, t.freeze())).collect();
        let dropped = std::mem::take(&mut self.dropped);
        let encode = self.contents.encoder();
        let watermark = self.watermark;
        // Window drops go to every key group of this subtask (any may have held the window).
        let (lo, hi) = if self.converter.is_some() {
            crate::keys::key_group_range(
                self.ctx.subtask as u32,
                self.ctx.max_parallelism,
                self.ctx.parallelism as u32,
            )
        } else {
            (0, 0)
        };
        let write = move || {
            // Per key group, records of (window, key, contents), appended without allocating
            // per entry.
            let mut groups: FastMap<u32, Vec<u8>> = FastMap::default();
            let mut scratch = Vec::new();
            let mut put = |group: u32, start: i64, key: &[u8], state: Option<&C::State>| -> UserResult<()> {
                let buf = groups.entry(group).or_default();
                match state {
                    Some(state) => {
                        checkpoint::encode_into(&(Record::Put as u8, start), buf)?;
                        checkpoint::put_frame(key, buf)?;
                        scratch.clear();
                        encode(state, &mut scratch)?;
                        checkpoint::put_frame(&scratch, buf)
                    }
                    None => {
                        checkpoint::encode_into(&(Record::Delete as u8, start), buf)?;
                        checkpoint::put_frame(key, buf)
                    }
                }
            };
            if changes_only {
                for (start, view) in &views {
                    for (group, key, state) in view.changes() {
                        put(group, *start, key, state)?;
                    }
                }
                for start in &dropped {
                    for group in lo..=hi {
                        let buf = groups.entry(group).or_default();
                        checkpoint::encode_into(&(Record::DropWindow as u8, *start), buf)?;
                    }
                }
            } else {
                for (start, view) in &views {
                    for (group, key, state) in view.iter() {
                        put(group, *start, key, Some(state))?;
                    }
                }
            }
            Ok(OperatorState {
                keyed: groups.into_iter().collect(),
                operator: Some(checkpoint::encode(&watermark)?),
                ..Default::default()
            })
        };
        Ok(Snapshot::taken(changes_only, write))
    }

    fn restore(&mut self, state: OperatorState) -> UserResult<()> {
        // Per key group: the full records, then each incremental checkpoint's changes.
        let mut groups: Vec<u32> = state.keyed.keys().copied().collect();
        groups.extend(state.deltas.iter().flat_map(|d| d.keys().copied()));
        groups.sort_unstable();
        groups.dedup();
        for group in &groups {
            let mut windows: BTreeMap<i64, FastMap<&[u8], &[u8]>> = BTreeMap::new();
            let layers = std::iter::once(&state.keyed).chain(&state.deltas);
            for bytes in layers.filter_map(|layer| layer.get(group)) {
                let mut rest = bytes.as_slice();
                while !rest.is_empty() {
                    let (tag, start): (u8, i64) = checkpoint::take(&mut rest)?;
                    match tag {
                        t if t == Record::Put as u8 => {
                            let key = checkpoint::take_frame(&mut rest)?;
                            let value = checkpoint::take_frame(&mut rest)?;
                            windows.entry(start).or_default().insert(key, value);
                        }
                        t if t == Record::Delete as u8 => {
                            let key = checkpoint::take_frame(&mut rest)?;
                            if let Some(w) = windows.get_mut(&start) {
                                w.remove(key);
                            }
                        }
                        t if t == Record::DropWindow as u8 => {
                            windows.remove(&start);
                        }
                        other => return Err(format!("restoring a window: unknown record {other}").into()),
                    }
                }
            }
            for (start, entries) in windows {
                let table = self.windows.entry(start).or_default();
                for (key, value) in entries {
                    table.insert(*group, key, self.contents.decode_state(value)?);
                }
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
        // Fold what finished snapshots froze back into each window's base.
        self.windows.values_mut().for_each(KeyedTable::settle);
        {
            let assigner = &self.assigner;
            let mut rows: Vec<Fired<'_, C::State>> = Vec::new();
            for (start, per_key) in &self.windows {
                let s = i128::from(*start);
                if s > after {
                    break;
                }
                if s > before {
                    rows.extend(per_key.iter().map(|(k, a)| Fired {
                        window: time_window(assigner, *start),
                        key: k,
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
            self.dropped.push(start);
        }
        Ok(())
    }
}

/// A record of a window operator's checkpointed state: a key's contents in a window, a key
/// removed from a window, a whole window dropped (changes only).
#[repr(u8)]
enum Record {
    Put = 0,
    Delete = 1,
    DropWindow = 2,
}

/// The window a key of the assigner's stands for.
fn time_window(assigner: &WindowAssigner, key: i64) -> TimeWindow {
    let (start, end) = assigner.window_of(key);
    TimeWindow { start, end }
}
