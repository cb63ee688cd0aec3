//! Global windows per key with a trigger (Flink's `window(GlobalWindows.create()).trigger(..)`):
//! one window per key for all time; the trigger decides, per element and per timer, when it
//! fires and when its contents are purged. Event-time timers fire as the watermark passes them;
//! at the end of input, the timers set by then fire once (a continuous trigger does not loop to
//! the end of time); processing-time timers still pending at the end are dropped, as in Flink.
//!
//! Each key's window is an entry of a [`StateTable`] (memory or disk); the timers stay in
//! memory with their key groups and go to checkpoints as non-keyed state, which a restore
//! filters by its own key groups.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::Array;
use arrow::record_batch::RecordBatch;
use arrow::row::RowConverter;

use super::planned::Planned;
use crate::checkpoint::{self, OperatorState};
use crate::contract::error::Result;
use crate::contract::state::Snapshot;
use crate::contract::{SharedClock, TimeDomain};
use crate::operators::{Operator, TaskContext, UserResult};
use crate::state::{Codec, StateTable};
use crate::window::contents::{Fired, TimeWindow, WindowContents};
use crate::window::trigger::{Trigger, TriggerContext, TriggerResult};

/// A timer: when, the key, its key group.
type Timer = (i64, Box<[u8]>, u32);

#[derive(Clone)]
struct KeyWindow<S> {
    state: S,
    /// Elements since the last purge.
    count: u64,
    /// The trigger's own value.
    scratch: i64,
}

/// A key's window in checkpoints: count and trigger scratch, then the contents.
fn window_codec<S: Clone + Send + Sync + 'static>(contents: Codec<S>) -> Codec<KeyWindow<S>> {
    let decode_contents = contents.clone();
    Codec::new(
        move |w: &KeyWindow<S>, buf: &mut Vec<u8>| {
            checkpoint::encode_into(&(w.count, w.scratch), buf)?;
            contents.encode(&w.state, buf)
        },
        move |bytes: &mut &[u8]| {
            let (count, scratch): (u64, i64) = checkpoint::take(bytes)?;
            let state = decode_contents.decode(bytes)?;
            Ok(KeyWindow { state, count, scratch })
        },
    )
}

/// One subtask's global windows.
pub(crate) struct GlobalWindowOp<C: WindowContents> {
    max_parallelism: u32,
    /// This subtask's key groups (the timers it restores).
    key_groups: (u32, u32),
    clock: SharedClock,
    trigger: Arc<dyn Trigger>,
    planned: Planned,
    converter: Option<RowConverter>,
    contents: C,
    windows: StateTable<KeyWindow<C::State>>,
    event_timers: BTreeSet<Timer>,
    processing_timers: BTreeSet<Timer>,
    watermark: i64,
    /// Output of firings, concatenated per call.
    pending: Vec<RecordBatch>,
}

impl<C: WindowContents> GlobalWindowOp<C> {
    pub(crate) fn new(
        ctx: &TaskContext,
        trigger: Arc<dyn Trigger>,
        planned: Planned,
        converter: Option<RowConverter>,
        contents: C,
    ) -> Result<Self> {
        let windows = StateTable::with_codec(&ctx.state, window_codec(contents.codec()))?;
        Ok(GlobalWindowOp {
            max_parallelism: ctx.max_parallelism,
            key_groups: crate::keys::key_group_range(ctx.subtask as u32, ctx.max_parallelism, ctx.parallelism as u32),
            clock: ctx.clock.clone(),
            trigger,
            planned,
            converter,
            contents,
            windows,
            event_timers: BTreeSet::new(),
            processing_timers: BTreeSet::new(),
            watermark: i64::MIN,
            pending: Vec::new(),
        })
    }

    /// Carries out `result` for `key`'s window and records the timers the trigger set.
    fn act(&mut self, key: &[u8], group: u32, result: TriggerResult, timers: Vec<(TimeDomain, i64)>) -> UserResult<()> {
        for (domain, at) in timers {
            match domain {
                TimeDomain::EventTime => self.event_timers.insert((at, key.into(), group)),
                TimeDomain::ProcessingTime => self.processing_timers.insert((at, key.into(), group)),
            };
        }
        if result == TriggerResult::Continue {
            return Ok(());
        }
        let Some(w) = self.windows.get_mut(group, key)? else {
            return Ok(());
        };
        if result.fires() && w.count > 0 {
            let fired = [Fired {
                window: TimeWindow::GLOBAL,
                key,
                state: &w.state,
            }];
            self.pending.extend(self.contents.emit(&fired)?);
        }
        if result.purges() {
            w.state = self.contents.new_state();
            w.count = 0;
        }
        Ok(())
    }

    fn flush(&mut self, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        match self.pending.len() {
            0 => {}
            1 => out.push(self.pending.pop().expect("one")),
            _ => {
                let schema = self.pending[0].schema();
                out.push(arrow::compute::concat_batches(&schema, &self.pending)?);
                self.pending.clear();
            }
        }
        Ok(())
    }

    fn on_timer(&mut self, domain: TimeDomain, (time, key, group): Timer) -> UserResult<()> {
        let Some(w) = self.windows.get_mut(group, &key)? else {
            return Ok(());
        };
        let mut timers = Vec::new();
        let mut ctx = TriggerContext {
            state: &mut w.scratch,
            count: w.count,
            timestamp: None,
            watermark: self.watermark,
            now: self.clock.now_ms(),
            timers: &mut timers,
        };
        let result = match domain {
            TimeDomain::EventTime => self.trigger.on_event_time(time, &mut ctx),
            TimeDomain::ProcessingTime => self.trigger.on_processing_time(time, &mut ctx),
        };
        self.act(&key, group, result, timers)
    }
}

impl<C: WindowContents> Operator for GlobalWindowOp<C> {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let time = self
            .planned
            .time_column
            .map(|_| self.planned.event_times(&batch))
            .transpose()?
            .flatten();
        self.contents.prepare(&batch)?;
        let keys = self.planned.keys(self.converter.as_ref(), &batch)?;
        let groups = self
            .planned
            .key_groups(self.converter.is_some(), &batch, self.max_parallelism)?;
        for row in 0..batch.num_rows() {
            let key: &[u8] = keys.as_ref().map_or(&[], |k| k.row(row).data());
            let group = groups.as_ref().map_or(0, |g| g[row]);
            let contents = &mut self.contents;
            let w = self.windows.get_or_insert_with(group, key, || KeyWindow {
                state: contents.new_state(),
                count: 0,
                scratch: 0,
            })?;
            contents.add(&mut w.state, row)?;
            w.count += 1;
            let mut timers = Vec::new();
            let mut ctx = TriggerContext {
                state: &mut w.scratch,
                count: w.count,
                timestamp: time.as_ref().and_then(|t| (!t.is_null(row)).then(|| t.value(row))),
                watermark: self.watermark,
                now: self.clock.now_ms(),
                timers: &mut timers,
            };
            let result = self.trigger.on_element(&mut ctx);
            if result != TriggerResult::Continue || !timers.is_empty() {
                let key: Box<[u8]> = key.into();
                self.act(&key, group, result, timers)?;
            }
        }
        self.flush(out)
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        if watermark <= self.watermark {
            return Ok(());
        }
        if watermark == i64::MAX {
            return self.on_end(out);
        }
        self.watermark = watermark;
        // Timers set while firing fire too when already due (bounded: the watermark is finite).
        while self.event_timers.first().is_some_and(|t| t.0 <= watermark) {
            let timer = self.event_timers.pop_first().expect("checked");
            self.on_timer(TimeDomain::EventTime, timer)?;
        }
        self.flush(out)
    }

    fn next_processing_timer(&self) -> Option<i64> {
        self.processing_timers.first().map(|t| t.0)
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        while self.processing_timers.first().is_some_and(|t| t.0 <= now) {
            let timer = self.processing_timers.pop_first().expect("checked");
            self.on_timer(TimeDomain::ProcessingTime, timer)?;
        }
        self.flush(out)
    }

    fn snapshot(&mut self, _checkpoint_id: u64, changes_only: bool) -> UserResult<Snapshot> {
        // Non-keyed: the watermark and every timer (event: true) with its key group.
        let timers = [(true, &self.event_timers), (false, &self.processing_timers)]
            .into_iter()
            .flat_map(|(event, set)| set.iter().map(move |(at, key, g)| (event, *at, *g, key.as_ref())));
        let operator = checkpoint::encode_timers(self.watermark, timers)?;
        self.windows.snapshot(changes_only, Some(operator))
    }

    fn restore(&mut self, state: OperatorState) -> UserResult<()> {
        self.windows.restore(&state)?;
        let (event_timers, processing_timers) = (&mut self.event_timers, &mut self.processing_timers);
        self.watermark = checkpoint::restore_timers(&state, self.key_groups, |event, at, g, key| {
            let set = if event {
                &mut *event_timers
            } else {
                &mut *processing_timers
            };
            set.insert((at, key, g));
        })?;
        Ok(())
    }

    fn restores_in_parts(&self) -> bool {
        true
    }

    fn on_end(&mut self, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        if self.watermark == i64::MAX {
            return Ok(());
        }
        self.watermark = i64::MAX;
        for timer in std::mem::take(&mut self.event_timers) {
            self.on_timer(TimeDomain::EventTime, timer)?;
        }
        self.event_timers.clear();
        self.flush(out)
    }
}
