//! Helpers for the tests against a real control plane (started by `scripts/kube-up`, which
//! `scripts/test` runs): kubectl, the operator binary as a child process, waiting.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

/// The control plane's folder and admin kubeconfig.
pub struct Cluster {
    /// `WEIR_KUBE_DIR`.
    pub dir: PathBuf,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
}

/// The control plane the test run started; fails loudly when there is none.
pub fn cluster() -> Cluster {
    let dir = std::env::var("WEIR_KUBE_DIR").unwrap_or_default();
    assert!(
        !dir.is_empty() && Path::new(&dir).join("admin.kubeconfig").exists(),
        "no Kubernetes control plane: run `eval \"$(scripts/kube-up)\"` first (scripts/test does)"
    );
    let dir = PathBuf::from(dir);
    let kubeconfig = dir.join("admin.kubeconfig");
    static CRD: Once = Once::new();
    CRD.call_once(|| {
        let c = Cluster {
            dir: dir.clone(),
            kubeconfig: kubeconfig.clone(),
        };
        c.kubectl(&["apply", "--server-side", "-f", &repo("crds/streamjob.yaml")])
            .expect("install the CRD");
        c.kubectl(&[
            "wait",
            "--for",
            "condition=Established",
            "crd/streamjobs.weir.dev",
            "--timeout=30s",
        ])
        .expect("the CRD is established");
    });
    Cluster { dir, kubeconfig }
}

/// A path in the repository.
pub fn repo(rel: &str) -> String {
    format!("{}/../{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// A namespace name of its own for a test.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{}", std::process::id() % 10000, nanos % 100000)
}

impl Cluster {
    /// Runs kubectl; `Ok(stdout)` or `Err(stderr)`.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        self.kubectl_in(args, None)
    }

    /// Runs kubectl with `stdin`.
    pub fn kubectl_in(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        run_with(
            Command::new("kubectl").args(args).env("KUBECONFIG", &self.kubeconfig),
            stdin,
        )
    }

    /// `kubectl apply -f -` of `yaml`.
    pub fn apply(&self, yaml: &str) -> Result<String, String> {
        self.kubectl_in(&["apply", "-f", "-"], Some(yaml))
    }

    /// `kubectl get … -o json`, parsed (`None` when not found).
    pub fn get(&self, ns: &str, what: &str) -> Option<serde_json::Value> {
        let mut args = vec!["get", "-n", ns];
        args.extend(what.split_whitespace());
        args.extend(["-o", "json"]);
        let out = self.kubectl(&args).ok()?;
        serde_json::from_str(&out).ok()
    }

    /// A StreamJob's status.
    pub fn status(&self, ns: &str, job: &str) -> serde_json::Value {
        self.get(ns, &format!("streamjob/{job}"))
            .and_then(|j| j.get("status").cloned())
            .unwrap_or_default()
    }

    /// What a failed wait on real pods needs to be understood: the namespace's pods, their
    /// events and the last lines of each pod's log.
    pub fn diagnose(&self, ns: &str) -> String {
        let mut out = String::new();
        let show = |r: Result<String, String>| r.unwrap_or_else(|e| e);
        out += &show(self.kubectl(&["get", "pods", "-o", "wide", "-n", ns]));
        out += &show(self.kubectl(&["get", "events", "-n", ns, "--sort-by=.lastTimestamp"]));
        let names = show(self.kubectl(&["get", "pods", "-n", ns, "-o", "name"]));
        for pod in names.lines().filter(|l| !l.is_empty()) {
            out += &format!("--- {pod}\n");
            out += &show(self.kubectl(&["logs", "--tail=40", "-n", ns, pod]));
        }
        out += &node_pod_logs(ns);
        out
    }

    /// A job's pods that are not being deleted, as JSON.
    pub fn live_pods(&self, ns: &str, job: &str) -> Vec<serde_json::Value> {
        let list = self.get(ns, &format!("pods -l weir.dev/job={job}")).unwrap_or_default();
        list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect()
    }

    /// Pods of a job: (name, deployment serial, ready).
    pub fn pods(&self, ns: &str, job: &str) -> Vec<(String, String, bool)> {
        self.live_pods(ns, job)
            .iter()
            .map(|p| {
                let ready = p["status"]["conditions"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
                (
                    p["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                    p["metadata"]["labels"]["weir.dev/deployment"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    ready,
                )
            })
            .collect()
    }

    /// `kubectl apply -n ns -f -` of `yaml`.
    pub fn apply_in(&self, ns: &str, yaml: &str) -> Result<String, String> {
        self.kubectl_in(&["apply", "-n", ns, "-f", "-"], Some(yaml))
    }

    /// A merge patch of StreamJob `job`'s spec, e.g. `{"state":"suspended"}`.
    pub fn patch_spec(&self, ns: &str, job: &str, spec: &str) {
        self.kubectl(&[
            "patch",
            "-n",
            ns,
            &format!("streamjob/{job}"),
            "--type=merge",
            "-p",
            &format!(r#"{{"spec":{spec}}}"#),
        ])
        .unwrap_or_else(|e| panic!("patch {job} with {spec}: {e}"));
    }

    /// Creates a namespace (deleted again on drop).
    pub fn namespace(&self, prefix: &str) -> Namespace<'_> {
        let name = unique(prefix);
        self.kubectl(&["create", "namespace", &name]).expect("create namespace");
        Namespace { cluster: self, name }
    }

    /// Starts the operator binary watching `ns` with `kubeconfig` (the admin's by default).
    pub fn operator(&self, ns: &str, kubeconfig: Option<&Path>) -> Operator {
        self.operator_with(ns, kubeconfig, &[])
    }

    /// [`Cluster::operator`] with more arguments (leader election's).
    pub fn operator_with(&self, ns: &str, kubeconfig: Option<&Path>, args: &[&str]) -> Operator {
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_weir-operator"))
            .args(["--namespaces", ns, "--http", "127.0.0.1:0"])
            .args(args)
            .env("KUBECONFIG", kubeconfig.unwrap_or(&self.kubeconfig))
            .env("WEIR_LOG", "info,kube=warn")
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start weir-operator");
        Operator { child, log }
    }
}

/// A test's namespace.
pub struct Namespace<'a> {
    cluster: &'a Cluster,
    /// Its name.
    pub name: String,
}

impl Drop for Namespace<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("WEIR_KEEP_FAILED").is_some() {
            eprintln!("kept namespace {} (WEIR_KEEP_FAILED)", self.name);
            return;
        }
        let _ = self
            .cluster
            .kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
    }
}

/// The operator as a child process (killed on drop; its log printed when the test failed).
pub struct Operator {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Operator {
    /// The operator's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// `GET path` on the operator's HTTP endpoint (its port is in its first log line).
    pub fn http_get(&self, path: &str) -> String {
        use std::io::Read;
        let addr = wait_for("the operator's HTTP address", Duration::from_secs(20), || {
            let log = self.log();
            let at = log.find("http=")? + 5;
            Some(log[at..].split_whitespace().next()?.to_string())
        });
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        conn.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
            .unwrap();
        let mut out = String::new();
        conn.read_to_string(&mut out).unwrap();
        out
    }

    /// Kills it (SIGKILL: no chance to tidy up).
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- operator log\n{}", self.log());
        }
    }
}

/// Runs `cmd` (with `stdin`); `Ok(stdout)` or `Err(stderr)`.
pub fn run_with(cmd: &mut Command, stdin: Option<&str>) -> Result<String, String> {
    let mut child = cmd
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

/// Polls `check` until it gives a value; panics naming `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, check: impl FnMut() -> Option<T>) -> T {
    wait_or_report(what, timeout, check, || None)
}

/// [`wait_for`], printing what `report` says before it gives up.
fn wait_or_report<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
    report: impl Fn() -> Option<String>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() >= timeout {
            if let Some(r) = report() {
                eprintln!("--- waiting for {what} timed out:\n{r}");
            }
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// [`wait_for`] on real pods: when it gives up, it first prints what the namespace's pods,
/// events and pod logs say (a pod that never starts leaves no log of its own).
pub fn wait_for_in<T>(c: &Cluster, ns: &str, what: &str, timeout: Duration, check: impl FnMut() -> Option<T>) -> T {
    wait_or_report(what, timeout, check, || {
        Some(format!("namespace {ns}:\n{}", c.diagnose(ns)))
    })
}

/// A StreamJob manifest.
pub fn stream_job(name: &str, parallelism: u32, upgrade_mode: &str, pipeline: &str) -> String {
    let pipeline = pipeline
        .lines()
        .map(|l| format!("      {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        "apiVersion: weir.dev/v1alpha1
kind: StreamJob
metadata:
  name: {name}
spec:
  image: weir-worker:dev
  parallelism: {parallelism}
  upgradeMode: {upgrade_mode}
  checkpoint:
    intervalMs: 1000
    storage: s3://weir-test/checkpoints
  job:
    pipeline: |
{pipeline}
"
    )
}

/// A small pipeline.
pub const PIPELINE: &str = "name: clicks
sources:
  - id: numbers
    connector: datagen
operators:
  - id: by_key
    input: numbers
    key_by: id
sinks:
  - id: out
    input: by_key
    connector: blackhole";

/// The last lines of every container log the node kept for `ns`'s pods, replaced ones included
/// (`$WEIR_NODE_DIR/pod-logs/<ns>_<pod>_<uid>/<container>/<n>.log`, the kubelet's
/// `podLogsDir`): read from disk, as the API server cannot fetch logs from this node.
fn node_pod_logs(ns: &str) -> String {
    let Ok(node) = std::env::var("WEIR_NODE_DIR") else {
        return String::new();
    };
    let root = std::path::Path::new(&node).join("pod-logs");
    let mut pods: Vec<std::path::PathBuf> = std::fs::read_dir(&root)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    pods.retain(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{ns}_")))
    });
    pods.sort();
    let mut out = String::new();
    for pod in pods {
        for container in std::fs::read_dir(&pod).into_iter().flatten().flatten() {
            let mut logs: Vec<_> = std::fs::read_dir(container.path())
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            logs.sort();
            for log in logs {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                out += &format!("--- node log {}\n", log.display());
                for l in &lines[lines.len().saturating_sub(40)..] {
                    out += l;
                    out += "\n";
                }
            }
        }
    }
    out
}

/// A stand-in for a job's coordinator on this machine, for the control plane's pods (which run
/// no containers): it answers `Status` with the phase a test sets and `Savepoint` with a path, so
/// the operator's decisions that wait for the coordinator's word can be driven. A StreamJob
/// points the operator at it with the `weir.dev/coordinator-address` annotation.
pub struct FakeCoordinator {
    /// `127.0.0.1:port`.
    pub address: String,
    state: FakeState,
    triggers: Triggers,
    progress: Progress,
    disposed: Disposed,
    load: Load,
    _runtime: tokio::runtime::Runtime,
}

/// Triggered savepoints: id → (status polls left before it completes, path, whether it stops
/// the job).
type Triggers = std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, (u32, String, bool)>>>;

/// The fake's phase, last error and last savepoint.
type FakeState = std::sync::Arc<std::sync::Mutex<(weir_proto::rpc::JobPhase, Option<String>, Option<String>)>>;

/// The fake's restart count, newest checkpoint id, and whether each status call completes a
/// checkpoint.
type Progress = std::sync::Arc<std::sync::Mutex<(u32, u64, bool)>>;

#[derive(Clone)]
struct FakeService {
    state: FakeState,
    triggers: Triggers,
    progress: Progress,
    disposed: Disposed,
    load: Load,
}

/// The load the fake reports (see [`FakeCoordinator::set_load`]): subtasks of the keyed vertex,
/// their busy share, records per second each, since when.
type Load = std::sync::Arc<std::sync::Mutex<Option<(u32, f64, f64, std::time::Instant)>>>;

/// The running totals of a job under `load` now: a source vertex and a keyed vertex `win` of
/// `subtasks` subtasks, each busy `busy` of the time at `rate` records per second.
fn subtask_totals(load: &Load) -> Vec<serde_json::Value> {
    let Some((subtasks, busy, rate, since)) = *load.lock().unwrap() else {
        return Vec::new();
    };
    let elapsed = since.elapsed().as_millis() as u64 + 1;
    let records = (rate * elapsed as f64 / 1000.0) as u64;
    let mut out = Vec::new();
    for i in 0..subtasks as usize {
        out.push(
            serde_json::json!({"vertex": "src", "subtask": i, "source": true, "records_in": 0,
            "records_out": records, "idle_ms": 0, "backpressured_ms": 0, "elapsed_ms": elapsed}),
        );
        out.push(
            serde_json::json!({"vertex": "win", "subtask": i, "source": false, "records_in": records,
            "records_out": 0, "idle_ms": ((1.0 - busy) * elapsed as f64) as u64, "backpressured_ms": 0,
            "elapsed_ms": elapsed}),
        );
    }
    out
}

/// What it was asked to dispose, in order.
type Disposed = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

#[tonic::async_trait]
impl weir_proto::rpc::coordinator_server::Coordinator for FakeService {
    type AttachStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<weir_proto::rpc::Command, tonic::Status>> + Send>>;

    async fn attach(
        &self,
        _: tonic::Request<weir_proto::rpc::RegisterRequest>,
    ) -> Result<tonic::Response<Self::AttachStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("a fake coordinator"))
    }

    async fn heartbeat(
        &self,
        _: tonic::Request<weir_proto::rpc::HeartbeatRequest>,
    ) -> Result<tonic::Response<weir_proto::rpc::HeartbeatReply>, tonic::Status> {
        Err(tonic::Status::unimplemented("a fake coordinator"))
    }

    async fn acknowledge(
        &self,
        _: tonic::Request<weir_proto::rpc::CheckpointAck>,
    ) -> Result<tonic::Response<weir_proto::rpc::Empty>, tonic::Status> {
        Err(tonic::Status::unimplemented("a fake coordinator"))
    }

    async fn report(
        &self,
        _: tonic::Request<weir_proto::rpc::TaskReport>,
    ) -> Result<tonic::Response<weir_proto::rpc::Empty>, tonic::Status> {
        Err(tonic::Status::unimplemented("a fake coordinator"))
    }

    async fn savepoint(
        &self,
        request: tonic::Request<weir_proto::rpc::SavepointRequest>,
    ) -> Result<tonic::Response<weir_proto::rpc::SavepointReply>, tonic::Status> {
        let mut state = self.state.lock().unwrap();
        if state.0 != weir_proto::rpc::JobPhase::Running {
            return Err(tonic::Status::failed_precondition("the job is not running"));
        }
        if request.into_inner().stop {
            state.0 = weir_proto::rpc::JobPhase::Stopped;
        }
        Ok(tonic::Response::new(weir_proto::rpc::SavepointReply {
            path: "s3://weir-test/checkpoints/clicks/sp-1".into(),
        }))
    }

    async fn trigger_savepoint(
        &self,
        request: tonic::Request<weir_proto::rpc::SavepointRequest>,
    ) -> Result<tonic::Response<weir_proto::rpc::SavepointTrigger>, tonic::Status> {
        let request = request.into_inner();
        let state = self.state.lock().unwrap();
        let mut triggers = self.triggers.lock().unwrap();
        if !triggers.contains_key(&request.trigger_id) {
            if state.0 != weir_proto::rpc::JobPhase::Running {
                return Err(tonic::Status::failed_precondition("the job is not running"));
            }
            // Taken over two status polls, as a real one takes a while.
            let path = format!(
                "s3://weir-test/checkpoints/clicks/savepoints/savepoint-{}",
                triggers.len() + 1
            );
            triggers.insert(request.trigger_id.clone(), (2, path, request.stop));
        }
        Ok(tonic::Response::new(weir_proto::rpc::SavepointTrigger {
            id: request.trigger_id,
        }))
    }

    async fn savepoint_status(
        &self,
        request: tonic::Request<weir_proto::rpc::SavepointTrigger>,
    ) -> Result<tonic::Response<weir_proto::rpc::SavepointState>, tonic::Status> {
        let mut reply = weir_proto::rpc::SavepointState::default();
        let stopped_with = {
            let mut triggers = self.triggers.lock().unwrap();
            let Some((polls, path, stop)) = triggers.get_mut(&request.into_inner().id) else {
                return Err(tonic::Status::not_found("never triggered"));
            };
            if *polls > 0 {
                *polls -= 1;
                reply.set_kind(weir_proto::rpc::savepoint_state::Kind::Pending);
                (*polls == 0 && *stop).then(|| path.clone())
            } else {
                reply.set_kind(weir_proto::rpc::savepoint_state::Kind::Completed);
                reply.path = path.clone();
                None
            }
        };
        if let Some(path) = stopped_with {
            // Complete: a stop-with-savepoint stops the job now, as a real one does.
            let mut state = self.state.lock().unwrap();
            state.0 = weir_proto::rpc::JobPhase::Stopped;
            state.2 = Some(path);
        }
        Ok(tonic::Response::new(reply))
    }

    async fn dispose_snapshots(
        &self,
        request: tonic::Request<weir_proto::rpc::DisposeRequest>,
    ) -> Result<tonic::Response<weir_proto::rpc::DisposeReply>, tonic::Status> {
        let r = request.into_inner();
        let disposed: Vec<String> = r.savepoints.into_iter().chain(r.checkpoint_dirs).collect();
        self.disposed.lock().unwrap().extend(disposed.iter().cloned());
        Ok(tonic::Response::new(weir_proto::rpc::DisposeReply { disposed }))
    }

    async fn cancel(
        &self,
        _: tonic::Request<weir_proto::rpc::CancelRequest>,
    ) -> Result<tonic::Response<weir_proto::rpc::Empty>, tonic::Status> {
        Err(tonic::Status::unimplemented("a fake coordinator"))
    }

    async fn status(
        &self,
        _: tonic::Request<weir_proto::rpc::StatusRequest>,
    ) -> Result<tonic::Response<weir_proto::rpc::JobStatus>, tonic::Status> {
        let (phase, error, savepoint) = self.state.lock().unwrap().clone();
        if phase == weir_proto::rpc::JobPhase::Unspecified {
            return Err(tonic::Status::unavailable("silent"));
        }
        let details = serde_json::json!({ "last_error": error, "last_savepoint": savepoint });
        let (restarts, last_checkpoint) = {
            let mut p = self.progress.lock().unwrap();
            if p.2 {
                p.1 += 1;
            }
            (p.0, p.1)
        };
        let mut reply = weir_proto::rpc::JobStatus {
            job: "clicks".into(),
            details_json: details.to_string().into_bytes(),
            subtasks_json: serde_json::to_vec(&subtask_totals(&self.load)).unwrap(),
            restarts,
            last_checkpoint,
            ..Default::default()
        };
        reply.set_phase(phase);
        Ok(tonic::Response::new(reply))
    }
}

impl FakeCoordinator {
    /// One answering `phase`.
    pub fn start(phase: weir_proto::rpc::JobPhase) -> FakeCoordinator {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = std::sync::Arc::new(std::sync::Mutex::new((phase, None, None)));
        let triggers = Triggers::default();
        let progress = Progress::default();
        let disposed = Disposed::default();
        let load = Load::default();
        let service = FakeService {
            state: state.clone(),
            triggers: triggers.clone(),
            progress: progress.clone(),
            disposed: disposed.clone(),
            load: load.clone(),
        };
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let address = listener.local_addr().unwrap().to_string();
        runtime.spawn(
            tonic::transport::Server::builder()
                .add_service(weir_proto::rpc::coordinator_server::CoordinatorServer::new(service))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        FakeCoordinator {
            address,
            state,
            triggers,
            progress,
            disposed,
            load,
            _runtime: runtime,
        }
    }

    /// From now on it reports a keyed vertex of `subtasks` subtasks, each busy `busy` of the
    /// time at `rate` records per second (and a source reading as much), as running totals.
    pub fn set_load(&self, subtasks: u32, busy: f64, rate: f64) {
        *self.load.lock().unwrap() = Some((subtasks, busy, rate, std::time::Instant::now()));
    }

    /// What it was asked to dispose so far.
    pub fn disposed(&self) -> Vec<String> {
        self.disposed.lock().unwrap().clone()
    }

    /// Ids of the savepoints triggered so far, with whether each stops the job.
    pub fn triggers(&self) -> Vec<(String, bool)> {
        self.triggers
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.2))
            .collect()
    }

    /// From now on it reports `restarts`, and completes a checkpoint at each status call while
    /// `checkpointing`.
    pub fn set_progress(&self, restarts: u32, checkpointing: bool) {
        let mut p = self.progress.lock().unwrap();
        p.0 = restarts;
        p.2 = checkpointing;
    }

    /// Savepoints triggered so far (each id once).
    pub fn savepoints_taken(&self) -> usize {
        self.triggers.lock().unwrap().len()
    }

    /// From now on it answers `phase` (and `error` as the last error); `Unspecified`: it
    /// answers no status at all, as a coordinator the operator cannot reach.
    pub fn set(&self, phase: weir_proto::rpc::JobPhase, error: Option<&str>) {
        let mut state = self.state.lock().unwrap();
        state.0 = phase;
        state.1 = error.map(str::to_string);
    }
}

/// `manifest` (a StreamJob from [`stream_job`]) pointing the operator at `coordinator` and
/// with `upgrade` as its spec's upgrade policy (YAML lines under `upgrade:`).
pub fn with_coordinator(manifest: &str, coordinator: &FakeCoordinator, upgrade: &str) -> String {
    let mut m = manifest.replacen(
        "metadata:\n",
        &format!(
            "metadata:\n  annotations:\n    weir.dev/coordinator-address: \"{}\"\n",
            coordinator.address
        ),
        1,
    );
    if !upgrade.is_empty() {
        let lines: String = upgrade.lines().map(|l| format!("    {l}\n")).collect();
        m = m.replacen("spec:\n", &format!("spec:\n  upgrade:\n{lines}"), 1);
    }
    m
}
