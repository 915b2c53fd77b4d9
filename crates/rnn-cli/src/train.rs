//! `charrnn train`: a new run, or `--resume` of a saved one, checkpointed every
//! `--checkpoint-every` steps into a run directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rnn_data::{Corpus, CorpusMode};
use rnn_engine::{
    Checkpoint, Clip, Dtype, Event, Float, OptimizerConfig, SampleConfig, TrainConfig, TrainError,
    Trainer,
};

use crate::checkpoint::{self, CHECKPOINT_FILE};
use crate::data::DataSource;
use crate::rundir::{self, RunDir, Target};

/// Arguments of `charrnn train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training text: one name per line (lines mode) or any text (stream mode)
    /// [default: the bundled dinosaur names].
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// One example per line (names), or one continuous stream cut into chunks
    /// [default: the preset's].
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// Starting configuration, changed by the flags below [default: dinosaurs].
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Hidden size n_a.
    #[arg(long, value_name = "N_A")]
    hidden: Option<usize>,
    /// Number of updates; with --resume, the new total.
    #[arg(long)]
    steps: Option<u64>,
    /// Learning rate.
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Optimizer (keeps the preset's learning rate unless --lr is given).
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerArg>,
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
    /// Examples (lines mode) or parallel streams (stream mode) per update.
    #[arg(long, value_name = "M")]
    batch: Option<usize>,
    /// Stream mode: characters per chunk of truncated backpropagation through time.
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
    /// Steps between checkpoints (and history.csv updates).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    checkpoint_every: u64,
    /// Run directory [default: runs/<data name>, or runs/<data name>-2, -3, ... if taken].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue the run in DIR (a run directory or its checkpoint.json). Only --steps,
    /// --checkpoint-every, --sample-every and --data may be combined with it.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Lowercase the text before training.
    #[arg(long)]
    lowercase: bool,
}

/// The presets of `rnn_engine::TrainConfig`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Preset {
    /// Dinosaur names: one name per step, n_a 50, SGD 0.01, clip 5, f64, 35,000 steps.
    Dinosaurs,
    /// Continuous text: 32 streams x 64 chars, n_a 256, Adam 0.002, clip norm 5, f32.
    Text,
    /// Karpathy's min-char-rnn: one stream, chunks of 25, n_a 100, Adagrad 0.1.
    MinCharRnn,
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
enum DtypeArg {
    F32,
    F64,
}

/// Runs `charrnn train`.
pub fn run(args: TrainArgs) -> Result<()> {
    if args.checkpoint_every == 0 {
        bail!("invalid checkpoint_every = 0: expected at least 1");
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
    origin: String,
    checkpoint_every: u64,
    /// Whether this session continues a saved run.
    resumed: bool,
}

fn fresh(args: &TrainArgs) -> Result<()> {
    // Everything that can be wrong with the input is checked before anything is created.
    let config = build_config(args)?;
    let source = DataSource::from_flag(args.data.as_deref());
    let target = Target::new(args.out.as_deref(), &source.stem())?;
    let corpus = source.load(config.mode, config.lowercase)?;
    let origin = source.origin();
    match config.dtype {
        Dtype::F32 => start::<f32>(config, &corpus, &target, origin, args),
        Dtype::F64 => start::<f64>(config, &corpus, &target, origin, args),
    }
}

fn start<F: Float>(
    config: TrainConfig,
    corpus: &Corpus,
    target: &Target,
    origin: String,
    args: &TrainArgs,
) -> Result<()> {
    let trainer = Trainer::<F>::new(config, corpus)?;
    let dir = target.create()?;
    describe(&trainer, corpus, &dir, None)?;
    let session = Session {
        dir,
        origin,
        checkpoint_every: args.checkpoint_every,
        resumed: false,
    };
    train_loop(trainer, &session)
}

fn resume(args: &TrainArgs, dir: PathBuf) -> Result<()> {
    let fixed = [
        ("--mode", args.mode.is_some()),
        ("--preset", args.preset.is_some()),
        ("--hidden", args.hidden.is_some()),
        ("--lr", args.lr.is_some()),
        ("--optimizer", args.optimizer.is_some()),
        ("--clip", args.clip.is_some()),
        ("--clip-norm", args.clip_norm.is_some()),
        ("--no-clip", args.no_clip),
        ("--batch", args.batch.is_some()),
        ("--seq-len", args.seq_len.is_some()),
        ("--seed", args.seed.is_some()),
        ("--dtype", args.dtype.is_some()),
        ("--val-fraction", args.val_fraction.is_some()),
        ("--out", args.out.is_some()),
        ("--lowercase", args.lowercase),
    ];
    let given: Vec<&str> = fixed.iter().filter(|f| f.1).map(|f| f.0).collect();
    if !given.is_empty() {
        bail!(
            "{} cannot be combined with --resume: a resumed run keeps its configuration \
             (only --steps, --checkpoint-every, --sample-every and --data may be given)",
            given.join(", ")
        );
    }
    let loaded = checkpoint::load(&dir)?;
    let run_dir = RunDir::existing(loaded.dir());
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
    let corpus = source.load(config.mode, config.lowercase)?;
    let session = Session {
        dir: run_dir,
        origin: source.origin(),
        checkpoint_every: args.checkpoint_every,
        resumed: true,
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

/// The preset with the command line's changes, validated.
fn build_config(args: &TrainArgs) -> Result<TrainConfig> {
    let mut c = match args.preset.unwrap_or(Preset::Dinosaurs) {
        Preset::Dinosaurs => TrainConfig::dinosaurs(),
        Preset::Text => TrainConfig::text(),
        Preset::MinCharRnn => TrainConfig::min_char_rnn(),
    };
    if let Some(mode) = args.mode {
        c.mode = match mode {
            ModeArg::Lines => CorpusMode::Lines,
            ModeArg::Stream => CorpusMode::Stream,
        };
    }
    if let Some(hidden) = args.hidden {
        c.hidden = hidden;
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
    if args.lowercase {
        c.lowercase = true;
    }
    if c.steps == 0 {
        bail!("invalid steps = 0: expected at least 1");
    }
    c.validate()?;
    Ok(c)
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
        "{what}\n  data: {} ({} mode, {shape}, {} chars, vocabulary of {})\n  model: n_a {}, {} lr {:?}, {clip}, batch {}, {}, seed {}",
        corpus.origin(),
        c.mode,
        corpus.n_chars(),
        trainer.vocab().len(),
        c.hidden,
        c.optimizer.name(),
        c.optimizer.lr(),
        c.batch,
        c.dtype,
        c.seed,
    )?;
    Ok(())
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
/// followed by an atomic checkpoint and `history.csv`; then the plots and a summary.
fn train_loop<F: Float>(mut trainer: Trainer<F>, session: &Session) -> Result<()> {
    let dir = &session.dir;
    let total = trainer.config().steps;
    let samples_path = dir.file("samples.txt");
    let samples = OpenOptions::new()
        .create(true)
        .append(session.resumed)
        .write(true)
        .truncate(!session.resumed)
        .open(&samples_path)
        .with_context(|| format!("cannot open {}", samples_path.display()))?;
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
    let started = Instant::now();
    let first_step = trainer.step();
    let mut saved_at: Option<u64> = session.resumed.then_some(first_step);
    let checkpoint_path = dir.file(CHECKPOINT_FILE);
    let history_path = dir.file("history.csv");

    while trainer.step() < total {
        let step = trainer.step();
        let every = session.checkpoint_every;
        let next = (step / every)
            .saturating_add(1)
            .saturating_mul(every)
            .min(total);
        let result = trainer.run(next - step, &mut |e| observer.on(e));
        if let Err(err) = result {
            pb.finish_and_clear();
            return Err(stopped(err, session, saved_at));
        }
        if let Some(e) = observer.error.take() {
            pb.finish_and_clear();
            return Err(e).with_context(|| format!("cannot write {}", samples_path.display()));
        }
        Checkpoint::new(trainer.state(), session.origin.as_str()).save(&checkpoint_path)?;
        saved_at = Some(trainer.step());
        rundir::write_history(&history_path, trainer.history())?;
    }
    pb.finish_and_clear();
    let wall = started.elapsed();

    // The loss curve, in both formats.
    let rows: Vec<rnn_plot::HistoryRow> = trainer.history().iter().map(rundir::plot_row).collect();
    let cfg = trainer.config().clone();
    let unit = match cfg.mode {
        CorpusMode::Lines => "per name".to_string(),
        CorpusMode::Stream => format!("per {}-char chunk", cfg.seq_len),
    };
    let title = format!("Training loss ({unit}): {}", dir.path.display());
    let plot = rnn_plot::loss_curve(&rows, &title)?;
    for name in ["loss.png", "loss.svg"] {
        plot.save(&dir.file(name))?;
    }

    // The summary.
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
    writeln!(out, "run directory: {}", dir.path.display())?;
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
                let s = rnn::sample(trainer.params(), &[], &sc, &mut rng);
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
            let s = rnn::sample(trainer.params(), &start, &sc, &mut rng);
            writeln!(out, "{}", vocab.decode(&s.ids[1..])?)?;
        }
    }
    Ok(())
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
