//! Loading a training text, either as one example per line or as one long stream.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::batch::Example;
use crate::vocab::{EncodeError, TokenId, Vocab};

/// How a text is cut into training examples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CorpusMode {
    /// One example per non-blank line, each ending with `'\n'` (dinosaur names, the post's setup).
    Lines,
    /// The whole text as one stream, cut into chunks for truncated BPTT (Shakespeare, min-char-rnn).
    Stream,
}

impl CorpusMode {
    /// The mode's name as written in configs and on the command line: `"lines"` or `"stream"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CorpusMode::Lines => "lines",
            CorpusMode::Stream => "stream",
        }
    }
}

impl fmt::Display for CorpusMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no [`CorpusMode`].
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("unknown corpus mode {input:?}: expected \"lines\" or \"stream\"")]
pub struct ParseCorpusModeError {
    /// The string that was given.
    pub input: String,
}

impl FromStr for CorpusMode {
    type Err = ParseCorpusModeError;

    /// Parses `"lines"` or `"stream"` (exactly, lower case).
    fn from_str(s: &str) -> Result<CorpusMode, ParseCorpusModeError> {
        match s {
            "lines" => Ok(CorpusMode::Lines),
            "stream" => Ok(CorpusMode::Stream),
            _ => Err(ParseCorpusModeError {
                input: s.to_owned(),
            }),
        }
    }
}

/// How to read a corpus. Start from a preset, [`CorpusOptions::lines`] or
/// [`CorpusOptions::stream`], and adjust with the builder methods.
///
/// ```
/// use rnn_data::{CorpusMode, CorpusOptions};
///
/// let options = CorpusOptions::lines().lowercase(true);
/// assert_eq!(options.mode, CorpusMode::Lines);
/// assert!(options.lowercase);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorpusOptions {
    /// One example per line, or one stream.
    pub mode: CorpusMode,
    /// Lower-case the whole text (Unicode-aware) before anything else is done with it.
    pub lowercase: bool,
    /// The largest file [`Corpus::from_path`] reads, in bytes; a longer file (or an endless
    /// stream such as `/dev/urandom`) is an error once this many bytes have been read.
    pub max_bytes: u64,
}

/// The default [`CorpusOptions::max_bytes`]: 1 GiB, far more than a character model trains
/// on in a day here, and small enough to hold in memory.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

impl CorpusOptions {
    /// Lines mode, case kept.
    pub fn lines() -> CorpusOptions {
        CorpusOptions {
            mode: CorpusMode::Lines,
            lowercase: false,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// Stream mode, case kept.
    pub fn stream() -> CorpusOptions {
        CorpusOptions {
            mode: CorpusMode::Stream,
            lowercase: false,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// Sets whether the text is lower-cased.
    #[must_use]
    pub fn lowercase(mut self, lowercase: bool) -> CorpusOptions {
        self.lowercase = lowercase;
        self
    }

    /// Sets the largest file [`Corpus::from_path`] reads.
    #[must_use]
    pub fn max_bytes(mut self, max_bytes: u64) -> CorpusOptions {
        self.max_bytes = max_bytes;
        self
    }
}

/// Why a corpus could not be loaded or split. Each message is one line that starts with the
/// corpus origin (usually the file path).
#[derive(Debug, Error)]
pub enum CorpusError {
    /// The file could not be read. The I/O error is the [`source`](std::error::Error::source),
    /// so print the whole chain (e.g. anyhow's `{:#}`) to see why.
    #[error("{origin}: cannot read file")]
    Io {
        /// The path as given.
        origin: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is longer than [`CorpusOptions::max_bytes`] (or does not end).
    #[error("{origin}: longer than the limit of {limit} bytes (raise it with --max-bytes)")]
    TooLarge {
        /// The path as given.
        origin: String,
        /// The limit.
        limit: u64,
    },
    /// The bytes are not UTF-8.
    #[error("{origin}: invalid UTF-8 at byte {byte_offset}")]
    InvalidUtf8 {
        /// The file path or caller-supplied name.
        origin: String,
        /// Offset of the first byte that is not part of valid UTF-8 (everything before it is valid).
        byte_offset: usize,
    },
    /// There is no usable text: the input is empty or has only whitespace.
    #[error("{origin}: no text (empty, or only blank lines)")]
    Empty {
        /// The file path or caller-supplied name.
        origin: String,
    },
    /// A validation split was asked for that cannot be made.
    #[error("{origin}: cannot split off a validation fraction of {fraction}: {reason}")]
    BadSplit {
        /// The file path or caller-supplied name.
        origin: String,
        /// The fraction that was asked for.
        fraction: f64,
        /// Why it failed.
        reason: String,
    },
}

/// A loaded training text.
///
/// Loading normalizes the text once, so that everything downstream sees the same characters:
/// a leading byte-order mark is dropped, the text is lower-cased if asked, and then
///
/// - in [`CorpusMode::Lines`], the text is split into lines; trailing `'\r'`s are trimmed
///   (so Windows line endings read like Unix ones), lines that are empty or only whitespace are
///   skipped, and other whitespace is kept;
/// - in [`CorpusMode::Stream`], `"\r\n"` becomes `"\n"` and the text is otherwise kept as is.
///
/// # Examples
///
/// ```
/// use rnn_data::{Corpus, CorpusOptions};
///
/// let corpus = Corpus::from_text("<string>", "Aachenosaurus\r\n\r\nAardonyx\r\n", CorpusOptions::lines().lowercase(true))?;
/// assert_eq!(corpus.lines(), ["aachenosaurus", "aardonyx"]);
/// assert_eq!(corpus.text(), "aachenosaurus\naardonyx\n");
/// assert_eq!(corpus.vocab().id('\n'), Some(0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corpus {
    origin: String,
    mode: CorpusMode,
    /// The non-blank lines in Lines mode; empty in Stream mode.
    lines: Vec<String>,
    /// The normalized text (in Lines mode, the lines each followed by `'\n'`).
    text: String,
    n_chars: usize,
    vocab: Vocab,
}

impl Corpus {
    /// Reads the file at `path`; the path, as given, becomes the origin used in error messages.
    ///
    /// # Errors
    ///
    /// [`CorpusError::Io`] if the file cannot be read, and the errors of [`Corpus::from_bytes`].
    pub fn from_path(
        path: impl AsRef<Path>,
        options: CorpusOptions,
    ) -> Result<Corpus, CorpusError> {
        use std::io::Read;
        let path = path.as_ref();
        let origin = path.display().to_string();
        let limit = options.max_bytes;
        // Read at most one byte past the limit, so that an endless input stops.
        let read = std::fs::File::open(path).and_then(|file| {
            let mut bytes = Vec::new();
            file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
            Ok(bytes)
        });
        match read {
            Ok(bytes) if bytes.len() as u64 > limit => Err(CorpusError::TooLarge { origin, limit }),
            Ok(bytes) => Corpus::from_bytes(origin, &bytes, options),
            Err(source) => Err(CorpusError::Io { origin, source }),
        }
    }

    /// Loads a corpus from raw bytes, which must be UTF-8; `origin` names them in errors.
    ///
    /// # Errors
    ///
    /// [`CorpusError::InvalidUtf8`] with the offset of the first invalid byte, and the errors of
    /// [`Corpus::from_text`].
    pub fn from_bytes(
        origin: impl Into<String>,
        bytes: &[u8],
        options: CorpusOptions,
    ) -> Result<Corpus, CorpusError> {
        let origin = origin.into();
        match std::str::from_utf8(bytes) {
            Ok(text) => Corpus::from_text(origin, text, options),
            Err(err) => Err(CorpusError::InvalidUtf8 {
                origin,
                byte_offset: err.valid_up_to(),
            }),
        }
    }

    /// Loads a corpus from a string; `origin` (such as `"<string>"`) names it in errors.
    ///
    /// # Errors
    ///
    /// [`CorpusError::Empty`] if, after normalization, there is no text or only whitespace.
    pub fn from_text(
        origin: impl Into<String>,
        text: &str,
        options: CorpusOptions,
    ) -> Result<Corpus, CorpusError> {
        let origin = origin.into();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let lowered;
        let text = if options.lowercase {
            lowered = text.to_lowercase();
            lowered.as_str()
        } else {
            text
        };
        if text.trim().is_empty() {
            return Err(CorpusError::Empty { origin });
        }
        Ok(match options.mode {
            CorpusMode::Lines => {
                let lines = text
                    .split('\n')
                    .map(|line| line.trim_end_matches('\r'))
                    .filter(|line| !line.trim().is_empty())
                    .map(str::to_owned)
                    .collect();
                Corpus::from_lines(origin, lines)
            }
            CorpusMode::Stream => Corpus::from_stream(origin, text.replace("\r\n", "\n")),
        })
    }

    /// The label used in error messages: the file path as given, or the caller-supplied name.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Lines or stream.
    pub fn mode(&self) -> CorpusMode {
        self.mode
    }

    /// In Lines mode, the non-blank lines without their line endings; in Stream mode, empty.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The normalized text: in Stream mode the whole text, in Lines mode the lines each followed
    /// by `'\n'`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The vocabulary of [`Corpus::text`]; in Lines mode it includes `'\n'` (id 0).
    pub fn vocab(&self) -> Vocab {
        self.vocab.clone()
    }

    /// The number of characters (not bytes) of [`Corpus::text`].
    pub fn n_chars(&self) -> usize {
        self.n_chars
    }

    /// Splits off a held-out validation set, deterministically (no random generator).
    ///
    /// - Lines mode: with `k = round(1 / fraction)`, lines `k - 1, 2k - 1, ...` go to validation
    ///   and the rest to training, so both sides sample the whole file.
    /// - Stream mode: the last `round(fraction * n_chars)` characters go to validation.
    ///
    /// The two sides keep the mode and get the origins `"{origin} (train)"` and
    /// `"{origin} (validation)"`. Each side's [`vocab`](Corpus::vocab) is that of its own text,
    /// which may lack characters of the other: encode both with the vocabulary of the whole corpus.
    ///
    /// # Errors
    ///
    /// [`CorpusError::BadSplit`] if `fraction` is not in `(0, 0.5]` or either side would be empty.
    pub fn split_validation(&self, fraction: f64) -> Result<(Corpus, Corpus), CorpusError> {
        let bad = |reason: String| CorpusError::BadSplit {
            origin: self.origin.clone(),
            fraction,
            reason,
        };
        if !(fraction > 0.0 && fraction <= 0.5) {
            return Err(bad("the fraction must be in (0, 0.5]".to_owned()));
        }
        let train_origin = format!("{} (train)", self.origin);
        let valid_origin = format!("{} (validation)", self.origin);
        match self.mode {
            CorpusMode::Lines => {
                // fraction <= 0.5 makes k >= 2, so training keeps at least every other line.
                let k = (1.0 / fraction).round() as usize;
                let (valid, train): (Vec<_>, Vec<_>) = self
                    .lines
                    .iter()
                    .enumerate()
                    .partition(|(index, _)| (index + 1) % k == 0);
                if valid.is_empty() {
                    let n = self.lines.len();
                    return Err(bad(format!(
                        "{n} line(s) is too few: every {k}th line is held out"
                    )));
                }
                let owned = |side: Vec<(usize, &String)>| {
                    side.into_iter().map(|(_, line)| line.clone()).collect()
                };
                Ok((
                    Corpus::from_lines(train_origin, owned(train)),
                    Corpus::from_lines(valid_origin, owned(valid)),
                ))
            }
            CorpusMode::Stream => {
                let n = self.n_chars;
                let n_valid = (fraction * n as f64).round() as usize;
                if n_valid == 0 || n_valid >= n {
                    return Err(bad(format!("{n} character(s) leave one side empty")));
                }
                let at = self
                    .text
                    .char_indices()
                    .nth(n - n_valid)
                    .map_or(self.text.len(), |(byte, _)| byte);
                let (train, valid) = self.text.split_at(at);
                Ok((
                    Corpus::from_stream(train_origin, train.to_owned()),
                    Corpus::from_stream(valid_origin, valid.to_owned()),
                ))
            }
        }
    }

    /// The training examples of Lines mode, as in the post: for a line `c1..cn`, the inputs are
    /// `[None, c1, .., cn]` (no input at the first step) and the targets `[c1, .., cn, '\n']`.
    /// In Stream mode there are no lines, so no examples; use [`crate::StreamBatches`].
    ///
    /// # Errors
    ///
    /// [`EncodeError::UnknownChar`] for the first character (the closing `'\n'` included) that
    /// `vocab` lacks; its position is a character index into [`Corpus::text`].
    // ANCHOR: line_examples
    pub fn line_examples(&self, vocab: &Vocab) -> Result<Vec<Example>, EncodeError> {
        let mut examples = Vec::with_capacity(self.lines.len());
        let mut line_start = 0; // Character index of the line in `self.text`.
        for line in &self.lines {
            let offset_error =
                |EncodeError::UnknownChar { ch, position }| EncodeError::UnknownChar {
                    ch,
                    position: line_start + position,
                };
            let mut targets: Vec<TokenId> = vocab.encode(line).map_err(offset_error)?;
            let line_len = targets.len();
            let newline = vocab.newline_id().ok_or(EncodeError::UnknownChar {
                ch: '\n',
                position: line_start + line_len,
            })?;
            let inputs = std::iter::once(None)
                .chain(targets.iter().copied().map(Some))
                .collect();
            targets.push(newline);
            examples.push(Example { inputs, targets });
            line_start += line_len + 1;
        }
        Ok(examples)
    }
    // ANCHOR_END: line_examples

    /// Builds a Lines corpus from lines that are already normalized and not all blank.
    fn from_lines(origin: String, lines: Vec<String>) -> Corpus {
        let mut text = String::with_capacity(lines.iter().map(|line| line.len() + 1).sum());
        for line in &lines {
            text.push_str(line);
            text.push('\n');
        }
        Corpus::new(origin, CorpusMode::Lines, lines, text)
    }

    /// Builds a Stream corpus from normalized, non-empty text.
    fn from_stream(origin: String, text: String) -> Corpus {
        Corpus::new(origin, CorpusMode::Stream, Vec::new(), text)
    }

    fn new(origin: String, mode: CorpusMode, lines: Vec<String>, text: String) -> Corpus {
        debug_assert!(!text.is_empty());
        let n_chars = text.chars().count();
        let vocab = Vocab::from_nonempty_chars(text.chars());
        Corpus {
            origin,
            mode,
            lines,
            text,
            n_chars,
            vocab,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(text: &str) -> Result<Corpus, CorpusError> {
        Corpus::from_text("<string>", text, CorpusOptions::lines())
    }

    fn stream(text: &str) -> Result<Corpus, CorpusError> {
        Corpus::from_text("<string>", text, CorpusOptions::stream())
    }

    /// A file in the temp dir, removed on drop.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(name: &str, bytes: &[u8]) -> TempFile {
            let path = std::env::temp_dir().join(format!("rnn-data-{}-{name}", std::process::id()));
            std::fs::write(&path, bytes).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn corpus_mode_parses_and_displays() {
        for mode in [CorpusMode::Lines, CorpusMode::Stream] {
            assert_eq!(mode.to_string().parse::<CorpusMode>(), Ok(mode));
        }
        assert_eq!("lines".parse(), Ok(CorpusMode::Lines));
        let err = "Lines".parse::<CorpusMode>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unknown corpus mode "Lines": expected "lines" or "stream""#
        );
        assert_eq!(
            serde_json::to_string(&CorpusMode::Stream).unwrap(),
            r#""stream""#
        );
        assert_eq!(
            serde_json::from_str::<CorpusMode>(r#""lines""#).unwrap(),
            CorpusMode::Lines
        );
    }

    #[test]
    fn options_presets_and_builder() {
        assert_eq!(
            CorpusOptions::lines(),
            CorpusOptions {
                mode: CorpusMode::Lines,
                lowercase: false,
                max_bytes: DEFAULT_MAX_BYTES,
            }
        );
        assert_eq!(
            CorpusOptions::stream().lowercase(true),
            CorpusOptions {
                mode: CorpusMode::Stream,
                lowercase: true,
                max_bytes: DEFAULT_MAX_BYTES,
            }
        );
    }

    #[test]
    fn reading_stops_at_the_byte_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.txt");
        std::fs::write(&path, "abcdef\n").unwrap();
        let ok = Corpus::from_path(&path, CorpusOptions::lines().max_bytes(7)).unwrap();
        assert_eq!(ok.lines().len(), 1);
        let err = Corpus::from_path(&path, CorpusOptions::lines().max_bytes(6)).unwrap_err();
        assert!(
            matches!(err, CorpusError::TooLarge { limit: 6, .. }),
            "{err}"
        );
        #[cfg(unix)]
        {
            // An endless stream stops with the error instead of filling memory.
            let options = CorpusOptions::stream().max_bytes(1 << 16);
            let err = Corpus::from_path("/dev/zero", options).unwrap_err();
            assert!(err.to_string().contains("65536 bytes"), "{err}");
        }
    }

    #[test]
    fn windows_line_endings_are_trimmed() {
        let corpus = lines("a\r\nb\r\n").unwrap();
        assert_eq!(corpus.lines(), ["a", "b"]);
        assert_eq!(corpus.text(), "a\nb\n");
        assert_eq!(corpus.n_chars(), 4);
        assert_eq!(corpus.mode(), CorpusMode::Lines);
        assert_eq!(corpus.origin(), "<string>");
    }

    #[test]
    fn blank_lines_are_skipped_and_inner_whitespace_kept() {
        let corpus = lines("\n  \n t rex \n\t\r\n\nend").unwrap();
        assert_eq!(corpus.lines(), [" t rex ", "end"]);
        assert_eq!(corpus.text(), " t rex \nend\n");
    }

    #[test]
    fn lowercase_option_lowers_everything() {
        let corpus = Corpus::from_text(
            "<string>",
            "Tyrannosaurus\nÉLAN",
            CorpusOptions::lines().lowercase(true),
        )
        .unwrap();
        assert_eq!(corpus.lines(), ["tyrannosaurus", "élan"]);
        let kept = lines("Tyrannosaurus").unwrap();
        assert_eq!(kept.lines(), ["Tyrannosaurus"]);
    }

    #[test]
    fn stream_mode_normalizes_crlf_and_keeps_the_rest() {
        let corpus = stream("To be,\r\nor not\n\n to be\r").unwrap();
        assert_eq!(corpus.text(), "To be,\nor not\n\n to be\r");
        assert!(corpus.lines().is_empty());
        assert_eq!(corpus.mode(), CorpusMode::Stream);
        assert_eq!(corpus.n_chars(), corpus.text().chars().count());
    }

    #[test]
    fn byte_order_mark_is_dropped() {
        let corpus = Corpus::from_bytes(
            "bom.txt",
            "\u{feff}ab\n".as_bytes(),
            CorpusOptions::stream(),
        )
        .unwrap();
        assert_eq!(corpus.text(), "ab\n");
    }

    #[test]
    fn vocab_comes_from_the_text() {
        let corpus = lines("ba\nc").unwrap();
        assert_eq!(corpus.vocab().chars(), &['\n', 'a', 'b', 'c']);
        let corpus = stream("ba").unwrap();
        assert_eq!(corpus.vocab().chars(), &['a', 'b']);
    }

    #[test]
    fn empty_and_whitespace_only_are_empty_errors() {
        for text in ["", "\n\n", " \r\n\t\n", "\u{feff}"] {
            for options in [CorpusOptions::lines(), CorpusOptions::stream()] {
                let err = Corpus::from_text("blank.txt", text, options).unwrap_err();
                assert!(
                    matches!(&err, CorpusError::Empty { origin } if origin == "blank.txt"),
                    "{err:?}"
                );
                assert_eq!(
                    err.to_string(),
                    "blank.txt: no text (empty, or only blank lines)"
                );
            }
        }
    }

    #[test]
    fn invalid_utf8_reports_the_byte_offset() {
        let mut bytes = b"abc\nd\xc3\xa9f\n".to_vec(); // "abc\ndéf\n"; 'é' is bytes 5..7.
        bytes[6] = 0xff;
        let err = Corpus::from_bytes("data.txt", &bytes, CorpusOptions::lines()).unwrap_err();
        assert!(
            matches!(&err, CorpusError::InvalidUtf8 { origin, byte_offset: 5 } if origin == "data.txt"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "data.txt: invalid UTF-8 at byte 5");
    }

    #[test]
    fn from_path_reads_a_file() {
        let file = TempFile::new("names.txt", b"Aa\r\nBb\r\n");
        let corpus = Corpus::from_path(&file.0, CorpusOptions::lines().lowercase(true)).unwrap();
        assert_eq!(corpus.lines(), ["aa", "bb"]);
        assert_eq!(corpus.origin(), file.0.display().to_string());
    }

    #[test]
    fn from_path_invalid_utf8_names_the_file() {
        let file = TempFile::new("latin1.txt", b"caf\xe9\n");
        let err = Corpus::from_path(&file.0, CorpusOptions::stream()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: invalid UTF-8 at byte 3", file.0.display())
        );
    }

    #[test]
    fn missing_file_is_an_io_error_naming_the_path() {
        let path = std::env::temp_dir().join(format!(
            "rnn-data-{}-does-not-exist.txt",
            std::process::id()
        ));
        let err = Corpus::from_path(&path, CorpusOptions::lines()).unwrap_err();
        let CorpusError::Io { origin, source } = &err else {
            panic!("expected Io, got {err:?}")
        };
        assert_eq!(origin, &path.display().to_string());
        assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        assert!(
            err.to_string().contains(&*path.display().to_string()),
            "{err}"
        );
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn line_examples_follow_the_post() {
        let corpus = lines("abc\nb\n").unwrap();
        let vocab = corpus.vocab(); // '\n' a b c -> 0 1 2 3
        let examples = corpus.line_examples(&vocab).unwrap();
        assert_eq!(
            examples,
            [
                Example {
                    inputs: vec![None, Some(1), Some(2), Some(3)],
                    targets: vec![1, 2, 3, 0]
                },
                Example {
                    inputs: vec![None, Some(2)],
                    targets: vec![2, 0]
                },
            ]
        );
        assert!(
            stream("abc")
                .unwrap()
                .line_examples(&vocab)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn line_examples_errors_point_into_the_text() {
        let corpus = lines("ab\ncd").unwrap();
        let vocab = Vocab::from_text("\nabc").unwrap();
        let err = corpus.line_examples(&vocab).unwrap_err();
        assert_eq!(
            err,
            EncodeError::UnknownChar {
                ch: 'd',
                position: 4
            }
        );
        assert_eq!(corpus.text().chars().nth(4), Some('d'));
        // A vocabulary without '\n' cannot end a name.
        let err = corpus
            .line_examples(&Vocab::from_text("abcd").unwrap())
            .unwrap_err();
        assert_eq!(
            err,
            EncodeError::UnknownChar {
                ch: '\n',
                position: 2
            }
        );
    }

    #[test]
    fn split_lines_holds_out_every_kth_line() {
        let corpus = lines("a\nb\nc\nd\ne\nf\ng").unwrap();
        let (train, valid) = corpus.split_validation(0.3).unwrap(); // k = round(3.33) = 3
        assert_eq!(valid.lines(), ["c", "f"]);
        assert_eq!(train.lines(), ["a", "b", "d", "e", "g"]);
        assert_eq!(valid.text(), "c\nf\n");
        assert_eq!(train.origin(), "<string> (train)");
        assert_eq!(valid.origin(), "<string> (validation)");
        assert_eq!(valid.mode(), CorpusMode::Lines);
        let (train, valid) = corpus.split_validation(0.5).unwrap();
        assert_eq!((train.lines().len(), valid.lines().len()), (4, 3));
    }

    #[test]
    fn split_stream_holds_out_the_tail() {
        let corpus = stream("abcdéfghij").unwrap();
        let (train, valid) = corpus.split_validation(0.2).unwrap();
        assert_eq!(train.text(), "abcdéfgh");
        assert_eq!(valid.text(), "ij");
        assert_eq!(train.n_chars() + valid.n_chars(), corpus.n_chars());
        let (train, valid) = corpus.split_validation(0.5).unwrap();
        assert_eq!((train.text(), valid.text()), ("abcdé", "fghij"));
    }

    #[test]
    fn bad_splits_are_errors() {
        let corpus = lines("a\nb\nc").unwrap();
        for fraction in [0.0, -0.1, 0.51, 1.0, f64::NAN, f64::INFINITY] {
            let err = corpus.split_validation(fraction).unwrap_err();
            assert!(
                matches!(err, CorpusError::BadSplit { .. }),
                "{fraction}: {err:?}"
            );
        }
        // k = 10 but only 3 lines: nothing would be held out.
        let err = corpus.split_validation(0.1).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("<string>: cannot split off a validation fraction of 0.1: "),
            "{err}"
        );
        // Too short a stream for any held-out character.
        assert!(stream("ab").unwrap().split_validation(0.2).is_err());
        assert!(stream("abc").unwrap().split_validation(0.1).is_err());
        assert!(stream("ab").unwrap().split_validation(0.5).is_ok());
    }

    proptest! {
        #[test]
        fn from_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), stream_mode: bool, lowercase: bool) {
            let options = if stream_mode { CorpusOptions::stream() } else { CorpusOptions::lines() }.lowercase(lowercase);
            match Corpus::from_bytes("fuzz", &bytes, options) {
                Ok(corpus) => {
                    prop_assert!(!corpus.text().is_empty());
                    prop_assert!(!corpus.text().trim().is_empty());
                    prop_assert_eq!(corpus.n_chars(), corpus.text().chars().count());
                    prop_assert!(corpus.vocab().encode(corpus.text()).is_ok());
                    if !stream_mode {
                        let examples = corpus.line_examples(&corpus.vocab()).unwrap();
                        prop_assert_eq!(examples.len(), corpus.lines().len());
                    }
                }
                Err(CorpusError::InvalidUtf8 { byte_offset, .. }) => {
                    let std_offset = std::str::from_utf8(&bytes).unwrap_err().valid_up_to();
                    prop_assert_eq!(byte_offset, std_offset);
                }
                Err(CorpusError::Empty { .. }) => {}
                Err(other) => prop_assert!(false, "unexpected error {:?}", other),
            }
        }

        #[test]
        fn invalid_utf8_offset_matches_std(prefix in any::<String>(), bad in 0x80u8..=0xff, tail in proptest::collection::vec(any::<u8>(), 0..10)) {
            // A continuation byte or a lead byte without continuations never starts valid UTF-8.
            let mut bytes = prefix.clone().into_bytes();
            bytes.push(bad);
            bytes.extend(&tail);
            if let Err(std_err) = std::str::from_utf8(&bytes) {
                let err = Corpus::from_bytes("fuzz", &bytes, CorpusOptions::stream()).unwrap_err();
                let CorpusError::InvalidUtf8 { byte_offset, .. } = err else { panic!("expected InvalidUtf8, got {err:?}") };
                prop_assert_eq!(byte_offset, std_err.valid_up_to());
                prop_assert!(byte_offset >= prefix.len());
            }
        }

        #[test]
        fn split_sides_partition_the_corpus(text in "[a-c\n]{1,40}", fraction in 0.01f64..=0.5) {
            for options in [CorpusOptions::lines(), CorpusOptions::stream()] {
                let Ok(corpus) = Corpus::from_text("<string>", &text, options) else { continue };
                if let Ok((train, valid)) = corpus.split_validation(fraction) {
                    prop_assert!(!train.text().is_empty() && !valid.text().is_empty());
                    prop_assert_eq!(train.n_chars() + valid.n_chars(), corpus.n_chars());
                    prop_assert_eq!(train.lines().len() + valid.lines().len(), corpus.lines().len());
                }
            }
        }
    }
}
