//! Parameter updates: SGD, Adagrad and Adam, with state that serializes into checkpoints.

use serde::{Deserialize, Serialize};

use crate::{Float, Grads, Params};

/// Which optimizer and its hyperparameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum OptimizerConfig {
    /// θ ← θ − lr·g. The classic recipe uses lr = 0.01.
    Sgd {
        /// Learning rate.
        lr: f64,
    },
    /// Per-entry rates from the running sum of squared gradients (min-char-rnn: lr 0.1,
    /// eps 1e-8): G ← G + g², θ ← θ − lr·g / √(G + eps).
    Adagrad {
        /// Learning rate.
        lr: f64,
        /// Added under the square root.
        eps: f64,
    },
    /// Adam with bias correction (β₁ 0.9, β₂ 0.999, eps 1e-8).
    Adam {
        /// Learning rate.
        lr: f64,
        /// Decay of the first moment.
        beta1: f64,
        /// Decay of the second moment.
        beta2: f64,
        /// Added to the denominator.
        eps: f64,
    },
}

impl OptimizerConfig {
    /// SGD with learning rate `lr`.
    pub fn sgd(lr: f64) -> Self {
        OptimizerConfig::Sgd { lr }
    }

    /// Adagrad with learning rate `lr` and eps 1e-8.
    pub fn adagrad(lr: f64) -> Self {
        OptimizerConfig::Adagrad { lr, eps: 1e-8 }
    }

    /// Adam with learning rate `lr`, β₁ 0.9, β₂ 0.999, eps 1e-8.
    pub fn adam(lr: f64) -> Self {
        OptimizerConfig::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        match *self {
            OptimizerConfig::Sgd { lr }
            | OptimizerConfig::Adagrad { lr, .. }
            | OptimizerConfig::Adam { lr, .. } => lr,
        }
    }

    /// The same optimizer with another learning rate.
    pub fn with_lr(mut self, new_lr: f64) -> Self {
        match &mut self {
            OptimizerConfig::Sgd { lr }
            | OptimizerConfig::Adagrad { lr, .. }
            | OptimizerConfig::Adam { lr, .. } => *lr = new_lr,
        }
        self
    }

    /// The optimizer's name: `sgd`, `adagrad` or `adam`.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd { .. } => "sgd",
            OptimizerConfig::Adagrad { .. } => "adagrad",
            OptimizerConfig::Adam { .. } => "adam",
        }
    }
}

/// An optimizer with its state (accumulators and step count), ready to update parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "F: Float")]
pub struct Optimizer<F: Float = f64> {
    /// The hyperparameters.
    pub config: OptimizerConfig,
    /// Number of updates made so far.
    pub t: u64,
    /// Adagrad: the sum of squared gradients. Adam: the first moment. Empty for SGD.
    pub m: Option<Params<F>>,
    /// Adam: the second moment.
    pub v: Option<Params<F>>,
}

impl<F: Float> Optimizer<F> {
    /// A fresh optimizer for parameters shaped like `params`.
    pub fn new(config: OptimizerConfig, params: &Params<F>) -> Self {
        let zeros = || Params::zeros(params.n_x(), params.n_a(), params.n_y());
        let (m, v) = match config {
            OptimizerConfig::Sgd { .. } => (None, None),
            OptimizerConfig::Adagrad { .. } => (Some(zeros()), None),
            OptimizerConfig::Adam { .. } => (Some(zeros()), Some(zeros())),
        };
        Optimizer { config, t: 0, m, v }
    }

    // ANCHOR: optimizer_step
    /// Applies one update to `params` from `grads`.
    pub fn step(&mut self, params: &mut Params<F>, grads: &Grads<F>) {
        self.step_checked(params, grads);
    }

    /// [`Optimizer::step`], returning whether every updated parameter is finite (checked
    /// in the same pass as the update).
    pub fn step_checked(&mut self, params: &mut Params<F>, grads: &Grads<F>) -> bool {
        // Summing 0·θ over all entries gives 0 unless some θ is NaN or infinite; the
        // compiler vectorizes it, unlike an early-exit search.
        let mut finite = F::zero();
        self.t += 1;
        match self.config {
            OptimizerConfig::Sgd { lr } => {
                let lr = F::cast(lr);
                for ((_, p), (_, g)) in params.arrays_mut().into_iter().zip(grads.arrays()) {
                    // θ ← θ − lr·g
                    p.zip_mut_with(g, |p, &g| {
                        *p -= lr * g;
                        finite += *p * F::zero();
                    });
                }
            }
            OptimizerConfig::Adagrad { lr, eps } => {
                let (lr, eps) = (F::cast(lr), F::cast(eps));
                let mem = self.m.as_mut().expect("Adagrad state is created with it");
                for (((_, p), (_, g)), (_, h)) in params
                    .arrays_mut()
                    .into_iter()
                    .zip(grads.arrays())
                    .zip(mem.arrays_mut())
                {
                    // G ← G + g²;  θ ← θ − lr·g / √(G + eps)
                    ndarray::Zip::from(p).and(g).and(h).for_each(|p, &g, h| {
                        *h += g * g;
                        *p -= lr * g / (*h + eps).sqrt();
                        finite += *p * F::zero();
                    });
                }
            }
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => {
                // Bias corrections folded into the step size.
                let t = self.t as i32;
                let c1 = 1.0 - beta1.powi(t);
                let c2 = 1.0 - beta2.powi(t);
                let step = F::cast(lr * c2.sqrt() / c1);
                let eps_hat = F::cast(eps * c2.sqrt());
                let (b1, b2) = (F::cast(beta1), F::cast(beta2));
                let (one_b1, one_b2) = (F::one() - b1, F::one() - b2);
                let m = self.m.as_mut().expect("Adam state is created with it");
                let v = self.v.as_mut().expect("Adam state is created with it");
                for ((((_, p), (_, g)), (_, m)), (_, v)) in params
                    .arrays_mut()
                    .into_iter()
                    .zip(grads.arrays())
                    .zip(m.arrays_mut())
                    .zip(v.arrays_mut())
                {
                    // m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;
                    // θ ← θ − lr·m̂ / (√v̂ + eps), m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ)
                    ndarray::Zip::from(p)
                        .and(g)
                        .and(m)
                        .and(v)
                        .for_each(|p, &g, m, v| {
                            *m = b1 * *m + one_b1 * g;
                            *v = b2 * *v + one_b2 * g * g;
                            *p -= step * *m / (v.sqrt() + eps_hat);
                            finite += *p * F::zero();
                        });
                }
            }
        }
        finite == F::zero()
    }
    // ANCHOR_END: optimizer_step

    /// The same optimizer state in another float type.
    pub fn cast<G: Float>(&self) -> Optimizer<G> {
        Optimizer {
            config: self.config,
            t: self.t,
            m: self.m.as_ref().map(Params::cast),
            v: self.v.as_ref().map(Params::cast),
        }
    }
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
        opt.step(&mut p, &g);
        assert!((p.w_aa[[0, 0]] - 0.48).abs() < 1e-15);
        assert_eq!(opt.t, 1);
    }

    #[test]
    fn adagrad_steps_by_hand() {
        // G = 4, θ ← 1 − 0.1·2/√(4 + 1e-8); then G = 4 + 1, θ ← θ − 0.1·1/√(5 + 1e-8).
        let mut p = one_param(1.0);
        let mut opt = Optimizer::new(OptimizerConfig::adagrad(0.1), &p);
        opt.step(&mut p, &one_param(2.0));
        opt.step(&mut p, &one_param(1.0));
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
            opt.step(&mut p, &one_param(g));
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let m_hat = m / (1.0 - b1.powi(t));
            let v_hat = v / (1.0 - b2.powi(t));
            theta -= lr * m_hat / (v_hat.sqrt() + eps);
            assert!((p.w_aa[[0, 0]] - theta).abs() < 1e-12, "step {t}");
        }
    }

    #[test]
    fn state_survives_serde() {
        let p = one_param(1.0);
        let mut opt = Optimizer::new(OptimizerConfig::adam(0.01), &p);
        let mut q = p.clone();
        opt.step(&mut q, &one_param(0.3));
        let s = serde_json::to_string(&opt).unwrap();
        let back: Optimizer = serde_json::from_str(&s).unwrap();
        assert_eq!(back, opt);
    }
}
