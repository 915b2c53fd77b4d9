//! The [`Plot`] value: what to draw, at what size, and how to turn it into PNG, SVG or a file.

use std::io::Write;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::curves::{GradientData, LossData, RunData};
use crate::error::draw_err;
use crate::font::ensure_font;
use crate::heatmap::HeatmapData;
use crate::{Format, PlotError};

/// Smallest and largest accepted image side, in pixels.
const SIDE_RANGE: std::ops::RangeInclusive<u32> = 100..=20_000;

/// A drawing, ready to be rendered as PNG or SVG, saved to a file, or shown in a notebook.
///
/// Build one with [`loss_curve`](crate::loss_curve), [`gradient_norms`](crate::gradient_norms),
/// [`heatmap`](crate::heatmap) or [`gate_heatmap`](crate::gate_heatmap); adjust it with the `with_*` methods. A `Plot` owns a copy of
/// its numbers, so it can be kept, cloned and rendered several times.
#[derive(Clone, Debug)]
pub struct Plot {
    pub(crate) kind: Kind,
    pub(crate) title: String,
    pub(crate) x_desc: String,
    pub(crate) y_desc: String,
    /// A size set with [`Plot::with_size`]; otherwise the kind's natural size.
    size: Option<(u32, u32)>,
}

/// The kinds of drawing.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Loss(LossData),
    LossComparison(Vec<RunData>),
    Curves(Vec<(String, crate::curves::Segments)>),
    Gradients(GradientData),
    Heatmap(HeatmapData),
    /// Heatmaps stacked under one title (each a `Kind::Heatmap` plot).
    Panels(Vec<Plot>),
}

impl Plot {
    pub(crate) fn new(kind: Kind, title: &str, x_desc: &str, y_desc: &str) -> Self {
        Plot {
            kind,
            title: title.to_string(),
            x_desc: x_desc.to_string(),
            y_desc: y_desc.to_string(),
            size: None,
        }
    }

    /// Image size in pixels: as set by [`Plot::with_size`], or else 800x500 for curves and
    /// the size that fits the content for heatmaps.
    pub fn size(&self) -> (u32, u32) {
        self.size.unwrap_or_else(|| match &self.kind {
            Kind::Loss(_) | Kind::LossComparison(_) | Kind::Curves(_) | Kind::Gradients(_) => {
                crate::CURVE_SIZE
            }
            Kind::Heatmap(data) => crate::heatmap::natural_size(data, self),
            Kind::Panels(panels) => crate::gates::natural_size(self, panels),
        })
    }

    /// Image width in pixels (800 for curves; heatmaps are sized to their content).
    pub fn width(&self) -> u32 {
        self.size().0
    }

    /// Image height in pixels (500 for curves; heatmaps are sized to their content).
    pub fn height(&self) -> u32 {
        self.size().1
    }

    /// The title drawn at the top.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// Sets the image size in pixels; each side must be within 100..=20000, which rendering
    /// checks ([`PlotError::Size`]). A heatmap stretches or shrinks its cells to fit.
    #[must_use]
    pub fn with_size(mut self, width: u32, height: u32) -> Self {
        self.size = Some((width, height));
        self
    }

    /// Replaces the title.
    #[must_use]
    pub fn with_title(mut self, title: &str) -> Self {
        self.title = title.to_string();
        self
    }

    /// Replaces the horizontal axis description (e.g. "step", "time step t").
    #[must_use]
    pub fn with_x_desc(mut self, desc: &str) -> Self {
        self.x_desc = desc.to_string();
        self
    }

    /// Replaces the vertical axis description (e.g. "loss (nats)", "hidden unit").
    #[must_use]
    pub fn with_y_desc(mut self, desc: &str) -> Self {
        self.y_desc = desc.to_string();
        self
    }

    /// Replaces the description next to a heatmap's colour bar (e.g. `"a⟨t⟩"`, `"probability"`);
    /// other plots have no colour bar and ignore it.
    #[must_use]
    pub fn with_value_desc(mut self, desc: &str) -> Self {
        if let Kind::Heatmap(h) = &mut self.kind {
            h.value_desc = desc.to_string();
        }
        self
    }

    /// Draws onto any plotters drawing area (the whole area is used, white background).
    ///
    /// # Errors
    ///
    /// [`PlotError::Draw`] when the backend fails, [`PlotError::Size`] when the area is too
    /// small for the layout.
    pub fn draw_on<DB>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError>
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        ensure_font()?;
        root.fill(&WHITE).map_err(draw_err)?;
        match &self.kind {
            Kind::Loss(data) => crate::curves::draw_loss(self, data, root),
            Kind::LossComparison(runs) => crate::curves::draw_comparison(self, runs, root),
            Kind::Curves(lines) => crate::curves::draw_curves(self, lines, root),
            Kind::Gradients(data) => crate::curves::draw_gradients(self, data, root),
            Kind::Heatmap(data) => crate::heatmap::draw_heatmap(self, data, root),
            Kind::Panels(panels) => crate::gates::draw_panels(self, panels, root),
        }
    }

    /// Renders as a PNG file's bytes (8-bit RGB).
    ///
    /// # Errors
    ///
    /// [`PlotError::Size`] for a size outside 100..=20000, [`PlotError::Draw`] when drawing or
    /// encoding fails.
    pub fn to_png_bytes(&self) -> Result<Vec<u8>, PlotError> {
        use image::ImageEncoder;
        let (w, h) = self.checked_size()?;
        let mut rgb = vec![0u8; w as usize * h as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
            self.draw_on(&root)?;
            root.present().map_err(draw_err)?;
        }
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(&rgb, w, h, image::ColorType::Rgb8)
            .map_err(draw_err)?;
        Ok(png)
    }

    /// Renders as an SVG document (text stays text, drawn in the viewer's sans-serif font).
    ///
    /// # Errors
    ///
    /// As [`Plot::to_png_bytes`].
    pub fn to_svg_string(&self) -> Result<String, PlotError> {
        let size = self.checked_size()?;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
            self.draw_on(&root)?;
            root.present().map_err(draw_err)?;
        }
        Ok(svg)
    }

    /// Renders in `format`.
    ///
    /// # Errors
    ///
    /// As [`Plot::to_png_bytes`].
    pub fn to_bytes(&self, format: Format) -> Result<Vec<u8>, PlotError> {
        match format {
            Format::Png => self.to_png_bytes(),
            Format::Svg => self.to_svg_string().map(String::into_bytes),
        }
    }

    /// The PNG rendering as standard base64, e.g. for a `data:image/png;base64,` URL.
    ///
    /// # Errors
    ///
    /// As [`Plot::to_png_bytes`].
    pub fn to_png_base64(&self) -> Result<String, PlotError> {
        self.to_png_bytes().map(|png| crate::base64::encode(&png))
    }

    /// Saves to `path`, in the format its extension names (`.png` or `.svg`).
    ///
    /// The write is atomic: the image goes to a temporary file in the same directory, which is
    /// then renamed over `path`, so a reader never sees half an image.
    ///
    /// # Errors
    ///
    /// [`PlotError::UnknownFormat`] for another extension, [`PlotError::Io`] naming the path
    /// when the directory is missing or not writable, and the rendering errors.
    pub fn save(&self, path: &Path) -> Result<(), PlotError> {
        self.save_as(path, Format::from_path(path)?)
    }

    /// Saves to `path` in `format`, whatever the extension; atomic as [`Plot::save`].
    ///
    /// # Errors
    ///
    /// As [`Plot::save`].
    pub fn save_as(&self, path: &Path, format: Format) -> Result<(), PlotError> {
        let bytes = self.to_bytes(format)?;
        let io_err = |source| PlotError::Io {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix(".rnn-plot-").suffix(".tmp");
        // A temporary file is private (0600); the image should be as readable as any other
        // new file (0644 minus the umask).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o644));
        }
        let mut tmp = builder.tempfile_in(dir).map_err(io_err)?;
        tmp.write_all(&bytes).map_err(io_err)?;
        tmp.as_file().sync_all().map_err(io_err)?;
        tmp.persist(path).map_err(|e| io_err(e.error))?;
        Ok(())
    }

    /// A wrapper that displays as SVG (rather than PNG) in an evcxr notebook.
    pub fn svg(&self) -> SvgPlot {
        SvgPlot { plot: self.clone() }
    }

    /// Shows the plot inline in an evcxr Jupyter notebook, as a PNG image.
    ///
    /// evcxr calls this when a `Plot` is the last expression of a cell. On a rendering error
    /// the cell shows the error message as text instead.
    #[cfg(feature = "evcxr")]
    pub fn evcxr_display(&self) {
        match self.to_png_base64() {
            Ok(b64) => println!("EVCXR_BEGIN_CONTENT image/png\n{b64}\nEVCXR_END_CONTENT"),
            Err(e) => println!("EVCXR_BEGIN_CONTENT text/plain\nrnn-plot: {e}\nEVCXR_END_CONTENT"),
        }
    }

    fn checked_size(&self) -> Result<(u32, u32), PlotError> {
        let (width, height) = self.size();
        if SIDE_RANGE.contains(&width) && SIDE_RANGE.contains(&height) {
            Ok((width, height))
        } else {
            Err(PlotError::Size { width, height })
        }
    }
}

/// A [`Plot`] that displays as `image/svg+xml` in an evcxr notebook; made by [`Plot::svg`].
#[derive(Clone, Debug)]
pub struct SvgPlot {
    plot: Plot,
}

impl SvgPlot {
    /// The wrapped plot.
    pub fn plot(&self) -> &Plot {
        &self.plot
    }

    /// The SVG document, as [`Plot::to_svg_string`].
    ///
    /// # Errors
    ///
    /// As [`Plot::to_svg_string`].
    pub fn to_svg_string(&self) -> Result<String, PlotError> {
        self.plot.to_svg_string()
    }

    /// Shows the plot inline in an evcxr Jupyter notebook, as an SVG image.
    #[cfg(feature = "evcxr")]
    pub fn evcxr_display(&self) {
        match self.plot.to_svg_string() {
            Ok(svg) => println!("EVCXR_BEGIN_CONTENT image/svg+xml\n{svg}\nEVCXR_END_CONTENT"),
            Err(e) => println!("EVCXR_BEGIN_CONTENT text/plain\nrnn-plot: {e}\nEVCXR_END_CONTENT"),
        }
    }
}
