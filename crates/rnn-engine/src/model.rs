//! What a run trains: the post's one vanilla layer (on the engine's fused vanilla paths), or
//! a stack of any cell (on [`crate::deep`]), with its optimizer and carried state.

use ndarray::{Array2, Axis, ShapeBuilder};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rnn::{CellKind, DeepOptimizer, DeepParams, DeepShape, Sample, State};
use rnn_data::{Batch, Example};
use serde::{Deserialize, Serialize};

use crate::deep::{DeepBuffers, deep_evaluate};
use crate::{Cache, Float, Loss, Optimizer, Params, SampleConfig, TokenId, forward_into};

/// A stack of recurrent layers of any cell, with everything its training needs besides the
/// data: the parameters, the optimizer's accumulators, the state carried between chunks
/// and the generator of the dropout masks (so that a resumed run draws the same masks).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "F: Float")]
pub struct DeepModel<F: Float = f64> {
    /// The parameters.
    pub params: DeepParams<F>,
    /// The optimizer and its accumulators.
    pub optimizer: DeepOptimizer<F>,
    /// The state carried into the next chunk (stream mode), (n_a, m) per layer.
    pub state: State<F>,
    /// The generator of the dropout masks.
    pub dropout_rng: ChaCha8Rng,
}

/// The trained model of a run and its optimizer state.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per run; boxing the post's model would only add a pointer to follow"
)]
pub enum Model<F: Float = f64> {
    /// One vanilla tanh layer: the post's model.
    Vanilla {
        /// The parameters.
        params: Params<F>,
        /// The optimizer and its accumulators.
        optimizer: Optimizer<F>,
        /// The hidden state carried into the next step, (n_a, m).
        hidden: Array2<F>,
    },
    /// Any cell, any depth.
    Deep(Box<DeepModel<F>>),
}

impl<F: Float> Model<F> {
    /// The number of trained parameters (every weight and bias).
    pub fn n_params(&self) -> usize {
        match self {
            Model::Vanilla { params, .. } => params.n_params(),
            Model::Deep(d) => d.params.n_params(),
        }
    }

    /// The vanilla parameters, when this is the post's model.
    pub fn vanilla(&self) -> Option<&Params<F>> {
        match self {
            Model::Vanilla { params, .. } => Some(params),
            Model::Deep(_) => None,
        }
    }

    /// The parameters as a stack (a vanilla model as one vanilla layer).
    pub fn as_deep(&self) -> DeepParams<F> {
        match self {
            Model::Vanilla { params, .. } => DeepParams::from_params(params),
            Model::Deep(d) => d.params.clone(),
        }
    }

    /// The cell of every layer.
    pub fn cell(&self) -> CellKind {
        match self {
            Model::Vanilla { .. } => CellKind::Rnn,
            Model::Deep(d) => d.params.cell,
        }
    }

    /// Number of stacked layers.
    pub fn n_layers(&self) -> usize {
        match self {
            Model::Vanilla { .. } => 1,
            Model::Deep(d) => d.params.layers.len(),
        }
    }

    /// Hidden size n_a.
    pub fn n_a(&self) -> usize {
        match self {
            Model::Vanilla { params, .. } => params.n_a(),
            Model::Deep(d) => d.params.n_a(),
        }
    }

    /// The shapes: cell, input, hidden and output sizes, layers.
    pub fn shape(&self) -> DeepShape {
        match self {
            Model::Vanilla { params, .. } => DeepShape {
                cell: CellKind::Rnn,
                n_x: params.n_x(),
                n_a: params.n_a(),
                n_y: params.n_y(),
                n_layers: 1,
            },
            Model::Deep(d) => d.params.shape(),
        }
    }

    /// Every parameter array with its name.
    pub fn arrays(&self) -> Vec<(String, &Array2<F>)> {
        match self {
            Model::Vanilla { params, .. } => params
                .arrays()
                .into_iter()
                .map(|(n, a)| (n.to_string(), a))
                .collect(),
            Model::Deep(d) => d.params.arrays(),
        }
    }

    /// The largest |θ|.
    pub fn max_abs(&self) -> f64 {
        self.arrays()
            .iter()
            .flat_map(|(_, a)| a.iter())
            .fold(0.0_f64, |m, v| m.max(v.as_f64().abs()))
    }

    /// Whether every parameter is finite.
    pub fn all_finite(&self) -> bool {
        self.arrays()
            .iter()
            .all(|(_, a)| a.iter().all(|v| v.is_finite()))
    }

    /// The same model in another float type (exact from f32 to f64 and back).
    pub fn cast<G: Float>(&self) -> Model<G> {
        let cast2 = |a: &Array2<F>| a.mapv(|v| G::cast(v.as_f64()));
        match self {
            Model::Vanilla {
                params,
                optimizer,
                hidden,
            } => Model::Vanilla {
                params: params.cast(),
                optimizer: optimizer.cast(),
                hidden: cast2(hidden),
            },
            Model::Deep(d) => Model::Deep(Box::new(DeepModel {
                params: d.params.cast(),
                optimizer: d.optimizer.cast(),
                state: State {
                    h: d.state.h.iter().map(cast2).collect(),
                    c: d.state.c.iter().map(cast2).collect(),
                },
                dropout_rng: d.dropout_rng.clone(),
            })),
        }
    }

    /// One sample (see [`rnn::sample`] and [`rnn::sample_deep`]).
    pub fn sample<R: Rng + ?Sized>(
        &self,
        prefix: &[TokenId],
        config: &SampleConfig,
        rng: &mut R,
    ) -> Sample {
        match self {
            Model::Vanilla { params, .. } => rnn::sample(params, prefix, config, rng),
            Model::Deep(d) => rnn::sample_deep(&d.params, prefix, config, rng),
        }
    }

    /// Summed loss of `examples`, each from a zero state (see [`crate::evaluate_lines`]).
    pub fn evaluate_lines(&self, examples: &[Example], batch: usize) -> Loss {
        match self {
            Model::Vanilla { params, .. } => evaluate_lines(params, examples, batch),
            Model::Deep(d) => {
                let mut total = Loss::default();
                let mut buf = DeepBuffers::new(d.params.shape(), batch.max(1), 1);
                for chunk in examples.chunks(batch.max(1)) {
                    let b = Batch::from_examples(chunk);
                    let mut state = State::zeros(d.params.shape(), b.batch_size());
                    let (x, y) = (b.inputs.view(), b.targets.view());
                    let l = deep_evaluate(&d.params, x, y, &mut state, &mut buf);
                    total.total += l.total;
                    total.n_targets += l.n_targets;
                }
                total
            }
        }
    }

    /// Summed loss of predicting each next character of `ids` (see
    /// [`crate::evaluate_stream`]).
    pub fn evaluate_stream(&self, ids: &[TokenId], seq_len: usize) -> Loss {
        match self {
            Model::Vanilla { params, .. } => evaluate_stream(params, ids, seq_len),
            Model::Deep(d) => {
                let mut total = Loss::default();
                let mut state = State::zeros(d.params.shape(), 1);
                let mut buf = DeepBuffers::new(d.params.shape(), 1, seq_len.max(1));
                let n = ids.len().saturating_sub(1);
                let mut start = 0;
                while start < n {
                    let end = (start + seq_len.max(1)).min(n);
                    let x = Array2::from_shape_fn((end - start, 1), |(t, _)| Some(ids[start + t]));
                    let y =
                        Array2::from_shape_fn((end - start, 1), |(t, _)| Some(ids[start + t + 1]));
                    let l = deep_evaluate(&d.params, x.view(), y.view(), &mut state, &mut buf);
                    total.total += l.total;
                    total.n_targets += l.n_targets;
                    start = end;
                }
                total
            }
        }
    }

    /// The top layer's hidden states and the predicted distributions while reading `x`
    /// (one column, from a zero state): ((n_a, T), (n_y, T)), in f64.
    pub fn read(&self, x: &[Option<TokenId>]) -> (Array2<f64>, Array2<f64>) {
        let deep = self.as_deep();
        let shape = deep.shape();
        let mut state = State::zeros(shape, 1);
        let mut h = Array2::zeros((shape.n_a, x.len()).f());
        let mut p = Array2::zeros((shape.n_y, x.len()).f());
        for (t, &id) in x.iter().enumerate() {
            let z = rnn::deep_step(&deep, &mut state, ndarray::aview1(&[id]));
            let y = rnn::softmax(z.view());
            h.column_mut(t)
                .assign(&state.h[shape.n_layers - 1].column(0).mapv(|v| v.as_f64()));
            p.column_mut(t)
                .assign(&y.index_axis(Axis(1), 0).mapv(|v| v.as_f64()));
        }
        (h, p)
    }
}

/// Summed loss of `examples`, each from a zero hidden state, in padded batches of up to
/// `batch` examples.
pub fn evaluate_lines<F: Float>(params: &Params<F>, examples: &[Example], batch: usize) -> Loss {
    let mut total = Loss::default();
    let mut cache = Cache::new();
    for chunk in examples.chunks(batch.max(1)) {
        let b = Batch::from_examples(chunk);
        let a0 = Array2::zeros((params.n_a(), b.batch_size()).f());
        let l = forward_into(
            params,
            b.inputs.view(),
            b.targets.view(),
            a0.view(),
            &mut cache,
        );
        total.total += l.total;
        total.n_targets += l.n_targets;
    }
    total
}

/// Summed loss of predicting each next character of `ids` from the ones before, in chunks
/// of `seq_len` with the hidden state carried across chunks.
pub fn evaluate_stream<F: Float>(params: &Params<F>, ids: &[TokenId], seq_len: usize) -> Loss {
    let mut total = Loss::default();
    let mut cache = Cache::new();
    let mut a = Array2::zeros((params.n_a(), 1).f());
    let n = ids.len().saturating_sub(1);
    let mut start = 0;
    while start < n {
        let len = seq_len.max(1).min(n - start);
        let x = Array2::from_shape_fn((len, 1), |(t, _)| Some(ids[start + t]));
        let y = Array2::from_shape_fn((len, 1), |(t, _)| Some(ids[start + t + 1]));
        let l = forward_into(params, x.view(), y.view(), a.view(), &mut cache);
        a.assign(&cache.a_last());
        total.total += l.total;
        total.n_targets += l.n_targets;
        start += len;
    }
    total
}

/// The shape every array of a stack must have, by name, computed without allocating.
fn expected_dims(shape: DeepShape) -> Vec<(String, (usize, usize))> {
    let rows = shape.cell.n_gates() * shape.n_a;
    let bias_hh = if shape.cell == CellKind::Rnn { 0 } else { rows };
    let mut dims = Vec::new();
    for k in 0..shape.n_layers {
        let n_in = if k == 0 { shape.n_x } else { shape.n_a };
        dims.push((format!("w_ih_l{k}"), (rows, n_in)));
        dims.push((format!("w_hh_l{k}"), (rows, shape.n_a)));
        dims.push((format!("b_ih_l{k}"), (rows, 1)));
        dims.push((format!("b_hh_l{k}"), (bias_hh, 1)));
    }
    dims.push(("w_ya".into(), (shape.n_y, shape.n_a)));
    dims.push(("b_y".into(), (shape.n_y, 1)));
    dims
}

/// Checks that `params` has exactly the arrays `shape` calls for, naming the first that
/// does not (for checkpoints and imports, whose bytes come from outside).
pub fn check_deep_shapes<F: Float>(params: &DeepParams<F>, shape: DeepShape) -> Result<(), String> {
    if params.cell != shape.cell {
        return Err(format!(
            "cell {} in the parameters, {} expected",
            params.cell.name(),
            shape.cell.name()
        ));
    }
    if params.layers.len() != shape.n_layers {
        return Err(format!(
            "{} layers in the parameters, {} expected",
            params.layers.len(),
            shape.n_layers
        ));
    }
    let found = params.arrays();
    for ((name, dims), (_, array)) in expected_dims(shape).iter().zip(&found) {
        if array.dim() != *dims {
            return Err(format!(
                "{name} has shape {:?}, expected {dims:?}",
                array.dim()
            ));
        }
    }
    Ok(())
}

impl<F: Float> DeepModel<F> {
    /// Checks parameters, optimizer accumulators and carried state against `shape` and the
    /// batch `m`.
    pub fn check(&self, shape: DeepShape, m: usize) -> Result<(), String> {
        check_deep_shapes(&self.params, shape)?;
        for acc in [&self.optimizer.m, &self.optimizer.v].into_iter().flatten() {
            check_deep_shapes(acc, shape).map_err(|e| format!("optimizer state: {e}"))?;
        }
        let s = &self.state;
        let layer_states = s.h.iter().chain(&s.c);
        if s.h.len() != shape.n_layers
            || s.c.len() != shape.n_layers
            || layer_states.clone().any(|a| a.dim() != (shape.n_a, m))
        {
            return Err(format!(
                "the carried state should hold {} layers of ({}, {m}) for h and for c",
                shape.n_layers, shape.n_a
            ));
        }
        Ok(())
    }
}
