//! Loading a snapshot: each subtask gets the key groups of its range, read as byte ranges from
//! whichever old subtasks' files hold them (so a rescaled job reads only what it owns), and
//! its non-keyed state.

use std::collections::BTreeMap;

use super::OperatorState;
use super::metadata::SnapshotMetadata;
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
}

impl Restore {
    /// Opens the snapshot at `dir` (it must be complete).
    pub async fn open(dir: SnapshotDir) -> Result<Self> {
        let meta = dir.read_metadata().await?;
        Ok(Restore { dir, meta })
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
        let Some(op) = self.meta.operator(uid) else {
            return Ok(OperatorState::default());
        };
        let (lo, hi) = keys::key_group_range(subtask as u32, self.meta.max_parallelism, parallelism as u32);
        let mut state = OperatorState::default();
        for s in &op.subtasks {
            let mut layers = Vec::with_capacity(s.chain.len() + 1);
            for c in &s.chain {
                let dir = self.dir.checkpoint_sibling(c.checkpoint);
                layers.push(read_groups(&dir, &c.file, &c.key_groups, lo, hi).await?);
            }
            layers.push(read_groups(&self.dir, &s.file, &s.key_groups, lo, hi).await?);
            let mut layers = layers.into_iter();
            state.keyed.extend(layers.next().unwrap_or_default());
            for (i, delta) in layers.enumerate() {
                if state.deltas.len() <= i {
                    state.deltas.push(BTreeMap::new());
                }
                state.deltas[i].extend(delta);
            }
            if let Some((off, len)) = s.operator_state {
                let bytes = self.dir.read_range(&s.file, off..off + len).await?.to_vec();
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

/// The key groups `lo..=hi` of a state file (one contiguous read).
async fn read_groups(
    dir: &SnapshotDir,
    file: &str,
    index: &[(u32, u64, u64)],
    lo: u32,
    hi: u32,
) -> Result<BTreeMap<u32, Vec<u8>>> {
    let mine: Vec<&(u32, u64, u64)> = index.iter().filter(|g| g.0 >= lo && g.0 <= hi).collect();
    let mut out = BTreeMap::new();
    if let (Some(first), Some(last)) = (mine.first(), mine.last()) {
        let (start, end) = (first.1, last.1 + last.2);
        let bytes = dir.read_range(file, start..end).await?;
        for (g, off, len) in mine {
            let at = (off - start) as usize;
            out.insert(*g, bytes[at..at + *len as usize].to_vec());
        }
    }
    Ok(out)
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
