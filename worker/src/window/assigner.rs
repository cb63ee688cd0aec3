//! Window assigners: tumbling and sliding windows over event time.

use std::time::Duration;

use crate::contract::error::{Result, WeirError};

/// Time windows of fixed size, or sessions that merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Fixed windows every `slide` (tumbling when `slide == size`).
    Sliding,
    /// Per key, records closer than `size` (the gap) join one window.
    Session,
    /// Windows that grow by `slide` from a common start up to `size` (SQL's `CUMULATE`): a
    /// record at `t` is in `[s, s + slide·k)` for every `k` whose window reaches past `t`,
    /// where `s` is `t` floored to `size`.
    Cumulate,
    /// One window per key for all time; a [`crate::window::Trigger`] decides when it fires.
    Global,
}

/// Which windows a record belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowAssigner {
    /// Fixed windows or sessions.
    pub kind: WindowKind,
    /// Window length, ms (the gap, for sessions).
    pub size: i64,
    /// Distance between window starts, ms (`size` for tumbling windows).
    pub slide: i64,
    /// Shift of window starts from the epoch, ms.
    pub offset: i64,
    /// The event-time field; `None` uses the field the source's watermark strategy named.
    pub time_field: Option<String>,
    /// Windows on the wall clock instead of event time.
    pub processing_time: bool,
}

fn assigner(kind: WindowKind, size: Duration, slide: Duration) -> WindowAssigner {
    let (size, slide) = (size.as_millis() as i64, slide.as_millis() as i64);
    WindowAssigner {
        kind,
        size,
        slide,
        offset: 0,
        time_field: None,
        processing_time: false,
    }
}

/// Tumbling event-time windows (Flink's `TumblingEventTimeWindows`).
#[derive(Debug)]
pub struct TumblingEventTimeWindows;

impl TumblingEventTimeWindows {
    /// Back-to-back windows of `size`.
    pub fn of(size: Duration) -> WindowAssigner {
        assigner(WindowKind::Sliding, size, size)
    }
}

/// Sliding (hopping) event-time windows (Flink's `SlidingEventTimeWindows`).
#[derive(Debug)]
pub struct SlidingEventTimeWindows;

impl SlidingEventTimeWindows {
    /// Windows of `size` starting every `slide`.
    pub fn of(size: Duration, slide: Duration) -> WindowAssigner {
        assigner(WindowKind::Sliding, size, slide)
    }
}

/// Cumulating event-time windows (SQL's `CUMULATE`): windows of `step`, `2·step`, … up to
/// `size`, all starting where the `size` window starts.
#[derive(Debug)]
pub struct CumulativeEventTimeWindows;

impl CumulativeEventTimeWindows {
    /// Windows growing by `step` up to `size` (a multiple of `step`).
    pub fn of(size: Duration, step: Duration) -> WindowAssigner {
        assigner(WindowKind::Cumulate, size, step)
    }
}

/// Tumbling windows on the wall clock (Flink's `TumblingProcessingTimeWindows`).
#[derive(Debug)]
pub struct TumblingProcessingTimeWindows;

impl TumblingProcessingTimeWindows {
    /// Back-to-back wall-clock windows of `size`. Records belong to the window of the moment
    /// they are processed; a window fires when the clock passes its end. As in Flink, windows
    /// still open when a bounded input ends are dropped.
    pub fn of(size: Duration) -> WindowAssigner {
        WindowAssigner {
            processing_time: true,
            ..assigner(WindowKind::Sliding, size, size)
        }
    }
}

/// Sliding windows on the wall clock (Flink's `SlidingProcessingTimeWindows`).
#[derive(Debug)]
pub struct SlidingProcessingTimeWindows;

impl SlidingProcessingTimeWindows {
    /// Wall-clock windows of `size` starting every `slide`.
    pub fn of(size: Duration, slide: Duration) -> WindowAssigner {
        WindowAssigner {
            processing_time: true,
            ..assigner(WindowKind::Sliding, size, slide)
        }
    }
}

/// Session windows on event time (Flink's `EventTimeSessionWindows`).
#[derive(Debug)]
pub struct EventTimeSessionWindows;

impl EventTimeSessionWindows {
    /// A session closes after `gap` without records for its key. As in Flink, a record at `t`
    /// opens `[t, t + gap)`, and windows that overlap or touch merge.
    pub fn with_gap(gap: Duration) -> WindowAssigner {
        assigner(WindowKind::Session, gap, gap)
    }
}

/// One window per key for all time (Flink's `GlobalWindows`); give it a trigger with
/// `.trigger(..)`. Output rows have null `window_start` / `window_end`.
#[derive(Debug)]
pub struct GlobalWindows;

impl GlobalWindows {
    /// The global window assigner.
    pub fn create() -> WindowAssigner {
        WindowAssigner {
            kind: WindowKind::Global,
            size: i64::MAX,
            slide: i64::MAX,
            offset: 0,
            time_field: None,
            processing_time: false,
        }
    }
}

impl WindowAssigner {
    /// Uses `field` as event time.
    pub fn on(mut self, field: &str) -> Self {
        self.time_field = Some(field.to_string());
        self
    }

    /// Shifts window starts by `offset` (e.g. time zones for daily windows).
    pub fn with_offset(mut self, offset: Duration) -> Self {
        self.offset = offset.as_millis() as i64;
        self
    }

    /// Checks the sizes.
    pub fn validate(&self) -> Result<()> {
        if self.size <= 0 || self.slide <= 0 {
            return Err(WeirError::plan(format!(
                "window: size ({} ms) and slide ({} ms) must be positive",
                self.size, self.slide
            )));
        }
        if self.slide > self.size {
            return Err(WeirError::plan(format!(
                "window: slide ({} ms) larger than size ({} ms) would skip records",
                self.slide, self.size
            )));
        }
        if self.kind == WindowKind::Cumulate && self.size % self.slide != 0 {
            return Err(WeirError::plan(format!(
                "window: a cumulating window's size ({} ms) must be a multiple of its step ({} ms)",
                self.size, self.slide
            )));
        }
        Ok(())
    }

    /// The keys the time-window operator files a record at `ts` under: window starts for
    /// fixed windows, window ends for cumulating ones (which share their start).
    pub fn keys(&self, ts: i64) -> impl Iterator<Item = i64> + use<> {
        // No boxing: this runs for every record.
        let (cumulate, starts) = match self.kind {
            WindowKind::Cumulate => {
                let start = ts - (ts - self.offset).rem_euclid(self.size);
                let step = self.slide;
                let ends = (1..=self.size / step)
                    .map(move |k| start + k * step)
                    .filter(move |end| *end > ts);
                (Some(ends), None)
            }
            _ => (None, Some(self.starts(ts))),
        };
        cumulate.into_iter().flatten().chain(starts.into_iter().flatten())
    }

    /// The window a key of [`WindowAssigner::keys`] stands for: `(start, end)`.
    pub fn window_of(&self, key: i64) -> (i64, i64) {
        match self.kind {
            WindowKind::Cumulate => {
                let last = key - 1;
                (last - (last - self.offset).rem_euclid(self.size), key)
            }
            _ => (key, key + self.size),
        }
    }

    /// How far a key lies before its window's end (the window fires when `key + this − 1`
    /// is reached).
    pub fn key_to_end(&self) -> i64 {
        match self.kind {
            WindowKind::Cumulate => 0,
            _ => self.size,
        }
    }

    /// Start of the last window that contains `ts` (Flink's `TimeWindow.getWindowStartWithOffset`).
    pub fn last_start(&self, ts: i64) -> i64 {
        ts - (ts - self.offset).rem_euclid(self.slide)
    }

    /// Starts of every window containing `ts`, latest first.
    pub fn starts(&self, ts: i64) -> impl Iterator<Item = i64> + use<> {
        let (last, slide, size) = (self.last_start(ts), self.slide, self.size);
        (0..)
            .map(move |k| last - k * slide)
            .take_while(move |start| *start > ts - size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_and_sliding_starts() {
        let t = TumblingEventTimeWindows::of(Duration::from_secs(10));
        assert_eq!(t.starts(12_345).collect::<Vec<_>>(), vec![10_000]);
        assert_eq!(t.starts(-1).collect::<Vec<_>>(), vec![-10_000]);
        let s = SlidingEventTimeWindows::of(Duration::from_secs(10), Duration::from_secs(2));
        assert_eq!(
            s.starts(12_345).collect::<Vec<_>>(),
            vec![12_000, 10_000, 8_000, 6_000, 4_000]
        );
        assert_eq!(
            s.starts(10_000).collect::<Vec<_>>(),
            vec![10_000, 8_000, 6_000, 4_000, 2_000]
        );
    }

    #[test]
    fn cumulating_windows_share_their_start_and_grow_by_the_step() {
        let c = CumulativeEventTimeWindows::of(Duration::from_secs(10), Duration::from_secs(2));
        let keys: Vec<i64> = c.keys(13_500).collect();
        assert_eq!(keys, vec![14_000, 16_000, 18_000, 20_000]);
        assert_eq!(c.window_of(14_000), (10_000, 14_000));
        assert_eq!(c.window_of(20_000), (10_000, 20_000));
        assert_eq!(c.keys(14_000).next(), Some(16_000), "an end is exclusive");
        assert!(
            CumulativeEventTimeWindows::of(Duration::from_secs(10), Duration::from_secs(3))
                .validate()
                .is_err()
        );
    }
}
