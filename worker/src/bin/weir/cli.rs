//! The command line: subcommands and their options.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use weir::cluster::cli::{StateArgs, WorkerArgs};

/// Weir: a stream processor in the tradition of Apache Flink.
#[derive(Parser)]
#[command(name = "weir", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a pipeline file in this process (the embedded default) until its input ends, or
    /// until Ctrl-C (sources stop, data in flight reaches the sinks, then it exits).
    Run {
        /// The pipeline YAML file.
        file: PathBuf,
        /// Override the job's default parallelism.
        #[arg(short, long)]
        parallelism: Option<usize>,
        /// Print the plan (tasks, chains, edges) and exit without running.
        #[arg(long)]
        explain: bool,
        /// Progress line on stderr every second: auto (when stderr is a terminal), always, never.
        #[arg(long, default_value = "auto")]
        progress: Progress,
        /// Serve the REST API (`/overview`, `/jobs/…`, `/metrics`) while the job runs, on ADDR
        /// (default 127.0.0.1:8081, Flink's port; port 0 picks a free one, printed at start).
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8081")]
        ui: Option<std::net::SocketAddr>,
        /// Bearer token that allows the REST API's savepoint and stop endpoints (without one
        /// the API is read-only).
        #[arg(long, env = "WEIR_UI_TOKEN", hide_env_values = true)]
        ui_token: Option<String>,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Inspect a job's checkpoints and savepoints.
    Checkpoints {
        #[command(subcommand)]
        command: CheckpointsCommand,
    },
    /// Take a savepoint of a job running in `weir run` (process PID): it prints the savepoint's
    /// location on its stderr. With `--stop`, the job stops once the savepoint is complete.
    Savepoint {
        /// Process id of the `weir run`.
        pid: u32,
        /// Stop the job after the savepoint (stop-with-savepoint).
        #[arg(long)]
        stop: bool,
    },
    /// Run one worker of a job spread over several processes (what `weir-worker` runs in a
    /// pod). Ordinal 0 also runs the coordinator.
    Worker {
        #[command(flatten)]
        worker: WorkerArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Run a job on N worker processes on this machine (restarted when they die, as a
    /// StatefulSet would), until the job ends. Checkpoints go to `.weir/checkpoints` unless the
    /// file or --checkpoint-storage say otherwise.
    Cluster {
        /// The pipeline YAML file.
        file: PathBuf,
        /// Number of worker processes.
        #[arg(short, long, default_value_t = 2)]
        workers: usize,
        /// Override the job's default parallelism.
        #[arg(short, long)]
        parallelism: Option<usize>,
        /// Write each worker's pid to `<dir>/worker-<i>.pid`.
        #[arg(long)]
        pid_dir: Option<PathBuf>,
        /// Port of the REST API and status endpoint (default: a free one, printed at start).
        #[arg(long, default_value_t = 0)]
        status_port: u16,
        /// Bearer token that allows the REST API's savepoint and stop endpoints (without one
        /// the API is read-only).
        #[arg(long, env = "WEIR_UI_TOKEN", hide_env_values = true)]
        ui_token: Option<String>,
        /// Silence after which a worker counts as gone, ms.
        #[arg(long, default_value_t = 5000)]
        heartbeat_timeout_ms: u64,
        /// Rescale on the job's load, one worker per parallel slot, with the autoscaler's
        /// settings as JSON (the StreamJob's `spec.autoscaler` fields; none: the defaults):
        /// `--autoscale '{"scaleDownDelaySeconds": 60}'`.
        #[arg(long, value_name = "JSON", num_args = 0..=1, default_missing_value = "{}")]
        autoscale: Option<String>,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Print the status of a job running on a cluster: `weir status host:port` (a worker 0's
    /// gRPC address).
    Status {
        /// The coordinator's `host:port`.
        address: String,
        /// Print the full JSON (counters per operator, checkpoint figures).
        #[arg(long)]
        json: bool,
    },
    /// Check a pipeline file and print its plan (same as `run --explain`).
    Explain {
        /// The pipeline YAML file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum CheckpointsCommand {
    /// The complete checkpoints and savepoints of a job: `weir checkpoints list .weir/checkpoints/<job>`.
    List {
        /// The job's directory under the checkpoint storage.
        url: String,
    },
    /// What a checkpoint or savepoint holds: operators, parallelism, key groups, sizes.
    Show {
        /// The snapshot's directory (`…/<job>/chk-<n>` or `…/<job>/savepoints/<name>`).
        url: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum, PartialEq)]
pub enum Progress {
    Auto,
    Always,
    Never,
}
