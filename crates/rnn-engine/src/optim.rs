//! The updates of [`rnn::Optimizer`] (SGD, Adagrad, Adam) over whole arrays, vectorized.

use ndarray::{Array2, Zip};

use crate::elementwise::{AdamStep, adagrad_one, adam_one, sgd_one};
use crate::kernels::{simd_adagrad, simd_adam, simd_sgd};
use rnn::{Optimizer, OptimizerConfig};

use crate::{Float, Grads, Params};

/// Applies one update to `params` from `grads`, as [`rnn::Optimizer::step`] does, over
/// whole arrays with the vectorized loops of the engine's kernels. Returns whether every
/// updated parameter is finite (checked in the same pass as the update).
pub fn step_checked<F: Float>(
    opt: &mut Optimizer<F>,
    params: &mut Params<F>,
    grads: &Grads<F>,
) -> bool {
    let mut finite = true;
    opt.t += 1;
    rnn::decay_weights(opt.config, params.arrays_mut());
    match opt.config {
        OptimizerConfig::Sgd { lr } => {
            let lr = F::cast(lr);
            for ((_, p), (_, g)) in params.arrays_mut().into_iter().zip(grads.arrays()) {
                finite &= match same_layout(p, g) {
                    Some((p, g)) => simd_sgd(p, g, lr),
                    None => {
                        let mut finite = true;
                        Zip::from(p).and(g).for_each(|p, &g| {
                            finite &= sgd_one(p, g, lr);
                        });
                        finite
                    }
                };
            }
        }
        OptimizerConfig::Adagrad { lr, eps } => {
            let (lr, eps) = (F::cast(lr), F::cast(eps));
            let mem = opt.m.as_mut().expect("Adagrad state is created with it");
            for (((_, p), (_, g)), (_, h)) in params
                .arrays_mut()
                .into_iter()
                .zip(grads.arrays())
                .zip(mem.arrays_mut())
            {
                let fast = h.strides() == g.strides();
                finite &= match (fast, same_layout(p, g), h.as_slice_memory_order_mut()) {
                    (true, Some((p, g)), Some(h)) => simd_adagrad(p, g, h, lr, eps),
                    _ => {
                        let mut finite = true;
                        Zip::from(p).and(g).and(h).for_each(|p, &g, h| {
                            finite &= adagrad_one(p, g, h, lr, eps);
                        });
                        finite
                    }
                };
            }
        }
        OptimizerConfig::Adam {
            lr,
            beta1,
            beta2,
            eps,
            ..
        } => {
            // Bias corrections folded into the step size.
            let t = opt.t as i32;
            let c1 = 1.0 - beta1.powi(t);
            let c2 = 1.0 - beta2.powi(t);
            let h = AdamStep {
                step: F::cast(lr * c2.sqrt() / c1),
                eps_hat: F::cast(eps * c2.sqrt()),
                beta1: F::cast(beta1),
                beta2: F::cast(beta2),
            };
            let m = opt.m.as_mut().expect("Adam state is created with it");
            let v = opt.v.as_mut().expect("Adam state is created with it");
            for ((((_, p), (_, g)), (_, m)), (_, v)) in params
                .arrays_mut()
                .into_iter()
                .zip(grads.arrays())
                .zip(m.arrays_mut())
                .zip(v.arrays_mut())
            {
                let fast = m.strides() == g.strides() && v.strides() == g.strides();
                finite &= match (
                    fast,
                    same_layout(p, g),
                    m.as_slice_memory_order_mut(),
                    v.as_slice_memory_order_mut(),
                ) {
                    (true, Some((p, g)), Some(m), Some(v)) => simd_adam(p, g, m, v, h),
                    _ => {
                        let mut finite = true;
                        Zip::from(p).and(g).and(m).and(v).for_each(|p, &g, m, v| {
                            finite &= adam_one(p, g, m, v, h);
                        });
                        finite
                    }
                };
            }
        }
    }
    finite
}

// The same rules over whole arrays, as slices; `kernels` compiles them for the CPU's vector
// width. The finiteness flags are and-ed without an early exit, so the loops vectorize.

/// The memory of `p` and `g` as two slices, when both are contiguous with the same layout
/// (so that equal positions hold equal entries).
fn same_layout<'a, F>(p: &'a mut Array2<F>, g: &'a Array2<F>) -> Option<(&'a mut [F], &'a [F])> {
    if p.dim() != g.dim() || p.strides() != g.strides() {
        return None;
    }
    Some((p.as_slice_memory_order_mut()?, g.as_slice_memory_order()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn one_param(value: f64) -> Params {
        let mut p = Params::zeros(1, 1, 1);
        p.w_aa = array![[value]];
        p
    }

    #[test]
    fn sgd_step_by_hand() {
        // θ = 0.5, g = 2, lr = 0.01: θ ← 0.5 − 0.01·2 = 0.48.
        let mut p = one_param(0.5);
        let g = one_param(2.0);
        let mut opt = Optimizer::new(OptimizerConfig::sgd(0.01), &p);
        step_checked(&mut opt, &mut p, &g);
        assert!((p.w_aa[[0, 0]] - 0.48).abs() < 1e-15);
        assert_eq!(opt.t, 1);
    }

    #[test]
    fn adagrad_steps_by_hand() {
        // G = 4, θ ← 1 − 0.1·2/√(4 + 1e-8); then G = 4 + 1, θ ← θ − 0.1·1/√(5 + 1e-8).
        let mut p = one_param(1.0);
        let mut opt = Optimizer::new(OptimizerConfig::adagrad(0.1), &p);
        step_checked(&mut opt, &mut p, &one_param(2.0));
        step_checked(&mut opt, &mut p, &one_param(1.0));
        let want = 1.0 - 0.1 * 2.0 / (4.0f64 + 1e-8).sqrt() - 0.1 * 1.0 / (5.0f64 + 1e-8).sqrt();
        assert!((p.w_aa[[0, 0]] - want).abs() < 1e-15);
    }

    #[test]
    fn adam_first_steps_match_the_textbook_form() {
        let (lr, b1, b2, eps) = (0.01, 0.9, 0.999, 1e-8);
        let mut p = one_param(1.0);
        let mut opt = Optimizer::new(OptimizerConfig::adam(lr), &p);
        let (mut m, mut v, mut theta) = (0.0f64, 0.0f64, 1.0f64);
        for (t, g) in [(1, 0.5), (2, -1.5), (3, 0.25)] {
            step_checked(&mut opt, &mut p, &one_param(g));
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let m_hat = m / (1.0 - b1.powi(t));
            let v_hat = v / (1.0 - b2.powi(t));
            theta -= lr * m_hat / (v_hat.sqrt() + eps);
            assert!((p.w_aa[[0, 0]] - theta).abs() < 1e-12, "step {t}");
        }
    }
}
