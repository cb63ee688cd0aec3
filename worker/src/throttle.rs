//! Wall-clock rate limiting for generating sources.

use std::time::{Duration, Instant};

/// Keeps a producer at or below `rate` rows per second.
#[derive(Debug)]
pub struct Throttle {
    rate: Option<f64>,
    start: Instant,
    emitted: u64,
}

impl Throttle {
    /// A throttle at `rate` rows/s (none: unlimited).
    pub fn new(rate: Option<f64>) -> Self {
        Throttle {
            rate: rate.filter(|r| *r > 0.0),
            start: Instant::now(),
            emitted: 0,
        }
    }

    /// Rows per batch that keep output smooth at this rate (at most `batch_size`).
    pub fn batch_size(&self, batch_size: usize) -> usize {
        match self.rate {
            Some(r) => ((r / 20.0) as usize).clamp(1, batch_size.max(1)),
            None => batch_size.max(1),
        }
    }

    /// Records `rows` as emitted and sleeps until they are due.
    pub async fn emitted(&mut self, rows: usize) {
        self.emitted += rows as u64;
        if let Some(r) = self.rate {
            let due = self.start + Duration::from_secs_f64(self.emitted as f64 / r);
            let now = Instant::now();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
        }
    }
}
