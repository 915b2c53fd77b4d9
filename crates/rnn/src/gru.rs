//! The gated recurrent unit, with exactly PyTorch's equations and gate order (r, z, n
//! stacked by rows):
//!
//! ```text
//! gx = W_ih x + b_ih = [gx_r; gx_z; gx_n]      gh = W_hh h + b_hh = [gh_r; gh_z; gh_n]
//! r  = σ(gx_r + gh_r)          z = σ(gx_z + gh_z)
//! n  = tanh(gx_n + r ⊙ gh_n)   (the reset gate scales W_hn h + b_hn, bias included)
//! h' = (1 − z) ⊙ n + z ⊙ h
//! ```
//!
//! Backward, given dh' (from the output or the layer above, plus the future):
//!
//! ```text
//! dn_raw = dh' ⊙ (1 − z) ⊙ (1 − n²)       dz_raw = dh' ⊙ (h − n) ⊙ z(1 − z)
//! dr_raw = dn_raw ⊙ gh_n ⊙ r(1 − r)
//! dgx = [dr_raw; dz_raw; dn_raw]          dgh = [dr_raw; dz_raw; r ⊙ dn_raw]
//! dh_prev = dh' ⊙ z + W_hhᵀ dgh
//! ```

use ndarray::{Array2, ArrayView2};

use crate::{
    Float, LayerInput, LayerParams, affine_backward, gate, input_product, sigmoid, stack_gates,
};

/// What the backward pass of a GRU step needs.
#[derive(Clone, Debug, PartialEq)]
pub struct GruCache<F: Float = f64> {
    /// The previous hidden state h, (n_a, m).
    pub h_prev: Array2<F>,
    /// Reset gate r, (n_a, m).
    pub r: Array2<F>,
    /// Update gate z, (n_a, m).
    pub z: Array2<F>,
    /// Candidate state n, (n_a, m).
    pub n: Array2<F>,
    /// gh_n = W_hn h + b_hn, the part of n the reset gate scales, (n_a, m).
    pub gh_n: Array2<F>,
    /// The new hidden state h', (n_a, m).
    pub h: Array2<F>,
}

// ANCHOR: gru_step_forward
/// One GRU step: the gates r, z, the candidate n, then h' = (1 − z) ⊙ n + z ⊙ h_prev.
///
/// # Shapes
///
/// `x`: (m) ids or (n_in, m), `h_prev`: (n_a, m); the cache holds (n_a, m) arrays.
pub fn gru_step_forward<F: Float>(
    layer: &LayerParams<F>,
    x: LayerInput<'_, F>,
    h_prev: ArrayView2<'_, F>,
) -> GruCache<F> {
    let n_a = h_prev.nrows();
    debug_assert_eq!(layer.w_hh.dim(), (3 * n_a, n_a));
    let gx = input_product(&layer.w_ih, x) + &layer.b_ih; //             (3 n_a, m)
    let gh = layer.w_hh.dot(&h_prev) + &layer.b_hh; //                   (3 n_a, m)
    let r = (&gate(&gx, 0, n_a) + &gate(&gh, 0, n_a)).mapv(sigmoid); //  (n_a, m)
    let z = (&gate(&gx, 1, n_a) + &gate(&gh, 1, n_a)).mapv(sigmoid); //  (n_a, m)
    let gh_n = gate(&gh, 2, n_a).to_owned(); //                          (n_a, m)
    let n = (&gate(&gx, 2, n_a) + &(&r * &gh_n)).mapv(F::tanh); //       (n_a, m)
    let h = z.mapv(|v| F::one() - v) * &n + &z * &h_prev; //             (n_a, m)
    GruCache {
        h_prev: h_prev.to_owned(),
        r,
        z,
        n,
        gh_n,
        h,
    }
}
// ANCHOR_END: gru_step_forward

// ANCHOR: gru_step_backward
/// One GRU step backward. `dh` is dL/dh'. Adds to `grads` and returns (dL/dh_prev,
/// dL/dx).
///
/// # Shapes
///
/// `dh`: (n_a, m) → (n_a, m) and, for a dense input, (n_in, m).
pub fn gru_step_backward<F: Float>(
    dh: ArrayView2<'_, F>,
    grads: &mut LayerParams<F>,
    layer: &LayerParams<F>,
    x: LayerInput<'_, F>,
    cache: &GruCache<F>,
) -> (Array2<F>, Option<Array2<F>>) {
    let GruCache {
        h_prev,
        r,
        z,
        n,
        gh_n,
        ..
    } = cache;
    let one = F::one();
    let dn_raw = &dh * &z.mapv(|v| one - v) * &n.mapv(|v| one - v * v); // (n_a, m)
    let dz_raw = &dh * &(h_prev - n) * &z.mapv(|v| v * (one - v)); //     (n_a, m)
    let dr_raw = &dn_raw * gh_n * &r.mapv(|v| v * (one - v)); //          (n_a, m)
    let dgh_n = &dn_raw * r; //                                           (n_a, m)
    let dgx = stack_gates(&[dr_raw.clone(), dz_raw.clone(), dn_raw]); //  (3 n_a, m)
    let dgh = stack_gates(&[dr_raw, dz_raw, dgh_n]); //                   (3 n_a, m)
    let (dh_prev, dx) = affine_backward(grads, layer, x, h_prev.view(), &dgx, &dgh);
    (dh_prev + &(&dh * z), dx) //                                         (n_a, m)
}
// ANCHOR_END: gru_step_backward
