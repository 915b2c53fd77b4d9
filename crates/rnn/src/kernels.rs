//! Matrix products for the recurrence, chosen by batch size.
//!
//! For a batch of one (or a few) columns, a general GEMM spends most of its time packing
//! W_aa into its blocked layout before doing 50 × 50 multiply-adds. The per-step products
//! W_aa a and W_aaᵀ da_raw therefore go through the direct loops below when the batch is
//! small and through `ndarray`'s GEMM (matrixmultiply) otherwise. Both paths compute the
//! same sums; they may differ in the last bit because the order of additions differs.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

use crate::Float;

/// Batches up to this many columns take the direct loops (measured: see the book's
/// "Making it fast" chapter).
pub const SMALL_BATCH: usize = 4;

/// `out = w · a`.
///
/// # Shapes
///
/// `w`: (n, k), `a`: (k, m), `out`: (n, m).
pub fn matmul<F: Float>(w: ArrayView2<'_, F>, a: ArrayView2<'_, F>, mut out: ArrayViewMut2<'_, F>) {
    if a.ncols() <= SMALL_BATCH {
        if let Some(w_rows) = w.as_slice() {
            for (a_col, mut out_col) in a.columns().into_iter().zip(out.columns_mut()) {
                if let (Some(x), Some(y)) = (a_col.as_slice(), out_col.as_slice_mut()) {
                    for (y_i, w_row) in y.iter_mut().zip(w_rows.chunks_exact(x.len())) {
                        *y_i = dot(w_row, x);
                    }
                    continue;
                }
                // Strided column: fall back to GEMM for this column.
                general_mat_mul(
                    F::one(),
                    &w,
                    &a_col.insert_axis(ndarray::Axis(1)),
                    F::zero(),
                    &mut out_col.insert_axis(ndarray::Axis(1)),
                );
            }
            return;
        }
    }
    general_mat_mul(F::one(), &w, &a, F::zero(), &mut out);
}

/// `out = wᵀ · d`, without forming wᵀ.
///
/// # Shapes
///
/// `w`: (n, k), `d`: (n, m), `out`: (k, m).
pub fn matmul_t<F: Float>(
    w: ArrayView2<'_, F>,
    d: ArrayView2<'_, F>,
    mut out: ArrayViewMut2<'_, F>,
) {
    if d.ncols() <= SMALL_BATCH {
        if let Some(w_rows) = w.as_slice() {
            for (d_col, mut out_col) in d.columns().into_iter().zip(out.columns_mut()) {
                if let (Some(x), Some(y)) = (d_col.as_slice(), out_col.as_slice_mut()) {
                    // wᵀ d = Σ_i d_i · w[i, :]: one contiguous axpy per row of w.
                    y.fill(F::zero());
                    for (&d_i, w_row) in x.iter().zip(w_rows.chunks_exact(y.len())) {
                        for (y_k, &w_ik) in y.iter_mut().zip(w_row) {
                            *y_k += d_i * w_ik;
                        }
                    }
                    continue;
                }
                general_mat_mul(
                    F::one(),
                    &w.t(),
                    &d_col.insert_axis(ndarray::Axis(1)),
                    F::zero(),
                    &mut out_col.insert_axis(ndarray::Axis(1)),
                );
            }
            return;
        }
    }
    general_mat_mul(F::one(), &w.t(), &d, F::zero(), &mut out);
}

/// Dot product with eight independent accumulators, so that the compiler can keep them
/// in vector registers without reordering a single running sum.
#[inline]
fn dot<F: Float>(x: &[F], y: &[F]) -> F {
    const LANES: usize = 8;
    let mut acc = [F::zero(); LANES];
    let xc = x.chunks_exact(LANES);
    let yc = y.chunks_exact(LANES);
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (xs, ys) in xc.zip(yc) {
        for l in 0..LANES {
            acc[l] += xs[l] * ys[l];
        }
    }
    let mut tail = F::zero();
    for (a, b) in xr.iter().zip(yr) {
        tail += *a * *b;
    }
    let s01 = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    let s23 = (acc[4] + acc[5]) + (acc[6] + acc[7]);
    s01 + s23 + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, ShapeBuilder};

    fn check(n: usize, k: usize, m: usize) {
        let w = Array2::from_shape_fn((n, k), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
        let a = Array2::from_shape_fn((k, m).f(), |(i, j)| ((i + 2 * j) % 5) as f64 * 0.5);
        let d = Array2::from_shape_fn((n, m).f(), |(i, j)| ((3 * i + j) % 7) as f64 - 3.0);
        let mut out = Array2::zeros((n, m).f());
        matmul(w.view(), a.view(), out.view_mut());
        assert_eq!(out, w.dot(&a), "w a, {n}x{k}x{m}");
        let mut out_t = Array2::zeros((k, m).f());
        matmul_t(w.view(), d.view(), out_t.view_mut());
        assert_eq!(out_t, w.t().dot(&d), "wᵀ d, {n}x{k}x{m}");
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
        ] {
            check(n, k, m);
        }
    }
}
