//! One training step on the engine, [`update_step`]: the engine's form of
//! [`rnn::train_step`] (forward, backward, clip, update), with the fused paths of the
//! classic recipe and the checks that keep the last good parameters.

use ndarray::ArrayView2;

use crate::batch1::{self, Fused};
use crate::guard::{StepReport, gradients_are_bounded, parameter_bound};
use crate::kernels::simd_clip_value_sgd;
use crate::norms::global_norm;
use crate::{
    Bptt, Cache, Clip, Float, Grads, Loss, Optimizer, OptimizerConfig, Params, TokenId,
    backward_into, forward_into,
};

/// The buffers of one training step (forward cache, backward buffers, gradients and the
/// copy of the parameters kept in case the update diverges), sized once per batch shape.
///
/// After [`update_step`], the parameters may be newer in these buffers than in the
/// [`Params`] passed to it (the fused batch-1 step works on its own aligned copy): call
/// [`StepBuffers::sync`] before reading them.
#[derive(Debug)]
pub struct StepBuffers<F: Float> {
    pub(crate) cache: Cache<F>,
    pub(crate) bptt: Bptt<F>,
    pub(crate) grads: Grads<F>,
    pub(crate) last_good: Params<F>,
    /// The fused steps' state: the batch-1 step's aligned copy of the parameters (newer
    /// than them after such a step, until [`StepBuffers::sync`]), its activations, and a
    /// bound on |θ| left by either fused step.
    pub(crate) fused: Fused<F>,
}

impl<F: Float> StepBuffers<F> {
    /// Empty buffers for parameters shaped like `params`.
    pub fn new(params: &Params<F>) -> Self {
        StepBuffers {
            cache: Cache::new(),
            bptt: Bptt::new(),
            grads: Grads::zeros(params.n_x(), params.n_a(), params.n_y()),
            last_good: params.clone(),
            fused: Fused::default(),
        }
    }

    /// `a<len>`, the hidden state after the first `len` steps of the last training step
    /// (a⟨0⟩ for 0), (n_a, m): from the fused step's buffers or from the cache.
    pub fn hidden(&self, len: usize) -> ArrayView2<'_, F> {
        if self.fused.ran
            && let Some(a) = self.fused.work.hidden::<F>(len)
        {
            return a;
        }
        self.cache.a_prev(len)
    }

    /// Brings `params` up to date after fused batch-1 steps (the fused step works on its own aligned copy): call
    /// before anything but [`update_step`] reads them.
    pub fn sync(&mut self, params: &mut Params<F>) {
        self.fused.mirror.store(params);
    }
}

/// One update: forward from `a0`, backward, clip, update. A non-finite loss or gradient
/// norm stops before the update; non-finite parameters after it are replaced by the ones
/// before. Either way the error carries the step's report and `params` are the last good
/// ones.
///
/// This is the training step both [`Trainer`](crate::Trainer) and [`crate::bench`] run: the engine's
/// [`rnn::train_step`], with the checks that keep the last good parameters.
///
/// # Shapes
///
/// `x`, `y`: (T, m), `a0`: (n_a, m).
#[allow(clippy::too_many_arguments)]
pub fn update_step<F: Float>(
    params: &mut Params<F>,
    optimizer: &mut Optimizer<F>,
    clip: Clip,
    x: ArrayView2<'_, Option<TokenId>>,
    y: ArrayView2<'_, Option<TokenId>>,
    a0: ArrayView2<'_, F>,
    buf: &mut StepBuffers<F>,
) -> Result<StepReport, StepReport> {
    if let (Clip::Value(c), OptimizerConfig::Sgd { lr }) = (clip, optimizer.config)
        && let Some(result) = batch1::sgd_step(params, optimizer, c, lr, x, y, a0, &mut buf.fused)
    {
        return result;
    }
    // The paths below read and write `params` themselves.
    buf.sync(params);
    buf.fused.mirror.forget();
    buf.fused.ran = false;
    let loss = forward_into(params, x, y, a0, &mut buf.cache);
    backward_into(params, x, y, &buf.cache, &mut buf.grads, &mut buf.bptt);
    if let (Clip::Value(c), OptimizerConfig::Sgd { lr }) = (clip, optimizer.config)
        && let Some(result) = clip_value_sgd_fused(params, optimizer, c, lr, loss, buf)
    {
        return result;
    }
    // Clip (returns the norm before clipping), then check before touching parameters.
    buf.fused.max_abs = None;
    let grad_norm = crate::apply_clip(clip, &mut buf.grads);
    let report = StepReport { loss, grad_norm };
    if !loss.total.is_finite() || !grad_norm.is_finite() {
        return Err(report);
    }
    buf.last_good.assign(params);
    if !crate::step_checked(optimizer, params, &buf.grads) {
        params.assign(&buf.last_good);
        return Err(report);
    }
    Ok(report)
}

/// The classic recipe's clip and update (element-wise clipping, then SGD) in one pass
/// instead of four (clip, norm, back up, update), with the same results bit for bit
/// (tested): each entry is clamped and θ − lr·g written over θ in place, while the squares
/// of the unclipped gradients are summed for the report.
///
/// The general path checks the gradient norm before it touches the parameters; here the
/// norm is known only after the pass, so it is proved finite beforehand, from the inputs
/// of the gradient products ([`gradients_are_bounded`]). No copy of the parameters is
/// needed either, because this step cannot make them non-finite: a clamped update moves an
/// entry by at most lr·c, so every new |θ| is at most `max_abs` + lr·c (with a margin
/// for rounding, [`step_bound`]), and the step runs only when that bound is finite. The
/// bound then becomes `max_abs` for the next step: it is measured once, by a pass over the
/// parameters, and grows by lr·c per step after that (by 1,750 over the classic recipe's
/// 35,000 steps), which spares the update pass the work of measuring it.
///
/// Returns `None`, having changed nothing, when the arrays do not share one contiguous
/// layout or either bound fails; the general path (with its checks and its copy) then runs.
fn clip_value_sgd_fused<F: Float>(
    params: &mut Params<F>,
    optimizer: &mut Optimizer<F>,
    c: f64,
    lr: f64,
    loss: Loss,
    buf: &mut StepBuffers<F>,
) -> Option<Result<StepReport, StepReport>> {
    let layouts_match =
        params
            .arrays()
            .into_iter()
            .zip(buf.grads.arrays())
            .all(|((_, p), (_, g))| {
                p.dim() == g.dim()
                    && p.strides() == g.strides()
                    && p.as_slice_memory_order().is_some()
            });
    if !layouts_match {
        return None;
    }
    let bound = parameter_bound(params, &mut buf.fused.max_abs, c, lr)?;
    let (c, lr) = (F::cast(c), F::cast(lr));
    if !loss.total.is_finite() {
        let grad_norm = global_norm(&buf.grads);
        return Some(Err(StepReport { loss, grad_norm }));
    }
    if !gradients_are_bounded(&buf.cache, &buf.bptt, params.n_params()) {
        return None;
    }
    optimizer.t += 1;
    let mut sum_sq = 0.0f64;
    for ((_, p), (_, g)) in params.arrays_mut().into_iter().zip(buf.grads.arrays()) {
        let p = p.as_slice_memory_order_mut().expect("checked above");
        let g = g.as_slice_memory_order().expect("checked above");
        sum_sq += simd_clip_value_sgd(p, g, c, lr);
    }
    buf.fused.max_abs = Some(bound);
    let grad_norm = sum_sq.sqrt();
    debug_assert!(grad_norm.is_finite(), "bounded by gradients_are_bounded");
    Some(Ok(StepReport { loss, grad_norm }))
}
