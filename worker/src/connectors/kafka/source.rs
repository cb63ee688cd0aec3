//! The Kafka source. Partitions are splits: subtask `i` of `p` reads the partitions with
//! `(xxh3(topic) + partition) mod p == i`, assigned directly (no consumer-group rebalancing, so
//! the assignment is stable and the checkpoint owns the offsets). The position in every
//! checkpoint is `topic → partition → next offset`; on restore each subtask seeks its
//! partitions there, whatever the parallelism was (positions are merged over all old subtasks).
//! Partitions added later are found every `partition_discovery_ms`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, Int32Array, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::client_config;
use super::config::{KafkaSourceConfig, StartFrom};
use crate::connectors::format::{Format, RecordDecoder};
use crate::connectors::{Source, SourceFactory};
use crate::contract::SourceContext;
use crate::contract::TaskContext;
use crate::contract::error::{Result, WeirError};
use crate::contract::watermark::SplitWatermarks;

/// Offsets to resume from: topic → partition → next offset.
type Positions = BTreeMap<String, BTreeMap<i32, i64>>;

/// The Kafka source factory.
pub struct KafkaSource {
    node: String,
    config: KafkaSourceConfig,
    topics: Vec<String>,
    pattern: Option<regex::Regex>,
    /// Schema of the decoded value.
    value_schema: SchemaRef,
    /// The value schema plus metadata columns.
    schema: SchemaRef,
}

impl KafkaSource {
    /// A Kafka source named `node`; the options are checked here.
    pub fn new(node: &str, config: KafkaSourceConfig) -> Result<Self> {
        let bad = |m: String| WeirError::config("kafka", node, m);
        let topics = config.all_topics();
        if topics.is_empty() && config.topic_pattern.is_none() {
            return Err(bad(
                "topics: name at least one topic (topics: [..], topic: .., or topic_pattern: ..)".into(),
            ));
        }
        let pattern = match &config.topic_pattern {
            Some(p) => Some(regex::Regex::new(p).map_err(|e| bad(format!("topic_pattern: {e}")))?),
            None => None,
        };
        if config.bootstrap_servers.trim().is_empty() {
            return Err(bad("bootstrap_servers: empty".into()));
        }
        if config.bounded && config.start_from == StartFrom::Latest {
            return Err(bad(
                "bounded: true with start_from: latest has nothing to read; start from earliest, group or a timestamp"
                    .into(),
            ));
        }
        if config.start_from == StartFrom::Timestamp && config.start_timestamp_ms.is_none() {
            return Err(bad("start_from: timestamp needs start_timestamp_ms".into()));
        }
        let value_schema = match (config.format, &config.schema) {
            (Format::Text, None) => Arc::new(Schema::new(vec![Field::new("value", DataType::Utf8, false)])),
            (Format::Text, Some(s)) => {
                // The one text column under the name the schema gives it (SQL's `raw` format).
                let s = s.to_schema().map_err(|e| bad(format!("schema: {e}")))?;
                match s.fields().iter().collect::<Vec<_>>().as_slice() {
                    [f] if *f.data_type() == DataType::Utf8 => s.clone(),
                    _ => return Err(bad("schema: format text reads one text column".into())),
                }
            }
            (_, Some(s)) => s.to_schema().map_err(|e| bad(format!("schema: {e}")))?,
            (f, None) => {
                return Err(bad(format!(
                    "schema: format {f:?} needs the record schema (schema: {{fields: [..]}})"
                )));
            }
        };
        let mut fields: Vec<Field> = value_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        if config.metadata {
            fields.extend([
                Field::new("kafka_key", DataType::Utf8, true),
                Field::new("kafka_partition", DataType::Int32, false),
                Field::new("kafka_offset", DataType::Int64, false),
                Field::new(
                    "kafka_timestamp",
                    DataType::Timestamp(TimeUnit::Millisecond, None),
                    true,
                ),
                Field::new("kafka_headers", DataType::Utf8, true),
            ]);
        }
        Ok(KafkaSource {
            node: node.to_string(),
            config,
            topics,
            pattern,
            value_schema,
            schema: Arc::new(Schema::new(fields)),
        })
    }
}

#[async_trait]
impl SourceFactory for KafkaSource {
    fn connector(&self) -> &'static str {
        "kafka"
    }
    async fn schema(&self) -> Result<SchemaRef> {
        Ok(self.schema.clone())
    }
    fn positions_redistributable(&self) -> bool {
        true
    }
    fn create(&self, _schema: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Source>> {
        Ok(Box::new(Reader {
            node: self.node.clone(),
            config: self.config.clone(),
            topics: self.topics.clone(),
            pattern: self.pattern.clone(),
            decoder: RecordDecoder::new(self.config.format, self.value_schema.clone()),
            schema: self.schema.clone(),
            subtask: ctx.subtask,
            parallelism: ctx.parallelism,
        }))
    }
}

struct Reader {
    node: String,
    config: KafkaSourceConfig,
    topics: Vec<String>,
    pattern: Option<regex::Regex>,
    decoder: RecordDecoder,
    schema: SchemaRef,
    subtask: usize,
    parallelism: usize,
}

/// Records read but not emitted yet.
#[derive(Default)]
struct Buffer {
    values: Vec<String>,
    keys: Vec<Option<String>>,
    partitions: Vec<i32>,
    offsets: Vec<i64>,
    timestamps: Vec<Option<i64>>,
    headers: Vec<Option<String>>,
    /// Position after these records.
    next: Vec<(String, i32, i64)>,
}

/// A record's headers as a JSON object (values as text), or none.
fn headers_json(m: &rdkafka::message::BorrowedMessage<'_>) -> Option<String> {
    use rdkafka::message::Headers;
    let h = m.headers()?;
    let mut obj = serde_json::Map::new();
    for header in h.iter() {
        let value = header.value.map_or(serde_json::Value::Null, |v| {
            serde_json::Value::String(String::from_utf8_lossy(v).into_owned())
        });
        obj.insert(header.key.to_string(), value);
    }
    Some(serde_json::Value::Object(obj).to_string())
}

/// Reports the lag at most every half of [`super::lag::EVERY`] (the end offsets change no faster).
fn report_lag(
    ends: &super::lag::EndOffsets,
    positions: &Positions,
    at: &mut tokio::time::Instant,
    ctx: &mut dyn SourceContext,
) {
    let now = tokio::time::Instant::now();
    if now < *at {
        return;
    }
    *at = now + super::lag::EVERY / 2;
    if let Some(lag) = ends.lag(positions) {
        ctx.report_lag(lag);
    }
}

/// A partition's name among a subtask's watermark splits.
fn split_id(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// Which subtask reads a partition (stable for a topic, spread over subtasks).
fn owner(topic: &str, partition: i32, parallelism: usize) -> usize {
    let h = xxhash_rust::xxh3::xxh3_64(topic.as_bytes());
    ((h % parallelism as u64) as usize + partition.max(0) as usize) % parallelism
}

impl Reader {
    fn err(&self, what: &str, e: impl std::fmt::Display) -> WeirError {
        WeirError::io(&self.node, format!("kafka {what}: {e}"))
    }

    fn client(&self) -> ClientConfig {
        let mut c = client_config(&self.config.bootstrap_servers, &self.config.properties);
        let group = self
            .config
            .group_id
            .clone()
            .unwrap_or_else(|| format!("weir-{}", self.node));
        c.set("group.id", group);
        c.set("enable.auto.commit", "false");
        c.set("enable.partition.eof", "false");
        if self.config.start_from == StartFrom::Group {
            c.set("auto.offset.reset", "earliest");
        }
        c
    }

    /// Runs `f` with a fresh client on a blocking thread (metadata and offset requests block).
    async fn blocking<T: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce(&BaseConsumer, &str) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (client, node) = (self.client(), self.node.clone());
        tokio::task::spawn_blocking(move || {
            let c: BaseConsumer = client
                .create()
                .map_err(|e| WeirError::io(&node, format!("kafka client: {e}")))?;
            f(&c, &node)
        })
        .await
        .map_err(|e| self.err(what, e))?
    }

    /// This subtask's partitions of every topic (a metadata request, off the runtime threads).
    async fn my_partitions(&self) -> Result<Vec<(String, i32)>> {
        let (mut topics, pattern) = (self.topics.clone(), self.pattern.clone());
        let all = self
            .blocking("metadata", move |c, node| {
                if let Some(p) = &pattern {
                    let md = c
                        .fetch_metadata(None, Duration::from_secs(10))
                        .map_err(|e| WeirError::io(node, format!("kafka metadata: {e}")))?;
                    for t in md.topics() {
                        if !t.name().starts_with("__") && p.is_match(t.name()) && !topics.iter().any(|x| x == t.name())
                        {
                            topics.push(t.name().to_string());
                        }
                    }
                }
                let mut out = Vec::new();
                for t in &topics {
                    let md = c
                        .fetch_metadata(Some(t), Duration::from_secs(10))
                        .map_err(|e| WeirError::io(node, format!("kafka metadata of '{t}': {e}")))?;
                    for topic in md.topics() {
                        if let Some(e) = topic.error() {
                            return Err(WeirError::io(node, format!("kafka topic '{t}': {e:?}")));
                        }
                        out.extend(topic.partitions().iter().map(|p| (t.clone(), p.id())));
                    }
                }
                Ok(out)
            })
            .await?;
        Ok(all
            .into_iter()
            .filter(|(t, p)| owner(t, *p, self.parallelism) == self.subtask)
            .collect())
    }

    /// End offsets of `partitions` (for bounded reading).
    async fn end_offsets(&self, partitions: &[(String, i32)]) -> Result<BTreeMap<(String, i32), (i64, i64)>> {
        let parts = partitions.to_vec();
        self.blocking("end offsets", move |c, node| {
            let mut out = BTreeMap::new();
            for (t, p) in parts {
                let (low, high) = c
                    .fetch_watermarks(&t, p, Duration::from_secs(10))
                    .map_err(|e| WeirError::io(node, format!("kafka end offset of {t}/{p}: {e}")))?;
                out.insert((t, p), (low, high));
            }
            Ok(out)
        })
        .await
    }

    /// Commits `positions` to the consumer group (for monitoring; a failure is only logged).
    fn commit_to_group(
        &self,
        consumer: &StreamConsumer,
        positions: &Positions,
        mode: rdkafka::consumer::CommitMode,
    ) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        for (t, parts) in positions {
            for (p, o) in parts {
                tpl.add_partition_offset(t, *p, Offset::Offset(*o))
                    .map_err(|e| self.err("commit", e))?;
            }
        }
        if tpl.count() > 0
            && let Err(e) = consumer.commit(&tpl, mode)
        {
            tracing::warn!(node = %self.node, error = %e, "could not commit offsets to the consumer group");
        }
        Ok(())
    }

    /// Where each new partition starts: the checkpoint's offset, else `start_from`.
    fn start_offset(&self, restored: &Positions, topic: &str, partition: i32) -> Offset {
        if let Some(o) = restored.get(topic).and_then(|m| m.get(&partition)) {
            return Offset::Offset(*o);
        }
        match self.config.start_from {
            StartFrom::Earliest => Offset::Beginning,
            StartFrom::Latest => Offset::End,
            StartFrom::Group => Offset::Stored,
            // Resolved to offsets by `offsets_for_times` at assignment.
            StartFrom::Timestamp => Offset::Offset(self.config.start_timestamp_ms.unwrap_or(0)),
        }
    }

    /// The assignment: partitions being read stay where they are; new ones start at the
    /// checkpoint's offset, else at `start_from` (a timestamp resolved to offsets here).
    async fn assignment(
        &self,
        restored: &Positions,
        positions: &Positions,
        parts: &[(String, i32)],
    ) -> Result<TopicPartitionList> {
        let mut tpl = TopicPartitionList::new();
        let mut by_time = TopicPartitionList::new();
        for (t, p) in parts {
            let known = positions.get(t).and_then(|m| m.get(p)).copied();
            let offset = match known {
                Some(o) => Offset::Offset(o),
                None => self.start_offset(restored, t, *p),
            };
            let from_time = known.is_none()
                && self.config.start_from == StartFrom::Timestamp
                && restored.get(t).and_then(|m| m.get(p)).is_none();
            let list = if from_time { &mut by_time } else { &mut tpl };
            list.add_partition_offset(t, *p, offset)
                .map_err(|e| self.err("assignment", e))?;
        }
        if by_time.count() > 0 {
            let resolved = self
                .blocking("offsets for times", move |c, node| {
                    c.offsets_for_times(by_time, Duration::from_secs(10))
                        .map_err(|e| WeirError::io(node, format!("kafka offsets for the start timestamp: {e}")))
                })
                .await?;
            for e in resolved.elements() {
                // No record at or after the time: start at the end.
                let offset = match e.offset() {
                    Offset::Offset(o) => Offset::Offset(o),
                    _ => Offset::End,
                };
                tpl.add_partition_offset(e.topic(), e.partition(), offset)
                    .map_err(|e| self.err("assignment", e))?;
            }
        }
        Ok(tpl)
    }

    /// Emits the buffered records: decoded rows (with metadata columns) to the job, malformed
    /// ones to the dead-letter output; then records the position after them.
    async fn flush(
        &self,
        buf: &mut Buffer,
        positions: &mut Positions,
        watermarks: &mut Option<SplitWatermarks>,
        ctx: &mut dyn SourceContext,
    ) -> Result<()> {
        if buf.values.is_empty() {
            return Ok(());
        }
        let (decoded, good) = self.decoder.decode_indexed(&buf.values)?;
        for (raw, reason) in &decoded.bad {
            ctx.dead_letter(raw, reason).await?;
        }
        if let Some(batch) = decoded.batch {
            let batch = if self.config.metadata {
                let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
                columns.push(Arc::new(StringArray::from_iter(
                    good.iter().map(|i| buf.keys[*i].clone()),
                )));
                columns.push(Arc::new(Int32Array::from_iter_values(
                    good.iter().map(|i| buf.partitions[*i]),
                )));
                columns.push(Arc::new(Int64Array::from_iter_values(
                    good.iter().map(|i| buf.offsets[*i]),
                )));
                columns.push(Arc::new(TimestampMillisecondArray::from_iter(
                    good.iter().map(|i| buf.timestamps[*i]),
                )));
                columns.push(Arc::new(StringArray::from_iter(
                    good.iter().map(|i| buf.headers[*i].clone()),
                )));
                RecordBatch::try_new(self.schema.clone(), columns)?
            } else {
                batch
            };
            // Each partition's largest event time in this batch.
            let mut per_split: BTreeMap<(String, i32), i64> = BTreeMap::new();
            let times = watermarks
                .as_ref()
                .map(|w| w.event_times(&batch))
                .transpose()?
                .flatten();
            if let Some(times) = times {
                for (row, i) in good.iter().enumerate() {
                    if times.is_valid(row) {
                        let (topic, partition, _) = &buf.next[*i];
                        let e = per_split.entry((topic.clone(), *partition)).or_insert(i64::MIN);
                        *e = (*e).max(times.value(row));
                    }
                }
            }
            ctx.collect(batch).await?;
            if let Some(w) = watermarks.as_mut() {
                for ((topic, p), t) in per_split {
                    w.observe(&split_id(&topic, p), t);
                }
                if let Some(wm) = w.advance() {
                    ctx.emit_watermark(wm).await?;
                }
            }
        }
        for (t, p, next) in buf.next.drain(..) {
            positions.entry(t).or_default().insert(p, next);
        }
        ctx.set_position(positions)?;
        *buf = Buffer::default();
        Ok(())
    }
}

#[async_trait]
impl Source for Reader {
    async fn run(&mut self, ctx: &mut dyn SourceContext) -> Result<()> {
        // Offsets from a checkpoint: this subtask's, or all old subtasks' after a rescale.
        let mut restored: Positions = ctx.restored_position()?.unwrap_or_default();
        for other in ctx.restored_positions_union::<Positions>()? {
            for (t, parts) in other {
                restored.entry(t).or_default().extend(parts);
            }
        }
        let consumer: StreamConsumer = self.client().create().map_err(|e| self.err("consumer", e))?;
        let mut assigned: BTreeSet<(String, i32)> = BTreeSet::new();
        let mut positions: Positions = Positions::new();
        // Bounded reading: (low, high) offsets of each partition at its discovery.
        let mut ends: BTreeMap<(String, i32), (i64, i64)> = BTreeMap::new();
        let batch_size = ctx.batch_size().clamp(1, 10_000);
        let linger = Duration::from_millis(50);
        let discovery = Duration::from_millis(self.config.partition_discovery_ms);
        let mut next_discovery = tokio::time::Instant::now();
        let cancel = ctx.cancel_token();
        let mut buf = Buffer::default();
        let mut watermarks = ctx.take_split_watermarks();
        // Rows are emitted at `batch_size` or `linger` after the last emit, whichever comes
        // first, so positions (and checkpoints) advance even while records keep coming.
        let mut flush_at = tokio::time::Instant::now() + linger;
        // The lag (end offsets − positions), for the autoscaler and the dashboard.
        let lag_watch = super::lag::EndOffsets::start(self.client(), self.node.clone());
        let mut lag_at = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_discovery && (assigned.is_empty() || !discovery.is_zero()) {
                let mine = self.my_partitions().await?;
                let new: Vec<(String, i32)> = mine.into_iter().filter(|tp| !assigned.contains(tp)).collect();
                if !new.is_empty() {
                    if self.config.bounded {
                        ends.extend(self.end_offsets(&new).await?);
                    }
                    for (t, p) in &new {
                        if let Some(o) = restored.get(t).and_then(|m| m.get(p)) {
                            positions.entry(t.clone()).or_default().insert(*p, *o);
                        }
                    }
                    if let Some(w) = watermarks.as_mut() {
                        for (t, p) in &new {
                            w.add_split(&split_id(t, *p));
                        }
                    }
                    assigned.extend(new.iter().cloned());
                    lag_watch.watch(&assigned);
                    let all: Vec<(String, i32)> = assigned.iter().cloned().collect();
                    let tpl = self.assignment(&restored, &positions, &all).await?;
                    consumer.assign(&tpl).map_err(|e| self.err("assign", e))?;
                    if self.config.bounded {
                        // Where reading starts is known for explicit offsets and for the end;
                        // a partition starting at its end has nothing to read.
                        for e in tpl.elements() {
                            let (t, p) = (e.topic().to_string(), e.partition());
                            let start = match e.offset() {
                                Offset::Offset(o) => Some(o),
                                Offset::End => ends.get(&(t.clone(), p)).map(|x| x.1),
                                _ => None,
                            };
                            if let Some(o) = start {
                                positions.entry(t).or_default().entry(p).or_insert(o);
                            }
                        }
                    }
                    // Checkpoints from here on carry the restored offsets of these partitions.
                    ctx.set_position(&positions)?;
                    tracing::info!(node = %self.node, subtask = self.subtask, partitions = ?new, "reading new partitions");
                }
                next_discovery = tokio::time::Instant::now()
                    + if discovery.is_zero() {
                        Duration::from_secs(3600 * 24 * 365)
                    } else {
                        discovery
                    };
            }
            if self.config.bounded {
                let done = assigned.iter().all(|(t, p)| {
                    let (low, high) = ends.get(&(t.clone(), *p)).copied().unwrap_or((0, 0));
                    let at = positions.get(t).and_then(|m| m.get(p)).copied();
                    high <= low || at.is_some_and(|o| o >= high)
                });
                if done && buf.values.is_empty() {
                    // The input is read to its end: tell the group where.
                    self.commit_to_group(&consumer, &positions, rdkafka::consumer::CommitMode::Sync)?;
                    return Ok(());
                }
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                msg = consumer.recv() => {
                    let m = msg.map_err(|e| self.err("read", e))?;
                    let value = match m.payload() {
                        Some(p) => String::from_utf8_lossy(p).into_owned(),
                        None => String::new(),
                    };
                    buf.values.push(value);
                    buf.keys.push(m.key().map(|k| String::from_utf8_lossy(k).into_owned()));
                    buf.partitions.push(m.partition());
                    buf.offsets.push(m.offset());
                    buf.timestamps.push(m.timestamp().to_millis());
                    buf.headers.push(if self.config.metadata { headers_json(&m) } else { None });
                    buf.next.push((m.topic().to_string(), m.partition(), m.offset() + 1));
                    if buf.values.len() >= batch_size {
                        self.flush(&mut buf, &mut positions, &mut watermarks, ctx).await?;
                        flush_at = tokio::time::Instant::now() + linger;
                        report_lag(&lag_watch, &positions, &mut lag_at, ctx);
                    }
                }
                _ = tokio::time::sleep_until(flush_at) => {
                    self.flush(&mut buf, &mut positions, &mut watermarks, ctx).await?;
                    flush_at = tokio::time::Instant::now() + linger;
                    // Offsets of completed checkpoints go to the consumer group, for monitoring
                    // tools (the checkpoint, not the group, is where a restore reads them).
                    if let Some(done) = ctx.take_committed_position::<Positions>()? {
                        self.commit_to_group(&consumer, &done, rdkafka::consumer::CommitMode::Async)?;
                    }
                    // Partitions going idle release event time; all idle: the subtask is idle.
                    if let Some(w) = watermarks.as_mut() {
                        if let Some(wm) = w.advance() {
                            ctx.emit_watermark(wm).await?;
                        }
                        if w.all_idle() {
                            ctx.mark_idle().await?;
                        }
                    }
                    // Quiet partitions still let checkpoints through.
                    ctx.checkpoint_if_due().await?;
                    report_lag(&lag_watch, &positions, &mut lag_at, ctx);
                }
            }
        }
        self.flush(&mut buf, &mut positions, &mut watermarks, ctx).await
    }
}
