//! `weir cluster`: a job's workers as processes on this machine — for trying a distributed job
//! on a laptop and for tests. Like a StatefulSet, it starts worker `i` with its ordinal and the
//! peers' addresses, and starts a worker again when it dies (killed, crashed) until the job is
//! over. It ends with worker 0's outcome.
//!
//! With an autoscaler (`--autoscale`), it samples the coordinator's subtask totals and asks the
//! same decision the operator does ([`weir_autoscale`]); to rescale it stops the job with a
//! savepoint and starts as many workers as the decision says from it.

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
    /// Rescale on the job's load (one worker per parallel slot).
    pub autoscale: Option<weir_autoscale::AutoscalerSpec>,
    /// The job's key groups (its `max_parallelism`), for the autoscaler's bounds.
    pub key_groups: u32,
}

/// How one deployment of the workers ended.
enum Ended {
    /// The job is over: whether it ended well.
    Job(bool),
    /// Stopped with this savepoint for a rescale to this many workers.
    Rescale(String, usize),
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
        let mut scaler = match &self.autoscale {
            Some(spec) => Some(
                weir_autoscale::Autoscaler::new(spec.clone(), self.key_groups)
                    .map_err(|e| WeirError::Cluster(format!("--autoscale: {e}")))?,
            ),
            None => None,
        };
        let (mut workers, mut from) = (self.workers, None::<String>);
        loop {
            let stopped_at = std::time::Instant::now();
            match self.deploy(workers, from.as_deref(), scaler.as_mut()).await? {
                Ended::Job(ok) => return Ok(ok),
                Ended::Rescale(savepoint, to) => {
                    eprintln!("weir cluster: rescaling {workers} → {to} workers from {savepoint}");
                    if let Some(s) = scaler.as_mut() {
                        let now = crate::contract::clock::wall_ms();
                        s.rescaled(now, stopped_at.elapsed().as_millis() as u64);
                    }
                    workers = to;
                    from = Some(savepoint);
                }
            }
        }
    }

    /// One deployment: `workers` workers (restored from `from`), until the job is over or the
    /// autoscaler stops it for a rescale.
    async fn deploy(
        &self,
        workers: usize,
        from: Option<&str>,
        mut scaler: Option<&mut weir_autoscale::Autoscaler>,
    ) -> Result<Ended> {
        let mut worker_args = self.worker_args.clone();
        if self.autoscale.is_some() {
            // One worker per parallel slot, as in a StatefulSet.
            if let Some(i) = worker_args.iter().position(|a| a == "--parallelism") {
                worker_args.drain(i..(i + 2).min(worker_args.len()));
            }
            worker_args.extend(["--parallelism".to_string(), workers.to_string()]);
        }
        if let Some(savepoint) = from {
            worker_args.retain(|a| a != "--resume");
            worker_args.extend(["--from-savepoint".to_string(), savepoint.to_string()]);
        }
        let worker_args = &worker_args;
        let exe = std::env::current_exe().map_err(|e| WeirError::Cluster(format!("cannot find this program: {e}")))?;
        let mut ports = free_ports(workers + 1)?;
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
            workers,
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
                    .env("WEIR_WORKER_ARGS", worker_args.join("\u{1f}"));
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
                    .args(worker_args);
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
        let mut children: Vec<Option<Child>> = (0..workers).map(|i| spawn(i).map(Some)).collect::<Result<_>>()?;
        let mut outcome: Vec<Option<bool>> = vec![None; workers];
        // When to sample next, and a rescale under way.
        let every = self.autoscale.as_ref().map(|a| a.sample_every());
        let mut next_sample = tokio::time::Instant::now() + every.unwrap_or_default();
        let mut rescale: Option<(String, usize)> = None;
        loop {
            if let (Some(s), Some(every)) = (scaler.as_deref_mut(), every)
                && rescale.is_none()
                && outcome.iter().all(Option::is_none)
                && tokio::time::Instant::now() >= next_sample
            {
                next_sample = tokio::time::Instant::now() + every;
                if let Some(to) = sample(&peers[0], workers, s).await {
                    match stop_with_savepoint(&peers[0]).await {
                        Ok(path) => rescale = Some((path, to)),
                        Err(e) => eprintln!("weir cluster: no rescale to {to}: {e}"),
                    }
                }
            }
            for i in 0..workers {
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
                if let Some((path, to)) = rescale {
                    return Ok(Ended::Rescale(path, to));
                }
                return Ok(Ended::Job(outcome[0].unwrap_or(false)));
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

/// Reads the coordinator at `address`, gives the autoscaler its subtasks' totals,
/// and answers the worker count to rescale to, if the decision is to (and not a dry run).
async fn sample(address: &str, workers: usize, scaler: &mut weir_autoscale::Autoscaler) -> Option<usize> {
    use weir_proto::rpc::coordinator_client::CoordinatorClient;
    let mut client = CoordinatorClient::new(crate::runtime::net::channel_to(address).ok()?);
    let reply = tokio::time::timeout(Duration::from_secs(2), client.status(weir_proto::rpc::StatusRequest {}))
        .await
        .ok()?
        .ok()?
        .into_inner();
    if reply.phase() != weir_proto::rpc::JobPhase::Running {
        return None;
    }
    let now: Vec<weir_autoscale::SubtaskTotals> = serde_json::from_slice(&reply.subtasks_json).ok()?;
    let at = crate::contract::clock::wall_ms();
    let d = scaler.observe_totals(at, workers as u32, now)?;
    if d.action == weir_autoscale::Action::Hold {
        return None;
    }
    eprintln!("weir cluster: autoscaler: {}", d.reason);
    if scaler.spec().dry_run {
        scaler.rescaled(at, 0);
        return None;
    }
    Some(d.target as usize)
}

/// Stops the job with a savepoint through the coordinator at `address`; the savepoint's path.
async fn stop_with_savepoint(address: &str) -> std::result::Result<String, String> {
    use weir_proto::rpc::coordinator_client::CoordinatorClient;
    let channel = crate::runtime::net::channel_to(address).map_err(|e| e.to_string())?;
    let mut client = CoordinatorClient::new(channel);
    let reply = client
        .savepoint(weir_proto::rpc::SavepointRequest {
            stop: true,
            ..Default::default()
        })
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    Ok(reply.path)
}

fn write_pid(dir: &Path, ordinal: usize, pid: u32) {
    let path = dir.join(format!("worker-{ordinal}.pid"));
    let tmp = dir.join(format!(".worker-{ordinal}.pid.tmp"));
    if std::fs::write(&tmp, pid.to_string()).is_ok() {
        let _ = std::fs::rename(tmp, path);
    }
}
