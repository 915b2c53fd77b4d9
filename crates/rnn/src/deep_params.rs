//! The parameters of a stacked (deep) network of any cell: per layer PyTorch's four arrays
//! `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`, then the output layer W_ya, b_y.
//!
//! The gates of a layer are stacked by rows in PyTorch's order, so that weights move to and
//! from `nn.RNN`, `nn.GRU` and `nn.LSTM` without reshuffling:
//!
//! | cell   | G | row blocks of `w_ih`, `w_hh`, `b_ih`, `b_hh` |
//! |--------|---|-----------------------------------------------|
//! | `Rnn`  | 1 | the tanh pre-activation                       |
//! | `Gru`  | 3 | r (reset), z (update), n (new)                |
//! | `Lstm` | 4 | i (input), f (forget), g (cell), o (output)   |

use ndarray::Array2;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{Float, Params};

/// Which recurrent cell every layer of a [`DeepParams`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellKind {
    /// The post's vanilla cell, h' = tanh(W_ih x + W_hh h + b_a).
    Rnn,
    /// The gated recurrent unit, PyTorch's `nn.GRU`.
    Gru,
    /// Long short-term memory, PyTorch's `nn.LSTM`.
    Lstm,
}

impl CellKind {
    /// Every cell, in a fixed order (for tests and tables).
    pub const ALL: [CellKind; 3] = [CellKind::Rnn, CellKind::Gru, CellKind::Lstm];

    /// G, the number of gate blocks stacked in the rows of a layer's weights.
    pub fn n_gates(self) -> usize {
        match self {
            CellKind::Rnn => 1,
            CellKind::Gru => 3,
            CellKind::Lstm => 4,
        }
    }

    /// The lowercase name: `"rnn"`, `"gru"` or `"lstm"`.
    pub fn name(self) -> &'static str {
        match self {
            CellKind::Rnn => "rnn",
            CellKind::Gru => "gru",
            CellKind::Lstm => "lstm",
        }
    }
}

/// One layer's weights, in PyTorch's layout (`weight_ih_l{k}` is `w_ih`, and so on).
///
/// # Shapes
///
/// G = [`CellKind::n_gates`], n_in = n_x for layer 0 and n_a above it.
///
/// | field  | shape        | PyTorch          |
/// |--------|--------------|------------------|
/// | `w_ih` | (G·n_a, n_in) | `weight_ih_l{k}` |
/// | `w_hh` | (G·n_a, n_a)  | `weight_hh_l{k}` |
/// | `b_ih` | (G·n_a, 1)    | `bias_ih_l{k}`   |
/// | `b_hh` | (G·n_a, 1)    | `bias_hh_l{k}`   |
///
/// The vanilla cell keeps the post's single bias: `b_ih` is b_a and `b_hh` is empty,
/// (0, 1). In PyTorch's two-bias form, `bias_ih + bias_hh = b_a`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "F: Float")]
pub struct LayerParams<F: Float = f64> {
    /// W_ih, (G·n_a, n_in): input to gates.
    pub w_ih: Array2<F>,
    /// W_hh, (G·n_a, n_a): previous hidden state to gates.
    pub w_hh: Array2<F>,
    /// b_ih, (G·n_a, 1).
    pub b_ih: Array2<F>,
    /// b_hh, (G·n_a, 1); (0, 1) for the vanilla cell.
    pub b_hh: Array2<F>,
}

/// The sizes of a deep network: cell, input, hidden and output sizes, number of layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeepShape {
    /// The cell of every layer.
    pub cell: CellKind,
    /// Input size n_x (the vocabulary size for a character model).
    pub n_x: usize,
    /// Hidden size n_a of every layer.
    pub n_a: usize,
    /// Output size n_y (the vocabulary size for a character model).
    pub n_y: usize,
    /// Number of stacked layers, at least 1.
    pub n_layers: usize,
}

/// A stack of recurrent layers and the output layer on the last one's hidden state.
///
/// # Shapes
///
/// `layers[k]` as in [`LayerParams`]; `w_ya` (n_y, n_a), `b_y` (n_y, 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "F: Float")]
pub struct DeepParams<F: Float = f64> {
    /// The cell of every layer.
    pub cell: CellKind,
    /// Layer 0 reads the characters, layer k + 1 reads layer k's hidden state.
    pub layers: Vec<LayerParams<F>>,
    /// W_ya, (n_y, n_a): the last layer's hidden state to output logits (`fc.weight`).
    pub w_ya: Array2<F>,
    /// b_y, (n_y, 1) (`fc.bias`).
    pub b_y: Array2<F>,
}

/// Gradients of the loss: the same arrays and shapes as the parameters.
pub type DeepGrads<F = f64> = DeepParams<F>;

impl<F: Float> LayerParams<F> {
    /// All-zero weights of one layer reading `n_in` inputs.
    pub fn zeros(cell: CellKind, n_in: usize, n_a: usize) -> Self {
        let rows = cell.n_gates() * n_a;
        let bias_hh_rows = if cell == CellKind::Rnn { 0 } else { rows };
        LayerParams {
            w_ih: Array2::zeros((rows, n_in)),
            w_hh: Array2::zeros((rows, n_a)),
            b_ih: Array2::zeros((rows, 1)),
            b_hh: Array2::zeros((bias_hh_rows, 1)),
        }
    }

    /// The four arrays, in `w_ih`, `w_hh`, `b_ih`, `b_hh` order.
    pub fn arrays(&self) -> [&Array2<F>; 4] {
        [&self.w_ih, &self.w_hh, &self.b_ih, &self.b_hh]
    }

    /// The four arrays, mutably, in the same order.
    pub fn arrays_mut(&mut self) -> [&mut Array2<F>; 4] {
        [
            &mut self.w_ih,
            &mut self.w_hh,
            &mut self.b_ih,
            &mut self.b_hh,
        ]
    }
}

impl<F: Float> DeepParams<F> {
    /// All-zero parameters (also the starting point of a gradient accumulator).
    ///
    /// # Panics
    ///
    /// If `shape.n_layers` is 0.
    pub fn zeros(shape: DeepShape) -> Self {
        assert!(shape.n_layers >= 1, "a network needs at least one layer");
        let n_in = |k: usize| if k == 0 { shape.n_x } else { shape.n_a };
        DeepParams {
            cell: shape.cell,
            layers: (0..shape.n_layers)
                .map(|k| LayerParams::zeros(shape.cell, n_in(k), shape.n_a))
                .collect(),
            w_ya: Array2::zeros((shape.n_y, shape.n_a)),
            b_y: Array2::zeros((shape.n_y, 1)),
        }
    }

    /// PyTorch's initialisation: every entry, biases included, uniform in
    /// (−1/√n_a, 1/√n_a). Draws layer by layer (`w_ih`, `w_hh`, `b_ih`, `b_hh`), then
    /// `w_ya` and `b_y`, each in row-major order.
    pub fn init<R: Rng + ?Sized>(shape: DeepShape, rng: &mut R) -> Self {
        let bound = 1.0 / (shape.n_a as f64).sqrt();
        let mut p = Self::zeros(shape);
        for a in p.arrays_mut() {
            a.1.mapv_inplace(|_| F::cast(rng.random_range(-bound..bound)));
        }
        p
    }

    /// The vanilla network of the post as a one-layer deep network: W_ax becomes `w_ih`,
    /// W_aa `w_hh` and b_a `b_ih`. The two compute the same function.
    pub fn from_params(p: &Params<F>) -> Self {
        DeepParams {
            cell: CellKind::Rnn,
            layers: vec![LayerParams {
                w_ih: p.w_ax.clone(),
                w_hh: p.w_aa.clone(),
                b_ih: p.b_a.clone(),
                b_hh: Array2::zeros((0, 1)),
            }],
            w_ya: p.w_ya.clone(),
            b_y: p.b_y.clone(),
        }
    }

    /// The sizes, read from the arrays.
    pub fn shape(&self) -> DeepShape {
        DeepShape {
            cell: self.cell,
            n_x: self.layers[0].w_ih.ncols(),
            n_a: self.w_ya.ncols(),
            n_y: self.w_ya.nrows(),
            n_layers: self.layers.len(),
        }
    }

    /// Hidden size n_a.
    pub fn n_a(&self) -> usize {
        self.w_ya.ncols()
    }

    /// Total number of scalar parameters.
    pub fn n_params(&self) -> usize {
        self.arrays().iter().map(|(_, a)| a.len()).sum()
    }

    /// Every array with its name (`w_ih_l0`, `w_hh_l0`, `b_ih_l0`, `b_hh_l0`, `w_ih_l1`,
    /// …, `w_ya`, `b_y`), layer by layer, then the output layer.
    pub fn arrays(&self) -> Vec<(String, &Array2<F>)> {
        let mut out = Vec::with_capacity(4 * self.layers.len() + 2);
        for (k, layer) in self.layers.iter().enumerate() {
            for (name, a) in LAYER_ARRAY_NAMES.iter().zip(layer.arrays()) {
                out.push((format!("{name}_l{k}"), a));
            }
        }
        out.push(("w_ya".to_string(), &self.w_ya));
        out.push(("b_y".to_string(), &self.b_y));
        out
    }

    /// Every array, mutably, in the order and with the names of [`DeepParams::arrays`].
    pub fn arrays_mut(&mut self) -> Vec<(String, &mut Array2<F>)> {
        let mut out = Vec::with_capacity(4 * self.layers.len() + 2);
        for (k, layer) in self.layers.iter_mut().enumerate() {
            for (name, a) in LAYER_ARRAY_NAMES.iter().zip(layer.arrays_mut()) {
                out.push((format!("{name}_l{k}"), a));
            }
        }
        out.push(("w_ya".to_string(), &mut self.w_ya));
        out.push(("b_y".to_string(), &mut self.b_y));
        out
    }
}

/// The names of a layer's four arrays, in [`LayerParams::arrays`] order.
pub const LAYER_ARRAY_NAMES: [&str; 4] = ["w_ih", "w_hh", "b_ih", "b_hh"];

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn shape(cell: CellKind, n_layers: usize) -> DeepShape {
        DeepShape {
            cell,
            n_x: 7,
            n_a: 5,
            n_y: 6,
            n_layers,
        }
    }

    #[test]
    fn shapes_follow_pytorch() {
        let p: DeepParams = DeepParams::zeros(shape(CellKind::Lstm, 2));
        assert_eq!(p.layers[0].w_ih.dim(), (20, 7));
        assert_eq!(p.layers[1].w_ih.dim(), (20, 5));
        assert_eq!(p.layers[1].w_hh.dim(), (20, 5));
        assert_eq!(p.layers[1].b_hh.dim(), (20, 1));
        assert_eq!(p.w_ya.dim(), (6, 5));
        let gru: DeepParams = DeepParams::zeros(shape(CellKind::Gru, 1));
        assert_eq!(gru.layers[0].b_ih.dim(), (15, 1));
        let rnn: DeepParams = DeepParams::zeros(shape(CellKind::Rnn, 3));
        assert_eq!(rnn.layers[2].b_hh.dim(), (0, 1));
        assert_eq!(rnn.shape(), shape(CellKind::Rnn, 3));
        assert_eq!(
            rnn.n_params(),
            5 * 7 + 2 * 5 * 5 + 3 * (5 * 5 + 5) + 6 * 5 + 6
        );
        let names: Vec<String> = rnn.arrays().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names[..4], ["w_ih_l0", "w_hh_l0", "b_ih_l0", "b_hh_l0"]);
        assert_eq!(names[12..], ["w_ya", "b_y"]);
    }

    #[test]
    fn init_is_seeded_and_bounded() {
        let s = shape(CellKind::Gru, 2);
        let p1: DeepParams = DeepParams::init(s, &mut ChaCha8Rng::seed_from_u64(1));
        let p2: DeepParams = DeepParams::init(s, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(p1, p2);
        let bound = 1.0 / 5f64.sqrt();
        for (_, a) in p1.arrays() {
            assert!(a.iter().all(|v| v.abs() < bound && *v != 0.0));
        }
    }

    #[test]
    fn serde_round_trip_keeps_cell_and_values() {
        let p: DeepParams =
            DeepParams::init(shape(CellKind::Lstm, 2), &mut ChaCha8Rng::seed_from_u64(2));
        let text = serde_json::to_string(&p).unwrap();
        assert!(text.contains("\"cell\":\"lstm\""), "{}", &text[..40]);
        let q: DeepParams = serde_json::from_str(&text).unwrap();
        assert_eq!(p, q);
    }
}
