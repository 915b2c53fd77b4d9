//! The guards of a training step: bounds that prove a step cannot make the parameters or
//! the gradient norm non-finite, so that the fused paths may skip the copy and the checks
//! of the general one, and the report a step returns.

use crate::kernels::simd_sum_of_squares;
use crate::{Bptt, Cache, Float, Loss, Params};

/// The loss and the gradient norm (before clipping) of a step.
#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    /// The loss of the step's forward pass, before the update.
    pub loss: Loss,
    /// The global L2 norm of the gradients before clipping.
    pub grad_norm: f64,
}

/// The bound on every |θ| after a clipped SGD step ([`step_bound`] of `max_abs`, which
/// is measured first if unknown), or `None` when it is not finite and the in-place update
/// could overflow.
pub(crate) fn parameter_bound<F: Float>(
    params: &Params<F>,
    max_abs: &mut Option<F>,
    c: f64,
    lr: f64,
) -> Option<F> {
    let max_abs = *max_abs.get_or_insert_with(|| {
        let all = params.arrays().into_iter().flat_map(|(_, p)| p.iter());
        all.fold(F::zero(), |m, &v| m.max(v.abs()))
    });
    // Every new |θ| is at most this, rounding included (see `clip_value_sgd_fused`).
    Some(step_bound(max_abs, F::cast(c), F::cast(lr))).filter(|b| b.is_finite())
}

/// A bound on |θ − lr·clamp(g, −c, c)| for every |θ| ≤ `max_abs`, rounding included: the
/// exact value is at most `max_abs` + lr·c, and lr·c exceeds its computed value by a factor
/// of at most 1 + ε, so (`max_abs` + lr·c)(1 + 4ε), computed, is an upper bound of it, and
/// rounding the update to the nearest float cannot exceed a float bound.
pub(crate) fn step_bound<F: Float>(max_abs: F, c: F, lr: F) -> F {
    (max_abs + (lr * c).abs()) * (F::one() + F::cast(4.0) * F::epsilon())
}

/// Whether every gradient entry, and the sum of their squares, is surely finite, judged
/// from what the gradient products read (with a finite loss, which the caller checked):
///
/// - dy = ŷ − y has entries in [−1, 1]: a finite loss means a finite softmax;
/// - the activations a⟨t⟩ are tanh values in [−1, 1], and a⟨0⟩ is bounded by A = max(1,
///   Σ|a⟨0⟩|);
/// - each entry of dW_aa, dW_ax and db_a is a sum over steps of da_raw entries times
///   activations or ones, so at most S·A with S = Σ|da_raw|; each entry of dW_ya and db_y
///   is at most T·m·A.
///
/// With G = 2·max(S, T·m)·A (the 2 covers rounding) every entry is at most G, and the
/// sum of the N squares at most N·G². S and A are bounded from above by √(n Σ v²), which
/// a NaN or ∞ anywhere in da_raw or a⟨0⟩ makes non-finite, failing the test as it should.
/// Costs one vectorized pass over da_raw (T·m·n_a values).
pub(crate) fn gradients_are_bounded<F: Float>(
    cache: &Cache<F>,
    bptt: &Bptt<F>,
    n_params: usize,
) -> bool {
    // Σ|v| ≤ √(n Σ v²) (Cauchy–Schwarz), through the vectorized sum of squares; an
    // overflow there only makes the bound fail.
    let abs_sum = |v: ndarray::ArrayView2<'_, F>| match v.as_slice_memory_order() {
        Some(s) => (s.len() as f64 * simd_sum_of_squares(s)).sqrt(),
        None => v.iter().map(|x| x.as_f64().abs()).sum::<f64>(),
    };
    let (s, a0) = (abs_sum(bptt.da_raw_all()), abs_sum(cache.a0()));
    let steps = cache.n_steps() * cache.batch();
    bounds_are_finite(s, a0, steps, n_params)
}

/// The test of [`gradients_are_bounded`] from upper bounds `s` of Σ|da_raw| and `a0` of
/// Σ|a⟨0⟩| (NaN or ∞ when unknown), over `steps` columns.
pub(crate) fn bounds_are_finite(s: f64, a0: f64, steps: usize, n_params: usize) -> bool {
    // (`max` would drop a NaN, hence the explicit test.)
    if !(s.is_finite() && a0.is_finite()) {
        return false;
    }
    let g = 2.0 * s.max(steps as f64) * a0.max(1.0);
    (2.0 * n_params as f64 * g * g).is_finite()
}
