//! `charrnn probs` (hidden from help): the next-character probabilities `ŷ⟨t⟩` a model gives
//! while reading a text, as JSON, for checking other implementations against this one
//! (`cargo xtask interop` compares them with a NumPy forward pass over the exported
//! safetensors).
//!
//! The text is read as `charrnn plot probs` reads it: from a zero a⟨0⟩; names models start
//! with "no input" (the zero vector) and so give one more row, the prediction after the
//! last character.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use ndarray::{Array2, ShapeBuilder};
use rnn_data::{CorpusMode, TokenId};
use rnn_engine::{Dtype, Float, Params};

use crate::checkpoint;

/// Arguments of `charrnn probs`.
#[derive(Debug, Args)]
pub struct ProbsArgs {
    /// A checkpoint.json, or a run directory holding one.
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// The text to read (lowercased if the model was trained lowercased).
    #[arg(long, value_name = "STR")]
    text: String,
    /// Print one JSON object (the only output format for now).
    #[arg(long)]
    json: bool,
}

/// Runs `charrnn probs`: prints `{"checkpoint", "dtype", "mode", "text", "inputs",
/// "probs"}`, where `inputs[t]` is the input id at step t (`null` for no input) and
/// `probs[t]` the probabilities of every vocabulary entry after it, in id order.
pub fn run(args: ProbsArgs) -> Result<()> {
    if !args.json {
        bail!("charrnn probs prints JSON only: pass --json");
    }
    let loaded = checkpoint::load(&args.checkpoint)?;
    let st = &loaded.checkpoint.state;
    let text = if st.config.lowercase {
        args.text.to_lowercase()
    } else {
        args.text.clone()
    };
    if text.is_empty() {
        bail!("--text is empty");
    }
    if text.chars().count() > crate::sample::MAX_TEXT_CHARS {
        bail!(
            "--text is longer than {} characters",
            crate::sample::MAX_TEXT_CHARS
        );
    }
    let ids = st
        .vocab
        .encode(&text)
        .with_context(|| format!("--text {text:?} does not fit the model's vocabulary"))?;
    let inputs: Vec<Option<TokenId>> = match st.config.mode {
        CorpusMode::Lines => std::iter::once(None)
            .chain(ids.into_iter().map(Some))
            .collect(),
        CorpusMode::Stream => ids.into_iter().map(Some).collect(),
    };
    let probs = match (st.model.vanilla(), loaded.checkpoint.dtype) {
        (Some(p), Dtype::F32) => probabilities(&p.cast::<f32>(), &inputs),
        (Some(p), Dtype::F64) => probabilities(p, &inputs),
        (None, Dtype::F32) => st.model.cast::<f32>().read(&inputs).1,
        (None, Dtype::F64) => st.model.read(&inputs).1,
    };
    let rows: Vec<Vec<f64>> = probs.columns().into_iter().map(|c| c.to_vec()).collect();
    let value = serde_json::json!({
        "checkpoint": loaded.path.display().to_string(),
        "dtype": loaded.checkpoint.dtype,
        "mode": st.config.mode.as_str(),
        "text": text,
        "inputs": inputs,
        "probs": rows,
    });
    writeln!(io::stdout().lock(), "{value}")?;
    Ok(())
}

/// ŷ<1..T> (n_y, T) for one sequence (m = 1) from a zero a⟨0⟩, in f64.
fn probabilities<F: Float>(params: &Params<F>, inputs: &[Option<TokenId>]) -> Array2<f64> {
    let n_steps = inputs.len();
    let x = Array2::from_shape_fn((n_steps, 1), |(t, _)| inputs[t]);
    let y = Array2::from_elem((n_steps, 1), None);
    let a0 = Array2::zeros((params.n_a(), 1).f());
    let (_, cache) = rnn_engine::forward(params, x.view(), y.view(), a0.view());
    cache.y_hat_all().mapv(rnn::Float::as_f64)
}
