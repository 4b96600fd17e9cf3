//! Which tiles a command covers: `--zoom` and `--bbox` parsed with the tile route's checks,
//! and the tiles they span. `seed` and `cache purge` share it, so purging a seeded box
//! removes exactly what was seeded.

use super::{fail, CommandError};
use crate::config::parse_zoom_range;
use crate::style::{parse_bbox, Query};
use crate::tile::{TileCoord, WorldBox};
use std::ops::RangeInclusive;

/// The columns and rows of the tiles at zoom `z` that overlap `area` (touching an edge is
/// not overlapping; a zero-size area still gets the tile it lies in). `seed` and `purge` both
/// use it, so purging a seeded box removes exactly what was seeded.
pub fn tile_range(area: &WorldBox, z: u8) -> (RangeInclusive<u32>, RangeInclusive<u32>) {
    let n = TileCoord::count(z) as f64;
    let axis = |lo: f64, hi: f64| {
        let last = n - 1.0;
        let first = (lo * n).floor().clamp(0.0, last);
        let end = ((hi * n).ceil() - 1.0).clamp(first, last);
        // Both are whole numbers within 0..2^24, exact in u32.
        first as u32..=end as u32
    };
    (axis(area.x0, area.x1), axis(area.y0, area.y1))
}

/// How many tiles a column or row range holds.
pub fn range_len(r: &RangeInclusive<u32>) -> u64 {
    u64::from(r.end() - r.start()) + 1
}

/// `--zoom`: `A-B` or one zoom.
pub fn parse_zoom_arg(text: &str) -> Result<(u8, u8), CommandError> {
    parse_zoom_range(text).map_err(|e| fail(format!("--zoom: {e}")))
}

/// `w,s,e,n` in degrees, with the same checks as the `bbox` query parameter.
pub fn parse_bbox_arg(text: &str) -> Result<WorldBox, CommandError> {
    let raw = form_urlencoded::Serializer::new(String::new())
        .append_pair("bbox", text)
        .finish();
    Query::parse(&raw, &[&["bbox"]])
        .and_then(|q| parse_bbox(&q))
        .map_err(|e| fail(format!("--bbox {text:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tile::{lat_to_world_y, lon_to_world_x};

    fn degrees(w: f64, s: f64, e: f64, n: f64) -> WorldBox {
        WorldBox {
            x0: lon_to_world_x(w),
            y0: lat_to_world_y(n),
            x1: lon_to_world_x(e),
            y1: lat_to_world_y(s),
        }
    }

    #[test]
    fn tile_ranges_cover_the_overlapping_tiles_only() {
        let world = WorldBox {
            x0: 0.0,
            y0: 0.0,
            x1: 1.0,
            y1: 1.0,
        };
        assert_eq!(tile_range(&world, 0), (0..=0, 0..=0));
        assert_eq!(tile_range(&world, 3), (0..=7, 0..=7));
        // The east edge at 90° is a tile edge at zoom 3: the tile east of it only touches.
        let (xs, _) = tile_range(&degrees(0.0, 0.0, 90.0, 60.0), 3);
        assert_eq!(xs, 4..=5);
        let (xs, ys) = tile_range(&degrees(10.0, 10.0, 80.0, 50.0), 4);
        assert_eq!((xs, ys), (8..=11, 5..=7));
        // A point (a one-point layer) still gets its tile; boxes past the world are clamped.
        let point = degrees(13.4, 52.5, 13.4, 52.5);
        assert_eq!(tile_range(&point, 10).0, 550..=550);
        assert_eq!(tile_range(&world.expand(0.5, 0.5), 2), (0..=3, 0..=3));
    }
}
