//! Heatmaps of a matrix: hidden activations `a⟨t⟩` or next-character probabilities over time.

use ndarray::{Array2, ArrayView2};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::draw_err;
use crate::font::{FAMILY, text_size};
use crate::plot::Kind;
use crate::{HeatScale, Plot, PlotError};

/// Heatmap of a matrix, one cell per entry: `values[[row, col]]`.
///
/// Typical uses, with the post's column convention (one column per time step):
/// - hidden activations `a⟨t⟩`, shape (n_a, T), with [`HeatScale::activations`] (diverging,
///   white at 0) and unit indices as row labels;
/// - next-character probabilities `ŷ⟨t⟩`, shape (n_y, T), with [`HeatScale::probabilities`]
///   and the vocabulary characters as row labels.
///
/// Column labels are usually the input characters (see [`char_labels`]). An empty label slice
/// means "number them": rows from 0 (unit indices), columns from 1 (time steps t). Labels that
/// are a single invisible character are shown visibly: '\n' as `\n`, ' ' as `␣`.
///
/// The image is sized to its content: cells large enough for their labels, up to about
/// 2400x2000 pixels of cells, beyond which cells shrink and only every k-th label is written.
/// Axis descriptions default to "input character (time step t →)" and, by scale, "hidden
/// unit" with a colour bar `"a⟨t⟩"`, or "next character" with "probability"; change them with
/// [`Plot::with_y_desc`] and friends.
///
/// # Shapes
///
/// `values`: (n_rows, n_cols); `row_labels`: n_rows or 0; `col_labels`: n_cols or 0.
///
/// # Errors
///
/// [`PlotError::Empty`] for a matrix without cells, [`PlotError::LabelCount`] when a label
/// slice has the wrong length, [`PlotError::Scale`] for an empty or non-finite range.
pub fn heatmap(
    values: ArrayView2<'_, f64>,
    row_labels: &[String],
    col_labels: &[String],
    title: &str,
    scale: HeatScale,
) -> Result<Plot, PlotError> {
    let (n_rows, n_cols) = values.dim();
    if n_rows == 0 || n_cols == 0 {
        return Err(PlotError::Empty {
            what: "matrix cells",
        });
    }
    scale.validate()?;
    let rows = labels_or_indices(row_labels, n_rows, 0, "row")?;
    let cols = labels_or_indices(col_labels, n_cols, 1, "column")?;
    let (y_desc, value_desc) = match scale {
        HeatScale::Diverging { .. } => ("hidden unit", "a⟨t⟩"),
        HeatScale::Sequential { .. } => ("next character", "probability"),
    };
    let data = HeatmapData {
        values: values.to_owned(),
        rows,
        cols,
        scale,
        value_desc: value_desc.to_string(),
    };
    let x_desc = "input character (time step t →)";
    Ok(Plot::new(Kind::Heatmap(data), title, x_desc, y_desc))
}

/// Labels for characters, with the invisible ones made visible: '\n' → `\n`, '\t' → `\t`,
/// '\r' → `\r`, ' ' → `␣`, other control characters as `\u{..}`.
///
/// ```
/// let labels = rnn_plot::char_labels("a b\n".chars());
/// assert_eq!(labels, ["a", "␣", "b", "\\n"]);
/// ```
pub fn char_labels(chars: impl IntoIterator<Item = char>) -> Vec<String> {
    chars.into_iter().map(char_label).collect()
}

/// The visible label of one character; see [`char_labels`].
pub fn char_label(c: char) -> String {
    match c {
        '\n' => "\\n".to_string(),
        '\t' => "\\t".to_string(),
        '\r' => "\\r".to_string(),
        ' ' => "␣".to_string(),
        c if c.is_control() => format!("\\u{{{:x}}}", u32::from(c)),
        c => c.to_string(),
    }
}

/// A heatmap's numbers and labels.
#[derive(Clone, Debug)]
pub(crate) struct HeatmapData {
    pub(crate) values: Array2<f64>,
    rows: Vec<String>,
    cols: Vec<String>,
    scale: HeatScale,
    pub(crate) value_desc: String,
}

fn labels_or_indices(
    labels: &[String],
    n: usize,
    first: usize,
    axis: &'static str,
) -> Result<Vec<String>, PlotError> {
    if labels.is_empty() {
        return Ok((first..first + n).map(|i| i.to_string()).collect());
    }
    if labels.len() != n {
        return Err(PlotError::LabelCount {
            axis,
            expected: n,
            got: labels.len(),
        });
    }
    Ok(labels
        .iter()
        .map(|l| {
            let mut chars = l.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => char_label(c),
                _ => l.clone(),
            }
        })
        .collect())
}

const TITLE_SIZE: f64 = 24.0;
const LABEL_SIZE: f64 = 16.0;
const MARGIN: u32 = 16;
/// Room for a rotated axis description.
const DESC_BAND: u32 = 30;
const BAR_GAP: u32 = 20;
const BAR_WIDTH: u32 = 22;
const BAR_MIN_HEIGHT: u32 = 220;
const MAX_GRID: (u32, u32) = (2400, 2000);
const ROW_HEIGHT: u32 = 21;
const MIN_COL_WIDTH: u32 = 24;

/// Pixel sizes of everything around the grid of cells.
struct Frame {
    title_band: u32,
    row_label_w: u32,
    col_label_h: u32,
    col_label_w: u32,
    tick_w: u32,
    /// Natural cell size: room for the labels, and for the axis descriptions under and
    /// beside the grid.
    cell_w: u32,
    cell_h: u32,
}

fn frame(data: &HeatmapData, plot: &Plot) -> Frame {
    let widest = |labels: &mut dyn Iterator<Item = &String>| {
        labels
            .map(|l| text_size(l, LABEL_SIZE).0)
            .max()
            .unwrap_or(0)
    };
    let (lo, hi) = data.scale.range();
    let ticks = bar_ticks(lo, hi);
    let (n_rows, n_cols) = data.values.dim();
    let col_label_w = widest(&mut data.cols.iter());
    let x_desc_w = text_size(&plot.x_desc, LABEL_SIZE).0 + 8;
    let y_desc_w = text_size(&plot.y_desc, LABEL_SIZE).0 + 8;
    Frame {
        title_band: text_size(&plot.title, TITLE_SIZE).1 + 18,
        row_label_w: widest(&mut data.rows.iter()) + 10,
        col_label_h: text_size("Ag", LABEL_SIZE).1 + 10,
        col_label_w,
        tick_w: widest(&mut ticks.iter().map(|(_, s)| s)) + 12,
        cell_w: (col_label_w + 8)
            .max(MIN_COL_WIDTH)
            .max(x_desc_w.div_ceil(n_cols as u32)),
        cell_h: ROW_HEIGHT.max(y_desc_w.div_ceil(n_rows as u32)),
    }
}

impl Frame {
    fn left(&self) -> u32 {
        MARGIN + DESC_BAND + self.row_label_w
    }
    fn right(&self) -> u32 {
        BAR_GAP + BAR_WIDTH + self.tick_w + DESC_BAND + MARGIN
    }
    fn top(&self) -> u32 {
        MARGIN + self.title_band
    }
    fn bottom(&self) -> u32 {
        self.col_label_h + DESC_BAND + MARGIN
    }
}

/// The size that fits the content: cells of their natural size (at most [`MAX_GRID`] of
/// them), the labels, the colour bar and the title.
pub(crate) fn natural_size(data: &HeatmapData, plot: &Plot) -> (u32, u32) {
    size_within(data, plot, MAX_GRID.1)
}

/// As [`natural_size`], with the grid of cells at most `max_grid_h` pixels tall (a panel
/// among several).
pub(crate) fn size_within(data: &HeatmapData, plot: &Plot, max_grid_h: u32) -> (u32, u32) {
    let f = frame(data, plot);
    let (n_rows, n_cols) = data.values.dim();
    let grid_w = (f.cell_w as usize * n_cols).min(MAX_GRID.0 as usize) as u32;
    let grid_h = (f.cell_h as usize * n_rows).min(max_grid_h as usize) as u32;
    let width =
        (f.left() + grid_w + f.right()).max(text_size(&plot.title, TITLE_SIZE).0 + 2 * MARGIN);
    let content_h = (grid_h + f.bottom()).max(BAR_MIN_HEIGHT + MARGIN);
    (width, f.top() + content_h)
}

pub(crate) fn draw_heatmap<DB>(
    plot: &Plot,
    data: &HeatmapData,
    root: &DrawingArea<DB, Shift>,
) -> Result<(), PlotError>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    let (w, h) = root.dim_in_pixel();
    let f = frame(data, plot);
    let (n_rows, n_cols) = data.values.dim();
    // Cells stretch to fill a larger image, up to twice their natural size; beyond that the
    // grid is centred (e.g. when a long title made the image wider than the cells need).
    let grid_w = w
        .saturating_sub(f.left() + f.right())
        .min(2 * f.cell_w * n_cols as u32);
    let grid_h = h.saturating_sub(f.top() + f.bottom());
    if grid_w < n_cols as u32 || grid_h < n_rows as u32 {
        return Err(PlotError::Size {
            width: w,
            height: h,
        });
    }
    let natural_w = f.left() + grid_w + f.right();
    let x_off = (w.saturating_sub(natural_w) / 2) as i32;
    let left = f.left() as i32 + x_off;
    let top = f.top() as i32;
    let cw = f64::from(grid_w) / n_cols as f64;
    let ch = (f64::from(grid_h) / n_rows as f64).min(f64::from(f.cell_h) * 2.0);
    let grid_h = (ch * n_rows as f64).round() as u32;
    let col_x = |j: usize| left + (cw * j as f64).round() as i32;
    let row_y = |i: usize| top + (ch * i as f64).round() as i32;

    let text = |s: &str, size: f64, pos: (i32, i32), h: HPos, v: VPos, rotate: bool| {
        let mut style = TextStyle::from((FAMILY, size).into_font())
            .color(&BLACK)
            .pos(Pos::new(h, v));
        if rotate {
            style = style.transform(FontTransform::Rotate270);
        }
        root.draw(&Text::new(s.to_string(), pos, style))
            .map_err(draw_err)
    };

    // Title, centred on the image.
    text(
        &plot.title,
        TITLE_SIZE,
        (w as i32 / 2, MARGIN as i32),
        HPos::Center,
        VPos::Top,
        false,
    )?;

    // Cells.
    for ((i, j), &v) in data.values.indexed_iter() {
        let rect = [(col_x(j), row_y(i)), (col_x(j + 1), row_y(i + 1))];
        root.draw(&Rectangle::new(rect, data.scale.color(v).filled()))
            .map_err(draw_err)?;
    }
    let frame_color = RGBColor(90, 90, 90);
    root.draw(&Rectangle::new(
        [(left - 1, top - 1), (col_x(n_cols), row_y(n_rows))],
        frame_color,
    ))
    .map_err(draw_err)?;

    // Row labels, thinned when rows are shorter than the text.
    let row_stride = (15.0 / ch).ceil().max(1.0) as usize;
    for i in (0..n_rows).step_by(row_stride) {
        let y = ((f64::from(row_y(i)) + f64::from(row_y(i + 1))) / 2.0).round() as i32;
        text(
            &data.rows[i],
            LABEL_SIZE,
            (left - 6, y),
            HPos::Right,
            VPos::Center,
            false,
        )?;
    }
    // Column labels.
    let col_stride = ((f64::from(f.col_label_w) + 6.0) / cw).ceil().max(1.0) as usize;
    let label_top = row_y(n_rows) + 6;
    for j in (0..n_cols).step_by(col_stride) {
        let x = ((f64::from(col_x(j)) + f64::from(col_x(j + 1))) / 2.0).round() as i32;
        if col_stride > 1 {
            // Only every k-th column is labelled: mark which one.
            let y = row_y(n_rows);
            root.draw(&PathElement::new(vec![(x, y), (x, y + 4)], frame_color))
                .map_err(draw_err)?;
        }
        text(
            &data.cols[j],
            LABEL_SIZE,
            (x, label_top),
            HPos::Center,
            VPos::Top,
            false,
        )?;
    }

    // Axis descriptions.
    let grid_mid_x = left + grid_w as i32 / 2;
    let grid_mid_y = top + grid_h as i32 / 2;
    let x_desc_y = label_top + f.col_label_h as i32 + 2;
    text(
        &plot.x_desc,
        LABEL_SIZE,
        (grid_mid_x, x_desc_y),
        HPos::Center,
        VPos::Top,
        false,
    )?;
    let y_desc_x = left - f.row_label_w as i32 - DESC_BAND as i32 / 2;
    text(
        &plot.y_desc,
        LABEL_SIZE,
        (y_desc_x, grid_mid_y),
        HPos::Center,
        VPos::Center,
        true,
    )?;

    // Colour bar: at least BAR_MIN_HEIGHT tall, top-aligned with the grid.
    let bar_h = grid_h
        .max(BAR_MIN_HEIGHT.min(h.saturating_sub(f.top() + MARGIN)))
        .max(2) as i32;
    let bar_x = col_x(n_cols) + BAR_GAP as i32;
    let (lo, hi) = data.scale.range();
    for k in 0..bar_h {
        // Top is the high end.
        let v = hi - (hi - lo) * (f64::from(k) + 0.5) / f64::from(bar_h);
        let rect = [(bar_x, top + k), (bar_x + BAR_WIDTH as i32, top + k + 1)];
        root.draw(&Rectangle::new(rect, data.scale.color(v).filled()))
            .map_err(draw_err)?;
    }
    root.draw(&Rectangle::new(
        [(bar_x, top), (bar_x + BAR_WIDTH as i32, top + bar_h)],
        frame_color,
    ))
    .map_err(draw_err)?;
    for (v, label) in bar_ticks(lo, hi) {
        let y = top + ((hi - v) / (hi - lo) * f64::from(bar_h - 1)).round() as i32;
        let x = bar_x + BAR_WIDTH as i32;
        root.draw(&PathElement::new(vec![(x, y), (x + 4, y)], frame_color))
            .map_err(draw_err)?;
        text(
            &label,
            LABEL_SIZE,
            (x + 7, y),
            HPos::Left,
            VPos::Center,
            false,
        )?;
    }
    let desc_x = bar_x + BAR_WIDTH as i32 + f.tick_w as i32 + DESC_BAND as i32 / 2;
    text(
        &data.value_desc,
        LABEL_SIZE,
        (desc_x, top + bar_h / 2),
        HPos::Center,
        VPos::Center,
        true,
    )?;
    Ok(())
}

/// Five evenly spaced colour-bar ticks from `lo` to `hi`, with their labels.
fn bar_ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
    (0..5)
        .map(|k| {
            let v = lo + (hi - lo) * f64::from(k) / 4.0;
            (v, fmt_tick(v))
        })
        .collect()
}

/// Up to three significant decimals, no trailing zeros, no "-0".
fn fmt_tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn visible_char_labels() {
        assert_eq!(
            char_labels(['\n', ' ', 'x', '\t', '\u{7}']),
            ["\\n", "␣", "x", "\\t", "\\u{7}"]
        );
        let labels = labels_or_indices(&["\n".into(), "ab".into()], 2, 0, "row").unwrap();
        assert_eq!(labels, ["\\n", "ab"]);
        assert_eq!(
            labels_or_indices(&[], 3, 1, "column").unwrap(),
            ["1", "2", "3"]
        );
    }

    #[test]
    fn wrong_label_count_is_an_error() {
        let m = Array2::<f64>::zeros((3, 4));
        let err = heatmap(m.view(), &["a".into()], &[], "t", HeatScale::activations()).unwrap_err();
        assert!(
            matches!(
                err,
                PlotError::LabelCount {
                    axis: "row",
                    expected: 3,
                    got: 1
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn empty_matrix_and_bad_scale_are_errors() {
        let m = Array2::<f64>::zeros((0, 4));
        let err = heatmap(m.view(), &[], &[], "t", HeatScale::activations()).unwrap_err();
        assert!(matches!(err, PlotError::Empty { .. }), "{err:?}");
        let m = Array2::<f64>::zeros((2, 2));
        let bad = HeatScale::Diverging { max_abs: f64::NAN };
        assert!(matches!(
            heatmap(m.view(), &[], &[], "t", bad),
            Err(PlotError::Scale(_))
        ));
    }

    #[test]
    fn size_follows_content() {
        let small = heatmap(
            Array2::zeros((5, 4)).view(),
            &[],
            &[],
            "s",
            HeatScale::activations(),
        )
        .unwrap();
        let big = heatmap(
            Array2::zeros((60, 40)).view(),
            &[],
            &[],
            "s",
            HeatScale::activations(),
        )
        .unwrap();
        assert!(big.width() > small.width() && big.height() > small.height());
        let huge = heatmap(
            Array2::zeros((5000, 5000)).view(),
            &[],
            &[],
            "s",
            HeatScale::activations(),
        )
        .unwrap();
        assert!(
            huge.width() <= 3000 && huge.height() <= 2400,
            "{}x{}",
            huge.width(),
            huge.height()
        );
    }

    #[test]
    fn ticks() {
        let labels: Vec<String> = bar_ticks(-1.0, 1.0).into_iter().map(|t| t.1).collect();
        assert_eq!(labels, ["-1", "-0.5", "0", "0.5", "1"]);
        let labels: Vec<String> = bar_ticks(0.0, 1.0).into_iter().map(|t| t.1).collect();
        assert_eq!(labels, ["0", "0.25", "0.5", "0.75", "1"]);
    }
}
