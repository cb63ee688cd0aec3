//! Keyed state and timers through the public API: each state type, TTL, event-time and
//! processing-time timers, and identical results at parallelism 1, 2 and 4.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use tokio_util::sync::CancellationToken;
use weir::prelude::*;
use weir::state::KeyedStateStore;

fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
    Arc::new(Schema::new(
        fields
            .iter()
            .map(|(n, t)| Field::new(*n, t.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

/// Running count and sum per key (ValueState), one output row per input row.
#[derive(Clone)]
struct RunningCount;

impl KeyedProcessFunction for RunningCount {
    fn process_element(&mut self, row: RowRef<'_>, ctx: &mut KeyedContext<'_>, out: &mut Vec<Row>) -> UserResult<()> {
        let d = ValueStateDescriptor::<(i64, i64)>::new("count_sum");
        let (c, s) = ctx.state().value(&d).unwrap_or((0, 0));
        let next = (c + 1, s + row.get_i64("v").unwrap());
        ctx.state().update(&d, next);
        out.push(vec![
            ctx.current_key()[0].clone(),
            Value::Int(next.0),
            Value::Int(next.1),
        ]);
        Ok(())
    }
}

fn running(p: usize) -> BTreeMap<i64, (i64, i64)> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(p).set_batch_size(500);
    let sink = Collect::new();
    let out = schema(&[
        ("k", DataType::Int64),
        ("count", DataType::Int64),
        ("sum", DataType::Int64),
    ]);
    env.add_source(common::numbers(20_000, 300))
        .key_by("k")
        .process(out, RunningCount)
        .add_sink(sink.clone());
    env.execute("running").unwrap();
    // The largest count per key is its final state.
    let mut last: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for l in sink.rows_json() {
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        let (k, c, s) = (
            v["k"].as_i64().unwrap(),
            v["count"].as_i64().unwrap(),
            v["sum"].as_i64().unwrap(),
        );
        let e = last.entry(k).or_insert((0, 0));
        if c > e.0 {
            *e = (c, s);
        }
    }
    last
}

#[test]
fn value_state_keeps_a_running_count_per_key_at_any_parallelism() {
    // Reference from the same generated rows.
    let env = StreamExecutionEnvironment::new();
    let all = Collect::new();
    env.add_source(common::numbers(20_000, 300)).add_sink(all.clone());
    env.execute("all").unwrap();
    let mut want: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for l in all.rows_json() {
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        let e = want.entry(v["k"].as_i64().unwrap()).or_insert((0, 0));
        *e = (e.0 + 1, e.1 + v["v"].as_i64().unwrap());
    }
    assert_eq!(running(1), want);
    assert_eq!(running(2), want);
    assert_eq!(running(4), want);
}

struct Avg;
impl AggregateFunction<i64, (i64, i64), f64> for Avg {
    fn create_accumulator(&self) -> (i64, i64) {
        (0, 0)
    }
    fn add(&self, v: i64, acc: &mut (i64, i64)) {
        acc.0 += v;
        acc.1 += 1;
    }
    fn get_result(&self, acc: &(i64, i64)) -> f64 {
        acc.0 as f64 / acc.1 as f64
    }
    fn merge(&self, a: (i64, i64), b: (i64, i64)) -> (i64, i64) {
        (a.0 + b.0, a.1 + b.1)
    }
}

/// Every state type; a summary per key when event time passes its last record + 1000 ms.
#[derive(Clone)]
struct Summary;

impl KeyedProcessFunction for Summary {
    fn process_element(&mut self, row: RowRef<'_>, ctx: &mut KeyedContext<'_>, _out: &mut Vec<Row>) -> UserResult<()> {
        let v = row.get_i64("v").unwrap();
        let ts = row.get_i64("ts").unwrap();
        let st = ctx.state();
        st.add(&ListStateDescriptor::<i64>::new("values"), v);
        let seen = MapStateDescriptor::<i64, i64>::new("per_value");
        let n = st.get_entry(&seen, &v).unwrap_or(0);
        st.put_entry(&seen, v, n + 1);
        st.reduce(&ReducingStateDescriptor::new("max", |a: &i64, b: &i64| *a.max(b)), v);
        st.aggregate(&AggregatingStateDescriptor::new("avg", Avg), v);
        let timer = ValueStateDescriptor::<i64>::new("timer");
        if let Some(old) = st.value(&timer) {
            ctx.delete_event_time_timer(old);
        }
        ctx.state().update(&timer, ts + 1000);
        ctx.register_event_time_timer(ts + 1000);
        Ok(())
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_>,
        out: &mut Vec<Row>,
    ) -> UserResult<()> {
        assert_eq!(domain, TimeDomain::EventTime);
        let key = ctx.current_key()[0].clone();
        let st = ctx.state();
        let values = st.list(&ListStateDescriptor::<i64>::new("values"));
        let distinct = st.entries(&MapStateDescriptor::<i64, i64>::new("per_value")).len() as i64;
        let max = st
            .reduced(&ReducingStateDescriptor::new("max", |a: &i64, b: &i64| *a.max(b)))
            .unwrap();
        let avg = st.aggregated(&AggregatingStateDescriptor::new("avg", Avg)).unwrap();
        for name in ["values", "per_value", "max", "avg", "timer"] {
            st.clear(name);
        }
        out.push(vec![
            key,
            Value::Int(values.len() as i64),
            Value::Int(distinct),
            Value::Int(max),
            Value::Float(avg),
            Value::Int(timestamp),
        ]);
        Ok(())
    }
}

#[test]
fn every_state_type_and_event_time_timers() {
    // Key k's records at ts = 10 * i; bursts separated by gaps of more than 1000 ms.
    let mut rows = Vec::new();
    for (burst, start) in [0i64, 5_000, 20_000].iter().enumerate() {
        for i in 0..20 {
            rows.push((i % 3, start + i * 10, (burst as i64 + 1) * (i % 5)));
        }
    }
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let src = DatagenConfig {
        rows: Some(rows.len() as u64),
        fields: vec![DatagenField::new("i", FieldKind::Sequence)],
        ..Default::default()
    };
    let table = Arc::new(rows.clone());
    let out_schema = schema(&[("k", DataType::Int64), ("ts", DataType::Int64), ("v", DataType::Int64)]);
    let sink = Collect::new();
    let summary = schema(&[
        ("k", DataType::Int64),
        ("n", DataType::Int64),
        ("distinct", DataType::Int64),
        ("max", DataType::Int64),
        ("avg", DataType::Float64),
        ("fired_at", DataType::Int64),
    ]);
    env.add_source(Datagen::new("idx", src).unwrap())
        .set_parallelism(1)
        .map(out_schema, move |r| {
            let (k, ts, v) = table[r.get_i64("i").unwrap() as usize];
            Ok(vec![Value::Int(k), Value::Int(ts), Value::Int(v)])
        })
        .set_parallelism(1)
        .key_by("k")
        .process(summary, Summary)
        .add_sink(sink.clone());
    env.execute("summary").unwrap();
    // No source has event time, so timers wait for the end of input (the final watermark):
    // one summary per key covering all its records.
    let got = common::sorted(&sink);
    assert_eq!(got.len(), 3, "{got:?}");
    for k in 0..3i64 {
        let mine: Vec<&(i64, i64, i64)> = rows.iter().filter(|r| r.0 == k).collect();
        let max = mine.iter().map(|r| r.2).max().unwrap();
        let distinct = mine
            .iter()
            .map(|r| r.2)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let avg = mine.iter().map(|r| r.2).sum::<i64>() as f64 / mine.len() as f64;
        let last_ts = mine.iter().map(|r| r.1).max().unwrap();
        let row: serde_json::Value = serde_json::from_str(&got[k as usize]).unwrap();
        assert_eq!(row["k"], k);
        assert_eq!(row["n"], mine.len() as i64);
        assert_eq!(row["distinct"], distinct as i64);
        assert_eq!(row["max"], max);
        assert!((row["avg"].as_f64().unwrap() - avg).abs() < 1e-9);
        assert_eq!(
            row["fired_at"],
            last_ts + 1000,
            "only the last registered timer is left"
        );
    }
}

/// Emits a key's count when no record arrived for 10 s of event time. `event_time`: the stream
/// has event time, so `ctx.timestamp()` must be each record's `ts` (and `None` otherwise).
#[derive(Clone)]
struct QuietCount {
    event_time: bool,
}

impl KeyedProcessFunction for QuietCount {
    fn process_element(&mut self, row: RowRef<'_>, ctx: &mut KeyedContext<'_>, _out: &mut Vec<Row>) -> UserResult<()> {
        let ts = row.get_i64("ts");
        let want = if self.event_time { ts } else { None };
        if ctx.timestamp() != want {
            return Err(format!("ctx.timestamp() is {:?}, the record's time {want:?}", ctx.timestamp()).into());
        }
        let count = ValueStateDescriptor::<i64>::new("count");
        let timer = ValueStateDescriptor::<i64>::new("timer");
        let n = ctx.state().value(&count).unwrap_or(0) + 1;
        ctx.state().update(&count, n);
        if let Some(t) = ctx.state().value(&timer) {
            ctx.delete_event_time_timer(t);
        }
        let at = row.get_i64("ts").unwrap() + 10_000;
        ctx.state().update(&timer, at);
        ctx.register_event_time_timer(at);
        Ok(())
    }
    fn on_timer(&mut self, ts: i64, _d: TimeDomain, ctx: &mut KeyedContext<'_>, out: &mut Vec<Row>) -> UserResult<()> {
        if ctx.timestamp() != Some(ts) {
            return Err(format!(
                "in on_timer ctx.timestamp() is {:?}, not the timer's {ts}",
                ctx.timestamp()
            )
            .into());
        }
        let n = ctx
            .state()
            .value(&ValueStateDescriptor::<i64>::new("count"))
            .unwrap_or(0);
        ctx.state().clear("count");
        ctx.state().clear("timer");
        out.push(vec![ctx.current_key()[0].clone(), Value::Int(n), Value::Int(ts)]);
        Ok(())
    }
}

#[test]
fn without_event_time_the_end_of_input_fires_the_timers() {
    // One key: events at 0..5 s, a 20 s gap, events at 25..27 s; event time from the source.
    let cfg = DatagenConfig {
        rows: Some(800),
        fields: vec![
            DatagenField {
                start: Some(0),
                rows_per_ms: Some(1),
                ..DatagenField::new("ms", FieldKind::Timestamp)
            },
            DatagenField::new("i", FieldKind::Sequence),
        ],
        ..Default::default()
    };
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1).set_batch_size(50);
    let sink = Collect::new();
    env.add_source(Datagen::new("g", cfg).unwrap())
        .select(&[
            "CASE WHEN i < 500 THEN i * 10 ELSE 25000 + (i - 500) * 10 END AS ts",
            "1 AS k",
        ])
        .key_by("k")
        .process(
            schema(&[
                ("k", DataType::Int64),
                ("count", DataType::Int64),
                ("at", DataType::Int64),
            ]),
            QuietCount { event_time: false },
        )
        .add_sink(sink.clone());
    env.execute("quiet").unwrap();
    // Without watermarks only the end of input fires the timer: everything in one count.
    assert_eq!(sink.rows_json(), vec![r#"{"k":1,"count":800,"at":37990}"#]);
}

#[test]
fn a_quiet_keys_timer_fires_when_other_keys_move_event_time() {
    // Key 1 is active for the first 5 s; key 2 for 30 s. Key 2's records move the watermark,
    // so key 1's count comes out 10 s after its last record, long before the input ends.
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..3000 {
        let ts = i * 10;
        if ts < 5_000 {
            text.push_str(&format!("{{\"k\": 1, \"ts\": {ts}}}\n"));
        }
        text.push_str(&format!("{{\"k\": 2, \"ts\": {ts}}}\n"));
    }
    std::fs::write(dir.path().join("events.jsonl"), text).unwrap();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2).set_batch_size(50);
    let mut cfg = FileSourceConfig::new(dir.path().join("events.jsonl").to_str().unwrap(), Format::Json);
    cfg.schema = Some(SchemaSpec::Text("k BIGINT, ts BIGINT".into()));
    let sink = Collect::new();
    env.add_source(FileSource::new("events", cfg))
        .with_watermarks(WatermarkStrategy::monotonous("ts"))
        .key_by("k")
        .process(
            schema(&[
                ("k", DataType::Int64),
                ("count", DataType::Int64),
                ("at", DataType::Int64),
            ]),
            QuietCount { event_time: true },
        )
        .add_sink(sink.clone());
    env.execute("quiet-keys").unwrap();
    let rows = sink.rows_json();
    assert_eq!(
        rows,
        vec![
            r#"{"k":1,"count":500,"at":14990}"#,
            r#"{"k":2,"count":3000,"at":39990}"#
        ]
    );
}

/// Registers a processing-time timer 100 ms after each key's first record.
#[derive(Clone)]
struct Wake;

impl KeyedProcessFunction for Wake {
    fn process_element(&mut self, _row: RowRef<'_>, ctx: &mut KeyedContext<'_>, _out: &mut Vec<Row>) -> UserResult<()> {
        let armed = ValueStateDescriptor::<bool>::new("armed");
        if ctx.state().value(&armed).is_none() {
            ctx.state().update(&armed, true);
            let at = ctx.current_processing_time() + 100;
            ctx.register_processing_time_timer(at);
        }
        Ok(())
    }
    fn on_timer(
        &mut self,
        _ts: i64,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_>,
        out: &mut Vec<Row>,
    ) -> UserResult<()> {
        assert_eq!(domain, TimeDomain::ProcessingTime);
        out.push(vec![ctx.current_key()[0].clone()]);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_time_timers_fire_when_the_clock_passes_them() {
    let clock = ManualClock::new(1_000_000);
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1).set_clock(clock.shared());
    let cfg = DatagenConfig {
        rows: None,
        rows_per_second: Some(2_000),
        fields: vec![DatagenField::random_int("k", 0, 4)],
        ..Default::default()
    };
    let sink = Collect::new();
    env.add_source(Datagen::new("g", cfg).unwrap())
        .key_by("k")
        .process(schema(&[("k", DataType::Int64)]), Wake)
        .add_sink(sink.clone());
    let metrics = env.metrics();
    let cancel = CancellationToken::new();
    let job = tokio::spawn({
        let (env, metrics, cancel) = (env.clone(), metrics.clone(), cancel.clone());
        async move { env.execute_with("wake", &metrics, cancel).await }
    });
    // Every key has registered its timer (at 1_000_100) once hundreds of rows went through;
    // processing time has not moved, so none fired.
    let processed = || {
        metrics
            .snapshot()
            .iter()
            .find(|n| n.name == "process")
            .map_or(0, |n| n.records_in)
    };
    common::eventually(|| processed() >= 500).await;
    assert_eq!(sink.len(), 0, "no timer fires before its time");
    clock.advance(99);
    common::eventually(|| processed() >= 1_000).await;
    assert_eq!(sink.len(), 0, "nor 1 ms before it");
    clock.advance(1);
    common::eventually(|| sink.len() >= 5).await;
    clock.advance(10_000);
    common::eventually(|| processed() >= 2_000).await;
    cancel.cancel();
    job.await.unwrap().unwrap();
    // Five keys, each woken once, while the source kept running.
    assert_eq!(sink.len(), 5, "{:?}", sink.rows_json());
}

#[test]
fn state_ttl_expires_entries_not_written_for_the_ttl() {
    let clock = ManualClock::new(0);
    let mut store = KeyedStateStore::with_clock(clock.shared());
    let d = ValueStateDescriptor::<i64>::new("v").with_ttl(Duration::from_millis(100));
    let l = ListStateDescriptor::<i64>::new("l").with_ttl(Duration::from_millis(100));
    store.handle(3, b"key").update(&d, 7);
    store.handle(3, b"key").add(&l, 1);
    assert_eq!(store.handle(3, b"key").value(&d), Some(7));
    assert_eq!(store.key_groups(), vec![3]);
    clock.advance(60);
    store.handle(3, b"key").add(&l, 2); // a write refreshes the list's TTL
    clock.advance(39);
    assert_eq!(store.handle(3, b"key").value(&d), Some(7), "99 ms: not expired yet");
    clock.advance(1);
    assert_eq!(store.handle(3, b"key").value(&d), None, "expired after 100 ms");
    assert_eq!(store.handle(3, b"key").list(&l), vec![1, 2], "written 40 ms ago");
    clock.advance(60);
    assert_eq!(store.handle(3, b"key").list(&l), Vec::<i64>::new());
    assert_eq!(store.keys(), 0, "expired state is dropped");
    // Without a TTL nothing expires; other keys are separate.
    let plain = ValueStateDescriptor::<String>::new("s");
    store.handle(1, b"a").update(&plain, "x".into());
    store.handle(2, b"b").update(&plain, "y".into());
    assert_eq!(store.handle(1, b"a").value(&plain).as_deref(), Some("x"));
    assert_eq!(store.key_groups(), vec![1, 2]);
}

#[test]
fn a_rolling_reduce_ends_at_each_keys_sum_at_any_parallelism() {
    let want: BTreeMap<i64, i64> = running(1).into_iter().map(|(k, (_, sum))| (k, sum)).collect();
    for p in [1, 3] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p).set_batch_size(500);
        let sink = Collect::new();
        env.add_source(common::numbers(20_000, 300))
            .key_by("k")
            .reduce(|mut running: Row, row: RowRef<'_>| -> UserResult<Row> {
                let v = row.schema().index_of("v").map_err(|e| e.to_string())?;
                let sum = running[v].as_i64().unwrap_or(0) + row.get_i64("v").unwrap_or(0);
                running[v] = Value::Int(sum);
                Ok(running)
            })
            .add_sink(sink.clone());
        env.execute("rolling-reduce").unwrap();
        let mut last: BTreeMap<i64, i64> = BTreeMap::new();
        let rows = sink.rows_json();
        for l in &rows {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let e = last.entry(v["k"].as_i64().unwrap()).or_insert(0);
            *e = (*e).max(v["v"].as_i64().unwrap());
        }
        assert_eq!(rows.len(), 20_000, "a row out per row in");
        assert_eq!(last, want, "p = {p}");
    }
}

#[test]
fn running_aggregates_per_key_match_the_process_function_and_yaml() {
    let run = |p: usize| {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p).set_batch_size(500);
        let sink = Collect::new();
        env.add_source(common::numbers(20_000, 300))
            .key_by("k")
            .aggregate(&[Agg::count(), Agg::sum("v").alias("sum"), Agg::max("v")])
            .add_sink(sink.clone());
        env.execute("running-agg").unwrap();
        let mut last: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        let mut rows = 0;
        for l in sink.rows_json() {
            rows += 1;
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            let (k, c, s) = (
                v["k"].as_i64().unwrap(),
                v["count"].as_i64().unwrap(),
                v["sum"].as_i64().unwrap(),
            );
            assert!(v["max_v"].as_i64().unwrap() <= 999);
            let e = last.entry(k).or_insert((0, 0));
            if c > e.0 {
                *e = (c, s);
            }
        }
        assert_eq!(rows, 20_000, "a row out per row in");
        last
    };
    let want = running(1);
    assert_eq!(run(1), want);
    assert_eq!(run(3), want);

    let yaml = r#"
name: agg
parallelism: 2
sources:
  - id: numbers
    connector: datagen
    rows: 1000
    fields: [{name: k, kind: random, min: 0, max: 9}, {name: v, kind: random, min: 0, max: 99}]
operators:
  - id: keyed
    input: numbers
    key_by: k
  - id: totals
    input: keyed
    aggregate: [{kind: count, as: n}, {kind: sum, field: v}]
sinks:
  - input: totals
    connector: blackhole
"#;
    let job = weir::pipeline::build(yaml, "agg.yaml").unwrap();
    let r = tokio::runtime::Runtime::new().unwrap().block_on(job.execute()).unwrap();
    assert_eq!(r.node("totals").unwrap().records_out, 1000);
    let e = match weir::pipeline::build(
        &yaml.replace("input: keyed\n    aggregate", "input: numbers\n    aggregate"),
        "agg.yaml",
    ) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a running aggregate needs keys"),
    };
    assert!(e.contains("agg.yaml:13") && e.contains("per key"), "{e}");
}
