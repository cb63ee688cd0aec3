//! Sends rows to a URL as JSON: each batch becomes one request (or several, of at most
//! `max_rows` rows) whose body is a JSON array of objects or JSON lines. A request is sent, and
//! retried with back-off while the server is unavailable, before the next batch is taken, so
//! every row before a checkpoint's barrier has been accepted when the checkpoint completes
//! (at-least-once: a job restarted from a checkpoint may send rows after it again). A request the
//! server refuses for good (a 4xx other than 408 and 429) sends its rows to the dead-letter
//! output with the server's answer; a server still unavailable after `max_retries` fails the
//! task, which restarts from the last checkpoint like any task failure.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;

use crate::connectors::format::{Format, encode};
use crate::connectors::{Sink, SinkFactory};
use crate::contract::TaskContext;
use crate::contract::error::{Result, WeirError};
use crate::contract::metrics::NodeMetrics;
use crate::dead_letter::DeadLetterWriter;

/// How a request's rows are laid out in its body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpBody {
    /// `[{…}, {…}]` with `content-type: application/json` (the default).
    #[default]
    JsonArray,
    /// One object per line with `content-type: application/x-ndjson`.
    JsonLines,
}

/// Options of the `http` sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// The URL rows are sent to.
    pub url: String,
    /// `POST` (default) or `PUT`.
    #[serde(default = "post")]
    pub method: String,
    /// `json_array` (default) or `json_lines`.
    #[serde(default)]
    pub body: HttpBody,
    /// The most rows in one request (default 1000); a larger batch is sent in several.
    #[serde(default = "max_rows")]
    pub max_rows: usize,
    /// Extra request headers (e.g. `Authorization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Retries of a request the server could not take (connection errors, timeouts, 408, 429,
    /// 5xx) before the task fails (default 5).
    #[serde(default = "max_retries")]
    pub max_retries: u32,
    /// The first retry's delay in milliseconds, doubled each retry up to 10 s (default 200); a
    /// `Retry-After` of a few seconds from the server is honoured instead.
    #[serde(default = "backoff")]
    pub retry_backoff_ms: u64,
    /// A request's timeout in milliseconds (default 30000).
    #[serde(default = "timeout")]
    pub timeout_ms: u64,
}

fn post() -> String {
    "POST".into()
}
fn max_rows() -> usize {
    1000
}
fn max_retries() -> u32 {
    5
}
fn backoff() -> u64 {
    200
}
fn timeout() -> u64 {
    30_000
}

/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How much of a refusing server's answer goes into the dead-letter reason.
const REASON_BYTES: usize = 300;

/// The HTTP sink factory.
#[derive(Debug, Clone)]
pub struct HttpSink {
    node: String,
    config: HttpSinkConfig,
    method: reqwest::Method,
}

impl HttpSink {
    /// Checks `config` (URL, method, header names, row limit) and makes the sink `node`.
    pub fn new(node: &str, config: HttpSinkConfig) -> Result<Self> {
        let bad = |field: &str, why: String| WeirError::config("http", node, format!("{field}: {why}"));
        let url = url::Url::parse(&config.url).map_err(|e| bad("url", format!("'{}': {e}", config.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("url", format!("'{}' is not an http(s) URL", config.url)));
        }
        let method = match config.method.to_ascii_uppercase().as_str() {
            "POST" => reqwest::Method::POST,
            "PUT" => reqwest::Method::PUT,
            other => return Err(bad("method", format!("'{other}' (use POST or PUT)"))),
        };
        if config.max_rows == 0 {
            return Err(bad("max_rows", "must be at least 1".into()));
        }
        for (name, value) in &config.headers {
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| bad("headers", format!("'{name}': {e}")))?;
            reqwest::header::HeaderValue::from_str(value).map_err(|e| bad("headers", format!("'{name}': {e}")))?;
        }
        Ok(HttpSink {
            node: node.into(),
            config,
            method,
        })
    }
}

impl SinkFactory for HttpSink {
    fn connector(&self) -> &'static str {
        "http"
    }
    fn create(&self, _input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Sink>> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(self.config.timeout_ms.max(1)))
            .build()
            .map_err(|e| WeirError::io(&self.node, format!("HTTP client: {e}")))?;
        Ok(Box::new(HttpWriter {
            node: self.node.clone(),
            config: self.config.clone(),
            target: Target {
                client,
                method: self.method.clone(),
                url: self.config.url.clone(),
                headers: self.config.headers.clone(),
            },
            subtask: ctx.subtask,
            dead_letter: DeadLetterWriter::new(
                ctx.dead_letter.as_deref().map(crate::storage::resolve).transpose()?,
                &ctx.node,
                ctx.subtask,
            ),
            metrics: ctx.metrics.clone(),
        }))
    }
}

/// Where requests go (shared by reference across awaits, so apart from the dead-letter writer,
/// which is not `Sync`).
struct Target {
    client: reqwest::Client,
    method: reqwest::Method,
    url: String,
    headers: BTreeMap<String, String>,
}

struct HttpWriter {
    node: String,
    config: HttpSinkConfig,
    target: Target,
    subtask: usize,
    dead_letter: DeadLetterWriter,
    metrics: Arc<NodeMetrics>,
}

/// How one try of a request went.
enum Outcome {
    Accepted,
    /// Try again after (at least) this long.
    Retry(String, Option<Duration>),
    /// The server refused the rows for good.
    Refused(String),
}

impl HttpWriter {
    /// The JSON lines of `batch`, one per row.
    fn lines(&self, batch: &RecordBatch) -> Result<Vec<String>> {
        let bytes = encode(Format::Json, batch, false)?;
        let text = String::from_utf8(bytes).map_err(|e| WeirError::internal(format!("JSON encoder: {e}")))?;
        Ok(text.lines().map(str::to_string).collect())
    }

    fn body(&self, rows: &[String]) -> (Vec<u8>, &'static str) {
        match self.config.body {
            HttpBody::JsonArray => {
                let mut b = Vec::with_capacity(rows.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
                b.push(b'[');
                for (i, r) in rows.iter().enumerate() {
                    if i > 0 {
                        b.push(b',');
                    }
                    b.extend_from_slice(r.as_bytes());
                }
                b.push(b']');
                (b, "application/json")
            }
            HttpBody::JsonLines => {
                let mut b = Vec::with_capacity(rows.iter().map(|r| r.len() + 1).sum());
                for r in rows {
                    b.extend_from_slice(r.as_bytes());
                    b.push(b'\n');
                }
                (b, "application/x-ndjson")
            }
        }
    }

    /// Sends `rows` as one request, retrying while the server is unavailable.
    async fn send(&mut self, rows: &[String]) -> Result<()> {
        let (body, content_type) = self.body(rows);
        let mut delay = Duration::from_millis(self.config.retry_backoff_ms);
        let mut tries = 0u32;
        loop {
            match self.target.try_once(&body, content_type).await {
                Outcome::Accepted => return Ok(()),
                Outcome::Refused(reason) => return self.refuse(rows, &reason).await,
                Outcome::Retry(reason, after) => {
                    if tries >= self.config.max_retries {
                        return Err(WeirError::io(
                            &self.node,
                            format!("{reason} (gave up after {} tries)", tries + 1),
                        ));
                    }
                    tries += 1;
                    let wait = after.unwrap_or(delay);
                    tracing::warn!(node = %self.node, subtask = self.subtask, tries, ?wait, "{reason}; retrying");
                    tokio::time::sleep(wait).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Sends each of `rows` to the dead-letter output with the server's `reason`.
    async fn refuse(&mut self, rows: &[String], reason: &str) -> Result<()> {
        let before = self
            .metrics
            .dead_letters
            .fetch_add(rows.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if before < 5 {
            tracing::warn!(node = %self.node, subtask = self.subtask, rows = rows.len(), reason, "request refused, its rows sent to the dead-letter output");
        }
        for row in rows {
            self.dead_letter.write(row, reason).await?;
        }
        Ok(())
    }
}

impl Target {
    async fn try_once(&self, body: &[u8], content_type: &str) -> Outcome {
        let mut req = self
            .client
            .request(self.method.clone(), &self.url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body.to_vec());
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let what = format!("{} {}", self.method, self.url);
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(format!("{what}: {e}"), None),
        };
        let status = resp.status();
        if status.is_success() {
            return Outcome::Accepted;
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(MAX_BACKOFF));
        let text = resp.text().await.unwrap_or_default();
        let mut answer: String = text.chars().take(REASON_BYTES).collect();
        if answer.len() < text.len() {
            answer.push('…');
        }
        let reason = format!("{what}: HTTP {status}: {}", answer.trim());
        let transient = status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error();
        if transient {
            Outcome::Retry(reason, retry_after)
        } else {
            Outcome::Refused(reason)
        }
    }
}

#[async_trait]
impl Sink for HttpWriter {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let lines = self.lines(&batch)?;
        for rows in lines.chunks(self.config.max_rows) {
            self.send(rows).await?;
        }
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        self.dead_letter.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> std::result::Result<HttpSink, String> {
        let options: serde_json::Map<String, serde_json::Value> = serde_yaml::from_str(text).unwrap();
        crate::connectors::registry::sink("http", "out", &options)
            .map(|_| ())
            .map_err(|e| e.to_string())?;
        let c: HttpSinkConfig = serde_json::from_value(serde_json::Value::Object(options)).unwrap();
        HttpSink::new("out", c).map_err(|e| e.to_string())
    }

    #[test]
    fn bad_options_are_refused_naming_the_field() {
        let e = config("url: ftp://x/y").unwrap_err();
        assert!(e.contains("url") && e.contains("not an http(s) URL"), "{e}");
        let e = config("url: http://x/y\nmethod: GET").unwrap_err();
        assert!(e.contains("method") && e.contains("GET"), "{e}");
        let e = config("url: http://x/y\nmax_rows: 0").unwrap_err();
        assert!(e.contains("max_rows"), "{e}");
        let e = config("url: http://x/y\nbody: xml").unwrap_err();
        assert!(e.contains("body"), "{e}");
        assert!(config("url: http://x/y\nbody: json_lines\nmethod: put").is_ok());
    }
}
