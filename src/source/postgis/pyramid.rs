//! Bin pyramids of imported layers: each zoom's pixel bins precomputed in PostGIS, so a dense
//! tile reads a few dozen blocks of sums instead of hundreds of thousands of points.
//!
//! `import` builds a layer's pyramid in the transaction that adds a file (and
//! `twine-heatmap pyramid` rebuilds it), for the zooms the server draws from bins: those
//! whose densest tile holds more than `aggregate_above` points. The pyramid records the data
//! version it was built from; the server reads it only while the table is at that version
//! and otherwise aggregates in SQL from the points, so a direct write to the table is never
//! hidden, only slower until the next rebuild.

use super::table_sql::TableStats;
use super::{DbError, Ident, TableName};
use crate::source::aggregate::{Bin, CellRange};
use crate::source::grid::{self, CountGrid};
use crate::tile::WorldBox;
use tokio_postgres::GenericClient;

/// Side of a pyramid block in pixels (the SQL function's `>> 6` and `& 63`).
const BLOCK_SHIFT: u32 = 6;
const BLOCK_SIDE: i64 = 1 << BLOCK_SHIFT;
/// Bytes per pixel in `weights` (int2 offset, float8 weight) and in `sums` (int8 count,
/// float8 x and y sums).
const WEIGHT_BYTES: usize = 10;
const SUM_BYTES: usize = 24;

/// Zoom 2's pixels are the count grid's cells ([`grid::LEVEL`] = 8 + 2): every pyramid has
/// it, and the server reads a layer's statistics there.
pub const GRID_ZOOM: u8 = grid::LEVEL - 8;

/// What `twine.pyramids` says about one table's pyramid.
#[derive(Debug, Clone, PartialEq)]
pub struct Pyramid {
    pub bins: TableName,
    pub version: u64,
    pub max_zoom: u8,
    /// Bounds of the points.
    pub bounds: WorldBox,
    /// The query of one zoom's blocks ([`blocks_sql`]).
    pub blocks_sql: String,
    /// The weight of the heaviest pixel of each zoom 0..=max_zoom (None: built before
    /// pyramids recorded it).
    pub max_weights: Option<Vec<f64>>,
}

impl Pyramid {
    /// The zoom whose pixels are `scale` cells per world unit, if the pyramid has it.
    pub fn zoom_of(&self, scale: f64) -> Option<u8> {
        (0..=self.max_zoom).find(|&z| 256.0 * f64::from(1u32 << z) == scale)
    }
}

/// The names of a layer's pyramid tables (all within PostgreSQL's 63 bytes for any layer
/// name `import` accepts).
struct Names {
    bins: Ident,
    building: Ident,
    building_key: Ident,
    key: Ident,
}

impl Names {
    fn for_layer(layer: &str) -> Result<Names, DbError> {
        Ok(Names {
            bins: Ident::new(&format!("bins_{layer}"))?,
            building: Ident::new(&format!("bins_{layer}_new"))?,
            building_key: Ident::new(&format!("bins_{layer}_new_pk"))?,
            key: Ident::new(&format!("bins_{layer}_pk"))?,
        })
    }
}

/// The highest zoom drawn from bins for a layer with `grid`, if any: the pyramid's top.
pub fn max_zoom(grid: &CountGrid, aggregate_above: u64) -> Option<u8> {
    (0..=crate::tile::MAX_ZOOM)
        .rev()
        .find(|&z| grid.is_dense(f64::from(z), aggregate_above))
}

/// A pyramid just built: its top zoom and how many bins its zooms hold together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Built {
    pub max_zoom: u8,
    pub bins: u64,
    /// Entries of the time pyramid built with it (layers with a time column).
    pub time_entries: Option<u64>,
}

/// The rows a pyramid is built from: the points query of the layer's table (yielding world
/// x, y and w, as the server reads them) and what one scan of it found.
pub struct Source<'a> {
    pub table: &'a TableName,
    pub points_sql: &'a str,
    pub version: u64,
    pub stats: &'a TableStats,
}

/// (Re)builds the pyramid of the imported layer `layer` from `source` inside the caller's
/// transaction, replacing the previous one at commit. Returns None when no zoom is dense
/// enough to need one (any old pyramid is dropped).
pub async fn build(
    tx: &impl GenericClient,
    layer: &str,
    source: &Source<'_>,
    aggregate_above: u64,
) -> Result<Option<Built>, DbError> {
    let (points, grid) = (source.table, &source.stats.grid);
    let names = Names::for_layer(layer)?;
    let table = |name: &Ident| format!("twine.{}", name.quoted());
    let Some(top) = max_zoom(grid, aggregate_above) else {
        tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", table(&names.bins)))
            .await?;
        tx.execute(
            "DELETE FROM twine.pyramids WHERE table_name = $1",
            &[&points.key()],
        )
        .await?;
        return Ok(None);
    };
    let top_built = top.max(GRID_ZOOM);
    let bins: i64 = tx
        .query_one(
            "SELECT twine.build_pyramid($1, $2, $3)",
            &[
                &source.points_sql,
                &names.bins.as_str(),
                &i32::from(top_built),
            ],
        )
        .await?
        .get(0);
    // The old pyramid goes and the new one takes its name at commit; readers of the old one
    // hold the swap back only for as long as their query runs.
    tx.batch_execute(&format!(
        "DROP TABLE IF EXISTS {bins}; \
         ALTER TABLE {building} RENAME TO {bins_name}; \
         ALTER INDEX {building_key} RENAME TO {key}; \
         ANALYZE {bins}",
        bins = table(&names.bins),
        building = table(&names.building),
        bins_name = names.bins.quoted(),
        building_key = table(&names.building_key),
        key = names.key.quoted(),
    ))
    .await?;
    let WorldBox { x0, y0, x1, y1 } = source.stats.bounds.unwrap_or(WorldBox::WORLD);
    tx.execute(
        "INSERT INTO twine.pyramids (table_name, bins_table, version, max_zoom, point_count, x0, y0, x1, y1, max_weights) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
             (SELECT array_agg(w ORDER BY z) FROM pg_temp.twine_pyramid_maxima)) \
         ON CONFLICT (table_name) DO UPDATE SET bins_table = EXCLUDED.bins_table, \
             version = EXCLUDED.version, max_zoom = EXCLUDED.max_zoom, \
             point_count = EXCLUDED.point_count, x0 = EXCLUDED.x0, y0 = EXCLUDED.y0, \
             x1 = EXCLUDED.x1, y1 = EXCLUDED.y1, max_weights = EXCLUDED.max_weights, \
             built_at = now()",
        &[
            &points.key(),
            &names.bins.as_str(),
            &(source.version as i64),
            &i32::from(top_built),
            &(grid.total() as i64),
            &x0,
            &y0,
            &x1,
            &y1,
        ],
    )
    .await?;
    Ok(Some(Built {
        max_zoom: top_built,
        bins: bins.max(0) as u64,
        time_entries: None,
    }))
}

/// The pyramid of `points`, if one was built (whatever its version).
pub async fn find(
    client: &impl GenericClient,
    points: &TableName,
) -> Result<Option<Pyramid>, DbError> {
    // A server only reads: the table may not exist yet (nothing built), or lack the column
    // a newer version added (built by an older one, not migrated yet by `import`, `pyramid`
    // or `db init`).
    let present = client
        .query_one(
            "SELECT to_regclass('twine.pyramids') IS NOT NULL, EXISTS (SELECT 1 FROM pg_attribute \
             WHERE attrelid = to_regclass('twine.pyramids') AND attname = 'max_weights' \
             AND NOT attisdropped)",
            &[],
        )
        .await?;
    let (has_table, has_max_weights): (bool, bool) = (present.get(0), present.get(1));
    if !has_table {
        return Ok(None);
    }
    let max_weights = if has_max_weights {
        "max_weights"
    } else {
        "NULL::float8[]"
    };
    let Some(row) = client
        .query_opt(
            &format!(
                "SELECT bins_table, version, max_zoom, x0, y0, x1, y1, {max_weights} \
                 FROM twine.pyramids WHERE table_name = $1"
            ),
            &[&points.key()],
        )
        .await?
    else {
        return Ok(None);
    };
    let bins = twine_table(&row.get::<_, String>(0))?;
    Ok(Some(Pyramid {
        version: row.get::<_, i64>(1).max(0) as u64,
        max_zoom: row
            .get::<_, i32>(2)
            .clamp(0, i32::from(crate::tile::MAX_ZOOM)) as u8,
        bounds: WorldBox {
            x0: row.get(3),
            y0: row.get(4),
            x1: row.get(5),
            y1: row.get(6),
        },
        max_weights: row.get(7),
        blocks_sql: blocks_sql(&bins),
        bins,
    }))
}

/// A table of schema `twine` named as a bookkeeping row records it (checked, not trusted).
pub(super) fn twine_table(name: &str) -> Result<TableName, DbError> {
    Ok(TableName {
        schema: Ident::new("twine")?,
        table: Ident::new(name)?,
    })
}

/// The SQL reading the blocks of one zoom that hold the cells of a range: `$1` zoom, `$2..$5`
/// first and last block row and column.
fn blocks_sql(bins: &TableName) -> String {
    format!(
        "SELECT block_y, block_x, weights, sums FROM {} \
         WHERE z = $1::int2 AND block_y BETWEEN $2::int4 AND $3::int4 \
         AND block_x BETWEEN $4::int4 AND $5::int4",
        bins.quoted(),
    )
}

/// The block bounds (`$2..$5` of [`blocks_sql`]) covering `cells`.
pub fn block_params(cells: &CellRange) -> [i32; 4] {
    let block = |v: i64| (v >> BLOCK_SHIFT).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
    [
        block(cells.y0),
        block(cells.y1 - 1),
        block(cells.x0),
        block(cells.x1 - 1),
    ]
}

/// Why a block could not be read: the pyramid table holds something this server did not write.
#[derive(Debug, thiserror::Error)]
#[error("pyramid block {block_y}/{block_x} is malformed ({what})")]
pub struct BadBlock {
    block_y: i32,
    block_x: i32,
    what: &'static str,
}

/// Appends the bins of one block that lie in `cells` to `out`. Without `sums`, counts and
/// position sums are left at zero.
pub fn decode_block(
    block_y: i32,
    block_x: i32,
    weights: &[u8],
    sums: Option<&[u8]>,
    cells: &CellRange,
    out: &mut Vec<Bin>,
) -> Result<(), BadBlock> {
    let bad = |what| BadBlock {
        block_y,
        block_x,
        what,
    };
    if weights.len() % WEIGHT_BYTES != 0 {
        return Err(bad("weights length"));
    }
    let pixels = weights.len() / WEIGHT_BYTES;
    if let Some(sums) = sums {
        if sums.len() != pixels * SUM_BYTES {
            return Err(bad("sums length"));
        }
    }
    let (x0, y0) = (
        i64::from(block_x) * BLOCK_SIDE,
        i64::from(block_y) * BLOCK_SIDE,
    );
    for (i, w) in weights.chunks_exact(WEIGHT_BYTES).enumerate() {
        let offset = i64::from(u16::from_be_bytes([w[0], w[1]]));
        if offset >= BLOCK_SIDE * BLOCK_SIDE {
            return Err(bad("pixel offset"));
        }
        let (bx, by) = (x0 + offset % BLOCK_SIDE, y0 + offset / BLOCK_SIDE);
        if !cells.contains(bx, by) {
            continue;
        }
        let mut bin = Bin {
            bx,
            by,
            weight: f64_at(w, 2),
            ..Bin::default()
        };
        if let Some(sums) = sums {
            let s = &sums[i * SUM_BYTES..(i + 1) * SUM_BYTES];
            bin.count = i64::from_be_bytes(array8(s, 0)).max(0) as u64;
            bin.wx = f64_at(s, 8);
            bin.wy = f64_at(s, 16);
        }
        out.push(bin);
    }
    Ok(())
}

fn array8(bytes: &[u8], at: usize) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&bytes[at..at + 8]);
    a
}

fn f64_at(bytes: &[u8], at: usize) -> f64 {
    f64::from_be_bytes(array8(bytes, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(pixels: &[(u16, f64)]) -> Vec<u8> {
        pixels
            .iter()
            .flat_map(|(o, w)| o.to_be_bytes().into_iter().chain(w.to_be_bytes()))
            .collect()
    }

    #[test]
    fn blocks_decode_to_global_cells_within_the_range() {
        let w = weights(&[(0, 1.0), (65, 2.5), (4095, 3.0)]);
        let sums: Vec<u8> = [(1i64, 0.1f64, 0.2f64), (2, 0.3, 0.4), (3, 0.5, 0.6)]
            .iter()
            .flat_map(|(n, x, y)| {
                n.to_be_bytes()
                    .into_iter()
                    .chain(x.to_be_bytes())
                    .chain(y.to_be_bytes())
            })
            .collect();
        let all = CellRange {
            x0: 0,
            x1: 1000,
            y0: 0,
            y1: 1000,
        };
        let mut out = Vec::new();
        decode_block(2, 3, &w, Some(&sums), &all, &mut out).expect("decodes");
        let cells: Vec<(i64, i64)> = out.iter().map(|b| (b.bx, b.by)).collect();
        assert_eq!(cells, vec![(192, 128), (193, 129), (255, 191)]);
        assert_eq!((out[1].count, out[1].weight, out[1].wx), (2, 2.5, 0.3));
        // Only the cells in the range, and without sums no counts.
        let one = CellRange {
            x0: 193,
            x1: 194,
            y0: 129,
            y1: 130,
        };
        let mut out = Vec::new();
        decode_block(2, 3, &w, None, &one, &mut out).expect("decodes");
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].count, out[0].weight), (0, 2.5));
    }

    #[test]
    fn malformed_blocks_are_errors_not_panics() {
        let all = CellRange {
            x0: i64::MIN / 2,
            x1: i64::MAX / 2,
            y0: i64::MIN / 2,
            y1: i64::MAX / 2,
        };
        let mut out = Vec::new();
        assert!(decode_block(0, 0, &[0; 9], None, &all, &mut out).is_err());
        assert!(decode_block(0, 0, &weights(&[(4096, 1.0)]), None, &all, &mut out).is_err());
        assert!(decode_block(0, 0, &weights(&[(1, 1.0)]), Some(&[0; 23]), &all, &mut out).is_err());
    }

    #[test]
    fn block_bounds_cover_the_cells() {
        let cells = CellRange {
            x0: -40,
            x1: 296,
            y0: 64,
            y1: 128,
        };
        assert_eq!(block_params(&cells), [1, 1, -1, 4]);
    }

    #[test]
    fn the_pyramid_reaches_the_densest_aggregated_zoom() {
        let grid = CountGrid::from_cells([(5, 5, 300_000), (900, 900, 10)]);
        // 300k in one z10 cell: z11 holds an estimated 75k, z12 18,750, z13 4,687.
        assert_eq!(max_zoom(&grid, 20_000), Some(11));
        assert_eq!(max_zoom(&grid, 4_000), Some(13));
        assert_eq!(max_zoom(&grid, 300_000), Some(0));
        assert_eq!(max_zoom(&grid, 300_010), None);
        let bins = TableName::parse("twine.bins_x").expect("name");
        let p = Pyramid {
            max_weights: None,
            blocks_sql: blocks_sql(&bins),
            bins,
            version: 1,
            max_zoom: 11,
            bounds: WorldBox::WORLD,
        };
        assert_eq!(p.zoom_of(256.0 * 2048.0), Some(11));
        assert_eq!(p.zoom_of(256.0 * 4096.0), None);
        assert_eq!(p.zoom_of(1000.0), None);
    }
}
