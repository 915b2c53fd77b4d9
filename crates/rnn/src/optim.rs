//! Parameter updates: SGD, Adagrad and Adam, with state that serializes into checkpoints.

use ndarray::Zip;
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
        self.t += 1;
        let arrays = params.arrays_mut().into_iter().zip(grads.arrays());
        match self.config {
            OptimizerConfig::Sgd { lr } => {
                let lr = F::cast(lr);
                for ((_, p), (_, g)) in arrays {
                    Zip::from(p).and(g).for_each(|p, &g| sgd(p, g, lr));
                }
            }
            OptimizerConfig::Adagrad { lr, eps } => {
                let (lr, eps) = (F::cast(lr), F::cast(eps));
                let mem = self.m.as_mut().expect("Adagrad state is created with it");
                for (((_, p), (_, g)), (_, h)) in arrays.zip(mem.arrays_mut()) {
                    Zip::from(p)
                        .and(g)
                        .and(h)
                        .for_each(|p, &g, h| adagrad(p, g, h, lr, eps));
                }
            }
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => {
                let t = self.t as i32;
                let h = AdamHyper {
                    lr: F::cast(lr),
                    beta1: F::cast(beta1),
                    beta2: F::cast(beta2),
                    eps: F::cast(eps),
                    // 1 − βᵗ, the bias corrections of step t.
                    c1: F::cast(1.0 - beta1.powi(t)),
                    c2: F::cast(1.0 - beta2.powi(t)),
                };
                let m = self.m.as_mut().expect("Adam state is created with it");
                let v = self.v.as_mut().expect("Adam state is created with it");
                for ((((_, p), (_, g)), (_, m)), (_, v)) in
                    arrays.zip(m.arrays_mut()).zip(v.arrays_mut())
                {
                    Zip::from(p)
                        .and(g)
                        .and(m)
                        .and(v)
                        .for_each(|p, &g, m, v| adam(p, g, m, v, &h));
                }
            }
        }
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

// ANCHOR: update_rules
/// SGD for one entry: θ ← θ − lr·g.
pub(crate) fn sgd<F: Float>(p: &mut F, g: F, lr: F) {
    *p -= lr * g;
}

/// Adagrad for one entry: G ← G + g²; θ ← θ − lr·g / √(G + eps).
pub(crate) fn adagrad<F: Float>(p: &mut F, g: F, h: &mut F, lr: F, eps: F) {
    *h += g * g;
    *p -= lr * g / (*h + eps).sqrt();
}

/// Adam's hyperparameters at step t, with the bias corrections c1 = 1 − β₁ᵗ and
/// c2 = 1 − β₂ᵗ.
pub(crate) struct AdamHyper<F> {
    pub(crate) lr: F,
    pub(crate) beta1: F,
    pub(crate) beta2: F,
    pub(crate) eps: F,
    pub(crate) c1: F,
    pub(crate) c2: F,
}

/// Adam for one entry: m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g², then
/// θ ← θ − lr·m̂ / (√v̂ + eps) with m̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ).
pub(crate) fn adam<F: Float>(p: &mut F, g: F, m: &mut F, v: &mut F, h: &AdamHyper<F>) {
    *m = h.beta1 * *m + (F::one() - h.beta1) * g;
    *v = h.beta2 * *v + (F::one() - h.beta2) * g * g;
    let m_hat = *m / h.c1;
    let v_hat = *v / h.c2;
    *p -= h.lr * m_hat / (v_hat.sqrt() + h.eps);
}
// ANCHOR_END: update_rules

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn one_entry(g: f64) -> (Params, Grads) {
        let mut p: Params = Params::zeros(1, 1, 1);
        p.b_y = array![[1.0]];
        let mut grads: Grads = Params::zeros(1, 1, 1);
        grads.b_y = array![[g]];
        (p, grads)
    }

    #[test]
    fn sgd_steps_against_the_gradient() {
        let (mut p, g) = one_entry(2.0);
        let mut opt = Optimizer::new(OptimizerConfig::sgd(0.1), &p);
        opt.step(&mut p, &g);
        assert!((p.b_y[[0, 0]] - 0.8).abs() < 1e-15);
        assert_eq!(opt.t, 1);
    }

    #[test]
    fn adagrad_divides_by_the_accumulated_root() {
        let (mut p, g) = one_entry(2.0);
        let mut opt = Optimizer::new(OptimizerConfig::adagrad(0.1), &p);
        opt.step(&mut p, &g);
        opt.step(&mut p, &g);
        // G = 4, then 8: steps 0.1·2/2 and 0.1·2/√8.
        let want = 1.0 - 0.1 - 0.2 / 8f64.sqrt();
        assert!((p.b_y[[0, 0]] - want).abs() < 1e-9);
    }

    #[test]
    fn adams_first_step_has_the_size_of_the_learning_rate() {
        // m̂ = g and v̂ = g² at t = 1, so the step is lr·g/|g| (up to eps).
        for g in [3.0, -0.01] {
            let (mut p, grads) = one_entry(g);
            let mut opt = Optimizer::new(OptimizerConfig::adam(0.01), &p);
            opt.step(&mut p, &grads);
            let want = 1.0 - 0.01 * f64::signum(g);
            assert!((p.b_y[[0, 0]] - want).abs() < 1e-7, "{}", p.b_y[[0, 0]]);
        }
    }
}
