//! Session windows per key (Flink's `EventTimeSessionWindows`): a record at `t` opens
//! `[t, t + gap)`; windows of a key that overlap or touch merge, their aggregates merged.
//! A session fires when the watermark passes its end − 1; within the allowed lateness a record
//! that merges into it updates it and fires it again. A record whose (merged) window is past
//! the lateness is late: counted in `late_records`, the session left as it was.
//!
//! A key's sessions are one entry of a [`StateTable`] (memory or disk); the timers that say
//! when to look at a key stay in memory, rebuilt from the sessions on restore.

use std::collections::BTreeSet;

use arrow::array::Array;
use arrow::record_batch::RecordBatch;
use arrow::row::RowConverter;

use super::planned::Planned;
use crate::checkpoint::{self, OperatorState};
use crate::contract::error::Result;
use crate::contract::state::Snapshot;
use crate::operators::{Operator, TaskContext, UserResult};
use crate::state::{Codec, StateTable};
use crate::window::contents::{Fired, TimeWindow, WindowContents};

#[derive(Clone)]
struct Session<S> {
    start: i64,
    end: i64,
    state: S,
    fired: bool,
}

/// One subtask's sessions.
pub(crate) struct SessionWindowOp<C: WindowContents> {
    ctx: TaskContext,
    gap: i64,
    lateness: i64,
    planned: Planned,
    converter: Option<RowConverter>,
    contents: C,
    /// Key → its sessions, sorted by start, disjoint.
    sessions: StateTable<Vec<Session<C::State>>>,
    /// (time, key, key group): when the watermark reaches `time`, look at the key's sessions.
    timers: BTreeSet<(i64, Box<[u8]>, u32)>,
    watermark: i64,
    late: u64,
    /// Late records waiting to go to the side output.
    side: Vec<RecordBatch>,
}

fn is_past(t: i64, watermark: i64) -> bool {
    t <= watermark
}

/// A key's sessions in checkpoints: their number, then each `(start, end, fired)` and its
/// contents.
fn sessions_codec<S: Clone + Send + Sync + 'static>(contents: Codec<S>) -> Codec<Vec<Session<S>>> {
    let decode_contents = contents.clone();
    Codec::new(
        move |list: &Vec<Session<S>>, buf: &mut Vec<u8>| {
            checkpoint::encode_into(&(list.len() as u64), buf)?;
            for s in list {
                checkpoint::encode_into(&(s.start, s.end, s.fired), buf)?;
                contents.encode(&s.state, buf)?;
            }
            Ok(())
        },
        move |bytes: &mut &[u8]| {
            let n: u64 = checkpoint::take(bytes)?;
            let mut list = Vec::with_capacity(n.min(1024) as usize);
            for _ in 0..n {
                let (start, end, fired): (i64, i64, bool) = checkpoint::take(bytes)?;
                let state = decode_contents.decode(bytes)?;
                list.push(Session {
                    start,
                    end,
                    state,
                    fired,
                });
            }
            Ok(list)
        },
    )
}

impl<C: WindowContents> SessionWindowOp<C> {
    pub(crate) fn new(
        ctx: TaskContext,
        gap: i64,
        lateness: i64,
        planned: Planned,
        converter: Option<RowConverter>,
        contents: C,
    ) -> Result<Self> {
        let sessions = StateTable::with_codec(&ctx.state, sessions_codec(contents.codec()))?;
        Ok(SessionWindowOp {
            ctx,
            gap,
            lateness,
            planned,
            converter,
            contents,
            sessions,
            timers: BTreeSet::new(),
            watermark: i64::MIN,
            late: 0,
            side: Vec::new(),
        })
    }

    /// Marks the key's sessions that the watermark passed as fired; returns their starts.
    fn fire_due(&mut self, key: &[u8], group: u32, fired: &mut Vec<(Box<[u8]>, i64, u32)>) -> UserResult<()> {
        let w = self.watermark;
        let Some(list) = self.sessions.get_mut(group, key)? else {
            return Ok(());
        };
        for s in list.iter_mut() {
            if !s.fired && is_past(s.end - 1, w) {
                s.fired = true;
                fired.push((key.into(), s.start, group));
            }
        }
        Ok(())
    }

    /// Drops the key's sessions past their lateness and sets timers for the rest.
    fn expire(&mut self, key: &[u8], group: u32) -> UserResult<()> {
        let (w, lateness) = (self.watermark, self.lateness);
        let Some(list) = self.sessions.get_mut(group, key)? else {
            return Ok(());
        };
        list.retain(|s| !is_past((s.end - 1).saturating_add(lateness), w));
        for s in list.iter() {
            let at = if s.fired {
                (s.end - 1).saturating_add(lateness)
            } else {
                s.end - 1
            };
            self.timers.insert((at, key.into(), group));
        }
        if list.is_empty() {
            self.sessions.remove(group, key)?;
        }
        Ok(())
    }

    /// Output for the sessions `(key, start)`, in that order.
    fn emit(&mut self, which: &[(Box<[u8]>, i64, u32)]) -> UserResult<Option<RecordBatch>> {
        let keys: Vec<(u32, &[u8])> = which.iter().map(|(k, _, g)| (*g, k.as_ref())).collect();
        let lists = self.sessions.get_many(&keys)?;
        let mut fired = Vec::with_capacity(which.len());
        for ((key, start, _), list) in which.iter().zip(&lists) {
            let list = list.as_ref().ok_or("a session just fired is gone")?;
            let s = &list[list.partition_point(|s| s.start < *start)];
            fired.push(Fired {
                window: TimeWindow {
                    start: s.start,
                    end: s.end,
                },
                key,
                state: &s.state,
            });
        }
        self.contents.emit(&fired)
    }
}

impl<C: WindowContents> Operator for SessionWindowOp<C> {
    fn take_side_output(&mut self) -> Vec<RecordBatch> {
        std::mem::take(&mut self.side)
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let time = self.planned.times(&batch, self.ctx.clock.as_ref())?;
        self.contents.prepare(&batch)?;
        let keys = self.planned.keys(self.converter.as_ref(), &batch)?;
        let groups = self
            .planned
            .key_groups(self.converter.is_some(), &batch, self.ctx.max_parallelism)?;
        let mut refire: Vec<(Box<[u8]>, u32)> = Vec::new();
        let mut late = 0u64;
        let mut late_rows: Vec<u32> = Vec::new();
        for row in 0..batch.num_rows() {
            if time.is_null(row) {
                late += 1;
                late_rows.push(row as u32);
                continue;
            }
            let t = time.value(row);
            let key: &[u8] = keys.as_ref().map_or(&[], |k| k.row(row).data());
            let (mut start, mut end) = (t, t.saturating_add(self.gap));
            let group = groups.as_ref().map_or(0, |g| g[row]);
            let list = self.sessions.get_or_insert_with(group, key, Vec::new)?;
            // Sessions that overlap or touch [start, end); merging may chain.
            let touching: Vec<usize> = list
                .iter()
                .enumerate()
                .filter(|(_, s)| s.start <= end && s.end >= start)
                .map(|(i, _)| i)
                .collect();
            for i in &touching {
                start = start.min(list[*i].start);
                end = end.max(list[*i].end);
            }
            if is_past((end - 1).saturating_add(self.lateness), self.watermark) {
                late += 1;
                late_rows.push(row as u32);
                if list.is_empty() {
                    self.sessions.remove(group, key)?;
                }
                continue;
            }
            // A timer for this end exists already when an unfired merged part had this end.
            let same_end = touching.iter().any(|i| list[*i].end == end && !list[*i].fired);
            let mut merged = Session {
                start,
                end,
                state: self.contents.new_state(),
                fired: false,
            };
            // Merged in start order, so order-sensitive contents (elements) stay in time order.
            for i in touching.iter().rev() {
                let old = list.remove(*i);
                merged.fired |= old.fired;
                let mut state = old.state;
                self.contents.merge(&mut state, merged.state)?;
                merged.state = state;
            }
            self.contents.add(&mut merged.state, row)?;
            let already_due = is_past(end - 1, self.watermark);
            if already_due {
                // Within lateness after firing: fire the updated session again.
                merged.fired = true;
                refire.push((key.into(), group));
            }
            let at = if merged.fired {
                (end - 1).saturating_add(self.lateness)
            } else {
                end - 1
            };
            let pos = list.partition_point(|s| s.start < merged.start);
            list.insert(pos, merged);
            if !same_end {
                self.timers.insert((at, key.into(), group));
            }
        }
        if !late_rows.is_empty() {
            let rows = arrow::array::UInt32Array::from(std::mem::take(&mut late_rows));
            self.side.push(arrow::compute::take_record_batch(&batch, &rows)?);
        }
        if late > 0 {
            self.late += late;
            self.ctx.add_late(late);
        }
        if !refire.is_empty() {
            refire.sort();
            refire.dedup();
            let mut rows = Vec::new();
            for (k, group) in refire {
                let w = self.watermark;
                if let Some(list) = self.sessions.get(group, &k)? {
                    rows.extend(
                        list.iter()
                            .filter(|s| is_past(s.end - 1, w))
                            .map(|s| (k.clone(), s.start, group)),
                    );
                }
            }
            out.extend(self.emit(&rows)?);
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        let mut due: Vec<(Box<[u8]>, u32)> = Vec::new();
        while let Some((at, _, _)) = self.timers.first() {
            if !is_past(*at, watermark) {
                break;
            }
            let (_, key, group) = self.timers.pop_first().expect("checked");
            due.push((key, group));
        }
        due.sort();
        due.dedup();
        let mut rows = Vec::new();
        for (key, group) in &due {
            self.fire_due(key, *group, &mut rows)?;
        }
        // Deterministic output order: by key, then start.
        rows.sort();
        out.extend(self.emit(&rows)?);
        for (key, group) in &due {
            self.expire(key, *group)?;
        }
        Ok(())
    }

    fn on_end(&mut self, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        self.on_watermark(i64::MAX, out)
    }

    fn snapshot(&mut self, _checkpoint_id: u64, changes_only: bool) -> UserResult<Snapshot> {
        let watermark = Some(checkpoint::encode(&self.watermark)?);
        self.sessions.snapshot(changes_only, watermark)
    }

    fn restore(&mut self, state: OperatorState) -> UserResult<()> {
        let (timers, lateness) = (&mut self.timers, self.lateness);
        self.sessions.restore_observing(&state, |group, key, list| {
            for s in list {
                let at = if s.fired {
                    (s.end - 1).saturating_add(lateness)
                } else {
                    s.end - 1
                };
                timers.insert((at, key.into(), group));
            }
            Ok(())
        })?;
        self.watermark = checkpoint::least_watermark(&state)?;
        Ok(())
    }

    fn restores_in_parts(&self) -> bool {
        true
    }
}
