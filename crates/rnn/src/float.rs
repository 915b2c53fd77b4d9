//! The [`Float`] trait: every function of the crate is written once, for `f64` (the
//! default, which the gradient check needs) and `f32`.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

use ndarray::{LinalgScalar, ScalarOperand};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A floating-point element type for parameters, activations and gradients: `f32` or
/// `f64`. `tanh`, `exp` and `ln` are the standard library's (through
/// [`num_traits::Float`]).
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

    fn cast(x: f64) -> Self {
        x
    }

    fn as_f64(self) -> f64 {
        self
    }
}

impl Float for f32 {
    const NAME: &'static str = "f32";

    fn cast(x: f64) -> Self {
        x as f32
    }

    fn as_f64(self) -> f64 {
        f64::from(self)
    }
}
