//! Operators with distinct inputs (what joins, `connect` and broadcast state build on): each
//! batch arrives with its input's index, each input's schema reaches the factory, and each
//! input's own watermark arrives before the combined one — through the public graph API.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::UInt32Array;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use weir::operators::{Operator, OperatorFactory};
use weir::prelude::*;

/// What the operator saw.
#[derive(Default, Debug)]
struct Seen {
    /// Input schemas given to the factory.
    schemas: Vec<SchemaRef>,
    /// Rows per input.
    rows: [u64; 2],
    /// `(input, watermark)` per input watermark, and `(None, w)` per combined one, in order.
    watermarks: Vec<(Option<usize>, i64)>,
}

/// Tags every row with the index of the input it came from.
#[derive(Clone, Default)]
struct Tagger {
    seen: Arc<Mutex<Seen>>,
}

fn output() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("input", DataType::UInt32, false),
        Field::new("id", DataType::Int64, false),
    ]))
}

impl OperatorFactory for Tagger {
    fn kind(&self) -> &'static str {
        "tagger"
    }
    fn distinct_inputs(&self) -> bool {
        true
    }
    fn output_schema(&self, _input: &SchemaRef) -> Result<SchemaRef> {
        Err(WeirError::plan("the tagger reads two distinct inputs"))
    }
    fn output_schema_of(&self, inputs: &[SchemaRef]) -> Result<SchemaRef> {
        if inputs.len() != 2 {
            return Err(WeirError::plan(format!(
                "the tagger reads 2 inputs, not {}",
                inputs.len()
            )));
        }
        Ok(output())
    }
    fn create(&self, _input: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        Err(WeirError::plan("the tagger reads two distinct inputs"))
    }
    fn create_of(&self, inputs: &[SchemaRef], _ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        self.seen.lock().unwrap().schemas = inputs.to_vec();
        Ok(Box::new(self.clone()))
    }
}

impl Operator for Tagger {
    fn process_batch(&mut self, _batch: RecordBatch, _out: &mut Vec<RecordBatch>) -> UserResult<()> {
        Err("the tagger needs to know each batch's input".into())
    }
    fn process_input(&mut self, input: usize, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        self.seen.lock().unwrap().rows[input] += batch.num_rows() as u64;
        let ids = batch.column_by_name("id").ok_or("no id column")?.clone();
        let tags = UInt32Array::from_value(input as u32, batch.num_rows());
        out.push(RecordBatch::try_new(output(), vec![Arc::new(tags), ids])?);
        Ok(())
    }
    fn on_input_watermark(&mut self, input: usize, watermark: i64, _out: &mut Vec<RecordBatch>) -> UserResult<()> {
        self.seen.lock().unwrap().watermarks.push((Some(input), watermark));
        Ok(())
    }
    fn on_watermark(&mut self, watermark: i64, _out: &mut Vec<RecordBatch>) -> UserResult<()> {
        self.seen.lock().unwrap().watermarks.push((None, watermark));
        Ok(())
    }
}

/// `rows` rows: event time `start + row` ms, an `id` sequence, and a column only this side has.
fn side(rows: u64, start: i64, extra: &str) -> Datagen {
    Datagen::new(
        "side",
        DatagenConfig {
            rows: Some(rows),
            fields: vec![
                DatagenField {
                    start: Some(start),
                    rows_per_ms: Some(1),
                    ..DatagenField::new("ts", FieldKind::Timestamp)
                },
                DatagenField::new("id", FieldKind::Sequence),
                DatagenField::new(extra, FieldKind::Sequence),
            ],
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn each_batch_carries_its_input_and_each_input_has_its_own_watermark() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1).set_batch_size(100);
    let strategy = WatermarkStrategy::bounded_out_of_orderness("ts", Duration::ZERO);
    // The left side's event time runs far ahead of the right's.
    let left = env
        .add_source_named("left", Arc::new(side(3_000, 1_000_000, "left_only")))
        .with_watermarks(strategy.clone());
    let right = env
        .add_source_named("right", Arc::new(side(1_000, 0, "right_only")))
        .with_watermarks(strategy);
    let tagger = Tagger::default();
    let out = Collect::new();
    left.union(&[&right])
        .transform("tagger", Arc::new(tagger.clone()))
        .add_sink(out.clone());
    env.execute("two-inputs").unwrap();

    let seen = tagger.seen.lock().unwrap();
    // The factory saw each input's own schema, not a merged one.
    let names: Vec<Vec<String>> = seen
        .schemas
        .iter()
        .map(|s| s.fields().iter().map(|f| f.name().clone()).collect())
        .collect();
    assert_eq!(names, [["ts", "id", "left_only"], ["ts", "id", "right_only"]]);
    assert_eq!(seen.rows, [3_000, 1_000]);
    let rows = out.rows_json();
    assert_eq!(rows.len(), 4_000);
    let left_rows = rows.iter().filter(|r| r.contains("\"input\":0")).count();
    assert_eq!(left_rows, 3_000, "every left row is tagged 0");

    // Each input's watermarks only advance, and the combined one never passes either input's.
    let of = |i: usize| -> Vec<i64> { seen.watermarks.iter().filter(|w| w.0 == Some(i)).map(|w| w.1).collect() };
    for i in 0..2 {
        let w = of(i);
        assert!(w.len() > 2, "input {i}: {w:?}");
        assert!(w.windows(2).all(|p| p[0] < p[1]), "input {i}: {w:?}");
        assert_eq!(*w.last().unwrap(), i64::MAX, "input {i} ends at the end of time");
    }
    assert!(
        of(0).iter().any(|w| *w >= 1_000_000),
        "the left input's own watermark ran ahead"
    );
    let mut latest = [i64::MIN; 2];
    for (input, w) in &seen.watermarks {
        match input {
            Some(i) => latest[*i] = *w,
            None => assert!(
                *w <= latest[0].min(latest[1]),
                "combined {w} passed an input ({latest:?})"
            ),
        }
    }
    // While the right input was open, it held the combined watermark back below its own event
    // time (under 1,000 ms) however far the left ran. (How many combined watermarks fall in that
    // span depends on how the two sources' tasks are scheduled, so only the bound is checked.)
    let right_closed = seen
        .watermarks
        .iter()
        .position(|w| *w == (Some(1), i64::MAX))
        .expect("the right input ends");
    let held: Vec<i64> = seen.watermarks[..right_closed]
        .iter()
        .filter(|w| w.0.is_none())
        .map(|w| w.1)
        .collect();
    assert!(held.iter().all(|w| *w < 1_000), "{held:?}");
    let combined: Vec<i64> = seen.watermarks.iter().filter(|w| w.0.is_none()).map(|w| w.1).collect();
    assert!(combined.windows(2).all(|p| p[0] < p[1]), "{combined:?}");
    assert_eq!(combined.last(), Some(&i64::MAX));
}

/// Keyed rows of one join side: `rows` rows with `id` 0.., key `id % modulo` as `key`, the id
/// as `value`.
fn join_side(env: &StreamExecutionEnvironment, rows: u64, modulo: i64, key: &str, value: &str) -> KeyedStream {
    env.add_source_named("side", Arc::new(side(rows, 0, "unused")))
        .select(&[&format!("id % {modulo} AS {key}"), &format!("id AS {value}")])
        .key_by(key)
}

/// A full outer join through the public API at parallelism 2 (both sides partitioned by their
/// own key column, the same key groups): the changelog applied gives every matching pair once
/// and each unmatched row padded with nulls, as a reference computed here.
#[test]
fn a_keyed_full_join_at_parallelism_two_ends_at_the_reference_table() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2).set_batch_size(64);
    let left = join_side(&env, 600, 40, "k", "l");
    let right = join_side(&env, 90, 60, "rk", "r");
    let out = Collect::new();
    left.join(&right, JoinType::Full).add_sink(out.clone());
    env.execute("join").unwrap();

    let mut table: std::collections::BTreeMap<(Option<i64>, Option<i64>), i64> = Default::default();
    for row in out.rows_json() {
        let v: serde_json::Value = serde_json::from_str(&row).unwrap();
        let key = (v["l"].as_i64(), v["r"].as_i64());
        let n = match v["__op"].as_str().unwrap() {
            "+I" | "+U" => 1,
            _ => -1,
        };
        *table.entry(key).or_default() += n;
    }
    table.retain(|_, n| *n != 0);
    let mut want: std::collections::BTreeMap<(Option<i64>, Option<i64>), i64> = Default::default();
    for l in 0..600i64 {
        let matches: Vec<i64> = (0..90i64).filter(|r| r % 60 == l % 40).collect();
        if matches.is_empty() {
            want.insert((Some(l), None), 1);
        }
        for r in matches {
            want.insert((Some(l), Some(r)), 1);
        }
    }
    for r in 0..90i64 {
        if r % 60 >= 40 {
            want.insert((None, Some(r)), 1);
        }
    }
    assert_eq!(table, want);
}

/// The time-joined sides: left rows `(ts, k, l)` at event time `id` ms (ids 0..2,000), right
/// rows `(rts, rk, r)` at `500 + id` ms (ids 0..1,000), keys `id % 7`, each from one source
/// subtask with a watermark on its time.
fn timed_sides(env: &StreamExecutionEnvironment) -> (DataStream, DataStream) {
    let strategy = WatermarkStrategy::bounded_out_of_orderness("ts", Duration::ZERO);
    let left = env
        .add_source_named("left", Arc::new(side(2_000, 0, "unused")))
        .set_parallelism(1)
        .with_watermarks(strategy.clone())
        .select(&["ts", "id % 7 AS k", "id AS l"]);
    let right = env
        .add_source_named("right", Arc::new(side(1_000, 500, "unused")))
        .set_parallelism(1)
        .with_watermarks(strategy)
        .select(&["ts AS rts", "id % 7 AS rk", "id AS r"]);
    (left, right)
}

/// The pairs of [`timed_sides`] ids whose keys are equal and whose times meet `joins`
/// (left time, right time), sorted.
fn timed_reference(joins: impl Fn(i64, i64) -> bool) -> Vec<(i64, i64)> {
    let mut want = Vec::new();
    for l in 0..2_000i64 {
        for r in 0..1_000i64 {
            if l % 7 == r % 7 && joins(l, 500 + r) {
                want.push((l, r));
            }
        }
    }
    assert!(want.len() > 1_000, "a meaningful reference: {}", want.len());
    want
}

/// The `(l, r)` pairs a join of [`timed_sides`] wrote, sorted.
fn timed_pairs(out: &Collect) -> Vec<(i64, i64)> {
    let mut got: Vec<(i64, i64)> = out
        .rows_json()
        .iter()
        .map(|row| {
            let v: serde_json::Value = serde_json::from_str(row).unwrap();
            (v["l"].as_i64().unwrap(), v["r"].as_i64().unwrap())
        })
        .collect();
    got.sort();
    got
}

/// An interval join through the public API (Flink's `intervalJoin(..).between(..)`): left rows
/// at event time `id` ms, right rows at `500 + id` ms, both keyed by `id % 7`; every pair with
/// `l.ts - 30 <= r.ts <= l.ts + 20` comes out once, as a reference computed here, at parallelism
/// 1, 2 and 4, with no row late.
#[test]
fn an_interval_join_pairs_rows_within_its_bounds_at_any_parallelism() {
    let want = timed_reference(|lt, rt| (-30..=20).contains(&(rt - lt)));
    for p in [1, 2, 4] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p).set_batch_size(64);
        let (left, right) = timed_sides(&env);
        let out = Collect::new();
        left.key_by("k")
            .interval_join(&right.key_by("rk"))
            .time_columns("ts", "rts")
            .between(-30, 20)
            .add_sink(out.clone());
        let result = env.execute("interval-join").unwrap();
        assert_eq!(timed_pairs(&out), want, "parallelism {p}");
        let join = result.node("interval_join").expect("the join's metrics");
        assert_eq!(join.late_records, 0, "parallelism {p}");
    }
}

/// A window join through the public API (Flink's `join(..).where(..).equalTo(..).window(..)`):
/// every pair of rows with equal keys in the same 100 ms tumbling window, as a reference
/// computed here, at parallelism 1 and 3; each side's time is the column its watermark strategy
/// named (the right's renamed on the way).
#[test]
fn a_tumbling_window_join_pairs_rows_of_the_same_window_and_key() {
    let want = timed_reference(|lt, rt| lt / 100 == rt / 100);
    window_join_at_1_and_3(TumblingEventTimeWindows::of(Duration::from_millis(100)), &want);
}

/// Runs the window join of [`timed_sides`] (keys `k` = `rk`) over `windows` at parallelism 1
/// and 3, checking the pairs it writes against `want`.
fn window_join_at_1_and_3(windows: WindowAssigner, want: &[(i64, i64)]) {
    for p in [1, 3] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p).set_batch_size(64);
        let (left, right) = timed_sides(&env);
        let out = Collect::new();
        left.join(&right)
            .where_("k")
            .equal_to("rk")
            .window(windows.clone())
            .add_sink(out.clone());
        env.execute("window-join").unwrap();
        assert_eq!(timed_pairs(&out), want, "parallelism {p}");
    }
}

/// A sliding window join (100 ms windows every 50 ms): each pair of rows with equal keys shows
/// once per window holding both, as in Flink, against a reference computed here, at
/// parallelism 1 and 3.
#[test]
fn a_sliding_window_join_pairs_rows_once_per_window_holding_both() {
    let mut want = Vec::new();
    for l in 0..2_000i64 {
        for r in 0..1_000i64 {
            let (lt, rt) = (l, 500 + r);
            if l % 7 != r % 7 {
                continue;
            }
            let last = lt - lt.rem_euclid(50);
            for start in [last, last - 50] {
                if (start..start + 100).contains(&rt) {
                    want.push((l, r));
                }
            }
        }
    }
    want.sort();
    assert!(want.len() > 1_000, "a meaningful reference: {}", want.len());
    let windows = SlidingEventTimeWindows::of(Duration::from_millis(100), Duration::from_millis(50));
    window_join_at_1_and_3(windows, &want);
}

/// What a window join cannot do is refused, saying so.
#[test]
fn a_window_join_over_session_windows_or_without_keys_is_refused() {
    let env = StreamExecutionEnvironment::new();
    let a = env.add_source_named("a", Arc::new(side(10, 0, "x")));
    let b = env.add_source_named("b", Arc::new(side(10, 0, "y")));
    a.join(&b)
        .where_("id")
        .equal_to("id")
        .window(EventTimeSessionWindows::with_gap(Duration::from_millis(100)))
        .add_sink(Collect::new());
    let e = env.execute("refused").unwrap_err().to_string();
    assert!(e.contains("only tumbling and sliding event-time windows"), "{e}");
    let env = StreamExecutionEnvironment::new();
    let a = env.add_source_named("a", Arc::new(side(10, 0, "x")));
    let b = env.add_source_named("b", Arc::new(side(10, 0, "y")));
    a.join(&b)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(100)))
        .add_sink(Collect::new());
    let e = env.execute("refused").unwrap_err().to_string();
    assert!(e.contains(".where_(..) and .equal_to(..)"), "{e}");
}

/// Per key: how many rows of the first stream, and the sum of the second's `w` — state written
/// from both inputs — emitted when an event-time timer fires at the end of the input (the
/// final watermark), and again for keys the second stream alone has.
#[derive(Clone)]
struct CountAndSum;

impl CountAndSum {
    fn remember_key(ctx: &mut KeyedContext<'_>) {
        ctx.register_event_time_timer(i64::MAX - 1);
    }
}

impl KeyedCoProcessFunction for CountAndSum {
    fn process_element1(
        &mut self,
        _row: RowRef<'_>,
        ctx: &mut KeyedContext<'_>,
        _out: &mut Vec<Row>,
    ) -> UserResult<()> {
        let count = ValueStateDescriptor::<i64>::new("count");
        let n = ctx.state().value(&count).unwrap_or(0);
        ctx.state().update(&count, n + 1);
        Self::remember_key(ctx);
        Ok(())
    }
    fn process_element2(&mut self, row: RowRef<'_>, ctx: &mut KeyedContext<'_>, _out: &mut Vec<Row>) -> UserResult<()> {
        let sum = ValueStateDescriptor::<i64>::new("sum");
        let s = ctx.state().value(&sum).unwrap_or(0);
        ctx.state().update(&sum, s + row.get_i64("w").unwrap_or(0));
        Self::remember_key(ctx);
        Ok(())
    }
    fn on_timer(
        &mut self,
        _at: i64,
        _domain: TimeDomain,
        ctx: &mut KeyedContext<'_>,
        out: &mut Vec<Row>,
    ) -> UserResult<()> {
        let n = ctx
            .state()
            .value(&ValueStateDescriptor::<i64>::new("count"))
            .unwrap_or(0);
        let s = ctx.state().value(&ValueStateDescriptor::<i64>::new("sum")).unwrap_or(0);
        out.push(vec![ctx.current_key()[0].clone(), Value::Int(n), Value::Int(s)]);
        Ok(())
    }
}

/// `connect(..).key_by(k1, k2).process(..)`: the two streams (different schemas and key names)
/// meet per key in one function whose state both write; the result equals a reference built
/// from the same rows at parallelism 1, 2 and 4, and connecting unkeyed streams is refused.
#[test]
fn connected_streams_share_keyed_state_and_timers_between_two_inputs() {
    let out = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("n", DataType::Int64, false),
        Field::new("s", DataType::Int64, false),
    ]));
    for p in [1, 2, 4] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p).set_batch_size(100);
        let (firsts, seconds, result) = (Collect::new(), Collect::new(), Collect::new());
        let first = env.add_source(crate::common::numbers(3_000, 40));
        // The second stream: other names, keys 0..60 (20 keys the first stream lacks).
        let second = env
            .add_source(crate::common::numbers(1_000, 60))
            .select(&["k AS kk", "v AS w"]);
        first.add_sink(firsts.clone());
        second.add_sink(seconds.clone());
        first
            .connect(&second)
            .key_by("k", "kk")
            .process(out.clone(), CountAndSum)
            .add_sink(result.clone());
        env.execute("connected").unwrap();
        let mut want: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for l in firsts.rows_json() {
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            want.entry(v["k"].as_i64().unwrap()).or_default().0 += 1;
        }
        for l in seconds.rows_json() {
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            want.entry(v["kk"].as_i64().unwrap()).or_default().1 += v["w"].as_i64().unwrap();
        }
        let got: BTreeMap<i64, (i64, i64)> = result
            .rows_json()
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["k"].as_i64().unwrap(),
                    (v["n"].as_i64().unwrap(), v["s"].as_i64().unwrap()),
                )
            })
            .collect();
        assert_eq!(result.len(), want.len(), "one row per key at parallelism {p}");
        assert_eq!(got, want, "parallelism {p}");
    }
    let env = StreamExecutionEnvironment::new();
    let a = env.add_source(crate::common::numbers(10, 3));
    let b = env.add_source(crate::common::numbers(10, 3));
    a.connect(&b).process(out, CountAndSum).add_sink(Collect::new());
    let e = env.execute("unkeyed").unwrap_err().to_string();
    assert!(e.contains("needs both streams keyed"), "{e}");
}

/// Per key, its values kept in list state; at the end of the input, how many reach the
/// threshold the broadcast rules set for the key (keys without a rule are not reported).
#[derive(Clone)]
struct AtLeast;

fn thresholds() -> MapStateDescriptor<i64, i64> {
    MapStateDescriptor::new("thresholds")
}

impl KeyedBroadcastProcessFunction for AtLeast {
    fn process_element(
        &mut self,
        row: RowRef<'_>,
        ctx: &mut KeyedContext<'_>,
        _broadcast: &BroadcastState,
        _out: &mut Vec<Row>,
    ) -> UserResult<()> {
        ctx.state()
            .add(&ListStateDescriptor::<i64>::new("vs"), row.get_i64("v").unwrap_or(0));
        ctx.register_event_time_timer(i64::MAX - 1);
        Ok(())
    }
    fn process_broadcast_element(
        &mut self,
        row: RowRef<'_>,
        broadcast: &mut BroadcastState,
        _out: &mut Vec<Row>,
    ) -> UserResult<()> {
        broadcast.put(
            &thresholds(),
            &row.get_i64("rk").unwrap_or(0),
            &row.get_i64("min").unwrap_or(0),
        )
    }
    fn on_timer(
        &mut self,
        _at: i64,
        _domain: TimeDomain,
        ctx: &mut KeyedContext<'_>,
        broadcast: &BroadcastState,
        out: &mut Vec<Row>,
    ) -> UserResult<()> {
        let k = match ctx.current_key()[0] {
            Value::Int(k) => k,
            _ => return Ok(()),
        };
        if let Some(min) = broadcast.get(&thresholds(), &k)? {
            let vs = ctx.state().list(&ListStateDescriptor::<i64>::new("vs"));
            out.push(vec![
                Value::Int(k),
                Value::Int(vs.iter().filter(|v| **v >= min).count() as i64),
            ]);
        }
        Ok(())
    }
}

/// The broadcast state pattern: rules from a broadcast stream reach every subtask of a keyed
/// stream's function; the counts equal a reference from the same rows at parallelism 1, 2 and
/// 4, and a second stream that is not broadcast is refused.
#[test]
fn broadcast_rules_reach_every_subtask_of_a_keyed_stream() {
    let out = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("n", DataType::Int64, false),
    ]));
    for p in [1, 2, 4] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p).set_batch_size(100);
        let (events_seen, rules_seen, result) = (Collect::new(), Collect::new(), Collect::new());
        let events = env.add_source(crate::common::numbers(3_000, 40));
        // Rules for keys 0..30 (the last rule of a key wins: one per key here).
        let rules = env
            .add_source(crate::common::numbers(30, 1))
            .select(&["id AS rk", "v AS min"]);
        events.add_sink(events_seen.clone());
        rules.add_sink(rules_seen.clone());
        events
            .key_by("k")
            .connect(&rules.broadcast())
            .process_broadcast(out.clone(), AtLeast)
            .add_sink(result.clone());
        env.execute("broadcast").unwrap();
        let mins: BTreeMap<i64, i64> = rules_seen
            .rows_json()
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["rk"].as_i64().unwrap(), v["min"].as_i64().unwrap())
            })
            .collect();
        let mut want: BTreeMap<i64, i64> = BTreeMap::new();
        for l in events_seen.rows_json() {
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            let k = v["k"].as_i64().unwrap();
            if let Some(min) = mins.get(&k) {
                *want.entry(k).or_default() += i64::from(v["v"].as_i64().unwrap() >= *min);
            }
        }
        let got: BTreeMap<i64, i64> = result
            .rows_json()
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["k"].as_i64().unwrap(), v["n"].as_i64().unwrap())
            })
            .collect();
        assert_eq!(mins.len(), 30);
        assert_eq!(
            result.len(),
            want.len(),
            "one row per key with a rule at parallelism {p}"
        );
        assert_eq!(got, want, "parallelism {p}");
    }
    let env = StreamExecutionEnvironment::new();
    let a = env.add_source(crate::common::numbers(10, 3));
    let b = env.add_source(crate::common::numbers(10, 3));
    a.key_by("k")
        .connect(&b)
        .process_broadcast(out, AtLeast)
        .add_sink(Collect::new());
    let e = env.execute("not broadcast").unwrap_err().to_string();
    assert!(e.contains("broadcast one"), "{e}");
}
