//! Seeded synthetic point sets for benchmarks and tests.
//!
//! Real layers are not uniform: most points sit in a few dense "cities" of very different
//! sizes, with a thin scatter in between, and that shape is what decides how fast a renderer
//! is (dense pixels, empty rows, heavy cells). [`clustered_points`] imitates it:
//!
//! - about sqrt(count) / 2 Gaussian clusters, with Pareto-distributed populations (a few
//!   huge ones, many small ones) and log-normally varied spreads that grow with population;
//!   each cluster has a tight core and a wider halo (a quarter of its points);
//! - 10% of the points spread uniformly over the area as background.
//!
//! Everything is deterministic for a seed (a small xoshiro256** generator seeded through
//! splitmix64, and Box-Muller for normals; no RNG crate), so benchmarks and tests see the same
//! points on every machine and every run.

use crate::render::WorldPoint;

/// Share of the points spread uniformly over the whole area.
const BACKGROUND: f64 = 0.10;
/// Share of a cluster's points drawn from its wider halo rather than its core.
const HALO: f64 = 0.25;
/// Pareto shape of cluster populations: close to 1 gives the heavy tail of city sizes.
const PARETO_ALPHA: f64 = 1.1;

/// `count` points in `area` (`[x0, y0, x1, y1]` in world units), clustered like real data,
/// all of weight 1.0, with `seq` = index. Every point lies inside the area (edges included).
/// A non-finite area (or one whose size overflows) is replaced by the whole world; reversed
/// corners are put in order.
pub fn clustered_points(count: usize, seed: u64, area: [f64; 4]) -> Vec<WorldPoint> {
    generate(count, seed, area, |_| 1.0)
}

/// The same positions as [`clustered_points`] for the same arguments, with log-normal weights
/// (median 1, most between 0.1 and 10, a few far larger), drawn from a separate stream.
pub fn clustered_points_weighted(count: usize, seed: u64, area: [f64; 4]) -> Vec<WorldPoint> {
    generate(count, seed, area, |rng| (1.2 * rng.normal()).exp() as f32)
}

fn generate(
    count: usize,
    seed: u64,
    area: [f64; 4],
    mut weight: impl FnMut(&mut Rng) -> f32,
) -> Vec<WorldPoint> {
    if count == 0 {
        return Vec::new();
    }
    // Non-finite corners, or a box so wide that its size overflows, fall back to the world.
    let usable = area.iter().all(|v| v.is_finite())
        && (area[2] - area[0]).is_finite()
        && (area[3] - area[1]).is_finite();
    let [x0, y0, x1, y1] = if usable { area } else { [0.0, 0.0, 1.0, 1.0] };
    let (x0, x1) = (x0.min(x1), x0.max(x1));
    let (y0, y1) = (y0.min(y1), y0.max(y1));
    let (dx, dy) = (x1 - x0, y1 - y0);
    let extent = dx.max(dy);

    let mut rng = Rng::new(seed);
    // A separate stream for weights keeps the positions identical across the two variants.
    let mut weight_rng = Rng::new(seed ^ 0xd1b5_4a32_d192_ed03);

    let n_clusters = ((count as f64).sqrt() / 2.0).round().clamp(1.0, 5000.0) as usize;
    let clusters: Vec<Cluster> = (0..n_clusters)
        .map(|_| {
            // Pareto(alpha) population: u^(-1/alpha) with u in (0, 1].
            let population = (1.0 - rng.unit()).powf(-1.0 / PARETO_ALPHA);
            // Bigger cities spread wider, with log-normal variety around that trend.
            let sigma = extent * 0.008 * population.powf(0.4) * (0.6 * rng.normal()).exp();
            Cluster {
                cx: x0 + rng.unit() * dx,
                cy: y0 + rng.unit() * dy,
                sigma: sigma.min(extent * 0.2),
                population,
            }
        })
        .collect();
    // Cumulative populations for picking a cluster with probability proportional to it.
    let mut cumulative = Vec::with_capacity(n_clusters);
    let mut total = 0.0;
    for c in &clusters {
        total += c.population;
        cumulative.push(total);
    }

    let uniform = |rng: &mut Rng| (x0 + rng.unit() * dx, y0 + rng.unit() * dy);
    let inside = |x: f64, y: f64| x >= x0 && x <= x1 && y >= y0 && y <= y1;
    (0..count)
        .map(|i| {
            let (x, y) = if rng.unit() < BACKGROUND {
                uniform(&mut rng)
            } else {
                let pick = rng.unit() * total;
                let k = cumulative
                    .partition_point(|&c| c <= pick)
                    .min(n_clusters - 1);
                let c = &clusters[k];
                let sigma = if rng.unit() < HALO {
                    c.sigma * 4.0
                } else {
                    c.sigma
                };
                // Points of clusters near the edge that fall outside are redrawn a few times
                // (the cluster is clipped by the area, as a tile clips a city), then given up
                // to the background so the loop is bounded.
                let mut found = None;
                for _ in 0..8 {
                    let (gx, gy) = rng.normal_pair();
                    let (x, y) = (c.cx + gx * sigma, c.cy + gy * sigma);
                    if inside(x, y) {
                        found = Some((x, y));
                        break;
                    }
                }
                found.unwrap_or_else(|| uniform(&mut rng))
            };
            WorldPoint {
                x,
                y,
                w: weight(&mut weight_rng),
                seq: u32::try_from(i).unwrap_or(u32::MAX),
            }
        })
        .collect()
}

struct Cluster {
    cx: f64,
    cy: f64,
    sigma: f64,
    population: f64,
}

/// xoshiro256** (Blackman and Vigna), seeded with splitmix64 so that any u64 seed, including
/// 0, gives a well-mixed non-zero state.
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1), with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Two independent standard normals (Box-Muller).
    pub fn normal_pair(&mut self) -> (f64, f64) {
        // 1 - unit() is in (0, 1], so the logarithm is finite.
        let r = (-2.0 * (1.0 - self.unit()).ln()).sqrt();
        let theta = std::f64::consts::TAU * self.unit();
        (r * theta.cos(), r * theta.sin())
    }

    /// One standard normal.
    pub fn normal(&mut self) -> f64 {
        self.normal_pair().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_for_a_seed() {
        let area = [0.25, 0.5, 0.26, 0.51];
        let a = clustered_points(5000, 42, area);
        assert_eq!(a, clustered_points(5000, 42, area));
        assert_ne!(a, clustered_points(5000, 43, area));
        let w = clustered_points_weighted(5000, 42, area);
        assert_eq!(w, clustered_points_weighted(5000, 42, area));
        // Same positions, different weights.
        assert!(a
            .iter()
            .zip(&w)
            .all(|(p, q)| p.x == q.x && p.y == q.y && p.seq == q.seq));
        assert!(w.iter().all(|p| p.w > 0.0 && p.w.is_finite()));
        assert!(w.iter().any(|p| p.w != 1.0));
        assert!(a.iter().all(|p| p.w == 1.0));
        assert!(a.iter().enumerate().all(|(i, p)| p.seq as usize == i));
    }

    #[test]
    fn all_points_inside_the_area() {
        for (seed, area) in [
            (1, [0.0, 0.0, 1.0, 1.0]),
            (2, [0.5, 0.25, 0.5 + 1.0 / 1024.0, 0.25 + 1.0 / 1024.0]),
            (3, [0.9, 0.9, 0.1, 0.1]), // reversed corners
            (4, [0.3, 0.3, 0.3, 0.7]), // zero width
        ] {
            let pts = clustered_points(20_000, seed, area);
            assert_eq!(pts.len(), 20_000);
            let (x0, x1) = (area[0].min(area[2]), area[0].max(area[2]));
            let (y0, y1) = (area[1].min(area[3]), area[1].max(area[3]));
            for p in &pts {
                assert!(
                    p.x >= x0 && p.x <= x1 && p.y >= y0 && p.y <= y1,
                    "{p:?} outside {area:?}"
                );
            }
        }
        let nan = clustered_points(100, 5, [f64::NAN, 0.0, 1.0, 1.0]);
        assert!(nan
            .iter()
            .all(|p| (0.0..=1.0).contains(&p.x) && (0.0..=1.0).contains(&p.y)));
        assert!(clustered_points(0, 5, [0.0, 0.0, 1.0, 1.0]).is_empty());
    }

    /// The points are clustered: the densest 1% of a 64x64 grid holds several times its
    /// share, while the background still reaches most cells.
    #[test]
    fn points_are_clustered_with_a_background() {
        let pts = clustered_points(100_000, 9, [0.0, 0.0, 1.0, 1.0]);
        let mut grid = vec![0usize; 64 * 64];
        for p in &pts {
            let gx = ((p.x * 64.0) as usize).min(63);
            let gy = ((p.y * 64.0) as usize).min(63);
            grid[gy * 64 + gx] += 1;
        }
        grid.sort_unstable_by(|a, b| b.cmp(a));
        let top: usize = grid[..41].iter().sum();
        let median = grid[64 * 32];
        assert!(top > pts.len() / 20, "top 1% of cells hold {top}");
        assert!(
            grid[0] > 20 * median.max(1),
            "densest {} vs median {median}",
            grid[0]
        );
        assert!(grid.iter().filter(|&&c| c > 0).count() > 64 * 64 * 3 / 4);
    }
}
