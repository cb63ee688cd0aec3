//! Checkpoint settings, with Flink's defaults where Flink has one.

use std::time::Duration;

use crate::contract::error::{Result, WeirError};

/// How and where a job checkpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointConfig {
    /// Time between checkpoint triggers.
    pub interval: Duration,
    /// A checkpoint not complete after this long is abandoned (Flink: 10 min).
    pub timeout: Duration,
    /// Least time from one checkpoint's completion to the next trigger (Flink: 0).
    pub min_pause: Duration,
    /// Checkpoints that may fail in a row before the job fails (Flink: 0 — but a failed
    /// checkpoint here is usually a storage hiccup, so the default tolerates some).
    pub tolerable_failures: u32,
    /// Complete checkpoints kept (Flink: 1).
    pub retain: usize,
    /// Where snapshots go: a path, `file://`, `s3://bucket/prefix`, `memory://` (default
    /// `./.weir/checkpoints`, the embedded default).
    pub storage: String,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(600),
            min_pause: Duration::ZERO,
            tolerable_failures: 3,
            retain: 1,
            storage: ".weir/checkpoints".into(),
        }
    }
}

impl CheckpointConfig {
    /// Checkpoints every `interval` to the default storage.
    pub fn every(interval: Duration) -> Self {
        CheckpointConfig {
            interval,
            ..Default::default()
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if self.interval < Duration::from_millis(10) {
            return Err(WeirError::plan(format!(
                "checkpoint interval {:?} is below the minimum of 10 ms",
                self.interval
            )));
        }
        if self.timeout.is_zero() {
            return Err(WeirError::plan("checkpoint timeout must be positive"));
        }
        if self.retain == 0 {
            return Err(WeirError::plan("checkpoint retention must keep at least 1"));
        }
        Ok(())
    }
}
