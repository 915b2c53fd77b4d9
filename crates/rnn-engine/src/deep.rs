//! The deep networks of [`rnn::DeepParams`] (vanilla, GRU or LSTM layers, stacked, with
//! dropout between them), made fast: the same losses and gradients as
//! [`rnn::deep_forward`] and [`rnn::deep_backward`], and a training step,
//! [`deep_update_step`], that clips and updates as [`rnn::clip_deep`] and
//! [`rnn::DeepOptimizer`] do.
//!
//! The reference runs time step by time step and, inside each, layer by layer. Layer k at
//! step t reads only layer k − 1 at step t, so the engine runs layer by layer instead, each
//! over all its steps, which turns everything but the recurrence into products over all
//! T·m columns at once:
//!
//! - forward, per layer: the input projection W_ih x for every step (a gather of W_ih's
//!   columns for the characters of layer 0, one threaded GEMM above it), then the
//!   recurrence: per step only the product W_hh h_prev (packed W_hh, the batch's columns
//!   split over threads) and one fused pass of gate math (`gates`); then the output layer
//!   and the loss for all steps;
//! - backward, from the top layer down: W_yaᵀ dy for all steps, then per layer the
//!   recurrence (gate math backward and the product W_hhᵀ dgh), which leaves the gates'
//!   pre-activation gradients of every step side by side, and from them dW_hh, dW_ih and
//!   the gradient into the layer below as single products.
//!
//! Every buffer is sized once per batch shape ([`DeepBuffers`]); the per-step loop does not
//! allocate.

mod gates;
mod update;

use ndarray::{
    Array2, ArrayView2, ArrayViewMut2, ArrayViewMut3, Axis, Order, ShapeBuilder, Zip, s,
};
use rnn::{
    CellKind, Clip, DeepGrads, DeepOptimizer, DeepParams, DeepShape, DropoutMasks, Loss, State,
};

use crate::forward::{column_slice, logits_softmax};
use crate::kernels::{
    Packed, assign_col_major, batch_groups, gemm, matmul_packed, simd_add, split_point,
};
use crate::{Float, StepReport, TokenId};

/// Every buffer a deep training step needs, sized once per batch shape (T, m) and network
/// shape, reused from step to step.
///
/// # Shapes
///
/// Per layer, column-major with step t in columns t·m .. (t+1)·m: the states h and (LSTM)
/// c, (n_a, (T+1)·m) with the initial state first; the gates `gx` and `gh`, (G·n_a, T·m).
/// Then the output's ŷ (n_y, T·m) and the gradient from above dh (n_a, T·m).
#[derive(Debug)]
pub struct DeepBuffers<F: Float> {
    shape: DeepShape,
    batch: usize,
    n_steps: usize,
    layers: Vec<LayerBuffers<F>>,
    /// Layer 0's W_ih column-major (its columns are gathered), and its gradient likewise.
    w_ih0: Array2<F>,
    dw_ih0: Array2<F>,
    /// W_ya column-major.
    w_ya: Array2<F>,
    /// ŷ, then dy = ŷ − y, (n_y, T·m).
    y_hat: Array2<F>,
    /// dL/dh from above (the output, or the layer above through its dropout mask), (n_a, T·m).
    dh: Array2<F>,
    /// dL/dh_prev and dL/dc_prev flowing back from the step after, and the GRU's direct
    /// term dh ⊙ z, (n_a, m).
    dh_next: Array2<F>,
    dc_next: Array2<F>,
    skip: Array2<F>,
    grads: DeepGrads<F>,
    /// dL/dh_0 and dL/dc_0 of every layer.
    d_state0: State<F>,
    last_good: DeepParams<F>,
}

/// The buffers of one layer.
#[derive(Debug)]
struct LayerBuffers<F> {
    /// h<0..=T>, (n_a, (T+1)·m).
    h: Array2<F>,
    /// c<0..=T> for the LSTM, (n_a, (T+1)·m); (0, (T+1)·m) for the other cells.
    c: Array2<F>,
    /// W_ih x + biases, then the gates, then dL/d(gx), (G·n_a, T·m).
    gx: Array2<F>,
    /// W_hh h_prev (the GRU keeps gh_n + b_hn), then the GRU's dL/d(gh), (G·n_a, T·m).
    gh: Array2<F>,
    /// The input after dropout, (n_a, T·m), for layers above the first.
    x_in: Array2<F>,
    /// The biases added to gx (b_ih, plus b_hh but the GRU's b_hn), (G·n_a).
    bias_x: Vec<F>,
    /// The GRU's b_hn, (n_a).
    b_hn: Vec<F>,
    w_hh: Packed<F>,
    w_hh_t: Packed<F>,
}

impl<F: Float> LayerBuffers<F> {
    fn new(shape: DeepShape, k: usize, m: usize, t: usize) -> Self {
        let (n_a, g) = (shape.n_a, shape.cell.n_gates());
        let c_rows = if shape.cell == CellKind::Lstm { n_a } else { 0 };
        let x_rows = if k > 0 { n_a } else { 0 };
        LayerBuffers {
            h: Array2::zeros((n_a, (t + 1) * m).f()),
            c: Array2::zeros((c_rows, (t + 1) * m).f()),
            gx: Array2::zeros((g * n_a, t * m).f()),
            gh: Array2::zeros((g * n_a, t * m).f()),
            x_in: Array2::zeros((x_rows, t * m).f()),
            bias_x: vec![F::zero(); g * n_a],
            b_hn: vec![F::zero(); n_a],
            w_hh: Packed::default(),
            w_hh_t: Packed::default(),
        }
    }

    /// The biases of `layer` as the gate math adds them: `bias_x` = b_ih + b_hh (but the
    /// GRU's n block, whose b_hn is scaled by r), `b_hn`.
    fn set_biases(&mut self, cell: CellKind, layer: &rnn::LayerParams<F>) {
        let n_a = self.b_hn.len();
        for (i, b) in self.bias_x.iter_mut().enumerate() {
            let b_hh = match cell {
                CellKind::Rnn => F::zero(),
                CellKind::Gru if i >= 2 * n_a => F::zero(),
                _ => layer.b_hh[[i, 0]],
            };
            *b = layer.b_ih[[i, 0]] + b_hh;
        }
        if cell == CellKind::Gru {
            for (i, b) in self.b_hn.iter_mut().enumerate() {
                *b = layer.b_hh[[2 * n_a + i, 0]];
            }
        }
    }
}

impl<F: Float> DeepBuffers<F> {
    /// Buffers for networks of `shape` on batches of `m` columns and `t` steps.
    pub fn new(shape: DeepShape, m: usize, t: usize) -> Self {
        let (n_a, g) = (shape.n_a, shape.cell.n_gates());
        DeepBuffers {
            shape,
            batch: m,
            n_steps: t,
            layers: (0..shape.n_layers)
                .map(|k| LayerBuffers::new(shape, k, m, t))
                .collect(),
            w_ih0: Array2::zeros((g * n_a, shape.n_x).f()),
            dw_ih0: Array2::zeros((g * n_a, shape.n_x).f()),
            w_ya: Array2::zeros((shape.n_y, n_a).f()),
            y_hat: Array2::zeros((shape.n_y, t * m).f()),
            dh: Array2::zeros((n_a, t * m).f()),
            dh_next: Array2::zeros((n_a, m).f()),
            dc_next: Array2::zeros((n_a, m).f()),
            skip: Array2::zeros((n_a, m).f()),
            grads: DeepParams::zeros(shape),
            d_state0: State::zeros(shape, m),
            last_good: DeepParams::zeros(shape),
        }
    }

    /// The gradients of the last step (before clipping), shaped like the parameters.
    pub fn grads(&self) -> &DeepGrads<F> {
        &self.grads
    }

    /// dL/dh_0 and dL/dc_0 of every layer from the last backward pass (as the second
    /// result of [`rnn::deep_backward`]; dL/dc_0 is zero for cells other than the LSTM).
    pub fn state_grads(&self) -> &State<F> {
        &self.d_state0
    }

    /// Resizes for another network or batch shape (reallocating only then).
    fn ensure(&mut self, shape: DeepShape, m: usize, t: usize) {
        if (self.shape, self.batch, self.n_steps) != (shape, m, t) {
            *self = DeepBuffers::new(shape, m, t);
        }
    }
}

/// Forward, backward, clip and optimizer update of one batch, from the carried `state`
/// (on success `state` becomes the state after the last step, to carry into the next
/// chunk). Returns Err(report) without touching params/optimizer/state when the loss or
/// a gradient is not finite; parameters made non-finite by the update are restored (the
/// optimizer's state then has moved, as in [`update_step`](crate::update_step)).
///
/// The engine's form of `rnn::deep_forward`, `deep_backward`, `clip_deep` and
/// `DeepOptimizer::step` in a row.
///
/// # Shapes
///
/// `x`, `y`: (T, m), `state` as in [`rnn::State`], `dropout.masks`: T × (n_layers − 1) of
/// (n_a, m).
#[allow(clippy::too_many_arguments)]
pub fn deep_update_step<F: Float>(
    params: &mut DeepParams<F>,
    optimizer: &mut DeepOptimizer<F>,
    clip: Clip,
    x: ArrayView2<'_, Option<TokenId>>,
    y: ArrayView2<'_, Option<TokenId>>,
    state: &mut State<F>,
    dropout: Option<&DropoutMasks<F>>,
    buf: &mut DeepBuffers<F>,
) -> Result<StepReport, StepReport> {
    let loss = forward_pass(params, x, y, state, dropout, buf);
    backward_pass(params, x, y, dropout, buf);
    let grad_norm = update::global_norm(&buf.grads);
    let report = StepReport { loss, grad_norm };
    if !loss.total.is_finite() || !grad_norm.is_finite() {
        return Err(report);
    }
    for (keep, p) in update::arrays_mut(&mut buf.last_good).zip(update::arrays(params)) {
        keep.assign(p);
    }
    let clipped = update::Clipped::new(clip, grad_norm);
    if !update::update_checked(optimizer, params, &buf.grads, clipped) {
        for (p, keep) in update::arrays_mut(params).zip(update::arrays(&buf.last_good)) {
            p.assign(keep);
        }
        return Err(report);
    }
    store_state(params.cell, buf, state);
    Ok(report)
}

/// Loss of a batch without dropout or update (validation), carrying `state` as
/// [`deep_update_step`] does.
///
/// # Shapes
///
/// `x`, `y`: (T, m), `state` as in [`rnn::State`].
pub fn deep_evaluate<F: Float>(
    params: &DeepParams<F>,
    x: ArrayView2<'_, Option<TokenId>>,
    y: ArrayView2<'_, Option<TokenId>>,
    state: &mut State<F>,
    buf: &mut DeepBuffers<F>,
) -> Loss {
    let loss = forward_pass(params, x, y, state, None, buf);
    store_state(params.cell, buf, state);
    loss
}

/// Forward and backward propagation of one batch from `state` (left unchanged), without
/// clipping or update: returns the loss and leaves the gradients in
/// [`DeepBuffers::grads`] and dL/d`state` in [`DeepBuffers::state_grads`], as
/// [`rnn::deep_forward`] then [`rnn::deep_backward`] compute them.
///
/// # Shapes
///
/// As [`deep_update_step`].
pub fn deep_gradients<F: Float>(
    params: &DeepParams<F>,
    x: ArrayView2<'_, Option<TokenId>>,
    y: ArrayView2<'_, Option<TokenId>>,
    state: &State<F>,
    dropout: Option<&DropoutMasks<F>>,
    buf: &mut DeepBuffers<F>,
) -> Loss {
    let loss = forward_pass(params, x, y, state, dropout, buf);
    backward_pass(params, x, y, dropout, buf);
    loss
}

/// `state` ← the states after the last step of the last forward pass.
fn store_state<F: Float>(cell: CellKind, buf: &DeepBuffers<F>, state: &mut State<F>) {
    let (m, t) = (buf.batch, buf.n_steps);
    for (k, lb) in buf.layers.iter().enumerate() {
        state.h[k].assign(&lb.h.slice(s![.., t * m..(t + 1) * m]));
        if cell == CellKind::Lstm {
            state.c[k].assign(&lb.c.slice(s![.., t * m..(t + 1) * m]));
        }
    }
}

/// Into how many groups of columns the recurrence is split: as the vanilla recurrence's
/// [`batch_groups`], for the G times larger per-step product (an n_a·√G square one).
fn groups(shape: DeepShape, m: usize) -> usize {
    let side = ((shape.cell.n_gates() as f64).sqrt() * shape.n_a as f64) as usize;
    batch_groups(side, m)
}

/// Forward propagation over all layers and steps into `buf`; returns the loss.
fn forward_pass<F: Float>(
    params: &DeepParams<F>,
    x: ArrayView2<'_, Option<TokenId>>,
    y: ArrayView2<'_, Option<TokenId>>,
    state: &State<F>,
    dropout: Option<&DropoutMasks<F>>,
    buf: &mut DeepBuffers<F>,
) -> Loss {
    let shape = params.shape();
    let (n_steps, m) = x.dim();
    assert_eq!(y.dim(), (n_steps, m), "inputs and targets have one shape");
    assert!(
        dropout.is_none_or(|d| d.masks.len() == n_steps),
        "one set of dropout masks per step"
    );
    buf.ensure(shape, m, n_steps);
    let (cell, n_a, cols) = (shape.cell, shape.n_a, n_steps * m);
    let groups = groups(shape, m);
    for (k, layer) in params.layers.iter().enumerate() {
        let (below, rest) = buf.layers.split_at_mut(k);
        let lb = &mut rest[0];
        lb.set_biases(cell, layer);
        // The input projection of every step, biases included.            (G·n_a, T·m)
        if k == 0 {
            assign_col_major(buf.w_ih0.view_mut(), layer.w_ih.view());
            gather_columns(buf.w_ih0.view(), x, &lb.bias_x, lb.gx.view_mut());
        } else {
            let h_below = below[k - 1].h.slice(s![.., m..]);
            let input = match dropout {
                Some(d) => {
                    for t in 0..n_steps {
                        let block = s![.., t * m..(t + 1) * m];
                        Zip::from(lb.x_in.slice_mut(block))
                            .and(h_below.slice(block))
                            .and(&d.masks[t][k - 1])
                            .for_each(|x, &h, &d| *x = h * d);
                    }
                    lb.x_in.view()
                }
                None => h_below,
            };
            gemm(layer.w_ih.view(), input, lb.gx.view_mut());
            add_to_columns(lb.gx.view_mut(), &lb.bias_x);
        }
        lb.h.slice_mut(s![.., 0..m]).assign(&state.h[k]);
        if cell == CellKind::Lstm {
            lb.c.slice_mut(s![.., 0..m]).assign(&state.c[k]);
        }
        lb.w_hh.pack(layer.w_hh.view());
        let lanes = Lanes::of(&mut lb.h, &mut lb.c, &mut lb.gx, &mut lb.gh, m, n_steps);
        forward_steps(cell, n_a, &lb.w_hh, &lb.b_hn, lanes, groups);
    }
    // ŷ for every step at once: (n_y, n_a) x (n_a, T·m).
    assign_col_major(buf.w_ya.view_mut(), params.w_ya.view());
    let top = &buf.layers[shape.n_layers - 1];
    let b_y = column_slice(params.b_y.column(0));
    debug_assert_eq!(buf.y_hat.ncols(), cols);
    logits_softmax(
        buf.w_ya.view(),
        top.h.slice(s![.., m..]),
        &b_y,
        y.iter().copied(),
        buf.y_hat.view_mut(),
    )
}

/// The step-indexed views of one layer's buffers, (rows, columns, steps), for the
/// recurrence: a group of columns is a split along axis 1.
struct Lanes<'a, F> {
    h: ArrayViewMut3<'a, F>,
    c: ArrayViewMut3<'a, F>,
    gx: ArrayViewMut3<'a, F>,
    gh: ArrayViewMut3<'a, F>,
}

impl<'a, F> Lanes<'a, F> {
    /// The step-indexed views of a layer's h, c (T + 1 steps each) and gx, gh (T steps),
    /// all column-major with m columns per step.
    fn of(
        h: &'a mut Array2<F>,
        c: &'a mut Array2<F>,
        gx: &'a mut Array2<F>,
        gh: &'a mut Array2<F>,
        m: usize,
        n_steps: usize,
    ) -> Self {
        let by_step = |a: &'a mut Array2<F>, steps: usize| {
            let rows = a.nrows();
            a.view_mut()
                .into_shape_with_order(((rows, m, steps), Order::F))
                .expect("the buffers are column-major")
        };
        Lanes {
            h: by_step(h, n_steps + 1),
            c: by_step(c, n_steps + 1),
            gx: by_step(gx, n_steps),
            gh: by_step(gh, n_steps),
        }
    }

    fn split(self, mid: usize) -> (Self, Self) {
        let (h1, h2) = self.h.split_at(Axis(1), mid);
        let (c1, c2) = self.c.split_at(Axis(1), mid);
        let (gx1, gx2) = self.gx.split_at(Axis(1), mid);
        let (gh1, gh2) = self.gh.split_at(Axis(1), mid);
        (
            Lanes {
                h: h1,
                c: c1,
                gx: gx1,
                gh: gh1,
            },
            Lanes {
                h: h2,
                c: c2,
                gx: gx2,
                gh: gh2,
            },
        )
    }

    fn columns(&self) -> usize {
        self.h.len_of(Axis(1))
    }
}

/// Block `t` of a step-indexed view, as one slice (a group's columns of one step are
/// contiguous in the column-major buffers).
fn block<'b, F>(v: &'b mut ArrayViewMut3<'_, F>, t: usize) -> &'b mut [F] {
    v.index_axis_mut(Axis(2), t)
        .into_slice_memory_order()
        .expect("the buffers are column-major")
}

/// Blocks `t` (read) and `t + 1` (written) of a step-indexed view of states.
fn state_pair<'b, F>(
    v: &'b mut ArrayViewMut3<'_, F>,
    t: usize,
) -> (ArrayViewMut2<'b, F>, &'b mut [F]) {
    let (done, rest) = v.view_mut().split_at(Axis(2), t + 1);
    let prev = done.index_axis_move(Axis(2), t);
    let next = rest
        .index_axis_move(Axis(2), 0)
        .into_slice_memory_order()
        .expect("the buffers are column-major");
    (prev, next)
}

/// A view's elements as one slice.
fn contiguous<'b, F>(v: ArrayView2<'b, F>) -> &'b [F] {
    v.to_slice_memory_order()
        .expect("the buffers are column-major")
}

/// The forward recurrence of one layer over the columns of `lanes`, split into `groups`
/// parallel rayon tasks (the columns are independent sequences).
fn forward_steps<F: Float>(
    cell: CellKind,
    n_a: usize,
    w_hh: &Packed<F>,
    b_hn: &[F],
    mut lanes: Lanes<'_, F>,
    groups: usize,
) {
    if groups > 1 {
        let left = groups / 2;
        let mid = split_point(lanes.columns(), left, groups);
        let (l1, l2) = lanes.split(mid);
        rayon::join(
            || forward_steps(cell, n_a, w_hh, b_hn, l1, left),
            || forward_steps(cell, n_a, w_hh, b_hn, l2, groups - left),
        );
        return;
    }
    for t in 0..lanes.gx.len_of(Axis(2)) {
        let (h_prev, h) = state_pair(&mut lanes.h, t);
        // W_hh h_prev                                                  (G·n_a, m)
        matmul_packed(w_hh, h_prev.view(), lanes.gh.index_axis_mut(Axis(2), t));
        let (gx, gh) = (block(&mut lanes.gx, t), block(&mut lanes.gh, t));
        match cell {
            CellKind::Rnn => gates::rnn_forward(n_a, gx, gh, h),
            CellKind::Gru => gates::gru_forward(n_a, gx, gh, b_hn, contiguous(h_prev.view()), h),
            CellKind::Lstm => {
                let (c_prev, c) = state_pair(&mut lanes.c, t);
                gates::lstm_forward(n_a, gx, gh, contiguous(c_prev.view()), c, h);
            }
        }
    }
}

/// `gx[:, col] = w[:, x[col]] + bias` for every column (step-major, as `x.iter()`), or
/// `bias` alone for no input: the one-hot product as a gather.
fn gather_columns<F: Float>(
    w: ArrayView2<'_, F>,
    x: ArrayView2<'_, Option<TokenId>>,
    bias: &[F],
    mut gx: ArrayViewMut2<'_, F>,
) {
    if let Some(mid) = row_split(gx.dim()) {
        let (w1, w2) = w.split_at(Axis(0), mid);
        let (b1, b2) = bias.split_at(mid);
        let (g1, g2) = gx.split_at(Axis(0), mid);
        rayon::join(
            || gather_columns(w1, x, b1, g1),
            || gather_columns(w2, x, b2, g2),
        );
        return;
    }
    for (mut col, x_j) in gx.columns_mut().into_iter().zip(x.iter()) {
        let col = col.as_slice_mut().expect("the buffers are column-major");
        match x_j {
            Some(id) => {
                let w_col = w.column(*id as usize);
                gates::add_to(col, contiguous_1d(&w_col), bias);
            }
            None => col.copy_from_slice(bias),
        }
    }
}

fn contiguous_1d<'b, F>(v: &ndarray::ArrayView1<'b, F>) -> &'b [F] {
    v.to_slice().expect("the buffers are column-major")
}

/// Adds `bias` to every column of `a`.
fn add_to_columns<F: Float>(mut a: ArrayViewMut2<'_, F>, bias: &[F]) {
    for mut col in a.columns_mut() {
        let col = col.as_slice_mut().expect("the buffers are column-major");
        simd_add(col, bias);
    }
}

/// `out[:, 0] = Σ_j a[:, j]`.
fn sum_columns_into<F: Float>(a: ArrayView2<'_, F>, out: &mut Array2<F>) {
    let out = out
        .as_slice_memory_order_mut()
        .expect("a bias is one column");
    sum_columns(a, out);
}

/// `out = Σ_j a[:, j]`, split by rows over the rayon pool when large.
fn sum_columns<F: Float>(a: ArrayView2<'_, F>, out: &mut [F]) {
    if let Some(mid) = row_split(a.dim()) {
        let (a1, a2) = a.split_at(Axis(0), mid);
        let (o1, o2) = out.split_at_mut(mid);
        rayon::join(|| sum_columns(a1, o1), || sum_columns(a2, o2));
        return;
    }
    out.fill(F::zero());
    for col in a.columns() {
        simd_add(out, contiguous_1d(&col));
    }
}

/// `dw = Σ_j dgx[:, j] x_jᵀ` for one-hot x_j (ids, step-major as `x.iter()`): the
/// scatter-add of columns, the transpose of [`gather_columns`]; split by rows over the
/// rayon pool when large.
fn scatter_columns<F: Float>(
    dgx: ArrayView2<'_, F>,
    x: ArrayView2<'_, Option<TokenId>>,
    mut dw: ArrayViewMut2<'_, F>,
) {
    if let Some(mid) = row_split(dgx.dim()) {
        let (a1, a2) = dgx.split_at(Axis(0), mid);
        let (w1, w2) = dw.split_at(Axis(0), mid);
        rayon::join(|| scatter_columns(a1, x, w1), || scatter_columns(a2, x, w2));
        return;
    }
    dw.fill(F::zero());
    for (col, x_j) in dgx.columns().into_iter().zip(x.iter()) {
        if let Some(id) = x_j {
            let mut dst = dw.column_mut(*id as usize);
            let dst = dst.as_slice_mut().expect("the buffers are column-major");
            simd_add(dst, contiguous_1d(&col));
        }
    }
}

/// Where to split element-wise work over an (rows, columns) block between two rayon
/// tasks: at half the rows (a multiple of 16) when the pool has several threads and the
/// block has a million entries or more; `None` to run it here.
fn row_split((rows, cols): (usize, usize)) -> Option<usize> {
    let large = rows >= 64 && rows * cols >= 1 << 20;
    (large && rayon::current_num_threads() > 1).then(|| (rows / 2).div_ceil(16) * 16)
}

/// The views of the backward recurrence: the forward's, the gradient from above (n_a,
/// columns, T) and the (n_a, columns) gradients flowing from step to step.
struct BackLanes<'a, F> {
    fwd: Lanes<'a, F>,
    dh: ArrayViewMut3<'a, F>,
    dh_next: ArrayViewMut2<'a, F>,
    dc_next: ArrayViewMut2<'a, F>,
    skip: ArrayViewMut2<'a, F>,
}

impl<'a, F> BackLanes<'a, F> {
    fn split(self, mid: usize) -> (Self, Self) {
        let (f1, f2) = self.fwd.split(mid);
        let (dh1, dh2) = self.dh.split_at(Axis(1), mid);
        let (dn1, dn2) = self.dh_next.split_at(Axis(1), mid);
        let (dc1, dc2) = self.dc_next.split_at(Axis(1), mid);
        let (s1, s2) = self.skip.split_at(Axis(1), mid);
        (
            BackLanes {
                fwd: f1,
                dh: dh1,
                dh_next: dn1,
                dc_next: dc1,
                skip: s1,
            },
            BackLanes {
                fwd: f2,
                dh: dh2,
                dh_next: dn2,
                dc_next: dc2,
                skip: s2,
            },
        )
    }
}

/// Backpropagation through time and through the layers into `buf.grads`.
fn backward_pass<F: Float>(
    params: &DeepParams<F>,
    x: ArrayView2<'_, Option<TokenId>>,
    y: ArrayView2<'_, Option<TokenId>>,
    dropout: Option<&DropoutMasks<F>>,
    buf: &mut DeepBuffers<F>,
) {
    let shape = params.shape();
    let (cell, n_a, n_y) = (shape.cell, shape.n_a, shape.n_y);
    let (n_steps, m) = x.dim();
    let cols = n_steps * m;
    let groups = groups(shape, m);
    let DeepBuffers {
        layers,
        dw_ih0,
        y_hat,
        dh,
        dh_next,
        dc_next,
        skip,
        grads,
        d_state0,
        ..
    } = buf;
    let expect = "the buffers are column-major";
    // dy = ŷ − y for every step, in place; padding (no target) gets no gradient.
    let dy = y_hat.as_slice_memory_order_mut().expect(expect);
    if n_y > 0 {
        for (dy_col, target) in dy.chunks_exact_mut(n_y).zip(y.iter()) {
            match target {
                Some(k) => dy_col[*k as usize] -= F::one(),
                None => dy_col.fill(F::zero()),
            }
        }
    }
    let top = shape.n_layers - 1;
    // dW_ya = Σ dy hᵀ (as its transpose, like the vanilla engine), db_y, and W_yaᵀ dy.
    gemm(
        layers[top].h.slice(s![.., m..]),
        y_hat.t(),
        grads.w_ya.view_mut().reversed_axes(),
    );
    sum_columns_into(y_hat.view(), &mut grads.b_y);
    gemm(params.w_ya.t(), y_hat.view(), dh.view_mut()); //           (n_a, T·m)
    for k in (0..shape.n_layers).rev() {
        let layer = &params.layers[k];
        let (below, rest) = layers.split_at_mut(k);
        let lb = &mut rest[0];
        lb.w_hh_t.pack(layer.w_hh.t());
        dh_next.fill(F::zero());
        dc_next.fill(F::zero());
        let lanes = BackLanes {
            fwd: Lanes::of(&mut lb.h, &mut lb.c, &mut lb.gx, &mut lb.gh, m, n_steps),
            dh: dh
                .view_mut()
                .into_shape_with_order(((n_a, m, n_steps), Order::F))
                .expect(expect),
            dh_next: dh_next.view_mut(),
            dc_next: dc_next.view_mut(),
            skip: skip.view_mut(),
        };
        backward_steps(cell, n_a, &lb.w_hh_t, lanes, groups);
        d_state0.h[k].assign(dh_next);
        d_state0.c[k].assign(dc_next);
        let g = &mut grads.layers[k];
        // The gates' gradients of every step: dgx in gx, dgh in gh (GRU) or gx.
        let dgh = if cell == CellKind::Gru {
            &lb.gh
        } else {
            &lb.gx
        };
        gemm(
            lb.h.slice(s![.., ..cols]),
            dgh.t(),
            g.w_hh.view_mut().reversed_axes(),
        );
        sum_columns_into(lb.gx.view(), &mut g.b_ih);
        match cell {
            // No b_hh.
            CellKind::Rnn => {}
            // dgh = dgx: the same sums.
            CellKind::Lstm => g.b_hh.assign(&g.b_ih),
            CellKind::Gru => sum_columns_into(dgh.view(), &mut g.b_hh),
        }
        if k == 0 {
            // dW_ih = Σ dgx xᵀ: the scatter-add of columns, the transpose of the gather.
            scatter_columns(lb.gx.view(), x, dw_ih0.view_mut());
            g.w_ih.assign(dw_ih0);
        } else {
            let input = match dropout {
                Some(_) => lb.x_in.view(),
                None => below[k - 1].h.slice(s![.., m..]),
            };
            gemm(input, lb.gx.t(), g.w_ih.view_mut().reversed_axes());
            // Into the layer below, through its dropout mask.            (n_a, T·m)
            gemm(layer.w_ih.t(), lb.gx.view(), dh.view_mut());
            if let Some(d) = dropout {
                for t in 0..n_steps {
                    Zip::from(dh.slice_mut(s![.., t * m..(t + 1) * m]))
                        .and(&d.masks[t][k - 1])
                        .for_each(|dh, &d| *dh *= d);
                }
            }
        }
    }
}

/// The backward recurrence of one layer over the columns of `lanes`, from the last step
/// to the first, split into `groups` parallel rayon tasks.
fn backward_steps<F: Float>(
    cell: CellKind,
    n_a: usize,
    w_hh_t: &Packed<F>,
    mut lanes: BackLanes<'_, F>,
    groups: usize,
) {
    if groups > 1 {
        let left = groups / 2;
        let mid = split_point(lanes.fwd.columns(), left, groups);
        let (l1, l2) = lanes.split(mid);
        rayon::join(
            || backward_steps(cell, n_a, w_hh_t, l1, left),
            || backward_steps(cell, n_a, w_hh_t, l2, groups - left),
        );
        return;
    }
    let expect = "the buffers are column-major";
    for t in (0..lanes.fwd.gx.len_of(Axis(2))).rev() {
        let dh_above = lanes.dh.index_axis(Axis(2), t);
        let dh_above = contiguous(dh_above);
        let dh_next = lanes.dh_next.as_slice_memory_order().expect(expect);
        let h = lanes.fwd.h.view();
        let gx = lanes
            .fwd
            .gx
            .index_axis_mut(Axis(2), t)
            .into_slice_memory_order()
            .expect(expect);
        match cell {
            CellKind::Rnn => {
                let h_t = contiguous(h.index_axis_move(Axis(2), t + 1));
                gates::rnn_backward(n_a, gx, h_t, dh_above, dh_next);
            }
            CellKind::Gru => {
                let h_prev = contiguous(h.index_axis_move(Axis(2), t));
                let gh = lanes
                    .fwd
                    .gh
                    .index_axis_mut(Axis(2), t)
                    .into_slice_memory_order()
                    .expect(expect);
                let skip = lanes.skip.as_slice_memory_order_mut().expect(expect);
                gates::gru_backward(n_a, gx, gh, h_prev, dh_above, dh_next, skip);
            }
            CellKind::Lstm => {
                let c = lanes.fwd.c.view();
                let c_prev = contiguous(c.index_axis(Axis(2), t));
                let c_t = contiguous(c.index_axis(Axis(2), t + 1));
                let dc_next = lanes.dc_next.as_slice_memory_order_mut().expect(expect);
                gates::lstm_backward(n_a, gx, c_prev, c_t, dh_above, dh_next, dc_next);
            }
        }
        // dh_next = W_hhᵀ dgh (+ dh ⊙ z for the GRU)                   (n_a, m)
        let dgh = match cell {
            CellKind::Gru => lanes.fwd.gh.index_axis(Axis(2), t),
            _ => lanes.fwd.gx.index_axis(Axis(2), t),
        };
        matmul_packed(w_hh_t, dgh, lanes.dh_next.view_mut());
        if cell == CellKind::Gru {
            let dn = lanes.dh_next.as_slice_memory_order_mut().expect(expect);
            simd_add(dn, lanes.skip.as_slice_memory_order().expect(expect));
        }
    }
}
