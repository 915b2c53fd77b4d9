//! Gradient clipping, applied after backpropagation and before the update.

use serde::{Deserialize, Serialize};

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
            Clip::Value(c) => {
                let norm = grads.global_norm();
                clip_value(grads, c);
                norm
            }
            Clip::Norm(max) => clip_norm(grads, max),
        }
    }
}

// ANCHOR: clip_value
/// Element-wise clipping: every entry of every gradient is limited to [−c, c].
pub fn clip_value<F: Float>(grads: &mut Grads<F>, c: f64) {
    let c = F::cast(c);
    for (_, g) in grads.arrays_mut() {
        g.mapv_inplace(|v| v.max(-c).min(c));
    }
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
            g.mapv_inplace(|v| v * s);
        }
    }
    norm
}
// ANCHOR_END: clip_norm

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Params;
    use ndarray::array;

    fn grads() -> Grads {
        let mut g: Grads = Params::zeros(2, 1, 2);
        g.w_ax = array![[3.0, -12.0]];
        g.b_y = array![[4.0], [0.5]];
        g
    }

    #[test]
    fn value_clamps_each_entry() {
        let mut g = grads();
        let norm = Clip::Value(5.0).apply(&mut g);
        assert_eq!(g.w_ax, array![[3.0, -5.0]]);
        assert_eq!(g.b_y, array![[4.0], [0.5]]);
        assert!((norm - (9.0f64 + 144.0 + 16.0 + 0.25).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn norm_scales_everything_together() {
        let mut g = grads();
        let before = g.global_norm();
        let norm = clip_norm(&mut g, 1.0);
        assert_eq!(norm, before);
        assert!((g.global_norm() - 1.0).abs() < 1e-6);
        // The direction is kept: the ratio of two entries is unchanged.
        assert!((g.w_ax[[0, 1]] / g.w_ax[[0, 0]] + 4.0).abs() < 1e-12);
        let mut small = grads();
        clip_norm(&mut small, 100.0);
        assert_eq!(small, grads());
    }
}
