//! The Kafka sink.
//!
//! - `at_least_once`: records are handed to the producer as they arrive; at every checkpoint
//!   barrier the sink waits until the brokers acknowledged every record sent before it, so a
//!   completed checkpoint never covers a record that could be lost. After a failure the records
//!   since the checkpoint are sent again.
//! - `exactly_once`: an epoch's records are kept in its checkpoint and written in one Kafka
//!   transaction, with a commit marker, when the checkpoint completes ([`super::transactional`]).
//!
//! An updating input (an [`OP_COLUMN`] last, as SQL's `upsert-kafka` tables get) is written as
//! upserts by key: inserts and update-afters as the row, deletes and update-befores as a
//! tombstone (the key with a null value, which compaction and upsert readers take as a delete),
//! as Flink's upsert-kafka does. Within a batch only each key's last change is written, so the
//! update-before right before its update-after costs nothing; one without an update-after (a
//! filter above an aggregate let the old row out but not the new one) still deletes the key.

use std::collections::VecDeque;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use std::sync::Arc;

use super::client_config;
use super::config::{Delivery, KafkaSinkConfig, SinkPartitioning, ValueFields};
use super::transactional::{Rec, Transactional, owned_headers};
use crate::connectors::format::{Format, encode};
use crate::connectors::{Sink, SinkFactory};
use crate::contract::TaskContext;
use crate::contract::error::{Result, WeirError};
use crate::contract::schema::{OP_COLUMN, field_index};

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
        for h in &self.config.header_fields {
            field_index(input, h, "kafka header field")
                .map_err(|e| WeirError::config("kafka", &self.node, e.to_string()))?;
        }
        for k in &self.config.key_fields {
            field_index(input, k, "kafka key field")
                .map_err(|e| WeirError::config("kafka", &self.node, e.to_string()))?;
        }
        if input.index_of(OP_COLUMN).is_ok() && self.config.key_fields.is_empty() {
            return Err(WeirError::config(
                "kafka",
                &self.node,
                "key_fields: empty, but the input is a changelog (updates and deletes); an upsert sink \
                 needs the key its records replace (SQL: a PRIMARY KEY on the upsert-kafka table)",
            ));
        }
        let op = usize::from(input.index_of(OP_COLUMN).is_ok());
        if self.config.format == Format::Text && input.fields().len() - op != 1 {
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
        let header_columns = self
            .config
            .header_fields
            .iter()
            .map(|h| field_index(input, h, "kafka header field").map(|i| (h.clone(), i)))
            .collect::<Result<Vec<_>>>()?;
        let eos = match self.config.delivery {
            Delivery::AtLeastOnce => None,
            Delivery::ExactlyOnce => {
                let prefix = self
                    .config
                    .transactional_id_prefix
                    .clone()
                    .unwrap_or_else(|| format!("weir-{}-{}", self.node, self.config.topic));
                Some(Eos {
                    client: client_config(&self.config.bootstrap_servers, &self.config.properties),
                    prefix,
                    subtask: ctx.subtask,
                    parallelism: ctx.parallelism,
                    txn: None,
                    epoch: Vec::new(),
                    pending: Vec::new(),
                    last_barrier: 0,
                })
            }
        };
        let op = input.index_of(OP_COLUMN).ok();
        let value_columns = match (self.config.value_fields, op) {
            (ValueFields::All, None) => None,
            (ValueFields::All, Some(op)) => Some((0..input.fields().len()).filter(|c| *c != op).collect()),
            (ValueFields::ExceptKey, _) => Some(
                (0..input.fields().len())
                    .filter(|c| !key_columns.contains(c) && Some(*c) != op)
                    .collect::<Vec<_>>(),
            ),
        };
        Ok(Box::new(Writer {
            eos,
            value_columns,
            op,
            node: ctx.node.clone(),
            topic: self.config.topic.clone(),
            format: self.config.format,
            key_columns,
            header_columns,
            round_robin: self.config.partitioning == SinkPartitioning::RoundRobin,
            producer,
            in_flight: VecDeque::new(),
            next_partition: ctx.subtask as i32,
        }))
    }
}

/// The exactly-once part of a sink subtask.
struct Eos {
    client: rdkafka::ClientConfig,
    prefix: String,
    subtask: usize,
    parallelism: usize,
    /// Connected at the first commit (or restore).
    txn: Option<Arc<Transactional>>,
    /// Records since the last barrier.
    epoch: Vec<Rec>,
    /// Epochs waiting for their checkpoint to complete: (checkpoint id, records).
    pending: Vec<(u64, Vec<Rec>)>,
    last_barrier: u64,
}

/// What an exactly-once sink subtask keeps in a checkpoint.
#[derive(serde::Serialize, serde::Deserialize)]
struct EosState {
    /// The old subtask (its transactional id and marker).
    subtask: usize,
    pending: Vec<(u64, Vec<Rec>)>,
}

/// The layout of [`EosState`] before records could be tombstones (every value present), still
/// read from older checkpoints.
#[derive(serde::Deserialize)]
struct EosStateV1 {
    subtask: usize,
    #[allow(clippy::type_complexity)]
    pending: Vec<(
        u64,
        Vec<(Option<Vec<u8>>, Vec<u8>, Option<i32>, Vec<(String, Vec<u8>)>)>,
    )>,
}

/// What a checkpoint's [`EosState`] starts with since records may be tombstones; state without
/// it is [`EosStateV1`].
const EOS_STATE_V2: &[u8] = b"\xffweir-kafka-eos-v2";

impl EosState {
    fn encode(&self) -> std::result::Result<Vec<u8>, String> {
        let mut bytes = EOS_STATE_V2.to_vec();
        crate::contract::state::encode_into(self, &mut bytes).map_err(|e| e.to_string())?;
        Ok(bytes)
    }

    fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        if let Some(v2) = bytes.strip_prefix(EOS_STATE_V2) {
            return crate::contract::state::decode(v2).map_err(|e| e.to_string());
        }
        let v1: EosStateV1 = crate::contract::state::decode(bytes).map_err(|e| e.to_string())?;
        Ok(EosState {
            subtask: v1.subtask,
            pending: v1
                .pending
                .into_iter()
                .map(|(id, rows)| (id, rows.into_iter().map(|(k, v, p, h)| (k, Some(v), p, h)).collect()))
                .collect(),
        })
    }
}

impl Eos {
    fn id(&self, subtask: usize) -> String {
        format!("{}-{subtask}", self.prefix)
    }

    /// The transactional producer of subtask `owner` (connecting fences its older instances).
    async fn connect(&self, owner: usize, topic: &str, node: &str) -> Result<Arc<Transactional>> {
        let (client, id, t, n) = (self.client.clone(), self.id(owner), topic.to_string(), node.to_string());
        tokio::task::spawn_blocking(move || Transactional::connect(&client, &id, &t, &n))
            .await
            .map_err(|e| WeirError::io(node, e))?
    }

    /// Commits epochs `(id, rows)` in order with subtask `owner`'s transactional id, skipping
    /// those its marker shows as committed (blocking work off the runtime threads).
    async fn commit(&mut self, owner: usize, epochs: Vec<(u64, Vec<Rec>)>, topic: &str, node: &str) -> Result<()> {
        if epochs.is_empty() {
            return Ok(());
        }
        let txn = match (&self.txn, owner == self.subtask) {
            (Some(t), true) => t.clone(),
            _ => {
                let t = self.connect(owner, topic, node).await?;
                if owner == self.subtask {
                    self.txn = Some(t.clone());
                }
                t
            }
        };
        tokio::task::spawn_blocking(move || {
            let done = txn.committed_epoch()?;
            for (epoch, rows) in epochs {
                // An empty epoch has nothing to make visible; the marker moves with the next.
                if epoch > done && !rows.is_empty() {
                    txn.commit_epoch(epoch, &rows)?;
                }
            }
            Ok::<(), WeirError>(())
        })
        .await
        .map_err(|e| WeirError::io(node, e))?
    }
}

struct Writer {
    eos: Option<Eos>,
    node: String,
    topic: String,
    format: Format,
    key_columns: Vec<usize>,
    /// The columns of a record's value (all when `None`).
    value_columns: Option<Vec<usize>>,
    /// The changelog column of an updating input (upserts and tombstones by key).
    op: Option<usize>,
    /// (header name, column) of the header fields.
    header_columns: Vec<(String, usize)>,
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

/// What an upsert sink does with a changelog row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowKind {
    /// `+I` / `+U`: the key's new value.
    Upsert,
    /// `-U` / `-D`: a tombstone.
    Delete,
}

/// The kind of each row of a changelog column.
fn row_kinds(op: &arrow::array::ArrayRef, node: &str) -> Result<Vec<RowKind>> {
    let ops = op
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .ok_or_else(|| WeirError::config("kafka", node, format!("{OP_COLUMN}: not a string column")))?;
    ops.iter()
        .map(|o| match o {
            Some("+I" | "+U") => Ok(RowKind::Upsert),
            Some("-U" | "-D") => Ok(RowKind::Delete),
            other => Err(WeirError::config(
                "kafka",
                node,
                format!("{OP_COLUMN}: {other:?} is not a row kind (+I, -U, +U, -D)"),
            )),
        })
        .collect()
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
        let kinds = match self.op {
            None => None,
            Some(op) => Some(row_kinds(batch.column(op), &self.node)?),
        };
        let values = match &self.value_columns {
            None => lines(self.format, &batch)?,
            Some(c) => lines(self.format, &batch.project(c)?)?,
        };
        let keys = if self.key_columns.is_empty() {
            None
        } else {
            Some(lines(Format::Json, &batch.project(&self.key_columns)?)?)
        };
        // Tombstones carry no value; of a key's changes in the batch only the last is written.
        let (values, written): (Vec<Option<Vec<u8>>>, Vec<bool>) = match &kinds {
            Some(kinds) => {
                let columns: Vec<&arrow::array::ArrayRef> = self.key_columns.iter().map(|k| batch.column(*k)).collect();
                let mut written = vec![false; batch.num_rows()];
                for i in crate::keys::last_row_per_key(&columns, batch.num_rows())? {
                    written[i] = true;
                }
                let values = values
                    .into_iter()
                    .zip(kinds)
                    .map(|(v, k)| (*k == RowKind::Upsert).then_some(v))
                    .collect();
                (values, written)
            }
            _ => {
                let n = values.len();
                (values.into_iter().map(Some).collect(), vec![true; n])
            }
        };
        let written = |i: usize| written[i];
        let partitions = if self.round_robin { self.partitions() } else { 0 };
        let headers: Vec<Vec<(String, Vec<u8>)>> = (0..batch.num_rows())
            .map(|row| {
                self.header_columns
                    .iter()
                    .map(|(name, c)| {
                        let v = arrow::util::display::array_value_to_string(batch.column(*c), row).unwrap_or_default();
                        (name.clone(), v.into_bytes())
                    })
                    .collect()
            })
            .collect();
        if let Some(eos) = &mut self.eos {
            for (i, (value, h)) in values.into_iter().zip(headers).enumerate() {
                if !written(i) {
                    continue;
                }
                let partition = self.round_robin.then(|| {
                    self.next_partition = (self.next_partition + 1) % partitions;
                    self.next_partition
                });
                eos.epoch
                    .push((keys.as_ref().map(|k| k[i].clone()), value, partition, h));
            }
            return Ok(());
        }
        let topic = self.topic.clone();
        for (i, value) in values.iter().enumerate() {
            if !written(i) {
                continue;
            }
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic);
            if let Some(v) = value {
                record = record.payload(v);
            }
            if let Some(k) = &keys {
                record = record.key(&k[i]);
            }
            if self.round_robin {
                self.next_partition = (self.next_partition + 1) % partitions;
                record = record.partition(self.next_partition);
            }
            if let Some(h) = owned_headers(&headers[i]) {
                record = record.headers(h);
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
        if let Some(eos) = &mut self.eos {
            // The rows after the last barrier wait for the end of the whole job (commit_final).
            let rows = std::mem::take(&mut eos.epoch);
            let id = eos.last_barrier + 1;
            eos.pending.push((id, rows));
            return Ok(());
        }
        self.settle(0).await
    }

    async fn stop(&mut self) -> Result<()> {
        if self.eos.is_some() {
            return Ok(()); // uncommitted epochs are replayed by the resumed job
        }
        self.settle(0).await
    }

    async fn commit_final(&mut self) -> Result<()> {
        let (topic, node) = (self.topic.clone(), self.node.clone());
        if let Some(eos) = &mut self.eos {
            let epochs = std::mem::take(&mut eos.pending);
            let me = eos.subtask;
            eos.commit(me, epochs, &topic, &node).await?;
        }
        Ok(())
    }

    async fn snapshot(&mut self, checkpoint_id: u64) -> Result<Option<Vec<u8>>> {
        if let Some(eos) = &mut self.eos {
            let rows = std::mem::take(&mut eos.epoch);
            eos.pending.push((checkpoint_id, rows));
            eos.last_barrier = checkpoint_id;
            let state = EosState {
                subtask: eos.subtask,
                pending: eos.pending.clone(),
            };
            return Ok(Some(state.encode().map_err(|e| self.err(e))?));
        }
        // Everything before the barrier is acknowledged before the checkpoint can complete.
        self.settle(0).await?;
        Ok(None)
    }

    async fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        let (topic, node) = (self.topic.clone(), self.node.clone());
        if let Some(eos) = &mut self.eos {
            let (done, later): (Vec<_>, Vec<_>) = std::mem::take(&mut eos.pending)
                .into_iter()
                .partition(|(id, _)| *id <= checkpoint_id);
            eos.pending = later;
            let me = eos.subtask;
            eos.commit(me, done, &topic, &node).await?;
        }
        Ok(())
    }

    async fn restore(&mut self, _own: Option<Vec<u8>>, union: Vec<Vec<u8>>) -> Result<()> {
        let (topic, node) = (self.topic.clone(), self.node.clone());
        let Some(eos) = &mut self.eos else { return Ok(()) };
        // The restored checkpoint is complete: every epoch it holds belongs in Kafka. Each old
        // subtask's epochs are committed (unless its marker shows them) by one new subtask.
        for bytes in union {
            let state = EosState::decode(&bytes).map_err(|e| WeirError::io(&node, e))?;
            if state.subtask % eos.parallelism == eos.subtask {
                eos.commit(state.subtask, state.pending, &topic, &node).await?;
            }
        }
        // Fence producers of older runs with this subtask's id.
        if eos.txn.is_none() {
            eos.txn = Some(eos.connect(eos.subtask, &topic, &node).await?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, StringArray};

    use super::*;

    #[test]
    fn row_kinds_are_upserts_and_tombstones_and_an_unknown_kind_is_named() {
        let ops: ArrayRef = Arc::new(StringArray::from(vec!["+I", "-U", "+U", "-D"]));
        let kinds = row_kinds(&ops, "sink").unwrap();
        assert_eq!(
            kinds,
            [RowKind::Upsert, RowKind::Delete, RowKind::Upsert, RowKind::Delete]
        );
        let bad: ArrayRef = Arc::new(StringArray::from(vec![Some("+I"), Some("x")]));
        let e = row_kinds(&bad, "sink").unwrap_err().to_string();
        assert!(e.contains("__op") && e.contains("\"x\""), "{e}");
    }

    #[test]
    fn exactly_once_state_round_trips_tombstones_and_reads_the_older_layout() {
        let state = EosState {
            subtask: 3,
            pending: vec![(
                7,
                vec![
                    (Some(b"k".to_vec()), Some(b"v".to_vec()), None, vec![]),
                    (Some(b"k".to_vec()), None, Some(1), vec![("h".into(), b"x".to_vec())]),
                ],
            )],
        };
        let back = EosState::decode(&state.encode().unwrap()).unwrap();
        assert_eq!(back.subtask, 3);
        assert_eq!(back.pending, state.pending);
        // A checkpoint written before tombstones: every value present.
        #[derive(serde::Serialize)]
        struct Old {
            subtask: usize,
            #[allow(clippy::type_complexity)]
            pending: Vec<(
                u64,
                Vec<(Option<Vec<u8>>, Vec<u8>, Option<i32>, Vec<(String, Vec<u8>)>)>,
            )>,
        }
        let old = Old {
            subtask: 1,
            pending: vec![(2, vec![(None, b"row".to_vec(), None, vec![])])],
        };
        let back = EosState::decode(&crate::contract::state::encode(&old).unwrap()).unwrap();
        assert_eq!(back.subtask, 1);
        assert_eq!(
            back.pending,
            vec![(2, vec![(None, Some(b"row".to_vec()), None, vec![])])]
        );
    }
}
