//! The Nexmark generator reproduces the Flink peer's test vector A (RESULTS.md of
//! `../shared/peers/flink-nexmark`), at any parallelism, through the file sink.

use crate::common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use weir::prelude::*;
use weir::splitmix::mix64;

fn chain(values: &[u64]) -> u64 {
    let mut h = mix64(*values.last().unwrap());
    for v in values[..values.len() - 1].iter().rev() {
        h = mix64(v ^ h);
    }
    h
}

fn millis(v: &serde_json::Value) -> u64 {
    // The file sink writes timestamps as ISO-8601 UTC without a zone.
    let s = v.as_str().unwrap();
    let (date, time) = s.split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    assert_eq!((d[0], d[1], d[2]), (2024, 1, 1), "vector A stays on 2024-01-01");
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<u64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    let ms: u64 = format!("{frac:0<3}")[..3].parse().unwrap();
    1_704_067_200_000 + (t[0] * 3600 + t[1] * 60 + t[2]) * 1000 + ms
}

/// The fingerprint of RESULTS.md, computed from JSON lines of the unified shape.
fn fingerprint(lines: &[String]) -> serde_json::Value {
    let (mut persons, mut auctions) = (0, 0);
    let mut prices = Vec::new();
    let (mut auc, mut bidders) = (HashSet::new(), HashSet::new());
    let (mut hb, mut hp, mut ha) = (0u64, 0u64, 0u64);
    let (mut lo, mut hi) = (u64::MAX, 0);
    for l in lines {
        let ev: serde_json::Value = serde_json::from_str(l).unwrap();
        let kind = ev["event_type"].as_i64().unwrap();
        let body = &ev[["person", "auction", "bid"][kind as usize]];
        let ts = millis(&body["dateTime"]);
        lo = lo.min(ts);
        hi = hi.max(ts);
        let u = |f: &str| body[f].as_i64().unwrap() as u64;
        match kind {
            0 => {
                persons += 1;
                hp = hp.wrapping_add(chain(&[u("id"), ts]));
            }
            1 => {
                auctions += 1;
                let exp = millis(&body["expires"]);
                ha = ha.wrapping_add(chain(&[
                    u("id"),
                    u("seller"),
                    u("category"),
                    u("initialBid"),
                    u("reserve"),
                    exp,
                ]));
            }
            _ => {
                prices.push(u("price"));
                auc.insert(u("auction"));
                bidders.insert(u("bidder"));
                hb = hb.wrapping_add(chain(&[u("auction"), u("bidder"), u("price"), ts]));
            }
        }
    }
    prices.sort();
    let k = prices.len();
    serde_json::json!({
        "events": lines.len(), "persons": persons, "auctions": auctions, "bids": k,
        "bid_price_min": prices[0], "bid_price_max": prices[k - 1],
        "bid_price_median": (prices[k / 2 - 1] + prices[k / 2]) as f64 / 2.0,
        "bid_price_sum": prices.iter().sum::<u64>(), "bid_distinct_auctions": auc.len(),
        "bid_distinct_bidders": bidders.len(), "min_dateTime_ms": lo, "max_dateTime_ms": hi,
        "bid_hash": format!("{hb:016x}"), "person_hash": format!("{hp:016x}"), "auction_hash": format!("{ha:016x}"),
    })
}

fn vector_a() -> serde_json::Value {
    serde_json::json!({
        "events": 100000, "persons": 2000, "auctions": 6000, "bids": 92000,
        "bid_price_min": 100, "bid_price_max": 99986168, "bid_price_median": 98604.5,
        "bid_price_sum": 666524750214u64, "bid_distinct_auctions": 5994,
        "bid_distinct_bidders": 1930, "min_dateTime_ms": 1704067200000u64,
        "max_dateTime_ms": 1704067200009u64, "bid_hash": "ffa0843c42b9442c",
        "person_hash": "cab7f56a1b35b8b3", "auction_hash": "6f8a5ccf9d11ab63",
    })
}

fn generate(parallelism: usize, dir: &Path) -> Vec<String> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    let cfg = NexmarkConfig {
        events: Some(100_000),
        ..Default::default()
    };
    env.add_source(Nexmark::new("nexmark", cfg).unwrap())
        .add_sink(FileSink::new("out", FileSinkConfig::new(dir.to_str().unwrap(), Format::Json)).unwrap());
    env.execute("nexmark").unwrap();
    common::read_lines(dir)
}

/// The Flink Nexmark peer kit, if this checkout sits beside `shared/` (it must in CI).
fn peer_kit() -> Option<PathBuf> {
    let kit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/peers/flink-nexmark");
    if kit.exists() {
        return Some(kit);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing in CI (the Flink Nexmark peer kit)",
        kit.display()
    );
    eprintln!("skipping the peer kit's checks: {} not found", kit.display());
    None
}

#[test]
fn generator_reproduces_vector_a_at_parallelism_1_and_3() {
    for p in [1, 3] {
        let dir = tempfile::tempdir().unwrap();
        let lines = generate(p, dir.path());
        assert_eq!(fingerprint(&lines), vector_a(), "parallelism {p}");
        // And the peer's own checker agrees, on the files the sink wrote.
        let Some(kit) = peer_kit() else {
            continue;
        };
        let script = kit.join("fingerprint.py");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let out = std::process::Command::new("python3")
            .arg(&script)
            .args(["--check", "A"])
            .args(&files)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.contains("vector A: MATCH"), "{stderr}");
    }
}

#[test]
fn bid_stream_is_flat_and_matches_the_unified_bids() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let flat = Collect::new();
    let cfg = NexmarkConfig {
        events: Some(5_000),
        stream: NexmarkStream::Bid,
        ..Default::default()
    };
    env.add_source(Nexmark::new("bids", cfg).unwrap())
        .select(&["auction", "bidder", "price"])
        .add_sink(flat.clone());
    let unified = Collect::new();
    let cfg = NexmarkConfig {
        events: Some(5_000),
        ..Default::default()
    };
    env.add_source(Nexmark::new("all", cfg).unwrap())
        .filter_expr("event_type = 2")
        .select(&[
            "bid['auction'] AS auction",
            "get_field(bid, 'bidder') AS bidder",
            "bid.price AS price",
        ])
        .add_sink(unified.clone());
    env.execute("bids").unwrap();
    assert_eq!(flat.len(), 4_600);
    assert_eq!(common::sorted(&flat), common::sorted(&unified));
}

/// FNV-1a 64 of a string's bytes and a 0x01 separator, continuing from `h` (as the fixture
/// `tests/fixtures/NexmarkStrings.java`).
fn fnv(mut h: u64, s: &str) -> u64 {
    for b in s.bytes().chain([1u8]) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The string-field hash per kind of the unified JSON lines (see the fixture for the layout).
fn string_hashes(lines: &[String]) -> serde_json::Value {
    let fields: [&[&str]; 3] = [
        &["name", "emailAddress", "creditCard", "city", "state", "extra"],
        &["itemName", "description", "extra"],
        &["channel", "url", "extra"],
    ];
    let mut sums = [0u64; 3];
    for l in lines {
        let ev: serde_json::Value = serde_json::from_str(l).unwrap();
        let kind = ev["event_type"].as_i64().unwrap() as usize;
        let body = &ev[["person", "auction", "bid"][kind]];
        let h = fields[kind].iter().fold(0xcbf29ce484222325u64, |h, f| {
            fnv(h, body[*f].as_str().unwrap_or_else(|| panic!("{f} in {l}")))
        });
        sums[kind] = sums[kind].wrapping_add(mix64(h));
    }
    serde_json::json!({
        "person": format!("{:016x}", sums[0]),
        "auction": format!("{:016x}", sums[1]),
        "bid": format!("{:016x}", sums[2]),
    })
}

/// Every string field of 100,000 events equals the peer model's: the peer's `NexmarkModel`
/// (plain Java, no Flink) is compiled with the fixture that hashes its strings.
#[test]
fn string_fields_match_the_peer_model() {
    let Some(kit) = peer_kit() else {
        return;
    };
    let kit = kit.join("src/peer/nexmark");
    let classes = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/NexmarkStrings.java");
    let javac = std::process::Command::new("javac")
        .arg("-d")
        .arg(classes.path())
        .arg(kit.join("NexmarkModel.java"))
        .arg(kit.join("SplitMix.java"))
        .arg(&fixture)
        .output()
        .expect("javac (Java 17) runs");
    assert!(javac.status.success(), "{}", String::from_utf8_lossy(&javac.stderr));
    let java = std::process::Command::new("java")
        .arg("-cp")
        .arg(classes.path())
        .args(["peer.nexmark.NexmarkStrings", "100000"])
        .output()
        .unwrap();
    assert!(java.status.success(), "{}", String::from_utf8_lossy(&java.stderr));
    let peer: serde_json::Value = serde_json::from_slice(&java.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(string_hashes(&generate(2, dir.path())), peer);
}
