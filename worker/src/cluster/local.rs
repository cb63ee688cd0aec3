//! `weir cluster`: a job's workers as processes on this machine — for trying a distributed job
//! on a laptop and for tests. Like a StatefulSet, it starts worker `i` with its ordinal and the
//! peers' addresses, and starts a worker again when it dies (killed, crashed) until the job is
//! over. It ends with worker 0's outcome.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::contract::error::{Result, WeirError};

/// How to run the workers.
#[derive(Debug, Clone)]
pub struct LocalCluster {
    /// The job file every worker runs: a pipeline or SQL file (`weir worker`), or a Python
    /// script (run by `WEIR_PYTHON`, default `python3`, with the worker's place in variables).
    pub job: PathBuf,
    /// Number of workers.
    pub workers: usize,
    /// Extra arguments for every worker (e.g. checkpoint storage).
    pub worker_args: Vec<String>,
    /// Where each worker's pid is written (`worker-<i>.pid`), for tools and tests.
    pub pid_dir: Option<PathBuf>,
    /// HTTP port of worker 0's REST API (0: pick a free one).
    pub status_port: u16,
    /// Bearer token of the REST API's mutating endpoints, given to worker 0 (none: read-only).
    pub ui_token: Option<String>,
}

/// Free TCP ports on 127.0.0.1 (bound then released).
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()
        .map_err(|e| WeirError::Cluster(format!("cannot find a free port: {e}")))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| WeirError::Cluster(format!("cannot find a free port: {e}")))
}

impl LocalCluster {
    /// Runs the workers until the job is over; true when it ended well.
    pub async fn run(&self) -> Result<bool> {
        if self.workers == 0 {
            return Err(WeirError::Cluster("--workers must be at least 1".into()));
        }
        let exe = std::env::current_exe().map_err(|e| WeirError::Cluster(format!("cannot find this program: {e}")))?;
        let mut ports = free_ports(self.workers + 1)?;
        let spare = ports.pop().expect("asked for one more");
        let status_port = match self.status_port {
            0 => spare,
            p => p,
        };
        let peers: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        if let Some(dir) = &self.pid_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| WeirError::Cluster(format!("cannot create {}: {e}", dir.display())))?;
        }
        eprintln!(
            "weir cluster: {} workers on {}; REST API on http://127.0.0.1:{status_port}/ (/overview, /jobs, /status, /metrics)",
            self.workers,
            peers.join(", ")
        );
        let python = self.job.extension().is_some_and(|e| e == "py");
        let spawn = |i: usize| -> Result<Child> {
            let mut cmd = if python {
                // A Python job's workers are the script itself: the `weir` package's `execute`
                // joins the cluster as the worker these variables describe.
                let mut cmd = Command::new(std::env::var_os("WEIR_PYTHON").unwrap_or_else(|| "python3".into()));
                cmd.arg(&self.job)
                    .env("WEIR_JOB", &self.job)
                    .env("WEIR_ORDINAL", i.to_string())
                    .env("WEIR_PEERS", peers.join(","))
                    .env("WEIR_WORKER_ARGS", self.worker_args.join("\u{1f}"));
                if i == 0 {
                    cmd.env("WEIR_STATUS_PORT", status_port.to_string());
                }
                cmd
            } else {
                let mut cmd = Command::new(&exe);
                cmd.arg("worker")
                    .arg(&self.job)
                    .arg("--ordinal")
                    .arg(i.to_string())
                    .arg("--peers")
                    .arg(peers.join(","))
                    .args(&self.worker_args);
                if i == 0 {
                    cmd.arg("--status-port").arg(status_port.to_string());
                }
                cmd
            };
            if let (0, Some(token)) = (i, &self.ui_token) {
                cmd.env("WEIR_UI_TOKEN", token);
            }
            cmd.stdin(Stdio::null()).kill_on_drop(true);
            let child = cmd
                .spawn()
                .map_err(|e| WeirError::Cluster(format!("cannot start worker {i}: {e}")))?;
            if let (Some(dir), Some(pid)) = (&self.pid_dir, child.id()) {
                write_pid(dir, i, pid);
            }
            Ok(child)
        };
        let mut children: Vec<Option<Child>> = (0..self.workers).map(|i| spawn(i).map(Some)).collect::<Result<_>>()?;
        let mut outcome: Vec<Option<bool>> = vec![None; self.workers];
        loop {
            for i in 0..self.workers {
                let Some(child) = &mut children[i] else { continue };
                let Ok(Some(status)) = child.try_wait() else { continue };
                children[i] = None;
                match status.code() {
                    // Exited on its own: the job is over for it (0 ok, 1 failed).
                    Some(0) => outcome[i] = Some(true),
                    Some(1) if outcome.iter().any(Option::is_some) || i == 0 => outcome[i] = Some(false),
                    // Killed or crashed: start it again, as a StatefulSet would.
                    _ if outcome.iter().all(Option::is_none) => {
                        eprintln!("weir cluster: worker {i} ended ({status}); starting it again");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        children[i] = Some(spawn(i)?);
                    }
                    _ => outcome[i] = Some(false),
                }
            }
            if children.iter().all(Option::is_none) {
                return Ok(outcome[0].unwrap_or(false));
            }
            // Worker 0 decided and the others are slow to leave: give them a moment, then stop them.
            if outcome[0].is_some() {
                tokio::time::sleep(Duration::from_secs(3)).await;
                for c in children.iter_mut().flatten() {
                    let _ = c.start_kill();
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn write_pid(dir: &Path, ordinal: usize, pid: u32) {
    let path = dir.join(format!("worker-{ordinal}.pid"));
    let tmp = dir.join(format!(".worker-{ordinal}.pid.tmp"));
    if std::fs::write(&tmp, pid.to_string()).is_ok() {
        let _ = std::fs::rename(tmp, path);
    }
}
