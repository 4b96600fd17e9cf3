//! A layer's timed points in time-unit order, as the time cube's checkpoints and running
//! sums read them: compact, so that every read is a stream.

/// Points in unit order: each one's pixel at a fine zoom (`row << 16 | column`), and its
/// weight when not all are 1; unit `u`'s are `unit_starts[u]..unit_starts[u + 1]`.
#[derive(Clone, Copy)]
pub struct UnitPoints<'a> {
    pub fine_pixels: &'a [u32],
    pub weights: Option<&'a [f32]>,
    pub unit_starts: &'a [u32],
    /// How many zooms finer than the zoom read the pixels are.
    pub fine_shift: u8,
}

impl UnitPoints<'_> {
    /// Calls `add(column, row, weight)` for each point of units `units`, at the zoom read.
    pub fn add_units(&self, units: std::ops::Range<i64>, mut add: impl FnMut(usize, usize, f64)) {
        if units.is_empty() {
            return;
        }
        let start = self.unit_starts[units.start as usize] as usize;
        let end = self.unit_starts[units.end as usize] as usize;
        let shift = self.fine_shift;
        for (at, &packed) in self.fine_pixels[start..end].iter().enumerate() {
            let (x, y) = ((packed & 0xffff) >> shift, (packed >> 16) >> shift);
            add(x as usize, y as usize, self.weight(start + at));
        }
    }

    /// The weight of the point at `at` (in unit order).
    pub fn weight(&self, at: usize) -> f64 {
        self.weights.map_or(1.0, |ws| f64::from(ws[at]))
    }

    /// Each point's unit (which must fit in a u16), in unit order.
    pub fn units(&self) -> Vec<u16> {
        let mut units = vec![0u16; self.fine_pixels.len()];
        for (u, bounds) in self.unit_starts.windows(2).enumerate() {
            units[bounds[0] as usize..bounds[1] as usize].fill(u as u16);
        }
        units
    }
}
