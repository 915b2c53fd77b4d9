//! The classic recipe's whole training step (batch 1, `f64`, element-wise clipping, SGD)
//! with the parameter gradients never stored.
//!
//! The general step computes five gradient arrays, then reads them back to clip them and
//! update the parameters. At n_a = 50 and a vocabulary of 27 the parameters are 42 KB and
//! their gradients 42 KB more: together with the activations they overflow the 48 KB
//! first-level data cache, and each name's step streams them through the second level.
//! Here each gradient entry goes from the multiply-add that finishes it to the update
//! that uses it without leaving the registers:
//!
//! 1. the forward pass and the deltas (dy<t>, da<t>, da_raw<t>, dL/da<0>) as in the
//!    general step, with the same kernels;
//! 2. for each row of W_ya and W_aa, its gradient (a sum over the steps of deltas times
//!    activations) in registers, clipped and applied at once
//!    ([`matvec::outer_rows_sgd`]); for b_y, b_a and the columns of W_ax that an input
//!    selected, the sum of their deltas likewise ([`matvec::column_sum_sgd`]). A column of
//!    W_ax that no input selected has a zero gradient, which leaves it unchanged.
//!
//! Every sum is added in the order of the general path's kernels, so the parameters come
//! out with the same bits (tested); only the reported gradient norm is summed in another
//! order. The guards are those of the fused clip-and-SGD pass of [`crate::train`]: the
//! loss must be finite, the gradients provably finite, and the bound on |θ| after the
//! step finite; otherwise this step declines, having changed no parameter, and the
//! general path (with its checks and its copy of the parameters) runs instead.

use std::any::TypeId;

use ndarray::ArrayView2;

use crate::backward::deltas_into;
use crate::matvec::{self, ClipSgd, as_f64, as_f64_mut};
use crate::optim::Optimizer;
use crate::train::{StepBuffers, StepReport, gradients_are_bounded, parameter_bound};
use crate::{Float, Params, TokenId, rnn_forward_into};

/// Whether [`sgd_step`] runs for these parameters and this batch: `f64` with the AVX-512
/// kernels of [`matvec`], one sequence, at most 64 hidden units and outputs (a row of
/// either fits in eight registers), and the arrays in the layouts the kernels read:
/// W_aa and W_ya row-major, W_ax column-major, all contiguous.
fn applies<F: Float>(params: &Params<F>, x: ArrayView2<'_, Option<TokenId>>) -> bool {
    let (n_a, n_y) = (params.n_a(), params.n_y());
    TypeId::of::<F>() == TypeId::of::<f64>()
        && matvec::available::<F>()
        && x.ncols() == 1
        && (1..=64).contains(&n_a)
        && (1..=64).contains(&n_y)
        && params.w_aa.is_standard_layout()
        && params.w_ya.is_standard_layout()
        && params.w_ax.t().is_standard_layout()
        && params.b_a.as_slice_memory_order().is_some()
        && params.b_y.as_slice_memory_order().is_some()
}

// ANCHOR: sgd_step
/// One step of the classic recipe, fused as described in the [module docs](self):
/// forward, deltas, then each parameter's gradient formed, clipped to [−c, c] and applied
/// (θ ← θ − lr·clamp(g)) in registers. Returns `None`, having changed no parameter, when
/// the step does not apply here or a guard fails; the caller then takes the general path.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgd_step<F: Float>(
    params: &mut Params<F>,
    optimizer: &mut Optimizer<F>,
    c: f64,
    lr: f64,
    x: ArrayView2<'_, Option<TokenId>>,
    y: ArrayView2<'_, Option<TokenId>>,
    a0: ArrayView2<'_, F>,
    buf: &mut StepBuffers<F>,
) -> Option<Result<StepReport, StepReport>> {
    if !applies(params, x) {
        return None;
    }
    let bound = parameter_bound(params, buf, c, lr)?;
    let loss = rnn_forward_into(params, x, y, a0, &mut buf.cache);
    if !loss.total.is_finite() || !buf.cache.batch1_kernels() {
        return None;
    }
    deltas_into(params, x, y, &buf.cache, &mut buf.bptt);
    if !gradients_are_bounded(&buf.cache, &buf.bptt, params.n_params()) {
        return None;
    }
    let sum_sq = update(params, x, buf, ClipSgd { c, lr })?;
    optimizer.t += 1;
    buf.max_abs = Some(bound);
    let grad_norm = sum_sq.sqrt();
    Some(Ok(StepReport { loss, grad_norm }))
}
// ANCHOR_END: sgd_step

/// Step 2 of the [module docs](self): every parameter's gradient, clipped and applied.
/// Returns Σ g² over all gradient entries, or `None` before changing anything when a
/// buffer is not in the layout [`applies`] and the cache promise.
fn update<F: Float>(
    params: &mut Params<F>,
    x: ArrayView2<'_, Option<TokenId>>,
    buf: &StepBuffers<F>,
    step: ClipSgd,
) -> Option<f64> {
    let (n_a, n_y) = (params.n_a(), params.n_y());
    let n_steps = x.nrows();
    // The activations a<0> .. a<T> and the deltas, one column a step.
    let a = as_f64(buf.cache.a_full().to_slice_memory_order()?)?;
    let (a_prev, a_all) = (&a[..n_steps * n_a], &a[n_a..]);
    let dy = as_f64(buf.bptt.dy_all().to_slice_memory_order()?)?;
    let da_raw = as_f64(buf.bptt.da_raw_all().to_slice_memory_order()?)?;
    let Params {
        w_ax,
        w_aa,
        w_ya,
        b_a,
        b_y,
    } = params;
    let w_ya = as_f64_mut(w_ya.as_slice_mut()?)?;
    let w_aa = as_f64_mut(w_aa.as_slice_mut()?)?;
    let w_ax = as_f64_mut(w_ax.as_slice_memory_order_mut()?)?;
    let b_a = as_f64_mut(b_a.as_slice_memory_order_mut()?)?;
    let b_y = as_f64_mut(b_y.as_slice_memory_order_mut()?)?;
    let expect = "`applies` checked the kernels and the sizes";
    // W_ya: row j is Σ_t dy<t>[j] a<t>; W_aa: row j is Σ_t da_raw<t>[j] a<t-1>.
    let mut sum_sq =
        matvec::outer_rows_sgd(w_ya, n_a, a_all, dy, n_y, n_steps, step).expect(expect);
    sum_sq += matvec::outer_rows_sgd(w_aa, n_a, a_prev, da_raw, n_a, n_steps, step).expect(expect);
    // The biases: the sums of their deltas over all steps.
    let all = |_: usize| true;
    sum_sq += matvec::column_sum_sgd(b_y, dy, n_y, n_steps, all, step).expect(expect);
    sum_sq += matvec::column_sum_sgd(b_a, da_raw, n_a, n_steps, all, step).expect(expect);
    // W_ax: column i is the sum of da_raw<t> over the steps whose input is i; each column
    // is updated once, at the first step that selects it.
    let inputs = x.column(0);
    for (t, &input) in inputs.iter().enumerate() {
        let Some(id) = input else { continue };
        if inputs.iter().take(t).any(|&earlier| earlier == input) {
            continue;
        }
        let col = &mut w_ax[id as usize * n_a..(id as usize + 1) * n_a];
        let selects = |s: usize| inputs[s] == input;
        sum_sq += matvec::column_sum_sgd(col, da_raw, n_a, n_steps, selects, step).expect(expect);
    }
    Some(sum_sq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Clip, OptimizerConfig, rnn_backward, rnn_forward};
    use ndarray::{Array2, ShapeBuilder};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Against the general path (forward, backward, clip, SGD step) for hidden sizes from
    /// 1 to 64 (one to eight registers, partial last registers), with large weights (so
    /// that many entries are clipped), an input that repeats (a column of W_ax summed over
    /// several steps), steps without an input or a target, and several steps in a row:
    /// the same parameters, loss and dL/da<0>, bit for bit; the same gradient norm up to
    /// the order of its sum.
    #[test]
    fn fused_step_gives_the_general_paths_bits() {
        let probe = Params::<f64>::zeros(3, 8, 3);
        if !applies(&probe, Array2::from_elem((1, 1), None).view()) {
            return;
        }
        let x = ndarray::array![
            [None],
            [Some(2)],
            [Some(0)],
            [Some(2)],
            [Some(1)],
            [Some(2)],
            [Some(0)]
        ];
        let y = ndarray::array![
            [Some(2)],
            [Some(0)],
            [Some(2)],
            [Some(1)],
            [None],
            [Some(0)],
            [Some(1)]
        ];
        let (clip, sgd) = (Clip::Value(0.5), OptimizerConfig::sgd(0.1));
        for (n_x, n_a, n_y) in [(3, 1, 3), (4, 8, 3), (5, 9, 27), (27, 50, 27), (3, 64, 64)] {
            let mut rng = ChaCha8Rng::seed_from_u64(n_a as u64);
            let mut fused: Params = Params::init_with_std(n_x, n_a, n_y, 2.0, &mut rng);
            let mut general = fused.clone();
            let a0 = Array2::from_shape_fn((n_a, 1).f(), |(i, _)| (i as f64 * 0.37).sin());
            let mut opt = Optimizer::new(sgd, &fused);
            let mut opt_general = Optimizer::new(sgd, &general);
            let mut buf = StepBuffers::new(&fused);
            for round in 0..3 {
                let (x, y) = (x.view(), y.view());
                let report = sgd_step(&mut fused, &mut opt, 0.5, 0.1, x, y, a0.view(), &mut buf)
                    .expect("the fused step applies")
                    .expect("a finite step");
                let (loss, cache) = rnn_forward(&general, x, y, a0.view());
                let (mut grads, bptt) = rnn_backward(&general, x, y, &cache);
                let norm = clip.apply(&mut grads);
                assert!(opt_general.step_checked(&mut general, &grads));
                let at = format!("n_a {n_a} n_y {n_y} round {round}");
                assert_eq!(fused, general, "{at}");
                assert_eq!(report.loss, loss, "{at}");
                assert_eq!(buf.bptt.da0(), bptt.view(), "{at}");
                assert!((report.grad_norm - norm).abs() <= 1e-13 * norm, "{at}");
                assert_eq!(opt.t, opt_general.t);
                let clipped = grads
                    .arrays()
                    .into_iter()
                    .flat_map(|(_, g)| g.iter().copied());
                assert!(clipped.filter(|g| g.abs() == 0.5).count() > 0, "{at}");
            }
        }
    }

    /// A step the general path must take instead, having changed nothing: batches of two,
    /// a W_aa stored column-major, more than 64 hidden units.
    #[test]
    fn other_shapes_and_layouts_are_declined() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let params: Params = Params::init(5, 8, 5, &mut rng);
        let two = Array2::from_elem((3, 2), Some(1));
        assert!(!applies(&params, two.view()));
        let mut column_major = params.clone();
        column_major.w_aa = Array2::zeros((8, 8).f());
        column_major.w_aa.assign(&params.w_aa);
        let one = Array2::from_elem((3, 1), Some(1));
        assert!(!applies(&column_major, one.view()));
        let wide: Params = Params::init(5, 65, 5, &mut rng);
        assert!(!applies(&wide, one.view()));
        let mut buf = StepBuffers::new(&wide);
        let mut opt = Optimizer::new(OptimizerConfig::sgd(0.1), &wide);
        let mut same = wide.clone();
        let a0 = Array2::zeros((65, 1).f());
        let (x, y) = (one.view(), one.view());
        assert!(sgd_step(&mut same, &mut opt, 5.0, 0.1, x, y, a0.view(), &mut buf).is_none());
        assert_eq!(same, wide);
    }
}
