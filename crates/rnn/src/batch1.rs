//! The classic recipe's whole training step (batch 1, `f64`, element-wise clipping, SGD)
//! with the parameter gradients never stored, on aligned copies of W_aa and W_ya.
//!
//! The general step computes five gradient arrays, then reads them back to clip them and
//! update the parameters. Here each gradient entry goes from the multiply-add that
//! finishes it to the update that uses it without leaving the registers:
//!
//! 1. the forward pass and the deltas (`dy<t>`, `da<t>`, `da_raw<t>`) as in the general
//!    step, with the same kernels (`dL/da<0>`, which training never uses, is left out);
//! 2. for each row of W_ya and W_aa, its gradient (a sum over the steps of deltas times
//!    activations) in registers, clipped and applied at once
//!    ([`matvec::outer_rows_sgd`]); for b_y, b_a and the columns of W_ax that an input
//!    selected, the sum of their deltas likewise ([`matvec::column_sum_sgd`],
//!    [`matvec::input_columns_sgd`]). A column of W_ax that no input selected has a zero
//!    gradient, which leaves it unchanged.
//!
//! W_aa and W_ya, which every product reads, are kept in a [`Mirror`]: rows that start on
//! 64-byte boundaries and are padded to a multiple of 8 entries, so that no register load
//! straddles two cache lines (a row of 50 `f64` is 400 bytes: in place, three loads in
//! four would). The mirror is the master copy of the two matrices from one fused step to
//! the next; [`crate::train::StepBuffers::sync`] writes it back to the parameters, and the
//! callers of the step do so before anything else reads them.
//!
//! Every sum is added in the order of the general path's kernels, so the parameters come
//! out with the same bits (tested); only the reported gradient norm is summed in another
//! order. The guards are those of the fused clip-and-SGD pass of [`crate::train`]: the
//! loss must be finite, the gradients provably finite, and the bound on |θ| after the
//! step finite; otherwise this step declines, having changed no parameter, and the
//! general path (with its checks and its copy of the parameters) runs instead.

use std::any::TypeId;

use ndarray::{ArrayView2, ShapeBuilder};

use crate::backward::{Weights, deltas_with};
use crate::forward::forward_batch1;
use crate::matvec::{self, ClipSgd, as_f64, as_f64_mut};
use crate::optim::Optimizer;
use crate::train::{StepBuffers, StepReport, gradients_are_bounded, parameter_bound};
use crate::{Float, Params, TokenId};

/// Whether [`sgd_step`] runs for these parameters and this batch: `f64` with the AVX-512
/// kernels of [`matvec`], one sequence, at most 56 hidden units (the rows the general
/// path's whole-column kernel takes, so that both sum every gradient entry in one chain
/// and give the same bits; above that it switches to the blocked kernel, which sums
/// single columns in two chains) and at most 64 outputs (a column of logits in eight
/// registers), and the arrays in the layouts the kernels read: W_aa and W_ya row-major,
/// W_ax column-major, all contiguous.
pub(crate) fn applies<F: Float>(params: &Params<F>, x: ArrayView2<'_, Option<TokenId>>) -> bool {
    let (n_a, n_y) = (params.n_a(), params.n_y());
    TypeId::of::<F>() == TypeId::of::<f64>()
        && matvec::available::<F>()
        && x.ncols() == 1
        && (1..=56).contains(&n_a)
        && (1..=64).contains(&n_y)
        && params.w_aa.is_standard_layout()
        && params.w_ya.is_standard_layout()
        && params.w_ax.t().is_standard_layout()
        && params.b_a.as_slice_memory_order().is_some()
        && params.b_y.as_slice_memory_order().is_some()
}

/// Whether a [`Mirror`] holds W_aa and W_ya, and which copy is newer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Holds {
    /// Nothing to rely on: copy the parameters in before use.
    #[default]
    Nothing,
    /// The same values as the parameters.
    Same,
    /// Newer values than the parameters, which [`Mirror::store`] writes back.
    Newer,
}

/// W_aa and W_ya in rows that start on 64-byte boundaries, padded to a multiple of 8
/// entries: W_aa's n_a rows, then W_ya's n_y rows, all at the same stride `ld`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Mirror<F> {
    buf: Vec<F>,
    /// Index of the first row, the first element on a 64-byte boundary.
    off: usize,
    n_a: usize,
    n_y: usize,
    ld: usize,
    holds: Holds,
}

impl<F: Float> Mirror<F> {
    /// Copies W_aa and W_ya in (row-major and contiguous: [`applies`] checked it),
    /// allocating only when their shape changed.
    fn load(&mut self, params: &Params<F>) {
        let (n_a, n_y) = (params.n_a(), params.n_y());
        let lanes = 64 / std::mem::size_of::<F>();
        if (n_a, n_y) != (self.n_a, self.n_y) || self.buf.is_empty() {
            let ld = n_a.div_ceil(lanes) * lanes;
            self.buf = vec![F::zero(); (n_a + n_y) * ld + lanes];
            let misalign = self.buf.as_ptr() as usize % 64;
            self.off = (64 - misalign) % 64 / std::mem::size_of::<F>();
            (self.n_a, self.n_y, self.ld) = (n_a, n_y, ld);
        }
        let sources = [&params.w_aa, &params.w_ya];
        let rows = sources.into_iter().flat_map(|w| w.rows());
        let dst = &mut self.buf[self.off..self.off + (n_a + n_y) * self.ld];
        for (d, row) in dst.chunks_exact_mut(self.ld).zip(rows) {
            let row = row.to_slice().expect("row-major, checked by `applies`");
            d[..n_a].copy_from_slice(row);
        }
        self.holds = Holds::Same;
    }

    /// Writes the mirror back to W_aa and W_ya if it is newer than they are.
    pub(crate) fn store(&mut self, params: &mut Params<F>) {
        if self.holds != Holds::Newer {
            return;
        }
        let (n_a, ld) = (self.n_a, self.ld);
        let src = &self.buf[self.off..self.off + (self.n_a + self.n_y) * ld];
        let targets = [&mut params.w_aa, &mut params.w_ya];
        let rows = targets.into_iter().flat_map(|w| w.rows_mut());
        for (s, row) in src.chunks_exact(ld).zip(rows) {
            let row = row.into_slice().expect("row-major, checked by `applies`");
            row.copy_from_slice(&s[..n_a]);
        }
        self.holds = Holds::Same;
    }

    /// Forgets the copy: the parameters are about to change elsewhere. Call after
    /// [`Mirror::store`].
    pub(crate) fn forget(&mut self) {
        debug_assert_ne!(self.holds, Holds::Newer, "store before forgetting");
        self.holds = Holds::Nothing;
    }

    /// W_aa as rows of stride `ld` and W_ya as a strided view.
    fn weights(&self) -> ((&[F], usize), ArrayView2<'_, F>) {
        let (n_a, ld) = (self.n_a, self.ld);
        let w_aa = &self.buf[self.off..self.off + n_a * ld];
        let w_ya = &self.buf[self.off + n_a * ld..self.off + (n_a + self.n_y) * ld];
        let view = ArrayView2::from_shape((self.n_y, n_a).strides((ld, 1)), w_ya)
            .expect("n_y rows of ld ≥ n_a entries");
        ((w_aa, ld), view)
    }

    /// W_aa and W_ya's rows, mutably, each of stride `ld`.
    fn weights_mut(&mut self) -> (&mut [F], &mut [F]) {
        let (n_a, ld) = (self.n_a, self.ld);
        let all = &mut self.buf[self.off..self.off + (n_a + self.n_y) * ld];
        all.split_at_mut(n_a * ld)
    }
}

// ANCHOR: sgd_step
/// One step of the classic recipe, fused as described in the [module docs](self):
/// forward, deltas, then each parameter's gradient formed, clipped to [−c, c] and applied
/// (θ ← θ − lr·clamp(g)) in registers. W_aa and W_ya are read from and written to
/// `buf`'s mirror, which is then newer than `params` until `buf.sync(params)`. Returns
/// `None`, having changed no parameter, when the step does not apply here or a guard
/// fails; the caller then syncs and takes the general path.
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
    // The bound is measured on `params` only when unknown, which happens only while they
    // are current (before the first fused step, or after the general path synced them).
    debug_assert!(buf.max_abs.is_some() || buf.mirror.holds != Holds::Newer);
    let bound = parameter_bound(params, buf, c, lr)?;
    if buf.mirror.holds == Holds::Nothing {
        buf.mirror.load(params);
    }
    let (w_aa, w_ya) = buf.mirror.weights();
    let loss = forward_batch1(w_aa, w_ya, params, x, y, a0, &mut buf.cache)?;
    if !loss.total.is_finite() {
        return None;
    }
    let n_a = params.n_a();
    let w_aa_view = ArrayView2::from_shape((n_a, n_a).strides((w_aa.1, 1)), w_aa.0)
        .expect("n_a rows of ld ≥ n_a entries");
    let weights = Weights {
        rows: Some(w_aa),
        w_aa: w_aa_view,
        w_ya,
        // dL/da<0> is left out: training carries hidden states forward, never their
        // gradients.
        da0: false,
    };
    deltas_with(weights, x, y, &buf.cache, &mut buf.bptt);
    if !gradients_are_bounded(&buf.cache, &buf.bptt, params.n_params()) {
        return None;
    }
    let sum_sq = update(params, x, buf, ClipSgd { c, lr })?;
    buf.mirror.holds = Holds::Newer;
    optimizer.t += 1;
    buf.max_abs = Some(bound);
    let grad_norm = sum_sq.sqrt();
    Some(Ok(StepReport { loss, grad_norm }))
}
// ANCHOR_END: sgd_step

/// Step 2 of the [module docs](self): every parameter's gradient, clipped and applied,
/// W_aa and W_ya in the mirror. Returns Σ g² over all gradient entries, or `None` before
/// changing anything when a buffer is not in the layout [`applies`] and the cache promise.
fn update<F: Float>(
    params: &mut Params<F>,
    x: ArrayView2<'_, Option<TokenId>>,
    buf: &mut StepBuffers<F>,
    step: ClipSgd,
) -> Option<f64> {
    let (n_a, n_y, ld) = (params.n_a(), params.n_y(), buf.mirror.ld);
    let n_steps = x.nrows();
    // The inputs, the activations a<0> .. a<T> and the deltas, one column a step.
    let inputs = x.column(0).to_slice()?;
    let a = as_f64(buf.cache.a_full().to_slice_memory_order()?)?;
    let (a_prev, a_all) = (&a[..n_steps * n_a], &a[n_a..]);
    let dy = as_f64(buf.bptt.dy_all().to_slice_memory_order()?)?;
    let da_raw = as_f64(buf.bptt.da_raw_all().to_slice_memory_order()?)?;
    let Params { w_ax, b_a, b_y, .. } = params;
    let (w_aa, w_ya) = buf.mirror.weights_mut();
    let (w_aa, w_ya) = (as_f64_mut(w_aa)?, as_f64_mut(w_ya)?);
    let w_ax = as_f64_mut(w_ax.as_slice_memory_order_mut()?)?;
    let b_a = as_f64_mut(b_a.as_slice_memory_order_mut()?)?;
    let b_y = as_f64_mut(b_y.as_slice_memory_order_mut()?)?;
    let expect = "`applies` checked the kernels and the sizes";
    // W_ya: row j is Σ_t dy<t>[j] a<t>; W_aa: row j is Σ_t da_raw<t>[j] a<t-1>.
    let w_ya = (w_ya, n_y, ld);
    let mut sum_sq =
        matvec::outer_rows_sgd(w_ya, n_a, a_all, dy, n_y, n_steps, step).expect(expect);
    let w_aa = (w_aa, n_a, ld);
    sum_sq += matvec::outer_rows_sgd(w_aa, n_a, a_prev, da_raw, n_a, n_steps, step).expect(expect);
    // The biases: the sums of their deltas over all steps.
    sum_sq += matvec::column_sum_sgd(b_y, dy, n_y, n_steps, step).expect(expect);
    sum_sq += matvec::column_sum_sgd(b_a, da_raw, n_a, n_steps, step).expect(expect);
    // W_ax: column i is the sum of da_raw<t> over the steps whose input is i.
    sum_sq += matvec::input_columns_sgd(w_ax, n_a, da_raw, inputs, step).expect(expect);
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
    /// 1 to 56 (one to seven registers, partial last registers), with large weights (so
    /// that many entries are clipped), an input that repeats (a column of W_ax summed over
    /// several steps), steps without an input or a target, and several steps in a row:
    /// the same parameters and loss, bit for bit; the same gradient norm up to
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
        for (n_x, n_a, n_y) in [(3, 1, 3), (4, 8, 3), (5, 9, 27), (27, 50, 27), (3, 56, 64)] {
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
                // W_aa and W_ya are newer in the mirror until the sync.
                if round < 2 {
                    assert_eq!(buf.mirror.holds, Holds::Newer);
                }
                buf.sync(&mut fused);
                let (loss, cache) = rnn_forward(&general, x, y, a0.view());
                let (mut grads, _) = rnn_backward(&general, x, y, &cache);
                let norm = clip.apply(&mut grads);
                assert!(opt_general.step_checked(&mut general, &grads));
                let at = format!("n_a {n_a} n_y {n_y} round {round}");
                if n_a == 1 {
                    // A 1 × n_y W_yaᵀ is both row- and column-major in place but only
                    // column-major in the mirror, and the general path's dispatch then
                    // sums W_yaᵀ dy in another order: the same values up to rounding.
                    let close = |a: f64, b: f64| (a - b).abs() <= 1e-14 * a.abs().max(1.0);
                    let pairs = fused.arrays().into_iter().zip(general.arrays());
                    let mut entries = pairs.flat_map(|((_, f), (_, g))| f.iter().zip(g.iter()));
                    assert!(entries.all(|(&a, &b)| close(a, b)), "{at}");
                    continue;
                }
                assert_eq!(fused, general, "{at}");
                assert_eq!(report.loss, loss, "{at}");
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// The same bits as the general path for random sizes (2 to 56 hidden units, 2 to
        /// 40 symbols), sequence lengths (0 to 30), inputs and targets (some missing),
        /// weight scales, clip values, learning rates and initial states.
        #[test]
        fn fused_step_matches_the_general_path_everywhere(
            n_x in 2usize..=40,
            n_a in 2usize..=56,
            t in 0usize..=30,
            seed in proptest::prelude::any::<u64>(),
            std in 0.05f64..3.0,
            c in 0.05f64..5.0,
            lr in 0.001f64..0.5,
        ) {
            let probe = Params::<f64>::zeros(2, 2, 2);
            if !applies(&probe, Array2::from_elem((1, 1), None).view()) {
                return Ok(());
            }
            use rand::Rng;
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut fused: Params = Params::init_with_std(n_x, n_a, n_x, std, &mut rng);
            let mut general = fused.clone();
            let id = |rng: &mut ChaCha8Rng| {
                (rng.random_range(0..5) > 0).then(|| rng.random_range(0..n_x as TokenId))
            };
            let x = Array2::from_shape_fn((t, 1), |_| id(&mut rng));
            let y = Array2::from_shape_fn((t, 1), |_| id(&mut rng));
            let a0 = Array2::from_shape_fn((n_a, 1).f(), |_| rng.random_range(-1.0..1.0));
            let (clip, sgd) = (Clip::Value(c), OptimizerConfig::sgd(lr));
            let mut opt = Optimizer::new(sgd, &fused);
            let mut buf = StepBuffers::new(&fused);
            let report = sgd_step(&mut fused, &mut opt, c, lr, x.view(), y.view(), a0.view(), &mut buf)
                .expect("the fused step applies")
                .expect("a finite step");
            buf.sync(&mut fused);
            let (loss, cache) = rnn_forward(&general, x.view(), y.view(), a0.view());
            let (mut grads, _) = rnn_backward(&general, x.view(), y.view(), &cache);
            let norm = clip.apply(&mut grads);
            proptest::prop_assert!(Optimizer::new(sgd, &general).step_checked(&mut general, &grads));
            proptest::prop_assert_eq!(&fused, &general);
            proptest::prop_assert_eq!(report.loss, loss);
            proptest::prop_assert!((report.grad_norm - norm).abs() <= 1e-12 * norm.max(1e-300));
        }
    }

    /// A step the general path must take instead, having changed nothing: batches of two,
    /// a W_aa stored column-major, more than 56 hidden units.
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
        let wide: Params = Params::init(5, 57, 5, &mut rng);
        assert!(!applies(&wide, one.view()));
        let mut buf = StepBuffers::new(&wide);
        let mut opt = Optimizer::new(OptimizerConfig::sgd(0.1), &wide);
        let mut same = wide.clone();
        let a0 = Array2::zeros((57, 1).f());
        let (x, y) = (one.view(), one.view());
        assert!(sgd_step(&mut same, &mut opt, 5.0, 0.1, x, y, a0.view(), &mut buf).is_none());
        assert_eq!(same, wide);
    }
}
