//! On real pods: first the laptop demo exactly as `scripts/kind-up` applies it — the example
//! manifests `s3-secret.yaml`, `minio.yaml` (MinIO from the image built from its Go module) and
//! `streamjob.yaml`, only placed on the test's node — until the example job runs with a
//! checkpoint in MinIO and `kubectl scale` completes. Then, on the same MinIO, a Nexmark job
//! writing exactly-once files goes through 20 rounds of random actions (rescale, a worker pod
//! killed, the operator killed in the middle of a rescale, a changed job, a triggered
//! savepoint) with periodic savepoints on; at the end it runs at the last parallelism asked
//! for, finishes, and its committed output equals that of a failure-free `weir run` of the same
//! pipeline: nothing lost, nothing twice. The time each action took is printed as figures.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::{Cluster, cluster, repo, run_with, wait_for_in};
use crate::real_pods::{node_s3, s3_as};

const KEYS: (&str, &str) = ("minio", "minio123");
const ROUNDS: usize = 20;
/// Nexmark events (all kinds; bids are 46 of every 50) and their pace on the pods.
const EVENTS: u64 = 360_000;
const PACE: u64 = 1_000;

/// The example manifests placed on the real node (its selector and toleration), with a short
/// grace period; nothing else changed.
fn on_real_node(manifests: &str) -> String {
    let placement = serde_json::json!({
        "nodeSelector": {"weir.dev/node": "real"},
        "tolerations": [{"key": "weir.dev/node", "operator": "Exists", "effect": "NoSchedule"}],
        "terminationGracePeriodSeconds": 5,
    });
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(manifests) {
        let mut v: serde_json::Value = serde::Deserialize::deserialize(doc).expect("a YAML document");
        let pod_spec = match v["kind"].as_str() {
            Some("Deployment") => Some(&mut v["spec"]["template"]["spec"]),
            Some("StreamJob") => Some(&mut v["spec"]["podTemplate"]["spec"]),
            _ => None,
        };
        if let Some(spec) = pod_spec {
            if spec.is_null() {
                *spec = serde_json::json!({});
            }
            for (k, val) in placement.as_object().unwrap() {
                spec[k] = val.clone();
            }
        }
        out.push(serde_yaml::to_string(&v).unwrap());
    }
    out.join("---\n")
}

fn example(name: &str) -> String {
    std::fs::read_to_string(repo(&format!("examples/k8s/{name}"))).unwrap()
}

/// The chaos job's pipeline: bids per auction per 10 s of event time, to `out`.
fn pipeline(out: &str, pace: Option<u64>, revision: u32) -> String {
    let pace = pace.map(|p| format!("\n    rows_per_second: {p}")).unwrap_or_default();
    format!(
        "# revision {revision}
name: chaos
sources:
  - id: bids
    connector: nexmark
    stream: bid
    events: {EVENTS}
    rate: 1000
    parallelism: 2{pace}
    watermark: {{field: dateTime, max_out_of_orderness_ms: 0}}
operators:
  - {{id: by_auction, input: bids, key_by: auction}}
  - id: per_window
    input: by_auction
    window: {{size_ms: 10000, aggregates: [{{kind: count, as: bids}}, {{kind: sum, field: price}}]}}
sinks:
  - {{id: out, input: per_window, connector: file, path: \"{out}\", format: json}}
"
    )
}

/// What the chaos job's spec says now.
struct Spec {
    parallelism: u32,
    revision: u32,
    nonce: i64,
    pace: u64,
}

impl Spec {
    fn manifest(&self) -> String {
        let pipeline: String = pipeline("s3://weir/chaos-out", Some(self.pace), self.revision)
            .lines()
            .map(|l| format!("      {l}\n"))
            .collect();
        on_real_node(&format!(
            "apiVersion: weir.dev/v1alpha1
kind: StreamJob
metadata: {{name: chaos}}
spec:
  image: weir-worker:dev
  parallelism: {}
  upgradeMode: savepoint
  savepointTriggerNonce: {}
  savepoint: {{intervalSeconds: 5, historyMaxCount: 3}}
  upgrade: {{timeoutSeconds: 120}}
  checkpoint: {{intervalMs: 1000, storage: \"s3://weir/chaos-checkpoints\", credentialsSecret: weir-s3}}
  job:
    pipeline: |
{pipeline}",
            self.parallelism, self.nonce
        ))
    }
}

/// A small deterministic generator (xorshift64*), so a failing sequence can be replayed with
/// `WEIR_CHAOS_SEED`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    Rescale,
    KillWorker,
    KillOperatorMidRescale,
    ChangeJob,
    Savepoint,
}

fn minio_ip(c: &Cluster, ns: &str) -> String {
    c.kubectl(&[
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        "app.kubernetes.io/name=minio",
        "-o",
        "jsonpath={.items[0].status.podIP}",
    ])
    .unwrap()
}

/// The lines of the visible (committed) files under `prefix` in the bucket `weir`.
fn committed(python: &str, endpoint: &str, prefix: &str) -> Vec<String> {
    let text = s3_as(
        python,
        endpoint,
        KEYS,
        &format!(
            "import boto3,os\ns3=boto3.client('s3', endpoint_url=os.environ['S3'])\nfor page in s3.get_paginator('list_objects_v2').paginate(Bucket='weir', Prefix='{prefix}'):\n  for o in page.get('Contents', []):\n    k=o['Key']\n    if not k.rsplit('/',1)[-1].startswith('.'):\n      print(s3.get_object(Bucket='weir', Key=k)['Body'].read().decode(), end='')"
        ),
    );
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// The same pipeline run once, without failures, by `weir run` on this machine.
fn failure_free_output() -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    let weir = [
        profile_dir.join("weir"),
        profile_dir.parent().unwrap().join("debug/weir"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .unwrap_or_else(|| {
        panic!(
            "no weir binary beside {} (scripts/images builds it)",
            profile_dir.display()
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let file = dir.path().join("chaos.yaml");
    std::fs::write(&file, pipeline(out.to_str().unwrap(), None, 0)).unwrap();
    run_with(
        std::process::Command::new(&weir)
            .args(["run", file.to_str().unwrap(), "--progress", "never"])
            .current_dir(dir.path()),
        None,
    )
    .unwrap_or_else(|e| panic!("the failure-free run: {e}"));
    let mut lines = Vec::new();
    let mut stack = vec![out];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if p.is_dir() {
                stack.push(p);
            } else if !name.starts_with('.') {
                let text = std::fs::read_to_string(&p).unwrap();
                lines.extend(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string));
            }
        }
    }
    lines
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[test]
fn the_kind_demo_runs_on_real_pods_and_a_job_survives_20_rounds_of_chaos_exactly_once() {
    let c = cluster();
    let (python, _) = node_s3();
    let ns = c.namespace("chaos");
    let ns = ns.name.as_str();
    let long = Duration::from_secs(180);

    // The demo, as scripts/kind-up applies it.
    let mut op = c.operator(ns, None);
    c.apply_in(ns, &on_real_node(&example("s3-secret.yaml"))).unwrap();
    c.apply_in(ns, &on_real_node(&example("minio.yaml"))).unwrap();
    c.kubectl(&["rollout", "status", "-n", ns, "deployment/minio", "--timeout=120s"])
        .unwrap_or_else(|e| panic!("MinIO did not become ready: {e}\n{}", c.diagnose(ns)));
    c.apply_in(ns, &on_real_node(&example("streamjob.yaml"))).unwrap();
    let applied = Instant::now();
    wait_for_in(
        &c,
        ns,
        "the example job running with a checkpoint in MinIO",
        long,
        || {
            let s = c.status(ns, "bids-per-auction");
            (s["phase"] == "Running" && s["lastCheckpoint"]["path"].is_string()).then_some(())
        },
    );
    eprintln!(
        "figure: demo apply → running with a checkpoint: {:.1} s",
        applied.elapsed().as_secs_f64()
    );
    c.kubectl(&["scale", "-n", ns, "streamjob/bids-per-auction", "--replicas=3"])
        .unwrap();
    wait_for_in(&c, ns, "the example job scaled to 3", long, || {
        let s = c.status(ns, "bids-per-auction");
        (s["lastUpgrade"]["toParallelism"] == 3 && s["upgrade"].is_null() && s["phase"] == "Running").then_some(())
    });
    c.kubectl(&["delete", "-n", ns, "streamjob/bids-per-auction", "--wait=true"])
        .unwrap();

    // The chaos job, on the same MinIO.
    let endpoint = format!("http://{}:9000", minio_ip(&c, ns));
    let seed: u64 = std::env::var("WEIR_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261206);
    eprintln!("chaos: seed {seed} (WEIR_CHAOS_SEED replays it)");
    let mut rng = Rng(seed | 1);
    let mut spec = Spec {
        parallelism: 2,
        revision: 0,
        nonce: 0,
        pace: PACE,
    };
    c.apply_in(ns, &spec.manifest()).unwrap();
    wait_for_in(&c, ns, "the chaos job running with a checkpoint", long, || {
        let s = c.status(ns, "chaos");
        (s["phase"] == "Running" && s["lastCheckpoint"]["path"].is_string()).then_some(())
    });

    // Each action four times, in a random order.
    let mut plan: Vec<Action> = [
        Action::Rescale,
        Action::KillWorker,
        Action::KillOperatorMidRescale,
        Action::ChangeJob,
        Action::Savepoint,
    ]
    .iter()
    .flat_map(|a| std::iter::repeat_n(*a, ROUNDS / 5))
    .collect();
    for i in (1..plan.len()).rev() {
        plan.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut took: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut changes: Vec<f64> = Vec::new();
    for (round, action) in plan.iter().enumerate() {
        let before = c.status(ns, "chaos");
        assert_ne!(
            before["phase"], "Finished",
            "the job ended before round {round}: make it longer"
        );
        let finished_before = before["lastUpgrade"]["finishedAt"].clone();
        let checkpoint_before = before["lastCheckpoint"]["path"].clone();
        let started = Instant::now();
        let new_parallelism = |rng: &mut Rng, now: u32| loop {
            let p = 1 + rng.below(4) as u32;
            if p != now {
                break p;
            }
        };
        let scale = |p: u32| {
            c.kubectl(&["scale", "-n", ns, "streamjob/chaos", &format!("--replicas={p}")])
                .unwrap();
        };
        let what = match action {
            Action::Rescale => {
                spec.parallelism = new_parallelism(&mut rng, spec.parallelism);
                scale(spec.parallelism);
                format!("rescale to {}", spec.parallelism)
            }
            Action::KillOperatorMidRescale => {
                spec.parallelism = new_parallelism(&mut rng, spec.parallelism);
                scale(spec.parallelism);
                std::thread::sleep(Duration::from_millis(500 + rng.below(2_000)));
                let _ = op.kill();
                op = c.operator(ns, None);
                format!("rescale to {} with the operator killed", spec.parallelism)
            }
            Action::KillWorker => {
                let ordinal = rng.below(u64::from(spec.parallelism));
                c.kubectl(&[
                    "delete",
                    "pod",
                    "-n",
                    ns,
                    &format!("chaos-{ordinal}"),
                    "--force",
                    "--grace-period=0",
                ])
                .unwrap();
                format!("worker pod {ordinal} killed")
            }
            Action::ChangeJob => {
                spec.revision += 1;
                c.apply_in(ns, &spec.manifest()).unwrap();
                format!("job changed to revision {}", spec.revision)
            }
            Action::Savepoint => {
                spec.nonce += 1;
                c.patch_spec(ns, "chaos", &format!(r#"{{"savepointTriggerNonce":{}}}"#, spec.nonce));
                format!("savepoint {}", spec.nonce)
            }
        };
        let p = spec.parallelism as usize;
        let s = wait_for_in(&c, ns, &format!("round {round}: {what}"), long, || {
            let s = c.status(ns, "chaos");
            let pods = c.pods(ns, "chaos");
            let running =
                s["phase"] == "Running" && s["upgrade"].is_null() && pods.len() == p && pods.iter().all(|x| x.2);
            let done = match action {
                Action::Rescale | Action::KillOperatorMidRescale | Action::ChangeJob => {
                    s["lastUpgrade"]["finishedAt"] != finished_before
                }
                Action::KillWorker => true,
                Action::Savepoint => s["savepointTriggerNonce"] == spec.nonce,
            };
            (running && done).then_some(s)
        });
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "chaos: round {round:2}: {what}: {secs:.1} s (operator: {} ms)",
            s["lastUpgrade"]["durationMs"]
        );
        took.entry(format!("{action:?}")).or_default().push(secs);
        if matches!(
            action,
            Action::Rescale | Action::KillOperatorMidRescale | Action::ChangeJob
        ) {
            changes.push(s["lastUpgrade"]["durationMs"].as_f64().unwrap_or(0.0) / 1000.0);
        }
        // The job makes progress again before the next round: a newer checkpoint.
        wait_for_in(&c, ns, &format!("a checkpoint after round {round}"), long, || {
            let s = c.status(ns, "chaos");
            (s["lastCheckpoint"]["path"] != checkpoint_before && s["phase"] == "Running").then_some(())
        });
    }

    // Savepoint history: bounded, the older ones disposed in MinIO too.
    let s = c.status(ns, "chaos");
    let history = s["savepoints"].as_array().cloned().unwrap_or_default();
    assert!(!history.is_empty() && history.len() <= 3, "{s}");
    let stored: usize = s3_as(
        &python,
        &endpoint,
        KEYS,
        "import boto3,os\ns3=boto3.client('s3', endpoint_url=os.environ['S3'])\nr=s3.list_objects_v2(Bucket='weir', Prefix='chaos-checkpoints/chaos/savepoints/', Delimiter='/')\nprint(len(r.get('CommonPrefixes', [])))",
    )
    .trim()
    .parse()
    .unwrap();
    eprintln!("chaos: {} savepoints in the history, {stored} stored", history.len());
    assert!(
        stored <= 5,
        "disposed savepoints are deleted from MinIO: {stored} stored\n{s}"
    );

    // Let it run to its end quickly (a job change: the pace is not part of the result).
    spec.pace = 50_000;
    spec.revision += 1;
    c.apply_in(ns, &spec.manifest()).unwrap();
    wait_for_in(&c, ns, "the chaos job finished", Duration::from_secs(300), || {
        (c.status(ns, "chaos")["phase"] == "Finished").then_some(())
    });
    assert_eq!(c.status(ns, "chaos")["currentParallelism"], spec.parallelism);
    drop(op);

    let mut got = committed(&python, &endpoint, "chaos-out/");
    let mut want = failure_free_output();
    got.sort();
    want.sort();
    eprintln!(
        "chaos: {} output rows on the pods, {} in the failure-free run",
        got.len(),
        want.len()
    );
    let mut seen = std::collections::HashSet::new();
    for l in &got {
        assert!(seen.insert(l), "written twice: {l}");
    }
    assert_eq!(got.len(), want.len(), "output row count");
    if let Some((g, w)) = got.iter().zip(&want).find(|(g, w)| g != w) {
        panic!("the output differs from the failure-free run: got {g}, want {w}");
    }

    for (action, secs) in &mut took {
        secs.sort_by(f64::total_cmp);
        eprintln!(
            "figure: chaos {action}: n {} p50 {:.1} s p99 {:.1} s",
            secs.len(),
            percentile(secs, 0.5),
            percentile(secs, 0.99)
        );
    }
    changes.sort_by(f64::total_cmp);
    eprintln!(
        "figure: chaos changes (operator-measured, {} of them): p50 {:.1} s p99 {:.1} s; {ROUNDS} rounds",
        changes.len(),
        percentile(&changes, 0.5),
        percentile(&changes, 0.99)
    );
}
