//! The gates of a recurrent layer while it reads a text: one heatmap panel per gate, stacked
//! so that the columns (the characters read) line up.

use ndarray::Array2;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::draw_err;
use crate::font::{FAMILY, text_size};
use crate::plot::Kind;
use crate::{HeatScale, Plot, PlotError};

/// One panel of a [`gate_heatmap`]: a named matrix of gate values, one row per hidden unit
/// and one column per character read, with its colour scale.
#[derive(Clone, Debug, PartialEq)]
pub struct GatePanel {
    /// The panel's title, e.g. "f: forget gate σ(…)".
    pub name: String,
    /// The values, (n_a, T).
    pub values: Array2<f64>,
    /// How values map to colours.
    pub scale: HeatScale,
}

impl GatePanel {
    /// A panel with any scale.
    pub fn new(name: impl Into<String>, values: Array2<f64>, scale: HeatScale) -> Self {
        GatePanel {
            name: name.into(),
            values,
            scale,
        }
    }

    /// A sigmoid gate, in [0, 1]: the sequential scale on [0, 1] (dark closed, bright open).
    pub fn sigmoid(name: impl Into<String>, values: Array2<f64>) -> Self {
        Self::new(name, values, HeatScale::probabilities())
    }

    /// A tanh value, in [−1, 1]: the diverging scale on [−1, 1].
    pub fn tanh(name: impl Into<String>, values: Array2<f64>) -> Self {
        Self::new(name, values, HeatScale::activations())
    }

    /// A signed value without bounds (an LSTM's cell state c): the diverging scale on
    /// ±max(1, largest finite |value|).
    pub fn signed(name: impl Into<String>, values: Array2<f64>) -> Self {
        let max_abs = values
            .iter()
            .filter(|v| v.is_finite())
            .fold(1.0_f64, |m, v| m.max(v.abs()));
        Self::new(name, values, HeatScale::Diverging { max_abs })
    }
}

/// The grid of one panel is at most this tall (more rows than pixels get a pixel each), so
/// that five gates of a large layer still make a readable image.
const PANEL_GRID_HEIGHT: u32 = 420;
const TITLE_SIZE: f64 = 26.0;
const MARGIN: u32 = 16;

/// Gate activations as heatmaps, one panel per gate under a common `title`: rows are hidden
/// units, columns the characters read (`col_labels`, e.g. from
/// [`char_labels`](crate::char_labels); empty to number them), each panel on its own scale
/// ([`GatePanel::sigmoid`] for gates in [0, 1], [`GatePanel::tanh`] for values in [−1, 1]).
///
/// The image is as wide as the widest panel and as tall as the panels together; each panel
/// is laid out as a [`heatmap`](crate::heatmap), its grid at most 420 pixels tall.
///
/// # Shapes
///
/// Every `panels[k].values`: (n_rows_k, T), the same T for all; `col_labels`: T or 0.
///
/// # Errors
///
/// [`PlotError::Empty`] without panels or for a panel without cells,
/// [`PlotError::PanelShape`] when panels disagree on the number of columns,
/// [`PlotError::LabelCount`] when `col_labels` does not match it, [`PlotError::Scale`] for an
/// invalid scale.
pub fn gate_heatmap(
    panels: &[GatePanel],
    col_labels: &[String],
    title: &str,
) -> Result<Plot, PlotError> {
    let Some(first) = panels.first() else {
        return Err(PlotError::Empty {
            what: "gate panels",
        });
    };
    let n_cols = first.values.ncols();
    let mut plots = Vec::with_capacity(panels.len());
    for panel in panels {
        if panel.values.ncols() != n_cols {
            return Err(PlotError::PanelShape {
                panel: panel.name.clone(),
                expected: n_cols,
                got: panel.values.ncols(),
            });
        }
        let plot = crate::heatmap(
            panel.values.view(),
            &[],
            col_labels,
            &panel.name,
            panel.scale,
        )?
        .with_y_desc("hidden unit")
        .with_value_desc(panel.name.split(':').next().unwrap_or(&panel.name));
        plots.push(plot);
    }
    Ok(Plot::new(
        Kind::Panels(plots),
        title,
        "input character (time step t →)",
        "hidden unit",
    ))
}

/// The size of one panel: its heatmap with a shorter grid.
fn panel_size(panel: &Plot) -> (u32, u32) {
    match &panel.kind {
        Kind::Heatmap(data) => {
            let max_h = PANEL_GRID_HEIGHT.max(data.values.nrows() as u32);
            crate::heatmap::size_within(data, panel, max_h)
        }
        _ => panel.size(),
    }
}

fn title_band(plot: &Plot) -> u32 {
    MARGIN + text_size(&plot.title, TITLE_SIZE).1 + 12
}

/// The size that fits the panels and the title.
pub(crate) fn natural_size(plot: &Plot, panels: &[Plot]) -> (u32, u32) {
    let sizes: Vec<(u32, u32)> = panels.iter().map(panel_size).collect();
    let width = sizes
        .iter()
        .map(|s| s.0)
        .max()
        .unwrap_or(0)
        .max(text_size(&plot.title, TITLE_SIZE).0 + 2 * MARGIN);
    (
        width,
        title_band(plot) + sizes.iter().map(|s| s.1).sum::<u32>(),
    )
}

pub(crate) fn draw_panels<DB>(
    plot: &Plot,
    panels: &[Plot],
    root: &DrawingArea<DB, Shift>,
) -> Result<(), PlotError>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    let (w, h) = root.dim_in_pixel();
    let style = TextStyle::from((FAMILY, TITLE_SIZE).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    root.draw(&Text::new(
        plot.title.clone(),
        (w as i32 / 2, MARGIN as i32),
        style,
    ))
    .map_err(draw_err)?;
    // Panels share the height below the title in proportion to their natural heights (an
    // image of another size, from `with_size`, scales them all).
    let band = title_band(plot).min(h);
    let heights: Vec<u32> = panels.iter().map(|p| panel_size(p).1).collect();
    let total = u64::from(heights.iter().sum::<u32>().max(1));
    let avail = u64::from(h - band);
    let (_, mut rest) = root.split_vertically(band);
    for (panel, &natural) in panels.iter().zip(&heights) {
        let Kind::Heatmap(data) = &panel.kind else {
            return Err(PlotError::Draw("a gate panel is not a heatmap".into()));
        };
        let panel_h = (u64::from(natural) * avail / total) as u32;
        let (area, below) = rest.split_vertically(panel_h);
        crate::heatmap::draw_heatmap(panel, data, &area)?;
        rest = below;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panels(n_a: usize, t: usize) -> Vec<GatePanel> {
        let v = Array2::from_shape_fn((n_a, t), |(i, j)| ((i + j) as f64 * 0.3).sin());
        vec![
            GatePanel::sigmoid("r: reset gate", v.mapv(|x| (x + 1.0) / 2.0)),
            GatePanel::sigmoid("z: update gate", v.mapv(|x| (1.0 - x) / 2.0)),
            GatePanel::tanh("n: candidate", v),
        ]
    }

    #[test]
    fn size_stacks_the_panels() {
        let one = gate_heatmap(&panels(6, 10)[..1], &[], "g").unwrap();
        let three = gate_heatmap(&panels(6, 10), &[], "g").unwrap();
        assert_eq!(one.width(), three.width());
        let band = title_band(&three);
        assert_eq!(three.height() - band, 3 * (one.height() - band));
        // A large layer: each grid is capped, so five panels of 256 units stay drawable.
        let big = gate_heatmap(&panels(256, 40), &[], "big").unwrap();
        assert!(big.height() < 3 * 700, "{}", big.height());
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(
            gate_heatmap(&[], &[], "none"),
            Err(PlotError::Empty { .. })
        ));
        let mut p = panels(4, 5);
        p[1].values = Array2::zeros((4, 6));
        let err = gate_heatmap(&p, &[], "mismatch").unwrap_err();
        assert!(
            matches!(&err, PlotError::PanelShape { panel, expected: 5, got: 6 } if panel == "z: update gate"),
            "{err:?}"
        );
        let err = gate_heatmap(&panels(4, 5), &["a".into()], "labels").unwrap_err();
        assert!(matches!(err, PlotError::LabelCount { .. }), "{err:?}");
        let mut p = panels(4, 5);
        p[2].values = Array2::zeros((0, 5));
        assert!(matches!(
            gate_heatmap(&p, &[], "empty panel"),
            Err(PlotError::Empty { .. })
        ));
    }

    #[test]
    fn signed_scale_covers_the_values() {
        let v = ndarray::array![[0.5, -3.0], [f64::NAN, 2.0]];
        assert_eq!(
            GatePanel::signed("c", v).scale,
            HeatScale::Diverging { max_abs: 3.0 }
        );
        let small = ndarray::array![[0.5, -0.2]];
        assert_eq!(
            GatePanel::signed("c", small).scale,
            HeatScale::activations()
        );
    }
}
