//! The embedded font, registered with plotters once before any drawing.
//!
//! plotters is built with its `ab_glyph` text renderer and no system font lookup, so a
//! headless machine without font packages still draws text. The font is DejaVu Sans, shipped
//! in `assets/` with its licence (`assets/LICENSE-DejaVu.txt`).

use std::sync::OnceLock;

use plotters::style::FontStyle;

use crate::PlotError;

/// The family name every text style in this crate uses.
pub(crate) const FAMILY: &str = "sans-serif";

static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers DejaVu Sans as plotters' "sans-serif" font, once per process.
pub(crate) fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS)
                .map_err(|_| "the embedded DejaVu Sans font could not be parsed".to_string())
        })
        .clone()
        .map_err(PlotError::Draw)
}

/// Width and height in pixels of `text` drawn at `size` pixels.
pub(crate) fn text_size(text: &str, size: f64) -> (u32, u32) {
    use plotters::style::IntoFont;
    (FAMILY, size).into_font().box_size(text).unwrap_or((
        text.chars().count() as u32 * (size as u32) * 6 / 10,
        size as u32,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn font_registers_and_measures_text() {
        ensure_font().unwrap();
        ensure_font().unwrap();
        let (w_short, h) = text_size("ab", 16.0);
        let (w_long, _) = text_size("abcdefgh", 16.0);
        assert!(h >= 10 && w_long > w_short, "{w_short} {w_long} {h}");
    }
}
