//! What flows on a channel between subtasks, in order.

use arrow::record_batch::RecordBatch;

/// A checkpoint barrier: every operator snapshots its state when it passes (aligned over its
/// inputs), so the snapshot holds exactly the effect of the records before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Barrier {
    /// Checkpoint id.
    pub checkpoint_id: u64,
    /// Trigger time, milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// A savepoint (stored under `savepoints/`, kept) rather than a checkpoint.
    pub savepoint: bool,
    /// A stop-with-savepoint's: the sources emit nothing after it (Flink's synchronous
    /// savepoint), so the state does not change under the snapshot, and nothing is processed
    /// that the next run would process again. They carry on if the savepoint fails.
    pub stop: bool,
}

/// One element of a stream between two subtasks.
#[derive(Debug, Clone)]
pub enum Message {
    /// Rows.
    Data(RecordBatch),
    /// Event time has reached this point (milliseconds since the epoch).
    Watermark(i64),
    /// A checkpoint barrier.
    Barrier(Barrier),
    /// The sender is idle: it holds back no watermark until it sends data or a watermark.
    Idle,
    /// The sender will send nothing more.
    EndOfStream,
}
