//! Incremental checkpoints: an operator subtask whose state can say what changed
//! ([`Snapshot::changes`](crate::contract::state::Snapshot::changes)) uploads only that, and its
//! entry in `_metadata` names the earlier files it builds on (its chain: the last full file,
//! then every change file after it, oldest first). A full snapshot starts a new chain every
//! `full_every` checkpoints; when the chain's files hold twice the state (so a restore reads
//! at most about twice the state, and the cost of full snapshots stays in proportion to the
//! changes that overwrote earlier ones: a state that only grows needs none, one whose every key
//! changed once gets one) — judged by the state's own estimate of its size
//! ([`Snapshot::with_live_bytes`](crate::contract::state::Snapshot::with_live_bytes)), or, for
//! a state without one, when the change files together outgrow the full file; after a
//! savepoint, after a restore, and whenever a file of the chain was not stored, so a chain
//! never depends on a file that does not exist.

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
    /// The state's estimate of its full size at the latest snapshot, plus one; 0 if unknown.
    live: AtomicU64,
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

    /// Whether the chain's files hold twice the state (never while its full file is not
    /// stored); for a state that gives no estimate of its size, whether the change files
    /// together outgrew the full file.
    fn outgrown(&self) -> bool {
        let full = match self.full.load(Ordering::Relaxed) {
            0 => return false,
            stored => stored - 1,
        };
        let changes = self.changes.load(Ordering::Relaxed);
        match self.live.load(Ordering::Relaxed) {
            0 => changes >= full,
            live => full + changes >= 2 * (live - 1),
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
    /// long (in files, or in bytes: see `ChainSizes::outgrown`), and this is not a
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

    /// Links the upload of the snapshot for `barrier` (a change file when `changes`; `live`:
    /// the state's estimate of its full size, if it has one).
    pub fn link(&mut self, barrier: &Barrier, changes: bool, live: Option<u64>) -> ChainLink {
        let (outcome, next) = oneshot::channel();
        let previous = self.previous.take().filter(|_| changes);
        self.since_full = if changes { self.since_full + 1 } else { 0 };
        if !changes {
            self.sizes = Arc::default();
        }
        if let Some(bytes) = live {
            self.sizes.live.store(bytes + 1, Ordering::Relaxed);
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
            stop: false,
        }
    }

    /// Takes the snapshot `wants_changes` asks for, stores it with `size` bytes, and says
    /// whether it was a change file.
    fn checkpoint(chain: &mut StateChain, id: u64, every: u32, size: u64) -> bool {
        let changes = chain.wants_changes(&barrier(id), Some(every));
        let link = chain.link(&barrier(id), changes, None);
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
        let late = chain.link(&barrier(10), changes, None);
        assert!(!checkpoint(&mut chain, 11, 1, 3_000), "every one is full");
        late.sizes.stored(true, 1_000_000);
        assert!(checkpoint(&mut chain, 12, 100, 10));
    }

    #[test]
    fn a_state_that_knows_its_size_gets_a_full_snapshot_when_the_chain_holds_twice_it() {
        let mut chain = StateChain::default();
        let mut take = |id: u64, size: u64, live: u64| {
            let changes = chain.wants_changes(&barrier(id), Some(100));
            let link = chain.link(&barrier(id), changes, Some(live));
            link.sizes.stored(changes, size);
            let _ = link.outcome.send(Some(Vec::new()));
            changes
        };
        assert!(!take(1, 1_000, 1_000), "the first is full");
        // A growing state: every change is new state, the chain holds it once.
        for id in 2..10 {
            assert!(take(id, 1_000, id * 1_000), "checkpoint {id}");
        }
        // Then every change overwrites: the chain (9,000 + 4 × 2,300) reaches twice the state.
        for id in 10..14 {
            assert!(take(id, 2_300, 9_000), "checkpoint {id}");
        }
        assert!(!take(14, 9_000, 9_000), "18,200 bytes of files for 9,000 of state");
        assert!(take(15, 100, 9_000));
    }

    #[test]
    fn an_empty_full_snapshot_is_outweighed_by_the_first_changes() {
        let mut chain = StateChain::default();
        assert!(!checkpoint(&mut chain, 1, 100, 0));
        assert!(!checkpoint(&mut chain, 2, 100, 50), "changes on nothing: full again");
    }
}
