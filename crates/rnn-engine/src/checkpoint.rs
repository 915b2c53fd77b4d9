//! Checkpoints: the whole state of a run in one JSON file, written atomically.
//!
//! This is the only module of the crate that touches files.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Dtype, Float, Model, TrainState};
use rnn::DeepShape;

/// The checkpoint format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// A training run saved to disk: the format version, the element type the run trains in,
/// and its [`TrainState`] (configuration, vocabulary, parameters, optimizer state, step,
/// sampling generator, carried hidden state, smoothed loss and history).
///
/// Numbers are stored as `f64` whatever the run's type: `f32` values convert to `f64` and
/// back exactly, so a resumed `f32` run continues bit for bit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Always [`FORMAT_VERSION`] when written by this build.
    pub format_version: u32,
    /// The element type of the run.
    pub dtype: Dtype,
    /// Where the training text came from (a path, or a label for built-in data).
    pub data_origin: String,
    /// The run's state.
    pub state: TrainState<f64>,
}

/// A checkpoint that could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing failed. The I/O error is the
    /// [`source`](std::error::Error::source), so print the whole chain (e.g. anyhow's
    /// `{:#}`) to see why.
    #[error("{}: {action}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Not a checkpoint, or damaged.
    #[error("{}: not a valid checkpoint{}: {message}", path.display(), location(*line, *column))]
    Corrupt {
        /// Where parsing failed (1-based), or 0 when the JSON parsed but its content is
        /// wrong (a missing field, a value of the wrong type).
        line: usize,
        /// Where parsing failed (1-based), or 0 as for `line`.
        column: usize,
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// Written by another format version.
    #[error("{}: checkpoint format version {found}, this build reads version {FORMAT_VERSION}", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
    },
    /// Well-formed, but its parts disagree (for example parameter shapes and vocabulary).
    #[error("{}: inconsistent checkpoint: {message}", path.display())]
    Inconsistent {
        /// The file.
        path: PathBuf,
        /// What disagrees.
        message: String,
    },
}

impl Checkpoint {
    /// A checkpoint of `state`, converted to the stored `f64` form.
    pub fn new<F: Float>(state: &TrainState<F>, data_origin: impl Into<String>) -> Self {
        Checkpoint {
            format_version: FORMAT_VERSION,
            dtype: if F::NAME == "f32" {
                Dtype::F32
            } else {
                Dtype::F64
            },
            data_origin: data_origin.into(),
            state: state.cast(),
        }
    }

    /// The state in the element type `F` (pick `F` from [`Checkpoint::dtype`]).
    pub fn state_as<F: Float>(&self) -> TrainState<F> {
        self.state.cast()
    }

    /// Writes the checkpoint to `path` atomically (see [`write_atomically`]): a crash or a
    /// full disk at any moment leaves either the old file or the new one, never a mix.
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        write_atomically(path, |w| {
            serde_json::to_writer(w, self).map_err(std::io::Error::from)
        })
        .map_err(|e| CheckpointError::Io {
            path: path.to_path_buf(),
            action: e.action,
            source: e.source,
        })
    }

    /// Reads and validates a checkpoint.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let file = File::open(path).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            action: "cannot open",
            source,
        })?;
        Self::from_reader(BufReader::new(file), path)
    }

    /// Parses and validates a checkpoint from bytes; `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, CheckpointError> {
        Self::from_reader(bytes, path)
    }

    fn from_reader(reader: impl std::io::Read, path: &Path) -> Result<Self, CheckpointError> {
        // Read the version first so that a future format gets a clear message rather than a
        // parse error about some field.
        let value: serde_json::Value =
            serde_json::from_reader(reader).map_err(|e| corrupt(path, &e))?;
        let found = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| CheckpointError::Corrupt {
                path: path.to_path_buf(),
                line: 1,
                column: 1,
                message: "missing format_version".into(),
            })?;
        if found != u64::from(FORMAT_VERSION) {
            return Err(CheckpointError::Version {
                path: path.to_path_buf(),
                found: u32::try_from(found).unwrap_or(u32::MAX),
            });
        }
        let ckpt: Checkpoint = serde_json::from_value(value).map_err(|e| corrupt(path, &e))?;
        ckpt.check(path)?;
        Ok(ckpt)
    }

    /// Checks that the parts agree: parameter and optimizer shapes against the vocabulary
    /// and hidden size, the carried state against the batch, finite numbers.
    fn check(&self, path: &Path) -> Result<(), CheckpointError> {
        let bad = |message: String| CheckpointError::Inconsistent {
            path: path.to_path_buf(),
            message,
        };
        let st = &self.state;
        if self.dtype != st.config.dtype {
            return Err(bad(format!(
                "element type {} in the header, {} in the configuration",
                self.dtype, st.config.dtype
            )));
        }
        // The configuration first: the shapes below are computed from it.
        st.config
            .validate()
            .map_err(|e| bad(format!("configuration: {e}")))?;
        let v = st.vocab.len();
        let c = &st.config;
        match &st.model {
            Model::Vanilla {
                params,
                optimizer,
                hidden,
            } => {
                if !c.is_vanilla() {
                    return Err(bad(format!(
                        "the configuration says {} layer(s) of {}, the parameters one vanilla layer",
                        c.layers,
                        c.cell.name()
                    )));
                }
                params
                    .check_shapes(v, v)
                    .map_err(|e| bad(format!("{e} (vocabulary of {v})")))?;
                if params.n_a() != c.hidden {
                    return Err(bad(format!(
                        "hidden size {} in the parameters, {} in the configuration",
                        params.n_a(),
                        c.hidden
                    )));
                }
                for acc in [&optimizer.m, &optimizer.v].into_iter().flatten() {
                    acc.check_shapes(v, v)
                        .map_err(|e| bad(format!("optimizer state: {e}")))?;
                    if acc.n_a() != params.n_a() {
                        return Err(bad("optimizer state has another hidden size".into()));
                    }
                }
                if hidden.dim() != (c.hidden, c.batch) {
                    return Err(bad(format!(
                        "carried hidden state has shape {:?}, expected ({}, {})",
                        hidden.dim(),
                        c.hidden,
                        c.batch
                    )));
                }
            }
            Model::Deep(d) => {
                if c.is_vanilla() {
                    return Err(bad(
                        "the configuration says one vanilla layer, the parameters a stack".into(),
                    ));
                }
                let shape = DeepShape {
                    cell: c.cell,
                    n_x: v,
                    n_a: c.hidden,
                    n_y: v,
                    n_layers: c.layers,
                };
                d.check(shape, c.batch).map_err(bad)?;
            }
        }
        if !st.model.all_finite() {
            return Err(bad("parameters contain NaN or infinity".into()));
        }
        Ok(())
    }
}

/// An atomic write that failed: what it was doing, and the operating system's error.
#[derive(Debug, thiserror::Error)]
#[error("{action}")]
pub struct AtomicWriteError {
    /// What was being done ("cannot write", "cannot replace", ...).
    pub action: &'static str,
    /// The operating system's error.
    pub source: std::io::Error,
}

/// Writes a file atomically: `write` fills a temporary file in the same directory, which
/// is flushed to disk and then renamed over `path`. A rename within one file system is
/// atomic, so a crash, a kill or a full disk at any moment leaves either the old file or
/// the new one, never a mix. On failure the temporary file is removed; after a success, so
/// are temporaries that killed writers of the same file left behind.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), AtomicWriteError> {
    let fail = |action| move |source| AtomicWriteError { action, source };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let file = File::create(&tmp).map_err(fail("cannot create temporary file"))?;
        let mut w = BufWriter::new(file);
        write(&mut w).map_err(fail("cannot write"))?;
        w.flush().map_err(fail("cannot write"))?;
        let file = w
            .into_inner()
            .map_err(|e| fail("cannot write")(e.into_error()))?;
        file.sync_all().map_err(fail("cannot flush to disk"))?;
        fs::rename(&tmp, path).map_err(fail("cannot replace"))?;
        // Make the rename itself durable (best effort: not every platform allows
        // opening a directory).
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    match result {
        Ok(()) => remove_stale_temporaries(dir, &name),
        Err(_) => {
            let _ = fs::remove_file(&tmp);
        }
    }
    result
}

/// Removes temporary files that earlier saves of the same checkpoint left behind when their
/// process was killed between creating and renaming them (best effort; they are never read).
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let ours = format!("{prefix}{}", std::process::id());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if file_name.starts_with(&prefix) && file_name != ours {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn corrupt(path: &Path, e: &serde_json::Error) -> CheckpointError {
    // serde_json appends " at line L column C" to syntax errors; the location is given once,
    // by `location`.
    let message = e.to_string();
    let message = match message.rfind(" at line ") {
        Some(i) if e.line() > 0 => message[..i].to_string(),
        _ => message,
    };
    CheckpointError::Corrupt {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message,
    }
}

/// " (line L, column C)", or nothing when the position is unknown (0).
fn location(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" (line {line}, column {column})")
    }
}
