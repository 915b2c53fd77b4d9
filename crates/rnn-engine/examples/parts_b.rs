//! Development aid: time of the forward pass, the backward pass and the big products of
//! config B (V 65, n_a 512, batch 32, 64 steps, f32) alone, per training step, to see
//! where `charrnn bench --config b` spends it.

use std::time::Instant;

use ndarray::{Array2, ShapeBuilder};
use rnn_engine::{Bptt, Cache, Grads, Params, backward_into, forward_into};

fn time(n: usize, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_secs_f64() / n as f64 * 1e3
}

fn main() {
    let threads = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    rnn_engine::bench::with_threads(threads, run);
}

fn run() {
    let (v, n_a, m, t) = (65usize, 512usize, 32usize, 64usize);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let params = Params::<f32>::init(v, n_a, v, &mut rng);
    let x = Array2::from_shape_fn((t, m), |(i, j)| Some(((i * 7 + j * 3) % v) as u32));
    let y = Array2::from_shape_fn((t, m), |(i, j)| Some(((i * 5 + j + 1) % v) as u32));
    let a0 = Array2::<f32>::zeros((n_a, m).f());
    let mut cache = Cache::new();
    let mut bptt = Bptt::new();
    let mut grads = Grads::zeros(v, n_a, v);
    let a = Array2::<f32>::from_elem((n_a, t * m).f(), 0.5);
    let mut out = Array2::<f32>::zeros((n_a, n_a).f());
    let mut out_y = Array2::<f32>::zeros((v, t * m).f());
    let wy = Array2::<f32>::from_elem((v, n_a), 0.01);
    let mut wy_cm = Array2::<f32>::zeros((v, n_a).f());
    wy_cm.assign(&wy);
    let mut dwy_t = Array2::<f32>::zeros((n_a, v).f());
    let mut a2 = Array2::<f32>::zeros((n_a, t * m).f());
    let n = 20;
    for round in 0..3 {
        let fwd = time(n, || {
            std::hint::black_box(forward_into(
                &params,
                x.view(),
                y.view(),
                a0.view(),
                &mut cache,
            ));
        });
        let bwd = time(n, || {
            backward_into(&params, x.view(), y.view(), &cache, &mut grads, &mut bptt);
        });
        let dw = time(n, || {
            rnn_engine::bench::gemm_probe(a.view(), a.t(), out.view_mut());
        });
        let wy_a = time(n, || {
            rnn_engine::bench::gemm_probe(wy_cm.view(), a.view(), out_y.view_mut());
        });
        let dwy = time(n, || {
            rnn_engine::bench::gemm_probe(a.view(), out_y.t(), dwy_t.view_mut());
        });
        let da = time(n, || {
            rnn_engine::bench::gemm_probe(wy.t(), out_y.view(), a2.view_mut());
        });
        let gf = |flops: f64, ms: f64| flops / ms / 1e6;
        let fl = 2.0 * (n_a * n_a * t * m) as f64;
        let fy = 2.0 * (v * n_a * t * m) as f64;
        println!(
            "round {round}: forward {fwd:.2} ms ({:.0} GF/s), backward {bwd:.2} ms ({:.0} GF/s), dW_aa-sized gemm {dw:.2} ms ({:.0} GF/s), W_ya A {wy_a:.2} ms ({:.0} GF/s), A Dyᵀ {dwy:.2} ms ({:.0} GF/s), W_yaᵀ Dy {da:.2} ms ({:.0} GF/s)",
            gf(fl + fy, fwd),
            gf(2.0 * fl + 2.0 * fy, bwd),
            gf(fl, dw),
            gf(fy, wy_a),
            gf(fy, dwy),
            gf(fy, da),
        );
    }
}
