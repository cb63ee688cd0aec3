//! HDFS against a real NameNode and DataNode (scripts/test starts Hadoop's MiniDFSCluster with
//! scripts/hdfs-up and sets WEIR_HDFS_URL; without it these tests fail, they do not skip): the
//! checkpoint layout and its create-only `_metadata`, files and dead letters, a job reading JSON
//! from HDFS into exactly-once files on HDFS with checkpoints there killed with SIGKILL and
//! resumed, a savepoint on HDFS restored at another parallelism, and a NameNode restart while a
//! job runs.

use crate::common;

use std::io::{BufRead, BufReader, Write};

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use weir::prelude::*;

/// Held shared by every test here and exclusively by the NameNode restart test, so the restart
/// fails no other test.
static CLUSTER: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    CLUSTER.read().unwrap_or_else(|p| p.into_inner())
}

/// The test HDFS (`hdfs://127.0.0.1:<port>`).
fn hdfs() -> String {
    std::env::var("WEIR_HDFS_URL").expect("WEIR_HDFS_URL is set by scripts/test (HDFS test cluster)")
}

/// A directory of this test process on the test HDFS.
fn dir(name: &str) -> String {
    format!("{}/weir-tests/{name}-{}", hdfs(), std::process::id())
}

/// The lines of the visible files under `url` (names starting with `.` or `_` are in progress
/// or markers), sorted.
fn lines(url: &str) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let loc = weir::storage::resolve(url).unwrap();
        let files: Vec<_> = loc.store.list(Some(&loc.path)).try_collect().await.unwrap();
        let mut out = Vec::new();
        for f in files {
            let name = f.location.filename().unwrap_or_default();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let bytes = loc.store.get(&f.location).await.unwrap().bytes().await.unwrap();
            out.extend(
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(String::from),
            );
        }
        out.sort();
        out
    })
}

/// Writes `text` to the file at `url`.
fn put(url: &str, text: String) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let loc = weir::storage::resolve(url).unwrap();
        loc.store.put(&loc.path, text.into_bytes().into()).await.unwrap();
    })
}

/// Runs `f` on a runtime of its own, holding the cluster shared.
fn on_hdfs<F: std::future::Future>(f: F) -> F::Output {
    let _cluster = shared();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn checkpoint_layout_metadata_and_retention_on_hdfs() {
    on_hdfs(crate::checkpoints::layout_and_retention(&dir("layout")));
}

#[test]
fn concurrent_metadata_writers_on_hdfs_have_exactly_one_winner() {
    on_hdfs(crate::checkpoints::one_metadata_writer_wins(&dir("race")));
}

#[test]
fn files_on_hdfs_round_trip_with_dead_letters_there_too() {
    let _cluster = shared();
    crate::connectors::files_round_trip(&dir("files"));
}

#[test]
fn a_deleted_checkpoint_leaves_no_directory_behind_on_hdfs() {
    on_hdfs(deleted_checkpoint_dirs());
}

async fn deleted_checkpoint_dirs() {
    let url = dir("dirs");
    let store = weir::checkpoint::CheckpointStore::open(&url, "job").unwrap();
    store
        .checkpoint(1)
        .put_file("op/0", bytes::Bytes::from_static(b"x"))
        .await
        .unwrap();
    store.checkpoint(1).delete().await.unwrap();
    let loc = weir::storage::resolve(&format!("{url}/job")).unwrap();
    let listed = loc.store.list_with_delimiter(Some(&loc.path)).await.unwrap();
    assert!(listed.common_prefixes.is_empty(), "{:?}", listed.common_prefixes);
}

/// 2 JSON files of 30,000 rows each on HDFS: `ts` (ms, 10 rows per ms, in order within a
/// file), `k` in 0..20, `v` in 0..1000.
fn input(url: &str) {
    for file in 0..2 {
        let mut text = String::new();
        for i in 0..30_000i64 {
            let n = i * 2 + file;
            text.push_str(&format!(
                "{{\"ts\":{},\"k\":{},\"v\":{}}}\n",
                i / 10,
                (n * 7919) % 20,
                (n * 104_729) % 1000
            ));
        }
        put(&format!("{url}/part-{file}.json"), text);
    }
}

/// Keyed 200 ms windows over the JSON files under `input`, replayed at 10,000 rows per second
/// per subtask, into exactly-once JSON files under `out`, checkpoints under `chk`: all on HDFS.
fn killed_job(input: &str, out: &str, chk: &str) -> String {
    format!(
        r#"
name: hdfs-killed
parallelism: 2
checkpoint: {{interval_ms: 100, storage: "{chk}"}}
restart: {{delay_ms: 200, backoff: 1}}
sources:
  - id: in
    connector: file
    path: "{input}"
    format: json
    schema: "ts TIMESTAMP(3), k BIGINT, v BIGINT"
    rows_per_second: 10000
    watermark: {{field: ts, max_out_of_orderness_ms: 5}}
operators:
  - {{id: keyed, input: in, key_by: k}}
  - id: win
    input: keyed
    window: {{size_ms: 200, aggregates: [{{kind: count}}, {{kind: sum, field: v}}]}}
sinks:
  - {{id: out, input: win, connector: file, path: "{out}", format: json}}
"#
    )
}

/// Writes the input under `base` and runs [`killed_job`] on it without failures; its output.
fn clean_run(base: &str, tmp: &std::path::Path) -> Vec<String> {
    input(&format!("{base}/input"));
    let clean = killed_job(
        &format!("{base}/input"),
        &format!("{base}/clean"),
        &format!("{base}/clean-chk"),
    );
    let status = common::cli::weir_run(tmp, "clean.yaml", &clean, false).status();
    assert!(status.unwrap().success());
    lines(&format!("{base}/clean"))
}

#[test]
fn a_job_on_hdfs_survives_sigkill_at_random_points_and_resumes_exactly_once() {
    let _cluster = shared();
    let base = dir("killed");
    let tmp = tempfile::tempdir().unwrap();
    let expected = clean_run(&base, tmp.path());
    assert_eq!(expected.len(), 15 * 20, "15 windows of 200 ms × 20 keys");

    let job = killed_job(&format!("{base}/input"), &format!("{base}/out"), &format!("{base}/chk"));
    let kills = common::cli::kill_and_resume(tmp.path(), "job.yaml", &job, 3, 0x9e37_79b9_7f4a_7c15, 400, 900);
    assert_eq!(kills, 3, "the job was killed three times");
    assert_eq!(
        lines(&format!("{base}/out")),
        expected,
        "SIGKILL three times: nothing lost, nothing duplicated"
    );
}

#[test]
fn a_savepoint_on_hdfs_restores_at_another_parallelism() {
    let _cluster = shared();
    let base = dir("savepoint");
    let (chk, clean_out, out) = (format!("{base}/chk"), format!("{base}/clean"), format!("{base}/out"));
    crate::checkpoints::windowed_job_paced(&clean_out, &chk, None, 2, 10_000)
        .execute("clean")
        .unwrap();
    let expected = lines(&clean_out);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = crate::checkpoints::windowed_job_paced(&out, &chk, None, 2, 10_000);
    let control = JobControl::default();
    let asker = control.clone();
    let metrics = env.metrics();
    let progress = metrics.clone();
    // Stopped once windows have fired and two checkpoints completed after that, so output is
    // committed before the savepoint (the job runs 4 s). (A checkpoint that completed before
    // the first window fired commits nothing, and the savepoint's own commit may race the stop:
    // its output is then committed by the restore.)
    let savepoint = rt.spawn(async move {
        let completed = || {
            progress
                .checkpoints
                .completed
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        common::eventually(|| progress.snapshot().iter().any(|n| n.name == "win" && n.records_out > 0)).await;
        let fired_at = completed();
        common::eventually(|| completed() >= fired_at + 2).await;
        asker.stop_with_savepoint().await
    });
    let r = rt
        .block_on(env.execute_controlled("saved", &metrics, &control))
        .unwrap();
    let path = rt.block_on(savepoint).unwrap();
    assert!(r.cancelled, "stopped by the savepoint: {path:?}");
    let path = path.unwrap();
    assert!(
        path.starts_with(&hdfs()) && path.contains("/saved/savepoints/savepoint-"),
        "{path}"
    );
    let at_savepoint = lines(&out);
    assert!(!at_savepoint.is_empty() && at_savepoint.len() < expected.len());

    let env = crate::checkpoints::windowed_job_paced(&out, &chk, None, 3, 10_000);
    env.set_restore(RestoreFrom::Snapshot(path));
    env.execute("saved").unwrap();
    assert_eq!(lines(&out), expected, "from the savepoint on HDFS at parallelism 3");
}

/// Asks the test cluster to restart its NameNode (scripts/hdfs/MiniHdfs.java's control port);
/// returns when the NameNode is active again.
fn restart_namenode() {
    let control = std::env::var("WEIR_HDFS_CONTROL").expect("WEIR_HDFS_CONTROL is set by scripts/test");
    let mut s = std::net::TcpStream::connect(control).unwrap();
    s.write_all(b"restart-namenode\n").unwrap();
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).unwrap();
    assert_eq!(answer.trim(), "ok");
}

#[test]
fn a_job_on_hdfs_rides_out_a_namenode_restart() {
    let _cluster = CLUSTER.write().unwrap_or_else(|p| p.into_inner());
    let base = dir("restart");
    let tmp = tempfile::tempdir().unwrap();
    let expected = clean_run(&base, tmp.path());

    // The NameNode goes away for a few seconds while the job runs: checkpoints and part files
    // fail, the job restarts (and restarts again while the NameNode is still down), then
    // continues from its newest checkpoint once HDFS is back.
    let job = killed_job(&format!("{base}/input"), &format!("{base}/out"), &format!("{base}/chk"));
    let mut child = common::cli::weir_run(tmp.path(), "job.yaml", &job, false)
        .spawn()
        .unwrap();
    // HDFS goes away once the job has completed a checkpoint there.
    let store = weir::checkpoint::CheckpointStore::open(&format!("{base}/chk"), "hdfs-killed").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    common::until(|| !rt.block_on(store.completed()).unwrap().is_empty());
    assert!(
        child.try_wait().unwrap().is_none(),
        "the job is still running when HDFS goes away"
    );
    restart_namenode();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "the job finished after the NameNode restart: {status}"
    );
    assert_eq!(
        lines(&format!("{base}/out")),
        expected,
        "the same output as without the restart"
    );
}

#[test]
fn examples_hdfs_windows_runs_on_hdfs() {
    let _cluster = shared();
    let base = dir("example");
    // 1,000 clicks a second for 60 s, 10 users: 6 windows of 10 s × 10 users.
    let mut text = String::new();
    for i in 0..60_000i64 {
        text.push_str(&format!(
            "{{\"ts\":{},\"user_id\":{},\"bytes\":{}}}\n",
            1_700_000_000_000 + i,
            i % 10,
            i % 1000
        ));
    }
    put(&format!("{base}/data/clicks/2026-12-06.json"), text);
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hdfs-windows.yaml")).unwrap();
    let job = example.replace("hdfs://namenode:8020", &base);
    let tmp = tempfile::tempdir().unwrap();
    let status = common::cli::weir_run(tmp.path(), "hdfs-windows.yaml", &job, false).status();
    assert!(status.unwrap().success());
    let out = lines(&format!("{base}/data/clicks-per-user"));
    assert_eq!(out.len(), 6 * 10, "{out:?}");
    let counts: i64 = out
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["count"]
                .as_i64()
                .unwrap()
        })
        .sum();
    assert_eq!(counts, 60_000, "every click counted once");
}
