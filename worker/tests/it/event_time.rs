//! Event time through the public API: watermark strategies at sources, the minimum over
//! inputs, idleness, and processing time (no watermarks).

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use tokio_util::sync::CancellationToken;
use weir::operators::{Operator, OperatorFactory};
use weir::prelude::*;

/// What a probe saw: rows per source tag so far, and each watermark with the rows seen then.
#[derive(Default, Debug)]
struct Seen {
    rows: u64,
    tagged: std::collections::HashMap<String, u64>,
    watermarks: Vec<(i64, u64, std::collections::HashMap<String, u64>)>,
}

/// A pass-through operator that records the watermarks it receives.
#[derive(Clone)]
struct Probe {
    seen: Arc<Mutex<Seen>>,
    tag_column: Option<&'static str>,
}

impl Probe {
    fn new(tag_column: Option<&'static str>) -> Self {
        Probe {
            seen: Arc::default(),
            tag_column,
        }
    }
}

impl OperatorFactory for Probe {
    fn kind(&self) -> &'static str {
        "probe"
    }
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(input.clone())
    }
    fn create(&self, _input: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(self.clone()))
    }
}

impl Operator for Probe {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let mut s = self.seen.lock().unwrap();
        s.rows += batch.num_rows() as u64;
        if let Some(col) = self.tag_column {
            for i in 0..batch.num_rows() {
                let tag = RowRef::new(&batch, i).get_str(col).unwrap_or("").to_string();
                *s.tagged.entry(tag).or_default() += 1;
            }
        }
        out.push(batch);
        Ok(())
    }
    fn on_watermark(&mut self, watermark: i64, _out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let mut s = self.seen.lock().unwrap();
        let (rows, tagged) = (s.rows, s.tagged.clone());
        s.watermarks.push((watermark, rows, tagged));
        Ok(())
    }
}

/// Rows with event time `start + row / rows_per_ms` ms and a constant `tag`.
fn timed(rows: Option<u64>, start: i64, rows_per_ms: u64, tag: &str, rate: Option<u64>) -> Datagen {
    let cfg = DatagenConfig {
        rows,
        rows_per_second: rate,
        fields: vec![
            DatagenField {
                start: Some(start),
                rows_per_ms: Some(rows_per_ms),
                ..DatagenField::new("ts", FieldKind::Timestamp)
            },
            DatagenField::new("id", FieldKind::Sequence),
        ],
        ..Default::default()
    };
    let _ = tag;
    Datagen::new("timed", cfg).unwrap()
}

#[test]
fn bounded_out_of_orderness_watermarks_trail_the_largest_timestamp() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2).set_batch_size(100);
    let probe = Probe::new(None);
    env.add_source(timed(Some(10_000), 1_000_000, 10, "a", None))
        .with_watermarks(WatermarkStrategy::bounded_out_of_orderness(
            "ts",
            Duration::from_millis(50),
        ))
        .rebalance()
        .transform("probe", Arc::new(probe.clone()))
        .set_parallelism(1)
        .add_sink(Blackhole::new());
    env.execute("bounded").unwrap();
    let seen = probe.seen.lock().unwrap();
    let wms: Vec<i64> = seen.watermarks.iter().map(|w| w.0).collect();
    assert!(wms.len() > 10, "{wms:?}");
    assert!(wms.windows(2).all(|w| w[0] < w[1]), "watermarks only advance");
    // The largest timestamp is 1_000_000 + 9_999 / 10 = 1_000_999.
    // The largest timestamp's watermark, then the end of input's.
    assert_eq!(wms[wms.len() - 2..], [1_000_999 - 50 - 1, i64::MAX]);
    for (wm, rows, _) in seen.watermarks.iter().filter(|w| w.0 < i64::MAX) {
        // A watermark W trails what the probe has seen: rows up to ts W + 50 + 1 were emitted
        // before it by both subtasks, so at least (W + 51 - 1_000_000) * 10 rows arrived.
        assert!(
            *rows as i64 >= (wm + 51 - 1_000_000) * 10 - 200,
            "wm {wm} after {rows} rows"
        );
    }
}

#[test]
fn a_union_holds_the_watermark_at_the_slower_input_until_it_ends() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1).set_batch_size(50);
    let early = env
        .add_source(timed(Some(2_000), 0, 1, "early", None))
        .name("early")
        .with_watermarks(WatermarkStrategy::monotonous("ts"))
        .select(&["ts", "'early' AS tag"]);
    let late = env
        .add_source(timed(Some(2_000), 5_000_000, 1, "late", None))
        .name("late")
        .with_watermarks(WatermarkStrategy::monotonous("ts"))
        .select(&["ts", "'late' AS tag"]);
    let probe = Probe::new(Some("tag"));
    early
        .union(&[&late])
        .rebalance()
        .transform("probe", Arc::new(probe.clone()))
        .add_sink(Blackhole::new());
    env.execute("min").unwrap();
    let seen = probe.seen.lock().unwrap();
    assert!(!seen.watermarks.is_empty());
    for (wm, _, tagged) in seen.watermarks.iter() {
        // Past the early input's last timestamp (1999) only once all of it has arrived.
        if *wm >= 1_999 {
            assert_eq!(
                tagged.get("early").copied().unwrap_or(0),
                2_000,
                "watermark {wm} overtook the early input"
            );
        }
    }
    // Both inputs ended: event time reaches its end, which fires whatever waits for it.
    assert_eq!(seen.watermarks.last().unwrap().0, i64::MAX);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_source_does_not_hold_back_event_time() {
    for idle in [true, false] {
        // A socket that stays open and silent.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(s);
        });
        let clock = ManualClock::new(1_000_000);
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(1).set_clock(clock.shared());
        let busy = env
            .add_source(timed(None, 0, 1, "busy", Some(2_000)))
            .name("busy")
            .with_watermarks(WatermarkStrategy::monotonous("ts"))
            .select(&["CAST(id AS VARCHAR) AS line", "ts"]);
        let mut strategy = WatermarkStrategy::monotonous("ts");
        if idle {
            strategy = strategy.with_idleness(Duration::from_millis(200));
        }
        let cfg = SocketConfig {
            host: "127.0.0.1".into(),
            port,
            format: Format::Json,
            schema: Some(SchemaSpec::Text("line STRING, ts TIMESTAMP".into())),
            linger_ms: 50,
        };
        let quiet = env
            .add_source(Socket::new("quiet", cfg).unwrap())
            .name("quiet")
            .with_watermarks(strategy);
        let probe = Probe::new(None);
        busy.union(&[&quiet])
            .transform("probe", Arc::new(probe.clone()))
            .add_sink(Blackhole::new());
        let metrics = env.metrics();
        let cancel = CancellationToken::new();
        let job = tokio::spawn({
            let (env, metrics, cancel) = (env.clone(), metrics.clone(), cancel.clone());
            async move { env.execute_with("idle", &metrics, cancel).await }
        });
        let rows = || probe.seen.lock().unwrap().rows;
        let advanced = || probe.seen.lock().unwrap().watermarks.last().map(|w| w.0);
        // Processing time has not moved: the silent source is not idle yet, whatever its
        // timeout, and holds event time back.
        common::eventually(|| rows() >= 1_000).await;
        assert_eq!(advanced(), None, "before the idle timeout");
        clock.advance(199);
        common::eventually(|| rows() >= 1_500).await;
        assert_eq!(advanced(), None, "1 ms before the idle timeout");
        clock.advance(1);
        if idle {
            common::eventually(|| advanced().is_some_and(|w| w > 500)).await;
        } else {
            clock.advance(10_000);
            common::eventually(|| rows() >= 3_000).await;
        }
        let advanced = advanced();
        cancel.cancel();
        job.await.unwrap().unwrap();
        server.abort();
        if idle {
            // 1 row per ms of event time: well past 500 ms of event time once the source is idle.
            assert!(
                advanced.is_some_and(|w| w > 500),
                "idle source held back event time: {advanced:?}"
            );
        } else {
            assert_eq!(
                advanced, None,
                "without idleness the silent source holds event time back"
            );
        }
    }
}

#[test]
fn processing_time_sources_emit_no_watermarks_but_the_end_of_input() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    let probe = Probe::new(None);
    env.add_source(timed(Some(1_000), 0, 1, "x", None))
        .transform("probe", Arc::new(probe.clone()))
        .add_sink(Blackhole::new());
    env.execute("proc-time").unwrap();
    let wms: Vec<i64> = probe.seen.lock().unwrap().watermarks.iter().map(|w| w.0).collect();
    assert_eq!(wms, vec![i64::MAX], "only the end of input");
}

#[test]
fn watermark_fields_are_checked_when_planning() {
    let env = StreamExecutionEnvironment::new();
    env.add_source(common::numbers(10, 10))
        .with_watermarks(WatermarkStrategy::monotonous("nope"))
        .print();
    let e = env.execute("bad").unwrap_err().to_string();
    assert!(e.contains("watermark: no field 'nope'"), "{e}");
    let env = StreamExecutionEnvironment::new();
    let src = DatagenConfig {
        rows: Some(1),
        fields: vec![DatagenField {
            data_type: Some("string".into()),
            ..DatagenField::new("s", FieldKind::Random)
        }],
        ..Default::default()
    };
    env.add_source(Datagen::new("g", src).unwrap())
        .with_watermarks(WatermarkStrategy::monotonous("s"))
        .print();
    let e = env.execute("bad").unwrap_err().to_string();
    assert!(e.contains("field 's' is Utf8"), "{e}");
    let env = StreamExecutionEnvironment::new();
    env.add_source(common::numbers(10, 10))
        .select(&["id"])
        .with_watermarks(WatermarkStrategy::monotonous("id"))
        .print();
    let e = env.execute("bad").unwrap_err().to_string();
    assert!(e.contains("applies to a source"), "{e}");
}

#[test]
fn watermarks_in_the_pipeline_form() {
    let yaml = r#"
name: wm
parallelism: 1
sources:
  - id: events
    connector: datagen
    rows: 1000
    watermark: {field: ts, max_out_of_orderness_ms: 10, idle_timeout_ms: 1000}
    fields:
      - {name: ts, kind: timestamp, start: 0, rows_per_ms: 1}
sinks:
  - input: events
    connector: blackhole
"#;
    let job = weir::pipeline::build(yaml, "wm.yaml").unwrap();
    let plan = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(job.env.explain())
        .unwrap();
    assert!(plan.contains("events"), "{plan}");
    let e = match weir::pipeline::build(&yaml.replace("field: ts", "field: tz"), "wm.yaml") {
        Ok(job) => tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(job.execute())
            .unwrap_err()
            .to_string(),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("wm.yaml:5") && e.contains("no field 'tz'"), "{e}");
}
