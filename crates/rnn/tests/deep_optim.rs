//! The deep network's optimizer and clipping: the one-layer vanilla stack is the post's
//! network, so the same gradients must give the same update as the post's
//! [`Optimizer`]; Adam worked by hand on one entry; and the state's round trips.

use ndarray::{Array2, array};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rnn::{
    CellKind, Clip, DeepGrads, DeepOptimizer, DeepParams, DeepShape, Optimizer, OptimizerConfig,
    Params, TokenId, clip_deep, rnn_backward, rnn_forward,
};

/// Vanilla parameters and the gradients of one random batch at them.
fn vanilla_case(seed: u64) -> (Params, Params) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (v, n_a, t, m) = (6, 5, 4, 3);
    let p: Params = Params::init_with_std(v, n_a, v, 0.5, &mut rng);
    let x: Array2<Option<TokenId>> = Array2::from_shape_fn((t, m), |(i, _)| {
        (i > 0).then(|| rng.random_range(0..v as u32))
    });
    let y: Array2<Option<TokenId>> =
        Array2::from_shape_fn((t, m), |_| Some(rng.random_range(0..v as u32)));
    let a0 = Array2::zeros((n_a, m));
    let (_, cache) = rnn_forward(&p, x.view(), y.view(), a0.view());
    let (g, _) = rnn_backward(&p, x.view(), y.view(), &cache);
    (p, g)
}

fn assert_same(deep: &DeepParams, flat: &Params, what: &str) {
    assert_close(deep, flat, 0.0, what);
}

/// Every entry within `tol` relative (0: equal).
fn assert_close(deep: &DeepParams, flat: &Params, tol: f64, what: &str) {
    let want = DeepParams::from_params(flat);
    for ((name, a), (_, b)) in deep.arrays().into_iter().zip(want.arrays()) {
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() <= tol * y.abs(),
                "{what}: {name}: {x} against {y}"
            );
        }
        assert_eq!(a.dim(), b.dim(), "{what}: {name}");
    }
}

#[test]
fn one_vanilla_layer_updates_as_the_posts_optimizer() {
    for config in [
        OptimizerConfig::sgd(0.1),
        OptimizerConfig::adagrad(0.1),
        OptimizerConfig::adam(0.01),
    ] {
        let (mut flat, _) = vanilla_case(1);
        let mut deep = DeepParams::from_params(&flat);
        let mut opt = Optimizer::new(config, &flat);
        let mut deep_opt = DeepOptimizer::new(config, &deep);
        for step in 0..5 {
            // New gradients at every step (from another batch), the same for both.
            let (_, g) = vanilla_case(10 + step);
            opt.step(&mut flat, &g);
            deep_opt.step(&mut deep, &DeepParams::from_params(&g));
            assert_same(&deep, &flat, config.name());
        }
        assert_eq!(deep_opt.t, 5);
        // The state too: the moments are the post's, array for array.
        if let (Some(m), Some(dm)) = (&opt.m, &deep_opt.m) {
            assert_same(dm, m, "first moment");
        }
        if let (Some(v), Some(dv)) = (&opt.v, &deep_opt.v) {
            assert_same(dv, v, "second moment");
        }
        assert_eq!(opt.v.is_some(), deep_opt.v.is_some());
        assert_eq!(opt.m.is_some(), deep_opt.m.is_some());
    }
}

/// The same clipping as the post's (the norm sums the arrays in another order, so it may
/// differ in the last bit).
#[test]
fn clipping_equals_the_posts_clipping() {
    for clip in [
        Clip::None,
        Clip::Value(0.05),
        Clip::Norm(0.1),
        Clip::Norm(1e6),
    ] {
        let (_, mut g) = vanilla_case(3);
        let unclipped = g.clone();
        let mut deep = DeepParams::from_params(&g);
        let norm = clip.apply(&mut g);
        let deep_norm = clip_deep(&mut deep, clip);
        assert!((norm - deep_norm).abs() <= 1e-15 * norm, "{clip:?}");
        assert_close(&deep, &g, 1e-15, &format!("{clip:?}"));
        // Clipping acted where it should, and only there.
        assert_eq!(
            g == unclipped,
            matches!(clip, Clip::None | Clip::Norm(1e6)),
            "{clip:?}"
        );
    }
}

fn one_lstm_unit() -> DeepShape {
    DeepShape {
        cell: CellKind::Lstm,
        n_x: 2,
        n_a: 1,
        n_y: 2,
        n_layers: 2,
    }
}

/// Adam on one entry (b_hh of layer 1, gate i), worked by hand with lr 0.1, β₁ 0.9,
/// β₂ 0.999, eps 1e-8, θ = 1, gradients 2 then −1:
///
/// ```text
/// t = 1: m = 0.2, v = 0.004,  m̂ = 2, v̂ = 4;  θ = 1 − 0.1·2/(2 + 1e-8)   = 0.9000000005
/// t = 2: m = 0.08, v = 0.004996, m̂ = 0.08/0.19 = 0.4210526315789474,
///        v̂ = 0.004996/0.001999 = 2.4992496248124425, √v̂ = 1.5809015228066683
///        θ = 0.9000000005 − 0.1·0.4210526315789474/(1.5809015228066683 + 1e-8)
///          = 0.8733662967024315
/// ```
///
/// (Evaluated in Python from these formulas.) Every other entry has zero gradient and
/// stays put.
#[test]
fn adam_worked_by_hand() {
    let mut p: DeepParams = DeepParams::zeros(one_lstm_unit());
    p.layers[1].b_hh[[0, 0]] = 1.0;
    p.w_ya = array![[0.5], [-0.5]];
    let before = p.clone();
    let mut opt = DeepOptimizer::new(OptimizerConfig::adam(0.1), &p);
    let mut g: DeepGrads = DeepParams::zeros(one_lstm_unit());
    g.layers[1].b_hh[[0, 0]] = 2.0;
    opt.step(&mut p, &g);
    assert!((p.layers[1].b_hh[[0, 0]] - 0.9000000005).abs() < 1e-15);
    g.layers[1].b_hh[[0, 0]] = -1.0;
    opt.step(&mut p, &g);
    assert!(
        (p.layers[1].b_hh[[0, 0]] - 0.8733662967024315).abs() < 1e-15,
        "{}",
        p.layers[1].b_hh[[0, 0]]
    );
    let mut moved = p.clone();
    moved.layers[1].b_hh[[0, 0]] = 1.0;
    assert_eq!(moved, before, "only the entry with a gradient moves");
}

#[test]
fn state_casts_and_serializes() {
    let shape = DeepShape {
        cell: CellKind::Gru,
        n_x: 4,
        n_a: 3,
        n_y: 4,
        n_layers: 2,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut p: DeepParams = DeepParams::init(shape, &mut rng);
    let g: DeepGrads = DeepParams::init(shape, &mut rng);
    let mut opt = DeepOptimizer::new(OptimizerConfig::adam(0.01), &p);
    opt.step(&mut p, &g);
    let text = serde_json::to_string(&opt).unwrap();
    let back: DeepOptimizer = serde_json::from_str(&text).unwrap();
    assert_eq!(back, opt);
    // f64 → f32 → f64 keeps about 7 digits; the step count and config exactly.
    let round: DeepOptimizer = opt.cast::<f32>().cast();
    assert_eq!((round.t, round.config), (1, opt.config));
    let (m, m_round) = (opt.m.as_ref().unwrap(), round.m.as_ref().unwrap());
    for ((name, a), (_, b)) in m.arrays().into_iter().zip(m_round.arrays()) {
        let diff = (a - b).iter().fold(0.0f64, |w, d| w.max(d.abs()));
        assert!(
            diff <= 1e-7 * a.iter().fold(0.0f64, |w, v| w.max(v.abs())),
            "{name}"
        );
    }
    assert!(p.global_norm() > 0.0);
}
