//! The job's status as `weir status` and `/status` show it: phase, generation, workers,
//! restarts, checkpoint figures, and counters per node summed over workers.

use crate::runtime::metrics::NodeStats;

/// A snapshot of the job for `weir status` and the HTTP endpoint.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct StatusView {
    /// Job name.
    pub job: String,
    /// Phase name.
    pub state: String,
    /// Current generation.
    pub generation: u64,
    /// Workers the job has.
    pub workers: usize,
    /// Workers attached now.
    pub workers_attached: usize,
    /// Restarts after failures.
    pub restarts: u32,
    /// Newest completed checkpoint id.
    pub last_checkpoint: u64,
    /// Completed checkpoints.
    pub checkpoints_completed: u64,
    /// Failed checkpoints.
    pub checkpoints_failed: u64,
    /// Duration of the newest checkpoint, ms.
    pub checkpoint_last_duration_ms: u64,
    /// Size of the newest checkpoint, bytes.
    pub checkpoint_last_bytes: u64,
    /// The last failure.
    pub last_error: Option<String>,
    /// The newest savepoint this master took (so a caller that lost the reply still finds it).
    #[serde(default)]
    pub last_savepoint: Option<String>,
    /// Bytes sent between workers (this attachment of each worker).
    pub exchange_bytes_out: u64,
    /// Times a sender waited for credit (back-pressure), over workers.
    pub exchange_credit_waits: u64,
    /// State bytes restores read from local copies (local recovery), over workers.
    #[serde(default)]
    pub restore_local_bytes: u64,
    /// State bytes restores read from checkpoint storage, over workers.
    #[serde(default)]
    pub restore_remote_bytes: u64,
    /// Per node, summed over workers.
    pub nodes: Vec<NodeStats>,
}
