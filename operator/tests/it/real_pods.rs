//! End to end on real pods: a real kubelet with containerd runs `weir-worker` pods from the
//! image built by `scripts/images`; they find the coordinator (ordinal 0) through cluster DNS
//! and the headless Service, exchange data over gRPC across pod IPs and checkpoint into an S3
//! server reached by a cluster DNS name. The operator (a host process here) rescales the job
//! with a savepoint on `kubectl scale`; a worker pod deleted by force mid-run is recovered from
//! the newest checkpoint; suspend and resume go through a savepoint (one the operator did not
//! get to record); the job's output is complete and has no duplicates.
//! `scripts/node-up` brings the node up (scripts/test does).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{cluster, run_with, wait_for_in};

const ROWS: u64 = 40_000;
const KEYS: u64 = 20;

fn pipeline(bucket: &str) -> String {
    format!(
        "name: counts
sources:
  - id: gen
    connector: datagen
    parallelism: 2
    rows: {ROWS}
    rows_per_second: 700
    watermark: {{field: ts, max_out_of_orderness_ms: 0}}
    fields:
      - {{name: ts, kind: timestamp, start: 0, rows_per_ms: 1}}
      - {{name: id, kind: sequence}}
operators:
  - {{id: keyed_in, input: gen, select: [\"id % {KEYS} AS k\", \"id\", \"ts\"]}}
  - {{id: keyed, input: keyed_in, key_by: k}}
  - id: win
    input: keyed
    window: {{size_ms: 1000, aggregates: [{{kind: count}}, {{kind: sum, field: id}}]}}
sinks:
  - {{id: out, input: win, connector: file, path: \"s3://{bucket}/out\", format: json}}"
    )
}

fn s3(cache_python: &str, endpoint: &str, script: &str) -> String {
    s3_as(cache_python, endpoint, ("test", "test"), script)
}

/// Runs a Python `script` with boto3 against the S3 server at `endpoint` (in `$S3`) as `keys`.
pub(crate) fn s3_as(cache_python: &str, endpoint: &str, keys: (&str, &str), script: &str) -> String {
    run_with(
        Command::new(cache_python)
            .args(["-c", script])
            .env("AWS_ACCESS_KEY_ID", keys.0)
            .env("AWS_SECRET_ACCESS_KEY", keys.1)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("S3", endpoint),
        None,
    )
    .unwrap_or_else(|e| panic!("S3 script: {e}"))
}

/// The moto venv's python (its boto3 reads and writes buckets) and the S3 endpoint of the real
/// node, which the pods reach too.
pub(crate) fn node_s3() -> (String, String) {
    let endpoint = std::env::var("WEIR_NODE_S3").unwrap_or_default();
    assert!(
        !endpoint.is_empty(),
        "no real node: run `eval \"$(scripts/node-up)\"` after kube-up, docker-up and scripts/images (scripts/test does)"
    );
    let cache = std::env::var("WEIR_CACHE")
        .unwrap_or_else(|_| format!("{}/.cache/weir", std::env::var("HOME").unwrap_or_default()));
    (format!("{cache}/moto-venv/bin/python"), endpoint)
}

fn create_bucket(python: &str, endpoint: &str, bucket: &str) {
    s3(
        python,
        endpoint,
        &format!("import boto3,os; boto3.client('s3', endpoint_url=os.environ['S3']).create_bucket(Bucket='{bucket}')"),
    );
}

/// The lines of the visible (committed) files under `out/` in `bucket`.
pub(crate) fn committed_output(python: &str, endpoint: &str, bucket: &str) -> String {
    s3(
        python,
        endpoint,
        &format!(
            "import boto3,os\ns3=boto3.client('s3', endpoint_url=os.environ['S3'])\nfor o in s3.list_objects_v2(Bucket='{bucket}', Prefix='out/').get('Contents', []):\n  k=o['Key']\n  if not k.rsplit('/',1)[-1].startswith('.'):\n    print(s3.get_object(Bucket='{bucket}', Key=k)['Body'].read().decode(), end='')"
        ),
    )
}

/// The S3 server by a cluster DNS name in `ns`; its credentials in the Secret `weir-s3`.
fn s3_in_cluster(c: &crate::common::Cluster, ns: &str) {
    c.apply_in(
        ns,
        &format!(
            "apiVersion: v1
kind: Service
metadata: {{name: s3}}
spec: {{clusterIP: None, ports: [{{name: http, port: 9000}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: s3-host, labels: {{kubernetes.io/service-name: s3}}}}
addressType: IPv4
ports: [{{name: http, port: 9000, protocol: TCP}}]
endpoints: [{{addresses: [\"10.88.0.1\"]}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: weir-s3}}
stringData:
  AWS_ACCESS_KEY_ID: test
  AWS_SECRET_ACCESS_KEY: test
  AWS_REGION: us-east-1
  AWS_ENDPOINT_URL: http://s3.{ns}.svc.cluster.local:9000
"
        ),
    )
    .unwrap();
}

#[test]
fn a_stream_job_on_real_pods_rescales_upgrades_suspends_resumes_and_survives_a_lost_pod() {
    let c = cluster();
    let (python, endpoint) = node_s3();
    let ns = c.namespace("e2e");
    let ns = ns.name.as_str();
    let bucket = ns.to_string();
    create_bucket(&python, &endpoint, &bucket);

    s3_in_cluster(&c, ns);

    let op = c.operator(ns, None);
    let job = format!(
        "apiVersion: weir.dev/v1alpha1
kind: StreamJob
metadata: {{name: counts}}
spec:
  image: weir-worker:dev
  parallelism: 2
  upgradeMode: savepoint
  checkpoint: {{intervalMs: 1000, storage: \"s3://{bucket}/checkpoints\", credentialsSecret: weir-s3}}
  podTemplate:
    spec:
      nodeSelector: {{weir.dev/node: real}}
      tolerations: [{{key: weir.dev/node, operator: Exists, effect: NoSchedule}}]
      terminationGracePeriodSeconds: 5
  job:
    pipeline: |
{}
",
        pipeline(&bucket)
            .lines()
            .map(|l| format!("      {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let applied = Instant::now();
    c.apply_in(ns, &job).unwrap();
    let long = Duration::from_secs(120);
    wait_for_in(&c, ns, "the job running with a checkpoint in S3", long, || {
        let s = c.status(ns, "counts");
        (s["phase"] == "Running" && s["lastCheckpoint"]["path"].is_string()).then_some(())
    });
    eprintln!(
        "figure: apply → running with a checkpoint: {:.1} s",
        applied.elapsed().as_secs_f64()
    );
    let listed = s3(
        &python,
        &endpoint,
        &format!(
            "import boto3,os\nr=boto3.client('s3', endpoint_url=os.environ['S3']).list_objects_v2(Bucket='{bucket}', Prefix='checkpoints/')\nprint(len(r.get('Contents', [])))"
        ),
    );
    assert!(
        listed.trim().parse::<u64>().unwrap_or(0) > 0,
        "checkpoint objects in S3"
    );
    eprintln!("figure: idle-ish worker RSS (KiB): {:?}", worker_rss());

    // Rescale 2 → 3: savepoint, new StatefulSet size, restore by key groups.
    let scaled = Instant::now();
    c.kubectl(&["scale", "-n", ns, "streamjob/counts", "--replicas=3"])
        .unwrap();
    let s = wait_for_in(&c, ns, "the rescale to 3", long, || {
        let s = c.status(ns, "counts");
        (s["lastUpgrade"]["toParallelism"] == 3 && s["upgrade"].is_null()).then_some(s)
    });
    eprintln!(
        "figure: kubectl scale → running at 3 workers: {:.1} s (operator measured {} ms)",
        scaled.elapsed().as_secs_f64(),
        s["lastUpgrade"]["durationMs"]
    );
    assert!(
        s["lastSavepoint"]["path"]
            .as_str()
            .unwrap_or_default()
            .contains("savepoint"),
        "{s}"
    );
    assert_eq!(c.pods(ns, "counts").len(), 3);

    // Suspend and resume, with the operator stopped right after it stopped the job with a
    // savepoint and before it could record it (the test takes that savepoint itself through the
    // coordinator's gRPC): the next operator finds the job stopped, uses that savepoint,
    // scales to zero, and resumes from it.
    let _ = op.kill();
    let ip = c
        .kubectl(&["get", "pod", "-n", ns, "counts-0", "-o", "jsonpath={.status.podIP}"])
        .unwrap();
    let taken = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut client = weir_proto::rpc::coordinator_client::CoordinatorClient::connect(format!("http://{ip}:7070"))
            .await
            .expect("the coordinator at pod 0's IP");
        client
            .savepoint(weir_proto::rpc::SavepointRequest {
                stop: true,
                ..Default::default()
            })
            .await
            .expect("stop with a savepoint")
            .into_inner()
            .path
    });
    c.patch_spec(ns, "counts", r#"{"state":"suspended"}"#);
    let op = c.operator(ns, None);
    let s = wait_for_in(&c, ns, "suspended", long, || {
        let s = c.status(ns, "counts");
        (s["phase"] == "Suspended" && c.pods(ns, "counts").is_empty()).then_some(s)
    });
    assert_eq!(
        s["lastSavepoint"]["path"],
        taken.as_str(),
        "the savepoint the job stopped with"
    );
    assert_eq!(s["deployed"]["restoreFrom"], taken.as_str());
    let resumed = Instant::now();
    c.patch_spec(ns, "counts", r#"{"state":"running"}"#);
    wait_for_in(&c, ns, "resumed", long, || {
        let s = c.status(ns, "counts");
        (s["lastUpgrade"]["reason"] == "resume" && s["phase"] == "Running").then_some(())
    });
    eprintln!(
        "figure: resume → running at 3 workers: {:.1} s",
        resumed.elapsed().as_secs_f64()
    );

    // A changed job (here: only its text) is upgraded through a savepoint too.
    c.apply_in(
        ns,
        &job.replace("parallelism: 2\n  upgradeMode", "parallelism: 3\n  upgradeMode")
            .replace(
                "      name: counts\n",
                "      # v2: same dataflow, new text\n      name: counts\n",
            ),
    )
    .unwrap();
    let s = wait_for_in(&c, ns, "the upgrade", long, || {
        let s = c.status(ns, "counts");
        (s["lastUpgrade"]["reason"] == "upgrade" && s["phase"] == "Running").then_some(s)
    });
    eprintln!(
        "figure: job upgrade with a savepoint: {} ms",
        s["lastUpgrade"]["durationMs"]
    );
    assert_ne!(
        s["lastSavepoint"]["path"],
        taken.as_str(),
        "a new savepoint for the upgrade"
    );

    // A worker pod lost mid-run: the job recovers from the newest checkpoint.
    wait_for_in(&c, ns, "a checkpoint after the rescale", long, || {
        let s = c.status(ns, "counts");
        (s["phase"] == "Running" && s["lastCheckpoint"]["time"].as_str() > s["lastUpgrade"]["finishedAt"].as_str())
            .then_some(())
    });
    c.kubectl(&["delete", "pod", "-n", ns, "counts-1", "--force", "--grace-period=0"])
        .unwrap();
    let lost = Instant::now();
    wait_for_in(&c, ns, "the job finished", Duration::from_secs(240), || {
        let s = c.status(ns, "counts");
        (s["phase"] == "Finished").then_some(())
    });
    eprintln!("figure: pod lost → job finished: {:.1} s", lost.elapsed().as_secs_f64());

    // Complete, no duplicates: every (window, key) once, counts and sums add up.
    let text = committed_output(&python, &endpoint, &bucket);
    let mut seen: BTreeMap<(String, i64), (u64, u64)> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let window = v["window_start"].to_string();
        let key = v["k"].as_i64().unwrap();
        let count = v["count"].as_u64().unwrap();
        let sum = v["sum_id"].as_u64().unwrap_or_else(|| panic!("no sum_id: {line}"));
        assert!(seen.insert((window, key), (count, sum)).is_none(), "duplicate: {line}");
    }
    let total: u64 = seen.values().map(|v| v.0).sum();
    let sum: u64 = seen.values().map(|v| v.1).sum();
    assert_eq!(total, ROWS, "every row counted once");
    assert_eq!(sum, ROWS * (ROWS - 1) / 2);
    assert_eq!(seen.len() as u64, ROWS / 1000 * KEYS);

    // Deleting the StreamJob keeps its snapshots.
    c.kubectl(&["delete", "-n", ns, "streamjob/counts"]).unwrap();
    let kept = s3(
        &python,
        &endpoint,
        &format!(
            "import boto3,os\nr=boto3.client('s3', endpoint_url=os.environ['S3']).list_objects_v2(Bucket='{bucket}', Prefix='checkpoints/counts/savepoints/')\nprint(len(r.get('Contents', [])))"
        ),
    );
    assert!(kept.trim().parse::<u64>().unwrap_or(0) > 0, "savepoints kept");
    drop(op);
}

/// RSS of each `weir worker` process on this host (the pods' containers), KiB.
fn worker_rss() -> Vec<u64> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmd.starts_with("/entrypoint worker") || cmd.starts_with("/usr/local/bin/weir worker") {
            let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
            if let Some(kb) = status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
            {
                out.push(kb);
            }
        }
    }
    out
}

/// A StreamJob whose job is Flink SQL: the same ConfigMap path as pipelines, the workers plan
/// the script, checkpoint into S3, rescale with `kubectl scale` and write every window once.
/// A namespace of its own (deleted when dropped) with a bucket of its name on the node's S3
/// server, reached in it as `s3` with the Secret `weir-s3`; and the S3 client's python and the
/// endpoint.
pub(crate) fn namespace_with_bucket<'c>(
    c: &'c crate::common::Cluster,
    prefix: &str,
) -> (crate::common::Namespace<'c>, String, String) {
    let (python, endpoint) = node_s3();
    let ns = c.namespace(prefix);
    create_bucket(&python, &endpoint, &ns.name);
    s3_in_cluster(c, &ns.name);
    (ns, python, endpoint)
}

/// A StreamJob `name` on the real node running `text` as `job.<kind>` in `image`, checkpointing
/// into `bucket` every second.
pub(crate) fn stream_job_on_node(name: &str, image: &str, bucket: &str, kind: &str, text: &str) -> String {
    format!(
        "apiVersion: weir.dev/v1alpha1
kind: StreamJob
metadata: {{name: {name}}}
spec:
  image: {image}
  parallelism: 2
  upgradeMode: savepoint
  checkpoint: {{intervalMs: 1000, storage: \"s3://{bucket}/checkpoints\", credentialsSecret: weir-s3}}
  podTemplate:
    spec:
      nodeSelector: {{weir.dev/node: real}}
      tolerations: [{{key: weir.dev/node, operator: Exists, effect: NoSchedule}}]
      terminationGracePeriodSeconds: 5
  job:
    {kind}: |
{}
",
        text.lines()
            .map(|l| format!("      {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

/// Checks committed window counts (JSON lines of `k`, `window_start`, `n`, `total` over ids
/// `0..rows`): each window and key once, every row counted once.
fn assert_every_window_once(text: &str, rows: u64) {
    let mut seen: BTreeMap<(String, i64), (u64, u64)> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let key = (v["window_start"].to_string(), v["k"].as_i64().unwrap());
        let counts = (v["n"].as_u64().unwrap(), v["total"].as_u64().unwrap());
        assert!(seen.insert(key, counts).is_none(), "duplicate: {line}");
    }
    assert_eq!(seen.values().map(|v| v.0).sum::<u64>(), rows, "every row counted once");
    assert_eq!(seen.values().map(|v| v.1).sum::<u64>(), rows * (rows - 1) / 2);
}

#[test]
fn a_sql_stream_job_on_real_pods_scales_and_writes_every_window_once() {
    let c = cluster();
    let (ns, python, endpoint) = namespace_with_bucket(&c, "sql");
    let ns = ns.name.as_str();
    let bucket = ns.to_string();
    let rows = 30_000u64;
    // The generator keeps its parallelism (its sequence positions do not redistribute); the
    // window operator and the sink rescale.
    let sql = format!(
        "CREATE TABLE gen (
  id BIGINT,
  ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '0' SECOND
) WITH (
  'connector' = 'datagen',
  'scan.parallelism' = '2',
  'rows-per-second' = '600',
  'fields.id.kind' = 'sequence',
  'fields.id.start' = '0',
  'fields.id.end' = '{}'
);
CREATE TABLE counts (k BIGINT, window_start TIMESTAMP(3), n BIGINT, total BIGINT)
WITH ('connector' = 'filesystem', 'path' = 's3://{bucket}/out', 'format' = 'json');
INSERT INTO counts
SELECT id % {KEYS} AS k, window_start, COUNT(*) AS n, SUM(id) AS total
FROM TABLE(TUMBLE(TABLE gen, DESCRIPTOR(ts), INTERVAL '1' SECOND))
GROUP BY id % {KEYS}, window_start, window_end;
",
        rows - 1
    );
    let op = c.operator(ns, None);
    let job = stream_job_on_node("sql-counts", "weir-worker:dev", &bucket, "sql", &sql);
    c.apply_in(ns, &job).unwrap();
    let long = Duration::from_secs(120);
    wait_for_in(&c, ns, "the SQL job running with a checkpoint in S3", long, || {
        let s = c.status(ns, "sql-counts");
        (s["phase"] == "Running" && s["lastCheckpoint"]["path"].is_string()).then_some(())
    });
    let s = c.status(ns, "sql-counts");
    assert!(
        s["lastCheckpoint"]["path"]
            .as_str()
            .unwrap_or_default()
            .contains("/sql-counts/"),
        "state under the StreamJob's name: {s}"
    );
    c.kubectl(&["scale", "-n", ns, "streamjob/sql-counts", "--replicas=3"])
        .unwrap();
    let last = std::cell::RefCell::new(serde_json::Value::Null);
    let rescaled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for_in(&c, ns, "the rescale to 3", long, || {
            let s = c.status(ns, "sql-counts");
            *last.borrow_mut() = s.clone();
            (s["lastUpgrade"]["toParallelism"] == 3 && s["upgrade"].is_null()).then_some(())
        })
    }));
    if rescaled.is_err() {
        let logs = c
            .kubectl(&["logs", "-n", ns, "sql-counts-0", "--tail=40"])
            .unwrap_or_default();
        panic!(
            "the rescale to 3 did not complete; status: {}\npod 0: {logs}",
            last.borrow()
        );
    }
    assert_eq!(c.pods(ns, "sql-counts").len(), 3);
    wait_for_in(&c, ns, "the job finished", Duration::from_secs(240), || {
        (c.status(ns, "sql-counts")["phase"] == "Finished").then_some(())
    });
    assert_every_window_once(&committed_output(&python, &endpoint, &bucket), rows);
    drop(op);
}

/// A Python `ProcessWindowFunction` of the Python jobs here: per key and window, the count and
/// the sum of the ids.
pub(crate) const PY_TOTALS: &str = "class Totals(ProcessWindowFunction):
    def process(self, key, context, elements):
        rows = list(elements)
        yield (key, context.window().start, len(rows), sum(r.id for r in rows))
";

/// The end of those Python jobs: 1 s event-time windows of `Totals` per `k`, written as JSON
/// files to `s3://{bucket}/out`, and `execute`.
pub(crate) fn python_window_totals(bucket: &str) -> String {
    format!(
        "    .key_by('k') \\
    .window(TumblingEventTimeWindows.of(Time.seconds(1))) \\
    .process(Totals(), output_type=Types.ROW_NAMED(['k', 'window_start', 'n', 'total'],
                                                   [Types.LONG(), Types.LONG(), Types.LONG(), Types.LONG()])) \\
    .sink_to(FileSink.for_row_format('s3://{bucket}/out').build())
env.execute('ignored: the StreamJob names the job')
"
    )
}

#[test]
fn a_python_stream_job_on_real_pods_runs_its_script_with_checkpoints_and_writes_every_window_once() {
    let c = cluster();
    let (ns, python, endpoint) = namespace_with_bucket(&c, "python");
    let ns = ns.name.as_str();
    let bucket = ns.to_string();
    let rows = 6_000u64;
    // A Python map and a Python window function run in the worker pods (the weir-worker-python
    // image); checkpoints go where the StreamJob says (its WEIR_CHECKPOINT_* variables override
    // the script, which sets none), and the file sink commits on them.
    let script = format!(
        "from weir.common import Types, WatermarkStrategy
from weir.datastream import (DataGenSource, FileSink, ProcessWindowFunction, StreamExecutionEnvironment,
                             Time, TumblingEventTimeWindows)

{PY_TOTALS}
env = StreamExecutionEnvironment.get_execution_environment()
source = DataGenSource([{{'name': 'ts', 'kind': 'timestamp', 'start': 0, 'rows_per_ms': 1}},
                        {{'name': 'id', 'kind': 'sequence'}}], rows={rows}, rows_per_second=600)
watermarks = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_field('ts')
env.from_source(source, watermarks, 'gen').set_parallelism(2) \\
    .map(lambda r: (r.id % {KEYS}, r.id, r.ts),
         output_type=Types.ROW_NAMED(['k', 'id', 'ts'], [Types.LONG(), Types.LONG(), Types.SQL_TIMESTAMP()])) \\
{}",
        python_window_totals(&bucket)
    );
    let op = c.operator(ns, None);
    let job = stream_job_on_node("py-counts", "weir-worker-python:dev", &bucket, "python", &script);
    c.apply_in(ns, &job).unwrap();
    let long = Duration::from_secs(120);
    let last = std::cell::RefCell::new(serde_json::Value::Null);
    let running = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for_in(&c, ns, "the Python job running with a checkpoint in S3", long, || {
            let s = c.status(ns, "py-counts");
            *last.borrow_mut() = s.clone();
            (s["lastCheckpoint"]["path"].is_string()).then_some(())
        })
    }));
    if running.is_err() {
        let pods = c
            .kubectl(&[
                "get",
                "pods",
                "-n",
                ns,
                "-o",
                "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.status.containerStatuses}{\"\\n\"}{end}",
            ])
            .unwrap_or_default();
        panic!("no checkpoint; status: {}\npods: {pods}", last.borrow());
    }
    assert!(
        last.borrow()["lastCheckpoint"]["path"]
            .as_str()
            .unwrap_or_default()
            .contains("/py-counts/"),
        "state under the StreamJob's name: {}",
        last.borrow()
    );
    wait_for_in(&c, ns, "the job finished", Duration::from_secs(240), || {
        (c.status(ns, "py-counts")["phase"] == "Finished").then_some(())
    });
    assert_every_window_once(&committed_output(&python, &endpoint, &bucket), rows);
    drop(op);
}
