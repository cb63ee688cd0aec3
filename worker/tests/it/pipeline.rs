//! The YAML pipeline form: every operator through YAML, the same graph and output as the
//! DataStream API, and errors that name the file, the line and the field.

use crate::common;

use weir::pipeline;
use weir::prelude::*;

fn run_yaml(yaml: &str) -> Result<JobResult> {
    let job = pipeline::build(yaml, "job.yaml")?;
    tokio::runtime::Runtime::new().unwrap().block_on(job.execute())
}

fn err(yaml: &str) -> String {
    match pipeline::build(yaml, "job.yaml") {
        Err(e) => e.to_string(),
        Ok(job) => tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(job.execute())
            .unwrap_err()
            .to_string(),
    }
}

#[test]
fn every_operator_of_the_pipeline_form() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    std::fs::write(dir.path().join("text.txt"), "the quick fox\nthe lazy dog\n").unwrap();
    let yaml = format!(
        r#"
name: all-ops
parallelism: 2
max_parallelism: 32
sources:
  - id: numbers
    connector: datagen
    rows: 1000
    fields:
      - {{name: id, kind: sequence}}
      - {{name: k, kind: random, min: 0, max: 9}}
  - id: more
    connector: datagen
    rows: 500
    fields:
      - {{name: id, kind: sequence, start: 1000}}
      - {{name: k, kind: random, min: 0, max: 9}}
  - id: text
    connector: file
    path: {d}/text.txt
    format: text
operators:
  - id: both
    union: [numbers, more]
  - id: even
    input: both
    filter: "id % 2 = 0"
  - id: keyed
    input: even
    key_by: [k]
  - id: tagged
    input: keyed
    select: ["k", "id", "id * 10 AS big"]
  - id: spread
    input: tagged
    rebalance: true
  - id: mixed
    input: spread
    shuffle: true
  - id: ranged
    input: mixed
    partition_by_range: {{field: id, boundaries: [500, 1000]}}
  - id: ranged_out
    input: ranged
    select: ["*"]
  - id: everywhere
    input: text
    broadcast: true
  - id: words
    input: everywhere
    parallelism: 3
    flat_map: {{split: line, as: word}}
sinks:
  - id: numbers_out
    input: ranged_out
    connector: file
    path: {d}/numbers
  - id: words_out
    input: words
    connector: file
    path: {d}/words
    format: csv
  - input: words
    connector: blackhole
"#
    );
    let r = run_yaml(&yaml).unwrap();
    let numbers = common::read_lines(&dir.path().join("numbers"));
    assert_eq!(numbers.len(), 750);
    assert!(numbers.iter().all(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["big"].as_i64().unwrap() == v["id"].as_i64().unwrap() * 10 && v["id"].as_i64().unwrap() % 2 == 0
    }));
    // Broadcast to 3 subtasks: every word three times; the sink (parallelism 2, fed by
    // rebalance) writes one CSV file with a header per subtask.
    let words = common::read_lines(&dir.path().join("words"));
    assert_eq!(words.iter().filter(|w| w.as_str() == "the").count(), 6);
    assert_eq!(words.iter().filter(|w| w.as_str() == "word").count(), 2);
    assert_eq!(r.node("ranged_out").unwrap().records_in, 750);
    assert_eq!(r.node("sink-3").unwrap().records_in, 18);
}

#[test]
fn yaml_and_the_rust_api_make_the_same_plan_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let yaml = format!(
        r#"
name: same
parallelism: 3
sources:
  - id: bids
    connector: nexmark
    events: 20000
    stream: bid
operators:
  - id: cheap
    input: bids
    filter: "price < 10000"
  - id: by_auction
    input: cheap
    key_by: auction
  - id: euros
    input: by_auction
    select: ["auction", "price * 0.908 AS euros"]
sinks:
  - id: out
    input: euros
    connector: file
    path: {d}/yaml
"#
    );
    let job = pipeline::build(&yaml, "job.yaml").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let yaml_plan = rt.block_on(job.env.explain()).unwrap();
    rt.block_on(job.execute()).unwrap();

    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(3);
    let cfg = NexmarkConfig {
        events: Some(20_000),
        stream: NexmarkStream::Bid,
        ..Default::default()
    };
    env.add_source(Nexmark::new("bids", cfg).unwrap())
        .name("bids")
        .filter_expr("price < 10000")
        .name("cheap")
        .key_by("auction")
        .select(&["auction", "price * 0.908 AS euros"])
        .name("euros")
        .add_sink(FileSink::new("out", FileSinkConfig::new(format!("{d}/api"), Format::Json)).unwrap())
        .name("out");
    let api_plan = rt.block_on(env.explain()).unwrap();
    env.execute("same").unwrap();
    assert_eq!(yaml_plan, api_plan);
    let (a, b) = (
        common::read_lines(&dir.path().join("yaml")),
        common::read_lines(&dir.path().join("api")),
    );
    assert!(!a.is_empty());
    assert_eq!(a, b);
}

const GOOD_HEAD: &str = "name: bad\nsources:\n  - id: src\n    connector: datagen\n    rows: 10\n";

#[test]
fn errors_name_the_file_the_line_and_the_field() {
    // Unknown top-level field: serde's location.
    let e = err(&format!("{GOOD_HEAD}sinkz: []\n"));
    assert!(e.contains("job.yaml:6:1") && e.contains("unknown field `sinkz`"), "{e}");
    // Unknown operator field, with its line.
    let e = err(&format!(
        "{GOOD_HEAD}operators:\n  - id: f\n    input: src\n    fliter: \"x > 1\"\nsinks: []\n"
    ));
    assert!(e.contains("job.yaml:9") && e.contains("unknown field `fliter`"), "{e}");
    // Unknown connector option: the node, its line, the field.
    let e = err(
        "name: bad\nsources:\n  - id: gen\n    connector: datagen\n    rowz: 10\nsinks:\n  - input: gen\n    connector: blackhole\n",
    );
    assert!(
        e.contains("job.yaml:3") && e.contains("'gen'") && e.contains("unknown field `rowz`"),
        "{e}"
    );
    // Unknown connector.
    let e =
        err("name: bad\nsources:\n  - id: k\n    connector: kafak\nsinks:\n  - input: k\n    connector: blackhole\n");
    assert!(
        e.contains("job.yaml:3") && e.contains("unknown source connector 'kafak'"),
        "{e}"
    );
    // Unknown input id.
    let e = err(&format!(
        "{GOOD_HEAD}operators:\n  - id: f\n    input: nope\n    filter: \"id > 1\"\nsinks:\n  - input: f\n    connector: blackhole\n"
    ));
    assert!(e.contains("job.yaml:7") && e.contains("no node has id 'nope'"), "{e}");
    // Two operations on one node.
    let e = err(&format!(
        "{GOOD_HEAD}operators:\n  - id: f\n    input: src\n    filter: \"x\"\n    rebalance: true\nsinks:\n  - input: f\n    connector: blackhole\n"
    ));
    assert!(e.contains("job.yaml:7") && e.contains("filter and rebalance"), "{e}");
    // A bad expression is found at planning and located too.
    let e = err(&format!(
        "{GOOD_HEAD}operators:\n  - id: f\n    input: src\n    filter: \"nope > 1\"\nsinks:\n  - input: f\n    connector: blackhole\n"
    ));
    assert!(
        e.contains("job.yaml:7") && e.contains("node 'f'") && e.contains("nope"),
        "{e}"
    );
    // A cycle.
    let e = err(&format!(
        "{GOOD_HEAD}operators:\n  - id: a\n    input: b\n    filter: \"true\"\n  - id: b\n    input: a\n    filter: \"true\"\nsinks:\n  - input: a\n    connector: blackhole\n"
    ));
    assert!(e.contains("cycle"), "{e}");
    // A node nobody reads.
    let e = err(&format!(
        "{GOOD_HEAD}operators:\n  - id: lost\n    input: src\n    filter: \"true\"\nsinks:\n  - input: src\n    connector: blackhole\n"
    ));
    assert!(e.contains("'lost' is not connected to any sink"), "{e}");
    // Not YAML at all.
    let e = err("name: [unclosed\n");
    assert!(e.starts_with("invalid job: job.yaml:"), "{e}");
}

#[test]
fn socket_and_http_sources_in_yaml() {
    use std::io::{Read, Write};
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sport = socket.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut s, _) = socket.accept().unwrap();
        s.write_all(b"{\"n\": 1}\n{\"n\": 2}\n{\"n\": \"three\"}\n").unwrap();
    });
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hport = http.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in http.incoming() {
            let mut s = conn.unwrap();
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let body = r#"[{"n": 10}, {"n": 20}]"#;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let yaml = format!(
        r#"
name: net
parallelism: 2
dead_letter: {d}/dlq
sources:
  - id: sock
    connector: socket
    host: 127.0.0.1
    port: {sport}
    format: json
    schema: "n BIGINT"
  - id: api
    connector: http
    url: http://127.0.0.1:{hport}/
    interval_ms: 10
    polls: 2
sinks:
  - id: out
    input: [sock, api]
    connector: file
    path: {d}/out
"#
    );
    let r = run_yaml(&yaml).unwrap();
    let mut got: Vec<i64> = common::read_lines(&dir.path().join("out"))
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["n"]
                .as_i64()
                .unwrap()
        })
        .collect();
    got.sort();
    assert_eq!(got, vec![1, 2, 10, 10, 20, 20]);
    assert_eq!(r.node("sock").unwrap().dead_letters, 1);
    assert_eq!(common::read_lines(&dir.path().join("dlq")).len(), 1);
}

/// `state.backend: disk` in a pipeline file keeps a running count per key on disk (a 1 MiB
/// budget, so it spills) with the same output as in memory; a bad setting names its field.
#[test]
fn the_state_backend_is_chosen_in_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let run = |state: &str, out: &str| {
        let yaml = format!(
            r#"
name: counts
parallelism: 2
{state}
sources:
  - id: gen
    connector: datagen
    rows: 40000
    fields:
      - {{name: k, kind: random, min: 0, max: 19999}}
operators:
  - id: by_k
    input: gen
    key_by: k
  - id: counts
    input: by_k
    aggregate: [{{kind: count}}]
sinks:
  - input: counts
    connector: file
    path: {out}
"#,
            out = dir.path().join(out).display()
        );
        run_yaml(&yaml).unwrap();
        let mut lines = common::read_lines(&dir.path().join(out));
        lines.sort();
        lines
    };
    let state = dir.path().join("state");
    let on_disk = run(
        &format!(
            "state: {{backend: disk, dir: {}, memory: 1m, local_recovery: false}}",
            state.display()
        ),
        "disk",
    );
    assert_eq!(on_disk.len(), 40_000);
    assert_eq!(on_disk, run("", "memory"), "disk and memory give the same counts");
    assert!(state.exists(), "the disk backend kept its files under state.dir");
    let e = err(&format!(
        "{GOOD_HEAD}state: {{backend: disk, memory: lots}}\nsinks:\n  - input: src\n    connector: blackhole\n"
    ));
    assert!(e.contains("state.memory") && e.contains("`lots` is not a size"), "{e}");
    let e = err(&format!(
        "{GOOD_HEAD}state: {{backend: ram}}\nsinks:\n  - input: src\n    connector: blackhole\n"
    ));
    assert!(e.contains("state.backend") && e.contains("`ram`"), "{e}");
    let e = err(&format!(
        "{GOOD_HEAD}state: {{backend: disk, local_recovery: maybe}}\nsinks:\n  - input: src\n    connector: blackhole\n"
    ));
    assert!(e.contains("local_recovery"), "{e}");
}
