//! Running one job across several worker processes.
//!
//! - [`wire`]: a channel's messages as gRPC frames (Arrow IPC for batches).
//! - [`exchange`]: data between workers, one gRPC stream per channel, credit-based.
//! - [`master`]: the coordinator (job master) on worker ordinal 0: registration, deployment
//!   by generation, checkpoints, failure detection and restarts, status.
//! - [`worker`]: the worker process: attaches to the master, runs its share of the subtasks.
//! - [`local`]: `weir cluster`, N worker processes on this machine, restarted when they die.
//! - [`status`]: the HTTP endpoint (JSON and Prometheus text) of the master.

pub mod bench;
pub mod cli;
pub mod exchange;
pub mod local;
pub mod master;
pub mod status;
pub mod wire;
pub mod worker;

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::error::{Result, WeirError};

/// HTTP/2 flow-control windows. Credits bound what a channel has in flight (a few batches);
/// HTTP/2's default 64 KiB stream window would stall a batch-sized stream on every round trip,
/// so the windows are sized to let the credits, not HTTP/2, pace the data.
pub const STREAM_WINDOW: u32 = 8 << 20;
/// See [`STREAM_WINDOW`].
pub const CONNECTION_WINDOW: u32 = 32 << 20;

/// A lazily connecting gRPC channel to `address` (`host:port`).
pub fn channel_to(address: &str) -> Result<Channel> {
    let uri = format!("http://{address}");
    let endpoint = Endpoint::from_shared(uri)
        .map_err(|e| WeirError::Cluster(format!("bad address '{address}': {e}")))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(10));
    Ok(endpoint.connect_lazy())
}

/// Timing of failure detection.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeats {
    /// How often workers and master signal that they are alive.
    pub interval: Duration,
    /// Silence after which the other side counts as gone.
    pub timeout: Duration,
}

impl Default for Heartbeats {
    fn default() -> Self {
        Heartbeats {
            interval: Duration::from_millis(500),
            timeout: Duration::from_secs(5),
        }
    }
}
