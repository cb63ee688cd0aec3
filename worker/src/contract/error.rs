//! Errors of the engine. Each says what a user needs to act (the node, the field, the value) and
//! keeps the error that caused it, and each says whether restarting the job can help
//! ([`WeirError::is_retryable`]) — a property of the variant, not of the words in its message.

use thiserror::Error;

/// Result with the engine's error.
pub type Result<T, E = WeirError> = std::result::Result<T, E>;

/// Any error, kept as the cause of a [`WeirError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Error type of user functions and operators; the engine adds the node and subtask.
pub type UserError = BoxError;
/// Result of user functions and operators.
pub type UserResult<T> = std::result::Result<T, UserError>;

/// Everything that can go wrong planning or running a job.
#[derive(Debug, Error)]
pub enum WeirError {
    /// The job as written cannot be planned (unknown field, bad expression, bad parallelism…).
    /// Restarting cannot help.
    #[error("invalid job: {0}")]
    Plan(String),
    /// A connector's options are wrong. Restarting cannot help.
    #[error("{connector} connector '{node}': {message}")]
    Config {
        /// Connector name.
        connector: String,
        /// Node id.
        node: String,
        /// What is wrong.
        message: String,
    },
    /// An operator or user function failed while processing data.
    #[error("operator '{node}' (subtask {subtask}) failed: {source}")]
    Operator {
        /// Node id.
        node: String,
        /// Subtask index.
        subtask: usize,
        /// What happened.
        source: BoxError,
    },
    /// A source or sink failed talking to the outside world.
    #[error("{node}: {source}")]
    Io {
        /// Node id.
        node: String,
        /// What happened.
        source: BoxError,
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
    /// The engine itself failed while running (a task that ended abnormally, a runtime that
    /// could not start). A restart may help.
    #[error("{0}")]
    Internal(String),
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

    /// An I/O error for a node, keeping its cause.
    pub fn io(node: &str, source: impl Into<BoxError>) -> Self {
        WeirError::Io {
            node: node.to_string(),
            source: source.into(),
        }
    }

    /// An I/O error for a node with what was being done (`writing s3://…/chk-3/_metadata`),
    /// keeping its cause.
    pub fn io_context(node: &str, context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        WeirError::io(
            node,
            Contextual {
                context: context.into(),
                source: source.into(),
            },
        )
    }

    /// A failure of operator `node`'s subtask `subtask`, keeping its cause.
    pub fn operator(node: &str, subtask: usize, source: impl Into<BoxError>) -> Self {
        WeirError::Operator {
            node: node.to_string(),
            subtask,
            source: source.into(),
        }
    }

    /// A failure of the engine itself while running.
    pub fn internal(msg: impl Into<String>) -> Self {
        WeirError::Internal(msg.into())
    }

    /// Whether this error is only a consequence of another subtask's failure.
    pub fn is_secondary(&self) -> bool {
        matches!(
            self,
            WeirError::DownstreamGone | WeirError::UpstreamGone | WeirError::Cancelled
        )
    }

    /// Whether restarting the job from its newest checkpoint can help: a failure while running
    /// (I/O, an operator, the exchange, a lost worker) can; a job that cannot be planned or a
    /// connector configured wrong cannot.
    pub fn is_retryable(&self) -> bool {
        match self {
            WeirError::Plan(_) | WeirError::Config { .. } => false,
            WeirError::Operator { .. }
            | WeirError::Io { .. }
            | WeirError::DownstreamGone
            | WeirError::UpstreamGone
            | WeirError::Cancelled
            | WeirError::Exchange(_)
            | WeirError::Cluster(_)
            | WeirError::Internal(_)
            | WeirError::Arrow(_) => true,
        }
    }
}

/// An error with what was being done when it happened.
#[derive(Debug, Error)]
#[error("{context}: {source}")]
pub struct Contextual {
    /// What was being done.
    pub context: String,
    /// What went wrong.
    pub source: BoxError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_kept_and_retryability_follows_the_variant() {
        let cause = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipe closed");
        let e = WeirError::io("sink", cause);
        assert_eq!(e.to_string(), "sink: pipe closed");
        let source = std::error::Error::source(&e).expect("the cause is kept");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        assert!(e.is_retryable());
        assert!(WeirError::internal("task ended abnormally").is_retryable());
        assert!(!WeirError::plan("no such field").is_retryable());
        assert!(!WeirError::config("kafka", "in", "topic missing").is_retryable());
        let op = WeirError::operator("f", 2, "division by zero");
        assert_eq!(op.to_string(), "operator 'f' (subtask 2) failed: division by zero");
    }
}
