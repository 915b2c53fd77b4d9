//! `charrnn plot`: pictures of a run (the loss curve) and of a model (hidden activations,
//! next-character probabilities, gradient norms through time).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use ndarray::{Array2, ShapeBuilder};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rnn_data::{CorpusMode, TokenId};
use rnn_engine::{Dtype, Float, Params, TrainState};
use rnn_plot::{Format, GradientCurve, HeatScale, Plot};

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
    /// Hidden activations a<t> (n_a x T) while the model reads a text.
    Hidden {
        #[command(flatten)]
        model: ModelText,
        #[command(flatten)]
        output: Output,
    },
    /// Next-character probabilities ŷ<t> (vocabulary x T) while the model reads a text.
    Probs {
        #[command(flatten)]
        model: ModelText,
        #[command(flatten)]
        output: Output,
    },
    /// ||dL<T>/da<t>|| against t: how far back the last prediction's gradient reaches, for
    /// the trained W_aa and for random W_aa of chosen spectral radii.
    Gradients {
        /// A checkpoint.json, or a run directory holding one.
        #[arg(long, value_name = "PATH")]
        checkpoint: PathBuf,
        /// The text to read [default: "pachycephalosaurus" repeated to 40 characters for
        /// names models, else the first 40 characters of the training text].
        #[arg(long, value_name = "STR")]
        text: Option<String>,
        /// Spectral radii of the random W_aa to compare with the trained one.
        #[arg(long, value_delimiter = ',', default_value = "0.5,1.0,1.5")]
        radius: Vec<f64>,
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
        Kind::Gradients {
            checkpoint,
            text,
            radius,
            seed,
            output,
        } => {
            for &r in &radius {
                if !(r.is_finite() && r > 0.0) {
                    bail!("invalid radius = {r}: expected a finite number > 0");
                }
            }
            output.format()?;
            let loaded = checkpoint::load(&checkpoint)?;
            let st = &loaded.checkpoint.state;
            let text = match text {
                Some(t) => t,
                None => default_gradient_text(st, &loaded.checkpoint.data_origin)?,
            };
            let ids = encode(st, &text)?;
            let Some(params) = st.model.vanilla() else {
                bail!(
                    "plot gradients compares W_aa with random matrices of chosen radii: it \
                     reads the post's model (one vanilla layer), and {} holds {} layer(s) of {}",
                    loaded.path.display(),
                    st.model.n_layers(),
                    st.model.cell().name()
                );
            };
            let curves = match loaded.checkpoint.dtype {
                Dtype::F32 => gradient_curves(&params.cast::<f32>(), st, &ids, &radius, seed)?,
                Dtype::F64 => gradient_curves(params, st, &ids, &radius, seed)?,
            };
            let short: String = if text.chars().count() > 20 {
                text.chars().take(19).chain(std::iter::once('…')).collect()
            } else {
                text.clone()
            };
            let title = format!("Last step's gradient through time, reading {short:?}");
            let plot = rnn_plot::gradient_norms(&curves, &title)?;
            let inputs = output.policy().input("--checkpoint", &loaded.path);
            output.save(&plot, &loaded.dir(), "gradients", inputs)
        }
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
    let col_labels: Vec<String> = x
        .iter()
        .map(|id| match id.and_then(|i| st.vocab.char(i)) {
            Some(c) => rnn_plot::char_label(c),
            None => "∅".to_string(),
        })
        .collect();
    let (kind, plot) = match matrix {
        Matrix::Hidden => (
            "hidden",
            rnn_plot::heatmap(
                values.view(),
                &[],
                &col_labels,
                &format!("Hidden state a<t> reading {:?}", model.text),
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

/// One forward pass (m = 1, zero a<0>): a<1..T> (n_a, T) or ŷ<1..T> (n_y, T), in f64.
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

fn gradient_curves<F: Float>(
    params: &Params<F>,
    st: &TrainState,
    ids: &[TokenId],
    radii: &[f64],
    seed: u64,
) -> Result<Vec<GradientCurve>> {
    // The last character is the target; the ones before it (after "no input" for names)
    // are the inputs.
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
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut curves: Vec<GradientCurve> = radii
        .iter()
        .map(|&r| {
            let p = rnn::analysis::with_recurrent_radius(params, r, &mut rng);
            GradientCurve::new(
                format!("ρ(W_aa) = {r}"),
                rnn::analysis::last_step_gradient_norms(&p, &x, target),
            )
        })
        .collect();
    curves.push(GradientCurve::new(
        "trained W_aa",
        rnn::analysis::last_step_gradient_norms(params, &x, target),
    ));
    Ok(curves)
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
