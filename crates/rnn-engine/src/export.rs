//! Weights as safetensors, named as the equivalent PyTorch modules, so that
//! `load_state_dict` takes them as they are:
//!
//! ```python
//! rnn = nn.RNN(V, n_a, num_layers=N)    # or nn.GRU, nn.LSTM; tanh for nn.RNN
//! fc = nn.Linear(n_a, V)
//! ```
//!
//! | tensor              | shape           | here                        |
//! |---------------------|-----------------|-----------------------------|
//! | `rnn.weight_ih_l{k}`| (G·n_a, n_in)   | layer k's `w_ih` (W_ax for the post's model); n_in = V for k = 0, n_a above |
//! | `rnn.weight_hh_l{k}`| (G·n_a, n_a)    | layer k's `w_hh` (W_aa)     |
//! | `rnn.bias_ih_l{k}`  | (G·n_a)         | layer k's `b_ih` (b_a)      |
//! | `rnn.bias_hh_l{k}`  | (G·n_a)         | layer k's `b_hh`; zeros for the vanilla cell, whose one bias b_a is `bias_ih` (PyTorch adds both; on import they are summed into b_a) |
//! | `fc.weight`         | (V, n_a)        | W_ya                        |
//! | `fc.bias`           | (V)             | b_y                         |
//!
//! G is 1 for the vanilla cell, 3 for the GRU (r, z, n) and 4 for the LSTM (i, f, g, o),
//! in PyTorch's gate order.
//!
//! The safetensors metadata holds one key, `rnn`, whose value is a JSON object with the
//! vocabulary, the element type, the training configuration (cell and layers included)
//! and step. (One key, because the format stores its metadata map in hash order: with a
//! single key the bytes are the same on every export.)

use std::collections::HashMap;

use ndarray::{Array2, ShapeBuilder};
use rnn::{CellKind, DeepParams, DeepShape, LayerParams};
use rnn_data::Vocab;
use safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::{Dtype, Model, Params, TrainConfig, TrainState};

/// The metadata key under which the model description is stored.
pub const METADATA_KEY: &str = "rnn";

/// The PyTorch names of the six tensors of the post's model (one layer), in the order of
/// the table above.
pub const TENSOR_NAMES: [&str; 6] = [
    "rnn.weight_ih_l0",
    "rnn.weight_hh_l0",
    "rnn.bias_ih_l0",
    "rnn.bias_hh_l0",
    "fc.weight",
    "fc.bias",
];

/// The PyTorch names of every tensor of an `n_layers`-layer model, in file order.
pub fn tensor_names(n_layers: usize) -> Vec<String> {
    let mut names = Vec::with_capacity(4 * n_layers + 2);
    for k in 0..n_layers {
        for what in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] {
            names.push(format!("rnn.{what}_l{k}"));
        }
    }
    names.push("fc.weight".into());
    names.push("fc.bias".into());
    names
}

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
    MissingTensor(String),
    /// A tensor has the wrong shape.
    #[error("tensor {name} has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The tensor.
        name: String,
        /// Its shape.
        found: Vec<usize>,
        /// The shape the vocabulary and hidden size require.
        expected: Vec<usize>,
    },
    /// A tensor holds NaN or an infinity (a checkpoint could not store it).
    #[error("tensor {0} holds a value that is not finite (NaN or infinity)")]
    NonFinite(String),
    /// The training configuration in the metadata is out of range.
    #[error("invalid training configuration in the \"rnn\" metadata: {0}")]
    Config(String),
    /// A tensor has an element type this crate cannot use.
    #[error("tensor {name} has dtype {found}, expected F32 or F64 (the same for all tensors)")]
    Dtype {
        /// The tensor.
        name: String,
        /// Its element type.
        found: String,
    },
}

/// The weights of an imported model.
#[derive(Clone, Debug, PartialEq)]
pub enum Imported {
    /// One vanilla layer: the post's model (its two PyTorch biases summed into b_a).
    Vanilla(Params<f64>),
    /// Any other cell or depth.
    Deep(DeepParams<f64>),
}

impl Imported {
    /// Hidden size n_a.
    pub fn n_a(&self) -> usize {
        match self {
            Imported::Vanilla(p) => p.n_a(),
            Imported::Deep(p) => p.n_a(),
        }
    }
}

/// Serializes the state's weights with PyTorch names, in the run's element type.
pub fn to_safetensors(state: &TrainState<f64>, dtype: Dtype) -> Vec<u8> {
    let deep = state.model.as_deep();
    let n_a = deep.n_a();
    let rows = deep.cell.n_gates() * n_a;
    // The vanilla cell keeps one bias; PyTorch's second is written as zeros.
    let zeros = Array2::<f64>::zeros((rows, 1));
    let mut arrays: Vec<(&Array2<f64>, Vec<usize>)> = Vec::new();
    for layer in &deep.layers {
        let b_hh = if layer.b_hh.nrows() == rows {
            &layer.b_hh
        } else {
            &zeros
        };
        arrays.push((&layer.w_ih, vec![rows, layer.w_ih.ncols()]));
        arrays.push((&layer.w_hh, vec![rows, n_a]));
        arrays.push((&layer.b_ih, vec![rows]));
        arrays.push((b_hh, vec![rows]));
    }
    arrays.push((&deep.w_ya, vec![deep.w_ya.nrows(), n_a]));
    arrays.push((&deep.b_y, vec![deep.b_y.nrows()]));
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensor_names(deep.layers.len())
        .into_iter()
        .zip(&arrays)
        .map(|(name, (a, shape))| (name, shape.clone(), to_bytes(a, dtype)))
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

/// The cell and depth of a file: from its configuration, else from its tensors (the layers
/// present, and G = rows / columns of `rnn.weight_hh_l0`).
fn cell_and_layers(
    st: &SafeTensors<'_>,
    config: Option<&TrainConfig>,
) -> Result<(CellKind, usize), ImportError> {
    if let Some(c) = config {
        return Ok((c.cell, c.layers));
    }
    let hh = st
        .tensor("rnn.weight_hh_l0")
        .map_err(|_| ImportError::MissingTensor("rnn.weight_hh_l0".into()))?;
    let shape = hh.shape().to_vec();
    let cell = match shape.as_slice() {
        [rows, cols] if *cols > 0 && *rows == *cols => CellKind::Rnn,
        [rows, cols] if *cols > 0 && *rows == 3 * cols => CellKind::Gru,
        [rows, cols] if *cols > 0 && *rows == 4 * cols => CellKind::Lstm,
        _ => {
            return Err(ImportError::Shape {
                name: "rnn.weight_hh_l0".into(),
                found: shape,
                expected: vec![0, 0],
            });
        }
    };
    let layers = (0..=crate::MAX_LAYERS)
        .take_while(|k| st.tensor(&format!("rnn.weight_ih_l{k}")).is_ok())
        .count();
    if layers > crate::MAX_LAYERS {
        return Err(ImportError::Config(format!(
            "more than {} layers",
            crate::MAX_LAYERS
        )));
    }
    Ok((cell, layers.max(1)))
}

/// Reads weights written by [`to_safetensors`] (or by PyTorch with the same names and an
/// `rnn` metadata entry holding at least the vocabulary). Returns the weights (as `f64`;
/// exact for `f32` files) and the metadata.
pub fn from_safetensors(bytes: &[u8]) -> Result<(Imported, ExportInfo), ImportError> {
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
    let (cell, n_layers) = cell_and_layers(&st, info.config.as_ref())?;
    // The hidden size: the configuration's, else the recurrent weights' column count.
    let n_a = match &info.config {
        Some(c) => c.hidden,
        None => st
            .tensor("rnn.weight_hh_l0")
            .map_err(|_| ImportError::MissingTensor("rnn.weight_hh_l0".into()))?
            .shape()
            .get(1)
            .copied()
            .unwrap_or(0),
    };
    if let Some(config) = &info.config {
        check_config(config, n_a)?;
    }
    let rows = cell.n_gates() * n_a;
    let mut expected = Vec::new();
    for k in 0..n_layers {
        let n_in = if k == 0 { v } else { n_a };
        expected.extend([vec![rows, n_in], vec![rows, n_a], vec![rows], vec![rows]]);
    }
    expected.extend([vec![v, n_a], vec![v]]);
    let mut values: Vec<Array2<f64>> = Vec::with_capacity(expected.len());
    let mut file_dtype = None;
    for (name, want) in tensor_names(n_layers).into_iter().zip(expected) {
        let t = st
            .tensor(&name)
            .map_err(|_| ImportError::MissingTensor(name.clone()))?;
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
        let (r, c) = (want[0], want.get(1).copied().unwrap_or(1));
        let a = Array2::from_shape_vec((r, c), data).map_err(|e| ImportError::Shape {
            name: format!("{name} ({e})"),
            found: t.shape().to_vec(),
            expected: want,
        })?;
        values.push(a);
    }
    let info = ExportInfo {
        dtype: file_dtype.unwrap_or(info.dtype),
        ..info
    };
    let mut it = values.into_iter();
    let mut next = || it.next().expect("one array per name");
    let mut layers = Vec::with_capacity(n_layers);
    for _ in 0..n_layers {
        let (w_ih, w_hh, b_ih, b_hh) = (next(), next(), next(), next());
        layers.push(LayerParams {
            w_ih,
            w_hh,
            b_ih,
            b_hh,
        });
    }
    let (w_ya, b_y) = (next(), next());
    if cell == CellKind::Rnn && n_layers == 1 {
        let layer = layers.pop().expect("one layer");
        let b_a = &layer.b_ih + &layer.b_hh;
        // The sum must be finite in the file's element type too (two large f32 biases can
        // add up to infinity).
        let finite = |x: f64| match info.dtype {
            Dtype::F32 => (x as f32).is_finite(),
            Dtype::F64 => x.is_finite(),
        };
        if !b_a.iter().all(|&x| finite(x)) {
            return Err(ImportError::NonFinite(
                "rnn.bias_ih_l0 + rnn.bias_hh_l0".into(),
            ));
        }
        let mut w_ax = Array2::zeros((n_a, v).f());
        w_ax.assign(&layer.w_ih);
        let params = Params {
            w_ax,
            w_aa: layer.w_hh,
            w_ya,
            b_a,
            b_y,
        };
        return Ok((Imported::Vanilla(params), info));
    }
    if cell == CellKind::Rnn {
        // The vanilla cell of a stack keeps one bias too.
        for layer in &mut layers {
            layer.b_ih = &layer.b_ih + &layer.b_hh;
            layer.b_hh = Array2::zeros((0, 1));
            if !layer.b_ih.iter().all(|x| x.is_finite()) {
                return Err(ImportError::NonFinite("rnn.bias_ih + rnn.bias_hh".into()));
            }
        }
    }
    let params = DeepParams {
        cell,
        layers,
        w_ya,
        b_y,
    };
    Ok((Imported::Deep(params), info))
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
/// dinosaur preset with the file's hidden size, cell and depth), a new optimizer, zero
/// carried state.
pub fn state_from_import(params: Imported, info: &ExportInfo) -> TrainState<f64> {
    let mut config = info.config.clone().unwrap_or_else(TrainConfig::dinosaurs);
    config.hidden = params.n_a();
    config.dtype = info.dtype;
    let model = match params {
        Imported::Vanilla(params) => {
            config.cell = CellKind::Rnn;
            config.layers = 1;
            Model::Vanilla {
                optimizer: crate::Optimizer::new(config.optimizer, &params),
                hidden: Array2::zeros((config.hidden, config.batch).f()),
                params,
            }
        }
        Imported::Deep(params) => {
            let shape: DeepShape = params.shape();
            config.cell = shape.cell;
            config.layers = shape.n_layers;
            Model::Deep(Box::new(crate::DeepModel {
                optimizer: rnn::DeepOptimizer::new(config.optimizer, &params),
                state: rnn::State::zeros(shape, config.batch),
                params,
                dropout_rng: rand::SeedableRng::seed_from_u64(
                    config.seed ^ crate::train::DROPOUT_SEED_SALT,
                ),
            }))
        }
    };
    let smoothed_loss = crate::initial_smoothed_loss(&config, info.vocab.len());
    TrainState {
        sample_rng: rand::SeedableRng::seed_from_u64(config.seed ^ 0x5A4D_504C_4552),
        config,
        vocab: info.vocab.clone(),
        step: info.step,
        model,
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
