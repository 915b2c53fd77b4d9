//! Output image formats.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::PlotError;

/// An output image format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// A raster image (RGB, 8 bits per channel).
    Png,
    /// A vector image; text stays text.
    Svg,
}

impl Format {
    /// The format named by a path's extension (`.png` or `.svg`, any case).
    ///
    /// ```
    /// use rnn_plot::Format;
    /// use std::path::Path;
    /// assert_eq!(Format::from_path(Path::new("runs/loss.SVG")).unwrap(), Format::Svg);
    /// assert!(Format::from_path(Path::new("loss.jpg")).is_err());
    /// ```
    pub fn from_path(path: &Path) -> Result<Self, PlotError> {
        path.extension()
            .and_then(|e| e.to_str())
            .and_then(|e| e.parse().ok())
            .ok_or_else(|| PlotError::UnknownFormat {
                path: path.to_path_buf(),
            })
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Svg => "svg",
        }
    }

    /// The MIME type, as used by Jupyter.
    pub fn mime_type(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Svg => "image/svg+xml",
        }
    }
}

impl FromStr for Format {
    type Err = PlotError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "png" => Ok(Format::Png),
            "svg" => Ok(Format::Svg),
            _ => Err(PlotError::FormatName(s.to_string())),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        assert_eq!("png".parse::<Format>().unwrap(), Format::Png);
        assert_eq!("SVG".parse::<Format>().unwrap(), Format::Svg);
        assert!(matches!("gif".parse::<Format>(), Err(PlotError::FormatName(s)) if s == "gif"));
        assert_eq!(Format::Png.to_string(), "png");
        assert_eq!(
            Format::Svg.to_string().parse::<Format>().unwrap(),
            Format::Svg
        );
    }

    #[test]
    fn from_path_needs_a_known_extension() {
        assert_eq!(
            Format::from_path(Path::new("a/b.png")).unwrap(),
            Format::Png
        );
        let err = Format::from_path(Path::new("a/noext")).unwrap_err();
        assert!(err.to_string().contains("a/noext"), "{err}");
    }
}
