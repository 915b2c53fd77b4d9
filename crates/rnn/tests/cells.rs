//! The GRU and LSTM cells, stacked layers and dropout, shown correct: cases worked by hand,
//! an independent scalar-loop model written from PyTorch's equations, gradient checks
//! against finite differences (with and without dropout), agreement of the one-layer
//! vanilla stack with the post's `rnn_forward`/`rnn_backward`, and dropout's contract.

use ndarray::{Array2, array};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rnn::{
    CellKind, DEEP_GRADCHECK_EPS, DeepParams, DeepShape, DropoutMasks, GRADCHECK_EPS, LayerParams,
    Params, State, TokenId, compare_deep_gradients, deep_backward, deep_forward,
    deep_gradient_check, deep_step, rnn_backward, rnn_forward,
};

type Ids = Array2<Option<TokenId>>;

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol * want.abs().max(1.0),
        "{what}: got {got:.17}, want {want:.17}"
    );
}

/// Output layer of the hand-worked cases: logits (1.5 h + 0.1, −0.5 h − 0.1), target 0,
/// so the loss is ln(e^l0 + e^l1) − l0.
fn tiny_output(cell: CellKind, layer: LayerParams) -> DeepParams {
    DeepParams {
        cell,
        layers: vec![layer],
        w_ya: array![[1.5], [-0.5]],
        b_y: array![[0.1], [-0.1]],
    }
}

/// One step of a one-unit LSTM (n_a = 1, vocabulary 2), input 1, h = 0.5, c = −0.3.
///
/// Column 1 of W_ih is (0.2, −0.4, 0.6, 0.1) for (i, f, g, o); column 0 is never read.
/// W_hh = (0.3, 0.5, −0.2, 0.7), b_ih = (0.1, 0.2, −0.1, 0), b_hh = (−0.05, 0.1, 0.05, 0.2):
///
/// ```text
/// z_i = 0.2 + 0.1 + 0.3·0.5 − 0.05 = 0.4      i = σ(0.4)  = 0.598687660112452
/// z_f = −0.4 + 0.2 + 0.5·0.5 + 0.1 = 0.15     f = σ(0.15) = 0.5374298453437496
/// z_g = 0.6 − 0.1 − 0.2·0.5 + 0.05 = 0.45     g = tanh(0.45) = 0.4218990052500079
/// z_o = 0.1 + 0 + 0.7·0.5 + 0.2 = 0.65        o = σ(0.65) = 0.6570104626734988
/// c' = f·(−0.3) + i·g = 0.09135677465377348
/// h' = o·tanh(c') = 0.05985592896567691
/// L  = ln(e^(1.5h'+0.1) + e^(−0.5h'−0.1)) − (1.5h'+0.1) = 0.5460141616774628
/// ```
///
/// (Evaluated with Python's `math` module from these formulas.) Each gate has a different
/// value, so a swapped gate order changes h'.
#[test]
fn lstm_step_worked_by_hand() {
    let layer = LayerParams {
        w_ih: array![[9.0, 0.2], [9.0, -0.4], [9.0, 0.6], [9.0, 0.1]],
        w_hh: array![[0.3], [0.5], [-0.2], [0.7]],
        b_ih: array![[0.1], [0.2], [-0.1], [0.0]],
        b_hh: array![[-0.05], [0.1], [0.05], [0.2]],
    };
    let p = tiny_output(CellKind::Lstm, layer);
    let state = State {
        h: vec![array![[0.5]]],
        c: vec![array![[-0.3]]],
    };
    let (x, y): (Ids, Ids) = (array![[Some(1)]], array![[Some(0)]]);
    let (loss, cache) = deep_forward(&p, x.view(), y.view(), &state, None);
    close(cache.last.c[0][[0, 0]], 0.09135677465377348, 1e-15, "c'");
    close(cache.last.h[0][[0, 0]], 0.05985592896567691, 1e-15, "h'");
    close(loss.total, 0.5460141616774628, 1e-15, "loss");
}

/// One step of a one-unit GRU (n_a = 1, vocabulary 2), input 1, h = 0.5.
///
/// Column 1 of W_ih is (0.3, −0.2, 0.5) for (r, z, n); W_hh = (0.4, 0.6, −0.7),
/// b_ih = (0.1, −0.1, 0.2), b_hh = (0.05, 0.15, −0.3):
///
/// ```text
/// gx = (0.4, −0.3, 0.7)    gh = W_hh·0.5 + b_hh = (0.25, 0.45, −0.65)
/// r  = σ(0.4 + 0.25) = 0.6570104626734988     z = σ(−0.3 + 0.45) = 0.5374298453437496
/// n  = tanh(0.7 + r·(−0.65)) = 0.2663613569437374     (b_hn inside the reset product)
/// h' = (1 − z)·n + z·0.5 = 0.39192573674778813
/// L  = ln(e^(1.5h'+0.1) + e^(−0.5h'−0.1)) − (1.5h'+0.1) = 0.3176303945865273
/// ```
#[test]
fn gru_step_worked_by_hand() {
    let layer = LayerParams {
        w_ih: array![[9.0, 0.3], [9.0, -0.2], [9.0, 0.5]],
        w_hh: array![[0.4], [0.6], [-0.7]],
        b_ih: array![[0.1], [-0.1], [0.2]],
        b_hh: array![[0.05], [0.15], [-0.3]],
    };
    let p = tiny_output(CellKind::Gru, layer);
    let state = State {
        h: vec![array![[0.5]]],
        c: vec![array![[0.0]]],
    };
    let (x, y): (Ids, Ids) = (array![[Some(1)]], array![[Some(0)]]);
    let (loss, cache) = deep_forward(&p, x.view(), y.view(), &state, None);
    close(cache.last.h[0][[0, 0]], 0.39192573674778813, 1e-15, "h'");
    close(loss.total, 0.3176303945865273, 1e-15, "loss");
    assert_eq!(cache.last.c[0][[0, 0]], 0.0, "a GRU has no cell state");
}

/// A random case: parameters with random biases, a random initial state, inputs whose
/// first step is sometimes "no input", and targets with some padding.
struct Case {
    params: DeepParams,
    x: Ids,
    y: Ids,
    state0: State,
}

fn random_case(rng: &mut ChaCha8Rng, shape: DeepShape, n_steps: usize, m: usize) -> Case {
    let params = DeepParams::init(shape, rng);
    let v = shape.n_x as u32;
    let x = Array2::from_shape_fn((n_steps, m), |(t, _)| {
        (t > 0 || rng.random_bool(0.5)).then(|| rng.random_range(0..v))
    });
    let y = Array2::from_shape_fn((n_steps, m), |_| {
        (!rng.random_bool(0.1)).then(|| rng.random_range(0..shape.n_y as u32))
    });
    let mut state0 = State::zeros(shape, m);
    for a in state0.h.iter_mut().chain(state0.c.iter_mut()) {
        a.mapv_inplace(|_| rng.random_range(-0.8..0.8));
    }
    if shape.cell != CellKind::Lstm {
        state0.c = State::zeros(shape, m).c;
    }
    Case {
        params,
        x,
        y,
        state0,
    }
}

fn random_shape(rng: &mut ChaCha8Rng, cell: CellKind, n_layers: usize) -> DeepShape {
    let v = rng.random_range(2..7);
    DeepShape {
        cell,
        n_x: v,
        n_a: rng.random_range(1..5),
        n_y: v,
        n_layers,
    }
}

/// The loss computed independently, one column at a time with scalar loops over PyTorch's
/// equations and explicit indices (row g·n_a + i of a weight is unit i of gate g), with
/// the dense one-hot input instead of the gather, and dropout applied to every layer's
/// output but the last.
fn scalar_loss(c: &Case, dropout: Option<&DropoutMasks>) -> f64 {
    let p = &c.params;
    let shape = p.shape();
    let (n_a, n_layers) = (shape.n_a, shape.n_layers);
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let mut total = 0.0;
    for j in 0..c.x.ncols() {
        let mut h: Vec<Vec<f64>> = (0..n_layers)
            .map(|k| (0..n_a).map(|i| c.state0.h[k][[i, j]]).collect())
            .collect();
        let mut cs: Vec<Vec<f64>> = (0..n_layers)
            .map(|k| (0..n_a).map(|i| c.state0.c[k][[i, j]]).collect())
            .collect();
        for t in 0..c.x.nrows() {
            let mut input = vec![0.0; shape.n_x];
            if let Some(id) = c.x[[t, j]] {
                input[id as usize] = 1.0;
            }
            for k in 0..n_layers {
                let l = &p.layers[k];
                let bias_hh = |r: usize| {
                    if l.b_hh.is_empty() {
                        0.0
                    } else {
                        l.b_hh[[r, 0]]
                    }
                };
                let gx = |g: usize, i: usize| {
                    let r = g * n_a + i;
                    (0..input.len())
                        .map(|q| l.w_ih[[r, q]] * input[q])
                        .sum::<f64>()
                        + l.b_ih[[r, 0]]
                };
                let gh = |g: usize, i: usize| {
                    let r = g * n_a + i;
                    (0..n_a).map(|q| l.w_hh[[r, q]] * h[k][q]).sum::<f64>() + bias_hh(r)
                };
                let mut new_h = vec![0.0; n_a];
                for i in 0..n_a {
                    new_h[i] = match p.cell {
                        CellKind::Rnn => (gx(0, i) + gh(0, i)).tanh(),
                        CellKind::Gru => {
                            let r = sig(gx(0, i) + gh(0, i));
                            let z = sig(gx(1, i) + gh(1, i));
                            let n = (gx(2, i) + r * gh(2, i)).tanh();
                            (1.0 - z) * n + z * h[k][i]
                        }
                        CellKind::Lstm => {
                            let ig = sig(gx(0, i) + gh(0, i));
                            let fg = sig(gx(1, i) + gh(1, i));
                            let gg = (gx(2, i) + gh(2, i)).tanh();
                            let og = sig(gx(3, i) + gh(3, i));
                            cs[k][i] = fg * cs[k][i] + ig * gg;
                            og * cs[k][i].tanh()
                        }
                    };
                }
                h[k] = new_h;
                input = h[k].clone();
                if let (Some(d), true) = (dropout, k + 1 < n_layers) {
                    for (i, v) in input.iter_mut().enumerate() {
                        *v *= d.masks[t][k][[i, j]];
                    }
                }
            }
            if let Some(target) = c.y[[t, j]] {
                let logits: Vec<f64> = (0..shape.n_y)
                    .map(|o| {
                        (0..n_a).map(|q| p.w_ya[[o, q]] * input[q]).sum::<f64>() + p.b_y[[o, 0]]
                    })
                    .collect();
                let log_sum = logits.iter().map(|v| v.exp()).sum::<f64>().ln();
                total += log_sum - logits[target as usize];
            }
        }
    }
    total
}

/// The vectorised stack agrees with the scalar loops for every cell, 1 to 3 layers, with
/// and without dropout: a transposed weight, a swapped gate, a misplaced bias or dropout
/// after the last layer would all disagree.
#[test]
fn stack_agrees_with_scalar_loops() {
    let mut rng = ChaCha8Rng::seed_from_u64(20);
    for cell in CellKind::ALL {
        for n_layers in 1..=3 {
            let shape = DeepShape {
                cell,
                n_x: 5,
                n_a: 3,
                n_y: 4,
                n_layers,
            };
            let c = random_case(&mut rng, shape, 4, 3);
            let masks = DropoutMasks::draw(0.4, shape, 4, 3, &mut rng);
            for dropout in [None, Some(&masks)] {
                let (loss, _) = deep_forward(&c.params, c.x.view(), c.y.view(), &c.state0, dropout);
                let want = scalar_loss(&c, dropout);
                close(loss.total, want, 1e-13, &format!("{cell:?} x{n_layers}"));
            }
        }
    }
}

/// Every cell, 1, 2 and 3 layers, random sizes (vocabulary 2–6, n_a 1–4, m 1–3, T 1–5),
/// with and without dropout (masks drawn once and held fixed): every gradient entry within
/// 1e-7 relative of the five-point central difference.
#[test]
fn gradient_check_every_cell_and_depth() {
    let mut worst = 0.0f64;
    for (c_idx, cell) in CellKind::ALL.into_iter().enumerate() {
        for n_layers in 1..=3 {
            for trial in 0..3u64 {
                let seed = 1000 + 100 * c_idx as u64 + 10 * n_layers as u64 + trial;
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let shape = random_shape(&mut rng, cell, n_layers);
                let (n_steps, m) = (rng.random_range(1..6), rng.random_range(1..4));
                let c = random_case(&mut rng, shape, n_steps, m);
                let masks =
                    (trial > 0).then(|| DropoutMasks::draw(0.3, shape, n_steps, m, &mut rng));
                let report = deep_gradient_check(
                    &c.params,
                    c.x.view(),
                    c.y.view(),
                    &c.state0,
                    masks.as_ref(),
                    DEEP_GRADCHECK_EPS,
                );
                let what = format!(
                    "{cell:?} x{n_layers} {shape:?} T={n_steps} m={m} dropout={}",
                    trial > 0
                );
                assert!(report.worst() < 1e-7, "{what}\n{report}");
                worst = worst.max(report.worst());
            }
        }
    }
    println!("worst relative error over all cases: {worst:.3e}");
}

/// dL/dh_0 and dL/dc_0 (what truncated backpropagation would carry between batches)
/// against central differences, for every cell in a two-layer stack with dropout.
#[test]
fn initial_state_gradients_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    for cell in CellKind::ALL {
        let shape = random_shape(&mut rng, cell, 2);
        let c = random_case(&mut rng, shape, 4, 2);
        let masks = DropoutMasks::draw(0.25, shape, 4, 2, &mut rng);
        let loss = |s: &State| {
            deep_forward(&c.params, c.x.view(), c.y.view(), s, Some(&masks))
                .0
                .total
        };
        let (_, cache) = deep_forward(&c.params, c.x.view(), c.y.view(), &c.state0, Some(&masks));
        let (_, d0) = deep_backward(&c.params, c.x.view(), c.y.view(), &cache);
        let eps = GRADCHECK_EPS;
        for (which, k, idx) in [
            (0, 0, (0, 0)),
            (0, 1, (0, 1)),
            (1, 0, (0, 1)),
            (1, 1, (0, 0)),
        ] {
            let at = |delta: f64| {
                let mut s = c.state0.clone();
                let arrays = if which == 0 { &mut s.h } else { &mut s.c };
                arrays[k][idx] += delta;
                loss(&s)
            };
            let numeric =
                (8.0 * (at(eps) - at(-eps)) - (at(2.0 * eps) - at(-2.0 * eps))) / (12.0 * eps);
            let analytic = if which == 0 {
                d0.h[k][idx]
            } else {
                d0.c[k][idx]
            };
            let rel = (analytic - numeric).abs() / (analytic.abs() + numeric.abs()).max(1e-8);
            assert!(
                rel < 1e-7,
                "{cell:?} state {which} layer {k}: {analytic} vs {numeric}"
            );
        }
        if cell != CellKind::Lstm {
            assert!(d0.c.iter().all(|a| a.iter().all(|&v| v == 0.0)));
        }
    }
}

/// The checker catches what it exists for: a sign flipped, a transposed matrix, two gate
/// blocks swapped, a missing term.
#[test]
fn wrong_gradients_are_caught() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let shape = DeepShape {
        cell: CellKind::Lstm,
        n_x: 4,
        n_a: 3,
        n_y: 4,
        n_layers: 2,
    };
    let c = random_case(&mut rng, shape, 3, 2);
    let (_, cache) = deep_forward(&c.params, c.x.view(), c.y.view(), &c.state0, None);
    let (good, _) = deep_backward(&c.params, c.x.view(), c.y.view(), &cache);
    let loss = |p: &DeepParams| {
        deep_forward(p, c.x.view(), c.y.view(), &c.state0, None)
            .0
            .total
    };

    let mut flipped = good.clone();
    flipped.layers[1].b_hh.mapv_inplace(|v| -v);
    let mut transposed = good.clone();
    transposed.layers[1].w_ih = {
        // The (4·3, 3) layout read as its transpose, reshaped back.
        let t = good.layers[1].w_ih.t().to_owned();
        Array2::from_shape_vec((12, 3), t.iter().copied().collect()).unwrap()
    };
    let mut swapped = good.clone();
    let (i_block, f_block) = (
        good.layers[0]
            .w_hh
            .slice_axis(ndarray::Axis(0), (0..3).into())
            .to_owned(),
        good.layers[0]
            .w_hh
            .slice_axis(ndarray::Axis(0), (3..6).into())
            .to_owned(),
    );
    swapped.layers[0]
        .w_hh
        .slice_axis_mut(ndarray::Axis(0), (0..3).into())
        .assign(&f_block);
    swapped.layers[0]
        .w_hh
        .slice_axis_mut(ndarray::Axis(0), (3..6).into())
        .assign(&i_block);
    let mut missing = good.clone();
    missing.layers[0].w_ih.fill(0.0);
    for (bad, name) in [
        (flipped, "b_hh_l1"),
        (transposed, "w_ih_l1"),
        (swapped, "w_hh_l0"),
        (missing, "w_ih_l0"),
    ] {
        let report = compare_deep_gradients(&c.params, &bad, DEEP_GRADCHECK_EPS, loss);
        let row = report.rows.iter().find(|r| r.name == name).unwrap();
        assert!(row.worst_rel_error > 1e-2, "{name} not caught:\n{report}");
    }
}

/// The one-layer vanilla stack is the post's network: same loss, same gradients, same
/// dL/da<0>, to rounding.
#[test]
fn one_vanilla_layer_is_the_post() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (n_steps, m) in [(1, 1), (6, 1), (5, 4)] {
        let mut p: Params = Params::init_with_std(6, 5, 6, 0.5, &mut rng);
        p.b_a.mapv_inplace(|_| rng.random_range(-0.5..0.5));
        p.b_y.mapv_inplace(|_| rng.random_range(-0.5..0.5));
        let x: Ids = Array2::from_shape_fn((n_steps, m), |(t, _)| {
            (t > 0).then(|| rng.random_range(0..6))
        });
        let y: Ids = Array2::from_shape_fn((n_steps, m), |_| Some(rng.random_range(0..6)));
        let a0 = Array2::from_shape_fn((5, m), |_| rng.random_range(-0.5..0.5));

        let (loss, cache) = rnn_forward(&p, x.view(), y.view(), a0.view());
        let (g, da0) = rnn_backward(&p, x.view(), y.view(), &cache);
        let deep = DeepParams::from_params(&p);
        let shape = deep.shape();
        let state0 = State {
            h: vec![a0.clone()],
            c: State::zeros(shape, m).c,
        };
        let (deep_loss, deep_cache) = deep_forward(&deep, x.view(), y.view(), &state0, None);
        let (dg, d0) = deep_backward(&deep, x.view(), y.view(), &deep_cache);

        close(deep_loss.total, loss.total, 1e-14, "loss");
        assert_eq!(deep_loss.n_targets, loss.n_targets);
        let pairs = [
            (&dg.layers[0].w_ih, &g.w_ax, "w_ax"),
            (&dg.layers[0].w_hh, &g.w_aa, "w_aa"),
            (&dg.layers[0].b_ih, &g.b_a, "b_a"),
            (&dg.w_ya, &g.w_ya, "w_ya"),
            (&dg.b_y, &g.b_y, "b_y"),
            (&d0.h[0], &da0, "da0"),
            (&deep_cache.last.h[0], &cache.a_last().to_owned(), "a<T>"),
        ];
        for (got, want, name) in pairs {
            assert_eq!(got.dim(), want.dim(), "{name}");
            for (a, b) in got.iter().zip(want.iter()) {
                close(*a, *b, 1e-14, name);
            }
        }
        assert!(dg.layers[0].b_hh.is_empty());
    }
}

fn dropout_shape(cell: CellKind) -> DeepShape {
    DeepShape {
        cell,
        n_x: 6,
        n_a: 8,
        n_y: 6,
        n_layers: 3,
    }
}

/// p = 0 drops nothing: the same loss and gradients, bit for bit, as no dropout.
#[test]
fn dropout_zero_changes_nothing() {
    for cell in CellKind::ALL {
        let shape = dropout_shape(cell);
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let c = random_case(&mut rng, shape, 5, 3);
        let masks = DropoutMasks::draw(0.0, shape, 5, 3, &mut rng);
        let run = |d: Option<&DropoutMasks>| {
            let (loss, cache) = deep_forward(&c.params, c.x.view(), c.y.view(), &c.state0, d);
            (
                loss,
                deep_backward(&c.params, c.x.view(), c.y.view(), &cache).0,
            )
        };
        assert_eq!(run(Some(&masks)), run(None), "{cell:?}");
    }
}

/// With p > 0, the same seed gives the same masks, loss and gradients; another seed
/// different ones; and the loss differs from evaluation (no dropout).
#[test]
fn dropout_is_seeded() {
    for cell in CellKind::ALL {
        let shape = dropout_shape(cell);
        let c = random_case(&mut ChaCha8Rng::seed_from_u64(9), shape, 5, 3);
        let run = |seed: u64| {
            let masks = DropoutMasks::draw(0.5, shape, 5, 3, &mut ChaCha8Rng::seed_from_u64(seed));
            let (loss, cache) =
                deep_forward(&c.params, c.x.view(), c.y.view(), &c.state0, Some(&masks));
            (
                loss,
                deep_backward(&c.params, c.x.view(), c.y.view(), &cache).0,
            )
        };
        let (eval, _) = deep_forward(&c.params, c.x.view(), c.y.view(), &c.state0, None);
        assert_eq!(run(1), run(1), "{cell:?}");
        assert_ne!(run(1).0, run(2).0, "{cell:?}");
        assert_ne!(run(1).0, eval, "{cell:?}");
    }
}

/// Evaluation and sampling ignore dropout: stepping with `deep_step` gives the logits of
/// the dropout-free forward pass, whatever masks a training pass drew before.
#[test]
fn evaluation_steps_match_the_forward_pass_without_dropout() {
    for cell in CellKind::ALL {
        let shape = dropout_shape(cell);
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        let c = random_case(&mut rng, shape, 4, 2);
        let masks = DropoutMasks::draw(0.5, shape, 4, 2, &mut rng);
        let _ = deep_forward(&c.params, c.x.view(), c.y.view(), &c.state0, Some(&masks));
        let (_, cache) = deep_forward(&c.params, c.x.view(), c.y.view(), &c.state0, None);
        let mut state = c.state0.clone();
        for t in 0..4 {
            let logits = deep_step(&c.params, &mut state, c.x.row(t));
            let e = logits.mapv(f64::exp);
            let y_hat = &e / &e.sum_axis(ndarray::Axis(0));
            for (a, b) in y_hat.iter().zip(cache.y_hat[t].iter()) {
                close(*a, *b, 1e-14, &format!("{cell:?} ŷ at t = {t}"));
            }
        }
        assert_eq!(state, cache.last);
    }
}

/// f32 runs the same code; it agrees with f64 to f32 precision.
#[test]
fn f32_agrees_with_f64() {
    for cell in CellKind::ALL {
        let shape = dropout_shape(cell);
        let c = random_case(&mut ChaCha8Rng::seed_from_u64(12), shape, 6, 2);
        let p32: DeepParams<f32> = DeepParams {
            cell,
            layers: c
                .params
                .layers
                .iter()
                .map(|l| LayerParams {
                    w_ih: l.w_ih.mapv(|v| v as f32),
                    w_hh: l.w_hh.mapv(|v| v as f32),
                    b_ih: l.b_ih.mapv(|v| v as f32),
                    b_hh: l.b_hh.mapv(|v| v as f32),
                })
                .collect(),
            w_ya: c.params.w_ya.mapv(|v| v as f32),
            b_y: c.params.b_y.mapv(|v| v as f32),
        };
        let s32 = State {
            h: c.state0.h.iter().map(|a| a.mapv(|v| v as f32)).collect(),
            c: c.state0.c.iter().map(|a| a.mapv(|v| v as f32)).collect(),
        };
        let (l64, _) = deep_forward(&c.params, c.x.view(), c.y.view(), &c.state0, None);
        let (l32, _) = deep_forward(&p32, c.x.view(), c.y.view(), &s32, None);
        close(l32.total, l64.total, 1e-5, &format!("{cell:?}"));
    }
}
