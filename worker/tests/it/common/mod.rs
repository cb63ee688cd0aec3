//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod cli;
pub mod timed;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use weir::prelude::*;

/// Sorted JSON lines of every file under `dir`.
pub fn read_lines(dir: &Path) -> Vec<String> {
    lines_of(dir, false)
}

/// The committed output of a sink directory: sorted lines of its visible files (an
/// exactly-once file sink's hidden in-progress files left out).
pub fn committed_lines(dir: &Path) -> Vec<String> {
    lines_of(dir, true)
}

fn lines_of(dir: &Path, visible_only: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !visible_only || !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        out.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_string));
    }
    out.sort();
    out
}

/// A bounded datagen with a sequence `id`, a random `k` in [0, keys) and a random `v`.
pub fn numbers(rows: u64, keys: i64) -> Datagen {
    let cfg = DatagenConfig {
        rows: Some(rows),
        seed: 7,
        fields: vec![
            DatagenField::new("id", FieldKind::Sequence),
            DatagenField::random_int("k", 0, keys - 1),
            DatagenField::random_int("v", 0, 999),
        ],
        ..Default::default()
    };
    Datagen::new("numbers", cfg).unwrap()
}

/// Sorted rows of a collector.
pub fn sorted(c: &Collect) -> Vec<String> {
    let mut r = c.rows_json();
    r.sort();
    r
}

/// Waits until `condition` holds, checking every few milliseconds; fails the test after a
/// minute. For conditions that a test's own actions make true (a manual clock moved, rows
/// sent), so no timing is asserted: only that it happens at all.
pub async fn eventually(mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "the condition did not hold within a minute"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// [`eventually`] for synchronous tests: polls `condition` every 5 ms, failing after a minute.
pub fn until(mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "the condition did not hold within a minute"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The `id` field of JSON lines, sorted.
pub fn sorted_ids(lines: &[String]) -> Vec<i64> {
    let mut ids: Vec<i64> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// The final table of a printed changelog: each row (without its `op`) and how many times it
/// is there.
pub fn final_table(stdout: &str) -> BTreeMap<String, i64> {
    let mut table: BTreeMap<String, i64> = BTreeMap::new();
    for line in stdout.lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        let op = v.as_object_mut().unwrap().remove("op");
        let n = match op.as_ref().and_then(|o| o.as_str()) {
            None | Some("+I") | Some("+U") => 1,
            _ => -1,
        };
        *table.entry(v.to_string()).or_default() += n;
    }
    assert!(table.values().all(|n| *n >= 0), "a retraction of a row never added");
    table.retain(|_, n| *n > 0);
    table
}

/// Runs a SQL job with the `weir` binary in `dir` and returns what it printed.
pub fn run_printed(dir: &Path, job: &str) -> String {
    std::fs::write(dir.join("job.sql"), job).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .current_dir(dir)
        .args(["run", "job.sql"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Nexmark query `query` from `examples/sql/nexmark/` after its `ddl.sql`, with what the Flink
/// peer's runner fills in (seed 0, the bidder quirk on; q13's side table from the checkout).
pub fn nexmark_sql(query: &str, events: i64, rate: i64, base_time: i64) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sql/nexmark");
    let ddl = std::fs::read_to_string(dir.join("ddl.sql")).unwrap();
    let q = std::fs::read_to_string(dir.join(format!("{query}.sql"))).unwrap();
    format!("{ddl}\n{q}")
        .replace("${EVENTS}", &events.to_string())
        .replace("${RATE}", &rate.to_string())
        .replace("${BASE_TIME}", &base_time.to_string())
        .replace("${SEED}", "0")
        .replace("${BIDDER_QUIRK}", "true")
        .replace("${SIDE_INPUT}", &dir.join("side_input.csv").display().to_string())
}
