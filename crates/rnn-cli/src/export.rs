//! `charrnn export` and `charrnn import`: a checkpoint's weights as safetensors with
//! PyTorch's names (`rnn = nn.RNN(V, n_a)`, `fc = nn.Linear(n_a, V)`; see `rnn_engine::export`),
//! and back.
//!
//! Both write atomically (a temporary file in the same directory, flushed, then renamed), so
//! an interrupted command leaves the old file or the new one, never half of one, and both
//! follow the output policy of [`crate::output`]: an existing file is replaced only with
//! `--force`, and never when it is the command's own input.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use rnn_engine::Checkpoint;
use rnn_engine::export::{from_safetensors, state_from_import, to_safetensors};

use crate::checkpoint::{self, CHECKPOINT_FILE};
use crate::data::{DataSource, IMPORTED_PREFIX};
use crate::output::{self, Outputs};

/// Arguments of `charrnn export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A checkpoint.json, or a run directory holding one.
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// The safetensors file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Replace --out if it exists (never the checkpoint itself).
    #[arg(long)]
    force: bool,
}

/// Arguments of `charrnn import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A safetensors file with the six tensors and the "rnn" metadata entry (as written by
    /// `charrnn export`).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Where the checkpoint goes: a file ending in .json, or a run directory (created if
    /// needed) that gets checkpoint.json.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// Replace an existing checkpoint at --out.
    #[arg(long)]
    force: bool,
    /// The training text, recorded as the checkpoint's data for `train --resume` and `eval`
    /// [default: none recorded; pass --data to those commands].
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
}

/// Runs `charrnn export`.
pub fn run_export(args: ExportArgs) -> Result<()> {
    let loaded = checkpoint::load(&args.checkpoint)?;
    let target = Outputs::new(args.force)
        .input("--checkpoint", &loaded.path)
        .file("--out", &args.out)?;
    let ckpt = &loaded.checkpoint;
    let bytes = to_safetensors(&ckpt.state, ckpt.dtype);
    output::write_bytes(&target, &bytes)?;
    println!(
        "wrote {} ({}, n_a {}, vocabulary of {}, step {})",
        args.out.display(),
        ckpt.dtype,
        ckpt.state.model.n_a(),
        ckpt.state.vocab.len(),
        ckpt.state.step
    );
    Ok(())
}

/// Runs `charrnn import`.
pub fn run_import(args: ImportArgs) -> Result<()> {
    let file = &args.file;
    output::regular_input("", file)?;
    let bytes = fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (params, info) =
        from_safetensors(&bytes).with_context(|| format!("cannot import {}", file.display()))?;
    let target = checkpoint_target(&args.out)?;
    let mut outputs = Outputs::new(args.force).input("FILE", file);
    if let Some(data) = &args.data {
        outputs = outputs.input("--data", data);
    }
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    // A directory that does not exist yet is created (after every check) and holds nothing.
    let new_dir = !dir.exists();
    let target = if new_dir {
        target
    } else {
        outputs.file("--out", &target)?
    };
    let state = state_from_import(params, &info);
    let origin = match &args.data {
        Some(path) => DataSource::File(path.clone()).origin(),
        None => format!("{IMPORTED_PREFIX}{}", file.display()),
    };
    let ckpt = match info.dtype {
        rnn_engine::Dtype::F32 => Checkpoint::new(&state.cast::<f32>(), origin),
        rnn_engine::Dtype::F64 => Checkpoint::new(&state, origin),
    };
    if new_dir {
        fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    ckpt.save(&target)?;
    println!(
        "wrote {} ({}, n_a {}, vocabulary of {}, step {})",
        target.display(),
        info.dtype,
        ckpt.state.model.n_a(),
        info.vocab.len(),
        info.step
    );
    Ok(())
}

/// The checkpoint file `--out` names: `PATH` itself if it ends in `.json`, else
/// `PATH/checkpoint.json` (whether it may be replaced is the output policy's question).
fn checkpoint_target(out: &Path) -> Result<PathBuf> {
    let is_json = out.extension().is_some_and(|e| e == "json");
    let target = if is_json && !out.is_dir() {
        out.to_path_buf()
    } else {
        if out.exists() && !out.is_dir() {
            bail!(
                "--out {}: exists and is not a directory (name a new .json file or a directory)",
                out.display()
            );
        }
        out.join(CHECKPOINT_FILE)
    };
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_names_a_json_file_or_a_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert_eq!(
            checkpoint_target(&dir.join("c.json")).unwrap(),
            dir.join("c.json")
        );
        assert_eq!(
            checkpoint_target(&dir.join("run")).unwrap(),
            dir.join("run").join(CHECKPOINT_FILE)
        );
        fs::write(dir.join("plain"), "").unwrap();
        assert!(checkpoint_target(&dir.join("plain")).is_err());
    }
}
