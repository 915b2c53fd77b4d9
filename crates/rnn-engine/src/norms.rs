//! Sums of squares over parameters and gradients, vectorized.

use ndarray::Array2;

use crate::{Float, Params};

/// Σ a², accumulated in `f64` in eight independent sums (so that it vectorizes).
pub(crate) fn sum_of_squares<F: Float>(a: &Array2<F>) -> f64 {
    match a.as_slice_memory_order() {
        Some(s) => crate::kernels::simd_sum_of_squares(s),
        None => a.iter().map(|&v| v.as_f64() * v.as_f64()).sum(),
    }
}

/// Σ s², accumulated in `f64` in eight independent sums.
#[inline(always)]
pub(crate) fn sum_of_squares_slice<F: Float>(s: &[F]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = s.chunks_exact(8);
    let tail: f64 = chunks
        .remainder()
        .iter()
        .map(|&v| v.as_f64() * v.as_f64())
        .sum();
    for c in chunks {
        for (acc, &v) in acc.iter_mut().zip(c) {
            let v = v.as_f64();
            *acc += v * v;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// The global L2 norm over all five arrays, accumulated in `f64` (vectorized).
pub(crate) fn global_norm<F: Float>(p: &Params<F>) -> f64 {
    p.arrays()
        .iter()
        .map(|(_, a)| sum_of_squares(a))
        .sum::<f64>()
        .sqrt()
}
