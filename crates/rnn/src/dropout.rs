//! Dropout between stacked layers, as in PyTorch's `nn.RNN`/`nn.GRU`/`nn.LSTM(dropout =
//! p)`: at training time, each entry of a layer's output is zeroed with probability p
//! before it feeds the next layer, and the kept entries are scaled by 1/(1 − p) ("inverted"
//! dropout, so that nothing changes at evaluation time, when there is no dropout). The last
//! layer's output, which feeds W_ya, is never dropped.
//!
//! The masks are drawn up front from the caller's generator, so that the same seed gives
//! the same training run, and a gradient check can hold them fixed.

use ndarray::Array2;
use rand::Rng;

use crate::{DeepShape, Float};

/// Dropout masks for one forward pass: for every time step t and every layer k below the
/// top, an (n_a, m) array whose entries are 0 (dropped, probability p) or 1/(1 − p).
///
/// # Shapes
///
/// `masks[t][k]`: (n_a, m), for t < T and k < n_layers − 1.
#[derive(Clone, Debug, PartialEq)]
pub struct DropoutMasks<F: Float = f64> {
    /// The drop probability p, in [0, 1).
    pub p: f64,
    /// `masks[t][k]` multiplies layer k's output at step t.
    pub masks: Vec<Vec<Array2<F>>>,
}

impl<F: Float> DropoutMasks<F> {
    /// Draws the masks for T = `n_steps` steps of a batch of `m` columns: step by step,
    /// layer by layer, each mask in row-major order, one uniform draw per entry.
    ///
    /// # Panics
    ///
    /// If `p` is not in [0, 1) (callers validate user input first).
    pub fn draw<R: Rng + ?Sized>(
        p: f64,
        shape: DeepShape,
        n_steps: usize,
        m: usize,
        rng: &mut R,
    ) -> Self {
        assert!(
            (0.0..1.0).contains(&p),
            "dropout p must be in [0, 1), got {p}"
        );
        let masks = (0..n_steps)
            .map(|_| {
                (1..shape.n_layers)
                    .map(|_| dropout_mask(p, shape.n_a, m, rng))
                    .collect()
            })
            .collect();
        DropoutMasks { p, masks }
    }
}

// ANCHOR: dropout_mask
/// One inverted-dropout mask: each entry is 0 with probability p, else 1/(1 − p), so the
/// expected value of `mask ⊙ h` is h.
///
/// # Shapes
///
/// → (n_a, m).
pub fn dropout_mask<F: Float, R: Rng + ?Sized>(
    p: f64,
    n_a: usize,
    m: usize,
    rng: &mut R,
) -> Array2<F> {
    let scale = F::cast(1.0 / (1.0 - p));
    Array2::from_shape_simple_fn((n_a, m), || {
        if rng.random::<f64>() < p {
            F::zero()
        } else {
            scale
        }
    })
}
// ANCHOR_END: dropout_mask

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CellKind;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn masks_drop_about_p_and_scale_the_rest() {
        let mask: Array2<f64> = dropout_mask(0.3, 100, 50, &mut ChaCha8Rng::seed_from_u64(4));
        let dropped = mask.iter().filter(|&&v| v == 0.0).count() as f64 / 5000.0;
        assert!((dropped - 0.3).abs() < 0.03, "dropped {dropped}");
        assert!(mask.iter().all(|&v| v == 0.0 || v == 1.0 / 0.7));
        let zero: Array2<f64> = dropout_mask(0.0, 4, 3, &mut ChaCha8Rng::seed_from_u64(4));
        assert!(zero.iter().all(|&v| v == 1.0));
    }

    #[test]
    fn one_mask_per_step_and_boundary_between_layers() {
        let shape = DeepShape {
            cell: CellKind::Gru,
            n_x: 5,
            n_a: 4,
            n_y: 5,
            n_layers: 3,
        };
        let d: DropoutMasks =
            DropoutMasks::draw(0.5, shape, 6, 2, &mut ChaCha8Rng::seed_from_u64(0));
        assert_eq!(d.masks.len(), 6);
        assert!(d.masks.iter().all(|m| m.len() == 2));
        assert_eq!(d.masks[5][1].dim(), (4, 2));
    }
}
