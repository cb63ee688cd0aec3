//! Flink SQL jobs through the public entry points (`weir::pipeline::build_sql`, the `weir`
//! binary), checked against references computed here: the Nexmark queries without joins, run
//! unchanged from their Flink text; window table functions and legacy group windows; an
//! updating GROUP BY as a changelog; the errors a user meets.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use weir::connectors::nexmark::model::{Event, NexmarkModel};
use weir::runtime::metrics::NodeRole;

use crate::common::{final_table, read_lines, run_printed};

const EVENTS: i64 = 50_000;
const RATE: i64 = 1_000;
const BASE: i64 = 1_704_067_200_000;

fn nexmark_job(query: &str) -> String {
    crate::common::nexmark_sql(query, EVENTS, RATE, BASE)
}

fn rows_written(text: &str, name: &str, parallelism: usize) -> u64 {
    let job = weir::pipeline::build_sql(text, &format!("{name}.sql"), name).unwrap();
    job.env.set_parallelism(parallelism);
    let metrics = job.env.metrics();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(job.env.execute_with(&job.name, &metrics, Default::default()))
        .unwrap();
    metrics
        .snapshot()
        .iter()
        .filter(|n| n.role == NodeRole::Sink)
        .map(|n| n.records_in)
        .sum()
}

/// The bids of the model: (auction, bidder, dateTime).
fn bids() -> Vec<(i64, i64, i64)> {
    let model = NexmarkModel::new(0, BASE, RATE, true);
    let mut ev = Event::default();
    (0..EVENTS)
        .filter_map(|n| {
            model.fill(n, &mut ev);
            (ev.kind == 2).then_some((ev.auction, ev.bidder, ev.date_time))
        })
        .collect()
}

/// Sessions per bidder with a 10 s gap (a bid at or after the last one + gap opens a new one).
fn sessions(bids: &[(i64, i64, i64)]) -> usize {
    let mut per_bidder: HashMap<i64, Vec<i64>> = HashMap::new();
    for (_, bidder, t) in bids {
        per_bidder.entry(*bidder).or_default().push(*t);
    }
    per_bidder
        .values_mut()
        .map(|ts| {
            ts.sort();
            1 + ts.windows(2).filter(|w| w[1] >= w[0] + 10_000).count()
        })
        .sum()
}

/// Output rows of Apache Flink 2.3 on the same events (50,000 at 1,000 per second, seed 0),
/// from the peer kit: `run.py --validate --events 50000 --rate 1000 --query q0,q1,q2,q11 -p 1`
/// (and `-p 2`); raw output in `bench/results/2026-12-04-sql-validate-flink.txt`.
const FLINK_ROWS: [(&str, usize); 4] = [("q0", 46_000), ("q1", 46_000), ("q2", 167), ("q11", 1_055)];

#[test]
fn nexmark_queries_without_joins_run_unchanged_and_count_what_flink_and_the_model_say() {
    let bids = bids();
    let expected = [
        ("q0", bids.len()),
        ("q1", bids.len()),
        ("q2", bids.iter().filter(|b| b.0 % 123 == 0).count()),
        ("q11", sessions(&bids)),
    ];
    assert_eq!(expected, FLINK_ROWS, "the model's reference agrees with Flink");
    for p in [1, 2, 4] {
        for (q, want) in expected {
            let got = rows_written(&nexmark_job(q), q, p);
            assert_eq!(got, want as u64, "{q} at parallelism {p}");
        }
    }
}

/// A statement that reads a table twice reads it once (Flink's source and scan reuse): q5's
/// two windows over `bid` share one generator, which reads each bid once; q8's persons and
/// auctions (other columns of the same table, generated whole without push-down) too.
#[test]
fn a_table_read_twice_is_read_once() {
    let cases = [
        ("q5", nexmark_job("q5"), bids().len() as u64),
        (
            "q8",
            format!(
                "SET 'table.optimizer.source.predicate-pushdown-enabled' = 'false';\n{}",
                nexmark_job("q8")
            ),
            EVENTS as u64,
        ),
    ];
    for (q, text, want) in cases {
        let job = weir::pipeline::build_sql(&text, &format!("{q}.sql"), q).unwrap();
        job.env.set_parallelism(1);
        let metrics = job.env.metrics();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(job.env.execute_with(&job.name, &metrics, Default::default()))
            .unwrap();
        let sources: Vec<u64> = metrics
            .snapshot()
            .iter()
            .filter(|n| n.role == NodeRole::Source)
            .map(|n| n.records_out)
            .collect();
        assert_eq!(sources, vec![want], "{q}: one source, each event read once");
    }
}

#[test]
fn nexmark_sql_through_weir_cluster_with_three_workers() {
    let dir = tempfile::tempdir().unwrap();
    // q2 and q11; q3 and q8 (a join and a semi join, keyed across the workers).
    for (q, want) in [FLINK_ROWS[2], FLINK_ROWS[3], FLINK_JOIN_ROWS[0], FLINK_JOIN_ROWS[4]] {
        // The rows go to files instead of the blackhole, to be counted.
        let out = dir.path().join(format!("out-{q}"));
        let text = nexmark_job(q).replace(
            "WITH ('connector' = 'blackhole')",
            &format!(
                "WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json')",
                out.display()
            ),
        );
        let file = dir.path().join(format!("{q}.sql"));
        std::fs::write(&file, text).unwrap();
        let run = weir()
            .current_dir(dir.path())
            .arg("cluster")
            .arg(&file)
            .args(["--workers", "3"])
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        assert_eq!(read_lines(&out).len(), want, "{q} through 3 workers");
    }
}

/// Nexmark q4 from the model: per category, the average of its auctions' closing prices (the
/// highest bid within the auction's lifetime), as `BIGINT` (truncated, as Flink's `AVG`).
fn q4_reference() -> BTreeMap<i64, i64> {
    let model = NexmarkModel::new(0, BASE, RATE, true);
    let mut ev = Event::default();
    let mut auctions: HashMap<i64, (i64, i64, i64)> = HashMap::new();
    let mut closing: HashMap<i64, i64> = HashMap::new();
    let mut bids = Vec::new();
    for n in 0..EVENTS {
        model.fill(n, &mut ev);
        match ev.kind {
            1 => {
                auctions.insert(ev.auction_id, (ev.category, ev.date_time, ev.expires));
            }
            2 => bids.push((ev.auction, ev.price, ev.date_time)),
            _ => {}
        }
    }
    for (auction, price, t) in bids {
        if let Some((_, start, end)) = auctions.get(&auction)
            && *start <= t
            && t <= *end
        {
            let c = closing.entry(auction).or_insert(price);
            *c = (*c).max(price);
        }
    }
    let mut per_category: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
    for (auction, price) in closing {
        let e = per_category.entry(auctions[&auction].0).or_default();
        e.0 += price as f64;
        e.1 += 1.0;
    }
    per_category
        .into_iter()
        .map(|(c, (sum, n))| (c, (sum / n) as i64))
        .collect()
}

/// Final rows of Apache Flink 2.3 for the join queries on the same events (50,000 at 1,000 per
/// second, seed 0): `run.py --validate --events 50000 --rate 1000 --query q3,q4,q5,q7,q8 -p 1`
/// and `--query q9`, raw output in `bench/results/2026-12-04-flink-validate-joins.txt`.
const FLINK_JOIN_ROWS: [(&str, usize); 6] = [
    ("q3", 258),
    ("q4", 5),
    ("q5", 31),
    ("q7", 5),
    ("q8", 212),
    ("q9", 2_785),
];

/// The Nexmark join queries run unchanged from their Flink text on the regular join (q5's and
/// q8's joins with a grouped side planned as semi joins, q5's with its `>=` inside), printed at
/// the default parallelism (one subtask per core) and the same at 1 and 4; their final tables
/// have Flink's row counts, and q4's values are the model's. q9 ranks each auction's bids with `ROW_NUMBER()` and keeps
/// the first (Top-N).
#[test]
fn join_and_top_n_queries_run_unchanged_and_end_at_flinks_rows() {
    let dir = tempfile::tempdir().unwrap();
    for (q, want) in FLINK_JOIN_ROWS {
        let text = nexmark_job(q).replace("'connector' = 'blackhole'", "'connector' = 'print'");
        let table = final_table(&run_printed(dir.path(), &text));
        assert_eq!(table.values().sum::<i64>(), want as i64, "{q}");
        // The same final table with one subtask per operator and with four.
        for p in [1, 4] {
            let text = format!("SET 'parallelism.default' = '{p}';\n{text}");
            assert_eq!(
                final_table(&run_printed(dir.path(), &text)),
                table,
                "{q} at parallelism {p}"
            );
        }
        if q == "q5" {
            // The per-window maximum is a window aggregate of the window aggregate's output, as
            // in Flink: one row per window, so the semi join only appends.
            let printed = run_printed(dir.path(), &text);
            assert_eq!(printed.lines().count(), want, "q5 appends its rows once");
        }
        if q == "q4" {
            let got: BTreeMap<i64, i64> = table
                .keys()
                .map(|row| {
                    let v: serde_json::Value = serde_json::from_str(row).unwrap();
                    (v["id"].as_i64().unwrap(), v["final"].as_i64().unwrap())
                })
                .collect();
            assert_eq!(got, q4_reference(), "q4: average closing price per category");
        }
    }
}

/// Events (k, v, ts ms) written as JSON lines, for file-backed tables.
fn events_file(dir: &Path) -> (std::path::PathBuf, Vec<(i64, i64, i64)>) {
    // Keys 0..5, values 0..100, gaps up to 3 s, in order.
    timed_rows(dir, "in", 7, 400, (5, 100, 3_000))
}

fn table_ddl(input: &Path, output: &Path, out_columns: &str) -> String {
    format!(
        "CREATE TABLE events (k BIGINT, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '0' SECOND)\n\
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n\
         CREATE TABLE results ({out_columns}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n",
        input.display(),
        output.display()
    )
}

fn run_sql(text: &str, p: usize) {
    let job = weir::pipeline::build_sql(text, "job.sql", "job").unwrap();
    job.env.set_parallelism(p);
    job.env.execute("job").unwrap();
}

/// Rows of the output as (k, window_start, window_end, count, sum) sorted.
fn windows_out(dir: &Path) -> Vec<(i64, i64, i64, i64, i64)> {
    let mut rows: Vec<(i64, i64, i64, i64, i64)> = read_lines(dir)
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let ms = |f: &str| crate::common::timed::millis(&v[f]);
            (
                v["k"].as_i64().unwrap(),
                ms("ws"),
                ms("we"),
                v["n"].as_i64().unwrap(),
                v["total"].as_i64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    rows
}

type WindowRow = (i64, i64, i64, i64, i64);

fn reference(events: &[(i64, i64, i64)], windows_of: impl Fn(i64) -> Vec<(i64, i64)>) -> Vec<WindowRow> {
    let mut acc: BTreeMap<(i64, i64, i64), (i64, i64)> = BTreeMap::new();
    for (k, v, t) in events {
        for (s, e) in windows_of(*t) {
            let a = acc.entry((*k, s, e)).or_default();
            a.0 += 1;
            a.1 += v;
        }
    }
    acc.into_iter().map(|((k, s, e), (n, sum))| (k, s, e, n, sum)).collect()
}

fn session_reference(events: &[(i64, i64, i64)], gap: i64) -> Vec<WindowRow> {
    let mut per_key: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for (k, v, t) in events {
        per_key.entry(*k).or_default().push((*t, *v));
    }
    let mut out = Vec::new();
    for (k, mut rows) in per_key {
        rows.sort();
        let (mut start, mut last, mut n, mut sum) = (rows[0].0, rows[0].0, 0, 0);
        for (t, v) in rows {
            if t >= last + gap {
                out.push((k, start, last + gap, n, sum));
                (start, n, sum) = (t, 0, 0);
            }
            last = t;
            n += 1;
            sum += v;
        }
        out.push((k, start, last + gap, n, sum));
    }
    out.sort();
    out
}

#[test]
fn window_table_functions_and_legacy_group_windows_match_a_reference() {
    let dir = tempfile::tempdir().unwrap();
    let (input, events) = events_file(dir.path());
    let cols = "k BIGINT, ws TIMESTAMP(3), we TIMESTAMP(3), n BIGINT, total BIGINT";
    let tumble = |t: i64| vec![(t - t % 10_000, t - t % 10_000 + 10_000)];
    let hop = |t: i64| {
        let last = t - t % 2_000;
        (0..5)
            .map(|i| last - i * 2_000)
            .filter(|s| *s > t - 10_000)
            .map(|s| (s, s + 10_000))
            .collect()
    };
    let cases: Vec<(&str, String, Vec<WindowRow>)> = vec![
        (
            "tumble",
            "SELECT k, window_start, window_end, COUNT(*), SUM(v) FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY k, window_start, window_end".into(),
            reference(&events, tumble),
        ),
        (
            "tumble with FILTER (WHERE …)",
            "SELECT k, window_start, window_end, COUNT(*) FILTER (WHERE v >= 50), COALESCE(SUM(v) FILTER (WHERE v >= 50), 0) FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY k, window_start, window_end".into(),
            {
                let mut acc: BTreeMap<(i64, i64, i64), (i64, i64)> = BTreeMap::new();
                for (k, v, t) in &events {
                    for (s, e) in tumble(*t) {
                        let a = acc.entry((*k, s, e)).or_default();
                        if *v >= 50 {
                            a.0 += 1;
                            a.1 += v;
                        }
                    }
                }
                acc.into_iter().map(|((k, s, e), (n, sum))| (k, s, e, n, sum)).collect()
            },
        ),
        (
            "hop",
            "SELECT k, window_start, window_end, COUNT(*) AS n, SUM(v) AS total FROM TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND)) GROUP BY window_start, window_end, k".into(),
            reference(&events, hop),
        ),
        (
            "cumulate",
            "SELECT k, window_start, window_end, COUNT(*), SUM(v) FROM TABLE(CUMULATE(TABLE events, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND)) GROUP BY k, window_start, window_end".into(),
            reference(&events, |t: i64| {
                let start = t - t % 10_000;
                (1..=5).map(|k| (start, start + k * 2_000)).filter(|(_, e)| *e > t).collect()
            }),
        ),
        (
            "session",
            "SELECT k, window_start, window_end, COUNT(*), SUM(v) FROM TABLE(SESSION(TABLE events PARTITION BY k, DESCRIPTOR(ts), INTERVAL '2' SECOND)) GROUP BY k, window_start, window_end".into(),
            session_reference(&events, 2_000),
        ),
        (
            "legacy-tumble",
            "SELECT k, TUMBLE_START(ts, INTERVAL '10' SECOND), TUMBLE_END(ts, INTERVAL '10' SECOND), COUNT(*), SUM(v) FROM events GROUP BY TUMBLE(ts, INTERVAL '10' SECOND), k".into(),
            reference(&events, tumble),
        ),
        (
            "legacy-hop",
            "SELECT k, HOP_START(ts, INTERVAL '2' SECOND, INTERVAL '10' SECOND), HOP_END(ts, INTERVAL '2' SECOND, INTERVAL '10' SECOND), COUNT(*), SUM(v) FROM events GROUP BY k, HOP(ts, INTERVAL '2' SECOND, INTERVAL '10' SECOND)".into(),
            reference(&events, hop),
        ),
        (
            "legacy-session",
            "SELECT k, SESSION_START(ts, INTERVAL '2' SECOND), SESSION_END(ts, INTERVAL '2' SECOND), COUNT(*), SUM(v) FROM events GROUP BY k, SESSION(ts, INTERVAL '2' SECOND)".into(),
            session_reference(&events, 2_000),
        ),
    ];
    for (name, query, want) in cases {
        for p in [1, 3] {
            let out = dir.path().join(format!("out-{name}-{p}"));
            run_sql(
                &format!("{}INSERT INTO results {query};", table_ddl(&input, &out, cols)),
                p,
            );
            assert_eq!(windows_out(&out), want, "{name} at parallelism {p}");
        }
    }
}

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// Writes `job` to `dir/job.sql`, runs `weir run job.sql` there and returns what it printed.
type Totals = BTreeMap<i64, (i64, i64, i64, i64, i64)>;

/// Runs an updating `GROUP BY` over the events with `settings` and applies its printed
/// changelog: the final table and how many rows of each kind came out.
fn printed_changelog(settings: &str) -> (Totals, Totals, BTreeMap<String, usize>) {
    let dir = tempfile::tempdir().unwrap();
    let (input, events) = events_file(dir.path());
    let stdout = run_printed(
        dir.path(),
        &format!(
            "SET 'parallelism.default' = '2';\n{settings}\n\
             CREATE TABLE events (k BIGINT, v BIGINT, ts TIMESTAMP(3)) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n\
             CREATE TABLE totals (k BIGINT, n BIGINT, total BIGINT, lo BIGINT, hi BIGINT, dv BIGINT, PRIMARY KEY (k) NOT ENFORCED) WITH ('connector' = 'print');\n\
             INSERT INTO totals SELECT k, COUNT(*), SUM(v), MIN(v), MAX(v), COUNT(DISTINCT v) FROM events GROUP BY k HAVING COUNT(*) > 3;",
            input.display()
        ),
    );
    // Apply the changelog.
    let mut table: Totals = BTreeMap::new();
    let mut kinds = BTreeMap::new();
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let op = v["op"].as_str().unwrap().to_string();
        let k = v["k"].as_i64().unwrap();
        let row = (
            v["n"].as_i64().unwrap(),
            v["total"].as_i64().unwrap(),
            v["lo"].as_i64().unwrap(),
            v["hi"].as_i64().unwrap(),
            v["dv"].as_i64().unwrap(),
        );
        *kinds.entry(op.clone()).or_insert(0) += 1;
        match op.as_str() {
            "+I" | "+U" => {
                table.insert(k, row);
            }
            "-U" | "-D" => assert_eq!(table.remove(&k), Some(row), "a retraction names the row it retracts"),
            other => panic!("op {other}"),
        }
    }
    let mut want: Totals = BTreeMap::new();
    let mut seen: BTreeMap<i64, std::collections::BTreeSet<i64>> = BTreeMap::new();
    for (k, v, _) in &events {
        let e = want.entry(*k).or_insert((0, 0, i64::MAX, i64::MIN, 0));
        e.0 += 1;
        e.1 += v;
        e.2 = e.2.min(*v);
        e.3 = e.3.max(*v);
        seen.entry(*k).or_default().insert(*v);
    }
    for (k, vs) in seen {
        want.get_mut(&k).unwrap().4 = vs.len() as i64;
    }
    want.retain(|_, r| r.0 > 3);
    (table, want, kinds)
}

#[test]
fn an_updating_group_by_is_a_changelog_that_applies_to_the_reference() {
    let (table, want, kinds) = printed_changelog("");
    assert_eq!(table, want);
    assert!(kinds["-U"] > 0 && kinds["+U"] > 0, "{kinds:?}");
}

#[test]
fn mini_batch_folds_the_changelog_to_fewer_rows_with_the_same_table() {
    let (_, _, plain) = printed_changelog("");
    let (table, want, folded) = printed_changelog(
        "SET 'table.exec.mini-batch.enabled' = 'true';\n\
         SET 'table.exec.mini-batch.allow-latency' = '1 min';\n\
         SET 'table.exec.mini-batch.size' = '50';",
    );
    assert_eq!(table, want);
    let rows = |k: &BTreeMap<String, usize>| k.values().sum::<usize>();
    // 400 events over 5 keys: every event changes its key's row without folding; folded, a
    // key changes at most once per batch of at least 50 rows.
    assert!(rows(&plain) > 400, "{plain:?}");
    assert!(rows(&folded) * 10 < rows(&plain), "folded {folded:?}, plain {plain:?}");

    // Enabled without its latency: an error naming the option.
    let err = weir::pipeline::build_sql(
        "SET 'table.exec.mini-batch.enabled' = 'true';\n\
         CREATE TABLE t (k BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '10');\n\
         CREATE TABLE o (k BIGINT, n BIGINT) WITH ('connector' = 'print');\n\
         INSERT INTO o SELECT k, COUNT(*) FROM t GROUP BY k;",
        "job.sql",
        "job",
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("table.exec.mini-batch.allow-latency"), "{err}");
}

#[test]
fn an_updating_query_into_an_append_only_sink_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}INSERT INTO results SELECT k, COUNT(*) FROM events GROUP BY k;",
        table_ddl(&dir.path().join("in"), &dir.path().join("out"), "k BIGINT, n BIGINT")
    );
    let e = weir::pipeline::build_sql(&text, "job.sql", "job")
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("job.sql:4:1") && e.contains("'results'") && e.contains("'filesystem'") && e.contains("GROUP BY"),
        "{e}"
    );
}

#[test]
fn mistakes_are_located_and_explained() {
    let dir = tempfile::tempdir().unwrap();
    let ddl = table_ddl(&dir.path().join("in"), &dir.path().join("out"), "k BIGINT");
    let cases = [
        ("INSERT INTO results SELECT kk FROM events;", "unknown column 'kk'"),
        (
            "INSERT INTO results SELECT k FROM events WHERE vv > 1;",
            "did you mean 'v'?",
        ),
        ("INSERT INTO results SELEC k FROM events;", "job.sql:4:"),
        ("INSERT INTO nowhere SELECT k FROM events;", "nowhere"),
        ("SET 'paralelism.default' = '2';", "unknown option 'paralelism.default'"),
    ];
    for (statement, want) in cases {
        let e = weir::pipeline::build_sql(&format!("{ddl}{statement}"), "job.sql", "job")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(want) && e.contains("job.sql:4:"), "{statement}: {e}");
    }
    let bad_option = "CREATE TABLE t (a BIGINT) WITH ('connector' = 'datagen', 'rows-per-secnd' = '5');\
                      CREATE TABLE s (a BIGINT) WITH ('connector' = 'blackhole');\
                      INSERT INTO s SELECT a FROM t;";
    let e = weir::pipeline::build_sql(bad_option, "job.sql", "job")
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("unknown option 'rows-per-secnd'") && e.contains("rows-per-second"),
        "{e}"
    );
    // Flink's `max-past` of a timestamp: '0' is the wall clock Weir's datagen gives; another
    // value is refused, naming the option.
    let table = |max_past: &str| {
        format!(
            "CREATE TABLE t (a BIGINT, ts TIMESTAMP(3)) WITH ('connector' = 'datagen', 'number-of-rows' = '5', \
             'fields.ts.max-past' = '{max_past}');\
             CREATE TABLE s (a BIGINT) WITH ('connector' = 'blackhole');\
             INSERT INTO s SELECT a FROM t;"
        )
    };
    weir::pipeline::build_sql(&table("0"), "job.sql", "job").unwrap();
    let e = weir::pipeline::build_sql(&table("5000"), "job.sql", "job")
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("'fields.ts.max-past' = '5000'") && e.contains("only '0'"),
        "{e}"
    );
}

#[test]
fn weir_run_and_explain_take_a_sql_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("q2.sql"), nexmark_job("q2")).unwrap();
    let out = weir()
        .current_dir(dir.path())
        .args(["explain", "q2.sql"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("TableScan: nexmark") && text.contains("sink:blackhole"),
        "{text}"
    );
    let out = weir()
        .current_dir(dir.path())
        .args(["run", "-p", "2", "q2.sql"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let want = bids().iter().filter(|b| b.0 % 123 == 0).count();
    assert!(err.contains(&format!("wrote {want} rows")), "{err}");
}

#[test]
fn a_sql_job_killed_with_sigkill_resumes_from_its_checkpoint_with_exactly_once_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (rows, out, chk) = (6_000u64, tmp.path().join("out"), tmp.path().join("chk"));
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '200ms';
SET 'execution.checkpointing.dir' = '{}';
SET 'parallelism.default' = '2';
CREATE TABLE gen (id BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH (
  'connector' = 'datagen', 'rows-per-second' = '2000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '{}');
CREATE TABLE counts (k BIGINT, ws TIMESTAMP(3), n BIGINT, total BIGINT)
  WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
INSERT INTO counts
SELECT id % 5, window_start, COUNT(*), SUM(id)
FROM TABLE(TUMBLE(TABLE gen, DESCRIPTOR(ts), INTERVAL '1' SECOND))
GROUP BY id % 5, window_start, window_end;",
        chk.display(),
        rows - 1,
        out.display()
    );
    let kills = crate::common::cli::kill_and_resume(tmp.path(), "job.sql", &sql, 3, 0x51_7cc1_b727_220a, 400, 800);
    assert!(kills >= 2, "the job was killed mid-run ({kills} kills landed)");
    let mut seen = std::collections::BTreeSet::new();
    let (mut n, mut total) = (0u64, 0u64);
    for line in crate::common::committed_lines(&out) {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(
            seen.insert((v["k"].to_string(), v["ws"].to_string())),
            "a window written twice: {line}"
        );
        n += v["n"].as_u64().unwrap();
        total += v["total"].as_u64().unwrap();
    }
    assert_eq!(
        (n, total),
        (rows, rows * (rows - 1) / 2),
        "every row counted exactly once"
    );
}

/// A regular inner join of two append-only tables (every id on both sides) checkpointing its
/// join state incrementally, killed with SIGKILL three times and resumed: every id is joined
/// exactly once. (SQL sources keep the parallelism of their positions, so the rescale of join
/// state is in `incremental::`, through the DataStream API.)
#[test]
fn a_join_killed_with_sigkill_writes_each_pair_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    sigkilled_join(tmp.path(), "");
}

/// The same on the disk state backend with a 1 MiB budget (state spills to disk all the time):
/// exactly once, and the state files of killed runs are gone at the end.
#[test]
fn a_join_on_the_disk_backend_killed_with_sigkill_writes_each_pair_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    sigkilled_join(
        tmp.path(),
        &format!(
            "SET 'state.backend.type' = 'disk';
SET 'state.backend.memory' = '1m';
SET 'state.backend.local-dir' = '{}';\n",
            state.display()
        ),
    );
    let left: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "state files left behind: {left:?}");
}

/// Runs the join of [`a_join_killed_with_sigkill_writes_each_pair_exactly_once`] with `settings`
/// (SQL `SET`s) in `dir`, killing it three times.
fn sigkilled_join(dir: &Path, settings: &str) {
    let (rows, out, chk) = (6_000u64, dir.join("out"), dir.join("chk"));
    let sql = format!(
        "{settings}SET 'execution.checkpointing.interval' = '100ms';
SET 'execution.checkpointing.dir' = '{chk}';
SET 'parallelism.default' = '2';
CREATE TABLE a (id BIGINT) WITH (
  'connector' = 'datagen', 'rows-per-second' = '3000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '{last}');
CREATE TABLE b (id BIGINT, v BIGINT) WITH (
  'connector' = 'datagen', 'rows-per-second' = '2500',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '{last}',
  'fields.v.kind' = 'sequence', 'fields.v.start' = '0', 'fields.v.end' = '{last}');
CREATE TABLE pairs (id BIGINT, v BIGINT)
  WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
INSERT INTO pairs SELECT a.id, b.v FROM a JOIN b ON a.id = b.id;",
        chk = chk.display(),
        last = rows - 1,
        out = out.display()
    );
    let kills = crate::common::cli::kill_and_resume(dir, "join.sql", &sql, 3, 0x7f4a_7c15_9e37_79b9, 400, 700);
    assert!(kills >= 2, "the job was killed mid-run ({kills} kills landed)");
    let mut ids = std::collections::BTreeMap::new();
    for line in crate::common::committed_lines(&out) {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let (id, value) = (v["id"].as_u64().unwrap(), v["v"].as_u64().unwrap());
        assert_eq!(id, value, "{line}");
        assert!(ids.insert(id, line.clone()).is_none(), "a pair written twice: {line}");
    }
    assert_eq!(ids.len() as u64, rows, "every id joined once");
}

/// Nexmark q12 as written (bids per bidder per 10 s tumbling window of processing time), over
/// bids arriving on a socket in three bursts, the job's clock moved 10 s between them: each
/// burst is one window per bidder; the last window is still open when the input ends and is
/// dropped, as in Flink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q12_counts_each_bidders_bids_per_processing_time_window_of_their_arrival() {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let q12 = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sql/nexmark/q12.sql"))
        .unwrap()
        .replace(
            "WITH ('connector' = 'blackhole')",
            &format!(
                "WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json')",
                out.display()
            ),
        );
    let text = format!(
        "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3), extra VARCHAR)
         WITH ('connector' = 'socket', 'hostname' = '127.0.0.1', 'port' = '{port}', 'format' = 'json');\n{q12}"
    );
    let job = weir::pipeline::build_sql(&text, "q12.sql", "q12").unwrap();
    let t0 = 1_700_000_000_000i64;
    let clock = weir::contract::clock::ManualClock::new(t0);
    job.env.set_parallelism(2).set_clock(clock.shared());
    let metrics = job.env.metrics();
    let run = tokio::spawn({
        let (env, metrics) = (job.env.clone(), metrics.clone());
        async move { env.execute_with("q12", &metrics, Default::default()).await }
    });
    let (mut socket, _) = listener.accept().await.unwrap();
    let window_in = || -> u64 {
        metrics
            .snapshot()
            .iter()
            .filter(|n| n.name.contains("window-tumble"))
            .map(|n| n.records_in)
            .sum()
    };
    let mut want: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    let mut sent = 0u64;
    for burst in 0..3i64 {
        let mut lines = String::new();
        for i in 0..(40 + burst * 10) {
            let bidder = (i * 7 + burst) % 9;
            lines.push_str(&format!(
                "{{\"auction\":{i},\"bidder\":{bidder},\"price\":{},\"dateTime\":{},\"extra\":\"\"}}\n",
                i * 3,
                t0 + i
            ));
            if burst < 2 {
                *want.entry((bidder, t0 + burst * 10_000)).or_default() += 1;
            }
            sent += 1;
        }
        socket.write_all(lines.as_bytes()).await.unwrap();
        socket.flush().await.unwrap();
        crate::common::eventually(|| window_in() >= sent).await;
        if burst < 2 {
            clock.advance(10_000);
        }
    }
    drop(socket);
    run.await.unwrap().unwrap();
    let mut got: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for line in read_lines(&out) {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let start = crate::common::timed::millis(&v["starttime"]);
        assert_eq!(crate::common::timed::millis(&v["endtime"]), start + 10_000);
        got.insert((v["bidder"].as_i64().unwrap(), start), v["bid_count"].as_i64().unwrap());
    }
    assert_eq!(got, want);
}

/// Runs `query` after `SET 'table.exec.state.ttl' = '10 s'` over rows `(k, side, v)` arriving
/// on a socket in bursts, the job's clock set to each burst's time first; waits after each burst
/// until the node of kind `node` (its name's end) has processed it. Returns the query's rows
/// (its changelog with `changelog`) as JSON lines, through the Table API.
async fn with_state_ttl(query: &str, changelog: bool, node: &str, bursts: &[Burst]) -> Vec<String> {
    use tokio::io::AsyncWriteExt;
    use weir::prelude::*;
    use weir::sql::table_env::TableEnvironment;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let env = StreamExecutionEnvironment::new();
    let t0 = 1_700_000_000_000i64;
    let clock = weir::contract::clock::ManualClock::new(t0);
    env.set_parallelism(2).set_clock(clock.shared());
    let tenv = TableEnvironment::create(&env);
    tenv.execute_sql("SET 'table.exec.state.ttl' = '10 s'").unwrap();
    tenv.execute_sql(&format!(
        "CREATE TABLE ev (k BIGINT, side VARCHAR, v BIGINT)
           WITH ('connector' = 'socket', 'hostname' = '127.0.0.1', 'port' = '{port}', 'format' = 'json')"
    ))
    .unwrap();
    let table = tenv.sql_query(query).unwrap();
    let rows = Collect::new();
    let stream = if changelog {
        tenv.to_changelog_stream(&table)
    } else {
        tenv.to_data_stream(&table)
    };
    stream.unwrap().add_sink(rows.clone());
    let metrics = env.metrics();
    let run = tokio::spawn({
        let (env, metrics) = (env.clone(), metrics.clone());
        async move { env.execute_with("ttl", &metrics, Default::default()).await }
    });
    let (mut socket, _) = listener.accept().await.unwrap();
    let processed = || -> u64 {
        metrics
            .snapshot()
            .iter()
            .filter(|n| n.name.ends_with(&format!("-{node}")))
            .map(|n| n.records_in)
            .sum()
    };
    let mut sent = 0u64;
    for (at, burst) in bursts {
        clock.set(t0 + at);
        let mut lines = String::new();
        for (k, side, v) in *burst {
            lines.push_str(&format!("{{\"k\":{k},\"side\":\"{side}\",\"v\":{v}}}\n"));
            sent += 1;
        }
        socket.write_all(lines.as_bytes()).await.unwrap();
        socket.flush().await.unwrap();
        crate::common::eventually(|| processed() >= sent).await;
    }
    drop(socket);
    run.await.unwrap().unwrap();
    rows.rows_json()
}

/// A burst of a state-TTL test: when it arrives (ms after the start) and its rows (k, side, v).
type Burst = (i64, &'static [(i64, &'static str, i64)]);

/// The rows of a state-TTL test: key 1's rows at 0 s expire at 10 s; key 2 gets a second left
/// row at 6 s, which outlives the first.
const TTL_BURSTS: &[Burst] = &[
    (0, &[(1, "L", 10), (2, "L", 20), (1, "R", 100)]),
    (6_000, &[(2, "L", 21)]),
    (12_000, &[(1, "R", 101), (2, "R", 200)]),
];

/// `SET 'table.exec.state.ttl'`: a regular join's rows leave its state a TTL (processing time,
/// on the job's clock) after their last write, each on its own, as in Flink: later rows of the
/// other side no longer meet them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_ttl_drops_a_joins_rows_not_written_for_the_ttl() {
    let lines = with_state_ttl(
        "SELECT l.k, l.v AS lv, r.v AS rv FROM ev AS l JOIN ev AS r ON l.k = r.k
         WHERE l.side = 'L' AND r.side = 'R'",
        false,
        "join",
        TTL_BURSTS,
    )
    .await;
    let mut got: Vec<(i64, i64, i64)> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["k"].as_i64().unwrap(),
                v["lv"].as_i64().unwrap(),
                v["rv"].as_i64().unwrap(),
            )
        })
        .collect();
    got.sort();
    // Without the TTL: also (1, 10, 101) and (2, 20, 200).
    assert_eq!(got, [(1, 10, 100), (2, 21, 200)]);
}

/// `SET 'table.exec.state.ttl'` on a `GROUP BY`: a group not updated for the TTL starts afresh
/// with `+I`, without retracting its old result (Flink's behaviour); one updated within it
/// counts on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_ttl_restarts_a_group_not_updated_for_the_ttl() {
    let lines = with_state_ttl(
        "SELECT k, COUNT(*) AS n FROM ev GROUP BY k",
        true,
        "group-aggregate",
        TTL_BURSTS,
    )
    .await;
    let mut last: BTreeMap<i64, (i64, String)> = BTreeMap::new();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let op = v["op"].as_str().unwrap_or("+I").to_string();
        if op.starts_with('+') {
            last.insert(v["k"].as_i64().unwrap(), (v["n"].as_i64().unwrap(), op));
        }
    }
    // Without the TTL key 1 would end at 3 (+U).
    assert_eq!(last[&1], (1, "+I".to_string()), "{lines:?}");
    assert_eq!(last[&2], (3, "+U".to_string()), "{lines:?}");
}

/// The Table API in Rust: a DataStream registered as a table, queried with SQL, and the results
/// back as streams — append-only as rows, the updating one as a changelog — beside an INSERT, all
/// in one job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_api_mixes_sql_with_data_streams() {
    use weir::prelude::*;
    use weir::sql::table_env::TableEnvironment;
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let numbers = env.add_source(crate::common::numbers(1_000, 7)).name("numbers");
    let tenv = TableEnvironment::create(&env);
    tenv.create_temporary_view("numbers", &numbers).await.unwrap();
    let evens = tenv.sql_query("SELECT id, k FROM numbers WHERE id % 2 = 0").unwrap();
    assert_eq!(evens.columns(), ["id", "k"]);
    let rows = Collect::new();
    tenv.to_data_stream(&evens).unwrap().add_sink(rows.clone());
    let totals = tenv
        .sql_query("SELECT k, COUNT(*) AS n, SUM(v) AS total FROM numbers GROUP BY k")
        .unwrap();
    let e = tenv.to_data_stream(&totals).err().unwrap().to_string();
    assert!(e.contains("to_changelog_stream"), "{e}");
    let changes = Collect::new();
    tenv.to_changelog_stream(&totals).unwrap().add_sink(changes.clone());
    let big = Collect::new();
    let from_stream = tenv.from_data_stream(&numbers).await.unwrap();
    tenv.to_data_stream(&from_stream)
        .unwrap()
        .filter_expr("v >= 500")
        .add_sink(big.clone());
    env.execute_async("table-api").await.unwrap();

    assert_eq!(rows.len(), 500);
    let all: Vec<serde_json::Value> = big
        .rows_json()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(all.iter().all(|v| v["v"].as_i64().unwrap() >= 500));
    // The changelog applied gives the table.
    let mut table: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for line in changes.rows_json() {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let row = (v["n"].as_i64().unwrap(), v["total"].as_i64().unwrap());
        match v["op"].as_str().unwrap() {
            "+I" | "+U" => {
                table.insert(v["k"].as_i64().unwrap(), row);
            }
            _ => {
                table.remove(&v["k"].as_i64().unwrap());
            }
        }
    }
    let mut want: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    let source_rows = {
        // The same rows again, straight from the generator, for the reference.
        let env = StreamExecutionEnvironment::new();
        let c = Collect::new();
        env.add_source(crate::common::numbers(1_000, 7)).add_sink(c.clone());
        env.execute_async("reference").await.unwrap();
        c.rows_json()
    };
    for line in source_rows {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let e = want.entry(v["k"].as_i64().unwrap()).or_default();
        e.0 += 1;
        e.1 += v["v"].as_i64().unwrap();
    }
    assert_eq!(table, want);
}

/// A GROUP BY of a GROUP BY: the outer aggregate takes the inner one's retractions (a key's
/// count moves from one bucket to the next), with COUNT, SUM, MIN and MAX retracting; the
/// changelog applied is the reference's final table.
#[test]
fn an_aggregate_over_an_updating_query_retracts_and_ends_at_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let mut seed = 3u64;
    let mut events = Vec::new();
    for _ in 0..2_000 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        events.push(((seed >> 33) as i64 % 40, (seed >> 45) as i64 % 100));
    }
    let text: String = events
        .iter()
        .map(|(k, v)| format!("{{\"k\":{k},\"v\":{v}}}\n"))
        .collect();
    std::fs::write(input.join("events.jsonl"), text).unwrap();
    let stdout = run_printed(
        dir.path(),
        &format!(
            "SET 'parallelism.default' = '2';
CREATE TABLE events (k BIGINT, v BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE hist (n BIGINT, keys BIGINT, total BIGINT, lo BIGINT, hi BIGINT) WITH ('connector' = 'print');
INSERT INTO hist
SELECT n, COUNT(*), SUM(total), MIN(k), MAX(k)
FROM (SELECT k, COUNT(*) AS n, SUM(v) AS total FROM events GROUP BY k)
GROUP BY n;",
            input.display()
        ),
    );
    let mut table: BTreeMap<i64, (i64, i64, i64, i64)> = BTreeMap::new();
    let mut deletes = 0;
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let n = v["n"].as_i64().unwrap();
        let row = (
            v["keys"].as_i64().unwrap(),
            v["total"].as_i64().unwrap(),
            v["lo"].as_i64().unwrap(),
            v["hi"].as_i64().unwrap(),
        );
        match v["op"].as_str().unwrap() {
            "+I" | "+U" => {
                table.insert(n, row);
            }
            op => {
                deletes += usize::from(op == "-D");
                assert_eq!(table.remove(&n), Some(row), "{op} retracts the row it names: {line}");
            }
        }
    }
    let mut inner: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (k, v) in &events {
        let e = inner.entry(*k).or_default();
        e.0 += 1;
        e.1 += v;
    }
    let mut want: BTreeMap<i64, (i64, i64, i64, i64)> = BTreeMap::new();
    for (k, (n, total)) in inner {
        let e = want.entry(n).or_insert((0, 0, i64::MAX, i64::MIN));
        e.0 += 1;
        e.1 += total;
        e.2 = e.2.min(k);
        e.3 = e.3.max(k);
    }
    assert_eq!(table, want);
    assert!(deletes > 0, "buckets a count left were deleted");
}

/// Parquet through the filesystem connector: a SQL job writes events as Parquet (exactly-once
/// part files), a second reads them back into JSON — on local disk and on the S3 server.
#[test]
fn parquet_files_are_written_and_read_back_locally_and_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    let (input, events) = events_file(dir.path());
    let bucket = std::env::var("WEIR_S3_BUCKET").expect("WEIR_S3_BUCKET is set by scripts/test (S3 test server)");
    let places = [
        dir.path().join("parquet").display().to_string(),
        format!("s3://{bucket}/sql-parquet-{}", std::process::id()),
    ];
    for place in places {
        let write = format!(
            "SET 'execution.checkpointing.interval' = '100ms';
SET 'execution.checkpointing.dir' = '{chk}';
CREATE TABLE events (k BIGINT, v BIGINT, ts TIMESTAMP(3)) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
CREATE TABLE stored (k BIGINT, v BIGINT, ts TIMESTAMP(3), label STRING, price DECIMAL(10, 2))
  WITH ('connector' = 'filesystem', 'path' = '{place}', 'format' = 'parquet');
INSERT INTO stored SELECT k, v, ts, CONCAT('k', CAST(k AS STRING)), CAST(v AS DECIMAL(10, 2)) / 4 FROM events;",
            chk = dir.path().join("chk").display(),
            input = input.display(),
        );
        run_sql(&write, 2);
        let out = dir.path().join(format!("back-{}", place.len()));
        let read = format!(
            "CREATE TABLE stored (k BIGINT, v BIGINT, ts TIMESTAMP(3), label STRING, price DECIMAL(10, 2))
  WITH ('connector' = 'filesystem', 'path' = '{place}', 'format' = 'parquet');
CREATE TABLE back (k BIGINT, v BIGINT, ts BIGINT, label STRING, price DOUBLE)
  WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
INSERT INTO back SELECT k, v, CAST(ts AS BIGINT), label, CAST(price AS DOUBLE) FROM stored;",
            out.display()
        );
        run_sql(&read, 3);
        let mut got: Vec<(i64, i64, i64, String, f64)> = read_lines(&out)
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["k"].as_i64().unwrap(),
                    v["v"].as_i64().unwrap(),
                    v["ts"].as_i64().unwrap(),
                    v["label"].as_str().unwrap().to_string(),
                    v["price"].as_f64().unwrap(),
                )
            })
            .collect();
        got.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let mut want: Vec<(i64, i64, i64, String, f64)> = events
            .iter()
            .map(|(k, v, t)| (*k, *v, *t, format!("k{k}"), (*v as f64 / 4.0 * 100.0).round() / 100.0))
            .collect();
        want.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(got, want, "{place}");
    }
}

/// An updating query into files in Debezium JSON: each row an `after` (op `c`) or a retracted
/// `before` (op `d`); the files replayed give the final table.
#[test]
fn an_updating_query_writes_debezium_json_files_that_replay_to_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let (input, events) = events_file(dir.path());
    let out = dir.path().join("cdc");
    run_sql(
        &format!(
            "CREATE TABLE events (k BIGINT, v BIGINT, ts TIMESTAMP(3)) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE cdc (k BIGINT, n BIGINT, total BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'debezium-json');
INSERT INTO cdc SELECT k, COUNT(*), SUM(v) FROM events GROUP BY k;",
            input.display(),
            out.display()
        ),
        2,
    );
    // Replayed per subtask file (a key's changes are in order within the subtask that owns it).
    let mut table: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    let mut lines = Vec::new();
    for f in std::fs::read_dir(&out).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        lines.extend(text.lines().map(String::from));
    }
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let row = |r: &serde_json::Value| (r["n"].as_i64().unwrap(), r["total"].as_i64().unwrap());
        match v["op"].as_str().unwrap() {
            "c" => {
                table.insert(v["after"]["k"].as_i64().unwrap(), row(&v["after"]));
            }
            "d" => {
                let k = v["before"]["k"].as_i64().unwrap();
                assert_eq!(table.remove(&k), Some(row(&v["before"])), "{line}");
            }
            other => panic!("op {other}"),
        }
    }
    let mut want: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (k, v, _) in &events {
        let e = want.entry(*k).or_default();
        e.0 += 1;
        e.1 += v;
    }
    assert_eq!(table, want);
}

/// A table in `'format' = 'debezium-json'` is a changelog source (as Flink reads a CDC topic):
/// creates and snapshot reads insert, updates retract and re-insert, deletes retract. An
/// aggregate over it ends at the table its changes describe; changes that cannot be read go to
/// the dead-letter output with the reason, and the job goes on.
#[test]
fn a_debezium_json_source_is_a_changelog_that_aggregates_to_the_table() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("cdc")).unwrap();
    let change = |before: Option<(i64, &str, i64)>, after: Option<(i64, &str, i64)>, op: &str| {
        let row = |r: Option<(i64, &str, i64)>| match r {
            Some((id, owner, amount)) => serde_json::json!({"id": id, "owner": owner, "amount": amount}),
            None => serde_json::Value::Null,
        };
        serde_json::json!({"before": row(before), "after": row(after), "op": op, "ts_ms": 0}).to_string()
    };
    // Accounts 1..=40 created for owners o0..o4, every third updated (amount doubled), every
    // fifth deleted; then one update without its `before` image and one line that is not JSON.
    let mut lines = Vec::new();
    let mut live: BTreeMap<i64, (String, i64)> = BTreeMap::new();
    for id in 1..=40i64 {
        let owner = format!("o{}", id % 5);
        let op = if id % 2 == 0 { "r" } else { "c" };
        lines.push(change(None, Some((id, &owner, id * 10)), op));
        live.insert(id, (owner, id * 10));
    }
    for id in (3..=40i64).step_by(3) {
        let (owner, amount) = live[&id].clone();
        lines.push(change(Some((id, &owner, amount)), Some((id, &owner, amount * 2)), "u"));
        live.insert(id, (owner, amount * 2));
    }
    for id in (5..=40i64).step_by(5) {
        let (owner, amount) = live.remove(&id).unwrap();
        lines.push(change(Some((id, &owner, amount)), None, "d"));
    }
    lines.push(change(None, Some((1, "o1", 999)), "u"));
    lines.push("not json".into());
    std::fs::write(dir.path().join("cdc/accounts.jsonl"), lines.join("\n") + "\n").unwrap();

    let stdout = run_printed(
        dir.path(),
        "CREATE TABLE accounts (id BIGINT, owner VARCHAR, amount BIGINT) WITH (\n\
           'connector' = 'filesystem', 'path' = 'cdc', 'format' = 'debezium-json');\n\
         CREATE TABLE totals (owner VARCHAR, n BIGINT, total BIGINT, top BIGINT) WITH ('connector' = 'print');\n\
         INSERT INTO totals SELECT owner, COUNT(*), SUM(amount), MAX(amount) FROM accounts GROUP BY owner;\n",
    );
    let mut table: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let owner = v["owner"].as_str().unwrap().to_string();
        let row = (
            v["n"].as_i64().unwrap(),
            v["total"].as_i64().unwrap(),
            v["top"].as_i64().unwrap(),
        );
        match v["op"].as_str().unwrap() {
            "+I" | "+U" => {
                table.insert(owner, row);
            }
            "-U" | "-D" => assert_eq!(table.remove(&owner), Some(row), "{line}"),
            other => panic!("op {other}"),
        }
    }
    let mut want: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    for (owner, amount) in live.values() {
        let e = want.entry(owner.clone()).or_insert((0, 0, i64::MIN));
        e.0 += 1;
        e.1 += amount;
        e.2 = e.2.max(*amount);
    }
    assert_eq!(table, want);
    // Both bad changes are in the dead-letter output, with their reasons.
    let dead: Vec<String> = std::fs::read_dir(dir.path().join(".weir"))
        .unwrap()
        .flat_map(|job| read_lines(&job.unwrap().path().join("dead-letter")))
        .collect();
    assert_eq!(dead.len(), 2, "{dead:?}");
    let all = dead.join("\n");
    assert!(all.contains("op 'u' without 'before'"), "{all}");
    assert!(all.contains("not json"), "{all}");
}

/// `0.908 * price` (Nexmark q1) is `DECIMAL(23, 3)` as in Flink: printed exactly, without
/// float noise (a double would print `54575766.760000005`).
#[test]
fn decimal_literals_multiply_exactly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    std::fs::write(
        dir.path().join("in/bids.jsonl"),
        "{\"price\":60105470}\n{\"price\":1}\n{\"price\":999}\n",
    )
    .unwrap();
    let stdout = run_printed(
        dir.path(),
        "CREATE TABLE bids (price BIGINT) WITH ('connector' = 'filesystem', 'path' = 'in', 'format' = 'json');\n\
         CREATE TABLE out (price DECIMAL(23, 3)) WITH ('connector' = 'print');\n\
         INSERT INTO out SELECT 0.908 * price FROM bids;\n",
    );
    let mut lines: Vec<String> = stdout.lines().map(String::from).collect();
    lines.sort();
    assert_eq!(
        lines,
        ["{\"price\":0.908}", "{\"price\":54575766.760}", "{\"price\":907.092}"]
    );
}

/// `n` rows `(k, v, ts ms)` from `seed`, keys below `keys`, values below `values`, timestamps in
/// order from 1,000,000 ms with gaps below `gap`, written as JSON lines under `dir/name`.
fn timed_rows(
    dir: &Path,
    name: &str,
    seed: u64,
    n: usize,
    (keys, values, gap): (i64, i64, i64),
) -> (std::path::PathBuf, Vec<(i64, i64, i64)>) {
    let (mut seed, mut t) = (seed, 1_000_000i64);
    let mut rows = Vec::new();
    for _ in 0..n {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        t += (seed >> 50) as i64 % gap;
        rows.push(((seed >> 33) as i64 % keys, (seed >> 40) as i64 % values, t));
    }
    let path = dir.join(name);
    std::fs::create_dir_all(&path).unwrap();
    let text: String = rows
        .iter()
        .map(|(k, v, t)| format!("{{\"k\":{k},\"v\":{v},\"ts\":{t}}}\n"))
        .collect();
    std::fs::write(path.join("events.jsonl"), text).unwrap();
    (path, rows)
}

/// A join whose condition bounds one side's rowtime by the other's runs as an interval join (as
/// in Flink, its state cleared by the watermark; an append-only result), the rest of the
/// condition filtering the pairs; the pairs equal a reference at parallelism 1, 2 and 4.
#[test]
fn a_time_bounded_join_runs_as_an_interval_join_and_matches_a_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, a) = timed_rows(tmp.path(), "a", 11, 600, (4, 50, 700));
    let (b_dir, b) = timed_rows(tmp.path(), "b", 23, 500, (4, 50, 700));
    let reference = |bounds: std::ops::RangeInclusive<i64>| {
        let mut want: Vec<(i64, i64, i64, i64)> = Vec::new();
        for (ak, av, at) in &a {
            for (bk, bv, bt) in &b {
                if ak == bk && bounds.contains(&(bt - at)) && av != bv {
                    want.push((*av, *bv, *at, *bt));
                }
            }
        }
        want.sort();
        assert!(want.len() > 200, "a meaningful reference: {}", want.len());
        want
    };
    // The same bounds as BETWEEN, and as comparisons with the sides swapped and the upper bound
    // strict (1 ms less).
    let forms = [
        (
            "y.ts BETWEEN x.ts - INTERVAL '2' SECOND AND x.ts + INTERVAL '1' SECOND",
            reference(-2_000..=1_000),
        ),
        (
            "x.ts - INTERVAL '2' SECOND <= y.ts AND x.ts + INTERVAL '1' SECOND > y.ts",
            reference(-2_000..=999),
        ),
    ];
    for (p, (condition, want)) in [(1, &forms[0]), (2, &forms[1]), (4, &forms[0]), (4, &forms[1])] {
        let out = tmp.path().join(format!("out-{p}"));
        let table = |name: &str, dir: &Path| {
            format!(
                "CREATE TABLE {name} (k BIGINT, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '0' SECOND)\n\
                 WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n",
                dir.display()
            )
        };
        let sql = format!(
            "{}{}CREATE TABLE results (av BIGINT, bv BIGINT, ats TIMESTAMP(3), bts TIMESTAMP(3))\n\
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n\
             INSERT INTO results\n\
             SELECT x.v, y.v, x.ts, y.ts FROM a x JOIN b y\n\
             ON x.k = y.k AND {condition} AND x.v <> y.v;",
            table("a", &a_dir),
            table("b", &b_dir),
            out.display()
        );
        let _ = std::fs::remove_dir_all(&out);
        let job = weir::pipeline::build_sql(&sql, "job.sql", "job").unwrap();
        job.env.set_parallelism(p);
        let r = job.env.execute("job").unwrap();
        assert!(
            r.metrics.iter().any(|n| n.name.ends_with("-interval-join")),
            "planned as an interval join: {:?}",
            r.metrics.iter().map(|n| &n.name).collect::<Vec<_>>()
        );
        let mut got: Vec<(i64, i64, i64, i64)> = read_lines(&out)
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let ms = |f: &str| crate::common::timed::millis(&v[f]);
                (
                    v["av"].as_i64().unwrap(),
                    v["bv"].as_i64().unwrap(),
                    ms("ats"),
                    ms("bts"),
                )
            })
            .collect();
        got.sort();
        assert_eq!(&got, want, "parallelism {p}: {condition}");
    }
}

/// LEFT, RIGHT and FULL joins bounded by time run as outer interval joins, as in Flink: the
/// pairs as an inner join's, and each row that met none shown once, padded with nulls, when the
/// watermark passes its last chance — appends only; equal to a reference at parallelism 1 and 4.
#[test]
fn an_outer_time_bounded_join_pads_the_rows_that_met_none() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, a) = timed_rows(tmp.path(), "a", 5, 300, (6, 50, 900));
    let (b_dir, b) = timed_rows(tmp.path(), "b", 9, 250, (6, 50, 900));
    type Row = (Option<i64>, Option<i64>, Option<i64>, Option<i64>);
    let reference = |left: bool, right: bool| {
        let met = |(k, _, t): &(i64, i64, i64), (k2, _, t2): &(i64, i64, i64)| {
            k == k2 && (-2_000..=1_000).contains(&(t2 - t))
        };
        let mut want: Vec<Row> = Vec::new();
        for x in &a {
            for y in b.iter().filter(|y| met(x, y)) {
                want.push((Some(x.1), Some(y.1), Some(x.2), Some(y.2)));
            }
            if left && !b.iter().any(|y| met(x, y)) {
                want.push((Some(x.1), None, Some(x.2), None));
            }
        }
        for y in &b {
            if right && !a.iter().any(|x| met(x, y)) {
                want.push((None, Some(y.1), None, Some(y.2)));
            }
        }
        want.sort();
        want
    };
    let table = |name: &str, dir: &Path| {
        format!(
            "CREATE TABLE {name} (k BIGINT, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '0' SECOND)\n\
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n",
            dir.display()
        )
    };
    for (kind, left, right) in [("LEFT", true, false), ("RIGHT", false, true), ("FULL", true, true)] {
        let want = reference(left, right);
        assert!(
            want.iter().filter(|r| r.0.is_none() || r.1.is_none()).count() > 20 && want.len() > 200,
            "a meaningful reference"
        );
        for p in [1, 4] {
            let out = tmp.path().join(format!("out-{kind}-{p}"));
            let sql = format!(
                "{}{}CREATE TABLE results (av BIGINT, bv BIGINT, ats TIMESTAMP(3), bts TIMESTAMP(3))\n\
                 WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n\
                 INSERT INTO results SELECT x.v, y.v, x.ts, y.ts FROM a x {kind} JOIN b y\n\
                 ON x.k = y.k AND y.ts BETWEEN x.ts - INTERVAL '2' SECOND AND x.ts + INTERVAL '1' SECOND;",
                table("a", &a_dir),
                table("b", &b_dir),
                out.display()
            );
            let job = weir::pipeline::build_sql(&sql, "job.sql", "job").unwrap();
            job.env.set_parallelism(p);
            let r = job.env.execute("job").unwrap();
            assert!(
                r.metrics.iter().any(|n| n.name.ends_with("-interval-join")),
                "{kind}: an interval join"
            );
            let mut got: Vec<Row> = read_lines(&out)
                .iter()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    let ms = |f: &str| (!v[f].is_null()).then(|| crate::common::timed::millis(&v[f]));
                    (v["av"].as_i64(), v["bv"].as_i64(), ms("ats"), ms("bts"))
                })
                .collect();
            got.sort();
            assert_eq!(got, want, "{kind} JOIN at parallelism {p}");
        }
    }
}

/// A lookup join's output rows `(k, v, name)`, sorted.
fn named_rows(out: &Path) -> Vec<(i64, i64, Option<String>)> {
    let mut rows: Vec<(i64, i64, Option<String>)> = read_lines(out)
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let name = v["name"].as_str().map(str::to_string);
            (v["k"].as_i64().unwrap(), v["v"].as_i64().unwrap(), name)
        })
        .collect();
    rows.sort();
    rows
}

/// A table joined `FOR SYSTEM_TIME AS OF` a stream's event time is an event-time temporal join
/// against a versioned table (a primary key and a watermark): each event meets the version of
/// its key current at its time (INNER drops events before their key's first version, LEFT keeps
/// them with nulls), equal to a reference at parallelism 1, 2 and 4; a table that is not
/// versioned, or a join on part of its key, is refused saying why.
#[test]
fn a_temporal_join_meets_the_version_current_at_each_events_time() {
    let dir = tempfile::tempdir().unwrap();
    let (input, events) = events_file(dir.path());
    // Versions of keys 0..6 (the events' keys are 0..5), spread over the events' time.
    let (rates_dir, rates) = timed_rows(dir.path(), "rates", 23, 150, (6, 1_000, 9_000));
    let ddl = |out: &Path, versioned: &str| {
        format!(
            "{}CREATE TABLE rates (k BIGINT, v BIGINT, ts TIMESTAMP(3){versioned})
               WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n",
            table_ddl(&input, out, "k BIGINT, v BIGINT, rate BIGINT"),
            rates_dir.display()
        )
    };
    let versioned = ", WATERMARK FOR ts AS ts - INTERVAL '0' SECOND, PRIMARY KEY (k) NOT ENFORCED";
    for (kind, outer) in [("JOIN", false), ("LEFT JOIN", true)] {
        let mut want: Vec<(i64, i64, Option<i64>)> = Vec::new();
        for (k, v, t) in &events {
            // The latest version at or before t (of equal times, the later line).
            let version = rates
                .iter()
                .filter(|(rk, _, rt)| rk == k && rt <= t)
                .max_by_key(|(_, _, rt)| *rt)
                .map(|(_, rv, rt)| {
                    rates
                        .iter()
                        .rev()
                        .find(|(k2, _, t2)| k2 == k && t2 == rt)
                        .map_or(*rv, |r| r.1)
                });
            match version {
                Some(r) => want.push((*k, *v, Some(r))),
                None if outer => want.push((*k, *v, None)),
                None => {}
            }
        }
        want.sort();
        assert!(want.iter().any(|w| w.2.is_some()) && want.len() > 300, "the data joins");
        for p in [1, 2, 4] {
            let out = dir.path().join(format!("out-{p}-{outer}"));
            run_sql(
                &format!(
                    "{}INSERT INTO results SELECT e.k, e.v, r.v AS rate FROM events AS e \
                     {kind} rates FOR SYSTEM_TIME AS OF e.ts AS r ON e.k = r.k;",
                    ddl(&out, versioned)
                ),
                p,
            );
            let mut got: Vec<(i64, i64, Option<i64>)> = read_lines(&out)
                .iter()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    (v["k"].as_i64().unwrap(), v["v"].as_i64().unwrap(), v["rate"].as_i64())
                })
                .collect();
            got.sort();
            assert_eq!(got, want, "{kind} at parallelism {p}");
        }
    }
    let out = dir.path().join("never");
    let join = "INSERT INTO results SELECT e.k, e.v, r.v AS rate FROM events AS e \
                JOIN rates FOR SYSTEM_TIME AS OF e.ts AS r ON e.k = r.k;";
    let cases = [
        (
            ddl(&out, ", WATERMARK FOR ts AS ts"),
            join.to_string(),
            "has no PRIMARY KEY",
        ),
        (
            ddl(&out, ", PRIMARY KEY (k) NOT ENFORCED"),
            join.to_string(),
            "has no WATERMARK",
        ),
        (
            ddl(&out, versioned),
            join.replace("ON e.k = r.k", "ON e.v = r.v"),
            "'k' is not compared with '='",
        ),
        (
            ddl(&out, versioned),
            join.replace("e.ts AS r", "e.nope AS r"),
            "not a column of the join's left side",
        ),
    ];
    for (ddl, statement, want) in cases {
        let e = weir::pipeline::build_sql(&format!("{ddl}{statement}"), "job.sql", "job")
            .err()
            .unwrap_or_else(|| panic!("{statement} planned"))
            .to_string();
        assert!(e.contains(want), "{statement}: {e}");
    }
}

/// A table joined `FOR SYSTEM_TIME AS OF` the stream's processing time is a lookup join: each
/// event meets the dimension rows of its key (INNER drops the keys the table lacks, LEFT keeps
/// them with nulls), at parallelism 1 and 3; what it cannot do is refused, saying why.
#[test]
fn a_lookup_join_reads_a_file_table_and_refuses_what_it_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let (input, events) = events_file(dir.path());
    let dims = dir.path().join("dims.csv");
    // Keys 0, 1 and 2 (twice: both rows match); the events' keys 3 and 4 are not there.
    std::fs::write(&dims, "0,zero\n1,one\n2,two\n2,deux\n").unwrap();
    let names: HashMap<i64, Vec<&str>> = HashMap::from([(0, vec!["zero"]), (1, vec!["one"]), (2, vec!["two", "deux"])]);
    let ddl = |out: &Path| {
        format!(
            "{}CREATE TABLE dims (k BIGINT, name VARCHAR) WITH ('connector' = 'filesystem', 'path' = '{}', \
             'format' = 'csv', 'lookup.join.cache.ttl' = '10 min');\n\
             CREATE VIEW timed AS SELECT *, PROCTIME() AS pt FROM events;\n",
            table_ddl(&input, out, "k BIGINT, v BIGINT, name VARCHAR"),
            dims.display()
        )
    };
    for (kind, outer) in [("JOIN", false), ("LEFT JOIN", true)] {
        let mut want: Vec<(i64, i64, Option<String>)> = Vec::new();
        for (k, v, _) in &events {
            match names.get(k) {
                Some(ns) => want.extend(ns.iter().map(|n| (*k, *v, Some(n.to_string())))),
                None if outer => want.push((*k, *v, None)),
                None => {}
            }
        }
        want.sort();
        for p in [1, 3] {
            let out = dir.path().join(format!("out-{p}-{outer}"));
            run_sql(
                &format!(
                    "{}INSERT INTO results SELECT e.k, e.v, d.name FROM timed AS e \
                     {kind} dims FOR SYSTEM_TIME AS OF e.pt AS d ON e.k = d.k;",
                    ddl(&out)
                ),
                p,
            );
            assert_eq!(named_rows(&out), want, "{kind} at parallelism {p}");
        }
    }
    let out = dir.path().join("never");
    let cases = [
        (
            "INSERT INTO results SELECT e.k, e.v, d.name FROM timed AS e \
             JOIN dims FOR SYSTEM_TIME AS OF e.ts AS d ON e.k = d.k;",
            "has no WATERMARK",
        ),
        (
            "INSERT INTO results SELECT d.k, 0, d.name FROM dims FOR SYSTEM_TIME AS OF PROCTIME() AS d;",
            "cannot be read on its own",
        ),
        (
            "INSERT INTO results SELECT e.k, e.v, d.name FROM timed AS e \
             FULL JOIN dims FOR SYSTEM_TIME AS OF e.pt AS d ON e.k = d.k;",
            "INNER or LEFT",
        ),
        (
            "INSERT INTO results SELECT e.k, e.v, d.name FROM timed AS e \
             JOIN timed FOR SYSTEM_TIME AS OF e.pt AS d ON e.k = d.k;",
            "only a table declared with CREATE TABLE",
        ),
    ];
    for (statement, want) in cases {
        let e = weir::pipeline::build_sql(&format!("{}{statement}", ddl(&out)), "job.sql", "job")
            .err()
            .unwrap_or_else(|| panic!("{statement} planned"))
            .to_string();
        assert!(e.contains(want), "{statement}: {e}");
    }
}

/// Serves `GET /users?k=N` until the test ends: the row of user `N` for N < 3, none for the
/// others; counts the requests.
fn users_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/users", listener.local_addr().unwrap());
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = asked.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                    break;
                }
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let k: i64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.split_once("k="))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(-1);
            let body = if (0..3).contains(&k) {
                format!("{{\"data\": [{{\"k\": {k}, \"name\": \"user-{k}\"}}]}}")
            } else {
                "{\"data\": []}".to_string()
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, asked)
}

/// A lookup join against an `http` table asks the server for each key once per subtask (its
/// answers cached, a key without rows too) and joins the rows it answers; LEFT keeps the keys
/// it has none for.
#[test]
fn a_lookup_join_asks_an_http_table_for_each_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let (input, events) = events_file(dir.path());
    let (url, asked) = users_server();
    let out = dir.path().join("out");
    let job = format!(
        "{}CREATE TABLE users (k BIGINT, name VARCHAR) WITH ('connector' = 'http', 'url' = '{url}', \
         'format' = 'json', 'json-pointer' = '/data', 'lookup.cache' = 'PARTIAL', \
         'lookup.partial-cache.max-rows' = '100', 'lookup.partial-cache.expire-after-write' = '1 h');\n\
         CREATE VIEW timed AS SELECT *, PROCTIME() AS pt FROM events;\n\
         INSERT INTO results SELECT e.k, e.v, u.name FROM timed AS e \
         LEFT JOIN users FOR SYSTEM_TIME AS OF e.pt AS u ON e.k = u.k;",
        table_ddl(&input, &out, "k BIGINT, v BIGINT, name VARCHAR")
    );
    let mut want: Vec<(i64, i64, Option<String>)> = events
        .iter()
        .map(|(k, v, _)| (*k, *v, (*k < 3).then(|| format!("user-{k}"))))
        .collect();
    want.sort();
    let keys = events
        .iter()
        .map(|e| e.0)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    for p in [1, 3] {
        let out = dir.path().join(format!("out-{p}"));
        asked.store(0, std::sync::atomic::Ordering::SeqCst);
        run_sql(
            &job.replace(
                &format!("'{}'", dir.path().join("out").display()),
                &format!("'{}'", out.display()),
            ),
            p,
        );
        assert_eq!(named_rows(&out), want, "parallelism {p}");
        let n = asked.load(std::sync::atomic::Ordering::SeqCst);
        // Each subtask asks for a key once (an answer with no rows is cached too).
        assert!(
            n >= keys && n <= keys * p,
            "{n} requests for {keys} keys at parallelism {p}"
        );
        if p == 1 {
            assert_eq!(n, keys);
        }
    }
}
