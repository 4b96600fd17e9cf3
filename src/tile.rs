//! Tile coordinates and Web Mercator math (f64 throughout).

use crate::render::Viewport;
use std::f64::consts::PI;

/// Web Mercator's latitude limit: the square world's north and south edges.
pub const MAX_LAT: f64 = 85.051_128_779_806_59;
/// Half the width of the Web Mercator square in metres.
pub const HALF_WORLD_M: f64 = 20_037_508.342_789_244;
/// Deepest zoom served. 2^24 tiles per axis is far past any heatmap's use and keeps global
/// pixel coordinates (up to 2^33) exact in f64 arithmetic.
pub const MAX_ZOOM: u8 = 24;
pub const TILE_SIZE: u32 = 256;

/// A tile address z/x/y (XYZ scheme, y down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileCoord {
    pub z: u8,
    pub x: u32,
    pub y: u32,
}

impl TileCoord {
    /// Tiles per axis at this zoom.
    pub fn count(z: u8) -> u64 {
        1u64 << z
    }

    /// The tile's box in world units.
    pub fn world_box(&self) -> WorldBox {
        let n = Self::count(self.z) as f64;
        WorldBox {
            x0: self.x as f64 / n,
            y0: self.y as f64 / n,
            x1: (self.x as f64 + 1.0) / n,
            y1: (self.y as f64 + 1.0) / n,
        }
    }

    /// The pixel space of this tile at `pixel_ratio` (1 or 2).
    pub fn viewport(&self, pixel_ratio: u32) -> Viewport {
        let size = TILE_SIZE * pixel_ratio;
        let scale = size as f64 * Self::count(self.z) as f64;
        Viewport {
            scale_x: scale,
            scale_y: scale,
            origin_x: self.x as f64 * size as f64,
            origin_y: self.y as f64 * size as f64,
            width: size,
            height: size,
            zoom: self.z as f64,
            pixel_ratio: pixel_ratio as f64,
        }
    }
}

/// An axis-aligned box in world units (x east, y south, both in [0, 1] inside the world).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorldBox {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

impl WorldBox {
    /// The whole Web Mercator square.
    pub const WORLD: WorldBox = WorldBox {
        x0: 0.0,
        y0: 0.0,
        x1: 1.0,
        y1: 1.0,
    };

    /// Grows the box by `dx`, `dy` world units on each side.
    pub fn expand(&self, dx: f64, dy: f64) -> WorldBox {
        WorldBox {
            x0: self.x0 - dx,
            y0: self.y0 - dy,
            x1: self.x1 + dx,
            y1: self.y1 + dy,
        }
    }

    pub fn contains(&self, x: f64, y: f64) -> bool {
        x >= self.x0 && x <= self.x1 && y >= self.y0 && y <= self.y1
    }

    /// The box seen by `vp`, grown by `margin_px` image pixels on every side.
    pub fn of_viewport(vp: &Viewport, margin_px: f64) -> WorldBox {
        WorldBox {
            x0: (vp.origin_x - margin_px) / vp.scale_x,
            y0: (vp.origin_y - margin_px) / vp.scale_y,
            x1: (vp.origin_x + vp.width as f64 + margin_px) / vp.scale_x,
            y1: (vp.origin_y + vp.height as f64 + margin_px) / vp.scale_y,
        }
    }

    /// West, south, east, north in degrees (latitudes clamp to the mercator square).
    pub fn to_lonlat(&self) -> [f64; 4] {
        [
            world_x_to_lon(self.x0),
            world_y_to_lat(self.y1),
            world_x_to_lon(self.x1),
            world_y_to_lat(self.y0),
        ]
    }
}

pub fn lon_to_world_x(lon: f64) -> f64 {
    (lon + 180.0) / 360.0
}

/// World y of a latitude; latitudes beyond ±[`MAX_LAT`] land on the map's edge (y = 0 or 1).
pub fn lat_to_world_y(lat: f64) -> f64 {
    let lat = lat.clamp(-MAX_LAT, MAX_LAT).to_radians();
    // The formula gives -1.1e-16 at MAX_LAT: without the clamp a point at the north pole
    // would fall just outside the world and be dropped, while one at the south pole (which
    // rounds inside) is kept on the edge.
    ((1.0 - (PI / 4.0 + lat / 2.0).tan().ln() / PI) / 2.0).clamp(0.0, 1.0)
}

pub fn world_x_to_lon(x: f64) -> f64 {
    x * 360.0 - 180.0
}

pub fn world_y_to_lat(y: f64) -> f64 {
    let n = PI * (1.0 - 2.0 * y);
    n.sinh().atan().to_degrees()
}

/// Web Mercator metres (EPSG:3857) to world units.
pub fn metres_to_world(mx: f64, my: f64) -> (f64, f64) {
    (
        (mx + HALF_WORLD_M) / (2.0 * HALF_WORLD_M),
        (HALF_WORLD_M - my) / (2.0 * HALF_WORLD_M),
    )
}

/// World units to Web Mercator metres (EPSG:3857).
pub fn world_to_metres(x: f64, y: f64) -> (f64, f64) {
    (
        x * 2.0 * HALF_WORLD_M - HALF_WORLD_M,
        HALF_WORLD_M - y * 2.0 * HALF_WORLD_M,
    )
}

/// The viewport of an overlay image of `width` x `height` over `area`.
///
/// When the area and size line up with the tile grid (the scale is 256 * 2^z for an integer
/// z and the corner falls on a whole global pixel, up to float noise from the degrees
/// round trip), both are snapped exactly, so the overlay equals the mosaic of tiles pixel
/// for pixel. Otherwise the image maps the area linearly, like the seed's overlay.
pub fn overlay_viewport(area: &WorldBox, width: u32, height: u32) -> Viewport {
    let mut scale_x = width as f64 / (area.x1 - area.x0);
    let mut scale_y = height as f64 / (area.y1 - area.y0);
    let mut origin_x = area.x0 * scale_x;
    let mut origin_y = area.y0 * scale_y;
    let zoom = (scale_x / TILE_SIZE as f64).log2();
    let snapped_zoom = zoom.round();
    let same_scale = ((scale_x - scale_y) / scale_x).abs() < 1e-9;
    if same_scale
        && (zoom - snapped_zoom).abs() < 1e-9
        && (0.0..=MAX_ZOOM as f64 + 1.0).contains(&snapped_zoom)
    {
        let exact = TILE_SIZE as f64 * snapped_zoom.exp2();
        let ox = area.x0 * exact;
        let oy = area.y0 * exact;
        if (ox - ox.round()).abs() < 1e-4 && (oy - oy.round()).abs() < 1e-4 {
            scale_x = exact;
            scale_y = exact;
            origin_x = ox.round();
            origin_y = oy.round();
        }
    }
    Viewport {
        scale_x,
        scale_y,
        origin_x,
        origin_y,
        width,
        height,
        zoom: (scale_x / TILE_SIZE as f64).log2(),
        pixel_ratio: 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lonlat_round_trips() {
        for (lon, lat) in [(0.0, 0.0), (-179.9, 85.0), (13.4, 52.5), (151.2, -33.9)] {
            let x = lon_to_world_x(lon);
            let y = lat_to_world_y(lat);
            assert!((world_x_to_lon(x) - lon).abs() < 1e-9);
            assert!((world_y_to_lat(y) - lat).abs() < 1e-9);
        }
        // The poles land exactly on the edges (inside the world), whatever the rounding.
        assert_eq!(lat_to_world_y(MAX_LAT), 0.0);
        assert_eq!(lat_to_world_y(90.0), 0.0);
        assert!((0.0..1.0).contains(&lat_to_world_y(-90.0)));
        assert!(lat_to_world_y(-90.0) > 1.0 - 1e-12);
        assert_eq!(
            metres_to_world(world_to_metres(0.5, 0.0).0, world_to_metres(0.5, 0.0).1).1,
            0.0
        );
        let (x, y) = metres_to_world(-HALF_WORLD_M, HALF_WORLD_M);
        assert_eq!((x, y), (0.0, 0.0));
        let (mx, my) = world_to_metres(0.75, 0.25);
        let (x, y) = metres_to_world(mx, my);
        assert!((x - 0.75).abs() < 1e-15 && (y - 0.25).abs() < 1e-15);
    }

    #[test]
    fn overlay_over_tiles_snaps_to_the_tile_grid() {
        let z = 5;
        let nw = TileCoord { z, x: 17, y: 10 }.world_box();
        let se = TileCoord { z, x: 18, y: 11 }.world_box();
        // Through degrees and back, as a client would send it.
        let [w, _, _, n] = nw.to_lonlat();
        let [_, s, e, _] = se.to_lonlat();
        let area = WorldBox {
            x0: lon_to_world_x(w),
            y0: lat_to_world_y(n),
            x1: lon_to_world_x(e),
            y1: lat_to_world_y(s),
        };
        let vp = overlay_viewport(&area, 512, 512);
        let tile = TileCoord { z, x: 17, y: 10 }.viewport(1);
        assert_eq!(vp.scale_x, tile.scale_x * 1.0);
        assert_eq!((vp.origin_x, vp.origin_y), (tile.origin_x, tile.origin_y));
        assert_eq!(vp.zoom, z as f64);
    }
}
