//! Session windows per key (Flink's `EventTimeSessionWindows`): a record at `t` opens
//! `[t, t + gap)`; windows of a key that overlap or touch merge, their aggregates merged.
//! A session fires when the watermark passes its end − 1; within the allowed lateness a record
//! that merges into it updates it and fires it again. A record whose (merged) window is past
//! the lateness is late: counted in `late_records`, the session left as it was.

use std::collections::BTreeSet;

use arrow::array::Array;
use arrow::record_batch::RecordBatch;
use arrow::row::RowConverter;

use super::planned::Planned;
use crate::checkpoint::{self, OperatorState};
use crate::contract::state::Snapshot;
use crate::operators::{Operator, TaskContext, UserResult};
use crate::state::KeyedTable;
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
    /// Key → its sessions, sorted by start, disjoint (copy-on-write for snapshots).
    sessions: KeyedTable<Vec<Session<C::State>>>,
    /// (time, key): when the watermark reaches `time`, look at the key's sessions.
    timers: BTreeSet<(i64, Box<[u8]>)>,
    watermark: i64,
    late: u64,
    /// Late records waiting to go to the side output.
    side: Vec<RecordBatch>,
}

fn is_past(t: i64, watermark: i64) -> bool {
    t <= watermark
}

impl<C: WindowContents> SessionWindowOp<C> {
    pub(crate) fn new(
        ctx: TaskContext,
        gap: i64,
        lateness: i64,
        planned: Planned,
        converter: Option<RowConverter>,
        contents: C,
    ) -> Self {
        SessionWindowOp {
            ctx,
            gap,
            lateness,
            planned,
            converter,
            contents,
            sessions: KeyedTable::new(),
            timers: BTreeSet::new(),
            watermark: i64::MIN,
            late: 0,
            side: Vec::new(),
        }
    }

    /// Marks the key's sessions that the watermark passed as fired; returns their starts.
    fn fire_due(&mut self, key: &[u8], fired: &mut Vec<(Box<[u8]>, i64)>) {
        let Some(list) = self.sessions.get_mut(key) else { return };
        let w = self.watermark;
        for s in list.iter_mut() {
            if !s.fired && is_past(s.end - 1, w) {
                s.fired = true;
                fired.push((key.into(), s.start));
            }
        }
    }

    /// Drops the key's sessions past their lateness and sets timers for the rest.
    fn expire(&mut self, key: &[u8]) {
        let Some(list) = self.sessions.get_mut(key) else { return };
        let (w, lateness) = (self.watermark, self.lateness);
        list.retain(|s| !is_past((s.end - 1).saturating_add(lateness), w));
        for s in list.iter() {
            let at = if s.fired {
                (s.end - 1).saturating_add(lateness)
            } else {
                s.end - 1
            };
            self.timers.insert((at, key.into()));
        }
        if list.is_empty() {
            self.sessions.remove(key);
        }
    }

    /// Output for the sessions `(key, start)`, in that order.
    fn emit(&mut self, which: &[(Box<[u8]>, i64)]) -> UserResult<Option<RecordBatch>> {
        let mut fired = Vec::with_capacity(which.len());
        for (key, start) in which {
            let list = self.sessions.get(key).expect("a session just fired");
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
        let mut refire: Vec<Box<[u8]>> = Vec::new();
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
            let list = self.sessions.get_or_insert_with(group, key, Vec::new);
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
                    self.sessions.remove(key);
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
                refire.push(key.into());
            }
            let at = if merged.fired {
                (end - 1).saturating_add(self.lateness)
            } else {
                end - 1
            };
            let pos = list.partition_point(|s| s.start < merged.start);
            list.insert(pos, merged);
            if !same_end {
                self.timers.insert((at, key.into()));
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
            for k in refire {
                let w = self.watermark;
                if let Some(list) = self.sessions.get(&k) {
                    rows.extend(
                        list.iter()
                            .filter(|s| is_past(s.end - 1, w))
                            .map(|s| (k.clone(), s.start)),
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
        let mut due: Vec<Box<[u8]>> = Vec::new();
        while let Some((at, _)) = self.timers.first() {
            if !is_past(*at, watermark) {
                break;
            }
            let (_, key) = self.timers.pop_first().expect("checked");
            due.push(key);
        }
        due.sort();
        due.dedup();
        let mut rows = Vec::new();
        for key in &due {
            self.fire_due(key, &mut rows);
        }
        // Deterministic output order: by key, then start.
        rows.sort();
        out.extend(self.emit(&rows)?);
        for key in &due {
            self.expire(key);
        }
        Ok(())
    }

    fn on_end(&mut self, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        self.on_watermark(i64::MAX, out)
    }

    fn snapshot(&mut self, _checkpoint_id: u64, changes_only: bool) -> UserResult<Snapshot> {
        // Per key: its sessions, each (start, end, fired) and its contents.
        let encode = self.contents.encoder();
        let write_list = move |list: &Vec<Session<C::State>>, buf: &mut Vec<u8>| -> UserResult<()> {
            checkpoint::encode_into(&(list.len() as u64), buf)?;
            let mut contents = Vec::new();
            for s in list {
                checkpoint::encode_into(&(s.start, s.end, s.fired), buf)?;
                contents.clear();
                encode(&s.state, &mut contents)?;
                checkpoint::put_frame(&contents, buf)?;
            }
            Ok(())
        };
        let watermark = Some(checkpoint::encode(&self.watermark)?);
        Ok(checkpoint::table_snapshot_with(
            &mut self.sessions,
            changes_only,
            watermark,
            write_list,
        ))
    }

    fn restore(&mut self, state: OperatorState) -> UserResult<()> {
        let contents = &self.contents;
        checkpoint::table_restore_with(&state, &mut self.sessions, |rest| {
            let n: u64 = checkpoint::take(rest)?;
            let mut list = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let (start, end, fired): (i64, i64, bool) = checkpoint::take(rest)?;
                let state = contents.decode_state(checkpoint::take_frame(rest)?)?;
                list.push(Session {
                    start,
                    end,
                    state,
                    fired,
                });
            }
            Ok(list)
        })?;
        for (key, list) in self.sessions.iter() {
            for s in list {
                let at = if s.fired {
                    (s.end - 1).saturating_add(self.lateness)
                } else {
                    s.end - 1
                };
                self.timers.insert((at, key.into()));
            }
        }
        self.watermark = checkpoint::least_watermark(&state)?;
        Ok(())
    }
}
