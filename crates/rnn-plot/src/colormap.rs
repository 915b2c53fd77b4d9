//! Colours: a colour-blind-friendly palette for series and two colour maps for heatmaps.

use plotters::style::RGBColor;

use crate::PlotError;

/// The Okabe–Ito palette (distinguishable with the common colour-vision deficiencies),
/// ordered so that the first few series contrast most; yellow, weak on white, comes last.
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
];

/// Colour of series `i`; cycles through [`PALETTE`].
pub fn series_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// How heatmap values map to colours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HeatScale {
    /// Signed values around 0 (hidden activations `a⟨t⟩` in [-1, 1]): blue for negative,
    /// white at 0, red for positive; values beyond `±max_abs` take the end colours.
    Diverging {
        /// Half-width of the range, e.g. 1.0 for tanh activations.
        max_abs: f64,
    },
    /// Values in `[min, max]` (probabilities in [0, 1]) on the viridis map, dark to bright.
    Sequential {
        /// Value drawn darkest.
        min: f64,
        /// Value drawn brightest.
        max: f64,
    },
}

impl HeatScale {
    /// The scale for tanh activations: diverging on [-1, 1].
    pub fn activations() -> Self {
        HeatScale::Diverging { max_abs: 1.0 }
    }

    /// The scale for probabilities: sequential on [0, 1].
    pub fn probabilities() -> Self {
        HeatScale::Sequential { min: 0.0, max: 1.0 }
    }

    /// The value range `(low, high)` the colour bar spans.
    pub fn range(self) -> (f64, f64) {
        match self {
            HeatScale::Diverging { max_abs } => (-max_abs, max_abs),
            HeatScale::Sequential { min, max } => (min, max),
        }
    }

    /// Checks that the range is finite and non-empty.
    pub(crate) fn validate(self) -> Result<(), PlotError> {
        let (lo, hi) = self.range();
        if lo.is_finite() && hi.is_finite() && lo < hi {
            Ok(())
        } else {
            Err(PlotError::Scale(format!(
                "{self:?}: the range must be finite with low < high (got {lo}..{hi})"
            )))
        }
    }

    /// The colour of `value`; values outside the range are clamped, NaN is grey.
    pub fn color(self, value: f64) -> RGBColor {
        if value.is_nan() {
            return NAN_COLOR;
        }
        let (lo, hi) = self.range();
        let t = ((value - lo) / (hi - lo)).clamp(0.0, 1.0);
        match self {
            HeatScale::Diverging { .. } => interpolate(&RD_BU, t),
            HeatScale::Sequential { .. } => interpolate(&VIRIDIS, t),
        }
    }
}

/// Colour of a NaN cell.
pub const NAN_COLOR: RGBColor = RGBColor(160, 160, 160);

/// ColorBrewer RdBu (11 classes), from blue (low) to red (high).
const RD_BU: [(u8, u8, u8); 11] = [
    (0x05, 0x30, 0x61),
    (0x21, 0x66, 0xac),
    (0x43, 0x93, 0xc3),
    (0x92, 0xc5, 0xde),
    (0xd1, 0xe5, 0xf0),
    (0xf7, 0xf7, 0xf7),
    (0xfd, 0xdb, 0xc7),
    (0xf4, 0xa5, 0x82),
    (0xd6, 0x60, 0x4d),
    (0xb2, 0x18, 0x2b),
    (0x67, 0x00, 0x1f),
];

/// Viridis sampled at nine evenly spaced points.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (0x44, 0x01, 0x54),
    (0x47, 0x2d, 0x7b),
    (0x3b, 0x52, 0x8b),
    (0x2c, 0x72, 0x8e),
    (0x21, 0x90, 0x8c),
    (0x27, 0xad, 0x81),
    (0x5d, 0xc8, 0x63),
    (0xaa, 0xdc, 0x32),
    (0xfd, 0xe7, 0x25),
];

/// Piecewise-linear interpolation between evenly spaced stops, `t` in [0, 1].
fn interpolate(stops: &[(u8, u8, u8)], t: f64) -> RGBColor {
    let x = t * (stops.len() - 1) as f64;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let f = x - i as f64;
    let (a, b) = (stops[i], stops[i + 1]);
    let mix = |p: u8, q: u8| (f64::from(p) + (f64::from(q) - f64::from(p)) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diverging_is_white_at_zero_and_clamps() {
        let s = HeatScale::activations();
        assert_eq!(s.color(0.0), RGBColor(0xf7, 0xf7, 0xf7));
        assert_eq!(s.color(-5.0), RGBColor(0x05, 0x30, 0x61));
        assert_eq!(s.color(1.0), RGBColor(0x67, 0x00, 0x1f));
        assert_eq!(s.color(f64::NAN), NAN_COLOR);
    }

    #[test]
    fn sequential_ends_are_viridis_ends() {
        let s = HeatScale::probabilities();
        assert_eq!(s.color(0.0), RGBColor(0x44, 0x01, 0x54));
        assert_eq!(s.color(1.0), RGBColor(0xfd, 0xe7, 0x25));
        let mid = s.color(0.5);
        assert_eq!(mid, RGBColor(0x21, 0x90, 0x8c));
    }

    #[test]
    fn bad_ranges_are_rejected() {
        assert!(HeatScale::Diverging { max_abs: 0.0 }.validate().is_err());
        assert!(
            HeatScale::Sequential { min: 1.0, max: 0.0 }
                .validate()
                .is_err()
        );
        assert!(
            HeatScale::Sequential {
                min: 0.0,
                max: f64::INFINITY
            }
            .validate()
            .is_err()
        );
        assert!(HeatScale::probabilities().validate().is_ok());
    }
}
