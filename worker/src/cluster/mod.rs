//! Running one job across several worker processes.
//!
//! - [`master`]: the coordinator (job master) on worker ordinal 0: registration, deployment
//!   by generation, checkpoints, failure detection and restarts, status.
//! - [`worker`]: the worker process: attaches to the master, runs its share of the subtasks.
//! - [`local`]: `weir cluster`, N worker processes on this machine, restarted when they die.
//! - The master's HTTP endpoint is the REST API ([`crate::rest`]).

pub mod cli;
pub mod local;
pub mod master;
pub mod worker;

use std::time::Duration;

pub use crate::runtime::net::{CONNECTION_WINDOW, STREAM_WINDOW, channel_to};

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
