//! Forward propagation: the two equations of the post,
//!
//! ```text
//! a⟨t⟩ = tanh(W_ax x⟨t⟩ + W_aa a⟨t-1⟩ + b_a)
//! ŷ⟨t⟩ = softmax(W_ya a⟨t⟩ + b_y)
//! ```
//!
//! and the loss, the negative log-likelihood of the targets summed over time steps and
//! over the batch.
//!
//! The one-hot input `x⟨t⟩` is never built: W_ax `x⟨t⟩` is the column of W_ax named by the
//! character id (a gather), and "no input" (the first step of a name) adds nothing.

use std::ops::AddAssign;

use ndarray::{Array2, ArrayView1, ArrayView2, Axis, Zip};

use crate::{Float, Params, TokenId};

/// The loss of a forward pass: the sum over time steps and batch columns of
/// `-ln ŷ⟨t⟩[target]`, as in the post, and how many targets it covers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Loss {
    /// Σ_t Σ_j −ln `ŷ⟨t⟩[y⟨t⟩_j]`, in nats, accumulated in `f64`.
    pub total: f64,
    /// Number of (time step, column) pairs with a target (padding excluded).
    pub n_targets: usize,
}

impl Loss {
    /// Mean loss per predicted character, in nats (0 when there are no targets).
    pub fn per_char(&self) -> f64 {
        if self.n_targets == 0 {
            0.0
        } else {
            self.total / self.n_targets as f64
        }
    }

    /// Perplexity, `exp` of the mean loss per character.
    pub fn perplexity(&self) -> f64 {
        self.per_char().exp()
    }

    /// Bits per character, the mean loss per character in base 2.
    pub fn bits_per_char(&self) -> f64 {
        self.per_char() / std::f64::consts::LN_2
    }
}

impl AddAssign for Loss {
    fn add_assign(&mut self, other: Loss) {
        self.total += other.total;
        self.n_targets += other.n_targets;
    }
}

/// What the backward pass needs from the forward pass, as in the post's `caches`: the
/// hidden state before and after every step, and every prediction.
///
/// # Shapes
///
/// `a[0]` is a⟨0⟩ and `a[t + 1]` the state after step t, each (n_a, m); `y_hat[t]` is
/// ŷ at step t, (n_y, m).
#[derive(Clone, Debug, PartialEq)]
pub struct Cache<F: Float = f64> {
    /// `a⟨0⟩`, `a⟨1⟩`, …, `a⟨T⟩`: T + 1 arrays of (n_a, m).
    pub a: Vec<Array2<F>>,
    /// `ŷ⟨1⟩`, …, `ŷ⟨T⟩`: T arrays of (n_y, m).
    pub y_hat: Vec<Array2<F>>,
}

impl<F: Float> Cache<F> {
    /// Number of time steps T.
    pub fn n_steps(&self) -> usize {
        self.y_hat.len()
    }

    /// The hidden state after step `t` (0-based), (n_a, m).
    pub fn a(&self, t: usize) -> ArrayView2<'_, F> {
        self.a[t + 1].view()
    }

    /// The hidden state before step `t`: a⟨0⟩ for t = 0, else the state after step t − 1.
    pub fn a_prev(&self, t: usize) -> ArrayView2<'_, F> {
        self.a[t].view()
    }

    /// The predicted distribution ŷ at step `t`, (n_y, m).
    pub fn y_hat(&self, t: usize) -> ArrayView2<'_, F> {
        self.y_hat[t].view()
    }

    /// The hidden state after the last step, (n_a, m), to carry into the next sequence.
    pub fn a_last(&self) -> ArrayView2<'_, F> {
        self.a[self.n_steps()].view()
    }

    /// `a⟨1⟩`, …, `a⟨T⟩` side by side, (n_a, T·m): step t in columns t·m .. (t+1)·m.
    pub fn a_all(&self) -> Array2<F> {
        side_by_side(&self.a[1..], self.a[0].nrows())
    }

    /// `ŷ⟨1⟩`, …, `ŷ⟨T⟩` side by side, (n_y, T·m).
    pub fn y_hat_all(&self) -> Array2<F> {
        let n_y = self.y_hat.first().map_or(0, |y| y.nrows());
        side_by_side(&self.y_hat, n_y)
    }
}

/// The arrays of `blocks` (each with `rows` rows) placed side by side.
fn side_by_side<F: Float>(blocks: &[Array2<F>], rows: usize) -> Array2<F> {
    let views: Vec<ArrayView2<'_, F>> = blocks.iter().map(|b| b.view()).collect();
    ndarray::concatenate(Axis(1), &views).unwrap_or_else(|_| Array2::zeros((rows, 0)))
}

// ANCHOR: gather
/// W_ax `x⟨t⟩` without building the one-hot `x⟨t⟩`: column j of the result is column
/// `x[j]` of W_ax, or zeros when `x[j]` is `None` (no input).
///
/// # Shapes
///
/// `w_ax`: (n_a, n_x), `x`: (m) → (n_a, m).
pub fn gather_columns<F: Float>(w_ax: &Array2<F>, x: ArrayView1<'_, Option<TokenId>>) -> Array2<F> {
    let mut out = Array2::zeros((w_ax.nrows(), x.len())); //           (n_a, m)
    for (mut col, x_j) in out.columns_mut().into_iter().zip(x) {
        if let Some(id) = x_j {
            col.assign(&w_ax.column(*id as usize));
        }
    }
    out
}
// ANCHOR_END: gather

// ANCHOR: hidden_step
/// The first equation: `a⟨t⟩` = tanh(W_ax `x⟨t⟩` + W_aa `a⟨t-1⟩` + b_a).
///
/// # Shapes
///
/// `a_prev`: (n_a, m), `x`: (m) → (n_a, m).
pub fn hidden_step<F: Float>(
    params: &Params<F>,
    a_prev: ArrayView2<'_, F>,
    x: ArrayView1<'_, Option<TokenId>>,
) -> Array2<F> {
    debug_assert_eq!(a_prev.nrows(), params.n_a());
    debug_assert_eq!(a_prev.ncols(), x.len());
    let z = gather_columns(&params.w_ax, x) + params.w_aa.dot(&a_prev) + &params.b_a; // (n_a, m)
    z.mapv(F::tanh)
}
// ANCHOR_END: hidden_step

// ANCHOR: output_step
/// The logits of the second equation, W_ya a + b_y, before the softmax.
///
/// # Shapes
///
/// `a`: (n_a, m) → (n_y, m).
pub fn output_logits<F: Float>(params: &Params<F>, a: ArrayView2<'_, F>) -> Array2<F> {
    debug_assert_eq!(a.nrows(), params.n_a());
    params.w_ya.dot(&a) + &params.b_y //                                  (n_y, m)
}
// ANCHOR_END: output_step

// ANCHOR: softmax
/// softmax of every column: e^z / Σ e^z. Subtracting the column's maximum first changes
/// nothing mathematically and keeps e^z from overflowing.
///
/// # Shapes
///
/// `z`: (n, m) → (n, m).
pub fn softmax<F: Float>(z: ArrayView2<'_, F>) -> Array2<F> {
    let mut e = z.to_owned();
    for mut col in e.columns_mut() {
        let max = col.fold(F::neg_infinity(), |m, &v| m.max(v));
        col.mapv_inplace(|v| (v - max).exp());
        let sum = col.sum();
        col.mapv_inplace(|v| v / sum);
    }
    e
}
// ANCHOR_END: softmax

// ANCHOR: step_forward
/// One step of the RNN, as in the post: returns (`a⟨t⟩`, `ŷ⟨t⟩`) for the input ids `x` and
/// the previous hidden state `a_prev`.
///
/// # Shapes
///
/// `a_prev`: (n_a, m), `x`: (m) → `a_next`: (n_a, m), `y_hat`: (n_y, m).
pub fn rnn_step_forward<F: Float>(
    params: &Params<F>,
    a_prev: ArrayView2<'_, F>,
    x: ArrayView1<'_, Option<TokenId>>,
) -> (Array2<F>, Array2<F>) {
    let a_next = hidden_step(params, a_prev, x); //                     (n_a, m)
    let y_hat = softmax(output_logits(params, a_next.view()).view()); // (n_y, m)
    (a_next, y_hat)
}
// ANCHOR_END: step_forward

// ANCHOR: step_loss
/// The loss of one step: Σ_j −ln `ŷ[y_j, j]` over the columns that have a target (`None`
/// marks padding, which adds nothing).
///
/// # Shapes
///
/// `y_hat`: (n_y, m), `y`: (m).
pub fn step_loss<F: Float>(y_hat: ArrayView2<'_, F>, y: ArrayView1<'_, Option<TokenId>>) -> Loss {
    let mut loss = Loss::default();
    for (j, y_j) in y.iter().enumerate() {
        if let Some(k) = y_j {
            loss.total -= y_hat[[*k as usize, j]].as_f64().ln();
            loss.n_targets += 1;
        }
    }
    loss
}
// ANCHOR_END: step_loss

// ANCHOR: forward
/// Forward propagation over a whole sequence, as in the post: returns the loss and the
/// cache the backward pass needs.
///
/// `x[[t, j]]` is the input id at step t of column j (`None` = no input), `y[[t, j]]` the
/// target (`None` = padding: no loss and no gradient). The loss is the sum, not the mean,
/// over steps and columns; [`Loss::per_char`] gives the mean.
///
/// # Shapes
///
/// `x`, `y`: (T, m), `a0`: (n_a, m).
pub fn rnn_forward<F: Float>(
    params: &Params<F>,
    x: ArrayView2<'_, Option<TokenId>>,
    y: ArrayView2<'_, Option<TokenId>>,
    a0: ArrayView2<'_, F>,
) -> (Loss, Cache<F>) {
    debug_assert_eq!(x.dim(), y.dim());
    debug_assert_eq!(a0.dim(), (params.n_a(), x.ncols()));
    let mut cache = Cache {
        a: vec![a0.to_owned()],
        y_hat: Vec::with_capacity(x.nrows()),
    };
    let mut loss = Loss::default();
    for (x_t, y_t) in x.outer_iter().zip(y.outer_iter()) {
        let a_prev = cache.a.last().expect("a<0> is there").view();
        let (a_next, y_hat) = rnn_step_forward(params, a_prev, x_t);
        loss += step_loss(y_hat.view(), y_t);
        cache.a.push(a_next);
        cache.y_hat.push(y_hat);
    }
    (loss, cache)
}
// ANCHOR_END: forward

/// The one-hot matrix of the ids in `x`, (n, m): a 1 in row `x[j]` of column j, a zero
/// column for `None`. The gather never builds it; tests and the book compare with it.
pub fn one_hot_columns<F: Float>(n: usize, x: ArrayView1<'_, Option<TokenId>>) -> Array2<F> {
    let mut out = Array2::zeros((n, x.len()));
    Zip::from(out.axis_iter_mut(Axis(1)))
        .and(&x)
        .for_each(|mut col, x_j| {
            if let Some(id) = x_j {
                col[*id as usize] = F::one();
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, array};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn small_params() -> Params {
        Params::init_with_std(5, 4, 5, 0.5, &mut ChaCha8Rng::seed_from_u64(11))
    }

    // ANCHOR: gather_test
    #[test]
    fn gather_equals_dense_one_hot_product() {
        let p = small_params();
        let x = Array1::from(vec![Some(2), None, Some(4)]);
        let gathered = gather_columns(&p.w_ax, x.view());
        // Dense: build the one-hot matrix (zero column for None) and multiply.
        let dense = p.w_ax.dot(&one_hot_columns::<f64>(5, x.view()));
        assert_eq!(gathered, dense);
        assert_eq!(gathered.column(1), Array1::<f64>::zeros(4));
    }
    // ANCHOR_END: gather_test

    #[test]
    fn softmax_columns_are_distributions_even_for_huge_logits() {
        let z: Array2<f64> = array![[1000.0, -3.0], [500.0, 0.0], [-1000.0, 3.0]];
        let y = softmax(z.view());
        for col in y.columns() {
            assert!((col.sum() - 1.0).abs() < 1e-15);
        }
        assert!(y.iter().all(|v| v.is_finite()));
        assert_eq!(y[[0, 0]], 1.0);
    }

    // ANCHOR: worked_example_test
    #[test]
    fn post_worked_example_loss_is_minus_log_point_six() {
        // Logits ln(0.1), ln(0.6), ln(0.3) give the post's prediction (0.1, 0.6, 0.3);
        // with target (0, 1, 0) the loss is −ln 0.6.
        let z = array![[0.1f64.ln()], [0.6f64.ln()], [0.3f64.ln()]];
        let y_hat = softmax(z.view());
        let loss = step_loss(y_hat.view(), Array1::from(vec![Some(1)]).view());
        assert!((loss.total + 0.6f64.ln()).abs() < 1e-15);
        assert!((y_hat[[0, 0]] - 0.1).abs() < 1e-15);
    }
    // ANCHOR_END: worked_example_test

    #[test]
    fn forward_is_the_steps_in_turn() {
        let p = small_params();
        let x = array![[None, Some(1)], [Some(3), Some(0)], [Some(4), None]];
        let y = array![[Some(3), Some(0)], [Some(4), Some(2)], [Some(0), None]];
        let a0 = Array2::from_elem((4, 2), 0.05);
        let (loss, cache) = rnn_forward(&p, x.view(), y.view(), a0.view());
        assert_eq!(loss.n_targets, 5);
        assert_eq!(cache.n_steps(), 3);
        assert_eq!(cache.a_prev(0), a0.view());
        // Column by column, with the dense one-hot product instead of the gather.
        let mut total = 0.0;
        for j in 0..2 {
            let mut a = a0.column(j).to_owned();
            for t in 0..3 {
                let x_t = one_hot_columns::<f64>(5, ndarray::aview1(&[x[[t, j]]]));
                let z = p.w_ax.dot(&x_t.column(0)) + p.w_aa.dot(&a) + p.b_a.column(0);
                a = z.mapv(f64::tanh);
                let logits = p.w_ya.dot(&a) + p.b_y.column(0);
                let e = logits.mapv(f64::exp);
                let y_hat = &e / e.sum();
                if let Some(k) = y[[t, j]] {
                    total -= y_hat[k as usize].ln();
                }
                for i in 0..4 {
                    assert!((cache.a(t)[[i, j]] - a[i]).abs() < 1e-15);
                }
            }
        }
        assert!((loss.total - total).abs() < 1e-12);
    }

    #[test]
    fn loss_summaries() {
        let l = Loss {
            total: 6.0 * 2f64.ln(),
            n_targets: 6,
        };
        assert!((l.per_char() - 2f64.ln()).abs() < 1e-15);
        assert!((l.bits_per_char() - 1.0).abs() < 1e-15);
        assert!((l.perplexity() - 2.0).abs() < 1e-12);
        assert_eq!(Loss::default().per_char(), 0.0);
    }
}
