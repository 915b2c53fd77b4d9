//! `cargo xtask book` and `cargo xtask figures`.
//!
//! - `book` installs the pinned mdBook and mdbook-katex when missing, builds `book/` into
//!   `book/book/`, and checks the build and the HTML a reader will open: no warning or error
//!   in mdbook's log, every equation typeset at build time (no TeX left in the text),
//!   nothing loaded from a CDN, no empty code block (mdBook renders an include with a
//!   missing anchor as an empty block and exits 0).
//! - `figures` regenerates everything under `book/src/generated/` with `charrnn`: it trains
//!   the dinosaur model with a fixed seed and then plots, samples and checks gradients. From
//!   those outputs it computes every number and name the prose quotes, one file each under
//!   `generated/facts/` (see [`facts`]), which the chapters include inline.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{cargo_install, output, output_any_status, root, run};

mod facts;

/// The book's tools, pinned: mdbook-katex 0.10.0 renders with KaTeX 0.16.4, the version whose
/// CSS and fonts are vendored in `book/src/katex/`. Its lock file builds it against
/// mdbook-preprocessor 0.5.3, and a preprocessor called by another mdbook version logs a
/// warning on every build, so mdBook is pinned to that same 0.5.3.
const MDBOOK: (&str, &str) = ("mdbook", "0.5.3");
const MDBOOK_KATEX: (&str, &str) = ("mdbook-katex", "0.10.0");

/// The name the figures' model reads in the hidden-state and probability heatmaps.
const HEATMAP_NAME: &str = "stegosaurus";

/// Seed of the figures' training run and samples.
const SEED: &str = "0";

/// `cargo xtask book`.
pub fn build(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("`cargo xtask book` takes no arguments, got {arg:?}");
    }
    cargo_install(MDBOOK.0, MDBOOK.1, &[])?;
    cargo_install(MDBOOK_KATEX.0, MDBOOK_KATEX.1, &[])?;

    let root = root();
    let mdbook = cargo_bin_dir()
        .map(|dir| dir.join("mdbook"))
        .filter(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from("mdbook"));
    let mut cmd = Command::new(mdbook);
    cmd.arg("build")
        .arg(root.join("book"))
        // mdbook starts `mdbook-katex` through PATH.
        .env("PATH", path_with_cargo_bin());
    eprintln!("xtask: $ {cmd:?}");
    let built = cmd
        .output()
        .context("cannot start mdbook (is it on the PATH?)")?;
    // mdbook logs to stderr; it is passed through, and read for warnings, because mdbook
    // exits 0 after a missing include file or a preprocessor's complaint.
    let log = String::from_utf8_lossy(&built.stderr);
    eprint!("{log}");
    if !built.status.success() {
        bail!("mdbook build failed with {}", built.status);
    }

    let out = root.join("book").join("book");
    let mut problems = log_problems(&log);
    problems.extend(check_built_book(&out)?);
    if !problems.is_empty() {
        bail!(
            "the built book has {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    eprintln!("xtask: book OK; open {}", out.join("index.html").display());
    Ok(())
}

/// `cargo xtask figures`.
pub fn figures(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("`cargo xtask figures` takes no arguments, got {arg:?}");
    }
    let root = root();
    run(Command::new("cargo")
        .current_dir(&root)
        .args(["build", "--release", "-p", "rnn-cli"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let charrnn = target.join("release").join("charrnn");

    // A fresh run directory every time, so the figures never mix two runs.
    let work = target.join("xtask-figures");
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("cannot remove {}", work.display()))?;
    }
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    // charrnn runs inside `work` with a relative run directory, so the plots' titles name
    // the run ("dinosaurs") rather than a path on this machine.
    let run_dir = PathBuf::from("dinosaurs");
    let generated = root.join("book").join("src").join("generated");
    fs::create_dir_all(&generated)
        .with_context(|| format!("cannot create {}", generated.display()))?;
    let gen_path = |name: &str| generated.join(name);

    // Chapter 8: the dinosaur recipe (SGD 0.01, clip 5, n_a 50, f64), fixed seed. The
    // deterministic lines of each run's report (not its timing) go to training.txt.
    let mut training = String::new();
    let train_args = ["train", "--preset", "dinosaurs", "--seed", SEED];
    let report = output(
        Command::new(&charrnn)
            .current_dir(&work)
            .args(train_args)
            .args(["--sample-every", "0", "--out"])
            .arg(&run_dir),
    )?;
    push_training_report(&mut training, &train_args, &[], &report)?;
    let charrnn_plot = |kind: &str, extra: &[&str], out: &Path| -> Result<()> {
        run(Command::new(&charrnn)
            .current_dir(&work)
            .args(["plot", kind])
            .args(extra)
            // The committed figures are replaced on purpose.
            .args(["--force", "--out"])
            .arg(out))
    };
    // What a plot prints, without its "wrote <path>" line (a path on this machine).
    let charrnn_plot_output = |kind: &str, extra: &[&str], out: &Path| -> Result<String> {
        let printed = output(
            Command::new(&charrnn)
                .current_dir(&work)
                .args(["plot", kind])
                .args(extra)
                .args(["--force", "--out"])
                .arg(out),
        )?;
        Ok(printed
            .lines()
            .filter(|l| !l.starts_with("wrote "))
            .map(|l| format!("{l}\n"))
            .collect())
    };
    let run_arg = run_dir.to_string_lossy().into_owned();
    charrnn_plot("loss", &["--run", &run_arg], &gen_path("loss.png"))?;
    // Chapters 3 and 9: the trained model reading one name.
    let model_text = ["--checkpoint", &run_arg, "--text", HEATMAP_NAME];
    charrnn_plot("hidden", &model_text, &gen_path("hidden.png"))?;
    charrnn_plot("probs", &model_text, &gen_path("probs.png"))?;
    // Chapter 10: gradient norms through time, trained W_aa and r·Q for r = 0.5, 1, 1.5.
    let radius_args = ["--checkpoint", run_arg.as_str(), "--radius", "0.5,1.0,1.5"];
    let printed = charrnn_plot_output("gradients", &radius_args, &gen_path("gradients.png"))?;
    write(
        &gen_path("gradients.txt"),
        &format!(
            "$ charrnn plot gradients {}\n{printed}",
            radius_args.join(" ")
        ),
    )?;
    // Chapter 10, exercise 3: radii near 1; only the printed norms are kept.
    let near_one = ["--checkpoint", run_arg.as_str(), "--radius", "0.9,1.0,1.1"];
    let printed = charrnn_plot_output("gradients", &near_one, &work.join("gradients-09.png"))?;
    write(
        &gen_path("gradients-09.txt"),
        &format!("$ charrnn plot gradients {}\n{printed}", near_one.join(" ")),
    )?;
    // Chapter 10.1: the same recipe (data, n_a, steps, seed) with a GRU and an LSTM, and the
    // last step's gradient of all three models reading the same text, as SVG.
    let mut compared = Vec::new();
    for cell in ["gru", "lstm"] {
        let dir = format!("{run_arg}-{cell}");
        let report = output(
            Command::new(&charrnn)
                .current_dir(&work)
                .args(train_args)
                .args(["--cell", cell])
                .args(["--sample-every", "0", "--out", &dir]),
        )?;
        push_training_report(&mut training, &train_args, &["--cell", cell], &report)?;
        compared.push(dir);
    }
    write(&gen_path("training.txt"), &training)?;
    let compare = compared.join(",");
    let compare_args = [
        "--checkpoint",
        run_arg.as_str(),
        "--compare",
        compare.as_str(),
    ];
    let printed =
        charrnn_plot_output("gradients", &compare_args, &gen_path("gradients-cells.svg"))?;
    write(
        &gen_path("gradients-cells.txt"),
        &format!(
            "$ charrnn plot gradients {}\n{printed}",
            compare_args.join(" ")
        ),
    )?;

    // Chapter 9: names at three temperatures, and with top-k.
    let mut samples = String::new();
    let settings: [&[&str]; 4] = [
        &["--temperature", "0.5"],
        &["--temperature", "1.0"],
        &["--temperature", "1.5"],
        &["--temperature", "1.0", "--top-k", "3"],
    ];
    for extra in settings {
        let shown = ["sample", "--n", "10", "--seed", SEED]
            .iter()
            .chain(extra)
            .copied()
            .collect::<Vec<_>>();
        let names = output(
            Command::new(&charrnn)
                .current_dir(&work)
                .args(&shown)
                .arg("--checkpoint")
                .arg(&run_dir),
        )?;
        if !samples.is_empty() {
            samples.push('\n');
        }
        writeln!(samples, "$ charrnn {} --checkpoint <run>", shown.join(" "))?;
        samples.push_str(&names);
    }
    write(&gen_path("samples.txt"), &samples)?;
    // Chapter 9, exercise 3: how many samples are copies of training names.
    let mut novelty = String::new();
    for temperature in ["0.5", "1.5"] {
        let shown = [
            "sample",
            "--n",
            "20",
            "--seed",
            SEED,
            "--temperature",
            temperature,
        ];
        let report = output(
            Command::new(&charrnn)
                .current_dir(&work)
                .args(shown)
                .arg("--novelty")
                .arg("--checkpoint")
                .arg(&run_dir),
        )?;
        if !novelty.is_empty() {
            novelty.push('\n');
        }
        writeln!(
            novelty,
            "$ charrnn {} --novelty --checkpoint <run>",
            shown.join(" ")
        )?;
        novelty.push_str(&report);
    }
    write(&gen_path("novelty.txt"), &novelty)?;

    // Chapter 7: the gradient check with its defaults.
    let report = output(Command::new(&charrnn).current_dir(&root).arg("gradcheck"))?;
    write(
        &gen_path("gradcheck.txt"),
        &format!("$ charrnn gradcheck\n{report}"),
    )?;

    // Chapter 7, exercise 3: the same check with tiny weights. It may fail the threshold,
    // which is the point of the exercise, so its exit status is reported, not fatal.
    let (report, status) = output_any_status(Command::new(&charrnn).current_dir(&root).args([
        "gradcheck",
        "--std",
        "0.01",
    ]))?;
    let verdict = match status.code() {
        Some(0) => String::new(),
        Some(code) => format!("(exit status {code})\n"),
        None => format!("({status})\n"),
    };
    write(
        &gen_path("gradcheck-std.txt"),
        &format!("$ charrnn gradcheck --std 0.01\n{report}{verdict}"),
    )?;

    // Chapter 10.1: the finite-difference check of every cell and depth is a test; its
    // worst error over all cases is the one line of its output the chapter quotes.
    let test = [
        "test",
        "-p",
        "rnn",
        "--test",
        "cells",
        "gradient_check_every_cell_and_depth",
        "--",
        "--exact",
        "--nocapture",
    ];
    let printed = output(Command::new("cargo").current_dir(&root).args(test))?;
    let worst = printed
        .lines()
        .find(|l| l.starts_with("worst relative error over all cases:"))
        .context("the cells gradient check printed no worst relative error")?;
    write(
        &gen_path("gradcheck-cells.txt"),
        &format!("$ cargo {}\n{worst}\n", test.join(" ")),
    )?;

    // The numbers the prose quotes, computed from the outputs above (see `facts`).
    let history = fs::read_to_string(work.join(&run_dir).join("history.csv"))
        .context("cannot read the run's history.csv")?;
    let dinosaurs = fs::read_to_string(root.join("data").join("dinosaurs.txt"))
        .context("cannot read data/dinosaurs.txt")?;
    let read_gen = |name: &str| -> Result<String> {
        fs::read_to_string(gen_path(name)).with_context(|| format!("cannot read {name}"))
    };
    let facts = facts::all(&facts::Inputs {
        dinosaurs: &dinosaurs,
        history: &history,
        training: &read_gen("training.txt")?,
        gradients: &read_gen("gradients.txt")?,
        gradients_cells: &read_gen("gradients-cells.txt")?,
        gradients_near_one: &read_gen("gradients-09.txt")?,
        samples: &read_gen("samples.txt")?,
    })?;
    let facts_dir = generated.join("facts");
    if facts_dir.exists() {
        fs::remove_dir_all(&facts_dir)
            .with_context(|| format!("cannot remove {}", facts_dir.display()))?;
    }
    fs::create_dir_all(&facts_dir)
        .with_context(|| format!("cannot create {}", facts_dir.display()))?;
    for (name, value) in &facts {
        // No newline at the end: the prose includes a fact in the middle of a sentence.
        fs::write(facts_dir.join(format!("{name}.txt")), value)
            .with_context(|| format!("cannot write fact {name}"))?;
    }
    eprintln!(
        "xtask: wrote {} facts to {}",
        facts.len(),
        facts_dir.display()
    );

    eprintln!(
        "xtask: figures written to {}; commit them with the book",
        generated.display()
    );
    Ok(())
}

/// Appends one training run to `training.txt`: the command, then the lines of its report
/// that the same seed reproduces exactly (the losses), not the ones that time the run.
fn push_training_report(
    out: &mut String,
    args: &[&str],
    extra: &[&str],
    report: &str,
) -> Result<()> {
    if !out.is_empty() {
        out.push('\n');
    }
    let shown: Vec<&str> = args.iter().chain(extra).copied().collect();
    writeln!(
        out,
        "$ charrnn {} --sample-every 0 --out <run>",
        shown.join(" ")
    )?;
    let kept: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("final smoothed loss:") || l.starts_with("validation:"))
        .collect();
    if kept.len() != 2 {
        bail!("charrnn train printed no final smoothed loss or validation line:\n{report}");
    }
    for line in kept {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The directory `cargo install` puts binaries in: `$CARGO_HOME/bin`, else `~/.cargo/bin`.
fn cargo_bin_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return Some(PathBuf::from(home).join("bin"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo").join("bin"))
}

/// `PATH` with the `cargo install` directory in front, so that freshly installed tools (and
/// the plugins they start, such as mdbook's preprocessors) are found.
fn path_with_cargo_bin() -> std::ffi::OsString {
    let mut dirs: Vec<PathBuf> = cargo_bin_dir().into_iter().collect();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).unwrap_or_default()
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

/// The warnings and errors in mdbook's log (its preprocessors' included): a clean build
/// logs neither.
fn log_problems(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .map(|l| format!("mdbook logged: {}", l.trim()))
        .collect()
}

/// Checks the HTML of a built book. Returns one line per problem.
fn check_built_book(out: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    collect_files(out, &mut files)?;
    let mut problems = Vec::new();
    let mut typeset = 0;
    for path in &files {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "html" | "css" | "js") {
            continue;
        }
        let text =
            fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let shown = path.strip_prefix(out).unwrap_or(path).display().to_string();
        for url in cdn_urls(&text) {
            problems.push(format!("{shown}: loads {url} from a CDN"));
        }
        if ext != "html" {
            continue;
        }
        typeset += text.matches("class=\"katex\"").count();
        problems.extend(
            html_problems(&text)
                .into_iter()
                .map(|p| format!("{shown}: {p}")),
        );
    }
    if typeset == 0 {
        problems.push("no typeset equation anywhere: did the katex preprocessor run?".into());
    }
    let css = out.join("katex").join("katex.min.css");
    if !css.exists() {
        problems.push(format!("{} is missing", css.display()));
    }
    let index = fs::read_to_string(out.join("index.html")).unwrap_or_default();
    if !index.contains("katex/katex.min.css") {
        problems.push("index.html does not link katex/katex.min.css (theme/head.hbs)".into());
    }
    Ok(problems)
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// Absolute http(s) URLs that point at a math library or a CDN.
fn cdn_urls(text: &str) -> Vec<String> {
    const HOSTS: [&str; 6] = [
        "katex",
        "mathjax",
        "jsdelivr",
        "cdnjs",
        "unpkg",
        "googleapis",
    ];
    let mut urls = Vec::new();
    for (start, _) in text.match_indices("http") {
        let rest = &text[start..];
        if !(rest.starts_with("http://") || rest.starts_with("https://")) {
            continue;
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || "\"'<>()`".contains(c))
            .unwrap_or(rest.len());
        let url = &rest[..end];
        let lower = url.to_ascii_lowercase();
        if HOSTS.iter().any(|h| lower.contains(h)) {
            urls.push(url.to_string());
        }
    }
    urls
}

/// Problems in one HTML page: TeX left in the text, empty code blocks, unresolved includes.
fn html_problems(html: &str) -> Vec<String> {
    let mut problems = Vec::new();
    // Text a reader sees as prose: without scripts, styles, code, and KaTeX's own copy of
    // the TeX source (the <annotation> of its MathML).
    let mut prose = html.to_string();
    for tag in ["script", "style", "pre", "code", "annotation"] {
        prose = strip_elements(&prose, tag);
    }
    for marker in [
        "$$",
        "\\(",
        "\\)",
        "\\[",
        "\\]",
        "\\frac",
        "\\partial",
        "^{",
    ] {
        if let Some(at) = prose.find(marker) {
            problems.push(format!(
                "unrendered TeX {marker:?} near {:?}",
                excerpt(&prose, at)
            ));
        }
    }
    if let Some(at) = prose.find('$') {
        problems.push(format!(
            "a stray '$' (unrendered inline math?) near {:?}",
            excerpt(&prose, at)
        ));
    }
    // KaTeX draws \tilde and friends with '~' characters; two of them in one paragraph
    // turn into Markdown strikethrough and tear the equation apart.
    if html.contains("<del>") {
        problems.push("strikethrough text (a '~' inside math?)".into());
    }
    if html.contains("{{#include") || html.contains("{{#rustdoc_include") {
        problems.push("an include was not resolved (missing file?)".into());
    }
    let mut rest = html;
    while let Some(at) = rest.find("<code") {
        rest = &rest[at..];
        let Some(open_end) = rest.find('>') else {
            break;
        };
        let body = &rest[open_end + 1..];
        if body.trim_start().starts_with("</code>") && rest[..open_end].contains("language-") {
            problems.push("an empty code block (an include with a missing anchor?)".into());
        }
        rest = body;
    }
    problems
}

/// `html` without the elements `<tag ...>...</tag>` (not nested; good enough for the
/// elements mdBook and KaTeX produce).
fn strip_elements(html: &str, tag: &str) -> String {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut kept = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        // `<pre` must not match `<prefix`: the next character ends the tag name.
        let after = rest[start + open.len()..].chars().next();
        if !matches!(after, Some('>' | ' ' | '\n' | '\t' | '/')) {
            kept.push_str(&rest[..start + open.len()]);
            rest = &rest[start + open.len()..];
            continue;
        }
        kept.push_str(&rest[..start]);
        match rest[start..].find(&close) {
            Some(end) => rest = &rest[start + end + close.len()..],
            None => {
                rest = "";
                break;
            }
        }
    }
    kept.push_str(rest);
    kept
}

fn excerpt(text: &str, at: usize) -> String {
    let start = text[..at]
        .char_indices()
        .rev()
        .nth(30)
        .map_or(0, |(i, _)| i);
    let end = text[at..]
        .char_indices()
        .nth(30)
        .map_or(text.len(), |(i, _)| at + i);
    text[start..end]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tex_left_in_prose_is_reported_but_not_in_code_or_annotations() {
        let rendered = "<p><span class=\"katex\"><annotation encoding=\"application/x-tex\">\
                        \\frac{a}{b}</annotation></span></p><pre><code>let x = \"$$\";</code></pre>";
        assert!(
            html_problems(rendered).is_empty(),
            "{:?}",
            html_problems(rendered)
        );
        assert_eq!(html_problems("<p>$$a^{(t)}$$</p>").len(), 3);
        assert_eq!(html_problems("<p>where \\(x\\) is</p>").len(), 2);
        assert_eq!(html_problems("<p>cost $x$</p>").len(), 1);
    }

    #[test]
    fn empty_code_blocks_and_unresolved_includes_are_reported() {
        let empty = "<pre><code class=\"language-rust ignore\"></code></pre>";
        assert_eq!(html_problems(empty).len(), 1);
        let full = "<pre><code class=\"language-rust\">fn f() {}</code></pre>";
        assert!(html_problems(full).is_empty());
        assert_eq!(html_problems("<p>{{#include ../x.rs:a}}</p>").len(), 1);
        assert_eq!(html_problems("<p><del>x</del></p>").len(), 1);
    }

    #[test]
    fn warnings_in_the_log_are_problems() {
        let log = " INFO Book building has started\n WARN The mdbook-katex plugin was built \
                   against version 0.5.3 of mdbook, but we're being called from version 0.5.4\n";
        assert_eq!(log_problems(log).len(), 1);
        assert!(log_problems(" INFO Running the html backend\n").is_empty());
    }

    #[test]
    fn cdn_links_are_found() {
        let html = "<link href=\"https://cdn.jsdelivr.net/npm/katex@0.16.4/dist/katex.min.css\">\
                    <a href=\"https://github.com/rnn-book/rnn\">";
        assert_eq!(
            cdn_urls(html),
            ["https://cdn.jsdelivr.net/npm/katex@0.16.4/dist/katex.min.css"]
        );
        assert!(cdn_urls("<link href=\"katex/katex.min.css\">").is_empty());
    }

    #[test]
    fn strip_elements_keeps_similar_tags() {
        assert_eq!(
            strip_elements("a<pre>x</pre>b<prefix>c", "pre"),
            "ab<prefix>c"
        );
    }
}
