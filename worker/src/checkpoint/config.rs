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
    /// Upload only what changed since the previous checkpoint, for operators whose state can
    /// tell (Flink's `execution.checkpointing.incremental`; on by default here).
    pub incremental: bool,
    /// With `incremental`: a full snapshot at least every this many checkpoints, which bounds
    /// how many files a restore reads (one is also taken whenever the change files since the
    /// last full one outweigh it).
    pub full_every: u32,
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
            incremental: true,
            full_every: 100,
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

    /// `full_every` when incremental checkpoints are on.
    pub fn incremental_every(&self) -> Option<u32> {
        self.incremental.then_some(self.full_every)
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
        if self.full_every == 0 {
            return Err(WeirError::plan("checkpoint full_every must be at least 1"));
        }
        if self.retain == 0 {
            return Err(WeirError::plan("checkpoint retention must keep at least 1"));
        }
        Ok(())
    }
}
