//! Tidy checks of the committed notebooks, with no kernel and no Python: each notebook is
//! valid nbformat 4 on the Rust kernel, its `:dep` paths exist, and it was executed (by
//! `cargo xtask notebooks`) without errors, with its plots in place.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits below the workspace root")
        .to_path_buf()
}

fn notebooks_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ipynb"))
        .collect();
    found.sort();
    found
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

/// A cell's source, which nbformat stores as a string or a list of lines.
fn source(cell: &Value) -> String {
    match &cell["source"] {
        Value::String(s) => s.clone(),
        Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

fn cells(nb: &Value) -> &[Value] {
    nb["cells"].as_array().map_or(&[], Vec::as_slice)
}

fn code_cells(nb: &Value) -> impl Iterator<Item = (usize, &Value)> {
    cells(nb)
        .iter()
        .enumerate()
        .filter(|(_, c)| c["cell_type"] == "code")
}

fn outputs(cell: &Value) -> &[Value] {
    cell["outputs"].as_array().map_or(&[], Vec::as_slice)
}

fn has_mime(cell: &Value, mime: &str) -> bool {
    outputs(cell).iter().any(|o| o["data"].get(mime).is_some())
}

/// Whether `src` calls the function `f` (given as `"name("`), not one whose name ends in it.
fn calls(src: &str, f: &str) -> bool {
    src.match_indices(f).any(|(i, _)| {
        !src[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Checks the parts every notebook must have; returns the problems found.
fn structure_problems(path: &Path, nb: &Value) -> Vec<String> {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let mut bad = Vec::new();
    if nb["nbformat"] != 4 {
        bad.push(format!(
            "{name}: nbformat is {}, expected 4",
            nb["nbformat"]
        ));
    }
    if nb["metadata"]["kernelspec"]["name"] != "rust" {
        bad.push(format!(
            "{name}: kernelspec name is {}, expected \"rust\" (evcxr)",
            nb["metadata"]["kernelspec"]["name"]
        ));
    }
    if cells(nb).is_empty() {
        bad.push(format!("{name}: no cells"));
    }
    for (i, cell) in cells(nb).iter().enumerate() {
        let kind = cell["cell_type"].as_str().unwrap_or("");
        if !["code", "markdown", "raw"].contains(&kind) {
            bad.push(format!("{name}: cell {i} has cell_type {kind:?}"));
        }
        if !cell["source"].is_string() && !cell["source"].is_array() {
            bad.push(format!("{name}: cell {i} has no source"));
        }
    }
    bad
}

/// The `path = "..."` of every `:dep` line in the notebook, with the index of its cell.
fn dep_paths(nb: &Value) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (i, cell) in code_cells(nb) {
        for line in source(cell)
            .lines()
            .filter(|l| l.trim_start().starts_with(":dep"))
        {
            if let Some(rest) = line.split("path").nth(1) {
                let path = rest.split('"').nth(1).unwrap_or("").to_string();
                found.push((i, path));
            } else {
                // A registry dependency: fine, but it still has to be in the first cell.
                found.push((i, String::new()));
            }
        }
    }
    found
}

#[test]
fn every_notebook_is_valid_executed_and_clean() {
    let dir = root().join("notebooks");
    let notebooks = notebooks_in(&dir);
    assert!(
        notebooks.len() >= 5,
        "expected at least five notebooks in {}, found {notebooks:?}",
        dir.display()
    );
    let mut bad = Vec::new();
    for path in &notebooks {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let nb = load(path);
        bad.extend(structure_problems(path, &nb));

        // `:dep` lines: all in the first code cell (one compile), paths that exist.
        let first_code = code_cells(&nb).map(|(i, _)| i).next();
        let deps = dep_paths(&nb);
        if deps.is_empty() {
            bad.push(format!("{name}: no :dep line"));
        }
        for (i, dep) in &deps {
            if Some(*i) != first_code {
                bad.push(format!(
                    "{name}: :dep in cell {i}, not in the first code cell"
                ));
            }
            if !dep.is_empty() && !dir.join(dep).join("Cargo.toml").is_file() {
                bad.push(format!(
                    "{name}: :dep path {dep:?} is not a crate relative to notebooks/"
                ));
            }
        }

        // Executed, in order, without errors.
        let mut last_count = 0;
        let mut n_outputs = 0;
        for (i, cell) in code_cells(&nb) {
            match cell["execution_count"].as_u64() {
                Some(n) if n > last_count => last_count = n,
                other => bad.push(format!(
                    "{name}: code cell {i} has execution_count {other:?}: run `cargo xtask notebooks`"
                )),
            }
            n_outputs += outputs(cell).len();
            for out in outputs(cell) {
                if out["output_type"] == "error" {
                    bad.push(format!(
                        "{name}: cell {i} has an error output: {}",
                        out["evalue"]
                    ));
                }
                let text = match &out["text"] {
                    Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
                    Value::String(s) => s.clone(),
                    _ => String::new(),
                };
                if out["name"] == "stderr" && text.contains("panicked") {
                    bad.push(format!("{name}: cell {i} panicked: {text}"));
                }
            }
            if cell["metadata"].get("execution").is_some() {
                bad.push(format!(
                    "{name}: cell {i} has timing metadata (it churns on every run)"
                ));
            }
            // Plot cells show their plot.
            let src = source(cell);
            let draws_with_rnn_plot = ["loss_curve(", "gradient_norms(", "heatmap("]
                .iter()
                .any(|f| calls(&src, f));
            if draws_with_rnn_plot && !has_mime(cell, "image/png") {
                bad.push(format!("{name}: plot cell {i} has no image/png output"));
            }
            if src.contains("EVCXR_BEGIN_CONTENT image/svg+xml") && !has_mime(cell, "image/svg+xml")
            {
                bad.push(format!("{name}: plot cell {i} has no image/svg+xml output"));
            }
        }
        if n_outputs == 0 {
            bad.push(format!(
                "{name}: no outputs at all: run `cargo xtask notebooks`"
            ));
        }
    }
    assert!(bad.is_empty(), "notebook problems:\n{}", bad.join("\n"));
}

#[test]
fn the_readme_lists_every_notebook() {
    let dir = root().join("notebooks");
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("notebooks/README.md");
    for path in notebooks_in(&dir) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            readme.contains(&name),
            "notebooks/README.md does not mention {name}"
        );
    }
}

#[test]
fn evcxr_config_makes_panics_fail_and_shares_the_build_dir() {
    let config =
        std::fs::read_to_string(root().join("notebooks/evcxr.toml")).expect("notebooks/evcxr.toml");
    let settings: Vec<String> = config
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.split_whitespace().collect::<String>())
        .collect();
    assert!(
        settings.iter().any(|l| l == "preserve_vars_on_panic=false"),
        "without preserve_vars_on_panic = false a panic does not fail a headless run"
    );
    assert!(
        settings.iter().any(|l| l == "tmpdir=\"../target/evcxr\""),
        "evcxr's build directory should be target/evcxr, which the root Cargo.toml excludes"
    );
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("\"target/evcxr\""),
        "the root Cargo.toml must exclude target/evcxr, or the kernel dies at start"
    );
}

#[test]
fn the_selftest_notebooks_are_valid_and_cheap() {
    let dir = root().join("crates/xtask/testdata");
    let notebooks = notebooks_in(&dir);
    assert!(
        notebooks.len() >= 2,
        "expected the broken notebooks (a compile error, a panic) in {}",
        dir.display()
    );
    for path in &notebooks {
        let nb = load(path);
        let bad = structure_problems(path, &nb);
        assert!(bad.is_empty(), "{}", bad.join("\n"));
        assert!(
            dep_paths(&nb).is_empty(),
            "{}: the self-test notebooks must have no :dep (they run before every real run)",
            path.display()
        );
    }
}
