//! Loading a snapshot: each subtask gets the key groups of its range, read as byte ranges from
//! whichever old subtasks' files hold them (so a rescaled job reads only what it owns), and
//! its non-keyed state.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::OperatorState;
use super::local::LocalCopies;
use super::metadata::{SnapshotKind, SnapshotMetadata};
use super::metrics::RestoreReads;
use super::store::SnapshotDir;
use crate::contract::error::{Result, WeirError};
use crate::keys;

/// A snapshot to start from.
#[derive(Debug, Clone)]
pub struct Restore {
    /// Its directory.
    pub dir: SnapshotDir,
    /// Its `_metadata`.
    pub meta: SnapshotMetadata,
    /// Local copies of its files on this machine, read instead of storage where they match.
    pub local: Option<LocalCopies>,
    /// Bytes read so far, locally and from storage.
    pub reads: Arc<RestoreReads>,
}

impl Restore {
    /// The snapshot `meta` at `dir`, read from storage only.
    pub fn new(dir: SnapshotDir, meta: SnapshotMetadata) -> Self {
        Restore {
            dir,
            meta,
            local: None,
            reads: Arc::default(),
        }
    }

    /// Opens the snapshot at `dir` (it must be complete).
    pub async fn open(dir: SnapshotDir) -> Result<Self> {
        let meta = dir.read_metadata().await?;
        Ok(Restore::new(dir, meta))
    }

    /// Reads local copies in `local` where they match (local recovery; copies of the same
    /// job only), counting bytes read in `reads`.
    pub fn with_local(mut self, local: Option<LocalCopies>, reads: Arc<RestoreReads>) -> Self {
        self.local = local.filter(|l| l.job() == self.meta.job);
        self.reads = reads;
        self
    }

    /// Checks that the snapshot fits a job: the same number of key groups, and (unless
    /// `allow_non_restored`) an operator of the job for every operator state in it.
    pub fn check(&self, uids: &[String], max_parallelism: u32, allow_non_restored: bool) -> Result<()> {
        if self.meta.max_parallelism != max_parallelism {
            return Err(WeirError::plan(format!(
                "{} has {} key groups (max parallelism) but the job has {}; max parallelism is fixed for the life of a job's state",
                self.dir.display(),
                self.meta.max_parallelism,
                max_parallelism
            )));
        }
        let unmatched: Vec<&str> = self
            .meta
            .operators
            .iter()
            .filter(|o| !o.subtasks.is_empty() && !uids.contains(&o.uid))
            .map(|o| o.uid.as_str())
            .collect();
        if !unmatched.is_empty() && !allow_non_restored {
            return Err(WeirError::plan(format!(
                "{} holds state of operators the job no longer has: {} (give them the same ids, or allow non-restored state to drop it)",
                self.dir.display(),
                unmatched.join(", ")
            )));
        }
        Ok(())
    }

    /// The state of subtask `subtask` of `parallelism` of operator `uid`. For incremental
    /// snapshots, the full file of each old subtask's chain gives `keyed` and its change files
    /// give `deltas` in order (old subtasks hold disjoint key groups, so their chains interleave
    /// freely).
    pub async fn state_for(&self, uid: &str, subtask: usize, parallelism: usize) -> Result<OperatorState> {
        let (lo, hi) = keys::key_group_range(subtask as u32, self.meta.max_parallelism, parallelism as u32);
        self.state_for_groups(uid, subtask, parallelism, lo, hi).await
    }

    /// The key-group ranges that split subtask `subtask` of `parallelism`'s share of `uid`'s
    /// keyed state into parts of at most about `max_bytes` stored bytes each (full files and
    /// changes together; a key group larger than that is a part of its own), ascending.
    pub fn parts(&self, uid: &str, subtask: usize, parallelism: usize, max_bytes: u64) -> Vec<(u32, u32)> {
        let (lo, hi) = keys::key_group_range(subtask as u32, self.meta.max_parallelism, parallelism as u32);
        let Some(op) = self.meta.operator(uid) else {
            return vec![(lo, hi)];
        };
        let mut sizes: BTreeMap<u32, u64> = BTreeMap::new();
        for s in &op.subtasks {
            let indexes = s
                .chain
                .iter()
                .map(|c| &c.key_groups)
                .chain(std::iter::once(&s.key_groups));
            for (g, _, len) in indexes.flatten() {
                if (lo..=hi).contains(g) {
                    *sizes.entry(*g).or_default() += len;
                }
            }
        }
        let mut parts = Vec::new();
        let (mut start, mut bytes) = (lo, 0u64);
        for (g, len) in sizes {
            if bytes > 0 && bytes + len > max_bytes {
                parts.push((start, g - 1));
                (start, bytes) = (g, 0);
            }
            bytes += len;
        }
        parts.push((start, hi));
        parts
    }

    /// [`Restore::state_for`], of the key groups `lo..=hi` only (within the subtask's range).
    pub async fn state_for_groups(
        &self,
        uid: &str,
        subtask: usize,
        parallelism: usize,
        lo: u32,
        hi: u32,
    ) -> Result<OperatorState> {
        let Some(op) = self.meta.operator(uid) else {
            return Ok(OperatorState::default());
        };
        let mut state = OperatorState::default();
        for s in &op.subtasks {
            let mut layers = Vec::with_capacity(s.chain.len() + 1);
            for c in &s.chain {
                let file = StoredFile {
                    dir: &self.dir.checkpoint_sibling(c.checkpoint),
                    checkpoint: Some(c.checkpoint),
                    name: &c.file,
                    size: c.size,
                };
                layers.push(self.read_groups(file, &c.key_groups, lo, hi).await?);
            }
            let file = self.own_file(&s.file, s.size);
            layers.push(self.read_groups(file, &s.key_groups, lo, hi).await?);
            let mut layers = layers.into_iter();
            state.keyed.extend(layers.next().unwrap_or_default());
            for (i, delta) in layers.enumerate() {
                if state.deltas.len() <= i {
                    state.deltas.push(BTreeMap::new());
                }
                state.deltas[i].extend(delta);
            }
            if let Some((off, len)) = s.operator_state {
                let bytes = self.read(self.own_file(&s.file, s.size), off..off + len).await?;
                if s.subtask == subtask && op.parallelism == parallelism {
                    state.operator = Some(bytes.clone());
                }
                state.union.push(bytes);
            }
        }
        Ok(state)
    }

    /// Non-keyed state of every subtask of `uid` by old subtask index (for sources, whose
    /// positions cannot be split across a different parallelism).
    pub fn operator_parallelism(&self, uid: &str) -> Option<usize> {
        self.meta.operator(uid).map(|o| o.parallelism)
    }
}

/// A state file a snapshot names.
#[derive(Clone, Copy)]
struct StoredFile<'a> {
    /// The snapshot directory it is in.
    dir: &'a SnapshotDir,
    /// The checkpoint that wrote it (`None` for a savepoint's own files, never copied locally).
    checkpoint: Option<u64>,
    /// Its name relative to `dir`.
    name: &'a str,
    /// Its size per `_metadata`.
    size: u64,
}

impl Restore {
    /// A file of this snapshot itself (not of an earlier checkpoint it builds on).
    fn own_file<'a>(&'a self, name: &'a str, size: u64) -> StoredFile<'a> {
        StoredFile {
            dir: &self.dir,
            checkpoint: (self.meta.kind == SnapshotKind::Checkpoint).then_some(self.meta.checkpoint_id),
            name,
            size,
        }
    }

    /// `range` of `file`: from its local copy when there is a whole one, else from storage.
    async fn read(&self, file: StoredFile<'_>, range: std::ops::Range<u64>) -> Result<Vec<u8>> {
        if let (Some(local), Some(checkpoint)) = (&self.local, file.checkpoint) {
            let (local, name, size, r) = (local.clone(), file.name.to_string(), file.size, range.clone());
            let copy = tokio::task::spawn_blocking(move || local.read(checkpoint, &name, size, r))
                .await
                .ok()
                .flatten();
            if let Some(bytes) = copy {
                self.reads.add(true, bytes.len() as u64);
                return Ok(bytes);
            }
        }
        let bytes = file.dir.read_range(file.name, range).await?.to_vec();
        self.reads.add(false, bytes.len() as u64);
        Ok(bytes)
    }

    /// The key groups `lo..=hi` of a state file (one contiguous read).
    async fn read_groups(
        &self,
        file: StoredFile<'_>,
        index: &[(u32, u64, u64)],
        lo: u32,
        hi: u32,
    ) -> Result<BTreeMap<u32, Vec<u8>>> {
        let mine: Vec<&(u32, u64, u64)> = index.iter().filter(|g| g.0 >= lo && g.0 <= hi).collect();
        let mut out = BTreeMap::new();
        if let (Some(first), Some(last)) = (mine.first(), mine.last()) {
            let (start, end) = (first.1, last.1 + last.2);
            let bytes = self.read(file, start..end).await?;
            for (g, off, len) in mine {
                let at = (off - start) as usize;
                out.insert(*g, bytes[at..at + *len as usize].to_vec());
            }
        }
        Ok(out)
    }
}

/// A state file's bytes, its key groups' `(group, offset, length)` and its operator state's
/// `(offset, length)`.
pub type Layout = (Vec<u8>, Vec<(u32, u64, u64)>, Option<(u64, u64)>);

/// Lays out a subtask's state file: key groups in order, then the operator state. Returns the
/// bytes and the index for `_metadata`.
pub fn layout(state: &OperatorState) -> Layout {
    let mut bytes = Vec::new();
    let mut index = Vec::with_capacity(state.keyed.len());
    let sorted: BTreeMap<u32, &Vec<u8>> = state.keyed.iter().map(|(g, b)| (*g, b)).collect();
    for (g, b) in sorted {
        index.push((g, bytes.len() as u64, b.len() as u64));
        bytes.extend_from_slice(b);
    }
    let operator = state.operator.as_ref().map(|b| {
        let at = bytes.len() as u64;
        bytes.extend_from_slice(b);
        (at, b.len() as u64)
    });
    (bytes, index, operator)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::metadata::{ChainedFile, OperatorSnapshot, SnapshotKind, SubtaskSnapshot};

    #[test]
    fn parts_cut_a_subtasks_range_by_stored_bytes_over_whole_chains() {
        // Two old subtasks over 8 key groups: a full file and a change file each.
        let index = |groups: std::ops::Range<u32>, len: u64| -> Vec<(u32, u64, u64)> {
            groups.map(|g| (g, g as u64 * len, len)).collect()
        };
        let subtask = |i: usize, groups: std::ops::Range<u32>| SubtaskSnapshot {
            subtask: i,
            file: format!("op/{i}"),
            size: 0,
            key_groups: index(groups.clone(), 10),
            operator_state: None,
            chain: vec![ChainedFile {
                checkpoint: 1,
                file: format!("op/{i}-full"),
                size: 0,
                key_groups: index(groups, 30),
            }],
        };
        let meta = SnapshotMetadata {
            operators: vec![OperatorSnapshot {
                uid: "op".into(),
                parallelism: 2,
                subtasks: vec![subtask(0, 0..4), subtask(1, 4..8)],
            }],
            max_parallelism: 8,
            kind: SnapshotKind::Checkpoint,
            format: crate::checkpoint::metadata::FORMAT,
            job: "j".into(),
            checkpoint_id: 2,
            generation: 1,
            timestamp_ms: 0,
        };
        let restore = Restore::new(
            crate::checkpoint::CheckpointStore::open("memory://parts", "j")
                .unwrap()
                .checkpoint(2),
            meta,
        );
        // 40 stored bytes per key group: 100 bytes fit two.
        assert_eq!(restore.parts("op", 0, 1, 100), vec![(0, 1), (2, 3), (4, 5), (6, 7)]);
        assert_eq!(restore.parts("op", 1, 2, 1_000), vec![(4, 7)]);
        assert_eq!(restore.parts("op", 0, 2, 1), vec![(0, 0), (1, 1), (2, 2), (3, 3)]);
        assert_eq!(
            restore.parts("other", 0, 1, 1),
            vec![(0, 7)],
            "no state: the whole range"
        );
    }
}
