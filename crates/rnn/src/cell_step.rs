//! One step of one layer of any cell: the [`CellKind`] chooses the step functions of
//! [`vanilla`](crate::vanilla_step_forward), [`gru`](crate::gru_step_forward) or
//! [`lstm`](crate::lstm_step_forward).

use ndarray::{Array2, ArrayView2};

use crate::{
    CellKind, Float, GruCache, LayerInput, LayerParams, LstmCache, VanillaCache, gru_step_backward,
    gru_step_forward, lstm_step_backward, lstm_step_forward, vanilla_step_backward,
    vanilla_step_forward,
};

/// The cache of one step of one layer, whatever its cell.
#[derive(Clone, Debug, PartialEq)]
pub enum StepCache<F: Float = f64> {
    /// A vanilla step.
    Rnn(VanillaCache<F>),
    /// A GRU step.
    Gru(GruCache<F>),
    /// An LSTM step.
    Lstm(LstmCache<F>),
}

impl<F: Float> StepCache<F> {
    /// The new hidden state h', (n_a, m).
    pub fn h(&self) -> &Array2<F> {
        match self {
            StepCache::Rnn(s) => &s.h,
            StepCache::Gru(s) => &s.h,
            StepCache::Lstm(s) => &s.h,
        }
    }

    /// The new cell state c', (n_a, m), for an LSTM step; `None` for the others.
    pub fn c(&self) -> Option<&Array2<F>> {
        match self {
            StepCache::Lstm(s) => Some(&s.c),
            _ => None,
        }
    }
}

/// One step of one layer of any cell. `c_prev` is read by the LSTM only.
///
/// # Shapes
///
/// `x`: (m) ids or (n_in, m), `h_prev`, `c_prev`: (n_a, m).
pub fn cell_step_forward<F: Float>(
    cell: CellKind,
    layer: &LayerParams<F>,
    x: LayerInput<'_, F>,
    h_prev: ArrayView2<'_, F>,
    c_prev: ArrayView2<'_, F>,
) -> StepCache<F> {
    match cell {
        CellKind::Rnn => StepCache::Rnn(vanilla_step_forward(layer, x, h_prev)),
        CellKind::Gru => StepCache::Gru(gru_step_forward(layer, x, h_prev)),
        CellKind::Lstm => StepCache::Lstm(lstm_step_forward(layer, x, h_prev, c_prev)),
    }
}

/// One step of backpropagation through one layer of any cell: `dh` is dL/dh' (from the
/// output or the layer above, plus the future), `dc` the LSTM's dL/dc' from the future
/// (replaced by dL/dc_prev; untouched for the other cells). Returns (dL/dh_prev, dL/dx).
///
/// # Shapes
///
/// `dh`, `dc`: (n_a, m) → (n_a, m) and, for a dense input, (n_in, m).
pub fn cell_step_backward<F: Float>(
    dh: ArrayView2<'_, F>,
    dc: &mut Array2<F>,
    grads: &mut LayerParams<F>,
    layer: &LayerParams<F>,
    x: LayerInput<'_, F>,
    cache: &StepCache<F>,
) -> (Array2<F>, Option<Array2<F>>) {
    match cache {
        StepCache::Rnn(s) => vanilla_step_backward(dh, grads, layer, x, s),
        StepCache::Gru(s) => gru_step_backward(dh, grads, layer, x, s),
        StepCache::Lstm(s) => lstm_step_backward(dh, dc, grads, layer, x, s),
    }
}
