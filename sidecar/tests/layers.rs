//! The library's modules are layers (see `src/lib.rs`), each importing only from the layers
//! before it, with no cycle between modules: checked here on the source itself. Every
//! `crate::…` and `super::…` path in `src/` (imports and inline paths, tests included) is an
//! edge from the module it is written in to the module it names; the modules compared are
//! the top-level ones, and each capture kind and each command on its own.
//!
//! `cargo test -p procshot --test layers -- --nocapture` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first: a module may import from its own layer and those before it.
const LAYERS: &[&[&str]] = &[
    &["error", "files", "redact", "units"],
    &["process"],
    &["gomem"],
    &["captures"],
    &["series"],
    &["analysis"],
    &["report"],
    &["directory"],
    &["commands"],
];

/// Top-level modules whose children are compared one by one (each kind, each command).
const SPLIT: &[&str] = &["captures", "commands"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file of the library under `dir`, with its module path.
fn modules(dir: &Path, prefix: &[String], out: &mut Vec<(Vec<String>, PathBuf)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let mut inner = prefix.to_vec();
            inner.push(name);
            modules(&path, &inner, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let module = match name.as_str() {
                "mod" => prefix.to_vec(),
                "lib" if prefix.is_empty() => Vec::new(),
                // The binary is not part of the library.
                "main" if prefix.is_empty() => continue,
                _ => [prefix, &[name]].concat(),
            };
            out.push((module, path));
        }
    }
}

/// The source without comments (so that doc links and prose name no module).
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths of a use tree starting at `text` (after `crate::`): `a::b::{c, d::e}` gives
/// `a::b::c` and `a::b::d::e`.
fn use_tree(text: &str, base: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut path = base.to_vec();
    loop {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        if i > start {
            path.push(text[start..i].to_string());
        }
        if text[i..].starts_with("::{") {
            i += 3;
            loop {
                while i < bytes.len() && (bytes[i] as char).is_whitespace() {
                    i += 1;
                }
                if i >= bytes.len() || bytes[i] == b'}' {
                    return i + 1;
                }
                i += use_tree(&text[i..], &path, out);
                while i < bytes.len() && (bytes[i] == b',' || (bytes[i] as char).is_whitespace()) {
                    i += 1;
                }
            }
        }
        if text[i..].starts_with("::") {
            i += 2;
            continue;
        }
        out.push(path);
        return i;
    }
}

/// The module that `path` (from the crate root) names: its longest prefix that is a module.
fn module_of(path: &[String], known: &BTreeSet<Vec<String>>) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| known.contains(prefix))
        .unwrap_or_default()
}

/// The module compared: the top-level one, or its child for the split ones.
fn unit(module: &[String]) -> String {
    let depth = match module.first() {
        Some(top) if SPLIT.contains(&top.as_str()) => 2,
        _ => 1,
    };
    module[..module.len().min(depth)].join("::")
}

fn layer(unit: &str) -> usize {
    let top = unit.split("::").next().unwrap();
    LAYERS
        .iter()
        .position(|layer| layer.contains(&top))
        .unwrap_or_else(|| panic!("module {top} is in no layer: add it to LAYERS"))
}

/// Every edge between the compared modules.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    modules(&src(), &[], &mut files);
    let known: BTreeSet<Vec<String>> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, path) in &files {
        if module.is_empty() {
            continue; // lib.rs only declares the modules
        }
        let from = unit(module);
        edges.entry(from.clone()).or_default();
        let text = code(&std::fs::read_to_string(path).unwrap());
        let mut paths = Vec::new();
        for (i, _) in text.match_indices("crate::") {
            if !text[..i].ends_with('$') {
                use_tree(&text[i + "crate::".len()..], &[], &mut paths);
            }
        }
        // In the file's inline `mod tests`, `super` is the file's module itself.
        let tests_at = text.find("mod tests {").unwrap_or(text.len());
        for (i, _) in text.match_indices("super::") {
            if text[..i].ends_with("super::") {
                continue; // the start of this path was handled
            }
            let mut base = module.clone();
            if i > tests_at {
                base.push("tests".into());
            }
            let mut rest = &text[i..];
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            use_tree(rest, &base, &mut paths);
        }
        // `use child::…` in a module names its own child module.
        for (i, _) in text.match_indices("use ") {
            let mut tree = Vec::new();
            use_tree(&text[i + "use ".len()..], module, &mut tree);
            paths.extend(
                tree.into_iter()
                    .filter(|p| p.len() > module.len() && known.contains(&p[..=module.len()])),
            );
        }
        for path in paths {
            let to = unit(&module_of(&path, &known));
            if !to.is_empty() && to != from {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

#[test]
fn every_module_imports_only_from_its_layer_and_those_below() {
    let edges = graph();
    let mut upward = Vec::new();
    for (from, tos) in &edges {
        for to in tos {
            if layer(to) > layer(from) {
                upward.push(format!("{from} → {to}"));
            }
        }
    }
    println!("module graph (layer: module → the modules it imports):");
    for (from, tos) in &edges {
        println!(
            "  {}: {from} → {}",
            layer(from),
            tos.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    assert!(upward.is_empty(), "imports from a later layer: {upward:?}");
}

#[test]
fn no_two_modules_import_each_other() {
    let edges = graph();
    // Depth-first search for a cycle, reporting the first one found.
    fn visit<'a>(
        node: &'a str,
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = path[start..].iter().map(|n| n.to_string()).collect();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            panic!("modules import each other: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn the_check_sees_the_imports_it_is_about() {
    let edges = graph();
    // Known edges of each kind of path: a plain import, a brace group, an inline path.
    assert!(edges["series"].contains("captures::fds"), "{edges:?}");
    assert!(
        edges["captures::fds"].contains("captures::contract"),
        "{edges:?}"
    );
    assert!(
        edges["commands::capture"].contains("directory"),
        "{edges:?}"
    );
    assert!(
        edges["captures::coredump"].contains("captures::memory"),
        "{edges:?}"
    );
    assert!(
        edges["captures"].contains("captures::contract"),
        "{edges:?}"
    );
    assert!(edges["captures::goroutines"].contains("gomem"), "{edges:?}");
    assert!(edges["gomem"].contains("process"), "{edges:?}");
    assert!(
        !edges["commands::capture"].contains("commands"),
        "{edges:?}"
    );
    let mut paths = Vec::new();
    use_tree("a::{b, c::{d, e}}, x", &[], &mut paths);
    assert_eq!(
        paths,
        [
            vec!["a".to_string(), "b".into()],
            vec!["a".into(), "c".into(), "d".into()],
            vec!["a".into(), "c".into(), "e".into()],
        ]
    );
}
