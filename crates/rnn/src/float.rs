//! The [`Float`] trait: the one generic implementation runs in `f64` (the reference, used by
//! gradient checks) and `f32` (the fast path).

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

use ndarray::{LinalgScalar, ScalarOperand};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A floating-point element type for parameters, activations and gradients.
///
/// Implemented for `f32` and `f64`. Every numeric routine in this crate is written once,
/// generic over `F: Float`, with `f64` as the default type parameter.
pub trait Float:
    num_traits::Float
    + LinalgScalar
    + ScalarOperand
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + Serialize
    + DeserializeOwned
    + 'static
{
    /// The type's name as used in checkpoints and file metadata: `"f32"` or `"f64"`.
    const NAME: &'static str;

    /// Converts from `f64`, rounding to nearest for `f32`.
    fn cast(x: f64) -> Self;

    /// Converts to `f64` exactly.
    fn as_f64(self) -> f64;

    /// tanh for the hidden layer. `f64` uses the correctly rounded library function (the
    /// reference); `f32` uses a branch-free rational approximation (a few units in the
    /// last place) that the compiler can vectorize.
    fn fast_tanh(self) -> Self;

    /// exp for the softmax. `f64` uses the library function; `f32` a branch-free
    /// polynomial (a few units in the last place) that the compiler can vectorize.
    /// Arguments below about −87 give a tiny positive number instead of 0.
    fn fast_exp(self) -> Self;
}

impl Float for f64 {
    const NAME: &'static str = "f64";

    #[inline]
    fn cast(x: f64) -> Self {
        x
    }

    #[inline]
    fn as_f64(self) -> f64 {
        self
    }

    #[inline]
    fn fast_tanh(self) -> Self {
        self.tanh()
    }

    #[inline]
    fn fast_exp(self) -> Self {
        self.exp()
    }
}

impl Float for f32 {
    const NAME: &'static str = "f32";

    #[inline]
    fn cast(x: f64) -> Self {
        x as f32
    }

    #[inline]
    fn as_f64(self) -> f64 {
        f64::from(self)
    }

    #[inline]
    fn fast_tanh(self) -> Self {
        tanh_f32(self)
    }

    #[inline]
    fn fast_exp(self) -> Self {
        exp_f32(self)
    }
}

/// tanh as a 13/6 rational function on [−7.9, 7.9] (the approximation of Eigen and XLA;
/// beyond that range tanh is ±1 in `f32`). NaN propagates.
#[inline]
fn tanh_f32(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A1: f32 = 4.893_524_6e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_672e-11;
    const A11: f32 = 2.000_188e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525e-3;
    const B2: f32 = 2.268_434_6e-3;
    const B4: f32 = 1.185_347_1e-4;
    const B6: f32 = 1.198_258_4e-6;
    let c = x.clamp(-CLAMP, CLAMP);
    let x2 = c * c;
    let p = ((((((A13 * x2 + A11) * x2 + A9) * x2 + A7) * x2 + A5) * x2 + A3) * x2 + A1) * c;
    let q = ((B6 * x2 + B4) * x2 + B2) * x2 + B0;
    // Near 0 the rational function loses relative accuracy; tanh x = x there.
    if x.abs() < 4e-4 { x } else { p / q }
}

/// exp by range reduction x = n ln 2 + r, |r| ≤ ln 2 / 2, a degree-6 polynomial for e^r
/// and 2^n built from its exponent bits.
#[inline]
fn exp_f32(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Keep 2^n a normal number; exp(88.7) overflows f32.
    let x = x.clamp(-87.3, 88.7);
    let n = (x * LOG2_E).round();
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_tanh_and_exp_are_close_to_the_library_functions() {
        let mut worst_tanh = 0.0f64;
        let mut worst_exp = 0.0f64;
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4; // −20 .. 20
            let t = f64::from(x).tanh();
            let e_t = (f64::from(x.fast_tanh()) - t).abs() / t.abs().max(1e-30);
            worst_tanh = worst_tanh.max(if x == 0.0 { 0.0 } else { e_t });
            let xe = x * 4.0; // −80 .. 80
            let e = f64::from(xe).exp();
            worst_exp = worst_exp.max((f64::from(xe.fast_exp()) - e).abs() / e);
        }
        assert!(worst_tanh < 4e-7, "tanh relative error {worst_tanh}");
        assert!(worst_exp < 4e-7, "exp relative error {worst_exp}");
        assert!(f32::NAN.fast_tanh().is_nan());
        assert_eq!(100.0f32.fast_tanh(), 1.0);
        assert!((-1000.0f32).fast_exp() < 1e-37);
    }
}
