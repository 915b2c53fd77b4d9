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

/// The global L2 norm over all five arrays, accumulated in `f64` (vectorized).
pub(crate) fn global_norm<F: Float>(p: &Params<F>) -> f64 {
    p.arrays()
        .iter()
        .map(|(_, a)| sum_of_squares(a))
        .sum::<f64>()
        .sqrt()
}
