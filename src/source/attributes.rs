//! Time and category attributes of a layer's points: which columns a layer declares, the
//! instants they hold (milliseconds since the Unix epoch, UTC), and one request's filter on
//! them in a normalized form (equal filters, equal values and equal cache keys).

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// The time and category columns a layer declares (`time = "..."`, `categories = [...]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeSchema {
    pub time: Option<String>,
    pub categories: Vec<String>,
    /// The time buckets TileJSON announces when the config sets them (`time_bucket`);
    /// otherwise chosen from the extent ([`TimeBucket::for_extent`]).
    pub time_bucket: Option<TimeBucket>,
}

/// The granularity of time steps a client offers (TileJSON `heatmap.time.bucket`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBucket {
    Hour,
    Day,
    Week,
    Month,
}

impl TimeBucket {
    pub const ALL: [TimeBucket; 4] = [
        TimeBucket::Hour,
        TimeBucket::Day,
        TimeBucket::Week,
        TimeBucket::Month,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TimeBucket::Hour => "hour",
            TimeBucket::Day => "day",
            TimeBucket::Week => "week",
            TimeBucket::Month => "month",
        }
    }

    pub fn parse(text: &str) -> Option<TimeBucket> {
        TimeBucket::ALL.into_iter().find(|b| b.name() == text)
    }

    /// The finest bucket that cuts `[min, max]` into at most [`MAX_BUCKETS`] buckets
    /// (months when even those are more).
    pub fn for_extent(min: i64, max: i64) -> TimeBucket {
        const HOUR: i64 = 3_600_000;
        let span = max.saturating_sub(min).max(0);
        let count = |len: i64| span / len + 1;
        if count(HOUR) <= MAX_BUCKETS {
            TimeBucket::Hour
        } else if count(24 * HOUR) <= MAX_BUCKETS {
            TimeBucket::Day
        } else if count(7 * 24 * HOUR) <= MAX_BUCKETS {
            TimeBucket::Week
        } else {
            TimeBucket::Month
        }
    }
}

/// At most this many buckets over a layer's time extent when the bucket is chosen from it.
pub const MAX_BUCKETS: i64 = 1000;

/// Values listed per category column in TileJSON; a column with more says it is capped.
pub const MAX_LISTED_VALUES: usize = 200;

/// What a layer tells clients about its time and categories (TileJSON).
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeSummary {
    pub time: Option<TimeSummary>,
    pub categories: Vec<CategorySummary>,
}

/// The time column, with the earliest and latest time, and the bucket clients should offer.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeSummary {
    pub column: String,
    /// None when no point has a time.
    pub extent: Option<(i64, i64)>,
    pub bucket: TimeBucket,
}

impl TimeSummary {
    /// The summary of a time column with `extent`: the configured bucket, else one chosen
    /// from the extent (days when no point has a time).
    pub fn new(column: &str, extent: Option<(i64, i64)>, configured: Option<TimeBucket>) -> Self {
        let bucket = configured.unwrap_or_else(|| {
            extent.map_or(TimeBucket::Day, |(lo, hi)| TimeBucket::for_extent(lo, hi))
        });
        TimeSummary {
            column: column.to_owned(),
            extent,
            bucket,
        }
    }
}

/// One category column's values with their point counts, most points first (then by
/// value), at most [`MAX_LISTED_VALUES`] of them.
#[derive(Debug, Clone, PartialEq)]
pub struct CategorySummary {
    pub column: String,
    pub values: Vec<(String, u64)>,
    /// How many distinct values the column has (more than listed when capped).
    pub distinct: usize,
}

impl CategorySummary {
    /// The summary of a column's `(value, count)` pairs.
    pub fn new(column: &str, mut values: Vec<(String, u64)>) -> CategorySummary {
        values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let distinct = values.len();
        values.truncate(MAX_LISTED_VALUES);
        CategorySummary {
            column: column.to_owned(),
            values,
            distinct,
        }
    }
}

impl AttributeSchema {
    pub fn is_empty(&self) -> bool {
        self.time.is_none() && self.categories.is_empty()
    }
}

/// One request's filter on time and categories, normalized: the window in UTC milliseconds
/// (half-open, `[from, to)`), and per category column (in the layer's declaration order) its
/// accepted values, sorted and without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AttributeFilter {
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// (column, accepted values): a point passes when its value is one of them (OR within a
    /// column), in every listed column (AND across columns).
    pub categories: Vec<(String, Vec<String>)>,
}

impl AttributeFilter {
    pub fn is_empty(&self) -> bool {
        self.from.is_none() && self.to.is_none() && self.categories.is_empty()
    }

    /// `from=MS&to=MS&category.COLUMN=a,b`: one text for one filter, for cache keys.
    pub fn canonical(&self) -> String {
        let mut parts = Vec::new();
        if let Some(from) = self.from {
            parts.push(format!("from={from}"));
        }
        if let Some(to) = self.to {
            parts.push(format!("to={to}"));
        }
        for (column, values) in &self.categories {
            // Values are escaped so that `a,b` (two values) and `a%2Cb` (one) never collide.
            let values: Vec<String> = values
                .iter()
                .map(|v| form_urlencoded::byte_serialize(v.as_bytes()).collect())
                .collect();
            parts.push(format!("category.{column}={}", values.join(",")));
        }
        parts.join("&")
    }

    /// The time window `[from, to)`, an open end taken as the end of time, when the filter
    /// has one.
    pub fn window(&self) -> Option<(i64, i64)> {
        (self.from.is_some() || self.to.is_some())
            .then(|| (self.from.unwrap_or(i64::MIN), self.to.unwrap_or(i64::MAX)))
    }

    /// Whether an instant (`None`: the point has no time) is inside the window. A point
    /// without a time is outside every window, and inside "no window".
    pub fn keeps_time(&self, time: Option<i64>) -> bool {
        if self.from.is_none() && self.to.is_none() {
            return true;
        }
        let Some(t) = time else {
            return false;
        };
        !matches!(self.from, Some(from) if t < from) && !matches!(self.to, Some(to) if t >= to)
    }
}

/// What a time must look like, for error messages.
pub const INSTANT_FORMATS: &str =
    "an ISO 8601 date YYYY-MM-DD or timestamp YYYY-MM-DDTHH:MM[:SS[.fff]][Z|±HH:MM] (UTC when no offset; a space may replace the T)";

/// Parses an ISO 8601 date (midnight UTC) or timestamp, with or without an offset (UTC when
/// none), to milliseconds since the Unix epoch. Sub-millisecond digits are cut (toward the
/// past), so every instant within one millisecond compares alike.
pub fn parse_instant(text: &str) -> Option<i64> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc).timestamp_millis());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%d %H:%M%:z",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(t, format) {
            return Some(d.with_timezone(&Utc).timestamp_millis());
        }
    }
    let naive = t.strip_suffix(['Z', 'z']).unwrap_or(t);
    if let Some(v) = parse_naive_datetime(naive) {
        return Some(v.and_utc().timestamp_millis());
    }
    if t.len() == 10 {
        if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
            return d
                .and_hms_opt(0, 0, 0)
                .map(|n| n.and_utc().timestamp_millis());
        }
    }
    None
}

/// A date and time without an offset (`T` or a space between them, seconds and their
/// fraction optional); a bare date is not one.
pub fn parse_naive_datetime(t: &str) -> Option<NaiveDateTime> {
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(t, format).ok())
}

/// An instant as ISO 8601 in UTC (`2024-03-01T12:00:00Z`, with milliseconds when it has
/// any).
pub fn format_instant(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(d) => d.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_parse_in_every_documented_form() {
        let noon = 1_709_294_400_000; // 2024-03-01T12:00:00Z
        assert_eq!(parse_instant("2024-03-01"), Some(noon - 12 * 3_600_000));
        assert_eq!(parse_instant("2024-03-01T12:00:00Z"), Some(noon));
        assert_eq!(parse_instant("2024-03-01T12:00:00"), Some(noon));
        assert_eq!(parse_instant("2024-03-01 12:00:00"), Some(noon));
        assert_eq!(parse_instant("2024-03-01 12:00"), Some(noon));
        assert_eq!(parse_instant("2024-03-01T14:00:00+02:00"), Some(noon));
        assert_eq!(parse_instant("2024-03-01 14:00:00+02:00"), Some(noon));
        assert_eq!(parse_instant("2024-03-01T14:00:00+0200"), Some(noon));
        assert_eq!(parse_instant("2024-03-01T12:00:00.250Z"), Some(noon + 250));
        assert_eq!(parse_instant("2024-03-01T12:00:00.2509"), Some(noon + 250));
        for bad in [
            "",
            "2024-13-01",
            "2024-03-01T25:00",
            "yesterday",
            "1709294400000",
            "2024-3-1",
        ] {
            assert_eq!(parse_instant(bad), None, "{bad:?}");
        }
        assert_eq!(format_instant(noon), "2024-03-01T12:00:00Z");
        assert_eq!(parse_instant(&format_instant(noon + 5)), Some(noon + 5));
    }

    #[test]
    fn buckets_are_the_finest_giving_at_most_a_thousand() {
        let day = 86_400_000;
        assert_eq!(TimeBucket::for_extent(0, 0), TimeBucket::Hour);
        assert_eq!(TimeBucket::for_extent(0, 41 * day), TimeBucket::Hour);
        assert_eq!(TimeBucket::for_extent(0, 42 * day), TimeBucket::Day);
        assert_eq!(TimeBucket::for_extent(0, 2 * 365 * day), TimeBucket::Day);
        assert_eq!(TimeBucket::for_extent(0, 3 * 365 * day), TimeBucket::Week);
        assert_eq!(TimeBucket::for_extent(0, 45 * 365 * day), TimeBucket::Month);
        assert_eq!(TimeBucket::parse("week"), Some(TimeBucket::Week));
        assert_eq!(TimeBucket::parse("year"), None);
        let many: Vec<(String, u64)> = (0..250).map(|i| (format!("v{i:03}"), i % 7)).collect();
        let s = CategorySummary::new("c", many);
        assert_eq!((s.values.len(), s.distinct), (MAX_LISTED_VALUES, 250));
        assert_eq!(s.values[0], ("v006".to_owned(), 6));
        assert!(s
            .values
            .windows(2)
            .all(|w| w[0].1 > w[1].1 || (w[0].1 == w[1].1 && w[0].0 < w[1].0)));
    }

    #[test]
    fn windows_are_half_open_and_exclude_points_without_time() {
        let f = AttributeFilter {
            from: Some(10),
            to: Some(20),
            categories: Vec::new(),
        };
        assert!(f.keeps_time(Some(10)) && f.keeps_time(Some(19)));
        assert!(!f.keeps_time(Some(20)) && !f.keeps_time(Some(9)) && !f.keeps_time(None));
        assert!(AttributeFilter::default().keeps_time(None));
        let only_from = AttributeFilter {
            from: Some(10),
            ..AttributeFilter::default()
        };
        assert!(!only_from.keeps_time(None) && only_from.keeps_time(Some(i64::MAX)));
    }
}
