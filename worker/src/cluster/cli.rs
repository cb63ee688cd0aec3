//! Command-line form of a worker, shared by `weir worker` and the `weir-worker` binary (what a
//! pod runs). Every option has an environment variable, so a StatefulSet can set them all.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::Heartbeats;
use super::worker::WorkerOptions;
use crate::api::StreamExecutionEnvironment;
use crate::contract::error::{Result, WeirError};
use crate::graph::RestoreFrom;
use crate::state::StateBackend;

/// Where a worker is in the job and how it reaches the others.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// The job (pipeline YAML) every worker runs.
    #[arg(env = "WEIR_JOB")]
    pub file: PathBuf,
    /// Job name (names its state directory); default: a pipeline's `name`, a SQL file's stem
    /// or its `SET 'pipeline.name'`.
    #[arg(long, env = "WEIR_JOB_NAME")]
    pub job_name: Option<String>,
    /// This worker's ordinal; default: the number at the end of the host name (`weir-2` → 2,
    /// as in a StatefulSet's pods).
    #[arg(long, env = "WEIR_ORDINAL")]
    pub ordinal: Option<usize>,
    /// Every worker's `host:port`, by ordinal (ordinal 0 runs the coordinator).
    #[arg(long, env = "WEIR_PEERS", value_delimiter = ',', conflicts_with = "peer_pattern")]
    pub peers: Vec<String>,
    /// A `host:port` pattern with `{ordinal}`, e.g. `job-{ordinal}.job.ns.svc:7070` (needs --workers).
    #[arg(long, env = "WEIR_PEER_PATTERN")]
    pub peer_pattern: Option<String>,
    /// Number of workers (default: the number of --peers).
    #[arg(long, env = "WEIR_WORKERS")]
    pub workers: Option<usize>,
    /// Where to listen (default: all interfaces, the port of this worker's peer address).
    #[arg(long, env = "WEIR_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Ordinal 0: port of the HTTP endpoint (the REST API `/overview`, `/jobs/…`,
    /// `/taskmanagers`; `/metrics`, `/status`, `/healthz`).
    #[arg(long, env = "WEIR_STATUS_PORT")]
    pub status_port: Option<u16>,
    /// Bearer token that allows the REST API's savepoint and stop endpoints (without one the
    /// API is read-only).
    #[arg(long, env = "WEIR_UI_TOKEN", hide_env_values = true)]
    pub ui_token: Option<String>,
    /// Override the job's default parallelism (every worker must be given the same).
    #[arg(short, long, env = "WEIR_PARALLELISM")]
    pub parallelism: Option<usize>,
    /// Key groups of the job's state (the StreamJob's `maxParallelism`); a job file that sets
    /// another value is refused, since key groups are fixed for the life of the state.
    #[arg(long, env = "WEIR_MAX_PARALLELISM")]
    pub max_parallelism: Option<u32>,
    /// Heartbeat interval, ms.
    #[arg(long, env = "WEIR_HEARTBEAT_INTERVAL_MS", default_value_t = 500)]
    pub heartbeat_interval_ms: u64,
    /// Silence after which a worker (or the coordinator) counts as gone, ms.
    #[arg(long, env = "WEIR_HEARTBEAT_TIMEOUT_MS", default_value_t = 5000)]
    pub heartbeat_timeout_ms: u64,
    /// After the job ends (finished, stopped with a savepoint, failed), keep serving status
    /// until terminated instead of exiting: in a StatefulSet an exit would restart the pod and
    /// run the job again.
    #[arg(long, env = "WEIR_LINGER")]
    pub linger: bool,
    /// The deployment this worker belongs to: a coordinator of another deployment refuses it
    /// (the operator sets it, so a worker of a replaced pod template never joins the new one).
    #[arg(long, env = "WEIR_DEPLOYMENT", default_value = "")]
    pub deployment: String,
    /// Restarts after failures before the job gives up (default: the job's restart strategy).
    #[arg(long, env = "WEIR_RESTART_ATTEMPTS")]
    pub restart_attempts: Option<u32>,
}

impl WorkerArgs {
    /// The worker's options, with errors naming the option.
    pub fn options(&self) -> Result<WorkerOptions> {
        let ordinal = match self.ordinal {
            Some(o) => o,
            None => ordinal_from_hostname()?,
        };
        let peers: Vec<String> = match (&self.peer_pattern, self.peers.is_empty()) {
            (Some(pattern), _) => {
                if !pattern.contains("{ordinal}") {
                    return Err(WeirError::Cluster(format!(
                        "--peer-pattern '{pattern}' has no {{ordinal}} placeholder"
                    )));
                }
                let n = self
                    .workers
                    .ok_or_else(|| WeirError::Cluster("--peer-pattern needs --workers".into()))?;
                (0..n).map(|i| pattern.replace("{ordinal}", &i.to_string())).collect()
            }
            (None, false) => self.peers.clone(),
            (None, true) => {
                return Err(WeirError::Cluster(
                    "say how to reach the workers: --peers host:port,… or --peer-pattern with --workers".into(),
                ));
            }
        };
        if let Some(n) = self.workers
            && n != peers.len()
        {
            return Err(WeirError::Cluster(format!(
                "--workers is {n} but {} peers are given",
                peers.len()
            )));
        }
        let me = peers.get(ordinal).ok_or_else(|| {
            WeirError::Cluster(format!(
                "--ordinal {ordinal} is out of range for {} workers",
                peers.len()
            ))
        })?;
        let port: u16 = me
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .ok_or_else(|| WeirError::Cluster(format!("peer address '{me}' needs a port (host:port)")))?;
        let listen = self.listen.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], port)));
        if self.heartbeat_timeout_ms <= self.heartbeat_interval_ms {
            return Err(WeirError::Cluster(format!(
                "--heartbeat-timeout-ms ({}) must exceed --heartbeat-interval-ms ({})",
                self.heartbeat_timeout_ms, self.heartbeat_interval_ms
            )));
        }
        Ok(WorkerOptions {
            ordinal,
            workers: peers.len(),
            listen,
            advertise: me.clone(),
            coordinator: peers[0].clone(),
            heartbeats: Heartbeats {
                interval: Duration::from_millis(self.heartbeat_interval_ms.max(1)),
                timeout: Duration::from_millis(self.heartbeat_timeout_ms),
            },
            status_listen: match (ordinal, self.status_port) {
                (0, Some(p)) => Some(SocketAddr::from(([0, 0, 0, 0], p))),
                _ => None,
            },
            linger: self.linger,
            deployment: self.deployment.clone(),
            ui_token: self.ui_token.clone().filter(|t| !t.is_empty()),
        })
    }
}

fn ordinal_from_hostname() -> Result<usize> {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_default();
    let host = host.trim();
    host.rsplit_once('-').and_then(|(_, n)| n.parse().ok()).ok_or_else(|| {
        WeirError::Cluster(format!(
            "no --ordinal given and the host name '{host}' does not end in -<ordinal>"
        ))
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        w: WorkerArgs,
    }

    fn parse(args: &[&str]) -> Result<WorkerOptions> {
        let mut v = vec!["t", "job.yaml"];
        v.extend_from_slice(args);
        T::try_parse_from(v)
            .map_err(|e| WeirError::Cluster(e.to_string()))?
            .w
            .options()
    }

    #[test]
    fn peers_and_patterns() {
        let o = parse(&["--ordinal", "1", "--peers", "a:1,b:2,c:3"]).unwrap();
        assert_eq!(
            (o.workers, o.advertise.as_str(), o.coordinator.as_str()),
            (3, "b:2", "a:1")
        );
        assert_eq!(o.listen.port(), 2);
        let o = parse(&[
            "--ordinal",
            "2",
            "--workers",
            "3",
            "--peer-pattern",
            "w-{ordinal}.svc:7070",
        ])
        .unwrap();
        assert_eq!(
            (o.advertise.as_str(), o.coordinator.as_str()),
            ("w-2.svc:7070", "w-0.svc:7070")
        );
    }

    #[test]
    fn bad_options_name_the_option() {
        let e = |args: &[&str]| parse(args).unwrap_err().to_string();
        assert!(e(&["--ordinal", "3", "--peers", "a:1,b:2"]).contains("--ordinal 3"));
        assert!(e(&["--ordinal", "0", "--peer-pattern", "w:1", "--workers", "2"]).contains("{ordinal}"));
        assert!(e(&["--ordinal", "0", "--peer-pattern", "w-{ordinal}:1"]).contains("needs --workers"));
        assert!(e(&["--ordinal", "0", "--peers", "nohost"]).contains("needs a port"));
        assert!(e(&["--ordinal", "0"]).contains("--peers"));
        assert!(e(&["--ordinal", "0", "--peers", "a:1", "--heartbeat-timeout-ms", "10"]).contains("must exceed"));
    }
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
    /// Applies these options and `parallelism` to a job's environment (over what the job file
    /// or script set); returns whether the job checkpoints.
    pub fn apply(&self, env: &StreamExecutionEnvironment, parallelism: Option<usize>) -> Result<bool> {
        if let Some(p) = parallelism {
            env.set_parallelism(p);
        }
        if let Some(ms) = self.checkpoint_interval {
            env.enable_checkpointing(Duration::from_millis(ms));
        }
        if let Some(url) = &self.checkpoint_storage {
            env.set_checkpoint_storage(url.clone());
        }
        let checkpointing = env.config().checkpoint.is_some();
        if self.resume {
            if !checkpointing {
                return Err(WeirError::plan(
                    "--resume needs checkpoints: set checkpoint.interval_ms in the file or --checkpoint-interval",
                ));
            }
            env.set_restore(RestoreFrom::Latest);
        }
        if let Some(url) = &self.from_savepoint {
            env.set_restore(RestoreFrom::Snapshot(url.clone()));
        }
        env.allow_non_restored_state(self.allow_non_restored_state);
        if self.state_backend.is_some() || self.state_dir.is_some() || self.state_memory.is_some() {
            let now = env.config().state;
            let backend = self.state_backend.as_deref().unwrap_or(now.name());
            let (dir, memory) = match &now {
                StateBackend::Disk(d) => (Some(d.dir.display().to_string()), Some(d.memory.to_string())),
                StateBackend::Memory => (None, None),
            };
            let backend = StateBackend::from_settings(
                backend,
                self.state_dir.as_deref().or(dir.as_deref()),
                self.state_memory.as_deref().or(memory.as_deref()),
            )?;
            env.set_state_backend(backend);
        }
        if let Some(on) = self.state_local_recovery {
            let mut backend = env.config().state;
            backend.set_local_recovery(on);
            env.set_state_backend(backend);
        }
        Ok(checkpointing)
    }
}
