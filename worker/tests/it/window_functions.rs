//! User window functions and global windows through the public API: `process`, `reduce` and a
//! user `AggregateFunction` give the same results as the built-in aggregates (themselves checked
//! against a reference in `windows.rs`) on tumbling, sliding and session windows with lateness,
//! over random out-of-order input; global windows with count and continuous event-time
//! triggers; the pipeline form.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::common::timed::{Rows, events, millis};
use arrow::datatypes::{DataType, Field, Schema};
use proptest::prelude::*;
use weir::prelude::*;

/// Final (count, sum, min, max) per (key, window start), and late records.
type Results = BTreeMap<(i64, i64), (i64, i64, i64, i64)>;

/// count, sum, min, max of `v` as a user aggregate function.
struct Stats;

impl AggregateFunction<Row, (i64, i64, i64, i64), Row> for Stats {
    fn create_accumulator(&self) -> (i64, i64, i64, i64) {
        (0, 0, i64::MAX, i64::MIN)
    }
    fn add(&self, row: Row, acc: &mut (i64, i64, i64, i64)) {
        let v = row[2].as_i64().unwrap();
        *acc = (acc.0 + 1, acc.1 + v, acc.2.min(v), acc.3.max(v));
    }
    fn get_result(&self, acc: &(i64, i64, i64, i64)) -> Row {
        vec![acc.0.into(), acc.1.into(), acc.2.into(), acc.3.into()]
    }
    fn merge(&self, a: (i64, i64, i64, i64), b: (i64, i64, i64, i64)) -> (i64, i64, i64, i64) {
        (a.0 + b.0, a.1 + b.1, a.2.min(b.2), a.3.max(b.3))
    }
}

fn stat_fields() -> Vec<Field> {
    ["count", "sum_v", "min_v", "max_v"]
        .iter()
        .map(|n| Field::new(*n, DataType::Int64, false))
        .collect()
}

/// Final values by the last firing of each window.
fn finals(sink: &Collect, count: &str, sum: &str, min: &str, max: &str) -> Results {
    let mut out = Results::new();
    for row in sink.rows_json() {
        let v: serde_json::Value = serde_json::from_str(&row).unwrap();
        let g = |f: &str| v[f].as_i64().unwrap_or(0);
        out.insert((g("k"), millis(&v["window_start"])), (g(count), g(sum), g(min), g(max)));
    }
    out
}

/// Built-in aggregates, a user aggregate function, reduce and process on the same windows.
fn run_all(rows: Vec<(i64, i64, i64)>, batch: usize, delay: i64, assigner: WindowAssigner, lateness: i64) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    let source = env
        .add_source_named("rows", Arc::new(Rows { rows, batch }))
        .with_watermarks(WatermarkStrategy::bounded_out_of_orderness(
            "ts",
            Duration::from_millis(delay as u64),
        ));
    let windowed = source
        .key_by("k")
        .window(assigner)
        .allowed_lateness(Duration::from_millis(lateness as u64));
    let sinks: Vec<Collect> = (0..4).map(|_| Collect::new()).collect();
    windowed
        .aggregate(&[Agg::count(), Agg::sum("v"), Agg::min("v"), Agg::max("v")])
        .name("builtin")
        .add_sink(sinks[0].clone());
    windowed
        .aggregate_function(Stats, stat_fields())
        .name("user_aggregate")
        .add_sink(sinks[1].clone());
    // reduce keeps the input's schema: v becomes the sum, ts the latest time.
    windowed
        .reduce(|a, b| {
            let (ta, tb) = (a[1].as_i64().unwrap(), b[1].as_i64().unwrap());
            let (va, vb) = (a[2].as_i64().unwrap(), b[2].as_i64().unwrap());
            Ok(vec![a[0].clone(), Value::Timestamp(ta.max(tb)), Value::Int(va + vb)])
        })
        .name("reduce")
        .add_sink(sinks[2].clone());
    let ts = DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None);
    let out = Arc::new(Schema::new(
        [
            Field::new("k", DataType::Int64, false),
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts, false),
        ]
        .into_iter()
        .chain(stat_fields())
        .collect::<Vec<_>>(),
    ));
    windowed
        .process(out, |ctx: &WindowContext<'_>, elements: &[Row], out: &mut Vec<Row>| {
            let vs: Vec<i64> = elements.iter().map(|r| r[2].as_i64().unwrap()).collect();
            // Elements arrive in time order within a window only per key; check they are this key's.
            assert!(elements.iter().all(|r| r[0] == ctx.key()[0]));
            let w = ctx.window();
            out.push(vec![
                ctx.key()[0].clone(),
                Value::Timestamp(w.start),
                Value::Timestamp(w.end),
                Value::Int(vs.len() as i64),
                Value::Int(vs.iter().sum()),
                Value::Int(*vs.iter().min().unwrap()),
                Value::Int(*vs.iter().max().unwrap()),
            ]);
            Ok(())
        })
        .name("process")
        .add_sink(sinks[3].clone());
    let r = env.execute("window functions").unwrap();
    let builtin = finals(&sinks[0], "count", "sum_v", "min_v", "max_v");
    assert_eq!(
        finals(&sinks[1], "count", "sum_v", "min_v", "max_v"),
        builtin,
        "user aggregate"
    );
    assert_eq!(
        finals(&sinks[3], "count", "sum_v", "min_v", "max_v"),
        builtin,
        "process"
    );
    let sums: BTreeMap<_, _> = builtin.iter().map(|(k, v)| (*k, v.1)).collect();
    let reduced: BTreeMap<_, _> = finals(&sinks[2], "v", "v", "v", "v")
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    assert_eq!(reduced, sums, "reduce");
    // All four see the same late records.
    let late = r.node("builtin").unwrap().late_records;
    for n in ["user_aggregate", "reduce", "process"] {
        assert_eq!(r.node(n).unwrap().late_records, late, "{n}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn user_functions_match_builtins_on_tumbling_windows(rows in events(), batch in 1usize..40, delay in 0i64..300, size in 50i64..500, lateness in prop::sample::select(vec![0i64, 100, 1000])) {
        run_all(rows, batch, delay, TumblingEventTimeWindows::of(Duration::from_millis(size as u64)), lateness);
    }

    #[test]
    fn user_functions_match_builtins_on_sliding_windows(rows in events(), batch in 1usize..40, delay in 0i64..300, slide in 20i64..200, factor in 1i64..5) {
        let a = SlidingEventTimeWindows::of(Duration::from_millis((slide * factor) as u64), Duration::from_millis(slide as u64));
        run_all(rows, batch, delay, a, 150);
    }

    #[test]
    fn user_functions_match_builtins_on_session_windows(rows in events(), batch in 1usize..40, delay in 0i64..300, gap in 10i64..400, lateness in prop::sample::select(vec![0i64, 200])) {
        run_all(rows, batch, delay, EventTimeSessionWindows::with_gap(Duration::from_millis(gap as u64)), lateness);
    }
}

/// Runs a keyed global window with `trigger` over `rows`; returns (k, count, sum) per firing in
/// output order.
fn global(rows: Vec<(i64, i64, i64)>, trigger: Arc<dyn Trigger>) -> Vec<(i64, i64, i64)> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let sink = Collect::new();
    env.add_source_named("rows", Arc::new(Rows { rows, batch: 4 }))
        .with_watermarks(WatermarkStrategy::bounded_out_of_orderness("ts", Duration::ZERO))
        .key_by("k")
        .window(GlobalWindows::create())
        .trigger(trigger)
        .aggregate(&[Agg::count(), Agg::sum("v")])
        .add_sink(sink.clone());
    env.execute("global").unwrap();
    sink.rows_json()
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(r).unwrap();
            assert!(v["window_start"].is_null() && v["window_end"].is_null());
            (
                v["k"].as_i64().unwrap(),
                v["count"].as_i64().unwrap(),
                v["sum_v"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn per_key(v: Vec<(i64, i64, i64)>) -> BTreeMap<i64, Vec<(i64, i64)>> {
    let mut m: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for (k, c, s) in v {
        m.entry(k).or_default().push((c, s));
    }
    m
}

#[test]
fn global_windows_fire_on_count_triggers() {
    // Key k = i % 3, v = i: key 0 gets 0, 3, 6, …
    let rows: Vec<(i64, i64, i64)> = (0..20).map(|i| (i % 3, i * 10, i)).collect();
    // Purging: each firing covers the last 3 records of its key; leftovers never fire.
    let purged = per_key(global(rows.clone(), PurgingTrigger::of(CountTrigger::of(3))));
    assert_eq!(purged[&0], vec![(3, 9), (3, 36)]);
    assert_eq!(purged[&1], vec![(3, 12), (3, 39)]);
    assert_eq!(purged[&2], vec![(3, 15), (3, 42)]);
    // Not purging: the window keeps growing and fires every 3 records.
    let growing = per_key(global(rows, CountTrigger::of(3)));
    assert_eq!(growing[&0], vec![(3, 9), (6, 45)]);
    assert_eq!(growing[&2], vec![(3, 15), (6, 57)]);
}

#[test]
fn global_windows_fire_on_continuous_event_time_triggers() {
    // One key, a record every 100 ms from 0 to 950; fire every 300 ms of event time.
    let rows: Vec<(i64, i64, i64)> = (0..10).map(|i| (1, i * 100 + 50, 1)).collect();
    let fired = global(rows.clone(), ContinuousEventTimeTrigger::of(Duration::from_millis(300)));
    // Batches of 4 move the watermark to 349, 749 and 949: timers 299, 599 and 899 fire then
    // (with 4, 8 and 10 records); at the end of input the pending timer (1199) fires once more.
    let counts: Vec<i64> = fired.iter().map(|r| r.1).collect();
    assert_eq!(counts, vec![4, 8, 10, 10]);
    let purged = global(
        rows,
        PurgingTrigger::of(ContinuousEventTimeTrigger::of(Duration::from_millis(300))),
    );
    // Purged at each firing; the last timer finds the window empty and emits nothing.
    let counts: Vec<i64> = purged.iter().map(|r| r.1).collect();
    assert_eq!(counts, vec![4, 4, 2]);
}

#[test]
fn process_windows_see_every_element_with_key_and_window() {
    // window_all + process: the highest bids of each 1 s window (Nexmark q7's shape).
    let rows: Vec<(i64, i64, i64)> = vec![(1, 100, 5), (2, 200, 9), (3, 900, 9), (4, 1100, 7), (5, 1500, 2)];
    let env = StreamExecutionEnvironment::new();
    let sink = Collect::new();
    let out = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
        Field::new("window_end", DataType::Int64, false),
    ]));
    env.add_source_named("rows", Arc::new(Rows { rows, batch: 2 }))
        .with_watermarks(WatermarkStrategy::bounded_out_of_orderness("ts", Duration::ZERO))
        .window_all(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .process(out, |ctx: &WindowContext<'_>, elements: &[Row], out: &mut Vec<Row>| {
            assert!(ctx.key().is_empty());
            let max = elements.iter().filter_map(|r| r[2].as_i64()).max().unwrap();
            for r in elements.iter().filter(|r| r[2].as_i64() == Some(max)) {
                out.push(vec![r[0].clone(), r[2].clone(), Value::Int(ctx.window().end)]);
            }
            Ok(())
        })
        .add_sink(sink.clone());
    env.execute("q7 shape").unwrap();
    let mut rows = sink.rows_json();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            r#"{"k":2,"v":9,"window_end":1000}"#,
            r#"{"k":3,"v":9,"window_end":1000}"#,
            r#"{"k":4,"v":7,"window_end":2000}"#,
        ]
    );
}

#[test]
fn global_window_errors_name_the_problem() {
    let env = StreamExecutionEnvironment::new();
    let s = env
        .add_source(common::numbers(10, 3))
        .key_by("k")
        .window(GlobalWindows::create())
        .aggregate(&[Agg::count()]);
    s.add_sink(Collect::new());
    let e = env.execute("no trigger").unwrap_err().to_string();
    assert!(e.contains("global windows need a trigger"), "{e}");
    let env = StreamExecutionEnvironment::new();
    env.add_source(common::numbers(10, 3))
        .with_watermarks(WatermarkStrategy::monotonous("id"))
        .key_by("k")
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .trigger(CountTrigger::of(2))
        .aggregate(&[Agg::count()])
        .add_sink(Collect::new());
    let e = env.execute("trigger on tumbling").unwrap_err().to_string();
    assert!(e.contains("only available on global windows"), "{e}");
}

#[test]
fn global_windows_in_the_pipeline_form() {
    let yaml = r#"
name: global
parallelism: 2
sources:
  - id: events
    connector: datagen
    rows: 32
    fields:
      - {name: id, kind: sequence}
operators:
  - id: keys
    input: events
    select: ["id", "id % 3 AS key"]
  - id: keyed
    input: keys
    key_by: key
  - id: every5
    input: keyed
    window:
      global: true
      trigger: {count: 5, purge: true}
      aggregates: [{kind: count}, {kind: max, field: id}]
sinks:
  - input: every5
    connector: blackhole
"#;
    let job = weir::pipeline::build(yaml, "global.yaml").unwrap();
    let r = tokio::runtime::Runtime::new().unwrap().block_on(job.execute()).unwrap();
    // Keys 0 and 1 get 11 records, key 2 gets 10: two firings each.
    assert_eq!(r.node("every5").unwrap().records_out, 6);
    let refused = |from: &str, to: &str| match weir::pipeline::build(&yaml.replace(from, to), "global.yaml") {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted {to}"),
    };
    let e = refused("{count: 5, purge: true}", "{count: 0}");
    assert!(e.contains("window.trigger.count must be at least 1"), "{e}");
    let e = refused("global: true", "size_ms: 1000");
    assert!(e.contains("window.trigger is only for global windows"), "{e}");
}
