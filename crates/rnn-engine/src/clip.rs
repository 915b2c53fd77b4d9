//! The clipping of [`rnn::Clip`], vectorized, and the fused clip-and-SGD pass.

use crate::kernels::{simd_clamp_with_norm, simd_scale};
use crate::norms::{global_norm, sum_of_squares};
use crate::{Float, Grads};
use rnn::Clip;

/// Clips `grads` in place as `clip` says and returns their global L2 norm before
/// clipping, as [`rnn::Clip::apply`] does, with the vectorized loops of
/// the engine's kernels.
pub fn apply_clip<F: Float>(clip: Clip, grads: &mut Grads<F>) -> f64 {
    match clip {
        Clip::None => global_norm(grads),
        Clip::Value(c) => clip_value_with_norm(grads, c),
        Clip::Norm(max) => clip_norm(grads, max),
    }
}

/// Element-wise clipping to [−c, c], returning the global L2 norm before clipping, measured array by array
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

/// Clipping by global norm, with PyTorch `clip_grad_norm_` semantics: all gradients are
/// multiplied by `min(1, max / (norm + 1e-6))`, where `norm` is the L2 norm over all of
/// them. Returns `norm`, measured before clipping.
fn clip_norm<F: Float>(grads: &mut Grads<F>, max: f64) -> f64 {
    let norm = global_norm(grads);
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
        let norm = apply_clip(Clip::Value(5.0), &mut g);
        assert_eq!(g.w_ax, array![[3.0, -5.0]]);
        assert_eq!(g.w_aa, array![[4.0]]);
        assert_eq!(g.w_ya, array![[0.5], [-5.0]]);
        // Norm reported before clipping: sqrt(9 + 144 + 16 + 0.25 + 49).
        assert!((norm - 218.25f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn norm_clipping_scales_everything_by_one_factor() {
        let mut g = grads();
        let before = global_norm(&g);
        let norm = apply_clip(Clip::Norm(1.0), &mut g);
        assert_eq!(norm, before);
        let scale = 1.0 / (before + 1e-6);
        assert!((g.w_ax[[0, 1]] - (-12.0 * scale)).abs() < 1e-15);
        assert!((global_norm(&g) - before * scale).abs() < 1e-12);
        // Below the limit nothing changes.
        let mut small = grads();
        apply_clip(Clip::Norm(1000.0), &mut small);
        assert_eq!(small, grads());
    }
}
