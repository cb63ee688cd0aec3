//! The engine's integration tests, one binary (one link of the engine instead of one per file).
//! Each module drives Weir through its public interfaces: the DataStream API, pipeline files,
//! the `weir` binary, real Kafka and S3 servers, worker processes.

mod common;

mod browser;
mod checkpoints;
mod cli;
mod cluster;
mod connectors;
mod dashboard;
mod event_time;
mod hdfs;
mod incremental;
mod joins_and_ranks;
mod kafka;
mod keyed_state;
mod layers;
mod nexmark;
mod nexmark_sql;
mod partitioning;
mod pipeline;
mod postgres;
mod rest;
mod runtime;
mod sql;
mod two_inputs;
mod window_functions;
mod windows;
