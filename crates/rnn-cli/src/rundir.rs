//! Run directories: choosing a fresh one (never overwriting a previous run) and writing the
//! files in it atomically.
//!
//! A run directory holds:
//!
//! ```text
//! checkpoint.json   the whole training state (rnn_engine::Checkpoint), rewritten atomically
//! history.csv       one row per log interval: step,loss,smoothed_loss,val_loss,grad_norm,chars_per_s
//! samples.txt       the samples drawn during training, "step N<TAB>sample" per line
//! loss.png/.svg     the loss curve, drawn at the end
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::checkpoint::CHECKPOINT_FILE;

/// The folder automatic run directories go in, relative to the working directory.
pub const RUNS_DIR: &str = "runs";

/// Where a new run will go, decided before anything is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `runs/<stem>`, or `runs/<stem>-2`, `-3`, ... if taken.
    Auto {
        /// The data file's stem.
        stem: String,
    },
    /// `--out DIR`.
    Given(PathBuf),
}

impl Target {
    /// Checks `--out` (if any) without creating anything: a directory that already holds a
    /// run is refused.
    pub fn new(out: Option<&Path>, stem: &str) -> Result<Self> {
        match out {
            None => Ok(Target::Auto {
                stem: stem.to_string(),
            }),
            Some(dir) => {
                if dir.join(CHECKPOINT_FILE).exists() {
                    bail!(
                        "{} already holds a run ({CHECKPOINT_FILE}); continue it with --resume {0}, \
                         or choose another --out",
                        dir.display()
                    );
                }
                if dir.exists() && !dir.is_dir() {
                    bail!("--out {}: exists and is not a directory", dir.display());
                }
                Ok(Target::Given(dir.to_path_buf()))
            }
        }
    }

    /// Creates the directory. Auto directories are claimed with `create_dir`, which fails
    /// if the name is taken, so two runs started at once never share one.
    pub fn create(&self) -> Result<RunDir> {
        match self {
            Target::Given(dir) => {
                let existed = dir.is_dir();
                fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create run directory {}", dir.display()))?;
                Ok(RunDir {
                    path: dir.clone(),
                    created: !existed,
                })
            }
            Target::Auto { stem } => {
                let runs = Path::new(RUNS_DIR);
                fs::create_dir_all(runs)
                    .with_context(|| format!("cannot create {}", runs.display()))?;
                for k in 1u32.. {
                    let name = if k == 1 {
                        stem.clone()
                    } else {
                        format!("{stem}-{k}")
                    };
                    let path = runs.join(name);
                    match fs::create_dir(&path) {
                        Ok(()) => {
                            return Ok(RunDir {
                                path,
                                created: true,
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                        Err(e) => {
                            return Err(e).with_context(|| {
                                format!("cannot create run directory {}", path.display())
                            });
                        }
                    }
                }
                unreachable!("u32 range exhausted")
            }
        }
    }
}

/// A run directory in use.
#[derive(Clone, Debug)]
pub struct RunDir {
    /// Its path.
    pub path: PathBuf,
    /// Whether this process created it (and may remove it if the run fails before its first
    /// checkpoint).
    pub created: bool,
}

impl RunDir {
    /// An existing run directory (for `--resume`).
    pub fn existing(path: PathBuf) -> Self {
        RunDir {
            path,
            created: false,
        }
    }

    /// A file in the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

/// Writes `history.csv` atomically (`rnn_engine::write_atomically`: a temporary file in the same
/// directory, flushed to disk, then renamed).
pub fn write_history(path: &Path, rows: &[rnn_engine::HistoryRow]) -> Result<()> {
    let rows: Vec<rnn_plot::HistoryRow> = rows.iter().map(plot_row).collect();
    rnn_engine::write_atomically(path, |w| rnn_plot::write_history(w, &rows))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The same row for the plotting crate (which does not depend on `rnn`).
pub fn plot_row(r: &rnn_engine::HistoryRow) -> rnn_plot::HistoryRow {
    rnn_plot::HistoryRow {
        step: r.step,
        loss: r.loss,
        smoothed_loss: r.smoothed_loss,
        val_loss: r.val_loss,
        grad_norm: r.grad_norm,
        chars_per_s: r.chars_per_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_written_with_its_header_and_no_temporary_file_remains() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.csv");
        let row = rnn_engine::HistoryRow {
            step: 10,
            loss: 20.0,
            smoothed_loss: 22.0,
            val_loss: None,
            grad_norm: 1.5,
            chars_per_s: 1e5,
        };
        write_history(&path, &[row]).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(rnn_plot::HISTORY_HEADER), "{text}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_out_dir_with_a_run_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CHECKPOINT_FILE), "{}").unwrap();
        let err = Target::new(Some(dir.path()), "x").unwrap_err();
        assert!(format!("{err:#}").contains("--resume"));
    }
}
