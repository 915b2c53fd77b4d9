//! `charrnn bench`: training throughput on a standard configuration, next to the GEMM rate
//! of this machine measured with the same kernels.

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use rnn::CellKind;
use rnn_engine::Dtype;
use rnn_engine::bench::{BenchConfig, BenchResult, gemm_rate_threads, run_bench};

/// Which standard configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// Dinosaur names: V 27, n_a 50, batch 1, 12 characters per step, SGD, f64.
    A,
    /// Text: V 65, n_a 512, batch 32, chunks of 64, Adam, clip by norm, f32.
    B,
}

/// Which recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Cell {
    /// The vanilla (tanh) cell.
    Rnn,
    /// PyTorch's GRU.
    Gru,
    /// PyTorch's LSTM.
    Lstm,
}

impl Cell {
    fn kind(self) -> CellKind {
        match self {
            Cell::Rnn => CellKind::Rnn,
            Cell::Gru => CellKind::Gru,
            Cell::Lstm => CellKind::Lstm,
        }
    }
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The configuration.
    #[arg(long, value_enum, default_value = "a")]
    config: Preset,
    /// Threads (large matrix products are split over them; 1 to 256).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Element type: f32 or f64 (default: the configuration's).
    #[arg(long)]
    dtype: Option<Dtype>,
    /// Timed training steps, at most 10,000,000 (default: the configuration's, about 2-3
    /// seconds).
    #[arg(long)]
    steps: Option<usize>,
    /// The recurrent cell (a gated cell or more than one layer runs the deep step).
    #[arg(long, value_enum, default_value = "rnn")]
    cell: Cell,
    /// Stacked layers (1 to 8).
    #[arg(long, default_value_t = 1)]
    layers: usize,
    /// Size of the square matrices for the GEMM rate (1 to 4096).
    #[arg(long, default_value_t = 1024)]
    gemm_n: usize,
}

/// The most threads `--threads` accepts (the machines this runs on have a few).
pub const MAX_THREADS: usize = 256;

/// The most timed steps `--steps` accepts (config B's default is 20, config A's 50,000).
pub const MAX_BENCH_STEPS: usize = 10_000_000;

/// The most layers `--layers` accepts.
pub const MAX_LAYERS: usize = 8;

/// The largest `--gemm-n`: three f64 matrices of 4096² take 400 MB.
pub const MAX_GEMM_N: usize = 4096;

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if !(1..=MAX_THREADS).contains(&args.threads) {
        bail!(
            "invalid threads = {}: expected between 1 and {MAX_THREADS}",
            args.threads
        );
    }
    if !(1..=MAX_GEMM_N).contains(&args.gemm_n) {
        bail!(
            "invalid gemm-n = {}: expected between 1 and {MAX_GEMM_N}",
            args.gemm_n
        );
    }
    if !(1..=MAX_LAYERS).contains(&args.layers) {
        bail!(
            "invalid layers = {}: expected between 1 and {MAX_LAYERS}",
            args.layers
        );
    }
    let mut config = match args.config {
        Preset::A => BenchConfig::a(),
        Preset::B => BenchConfig::b(),
    };
    config.threads = args.threads;
    config.cell = args.cell.kind();
    config.layers = args.layers;
    if let Some(dtype) = args.dtype {
        config.dtype = dtype;
    }
    if let Some(steps) = args.steps {
        if !(1..=MAX_BENCH_STEPS).contains(&steps) {
            bail!("invalid steps = {steps}: expected between 1 and {MAX_BENCH_STEPS}");
        }
        config.steps = steps;
        config.warmup = config.warmup.min(steps);
    }
    let (result, gemm) = match config.dtype {
        Dtype::F32 => (
            run_bench::<f32>(&config),
            gemm_rate_threads::<f32>(args.gemm_n, config.threads),
        ),
        Dtype::F64 => (
            run_bench::<f64>(&config),
            gemm_rate_threads::<f64>(args.gemm_n, config.threads),
        ),
    };
    print_result(&config, &result, gemm, args.gemm_n)
}

fn print_result(
    config: &BenchConfig,
    r: &BenchResult,
    gemm: f64,
    gemm_n: usize,
) -> anyhow::Result<()> {
    let fraction = r.gflops / gemm;
    let tier = rnn_engine::Tier::current();
    println!(
        "config {} (V {}, n_a {}, batch {}, T {}, {} x {}), {}, {} thread(s), {} tier, {} steps in {:.2} s",
        config.name,
        config.vocab,
        config.hidden,
        config.batch,
        config.seq_len,
        config.cell.name(),
        config.layers,
        r.dtype,
        r.threads,
        tier,
        r.steps,
        r.seconds
    );
    println!("  {:.0} chars/s", r.chars_per_s);
    println!(
        "  {:.2} GFLOP/s ({:.0} FLOPs per character)",
        r.gflops, r.flops_per_char
    );
    println!(
        "  {:.0}% of this machine's GEMM rate ({:.1} GFLOP/s, {gemm_n}x{gemm_n}, {} thread(s))",
        100.0 * fraction,
        gemm,
        r.threads
    );
    let json = serde_json::json!({
        "config": r.config,
        "cell": config.cell.name(),
        "layers": config.layers,
        "dtype": r.dtype,
        "threads": r.threads,
        "tier": tier.name(),
        "steps": r.steps,
        "chars": r.chars,
        "seconds": r.seconds,
        "chars_per_s": r.chars_per_s,
        "gflops": r.gflops,
        "gemm_gflops": gemm,
        "gemm_n": gemm_n,
        "gemm_fraction": fraction,
    });
    println!(
        "{}",
        serde_json::to_string(&json).context("format the JSON line")?
    );
    Ok(())
}
