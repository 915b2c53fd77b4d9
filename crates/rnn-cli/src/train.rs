//! `charrnn train`: a new run, or `--resume` of a saved one, checkpointed every
//! `--checkpoint-every` steps into a run directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rnn::CellKind;
use rnn_data::{Corpus, CorpusMode, Vocab};
use rnn_engine::{
    Checkpoint, Clip, Decay, Dtype, Event, Float, OptimizerConfig, SampleConfig, Schedule,
    TrainConfig, TrainError, Trainer,
};

use crate::checkpoint;
use crate::data::{Bundled, DataSource};
use crate::novelty::Novelty;
use crate::output::Outputs;
use crate::rundir::{self, RunDir, RunFiles, Target};

/// Arguments of `charrnn train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training text: one name per line (lines mode) or any text (stream mode)
    /// [default: the preset's bundled text: the dinosaur names, makemore's training names or
    /// Tiny Shakespeare].
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// A test text, evaluated at the end with the best checkpoint (lines mode also reports
    /// how many of 1,000 samples are in the training data, in the test data, or new)
    /// [default: makemore's test names with `--preset names` and its bundled data].
    #[arg(long, value_name = "PATH")]
    test: Option<PathBuf>,
    /// One example per line (names), or one continuous stream cut into chunks
    /// [default: the preset's].
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// Starting configuration, changed by the flags below [default: dinosaurs]. names and
    /// shakespeare have one recipe per --cell (default lstm).
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Hidden size n_a (1 to 8192).
    #[arg(long, value_name = "N_A")]
    hidden: Option<usize>,
    /// Recurrent cell: the post's vanilla tanh cell, a GRU or an LSTM (PyTorch's
    /// equations and gate order).
    #[arg(long, value_enum)]
    cell: Option<CellArg>,
    /// Stacked recurrent layers (1 to 8).
    #[arg(long, value_name = "N")]
    layers: Option<usize>,
    /// Dropout probability between layers (0 to below 1; needs --layers 2 or more).
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    dropout: Option<f64>,
    /// Number of updates; with --resume, the new total.
    #[arg(long)]
    steps: Option<u64>,
    /// Learning rate.
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Optimizer (keeps the preset's learning rate unless --lr is given).
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerArg>,
    /// Decoupled weight decay λ (AdamW; Adam only): every weight matrix shrinks by
    /// 1 − lr·λ before each update, the biases never.
    #[arg(long, value_name = "LAMBDA", allow_negative_numbers = true)]
    weight_decay: Option<f64>,
    /// Learning-rate schedule after the warm-up: constant, cosine (down to
    /// --final-lr-fraction of --lr at the last step) or step (times --decay-factor every
    /// --decay-every steps).
    #[arg(long, value_enum)]
    schedule: Option<ScheduleArg>,
    /// Steps of linear warm-up from lr/N to lr before the schedule.
    #[arg(long, value_name = "N")]
    warmup: Option<u64>,
    /// Cosine schedule: the fraction of --lr left at the last step [default: 0.1].
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    final_lr_fraction: Option<f64>,
    /// Step schedule: steps between two cuts of the rate [default: a quarter of --steps].
    #[arg(long, value_name = "N")]
    decay_every: Option<u64>,
    /// Step schedule: what each cut multiplies the rate by [default: 0.5].
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    decay_factor: Option<f64>,
    /// Clip each gradient entry to [-VALUE, VALUE].
    #[arg(long, value_name = "VALUE", allow_negative_numbers = true,
          conflicts_with_all = ["clip_norm", "no_clip"])]
    clip: Option<f64>,
    /// Rescale the gradient when its global norm exceeds MAX.
    #[arg(
        long,
        value_name = "MAX",
        allow_negative_numbers = true,
        conflicts_with = "no_clip"
    )]
    clip_norm: Option<f64>,
    /// Do not clip gradients.
    #[arg(long)]
    no_clip: bool,
    /// Examples (lines mode) or parallel streams (stream mode) per update (1 to 65536;
    /// batch x seq-len x hidden at most 2^28).
    #[arg(long, value_name = "M")]
    batch: Option<usize>,
    /// Stream mode: characters per chunk of truncated backpropagation through time (1 to
    /// 65536) [default: the preset's, or 64 for a names preset].
    #[arg(long, value_name = "T")]
    seq_len: Option<usize>,
    /// Seed for initialisation, shuffling and samples.
    #[arg(long)]
    seed: Option<u64>,
    /// Element type to train in.
    #[arg(long, value_enum)]
    dtype: Option<DtypeArg>,
    /// Fraction of the data held out for validation (0 to 0.5).
    #[arg(long, value_name = "FRACTION", allow_negative_numbers = true)]
    val_fraction: Option<f64>,
    /// Steps between samples printed during training (0: never).
    #[arg(long, value_name = "N")]
    sample_every: Option<u64>,
    /// Steps between validation passes (0: never); each new best is saved as best.json.
    #[arg(long, value_name = "N")]
    eval_every: Option<u64>,
    /// Steps between checkpoints (and history.csv updates).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    checkpoint_every: u64,
    /// Run directory [default: runs/<data name>, or runs/<data name>-2, -3, ... if taken].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue the run in DIR (a run directory or its checkpoint.json). Only --steps,
    /// --checkpoint-every, --sample-every, --data and --test may be combined with it.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Lowercase the text before training.
    #[arg(long)]
    lowercase: bool,
    /// Lines mode, the post's model: start every name from a zero state, as evaluation and
    /// sampling do, instead of carrying the state from name to name (stacks always start
    /// from zero).
    #[arg(long)]
    reset_state: bool,
    /// Start a new run in --out even if it holds one (its files are replaced).
    #[arg(long)]
    force: bool,
    /// Refuse a data file longer than this many bytes (it also stops endless inputs).
    #[arg(long, value_name = "BYTES", default_value_t = rnn_data::DEFAULT_MAX_BYTES)]
    max_bytes: u64,
    /// Refuse a text with more distinct characters than this (each one is a row and a
    /// column of the model; a checkpoint grows with their number).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_VOCAB)]
    max_vocab: usize,
}

/// The default `--max-vocab`: English text has about 100 distinct characters, and names
/// far fewer.
pub const DEFAULT_MAX_VOCAB: usize = 1000;

/// The presets of `rnn_engine::TrainConfig`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Preset {
    /// Dinosaur names: one name per step, n_a 50, SGD 0.01, clip 5, f64, 35,000 steps.
    Dinosaurs,
    /// Continuous text: 32 streams x 64 chars, n_a 256, Adam 0.002, clip norm 5, f32.
    Text,
    /// Karpathy's min-char-rnn: one stream, chunks of 25, n_a 100, Adagrad 0.1.
    MinCharRnn,
    /// makemore's names: train on its 31,033 training names, report its 1,000 test names.
    Names,
    /// Tiny Shakespeare, the last 10% held out as nanoGPT does.
    Shakespeare,
}

impl Preset {
    /// The bundled text a preset trains on when --data is not given.
    fn default_data(self) -> Bundled {
        match self {
            Preset::Names => Bundled::NamesTrain,
            Preset::Shakespeare => Bundled::Shakespeare,
            Preset::Dinosaurs | Preset::Text | Preset::MinCharRnn => Bundled::Dinosaurs,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CellArg {
    Rnn,
    Gru,
    Lstm,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Lines,
    Stream,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OptimizerArg {
    Sgd,
    Adagrad,
    Adam,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ScheduleArg {
    Constant,
    Cosine,
    Step,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DtypeArg {
    F32,
    F64,
}

/// Runs `charrnn train`.
pub fn run(args: TrainArgs) -> Result<()> {
    if args.checkpoint_every == 0 {
        bail!("invalid checkpoint_every = 0: expected at least 1");
    }
    if args.max_bytes == 0 {
        bail!("invalid max_bytes = 0: expected at least 1");
    }
    match args.resume.clone() {
        Some(dir) => resume(&args, dir),
        None => fresh(&args),
    }
}

/// What the training loop needs besides the trainer.
#[derive(Debug)]
struct Session {
    dir: RunDir,
    /// The run's files, checked by the output policy.
    files: RunFiles,
    /// The directory's lock, held until the session ends.
    _lock: File,
    origin: String,
    checkpoint_every: u64,
    /// Whether this session continues a saved run.
    resumed: bool,
    /// The test text, evaluated at the end.
    test: Option<Corpus>,
    /// The training text (for the novelty of samples).
    train_lines: Vec<String>,
}

/// A run stopped by SIGINT or SIGTERM after saving its state: `main` exits with 128 plus
/// the signal's number, as shells expect.
#[derive(Debug, thiserror::Error)]
#[error("interrupted by {name} at step {step}; the checkpoint is in {dir}")]
pub struct Interrupted {
    /// The signal's number.
    pub signal: i32,
    name: &'static str,
    step: u64,
    dir: String,
}

/// The data, loaded with the size limits of the command line.
fn load_source(source: &DataSource, config: &TrainConfig, args: &TrainArgs) -> Result<Corpus> {
    let corpus = source.load_limited(config.mode, config.lowercase, args.max_bytes)?;
    let v = corpus.vocab().len();
    if v > args.max_vocab {
        bail!(
            "{}: {v} distinct characters, more than --max-vocab {} (is it text? raise the limit \
             with --max-vocab)",
            corpus.origin(),
            args.max_vocab
        );
    }
    Ok(corpus)
}

fn fresh(args: &TrainArgs) -> Result<()> {
    // Everything that can be wrong with the input is checked before anything is created.
    let config = build_config(args)?;
    let preset = args.preset.unwrap_or(Preset::Dinosaurs);
    let source = DataSource::from_flag_or(args.data.as_deref(), preset.default_data());
    let target = Target::new(args.out.as_deref(), &source.stem(), args.force)?;
    let corpus = load_source(&source, &config, args)?;
    let test = test_corpus(args, &config, &corpus.vocab())?;
    let origin = source.origin();
    match config.dtype {
        Dtype::F32 => start::<f32>(config, &corpus, test, &target, origin, args),
        Dtype::F64 => start::<f64>(config, &corpus, test, &target, origin, args),
    }
}

fn start<F: Float>(
    config: TrainConfig,
    corpus: &Corpus,
    test: Option<Corpus>,
    target: &Target,
    origin: String,
    args: &TrainArgs,
) -> Result<()> {
    let trainer = Trainer::<F>::new(config, corpus)?;
    let mut outputs = Outputs::new(true);
    if let Some(data) = &args.data {
        outputs = outputs.input("--data", data);
    }
    let dir = target.create()?;
    let prepared = dir.lock().and_then(|lock| Ok((lock, dir.files(&outputs)?)));
    let (lock, files) = match prepared {
        Ok(p) => p,
        Err(e) => {
            if dir.created {
                let _ = fs::remove_dir_all(&dir.path);
            }
            return Err(e);
        }
    };
    // A new run starts its history, samples and best checkpoint afresh (--force over an
    // old run included).
    for stale in [&files.history, &files.samples, &files.best] {
        match fs::remove_file(stale) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", stale.display()));
            }
            _ => {}
        }
    }
    describe(&trainer, corpus, &dir, None)?;
    let session = Session {
        dir,
        files,
        _lock: lock,
        origin,
        checkpoint_every: args.checkpoint_every,
        resumed: false,
        test,
        train_lines: corpus.lines().to_vec(),
    };
    train_loop(trainer, &session)
}

fn resume(args: &TrainArgs, dir: PathBuf) -> Result<()> {
    let fixed = [
        ("--mode", args.mode.is_some()),
        ("--preset", args.preset.is_some()),
        ("--hidden", args.hidden.is_some()),
        ("--cell", args.cell.is_some()),
        ("--layers", args.layers.is_some()),
        ("--dropout", args.dropout.is_some()),
        ("--lr", args.lr.is_some()),
        ("--optimizer", args.optimizer.is_some()),
        ("--weight-decay", args.weight_decay.is_some()),
        ("--schedule", args.schedule.is_some()),
        ("--warmup", args.warmup.is_some()),
        ("--final-lr-fraction", args.final_lr_fraction.is_some()),
        ("--decay-every", args.decay_every.is_some()),
        ("--decay-factor", args.decay_factor.is_some()),
        ("--clip", args.clip.is_some()),
        ("--clip-norm", args.clip_norm.is_some()),
        ("--no-clip", args.no_clip),
        ("--batch", args.batch.is_some()),
        ("--seq-len", args.seq_len.is_some()),
        ("--seed", args.seed.is_some()),
        ("--dtype", args.dtype.is_some()),
        ("--val-fraction", args.val_fraction.is_some()),
        ("--eval-every", args.eval_every.is_some()),
        ("--out", args.out.is_some()),
        ("--lowercase", args.lowercase),
        ("--reset-state", args.reset_state),
        ("--force", args.force),
    ];
    let given: Vec<&str> = fixed.iter().filter(|f| f.1).map(|f| f.0).collect();
    if !given.is_empty() {
        bail!(
            "{} cannot be combined with --resume: a resumed run keeps its configuration \
             (only --steps, --checkpoint-every, --sample-every, --data and --test may be \
             given)",
            given.join(", ")
        );
    }
    // Lock before reading, so that two resumes of one run never both go on.
    let run_dir = RunDir::existing(checkpoint::run_dir_of(&dir));
    let lock = run_dir.lock()?;
    let loaded = checkpoint::load(&dir)?;
    let mut ckpt = loaded.checkpoint;
    let step = ckpt.state.step;
    let config = &mut ckpt.state.config;
    match args.steps {
        Some(steps) if steps <= step => bail!(
            "--steps {steps} must be greater than the checkpoint's step {step} ({})",
            loaded.path.display()
        ),
        Some(steps) => config.steps = steps,
        None if step >= config.steps => bail!(
            "{} is already at its last step {step}; pass --steps N with N > {step} to train further",
            loaded.path.display()
        ),
        None => {}
    }
    if let Some(every) = args.sample_every {
        config.sample_every = every;
    }
    let source = match &args.data {
        Some(path) => DataSource::File(path.clone()),
        None => DataSource::from_origin(&ckpt.data_origin)?,
    };
    let config = config.clone();
    let corpus = load_source(&source, &config, args)?;
    let origin = source.origin();
    if origin != ckpt.data_origin {
        println!(
            "note: the run was trained on {} and continues on {origin}",
            ckpt.data_origin
        );
    }
    let mut outputs = Outputs::new(true);
    if let Some(data) = &args.data {
        outputs = outputs.input("--data", data);
    }
    let files = run_dir.files(&outputs)?;
    let dropped = rundir::truncate_history(&files.history, step)?;
    if dropped > 0 {
        println!("note: dropped {dropped} history rows written after the checkpoint's step {step}");
    }
    let test = test_corpus(args, &config, &ckpt.state.vocab)?;
    let session = Session {
        dir: run_dir,
        files,
        _lock: lock,
        origin,
        checkpoint_every: args.checkpoint_every,
        resumed: true,
        test,
        train_lines: corpus.lines().to_vec(),
    };
    match ckpt.dtype {
        Dtype::F32 => resume_as::<f32>(&ckpt, &corpus, &session),
        Dtype::F64 => resume_as::<f64>(&ckpt, &corpus, &session),
    }
}

fn resume_as<F: Float>(ckpt: &Checkpoint, corpus: &Corpus, session: &Session) -> Result<()> {
    let trainer = Trainer::<F>::from_state(ckpt.state_as::<F>(), corpus)?;
    describe(&trainer, corpus, &session.dir, Some(trainer.step()))?;
    train_loop(trainer, session)
}

/// The test text of `--test`, or the names preset's bundled test names when it trains on
/// its bundled names; checked against the vocabulary before training starts.
fn test_corpus(args: &TrainArgs, config: &TrainConfig, vocab: &Vocab) -> Result<Option<Corpus>> {
    let source = match (&args.test, args.preset, &args.data) {
        (Some(path), _, _) => DataSource::File(path.clone()),
        (None, Some(Preset::Names), None) => DataSource::Bundled(Bundled::NamesTest),
        _ => return Ok(None),
    };
    let corpus = source.load_limited(config.mode, config.lowercase, args.max_bytes)?;
    let unknown: String = corpus
        .vocab()
        .chars()
        .iter()
        .filter(|c| vocab.id(**c).is_none())
        .collect();
    if !unknown.is_empty() {
        bail!(
            "--test {}: the characters {unknown:?} never occur in the training text, so the \
             model cannot predict them",
            corpus.origin()
        );
    }
    Ok(Some(corpus))
}

/// The preset with the command line's changes, validated.
fn build_config(args: &TrainArgs) -> Result<TrainConfig> {
    let cell = args.cell.map(|c| match c {
        CellArg::Rnn => CellKind::Rnn,
        CellArg::Gru => CellKind::Gru,
        CellArg::Lstm => CellKind::Lstm,
    });
    let mut c = match args.preset.unwrap_or(Preset::Dinosaurs) {
        Preset::Dinosaurs => TrainConfig::dinosaurs(),
        Preset::Text => TrainConfig::text(),
        Preset::MinCharRnn => TrainConfig::min_char_rnn(),
        Preset::Names => TrainConfig::names(cell.unwrap_or(CellKind::Lstm)),
        Preset::Shakespeare => TrainConfig::shakespeare(cell.unwrap_or(CellKind::Lstm)),
    };
    if let Some(mode) = args.mode {
        c.mode = match mode {
            ModeArg::Lines => CorpusMode::Lines,
            ModeArg::Stream => CorpusMode::Stream,
        };
        // A names preset has no chunk length: stream mode takes the text preset's.
        if c.mode == CorpusMode::Stream && c.seq_len == 0 {
            c.seq_len = TrainConfig::text().seq_len;
        }
    }
    if let Some(hidden) = args.hidden {
        c.hidden = hidden;
    }
    if let Some(cell) = cell {
        c.cell = cell;
    }
    if let Some(layers) = args.layers {
        c.layers = layers;
    }
    if let Some(p) = args.dropout {
        c.dropout = p;
    }
    if let Some(steps) = args.steps {
        c.steps = steps;
    }
    if let Some(optimizer) = args.optimizer {
        let lr = c.optimizer.lr();
        c.optimizer = match optimizer {
            OptimizerArg::Sgd => OptimizerConfig::sgd(lr),
            OptimizerArg::Adagrad => OptimizerConfig::adagrad(lr),
            OptimizerArg::Adam => OptimizerConfig::adam(lr),
        };
    }
    if let Some(lr) = args.lr {
        c.optimizer = c.optimizer.with_lr(lr);
    }
    if let Some(lambda) = args.weight_decay {
        match c.optimizer {
            OptimizerConfig::Adam { .. } => {
                c.optimizer = OptimizerConfig::adamw(c.optimizer.lr(), lambda);
            }
            other => bail!(
                "--weight-decay needs --optimizer adam (decoupled weight decay is AdamW);                  the optimizer is {}",
                other.name()
            ),
        }
    }
    apply_schedule(&mut c, args)?;
    if let Some(v) = args.clip {
        c.clip = Clip::Value(v);
    }
    if let Some(max) = args.clip_norm {
        c.clip = Clip::Norm(max);
    }
    if args.no_clip {
        c.clip = Clip::None;
    }
    if let Some(batch) = args.batch {
        c.batch = batch;
    }
    if let Some(seq_len) = args.seq_len {
        c.seq_len = seq_len;
    }
    if let Some(seed) = args.seed {
        c.seed = seed;
    }
    if let Some(dtype) = args.dtype {
        c.dtype = match dtype {
            DtypeArg::F32 => Dtype::F32,
            DtypeArg::F64 => Dtype::F64,
        };
    }
    if let Some(f) = args.val_fraction {
        c.val_fraction = f;
    }
    if let Some(every) = args.sample_every {
        c.sample_every = every;
    }
    if let Some(every) = args.eval_every {
        c.eval_every = every;
    }
    if args.lowercase {
        c.lowercase = true;
    }
    if args.reset_state {
        c.reset_state = true;
    }
    if c.steps == 0 {
        bail!("invalid steps = 0: expected at least 1");
    }
    c.validate()?;
    Ok(c)
}

/// The schedule flags over the preset's schedule.
fn apply_schedule(c: &mut TrainConfig, args: &TrainArgs) -> Result<()> {
    let kind = args.schedule.unwrap_or(match c.schedule.decay {
        Decay::Constant => ScheduleArg::Constant,
        Decay::Cosine { .. } => ScheduleArg::Cosine,
        Decay::Step { .. } => ScheduleArg::Step,
    });
    let wrong =
        |flag: &str, needs: &str| anyhow::anyhow!("{flag} applies to --schedule {needs} only");
    if kind != ScheduleArg::Cosine && args.final_lr_fraction.is_some() {
        return Err(wrong("--final-lr-fraction", "cosine"));
    }
    if kind != ScheduleArg::Step && (args.decay_every.is_some() || args.decay_factor.is_some()) {
        return Err(wrong("--decay-every and --decay-factor", "step"));
    }
    let decay = match kind {
        ScheduleArg::Constant => Decay::Constant,
        ScheduleArg::Cosine => Decay::Cosine {
            final_fraction: args.final_lr_fraction.unwrap_or(match c.schedule.decay {
                Decay::Cosine { final_fraction } => final_fraction,
                _ => 0.1,
            }),
        },
        ScheduleArg::Step => {
            let (every, factor) = match c.schedule.decay {
                Decay::Step { every, factor } => (every, factor),
                _ => ((c.steps / 4).max(1), 0.5),
            };
            Decay::Step {
                every: args.decay_every.unwrap_or(every),
                factor: args.decay_factor.unwrap_or(factor),
            }
        }
    };
    c.schedule = Schedule {
        warmup: args.warmup.unwrap_or(c.schedule.warmup),
        decay,
    };
    Ok(())
}

/// "lr 0.002" for a constant rate, else the schedule: "lr 0.002, warm-up 200, cosine to
/// 0.1x".
fn describe_lr(c: &TrainConfig) -> String {
    let mut s = format!("lr {:?}", c.optimizer.lr());
    if c.schedule.warmup > 0 {
        s += &format!(", warm-up {}", c.schedule.warmup);
    }
    match c.schedule.decay {
        Decay::Constant => {}
        Decay::Cosine { final_fraction } => s += &format!(", cosine to {final_fraction}x"),
        Decay::Step { every, factor } => s += &format!(", x{factor} every {every} steps"),
    }
    let wd = c.optimizer.weight_decay();
    if wd > 0.0 {
        s += &format!(", weight decay {wd}");
    }
    s
}

/// One line about the data, the model and the run directory.
fn describe<F: Float>(
    trainer: &Trainer<F>,
    corpus: &Corpus,
    dir: &RunDir,
    resumed_at: Option<u64>,
) -> Result<()> {
    let c = trainer.config();
    let clip = match c.clip {
        Clip::None => "no clipping".to_string(),
        Clip::Value(v) => format!("clip value {v:?}"),
        Clip::Norm(max) => format!("clip norm {max:?}"),
    };
    let shape = match c.mode {
        CorpusMode::Lines => format!("{} lines", corpus.lines().len()),
        CorpusMode::Stream => format!("{} streams x {} chars", c.batch, c.seq_len),
    };
    let what = match resumed_at {
        Some(step) => format!(
            "resuming {} at step {step} of {}",
            dir.path.display(),
            c.steps
        ),
        None => format!("training {} steps into {}", c.steps, dir.path.display()),
    };
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "{what}\n  data: {} ({} mode, {shape}, {} chars, vocabulary of {})\n  model: {}n_a {}, {} {}, {clip}, batch {}, {}, seed {}",
        corpus.origin(),
        c.mode,
        corpus.n_chars(),
        trainer.vocab().len(),
        model_name(c),
        c.hidden,
        c.optimizer.name(),
        describe_lr(c),
        c.batch,
        c.dtype,
        c.seed,
    )?;
    writeln!(out, "  parameters: {}", trainer.model().n_params())?;
    Ok(())
}

/// "" for the post's model, else "lstm x 2 layers (dropout 0.2), " and the like.
fn model_name(c: &TrainConfig) -> String {
    if c.is_vanilla() {
        return String::new();
    }
    let dropout = if c.dropout > 0.0 {
        format!(" (dropout {})", c.dropout)
    } else {
        String::new()
    };
    format!("{} x {} layer(s){dropout}, ", c.cell.name(), c.layers)
}

/// Reacts to the trainer's events: the progress bar, printed samples and validation lines,
/// `samples.txt`.
struct Observer {
    pb: ProgressBar,
    samples: BufWriter<File>,
    /// The first error writing `samples.txt` (the trainer's callback cannot return one).
    error: Option<io::Error>,
    last_update: Instant,
    chars_since_update: u64,
}

impl Observer {
    const UPDATE_EVERY: Duration = Duration::from_millis(100);

    fn on(&mut self, event: &Event<'_>) {
        match *event {
            Event::Step {
                step,
                smoothed_loss,
                chars,
                ..
            } => {
                self.chars_since_update += chars;
                let elapsed = self.last_update.elapsed();
                if elapsed >= Self::UPDATE_EVERY {
                    let rate = self.chars_since_update as f64 / elapsed.as_secs_f64();
                    self.pb.set_position(step);
                    self.pb
                        .set_message(format!("loss {smoothed_loss:.3}, {} chars/s", si(rate)));
                    self.last_update = Instant::now();
                    self.chars_since_update = 0;
                }
            }
            Event::Samples { step, samples } => {
                self.pb.suspend(|| {
                    let mut out = io::stdout().lock();
                    let _ = writeln!(out, "step {step} samples:");
                    for s in samples {
                        let _ = writeln!(out, "  {s}");
                    }
                });
                let result = samples.iter().try_for_each(|s| {
                    writeln!(self.samples, "step {step}\t{}", s.replace('\n', "\\n"))
                });
                if let Err(e) = result.and_then(|()| self.samples.flush()) {
                    self.error.get_or_insert(e);
                }
            }
            Event::Validation(e) => {
                self.pb.suspend(|| {
                    let _ = writeln!(
                        io::stdout().lock(),
                        "step {}: val loss {:.4}/char, perplexity {:.3}, {:.4} bits/char",
                        e.step,
                        e.loss.per_char(),
                        e.loss.perplexity(),
                        e.loss.bits_per_char()
                    );
                });
            }
            Event::Log(_) => {}
        }
    }
}

/// The training loop of either element type: chunks of `checkpoint_every` steps, each
/// followed by the new history rows (appended to `history.csv`) and an atomic checkpoint;
/// then the plots and a summary. SIGINT or SIGTERM ends the current step and then does the
/// same, before exiting with 128 plus the signal's number; a second signal exits at once.
fn train_loop<F: Float>(mut trainer: Trainer<F>, session: &Session) -> Result<()> {
    let dir = &session.dir;
    let files = &session.files;
    let total = trainer.config().steps;
    let samples = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.samples)
        .with_context(|| format!("cannot open {}", files.samples.display()))?;
    let pb = ProgressBar::new(total).with_position(trainer.step());
    pb.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos:>6}/{len} steps  {msg}  [{elapsed_precise}, eta {eta}]",
        )?
        .progress_chars("=> "),
    );
    let mut observer = Observer {
        pb: pb.clone(),
        samples: BufWriter::new(samples),
        error: None,
        last_update: Instant::now(),
        chars_since_update: 0,
    };
    let signals = Signals::install()?;
    let started = Instant::now();
    let first_step = trainer.step();
    let mut saved_at: Option<u64> = session.resumed.then_some(first_step);

    let boundary = |step: u64, every: u64| (step / every).saturating_add(1).saturating_mul(every);
    while trainer.step() < total && !signals.received() {
        let step = trainer.step();
        let every = session.checkpoint_every;
        // Stop at every checkpoint and at every validation (a new best is saved there).
        let mut next = boundary(step, every).min(total);
        let eval_every = trainer.config().eval_every;
        if eval_every > 0 {
            next = next.min(boundary(step, eval_every));
        }
        let result = trainer.run_until(next - step, &mut |e| observer.on(e), &signals.stop);
        if let Err(err) = result {
            pb.finish_and_clear();
            return Err(stopped(err, session, saved_at));
        }
        if let Some(e) = observer.error.take() {
            pb.finish_and_clear();
            return Err(e).with_context(|| format!("cannot write {}", files.samples.display()));
        }
        let now = trainer.step();
        if trainer.state().summary.best_val.map(|(at, _)| at) == Some(now) {
            Checkpoint::new(trainer.state(), session.origin.as_str()).save(&files.best)?;
        }
        if now.is_multiple_of(every) || now == total || signals.received() {
            // History first: a crash between the two leaves rows past the checkpoint,
            // which a resume cuts back.
            rundir::append_history(&files.history, &trainer.take_history())?;
            Checkpoint::new(trainer.state(), session.origin.as_str()).save(&files.checkpoint)?;
            saved_at = Some(now);
        }
    }
    pb.finish_and_clear();
    let wall = started.elapsed();

    // The loss curve, in both formats, from the whole history.csv (earlier sessions too).
    let rows = rnn_plot::read_history_csv(&files.history)?;
    let cfg = trainer.config().clone();
    let unit = match cfg.mode {
        CorpusMode::Lines => "per name".to_string(),
        CorpusMode::Stream => format!("per {}-char chunk", cfg.seq_len),
    };
    let title = format!("Training loss ({unit}): {}", dir.path.display());
    let plot = rnn_plot::loss_curve(&rows, &title)?;
    plot.save_as(&files.loss_png, rnn_plot::Format::Png)?;
    plot.save_as(&files.loss_svg, rnn_plot::Format::Svg)?;

    summarize(&trainer, session, first_step, wall, &unit)?;
    if signals.which().is_none() {
        report_best::<F>(&trainer, session)?;
    }
    match signals.which() {
        Some((signal, name)) => Err(Interrupted {
            signal,
            name,
            step: trainer.step(),
            dir: dir.path.display().to_string(),
        }
        .into()),
        None => Ok(()),
    }
}

/// The summary printed at the end of a session: steps, losses, samples.
fn summarize<F: Float>(
    trainer: &Trainer<F>,
    session: &Session,
    first_step: u64,
    wall: Duration,
    unit: &str,
) -> Result<()> {
    let cfg = trainer.config();
    let mut out = io::stdout().lock();
    let steps_done = trainer.step() - first_step;
    writeln!(
        out,
        "\ntrained {steps_done} steps (to step {}) in {:.1} s ({:.0} steps/s)",
        trainer.step(),
        wall.as_secs_f64(),
        steps_done as f64 / wall.as_secs_f64().max(1e-9)
    )?;
    writeln!(
        out,
        "final smoothed loss: {:.4} {unit}",
        trainer.state().smoothed_loss
    )?;
    match trainer.validate(trainer.step()) {
        Some(e) => writeln!(
            out,
            "validation: {:.4} nats/char, perplexity {:.3}, {:.4} bits/char ({} chars)",
            e.loss.per_char(),
            e.loss.perplexity(),
            e.loss.bits_per_char(),
            e.loss.n_targets
        )?,
        None => writeln!(out, "validation: none (--val-fraction 0)")?,
    }
    writeln!(out, "run directory: {}", session.dir.path.display())?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let vocab = trainer.vocab();
    let newline = vocab.newline_id();
    match cfg.mode {
        CorpusMode::Lines => {
            writeln!(out, "samples (seed {}):", cfg.seed)?;
            let sc = SampleConfig {
                max_len: cfg.sample_max_len,
                ..SampleConfig::names(newline)
            };
            for _ in 0..10 {
                let s = trainer.model().sample(&[], &sc, &mut rng);
                writeln!(out, "  {}", vocab.decode(&s.ids)?)?;
            }
        }
        CorpusMode::Stream => {
            writeln!(out, "sample (seed {}):", cfg.seed)?;
            let sc = SampleConfig {
                max_len: cfg.sample_max_len,
                ..SampleConfig::names(None)
            };
            let start = [newline.unwrap_or(0)];
            let s = trainer.model().sample(&start, &sc, &mut rng);
            writeln!(out, "{}", vocab.decode(&s.ids[1..])?)?;
        }
    }
    Ok(())
}

/// After a finished run: the best checkpoint's validation loss, its loss on the test text,
/// and (lines mode) the novelty of 1,000 of its samples.
fn report_best<F: Float>(trainer: &Trainer<F>, session: &Session) -> Result<()> {
    let best_path = &session.files.best;
    let best = match trainer.state().summary.best_val {
        Some(_) if best_path.exists() => Checkpoint::load(best_path)?,
        _ => Checkpoint::new(trainer.state(), session.origin.as_str()),
    };
    let st = best.state_as::<F>();
    let mut out = io::stdout().lock();
    let which = if best_path.exists() {
        format!("{} (step {})", best_path.display(), st.step)
    } else {
        format!("the last step ({})", st.step)
    };
    if let Some((step, per_char)) = trainer.state().summary.best_val {
        writeln!(
            out,
            "best validation: {per_char:.4} nats/char at step {step}, kept in {which}"
        )?;
    }
    if let Some(test) = &session.test {
        let loss = crate::eval::evaluate(&st.model, &st.vocab, &st.config, test)?;
        writeln!(
            out,
            "test: {:.4} nats/char, perplexity {:.3}, {:.4} bits/char ({} chars of {}), with {which}",
            loss.per_char(),
            loss.perplexity(),
            loss.bits_per_char(),
            loss.n_targets,
            test.origin()
        )?;
    }
    if st.config.mode == CorpusMode::Lines {
        let mut rng = ChaCha8Rng::seed_from_u64(st.config.seed ^ NOVELTY_SEED_SALT);
        let sc = SampleConfig {
            max_len: st.config.sample_max_len,
            ..SampleConfig::names(st.vocab.newline_id())
        };
        let samples: Vec<String> = (0..NOVELTY_SAMPLES)
            .map(|_| {
                let s = st.model.sample(&[], &sc, &mut rng);
                st.vocab.decode(&s.ids).unwrap_or_default()
            })
            .collect();
        let test_lines = session.test.as_ref().map_or(&[][..], |t| t.lines());
        let n = Novelty::count(
            samples.iter().map(|s| s.trim_end_matches('\n')),
            &session.train_lines,
            test_lines,
        );
        writeln!(
            out,
            "novelty of {NOVELTY_SAMPLES} samples: {}",
            n.describe(session.test.is_some())
        )?;
    }
    Ok(())
}

/// How many samples the novelty report draws.
const NOVELTY_SAMPLES: usize = 1000;

/// Keeps the novelty samples apart from the summary's samples of the same seed.
const NOVELTY_SEED_SALT: u64 = 0x006e_6f76_656c_7479;

/// SIGINT and SIGTERM while training: the first sets `stop` (the trainer ends its step), a
/// second one exits at once.
struct Signals {
    stop: Arc<AtomicBool>,
    which: Arc<AtomicUsize>,
}

impl Signals {
    fn install() -> Result<Self> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let stop = Arc::new(AtomicBool::new(false));
        let which = Arc::new(AtomicUsize::new(0));
        for signal in [SIGINT, SIGTERM] {
            let code = u32::try_from(128 + signal).unwrap_or(1);
            // Registered first, so it sees `stop` as it was before this signal.
            signal_hook::flag::register_conditional_shutdown(signal, code as i32, stop.clone())
                .context("cannot install a signal handler")?;
            signal_hook::flag::register_usize(signal, which.clone(), signal as usize)
                .context("cannot install a signal handler")?;
            signal_hook::flag::register(signal, stop.clone())
                .context("cannot install a signal handler")?;
        }
        Ok(Signals { stop, which })
    }

    fn received(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The signal that stopped the run, with its name.
    fn which(&self) -> Option<(i32, &'static str)> {
        if !self.received() {
            return None;
        }
        let signal = i32::try_from(self.which.load(Ordering::Relaxed)).unwrap_or(0);
        let name = match signal {
            signal_hook::consts::SIGINT => "SIGINT",
            signal_hook::consts::SIGTERM => "SIGTERM",
            _ => "a signal",
        };
        Some((signal, name))
    }
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals").finish_non_exhaustive()
    }
}

/// The error for a run that stopped early: says which step and what is on disk. A fresh run
/// directory without any checkpoint is removed, so no half-made run is left behind.
fn stopped(err: TrainError, session: &Session, saved_at: Option<u64>) -> anyhow::Error {
    let dir = &session.dir;
    let on_disk = match saved_at {
        Some(step) => format!(
            "the last checkpoint (step {step}) is in {}",
            dir.path.display()
        ),
        None if dir.created => match fs::remove_dir_all(&dir.path) {
            Ok(()) => format!("no checkpoint was written; removed {}", dir.path.display()),
            Err(_) => format!("no checkpoint was written in {}", dir.path.display()),
        },
        None => "no checkpoint was written".to_string(),
    };
    anyhow::anyhow!("{err}; {on_disk}")
}

/// 123456.0 → "123k".
fn si(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.0}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: TrainArgs,
    }

    fn config(flags: &[&str]) -> Result<TrainConfig> {
        let w = Wrapper::try_parse_from(std::iter::once("train").chain(flags.iter().copied()))?;
        build_config(&w.args)
    }

    #[test]
    fn flags_change_the_preset() {
        assert_eq!(config(&[]).unwrap(), TrainConfig::dinosaurs());
        let c = config(&["--preset", "text", "--optimizer", "sgd", "--no-clip"]).unwrap();
        assert_eq!(
            c.optimizer,
            OptimizerConfig::sgd(TrainConfig::text().optimizer.lr())
        );
        assert_eq!(c.clip, Clip::None);
        assert_eq!(c.mode, CorpusMode::Stream);
        let c = config(&["--optimizer", "adam", "--lr", "0.5", "--clip-norm", "2"]).unwrap();
        assert_eq!(c.optimizer, OptimizerConfig::adam(0.5));
        assert_eq!(c.clip, Clip::Norm(2.0));
        let c = config(&["--mode", "stream", "--seq-len", "16", "--dtype", "f32"]).unwrap();
        assert_eq!(
            (c.mode, c.seq_len, c.dtype),
            (CorpusMode::Stream, 16, Dtype::F32)
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        for (flags, field) in [
            (&["--hidden", "0"][..], "hidden"),
            (&["--lr=-1"], "lr"),
            (&["--clip-norm", "0"], "clip"),
            (&["--steps", "0"], "steps"),
        ] {
            let err = config(flags).unwrap_err().to_string();
            assert!(err.contains(field), "{flags:?}: {err}");
        }
    }

    #[test]
    fn rates_read_well() {
        assert_eq!(si(950.0), "950");
        assert_eq!(si(152_345.0), "152k");
        assert_eq!(si(2_500_000.0), "2.50M");
    }
}
