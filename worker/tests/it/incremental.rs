//! Incremental checkpoints through the public API: windowed jobs (sliding, session, count
//! windows) and a join checkpoint every 20 ms with incremental checkpoints (a full one every
//! 4th), retention 2; runs are stopped after a number of completed checkpoints, resumed at another parallelism (2 → 3 → 1), and the exactly-once
//! output equals a failure-free run. Storage holds nothing that no kept checkpoint needs.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use weir::checkpoint::{CheckpointConfig, CheckpointStore};
use weir::prelude::*;
use weir::runtime::control::JobControl;
use weir::state::{DiskSettings, StateBackend};

const ROWS: u64 = 200_000;
const JOINED: u64 = 30_000;

/// An environment at parallelism 2 checkpointing every 20 ms into `storage`, incrementally with
/// a full checkpoint every 4th, keeping 2.
fn checkpointing_env(storage: &str) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.set_batch_size(500);
    env.set_checkpoint_config(CheckpointConfig {
        interval: Duration::from_millis(20),
        retain: 2,
        incremental: true,
        full_every: 4,
        storage: storage.to_string(),
        ..Default::default()
    });
    env
}

/// Sliding windows over 1,000 keys whose contents outlive many checkpoints, so each
/// incremental checkpoint holds a part of the state.
fn job(out: &str, storage: &str, parallelism: usize, throttled: bool) -> StreamExecutionEnvironment {
    windowed(
        out,
        storage,
        parallelism,
        throttled,
        Kind::Sliding,
        StateBackend::Memory,
    )
}

/// The windows of [`windowed`].
#[derive(Clone, Copy)]
enum Kind {
    Sliding,
    Session,
    Count,
}

/// Windows of `kind` over 1,000 keys: count, sum and max per window.
fn windowed(
    out: &str,
    storage: &str,
    parallelism: usize,
    throttled: bool,
    kind: Kind,
    backend: StateBackend,
) -> StreamExecutionEnvironment {
    let env = checkpointing_env(storage);
    env.set_state_backend(backend);
    let cfg = DatagenConfig {
        rows: Some(ROWS),
        // Slow enough that ten checkpoints complete long before the input ends, even on a busy
        // machine (a throttled run is stopped after its checkpoints, not at the end).
        rows_per_second: throttled.then_some(10_000),
        seed: 11,
        fields: vec![
            DatagenField::new("id", FieldKind::Sequence),
            DatagenField {
                start: Some(0),
                rows_per_ms: Some(20),
                ..DatagenField::new("ts", FieldKind::Timestamp)
            },
            DatagenField::random_int("k", 0, 999),
            DatagenField::random_int("v", 0, 999),
        ],
    };
    // Count windows follow arrival order: one source subtask keeps it the same in every run.
    let source_parallelism = if matches!(kind, Kind::Count) { 1 } else { 2 };
    let keyed = env
        .add_source_named("gen", Arc::new(Datagen::new("gen", cfg).unwrap()))
        .set_parallelism(source_parallelism)
        .with_watermarks(WatermarkStrategy::bounded_out_of_orderness(
            "ts",
            Duration::from_millis(5),
        ))
        .key_by("k");
    let aggs = [Agg::count(), Agg::sum("v"), Agg::max("v")];
    match kind {
        Kind::Sliding => keyed
            .window(SlidingEventTimeWindows::of(
                Duration::from_millis(2000),
                Duration::from_millis(500),
            ))
            .aggregate(&aggs),
        Kind::Session => keyed
            .window(EventTimeSessionWindows::with_gap(Duration::from_millis(60)))
            .aggregate(&aggs),
        Kind::Count => keyed.count_window_sliding(40, 7).aggregate(&aggs),
    }
    .name("win")
    .set_parallelism(parallelism)
    .add_sink(FileSink::new("out", FileSinkConfig::new(out, Format::Json)).unwrap())
    .name("out")
    .set_parallelism(parallelism);
    env
}

/// Runs `env` until `checkpoints` more checkpoints completed, then stops it (cancel: its state
/// stays in its newest checkpoint).
fn run_for_checkpoints(env: &StreamExecutionEnvironment, checkpoints: u64) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let control = JobControl::default();
    let stopper = control.clone();
    let metrics = env.metrics();
    let watched = metrics.checkpoints.clone();
    rt.spawn(async move {
        while watched.completed.load(Ordering::Relaxed) < checkpoints {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stopper.cancel();
    });
    let r = rt
        .block_on(env.execute_controlled("incremental", &metrics, &control))
        .unwrap();
    assert!(
        r.cancelled,
        "the input ended before {checkpoints} checkpoints completed"
    );
}

/// Every file under `dir`, relative to it.
fn files(dir: &std::path::Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

/// The kept checkpoints build on files that exist, and every other file of older checkpoints
/// is gone.
fn check_storage(job_dir: &std::path::Path, store: &CheckpointStore) -> usize {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let kept = rt.block_on(store.completed()).unwrap();
    assert_eq!(kept.len(), 2, "retention 2 keeps two complete checkpoints: {kept:?}");
    let mut needed: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    let mut chained = 0;
    for id in &kept {
        let meta = rt.block_on(store.checkpoint(*id).read_metadata()).unwrap();
        for s in meta.operators.iter().flat_map(|o| &o.subtasks) {
            needed.entry(*id).or_default().insert(s.file.clone());
            chained += s.chain.len();
            for c in &s.chain {
                needed.entry(c.checkpoint).or_default().insert(c.file.clone());
            }
        }
    }
    let all = files(job_dir);
    for (chk, names) in &needed {
        for name in names {
            assert!(
                all.contains(&format!("chk-{chk}/{name}")),
                "chk-{chk}/{name} is referenced but missing"
            );
        }
    }
    let oldest_kept = kept[0];
    for f in &all {
        let Some(rest) = f.strip_prefix("chk-") else {
            assert!(f.starts_with("generations/"), "unexpected file {f}");
            continue;
        };
        let (id, name) = rest.split_once('/').unwrap();
        let id: u64 = id.parse().unwrap();
        if id < oldest_kept {
            assert!(
                needed.get(&id).is_some_and(|n| n.contains(name)),
                "{f} is older than every kept checkpoint and no kept checkpoint needs it"
            );
        }
    }
    chained
}

#[test]
fn incremental_checkpoint_chains_rescale_2_3_1_exactly_once_and_leave_no_orphaned_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("chk");
    let storage = format!("file://{}", root.display());
    let (clean_out, out) = (tmp.path().join("clean"), tmp.path().join("out"));
    job(clean_out.to_str().unwrap(), &storage, 2, false)
        .execute("clean")
        .unwrap();
    let expected = common::committed_lines(&clean_out);
    assert!(expected.len() > 1_000, "{} windows", expected.len());

    let store = CheckpointStore::open(&storage, "incremental").unwrap();
    let job_dir = root.join("incremental");
    // 2 → 3: at least ten checkpoints each, chains of up to four files.
    run_for_checkpoints(&job(out.to_str().unwrap(), &storage, 2, true), 10);
    let chained = check_storage(&job_dir, &store);
    assert!(chained > 0, "no kept checkpoint is incremental");
    let env = job(out.to_str().unwrap(), &storage, 3, true);
    env.set_restore(RestoreFrom::Latest);
    run_for_checkpoints(&env, 10);
    check_storage(&job_dir, &store);
    // 3 → 1, to the end of the input.
    let env = job(out.to_str().unwrap(), &storage, 1, false);
    env.set_restore(RestoreFrom::Latest);
    env.execute("incremental").unwrap();
    assert_eq!(
        common::committed_lines(&out),
        expected,
        "2 → 3 → 1 through incremental checkpoints gives the failure-free output"
    );
}

#[test]
fn session_windows_rescaled_2_3_1_through_incremental_checkpoints_give_the_failure_free_output() {
    rescale_windows(
        Kind::Session,
        [StateBackend::Memory, StateBackend::Memory, StateBackend::Memory],
    );
}

#[test]
fn count_windows_rescaled_2_3_1_through_incremental_checkpoints_give_the_failure_free_output() {
    rescale_windows(
        Kind::Count,
        [StateBackend::Memory, StateBackend::Memory, StateBackend::Memory],
    );
}

/// Sliding and session windows moved between backends at each rescale (disk at 2, memory at
/// 3, disk at 1, with a 1 MiB budget so their state spills): the output is the failure-free
/// one.
#[test]
fn windows_moved_between_disk_and_memory_backends_while_rescaling_2_3_1_give_the_failure_free_output() {
    for kind in [Kind::Sliding, Kind::Session] {
        let tmp = tempfile::tempdir().unwrap();
        let disk = StateBackend::Disk(DiskSettings {
            dir: tmp.path().join("state"),
            memory: 1 << 20,
            ..Default::default()
        });
        rescale_windows(kind, [disk.clone(), StateBackend::Memory, disk]);
    }
}

/// Runs the windows of `kind` at parallelism 2, 3 and 1 on `backends`, each run resuming the
/// previous one's incremental checkpoints; the output equals a failure-free run's.
fn rescale_windows(kind: Kind, backends: [StateBackend; 3]) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("chk");
    let storage = format!("file://{}", root.display());
    let (clean_out, out) = (tmp.path().join("clean"), tmp.path().join("out"));
    windowed(
        clean_out.to_str().unwrap(),
        &storage,
        2,
        false,
        kind,
        StateBackend::Memory,
    )
    .execute("clean")
    .unwrap();
    let expected = common::committed_lines(&clean_out);
    assert!(expected.len() > 1_000, "{} windows", expected.len());
    let store = CheckpointStore::open(&storage, "incremental").unwrap();
    let [first, second, third] = backends;
    run_for_checkpoints(&windowed(out.to_str().unwrap(), &storage, 2, true, kind, first), 10);
    assert!(
        check_storage(&root.join("incremental"), &store) > 0,
        "no kept checkpoint is incremental"
    );
    let env = windowed(out.to_str().unwrap(), &storage, 3, true, kind, second);
    env.set_restore(RestoreFrom::Latest);
    run_for_checkpoints(&env, 10);
    let env = windowed(out.to_str().unwrap(), &storage, 1, false, kind, third);
    env.set_restore(RestoreFrom::Latest);
    env.execute("incremental").unwrap();
    assert_eq!(common::committed_lines(&out), expected);
}

/// A regular inner join of two generated streams (ids on both sides, one pair per id), its
/// sources fixed at parallelism 2 and the join at `parallelism`. The right side runs a quarter
/// as fast, so the left rows wait in join state across many checkpoints.
fn join_job_on(
    out: &str,
    storage: &str,
    parallelism: usize,
    throttled: bool,
    backend: StateBackend,
) -> StreamExecutionEnvironment {
    let env = checkpointing_env(storage);
    env.set_state_backend(backend);
    let side = |name: &str, id: &str, seed, rate| {
        let cfg = DatagenConfig {
            rows: Some(JOINED),
            rows_per_second: throttled.then_some(rate),
            seed,
            fields: vec![DatagenField::new(id, FieldKind::Sequence)],
        };
        env.add_source_named(name, Arc::new(Datagen::new(name, cfg).unwrap()))
            .key_by(id)
    };
    side("left", "id", 1, 10_000)
        .join(&side("right", "rid", 2, 2_500), JoinType::Inner)
        .name("join")
        .set_parallelism(parallelism)
        .add_sink(FileSink::new("out", FileSinkConfig::new(out, Format::Json)).unwrap())
        .name("out")
        .set_parallelism(parallelism);
    env
}

#[test]
fn a_join_rescaled_2_3_1_through_incremental_checkpoints_pairs_each_id_once() {
    let tmp = tempfile::tempdir().unwrap();
    rescale_join(
        tmp.path(),
        [StateBackend::Memory, StateBackend::Memory, StateBackend::Memory],
    );
}

/// The join moved between backends at each rescale (disk at 2, memory at 3, disk at 1, with a
/// 1 MiB budget so its state spills): a snapshot of either backend restores into the other, and
/// every id is still paired once.
#[test]
fn a_join_moved_between_disk_and_memory_backends_while_rescaling_2_3_1_pairs_each_id_once() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = StateBackend::Disk(DiskSettings {
        dir: tmp.path().join("state"),
        memory: 1 << 20,
        ..Default::default()
    });
    rescale_join(tmp.path(), [disk.clone(), StateBackend::Memory, disk]);
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("state")).unwrap().flatten().collect();
    assert!(left.is_empty(), "the state files go with the job: {left:?}");
}

/// Runs the join at parallelism 2, 3 and 1 on `backends`, each run resuming the previous one's
/// incremental checkpoints; every id is paired exactly once.
fn rescale_join(dir: &std::path::Path, backends: [StateBackend; 3]) {
    let root = dir.join("chk");
    let storage = format!("file://{}", root.display());
    let out = dir.join("out");
    let out = out.to_str().unwrap();
    let store = CheckpointStore::open(&storage, "incremental").unwrap();
    let [first, second, third] = backends;
    run_for_checkpoints(&join_job_on(out, &storage, 2, true, first), 10);
    assert!(
        check_storage(&root.join("incremental"), &store) > 0,
        "no kept checkpoint is incremental"
    );
    let env = join_job_on(out, &storage, 3, true, second);
    env.set_restore(RestoreFrom::Latest);
    run_for_checkpoints(&env, 10);
    let env = join_job_on(out, &storage, 1, false, third);
    env.set_restore(RestoreFrom::Latest);
    env.execute("incremental").unwrap();
    let mut seen = BTreeSet::new();
    for line in common::committed_lines(std::path::Path::new(out)) {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["id"], v["rid"], "{line}");
        assert!(seen.insert(v["id"].as_i64().unwrap()), "a pair written twice: {line}");
    }
    assert_eq!(seen.len() as u64, JOINED, "every id paired once");
}

/// An interval join (`l.ts - 100 <= r.ts <= l.ts + 100` on `id % 50`) of two generated streams
/// at event time `id` ms, sources fixed at parallelism 2 and the join at `parallelism`. The right
/// side runs a quarter as fast, so the left rows wait in the join's logs across many
/// checkpoints (its checkpoints are full ones: a log's snapshot is a clone of it).
fn interval_join_job_on(out: &str, storage: &str, parallelism: usize, throttled: bool) -> StreamExecutionEnvironment {
    let env = checkpointing_env(storage);
    let side = |name: &str, seed, rate, columns: &[&str]| {
        let cfg = DatagenConfig {
            rows: Some(JOINED),
            rows_per_second: throttled.then_some(rate),
            seed,
            fields: vec![
                DatagenField::new("id", FieldKind::Sequence),
                DatagenField {
                    start: Some(0),
                    rows_per_ms: Some(1),
                    ..DatagenField::new("ts", FieldKind::Timestamp)
                },
            ],
        };
        env.add_source_named(name, Arc::new(Datagen::new(name, cfg).unwrap()))
            .with_watermarks(WatermarkStrategy::bounded_out_of_orderness("ts", Duration::ZERO))
            .select(columns)
    };
    let left = side("left", 1, 10_000, &["ts", "id % 50 AS k", "id AS l"]);
    let right = side("right", 2, 2_500, &["ts AS rts", "id % 50 AS rk", "id AS r"]);
    left.key_by("k")
        .interval_join(&right.key_by("rk"))
        .time_columns("ts", "rts")
        .between(-100, 100)
        .name("join")
        .set_parallelism(parallelism)
        .select(&["l", "r"])
        .add_sink(FileSink::new("out", FileSinkConfig::new(out, Format::Json)).unwrap())
        .name("out")
        .set_parallelism(parallelism);
    env
}

/// The interval join stopped at parallelism 2 and 3 after ten checkpoints each and resumed at
/// 3 then 1: each pair within the bounds is written exactly once, none missing — what a run
/// without stops writes.
#[test]
fn an_interval_join_rescaled_2_3_1_through_its_checkpoints_writes_each_pair_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("chk");
    let storage = format!("file://{}", root.display());
    let out = tmp.path().join("out");
    let out = out.to_str().unwrap();
    run_for_checkpoints(&interval_join_job_on(out, &storage, 2, true), 10);
    let env = interval_join_job_on(out, &storage, 3, true);
    env.set_restore(RestoreFrom::Latest);
    run_for_checkpoints(&env, 10);
    let env = interval_join_job_on(out, &storage, 1, false);
    env.set_restore(RestoreFrom::Latest);
    let result = env.execute("incremental").unwrap();
    assert_eq!(result.node("join").expect("the join").late_records, 0);
    let mut seen = BTreeSet::new();
    for line in common::committed_lines(std::path::Path::new(out)) {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let pair = (v["l"].as_i64().unwrap(), v["r"].as_i64().unwrap());
        assert!(seen.insert(pair), "a pair written twice: {line}");
    }
    let n = JOINED as i64;
    let want: BTreeSet<(i64, i64)> = (0..n)
        .flat_map(|l| (-2..=2).map(move |d| (l, l + 50 * d)))
        .filter(|(_, r)| (0..n).contains(r))
        .collect();
    assert_eq!(seen.len(), want.len(), "pairs written");
    assert_eq!(seen, want);
}
