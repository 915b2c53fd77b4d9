//! Renders every plot kind to PNG and SVG and checks what a reader would see: the right size,
//! colours and dark text in the PNG; the title and axis descriptions as SVG text.

use std::collections::HashSet;

use ndarray::Array2;
use rnn_plot::{
    CURVE_SIZE, Format, GatePanel, GradientCurve, HeatScale, HistoryRow, Plot, PlotError,
    char_labels, gate_heatmap, gradient_norms, heatmap, loss_comparison, loss_curve,
};

fn history() -> Vec<HistoryRow> {
    (1..=500u64)
        .map(|step| {
            let clean = 1.5 + 1.8 * (-(step as f64) / 120.0).exp();
            let wiggle = 0.2 * ((step * 7919 % 101) as f64 / 101.0 - 0.5);
            HistoryRow {
                step,
                loss: clean + wiggle,
                smoothed_loss: clean,
                val_loss: (step % 50 == 0).then_some(clean + 0.1),
                grad_norm: 2.0,
                chars_per_s: 3e4,
            }
        })
        .collect()
}

fn gradients() -> Vec<GradientCurve> {
    [0.5, 1.0, 1.5]
        .iter()
        .map(|&r: &f64| {
            GradientCurve::new(
                format!("scale {r}"),
                (1..=30).map(|t| r.powi(30 - t)).collect(),
            )
        })
        .collect()
}

fn hidden() -> Plot {
    let a = Array2::from_shape_fn((50, 12), |(i, t)| {
        ((i as f64 - 25.0) * 0.1 + t as f64 * 0.05).tanh()
    });
    heatmap(
        a.view(),
        &[],
        &char_labels("hello world\n".chars()),
        "Hidden a⟨t⟩",
        HeatScale::activations(),
    )
    .unwrap()
}

fn probabilities() -> Plot {
    let vocab: Vec<char> = std::iter::once('\n').chain('a'..='z').collect();
    let p = Array2::from_shape_fn(
        (27, 12),
        |(i, t)| if i == (t * 5) % 27 { 0.9 } else { 0.1 / 26.0 },
    );
    heatmap(
        p.view(),
        &char_labels(vocab),
        &char_labels("hello world\n".chars()),
        "Next-character probabilities",
        HeatScale::probabilities(),
    )
    .unwrap()
}

/// Checks a PNG: size, many colours, mostly-but-not-only white, and dark (text) pixels.
fn check_png(png: &[u8], (width, height): (u32, u32), what: &str) {
    let img = image::load_from_memory_with_format(png, image::ImageFormat::Png)
        .unwrap_or_else(|e| panic!("{what}: PNG does not decode: {e}"))
        .to_rgb8();
    assert_eq!(img.dimensions(), (width, height), "{what}");
    let pixels: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    let colours: HashSet<[u8; 3]> = pixels.iter().copied().collect();
    assert!(
        colours.len() >= 20,
        "{what}: only {} colours",
        colours.len()
    );
    let non_white = pixels.iter().filter(|p| **p != [255, 255, 255]).count();
    assert!(
        non_white * 50 > pixels.len(),
        "{what}: almost blank ({non_white} non-white pixels)"
    );
    let dark = pixels.iter().filter(|p| p.iter().all(|&c| c < 70)).count();
    assert!(dark >= 200, "{what}: only {dark} dark (text) pixels");
}

/// Checks that an SVG holds each of `texts` (XML-escaped) as text.
fn check_svg(svg: &str, texts: &[&str], what: &str) {
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{what}: not an SVG"
    );
    assert!(svg.contains("<text"), "{what}: no text elements");
    for text in texts {
        let escaped = text
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(svg.contains(&escaped), "{what}: SVG lacks {text:?}");
    }
}

#[test]
fn loss_curve_renders() {
    let plot = loss_curve(&history(), "Training loss").unwrap();
    check_png(&plot.to_png_bytes().unwrap(), CURVE_SIZE, "loss");
    let svg = plot.to_svg_string().unwrap();
    check_svg(
        &svg,
        &[
            "Training loss",
            "step",
            "loss (nats)",
            "smoothed",
            "validation",
        ],
        "loss",
    );
}

#[test]
fn loss_comparison_renders_every_run() {
    let a = history();
    let b: Vec<HistoryRow> = a
        .iter()
        .map(|r| HistoryRow {
            loss: r.loss * 0.8,
            val_loss: None,
            ..r.clone()
        })
        .collect();
    let plot = loss_comparison(&[("sgd", &a), ("adam", &b)], "Optimizers").unwrap();
    check_png(&plot.to_png_bytes().unwrap(), CURVE_SIZE, "comparison");
    let svg = plot.to_svg_string().unwrap();
    check_svg(
        &svg,
        &[
            "Optimizers",
            "step",
            "loss (nats)",
            "sgd (training)",
            "sgd (validation)",
            "adam (training)",
        ],
        "comparison",
    );
    assert!(
        !svg.contains("adam (validation)"),
        "a legend entry for a missing series"
    );
    assert!(matches!(
        loss_comparison(&[], "none"),
        Err(PlotError::Empty { .. })
    ));
}

#[test]
fn loss_curve_without_validation_renders() {
    let rows: Vec<HistoryRow> = history()
        .into_iter()
        .map(|r| HistoryRow {
            val_loss: None,
            ..r
        })
        .collect();
    let svg = loss_curve(&rows, "Training only")
        .unwrap()
        .to_svg_string()
        .unwrap();
    assert!(
        !svg.contains("validation"),
        "a legend entry for a missing series"
    );
}

#[test]
fn gradient_norms_render() {
    let plot = gradient_norms(&gradients(), "Gradients through time").unwrap();
    check_png(&plot.to_png_bytes().unwrap(), CURVE_SIZE, "gradients");
    let svg = plot.to_svg_string().unwrap();
    check_svg(
        &svg,
        &[
            "Gradients through time",
            "time step t",
            "‖∂L/∂a⟨t⟩‖",
            "scale 0.5",
            "10⁻⁶",
        ],
        "gradients",
    );
}

#[test]
fn gradient_norms_with_zeros_render() {
    let curves = [GradientCurve::new(
        "with zeros",
        vec![1.0, 0.0, 0.5, f64::NAN, 0.25, 0.1],
    )];
    let plot = gradient_norms(&curves, "Zeros").unwrap();
    check_png(&plot.to_png_bytes().unwrap(), CURVE_SIZE, "zeros");
}

#[test]
fn hidden_heatmap_renders() {
    let plot = hidden();
    check_png(
        &plot.to_png_bytes().unwrap(),
        (plot.width(), plot.height()),
        "hidden",
    );
    let svg = plot.to_svg_string().unwrap();
    check_svg(
        &svg,
        &[
            "Hidden a⟨t⟩",
            "hidden unit",
            "input character",
            "49",
            "␣",
            "\\n",
            "-0.5",
        ],
        "hidden",
    );
}

#[test]
fn probability_heatmap_renders() {
    let plot = probabilities();
    check_png(
        &plot.to_png_bytes().unwrap(),
        (plot.width(), plot.height()),
        "probabilities",
    );
    let svg = plot.to_svg_string().unwrap();
    check_svg(
        &svg,
        &[
            "Next-character probabilities",
            "next character",
            "probability",
            "z",
            "0.75",
        ],
        "probs",
    );
}

#[test]
fn heatmap_with_many_columns_and_nan_renders() {
    let mut m = Array2::from_shape_fn((30, 400), |(i, t)| ((i * t) as f64 * 0.01).sin());
    m[[0, 0]] = f64::NAN;
    let text: String = "abcdefghij".chars().cycle().take(400).collect();
    let plot = heatmap(
        m.view(),
        &[],
        &char_labels(text.chars()),
        "Long",
        HeatScale::activations(),
    )
    .unwrap();
    assert!(plot.width() <= 3000, "{}", plot.width());
    check_png(
        &plot.to_png_bytes().unwrap(),
        (plot.width(), plot.height()),
        "long",
    );
}

#[test]
fn custom_sizes() {
    let plot = loss_curve(&history(), "Small").unwrap().with_size(400, 300);
    check_png(&plot.to_png_bytes().unwrap(), (400, 300), "small loss");
    let plot = hidden().with_size(900, 1400);
    check_png(
        &plot.to_png_bytes().unwrap(),
        (900, 1400),
        "stretched heatmap",
    );
    let too_small = hidden().with_size(120, 100);
    assert!(matches!(
        too_small.to_png_bytes(),
        Err(PlotError::Size { .. })
    ));
    let zero = loss_curve(&history(), "Zero").unwrap().with_size(0, 0);
    assert!(matches!(
        zero.to_svg_string(),
        Err(PlotError::Size {
            width: 0,
            height: 0
        })
    ));
}

#[test]
fn descriptions_can_be_replaced() {
    let plot = hidden()
        .with_y_desc("unit i")
        .with_x_desc("t")
        .with_value_desc("activation")
        .with_title("Other");
    let svg = plot.to_svg_string().unwrap();
    check_svg(&svg, &["Other", "unit i", "activation"], "renamed");
    assert!(!svg.contains("hidden unit"));
}

#[test]
fn save_writes_both_formats_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let plot = gradient_norms(&gradients(), "Saved").unwrap();
    let png = dir.path().join("g.png");
    let svg = dir.path().join("g.svg");
    plot.save(&png).unwrap();
    plot.save(&svg).unwrap();
    plot.save(&png).unwrap(); // Overwrites.
    check_png(&std::fs::read(&png).unwrap(), CURVE_SIZE, "saved png");
    check_svg(
        &std::fs::read_to_string(&svg).unwrap(),
        &["Saved"],
        "saved svg",
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "temporary files left behind: {names:?}");
    // The image gets the permissions of any new file (not a temporary file's 0600).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"x").unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&png), mode(&plain));
        std::fs::remove_file(&plain).unwrap();
    }
    plot.save_as(&dir.path().join("g.img"), Format::Svg)
        .unwrap();
}

#[test]
fn save_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let plot = loss_curve(&history(), "x").unwrap();
    let err = plot.save(&dir.path().join("loss.jpg")).unwrap_err();
    assert!(matches!(err, PlotError::UnknownFormat { .. }), "{err:?}");
    let missing = dir.path().join("no/such/dir/loss.png");
    let err = plot.save(&missing).unwrap_err();
    assert!(
        matches!(&err, PlotError::Io { path, .. } if path == &missing),
        "{err:?}"
    );
}

#[test]
fn png_base64_is_a_png() {
    let b64 = probabilities().to_png_base64().unwrap();
    assert!(b64.starts_with("iVBORw0KGgo"), "{}", &b64[..20]);
    assert_eq!(b64.len() % 4, 0);
}

#[test]
fn svg_wrapper_renders_the_same_plot() {
    let plot = loss_curve(&history(), "Wrapped").unwrap();
    let wrapped = plot.svg();
    assert_eq!(wrapped.plot().title(), "Wrapped");
    assert_eq!(
        wrapped.to_svg_string().unwrap(),
        plot.to_svg_string().unwrap()
    );
}

/// The five arrays of an LSTM layer of 24 units reading "hello world\n".
fn lstm_gates() -> Plot {
    let text = "hello world\n";
    let wave = |k: f64| {
        Array2::from_shape_fn((24, 12), move |(i, t)| {
            (i as f64 * 0.4 + t as f64 * k).sin()
        })
    };
    let sig = |k: f64| wave(k).mapv(|v| 1.0 / (1.0 + (-3.0 * v).exp()));
    let panels = [
        GatePanel::sigmoid("i: input gate σ", sig(0.3)),
        GatePanel::sigmoid("f: forget gate σ", sig(0.5)),
        GatePanel::tanh("g: candidate tanh", wave(0.7)),
        GatePanel::sigmoid("o: output gate σ", sig(0.9)),
        GatePanel::signed("c: cell state", wave(0.2).mapv(|v| 2.5 * v)),
    ];
    gate_heatmap(&panels, &char_labels(text.chars()), "LSTM gates, layer 1").unwrap()
}

#[test]
fn gate_heatmap_renders() {
    let plot = lstm_gates();
    assert!(plot.height() > 5 * 24 * 21, "{}", plot.height());
    check_png(
        &plot.to_png_bytes().unwrap(),
        (plot.width(), plot.height()),
        "gates",
    );
    let svg = plot.to_svg_string().unwrap();
    check_svg(
        &svg,
        &[
            "LSTM gates, layer 1",
            "f: forget gate σ",
            "c: cell state",
            "hidden unit",
            "␣",
            "\\n",
            "0.75",
            "-2.5",
        ],
        "gates",
    );
    assert!(
        svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "not a whole SVG document"
    );
    // Another size scales the panels.
    let small = plot.with_size(700, 900);
    check_png(&small.to_png_bytes().unwrap(), (700, 900), "small gates");
}

#[test]
fn gate_heatmap_rejects_bad_input() {
    assert!(matches!(
        gate_heatmap(&[], &[], "none"),
        Err(PlotError::Empty { .. })
    ));
    let panels = [
        GatePanel::tanh("h", Array2::zeros((3, 4))),
        GatePanel::tanh("h2", Array2::zeros((3, 5))),
    ];
    let err = gate_heatmap(&panels, &[], "shapes").unwrap_err();
    assert!(matches!(err, PlotError::PanelShape { .. }), "{err:?}");
    assert!(
        err.to_string().contains("\"h2\": 5 columns, expected 4"),
        "{err}"
    );
    let one = [GatePanel::tanh("h", Array2::zeros((3, 4)))];
    assert!(matches!(
        gate_heatmap(&one, &char_labels("abc".chars()), "labels"),
        Err(PlotError::LabelCount { .. })
    ));
}
