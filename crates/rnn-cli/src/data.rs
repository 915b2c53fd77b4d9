//! Where training text comes from: a file, or the bundled dinosaur names (embedded in the
//! binary, so `charrnn train` works from any directory).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use rnn_data::{Corpus, CorpusMode, CorpusOptions};

/// The bundled dinosaur genus names, one per line.
pub const DINOSAURS: &str = include_str!("../../../data/dinosaurs.txt");

/// The origin label of the bundled names, as stored in checkpoints.
pub const DINOSAURS_ORIGIN: &str = "bundled:dinosaurs.txt";

/// How `charrnn import` without `--data` marks a checkpoint's origin: this prefix, then the
/// safetensors file.
pub const IMPORTED_PREFIX: &str = "imported:";

/// A text to train or evaluate on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSource {
    /// The embedded dinosaur names.
    Dinosaurs,
    /// A file, as given on the command line.
    File(PathBuf),
}

impl DataSource {
    /// `--data PATH` if given, else the bundled names.
    pub fn from_flag(data: Option<&Path>) -> Self {
        data.map_or(DataSource::Dinosaurs, |p| DataSource::File(p.to_path_buf()))
    }

    /// The source named by a checkpoint's `data_origin`.
    pub fn from_origin(origin: &str) -> Result<Self> {
        if origin == DINOSAURS_ORIGIN {
            Ok(DataSource::Dinosaurs)
        } else if let Some(file) = origin.strip_prefix(IMPORTED_PREFIX) {
            bail!(
                "the checkpoint was imported from {file} without --data, so its training text is unknown; pass --data PATH"
            )
        } else if let Some(name) = origin.strip_prefix("bundled:") {
            bail!(
                "unknown bundled data {name:?} (this build bundles only dinosaurs.txt); pass --data PATH"
            )
        } else {
            Ok(DataSource::File(PathBuf::from(origin)))
        }
    }

    /// The label stored in checkpoints: the bundled label, or the file's absolute path (so a
    /// run can be resumed or evaluated from another directory).
    pub fn origin(&self) -> String {
        match self {
            DataSource::Dinosaurs => DINOSAURS_ORIGIN.to_string(),
            DataSource::File(path) => std::fs::canonicalize(path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string(),
        }
    }

    /// The name a run directory is called after: `dinosaurs`, or the file's stem.
    pub fn stem(&self) -> String {
        match self {
            DataSource::Dinosaurs => "dinosaurs".to_string(),
            DataSource::File(path) => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "run".to_string()),
        }
    }

    /// Loads the text as a corpus, reading at most [`rnn_data::DEFAULT_MAX_BYTES`]. Errors
    /// name the file and, for bad bytes, the offset.
    pub fn load(&self, mode: CorpusMode, lowercase: bool) -> Result<Corpus> {
        self.load_limited(mode, lowercase, rnn_data::DEFAULT_MAX_BYTES)
    }

    /// [`DataSource::load`], reading at most `max_bytes` of a file.
    pub fn load_limited(
        &self,
        mode: CorpusMode,
        lowercase: bool,
        max_bytes: u64,
    ) -> Result<Corpus> {
        let options = match mode {
            CorpusMode::Lines => CorpusOptions::lines(),
            CorpusMode::Stream => CorpusOptions::stream(),
        }
        .lowercase(lowercase)
        .max_bytes(max_bytes);
        let corpus = match self {
            DataSource::Dinosaurs => Corpus::from_text(DINOSAURS_ORIGIN, DINOSAURS, options),
            DataSource::File(path) => Corpus::from_path(path, options),
        };
        Ok(corpus?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_names_load_and_round_trip_through_their_label() {
        let corpus = DataSource::Dinosaurs.load(CorpusMode::Lines, true).unwrap();
        assert!(corpus.lines().len() > 1000);
        assert_eq!(corpus.vocab().len(), 27);
        let source = DataSource::from_origin(&DataSource::Dinosaurs.origin()).unwrap();
        assert_eq!(source, DataSource::Dinosaurs);
        assert_eq!(source.stem(), "dinosaurs");
    }

    #[test]
    fn file_stems_name_runs() {
        let source = DataSource::from_flag(Some(Path::new("texts/shakespeare.txt")));
        assert_eq!(source.stem(), "shakespeare");
        assert!(DataSource::from_origin("bundled:other.txt").is_err());
    }
}
