//! Run directories: choosing a fresh one (never overwriting a previous run) and writing the
//! files in it atomically.
//!
//! A run directory holds:
//!
//! ```text
//! checkpoint.json   the whole training state (rnn_engine::Checkpoint), rewritten atomically
//! history.csv       one row per log interval: step,loss,smoothed_loss,val_loss,grad_norm,chars_per_s
//!                   (appended and flushed to disk before each checkpoint)
//! samples.txt       the samples drawn during training, "step N<TAB>sample" per line
//! loss.png/.svg     the loss curve, drawn at the end
//! ```
//!
//! The process training in a directory holds an advisory lock on it ([`RunDir::lock`]).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::checkpoint::CHECKPOINT_FILE;
use crate::output::Outputs;

/// The files a run writes in its directory, besides the lock.
pub const RUN_FILES: [&str; 6] = [
    CHECKPOINT_FILE,
    HISTORY_FILE,
    SAMPLES_FILE,
    "loss.png",
    "loss.svg",
    BEST_FILE,
];
/// The history's file name.
pub const HISTORY_FILE: &str = "history.csv";
/// The samples' file name.
pub const SAMPLES_FILE: &str = "samples.txt";

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
    /// run is refused unless `force` is set.
    pub fn new(out: Option<&Path>, stem: &str, force: bool) -> Result<Self> {
        match out {
            None => Ok(Target::Auto {
                stem: stem.to_string(),
            }),
            Some(dir) => {
                if dir.exists() && !dir.is_dir() {
                    bail!("--out {}: exists and is not a directory", dir.display());
                }
                let taken = RUN_FILES
                    .iter()
                    .find(|f| fs::symlink_metadata(dir.join(f)).is_ok());
                if let (Some(file), false) = (taken, force) {
                    if *file == CHECKPOINT_FILE {
                        bail!(
                            "{} already holds a run ({CHECKPOINT_FILE}); continue it with \
                             --resume {0}, start over with --force, or choose another --out",
                            dir.display()
                        );
                    }
                    bail!(
                        "--out {}: {file} already exists; pass --force to replace it, or choose \
                         another --out",
                        dir.display()
                    );
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

    /// Takes the directory's lock (an advisory lock on the directory itself, so no file is
    /// left behind), so that no second `charrnn train` writes into it while this process
    /// does. The lock is released when the returned handle is dropped, or the process ends,
    /// however it ends.
    pub fn lock(&self) -> Result<File> {
        let dir = File::open(&self.path)
            .with_context(|| format!("cannot open run directory {}", self.path.display()))?;
        match dir.try_lock() {
            Ok(()) => Ok(dir),
            Err(fs::TryLockError::WouldBlock) => bail!(
                "{} is in use: another charrnn is training in it; wait for it to finish or \
                 stop it",
                self.path.display()
            ),
            Err(fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", self.path.display()))
            }
        }
    }

    /// Where each run file goes, checked by the output policy (no devices, directories or
    /// inputs; links followed). Call with the lock held.
    pub fn files(&self, outputs: &Outputs) -> Result<RunFiles> {
        let f = |name: &str| outputs.run_file(&self.file(name));
        Ok(RunFiles {
            checkpoint: f(CHECKPOINT_FILE)?,
            history: f(HISTORY_FILE)?,
            samples: f(SAMPLES_FILE)?,
            loss_png: f("loss.png")?,
            loss_svg: f("loss.svg")?,
            best: f(BEST_FILE)?,
        })
    }
}

/// The checked paths of a run's files.
#[derive(Clone, Debug)]
pub struct RunFiles {
    /// checkpoint.json.
    pub checkpoint: PathBuf,
    /// history.csv.
    pub history: PathBuf,
    /// samples.txt.
    pub samples: PathBuf,
    /// loss.png.
    pub loss_png: PathBuf,
    /// loss.svg.
    pub loss_svg: PathBuf,
    /// best.json: the checkpoint with the lowest validation loss so far.
    pub best: PathBuf,
}

/// The file name of a run's best checkpoint (lowest validation loss).
pub const BEST_FILE: &str = "best.json";

/// Appends rows to `history.csv` (with the header when the file is new or empty) and
/// flushes them to disk.
pub fn append_history(path: &Path, rows: &[rnn_engine::HistoryRow]) -> Result<()> {
    let context = || format!("cannot write {}", path.display());
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(context)?;
    let empty = file.metadata().with_context(context)?.len() == 0;
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(&file);
    if empty {
        w.write_record(rnn_plot::HISTORY_HEADER.split(','))
            .with_context(context)?;
    }
    for row in rows {
        w.serialize(plot_row(row)).with_context(context)?;
    }
    w.flush().with_context(context)?;
    drop(w);
    file.sync_all().with_context(context)
}

/// Cuts `history.csv` back to the rows up to `step` (a resumed run continues from its
/// checkpoint, which may be older than the last rows written), atomically. Returns the
/// number of rows dropped.
pub fn truncate_history(path: &Path, step: u64) -> Result<usize> {
    if !path.exists() {
        return Ok(0);
    }
    let rows = rnn_plot::read_history_csv(path)
        .with_context(|| format!("{}: not a history file", path.display()))?;
    let kept: Vec<rnn_plot::HistoryRow> = rows.iter().filter(|r| r.step <= step).cloned().collect();
    let dropped = rows.len() - kept.len();
    if dropped > 0 {
        rnn_engine::write_atomically(path, |w| rnn_plot::write_history(w, &kept))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(dropped)
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

    fn row(step: u64) -> rnn_engine::HistoryRow {
        rnn_engine::HistoryRow {
            step,
            loss: 20.0,
            smoothed_loss: 22.0,
            val_loss: None,
            grad_norm: 1.5,
            chars_per_s: 1e5,
        }
    }

    #[test]
    fn history_is_appended_under_one_header_and_cut_back_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        append_history(&path, &[row(10), row(20)]).unwrap();
        append_history(&path, &[row(30)]).unwrap();
        let rows = rnn_plot::read_history_csv(&path).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.step).collect::<Vec<_>>(),
            [10, 20, 30]
        );
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("step,").count(), 1, "{text}");
        assert_eq!(truncate_history(&path, 20).unwrap(), 1);
        let rows = rnn_plot::read_history_csv(&path).unwrap();
        assert_eq!(rows.iter().map(|r| r.step).collect::<Vec<_>>(), [10, 20]);
        assert_eq!(truncate_history(&path, 20).unwrap(), 0);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_locked_run_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::existing(dir.path().to_path_buf());
        let held = run.lock().unwrap();
        let err = run.lock().unwrap_err();
        assert!(format!("{err:#}").contains("in use"), "{err:#}");
        drop(held);
        run.lock().unwrap();
    }

    #[test]
    fn an_out_dir_with_a_run_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CHECKPOINT_FILE), "{}").unwrap();
        let err = Target::new(Some(dir.path()), "x", false).unwrap_err();
        assert!(format!("{err:#}").contains("--resume"));
        assert!(Target::new(Some(dir.path()), "x", true).is_ok());
    }
}
