//! A vanilla (tanh, Elman) recurrent neural network, written to be read next to its
//! derivation: the reference implementation.
//!
//! ```text
//! a⟨t⟩ = tanh(W_ax x⟨t⟩ + W_aa a⟨t-1⟩ + b_a)      ŷ⟨t⟩ = softmax(W_ya a⟨t⟩ + b_y)
//! L = Σ_t −ln ŷ⟨t⟩[y⟨t⟩]                           backpropagation through time
//! ```
//!
//! This crate is the post in Rust: short functions in the post's order and with its names,
//! plain safe [`ndarray`], `tanh` and `exp` from the standard library. It is what the book
//! shows, what the notebooks call and what the gradient check checks. The same model made
//! fast (kernels, fused steps, threads) is the `rnn-engine` crate, tested against this one.
//!
//! # A short tour
//!
//! - [`Params`] holds `w_ax`, `w_aa`, `w_ya`, `b_a`, `b_y`; [`Grads`] has the same shapes.
//! - [`rnn_step_forward`] runs the two equations for one step, [`rnn_forward`] for a
//!   sequence, returning the [`Loss`] and a [`Cache`].
//! - [`rnn_step_backward`] is one step of backpropagation through time, [`rnn_backward`]
//!   all of them.
//! - [`gradient_check`] compares those gradients with central finite differences.
//! - [`Clip`], [`Optimizer`] and [`train_step`] train; [`sample`] invents text.
//! - Beyond the post: [`DeepParams`] stacks layers of any [`CellKind`] (the vanilla cell,
//!   PyTorch's GRU or LSTM, in PyTorch's layout), with dropout between layers
//!   ([`DropoutMasks`]); [`deep_forward`], [`deep_backward`] and [`deep_gradient_check`]
//!   are its counterparts of the functions above.
//!
//! # Notation and shapes
//!
//! Columns are examples: a batch of m sequences is processed at once, and the post is the
//! case m = 1. n_x = n_y = vocabulary size, n_a = hidden size, T = sequence length.
//!
//! | symbol  | code     | shape      |
//! |---------|----------|------------|
//! | `x⟨t⟩`  | `x[t]`   | (m) ids, one-hot (n_x, m) in the math |
//! | `a⟨t⟩`  | `a`      | (n_a, m)   |
//! | `ŷ⟨t⟩`  | `y_hat`  | (n_y, m)   |
//! | W_ax    | `w_ax`   | (n_a, n_x) |
//! | W_aa    | `w_aa`   | (n_a, n_a) |
//! | W_ya    | `w_ya`   | (n_y, n_a) |
//! | b_a     | `b_a`    | (n_a, 1)   |
//! | b_y     | `b_y`    | (n_y, 1)   |
//!
//! Inputs are character ids, `Option<TokenId>`: `None` is "no input", the zero vector fed
//! at the first step of a name. A one-hot `x⟨t⟩` is never built; W_ax `x⟨t⟩` is a column
//! gather ([`gather_columns`]). Targets are `Option<TokenId>` too: `None` marks padding,
//! which adds neither loss nor gradient.
//!
//! # Example
//!
//! ```
//! use ndarray::{array, Array2};
//! use rand::SeedableRng;
//! use rnn::{rnn_backward, rnn_forward, Params};
//!
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let params: Params = Params::init(27, 50, 27, &mut rng);
//! // "ab": inputs (none, a), targets (a, b); one column.
//! let x = array![[None], [Some(1)]];
//! let y = array![[Some(1)], [Some(2)]];
//! let a0 = Array2::zeros((50, 1));
//! let (loss, cache) = rnn_forward(&params, x.view(), y.view(), a0.view());
//! // Untrained, every character is about equally likely: loss ≈ 2 ln 27.
//! assert!((loss.total - 2.0 * 27f64.ln()).abs() < 0.01);
//! let (grads, _da0) = rnn_backward(&params, x.view(), y.view(), &cache);
//! assert_eq!(grads.w_aa.dim(), (50, 50));
//! ```
#![forbid(unsafe_code)]

pub mod analysis;
mod backward;
mod cell;
mod cell_step;
mod clip;
mod deep;
mod deep_gradcheck;
mod deep_optim;
mod deep_params;
mod dropout;
mod float;
mod forward;
mod gradcheck;
mod gru;
mod lstm;
mod optim;
mod params;
mod sample;
mod schedule;
mod train;
mod vanilla;

pub use backward::{output_delta, rnn_backward, rnn_step_backward};
pub use cell::{LayerInput, affine_backward, gate, input_product, sigmoid, stack_gates};
pub use cell_step::{StepCache, cell_step_backward, cell_step_forward};
pub use clip::{Clip, clip_norm, clip_value};
pub use deep::{
    DeepCache, State, deep_backward, deep_forward, deep_logits, deep_step, layers_step_forward,
};
pub use deep_gradcheck::{
    DEEP_GRADCHECK_EPS, DEEP_REL_ERROR_FLOOR, compare_deep_gradients, deep_gradient_check,
};
pub use deep_optim::{DeepOptimizer, clip_deep};
pub use deep_params::{CellKind, DeepGrads, DeepParams, DeepShape, LAYER_ARRAY_NAMES, LayerParams};
pub use dropout::{DropoutMasks, dropout_mask};
pub use float::Float;
pub use forward::{
    Cache, Loss, gather_columns, hidden_step, one_hot_columns, output_logits, rnn_forward,
    rnn_step_forward, softmax, step_loss,
};
pub use gradcheck::{
    GRADCHECK_EPS, GradCheck, GradCheckRow, REL_ERROR_FLOOR, compare_gradients, gradient_check,
};
pub use gru::{GruCache, gru_step_backward, gru_step_forward};
pub use lstm::{LstmCache, lstm_step_backward, lstm_step_forward};
pub use optim::{Optimizer, OptimizerConfig, decay_weights};
pub use params::{Grads, INIT_STD, PARAM_NAMES, Params, ShapeError};
pub use sample::{Sample, SampleConfig, sample, sample_deep};
pub use schedule::{Decay, Schedule};
pub use train::{initial_smoothed_loss, train_step};
pub use vanilla::{VanillaCache, vanilla_step_backward, vanilla_step_forward};

pub use rnn_data::TokenId;
