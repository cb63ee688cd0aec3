//! HTTP: a source that polls a URL returning JSON (an array of objects, or one object) and
//! emits the objects as rows — a response that is not JSON, or an element that does not fit the
//! schema, goes to the dead-letter output; failed requests are retried at the next poll — and a
//! sink that sends rows as JSON ([`sink`]).

pub mod sink;

use std::time::Duration;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use serde::Deserialize;

use crate::connectors::format::{Format, RecordDecoder, SchemaSpec, infer_schema};
use crate::connectors::{Source, SourceFactory};
use crate::contract::SourceContext;
use crate::contract::TaskContext;
use crate::contract::error::{Result, WeirError};

/// Options of `connector: http`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The URL to GET.
    pub url: String,
    /// Milliseconds between polls (default 1000).
    #[serde(default = "interval")]
    pub interval_ms: u64,
    /// Stop after this many polls; none = poll forever.
    #[serde(default)]
    pub polls: Option<u64>,
    /// JSON pointer to the array inside the response, e.g. `/data` (default: the whole body).
    #[serde(default)]
    pub pointer: Option<String>,
    /// Schema; inferred from the first response when absent.
    #[serde(default)]
    pub schema: Option<SchemaSpec>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Give up after this many failed polls in a row (default 10).
    #[serde(default = "failures")]
    pub max_failures: u32,
}

fn interval() -> u64 {
    1000
}
fn failures() -> u32 {
    10
}

/// The HTTP source factory.
pub struct Http {
    node: String,
    config: HttpConfig,
}

impl Http {
    /// Checks `config` and makes the source `node`.
    pub fn new(node: &str, config: HttpConfig) -> Result<Self> {
        url::Url::parse(&config.url)
            .map_err(|e| WeirError::config("http", node, format!("url '{}': {e}", config.url)))?;
        Ok(Http {
            node: node.into(),
            config,
        })
    }
}

/// Fetches once: the records (as JSON text), or why the body was refused.
pub(crate) async fn fetch(
    client: &reqwest::Client,
    config: &HttpConfig,
) -> std::result::Result<std::result::Result<Vec<String>, (String, String)>, String> {
    let mut req = client.get(&config.url);
    for (k, v) in &config.headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.map_err(|e| format!("GET {}: {e}", config.url))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| format!("GET {}: {e}", config.url))?;
    if !status.is_success() {
        return Err(format!("GET {}: HTTP {status}", config.url));
    }
    let value: serde_json::Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => return Ok(Err((body, format!("response is not JSON: {e}")))),
    };
    let value = match &config.pointer {
        Some(p) => match value.pointer(p) {
            Some(v) => v.clone(),
            None => {
                return Ok(Err((body, format!("response has nothing at pointer '{p}'"))));
            }
        },
        None => value,
    };
    Ok(Ok(match value {
        serde_json::Value::Array(items) => items.iter().map(|v| v.to_string()).collect(),
        other => vec![other.to_string()],
    }))
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

#[async_trait]
impl SourceFactory for Http {
    fn connector(&self) -> &'static str {
        "http"
    }
    async fn schema(&self) -> Result<SchemaRef> {
        if let Some(s) = &self.config.schema {
            return s
                .to_schema()
                .map_err(|e| WeirError::config("http", &self.node, e.to_string()));
        }
        let records = fetch(&client(), &self.config)
            .await
            .map_err(|e| WeirError::io(&self.node, format!("inferring the schema: {e}")))?
            .map_err(|(_, reason)| WeirError::io(&self.node, format!("inferring the schema: {reason}")))?;
        let samples: Vec<&str> = records.iter().map(String::as_str).collect();
        infer_schema(Format::Json, &samples, None).map_err(|e| WeirError::config("http", &self.node, e.to_string()))
    }
    fn max_parallelism(&self) -> Option<usize> {
        Some(1)
    }
    fn create(&self, schema: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Source>> {
        Ok(Box::new(HttpPoller {
            node: self.node.clone(),
            config: self.config.clone(),
            decoder: RecordDecoder::new(Format::Json, schema.clone()),
        }))
    }
}

struct HttpPoller {
    node: String,
    config: HttpConfig,
    decoder: RecordDecoder,
}

#[async_trait]
impl Source for HttpPoller {
    async fn run(&mut self, ctx: &mut dyn SourceContext) -> Result<()> {
        let cancel = ctx.cancel_token();
        let client = client();
        let mut polls = 0u64;
        let mut failures = 0u32;
        let mut tick = tokio::time::interval(Duration::from_millis(self.config.interval_ms.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while self.config.polls.is_none_or(|max| polls < max) {
            let idle = ctx.idle_timer();
            tokio::select! {
                _ = tick.tick() => {}
                _ = idle => {
                    ctx.mark_idle().await?;
                    continue;
                }
                _ = cancel.cancelled() => break,
            }
            polls += 1;
            match fetch(&client, &self.config).await {
                Err(e) => {
                    failures += 1;
                    tracing::warn!(node = %self.node, failures, "{e}");
                    if failures >= self.config.max_failures {
                        return Err(WeirError::io(
                            &self.node,
                            format!("{e} ({failures} failed polls in a row)"),
                        ));
                    }
                }
                Ok(Err((body, reason))) => {
                    failures = 0;
                    ctx.dead_letter(&body, &reason).await?;
                }
                Ok(Ok(records)) => {
                    failures = 0;
                    let decoded = self.decoder.decode(&records)?;
                    decoded.emit(ctx).await?;
                }
            }
        }
        Ok(())
    }
}
