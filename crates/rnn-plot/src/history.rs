//! Training history rows, as written to a run's `history.csv`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::PlotError;

/// The header line of a `history.csv` file.
pub const HISTORY_HEADER: &str = "step,loss,smoothed_loss,val_loss,grad_norm,chars_per_s";

/// One training-history row: one line of a run's `history.csv`.
///
/// `val_loss` is `None` on steps without a validation pass (an empty CSV field).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct HistoryRow {
    /// Optimisation step (1-based or 0-based, as the trainer counts).
    pub step: u64,
    /// Training loss of this step, in nats.
    pub loss: f64,
    /// Exponentially smoothed training loss, in nats.
    pub smoothed_loss: f64,
    /// Validation loss, in nats, when measured at this step.
    pub val_loss: Option<f64>,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Training throughput.
    pub chars_per_s: f64,
}

/// Reads a `history.csv` file (header [`HISTORY_HEADER`]).
///
/// # Errors
///
/// [`PlotError::Io`] when the file cannot be opened, [`PlotError::Csv`] naming the file and
/// the 1-based line of the first bad record (a missing column, a number that does not parse).
pub fn read_history_csv(path: &Path) -> Result<Vec<HistoryRow>, PlotError> {
    let file = std::fs::File::open(path).map_err(|source| PlotError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(file);
    let mut rows = Vec::new();
    for record in reader.deserialize::<HistoryRow>() {
        rows.push(record.map_err(|e| csv_error(path, e))?);
    }
    Ok(rows)
}

/// Writes rows as a `history.csv` file with the [`HISTORY_HEADER`] header (not atomically).
///
/// # Errors
///
/// [`PlotError::Io`] or [`PlotError::Csv`] naming the file.
pub fn write_history_csv(path: &Path, rows: &[HistoryRow]) -> Result<(), PlotError> {
    let file = std::fs::File::create(path).map_err(|source| PlotError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    write_history(file, rows).map_err(|source| PlotError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes the history as CSV (header [`HISTORY_HEADER`]) to any writer, for callers that
/// manage the file themselves (for example to replace it atomically).
pub fn write_history<W: std::io::Write>(writer: W, rows: &[HistoryRow]) -> std::io::Result<()> {
    let mut writer = csv::Writer::from_writer(writer);
    if rows.is_empty() {
        // serde writes the header with the first row; an empty history still gets one.
        writer.write_record(HISTORY_HEADER.split(','))?;
    }
    for row in rows {
        writer.serialize(row)?;
    }
    writer.flush()
}

fn csv_error(path: &Path, e: csv::Error) -> PlotError {
    let line = e.position().map_or(0, csv::Position::line);
    let message = e.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(source) => PlotError::Io {
            path: path.to_path_buf(),
            source,
        },
        _ => PlotError::Csv {
            path: path.to_path_buf(),
            line,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<HistoryRow> {
        (1..=5)
            .map(|i| HistoryRow {
                step: i * 100,
                loss: 3.0 / i as f64,
                smoothed_loss: 3.1 / i as f64,
                val_loss: (i % 2 == 0).then(|| 3.3 / i as f64),
                grad_norm: 0.5 + i as f64,
                chars_per_s: 12_345.5,
            })
            .collect()
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.csv");
        write_history_csv(&path, &rows()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(HISTORY_HEADER), "{text}");
        assert!(text.contains("100,3.0,3.1,,1.5,12345.5"), "{text}");
        assert_eq!(read_history_csv(&path).unwrap(), rows());
    }

    #[test]
    fn empty_history_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.csv");
        write_history_csv(&path, &[]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            HISTORY_HEADER
        );
        assert!(read_history_csv(&path).unwrap().is_empty());
    }

    #[test]
    fn bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.csv");
        let text = format!("{HISTORY_HEADER}\n1,3.0,3.0,,1.0,10\n2,3.0,oops,,1.0,10\n");
        std::fs::write(&path, text).unwrap();
        let err = read_history_csv(&path).unwrap_err();
        match &err {
            PlotError::Csv { path: p, line, .. } => {
                assert_eq!(p, &path);
                assert_eq!(*line, 3);
            }
            other => panic!("expected a CSV error, got {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains("history.csv:3"), "{message}");
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let err = read_history_csv(Path::new("/nonexistent/history.csv")).unwrap_err();
        assert!(matches!(err, PlotError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/history.csv"));
    }
}
