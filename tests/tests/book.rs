//! Tidy checks for `book/`, run by plain `cargo test` (no mdBook needed).
//!
//! mdBook renders an include with a missing anchor as an empty code block and a missing file
//! as the literal `{{#include ...}}`, both with exit code 0, and it never checks links or
//! images. These tests catch all of that before anyone builds the book.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

use rnn_tests::markdown_links;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits directly under the workspace root")
        .to_path_buf()
}

fn book_src() -> PathBuf {
    root().join("book").join("src")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn files_with_ext(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files_with_ext(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
    out.sort();
}

/// Every chapter file: the `.md` files under `book/src`, except the fragments under
/// `generated/` that chapters include.
fn chapters() -> Vec<PathBuf> {
    let mut files = Vec::new();
    files_with_ext(&book_src(), "md", &mut files);
    let generated = book_src().join("generated");
    files.retain(|f| !f.starts_with(&generated));
    files
}

/// `a/./b/../c` → `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The `{{#include ...}}` directives of a chapter: (path, optional anchor).
fn includes(text: &str) -> Vec<(String, Option<String>)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{#") {
        let after = &rest[start + 3..];
        let Some(end) = after.find("}}") else { break };
        let body = after[..end].trim();
        rest = &after[end + 2..];
        let Some(arg) = body
            .strip_prefix("include ")
            .or_else(|| body.strip_prefix("rustdoc_include "))
        else {
            continue;
        };
        let arg = arg.trim();
        match arg.split_once(':') {
            Some((path, anchor)) => found.push((path.to_string(), Some(anchor.to_string()))),
            None => found.push((arg.to_string(), None)),
        }
    }
    found
}

/// The anchor name on a line such as `    // ANCHOR: step_forward`, for the given keyword.
fn anchor_on_line<'a>(line: &'a str, keyword: &str) -> Option<&'a str> {
    let at = line.find(keyword)?;
    let name = line[at + keyword.len()..].trim();
    let name = name.split_whitespace().next()?;
    name.chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        .then_some(name)
}

/// The lines mdBook includes for `anchor`: those between `ANCHOR: anchor` and
/// `ANCHOR_END: anchor`, without any anchor comment lines. `None` if either marker is
/// missing.
fn anchor_region(source: &str, anchor: &str) -> Option<Vec<String>> {
    let mut inside = false;
    let mut lines = Vec::new();
    for line in source.lines() {
        if anchor_on_line(line, "ANCHOR_END:") == Some(anchor) {
            return inside.then_some(lines);
        }
        if anchor_on_line(line, "ANCHOR:") == Some(anchor) {
            inside = true;
            continue;
        }
        if inside && !line.contains("ANCHOR:") && !line.contains("ANCHOR_END:") {
            lines.push(line.to_string());
        }
    }
    None
}

/// Every `// ANCHOR: name` under `crates/`, with the file it is in.
fn crate_anchors() -> BTreeMap<(PathBuf, String), usize> {
    let mut files = Vec::new();
    files_with_ext(&root().join("crates"), "rs", &mut files);
    let mut anchors = BTreeMap::new();
    for file in files {
        for (i, line) in read(&file).lines().enumerate() {
            if let Some(name) = anchor_on_line(line, "ANCHOR:") {
                anchors.insert((normalize(&file), name.to_string()), i + 1);
            }
        }
    }
    anchors
}

/// The id mdBook gives a heading: lowercase, spaces to dashes, other punctuation dropped.
fn heading_id(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c),
            _ => None,
        })
        .collect()
}

fn heading_ids(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| heading_id(l.trim_start_matches('#')))
        .collect()
}

#[test]
fn every_include_resolves_to_a_file_and_a_nonempty_anchor() {
    let mut problems = Vec::new();
    let mut n = 0;
    for chapter in chapters() {
        let dir = chapter.parent().expect("chapter in a directory");
        for (path, anchor) in includes(&read(&chapter)) {
            n += 1;
            let file = normalize(&dir.join(&path));
            let name = chapter.file_name().unwrap().to_string_lossy().into_owned();
            let Ok(source) = fs::read_to_string(&file) else {
                problems.push(format!("{name}: {path} does not exist"));
                continue;
            };
            match anchor {
                Some(anchor) => match anchor_region(&source, &anchor) {
                    None => problems.push(format!("{name}: {path} has no anchor {anchor:?}")),
                    Some(lines) if lines.iter().all(|l| l.trim().is_empty()) => {
                        problems.push(format!("{name}: anchor {anchor:?} in {path} is empty"))
                    }
                    Some(_) => {}
                },
                None if source.trim().is_empty() => {
                    problems.push(format!("{name}: {path} is empty"))
                }
                None => {}
            }
        }
    }
    assert!(
        n > 0,
        "no includes found at all in {}",
        book_src().display()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Chapters 3 to 9 teach the model from the reference: every Rust file they include is
/// under `crates/rnn/src/`, never the engine (chapter 11 shows the engine).
#[test]
fn chapters_3_to_9_include_only_reference_code() {
    let reference = normalize(&root().join("crates").join("rnn").join("src"));
    let mut problems = Vec::new();
    let mut n = 0;
    for chapter in chapters() {
        let name = chapter.file_name().unwrap().to_string_lossy().into_owned();
        let number = name.split('-').next().and_then(|n| n.parse::<u32>().ok());
        if !number.is_some_and(|n| (3..=9).contains(&n)) {
            continue;
        }
        let dir = chapter.parent().expect("chapter in a directory");
        for (path, _) in includes(&read(&chapter)) {
            if !path.ends_with(".rs") {
                continue;
            }
            n += 1;
            if !normalize(&dir.join(&path)).starts_with(&reference) {
                problems.push(format!(
                    "{name}: {path} is not reference code (crates/rnn/src/)"
                ));
            }
        }
    }
    assert!(n > 0, "chapters 3 to 9 include no Rust code at all");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_anchor_in_the_crates_is_used_by_the_book() {
    let mut used = BTreeSet::new();
    for chapter in chapters() {
        let dir = chapter.parent().expect("chapter in a directory");
        for (path, anchor) in includes(&read(&chapter)) {
            if let Some(anchor) = anchor {
                used.insert((normalize(&dir.join(path)), anchor));
            }
        }
    }
    let unused: Vec<String> = crate_anchors()
        .into_iter()
        .filter(|(key, _)| !used.contains(key))
        .map(|((file, name), line)| {
            let file = file
                .strip_prefix(root())
                .unwrap_or(&file)
                .display()
                .to_string();
            format!("{file}:{line}: anchor {name:?} is not included by any chapter")
        })
        .collect();
    assert!(unused.is_empty(), "{}", unused.join("\n"));
}

#[test]
fn every_anchor_is_closed_exactly_once() {
    let mut problems = Vec::new();
    for ((file, name), line) in crate_anchors() {
        let source = read(&file);
        let ends = source
            .lines()
            .filter(|l| anchor_on_line(l, "ANCHOR_END:") == Some(name.as_str()))
            .count();
        let starts = source
            .lines()
            .filter(|l| anchor_on_line(l, "ANCHOR:") == Some(name.as_str()))
            .count();
        if starts != 1 || ends != 1 {
            problems.push(format!(
                "{}:{line}: anchor {name:?} opens {starts} and closes {ends} times",
                file.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_chapter_is_in_the_summary_and_every_summary_entry_exists() {
    let src = book_src();
    let summary = read(&src.join("SUMMARY.md"));
    let listed: BTreeSet<PathBuf> = markdown_links(&summary)
        .into_iter()
        .filter(|(is_image, _)| !is_image)
        .map(|(_, target)| normalize(&src.join(target)))
        .collect();
    let mut problems = Vec::new();
    for chapter in chapters() {
        if chapter.file_name().is_some_and(|n| n == "SUMMARY.md") {
            continue;
        }
        if !listed.contains(&normalize(&chapter)) {
            problems.push(format!("{} is not in SUMMARY.md", chapter.display()));
        }
    }
    for entry in &listed {
        if !entry.exists() {
            problems.push(format!(
                "SUMMARY.md lists {}, which does not exist",
                entry.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_internal_link_and_image_resolves() {
    let mut problems = Vec::new();
    for chapter in chapters() {
        let dir = chapter.parent().expect("chapter in a directory");
        let name = chapter.file_name().unwrap().to_string_lossy().into_owned();
        for (is_image, target) in markdown_links(&read(&chapter)) {
            if target.starts_with("http://") || target.starts_with("https://") {
                if is_image {
                    problems.push(format!(
                        "{name}: image {target} is remote; the book must work offline"
                    ));
                }
                continue;
            }
            let (path, fragment) = match target.split_once('#') {
                Some((path, fragment)) => (path, Some(fragment)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                chapter.clone()
            } else {
                normalize(&dir.join(path))
            };
            if !file.is_file() {
                let what = if is_image { "image" } else { "link" };
                problems.push(format!("{name}: {what} {target} does not resolve"));
                continue;
            }
            if is_image && fs::metadata(&file).map_or(0, |m| m.len()) == 0 {
                problems.push(format!("{name}: image {target} is empty"));
            }
            if let Some(fragment) = fragment
                && !heading_ids(&read(&file)).contains(fragment)
            {
                problems.push(format!("{name}: {target} names no heading"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Project code is included from `crates/`, never retyped: a `rust` code block holds
/// nothing but include directives.
#[test]
fn rust_code_blocks_only_include_project_code() {
    let mut problems = Vec::new();
    for chapter in chapters() {
        let name = chapter.file_name().unwrap().to_string_lossy().into_owned();
        let mut in_rust = false;
        for (i, line) in read(&chapter).lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.starts_with("```") {
                in_rust = !in_rust && trimmed.trim_start_matches('`').starts_with("rust");
                continue;
            }
            if in_rust && !trimmed.is_empty() && !trimmed.starts_with("{{#include") {
                problems.push(format!("{name}:{}: retyped code {trimmed:?}", i + 1));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Each numbered chapter opens by saying what it derives and ends with a summary and
/// exercises.
#[test]
fn every_numbered_chapter_has_a_summary_then_exercises() {
    let mut problems = Vec::new();
    for chapter in chapters() {
        let name = chapter.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        let text = read(&chapter);
        let summary = text.find("\n## Summary\n");
        let exercises = text.find("\n## Exercises\n");
        match (summary, exercises) {
            (Some(s), Some(e)) if s < e => {
                if text[e + 1..].contains("\n## ") {
                    problems.push(format!("{name}: a section follows the exercises"));
                }
            }
            _ => problems.push(format!(
                "{name}: needs `## Summary` followed by `## Exercises`"
            )),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Offline math: the KaTeX preprocessor must not link its CDN stylesheet, the theme must
/// link the vendored one, and every font that stylesheet loads first (woff2) must be there.
#[test]
fn katex_is_vendored_and_linked_locally() {
    let book = root().join("book");
    let toml = read(&book.join("book.toml"));
    assert!(
        toml.contains("[preprocessor.katex]"),
        "book.toml lacks the katex preprocessor"
    );
    assert!(
        toml.contains("no-css = true"),
        "book.toml must set no-css = true for katex"
    );
    let head = read(&book.join("theme").join("head.hbs"));
    assert!(
        head.contains("{{ path_to_root }}katex/katex.min.css"),
        "{head}"
    );
    let katex = book.join("src").join("katex");
    let css = read(&katex.join("katex.min.css"));
    let mut missing = Vec::new();
    let mut n = 0;
    for (at, _) in css.match_indices("url(fonts/") {
        let rest = &css[at + 4..];
        let end = rest.find(')').expect("url(...) is closed");
        let font = &rest[..end];
        if font.ends_with(".woff2") {
            n += 1;
            if !katex.join(font).is_file() {
                missing.push(font.to_string());
            }
        }
    }
    assert!(n > 0, "no woff2 fonts named in katex.min.css");
    assert!(
        missing.is_empty(),
        "fonts missing from book/src/katex: {missing:?}"
    );
}

#[test]
fn the_helpers_parse_what_mdbook_parses() {
    let md = "```rust,ignore\n{{#include ../../crates/rnn/src/forward.rs:forward}}\n```\n\
              {{#include generated/gradcheck.txt}}\n![a plot](generated/loss.png) and [ch](03-forward.md#the-hidden-step)";
    assert_eq!(
        includes(md),
        [
            (
                "../../crates/rnn/src/forward.rs".to_string(),
                Some("forward".to_string())
            ),
            ("generated/gradcheck.txt".to_string(), None),
        ]
    );
    assert_eq!(
        markdown_links(md),
        [
            (true, "generated/loss.png".to_string()),
            (false, "03-forward.md#the-hidden-step".to_string())
        ]
    );
    let source = "a\n    // ANCHOR: x\n    body\n    // ANCHOR: y\n    // ANCHOR_END: x\n";
    assert_eq!(
        anchor_region(source, "x"),
        Some(vec!["    body".to_string()])
    );
    assert_eq!(anchor_region(source, "z"), None);
    assert_eq!(heading_id("The hidden step"), "the-hidden-step");
    assert_eq!(heading_id("`f32` as the fast path"), "f32-as-the-fast-path");
}

/// The chapters this part of the tidy checks covers: the introduction and chapters 1 to
/// 11 (with 10.1 and 10.2), the ones that teach the model and quote its outputs.
fn teaching_chapters() -> Vec<PathBuf> {
    chapters()
        .into_iter()
        .filter(|c| {
            let name = c.file_name().unwrap().to_string_lossy().into_owned();
            if name == "introduction.md" {
                return true;
            }
            let digits: String = name.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse::<u32>().is_ok_and(|n| (1..=11).contains(&n))
        })
        .collect()
}

/// Whether a teaching chapter derives something: chapters 1 to 10.2, not the introduction
/// and not chapter 11 (speed).
fn derives_something(file_name: &str) -> bool {
    file_name.starts_with(|c: char| c.is_ascii_digit()) && !file_name.starts_with("11")
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// The lines of a chapter outside fenced code blocks, with their 1-based numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut in_fence = false;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if !in_fence {
            lines.push((i + 1, line));
        }
    }
    lines
}

/// The words in double quotes on a line: `"stegosaurus"` gives `stegosaurus`. Only single
/// lowercase words count; `"no input"` is a phrase, not a name.
fn quoted_words(line: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut rest = line;
    while let Some(open) = rest.find('"') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('"') else { break };
        let inside = &after[..close];
        if inside.len() >= 2 && inside.chars().all(|c| c.is_ascii_lowercase()) {
            words.push(inside);
        }
        rest = &after[close + 1..];
    }
    words
}

/// The lines of every text file `cargo xtask figures` wrote (not the facts).
fn generated_lines() -> BTreeSet<String> {
    let mut files = Vec::new();
    files_with_ext(&book_src().join("generated"), "txt", &mut files);
    files
        .iter()
        .filter(|f| !f.components().any(|c| c.as_os_str() == "facts"))
        .flat_map(|f| {
            read(f)
                .lines()
                .map(|l| l.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn dinosaur_names() -> BTreeSet<String> {
    read(&root().join("data").join("dinosaurs.txt"))
        .lines()
        .map(str::to_string)
        .collect()
}

/// A name the prose puts in double quotes is either a real dinosaur (a line of
/// `data/dinosaurs.txt`) or a line the model wrote into `generated/`. A sample quoted from
/// memory, or from outputs that have since been regenerated, fails here.
#[test]
fn every_quoted_name_is_a_training_name_or_a_generated_output() {
    let known = dinosaur_names();
    let generated = generated_lines();
    let mut problems = Vec::new();
    let mut n = 0;
    for chapter in teaching_chapters() {
        let text = read(&chapter);
        for (line_no, line) in prose_lines(&text) {
            for word in quoted_words(line) {
                n += 1;
                if !known.contains(word) && !generated.contains(word) {
                    problems.push(format!(
                        "{}:{line_no}: \"{word}\" is neither in data/dinosaurs.txt nor in \
                         the outputs under generated/ (quote outputs, not memory; write \
                         fragments such as *-saurus* in italics)",
                        file_name(&chapter)
                    ));
                }
            }
        }
    }
    assert!(n > 0, "no quoted names found at all");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The facts under `generated/facts/` (one value per file, included inline by the prose)
/// are all quoted somewhere, and the ones computed from the samples agree with
/// `samples.txt` as it is now: regenerating the samples without the facts fails.
#[test]
fn the_quoted_facts_agree_with_the_generated_outputs() {
    let facts_dir = book_src().join("generated").join("facts");
    let mut files = Vec::new();
    files_with_ext(&facts_dir, "txt", &mut files);
    assert!(!files.is_empty(), "no facts in {}", facts_dir.display());
    let mut included = BTreeSet::new();
    for chapter in chapters() {
        let dir = chapter.parent().expect("chapter in a directory");
        for (path, _) in includes(&read(&chapter)) {
            included.insert(normalize(&dir.join(path)));
        }
    }
    let mut facts = BTreeMap::new();
    let mut problems = Vec::new();
    for file in &files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let value = read(file);
        if value.trim().is_empty() || value.contains('\n') {
            problems.push(format!(
                "fact {name}: must be one non-empty line, is {value:?}"
            ));
        }
        if !included.contains(&normalize(file)) {
            problems.push(format!("fact {name} is quoted by no chapter"));
        }
        facts.insert(name, value);
    }

    // The sample facts, recomputed with rules of their own.
    let samples = read(&book_src().join("generated").join("samples.txt"));
    let known = dinosaur_names();
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    for line in samples.lines() {
        if line.starts_with('$') {
            blocks.push(Vec::new());
        } else if !line.trim().is_empty() {
            blocks
                .last_mut()
                .expect("samples.txt starts with a command")
                .push(line.trim());
        }
    }
    let mut expected = BTreeMap::new();
    let keys = ["t05", "t10", "t15", "topk"];
    assert_eq!(
        blocks.len(),
        keys.len(),
        "samples.txt: {} blocks",
        blocks.len()
    );
    for (key, names) in keys.iter().zip(&blocks) {
        let saurus = names.iter().filter(|n| n.ends_with("saurus")).count();
        expected.insert(format!("samples-{key}-saurus"), saurus.to_string());
        expected.insert(format!("samples-{key}-n"), names.len().to_string());
        if !matches!(*key, "t05" | "topk") {
            continue;
        }
        let mut openings: BTreeMap<String, usize> = BTreeMap::new();
        for name in names {
            *openings.entry(name.chars().take(2).collect()).or_default() += 1;
        }
        let top = openings.values().copied().max().unwrap_or(0);
        let opening = openings
            .iter()
            .find(|(_, n)| **n == top)
            .map(|(o, _)| o.clone());
        expected.insert(
            format!("samples-{key}-opening"),
            opening.unwrap_or_default(),
        );
        expected.insert(format!("samples-{key}-opening-n"), top.to_string());
    }
    let all: Vec<&str> = blocks.iter().flatten().copied().collect();
    expected.insert("samples-total".into(), all.len().to_string());
    let novel = all.iter().filter(|n| !known.contains(**n)).count();
    expected.insert("samples-novel".into(), novel.to_string());
    let intro: Vec<String> = blocks[3]
        .iter()
        .filter(|n| !known.contains(**n))
        .take(5)
        .map(|n| format!("*{n}*"))
        .collect();
    expected.insert("intro-names".into(), intro.join(", "));
    for (name, want) in &expected {
        match facts.get(name) {
            None => problems.push(format!("fact {name} is missing (run cargo xtask figures)")),
            Some(have) if have != want => problems.push(format!(
                "fact {name} is {have:?} but samples.txt gives {want:?} (run cargo xtask figures)"
            )),
            Some(_) => {}
        }
    }
    // The data facts, likewise.
    let names = known.iter().filter(|n| !n.is_empty()).count();
    if facts.get("data-names").map(String::as_str) != Some(names.to_string().as_str()) {
        problems.push(format!("fact data-names is not {names}"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Chapter 11 quotes the benchmark sitting in `crates/rnn-engine/benches/RESULTS.md`:
/// every speed (`1,423k`), ratio (`37.3 times`) and rate (`32.9 GFLOP/s`) it quotes must be
/// there, as `1,423k`, `37.3×` and `32.9 GFLOP/s`.
#[test]
fn chapter_11_quotes_its_measurements_from_results_md() {
    let chapter = read(&book_src().join("11-fast.md"));
    let results = read(&root().join("crates/rnn-engine/benches/RESULTS.md"));
    let section = prose_lines(&chapter)
        .into_iter()
        .map(|(_, l)| l)
        .collect::<Vec<_>>()
        .join("\n");
    let mut problems = Vec::new();
    let mut n = 0;
    let bytes = section.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_number =
            bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric());
        if !starts_number {
            i += 1;
            continue;
        }
        let mut end = i;
        while end < bytes.len()
            && (bytes[end].is_ascii_digit() || bytes[end] == b',' || bytes[end] == b'.')
        {
            end += 1;
        }
        let number = section[i..end].trim_end_matches([',', '.']);
        let rest = &section[i + number.len()..];
        let quoted = if rest.starts_with('k') {
            Some(format!("{number}k"))
        } else if rest.starts_with(" times") {
            Some(format!("{number}×"))
        } else if rest.starts_with(" GFLOP/s") {
            Some(format!("{number} GFLOP/s"))
        } else {
            None
        };
        if let Some(quoted) = quoted {
            n += 1;
            if !results.contains(&quoted) {
                problems.push(format!(
                    "11-fast.md quotes {quoted}, which RESULTS.md does not contain"
                ));
            }
        }
        i = end.max(i + 1);
    }
    assert!(n > 0, "no measurements found in chapter 11");
    assert!(
        chapter.contains("\n## Measurements\n"),
        "11-fast.md lost its Measurements section"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The exercises of a chapter, one string per numbered item.
fn exercises(text: &str) -> Vec<String> {
    let Some(start) = text.find("\n## Exercises\n") else {
        return Vec::new();
    };
    let mut items: Vec<String> = Vec::new();
    for line in text[start..].lines().skip(1) {
        let numbered = line
            .split_once(". ")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if numbered {
            items.push(String::new());
        }
        if let Some(item) = items.last_mut() {
            item.push_str(line);
            item.push('\n');
        }
    }
    items
}

/// Every exercise offers a hint and a worked solution, both folded away until clicked.
#[test]
fn every_exercise_has_a_hint_and_a_solution() {
    let mut problems = Vec::new();
    let mut n = 0;
    for chapter in teaching_chapters() {
        for (i, item) in exercises(&read(&chapter)).iter().enumerate() {
            n += 1;
            for what in ["Hint", "Solution"] {
                let summary = format!("<details><summary>{what}</summary>");
                if !item.contains(&summary) {
                    problems.push(format!(
                        "{}: exercise {} has no {summary}",
                        file_name(&chapter),
                        i + 1
                    ));
                }
            }
            if item.matches("<details>").count() != item.matches("</details>").count() {
                problems.push(format!(
                    "{}: exercise {} leaves a <details> open",
                    file_name(&chapter),
                    i + 1
                ));
            }
        }
    }
    assert!(n > 0, "no exercises found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Book and notebooks form one course: every chapter from 1 to 10.2 names the notebook
/// that goes with it, and every notebook the book names exists.
#[test]
fn every_chapter_names_its_notebook_and_the_notebooks_exist() {
    let mut problems = Vec::new();
    for chapter in teaching_chapters() {
        let name = file_name(&chapter);
        let text = read(&chapter);
        let mut named = 0;
        let mut rest = text.as_str();
        while let Some(at) = rest.find("notebooks/") {
            let path: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "/-_.".contains(*c))
                .collect();
            rest = &rest[at + "notebooks/".len()..];
            if !path.ends_with(".ipynb") {
                continue;
            }
            named += 1;
            if !root().join(&path).is_file() {
                problems.push(format!("{name}: {path} does not exist"));
            }
        }
        if derives_something(&name) && named == 0 {
            problems.push(format!(
                "{name} names no notebook (notebooks/NN-topic.ipynb)"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every chapter from 1 to 10.2 derives something, and each has at least one figure.
#[test]
fn every_derivation_chapter_has_a_figure() {
    let mut problems = Vec::new();
    for chapter in teaching_chapters() {
        let name = file_name(&chapter);
        if !derives_something(&name) {
            continue;
        }
        if !markdown_links(&read(&chapter))
            .iter()
            .any(|(is_image, _)| *is_image)
        {
            problems.push(format!("{name} has no figure"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_fact_helpers_parse_what_they_should() {
    assert_eq!(
        quoted_words(r#"names ("panatosaurus", "no input") and "a" or "rex"."#),
        ["panatosaurus", "rex"]
    );
    let md = "\n## Exercises\n\n1. Why?\n\n   <details><summary>Hint</summary>\n\n   h\n\n   \
              </details>\n2. How?\n";
    let items = exercises(md);
    assert_eq!(items.len(), 2);
    assert!(items[0].contains("Hint") && !items[1].contains("Hint"));
}

/// Every hand-drawn figure under `src/figures/` is shown by some chapter (a figure nobody
/// includes drifts from the notation unnoticed).
#[test]
fn every_figure_is_used() {
    let mut figures = Vec::new();
    files_with_ext(&book_src().join("figures"), "svg", &mut figures);
    assert!(!figures.is_empty(), "no figures in book/src/figures");
    let mut used = BTreeSet::new();
    for chapter in chapters() {
        let dir = chapter.parent().expect("chapter in a directory");
        for (is_image, target) in markdown_links(&read(&chapter)) {
            if is_image {
                used.insert(normalize(&dir.join(target)));
            }
        }
    }
    let unused: Vec<String> = figures
        .iter()
        .filter(|f| !used.contains(&normalize(f)))
        .map(|f| f.display().to_string())
        .collect();
    assert!(unused.is_empty(), "figures no chapter shows: {unused:?}");
}
