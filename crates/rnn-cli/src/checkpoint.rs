//! Finding and loading checkpoints given on the command line.

use std::path::{Path, PathBuf};

use anyhow::Result;
use rnn_engine::Checkpoint;

/// The checkpoint file's name inside a run directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.json";

/// A loaded checkpoint and where it came from.
#[derive(Debug)]
pub struct Loaded {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The checkpoint file.
    pub path: PathBuf,
}

impl Loaded {
    /// The run directory: the folder that holds the checkpoint file.
    pub fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

/// The run directory of `path` (a run directory, or a checkpoint file in one).
pub fn run_dir_of(path: &Path) -> PathBuf {
    if path.is_dir() {
        return path.to_path_buf();
    }
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Loads `path`: a checkpoint file, or a run directory holding `checkpoint.json`.
pub fn load(path: &Path) -> Result<Loaded> {
    let file = if path.is_dir() {
        path.join(CHECKPOINT_FILE)
    } else {
        path.to_path_buf()
    };
    crate::output::regular_input("", &file)?;
    let checkpoint = Checkpoint::load(&file)?;
    Ok(Loaded {
        checkpoint,
        path: file,
    })
}
