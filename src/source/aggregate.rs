//! The raw-points answer for client-side heatmaps: points as `[lat, lng, w]`, or, above the
//! limit, pixel bins whose weights still sum to the true total.

use crate::render::WorldPoint;
use crate::tile::{world_x_to_lon, world_y_to_lat};
use serde::Serialize;
use std::collections::HashMap;

/// `{"data": [[lat, lng, w], ...], "count": N, "aggregated": bool}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointsAnswer {
    pub data: Vec<[f64; 3]>,
    /// How many source points the answer covers (equal to `data.len()` unless aggregated).
    pub count: u64,
    pub aggregated: bool,
    /// Side of one bin in pixels of the requested zoom, when aggregated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bin_px: Option<f64>,
}

/// Builds the answer. `pixel_scale` is pixels per world unit of the zoom the client draws at;
/// bins start at one such pixel and double in size until at most `limit` remain.
pub fn answer(points: &[WorldPoint], limit: usize, pixel_scale: f64) -> PointsAnswer {
    let count = points.len() as u64;
    if points.len() <= limit {
        return PointsAnswer {
            data: points
                .iter()
                .map(|p| [lat(p.y), lon(p.x), p.w as f64])
                .collect(),
            count,
            aggregated: false,
            bin_px: None,
        };
    }
    let mut bin_px = 1.0;
    loop {
        let bins = bin(points, pixel_scale / bin_px);
        // A single bin always fits, so the loop ends; the guard keeps it finite for any input.
        if bins.len() <= limit.max(1) || bin_px > 1e12 {
            let data = bins
                .into_iter()
                .map(|b| {
                    let (x, y) = b.position();
                    [lat(y), lon(x), b.weight]
                })
                .collect();
            return PointsAnswer {
                data,
                count,
                aggregated: true,
                bin_px: Some(bin_px),
            };
        }
        bin_px *= 2.0;
    }
}

/// One bin: weighted position sums, so it sits at its points' weighted mean.
#[derive(Default, Clone, Copy)]
struct Bin {
    weight: f64,
    wx: f64,
    wy: f64,
    count: f64,
    sx: f64,
    sy: f64,
}

impl Bin {
    fn position(&self) -> (f64, f64) {
        if self.weight > 0.0 {
            (self.wx / self.weight, self.wy / self.weight)
        } else {
            (self.sx / self.count, self.sy / self.count)
        }
    }
}

/// Bins on the global grid of `cells_per_unit` cells per world unit, in first-seen order.
fn bin(points: &[WorldPoint], cells_per_unit: f64) -> Vec<Bin> {
    let mut index: HashMap<(i64, i64), usize> = HashMap::new();
    let mut bins: Vec<Bin> = Vec::new();
    for p in points {
        let key = (
            (p.x * cells_per_unit).floor() as i64,
            (p.y * cells_per_unit).floor() as i64,
        );
        let slot = *index.entry(key).or_insert_with(|| {
            bins.push(Bin::default());
            bins.len() - 1
        });
        let b = &mut bins[slot];
        let w = p.w as f64;
        b.weight += w;
        b.wx += w * p.x;
        b.wy += w * p.y;
        b.count += 1.0;
        b.sx += p.x;
        b.sy += p.y;
    }
    bins
}

/// Degrees rounded to 1e-7 (about 1 cm): enough for any heatmap, and it keeps JSON short.
fn lat(y: f64) -> f64 {
    (world_y_to_lat(y) * 1e7).round() / 1e7
}

fn lon(x: f64) -> f64 {
    (world_x_to_lon(x) * 1e7).round() / 1e7
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud(n: u32) -> Vec<WorldPoint> {
        (0..n)
            .map(|i| WorldPoint {
                x: 0.5 + (i % 300) as f64 * 1e-6,
                y: 0.3 + (i / 300) as f64 * 1e-6,
                w: 0.5 + (i % 7) as f32,
                seq: i,
            })
            .collect()
    }

    #[test]
    fn small_answers_are_raw_points() {
        let pts = cloud(10);
        let a = answer(&pts, 10, 256.0 * 1024.0);
        assert!(!a.aggregated);
        assert_eq!(a.data.len(), 10);
        assert_eq!(a.count, 10);
        assert_eq!(a.data[3][2], pts[3].w as f64);
    }

    #[test]
    fn aggregated_bins_keep_the_total_weight_and_respect_the_limit() {
        let pts = cloud(30_000);
        let total: f64 = pts.iter().map(|p| p.w as f64).sum();
        for limit in [1, 50, 1000, 29_999] {
            let a = answer(&pts, limit, 256.0 * 2f64.powi(14));
            assert!(a.aggregated);
            assert!(a.data.len() <= limit, "{} > {limit}", a.data.len());
            assert_eq!(a.count, 30_000);
            let sum: f64 = a.data.iter().map(|d| d[2]).sum();
            assert!((sum - total).abs() < 1e-9 * total, "{sum} vs {total}");
        }
    }

    #[test]
    fn zero_weight_bins_still_have_a_position() {
        let pts: Vec<WorldPoint> = (0..5)
            .map(|i| WorldPoint {
                x: 0.5,
                y: 0.5,
                w: 0.0,
                seq: i,
            })
            .collect();
        let a = answer(&pts, 1, 256.0);
        assert_eq!(a.data.len(), 1);
        assert!(a.data[0][0].is_finite() && a.data[0][1].is_finite());
    }
}
