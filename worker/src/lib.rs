//! Weir: a stream processor in the tradition of Apache Flink, on Arrow batches.
//!
//! Build a job with the DataStream API ([`api`]) or load a YAML pipeline ([`pipeline`]); both
//! make one [`graph::LogicalGraph`], which [`plan`] turns into chains of operators by passes and
//! [`runtime`] runs as parallel subtasks connected by bounded channels. Every part builds on the
//! [`contract`] (operators, sources, sinks, messages, state, clock, errors), which depends on
//! nothing else here; `docs/architecture.md` draws the layers.

#![deny(missing_docs)]

pub mod api;
pub mod checkpoint;
pub mod cluster;
pub mod connectors;
pub mod contract;
pub mod dead_letter;
pub mod graph;
pub mod keys;
pub mod operators;
pub mod partition;
pub mod pipeline;
pub mod plan;
pub mod rest;
pub mod row;
pub mod runtime;
pub mod splitmix;
pub mod sql;
pub mod state;
pub mod storage;
pub mod throttle;
pub mod window;

/// What most jobs need.
pub mod prelude {
    pub use crate::api::{ConnectedStreams, CountWindowedStream, IntervalJoinBuilder, JoinedStreams, WindowedStream};
    pub use crate::api::{DataStream, KeyedStream, StreamExecutionEnvironment};
    pub use crate::checkpoint::CheckpointConfig;
    pub use crate::connectors::blackhole::Blackhole;
    pub use crate::connectors::collect::Collect;
    pub use crate::connectors::collection::Collection;
    pub use crate::connectors::datagen::{Datagen, DatagenConfig, DatagenField, FieldKind};
    pub use crate::connectors::file::{FileSink, FileSinkConfig, FileSource, FileSourceConfig};
    pub use crate::connectors::format::{Format, SchemaSpec};
    pub use crate::connectors::http::sink::{HttpBody, HttpSink, HttpSinkConfig};
    pub use crate::connectors::http::{Http, HttpConfig};
    pub use crate::connectors::kafka::{
        Delivery, KafkaSink, KafkaSinkConfig, KafkaSource, KafkaSourceConfig, StartFrom,
    };
    pub use crate::connectors::nexmark::config::NexmarkStream;
    pub use crate::connectors::nexmark::{Nexmark, NexmarkConfig};
    pub use crate::connectors::socket::{Socket, SocketConfig};
    pub use crate::connectors::stdout::{Stdout, StdoutConfig};
    pub use crate::contract::TimeDomain;
    pub use crate::contract::WatermarkStrategy;
    pub use crate::contract::{ManualClock, TaskContext, UserResult};
    pub use crate::contract::{Result, WeirError};
    pub use crate::graph::{RestartStrategy, RestoreFrom};
    pub use crate::operators::broadcast_process::KeyedBroadcastProcessFunction;
    pub use crate::operators::co_process::KeyedCoProcessFunction;
    pub use crate::operators::join::JoinType;
    pub use crate::operators::keyed_process::{KeyedContext, KeyedProcessFunction};
    pub use crate::row::{Row, RowRef, Value};
    pub use crate::runtime::control::JobControl;
    pub use crate::runtime::executor::JobResult;
    pub use crate::sql::table_env::{Table, TableEnvironment};
    pub use crate::state::broadcast::BroadcastState;
    pub use crate::state::{
        AggregateFunction, AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor,
        ReducingStateDescriptor, ValueStateDescriptor,
    };
    pub use crate::window::{
        Agg, ContinuousEventTimeTrigger, ContinuousProcessingTimeTrigger, CountTrigger, EventTimeSessionWindows,
        GlobalWindows, ProcessWindowFunction, PurgingTrigger, SlidingEventTimeWindows, SlidingProcessingTimeWindows,
        TimeWindow, Trigger, TriggerContext, TriggerResult, TumblingEventTimeWindows, TumblingProcessingTimeWindows,
        WindowAssigner, WindowContext,
    };
}
