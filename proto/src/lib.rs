//! Contracts between Weir's processes.
//!
//! For now this holds the job specification: the YAML pipeline form of the DataStream API
//! ([`PipelineSpec`]). The same types are what a `StreamJob` manifest embeds, so they derive
//! `schemars::JsonSchema` as well as serde. gRPC services join them with distributed execution.

#![deny(missing_docs)]

pub mod pipeline;

pub use pipeline::{
    AggregateSpec, CheckpointSpec, Inputs, Operation, OperatorSpec, PipelineSpec, RangeSpec, RestartSpec, SinkSpec,
    SourceSpec, SplitSpec, TriggerSpec, WatermarkSpec, WindowSpec,
};

/// gRPC messages and services (`proto/weir.proto`): the coordinator and the data exchange.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod rpc {
    tonic::include_proto!("weir.v1");

    impl JobPhase {
        /// The phase's name in status output, logs and JSON (`running`, `waiting-for-workers`, …).
        pub fn name(self) -> &'static str {
            match self {
                JobPhase::Unspecified => "unknown",
                JobPhase::WaitingForWorkers => "waiting-for-workers",
                JobPhase::Deploying => "deploying",
                JobPhase::Running => "running",
                JobPhase::Restarting => "restarting",
                JobPhase::Finishing => "finishing",
                JobPhase::Finished => "finished",
                JobPhase::Stopped => "stopped",
                JobPhase::Failed => "failed",
            }
        }

        /// The phase named `name` (as [`JobPhase::name`] writes it).
        pub fn from_name(name: &str) -> Option<JobPhase> {
            [
                JobPhase::WaitingForWorkers,
                JobPhase::Deploying,
                JobPhase::Running,
                JobPhase::Restarting,
                JobPhase::Finishing,
                JobPhase::Finished,
                JobPhase::Stopped,
                JobPhase::Failed,
            ]
            .into_iter()
            .find(|p| p.name() == name)
        }
    }
}
