//! The command line: subcommands and their options.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use weir::cluster::cli::WorkerArgs;

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
        /// Port of the status endpoint (default: a free one, printed at start).
        #[arg(long, default_value_t = 0)]
        status_port: u16,
        /// Silence after which a worker counts as gone, ms.
        #[arg(long, default_value_t = 5000)]
        heartbeat_timeout_ms: u64,
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

/// Checkpointing and where state comes from.
#[derive(clap::Args, Clone, Default)]
pub struct StateArgs {
    /// Checkpoint every this many ms (overrides the file's `checkpoint.interval_ms`).
    #[arg(long, value_name = "MS", env = "WEIR_CHECKPOINT_INTERVAL_MS")]
    pub checkpoint_interval: Option<u64>,
    /// Where checkpoints go (a path, file://, s3://bucket/prefix).
    #[arg(long, value_name = "URL", env = "WEIR_CHECKPOINT_STORAGE")]
    pub checkpoint_storage: Option<String>,
    /// Resume from the job's newest complete checkpoint (fresh if there is none).
    #[arg(long, conflicts_with = "from_savepoint")]
    pub resume: bool,
    /// Start from a savepoint (or a checkpoint directory).
    #[arg(long, value_name = "URL", env = "WEIR_FROM_SAVEPOINT")]
    pub from_savepoint: Option<String>,
    /// Start even if the snapshot holds state of operators the job no longer has.
    #[arg(long)]
    pub allow_non_restored_state: bool,
    /// Where keyed state lives: `memory` or `disk` (overrides the file's `state.backend`).
    #[arg(long, value_name = "BACKEND", env = "WEIR_STATE_BACKEND")]
    pub state_backend: Option<String>,
    /// With the disk backend: the directory state files go under.
    #[arg(long, value_name = "DIR", env = "WEIR_STATE_DIR")]
    pub state_dir: Option<String>,
    /// With the disk backend: memory it may use per worker (`512m`, `1Gi`).
    #[arg(long, value_name = "SIZE", env = "WEIR_STATE_MEMORY")]
    pub state_memory: Option<String>,
    /// With the disk backend: keep local copies of checkpoint files so a restart on this
    /// machine reads them instead of checkpoint storage (default true).
    #[arg(long, value_name = "BOOL", env = "WEIR_STATE_LOCAL_RECOVERY")]
    pub state_local_recovery: Option<bool>,
}

impl StateArgs {
    /// The same options as arguments, for the workers `weir cluster` starts.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(ms) = self.checkpoint_interval {
            a.extend(["--checkpoint-interval".to_string(), ms.to_string()]);
        }
        if let Some(url) = &self.checkpoint_storage {
            a.extend(["--checkpoint-storage".to_string(), url.clone()]);
        }
        if let Some(url) = &self.from_savepoint {
            a.extend(["--from-savepoint".to_string(), url.clone()]);
        }
        if self.allow_non_restored_state {
            a.push("--allow-non-restored-state".to_string());
        }
        for (flag, value) in [
            ("--state-backend", &self.state_backend),
            ("--state-dir", &self.state_dir),
            ("--state-memory", &self.state_memory),
        ] {
            if let Some(v) = value {
                a.extend([flag.to_string(), v.clone()]);
            }
        }
        if let Some(on) = self.state_local_recovery {
            a.extend(["--state-local-recovery".to_string(), on.to_string()]);
        }
        a
    }
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
