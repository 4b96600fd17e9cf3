//! A coarse count grid over the whole layer (1024 x 1024 cells): the estimate that decides
//! at which zooms tiles are rendered from pixel bins instead of single points.

/// Grid level: 2^10 cells per axis. A z10 tile is exactly one cell.
pub const LEVEL: u8 = 10;

/// Point counts per grid cell, and derived per-zoom maxima.
#[derive(Debug, Clone, PartialEq)]
pub struct CountGrid {
    /// The largest point count of any tile, per zoom 0..=24 (estimated beyond zoom 10 by
    /// spreading the densest cell evenly over its sub-tiles).
    max_tile_count: Vec<u64>,
    total: u64,
}

impl CountGrid {
    /// Builds from (cell x, cell y, count) triples at [`LEVEL`].
    pub fn from_cells(cells: impl IntoIterator<Item = (u32, u32, u64)>) -> CountGrid {
        // Summed on a dense grid of the finest level, then halved level by level: a hash
        // map per zoom over a million cells took a noticeable part of loading 10M points.
        let side = 1usize << LEVEL;
        let mut tiles = vec![0u64; side * side];
        for (x, y, n) in cells {
            let (x, y) = (x.min(side as u32 - 1), y.min(side as u32 - 1));
            tiles[y as usize * side + x as usize] += n;
        }
        let total = tiles.iter().sum();
        let mut max_tile_count = densest_per_zoom(tiles, LEVEL);
        let densest_cell = max_tile_count[usize::from(LEVEL)];
        for z in LEVEL + 1..=crate::tile::MAX_ZOOM {
            max_tile_count.push(densest_cell >> (2 * u32::from(z - LEVEL)).min(63));
        }
        CountGrid {
            max_tile_count,
            total,
        }
    }

    /// Cell of a world coordinate at [`LEVEL`] (clamped into the world).
    pub fn cell(v: f64) -> u32 {
        Self::clamp_cell((v * f64::from(1u32 << LEVEL)) as i64)
    }

    /// A cell from an unclamped `floor(v * 2^LEVEL)`: points on the world's far edge belong
    /// to the last cell.
    pub fn clamp_cell(cell: i64) -> u32 {
        cell.clamp(0, (1i64 << LEVEL) - 1) as u32
    }

    /// Whether tiles at `zoom` are drawn from bins: its densest tile holds more than
    /// `aggregate_above` points.
    pub fn is_dense(&self, zoom: f64, aggregate_above: u64) -> bool {
        self.max_tile_count(zoom) > aggregate_above
    }

    /// Estimated points in the densest tile at zoom `z` (fractional zooms round down).
    pub fn max_tile_count(&self, zoom: f64) -> u64 {
        let z = (zoom.max(0.0) as usize).min(self.max_tile_count.len().saturating_sub(1));
        self.max_tile_count.get(z).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.total
    }
}

/// Whether tiles at `zoom` are drawn from bins (the densest holds more than
/// `aggregate_above` points), from [`densest_per_zoom`]'s counts. A tile deeper than those
/// zooms holds no more than its ancestor at the deepest, so that one not being dense
/// settles it; None when it is dense (the deeper zoom needs another estimate).
pub fn dense_from_densest(densest: &[u64], zoom: f64, aggregate_above: u64) -> Option<bool> {
    let deepest = densest.len().checked_sub(1)?;
    let dense = densest[(zoom.max(0.0) as usize).min(deepest)] > aggregate_above;
    (zoom < densest.len() as f64 || !dense).then_some(dense)
}

/// The largest count of any tile at zooms `0..=level`, from `tiles`, the counts of the
/// zoom `level` tiles (2^level x 2^level, row by row), merged 2 x 2 zoom by zoom.
pub fn densest_per_zoom(mut tiles: Vec<u64>, level: u8) -> Vec<u64> {
    let mut densest = vec![0; usize::from(level) + 1];
    let mut width = 1usize << level;
    for z in (0..=usize::from(level)).rev() {
        densest[z] = tiles.iter().copied().max().unwrap_or(0);
        if z > 0 {
            let half = width / 2;
            tiles = (0..half * half)
                .map(|i| {
                    let (x, y) = (2 * (i % half), 2 * (i / half));
                    tiles[y * width + x]
                        + tiles[y * width + x + 1]
                        + tiles[(y + 1) * width + x]
                        + tiles[(y + 1) * width + x + 1]
                })
                .collect();
            width = half;
        }
    }
    densest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_zoom_maxima_sum_cells_into_tiles() {
        let grid = CountGrid::from_cells([(0, 0, 5), (1, 0, 7), (1023, 1023, 9), (512, 512, 1)]);
        assert_eq!(grid.total(), 22);
        assert_eq!(grid.max_tile_count(0.0), 22);
        assert_eq!(grid.max_tile_count(1.0), 12);
        assert_eq!(grid.max_tile_count(9.0), 12);
        assert_eq!(grid.max_tile_count(10.0), 9);
        assert_eq!(grid.max_tile_count(11.0), 2);
        assert_eq!(grid.max_tile_count(24.0), 0);
        assert_eq!(CountGrid::from_cells([]).max_tile_count(3.0), 0);
        assert_eq!(CountGrid::cell(1.0), 1023);
        assert_eq!(CountGrid::cell(-0.5), 0);
    }
}
