//! Tools for looking inside the model: how gradients flow back through time, and a
//! recurrence of a chosen spectral radius to make them vanish or explode on purpose; for a
//! stack of any cell, the gates of a layer while it reads a text and the same gradient
//! norms through time.

use ndarray::Array2;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::{
    CellKind, DeepGrads, DeepParams, Float, Grads, Params, State, StepCache, TokenId,
    cell_step_backward, deep_forward, output_delta, rnn_forward, rnn_step_backward,
};

/// A random n × n orthogonal matrix (QᵀQ = I): Gram–Schmidt on the columns of a matrix of
/// standard normal draws, repeated once for accuracy.
///
/// Every eigenvalue of an orthogonal matrix has modulus 1, so `r · Q` has spectral radius
/// (and spectral norm) exactly `r`.
pub fn random_orthogonal<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Array2<f64> {
    let mut q: Array2<f64> = Array2::from_shape_fn((n, n), |_| StandardNormal.sample(rng));
    for j in 0..n {
        for _pass in 0..2 {
            for k in 0..j {
                let dot: f64 = q.column(j).dot(&q.column(k));
                let qk = q.column(k).to_owned();
                q.column_mut(j).scaled_add(-dot, &qk);
            }
        }
        let norm = q.column(j).dot(&q.column(j)).sqrt();
        q.column_mut(j).mapv_inplace(|v| v / norm);
    }
    q
}

/// A copy of `params` whose W_aa is `radius` times a random orthogonal matrix, so that its
/// spectral radius is exactly `radius`: below 1 gradients shrink as they flow back in
/// time, above 1 they can grow (until tanh saturates).
pub fn with_recurrent_radius<F: Float, R: Rng + ?Sized>(
    params: &Params<F>,
    radius: f64,
    rng: &mut R,
) -> Params<F> {
    let q = random_orthogonal(params.n_a(), rng);
    let mut p = params.clone();
    p.w_aa = q.mapv(|v| F::cast(radius * v));
    p
}

// ANCHOR: last_step_gradient_norms
/// `‖∂L⟨T⟩/∂a⟨t⟩‖` for t = 1..=T, where `L⟨T⟩` is the loss of the last step alone: how
/// much of one prediction's gradient reaches each earlier hidden state. For one sequence
/// (m = 1); `x` holds the inputs, `target` the id the last step should predict.
///
/// Only the last step has a target, so every other step's output adds nothing and the
/// norms show the product of Jacobians ∏ diag(1 − a²) W_aa alone.
pub fn last_step_gradient_norms<F: Float>(
    params: &Params<F>,
    x: &[Option<TokenId>],
    target: TokenId,
) -> Vec<f64> {
    let n_steps = x.len();
    let xs = Array2::from_shape_fn((n_steps, 1), |(t, _)| x[t]);
    let ys = Array2::from_shape_fn((n_steps, 1), |(t, _)| (t + 1 == n_steps).then_some(target));
    let (_, cache) = rnn_forward(
        params,
        xs.view(),
        ys.view(),
        Array2::zeros((params.n_a(), 1)).view(),
    );
    let mut grads = Grads::zeros(params.n_x(), params.n_a(), params.n_y());
    let mut da_next = Array2::zeros((params.n_a(), 1));
    let mut norms = vec![0.0; n_steps];
    for t in (0..n_steps).rev() {
        let dy = output_delta(cache.y_hat(t), ys.row(t));
        // dL/da⟨t⟩: this step's output plus what flows back from step t + 1.
        let da = params.w_ya.t().dot(&dy) + &da_next;
        norms[t] = da
            .iter()
            .map(|v| v.as_f64() * v.as_f64())
            .sum::<f64>()
            .sqrt();
        let (a, a_prev) = (cache.a(t), cache.a_prev(t));
        rnn_step_backward(
            dy.view(),
            &mut grads,
            &mut da_next,
            params,
            xs.row(t),
            a,
            a_prev,
        );
    }
    norms
}
// ANCHOR_END: last_step_gradient_norms

/// The names of the arrays [`gate_activations`] returns for a cell, in order:
///
/// | cell   | names                | values                                        |
/// |--------|----------------------|-----------------------------------------------|
/// | `Rnn`  | `h`                  | the activation h⟨t⟩ = a⟨t⟩ = tanh(…), in [−1, 1] |
/// | `Gru`  | `r`, `z`, `n`        | σ gates r, z in [0, 1]; the candidate n = tanh(…) |
/// | `Lstm` | `i`, `f`, `g`, `o`, `c` | σ gates i, f, o in [0, 1]; g = tanh(…); the cell state c (unbounded) |
pub fn gate_names(cell: CellKind) -> &'static [&'static str] {
    match cell {
        CellKind::Rnn => &["h"],
        CellKind::Gru => &["r", "z", "n"],
        CellKind::Lstm => &["i", "f", "g", "o", "c"],
    }
}

/// The arrays of one step's cache named by [`gate_names`], in the same order.
fn step_gates<F: Float>(step: &StepCache<F>) -> Vec<&Array2<F>> {
    match step {
        StepCache::Rnn(s) => vec![&s.h],
        StepCache::Gru(s) => vec![&s.r, &s.z, &s.n],
        StepCache::Lstm(s) => vec![&s.i, &s.f, &s.g, &s.o, &s.c],
    }
}

/// The gates of layer `layer` while the stack reads `x` (one column, zero initial state,
/// no dropout), read from the step caches of [`deep_forward`]: one named (n_a, T) array
/// per gate, column t − 1 holding step t ([`gate_names`] lists them per cell).
///
/// # Shapes
///
/// `x`: T ids → [`gate_names`]`(cell).len()` arrays of (n_a, T).
///
/// # Panics
///
/// If `layer` is not below the number of layers (callers check user input first).
pub fn gate_activations<F: Float>(
    params: &DeepParams<F>,
    x: &[Option<TokenId>],
    layer: usize,
) -> Vec<(String, Array2<f64>)> {
    let n_layers = params.layers.len();
    assert!(
        layer < n_layers,
        "layer {layer} of a {n_layers}-layer stack"
    );
    let n_steps = x.len();
    let xs = Array2::from_shape_fn((n_steps, 1), |(t, _)| x[t]);
    let ys = Array2::from_elem((n_steps, 1), None);
    let state0 = State::zeros(params.shape(), 1);
    let (_, cache) = deep_forward(params, xs.view(), ys.view(), &state0, None);
    let mut gates: Vec<(String, Array2<f64>)> = gate_names(params.cell)
        .iter()
        .map(|name| (name.to_string(), Array2::zeros((params.n_a(), n_steps))))
        .collect();
    for (t, steps) in cache.steps.iter().enumerate() {
        for ((_, values), gate) in gates.iter_mut().zip(step_gates(&steps[layer])) {
            values.column_mut(t).assign(&gate.column(0).mapv(F::as_f64)); // (n_a)
        }
    }
    gates
}

/// `‖∂L⟨T⟩/∂h_top⟨t⟩‖` for t = 1..=T: the stack's counterpart of
/// [`last_step_gradient_norms`], for any cell and depth. `L⟨T⟩` is the loss of the last
/// step alone, and `h_top⟨t⟩` the hidden state of the top layer (the one W_ya reads), so
/// every cell is measured on the same quantity; for the LSTM this is the gradient with
/// respect to h, which also carries what reaches it through the cell state c. One column,
/// zero initial state, no dropout.
///
/// The loop is [`deep_backward`](crate::deep_backward)'s, without dropout, keeping the top
/// layer's dL/dh at each step.
pub fn deep_last_step_gradient_norms<F: Float>(
    params: &DeepParams<F>,
    x: &[Option<TokenId>],
    target: TokenId,
) -> Vec<f64> {
    let n_steps = x.len();
    let xs = Array2::from_shape_fn((n_steps, 1), |(t, _)| x[t]);
    let ys = Array2::from_shape_fn((n_steps, 1), |(t, _)| (t + 1 == n_steps).then_some(target));
    let state0 = State::zeros(params.shape(), 1);
    let (_, cache) = deep_forward(params, xs.view(), ys.view(), &state0, None);
    let top = params.layers.len() - 1;
    let mut grads = DeepGrads::zeros(params.shape());
    let mut d_next = State::zeros(params.shape(), 1);
    let mut norms = vec![0.0; n_steps];
    for t in (0..n_steps).rev() {
        let dy = output_delta(cache.y_hat[t].view(), ys.row(t)); //       (n_y, 1)
        let mut dh_above = params.w_ya.t().dot(&dy); //                  (n_a, 1)
        for k in (0..=top).rev() {
            // dL/dh_k⟨t⟩: from the output or the layer above, plus from step t + 1.
            let dh = &dh_above + &d_next.h[k]; //                        (n_a, 1)
            if k == top {
                norms[t] = dh.iter().map(|v| v.as_f64().powi(2)).sum::<f64>().sqrt();
            }
            let (dh_prev, dx) = cell_step_backward(
                dh.view(),
                &mut d_next.c[k],
                &mut grads.layers[k],
                &params.layers[k],
                cache.input(xs.row(t), t, k),
                &cache.steps[t][k],
            );
            d_next.h[k] = dh_prev;
            if let Some(dx) = dx {
                dh_above = dx;
            }
        }
    }
    norms
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Axis, Slice};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    type Ids = Array2<Option<TokenId>>;

    #[test]
    fn orthogonal_is_orthogonal() {
        let q = random_orthogonal(20, &mut ChaCha8Rng::seed_from_u64(0));
        let eye = q.t().dot(&q);
        for ((i, j), v) in eye.indexed_iter() {
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((v - want).abs() < 1e-12, "({i},{j}) = {v}");
        }
    }

    #[test]
    fn small_radius_vanishes_and_large_radius_grows() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        // Tiny input weights keep the state small and tanh in its linear range even after
        // 30 steps of growth by 1.5, so the Jacobian is ≈ W_aa.
        let base: Params = Params::init_with_std(5, 32, 5, 1e-7, &mut rng);
        let x: Vec<Option<TokenId>> = (0..30).map(|t| (t > 0).then_some(t % 5)).collect();
        let small = last_step_gradient_norms(&with_recurrent_radius(&base, 0.5, &mut rng), &x, 1);
        let large = last_step_gradient_norms(&with_recurrent_radius(&base, 1.5, &mut rng), &x, 1);
        assert_eq!(small.len(), 30);
        // 20 steps back: about 0.5^20 ≈ 1e-6 of the last step's norm, and 1.5^20 ≈ 3e3.
        let ratio_small = small[9] / small[29];
        let ratio_large = large[9] / large[29];
        assert!(ratio_small < 1e-5, "{ratio_small}");
        assert!(ratio_large > 1e3, "{ratio_large}");
        assert!(last_step_gradient_norms(&base, &[], 1).is_empty());
    }

    fn ids(n: usize, vocab: TokenId) -> Vec<Option<TokenId>> {
        (0..n as TokenId)
            .map(|t| (t > 0).then_some((t * 3 + 1) % vocab))
            .collect()
    }

    #[test]
    fn one_vanilla_layer_gives_the_posts_norms() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let p: Params = Params::init_with_std(6, 8, 6, 0.5, &mut rng);
        let x = ids(15, 6);
        let want = last_step_gradient_norms(&p, &x, 4);
        let got = deep_last_step_gradient_norms(&DeepParams::from_params(&p), &x, 4);
        assert_eq!(got.len(), want.len());
        for (t, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-12 * w.max(1e-300),
                "t = {t}: {g} vs {w}"
            );
        }
        assert!(want[0] > 0.0 && want[0] < want[14], "{want:?}");
    }

    /// Central differences of L⟨T⟩ with respect to each unit of h_top⟨t⟩, holding every
    /// other state at step t fixed: run to step t, nudge the top layer's h, run on.
    fn finite_difference_norm(
        p: &DeepParams,
        x: &[Option<TokenId>],
        target: TokenId,
        t: usize,
    ) -> f64 {
        let n = x.len();
        let xs = Array2::from_shape_fn((n, 1), |(s, _)| x[s]);
        let ys = Array2::from_shape_fn((n, 1), |(s, _)| (s + 1 == n).then_some(target));
        let none = Array2::from_elem((t + 1, 1), None);
        let state0 = State::zeros(p.shape(), 1);
        let (_, head) = deep_forward(
            p,
            xs.slice_axis(Axis(0), Slice::from(..=t)),
            none.view(),
            &state0,
            None,
        );
        let top = p.layers.len() - 1;
        let eps = 1e-5;
        let mut sum = 0.0;
        for i in 0..p.n_a() {
            let loss = |delta: f64| {
                let mut state = head.last.clone();
                state.h[top][[i, 0]] += delta;
                let rest = |a: &Ids| a.slice_axis(Axis(0), Slice::from(t + 1..)).to_owned();
                deep_forward(p, rest(&xs).view(), rest(&ys).view(), &state, None)
                    .0
                    .total
            };
            let g = (loss(eps) - loss(-eps)) / (2.0 * eps);
            sum += g * g;
        }
        sum.sqrt()
    }

    #[test]
    fn gated_norms_match_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let x = ids(12, 7);
        for (cell, n_layers) in [(CellKind::Gru, 2), (CellKind::Lstm, 2), (CellKind::Lstm, 1)] {
            let shape = crate::DeepShape {
                cell,
                n_x: 7,
                n_a: 5,
                n_y: 7,
                n_layers,
            };
            let p: DeepParams = DeepParams::init(shape, &mut rng);
            let norms = deep_last_step_gradient_norms(&p, &x, 2);
            assert_eq!(norms.len(), 12);
            for t in [0, 5, 10] {
                let fd = finite_difference_norm(&p, &x, 2, t);
                assert!(
                    (norms[t] - fd).abs() <= 1e-7 * fd,
                    "{cell:?} x {n_layers}, t = {}: {} vs {fd}",
                    t + 1,
                    norms[t]
                );
            }
        }
    }

    #[test]
    fn gates_are_read_from_the_step_caches() {
        use crate::sigmoid;
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let x = ids(9, 6);
        let xs = Array2::from_shape_fn((9, 1), |(t, _)| x[t]);
        let ys = Array2::from_elem((9, 1), None);
        for cell in CellKind::ALL {
            let shape = crate::DeepShape {
                cell,
                n_x: 6,
                n_a: 4,
                n_y: 6,
                n_layers: 2,
            };
            let p: DeepParams = DeepParams::init(shape, &mut rng);
            let (_, cache) = deep_forward(&p, xs.view(), ys.view(), &State::zeros(shape, 1), None);
            for layer in 0..2 {
                let gates = gate_activations(&p, &x, layer);
                let names: Vec<&str> = gates.iter().map(|(n, _)| n.as_str()).collect();
                assert_eq!(names, gate_names(cell));
                for (g, (name, values)) in gates.iter().enumerate() {
                    assert_eq!(values.dim(), (4, 9), "{name}");
                    for t in 0..9 {
                        let want = step_gates(&cache.steps[t][layer])[g];
                        assert_eq!(values.column(t), want.column(0), "{name} at t = {t}");
                    }
                }
            }
            // Step 1 of layer 0 reads no input from the zero state: each gate is its
            // nonlinearity of the two biases alone, in PyTorch's gate order.
            let gates = gate_activations(&p, &x, 0);
            let b = |k: usize, i: usize| {
                let l = &p.layers[0];
                l.b_ih[[k * 4 + i, 0]] + l.b_hh.get([k * 4 + i, 0]).copied().unwrap_or(0.0)
            };
            let at = |g: usize, i: usize| gates[g].1[[i, 0]];
            for i in 0..4 {
                let close = |got: f64, want: f64| assert!((got - want).abs() < 1e-15, "{cell:?}");
                match cell {
                    CellKind::Rnn => close(at(0, i), b(0, i).tanh()),
                    CellKind::Gru => {
                        close(at(0, i), sigmoid(b(0, i)));
                        close(at(1, i), sigmoid(b(1, i)));
                        let n =
                            p.layers[0].b_ih[[8 + i, 0]] + at(0, i) * p.layers[0].b_hh[[8 + i, 0]];
                        close(at(2, i), n.tanh());
                    }
                    CellKind::Lstm => {
                        close(at(0, i), sigmoid(b(0, i)));
                        close(at(1, i), sigmoid(b(1, i)));
                        close(at(2, i), b(2, i).tanh());
                        close(at(3, i), sigmoid(b(3, i)));
                        close(at(4, i), at(0, i) * at(2, i));
                    }
                }
            }
        }
        let one = DeepParams::<f64>::init(
            crate::DeepShape {
                cell: CellKind::Gru,
                n_x: 6,
                n_a: 4,
                n_y: 6,
                n_layers: 1,
            },
            &mut rng,
        );
        let empty = gate_activations(&one, &[], 0);
        assert!(empty.iter().all(|(_, v)| v.dim() == (4, 0)));
        assert!(deep_last_step_gradient_norms(&one, &[], 1).is_empty());
    }
}
