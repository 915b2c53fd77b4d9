//! What every recurrent cell shares: its input (character ids or the layer below), and the
//! affine map into the gates and its backward pass.
//!
//! Every cell starts from the same two products, one of the input and one of the previous
//! hidden state, each with its bias:
//!
//! ```text
//! gx = W_ih x + b_ih        gh = W_hh h_prev + b_hh        (G·n_a, m), gates stacked by rows
//! ```
//!
//! and then applies its own gate equations
//! ([`vanilla_step_forward`](crate::vanilla_step_forward),
//! [`gru_step_forward`](crate::gru_step_forward),
//! [`lstm_step_forward`](crate::lstm_step_forward)).

use ndarray::{Array2, ArrayView1, ArrayView2, Axis, Slice};

use crate::{Float, LayerParams, TokenId, gather_columns};

/// What a layer reads at one time step.
#[derive(Clone, Copy, Debug)]
pub enum LayerInput<'a, F: Float> {
    /// Character ids, (m): layer 0's one-hot inputs, applied as a column gather (`None` is
    /// "no input", the zero vector).
    Ids(ArrayView1<'a, Option<TokenId>>),
    /// The hidden state of the layer below, after dropout, (n_a, m).
    Dense(ArrayView2<'a, F>),
}

/// The logistic function σ(v) = 1 / (1 + e^−v).
pub fn sigmoid<F: Float>(v: F) -> F {
    F::one() / (F::one() + (-v).exp())
}

/// W_ih x: a gather of columns for ids, a matrix product for a dense input.
///
/// # Shapes
///
/// `w_ih`: (G·n_a, n_in), `x`: (m) ids or (n_in, m) → (G·n_a, m).
pub fn input_product<F: Float>(w_ih: &Array2<F>, x: LayerInput<'_, F>) -> Array2<F> {
    match x {
        LayerInput::Ids(ids) => gather_columns(w_ih, ids),
        LayerInput::Dense(x) => w_ih.dot(&x),
    }
}

/// Gate block `k` of stacked pre-activations: rows k·n_a .. (k + 1)·n_a.
///
/// # Shapes
///
/// `z`: (G·n_a, m) → (n_a, m).
pub fn gate<F: Float>(z: &Array2<F>, k: usize, n_a: usize) -> ArrayView2<'_, F> {
    z.slice_axis(Axis(0), Slice::from(k * n_a..(k + 1) * n_a))
}

/// Gate blocks stacked by rows, the inverse of [`gate`].
///
/// # Shapes
///
/// G blocks of (n_a, m) → (G·n_a, m).
pub fn stack_gates<F: Float>(blocks: &[Array2<F>]) -> Array2<F> {
    let views: Vec<ArrayView2<'_, F>> = blocks.iter().map(|b| b.view()).collect();
    ndarray::concatenate(Axis(0), &views).expect("gate blocks have equal shapes")
}

/// The backward pass of gx = W_ih x + b_ih and gh = W_hh h_prev + b_hh, given dgx and dgh
/// (the gradients of the loss with respect to them): adds
///
/// ```text
/// dW_ih += dgx xᵀ   db_ih += Σ_j dgx   dW_hh += dgh h_prevᵀ   db_hh += Σ_j dgh
/// ```
///
/// to `grads` and returns (W_hhᵀ dgh, W_ihᵀ dgx): the gradient into the previous hidden
/// state, and into a dense input (`None` for ids, which have no gradient; dgx xᵀ for ids
/// adds dgx's columns into the named columns of dW_ih). The vanilla cell has no b_hh:
/// its `b_hh` is empty and gets nothing.
///
/// # Shapes
///
/// `dgx`, `dgh`: (G·n_a, m), `h_prev`: (n_a, m) → (n_a, m) and (n_in, m).
pub fn affine_backward<F: Float>(
    grads: &mut LayerParams<F>,
    layer: &LayerParams<F>,
    x: LayerInput<'_, F>,
    h_prev: ArrayView2<'_, F>,
    dgx: &Array2<F>,
    dgh: &Array2<F>,
) -> (Array2<F>, Option<Array2<F>>) {
    grads.b_ih += &dgx.sum_axis(Axis(1)).insert_axis(Axis(1)); //     (G·n_a, 1)
    if !grads.b_hh.is_empty() {
        grads.b_hh += &dgh.sum_axis(Axis(1)).insert_axis(Axis(1)); // (G·n_a, 1)
    }
    grads.w_hh += &dgh.dot(&h_prev.t()); //                           (G·n_a, n_a)
    let dh_prev = layer.w_hh.t().dot(dgh); //                          (n_a, m)
    let dx = match x {
        LayerInput::Ids(ids) => {
            for (dgx_j, x_j) in dgx.columns().into_iter().zip(ids) {
                if let Some(id) = x_j {
                    let mut col = grads.w_ih.column_mut(*id as usize); // (G·n_a)
                    col += &dgx_j;
                }
            }
            None
        }
        LayerInput::Dense(x) => {
            grads.w_ih += &dgx.dot(&x.t()); //                         (G·n_a, n_in)
            Some(layer.w_ih.t().dot(dgx)) //                           (n_in, m)
        }
    };
    (dh_prev, dx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn sigmoid_is_the_logistic_function() {
        assert_eq!(sigmoid(0.0f64), 0.5);
        // σ(v) = (1 + tanh(v/2)) / 2; σ(2) = 0.8807970779778823 (Python's math module).
        assert!((sigmoid(2.0f64) - 0.8807970779778823).abs() < 1e-16);
        assert!((sigmoid(-3.0f64) + sigmoid(3.0f64) - 1.0).abs() < 1e-15);
        assert_eq!(sigmoid(-1000.0f64), 0.0);
        assert_eq!(sigmoid(1000.0f64), 1.0);
    }

    #[test]
    fn gates_are_row_blocks_and_stack_back() {
        let z: Array2<f64> = array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]];
        assert_eq!(gate(&z, 1, 2), array![[5.0, 6.0], [7.0, 8.0]]);
        let blocks = [gate(&z, 0, 2).to_owned(), gate(&z, 1, 2).to_owned()];
        assert_eq!(stack_gates(&blocks), z);
    }
}
