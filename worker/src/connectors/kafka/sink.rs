//! The Kafka sink, at-least-once: records are handed to the producer as they arrive; at every
//! checkpoint barrier the sink waits until the brokers acknowledged every record sent before
//! it, so a completed checkpoint never covers a record that could be lost. After a failure the
//! records since the checkpoint are sent again (duplicates are possible; exactly-once with
//! Kafka transactions bound to checkpoints is the next step).

use std::collections::VecDeque;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use super::client_config;
use super::config::{KafkaSinkConfig, SinkPartitioning};
use crate::connectors::format::{Format, encode};
use crate::connectors::{Sink, SinkFactory};
use crate::error::{Result, WeirError};
use crate::operators::TaskContext;
use crate::partition::field_index;

/// The Kafka sink factory.
pub struct KafkaSink {
    node: String,
    config: KafkaSinkConfig,
}

impl KafkaSink {
    /// A Kafka sink named `node`.
    pub fn new(node: &str, config: KafkaSinkConfig) -> Result<Self> {
        if config.topic.trim().is_empty() {
            return Err(WeirError::config("kafka", node, "topic: empty"));
        }
        if config.bootstrap_servers.trim().is_empty() {
            return Err(WeirError::config("kafka", node, "bootstrap_servers: empty"));
        }
        Ok(KafkaSink {
            node: node.to_string(),
            config,
        })
    }
}

impl SinkFactory for KafkaSink {
    fn connector(&self) -> &'static str {
        "kafka"
    }

    fn check_schema(&self, input: &SchemaRef) -> Result<()> {
        for k in &self.config.key_fields {
            field_index(input, k, "kafka key field")
                .map_err(|e| WeirError::config("kafka", &self.node, e.to_string()))?;
        }
        if self.config.format == Format::Text && input.fields().len() != 1 {
            return Err(WeirError::config(
                "kafka",
                &self.node,
                "format text needs exactly one column; add a select",
            ));
        }
        Ok(())
    }

    fn create(&self, input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Sink>> {
        let mut client = client_config(&self.config.bootstrap_servers, &self.config.properties);
        if !client.config_map().contains_key("enable.idempotence") {
            // No duplicates from the producer's own retries.
            client.set("enable.idempotence", "true");
        }
        let producer: FutureProducer = client
            .create()
            .map_err(|e| WeirError::config("kafka", &self.node, format!("producer: {e}")))?;
        let key_columns = self
            .config
            .key_fields
            .iter()
            .map(|k| field_index(input, k, "kafka key field"))
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(Writer {
            node: ctx.node.clone(),
            topic: self.config.topic.clone(),
            format: self.config.format,
            key_columns,
            round_robin: self.config.partitioning == SinkPartitioning::RoundRobin,
            producer,
            in_flight: VecDeque::new(),
            next_partition: ctx.subtask as i32,
        }))
    }
}

struct Writer {
    node: String,
    topic: String,
    format: Format,
    key_columns: Vec<usize>,
    round_robin: bool,
    producer: FutureProducer,
    in_flight: VecDeque<DeliveryFuture>,
    next_partition: i32,
}

/// Records awaiting acknowledgement before the oldest are waited for.
const MAX_IN_FLIGHT: usize = 100_000;

impl Writer {
    fn err(&self, e: impl std::fmt::Display) -> WeirError {
        WeirError::io(&self.node, format!("kafka topic '{}': {e}", self.topic))
    }

    /// Waits for the acknowledgements of sent records until at most `keep` are outstanding.
    async fn settle(&mut self, keep: usize) -> Result<()> {
        while self.in_flight.len() > keep {
            let f = self.in_flight.pop_front().expect("non-empty");
            match f.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(self.err(e)),
                Err(_) => return Err(self.err("the producer was dropped before delivery")),
            }
        }
        Ok(())
    }

    fn partitions(&self) -> i32 {
        // Round robin needs the partition count; ask the producer's metadata cache.
        use rdkafka::producer::Producer;
        self.producer
            .client()
            .fetch_metadata(Some(&self.topic), std::time::Duration::from_secs(10))
            .ok()
            .and_then(|m| m.topics().first().map(|t| t.partitions().len() as i32))
            .unwrap_or(1)
            .max(1)
    }
}

/// Per-row encodings of a batch: one line each.
fn lines(format: Format, batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
    let bytes = encode(format, batch, false)?;
    Ok(bytes
        .split(|b| *b == b'\n')
        .take(batch.num_rows())
        .map(<[u8]>::to_vec)
        .collect())
}

#[async_trait]
impl Sink for Writer {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        let values = lines(self.format, &batch)?;
        let keys = if self.key_columns.is_empty() {
            None
        } else {
            Some(lines(Format::Json, &batch.project(&self.key_columns)?)?)
        };
        let partitions = if self.round_robin { self.partitions() } else { 0 };
        let topic = self.topic.clone();
        for (i, value) in values.iter().enumerate() {
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic).payload(value);
            if let Some(k) = &keys {
                record = record.key(&k[i]);
            }
            if self.round_robin {
                self.next_partition = (self.next_partition + 1) % partitions;
                record = record.partition(self.next_partition);
            }
            let mut record = Some(record);
            loop {
                match self.producer.send_result(record.take().expect("set")) {
                    Ok(f) => {
                        self.in_flight.push_back(f);
                        break;
                    }
                    Err((e, r)) => {
                        // Queue full: wait for acknowledgements, then try again.
                        if self.in_flight.is_empty() {
                            return Err(self.err(e));
                        }
                        record = Some(r);
                        let keep = self.in_flight.len() / 2;
                        self.settle(keep).await?;
                    }
                }
            }
        }
        self.settle(MAX_IN_FLIGHT).await
    }

    async fn finish(&mut self) -> Result<()> {
        self.settle(0).await
    }

    async fn snapshot(&mut self, _checkpoint_id: u64) -> Result<Option<Vec<u8>>> {
        // Everything before the barrier is acknowledged before the checkpoint can complete.
        self.settle(0).await?;
        Ok(None)
    }
}
