//! Global windows per key with a trigger (Flink's `window(GlobalWindows.create()).trigger(..)`):
//! one window per key for all time; the trigger decides, per element and per timer, when it
//! fires and when its contents are purged. Event-time timers fire as the watermark passes them;
//! at the end of input, the timers set by then fire once (a continuous trigger does not loop to
//! the end of time); processing-time timers still pending at the end are dropped, as in Flink.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::Array;
use arrow::record_batch::RecordBatch;
use arrow::row::RowConverter;

use super::planned::Planned;
use crate::checkpoint::{self, OperatorState};
use crate::contract::state::Snapshot;
use crate::contract::{SharedClock, TimeDomain};
use crate::operators::{Operator, TaskContext, UserResult};
use crate::state::FastMap;
use crate::window::contents::{Fired, TimeWindow, WindowContents};
use crate::window::trigger::{Trigger, TriggerContext, TriggerResult};

/// A key's window in a checkpoint: contents, count, trigger scratch, event and processing timers.
type StoredWindow = (Vec<u8>, u64, i64, Vec<i64>, Vec<i64>);

struct KeyWindow<S> {
    state: S,
    /// Elements since the last purge.
    count: u64,
    /// The trigger's own value.
    scratch: i64,
}

/// One subtask's global windows.
pub(crate) struct GlobalWindowOp<C: WindowContents> {
    max_parallelism: u32,
    clock: SharedClock,
    trigger: Arc<dyn Trigger>,
    planned: Planned,
    converter: Option<RowConverter>,
    contents: C,
    windows: FastMap<Box<[u8]>, KeyWindow<C::State>>,
    event_timers: BTreeSet<(i64, Box<[u8]>)>,
    processing_timers: BTreeSet<(i64, Box<[u8]>)>,
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
    ) -> Self {
        GlobalWindowOp {
            max_parallelism: ctx.max_parallelism,
            clock: ctx.clock.clone(),
            trigger,
            planned,
            converter,
            contents,
            windows: FastMap::default(),
            event_timers: BTreeSet::new(),
            processing_timers: BTreeSet::new(),
            watermark: i64::MIN,
            pending: Vec::new(),
        }
    }

    /// Carries out `result` for `key`'s window and records the timers the trigger set.
    fn act(&mut self, key: &[u8], result: TriggerResult, timers: Vec<(TimeDomain, i64)>) -> UserResult<()> {
        for (domain, at) in timers {
            match domain {
                TimeDomain::EventTime => self.event_timers.insert((at, key.into())),
                TimeDomain::ProcessingTime => self.processing_timers.insert((at, key.into())),
            };
        }
        let Some(w) = self.windows.get_mut(key) else {
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

    fn on_timer(&mut self, domain: TimeDomain, time: i64, key: Box<[u8]>) -> UserResult<()> {
        let Some(w) = self.windows.get_mut(key.as_ref()) else {
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
        self.act(&key, result, timers)
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
        for row in 0..batch.num_rows() {
            let key: &[u8] = keys.as_ref().map_or(&[], |k| k.row(row).data());
            if !self.windows.contains_key(key) {
                let state = self.contents.new_state();
                self.windows.insert(
                    key.into(),
                    KeyWindow {
                        state,
                        count: 0,
                        scratch: 0,
                    },
                );
            }
            let w = self.windows.get_mut(key).expect("inserted above");
            self.contents.add(&mut w.state, row)?;
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
                self.act(&key, result, timers)?;
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
            let (at, key) = self.event_timers.pop_first().expect("checked");
            self.on_timer(TimeDomain::EventTime, at, key)?;
        }
        self.flush(out)
    }

    fn next_processing_timer(&self) -> Option<i64> {
        self.processing_timers.first().map(|t| t.0)
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        while self.processing_timers.first().is_some_and(|t| t.0 <= now) {
            let (at, key) = self.processing_timers.pop_first().expect("checked");
            self.on_timer(TimeDomain::ProcessingTime, at, key)?;
        }
        self.flush(out)
    }

    fn snapshot(&mut self, _checkpoint_id: u64, _changes_only: bool) -> UserResult<Snapshot> {
        let mut timers: HashMap<&[u8], (Vec<i64>, Vec<i64>)> = HashMap::new();
        for (at, key) in &self.event_timers {
            timers.entry(key.as_ref()).or_default().0.push(*at);
        }
        for (at, key) in &self.processing_timers {
            timers.entry(key.as_ref()).or_default().1.push(*at);
        }
        let codec = self.contents.codec();
        let mut entries: Vec<(&[u8], StoredWindow)> = Vec::with_capacity(self.windows.len());
        for (key, w) in &self.windows {
            let (event, processing) = timers.remove(key.as_ref()).unwrap_or_default();
            entries.push((
                key.as_ref(),
                (
                    {
                        let mut b = Vec::new();
                        codec.encode(&w.state, &mut b)?;
                        b
                    },
                    w.count,
                    w.scratch,
                    event,
                    processing,
                ),
            ));
        }
        Ok(OperatorState {
            keyed: checkpoint::keyed_groups(self.converter.as_ref(), entries, self.max_parallelism)?,
            operator: Some(checkpoint::encode(&self.watermark)?),
            ..Default::default()
        }
        .into())
    }

    fn restore(&mut self, state: OperatorState) -> UserResult<()> {
        for (key, (bytes, count, scratch, event, processing)) in checkpoint::keyed_entries::<StoredWindow>(&state)? {
            let key: Box<[u8]> = key.into_boxed_slice();
            for at in event {
                self.event_timers.insert((at, key.clone()));
            }
            for at in processing {
                self.processing_timers.insert((at, key.clone()));
            }
            let state = self.contents.codec().decode(&mut bytes.as_slice())?;
            self.windows.insert(key, KeyWindow { state, count, scratch });
        }
        self.watermark = checkpoint::least_watermark(&state)?;
        Ok(())
    }

    fn on_end(&mut self, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        if self.watermark == i64::MAX {
            return Ok(());
        }
        self.watermark = i64::MAX;
        for (at, key) in std::mem::take(&mut self.event_timers) {
            self.on_timer(TimeDomain::EventTime, at, key)?;
        }
        self.event_timers.clear();
        self.flush(out)
    }
}
