//! Gradient clipping, applied after backpropagation and before the update.

use serde::{Deserialize, Serialize};

use crate::kernels::{simd_clamp_with_norm, simd_scale};
use crate::params::{sum_of_squares, sum_of_squares_slice};
use crate::{Float, Grads};

/// How to clip gradients before an update.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "max")]
pub enum Clip {
    /// No clipping.
    None,
    /// Element-wise to [−c, c], the classic recipe (c = 5).
    Value(f64),
    /// Scale all gradients together so that their global L2 norm is at most `max`
    /// (PyTorch's `clip_grad_norm_`).
    Norm(f64),
}

impl Clip {
    /// Clips `grads` in place and returns their global L2 norm before clipping.
    pub fn apply<F: Float>(&self, grads: &mut Grads<F>) -> f64 {
        match *self {
            Clip::None => grads.global_norm(),
            Clip::Value(c) => clip_value_with_norm(grads, c),
            Clip::Norm(max) => clip_norm(grads, max),
        }
    }
}

// ANCHOR: clip_value
/// Element-wise clipping: every entry of every gradient is limited to [−c, c].
pub fn clip_value<F: Float>(grads: &mut Grads<F>, c: f64) {
    clip_value_with_norm(grads, c);
}

/// [`clip_value`], returning the global L2 norm before clipping, measured array by array
/// while each is in cache.
fn clip_value_with_norm<F: Float>(grads: &mut Grads<F>, c: f64) -> f64 {
    let c = F::cast(c);
    let mut sum_sq = 0.0;
    for (_, g) in grads.arrays_mut() {
        match g.as_slice_memory_order_mut() {
            Some(s) => sum_sq += simd_clamp_with_norm(s, c),
            None => {
                sum_sq += sum_of_squares(g);
                g.mapv_inplace(|v| v.max(-c).min(c));
            }
        }
    }
    sum_sq.sqrt()
}

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
// ANCHOR_END: clip_value

// ANCHOR: clip_norm
/// Clipping by global norm, with PyTorch `clip_grad_norm_` semantics: all gradients are
/// multiplied by `min(1, max / (norm + 1e-6))`, where `norm` is the L2 norm over all of
/// them. Returns `norm`, measured before clipping.
pub fn clip_norm<F: Float>(grads: &mut Grads<F>, max: f64) -> f64 {
    let norm = grads.global_norm();
    let scale = (max / (norm + 1e-6)).min(1.0);
    if scale < 1.0 {
        let s = F::cast(scale);
        for (_, g) in grads.arrays_mut() {
            match g.as_slice_memory_order_mut() {
                Some(g) => simd_scale(g, s),
                None => g.mapv_inplace(|v| v * s),
            }
        }
    }
    norm
}

/// Element-wise clipping to [−c, c] and the SGD step in one pass, in place:
/// p ← p − lr·clamp(g, −c, c), one fused multiply-add as in the optimizer. Returns Σ g² of
/// the unclipped gradients, summed in the same order as
/// [`sum_of_squares_slice`](crate::params::sum_of_squares_slice) (so the same bits).
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
// ANCHOR_END: clip_norm

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn grads() -> Grads {
        let mut g = Grads::zeros(2, 1, 2);
        g.w_ax = array![[3.0, -12.0]];
        g.w_aa = array![[4.0]];
        g.w_ya = array![[0.5], [-7.0]];
        g.b_y = array![[0.0], [0.0]];
        g
    }

    #[test]
    fn value_clipping_limits_each_entry() {
        let mut g = grads();
        let norm = Clip::Value(5.0).apply(&mut g);
        assert_eq!(g.w_ax, array![[3.0, -5.0]]);
        assert_eq!(g.w_aa, array![[4.0]]);
        assert_eq!(g.w_ya, array![[0.5], [-5.0]]);
        // Norm reported before clipping: sqrt(9 + 144 + 16 + 0.25 + 49).
        assert!((norm - 218.25f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn norm_clipping_scales_everything_by_one_factor() {
        let mut g = grads();
        let before = g.global_norm();
        let norm = Clip::Norm(1.0).apply(&mut g);
        assert_eq!(norm, before);
        let scale = 1.0 / (before + 1e-6);
        assert!((g.w_ax[[0, 1]] - (-12.0 * scale)).abs() < 1e-15);
        assert!((g.global_norm() - before * scale).abs() < 1e-12);
        // Below the limit nothing changes.
        let mut small = grads();
        Clip::Norm(1000.0).apply(&mut small);
        assert_eq!(small, grads());
    }
}
