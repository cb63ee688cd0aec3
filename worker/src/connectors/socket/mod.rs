//! Reads newline-delimited text or JSON from a TCP server, like Flink's `socketTextStream`
//! (try it with `nc -lk 9999`). One subtask; the stream ends when the server closes it.

use std::time::Duration;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;

use crate::connectors::format::{Format, RecordDecoder, SchemaSpec, text_schema};
use crate::connectors::{Source, SourceFactory};
use crate::contract::SourceContext;
use crate::contract::TaskContext;
use crate::contract::error::{Result, WeirError};

/// Options of `connector: socket`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketConfig {
    /// Host to connect to.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `text` (default: one `line` column) or `json` (needs `schema`).
    #[serde(default = "text")]
    pub format: Format,
    /// Schema of JSON records.
    #[serde(default)]
    pub schema: Option<SchemaSpec>,
    /// Emit a partial batch after this many ms without new lines (default 100).
    #[serde(default = "linger")]
    pub linger_ms: u64,
}

fn text() -> Format {
    Format::Text
}
fn linger() -> u64 {
    100
}

/// The socket source factory.
pub struct Socket {
    node: String,
    config: SocketConfig,
}

impl Socket {
    /// Checks `config` and makes the source `node`.
    pub fn new(node: &str, config: SocketConfig) -> Result<Self> {
        if config.format == Format::Csv {
            return Err(WeirError::config("socket", node, "format: use text or json"));
        }
        if config.format == Format::Json && config.schema.is_none() {
            return Err(WeirError::config("socket", node, "schema: required with format json"));
        }
        Ok(Socket {
            node: node.into(),
            config,
        })
    }
}

#[async_trait]
impl SourceFactory for Socket {
    fn connector(&self) -> &'static str {
        "socket"
    }
    async fn schema(&self) -> Result<SchemaRef> {
        match (&self.config.format, &self.config.schema) {
            (Format::Json, Some(s)) => s
                .to_schema()
                .map_err(|e| WeirError::config("socket", &self.node, e.to_string())),
            _ => Ok(text_schema()),
        }
    }
    fn max_parallelism(&self) -> Option<usize> {
        Some(1)
    }
    fn create(&self, schema: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Source>> {
        Ok(Box::new(SocketReader {
            node: self.node.clone(),
            config: self.config.clone(),
            decoder: RecordDecoder::new(self.config.format, schema.clone()),
        }))
    }
}

struct SocketReader {
    node: String,
    config: SocketConfig,
    decoder: RecordDecoder,
}

impl SocketReader {
    async fn flush(&self, lines: &mut Vec<String>, ctx: &mut dyn SourceContext) -> Result<()> {
        let decoded = self.decoder.decode(lines)?;
        lines.clear();
        decoded.emit(ctx).await
    }
}

#[async_trait]
impl Source for SocketReader {
    async fn run(&mut self, ctx: &mut dyn SourceContext) -> Result<()> {
        let cancel = ctx.cancel_token();
        let addr = format!("{}:{}", self.config.host, self.config.port);
        let stream = TcpStream::connect(&addr)
            .await
            .map_err(|e| WeirError::io(&self.node, format!("connect to {addr}: {e}")))?;
        let mut reader = BufReader::new(stream);
        let mut lines: Vec<String> = Vec::new();
        // Kept across iterations: a read cut short by the linger or idle timer leaves its
        // partial line here, and the next read completes it.
        let mut buf = Vec::new();
        let linger = Duration::from_millis(self.config.linger_ms.max(1));
        enum Event {
            Read(std::io::Result<usize>),
            Linger,
            Idle,
        }
        loop {
            let idle = ctx.idle_timer();
            let event = tokio::select! {
                r = reader.read_until(b'\n', &mut buf) => Event::Read(r),
                _ = tokio::time::sleep(linger), if !lines.is_empty() => Event::Linger,
                _ = idle, if lines.is_empty() => Event::Idle,
                _ = cancel.cancelled() => break,
            };
            match event {
                Event::Linger => self.flush(&mut lines, ctx).await?,
                Event::Idle => ctx.mark_idle().await?,
                Event::Read(Ok(0)) => break,
                Event::Read(Ok(_)) if buf.last() == Some(&b'\n') => {
                    let line = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_string();
                    buf.clear();
                    lines.push(line);
                    if lines.len() >= ctx.batch_size() {
                        self.flush(&mut lines, ctx).await?;
                    }
                }
                Event::Read(Ok(_)) => {} // more of the line to come
                Event::Read(Err(e)) => return Err(WeirError::io(&self.node, format!("read from {addr}: {e}"))),
            }
        }
        if !buf.is_empty() {
            lines.push(String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_string());
        }
        self.flush(&mut lines, ctx).await
    }
}
