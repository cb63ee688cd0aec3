//! Discards rows and counts them (the benchmark sink). With `latency_field` it also measures
//! end-to-end latency: wall clock at the sink minus that field (a wall-clock timestamp set at
//! the source), and logs p50/p99/max per subtask when its input ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, Int64Array, TimestampMillisecondArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde::Deserialize;

use crate::connectors::{Sink, SinkFactory};
use crate::contract::TaskContext;
use crate::contract::error::{Result, WeirError};

/// Options of the blackhole sink.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlackholeConfig {
    /// A timestamp (ms) or bigint field holding the wall-clock time the record was made.
    #[serde(default)]
    pub latency_field: Option<String>,
}

/// A sink that counts rows and keeps nothing.
#[derive(Debug, Default, Clone)]
pub struct Blackhole {
    count: Arc<AtomicU64>,
    config: BlackholeConfig,
}

impl Blackhole {
    /// A new blackhole.
    pub fn new() -> Self {
        Self::default()
    }

    /// A blackhole with options.
    pub fn with_config(config: BlackholeConfig) -> Self {
        Blackhole {
            count: Arc::default(),
            config,
        }
    }

    /// Rows received so far, over all subtasks.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Latencies in whole milliseconds, one bucket per ms up to a minute.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    buckets: Vec<u64>,
    total: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: vec![0; 60_001],
            total: 0,
        }
    }
}

impl LatencyHistogram {
    /// Records one latency (negative: clocks apart, counted as 0).
    pub fn record(&mut self, ms: i64) {
        let i = (ms.max(0) as usize).min(self.buckets.len() - 1);
        self.buckets[i] += 1;
        self.total += 1;
    }

    /// The latency below which `q` (0..=1) of the records fall, ms.
    pub fn quantile(&self, q: f64) -> u64 {
        let target = ((self.total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (ms, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= target {
                return ms as u64;
            }
        }
        0
    }

    /// Records measured.
    pub fn count(&self) -> u64 {
        self.total
    }
}

impl SinkFactory for Blackhole {
    fn connector(&self) -> &'static str {
        "blackhole"
    }
    fn check_schema(&self, input: &SchemaRef) -> Result<()> {
        if let Some(f) = &self.config.latency_field {
            let field = input
                .field_with_name(f)
                .map_err(|_| WeirError::plan(format!("blackhole: latency_field '{f}' is not a field of its input")))?;
            use arrow::datatypes::{DataType, TimeUnit};
            if !matches!(
                field.data_type(),
                DataType::Int64 | DataType::Timestamp(TimeUnit::Millisecond, _)
            ) {
                return Err(WeirError::plan(format!(
                    "blackhole: latency_field '{f}' has type {}; it must be a timestamp (ms) or bigint",
                    field.data_type()
                )));
            }
        }
        Ok(())
    }
    fn create(&self, input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Sink>> {
        let latency = match &self.config.latency_field {
            Some(f) => Some((input.index_of(f)?, LatencyHistogram::default())),
            None => None,
        };
        Ok(Box::new(BlackholeSink {
            count: self.count.clone(),
            latency,
            node: ctx.node.clone(),
            subtask: ctx.subtask,
        }))
    }
}

struct BlackholeSink {
    count: Arc<AtomicU64>,
    latency: Option<(usize, LatencyHistogram)>,
    node: String,
    subtask: usize,
}

#[async_trait]
impl Sink for BlackholeSink {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        self.count.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        if let Some((column, histogram)) = &mut self.latency {
            let now = crate::contract::clock::wall_ms();
            let col = batch.column(*column);
            let values: Box<dyn Iterator<Item = Option<i64>>> =
                if let Some(a) = col.as_any().downcast_ref::<TimestampMillisecondArray>() {
                    Box::new(a.iter())
                } else if let Some(a) = col.as_any().downcast_ref::<Int64Array>() {
                    Box::new(a.iter())
                } else {
                    Box::new(std::iter::empty())
                };
            for v in values.flatten() {
                histogram.record(now - v);
            }
        }
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        if let Some((_, h)) = &self.latency
            && h.count() > 0
        {
            tracing::info!(
                node = %self.node,
                subtask = self.subtask,
                rows = h.count(),
                latency_p50_ms = h.quantile(0.5),
                latency_p99_ms = h.quantile(0.99),
                latency_max_ms = h.quantile(1.0),
                "end-to-end latency"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let mut h = LatencyHistogram::default();
        for ms in 1..=100 {
            h.record(ms);
        }
        h.record(-5);
        h.record(1_000_000);
        assert_eq!(h.count(), 102);
        assert_eq!(h.quantile(0.5), 50);
        assert_eq!(h.quantile(0.99), 100);
        assert_eq!(h.quantile(1.0), 60_000);
    }
}
