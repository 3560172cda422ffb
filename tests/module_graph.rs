//! The module graph keeps its layers and stays acyclic. The layers are the numbered list in
//! `src/lib.rs`'s module doc: a top-level module of `src/` (a file, or a folder with all it
//! holds) may use a module on its own layer or a layer above it in that list, never one below,
//! and every top-level module is on the list. Within a layer, a module may use another only if
//! that one does not use it back, directly or through others. An edge is any `crate::module` path in a module's code outside `#[cfg(test)]`
//! items and test files (`tests.rs`, `tests_*.rs`, anything under a `tests/` folder); `main.rs`,
//! `lib.rs` and `src/bin/` are the roots and make no edges. On failure it names each cycle's
//! modules and, for each edge inside it, a file that makes it.
//!
//! Written here rather than run from a tool outside the repository, so a fresh clone checks
//! itself.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed step is a failed run"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments and without `#[cfg(test)]` items.
fn production_code(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_start().starts_with("#[cfg(test)]") {
            // Skip the item: one line ending in `;`, or a braced block.
            let mut depth = 0i32;
            let mut opened = false;
            i += 1;
            while i < lines.len() {
                let code = lines[i].split("//").next().unwrap_or("");
                depth += code.matches('{').count() as i32 - code.matches('}').count() as i32;
                opened |= code.contains('{');
                let done = (!opened && code.trim_end().ends_with(';')) || (opened && depth <= 0);
                i += 1;
                if done {
                    break;
                }
            }
            continue;
        }
        out.push_str(lines[i].split("//").next().unwrap_or(""));
        out.push('\n');
        i += 1;
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Every module a piece of code names through `crate::`.
fn used_modules(code: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue; // `$crate::` or another word ending in "crate"
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c, d::{e, f}}`: the first name of each top-level element.
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && !c.is_whitespace() => {
                        used.insert(ident_at(&group[i..]).to_string());
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            used.insert(ident_at(rest).to_string());
        }
    }
    used
}

fn is_test_file(rel: &Path) -> bool {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests.rs"
        || name.starts_with("tests_")
        || rel.components().any(|c| c.as_os_str() == "tests")
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeMap<String, PathBuf>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, PathBuf>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.edges.get(v).into_iter().flat_map(|m| m.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

/// `module -> used module -> a file that uses it`.
fn module_edges(src: &Path) -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let module_of = |rel: &Path| -> String {
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_string()
    };
    let rels: Vec<PathBuf> = files
        .iter()
        .map(|f| f.strip_prefix(src).unwrap().to_path_buf())
        .filter(|rel| {
            let root = matches!(rel.to_str(), Some("main.rs" | "lib.rs"));
            !root && !rel.starts_with("bin")
        })
        .collect();
    let modules: BTreeSet<String> = rels.iter().map(|r| module_of(r)).collect();
    let mut edges: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for rel in rels.iter().filter(|r| !is_test_file(r)) {
        let from = module_of(rel);
        let text = std::fs::read_to_string(src.join(rel)).unwrap();
        let slot = edges.entry(from.clone()).or_default();
        for to in used_modules(&production_code(&text)) {
            if to != from && modules.contains(&to) {
                slot.entry(to).or_insert_with(|| rel.clone());
            }
        }
    }
    edges
}

#[test]
fn the_module_graph_has_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = module_edges(&src);
    assert!(edges.len() > 15, "read {} modules", edges.len());
    let found = cycles(&edges);
    let mut report = String::new();
    for component in &found {
        report.push_str(&format!("cycle among {}:\n", component.join(", ")));
        for a in component {
            for (b, file) in &edges[a] {
                if component.contains(b) {
                    report.push_str(&format!("  {a} -> {b}   ({})\n", file.display()));
                }
            }
        }
    }
    assert!(found.is_empty(), "{report}");
}

/// The layer of each module, from the numbered list in `lib.rs`: lines `//! N. `a`, `b` — …`.
fn layers(lib: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in lib.lines() {
        let Some(item) = line.strip_prefix("//! ") else {
            continue;
        };
        let Some((number, rest)) = item.split_once(". ") else {
            continue;
        };
        let Ok(layer) = number.parse::<usize>() else {
            continue;
        };
        let names = rest.split(" — ").next().unwrap_or("");
        for name in names.split(',') {
            let name = name.trim().trim_matches('`');
            if !name.is_empty() {
                out.insert(name.to_string(), layer);
            }
        }
    }
    out
}

/// Every edge that points from a layer to a later one, and every module with no layer.
fn layering_faults(
    edges: &BTreeMap<String, BTreeMap<String, PathBuf>>,
    layer: &BTreeMap<String, usize>,
) -> Vec<String> {
    let mut faults = Vec::new();
    let mut modules: BTreeSet<&String> = edges.keys().collect();
    modules.extend(edges.values().flat_map(|m| m.keys()));
    for m in modules {
        if !layer.contains_key(m) {
            faults.push(format!("{m} is on no layer of lib.rs's list"));
        }
    }
    for (from, uses) in edges {
        for (to, file) in uses {
            if let (Some(a), Some(b)) = (layer.get(from), layer.get(to)) {
                if b > a {
                    faults.push(format!(
                        "{from} (layer {a}) uses {to} (layer {b}), below it   ({})",
                        file.display()
                    ));
                }
            }
        }
    }
    faults
}

#[test]
fn every_module_uses_only_its_layer_and_those_above() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let edges = module_edges(&root.join("src"));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let layer = layers(&lib);
    assert!(layer.len() > 15, "read {} layered modules", layer.len());
    let faults = layering_faults(&edges, &layer);
    assert!(faults.is_empty(), "{}", faults.join("\n"));
}

#[test]
fn the_layer_check_sees_an_upward_import_and_an_unlisted_module() {
    let lib = "//! Layers:\n//!\n//! 1. `low` — leaves.\n//! 2. `mid`, `side` — the middle.\n//! 3. `high` — wiring.\n";
    let layer = layers(lib);
    assert_eq!(layer.get("side"), Some(&2));
    let mut edges: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for (a, b) in [
        ("high", "mid"),
        ("mid", "side"),
        ("mid", "low"),
        ("low", "high"),
        ("odd", "low"),
    ] {
        edges
            .entry(a.into())
            .or_default()
            .insert(b.into(), PathBuf::from(a));
    }
    let faults = layering_faults(&edges, &layer);
    assert_eq!(faults.len(), 2, "{faults:?}");
    assert!(faults[0].starts_with("odd is on no layer"), "{faults:?}");
    assert!(
        faults[1].starts_with("low (layer 1) uses high (layer 3)"),
        "{faults:?}"
    );
}

#[test]
fn the_checker_sees_a_cycle_and_ignores_tests_and_comments() {
    let code = "use crate::{alpha, beta::x, gamma::{y, z}};\n\
                // crate::commented\n\
                fn f() { crate::delta::g(); }\n\
                #[cfg(test)]\nmod tests {\n    use crate::epsilon;\n}\n\
                #[cfg(test)]\nuse crate::zeta;\n";
    let used = used_modules(&production_code(code));
    let want: BTreeSet<String> = ["alpha", "beta", "gamma", "delta"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(used, want);
    let mut edges: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        edges
            .entry(a.into())
            .or_default()
            .insert(b.into(), PathBuf::from(a));
    }
    assert_eq!(cycles(&edges), vec![vec!["a", "b", "c"]]);
}
