//! Prints rows to standard output, one JSON object (or CSV line) per row, like Flink's `print()`.

use std::io::Write;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde::Deserialize;

use crate::connectors::format::{Format, encode};
use crate::connectors::{Sink, SinkFactory};
use crate::contract::TaskContext;
use crate::contract::error::{Result, WeirError};

/// Options of `connector: stdout`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    /// `json` (default) or `csv`.
    #[serde(default)]
    pub format: Format,
    /// Prefix each line with `<subtask>> ` as Flink's print sink does (default false).
    #[serde(default)]
    pub prefix: bool,
}

/// The stdout sink.
#[derive(Debug, Clone, Default)]
pub struct Stdout {
    config: StdoutConfig,
}

impl Stdout {
    /// A stdout sink.
    pub fn new(config: StdoutConfig) -> Self {
        Stdout { config }
    }
}

impl SinkFactory for Stdout {
    fn connector(&self) -> &'static str {
        "stdout"
    }
    fn create(&self, _input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Sink>> {
        Ok(Box::new(StdoutWriter {
            config: self.config.clone(),
            node: ctx.node.clone(),
            subtask: ctx.subtask,
            first: true,
        }))
    }
}

struct StdoutWriter {
    config: StdoutConfig,
    node: String,
    subtask: usize,
    first: bool,
}

#[async_trait]
impl Sink for StdoutWriter {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        let header = std::mem::take(&mut self.first) && self.subtask == 0;
        let bytes = encode(self.config.format, &batch, header)?;
        let mut out = std::io::stdout().lock();
        let res = if self.config.prefix {
            let prefix = format!("{}> ", self.subtask + 1);
            bytes
                .split_inclusive(|b| *b == b'\n')
                .try_for_each(|line| out.write_all(prefix.as_bytes()).and_then(|_| out.write_all(line)))
        } else {
            out.write_all(&bytes)
        };
        res.map_err(|e| WeirError::io(&self.node, format!("stdout: {e}")))
    }
    async fn finish(&mut self) -> Result<()> {
        std::io::stdout()
            .flush()
            .map_err(|e| WeirError::io(&self.node, format!("stdout: {e}")))
    }
}
