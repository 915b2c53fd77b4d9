//! Two matrix-product kernels written with AVX-512 intrinsics: the per-step products with
//! a packed W (see [`Packed`](crate::kernels::Packed)), for `f32` and `f64`, and
//! [`short_f64`], the products of `f64` matrices with at most 56 rows (batch 1's all-steps
//! products in the backward pass).
//!
//! The portable tile in `kernels` leaves the vectorization to the compiler. For the
//! packed panels it does well only while each read of `a` is bounds-checked: the checks
//! cost as many instructions as the multiply-adds (at f32, 8 compares and branches for
//! 24 multiply-adds per step of the sum, some of them on an FMA port), and without them
//! the compiler merges the eight broadcasts of `a` into one gathered vector and spills
//! the tile. Here the tile is spelled out: three registers of W's column p, one
//! broadcast per column of `a`, 3 × NB multiply-adds, nothing else in the loop.
//!
//! The sums are the same as the portable kernel's, in the same order (one fused
//! multiply-add per p, from p = 0), so the results are the same bits.

#![allow(unsafe_code)]

use std::arch::x86_64::*;

/// Generates the product and its tile for one element type.
macro_rules! packed_kernel {
    (
        $product:ident, $tiles:ident, $t:ty, $mask:ty, $lanes:expr,
        $zero:ident, $set1:ident, $load:ident, $fmadd:ident, $store:ident, $mstore:ident
    ) => {
        /// `out = w · a` for `w` (n × k) packed in panels of 3 registers' worth of rows
        /// (`3 × lanes`), `a` (k × m) at `a[p·rs + j·cs]`, `out` (n × m) column-major
        /// with column stride `ldo`: columns in groups of 8, then 4, then one by one.
        ///
        /// # Safety
        ///
        /// The CPU has AVX-512F; `w` holds `n.div_ceil(3·lanes) · 3·lanes · k` values,
        /// `a` the indices `p·rs + j·cs` for p < k, j < m, and `out` the indices
        /// `j·ldo + i` for i < n, j < m.
        #[target_feature(enable = "avx512f")]
        #[allow(clippy::too_many_arguments)]
        pub(crate) unsafe fn $product(
            n: usize,
            k: usize,
            m: usize,
            w: *const $t,
            a: *const $t,
            rs: usize,
            cs: usize,
            out: *mut $t,
            ldo: usize,
        ) {
            // SAFETY: (all calls) the caller's contract, for the columns j..j+NB < m.
            unsafe {
                let mut j = 0;
                while j + 8 <= m {
                    $tiles::<8>(n, k, w, a.add(j * cs), rs, cs, out.add(j * ldo), ldo);
                    j += 8;
                }
                if j + 4 <= m {
                    $tiles::<4>(n, k, w, a.add(j * cs), rs, cs, out.add(j * ldo), ldo);
                    j += 4;
                }
                while j < m {
                    $tiles::<1>(n, k, w, a.add(j * cs), rs, cs, out.add(j * ldo), ldo);
                    j += 1;
                }
            }
        }

        /// Columns 0..NB of `a` and `out` (already offset to the group), one tile per
        /// panel; the last panel stores only its real rows.
        #[inline(always)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $tiles<const NB: usize>(
            n: usize,
            k: usize,
            w: *const $t,
            a: *const $t,
            rs: usize,
            cs: usize,
            out: *mut $t,
            ldo: usize,
        ) {
            const L: usize = $lanes;
            const MR: usize = 3 * L;
            // SAFETY: the product's contract; every offset below stays inside it.
            unsafe {
                for q in 0..n.div_ceil(MR) {
                    let panel = w.add(q * MR * k);
                    let mut acc = [[$zero(); 3]; NB];
                    for p in 0..k {
                        let wp = panel.add(p * MR);
                        let w0 = $load(wp);
                        let w1 = $load(wp.add(L));
                        let w2 = $load(wp.add(2 * L));
                        let ap = a.add(p * rs);
                        for (jj, acc_j) in acc.iter_mut().enumerate() {
                            let b = $set1(*ap.add(jj * cs));
                            acc_j[0] = $fmadd(w0, b, acc_j[0]);
                            acc_j[1] = $fmadd(w1, b, acc_j[1]);
                            acc_j[2] = $fmadd(w2, b, acc_j[2]);
                        }
                    }
                    let i = q * MR;
                    let rows = (n - i).min(MR);
                    for (jj, acc_j) in acc.iter().enumerate() {
                        let o = out.add(jj * ldo + i);
                        for (v, &sums) in acc_j.iter().enumerate() {
                            let first = v * L;
                            if first >= rows {
                                break;
                            }
                            let len = rows - first;
                            if len >= L {
                                $store(o.add(first), sums);
                            } else {
                                $mstore(o.add(first), ((1u32 << len) - 1) as $mask, sums);
                            }
                        }
                    }
                }
            }
        }
    };
}

packed_kernel!(
    packed_f32,
    tiles_f32,
    f32,
    __mmask16,
    16,
    _mm512_setzero_ps,
    _mm512_set1_ps,
    _mm512_loadu_ps,
    _mm512_fmadd_ps,
    _mm512_storeu_ps,
    _mm512_mask_storeu_ps
);

packed_kernel!(
    packed_f64,
    tiles_f64,
    f64,
    __mmask8,
    8,
    _mm512_setzero_pd,
    _mm512_set1_pd,
    _mm512_loadu_pd,
    _mm512_fmadd_pd,
    _mm512_storeu_pd,
    _mm512_mask_storeu_pd
);

/// `out = w · a` in `f64` for a short w (n ≤ 56 rows: at most seven registers a column),
/// column-major with column stride `ldw`, `a` (k × m) at `a[p·rs + j·cs]` and `out`
/// column-major with column stride `ldo`: a whole column of `out` in registers (the last
/// one masked), three columns at a time. The small all-steps products of batch 1 (n_a =
/// 50, K = 12 or 27) take this path. Each entry is the same chain of fused multiply-adds
/// from p = 0 as in the portable tiles, so the same bits.
///
/// # Safety
///
/// The CPU has AVX-512F; `w` holds the indices `p·ldw + i` for i < n, p < k, `a` the
/// indices `p·rs + j·cs` for p < k, j < m, and `out` the indices `j·ldo + i`.
///
/// # Panics
///
/// If n is not in 1..=56.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn short_f64(
    n: usize,
    k: usize,
    m: usize,
    w: *const f64,
    ldw: usize,
    a: *const f64,
    rs: usize,
    cs: usize,
    out: *mut f64,
    ldo: usize,
) {
    assert!((1..=56).contains(&n), "short columns have 1 to 56 rows");
    let s = Short {
        k,
        w,
        ldw,
        a,
        rs,
        cs,
        out,
        ldo,
        last: ((1u32 << (n - 8 * (n.div_ceil(8) - 1))) - 1) as __mmask8,
    };
    // SAFETY: (all calls) the caller's contract, and NV registers cover the n rows.
    unsafe {
        match n.div_ceil(8) {
            1 => short_cols::<1>(s, m),
            2 => short_cols::<2>(s, m),
            3 => short_cols::<3>(s, m),
            4 => short_cols::<4>(s, m),
            5 => short_cols::<5>(s, m),
            6 => short_cols::<6>(s, m),
            _ => short_cols::<7>(s, m),
        }
    }
}

/// The operands of [`short_f64`], and the mask of the rows in a column's last register.
#[derive(Clone, Copy)]
struct Short {
    k: usize,
    w: *const f64,
    ldw: usize,
    a: *const f64,
    rs: usize,
    cs: usize,
    out: *mut f64,
    ldo: usize,
    last: __mmask8,
}

/// [`short_f64`] with NV registers a column: groups of three columns, then two, then one.
#[inline(always)]
unsafe fn short_cols<const NV: usize>(s: Short, m: usize) {
    // SAFETY: the caller's contract, for the columns j..j+NB ≤ m.
    unsafe {
        let mut j = 0;
        while j + 3 <= m {
            short_tile::<NV, 3>(s, j);
            j += 3;
        }
        if j + 2 <= m {
            short_tile::<NV, 2>(s, j);
            j += 2;
        }
        if j < m {
            short_tile::<NV, 1>(s, j);
        }
    }
}

/// Columns j..j+NB of `out`: for each p, the NV registers of W's column p, loaded once,
/// times each of NB broadcast a[p, j + jj].
#[inline(always)]
unsafe fn short_tile<const NV: usize, const NB: usize>(s: Short, j: usize) {
    // SAFETY: the caller's contract; the last register is loaded and stored under its
    // mask, so no row past n is touched.
    unsafe {
        let (a, out) = (s.a.add(j * s.cs), s.out.add(j * s.ldo));
        let mut acc = [[_mm512_setzero_pd(); NV]; NB];
        for p in 0..s.k {
            let col = s.w.add(p * s.ldw);
            let mut wv = [_mm512_setzero_pd(); NV];
            for (v, wv) in wv.iter_mut().enumerate() {
                *wv = if v + 1 < NV {
                    _mm512_loadu_pd(col.add(8 * v))
                } else {
                    _mm512_maskz_loadu_pd(s.last, col.add(8 * v))
                };
            }
            let ap = a.add(p * s.rs);
            for (jj, acc_j) in acc.iter_mut().enumerate() {
                let b = _mm512_set1_pd(*ap.add(jj * s.cs));
                for (acc_v, &w_v) in acc_j.iter_mut().zip(&wv) {
                    *acc_v = _mm512_fmadd_pd(w_v, b, *acc_v);
                }
            }
        }
        for (jj, acc_j) in acc.iter().enumerate() {
            let o = out.add(jj * s.ldo);
            for (v, &sums) in acc_j.iter().enumerate() {
                if v + 1 < NV {
                    _mm512_storeu_pd(o.add(8 * v), sums);
                } else {
                    _mm512_mask_storeu_pd(o.add(8 * v), s.last, sums);
                }
            }
        }
    }
}
