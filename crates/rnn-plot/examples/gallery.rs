//! Renders one of each plot, from synthetic numbers, as PNG and SVG into a directory.
//!
//! ```sh
//! cargo run -p rnn-plot --example gallery -- /tmp/rnn-plot-gallery
//! ```

use std::path::PathBuf;

use ndarray::Array2;
use rnn_plot::{
    GradientCurve, HeatScale, HistoryRow, Plot, PlotError, char_labels, gradient_norms, heatmap,
    loss_curve,
};

fn main() -> Result<(), PlotError> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "gallery".into()));
    std::fs::create_dir_all(&dir).map_err(|source| PlotError::Io {
        path: dir.clone(),
        source,
    })?;
    for (name, plot) in gallery()? {
        for ext in ["png", "svg"] {
            let path = dir.join(format!("{name}.{ext}"));
            plot.save(&path)?;
            println!("{}", path.display());
        }
    }
    Ok(())
}

/// The sample plots, by file stem.
fn gallery() -> Result<Vec<(&'static str, Plot)>, PlotError> {
    let mut noise = Lcg(42);
    let mut smoothed = None;
    let history: Vec<HistoryRow> = (1..=2000u64)
        .map(|step| {
            let clean = 1.6 + 1.7 * (-(step as f64) / 400.0).exp();
            let loss = clean + 0.35 * (noise.next() - 0.5);
            let s = smoothed.map_or(loss, |s: f64| 0.98 * s + 0.02 * loss);
            smoothed = Some(s);
            HistoryRow {
                step,
                loss,
                smoothed_loss: s,
                val_loss: (step % 100 == 0).then_some(clean + 0.08),
                grad_norm: 1.0,
                chars_per_s: 4e4,
            }
        })
        .collect();
    let curves: Vec<GradientCurve> = [
        ("W_aa scale 0.6 (vanishing)", 0.6),
        ("W_aa scale 1.0", 1.0),
        ("W_aa scale 1.5 (exploding)", 1.5),
    ]
    .into_iter()
    .map(|(label, r): (&str, f64)| {
        let norms = (1..=30).map(|t| r.powi(30 - t)).collect();
        GradientCurve::new(label, norms)
    })
    .collect();
    let text = "the cat sat\n";
    let chars: Vec<char> = text.chars().collect();
    let t = chars.len();
    let hidden = Array2::from_shape_fn((50, t), |(i, j)| {
        ((i as f64 * 0.7 + j as f64 * 1.3).sin() * 2.0 * (1.0 + noise.next())).tanh()
    });
    let vocab: Vec<char> = std::iter::once('\n').chain('a'..='z').collect();
    let mut probs = Array2::from_shape_fn((vocab.len(), t), |_| noise.next().powi(6));
    for (j, &c) in chars.iter().enumerate() {
        // Put most of the mass on the next character of the text.
        let next = chars.get(j + 1).copied().unwrap_or('\n');
        let next = if next == ' ' { '\n' } else { next };
        let row = vocab.iter().position(|&v| v == next).unwrap_or(0);
        probs[[row, j]] += 8.0 + 4.0 * f64::from(c == 't');
    }
    for mut col in probs.columns_mut() {
        let sum = col.sum();
        col.mapv_inplace(|p| p / sum);
    }
    Ok(vec![
        ("loss", loss_curve(&history, "Training loss")?),
        (
            "gradients",
            gradient_norms(&curves, "Gradient norms through time")?,
        ),
        (
            "hidden",
            heatmap(
                hidden.view(),
                &[],
                &char_labels(chars.iter().copied()),
                "Hidden activations a⟨t⟩",
                HeatScale::activations(),
            )?,
        ),
        (
            "probs",
            heatmap(
                probs.view(),
                &char_labels(vocab.iter().copied()),
                &char_labels(chars.iter().copied()),
                "Next-character probabilities",
                HeatScale::probabilities(),
            )?,
        ),
    ])
}

/// A tiny deterministic generator of numbers in [0, 1), so the gallery needs no `rand`.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}
