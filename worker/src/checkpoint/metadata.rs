//! `_metadata`: what a complete checkpoint or savepoint holds, written last.
//!
//! Every operator subtask's state is one file in the snapshot's directory; the metadata indexes
//! it: the byte range of each key group's state and of the operator (non-keyed) state, so a
//! restoring subtask reads exactly the key groups of its range (rescale included).

use serde::{Deserialize, Serialize};

/// Format version of `_metadata` and the state files it indexes. 2: incremental chains, and
/// keyed state written as per-key-group records by the copy-on-write operators; 3: each
/// record's entry framed with its length (a restore on disk stores entries without decoding
/// them); 4: the rows that joins, interval joins and Top-N keep hold their integers as varints
/// (`operators/row_codec.rs`). A snapshot of another format is refused with a clear error
/// rather than misread.
pub const FORMAT: u32 = 4;

/// A complete checkpoint or savepoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotMetadata {
    /// Format version ([`FORMAT`]).
    pub format: u32,
    /// Job name.
    pub job: String,
    /// Checkpoint id (savepoints take the id of the checkpoint they were taken as).
    pub checkpoint_id: u64,
    /// Run generation of the writer (each restart of a job is a new generation).
    pub generation: u64,
    /// `checkpoint` or `savepoint`.
    pub kind: SnapshotKind,
    /// When the checkpoint was triggered, ms since the epoch.
    pub timestamp_ms: i64,
    /// Number of key groups (fixed for the life of the job's state).
    pub max_parallelism: u32,
    /// State per operator.
    pub operators: Vec<OperatorSnapshot>,
}

/// Checkpoint (owned by the job, retained K at a time) or savepoint (owned by the user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    /// Periodic, for recovery.
    Checkpoint,
    /// On request, self-contained and kept.
    Savepoint,
}

/// One operator's state over its subtasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorSnapshot {
    /// Stable operator id (`uid`, or derived from the graph).
    pub uid: String,
    /// Parallelism when the snapshot was taken.
    pub parallelism: usize,
    /// Subtasks that hold state.
    pub subtasks: Vec<SubtaskSnapshot>,
}

/// One subtask's state file and its index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubtaskSnapshot {
    /// Subtask index.
    pub subtask: usize,
    /// File name relative to the snapshot directory.
    pub file: String,
    /// File size, bytes.
    pub size: u64,
    /// Keyed state: `(key group, offset, length)` within the file, sorted by key group.
    #[serde(default)]
    pub key_groups: Vec<(u32, u64, u64)>,
    /// Operator (non-keyed) state, e.g. a source's position: `(offset, length)`.
    #[serde(default)]
    pub operator_state: Option<(u64, u64)>,
    /// For an incremental snapshot (whose file holds only the keyed state's changes): the
    /// earlier files of this subtask it builds on, oldest first (a full file, then changes).
    /// Empty for a self-contained file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<ChainedFile>,
}

/// An earlier checkpoint's state file that an incremental snapshot builds on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainedFile {
    /// The checkpoint whose directory holds it (`chk-<checkpoint>`).
    pub checkpoint: u64,
    /// File name relative to that directory.
    pub file: String,
    /// File size, bytes.
    pub size: u64,
    /// Keyed state: `(key group, offset, length)` within the file.
    pub key_groups: Vec<(u32, u64, u64)>,
}

impl SnapshotMetadata {
    /// The operator with `uid`.
    pub fn operator(&self, uid: &str) -> Option<&OperatorSnapshot> {
        self.operators.iter().find(|o| o.uid == uid)
    }

    /// Bytes this snapshot wrote (for an incremental checkpoint: its changes).
    pub fn size(&self) -> u64 {
        self.operators.iter().flat_map(|o| &o.subtasks).map(|s| s.size).sum()
    }

    /// Bytes of state a restore from it reads: its files and the earlier files they build on.
    pub fn full_size(&self) -> u64 {
        let chained: u64 = self
            .operators
            .iter()
            .flat_map(|o| &o.subtasks)
            .flat_map(|s| &s.chain)
            .map(|c| c.size)
            .sum();
        self.size() + chained
    }

    /// Every earlier checkpoint's file it builds on, as `(checkpoint, file)`.
    pub fn chained_files(&self) -> impl Iterator<Item = (u64, &str)> {
        self.operators
            .iter()
            .flat_map(|o| &o.subtasks)
            .flat_map(|s| &s.chain)
            .map(|c| (c.checkpoint, c.file.as_str()))
    }
}
