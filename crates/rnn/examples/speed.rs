//! Quick throughput probe for the two standard configurations (development aid; the
//! supported entry point is `charrnn bench`).

use std::time::Instant;

use ndarray::{Array2, ShapeBuilder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rnn::{Bptt, Cache, Clip, Float, Grads, Optimizer, OptimizerConfig, Params, TokenId};

fn run<F: Float>(
    v: usize,
    n_a: usize,
    m: usize,
    t: usize,
    opt: OptimizerConfig,
    clip: Clip,
    steps: usize,
) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut p: Params<F> = Params::init(v, n_a, v, &mut rng);
    let mut o = Optimizer::new(opt, &p);
    let mut cache = Cache::new();
    let mut bptt = Bptt::new();
    let mut g = Grads::zeros(v, n_a, v);
    let x: Array2<Option<TokenId>> = Array2::from_shape_fn((t, m), |(i, _)| {
        (i > 0).then(|| rng.random_range(0..v as u32))
    });
    let y: Array2<Option<TokenId>> =
        Array2::from_shape_fn((t, m), |_| Some(rng.random_range(0..v as u32)));
    let a0 = Array2::<F>::zeros((n_a, m).f());
    let start = Instant::now();
    for _ in 0..steps {
        rnn::rnn_forward_into(&p, x.view(), y.view(), a0.view(), &mut cache);
        rnn::rnn_backward_into(&p, x.view(), y.view(), &cache, &mut g, &mut bptt);
        clip.apply(&mut g);
        o.step(&mut p, &g);
    }
    (steps * t * m) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    if which != "b" {
        let a = run::<f64>(
            27,
            50,
            1,
            12,
            OptimizerConfig::sgd(0.01),
            Clip::Value(5.0),
            20000,
        );
        println!("A f64: {:.0} chars/s", a);
    }
    if which == "a" {
        return;
    }
    let b = run::<f32>(
        65,
        512,
        32,
        64,
        OptimizerConfig::adam(0.002),
        Clip::Norm(5.0),
        10,
    );
    let flops = 6.0 * (512.0 * 512.0 + 65.0 * 512.0);
    println!("B f32: {:.0} chars/s, {:.1} GFLOP/s", b, b * flops / 1e9);
}
