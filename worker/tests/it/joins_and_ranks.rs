//! Regular joins, Top-N and deduplication from SQL over random input, through the Table API:
//! inner, left and full outer joins (with and without a further condition inside them), joins of
//! an updating query (retractions), Top-2 with and without its rank column, keep-first and keep-last deduplication — each changelog applied
//! ends at a reference computed here by nested loops, at parallelism 1, 2 and 4.

use std::collections::BTreeMap;

use crate::common::timed::{Rows, millis};
use proptest::prelude::*;
use weir::prelude::*;
use weir::sql::table_env::TableEnvironment;

/// A multiset of rows (each printed as JSON values joined by `|`).
type Table = BTreeMap<String, usize>;

/// The queries, each with the columns it shows.
const QUERIES: &[(&str, &str, &[&str])] = &[
    (
        "inner",
        "SELECT l.k AS k, l.v AS lv, r.v AS rv FROM l JOIN r ON l.k = r.k",
        &["k", "lv", "rv"],
    ),
    (
        "left",
        "SELECT l.k AS k, l.v AS lv, r.v AS rv FROM l LEFT JOIN r ON l.k = r.k",
        &["k", "lv", "rv"],
    ),
    (
        "full",
        "SELECT l.k AS lk, l.v AS lv, r.k AS rk, r.v AS rv FROM l FULL JOIN r ON l.k = r.k",
        &["lk", "lv", "rk", "rv"],
    ),
    (
        "counted",
        "SELECT l.k AS k, l.v AS lv, c.n AS n FROM l JOIN (SELECT k, COUNT(*) AS n FROM r GROUP BY k) AS c ON l.k = c.k",
        &["k", "lv", "n"],
    ),
    (
        "left_when",
        "SELECT l.k AS k, l.v AS lv, r.v AS rv FROM l LEFT JOIN r ON l.k = r.k AND r.v > l.v",
        &["k", "lv", "rv"],
    ),
    (
        "full_when",
        "SELECT l.k AS lk, l.v AS lv, r.k AS rk, r.v AS rv FROM l FULL JOIN r ON l.k = r.k AND l.v + r.v < 20",
        &["lk", "lv", "rk", "rv"],
    ),
    (
        "left_counted_when",
        "SELECT l.k AS k, l.v AS lv, c.n AS n FROM l LEFT JOIN (SELECT k, COUNT(*) AS n FROM r GROUP BY k) AS c ON l.k = c.k AND c.n > 1",
        &["k", "lv", "n"],
    ),
    (
        "top2",
        "SELECT k, v, ts FROM (SELECT k, v, ts, ROW_NUMBER() OVER (PARTITION BY k ORDER BY v DESC, ts ASC) AS rn FROM l) WHERE rn <= 2",
        &["k", "v", "ts"],
    ),
    (
        "top2_ranked",
        "SELECT k, v, rn FROM (SELECT k, v, ts, ROW_NUMBER() OVER (PARTITION BY k ORDER BY v DESC, ts ASC) AS rn FROM l) WHERE rn <= 2",
        &["k", "v", "rn"],
    ),
    (
        "first",
        "SELECT k, v FROM (SELECT k, v, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts ASC) AS rn FROM l) WHERE rn = 1",
        &["k", "v"],
    ),
    (
        "last",
        "SELECT k, v FROM (SELECT k, v, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts DESC) AS rn FROM l) WHERE rn = 1",
        &["k", "v"],
    ),
];

fn row(values: &[serde_json::Value]) -> String {
    values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("|")
}

fn int(v: i64) -> serde_json::Value {
    serde_json::json!(v)
}

fn add(table: &mut Table, r: String) {
    *table.entry(r).or_default() += 1;
}

/// Each query's final table, computed by nested loops over the rows (`(k, ts, v)`, ts = index).
fn reference(left: &[(i64, i64, i64)], right: &[(i64, i64, i64)]) -> BTreeMap<&'static str, Table> {
    let null = serde_json::Value::Null;
    let mut out: BTreeMap<&str, Table> = QUERIES.iter().map(|(n, _, _)| (*n, Table::new())).collect();
    for &(k, _, lv) in left {
        let matches: Vec<i64> = right.iter().filter(|r| r.0 == k).map(|r| r.2).collect();
        for rv in &matches {
            add(out.get_mut("inner").unwrap(), row(&[int(k), int(lv), int(*rv)]));
            add(out.get_mut("left").unwrap(), row(&[int(k), int(lv), int(*rv)]));
            add(out.get_mut("full").unwrap(), row(&[int(k), int(lv), int(k), int(*rv)]));
        }
        if matches.is_empty() {
            add(out.get_mut("left").unwrap(), row(&[int(k), int(lv), null.clone()]));
            add(
                out.get_mut("full").unwrap(),
                row(&[int(k), int(lv), null.clone(), null.clone()]),
            );
        } else {
            add(
                out.get_mut("counted").unwrap(),
                row(&[int(k), int(lv), int(matches.len() as i64)]),
            );
        }
    }
    for &(k, _, rv) in right {
        if !left.iter().any(|l| l.0 == k) {
            add(
                out.get_mut("full").unwrap(),
                row(&[null.clone(), null.clone(), int(k), int(rv)]),
            );
        }
        if !left.iter().any(|l| l.0 == k && l.2 + rv < 20) {
            add(
                out.get_mut("full_when").unwrap(),
                row(&[null.clone(), null.clone(), int(k), int(rv)]),
            );
        }
    }
    // Outer joins with a further condition: a row meeting none under it is padded.
    for &(k, _, lv) in left {
        let above: Vec<i64> = right.iter().filter(|r| r.0 == k && r.2 > lv).map(|r| r.2).collect();
        for rv in &above {
            add(out.get_mut("left_when").unwrap(), row(&[int(k), int(lv), int(*rv)]));
        }
        if above.is_empty() {
            add(out.get_mut("left_when").unwrap(), row(&[int(k), int(lv), null.clone()]));
        }
        let small: Vec<i64> = right
            .iter()
            .filter(|r| r.0 == k && lv + r.2 < 20)
            .map(|r| r.2)
            .collect();
        for rv in &small {
            add(
                out.get_mut("full_when").unwrap(),
                row(&[int(k), int(lv), int(k), int(*rv)]),
            );
        }
        if small.is_empty() {
            add(
                out.get_mut("full_when").unwrap(),
                row(&[int(k), int(lv), null.clone(), null.clone()]),
            );
        }
        let n = right.iter().filter(|r| r.0 == k).count() as i64;
        let shown = if n > 1 { int(n) } else { null.clone() };
        add(
            out.get_mut("left_counted_when").unwrap(),
            row(&[int(k), int(lv), shown]),
        );
    }
    let mut by_key: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for &(k, t, v) in left {
        by_key.entry(k).or_default().push((t, v));
    }
    for (k, rows) in by_key {
        let mut ranked = rows.clone();
        ranked.sort_by_key(|(t, v)| (-v, *t));
        for (rank, (t, v)) in ranked.iter().take(2).enumerate() {
            add(out.get_mut("top2").unwrap(), row(&[int(k), int(*v), int(*t)]));
            add(
                out.get_mut("top2_ranked").unwrap(),
                row(&[int(k), int(*v), int(rank as i64 + 1)]),
            );
        }
        let first = rows.iter().min_by_key(|(t, _)| *t).unwrap();
        add(out.get_mut("first").unwrap(), row(&[int(k), int(first.1)]));
        let last = rows.iter().max_by_key(|(t, _)| *t).unwrap();
        add(out.get_mut("last").unwrap(), row(&[int(k), int(last.1)]));
    }
    out
}

/// Runs every query in one job at parallelism `p`; each changelog applied.
fn run(left: &[(i64, i64, i64)], right: &[(i64, i64, i64)], batch: usize, p: usize) -> BTreeMap<&'static str, Table> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p).set_batch_size(batch);
        let tenv = TableEnvironment::create(&env);
        for (name, rows) in [("l", left), ("r", right)] {
            let stream = env.add_source(Rows {
                rows: rows.to_vec(),
                batch,
            });
            tenv.create_temporary_view(name, &stream).await.unwrap();
        }
        let mut sinks = Vec::new();
        for (name, sql, columns) in QUERIES {
            let table = tenv.sql_query(sql).unwrap_or_else(|e| panic!("{name}: {e}"));
            let out = Collect::new();
            tenv.to_changelog_stream(&table)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .add_sink(out.clone());
            sinks.push((*name, *columns, out));
        }
        env.execute_async("joins-and-ranks").await.unwrap();
        let mut tables = BTreeMap::new();
        for (name, columns, out) in sinks {
            let mut table = Table::new();
            for line in out.rows_json() {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                // Timestamps back to milliseconds.
                let value = |c: &str| match c {
                    "ts" => int(millis(&v[c])),
                    _ => v[c].clone(),
                };
                let r = row(&columns.iter().map(|c| value(c)).collect::<Vec<_>>());
                match v["op"].as_str().unwrap() {
                    "+I" | "+U" => add(&mut table, r),
                    op => {
                        let n = table
                            .get_mut(&r)
                            .unwrap_or_else(|| panic!("{name}: {op} of a row not in the table: {line}"));
                        *n -= 1;
                        if *n == 0 {
                            table.remove(&r);
                        }
                    }
                }
            }
            tables.insert(name, table);
        }
        tables
    })
}

/// `(k, ts, v)` rows: keys in 0..4 (so keys repeat and some have no partner), ts the index.
fn rows(max: usize) -> impl Strategy<Value = Vec<(i64, i64, i64)>> {
    prop::collection::vec((0i64..4, 0i64..20), 0..max)
        .prop_map(|r| r.into_iter().enumerate().map(|(i, (k, v))| (k, i as i64, v)).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn joins_top_n_and_deduplication_end_at_the_reference_at_any_parallelism(
        left in rows(40), right in rows(30), batch in 1usize..9
    ) {
        let want = reference(&left, &right);
        for p in [1, 2, 4] {
            let got = run(&left, &right, batch, p);
            for (name, _, _) in QUERIES {
                prop_assert_eq!(&got[name], &want[name], "{} at parallelism {}", name, p);
            }
        }
    }
}
