//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod timed;

use std::path::Path;

use weir::prelude::*;

/// Sorted JSON lines of every file under `dir`.
pub fn read_lines(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
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
