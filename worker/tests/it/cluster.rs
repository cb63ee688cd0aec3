//! Jobs across worker processes (`weir cluster`): the same output as one process; SIGKILL of
//! any worker, a worker cut off (SIGSTOP) and back, zombie fencing — all through the CLI and
//! the gRPC interface a user (or the operator) uses.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::cli::next_random;

/// A job with a hash edge (key_by → window), a rebalance edge and a broadcast edge.
pub(crate) fn mixed_job(dir: &Path, checkpoint: bool) -> String {
    let chk = if checkpoint {
        format!(
            "checkpoint: {{interval_ms: 100, storage: \"{}\"}}\nrestart: {{attempts: 100, delay_ms: 100, backoff: 1.0}}\n",
            dir.join("chk").display()
        )
    } else {
        String::new()
    };
    format!(
        r#"
name: mixed
parallelism: 3
{chk}sources:
  - id: gen
    connector: datagen
    rows: 120000
    rows_per_second: 40000
    seed: 11
    watermark: {{field: ts, max_out_of_orderness_ms: 5}}
    fields:
      - {{name: ts, kind: timestamp, start: 0, rows_per_ms: 20}}
      - {{name: k, kind: random, min: 0, max: 29}}
      - {{name: v, kind: random, min: 0, max: 999}}
operators:
  - {{id: spread, input: gen, rebalance: true}}
  - {{id: kept, input: spread, filter: "v < 900"}}
  - {{id: keyed, input: kept, key_by: k}}
  - id: win
    input: keyed
    window: {{size_ms: 200, aggregates: [{{kind: count}}, {{kind: sum, field: v}}]}}
  - {{id: everyone, input: gen, broadcast: true}}
  - {{id: rare, input: everyone, filter: "v < 5", parallelism: 2}}
sinks:
  - {{id: out, input: win, connector: file, path: "{}", format: json}}
  - {{id: copies, input: rare, connector: file, path: "{}", format: json}}
"#,
        dir.join("out").display(),
        dir.join("copies").display()
    )
}

/// An unbounded job (2,000 rows a second, keyed, into a blackhole) checkpointing every 100 ms
/// into `chk`: it runs until it is stopped.
pub(crate) fn unbounded_keyed_job(name: &str, chk: &Path) -> String {
    format!(
        "name: {name}
parallelism: 2
checkpoint: {{interval_ms: 100, storage: \"{}\"}}
sources:
  - {{id: gen, connector: datagen, rows_per_second: 2000, fields: [{{name: id, kind: sequence}}]}}
operators:
  - {{id: keyed, input: gen, key_by: id}}
sinks:
  - {{id: out, input: keyed, connector: blackhole}}
",
        chk.display()
    )
}

pub(crate) fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// `weir run` of the job in one process (the reference).
fn single_process(dir: &Path, yaml: &str) -> (Vec<String>, Vec<String>) {
    let file = dir.join("job.yaml");
    std::fs::write(&file, yaml).unwrap();
    let status = weir()
        .arg("run")
        .arg(&file)
        .arg("--progress=never")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    (
        common::committed_lines(&dir.join("out")),
        common::committed_lines(&dir.join("copies")),
    )
}

pub(crate) struct Cluster {
    child: Child,
    pids: PathBuf,
    log: PathBuf,
}

impl Cluster {
    pub(crate) fn start(dir: &Path, yaml: &str, workers: usize, status_port: u16) -> Cluster {
        Self::start_with(dir, yaml, workers, status_port, &[])
    }

    /// Starts `weir cluster` with extra environment variables.
    pub(crate) fn start_with(
        dir: &Path,
        yaml: &str,
        workers: usize,
        status_port: u16,
        env: &[(&str, &str)],
    ) -> Cluster {
        Self::start_args(dir, yaml, workers, status_port, env, &[])
    }

    /// Starts `weir cluster` with extra environment variables and arguments.
    pub(crate) fn start_args(
        dir: &Path,
        yaml: &str,
        workers: usize,
        status_port: u16,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Cluster {
        let file = dir.join("job.yaml");
        std::fs::write(&file, yaml).unwrap();
        let pids = dir.join("pids");
        let log = dir.join("cluster.log");
        let child = weir()
            .arg("cluster")
            .arg(&file)
            .args(["--workers", &workers.to_string()])
            .arg("--pid-dir")
            .arg(&pids)
            .args([
                "--status-port",
                &status_port.to_string(),
                "--heartbeat-timeout-ms",
                "2000",
            ])
            .args(args)
            .env("WEIR_LOG", "info")
            .envs(env.iter().copied())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Cluster { child, pids, log }
    }

    fn pid(&self, ordinal: usize) -> Option<i32> {
        std::fs::read_to_string(self.pids.join(format!("worker-{ordinal}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub(crate) fn signal(&self, ordinal: usize, signal: &str) {
        let pid = self.pid(ordinal).expect("worker pid");
        let _ = Command::new("kill").args([signal, &pid.to_string()]).status();
    }

    pub(crate) fn wait(mut self, limit: Duration) -> bool {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                panic!(
                    "the cluster did not finish within {limit:?}; log tail:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        // The workers are the cluster's children (killed with it); stop any left over.
        for i in 0..8 {
            if let Some(pid) = self.pid(i) {
                let _ = Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes());
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

pub(crate) fn status(port: u16) -> Option<serde_json::Value> {
    serde_json::from_str(&http_get(port, "/status")).ok()
}

pub(crate) fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn three_workers_give_the_output_of_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let one = tmp.path().join("one");
    std::fs::create_dir_all(&one).unwrap();
    let (out, copies) = single_process(&one, &mixed_job(&one, false));
    assert_eq!(out.len(), 30 * 30, "30 windows × 30 keys");
    assert!(!copies.is_empty());

    let three = tmp.path().join("three");
    std::fs::create_dir_all(&three).unwrap();
    let port = free_port();
    let cluster = Cluster::start(&three, &mixed_job(&three, false), 3, port);
    let log_path = cluster.log.clone();
    assert!(
        cluster.wait(Duration::from_secs(60)),
        "{}",
        std::fs::read_to_string(log_path).unwrap_or_default()
    );
    assert_eq!(
        common::committed_lines(&three.join("out")),
        out,
        "hash and rebalance edges"
    );
    assert_eq!(common::committed_lines(&three.join("copies")), copies, "broadcast edge");
}

#[test]
fn sigkill_of_any_worker_at_random_points_loses_and_repeats_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let one = tmp.path().join("one");
    std::fs::create_dir_all(&one).unwrap();
    let (out, copies) = single_process(&one, &mixed_job(&one, true));

    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..3 {
        let dir = tmp.path().join(format!("killed-{round}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = Cluster::start(&dir, &mixed_job(&dir, true), 3, free_port());
        let mut kills = Vec::new();
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(400 + next_random(&mut seed) % 900));
            let victim = (next_random(&mut seed) % 3) as usize;
            if cluster.child.try_wait().ok().flatten().is_none() && cluster.pid(victim).is_some() {
                cluster.signal(victim, "-9");
                kills.push(victim);
            }
        }
        let log = cluster.log.clone();
        assert!(
            cluster.wait(Duration::from_secs(120)),
            "round {round} (killed {kills:?}) failed:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        assert!(!kills.is_empty());
        assert_eq!(
            common::committed_lines(&dir.join("out")),
            out,
            "round {round}: SIGKILL of workers {kills:?}: keyed windows exactly once"
        );
        assert_eq!(
            common::committed_lines(&dir.join("copies")),
            copies,
            "round {round}: broadcast output exactly once"
        );
    }
}

#[test]
fn a_worker_cut_off_and_back_is_fenced_and_the_job_recovers() {
    use weir_proto::rpc;
    let tmp = tempfile::tempdir().unwrap();
    let one = tmp.path().join("one");
    std::fs::create_dir_all(&one).unwrap();
    let (out, copies) = single_process(&one, &mixed_job(&one, true));

    let dir = tmp.path().join("cut");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let cluster = Cluster::start(&dir, &mixed_job(&dir, true), 3, port);
    wait_for("the job to run", Duration::from_secs(30), || {
        status(port).is_some_and(|s| s["state"] == "running" && s["last_checkpoint"].as_u64() > Some(2))
    });
    let before = status(port).unwrap()["generation"].as_u64().unwrap();
    // What an operator or a person sees: `weir status`, and Prometheus text on /metrics.
    let peers = read_peers(&cluster.log());
    let shown = weir().args(["status", &peers[0]]).output().unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success() && text.contains("job mixed: running") && text.contains("win"),
        "{text}"
    );
    let metrics = http_get(port, "/metrics");
    assert!(
        metrics.contains("weir_records_in_total{job=\"mixed\",node=\"win\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("weir_checkpoints_completed_total"), "{metrics}");
    for restored in ["weir_restore_local_bytes_total", "weir_restore_remote_bytes_total"] {
        assert!(metrics.contains(restored), "{metrics}");
    }
    // Cut worker 2 off: it stops answering (and sending) without its connections closing.
    cluster.signal(2, "-STOP");
    wait_for(
        "the master to move past the silent worker",
        Duration::from_secs(20),
        || status(port).is_some_and(|s| s["generation"].as_u64() > Some(before) || s["state"] == "waiting-for-workers"),
    );
    // A zombie of the old generation: the master refuses its reports and acknowledgements…
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let channel = weir::cluster::channel_to(&peers[0]).unwrap();
        let mut master = rpc::coordinator_client::CoordinatorClient::new(channel);
        let refused = master
            .report(rpc::TaskReport {
                ordinal: 2,
                generation: before,
                kind: rpc::task_report::Kind::Finished as i32,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
        let refused = master
            .acknowledge(rpc::CheckpointAck {
                generation: before,
                checkpoint_id: 999,
                uid: "win".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
    });
    // Back on the network: the job recovers from the newest checkpoint.
    std::thread::sleep(Duration::from_millis(500));
    cluster.signal(2, "-CONT");
    wait_for("a newer generation to run", Duration::from_secs(30), || {
        status(port).is_some_and(|s| s["generation"].as_u64() > Some(before) && s["state"] == "running")
            || cluster_done(&dir)
    });
    // The restore is reported (from checkpoint storage: this job keeps its state in memory, which
    // keeps no local copies), unless the job ended first.
    wait_for("the restore to be reported", Duration::from_secs(10), || {
        cluster_done(&dir) || status(port).is_some_and(|s| s["restore_remote_bytes"].as_u64() > Some(0))
    });
    // …and a worker of the new generation refuses the old generation's data.
    rt.block_on(async {
        let channel = weir::cluster::channel_to(&peers[1]).unwrap();
        let mut exchange = rpc::exchange_client::ExchangeClient::new(channel);
        let open = rpc::Frame {
            kind: Some(rpc::frame::Kind::Open(rpc::Open {
                job: "mixed".into(),
                generation: before,
                node: 3,
                input: 0,
                from_subtask: 2,
                to_subtask: 1,
            })),
        };
        let refused = exchange.channel(futures::stream::iter(vec![open])).await;
        if let Err(s) = refused {
            assert_eq!(s.code(), tonic::Code::FailedPrecondition, "{s:?}");
        } else {
            // The job may already have ended and the worker left.
            assert!(cluster_done(&dir), "old generation's channel accepted");
        }
    });
    let log = cluster.log.clone();
    assert!(
        cluster.wait(Duration::from_secs(120)),
        "{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    assert_eq!(
        common::committed_lines(&dir.join("out")),
        out,
        "after the cut: exactly once"
    );
    assert_eq!(common::committed_lines(&dir.join("copies")), copies);
}

fn cluster_done(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cluster.log")).is_ok_and(|l| l.contains("worker 0: the job ended"))
}

/// The worker addresses `weir cluster` printed.
pub(crate) fn read_peers(log: &str) -> Vec<String> {
    let line = log.lines().find(|l| l.contains("workers on ")).expect("cluster banner");
    let list = line.split("workers on ").nth(1).unwrap().split(';').next().unwrap();
    list.split(", ").map(str::to_string).collect()
}

#[test]
fn a_cluster_gives_up_after_the_restart_strategy_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = mixed_job(tmp.path(), true).replace("attempts: 100", "attempts: 0");
    let cluster = Cluster::start(tmp.path(), &yaml, 2, free_port());
    wait_for("the first checkpoint", Duration::from_secs(30), || {
        std::fs::read_to_string(tmp.path().join("cluster.log")).is_ok_and(|l| l.contains("checkpoint complete"))
    });
    cluster.signal(1, "-9");
    let log = cluster.log.clone();
    assert!(!cluster.wait(Duration::from_secs(60)), "the job must fail");
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("the job failed after 0 restarts"), "{text}");
}

/// A job that cannot run against its state — here a generator checkpointed at parallelism 2
/// and resumed at 3 (its positions do not redistribute) — fails at once with the reason instead
/// of restarting from the same checkpoint for ever (what lets the operator roll such a rescale
/// back, rather than wait for its deadline).
#[test]
fn a_job_that_cannot_resume_its_state_fails_at_once_instead_of_restarting() {
    let tmp = tempfile::tempdir().unwrap();
    let chk = tmp.path().join("chk");
    let yaml = |p: usize| {
        format!(
            "name: fixed\nparallelism: {p}\ncheckpoint: {{interval_ms: 100, storage: \"{}\"}}\nrestart: {{attempts: 100, delay_ms: 100, backoff: 1.0}}\nsources:\n  - {{id: gen, connector: datagen, rows_per_second: 500, fields: [{{name: id, kind: sequence}}]}}\nsinks:\n  - {{id: out, input: gen, connector: blackhole}}\n",
            chk.display()
        )
    };
    let (first, second) = (tmp.path().join("first"), tmp.path().join("second"));
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    let two = Cluster::start(&first, &yaml(2), 2, free_port());
    wait_for("a checkpoint at parallelism 2", Duration::from_secs(30), || {
        two.log().contains("checkpoint complete")
    });
    drop(two);
    let three = Cluster::start(&second, &yaml(3), 3, free_port());
    let log = three.log.clone();
    assert!(!three.wait(Duration::from_secs(60)), "the job must fail");
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("cannot resume its positions at 3"), "{text}");
    assert!(text.contains("not restarted"), "{text}");
    assert!(!text.contains("restarting from the newest checkpoint"), "{text}");
}

/// A worker of an older deployment is refused; one of a newer deployment waits for its own
/// coordinator (a rolling change may start it first); of two processes with one ordinal, the older one
/// stops (the newer attached after it) instead of attaching back and forth: what keeps a
/// replaced pod, or a pod deleted by force whose container still runs, out of the job.
#[test]
fn workers_of_another_deployment_and_superseded_workers_stop() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("job.yaml");
    std::fs::write(
        &file,
        "name: fenced
parallelism: 2
sources:
  - {id: gen, connector: datagen, rows_per_second: 100}
sinks:
  - {id: out, input: gen, connector: blackhole}
",
    )
    .unwrap();
    let peers = format!("127.0.0.1:{},127.0.0.1:{}", free_port(), free_port());
    // Two processes with one ordinal share its advertised address but not a port here (in
    // Kubernetes they are two pods).
    let worker = |ordinal: &str, deployment: &str, log: &str| {
        let mut cmd = weir();
        cmd.arg("worker")
            .arg(&file)
            .args(["--ordinal", ordinal, "--peers", &peers, "--deployment", deployment]);
        if ordinal != "0" {
            cmd.args(["--listen", &format!("127.0.0.1:{}", free_port())]);
        }
        cmd.env("WEIR_LOG", "info")
            .stderr(std::fs::File::create(dir.path().join(log)).unwrap())
            .spawn()
            .unwrap()
    };
    let mut master = worker("0", "7", "w0.log");
    // Worker 1 of deployment 6 is refused and exits, naming both deployments.
    let stale = worker("1", "6", "stale.log").wait_with_output().unwrap();
    assert!(!stale.status.success());
    let log = std::fs::read_to_string(dir.path().join("stale.log")).unwrap();
    assert!(
        log.contains("belongs to deployment 6; this coordinator runs deployment 7"),
        "{log}"
    );

    // Two processes with ordinal 1: the first is superseded by the second and stops.
    let mut first = worker("1", "7", "first.log");
    wait_for("the first worker attached", Duration::from_secs(20), || {
        std::fs::read_to_string(dir.path().join("first.log")).is_ok_and(|l| l.contains("attached to the coordinator"))
    });
    let mut second = worker("1", "7", "second.log");
    let status = first.wait().unwrap();
    assert!(!status.success());
    let log = std::fs::read_to_string(dir.path().join("first.log")).unwrap();
    assert!(log.contains("another worker attached as ordinal 1"), "{log}");
    let second_log = std::fs::read_to_string(dir.path().join("second.log")).unwrap();
    assert!(!second_log.contains("superseded"), "{second_log}");
    let _ = second.kill();
    let _ = second.wait();

    // Worker 1 of deployment 8, started before its coordinator replaced deployment 7's (a
    // rolling change starts new pods before it replaces old ones): told to wait, it stays, and
    // attaches once deployment 8's coordinator is up.
    let mut early = worker("1", "8", "early.log");
    wait_for(
        "deployment 7 told the newer worker to wait",
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(dir.path().join("early.log"))
                .is_ok_and(|l| l.contains("newer than this coordinator's 7; it waits for its own"))
        },
    );
    assert!(matches!(early.try_wait(), Ok(None)), "the newer worker did not leave");
    let _ = master.kill();
    let _ = master.wait();
    master = worker("0", "8", "w0-new.log");
    wait_for(
        "the newer worker attached to its coordinator",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(dir.path().join("early.log"))
                .is_ok_and(|l| l.contains("attached to the coordinator"))
        },
    );

    for c in [&mut early, &mut master] {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A deployment's key groups (a StreamJob's `maxParallelism`, as `WEIR_MAX_PARALLELISM`) that
/// the job file contradicts are refused before the worker starts, naming both values.
#[test]
fn a_worker_refuses_a_job_whose_max_parallelism_differs_from_the_deployments() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("job.yaml");
    std::fs::write(
        &file,
        "name: j\nmax_parallelism: 64\nsources:\n  - {id: n, connector: datagen}\nsinks:\n  - {id: out, input: n, connector: blackhole}\n",
    )
    .unwrap();
    let out = weir()
        .arg("worker")
        .arg(&file)
        .args(["--ordinal", "0", "--peers", &format!("127.0.0.1:{}", free_port())])
        .env("WEIR_MAX_PARALLELISM", "128")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the job file sets 64") && err.contains("says 128"),
        "{err}"
    );
}

/// Savepoints by trigger and poll (what the operator uses, as Flink's REST API): the trigger
/// answers at once with its id, triggering the same id again takes no second savepoint, the
/// status says pending / completed with the path, an unknown id is NOT_FOUND, and a
/// stop-with-savepoint trigger stops the job.
#[test]
fn savepoints_are_triggered_then_polled_and_a_repeated_trigger_takes_one() {
    use weir_proto::rpc;
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    // Unbounded: the job runs until the stop-with-savepoint.
    let yaml = unbounded_keyed_job("triggered", &tmp.path().join("chk"));
    let cluster = Cluster::start(tmp.path(), &yaml, 2, port);
    wait_for("the job to run", Duration::from_secs(30), || {
        status(port).is_some_and(|s| s["state"] == "running" && s["last_checkpoint"].as_u64() > Some(0))
    });
    let peers = read_peers(&cluster.log());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let channel = weir::cluster::channel_to(&peers[0]).unwrap();
        let mut master = rpc::coordinator_client::CoordinatorClient::new(channel);
        let trigger = |id: &str, stop: bool| rpc::SavepointRequest {
            stop,
            trigger_id: id.into(),
        };
        let poll = |mut m: rpc::coordinator_client::CoordinatorClient<_>, id: &'static str| async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                let s = m
                    .savepoint_status(rpc::SavepointTrigger { id: id.into() })
                    .await
                    .unwrap()
                    .into_inner();
                if s.kind() != rpc::savepoint_state::Kind::Pending || std::time::Instant::now() > deadline {
                    return s;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let first = master
            .trigger_savepoint(trigger("t1", false))
            .await
            .unwrap()
            .into_inner();
        let again = master
            .trigger_savepoint(trigger("t1", false))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((first.id.as_str(), again.id.as_str()), ("t1", "t1"));
        let done = poll(master.clone(), "t1").await;
        assert_eq!(done.kind(), rpc::savepoint_state::Kind::Completed, "{done:?}");
        assert!(done.path.contains("/savepoints/savepoint-"), "{done:?}");
        let unknown = master
            .savepoint_status(rpc::SavepointTrigger { id: "nope".into() })
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::NotFound);
        // Polled again later, the same savepoint: one was taken for both triggers.
        let later = poll(master.clone(), "t1").await;
        assert_eq!(later.path, done.path);
        master.trigger_savepoint(trigger("t2", true)).await.unwrap();
        let stopped = poll(master.clone(), "t2").await;
        assert_eq!(stopped.kind(), rpc::savepoint_state::Kind::Completed, "{stopped:?}");
        assert_ne!(stopped.path, done.path);
    });
    wait_for("the job stopped", Duration::from_secs(30), || {
        status(port).is_some_and(|s| s["state"] == "stopped")
    });
    drop(cluster);
}

#[test]
fn weir_cluster_autoscale_scales_a_light_job_down_and_its_output_stays_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    // The generator keeps its two subtasks (its positions cannot be redistributed); the
    // operators after it rescale.
    let job = |d: &Path| {
        mixed_job(d, true).replace("rows: 120000", "rows: 400000").replace(
            "    connector: datagen\n",
            "    connector: datagen\n    parallelism: 2\n",
        )
    };
    let (reference, copies_ref) = {
        let d = tmp.path().join("reference");
        std::fs::create_dir_all(&d).unwrap();
        single_process(&d, &job(&d))
    };
    let dir = tmp.path().join("scaled");
    std::fs::create_dir_all(&dir).unwrap();
    // 40,000 rows a second keep two workers far from busy: after a 2 s window and a 2 s
    // scale-down delay the autoscaler asks for one.
    let yaml = job(&dir);
    assert!(yaml.contains("parallelism: 2\n    rows"), "{yaml}");
    let cluster = Cluster::start_args(
        &dir,
        &yaml,
        2,
        free_port(),
        &[],
        &[
            "--autoscale",
            r#"{"metricWindowSeconds": 2, "scaleUpCooldownSeconds": 1, "scaleDownDelaySeconds": 2, "catchUpSeconds": 10}"#,
        ],
    );
    let log_of = cluster.log.clone();
    assert!(
        cluster.wait(Duration::from_secs(120)),
        "{}",
        std::fs::read_to_string(&log_of).unwrap_or_default()
    );
    let log = std::fs::read_to_string(&log_of).unwrap();
    assert!(log.contains("rescaling 2 → 1 workers"), "{log}");
    assert!(log.contains("autoscaler: scale down 2 → 1"), "{log}");
    let mut out = common::committed_lines(&dir.join("out"));
    let mut copies = common::committed_lines(&dir.join("copies"));
    let (mut reference, mut copies_ref) = (reference, copies_ref);
    for v in [&mut out, &mut copies, &mut reference, &mut copies_ref] {
        v.sort();
    }
    assert_eq!(out.len(), reference.len(), "every window once across the rescale");
    assert_eq!(out, reference);
    assert_eq!(copies, copies_ref);
}
