//! Controlling a running job from outside: cancel, savepoint, stop with a savepoint.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::contract::error::{Result, WeirError};

pub use crate::checkpoint::coordinator::SavepointRequest;

/// A handle on a running job (Flink's `JobClient`): clone it, keep one, pass one to
/// [`crate::api::StreamExecutionEnvironment::execute_controlled`].
#[derive(Clone)]
pub struct JobControl {
    cancel: CancellationToken,
    inbox: Arc<SavepointInbox>,
}

/// Where savepoint requests wait for the checkpoint coordinator, and the savepoint the job
/// stopped with once it did: a stop request that comes after (an operator repeating a stop
/// whose answer it lost) gets that savepoint at once instead of waiting for one that a stopping
/// job can no longer take.
pub struct SavepointInbox {
    sender: mpsc::UnboundedSender<SavepointRequest>,
    receiver: Mutex<mpsc::UnboundedReceiver<SavepointRequest>>,
    stopped_with: std::sync::Mutex<Option<String>>,
}

impl SavepointInbox {
    /// Queues `request`, or answers it when the job already stopped with a savepoint.
    fn send(&self, request: SavepointRequest) -> Result<()> {
        let stopped = self.stopped_with.lock().expect("savepoint inbox lock");
        if let Some(path) = stopped.as_ref() {
            let _ = request.reply.send(answer_after_stop(request.stop, path));
            return Ok(());
        }
        self.sender
            .send(request)
            .map_err(|_| WeirError::internal("the job is not running"))
    }

    /// The requests, for the coordinator of the current run (one at a time).
    pub(crate) fn receiver(&self) -> &Mutex<mpsc::UnboundedReceiver<SavepointRequest>> {
        &self.receiver
    }

    /// A new run of the job starts: requests wait for its savepoints again.
    pub(crate) fn running(&self) {
        *self.stopped_with.lock().expect("savepoint inbox lock") = None;
    }

    /// The job stops with the savepoint at `path`: requests queued behind the stop, and any that
    /// come later, are answered now (stop: that savepoint; savepoint: refused).
    pub(crate) fn stopped(&self, path: &str, queued: &mut mpsc::UnboundedReceiver<SavepointRequest>) {
        let mut stopped = self.stopped_with.lock().expect("savepoint inbox lock");
        *stopped = Some(path.to_string());
        while let Ok(r) = queued.try_recv() {
            let _ = r.reply.send(answer_after_stop(r.stop, path));
        }
    }

    /// The savepoint the job stopped with, if it did.
    pub fn stopped_with(&self) -> Option<String> {
        self.stopped_with.lock().expect("savepoint inbox lock").clone()
    }
}

fn answer_after_stop(stop: bool, path: &str) -> std::result::Result<String, String> {
    if stop {
        Ok(path.to_string())
    } else {
        Err(format!("the job is stopping with savepoint {path}"))
    }
}

impl Default for JobControl {
    fn default() -> Self {
        Self::with_cancel(CancellationToken::new())
    }
}

impl JobControl {
    /// A handle whose job stops when `cancel` fires.
    pub fn with_cancel(cancel: CancellationToken) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        JobControl {
            cancel,
            inbox: Arc::new(SavepointInbox {
                sender,
                receiver: Mutex::new(receiver),
                stopped_with: std::sync::Mutex::new(None),
            }),
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
