//! A memory store's time cubes: one of all its timed points, one per value of each category
//! column with few values, and which of them answer a filter.

use super::attributes::Attributes;
use super::timecube::{merge_sorted, TimeCube, TimeCubeSize};
use crate::render::WorldPoint;
use crate::source::aggregate::{Bin, CellRange};
use crate::source::attributes::AttributeFilter;

/// Category columns with at most this many values get a cube per value (each about the
/// size of the whole layer's cube times the value's share of the points)...
pub const MAX_CUBED_VALUES: usize = 16;

/// ...the first this many such columns, in declaration order: each costs about as much
/// memory again as the whole layer's cube.
pub const MAX_CUBED_COLUMNS: usize = 2;

/// The cube of the points with one category value.
#[derive(Debug)]
struct ValueCube {
    /// `None` when none of them has a time.
    cube: Option<TimeCube>,
    /// Whether all of them have a time: only then does the cube answer a filter with no
    /// window (which keeps the points without a time too).
    all_timed: bool,
}

/// The time cubes of a store with a time column; empty otherwise.
#[derive(Debug, Default)]
pub struct TimeCubes {
    all: Option<TimeCube>,
    /// Per category column (declaration order), per value code; empty for a column with
    /// more than [`MAX_CUBED_VALUES`] values, and after [`MAX_CUBED_COLUMNS`] columns.
    by_value: Vec<Vec<ValueCube>>,
}

impl TimeCubes {
    /// The cubes of `points` (store order) with their `attributes`, on `threads` threads;
    /// empty without a time column.
    pub fn build(
        points: &[WorldPoint],
        attributes: &Attributes,
        hourly: bool,
        threads: usize,
    ) -> TimeCubes {
        if !attributes.has_time() {
            return TimeCubes::default();
        }
        let started = std::time::Instant::now();
        let all = TimeCube::build(points, |i| attributes.time_at(i), hourly, threads);
        if let Some(cube) = &all {
            let TimeCubeSize {
                levels,
                checkpoints,
                entries,
                bytes,
            } = cube.size();
            tracing::info!(
                levels,
                checkpoints,
                entries,
                bytes,
                ms = started.elapsed().as_millis() as u64,
                "time cube built"
            );
        }
        let started = std::time::Instant::now();
        let mut cubed_columns = 0;
        let by_value: Vec<Vec<ValueCube>> = attributes
            .categories()
            .iter()
            .map(|column| {
                let counts = column.counts();
                if counts.len() > MAX_CUBED_VALUES || cubed_columns == MAX_CUBED_COLUMNS {
                    return Vec::new();
                }
                cubed_columns += 1;
                counts
                    .iter()
                    .enumerate()
                    .map(|(code, &(_, count))| {
                        let code = code as u32;
                        let cube = TimeCube::build(
                            points,
                            |i| {
                                attributes
                                    .time_at(i)
                                    .filter(|_| column.code(i) == Some(code))
                            },
                            hourly,
                            threads,
                        );
                        let timed = cube.as_ref().map_or(0, TimeCube::timed_points);
                        ValueCube {
                            cube,
                            all_timed: timed as u64 == count,
                        }
                    })
                    .collect()
            })
            .collect();
        let cubes: Vec<&TimeCube> = by_value
            .iter()
            .flatten()
            .filter_map(|v| v.cube.as_ref())
            .collect();
        if !cubes.is_empty() {
            let sizes = cubes.iter().map(|c| c.size());
            let (entries, bytes) = sizes.fold((0, 0), |(e, b), s| (e + s.entries, b + s.bytes));
            tracing::info!(
                cubes = cubes.len(),
                entries,
                bytes,
                ms = started.elapsed().as_millis() as u64,
                "category time cubes built"
            );
        }
        TimeCubes { all, by_value }
    }

    /// The cube of all timed points.
    pub fn all(&self) -> Option<&TimeCube> {
        self.all.as_ref()
    }

    /// The cubes that together hold exactly the points `filter` keeps within its window
    /// (`[from, to)`, the whole of time when it has none): the whole layer's for a window
    /// alone, a cube per accepted value for one category column. `None` when no cubes do
    /// (categories of several columns, or of a column with many values, or no window on a
    /// value some of whose points have no time).
    pub fn answering<'a>(
        &'a self,
        attributes: &Attributes,
        filter: &AttributeFilter,
    ) -> Option<(Vec<&'a TimeCube>, (i64, i64))> {
        let window = filter.window();
        match filter.categories.as_slice() {
            [] => Some((vec![self.all.as_ref()?], window?)),
            [(name, wanted)] => {
                let at = attributes
                    .categories()
                    .iter()
                    .position(|c| &c.name == name)?;
                let column = &attributes.categories()[at];
                let cubes = self.by_value.get(at).filter(|c| !c.is_empty())?;
                let mut answering = Vec::new();
                for (value, cube) in column.values().iter().zip(cubes) {
                    if !wanted.contains(value) {
                        continue;
                    }
                    if window.is_none() && !cube.all_timed {
                        return None;
                    }
                    answering.extend(cube.cube.as_ref());
                }
                Some((answering, window.unwrap_or((i64::MIN, i64::MAX))))
            }
            _ => None,
        }
    }

    /// The one-pixel bins at zoom `z` within `cells` of the points `filter` keeps, from the
    /// cubes that answer it, when they all hold `z` (see [`TimeCube::bins`]).
    pub fn bins(
        &self,
        attributes: &Attributes,
        filter: &AttributeFilter,
        z: u8,
        cells: &CellRange,
        ranges: &[(u32, u32)],
    ) -> Option<Vec<Bin>> {
        let (cubes, (from, to)) = self.answering(attributes, filter)?;
        let mut bins = Vec::new();
        for cube in cubes {
            bins = merge_sorted(bins, cube.bins(z, cells, ranges, from, to)?);
        }
        Some(bins)
    }

    /// The points `filter` keeps in each pixel of zoom 0 (see [`TimeCube::zoom0_counts`]).
    pub fn zoom0_counts(
        &self,
        attributes: &Attributes,
        filter: &AttributeFilter,
    ) -> Option<Vec<u64>> {
        let (cubes, (from, to)) = self.answering(attributes, filter)?;
        let mut counts = vec![0u64; 256 * 256];
        for cube in cubes {
            for (sum, count) in counts.iter_mut().zip(cube.zoom0_counts(from, to)?) {
                *sum += count;
            }
        }
        Some(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::aggregate::bins_in;
    use crate::source::attributes::AttributeSchema;
    use crate::source::memory::attributes::AttributesBuilder;

    /// 3,000 points over 20 days in kinds `a`, `b` and `c`; some of `c` have no time.
    fn layer() -> (Vec<WorldPoint>, Attributes) {
        let schema = AttributeSchema {
            time: Some("t".into()),
            categories: vec!["kind".into()],
            time_bucket: None,
        };
        let mut builder = AttributesBuilder::new(&schema);
        let mut points = Vec::new();
        for i in 0..3000u32 {
            let f = f64::from(i);
            points.push(WorldPoint {
                x: 0.5 + 0.01 * (f * 0.37).sin(),
                y: 0.4 + 0.01 * (f * 0.11).cos(),
                w: 1.0,
                seq: i,
            });
            let kind = ["a", "b", "c"][i as usize % 3];
            let untimed = kind == "c" && i % 7 == 0;
            builder.set_time((!untimed).then(|| 1_700_000_000_000 + i64::from(i) * 576_000));
            builder.set_category(0, kind);
            builder.push_point();
        }
        (points, builder.finish())
    }

    fn filter(query: &[(&str, &[&str])], window: Option<(i64, i64)>) -> AttributeFilter {
        AttributeFilter {
            from: window.map(|w| w.0),
            to: window.map(|w| w.1),
            categories: query
                .iter()
                .map(|(c, v)| (c.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
        }
    }

    #[test]
    fn value_cubes_answer_one_column_and_sum_to_the_kept_points() {
        let (points, attributes) = layer();
        let cubes = TimeCubes::build(&points, &attributes, false, 2);
        let window = Some((
            1_700_000_000_000 + 86_400_000,
            1_700_000_000_000 + 9 * 86_400_000,
        ));
        let cells = CellRange::of(&crate::tile::WorldBox::WORLD, 256.0);
        let all = [(0, points.len() as u32)];
        for (query, window, answered) in [
            (filter(&[("kind", &["a", "b"])], None), None, true),
            (filter(&[("kind", &["b", "nosuch"])], window), window, true),
            (filter(&[("kind", &["c"])], window), window, true),
            // `c` has points without a time, which no window keeps.
            (filter(&[("kind", &["c"])], None), None, false),
            (
                filter(&[("kind", &["a"]), ("kind", &["b"])], None),
                None,
                false,
            ),
            (filter(&[], window), window, true),
        ] {
            let selection = attributes.select(&query);
            let kept: Vec<WorldPoint> = (0..points.len())
                .filter(|&i| selection.keeps(i))
                .map(|i| points[i])
                .collect();
            let got = cubes.bins(&attributes, &query, 0, &cells, &all);
            assert_eq!(got.is_some(), answered, "{query:?} {window:?}");
            let Some(got) = got else { continue };
            let want = bins_in(&kept, 256.0, &cells);
            let cells_of = |b: &[Bin]| b.iter().map(|b| (b.bx, b.by, b.count)).collect::<Vec<_>>();
            assert_eq!(cells_of(&got), cells_of(&want), "{query:?}");
            let counts = cubes.zoom0_counts(&attributes, &query).expect("answered");
            assert_eq!(counts.iter().sum::<u64>(), kept.len() as u64);
        }
    }

    #[test]
    fn only_the_first_columns_with_few_values_get_cubes() {
        let schema = AttributeSchema {
            time: Some("t".into()),
            categories: vec!["many".into(), "x".into(), "y".into(), "z".into()],
            time_bucket: None,
        };
        let mut builder = AttributesBuilder::new(&schema);
        let mut points = Vec::new();
        for i in 0..200u32 {
            points.push(WorldPoint {
                x: 0.5,
                y: 0.5,
                w: 1.0,
                seq: i,
            });
            builder.set_time(Some(1_700_000_000_000 + i64::from(i)));
            builder.set_category(0, &i.to_string());
            for column in 1..4 {
                builder.set_category(column, if i % 2 == 0 { "even" } else { "odd" });
            }
            builder.push_point();
        }
        let attributes = builder.finish();
        let cubes = TimeCubes::build(&points, &attributes, false, 1);
        let answered = |column: &str| {
            cubes
                .answering(&attributes, &filter(&[(column, &["even"])], None))
                .is_some()
        };
        // `many` has 200 values; `x` and `y` are the first two with few.
        assert_eq!(
            ["many", "x", "y", "z"].map(answered),
            [false, true, true, false]
        );
    }
}
