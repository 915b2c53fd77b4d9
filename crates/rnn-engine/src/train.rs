//! Training: the loop around forward, backward, clipping and the update, in the two modes
//! of the classic recipes (one name per example, or a continuous stream cut into chunks).

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ndarray::{Array2, ShapeBuilder};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rnn_data::{
    Batch, BatchError, Corpus, CorpusError, CorpusMode, EncodeError, Example, StreamBatches,
    TokenId, Vocab,
};
use serde::{Deserialize, Serialize};

use crate::deep::{DeepBuffers, deep_update_step};
use crate::guard::StepReport;
use crate::model::{DeepModel, Model};
use crate::step::{StepBuffers, update_step};
use crate::{Clip, Float, Loss, Optimizer, OptimizerConfig, Params, SampleConfig};
use rnn::{CellKind, DeepOptimizer, DeepParams, DeepShape, DropoutMasks, Schedule, State};

/// The element type training runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// Single precision: the fast path.
    F32,
    /// Double precision: the reference.
    F64,
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
        })
    }
}

impl FromStr for Dtype {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Dtype::F32),
            "f64" => Ok(Dtype::F64),
            other => Err(format!("unknown dtype {other:?} (expected f32 or f64)")),
        }
    }
}

/// Everything that defines a training run. Start from a preset
/// ([`TrainConfig::dinosaurs`], [`TrainConfig::text`]) and change fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// One example per line (names) or a continuous stream.
    pub mode: CorpusMode,
    /// Lowercase the text when loading it.
    pub lowercase: bool,
    /// Hidden size n_a (of every layer).
    pub hidden: usize,
    /// The recurrent cell: the post's vanilla tanh cell, a GRU or an LSTM.
    #[serde(default = "default_cell")]
    pub cell: CellKind,
    /// Stacked recurrent layers, each reading the hidden sequence of the one below.
    #[serde(default = "default_layers")]
    pub layers: usize,
    /// Dropout probability between layers (never after the last), 0 for none.
    #[serde(default)]
    pub dropout: f64,
    /// Lines mode, the post's model: start every name from a zero state, as the stacks
    /// always do and as evaluation and sampling do (the post's recipe carries the state
    /// from one name to the next).
    #[serde(default)]
    pub reset_state: bool,
    /// Number of updates.
    pub steps: u64,
    /// Optimizer and learning rate.
    pub optimizer: OptimizerConfig,
    /// How the learning rate moves over the run (constant in the classic recipes).
    #[serde(default)]
    pub schedule: Schedule,
    /// Gradient clipping.
    pub clip: Clip,
    /// Examples (lines mode) or parallel streams (stream mode) per update, m.
    pub batch: usize,
    /// Stream mode: characters per chunk for truncated BPTT, T.
    pub seq_len: usize,
    /// Seed for initialisation, shuffling and sampling.
    pub seed: u64,
    /// Element type.
    pub dtype: Dtype,
    /// Fraction of the data held out for validation (0 for none).
    pub val_fraction: f64,
    /// Steps per history row (losses and norms are averaged over them).
    pub log_every: u64,
    /// Steps between validation passes (0 for never).
    pub eval_every: u64,
    /// Steps between samples (0 for never).
    pub sample_every: u64,
    /// How many samples to draw each time.
    pub n_samples: usize,
    /// Maximum length of a sample.
    pub sample_max_len: usize,
}

fn default_cell() -> CellKind {
    CellKind::Rnn
}

fn default_layers() -> usize {
    1
}

/// The most stacked layers a configuration accepts (char-rnn and PyTorch's examples use 2
/// or 3).
pub const MAX_LAYERS: usize = 8;

impl TrainConfig {
    /// Whether this is the post's model, one vanilla layer, which trains on the fused
    /// vanilla paths of the engine; any other cell or depth trains on [`crate::deep`].
    pub fn is_vanilla(&self) -> bool {
        self.cell == CellKind::Rnn && self.layers == 1
    }

    /// The classic dinosaur-name recipe: one name per step, n_a = 50, SGD with lr 0.01,
    /// element-wise clipping at 5, f64, hidden state carried from name to name.
    pub fn dinosaurs() -> Self {
        TrainConfig {
            mode: CorpusMode::Lines,
            lowercase: true,
            hidden: 50,
            cell: CellKind::Rnn,
            layers: 1,
            dropout: 0.0,
            reset_state: false,
            steps: 35_000,
            optimizer: OptimizerConfig::sgd(0.01),
            schedule: Schedule::CONSTANT,
            clip: Clip::Value(5.0),
            batch: 1,
            seq_len: 0,
            seed: 0,
            dtype: Dtype::F64,
            val_fraction: 0.05,
            log_every: 10,
            eval_every: 1000,
            sample_every: 5000,
            n_samples: 7,
            sample_max_len: 50,
        }
    }

    /// Continuous text in the manner of min-char-rnn, batched: 32 parallel streams, chunks
    /// of 64 characters, n_a = 256, Adam with lr 0.002, clipping by norm at 5, f32.
    pub fn text() -> Self {
        TrainConfig {
            mode: CorpusMode::Stream,
            lowercase: false,
            hidden: 256,
            cell: CellKind::Rnn,
            layers: 1,
            dropout: 0.0,
            reset_state: false,
            steps: 2_000,
            optimizer: OptimizerConfig::adam(0.002),
            schedule: Schedule::CONSTANT,
            clip: Clip::Norm(5.0),
            batch: 32,
            seq_len: 64,
            seed: 0,
            dtype: Dtype::F32,
            val_fraction: 0.05,
            log_every: 10,
            eval_every: 200,
            sample_every: 500,
            n_samples: 2,
            sample_max_len: 200,
        }
    }

    /// makemore's names (train on `names-train.txt`, report `names-test.txt`): one name per
    /// example from a zero state, 32 names per update, Adam with a 100-step warm-up and a
    /// cosine decay to a tenth, norm clipping at 5, f32, 5% of the training names held out
    /// to pick the best checkpoint. The gated cells' recipe was fixed before measuring; the
    /// vanilla cell's (n_a 256, lr 0.001, 24,000 steps, `reset_state`) came from the sweep
    /// in `book/src/12-quality.md`, whose table has the measured results.
    pub fn names(cell: CellKind) -> Self {
        let (hidden, lr, steps) = match cell {
            CellKind::Rnn => (256, 0.001, 24_000),
            CellKind::Gru => (512, 0.002, 8_000),
            CellKind::Lstm => (512, 0.002, 8_000),
        };
        TrainConfig {
            mode: CorpusMode::Lines,
            lowercase: false,
            hidden,
            cell,
            layers: 1,
            dropout: 0.0,
            reset_state: true,
            steps,
            optimizer: OptimizerConfig::adam(lr),
            schedule: Schedule::cosine(100, 0.1),
            clip: Clip::Norm(5.0),
            batch: 32,
            seq_len: 0,
            seed: 0,
            dtype: Dtype::F32,
            val_fraction: 0.05,
            log_every: 10,
            eval_every: 500,
            sample_every: 2_000,
            n_samples: 5,
            sample_max_len: 50,
        }
    }

    /// Tiny Shakespeare as nanoGPT's `shakespeare_char` splits it (the last 10% held out):
    /// 32 streams of 64 characters, n_a 512, Adam 0.002 with a 200-step warm-up and a
    /// cosine decay to a tenth, norm clipping at 5, f32. The gated cells stack two layers
    /// with dropout 0.4 between them (at 0.25 a 2 x 512 LSTM passed its best validation
    /// loss after 3,000 steps, about six epochs); the vanilla cell keeps one layer at a
    /// lower rate.
    /// Results in the table of `book/src/12-quality.md`.
    pub fn shakespeare(cell: CellKind) -> Self {
        let (layers, dropout, lr, steps) = match cell {
            CellKind::Rnn => (1, 0.0, 0.001, 13_000),
            CellKind::Gru => (2, 0.4, 0.002, 5_000),
            CellKind::Lstm => (2, 0.4, 0.002, 7_000),
        };
        TrainConfig {
            mode: CorpusMode::Stream,
            lowercase: false,
            hidden: 512,
            cell,
            layers,
            dropout,
            reset_state: false,
            steps,
            optimizer: OptimizerConfig::adam(lr),
            schedule: Schedule::cosine(200, 0.1),
            clip: Clip::Norm(5.0),
            batch: 32,
            seq_len: 64,
            seed: 0,
            dtype: Dtype::F32,
            val_fraction: 0.1,
            log_every: 10,
            eval_every: 500,
            sample_every: 2_000,
            n_samples: 1,
            sample_max_len: 300,
        }
    }

    /// Karpathy's min-char-rnn: one stream, chunks of 25, n_a = 100, Adagrad with lr 0.1,
    /// element-wise clipping at 5.
    pub fn min_char_rnn() -> Self {
        TrainConfig {
            hidden: 100,
            optimizer: OptimizerConfig::adagrad(0.1),
            clip: Clip::Value(5.0),
            batch: 1,
            seq_len: 25,
            dtype: Dtype::F64,
            steps: 10_000,
            ..Self::text()
        }
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, value: String, expected: &'static str| {
            Err(ConfigError {
                field,
                value,
                expected,
            })
        };
        if !(1..=MAX_HIDDEN).contains(&self.hidden) {
            return bad("hidden", self.hidden.to_string(), "between 1 and 8192");
        }
        if !(1..=MAX_LAYERS).contains(&self.layers) {
            return bad("layers", self.layers.to_string(), "between 1 and 8");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(
                "dropout",
                self.dropout.to_string(),
                "at least 0 and below 1",
            );
        }
        if self.dropout > 0.0 && self.layers == 1 {
            return bad(
                "dropout",
                self.dropout.to_string(),
                "0 with one layer (dropout acts between layers: add --layers 2 or more)",
            );
        }
        if self.reset_state && self.mode == CorpusMode::Stream {
            return bad(
                "reset_state",
                "true".to_string(),
                "false in stream mode (it starts each name from zero; streams carry the \
                 state from chunk to chunk)",
            );
        }
        let lr = self.optimizer.lr();
        if !(lr.is_finite() && lr > 0.0) {
            return bad("lr", lr.to_string(), "a finite number > 0");
        }
        if !(1..=MAX_BATCH).contains(&self.batch) {
            return bad("batch", self.batch.to_string(), "between 1 and 65536");
        }
        if self.mode == CorpusMode::Stream && !(1..=MAX_SEQ_LEN).contains(&self.seq_len) {
            return bad("seq_len", self.seq_len.to_string(), "between 1 and 65536");
        }
        // The activations of one update (a⟨t⟩ for every step and column) are allocated up
        // front: bound their number so that a large batch times a long chunk is an error,
        // not an abort.
        let steps = match self.mode {
            CorpusMode::Stream => self.seq_len,
            CorpusMode::Lines => 1,
        };
        let cells = self.hidden as u128
            * self.batch as u128
            * steps as u128
            * (self.layers * self.cell.n_gates()) as u128;
        if cells > MAX_ACTIVATIONS as u128 {
            return bad(
                "batch x seq_len x hidden x layers x gates",
                cells.to_string(),
                "at most 268435456 (the activations one update keeps)",
            );
        }
        let wd = self.optimizer.weight_decay();
        if !(wd.is_finite() && (0.0..1.0).contains(&(wd * lr))) {
            return bad(
                "weight_decay",
                wd.to_string(),
                "at least 0, with lr x weight_decay below 1",
            );
        }
        if let Err((field, value, expected)) = self.schedule.check() {
            return bad(field, value, expected);
        }
        match self.clip {
            Clip::Value(c) | Clip::Norm(c) if !(c.is_finite() && c > 0.0) => {
                return bad("clip", c.to_string(), "a finite number > 0");
            }
            _ => {}
        }
        if !(0.0..=0.5).contains(&self.val_fraction) {
            return bad(
                "val_fraction",
                self.val_fraction.to_string(),
                "between 0 and 0.5",
            );
        }
        if self.log_every == 0 {
            return bad("log_every", "0".into(), "at least 1");
        }
        Ok(())
    }
}

/// The largest hidden size a configuration accepts: W_aa alone is n_a² numbers, so a typo
/// such as `--hidden 1000000` must be an error, not an attempt to allocate 8 TB.
pub const MAX_HIDDEN: usize = 8192;

/// The largest |θ| a run may reach before it counts as diverged: trained character models
/// stay within a few tens.
pub const MAX_PARAM: f64 = 1e6;

/// The most activations (hidden size × batch × chunk length) one update may keep.
pub const MAX_ACTIVATIONS: usize = 1 << 28;

/// The largest batch (examples or streams per update) a configuration accepts.
pub const MAX_BATCH: usize = 1 << 16;

/// The longest chunk for truncated BPTT a configuration accepts.
pub const MAX_SEQ_LEN: usize = 1 << 16;

/// A configuration value out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid {field} = {value}: expected {expected}")]
pub struct ConfigError {
    /// The field (as named by the command-line flag).
    pub field: &'static str,
    /// The value given.
    pub value: String,
    /// What is allowed.
    pub expected: &'static str,
}

/// Why training could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A configuration value is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The corpus could not be split or loaded.
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    /// The text has a character the model's vocabulary lacks.
    #[error("{origin}: {source}")]
    Encode {
        /// Which text.
        origin: String,
        /// The character and position.
        source: EncodeError,
    },
    /// Too little text for the requested batch shape.
    #[error("{origin}: {source}")]
    Batch {
        /// Which text.
        origin: String,
        /// The numbers involved.
        source: BatchError,
    },
    /// The corpus mode differs from the configuration's.
    #[error("corpus {origin} is in {found} mode but the configuration says {expected}")]
    ModeMismatch {
        /// Which text.
        origin: String,
        /// The corpus mode.
        found: CorpusMode,
        /// The configured mode.
        expected: CorpusMode,
    },
    /// A non-finite loss, gradient or parameter: training stopped and the parameters are
    /// those of the last good step.
    #[error(
        "training diverged at step {step}: loss {loss}, gradient norm {grad_norm}; parameters kept from step {}",
        step - 1
    )]
    Diverged {
        /// The step that failed (1-based).
        step: u64,
        /// Its loss.
        loss: f64,
        /// Its gradient norm before clipping.
        grad_norm: f64,
    },
    /// The loss or the parameters blew up while staying finite: the loss far above a
    /// uniform guess's, at once or for a sustained stretch, or a parameter past
    /// [`MAX_PARAM`]. The parameters in the trainer are not good; keep the last checkpoint.
    #[error("training diverged at step {step}: {reason}")]
    Exploded {
        /// The step at which it was noticed (1-based).
        step: u64,
        /// What was seen, with the numbers.
        reason: String,
    },
}

/// One row of the training history (`history.csv`).
///
/// Losses are per example, as in the classic recipes: the summed loss of one name in
/// lines mode, of one chunk of T characters in stream mode, averaged over the batch and
/// over the `log_every` steps of the row. The validation loss is in the same unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryRow {
    /// Step at the end of the row's interval.
    pub step: u64,
    /// Mean training loss per example over the interval.
    pub loss: f64,
    /// Exponentially smoothed loss (0.999 / 0.001 per step) at `step`.
    pub smoothed_loss: f64,
    /// Validation loss per example, when a validation pass ran at `step`.
    pub val_loss: Option<f64>,
    /// Mean global gradient norm before clipping over the interval.
    pub grad_norm: f64,
    /// Training characters per second over the interval.
    pub chars_per_s: f64,
}

/// A validation pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Step at which it ran.
    pub step: u64,
    /// Summed loss and number of predicted characters.
    pub loss: Loss,
    /// Loss per example, in the unit of [`HistoryRow::loss`].
    pub per_example: f64,
}

/// What the training loop reports to its observer.
#[derive(Debug)]
pub enum Event<'a> {
    /// After every step: the step number, the loss per example and the smoothed loss.
    Step {
        /// Step just completed (1-based).
        step: u64,
        /// Loss per example at this step.
        loss: f64,
        /// Smoothed loss.
        smoothed_loss: f64,
        /// Characters trained on at this step.
        chars: u64,
    },
    /// Every `log_every` steps, a new history row.
    Log(&'a HistoryRow),
    /// Every `eval_every` steps, a validation pass.
    Validation(&'a Evaluation),
    /// Every `sample_every` steps, freshly sampled text.
    Samples {
        /// Step at which they were drawn.
        step: u64,
        /// The samples.
        samples: &'a [String],
    },
}

/// The examples for each mode.
#[derive(Debug, Clone)]
enum Data {
    Lines {
        train: Vec<Example>,
        val: Vec<Example>,
        /// Order of the current epoch and its number.
        order: Vec<usize>,
        epoch: u64,
    },
    Stream {
        train: StreamBatches,
        val: Vec<TokenId>,
    },
}

/// The complete state of a run: what a checkpoint stores, apart from the data.
///
/// Serialized through [`StateWire`], which keeps the vanilla model's fields (`params`,
/// `optimizer`, `hidden`) where checkpoints before the gated cells had them, so those still
/// load, and puts any other model under `deep`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "F: Float", try_from = "StateWire<F>", into = "StateWire<F>")]
pub struct TrainState<F: Float = f64> {
    /// The configuration.
    pub config: TrainConfig,
    /// The model's vocabulary.
    pub vocab: Vocab,
    /// Steps completed.
    pub step: u64,
    /// The parameters, the optimizer's accumulators and the carried state.
    pub model: Model<F>,
    /// The generator used for samples during training.
    pub sample_rng: ChaCha8Rng,
    /// The smoothed loss.
    pub smoothed_loss: f64,
    /// A bounded summary of the history. The history itself goes to the caller through
    /// [`Event::Log`] (the CLI appends it to `history.csv`), so that a checkpoint's size
    /// does not grow with the number of steps.
    pub summary: Summary,
}

/// The stored form of a [`TrainState`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "F: Float")]
pub struct StateWire<F: Float> {
    config: TrainConfig,
    vocab: Vocab,
    step: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    params: Option<Params<F>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    optimizer: Option<Optimizer<F>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deep: Option<Box<DeepModel<F>>>,
    sample_rng: ChaCha8Rng,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hidden: Option<Array2<F>>,
    smoothed_loss: f64,
    #[serde(default)]
    summary: Summary,
}

impl<F: Float> TryFrom<StateWire<F>> for TrainState<F> {
    type Error = String;
    fn try_from(w: StateWire<F>) -> Result<Self, String> {
        let model = match (w.params, w.optimizer, w.hidden, w.deep) {
            (Some(params), Some(optimizer), Some(hidden), None) => Model::Vanilla {
                params,
                optimizer,
                hidden,
            },
            (None, None, None, Some(deep)) => Model::Deep(deep),
            _ => {
                return Err(
                    "a state holds either `params`, `optimizer` and `hidden` (one \
                            vanilla layer) or `deep` (any other model)"
                        .into(),
                );
            }
        };
        Ok(TrainState {
            config: w.config,
            vocab: w.vocab,
            step: w.step,
            model,
            sample_rng: w.sample_rng,
            smoothed_loss: w.smoothed_loss,
            summary: w.summary,
        })
    }
}

impl<F: Float> From<TrainState<F>> for StateWire<F> {
    fn from(s: TrainState<F>) -> Self {
        let (params, optimizer, hidden, deep) = match s.model {
            Model::Vanilla {
                params,
                optimizer,
                hidden,
            } => (Some(params), Some(optimizer), Some(hidden), None),
            Model::Deep(deep) => (None, None, None, Some(deep)),
        };
        StateWire {
            config: s.config,
            vocab: s.vocab,
            step: s.step,
            params,
            optimizer,
            deep,
            sample_rng: s.sample_rng,
            hidden,
            smoothed_loss: s.smoothed_loss,
            summary: s.summary,
        }
    }
}

/// What a checkpoint keeps of the history: no wall-clock figures, so that two identical
/// runs save identical checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// History rows written so far.
    pub rows: u64,
    /// The last row's mean training loss per example.
    pub last_loss: Option<f64>,
    /// The best validation loss so far, in nats per character, and its step (checkpoints
    /// from before it was kept per character hold the loss per example, which the next
    /// validation replaces).
    pub best_val: Option<(u64, f64)>,
}

impl Summary {
    fn record(&mut self, row: &HistoryRow) {
        self.rows += 1;
        self.last_loss = Some(row.loss);
    }

    fn record_validation(&mut self, step: u64, loss: f64) {
        if self.best_val.is_none_or(|(_, best)| loss < best) {
            self.best_val = Some((step, loss));
        }
    }
}

impl<F: Float> TrainState<F> {
    /// The same state in another float type (exact from f32 to f64 and back).
    pub fn cast<G: Float>(&self) -> TrainState<G> {
        TrainState {
            config: self.config.clone(),
            vocab: self.vocab.clone(),
            step: self.step,
            model: self.model.cast(),
            sample_rng: self.sample_rng.clone(),
            smoothed_loss: self.smoothed_loss,
            summary: self.summary.clone(),
        }
    }
}

/// A training run in progress.
#[derive(Debug)]
pub struct Trainer<F: Float = f64> {
    state: TrainState<F>,
    data: Data,
    buffers: Buffers<F>,
    interval: Interval,
    /// The history rows of this trainer's steps (not of steps before a resume).
    history: Vec<HistoryRow>,
    /// Consecutive steps whose loss was above [`Trainer::HIGH_LOSS`] uniform guesses.
    high_loss_steps: u64,
}

/// Mixed into the run's seed for the generator of the dropout masks (separate from
/// initialisation, shuffling and samples).
pub(crate) const DROPOUT_SEED_SALT: u64 = 0x0044_524F_504F_5554;

/// The buffers of a step, sized once.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per trainer, made once: its size does not matter"
)]
enum Buffers<F: Float> {
    Vanilla(StepBuffers<F>),
    Deep(Box<DeepBuffers<F>>),
}

impl<F: Float> Buffers<F> {
    /// Puts the parameters the fused vanilla step keeps in its own copy back in place.
    fn sync(&mut self, model: &mut Model<F>) {
        if let (Buffers::Vanilla(b), Model::Vanilla { params, .. }) = (self, model) {
            b.sync(params);
        }
    }
}

/// Accumulators for the current history row.
#[derive(Debug, Default, Clone)]
struct Interval {
    steps: u64,
    loss: f64,
    grad_norm: f64,
    chars: u64,
    started: Option<Instant>,
}

impl<F: Float> Trainer<F> {
    /// A new run on `corpus` (its vocabulary becomes the model's), with parameters drawn
    /// from the configured seed.
    pub fn new(config: TrainConfig, corpus: &Corpus) -> Result<Self, TrainError> {
        config.validate()?;
        let vocab = corpus.vocab();
        let v = vocab.len();
        let mut init_rng = ChaCha8Rng::seed_from_u64(config.seed);
        let model = if config.is_vanilla() {
            let params = Params::init(v, config.hidden, v, &mut init_rng);
            Model::Vanilla {
                optimizer: Optimizer::new(config.optimizer, &params),
                hidden: Array2::zeros((config.hidden, config.batch).f()),
                params,
            }
        } else {
            let shape = DeepShape {
                cell: config.cell,
                n_x: v,
                n_a: config.hidden,
                n_y: v,
                n_layers: config.layers,
            };
            let params = DeepParams::init(shape, &mut init_rng);
            Model::Deep(Box::new(DeepModel {
                optimizer: DeepOptimizer::new(config.optimizer, &params),
                state: State::zeros(shape, config.batch),
                params,
                dropout_rng: ChaCha8Rng::seed_from_u64(config.seed ^ DROPOUT_SEED_SALT),
            }))
        };
        // The sampling generator is separate from initialisation and shuffling, so that
        // drawing samples never changes what the model learns.
        let sample_rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x5A4D_504C_4552);
        let smoothed_loss = initial_smoothed_loss(&config, v);
        let state = TrainState {
            config,
            vocab,
            step: 0,
            model,
            sample_rng,
            smoothed_loss,
            summary: Summary::default(),
        };
        Self::from_state(state, corpus)
    }

    /// Continues a run from a saved state, on the same corpus (which must be encodable
    /// with the state's vocabulary).
    pub fn from_state(state: TrainState<F>, corpus: &Corpus) -> Result<Self, TrainError> {
        let config = &state.config;
        config.validate()?;
        if corpus.mode() != config.mode {
            return Err(TrainError::ModeMismatch {
                origin: corpus.origin().to_string(),
                found: corpus.mode(),
                expected: config.mode,
            });
        }
        let data = build_data(config, corpus, &state.vocab)?;
        let buffers = match &state.model {
            Model::Vanilla { params, .. } => Buffers::Vanilla(StepBuffers::new(params)),
            Model::Deep(d) => {
                let t = match &data {
                    Data::Lines { train, .. } => train.iter().map(Example::len).max(),
                    Data::Stream { .. } => Some(config.seq_len),
                };
                Buffers::Deep(Box::new(DeepBuffers::new(
                    d.params.shape(),
                    config.batch,
                    t.unwrap_or(1),
                )))
            }
        };
        Ok(Trainer {
            buffers,
            interval: Interval::default(),
            history: Vec::new(),
            high_loss_steps: 0,
            data,
            state,
        })
    }

    /// The run's state (for checkpoints).
    pub fn state(&self) -> &TrainState<F> {
        &self.state
    }

    /// Consumes the trainer, returning its state.
    pub fn into_state(self) -> TrainState<F> {
        self.state
    }

    /// The current parameters of the post's model (one vanilla layer).
    ///
    /// # Panics
    ///
    /// When the run trains another cell or more layers; see [`Trainer::model`].
    pub fn params(&self) -> &Params<F> {
        self.state
            .model
            .vanilla()
            .expect("Trainer::params is for one vanilla layer; use Trainer::model")
    }

    /// The model being trained.
    pub fn model(&self) -> &Model<F> {
        &self.state.model
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        &self.state.vocab
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.state.config
    }

    /// Steps completed.
    pub fn step(&self) -> u64 {
        self.state.step
    }

    /// The history rows of the steps this trainer ran (a resumed run's earlier rows are in
    /// its `history.csv`), less those taken by [`Trainer::take_history`].
    pub fn history(&self) -> &[HistoryRow] {
        &self.history
    }

    /// Takes the history rows so far, leaving none: a caller that writes them out (as the
    /// CLI does, to `history.csv`) keeps the trainer's memory bounded however long it runs.
    pub fn take_history(&mut self) -> Vec<HistoryRow> {
        std::mem::take(&mut self.history)
    }

    /// Runs up to `n_steps` more steps (stopping at `config.steps`), reporting to
    /// `observer`. On divergence returns [`TrainError::Diverged`] with the parameters of
    /// the last good step in place.
    pub fn run(
        &mut self,
        n_steps: u64,
        observer: &mut dyn FnMut(&Event<'_>),
    ) -> Result<(), TrainError> {
        self.run_until(n_steps, observer, &AtomicBool::new(false))
    }

    /// As [`Trainer::run`], but stops after the current step as soon as `stop` is set (by
    /// a signal handler, say), leaving a state that is safe to checkpoint.
    pub fn run_until(
        &mut self,
        n_steps: u64,
        observer: &mut dyn FnMut(&Event<'_>),
        stop: &AtomicBool,
    ) -> Result<(), TrainError> {
        let end = (self.state.step + n_steps).min(self.state.config.steps);
        let mut result = Ok(());
        while self.state.step < end && result.is_ok() && !stop.load(Ordering::Relaxed) {
            result = self.train_step(observer);
        }
        self.buffers.sync(&mut self.state.model);
        result?;
        // The parameters are in place only now (the fused step keeps its own copy).
        let max_abs = self.state.model.max_abs();
        if max_abs > MAX_PARAM {
            return Err(TrainError::Exploded {
                step: self.state.step,
                reason: format!("a parameter reached {max_abs:e}, past the bound {MAX_PARAM:e}"),
            });
        }
        Ok(())
    }

    /// A loss per character this many times a uniform guess's (ln V) stops training at once.
    const EXPLODED_LOSS: f64 = 25.0;
    /// A loss per character above this many uniform guesses for [`Trainer::HIGH_LOSS_STEPS`]
    /// steps in a row stops training.
    const HIGH_LOSS: f64 = 4.0;
    /// See [`Trainer::HIGH_LOSS`].
    const HIGH_LOSS_STEPS: u64 = 50;

    /// Whether a finite loss per character says the run has blown up.
    fn check_loss(&mut self, step: u64, loss: &Loss) -> Result<(), TrainError> {
        let uniform = (self.state.vocab.len().max(2) as f64).ln();
        let ratio = loss.per_char() / uniform;
        self.high_loss_steps = if ratio > Self::HIGH_LOSS {
            self.high_loss_steps + 1
        } else {
            0
        };
        let reason = if ratio > Self::EXPLODED_LOSS {
            format!(
                "loss {:.4e} nats/char, {ratio:.3e} times a uniform guess's {uniform:.3}",
                loss.per_char()
            )
        } else if self.high_loss_steps >= Self::HIGH_LOSS_STEPS {
            format!(
                "loss above {} times a uniform guess's {uniform:.3} nats/char for {} steps                  (now {:.3})",
                Self::HIGH_LOSS,
                self.high_loss_steps,
                loss.per_char()
            )
        } else {
            return Ok(());
        };
        Err(TrainError::Exploded { step, reason })
    }

    /// Runs to `config.steps`.
    pub fn run_to_end(&mut self, observer: &mut dyn FnMut(&Event<'_>)) -> Result<(), TrainError> {
        self.run(u64::MAX - self.state.step, observer)
    }

    fn train_step(&mut self, observer: &mut dyn FnMut(&Event<'_>)) -> Result<(), TrainError> {
        let step = self.state.step + 1;
        let m = self.state.config.batch;
        let batch = self.next_batch();
        let (x, y) = (batch.inputs.view(), batch.targets.view());
        let st = &mut self.state;
        self.interval.started.get_or_insert_with(Instant::now);
        if !st.config.schedule.is_constant() {
            let lr = st.config.optimizer.lr() * st.config.schedule.factor(step, st.config.steps);
            let scheduled = st.config.optimizer.with_lr(lr);
            match &mut st.model {
                Model::Vanilla { optimizer, .. } => optimizer.config = scheduled,
                Model::Deep(d) => d.optimizer.config = scheduled,
            }
        }

        // (validate allows reset_state in lines mode only)
        if st.config.reset_state
            && let Model::Vanilla { hidden, .. } = &mut st.model
        {
            hidden.fill(F::zero());
        }
        // Forward, backward, clip and update from the carried hidden state.
        let report = match (&mut st.model, &mut self.buffers) {
            (
                Model::Vanilla {
                    params,
                    optimizer,
                    hidden,
                },
                Buffers::Vanilla(buffers),
            ) => update_step(
                params,
                optimizer,
                st.config.clip,
                x,
                y,
                hidden.view(),
                buffers,
            ),
            (Model::Deep(d), Buffers::Deep(buffers)) => {
                let DeepModel {
                    params,
                    optimizer,
                    state,
                    dropout_rng,
                } = &mut **d;
                if st.config.mode == CorpusMode::Lines {
                    // Names start from a zero state (the vanilla recipe's carry from name to
                    // name is the post's; the stacks follow PyTorch and makemore).
                    *state = State::zeros(params.shape(), batch.batch_size());
                }
                let masks = (st.config.dropout > 0.0).then(|| {
                    DropoutMasks::draw(
                        st.config.dropout,
                        params.shape(),
                        batch.inputs.nrows(),
                        batch.batch_size(),
                        dropout_rng,
                    )
                });
                deep_update_step(
                    params,
                    optimizer,
                    st.config.clip,
                    x,
                    y,
                    state,
                    masks.as_ref(),
                    buffers,
                )
            }
            _ => unreachable!("the buffers are made for the model"),
        };
        let (Ok(StepReport { loss, grad_norm }) | Err(StepReport { loss, grad_norm })) = report;
        let per_example = loss.total / m as f64;
        if report.is_err() {
            return Err(TrainError::Diverged {
                step,
                loss: per_example,
                grad_norm,
            });
        }
        self.check_loss(step, &loss)?;
        let st = &mut self.state;
        if let (Model::Vanilla { hidden, .. }, Buffers::Vanilla(buffers)) =
            (&mut st.model, &self.buffers)
        {
            carry_hidden(buffers, &batch, hidden);
        }
        st.smoothed_loss = 0.999 * st.smoothed_loss + 0.001 * per_example;
        st.step = step;

        let chars = loss.n_targets as u64;
        observer(&Event::Step {
            step,
            loss: per_example,
            smoothed_loss: st.smoothed_loss,
            chars,
        });
        let iv = &mut self.interval;
        iv.steps += 1;
        iv.loss += per_example;
        iv.grad_norm += grad_norm;
        iv.chars += chars;
        let at_end = step == st.config.steps;
        let validate =
            st.config.eval_every > 0 && (step.is_multiple_of(st.config.eval_every) || at_end);
        if validate {
            // The validation pass reads the parameters (`sample_texts` syncs itself).
            self.buffers.sync(&mut self.state.model);
        }
        let evaluation = if validate { self.validate(step) } else { None };
        if let Some(e) = &evaluation {
            self.state
                .summary
                .record_validation(step, e.loss.per_char());
            observer(&Event::Validation(e));
        }
        if step.is_multiple_of(self.state.config.log_every) || at_end {
            let row = self.close_interval(step, evaluation.map(|e| e.per_example));
            observer(&Event::Log(&row));
            self.state.summary.record(&row);
            self.history.push(row);
        }
        let cfg = &self.state.config;
        if cfg.sample_every > 0 && step.is_multiple_of(cfg.sample_every) && cfg.n_samples > 0 {
            let samples = self.sample_texts();
            observer(&Event::Samples {
                step,
                samples: &samples,
            });
        }
        Ok(())
    }

    fn close_interval(&mut self, step: u64, val_loss: Option<f64>) -> HistoryRow {
        let iv = std::mem::take(&mut self.interval);
        let n = iv.steps.max(1) as f64;
        let secs = iv.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
        HistoryRow {
            step,
            loss: iv.loss / n,
            smoothed_loss: self.state.smoothed_loss,
            val_loss,
            grad_norm: iv.grad_norm / n,
            chars_per_s: if secs > 0.0 {
                iv.chars as f64 / secs
            } else {
                0.0
            },
        }
    }

    /// The batch for the next step (the step number decides it, so a resumed run sees the
    /// same data).
    fn next_batch(&mut self) -> Batch {
        let step = self.state.step;
        let cfg = &self.state.config;
        match &mut self.data {
            Data::Lines {
                train,
                order,
                epoch,
                ..
            } => {
                let n = train.len() as u64;
                let m = cfg.batch as u64;
                let examples: Vec<Example> = (0..m)
                    .map(|j| {
                        let g = step * m + j;
                        let e = g / n;
                        if e != *epoch || order.is_empty() {
                            *order = epoch_order(cfg.seed, e, train.len());
                            *epoch = e;
                        }
                        train[order[(g % n) as usize]].clone()
                    })
                    .collect();
                Batch::from_examples(&examples)
            }
            Data::Stream { train, .. } => {
                let k = (step % train.n_chunks() as u64) as usize;
                if k == 0 {
                    // Back at the start of the text: start from a fresh state, as
                    // min-char-rnn does.
                    match &mut self.state.model {
                        Model::Vanilla { hidden, .. } => hidden.fill(F::zero()),
                        Model::Deep(d) => {
                            d.state = State::zeros(d.params.shape(), cfg.batch);
                        }
                    }
                }
                train.chunk(k)
            }
        }
    }

    /// Loss on the held-out data, or `None` when there is none.
    pub fn validate(&self, step: u64) -> Option<Evaluation> {
        let cfg = &self.state.config;
        let p = &self.state.model;
        let (loss, n_examples) = match &self.data {
            Data::Lines { val, .. } if !val.is_empty() => (p.evaluate_lines(val, 256), val.len()),
            Data::Stream { val, .. } if val.len() > 1 => {
                let loss = p.evaluate_stream(val, cfg.seq_len);
                let n = loss.n_targets.div_ceil(cfg.seq_len);
                (loss, n)
            }
            _ => return None,
        };
        let per_example = match cfg.mode {
            CorpusMode::Lines => loss.total / n_examples as f64,
            CorpusMode::Stream => loss.per_char() * cfg.seq_len as f64,
        };
        Some(Evaluation {
            step,
            loss,
            per_example,
        })
    }

    /// Draws `n_samples` texts with the run's sampling generator.
    pub fn sample_texts(&mut self) -> Vec<String> {
        self.buffers.sync(&mut self.state.model);
        let st = &mut self.state;
        let newline = st.vocab.newline_id();
        let config = SampleConfig {
            temperature: 1.0,
            top_k: None,
            max_len: st.config.sample_max_len,
            stop: match st.config.mode {
                CorpusMode::Lines => newline,
                CorpusMode::Stream => None,
            },
        };
        // In stream mode the model never saw "no input", so start it on a newline (or the
        // first character of the vocabulary).
        let prefix: Vec<TokenId> = match st.config.mode {
            CorpusMode::Lines => vec![],
            CorpusMode::Stream => vec![newline.unwrap_or(0)],
        };
        (0..st.config.n_samples)
            .map(|_| {
                let s = st.model.sample(&prefix, &config, &mut st.sample_rng);
                st.vocab
                    .decode(&s.ids)
                    .unwrap_or_default()
                    .trim_start_matches('\n')
                    .to_string()
            })
            .collect()
    }
}

/// The classic starting value of the smoothed loss ([`rnn::initial_smoothed_loss`]): a
/// uniform guess over 7 characters for a name, or over a chunk of T in stream mode.
pub fn initial_smoothed_loss(config: &TrainConfig, vocab_size: usize) -> f64 {
    let chars = match config.mode {
        CorpusMode::Lines => 7,
        CorpusMode::Stream => config.seq_len,
    };
    rnn::initial_smoothed_loss(vocab_size, chars)
}

/// The permutation of `n` examples for epoch `epoch`: a function of the seed and the
/// epoch only, so any step's data can be found again on resume.
fn epoch_order(seed: u64, epoch: u64, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed.wrapping_add(epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    order.shuffle(&mut rng);
    order
}

/// Carries each column's last real hidden state into the next step (a padded column stops
/// at its own length).
fn carry_hidden<F: Float>(buf: &StepBuffers<F>, batch: &Batch, hidden: &mut Array2<F>) {
    for (j, &len) in batch.lengths.iter().enumerate() {
        if len > 0 {
            hidden.column_mut(j).assign(&buf.hidden(len).column(j));
        }
    }
}

fn build_data(config: &TrainConfig, corpus: &Corpus, vocab: &Vocab) -> Result<Data, TrainError> {
    let enc = |c: &Corpus| -> Result<Vec<Example>, TrainError> {
        c.line_examples(vocab).map_err(|source| TrainError::Encode {
            origin: c.origin().to_string(),
            source,
        })
    };
    let (train, val) = if config.val_fraction > 0.0 {
        let (t, v) = corpus.split_validation(config.val_fraction)?;
        (t, Some(v))
    } else {
        (corpus.clone(), None)
    };
    match config.mode {
        CorpusMode::Lines => {
            let train = enc(&train)?;
            // A line is one sequence: its length times the batch times the hidden size is
            // what an update keeps, bounded as for chunks in stream mode.
            let longest = train.iter().map(Example::len).max().unwrap_or(0);
            let cells = longest as u128
                * config.batch as u128
                * config.hidden as u128
                * (config.layers * config.cell.n_gates()) as u128;
            if cells > MAX_ACTIVATIONS as u128 {
                return Err(TrainError::Config(ConfigError {
                    field: "batch x longest line x hidden x layers x gates",
                    value: cells.to_string(),
                    expected: "at most 268435456 (the activations one update keeps); \
                               shorten the lines or use --mode stream",
                }));
            }
            Ok(Data::Lines {
                train,
                val: val.as_ref().map(enc).transpose()?.unwrap_or_default(),
                order: Vec::new(),
                epoch: 0,
            })
        }
        CorpusMode::Stream => {
            let ids = |c: &Corpus| {
                vocab.encode(c.text()).map_err(|source| TrainError::Encode {
                    origin: c.origin().to_string(),
                    source,
                })
            };
            let train_ids = ids(&train)?;
            let batches =
                StreamBatches::new(train_ids, config.batch, config.seq_len).map_err(|source| {
                    TrainError::Batch {
                        origin: train.origin().to_string(),
                        source,
                    }
                })?;
            let val = val.as_ref().map(ids).transpose()?.unwrap_or_default();
            Ok(Data::Stream {
                train: batches,
                val,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward;
    use crate::guard::gradients_are_bounded;
    use crate::guard::step_bound;
    use ndarray::ArrayView2;

    /// One `update_step` from `start` on a fresh optimizer and fresh buffers: the
    /// parameters after it, the optimizer, the buffers and the result.
    #[allow(clippy::type_complexity)]
    fn one_step(
        start: &Params,
        clip: Clip,
        opt: OptimizerConfig,
        x: ArrayView2<'_, Option<TokenId>>,
        y: ArrayView2<'_, Option<TokenId>>,
        a0: ArrayView2<'_, f64>,
    ) -> (
        Params,
        Optimizer<f64>,
        StepBuffers<f64>,
        Result<StepReport, StepReport>,
    ) {
        let mut params = start.clone();
        let mut optimizer = Optimizer::new(opt, &params);
        let mut buf = StepBuffers::new(&params);
        let result = update_step(&mut params, &mut optimizer, clip, x, y, a0, &mut buf);
        buf.sync(&mut params);
        (params, optimizer, buf, result)
    }

    /// The finite blow-up guard: a loss far above ln V stops at once; one moderately above
    /// it stops only after [`Trainer::HIGH_LOSS_STEPS`] steps in a row, and a normal step in
    /// between starts the count again.
    #[test]
    fn finite_blow_ups_are_caught_at_once_or_after_a_sustained_stretch() {
        let text = "abc\nbca\ncab\n".repeat(10);
        let corpus = Corpus::from_text("t", &text, rnn_data::CorpusOptions::lines()).unwrap();
        let config = TrainConfig {
            hidden: 4,
            ..TrainConfig::dinosaurs()
        };
        let mut trainer = Trainer::<f64>::new(config, &corpus).unwrap();
        let ln_v = (trainer.vocab().len() as f64).ln();
        let loss = |per_char: f64| Loss {
            total: per_char * 10.0,
            n_targets: 10,
        };
        assert!(trainer.check_loss(1, &loss(ln_v)).is_ok());
        let huge = trainer.check_loss(2, &loss(30.0 * ln_v)).unwrap_err();
        assert!(huge.to_string().contains("diverged at step 2"), "{huge}");
        trainer.high_loss_steps = 0;
        for step in 1..Trainer::<f64>::HIGH_LOSS_STEPS {
            assert!(trainer.check_loss(step, &loss(5.0 * ln_v)).is_ok());
        }
        // A normal step resets the stretch.
        assert!(trainer.check_loss(99, &loss(ln_v)).is_ok());
        for step in 1..Trainer::<f64>::HIGH_LOSS_STEPS {
            assert!(trainer.check_loss(step, &loss(5.0 * ln_v)).is_ok());
        }
        let err = trainer.check_loss(200, &loss(5.0 * ln_v)).unwrap_err();
        assert!(err.to_string().contains("for 50 steps"), "{err}");
    }

    /// The fused clip-and-SGD passes give the same parameters and report, bit for bit, as
    /// clipping and then updating, and leave the gradients as backpropagation computed them.
    /// (Two sequences: at batch 1 in `f64` on AVX-512 the step of `crate::batch1` runs
    /// instead, tested in its module.)
    #[test]
    fn fused_clip_and_sgd_equals_the_general_path() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        // Large weights, so that many gradient entries exceed the clip value.
        let start: Params = Params::init_with_std(9, 21, 9, 2.0, &mut rng);
        let x = ndarray::array![
            [None, Some(4)],
            [Some(3), Some(3)],
            [Some(1), Some(8)],
            [Some(7), Some(1)],
            [Some(2), Some(5)]
        ];
        let y = ndarray::array![
            [Some(3), Some(3)],
            [Some(1), Some(8)],
            [Some(7), Some(1)],
            [Some(2), Some(5)],
            [Some(0), None]
        ];
        let a0 = Array2::zeros((21, 2).f());
        let (clip, sgd) = (Clip::Value(0.5), OptimizerConfig::sgd(0.1));

        let (fused, opt, buf, result) = one_step(&start, clip, sgd, x.view(), y.view(), a0.view());
        let report = result.expect("a finite step");

        let mut general = start.clone();
        let mut opt_general = Optimizer::new(sgd, &general);
        let (loss, cache) = forward(&general, x.view(), y.view(), a0.view());
        let (mut grads, _) = crate::backward(&general, x.view(), y.view(), &cache);
        let unclipped = grads.clone();
        let norm = crate::apply_clip(clip, &mut grads);
        assert!(
            grads.w_aa.iter().any(|g| g.abs() == 0.5),
            "some entries were clipped"
        );
        assert!(crate::step_checked(&mut opt_general, &mut general, &grads));

        assert_eq!(fused, general);
        assert_eq!(buf.grads, unclipped);
        assert_eq!(report.grad_norm, norm);
        assert_eq!(report.loss, loss);
        assert_eq!(opt.t, opt_general.t);
        let max_abs = fused
            .arrays()
            .into_iter()
            .flat_map(|(_, p)| p.iter().copied());
        // The bound on |θ| after the step: the largest |θ| before it, plus lr·c.
        let before = start
            .arrays()
            .into_iter()
            .flat_map(|(_, p)| p.iter().copied());
        let before = before.map(f64::abs).fold(0.0, f64::max);
        let after = max_abs.map(f64::abs).fold(0.0, f64::max);
        assert_eq!(buf.fused.max_abs, Some(step_bound(before, 0.5, 0.1)));
        assert!(after <= before + 0.1 * 0.5);
    }

    /// When the in-place step could overflow (lr·c near the largest float), the general
    /// path runs: the update that would make parameters infinite is refused and the
    /// parameters are left as they were.
    #[test]
    fn fused_step_falls_back_when_parameters_could_overflow() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let start: Params = Params::init_with_std(9, 21, 9, 2.0, &mut rng);
        let x = ndarray::array![[None], [Some(3)], [Some(1)], [Some(7)], [Some(2)]];
        let y = ndarray::array![[Some(3)], [Some(1)], [Some(7)], [Some(2)], [Some(0)]];
        let a0 = Array2::zeros((21, 1).f());
        // lr·c is far beyond the largest float: any gradient entry above 2 overflows.
        let (clip, sgd) = (Clip::Value(5.0), OptimizerConfig::sgd(f64::MAX / 2.0));
        let (params, _, buf, result) = one_step(&start, clip, sgd, x.view(), y.view(), a0.view());
        let report = result.expect_err("the update overflows");
        assert!(report.loss.total.is_finite() && report.grad_norm.is_finite());
        assert_eq!(params, start, "the parameters before the step are kept");
        assert_eq!(buf.fused.max_abs, None);
    }

    /// The one-pass update runs only when the gradients are provably finite: a hidden
    /// state a⟨0⟩ of 1e200 (which dW_aa multiplies) makes the bound fail, and the general
    /// path, which checks the norm before updating, takes the step instead. (Two sequences,
    /// so that the general path runs at every tier, not the batch-1 step.)
    #[test]
    fn fused_step_declines_when_gradients_are_not_provably_finite() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let start: Params = Params::init(9, 21, 9, &mut rng);
        let x = ndarray::array![[Some(1), None], [Some(3), Some(2)], [Some(1), Some(4)]];
        let y = ndarray::array![[Some(3), Some(2)], [Some(1), Some(4)], [Some(0), Some(0)]];
        let (clip, sgd) = (Clip::Value(5.0), OptimizerConfig::sgd(0.01));
        for (a0_value, fused_expected) in [(0.5, true), (1e200, false)] {
            let a0 = Array2::from_elem((21, 2).f(), a0_value);
            let (params, _, buf, result) =
                one_step(&start, clip, sgd, x.view(), y.view(), a0.view());
            let report = result.expect("a finite step");
            let bounded = gradients_are_bounded(&buf.cache, &buf.bptt, params.n_params());
            assert_eq!(bounded, fused_expected, "a0 = {a0_value}");
            // The general path leaves no bound on |θ| behind; the fused one does.
            assert_eq!(
                buf.fused.max_abs.is_some(),
                fused_expected,
                "a0 = {a0_value}"
            );

            let mut general = start.clone();
            let (_, cache) = forward(&general, x.view(), y.view(), a0.view());
            let (mut grads, _) = crate::backward(&general, x.view(), y.view(), &cache);
            assert_eq!(report.grad_norm, crate::apply_clip(clip, &mut grads));
            let mut opt_general = Optimizer::new(sgd, &general);
            assert!(crate::step_checked(&mut opt_general, &mut general, &grads));
            assert_eq!(params, general, "a0 = {a0_value}");
        }
    }
}
