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

use std::borrow::Cow;

use ndarray::{
    Array2, ArrayView1, ArrayView2, ArrayViewMut2, ArrayViewMut3, Axis, Order, ShapeBuilder, s,
};

use crate::kernels::{
    PACK_MIN_COLUMNS, Packed, StepWeights, assign_col_major, batch_groups, gemm, simd_exp_in_place,
    simd_input_bias_tanh, simd_normalize, simd_shift_logits, split_point,
};
use crate::matvec;
use crate::{Float, Loss, Params, TokenId};

/// Everything the backward pass needs from the forward pass: the hidden states and the
/// predicted distributions at every step.
///
/// Buffers are sized once per batch shape and reused by [`forward_into`].
///
/// # Shapes
///
/// - `a`: (n_a, (T + 1)·m), column-major. Columns `t·m .. (t+1)·m` hold `a⟨t-1⟩` for
///   t = 0..=T, so the first block is `a⟨0⟩` = `a0` and block t + 1 is `a⟨t⟩`.
/// - `y_hat`: (n_y, T·m), column-major. Columns `t·m .. (t+1)·m` hold `ŷ⟨t⟩`.
///
/// Keeping all steps side by side lets the output layer and the weight gradients run as
/// single large matrix products over all time steps.
#[derive(Clone, Debug)]
pub struct Cache<F: Float = f64> {
    n_steps: usize,
    batch: usize,
    a: Array2<F>,
    y_hat: Array2<F>,
    /// W_aa and W_ya copied column-major, the layout the in-place kernels read fastest.
    w_aa: Array2<F>,
    w_ya: Array2<F>,
    /// W_aa packed into panels, for batches of several columns.
    w_aa_packed: Packed<F>,
}

impl<F: Float> Cache<F> {
    /// An empty cache; [`forward_into`] sizes it.
    pub fn new() -> Self {
        Cache {
            n_steps: 0,
            batch: 0,
            a: Array2::zeros((0, 0).f()),
            y_hat: Array2::zeros((0, 0).f()),
            w_aa: Array2::zeros((0, 0).f()),
            w_ya: Array2::zeros((0, 0).f()),
            w_aa_packed: Packed::default(),
        }
    }

    /// Resizes the buffers for T steps, batch m, keeping them when the shape is unchanged.
    pub fn resize(&mut self, n_a: usize, n_y: usize, n_steps: usize, batch: usize) {
        if self.a.dim() != (n_a, (n_steps + 1) * batch) {
            self.a = Array2::zeros((n_a, (n_steps + 1) * batch).f());
        }
        if self.y_hat.dim() != (n_y, n_steps * batch) {
            self.y_hat = Array2::zeros((n_y, n_steps * batch).f());
        }
        if self.w_aa.dim() != (n_a, n_a) {
            self.w_aa = Array2::zeros((n_a, n_a).f());
        }
        if self.w_ya.dim() != (n_y, n_a) {
            self.w_ya = Array2::zeros((n_y, n_a).f());
        }
        self.n_steps = n_steps;
        self.batch = batch;
    }

    /// Number of time steps T.
    pub fn n_steps(&self) -> usize {
        self.n_steps
    }

    /// Batch size m.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The initial hidden state a⟨0⟩ (the post's `a[-1]`), (n_a, m).
    pub fn a0(&self) -> ArrayView2<'_, F> {
        self.a.slice(s![.., 0..self.batch])
    }

    /// The hidden state after step `t` (0-based), (n_a, m).
    pub fn a(&self, t: usize) -> ArrayView2<'_, F> {
        let m = self.batch;
        self.a.slice(s![.., (t + 1) * m..(t + 2) * m])
    }

    /// The hidden state before step `t`: a⟨0⟩ for t = 0, else the state after step t − 1.
    pub fn a_prev(&self, t: usize) -> ArrayView2<'_, F> {
        let m = self.batch;
        self.a.slice(s![.., t * m..(t + 1) * m])
    }

    /// The predicted distribution ŷ at step `t`, (n_y, m).
    pub fn y_hat(&self, t: usize) -> ArrayView2<'_, F> {
        let m = self.batch;
        self.y_hat.slice(s![.., t * m..(t + 1) * m])
    }

    /// All hidden states a<1..T> side by side, (n_a, T·m).
    pub fn a_all(&self) -> ArrayView2<'_, F> {
        self.a.slice(s![.., self.batch..])
    }

    /// All previous hidden states a<0..T-1> side by side, (n_a, T·m).
    pub fn a_prev_all(&self) -> ArrayView2<'_, F> {
        self.a.slice(s![.., ..self.n_steps * self.batch])
    }

    /// All predicted distributions side by side, (n_y, T·m).
    pub fn y_hat_all(&self) -> ArrayView2<'_, F> {
        self.y_hat.view()
    }

    /// The hidden state after the last step, (n_a, m), to carry into the next sequence.
    pub fn a_last(&self) -> ArrayView2<'_, F> {
        self.a_prev(self.n_steps)
    }
}

impl<F: Float> Default for Cache<F> {
    fn default() -> Self {
        Self::new()
    }
}

/// The first equation for one time step, written into `a_next`:
/// `a⟨t⟩` = tanh(W_ax `x⟨t⟩` + W_aa `a⟨t-1⟩` + b_a).
///
/// `x[j]` is the character id fed to column j, or `None` for "no input" (the zero vector).
/// W_ax `x⟨t⟩` is a gather of column `x[j]` of W_ax; nothing is added for `None`.
///
/// # Shapes
///
/// `a_prev`: (n_a, m), `x`: (m), `a_next`: (n_a, m).
pub fn hidden_step_into<F: Float>(
    params: &Params<F>,
    a_prev: ArrayView2<'_, F>,
    x: ArrayView1<'_, Option<TokenId>>,
    a_next: ArrayViewMut2<'_, F>,
) {
    hidden_step_with(
        StepWeights::InPlace(params.w_aa.view()),
        params,
        a_prev,
        x,
        a_next,
    );
}

/// [`hidden_step_into`] with W_aa passed separately (the same matrix, possibly in another
/// memory layout).
fn hidden_step_with<F: Float>(
    w_aa: StepWeights<'_, F>,
    params: &Params<F>,
    a_prev: ArrayView2<'_, F>,
    x: ArrayView1<'_, Option<TokenId>>,
    mut a_next: ArrayViewMut2<'_, F>,
) {
    debug_assert_eq!(a_prev.dim(), a_next.dim());
    debug_assert_eq!(a_prev.nrows(), params.n_a());
    debug_assert_eq!(x.len(), a_prev.ncols());
    // W_aa a⟨t-1⟩                                                    (n_a, m)
    w_aa.product(a_prev, a_next.view_mut());
    let b_a = column_slice(params.b_a.column(0)); //                   (n_a)
    for (mut a_col, &x_j) in a_next.columns_mut().into_iter().zip(x.iter()) {
        // The gathered column W_ax[:, id]; no input adds nothing.
        let w_x = x_j.map(|id| column_slice(params.w_ax.column(id as usize)));
        match a_col.as_slice_mut() {
            Some(a) => simd_input_bias_tanh(a, w_x.as_deref(), &b_a),
            None => {
                let mut a = a_col.to_vec();
                simd_input_bias_tanh(&mut a, w_x.as_deref(), &b_a);
                a_col.assign(&ArrayView1::from(&a[..]));
            }
        }
    }
}

/// The second equation for any number of columns, written into `y_hat`:
/// ŷ = softmax(W_ya a + b_y), column by column. Returns the summed negative log-likelihood
/// of `targets` (a `None` target adds nothing).
///
/// The softmax subtracts each column's maximum before exponentiating, and the loss is
/// computed from the logits as `ln Σ exp(z) − z[target]`, so neither overflows nor
/// underflows.
///
/// # Shapes
///
/// `a`: (n_a, k), `targets`: (k), `y_hat`: (n_y, k), for any number of columns k.
pub fn output_into<F: Float>(
    params: &Params<F>,
    a: ArrayView2<'_, F>,
    targets: impl Iterator<Item = Option<TokenId>> + Clone,
    y_hat: ArrayViewMut2<'_, F>,
) -> Loss {
    output_with(params.w_ya.view(), params, a, targets, y_hat)
}

/// [`output_into`] with W_ya passed separately (the same matrix, possibly in another
/// memory layout).
fn output_with<F: Float>(
    w_ya: ArrayView2<'_, F>,
    params: &Params<F>,
    a: ArrayView2<'_, F>,
    targets: impl Iterator<Item = Option<TokenId>> + Clone,
    y_hat: ArrayViewMut2<'_, F>,
) -> Loss {
    debug_assert_eq!(a.nrows(), params.n_a());
    let b_y = column_slice(params.b_y.column(0)); //                   (n_y)
    logits_softmax(w_ya, a, &b_y, targets, y_hat)
}

/// The body of [`output_with`], with b_y as a slice: the logits W_ya a (any inner
/// dimension, e.g. W_ya's rows and a's columns both padded with zeros), then the softmax
/// of each column and the loss.
pub(crate) fn logits_softmax<F: Float>(
    w_ya: ArrayView2<'_, F>,
    a: ArrayView2<'_, F>,
    b_y: &[F],
    targets: impl Iterator<Item = Option<TokenId>> + Clone,
    mut y_hat: ArrayViewMut2<'_, F>,
) -> Loss {
    let n_y = w_ya.nrows();
    debug_assert_eq!(y_hat.dim(), (n_y, a.ncols()));
    // Logits z = W_ya a                                              (n_y, k)
    gemm(w_ya, a, y_hat.view_mut());
    let column_major = y_hat.strides() == [1, n_y as isize] || y_hat.ncols() <= 1;
    match y_hat.as_slice_memory_order_mut() {
        // All columns side by side: the softmax runs over the whole block.
        Some(z) if column_major => softmax_columns(z, n_y, b_y, targets),
        // Another layout: column by column, each through a contiguous copy.
        _ => {
            let mut loss = Loss::default();
            for (mut col, target) in y_hat.columns_mut().into_iter().zip(targets) {
                let mut z = col.to_vec();
                let l = softmax_columns(&mut z, n_y, b_y, std::iter::once(target));
                col.assign(&ArrayView1::from(&z[..]));
                loss.total += l.total;
                loss.n_targets += l.n_targets;
            }
            loss
        }
    }
}

/// Adds the bias to each column of logits in `z` (columns of `n_y` side by side) and turns
/// it into probabilities in place. Returns the summed −ln p[target] over the columns with a
/// target.
///
/// Three passes: per column, add the bias and subtract the column's maximum; then e^x over
/// the whole block at once (one long vectorized loop instead of a short one per column);
/// then, per column, divide by the sum.
pub(crate) fn softmax_columns<F: Float>(
    z: &mut [F],
    n_y: usize,
    b_y: &[F],
    targets: impl Iterator<Item = Option<TokenId>> + Clone,
) -> Loss {
    if let Some((total, n_targets)) = matvec::softmax_block(z, n_y, b_y, targets.clone()) {
        return Loss { total, n_targets };
    }
    let mut loss = Loss::default();
    // −ln softmax(z)[k] = ln Σ_i exp(z_i − max) − (z_k − max), summed over columns.
    let mut shifted_targets = 0.0;
    for (col, target) in z.chunks_exact_mut(n_y).zip(targets.clone()) {
        if let Some(shifted) = simd_shift_logits(col, b_y, target) {
            shifted_targets += shifted;
            loss.n_targets += 1;
        }
    }
    simd_exp_in_place(z);
    let mut log_sums = 0.0;
    for (col, target) in z.chunks_exact_mut(n_y).zip(targets) {
        let sum = simd_normalize(col);
        if target.is_some() {
            log_sums += sum.ln();
        }
    }
    loss.total = log_sums - shifted_targets;
    loss
}

/// A column as a slice: borrowed when it is contiguous (always, for the crate's own
/// column-major buffers), else copied.
#[inline]
pub(crate) fn column_slice<'a, F: Float>(col: ArrayView1<'a, F>) -> Cow<'a, [F]> {
    match col.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(col.to_vec()),
    }
}

/// Forward propagation over a whole sequence, as in the post: returns the loss and the
/// cache the backward pass needs.
///
/// `x[[t, j]]` is the input id at step t of column j (`None` = no input), `y[[t, j]]` the
/// target (`None` = padding: no loss and, in [`backward`](crate::backward), no
/// gradient). The loss is the sum, not the mean, over steps and columns;
/// [`Loss::per_char`] gives the mean.
///
/// # Shapes
///
/// `x`, `y`: (T, m), `a0`: (n_a, m).
pub fn forward<F: Float>(
    params: &Params<F>,
    x: ArrayView2<'_, Option<TokenId>>,
    y: ArrayView2<'_, Option<TokenId>>,
    a0: ArrayView2<'_, F>,
) -> (Loss, Cache<F>) {
    let mut cache = Cache::new();
    let loss = forward_into(params, x, y, a0, &mut cache);
    (loss, cache)
}

/// [`forward`] into a reused [`Cache`]: no allocation once the cache has the right
/// shape.
///
/// The hidden states are computed step by step (each depends on the last); the output
/// layer then runs once over all steps as one matrix product.
pub fn forward_into<F: Float>(
    params: &Params<F>,
    x: ArrayView2<'_, Option<TokenId>>,
    y: ArrayView2<'_, Option<TokenId>>,
    a0: ArrayView2<'_, F>,
    cache: &mut Cache<F>,
) -> Loss {
    let (n_steps, m) = x.dim();
    debug_assert_eq!(y.dim(), (n_steps, m));
    debug_assert_eq!(a0.dim(), (params.n_a(), m));
    // At batch 1 in f64 on AVX-512: the kernels of `matvec` on the rows as stored.
    if let Some(w_rows) = batch1_rows(params, m)
        && let Some(loss) = forward_batch1(w_rows, params, x, y, a0, cache)
    {
        return loss;
    }
    cache.resize(params.n_a(), params.n_y(), n_steps, m);
    // W_aa and W_ya in the layouts the kernels read fastest (the same matrices).
    let w_aa = if m >= PACK_MIN_COLUMNS {
        cache.w_aa_packed.pack(params.w_aa.view());
        StepWeights::Packed(&cache.w_aa_packed)
    } else {
        assign_col_major(cache.w_aa.view_mut(), params.w_aa.view());
        StepWeights::InPlace(cache.w_aa.view())
    };
    assign_col_major(cache.w_ya.view_mut(), params.w_ya.view());
    cache.a.slice_mut(s![.., 0..m]).assign(&a0); //                   a⟨0⟩
    // The same buffer as (n_a, m, T + 1): [.., j, t] is column j of step block t.
    let a_steps = cache
        .a
        .view_mut()
        .into_shape_with_order(((params.n_a(), m, n_steps + 1), Order::ColumnMajor))
        .expect("the cache is column-major");
    hidden_steps(w_aa, params, x, a_steps, batch_groups(params.n_a(), m));
    // ŷ⟨t⟩ for every step at once: (n_y, n_a) x (n_a, T·m)
    let a_all = cache.a.slice(s![.., m..]);
    output_with(
        cache.w_ya.view(),
        params,
        a_all,
        y.iter().copied(),
        cache.y_hat.view_mut(),
    )
}

/// W_aa's rows when a pass at batch `m` runs on the batch-1 kernels of [`matvec`] (`f64`,
/// AVX-512, m = 1, W_aa row-major, W_ax column-major, b_a contiguous), else `None`. Forward
/// and backward both ask this, so they take matching kernels without the cache recording
/// which ran: it depends only on the element type, the tier, the batch and the layouts.
pub(crate) fn batch1_rows<F: Float>(params: &Params<F>, m: usize) -> Option<&[F]> {
    let w_ax_columns = params.n_a() <= 1 || params.w_ax.strides()[0] == 1;
    let usable = m == 1
        && matvec::available::<F>()
        && w_ax_columns
        && params.b_a.as_slice_memory_order().is_some();
    params.w_aa.as_slice().filter(|_| usable)
}

/// [`forward_into`] at batch 1 with the kernels of [`matvec`] (`f64`, AVX-512), on
/// W_aa's rows as stored (contiguous: `w_rows` holds row i at `i·n_a`). Returns `None` when
/// these kernels do not apply; the cache must then be refilled.
fn forward_batch1<F: Float>(
    w_rows: &[F],
    params: &Params<F>,
    x: ArrayView2<'_, Option<TokenId>>,
    y: ArrayView2<'_, Option<TokenId>>,
    a0: ArrayView2<'_, F>,
    cache: &mut Cache<F>,
) -> Option<Loss> {
    let (n_steps, m) = x.dim();
    if m != 1 || !matvec::available::<F>() {
        return None;
    }
    debug_assert_eq!(y.dim(), (n_steps, m));
    debug_assert_eq!(a0.dim(), (params.n_a(), m));
    cache.resize(params.n_a(), params.n_y(), n_steps, m);
    cache.a.slice_mut(s![.., 0..m]).assign(&a0); //                   a⟨0⟩
    let a_steps = cache
        .a
        .view_mut()
        .into_shape_with_order(((params.n_a(), m, n_steps + 1), Order::ColumnMajor))
        .expect("the cache is column-major");
    let done = hidden_steps_batch1(w_rows, params.n_a(), params, x, a_steps);
    debug_assert!(done, "batch1_rows checked every layout the kernels need");
    if !done {
        return None;
    }
    let a_all = cache.a.slice(s![.., m..]);
    Some(output_into(
        params,
        a_all,
        y.iter().copied(),
        cache.y_hat.view_mut(),
    ))
}

/// [`hidden_steps`] at batch 1 on W_aa's rows (of stride `ld`): the
/// same kernels in the same order, so the same bits, called on plain slices instead of
/// through the views and the dispatch of the general path at each step. Returns `false`,
/// having done nothing, when a buffer or W_ax's columns are not contiguous.
fn hidden_steps_batch1<F: Float>(
    w_aa: &[F],
    ld: usize,
    params: &Params<F>,
    x: ArrayView2<'_, Option<TokenId>>,
    mut a_steps: ArrayViewMut3<'_, F>,
) -> bool {
    let n_a = params.n_a();
    // Step t in elements t·n_a .. (t+1)·n_a of one column-major buffer.
    let column_major = a_steps.strides()[0] == 1 && a_steps.strides()[2] == n_a as isize;
    if x.ncols() != 1 || !column_major {
        return false;
    }
    let (Some(a), Some(b_a)) = (
        a_steps.as_slice_memory_order_mut(),
        params.b_a.as_slice_memory_order(),
    ) else {
        return false;
    };
    for (t, x_t) in x.column(0).iter().enumerate() {
        // The gathered column W_ax[:, id] (contiguous, or the general path runs); no
        // input adds nothing. Nothing is written before these checks pass at t = 0, and
        // the general path recomputes every step from a⟨0⟩ otherwise.
        let w_x = match x_t {
            Some(id) => match params.w_ax.column(*id as usize).to_slice() {
                Some(col) => Some(col),
                None => return false,
            },
            None => None,
        };
        let (done, rest) = a.split_at_mut((t + 1) * n_a);
        let (prev, next) = (&done[t * n_a..], &mut rest[..n_a]);
        if !matvec::rows(n_a, n_a, w_aa, ld, prev, next) {
            return false;
        }
        simd_input_bias_tanh(next, w_x, b_a);
    }
    true
}

/// The recurrence a⟨t⟩ = tanh(W_ax x⟨t⟩ + W_aa a⟨t-1⟩ + b_a) for t = 1..=T over the
/// columns of `a_steps` (n_a, columns, T + 1), whose step 0 holds a⟨0⟩. With `groups` > 1
/// the columns are split into that many groups, run as parallel rayon tasks.
fn hidden_steps<F: Float>(
    w_aa: StepWeights<'_, F>,
    params: &Params<F>,
    x: ArrayView2<'_, Option<TokenId>>,
    mut a_steps: ArrayViewMut3<'_, F>,
    groups: usize,
) {
    if groups > 1 {
        let left = groups / 2;
        let mid = split_point(x.ncols(), left, groups);
        let (x1, x2) = x.split_at(Axis(1), mid);
        let (a1, a2) = a_steps.split_at(Axis(1), mid);
        rayon::join(
            || hidden_steps(w_aa, params, x1, a1, left),
            || hidden_steps(w_aa, params, x2, a2, groups - left),
        );
        return;
    }
    for t in 0..x.nrows() {
        // a⟨t⟩ from a⟨t-1⟩: two disjoint blocks of the same buffer.
        let (done, mut rest) = a_steps.view_mut().split_at(Axis(2), t + 1);
        let prev = done.index_axis(Axis(2), t);
        hidden_step_with(
            w_aa,
            params,
            prev,
            x.row(t),
            rest.index_axis_mut(Axis(2), 0),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn softmax_columns_are_distributions_even_for_huge_logits() {
        let mut p: Params = Params::zeros(3, 2, 3);
        p.w_ya = array![[1000.0, 0.0], [0.0, 1000.0], [-1000.0, 0.0]];
        let a = array![[1.0], [0.5]];
        let mut y_hat = Array2::zeros((3, 1).f());
        let loss = output_into(&p, a.view(), [Some(2)].into_iter(), y_hat.view_mut());
        assert!((y_hat.sum() - 1.0).abs() < 1e-12);
        assert!(y_hat.iter().all(|v| v.is_finite()));
        // z = (1000, 500, -1000): −ln p[2] = ln(Σ exp(z − 1000)) − (−2000) ≈ 2000.
        assert!((loss.total - 2000.0).abs() < 1e-9, "{}", loss.total);
    }
}
