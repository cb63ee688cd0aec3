//! The autoscaler end to end on real pods: a Kafka topic (the broker of `scripts/kafka-up`, which
//! the pods reach at `KAFKA_POD_BOOTSTRAP`) fed by a producer in this test at a rate that steps
//! 1× → 4× → 1×; a Python job on the `weir-worker-python` image whose per-record enrichment
//! takes about half a millisecond (a call to a slow service: a subtask handles under 2,000
//! records/s, CPU or not), keyed 1 s event-time windows, files in S3 committed on checkpoints.
//! The operator's autoscaler scales the job up after the step and back down after the step
//! down, with no reversal in between; the committed output holds every window of every key
//! exactly once, equal to what the records produced make (nothing lost, nothing twice). The
//! figures the benchmarks quote are printed (`figure:`): time from each step to the new
//! parallelism, peak lag, time to drain, rescales.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use crate::common::{cluster, wait_for_in};
use crate::real_pods::{PY_TOTALS, committed_output, namespace_with_bucket, python_window_totals, stream_job_on_node};

const PARTITIONS: i32 = 4;
const KEYS: u64 = 20;
/// The load at 1×, records per second (4× is 2,000/s, above one subtask's ~1,800/s).
const BASE: u64 = 500;
/// How long the load stays at 1× before the step up, and at 4×.
const BEFORE: Duration = Duration::from_secs(30);
const STEP: Duration = Duration::from_secs(60);
/// The consumer group the job commits its checkpointed offsets to (lag is measured on it, as
/// a Kafka monitoring tool would).
const GROUP: &str = "autoscale-e2e";

/// When the producer changed its rate, and how many records it sent.
#[derive(Default)]
struct Produced {
    steps: Vec<(Instant, u64)>,
    records: u64,
}

/// Sends records `{"id", "k", "ts"}` (id `i` to partition `i mod 4`, event time `i` ms) at
/// `BASE` for `BEFORE`, `4 × BASE` for `STEP`, then `BASE` until `stop`; then one record per
/// partition far ahead in event time (key -1), so every window of the data closes.
fn produce(bootstrap: String, topic: String, stop: Arc<AtomicBool>, produced: Arc<Mutex<Produced>>) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .create()
        .expect("a Kafka producer");
    let send = |id: u64, k: i64, ts: u64| {
        let payload = format!(r#"{{"id":{id},"k":{k},"ts":{ts}}}"#);
        let partition = (id % PARTITIONS as u64) as i32;
        loop {
            match producer.send::<(), _>(BaseRecord::to(&topic).partition(partition).payload(&payload)) {
                Ok(()) => break,
                Err((e, _)) => {
                    assert!(
                        matches!(
                            e.rdkafka_error_code(),
                            Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                        ),
                        "produce: {e}"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    };
    let mut id = 0u64;
    let phases = [(BASE, Some(BEFORE)), (4 * BASE, Some(STEP)), (BASE, None)];
    for (rate, length) in phases {
        let start = Instant::now();
        let first = id;
        produced.lock().unwrap().steps.push((start, id));
        loop {
            let elapsed = start.elapsed();
            if length.is_some_and(|l| elapsed >= l) || (length.is_none() && stop.load(Ordering::Relaxed)) {
                break;
            }
            let due = first + (rate as f64 * elapsed.as_secs_f64()) as u64;
            while id < due {
                send(id, (id % KEYS) as i64, id);
                id += 1;
            }
            produced.lock().unwrap().records = id;
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    for p in 0..PARTITIONS as u64 {
        // One per partition (ids ≡ p): each partition's watermark passes the data.
        let sentinel = id + ((p + PARTITIONS as u64 - id % PARTITIONS as u64) % PARTITIONS as u64);
        send(sentinel, -1, id + 60_000);
    }
    producer.flush(Duration::from_secs(30)).expect("flush the producer");
    produced.lock().unwrap().records = id;
}

/// Records produced but not yet in a completed checkpoint: Σ over partitions of the end offset
/// minus the group's committed offset.
fn group_lag(consumer: &BaseConsumer, topic: &str) -> Option<i64> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(5)).ok()?;
    let mut lag = 0;
    for p in 0..PARTITIONS {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5)).ok()?;
        let at = match committed.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => 0,
        };
        lag += (high - at).max(0);
    }
    Some(lag)
}

fn script(bootstrap: &str, topic: &str, bucket: &str) -> String {
    format!(
        "import time
from weir.common import Types, WatermarkStrategy
from weir.datastream import (FileSink, KafkaSource, ProcessWindowFunction, StreamExecutionEnvironment,
                             Time, TumblingEventTimeWindows)

def enrich(r):
    time.sleep(0.0005)  # stands for a call to a slow service, once per record
    return (r.id, r.k, r.ts)

{PY_TOTALS}
env = StreamExecutionEnvironment.get_execution_environment()
schema = Types.ROW_NAMED(['id', 'k', 'ts'], [Types.LONG(), Types.LONG(), Types.LONG()])
source = KafkaSource('{bootstrap}', ['{topic}'], schema=schema, start_from='earliest', group_id='{GROUP}')
watermarks = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_field('ts')
env.from_source(source, watermarks, 'load') \\
    .rebalance() \\
    .map(enrich, output_type=schema) \\
{}",
        python_window_totals(bucket)
    )
}

/// Seconds from `from` to `to`, negative when `to` is earlier.
fn since(from: Instant, to: Instant) -> f64 {
    if to >= from {
        to.duration_since(from).as_secs_f64()
    } else {
        -from.duration_since(to).as_secs_f64()
    }
}

/// One observation of the job while the load runs.
struct Seen {
    at: Instant,
    parallelism: i64,
    lag: Option<i64>,
    /// The autoscaler's last decision then (its figures).
    decision: serde_json::Value,
}

#[test]
fn the_autoscaler_follows_a_kafka_load_step_up_and_down_on_real_pods_with_exactly_once_output() {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP").unwrap_or_default();
    let pod_bootstrap = std::env::var("KAFKA_POD_BOOTSTRAP").unwrap_or_default();
    assert!(
        !bootstrap.is_empty() && !pod_bootstrap.is_empty(),
        "no Kafka broker for pods: run `eval \"$(scripts/kafka-up)\"` (scripts/test does); it sets KAFKA_BOOTSTRAP and KAFKA_POD_BOOTSTRAP"
    );
    let c = cluster();
    let (ns, python, endpoint) = namespace_with_bucket(&c, "autoscale");
    let ns = ns.name.as_str();
    let topic = format!("load-{ns}");

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("a Kafka admin client");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let created = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(&topic, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .expect("create the topic");
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");

    let job = stream_job_on_node(
        "follow",
        "weir-worker-python:dev",
        ns,
        "python",
        &script(&pod_bootstrap, &topic, ns),
    )
    .replace(
        "  parallelism: 2\n",
        "  parallelism: 1
  autoscaler:
    enabled: true
    minParallelism: 1
    maxParallelism: 4
    metricWindowSeconds: 10
    scaleUpCooldownSeconds: 15
    scaleDownDelaySeconds: 20
    catchUpSeconds: 30
",
    );
    let op = c.operator(ns, None);
    c.apply_in(ns, &job).unwrap();
    let long = Duration::from_secs(180);
    wait_for_in(&c, ns, "the job running with a checkpoint", long, || {
        let s = c.status(ns, "follow");
        (s["phase"] == "Running" && s["lastCheckpoint"]["path"].is_string()).then_some(())
    });

    let lag_reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .create()
        .expect("a Kafka consumer reading the group's offsets");
    let stop = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(Mutex::new(Produced::default()));
    let producer = {
        let (bootstrap, topic, stop, produced) = (bootstrap.clone(), topic.clone(), stop.clone(), produced.clone());
        std::thread::spawn(move || produce(bootstrap, topic, stop, produced))
    };

    // Watch the job until the load has been back at 1× for at least 30 s and the job is back
    // at one worker (or 4 minutes after the step down).
    let mut seen: Vec<Seen> = Vec::new();
    let begun = Instant::now();
    let down_at = loop {
        let s = c.status(ns, "follow");
        seen.push(Seen {
            at: Instant::now(),
            parallelism: s["currentParallelism"].as_i64().unwrap_or(0),
            lag: group_lag(&lag_reader, &topic),
            decision: s["autoscaler"]["lastDecision"].clone(),
        });
        let steps = produced.lock().unwrap().steps.clone();
        if let Some(&(down, _)) = steps.get(2) {
            let last = seen.last().unwrap();
            if (down.elapsed() >= Duration::from_secs(30) && last.parallelism == 1 && s["upgrade"].is_null())
                || down.elapsed() >= Duration::from_secs(240)
            {
                break down;
            }
        }
        assert!(
            begun.elapsed() < Duration::from_secs(600),
            "the load never stepped down"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    stop.store(true, Ordering::Relaxed);
    producer.join().expect("the producer");
    let (up_at, records) = {
        let p = produced.lock().unwrap();
        (p.steps[1].0, p.records)
    };
    let status = c.status(ns, "follow");
    let history = status["autoscaler"]["history"].as_array().cloned().unwrap_or_default();
    for d in &history {
        eprintln!(
            "figure: decision {} {} → {}: {}",
            d["time"], d["from"], d["to"], d["reason"]
        );
    }

    // What the autoscaler saw, each time its decision changed.
    let mut shown = serde_json::Value::Null;
    for o in &seen {
        if o.decision.is_null() || o.decision["atMs"] == shown["atMs"] {
            continue;
        }
        shown = o.decision.clone();
        let vertices: Vec<String> = o.decision["vertices"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                format!(
                    "{} {:.0}% {:.0}/s true {:.0}/s needs {}",
                    v["id"].as_str().unwrap_or("?"),
                    v["busy"].as_f64().unwrap_or(0.0) * 100.0,
                    v["recordsPerS"].as_f64().unwrap_or(0.0),
                    v["trueRatePerSubtask"].as_f64().unwrap_or(0.0),
                    v["needed"]
                )
            })
            .collect();
        eprintln!(
            "trail: {:+.0} s p={} lag={:?} input {:.0}/s target {:.0}/s source-lag {} → {}: {} | {}",
            since(up_at, o.at),
            o.parallelism,
            o.lag,
            o.decision["inputRate"].as_f64().unwrap_or(0.0),
            o.decision["targetRate"].as_f64().unwrap_or(0.0),
            o.decision["lag"],
            o.decision["recommended"],
            o.decision["reason"].as_str().unwrap_or(""),
            vertices.join("; ")
        );
    }

    // The parallelism over time: up after the step up, down after the step down, no reversal.
    let changes: Vec<(f64, i64, i64)> = seen
        .windows(2)
        .filter(|w| w[0].parallelism != w[1].parallelism && w[0].parallelism > 0 && w[1].parallelism > 0)
        .map(|w| {
            let at = since(up_at, w[1].at);
            (at, w[0].parallelism, w[1].parallelism)
        })
        .collect();
    eprintln!("figure: parallelism changes (s after the step up, from, to): {changes:?}");
    let first = seen.first().map_or(0, |s| s.parallelism);
    assert_eq!(first, 1, "the job starts at one worker");
    let ups = changes.iter().filter(|c| c.2 > c.1).count();
    let downs = changes.iter().filter(|c| c.2 < c.1).count();
    let up_first = changes.iter().position(|c| c.2 > c.1);
    let down_first = changes.iter().position(|c| c.2 < c.1);
    assert!(ups >= 1, "the job scaled up after the step: {changes:?}");
    assert!(downs >= 1, "the job scaled down after the step down: {changes:?}");
    assert!(
        changes[..down_first.unwrap()].iter().all(|c| c.2 > c.1)
            && changes[down_first.unwrap()..].iter().all(|c| c.2 < c.1)
            && up_first == Some(0),
        "up, then down, no reversal: {changes:?}"
    );
    assert!(changes.len() <= 4, "at most 4 rescales: {changes:?}");
    assert_eq!(seen.last().unwrap().parallelism, 1, "back at one worker at 1×");
    let peak = seen.iter().map(|s| s.parallelism).max().unwrap();
    let reached_up = seen.iter().find(|s| s.at > up_at && s.parallelism > 1).unwrap().at;
    let reached_down = seen
        .iter()
        .find(|s| {
            s.at > down_at
                && s.parallelism == 1
                && seen.iter().any(|o| o.at > down_at && o.at < s.at && o.parallelism > 1)
        })
        .map(|s| s.at);
    eprintln!(
        "figure: step up (500 → 2,000 records/s) → running at {} workers: {:.1} s; highest parallelism {peak}",
        changes[0].2,
        reached_up.duration_since(up_at).as_secs_f64()
    );
    if let Some(at) = reached_down {
        eprintln!(
            "figure: step down (2,000 → 500 records/s) → back at 1 worker: {:.1} s",
            at.duration_since(down_at).as_secs_f64()
        );
    }
    let lag_peak = seen
        .iter()
        .filter(|s| s.at >= up_at)
        .filter_map(|s| s.lag.map(|l| (s.at, l)))
        .max_by_key(|s| s.1)
        .expect("lag measured");
    // Drained: back under 2 s of input at 4× (a completed checkpoint every second lags the
    // committed offsets by up to a second of input by itself).
    let drained = seen
        .iter()
        .filter(|s| s.at > lag_peak.0)
        .find(|s| s.lag.is_some_and(|l| l <= 2 * 4 * BASE as i64))
        .map(|s| s.at.duration_since(up_at).as_secs_f64());
    eprintln!(
        "figure: peak lag {} records at {:.1} s after the step up; drained (≤ 2 s of input) {:?} s after it; {} rescales; {records} records",
        lag_peak.1,
        lag_peak.0.duration_since(up_at).as_secs_f64(),
        drained,
        changes.len()
    );
    assert!(drained.is_some(), "the lag drained after the step up");

    // Exactly once: every window of every key, counted as the records produced make it.
    let mut expected: BTreeMap<(i64, i64), (u64, u64)> = BTreeMap::new();
    for id in 0..records {
        let e = expected
            .entry(((id / 1000 * 1000) as i64, (id % KEYS) as i64))
            .or_default();
        e.0 += 1;
        e.1 += id;
    }
    let parse = |text: &str| {
        let mut got: BTreeMap<(i64, i64), (u64, u64)> = BTreeMap::new();
        let mut duplicates = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let k = v["k"].as_i64().unwrap();
            if k < 0 {
                continue;
            }
            let key = (v["window_start"].as_i64().unwrap(), k);
            if got
                .insert(key, (v["n"].as_u64().unwrap(), v["total"].as_u64().unwrap()))
                .is_some()
            {
                duplicates.push(line.to_string());
            }
        }
        (got, duplicates)
    };
    let last = std::cell::RefCell::new((BTreeMap::new(), Vec::new()));
    let complete = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for_in(&c, ns, "every window committed", Duration::from_secs(120), || {
            let (got, duplicates) = parse(&committed_output(&python, &endpoint, ns));
            let counted: u64 = got.values().map(|v| v.0).sum();
            *last.borrow_mut() = (got, duplicates);
            (counted >= records).then_some(())
        })
    }));
    let (got, duplicates) = last.into_inner();
    assert!(duplicates.is_empty(), "windows written twice: {duplicates:?}");
    if complete.is_err() {
        let missing: Vec<_> = expected.keys().filter(|k| !got.contains_key(k)).take(10).collect();
        panic!(
            "{} of {} windows committed; missing e.g. {missing:?}",
            got.len(),
            expected.len()
        );
    }
    assert_eq!(got.len(), expected.len(), "every window of every key");
    assert!(
        got == expected,
        "the counts and sums of every window equal the records produced"
    );
    eprintln!(
        "figure: committed output: {} windows × keys, {records} records, each once",
        got.len()
    );
    drop(op);
}
