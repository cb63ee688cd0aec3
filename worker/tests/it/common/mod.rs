//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod cli;
pub mod timed;

use std::path::Path;

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
