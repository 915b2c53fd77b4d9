//! Weights as safetensors, named as the equivalent PyTorch module:
//!
//! ```python
//! rnn = nn.RNN(V, n_a)      # tanh, one layer
//! fc = nn.Linear(n_a, V)
//! ```
//!
//! | tensor              | shape      | here                        |
//! |---------------------|------------|-----------------------------|
//! | `rnn.weight_ih_l0`  | (n_a, V)   | W_ax                        |
//! | `rnn.weight_hh_l0`  | (n_a, n_a) | W_aa                        |
//! | `rnn.bias_ih_l0`    | (n_a)      | b_a                         |
//! | `rnn.bias_hh_l0`    | (n_a)      | zeros (PyTorch adds both biases; on import they are summed into b_a) |
//! | `fc.weight`         | (V, n_a)   | W_ya                        |
//! | `fc.bias`           | (V)        | b_y                         |
//!
//! The safetensors metadata holds one key, `rnn`, whose value is a JSON object with the
//! vocabulary, the element type, the training configuration and step. (One key, because
//! the format stores its metadata map in hash order: with a single key the bytes are the
//! same on every export.)

use std::collections::HashMap;

use ndarray::{Array2, ShapeBuilder};
use rnn_data::Vocab;
use safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::{Dtype, Optimizer, Params, TrainConfig, TrainState};

/// The metadata key under which the model description is stored.
pub const METADATA_KEY: &str = "rnn";

/// The PyTorch names of the six tensors, in the order of the table above.
pub const TENSOR_NAMES: [&str; 6] = [
    "rnn.weight_ih_l0",
    "rnn.weight_hh_l0",
    "rnn.bias_ih_l0",
    "rnn.bias_hh_l0",
    "fc.weight",
    "fc.bias",
];

/// What the `rnn` metadata entry holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportInfo {
    /// The vocabulary, in id order.
    pub vocab: Vocab,
    /// The element type of the tensors.
    pub dtype: Dtype,
    /// The training configuration (absent for weights trained elsewhere).
    pub config: Option<TrainConfig>,
    /// Steps trained.
    pub step: u64,
}

/// A safetensors file that cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Not a safetensors file, or a damaged one.
    #[error("not a valid safetensors file: {0}")]
    Format(String),
    /// The `rnn` metadata entry is missing or unreadable.
    #[error("missing or invalid \"rnn\" metadata (the vocabulary is needed): {0}")]
    Metadata(String),
    /// A required tensor is absent.
    #[error("missing tensor {0}")]
    MissingTensor(&'static str),
    /// A tensor has the wrong shape.
    #[error("tensor {name} has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The tensor.
        name: &'static str,
        /// Its shape.
        found: Vec<usize>,
        /// The shape the vocabulary and hidden size require.
        expected: Vec<usize>,
    },
    /// A tensor holds NaN or an infinity (a checkpoint could not store it).
    #[error("tensor {0} holds a value that is not finite (NaN or infinity)")]
    NonFinite(&'static str),
    /// The training configuration in the metadata is out of range.
    #[error("invalid training configuration in the \"rnn\" metadata: {0}")]
    Config(String),
    /// A tensor has an element type this crate cannot use.
    #[error("tensor {name} has dtype {found}, expected F32 or F64 (the same for all tensors)")]
    Dtype {
        /// The tensor.
        name: &'static str,
        /// Its element type.
        found: String,
    },
}

/// Serializes the state's weights with PyTorch names, in the run's element type.
pub fn to_safetensors(state: &TrainState<f64>, dtype: Dtype) -> Vec<u8> {
    let p = &state.params;
    let n_a = p.n_a();
    let zeros = Array2::<f64>::zeros((n_a, 1));
    let arrays: [(&str, &Array2<f64>, Vec<usize>); 6] = [
        (TENSOR_NAMES[0], &p.w_ax, vec![n_a, p.n_x()]),
        (TENSOR_NAMES[1], &p.w_aa, vec![n_a, n_a]),
        (TENSOR_NAMES[2], &p.b_a, vec![n_a]),
        (TENSOR_NAMES[3], &zeros, vec![n_a]),
        (TENSOR_NAMES[4], &p.w_ya, vec![p.n_y(), n_a]),
        (TENSOR_NAMES[5], &p.b_y, vec![p.n_y()]),
    ];
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = arrays
        .iter()
        .map(|(name, a, shape)| (name.to_string(), shape.clone(), to_bytes(a, dtype)))
        .collect();
    let st_dtype = match dtype {
        Dtype::F32 => StDtype::F32,
        Dtype::F64 => StDtype::F64,
    };
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(name, shape, data)| {
            let view = TensorView::new(st_dtype, shape.clone(), data)
                .expect("shape and byte length agree by construction");
            (name.clone(), view)
        })
        .collect();
    let info = ExportInfo {
        vocab: state.vocab.clone(),
        dtype,
        config: Some(state.config.clone()),
        step: state.step,
    };
    let metadata = HashMap::from([(
        METADATA_KEY.to_string(),
        serde_json::to_string(&info).expect("plain data serializes"),
    )]);
    safetensors::serialize(views, Some(metadata)).expect("valid tensors serialize")
}

/// Reads weights written by [`to_safetensors`] (or by PyTorch with the same names and an
/// `rnn` metadata entry holding at least the vocabulary), summing the two PyTorch biases
/// into b_a. Returns the parameters (as `f64`; exact for `f32` files) and the metadata.
pub fn from_safetensors(bytes: &[u8]) -> Result<(Params<f64>, ExportInfo), ImportError> {
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| ImportError::Format(e.to_string()))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| ImportError::Format(e.to_string()))?;
    let raw = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
        .ok_or_else(|| ImportError::Metadata("no \"rnn\" key".into()))?;
    let info: ExportInfo =
        serde_json::from_str(raw).map_err(|e| ImportError::Metadata(e.to_string()))?;
    let v = info.vocab.len();
    let n_a = st
        .tensor(TENSOR_NAMES[1])
        .map_err(|_| ImportError::MissingTensor(TENSOR_NAMES[1]))?
        .shape()
        .first()
        .copied()
        .unwrap_or(0);
    let expected: [Vec<usize>; 6] = [
        vec![n_a, v],
        vec![n_a, n_a],
        vec![n_a],
        vec![n_a],
        vec![v, n_a],
        vec![v],
    ];
    let mut values: Vec<Vec<f64>> = Vec::with_capacity(6);
    let mut file_dtype = None;
    for (name, want) in TENSOR_NAMES.into_iter().zip(expected) {
        let t = st
            .tensor(name)
            .map_err(|_| ImportError::MissingTensor(name))?;
        if t.shape() != want.as_slice() || n_a == 0 {
            return Err(ImportError::Shape {
                name,
                found: t.shape().to_vec(),
                expected: want,
            });
        }
        let dtype = match t.dtype() {
            StDtype::F32 => Dtype::F32,
            StDtype::F64 => Dtype::F64,
            other => {
                return Err(ImportError::Dtype {
                    name,
                    found: format!("{other:?}"),
                });
            }
        };
        if *file_dtype.get_or_insert(dtype) != dtype {
            return Err(ImportError::Dtype {
                name,
                found: format!("{dtype} (mixed with {})", file_dtype.unwrap_or(dtype)),
            });
        }
        let data = from_bytes(t.data(), dtype);
        if !data.iter().all(|v| v.is_finite()) {
            return Err(ImportError::NonFinite(name));
        }
        values.push(data);
    }
    let info = ExportInfo {
        dtype: file_dtype.unwrap_or(info.dtype),
        ..info
    };
    if let Some(config) = &info.config {
        check_config(config, n_a)?;
    }
    let mat = |data: &[f64], rows: usize, cols: usize| {
        let mut a = Array2::zeros((rows, cols));
        for (dst, src) in a.iter_mut().zip(data) {
            *dst = *src;
        }
        a
    };
    let mut w_ax = Array2::zeros((n_a, v).f());
    w_ax.assign(&mat(&values[0], n_a, v));
    let b_a: Vec<f64> = values[2]
        .iter()
        .zip(&values[3])
        .map(|(a, b)| a + b)
        .collect();
    // The sum must be finite in the file's element type too (two large f32 biases can add
    // up to infinity).
    let finite = |x: f64| match info.dtype {
        Dtype::F32 => (x as f32).is_finite(),
        Dtype::F64 => x.is_finite(),
    };
    if !b_a.iter().all(|&x| finite(x)) {
        return Err(ImportError::NonFinite("rnn.bias_ih_l0 + rnn.bias_hh_l0"));
    }
    let params = Params {
        w_ax,
        w_aa: mat(&values[1], n_a, n_a),
        w_ya: mat(&values[4], v, n_a),
        b_a: mat(&b_a, n_a, 1),
        b_y: mat(&values[5], v, 1),
    };
    Ok((params, info))
}

/// The largest batch an import accepts ([`crate::MAX_BATCH`], as for training).
/// [`state_from_import`] allocates the carried hidden state, (n_a, batch), so a damaged or
/// hostile file must not name a batch without bound (a batch of 10^15 in the metadata used
/// to abort on allocation).
pub const MAX_IMPORT_BATCH: usize = crate::MAX_BATCH;

/// Checks the metadata's configuration as [`state_from_import`] will use it (with the
/// file's hidden size), so that an import gives a state that trains and checkpoints.
fn check_config(config: &TrainConfig, n_a: usize) -> Result<(), ImportError> {
    let config = TrainConfig {
        hidden: n_a,
        ..config.clone()
    };
    config
        .validate()
        .map_err(|e| ImportError::Config(e.to_string()))
}

/// A fresh training state around imported weights: the metadata's configuration (or the
/// dinosaur preset with the file's hidden size), a new optimizer, zero carried state.
pub fn state_from_import(params: Params<f64>, info: &ExportInfo) -> TrainState<f64> {
    let mut config = info.config.clone().unwrap_or_else(TrainConfig::dinosaurs);
    config.hidden = params.n_a();
    config.dtype = info.dtype;
    let optimizer = Optimizer::new(config.optimizer, &params);
    let hidden = Array2::zeros((config.hidden, config.batch).f());
    let smoothed_loss = crate::initial_smoothed_loss(&config, info.vocab.len());
    TrainState {
        sample_rng: rand::SeedableRng::seed_from_u64(config.seed ^ 0x5A4D_504C_4552),
        config,
        vocab: info.vocab.clone(),
        step: info.step,
        params,
        optimizer,
        hidden,
        smoothed_loss,
        summary: crate::Summary::default(),
    }
}

/// Row-major little-endian bytes of `a` in `dtype`.
fn to_bytes(a: &Array2<f64>, dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::F64 => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Dtype::F32 => a.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect(),
    }
}

fn from_bytes(data: &[u8], dtype: Dtype) -> Vec<f64> {
    match dtype {
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("chunks of 8")))
            .collect(),
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().expect("chunks of 4"))))
            .collect(),
    }
}
