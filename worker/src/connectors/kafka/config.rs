//! Options of `connector: kafka` (source and sink).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::connectors::format::{Format, SchemaSpec};

/// Where a source starts when no checkpoint gives its offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// The oldest retained record.
    #[default]
    Earliest,
    /// Only records produced from now on.
    Latest,
    /// The consumer group's committed offsets (earliest where it has none).
    Group,
    /// The first record at or after `start_timestamp_ms`.
    Timestamp,
}

/// Options of the Kafka source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// `host:port,…` of the brokers.
    pub bootstrap_servers: String,
    /// Topics to read (or `topic` for one).
    #[serde(default)]
    pub topics: Vec<String>,
    /// One topic to read.
    #[serde(default)]
    pub topic: Option<String>,
    /// Read every topic whose name matches this regular expression (checked at every
    /// partition discovery, so new matching topics are picked up).
    #[serde(default)]
    pub topic_pattern: Option<String>,
    /// `json` (default), `csv`, or `text` (one `value` column).
    #[serde(default = "json")]
    pub format: Format,
    /// Record schema (required for json and csv).
    #[serde(default)]
    pub schema: Option<SchemaSpec>,
    /// Start position without a checkpoint (default earliest).
    #[serde(default)]
    pub start_from: StartFrom,
    /// For `start_from: timestamp`, ms since the epoch.
    #[serde(default)]
    pub start_timestamp_ms: Option<i64>,
    /// Consumer group: offsets are committed to it when checkpoints complete, for monitoring
    /// (the checkpoint is the truth); `start_from: group` starts from it. Default `weir-<node>`.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Add `kafka_key`, `kafka_partition`, `kafka_offset`, `kafka_timestamp` and `kafka_headers`
    /// (a JSON object of the headers) columns.
    #[serde(default)]
    pub metadata: bool,
    /// Stop at the end offsets found at start (replays, tests) instead of reading forever.
    #[serde(default)]
    pub bounded: bool,
    /// Look for new partitions this often, ms (default 10000; 0: never).
    #[serde(default = "discovery")]
    pub partition_discovery_ms: u64,
    /// librdkafka properties passed through (e.g. `isolation.level: read_committed`,
    /// `security.protocol: SASL_SSL`).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// How a sink partitions records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SinkPartitioning {
    /// By the key (the client's hash); round robin without key fields.
    #[default]
    Key,
    /// Round robin, whatever the key.
    RoundRobin,
}

/// Which fields the Kafka sink writes into a record's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ValueFields {
    /// Every field, the key fields too.
    #[default]
    All,
    /// Every field but the key fields.
    ExceptKey,
}

/// Delivery guarantee of the Kafka sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Everything before a checkpoint is acknowledged before it completes; after a failure the
    /// records since it are sent again.
    #[default]
    AtLeastOnce,
    /// Kafka transactions bound to checkpoints: an epoch's records become visible to
    /// read_committed consumers when its checkpoint completes, exactly once.
    ExactlyOnce,
}

/// Options of the Kafka sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// `host:port,…` of the brokers.
    pub bootstrap_servers: String,
    /// The topic written to.
    pub topic: String,
    /// `json` (default), `csv` or `text`.
    #[serde(default = "json")]
    pub format: Format,
    /// Fields whose values (as a JSON object) are the record key.
    #[serde(default)]
    pub key_fields: Vec<String>,
    /// `key` (default) or `round_robin`.
    #[serde(default)]
    pub partitioning: SinkPartitioning,
    /// Fields written as record headers (name = field name, value = the field as text).
    #[serde(default)]
    pub header_fields: Vec<String>,
    /// `all` (default): the value holds every field; `except_key`: the key fields are in the
    /// key only (Flink's `value.fields-include`).
    #[serde(default)]
    pub value_fields: ValueFields,
    /// `at_least_once` (default) or `exactly_once`.
    #[serde(default)]
    pub delivery: Delivery,
    /// Prefix of the transactional ids (`<prefix>-<subtask>`), stable for the life of the job
    /// (default `weir-<node>-<topic>`); two jobs writing at once need different prefixes.
    #[serde(default)]
    pub transactional_id_prefix: Option<String>,
    /// librdkafka producer properties passed through.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

fn json() -> Format {
    Format::Json
}
fn discovery() -> u64 {
    10_000
}

impl KafkaSourceConfig {
    /// A source reading `topic` from `bootstrap_servers`, JSON records of `schema`.
    pub fn new(bootstrap_servers: &str, topic: &str) -> Self {
        KafkaSourceConfig {
            bootstrap_servers: bootstrap_servers.into(),
            topics: vec![topic.into()],
            topic: None,
            topic_pattern: None,
            format: Format::Json,
            schema: None,
            start_from: StartFrom::Earliest,
            start_timestamp_ms: None,
            group_id: None,
            metadata: false,
            bounded: false,
            partition_discovery_ms: discovery(),
            properties: BTreeMap::new(),
        }
    }

    /// All topics named.
    pub fn all_topics(&self) -> Vec<String> {
        let mut t = self.topics.clone();
        t.extend(self.topic.clone());
        t
    }
}

impl KafkaSinkConfig {
    /// A sink writing JSON records to `topic`.
    pub fn new(bootstrap_servers: &str, topic: &str) -> Self {
        KafkaSinkConfig {
            bootstrap_servers: bootstrap_servers.into(),
            topic: topic.into(),
            format: Format::Json,
            key_fields: Vec::new(),
            partitioning: SinkPartitioning::Key,
            header_fields: Vec::new(),
            value_fields: ValueFields::All,
            delivery: Delivery::AtLeastOnce,
            transactional_id_prefix: None,
            properties: BTreeMap::new(),
        }
    }
}
