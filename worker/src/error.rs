//! Errors of the engine. Each says what a user needs to act: the node, the field, the value.

use thiserror::Error;

/// Result with the engine's error.
pub type Result<T, E = WeirError> = std::result::Result<T, E>;

/// Everything that can go wrong planning or running a job.
#[derive(Debug, Error)]
pub enum WeirError {
    /// The job as written cannot be planned (unknown field, bad expression, bad parallelism…).
    #[error("invalid job: {0}")]
    Plan(String),
    /// A connector's options are wrong.
    #[error("{connector} connector '{node}': {message}")]
    Config {
        /// Connector name.
        connector: String,
        /// Node id.
        node: String,
        /// What is wrong.
        message: String,
    },
    /// An operator failed while processing data.
    #[error("operator '{node}' (subtask {subtask}) failed: {message}")]
    Operator {
        /// Node id.
        node: String,
        /// Subtask index.
        subtask: usize,
        /// What happened.
        message: String,
    },
    /// A source or sink failed talking to the outside world.
    #[error("{node}: {message}")]
    Io {
        /// Node id.
        node: String,
        /// What happened.
        message: String,
    },
    /// A downstream subtask stopped (it failed; its own error is the one reported).
    #[error("a downstream subtask stopped")]
    DownstreamGone,
    /// An upstream subtask stopped without ending its stream (it failed).
    #[error("an upstream subtask stopped")]
    UpstreamGone,
    /// The job was cancelled.
    #[error("job cancelled")]
    Cancelled,
    /// Data between workers could not be sent or received.
    #[error("data exchange: {0}")]
    Exchange(String),
    /// The cluster (coordinator, workers) failed or refused a request.
    #[error("cluster: {0}")]
    Cluster(String),
    /// Arrow error outside any one operator.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

impl WeirError {
    /// A planning error.
    pub fn plan(msg: impl Into<String>) -> Self {
        WeirError::Plan(msg.into())
    }

    /// A configuration error for a connector node.
    pub fn config(connector: &str, node: &str, message: impl Into<String>) -> Self {
        WeirError::Config {
            connector: connector.to_string(),
            node: node.to_string(),
            message: message.into(),
        }
    }

    /// Whether this error is only a consequence of another subtask's failure.
    pub fn is_secondary(&self) -> bool {
        matches!(
            self,
            WeirError::DownstreamGone | WeirError::UpstreamGone | WeirError::Cancelled
        )
    }

    /// An I/O error for a node.
    pub fn io(node: &str, message: impl std::fmt::Display) -> Self {
        WeirError::Io {
            node: node.to_string(),
            message: message.to_string(),
        }
    }
}
