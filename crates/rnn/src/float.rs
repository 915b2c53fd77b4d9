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
}
