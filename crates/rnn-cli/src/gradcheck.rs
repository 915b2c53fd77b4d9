//! `charrnn gradcheck`: backpropagation through time against finite differences, on a small
//! random model in f64.

use std::io::{self, Write};

use anyhow::{Result, bail};
use clap::Args;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rnn::{
    CellKind, DEEP_GRADCHECK_EPS, DeepParams, DeepShape, DropoutMasks, GRADCHECK_EPS, State,
};
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
    /// The cell: the post's vanilla cell, a GRU or an LSTM.
    #[arg(long, value_enum, default_value = "rnn")]
    cell: CellArg,
    /// Stacked layers (1 to 8).
    #[arg(long, default_value_t = 1)]
    layers: usize,
    /// Dropout between layers, with the masks held fixed during the check (0 to below 1).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    dropout: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum CellArg {
    Rnn,
    Gru,
    Lstm,
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
    if !(1..=rnn_engine::MAX_LAYERS).contains(&args.layers) {
        bail!(
            "invalid layers = {}: expected between 1 and {}",
            args.layers,
            rnn_engine::MAX_LAYERS
        );
    }
    if !(0.0..1.0).contains(&args.dropout) {
        bail!(
            "invalid dropout = {:?}: expected at least 0 and below 1",
            args.dropout
        );
    }
    let cell = match args.cell {
        CellArg::Rnn => CellKind::Rnn,
        CellArg::Gru => CellKind::Gru,
        CellArg::Lstm => CellKind::Lstm,
    };
    if cell != CellKind::Rnn || args.layers > 1 || args.dropout > 0.0 {
        return deep(&args, cell);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let (v, n_a, t, m) = (args.vocab, args.hidden, args.seq_len, args.batch);
    let params: Params = Params::init_with_std(v, n_a, v, args.std, &mut rng);
    let (x, y) = random_sequence(&mut rng, v, t, m);
    let a0 = Array2::zeros((n_a, m));
    let report = rnn::gradient_check(&params, x.view(), y.view(), a0.view(), GRADCHECK_EPS);
    let header = format!(
        "n_a {n_a}, vocabulary {v}, T {t}, m {m}, seed {}, weights N(0, {}²), eps {}",
        args.seed, args.std, report.eps
    );
    print_report(&header, &report, report.worst())
}

/// Prints the check's header line, its table and the verdict; an error when it fails.
fn print_report(header: &str, table: &dyn std::fmt::Display, worst: f64) -> Result<()> {
    let ok = worst <= THRESHOLD;
    let mut out = io::stdout().lock();
    writeln!(out, "gradient check: {header}")?;
    write!(out, "{table}")?;
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

/// Random ids for a check: (T, m) inputs, the first step without input as at the start of a
/// name, and (T, m) targets.
type Sequence = (Array2<Option<TokenId>>, Array2<Option<TokenId>>);

fn random_sequence(rng: &mut ChaCha8Rng, v: usize, t: usize, m: usize) -> Sequence {
    let mut id = || -> TokenId { TokenId::try_from(rng.random_range(0..v)).unwrap_or(0) };
    let x = Array2::from_shape_fn((t, m), |(step, _)| (step > 0).then(&mut id));
    let y = Array2::from_shape_fn((t, m), |_| Some(id()));
    (x, y)
}

/// The check of a stack (any cell, any depth, dropout masks drawn once and held fixed):
/// [`rnn::deep_gradient_check`].
fn deep(args: &GradcheckArgs, cell: CellKind) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let (v, n_a, t, m) = (args.vocab, args.hidden, args.seq_len, args.batch);
    let shape = DeepShape {
        cell,
        n_x: v,
        n_a,
        n_y: v,
        n_layers: args.layers,
    };
    // Uniform weights of standard deviation --std.
    let bound = args.std * 3f64.sqrt();
    let mut params = DeepParams::<f64>::zeros(shape);
    for (_, a) in params.arrays_mut() {
        a.mapv_inplace(|_| rng.random_range(-bound..bound));
    }
    let (x, y) = random_sequence(&mut rng, v, t, m);
    let masks =
        (args.dropout > 0.0).then(|| DropoutMasks::draw(args.dropout, shape, t, m, &mut rng));
    let state0 = State::zeros(shape, m);
    let report = rnn::deep_gradient_check(
        &params,
        x.view(),
        y.view(),
        &state0,
        masks.as_ref(),
        DEEP_GRADCHECK_EPS,
    );
    let header = format!(
        "{} x {} layer(s), dropout {} (masks fixed), n_a {n_a}, vocabulary {v}, T {t}, m {m}, \
         seed {}, weights of std {}, eps {} (extrapolated)",
        cell.name(),
        args.layers,
        args.dropout,
        args.seed,
        args.std,
        report.eps
    );
    print_report(&header, &report, report.worst())
}
