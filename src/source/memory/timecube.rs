//! A memory layer's points indexed by time, with running counts through time at the coarse
//! zooms, so that a tile filtered to a time window costs its pixels, not its points.
//!
//! Time is cut into units (UTC days; hours for layers whose bucket is the hour) from the
//! unit holding the layer's first time. The coarsest zooms keep dense grids of their pixels'
//! running counts at a few dozen units ([`Checkpoints`]): a window there is two grids
//! subtracted, read as streams. The next zooms keep, for every pixel with points, the units
//! it has points in and the running count and weight up to each ([`RunningSums`]): the
//! whole units of any window, however long, are two binary searches per pixel. Both stop
//! within a budget per point: on data spread over the world and the years nearly every
//! point is alone in its (pixel, day), so a zoom of sums costs about one entry per point,
//! and deep zooms are cheap to draw from their points.
//!
//! The parts of units at a window's unaligned ends are read point by point from a compact
//! copy of the points in unit order (each point's pixel at zoom [`MAX_LEVEL`], its time
//! within its unit and its weight, read as a stream: the points themselves, in spatial
//! order, would cost a cache miss each), and their times checked. So every window is exact
//! in counts and weights. Bins from here sit at their pixels' centres (or, for points read
//! one by one, their zoom 7 pixel's): they serve drawing, which places bins at their centres
//! anyway.

use super::checkpoints::{self, Checkpoints};
use super::running_sums::RunningSums;
use super::unit_points::UnitPoints;
use crate::render::WorldPoint;
use crate::source::aggregate::{Bin, CellRange};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Running sums are held from the first zoom without checkpoints down while they hold at
/// most this many entries per timed point in all (a zoom holds nearly one per point on data
/// spread over space and time).
const MAX_ENTRIES_PER_POINT: usize = 2;

/// Checkpoints are kept, from zoom 0 down, while they take at most this many bytes per timed
/// point in all...
const CHECKPOINT_BYTES_PER_POINT: usize = 16;

/// ...and while that leaves a zoom this many checkpoints at least: with fewer, the units
/// between them and a window's ends would be too many to read.
const MIN_CHECKPOINTS: usize = 16;

/// The finest zoom held: pixel indices (256 * 2^z per axis) stay in u16.
pub const MAX_LEVEL: u8 = 7;

/// What the time cube costs, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeCubeSize {
    pub levels: u8,
    /// Checkpoint grids per zoom from 0, as `61+61+18`.
    pub checkpoints: String,
    pub entries: u64,
    pub bytes: u64,
}

/// The time index and running sums of a memory store's points.
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
    /// Their times, in ms after the start of their unit: the points at a window's unaligned
    /// ends are checked against it as a stream (their times in the store, in spatial
    /// order, would cost a cache miss each).
    unit_offsets: Vec<u32>,
    /// Where each unit starts in `by_unit`, plus the end.
    unit_starts: Vec<u32>,
    /// Running sums at zooms `0..levels.len()`.
    levels: Vec<RunningSums>,
    /// Dense running counts of zooms `0..checkpoints.len()`, on large layers, in place of
    /// their running sums: a tile there covers much of the world, and the running sums
    /// would look up each of its pixels at random, a cache miss or more each. Every window
    /// needs zoom 0's counts (to choose the zooms drawn from bins).
    checkpoints: Vec<Checkpoints>,
}

/// A window `[from, to)` in units: the whole units `whole`, and the units `ends` (before
/// and after them) that it covers only in part, whose points' times must be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UnitSplit {
    whole: std::ops::Range<i64>,
    ends: [std::ops::Range<i64>; 2],
}

impl TimeCube {
    /// Indexes `points` (store order) by their `times` (ms; `None` for none), and builds
    /// the running sums of the zooms within budget, on `threads` threads.
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
        // The compact copy in unit order, in one pass over the points (each a cache miss):
        // later reads are streams.
        let mut unit_pixels = Vec::with_capacity(by_unit.len());
        let mut unit_offsets = Vec::with_capacity(by_unit.len());
        let mut weights = Vec::with_capacity(by_unit.len());
        for &i in &by_unit {
            let p = &points[i as usize];
            // No clamp at the far edge, as in `bins_in`: a point at x = 1 is in column
            // `side` (the store holds only points within the world).
            let fx = ((p.x * fine).floor() as i64).clamp(0, side) as u32;
            let fy = ((p.y * fine).floor() as i64).clamp(0, side) as u32;
            unit_pixels.push((fy << 16) | fx);
            weights.push(p.w);
            let t = time_of(i as usize).unwrap_or(origin);
            unit_offsets.push((t - origin).rem_euclid(unit) as u32);
        }
        let unit_weights = weights.iter().any(|&w| w != 1.0).then_some(weights);
        let mut cube = TimeCube {
            origin,
            unit,
            units,
            unit_pixels,
            unit_weights,
            unit_offsets,
            by_unit,
            unit_starts,
            levels: Vec::new(),
            checkpoints: Vec::new(),
        };
        let weighted = cube.unit_weights.is_some();
        let budget = cube
            .by_unit
            .len()
            .saturating_mul(CHECKPOINT_BYTES_PER_POINT);
        let mut left = budget;
        for z in 0..=MAX_LEVEL {
            let grid = Checkpoints::grid_bytes(z, weighted);
            let most = (left / grid).min(checkpoints::MAX_CHECKPOINTS);
            if most < MIN_CHECKPOINTS.min(units as usize + 1) {
                break;
            }
            let built = Checkpoints::build(z, units, most, &cube.unit_points_at(z));
            left -= built.bytes();
            cube.checkpoints.push(built);
        }
        cube.levels = cube.build_levels(threads);
        Some(cube)
    }

    /// The running sums of zooms 0, 1, ... while within budget, `threads` zooms at a time.
    /// None when the units do not fit in the sums' u16 (hours over more than 7 years).
    fn build_levels(&self, threads: usize) -> Vec<RunningSums> {
        if self.units > i64::from(u16::MAX) {
            return Vec::new();
        }
        // Zooms with checkpoints need no sums.
        let checkpointed = self.checkpoints.len();
        let budget = self.by_unit.len().saturating_mul(MAX_ENTRIES_PER_POINT);
        let mut levels: Vec<RunningSums> = (0..checkpointed).map(|_| Default::default()).collect();
        let (mut entries, mut z) = (0usize, checkpointed as u8);
        while z <= MAX_LEVEL {
            let batch: Vec<u8> = (z..=MAX_LEVEL).take(threads.max(1)).collect();
            let built: Vec<RunningSums> = std::thread::scope(|scope| {
                let handles: Vec<_> = batch
                    .iter()
                    .map(|&level| {
                        let points = self.unit_points_at(level);
                        scope.spawn(move || RunningSums::build(level, &points))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_default())
                    .collect()
            });
            for sums in built {
                entries += sums.entries();
                if entries > budget {
                    return levels;
                }
                levels.push(sums);
            }
            z += batch.len() as u8;
        }
        levels
    }

    pub fn size(&self) -> TimeCubeSize {
        let entries: usize = self.levels.iter().map(RunningSums::entries).sum();
        let index = (self.by_unit.len() * 3 + self.unit_starts.len()) * 4
            + self.unit_weights.as_ref().map_or(0, |w| w.len() * 4);
        TimeCubeSize {
            levels: self.levels.len() as u8,
            checkpoints: self
                .checkpoints
                .iter()
                .map(|c| c.grids().to_string())
                .collect::<Vec<_>>()
                .join("+"),
            entries: entries as u64,
            bytes: (self.levels.iter().map(RunningSums::bytes).sum::<usize>()
                + self
                    .checkpoints
                    .iter()
                    .map(Checkpoints::bytes)
                    .sum::<usize>()
                + index) as u64,
        }
    }

    /// How many points have a time.
    pub fn timed_points(&self) -> usize {
        self.by_unit.len()
    }

    /// How many timed points fall in the units the window `[from, to)` touches: an upper
    /// bound of the points it keeps, read without touching them.
    pub fn points_within(&self, from: i64, to: i64) -> usize {
        let (u0, u1) = self.touched_units(from, to);
        (self.unit_starts[u1 as usize] - self.unit_starts[u0 as usize]) as usize
    }

    /// Visits, in each unit's store order, the store index of every point in `ranges`
    /// (ascending, disjoint ranges of store indices) whose time is in `[from, to)`.
    pub fn for_each_within(
        &self,
        from: i64,
        to: i64,
        ranges: &[(u32, u32)],
        mut visit: impl FnMut(usize),
    ) {
        let (u0, u1) = self.touched_units(from, to);
        for u in u0..u1 {
            let whole = self.unit_start_ms(u) >= from && self.unit_start_ms(u + 1) <= to;
            let base = self.unit_starts[u as usize] as usize;
            for_each_in_ranges(self.unit_points(u, u + 1), ranges, |at, i| {
                if whole || self.within(u, base + at, from, to) {
                    visit(i);
                }
            });
        }
    }

    /// Whether the point at `at` (in unit order), in unit `u`, has its time in `[from, to)`.
    fn within(&self, u: i64, at: usize, from: i64, to: i64) -> bool {
        let t = self.unit_start_ms(u) + i64::from(self.unit_offsets[at]);
        t >= from && t < to
    }

    /// The one-pixel bins at zoom `z` (which [`TimeCube::holds`]) within `cells` of the
    /// points whose time is in `[from, to)`, sorted by (row, column), each at its pixel's
    /// centre.
    ///
    /// `ranges` are the store indices (ascending, disjoint) of the points under `cells`:
    /// the points of the window's partial units are looked up there.
    pub fn bins(
        &self,
        z: u8,
        cells: &CellRange,
        ranges: &[(u32, u32)],
        from: i64,
        to: i64,
    ) -> Option<Vec<Bin>> {
        let scale = 256.0 * f64::from(1u32 << z);
        let split = self.split(from, to);
        let mut whole = Vec::new();
        let mut add = |bx: i64, by: i64, count: u32, weight: f64| {
            whole.push(Bin {
                bx,
                by,
                count: u64::from(count),
                weight,
                wx: weight * (bx as f64 + 0.5) / scale,
                wy: weight * (by as f64 + 0.5) / scale,
            })
        };
        match (
            self.checkpoints.get(usize::from(z)),
            self.levels.get(usize::from(z)),
        ) {
            (Some(checkpoints), _) => {
                let grid = checkpoints.window(
                    split.whole.start,
                    split.whole.end,
                    cells,
                    &self.unit_points_at(z),
                );
                grid.for_each(|bx, by, count, weight| {
                    if count > 0 {
                        add(bx, by, count, weight)
                    }
                });
            }
            (None, Some(level)) => {
                level.for_each_in(cells, split.whole.start as u32, split.whole.end as u32, add)
            }
            (None, None) => return None,
        }
        // The partial units' points, read from the compact copy in unit order.
        let shift = MAX_LEVEL - z;
        let fine = 256.0 * f64::from(1u32 << MAX_LEVEL);
        let mut loose = Vec::new();
        for u in split.ends.iter().flat_map(|r| r.clone()) {
            let base = self.unit_starts[u as usize] as usize;
            for_each_in_ranges(self.unit_points(u, u + 1), ranges, |at, _| {
                if !self.within(u, base + at, from, to) {
                    return;
                }
                let packed = self.unit_pixels[base + at];
                let (fx, fy) = (packed & 0xffff, packed >> 16);
                let (bx, by) = (i64::from(fx >> shift), i64::from(fy >> shift));
                if cells.contains(bx, by) {
                    let w = self
                        .unit_weights
                        .as_ref()
                        .map_or(1.0, |ws| f64::from(ws[base + at]));
                    loose.push(Bin {
                        bx,
                        by,
                        count: 1,
                        weight: w,
                        wx: w * (f64::from(fx) + 0.5) / fine,
                        wy: w * (f64::from(fy) + 0.5) / fine,
                    });
                }
            });
        }
        if loose.is_empty() {
            return Some(whole);
        }
        loose.sort_unstable_by_key(|b| (b.by, b.bx));
        Some(merge_sorted(whole, loose))
    }

    /// How many points of the window `[from, to)` each pixel of zoom 0 holds (256 x 256, row
    /// by row; the far edge's points in the last row or column, as the count grid counts
    /// them): counts only, cheaper than [`TimeCube::bins`] over the world. `None` without
    /// zoom 0's sums.
    pub fn zoom0_counts(&self, from: i64, to: i64) -> Option<Vec<u64>> {
        let mut counts = vec![0u64; 256 * 256];
        let cell = |x: u32, y: u32| (y.min(255) * 256 + x.min(255)) as usize;
        let split = self.split(from, to);
        if let Some(zoom0) = self.checkpoints.first() {
            let grid = zoom0.window(
                split.whole.start,
                split.whole.end,
                &CellRange::EVERYTHING,
                &self.unit_points_at(0),
            );
            grid.for_each(|x, y, count, _| {
                counts[cell(x as u32, y as u32)] += u64::from(count);
            });
        } else {
            self.levels.first()?.for_each_in(
                &CellRange {
                    x0: 0,
                    x1: 257,
                    y0: 0,
                    y1: 257,
                },
                split.whole.start as u32,
                split.whole.end as u32,
                |x, y, count, _| counts[cell(x as u32, y as u32)] += u64::from(count),
            );
        }
        for u in split.ends.iter().flat_map(|r| r.clone()) {
            let (start, end) = (
                self.unit_starts[u as usize] as usize,
                self.unit_starts[u as usize + 1] as usize,
            );
            for at in start..end {
                if self.within(u, at, from, to) {
                    let packed = self.unit_pixels[at];
                    counts[cell((packed & 0xffff) >> MAX_LEVEL, (packed >> 16) >> MAX_LEVEL)] += 1;
                }
            }
        }
        Some(counts)
    }

    /// The points in unit order, with their pixels at zoom `z`, for [`Checkpoints`].
    fn unit_points_at(&self, z: u8) -> UnitPoints<'_> {
        UnitPoints {
            fine_pixels: &self.unit_pixels,
            weights: self.unit_weights.as_deref(),
            unit_starts: &self.unit_starts,
            fine_shift: MAX_LEVEL - z,
        }
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

    /// The window `[from, to)` as whole units and the partial units at its ends.
    fn split(&self, from: i64, to: i64) -> UnitSplit {
        let (t0, t1) = self.touched_units(from, to);
        // Whole units `a..b`: those starting at or after `from` and ending by `to`.
        let a = if t0 < t1 && self.unit_start_ms(t0) < from {
            t0 + 1
        } else {
            t0
        };
        let b = if t1 > a && self.unit_start_ms(t1) > to {
            t1 - 1
        } else {
            t1
        };
        if a >= b {
            return UnitSplit {
                whole: t1..t1,
                ends: [t0..t1, t1..t1],
            };
        }
        UnitSplit {
            whole: a..b,
            ends: [t0..a, b..t1],
        }
    }
}

/// Two lists of bins sorted by (row, column) as one, bins of the same cell summed.
pub fn merge_sorted(a: Vec<Bin>, b: Vec<Bin>) -> Vec<Bin> {
    let mut out: Vec<Bin> = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if (x.by, x.bx) <= (y.by, y.bx) => a.next(),
            (Some(_), Some(_)) | (None, Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, None) => break,
        };
        let Some(bin) = next else { break };
        match out.last_mut() {
            Some(last) if (last.by, last.bx) == (bin.by, bin.bx) => {
                last.count += bin.count;
                last.weight += bin.weight;
                last.wx += bin.wx;
                last.wy += bin.wy;
            }
            _ => out.push(bin),
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::aggregate::bins_in;

    /// Points spread over 40 days and a small area, some without a time.
    fn layer() -> (Vec<WorldPoint>, Vec<Option<i64>>) {
        let mut points = Vec::new();
        let mut times = Vec::new();
        let mut rng = crate::synth::Rng::new(12345);
        let mut next = || rng.unit();
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
        let built = TimeCube::build(&points, |i| times[i], false, 2).expect("timed");
        // Too small for checkpoints: the same cube with them at zooms 0 and 1.
        assert!(built.checkpoints.is_empty());
        let mut with_checkpoints = TimeCube::build(&points, |i| times[i], false, 2).expect("timed");
        with_checkpoints.checkpoints = (0..2)
            .map(|z| {
                Checkpoints::build(
                    z,
                    with_checkpoints.units,
                    16,
                    &with_checkpoints.unit_points_at(z),
                )
            })
            .collect();
        for cube in [built, with_checkpoints] {
            check_windows(&cube, &points, &times);
        }
    }

    fn check_windows(cube: &TimeCube, points: &[WorldPoint], times: &[Option<i64>]) {
        let held: Vec<u8> = (0..cube.levels.len() as u8).collect();
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
                let got = cube.bins(z, &cells, &all, from, to).expect("held");
                assert_eq!(got.len(), want.len(), "z{z} {from}..{to}");
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!((g.bx, g.by, g.count), (w.bx, w.by, w.count));
                    assert!((g.weight - w.weight).abs() <= 1e-4 * w.weight.abs().max(1.0));
                    // At the pixel's centre, or the finest pixel's for points read one by one.
                    let half_pixel = 0.5 / scale;
                    assert!((g.wx - w.wx).abs() <= half_pixel * w.weight.abs().max(1.0));
                    assert!((g.wy - w.wy).abs() <= half_pixel * w.weight.abs().max(1.0));
                }
                if z == 0 {
                    let counts = cube.zoom0_counts(from, to).expect("zoom 0");
                    for w in &want {
                        let at = (w.by.min(255) * 256 + w.bx.min(255)) as usize;
                        assert!(counts[at] >= w.count);
                    }
                    assert_eq!(counts.iter().sum::<u64>(), kept.len() as u64);
                }
                let mut visited = 0;
                cube.for_each_within(from, to, &all, |_| visited += 1);
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
    fn windows_split_into_whole_units_and_checked_ends() {
        let (points, times) = layer();
        let cube = TimeCube::build(&points, |i| times[i], false, 1).expect("timed");
        let day = |d: i64| cube.origin + d * DAY_MS;
        // The first time is late on a day, so 40 days touch 41 units.
        assert_eq!(cube.units, 41);
        let split = |from, to| cube.split(from, to);
        assert_eq!(
            split(day(0), day(41)),
            UnitSplit {
                whole: 0..41,
                ends: [0..0, 41..41]
            }
        );
        assert_eq!(
            split(day(3) + 1, day(17) + 5),
            UnitSplit {
                whole: 4..17,
                ends: [3..4, 17..18]
            }
        );
        // Within one unit: all of it checked.
        assert_eq!(
            split(day(3) + 1, day(3) + 2),
            UnitSplit {
                whole: 4..4,
                ends: [3..4, 4..4]
            }
        );
        assert_eq!(
            split(day(3), day(3) + 2),
            UnitSplit {
                whole: 4..4,
                ends: [3..4, 4..4]
            }
        );
        // Past the extent, and empty.
        assert_eq!(
            split(day(-5), day(90)),
            UnitSplit {
                whole: 0..41,
                ends: [0..0, 41..41]
            }
        );
        assert_eq!(split(day(50), day(60)).ends, [41..41, 41..41]);
        assert!(split(day(50), day(60)).whole.is_empty());
    }
}
