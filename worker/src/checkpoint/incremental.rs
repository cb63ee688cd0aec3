//! Incremental checkpoints: an operator subtask whose state can say what changed
//! ([`Snapshot::changes`](crate::contract::state::Snapshot::changes)) uploads only that, and its
//! entry in `_metadata` names the earlier files it builds on (its chain: the last full file,
//! then every change file after it, oldest first). A full snapshot starts a new chain every
//! `full_every` checkpoints, when the change files of the chain together outgrow its full file
//! (so a restore reads at most about twice the state, and the cost of full snapshots stays in
//! proportion to the changes: a state that doubles gets a full snapshot per doubling, one whose
//! every key changed once gets one), after a savepoint, after a restore, and whenever a file of
//! the chain was not stored, so a chain never depends on a file that does not exist.
//!
//! Uploads of one subtask's chain are linked: a change file is acknowledged only once the file
//! before it is stored, and it carries the chain that file ended.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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
    /// Sizes of the current chain's stored files (a new chain gets new ones, so uploads of an
    /// older chain that finish late do not count in it).
    sizes: Arc<ChainSizes>,
}

/// Bytes of one chain's files, as their uploads store them.
#[derive(Debug, Default)]
pub struct ChainSizes {
    /// The full file's size plus one; 0 while it is not stored yet.
    full: AtomicU64,
    /// The change files' sizes together.
    changes: AtomicU64,
}

impl ChainSizes {
    /// A file of the chain was stored: its full file (`changes` false) or a change file.
    pub fn stored(&self, changes: bool, size: u64) {
        if changes {
            self.changes.fetch_add(size, Ordering::Relaxed);
        } else {
            self.full.store(size + 1, Ordering::Relaxed);
        }
    }

    /// Whether the change files together outgrew the full file (never while it is not stored).
    fn outgrown(&self) -> bool {
        match self.full.load(Ordering::Relaxed) {
            0 => false,
            full => self.changes.load(Ordering::Relaxed) >= full - 1,
        }
    }
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
    /// Where this upload records the size of what it stored.
    pub sizes: Arc<ChainSizes>,
}

impl StateChain {
    /// Whether the snapshot for `barrier` may hold only changes: incremental checkpoints are on
    /// (`full_every` is `Some`), there is a previous snapshot to build on, the chain is not too
    /// long (in files, or its change files in bytes against its full one), and this is not a
    /// savepoint (savepoints are self-contained).
    pub fn wants_changes(&mut self, barrier: &Barrier, full_every: Option<u32>) -> bool {
        let broken = self.broken.swap(false, Ordering::Relaxed);
        let Some(every) = full_every else {
            return false;
        };
        !barrier.savepoint
            && !broken
            && self.previous.is_some()
            && self.since_full + 1 < every.max(1)
            && !self.sizes.outgrown()
    }

    /// Links the upload of the snapshot for `barrier` (a change file when `changes`).
    pub fn link(&mut self, barrier: &Barrier, changes: bool) -> ChainLink {
        let (outcome, next) = oneshot::channel();
        let previous = self.previous.take().filter(|_| changes);
        self.since_full = if changes { self.since_full + 1 } else { 0 };
        if !changes {
            self.sizes = Arc::default();
        }
        // A savepoint is not part of the chain: the next checkpoint starts a new one.
        self.previous = (!barrier.savepoint).then_some(next);
        ChainLink {
            previous,
            outcome,
            broken: self.broken.clone(),
            sizes: self.sizes.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn barrier(id: u64) -> Barrier {
        Barrier {
            checkpoint_id: id,
            timestamp_ms: 0,
            savepoint: false,
        }
    }

    /// Takes the snapshot `wants_changes` asks for, stores it with `size` bytes, and says
    /// whether it was a change file.
    fn checkpoint(chain: &mut StateChain, id: u64, every: u32, size: u64) -> bool {
        let changes = chain.wants_changes(&barrier(id), Some(every));
        let link = chain.link(&barrier(id), changes);
        link.sizes.stored(changes, size);
        let _ = link.outcome.send(Some(Vec::new()));
        changes
    }

    #[test]
    fn a_full_snapshot_follows_when_the_changes_outweigh_the_last_full_one_or_the_chain_is_long() {
        let mut chain = StateChain::default();
        assert!(!checkpoint(&mut chain, 1, 100, 1_000), "the first is full");
        // Changes of 400 + 400 bytes stay below the full file's 1,000; the third takes them past.
        assert!(checkpoint(&mut chain, 2, 100, 400));
        assert!(checkpoint(&mut chain, 3, 100, 400));
        assert!(checkpoint(&mut chain, 4, 100, 400));
        assert!(
            !checkpoint(&mut chain, 5, 100, 3_000),
            "1,200 bytes of changes against 1,000"
        );
        // The new chain counts on its own: small changes, until the count bound.
        for id in 6..9 {
            assert!(checkpoint(&mut chain, id, 4, 10));
        }
        assert!(!checkpoint(&mut chain, 9, 4, 3_000), "every 4th is full");
        // An upload of the old chain that finishes after a new chain began does not count in it.
        let changes = chain.wants_changes(&barrier(10), Some(100));
        assert!(changes);
        let late = chain.link(&barrier(10), changes);
        assert!(!checkpoint(&mut chain, 11, 1, 3_000), "every one is full");
        late.sizes.stored(true, 1_000_000);
        assert!(checkpoint(&mut chain, 12, 100, 10));
    }

    #[test]
    fn an_empty_full_snapshot_is_outweighed_by_the_first_changes() {
        let mut chain = StateChain::default();
        assert!(!checkpoint(&mut chain, 1, 100, 0));
        assert!(!checkpoint(&mut chain, 2, 100, 50), "changes on nothing: full again");
    }
}
