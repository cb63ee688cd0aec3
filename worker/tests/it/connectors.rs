//! Sources and sinks through the public API: files (JSON, CSV, local and memory://), the
//! dead-letter output, datagen, socket, HTTP.

use crate::common;

use std::io::Write;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weir::prelude::*;

fn write(path: &std::path::Path, text: &str) {
    std::fs::File::create(path).unwrap().write_all(text.as_bytes()).unwrap();
}

fn dead_letters(dir: &std::path::Path) -> Vec<serde_json::Value> {
    if !dir.exists() {
        return vec![];
    }
    common::read_lines(dir)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn json_files_with_an_inferred_schema_round_trip_through_the_file_sink() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    write(
        &input.join("a.jsonl"),
        "{\"user\":\"ann\",\"n\":1}\n{\"user\":\"bob\",\"n\":2}\n",
    );
    write(
        &input.join("b.jsonl"),
        "{\"user\":\"cid\",\"n\":3}\n\n{\"user\":\"dan\",\"n\":4}",
    );
    write(&input.join(".hidden"), "not read");
    let out = dir.path().join("out");
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.add_source(FileSource::new(
        "files",
        FileSourceConfig::new(input.to_str().unwrap(), Format::Json),
    ))
    .filter_expr("n > 1")
    .select(&["upper(user) AS user", "n * 10 AS n10"])
    .add_sink(FileSink::new("out", FileSinkConfig::new(out.to_str().unwrap(), Format::Json)).unwrap());
    let r = env.execute("json-files").unwrap();
    assert_eq!(r.dead_letters(), 0);
    assert_eq!(
        common::read_lines(&out),
        vec![
            r#"{"user":"BOB","n10":20}"#,
            r#"{"user":"CID","n10":30}"#,
            r#"{"user":"DAN","n10":40}"#
        ]
    );
}

#[test]
fn csv_files_with_a_given_schema_and_csv_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bids.csv");
    write(
        &input,
        "auction,price,channel\n1,100,web\n2,250,app\n3,x,web\n4,400,app\n",
    );
    let out = dir.path().join("out");
    let mut cfg = FileSourceConfig::new(input.to_str().unwrap(), Format::Csv);
    cfg.schema = Some(SchemaSpec::Text("auction BIGINT, price BIGINT, channel STRING".into()));
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1)
        .set_dead_letter(dir.path().join("dlq").to_str().unwrap());
    env.add_source(FileSource::new("bids", cfg))
        .name("bids")
        .filter_expr("channel = 'app'")
        .add_sink(FileSink::new("out", FileSinkConfig::new(out.to_str().unwrap(), Format::Csv)).unwrap());
    let r = env.execute("csv").unwrap();
    let text = std::fs::read_to_string(out.join("part-sink-file-0-0.csv")).unwrap();
    assert_eq!(text, "auction,price,channel\n2,250,app\n4,400,app\n");
    assert_eq!(r.dead_letters(), 1);
    let dl = dead_letters(&dir.path().join("dlq"));
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0]["raw"], "3,x,web");
    assert_eq!(dl[0]["node"], "bids");
}

#[test]
fn malformed_json_records_reach_the_dead_letter_output_and_the_job_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    let mut text = String::new();
    for i in 0..1000 {
        match i % 100 {
            7 => text.push_str("{\"id\": 7, \"amount\": \n"), // truncated JSON
            8 => text.push_str("{\"id\": \"eight\", \"amount\": 1.5}\n"), // wrong type
            9 => text.push_str("[1, 2, 3]\n"),                // not an object
            _ => text.push_str(&format!("{{\"id\": {i}, \"amount\": {i}.5}}\n")),
        }
    }
    write(&input, &text);
    let mut cfg = FileSourceConfig::new(input.to_str().unwrap(), Format::Json);
    cfg.schema = Some(SchemaSpec::Text("id BIGINT, amount DOUBLE".into()));
    let dlq = dir.path().join("dlq");
    let env = StreamExecutionEnvironment::new();
    env.set_batch_size(64).set_dead_letter(dlq.to_str().unwrap());
    let sink = Collect::new();
    env.add_source(FileSource::new("events", cfg))
        .name("events")
        .add_sink(sink.clone());
    let r = env.execute("dlq").unwrap();
    assert_eq!(sink.len(), 970, "every good record is kept");
    assert_eq!(r.dead_letters(), 30);
    let dl = dead_letters(&dlq);
    assert_eq!(dl.len(), 30);
    assert!(
        dl.iter()
            .all(|d| d["node"] == "events" && !d["reason"].as_str().unwrap().is_empty())
    );
    assert!(
        dl.iter()
            .any(|d| d["raw"] == "[1, 2, 3]" && d["reason"] == "not a JSON object")
    );
    assert!(dl.iter().any(|d| d["raw"].as_str().unwrap().contains("eight")));
}

#[test]
fn memory_urls_work_as_object_store_locations() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.add_source(common::numbers(1_000, 10))
        .add_sink(FileSink::new("out", FileSinkConfig::new("memory://tests/numbers", Format::Json)).unwrap());
    env.execute("to-memory").unwrap();
    let env = StreamExecutionEnvironment::new();
    let sink = Collect::new();
    env.add_source(FileSource::new(
        "in",
        FileSourceConfig::new("memory://tests/numbers", Format::Json),
    ))
    .add_sink(sink.clone());
    env.execute("from-memory").unwrap();
    assert_eq!(sink.len(), 1_000);
}

#[test]
fn a_missing_input_path_is_a_clear_error() {
    let env = StreamExecutionEnvironment::new();
    env.add_source(FileSource::new(
        "in",
        FileSourceConfig::new("/nonexistent/weir/input", Format::Json),
    ))
    .print();
    let e = env.execute("missing").unwrap_err().to_string();
    assert!(e.contains("/nonexistent/weir/input"), "{e}");
}

#[test]
fn datagen_is_bounded_deterministic_and_rate_limited() {
    let cfg = DatagenConfig {
        rows: Some(600),
        rows_per_second: Some(1_000),
        fields: vec![
            DatagenField {
                start: Some(100),
                ..DatagenField::new("seq", FieldKind::Sequence)
            },
            DatagenField {
                data_type: Some("string".into()),
                length: Some(5),
                ..DatagenField::new("s", FieldKind::Random)
            },
            DatagenField {
                data_type: Some("double".into()),
                min: Some(1.0),
                max: Some(2.0),
                ..DatagenField::new("d", FieldKind::Random)
            },
            DatagenField {
                start: Some(0),
                rows_per_ms: Some(10),
                ..DatagenField::new("ts", FieldKind::Timestamp)
            },
        ],
        ..Default::default()
    };
    let run = |p: usize| {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let sink = Collect::new();
        env.add_source(Datagen::new("gen", cfg.clone()).unwrap())
            .add_sink(sink.clone());
        let t = Instant::now();
        env.execute("gen").unwrap();
        (common::sorted(&sink), t.elapsed())
    };
    let (a, took) = run(1);
    let (b, _) = run(3);
    assert_eq!(a.len(), 600);
    assert_eq!(a, b, "values depend on the row, not the parallelism");
    assert!(took >= Duration::from_millis(450), "600 rows at 1000/s took {took:?}");
    let row: serde_json::Value = serde_json::from_str(&a[0]).unwrap();
    assert_eq!(row["s"].as_str().unwrap().len(), 5);
    let d = row["d"].as_f64().unwrap();
    assert!((1.0..2.0).contains(&d));
    assert!(a.iter().any(|r| r.contains(r#""seq":699"#)));
    assert!(
        a.iter()
            .any(|r| r.contains(r#""seq":150,"#) && r.contains("1970-01-01T00:00:00.005")),
        "ts = row / 10 ms"
    );
}

#[test]
fn datagen_options_are_checked() {
    let bad = DatagenConfig {
        fields: vec![DatagenField::random_int("x", 10, 1)],
        ..Default::default()
    };
    let e = Datagen::new("gen", bad).err().unwrap().to_string();
    assert!(e.contains("field 'x'") && e.contains("below min"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_source_reads_text_lines_until_the_server_closes() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"to be or\nnot to be\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await; // a partial batch is flushed
        s.write_all(b"that is the question\n").await.unwrap();
    });
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let cfg = SocketConfig {
        host: "127.0.0.1".into(),
        port,
        format: Format::Text,
        schema: None,
        linger_ms: 50,
    };
    let sink = Collect::new();
    env.add_source(Socket::new("lines", cfg).unwrap())
        .split("line", None, "word")
        .key_by("word")
        .add_sink(sink.clone());
    env.execute_async("socket").await.unwrap();
    server.await.unwrap();
    let words = common::sorted(&sink);
    assert_eq!(words.len(), 10);
    assert_eq!(words.iter().filter(|w| w.as_str() == r#"{"word":"be"}"#).count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_source_json_and_a_refused_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"{\"a\": 1}\nnot json\n{\"a\": 2}\n").await.unwrap();
    });
    let env = StreamExecutionEnvironment::new();
    let cfg = SocketConfig {
        host: "127.0.0.1".into(),
        port,
        format: Format::Json,
        schema: Some(SchemaSpec::Text("a BIGINT".into())),
        linger_ms: 50,
    };
    let sink = Collect::new();
    env.add_source(Socket::new("json", cfg.clone()).unwrap())
        .add_sink(sink.clone());
    let r = env.execute_async("socket-json").await.unwrap();
    assert_eq!((sink.len(), r.dead_letters()), (2, 1));

    // Nothing listens on the port any more.
    let env = StreamExecutionEnvironment::new();
    env.add_source(Socket::new("json", cfg).unwrap()).print();
    let e = env.execute_async("refused").await.unwrap_err().to_string();
    assert!(e.contains(&format!("connect to 127.0.0.1:{port}")), "{e}");
}

/// Serves `bodies` in turn (the last one forever) as HTTP responses.
async fn http_server(bodies: Vec<&'static str>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut i = 0;
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let body = bodies[i.min(bodies.len() - 1)];
            i += 1;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_source_polls_json_and_routes_bad_responses_to_dead_letters() {
    let port = http_server(vec![
        r#"{"data": [{"city": "Kent", "temp": 12.5}, {"city": "Bend", "temp": 3}]}"#,
        r#"<html>oops</html>"#,
        r#"{"data": [{"city": "Kent", "temp": "warm"}, {"city": "Boise", "temp": 20}]}"#,
    ])
    .await;
    let dlq = tempfile::tempdir().unwrap();
    let env = StreamExecutionEnvironment::new();
    env.set_dead_letter(dlq.path().to_str().unwrap());
    let cfg = HttpConfig {
        url: format!("http://127.0.0.1:{port}/weather"),
        interval_ms: 20,
        polls: Some(3),
        pointer: Some("/data".into()),
        schema: Some(SchemaSpec::Text("city STRING, temp DOUBLE".into())),
        headers: Default::default(),
        max_failures: 3,
    };
    let sink = Collect::new();
    env.add_source(Http::new("weather", cfg).unwrap())
        .add_sink(sink.clone());
    let r = env.execute_async("http").await.unwrap();
    let rows = common::sorted(&sink);
    assert_eq!(
        rows,
        vec![
            r#"{"city":"Bend","temp":3.0}"#,
            r#"{"city":"Boise","temp":20.0}"#,
            r#"{"city":"Kent","temp":12.5}"#
        ]
    );
    assert_eq!(r.dead_letters(), 2);
    let dl = dead_letters(dlq.path());
    assert!(dl.iter().any(|d| d["reason"].as_str().unwrap().contains("not JSON")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_source_infers_its_schema_from_the_first_response() {
    let port = http_server(vec![r#"[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]"#]).await;
    let env = StreamExecutionEnvironment::new();
    let cfg = HttpConfig {
        url: format!("http://127.0.0.1:{port}/"),
        interval_ms: 10,
        polls: Some(2),
        pointer: None,
        schema: None,
        headers: Default::default(),
        max_failures: 3,
    };
    let sink = Collect::new();
    env.add_source(Http::new("api", cfg).unwrap())
        .filter_expr("id > 1")
        .add_sink(sink.clone());
    env.execute_async("http-infer").await.unwrap();
    assert_eq!(
        sink.rows_json(),
        vec![r#"{"id":2,"name":"b"}"#, r#"{"id":2,"name":"b"}"#]
    );
}

/// The bucket of the S3-compatible server that `scripts/test` starts (moto), or a loud failure
/// in CI when it is missing.
fn s3_bucket() -> Option<String> {
    match std::env::var("WEIR_S3_BUCKET") {
        Ok(b) => Some(b),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "no S3 server: run the tests with scripts/test"
            );
            eprintln!("skipping: WEIR_S3_BUCKET is not set (scripts/test starts an S3 server)");
            None
        }
    }
}

#[test]
fn files_on_s3_round_trip_with_dead_letters_there_too() {
    let Some(bucket) = s3_bucket() else { return };
    files_round_trip(&format!("s3://{bucket}/connectors-{}", std::process::id()));
}

/// JSON files written by two subtasks and a file with a bad record, all under `run`, read back
/// with the dead letters going under `run` too (also run on HDFS).
pub(crate) fn files_round_trip(run: &str) {
    // Write JSON lines to S3 from two subtasks…
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.add_source(common::numbers(2_000, 10))
        .add_sink(FileSink::new("out", FileSinkConfig::new(format!("{run}/numbers"), Format::Json)).unwrap());
    env.execute("to-s3").unwrap();
    // …and a file with a bad record, through the sink's text format.
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    let src = DatagenConfig {
        rows: Some(1),
        fields: vec![DatagenField {
            data_type: Some("string".into()),
            length: Some(3),
            ..DatagenField::new("line", FieldKind::Random)
        }],
        ..Default::default()
    };
    env.add_source(Datagen::new("bad", src).unwrap())
        .select(&["'{\"id\": \"x\"}' AS line"])
        .add_sink(FileSink::new("bad", FileSinkConfig::new(format!("{run}/numbers"), Format::Text)).unwrap());
    env.execute("bad-to-s3").unwrap();
    // Read everything back from S3, with the dead letters going to S3 as well.
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2).set_dead_letter(format!("{run}/dlq"));
    let mut cfg = FileSourceConfig::new(format!("{run}/numbers"), Format::Json);
    cfg.schema = Some(SchemaSpec::Text("id BIGINT, k BIGINT, v BIGINT".into()));
    let sink = Collect::new();
    env.add_source(FileSource::new("in", cfg))
        .name("from_s3")
        .add_sink(sink.clone());
    let r = env.execute("from-s3").unwrap();
    assert_eq!((sink.len(), r.dead_letters()), (2_000, 1));
    let env = StreamExecutionEnvironment::new();
    let dl = Collect::new();
    env.add_source(FileSource::new(
        "dlq",
        FileSourceConfig::new(format!("{run}/dlq"), Format::Json),
    ))
    .add_sink(dl.clone());
    env.execute("read-dlq").unwrap();
    let rows = dl.rows_json();
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0].contains(r#""node":"from_s3""#) && rows[0].contains(r#"\"x\""#),
        "{rows:?}"
    );
}

/// What a recording HTTP server saw: each request's method, content type and body.
type Requests = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>;

/// An HTTP server that records every request and answers with `answer(index, body)`'s status
/// (and a `Retry-After: 0` on 503), one request per connection.
async fn recording_server(answer: impl Fn(usize, &str) -> u16 + Send + Sync + 'static) -> (u16, Requests) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Requests = Default::default();
    let log = seen.clone();
    tokio::spawn(async move {
        let mut i = 0;
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            // The head, then as many body bytes as it announces.
            let (head, body) = loop {
                let n = s.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break (String::new(), String::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                while buf.len() < end + 4 + len {
                    let n = s.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                break (head, String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string());
            };
            if head.is_empty() {
                continue;
            }
            let method = head.split(' ').next().unwrap().to_string();
            let content_type = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-type:")
                        .map(|v| v.trim().to_string())
                })
                .unwrap_or_default();
            let status = answer(i, &body);
            i += 1;
            log.lock().unwrap().push((method, content_type, body));
            let reason = match status {
                200 => "OK",
                400 => "Bad Request",
                _ => "Service Unavailable",
            };
            let text = if status == 400 { "price must be positive" } else { "" };
            let resp = format!(
                "HTTP/1.1 {status} {reason}\r\nretry-after: 0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    (port, seen)
}

fn id_v() -> arrow::datatypes::SchemaRef {
    std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, false),
        arrow::datatypes::Field::new("v", arrow::datatypes::DataType::Int64, false),
    ]))
}

fn http_sink(port: u16, extra: &str) -> std::sync::Arc<dyn weir::connectors::SinkFactory> {
    let text = format!("url: http://127.0.0.1:{port}/result\nretry_backoff_ms: 1\n{extra}");
    let options: serde_json::Map<String, serde_json::Value> = serde_yaml::from_str(&text).unwrap();
    weir::connectors::registry::sink("http", "result", &options).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sink_posts_json_batches_retries_an_unavailable_server_and_dead_letters_refused_rows() {
    // The first request finds the server unavailable (retried); a request holding a row with
    // v = 13 is refused for good (its rows go to the dead-letter output); the rest are taken.
    let (port, seen) = recording_server(|i, body| {
        if i == 0 {
            503
        } else if body.contains("\"v\":13,") || body.contains("\"v\":13}") {
            400
        } else {
            200
        }
    })
    .await;
    let dlq = tempfile::tempdir().unwrap();
    let env = StreamExecutionEnvironment::new();
    env.set_dead_letter(dlq.path().to_str().unwrap());
    // One subtask: the first request of the job is the one the server finds unavailable.
    env.set_parallelism(1);
    env.add_source(common::numbers(200, 5))
        .map_batches_to(id_v(), |_, b| {
            // v = id % 50: rows 13, 63, 113, 163 carry the refused value.
            let id = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Int64).unwrap();
            let id = id.as_any().downcast_ref::<arrow::array::Int64Array>().unwrap();
            let v: arrow::array::Int64Array = id.iter().map(|x| x.map(|x| x % 50)).collect();
            Ok(arrow::record_batch::RecordBatch::try_new(
                id_v(),
                vec![std::sync::Arc::new(id.clone()), std::sync::Arc::new(v)],
            )?)
        })
        .add_sink_named("result", http_sink(port, "max_rows: 10"));
    let r = env.execute_async("http-sink").await.unwrap();
    let seen = seen.lock().unwrap().clone();
    // Every row was sent in requests of at most 10, as JSON arrays.
    let mut taken = Vec::new();
    let mut refused = 0;
    for (i, (method, content_type, body)) in seen.iter().enumerate() {
        assert_eq!(method, "POST");
        assert_eq!(content_type, "application/json");
        let rows: Vec<serde_json::Value> = serde_json::from_str(body).unwrap();
        assert!(!rows.is_empty() && rows.len() <= 10, "{body}");
        if i == 0 {
            continue; // answered 503, sent again
        }
        if rows.iter().any(|r| r["v"] == 13) {
            refused += rows.len();
        } else {
            taken.extend(rows.iter().map(|r| r["id"].as_i64().unwrap()));
        }
    }
    assert_eq!(seen[0].2, seen[1].2, "the unavailable server's request is sent again");
    taken.sort();
    let dl = dead_letters(dlq.path());
    assert_eq!(dl.len(), refused);
    assert_eq!(r.dead_letters() as usize, refused);
    assert!(refused >= 4, "{refused}");
    for d in &dl {
        let reason = d["reason"].as_str().unwrap();
        assert!(
            reason.contains("HTTP 400") && reason.contains("price must be positive"),
            "{reason}"
        );
    }
    let mut all: Vec<i64> = taken.clone();
    all.extend(dl.iter().map(|d| {
        serde_json::from_str::<serde_json::Value>(d["raw"].as_str().unwrap()).unwrap()["id"]
            .as_i64()
            .unwrap()
    }));
    all.sort();
    assert_eq!(
        all,
        (0..200).collect::<Vec<_>>(),
        "every row taken or dead-lettered, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sink_sends_json_lines_and_fails_the_job_when_the_server_stays_unavailable() {
    let (port, seen) = recording_server(|_, _| 200).await;
    let env = StreamExecutionEnvironment::new();
    env.add_source(common::numbers(5, 5))
        .add_sink_named("result", http_sink(port, "body: json_lines\nmethod: PUT"));
    env.execute_async("http-lines").await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let lines: Vec<&str> = seen.iter().flat_map(|(_, _, b)| b.lines()).collect();
    assert_eq!(lines.len(), 5);
    assert!(seen.iter().all(|(m, t, _)| m == "PUT" && t == "application/x-ndjson"));

    let (port, seen) = recording_server(|_, _| 503).await;
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    env.add_source(common::numbers(5, 5))
        .add_sink_named("result", http_sink(port, "max_retries: 2"));
    let e = env.execute_async("http-down").await.unwrap_err().to_string();
    assert!(e.contains("HTTP 503") && e.contains("gave up after 3 tries"), "{e}");
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[test]
fn a_file_source_reports_what_it_has_left_to_read_as_its_lag() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    for f in 0..4u64 {
        let text: String = (0..5_000u64)
            .map(|i| format!("{{\"id\":{:>6}}}\n", f * 5_000 + i)) // one size: {"id":     7}
            .collect();
        write(&input.join(format!("{f}.jsonl")), &text);
    }
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1).set_batch_size(500).set_channel_capacity(1);
    let rows = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    env.add_source(FileSource::new(
        "files",
        FileSourceConfig::new(input.to_str().unwrap(), Format::Json),
    ))
    .rebalance()
    .add_sink(crate::runtime::GatedSink::new(gate.clone(), rows.clone()));
    let metrics = env.metrics();
    let control = weir::runtime::control::JobControl::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let job = rt.spawn({
        let (env, metrics, control) = (env.clone(), metrics.clone(), control.clone());
        async move { env.execute_controlled("files-lag", &metrics, &control).await }
    });
    // The sink writes a batch each time the test lets it: each value the source reports, beside
    // what it had emitted then. The files' bytes not yet read, in records at the mean size read
    // so far, are the records not yet emitted.
    let reported = || {
        let s = metrics.subtask_snapshot().into_iter().find(|s| s.source)?;
        Some((s.lag?, s.records_out))
    };
    let mut seen: Vec<(u64, u64)> = Vec::new();
    common::until(|| reported().is_some());
    loop {
        let (lag, emitted) = reported().unwrap();
        seen.push((lag, emitted));
        if lag == 0 {
            break;
        }
        gate.add_permits(1);
        common::until(|| reported().is_some_and(|(l, _)| l != lag));
    }
    gate.add_permits(1_000);
    rt.block_on(job).unwrap().unwrap();
    assert_eq!(rows.load(Ordering::Relaxed), 20_000);
    assert!(
        seen.len() >= 5 && seen[0].0 > 10_000,
        "a backlog reported while reading: {seen:?}"
    );
    for (lag, emitted) in &seen[..seen.len() - 1] {
        assert!(
            (lag + emitted).abs_diff(20_000) <= 500,
            "left + emitted = all 20,000 records, within a batch: {seen:?}"
        );
    }
    assert_eq!(seen.last().unwrap().0, 0, "nothing left at the end");
}
