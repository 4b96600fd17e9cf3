//! The summary lines `import` and `pyramid` print.

use crate::progress::{grouped, per_second};
use crate::source::postgis::pyramid::Built;
use std::fmt;
use std::time::Duration;

/// What one file added.
pub(super) struct FileReport {
    pub(super) file: String,
    pub(super) rows: u64,
    pub(super) elapsed: Duration,
    pub(super) pyramid: Option<Built>,
    /// The time the pyramid took (not part of `elapsed`, the loading time).
    pub(super) pyramid_elapsed: Duration,
}

impl fmt::Display for FileReport {
    /// `quakes.csv: 123,456 rows in 1.23 s (100,372 rows/s); bin pyramid: zooms 0-4,
    /// 5,678 bins, in 0.4 s`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}; {}, in {:.1} s",
            self.file,
            Rate {
                rows: self.rows,
                elapsed: self.elapsed
            },
            PyramidSummary(self.pyramid),
            self.pyramid_elapsed.as_secs_f64()
        )
    }
}

/// `bin pyramid: zooms 0-4, 5,678 bins` or `no bin pyramid (no zoom is dense enough)`.
struct PyramidSummary(Option<Built>);

impl fmt::Display for PyramidSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(b) => {
                write!(
                    f,
                    "bin pyramid: zooms 0-{}, {} bins",
                    b.max_zoom,
                    grouped(b.bins)
                )?;
                match b.time_entries {
                    Some(entries) => write!(f, ", time pyramid: {} entries", grouped(entries)),
                    None => Ok(()),
                }
            }
            None => write!(f, "no bin pyramid (no zoom is dense enough to need one)"),
        }
    }
}

/// The `pyramid` command's summary line.
pub(super) struct PyramidReport<'a> {
    pub(super) layer: &'a str,
    pub(super) built: Option<Built>,
    pub(super) elapsed: Duration,
}

impl fmt::Display for PyramidReport<'_> {
    /// `quakes: bin pyramid: zooms 0-4, 5,678 bins, in 1.2 s`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}, in {:.1} s",
            self.layer,
            PyramidSummary(self.built),
            self.elapsed.as_secs_f64()
        )
    }
}

/// All files of one run.
pub(super) struct Total<'a> {
    pub(super) files: &'a [FileReport],
    pub(super) elapsed: Duration,
}

impl fmt::Display for Total<'_> {
    /// `total: 2 files, 123,456 rows in 1.23 s (100,372 rows/s), bin pyramids included`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = self.files.iter().map(|r| r.rows).sum();
        let n = self.files.len();
        let plural = if n == 1 { "" } else { "s" };
        write!(
            f,
            "total: {n} file{plural}, {}, bin pyramids included",
            Rate {
                rows,
                elapsed: self.elapsed
            }
        )
    }
}

struct Rate {
    rows: u64,
    elapsed: Duration,
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        write!(
            f,
            "{} rows in {secs:.2} s ({} rows/s)",
            grouped(self.rows),
            per_second(self.rows as f64 / secs)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_group_digits() {
        let report = FileReport {
            file: "quakes.csv".into(),
            rows: 123_456,
            elapsed: Duration::from_millis(1230),
            pyramid: Some(Built {
                max_zoom: 4,
                bins: 5678,
                time_entries: None,
            }),
            pyramid_elapsed: Duration::from_millis(420),
        };
        assert_eq!(
            report.to_string(),
            "quakes.csv: 123,456 rows in 1.23 s (100,371 rows/s); bin pyramid: zooms 0-4, 5,678 bins, in 0.4 s"
        );
        let small = FileReport {
            pyramid: None,
            ..report
        };
        assert!(small
            .to_string()
            .ends_with("; no bin pyramid (no zoom is dense enough to need one), in 0.4 s"));
        let total = Total {
            files: std::slice::from_ref(&small),
            elapsed: Duration::ZERO,
        };
        assert_eq!(
            total.to_string(),
            "total: 1 file, 123,456 rows in 0.00 s (0 rows/s), bin pyramids included"
        );
    }
}
