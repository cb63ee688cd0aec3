//! Windows: which windows a timestamp belongs to, and the aggregates computed per window.
//!
//! Event-time windows fire when the watermark passes their end (`end - 1`, as Flink's
//! `EventTimeTrigger`); with allowed lateness, a record that arrives after its window fired but
//! within the lateness updates the window and fires it again; after that it is late.

pub mod aggregate;
pub mod assigner;
pub mod contents;
pub mod functions;
pub mod trigger;

pub use aggregate::{Agg, AggKind};
pub use assigner::{
    CumulativeEventTimeWindows, EventTimeSessionWindows, GlobalWindows, SlidingEventTimeWindows,
    SlidingProcessingTimeWindows, TumblingEventTimeWindows, TumblingProcessingTimeWindows, WindowAssigner, WindowKind,
};
pub use contents::TimeWindow;
pub use functions::{ProcessWindowFunction, WindowContext};
pub use trigger::{
    ContinuousEventTimeTrigger, ContinuousProcessingTimeTrigger, CountTrigger, PurgingTrigger, Trigger, TriggerContext,
    TriggerResult,
};

pub use crate::contract::schema::EVENT_TIME_METADATA;
