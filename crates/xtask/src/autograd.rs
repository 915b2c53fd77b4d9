//! `cargo xtask autograd`: PyTorch's autograd as an oracle for the reference's GRU, LSTM
//! and stacked layers.
//!
//! Runs the `cells_oracle` example of the `rnn` crate, which writes random cases (every
//! cell, 1 to 3 layers, f64, no dropout, batches of 2 or 3, 3 to 6 steps) with weights
//! under PyTorch's names and the reference's loss and gradients, then
//! `crates/xtask/python/autograd_check.py`, which loads the weights into
//! `nn.RNN`/`nn.GRU`/`nn.LSTM` + `nn.Linear`, recomputes everything with autograd and
//! fails on any relative difference above 1e-10. The versions and the worst error go to
//! `book/src/generated/autograd.txt`, which chapter 10.1 includes.
//!
//! PyTorch lives in the virtual environment `torch-venv` in the target directory, shared
//! with `cargo xtask interop` (one install, several GB) and created with pip when
//! `torch==2.15.0 numpy==2.4.6 safetensors==0.8.0` are missing.
//! `TORCH_PYTHON=/path/to/python` (or `AUTOGRAD_PYTHON`, its older name) uses an existing
//! interpreter that has them instead.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{self, root};

/// The largest relative difference allowed between autograd and the reference.
const TOLERANCE: &str = "1e-10";

/// `cargo xtask autograd`.
pub fn run(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("`cargo xtask autograd` takes no arguments, got {arg:?}");
    }
    let root = root();
    let target = util::target_dir();
    let python = util::torch_python()?;
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
    let mut check = Command::new(&python);
    check
        .arg(root.join("crates/xtask/python/autograd_check.py"))
        .arg(&cases)
        .args(["--tol", TOLERANCE]);
    let (printed, status) = util::output_any_status(&mut check)?;
    print!("{printed}");
    if !status.success() {
        bail!("the autograd check failed with {status} (see above)");
    }
    // Chapter 10.1 quotes the run: the versions and the worst error, never retyped.
    let quoted: Vec<&str> = printed
        .lines()
        .filter(|l| l.starts_with("torch ") || l.starts_with("worst relative error"))
        .collect();
    if quoted.len() != 2 {
        bail!("the autograd check printed no version line or no worst error");
    }
    let generated = root.join("book/src/generated/autograd.txt");
    let text = format!("$ cargo xtask autograd\n{}\n", quoted.join("\n"));
    std::fs::write(&generated, text)
        .with_context(|| format!("cannot write {}", generated.display()))?;
    eprintln!("xtask: autograd ok; wrote {}", generated.display());
    Ok(())
}
