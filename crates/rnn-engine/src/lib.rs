//! The model of the [`rnn`] crate, made fast, and the training loop that runs on it.
//!
//! [`rnn`] is the reference: the post's equations in plain safe ndarray, what the book
//! shows. This crate computes the same losses and gradients (tested against the reference:
//! to 1e-12 relative in `f64`) with everything that exists only for speed:
//!
//! - [`forward_into`] and [`backward_into`] run over buffers sized once per batch shape
//!   ([`Cache`], [`Bptt`]): the output layer and the weight gradients as single products
//!   over all time steps, the recurrence with register-blocked kernels (`kernels`,
//!   `tiles512`), a batch split into column groups over threads;
//! - at batch 1 in `f64`, the classic recipe's whole step fused into one pass with no
//!   gradient arrays (`batch1`, on the intrinsics kernels of `matvec`);
//! - every kernel compiled for three instruction-set tiers, AVX-512, AVX2 + FMA and
//!   portable, chosen once per process ([`Tier`]; `RNN_ISA=avx512|avx2|portable` forces
//!   one);
//! - [`Trainer`], checkpoints, safetensors exports and the benchmark configurations.
//!
//! All the `unsafe` code of the workspace is in this crate: calls into `#[target_feature]`
//! functions after the tier check, and intrinsics on pointers bounded by an assert, each
//! with a `// SAFETY:` comment.
//!
//! # Example
//!
//! ```
//! use ndarray::{array, Array2};
//! use rand::SeedableRng;
//! use rnn::Params;
//!
//! let params: Params = Params::init(27, 50, 27, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
//! let x = array![[None], [Some(1)]];
//! let y = array![[Some(1)], [Some(2)]];
//! let a0 = Array2::zeros((50, 1));
//! let (fast, _) = rnn_engine::forward(&params, x.view(), y.view(), a0.view());
//! let (reference, _) = rnn::rnn_forward(&params, x.view(), y.view(), a0.view());
//! assert!((fast.total - reference.total).abs() < 1e-12 * reference.total);
//! ```
#![deny(clippy::undocumented_unsafe_blocks)]

mod backward;
mod batch1;
pub mod bench;
mod checkpoint;
mod clip;
mod deep;
mod elementwise;
pub mod export;
mod float;
mod forward;
mod guard;
mod isa;
mod kernels;
mod matvec;
mod model;
mod norms;
mod optim;
mod padded;
mod step;
#[cfg(target_arch = "x86_64")]
mod tiles512;
mod train;

pub use backward::{Bptt, backward, backward_into};
pub use checkpoint::{
    AtomicWriteError, Checkpoint, CheckpointError, FORMAT_VERSION, write_atomically,
};
pub use clip::apply_clip;
pub use deep::{DeepBuffers, deep_evaluate, deep_gradients, deep_update_step};
pub use float::Float;
pub use forward::{Cache, forward, forward_into, hidden_step_into, output_into};
pub use guard::StepReport;
pub use isa::Tier;
pub use model::{DeepModel, Model, evaluate_lines, evaluate_stream};
pub use optim::step_checked;
pub use step::{StepBuffers, update_step};
pub use train::{
    ConfigError, Dtype, Evaluation, Event, HistoryRow, MAX_ACTIVATIONS, MAX_BATCH, MAX_HIDDEN,
    MAX_LAYERS, MAX_PARAM, MAX_SEQ_LEN, Summary, TrainConfig, TrainError, TrainState, Trainer,
    initial_smoothed_loss,
};

pub use rnn::{
    Clip, Decay, Grads, Loss, Optimizer, OptimizerConfig, Params, SampleConfig, Schedule, TokenId,
};
