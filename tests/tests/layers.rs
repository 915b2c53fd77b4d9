//! Tidy checks for the two layers (DESIGN.md, "Two layers"): the reference crate `rnn` is
//! the post in safe Rust, every `unsafe` and every instruction-set detail lives in
//! `rnn-engine`, and neither crate's modules form a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits directly under the workspace root")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every `.rs` file under `dir`, skipping build output.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if name != "target" {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The source with `//` comments removed (doc comments included), so that prose which
/// names a module or says "unsafe" does not count as code.
fn code_of(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The code of a module without its `#[cfg(test)] mod tests` block at the end: tests may
/// use any module of their crate.
fn without_tests(code: &str) -> &str {
    match code.find("#[cfg(test)]\nmod tests") {
        Some(i) => &code[..i],
        None => code,
    }
}

/// Identifier-like words of `s` after `prefix`: `crate::forward::x` gives `forward`.
fn words_after<'a>(s: &'a str, prefix: &str) -> Vec<&'a str> {
    s.match_indices(prefix)
        .map(|(i, _)| {
            let rest = &s[i + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// The module graph of a crate: for each file module of `src/`, the sibling modules it
/// uses, directly (`crate::module`) or through a name `lib.rs` re-exports from it
/// (`crate::Name`, `use crate::{Name, ...}`).
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let lib = code_of(&read(&src.join("lib.rs")));
    let mut modules = BTreeSet::new();
    let mut reexports: BTreeMap<String, String> = BTreeMap::new();
    for line in lib.lines() {
        let line = line.trim();
        let decl = line.strip_prefix("pub ").unwrap_or(line);
        if let Some(name) = decl.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
            modules.insert(name.to_string());
        }
    }
    // `pub use module::{A, B};` and `pub use module::A;`, possibly over several lines.
    for stmt in lib.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, items)) = rest.split_once("::") else {
            continue;
        };
        if !modules.contains(module) {
            continue;
        }
        let items = items.trim().trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let item = item.trim();
            if !item.is_empty() {
                reexports.insert(item.to_string(), module.to_string());
            }
        }
    }
    let resolve = |word: &str| -> Option<String> {
        if modules.contains(word) {
            Some(word.to_string())
        } else {
            reexports.get(word).cloned()
        }
    };
    let mut graph = BTreeMap::new();
    for module in &modules {
        let path = src.join(format!("{module}.rs"));
        let code = code_of(&read(&path));
        let code = without_tests(&code);
        let mut deps = BTreeSet::new();
        for word in words_after(code, "crate::") {
            deps.extend(resolve(word));
        }
        // Grouped imports: `use crate::{a::B, C, d};` names each item's first segment.
        for (i, _) in code.match_indices("crate::{") {
            let group = &code[i + "crate::{".len()..];
            let mut depth = 1;
            let mut end = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = j;
                    break;
                }
            }
            let mut depth = 0;
            let mut start = 0;
            let group = &group[..end];
            for (j, c) in group.char_indices().chain([(group.len(), ',')]) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let item = group[start..j].trim();
                        let head = item.split("::").next().unwrap_or("").trim();
                        deps.extend(resolve(head));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        }
        deps.remove(module);
        graph.insert(module.clone(), deps);
    }
    graph
}

/// A cycle of the graph, if it has one, as the list of its modules.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = path.iter().position(|p| p == next).expect("on the path");
                    let mut cycle = path[at..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0
            && let Some(c) = visit(node, graph, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_module_cycle_in_either_crate() {
    for krate in ["rnn", "rnn-engine"] {
        let graph = module_graph(&root().join("crates").join(krate).join("src"));
        assert!(
            graph.len() >= 8,
            "{krate}: only {} modules found",
            graph.len()
        );
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{krate}: module cycle {}", cycle.join(" -> "));
        }
    }
}

/// The checker finds a cycle when there is one (through a re-exported name, as the
/// engine's kernels and forward pass once were).
#[test]
fn the_cycle_check_catches_a_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in [
        ("kernels", "forward"),
        ("forward", "matvec"),
        ("matvec", "kernels"),
    ] {
        graph.entry(a.into()).or_default().insert(b.into());
    }
    graph.insert("float".into(), BTreeSet::new());
    let cycle = find_cycle(&graph).expect("a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
    graph.get_mut("matvec").expect("node").clear();
    assert_eq!(find_cycle(&graph), None);
}

/// `unsafe`, `std::arch` and run-time CPU detection appear only in the engine crate; the
/// reference forbids unsafe code outright.
#[test]
fn unsafe_and_instruction_sets_live_only_in_the_engine() {
    let root = root();
    let mut files = Vec::new();
    for dir in ["crates", "tests", "fuzz/fuzz_targets"] {
        rust_files(&root.join(dir), &mut files);
    }
    let engine = root.join("crates").join("rnn-engine");
    let this_file = root.join("tests").join("tests").join("layers.rs");
    let mut offenders = Vec::new();
    for file in &files {
        if file.starts_with(&engine) || *file == this_file {
            continue;
        }
        // The reference's own `#![forbid(unsafe_code)]` is not a use.
        let code = code_of(&read(file)).replace("#![forbid(unsafe_code)]", "");
        for needle in [
            "unsafe",
            "std::arch",
            "is_x86_feature_detected",
            "target_feature",
        ] {
            if code.contains(needle) {
                offenders.push(format!("{} uses {needle}", file.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
    let lib = read(&root.join("crates/rnn/src/lib.rs"));
    assert!(
        lib.contains("#![forbid(unsafe_code)]"),
        "the reference must forbid unsafe code"
    );
    // The reference stays plain: no threads, no dispatch crates.
    let manifest = read(&root.join("crates/rnn/Cargo.toml"));
    for dep in ["rayon", "matrixmultiply", "rnn-engine"] {
        assert!(!manifest.contains(dep), "crates/rnn depends on {dep}");
    }
}
