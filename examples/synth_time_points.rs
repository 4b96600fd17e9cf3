//! Writes a synthetic point layer with a time and a category column (`lon,lat,t,kind`) for
//! benches/time-filters.sh: the positions of the benchmarks' clustered points
//! ([`twine_heatmap::synth::clustered_points`], the very points benches/datashader.sh writes
//! for the same count and seed), each given a made-up time and kind. The data is SYNTHETIC.
//!
//! ```text
//! cargo run --release --example synth_time_points -- --count 1000000 --seed 42 --out t.csv
//! ```
//!
//! - `t`: an instant in [2023-01-01, 2025-01-01) UTC, whole seconds, written in ISO 8601 as
//!   the point's local time with its offset (`2023-07-14T18:03:22+02:00`; the offset is the
//!   longitude's hour, -12..+12), so the file exercises offsets as real exports do. Instants
//!   are drawn by rejection from an intensity, in local time, that grows over the two years
//!   (a trend: the last day has 1.6 times the first's), peaks in July (a season: 2 times
//!   January), is busier on Fridays and Saturdays than on Sundays (a week) and in the
//!   afternoon than at night (a day).
//! - `kind`: one of six values with skewed shares, 40 / 25 / 15 / 10 / 6 / 4 %.
//!
//! Times and kinds come from their own seeded stream (splitmix64), so the positions stay
//! those of `clustered_points(count, seed, world)`. The file is written beside `--out` and
//! renamed, so an interrupted run never leaves a partial file under that name.

use std::f64::consts::TAU;
use std::io::{BufWriter, Write};
use std::process::ExitCode;
use twine_heatmap::synth::clustered_points;
use twine_heatmap::tile::{world_x_to_lon, world_y_to_lat};

const USAGE: &str = "usage: synth_time_points --count N --seed S --out FILE.csv";

/// 2023-01-01T00:00:00Z in Unix seconds.
const START: i64 = 1_672_531_200;
/// 2023 and 2024 (a leap year): 731 days.
const SPAN: i64 = 731 * 86_400;
const DAY: i64 = 86_400;
/// The kinds and their shares (cumulative thresholds are built from these).
const KINDS: [(&str, f64); 6] = [
    ("alpha", 0.40),
    ("bravo", 0.25),
    ("charlie", 0.15),
    ("delta", 0.10),
    ("echo", 0.06),
    ("foxtrot", 0.04),
];
/// Weekday factors, Monday first.
const WEEK: [f64; 7] = [1.0, 1.0, 1.05, 1.1, 1.35, 1.5, 0.75];

/// splitmix64: small, seeded, good enough for drawing times.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Relative intensity at a local time (seconds since START, local clock), at most 1.
fn intensity(local: i64) -> f64 {
    let days = local.div_euclid(DAY);
    let trend = 1.0 + 0.6 * local as f64 / SPAN as f64;
    // Peak around 15 July (day 195 of the year), trough in mid-January: 1.5 / 0.75.
    let season = 1.125 + 0.375 * (TAU * (local as f64 / DAY as f64 - 195.0) / 365.2425).cos();
    // 2023-01-01 was a Sunday: Monday-first index 6.
    let week = WEEK[(days + 6).rem_euclid(7) as usize];
    let hour = local.rem_euclid(DAY) as f64 / 3600.0;
    // Quietest at 04:00, busiest at 16:00.
    let day = 0.2 + 0.8 * (0.5 - 0.5 * (TAU * (hour - 4.0) / 24.0).cos());
    trend * season * week * day / (1.6 * 1.5 * 1.5 * 1.0)
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `unix` seconds shown on a clock `offset_h` hours from UTC, ISO 8601 with the offset.
fn iso_local(unix: i64, offset_h: i64) -> String {
    let local = unix + offset_h * 3600;
    let (y, mo, d) = civil(local.div_euclid(DAY));
    let s = local.rem_euclid(DAY);
    let sign = if offset_h < 0 { '-' } else { '+' };
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}{sign}{:02}:00",
        s / 3600,
        s % 3600 / 60,
        s % 60,
        offset_h.abs()
    )
}

fn kind(u: f64) -> &'static str {
    let mut acc = 0.0;
    for (name, share) in KINDS {
        acc += share;
        if u < acc {
            return name;
        }
    }
    KINDS[KINDS.len() - 1].0
}

fn write(count: usize, seed: u64, out: &std::path::Path) -> std::io::Result<()> {
    let points = clustered_points(count, seed, [0.0, 0.0, 1.0, 1.0]);
    let mut rng = SplitMix(seed ^ 0x7469_6d65_6265_6e63);
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    let partial = out.with_file_name(name);
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&partial)?);
    writeln!(w, "lon,lat,t,kind")?;
    for p in &points {
        let (lon, lat) = (world_x_to_lon(p.x), world_y_to_lat(p.y));
        let offset_h = (lon / 15.0).round().clamp(-12.0, 12.0) as i64;
        let unix = loop {
            let unix = START + (rng.unit() * SPAN as f64) as i64;
            if rng.unit() < intensity(unix + offset_h * 3600 - START) {
                break unix;
            }
        };
        let t = iso_local(unix, offset_h);
        writeln!(w, "{lon},{lat},{t},{}", kind(rng.unit()))?;
    }
    w.into_inner()?.sync_all()?;
    std::fs::rename(&partial, out)
}

fn main() -> ExitCode {
    let (mut count, mut seed, mut out) = (None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value) {
            ("--count", Some(v)) => count = v.parse::<usize>().ok(),
            ("--seed", Some(v)) => seed = v.parse::<u64>().ok(),
            ("--out", Some(v)) => out = Some(std::path::PathBuf::from(v)),
            _ => {
                eprintln!("synth_time_points: bad argument {arg:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(count), Some(seed), Some(out)) = (count, seed, out) else {
        eprintln!(
            "synth_time_points: --count (a count), --seed (a u64) and --out are required\n{USAGE}"
        );
        return ExitCode::from(2);
    };
    match write(count, seed, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("synth_time_points: writing {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_offsets_are_iso_8601() {
        assert_eq!(iso_local(START, 0), "2023-01-01T00:00:00+00:00");
        assert_eq!(iso_local(START, -5), "2022-12-31T19:00:00-05:00");
        // 2024-02-29 (leap day) 12:34:56 UTC shown two hours ahead.
        assert_eq!(iso_local(1_709_210_096, 2), "2024-02-29T14:34:56+02:00");
        assert_eq!(iso_local(START + SPAN - 1, 0), "2024-12-31T23:59:59+00:00");
    }

    #[test]
    fn intensity_is_a_probability_with_its_rhythms() {
        let mut peak: f64 = 0.0;
        for local in (0..SPAN).step_by(1800) {
            let i = intensity(local);
            assert!(i > 0.0 && i <= 1.0, "intensity {i} at {local}");
            peak = peak.max(i);
        }
        assert!(peak > 0.8, "the bound is loose: peak {peak}");
        // Saturday 2023-07-15 16:00 against Sunday 2023-01-15 04:00.
        let busy = intensity(195 * DAY + 16 * 3600);
        let quiet = intensity(14 * DAY + 4 * 3600);
        assert!(busy > 10.0 * quiet, "{busy} vs {quiet}");
    }

    #[test]
    fn kinds_are_skewed_and_cover_the_unit_interval() {
        assert_eq!(kind(0.0), "alpha");
        assert_eq!(kind(0.5), "bravo");
        assert_eq!(kind(0.999_999), "foxtrot");
        let total: f64 = KINDS.iter().map(|(_, s)| s).sum();
        assert!((total - 1.0).abs() < 1e-12);
    }
}
