//! Throughput of the training step on the two standard configurations, and the machine's
//! GEMM rate to compare it with (what `charrnn bench` prints).
//!
//! Throughput is training characters (time steps × batch) per second, forward, backward,
//! clipping and update included, on synthetic data (random ids, seeded). FLOPs per
//! character are counted as 6 (n_a² + V n_a): the three products with W_aa (forward,
//! da_next, dW_aa) and the three with W_ya (logits, W_yaᵀ dy, dW_ya), at 2 FLOPs per
//! multiply-add.
//!
//! ```
//! use rnn_engine::bench::{BenchConfig, run_bench};
//!
//! let mut config = BenchConfig::a();
//! config.steps = 20;
//! let result = run_bench::<f64>(&config);
//! assert!(result.chars_per_s > 0.0);
//! ```

use std::time::Instant;

use ndarray::{Array2, ShapeBuilder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use rnn::{CellKind, DeepOptimizer, DeepParams, DeepShape, State};

use crate::step::{StepBuffers, update_step};
use crate::{Clip, DeepBuffers, Dtype, Float, Optimizer, OptimizerConfig, Params, TokenId};

/// A benchmark configuration. Start from a preset ([`BenchConfig::a`],
/// [`BenchConfig::b`]) and change fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchConfig {
    /// Short name for reports (`"a"`, `"b"`).
    pub name: String,
    /// Vocabulary size V (n_x = n_y).
    pub vocab: usize,
    /// Hidden size n_a.
    pub hidden: usize,
    /// Batch size m.
    pub batch: usize,
    /// Sequence length T.
    pub seq_len: usize,
    /// Optimizer.
    pub optimizer: OptimizerConfig,
    /// Clipping.
    pub clip: Clip,
    /// Element type (the caller picks the matching `run_bench::<F>`).
    pub dtype: Dtype,
    /// Threads of the rayon pool the step runs in (large products are split over them).
    pub threads: usize,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps before them.
    pub warmup: usize,
    /// Seed of the synthetic data and of the parameters.
    pub seed: u64,
    /// The recurrent cell (the presets' is the vanilla `rnn`).
    #[serde(default = "vanilla_cell")]
    pub cell: CellKind,
    /// Stacked layers (the presets have 1). Gated cells or more than one layer run the
    /// deep step, without dropout.
    #[serde(default = "one_layer")]
    pub layers: usize,
}

fn vanilla_cell() -> CellKind {
    CellKind::Rnn
}

fn one_layer() -> usize {
    1
}

impl BenchConfig {
    /// Config A, "dinosaurs": V 27, n_a 50, batch 1, 12 characters per step, SGD lr 0.01,
    /// element-wise clip at 5, f64, one thread.
    pub fn a() -> Self {
        BenchConfig {
            name: "a".into(),
            vocab: 27,
            hidden: 50,
            batch: 1,
            seq_len: 12,
            optimizer: OptimizerConfig::sgd(0.01),
            clip: Clip::Value(5.0),
            dtype: Dtype::F64,
            threads: 1,
            steps: 50_000,
            warmup: 2_000,
            seed: 0,
            cell: CellKind::Rnn,
            layers: 1,
        }
    }

    /// Config B, "text": V 65, n_a 512, batch 32, 64 characters per stream, Adam lr
    /// 0.002, clip by norm at 5, f32, one thread.
    pub fn b() -> Self {
        BenchConfig {
            name: "b".into(),
            vocab: 65,
            hidden: 512,
            batch: 32,
            seq_len: 64,
            optimizer: OptimizerConfig::adam(0.002),
            clip: Clip::Norm(5.0),
            dtype: Dtype::F32,
            threads: 1,
            steps: 30,
            warmup: 3,
            seed: 0,
            cell: CellKind::Rnn,
            layers: 1,
        }
    }

    /// FLOPs per training character, 6 (n_a² + V n_a) for the vanilla cell in one layer,
    /// 6 (G n_a² (2L − 1) + V n_a) for G gates and L layers.
    pub fn flops_per_char(&self) -> f64 {
        let (n_a, v) = (self.hidden as f64, self.vocab as f64);
        let g = self.cell.n_gates() as f64;
        let recurrent = (2 * self.layers.max(1) - 1) as f64;
        6.0 * (g * n_a * n_a * recurrent + v * n_a)
    }

    /// Whether the bench runs the deep step (a gated cell or several layers) rather than
    /// the vanilla one.
    pub fn is_deep(&self) -> bool {
        self.cell != CellKind::Rnn || self.layers > 1
    }

    fn deep_shape(&self) -> DeepShape {
        DeepShape {
            cell: self.cell,
            n_x: self.vocab,
            n_a: self.hidden,
            n_y: self.vocab,
            n_layers: self.layers.max(1),
        }
    }
}

/// What [`run_bench`] measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// The configuration's name.
    pub config: String,
    /// Element type.
    pub dtype: Dtype,
    /// Threads.
    pub threads: usize,
    /// Timed steps.
    pub steps: usize,
    /// Characters trained on in the timed steps.
    pub chars: usize,
    /// Wall time of the timed steps, in seconds.
    pub seconds: f64,
    /// Training characters per second.
    pub chars_per_s: f64,
    /// FLOPs per character, 6 (n_a² + V n_a).
    pub flops_per_char: f64,
    /// Achieved GFLOP/s, `chars_per_s · flops_per_char / 1e9`.
    pub gflops: f64,
}

/// Runs `config.warmup + config.steps` training steps (the same step as
/// [`Trainer`](crate::Trainer): forward, backward, clip, update, divergence checks) on
/// synthetic data in a rayon pool of `config.threads` threads, timing the last
/// `config.steps`.
///
/// The hidden state is carried from step to step, as in training.
///
/// # Panics
///
/// If the pool cannot be created, or the parameters diverge (they do not at these
/// learning rates).
pub fn run_bench<F: Float>(config: &BenchConfig) -> BenchResult {
    with_threads(config.threads, || run_bench_here::<F>(config))
}

/// The bench's training step on its synthetic batches, as a closure that runs one step per
/// call (cycling through the batches), for the allocation test: everything is allocated
/// when the closure is made or at its first call, nothing after.
#[doc(hidden)]
pub fn step_probe<F: Float>(config: &BenchConfig) -> impl FnMut() + use<F> {
    let (v, n_a, m, t) = (config.vocab, config.hidden, config.batch, config.seq_len);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut params: Params<F> = Params::init(v, n_a, v, &mut rng);
    let mut optimizer = Optimizer::new(config.optimizer, &params);
    let mut buffers = StepBuffers::new(&params);
    let batches = synthetic_batches(v, m, t, &mut rng);
    let mut hidden = Array2::<F>::zeros((n_a, m).f());
    let clip = config.clip;
    let mut i = 0;
    move || {
        let (x, y) = &batches[i % batches.len()];
        i += 1;
        let a0 = hidden.view();
        update_step(
            &mut params,
            &mut optimizer,
            clip,
            x.view(),
            y.view(),
            a0,
            &mut buffers,
        )
        .expect("benchmark training diverged");
        hidden.assign(&buffers.hidden(x.nrows()));
    }
}

/// A few different batches of ids for the bench, cycled, so that branch predictors do not
/// learn one.
#[allow(clippy::type_complexity)]
fn synthetic_batches(
    v: usize,
    m: usize,
    t: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<(Array2<Option<TokenId>>, Array2<Option<TokenId>>)> {
    (0..4)
        .map(|_| {
            let x: Array2<Option<TokenId>> = Array2::from_shape_fn((t, m), |(i, _)| {
                (i > 0 || m > 1).then(|| rng.random_range(0..v as TokenId))
            });
            let y: Array2<Option<TokenId>> =
                Array2::from_shape_fn((t, m), |_| Some(rng.random_range(0..v as TokenId)));
            (x, y)
        })
        .collect()
}

/// The deep training step of the bench on its synthetic batches, as a closure that runs
/// step `i` when called with `i`.
fn deep_steps<F: Float>(config: &BenchConfig) -> impl FnMut(usize) + use<F> {
    let (v, m, t) = (config.vocab, config.batch, config.seq_len);
    let shape = config.deep_shape();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut params: DeepParams<F> = DeepParams::init(shape, &mut rng);
    let mut optimizer = DeepOptimizer::new(config.optimizer, &params);
    let mut buffers = DeepBuffers::new(shape, m, t);
    let batches = synthetic_batches(v, m, t, &mut rng);
    let mut state = State::zeros(shape, m);
    let clip = config.clip;
    move |i| {
        let (x, y) = &batches[i % batches.len()];
        crate::deep_update_step(
            &mut params,
            &mut optimizer,
            clip,
            x.view(),
            y.view(),
            &mut state,
            None,
            &mut buffers,
        )
        .expect("benchmark training diverged");
        std::hint::black_box(&params);
    }
}

fn run_bench_here<F: Float>(config: &BenchConfig) -> BenchResult {
    if config.is_deep() {
        let mut step = deep_steps::<F>(config);
        return time_steps(config, &mut step);
    }
    let (v, n_a, m, t) = (config.vocab, config.hidden, config.batch, config.seq_len);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut params: Params<F> = Params::init(v, n_a, v, &mut rng);
    let mut optimizer = Optimizer::new(config.optimizer, &params);
    let mut buffers = StepBuffers::new(&params);
    let batches = synthetic_batches(v, m, t, &mut rng);
    let mut hidden = Array2::<F>::zeros((n_a, m).f());
    let mut step = |i: usize| {
        let (x, y) = &batches[i % batches.len()];
        update_step(
            &mut params,
            &mut optimizer,
            config.clip,
            x.view(),
            y.view(),
            hidden.view(),
            &mut buffers,
        )
        .expect("benchmark training diverged");
        hidden.assign(&buffers.hidden(x.nrows()));
    };
    let result = time_steps(config, &mut step);
    // The trained parameters, complete (after fused batch-1 steps, W_aa and W_ya are in
    // the buffers' aligned copy); nothing reads them, but a real run would.
    buffers.sync(&mut params);
    std::hint::black_box(&params);
    result
}

/// Runs `config.warmup` untimed steps, then times `config.steps`.
fn time_steps(config: &BenchConfig, step: &mut dyn FnMut(usize)) -> BenchResult {
    for i in 0..config.warmup {
        step(i);
    }
    let start = Instant::now();
    for i in 0..config.steps {
        step(i);
    }
    let seconds = start.elapsed().as_secs_f64();
    let chars = config.steps * config.seq_len * config.batch;
    let chars_per_s = chars as f64 / seconds;
    let flops_per_char = config.flops_per_char();
    BenchResult {
        config: config.name.clone(),
        dtype: config.dtype,
        threads: config.threads,
        steps: config.steps,
        chars,
        seconds,
        chars_per_s,
        flops_per_char,
        gflops: chars_per_s * flops_per_char / 1e9,
    }
}

/// `out = w · a` through the product the training step uses for its all-steps matrices
/// (development aid for the timing examples).
#[doc(hidden)]
pub fn gemm_probe<F: Float>(
    w: ndarray::ArrayView2<'_, F>,
    a: ndarray::ArrayView2<'_, F>,
    out: ndarray::ArrayViewMut2<'_, F>,
) {
    crate::kernels::gemm(w, a, out)
}

/// The GEMM rate, in GFLOP/s, of the product the model uses for large matrices (the same
/// kernels and thread split as the training step) on square n × n matrices, in a rayon
/// pool of `threads` threads: the best of five timings of at least 0.2 s each.
pub fn gemm_rate_threads<F: Float>(n: usize, threads: usize) -> f64 {
    with_threads(threads, || gemm_rate::<F>(n))
}

/// The GEMM rate, in GFLOP/s, on square n × n matrices, in the current rayon pool (see
/// [`gemm_rate_threads`] to choose the thread count).
pub fn gemm_rate<F: Float>(n: usize) -> f64 {
    let a = Array2::from_shape_fn((n, n).f(), |(i, j)| {
        F::cast(((i * 7 + j) % 13) as f64 * 0.01)
    });
    let b = Array2::from_shape_fn((n, n).f(), |(i, j)| {
        F::cast(((i + 3 * j) % 11) as f64 * 0.01)
    });
    let mut c = Array2::<F>::zeros((n, n).f());
    let mut run = || crate::kernels::gemm(a.view(), b.view(), c.view_mut());
    run();
    let flops = 2.0 * (n as f64).powi(3);
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        let mut reps = 0u32;
        while start.elapsed().as_secs_f64() < 0.2 {
            run();
            reps += 1;
        }
        best = best.min(start.elapsed().as_secs_f64() / f64::from(reps));
    }
    flops / best / 1e9
}

/// Runs `f` in a fresh rayon pool of `threads` threads (at least one).
///
/// # Panics
///
/// If the operating system refuses to start the threads.
pub fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .expect("start the benchmark's threads")
        .install(f)
}

/// Time per name (12 steps) of each batch-1 `f64` kernel of config A, each run alone in a
/// loop on data that stays in the first-level cache (development aid for the timing
/// examples: their sum against the step's time shows what the cache and the joins cost).
/// Empty where the kernels are not available.
#[doc(hidden)]
pub fn kernel_probe_a() -> Vec<(&'static str, f64)> {
    use crate::matvec;
    if !matvec::available::<f64>() {
        return Vec::new();
    }
    let (n_a, n_y, t) = (50usize, 27usize, 12usize);
    let val = |i: usize| ((i * 37) % 101) as f64 / 101.0 - 0.5;
    let w_aa: Vec<f64> = (0..n_a * n_a).map(val).collect();
    let w_ya: Vec<f64> = (0..n_y * n_a).map(|i| val(i + 7)).collect();
    let a: Vec<f64> = (0..n_a * (t + 1)).map(|i| val(i + 3)).collect();
    let dy: Vec<f64> = (0..n_y * t).map(|i| val(i + 5) * 0.1).collect();
    let mut out = vec![0.0; 56 * (t + 1)];
    let mut z = vec![0.0; n_y * t];
    let b_y = vec![0.1; n_y];
    let b_a = vec![0.1; n_a];
    let mut w_aa_m = w_aa.clone();
    let mut w_ya_m = w_ya.clone();
    let step = matvec::ClipSgd { c: 5.0, lr: 0.0 };
    let time = |f: &mut dyn FnMut()| {
        let n = 20_000;
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            best = best.min(start.elapsed().as_secs_f64() / n as f64 * 1e9);
        }
        best
    };
    // W_aa in rows of 56 starting on 64-byte boundaries, as the fused step keeps it.
    let mut padded = vec![0.0f64; n_a * 56 + 8];
    let off = (64 - padded.as_ptr() as usize % 64) % 64 / 8;
    for i in 0..n_a {
        let row = &mut padded[off + i * 56..off + i * 56 + n_a];
        row.copy_from_slice(&w_aa[i * n_a..(i + 1) * n_a]);
    }
    let padded = &padded[off..];
    // The activations likewise, a column of 56 per step with zero padding: the fused
    // step's products run over whole registers of both.
    let mut a_pad = vec![0.0f64; 56 * (t + 1) + 8];
    let a_off = (64 - a_pad.as_ptr() as usize % 64) % 64 / 8;
    for s in 0..=t {
        a_pad[a_off + s * 56..a_off + s * 56 + n_a].copy_from_slice(&a[s * n_a..(s + 1) * n_a]);
    }
    let a_pad = &a_pad[a_off..];
    // A product per step: `f(a⟨t⟩, out⟨t⟩)` for the 12 steps, inputs and outputs `ld`
    // apart, on the padded activations when `ld` is 56.
    let per_step = |f: &dyn Fn(&[f64], &mut [f64]) -> bool, ld: usize, out: &mut [f64]| {
        let x = if ld == n_a { &a[..] } else { a_pad };
        for s in 0..t {
            f(&x[s * ld..], &mut out[s * ld..]);
        }
        std::hint::black_box(out);
    };
    let mut rows = vec![];
    type Product<'a> = &'a dyn Fn(&[f64], &mut [f64]) -> bool;
    let products: [(&'static str, Product<'_>, usize); 5] = [
        (
            "rows W_aa a (12 steps)",
            &|x, o| matvec::rows(n_a, n_a, &w_aa, n_a, x, o),
            n_a,
        ),
        (
            "rows W_aa a, padded (fused step)",
            &|x, o| matvec::rows(n_a, 56, padded, 56, x, o),
            56,
        ),
        (
            "cols W_aa^T da (12 steps)",
            &|x, o| matvec::cols(n_a, n_a, &w_aa, n_a, x, o),
            n_a,
        ),
        (
            "cols W_aa^T da, padded (fused)",
            &|x, o| matvec::cols(56, n_a, padded, 56, x, o),
            56,
        ),
        (
            "rows logits (12 columns)",
            &|x, o| matvec::rows(n_y, n_a, &w_ya, n_a, x, o),
            n_a,
        ),
    ];
    for (name, f, ld) in products {
        rows.push((name, time(&mut || per_step(f, ld, &mut out))));
    }
    rows.push((
        "tanh (12 x 50)",
        time(&mut || {
            for s in 0..t {
                let o = &mut out[s * n_a..(s + 1) * n_a];
                crate::kernels::simd_input_bias_tanh(o, Some(&b_a), &b_a);
                o.copy_from_slice(&a[s * n_a..(s + 1) * n_a]);
            }
            std::hint::black_box(&out);
        }),
    ));
    rows.push((
        "softmax (12 columns)",
        time(&mut || {
            z.iter_mut().zip(&dy).for_each(|(z, &d)| *z = d);
            let targets = (0..t).map(|s| Some((s % n_y) as crate::TokenId));
            std::hint::black_box(matvec::softmax_block(&mut z, n_y, &b_y, targets));
        }),
    ));
    rows.push((
        "W_ya^T dy (all steps)",
        time(&mut || {
            let w = ndarray::ArrayView2::from_shape((n_y, n_a), &w_ya[..]).expect("shape");
            let d = ndarray::ArrayView2::from_shape((n_y, t).f(), &dy[..]).expect("shape");
            let o = ndarray::ArrayViewMut2::from_shape((n_a, t).f(), &mut out[..n_a * t]);
            crate::kernels::gemm(w.t(), d, o.expect("shape"));
        }),
    ));
    rows.push((
        "outer + update W_ya",
        time(&mut || {
            let v = &a[n_a..];
            std::hint::black_box(matvec::outer_rows_sgd(
                (&mut w_ya_m, n_y, n_a),
                n_a,
                v,
                &dy,
                n_y,
                t,
                step,
            ));
        }),
    ));
    rows.push((
        "outer + update W_aa",
        time(&mut || {
            let v = &a[..n_a * t];
            let s = &a[n_a..];
            std::hint::black_box(matvec::outer_rows_sgd(
                (&mut w_aa_m, n_a, n_a),
                n_a,
                v,
                s,
                n_a,
                t,
                step,
            ));
        }),
    ));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_flop_counts() {
        let a = BenchConfig::a();
        assert_eq!((a.vocab, a.hidden, a.batch, a.seq_len), (27, 50, 1, 12));
        assert_eq!(a.flops_per_char(), 6.0 * (2500.0 + 1350.0));
        let b = BenchConfig::b();
        assert_eq!((b.vocab, b.hidden, b.batch, b.seq_len), (65, 512, 32, 64));
        assert_eq!(b.dtype, Dtype::F32);
    }

    #[test]
    fn a_short_run_reports_consistent_numbers() {
        let mut c = BenchConfig::b();
        c.hidden = 32;
        c.steps = 3;
        c.warmup = 1;
        c.threads = 2;
        let r = run_bench::<f32>(&c);
        assert_eq!(r.chars, 3 * 64 * 32);
        assert!((r.gflops - r.chars_per_s * r.flops_per_char / 1e9).abs() < 1e-9);
        assert!(gemm_rate_threads::<f64>(32, 1) > 0.0);
        // The deep step: an LSTM of two layers.
        c.cell = CellKind::Lstm;
        c.layers = 2;
        assert!(c.is_deep());
        let r = run_bench::<f32>(&c);
        assert_eq!(r.chars, 3 * 64 * 32);
        assert_eq!(
            r.flops_per_char,
            6.0 * (4.0 * 32.0 * 32.0 * 3.0 + 65.0 * 32.0)
        );
    }

    #[test]
    fn configs_without_cell_and_layers_read_as_vanilla() {
        let mut json = serde_json::to_value(BenchConfig::b()).unwrap();
        let fields = json.as_object_mut().unwrap();
        fields.remove("cell");
        fields.remove("layers");
        let back: BenchConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, BenchConfig::b());
        assert!(!back.is_deep());
    }
}
