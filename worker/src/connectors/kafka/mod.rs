//! Apache Kafka: a source whose partitions are splits with offsets in every checkpoint, and a
//! sink, at-least-once (everything before a barrier is acknowledged by the brokers before the
//! checkpoint completes) or exactly-once (transactions bound to checkpoints, see
//! `transactional.rs` for how the commit gap is closed).
//!
//! Client: librdkafka through `rdkafka`. Any librdkafka property passes through `properties`
//! (security, SASL/TLS, `isolation.level=read_committed`, …), so an existing client config works.

pub mod config;
mod lag;
pub mod sink;
pub mod source;
mod transactional;

pub use config::{Delivery, KafkaSinkConfig, KafkaSourceConfig, StartFrom};
pub use sink::KafkaSink;
pub use source::KafkaSource;

use rdkafka::ClientConfig;

/// A client config from the bootstrap servers and pass-through properties.
pub(crate) fn client_config(bootstrap: &str, properties: &std::collections::BTreeMap<String, String>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    for (k, v) in properties {
        c.set(k, v);
    }
    c
}
