//! Matrix products and element-wise loops for the hot paths, chosen by shape and by the
//! CPU the program runs on.
//!
//! - The per-step products W_aa `a⟨t-1⟩` and W_aaᵀ da_raw ([`StepWeights`]) run a
//!   register-blocked kernel on the calling thread, allocating nothing: at batch 1 it reads
//!   a column-major W in place, in independent chains; with several columns it reads W
//!   from [`Packed`] panels made once per sequence.
//! - The all-steps products ([`gemm`]) use the same kernel for a small `w` and `ndarray`'s
//!   GEMM (matrixmultiply, with its AVX-512 kernels enabled) for a large one, split by
//!   output columns over the current rayon pool when they reach [`PAR_MIN_FLOPS`].
//! - [`batch_groups`] splits a batch's columns into one group per thread for the whole
//!   recurrence, at tile boundaries, so results do not depend on the thread count.
//! - On x86-64 the kernel is compiled three times, for AVX-512F, for AVX2 + FMA and for
//!   the baseline (SSE2), and the tier `crate::isa` chose for this process runs (the best
//!   the CPU supports, or the one `RNN_ISA` forces), so that one build runs on any x86-64;
//!   `simd_fn!` does the same for the element-wise loops. Calling a `#[target_feature]`
//!   function is unsafe, and each call is guarded by the feature check it needs; with the
//!   intrinsics kernels of `tiles512` and `matvec` (raw pointers, their range checked
//!   before the call), this is the only `unsafe` in the crate.
//!
//! Different paths compute the same sums in different orders (and with or without fused
//! multiply-add), so they may differ in the last bits; a given machine always takes the
//! same path for the same shapes, so results are reproducible.
#![allow(unsafe_code)]

use std::any::TypeId;

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};

use crate::elementwise::AdamStep;
use crate::isa::{Tier, tier};
use crate::matvec;
use crate::{Float, TokenId};

/// Products of at least this many floating-point operations are split over the threads of
/// the current rayon pool (when it has more than one).
pub const PAR_MIN_FLOPS: usize = 4_000_000;

/// `w` of at most this many bytes is read in place by the blocked kernel; larger ones go
/// to the general GEMM, which blocks for the caches.
const IN_PLACE_MAX_BYTES: usize = 1 << 20;

/// `out = w · a` on the calling thread, with the in-place kernel whenever the layouts
/// allow (it allocates nothing): the per-step products W_aa a⟨t-1⟩ and W_aaᵀ da_raw, which
/// run inside [`batch_groups`] tasks.
///
/// # Shapes
///
/// `w`: (n, k), `a`: (k, m), `out`: (n, m).
pub(crate) fn matmul_here<F: Float>(
    w: ArrayView2<'_, F>,
    a: ArrayView2<'_, F>,
    out: ArrayViewMut2<'_, F>,
) {
    debug_assert_eq!(w.ncols(), a.nrows());
    debug_assert_eq!((w.nrows(), a.ncols()), out.dim());
    matmul_serial(w, a, out, Kernel::InPlace);
}

/// Into how many groups of batch columns the recurrence is split, one rayon task each:
/// one per thread of the current pool when a per-step product with W_aa (n_a × n_a times
/// m columns) reaches [`PAR_MIN_FLOPS`], keeping at least [`SPLIT_COLUMNS`] columns per
/// group; else 1. The columns of a batch are independent sequences, so the groups run
/// all their time steps without waiting for each other.
pub(crate) fn batch_groups(n_a: usize, m: usize) -> usize {
    if 2 * n_a * n_a * m < PAR_MIN_FLOPS {
        return 1;
    }
    rayon::current_num_threads().min(m / SPLIT_COLUMNS).max(1)
}

/// Where to split `m` columns between `left` and `parts − left` groups: in proportion,
/// rounded up to a whole number of [`SPLIT_COLUMNS`].
pub(crate) fn split_point(m: usize, left: usize, parts: usize) -> usize {
    ((m * left / parts).div_ceil(SPLIT_COLUMNS) * SPLIT_COLUMNS).min(m)
}

/// Which kernel a product may use.
#[derive(Clone, Copy, PartialEq)]
enum Kernel {
    /// The in-place kernel whenever the layouts allow it: the per-step products, which
    /// must not allocate (the general GEMM allocates packing buffers on every call).
    InPlace,
    /// The in-place kernel for a small `w`, else the general GEMM: the all-steps
    /// products, called once per sequence.
    BySize,
}

/// Column block granularity of the split: a multiple of every kernel's tile width.
const SPLIT_COLUMNS: usize = 16;

/// How many tasks a product is split into: one per thread of the current rayon pool for
/// large products, keeping at least [`SPLIT_COLUMNS`] columns per task.
fn parts<F>(w: &ArrayView2<'_, F>, a: &ArrayView2<'_, F>) -> usize {
    let flops = 2 * w.nrows() * w.ncols() * a.ncols();
    if flops < PAR_MIN_FLOPS {
        return 1;
    }
    rayon::current_num_threads()
        .min(a.ncols() / SPLIT_COLUMNS)
        .max(1)
}

/// Runs the product on `parts` column blocks of `a` and `out` in parallel (rayon tasks).
fn split_columns<F: Float>(
    w: ArrayView2<'_, F>,
    a: ArrayView2<'_, F>,
    out: ArrayViewMut2<'_, F>,
    parts: usize,
) {
    if parts <= 1 {
        matmul_serial(w, a, out, Kernel::BySize);
        return;
    }
    let left = parts / 2;
    let mid = split_point(a.ncols(), left, parts);
    let (a1, a2) = a.split_at(Axis(1), mid);
    let (o1, o2) = out.split_at(Axis(1), mid);
    rayon::join(
        || split_columns(w, a1, o1, left),
        || split_columns(w, a2, o2, parts - left),
    );
}

/// `out = w · a` on the calling thread, with the kernel `kernel` allows.
fn matmul_serial<F: Float>(
    w: ArrayView2<'_, F>,
    a: ArrayView2<'_, F>,
    mut out: ArrayViewMut2<'_, F>,
    kernel: Kernel,
) {
    let (n, k) = w.dim();
    let m = a.ncols();
    // The in-place path below sizes a slice over `a` from k and m.
    assert_eq!((k, (n, m)), (a.nrows(), out.dim()), "product shapes");
    if n == 0 || m == 0 {
        return;
    }
    if k == 0 {
        out.fill(F::zero());
        return;
    }
    if by_columns(&w, &a, &mut out) {
        return;
    }
    let in_place = kernel == Kernel::InPlace
        || n * k * std::mem::size_of::<F>() <= IN_PLACE_MAX_BYTES
        || m <= 8;
    if in_place && let (Some((ws, ldw)), Some((os, ldo))) = (col_major(&w), col_major_mut(&mut out))
    {
        let (sa0, sa1) = (a.strides()[0], a.strides()[1]);
        if sa0 >= 0 && sa1 >= 0 {
            // The elements of a, addressed as a[p·rsa + j·csa], from its first one.
            let (rsa, csa) = (sa0 as usize, sa1 as usize);
            let len = (k - 1) * rsa + (m - 1) * csa + 1;
            // SAFETY: `a` has k × m elements at offsets p·rsa + j·csa (p < k, j < m)
            // from its first element, all inside one allocation that the view
            // borrows for 'a; the strides are non-negative, so these offsets lie in
            // 0..len and the slice covers exactly the memory the view can address.
            let a_s = unsafe { std::slice::from_raw_parts(a.as_ptr(), len) };
            let ab = Operand {
                data: a_s,
                rs: rsa,
                cs: csa,
            };
            gemm_cm(n, k, m, ws, ldw, ab, os, ldo);
            return;
        }
    }
    general_mat_mul(F::one(), &w, &a, F::zero(), &mut out);
}

/// Products with at most this many columns and a row-major `w` go column by column
/// through [`matvec::rows`] (the logits at batch 1: 27 × 50 times one column per step).
const ROWS_MAX_COLUMNS: usize = 16;

/// `out = w · a` one column at a time through [`matvec`] (`f64` with AVX-512): for a
/// row-major `w` and up to [`ROWS_MAX_COLUMNS`] columns, or a column-major `w` and up to
/// three (from four columns on, the tiles of [`gemm_blocked`] share each load of `w`).
/// Returns whether it ran; it needs contiguous columns of `a` and `out`.
fn by_columns<F: Float>(
    w: &ArrayView2<'_, F>,
    a: &ArrayView2<'_, F>,
    out: &mut ArrayViewMut2<'_, F>,
) -> bool {
    let (n, k) = w.dim();
    let m = a.ncols();
    if m > ROWS_MAX_COLUMNS || !matvec::available::<F>() {
        return false;
    }
    let columns_ok = (k <= 1 || a.strides()[0] == 1) && (n <= 1 || out.strides()[0] == 1);
    if !columns_ok {
        return false;
    }
    let run = |out: &mut ArrayViewMut2<'_, F>, f: &dyn Fn(&[F], &mut [F]) -> bool| {
        for (col, mut o) in a.columns().into_iter().zip(out.columns_mut()) {
            let x = col.to_slice().expect("unit stride checked");
            let o = o.as_slice_mut().expect("unit stride checked");
            if !f(x, o) {
                return false;
            }
        }
        true
    };
    if let Some((ws, ldw)) = row_major(w) {
        return run(out, &|x, o| matvec::rows(n, k, ws, ldw, x, o));
    }
    match col_major(w) {
        Some((ws, ldw)) if m <= 3 => run(out, &|x, o| matvec::cols(n, k, ws, ldw, x, o)),
        _ => false,
    }
}

/// The data of a row-major view (unit column stride) and its row stride.
fn row_major<'a, F>(v: &ArrayView2<'a, F>) -> Option<(&'a [F], usize)> {
    col_major(&(*v).reversed_axes())
}

/// The data of a column-major view (unit row stride) and its column stride.
fn col_major<'a, F>(v: &ArrayView2<'a, F>) -> Option<(&'a [F], usize)> {
    let (n, m) = v.dim();
    let s = v.strides();
    if n == 0 || m == 0 || (s[0] != 1 && n > 1) || (m > 1 && s[1] < n as isize) {
        return None;
    }
    // ndarray reports stride 0 for an axis of length 1; one column needs no stride.
    let ld = if m == 1 { n } else { s[1] as usize };
    let len = (m - 1) * ld + n;
    // SAFETY: the view addresses elements at i + j·ld (i < n, j < m) from its first
    // element, inside the allocation it borrows for 'a; with ld ≥ n ≥ 1 these offsets
    // lie in 0..len, so the slice covers only memory of the view's allocation. The
    // elements between columns (when ld > n) belong to the same allocation and are only
    // read through a shared borrow, like the view itself.
    Some((unsafe { std::slice::from_raw_parts(v.as_ptr(), len) }, ld))
}

/// The data of a mutable column-major view and its column stride.
fn col_major_mut<'a, F>(v: &'a mut ArrayViewMut2<'_, F>) -> Option<(&'a mut [F], usize)> {
    let (n, m) = v.dim();
    let s = v.strides();
    if n == 0 || m == 0 || (s[0] != 1 && n > 1) || (m > 1 && s[1] < n as isize) {
        return None;
    }
    let ld = if m == 1 { n } else { s[1] as usize };
    if ld != n {
        // The gaps between columns may belong to another live view (a multi_slice_mut
        // sibling): only hand out a slice when the columns are packed.
        return None;
    }
    let len = (m - 1) * ld + n;
    // SAFETY: with ld == n (or a single column) the view's elements are exactly the
    // contiguous range 0..len from its first element; the view is borrowed mutably for
    // the slice's lifetime, so nothing else can access them meanwhile.
    Some((
        unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr(), len) },
        ld,
    ))
}

/// A strided matrix operand: element (p, j) is `data[p·rs + j·cs]`.
#[derive(Clone, Copy)]
struct Operand<'a, F> {
    data: &'a [F],
    rs: usize,
    cs: usize,
}

/// Defines a function that runs the `#[inline(always)]` function `$imp` compiled for the
/// widest vector instructions this CPU has: AVX-512F, AVX2, or the x86-64 baseline (SSE2),
/// chosen at run time. Element-wise loops written as plain Rust over slices are then
/// vectorized with the wide instructions, while the crate is built for any x86-64 machine.
macro_rules! simd_fn {
    ($($(#[$meta:meta])* $vis:vis fn $name:ident<F: Float>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $imp:path;)*) => {$(
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<F: Float>($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx512<F: Float>($($arg: $ty),*) $(-> $ret)? {
                    $imp($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx2<F: Float>($($arg: $ty),*) $(-> $ret)? {
                    $imp($($arg),*)
                }
                match crate::isa::tier() {
                    // SAFETY: `tier` found AVX-512F, AVX2 and FMA on this CPU.
                    crate::isa::Tier::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: `tier` found AVX2 and FMA on this CPU.
                    crate::isa::Tier::Avx2 => return unsafe { avx2($($arg),*) },
                    crate::isa::Tier::Portable => {}
                }
            }
            $imp($($arg),*)
        }
    )*};
}
// For the deep modules, whose element-wise loops are dispatched the same way.
pub(crate) use simd_fn;

/// Defines `$avx512` and `$avx2`: the `#[inline(always)]` kernel `$imp` (generic over F, a
/// const FMA flag and the const tile sizes `$c`) compiled with FMA for AVX-512F and for AVX2.
/// Calling them is unsafe; the caller checks [`tier`] first.
macro_rules! isa_variants {
    ($imp:ident<$($c:ident),*>($($arg:ident: $ty:ty),* $(,)?) as $avx512:ident, $avx2:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        fn $avx512<F: Float, $(const $c: usize),*>($($arg: $ty),*) {
            $imp::<F, true, $($c),*>($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        fn $avx2<F: Float, $(const $c: usize),*>($($arg: $ty),*) {
            $imp::<F, true, $($c),*>($($arg),*)
        }
    };
}

simd_fn! {
    /// [`input_bias_tanh`](crate::elementwise::input_bias_tanh), vectorized for this CPU.
    pub(crate) fn simd_input_bias_tanh<F: Float>(a: &mut [F], w_x: Option<&[F]>, b_a: &[F])
        = crate::elementwise::input_bias_tanh;
    /// [`shift_logits`](crate::elementwise::shift_logits), vectorized for this CPU.
    pub(crate) fn simd_shift_logits<F: Float>(z: &mut [F], b_y: &[F], target: Option<TokenId>)
        -> Option<f64> = crate::elementwise::shift_logits;
    /// [`exp_in_place`](crate::elementwise::exp_in_place), vectorized for this CPU.
    pub(crate) fn simd_exp_in_place<F: Float>(z: &mut [F]) = crate::elementwise::exp_in_place;
    /// [`normalize`](crate::elementwise::normalize), vectorized for this CPU.
    pub(crate) fn simd_normalize<F: Float>(e: &mut [F]) -> f64 = crate::elementwise::normalize;
    /// [`through_tanh`](crate::elementwise::through_tanh), vectorized for this CPU.
    pub(crate) fn simd_through_tanh<F: Float>(da: &mut [F], da_raw: &mut [F], da_next: &[F], a: &[F])
        = crate::elementwise::through_tanh;
    /// [`add_slice`](crate::elementwise::add_slice), vectorized for this CPU.
    pub(crate) fn simd_add<F: Float>(dst: &mut [F], src: &[F]) = crate::elementwise::add_slice;
    /// [`sum_of_squares_slice`](crate::elementwise::sum_of_squares_slice), vectorized for this CPU.
    pub(crate) fn simd_sum_of_squares<F: Float>(s: &[F]) -> f64
        = crate::elementwise::sum_of_squares_slice;
    /// [`clamp_with_norm`](crate::elementwise::clamp_with_norm), vectorized for this CPU.
    pub(crate) fn simd_clamp_with_norm<F: Float>(s: &mut [F], c: F) -> f64
        = crate::elementwise::clamp_with_norm;
    /// [`clip_value_sgd`](crate::elementwise::clip_value_sgd), vectorized for this CPU.
    pub(crate) fn simd_clip_value_sgd<F: Float>(p: &mut [F], g: &[F], c: F, lr: F) -> f64
        = crate::elementwise::clip_value_sgd;
    /// [`scale`](crate::elementwise::scale), vectorized for this CPU.
    pub(crate) fn simd_scale<F: Float>(s: &mut [F], by: F) = crate::elementwise::scale;
    /// [`sgd_slice`](crate::elementwise::sgd_slice), vectorized for this CPU.
    pub(crate) fn simd_sgd<F: Float>(p: &mut [F], g: &[F], lr: F) -> bool = crate::elementwise::sgd_slice;
    /// [`adagrad_slice`](crate::elementwise::adagrad_slice), vectorized for this CPU.
    pub(crate) fn simd_adagrad<F: Float>(p: &mut [F], g: &[F], h: &mut [F], lr: F, eps: F) -> bool
        = crate::elementwise::adagrad_slice;
    /// [`adam_slice`](crate::elementwise::adam_slice), vectorized for this CPU.
    pub(crate) fn simd_adam<F: Float>(p: &mut [F], g: &[F], m: &mut [F], v: &mut [F], h: AdamStep<F>) -> bool
        = crate::elementwise::adam_slice;
}

// ANCHOR: dispatch
/// `out = w · a` with w (n, k) column-major (column stride `ldw`), out (n, m) column-major
/// (column stride `ldo`), choosing the kernel for the CPU.
#[allow(clippy::too_many_arguments)]
fn gemm_cm<F: Float>(
    n: usize,
    k: usize,
    m: usize,
    w: &[F],
    ldw: usize,
    a: Operand<'_, F>,
    out: &mut [F],
    ldo: usize,
) {
    let f32 = std::mem::size_of::<F>() == 4;
    #[cfg(target_arch = "x86_64")]
    if tier() == Tier::Avx512 && TypeId::of::<F>() == TypeId::of::<f64>() && (1..=56).contains(&n) {
        // Short columns in f64: every column goes to the whole-column kernel, each entry
        // one chain of multiply-adds over p in order (the order the fused update of
        // `crate::batch1` repeats, so that both give the same bits).
        assert!(
            k == 0 || (w.len() >= (k - 1) * ldw + n && ldw >= n),
            "w covers n × k"
        );
        assert!(m == 0 || out.len() >= (m - 1) * ldo + n);
        if m > 0 {
            // SAFETY: AVX-512F is here (`tier`); F is f64 (same TypeId); w and out are
            // covered (asserted above) and `a.data` holds the offsets p·rs + j·cs for
            // p < k and j < m by its construction in `matmul_serial`.
            unsafe {
                crate::tiles512::short_f64(
                    n,
                    k,
                    m,
                    w.as_ptr().cast(),
                    ldw,
                    a.data.as_ptr().cast(),
                    a.rs,
                    a.cs,
                    out.as_mut_ptr().cast(),
                    ldo,
                );
            }
        }
        return;
    }
    match tier() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `tier` found AVX-512F, AVX2 and FMA on this CPU.
        Tier::Avx512 => unsafe {
            if f32 {
                gemm_avx512::<F, 32, 8, 64>(n, k, m, w, ldw, a, out, ldo)
            } else {
                gemm_avx512::<F, 24, 8, 48>(n, k, m, w, ldw, a, out, ldo)
            }
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `tier` found AVX2 and FMA on this CPU.
        Tier::Avx2 => unsafe {
            if f32 {
                gemm_avx2::<F, 24, 4, 32>(n, k, m, w, ldw, a, out, ldo)
            } else {
                gemm_avx2::<F, 12, 4, 16>(n, k, m, w, ldw, a, out, ldo)
            }
        },
        _ => {
            if f32 {
                gemm_blocked::<F, false, 8, 4, 16>(n, k, m, w, ldw, a, out, ldo)
            } else {
                gemm_blocked::<F, false, 4, 4, 8>(n, k, m, w, ldw, a, out, ldo)
            }
        }
    }
}
// ANCHOR_END: dispatch

// `gemm_blocked` and `gemm_packed` compiled for AVX-512 and for AVX2 (FMA on in both).
isa_variants!(gemm_blocked<MR, NR, MR1>(
    n: usize, k: usize, m: usize, w: &[F], ldw: usize, a: Operand<'_, F>, out: &mut [F], ldo: usize,
) as gemm_avx512, gemm_avx2);
isa_variants!(gemm_packed<MR, NR>(
    n: usize, k: usize, m: usize, w: &[F], a: Operand<'_, F>, out: &mut [F], ldo: usize,
) as packed_avx512, packed_avx2);

/// The blocked product: tiles of MR rows × NR columns of `out` are accumulated in
/// registers over all of k, reading columns of `w` in place; then a tile of 4 columns;
/// leftover columns one at a time in taller tiles of MR1 rows, in independent chains that
/// hide the latency of a single column. Leftover rows go in tiles of 8 and a last 8-row
/// tile that overlaps the previous one (for a single column, inside the main tile's loop);
/// only fewer than 8 rows in all take the 4-row and one-by-one paths.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gemm_blocked<F: Float, const FMA: bool, const MR: usize, const NR: usize, const MR1: usize>(
    n: usize,
    k: usize,
    m: usize,
    w: &[F],
    ldw: usize,
    a: Operand<'_, F>,
    out: &mut [F],
    ldo: usize,
) {
    let mut j = 0;
    while j + NR <= m {
        let mut i = 0;
        while i + MR <= n {
            tile::<F, FMA, MR, NR>(k, w, ldw, i, a, j, out, ldo);
            i += MR;
        }
        short_rows::<F, FMA, NR>(n, k, w, ldw, i, a, j, out, ldo);
        j += NR;
    }
    if NR > 4 && j + 4 <= m {
        // Four leftover columns together: each tile row of w is loaded once for all four.
        let mut i = 0;
        while i + MR <= n {
            tile::<F, FMA, MR, 4>(k, w, ldw, i, a, j, out, ldo);
            i += MR;
        }
        short_rows::<F, FMA, 4>(n, k, w, ldw, i, a, j, out, ldo);
        j += 4;
    }
    while j < m {
        // One column: each tile splits the sum over p into independent chains, so that
        // the multiply-adds do not wait on each other's latency.
        let mut i = 0;
        while i + MR1 <= n {
            let rest = n - i - MR1;
            if rest > 0 && rest <= 8 {
                // The last few rows ride along in the same loop, as an 8-row block that
                // overlaps this tile (n = 50: rows 0..48 and 42..50).
                tile_col::<F, FMA, MR1, 8, 2>(k, w, ldw, i, n - 8, a, j, out, ldo);
                i = n;
            } else {
                tile_col::<F, FMA, MR1, 0, 2>(k, w, ldw, i, 0, a, j, out, ldo);
                i += MR1;
            }
        }
        while i + MR <= n {
            tile_col::<F, FMA, MR, 0, 2>(k, w, ldw, i, 0, a, j, out, ldo);
            i += MR;
        }
        while i + 8 <= n {
            tile_col::<F, FMA, 8, 0, 4>(k, w, ldw, i, 0, a, j, out, ldo);
            i += 8;
        }
        if i < n && n >= 8 {
            // The last rows in one more tile that overlaps the previous one: the rows
            // both compute are written twice, each time with a complete sum.
            tile_col::<F, FMA, 8, 0, 4>(k, w, ldw, n - 8, 0, a, j, out, ldo);
        } else {
            short_rows::<F, FMA, 1>(n, k, w, ldw, i, a, j, out, ldo);
        }
        j += 1;
    }
}

/// Rows i.. of n (fewer than a full tile) for columns j..j+NB.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn short_rows<F: Float, const FMA: bool, const NB: usize>(
    n: usize,
    k: usize,
    w: &[F],
    ldw: usize,
    mut i: usize,
    a: Operand<'_, F>,
    j: usize,
    out: &mut [F],
    ldo: usize,
) {
    while i + 8 <= n {
        tile::<F, FMA, 8, NB>(k, w, ldw, i, a, j, out, ldo);
        i += 8;
    }
    if i < n && n >= 8 {
        // An overlapping tile for the last rows, as in `gemm_blocked`.
        tile::<F, FMA, 8, NB>(k, w, ldw, n - 8, a, j, out, ldo);
        return;
    }
    if i + 4 <= n {
        tile::<F, FMA, 4, NB>(k, w, ldw, i, a, j, out, ldo);
        i += 4;
    }
    tail_rows::<F, FMA, NB>(n, k, w, ldw, i, a, j, out, ldo);
}

#[inline(always)]
fn madd<F: Float, const FMA: bool>(w: F, b: F, acc: F) -> F {
    if FMA { w.mul_add(b, acc) } else { w * b + acc }
}

/// out[i..i+MR, j..j+NB] = w[i..i+MR, :] · a[:, j..j+NB].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile<F: Float, const FMA: bool, const MR: usize, const NB: usize>(
    k: usize,
    w: &[F],
    ldw: usize,
    i: usize,
    a: Operand<'_, F>,
    j: usize,
    out: &mut [F],
    ldo: usize,
) {
    let acc = tile_sums::<F, FMA, MR, NB>(k, w, ldw, i, a, j);
    for (jj, acc_j) in acc.iter().enumerate() {
        out[(j + jj) * ldo + i..(j + jj) * ldo + i + MR].copy_from_slice(acc_j);
    }
}

/// The MR × NB sums of a tile, w[i..i+MR, :] · a[:, j..j+NB], accumulated in registers:
/// for each p, the MR entries of column p of w times each of the NB broadcast a[p, j].
#[inline(always)]
fn tile_sums<F: Float, const FMA: bool, const MR: usize, const NB: usize>(
    k: usize,
    w: &[F],
    ldw: usize,
    i: usize,
    a: Operand<'_, F>,
    j: usize,
) -> [[F; MR]; NB] {
    let mut acc = [[F::zero(); MR]; NB];
    if k == 0 || NB == 0 {
        return acc;
    }
    // The largest index of `a` the loop reads, a[(j + jj)·cs + p·rs] for jj < NB and
    // p < k, checked here once instead of at every read: the NB checks per p cost as
    // many instructions as the multiply-adds at f32 (config B through the AVX2 tiles:
    // 37k -> 41k chars/s without them).
    let a_last = (j + NB - 1)
        .checked_mul(a.cs)
        .zip((k - 1).checked_mul(a.rs))
        .and_then(|(x, y)| x.checked_add(y));
    assert!(
        a_last.is_some_and(|l| l < a.data.len()),
        "tile inside its operand"
    );
    let a_ptr = a.data.as_ptr();
    for p in 0..k {
        // Checked: one check per p is cheap, and it keeps the compiler from vectorizing
        // across p, which spills the tile.
        let wp: &[F; MR] = w[p * ldw + i..p * ldw + i + MR]
            .try_into()
            .expect("MR elements");
        for (jj, acc_j) in acc.iter_mut().enumerate() {
            // SAFETY: jj < NB and p < k, so the index is at most a_last < a.data.len().
            let b = unsafe { *a_ptr.add((j + jj) * a.cs + p * a.rs) };
            for (acc_ij, &w_ip) in acc_j.iter_mut().zip(wp) {
                *acc_ij = madd::<F, FMA>(w_ip, b, *acc_ij);
            }
        }
    }
    acc
}

/// out[i..i+MR, j] = w[i..i+MR, :] · a[:, j], and the same for the MR2 rows from i2 (none
/// when MR2 is 0), in CH independent chains of multiply-adds (p = c, c + CH, c + 2·CH, ...
/// for chain c) added together at the end.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile_col<F: Float, const FMA: bool, const MR: usize, const MR2: usize, const CH: usize>(
    k: usize,
    w: &[F],
    ldw: usize,
    i: usize,
    i2: usize,
    a: Operand<'_, F>,
    j: usize,
    out: &mut [F],
    ldo: usize,
) {
    let mut acc = [[F::zero(); MR]; CH];
    let mut acc2 = [[F::zero(); MR2]; CH];
    let a_j = &a.data[j * a.cs..];
    let mut p = 0;
    while p + CH <= k {
        for c in 0..CH {
            let b = a_j[(p + c) * a.rs];
            axpy_col::<F, FMA, MR>(&mut acc[c], w, (p + c) * ldw + i, b);
            axpy_col::<F, FMA, MR2>(&mut acc2[c], w, (p + c) * ldw + i2, b);
        }
        p += CH;
    }
    for c in 0..k - p {
        let b = a_j[(p + c) * a.rs];
        axpy_col::<F, FMA, MR>(&mut acc[c], w, (p + c) * ldw + i, b);
        axpy_col::<F, FMA, MR2>(&mut acc2[c], w, (p + c) * ldw + i2, b);
    }
    let (sum, rest) = acc.split_at_mut(1);
    for chain in rest.iter() {
        for (s, &v) in sum[0].iter_mut().zip(chain) {
            *s += v;
        }
    }
    let (sum2, rest2) = acc2.split_at_mut(1);
    for chain in rest2.iter() {
        for (s, &v) in sum2[0].iter_mut().zip(chain) {
            *s += v;
        }
    }
    out[j * ldo + i..j * ldo + i + MR].copy_from_slice(&acc[0]);
    out[j * ldo + i2..j * ldo + i2 + MR2].copy_from_slice(&acc2[0]);
}

/// acc ← acc + b · w[at..at+MR] (a function, not a closure, so that it is always inlined
/// into the kernel compiled for the CPU's features).
#[inline(always)]
fn axpy_col<F: Float, const FMA: bool, const MR: usize>(
    acc: &mut [F; MR],
    w: &[F],
    at: usize,
    b: F,
) {
    let col: &[F; MR] = w[at..at + MR].try_into().expect("MR elements");
    for (acc_r, &w_r) in acc.iter_mut().zip(col) {
        *acc_r = madd::<F, FMA>(w_r, b, *acc_r);
    }
}

/// Rows i.. of n (fewer than a tile), for columns j..j+NB.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tail_rows<F: Float, const FMA: bool, const NB: usize>(
    n: usize,
    k: usize,
    w: &[F],
    ldw: usize,
    i0: usize,
    a: Operand<'_, F>,
    j: usize,
    out: &mut [F],
    ldo: usize,
) {
    for i in i0..n {
        for jj in 0..NB {
            let mut s = F::zero();
            let a_j = &a.data[(j + jj) * a.cs..];
            for p in 0..k {
                s = madd::<F, FMA>(w[p * ldw + i], a_j[p * a.rs], s);
            }
            out[(j + jj) * ldo + i] = s;
        }
    }
}

/// `dst = src` for a column-major `dst`. When `src` is row-major this is a transpose of
/// memory, done in 8 × 8 blocks: eight rows of `src` are read into a block, which is then
/// written out as eight columns of `dst` (no index arithmetic per element, and both sides
/// touch whole cache lines). Other layouts go through `ndarray`'s element-wise assignment.
pub fn assign_col_major<F: Float>(mut dst: ArrayViewMut2<'_, F>, src: ArrayView2<'_, F>) {
    debug_assert_eq!(dst.dim(), src.dim());
    let (n, m) = src.dim();
    let src_rows = src.as_slice().filter(|_| src.is_standard_layout());
    let dst_cols = match col_major_mut(&mut dst) {
        Some((d, ld)) if ld == n => Some(d),
        _ => None,
    };
    let (Some(s), Some(d)) = (src_rows, dst_cols) else {
        dst.assign(&src);
        return;
    };
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<F>() == std::any::TypeId::of::<f64>() && tier() != Tier::Portable {
        // SAFETY: F is f64 (same TypeId), so both slices hold f64 values with f64's
        // layout; the new slices cover exactly the same memory and borrows.
        let (s, d) = unsafe {
            (
                std::slice::from_raw_parts(s.as_ptr().cast::<f64>(), s.len()),
                std::slice::from_raw_parts_mut(d.as_mut_ptr().cast::<f64>(), d.len()),
            )
        };
        // SAFETY: `tier` found at least AVX2 (and so AVX) on this CPU.
        unsafe { transpose_f64_avx(s, d, n, m) };
        return;
    }
    transpose_blocks(s, d, n, m);
}

/// `d[j·n + i] = s[i·m + j]`: a row-major (n, m) matrix into column-major, in 8 × 8 blocks.
fn transpose_blocks<F: Float>(s: &[F], d: &mut [F], n: usize, m: usize) {
    const B: usize = 8;
    let (n_full, m_full) = (n - n % B, m - m % B);
    for i0 in (0..n_full).step_by(B) {
        for j0 in (0..m_full).step_by(B) {
            let mut block = [[F::zero(); B]; B];
            for (r, row) in block.iter_mut().enumerate() {
                row.copy_from_slice(&s[(i0 + r) * m + j0..(i0 + r) * m + j0 + B]);
            }
            for c in 0..B {
                let col = &mut d[(j0 + c) * n + i0..(j0 + c) * n + i0 + B];
                for (r, v) in col.iter_mut().enumerate() {
                    *v = block[r][c];
                }
            }
        }
    }
    transpose_edges(s, d, n, m, n_full, m_full);
}

/// The entries [`transpose_blocks`] leaves: columns m_full.. of the first n_full rows, and
/// all of the rows after them.
fn transpose_edges<F: Copy>(
    s: &[F],
    d: &mut [F],
    n: usize,
    m: usize,
    n_full: usize,
    m_full: usize,
) {
    for i in 0..n {
        let j_from = if i < n_full { m_full } else { 0 };
        for j in j_from..m {
            d[j * n + i] = s[i * m + j];
        }
    }
}

/// [`transpose_blocks`] for f64 in 4 × 4 blocks held in AVX registers: four rows are
/// loaded, interleaved pairwise (unpack), and their 128-bit halves exchanged (permute),
/// which leaves the four columns of the block, each stored with one instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn transpose_f64_avx(s: &[f64], d: &mut [f64], n: usize, m: usize) {
    use std::arch::x86_64::{
        _mm256_loadu_pd, _mm256_permute2f128_pd, _mm256_storeu_pd, _mm256_unpackhi_pd,
        _mm256_unpacklo_pd,
    };
    const B: usize = 4;
    let (n_full, m_full) = (n - n % B, m - m % B);
    for i0 in (0..n_full).step_by(B) {
        for j0 in (0..m_full).step_by(B) {
            let row = |r: usize| &s[(i0 + r) * m + j0..(i0 + r) * m + j0 + B];
            // SAFETY: each slice has exactly four f64, which is what the unaligned load
            // reads.
            let [r0, r1, r2, r3] =
                [0, 1, 2, 3].map(|r| unsafe { _mm256_loadu_pd(row(r).as_ptr()) });
            let (t0, t1) = (_mm256_unpacklo_pd(r0, r1), _mm256_unpackhi_pd(r0, r1));
            let (t2, t3) = (_mm256_unpacklo_pd(r2, r3), _mm256_unpackhi_pd(r2, r3));
            let cols = [
                _mm256_permute2f128_pd::<0x20>(t0, t2),
                _mm256_permute2f128_pd::<0x20>(t1, t3),
                _mm256_permute2f128_pd::<0x31>(t0, t2),
                _mm256_permute2f128_pd::<0x31>(t1, t3),
            ];
            for (c, col) in cols.into_iter().enumerate() {
                let out = &mut d[(j0 + c) * n + i0..(j0 + c) * n + i0 + B];
                // SAFETY: `out` has exactly four f64, which is what the store writes.
                unsafe { _mm256_storeu_pd(out.as_mut_ptr(), col) };
            }
        }
    }
    transpose_edges(s, d, n, m, n_full, m_full);
}

/// A matrix stored for the kernel's tiles: panels of MR rows (the tile height this CPU's
/// kernel uses), each holding its MR × k entries column after column, so that a tile reads
/// its w in one sequential stream instead of k strided pieces. The last panel is padded
/// with zero rows. The per-step products pack W_aa (forward) and W_aaᵀ (backward) once
/// per sequence and read them at every step.
#[derive(Clone, Debug, Default)]
pub struct Packed<F> {
    n: usize,
    k: usize,
    mr: usize,
    data: Vec<F>,
}

impl<F: Float> Packed<F> {
    /// Packs `w` (any layout), reusing the buffer when the shape is unchanged.
    pub fn pack(&mut self, w: ArrayView2<'_, F>) {
        self.pack_with(w, panel_rows::<F>());
    }

    /// [`Packed::pack`] with panels of `mr` rows.
    fn pack_with(&mut self, w: ArrayView2<'_, F>, mr: usize) {
        let (n, k) = w.dim();
        let len = n.div_ceil(mr) * mr * k;
        if self.data.len() != len {
            self.data = vec![F::zero(); len];
        }
        (self.n, self.k, self.mr) = (n, k, mr);
        if len == 0 {
            return;
        }
        for (q, panel) in self.data.chunks_exact_mut(mr * k).enumerate() {
            let rows = (n - q * mr).min(mr);
            let w_t = w.t();
            match (w.as_slice(), w_t.as_slice()) {
                // Row-major w: row r of the panel is a contiguous row of w.
                (Some(w), _) => {
                    for r in 0..rows {
                        let row = &w[(q * mr + r) * k..(q * mr + r + 1) * k];
                        for (p, &v) in row.iter().enumerate() {
                            panel[p * mr + r] = v;
                        }
                    }
                }
                // Column-major w: column p of the panel is a contiguous piece of column p.
                (None, Some(w_cols)) => {
                    for p in 0..k {
                        panel[p * mr..p * mr + rows]
                            .copy_from_slice(&w_cols[p * n + q * mr..p * n + q * mr + rows]);
                    }
                }
                _ => {
                    for p in 0..k {
                        for r in 0..rows {
                            panel[p * mr + r] = w[[q * mr + r, p]];
                        }
                    }
                }
            }
            for p in 0..k {
                panel[p * mr + rows..(p + 1) * mr].fill(F::zero());
            }
        }
    }

    /// (rows, columns) of the packed matrix.
    pub fn dim(&self) -> (usize, usize) {
        (self.n, self.k)
    }
}

/// The tile height of the kernel this CPU runs, for element type F.
fn panel_rows<F>() -> usize {
    let f32 = std::mem::size_of::<F>() == 4;
    match tier() {
        // Three vectors per column of a tile: measured on 512 × 512 × 32, f32 48 × 8
        // tiles ran at 124 GFLOP/s against 112 for 32 × 8 (f64 24 × 8: 56 against 53).
        Tier::Avx512 => {
            if f32 {
                48
            } else {
                24
            }
        }
        Tier::Avx2 => {
            if f32 {
                24
            } else {
                12
            }
        }
        Tier::Portable => {
            if f32 {
                8
            } else {
                4
            }
        }
    }
}

/// `out = w · a` with `w` packed: the per-step products. Runs on the calling thread and
/// allocates nothing.
///
/// # Panics
///
/// If `out` is not column-major with packed columns (the crate's buffers always are).
pub(crate) fn matmul_packed<F: Float>(
    w: &Packed<F>,
    a: ArrayView2<'_, F>,
    mut out: ArrayViewMut2<'_, F>,
) {
    let (n, k) = w.dim();
    let m = a.ncols();
    // A real check (once per product): the kernels below read `a` and `out` through
    // pointers and slices sized from these dimensions.
    assert_eq!((k, (n, m)), (a.nrows(), out.dim()), "product shapes");
    if n == 0 || m == 0 {
        return;
    }
    if k == 0 {
        out.fill(F::zero());
        return;
    }
    let (o, ldo) = col_major_mut(&mut out).expect("a column-major product buffer");
    let (sa0, sa1) = (a.strides()[0], a.strides()[1]);
    assert!(sa0 >= 0 && sa1 >= 0, "non-negative strides");
    let (rsa, csa) = (sa0 as usize, sa1 as usize);
    let len = if k == 0 {
        0
    } else {
        (k - 1) * rsa + (m - 1) * csa + 1
    };
    // SAFETY: as in `matmul_serial`: `a` has k × m elements at offsets p·rsa + j·csa
    // (p < k, j < m) from its first element, inside the allocation it borrows, and these
    // offsets lie in 0..len.
    let a_s = unsafe { std::slice::from_raw_parts(a.as_ptr(), len) };
    let a = Operand {
        data: a_s,
        rs: rsa,
        cs: csa,
    };
    let (d, mr) = (&w.data[..], w.mr);
    debug_assert_eq!(mr, panel_rows::<F>(), "packed on this CPU");
    #[cfg(target_arch = "x86_64")]
    if tier() == Tier::Avx512 && mr * std::mem::size_of::<F>() == 3 * 64 {
        assert!(d.len() == n.div_ceil(mr) * mr * k && o.len() >= (m - 1) * ldo + n);
        let (w_p, a_p, o_p) = (d.as_ptr(), a.data.as_ptr(), o.as_mut_ptr());
        let f32 = TypeId::of::<F>() == TypeId::of::<f32>();
        let f64 = TypeId::of::<F>() == TypeId::of::<f64>();
        // SAFETY: AVX-512F is here (`tier`); F is the kernel's type (same TypeId); `d`
        // holds the n.div_ceil(mr) panels of mr × k values and `o` the column-major
        // n × m block with column stride ldo (both asserted above), `a.data` the offsets
        // p·rsa + j·csa (p < k, j < m) by its construction.
        unsafe {
            if f32 {
                let (w_p, a_p, o_p) = (w_p.cast(), a_p.cast(), o_p.cast());
                crate::tiles512::packed_f32(n, k, m, w_p, a_p, rsa, csa, o_p, ldo);
                return;
            }
            if f64 {
                let (w_p, a_p, o_p) = (w_p.cast(), a_p.cast(), o_p.cast());
                crate::tiles512::packed_f64(n, k, m, w_p, a_p, rsa, csa, o_p, ldo);
                return;
            }
        }
    }
    match (tier(), mr) {
        // On AVX-512, `f32` and `f64` returned above; these two arms serve any other
        // element type a caller implements `Float` for.
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `tier` found AVX-512F, AVX2 and FMA on this CPU.
        (Tier::Avx512, 48) => unsafe { packed_avx512::<F, 48, 8>(n, k, m, d, a, o, ldo) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        (Tier::Avx512, _) => unsafe { packed_avx512::<F, 24, 8>(n, k, m, d, a, o, ldo) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `tier` found AVX2 and FMA on this CPU.
        (Tier::Avx2, 24) => unsafe { packed_avx2::<F, 24, 4>(n, k, m, d, a, o, ldo) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        (Tier::Avx2, _) => unsafe { packed_avx2::<F, 12, 4>(n, k, m, d, a, o, ldo) },
        (_, 8) => gemm_packed::<F, false, 8, 4>(n, k, m, d, a, o, ldo),
        _ => gemm_packed::<F, false, 4, 4>(n, k, m, d, a, o, ldo),
    }
}

/// The product with packed panels: for each group of NR columns (then 4, then single
/// columns), one tile per panel; the last panel stores only its real rows.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gemm_packed<F: Float, const FMA: bool, const MR: usize, const NR: usize>(
    n: usize,
    k: usize,
    m: usize,
    w: &[F],
    a: Operand<'_, F>,
    out: &mut [F],
    ldo: usize,
) {
    let mut j = 0;
    while j + NR <= m {
        packed_tiles::<F, FMA, MR, NR>(n, k, w, a, j, out, ldo);
        j += NR;
    }
    while NR > 4 && j + 4 <= m {
        packed_tiles::<F, FMA, MR, 4>(n, k, w, a, j, out, ldo);
        j += 4;
    }
    while j < m {
        packed_tiles::<F, FMA, MR, 1>(n, k, w, a, j, out, ldo);
        j += 1;
    }
}

/// Columns j..j+NB of `out`, one MR-row tile per panel.
#[inline(always)]
fn packed_tiles<F: Float, const FMA: bool, const MR: usize, const NB: usize>(
    n: usize,
    k: usize,
    w: &[F],
    a: Operand<'_, F>,
    j: usize,
    out: &mut [F],
    ldo: usize,
) {
    for (q, panel) in w.chunks_exact(MR * k).enumerate() {
        let i = q * MR;
        let acc = tile_sums::<F, FMA, MR, NB>(k, panel, MR, 0, a, j);
        let rows = (n - i).min(MR);
        for (jj, acc_j) in acc.iter().enumerate() {
            let o = (j + jj) * ldo + i;
            if rows == MR {
                out[o..o + MR].copy_from_slice(acc_j);
            } else {
                out[o..o + rows].copy_from_slice(&acc_j[..rows]);
            }
        }
    }
}

/// W_aa (or W_aaᵀ) as the per-step products read it.
#[derive(Clone, Copy)]
pub(crate) enum StepWeights<'a, F> {
    /// Column-major, read in place: for one to three columns, where the single-column
    /// kernel's independent chains matter more than streaming.
    InPlace(ArrayView2<'a, F>),
    /// Packed into panels, for batches of [`PACK_MIN_COLUMNS`] columns or more.
    Packed(&'a Packed<F>),
}

/// Batches of at least this many columns read a packed W_aa in the recurrence.
pub(crate) const PACK_MIN_COLUMNS: usize = 4;

impl<F: Float> StepWeights<'_, F> {
    /// `out = w · a` on the calling thread, allocating nothing.
    pub(crate) fn product(&self, a: ArrayView2<'_, F>, out: ArrayViewMut2<'_, F>) {
        match self {
            StepWeights::InPlace(w) => matmul_here(*w, a, out),
            StepWeights::Packed(w) => matmul_packed(w, a, out),
        }
    }
}

/// `out = w · a` through the general GEMM, split by output columns over the current rayon
/// pool when large: the product for the big, all-steps matrices (output layer, dW_aa).
pub fn gemm<F: Float>(w: ArrayView2<'_, F>, a: ArrayView2<'_, F>, out: ArrayViewMut2<'_, F>) {
    split_columns(w, a, out, parts(&w, &a));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, ShapeBuilder};

    fn check(n: usize, k: usize, m: usize) {
        let w = Array2::from_shape_fn((n, k), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
        let wc = Array2::from_shape_fn((n, k).f(), |(i, j)| w[[i, j]]);
        let a = Array2::from_shape_fn((k, m).f(), |(i, j)| ((i + 2 * j) % 5) as f64 * 0.5);
        let d = Array2::from_shape_fn((n, m).f(), |(i, j)| ((3 * i + j) % 7) as f64 - 3.0);
        for w in [&w, &wc] {
            let mut out = Array2::zeros((n, m).f());
            matmul_here(w.view(), a.view(), out.view_mut());
            assert_eq!(out, w.dot(&a), "w a, {n}x{k}x{m}");
            let mut out = Array2::zeros((n, m).f());
            matmul_here(w.view(), a.t().to_owned().t(), out.view_mut());
            assert_eq!(out, w.dot(&a), "w a (a row-major), {n}x{k}x{m}");
            let mut out_t = Array2::zeros((k, m).f());
            matmul_here(w.t(), d.view(), out_t.view_mut());
            assert_eq!(out_t, w.t().dot(&d), "wᵀ d, {n}x{k}x{m}");
            let mut out = Array2::zeros((n, m).f());
            gemm(w.view(), a.view(), out.view_mut());
            assert_eq!(out, w.dot(&a), "gemm w a, {n}x{k}x{m}");
        }
        // f32 takes other tile sizes.
        let w32 = wc.mapv(|v| v as f32);
        let a32 = a.mapv(|v| v as f32);
        let mut out = Array2::<f32>::zeros((n, m).f());
        matmul_here(w32.view(), a32.view(), out.view_mut());
        assert_eq!(out, w32.dot(&a32), "f32 w a, {n}x{k}x{m}");
    }

    #[test]
    fn small_and_large_batches_match_ndarray() {
        // Integer-valued entries: every path is exact, so equality is exact.
        for (n, k, m) in [
            (1, 1, 1),
            (5, 3, 1),
            (50, 50, 1),
            (50, 50, 3),
            (13, 17, 4),
            (9, 9, 5),
            (64, 33, 32),
            (27, 50, 12),
            (50, 12, 27),
            (100, 70, 33),
            (70, 9, 1),
            (56, 40, 2),
            (0, 3, 2),
            (3, 0, 2),
        ] {
            check(n, k, m);
        }
    }

    #[test]
    fn packed_products_match_ndarray() {
        // Rows that fill panels exactly and rows that leave a partial last panel; column
        // counts that use every tile width; w in both layouts.
        for (n, k, m) in [
            (64, 33, 32),
            (50, 50, 13),
            (27, 5, 4),
            (7, 9, 1),
            (100, 70, 37),
            (0, 3, 4),
            (3, 0, 4),
        ] {
            let w = Array2::from_shape_fn((n, k), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
            let a = Array2::from_shape_fn((k, m).f(), |(i, j)| ((i + 2 * j) % 5) as f64 * 0.5);
            // a column-major (the crate's buffers) and row-major (strides swapped).
            let a_rows = a.as_standard_layout().into_owned();
            for (w, a) in [(w.clone(), &a), (w.t().to_owned().t().to_owned(), &a_rows)] {
                let mut packed = Packed::default();
                packed.pack(w.view());
                let mut out = Array2::zeros((n, m).f());
                StepWeights::Packed(&packed).product(a.view(), out.view_mut());
                assert_eq!(out, w.dot(a), "f64 {n}x{k}x{m}");
                let (w32, a32) = (w.mapv(|v| v as f32), a.mapv(|v| v as f32));
                let mut packed = Packed::default();
                packed.pack(w32.view());
                let mut out = Array2::<f32>::zeros((n, m).f());
                StepWeights::Packed(&packed).product(a32.view(), out.view_mut());
                assert_eq!(out, w32.dot(&a32), "f32 {n}x{k}x{m}");
            }
        }
    }

    #[test]
    fn packed_kernel_gives_the_portable_tiles_bits() {
        // Non-integer values, so that a different order of the sums would show: the
        // kernel this CPU runs for packed panels (AVX-512 intrinsics where available)
        // against the portable tiles with fused multiply-adds, bit for bit.
        let (n, k, m) = (100, 77, 13);
        let w = Array2::from_shape_fn((n, k), |(i, j)| {
            ((i * 37 + j * 11) % 101) as f64 / 7.3 - 6.0
        });
        let a = Array2::from_shape_fn((k, m).f(), |(i, j)| {
            ((i * 5 + j * 13) % 29) as f64 / 3.1 - 4.0
        });
        fn both<F: Float>(w: &Array2<F>, a: &Array2<F>) -> (Array2<F>, Array2<F>) {
            let (n, m) = (w.nrows(), a.ncols());
            let mut packed = Packed::default();
            packed.pack(w.view());
            let mut fast = Array2::zeros((n, m).f());
            matmul_packed(&packed, a.view(), fast.view_mut());
            let mut portable = Array2::zeros((n, m).f());
            let op = Operand {
                data: a.as_slice_memory_order().unwrap(),
                rs: 1,
                cs: a.nrows(),
            };
            let out = portable.as_slice_memory_order_mut().unwrap();
            match packed.mr {
                48 => gemm_packed::<F, true, 48, 8>(n, a.nrows(), m, &packed.data, op, out, n),
                24 => gemm_packed::<F, true, 24, 8>(n, a.nrows(), m, &packed.data, op, out, n),
                12 => gemm_packed::<F, true, 12, 4>(n, a.nrows(), m, &packed.data, op, out, n),
                // The portable tier's panels: no fused multiply-add there.
                8 => gemm_packed::<F, false, 8, 4>(n, a.nrows(), m, &packed.data, op, out, n),
                _ => gemm_packed::<F, false, 4, 4>(n, a.nrows(), m, &packed.data, op, out, n),
            }
            (fast, portable)
        }
        let (fast, portable) = both(&w, &a);
        assert_eq!(fast.mapv(f64::to_bits), portable.mapv(f64::to_bits));
        let (fast, portable) = both(&w.mapv(|v| v as f32), &a.mapv(|v| v as f32));
        assert_eq!(fast.mapv(f32::to_bits), portable.mapv(f32::to_bits));
    }

    #[test]
    fn short_column_kernel_gives_the_portable_tiles_bits() {
        // Short f64 columns (n ≤ 56) take the whole-column kernel on AVX-512: every entry
        // must come out as one chain of multiply-adds over p in order (the portable tiles
        // of 8 and 4 columns give the same), for every register count, partial last
        // register, column count (groups of 3, 2 and 1) and both layouts of `a`.
        let name = "kernels::short_column_kernel_gives_the_portable_tiles_bits";
        if !crate::isa::runs_at(crate::isa::Tier::Avx512, name) {
            return;
        }
        for n in [1, 5, 8, 9, 27, 50, 56] {
            for k in [0, 1, 12, 27] {
                for m in [1, 2, 3, 4, 7, 12, 13, 27, 50] {
                    let w = Array2::from_shape_fn((n, k).f(), |(i, p)| {
                        ((i * 37 + p * 11) % 101) as f64 / 7.3 - 6.0
                    });
                    let a = Array2::from_shape_fn((k, m).f(), |(p, j)| {
                        ((p * 5 + j * 13) % 29) as f64 / 3.1 - 4.0
                    });
                    let a_rows = a.as_standard_layout().into_owned();
                    for a in [a.view(), a_rows.view()] {
                        let (rs, cs) = (a.strides()[0] as usize, a.strides()[1] as usize);
                        let len = if k == 0 {
                            0
                        } else {
                            (k - 1) * rs + (m - 1) * cs + 1
                        };
                        let data = &a.as_slice_memory_order().unwrap()[..len];
                        let op = Operand { data, rs, cs };
                        let ws = w.as_slice_memory_order().unwrap();
                        // The dispatch the in-place products take (after `by_columns`).
                        let mut fast = Array2::<f64>::from_elem((n, m).f(), 2.0);
                        let out = fast.as_slice_memory_order_mut().unwrap();
                        gemm_cm(n, k, m, ws, n, op, out, n);
                        let chain = Array2::from_shape_fn((n, m), |(i, j)| {
                            (0..k).fold(0.0f64, |acc, p| w[[i, p]].mul_add(a[[p, j]], acc))
                        });
                        assert_eq!(
                            fast.mapv(f64::to_bits),
                            chain.mapv(f64::to_bits),
                            "{n}x{k}x{m}, a strides {rs} {cs}"
                        );
                        if m % 4 == 0 {
                            let mut portable = Array2::<f64>::from_elem((n, m).f(), 1.0);
                            let out = portable.as_slice_memory_order_mut().unwrap();
                            gemm_blocked::<f64, true, 24, 8, 48>(n, k, m, ws, n, op, out, n);
                            assert_eq!(fast, portable, "{n}x{k}x{m}, a strides {rs} {cs}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn assign_col_major_copies_every_entry() {
        for (n, m) in [(1, 1), (3, 5), (8, 8), (9, 17), (50, 50), (27, 50), (16, 3)] {
            let src = Array2::from_shape_fn((n, m), |(i, j)| (i * 100 + j) as f64);
            let mut dst = Array2::zeros((n, m).f());
            assign_col_major(dst.view_mut(), src.view());
            assert_eq!(dst, src, "{n}x{m} row-major source");
            // A source in another layout takes ndarray's path.
            let mut dst = Array2::zeros((n, m).f());
            assign_col_major(dst.view_mut(), src.t().to_owned().t());
            assert_eq!(dst, src, "{n}x{m} column-major source");
            // f32 takes the 8 × 8 block path (f64 the AVX one where the CPU has it).
            let src32 = src.mapv(|v| v as f32);
            let mut dst32 = Array2::zeros((n, m).f());
            assign_col_major(dst32.view_mut(), src32.view());
            assert_eq!(dst32, src32, "{n}x{m} f32");
            let mut dst = Array2::zeros((n, m).f());
            transpose_blocks(
                src.as_slice().unwrap(),
                dst.as_slice_memory_order_mut().unwrap(),
                n,
                m,
            );
            assert_eq!(dst, src, "{n}x{m} blocks");
        }
    }

    #[test]
    fn split_over_threads_matches() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| check(256, 256, 64));
    }
}
