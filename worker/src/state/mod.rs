//! Keyed state: values scoped to the current key, stored per key group so that a later
//! checkpoint can snapshot, and a rescale move, single key groups.
//!
//! State is declared with descriptors (`ValueStateDescriptor::new("count")`, optionally
//! `.with_ttl(..)`) and reached through [`KeyedContext`](crate::operators::keyed_process::KeyedContext)
//! while a record or timer of that key is processed. With a TTL, an entry not written for that
//! long reads as absent (Flink's `OnCreateAndWrite` update type).

pub mod backend;
pub mod bloom;
pub mod broadcast;
pub mod codec;
pub mod descriptors;
pub mod disk;
pub mod key_index;
pub mod store;
pub mod table;
pub mod table_snapshot;
pub mod ttl;

/// A hash map with a fast non-cryptographic hasher (foldhash), for state keyed by key bytes
/// the engine already partitions by a hash: flooding is not a concern inside one subtask.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub use backend::{DiskSettings, StateBackend, StateTable};
pub use codec::Codec;
pub use descriptors::{
    AggregateFunction, AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor, ReducingStateDescriptor,
    ValueStateDescriptor,
};
pub use store::{KeyedStateStore, StateHandle};
pub use table::{KeyedTable, TableView};
