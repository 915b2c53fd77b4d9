//! The post's vanilla cell as a layer of a deep network: the same equation as
//! [`hidden_step`](crate::hidden_step), with PyTorch's names for the arrays,
//!
//! ```text
//! h' = tanh(W_ih x + W_hh h + b_a)          (b_a is the layer's b_ih)
//! ```
//!
//! and its backward pass, the hidden-state half of
//! [`rnn_step_backward`](crate::rnn_step_backward).

use ndarray::{Array2, ArrayView2};

use crate::{Float, LayerInput, LayerParams, affine_backward, input_product};

/// What the backward pass of a vanilla step needs.
#[derive(Clone, Debug, PartialEq)]
pub struct VanillaCache<F: Float = f64> {
    /// The previous hidden state h, (n_a, m).
    pub h_prev: Array2<F>,
    /// The new hidden state h', (n_a, m).
    pub h: Array2<F>,
}

// ANCHOR: vanilla_step_forward
/// One vanilla step: h' = tanh(W_ih x + W_hh h_prev + b_a).
///
/// # Shapes
///
/// `x`: (m) ids or (n_in, m), `h_prev`: (n_a, m); the cache holds (n_a, m) arrays.
pub fn vanilla_step_forward<F: Float>(
    layer: &LayerParams<F>,
    x: LayerInput<'_, F>,
    h_prev: ArrayView2<'_, F>,
) -> VanillaCache<F> {
    let z = input_product(&layer.w_ih, x) + layer.w_hh.dot(&h_prev) + &layer.b_ih; // (n_a, m)
    VanillaCache {
        h_prev: h_prev.to_owned(),
        h: z.mapv(F::tanh),
    }
}
// ANCHOR_END: vanilla_step_forward

// ANCHOR: vanilla_step_backward
/// One vanilla step backward. `dh` is dL/dh' (from the output or the layer above, plus
/// the future); through tanh, dz = (1 − h'²) ⊙ dh is the post's `da_raw`. Adds to `grads`
/// and returns (dL/dh_prev, dL/dx).
///
/// # Shapes
///
/// `dh`: (n_a, m) → (n_a, m) and, for a dense input, (n_in, m).
pub fn vanilla_step_backward<F: Float>(
    dh: ArrayView2<'_, F>,
    grads: &mut LayerParams<F>,
    layer: &LayerParams<F>,
    x: LayerInput<'_, F>,
    cache: &VanillaCache<F>,
) -> (Array2<F>, Option<Array2<F>>) {
    let dz = cache.h.mapv(|v| F::one() - v * v) * dh; //                 (n_a, m)
    affine_backward(grads, layer, x, cache.h_prev.view(), &dz, &dz)
}
// ANCHOR_END: vanilla_step_backward
