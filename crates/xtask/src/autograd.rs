//! `cargo xtask autograd`: PyTorch's autograd as an oracle for the reference's GRU, LSTM
//! and stacked layers.
//!
//! Runs the `cells_oracle` example of the `rnn` crate, which writes random cases (every
//! cell, 1 to 3 layers, f64, no dropout, batches of 2 or 3, 3 to 6 steps) with weights
//! under PyTorch's names and the reference's loss and gradients, then
//! `crates/xtask/python/autograd_check.py`, which loads the weights into
//! `nn.RNN`/`nn.GRU`/`nn.LSTM` + `nn.Linear`, recomputes everything with autograd and
//! fails on any relative difference above 1e-10.
//!
//! PyTorch lives in a virtual environment under `target/autograd-venv`, installed with pip
//! when missing (several GB). `AUTOGRAD_PYTHON=/path/to/python` uses an existing
//! interpreter that has `torch` instead.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

use crate::util::{self, root};

/// The packages the check script needs, pinned.
const PIP_PACKAGES: &[&str] = &["torch==2.15.0", "numpy==2.4.6"];

/// The largest relative difference allowed between autograd and the reference.
const TOLERANCE: &str = "1e-10";

/// `cargo xtask autograd`.
pub fn run(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("`cargo xtask autograd` takes no arguments, got {arg:?}");
    }
    let root = root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let python = python(&target)?;
    std::fs::create_dir_all(&target)?;
    let cases = target.join("autograd-cases.json");
    util::run(
        Command::new("cargo")
            .current_dir(&root)
            .args([
                "run",
                "--quiet",
                "-p",
                "rnn",
                "--example",
                "cells_oracle",
                "--",
            ])
            .arg(&cases),
    )?;
    util::run(
        Command::new(&python)
            .arg(root.join("crates/xtask/python/autograd_check.py"))
            .arg(&cases)
            .args(["--tol", TOLERANCE]),
    )?;
    eprintln!("xtask: autograd ok");
    Ok(())
}

/// `AUTOGRAD_PYTHON` if set, else the venv's Python with the pinned packages (installed
/// only when missing).
fn python(target: &Path) -> Result<PathBuf> {
    match std::env::var_os("AUTOGRAD_PYTHON").filter(|p| !p.is_empty()) {
        Some(p) => {
            eprintln!("xtask: using AUTOGRAD_PYTHON={}", Path::new(&p).display());
            Ok(PathBuf::from(p))
        }
        None => util::python_venv(&target.join("autograd-venv"), PIP_PACKAGES),
    }
}
