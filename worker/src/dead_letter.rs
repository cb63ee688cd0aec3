//! The dead-letter output: malformed records with the reason, never dropped silently.
//!
//! Each source subtask writes JSON lines to `<dir>/<node>-<subtask>.jsonl`:
//! `{"node": …, "subtask": …, "reason": …, "raw": …}`. The file appears when the source
//! finishes; the count is live in the job's metrics.

use object_store::buffered::BufWriter;
use tokio::io::AsyncWriteExt;

use crate::contract::error::{Result, WeirError};
use crate::storage::Location;

/// The dead-letter writer of one source subtask; opened at the first record.
pub struct DeadLetterWriter {
    dir: Option<Location>,
    node: String,
    subtask: usize,
    writer: Option<BufWriter>,
}

impl DeadLetterWriter {
    /// A writer into `dir` (none: records are only logged and counted).
    pub fn new(dir: Option<Location>, node: &str, subtask: usize) -> Self {
        DeadLetterWriter {
            dir,
            node: node.to_string(),
            subtask,
            writer: None,
        }
    }

    /// Writes one malformed record and why it was refused.
    pub async fn write(&mut self, raw: &str, reason: &str) -> Result<()> {
        tracing::debug!(node = %self.node, subtask = self.subtask, reason, "malformed record to dead-letter output");
        let Some(dir) = &self.dir else { return Ok(()) };
        if self.writer.is_none() {
            let loc = dir.child(&format!("{}-{}.jsonl", self.node, self.subtask));
            self.writer = Some(BufWriter::new(loc.store.clone(), loc.path.clone()));
        }
        let line = serde_json::json!({"node": self.node, "subtask": self.subtask, "reason": reason, "raw": raw});
        let mut bytes = serde_json::to_vec(&line).map_err(|e| WeirError::io(&self.node, e))?;
        bytes.push(b'\n');
        let w = self.writer.as_mut().expect("opened above");
        w.write_all(&bytes)
            .await
            .map_err(|e| WeirError::io(&self.node, format!("dead-letter output: {e}")))
    }

    /// Flushes and closes the file, if any record was written.
    pub async fn close(&mut self) -> Result<()> {
        if let Some(mut w) = self.writer.take() {
            w.shutdown()
                .await
                .map_err(|e| WeirError::io(&self.node, format!("dead-letter output: {e}")))?;
        }
        Ok(())
    }
}
