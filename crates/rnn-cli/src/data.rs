//! Where training text comes from: a file, or a text bundled with the binary (the
//! dinosaur names, makemore's names with its train/test split, Tiny Shakespeare), so that
//! `charrnn train` and its presets work from any directory.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use rnn_data::{Corpus, CorpusMode, CorpusOptions};

/// The bundled dinosaur genus names, one per line.
pub const DINOSAURS: &str = include_str!("../../../data/dinosaurs.txt");

/// How `charrnn import` without `--data` marks a checkpoint's origin: this prefix, then the
/// safetensors file.
pub const IMPORTED_PREFIX: &str = "imported:";

/// A text compiled into the binary (`data/README.md` gives their provenance).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bundled {
    /// The dinosaur genus names of the post.
    Dinosaurs,
    /// makemore's names.txt, its training side (31,033 names).
    NamesTrain,
    /// makemore's names.txt, its test side (1,000 names).
    NamesTest,
    /// char-rnn's Tiny Shakespeare (1,115,394 characters).
    Shakespeare,
}

impl Bundled {
    const ALL: [Bundled; 4] = [
        Bundled::Dinosaurs,
        Bundled::NamesTrain,
        Bundled::NamesTest,
        Bundled::Shakespeare,
    ];

    /// The file name in `data/`.
    pub fn file(self) -> &'static str {
        match self {
            Bundled::Dinosaurs => "dinosaurs.txt",
            Bundled::NamesTrain => "names-train.txt",
            Bundled::NamesTest => "names-test.txt",
            Bundled::Shakespeare => "tinyshakespeare.txt",
        }
    }

    /// The text.
    pub fn text(self) -> &'static str {
        match self {
            Bundled::Dinosaurs => DINOSAURS,
            Bundled::NamesTrain => include_str!("../../../data/names-train.txt"),
            Bundled::NamesTest => include_str!("../../../data/names-test.txt"),
            Bundled::Shakespeare => include_str!("../../../data/tinyshakespeare.txt"),
        }
    }

    /// What a run directory trained on it is called.
    fn stem(self) -> &'static str {
        match self {
            Bundled::Dinosaurs => "dinosaurs",
            Bundled::NamesTrain => "names",
            Bundled::NamesTest => "names-test",
            Bundled::Shakespeare => "shakespeare",
        }
    }
}

/// A text to train or evaluate on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSource {
    /// A text compiled into the binary.
    Bundled(Bundled),
    /// A file, as given on the command line.
    File(PathBuf),
}

impl DataSource {
    /// `--data PATH` if given, else `default`.
    pub fn from_flag_or(data: Option<&Path>, default: Bundled) -> Self {
        data.map_or(DataSource::Bundled(default), |p| {
            DataSource::File(p.to_path_buf())
        })
    }

    /// The source named by a checkpoint's `data_origin`.
    pub fn from_origin(origin: &str) -> Result<Self> {
        if let Some(file) = origin.strip_prefix(IMPORTED_PREFIX) {
            bail!(
                "the checkpoint was imported from {file} without --data, so its training text is unknown; pass --data PATH"
            )
        } else if let Some(name) = origin.strip_prefix("bundled:") {
            match Bundled::ALL.into_iter().find(|b| b.file() == name) {
                Some(b) => Ok(DataSource::Bundled(b)),
                None => bail!(
                    "unknown bundled data {name:?} (this build bundles {}); pass --data PATH",
                    Bundled::ALL.map(Bundled::file).join(", ")
                ),
            }
        } else {
            Ok(DataSource::File(PathBuf::from(origin)))
        }
    }

    /// The label stored in checkpoints: `bundled:` and the file name, or the file's
    /// absolute path (so a run can be resumed or evaluated from another directory).
    pub fn origin(&self) -> String {
        match self {
            DataSource::Bundled(b) => format!("bundled:{}", b.file()),
            DataSource::File(path) => std::fs::canonicalize(path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string(),
        }
    }

    /// The name a run directory is called after: the bundled text's name, or the file's
    /// stem.
    pub fn stem(&self) -> String {
        match self {
            DataSource::Bundled(b) => b.stem().to_string(),
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
            DataSource::Bundled(b) => Corpus::from_text(self.origin(), b.text(), options),
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
        let dinosaurs = DataSource::Bundled(Bundled::Dinosaurs);
        let corpus = dinosaurs.load(CorpusMode::Lines, true).unwrap();
        assert!(corpus.lines().len() > 1000);
        assert_eq!(corpus.vocab().len(), 27);
        assert_eq!(dinosaurs.origin(), "bundled:dinosaurs.txt");
        let source = DataSource::from_origin(&dinosaurs.origin()).unwrap();
        assert_eq!(source, dinosaurs);
        assert_eq!(source.stem(), "dinosaurs");
        // makemore's split and Tiny Shakespeare, as data/README.md counts them.
        for (b, lines) in [(Bundled::NamesTrain, 31_033), (Bundled::NamesTest, 1_000)] {
            let c = DataSource::Bundled(b)
                .load(CorpusMode::Lines, false)
                .unwrap();
            assert_eq!(c.lines().len(), lines);
            let back = DataSource::from_origin(&DataSource::Bundled(b).origin()).unwrap();
            assert_eq!(back, DataSource::Bundled(b));
        }
        let s = DataSource::Bundled(Bundled::Shakespeare)
            .load(CorpusMode::Stream, false)
            .unwrap();
        assert_eq!(s.n_chars(), 1_115_394);
        assert_eq!(s.vocab().len(), 65);
    }

    #[test]
    fn file_stems_name_runs() {
        let source =
            DataSource::from_flag_or(Some(Path::new("texts/shakespeare.txt")), Bundled::Dinosaurs);
        assert_eq!(source.stem(), "shakespeare");
        assert!(DataSource::from_origin("bundled:other.txt").is_err());
    }
}
