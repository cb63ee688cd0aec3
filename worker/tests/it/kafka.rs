//! The Kafka connectors against a real Apache Kafka broker (scripts/test starts one and sets
//! KAFKA_BOOTSTRAP; without it these tests fail, they do not skip): reading partitions with
//! metadata and dead letters, writing with keys, and exactly-once reading through checkpoints,
//! including a restore at another source parallelism.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use weir::prelude::*;

fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP").expect("KAFKA_BOOTSTRAP is set by scripts/test (it starts a Kafka broker)")
}

fn topic(name: &str) -> String {
    format!("{name}-{}-{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1_000_000_007
}

/// Produces `records` (key, value) to `topic` and waits for every acknowledgement.
fn produce(topic: &str, records: &[(String, String)]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("queue.buffering.max.messages", "1000000")
            .create()
            .unwrap();
        let mut pending = Vec::new();
        for (k, v) in records {
            let f = producer
                .send_result(FutureRecord::to(topic).key(k.as_str()).payload(v.as_str()))
                .map_err(|(e, _)| e)
                .unwrap();
            pending.push(f);
        }
        for f in pending {
            f.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
    });
}

/// A consumer of every record of `topic` from the start, in a group of its own.
fn reader(topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", format!("check-{topic}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    consumer
}

fn schema() -> SchemaSpec {
    SchemaSpec::Text("id BIGINT, k BIGINT, v BIGINT".into())
}

fn source_config(topic: &str) -> KafkaSourceConfig {
    let mut c = KafkaSourceConfig::new(&bootstrap(), topic);
    c.schema = Some(schema());
    c.bounded = true;
    c
}

fn records(n: i64) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("{}", i % 7),
                format!(r#"{{"id":{i},"k":{},"v":{}}}"#, i % 13, i * 3),
            )
        })
        .collect()
}

#[test]
fn reads_every_partition_with_metadata_and_dead_letters_at_parallelism_1_2_4() {
    let t = topic("read");
    let mut recs = records(2_000);
    recs.push(("bad".into(), "not json".into()));
    recs.push(("bad".into(), String::new()));
    produce(&t, &recs);
    let mut results = Vec::new();
    for p in [1, 2, 4] {
        let dir = tempfile::tempdir().unwrap();
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        env.set_dead_letter(dir.path().join("dead").to_str().unwrap());
        let mut cfg = source_config(&t);
        cfg.metadata = true;
        let sink = Collect::new();
        env.add_source_named("kafka", Arc::new(KafkaSource::new("kafka", cfg).unwrap()))
            .add_sink(sink.clone());
        let r = env.execute("kafka-read").unwrap();
        let mut rows = sink.rows_json();
        rows.sort();
        assert_eq!(rows.len(), 2_000, "p={p}");
        assert_eq!(r.dead_letters(), 2, "p={p}: a non-JSON and an empty record");
        let dead = common::read_lines(&dir.path().join("dead"));
        assert!(dead.iter().any(|l| l.contains("not json")), "{dead:?}");
        let mut ids: Vec<i64> = Vec::new();
        let mut partitions = std::collections::BTreeSet::new();
        for row in &rows {
            let v: serde_json::Value = serde_json::from_str(row).unwrap();
            ids.push(v["id"].as_i64().unwrap());
            assert_eq!(
                v["kafka_key"].as_str().unwrap(),
                format!("{}", v["id"].as_i64().unwrap() % 7)
            );
            assert!(v["kafka_offset"].as_i64().unwrap() >= 0 && v["kafka_timestamp"].is_string());
            partitions.insert(v["kafka_partition"].as_i64().unwrap());
        }
        ids.sort();
        assert_eq!(ids, (0..2_000).collect::<Vec<_>>(), "p={p}: every record once");
        assert_eq!(partitions.len(), 4, "p={p}: all four partitions read");
        results.push(rows);
    }
    assert!(
        results.windows(2).all(|w| w[0] == w[1]),
        "the same rows at parallelism 1, 2 and 4"
    );
}

#[test]
fn writes_keyed_records() {
    let t = topic("write");
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let cfg = DatagenConfig {
        rows: Some(1_000),
        fields: vec![
            DatagenField::new("id", FieldKind::Sequence),
            DatagenField::random_int("k", 0, 9),
        ],
        ..Default::default()
    };
    let mut sink = KafkaSinkConfig::new(&bootstrap(), &t);
    sink.key_fields = vec!["k".into()];
    env.add_source(Datagen::new("gen", cfg).unwrap())
        .add_sink(KafkaSink::new("out", sink).unwrap());
    env.execute("kafka-write").unwrap();
    // Read everything back.
    let consumer = reader(&t);
    let mut seen: BTreeMap<i64, String> = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < 1_000 && std::time::Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            assert_eq!(key, format!(r#"{{"k":{}}}"#, v["k"]));
            seen.insert(v["id"].as_i64().unwrap(), key);
        }
    }
    assert_eq!(seen.len(), 1_000, "every row written once");
}

/// Kafka → keyed windows-free running count → exactly-once files, checkpointing; the filter
/// fails once at `fail_at` when given.
fn counting_job(
    t: &str,
    out: &str,
    chk: &str,
    source_p: usize,
    fail_at: Option<(i64, Arc<AtomicBool>)>,
    attempts: u32,
) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.set_batch_size(500);
    env.enable_checkpointing(Duration::from_millis(50));
    env.set_checkpoint_storage(chk);
    env.set_restart_strategy(RestartStrategy {
        attempts,
        delay: Duration::from_millis(10),
        ..Default::default()
    });
    env.add_source_named("kafka", Arc::new(KafkaSource::new("kafka", source_config(t)).unwrap()))
        .set_parallelism(source_p)
        .filter(move |row| {
            if let Some((at, failed)) = &fail_at
                && row.get_i64("id") == Some(*at)
                && !failed.swap(true, Ordering::SeqCst)
            {
                panic!("injected failure at id {at}");
            }
            // Slow enough that checkpoints happen while reading.
            if row.get_i64("id").unwrap_or(0) % 20 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            true
        })
        .name("check")
        .add_sink(FileSink::new("out", FileSinkConfig::new(out, Format::Json)).unwrap())
        .name("out");
    env
}

/// Panics naming how many ids are missing or repeated (not the whole lists).
fn assert_exactly(got: &[i64], expected: &[i64], what: &str) {
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for id in got {
        *counts.entry(*id).or_default() += 1;
    }
    let missing: Vec<i64> = expected.iter().filter(|i| !counts.contains_key(i)).copied().collect();
    let repeated: Vec<i64> = counts.iter().filter(|(_, n)| **n > 1).map(|(i, _)| *i).collect();
    assert!(
        missing.is_empty() && repeated.is_empty() && got.len() == expected.len(),
        "{what}: {} rows, {} missing (first {:?}), {} repeated (first {:?})",
        got.len(),
        missing.len(),
        &missing[..missing.len().min(5)],
        repeated.len(),
        &repeated[..repeated.len().min(5)]
    );
}

/// The ids of a sink directory's committed output, sorted.
fn committed(dir: &std::path::Path) -> Vec<i64> {
    common::sorted_ids(&common::committed_lines(dir))
}

#[test]
fn offsets_in_checkpoints_give_exactly_once_after_failure_and_at_another_parallelism() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("weir=info")
        .with_test_writer()
        .try_init(); // DEBUGLOG
    let t = topic("exactly-once");
    produce(&t, &records(20_000));
    let tmp = tempfile::tempdir().unwrap();
    let chk = format!("file://{}", tmp.path().join("chk").display());
    let expected: Vec<i64> = (0..20_000).collect();

    // A failure, restarted from the checkpoint's offsets.
    let out = tmp.path().join("restarted");
    let failed = Arc::new(AtomicBool::new(false));
    let r = counting_job(&t, out.to_str().unwrap(), &chk, 2, Some((12_345, failed.clone())), 2)
        .execute("kafka-restarted")
        .unwrap();
    assert!(failed.load(Ordering::SeqCst));
    assert_eq!(r.restarts, 1);
    let store = weir::checkpoint::CheckpointStore::open(&chk, "kafka-restarted").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let done = rt.block_on(store.completed()).unwrap();
    assert!(!done.is_empty(), "checkpoints completed");
    // A fresh restart would read the 12,345 rows before the failure again (32,345 in all).
    let read = r.node("kafka").unwrap().records_out;
    assert!(read < 36_000, "resumed from offsets, not re-read: {read}");
    assert_exactly(&committed(&out), &expected, "after a restart");

    // A failure without restarts, then resumed with the source at parallelism 3: the four
    // partitions' offsets move to new owners.
    let out = tmp.path().join("rescaled");
    let failed = Arc::new(AtomicBool::new(false));
    let e = counting_job(&t, out.to_str().unwrap(), &chk, 2, Some((9_999, failed)), 0).execute("kafka-rescaled");
    assert!(e.is_err(), "the job failed");
    let store = weir::checkpoint::CheckpointStore::open(&chk, "kafka-rescaled").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (dir, meta) = rt
        .block_on(store.latest())
        .unwrap()
        .expect("a checkpoint completed before the failure");
    let positions = meta.operator("kafka").map_or(0, |o| o.subtasks.len());
    assert!(positions > 0, "the source stored offsets: {meta:?}");
    // Records already consumed in that checkpoint: its offsets (topic → partition → next).
    let mut consumed = 0i64;
    for s in &meta.operator("kafka").unwrap().subtasks {
        let (off, len) = s.operator_state.expect("a source position");
        let bytes = rt.block_on(dir.read_range(&s.file, off..off + len)).unwrap();
        let offsets: BTreeMap<String, BTreeMap<i32, i64>> = weir::checkpoint::decode(&bytes).unwrap();
        consumed += offsets.values().flat_map(|p| p.values()).sum::<i64>();
    }
    let env = counting_job(&t, out.to_str().unwrap(), &chk, 3, None, 0);
    env.set_restore(RestoreFrom::Latest);
    let r = env.execute("kafka-rescaled").unwrap();
    // Each partition is read from its checkpointed offset to its end, by its new owner.
    let read = r.node("kafka").unwrap().records_out as i64;
    assert!(consumed > 0, "the checkpoint holds offsets");
    assert_eq!(read, 20_000 - consumed, "resumed from the checkpointed offsets");
    assert_eq!(
        committed(&out),
        expected,
        "nothing lost, nothing duplicated across the rescale"
    );
}

/// The ids of every record of `topic` a read_committed consumer sees (see [`committed_lines`]).
fn read_committed(topic: &str, want: usize, wait: Duration) -> Vec<i64> {
    common::sorted_ids(&committed_lines(topic, want, wait))
}

#[test]
fn the_exactly_once_sink_writes_every_record_once_across_a_failure() {
    let t = topic("eos");
    let tmp = tempfile::tempdir().unwrap();
    let chk = format!("file://{}", tmp.path().join("chk").display());
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.set_batch_size(250);
    env.enable_checkpointing(Duration::from_millis(100));
    env.set_checkpoint_storage(&chk);
    env.set_restart_strategy(RestartStrategy {
        attempts: 2,
        delay: Duration::from_millis(10),
        ..Default::default()
    });
    let cfg = DatagenConfig {
        rows: Some(20_000),
        rows_per_second: Some(20_000),
        fields: vec![DatagenField::new("id", FieldKind::Sequence)],
        ..Default::default()
    };
    let failed = Arc::new(AtomicBool::new(false));
    let flag = failed.clone();
    let mut sink = KafkaSinkConfig::new(&bootstrap(), &t);
    sink.delivery = Delivery::ExactlyOnce;
    sink.transactional_id_prefix = Some(format!("test-{t}"));
    env.add_source_named("gen", Arc::new(Datagen::new("gen", cfg).unwrap()))
        .filter(move |row| {
            if row.get_i64("id") == Some(13_000) && !flag.swap(true, Ordering::SeqCst) {
                panic!("injected failure");
            }
            true
        })
        .add_sink(KafkaSink::new("out", sink).unwrap());
    let r = env.execute("kafka-eos").unwrap();
    assert!(failed.load(Ordering::SeqCst));
    assert_eq!(r.restarts, 1);
    let ids = read_committed(&t, 20_000, Duration::from_secs(2));
    assert_exactly(&ids, &(0..20_000).collect::<Vec<_>>(), "read_committed after a failure");
}

#[test]
fn an_idle_partition_does_not_block_event_time_windows() {
    let t = topic("idle");
    // Partitions 0, 1 and 2 get 5 s of event time; partition 3 gets nothing.
    let records: Vec<(i32, String)> = (0..1_500i64)
        .map(|i| {
            (
                (i % 3) as i32,
                format!(r#"{{"id":{i},"k":{},"v":{}}}"#, i % 3, i * 10 / 3),
            )
        })
        .collect();
    produce_to(&t, &records);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The topic has 4 partitions (the broker's default): make sure the fourth exists and is empty.
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    let mut cfg = KafkaSourceConfig::new(&bootstrap(), &t);
    cfg.schema = Some(SchemaSpec::Text("id BIGINT, k BIGINT, v BIGINT".into()));
    let sink = Collect::new();
    env.add_source_named("kafka", Arc::new(KafkaSource::new("kafka", cfg).unwrap()))
        .with_watermarks(
            WatermarkStrategy::bounded_out_of_orderness("v", Duration::ZERO).with_idleness(Duration::from_millis(300)),
        )
        .key_by("k")
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .aggregate(&[Agg::count()])
        .add_sink(sink.clone());
    let control = JobControl::default();
    let stopper = control.clone();
    let seen = sink.clone();
    let watcher = std::thread::spawn(move || {
        // Windows [0, 1 s) … [3 s, 4 s) of 3 keys fire while the job runs, although partition 3
        // never has data; the job is stopped only afterwards.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while seen.len() < 12 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let fired = seen.len();
        stopper.cancel();
        fired
    });
    let metrics = env.metrics();
    rt.block_on(env.execute_controlled("kafka-idle", &metrics, &control))
        .unwrap();
    let fired_while_running = watcher.join().unwrap();
    assert!(
        fired_while_running >= 12,
        "windows fired while running: {fired_while_running}"
    );
}

#[test]
fn partitions_added_later_are_discovered_and_read() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
    use rdkafka::client::DefaultClientContext;
    let t = topic("grow");
    produce(&t, &records(400));
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let mut cfg = KafkaSourceConfig::new(&bootstrap(), &t);
    cfg.schema = Some(schema());
    cfg.partition_discovery_ms = 200;
    let sink = Collect::new();
    env.add_source_named("kafka", Arc::new(KafkaSource::new("kafka", cfg).unwrap()))
        .add_sink(sink.clone());
    let control = JobControl::default();
    let (stopper, seen, topic_name) = (control.clone(), sink.clone(), t.clone());
    let grower = std::thread::spawn(move || {
        let wait_for = |n: usize| {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while seen.len() < n && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        wait_for(400);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                .set("bootstrap.servers", bootstrap())
                .create()
                .unwrap();
            let r = admin
                .create_partitions(&[NewPartitions::new(&topic_name, 6)], &AdminOptions::new())
                .await
                .unwrap();
            r[0].as_ref().unwrap();
            let producer: FutureProducer = ClientConfig::new()
                .set("bootstrap.servers", bootstrap())
                .set("topic.metadata.refresh.interval.ms", "100")
                .create()
                .unwrap();
            for i in 400..600i64 {
                let v = format!(r#"{{"id":{i},"k":0,"v":0}}"#);
                let part = 4 + (i % 2) as i32;
                loop {
                    let sent = producer
                        .send(
                            FutureRecord::<(), str>::to(&topic_name).partition(part).payload(&v),
                            Duration::from_secs(5),
                        )
                        .await;
                    if sent.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await; // new partition not known yet
                }
            }
        });
        wait_for(600);
        stopper.cancel();
    });
    let metrics = env.metrics();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(env.execute_controlled("kafka-grow", &metrics, &control))
        .unwrap();
    grower.join().unwrap();
    let ids = common::sorted_ids(&sink.rows_json());
    assert_exactly(
        &ids,
        &(0..600).collect::<Vec<_>>(),
        "records of the two new partitions read too",
    );
}

/// Kafka → keyed 100 ms windows → Kafka (exactly-once), as a pipeline file for `weir run`.
fn window_job_yaml(input: &str, output: &str, chk: &std::path::Path) -> String {
    format!(
        r#"
name: kafka-windows
parallelism: 2
checkpoint: {{interval_ms: 100, storage: "{chk}"}}
sources:
  - id: events
    connector: kafka
    bootstrap_servers: "{b}"
    topic: {input}
    bounded: true
    schema: "id BIGINT, k BIGINT, v BIGINT"
    watermark: {{field: v, max_out_of_orderness_ms: 50}}
operators:
  - {{id: keyed, input: events, key_by: k}}
  - id: win
    input: keyed
    window: {{size_ms: 100, aggregates: [{{kind: count}}, {{kind: sum, field: id}}]}}
sinks:
  - {{id: out, input: win, connector: kafka, bootstrap_servers: "{b}", topic: {output},
     key_fields: [k], delivery: exactly_once, transactional_id_prefix: "{output}"}}
"#,
        chk = chk.display(),
        b = bootstrap()
    )
}

/// Every record of `topic` a read_committed consumer sees within `wait` after `want` arrived,
/// as text, sorted.
fn committed_lines(topic: &str, want: usize, wait: Duration) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", format!("check-{topic}-{}", rand_suffix()))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut quiet: Option<std::time::Instant> = None;
    while std::time::Instant::now() < deadline {
        if lines.len() >= want
            && *quiet.get_or_insert_with(|| std::time::Instant::now() + wait) <= std::time::Instant::now()
        {
            break;
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            lines.push(String::from_utf8(m.unwrap().payload().unwrap().to_vec()).unwrap());
        }
    }
    lines.sort();
    lines
}

#[test]
fn sigkill_of_a_kafka_to_kafka_exactly_once_job_loses_and_repeats_nothing() {
    let input = topic("win-in");
    // 200,000 events over 20 s of event time (v = ms), keys 0..9.
    let recs: Vec<(String, String)> = (0..200_000i64)
        .map(|i| {
            (
                format!("{}", i % 10),
                format!(r#"{{"id":{i},"k":{},"v":{}}}"#, i % 10, i / 10),
            )
        })
        .collect();
    produce(&input, &recs);
    let tmp = tempfile::tempdir().unwrap();
    let clean_out = topic("win-clean");
    let clean = window_job_yaml(&input, &clean_out, &tmp.path().join("clean-chk"));
    let status = common::cli::weir_run(tmp.path(), "clean.yaml", &clean, false).status();
    assert!(status.unwrap().success());
    // 200 windows of 100 ms × 10 keys.
    let expected = committed_lines(&clean_out, 2_000, Duration::from_secs(2));
    assert_eq!(expected.len(), 2_000);

    let out = topic("win-killed");
    let job = window_job_yaml(&input, &out, &tmp.path().join("chk"));
    let kills = common::cli::kill_and_resume(tmp.path(), "job.yaml", &job, 4, 0x9e37_79b9_7f4a_7c15, 150, 900);
    assert!(kills >= 1, "the job was killed at least once");
    // A read_committed consumer sees every window exactly once, and reads to the end: no
    // transaction was left open.
    let got = committed_lines(&out, 2_000, Duration::from_secs(2));
    assert_eq!(
        got.len(),
        expected.len(),
        "{kills} kills: as many windows as a failure-free run"
    );
    assert!(got == expected, "{kills} kills: the same windows as a failure-free run");
}

#[test]
fn headers_topic_patterns_start_timestamps_and_group_offsets() {
    let t = topic("hdr");
    // Written by Weir with `k` as a header.
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let cfg = DatagenConfig {
        rows: Some(100),
        fields: vec![
            DatagenField::new("id", FieldKind::Sequence),
            DatagenField::random_int("k", 0, 9),
            DatagenField::random_int("v", 0, 9),
        ],
        ..Default::default()
    };
    let mut sink = KafkaSinkConfig::new(&bootstrap(), &t);
    sink.header_fields = vec!["k".into()];
    env.add_source(Datagen::new("gen", cfg).unwrap())
        .add_sink(KafkaSink::new("out", sink).unwrap());
    env.execute("kafka-headers-write").unwrap();
    // A second batch a moment later, to start from by timestamp.
    std::thread::sleep(Duration::from_millis(1_100));
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    std::thread::sleep(Duration::from_millis(100));
    produce(
        &t,
        &(100..150)
            .map(|i| ("x".to_string(), format!(r#"{{"id":{i},"k":0,"v":0}}"#)))
            .collect::<Vec<_>>(),
    );

    // Read by pattern, with headers, committing offsets to a group.
    let group = format!("{t}-group");
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let mut cfg = KafkaSourceConfig::new(&bootstrap(), "unused");
    cfg.topics.clear();
    cfg.topic_pattern = Some(format!("^{t}$"));
    cfg.schema = Some(schema());
    cfg.bounded = true;
    cfg.metadata = true;
    cfg.group_id = Some(group.clone());
    let collect = Collect::new();
    env.add_source_named("kafka", Arc::new(KafkaSource::new("kafka", cfg).unwrap()))
        .add_sink(collect.clone());
    env.execute("kafka-pattern").unwrap();
    let rows = collect.rows_json();
    assert_eq!(rows.len(), 150);
    for r in &rows {
        let v: serde_json::Value = serde_json::from_str(r).unwrap();
        if v["id"].as_i64().unwrap() < 100 {
            let h: serde_json::Value = serde_json::from_str(v["kafka_headers"].as_str().unwrap()).unwrap();
            assert_eq!(h["k"].as_str().unwrap(), v["k"].to_string(), "{r}");
        }
    }
    // The group knows where the job got to.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..4 {
        tpl.add_partition(&t, p);
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    let total: i64 = committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => o,
            _ => 0,
        })
        .sum();
    assert_eq!(total, 150, "offsets committed to the group");

    // From a timestamp: only the later records.
    let env = StreamExecutionEnvironment::new();
    let mut cfg = source_config(&t);
    cfg.start_from = StartFrom::Timestamp;
    cfg.start_timestamp_ms = Some(later);
    let collect = Collect::new();
    env.add_source_named("kafka", Arc::new(KafkaSource::new("kafka", cfg).unwrap()))
        .add_sink(collect.clone());
    env.execute("kafka-from-time").unwrap();
    let ids = common::sorted_ids(&collect.rows_json());
    assert_eq!(ids, (100..150).collect::<Vec<_>>());

    // Bounded from latest is refused, naming the options.
    let mut cfg = source_config(&t);
    cfg.start_from = StartFrom::Latest;
    let e = KafkaSource::new("kafka", cfg).err().unwrap().to_string();
    assert!(e.contains("start_from: latest"), "{e}");
}

#[test]
fn the_kafka_example_pipeline_plans() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kafka-windows.yaml");
    let text = std::fs::read_to_string(&path).unwrap().replace("BROKER", &bootstrap());
    let job = weir::pipeline::build(&text, "kafka-windows.yaml").unwrap();
    let plan = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(job.env.explain())
        .unwrap();
    assert!(plan.contains("per_window") && plan.contains("out"), "{plan}");
}

/// The README's SQL job as written (only the broker, topics and an end for the input changed):
/// Kafka → 10 s tumbling windows per auction → upsert-kafka, exactly once; the topic read back
/// (last value per key) is the reference's table.
#[test]
fn the_sql_example_upserts_window_counts_into_kafka() {
    let (input, output) = (topic("sql-bids"), topic("sql-counts"));
    let mut seed = 11u64;
    let mut want: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
    let mut records = Vec::new();
    for i in 0..600i64 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let (auction, price, ts) = (
            (seed >> 33) as i64 % 7,
            (seed >> 40) as i64 % 1000,
            1_700_000_000_000 + i * 97,
        );
        let w = want.entry((auction, ts - ts.rem_euclid(10_000))).or_insert((0, 0));
        w.0 += 1;
        w.1 = w.1.max(price);
        records.push((
            auction.to_string(),
            format!(r#"{{"auction":{auction},"bidder":{i},"price":{price},"ts_ms":{ts}}}"#),
        ));
    }
    produce(&input, &records);
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sql/kafka-bids-per-auction.sql");
    let text = std::fs::read_to_string(example)
        .unwrap()
        .replace("localhost:9092", &bootstrap())
        .replace("'topic' = 'bids'", &format!("'topic' = '{input}'"))
        .replace("'topic' = 'bids-per-auction'", &format!("'topic' = '{output}'"))
        .replace(
            "'scan.startup.mode' = 'earliest-offset',",
            "'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset',",
        )
        .replace(
            "'sink.transactional-id-prefix' = 'bids-per-auction'",
            &format!("'sink.transactional-id-prefix' = '{output}'"),
        );
    let state = tempfile::tempdir().unwrap();
    let job = weir::pipeline::build_sql(&text, "kafka-bids-per-auction.sql", "sql-kafka").unwrap();
    job.env.set_checkpoint_storage(state.path().display().to_string());
    job.env.execute(&job.name).unwrap();
    // Last value per key, as a compacted topic keeps it.
    let mut table: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
    for line in committed_lines(&output, want.len(), Duration::from_secs(2)) {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let key = (
            v["auction"].as_i64().unwrap(),
            common::timed::millis(&v["window_start"]),
        );
        table.insert(key, (v["bids"].as_i64().unwrap(), v["top_price"].as_i64().unwrap()));
    }
    assert_eq!(table, want);
}

/// Records sent to chosen partitions of `topic`: (partition, value).
fn produce_to(topic: &str, records: &[(i32, String)]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .create()
            .unwrap();
        let mut pending = Vec::new();
        for (p, v) in records {
            let f = producer
                .send_result(FutureRecord::<(), str>::to(topic).partition(*p).payload(v))
                .map_err(|(e, _)| e)
                .unwrap();
            pending.push(f);
        }
        for f in pending {
            f.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
    });
}

/// A SQL table whose rowtime is computed (`ts AS TO_TIMESTAMP_LTZ(ts_ms, 3)`) keeps watermarks per
/// Kafka partition, as a DataStream source does: a partition whose records arrive after the
/// others' have moved far ahead in event time is not made late by them. The lagging partition
/// is written only once the job has read every record of the others, so the order is certain.
#[test]
fn a_computed_rowtime_keeps_watermarks_per_partition() {
    use weir::runtime::metrics::NodeRole;
    let t = topic("sql-lagging");
    // Partitions 0, 2 and 3 (the broker makes four) are at event time 100 s; partition 1 is empty.
    let ahead: Vec<(i32, String)> = (0..300i64)
        .map(|i| {
            let p = [0, 2, 3][i as usize % 3];
            (p, format!(r#"{{"k":{p},"ts_ms":{}}}"#, 100_000 + i))
        })
        .collect();
    produce_to(&t, &ahead);
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    let tenv = weir::sql::table_env::TableEnvironment::create(&env);
    tenv.execute_sql(&format!(
        "CREATE TABLE events (k BIGINT, ts_ms BIGINT, ts AS TO_TIMESTAMP_LTZ(ts_ms, 3), \
         WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('connector' = 'kafka', 'topic' = '{t}', \
         'properties.bootstrap.servers' = '{}', 'scan.startup.mode' = 'earliest-offset', 'format' = 'json')",
        bootstrap()
    ))
    .unwrap();
    let counts = tenv
        .sql_query(
            "SELECT k, window_start, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), \
             INTERVAL '10' SECOND)) GROUP BY k, window_start, window_end",
        )
        .unwrap();
    let out = Collect::new();
    tenv.to_data_stream(&counts).unwrap().add_sink(out.clone());
    let metrics = env.metrics();
    let control = JobControl::default();
    let (stopper, watched, seen, topic_name) = (control.clone(), metrics.clone(), out.clone(), t.clone());
    let driver = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let read = || -> u64 {
            watched
                .snapshot()
                .iter()
                .filter(|n| n.role == NodeRole::Source)
                .map(|n| n.records_out)
                .sum()
        };
        while read() < 300 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Partition 1 at event time 0 s, then every partition far ahead, so both windows close.
        let mut behind: Vec<(i32, String)> = (0..100i64).map(|i| (1, format!(r#"{{"k":1,"ts_ms":{i}}}"#))).collect();
        behind.extend((0..4).map(|p| (p, format!(r#"{{"k":9,"ts_ms":{}}}"#, 1_000_000 + p as i64))));
        produce_to(&topic_name, &behind);
        while seen.len() < 4 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        stopper.cancel();
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(env.execute_controlled("sql-lagging", &metrics, &control))
        .unwrap();
    driver.join().unwrap();
    let late: u64 = metrics.snapshot().iter().map(|n| n.late_records).sum();
    let mut got: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for row in out.rows_json() {
        let v: serde_json::Value = serde_json::from_str(&row).unwrap();
        got.insert(
            (v["k"].as_i64().unwrap(), common::timed::millis(&v["window_start"])),
            v["n"].as_i64().unwrap(),
        );
    }
    let want: BTreeMap<(i64, i64), i64> = [
        ((0, 100_000), 100),
        ((1, 0), 100),
        ((2, 100_000), 100),
        ((3, 100_000), 100),
        // Closed by the end of input when the job is stopped.
        ((9, 1_000_000), 4),
    ]
    .into();
    assert_eq!(got, want, "late records: {late}");
    assert_eq!(late, 0);
}

/// An updating `GROUP BY` into `upsert-kafka`: each key's record is replaced as its result
/// changes; the topic read back (the last value per key, as compaction keeps it) is the final
/// table.
#[test]
fn an_updating_sql_query_upserts_its_final_table_into_kafka() {
    let (input, output) = (topic("sql-updates-in"), topic("sql-updates-out"));
    let mut want: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    let mut records = Vec::new();
    for i in 0..500i64 {
        let (auction, price) = (i * 7 % 11, (i * 37) % 1000);
        let w = want.entry(auction).or_insert((0, 0));
        w.0 += 1;
        w.1 = w.1.max(price);
        records.push((
            auction.to_string(),
            format!(r#"{{"auction":{auction},"price":{price}}}"#),
        ));
    }
    produce(&input, &records);
    let text = format!(
        "SET 'parallelism.default' = '2';
CREATE TABLE bids (auction BIGINT, price BIGINT) WITH (
  'connector' = 'kafka', 'topic' = '{input}', 'properties.bootstrap.servers' = '{b}',
  'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset', 'format' = 'json');
CREATE TABLE top (auction BIGINT, bids BIGINT, top_price BIGINT, PRIMARY KEY (auction) NOT ENFORCED) WITH (
  'connector' = 'upsert-kafka', 'topic' = '{output}', 'properties.bootstrap.servers' = '{b}',
  'key.format' = 'json', 'value.format' = 'json');
INSERT INTO top SELECT auction, COUNT(*), MAX(price) FROM bids GROUP BY auction;",
        b = bootstrap()
    );
    let job = weir::pipeline::build_sql(&text, "updates.sql", "sql-updates").unwrap();
    job.env.execute(&job.name).unwrap();
    let consumer = reader(&output);
    let mut table: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    let mut records = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while table != want && std::time::Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let key: serde_json::Value = serde_json::from_slice(m.key().unwrap()).unwrap();
            let Some(payload) = m.payload() else {
                // An update-before whose update-after landed in the next batch.
                table.remove(&key["auction"].as_i64().unwrap());
                continue;
            };
            let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
            assert_eq!(key["auction"], v["auction"], "keyed by the primary key");
            table.insert(
                v["auction"].as_i64().unwrap(),
                (v["bids"].as_i64().unwrap(), v["top_price"].as_i64().unwrap()),
            );
            records += 1;
        }
    }
    assert_eq!(table, want);
    // A key's changes within a batch are written as its last one.
    assert!(records >= want.len(), "{records} records");
}

/// Deletes reach an `upsert-kafka` topic as tombstones: counts per key kept only while a key
/// has fewer than 4 rows, so keys are inserted, updated, then deleted as their fourth row
/// arrives. Read back as compaction and upsert readers do (the last record per key, a null
/// value removing the key), the topic is the final table, in both delivery modes.
#[test]
fn an_updating_sql_query_deletes_its_rows_from_upsert_kafka_with_tombstones() {
    for delivery in ["at-least-once", "exactly-once"] {
        let output = topic(&format!("sql-tombstones-{delivery}"));
        let text = format!(
            "SET 'parallelism.default' = '2';
CREATE TABLE seq (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '1000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '999');
CREATE TABLE counts (k BIGINT, n BIGINT, PRIMARY KEY (k) NOT ENFORCED) WITH (
  'connector' = 'upsert-kafka', 'topic' = '{output}', 'properties.bootstrap.servers' = '{b}',
  'key.format' = 'json', 'value.format' = 'json', 'sink.delivery-guarantee' = '{delivery}');
INSERT INTO counts SELECT k, n FROM (SELECT id % 300 AS k, COUNT(*) AS n FROM seq GROUP BY id % 300) WHERE n < 4;",
            b = bootstrap()
        );
        let job = weir::pipeline::build_sql(&text, "tombstones.sql", "sql-tombstones").unwrap();
        job.env.execute(&job.name).unwrap();
        // 1000 rows over 300 keys: keys 0..99 get 4 rows (deleted), the other 200 keep 3.
        let want: BTreeMap<i64, i64> = (100..300).map(|k| (k, 3)).collect();
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("group.id", format!("check-{output}"))
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .create()
            .unwrap();
        consumer.subscribe(&[output.as_str()]).unwrap();
        let (mut table, mut tombstones) = (BTreeMap::new(), 0);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while (table != want || tombstones < 100) && std::time::Instant::now() < deadline {
            if let Some(m) = consumer.poll(Duration::from_millis(200)) {
                let m = m.unwrap();
                let key: serde_json::Value = serde_json::from_slice(m.key().expect("keyed")).unwrap();
                let k = key["k"].as_i64().unwrap();
                match m.payload() {
                    None => {
                        // A key whose every change fell in one batch gets its tombstone only.
                        tombstones += 1;
                        table.remove(&k);
                    }
                    Some(p) => {
                        let v: serde_json::Value = serde_json::from_slice(p).unwrap();
                        assert_eq!(v["k"], key["k"], "keyed by the primary key");
                        assert!(v.get("__op").is_none(), "no changelog column in the value: {v}");
                        table.insert(k, v["n"].as_i64().unwrap());
                    }
                }
            }
        }
        assert_eq!(table, want, "{delivery}");
        assert!(
            tombstones >= 100,
            "{delivery}: each deleted key has a tombstone: {tombstones}"
        );
    }
}

/// Debezium JSON through a real broker both ways: an updating `GROUP BY` writes its changelog
/// to a topic (`'format' = 'debezium-json'`, keyed by the primary key so a key's changes stay
/// in order), and a second job reads that topic back as a changelog source and writes it to
/// Debezium JSON files; replayed, they are the first job's final table.
#[test]
fn debezium_json_changes_round_trip_through_kafka() {
    let (input, cdc) = (topic("sql-cdc-in"), topic("sql-cdc"));
    let mut want: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    let mut records = Vec::new();
    for i in 0..300i64 {
        let (auction, price) = (i * 7 % 13, (i * 37) % 1000);
        let w = want.entry(auction).or_insert((0, 0));
        w.0 += 1;
        w.1 += price;
        records.push((
            auction.to_string(),
            format!(r#"{{"auction":{auction},"price":{price}}}"#),
        ));
    }
    produce(&input, &records);
    let b = bootstrap();
    let first = format!(
        "SET 'parallelism.default' = '2';
CREATE TABLE bids (auction BIGINT, price BIGINT) WITH (
  'connector' = 'kafka', 'topic' = '{input}', 'properties.bootstrap.servers' = '{b}',
  'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset', 'format' = 'json');
CREATE TABLE totals (auction BIGINT, n BIGINT, total BIGINT, PRIMARY KEY (auction) NOT ENFORCED) WITH (
  'connector' = 'kafka', 'topic' = '{cdc}', 'properties.bootstrap.servers' = '{b}', 'format' = 'debezium-json');
INSERT INTO totals SELECT auction, COUNT(*), SUM(price) FROM bids GROUP BY auction;"
    );
    let job = weir::pipeline::build_sql(&first, "cdc-out.sql", "sql-cdc-out").unwrap();
    job.env.execute(&job.name).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("replica");
    let second = format!(
        "SET 'parallelism.default' = '1';
CREATE TABLE totals (auction BIGINT, n BIGINT, total BIGINT) WITH (
  'connector' = 'kafka', 'topic' = '{cdc}', 'properties.bootstrap.servers' = '{b}',
  'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset', 'format' = 'debezium-json');
CREATE TABLE replica (auction BIGINT, n BIGINT, total BIGINT) WITH (
  'connector' = 'filesystem', 'path' = '{}', 'format' = 'debezium-json');
INSERT INTO replica SELECT * FROM totals;",
        out.display()
    );
    let job = weir::pipeline::build_sql(&second, "cdc-in.sql", "sql-cdc-in").unwrap();
    let result = job.env.execute(&job.name).unwrap();
    assert_eq!(result.dead_letters(), 0);
    let mut table: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    let mut changes = 0;
    // In order: one subtask wrote the part files, in name order.
    let mut parts: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()).collect();
    parts.sort();
    let lines: Vec<String> = parts
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let row = |r: &serde_json::Value| (r["n"].as_i64().unwrap(), r["total"].as_i64().unwrap());
        match v["op"].as_str().unwrap() {
            "c" => {
                table.insert(v["after"]["auction"].as_i64().unwrap(), row(&v["after"]));
            }
            "d" => {
                let k = v["before"]["auction"].as_i64().unwrap();
                assert_eq!(table.remove(&k), Some(row(&v["before"])), "{line}");
            }
            other => panic!("op {other}"),
        }
        changes += 1;
    }
    assert_eq!(table, want);
    assert!(
        changes > 2 * want.len(),
        "updates were replayed, not only inserts: {changes} changes"
    );
}

/// Flink's `raw` format: a table of one STRING column is each record's value as it is, read
/// and written unchanged (log lines that are not JSON); a table of other columns is refused.
#[test]
fn raw_records_are_read_and_written_as_one_text_column() {
    let (input, output) = (topic("sql-raw-in"), topic("sql-raw-out"));
    let lines: Vec<String> = (0..50)
        .map(|i| {
            format!(
                "{} GET /item/{i} {{not json}}",
                if i % 5 == 0 { "ERROR" } else { "INFO" }
            )
        })
        .collect();
    produce(
        &input,
        &lines.iter().map(|l| (String::new(), l.clone())).collect::<Vec<_>>(),
    );
    let b = bootstrap();
    let text = format!(
        "CREATE TABLE logs (line STRING) WITH (
  'connector' = 'kafka', 'topic' = '{input}', 'properties.bootstrap.servers' = '{b}',
  'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset', 'format' = 'raw');
CREATE TABLE errors (line STRING) WITH (
  'connector' = 'kafka', 'topic' = '{output}', 'properties.bootstrap.servers' = '{b}', 'format' = 'raw');
INSERT INTO errors SELECT LOWER(line) FROM logs WHERE line LIKE 'ERROR%';"
    );
    let job = weir::pipeline::build_sql(&text, "raw.sql", "sql-raw").unwrap();
    job.env.execute(&job.name).unwrap();
    let want: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("ERROR"))
        .map(|l| l.to_lowercase())
        .collect();
    let consumer = reader(&output);
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.len() < want.len() && std::time::Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            got.push(String::from_utf8(m.unwrap().payload().unwrap().to_vec()).unwrap());
        }
    }
    got.sort();
    let mut want = want;
    want.sort();
    assert_eq!(got, want);

    let bad = text.replacen("(line STRING)", "(line STRING, n BIGINT)", 1);
    let err = weir::pipeline::build_sql(&bad, "raw.sql", "sql-raw")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("format 'raw' reads one STRING column"), "{err}");
}

#[test]
fn a_kafka_source_reports_its_lag_until_it_has_read_everything() {
    let t = topic("lag");
    produce(&t, &records(20_000));
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1).set_batch_size(100).set_channel_capacity(1);
    let mut cfg = source_config(&t);
    cfg.bounded = false;
    let rows = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // 100 rows per 50 ms: the backlog drains over about ten seconds.
    env.add_source_named("kafka", Arc::new(KafkaSource::new("kafka", cfg).unwrap()))
        .rebalance()
        .add_sink(crate::runtime::SlowSink::new(Duration::from_millis(50), rows.clone()));
    let metrics = env.metrics();
    let control = weir::runtime::control::JobControl::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The REST API of the job, for /metrics.
    let (graph, config) = env.prepare("lag").unwrap();
    let api = std::sync::Arc::new(weir::rest::local::LocalJob::new(
        graph,
        config,
        metrics.clone(),
        control.clone(),
    ));
    let port = rt
        .block_on(weir::rest::serve(
            "127.0.0.1:0".parse().unwrap(),
            api,
            Default::default(),
        ))
        .unwrap()
        .port();
    let job = rt.spawn({
        let (env, metrics, control) = (env.clone(), metrics.clone(), control.clone());
        async move { env.execute_controlled("lag", &metrics, &control).await }
    });
    let source_lag = || {
        metrics
            .subtask_snapshot()
            .into_iter()
            .find(|s| s.source)
            .and_then(|s| s.lag)
    };
    // Every value reported until it reaches 0 (a partition counts once its first record was
    // read, so the sum may grow at first; then it shrinks to nothing).
    let mut seen: Vec<u64> = Vec::new();
    common::until(|| {
        let lag = source_lag();
        if let Some(l) = lag
            && seen.last() != Some(&l)
        {
            seen.push(l);
        }
        lag == Some(0)
    });
    assert!(
        seen.iter().any(|l| *l > 0),
        "a backlog was reported while reading: {seen:?}"
    );
    // The same figure for Prometheus (the Grafana dashboard charts it).
    let exported = crate::cluster::http_get(port, "/metrics");
    assert!(
        exported.contains("weir_subtask_source_lag{job=\"lag\",vertex=\"kafka\",subtask=\"0\",worker=\"0\"} 0"),
        "{exported}"
    );
    control.cancel_token().cancel();
    rt.block_on(job).unwrap().unwrap();
    assert!(rows.load(Ordering::Relaxed) >= 19_000, "it read on while reporting");
}
