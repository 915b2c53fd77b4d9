//! The engine's [`Float`]: the reference's element types with vectorizable `tanh` and
//! `exp`.

/// An element type the engine computes in: the reference's [`rnn::Float`] (`f32` or
/// `f64`) plus branch-free `tanh` and `exp` that the compiler can vectorize.
pub trait Float: rnn::Float {
    /// tanh for the hidden layer: a branch-free approximation within a few units in the
    /// last place of the library function, which the compiler can vectorize (the library
    /// call it replaces cannot be). In `f64` its polynomial steps are fused multiply-adds
    /// (`mul_add`, rounded once), which are exact operations, so it gives the same bits on
    /// every CPU: one instruction where the CPU has FMA, the C library's `fma` elsewhere.
    /// NaN propagates; ±∞ gives ±1.
    fn fast_tanh(self) -> Self;

    /// exp for the softmax, branch-free and vectorizable like [`Float::fast_tanh`]. In
    /// `f64` it underflows to 0 and overflows to ∞ where the library function does; in
    /// `f32` arguments below about −87 give a tiny positive number instead of 0.
    fn fast_exp(self) -> Self;
}

impl Float for f64 {
    #[inline(always)]
    fn fast_tanh(self) -> Self {
        tanh_f64(self)
    }

    #[inline(always)]
    fn fast_exp(self) -> Self {
        exp_f64(self)
    }
}

impl Float for f32 {
    #[inline(always)]
    fn fast_tanh(self) -> Self {
        tanh_f32(self)
    }

    #[inline(always)]
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

/// ln 2 split in two: `LN2_HI` has 21 trailing zero bits, so n·`LN2_HI` is exact for every
/// n this module uses (Cody and Waite's range reduction).
pub(crate) const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
pub(crate) const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);
/// 1.5·2⁵²: adding it rounds a float of magnitude below 2⁵¹ to an integer, which then
/// sits in the low bits of the sum (round to nearest, branch-free, vectorizable).
pub(crate) const ROUNDER: f64 = 6_755_399_441_055_744.0;

/// Writes x = n ln 2 + r with n an integer and |r| ≤ ln 2 / 2 (slightly more when
/// rounding ties), returning (n, r).
#[inline(always)]
fn reduce_ln2(x: f64) -> (i64, f64) {
    let shifted = x * std::f64::consts::LOG2_E + ROUNDER;
    let n_f = shifted - ROUNDER;
    let n = (shifted.to_bits() as i64).wrapping_sub(ROUNDER.to_bits() as i64);
    let r = (-n_f).mul_add(LN2_LO, (-n_f).mul_add(LN2_HI, x));
    (n, r)
}

/// eʳ − 1 for |r| ≤ 0.35: the Taylor series to r¹³/13!, whose first omitted term is below
/// 2⁻⁵⁵ relative to the result.
#[inline(always)]
fn expm1_small(r: f64) -> f64 {
    const C: [f64; 13] = EXPM1_COEFFS;
    let mut p = C[12];
    for &c in C[..12].iter().rev() {
        p = p.mul_add(r, c);
    }
    p * r
}

/// 1/k! for k = 1..=13, the coefficients of [`expm1_small`].
pub(crate) const EXPM1_COEFFS: [f64; 13] = [
    1.0,
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5_040.0,
    1.0 / 40_320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
    1.0 / 479_001_600.0,
    1.0 / 6_227_020_800.0,
];

/// 2ⁿ for −1022 ≤ n ≤ 1023, from its exponent bits.
#[inline(always)]
fn pow2(n: i64) -> f64 {
    f64::from_bits((n.wrapping_add(1023) as u64) << 52)
}

/// eˣ: eʳ from [`expm1_small`], times 2ⁿ applied in two halves so that results down to
/// the subnormals (and 0 below them) come out as the library's do.
#[inline(always)]
fn exp_f64(x: f64) -> f64 {
    // Comparisons are false for NaN, so NaN passes through both clamps.
    let x = if x < -746.0 { -746.0 } else { x };
    let x = if x > 710.0 { 710.0 } else { x };
    let (n, r) = reduce_ln2(x);
    let e_r = 1.0 + expm1_small(r);
    let half = n >> 1;
    e_r * pow2(half) * pow2(n - half)
}

/// tanh |x| = −u / (u + 2) with u = e^(−2|x|) − 1, then the sign of x. u is computed as
/// 2ⁿ·(eʳ − 1) + (2ⁿ − 1), which keeps full relative accuracy near 0, where
/// tanh x ≈ x; |x| is capped at 20, beyond which tanh is 1 in `f64`.
#[inline(always)]
fn tanh_f64(x: f64) -> f64 {
    let ax = x.abs();
    let ax = if ax > 20.0 { 20.0 } else { ax };
    let (n, r) = reduce_ln2(-2.0 * ax);
    let s = pow2(n);
    let u = s.mul_add(expm1_small(r), s - 1.0);
    (-u / (u + 2.0)).copysign(x)
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

    /// Distance in units in the last place between two finite f64 of the same sign.
    fn ulps(a: f64, b: f64) -> u64 {
        if a == b {
            return 0;
        }
        assert_eq!(a.is_sign_negative(), b.is_sign_negative(), "{a} vs {b}");
        (a.to_bits() as i64).abs_diff(b.to_bits() as i64)
    }

    #[test]
    fn f64_tanh_and_exp_are_within_a_few_ulps_of_the_library_functions() {
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            // xorshift64*: a spread of magnitudes from 1e-300 to 1e3, both signs.
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        {
            let (mut worst_tanh, mut worst_exp) = (0, 0);
            for i in 0..400_000 {
                let bits = next();
                let x = if i % 2 == 0 {
                    // Uniform on [−25, 25], where tanh is not yet ±1.
                    (bits >> 11) as f64 / (1u64 << 53) as f64 * 50.0 - 25.0
                } else {
                    let mag = 10f64.powf((bits >> 11) as f64 / (1u64 << 53) as f64 * 303.0 - 300.0);
                    if bits & 1 == 0 { mag } else { -mag }
                };
                worst_tanh = worst_tanh.max(ulps(x.fast_tanh(), x.tanh()));
                let xe = (x * 30.0).clamp(-745.0, 709.0);
                let want = xe.exp();
                if want.is_normal() {
                    worst_exp = worst_exp.max(ulps(xe.fast_exp(), want));
                }
            }
            assert!(worst_tanh <= 3, "tanh: {worst_tanh} ulps");
            assert!(worst_exp <= 1, "exp: {worst_exp} ulps");
        }
    }

    #[test]
    fn f64_tanh_and_exp_edge_cases() {
        {
            assert!(f64::NAN.fast_tanh().is_nan());
            assert!(f64::NAN.fast_exp().is_nan());
            assert_eq!(f64::INFINITY.fast_tanh(), 1.0);
            assert_eq!(f64::NEG_INFINITY.fast_tanh(), -1.0);
            assert_eq!(30.0f64.fast_tanh(), 1.0);
            assert_eq!(0.0f64.fast_tanh(), 0.0);
            assert!((-0.0f64).fast_tanh().is_sign_negative());
            assert_eq!(1e-310f64.fast_tanh(), 1e-310);
            assert_eq!(0.0f64.fast_exp(), 1.0);
            assert_eq!((-800.0f64).fast_exp(), 0.0);
            assert_eq!(f64::NEG_INFINITY.fast_exp(), 0.0);
            assert_eq!(800.0f64.fast_exp(), f64::INFINITY);
            // Subnormal results, as the library gives them.
            let sub = (-740.0f64).fast_exp();
            assert!(sub > 0.0 && !sub.is_normal());
            assert!(ulps(sub, (-740.0f64).exp()) <= 1);
        }
    }
}
