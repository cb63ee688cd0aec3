//! Options of `connector: nexmark`.

use serde::Deserialize;

/// Which events a Nexmark source emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NexmarkStream {
    /// All events in the unified shape of the SQL `nexmark` table:
    /// `event_type`, `person`, `auction`, `bid` (the two that do not apply are null).
    #[default]
    All,
    /// Bids only, flat: `auction, bidder, price, channel, url, dateTime, extra`.
    Bid,
    /// Persons only, flat.
    Person,
    /// Auctions only, flat.
    Auction,
}

/// Options of the Nexmark source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NexmarkConfig {
    /// Number of events (all types) to generate; none = unbounded.
    #[serde(default)]
    pub events: Option<u64>,
    /// Which events to emit (default `all`).
    #[serde(default)]
    pub stream: NexmarkStream,
    /// Events per second of event time (default 10,000,000).
    #[serde(default = "rate")]
    pub rate: i64,
    /// Event time of event 0, ms since the epoch (default 2024-01-01T00:00:00Z).
    #[serde(default = "base_time")]
    pub base_time: i64,
    /// Seed (default 0).
    #[serde(default)]
    pub seed: i64,
    /// Add the person-id offset to bidders twice, as nexmark-flink does (default true).
    #[serde(default = "yes")]
    pub bidder_offset_quirk: bool,
    /// Wall-clock limit of events per second over all subtasks; none = as fast as possible.
    #[serde(default)]
    pub rows_per_second: Option<u64>,
}

fn rate() -> i64 {
    10_000_000
}
fn base_time() -> i64 {
    1_704_067_200_000
}
fn yes() -> bool {
    true
}

impl Default for NexmarkConfig {
    fn default() -> Self {
        NexmarkConfig {
            events: None,
            stream: NexmarkStream::All,
            rate: rate(),
            base_time: base_time(),
            seed: 0,
            bidder_offset_quirk: true,
            rows_per_second: None,
        }
    }
}
