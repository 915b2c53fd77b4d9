//! Micro-benchmarks of the model's hot paths at the two standard configurations:
//! one forward step, one backward step, a whole forward + backward pass (BPTT) through the
//! general path, and the whole training step as the trainer runs it (for config A the
//! fused batch-1 step: forward, backward, clipping and the update).
//!
//! `cargo bench -p rnn --bench bptt`. The end-to-end training throughput, with the
//! baselines next to it, is `charrnn bench` (see RESULTS.md next to this file).

use divan::Bencher;
use ndarray::{Array1, Array2, ShapeBuilder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rnn_engine::{
    Bptt, Cache, Float, Grads, Params, TokenId, backward_into, forward_into, hidden_step_into,
};

fn main() {
    divan::main();
}

/// (name, V, n_a, m, T)
const CONFIGS: [(&str, usize, usize, usize, usize); 2] =
    [("a", 27, 50, 1, 12), ("b", 65, 512, 32, 64)];

struct Setup<F: Float> {
    params: Params<F>,
    x: Array2<Option<TokenId>>,
    y: Array2<Option<TokenId>>,
    a0: Array2<F>,
}

fn setup<F: Float>(config: &str) -> Setup<F> {
    let &(_, v, n_a, m, t) = CONFIGS.iter().find(|c| c.0 == config).expect("a or b");
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let params = Params::init(v, n_a, v, &mut rng);
    let x = Array2::from_shape_fn((t, m), |(i, _)| {
        (i > 0).then(|| rng.random_range(0..v as u32))
    });
    let y = Array2::from_shape_fn((t, m), |_| Some(rng.random_range(0..v as u32)));
    let a0 = Array2::from_elem((n_a, m).f(), F::cast(0.1));
    Setup { params, x, y, a0 }
}

/// One hidden step a<t> = tanh(W_ax x + W_aa a<t-1> + b_a): A in f64, B in f32.
#[divan::bench(args = ["a", "b"])]
fn step_forward(bencher: Bencher<'_, '_>, config: &str) {
    if config == "a" {
        step_forward_of::<f64>(bencher, config)
    } else {
        step_forward_of::<f32>(bencher, config)
    }
}

fn step_forward_of<F: Float>(bencher: Bencher<'_, '_>, config: &str) {
    let s = setup::<F>(config);
    let mut a_next = Array2::zeros(s.a0.raw_dim().f());
    let x: Array1<Option<TokenId>> = s.x.row(1).to_owned();
    bencher.bench_local(|| {
        hidden_step_into(&s.params, s.a0.view(), x.view(), a_next.view_mut());
    });
}

/// One step of backpropagation (the post's allocating rnn_step_backward).
#[divan::bench(args = ["a", "b"])]
fn step_backward(bencher: Bencher<'_, '_>, config: &str) {
    if config == "a" {
        step_backward_of::<f64>(bencher, config)
    } else {
        step_backward_of::<f32>(bencher, config)
    }
}

fn step_backward_of<F: Float>(bencher: Bencher<'_, '_>, config: &str) {
    let s = setup::<F>(config);
    let (n_x, n_a, n_y) = (s.params.n_x(), s.params.n_a(), s.params.n_y());
    let mut grads = Grads::zeros(n_x, n_a, n_y);
    let m = s.a0.ncols();
    let dy = Array2::from_elem((n_y, m).f(), F::cast(0.01));
    let mut da_next = Array2::from_elem((n_a, m), F::cast(0.01));
    bencher.bench_local(|| {
        rnn::rnn_step_backward(
            dy.view(),
            &mut grads,
            &mut da_next,
            &s.params,
            s.x.row(1),
            s.a0.view(),
            s.a0.view(),
        );
    });
}

/// Forward and backward over a whole sequence into reused buffers (BPTT).
#[divan::bench(args = ["a", "b"])]
fn bptt(bencher: Bencher<'_, '_>, config: &str) {
    if config == "a" {
        bptt_of::<f64>(bencher, config)
    } else {
        bptt_of::<f32>(bencher, config)
    }
}

fn bptt_of<F: Float>(bencher: Bencher<'_, '_>, config: &str) {
    let s = setup::<F>(config);
    let (n_x, n_a, n_y) = (s.params.n_x(), s.params.n_a(), s.params.n_y());
    let mut cache = Cache::new();
    let mut bptt = Bptt::new();
    let mut grads = Grads::zeros(n_x, n_a, n_y);
    bencher.bench_local(|| {
        forward_into(&s.params, s.x.view(), s.y.view(), s.a0.view(), &mut cache);
        backward_into(
            &s.params,
            s.x.view(),
            s.y.view(),
            &cache,
            &mut grads,
            &mut bptt,
        );
    });
}

/// One whole training step (forward, backward, clipping, update) of the bench's
/// configuration on its synthetic batches, through the trainer's own step function.
#[divan::bench(args = ["a", "b"])]
fn train_step(bencher: Bencher<'_, '_>, config: &str) {
    if config == "a" {
        let mut step = rnn_engine::bench::step_probe::<f64>(&rnn_engine::bench::BenchConfig::a());
        bencher.bench_local(&mut step);
    } else {
        let mut step = rnn_engine::bench::step_probe::<f32>(&rnn_engine::bench::BenchConfig::b());
        bencher.bench_local(&mut step);
    }
}
