//! Checkpoints through the public API: the storage layout and `_metadata` on local files,
//! memory and S3 (moto); a job that fails mid-way restarts from its newest checkpoint and its
//! exactly-once file output equals a failure-free run; a stopped job resumes; rescale by key
//! groups.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use weir::checkpoint::CheckpointStore;
use weir::checkpoint::metadata::{FORMAT, OperatorSnapshot, SnapshotKind, SnapshotMetadata, SubtaskSnapshot};
use weir::prelude::*;

fn meta(job: &str, id: u64) -> SnapshotMetadata {
    SnapshotMetadata {
        format: FORMAT,
        job: job.into(),
        checkpoint_id: id,
        generation: 1,
        kind: SnapshotKind::Checkpoint,
        timestamp_ms: 0,
        max_parallelism: 128,
        operators: vec![OperatorSnapshot {
            uid: "win".into(),
            parallelism: 1,
            subtasks: vec![SubtaskSnapshot {
                subtask: 0,
                file: "win/0-g1".into(),
                size: 3,
                key_groups: vec![(5, 0, 3)],
                operator_state: None,
                chain: Vec::new(),
            }],
        }],
    }
}

/// The checkpoint layout, `_metadata` and retention on the store at `url` (also run on HDFS).
pub(crate) async fn layout_and_retention(url: &str) {
    let store = CheckpointStore::open(url, "layout-job").unwrap();
    assert!(store.latest().await.unwrap().is_none());
    for id in 1..=4 {
        let dir = store.checkpoint(id);
        dir.put_file("win/0-g1", bytes::Bytes::from_static(b"abc"))
            .await
            .unwrap();
        // Checkpoint 3 never completes: without _metadata it does not exist.
        if id != 3 {
            dir.write_metadata(&meta("layout-job", id)).await.unwrap();
        }
    }
    assert_eq!(store.completed().await.unwrap(), vec![1, 2, 4]);
    let (dir, latest) = store.latest().await.unwrap().unwrap();
    assert_eq!(latest, meta("layout-job", 4));
    assert_eq!(&dir.read_range("win/0-g1", 1..3).await.unwrap()[..], b"bc");
    // A second writer of checkpoint 4 (a zombie of an older run) cannot complete it again.
    let e = store
        .checkpoint(4)
        .write_metadata(&meta("layout-job", 4))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already completed by another writer"), "{e}");
    // Keep the newest 2 complete: 1 and the incomplete 3's elder siblings go.
    assert_eq!(store.retain(2).await.unwrap(), vec![1]);
    assert_eq!(store.completed().await.unwrap(), vec![2, 4]);
    assert_eq!(store.retain(1).await.unwrap(), vec![2, 3]);
    assert_eq!(store.completed().await.unwrap(), vec![4]);
}

#[tokio::test]
async fn layout_metadata_and_retention_on_local_files_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    layout_and_retention(&format!("file://{}", dir.path().display())).await;
    layout_and_retention("memory://layout-test").await;
}

fn s3_bucket() -> String {
    // scripts/test starts an S3 server (moto) and names the bucket; CI must not skip this.
    std::env::var("WEIR_S3_BUCKET").expect("WEIR_S3_BUCKET is set by scripts/test (S3 test server)")
}

#[tokio::test]
async fn layout_metadata_and_retention_on_s3() {
    layout_and_retention(&format!(
        "s3://{}/checkpoint-layout-{}",
        s3_bucket(),
        std::process::id()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_metadata_writers_on_s3_have_exactly_one_winner() {
    one_metadata_writer_wins(&format!("s3://{}/checkpoint-race-{}", s3_bucket(), std::process::id())).await;
}

/// Sixteen writers complete the same checkpoint at once on the store at `url`: exactly one
/// wins, and what is stored is the winner's (also run on HDFS).
pub(crate) async fn one_metadata_writer_wins(url: &str) {
    let store = CheckpointStore::open(url, "race").unwrap();
    for round in 1..=5u64 {
        let writers: Vec<_> = (0..16)
            .map(|w| {
                let dir = store.checkpoint(round);
                let mut m = meta("race", round);
                m.generation = w;
                tokio::spawn(async move { dir.write_metadata(&m).await.map(|_| w) })
            })
            .collect();
        let mut winners = Vec::new();
        for w in writers {
            if let Ok(id) = w.await.unwrap() {
                winners.push(id);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        // What is stored is the winner's.
        let (_, latest) = store.latest().await.unwrap().unwrap();
        assert_eq!(latest.generation, winners[0]);
    }
}

#[test]
fn checkpoints_on_s3_restore_a_failed_job_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (clean_out, out) = (tmp.path().join("clean"), tmp.path().join("out"));
    let chk = format!("s3://{}/checkpoint-jobs-{}", s3_bucket(), std::process::id());
    windowed_job(clean_out.to_str().unwrap(), &chk, None)
        .execute("s3-clean")
        .unwrap();
    let expected = common::committed_lines(&clean_out);
    let failure = Failure::at(30_000);
    // Paced to 2 s (10,000 rows a second per subtask): the failure needs an S3 checkpoint
    // complete before the last rows pass, which a loaded machine took longer than the default
    // pace's 0.5 s to give (CI run 63).
    let r = failure.execute(
        &windowed_job_paced(out.to_str().unwrap(), &chk, Some(failure.clone()), 2, 10_000),
        "s3-failing",
    );
    assert!(failure.happened(), "no checkpoint completed before the job's last rows");
    assert_eq!(r.restarts, 1);
    assert!(
        r.node("gen").unwrap().records_out < 65_000,
        "restored from S3, not restarted"
    );
    assert_eq!(common::committed_lines(&out), expected);
}

#[test]
fn a_job_on_the_disk_backend_restarted_on_the_same_machine_restores_from_local_copies() {
    // Local recovery (on by default with the disk backend): the restart reads every state
    // file from the copies kept beside the state, none from S3, and the output is the
    // failure-free output. Without local recovery the same restart downloads everything.
    let tmp = tempfile::tempdir().unwrap();
    let clean_out = tmp.path().join("clean");
    let chk = format!("s3://{}/local-recovery-{}", s3_bucket(), std::process::id());
    windowed_job(clean_out.to_str().unwrap(), &chk, None)
        .execute("local-clean")
        .unwrap();
    let expected = common::committed_lines(&clean_out);
    for local_recovery in [true, false] {
        let out = tmp.path().join(format!("out-{local_recovery}"));
        let state = tmp.path().join(format!("state-{local_recovery}"));
        let failure = Failure::at(30_000);
        let env = windowed_job(out.to_str().unwrap(), &chk, Some(failure.clone()));
        env.set_state_backend(weir::state::StateBackend::Disk(weir::state::DiskSettings {
            dir: state.clone(),
            local_recovery,
            ..Default::default()
        }));
        let job = format!("local-{local_recovery}");
        let metrics = env.metrics();
        let r = failure.execute_with_metrics(&env, &job, &metrics);
        assert!(failure.happened());
        assert_eq!(r.restarts, 1);
        assert_eq!(
            common::committed_lines(&out),
            expected,
            "local recovery {local_recovery}"
        );
        let reads = &metrics.checkpoints.restore_reads;
        let (local, remote) = (reads.local.load(Ordering::SeqCst), reads.remote.load(Ordering::SeqCst));
        eprintln!(
            "local recovery {local_recovery}: restored {local} bytes locally, {remote} from S3 in {} ms",
            metrics.checkpoints.restore_ms.load(Ordering::SeqCst)
        );
        if local_recovery {
            assert!(local > 0, "nothing read from local copies");
            assert_eq!(remote, 0, "local copies cover the whole checkpoint");
            assert!(
                !state.join("local-recovery").join(&job).exists(),
                "a finished job leaves no local copies"
            );
        } else {
            assert_eq!(local, 0);
            assert!(remote > 0);
            assert!(!state.join("local-recovery").exists(), "no copies were kept");
        }
    }
}

/// A failure injected once: at the first row from id `at` on that a task sees after a checkpoint
/// of the job completed, so the restart restores (however slow the machine) instead of starting
/// over. Run the job with [`Failure::execute`], which lets it see the job's checkpoints.
#[derive(Clone)]
pub(crate) struct Failure {
    at: i64,
    failed: Arc<AtomicBool>,
    checkpoints: Arc<std::sync::OnceLock<Arc<weir::runtime::metrics::CheckpointMetrics>>>,
}

impl Failure {
    fn at(at: i64) -> Self {
        Failure {
            at,
            failed: Arc::new(AtomicBool::new(false)),
            checkpoints: Arc::default(),
        }
    }

    /// Whether the row with `id` fails (once), counting only checkpoints that began after the
    /// first row from `at` on was seen (the second to complete after it), so the restored
    /// position is past every row read by then. `armed` keeps the count at that first row.
    fn strikes_past(&self, id: Option<i64>, armed: &std::sync::OnceLock<u64>) -> bool {
        let Some(c) = self.checkpoints.get() else {
            return false;
        };
        let done = c.completed.load(Ordering::SeqCst);
        id.is_some_and(|id| id >= self.at)
            && done >= *armed.get_or_init(|| done) + 2
            && !self.failed.swap(true, Ordering::SeqCst)
    }

    /// Whether the row with `id` fails (once).
    fn strikes(&self, id: Option<i64>) -> bool {
        id.is_some_and(|id| id >= self.at)
            && self
                .checkpoints
                .get()
                .is_some_and(|c| c.completed.load(Ordering::SeqCst) > 0)
            && !self.failed.swap(true, Ordering::SeqCst)
    }

    fn happened(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// Runs `env` (built with this failure) to its end.
    fn execute(&self, env: &StreamExecutionEnvironment, name: &str) -> JobResult {
        self.execute_with_metrics(env, name, &env.metrics())
    }

    /// [`Failure::execute`], counting into `metrics`.
    fn execute_with_metrics(
        &self,
        env: &StreamExecutionEnvironment,
        name: &str,
        metrics: &weir::runtime::metrics::JobMetrics,
    ) -> JobResult {
        let _ = self.checkpoints.set(metrics.checkpoints.clone());
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(env.execute_with(name, metrics, tokio_util::sync::CancellationToken::new()))
            .unwrap()
    }
}

/// Keyed tumbling windows over a rate-limited datagen into an exactly-once file sink; with
/// `fail_at`, a map fails once (see [`Failure`]).
fn windowed_job(out: &str, checkpoints: &str, fail_at: Option<Failure>) -> StreamExecutionEnvironment {
    windowed_job_at(out, checkpoints, fail_at, 2)
}

/// [`windowed_job`] with the window and sink at `window_parallelism`.
fn windowed_job_at(
    out: &str,
    checkpoints: &str,
    fail_at: Option<Failure>,
    window_parallelism: usize,
) -> StreamExecutionEnvironment {
    windowed_job_paced(out, checkpoints, fail_at, window_parallelism, 40_000)
}

/// [`windowed_job_at`] with its source at `rows_per_second`.
pub(crate) fn windowed_job_paced(
    out: &str,
    checkpoints: &str,
    fail_at: Option<Failure>,
    window_parallelism: usize,
    rows_per_second: u64,
) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.set_batch_size(500);
    env.enable_checkpointing(Duration::from_millis(50));
    env.set_checkpoint_storage(checkpoints);
    env.set_restart_strategy(RestartStrategy {
        attempts: 2,
        delay: Duration::from_millis(10),
        ..Default::default()
    });
    let cfg = DatagenConfig {
        rows: Some(40_000),
        rows_per_second: Some(rows_per_second),
        seed: 3,
        fields: vec![
            DatagenField::new("id", FieldKind::Sequence),
            DatagenField {
                start: Some(0),
                rows_per_ms: Some(10),
                ..DatagenField::new("ts", FieldKind::Timestamp)
            },
            DatagenField::random_int("k", 0, 9),
            DatagenField::random_int("v", 0, 999),
        ],
    };
    let src = env
        .add_source_named("gen", Arc::new(Datagen::new("gen", cfg).unwrap()))
        .with_watermarks(WatermarkStrategy::bounded_out_of_orderness(
            "ts",
            Duration::from_millis(5),
        ));
    let checked = src
        .filter(move |row| {
            if let Some(f) = &fail_at
                && f.strikes(row.get_i64("id"))
            {
                panic!("injected failure from row {} on", f.at);
            }
            true
        })
        .name("check");
    checked
        .key_by("k")
        .window(TumblingEventTimeWindows::of(Duration::from_millis(100)))
        .aggregate(&[Agg::count(), Agg::sum("v")])
        .name("win")
        .set_parallelism(window_parallelism)
        .add_sink(FileSink::new("out", FileSinkConfig::new(out, Format::Json)).unwrap())
        .name("out")
        .set_parallelism(window_parallelism);
    env
}

#[test]
fn the_default_restart_strategy_does_not_give_up() {
    // Flink 2's default with checkpointing: restarts without a limit on attempts. A job whose
    // operator fails five times in a row (more than the old default of 3) still completes.
    assert_eq!(RestartStrategy::default().attempts, u32::MAX);
    let tmp = tempfile::tempdir().unwrap();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    env.enable_checkpointing(Duration::from_millis(20));
    env.set_checkpoint_storage(format!("file://{}", tmp.path().join("chk").display()));
    env.set_restart_strategy(RestartStrategy {
        delay: Duration::from_millis(5),
        backoff: 1.0,
        ..Default::default()
    });
    let failures = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = failures.clone();
    let sink = Collect::new();
    env.add_source(common::numbers(2_000, 10))
        .filter(move |_| {
            if seen.load(Ordering::SeqCst) < 5 {
                seen.fetch_add(1, Ordering::SeqCst);
                panic!("injected failure");
            }
            true
        })
        .add_sink(sink.clone());
    let r = env.execute("stubborn").unwrap();
    assert_eq!(r.restarts, 5);
    assert_eq!(failures.load(Ordering::SeqCst), 5);
}

#[test]
fn a_failed_job_restarts_from_its_checkpoint_with_exactly_once_output() {
    let tmp = tempfile::tempdir().unwrap();
    let (clean_out, failed_out) = (tmp.path().join("clean"), tmp.path().join("failed"));
    let chk = format!("file://{}", tmp.path().join("chk").display());
    let r = windowed_job(clean_out.to_str().unwrap(), &chk, None)
        .execute("clean")
        .unwrap();
    assert_eq!(r.restarts, 0);
    let expected = common::committed_lines(&clean_out);
    // 40 windows of 100 ms (4 s of event time) × 10 keys.
    assert_eq!(expected.len(), 400);

    let failure = Failure::at(30_000);
    let r = failure.execute(
        &windowed_job(failed_out.to_str().unwrap(), &chk, Some(failure.clone())),
        "failing",
    );
    assert!(failure.happened(), "the failure was injected");
    assert_eq!(r.restarts, 1);
    let store = CheckpointStore::open(&chk, "failing").unwrap();
    let newest = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(store.completed())
        .unwrap();
    assert!(!newest.is_empty(), "checkpoints completed");
    // Restored, not restarted from scratch: the source resumed from its checkpointed position.
    let generated = r.node("gen").unwrap().records_out;
    assert!(
        generated < 65_000,
        "the source re-read {generated} rows: not resumed from a checkpoint"
    );
    assert_eq!(
        common::committed_lines(&failed_out),
        expected,
        "nothing lost, nothing duplicated"
    );
}

#[test]
fn a_stopped_job_resumes_from_its_newest_checkpoint_at_another_parallelism() {
    let tmp = tempfile::tempdir().unwrap();
    let (clean_out, out) = (tmp.path().join("clean"), tmp.path().join("out"));
    let chk = format!("file://{}", tmp.path().join("chk").display());
    windowed_job(clean_out.to_str().unwrap(), &chk, None)
        .execute("clean")
        .unwrap();
    let expected = common::committed_lines(&clean_out);

    // Stop after 0.4 s (of about 1 s): the output so far is what the checkpoints committed.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = windowed_job(out.to_str().unwrap(), &chk, None);
    let cancel = tokio_util::sync::CancellationToken::new();
    let stopper = cancel.clone();
    rt.spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        stopper.cancel();
    });
    let metrics = env.metrics();
    let r = rt.block_on(env.execute_with("resumable", &metrics, cancel)).unwrap();
    assert!(r.cancelled);
    let partial = common::committed_lines(&out);
    assert!(
        partial.len() < expected.len(),
        "stopped before the end ({} rows)",
        partial.len()
    );
    assert!(
        partial.iter().all(|l| expected.contains(l)),
        "committed rows are final rows"
    );

    // Resume with the windows (and sink) at parallelism 3: key groups move to new subtasks.
    let env = windowed_job_at(out.to_str().unwrap(), &chk, None, 3);
    env.set_restore(RestoreFrom::Latest);
    let r = env.execute("resumable").unwrap();
    assert!(r.node("gen").unwrap().records_out < 40_000, "resumed, not restarted");
    assert_eq!(
        common::committed_lines(&out),
        expected,
        "nothing lost, nothing duplicated across stop and resume"
    );
}

#[test]
fn failures_at_random_points_never_lose_or_duplicate_output() {
    let tmp = tempfile::tempdir().unwrap();
    let chk = format!("file://{}", tmp.path().join("chk").display());
    let clean_out = tmp.path().join("clean");
    windowed_job(clean_out.to_str().unwrap(), &chk, None)
        .execute("clean")
        .unwrap();
    let expected = common::committed_lines(&clean_out);
    // A fixed seed keeps the points reproducible; they spread over the whole input.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..6 {
        let at = 1_000 + (common::cli::next_random(&mut seed) % 38_000) as i64;
        let out = tmp.path().join(format!("out-{round}"));
        let failure = Failure::at(at);
        let r = failure.execute(
            &windowed_job(out.to_str().unwrap(), &chk, Some(failure.clone())),
            &format!("random-{round}"),
        );
        assert!(failure.happened());
        assert_eq!(r.restarts, 1, "round {round}, failure at row {at}");
        assert_eq!(
            common::committed_lines(&out),
            expected,
            "round {round}, failure at row {at}"
        );
    }
}

/// Runs `env` for `millis` then stops it (state stays in its newest checkpoint).
fn run_for(env: &StreamExecutionEnvironment, name: &str, millis: u64) -> JobResult {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let control = JobControl::default();
    let stopper = control.clone();
    rt.spawn(async move {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        stopper.cancel();
    });
    rt.block_on(env.execute_controlled(name, &env.metrics(), &control))
        .unwrap()
}

#[test]
fn rescaling_1_4_2_3_keeps_keyed_state_and_windows_in_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let chk = format!("file://{}", tmp.path().join("chk").display());
    let (clean_out, out) = (tmp.path().join("clean"), tmp.path().join("out"));
    windowed_job(clean_out.to_str().unwrap(), &chk, None)
        .execute("clean")
        .unwrap();
    let expected = common::committed_lines(&clean_out);
    let mut generated = 0;
    for (step, p) in [1usize, 4, 2].into_iter().enumerate() {
        let env = windowed_job_at(out.to_str().unwrap(), &chk, None, p);
        if step > 0 {
            env.set_restore(RestoreFrom::Latest);
        }
        let r = run_for(&env, "rescaled", 250);
        assert!(r.cancelled, "step {step} ran to its end; the input should outlast it");
        generated += r.node("gen").unwrap().records_out;
    }
    let env = windowed_job_at(out.to_str().unwrap(), &chk, None, 3);
    env.set_restore(RestoreFrom::Latest);
    let r = env.execute("rescaled").unwrap();
    generated += r.node("gen").unwrap().records_out;
    // Each run resumed where the previous one's checkpoint left the source.
    assert!(
        generated < 60_000,
        "the source produced {generated} rows over four runs"
    );
    assert_eq!(
        common::committed_lines(&out),
        expected,
        "1 → 4 → 2 → 3 gives the unscaled output"
    );
}

#[test]
fn stop_with_savepoint_then_start_from_it_with_another_job_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let chk = format!("file://{}", tmp.path().join("chk").display());
    let (clean_out, out) = (tmp.path().join("clean"), tmp.path().join("out"));
    windowed_job(clean_out.to_str().unwrap(), &chk, None)
        .execute("clean")
        .unwrap();
    let expected = common::committed_lines(&clean_out);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = windowed_job(out.to_str().unwrap(), &chk, None);
    let control = JobControl::default();
    let asker = control.clone();
    let savepoint = rt.spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Two callers ask at once (an operator repeating a stop whose answer it lost): one
        // savepoint is taken and both get it.
        let (a, b) = tokio::join!(asker.stop_with_savepoint(), asker.stop_with_savepoint());
        (a.unwrap(), b.unwrap())
    });
    let r = rt
        .block_on(env.execute_controlled("saved", &env.metrics(), &control))
        .unwrap();
    assert!(r.cancelled);
    let (path, again) = rt.block_on(savepoint).unwrap();
    assert!(path.contains("/saved/savepoints/savepoint-"), "{path}");
    assert_eq!(again, path, "both stop requests get the savepoint the job stopped with");
    // Once stopped, a stop request is answered at once with that savepoint, and a savepoint
    // request is refused, saying why (neither waits for a run that will not come).
    assert_eq!(rt.block_on(control.stop_with_savepoint()).unwrap(), path);
    let refused = rt.block_on(control.savepoint()).unwrap_err().to_string();
    assert!(refused.contains("stopping with savepoint"), "{refused}");
    // Savepoint output is committed at once.
    let at_savepoint = common::committed_lines(&out);
    assert!(!at_savepoint.is_empty() && at_savepoint.len() < expected.len());

    // A job without the savepoint's window (another id) is refused, naming the operator…
    let other = tmp.path().join("other");
    let env = StreamExecutionEnvironment::new();
    env.enable_checkpointing(Duration::from_millis(50));
    env.set_checkpoint_storage(&chk);
    env.set_restore(RestoreFrom::Snapshot(path.clone()));
    let cfg = DatagenConfig {
        rows: Some(10),
        seed: 3,
        fields: vec![DatagenField::new("id", FieldKind::Sequence)],
        ..Default::default()
    };
    env.add_source_named("gen", Arc::new(Datagen::new("gen", cfg).unwrap()))
        .set_parallelism(2)
        .add_sink(FileSink::new("other", FileSinkConfig::new(other.to_str().unwrap(), Format::Json)).unwrap())
        .name("other");
    let e = env.execute("saved-other").unwrap_err().to_string();
    assert!(
        e.contains("no longer has: out, win") || e.contains("no longer has: win, out"),
        "{e}"
    );
    // …unless non-restored state is allowed.
    env.allow_non_restored_state(true);
    env.execute("saved-other").unwrap();

    // The same job at parallelism 4 from the savepoint: nothing lost or repeated.
    let env = windowed_job_at(out.to_str().unwrap(), &chk, None, 4);
    env.set_restore(RestoreFrom::Snapshot(path.clone()));
    env.execute("saved").unwrap();
    assert_eq!(
        common::committed_lines(&out),
        expected,
        "from the savepoint at parallelism 4"
    );
}

/// A sequence of ids at parallelism 2 into `sink`, checkpointing every `interval` to `chk`,
/// restoring as `restore` says: `rows` of them, or unbounded and paced at 30,000 a second (the
/// bounded resumed runs go at full speed).
fn sequence_job(
    chk: &str,
    sink: &Collect,
    interval: Duration,
    restore: RestoreFrom,
    rows: Option<u64>,
) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.enable_checkpointing(interval);
    env.set_checkpoint_storage(chk);
    env.set_restore(restore);
    let cfg = DatagenConfig {
        rows,
        rows_per_second: rows.is_none().then_some(30_000),
        seed: 1,
        fields: vec![DatagenField::new("id", FieldKind::Sequence)],
    };
    env.add_source_named("gen", Arc::new(Datagen::new("gen", cfg).unwrap()))
        .add_sink(sink.clone());
    env
}

/// Flink's synchronous savepoint: after a stop-with-savepoint's barrier the sources emit
/// nothing, so even an at-least-once sink sees each row once over the stopped run and the run
/// resumed from the savepoint (rows emitted after the barrier would be read again). The first
/// run's source never ends, so the stop lands mid-run however fast the machine (its rate only
/// paces it, leaving the runtime's threads room); the resumed run ends a few thousand rows past
/// the highest id the first one wrote.
#[test]
fn a_stop_with_savepoint_halts_the_sources_at_its_barrier() {
    let tmp = tempfile::tempdir().unwrap();
    let chk = format!("file://{}", tmp.path().join("chk").display());
    let sink = Collect::new();
    // Only the savepoint: no checkpoint is due in the test's time.
    let job = |restore: Option<String>, rows: Option<u64>| {
        let restore = restore.map_or(RestoreFrom::Fresh, RestoreFrom::Snapshot);
        sequence_job(&chk, &sink, Duration::from_secs(3600), restore, rows)
    };
    let ids = |sink: &Collect| -> Vec<i64> { common::sorted_ids(&sink.rows_json()) };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = job(None, None);
    let control = JobControl::default();
    let (asker, seen) = (control.clone(), sink.clone());
    let savepoint = rt.spawn(async move {
        common::eventually(|| seen.len() >= 2_000).await;
        asker.stop_with_savepoint().await
    });
    let r = rt
        .block_on(env.execute_controlled("halted", &env.metrics(), &control))
        .unwrap();
    assert!(r.cancelled);
    let path = rt.block_on(savepoint).unwrap().unwrap();
    let stopped_at = sink.len();
    let total = ids(&sink).last().copied().expect("rows before the stop") as usize + 5_000;
    job(Some(path), Some(total as u64)).execute("halted").unwrap();
    let ids = ids(&sink);
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(
        (ids.len(), unique.len()),
        (total, total),
        "every row once (the first run stopped after {stopped_at})"
    );
    assert_eq!(ids, (0..total as i64).collect::<Vec<_>>());
}

/// A job stopped with a savepoint and resumed from "the newest" state (`--resume`, a cluster's
/// restart, the operator's next deployment when the savepoint's reply was lost) restores that
/// savepoint, not the checkpoint before it: every row once with an at-least-once sink, where
/// the older checkpoint would replay the rows between the two.
#[test]
fn a_job_stopped_with_a_savepoint_resumes_from_it_not_from_an_older_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let chk = format!("file://{}", tmp.path().join("chk").display());
    let sink = Collect::new();
    let job = |rows: Option<u64>| sequence_job(&chk, &sink, Duration::from_millis(50), RestoreFrom::Latest, rows);
    let ids = |sink: &Collect| -> Vec<i64> { common::sorted_ids(&sink.rows_json()) };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = job(None);
    let metrics = env.metrics();
    let control = JobControl::default();
    let (asker, m) = (control.clone(), metrics.clone());
    let savepoint = rt.spawn(async move {
        // Checkpoints first, so an older one is there to be wrongly preferred.
        common::eventually(|| m.checkpoints.completed.load(std::sync::atomic::Ordering::Relaxed) >= 2).await;
        asker.stop_with_savepoint().await
    });
    let r = rt
        .block_on(env.execute_controlled("resumed", &metrics, &control))
        .unwrap();
    assert!(r.cancelled);
    let path = rt.block_on(savepoint).unwrap().unwrap();
    assert!(path.contains("/savepoints/savepoint-"), "{path}");
    let total = ids(&sink).last().copied().expect("rows before the stop") as usize + 5_000;
    job(Some(total as u64)).execute("resumed").unwrap();
    let ids = ids(&sink);
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!((ids.len(), unique.len()), (total, total), "every row once");
}

/// The CLI job of the SIGKILL test: keyed windows over rate-limited data into exactly-once files.
fn cli_job(out: &std::path::Path, chk: &std::path::Path) -> String {
    format!(
        r#"
name: killed
parallelism: 2
checkpoint: {{interval_ms: 100, storage: "{}"}}
sources:
  - id: gen
    connector: datagen
    rows: 60000
    rows_per_second: 30000
    seed: 5
    watermark: {{field: ts, max_out_of_orderness_ms: 5}}
    fields:
      - {{name: ts, kind: timestamp, start: 0, rows_per_ms: 10}}
      - {{name: k, kind: random, min: 0, max: 19}}
      - {{name: v, kind: random, min: 0, max: 999}}
operators:
  - {{id: keyed, input: gen, key_by: k}}
  - id: win
    input: keyed
    window: {{size_ms: 200, aggregates: [{{kind: count}}, {{kind: sum, field: v}}]}}
sinks:
  - {{id: out, input: win, connector: file, path: "{}", format: json}}
"#,
        chk.display(),
        out.display()
    )
}

#[test]
fn the_cli_survives_sigkill_at_random_points_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let weir = env!("CARGO_BIN_EXE_weir");
    let clean_out = tmp.path().join("clean-out");
    let clean = cli_job(&clean_out, &tmp.path().join("clean-chk"));
    let status = common::cli::weir_run(tmp.path(), "clean.yaml", &clean, false).status();
    assert!(status.unwrap().success());
    let expected = common::committed_lines(&clean_out);
    assert_eq!(expected.len(), 30 * 20, "30 windows of 200 ms × 20 keys");

    // Kill 3 times at random points of the ~2 s run, then let it finish.
    let out = tmp.path().join("out");
    let job = cli_job(&out, &tmp.path().join("chk"));
    let kills = common::cli::kill_and_resume(tmp.path(), "job.yaml", &job, 3, 0x2545_f491_4f6c_dd1d, 300, 700);
    assert_eq!(kills, 3, "the job was killed three times");
    assert_eq!(
        common::committed_lines(&out),
        expected,
        "SIGKILL three times: nothing lost, nothing duplicated"
    );
    // The job ran to its end: resuming it again has nothing to do and writes nothing.
    let files = |dir: &std::path::Path| -> Vec<String> {
        let mut f: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        f.sort();
        f
    };
    let before = files(&out);
    for _ in 0..2 {
        let again = common::cli::weir_run(tmp.path(), "job.yaml", &job, true)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&again.stderr);
        assert!(again.status.success(), "{err}");
        assert!(
            err.contains("already ran to the end of its input; nothing to resume"),
            "{err}"
        );
    }
    assert_eq!(files(&out), before, "no new output files");
    assert_eq!(common::committed_lines(&out), expected);
    // Inspect what is kept.
    let list = std::process::Command::new(weir)
        .args(["checkpoints", "list"])
        .arg(tmp.path().join("chk").join("killed"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success() && text.contains("| chk-") && text.contains("Checkpoint"),
        "{text}"
    );
    let newest = text.lines().rev().find_map(|l| l.strip_prefix("| chk-")).unwrap();
    let id = newest.split_whitespace().next().unwrap();
    let show = std::process::Command::new(weir)
        .args(["checkpoints", "show"])
        .arg(tmp.path().join("chk").join("killed").join(format!("chk-{id}")))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.status.success() && text.contains("| win | 2 |") && text.contains("key groups"),
        "{text}"
    );
}

#[test]
fn a_file_source_resumes_from_its_checkpointed_line() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    // Three files of JSON lines, ids 0..15000.
    for f in 0..3 {
        let text: String = (f * 5_000..(f + 1) * 5_000)
            .map(|i| format!("{{\"id\":{i}}}\n"))
            .collect();
        std::fs::write(input.join(format!("part-{f}.jsonl")), text).unwrap();
    }
    // Rows the filter saw before the first one from the failure's id on, and after the failure.
    let (armed, seen, after) = (
        Arc::new(std::sync::OnceLock::<u64>::new()),
        Arc::new(std::sync::atomic::AtomicU64::new(0)),
        Arc::new(std::sync::atomic::AtomicU64::new(0)),
    );
    let seen_when_armed = Arc::new(std::sync::OnceLock::<u64>::new());
    let run = |out: &std::path::Path, fail_at: Option<Failure>| {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(2);
        env.set_batch_size(250);
        env.enable_checkpointing(Duration::from_millis(50));
        env.set_checkpoint_storage(format!("file://{}", tmp.path().join("chk").display()));
        env.set_restart_strategy(RestartStrategy {
            attempts: 2,
            delay: Duration::from_millis(10),
            ..Default::default()
        });
        let mut cfg = FileSourceConfig::new(input.to_str().unwrap(), Format::Json);
        cfg.schema = Some(SchemaSpec::Text("id BIGINT".into()));
        let (armed, seen, after, seen_when_armed) =
            (armed.clone(), seen.clone(), after.clone(), seen_when_armed.clone());
        // One filter subtask: when it fails, no other sees rows of the failed attempt.
        env.add_source_named("files", Arc::new(FileSource::new("files", cfg)))
            .filter(move |row| {
                let id = row.get_i64("id").unwrap_or(0);
                if let Some(f) = &fail_at {
                    if f.happened() {
                        after.fetch_add(1, Ordering::SeqCst);
                    } else {
                        let n = seen.fetch_add(1, Ordering::SeqCst);
                        if id >= f.at {
                            seen_when_armed.get_or_init(|| n);
                        }
                        if f.strikes_past(Some(id), &armed) {
                            panic!("injected failure from {} on", f.at);
                        }
                    }
                }
                if id % 20 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                true
            })
            .set_parallelism(1)
            .add_sink(FileSink::new("out", FileSinkConfig::new(out.to_str().unwrap(), Format::Json)).unwrap())
            .name("out");
        env
    };
    let failure = Failure::at(7_777);
    let out = tmp.path().join("out");
    let r = failure.execute(&run(&out, Some(failure.clone())), "files-restarted");
    assert!(failure.happened());
    assert_eq!(r.restarts, 1);
    // The restored checkpoint began after the filter had seen `seen_when_armed` rows, all read
    // by then: the restart reads at most the rest (a restart from scratch would read them all).
    let before = *seen_when_armed.get().unwrap() + 1;
    let again = after.load(Ordering::SeqCst);
    assert!(
        again <= 15_000 - before,
        "resumed from the checkpointed line: {again} rows after the restart, {before} seen before"
    );
    let ids = common::sorted_ids(&common::committed_lines(&out));
    assert!(
        ids == (0..15_000).collect::<Vec<_>>(),
        "every line exactly once ({} rows)",
        ids.len()
    );
}

/// A state file written locally (as the disk backend writes its snapshots) is uploaded in
/// 16 MiB parts when large, and reads back byte for byte, on local files, memory and S3; one
/// with a temporary name is hard-linked into a local directory, and stays when the name goes.
async fn local_file_uploads(url: &str) {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let store = CheckpointStore::open(url, "upload-job").unwrap();
    let dir = store.checkpoint(1);
    for (size, named) in [(1_000u64, false), (40 << 20, false), (5_000, true)] {
        let (mut file, temp) = tempfile::NamedTempFile::new().unwrap().into_parts();
        let bytes: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        file.write_all(&bytes).unwrap();
        let name = format!("op/0-g1-{size}");
        let given = named.then_some(&*temp);
        assert_eq!(dir.put_local_file(&name, file, size, given).await.unwrap(), size);
        if named && let Some(local) = url.strip_prefix("file://") {
            let stored = std::path::Path::new(local).join("upload-job/chk-1").join(&name);
            assert_eq!(std::fs::metadata(&stored).unwrap().nlink(), 2, "{url}: linked");
        }
        drop(temp);
        let back = dir.read_range(&name, 0..size).await.unwrap();
        assert!(back.as_ref() == bytes.as_slice(), "{url}: {size} bytes round trip");
        let mid = size / 2;
        let part = dir.read_range(&name, mid..mid + 10).await.unwrap();
        assert_eq!(part.as_ref(), &bytes[mid as usize..mid as usize + 10]);
    }
}

#[tokio::test]
async fn large_local_state_files_upload_in_parts_locally_and_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    local_file_uploads(&format!("file://{}", dir.path().display())).await;
    local_file_uploads("memory://upload-test").await;
}

#[tokio::test]
async fn large_local_state_files_upload_in_parts_on_s3() {
    local_file_uploads(&format!("s3://{}/upload-{}", s3_bucket(), std::process::id())).await;
}
