//! A stack of recurrent layers of any cell, with an output layer on top:
//!
//! ```text
//! h_0<t> = cell(x⟨t⟩, h_0<t-1>)                  layer 0 reads the characters
//! h_k⟨t⟩ = cell(d_k−1<t> ⊙ h_k−1<t>, h_k⟨t-1⟩)   layer k the one below, after dropout
//! ŷ⟨t⟩   = softmax(W_ya h_top⟨t⟩ + b_y)          L = Σ_t −ln ŷ⟨t⟩[y⟨t⟩]
//! ```
//!
//! (`d` is a dropout mask, all ones at evaluation time.) Backpropagation through time runs
//! from the last step to the first, and inside each step from the top layer down: a
//! layer's dL/dh' is the gradient from above (the output for the top layer, the layer
//! above's dL/dx through the mask for the others) plus the gradient from its own next
//! step.

use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::{
    DeepGrads, DeepParams, DeepShape, DropoutMasks, Float, LayerInput, Loss, StepCache, TokenId,
    cell_step_backward, cell_step_forward, output_delta, softmax, step_loss,
};

/// The recurrent state of every layer, as PyTorch's (h_0, c_0): `h[k]` and `c[k]` belong to
/// layer k. Only the LSTM reads and writes `c`; for the other cells it stays zero.
///
/// # Shapes
///
/// `h[k]`, `c[k]`: (n_a, m), for k < n_layers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "F: Float")]
pub struct State<F: Float = f64> {
    /// Hidden state of each layer.
    pub h: Vec<Array2<F>>,
    /// Cell state of each layer (LSTM).
    pub c: Vec<Array2<F>>,
}

impl<F: Float> State<F> {
    /// The zero state for a batch of `m` columns.
    pub fn zeros(shape: DeepShape, m: usize) -> Self {
        let zero = || vec![Array2::zeros((shape.n_a, m)); shape.n_layers];
        State {
            h: zero(),
            c: zero(),
        }
    }
}

/// What [`deep_backward`] needs from [`deep_forward`].
///
/// # Shapes
///
/// `steps[t][k]` is layer k at step t; `inputs[t][k - 1]` is the input of layer k ≥ 1 at
/// step t (layer k − 1's output after dropout), (n_a, m); `y_hat[t]` is (n_y, m).
#[derive(Clone, Debug, PartialEq)]
pub struct DeepCache<F: Float = f64> {
    /// The step cache of every layer at every step.
    pub steps: Vec<Vec<StepCache<F>>>,
    /// The input of every layer above the first at every step.
    pub inputs: Vec<Vec<Array2<F>>>,
    /// The dropout masks used, if any.
    pub masks: Option<DropoutMasks<F>>,
    /// The predicted distributions.
    pub y_hat: Vec<Array2<F>>,
    /// The state after the last step, to carry into the next sequence.
    pub last: State<F>,
}

impl<F: Float> DeepCache<F> {
    /// Number of time steps T.
    pub fn n_steps(&self) -> usize {
        self.y_hat.len()
    }

    /// What layer `k` read at step `t`: the ids `x_t` for layer 0, else the stored input.
    pub fn input<'a>(
        &'a self,
        x_t: ArrayView1<'a, Option<TokenId>>,
        t: usize,
        k: usize,
    ) -> LayerInput<'a, F> {
        match k {
            0 => LayerInput::Ids(x_t),
            _ => LayerInput::Dense(self.inputs[t][k - 1].view()),
        }
    }
}

// ANCHOR: layers_step_forward
/// One time step through every layer, bottom to top, updating `state`: layer 0 reads the
/// ids `x`, each layer above reads the output of the one below, multiplied by its dropout
/// mask when `masks` (one per layer below the top) is given. Returns the step caches and
/// the inputs of the layers above the first.
///
/// # Shapes
///
/// `x`: (m), `state` as in [`State`], `masks[k]`: (n_a, m).
pub fn layers_step_forward<F: Float>(
    params: &DeepParams<F>,
    state: &mut State<F>,
    x: ArrayView1<'_, Option<TokenId>>,
    masks: Option<&[Array2<F>]>,
) -> (Vec<StepCache<F>>, Vec<Array2<F>>) {
    let n_layers = params.layers.len();
    let mut steps = Vec::with_capacity(n_layers);
    let mut inputs: Vec<Array2<F>> = Vec::with_capacity(n_layers - 1);
    for (k, layer) in params.layers.iter().enumerate() {
        let input = match k {
            0 => LayerInput::Ids(x),
            _ => LayerInput::Dense(inputs[k - 1].view()),
        };
        let step = cell_step_forward(
            params.cell,
            layer,
            input,
            state.h[k].view(),
            state.c[k].view(),
        );
        state.h[k].assign(step.h());
        if let Some(c) = step.c() {
            state.c[k].assign(c);
        }
        if k + 1 < n_layers {
            inputs.push(match masks {
                Some(masks) => step.h() * &masks[k], //                  (n_a, m)
                None => step.h().clone(),
            });
        }
        steps.push(step);
    }
    (steps, inputs)
}
// ANCHOR_END: layers_step_forward

/// The output logits W_ya h + b_y of the top layer's hidden state `h`.
///
/// # Shapes
///
/// `h`: (n_a, m) → (n_y, m).
pub fn deep_logits<F: Float>(params: &DeepParams<F>, h: ArrayView2<'_, F>) -> Array2<F> {
    params.w_ya.dot(&h) + &params.b_y //                                 (n_y, m)
}

/// One step of evaluation or sampling (no dropout): advances `state` on the input ids `x`
/// and returns the logits of the next character.
///
/// # Shapes
///
/// `x`: (m), `state` as in [`State`] → (n_y, m).
pub fn deep_step<F: Float>(
    params: &DeepParams<F>,
    state: &mut State<F>,
    x: ArrayView1<'_, Option<TokenId>>,
) -> Array2<F> {
    layers_step_forward(params, state, x, None);
    deep_logits(params, state.h[params.layers.len() - 1].view())
}

/// Forward propagation of the stack over a sequence: the summed loss and the cache for
/// [`deep_backward`]. `dropout` is `Some` at training time (masks from
/// [`DropoutMasks::draw`]) and `None` at evaluation time.
///
/// Inputs and targets are as in [`rnn_forward`](crate::rnn_forward): `x[[t, j]]` is the
/// input id at step t of column j (`None` = no input), `y[[t, j]]` the target (`None` =
/// padding).
///
/// # Shapes
///
/// `x`, `y`: (T, m), `state0` as in [`State`], `dropout.masks`: T × (n_layers − 1) of
/// (n_a, m).
pub fn deep_forward<F: Float>(
    params: &DeepParams<F>,
    x: ArrayView2<'_, Option<TokenId>>,
    y: ArrayView2<'_, Option<TokenId>>,
    state0: &State<F>,
    dropout: Option<&DropoutMasks<F>>,
) -> (Loss, DeepCache<F>) {
    debug_assert_eq!(x.dim(), y.dim());
    debug_assert!(dropout.is_none_or(|d| d.masks.len() == x.nrows()));
    let top = params.layers.len() - 1;
    let mut state = state0.clone();
    let mut cache = DeepCache {
        steps: Vec::with_capacity(x.nrows()),
        inputs: Vec::with_capacity(x.nrows()),
        masks: dropout.cloned(),
        y_hat: Vec::with_capacity(x.nrows()),
        last: state0.clone(),
    };
    let mut loss = Loss::default();
    for (t, (x_t, y_t)) in x.outer_iter().zip(y.outer_iter()).enumerate() {
        let masks = dropout.map(|d| d.masks[t].as_slice());
        let (steps, inputs) = layers_step_forward(params, &mut state, x_t, masks);
        let y_hat = softmax(deep_logits(params, state.h[top].view()).view()); // (n_y, m)
        loss += step_loss(y_hat.view(), y_t);
        cache.steps.push(steps);
        cache.inputs.push(inputs);
        cache.y_hat.push(y_hat);
    }
    cache.last = state;
    (loss, cache)
}

// ANCHOR: deep_backward
/// Backpropagation through time and through the layers: the gradients of the summed loss
/// with respect to every parameter, and with respect to the initial state (dL/dh_0,
/// dL/dc_0 per layer; dL/dc_0 is zero for cells other than the LSTM).
///
/// # Shapes
///
/// `x`, `y`: (T, m) as given to [`deep_forward`]; returns gradients shaped like `params`
/// and a [`State`] of (n_a, m) arrays.
pub fn deep_backward<F: Float>(
    params: &DeepParams<F>,
    x: ArrayView2<'_, Option<TokenId>>,
    y: ArrayView2<'_, Option<TokenId>>,
    cache: &DeepCache<F>,
) -> (DeepGrads<F>, State<F>) {
    debug_assert_eq!(x.nrows(), cache.n_steps());
    let top = params.layers.len() - 1;
    let mut grads = DeepGrads::zeros(params.shape());
    // dL/dh and dL/dc of every layer, arriving from the next step.
    let mut d_next = State::zeros(params.shape(), x.ncols());
    for t in (0..cache.n_steps()).rev() {
        let dy = output_delta(cache.y_hat[t].view(), y.row(t)); //       (n_y, m)
        let h_top = cache.steps[t][top].h();
        grads.w_ya += &dy.dot(&h_top.t()); //                            (n_y, n_a)
        grads.b_y += &dy.sum_axis(Axis(1)).insert_axis(Axis(1)); //      (n_y, 1)
        let mut dh_above = params.w_ya.t().dot(&dy); //                  (n_a, m)
        for k in (0..=top).rev() {
            let dh = &dh_above + &d_next.h[k]; //                        (n_a, m)
            let (dh_prev, dx) = cell_step_backward(
                dh.view(),
                &mut d_next.c[k],
                &mut grads.layers[k],
                &params.layers[k],
                cache.input(x.row(t), t, k),
                &cache.steps[t][k],
            );
            d_next.h[k] = dh_prev;
            if let Some(dx) = dx {
                // Into the layer below, through its dropout mask.
                dh_above = match &cache.masks {
                    Some(d) => dx * &d.masks[t][k - 1],
                    None => dx,
                };
            }
        }
    }
    (grads, d_next)
}
// ANCHOR_END: deep_backward
