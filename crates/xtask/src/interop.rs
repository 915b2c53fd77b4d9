//! `cargo xtask interop`: checks that an exported safetensors file means the same model
//! outside this project, without PyTorch.
//!
//! For two tiny models (f64 names, f32 stream) it trains with `charrnn`, exports, checks
//! that export → import → export is byte-identical, writes charrnn's next-character
//! probabilities for a fixed text (`charrnn probs --json`), and runs
//! `crates/xtask/interop_check.py`, which loads the file with the `safetensors` package and
//! recomputes the probabilities with NumPy (to 1e-6). The Python packages live in a virtual
//! environment under `target/interop-venv`, installed when missing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{self, root};

/// The packages the check script needs, pinned.
const PIP_PACKAGES: &[&str] = &["numpy==2.4.6", "safetensors==0.8.0"];

/// The largest difference allowed between NumPy's probabilities and charrnn's.
const TOLERANCE: &str = "1e-6";

/// One model to check: how to train it and the text to read.
struct Case {
    name: &'static str,
    train: &'static [&'static str],
    text: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "names-f64",
        train: &["--steps", "300", "--hidden", "16", "--dtype", "f64"],
        text: "tyrannosaurus",
    },
    Case {
        name: "stream-f32",
        train: &[
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
        ],
        text: "stegosaurus\nvelociraptor\n",
    },
];

/// `cargo xtask interop`.
pub fn run(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("`cargo xtask interop` takes no arguments, got {arg:?}");
    }
    let root = root();
    util::run(
        Command::new("cargo")
            .current_dir(&root)
            .args(["build", "-p", "rnn-cli", "--bin", "charrnn"]),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let charrnn = target.join("debug").join("charrnn");
    let python = venv(&target)?;

    let work = target.join("xtask-interop");
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("cannot remove {}", work.display()))?;
    }
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    for case in CASES {
        let dir = work.join(case.name);
        let model = work.join(format!("{}.safetensors", case.name));
        let probs = work.join(format!("{}.probs.json", case.name));
        util::run(
            Command::new(&charrnn)
                .args(["train", "--seed", "7", "--sample-every", "0", "--out"])
                .arg(&dir)
                .args(case.train)
                .stdout(std::process::Stdio::null()),
        )?;
        util::run(
            Command::new(&charrnn)
                .args(["export", "--checkpoint"])
                .arg(&dir)
                .arg("--out")
                .arg(&model),
        )?;
        same_after_import(&charrnn, &work, case.name, &model)?;
        let output = Command::new(&charrnn)
            .args(["probs", "--json", "--checkpoint"])
            .arg(&dir)
            .args(["--text", case.text])
            .output()
            .context("cannot run charrnn probs")?;
        if !output.status.success() {
            bail!(
                "charrnn probs failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        fs::write(&probs, &output.stdout)
            .with_context(|| format!("cannot write {}", probs.display()))?;
        util::run(
            Command::new(&python)
                .arg(root.join("crates/xtask/interop_check.py"))
                .arg(&model)
                .arg(&probs)
                .args(["--tol", TOLERANCE]),
        )?;
    }
    eprintln!("xtask: interop ok ({} models)", CASES.len());
    Ok(())
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
            .arg(&imported),
    )?;
    util::run(
        Command::new(charrnn)
            .args(["export", "--checkpoint"])
            .arg(&imported)
            .arg("--out")
            .arg(&again),
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

/// The venv's Python, with the pinned packages installed (only when missing).
fn venv(target: &Path) -> Result<PathBuf> {
    util::python_venv(&target.join("interop-venv"), PIP_PACKAGES)
}
