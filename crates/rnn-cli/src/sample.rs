//! `charrnn sample`: draw names (or text) from a trained model.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rnn_data::{CorpusMode, TokenId, Vocab};
use rnn_engine::{Dtype, Float, Params, SampleConfig};

use crate::checkpoint;

/// Arguments of `charrnn sample`.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// A checkpoint.json, or a run directory holding one.
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// Number of samples.
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
    /// Maximum number of characters drawn per sample (after the prefix).
    #[arg(long, default_value_t = 50)]
    max_len: usize,
}

/// Runs `charrnn sample`.
pub fn run(args: SampleArgs) -> Result<()> {
    if !(args.temperature.is_finite() && args.temperature > 0.0) {
        bail!(
            "invalid temperature = {}: expected a finite number > 0",
            args.temperature
        );
    }
    let top_k = match args.top_k {
        None => None,
        Some(k) if k >= 1 => Some(usize::try_from(k).unwrap_or(usize::MAX)),
        Some(k) => bail!("invalid top_k = {k}: expected at least 1"),
    };
    if args.max_len == 0 {
        bail!("invalid max_len = 0: expected at least 1");
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
    let samples = match loaded.checkpoint.dtype {
        Dtype::F32 => request.draw(&st.params.cast::<f32>())?,
        Dtype::F64 => request.draw(&st.params)?,
    };
    let mut out = io::stdout().lock();
    for (i, s) in samples.iter().enumerate() {
        // Stream samples may span lines: a blank line keeps them apart.
        if request.mode == CorpusMode::Stream && i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{s}")?;
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
    /// `n` samples from one generator seeded with `seed`. Lines models start from "no input"
    /// as in training; stream models from the prefix, or a newline when there is none.
    fn draw<F: Float>(&self, params: &Params<F>) -> Result<Vec<String>> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let (start, skip) = match self.mode {
            CorpusMode::Stream if self.prefix.is_empty() => {
                (vec![self.vocab.newline_id().unwrap_or(0)], 1)
            }
            _ => (self.prefix.clone(), 0),
        };
        (0..self.n)
            .map(|_| {
                let s = rnn::sample(params, &start, &self.config, &mut rng);
                Ok(self.vocab.decode(&s.ids[skip..])?)
            })
            .collect()
    }
}
