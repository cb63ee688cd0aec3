//! Triggers for global windows (Flink's `Trigger`): per key, decide on each element and timer
//! whether the window fires, is purged, or both.

use std::sync::Arc;

use crate::contract::TimeDomain;

/// What a trigger decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerResult {
    /// Nothing happens.
    Continue,
    /// The window emits its result and keeps its contents.
    Fire,
    /// The window's contents are dropped.
    Purge,
    /// The window emits its result, then its contents are dropped.
    FireAndPurge,
}

impl TriggerResult {
    /// Whether the window emits.
    pub fn fires(self) -> bool {
        matches!(self, TriggerResult::Fire | TriggerResult::FireAndPurge)
    }
    /// Whether the contents are dropped.
    pub fn purges(self) -> bool {
        matches!(self, TriggerResult::Purge | TriggerResult::FireAndPurge)
    }
}

/// What a trigger sees for the current key: its own scratch value, the element's time, the
/// watermark, and timers it can set.
#[derive(Debug)]
pub struct TriggerContext<'a> {
    pub(crate) state: &'a mut i64,
    pub(crate) count: u64,
    pub(crate) timestamp: Option<i64>,
    pub(crate) watermark: i64,
    /// Processing time when the trigger is called (the job's clock).
    pub(crate) now: i64,
    pub(crate) timers: &'a mut Vec<(TimeDomain, i64)>,
}

impl TriggerContext<'_> {
    /// A value the trigger keeps per key (0 at first); purging the window keeps it.
    pub fn state(&mut self) -> &mut i64 {
        self.state
    }
    /// Elements in the window since it was last purged (this one included).
    pub fn count(&self) -> u64 {
        self.count
    }
    /// Event time of the current element (`None` in timer callbacks or without event time).
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }
    /// The current watermark.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }
    /// Processing time now, ms (the job's clock).
    pub fn current_processing_time(&self) -> i64 {
        self.now
    }
    /// Calls `on_event_time` for this key once the watermark reaches `time`.
    pub fn register_event_time_timer(&mut self, time: i64) {
        self.timers.push((TimeDomain::EventTime, time));
    }
    /// Calls `on_processing_time` for this key once the wall clock reaches `time` (ms).
    pub fn register_processing_time_timer(&mut self, time: i64) {
        self.timers.push((TimeDomain::ProcessingTime, time));
    }
}

/// Decides when a global window fires. Timers are per key and deduplicated.
pub trait Trigger: Send + Sync + 'static {
    /// An element was added to the key's window.
    fn on_element(&self, ctx: &mut TriggerContext<'_>) -> TriggerResult;
    /// An event-time timer of the key fired.
    fn on_event_time(&self, _time: i64, _ctx: &mut TriggerContext<'_>) -> TriggerResult {
        TriggerResult::Continue
    }
    /// A processing-time timer of the key fired.
    fn on_processing_time(&self, _time: i64, _ctx: &mut TriggerContext<'_>) -> TriggerResult {
        TriggerResult::Continue
    }
}

/// Fires every `n` elements (Flink's `CountTrigger`); wrap in [`PurgingTrigger`] to start each
/// window afresh.
#[derive(Debug, Clone, Copy)]
pub struct CountTrigger(u64);

impl CountTrigger {
    /// Fires after every `n` elements (`n` ≥ 1).
    pub fn of(n: u64) -> Arc<dyn Trigger> {
        Arc::new(CountTrigger(n.max(1)))
    }
}

impl Trigger for CountTrigger {
    fn on_element(&self, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        *ctx.state += 1;
        if *ctx.state as u64 >= self.0 {
            *ctx.state = 0;
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        }
    }
}

/// Turns every `Fire` of the inner trigger into `FireAndPurge` (Flink's `PurgingTrigger`).
pub struct PurgingTrigger(Arc<dyn Trigger>);

impl PurgingTrigger {
    /// Purges whenever `inner` fires.
    pub fn of(inner: Arc<dyn Trigger>) -> Arc<dyn Trigger> {
        Arc::new(PurgingTrigger(inner))
    }
}

fn purging(r: TriggerResult) -> TriggerResult {
    if r == TriggerResult::Fire {
        TriggerResult::FireAndPurge
    } else {
        r
    }
}

impl Trigger for PurgingTrigger {
    fn on_element(&self, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        purging(self.0.on_element(ctx))
    }
    fn on_event_time(&self, time: i64, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        purging(self.0.on_event_time(time, ctx))
    }
    fn on_processing_time(&self, time: i64, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        purging(self.0.on_processing_time(time, ctx))
    }
}

/// Fires every `interval` of event time while the key has elements (Flink's
/// `ContinuousEventTimeTrigger`): at the first multiple of `interval` after an element, then
/// every `interval` after that.
#[derive(Debug, Clone, Copy)]
pub struct ContinuousEventTimeTrigger(i64);

impl ContinuousEventTimeTrigger {
    /// Fires every `interval`.
    pub fn of(interval: std::time::Duration) -> Arc<dyn Trigger> {
        Arc::new(ContinuousEventTimeTrigger((interval.as_millis() as i64).max(1)))
    }
}

/// Next multiple of `interval` after `t`, minus one (the last millisecond of its period).
fn next_fire(t: i64, interval: i64) -> i64 {
    (t - t.rem_euclid(interval)).saturating_add(interval - 1)
}

impl Trigger for ContinuousEventTimeTrigger {
    fn on_element(&self, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        if let Some(t) = ctx.timestamp
            && *ctx.state == 0
        {
            let at = next_fire(t, self.0);
            *ctx.state = at;
            ctx.register_event_time_timer(at);
        }
        TriggerResult::Continue
    }
    fn on_event_time(&self, time: i64, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        if *ctx.state != time {
            return TriggerResult::Continue;
        }
        let next = time.saturating_add(self.0);
        *ctx.state = next;
        ctx.register_event_time_timer(next);
        TriggerResult::Fire
    }
}

/// Fires every `interval` of wall-clock time while the key has elements (Flink's
/// `ContinuousProcessingTimeTrigger`).
#[derive(Debug, Clone, Copy)]
pub struct ContinuousProcessingTimeTrigger(i64);

impl ContinuousProcessingTimeTrigger {
    /// Fires every `interval`.
    pub fn of(interval: std::time::Duration) -> Arc<dyn Trigger> {
        Arc::new(ContinuousProcessingTimeTrigger((interval.as_millis() as i64).max(1)))
    }
}

impl Trigger for ContinuousProcessingTimeTrigger {
    fn on_element(&self, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        if *ctx.state == 0 {
            let at = next_fire(ctx.now, self.0);
            *ctx.state = at;
            ctx.register_processing_time_timer(at);
        }
        TriggerResult::Continue
    }
    fn on_processing_time(&self, time: i64, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        if *ctx.state != time {
            return TriggerResult::Continue;
        }
        let next = time.saturating_add(self.0);
        *ctx.state = next;
        ctx.register_processing_time_timer(next);
        TriggerResult::Fire
    }
}
