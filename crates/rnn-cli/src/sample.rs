//! `charrnn sample`: draw names (or text) from a trained model.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rnn_data::{CorpusMode, TokenId, Vocab};
use rnn_engine::{Dtype, Float, Model, SampleConfig};

use crate::checkpoint;
use crate::data::DataSource;
use crate::novelty::Novelty;

/// Arguments of `charrnn sample`.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// A checkpoint.json, or a run directory holding one.
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// Number of samples (at most 1,000,000).
    #[arg(long, default_value_t = 10)]
    n: usize,
    /// Softmax temperature: below 1 is more conservative, above 1 more adventurous (> 0).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    temperature: f64,
    /// Draw only from the K most likely characters at each step (K >= 1).
    #[arg(long, value_name = "K", allow_negative_numbers = true)]
    top_k: Option<i64>,
    /// Start every sample with this text (lowercased if the model was trained lowercased).
    #[arg(long, value_name = "STR", default_value = "")]
    prefix: String,
    /// Seed of the sampling generator: same seed, same samples.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Names models: after the samples, count how many are lines of the training text
    /// (the checkpoint's, or --data), of the --test text, or new (makemore's report).
    #[arg(long)]
    novelty: bool,
    /// The training text for --novelty [default: the text the model was trained on].
    #[arg(long, value_name = "PATH", requires = "novelty")]
    data: Option<PathBuf>,
    /// The test text for --novelty.
    #[arg(long, value_name = "PATH", requires = "novelty")]
    test: Option<PathBuf>,
    /// Maximum number of characters drawn per sample (after the prefix; at most
    /// 1,000,000).
    #[arg(long, default_value_t = 50)]
    max_len: usize,
}

/// The largest `--n` and `--max-len`.
pub const MAX_SAMPLES: usize = 1_000_000;

/// The longest `--prefix`, `--text` and the like, in characters.
pub const MAX_TEXT_CHARS: usize = 100_000;

/// Runs `charrnn sample`.
pub fn run(args: SampleArgs) -> Result<()> {
    if !(args.temperature.is_finite() && args.temperature > 0.0) {
        bail!(
            "invalid temperature = {}: expected a finite number > 0",
            args.temperature
        );
    }
    // Sampling divides the logits by the temperature: 1 / temperature must be finite too
    // (a subnormal temperature would turn every weight into NaN).
    if !(1.0 / args.temperature).is_finite() {
        bail!(
            "invalid temperature = {:e}: too close to 0 (its inverse overflows); use 1e-300 \
             or more",
            args.temperature
        );
    }
    let top_k = match args.top_k {
        None => None,
        Some(k) if k >= 1 => Some(usize::try_from(k).unwrap_or(usize::MAX)),
        Some(k) => bail!("invalid top_k = {k}: expected at least 1"),
    };
    if !(1..=MAX_SAMPLES).contains(&args.max_len) {
        bail!(
            "invalid max_len = {}: expected between 1 and {MAX_SAMPLES}",
            args.max_len
        );
    }
    if args.n > MAX_SAMPLES {
        bail!("invalid n = {}: expected at most {MAX_SAMPLES}", args.n);
    }
    if args.prefix.chars().count() > MAX_TEXT_CHARS {
        bail!("--prefix is longer than {MAX_TEXT_CHARS} characters");
    }
    let loaded = checkpoint::load(&args.checkpoint)?;
    let st = &loaded.checkpoint.state;
    let prefix_text = if st.config.lowercase {
        args.prefix.to_lowercase()
    } else {
        args.prefix.clone()
    };
    if st.config.mode == CorpusMode::Lines && prefix_text.contains('\n') {
        bail!(
            "--prefix {prefix_text:?} holds a newline, which ends a name: a names model's \
             prefix is the start of one name"
        );
    }
    let prefix = st
        .vocab
        .encode(&prefix_text)
        .with_context(|| format!("--prefix {prefix_text:?} does not fit the model's vocabulary"))?;
    let request = Request {
        vocab: &st.vocab,
        mode: st.config.mode,
        prefix,
        config: SampleConfig {
            temperature: args.temperature,
            top_k,
            max_len: args.max_len,
            stop: match st.config.mode {
                CorpusMode::Lines => st.vocab.newline_id(),
                CorpusMode::Stream => None,
            },
        },
        n: args.n,
        seed: args.seed,
    };
    // The texts --novelty compares with are read before anything is drawn.
    let novelty = if args.novelty {
        if st.config.mode != CorpusMode::Lines {
            bail!("--novelty counts names: the checkpoint's model reads a stream, not lines");
        }
        let load = |source: DataSource| {
            source.load_limited(
                CorpusMode::Lines,
                st.config.lowercase,
                rnn_data::DEFAULT_MAX_BYTES,
            )
        };
        let train = match &args.data {
            Some(path) => load(DataSource::File(path.clone()))?,
            None => load(DataSource::from_origin(&loaded.checkpoint.data_origin)?)?,
        };
        let test = args
            .test
            .as_ref()
            .map(|path| load(DataSource::File(path.clone())))
            .transpose()?;
        Some((train, test))
    } else {
        None
    };
    let mut out = io::stdout().lock();
    let drawn = match loaded.checkpoint.dtype {
        Dtype::F32 => request.draw(&st.model.cast::<f32>(), &mut out, novelty.is_some())?,
        Dtype::F64 => request.draw(&st.model, &mut out, novelty.is_some())?,
    };
    if let Some((train, test)) = novelty {
        let test_lines = test.as_ref().map_or(&[][..], |t| t.lines());
        let n = Novelty::count(drawn.iter().map(String::as_str), train.lines(), test_lines);
        writeln!(
            out,
            "novelty of {} samples: {}",
            n.total(),
            n.describe(test.is_some())
        )?;
    }
    Ok(())
}

/// What to draw.
#[derive(Debug)]
struct Request<'a> {
    vocab: &'a Vocab,
    mode: CorpusMode,
    prefix: Vec<TokenId>,
    config: SampleConfig,
    n: usize,
    seed: u64,
}

impl Request<'_> {
    /// Prints `n` samples from one generator seeded with `seed`, each as soon as it is
    /// drawn. Lines models start from "no input" as in training; stream models from the
    /// prefix, or a newline when there is none.
    /// With `keep`, also returns the samples (without the prefix's skipped newline).
    fn draw<F: Float>(
        &self,
        model: &Model<F>,
        out: &mut impl Write,
        keep: bool,
    ) -> Result<Vec<String>> {
        let mut kept = Vec::new();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let (start, skip) = match self.mode {
            CorpusMode::Stream if self.prefix.is_empty() => {
                (vec![self.vocab.newline_id().unwrap_or(0)], 1)
            }
            _ => (self.prefix.clone(), 0),
        };
        for i in 0..self.n {
            let s = model.sample(&start, &self.config, &mut rng);
            let text = self.vocab.decode(&s.ids[skip..])?;
            // Stream samples may span lines: a blank line keeps them apart.
            if self.mode == CorpusMode::Stream && i > 0 {
                writeln!(out)?;
            }
            writeln!(out, "{text}")?;
            if keep {
                kept.push(text);
            }
        }
        Ok(kept)
    }
}
