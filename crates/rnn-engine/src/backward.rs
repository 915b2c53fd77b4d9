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

use ndarray::{
    Array2, ArrayView1, ArrayView2, ArrayView3, ArrayViewMut1, ArrayViewMut2, ArrayViewMut3, Axis,
    Order, ShapeBuilder, s,
};

use crate::kernels::{
    PACK_MIN_COLUMNS, Packed, StepWeights, batch_groups, gemm, simd_add, simd_through_tanh,
    split_point,
};
use crate::matvec;
use crate::{Cache, Float, Grads, Params, TokenId};

/// Reusable buffers for [`backward_into`], sized once per batch shape.
///
/// # Shapes
///
/// `dy`: (n_y, T·m), `da`, `da_raw`: (n_a, T·m), `da_next`: (n_a, m); all column-major
/// with step t in columns `t·m .. (t+1)·m`.
#[derive(Clone, Debug)]
pub struct Bptt<F: Float = f64> {
    batch: usize,
    dy: Array2<F>,
    da: Array2<F>,
    da_raw: Array2<F>,
    da_next: Array2<F>,
    /// W_aaᵀ packed into panels, for batches of several columns.
    w_aa_t_packed: Packed<F>,
}

impl<F: Float> Bptt<F> {
    /// Empty buffers; [`backward_into`] sizes them.
    pub fn new() -> Self {
        Bptt {
            batch: 0,
            dy: Array2::zeros((0, 0).f()),
            da: Array2::zeros((0, 0).f()),
            da_raw: Array2::zeros((0, 0).f()),
            da_next: Array2::zeros((0, 0).f()),
            w_aa_t_packed: Packed::default(),
        }
    }

    fn resize(&mut self, n_a: usize, n_y: usize, n_steps: usize, batch: usize) {
        let cols = n_steps * batch;
        if self.dy.dim() != (n_y, cols) {
            self.dy = Array2::zeros((n_y, cols).f());
        }
        if self.da.dim() != (n_a, cols) {
            self.da = Array2::zeros((n_a, cols).f());
            self.da_raw = Array2::zeros((n_a, cols).f());
        }
        if self.da_next.dim() != (n_a, batch) {
            self.da_next = Array2::zeros((n_a, batch).f());
        }
        self.batch = batch;
    }

    /// dL/da⟨0⟩, the gradient with respect to the initial hidden state, (n_a, m).
    pub fn da0(&self) -> ArrayView2<'_, F> {
        self.da_next.view()
    }

    /// dL/d(pre-activation) at every step, (1 − a²) ⊙ da: (n_a, T·m), step t in columns
    /// t·m .. (t+1)·m.
    pub(crate) fn da_raw_all(&self) -> ArrayView2<'_, F> {
        self.da_raw.view()
    }

    /// `dL/da⟨t⟩` for every step, (n_a, T·m): the total gradient reaching each hidden state,
    /// from its own output and from all later steps.
    pub fn da_all(&self) -> ArrayView2<'_, F> {
        self.da.view()
    }

    /// The L2 norm of `dL/da⟨t⟩` at each step t = 0..T (over all batch columns), the numbers
    /// behind the vanishing and exploding gradient plot.
    pub fn hidden_grad_norms(&self) -> Vec<f64> {
        let m = self.batch.max(1);
        let n_steps = self.da.ncols() / m;
        (0..n_steps)
            .map(|t| {
                self.da
                    .slice(s![.., t * m..(t + 1) * m])
                    .iter()
                    .map(|v| v.as_f64() * v.as_f64())
                    .sum::<f64>()
                    .sqrt()
            })
            .collect()
    }
}

impl<F: Float> Default for Bptt<F> {
    fn default() -> Self {
        Self::new()
    }
}

/// Backpropagation through time, as in the post: the gradients of the summed loss with
/// respect to all five parameters, and dL/da⟨0⟩.
///
/// Gradients are those of the raw loss, before any clipping.
///
/// # Shapes
///
/// `x`, `y`: (T, m) as given to [`forward`](crate::forward); returns gradients
/// shaped like `params` and dL/da⟨0⟩ (n_a, m).
pub fn backward<F: Float>(
    params: &Params<F>,
    x: ArrayView2<'_, Option<TokenId>>,
    y: ArrayView2<'_, Option<TokenId>>,
    cache: &Cache<F>,
) -> (Grads<F>, Array2<F>) {
    let mut grads = Grads::zeros(params.n_x(), params.n_a(), params.n_y());
    let mut bptt = Bptt::new();
    backward_into(params, x, y, cache, &mut grads, &mut bptt);
    (grads, bptt.da_next)
}

// ANCHOR: backward
/// [`backward`] into reused buffers: overwrites `grads`, leaves dL/da⟨0⟩ and the
/// per-step hidden gradients in `bptt`. No allocation once the buffers have the right
/// shape.
///
/// The same formulas as [`rnn::rnn_step_backward`], grouped for speed: everything that does
/// not depend on the recurrence (the output layer's gradients, dW_aa, db_a and the
/// scatter into dW_ax) runs once over all steps; only da, da_raw and da_next go step by
/// step, from the last to the first.
pub fn backward_into<F: Float>(
    params: &Params<F>,
    x: ArrayView2<'_, Option<TokenId>>,
    y: ArrayView2<'_, Option<TokenId>>,
    cache: &Cache<F>,
    grads: &mut Grads<F>,
    bptt: &mut Bptt<F>,
) {
    deltas_into(params, x, y, cache, bptt);
    // dW_ya = Σ_t dy⟨t⟩ a⟨t⟩ᵀ, db_y = Σ_t dy⟨t⟩: one product over all steps, computed
    // as its transpose dW_yaᵀ = A Dyᵀ so that the kernels read and write columns.
    gemm(
        cache.a_all(),
        bptt.dy.t(),
        grads.w_ya.view_mut().reversed_axes(),
    );
    sum_columns_into(bptt.dy.view(), &mut grads.b_y);
    // dW_aa = Σ_t da_raw⟨t⟩ a⟨t-1⟩ᵀ, db_a = Σ_t da_raw⟨t⟩; as its transpose, like dW_ya.
    gemm(
        cache.a_prev_all(),
        bptt.da_raw.t(),
        grads.w_aa.view_mut().reversed_axes(),
    );
    sum_columns_into(bptt.da_raw.view(), &mut grads.b_a);
    // dW_ax = Σ_t da_raw⟨t⟩ x⟨t⟩ᵀ: a scatter-add of columns, the transpose of the gather.
    grads.w_ax.fill(F::zero());
    for (da_raw_col, x_tj) in bptt.da_raw.columns().into_iter().zip(x.iter()) {
        if let Some(id) = x_tj {
            add_into(grads.w_ax.column_mut(*id as usize), da_raw_col);
        }
    }
}
// ANCHOR_END: backward

/// The deltas of [`backward_into`], everything but the parameter gradients, into
/// `bptt`: `dy⟨t⟩ = ŷ⟨t⟩ − y⟨t⟩`, then `da⟨t⟩` and `da_raw⟨t⟩` from the last step to the
/// first, and `dL/da⟨0⟩`. The parameter gradients are sums over the steps of these deltas
/// (times the activations).
pub(crate) fn deltas_into<F: Float>(
    params: &Params<F>,
    x: ArrayView2<'_, Option<TokenId>>,
    y: ArrayView2<'_, Option<TokenId>>,
    cache: &Cache<F>,
    bptt: &mut Bptt<F>,
) {
    let (w_aa, w_ya) = (params.w_aa.view(), params.w_ya.view());
    let (n_steps, m) = x.dim();
    let (n_y, n_a) = w_ya.dim();
    debug_assert_eq!((cache.n_steps(), cache.batch()), (n_steps, m));
    debug_assert_eq!(y.dim(), (n_steps, m));
    debug_assert_eq!(w_aa.dim(), (n_a, n_a));
    bptt.resize(n_a, n_y, n_steps, m);
    let expect = "the cache and BPTT buffers are column-major";

    // dy = ŷ − y for every step; a padded position (no target) gets no gradient.
    bptt.dy.assign(&cache.y_hat_all()); //                             (n_y, T·m)
    let dy = bptt.dy.as_slice_memory_order_mut().expect(expect);
    for (dy_col, target) in dy.chunks_exact_mut(n_y).zip(y.iter()) {
        match target {
            Some(k) => dy_col[*k as usize] -= F::one(),
            None => dy_col.fill(F::zero()),
        }
    }
    // The output part of da at every step, W_yaᵀ dy⟨t⟩.               (n_a, T·m)
    gemm(w_ya.t(), bptt.dy.view(), bptt.da.view_mut());

    // The recurrence, from the last step to the first, on the buffers seen as
    // (n_a, m, T): [.., j, t] is column j of step t.
    bptt.da_next.fill(F::zero());
    let by_step = (n_a, m, n_steps);
    let a_steps = cache
        .a_all()
        .into_shape_with_order((by_step, Order::ColumnMajor))
        .expect(expect);
    let mut da_steps = bptt
        .da
        .view_mut()
        .into_shape_with_order((by_step, Order::ColumnMajor))
        .expect(expect);
    let mut da_raw_steps = bptt
        .da_raw
        .view_mut()
        .into_shape_with_order((by_step, Order::ColumnMajor))
        .expect(expect);
    let w_aa_t = if m >= PACK_MIN_COLUMNS {
        bptt.w_aa_t_packed.pack(w_aa.t());
        StepWeights::Packed(&bptt.w_aa_t_packed)
    } else {
        StepWeights::InPlace(w_aa.t())
    };
    // At batch 1 with the kernels of `matvec`, on W_aa's rows (when contiguous).
    let batch1 = crate::forward::batch1_rows(params, m).is_some_and(|w| {
        backward_steps_batch1(
            (w, n_a),
            a_steps.view(),
            da_steps.view_mut(),
            da_raw_steps.view_mut(),
            bptt.da_next.view_mut(),
        )
    });
    if !batch1 {
        backward_steps(
            w_aa_t,
            a_steps,
            da_steps,
            da_raw_steps,
            bptt.da_next.view_mut(),
            batch_groups(n_a, m),
        );
    }
}

/// dst ← dst + src, over slices (vectorized for this CPU) when both are contiguous.
fn add_into<F: Float>(mut dst: ArrayViewMut1<'_, F>, src: ArrayView1<'_, F>) {
    match (dst.as_slice_mut(), src.to_slice()) {
        (Some(d), Some(s)) => simd_add(d, s),
        _ => dst += &src,
    }
}

/// The backward recurrence over the columns of the step-indexed buffers (n_a, columns,
/// T), from the last step to the first:
///
/// ```text
/// da⟨t⟩     += da_next                  (W_yaᵀ dy⟨t⟩ is already in da)
/// da_raw⟨t⟩  = (1 − a⟨t⟩ ⊙ a⟨t⟩) ⊙ da⟨t⟩
/// da_next    = W_aaᵀ da_raw⟨t⟩
/// ```
///
/// With `groups` > 1 the columns are split into that many groups, run as parallel rayon
/// tasks (the columns are independent sequences).
fn backward_steps<F: Float>(
    w_aa_t: StepWeights<'_, F>,
    a: ArrayView3<'_, F>,
    mut da: ArrayViewMut3<'_, F>,
    mut da_raw: ArrayViewMut3<'_, F>,
    mut da_next: ArrayViewMut2<'_, F>,
    groups: usize,
) {
    if groups > 1 {
        let left = groups / 2;
        let mid = split_point(da_next.ncols(), left, groups);
        let (a1, a2) = a.split_at(Axis(1), mid);
        let (da1, da2) = da.split_at(Axis(1), mid);
        let (dr1, dr2) = da_raw.split_at(Axis(1), mid);
        let (dn1, dn2) = da_next.split_at(Axis(1), mid);
        rayon::join(
            || backward_steps(w_aa_t, a1, da1, dr1, dn1, left),
            || backward_steps(w_aa_t, a2, da2, dr2, dn2, groups - left),
        );
        return;
    }
    for t in (0..a.len_of(Axis(2))).rev() {
        let mut da_t = da.index_axis_mut(Axis(2), t); //              (n_a, m)
        let mut da_raw_t = da_raw.index_axis_mut(Axis(2), t); //      (n_a, m)
        simd_through_tanh(
            column_major_mut(&mut da_t),
            column_major_mut(&mut da_raw_t),
            column_major(&da_next.view()),
            column_major(&a.index_axis(Axis(2), t)),
        );
        // da_next = W_aaᵀ da_raw                                      (n_a, m)
        w_aa_t.product(da_raw_t.view(), da_next.view_mut());
    }
}

/// [`backward_steps`] at batch 1 on W_aa's rows (of stride `ld`, which are the columns of
/// W_aaᵀ): the same kernels in the same order, so the same bits, on plain slices instead
/// of through views and dispatch at each step. Returns `false`,
/// having done nothing, when the kernels are not available here or a buffer is not one
/// column-major block.
fn backward_steps_batch1<F: Float>(
    (w_aa, ld): (&[F], usize),
    a: ArrayView3<'_, F>,
    mut da: ArrayViewMut3<'_, F>,
    mut da_raw: ArrayViewMut3<'_, F>,
    mut da_next: ArrayViewMut2<'_, F>,
) -> bool {
    let n_a = a.len_of(Axis(0));
    let by_step = |st: &[isize]| st[0] == 1 && st[2] == n_a as isize;
    let layouts = by_step(a.strides()) && by_step(da.strides()) && by_step(da_raw.strides());
    if !matvec::available::<F>() || !layouts || a.len_of(Axis(1)) != 1 {
        return false;
    }
    let (Some(a), Some(da), Some(dr), Some(dn)) = (
        a.to_slice_memory_order(),
        da.as_slice_memory_order_mut(),
        da_raw.as_slice_memory_order_mut(),
        da_next.as_slice_memory_order_mut(),
    ) else {
        return false;
    };
    for t in (0..a.len() / n_a).rev() {
        let step = t * n_a..(t + 1) * n_a;
        let dr_t = &mut dr[step.clone()];
        simd_through_tanh(&mut da[step.clone()], dr_t, dn, &a[step]);
        // da_next = W_aaᵀ da_raw⟨t⟩; after the first step, dL/da⟨0⟩.
        matvec::cols(n_a, n_a, w_aa, ld, dr_t, dn);
    }
    true
}

/// The elements of a block of columns of one of the crate's column-major buffers, which
/// are contiguous.
fn column_major<'a, F>(v: &ArrayView2<'a, F>) -> &'a [F] {
    v.to_slice_memory_order()
        .expect("the cache and BPTT buffers are column-major")
}

/// [`column_major`] for a mutable block.
fn column_major_mut<'a, F>(v: &'a mut ArrayViewMut2<'_, F>) -> &'a mut [F] {
    v.as_slice_memory_order_mut()
        .expect("the cache and BPTT buffers are column-major")
}

/// `out[:, 0] = Σ_j m[:, j]`.
fn sum_columns_into<F: Float>(m: ArrayView2<'_, F>, out: &mut Array2<F>) {
    let mut out = out.column_mut(0);
    out.fill(F::zero());
    for col in m.columns() {
        add_into(out.view_mut(), col);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward;
    use ndarray::array;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// backward must equal the post's loop of rnn_step_backward from the last step
    /// to the first.
    #[test]
    fn batched_backward_equals_the_step_by_step_loop() {
        let p: Params = Params::init_with_std(6, 5, 6, 0.5, &mut ChaCha8Rng::seed_from_u64(2));
        let x = array![
            [None, Some(2)],
            [Some(1), Some(5)],
            [Some(3), Some(1)],
            [Some(1), None]
        ];
        let y = array![
            [Some(1), Some(5)],
            [Some(3), Some(1)],
            [Some(1), Some(0)],
            [Some(0), None]
        ];
        let a0 = Array2::from_shape_fn((5, 2), |(i, j)| 0.1 * (i as f64) - 0.3 * j as f64);
        let (_, cache) = forward(&p, x.view(), y.view(), a0.view());
        let (grads, da0) = backward(&p, x.view(), y.view(), &cache);

        let mut want = Grads::zeros(6, 5, 6);
        let mut da_next = Array2::zeros((5, 2));
        for t in (0..4).rev() {
            let mut dy = cache.y_hat(t).to_owned();
            for j in 0..2 {
                match y[[t, j]] {
                    Some(k) => dy[[k as usize, j]] -= 1.0,
                    None => dy.column_mut(j).fill(0.0),
                }
            }
            rnn::rnn_step_backward(
                dy.view(),
                &mut want,
                &mut da_next,
                &p,
                x.row(t),
                cache.a(t),
                cache.a_prev(t),
            );
        }
        for ((name, g), (_, w)) in grads.arrays().into_iter().zip(want.arrays()) {
            let diff = (g - w).iter().fold(0.0f64, |m, d| m.max(d.abs()));
            assert!(diff < 1e-14, "{name}: max difference {diff}");
        }
        let diff = (&da0 - &da_next).iter().fold(0.0f64, |m, d| m.max(d.abs()));
        assert!(diff < 1e-14);
    }

    #[test]
    fn hidden_grad_norms_has_one_entry_per_step() {
        let p: Params = Params::init_with_std(4, 3, 4, 0.5, &mut ChaCha8Rng::seed_from_u64(5));
        let x = array![[None], [Some(1)], [Some(2)]];
        let y = array![[Some(1)], [Some(2)], [Some(0)]];
        let a0 = Array2::zeros((3, 1));
        let (_, cache) = forward(&p, x.view(), y.view(), a0.view());
        let mut grads = Grads::zeros(4, 3, 4);
        let mut bptt = Bptt::new();
        backward_into(&p, x.view(), y.view(), &cache, &mut grads, &mut bptt);
        let norms = bptt.hidden_grad_norms();
        assert_eq!(norms.len(), 3);
        let last = bptt
            .da_all()
            .column(2)
            .iter()
            .map(|v| v * v)
            .sum::<f64>()
            .sqrt();
        assert_eq!(norms[2], last);
        assert!(norms.iter().all(|n| *n > 0.0));
    }
}
