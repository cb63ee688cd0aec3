//! Incremental checkpoints: an operator subtask whose state can say what changed
//! ([`Snapshot::changes`](crate::contract::state::Snapshot::changes)) uploads only that, and its
//! entry in `_metadata` names the earlier files it builds on (its chain: the last full file,
//! then every change file after it, oldest first). A full snapshot starts a new chain every
//! `full_every` checkpoints, after a savepoint, after a restore, and whenever a file of the
//! chain was not stored, so a chain never depends on a file that does not exist.
//!
//! Uploads of one subtask's chain are linked: a change file is acknowledged only once the file
//! before it is stored, and it carries the chain that file ended.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::oneshot;

use super::metadata::ChainedFile;
use crate::contract::message::Barrier;

/// The chain of stored files an upload ends, or `None` when it failed.
pub type ChainOutcome = Option<Vec<ChainedFile>>;

/// One operator subtask's chain of incremental snapshots, kept by the task between barriers.
#[derive(Debug, Default)]
pub struct StateChain {
    /// The outcome of the previous upload, when the next snapshot may build on it.
    previous: Option<oneshot::Receiver<ChainOutcome>>,
    /// Change files since the last full one.
    since_full: u32,
    /// Set by an upload that failed: the next snapshot is full.
    broken: Arc<AtomicBool>,
}

/// What one upload needs to link into its chain.
#[derive(Debug)]
pub struct ChainLink {
    /// The previous upload's outcome (for a change file).
    pub previous: Option<oneshot::Receiver<ChainOutcome>>,
    /// Where this upload's outcome goes.
    pub outcome: oneshot::Sender<ChainOutcome>,
    /// Set when this upload fails.
    pub broken: Arc<AtomicBool>,
}

impl StateChain {
    /// Whether the snapshot for `barrier` may hold only changes: incremental checkpoints are on
    /// (`full_every` is `Some`), there is a previous snapshot to build on, the chain is not too
    /// long, and this is not a savepoint (savepoints are self-contained).
    pub fn wants_changes(&mut self, barrier: &Barrier, full_every: Option<u32>) -> bool {
        let broken = self.broken.swap(false, Ordering::Relaxed);
        let Some(every) = full_every else {
            return false;
        };
        !barrier.savepoint && !broken && self.previous.is_some() && self.since_full + 1 < every.max(1)
    }

    /// Links the upload of the snapshot for `barrier` (a change file when `changes`).
    pub fn link(&mut self, barrier: &Barrier, changes: bool) -> ChainLink {
        let (outcome, next) = oneshot::channel();
        let previous = self.previous.take().filter(|_| changes);
        self.since_full = if changes { self.since_full + 1 } else { 0 };
        // A savepoint is not part of the chain: the next checkpoint starts a new one.
        self.previous = (!barrier.savepoint).then_some(next);
        ChainLink {
            previous,
            outcome,
            broken: self.broken.clone(),
        }
    }
}
