//! Each Nexmark benchmark shape, run small, writes as many rows as Apache Flink's SQL query on
//! the same events. Flink's counts come from the peer kit's validation run (50,000 events at
//! 1,000 events per second of event time, so windows close; p = 1):
//!
//! ```text
//! cd ~/nexmark-peer && .venv/bin/python run.py --validate --events 50000 --rate 1000 --query q0,q1,q2,q5,q7 -p 1
//! ```
//!
//! Its output is committed as `bench/results/2026-12-04-flink-validate-rate1000.txt`. The
//! DataStream shapes of q5 and q7 are rewrites (a window `process` instead of a join), so equal
//! counts are what makes them comparable at all.

use weir_bench::build_at_rate;

/// (shape, Flink's output rows).
const FLINK: &[(&str, u64)] = &[("q0", 46_000), ("q1", 46_000), ("q2", 167), ("q5", 31), ("q7", 5)];

#[test]
fn nexmark_shapes_write_as_many_rows_as_flinks_queries() {
    for p in [1, 2] {
        for (shape, rows) in FLINK {
            let (env, sink) = build_at_rate(shape, 50_000, p, 1_000).unwrap();
            env.execute(shape).unwrap();
            assert_eq!(sink.count(), *rows, "{shape} at parallelism {p}");
        }
    }
}
