//! The Nexmark generator: persons, auctions and bids (1:3:46) as a pure function of the event
//! number, the model of `../shared/peers/flink-nexmark` (Beam's and nexmark-flink's rules, one
//! SplitMix64 stream per event), so Weir and the Flink peer see the same events.

pub mod config;
pub mod model;
pub mod source;

pub use config::NexmarkConfig;
pub use model::{Event, NexmarkModel};
pub use source::Nexmark;
