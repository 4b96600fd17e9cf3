//! One zoom's running sums through time: for each pixel that holds points, the time units it
//! holds points in, each with the count and weight of the pixel's points up to that unit, so
//! that any run of whole units costs two searches per pixel, however long it is.

use super::unit_points::UnitPoints;
use crate::source::aggregate::CellRange;

/// The running sums of one zoom's pixels.
///
/// Columns and rows run `0..=256 * 2^z`: a point on the world's far edge (x or y = 1) sits
/// in the last column or row, as [`crate::source::aggregate::bins_in`] puts it. The default
/// holds nothing.
#[derive(Debug, Default)]
pub struct RunningSums {
    /// The pixels of row `r` are `row_starts[r]..row_starts[r + 1]` (indices into `columns`).
    row_starts: Vec<u32>,
    /// Each pixel's column, ascending within its row.
    columns: Vec<u16>,
    /// The entries of pixel `k` are `pixel_starts[k]..pixel_starts[k + 1]`.
    pixel_starts: Vec<u32>,
    /// Ascending by unit within a pixel.
    entries: Vec<Entry>,
    /// Per entry, the total weight of the pixel's points in its unit or before; `None` when
    /// every weight is 1 (the weight is then the count).
    weights: Option<Vec<f64>>,
}

/// A unit that holds some of a pixel's points, and how many of them are in that unit or
/// before. Six bytes, unit and count together: a lookup touches one place, not two.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Entry {
    unit: u16,
    count: [u16; 2],
}

impl Entry {
    fn new(unit: u16, count: u32) -> Entry {
        Entry {
            unit,
            count: [count as u16, (count >> 16) as u16],
        }
    }

    fn count(&self) -> u32 {
        u32::from(self.count[0]) | (u32::from(self.count[1]) << 16)
    }
}

impl RunningSums {
    /// The running sums of `points`' pixels at zoom `z` (their zoom less `fine_shift`);
    /// their units must fit in a u16.
    pub fn build(z: u8, points: &UnitPoints<'_>) -> RunningSums {
        let units = points.units();
        let shift = points.fine_shift;
        // (row, column, position in unit order): sorted, each pixel's points come together,
        // in unit order.
        let mut keys: Vec<u64> = points
            .fine_pixels
            .iter()
            .enumerate()
            .map(|(at, &packed)| {
                let (column, row) = ((packed & 0xffff) >> shift, (packed >> 16) >> shift);
                (u64::from(row) << 48) | (u64::from(column) << 32) | at as u64
            })
            .collect();
        keys.sort_unstable();
        let side = 256u32 << z;
        let mut sums = RunningSums {
            row_starts: Vec::with_capacity(side as usize + 2),
            weights: points.weights.map(|_| Vec::new()),
            ..RunningSums::default()
        };
        let mut pixels = keys.chunk_by(|a, b| a >> 32 == b >> 32);
        for pixel in &mut pixels {
            let (row, column) = ((pixel[0] >> 48) as u32, ((pixel[0] >> 32) & 0xffff) as u16);
            while sums.row_starts.len() <= row as usize {
                sums.row_starts.push(sums.columns.len() as u32);
            }
            sums.columns.push(column);
            sums.pixel_starts.push(sums.entries.len() as u32);
            let (first_entry, mut count, mut weight) = (sums.entries.len(), 0u32, 0f64);
            for &key in pixel {
                let at = (key & 0xffff_ffff) as usize;
                let unit = units[at];
                count += 1;
                weight += points.weight(at);
                let same_unit = sums.entries.len() > first_entry
                    && sums.entries.last().is_some_and(|e| e.unit == unit);
                match sums.entries.last_mut() {
                    // Another point in the same unit: the running sums take it in.
                    Some(last) if same_unit => *last = Entry::new(unit, count),
                    _ => {
                        sums.entries.push(Entry::new(unit, count));
                        if let Some(w) = &mut sums.weights {
                            w.push(0.0);
                        }
                    }
                }
                if let Some(last) = sums.weights.as_mut().and_then(|w| w.last_mut()) {
                    *last = weight;
                }
            }
        }
        while sums.row_starts.len() <= side as usize + 1 {
            sums.row_starts.push(sums.columns.len() as u32);
        }
        sums.pixel_starts.push(sums.entries.len() as u32);
        sums.shrink();
        sums
    }

    fn shrink(&mut self) {
        self.columns.shrink_to_fit();
        self.pixel_starts.shrink_to_fit();
        self.entries.shrink_to_fit();
        if let Some(w) = &mut self.weights {
            w.shrink_to_fit();
        }
    }

    /// Entries held: (unit, pixel) pairs with points.
    pub fn entries(&self) -> usize {
        self.entries.len()
    }

    pub fn bytes(&self) -> usize {
        self.row_starts.len() * 4
            + self.columns.len() * 2
            + self.pixel_starts.len() * 4
            + self.entries.len() * std::mem::size_of::<Entry>()
            + self.weights.as_ref().map_or(0, |w| w.len() * 8)
    }

    /// Visits (column, row, count, weight) of every pixel within `cells` that holds points
    /// in units `from_unit..to_unit`, row by row, columns ascending.
    pub fn for_each_in(
        &self,
        cells: &CellRange,
        from_unit: u32,
        to_unit: u32,
        mut visit: impl FnMut(i64, i64, u32, f64),
    ) {
        // Rows 0..=side; none in empty sums.
        let rows = self.row_starts.len().saturating_sub(1) as i64;
        let (y0, y1) = (cells.y0.max(0), cells.y1.min(rows));
        for row in y0..y1 {
            let (start, end) = (
                self.row_starts[row as usize] as usize,
                self.row_starts[row as usize + 1] as usize,
            );
            let columns = &self.columns[start..end];
            let first = start + columns.partition_point(|&c| i64::from(c) < cells.x0);
            let last = start + columns.partition_point(|&c| i64::from(c) < cells.x1);
            for k in first..last {
                let (count, weight) = self.window(k, from_unit, to_unit);
                if count > 0 {
                    visit(i64::from(self.columns[k]), row, count, weight);
                }
            }
        }
    }

    /// The count and weight of pixel `k`'s points in units `from_unit..to_unit`.
    fn window(&self, k: usize, from_unit: u32, to_unit: u32) -> (u32, f64) {
        let (start, end) = (
            self.pixel_starts[k] as usize,
            self.pixel_starts[k + 1] as usize,
        );
        let entries = &self.entries[start..end];
        // Plain binary searches: interpolating from the first and last units, and a skip
        // list in cache with one block read per search, both measured no faster: the cost is
        // the cache misses of reading each pixel's entries at all.
        let a = entries.partition_point(|e| u32::from(e.unit) < from_unit);
        let b = a + entries[a..].partition_point(|e| u32::from(e.unit) < to_unit);
        if a == b {
            return (0, 0.0);
        }
        // Sums up to (not including) entry `i` of the pixel.
        let before = |i: usize| -> (u32, f64) {
            if i == 0 {
                return (0, 0.0);
            }
            let count = entries[i - 1].count();
            let weight = self
                .weights
                .as_ref()
                .map_or(f64::from(count), |w| w[start + i - 1]);
            (count, weight)
        };
        let ((count_a, weight_a), (count_b, weight_b)) = (before(a), before(b));
        (count_b - count_a, weight_b - weight_a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pixels at zoom 1 (fine_shift 0) of points in units 0..4, weighted.
    #[test]
    fn windows_sum_exactly_the_units_they_cover() {
        // (column, row, unit, weight), in unit order.
        let points = [
            (3u32, 1u32, 0u16, 1.0f32),
            (3, 1, 0, 2.0),
            (500, 7, 0, 1.0),
            (3, 1, 1, 4.0),
            (512, 512, 2, 1.0),
            (3, 1, 3, 8.0),
            (4, 1, 3, 16.0),
        ];
        let fine_pixels: Vec<u32> = points.iter().map(|p| (p.1 << 16) | p.0).collect();
        // Where each unit's points start (units 0..4), and the end.
        let unit_starts: Vec<u32> = (0..=4u16)
            .map(|u| points.iter().filter(|p| p.2 < u).count() as u32)
            .collect();
        let weights: Vec<f32> = points.iter().map(|p| p.3).collect();
        let sums = RunningSums::build(
            1,
            &UnitPoints {
                fine_pixels: &fine_pixels,
                weights: Some(&weights),
                unit_starts: &unit_starts,
                fine_shift: 0,
            },
        );
        assert_eq!(sums.entries(), 6);
        let everything = CellRange {
            x0: -5,
            x1: 1000,
            y0: -5,
            y1: 1000,
        };
        let collect = |cells: &CellRange, a, b| {
            let mut got = Vec::new();
            sums.for_each_in(cells, a, b, |x, y, c, w| got.push((x, y, c, w)));
            got
        };
        assert_eq!(
            collect(&everything, 0, 4),
            vec![
                (3, 1, 4, 15.0),
                (4, 1, 1, 16.0),
                (500, 7, 1, 1.0),
                (512, 512, 1, 1.0)
            ]
        );
        assert_eq!(
            collect(&everything, 1, 3),
            vec![(3, 1, 1, 4.0), (512, 512, 1, 1.0)]
        );
        assert_eq!(
            collect(&everything, 0, 1),
            vec![(3, 1, 2, 3.0), (500, 7, 1, 1.0)]
        );
        assert_eq!(collect(&everything, 3, 3), vec![]);
        assert_eq!(collect(&everything, 4, 9), vec![]);
        // Cells cut rows and columns.
        let cells = CellRange {
            x0: 4,
            x1: 501,
            y0: 1,
            y1: 8,
        };
        assert_eq!(
            collect(&cells, 0, 4),
            vec![(4, 1, 1, 16.0), (500, 7, 1, 1.0)]
        );
    }
}
