//! Tidy checks of the committed notebooks, with no kernel and no Python: each notebook is
//! valid nbformat 4 on the Rust kernel, its `:dep` paths exist, and it was executed (by
//! `cargo xtask notebooks`) without errors, with its plots in place; every number and quoted
//! sample its markdown states appears in its outputs; it has at least two exercises, each
//! followed by a check cell, and a solutions copy in `notebooks/solutions/` that differs from
//! it only in the exercise cells and whose checks print PASS where the learner's print a hint;
//! and it links to the book chapters it goes with.

use std::path::{Path, PathBuf};

use rnn_tests::markdown_links;
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
    let name = label(path);
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

/// The learners' notebooks followed by their solutions copies.
fn all_notebooks() -> Vec<PathBuf> {
    let dir = root().join("notebooks");
    let mut all = notebooks_in(&dir);
    all.extend(notebooks_in(&dir.join("solutions")));
    all
}

/// A notebook's path relative to `notebooks/`, for messages.
fn label(path: &Path) -> String {
    path.strip_prefix(root().join("notebooks"))
        .unwrap_or(path)
        .display()
        .to_string()
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
    for path in &all_notebooks() {
        let dir = path.parent().unwrap();
        let name = label(path);
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
                    "{name}: :dep path {dep:?} is not a crate relative to the notebook's folder"
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
fn evcxr_config_makes_panics_fail_and_names_the_build_dirs() {
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
    // The solutions copies run from notebooks/solutions, with the same settings.
    let config = std::fs::read_to_string(root().join("notebooks/solutions/evcxr.toml"))
        .expect("notebooks/solutions/evcxr.toml");
    let settings: Vec<String> = config
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.split_whitespace().collect::<String>())
        .collect();
    assert!(
        settings.iter().any(|l| l == "preserve_vars_on_panic=false"),
        "notebooks/solutions/evcxr.toml: without preserve_vars_on_panic = false a panic does not fail a run"
    );
    assert!(
        settings
            .iter()
            .any(|l| l == "tmpdir=\"../../target/evcxr-solutions\""),
        "notebooks/solutions/evcxr.toml should build in target/evcxr-solutions (its kernels \
         run while the learners' notebooks use target/evcxr)"
    );
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    for dir in ["target/evcxr", "target/evcxr-solutions"] {
        assert!(
            manifest.contains(&format!("\"{dir}\"")),
            "the root Cargo.toml must exclude {dir}, or the kernel dies at start"
        );
    }
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

/// The text of a cell's outputs: streams and `text/plain` results.
fn output_text(cell: &Value) -> String {
    let mut text = String::new();
    let joined = |v: &Value| match v {
        Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect::<String>(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    };
    for out in outputs(cell) {
        text.push_str(&joined(&out["text"]));
        text.push_str(&joined(&out["data"]["text/plain"]));
        text.push('\n');
    }
    text
}

fn tags(cell: &Value) -> Vec<String> {
    cell["metadata"]["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn has_tag(cell: &Value, tag: &str) -> bool {
    tags(cell).iter().any(|t| t == tag)
}

/// The marker a learner's exercise cell carries where their code goes.
const STUB_MARKER: &str = "YOUR CODE HERE";
/// What a check cell prints when the exercise is solved, and when it is not.
const PASS: &str = "PASS:";
const NOT_YET: &str = "not yet:";

/// Everything that can make the pair (learner's notebook, solutions copy) wrong.
fn exercise_problems(name: &str, learner: &Value, solution: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    let (lc, sc) = (cells(learner), cells(solution));
    if lc.len() != sc.len() {
        bad.push(format!(
            "{name}: {} cells, its solutions copy {}: they must match cell for cell",
            lc.len(),
            sc.len()
        ));
        return bad;
    }
    let mut n_exercises = 0;
    for (i, (l, s)) in lc.iter().zip(sc).enumerate() {
        if l["cell_type"] != s["cell_type"] || tags(l) != tags(s) {
            bad.push(format!(
                "{name}: cell {i} differs in type or tags from the solutions copy"
            ));
            continue;
        }
        // The solutions live one folder deeper, so their paths have one more "../".
        let (ls, ss) = (source(l), source(s).replace("../../", "../"));
        if has_tag(l, "exercise") {
            n_exercises += 1;
            if !ls.contains(STUB_MARKER) {
                bad.push(format!(
                    "{name}: exercise cell {i} has no {STUB_MARKER:?} where the learner's code goes"
                ));
            }
            if ss.contains(STUB_MARKER) || ss == ls {
                bad.push(format!(
                    "{name}: exercise cell {i} is not solved in the solutions copy"
                ));
            }
            let next_is_check = lc.get(i + 1).is_some_and(|c| has_tag(c, "check"));
            if !next_is_check {
                bad.push(format!(
                    "{name}: exercise cell {i} is not followed by a cell tagged \"check\""
                ));
            }
            continue;
        }
        if ls != ss {
            bad.push(format!(
                "{name}: cell {i} differs from the solutions copy (only exercise cells may)"
            ));
        }
        if l["cell_type"] != "code" {
            continue;
        }
        let (lo, so) = (output_text(l), output_text(s));
        if has_tag(l, "check") {
            let learner_hinted = lo.contains(NOT_YET) && !lo.contains(PASS);
            if !learner_hinted {
                bad.push(format!(
                    "{name}: check cell {i} should print {NOT_YET:?} and a hint for the stub, printed: {lo:?}"
                ));
            }
            let solution_passed = so.contains(PASS) && !so.contains(NOT_YET);
            if !solution_passed {
                bad.push(format!(
                    "{name}: check cell {i} should print {PASS:?} in the solutions copy, printed: {so:?}"
                ));
            }
        } else if lo != so {
            // The rest of the notebook calls the crates, not the exercises: same outputs.
            bad.push(format!(
                "{name}: cell {i} prints differently in the solutions copy:\n{lo}\n---\n{so}"
            ));
        }
    }
    if n_exercises < 2 {
        bad.push(format!(
            "{name}: {n_exercises} exercise cell(s) (tagged \"exercise\"), expected at least two"
        ));
    }
    bad
}

#[test]
fn every_notebook_has_checked_exercises_and_a_solutions_copy() {
    let dir = root().join("notebooks");
    let mut bad = Vec::new();
    for path in notebooks_in(&dir) {
        let name = label(&path);
        let solution = dir.join("solutions").join(path.file_name().unwrap());
        if !solution.is_file() {
            bad.push(format!("{name}: no solutions copy at {}", label(&solution)));
            continue;
        }
        bad.extend(exercise_problems(&name, &load(&path), &load(&solution)));
    }
    for path in notebooks_in(&dir.join("solutions")) {
        if !dir.join(path.file_name().unwrap()).is_file() {
            bad.push(format!("{}: a solutions copy of no notebook", label(&path)));
        }
    }
    assert!(bad.is_empty(), "exercise problems:\n{}", bad.join("\n"));
}

#[test]
fn notebooks_link_to_their_book_chapters_and_the_links_resolve() {
    let mut bad = Vec::new();
    for path in all_notebooks() {
        let name = label(&path);
        let nb = load(&path);
        let mut chapters = 0;
        for (i, cell) in cells(&nb).iter().enumerate() {
            if cell["cell_type"] != "markdown" {
                continue;
            }
            for (_, target) in markdown_links(&source(cell)) {
                if target.contains("://") || target.starts_with('#') {
                    continue;
                }
                let file = target.split('#').next().unwrap_or("");
                let resolved = path.parent().unwrap().join(file);
                if !resolved.exists() {
                    bad.push(format!(
                        "{name}: cell {i} links to {target:?}, which does not exist"
                    ));
                }
                if file.contains("book/src/") {
                    chapters += 1;
                }
            }
        }
        if chapters == 0 {
            bad.push(format!(
                "{name}: links to no chapter of the book (book/src/*.md)"
            ));
        }
    }
    assert!(bad.is_empty(), "link problems:\n{}", bad.join("\n"));
}

#[test]
fn quoted_facts_appear_in_the_outputs() {
    let mut bad = Vec::new();
    for path in all_notebooks() {
        bad.extend(facts::unsupported(&label(&path), &load(&path)));
    }
    assert!(
        bad.is_empty(),
        "numbers or quoted text in the notebooks' markdown that their outputs (or code) do not \
         contain; make the notebook print what the prose states, or change the prose:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_fact_check_catches_a_made_up_fact() {
    let nb = |markdown: &str, printed: &str| {
        serde_json::json!({"cells": [
            {"cell_type": "markdown", "source": markdown, "metadata": {}},
            {"cell_type": "code", "source": "let steps = 35_000;", "metadata": {},
             "outputs": [{"output_type": "stream", "name": "stdout", "text": printed}]}
        ]})
    };
    let printed =
        "validation loss 23.469 per name, uniform 3.2958\nsampled aurathosaurus, hanatosaurus\n";
    let fine = nb(
        "After 35 000 steps the loss is 23.47 nats, about 23, in $\\ln 27 = 3.30$ \
         ... the model writes \"aurathosaurus\" and \"-saurus\" (notebook 4, chapters 3 and 12).",
        printed,
    );
    assert_eq!(facts::unsupported("fine", &fine), Vec::<String>::new());
    for wrong in [
        "the loss is 23.48 nats",
        "after 40 000 steps",
        "it writes \"anathosaurus\"",
        "at $\\tau = 0.35$",
        "the loss falls by 12%",
    ] {
        let found = facts::unsupported("wrong", &nb(wrong, printed));
        assert_eq!(
            found.len(),
            1,
            "{wrong:?} should be reported once, got {found:?}"
        );
    }
}

/// Facts stated in a notebook's markdown, and whether its outputs back them.
///
/// A fact is a number in the prose (outside code spans and links), a number with a decimal
/// point inside math (`$...$`; integers there are exponents and indices), or a text in
/// double quotes. Exempt: integers up to 10 in prose (counts and indices such as "notebook 3"
/// or "step 1"), and the numbers of chapter, notebook and section references. A number is
/// backed when the notebook's outputs or code hold it, possibly with more decimals (so
/// 23.469 backs "23.47" and "23"; a percentage p backs "p%" and p/100 does too); a quoted
/// text is backed when they contain it (a leading "-", as in "-saurus", is dropped).
mod facts {
    use super::{Value, cells, has_tag, output_text, source};

    /// The problems found in `nb`, each as a line naming the notebook, cell and fact.
    pub(crate) fn unsupported(name: &str, nb: &Value) -> Vec<String> {
        let mut evidence = String::new();
        for cell in cells(nb) {
            // Exercise and check cells differ between the copies (the stub, its hint): the
            // prose may not lean on them.
            let exercise = has_tag(cell, "exercise") || has_tag(cell, "check");
            if cell["cell_type"] == "code" && !exercise {
                evidence.push_str(&source(cell));
                evidence.push('\n');
                evidence.push_str(&output_text(cell));
            }
        }
        let numbers = numbers_in(&evidence.replace('_', ""), true);
        let mut bad = Vec::new();
        for (i, cell) in cells(nb).iter().enumerate() {
            if cell["cell_type"] != "markdown" {
                continue;
            }
            let (prose, math) = split_math(&strip_code_and_links(&source(cell)));
            let prose = strip_references(&prose);
            for n in numbers_in(&prose, false) {
                let exempt = n.decimals == 0 && !n.percent && n.value <= 10.0;
                if !exempt && !backed(&n, &numbers) {
                    bad.push(format!("{name}: cell {i}: the number {:?}", n.text));
                }
            }
            for n in numbers_in(&math, false) {
                if n.decimals > 0 && !backed(&n, &numbers) {
                    bad.push(format!(
                        "{name}: cell {i}: the number {:?} (in math)",
                        n.text
                    ));
                }
            }
            for q in quotes(&prose) {
                let q = q.trim_start_matches('-');
                if !q.is_empty() && !evidence.contains(q) {
                    bad.push(format!("{name}: cell {i}: the quoted text {q:?}"));
                }
            }
        }
        bad
    }

    /// A number as written: its text, value (sign dropped), decimals, and a trailing %.
    #[derive(Debug)]
    struct Number {
        text: String,
        value: f64,
        decimals: usize,
        percent: bool,
    }

    fn backed(n: &Number, evidence: &[Number]) -> bool {
        let matches = |value: f64, decimals: usize| {
            evidence.iter().any(|e| {
                e.decimals >= decimals
                    && format!("{:.*}", decimals, e.value) == format!("{value:.decimals$}")
            })
        };
        matches(n.value, n.decimals) || (n.percent && matches(n.value / 100.0, n.decimals + 2))
    }

    /// Markdown without fenced code, code spans and link targets (`[text](target)` keeps
    /// `[text]`).
    fn strip_code_and_links(text: &str) -> String {
        let mut out = String::new();
        let mut in_fence = false;
        for line in text.lines() {
            if line.trim_start().starts_with("```") {
                in_fence = !in_fence;
                continue;
            }
            if !in_fence {
                out.push_str(line);
                out.push('\n');
            }
        }
        let mut no_spans = String::new();
        for (k, part) in out.split('`').enumerate() {
            if k % 2 == 0 {
                no_spans.push_str(part);
            }
        }
        let mut result = String::new();
        let mut rest = no_spans.as_str();
        while let Some(i) = rest.find("](") {
            result.push_str(&rest[..=i]);
            rest = &rest[i + 2..];
            rest = rest.find(')').map_or("", |end| &rest[end + 1..]);
        }
        result.push_str(rest);
        result
    }

    /// (prose, math): the text outside and inside `$...$` / `$$...$$`.
    fn split_math(text: &str) -> (String, String) {
        let (mut prose, mut math) = (String::new(), String::new());
        // A display `$$...$$` is read as an inline `$...$`.
        for (k, part) in text.replace("$$", "$").split('$').enumerate() {
            if k % 2 == 0 {
                prose.push_str(part);
                prose.push(' ');
            } else {
                math.push_str(part);
                math.push(' ');
            }
        }
        (prose, math)
    }

    /// The prose with the numbers of references removed: "chapter 10.1", "chapters 5 to 7
    /// and 10", "[notebooks 1] and [2]", "section 3".
    fn strip_references(text: &str) -> String {
        const WORDS: [&str; 6] = [
            "chapter",
            "chapters",
            "notebook",
            "notebooks",
            "section",
            "sections",
        ];
        let tokens: Vec<&str> = text.split_inclusive(|c: char| c.is_whitespace()).collect();
        let mut out = String::new();
        let mut in_reference = false;
        for token in tokens {
            let word = token
                .trim()
                .trim_matches(|c: char| "[](),.;:".contains(c))
                .to_lowercase();
            let is_number =
                !word.is_empty() && word.chars().all(|c| c.is_ascii_digit() || c == '.');
            if in_reference
                && (is_number
                    || ["and", "to", "or", "&"].contains(&word.as_str())
                    || word.is_empty())
            {
                if !is_number {
                    out.push_str(token);
                }
                continue;
            }
            in_reference = WORDS.contains(&word.as_str());
            out.push_str(token);
        }
        out
    }

    /// The numbers in `text`. In prose, digit groups separated by a space, a thin or
    /// no-break space or a comma join when the group has three digits ("35 000"). With
    /// `loose` (printed output and code), groups do not join (lists such as "9, 130" stay two
    /// numbers) and exponents ("9.8e-4") are read.
    fn numbers_in(text: &str, loose: bool) -> Vec<Number> {
        let chars: Vec<char> = text.chars().collect();
        let mut found = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let starts = chars[i].is_ascii_digit()
                && (i == 0
                    || !(chars[i - 1].is_alphanumeric()
                        || chars[i - 1] == '_'
                        || chars[i - 1] == '.'));
            if !starts {
                i += 1;
                continue;
            }
            let begin = i;
            let mut digits = String::new();
            while i < chars.len() && chars[i].is_ascii_digit() {
                digits.push(chars[i]);
                i += 1;
            }
            // Thousands groups.
            loop {
                let sep = !loose
                    && i < chars.len()
                    && [' ', '\u{2009}', '\u{202f}', '\u{a0}', ','].contains(&chars[i]);
                let group = sep
                    && (1..=3).all(|k| chars.get(i + k).is_some_and(char::is_ascii_digit))
                    && !chars.get(i + 4).is_some_and(char::is_ascii_digit);
                if !group {
                    break;
                }
                digits.extend(&chars[i + 1..i + 4]);
                i += 4;
            }
            let mut decimals = 0;
            let mut fraction = String::new();
            if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    fraction.push(chars[i]);
                    i += 1;
                }
                decimals = fraction.len();
            }
            let mut value: f64 = format!("{digits}.{fraction}0").parse().unwrap_or(f64::NAN);
            if loose && i + 1 < chars.len() && chars[i] == 'e' {
                let mut j = i + 1;
                let negative = chars[j] == '-';
                if negative {
                    j += 1;
                }
                let mut exp = String::new();
                while j < chars.len() && chars[j].is_ascii_digit() {
                    exp.push(chars[j]);
                    j += 1;
                }
                if let Ok(e) = exp.parse::<i32>() {
                    value *= 10f64.powi(if negative { -e } else { e });
                    // An exponent hides the decimals: compare at any precision.
                    decimals = 17;
                    i = j;
                }
            }
            let percent = chars.get(i) == Some(&'%');
            found.push(Number {
                text: chars[begin..i].iter().collect(),
                value,
                decimals,
                percent,
            });
        }
        found
    }

    /// The texts between double quotes, straight or curly.
    fn quotes(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut current: Option<String> = None;
        for c in text.chars() {
            match (c, current.as_mut()) {
                ('"' | '\u{201c}', None) => current = Some(String::new()),
                ('"' | '\u{201d}', Some(q)) => {
                    found.push(std::mem::take(q));
                    current = None;
                }
                (c, Some(q)) => q.push(c),
                _ => {}
            }
        }
        found
    }
}
