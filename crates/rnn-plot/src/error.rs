//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading plot data or drawing a plot.
///
/// Variants carry the file, line or value involved, so that a message alone says what to fix.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum PlotError {
    /// The drawing backend failed (plotters' own error, as text).
    #[error("drawing failed: {0}")]
    Draw(String),
    /// Reading or writing a file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file that was being read or written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A CSV file could not be parsed.
    #[error("{path}:{line}: {message}")]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// The 1-based line of the offending record (0 when unknown).
        line: u64,
        /// What was wrong with it.
        message: String,
    },
    /// There is nothing to draw: an empty slice, an empty matrix, or no finite values.
    #[error("nothing to draw: no {what}")]
    Empty {
        /// What was missing, e.g. "history rows".
        what: &'static str,
    },
    /// A list of labels does not match the dimension it labels.
    #[error("{axis} labels: expected {expected} (one per {axis}), got {got}")]
    LabelCount {
        /// "row" or "column".
        axis: &'static str,
        /// The matrix dimension.
        expected: usize,
        /// The number of labels given.
        got: usize,
    },
    /// The panels of one figure disagree on their number of columns.
    #[error(
        "panel {panel:?}: {got} columns, expected {expected} (one per character read, as the first panel)"
    )]
    PanelShape {
        /// The panel's name.
        panel: String,
        /// The first panel's number of columns.
        expected: usize,
        /// This panel's number of columns.
        got: usize,
    },
    /// A colour scale whose range is empty, negative or not finite.
    #[error("invalid colour scale: {0}")]
    Scale(String),
    /// A file name whose extension is not `.png` or `.svg`.
    #[error("cannot tell the image format of {path}: expected a .png or .svg extension")]
    UnknownFormat {
        /// The path without a usable extension.
        path: PathBuf,
    },
    /// A format name other than "png" or "svg".
    #[error("unknown image format {0:?}: expected \"png\" or \"svg\"")]
    FormatName(String),
    /// A requested image size that is too small to draw in, or absurdly large.
    #[error("invalid image size {width}x{height}: each side must be in 100..=20000 pixels")]
    Size {
        /// Requested width in pixels.
        width: u32,
        /// Requested height in pixels.
        height: u32,
    },
}

/// Turns any plotters drawing error into [`PlotError::Draw`].
pub(crate) fn draw_err<E: std::fmt::Display>(e: E) -> PlotError {
    PlotError::Draw(e.to_string())
}
