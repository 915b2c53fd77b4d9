//! The element-wise loops of the hot paths, written once as plain Rust over slices:
//! `kernels` compiles each for every instruction-set tier (`simd_fn!`), and the modules
//! that use them call those compiled forms. They depend on nothing but [`Float`], so that
//! the kernels and their callers form no cycle.

use crate::{Float, TokenId};

// From the arithmetic of `forward`.
/// a ← tanh(a + w_x + b_a) in one pass, w_x being the gathered column of W_ax (or nothing
/// for no input).
#[inline(always)]
pub(crate) fn input_bias_tanh<F: Float>(a: &mut [F], w_x: Option<&[F]>, b_a: &[F]) {
    match w_x {
        Some(w) => {
            for ((a, &w), &b) in a.iter_mut().zip(w).zip(b_a) {
                *a = (*a + w + b).fast_tanh();
            }
        }
        None => {
            for (a, &b) in a.iter_mut().zip(b_a) {
                *a = (*a + b).fast_tanh();
            }
        }
    }
}

/// z ← z + b_y − max(z + b_y) for one column. Returns z[target] after the shift.
#[inline(always)]
pub(crate) fn shift_logits<F: Float>(
    z: &mut [F],
    b_y: &[F],
    target: Option<TokenId>,
) -> Option<f64> {
    for (z, &b) in z.iter_mut().zip(b_y) {
        *z += b;
    }
    let max = lanes(z, F::neg_infinity(), F::max);
    for v in z.iter_mut() {
        *v -= max;
    }
    target.map(|id| z[id as usize].as_f64())
}

/// e ← e / Σ e for one column. Returns the sum.
#[inline(always)]
pub(crate) fn normalize<F: Float>(e: &mut [F]) -> f64 {
    let sum = lanes(e, F::zero(), |s, v| s + v);
    let inv = sum.recip();
    for v in e.iter_mut() {
        *v *= inv;
    }
    sum.as_f64()
}

/// z ← e^z.
#[inline(always)]
pub(crate) fn exp_in_place<F: Float>(z: &mut [F]) {
    for v in z.iter_mut() {
        *v = v.fast_exp();
    }
}

/// Folds `s` with `op` in eight independent lanes, then folds the lanes: a reduction the
/// compiler can vectorize (a single running value is a chain it must keep in order).
#[inline(always)]
pub(crate) fn lanes<F: Float>(s: &[F], init: F, op: impl Fn(F, F) -> F) -> F {
    let mut acc = [init; 8];
    let chunks = s.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = op(*a, v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(tail) {
        *a = op(*a, v);
    }
    acc.into_iter().fold(init, op)
}

// From the arithmetic of `backward`.
/// da ← da + da_next, then da_raw = (1 − a²) ⊙ da: the gradient through tanh, whose
/// derivative at the pre-activation is 1 − tanh² = 1 − a². All four are the same shape.
#[inline(always)]
pub(crate) fn through_tanh<F: Float>(da: &mut [F], da_raw: &mut [F], da_next: &[F], a: &[F]) {
    for (((da, dr), &dn), &a) in da.iter_mut().zip(da_raw).zip(da_next).zip(a) {
        *da += dn;
        *dr = (F::one() - a * a) * *da;
    }
}

/// dst ← dst + src, element by element.
#[inline(always)]
pub(crate) fn add_slice<F: Float>(dst: &mut [F], src: &[F]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

// From the arithmetic of `norms`.
/// Σ s², accumulated in `f64` in eight independent sums.
#[inline(always)]
pub(crate) fn sum_of_squares_slice<F: Float>(s: &[F]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = s.chunks_exact(8);
    let tail: f64 = chunks
        .remainder()
        .iter()
        .map(|&v| v.as_f64() * v.as_f64())
        .sum();
    for c in chunks {
        for (acc, &v) in acc.iter_mut().zip(c) {
            let v = v.as_f64();
            *acc += v * v;
        }
    }
    acc.iter().sum::<f64>() + tail
}

// From the arithmetic of `clip`.
/// Clamps every entry of `s` to [−c, c] and returns Σ s² from before, in `f64`, in the
/// same pass.
#[inline(always)]
pub(crate) fn clamp_with_norm<F: Float>(s: &mut [F], c: F) -> f64 {
    let sum_sq = sum_of_squares_slice(s);
    for v in s.iter_mut() {
        *v = v.max(-c).min(c);
    }
    sum_sq
}

/// Element-wise clipping to [−c, c] and the SGD step in one pass, in place:
/// p ← p − lr·clamp(g, −c, c), one fused multiply-add as in the optimizer. Returns Σ g² of
/// the unclipped gradients, summed in the same order as
/// [`sum_of_squares_slice`](sum_of_squares_slice) (so the same bits).
#[inline(always)]
pub(crate) fn clip_value_sgd<F: Float>(p: &mut [F], g: &[F], c: F, lr: F) -> f64 {
    let mut sq = [0.0f64; 8];
    let n_full = p.len() - p.len() % 8;
    let (p_full, p_tail) = p.split_at_mut(n_full);
    let (g_full, g_tail) = g.split_at(n_full);
    for (p8, g8) in p_full.chunks_exact_mut(8).zip(g_full.chunks_exact(8)) {
        for ((sq, p), &g) in sq.iter_mut().zip(p8).zip(g8) {
            *sq += g.as_f64() * g.as_f64();
            *p = (-lr).mul_add(g.max(-c).min(c), *p);
        }
    }
    let tail: f64 = g_tail.iter().map(|&v| v.as_f64() * v.as_f64()).sum();
    for (p, &g) in p_tail.iter_mut().zip(g_tail) {
        *p = (-lr).mul_add(g.max(-c).min(c), *p);
    }
    sq.iter().sum::<f64>() + tail
}

/// s ← by · s.
#[inline(always)]
pub(crate) fn scale<F: Float>(s: &mut [F], by: F) {
    for v in s.iter_mut() {
        *v *= by;
    }
}

// From the arithmetic of `optim`.
/// SGD for one entry: θ ← θ − lr·g, as one fused multiply-add (one rounding). Returns
/// whether θ is still finite.
#[inline(always)]
pub(crate) fn sgd_one<F: Float>(p: &mut F, g: F, lr: F) -> bool {
    *p = (-lr).mul_add(g, *p);
    p.is_finite()
}

/// Adagrad for one entry: G ← G + g²; θ ← θ − lr·g / √(G + eps).
#[inline(always)]
pub(crate) fn adagrad_one<F: Float>(p: &mut F, g: F, h: &mut F, lr: F, eps: F) -> bool {
    *h += g * g;
    *p -= lr * g / (*h + eps).sqrt();
    p.is_finite()
}

/// Adam's hyperparameters for one update, with the bias corrections of step t folded in:
/// `step` = lr·√(1−β₂ᵗ)/(1−β₁ᵗ) and `eps_hat` = eps·√(1−β₂ᵗ).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdamStep<F> {
    pub(crate) step: F,
    pub(crate) eps_hat: F,
    pub(crate) beta1: F,
    pub(crate) beta2: F,
}

/// Adam for one entry: m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
/// θ ← θ − lr·m̂ / (√v̂ + eps), with m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ).
#[inline(always)]
pub(crate) fn adam_one<F: Float>(p: &mut F, g: F, m: &mut F, v: &mut F, h: AdamStep<F>) -> bool {
    *m = h.beta1 * *m + (F::one() - h.beta1) * g;
    *v = h.beta2 * *v + (F::one() - h.beta2) * g * g;
    *p -= h.step * *m / (v.sqrt() + h.eps_hat);
    p.is_finite()
}

#[inline(always)]
pub(crate) fn sgd_slice<F: Float>(p: &mut [F], g: &[F], lr: F) -> bool {
    let mut finite = true;
    for (p, &g) in p.iter_mut().zip(g) {
        finite &= sgd_one(p, g, lr);
    }
    finite
}

#[inline(always)]
pub(crate) fn adagrad_slice<F: Float>(p: &mut [F], g: &[F], h: &mut [F], lr: F, eps: F) -> bool {
    let mut finite = true;
    for ((p, &g), h) in p.iter_mut().zip(g).zip(h) {
        finite &= adagrad_one(p, g, h, lr, eps);
    }
    finite
}

#[inline(always)]
pub(crate) fn adam_slice<F: Float>(
    p: &mut [F],
    g: &[F],
    m: &mut [F],
    v: &mut [F],
    h: AdamStep<F>,
) -> bool {
    let mut finite = true;
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
        finite &= adam_one(p, g, m, v, h);
    }
    finite
}
