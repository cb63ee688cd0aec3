//! Connector names of the pipeline form → factories.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::blackhole::Blackhole;
use super::datagen::Datagen;
use super::file::{FileSink, FileSource};
use super::format::parse_options;
use super::http::Http;
use super::http::sink::HttpSink;
use super::kafka::{KafkaSink, KafkaSource};
use super::nexmark::Nexmark;
use super::postgres::{PostgresSink, PostgresSource};
use super::socket::Socket;
use super::stdout::Stdout;
use super::{SinkFactory, SourceFactory};
use crate::contract::error::{Result, WeirError};

/// Source connectors.
pub const SOURCES: &[&str] = &["datagen", "nexmark", "file", "socket", "http", "kafka", "postgres"];
/// Sink connectors.
pub const SINKS: &[&str] = &["stdout", "blackhole", "file", "http", "kafka", "postgres"];

/// A source factory for `connector` with `options`.
pub fn source(connector: &str, node: &str, options: &Map<String, Value>) -> Result<Arc<dyn SourceFactory>> {
    Ok(match connector {
        "datagen" => Arc::new(Datagen::new(node, parse_options(connector, node, options)?)?),
        "nexmark" => Arc::new(Nexmark::new(node, parse_options(connector, node, options)?)?),
        "file" => Arc::new(FileSource::new(node, parse_options(connector, node, options)?)),
        "socket" => Arc::new(Socket::new(node, parse_options(connector, node, options)?)?),
        "http" => Arc::new(Http::new(node, parse_options(connector, node, options)?)?),
        "kafka" => Arc::new(KafkaSource::new(node, parse_options(connector, node, options)?)?),
        "postgres" => Arc::new(PostgresSource::new(node, parse_options(connector, node, options)?)?),
        other => {
            return Err(WeirError::config(
                other,
                node,
                format!("unknown source connector '{other}' (known: {})", SOURCES.join(", ")),
            ));
        }
    })
}

/// A sink factory for `connector` with `options`.
pub fn sink(connector: &str, node: &str, options: &Map<String, Value>) -> Result<Arc<dyn SinkFactory>> {
    Ok(match connector {
        "stdout" => Arc::new(Stdout::new(parse_options(connector, node, options)?)),
        "blackhole" => Arc::new(Blackhole::with_config(parse_options(connector, node, options)?)),
        "file" => Arc::new(FileSink::new(node, parse_options(connector, node, options)?)?),
        "http" => Arc::new(HttpSink::new(node, parse_options(connector, node, options)?)?),
        "kafka" => Arc::new(KafkaSink::new(node, parse_options(connector, node, options)?)?),
        "postgres" => Arc::new(PostgresSink::new(node, parse_options(connector, node, options)?)?),
        other => {
            return Err(WeirError::config(
                other,
                node,
                format!("unknown sink connector '{other}' (known: {})", SINKS.join(", ")),
            ));
        }
    })
}
