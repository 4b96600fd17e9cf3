//! Pure rendering: points in world units plus a viewport in, an indexed image out (no I/O).
//!
//! Every style maps each pixel to one of 256 palette entries, so every render is an
//! [`IndexedImage`] and every PNG is 8-bit indexed (PLTE + tRNS).

pub mod density;
pub mod dots;
mod fastfloor;
pub mod palette;
pub mod png;
pub mod smooth;

pub use palette::{ColorRamp, Palette, Rgba};

/// One point in world units: `x` and `y` in [0, 1] over the Web Mercator square
/// (x grows east, y grows south from the north edge at 85.0511°), with its weight.
/// `seq` is the point's position in its layer's input, for styles whose result depends on
/// drawing order (dots), so that every request draws the points in the same order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorldPoint {
    pub x: f64,
    pub y: f64,
    pub w: f32,
    pub seq: u32,
}

/// The pixel space of one render.
///
/// A point's global pixel position is `world * scale`; its position in the image is
/// `global - origin`. Tiles have `scale = 256 * 2^z * pixel_ratio` and integer origins, so the
/// pixel grids of neighbouring tiles and of an overlay over the same area coincide exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Viewport {
    pub scale_x: f64,
    pub scale_y: f64,
    pub origin_x: f64,
    pub origin_y: f64,
    pub width: u32,
    pub height: u32,
    /// Map zoom level (fractional for arbitrary overlays); Leaflet.heat's zoom factor uses it.
    pub zoom: f64,
    /// Device pixels per CSS pixel: 2 for `@2x` tiles. Kernel sizes in pixels scale with it.
    pub pixel_ratio: f64,
}

impl Viewport {
    /// Image x of a point (fractional pixels; pixel i covers [i, i + 1)).
    #[inline]
    pub fn local_x(&self, p: &WorldPoint) -> f64 {
        p.x * self.scale_x - self.origin_x
    }

    /// Image y of a point (fractional pixels; pixel j covers [j, j + 1)).
    #[inline]
    pub fn local_y(&self, p: &WorldPoint) -> f64 {
        p.y * self.scale_y - self.origin_y
    }
}

/// An 8-bit palette image: `pixels[y * width + x]` indexes `palette`.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedImage {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
    pub palette: Palette,
}

impl IndexedImage {
    /// True when every pixel maps to a fully transparent palette entry.
    pub fn is_blank(&self) -> bool {
        let transparent: [bool; 256] = std::array::from_fn(|i| self.palette.0[i][3] == 0);
        self.pixels.iter().all(|&i| transparent[i as usize])
    }

    /// RGBA bytes, straight alpha, row-major (for tests and comparisons).
    pub fn to_rgba(&self) -> Vec<u8> {
        self.pixels
            .iter()
            .flat_map(|&i| self.palette.0[i as usize])
            .collect()
    }
}

/// How `density` maps summed weight to the color ramp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DensityScale {
    Linear,
    Sqrt,
    Log,
}

/// Leaflet.heat's look (simpleheat's draw after Leaflet.heat's clustering).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SmoothParams {
    /// Disc radius in CSS pixels.
    pub radius: u32,
    /// Shadow blur in CSS pixels (Gaussian sigma = blur / 2).
    pub blur: u32,
    /// Cluster sums are clamped at `max`; alpha = max(value / max, min_opacity).
    pub max: f64,
    pub min_opacity: f64,
    /// Leaflet.heat's `maxZoom`: zoom factor = 1 / 2^clamp(max_zoom - zoom, 0, 12).
    pub max_zoom: f64,
}

/// The seed's look: heatmap 2.2.1's cone-shaped dots with multiplicative darkening.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DotsParams {
    pub dot_size: u32,
    /// Constant alpha (0..=255) of every drawn pixel, as heatmap 2.2.1's `opacity`.
    pub opacity: u8,
}

/// Kernel density: sum of weights under a smooth kernel of `radius` pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DensityParams {
    pub radius: u32,
    pub scale: DensityScale,
    /// The density that maps to the top of the ramp (resolved by the caller: explicit, or the
    /// layer's reference for the zoom; never computed from one tile).
    pub max: f64,
}

/// A fully resolved style: what to draw and how to color it.
#[derive(Debug, Clone, PartialEq)]
pub enum Style {
    Smooth(SmoothParams),
    Dots(DotsParams),
    Density(DensityParams),
}

impl Style {
    /// How far (in image pixels of `vp`) outside the image a point can still change a pixel,
    /// including whole clustering cells for `smooth`. Sources must return every point within
    /// this margin of the image, so tiles and overlays over the same area agree pixel for pixel.
    pub fn reach_px(&self, vp: &Viewport) -> f64 {
        match self {
            Style::Smooth(p) => smooth::reach_px(p, vp.pixel_ratio),
            Style::Dots(p) => dots::reach_px(p, vp.pixel_ratio),
            Style::Density(p) => density::reach_px(p, vp.pixel_ratio),
        }
    }
}

/// Renders `points` (any order; points outside the reach are ignored) into an indexed image.
pub fn render(
    points: &[WorldPoint],
    vp: &Viewport,
    style: &Style,
    ramp: &ColorRamp,
) -> IndexedImage {
    match style {
        Style::Smooth(p) => smooth::render(points, vp, p, &ramp.alpha_palette()),
        Style::Dots(p) => dots::render(points, vp, p, &ramp.scheme_table()),
        Style::Density(p) => density::render(points, vp, p, &ramp.alpha_palette()),
    }
}

/// Renders pixel bins (any order; see `Layer::render_input`) into an indexed image. `smooth`
/// and `density` draw a bin as a point of the bin's summed weight; `dots` draws each bin as its
/// points would, and takes each bin's `w` to be its point count.
pub fn render_bins(
    bins: &[WorldPoint],
    vp: &Viewport,
    style: &Style,
    ramp: &ColorRamp,
) -> IndexedImage {
    match style {
        Style::Dots(p) => dots::render_bins(bins, vp, p, &ramp.scheme_table()),
        Style::Smooth(_) | Style::Density(_) => render(bins, vp, style, ramp),
    }
}
