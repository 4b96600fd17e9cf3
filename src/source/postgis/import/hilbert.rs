//! Hilbert-curve order, so that the rows of a tile sit together on disk.

use crate::render::WorldPoint;

/// Sorts points along a Hilbert curve over the world square; ties (points in one cell) keep
/// file order, so the order is reproducible.
pub(super) fn spatial_order(points: &mut [WorldPoint]) {
    points.sort_by_cached_key(|p| (hilbert_key(p.x, p.y), p.seq));
}

/// Bits per axis: 65,536 cells a side, about 600 m at the equator, much finer than the pages
/// a tile query reads.
const HILBERT_BITS: u32 = 16;

/// The position of world point (x, y) (each in 0..=1) along a Hilbert curve over a
/// 2^16 x 2^16 grid. The curve starts at the north-west corner (0, 0) and ends at the
/// north-east one (1, 0); points close on the curve are close on the map.
fn hilbert_key(x: f64, y: f64) -> u32 {
    let n = 1u32 << HILBERT_BITS;
    let cell = |v: f64| ((v.clamp(0.0, 1.0) * f64::from(n)) as u32).min(n - 1);
    let (mut x, mut y) = (cell(x), cell(y));
    let mut key = 0u32;
    let mut s = n / 2;
    while s > 0 {
        let rx = u32::from(x & s != 0);
        let ry = u32::from(y & s != 0);
        key += s * s * ((3 * rx) ^ ry);
        // Rotate the quadrant so that the sub-curve inside it joins its neighbours'.
        if ry == 0 {
            if rx == 1 {
                x = s - 1 - (x & (s - 1));
                y = s - 1 - (y & (s - 1));
            }
            std::mem::swap(&mut x, &mut y);
        }
        s /= 2;
    }
    key
}

#[cfg(test)]
mod tests {
    use super::super::tests::point;
    use super::*;

    #[test]
    fn hilbert_key_visits_every_cell_once_and_moves_one_cell_at_a_time() {
        // The same construction on a 16 x 16 grid: keys are a permutation and consecutive
        // keys are neighbouring cells. The 2^16 grid differs only in depth.
        let n = 1u32 << HILBERT_BITS;
        let step = (n / 16) as f64;
        let mut cells = vec![(0u32, 0u32); 256];
        for i in 0..16u32 {
            for j in 0..16u32 {
                let key = hilbert_key(
                    (f64::from(i) * step + 0.5) / f64::from(n),
                    (f64::from(j) * step + 0.5) / f64::from(n),
                );
                cells[(key / (n / 16 * n / 16)) as usize] = (i, j);
            }
        }
        for pair in cells.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert_eq!(a.0.abs_diff(b.0) + a.1.abs_diff(b.1), 1, "{a:?} -> {b:?}");
        }
        assert_eq!(hilbert_key(0.0, 0.0), 0);
        assert_eq!(
            hilbert_key(1.0, 0.0),
            u32::MAX,
            "ends at the north-east corner"
        );
        assert_eq!(hilbert_key(f64::NAN, 2.0), hilbert_key(0.0, 1.0));
    }

    #[test]
    fn spatial_order_keeps_file_order_within_a_cell() {
        let mut points = vec![
            point(0.9, 0.1, 1.0, 0),
            point(0.1, 0.1, 1.0, 1),
            point(0.1, 0.1, 1.0, 2),
        ];
        spatial_order(&mut points);
        let seqs: Vec<u32> = points.iter().map(|p| p.seq).collect();
        assert_eq!(seqs, [1, 2, 0]);
    }
}
