//! Connectors: one folder each (config, source and/or sink, tests).
//!
//! A source is a [`SourceFactory`] in the graph and one [`Source`] per subtask; a sink is a
//! [`SinkFactory`] and one [`Sink`] per subtask. Options from the pipeline form are parsed by
//! each connector's `config.rs` with unknown fields refused.

pub mod blackhole;
pub mod collect;
pub mod collection;
pub mod datagen;
pub mod file;
pub mod format;
pub mod http;
pub mod kafka;
pub mod nexmark;
pub mod postgres;
pub mod registry;
pub mod socket;
pub mod stdout;

pub use crate::contract::{Sink, SinkFactory, Source, SourceContext, SourceFactory};
