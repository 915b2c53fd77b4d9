//! `cargo xtask interop`: checks that an exported safetensors file means the same model
//! outside this project, in NumPy and in PyTorch.
//!
//! It trains small models with `charrnn` for every cell (rnn, gru, lstm) with one and with
//! two layers (dropout 0.2 for two): names mode on the bundled dinosaur names (the
//! dinosaurs preset, f64), stream mode with `--preset text --hidden 16` on a short text
//! written here (f32), and the vanilla stream model on the names of the first check (f32).
//! For each it exports, checks that export → import → export is byte-identical, and writes
//! charrnn's next-character probabilities for a fixed text (`charrnn probs --json`) and its
//! loss per character on a text (`charrnn eval --json`). Then
//! `crates/xtask/python/interop_check.py` loads every file with the `safetensors` package,
//! recomputes the probabilities with NumPy from PyTorch's documented equations and with
//! `nn.RNN`/`nn.GRU`/`nn.LSTM` + `nn.Linear` loaded by name (`load_state_dict`, strict), in
//! float64 and in the file's dtype, recomputes the loss per character as `charrnn eval`
//! does (stream mode: chunks of seq_len, state carried), prints a table and fails on any
//! difference above 1e-12 (f64 models) or 1e-5 (f32 models; relative for the loss).
//!
//! Python lives in the virtual environment `torch-venv` in the target directory, shared
//! with `cargo xtask autograd` (`torch==2.15.0 numpy==2.4.6 safetensors==0.8.0`, several
//! GB, installed with pip when missing). `TORCH_PYTHON=/path/to/python` (or
//! `AUTOGRAD_PYTHON`) uses an existing interpreter that has them instead.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::util::{self, root};

/// The stream models' training text (and the text their loss is checked on).
const TEXT: &str = "\
the small model reads one character at a time and guesses the next.
a gated cell keeps what it needs and forgets the rest.
two layers read the same text: the lower one passes its state up.
when the guess is good the loss is low; when it is bad the loss is high.
we train for a few steps only, so the model has not learnt much yet.
that is fine: the check asks only that every program computes the same numbers.
the quick brown fox jumps over the lazy dog, and the dog does not mind.
read it again, carry the state across each chunk, and add up the losses.
";

/// Names the dinosaur models' loss is checked on (in their vocabulary).
const NAMES: &str = "tyrannosaurus\nstegosaurus\nvelociraptor\ntriceratops\nbrachiosaurus\n\
                     ankylosaurus\nparasaurolophus\ndiplodocus\niguanodon\nspinosaurus\n";

/// Where a case trains and what its loss is checked on.
#[derive(Clone, Copy)]
enum Corpus {
    /// The bundled dinosaur names (no `--data`); the loss on [`NAMES`].
    Dinosaurs,
    /// [`TEXT`] for both.
    Text,
}

/// One model to check: how to train it and the text to read.
struct Case {
    name: String,
    train: Vec<String>,
    corpus: Corpus,
    text: &'static str,
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Every case: the two vanilla models of the first version of this check, then each cell
/// with one and two layers in names mode (f64) and in stream mode (f32).
fn cases() -> Vec<Case> {
    let mut cases = vec![
        Case {
            name: "names-rnn-1".into(),
            train: strings(&["--steps", "300", "--hidden", "16", "--dtype", "f64"]),
            corpus: Corpus::Dinosaurs,
            text: "tyrannosaurus",
        },
        Case {
            name: "dinos-stream-rnn-1".into(),
            train: strings(&[
                "--mode",
                "stream",
                "--optimizer",
                "adam",
                "--lr",
                "0.01",
                "--batch",
                "4",
                "--seq-len",
                "16",
                "--steps",
                "200",
                "--hidden",
                "24",
                "--dtype",
                "f32",
            ]),
            corpus: Corpus::Dinosaurs,
            text: "stegosaurus\nvelociraptor\n",
        },
    ];
    for cell in ["rnn", "gru", "lstm"] {
        for layers in [1, 2] {
            let depth: &[&str] = if layers == 2 {
                &["--layers", "2", "--dropout", "0.2"]
            } else {
                &[]
            };
            if !(cell == "rnn" && layers == 1) {
                let mut train = strings(&["--cell", cell, "--steps", "100", "--hidden", "16"]);
                train.extend(strings(depth));
                cases.push(Case {
                    name: format!("names-{cell}-{layers}"),
                    train,
                    corpus: Corpus::Dinosaurs,
                    text: "tyrannosaurus",
                });
            }
            let mut train = strings(&[
                "--mode", "stream", "--preset", "text", "--cell", cell, "--hidden", "16",
                "--steps", "40",
            ]);
            train.extend(strings(depth));
            cases.push(Case {
                name: format!("text-{cell}-{layers}"),
                train,
                corpus: Corpus::Text,
                text: "the gated cell reads the text: the loss is low.\nthe dog",
            });
        }
    }
    cases
}

/// `cargo xtask interop`.
pub fn run(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("`cargo xtask interop` takes no arguments, got {arg:?}");
    }
    let charrnn = build_charrnn()?;
    let python = util::torch_python()?;
    let started = Instant::now();

    let work = util::target_dir().join("xtask-interop");
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("cannot remove {}", work.display()))?;
    }
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let text = work.join("text.txt");
    let names = work.join("names.txt");
    write(&text, TEXT)?;
    write(&names, NAMES)?;

    let cases = cases();
    let mut manifest = String::from("[\n");
    for (i, case) in cases.iter().enumerate() {
        let dir = work.join(&case.name);
        let model = work.join(format!("{}.safetensors", case.name));
        let probs = work.join(format!("{}.probs.json", case.name));
        let eval = work.join(format!("{}.eval.json", case.name));
        let eval_data = match case.corpus {
            Corpus::Dinosaurs => &names,
            Corpus::Text => &text,
        };
        let mut train = Command::new(&charrnn);
        train
            .args(["train", "--seed", "7", "--sample-every", "0", "--out"])
            .arg(&dir)
            .args(&case.train)
            .stdout(Stdio::null());
        if let Corpus::Text = case.corpus {
            train.arg("--data").arg(&text);
        }
        util::run(&mut train)?;
        util::run(
            Command::new(&charrnn)
                .args(["export", "--checkpoint"])
                .arg(&dir)
                .arg("--out")
                .arg(&model)
                .stdout(Stdio::null()),
        )?;
        same_after_import(&charrnn, &work, &case.name, &model)?;
        let mut cmd = Command::new(&charrnn);
        cmd.args(["probs", "--json", "--checkpoint"])
            .arg(&dir)
            .args(["--text", case.text]);
        write(&probs, &stdout_of(&mut cmd)?)?;
        let mut cmd = Command::new(&charrnn);
        cmd.args(["eval", "--json", "--checkpoint"])
            .arg(&dir)
            .arg("--data")
            .arg(eval_data);
        write(&eval, &stdout_of(&mut cmd)?)?;
        let _ = writeln!(
            manifest,
            "  {{\"name\": {}, \"model\": {}, \"probs\": {}, \"eval\": {}, \"eval_data\": {}}}{}",
            json_string(&case.name),
            json_path(&model)?,
            json_path(&probs)?,
            json_path(&eval)?,
            json_path(eval_data)?,
            if i + 1 < cases.len() { "," } else { "" }
        );
    }
    manifest.push_str("]\n");
    let manifest_path = work.join("manifest.json");
    write(&manifest_path, &manifest)?;
    util::run(
        Command::new(&python)
            .arg(root().join("crates/xtask/python/interop_check.py"))
            .arg(&manifest_path),
    )?;
    eprintln!(
        "xtask: interop ok ({} models, {:.1} s after building charrnn)",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Builds `charrnn` (dev profile) and returns the path cargo reports for it, wherever the
/// target directory is (`CARGO_TARGET_DIR`, `build.target-dir`, or `target/`).
fn build_charrnn() -> Result<PathBuf> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root())
        .args(["build", "-p", "rnn-cli", "--bin", "charrnn"])
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit());
    eprintln!("xtask: $ {cmd:?}");
    let output = cmd.output().context("cannot run cargo build")?;
    if !output.status.success() {
        bail!("cargo build of charrnn failed with {}", output.status);
    }
    // Each artifact is one JSON line; charrnn's has "executable":"<path>". Paths with a
    // quote or backslash would be escaped, which this does not undo, so they are refused.
    let key = "\"executable\":\"";
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
        .filter_map(|l| {
            let rest = &l[l.find(key)? + key.len()..];
            Some(PathBuf::from(&rest[..rest.find('"')?]))
        })
        .find(|p| p.file_name().is_some_and(|n| n == "charrnn") && p.is_file())
        .context("cargo build did not report charrnn's executable (or its path needs escaping)")
}

/// A command's stdout, failing with its stderr.
fn stdout_of(cmd: &mut Command) -> Result<String> {
    eprintln!("xtask: $ {cmd:?}");
    let output = cmd
        .output()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    if !output.status.success() {
        bail!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).context("output is not UTF-8")
}

fn write(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_path(path: &Path) -> Result<String> {
    let s = path
        .to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))?;
    Ok(json_string(s))
}

/// Imports `model` into a new checkpoint, exports that, and compares the bytes.
fn same_after_import(charrnn: &Path, work: &Path, name: &str, model: &Path) -> Result<()> {
    let imported = work.join(format!("{name}-imported"));
    let again = work.join(format!("{name}-again.safetensors"));
    util::run(
        Command::new(charrnn)
            .arg("import")
            .arg(model)
            .arg("--out")
            .arg(&imported)
            .stdout(Stdio::null()),
    )?;
    util::run(
        Command::new(charrnn)
            .args(["export", "--checkpoint"])
            .arg(&imported)
            .arg("--out")
            .arg(&again)
            .stdout(Stdio::null()),
    )?;
    let read = |p: &Path| fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    if read(model)? != read(&again)? {
        bail!(
            "{} and {} differ: export → import → export is not byte-identical",
            model.display(),
            again.display()
        );
    }
    Ok(())
}
