//! `cargo xtask quality`: the quality table. Trains every row's model with `charrnn` (the
//! exact command the table prints), reads its loss on the test names (makemore's split) or
//! on the held-out validation text, times it, and rewrites the table in
//! `book/src/generated/quality.md` and in the README, with the date, the commit and the
//! machine, plus one plot per dataset of validation loss against wall-clock time.
//!
//! Each row's result is kept in `book/src/generated/quality.json`, so `--rows a,b` re-runs
//! some rows and keeps the others. `--quick` runs every row for a few hundred steps in a
//! scratch directory and checks that its numbers come out (what CI runs); it writes
//! nothing.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::util::{root, run, target_dir};

/// Which number a row reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Metric {
    /// The best checkpoint's loss on the `--test` text (makemore's test names).
    Test,
    /// The best checkpoint's loss on the held-out validation part.
    Validation,
}

/// One row of the table: a dataset and a `charrnn` command, run from the repository root.
#[derive(Debug)]
struct Row {
    id: &'static str,
    dataset: Dataset,
    args: &'static [&'static str],
    metric: Metric,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Dataset {
    Dinosaurs,
    Names,
    Shakespeare,
}

impl Dataset {
    fn key(self) -> &'static str {
        match self {
            Dataset::Dinosaurs => "dinosaurs",
            Dataset::Names => "names",
            Dataset::Shakespeare => "shakespeare",
        }
    }

    /// The title of the dataset's plot (validation loss; the published lines of names are
    /// test losses).
    fn title(self) -> &'static str {
        match self {
            Dataset::Dinosaurs => "Dinosaur names: validation loss (every 20th name)",
            Dataset::Names => "names.txt: validation (every 20th training name); published: test",
            Dataset::Shakespeare => "Tiny Shakespeare: validation loss (the last 10%)",
        }
    }

    /// Published numbers on the same data and split, with their sources.
    fn published(self) -> &'static [(&'static str, &'static str, &'static str)] {
        match self {
            Dataset::Dinosaurs => &[],
            Dataset::Names => &[
                ("bigram counts", "2.45", "Karpathy's makemore lecture 1"),
                (
                    "MLP (Bengio et al. 2003)",
                    "2.10",
                    "makemore lectures 2–4: 2.10–2.17",
                ),
                ("WaveNet-style CNN", "1.99", "makemore lecture 5"),
                ("Transformer", "1.92", "makemore README"),
            ],
            Dataset::Shakespeare => &[
                (
                    "nanoGPT character Transformer (6 layers, 10.7M parameters)",
                    "1.4697",
                    "nanoGPT README: one A100, about 3 minutes",
                ),
                (
                    "char-rnn 2-layer LSTM example checkpoint",
                    "1.395",
                    "char-rnn README; its own split",
                ),
            ],
        }
    }
}

const ROWS: &[Row] = &[
    Row {
        id: "dinosaurs-classic",
        dataset: Dataset::Dinosaurs,
        args: &["train"],
        metric: Metric::Validation,
    },
    Row {
        id: "dinosaurs-lstm",
        dataset: Dataset::Dinosaurs,
        args: &[
            "train",
            "--preset",
            "names",
            "--cell",
            "lstm",
            "--data",
            "data/dinosaurs.txt",
            "--lowercase",
            "--hidden",
            "128",
            "--steps",
            "2000",
            "--eval-every",
            "100",
        ],
        metric: Metric::Validation,
    },
    Row {
        id: "names-rnn",
        dataset: Dataset::Names,
        args: &["train", "--preset", "names", "--cell", "rnn"],
        metric: Metric::Test,
    },
    Row {
        id: "names-gru",
        dataset: Dataset::Names,
        args: &["train", "--preset", "names", "--cell", "gru"],
        metric: Metric::Test,
    },
    Row {
        id: "names-lstm",
        dataset: Dataset::Names,
        args: &["train", "--preset", "names", "--cell", "lstm"],
        metric: Metric::Test,
    },
    Row {
        id: "shakespeare-rnn",
        dataset: Dataset::Shakespeare,
        args: &["train", "--preset", "shakespeare", "--cell", "rnn"],
        metric: Metric::Validation,
    },
    Row {
        id: "shakespeare-gru",
        dataset: Dataset::Shakespeare,
        args: &["train", "--preset", "shakespeare", "--cell", "gru"],
        metric: Metric::Validation,
    },
    Row {
        id: "shakespeare-lstm",
        dataset: Dataset::Shakespeare,
        args: &["train", "--preset", "shakespeare", "--cell", "lstm"],
        metric: Metric::Validation,
    },
];

/// What one run of a row measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RowResult {
    /// The command, as run from the repository root.
    command: String,
    /// "lstm x 2 layer(s) (dropout 0.25), n_a 512" and the like.
    model: String,
    parameters: u64,
    /// The reported loss, nats per character.
    loss: f64,
    /// "test" or "validation".
    on: String,
    /// The step of the best checkpoint.
    best_step: u64,
    steps: u64,
    /// Wall-clock seconds of the whole command (training, validation passes, the final
    /// test and novelty report).
    seconds: f64,
    /// Threads of the rayon pool (`RAYON_NUM_THREADS`, or every core).
    threads: String,
    /// makemore's novelty report, for names.
    novelty: Option<String>,
    /// (seconds since the start, step, validation loss per character) at each validation.
    curve: Vec<(f64, u64, f64)>,
    /// How this row was measured, when not by this task alone.
    #[serde(default)]
    note: Option<String>,
    date: String,
    commit: String,
    machine: String,
}

/// `cargo xtask quality [--quick] [--rows id,id] [--render]`.
pub fn run_task(args: &[String]) -> Result<()> {
    let (mut quick, mut render_only) = (false, false);
    let mut only: Option<Vec<String>> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--rows" => {
                let list = it.next().context("--rows needs a comma-separated list")?;
                only = Some(list.split(',').map(str::to_string).collect());
            }
            "--render" => render_only = true,
            other => bail!(
                "unknown argument {other:?} (expected --quick, --rows id,id or --render); rows: {}",
                ROWS.iter().map(|r| r.id).collect::<Vec<_>>().join(", ")
            ),
        }
    }
    if let Some(ids) = &only {
        for id in ids {
            if !ROWS.iter().any(|r| r.id == id) {
                bail!("unknown row {id:?}");
            }
        }
    }
    let root = root();
    let store_path = root.join("book/src/generated/quality.json");
    // Read again before every write: another `--rows` run may have stored its rows since.
    let load = || -> Result<BTreeMap<String, RowResult>> {
        if !store_path.exists() {
            return Ok(BTreeMap::new());
        }
        serde_json::from_str(&fs::read_to_string(&store_path)?)
            .with_context(|| format!("cannot read {}", store_path.display()))
    };
    if render_only {
        // No row runs, nothing to build.
        return render(&root, &load()?);
    }
    run(Command::new("cargo")
        .current_dir(&root)
        .args(["build", "--release", "-p", "rnn-cli"]))?;
    let charrnn = target_dir().join("release").join("charrnn");
    let work = target_dir().join(if quick {
        "xtask-quality-quick"
    } else {
        "xtask-quality"
    });
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;

    for row in ROWS {
        if only
            .as_ref()
            .is_some_and(|ids| !ids.iter().any(|id| id == row.id))
        {
            continue;
        }
        let result = run_row(row, &charrnn, &root, &work, quick)?;
        if quick {
            // A quick row's checkpoints (up to ~400 MB for the Shakespeare LSTM) prove
            // nothing once the row has reported; CI's disk is not unlimited.
            let out = work.join(row.id);
            fs::remove_dir_all(&out).with_context(|| format!("cannot remove {}", out.display()))?;
        }
        eprintln!(
            "xtask: {}: {:.4} nats/char on {} in {:.0} s",
            row.id, result.loss, result.on, result.seconds
        );
        if !quick {
            let mut store = load()?;
            store.insert(row.id.to_string(), result);
            fs::write(&store_path, serde_json::to_string_pretty(&store)? + "\n")
                .with_context(|| format!("cannot write {}", store_path.display()))?;
        }
    }
    if quick {
        eprintln!("xtask: quality --quick: every row ran and reported a finite loss");
        return Ok(());
    }
    render(&root, &load()?)
}

/// Runs one row, timing it and reading its numbers from what `charrnn train` prints.
fn run_row(row: &Row, charrnn: &Path, root: &Path, work: &Path, quick: bool) -> Result<RowResult> {
    let out = work.join(row.id);
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("cannot remove {}", out.display()))?;
    }
    let mut cmd = Command::new(charrnn);
    cmd.current_dir(root);
    if quick {
        // A few hundred steps of the same recipe: the path, not the number (the row's own
        // --steps and --eval-every give way, as a flag may be given once).
        let mut args = row.args.iter();
        while let Some(a) = args.next() {
            if *a == "--steps" || *a == "--eval-every" {
                args.next();
            } else {
                cmd.arg(a);
            }
        }
        cmd.args(["--steps", "200", "--eval-every", "100"]);
    } else {
        cmd.args(row.args);
    }
    cmd.args(["--sample-every", "0", "--out"]).arg(&out);
    cmd.stdout(Stdio::piped());
    // The code the binary was just built from, before the run (the tree may move on).
    let (date, built_from) = (today()?, commit(root)?);
    eprintln!("xtask: $ {cmd:?}");
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", charrnn.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = Vec::new();
    let mut curve = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        eprintln!("  {line}");
        // "step 500: val loss 1.8454/char, ..."
        if let Some(rest) = line.strip_prefix("step ")
            && let Some((step, tail)) = rest.split_once(": val loss ")
            && let Some((loss, _)) = tail.split_once("/char")
        {
            curve.push((
                started.elapsed().as_secs_f64(),
                step.parse()?,
                loss.parse()?,
            ));
        }
        lines.push(line);
    }
    let status = child.wait()?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{}: charrnn failed with {status}", row.id);
    }
    let text = lines.join("\n");
    let number_after = |label: &str| -> Result<f64> {
        let at = text
            .find(label)
            .with_context(|| format!("{}: no {label:?} in the output", row.id))?;
        let rest = text[at + label.len()..].trim_start();
        let end = rest.find([' ', ',', ')', '\n']).unwrap_or(rest.len());
        rest[..end]
            .parse()
            .with_context(|| format!("{}: {label:?} is not followed by a number", row.id))
    };
    let (loss, on) = match row.metric {
        Metric::Test => (number_after("test:")?, "test"),
        Metric::Validation => (number_after("best validation:")?, "validation"),
    };
    if !loss.is_finite() {
        bail!("{}: the loss is {loss}", row.id);
    }
    let model_line = lines
        .iter()
        .find_map(|l| l.trim_start().strip_prefix("model: "))
        .with_context(|| format!("{}: no model line", row.id))?;
    // The model's part of the line: up to the end of "n_a N" (the post's model has no
    // cell name in front).
    let end = model_line.find("n_a ").map_or(model_line.len(), |i| {
        i + model_line[i..].find(',').unwrap_or(model_line.len() - i)
    });
    let mut model = model_line[..end].to_string();
    if model.starts_with("n_a") {
        model = format!("rnn x 1 layer(s), {model}");
    }
    Ok(RowResult {
        command: format!("charrnn {}", row.args.join(" ")),
        model,
        parameters: number_after("parameters:")? as u64,
        loss,
        on: on.to_string(),
        best_step: number_after("at step")? as u64,
        steps: number_after("(to step")? as u64,
        seconds,
        threads: std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| {
            format!(
                "{} (every core)",
                std::thread::available_parallelism().map_or(1, usize::from)
            )
        }),
        novelty: lines
            .iter()
            .find_map(|l| l.strip_prefix("novelty of 1000 samples: "))
            .map(str::to_string),
        curve,
        note: None,
        date,
        commit: built_from,
        machine: machine(),
    })
}

/// Writes the table (book and README) and the plots from the stored rows.
fn render(root: &Path, store: &BTreeMap<String, RowResult>) -> Result<()> {
    let generated = root.join("book/src/generated");
    let mut md = String::new();
    md.push_str(
        "| data | model | parameters | nats/char | bits/char | wall time | best at step | command |\n\
         |---|---|---:|---:|---:|---:|---:|---|\n",
    );
    let datasets = [Dataset::Dinosaurs, Dataset::Names, Dataset::Shakespeare];
    for dataset in datasets {
        for row in ROWS.iter().filter(|r| r.dataset == dataset) {
            let Some(r) = store.get(row.id) else {
                md.push_str(&format!(
                    "| {} | (not measured yet: `cargo xtask quality --rows {}`) | | | | | | |\n",
                    dataset.key(),
                    row.id
                ));
                continue;
            };
            md.push_str(&format!(
                "| {} ({}) | {} | {} | **{:.4}** | {:.3} | {}, {} | {} of {} | `{}` |\n",
                dataset.key(),
                r.on,
                r.model,
                thousands(r.parameters),
                r.loss,
                r.loss / std::f64::consts::LN_2,
                minutes(r.seconds),
                thread_note(&r.threads),
                r.best_step,
                r.steps,
                r.command
            ));
        }
        for (what, loss, source) in dataset.published() {
            md.push_str(&format!(
                "| {} (published) | {what} | | {loss} | {:.3} | | | {source} |\n",
                dataset.key(),
                published_value(loss) / std::f64::consts::LN_2
            ));
        }
    }
    let measured: Vec<&RowResult> = store.values().collect();
    let mut dates: Vec<&str> = measured.iter().map(|r| r.date.as_str()).collect();
    dates.sort_unstable();
    dates.dedup();
    let mut commits: Vec<&str> = measured.iter().map(|r| r.commit.as_str()).collect();
    commits.sort_unstable();
    commits.dedup();
    let mut machines: Vec<&str> = measured.iter().map(|r| r.machine.as_str()).collect();
    machines.sort_unstable();
    machines.dedup();
    md.push_str(&format!(
        "\nMeasured by `cargo xtask quality` on {} at commit {} on {}. Wall time is the \
         whole command (training, every validation pass, the final test evaluation and \
         novelty report), with the number of threads it ran on \
         (`RAYON_NUM_THREADS`).\n",
        dates.join(", "),
        commits.join(", "),
        machines.join("; "),
    ));
    let notes: Vec<String> = ROWS
        .iter()
        .filter_map(|row| {
            Some(format!(
                "- `{}`: {}",
                row.id,
                store.get(row.id)?.note.as_ref()?
            ))
        })
        .collect();
    if !notes.is_empty() {
        md.push('\n');
        md.push_str(&notes.join("\n"));
        md.push('\n');
    }
    let novelty: Vec<String> = ROWS
        .iter()
        .filter_map(|row| {
            let r = store.get(row.id)?;
            Some(format!("- `{}`: {}", row.id, r.novelty.as_ref()?))
        })
        .collect();
    if !novelty.is_empty() {
        md.push_str(
            "\nNovelty of 1,000 names sampled from each names model's best checkpoint \
             (makemore's report):\n\n",
        );
        md.push_str(&novelty.join("\n"));
        md.push('\n');
    }
    fs::write(generated.join("quality.md"), &md)?;

    // README: the same table between its markers.
    let readme_path = root.join("README.md");
    let readme = fs::read_to_string(&readme_path)?;
    let (begin, end) = ("<!-- quality-table:begin -->", "<!-- quality-table:end -->");
    match (readme.find(begin), readme.find(end)) {
        (Some(b), Some(e)) if b < e => {
            let new = format!("{}{begin}\n{md}{}", &readme[..b], &readme[e..]);
            fs::write(&readme_path, new)?;
        }
        _ => bail!("README.md lacks the markers {begin} ... {end}"),
    }

    // One plot per dataset: validation loss against minutes, with the published lines.
    for dataset in datasets {
        let mut curves = Vec::new();
        let mut longest: f64 = 0.0;
        for row in ROWS.iter().filter(|r| r.dataset == dataset) {
            let Some(r) = store.get(row.id) else { continue };
            let points: Vec<(f64, f64)> = r.curve.iter().map(|&(s, _, v)| (s / 60.0, v)).collect();
            longest = points.iter().map(|p| p.0).fold(longest, f64::max);
            curves.push(rnn_plot::Curve {
                label: r.model.clone(),
                points,
            });
        }
        if curves.is_empty() {
            continue;
        }
        // Zoom on the interesting part: from the best loss to a little above the best
        // published one (or the worst final loss).
        let best = curves
            .iter()
            .flat_map(|c| c.points.iter().map(|p| p.1))
            .fold(f64::INFINITY, f64::min);
        let finals = curves
            .iter()
            .filter_map(|c| c.points.last().map(|p| p.1))
            .fold(best, f64::max);
        let top = dataset
            .published()
            .iter()
            .map(|p| published_value(p.1))
            .fold(finals, f64::max)
            .max(best + 0.2)
            + 0.15;
        for c in &mut curves {
            c.points.retain(|p| p.1 <= top);
        }
        for (what, loss, _) in dataset.published() {
            let value = published_value(loss);
            if value <= top {
                curves.push(rnn_plot::Curve {
                    label: format!("{what}: {loss} (published)"),
                    points: vec![(0.0, value), (longest, value)],
                });
            }
        }
        let plot = rnn_plot::curves(
            &curves,
            dataset.title(),
            "wall-clock minutes on this machine",
            "validation loss (nats/char)",
        )?;
        plot.save_as(
            &generated.join(format!("quality-{}.svg", dataset.key())),
            rnn_plot::Format::Svg,
        )?;
        eprintln!("xtask: wrote quality-{}.svg", dataset.key());
    }
    eprintln!("xtask: wrote book/src/generated/quality.md and the README's table");
    Ok(())
}

/// A published number as written ("2.10") as a value.
fn published_value(text: &str) -> f64 {
    text.parse().unwrap_or(f64::NAN)
}

/// "1" → "1 thread"; "2 (every core)" → "2 threads".
fn thread_note(threads: &str) -> String {
    let n = threads.split_whitespace().next().unwrap_or(threads);
    if n == "1" {
        "1 thread".to_string()
    } else {
        format!("{n} threads")
    }
}

/// 1234567 → "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 754.2 → "12.6 min"; under a minute in seconds.
fn minutes(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.0} s")
    } else {
        format!("{:.1} min", seconds / 60.0)
    }
}

fn today() -> Result<String> {
    let out = Command::new("date").arg("+%Y-%m-%d").output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The short commit, with "+changes" when the tree differs from it.
fn commit(root: &Path) -> Result<String> {
    let git = |args: &[&str]| -> Result<String> {
        let out = Command::new("git").current_dir(root).args(args).output()?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short", "HEAD"])?;
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"])?.is_empty();
    Ok(if dirty {
        format!("{head}+changes")
    } else {
        head
    })
}

/// "AMD EPYC 9B14, 2 cores" from /proc/cpuinfo.
fn machine() -> String {
    let info = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let name = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, v)| v.trim());
    // Every core of the machine, not the ones this process may run on (taskset).
    let cores = info
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count()
        .max(1);
    format!("{name}, {cores} cores")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(minutes(42.0), "42 s");
        assert_eq!(minutes(754.2), "12.6 min");
    }

    #[test]
    fn published_numbers_parse() {
        for d in [Dataset::Dinosaurs, Dataset::Names, Dataset::Shakespeare] {
            for (_, loss, _) in d.published() {
                assert!(published_value(loss).is_finite(), "{loss}");
            }
        }
    }

    #[test]
    fn row_ids_are_unique() {
        let mut ids: Vec<&str> = ROWS.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), ROWS.len());
    }
}
