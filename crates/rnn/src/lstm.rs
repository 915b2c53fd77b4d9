//! The long short-term memory cell, with exactly PyTorch's equations and gate order
//! (i, f, g, o stacked by rows):
//!
//! ```text
//! [z_i; z_f; z_g; z_o] = W_ih x + b_ih + W_hh h + b_hh
//! i = σ(z_i)   f = σ(z_f)   g = tanh(z_g)   o = σ(z_o)
//! c' = f ⊙ c + i ⊙ g
//! h' = o ⊙ tanh(c')
//! ```
//!
//! Backward, given dh' (from the output or the layer above, plus the future) and dc'
//! (from the future):
//!
//! ```text
//! dc   = dc' + dh' ⊙ o ⊙ (1 − tanh²(c'))      (both paths into c')
//! do   = dh' ⊙ tanh(c')       di = dc ⊙ g       df = dc ⊙ c       dg = dc ⊙ i
//! dz_i = di ⊙ i(1 − i)   dz_f = df ⊙ f(1 − f)   dz_g = dg ⊙ (1 − g²)   dz_o = do ⊙ o(1 − o)
//! dc_prev = dc ⊙ f
//! ```
//!
//! then the affine part with dgx = dgh = [dz_i; dz_f; dz_g; dz_o].

use ndarray::{Array2, ArrayView2};

use crate::{
    Float, LayerInput, LayerParams, affine_backward, gate, input_product, sigmoid, stack_gates,
};

/// What the backward pass of an LSTM step needs: the states before and after, and the
/// four gates.
#[derive(Clone, Debug, PartialEq)]
pub struct LstmCache<F: Float = f64> {
    /// The previous hidden state h, (n_a, m).
    pub h_prev: Array2<F>,
    /// The previous cell state c, (n_a, m).
    pub c_prev: Array2<F>,
    /// Input gate i, (n_a, m).
    pub i: Array2<F>,
    /// Forget gate f, (n_a, m).
    pub f: Array2<F>,
    /// Candidate cell g, (n_a, m).
    pub g: Array2<F>,
    /// Output gate o, (n_a, m).
    pub o: Array2<F>,
    /// The new cell state c', (n_a, m).
    pub c: Array2<F>,
    /// The new hidden state h', (n_a, m).
    pub h: Array2<F>,
}

// ANCHOR: lstm_step_forward
/// One LSTM step: the gates, then c' = f ⊙ c_prev + i ⊙ g and h' = o ⊙ tanh(c').
///
/// # Shapes
///
/// `x`: (m) ids or (n_in, m), `h_prev`, `c_prev`: (n_a, m); the cache holds (n_a, m)
/// arrays.
pub fn lstm_step_forward<F: Float>(
    layer: &LayerParams<F>,
    x: LayerInput<'_, F>,
    h_prev: ArrayView2<'_, F>,
    c_prev: ArrayView2<'_, F>,
) -> LstmCache<F> {
    let n_a = h_prev.nrows();
    debug_assert_eq!(layer.w_hh.dim(), (4 * n_a, n_a));
    let gx = input_product(&layer.w_ih, x) + &layer.b_ih; //             (4 n_a, m)
    let z = gx + layer.w_hh.dot(&h_prev) + &layer.b_hh; //               (4 n_a, m)
    let i = gate(&z, 0, n_a).mapv(sigmoid); //                           (n_a, m)
    let f = gate(&z, 1, n_a).mapv(sigmoid); //                           (n_a, m)
    let g = gate(&z, 2, n_a).mapv(F::tanh); //                           (n_a, m)
    let o = gate(&z, 3, n_a).mapv(sigmoid); //                           (n_a, m)
    let c = &f * &c_prev + &i * &g; //                                   (n_a, m)
    let h = &o * &c.mapv(F::tanh); //                                    (n_a, m)
    LstmCache {
        h_prev: h_prev.to_owned(),
        c_prev: c_prev.to_owned(),
        i,
        f,
        g,
        o,
        c,
        h,
    }
}
// ANCHOR_END: lstm_step_forward

// ANCHOR: lstm_step_backward
/// One LSTM step backward. `dh` is dL/dh'; `dc` holds dL/dc' from the future on entry and
/// dL/dc_prev on exit. Adds to `grads` and returns (dL/dh_prev, dL/dx).
///
/// # Shapes
///
/// `dh`, `dc`: (n_a, m) → (n_a, m) and, for a dense input, (n_in, m).
pub fn lstm_step_backward<F: Float>(
    dh: ArrayView2<'_, F>,
    dc: &mut Array2<F>,
    grads: &mut LayerParams<F>,
    layer: &LayerParams<F>,
    x: LayerInput<'_, F>,
    cache: &LstmCache<F>,
) -> (Array2<F>, Option<Array2<F>>) {
    let LstmCache { i, f, g, o, .. } = cache;
    let one = F::one();
    let tanh_c = cache.c.mapv(F::tanh); //                               (n_a, m)
    *dc += &(&dh * o * &tanh_c.mapv(|v| one - v * v)); //                (n_a, m)
    let dz_i = &*dc * g * &i.mapv(|v| v * (one - v)); //                 (n_a, m)
    let dz_f = &*dc * &cache.c_prev * &f.mapv(|v| v * (one - v)); //     (n_a, m)
    let dz_g = &*dc * i * &g.mapv(|v| one - v * v); //                   (n_a, m)
    let dz_o = &dh * &tanh_c * &o.mapv(|v| v * (one - v)); //            (n_a, m)
    *dc = &*dc * f; //                                                   (n_a, m)
    let dz = stack_gates(&[dz_i, dz_f, dz_g, dz_o]); //                  (4 n_a, m)
    affine_backward(grads, layer, x, cache.h_prev.view(), &dz, &dz)
}
// ANCHOR_END: lstm_step_backward
