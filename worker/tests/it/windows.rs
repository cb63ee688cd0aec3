//! Windows through the public API: tumbling and sliding event-time windows with aggregates,
//! checked against a straightforward reference over random out-of-order input; lateness;
//! identical results at parallelism 1, 2 and 4.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::common::timed::{Rows, events, millis};
use proptest::prelude::*;
use weir::prelude::*;

/// Final values per (key, window start): count, sum, min, max.
type Results = BTreeMap<(i64, i64), (i64, i64, i64, i64)>;

/// The reference: the same arrival order and watermarks, computed the obvious way.
fn reference(
    rows: &[(i64, i64, i64)],
    batch: usize,
    delay: i64,
    size: i64,
    slide: i64,
    lateness: i64,
) -> (Results, u64) {
    let mut out: Results = BTreeMap::new();
    let mut late = 0;
    let mut watermark = i64::MIN;
    let mut max_ts = i64::MIN;
    for chunk in rows.chunks(batch.max(1)) {
        for &(k, ts, v) in chunk {
            let last = ts - ts.rem_euclid(slide);
            let starts: Vec<i64> = (0..).map(|i| last - i * slide).take_while(|s| *s > ts - size).collect();
            let live: Vec<i64> = starts
                .into_iter()
                .filter(|s| (*s as i128) + (size as i128) - 1 + (lateness as i128) > watermark as i128)
                .collect();
            if live.is_empty() {
                late += 1;
            }
            for s in live {
                let e = out.entry((k, s)).or_insert((0, 0, i64::MAX, i64::MIN));
                e.0 += 1;
                e.1 += v;
                e.2 = e.2.min(v);
                e.3 = e.3.max(v);
            }
            max_ts = max_ts.max(ts);
        }
        watermark = watermark.max(max_ts - delay - 1);
    }
    (out, late)
}

fn run_windows(
    rows: Vec<(i64, i64, i64)>,
    batch: usize,
    delay: i64,
    assigner: WindowAssigner,
    lateness: i64,
) -> (Results, u64) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    let sink = Collect::new();
    let late = Collect::new();
    let windows = env
        .add_source_named("rows", Arc::new(Rows { rows, batch }))
        .with_watermarks(WatermarkStrategy::bounded_out_of_orderness(
            "ts",
            Duration::from_millis(delay as u64),
        ))
        .key_by("k")
        .window(assigner)
        .allowed_lateness(Duration::from_millis(lateness as u64))
        .aggregate(&[Agg::count(), Agg::sum("v"), Agg::min("v"), Agg::max("v")])
        .name("win");
    windows.add_sink(sink.clone());
    windows.late_data().add_sink(late.clone());
    let r = env.execute("windows").unwrap();
    // Every late record comes out of the side output: none is dropped silently.
    assert_eq!(late.len() as u64, r.node("win").unwrap().late_records);
    // The last firing of each window holds its final value.
    let mut out: Results = BTreeMap::new();
    for row in sink.rows_json() {
        let v: serde_json::Value = serde_json::from_str(&row).unwrap();
        let start = millis(&v["window_start"]);
        let g = |f: &str| v[f].as_i64().unwrap();
        out.insert((g("k"), start), (g("count"), g("sum_v"), g("min_v"), g("max_v")));
    }
    (out, r.node("win").unwrap().late_records)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn tumbling_windows_match_the_reference(rows in events(), batch in 1usize..40, delay in 0i64..300, size in 50i64..500, lateness in prop::sample::select(vec![0i64, 100, 1000])) {
        let got = run_windows(rows.clone(), batch, delay, TumblingEventTimeWindows::of(Duration::from_millis(size as u64)), lateness);
        prop_assert_eq!(got, reference(&rows, batch, delay, size, size, lateness));
    }

    #[test]
    fn sliding_windows_match_the_reference(rows in events(), batch in 1usize..40, delay in 0i64..300, slide in 20i64..200, factor in 1i64..5, lateness in prop::sample::select(vec![0i64, 150])) {
        let size = slide * factor;
        let assigner = SlidingEventTimeWindows::of(Duration::from_millis(size as u64), Duration::from_millis(slide as u64));
        let got = run_windows(rows.clone(), batch, delay, assigner, lateness);
        prop_assert_eq!(got, reference(&rows, batch, delay, size, slide, lateness));
    }
}

#[test]
fn lateness_refires_windows_and_counts_what_is_too_late() {
    // Window [0, 100): fires when the watermark reaches 99 (a record at 100 with delay 0).
    let rows = vec![(1, 10, 1), (1, 100, 0), (1, 20, 5), (1, 400, 0), (1, 30, 7)];
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    let sink = Collect::new();
    let late = Collect::new();
    let windows = env
        .add_source_named("rows", Arc::new(Rows { rows, batch: 1 }))
        .with_watermarks(WatermarkStrategy::monotonous("ts"))
        .key_by("k")
        .window(TumblingEventTimeWindows::of(Duration::from_millis(100)))
        .allowed_lateness(Duration::from_millis(200))
        .aggregate(&[
            Agg::sum("v").alias("total"),
            Agg::avg("v"),
            Agg::first("v"),
            Agg::last("v"),
        ])
        .name("win");
    windows.add_sink(sink.clone());
    windows.late_data().add_sink(late.clone());
    let r = env.execute("late").unwrap();
    // The too-late record is not dropped: it comes out of the side output as it went in.
    assert_eq!(
        late.rows_json(),
        vec![r#"{"k":1,"ts":"1970-01-01T00:00:00.030","v":7}"#]
    );
    let first_window: Vec<String> = sink
        .rows_json()
        .into_iter()
        .filter(|l| l.contains(r#""window_start":"1970-01-01T00:00:00""#))
        .collect();
    // On time: total 1; late but allowed (watermark 99 < 99 + 200): total 6; too late
    // (watermark 399 ≥ 299): counted, not added.
    assert_eq!(first_window.len(), 2, "{first_window:?}");
    assert!(first_window[0].contains(r#""total":1,"#), "{first_window:?}");
    assert!(
        first_window[1].contains(r#""total":6,"avg_v":3.0,"first_v":1,"last_v":5"#),
        "{first_window:?}"
    );
    assert_eq!(r.node("win").unwrap().late_records, 1);
}

fn parallel_job(p: usize) -> Vec<String> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(p).set_batch_size(256);
    let cfg = DatagenConfig {
        rows: Some(40_000),
        fields: vec![
            DatagenField {
                start: Some(0),
                rows_per_ms: Some(10),
                ..DatagenField::new("ts", FieldKind::Timestamp)
            },
            DatagenField::random_int("k", 0, 99),
            DatagenField::random_int("price", 1, 1000),
        ],
        ..Default::default()
    };
    let sink = Collect::new();
    env.add_source(Datagen::new("gen", cfg).unwrap())
        .with_watermarks(WatermarkStrategy::monotonous("ts"))
        .key_by("k")
        .window(SlidingEventTimeWindows::of(
            Duration::from_millis(500),
            Duration::from_millis(100),
        ))
        .aggregate(&[Agg::count(), Agg::max("price"), Agg::avg("price")])
        .add_sink(sink.clone());
    env.execute("parallel-windows").unwrap();
    common::sorted(&sink)
}

#[test]
fn parallel_runs_give_identical_windowed_results() {
    let one = parallel_job(1);
    assert!(one.len() > 3_000, "{}", one.len());
    assert_eq!(one, parallel_job(2));
    assert_eq!(one, parallel_job(4));
}

#[test]
fn window_all_and_errors() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let sink = Collect::new();
    let rows: Vec<(i64, i64, i64)> = (0..1000).map(|i| (i % 7, i, 1)).collect();
    env.add_source_named("rows", Arc::new(Rows { rows, batch: 64 }))
        .with_watermarks(WatermarkStrategy::monotonous("ts"))
        .window_all(TumblingEventTimeWindows::of(Duration::from_millis(250)))
        .aggregate(&[Agg::count()])
        .add_sink(sink.clone());
    env.execute("all").unwrap();
    let windows: Vec<(i64, i64, i64)> = common::sorted(&sink)
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                millis(&v["window_start"]),
                millis(&v["window_end"]),
                v["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        windows,
        vec![(0, 250, 250), (250, 500, 250), (500, 750, 250), (750, 1000, 250)]
    );

    // No event time anywhere.
    let env = StreamExecutionEnvironment::new();
    env.add_source(common::numbers(10, 3))
        .key_by("k")
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .aggregate(&[Agg::count()])
        .print();
    let e = env.execute("bad").unwrap_err().to_string();
    assert!(e.contains("no event time"), "{e}");
    // A named time field that is not a time, and a bad aggregate field.
    let env = StreamExecutionEnvironment::new();
    env.add_source(common::numbers(10, 3))
        .key_by("k")
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)).on("id"))
        .aggregate(&[Agg::max("nope")])
        .print();
    let e = env.execute("bad").unwrap_err().to_string();
    assert!(e.contains("no field 'nope'"), "{e}");
}

#[test]
fn windows_in_the_pipeline_form_match_the_api() {
    let yaml = r#"
name: hot-auctions
parallelism: 2
sources:
  - id: bids
    connector: nexmark
    events: 200000
    stream: bid
    rate: 10000
    watermark: {field: dateTime, max_out_of_orderness_ms: 4000}
operators:
  - id: by_auction
    input: bids
    key_by: auction
  - id: per_window
    input: by_auction
    window:
      size_ms: 10000
      slide_ms: 2000
      aggregates:
        - {kind: count, as: bids}
        - {kind: max, field: price}
        - {kind: avg, field: price, as: mean}
sinks:
  - input: per_window
    connector: blackhole
"#;
    let job = weir::pipeline::build(yaml, "hot.yaml").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(job.execute()).unwrap();
    let yaml_rows = r.node("per_window").unwrap().records_out;

    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let cfg = NexmarkConfig {
        events: Some(200_000),
        stream: NexmarkStream::Bid,
        rate: 10_000,
        ..Default::default()
    };
    let sink = Collect::new();
    env.add_source(Nexmark::new("bids", cfg).unwrap())
        .with_watermarks(WatermarkStrategy::bounded_out_of_orderness(
            "dateTime",
            Duration::from_secs(4),
        ))
        .key_by("auction")
        .window(SlidingEventTimeWindows::of(
            Duration::from_secs(10),
            Duration::from_secs(2),
        ))
        .aggregate(&[
            Agg::count().alias("bids"),
            Agg::max("price"),
            Agg::avg("price").alias("mean"),
        ])
        .add_sink(sink.clone());
    env.execute("hot-auctions").unwrap();
    assert!(yaml_rows > 1_000);
    assert_eq!(sink.len() as u64, yaml_rows);
    let first = &sink.rows_json()[0];
    for col in ["auction", "window_start", "window_end", "bids", "max_price", "mean"] {
        assert!(first.contains(&format!("\"{col}\"")), "{first}");
    }

    let e = match weir::pipeline::build(&yaml.replace("kind: max", "kind: median"), "hot.yaml") {
        Err(e) => e.to_string(),
        Ok(_) => panic!("median is not an aggregate"),
    };
    assert!(
        e.contains("hot.yaml:15") && e.contains("unknown aggregate 'median'"),
        "{e}"
    );
}

/// Live sessions per key: (start, end, (count, sum, min, max)).
type Live = BTreeMap<i64, Vec<(i64, i64, (i64, i64, i64, i64))>>;

/// Sessions the obvious way: same arrival order and watermarks; a session leaves the state
/// (and its value is final) once the watermark passes its end − 1.
fn session_reference(rows: &[(i64, i64, i64)], batch: usize, delay: i64, gap: i64) -> (Results, u64) {
    let mut live: Live = BTreeMap::new();
    let mut done: Results = BTreeMap::new();
    let (mut late, mut watermark, mut max_ts) = (0, i64::MIN, i64::MIN);
    let close = |live: &mut Live, done: &mut Results, w: i64| {
        for (k, list) in live.iter_mut() {
            list.retain(|(s, e, v)| {
                if e - 1 <= w {
                    done.insert((*k, *s), *v);
                    false
                } else {
                    true
                }
            });
        }
    };
    for chunk in rows.chunks(batch.max(1)) {
        for &(k, ts, v) in chunk {
            let list = live.entry(k).or_default();
            let (mut s, mut e) = (ts, ts + gap);
            let (touch, keep): (Vec<_>, Vec<_>) = list.drain(..).partition(|(ls, le, _)| *ls <= e && *le >= s);
            for (ls, le, _) in &touch {
                s = s.min(*ls);
                e = e.max(*le);
            }
            if e - 1 <= watermark {
                late += 1;
                *list = touch.into_iter().chain(keep).collect();
                continue;
            }
            let mut acc = (1, v, v, v);
            for (_, _, a) in &touch {
                acc = (acc.0 + a.0, acc.1 + a.1, acc.2.min(a.2), acc.3.max(a.3));
            }
            *list = keep;
            list.push((s, e, acc));
            max_ts = max_ts.max(ts);
        }
        watermark = watermark.max(max_ts - delay - 1);
        close(&mut live, &mut done, watermark);
    }
    close(&mut live, &mut done, i64::MAX);
    (done, late)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn session_windows_match_the_reference(rows in events(), batch in 1usize..40, delay in 0i64..300, gap in 10i64..400) {
        let got = run_windows(rows.clone(), batch, delay, EventTimeSessionWindows::with_gap(Duration::from_millis(gap as u64)), 0);
        prop_assert_eq!(got, session_reference(&rows, batch, delay, gap));
    }
}

#[test]
fn sessions_merge_and_refire_within_lateness() {
    // Gap 100: 10 and 50 form [10, 150), which fires when 300 moves the watermark to 299. 120
    // arrives late but within lateness 500: its [120, 220) touches the session, which merges to
    // [10, 220) and fires again. 2000 fires [300, 400) and moves the watermark to 1999, past
    // every earlier session's lateness, so 100 is late.
    let rows = vec![
        (1, 10, 1),
        (1, 50, 2),
        (1, 300, 0),
        (1, 120, 3),
        (1, 2000, 0),
        (1, 100, 9),
    ];
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    let sink = Collect::new();
    env.add_source_named("rows", Arc::new(Rows { rows, batch: 1 }))
        .with_watermarks(WatermarkStrategy::monotonous("ts"))
        .key_by("k")
        .window(EventTimeSessionWindows::with_gap(Duration::from_millis(100)))
        .allowed_lateness(Duration::from_millis(500))
        .aggregate(&[Agg::count(), Agg::sum("v")])
        .name("win")
        .add_sink(sink.clone());
    let r = env.execute("sessions").unwrap();
    let got: Vec<(i64, i64, i64, i64)> = sink
        .rows_json()
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                millis(&v["window_start"]),
                millis(&v["window_end"]),
                v["count"].as_i64().unwrap(),
                v["sum_v"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(10, 150, 2, 3), (10, 220, 3, 6), (300, 400, 1, 0), (2000, 2100, 1, 0)]
    );
    assert_eq!(r.node("win").unwrap().late_records, 1, "{got:?}");
}

/// Count windows the obvious way: per key, every `slide` records, the last `size` ones.
fn count_reference(rows: &[(i64, i64, i64)], size: usize, slide: usize) -> Vec<(i64, i64, i64, i64, i64)> {
    let mut per_key: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut out = Vec::new();
    for &(k, _, v) in rows {
        let seen = per_key.entry(k).or_default();
        seen.push(v);
        let n = seen.len();
        let fire = if slide == size {
            n.is_multiple_of(size)
        } else {
            n.is_multiple_of(slide)
        };
        if fire {
            let last = &seen[n.saturating_sub(size)..];
            out.push((
                k,
                last.len() as i64,
                last.iter().sum(),
                *last.first().unwrap(),
                *last.last().unwrap(),
            ));
        }
    }
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn count_windows_match_the_reference(rows in events(), batch in 1usize..40, size in 1u64..12, slide_div in 1u64..4) {
        let slide = (size / slide_div).max(1);
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(2);
        let sink = Collect::new();
        env.add_source_named("rows", Arc::new(Rows { rows: rows.clone(), batch }))
            .key_by("k")
            .count_window_sliding(size, slide)
            .aggregate(&[Agg::count(), Agg::sum("v"), Agg::first("v"), Agg::last("v")])
            .add_sink(sink.clone());
        env.execute("count").unwrap();
        let mut got: Vec<(i64, i64, i64, i64, i64)> = sink.rows_json().iter().map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let g = |f: &str| v[f].as_i64().unwrap();
            (g("k"), g("count"), g("sum_v"), g("first_v"), g("last_v"))
        }).collect();
        got.sort();
        prop_assert_eq!(got, count_reference(&rows, size as usize, slide as usize));
    }
}

#[test]
fn count_windows_in_the_pipeline_form() {
    let yaml = r#"
name: counts
parallelism: 2
sources:
  - id: events
    connector: datagen
    rows: 100
    watermark: {field: ts}
    fields:
      - {name: ts, kind: timestamp, start: 0, rows_per_ms: 1}
      - {name: k, kind: sequence}
operators:
  - id: one_key
    input: events
    select: ["ts", "k % 1 AS key", "k"]
  - id: keyed
    input: one_key
    key_by: key
  - id: tens
    input: keyed
    window: {count: 10, aggregates: [{kind: sum, field: k}]}
sinks:
  - input: tens
    connector: blackhole
"#;
    let job = weir::pipeline::build(yaml, "counts.yaml").unwrap();
    let r = tokio::runtime::Runtime::new().unwrap().block_on(job.execute()).unwrap();
    assert_eq!(r.node("tens").unwrap().records_out, 10);
    let e = match weir::pipeline::build(
        &yaml.replace("input: keyed\n    window", "input: one_key\n    window"),
        "counts.yaml",
    ) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("count windows need keys"),
    };
    assert!(e.contains("count windows are per key"), "{e}");
}

#[test]
fn count_windows_span_the_event_time_of_their_records() {
    let rows: Vec<(i64, i64, i64)> = (0..30).map(|i| (1, 100 + i * 10, i)).collect();
    let env = StreamExecutionEnvironment::new();
    let sink = Collect::new();
    env.add_source_named("rows", Arc::new(Rows { rows, batch: 7 }))
        .with_watermarks(WatermarkStrategy::monotonous("ts"))
        .key_by("k")
        .count_window(10)
        .aggregate(&[Agg::max("v")])
        .add_sink(sink.clone());
    env.execute("span").unwrap();
    let spans = spans_with(&sink, "max_v");
    assert_eq!(spans, vec![(100, 191, 9), (200, 291, 19), (300, 391, 29)]);
}

/// A keyed count in processing-time windows of `assigner` over an endless datagen (keys 0 and
/// 1, 4,000 rows/s) on a manual clock at 1,000,000, running until `cancel`.
struct ProcessingTimeJob {
    clock: ManualClock,
    sink: Collect,
    metrics: weir::runtime::metrics::JobMetrics,
    cancel: tokio_util::sync::CancellationToken,
    job: tokio::task::JoinHandle<weir::contract::error::Result<JobResult>>,
}

impl ProcessingTimeJob {
    fn start(assigner: WindowAssigner, name: &'static str) -> Self {
        let clock = ManualClock::new(1_000_000);
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(2).set_clock(clock.shared());
        let cfg = DatagenConfig {
            rows: None,
            rows_per_second: Some(4_000),
            fields: vec![DatagenField::random_int("k", 0, 1)],
            ..Default::default()
        };
        let sink = Collect::new();
        env.add_source(Datagen::new("g", cfg).unwrap())
            .key_by("k")
            .window(assigner)
            .aggregate(&[Agg::count()])
            .add_sink(sink.clone());
        let metrics = env.metrics();
        let cancel = tokio_util::sync::CancellationToken::new();
        let job = tokio::spawn({
            let (env, metrics, cancel) = (env.clone(), metrics.clone(), cancel.clone());
            async move { env.execute_with(name, &metrics, cancel).await }
        });
        ProcessingTimeJob {
            clock,
            sink,
            metrics,
            cancel,
            job,
        }
    }

    /// Records into the window operator so far.
    fn windowed(&self) -> u64 {
        self.metrics
            .snapshot()
            .iter()
            .find(|n| n.name == "window")
            .map_or(0, |n| n.records_in)
    }

    /// Cancels the job and waits for its end.
    async fn finish(self) -> JobResult {
        self.cancel.cancel();
        self.job.await.unwrap().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_time_windows_fire_when_the_clock_passes_their_end() {
    let p = ProcessingTimeJob::start(
        TumblingProcessingTimeWindows::of(Duration::from_millis(200)),
        "proc-windows",
    );
    let (clock, sink, windowed) = (&p.clock, &p.sink, || p.windowed());
    // Rows so far are in the window [1_000_000, 1_000_200): it fires when the clock reaches
    // its last millisecond (Flink's maxTimestamp), not before.
    common::eventually(|| windowed() >= 400).await;
    clock.advance(198);
    common::eventually(|| windowed() >= 800).await;
    assert!(sink.is_empty(), "{:?}", sink.rows_json());
    clock.advance(1);
    common::eventually(|| sink.len() == 2).await;
    let first: i64 = counts(&sink.rows_json()).iter().sum();
    assert!(
        first >= 800,
        "the first window holds what arrived before its end: {first}"
    );
    // Rows from 1_000_200 on are in the next window, which fires at 1_000_399.
    clock.advance(1);
    let seen = windowed();
    common::eventually(|| windowed() >= seen + 400).await;
    clock.advance(199);
    common::eventually(|| sink.len() == 4).await;
    let fired = spans_with(sink, "count");
    let r = p.finish().await;
    let mut bounds: Vec<(i64, i64)> = fired.iter().map(|f| (f.0, f.1)).collect();
    bounds.sort();
    assert_eq!(
        bounds,
        [
            (1_000_000, 1_000_200),
            (1_000_000, 1_000_200),
            (1_000_200, 1_000_400),
            (1_000_200, 1_000_400)
        ]
    );
    let counted: i64 = fired.iter().map(|f| f.2).sum();
    let produced = r.node("datagen").unwrap().records_out as i64;
    assert!(counted > 0 && counted <= produced, "{counted} of {produced}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_processing_time_windows_merge_their_slices_when_the_clock_passes_their_end() {
    // Windows of 400 ms every 200 ms, kept as 200 ms slices: the window [999_800, 1_000_200)
    // fires at 1_000_199 with the first slice; [1_000_000, 1_000_400) at 1_000_399 with both.
    let p = ProcessingTimeJob::start(
        SlidingProcessingTimeWindows::of(Duration::from_millis(400), Duration::from_millis(200)),
        "sliding-proc",
    );
    let (clock, sink, windowed) = (&p.clock, &p.sink, || p.windowed());
    common::eventually(|| windowed() >= 400).await;
    clock.advance(199);
    common::eventually(|| sink.len() == 2).await;
    let first: i64 = counts(&sink.rows_json()).iter().sum();
    clock.advance(1);
    let seen = windowed();
    common::eventually(|| windowed() >= seen + 400).await;
    clock.advance(199);
    common::eventually(|| sink.len() == 4).await;
    let mut fired = spans_with(sink, "count");
    p.finish().await;
    fired.sort();
    let bounds: Vec<(i64, i64)> = fired.iter().map(|f| (f.0, f.1)).collect();
    assert_eq!(
        bounds,
        [
            (999_800, 1_000_200),
            (999_800, 1_000_200),
            (1_000_000, 1_000_400),
            (1_000_000, 1_000_400)
        ]
    );
    let second: i64 = fired[2..].iter().map(|f| f.2).sum();
    assert!(
        second >= first + 400,
        "the second window holds the first slice and the next: {first} then {second}"
    );
}

/// Each output row's `(window_start, window_end, field)`, in arrival order.
fn spans_with(sink: &Collect, field: &str) -> Vec<(i64, i64, i64)> {
    sink.rows_json()
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                millis(&v["window_start"]),
                millis(&v["window_end"]),
                v[field].as_i64().unwrap(),
            )
        })
        .collect()
}

fn counts(rows: &[String]) -> Vec<i64> {
    rows.iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["count"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

#[test]
fn late_data_in_the_pipeline_form() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("events.jsonl"),
        "{\"k\": 1, \"ts\": 10}\n{\"k\": 1, \"ts\": 500}\n{\"k\": 1, \"ts\": 20}\n{\"k\": 2, \"ts\": 30}\n",
    )
    .unwrap();
    let yaml = format!(
        r#"
name: late
parallelism: 1
batch_size: 1
sources:
  - id: events
    connector: file
    path: {}/events.jsonl
    schema: "k BIGINT, ts BIGINT"
    watermark: {{field: ts}}
operators:
  - id: keyed
    input: events
    key_by: k
  - id: counts
    input: keyed
    window: {{size_ms: 100, aggregates: [{{kind: count}}]}}
  - id: too_late
    late_data: counts
sinks:
  - input: counts
    connector: blackhole
  - input: too_late
    connector: file
    path: {}/late
"#,
        dir.path().display(),
        dir.path().display()
    );
    let job = weir::pipeline::build(&yaml, "late.yaml").unwrap();
    let r = tokio::runtime::Runtime::new().unwrap().block_on(job.execute()).unwrap();
    assert_eq!(r.node("counts").unwrap().late_records, 2);
    assert_eq!(
        common::read_lines(&dir.path().join("late")),
        vec![r#"{"k":1,"ts":20}"#, r#"{"k":2,"ts":30}"#]
    );
}
