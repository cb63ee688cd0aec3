//! Exactly-once writes to Kafka, bound to checkpoints.
//!
//! The gap every transactional sink has is a crash after checkpoint `n` completed but before
//! its transaction committed: librdkafka cannot resume another process's transaction. So the
//! rows of an epoch (the records between barriers `n-1` and `n`) are **kept in checkpoint `n`**
//! instead of being sent before it completes, and when `n` completes they are written in one
//! Kafka transaction that also commits a **marker**: offset `n` for (output topic, partition 0)
//! in the consumer group `<transactional id>-marker`, through `send_offsets_to_transaction`.
//! Records and marker commit atomically, so after any crash the marker says exactly which
//! epochs are in Kafka: a restored sink re-sends the epochs of its checkpoint whose number is
//! above the marker, and drops the others. Nothing is lost, nothing is doubled.
//!
//! The transactional id is stable per sink subtask (`<prefix>-<subtask>`), so a restarted job's
//! `init_transactions` fences the producers of an older run and aborts what they left open;
//! read_committed consumers are never blocked by a dead transaction.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::contract::error::{Result, WeirError};

/// One record to write: key, value (`None`: a tombstone, an upsert sink's delete), explicit
/// partition, headers.
pub(crate) type Rec = (Option<Vec<u8>>, Option<Vec<u8>>, Option<i32>, Vec<(String, Vec<u8>)>);

/// Record headers from `(name, value)` pairs.
pub(crate) fn owned_headers(headers: &[(String, Vec<u8>)]) -> Option<rdkafka::message::OwnedHeaders> {
    if headers.is_empty() {
        return None;
    }
    let mut h = rdkafka::message::OwnedHeaders::new_with_capacity(headers.len());
    for (k, v) in headers {
        h = h.insert(rdkafka::message::Header { key: k, value: Some(v) });
    }
    Some(h)
}

/// A transactional producer and the marker of what it committed.
pub(crate) struct Transactional {
    producer: BaseProducer,
    marker: BaseConsumer,
    topic: String,
    node: String,
}

const TIMEOUT: Duration = Duration::from_secs(60);

impl Transactional {
    /// Connects with transactional id `id`; fences older producers with the same id.
    pub(crate) fn connect(client: &ClientConfig, id: &str, topic: &str, node: &str) -> Result<Arc<Self>> {
        let err = |what: &str, e: rdkafka::error::KafkaError| WeirError::io(node, format!("kafka {what}: {e}"));
        let producer: BaseProducer = client
            .clone()
            .set("transactional.id", id)
            .create()
            .map_err(|e| err("transactional producer", e))?;
        producer
            .init_transactions(TIMEOUT)
            .map_err(|e| err("init_transactions", e))?;
        // The marker is an offset of the output topic: make sure the topic exists (a metadata
        // request creates it where the broker auto-creates topics).
        producer
            .client()
            .fetch_metadata(Some(topic), TIMEOUT)
            .map_err(|e| err("metadata", e))?;
        let marker: BaseConsumer = client
            .clone()
            .set("group.id", format!("{id}-marker"))
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| err("marker consumer", e))?;
        Ok(Arc::new(Transactional {
            producer,
            marker,
            topic: topic.to_string(),
            node: node.to_string(),
        }))
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> WeirError {
        WeirError::io(&self.node, format!("kafka topic '{}': {what}: {e}", self.topic))
    }

    fn marker_partition(&self, offset: Offset) -> Result<TopicPartitionList> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, 0, offset)
            .map_err(|e| self.err("marker", e))?;
        Ok(tpl)
    }

    /// The newest epoch committed (0 when none).
    pub(crate) fn committed_epoch(&self) -> Result<u64> {
        let tpl = self.marker_partition(Offset::Invalid)?;
        let committed = self
            .marker
            .committed_offsets(tpl, TIMEOUT)
            .map_err(|e| self.err("reading the commit marker", e))?;
        Ok(committed
            .elements()
            .first()
            .and_then(|e| match e.offset() {
                Offset::Offset(o) if o > 0 => Some(o as u64),
                _ => None,
            })
            .unwrap_or(0))
    }

    /// Writes `rows` as epoch `epoch` in one transaction with the marker (blocking).
    pub(crate) fn commit_epoch(&self, epoch: u64, rows: &[Rec]) -> Result<()> {
        self.producer
            .begin_transaction()
            .map_err(|e| self.err("begin_transaction", e))?;
        for (key, value, partition, headers) in rows {
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.topic);
            if let Some(v) = value {
                record = record.payload(v);
            }
            if let Some(k) = key {
                record = record.key(k);
            }
            if let Some(p) = partition {
                record = record.partition(*p);
            }
            if let Some(h) = owned_headers(headers) {
                record = record.headers(h);
            }
            let mut record = Some(record);
            while let Some(r) = record.take() {
                match self.producer.send(r) {
                    Ok(()) => {}
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        r,
                    )) => {
                        self.producer.poll(Duration::from_millis(50));
                        record = Some(r);
                    }
                    Err((e, _)) => {
                        let _ = self.producer.abort_transaction(TIMEOUT);
                        return Err(self.err("send", e));
                    }
                }
            }
        }
        let group = self
            .marker
            .group_metadata()
            .ok_or_else(|| self.err("marker", "no group metadata"))?;
        let offsets = self.marker_partition(Offset::Offset(epoch as i64))?;
        self.producer
            .send_offsets_to_transaction(&offsets, &group, TIMEOUT)
            .map_err(|e| self.err("send_offsets_to_transaction", e))?;
        self.producer
            .commit_transaction(TIMEOUT)
            .map_err(|e| self.err("commit_transaction", e))
    }
}
