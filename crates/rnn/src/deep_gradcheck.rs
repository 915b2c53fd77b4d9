//! Gradient checking for deep networks: the analytic gradients of [`deep_backward`]
//! against central differences of the loss of [`deep_forward`], entry by entry, as
//! [`gradient_check`](crate::gradient_check) does for the vanilla network, with one more
//! refinement of the difference (see [`deep_gradient_check`]).

use ndarray::ArrayView2;

use crate::{
    DeepGrads, DeepParams, DropoutMasks, GradCheck, GradCheckRow, State, TokenId, deep_backward,
    deep_forward,
};

/// The step ε that [`deep_gradient_check`] is meant to be used with.
pub const DEEP_GRADCHECK_EPS: f64 = 1e-2;

/// Denominators of the relative error below this are measured against it instead, so an
/// entry smaller than 10⁻⁴ must agree to 10⁻¹¹ in absolute terms rather than to 10⁻⁷ of
/// itself. The rounding error of the difference is near 10⁻¹² for the small networks a
/// gradient check runs on (measured: the estimates of a 10⁻⁶ entry of a three-layer LSTM
/// scatter by that much as ε varies), and a deep network has many such tiny entries; the
/// vanilla check's [`REL_ERROR_FLOOR`](crate::REL_ERROR_FLOOR) of 10⁻⁸ would judge the
/// rounding, not the gradient. A wrong term still shows: it errs by about the entry's own
/// size.
pub const DEEP_REL_ERROR_FLOOR: f64 = 1e-4;

/// Checks every gradient entry of a deep network, with the dropout masks (if any) held
/// fixed, so that the loss is a smooth function of the parameters. The relative error is
/// `|analytic − numeric| / max(|analytic| + |numeric|, DEEP_REL_ERROR_FLOOR)`.
///
/// The numeric derivative is the five-point difference D(ε) of
/// [`gradient_check`](crate::gradient_check), extrapolated from two steps (Richardson):
/// D(ε) = L′ + c ε⁴ + O(ε⁶), so (16 D(ε/2) − D(ε)) / 15 = L′ + O(ε⁶). Why: gates multiply
/// small factors, so a deep network has many gradient entries of 10⁻⁶ or less, and with
/// ε = 10⁻³ the rounding error of the difference (about 10⁻¹³ here) is already 10⁻⁷ of
/// such an entry. The extrapolated difference keeps the truncation error negligible at
/// ε = 10⁻² ([`DEEP_GRADCHECK_EPS`]), where the rounding error is ten times smaller. It
/// costs eight forward passes per entry.
///
/// # Shapes
///
/// `x`, `y`: (T, m), `state0` and `dropout` as in [`deep_forward`].
pub fn deep_gradient_check(
    params: &DeepParams<f64>,
    x: ArrayView2<'_, Option<TokenId>>,
    y: ArrayView2<'_, Option<TokenId>>,
    state0: &State<f64>,
    dropout: Option<&DropoutMasks<f64>>,
    eps: f64,
) -> GradCheck {
    let (_, cache) = deep_forward(params, x, y, state0, dropout);
    let (grads, _) = deep_backward(params, x, y, &cache);
    compare_deep_gradients(params, &grads, eps, |p| {
        deep_forward(p, x, y, state0, dropout).0.total
    })
}

/// Compares `analytic` with central differences of `loss` around `params`, entry by
/// entry; [`deep_gradient_check`] calls it with [`deep_forward`] and [`deep_backward`].
pub fn compare_deep_gradients(
    params: &DeepParams<f64>,
    analytic: &DeepGrads<f64>,
    eps: f64,
    loss: impl Fn(&DeepParams<f64>) -> f64,
) -> GradCheck {
    let mut probe = params.clone();
    let mut rows = Vec::new();
    for (k, (name, grad)) in analytic.arrays().into_iter().enumerate() {
        if grad.is_empty() {
            continue;
        }
        let mut row = GradCheckRow {
            name,
            n_checked: 0,
            worst_rel_error: 0.0,
            worst_index: (0, 0),
            analytic: 0.0,
            numeric: 0.0,
        };
        for ((i, j), &g) in grad.indexed_iter() {
            let original = params.arrays()[k].1[[i, j]];
            let mut at = |delta: f64| {
                probe.arrays_mut()[k].1[[i, j]] = original + delta;
                loss(&probe)
            };
            // Differences first, so an entry the loss does not depend on gives exactly zero.
            let mut five_point = |e: f64| {
                let near = at(e) - at(-e);
                let far = at(2.0 * e) - at(-2.0 * e);
                (8.0 * near - far) / (12.0 * e)
            };
            let coarse = five_point(eps);
            let numeric = (16.0 * five_point(eps / 2.0) - coarse) / 15.0;
            probe.arrays_mut()[k].1[[i, j]] = original;
            let rel = (g - numeric).abs() / (g.abs() + numeric.abs()).max(DEEP_REL_ERROR_FLOOR);
            row.n_checked += 1;
            if rel >= row.worst_rel_error {
                row.worst_rel_error = rel;
                row.worst_index = (i, j);
                row.analytic = g;
                row.numeric = numeric;
            }
        }
        rows.push(row);
    }
    GradCheck { eps, rows }
}
