//! Time and category attributes of a layer's points: which columns a layer declares, the
//! instants they hold (milliseconds since the Unix epoch, UTC), and one request's filter on
//! them in a normalized form (equal filters, equal values and equal cache keys).

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// The time and category columns a layer declares (`time = "..."`, `categories = [...]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeSchema {
    pub time: Option<String>,
    pub categories: Vec<String>,
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
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(v) = NaiveDateTime::parse_from_str(naive, format) {
            return Some(v.and_utc().timestamp_millis());
        }
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
