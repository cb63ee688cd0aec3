//! Keyed state: values scoped to the current key, stored per key group so that a later
//! checkpoint can snapshot, and a rescale move, single key groups.
//!
//! State is declared with descriptors (`ValueStateDescriptor::new("count")`, optionally
//! `.with_ttl(..)`) and reached through [`KeyedContext`](crate::operators::keyed_process::KeyedContext)
//! while a record or timer of that key is processed. With a TTL, an entry not written for that
//! long reads as absent (Flink's `OnCreateAndWrite` update type).

pub mod descriptors;
pub mod store;

pub use descriptors::{
    AggregateFunction, AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor, ReducingStateDescriptor,
    ValueStateDescriptor,
};
pub use store::{KeyedStateStore, StateHandle};
