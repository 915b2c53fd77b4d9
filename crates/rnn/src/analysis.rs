//! Tools for looking inside the model: how gradients flow back through time, and a
//! recurrence of a chosen spectral radius to make them vanish or explode on purpose.

use ndarray::Array2;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::{Float, Grads, Params, TokenId, output_delta, rnn_forward, rnn_step_backward};

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
/// `‖∂L<T>/∂a<t>‖` for t = 1..=T, where `L<T>` is the loss of the last step alone: how
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
        // dL/da<t>: this step's output plus what flows back from step t + 1.
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

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
}
