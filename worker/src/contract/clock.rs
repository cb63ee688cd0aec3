//! The clock that processing time follows. Everything that reads the wall clock for the job's
//! semantics (processing-time timers and windows, trigger intervals, checkpoint timestamps)
//! reads it through a [`Clock`], so a test can drive processing time with a [`ManualClock`]
//! instead of sleeping.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;

/// A future that resolves when a clock reaches a time.
pub type Wake = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Milliseconds since the epoch, and a way to wait for a given one.
pub trait Clock: Debug + Send + Sync {
    /// The current time, ms since the epoch.
    fn now_ms(&self) -> i64;
    /// Resolves once [`Clock::now_ms`] is at least `at_ms`.
    fn sleep_until(&self, at_ms: i64) -> Wake;
}

/// The shared handle every task holds.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

/// Wall-clock time, ms since the epoch (what [`SystemClock`] reads).
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        wall_ms()
    }

    fn sleep_until(&self, at_ms: i64) -> Wake {
        Box::pin(async move {
            let wait = at_ms - wall_ms();
            if wait > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
            }
        })
    }
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that moves only when told to: tests set processing time and the job's timers fire
/// exactly then, however loaded the machine is.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<i64>>,
}

impl ManualClock {
    /// A clock standing at `start_ms`.
    pub fn new(start_ms: i64) -> Self {
        ManualClock {
            now: Arc::new(watch::channel(start_ms).0),
        }
    }

    /// Moves the clock to `at_ms` (never backwards); sleepers due by then wake.
    pub fn set(&self, at_ms: i64) {
        self.now.send_modify(|t| *t = (*t).max(at_ms));
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.now.send_modify(|t| *t += ms.max(0));
    }

    /// This clock as the job's clock.
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        *self.now.borrow()
    }

    fn sleep_until(&self, at_ms: i64) -> Wake {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock; if it is gone, time never comes.
            if rx.wait_for(|t| *t >= at_ms).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_sleepers_when_set_past_their_time() {
        let clock = ManualClock::new(1_000);
        let sleeper = tokio::spawn(clock.sleep_until(1_500));
        tokio::task::yield_now().await;
        clock.advance(499);
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.set(1_500);
        sleeper.await.expect("woke");
        clock.set(10);
        assert_eq!(clock.now_ms(), 1_500, "never backwards");
    }
}
