//! Backpropagation through time. For each step, from the last to the first:
//!
//! ```text
//! dy       = ŷ⟨t⟩ − y⟨t⟩                  (softmax with cross-entropy)
//! dW_ya   += dy a⟨t⟩ᵀ          db_y += dy
//! da       = W_yaᵀ dy + da_next           (this step's output, plus the future)
//! da_raw   = (1 − a⟨t⟩ ⊙ a⟨t⟩) ⊙ da       (through tanh)
//! db_a    += da_raw            dW_ax += da_raw x⟨t⟩ᵀ      dW_aa += da_raw a⟨t-1⟩ᵀ
//! da_next  = W_aaᵀ da_raw                 (into the previous step)
//! ```

use ndarray::{Array2, ArrayView1, ArrayView2, Axis};

use crate::{Cache, Float, Grads, Params, TokenId};

// ANCHOR: output_delta
/// dy = ŷ − y, the gradient of the step's loss with respect to the logits: the
/// prediction minus the one-hot target. A column without a target (padding) gets zeros.
///
/// # Shapes
///
/// `y_hat`: (n_y, m), `y`: (m) → (n_y, m).
pub fn output_delta<F: Float>(
    y_hat: ArrayView2<'_, F>,
    y: ArrayView1<'_, Option<TokenId>>,
) -> Array2<F> {
    let mut dy = y_hat.to_owned(); //                                   (n_y, m)
    for (mut col, y_j) in dy.columns_mut().into_iter().zip(y) {
        match y_j {
            Some(k) => col[*k as usize] -= F::one(),
            None => col.fill(F::zero()),
        }
    }
    dy
}
// ANCHOR_END: output_delta

// ANCHOR: step_backward
/// One step of backpropagation, as in the post: adds this step's contribution to `grads`
/// and replaces `da_next` (on entry `dL/da⟨t⟩` from the future, on exit `dL/da⟨t-1⟩`).
///
/// # Shapes
///
/// `dy`: (n_y, m), `x`: (m), `a`, `a_prev`, `da_next`: (n_a, m).
pub fn rnn_step_backward<F: Float>(
    dy: ArrayView2<'_, F>,
    grads: &mut Grads<F>,
    da_next: &mut Array2<F>,
    params: &Params<F>,
    x: ArrayView1<'_, Option<TokenId>>,
    a: ArrayView2<'_, F>,
    a_prev: ArrayView2<'_, F>,
) {
    grads.w_ya += &dy.dot(&a.t()); //                                  (n_y, n_a)
    grads.b_y += &dy.sum_axis(Axis(1)).insert_axis(Axis(1)); //         (n_y, 1)
    let da = params.w_ya.t().dot(&dy) + &*da_next; //                   (n_a, m)
    let da_raw = a.mapv(|v| F::one() - v * v) * &da; //                (n_a, m)
    grads.b_a += &da_raw.sum_axis(Axis(1)).insert_axis(Axis(1)); //     (n_a, 1)
    for (da_raw_j, x_j) in da_raw.columns().into_iter().zip(x) {
        if let Some(id) = x_j {
            // da_raw x⟨t⟩ᵀ: the one-hot x⟨t⟩ selects column `id` of dW_ax.
            let mut col = grads.w_ax.column_mut(*id as usize); //       (n_a)
            col += &da_raw_j;
        }
    }
    grads.w_aa += &da_raw.dot(&a_prev.t()); //                         (n_a, n_a)
    *da_next = params.w_aa.t().dot(&da_raw); //                        (n_a, m)
}
// ANCHOR_END: step_backward

// ANCHOR: backward
/// Backpropagation through time, as in the post: the gradients of the summed loss with
/// respect to all five parameters, and dL/da⟨0⟩, from the last step to the first.
///
/// Gradients are those of the raw loss, before any clipping.
///
/// # Shapes
///
/// `x`, `y`: (T, m) as given to [`rnn_forward`](crate::rnn_forward); returns gradients
/// shaped like `params` and dL/da⟨0⟩ (n_a, m).
pub fn rnn_backward<F: Float>(
    params: &Params<F>,
    x: ArrayView2<'_, Option<TokenId>>,
    y: ArrayView2<'_, Option<TokenId>>,
    cache: &Cache<F>,
) -> (Grads<F>, Array2<F>) {
    debug_assert_eq!(x.nrows(), cache.n_steps());
    let mut grads = Grads::zeros(params.n_x(), params.n_a(), params.n_y());
    let mut da_next = Array2::zeros((params.n_a(), x.ncols())); //     (n_a, m)
    for t in (0..cache.n_steps()).rev() {
        let dy = output_delta(cache.y_hat(t), y.row(t)); //            (n_y, m)
        let (a, a_prev) = (cache.a(t), cache.a_prev(t));
        rnn_step_backward(
            dy.view(),
            &mut grads,
            &mut da_next,
            params,
            x.row(t),
            a,
            a_prev,
        );
    }
    (grads, da_next)
}
// ANCHOR_END: backward

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{one_hot_columns, rnn_forward};
    use ndarray::array;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// The scatter into dW_ax equals the dense product da_raw x⟨t⟩ᵀ with the one-hot x⟨t⟩.
    #[test]
    fn scatter_equals_dense_outer_product() {
        let p: Params = Params::init_with_std(5, 3, 5, 0.5, &mut ChaCha8Rng::seed_from_u64(2));
        let x = array![[None, Some(4)], [Some(1), Some(4)]];
        let y = array![[Some(1), Some(4)], [Some(0), None]];
        let a0 = Array2::zeros((3, 2));
        let (_, cache) = rnn_forward(&p, x.view(), y.view(), a0.view());
        let (grads, _) = rnn_backward(&p, x.view(), y.view(), &cache);
        // Recompute dW_ax with dense one-hot products from the same deltas.
        let mut dw_ax = Array2::<f64>::zeros((3, 5));
        let mut da_next = Array2::zeros((3, 2));
        let mut scratch = Grads::zeros(5, 3, 5);
        for t in (0..2).rev() {
            let dy = output_delta(cache.y_hat(t), y.row(t));
            let da = p.w_ya.t().dot(&dy) + &da_next;
            let da_raw = cache.a(t).mapv(|v| 1.0 - v * v) * &da;
            dw_ax += &da_raw.dot(&one_hot_columns::<f64>(5, x.row(t)).t());
            let (a, a_prev) = (cache.a(t), cache.a_prev(t));
            rnn_step_backward(
                dy.view(),
                &mut scratch,
                &mut da_next,
                &p,
                x.row(t),
                a,
                a_prev,
            );
        }
        assert!((&dw_ax - &grads.w_ax).iter().all(|d| d.abs() < 1e-15));
        assert!(dw_ax.column(4).iter().any(|v| *v != 0.0));
    }

    #[test]
    fn padding_gets_a_zero_delta() {
        let y_hat = array![[0.2, 0.5], [0.8, 0.5]];
        let dy = output_delta(y_hat.view(), ndarray::aview1(&[Some(1), None]));
        assert_eq!(dy, array![[0.2, 0.0], [-0.19999999999999996, 0.0]]);
    }
}
