//! `charrnn plot`: pictures of a run (the loss curve) and of a model (hidden activations,
//! next-character probabilities, the gates of a layer, gradient norms through time).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use ndarray::{Array2, ShapeBuilder};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rnn_data::{CorpusMode, TokenId};
use rnn_engine::{Dtype, Float, Model, Params, TrainState};
use rnn_plot::{Format, GatePanel, GradientCurve, HeatScale, Plot};

use crate::checkpoint;
use crate::data::DataSource;
use crate::output::Outputs;

/// Arguments of `charrnn plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    #[command(subcommand)]
    kind: Kind,
}

#[derive(Debug, Subcommand)]
enum Kind {
    /// Training and validation loss against the step, from a run's history.csv.
    Loss {
        /// The run directory.
        #[arg(long, value_name = "DIR")]
        run: PathBuf,
        #[command(flatten)]
        output: Output,
    },
    /// Hidden activations a⟨t⟩ (n_a x T) while the model reads a text.
    Hidden {
        #[command(flatten)]
        model: ModelText,
        #[command(flatten)]
        output: Output,
    },
    /// Next-character probabilities ŷ⟨t⟩ (vocabulary x T) while the model reads a text.
    Probs {
        #[command(flatten)]
        model: ModelText,
        #[command(flatten)]
        output: Output,
    },
    /// The gates of one layer (one panel each) while the model reads a text: i, f, g, o and
    /// the cell state c for an LSTM, r, z, n for a GRU, the activation a⟨t⟩ for the vanilla
    /// cell.
    Gates {
        #[command(flatten)]
        model: ModelText,
        /// The layer, from 0 (reads the characters) to layers − 1 [default: the top layer].
        #[arg(long, value_name = "K")]
        layer: Option<usize>,
        #[command(flatten)]
        output: Output,
    },
    /// ‖∂L⟨T⟩/∂a⟨t⟩‖ against t (a⟨t⟩ is the top layer's hidden state for a stack): how far
    /// back the last prediction's gradient reaches, for the trained model, for random W_aa
    /// of chosen spectral radii (the post's model) and for other checkpoints (--compare).
    Gradients {
        /// A checkpoint.json, or a run directory holding one.
        #[arg(long, value_name = "PATH")]
        checkpoint: PathBuf,
        /// Other checkpoints (or run directories) whose trained curves to draw on the same
        /// text, e.g. a GRU and an LSTM trained on the same data.
        #[arg(long, value_delimiter = ',', value_name = "RUN2,RUN3")]
        compare: Vec<PathBuf>,
        /// The text to read [default: "pachycephalosaurus" repeated to 40 characters for
        /// names models, else the first 40 characters of the training text].
        #[arg(long, value_name = "STR")]
        text: Option<String>,
        /// Spectral radii of random W_aa to compare with the trained one: the post's model
        /// only [default: 0.5,1.0,1.5 when it is plotted without --compare, else none].
        #[arg(long, value_delimiter = ',')]
        radius: Option<Vec<f64>>,
        /// Seed for the random orthogonal matrices.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        output: Output,
    },
}

/// A model and a text for it to read.
#[derive(Debug, Args)]
struct ModelText {
    /// A checkpoint.json, or a run directory holding one.
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// The text to read (lowercased if the model was trained lowercased).
    #[arg(long, value_name = "STR")]
    text: String,
}

/// Where the picture goes.
#[derive(Debug, Args)]
struct Output {
    /// Image format [default: from --out's extension, else png].
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Output file, ending in .png or .svg [default: <run directory>/<kind>.<format>,
    /// replaced if it exists].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace --out if it exists (never an input of the command).
    #[arg(long)]
    force: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    Png,
    Svg,
}

impl Output {
    /// The image format: --format, else --out's extension (which must be .png or .svg, and
    /// agree with --format when both are given), else PNG.
    fn format(&self) -> Result<Format> {
        let from_ext = match &self.out {
            Some(out) if out.extension().is_some() => {
                Some(Format::from_path(out).map_err(|_| {
                    anyhow::anyhow!(
                        "--out {}: unknown image format {:?}; name a .png or .svg file",
                        out.display(),
                        out.extension().unwrap_or_default().to_string_lossy()
                    )
                })?)
            }
            _ => None,
        };
        let given = self.format.map(|f| match f {
            FormatArg::Png => Format::Png,
            FormatArg::Svg => Format::Svg,
        });
        match (given, from_ext) {
            (Some(g), Some(e)) if g != e => bail!(
                "--format {} disagrees with --out {}",
                g.extension(),
                self.out.as_deref().unwrap_or(Path::new("")).display()
            ),
            (Some(f), _) | (None, Some(f)) => Ok(f),
            (None, None) => Ok(Format::Png),
        }
    }

    /// Saves `plot` and prints where. `inputs` are the command's input files, which the
    /// picture may never replace (see [`crate::output`]).
    fn save(&self, plot: &Plot, run_dir: &Path, kind: &str, inputs: Outputs) -> Result<()> {
        let format = self.format()?;
        let (shown, target) = match &self.out {
            Some(out) => (out.clone(), inputs.file("--out", out)?),
            None => {
                let path = run_dir.join(format!("{kind}.{}", format.extension()));
                (path.clone(), inputs.run_file(&path)?)
            }
        };
        plot.save_as(&target, format)?;
        println!("wrote {}", shown.display());
        Ok(())
    }

    /// The policy for this command's outputs (`--force`).
    fn policy(&self) -> Outputs {
        Outputs::new(self.force)
    }
}

/// Runs `charrnn plot`.
pub fn run(args: PlotArgs) -> Result<()> {
    match args.kind {
        Kind::Loss { run, output } => {
            output.format()?;
            let history = run.join("history.csv");
            crate::output::regular_input("", &history)?;
            let rows = rnn_plot::read_history_csv(&history)?;
            let plot = rnn_plot::loss_curve(&rows, &format!("Training loss: {}", run.display()))?;
            let inputs = output
                .policy()
                .input("--run", &history)
                .input("--run", &run.join(crate::checkpoint::CHECKPOINT_FILE));
            output.save(&plot, &run, "loss", inputs)
        }
        Kind::Hidden { model, output } => heatmap(&model, &output, Matrix::Hidden),
        Kind::Probs { model, output } => heatmap(&model, &output, Matrix::Probs),
        Kind::Gates {
            model,
            layer,
            output,
        } => gates(&model, layer, &output),
        Kind::Gradients {
            checkpoint,
            compare,
            text,
            radius,
            seed,
            output,
        } => gradients(&checkpoint, &compare, text, radius, seed, &output),
    }
}

/// The longest text a plot reads: one column (or point) per character.
pub const MAX_PLOT_CHARS: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Matrix {
    Hidden,
    Probs,
}

/// The text in the model's ids, lowercased as in training. Errors name the character.
fn encode(st: &TrainState, text: &str) -> Result<Vec<TokenId>> {
    let text = if st.config.lowercase {
        text.to_lowercase()
    } else {
        text.to_string()
    };
    if text.is_empty() {
        bail!("--text is empty");
    }
    if text.chars().count() > MAX_PLOT_CHARS {
        bail!("--text is longer than {MAX_PLOT_CHARS} characters (one column each)");
    }
    st.vocab
        .encode(&text)
        .with_context(|| format!("--text {text:?} does not fit the model's vocabulary"))
}

/// Inputs and targets for reading `ids`: lines models start from "no input" and predict
/// the closing newline, as in training; stream models read the characters themselves.
fn sequence(st: &TrainState, ids: &[TokenId]) -> (Vec<Option<TokenId>>, Vec<Option<TokenId>>) {
    match st.config.mode {
        CorpusMode::Lines => {
            let x = std::iter::once(None)
                .chain(ids.iter().copied().map(Some))
                .collect();
            let y = ids
                .iter()
                .copied()
                .map(Some)
                .chain(std::iter::once(st.vocab.newline_id()))
                .collect();
            (x, y)
        }
        CorpusMode::Stream => {
            let x = ids.iter().copied().map(Some).collect();
            let y = ids[1..]
                .iter()
                .copied()
                .map(Some)
                .chain(std::iter::once(None))
                .collect();
            (x, y)
        }
    }
}

/// The column labels of a text read as `x`: its characters, "∅" for "no input".
fn column_labels(st: &TrainState, x: &[Option<TokenId>]) -> Vec<String> {
    x.iter()
        .map(|id| match id.and_then(|i| st.vocab.char(i)) {
            Some(c) => rnn_plot::char_label(c),
            None => "∅".to_string(),
        })
        .collect()
}

/// At most 20 characters of `text`, for a title.
fn shorten(text: &str) -> String {
    if text.chars().count() > 20 {
        text.chars().take(19).chain(std::iter::once('…')).collect()
    } else {
        text.to_string()
    }
}

fn gates(model: &ModelText, layer: Option<usize>, output: &Output) -> Result<()> {
    output.format()?;
    let loaded = checkpoint::load(&model.checkpoint)?;
    let st = &loaded.checkpoint.state;
    let n_layers = st.model.n_layers();
    let layer = match layer {
        None => n_layers - 1,
        Some(k) if k < n_layers => k,
        Some(k) => bail!(
            "--layer {k}: {} holds {n_layers} layer(s), numbered 0 to {}",
            loaded.path.display(),
            n_layers - 1
        ),
    };
    let ids = encode(st, &model.text)?;
    let (x, _) = sequence(st, &ids);
    let deep = st.model.as_deep();
    let arrays = match loaded.checkpoint.dtype {
        Dtype::F32 => rnn::analysis::gate_activations(&deep.cast::<f32>(), &x, layer),
        Dtype::F64 => rnn::analysis::gate_activations(&deep, &x, layer),
    };
    let post = st.model.vanilla().is_some();
    let panels: Vec<GatePanel> = arrays
        .into_iter()
        .map(|(name, values)| match name.as_str() {
            "h" if post => GatePanel::tanh("a⟨t⟩: hidden state, tanh", values),
            "h" => GatePanel::tanh("h: hidden state, tanh", values),
            "i" => GatePanel::sigmoid("i: input gate, σ", values),
            "f" => GatePanel::sigmoid("f: forget gate, σ (1 keeps c)", values),
            "g" => GatePanel::tanh("g: candidate cell, tanh", values),
            "o" => GatePanel::sigmoid("o: output gate, σ", values),
            "c" => GatePanel::signed("c: cell state", values),
            "r" => GatePanel::sigmoid("r: reset gate, σ", values),
            "z" => GatePanel::sigmoid("z: update gate, σ (1 keeps h)", values),
            "n" => GatePanel::tanh("n: candidate state, tanh", values),
            _ => GatePanel::signed(name, values),
        })
        .collect();
    let place = match (n_layers, layer) {
        (1, _) => "its only layer".to_string(),
        (n, k) if k + 1 == n => format!("layer {k}, the top of {n}"),
        (n, k) => format!("layer {k} of 0..{}", n - 1),
    };
    let title = format!(
        "{} gates, {place}, reading {:?}",
        st.model.cell().name().to_uppercase(),
        shorten(&model.text)
    );
    let plot = rnn_plot::gate_heatmap(&panels, &column_labels(st, &x), &title)?;
    let inputs = output.policy().input("--checkpoint", &loaded.path);
    output.save(&plot, &loaded.dir(), "gates", inputs)
}

/// The radii of the random W_aa the post's model is compared with by default.
const DEFAULT_RADII: [f64; 3] = [0.5, 1.0, 1.5];

fn gradients(
    checkpoint: &Path,
    compare: &[PathBuf],
    text: Option<String>,
    radius: Option<Vec<f64>>,
    seed: u64,
    output: &Output,
) -> Result<()> {
    for &r in radius.iter().flatten() {
        if !(r.is_finite() && r > 0.0) {
            bail!("invalid radius = {r}: expected a finite number > 0");
        }
    }
    output.format()?;
    let loaded = checkpoint::load(checkpoint)?;
    let st = &loaded.checkpoint.state;
    let text = match text {
        Some(t) => t,
        None => default_gradient_text(st, &loaded.checkpoint.data_origin)?,
    };
    let ids = encode(st, &text)?;
    // Random W_aa of chosen radii replace the post's recurrent matrix: they exist for one
    // vanilla layer only, and are drawn by default when that model is plotted alone.
    let radii = match (radius, st.model.vanilla()) {
        (Some(_), None) => bail!(
            "--radius: random W_aa of a chosen radius replace the recurrent matrix of the \
             post's model (one vanilla layer), and {} holds {} layer(s) of {}",
            loaded.path.display(),
            st.model.n_layers(),
            st.model.cell().name()
        ),
        (Some(r), Some(_)) => r,
        (None, Some(_)) if compare.is_empty() => DEFAULT_RADII.to_vec(),
        (None, _) => Vec::new(),
    };
    let (x, target) = last_step_sequence(st, &ids)?;
    let mut curves = match (st.model.vanilla(), loaded.checkpoint.dtype) {
        (Some(p), Dtype::F32) => radius_curves(&p.cast::<f32>(), &x, target, &radii, seed),
        (Some(p), Dtype::F64) => radius_curves(p, &x, target, &radii, seed),
        (None, _) => Vec::new(),
    };
    let alone = compare.is_empty();
    let label = match (alone, st.model.vanilla().is_some()) {
        (true, true) => "trained W_aa".to_string(),
        (true, false) => format!(
            "trained {} (ρ(W_aa) curves: vanilla only)",
            describe(&st.model)
        ),
        (false, _) => format!("{}: {}", describe(&st.model), loaded.dir().display()),
    };
    curves.push(GradientCurve::new(
        label,
        trained_norms(&st.model, loaded.checkpoint.dtype, &x, target),
    ));
    let mut inputs = output.policy().input("--checkpoint", &loaded.path);
    for path in compare {
        let other =
            checkpoint::load(path).with_context(|| format!("--compare {}", path.display()))?;
        let ost = &other.checkpoint.state;
        let (ox, otarget) = encode(ost, &text)
            .and_then(|ids| last_step_sequence(ost, &ids))
            .with_context(|| format!("--compare {}", path.display()))?;
        curves.push(GradientCurve::new(
            format!("{}: {}", describe(&ost.model), other.dir().display()),
            trained_norms(&ost.model, other.checkpoint.dtype, &ox, otarget),
        ));
        inputs = inputs.input("--compare", &other.path);
    }
    let title = format!(
        "Last step's gradient through time, reading {:?}",
        shorten(&text)
    );
    let mut plot = rnn_plot::gradient_norms(&curves, &title)?;
    if !(alone && st.model.vanilla().is_some()) {
        plot = plot.with_y_desc("‖∂L⟨T⟩/∂a⟨t⟩‖, top layer");
    }
    output.save(&plot, &loaded.dir(), "gradients", inputs)?;
    for curve in &curves {
        println!("{}", summarize(curve));
    }
    Ok(())
}

/// "lstm × 2 layers, n_a 64" (one layer: "gru, n_a 64").
fn describe<F: Float>(model: &Model<F>) -> String {
    let layers = match model.n_layers() {
        1 => String::new(),
        n => format!(" × {n} layers"),
    };
    format!("{}{layers}, n_a {}", model.cell().name(), model.n_a())
}

/// One line of numbers for a curve: the norm at the last step, 10 steps back and at t = 1,
/// each also relative to the last step's.
fn summarize(curve: &GradientCurve) -> String {
    let n = &curve.norms;
    let Some(&last) = n.last() else {
        return format!("{}: no steps", curve.label);
    };
    let at = |t: usize| {
        let v = n[t - 1];
        format!("t = {t}: {v:.3e} ({:.2e} of t = T)", v / last)
    };
    let back = if n.len() > 11 {
        format!(", {}", at(n.len() - 10))
    } else {
        String::new()
    };
    format!(
        "{}: ‖∂L⟨T⟩/∂a⟨t⟩‖ at t = T = {}: {last:.3e}{back}, {}",
        curve.label,
        n.len(),
        at(1)
    )
}

/// ‖∂L⟨T⟩/∂a⟨t⟩‖ of a trained model: the post's function for one vanilla layer, the
/// stack's for any other (the two agree on one vanilla layer).
fn trained_norms<F: Float>(
    model: &Model<F>,
    dtype: Dtype,
    x: &[Option<TokenId>],
    target: TokenId,
) -> Vec<f64> {
    use rnn::analysis::{deep_last_step_gradient_norms, last_step_gradient_norms};
    match (model.vanilla(), dtype) {
        (Some(p), Dtype::F32) => last_step_gradient_norms(&p.cast::<f32>(), x, target),
        (Some(p), Dtype::F64) => last_step_gradient_norms(p, x, target),
        (None, Dtype::F32) => {
            deep_last_step_gradient_norms(&model.as_deep().cast::<f32>(), x, target)
        }
        (None, Dtype::F64) => deep_last_step_gradient_norms(&model.as_deep(), x, target),
    }
}

fn heatmap(model: &ModelText, output: &Output, matrix: Matrix) -> Result<()> {
    output.format()?;
    let loaded = checkpoint::load(&model.checkpoint)?;
    let st = &loaded.checkpoint.state;
    let ids = encode(st, &model.text)?;
    let (x, y) = sequence(st, &ids);
    let values = match (st.model.vanilla(), loaded.checkpoint.dtype) {
        (Some(p), Dtype::F32) => forward_matrix(&p.cast::<f32>(), &x, &y, matrix),
        (Some(p), Dtype::F64) => forward_matrix(p, &x, &y, matrix),
        // A stack: the top layer's hidden state, and the output.
        (None, dtype) => {
            let (h, p) = match dtype {
                Dtype::F32 => st.model.cast::<f32>().read(&x),
                Dtype::F64 => st.model.read(&x),
            };
            match matrix {
                Matrix::Hidden => h,
                Matrix::Probs => p,
            }
        }
    };
    let col_labels = column_labels(st, &x);
    let (kind, plot) = match matrix {
        Matrix::Hidden => (
            "hidden",
            rnn_plot::heatmap(
                values.view(),
                &[],
                &col_labels,
                &format!("Hidden state a⟨t⟩ reading {:?}", model.text),
                HeatScale::activations(),
            )?,
        ),
        Matrix::Probs => (
            "probs",
            rnn_plot::heatmap(
                values.view(),
                &rnn_plot::char_labels(st.vocab.chars().iter().copied()),
                &col_labels,
                &format!("Next-character probabilities reading {:?}", model.text),
                HeatScale::probabilities(),
            )?,
        ),
    };
    let inputs = output.policy().input("--checkpoint", &loaded.path);
    output.save(&plot, &loaded.dir(), kind, inputs)
}

/// One forward pass (m = 1, zero a⟨0⟩): a<1..T> (n_a, T) or ŷ<1..T> (n_y, T), in f64.
fn forward_matrix<F: Float>(
    params: &Params<F>,
    x: &[Option<TokenId>],
    y: &[Option<TokenId>],
    matrix: Matrix,
) -> Array2<f64> {
    let n_steps = x.len();
    let xs = Array2::from_shape_fn((n_steps, 1), |(t, _)| x[t]);
    let ys = Array2::from_shape_fn((n_steps, 1), |(t, _)| y[t]);
    let a0 = Array2::zeros((params.n_a(), 1).f());
    let (_, cache) = rnn_engine::forward(params, xs.view(), ys.view(), a0.view());
    let m = match matrix {
        Matrix::Hidden => cache.a_all(),
        Matrix::Probs => cache.y_hat_all(),
    };
    m.mapv(rnn::Float::as_f64)
}

/// The inputs and the target of a last-step gradient: the last character is the target,
/// the ones before it (after "no input" for names) are the inputs.
fn last_step_sequence(st: &TrainState, ids: &[TokenId]) -> Result<(Vec<Option<TokenId>>, TokenId)> {
    let (&target, before) = ids
        .split_last()
        .context("--text needs at least one character")?;
    let x: Vec<Option<TokenId>> = match st.config.mode {
        CorpusMode::Lines => std::iter::once(None)
            .chain(before.iter().copied().map(Some))
            .collect(),
        CorpusMode::Stream => before.iter().copied().map(Some).collect(),
    };
    if x.is_empty() {
        bail!("--text needs at least two characters for a stream model");
    }
    Ok((x, target))
}

/// The post's model with random W_aa of spectral radii `radii` (one curve each).
fn radius_curves<F: Float>(
    params: &Params<F>,
    x: &[Option<TokenId>],
    target: TokenId,
    radii: &[f64],
    seed: u64,
) -> Vec<GradientCurve> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    radii
        .iter()
        .map(|&r| {
            let p = rnn::analysis::with_recurrent_radius(params, r, &mut rng);
            GradientCurve::new(
                format!("ρ(W_aa) = {r}"),
                rnn::analysis::last_step_gradient_norms(&p, x, target),
            )
        })
        .collect()
}

/// "pachycephalosaurus" repeated to 40 characters when the model knows its letters, else
/// the first 40 characters of the training text.
fn default_gradient_text(st: &TrainState, origin: &str) -> Result<String> {
    const NAME: &str = "pachycephalosaurus";
    const LEN: usize = 40;
    if st.config.mode == CorpusMode::Lines && st.vocab.encode(NAME).is_ok() {
        return Ok(NAME.chars().cycle().take(LEN).collect());
    }
    let corpus = DataSource::from_origin(origin)?
        .load(st.config.mode, st.config.lowercase)
        .context("no --text given, and the training text (for a default) cannot be read")?;
    Ok(corpus
        .text()
        .chars()
        .filter(|&c| st.config.mode == CorpusMode::Stream || c != '\n')
        .take(LEN)
        .collect())
}
