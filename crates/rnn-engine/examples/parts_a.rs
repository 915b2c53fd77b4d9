//! Development aid: time of the forward and backward passes of config A alone
//! (batch 1, 12 steps, f64), per step, to see where `charrnn bench --config a` spends it.

use std::time::Instant;

use ndarray::Array2;
use rnn_engine::{Bptt, Cache, Grads, Params, backward_into, forward_into};

fn main() {
    let (v, n_a, t) = (27usize, 50usize, 12usize);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let params = Params::<f64>::init(v, n_a, v, &mut rng);
    let x = Array2::from_shape_fn((t, 1), |(i, _)| Some(((i * 7 + 3) % v) as u32));
    let y = Array2::from_shape_fn((t, 1), |(i, _)| Some(((i * 7 + 10) % v) as u32));
    let a0 = Array2::<f64>::zeros((n_a, 1));
    let mut cache = Cache::new();
    let mut bptt = Bptt::new();
    let mut grads = Grads::zeros(v, n_a, v);
    let n = 200_000;
    for round in 0..3 {
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(forward_into(
                &params,
                x.view(),
                y.view(),
                a0.view(),
                &mut cache,
            ));
        }
        let fwd = start.elapsed().as_secs_f64() / n as f64;
        let start = Instant::now();
        for _ in 0..n {
            backward_into(&params, x.view(), y.view(), &cache, &mut grads, &mut bptt);
            std::hint::black_box(&grads);
        }
        let bwd = start.elapsed().as_secs_f64() / n as f64;
        println!(
            "round {round}: forward {:.2} us, backward {:.2} us",
            fwd * 1e6,
            bwd * 1e6
        );
    }
}
