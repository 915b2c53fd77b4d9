//! Plots for a character-level RNN, drawn from plain numbers and arrays.
//!
//! This crate knows nothing about the model: it takes the numbers a training run or an
//! analysis produces and draws them with [plotters], to PNG, SVG, a file, or inline in an
//! evcxr Jupyter notebook (feature `evcxr`). Text renders on headless machines without any
//! system font: DejaVu Sans is embedded (see `assets/LICENSE-DejaVu.txt`).
//!
//! # A short tour
//!
//! - [`loss_curve`]: training loss (raw and smoothed) and validation loss against the step,
//!   from [`HistoryRow`]s, e.g. read from a run's `history.csv` with [`read_history_csv`].
//! - [`gradient_norms`]: `‖∂L/∂a⟨t⟩‖` against the time step t for several
//!   [`GradientCurve`]s on a log axis, to see gradients vanish or explode through time.
//! - [`heatmap`]: a matrix as coloured cells, e.g. hidden activations `a⟨t⟩` (n_a, T) on a
//!   diverging scale or next-character probabilities `ŷ⟨t⟩` (n_y, T) on a sequential one
//!   ([`HeatScale`]), with the input characters under the columns ([`char_labels`]).
//! - [`gate_heatmap`]: one heatmap panel per gate of a recurrent layer ([`GatePanel`]),
//!   sigmoid gates on [0, 1] and tanh values on [−1, 1], the columns lined up.
//!
//! Each returns a [`Plot`], which renders with [`Plot::to_png_bytes`],
//! [`Plot::to_svg_string`] or [`Plot::save`] (format from the extension, written atomically).
//! Errors are [`PlotError`]s; empty input is [`PlotError::Empty`], never a panic.
//!
//! # Example
//!
//! ```
//! use ndarray::Array2;
//! use rnn_plot::{GradientCurve, HeatScale, HistoryRow, char_labels, gradient_norms, heatmap, loss_curve};
//!
//! # fn main() -> Result<(), rnn_plot::PlotError> {
//! let dir = tempfile::tempdir().unwrap();
//!
//! // A loss curve from a training history.
//! let history: Vec<HistoryRow> = (0..200u64)
//!     .map(|step| {
//!         let loss = 3.3 * (-(step as f64) / 80.0).exp() + 1.0;
//!         HistoryRow {
//!             step,
//!             loss,
//!             smoothed_loss: loss,
//!             val_loss: (step % 50 == 0).then_some(loss + 0.1),
//!             grad_norm: 1.0,
//!             chars_per_s: 5e4,
//!         }
//!     })
//!     .collect();
//! loss_curve(&history, "Training loss")?.save(&dir.path().join("loss.png"))?;
//!
//! // Gradient norms through time, on a log axis.
//! let vanishing: Vec<f64> = (0..25).map(|t| 0.5f64.powi(25 - t)).collect();
//! let plot = gradient_norms(&[GradientCurve::new("W_aa scale 0.5", vanishing)], "Vanishing gradients")?;
//! let svg = plot.to_svg_string()?;
//! assert!(svg.contains("Vanishing gradients"));
//!
//! // Hidden activations (n_a = 4, T = 3) under their input characters.
//! let a = Array2::from_shape_fn((4, 3), |(i, t)| ((i + t) as f64 / 3.0).tanh());
//! let plot = heatmap(a.view(), &[], &char_labels("hi\n".chars()), "a⟨t⟩", HeatScale::activations())?;
//! let png = plot.to_png_bytes()?;
//! assert!(png.starts_with(b"\x89PNG"));
//! # Ok(())
//! # }
//! ```
//!
//! In an evcxr notebook (with `features = ["evcxr"]`), a `Plot` as the last expression of a
//! cell shows as a PNG image, and `plot.svg()` as an SVG image.

mod base64;
mod colormap;
mod curves;
mod error;
mod font;
mod format;
mod gates;
mod heatmap;
mod history;
mod plot;

pub use colormap::{HeatScale, NAN_COLOR, PALETTE, series_color};
pub use curves::{
    CURVE_SIZE, Curve, GradientCurve, curves, gradient_norms, loss_comparison, loss_curve,
};
pub use error::PlotError;
pub use format::Format;
pub use gates::{GatePanel, gate_heatmap};
pub use heatmap::{char_label, char_labels, heatmap};
pub use history::{HISTORY_HEADER, HistoryRow, read_history_csv, write_history, write_history_csv};
pub use plot::{Plot, SvgPlot};

/// The ndarray and plotters versions this crate draws with, for callers (and notebooks)
/// that want one dependency.
pub use ndarray;
pub use plotters;
