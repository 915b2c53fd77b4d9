//! Line charts: the training loss curve and gradient norms through time.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::colormap::series_color;
use crate::error::draw_err;
use crate::font::{FAMILY, text_size};
use crate::plot::Kind;
use crate::{HistoryRow, Plot, PlotError};

/// Default size of a line chart, in pixels.
pub const CURVE_SIZE: (u32, u32) = (800, 500);

/// One named curve of gradient norms `‖∂L/∂a⟨t⟩‖` for t = 1, 2, ..., `norms.len()`.
#[derive(Clone, Debug, PartialEq)]
pub struct GradientCurve {
    /// Legend text, e.g. "W_aa scale 0.5".
    pub label: String,
    /// `norms[t - 1]` is `‖∂L/∂a⟨t⟩‖`; zeros, negatives and non-finite values are not drawn
    /// (a log axis has no place for them) and break the line.
    pub norms: Vec<f64>,
}

impl GradientCurve {
    /// A curve from a label and its norms.
    pub fn new(label: impl Into<String>, norms: Vec<f64>) -> Self {
        GradientCurve {
            label: label.into(),
            norms,
        }
    }
}

/// Loss curve of a training run: the raw training loss (thin, light), the smoothed training
/// loss (bold) and, when any row has one, the validation loss (line with markers), against
/// the step. 800x500 pixels; axes "step" and "loss (nats)".
///
/// Rows whose loss is NaN or infinite leave a gap in their line.
///
/// # Errors
///
/// [`PlotError::Empty`] when `history` is empty or holds no finite loss at all.
pub fn loss_curve(history: &[HistoryRow], title: &str) -> Result<Plot, PlotError> {
    if history.is_empty() {
        return Err(PlotError::Empty {
            what: "history rows",
        });
    }
    let x = |r: &HistoryRow| r.step as f64;
    let data = LossData {
        raw: segments(history.iter().map(|r| (x(r), Some(r.loss)))),
        smoothed: segments(history.iter().map(|r| (x(r), Some(r.smoothed_loss)))),
        // Steps without a validation pass are skipped, not gaps: validation is periodic.
        val: segments(
            history
                .iter()
                .filter(|r| r.val_loss.is_some())
                .map(|r| (x(r), r.val_loss)),
        ),
    };
    if data.raw.is_empty() && data.smoothed.is_empty() && data.val.is_empty() {
        return Err(PlotError::Empty {
            what: "finite loss values",
        });
    }
    Ok(Plot::new(Kind::Loss(data), title, "step", "loss (nats)"))
}

/// Several training runs on one chart, to compare them (optimizers, learning rates, sizes):
/// for each `(label, history)` the training loss of each history row (solid; each row is
/// already a mean over its logging interval) and, when present, the validation loss (thin
/// line with markers) in the run's own colour. The exponentially smoothed loss is left
/// out: with its 0.999 decay it hardly moves in a short run. 800x500 pixels; axes
/// "step" and "loss (nats)". Compare runs whose losses are in the same unit (the same mode
/// and sequence length).
///
/// # Errors
///
/// [`PlotError::Empty`] when there are no runs or no finite loss at all.
pub fn loss_comparison(runs: &[(&str, &[HistoryRow])], title: &str) -> Result<Plot, PlotError> {
    let x = |r: &HistoryRow| r.step as f64;
    let data: Vec<RunData> = runs
        .iter()
        .map(|(label, history)| RunData {
            label: (*label).to_string(),
            train: segments(history.iter().map(|r| (x(r), Some(r.loss)))),
            val: segments(
                history
                    .iter()
                    .filter(|r| r.val_loss.is_some())
                    .map(|r| (x(r), r.val_loss)),
            ),
        })
        .collect();
    if data.iter().all(|r| r.train.is_empty() && r.val.is_empty()) {
        return Err(PlotError::Empty {
            what: "finite loss values",
        });
    }
    Ok(Plot::new(
        Kind::LossComparison(data),
        title,
        "step",
        "loss (nats)",
    ))
}

/// Gradient norms through time: one line per curve of `‖∂L/∂a⟨t⟩‖` against the time step t,
/// on a logarithmic y axis (they span orders of magnitude when gradients vanish or explode).
/// 800x500 pixels; axes "time step t" and `"‖∂L/∂a⟨t⟩‖"`.
///
/// # Errors
///
/// [`PlotError::Empty`] when there are no curves or no positive finite norm to draw.
pub fn gradient_norms(curves: &[GradientCurve], title: &str) -> Result<Plot, PlotError> {
    if curves.iter().all(|c| c.norms.is_empty()) {
        return Err(PlotError::Empty {
            what: "gradient norms",
        });
    }
    let lines: Vec<(String, Segments)> = curves
        .iter()
        .map(|c| {
            let points = c.norms.iter().enumerate().map(|(i, &n)| {
                let log = (n > 0.0 && n.is_finite()).then(|| n.log10());
                ((i + 1) as f64, log)
            });
            (c.label.clone(), segments(points))
        })
        .collect();
    if lines.iter().all(|(_, s)| s.is_empty()) {
        return Err(PlotError::Empty {
            what: "positive finite gradient norms",
        });
    }
    let max_len = curves.iter().map(|c| c.norms.len()).max().unwrap_or(1);
    Ok(Plot::new(
        Kind::Gradients(GradientData { lines, max_len }),
        title,
        "time step t",
        "‖∂L/∂a⟨t⟩‖",
    ))
}

/// One line of [`curves`]: a label and its `(x, y)` points (non-finite values break it).
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    /// The legend's text.
    pub label: String,
    /// The points, in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// Any number of labelled lines on linear axes, such as validation loss against wall-clock
/// time for several runs, with flat reference lines drawn as two-point curves. 800x500
/// pixels.
///
/// # Errors
///
/// [`PlotError::Empty`] when there is no finite point at all.
pub fn curves(
    curves: &[Curve],
    title: &str,
    x_desc: &str,
    y_desc: &str,
) -> Result<Plot, PlotError> {
    let lines: Vec<(String, Segments)> = curves
        .iter()
        .map(|c| {
            let points = c
                .points
                .iter()
                .map(|&(x, y)| (x, y.is_finite().then_some(y)));
            (
                c.label.clone(),
                segments(points.filter(|(x, _)| x.is_finite())),
            )
        })
        .collect();
    if lines.iter().all(|(_, s)| s.is_empty()) {
        return Err(PlotError::Empty {
            what: "finite points",
        });
    }
    Ok(Plot::new(Kind::Curves(lines), title, x_desc, y_desc))
}

/// One line per non-empty labelled series, in the series colours, with markers where
/// `markers` says so.
fn labelled_lines(lines: &[(String, Segments)], markers: impl Fn(&Segments) -> bool) -> Vec<Line> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, (_, segs))| !segs.is_empty())
        .map(|(i, (label, segs))| Line {
            label: label.clone(),
            color: series_color(i),
            stroke: 2,
            alpha: 1.0,
            markers: markers(segs),
            segments: segs.clone(),
        })
        .collect()
}

pub(crate) fn draw_curves<DB>(
    plot: &Plot,
    lines: &[(String, Segments)],
    root: &DrawingArea<DB, Shift>,
) -> Result<(), PlotError>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    let lines = labelled_lines(lines, |segs| segs.iter().map(Vec::len).sum::<usize>() <= 40);
    draw_lines(plot, root, &lines, Axis::Linear, false)
}

/// Unbroken runs of `(x, y)` points of one line.
pub(crate) type Segments = Vec<Vec<(f64, f64)>>;

/// Points of the loss curve, split into unbroken segments.
#[derive(Clone, Debug)]
pub(crate) struct LossData {
    raw: Segments,
    smoothed: Segments,
    val: Segments,
}

/// One run of a [`loss_comparison`] chart.
#[derive(Clone, Debug)]
pub(crate) struct RunData {
    label: String,
    train: Segments,
    val: Segments,
}

/// Gradient curves as (label, segments of (t, log10 norm)).
#[derive(Clone, Debug)]
pub(crate) struct GradientData {
    lines: Vec<(String, Segments)>,
    max_len: usize,
}

pub(crate) fn draw_loss<DB>(
    plot: &Plot,
    data: &LossData,
    root: &DrawingArea<DB, Shift>,
) -> Result<(), PlotError>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    let mut lines = Vec::new();
    let mut push = |label: &str, color, stroke, alpha, markers, segs: &Segments| {
        if !segs.is_empty() {
            lines.push(Line {
                label: label.to_string(),
                color,
                stroke,
                alpha,
                markers,
                segments: segs.clone(),
            });
        }
    };
    push(
        "training loss (raw)",
        series_color(5),
        1,
        0.55,
        false,
        &data.raw,
    );
    push("smoothed", series_color(0), 3, 1.0, false, &data.smoothed);
    let few_val = data.val.iter().map(Vec::len).sum::<usize>() <= 100;
    push("validation", series_color(1), 2, 1.0, few_val, &data.val);
    draw_lines(plot, root, &lines, Axis::Linear, false)
}

pub(crate) fn draw_comparison<DB>(
    plot: &Plot,
    runs: &[RunData],
    root: &DrawingArea<DB, Shift>,
) -> Result<(), PlotError>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    let mut lines = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        if !run.train.is_empty() {
            lines.push(Line {
                label: format!("{} (training)", run.label),
                color: series_color(i),
                stroke: 2,
                alpha: 1.0,
                markers: false,
                segments: run.train.clone(),
            });
        }
        if !run.val.is_empty() {
            let few = run.val.iter().map(Vec::len).sum::<usize>() <= 100;
            lines.push(Line {
                label: format!("{} (validation)", run.label),
                color: series_color(i),
                stroke: 1,
                alpha: 0.9,
                markers: few,
                segments: run.val.clone(),
            });
        }
    }
    draw_lines(plot, root, &lines, Axis::Linear, false)
}

pub(crate) fn draw_gradients<DB>(
    plot: &Plot,
    data: &GradientData,
    root: &DrawingArea<DB, Shift>,
) -> Result<(), PlotError>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    let markers = data.max_len <= 60;
    let lines = labelled_lines(&data.lines, |_| markers);
    draw_lines(plot, root, &lines, Axis::Log10, true)
}

/// Splits `(x, y)` points into runs of finite values; a missing or non-finite y breaks a run.
fn segments(points: impl Iterator<Item = (f64, Option<f64>)>) -> Segments {
    let mut out: Segments = Vec::new();
    let mut current = Vec::new();
    for (x, y) in points {
        match y {
            Some(y) if y.is_finite() && x.is_finite() => current.push((x, y)),
            _ => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// One legend entry and its points.
struct Line {
    label: String,
    color: RGBColor,
    stroke: u32,
    alpha: f64,
    markers: bool,
    segments: Segments,
}

/// How y values are shown. For `Log10` the values already are base-10 logarithms.
#[derive(Clone, Copy, PartialEq)]
enum Axis {
    Linear,
    Log10,
}

const LABEL_SIZE: f64 = 16.0;
const TITLE_SIZE: f64 = 24.0;
const MARGIN: u32 = 16;
const X_LABEL_AREA: u32 = 56;
const LEGEND_ROW: u32 = 24;

fn draw_lines<DB>(
    plot: &Plot,
    root: &DrawingArea<DB, Shift>,
    lines: &[Line],
    y_axis: Axis,
    integer_x: bool,
) -> Result<(), PlotError>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    let all = || lines.iter().flat_map(|l| l.segments.iter().flatten());
    let (mut x0, mut x1) = min_max(all().map(|p| p.0));
    let (mut y0, mut y1) = min_max(all().map(|p| p.1));
    if x1 - x0 < 1e-12 {
        x0 -= 1.0;
        x1 += 1.0;
    }
    match y_axis {
        Axis::Linear => {
            if y1 - y0 < 1e-12 {
                let pad = (y0.abs() * 0.1).max(0.5);
                y0 -= pad;
                y1 += pad;
            } else {
                let pad = (y1 - y0) * 0.05;
                y0 -= pad;
                y1 += pad;
            }
        }
        Axis::Log10 => {
            // Whole decades at both ends, so the axis starts and ends at a power of ten.
            y0 = (y0 + 1e-9).floor();
            y1 = (y1 - 1e-9).ceil();
            if y1 - y0 < 1.0 {
                y0 -= 1.0;
                y1 += 1.0;
            }
        }
    }

    // Layout estimates, to size the y label area and to place the legend.
    let (w, h) = root.dim_in_pixel();
    let y_span = y1 - y0;
    let y_fmt = move |v: &f64| match y_axis {
        Axis::Linear => fmt_linear(*v, y_span),
        Axis::Log10 => fmt_log(*v, y_span),
    };
    let x_fmt = |v: &f64| {
        if !integer_x {
            fmt_step(*v, x1 - x0)
        } else if (v - v.round()).abs() < 1e-9 {
            format!("{}", v.round())
        } else {
            String::new()
        }
    };
    let widest_y = [y0, y1, (y0 + y1) / 2.0, y0 + (y1 - y0) * 0.9]
        .iter()
        .map(|v| text_size(&y_fmt(v), LABEL_SIZE).0)
        .max()
        .unwrap_or(40);
    let y_label_area = widest_y + 52;
    let caption_h = text_size(&plot.title, TITLE_SIZE).1 + 10;
    let plot_w = f64::from(w.saturating_sub(y_label_area + 2 * MARGIN + 12).max(50));
    let plot_h = f64::from(
        h.saturating_sub(caption_h + X_LABEL_AREA + 2 * MARGIN)
            .max(50),
    );
    let legend_w = 60.0
        + lines
            .iter()
            .map(|l| f64::from(text_size(&l.label, LABEL_SIZE).0))
            .fold(0.0, f64::max);
    let legend_h = f64::from(LEGEND_ROW * lines.len() as u32 + 24);
    let legend_frac = ((legend_w / plot_w).min(1.0), (legend_h / plot_h).min(0.9));
    let mut position = best_corner(lines, (x0, x1), (y0, y1), legend_frac);
    if position.is_none() {
        // Every corner has data: make room above the curves instead of hiding them.
        let f = legend_frac.1;
        y1 += (y1 - y0) * f / (1.0 - f);
        position = Some(SeriesLabelPosition::UpperRight);
    }

    let mut chart = ChartBuilder::on(root)
        .caption(&plot.title, (FAMILY, TITLE_SIZE))
        .margin(MARGIN)
        .margin_right(MARGIN + 12)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(y_label_area)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(draw_err)?;
    let n_x_labels = if integer_x {
        ((x1 - x0) as usize + 1).clamp(2, 11)
    } else {
        9
    };
    let n_y_labels = match y_axis {
        Axis::Linear => 8,
        // Few decades: ticks between the powers of ten too, labelled with their values.
        Axis::Log10 if y1 - y0 <= 2.5 => 8,
        Axis::Log10 => ((y1 - y0).ceil() as usize + 1).clamp(3, 12),
    };
    chart
        .configure_mesh()
        .x_desc(plot.x_desc.as_str())
        .y_desc(plot.y_desc.as_str())
        .label_style((FAMILY, LABEL_SIZE))
        .axis_desc_style((FAMILY, LABEL_SIZE))
        .bold_line_style(RGBColor(218, 218, 218))
        .light_line_style(RGBColor(242, 242, 242))
        .axis_style(RGBColor(90, 90, 90))
        .x_labels(n_x_labels)
        .y_labels(n_y_labels)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .draw()
        .map_err(draw_err)?;

    for line in lines {
        let style = line.color.mix(line.alpha).stroke_width(line.stroke);
        for (i, seg) in line.segments.iter().enumerate() {
            let anno = chart
                .draw_series(LineSeries::new(seg.iter().copied(), style))
                .map_err(draw_err)?;
            if i == 0 {
                let (color, markers) = (line.color, line.markers);
                anno.label(line.label.as_str()).legend(move |(x, y)| {
                    let path = PathElement::new(vec![(x, y), (x + 24, y)], style);
                    // A marker only for lines drawn with markers.
                    let fill = if markers {
                        color.filled()
                    } else {
                        TRANSPARENT.filled()
                    };
                    let dot = Circle::new((x + 12, y), 4, fill);
                    EmptyElement::at((0, 0)) + path + dot
                });
            }
            if line.markers {
                let color = line.color;
                chart
                    .draw_series(seg.iter().map(|&p| Circle::new(p, 4, color.filled())))
                    .map_err(draw_err)?;
            }
        }
    }
    chart
        .configure_series_labels()
        .position(position.unwrap_or(SeriesLabelPosition::UpperRight))
        .margin(12)
        .legend_area_size(32)
        .label_font((FAMILY, LABEL_SIZE))
        .background_style(WHITE.mix(0.92))
        .border_style(RGBColor(140, 140, 140))
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// The first corner (upper right, upper left, lower left, lower right) whose legend box,
/// `frac` of the plot area in size, holds no point of any line (nor of the straight pieces
/// between points); `None` when every corner would hide data.
fn best_corner(
    lines: &[Line],
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
    (fw, fh): (f64, f64),
) -> Option<SeriesLabelPosition> {
    let mut points = Vec::new();
    for seg in lines.iter().flat_map(|l| &l.segments) {
        let norm = |&(x, y): &(f64, f64)| ((x - x0) / (x1 - x0), (y - y0) / (y1 - y0));
        let seg: Vec<(f64, f64)> = seg.iter().map(norm).collect();
        points.extend_from_slice(&seg);
        for pair in seg.windows(2) {
            for k in 1..8 {
                let t = f64::from(k) / 8.0;
                points.push((
                    pair[0].0 + (pair[1].0 - pair[0].0) * t,
                    pair[0].1 + (pair[1].1 - pair[0].1) * t,
                ));
            }
        }
    }
    let corners = [
        (SeriesLabelPosition::UpperRight, 1.0 - fw, 1.0 - fh),
        (SeriesLabelPosition::UpperLeft, 0.0, 1.0 - fh),
        (SeriesLabelPosition::LowerLeft, 0.0, 0.0),
        (SeriesLabelPosition::LowerRight, 1.0 - fw, 0.0),
    ];
    corners.into_iter().find_map(|(pos, bx, by)| {
        let inside = |&(x, y): &(f64, f64)| x >= bx && x <= bx + fw && y >= by && y <= by + fh;
        (!points.iter().any(inside)).then_some(pos)
    })
}

/// A tick label for a linear axis spanning `span`: as many decimals as the tick spacing needs.
fn fmt_linear(v: f64, span: f64) -> String {
    let step = span / 8.0;
    let decimals = if step > 0.0 {
        (-step.log10().floor()).clamp(0.0, 6.0) as usize
    } else {
        2
    };
    let s = format!("{v:.decimals$}");
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        "0".to_string() // no "-0.00"
    } else {
        s
    }
}

/// A step-axis label: thousands as "k" once the numbers get long.
fn fmt_step(v: f64, span: f64) -> String {
    // One style per axis: when the axis spans 10,000 steps or more, every whole thousand
    // reads "5k", "10k", ... (not "5000" next to "10k").
    if v == 0.0 {
        "0".to_string()
    } else if span >= 10_000.0 && (v / 1000.0 - (v / 1000.0).round()).abs() < 1e-9 {
        format!("{}k", (v / 1000.0).round())
    } else {
        fmt_linear(v, span)
    }
}

/// A tick label for a log10 axis, given the exponent `v`: "10⁻³" at whole decades,
/// otherwise the value itself with two significant digits.
fn fmt_log(v: f64, _span: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("10{}", superscript(v.round() as i64))
    } else {
        let x = 10f64.powf(v);
        let digits = (1 - x.log10().floor() as i64).clamp(0, 12) as usize;
        format!("{x:.digits$}")
    }
}

fn superscript(k: i64) -> String {
    const DIGITS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let mut s = String::new();
    if k < 0 {
        s.push('⁻');
    }
    for d in k.unsigned_abs().to_string().bytes() {
        s.push(DIGITS[usize::from(d - b'0')]);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(n: u64) -> Vec<HistoryRow> {
        (0..n)
            .map(|i| HistoryRow {
                step: i,
                loss: 3.0 - i as f64 * 0.01,
                smoothed_loss: 3.0 - i as f64 * 0.01,
                val_loss: (i % 10 == 0).then_some(3.2),
                grad_norm: 1.0,
                chars_per_s: 1000.0,
            })
            .collect()
    }

    #[test]
    fn curves_draw_their_labels_and_refuse_nothing_to_draw() {
        let runs = [
            Curve {
                label: "lstm".into(),
                points: vec![(0.5, 2.0), (1.0, f64::NAN), (2.0, 1.5)],
            },
            Curve {
                label: "reference 1.47".into(),
                points: vec![(0.0, 1.47), (2.0, 1.47)],
            },
        ];
        let plot = curves(&runs, "validation", "minutes", "nats/char").unwrap();
        let svg = plot.to_svg_string().unwrap();
        assert!(svg.contains("lstm") && svg.contains("reference 1.47"));
        assert!(svg.contains("minutes") && svg.contains("nats/char"));
        let empty = [Curve {
            label: "x".into(),
            points: vec![(0.0, f64::NAN)],
        }];
        assert!(matches!(
            curves(&empty, "t", "x", "y"),
            Err(PlotError::Empty { .. })
        ));
    }

    #[test]
    fn segments_break_at_gaps() {
        let pts = [
            (0.0, Some(1.0)),
            (1.0, None),
            (2.0, Some(f64::NAN)),
            (3.0, Some(2.0)),
            (4.0, Some(3.0)),
        ];
        let segs = segments(pts.into_iter());
        assert_eq!(segs, vec![vec![(0.0, 1.0)], vec![(3.0, 2.0), (4.0, 3.0)]]);
    }

    #[test]
    fn empty_inputs_are_errors() {
        assert!(matches!(loss_curve(&[], "t"), Err(PlotError::Empty { .. })));
        let mut nan = history(3);
        for r in &mut nan {
            r.loss = f64::NAN;
            r.smoothed_loss = f64::INFINITY;
            r.val_loss = None;
        }
        assert!(matches!(
            loss_curve(&nan, "t"),
            Err(PlotError::Empty { .. })
        ));
        assert!(matches!(
            gradient_norms(&[], "t"),
            Err(PlotError::Empty { .. })
        ));
        let zeros = [
            GradientCurve::new("zero", vec![0.0; 5]),
            GradientCurve::new("none", vec![]),
        ];
        assert!(matches!(
            gradient_norms(&zeros, "t"),
            Err(PlotError::Empty { .. })
        ));
    }

    #[test]
    fn defaults() {
        let p = loss_curve(&history(50), "Loss").unwrap();
        assert_eq!((p.width(), p.height()), CURVE_SIZE);
        assert_eq!(
            (p.x_desc.as_str(), p.y_desc.as_str()),
            ("step", "loss (nats)")
        );
        let g = gradient_norms(&[GradientCurve::new("a", vec![1.0, 0.1])], "G").unwrap();
        assert_eq!(g.y_desc, "‖∂L/∂a⟨t⟩‖");
    }

    #[test]
    fn single_points_render() {
        let p = loss_curve(&history(1), "one row").unwrap();
        p.to_png_bytes().unwrap();
        let g = gradient_norms(&[GradientCurve::new("a", vec![1.0])], "one step").unwrap();
        g.to_svg_string().unwrap();
    }

    #[test]
    fn tick_labels() {
        assert_eq!(fmt_log(-3.0, 5.0), "10⁻³");
        assert_eq!(fmt_log(0.0, 5.0), "10⁰");
        assert_eq!(fmt_log(12.0, 5.0), "10¹²");
        assert_eq!(fmt_log(0.5f64.log10(), 1.0), "0.50");
        assert_eq!(fmt_linear(2.5, 3.0), "2.5");
        assert_eq!(fmt_linear(-0.0001, 3.0), "0");
        assert_eq!(fmt_step(20_000.0, 100_000.0), "20k");
        assert_eq!(fmt_step(1500.0, 2000.0), "1500");
        // One style along a wide axis: "5k" next to "10k", not "5000".
        assert_eq!(fmt_step(5000.0, 35_000.0), "5k");
        assert_eq!(fmt_step(0.0, 35_000.0), "0");
    }
}
