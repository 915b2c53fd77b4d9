//! `charrnn gradcheck`: backpropagation through time against finite differences, on a small
//! random model in f64.

use std::io::{self, Write};

use anyhow::{Result, bail};
use clap::Args;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rnn::GRADCHECK_EPS;
use rnn_engine::{Params, TokenId};

/// The largest relative error that passes.
pub const THRESHOLD: f64 = 1e-7;

/// The largest hidden size and vocabulary `charrnn gradcheck` accepts.
pub const MAX_CHECK_SIZE: usize = 512;

/// The largest `--std`: beyond it tanh saturates and the gradients vanish.
pub const MAX_STD: f64 = 10.0;

/// Arguments of `charrnn gradcheck`.
#[derive(Debug, Args)]
pub struct GradcheckArgs {
    /// Hidden size n_a.
    #[arg(long, default_value_t = 5)]
    hidden: usize,
    /// Vocabulary size (n_x = n_y; 2 to 512).
    #[arg(long, default_value_t = 7)]
    vocab: usize,
    /// Time steps T.
    #[arg(long, default_value_t = 12)]
    seq_len: usize,
    /// Sequences m.
    #[arg(long, default_value_t = 2)]
    batch: usize,
    /// Seed for the weights and the ids.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Standard deviation of the random weights (large enough for gradients well above
    /// rounding noise; at most 10).
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    std: f64,
}

/// Runs `charrnn gradcheck`.
pub fn run(args: GradcheckArgs) -> Result<()> {
    // The check runs four forward passes per parameter entry: these bounds keep it to
    // minutes and its arrays to megabytes.
    for (name, value, max) in [
        ("hidden", args.hidden, MAX_CHECK_SIZE),
        ("vocab", args.vocab, MAX_CHECK_SIZE),
        ("seq_len", args.seq_len, 10_000),
        ("batch", args.batch, 1_024),
    ] {
        if !(1..=max).contains(&value) {
            bail!("invalid {name} = {value}: expected between 1 and {max}");
        }
    }
    // A vocabulary of one gives a loss of 0 whatever the weights, and a very large --std
    // saturates tanh and the softmax: either way every gradient is 0 and the check would
    // pass without checking anything.
    if args.vocab == 1 {
        bail!("invalid vocab = 1: one character leaves nothing to predict; expected at least 2");
    }
    if !(args.std.is_finite() && args.std > 0.0 && args.std <= MAX_STD) {
        bail!(
            "invalid std = {:?}: expected a finite number > 0 and at most {MAX_STD}",
            args.std
        );
    }
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let (v, n_a, t, m) = (args.vocab, args.hidden, args.seq_len, args.batch);
    let params: Params = Params::init_with_std(v, n_a, v, args.std, &mut rng);
    let mut id = || -> TokenId {
        let i = rng.random_range(0..v);
        TokenId::try_from(i).unwrap_or(0)
    };
    // The first step has no input, as at the start of a name.
    let x = Array2::from_shape_fn((t, m), |(step, _)| (step > 0).then(&mut id));
    let y = Array2::from_shape_fn((t, m), |_| Some(id()));
    let a0 = Array2::zeros((n_a, m));
    let report = rnn::gradient_check(&params, x.view(), y.view(), a0.view(), GRADCHECK_EPS);
    let worst = report.worst();
    let ok = worst <= THRESHOLD;
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "gradient check: n_a {n_a}, vocabulary {v}, T {t}, m {m}, seed {}, weights N(0, {}²), eps {}",
        args.seed, args.std, report.eps
    )?;
    write!(out, "{report}")?;
    writeln!(
        out,
        "worst relative error: {worst:.3e} (threshold {THRESHOLD:e}) {}",
        if ok { "OK" } else { "FAIL" }
    )?;
    if !ok {
        bail!("gradient check failed: worst relative error {worst:.3e} > {THRESHOLD:e}");
    }
    Ok(())
}
