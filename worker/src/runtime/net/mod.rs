//! Channels between worker processes: a channel's messages as gRPC frames ([`wire`], Arrow IPC
//! for batches) and the data exchange, one gRPC stream per channel with credit-based flow
//! control ([`exchange`]).

pub mod exchange;
pub mod wire;

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::contract::error::{Result, WeirError};

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
