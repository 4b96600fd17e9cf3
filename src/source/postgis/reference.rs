//! Density references of a table without a usable pyramid, at a cost bounded by rows read.
//!
//! The density style's default `max` is the heaviest cell of a power-of-two grid (the
//! layer's reference cell for the zoom). The statistics scan a table needs anyway (its count
//! grid) also sums each grid cell's weight, so:
//! - for cells as large as the grid's or larger, the reference is a sum of grid cells: exact,
//!   and no query at all;
//! - for finer cells, a cell's weight is at most its grid cell's, so the grid cells are
//!   searched heaviest first, each with one index-backed query of its own points, until the
//!   next one is no heavier than the best fine cell found (exact), or until
//!   [`FINE_SEARCH_ROW_BUDGET`] rows have been read (then the heaviest fine cell found so far,
//!   in the heaviest regions, stands in: the cost stays bounded on any table).

use crate::source::aggregate::max_block_weight;
use crate::source::grid::LEVEL;

/// Rows a fine reference search may read before it settles for the best cell found: a second
/// or two of PostgreSQL time (figures in benches/README.md). On clustered data the heaviest
/// grid cells, read first, hold the heaviest fine cell, so the answer found is usually exact
/// even when the budget ends the search before it can prove it.
pub const FINE_SEARCH_ROW_BUDGET: u64 = 1_000_000;

/// One cell of the count grid (`2^-LEVEL` world units on a side) with the rows in it and their
/// summed weight (positive, finite weights only, as the memory store counts them). Not clamped
/// to the grid, unlike the count grid's cells: a point at x = 1 is in column 2^LEVEL, as in
/// the bins (`bins_in`), so the sums are the bins'.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellWeight {
    pub cx: i64,
    pub cy: i64,
    pub rows: u64,
    pub weight: f64,
}

/// The weighted cells of one statistics scan, heaviest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CellWeights {
    heaviest_first: Vec<CellWeight>,
}

impl CellWeights {
    /// Keeps the cells with weight (a cell of only zero or negative weights never holds the
    /// heaviest cell) and orders them heaviest first.
    pub fn new(cells: impl IntoIterator<Item = CellWeight>) -> CellWeights {
        let mut heaviest_first: Vec<CellWeight> =
            cells.into_iter().filter(|c| c.weight > 0.0).collect();
        heaviest_first.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        CellWeights { heaviest_first }
    }

    /// The side of a grid cell in world units.
    pub fn grid_cell() -> f64 {
        1.0 / f64::from(1u32 << LEVEL)
    }

    /// The reference for cells of `cell` world units (a power of two), when they are grid
    /// cells or blocks of them: exact, from the grid alone. 1 for a layer without weight, as
    /// the memory store gives.
    pub fn block_max(&self, cell: f64) -> Option<f64> {
        // NaN is not at least a grid cell either.
        if cell.is_nan() || cell < Self::grid_cell() {
            return None;
        }
        let k = (cell / Self::grid_cell())
            .round()
            .min(f64::from(1u32 << LEVEL)) as i64;
        let max = max_block_weight(
            self.heaviest_first.iter().map(|c| (c.cx, c.cy, c.weight)),
            k,
        );
        Some(if max > 0.0 { max } else { 1.0 })
    }

    /// The grid cells a fine search must visit, heaviest first: a fine cell lies in one grid
    /// cell and weighs at most as much, so the search stops at the first grid cell no heavier
    /// than the best fine cell found.
    pub fn heaviest_first(&self) -> &[CellWeight] {
        &self.heaviest_first
    }
}

/// How a fine search ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FineSearch {
    /// The heaviest fine cell found (1 when none has weight).
    pub max: f64,
    /// Grid cells queried.
    pub cells: usize,
    /// Rows those queries read.
    pub rows: u64,
    /// Whether every grid cell that could hold a heavier fine cell was visited.
    pub exact: bool,
}

/// Runs the bounded search: `fine_max(cell)` gives the heaviest fine cell inside one grid cell.
pub async fn search_fine<F, Fut, E>(
    cells: &CellWeights,
    row_budget: u64,
    mut fine_max: F,
) -> Result<FineSearch, E>
where
    F: FnMut(CellWeight) -> Fut,
    Fut: std::future::Future<Output = Result<f64, E>>,
{
    let mut search = FineSearch {
        max: 0.0,
        cells: 0,
        rows: 0,
        exact: true,
    };
    for &cell in cells.heaviest_first() {
        if cell.weight <= search.max {
            break;
        }
        // The first cell is always read, so the answer comes from the densest region.
        if search.cells > 0 && search.rows.saturating_add(cell.rows) > row_budget {
            search.exact = false;
            break;
        }
        search.max = search.max.max(fine_max(cell).await?);
        search.cells += 1;
        search.rows = search.rows.saturating_add(cell.rows);
    }
    if search.max <= 0.0 {
        search.max = 1.0;
    }
    Ok(search)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(cx: i64, cy: i64, rows: u64, weight: f64) -> CellWeight {
        CellWeight {
            cx,
            cy,
            rows,
            weight,
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(f)
    }

    #[test]
    fn blocks_of_grid_cells_sum_exactly_and_finer_cells_need_a_search() {
        let w = CellWeights::new([
            cell(0, 0, 3, 3.0),
            cell(1, 0, 2, 2.0),
            cell(2, 2, 4, 4.0),
            cell(9, 9, 1, -5.0),
        ]);
        let g = CellWeights::grid_cell();
        assert_eq!(w.block_max(g), Some(4.0));
        // Cells 0,0 and 1,0 share a 2 x 2 block.
        assert_eq!(w.block_max(2.0 * g), Some(5.0));
        assert_eq!(w.block_max(1.0), Some(9.0));
        assert_eq!(w.block_max(g / 2.0), None);
        assert_eq!(w.block_max(f64::NAN), None);
        assert_eq!(CellWeights::new([]).block_max(g), Some(1.0));
        assert_eq!(w.heaviest_first().len(), 3);
        assert_eq!(w.heaviest_first()[0].weight, 4.0);
    }

    #[test]
    fn the_search_stops_when_no_lighter_cell_can_win() {
        let w = CellWeights::new([
            cell(0, 0, 10, 10.0),
            cell(1, 0, 8, 8.0),
            cell(2, 0, 6, 6.0),
            cell(3, 0, 5, 5.0),
        ]);
        // Fine maxima per grid cell: 4, 7, 6, 5. After 10 -> 4 and 8 -> 7, cell 6 can't beat 7.
        let fine = |c: CellWeight| async move {
            Ok::<f64, ()>(match c.cx {
                0 => 4.0,
                1 => 7.0,
                2 => 6.0,
                _ => 5.0,
            })
        };
        let s = block_on(search_fine(&w, 1000, fine)).expect("no error");
        assert_eq!(
            s,
            FineSearch {
                max: 7.0,
                cells: 2,
                rows: 18,
                exact: true
            }
        );
        // A budget of 12 rows reads the heaviest cell only, and says so.
        let s = block_on(search_fine(&w, 12, fine)).expect("no error");
        assert_eq!((s.max, s.cells, s.exact), (4.0, 1, false));
        // Nothing to read: 1, like a layer without weight.
        let s = block_on(search_fine(&CellWeights::default(), 12, fine)).expect("no error");
        assert_eq!((s.max, s.cells, s.exact), (1.0, 0, true));
    }

    #[test]
    fn errors_stop_the_search() {
        let w = CellWeights::new([cell(0, 0, 10, 10.0)]);
        let failing = |_| async { Err::<f64, &str>("gone") };
        assert_eq!(block_on(search_fine(&w, 1000, failing)), Err("gone"));
    }
}
