//! The engine's module graph has no cycles: every `crate::` and `super::` path in `src/` (outside
//! `#[cfg(test)]` code and comments) is an edge from the module that names it to the module it
//! names, at every depth (`runtime` → `plan`, `runtime/task` → `runtime/chain`, …), a module and
//! its own children aside; and the contract layer (`src/contract`) names nothing outside itself.
//!
//! Run alone: `cargo test --test it layers`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

/// Module path of a source file: `src/runtime/task.rs` → `[runtime, task]`.
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().unwrap() != "bin" {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Edges between modules cut to `depth` path segments.
fn edges(depth: usize) -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let comment = Regex::new(r"(?m)^\s*//.*$").unwrap();
    let path = Regex::new(r"\b(crate|super(?:::super)*)::(\{[^;]*?\}|[A-Za-z_][A-Za-z0-9_:]*)").unwrap();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let text = comment.replace_all(&text, "");
        let code = match text.find("#[cfg(test)]") {
            Some(i) => &text[..i],
            None => &text[..],
        };
        let me = module_of(&root, &file);
        for m in path.captures_iter(code) {
            let base: Vec<String> = if &m[1] == "crate" {
                Vec::new()
            } else {
                let ups = m[1].matches("super").count();
                me[..me.len().saturating_sub(ups)].to_vec()
            };
            let named = &m[2];
            let targets: Vec<&str> = match named.strip_prefix('{') {
                Some(list) => list.trim_end_matches('}').split(',').collect(),
                None => vec![named],
            };
            for t in targets {
                let mut full = base.clone();
                full.extend(
                    t.trim()
                        .split("::")
                        .filter(|s| !s.is_empty() && *s != "self" && !s.starts_with('{'))
                        .map(str::to_string),
                );
                let (from, to) = (&me[..me.len().min(depth)], &full[..full.len().min(depth)]);
                if from.is_empty() || to.is_empty() || from.starts_with(to) || to.starts_with(from) {
                    continue;
                }
                graph.entry(from.join("/")).or_default().insert(to.join("/"));
            }
        }
    }
    graph
}

/// A cycle in `graph`, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|n| n == next).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if !state.contains_key(node.as_str())
            && let Some(c) = visit(node, graph, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_module_graph_has_no_cycles_at_any_depth() {
    for depth in 1..=3 {
        let graph = edges(depth);
        assert!(graph.len() > 5, "the scan found the modules ({graph:?})");
        if let Some(cycle) = find_cycle(&graph) {
            panic!(
                "modules import each other in a loop (depth {depth}): {}",
                cycle.join(" -> ")
            );
        }
    }
}

#[test]
fn the_contract_depends_on_nothing_else_in_the_engine() {
    let graph = edges(1);
    assert_eq!(
        graph.get("contract"),
        None,
        "contract imports {:?}",
        graph.get("contract")
    );
    assert!(graph.values().filter(|to| to.contains("contract")).count() > 5);
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
