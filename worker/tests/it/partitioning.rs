//! Partitioners through the public API: hash (key groups), range, broadcast, rebalance,
//! shuffle, union.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use weir::keys;
use weir::prelude::*;

/// Records, per subtask of a pass-through operator, the values of column `col`.
/// `(subtask, parallelism, value)` per row seen.
type Seen = Arc<Mutex<Vec<(usize, usize, i64)>>>;

fn tap(stream: &DataStream, col: &'static str) -> (DataStream, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let out = stream.map_batches(move |ctx, batch| {
        let c = batch.column_by_name(col).unwrap().as_primitive::<Int64Type>().clone();
        let mut g = s.lock().unwrap();
        for i in 0..c.len() {
            g.push((ctx.subtask, ctx.parallelism, c.value(i)));
        }
        Ok(batch)
    });
    (out, seen)
}

#[test]
fn hash_partitioning_sends_each_key_to_exactly_its_key_group_owner() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(3).set_max_parallelism(64);
    let src = env.add_source(common::numbers(20_000, 500)).set_parallelism(2);
    let (tapped, seen) = tap(&src.key_by("k"), "k");
    let sink = Collect::new();
    tapped.add_sink(sink.clone());
    env.execute("hash").unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 20_000);
    let mut owner: HashMap<i64, HashSet<usize>> = HashMap::new();
    for (subtask, p, k) in seen.iter() {
        owner.entry(*k).or_default().insert(*subtask);
        // The documented formula: xxh3 of the canonical encoding, key group, Flink's owner.
        let mut buf = vec![0x01];
        buf.extend_from_slice(&k.to_le_bytes());
        let kg = keys::key_group_of_hash(keys::hash_key_bytes(&buf), 64);
        assert_eq!(
            keys::operator_index_for_key_group(kg, 64, *p as u32) as usize,
            *subtask,
            "key {k}"
        );
        let (lo, hi) = keys::key_group_range(*subtask as u32, 64, *p as u32);
        assert!((lo..=hi).contains(&kg));
    }
    assert_eq!(owner.len(), 500);
    assert!(owner.values().all(|s| s.len() == 1), "a key reached two subtasks");
    let used: HashSet<usize> = seen.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(used.len(), 3, "all subtasks get keys");
}

#[test]
fn range_partitioning_follows_the_boundaries() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let src = env.add_source(common::numbers(3_000, 10));
    let ranged = src.partition_by_range("v", vec![300.into(), 700.into()]);
    let (tapped, seen) = tap(&ranged, "v");
    tapped.add_sink(Collect::new());
    env.execute("range").unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3_000);
    for (subtask, p, v) in seen.iter() {
        assert_eq!(*p, 3, "downstream parallelism is the number of ranges");
        let want = if *v < 300 {
            0
        } else if *v < 700 {
            1
        } else {
            2
        };
        assert_eq!(*subtask, want, "v = {v}");
    }
}

#[test]
fn range_partitioning_rejects_unsorted_boundaries_and_wrong_parallelism() {
    let env = StreamExecutionEnvironment::new();
    env.add_source(common::numbers(10, 10))
        .partition_by_range("v", vec![5.into(), 1.into()])
        .print();
    let e = env.execute("bad").unwrap_err().to_string();
    assert!(e.contains("sorted"), "{e}");

    let env = StreamExecutionEnvironment::new();
    env.add_source(common::numbers(10, 10))
        .partition_by_range("v", vec![5.into()])
        .filter_expr("v > 1")
        .set_parallelism(3)
        .print();
    let e = env.execute("bad").unwrap_err().to_string();
    assert!(e.contains("does not match the 2 ranges"), "{e}");
}

#[test]
fn broadcast_gives_every_subtask_every_row() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(3);
    let src = env.add_source(common::numbers(1_000, 10)).set_parallelism(1);
    let (tapped, seen) = tap(&src.broadcast(), "id");
    tapped.add_sink(Collect::new());
    env.execute("broadcast").unwrap();
    let seen = seen.lock().unwrap();
    for s in 0..3 {
        let ids: HashSet<i64> = seen
            .iter()
            .filter(|(sub, _, _)| *sub == s)
            .map(|(_, _, id)| *id)
            .collect();
        assert_eq!(ids.len(), 1_000, "subtask {s}");
    }
}

#[test]
fn rebalance_and_shuffle_spread_rows_and_lose_none() {
    for shuffle in [false, true] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(4).set_batch_size(100);
        let src = env.add_source(common::numbers(10_000, 10)).set_parallelism(1);
        let parted = if shuffle { src.shuffle() } else { src.rebalance() };
        let (tapped, seen) = tap(&parted, "id");
        tapped.add_sink(Collect::new());
        env.execute("spread").unwrap();
        let seen = seen.lock().unwrap();
        let ids: HashSet<i64> = seen.iter().map(|(_, _, id)| *id).collect();
        assert_eq!((seen.len(), ids.len()), (10_000, 10_000));
        for s in 0..4 {
            let n = seen.iter().filter(|(sub, _, _)| *sub == s).count();
            assert!(n >= 1_500, "subtask {s} got only {n} rows (shuffle: {shuffle})");
        }
    }
}

#[test]
fn union_merges_streams_with_equal_schemas() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let a = env.add_source(common::numbers(500, 10)).name("a");
    let b = env.add_source(common::numbers(700, 10)).name("b");
    let sink = Collect::new();
    a.union(&[&b]).filter_expr("v >= 0").add_sink(sink.clone());
    let r = env.execute("union").unwrap();
    assert_eq!(sink.len(), 1_200);
    assert_eq!(r.node("filter").unwrap().records_in, 1_200);

    let env = StreamExecutionEnvironment::new();
    let a = env.add_source(common::numbers(5, 10));
    let b = env.add_source(common::numbers(5, 10)).select(&["id"]);
    a.union(&[&b]).print();
    let e = env.execute("bad-union").unwrap_err().to_string();
    assert!(e.contains("needs equal schemas"), "{e}");
}
