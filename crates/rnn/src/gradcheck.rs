//! Gradient checking: the analytic gradients of [`rnn_backward`] against central finite
//! differences of the loss of [`rnn_forward`].

use std::fmt;

use ndarray::ArrayView2;

use crate::{Grads, PARAM_NAMES, Params, TokenId, rnn_backward, rnn_forward};

/// The worst entry of one parameter array in a gradient check.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheckRow {
    /// Array name (`w_ax`, `w_aa`, `w_ya`, `b_a`, `b_y`; for a stack `w_ih_l0`, …, as in
    /// [`DeepParams::arrays`](crate::DeepParams::arrays)).
    pub name: String,
    /// Number of entries checked.
    pub n_checked: usize,
    /// The largest relative error over the array's entries.
    pub worst_rel_error: f64,
    /// The (row, column) of that entry.
    pub worst_index: (usize, usize),
    /// Analytic gradient at that entry.
    pub analytic: f64,
    /// Central-difference estimate at that entry.
    pub numeric: f64,
}

/// The result of [`gradient_check`] (and of
/// [`deep_gradient_check`](crate::deep_gradient_check)): one row per parameter array.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheck {
    /// The step used for the central differences.
    pub eps: f64,
    /// One row per parameter, in [`PARAM_NAMES`](crate::PARAM_NAMES) order.
    pub rows: Vec<GradCheckRow>,
}

impl GradCheck {
    /// The largest relative error over all parameters.
    pub fn worst(&self) -> f64 {
        self.rows
            .iter()
            .map(|r| r.worst_rel_error)
            .fold(0.0, f64::max)
    }
}

impl fmt::Display for GradCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The name column fits the longest name (`w_ih_l0` in a stack), at least "param ".
        let w = self.rows.iter().map(|r| r.name.len()).fold(5, usize::max) + 1;
        writeln!(
            f,
            "{:<w$} {:>8} {:>14} {:>10} {:>16} {:>16}",
            "param", "entries", "worst rel err", "at", "analytic", "numeric"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<w$} {:>8} {:>14.3e} {:>10} {:>16.9e} {:>16.9e}",
                r.name,
                r.n_checked,
                r.worst_rel_error,
                format!("({},{})", r.worst_index.0, r.worst_index.1),
                r.analytic,
                r.numeric
            )?;
        }
        Ok(())
    }
}

/// Relative errors below this denominator are measured against it instead, so that two
/// gradients that are both (nearly) zero do not produce a huge ratio from rounding noise.
pub const REL_ERROR_FLOOR: f64 = 1e-8;

/// The step ε that [`gradient_check`] is meant to be used with (see its docs).
pub const GRADCHECK_EPS: f64 = 1e-3;

// ANCHOR: gradient_check
/// Checks every entry of every parameter's gradient against the five-point central
/// difference `(L(θ − 2ε) − 8 L(θ − ε) + 8 L(θ + ε) − L(θ + 2ε)) / 12ε`, with relative error
/// `|analytic − numeric| / max(|analytic| + |numeric|, REL_ERROR_FLOOR)`.
///
/// The analytic gradients are those of [`rnn_backward`], before any clipping. Runs in
/// `f64`: in `f32` the differences drown in rounding. Costs four forward passes per
/// parameter entry, so use it on small models.
///
/// Why five points: the two-point difference `(L(θ + ε) − L(θ − ε)) / 2ε` has an error of
/// about ε²·L‴/6 from truncation plus 10⁻¹⁶·L/ε from rounding, a floor near 10⁻¹⁰ in
/// absolute terms whatever ε is. That is a relative error of 10⁻⁷ on a gradient entry of
/// 10⁻³, so small entries would look wrong when they are right. The five-point stencil's
/// truncation error is O(ε⁴); with ε = 10⁻³ both errors are near 10⁻¹², and the check can
/// demand relative errors below 10⁻⁷ on every entry.
///
/// # Shapes
///
/// `x`, `y`: (T, m), `a0`: (n_a, m).
pub fn gradient_check(
    params: &Params<f64>,
    x: ArrayView2<'_, Option<TokenId>>,
    y: ArrayView2<'_, Option<TokenId>>,
    a0: ArrayView2<'_, f64>,
    eps: f64,
) -> GradCheck {
    let (_, cache) = rnn_forward(params, x, y, a0);
    let (grads, _) = rnn_backward(params, x, y, &cache);
    compare_gradients(params, &grads, eps, |p| rnn_forward(p, x, y, a0).0.total)
}

/// Compares `analytic` with central differences of `loss` around `params`, entry by
/// entry; [`gradient_check`] calls it with the RNN's loss and [`rnn_backward`].
pub fn compare_gradients(
    params: &Params<f64>,
    analytic: &Grads<f64>,
    eps: f64,
    loss: impl Fn(&Params<f64>) -> f64,
) -> GradCheck {
    let mut probe = params.clone();
    let mut rows = Vec::with_capacity(PARAM_NAMES.len());
    for (k, name) in PARAM_NAMES.into_iter().enumerate() {
        let mut row = GradCheckRow {
            name: name.to_string(),
            n_checked: 0,
            worst_rel_error: 0.0,
            worst_index: (0, 0),
            analytic: 0.0,
            numeric: 0.0,
        };
        for ((i, j), &g) in analytic.arrays()[k].1.indexed_iter() {
            let original = params.arrays()[k].1[[i, j]];
            let mut at = |delta: f64| {
                probe.arrays_mut()[k].1[[i, j]] = original + delta;
                loss(&probe)
            };
            // Five-point central difference: error O(ε⁴) instead of O(ε²). Differences
            // first, so an entry the loss does not depend on gives exactly zero.
            let near = at(eps) - at(-eps);
            let far = at(2.0 * eps) - at(-2.0 * eps);
            let numeric = (8.0 * near - far) / (12.0 * eps);
            probe.arrays_mut()[k].1[[i, j]] = original;
            let rel = (g - numeric).abs() / (g.abs() + numeric.abs()).max(REL_ERROR_FLOOR);
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
// ANCHOR_END: gradient_check

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    type Case = (
        Params,
        Array2<Option<TokenId>>,
        Array2<Option<TokenId>>,
        Array2<f64>,
    );

    fn case() -> Case {
        let p = Params::init_with_std(4, 3, 4, 0.5, &mut ChaCha8Rng::seed_from_u64(9));
        let x = array![[None], [Some(1)], [Some(2)], [Some(1)]];
        let y = array![[Some(1)], [Some(2)], [Some(1)], [Some(0)]];
        (p, x, y, Array2::zeros((3, 1)))
    }

    #[test]
    fn correct_gradients_pass_and_the_report_names_every_parameter() {
        let (p, x, y, a0) = case();
        let report = gradient_check(&p, x.view(), y.view(), a0.view(), GRADCHECK_EPS);
        assert!(report.worst() < 1e-7, "{report}");
        assert_eq!(report.rows.len(), 5);
        assert_eq!(report.rows[0].n_checked, 12);
        let text = report.to_string();
        for name in PARAM_NAMES {
            assert!(text.contains(name), "{text}");
        }
    }

    /// The checker must fail on the mistakes it exists to catch: a transposed matrix, a
    /// flipped sign, a missing term.
    #[test]
    fn wrong_gradients_are_caught() {
        let (p, x, y, a0) = case();
        let (_, cache) = rnn_forward(&p, x.view(), y.view(), a0.view());
        let (good, _) = rnn_backward(&p, x.view(), y.view(), &cache);
        let loss = |q: &Params| rnn_forward(q, x.view(), y.view(), a0.view()).0.total;

        let mut transposed = good.clone();
        transposed.w_aa = good.w_aa.t().to_owned();
        let mut flipped = good.clone();
        flipped.b_y.mapv_inplace(|v| -v);
        let mut missing = good.clone();
        missing.w_ax.fill(0.0);
        for (bad, name) in [(transposed, "w_aa"), (flipped, "b_y"), (missing, "w_ax")] {
            let report = compare_gradients(&p, &bad, GRADCHECK_EPS, loss);
            let row = report.rows.iter().find(|r| r.name == name).unwrap();
            assert!(row.worst_rel_error > 1e-2, "{name} not caught:\n{report}");
        }
    }
}
