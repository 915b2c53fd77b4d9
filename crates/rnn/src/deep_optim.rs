//! Training a deep network: clipping and the optimizers (SGD, Adagrad, Adam) over every
//! array of [`DeepParams`], with the update rules of [`Optimizer`](crate::Optimizer) and
//! the clipping of [`Clip`], entry for entry.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::optim::{decay_weights, unnamed, update_arrays};
use crate::{Clip, DeepGrads, DeepParams, Float, OptimizerConfig};

impl<F: Float> DeepParams<F> {
    /// The same parameters in another float type.
    pub fn cast<G: Float>(&self) -> DeepParams<G> {
        let cast = |a: &Array2<F>| a.mapv(|v| G::cast(v.as_f64()));
        DeepParams {
            cell: self.cell,
            layers: self
                .layers
                .iter()
                .map(|l| crate::LayerParams {
                    w_ih: cast(&l.w_ih),
                    w_hh: cast(&l.w_hh),
                    b_ih: cast(&l.b_ih),
                    b_hh: cast(&l.b_hh),
                })
                .collect(),
            w_ya: cast(&self.w_ya),
            b_y: cast(&self.b_y),
        }
    }

    /// The global L2 norm over every array, accumulated in `f64`.
    pub fn global_norm(&self) -> f64 {
        let sum_of_squares = |a: &Array2<F>| a.iter().map(|&v| v.as_f64().powi(2)).sum::<f64>();
        self.arrays()
            .iter()
            .map(|(_, a)| sum_of_squares(a))
            .sum::<f64>()
            .sqrt()
    }
}

/// Clips deep gradients in place as `clip` says and returns their global L2 norm before
/// clipping: [`Clip::apply`] for [`DeepGrads`] (element-wise to [−c, c], or every array
/// scaled by `min(1, max / (norm + 1e-6))`).
pub fn clip_deep<F: Float>(grads: &mut DeepGrads<F>, clip: Clip) -> f64 {
    let norm = grads.global_norm();
    match clip {
        Clip::None => {}
        Clip::Value(c) => {
            let c = F::cast(c);
            for (_, g) in grads.arrays_mut() {
                g.mapv_inplace(|v| v.max(-c).min(c));
            }
        }
        Clip::Norm(max) => {
            let scale = (max / (norm + 1e-6)).min(1.0);
            if scale < 1.0 {
                let s = F::cast(scale);
                for (_, g) in grads.arrays_mut() {
                    g.mapv_inplace(|v| v * s);
                }
            }
        }
    }
    norm
}

/// [`Optimizer`](crate::Optimizer) for a [`DeepParams`]: the same hyperparameters, state
/// and update rules, applied to every array (layer by layer, then the output layer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "F: Float")]
pub struct DeepOptimizer<F: Float = f64> {
    /// The hyperparameters.
    pub config: OptimizerConfig,
    /// Number of updates made so far.
    pub t: u64,
    /// Adagrad: the sum of squared gradients. Adam: the first moment. Empty for SGD.
    pub m: Option<DeepParams<F>>,
    /// Adam: the second moment.
    pub v: Option<DeepParams<F>>,
}

impl<F: Float> DeepOptimizer<F> {
    /// A fresh optimizer for parameters shaped like `params`.
    pub fn new(config: OptimizerConfig, params: &DeepParams<F>) -> Self {
        let zeros = || DeepParams::zeros(params.shape());
        let (m, v) = match config {
            OptimizerConfig::Sgd { .. } => (None, None),
            OptimizerConfig::Adagrad { .. } => (Some(zeros()), None),
            OptimizerConfig::Adam { .. } => (Some(zeros()), Some(zeros())),
        };
        DeepOptimizer { config, t: 0, m, v }
    }

    /// Applies one update to `params` from `grads`.
    pub fn step(&mut self, params: &mut DeepParams<F>, grads: &DeepGrads<F>) {
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

    /// The same optimizer state in another float type.
    pub fn cast<G: Float>(&self) -> DeepOptimizer<G> {
        DeepOptimizer {
            config: self.config,
            t: self.t,
            m: self.m.as_ref().map(DeepParams::cast),
            v: self.v.as_ref().map(DeepParams::cast),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CellKind, DeepShape};
    use ndarray::array;

    #[test]
    fn norm_clip_scales_every_array_by_one_factor() {
        let shape = DeepShape {
            cell: CellKind::Gru,
            n_x: 2,
            n_a: 1,
            n_y: 2,
            n_layers: 2,
        };
        let mut g: DeepGrads = DeepParams::zeros(shape);
        g.layers[1].b_hh = array![[3.0], [0.0], [0.0]];
        g.w_ya = array![[4.0], [0.0]];
        let norm = clip_deep(&mut g, Clip::Norm(1.0));
        assert_eq!(norm, 5.0);
        assert!((g.layers[1].b_hh[[0, 0]] - 3.0 / (5.0 + 1e-6)).abs() < 1e-15);
        assert!((g.w_ya[[0, 0]] - 4.0 / (5.0 + 1e-6)).abs() < 1e-15);
    }
}
