//! Writes each subtask's rows to part files `part-<node>-<subtask>-<n>.<ext>` in a directory;
//! a part file becomes visible when it is closed (rolled or at the end of the input).

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use object_store::buffered::BufWriter;
use tokio::io::AsyncWriteExt;

use super::config::FileSinkConfig;
use crate::connectors::format::{Format, encode};
use crate::connectors::{Sink, SinkFactory};
use crate::error::{Result, WeirError};
use crate::operators::TaskContext;
use crate::storage::{self, Location};

/// A file sink.
pub struct FileSink {
    node: String,
    config: FileSinkConfig,
}

impl FileSink {
    /// A sink named `node` with `config`.
    pub fn new(node: &str, config: FileSinkConfig) -> Result<Self> {
        storage::resolve(&config.path).map_err(|e| WeirError::config("file", node, e.to_string()))?;
        Ok(FileSink {
            node: node.to_string(),
            config,
        })
    }
}

impl SinkFactory for FileSink {
    fn connector(&self) -> &'static str {
        "file"
    }

    fn check_schema(&self, input: &SchemaRef) -> Result<()> {
        if self.config.format == Format::Text && input.fields().len() != 1 {
            return Err(WeirError::config(
                "file",
                &self.node,
                "format text needs exactly one column; add a select",
            ));
        }
        Ok(())
    }

    fn create(&self, _input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Sink>> {
        Ok(Box::new(FileWriter {
            dir: storage::resolve(&self.config.path)?,
            node: ctx.node.clone(),
            subtask: ctx.subtask,
            format: self.config.format,
            roll_bytes: self.config.roll_bytes.max(1),
            part: 0,
            writer: None,
            written: 0,
        }))
    }
}

struct FileWriter {
    dir: Location,
    node: String,
    subtask: usize,
    format: Format,
    roll_bytes: usize,
    part: usize,
    writer: Option<BufWriter>,
    written: usize,
}

impl FileWriter {
    async fn close(&mut self) -> Result<()> {
        if let Some(mut w) = self.writer.take() {
            w.shutdown()
                .await
                .map_err(|e| WeirError::io(&self.node, format!("{}: {e}", self.dir.display)))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for FileWriter {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        let header = self.writer.is_none();
        if header {
            let name = format!(
                "part-{}-{}-{}.{}",
                self.node,
                self.subtask,
                self.part,
                self.format.extension()
            );
            let loc = self.dir.child(&name);
            self.writer = Some(BufWriter::new(loc.store, loc.path));
            self.part += 1;
            self.written = 0;
        }
        let bytes = encode(self.format, &batch, header)?;
        self.written += bytes.len();
        let w = self.writer.as_mut().expect("opened above");
        w.write_all(&bytes)
            .await
            .map_err(|e| WeirError::io(&self.node, format!("{}: {e}", self.dir.display)))?;
        if self.written >= self.roll_bytes {
            self.close().await?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        self.close().await
    }
}
