//! Controlling a running job from outside: cancel, savepoint, stop with a savepoint.

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::contract::error::{Result, WeirError};

pub use crate::checkpoint::coordinator::{SavepointInbox, SavepointRequest};

/// A handle on a running job (Flink's `JobClient`): clone it, keep one, pass one to
/// [`crate::api::StreamExecutionEnvironment::execute_controlled`].
#[derive(Clone)]
pub struct JobControl {
    cancel: CancellationToken,
    inbox: Arc<SavepointInbox>,
}

impl Default for JobControl {
    fn default() -> Self {
        Self::with_cancel(CancellationToken::new())
    }
}

impl JobControl {
    /// A handle whose job stops when `cancel` fires.
    pub fn with_cancel(cancel: CancellationToken) -> Self {
        JobControl {
            cancel,
            inbox: Arc::new(SavepointInbox::default()),
        }
    }

    /// The job's cancellation token.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Stops the job: sources stop; a checkpointing job keeps its state in its last checkpoint
    /// (resume with `RestoreFrom::Latest`).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    async fn request(&self, stop: bool) -> Result<String> {
        let (reply, answer) = oneshot::channel();
        self.inbox.send(SavepointRequest { stop, reply })?;
        match answer.await {
            Ok(Ok(path)) => Ok(path),
            Ok(Err(reason)) => Err(WeirError::io("savepoint", reason)),
            Err(_) => Err(WeirError::internal("the job ended before the savepoint completed")),
        }
    }

    /// Takes a savepoint of the running job (it needs checkpointing enabled); returns where it
    /// is, for `RestoreFrom::Snapshot` / `weir run --from-savepoint`.
    pub async fn savepoint(&self) -> Result<String> {
        self.request(false).await
    }

    /// Takes a savepoint, then stops the job (Flink's stop-with-savepoint): the output up to
    /// the savepoint is committed; resuming from it loses and repeats nothing. Asked again once
    /// the job stopped, it answers with the same savepoint.
    pub async fn stop_with_savepoint(&self) -> Result<String> {
        self.request(true).await
    }

    /// The savepoint inbox, for the coordinator of the current run.
    pub(crate) fn inbox(&self) -> Arc<SavepointInbox> {
        self.inbox.clone()
    }
}
