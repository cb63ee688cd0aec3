//! The runtime through the public API: parallel runs agree with p = 1, back-pressure bounds
//! what is in flight, failures and panics stop the job with an error naming the operator,
//! cancellation drains.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use weir::connectors::{Sink, SinkFactory};
use weir::prelude::*;
use weir::runtime::metrics::NodeRole;

fn job(parallelism: usize, dir: &std::path::Path) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism).set_batch_size(333);
    env.add_source(common::numbers(50_000, 1000))
        .filter_expr("v % 3 <> 0")
        .key_by("k")
        .select(&["k", "id", "v * 2 AS w"])
        .rebalance()
        .filter(|r| r.get_i64("w").unwrap() < 1900)
        .add_sink(FileSink::new("out", FileSinkConfig::new(dir.to_str().unwrap(), Format::Json)).unwrap());
    env.execute("parallel").unwrap();
}

#[test]
fn four_way_parallel_run_gives_the_same_multiset_as_parallelism_one() {
    let d1 = tempfile::tempdir().unwrap();
    let d4 = tempfile::tempdir().unwrap();
    job(1, d1.path());
    job(4, d4.path());
    let (a, b) = (common::read_lines(d1.path()), common::read_lines(d4.path()));
    assert!(a.len() > 20_000, "{}", a.len());
    assert_eq!(a, b);
    // p = 4 wrote from several subtasks.
    assert!(std::fs::read_dir(d4.path()).unwrap().count() >= 2);
}

/// A sink that takes `delay` per batch, counting rows into `rows`.
#[derive(Clone)]
pub(crate) struct SlowSink {
    delay: Duration,
    rows: Arc<AtomicU64>,
}

impl SlowSink {
    pub(crate) fn new(delay: Duration, rows: Arc<AtomicU64>) -> SlowSink {
        SlowSink { delay, rows }
    }
}

impl SinkFactory for SlowSink {
    fn connector(&self) -> &'static str {
        "slow"
    }
    fn create(&self, _input: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Sink>> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl Sink for SlowSink {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        tokio::time::sleep(self.delay).await;
        self.rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A sink that writes a batch only once the test lets it (one permit of `gate` per batch),
/// counting rows into `rows`: the test, not the clock, paces the job.
#[derive(Clone)]
pub(crate) struct GatedSink {
    gate: Arc<tokio::sync::Semaphore>,
    rows: Arc<AtomicU64>,
}

impl GatedSink {
    pub(crate) fn new(gate: Arc<tokio::sync::Semaphore>, rows: Arc<AtomicU64>) -> GatedSink {
        GatedSink { gate, rows }
    }
}

impl SinkFactory for GatedSink {
    fn connector(&self) -> &'static str {
        "gated"
    }
    fn create(&self, _input: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Sink>> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl Sink for GatedSink {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        if let Ok(permit) = self.gate.acquire().await {
            permit.forget();
        }
        self.rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// An unbounded datagen source `gen` rebalanced into a [`SlowSink`] taking 10 ms per batch
/// (batches of `batch` rows, channels of `capacity` batches, p = 1), counting into `rows`.
pub(crate) fn source_into_slow_sink(batch: usize, capacity: usize, rows: Arc<AtomicU64>) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1)
        .set_batch_size(batch)
        .set_channel_capacity(capacity);
    let unbounded = DatagenConfig {
        rows: None,
        ..Default::default()
    };
    env.add_source(Datagen::new("gen", unbounded).unwrap())
        .name("gen")
        .rebalance()
        .add_sink(SlowSink::new(Duration::from_millis(10), rows));
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_slows_a_fast_source_and_bounds_what_is_in_flight() {
    let (batch, capacity) = (100u64, 2u64);
    let rows = Arc::new(AtomicU64::new(0));
    let env = source_into_slow_sink(batch as usize, capacity as usize, rows.clone());
    let metrics = env.metrics();
    let cancel = CancellationToken::new();
    let job = tokio::spawn({
        let (env, metrics, cancel) = (env.clone(), metrics.clone(), cancel.clone());
        async move { env.execute_with("slow", &metrics, cancel).await }
    });
    // In flight at most: the channel's batches, one being sent, one being written.
    let bound = (capacity + 2) * batch;
    let mut max_gap = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let s = metrics.snapshot();
        let produced = s.iter().find(|n| n.role == NodeRole::Source).unwrap().records_out;
        let consumed = rows.load(Ordering::Relaxed);
        max_gap = max_gap.max(produced.saturating_sub(consumed));
    }
    cancel.cancel();
    let result = job.await.unwrap().unwrap();
    assert!(result.cancelled);
    let produced = result.node("gen").unwrap().records_out;
    let consumed = rows.load(Ordering::Relaxed);
    // The source ran at the sink's pace, not at its own (millions of rows/s): at no point was
    // more in flight than the channels hold — whatever the machine's speed, so no wall-clock
    // bound on the rows produced is needed.
    assert!(max_gap <= bound, "{max_gap} rows in flight, bound {bound}");
    // Cancellation drains: what the source emitted reached the sink.
    assert_eq!(produced, consumed);
}

#[test]
fn an_operator_error_fails_the_job_naming_the_operator() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.add_source(common::numbers(10_000, 10))
        .map_batches(|_, b| if b.num_rows() > 0 { Err("boom".into()) } else { Ok(b) })
        .name("exploding")
        .add_sink(Blackhole::new());
    let e = env.execute("fails").unwrap_err().to_string();
    assert!(e.contains("exploding") && e.contains("boom"), "{e}");
}

#[test]
fn a_panicking_operator_fails_the_job_instead_of_hanging() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.add_source(common::numbers(10_000, 10))
        .rebalance()
        .filter(|_| panic!("bad user code"))
        .name("panicky")
        .add_sink(Blackhole::new());
    let e = env.execute("panics").unwrap_err().to_string();
    assert!(e.contains("panicky") && e.contains("bad user code"), "{e}");
}

#[test]
fn row_functions_map_and_flat_map() {
    use arrow::datatypes::{DataType, Field, Schema};
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let out: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("label", DataType::Utf8, true),
    ]));
    let sink = Collect::new();
    env.add_source(common::numbers(100, 10))
        .map(out.clone(), |r| {
            let id = r.get_i64("id").unwrap();
            Ok(vec![Value::Int(id), Value::from(format!("n{id}"))])
        })
        .flat_map(out, |r, rows| {
            if r.get_i64("id").unwrap() % 10 == 0 {
                rows.push(r.to_row());
                rows.push(vec![Value::Int(-1), Value::Null]);
            }
            Ok(())
        })
        .add_sink(sink.clone());
    env.execute("rows").unwrap();
    let rows = common::sorted(&sink);
    assert_eq!(rows.len(), 20);
    assert!(rows.contains(&r#"{"id":90,"label":"n90"}"#.to_string()), "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r.as_str() == r#"{"id":-1}"#).count(), 10);
}

#[test]
fn a_row_of_the_wrong_type_is_an_error_naming_the_field() {
    use arrow::datatypes::{DataType, Field, Schema};
    let env = StreamExecutionEnvironment::new();
    let out: SchemaRef = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    env.add_source(common::numbers(5, 10))
        .map(out, |_| Ok(vec![Value::from("text")]))
        .print();
    let e = env.execute("types").unwrap_err().to_string();
    assert!(e.contains("field 'n'"), "{e}");
}

#[test]
fn select_and_filter_expressions_are_checked_when_planning() {
    type Build = dyn Fn(&DataStream) -> DataStream;
    let cases: [(&Build, &str); 4] = [
        (&|s| s.select(&["nope + 1"]), "nope"),
        (&|s| s.filter_expr("v + 1"), "expected a boolean"),
        (&|s| s.select(&["v", "k AS v"]), "two output columns are named 'v'"),
        (&|s| s.select(&["v +"]), "select item"),
    ];
    for (build, want) in cases {
        let env = StreamExecutionEnvironment::new();
        build(&env.add_source(common::numbers(5, 10))).print();
        let e = env.execute("bad").unwrap_err().to_string();
        assert!(e.contains(want), "{e} should mention {want}");
    }
    let env = StreamExecutionEnvironment::new();
    env.add_source(common::numbers(5, 10)).key_by("missing").print();
    let e = env.execute("bad").unwrap_err().to_string();
    assert!(e.contains("no field 'missing'") && e.contains("id, k, v"), "{e}");
}

#[test]
fn select_wildcard_and_chaining_in_the_plan() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.add_source(common::numbers(5, 10))
        .select(&["*", "v * 2 AS w"])
        .filter_expr("w >= 0")
        .key_by("k")
        .select(&["k"])
        .add_sink(Blackhole::new());
    let plan = tokio::runtime::Runtime::new().unwrap().block_on(env.explain()).unwrap();
    // Source, select, filter fuse; the hash edge starts a second task.
    assert!(
        plan.contains("task 0 (parallelism 2): datagen [source:datagen] -> select [select] -> filter [filter]\n"),
        "{plan}"
    );
    assert!(plan.contains("via Hash"), "{plan}");
}

#[test]
fn a_fused_filter_and_select_keep_their_own_counters() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let sink = Collect::new();
    env.add_source(common::numbers(10_000, 10))
        .filter_expr("v < 500")
        .name("f")
        .select(&["k * 2 AS k2"])
        .name("s")
        .add_sink(sink.clone());
    let r = env.execute("fused").unwrap();
    let (f, s) = (r.node("f").unwrap(), r.node("s").unwrap());
    assert_eq!(f.records_in, 10_000);
    assert!(f.records_out > 4_000 && f.records_out < 6_000, "{}", f.records_out);
    assert_eq!((s.records_in, s.records_out), (f.records_out, f.records_out));
    assert_eq!(sink.len() as u64, f.records_out);
    assert!(sink.rows_json().iter().all(|r| r.starts_with(r#"{"k2":"#)));
}

#[test]
fn fused_filters_run_later_conditions_only_on_rows_that_passed() {
    let env = StreamExecutionEnvironment::new();
    let sink = Collect::new();
    env.add_source(common::numbers(5_000, 10))
        .filter_expr("v <> 0")
        .name("nonzero")
        .filter_expr("1000 / v > 10") // would divide by zero on the rows the first filter drops
        .name("small")
        .select(&["v"])
        .name("project")
        .add_sink(sink.clone());
    let r = env.execute("fused-filters").unwrap();
    let (a, b, c) = (
        r.node("nonzero").unwrap(),
        r.node("small").unwrap(),
        r.node("project").unwrap(),
    );
    assert_eq!(a.records_in, 5_000);
    assert!(a.records_out < 5_000, "datagen makes some zeros");
    assert_eq!(b.records_in, a.records_out);
    assert_eq!((c.records_in, c.records_out), (b.records_out, b.records_out));
    assert_eq!(sink.len() as u64, c.records_out);
    assert!(sink.rows_json().iter().all(|row| {
        let v: i64 = serde_json::from_str::<serde_json::Value>(row).unwrap()["v"]
            .as_i64()
            .unwrap();
        v > 0 && 1000 / v > 10
    }));
}
