//! Clipping and the optimizer update of a deep network, fused: the gradients are read
//! once, clipped on the fly (so that the unclipped ones stay readable), and the rules of
//! [`rnn::DeepOptimizer`] applied, vectorized and checked for finiteness in the same pass.
#![allow(unsafe_code)]

use crate::kernels::simd_fn;
use ndarray::{Array2, Zip};
use rnn::{Clip, DeepOptimizer, DeepParams, OptimizerConfig};

use crate::Float;
use crate::norms::sum_of_squares;

/// Every array of `p`, in [`DeepParams::arrays`] order, without building names.
pub(super) fn arrays<F: Float>(p: &DeepParams<F>) -> impl Iterator<Item = &Array2<F>> {
    p.layers
        .iter()
        .flat_map(|l| l.arrays())
        .chain([&p.w_ya, &p.b_y])
}

/// Every array of `p`, mutably, in the same order.
pub(super) fn arrays_mut<F: Float>(p: &mut DeepParams<F>) -> impl Iterator<Item = &mut Array2<F>> {
    let DeepParams {
        layers, w_ya, b_y, ..
    } = p;
    layers
        .iter_mut()
        .flat_map(|l| l.arrays_mut())
        .chain([w_ya, b_y])
}

/// The global L2 norm of every array, accumulated in `f64` (vectorized).
pub(super) fn global_norm<F: Float>(g: &DeepParams<F>) -> f64 {
    arrays(g).map(sum_of_squares).sum::<f64>().sqrt()
}

/// What clipping does to each gradient entry before the update: g ← clamp(g·scale, −c, c)
/// (scale 1 and c = ∞ leave it unchanged; both are exact operations then).
#[derive(Clone, Copy, Debug)]
pub(super) struct Clipped<F> {
    scale: F,
    c: F,
}

impl<F: Float> Clipped<F> {
    /// [`rnn::clip_deep`] for gradients of global norm `norm`.
    pub(super) fn new(clip: Clip, norm: f64) -> Self {
        let (scale, c) = match clip {
            Clip::None => (F::one(), F::infinity()),
            Clip::Value(c) => (F::one(), F::cast(c)),
            Clip::Norm(max) => {
                let scale = (max / (norm + 1e-6)).min(1.0);
                (F::cast(scale), F::infinity())
            }
        };
        Clipped { scale, c }
    }

    #[inline(always)]
    fn apply(self, g: F) -> F {
        (g * self.scale).max(-self.c).min(self.c)
    }
}

/// The update rule of one step, with Adam's bias corrections folded into its step size:
/// `step` = lr·√(1−β₂ᵗ)/(1−β₁ᵗ), `eps_hat` = eps·√(1−β₂ᵗ).
#[derive(Clone, Copy, Debug)]
pub(super) enum Rule<F> {
    Sgd {
        lr: F,
    },
    Adagrad {
        lr: F,
        eps: F,
    },
    Adam {
        step: F,
        eps_hat: F,
        beta1: F,
        beta2: F,
    },
}

/// One entry: clip g, update θ (and the optimizer's state), return whether θ is finite.
#[inline(always)]
fn update_one<F: Float>(
    rule: Rule<F>,
    clip: Clipped<F>,
    p: &mut F,
    g: F,
    m: &mut F,
    v: &mut F,
) -> bool {
    let g = clip.apply(g);
    match rule {
        Rule::Sgd { lr } => *p -= lr * g,
        Rule::Adagrad { lr, eps } => {
            *m += g * g;
            *p -= lr * g / (*m + eps).sqrt();
        }
        Rule::Adam {
            step,
            eps_hat,
            beta1,
            beta2,
        } => {
            *m = beta1 * *m + (F::one() - beta1) * g;
            *v = beta2 * *v + (F::one() - beta2) * g * g;
            *p -= step * *m / (v.sqrt() + eps_hat);
        }
    }
    p.is_finite()
}

simd_fn! {
    /// [`update_impl`], vectorized for this CPU.
    pub(super) fn update_slices<F: Float>(rule: Rule<F>, clip: Clipped<F>, p: &mut [F], g: &[F], m: &mut [F], v: &mut [F]) -> bool
        = update_impl;
}

/// The update over slices: `m` and `v` are the optimizer's state (Adagrad uses `m`; SGD
/// neither), or scratch of the same length.
#[inline(always)]
fn update_impl<F: Float>(
    rule: Rule<F>,
    clip: Clipped<F>,
    p: &mut [F],
    g: &[F],
    m: &mut [F],
    v: &mut [F],
) -> bool {
    let mut finite = true;
    match rule {
        // One loop per rule, so that each vectorizes without the match inside.
        Rule::Sgd { .. } => {
            let (mut m0, mut v0) = (F::zero(), F::zero());
            for (p, &g) in p.iter_mut().zip(g) {
                finite &= update_one(rule, clip, p, g, &mut m0, &mut v0);
            }
        }
        Rule::Adagrad { .. } => {
            let mut v0 = F::zero();
            for ((p, &g), m) in p.iter_mut().zip(g).zip(m) {
                finite &= update_one(rule, clip, p, g, m, &mut v0);
            }
        }
        Rule::Adam { .. } => {
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
                finite &= update_one(rule, clip, p, g, m, v);
            }
        }
    }
    finite
}

/// Applies one update of `opt` to `params` from `grads` clipped by `clip`, as
/// [`rnn::clip_deep`] then [`DeepOptimizer::step`] do. Returns whether every updated
/// parameter is finite.
pub(super) fn update_checked<F: Float>(
    opt: &mut DeepOptimizer<F>,
    params: &mut DeepParams<F>,
    grads: &DeepParams<F>,
    clip: Clipped<F>,
) -> bool {
    opt.t += 1;
    rnn::decay_weights(opt.config, params.arrays_mut());
    let rule = match opt.config {
        OptimizerConfig::Sgd { lr } => Rule::Sgd { lr: F::cast(lr) },
        OptimizerConfig::Adagrad { lr, eps } => Rule::Adagrad {
            lr: F::cast(lr),
            eps: F::cast(eps),
        },
        OptimizerConfig::Adam {
            lr,
            beta1,
            beta2,
            eps,
            ..
        } => {
            let t = opt.t as i32;
            let c1 = 1.0 - beta1.powi(t);
            let c2 = 1.0 - beta2.powi(t);
            Rule::Adam {
                step: F::cast(lr * c2.sqrt() / c1),
                eps_hat: F::cast(eps * c2.sqrt()),
                beta1: F::cast(beta1),
                beta2: F::cast(beta2),
            }
        }
    };
    let n = arrays(params).count();
    let mut ms: Vec<Option<&mut Array2<F>>> = match opt.m.as_mut() {
        Some(m) => arrays_mut(m).map(Some).collect(),
        None => (0..n).map(|_| None).collect(),
    };
    let mut vs: Vec<Option<&mut Array2<F>>> = match opt.v.as_mut() {
        Some(v) => arrays_mut(v).map(Some).collect(),
        None => (0..n).map(|_| None).collect(),
    };
    let mut finite = true;
    for (((p, g), m), v) in arrays_mut(params)
        .zip(arrays(grads))
        .zip(ms.iter_mut())
        .zip(vs.iter_mut())
    {
        finite &= update_array(rule, clip, p, g, m.as_deref_mut(), v.as_deref_mut());
    }
    finite
}

/// [`update_slices`] on one array and its state, when all share one contiguous layout;
/// else entry by entry through ndarray.
fn update_array<F: Float>(
    rule: Rule<F>,
    clip: Clipped<F>,
    p: &mut Array2<F>,
    g: &Array2<F>,
    m: Option<&mut Array2<F>>,
    v: Option<&mut Array2<F>>,
) -> bool {
    // Equal shapes and strides and a contiguous g: every array is one contiguous block
    // with entries at the same positions.
    let same = |a: &Array2<F>| a.dim() == g.dim() && a.strides() == g.strides();
    let fast = g.as_slice_memory_order().is_some()
        && same(p)
        && m.as_ref().is_none_or(|m| same(m))
        && v.as_ref().is_none_or(|v| same(v));
    if fast {
        let expect = "checked above";
        let (mut empty_m, mut empty_v): ([F; 0], [F; 0]) = ([], []);
        let ms = match m {
            Some(m) => m.as_slice_memory_order_mut().expect(expect),
            None => &mut empty_m[..],
        };
        let vs = match v {
            Some(v) => v.as_slice_memory_order_mut().expect(expect),
            None => &mut empty_v[..],
        };
        let ps = p.as_slice_memory_order_mut().expect(expect);
        let gs = g.as_slice_memory_order().expect(expect);
        return update_slices(rule, clip, ps, gs, ms, vs);
    }
    update_by_entry(rule, clip, p, g, m, v)
}

/// The update entry by entry, for arrays of different layouts.
fn update_by_entry<F: Float>(
    rule: Rule<F>,
    clip: Clipped<F>,
    p: &mut Array2<F>,
    g: &Array2<F>,
    m: Option<&mut Array2<F>>,
    v: Option<&mut Array2<F>>,
) -> bool {
    let mut finite = true;
    let mut m_own = m.is_none().then(|| Array2::zeros(g.dim()));
    let mut v_own = v.is_none().then(|| Array2::zeros(g.dim()));
    let m = m.or(m_own.as_mut()).expect("one of them");
    let v = v.or(v_own.as_mut()).expect("one of them");
    Zip::from(p).and(g).and(m).and(v).for_each(|p, &g, m, v| {
        finite &= update_one(rule, clip, p, g, m, v);
    });
    finite
}
