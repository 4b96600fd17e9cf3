//! Bins by zoom and time span for memory layers with a time column, so that a tile filtered
//! to a time window sums a few precomputed spans instead of every point in the window.
//!
//! Time is cut into units (UTC days; hours for layers whose bucket is the hour) from the
//! unit holding the layer's first time. Each tier holds the one-pixel bins of every span of
//! 8, 64, 512, ... units, aligned to that first unit, at the coarse zooms where its spans
//! hold far fewer entries than points (on data spread over the world and the years, fine
//! spans hold nearly one entry per point: storing them would save no reading).
//!
//! A window is cut into the largest aligned spans that fit inside it. The rest (whole units
//! between spans, and the parts of units at unaligned ends) is read point by point from a
//! compact copy of the points in unit order: each point's pixel at zoom [`MAX_LEVEL`] and
//! its weight, read as a stream (the points themselves, in spatial order, would cost a cache
//! miss each). So every window is exact in counts and weights: the spans and the points
//! read hold exactly the points the window keeps. Only the weighted position sums of the
//! points read this way (used by aggregated `/points` answers, never by tiles, which draw
//! bins at their centres) are those of their zoom-7 pixel's centre.

use crate::render::WorldPoint;
use crate::source::aggregate::{grid_bins, Bin, CellRange, DENSE_CELLS};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Each tier's span is this many spans of the tier below (the finest: this many units).
const TIER_FACTOR: i64 = 8;

/// Zooms are kept from 0 up while all tiers of all kept zooms hold at most this many
/// entries per timed point: with pixels quadrupling per zoom, a zoom's spans soon hold
/// nearly one entry per point per tier, and reading them saves little over the points.
const MAX_ENTRIES_PER_POINT: usize = 1;

/// A tier is kept at a zoom only while its spans there hold at most this many entries per
/// timed point.
const MAX_TIER_SHARE: f64 = 0.3;

/// The finest zoom held: pixel indices (256 * 2^z per axis) stay in u16.
pub const MAX_LEVEL: u8 = 7;

/// Bytes one entry takes.
pub const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();

/// The sums of one pixel over one span: positions are kept as offsets within the pixel
/// (`w * (x * scale - px)`), which f32 holds to far below a pixel.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    px: u16,
    py: u16,
    count: u32,
    weight: f32,
    ox: f32,
    oy: f32,
}

/// One tier at one zoom: the entries of span `s` are `entries[starts[s]..starts[s + 1]]`,
/// sorted by (row, column).
#[derive(Debug, Default)]
struct TierLevel {
    starts: Vec<u32>,
    entries: Vec<Entry>,
}

impl TierLevel {
    fn span(&self, s: usize) -> &[Entry] {
        let start = self.starts.get(s).copied().unwrap_or(0) as usize;
        let end = self.starts.get(s + 1).copied().unwrap_or(0) as usize;
        self.entries.get(start..end).unwrap_or(&[])
    }
}

/// Spans of `units` units, at zooms `0..levels.len()`.
#[derive(Debug)]
struct Tier {
    units: i64,
    levels: Vec<TierLevel>,
}

/// What the time cube costs, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeCubeSize {
    pub levels: u8,
    pub tiers: u8,
    pub entries: u64,
    pub bytes: u64,
}

/// The time index and span bins of a memory store's points.
#[derive(Debug)]
pub struct TimeCube {
    /// Start of unit 0 (ms since the epoch) and the length of a unit.
    origin: i64,
    unit: i64,
    /// Units from `origin` up to and including the one of the latest time.
    units: i64,
    /// Store indices of the points with a time, unit by unit (within a unit, store order).
    by_unit: Vec<u32>,
    /// Each of `by_unit`'s points as its pixel at zoom [`MAX_LEVEL`] (row << 16 | column).
    unit_pixels: Vec<u32>,
    /// Their weights, when any is not 1.
    unit_weights: Option<Vec<f32>>,
    /// Where each unit starts in `by_unit`, plus the end.
    unit_starts: Vec<u32>,
    /// Finest first.
    tiers: Vec<Tier>,
}

/// One piece of a window: whole spans (tier, span), or points of units `u0..u1`, to be
/// checked against the window's ends when `partial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    Span { tier: usize, span: usize },
    Units { u0: i64, u1: i64, partial: bool },
}

impl TimeCube {
    /// Indexes `points` (store order) by their `times` (ms; `None` for none), and builds
    /// the span bins of every tier for the zooms within budget, on `threads` threads.
    pub fn build(
        points: &[WorldPoint],
        time_of: impl Fn(usize) -> Option<i64>,
        hourly: bool,
        threads: usize,
    ) -> Option<TimeCube> {
        let unit = if hourly { HOUR_MS } else { DAY_MS };
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for i in 0..points.len() {
            if let Some(t) = time_of(i) {
                lo = lo.min(t);
                hi = hi.max(t);
            }
        }
        if lo > hi {
            return None;
        }
        let origin = lo.div_euclid(unit) * unit;
        let units = (hi - origin) / unit + 1;
        let unit_of = |t: i64| ((t - origin) / unit) as usize;
        // A counting sort by unit: linear, and store order within a unit.
        let mut unit_starts = vec![0u32; units as usize + 1];
        for i in 0..points.len() {
            if let Some(t) = time_of(i) {
                unit_starts[unit_of(t) + 1] += 1;
            }
        }
        for u in 1..unit_starts.len() {
            unit_starts[u] += unit_starts[u - 1];
        }
        let mut next = unit_starts.clone();
        let mut by_unit = vec![0u32; unit_starts[units as usize] as usize];
        for i in 0..points.len() {
            if let Some(t) = time_of(i) {
                let slot = &mut next[unit_of(t)];
                by_unit[*slot as usize] = i as u32;
                *slot += 1;
            }
        }
        let fine = 256.0 * f64::from(1u32 << MAX_LEVEL);
        let side = 256i64 << MAX_LEVEL;
        // The points in unit order, read once here: every level built below reads them as a
        // stream instead of one cache miss per point.
        let ordered: Vec<WorldPoint> = by_unit.iter().map(|&i| points[i as usize]).collect();
        let unit_pixels = ordered
            .iter()
            .map(|p| {
                let fx = ((p.x * fine).floor() as i64).clamp(0, side) as u32;
                let fy = ((p.y * fine).floor() as i64).clamp(0, side) as u32;
                (fy << 16) | fx
            })
            .collect();
        let unit_weights = ordered
            .iter()
            .any(|p| p.w != 1.0)
            .then(|| ordered.iter().map(|p| p.w).collect());
        let mut cube = TimeCube {
            origin,
            unit,
            units,
            unit_pixels,
            unit_weights,
            by_unit,
            unit_starts,
            tiers: Vec::new(),
        };
        // Tiers up to the first whose span covers every unit.
        let mut span = TIER_FACTOR;
        loop {
            cube.tiers.push(Tier {
                units: span,
                levels: Vec::new(),
            });
            if span >= units {
                break;
            }
            span *= TIER_FACTOR;
        }
        // Zoom by zoom, coarsest tier first: a tier stops at the first zoom where its spans
        // would hold more than MAX_TIER_SHARE entries per point (reading them would save
        // little over reading the points), and so does every finer tier, which holds more.
        let timed = cube.by_unit.len();
        let budget = timed.saturating_mul(MAX_ENTRIES_PER_POINT);
        let tier_cap = (timed as f64 * MAX_TIER_SHARE) as usize;
        let mut total = 0usize;
        'zooms: for z in 0..=MAX_LEVEL {
            for t in (0..cube.tiers.len()).rev() {
                if cube.tiers[t].levels.len() != usize::from(z) {
                    break;
                }
                let level = cube.build_level(&ordered, cube.tiers[t].units, z, threads);
                if level.entries.len() > tier_cap || total + level.entries.len() > budget {
                    if t + 1 == cube.tiers.len() {
                        break 'zooms;
                    }
                    break;
                }
                total += level.entries.len();
                cube.tiers[t].levels.push(level);
            }
        }
        Some(cube)
    }

    /// The bins of every span of `span_units` units at zoom `z`.
    /// `ordered` holds the points of `by_unit`, in its order.
    fn build_level(
        &self,
        ordered: &[WorldPoint],
        span_units: i64,
        z: u8,
        threads: usize,
    ) -> TierLevel {
        let spans = ((self.units + span_units - 1) / span_units) as usize;
        let scale = 256.0 * f64::from(1u32 << z);
        let side = 256i64 << z;
        let span_entries = |s: usize| -> Vec<Entry> {
            let u0 = (s as i64 * span_units) as usize;
            let u1 = ((s as i64 + 1) * span_units).min(self.units) as usize;
            let slice = &ordered[self.unit_starts[u0] as usize..self.unit_starts[u1] as usize];
            let mut keyed: Vec<(u32, u32)> = slice
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    // No clamp at the far edge, as in `bins_in`: a point at x = 1 is in
                    // column `side` (the store holds only points within the world).
                    let px = ((p.x * scale).floor() as i64).clamp(0, side) as u32;
                    let py = ((p.y * scale).floor() as i64).clamp(0, side) as u32;
                    ((py << 16) | px, i as u32)
                })
                .collect();
            keyed.sort_unstable();
            let mut out: Vec<Entry> = Vec::new();
            let mut run = keyed.chunk_by(|a, b| a.0 == b.0);
            for group in &mut run {
                let key = group[0].0;
                let (px, py) = (key & 0xffff, key >> 16);
                let (mut weight, mut ox, mut oy) = (0f64, 0f64, 0f64);
                for &(_, i) in group {
                    let p = &slice[i as usize];
                    let w = f64::from(p.w);
                    weight += w;
                    ox += w * (p.x * scale - f64::from(px));
                    oy += w * (p.y * scale - f64::from(py));
                }
                out.push(Entry {
                    px: px as u16,
                    py: py as u16,
                    count: group.len() as u32,
                    weight: weight as f32,
                    ox: ox as f32,
                    oy: oy as f32,
                });
            }
            out
        };
        let per_thread = spans.div_ceil(threads.max(1)).max(1);
        let chunks: Vec<Vec<Vec<Entry>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..spans)
                .step_by(per_thread)
                .map(|first| {
                    let span_entries = &span_entries;
                    scope.spawn(move || {
                        (first..(first + per_thread).min(spans))
                            .map(span_entries)
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let mut level = TierLevel::default();
        for entries in chunks.into_iter().flatten() {
            level.starts.push(level.entries.len() as u32);
            level.entries.extend(entries);
        }
        level.starts.push(level.entries.len() as u32);
        level
    }

    pub fn size(&self) -> TimeCubeSize {
        let entries: usize = self
            .tiers
            .iter()
            .flat_map(|t| &t.levels)
            .map(|l| l.entries.len())
            .sum();
        let index = (self.by_unit.len() * 2 + self.unit_starts.len()) * 4
            + self.unit_weights.as_ref().map_or(0, |w| w.len() * 4);
        TimeCubeSize {
            levels: self.tiers.last().map_or(0, |t| t.levels.len() as u8),
            tiers: self.tiers.len() as u8,
            entries: entries as u64,
            bytes: (entries * ENTRY_BYTES + index) as u64,
        }
    }

    /// Whether the spans hold zoom `z` (in their coarsest tier at least).
    pub fn holds(&self, z: u8) -> bool {
        self.tiers
            .last()
            .is_some_and(|t| usize::from(z) < t.levels.len())
    }

    /// How many timed points fall in the units the window `[from, to)` touches: an upper
    /// bound of the points it keeps, read without touching them.
    pub fn points_within(&self, from: i64, to: i64) -> usize {
        let (u0, u1) = self.touched_units(from, to);
        (self.unit_starts[u1 as usize] - self.unit_starts[u0 as usize]) as usize
    }

    /// Visits, in each unit's store order, the store index of every point in `ranges`
    /// (ascending, disjoint ranges of store indices) whose time is in `[from, to)`,
    /// checking `time_of` only in the units at the window's ends.
    pub fn for_each_within(
        &self,
        from: i64,
        to: i64,
        ranges: &[(u32, u32)],
        time_of: impl Fn(usize) -> Option<i64>,
        mut visit: impl FnMut(usize),
    ) {
        let (u0, u1) = self.touched_units(from, to);
        for u in u0..u1 {
            let whole = self.unit_start_ms(u) >= from && self.unit_start_ms(u + 1) <= to;
            for_each_in_ranges(self.unit_points(u, u + 1), ranges, |_, i| {
                if whole || time_of(i).is_some_and(|t| t >= from && t < to) {
                    visit(i);
                }
            });
        }
    }

    /// The one-pixel bins at zoom `z` (which [`TimeCube::holds`]) within `cells` of the
    /// points whose time is in `[from, to)`, sorted by (row, column); `None` when the cells
    /// are too many to sum on a dense grid (the caller bins the points instead).
    ///
    /// `ranges` are the store indices (ascending, disjoint) of the points under `cells`:
    /// points read one by one are looked up there, not scanned unit by unit.
    pub fn bins(
        &self,
        time_of: impl Fn(usize) -> Option<i64>,
        z: u8,
        cells: &CellRange,
        ranges: &[(u32, u32)],
        from: i64,
        to: i64,
    ) -> Option<Vec<Bin>> {
        let (width, height) = (cells.x1 - cells.x0, cells.y1 - cells.y0);
        if !self.holds(z) || width.saturating_mul(height) > DENSE_CELLS {
            return None;
        }
        let scale = 256.0 * f64::from(1u32 << z);
        let mut grid = vec![Bin::default(); (width * height) as usize];
        for piece in self.pieces(from, to, z) {
            match piece {
                Piece::Span { tier, span } => {
                    let level = &self.tiers[tier].levels[usize::from(z)];
                    add_entries(&mut grid, level.span(span), cells, scale);
                }
                Piece::Units { u0, u1, partial } => {
                    // Read from the compact copy in unit order (a stream, where the points
                    // themselves would cost a cache miss each); positions are the centres
                    // of the finest pixels.
                    let shift = MAX_LEVEL - z;
                    let fine = 256.0 * f64::from(1u32 << MAX_LEVEL);
                    for u in u0..u1 {
                        let base = self.unit_starts[u as usize] as usize;
                        for_each_in_ranges(self.unit_points(u, u + 1), ranges, |at, i| {
                            if partial && !time_of(i).is_some_and(|t| t >= from && t < to) {
                                return;
                            }
                            let packed = self.unit_pixels[base + at];
                            let (fx, fy) = (packed & 0xffff, packed >> 16);
                            let (bx, by) = (i64::from(fx >> shift), i64::from(fy >> shift));
                            if cells.contains(bx, by) {
                                let b =
                                    &mut grid[((by - cells.y0) * width + (bx - cells.x0)) as usize];
                                let w = self
                                    .unit_weights
                                    .as_ref()
                                    .map_or(1.0, |ws| f64::from(ws[base + at]));
                                b.count += 1;
                                b.weight += w;
                                b.wx += w * (f64::from(fx) + 0.5) / fine;
                                b.wy += w * (f64::from(fy) + 0.5) / fine;
                            }
                        });
                    }
                }
            }
        }
        Some(grid_bins(&grid, cells))
    }

    /// How many points of the window `[from, to)` each pixel of zoom 0 holds (256 x 256, row
    /// by row; the far edge's points in the last row or column, as the count grid counts
    /// them): counts only, so much cheaper than [`TimeCube::bins`] over the world.
    pub fn zoom0_counts(
        &self,
        time_of: impl Fn(usize) -> Option<i64>,
        from: i64,
        to: i64,
    ) -> Vec<u64> {
        let mut counts = vec![0u64; 256 * 256];
        let cell = |x: u32, y: u32| (y.min(255) * 256 + x.min(255)) as usize;
        for piece in self.pieces(from, to, 0) {
            match piece {
                Piece::Span { tier, span } => {
                    for e in self.tiers[tier].levels[0].span(span) {
                        counts[cell(u32::from(e.px), u32::from(e.py))] += u64::from(e.count);
                    }
                }
                Piece::Units { u0, u1, partial } => {
                    let start = self.unit_starts[u0 as usize] as usize;
                    let end = self.unit_starts[u1 as usize] as usize;
                    for at in start..end {
                        if partial {
                            let i = self.by_unit[at] as usize;
                            if !time_of(i).is_some_and(|t| t >= from && t < to) {
                                continue;
                            }
                        }
                        let packed = self.unit_pixels[at];
                        counts
                            [cell((packed & 0xffff) >> MAX_LEVEL, (packed >> 16) >> MAX_LEVEL)] +=
                            1;
                    }
                }
            }
        }
        counts
    }

    fn unit_start_ms(&self, u: i64) -> i64 {
        self.origin.saturating_add(u.saturating_mul(self.unit))
    }

    fn unit_points(&self, u0: i64, u1: i64) -> &[u32] {
        let start = self.unit_starts[u0 as usize] as usize;
        let end = self.unit_starts[u1 as usize] as usize;
        &self.by_unit[start..end]
    }

    /// The units `u0..u1` that the window `[from, to)` touches, within the extent.
    fn touched_units(&self, from: i64, to: i64) -> (i64, i64) {
        let floor = |t: i64| (t.saturating_sub(self.origin)).div_euclid(self.unit);
        let u0 = floor(from).clamp(0, self.units);
        // The unit holding `to - 1` is the last one touched.
        let u1 = floor(to.saturating_sub(1))
            .saturating_add(1)
            .clamp(0, self.units);
        (u0, u1.max(u0))
    }

    /// The window `[from, to)` cut into whole spans held at zoom `z` and runs of units.
    fn pieces(&self, from: i64, to: i64, z: u8) -> Vec<Piece> {
        let (t0, t1) = self.touched_units(from, to);
        // Whole units `a..b`: those starting at or after `from` and ending by `to`.
        let mut a = t0;
        while a < t1 && self.unit_start_ms(a) < from {
            a += 1;
        }
        let mut b = t1;
        while b > a && self.unit_start_ms(b) > to {
            b -= 1;
        }
        let mut pieces = Vec::new();
        if a >= b {
            if t0 < t1 {
                pieces.push(Piece::Units {
                    u0: t0,
                    u1: t1,
                    partial: true,
                });
            }
            return pieces;
        }
        if t0 < a {
            pieces.push(Piece::Units {
                u0: t0,
                u1: a,
                partial: true,
            });
        }
        let mut p = a;
        let mut loose = p;
        while p < b {
            // The coarsest tier with a span starting at `p` that ends within the window (a
            // span reaching past the last unit ends at it).
            let fit = self.tiers.iter().enumerate().rev().find(|(_, t)| {
                p % t.units == 0
                    && (p + t.units).min(self.units) <= b
                    && usize::from(z) < t.levels.len()
            });
            match fit {
                Some((tier, t)) => {
                    if loose < p {
                        pieces.push(Piece::Units {
                            u0: loose,
                            u1: p,
                            partial: false,
                        });
                    }
                    pieces.push(Piece::Span {
                        tier,
                        span: (p / t.units) as usize,
                    });
                    p = (p + t.units).min(self.units);
                    loose = p;
                }
                None => p += 1,
            }
        }
        if loose < b {
            pieces.push(Piece::Units {
                u0: loose,
                u1: b,
                partial: false,
            });
        }
        if b < t1 {
            pieces.push(Piece::Units {
                u0: b,
                u1: t1,
                partial: true,
            });
        }
        pieces
    }
}

/// Visits (position, index) for the indices of `sorted` (ascending) in `ranges` (ascending,
/// disjoint, half-open), found by binary search per range, when the ranges are few against
/// the indices (a small area); otherwise visits every index, since one pass is then cheaper
/// than the searches: callers check each point's position anyway.
fn for_each_in_ranges(sorted: &[u32], ranges: &[(u32, u32)], mut visit: impl FnMut(usize, usize)) {
    if sorted.len() <= 16 * ranges.len() {
        for (at, &i) in sorted.iter().enumerate() {
            visit(at, i as usize);
        }
        return;
    }
    let mut at = 0;
    for &(start, end) in ranges {
        at += sorted[at..].partition_point(|&i| i < start);
        let count = sorted[at..].partition_point(|&i| i < end);
        for (k, &i) in sorted[at..at + count].iter().enumerate() {
            visit(at + k, i as usize);
        }
        at += count;
    }
}

/// Adds a span's entries within `cells` to `grid` (a dense grid over `cells`).
fn add_entries(grid: &mut [Bin], entries: &[Entry], cells: &CellRange, scale: f64) {
    let width = cells.x1 - cells.x0;
    let clamp = |v: i64| v.clamp(0, i64::from(u16::MAX)) as u16;
    let (x0, x1) = (clamp(cells.x0), clamp(cells.x1));
    // Entries are sorted by (row, column): each row's run within the columns is found by
    // binary search, so a tile narrower than the world reads only its own entries.
    let mut rest = &entries[entries.partition_point(|e| e.py < clamp(cells.y0))..];
    while let Some(first) = rest.first() {
        let row = first.py;
        if i64::from(row) >= cells.y1 {
            break;
        }
        let row_len = rest.partition_point(|e| e.py == row);
        let (row_entries, next) = rest.split_at(row_len);
        let start = row_entries.partition_point(|e| e.px < x0);
        let end = row_entries.partition_point(|e| e.px < x1);
        let line = ((i64::from(row) - cells.y0) * width - cells.x0) as isize;
        for e in &row_entries[start..end] {
            let b = &mut grid[(line + e.px as isize) as usize];
            let w = f64::from(e.weight);
            b.count += u64::from(e.count);
            b.weight += w;
            b.wx += (f64::from(e.px) * w + f64::from(e.ox)) / scale;
            b.wy += (f64::from(row) * w + f64::from(e.oy)) / scale;
        }
        rest = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::aggregate::bins_in;

    /// Points spread over 40 days and a small area, some without a time.
    fn layer() -> (Vec<WorldPoint>, Vec<Option<i64>>) {
        let mut points = Vec::new();
        let mut times = Vec::new();
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for i in 0..20_000u32 {
            let (x, y) = (0.3 + 0.01 * next(), 0.4 + 0.01 * next());
            points.push(WorldPoint {
                x,
                y,
                w: (1.0 + 3.0 * next()) as f32,
                seq: i,
            });
            let t = 1_700_000_000_000 + (next() * 40.0 * DAY_MS as f64) as i64;
            times.push(if i % 97 == 0 { None } else { Some(t) });
        }
        (points, times)
    }

    #[test]
    fn every_window_sums_what_its_points_sum() {
        let (points, times) = layer();
        let cube = TimeCube::build(&points, |i| times[i], false, 2).expect("timed");
        let held: Vec<u8> = (0..=MAX_LEVEL).filter(|&z| cube.holds(z)).collect();
        assert!(held.len() >= 2, "{held:?}");
        let day0 = 1_700_000_000_000i64.div_euclid(DAY_MS) * DAY_MS;
        let windows = [
            (day0, day0 + 40 * DAY_MS),
            (day0 + 3 * DAY_MS, day0 + 37 * DAY_MS),
            (day0 + 8 * DAY_MS, day0 + 16 * DAY_MS),
            (day0 + 5 * HOUR_MS, day0 + 33 * DAY_MS + 7 * HOUR_MS),
            (day0 + 5 * HOUR_MS, day0 + 9 * HOUR_MS),
            (i64::MIN, i64::MAX),
            (day0 - 10 * DAY_MS, day0 - DAY_MS),
            (day0 + 12 * DAY_MS, day0 + 12 * DAY_MS),
        ];
        for z in held {
            let scale = 256.0 * f64::from(1u32 << z);
            let cells = CellRange::of(
                &crate::tile::WorldBox {
                    x0: 0.29,
                    y0: 0.39,
                    x1: 0.312,
                    y1: 0.412,
                },
                scale,
            );
            for (from, to) in windows {
                let kept: Vec<WorldPoint> = (0..points.len())
                    .filter(|&i| times[i].is_some_and(|t| t >= from && t < to))
                    .map(|i| points[i])
                    .collect();
                let want = bins_in(&kept, scale, &cells);
                let all = [(0, points.len() as u32)];
                let got = cube
                    .bins(|i| times[i], z, &cells, &all, from, to)
                    .expect("held");
                assert_eq!(got.len(), want.len(), "z{z} {from}..{to}");
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!((g.bx, g.by, g.count), (w.bx, w.by, w.count));
                    assert!((g.weight - w.weight).abs() <= 1e-4 * w.weight.abs().max(1.0));
                    let half_fine = 0.5 / (256.0 * f64::from(1u32 << MAX_LEVEL));
                    assert!((g.wx - w.wx).abs() <= half_fine * w.weight.abs().max(1.0));
                    assert!((g.wy - w.wy).abs() <= half_fine * w.weight.abs().max(1.0));
                }
                if z == 0 {
                    let counts = cube.zoom0_counts(|i| times[i], from, to);
                    for w in &want {
                        let at = (w.by.min(255) * 256 + w.bx.min(255)) as usize;
                        assert!(counts[at] >= w.count);
                    }
                    assert_eq!(counts.iter().sum::<u64>(), kept.len() as u64);
                }
                let mut visited = 0;
                cube.for_each_within(from, to, &all, |i| times[i], |_| visited += 1);
                assert_eq!(visited, kept.len());
                assert!(cube.points_within(from, to) >= kept.len());
            }
        }
    }

    #[test]
    fn range_lookups_visit_the_indices_in_ranges() {
        let sorted: Vec<u32> = (0..400).map(|i| i * 3).collect();
        for (ranges, exact) in [
            (vec![(0, 1200)], true),
            (vec![(5, 9), (30, 31), (33, 34), (600, 700)], true),
            // Many ranges: every index is visited, for the caller to check.
            (
                (0..100).map(|k| (k * 12, k * 12 + 5)).collect::<Vec<_>>(),
                false,
            ),
            (vec![], true),
        ] {
            let inside: Vec<(usize, usize)> = sorted
                .iter()
                .enumerate()
                .filter(|(_, &i)| !exact || ranges.iter().any(|&(s, e)| (s..e).contains(&i)))
                .map(|(at, &i)| (at, i as usize))
                .collect();
            let mut got = Vec::new();
            for_each_in_ranges(&sorted, &ranges, |at, i| got.push((at, i)));
            assert_eq!(got, inside, "{ranges:?}");
        }
    }

    #[test]
    fn windows_are_cut_into_the_largest_aligned_spans() {
        let (points, times) = layer();
        let cube = TimeCube::build(&points, |i| times[i], false, 1).expect("timed");
        let day = |d: i64| cube.origin + d * DAY_MS;
        // The first time is late on a day, so 40 days touch 41 units: tiers of 8 and 64
        // (the last covers all).
        assert_eq!((cube.units, cube.tiers.len()), (41, 2));
        let spans = |from, to| {
            cube.pieces(from, to, 0)
                .into_iter()
                .filter(|p| matches!(p, Piece::Span { .. }))
                .count()
        };
        assert_eq!(
            cube.pieces(day(0), day(41), 0),
            vec![Piece::Span { tier: 1, span: 0 }]
        );
        // Units 1..8 loose, then spans from 8, 16, 24, 32 and 40 (which ends at the last).
        assert_eq!(spans(day(1), day(41)), 5);
        assert_eq!(spans(day(1), day(40)), 4);
        assert_eq!(
            cube.pieces(day(3), day(17), 0),
            vec![
                Piece::Units {
                    u0: 3,
                    u1: 8,
                    partial: false
                },
                Piece::Span { tier: 0, span: 1 },
                Piece::Units {
                    u0: 16,
                    u1: 17,
                    partial: false
                },
            ]
        );
        assert_eq!(
            cube.pieces(day(3) + 1, day(3) + 2, 0),
            vec![Piece::Units {
                u0: 3,
                u1: 4,
                partial: true
            }]
        );
        assert!(cube.pieces(day(50), day(60), 0).is_empty());
    }
}
