//! Parameter updates: SGD, Adagrad and Adam, with state that serializes into checkpoints.

use ndarray::{Array2, Zip};
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
    /// Adam with bias correction (β₁ 0.9, β₂ 0.999, eps 1e-8), and with decoupled weight
    /// decay λ when it is not 0 (AdamW).
    Adam {
        /// Learning rate.
        lr: f64,
        /// Decay of the first moment.
        beta1: f64,
        /// Decay of the second moment.
        beta2: f64,
        /// Added to the denominator.
        eps: f64,
        /// Decoupled weight decay λ (AdamW): every weight matrix (not the biases) shrinks
        /// by the factor 1 − lr·λ before each step. 0 is plain Adam.
        #[serde(default)]
        weight_decay: f64,
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
            weight_decay: 0.0,
        }
    }

    /// AdamW: Adam with learning rate `lr` and decoupled weight decay `weight_decay`.
    pub fn adamw(lr: f64, weight_decay: f64) -> Self {
        match Self::adam(lr) {
            OptimizerConfig::Adam {
                beta1, beta2, eps, ..
            } => OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            },
            other => other,
        }
    }

    /// The decoupled weight decay λ (0 for SGD, Adagrad and plain Adam).
    pub fn weight_decay(&self) -> f64 {
        match *self {
            OptimizerConfig::Adam { weight_decay, .. } => weight_decay,
            _ => 0.0,
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

    /// The optimizer's name: `sgd`, `adagrad`, `adam` or (with weight decay) `adamw`.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd { .. } => "sgd",
            OptimizerConfig::Adagrad { .. } => "adagrad",
            OptimizerConfig::Adam { weight_decay, .. } if *weight_decay != 0.0 => "adamw",
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
        decay_weights(self.config, params.arrays_mut());
        update_arrays(
            self.config,
            self.t,
            unnamed(params.arrays_mut()),
            unnamed(grads.arrays()),
            self.m.as_mut().map(|m| unnamed(m.arrays_mut())),
            self.v.as_mut().map(|v| unnamed(v.arrays_mut())),
        );
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

// ANCHOR: update_arrays
/// Applies the rule of `config` at update `t` (1-based) to every parameter array with its
/// gradient and, for Adagrad and Adam, the state arrays of the same shapes, in the same
/// order. Shared by [`Optimizer`] and [`DeepOptimizer`](crate::DeepOptimizer).
///
/// # Panics
///
/// If the state an optimizer keeps is missing (`m` for Adagrad and Adam, `v` for Adam);
/// `Optimizer::new` and `DeepOptimizer::new` create it.
pub(crate) fn update_arrays<F: Float>(
    config: OptimizerConfig,
    t: u64,
    params: Vec<&mut Array2<F>>,
    grads: Vec<&Array2<F>>,
    m: Option<Vec<&mut Array2<F>>>,
    v: Option<Vec<&mut Array2<F>>>,
) {
    let arrays = params.into_iter().zip(grads);
    match config {
        OptimizerConfig::Sgd { lr } => {
            let lr = F::cast(lr);
            for (p, g) in arrays {
                Zip::from(p).and(g).for_each(|p, &g| sgd(p, g, lr));
            }
        }
        OptimizerConfig::Adagrad { lr, eps } => {
            let (lr, eps) = (F::cast(lr), F::cast(eps));
            let mem = m.expect("Adagrad state is created with it");
            for ((p, g), h) in arrays.zip(mem) {
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
            ..
        } => {
            let t = t as i32;
            let h = AdamHyper {
                lr: F::cast(lr),
                beta1: F::cast(beta1),
                beta2: F::cast(beta2),
                eps: F::cast(eps),
                // 1 − βᵗ, the bias corrections of step t.
                c1: F::cast(1.0 - beta1.powi(t)),
                c2: F::cast(1.0 - beta2.powi(t)),
            };
            let m = m.expect("Adam state is created with it");
            let v = v.expect("Adam state is created with it");
            for (((p, g), m), v) in arrays.zip(m).zip(v) {
                Zip::from(p)
                    .and(g)
                    .and(m)
                    .and(v)
                    .for_each(|p, &g, m, v| adam(p, g, m, v, &h));
            }
        }
    }
}
// ANCHOR_END: update_arrays

// ANCHOR: decay_weights
/// AdamW's decoupled weight decay, applied before the update: θ ← (1 − lr·λ)·θ for every
/// weight matrix of a named list such as [`Params::arrays_mut`] (names starting with `w`);
/// the biases are left alone. Does nothing when λ is 0.
pub fn decay_weights<'a, F: Float, N: AsRef<str>>(
    config: OptimizerConfig,
    arrays: impl IntoIterator<Item = (N, &'a mut Array2<F>)>,
) {
    let (lr, lambda) = (config.lr(), config.weight_decay());
    if lambda == 0.0 {
        return;
    }
    let keep = F::cast(1.0 - lr * lambda);
    for (name, w) in arrays {
        if name.as_ref().starts_with('w') {
            w.mapv_inplace(|x| x * keep);
        }
    }
}
// ANCHOR_END: decay_weights

/// The arrays of a named list such as [`Params::arrays`], without their names.
pub(crate) fn unnamed<N, T>(named: impl IntoIterator<Item = (N, T)>) -> Vec<T> {
    named.into_iter().map(|(_, a)| a).collect()
}

// ANCHOR: update_rules
/// SGD for one entry: θ ← θ − lr·g.
fn sgd<F: Float>(p: &mut F, g: F, lr: F) {
    *p -= lr * g;
}

/// Adagrad for one entry: G ← G + g²; θ ← θ − lr·g / √(G + eps).
fn adagrad<F: Float>(p: &mut F, g: F, h: &mut F, lr: F, eps: F) {
    *h += g * g;
    *p -= lr * g / (*h + eps).sqrt();
}

/// Adam's hyperparameters at step t, with the bias corrections c1 = 1 − β₁ᵗ and
/// c2 = 1 − β₂ᵗ.
struct AdamHyper<F> {
    lr: F,
    beta1: F,
    beta2: F,
    eps: F,
    c1: F,
    c2: F,
}

/// Adam for one entry: m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g², then
/// θ ← θ − lr·m̂ / (√v̂ + eps) with m̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ).
fn adam<F: Float>(p: &mut F, g: F, m: &mut F, v: &mut F, h: &AdamHyper<F>) {
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

    #[test]
    fn adamw_shrinks_weights_but_not_biases_before_the_step() {
        let mut p: Params = Params::zeros(1, 1, 1);
        p.w_ya = array![[2.0]];
        p.b_y = array![[2.0]];
        let zero: Grads = Params::zeros(1, 1, 1);
        let (lr, lambda) = (0.1, 0.5);
        let mut opt = Optimizer::new(OptimizerConfig::adamw(lr, lambda), &p);
        assert_eq!(opt.config.name(), "adamw");
        opt.step(&mut p, &zero);
        // A zero gradient leaves Adam's step at 0: only the decay acts, on W_ya alone.
        assert!((p.w_ya[[0, 0]] - 2.0 * (1.0 - lr * lambda)).abs() < 1e-15);
        assert_eq!(p.b_y[[0, 0]], 2.0);
        // λ = 0 is plain Adam, and an old checkpoint without the field reads as λ = 0.
        let json = r#"{"kind":"adam","lr":0.1,"beta1":0.9,"beta2":0.999,"eps":1e-8}"#;
        let old: OptimizerConfig = serde_json::from_str(json).unwrap();
        assert_eq!(old, OptimizerConfig::adam(0.1));
        assert_eq!(old.name(), "adam");
    }
}
