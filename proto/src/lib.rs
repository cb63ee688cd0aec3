//! Contracts between Weir's processes.
//!
//! For now this holds the job specification: the YAML pipeline form of the DataStream API
//! ([`PipelineSpec`]). The same types are what a `StreamJob` manifest embeds, so they derive
//! `schemars::JsonSchema` as well as serde. gRPC services join them with distributed execution.

pub mod pipeline;

pub use pipeline::{
    AggregateSpec, CheckpointSpec, Inputs, OperatorSpec, PipelineSpec, RangeSpec, RestartSpec, SinkSpec, SourceSpec,
    SplitSpec, TriggerSpec, WatermarkSpec, WindowSpec,
};

/// gRPC messages and services (`proto/weir.proto`): the coordinator and the data exchange.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod rpc {
    tonic::include_proto!("weir.v1");
}
