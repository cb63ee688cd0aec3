//! Running a physical graph: channels, input gates, operator chains, sources, the executor.

pub mod chain;
pub mod control;
pub mod executor;
pub mod gate;
pub mod metrics;
pub mod net;
pub mod output;
pub mod process_usage;
pub mod source_emitter;
pub mod task;
