//! Products with one column at a time in `f64` on AVX-512, written with intrinsics: the
//! shape of the classic recipe (batch 1), where every product is a matrix times a vector
//! of 50 and the time goes into call overhead, bounds checks and the latency of long
//! chains of multiply-adds rather than into arithmetic.
//!
//! Two forms, one for each memory layout of the matrix, so that neither needs a copy:
//!
//! - [`rows`]: w row-major, each output is a dot product of a row with x. Eight rows are
//!   accumulated at once in eight registers, then reduced together by a transposing tree
//!   of shuffles; each sum is a chain of only ⌈k/8⌉ multiply-adds. The forward pass uses it
//!   for W_aa `a⟨t-1⟩` and the logits W_ya `a⟨t⟩`, on the matrices' rows (the parameters'
//!   own, or the aligned mirror of `crate::batch1`).
//! - [`cols`]: w column-major, the output is a sum of columns scaled by the entries of x,
//!   in two or four independent chains. The backward pass uses it for W_aaᵀ `da_raw⟨t⟩`
//!   (W_aa row-major is W_aaᵀ column-major).
//!
//! The same register work serves the other batch-1 loops: [`softmax_block`], the softmax of
//! the logits two columns (27 values, four registers each) at a time in one pass, and the
//! fused gradient-and-update kernels of `crate::batch1` ([`outer_rows_sgd`],
//! [`column_sum_sgd`]).
//!
//! Rows and columns that do not fill a register are read with masked loads, which never
//! touch memory outside the mask. Every function returns `false` (or `None`), having done
//! nothing, when the element type is not `f64` or the CPU lacks AVX-512; callers then use
//! the portable code of [`crate::kernels`] and [`crate::forward`].
#![allow(unsafe_code)]

use std::any::TypeId;

use crate::Float;

/// Whether this CPU and element type take the kernels of this module.
#[inline]
pub(crate) fn available<F: Float>() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        TypeId::of::<F>() == TypeId::of::<f64>() && crate::isa::tier() == crate::isa::Tier::Avx512
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU has AVX-512DQ (asked once).
#[cfg(target_arch = "x86_64")]
fn has_dq() -> bool {
    static DQ: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DQ.get_or_init(|| is_x86_feature_detected!("avx512dq"))
}

/// Reinterprets a slice of `F` as `f64` when `F` is `f64`.
#[inline(always)]
pub(crate) fn as_f64<F: Float>(s: &[F]) -> Option<&[f64]> {
    (TypeId::of::<F>() == TypeId::of::<f64>()).then(|| {
        // SAFETY: F is f64 (same TypeId), so the memory holds f64 values.
        unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f64>(), s.len()) }
    })
}

/// The reverse of [`as_f64`]: a slice of `f64` as `F` when `F` is `f64`.
#[inline(always)]
pub(crate) fn from_f64<F: Float>(s: &[f64]) -> Option<&[F]> {
    (TypeId::of::<F>() == TypeId::of::<f64>()).then(|| {
        // SAFETY: F is f64 (same TypeId), so the memory holds F values.
        unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<F>(), s.len()) }
    })
}

/// [`as_f64`] for a mutable slice.
#[inline(always)]
pub(crate) fn as_f64_mut<F: Float>(s: &mut [F]) -> Option<&mut [f64]> {
    (TypeId::of::<F>() == TypeId::of::<f64>()).then(|| {
        // SAFETY: F is f64 (same TypeId); the new slice has the same memory and borrow.
        unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<f64>(), s.len()) }
    })
}

/// `out = w · x` for w (n × k) row-major with row stride `ldw` ≥ k: `out[i] = Σ_p
/// w[i·ldw + p] x[p]`. Returns `false`, doing nothing, when [`available`] is false.
pub(crate) fn rows<F: Float>(
    n: usize,
    k: usize,
    w: &[F],
    ldw: usize,
    x: &[F],
    out: &mut [F],
) -> bool {
    if !available::<F>() || n == 0 {
        return available::<F>();
    }
    assert!(ldw >= k && w.len() >= (n - 1) * ldw + k && x.len() >= k && out.len() >= n);
    let (Some(w), Some(x), Some(out)) = (as_f64(w), as_f64(x), as_f64_mut(out)) else {
        return false;
    };
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `available` found AVX-512F on this CPU; the assert above bounds every row,
    // x and out, and the kernel reads only within them (masked loads for partial vectors).
    unsafe {
        avx512::rows(n, k, w.as_ptr(), ldw, x.as_ptr(), out.as_mut_ptr());
    }
    true
}

/// `out = w · x` for w (n × k) column-major with column stride `ldw` ≥ n: `out[i] = Σ_p
/// w[p·ldw + i] x[p]`. Returns `false`, doing nothing, when [`available`] is false.
pub(crate) fn cols<F: Float>(
    n: usize,
    k: usize,
    w: &[F],
    ldw: usize,
    x: &[F],
    out: &mut [F],
) -> bool {
    if !available::<F>() || n == 0 {
        return available::<F>();
    }
    if k == 0 {
        out[..n].fill(F::zero());
        return true;
    }
    assert!(ldw >= n && w.len() >= (k - 1) * ldw + n && x.len() >= k && out.len() >= n);
    let (Some(w), Some(x), Some(out)) = (as_f64(w), as_f64(x), as_f64_mut(out)) else {
        return false;
    };
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `rows`, with every column bounded by the assert.
    unsafe {
        avx512::cols(n, k, w.as_ptr(), ldw, x.as_ptr(), out.as_mut_ptr());
    }
    true
}

/// The softmax of [`crate::forward`] over a block of columns of logits (`n_y` each, side
/// by side in `z`), in place: adds `b_y`, subtracts each column's maximum, exponentiates
/// and normalizes, one column at a time in registers: one pass instead of three, and a
/// column of 27 is three full registers and a masked one, where the compiled loops ran
/// three scalar iterations per loop and column. Returns the summed −ln ŷ[target] over the
/// columns with a target and their number, or `None`, doing nothing, when [`available`]
/// is false or `n_y` is above 64.
///
/// eˣ is [`Float::fast_exp`](crate::Float::fast_exp) operation for operation (the same
/// bits); the sums are added in another order than the portable code's, so ŷ may differ
/// from it in the last bit.
pub(crate) fn softmax_block<F: Float>(
    z: &mut [F],
    n_y: usize,
    b_y: &[F],
    targets: impl Iterator<Item = Option<crate::TokenId>>,
) -> Option<(f64, usize)> {
    if !available::<F>() || n_y == 0 || n_y > 64 {
        return None;
    }
    assert!(b_y.len() >= n_y && z.len().is_multiple_of(n_y));
    let (z, b_y) = (as_f64_mut(z)?, as_f64(b_y)?);
    // −ln softmax(z)[k] = ln Σ_i exp(z_i − max) − (z_k − max), as in the portable code.
    let (mut log_sums, mut shifted_targets, mut n_targets) = (0.0, 0.0, 0);
    let mut targets = targets;
    let n_cols = z.len() / n_y;
    let mut c = 0;
    while c < n_cols {
        // Two columns at a time (their chains overlap), then the last one alone.
        let pair = c + 2 <= n_cols;
        let mut t = [usize::MAX; 2];
        let mut has = [false; 2];
        for j in 0..if pair { 2 } else { 1 } {
            let target = targets.next().flatten();
            t[j] = target.map_or(usize::MAX, |id| id as usize);
            has[j] = target.is_some();
            assert!(!has[j] || t[j] < n_y, "target {} outside 0..{n_y}", t[j]);
        }
        let cols = &mut z[c * n_y..(c + if pair { 2 } else { 1 }) * n_y];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `available` found AVX-512F; `cols` holds one or two columns of n_y ≤ 64
        // values and b_y n_y, and the kernel touches only those (masked loads and stores
        // for a partial register) and each column's entry t < n_y.
        let results: [(f64, f64); 2] = unsafe {
            let (z, b) = (cols.as_mut_ptr(), b_y.as_ptr());
            macro_rules! run {
                ($nv:literal) => {
                    if pair {
                        avx512::softmax_cols::<$nv, 2>(n_y, z, b, t)
                    } else {
                        let [one] = avx512::softmax_cols::<$nv, 1>(n_y, z, b, [t[0]]);
                        [one, (0.0, 0.0)]
                    }
                };
            }
            match n_y.div_ceil(8) {
                1 => run!(1),
                2 => run!(2),
                3 => run!(3),
                4 => run!(4),
                5 => run!(5),
                6 => run!(6),
                7 => run!(7),
                _ => run!(8),
            }
        };
        #[cfg(not(target_arch = "x86_64"))]
        let results: [(f64, f64); 2] = unreachable!("`available` is false here");
        for ((sum, shifted), has) in results.into_iter().zip(has) {
            if has {
                log_sums += sum.ln();
                shifted_targets += shifted;
                n_targets += 1;
            }
        }
        c += if pair { 2 } else { 1 };
    }
    Some((log_sums - shifted_targets, n_targets))
}

/// The element-wise clip and SGD step of the classic recipe, p ← p − lr·clamp(g, −c, c),
/// as the fused kernels below apply it to each gradient entry the moment it is computed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClipSgd {
    pub(crate) c: f64,
    pub(crate) lr: f64,
}

/// The gradient of a weight matrix that is a sum of outer products over the steps, and its
/// clipped SGD step, in one pass over the `rows` rows of `w` (row j's n entries at
/// `j·ldw`):
///
/// ```text
/// g_j = Σ_p s[j + p·lds] · v[p·n .. p·n + n]      (p < k; one multiply-add chain, in order)
/// w_j ← w_j − lr·clamp(g_j, −c, c)
/// ```
///
/// With v the activations and s the output or hidden deltas (both column-major, a step per
/// column), g_j is row j of `dW_ya = Σ_t dy⟨t⟩ a⟨t⟩ᵀ` or of `dW_aa = Σ_t da_raw⟨t⟩ a⟨t-1⟩ᵀ`,
/// summed exactly as [`crate::kernels`]' whole-column kernel sums it. The gradient never
/// goes to memory: a row lives in registers from its last multiply-add to its update.
/// Returns Σ g² over the entries, or `None`, doing nothing, when [`available`] is false or
/// n is 0 or above 64.
#[allow(clippy::too_many_arguments)]
pub(crate) fn outer_rows_sgd(
    (w, rows, ldw): (&mut [f64], usize, usize),
    n: usize,
    v: &[f64],
    s: &[f64],
    lds: usize,
    k: usize,
    step: ClipSgd,
) -> Option<f64> {
    if !available::<f64>() || n == 0 || n > 64 {
        return None;
    }
    assert!(
        ldw >= n && (rows == 0 || w.len() >= (rows - 1) * ldw + n) && v.len() >= k * n,
        "w holds rows × n at stride ldw, v is n × k"
    );
    assert!(rows == 0 || k == 0 || (lds >= rows && s.len() >= (k - 1) * lds + rows));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `available` found AVX-512F; the asserts bound every row of w, every column
    // of v and every s[j + p·lds] read, and the kernel touches nothing else.
    let sq = unsafe {
        avx512::outer_rows_sgd(
            (rows, ldw),
            n,
            k,
            v.as_ptr(),
            s.as_ptr(),
            lds,
            w.as_mut_ptr(),
            step,
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let sq: f64 = unreachable!("`available` is false here");
    Some(sq)
}

/// The gradient that is the sum of the k columns of s (n values each, column stride
/// `lds`), added in order from zero, and its clipped SGD step on `p` (n = p.len()): db_y =
/// `Σ_t dy⟨t⟩` and db_a = `Σ_t da_raw⟨t⟩`, each summed as [`crate::backward`] sums it.
/// Returns Σ g², or `None`, doing nothing, when [`available`] is false or n is 0 or above
/// 64.
pub(crate) fn column_sum_sgd(
    p: &mut [f64],
    s: &[f64],
    lds: usize,
    k: usize,
    step: ClipSgd,
) -> Option<f64> {
    let n = p.len();
    if !available::<f64>() || n == 0 || n > 64 {
        return None;
    }
    assert!(k == 0 || (lds >= n && s.len() >= (k - 1) * lds + n));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `available` found AVX-512F; the assert bounds every column read, and the
    // kernel writes only p's n entries.
    let sq = unsafe { avx512::column_sum_sgd(n, k, s.as_ptr(), lds, p.as_mut_ptr(), step) };
    #[cfg(not(target_arch = "x86_64"))]
    let sq: f64 = unreachable!("`available` is false here");
    Some(sq)
}

/// [`column_sum_sgd`] for every column of `w` (column i's n values at `i·n`) that an input
/// selects: for each id in `inputs`, at its first step, the sum of s's columns over the
/// steps whose input is that id, in order, then the clipped SGD step on column id. That is
/// W_ax's update, the transpose of the forward pass's gather, in one call. `scratch` holds
/// the chains of steps with the same input (found in one pass, so that no step is compared
/// with every other); it grows to the number of columns plus steps once. Returns Σ g², or
/// `None`, doing nothing, when [`available`] is false or n is 0 or above 64.
pub(crate) fn input_columns_sgd(
    w: &mut [f64],
    n: usize,
    s: &[f64],
    inputs: &[Option<crate::TokenId>],
    scratch: &mut Vec<u32>,
    step: ClipSgd,
) -> Option<f64> {
    if !available::<f64>() || n == 0 || n > 64 {
        return None;
    }
    let k = inputs.len();
    assert!(
        k == 0 || s.len() >= k * n,
        "s holds a column of n per input"
    );
    // first[id]: the first step whose input is id; next[t]: the next step with t's input.
    let (first, next) = crate::padded::chains(inputs, w.len() / n, scratch);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `available` found AVX-512F; every id indexes `first` (checked above), so
    // it selects a column of w, and the chains hold steps below k, columns of s.
    let sq = unsafe {
        let chains = (first.as_ptr(), next.as_ptr());
        avx512::input_columns_sgd(n, s.as_ptr(), inputs, chains, w.as_mut_ptr(), step)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let sq: f64 = unreachable!("`available` is false here");
    Some(sq)
}

/// The forward recurrence of `crate::batch1` on its padded buffers, all steps in one call:
/// for t = 1..=T (T = `inputs.len()`), with `ld`-strided columns,
///
/// ```text
/// a⟨t⟩ = tanh(W_aa a⟨t-1⟩ + W_ax[:, x⟨t⟩] + b_a)      (no W_ax term where x⟨t⟩ is None)
/// ```
///
/// with W_aa's n_a rows and W_ax's columns at stride `ld` (a multiple of 8, at most 64)
/// and zero padding everywhere, `a` holding a⟨0⟩ (its padding zero) and room for a<1..T>.
/// The products are [`rows`]' sums, and tanh is `Float::fast_tanh` written with
/// intrinsics, operation for operation: the bits of the general path's step. Returns
/// `false`, doing nothing, when [`available`] is false or `ld` does not fit.
pub(crate) fn recurrence(
    (n_a, ld): (usize, usize),
    w_aa: &[f64],
    w_ax: &[f64],
    b_a: &[f64],
    inputs: &[Option<crate::TokenId>],
    a: &mut [f64],
) -> bool {
    if !available::<f64>() || !ld.is_multiple_of(8) || !(n_a..=64).contains(&ld) || n_a == 0 {
        return false;
    }
    let columns = w_ax.len() / ld;
    assert!(
        w_aa.len() >= n_a * ld && b_a.len() >= ld,
        "W_aa and b_a at stride ld"
    );
    assert!(a.len() >= (inputs.len() + 1) * ld, "a holds a<0..T>");
    assert!(
        inputs.iter().flatten().all(|&id| (id as usize) < columns),
        "an input selects a column of W_ax"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `available` found AVX-512F; the asserts bound W_aa's rows, b_a, every
    // column of W_ax an input selects and the T + 1 columns of a.
    unsafe {
        let w = (w_aa.as_ptr(), w_ax.as_ptr(), b_a.as_ptr());
        avx512::recurrence(n_a, ld / 8, w, inputs, a.as_mut_ptr());
    }
    true
}

/// The backward recurrence of `crate::batch1` on its padded buffers, all steps in one call,
/// from the last step to the first, with `ld`-strided columns:
///
/// ```text
/// da_raw⟨t⟩ = (1 − a⟨t⟩²) ⊙ (da⟨t⟩ + W_aaᵀ da_raw⟨t+1⟩)      (no second term at t = T)
/// ```
///
/// `da` holds W_yaᵀ dy⟨t⟩ per step and is only read; `a` holds a<0..T>; W_aa's n_a rows
/// are at stride `ld`, zero-padded. The sums are those of `through_tanh` and [`cols`], so
/// the general path's bits. Returns Σ da_raw² (in no particular order, for the guard of
/// `crate::batch1`), or `None`, doing nothing, when [`available`] is false or `ld` does
/// not fit.
pub(crate) fn backward_recurrence(
    (n_a, ld): (usize, usize),
    w_aa: &[f64],
    a: &[f64],
    da: &[f64],
    da_raw: &mut [f64],
    n_steps: usize,
) -> Option<f64> {
    if !available::<f64>() || !ld.is_multiple_of(8) || !(n_a..=64).contains(&ld) || n_a == 0 {
        return None;
    }
    assert!(w_aa.len() >= n_a * ld, "W_aa at stride ld");
    assert!(a.len() >= (n_steps + 1) * ld, "a holds a<0..T>");
    assert!(da.len() >= n_steps * ld && da_raw.len() >= n_steps * ld);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `available` found AVX-512F; the asserts bound every column read and written.
    let sq = unsafe {
        let (w, a, da, dr) = (w_aa.as_ptr(), a.as_ptr(), da.as_ptr(), da_raw.as_mut_ptr());
        avx512::backward_recurrence(n_a, ld / 8, w, a, da, dr, n_steps)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let sq: f64 = unreachable!("`available` is false here");
    Some(sq)
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// The mask of the first `len` (≤ 8) lanes.
    #[inline(always)]
    fn mask(len: usize) -> __mmask8 {
        if len >= 8 {
            0xFF
        } else {
            ((1u32 << len) - 1) as __mmask8
        }
    }

    /// Eight values from p, or only the lanes of `m` (the others 0): a masked load never
    /// touches memory outside its mask.
    #[inline(always)]
    unsafe fn load(p: *const f64, m: __mmask8) -> __m512d {
        // SAFETY: (caller) the lanes of `m` from p are readable.
        unsafe {
            if m == 0xFF {
                _mm512_loadu_pd(p)
            } else {
                _mm512_maskz_loadu_pd(m, p)
            }
        }
    }

    /// Sums the lanes of each of eight registers: lane r of the result is Σ acc[r]. The
    /// pairs are added in the same order for every r, so a row's sum does not depend on
    /// where in the block it sits.
    #[inline(always)]
    unsafe fn reduce8(acc: [__m512d; 8]) -> __m512d {
        // SAFETY: register arithmetic only (no memory access); AVX-512F is enabled for
        // every caller, which is a `#[target_feature(enable = "avx512f")]` kernel.
        unsafe {
            // [a0(0+1), a1(0+1), a0(2+3), a1(2+3), ...] for each pair of registers.
            let pair = |a: __m512d, b: __m512d| {
                _mm512_add_pd(_mm512_unpacklo_pd(a, b), _mm512_unpackhi_pd(a, b))
            };
            let t01 = pair(acc[0], acc[1]);
            let t23 = pair(acc[2], acc[3]);
            let t45 = pair(acc[4], acc[5]);
            let t67 = pair(acc[6], acc[7]);
            // 128-bit lanes 0 and 2 of a with those of b, plus lanes 1 and 3.
            let quad = |a: __m512d, b: __m512d| {
                _mm512_add_pd(
                    _mm512_shuffle_f64x2::<0x88>(a, b),
                    _mm512_shuffle_f64x2::<0xDD>(a, b),
                )
            };
            // [a0 lo, a1 lo, a0 hi, a1 hi, a2 lo, a3 lo, a2 hi, a3 hi] (lo = lanes 0..4).
            let v0123 = quad(t01, t23);
            let v4567 = quad(t45, t67);
            quad(v0123, v4567)
        }
    }

    /// See [`super::recurrence`]; `nv` registers a column.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn recurrence(
        n_a: usize,
        nv: usize,
        w: (*const f64, *const f64, *const f64),
        inputs: &[Option<crate::TokenId>],
        a: *mut f64,
    ) {
        // SAFETY: (all) the caller's contract, with nv registers a column.
        unsafe {
            match nv {
                1 => recurrence_nv::<1>(n_a, w, inputs, a),
                2 => recurrence_nv::<2>(n_a, w, inputs, a),
                3 => recurrence_nv::<3>(n_a, w, inputs, a),
                4 => recurrence_nv::<4>(n_a, w, inputs, a),
                5 => recurrence_nv::<5>(n_a, w, inputs, a),
                6 => recurrence_nv::<6>(n_a, w, inputs, a),
                7 => recurrence_nv::<7>(n_a, w, inputs, a),
                _ => recurrence_nv::<8>(n_a, w, inputs, a),
            }
        }
    }

    /// [`recurrence`] with NV registers a column.
    #[inline(always)]
    unsafe fn recurrence_nv<const NV: usize>(
        n_a: usize,
        (w_aa, w_ax, b_a): (*const f64, *const f64, *const f64),
        inputs: &[Option<crate::TokenId>],
        a: *mut f64,
    ) {
        // SAFETY: (all) the caller's contract: columns of 8·NV, every one read or written
        // inside a, W_ax or b_a.
        unsafe {
            let ld = 8 * NV;
            for (t, x_t) in inputs.iter().enumerate() {
                let (prev, next) = (a.add(t * ld), a.add((t + 1) * ld));
                rows_nv::<NV>(n_a, w_aa, prev, next);
                let w_x = x_t.map(|id| w_ax.add(id as usize * ld));
                for v in 0..NV {
                    let z = _mm512_loadu_pd(next.add(8 * v));
                    // (z + w_x) + b_a, as `input_bias_tanh` adds them.
                    let z = match w_x {
                        Some(w_x) => _mm512_add_pd(z, _mm512_loadu_pd(w_x.add(8 * v))),
                        None => z,
                    };
                    let z = _mm512_add_pd(z, _mm512_loadu_pd(b_a.add(8 * v)));
                    _mm512_storeu_pd(next.add(8 * v), tanh(z));
                }
            }
        }
    }

    /// `tanh_f64` of `crate::float` lane by lane, operation for operation (the same bits):
    /// tanh |x| = −u / (u + 2) with u = e^(−2|x|) − 1 = 2ⁿ(eʳ − 1) + (2ⁿ − 1), |x| capped
    /// at 20, then x's sign. 2ⁿ (−58 ≤ n ≤ 0) comes exactly from `vscalefpd`, and the
    /// quotient's sign, which the final copysign replaces, is not negated first.
    #[inline(always)]
    unsafe fn tanh(x: __m512d) -> __m512d {
        use crate::float::{EXPM1_COEFFS as C, LN2_HI, LN2_LO, ROUNDER};
        // SAFETY: register operations only, on the caller's AVX-512F.
        unsafe {
            let sign = _mm512_set1_epi64(i64::MIN);
            let xi = _mm512_castpd_si512(x);
            let ax = _mm512_castsi512_pd(_mm512_andnot_si512(sign, xi));
            // `if ax > 20 { 20 } else { ax }`: min returns its second operand for NaN.
            let ax = _mm512_min_pd(_mm512_set1_pd(20.0), ax);
            let x2 = _mm512_mul_pd(_mm512_set1_pd(-2.0), ax);
            let rounder = _mm512_set1_pd(ROUNDER);
            let scaled = _mm512_mul_pd(x2, _mm512_set1_pd(std::f64::consts::LOG2_E));
            let n_f = _mm512_sub_pd(_mm512_add_pd(scaled, rounder), rounder);
            let r = _mm512_fnmadd_pd(n_f, _mm512_set1_pd(LN2_HI), x2);
            let r = _mm512_fnmadd_pd(n_f, _mm512_set1_pd(LN2_LO), r);
            let mut p = _mm512_set1_pd(C[12]);
            for &coef in C[..12].iter().rev() {
                p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(coef));
            }
            let em1 = _mm512_mul_pd(p, r);
            let s = _mm512_scalef_pd(_mm512_set1_pd(1.0), n_f);
            let u = _mm512_fmadd_pd(s, em1, _mm512_sub_pd(s, _mm512_set1_pd(1.0)));
            let q = _mm512_div_pd(u, _mm512_add_pd(u, _mm512_set1_pd(2.0)));
            // Bit by bit `sign ? x : q`: |q| with x's sign.
            let qi = _mm512_castpd_si512(q);
            _mm512_castsi512_pd(_mm512_ternarylogic_epi64::<0xD8>(qi, xi, sign))
        }
    }

    /// [`tanh`] of eight values, for the test against `fast_tanh`.
    #[cfg(test)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tanh_probe(x: [f64; 8]) -> [f64; 8] {
        let mut out = [0.0; 8];
        // SAFETY: the caller's AVX-512F; eight values in and out.
        unsafe { _mm512_storeu_pd(out.as_mut_ptr(), tanh(_mm512_loadu_pd(x.as_ptr()))) };
        out
    }

    /// See [`super::rows`].
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn rows(
        n: usize,
        k: usize,
        w: *const f64,
        ldw: usize,
        x: *const f64,
        out: *mut f64,
    ) {
        // Rows of whole registers at a stride of exactly those registers (the padded
        // copies of `crate::batch1`): the kernel with every address a constant offset.
        if k == ldw && k.is_multiple_of(8) {
            // SAFETY: the caller's contract, with k = 8·NV.
            unsafe {
                match k / 8 {
                    1 => return rows_nv::<1>(n, w, x, out),
                    2 => return rows_nv::<2>(n, w, x, out),
                    3 => return rows_nv::<3>(n, w, x, out),
                    4 => return rows_nv::<4>(n, w, x, out),
                    5 => return rows_nv::<5>(n, w, x, out),
                    6 => return rows_nv::<6>(n, w, x, out),
                    7 => return rows_nv::<7>(n, w, x, out),
                    8 => return rows_nv::<8>(n, w, x, out),
                    _ => {}
                }
            }
        }
        // SAFETY: (all) the caller's contract, for rows i..i + R ≤ n.
        unsafe {
            let mut i = 0;
            while i + 8 <= n {
                row_block::<8>(i, k, w, ldw, x, out);
                i += 8;
            }
            // The last rows: only their own multiply-adds, the other registers left 0.
            match n - i {
                1 => row_block::<1>(i, k, w, ldw, x, out),
                2 => row_block::<2>(i, k, w, ldw, x, out),
                3 => row_block::<3>(i, k, w, ldw, x, out),
                4 => row_block::<4>(i, k, w, ldw, x, out),
                5 => row_block::<5>(i, k, w, ldw, x, out),
                6 => row_block::<6>(i, k, w, ldw, x, out),
                7 => row_block::<7>(i, k, w, ldw, x, out),
                _ => {}
            }
        }
    }

    /// Rows first..first + R (R ≤ 8) of [`rows`]: R dot products in R registers, each a
    /// chain of ⌈k/8⌉ multiply-adds, reduced together (the same tree for every row, so a
    /// row's sum does not depend on the block it is in).
    #[inline(always)]
    unsafe fn row_block<const R: usize>(
        first: usize,
        k: usize,
        w: *const f64,
        ldw: usize,
        x: *const f64,
        out: *mut f64,
    ) {
        // SAFETY: the caller's contract; a partial chunk is read under its mask.
        unsafe {
            let r: [*const f64; R] = std::array::from_fn(|r| w.add((first + r) * ldw));
            let mut acc = [_mm512_setzero_pd(); 8];
            let mut j = 0;
            while j + 8 <= k {
                let xv = _mm512_loadu_pd(x.add(j));
                for (a, &rp) in acc.iter_mut().zip(&r) {
                    *a = _mm512_fmadd_pd(_mm512_loadu_pd(rp.add(j)), xv, *a);
                }
                j += 8;
            }
            if j < k {
                let m = mask(k - j);
                let xv = _mm512_maskz_loadu_pd(m, x.add(j));
                for (a, &rp) in acc.iter_mut().zip(&r) {
                    *a = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(m, rp.add(j)), xv, *a);
                }
            }
            let sums = reduce::<R>(acc);
            _mm512_mask_storeu_pd(out.add(first), mask(R), sums);
        }
    }

    /// [`rows`] for rows of exactly NV registers (k = ldw = 8·NV): x in NV registers, and
    /// each row block's loads at constant offsets from one address.
    #[inline(always)]
    unsafe fn rows_nv<const NV: usize>(n: usize, w: *const f64, x: *const f64, out: *mut f64) {
        // SAFETY: (all) the caller's contract, for rows i..i + R ≤ n of NV registers.
        unsafe {
            let xv: [__m512d; NV] = std::array::from_fn(|v| _mm512_loadu_pd(x.add(8 * v)));
            let mut i = 0;
            while i + 8 <= n {
                row_block_nv::<8, NV>(w.add(i * 8 * NV), &xv, out.add(i));
                i += 8;
            }
            let (w, out) = (w.add(i * 8 * NV), out.add(i));
            match n - i {
                1 => row_block_nv::<1, NV>(w, &xv, out),
                2 => row_block_nv::<2, NV>(w, &xv, out),
                3 => row_block_nv::<3, NV>(w, &xv, out),
                4 => row_block_nv::<4, NV>(w, &xv, out),
                5 => row_block_nv::<5, NV>(w, &xv, out),
                6 => row_block_nv::<6, NV>(w, &xv, out),
                7 => row_block_nv::<7, NV>(w, &xv, out),
                _ => {}
            }
        }
    }

    /// R rows of [`rows_nv`] from `w`: the sums of [`row_block`], in the same order.
    #[inline(always)]
    unsafe fn row_block_nv<const R: usize, const NV: usize>(
        w: *const f64,
        x: &[__m512d; NV],
        out: *mut f64,
    ) {
        // SAFETY: (caller) R rows of NV registers from w, R outputs at out.
        unsafe {
            let mut acc = [_mm512_setzero_pd(); 8];
            for (v, &xv) in x.iter().enumerate() {
                for (r, a) in acc.iter_mut().take(R).enumerate() {
                    *a = _mm512_fmadd_pd(_mm512_loadu_pd(w.add(8 * (r * NV + v))), xv, *a);
                }
            }
            _mm512_mask_storeu_pd(out, mask(R), reduce::<R>(acc));
        }
    }

    /// The lane sums of R registers (8·R values, register r from `vals[8r..]`) by
    /// [`reduce`] and by [`reduce8`], for the test that they agree.
    #[cfg(test)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn reduce_both<const R: usize>(vals: &[f64]) -> ([f64; 8], [f64; 8]) {
        // SAFETY: the caller's contract: `vals` holds 8·R values (the loads read them).
        unsafe {
            let mut acc = [_mm512_setzero_pd(); 8];
            for (r, a) in acc.iter_mut().take(R).enumerate() {
                *a = _mm512_loadu_pd(vals.as_ptr().add(8 * r));
            }
            let (mut short, mut full) = ([0.0; 8], [0.0; 8]);
            _mm512_storeu_pd(short.as_mut_ptr(), reduce::<R>(acc));
            _mm512_storeu_pd(full.as_mut_ptr(), reduce8(acc));
            (short, full)
        }
    }

    /// [`reduce8`] for the first R registers (the others zero): a shorter tree when R ≤ 4,
    /// which adds each row's lanes in the same order, so the same bits.
    #[inline(always)]
    unsafe fn reduce<const R: usize>(acc: [__m512d; 8]) -> __m512d {
        // SAFETY: register arithmetic only (no memory access), inside AVX-512F kernels.
        unsafe {
            let zero = _mm512_setzero_pd();
            // 128-bit lanes 0 and 2 of a with those of b, plus lanes 1 and 3.
            let quad = |a: __m512d, b: __m512d| {
                _mm512_add_pd(
                    _mm512_shuffle_f64x2::<0x88>(a, b),
                    _mm512_shuffle_f64x2::<0xDD>(a, b),
                )
            };
            let pair = |a: __m512d, b: __m512d| {
                _mm512_add_pd(_mm512_unpacklo_pd(a, b), _mm512_unpackhi_pd(a, b))
            };
            match R {
                // [a(01+23), b(01+23), a(45+67), b(45+67), 0, ..], then the two halves.
                1 | 2 => quad(quad(pair(acc[0], acc[1]), zero), zero),
                3 | 4 => quad(quad(pair(acc[0], acc[1]), pair(acc[2], acc[3])), zero),
                _ => reduce8(acc),
            }
        }
    }

    /// eᵈ for d ≤ 0 (or NaN), with the bits of `exp_f64` (see [`softmax_cols`]).
    #[inline(always)]
    unsafe fn exp_nonpositive(d: __m512d) -> __m512d {
        use crate::float::{EXPM1_COEFFS as C, LN2_HI, LN2_LO, ROUNDER};
        // SAFETY: register operations only, on the caller's AVX-512F.
        unsafe {
            let rounder = _mm512_set1_pd(ROUNDER);
            let d = _mm512_max_pd(_mm512_set1_pd(-746.0), d);
            let scaled = _mm512_mul_pd(d, _mm512_set1_pd(std::f64::consts::LOG2_E));
            let sh = _mm512_add_pd(scaled, rounder);
            let n_f = _mm512_sub_pd(sh, rounder);
            let r = _mm512_fnmadd_pd(n_f, _mm512_set1_pd(LN2_HI), d);
            let r = _mm512_fnmadd_pd(n_f, _mm512_set1_pd(LN2_LO), r);
            let mut p = _mm512_set1_pd(C[12]);
            for &coef in C[..12].iter().rev() {
                p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(coef));
            }
            let e_r = _mm512_add_pd(_mm512_set1_pd(1.0), _mm512_mul_pd(p, r));
            _mm512_scalef_pd(e_r, n_f)
        }
    }

    /// [`exp_nonpositive`] of eight values, for the test against `exp_f64`.
    #[cfg(test)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn exp_probe(d: [f64; 8]) -> [f64; 8] {
        let mut out = [0.0; 8];
        // SAFETY: the caller's AVX-512F; eight values in and out.
        unsafe {
            _mm512_storeu_pd(
                out.as_mut_ptr(),
                exp_nonpositive(_mm512_loadu_pd(d.as_ptr())),
            )
        };
        out
    }

    /// NC columns (side by side, n values each) of [`super::softmax_block`], each phase
    /// done for all NC before the next so that their chains overlap: returns, per column,
    /// (Σ e^(z − max), z[t] − max), the second 0 when t ≥ n (no target).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn softmax_cols<const NV: usize, const NC: usize>(
        n: usize,
        z: *mut f64,
        b: *const f64,
        t: [usize; NC],
    ) -> [(f64, f64); NC] {
        // SAFETY: the caller's contract: NC columns of n values at z, n bias values at b;
        // the loads and stores are masked to n, so nothing outside them is touched.
        unsafe {
            let masks: [__mmask8; NV] = std::array::from_fn(|v| mask(n - 8 * v));
            let col = |c: usize| z.add(c * n);
            // z + b, with −∞ in the lanes past n (they do not move the maximum).
            let neg_inf = _mm512_set1_pd(f64::NEG_INFINITY);
            let mut x = [[neg_inf; NV]; NC];
            for (c, xc) in x.iter_mut().enumerate() {
                for v in 0..NV {
                    let zv = _mm512_mask_loadu_pd(neg_inf, masks[v], col(c).add(8 * v));
                    xc[v] = _mm512_add_pd(zv, _mm512_maskz_loadu_pd(masks[v], b.add(8 * v)));
                }
            }
            let mx: [f64; NC] = std::array::from_fn(|c| {
                let mut m = x[c][0];
                for xv in &x[c][1..] {
                    m = _mm512_max_pd(m, *xv);
                }
                _mm512_reduce_max_pd(m)
            });
            // z[t] − max for the loss, read before the probabilities overwrite z.
            let shifted: [f64; NC] = std::array::from_fn(|c| {
                if t[c] < n {
                    (*col(c).add(t[c]) + *b.add(t[c])) - mx[c]
                } else {
                    0.0
                }
            });
            // e^(z − max), as `exp_f64`: clamp, reduce by ln 2, Horner, scale by 2ⁿ.
            // z − max ≤ 0 (or NaN), so `exp_f64`'s upper clamp at 710 changes nothing and
            // is left out. Its scaling by 2ⁿ in two exact halves rounds once, at the
            // second product, to the nearest float of e^r·2ⁿ: what `vscalefpd` computes
            // in one instruction (subnormal results included), so the same bits.
            let mut e = [[_mm512_setzero_pd(); NV]; NC];
            for v in 0..NV {
                for c in 0..NC {
                    let d = _mm512_sub_pd(x[c][v], _mm512_set1_pd(mx[c]));
                    e[c][v] = _mm512_maskz_mov_pd(masks[v], exp_nonpositive(d));
                }
            }
            let sums: [f64; NC] = std::array::from_fn(|c| {
                let mut s = e[c][0];
                for ev in &e[c][1..] {
                    s = _mm512_add_pd(s, *ev);
                }
                _mm512_reduce_add_pd(s)
            });
            for c in 0..NC {
                let inv = _mm512_set1_pd(1.0 / sums[c]);
                for v in 0..NV {
                    let out = col(c).add(8 * v);
                    _mm512_mask_storeu_pd(out, masks[v], _mm512_mul_pd(e[c][v], inv));
                }
            }
            std::array::from_fn(|c| (sums[c], shifted[c]))
        }
    }

    /// Broadcast constants of a [`super::ClipSgd`] step.
    #[derive(Clone, Copy)]
    struct Consts {
        c: __m512d,
        neg_c: __m512d,
        neg_lr: __m512d,
    }

    impl Consts {
        #[inline(always)]
        fn new(step: super::ClipSgd) -> Self {
            // SAFETY: broadcasts need only AVX-512F, which every caller has enabled.
            unsafe {
                Consts {
                    c: _mm512_set1_pd(step.c),
                    neg_c: _mm512_set1_pd(-step.c),
                    neg_lr: _mm512_set1_pd(-step.lr),
                }
            }
        }
    }

    /// One register of gradient entries: adds their squares to `sq`, then writes
    /// p − lr·clamp(g, −c, c) over the lanes of `m` of p: the bits of
    /// [`crate::elementwise::clip_value_sgd`], which computes `(−lr).mul_add(g.max(−c).min(c), p)`.
    #[inline(always)]
    unsafe fn clip_sgd<const DQ: bool>(
        g: __m512d,
        p: *mut f64,
        m: __mmask8,
        k: Consts,
        sq: &mut __m512d,
    ) {
        // SAFETY: (caller) the lanes of `m` from p are readable and writable, and with DQ
        // the CPU has AVX-512DQ.
        unsafe {
            *sq = _mm512_fmadd_pd(g, g, *sq);
            // With AVX-512DQ in one instruction: of g and c the one of smaller magnitude,
            // with g's sign; for c > 0 and finite g the bits of max(g, −c).min(c).
            let clamped = if DQ {
                _mm512_range_pd::<0b0010>(g, k.c)
            } else {
                _mm512_min_pd(_mm512_max_pd(g, k.neg_c), k.c)
            };
            let updated = _mm512_fmadd_pd(k.neg_lr, clamped, load(p, m));
            _mm512_mask_storeu_pd(p, m, updated);
        }
    }

    /// The masks of the NV registers that cover n values: all full but the last.
    #[inline(always)]
    fn masks<const NV: usize>(n: usize) -> [__mmask8; NV] {
        std::array::from_fn(|v| mask(n - 8 * v))
    }

    /// Defines the kernel entry `$name`: `$with::<true>`, compiled for AVX-512DQ, where the
    /// CPU has it and c > 0 (there its one-instruction clamp gives the bits of max/min),
    /// else `$with::<false>`.
    macro_rules! dq_entry {
        ($(#[$doc:meta])* $name:ident = $with:ident($($arg:ident: $ty:ty),*; $step:ident)) => {
            $(#[$doc])*
            #[target_feature(enable = "avx512f")]
            #[allow(clippy::too_many_arguments)]
            pub(super) unsafe fn $name($($arg: $ty,)* $step: super::ClipSgd) -> f64 {
                #[target_feature(enable = "avx512f,avx512dq")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn with_dq($($arg: $ty,)* $step: super::ClipSgd) -> f64 {
                    // SAFETY: the caller's contract.
                    unsafe { $with::<true>($($arg,)* $step) }
                }
                // SAFETY: (both) the caller's contract, and `has_dq` checked the CPU.
                unsafe {
                    if super::has_dq() && $step.c > 0.0 {
                        with_dq($($arg,)* $step)
                    } else {
                        $with::<false>($($arg,)* $step)
                    }
                }
            }
        };
    }

    dq_entry! {
        /// See [`super::outer_rows_sgd`].
        outer_rows_sgd = outer_rows_sgd_with(
            shape: (usize, usize),
            n: usize,
            k: usize,
            v: *const f64,
            s: *const f64,
            lds: usize,
            w: *mut f64;
            step
        )
    }

    dq_entry! {
        /// See [`super::column_sum_sgd`].
        column_sum_sgd = column_sum_sgd_with(
            n: usize,
            k: usize,
            s: *const f64,
            lds: usize,
            p: *mut f64;
            step
        )
    }

    dq_entry! {
        /// See [`super::input_columns_sgd`].
        input_columns_sgd = input_columns_with(
            n: usize,
            s: *const f64,
            inputs: &[Option<crate::TokenId>],
            chains: (*const u32, *const u32),
            w: *mut f64;
            step
        )
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn outer_rows_sgd_with<const DQ: bool>(
        (rows, ldw): (usize, usize),
        n: usize,
        k: usize,
        v: *const f64,
        s: *const f64,
        lds: usize,
        w: *mut f64,
        step: super::ClipSgd,
    ) -> f64 {
        let o = Outer {
            k,
            n,
            v,
            s,
            lds,
            w,
            ldw,
        };
        let k = Consts::new(step);
        // SAFETY: (all) the caller's contract; NV registers cover a row of n.
        unsafe {
            match n.div_ceil(8) {
                1 => outer_rows::<1, 3, DQ>(o, rows, k),
                2 => outer_rows::<2, 3, DQ>(o, rows, k),
                3 => outer_rows::<3, 3, DQ>(o, rows, k),
                4 => outer_rows::<4, 3, DQ>(o, rows, k),
                5 => outer_rows::<5, 3, DQ>(o, rows, k),
                6 => outer_rows::<6, 3, DQ>(o, rows, k),
                7 => outer_rows::<7, 3, DQ>(o, rows, k),
                _ => outer_rows::<8, 2, DQ>(o, rows, k),
            }
        }
    }

    /// The operands of [`outer_rows_sgd`].
    #[derive(Clone, Copy)]
    struct Outer {
        k: usize,
        n: usize,
        v: *const f64,
        s: *const f64,
        lds: usize,
        w: *mut f64,
        ldw: usize,
    }

    /// Rows in groups of NB (then fewer), NV registers a row.
    #[inline(always)]
    unsafe fn outer_rows<const NV: usize, const NB: usize, const DQ: bool>(
        o: Outer,
        rows: usize,
        k: Consts,
    ) -> f64 {
        // SAFETY: the caller's contract, for rows j..j + NB ≤ rows.
        unsafe {
            let mut sq = _mm512_setzero_pd();
            let mut j = 0;
            while j + NB <= rows {
                outer_tile::<NV, NB, DQ>(o, j, k, &mut sq);
                j += NB;
            }
            while j < rows {
                outer_tile::<NV, 1, DQ>(o, j, k, &mut sq);
                j += 1;
            }
            _mm512_reduce_add_pd(sq)
        }
    }

    /// Rows j..j+NB: for each step p, the NV registers of v's column p, loaded once, times
    /// each row's broadcast s[j + jj + p·lds]; then each finished row's clip and step.
    #[inline(always)]
    unsafe fn outer_tile<const NV: usize, const NB: usize, const DQ: bool>(
        o: Outer,
        j: usize,
        k: Consts,
        sq: &mut __m512d,
    ) {
        // SAFETY: the caller's contract; the last register of a row is masked.
        unsafe {
            let m = masks::<NV>(o.n);
            let mut acc = [[_mm512_setzero_pd(); NV]; NB];
            for p in 0..o.k {
                let col = o.v.add(p * o.n);
                let vv: [__m512d; NV] = std::array::from_fn(|q| load(col.add(8 * q), m[q]));
                let sp = o.s.add(j + p * o.lds);
                for (jj, acc_j) in acc.iter_mut().enumerate() {
                    let b = _mm512_set1_pd(*sp.add(jj));
                    for (a, &x) in acc_j.iter_mut().zip(&vv) {
                        *a = _mm512_fmadd_pd(x, b, *a);
                    }
                }
            }
            for (jj, acc_j) in acc.iter().enumerate() {
                let row = o.w.add((j + jj) * o.ldw);
                for (q, &g) in acc_j.iter().enumerate() {
                    clip_sgd::<DQ>(g, row.add(8 * q), m[q], k, sq);
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn column_sum_sgd_with<const DQ: bool>(
        n: usize,
        k: usize,
        s: *const f64,
        lds: usize,
        p: *mut f64,
        step: super::ClipSgd,
    ) -> f64 {
        let c = Consts::new(step);
        // SAFETY: (all) the caller's contract; NV registers cover n.
        unsafe {
            match n.div_ceil(8) {
                1 => column_sum::<1, DQ>(n, k, s, lds, p, c),
                2 => column_sum::<2, DQ>(n, k, s, lds, p, c),
                3 => column_sum::<3, DQ>(n, k, s, lds, p, c),
                4 => column_sum::<4, DQ>(n, k, s, lds, p, c),
                5 => column_sum::<5, DQ>(n, k, s, lds, p, c),
                6 => column_sum::<6, DQ>(n, k, s, lds, p, c),
                7 => column_sum::<7, DQ>(n, k, s, lds, p, c),
                _ => column_sum::<8, DQ>(n, k, s, lds, p, c),
            }
        }
    }

    #[inline(always)]
    unsafe fn input_columns_with<const DQ: bool>(
        n: usize,
        s: *const f64,
        inputs: &[Option<crate::TokenId>],
        chains: (*const u32, *const u32),
        w: *mut f64,
        step: super::ClipSgd,
    ) -> f64 {
        let c = Consts::new(step);
        // SAFETY: (all) the caller's contract; NV registers cover n.
        unsafe {
            match n.div_ceil(8) {
                1 => input_columns::<1, DQ>(n, s, inputs, chains, w, c),
                2 => input_columns::<2, DQ>(n, s, inputs, chains, w, c),
                3 => input_columns::<3, DQ>(n, s, inputs, chains, w, c),
                4 => input_columns::<4, DQ>(n, s, inputs, chains, w, c),
                5 => input_columns::<5, DQ>(n, s, inputs, chains, w, c),
                6 => input_columns::<6, DQ>(n, s, inputs, chains, w, c),
                7 => input_columns::<7, DQ>(n, s, inputs, chains, w, c),
                _ => input_columns::<8, DQ>(n, s, inputs, chains, w, c),
            }
        }
    }

    /// Each selected column once, at the first step that selects it.
    #[inline(always)]
    unsafe fn input_columns<const NV: usize, const DQ: bool>(
        n: usize,
        s: *const f64,
        inputs: &[Option<crate::TokenId>],
        (first, next): (*const u32, *const u32),
        w: *mut f64,
        c: Consts,
    ) -> f64 {
        // SAFETY: (all) the caller's contract: `first` has an entry per column of w,
        // `next` one per step, and the chains hold steps below inputs.len().
        unsafe {
            let m = masks::<NV>(n);
            let mut sq = _mm512_setzero_pd();
            for (t, &input) in inputs.iter().enumerate() {
                let Some(id) = input else { continue };
                if *first.add(id as usize) != t as u32 {
                    continue;
                }
                // The steps with this input, in order, added from zero.
                let mut acc = [_mm512_setzero_pd(); NV];
                let mut u = t as u32;
                while u != crate::padded::NO_STEP {
                    let col = s.add(u as usize * n);
                    for (q, a) in acc.iter_mut().enumerate() {
                        *a = _mm512_add_pd(*a, load(col.add(8 * q), m[q]));
                    }
                    u = *next.add(u as usize);
                }
                let col = w.add(id as usize * n);
                for (q, &g) in acc.iter().enumerate() {
                    clip_sgd::<DQ>(g, col.add(8 * q), m[q], c, &mut sq);
                }
            }
            _mm512_reduce_add_pd(sq)
        }
    }

    #[inline(always)]
    unsafe fn column_sum<const NV: usize, const DQ: bool>(
        n: usize,
        k: usize,
        s: *const f64,
        lds: usize,
        p: *mut f64,
        c: Consts,
    ) -> f64 {
        // SAFETY: the caller's contract.
        unsafe {
            let m = masks::<NV>(n);
            let mut acc = [_mm512_setzero_pd(); NV];
            for t in 0..k {
                let col = s.add(t * lds);
                for (q, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_add_pd(*a, load(col.add(8 * q), m[q]));
                }
            }
            let mut sq = _mm512_setzero_pd();
            for (q, &g) in acc.iter().enumerate() {
                clip_sgd::<DQ>(g, p.add(8 * q), m[q], c, &mut sq);
            }
            _mm512_reduce_add_pd(sq)
        }
    }

    /// See [`super::cols`]: blocks of up to 64 rows (eight registers).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn cols(
        n: usize,
        k: usize,
        w: *const f64,
        ldw: usize,
        x: *const f64,
        out: *mut f64,
    ) {
        // SAFETY: the caller's contract: n rows of k columns of w with stride ldw, k values
        // at x, n at out; each block reads and writes only rows below n.
        unsafe {
            let mut i = 0;
            while i < n {
                let len = (n - i).min(64);
                let (w, out) = (w.add(i), out.add(i));
                match len.div_ceil(8) {
                    1 => col_block::<1, 4>(len, k, w, ldw, x, out),
                    2 => col_block::<2, 4>(len, k, w, ldw, x, out),
                    3 => col_block::<3, 4>(len, k, w, ldw, x, out),
                    4 => col_block::<4, 4>(len, k, w, ldw, x, out),
                    5 => col_block::<5, 2>(len, k, w, ldw, x, out),
                    6 => col_block::<6, 2>(len, k, w, ldw, x, out),
                    7 => col_block::<7, 2>(len, k, w, ldw, x, out),
                    _ => col_block::<8, 2>(len, k, w, ldw, x, out),
                }
                i += len;
            }
        }
    }

    /// `len` rows (NV registers, the last one masked) of the column form, in CH chains:
    /// chain c sums the columns p ≡ c (mod CH), and the chains are added at the end.
    #[inline(always)]
    unsafe fn col_block<const NV: usize, const CH: usize>(
        len: usize,
        k: usize,
        w: *const f64,
        ldw: usize,
        x: *const f64,
        out: *mut f64,
    ) {
        // SAFETY: the caller's contract: `len` rows of k columns of w (stride ldw), k values
        // at x and `len` outputs at out, the last register masked to `len`.
        unsafe {
            let sums = col_block_regs::<NV, CH>(len, k, w, ldw, x);
            for (v, s) in sums.into_iter().enumerate() {
                _mm512_mask_storeu_pd(out.add(8 * v), mask(len - 8 * v), s);
            }
        }
    }

    /// The sums of [`col_block`], in registers (lanes past `len` zero).
    #[inline(always)]
    unsafe fn col_block_regs<const NV: usize, const CH: usize>(
        len: usize,
        k: usize,
        w: *const f64,
        ldw: usize,
        x: *const f64,
    ) -> [__m512d; NV] {
        // SAFETY: the caller's contract: `len` rows of k columns of w (stride ldw) and k
        // values at x; the last register's loads are masked to `len`.
        unsafe {
            // Every register full but the last, which may be partial.
            let masks: [__mmask8; NV] =
                std::array::from_fn(|v| if v + 1 < NV { 0xFF } else { mask(len - 8 * v) });
            let mut acc = [[_mm512_setzero_pd(); NV]; CH];
            let mut p = 0;
            while p + CH <= k {
                for (c, acc_c) in acc.iter_mut().enumerate() {
                    let xv = _mm512_set1_pd(*x.add(p + c));
                    let col = w.add((p + c) * ldw);
                    for (v, a) in acc_c.iter_mut().enumerate() {
                        *a = _mm512_fmadd_pd(load(col.add(8 * v), masks[v]), xv, *a);
                    }
                }
                p += CH;
            }
            for (c, acc_c) in acc.iter_mut().enumerate().take(k - p) {
                let xv = _mm512_set1_pd(*x.add(p + c));
                let col = w.add((p + c) * ldw);
                for (v, a) in acc_c.iter_mut().enumerate() {
                    *a = _mm512_fmadd_pd(load(col.add(8 * v), masks[v]), xv, *a);
                }
            }
            std::array::from_fn(|v| {
                let mut s = acc[0][v];
                for acc_c in &acc[1..] {
                    s = _mm512_add_pd(s, acc_c[v]);
                }
                s
            })
        }
    }

    /// See [`super::backward_recurrence`]; `nv` registers a column.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn backward_recurrence(
        n_a: usize,
        nv: usize,
        w_aa: *const f64,
        a: *const f64,
        da: *const f64,
        da_raw: *mut f64,
        n_steps: usize,
    ) -> f64 {
        // SAFETY: (all) the caller's contract, with nv registers a column (the chain
        // counts of `cols` for these widths).
        unsafe {
            let args = (n_a, w_aa, a, da, da_raw, n_steps);
            match nv {
                1 => backward_nv::<1, 4>(args),
                2 => backward_nv::<2, 4>(args),
                3 => backward_nv::<3, 4>(args),
                4 => backward_nv::<4, 4>(args),
                5 => backward_nv::<5, 2>(args),
                6 => backward_nv::<6, 2>(args),
                7 => backward_nv::<7, 2>(args),
                _ => backward_nv::<8, 2>(args),
            }
        }
    }

    /// [`backward_recurrence`] with NV registers a column and the CH chains of `cols`.
    #[inline(always)]
    unsafe fn backward_nv<const NV: usize, const CH: usize>(
        (n_a, w_aa, a, da, da_raw, n_steps): (
            usize,
            *const f64,
            *const f64,
            *const f64,
            *mut f64,
            usize,
        ),
    ) -> f64 {
        // SAFETY: (all) the caller's contract: T columns of 8·NV in da and da_raw, T + 1
        // in a, n_a rows of W_aa.
        unsafe {
            let ld = 8 * NV;
            let one = _mm512_set1_pd(1.0);
            let mut next = [_mm512_setzero_pd(); NV];
            let mut sq = _mm512_setzero_pd();
            for t in (0..n_steps).rev() {
                let (da_t, a_t, dr_t) = (da.add(t * ld), a.add((t + 1) * ld), da_raw.add(t * ld));
                for (v, n) in next.iter().enumerate() {
                    // `through_tanh`: da += da_next; da_raw = (1 − a·a)·da.
                    let d = _mm512_add_pd(_mm512_loadu_pd(da_t.add(8 * v)), *n);
                    let av = _mm512_loadu_pd(a_t.add(8 * v));
                    let r = _mm512_mul_pd(_mm512_sub_pd(one, _mm512_mul_pd(av, av)), d);
                    _mm512_storeu_pd(dr_t.add(8 * v), r);
                    sq = _mm512_fmadd_pd(r, r, sq);
                }
                if t > 0 {
                    // W_aaᵀ da_raw⟨t⟩: W_aa's rows are W_aaᵀ's columns.
                    next = col_block_regs::<NV, CH>(ld, n_a, w_aa, ld, dr_t);
                }
            }
            _mm512_reduce_add_pd(sq)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each output against a plain sum in f64, for shapes around the register width
    /// (1..=8 rows, partial and overlapping blocks, more than 64 rows, short and long k).
    #[test]
    fn rows_and_cols_match_plain_sums() {
        if !crate::isa::runs_at(
            crate::isa::Tier::Avx512,
            "matvec::rows_and_cols_match_plain_sums",
        ) {
            return;
        }
        let val = |a: usize, b: usize| ((a * 31 + b * 17) % 23) as f64 / 7.0 - 1.5;
        for n in [1, 3, 7, 8, 9, 15, 16, 27, 50, 64, 65, 130] {
            for k in [1, 2, 5, 8, 12, 27, 50, 67] {
                let x: Vec<f64> = (0..k).map(|p| val(p, 99)).collect();
                let want: Vec<f64> = (0..n)
                    .map(|i| (0..k).map(|p| val(i, p) * x[p]).sum())
                    .collect();
                // Row-major with a padded row stride, and column-major likewise.
                let ldr = k + 3;
                let wr: Vec<f64> = (0..n * ldr).map(|e| val(e / ldr, e % ldr)).collect();
                let ldc = n + 2;
                let wc: Vec<f64> = (0..k * ldc).map(|e| val(e % ldc, e / ldc)).collect();
                let mut out_r = vec![f64::NAN; n + 1];
                let mut out_c = vec![f64::NAN; n + 1];
                assert!(rows(
                    n,
                    k,
                    &wr[..(n - 1) * ldr + k],
                    ldr,
                    &x,
                    &mut out_r[..n]
                ));
                assert!(cols(
                    n,
                    k,
                    &wc[..(k - 1) * ldc + n],
                    ldc,
                    &x,
                    &mut out_c[..n]
                ));
                for i in 0..n {
                    let tol = 1e-12 * (1.0 + want[i].abs());
                    assert!((out_r[i] - want[i]).abs() < tol, "rows n {n} k {k} i {i}");
                    assert!((out_c[i] - want[i]).abs() < tol, "cols n {n} k {k} i {i}");
                }
                assert!(out_r[n].is_nan() && out_c[n].is_nan(), "wrote past n");
            }
        }
    }

    /// The short reduction trees of partial row blocks add each row's lanes in the order
    /// of the full tree: the same bits, on values whose sums depend on that order.
    #[test]
    fn partial_blocks_reduce_in_the_full_trees_order() {
        if !crate::isa::runs_at(
            crate::isa::Tier::Avx512,
            "matvec::partial_blocks_reduce_in_the_full_trees_order",
        ) {
            return;
        }
        // Magnitudes from 1e-8 to 1e8 with both signs: reassociating changes the result.
        let vals: Vec<f64> = (0..64i32)
            .map(|i| {
                let sign = if i % 3 == 0 { -1.0 } else { 1.0 };
                sign * 10f64.powi(i * 7 % 17 - 8) * (1.0 + i as f64 / 64.0)
            })
            .collect();
        macro_rules! check {
            ($($r:literal),*) => {$(
                // SAFETY: `available` found AVX-512F; vals holds 8·R values.
                let (short, full) = unsafe { avx512::reduce_both::<$r>(&vals) };
                for lane in 0..$r {
                    assert_eq!(short[lane].to_bits(), full[lane].to_bits(), "R {} lane {lane}", $r);
                }
            )*};
        }
        check!(1, 2, 3, 4, 5, 6, 7, 8);
        // And the order matters for these values: summing lane by lane differs somewhere.
        let plain = |r: usize| vals[8 * r..8 * r + 8].iter().sum::<f64>();
        // SAFETY: as above.
        let (_, full) = unsafe { avx512::reduce_both::<8>(&vals) };
        assert!((0..8).any(|r| plain(r).to_bits() != full[r].to_bits()));
    }

    /// Rows of whole registers at the stride of those registers (zero padding, the layout
    /// of `crate::batch1`) give the bits of the same rows unpadded.
    #[test]
    fn padded_rows_give_the_bits_of_unpadded_rows() {
        if !crate::isa::runs_at(
            crate::isa::Tier::Avx512,
            "matvec::padded_rows_give_the_bits_of_unpadded_rows",
        ) {
            return;
        }
        let val = |a: usize, b: usize| ((a * 37 + b * 11) % 29) as f64 / 3.0 - 4.5;
        for n in [1, 2, 3, 5, 8, 9, 27, 50, 56] {
            for k in [1usize, 3, 8, 13, 27, 50, 56, 64] {
                let ld = k.div_ceil(8) * 8;
                let w: Vec<f64> = (0..n * k)
                    .map(|e| val(e / k, e % k) * 1e3f64.powi((e % 5) as i32 - 2))
                    .collect();
                let mut wp = vec![0.0; n * ld];
                for i in 0..n {
                    wp[i * ld..i * ld + k].copy_from_slice(&w[i * k..(i + 1) * k]);
                }
                let x: Vec<f64> = (0..k).map(|p| val(p, 7)).collect();
                let mut xp = x.clone();
                xp.resize(ld, 0.0);
                let (mut plain, mut padded) = (vec![0.0; n], vec![0.0; n]);
                assert!(rows(n, k, &w, k, &x, &mut plain));
                assert!(rows(n, ld, &wp, ld, &xp, &mut padded));
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&plain), bits(&padded), "n {n} k {k}");
            }
        }
    }

    /// Checks a kernel of eight lanes against a scalar reference on every value, bit for
    /// bit (any NaN matching any NaN).
    fn same_bits_lane_by_lane(
        values: &[f64],
        kernel: impl Fn([f64; 8]) -> [f64; 8],
        reference: impl Fn(f64) -> f64,
        what: &str,
    ) {
        for chunk in values.chunks(8) {
            let mut x = [0.0; 8];
            x[..chunk.len()].copy_from_slice(chunk);
            for (&x, &got) in x.iter().zip(&kernel(x)) {
                let want = reference(x);
                assert!(
                    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "{what}({x:e}): {got:e} vs {want:e}"
                );
            }
        }
    }

    /// The softmax's eᵈ (d ≤ 0) against `Float::fast_exp`, bit for bit, from 0 down past
    /// the smallest subnormal result, NaN included.
    #[test]
    fn softmax_exp_has_the_bits_of_fast_exp() {
        use crate::Float;
        if !crate::isa::runs_at(
            crate::isa::Tier::Avx512,
            "matvec::softmax_exp_has_the_bits_of_fast_exp",
        ) {
            return;
        }
        let mut ds: Vec<f64> = vec![0.0, -0.0, -1e-300, -f64::MIN_POSITIVE, -1.0, -708.5];
        ds.extend([
            -744.4,
            -745.1,
            -745.2,
            -746.0,
            -800.0,
            -1e300,
            f64::NEG_INFINITY,
        ]);
        ds.extend((0..20_000).map(|i| -(i as f64) * 0.0377));
        ds.extend((0..2_000).map(|i| -700.0 - i as f64 * 0.0231));
        ds.push(f64::NAN);
        // SAFETY: `available` found AVX-512F.
        let kernel = |d| unsafe { avx512::exp_probe(d) };
        same_bits_lane_by_lane(&ds, kernel, |d: f64| d.fast_exp(), "exp");
    }

    /// The recurrence's tanh against `Float::fast_tanh`, bit for bit: around 0 (where
    /// tanh x ≈ x), through the range of the polynomial, past the cap at 20, both signs,
    /// ±0, ±∞ and NaN.
    #[test]
    fn recurrence_tanh_has_the_bits_of_fast_tanh() {
        use crate::Float;
        if !crate::isa::runs_at(
            crate::isa::Tier::Avx512,
            "matvec::recurrence_tanh_has_the_bits_of_fast_tanh",
        ) {
            return;
        }
        let mut xs: Vec<f64> = vec![0.0, -0.0, 1e-300, 5e-324, 1e-8, 0.5, 19.99, 20.0, 20.01];
        xs.extend([36.0, 1e300, f64::INFINITY, f64::NAN]);
        xs.extend((0..40_000).map(|i| i as f64 * 6.1e-4));
        xs.extend((0..2_000).map(|i| 10f64.powi(i % 40 - 30) * (1.0 + i as f64 / 2000.0)));
        let neg: Vec<f64> = xs.iter().map(|x| -x).collect();
        xs.extend(neg);
        // SAFETY: `available` found AVX-512F.
        let kernel = |x| unsafe { avx512::tanh_probe(x) };
        same_bits_lane_by_lane(&xs, kernel, |x: f64| x.fast_tanh(), "tanh");
    }

    /// The softmax kernel against the portable passes of `crate::forward` (shift, exp,
    /// normalize), for column lengths around the register width, logits from −800 to 800
    /// (underflow to 0 included) and columns with and without a target.
    #[test]
    fn softmax_block_matches_the_portable_softmax() {
        if !crate::isa::runs_at(
            crate::isa::Tier::Avx512,
            "matvec::softmax_block_matches_the_portable_softmax",
        ) {
            return;
        }
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for n_y in [1, 2, 7, 8, 9, 27, 63, 64] {
            for scale in [1.0, 30.0, 800.0] {
                let cols = 6;
                let z: Vec<f64> = (0..n_y * cols)
                    .map(|_| (next() - 0.5) * 2.0 * scale)
                    .collect();
                let b: Vec<f64> = (0..n_y).map(|_| next() - 0.5).collect();
                let targets: Vec<Option<crate::TokenId>> = (0..cols)
                    .map(|j| (j % 3 != 1).then_some(((j * 5) % n_y) as crate::TokenId))
                    .collect();
                let mut fast = z.clone();
                let (total, n_targets) =
                    softmax_block(&mut fast, n_y, &b, targets.iter().copied()).expect("f64");
                let mut want = z.clone();
                let mut want_total = 0.0;
                for (col, t) in want.chunks_exact_mut(n_y).zip(&targets) {
                    let shifted = crate::elementwise::shift_logits(col, &b, *t);
                    crate::elementwise::exp_in_place(col);
                    let sum = crate::elementwise::normalize(col);
                    if let Some(s) = shifted {
                        want_total += sum.ln() - s;
                    }
                }
                assert_eq!(n_targets, targets.iter().flatten().count());
                let tol = 1e-12 * (1.0 + want_total.abs());
                assert!(
                    (total - want_total).abs() < tol,
                    "n_y {n_y}: {total} vs {want_total}"
                );
                for (i, (f, w)) in fast.iter().zip(&want).enumerate() {
                    assert!(
                        (f - w).abs() <= 4.0 * f64::EPSILON * w,
                        "n_y {n_y} entry {i}"
                    );
                }
            }
        }
        assert!(softmax_block(&mut [0.0f64; 65], 65, &[0.0; 65], std::iter::once(None)).is_none());
    }

    #[test]
    fn other_types_are_declined() {
        let mut out = [0.0f32; 2];
        assert!(!rows(2, 2, &[1.0f32; 4], 2, &[1.0; 2], &mut out));
        assert!(!cols(2, 2, &[1.0f32; 4], 2, &[1.0; 2], &mut out));
    }
}
