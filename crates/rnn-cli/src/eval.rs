//! `charrnn eval`: loss per character, perplexity and bits per character of a model on a
//! text.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use rnn_data::{Corpus, CorpusMode, Vocab};
use rnn_engine::{Dtype, Float, Loss, Model, TrainConfig};

use crate::checkpoint;
use crate::data::DataSource;

/// Arguments of `charrnn eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A checkpoint.json, or a run directory holding one.
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// Text to evaluate on [default: the text the model was trained on, all of it].
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// Which part of the text: all of it, or the training or validation side of the split
    /// the run used (its --val-fraction: every k-th line held out, or the last part of a
    /// stream).
    #[arg(long, value_enum, default_value_t = Split::All)]
    split: Split,
    /// Print one JSON object on one line instead of text.
    #[arg(long)]
    json: bool,
    /// Refuse a data file longer than this many bytes (it also stops endless inputs).
    #[arg(long, value_name = "BYTES", default_value_t = rnn_data::DEFAULT_MAX_BYTES)]
    max_bytes: u64,
}

/// A part of the text to evaluate on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    /// The whole text.
    All,
    /// What the run trained on (the text without its validation part).
    Train,
    /// The validation part the run held out.
    Val,
}

/// Runs `charrnn eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    let loaded = checkpoint::load(&args.checkpoint)?;
    let ckpt = &loaded.checkpoint;
    let st = &ckpt.state;
    let source = match &args.data {
        Some(path) => DataSource::File(path.clone()),
        None => DataSource::from_origin(&ckpt.data_origin)?,
    };
    let corpus = source.load_limited(st.config.mode, st.config.lowercase, args.max_bytes)?;
    let corpus = match args.split {
        Split::All => corpus,
        _ if st.config.val_fraction == 0.0 => bail!(
            "--split {}: the checkpoint's run held nothing out (--val-fraction 0)",
            if args.split == Split::Train {
                "train"
            } else {
                "val"
            }
        ),
        split => {
            let (train, val) = corpus.split_validation(st.config.val_fraction)?;
            if split == Split::Train { train } else { val }
        }
    };
    let loss = match ckpt.dtype {
        Dtype::F32 => evaluate(&st.model.cast::<f32>(), &st.vocab, &st.config, &corpus)?,
        Dtype::F64 => evaluate(&st.model, &st.vocab, &st.config, &corpus)?,
    };
    if loss.n_targets == 0 {
        bail!(
            "{}: nothing to predict (a stream model needs at least two characters: one to \
             read, one to predict)",
            corpus.origin()
        );
    }
    if !loss.per_char().is_finite() {
        bail!(
            "{}: the model gives probability 0 to a character of the text (its loss is {}); \
             the checkpoint's weights are too large to evaluate",
            corpus.origin(),
            loss.per_char()
        );
    }
    let mut out = io::stdout().lock();
    if args.json {
        let value = serde_json::json!({
            "checkpoint": loaded.path.display().to_string(),
            "data": corpus.origin(),
            "mode": st.config.mode.as_str(),
            "chars": loss.n_targets,
            "loss_per_char": loss.per_char(),
            "perplexity": loss.perplexity(),
            "bits_per_char": loss.bits_per_char(),
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(
            out,
            "checkpoint: {} (step {})",
            loaded.path.display(),
            st.step
        )?;
        writeln!(out, "data: {} ({} mode)", corpus.origin(), st.config.mode)?;
        writeln!(out, "chars predicted: {}", loss.n_targets)?;
        writeln!(out, "loss: {:.4} nats/char", loss.per_char())?;
        writeln!(out, "perplexity: {:.4}", loss.perplexity())?;
        writeln!(out, "bits per char: {:.4}", loss.bits_per_char())?;
    }
    Ok(())
}

/// Summed loss over the corpus: every line from a zero state (lines mode), or the whole
/// text with the state carried across chunks of `seq_len` (stream mode).
pub(crate) fn evaluate<F: Float>(
    model: &Model<F>,
    vocab: &Vocab,
    config: &TrainConfig,
    corpus: &Corpus,
) -> Result<Loss> {
    let not_in_vocab = || {
        format!(
            "{}: a character is not in the model's vocabulary",
            corpus.origin()
        )
    };
    Ok(match config.mode {
        CorpusMode::Lines => {
            let examples = corpus.line_examples(vocab).with_context(not_in_vocab)?;
            model.evaluate_lines(&examples, 256)
        }
        CorpusMode::Stream => {
            let ids = vocab.encode(corpus.text()).with_context(not_in_vocab)?;
            model.evaluate_stream(&ids, config.seq_len.max(1))
        }
    })
}
