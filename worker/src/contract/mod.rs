//! The contract between the engine's parts. It depends on nothing else in the engine; every
//! other module may use it (`tests/it/layers.rs` checks that the module graph stays acyclic).
//!
//! - [`operator`]: [`Operator`] and [`OperatorFactory`], [`TaskContext`], user errors;
//! - [`source`] and [`sink`]: connectors' traits and the [`SourceContext`] a source emits into;
//! - [`message`]: what flows on a channel ([`Message`], [`Barrier`]);
//! - [`state`]: [`OperatorState`] and the state encoding;
//! - [`watermark`]: watermark strategies and generators;
//! - [`clock`]: the processing-time [`Clock`] (a [`ManualClock`] in tests);
//! - [`metrics`]: a node's counters;
//! - [`error`]: [`WeirError`], with causes and retryability.

pub mod clock;
pub mod error;
pub mod message;
pub mod metrics;
pub mod operator;
pub mod schema;
pub mod sink;
pub mod source;
pub mod state;
pub mod state_backend;
pub mod watermark;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error::{Result, WeirError};
pub use message::{Barrier, Message};
pub use metrics::NodeMetrics;
pub use operator::{CalcPart, Operator, OperatorFactory, TaskContext, TimeDomain, UserError, UserResult};
pub use sink::{Sink, SinkFactory};
pub use source::{Source, SourceContext, SourceFactory};
pub use state::OperatorState;
pub use watermark::WatermarkStrategy;
