//! Per-subtask rates and time shares (busy, idle, back-pressured; records per second) from the
//! cumulative figures subtasks report: over the last window of at least a second between two
//! reads of the API, or since the subtask started before there is one.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::runtime::metrics::SubtaskStats;
use crate::runtime::process_usage::ProcessUsage;

/// How long a window the rates span at least, ms.
const WINDOW_MS: u64 = 1000;

/// A subtask's shares of time and its rates.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Share of time processing (neither waiting for input nor for room downstream).
    pub busy: f64,
    /// Share of time waiting for input.
    pub idle: f64,
    /// Share of time waiting for room downstream.
    pub backpressured: f64,
    /// Records in per second.
    pub records_in_per_s: f64,
    /// Records out per second.
    pub records_out_per_s: f64,
    /// Bytes in per second.
    pub bytes_in_per_s: f64,
    /// Bytes out per second.
    pub bytes_out_per_s: f64,
}

impl Rates {
    /// From `from` to `to` (the same subtask, `to` later).
    fn between(from: Option<&SubtaskStats>, to: &SubtaskStats) -> Rates {
        let zero = SubtaskStats {
            records_in: 0,
            records_out: 0,
            bytes_in: 0,
            bytes_out: 0,
            idle_ms: 0,
            backpressured_ms: 0,
            elapsed_ms: 0,
            ..to.clone()
        };
        let from = from.unwrap_or(&zero);
        let dt = to.elapsed_ms.saturating_sub(from.elapsed_ms);
        if dt == 0 {
            return Rates::default();
        }
        let share = |a: u64, b: u64| (b.saturating_sub(a) as f64 / dt as f64).clamp(0.0, 1.0);
        let idle = share(from.idle_ms, to.idle_ms);
        let backpressured = share(from.backpressured_ms, to.backpressured_ms);
        let per_s = |a: u64, b: u64| b.saturating_sub(a) as f64 * 1000.0 / dt as f64;
        Rates {
            busy: (1.0 - idle - backpressured).max(0.0),
            idle,
            backpressured,
            records_in_per_s: per_s(from.records_in, to.records_in),
            records_out_per_s: per_s(from.records_out, to.records_out),
            bytes_in_per_s: per_s(from.bytes_in, to.bytes_in),
            bytes_out_per_s: per_s(from.bytes_out, to.bytes_out),
        }
    }
}

/// What the rates of one subtask were computed from.
struct Window {
    start: SubtaskStats,
    last: Option<Rates>,
}

/// The windows of every subtask, kept between reads.
#[derive(Default)]
pub struct RateWindows(Mutex<HashMap<(String, usize), Window>>);

impl RateWindows {
    /// The rates of `now` (one subtask's figures just read).
    pub fn rates(&self, now: &SubtaskStats) -> Rates {
        let mut windows = self.0.lock().expect("rate windows lock");
        let key = (now.vertex.clone(), now.subtask);
        let Some(w) = windows.get_mut(&key) else {
            windows.insert(
                key,
                Window {
                    start: now.clone(),
                    last: None,
                },
            );
            return Rates::between(None, now);
        };
        if now.elapsed_ms < w.start.elapsed_ms {
            // A new run of the subtask: start over.
            *w = Window {
                start: now.clone(),
                last: None,
            };
            return Rates::between(None, now);
        }
        if now.elapsed_ms - w.start.elapsed_ms >= WINDOW_MS {
            let rates = Rates::between(Some(&w.start), now);
            w.start = now.clone();
            w.last = Some(rates);
            return rates;
        }
        w.last.unwrap_or_else(|| Rates::between(None, now))
    }
}

/// CPU cores each worker used, over windows of at least a second of its reports.
#[derive(Default)]
pub struct CpuWindows(Mutex<HashMap<usize, (ProcessUsage, Option<f64>)>>);

impl CpuWindows {
    /// The cores worker `ordinal` used over its last window, given its report `now` (none
    /// before a first window closed).
    pub fn cores(&self, ordinal: usize, now: ProcessUsage) -> Option<f64> {
        let mut windows = self.0.lock().expect("cpu windows lock");
        let (start, last) = windows.entry(ordinal).or_insert((now, None));
        if now.at_ms < start.at_ms || now.cpu_ms < start.cpu_ms {
            // The worker restarted: start over.
            *start = now;
            *last = None;
        } else if (now.at_ms - start.at_ms) as u64 >= WINDOW_MS {
            let cores = (now.cpu_ms - start.cpu_ms) as f64 / (now.at_ms - start.at_ms) as f64;
            *start = now;
            *last = Some(cores);
        }
        *last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(elapsed_ms: u64, idle_ms: u64, backpressured_ms: u64, records_in: u64) -> SubtaskStats {
        SubtaskStats {
            vertex: "v".into(),
            subtask: 0,
            source: false,
            lag: None,
            records_in,
            records_out: records_in / 2,
            bytes_in: records_in * 8,
            bytes_out: records_in * 4,
            idle_ms,
            backpressured_ms,
            elapsed_ms,
            input_watermark: None,
            output_watermark: None,
            checkpoint: None,
        }
    }

    #[test]
    fn rates_cover_the_last_window_of_a_second_and_start_over_for_a_new_run() {
        let w = RateWindows::default();
        // Before a window: since the start.
        let r = w.rates(&at(2000, 1000, 0, 4000));
        assert_eq!((r.idle, r.busy, r.records_in_per_s), (0.5, 0.5, 2000.0));
        // Less than a second later: still the same.
        assert_eq!(w.rates(&at(2500, 1500, 0, 4000)).idle, 0.6);
        // A second later: the window's shares (back-pressured all along).
        let r = w.rates(&at(3000, 1000, 1000, 5000));
        assert_eq!((r.backpressured, r.idle, r.busy), (1.0, 0.0, 0.0));
        assert_eq!((r.records_in_per_s, r.records_out_per_s), (1000.0, 500.0));
        assert_eq!((r.bytes_in_per_s, r.bytes_out_per_s), (8000.0, 4000.0));
        // Within the next window: the last one's rates.
        assert_eq!(w.rates(&at(3200, 1200, 1000, 5100)).backpressured, 1.0);
        // A restarted subtask (its clock went back): from its start.
        let r = w.rates(&at(100, 100, 0, 0));
        assert_eq!((r.idle, r.busy), (1.0, 0.0));
    }

    #[test]
    fn cpu_cores_are_cpu_time_over_a_window_of_a_second_per_worker() {
        let w = CpuWindows::default();
        let at = |at_ms, cpu_ms| ProcessUsage {
            rss_bytes: 1,
            cpu_ms,
            at_ms,
        };
        assert_eq!(w.cores(0, at(10_000, 500)), None);
        assert_eq!(w.cores(0, at(10_400, 900)), None, "less than a second");
        assert_eq!(w.cores(0, at(12_000, 3_500)), Some(1.5));
        assert_eq!(w.cores(1, at(12_000, 10)), None, "each worker on its own");
        assert_eq!(w.cores(0, at(12_500, 4_000)), Some(1.5), "the last window's");
        assert_eq!(w.cores(0, at(13_000, 20)), None, "a restarted worker starts over");
    }
}
