//! Time pyramids of PostGIS layers with a time column: each zoom's pixels through time in
//! UTC days, so that a tile filtered by a window of whole days reads at most two rows per
//! block, whatever the window's length and however many points it holds.
//!
//! Built in SQL (`twine.build_time_pyramid`, schema.sql) next to the bin pyramid, for the
//! same zooms and two coarser levels, by `import` and `twine-heatmap pyramid`; read only while
//! the table is at the version it was built from. Rows are cut into chunks of days per zoom; a row holds each
//! pixel's running count and weight before its chunk (`base`) and its count and weight on
//! each day of the chunk (`days`). A pixel's running sums up to day `d` are its base plus
//! its days before `d` in the chunk holding `d`, and a window `[a, b)` of days is the
//! difference of the sums up to `b` and up to `a`. Days at a window's ends that are only
//! partly inside it are summed from the points by the caller.
//!
//! Level -2 (cells of 4 x 4 zoom 0 pixels: the zoom 6 tiles) is one block for the whole
//! world, so a window's densest tile at zooms 0-6 costs two small rows, not zoom 0's world.

use super::{DbError, Ident, TableName};
use crate::source::aggregate::{pixel_zoom, Bin, CellRange};
use tokio_postgres::GenericClient;

/// Base entries of a zoom may take up to this many times its day entries: at 10M points
/// over two years, zoom 0 (65,000 pixels, 8M pixel-days) gets chunks of six days.
const BASE_BUDGET: f64 = 1.0;
const DAY_MS: i64 = 86_400_000;
/// The coarsest level built: its cells are the zoom 6 tiles, 64 x 64 for the world.
pub const COARSEST: i16 = -2;
/// The row layout this server writes and reads (`twine.time_pyramids.layout`): levels from
/// [`COARSEST`], weights only in the entries of weighted pyramids.
const LAYOUT: i32 = 2;
/// Bytes of a base entry (int2 offset, int4 count) and of a day entry (int2 offset, int2
/// day, int4 count), each followed by a float8 weight when the pyramid is weighted. Layers
/// whose weights are all 1 (most) leave it out: 6 and 8 bytes, not 14 and 16.
fn entry_bytes(weighted: bool) -> (usize, usize) {
    let weight = if weighted { 8 } else { 0 };
    (6 + weight, 8 + weight)
}
const BLOCK_SHIFT: u32 = 6;
const BLOCK_SIDE: i64 = 1 << BLOCK_SHIFT;

/// What `twine.time_pyramids` says about one table's time pyramid.
#[derive(Debug, Clone, PartialEq)]
pub struct TimePyramid {
    pub bins: TableName,
    pub version: u64,
    pub max_zoom: u8,
    /// Days since 1970-01-01 (UTC) of the earliest point, and how many days follow.
    pub first_day: i64,
    pub days: i64,
    /// Days per chunk, per level [`COARSEST`]..=max_zoom.
    pub chunk_days: Vec<i64>,
    /// Whether entries hold weights (some point's weight is not 1); else a weight is its count.
    pub weighted: bool,
    /// (category column, value) of parts 1, 2, ...; part 0 holds every timed point.
    pub parts: Vec<(String, String)>,
    /// Whether every point has a time: only then does a filter on categories alone (which
    /// keeps points without one) sum parts.
    pub all_timed: bool,
    /// The query of one zoom's rows ([`rows_sql`]).
    pub rows_sql: String,
}

/// A window cut at whole days: the days `[a, b)` (relative to the pyramid's first day) that
/// the pyramid answers, and the parts at either end, in milliseconds, that it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowDays {
    pub days: Option<(i64, i64)>,
    pub head: Option<(i64, i64)>,
    pub tail: Option<(i64, i64)>,
}

impl TimePyramid {
    /// The zoom whose pixels are `scale` cells per world unit, if the pyramid has it.
    pub fn zoom_of(&self, scale: f64) -> Option<u8> {
        pixel_zoom(scale).filter(|&z| z <= self.max_zoom)
    }

    /// `[from, to)` (milliseconds; an open end is `i64::MIN` or `i64::MAX`) as whole days of
    /// the pyramid and the partial days at its ends. A window inside one day has no whole
    /// days: it is all head.
    pub fn window_days(&self, from: i64, to: i64) -> WindowDays {
        let none = WindowDays {
            days: None,
            head: None,
            tail: None,
        };
        if from >= to {
            return none;
        }
        let start = (
            self.first_day * DAY_MS,
            (self.first_day + self.days) * DAY_MS,
        );
        // Only the pyramid's days hold points: the window is cut to them.
        let (from, to) = (from.max(start.0), to.min(start.1));
        if from >= to {
            return none;
        }
        let (a, b) = (
            from.div_euclid(DAY_MS) + i64::from(from.rem_euclid(DAY_MS) != 0),
            to.div_euclid(DAY_MS),
        );
        if a >= b {
            return WindowDays {
                head: Some((from, to)),
                ..none
            };
        }
        WindowDays {
            days: Some((a - self.first_day, b - self.first_day)),
            head: (from < a * DAY_MS).then_some((from, a * DAY_MS)),
            tail: (b * DAY_MS < to).then_some((b * DAY_MS, to)),
        }
    }

    /// Days per chunk at `level` ([`COARSEST`]..=max_zoom).
    pub fn chunk_days(&self, level: i16) -> i64 {
        let at = usize::try_from(level - COARSEST).unwrap_or(0);
        self.chunk_days.get(at).copied().unwrap_or(1).max(1)
    }

    /// The chunks holding the running sums up to days `a` and `b` at `level`.
    pub fn chunks(&self, level: i16, (a, b): (i64, i64)) -> (i32, i32) {
        let every = self.chunk_days(level);
        let last = (self.days - 1).div_euclid(every);
        let chunk = |d: i64| (d.div_euclid(every)).min(last) as i32;
        (chunk(a), chunk(b))
    }
}

/// The SQL reading the rows of one zoom's blocks in two chunks: `$1` zoom, `$2..$5` first and
/// last block row and column, `$6` and `$7` the chunks, `$8` the parts; a row's base is left
/// out when both chunks are the same (a window within one chunk reads days only).
fn rows_sql(bins: &TableName) -> String {
    format!(
        "SELECT block_y, block_x, chunk, CASE WHEN $6::int4 = $7::int4 THEN ''::bytea ELSE base END, days \
         FROM {} WHERE z = $1::int2 AND part = ANY($8::int2[]) AND block_y BETWEEN $2::int4 AND $3::int4 \
         AND block_x BETWEEN $4::int4 AND $5::int4 AND chunk IN ($6::int4, $7::int4)",
        bins.quoted(),
    )
}

impl TimePyramid {
    /// The parts whose sum is the points `filter` keeps, when the pyramid answers it: a
    /// window alone (part 0), or values of one column with parts, with a window or, when
    /// every point has a time, without one.
    pub fn parts_for(
        &self,
        filter: &crate::source::attributes::AttributeFilter,
    ) -> Option<Vec<i16>> {
        match filter.categories.as_slice() {
            [] => filter.window().map(|_| vec![0]),
            [(column, values)] => {
                if filter.window().is_none() && !self.all_timed {
                    return None;
                }
                if !self.parts.iter().any(|(c, _)| c == column) {
                    return None;
                }
                // A value without a part has no points (the column's values all have one).
                Some(
                    self.parts
                        .iter()
                        .enumerate()
                        .filter(|(_, (c, v))| c == column && values.contains(v))
                        .map(|(k, _)| k as i16 + 1)
                        .collect(),
                )
            }
            _ => None,
        }
    }
}

/// Counts and weights of a range of cells through a window, summed from time pyramid rows.
pub struct WindowSums {
    cells: CellRange,
    width: i64,
    /// Whether entries hold weights ([`entry_bytes`]).
    weighted: bool,
    counts: Vec<i64>,
    weights: Vec<f64>,
}

/// Why a row could not be read: the table holds something this server did not write.
#[derive(Debug, thiserror::Error)]
#[error("time pyramid row {block_y}/{block_x} chunk {chunk} is malformed ({what})")]
pub struct BadRow {
    block_y: i32,
    block_x: i32,
    chunk: i32,
    what: &'static str,
}

/// One row of [`rows_sql`]'s answer.
pub struct Row<'a> {
    pub block_y: i32,
    pub block_x: i32,
    pub chunk: i32,
    pub base: &'a [u8],
    pub days: &'a [u8],
}

impl WindowSums {
    /// Sums over `cells`, which must be a tile's or the world's at one level (a few hundred
    /// thousand cells at most), from rows of a pyramid that is `weighted` or not.
    pub fn new(cells: &CellRange, weighted: bool) -> WindowSums {
        let (width, height) = (cells.x1 - cells.x0, cells.y1 - cells.y0);
        let n = (width.max(0) * height.max(0)) as usize;
        WindowSums {
            cells: *cells,
            width,
            weighted,
            counts: vec![0; n],
            weights: vec![0.0; n],
        }
    }

    fn at(&self, bx: i64, by: i64) -> Option<usize> {
        self.cells
            .contains(bx, by)
            .then(|| ((by - self.cells.y0) * self.width + (bx - self.cells.x0)) as usize)
    }

    /// Adds (`sign` 1) or takes away (-1) the running sums of `row`'s pixels up to day
    /// `until` of its chunk (relative to the chunk's first day); with `since`, only the days
    /// from it on (a window within one chunk, whose base cancels out).
    pub fn apply(
        &mut self,
        row: &Row<'_>,
        since: Option<i64>,
        until: i64,
        sign: i64,
    ) -> Result<(), BadRow> {
        let bad = |what| BadRow {
            block_y: row.block_y,
            block_x: row.block_x,
            chunk: row.chunk,
            what,
        };
        let (base_bytes, day_bytes) = entry_bytes(self.weighted);
        if row.base.len() % base_bytes != 0 {
            return Err(bad("base length"));
        }
        if row.days.len() % day_bytes != 0 {
            return Err(bad("days length"));
        }
        let origin = (
            i64::from(row.block_x) * BLOCK_SIDE,
            i64::from(row.block_y) * BLOCK_SIDE,
        );
        let cell = |offset: i64| -> Result<(i64, i64), BadRow> {
            if !(0..BLOCK_SIDE * BLOCK_SIDE).contains(&offset) {
                return Err(bad("pixel offset"));
            }
            Ok((
                origin.0 + (offset & (BLOCK_SIDE - 1)),
                origin.1 + (offset >> BLOCK_SHIFT),
            ))
        };
        if since.is_none() {
            for e in row.base.chunks_exact(base_bytes) {
                let (bx, by) = cell(i64::from(i16::from_be_bytes([e[0], e[1]])))?;
                if let Some(i) = self.at(bx, by) {
                    self.add_entry(i, e, 2, sign);
                }
            }
        }
        let since = since.unwrap_or(i64::MIN);
        for e in row.days.chunks_exact(day_bytes) {
            let day = i64::from(i16::from_be_bytes([e[2], e[3]]));
            if day < since || day >= until {
                continue;
            }
            let (bx, by) = cell(i64::from(i16::from_be_bytes([e[0], e[1]])))?;
            if let Some(i) = self.at(bx, by) {
                self.add_entry(i, e, 4, sign);
            }
        }
        Ok(())
    }

    /// Adds `sign` times the entry `e`'s count (an int4 at `count_at`) and weight (the float8
    /// after it in a weighted pyramid, else the count) to cell `i`.
    fn add_entry(&mut self, i: usize, e: &[u8], count_at: usize, sign: i64) {
        let count = i32::from_be_bytes([
            e[count_at],
            e[count_at + 1],
            e[count_at + 2],
            e[count_at + 3],
        ]);
        let weight = if self.weighted {
            f64_at(e, count_at + 4)
        } else {
            f64::from(count)
        };
        self.counts[i] += sign * i64::from(count);
        self.weights[i] += sign as f64 * weight;
    }

    /// Adds bins summed elsewhere (the partial days at a window's ends).
    pub fn add_bins(&mut self, bins: &[Bin]) {
        for b in bins {
            if let Some(i) = self.at(b.bx, b.by) {
                self.counts[i] += b.count as i64;
                self.weights[i] += b.weight;
            }
        }
    }

    /// The cells holding points, as bins at their centres (`scale` cells per world unit),
    /// sorted by (row, column).
    pub fn into_bins(self, scale: f64) -> Vec<Bin> {
        let mut bins = Vec::new();
        let width = self.width.max(1) as usize;
        for (i, (&count, &weight)) in self.counts.iter().zip(&self.weights).enumerate() {
            if count <= 0 {
                continue;
            }
            let (bx, by) = (
                self.cells.x0 + (i % width) as i64,
                self.cells.y0 + (i / width) as i64,
            );
            bins.push(Bin {
                bx,
                by,
                count: count as u64,
                weight,
                wx: weight * (bx as f64 + 0.5) / scale,
                wy: weight * (by as f64 + 0.5) / scale,
            });
        }
        bins
    }
}

fn f64_at(bytes: &[u8], at: usize) -> f64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&bytes[at..at + 8]);
    f64::from_be_bytes(a)
}

/// The points a time pyramid is built from: [`super::table_sql`]'s timed query (x, y, w, t
/// and the category columns as `c0`, `c1`, ...) and those columns' names.
pub struct TimedPoints {
    pub sql: String,
    /// The time column (its index serves the partial days of unaligned windows).
    pub time: Ident,
    pub categories: Vec<String>,
}

/// The deepest zoom with a time pyramid: zoom 0's pixels are its tiles, so zoom 0's rows
/// also say which zooms a window aggregates up to it. Deeper tiles hold few points of any
/// window and sum them in SQL; pixel-days there are about as many as points, so each zoom
/// would cost about a row of 16 bytes per point and part.
const MAX_ZOOM: u8 = 8;

/// Category columns that get parts of their own, and values at most per column: as the
/// memory store's category cubes.
const PART_COLUMNS: usize = 2;
const PART_VALUES: usize = 16;

/// (Re)builds the time pyramid of `table` for `layer` inside the caller's transaction, for
/// zooms `0..=max_zoom`, recorded as built from `version`, and returns its entries; or
/// drops it when `points` or `max_zoom` is None (no time column, no bin pyramid) or no point
/// has a time.
pub async fn build(
    tx: &impl GenericClient,
    layer: &str,
    table: &TableName,
    points: Option<&TimedPoints>,
    max_zoom: Option<u8>,
    version: u64,
) -> Result<Option<u64>, DbError> {
    let bins = Ident::new(&format!("tb_{layer}"))?;
    let building = Ident::new(&format!("tb_{layer}_new"))?;
    let building_key = Ident::new(&format!("tb_{layer}_new_pk"))?;
    let key = Ident::new(&format!("tb_{layer}_pk"))?;
    let drop = async {
        tx.batch_execute(&format!(
            "DROP TABLE IF EXISTS twine.{}; DROP TABLE IF EXISTS twine.{}",
            bins.quoted(),
            building.quoted()
        ))
        .await?;
        tx.execute(
            "DELETE FROM twine.time_pyramids WHERE table_name = $1",
            &[&table.key()],
        )
        .await?;
        Ok::<_, DbError>(None)
    };
    let (Some(points), Some(max_zoom)) = (points, max_zoom) else {
        return drop.await;
    };
    let max_zoom = max_zoom.min(MAX_ZOOM);
    let zoom = i32::from(max_zoom);
    // Whether every point has a time, and which category values get parts: those of the
    // first columns with few enough values.
    let all_timed: bool = tx
        .query_one(
            &format!("SELECT count(*) = count(t) FROM ({}) q", points.sql),
            &[],
        )
        .await?
        .get(0);
    let mut parts: Vec<(i32, String, String)> = Vec::new();
    let mut columns_with_parts = 0;
    for (i, column) in points.categories.iter().enumerate() {
        if columns_with_parts == PART_COLUMNS {
            break;
        }
        let values = tx
            .query(
                &format!(
                    "SELECT DISTINCT c{i} FROM ({}) q ORDER BY 1 LIMIT {}",
                    points.sql,
                    PART_VALUES + 1
                ),
                &[],
            )
            .await?;
        if values.len() <= PART_VALUES {
            columns_with_parts += 1;
            parts.extend(values.iter().map(|r| (i as i32, column.clone(), r.get(0))));
        }
    }
    let part_indices: Vec<i32> = parts.iter().map(|p| p.0).collect();
    let part_values: Vec<String> = parts.iter().map(|p| p.2.clone()).collect();
    let row = tx
        .query_one(
            "SELECT first_day, days, chunk_days, weighted, entries \
             FROM twine.build_time_pyramid($1, $2, $3, $4, $5, $6, $7)",
            &[
                &points.sql,
                &bins.as_str(),
                &i32::from(COARSEST),
                &zoom,
                &BASE_BUDGET,
                &part_indices,
                &part_values,
            ],
        )
        .await?;
    let (first_day, days): (Option<i32>, Option<i32>) = (row.get(0), row.get(1));
    let (Some(first_day), Some(days)) = (first_day, days) else {
        return drop.await;
    };
    let chunk_days: Vec<i32> = row.get(2);
    let weighted: bool = row.get(3);
    let entries: i64 = row.get(4);
    let part_columns: Vec<String> = parts.into_iter().map(|(_, c, _)| c).collect();
    tx.batch_execute(&format!(
        "ALTER TABLE twine.{building} ADD CONSTRAINT {building_key} \
             PRIMARY KEY (z, part, block_y, block_x, chunk); \
         DROP TABLE IF EXISTS twine.{bins}; \
         ALTER TABLE twine.{building} RENAME TO {bins}; \
         ALTER INDEX twine.{building_key} RENAME TO {key}; \
         ANALYZE twine.{bins}",
        bins = bins.quoted(),
        building = building.quoted(),
        building_key = building_key.quoted(),
        key = key.quoted(),
    ))
    .await?;
    tx.execute(
        "INSERT INTO twine.time_pyramids (table_name, bins_table, version, max_zoom, first_day, days, \
             chunk_days, part_columns, part_values, all_timed, layout, weighted) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (table_name) DO UPDATE SET bins_table = EXCLUDED.bins_table, \
             version = EXCLUDED.version, max_zoom = EXCLUDED.max_zoom, \
             first_day = EXCLUDED.first_day, days = EXCLUDED.days, \
             chunk_days = EXCLUDED.chunk_days, part_columns = EXCLUDED.part_columns, \
             part_values = EXCLUDED.part_values, all_timed = EXCLUDED.all_timed, \
             layout = EXCLUDED.layout, weighted = EXCLUDED.weighted, built_at = now()",
        &[
            &table.key(),
            &bins.as_str(),
            &(version as i64),
            &zoom,
            &first_day,
            &days,
            &chunk_days,
            &part_columns,
            &part_values,
            &all_timed,
            &LAYOUT,
            &weighted,
        ],
    )
    .await?;
    Ok(Some(entries.max(0) as u64))
}

/// The time pyramid of `points`, if one was built (whatever its version).
pub async fn find(
    client: &impl GenericClient,
    points: &TableName,
) -> Result<Option<TimePyramid>, DbError> {
    // A server only reads: the table exists once a newer `import`, `pyramid` or `db init`
    // made the schema.
    if !super::relation_exists(client, "twine.time_pyramids").await? {
        return Ok(None);
    }
    let Some(row) = client
        .query_opt(
            "SELECT bins_table, version, max_zoom, first_day, days, chunk_days, part_columns, \
                 part_values, all_timed, coalesce((to_jsonb(p) ->> 'layout')::int, 1), \
                 coalesce((to_jsonb(p) ->> 'weighted')::bool, true) \
             FROM twine.time_pyramids p WHERE table_name = $1",
            &[&points.key()],
        )
        .await?
    else {
        return Ok(None);
    };
    // Read through to_jsonb: a schema from before the layout column reads as layout 1.
    let layout: i32 = row.get(9);
    if layout != LAYOUT {
        tracing::warn!(
            table = %points.key(),
            layout,
            "the time pyramid was built by an older version: filtered tiles are summed from \
             the points until `twine-heatmap pyramid` rebuilds it"
        );
        return Ok(None);
    }
    let bins = super::pyramid::twine_table(&row.get::<_, String>(0))?;
    let max_zoom = row
        .get::<_, i32>(2)
        .clamp(0, i32::from(crate::tile::MAX_ZOOM)) as u8;
    let chunk_days: Vec<i64> = row
        .get::<_, Vec<i32>>(5)
        .into_iter()
        .map(|d| i64::from(d.max(1)))
        .collect();
    let (part_columns, part_values): (Vec<String>, Vec<String>) = (row.get(6), row.get(7));
    let levels = usize::try_from(i16::from(max_zoom) - COARSEST + 1).unwrap_or(0);
    if chunk_days.len() != levels || part_columns.len() != part_values.len() {
        return Err(DbError::Other(format!(
            "{}: the time pyramid's record is malformed",
            points.key()
        )));
    }
    Ok(Some(TimePyramid {
        version: row.get::<_, i64>(1).max(0) as u64,
        max_zoom,
        first_day: i64::from(row.get::<_, i32>(3)),
        days: i64::from(row.get::<_, i32>(4).max(1)),
        chunk_days,
        parts: part_columns.into_iter().zip(part_values).collect(),
        all_timed: row.get(8),
        weighted: row.get(10),
        rows_sql: rows_sql(&bins),
        bins,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pyramid(first_day: i64, days: i64, chunk: i64) -> TimePyramid {
        let bins = TableName::parse("twine.tb_x").expect("name");
        TimePyramid {
            rows_sql: rows_sql(&bins),
            bins,
            version: 1,
            max_zoom: 0,
            first_day,
            days,
            chunk_days: vec![chunk; 3],
            weighted: true,
            parts: vec![("kind".into(), "a".into()), ("kind".into(), "b".into())],
            all_timed: false,
        }
    }

    #[test]
    fn filters_sum_the_parts_of_their_values() {
        use crate::source::attributes::AttributeFilter;
        let mut p = pyramid(0, 10, 4);
        let window = AttributeFilter {
            from: Some(0),
            to: Some(DAY_MS),
            categories: vec![],
        };
        assert_eq!(p.parts_for(&window), Some(vec![0]));
        let kinds = |values: &[&str]| {
            vec![(
                "kind".to_string(),
                values.iter().map(|v| v.to_string()).collect(),
            )]
        };
        let both = AttributeFilter {
            categories: kinds(&["b", "zzz"]),
            ..window.clone()
        };
        assert_eq!(p.parts_for(&both), Some(vec![2]));
        // Without a window, only when every point has a time.
        let alone = AttributeFilter {
            from: None,
            to: None,
            categories: kinds(&["a", "b"]),
        };
        assert_eq!(p.parts_for(&alone), None);
        p.all_timed = true;
        assert_eq!(p.parts_for(&alone), Some(vec![1, 2]));
        // Another column, or two columns: from the points.
        let other = AttributeFilter {
            categories: vec![("size".into(), vec!["s".into()])],
            ..window.clone()
        };
        assert_eq!(p.parts_for(&other), None);
        let two = AttributeFilter {
            categories: vec![kinds(&["a"]).remove(0), ("size".into(), vec!["s".into()])],
            ..window
        };
        assert_eq!(p.parts_for(&two), None);
        assert_eq!(p.parts_for(&AttributeFilter::default()), None);
    }

    #[test]
    fn windows_cut_at_whole_days_within_the_pyramids_days() {
        let p = pyramid(100, 10, 4);
        let day = |d: i64| d * DAY_MS;
        // Aligned: whole days only.
        let w = p.window_days(day(102), day(105));
        assert_eq!((w.days, w.head, w.tail), (Some((2, 5)), None, None));
        // Unaligned at both ends.
        let w = p.window_days(day(102) + 5, day(105) + 7);
        assert_eq!(w.days, Some((3, 5)));
        assert_eq!(w.head, Some((day(102) + 5, day(103))));
        assert_eq!(w.tail, Some((day(105), day(105) + 7)));
        // Inside one day: all head.
        let w = p.window_days(day(104) + 1, day(104) + 9);
        assert_eq!((w.days, w.head), (None, Some((day(104) + 1, day(104) + 9))));
        // Open ends and ends beyond the data are cut to it; empty windows are empty.
        let w = p.window_days(i64::MIN, i64::MAX);
        assert_eq!((w.days, w.head, w.tail), (Some((0, 10)), None, None));
        assert_eq!(p.window_days(day(200), day(300)).days, None);
        assert_eq!(p.window_days(day(105), day(105)).head, None);
        // Chunks: day 10 (the end) is in the last chunk, as is day 8.
        assert_eq!(p.chunks(0, (0, 10)), (0, 2));
        assert_eq!(p.chunks(0, (4, 8)), (1, 2));
        assert_eq!(p.chunks(COARSEST, (4, 8)), (1, 2));
    }

    /// Base entries as the build writes them, with their weights when `weighted`.
    fn base(entries: &[(i16, i32, f64)], weighted: bool) -> Vec<u8> {
        entries
            .iter()
            .flat_map(|(o, n, w)| {
                let weight = weighted.then(|| w.to_be_bytes()).into_iter().flatten();
                o.to_be_bytes()
                    .into_iter()
                    .chain(n.to_be_bytes())
                    .chain(weight)
            })
            .collect()
    }

    fn days(entries: &[(i16, i16, i32, f64)], weighted: bool) -> Vec<u8> {
        entries
            .iter()
            .flat_map(|(o, d, n, w)| {
                let weight = weighted.then(|| w.to_be_bytes()).into_iter().flatten();
                o.to_be_bytes()
                    .into_iter()
                    .chain(d.to_be_bytes())
                    .chain(n.to_be_bytes())
                    .chain(weight)
            })
            .collect()
    }

    #[test]
    fn windows_are_differences_of_running_sums() {
        let cells = CellRange {
            x0: 0,
            x1: 128,
            y0: 0,
            y1: 128,
        };
        // Unweighted rows leave weights out: a weight is then its count.
        for weighted in [true, false] {
            let w = |weight: f64, count: i32| if weighted { weight } else { f64::from(count) };
            // Block (1, 0): pixel 65 is cell (65, 1); pixel 0 is (64, 0).
            let (b, d) = (
                base(&[(0, 3, 3.0), (65, 1, 2.0)], weighted),
                days(&[(0, 0, 2, 2.0), (0, 3, 1, 1.0), (65, 1, 4, 8.0)], weighted),
            );
            let row = Row {
                block_y: 0,
                block_x: 1,
                chunk: 1,
                base: &b,
                days: &d,
            };
            let (b0, d0) = (
                base(&[(0, 1, 1.0)], weighted),
                days(&[(0, 2, 2, 2.0)], weighted),
            );
            let earlier = Row {
                block_y: 0,
                block_x: 1,
                chunk: 0,
                base: &b0,
                days: &d0,
            };
            // Up to day 2 of chunk 1, less up to day 3 of chunk 0.
            let mut sums = WindowSums::new(&cells, weighted);
            sums.apply(&row, None, 2, 1).expect("row");
            sums.apply(&earlier, None, 3, -1).expect("row");
            let bins = sums.into_bins(256.0);
            let got: Vec<(i64, i64, u64, f64)> = bins
                .iter()
                .map(|b| (b.bx, b.by, b.count, b.weight))
                .collect();
            let expected = vec![
                (64, 0, 2, w(3.0 + 2.0 - 1.0 - 2.0, 2)),
                (65, 1, 5, w(2.0 + 8.0, 5)),
            ];
            assert_eq!(got, expected, "weighted: {weighted}");
            // Within one chunk: only the days from `since`.
            let mut sums = WindowSums::new(&cells, weighted);
            sums.apply(&row, Some(1), 4, 1).expect("row");
            let got: Vec<(i64, u64)> = sums
                .into_bins(256.0)
                .iter()
                .map(|b| (b.bx, b.count))
                .collect();
            assert_eq!(got, vec![(64, 1), (65, 4)]);
        }
    }

    #[test]
    fn malformed_rows_are_errors_not_panics() {
        let cells = CellRange {
            x0: 0,
            x1: 64,
            y0: 0,
            y1: 64,
        };
        let mut sums = WindowSums::new(&cells, true);
        let short = [0u8; 13];
        let bad_offset = base(&[(4096, 1, 1.0)], true);
        let unweighted = base(&[(1, 1, 1.0)], false);
        for (b, d) in [
            (&short[..], &[][..]),
            (&[][..], &short[..]),
            (&bad_offset[..], &[][..]),
            // A row without weights where the pyramid says it has them.
            (&unweighted[..], &[][..]),
        ] {
            let row = Row {
                block_y: 0,
                block_x: 0,
                chunk: 0,
                base: b,
                days: d,
            };
            assert!(sums.apply(&row, None, 10, 1).is_err());
        }
    }
}
