//! Checked query parameters: every key checked against what is allowed, every refusal
//! naming the parameter and the allowed values.

use super::error::StyleError;
use crate::tile::{lat_to_world_y, lon_to_world_x, WorldBox, MAX_LAT};
use std::collections::BTreeMap;

/// Longest accepted query string and value; longer ones are refused rather than parsed.
pub const MAX_QUERY_LEN: usize = 4096;
pub const MAX_VALUE_LEN: usize = 512;

/// A parsed query string: each key at most once, only allowed keys.
#[derive(Debug, Default)]
pub struct Query(BTreeMap<String, String>);

impl Query {
    /// Parses a query string and refuses duplicates, unknown keys, and over-long input.
    pub fn parse(raw: &str, allowed: &[&[&str]]) -> Result<Query, StyleError> {
        if raw.len() > MAX_QUERY_LEN {
            return Err(StyleError::bad(
                "query",
                format!(
                    "the query string is {} bytes; at most {MAX_QUERY_LEN} are allowed",
                    raw.len()
                ),
            ));
        }
        Query::from_pairs(form_urlencoded::parse(raw.as_bytes()), allowed)
    }

    /// Checks key/value pairs given one by one (CLI flags, for one) as [`Query::parse`]
    /// checks a query string's: only allowed keys, each at most once, no over-long value.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
        allowed: &[&[&str]],
    ) -> Result<Query, StyleError> {
        let mut map = BTreeMap::new();
        for (key, value) in pairs {
            let (key, value) = (key.as_ref(), value.as_ref());
            let known = allowed.iter().any(|set| set.contains(&key));
            if !known {
                let names: Vec<&str> = allowed.iter().flat_map(|s| s.iter().copied()).collect();
                let detail = if names.is_empty() {
                    "unknown parameter; this route takes no query parameters".to_string()
                } else {
                    format!("unknown parameter; allowed here: {}", names.join(", "))
                };
                return Err(StyleError::bad(truncate(key), detail));
            }
            if value.len() > MAX_VALUE_LEN {
                return Err(StyleError::bad(
                    key,
                    format!(
                        "value is {} bytes; at most {MAX_VALUE_LEN} are allowed",
                        value.len()
                    ),
                ));
            }
            if map.insert(key.to_string(), value.to_string()).is_some() {
                return Err(StyleError::bad(key, "given more than once; give it once"));
            }
        }
        Ok(Query(map))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A required parameter.
    pub fn require(&self, key: &str, what: &str) -> Result<&str, StyleError> {
        self.get(key)
            .ok_or_else(|| StyleError::bad(key, format!("required: {what}")))
    }

    /// An integer in `range`, or `default` when absent.
    pub fn int(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<u32>,
        default: u32,
    ) -> Result<u32, StyleError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse_int(key, v, range),
        }
    }

    /// A finite number in `range` (with `open_low` the low end is excluded), or `default`.
    pub fn number(
        &self,
        key: &str,
        low: f64,
        high: f64,
        open_low: bool,
        default: f64,
    ) -> Result<f64, StyleError> {
        let Some(text) = self.get(key) else {
            return Ok(default);
        };
        // Formatted only for an error.
        let allowed = || {
            let bracket = if open_low { "(" } else { "[" };
            format!("a finite number in {bracket}{low}, {high}]")
        };
        let value: f64 = text.trim().parse().map_err(|_| {
            StyleError::bad(
                key,
                format!(
                    "{:?} is not a number; allowed: {}",
                    truncate(text),
                    allowed()
                ),
            )
        })?;
        let in_range =
            value.is_finite() && value <= high && (value > low || (!open_low && value == low));
        if !in_range {
            return Err(StyleError::bad(
                key,
                format!("{value} is out of range; allowed: {}", allowed()),
            ));
        }
        Ok(value)
    }
}

/// Parses an unsigned integer in `range`; refuses signs, fractions and overflow clearly.
pub fn parse_int(
    key: &str,
    text: &str,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, StyleError> {
    // Formatted only for an error: tile requests parse three of these each.
    let allowed = || format!("an integer in {}..={}", range.start(), range.end());
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StyleError::bad(
            key,
            format!(
                "{:?} is not an integer; allowed: {}",
                truncate(text),
                allowed()
            ),
        ));
    }
    match text.parse::<u64>() {
        Ok(v) if v >= *range.start() as u64 && v <= *range.end() as u64 => Ok(v as u32),
        _ => Err(StyleError::bad(
            key,
            format!("{} is out of range; allowed: {}", truncate(text), allowed()),
        )),
    }
}

/// Cuts echoed user input short so error bodies stay small.
pub(super) fn truncate(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

/// `bbox=w,s,e,n` in degrees: west < east, south < north, inside the mercator world.
pub fn parse_bbox(q: &Query) -> Result<WorldBox, StyleError> {
    let text = q.require("bbox", "west,south,east,north in degrees")?;
    let allowed = "four numbers west,south,east,north in degrees, west < east within -180..180, south < north within -85.0511..85.0511";
    let parts: Vec<&str> = text.split(',').collect();
    if parts.len() != 4 {
        return Err(StyleError::bad("bbox", format!("expected {allowed}")));
    }
    let mut v = [0.0f64; 4];
    for (slot, part) in v.iter_mut().zip(&parts) {
        *slot = part
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| {
                StyleError::bad(
                    "bbox",
                    format!("{:?} is not a number; expected {allowed}", truncate(part)),
                )
            })?;
    }
    let [w, s, e, n] = v;
    if !(-180.0..=180.0).contains(&w) || !(-180.0..=180.0).contains(&e) {
        return Err(StyleError::bad(
            "bbox",
            format!("longitude out of range; expected {allowed}"),
        ));
    }
    if !(-MAX_LAT - 1e-9..=MAX_LAT + 1e-9).contains(&s)
        || !(-MAX_LAT - 1e-9..=MAX_LAT + 1e-9).contains(&n)
    {
        return Err(StyleError::bad(
            "bbox",
            format!("latitude out of range; expected {allowed}"),
        ));
    }
    if w >= e || s >= n {
        return Err(StyleError::bad(
            "bbox",
            format!("inverted or empty box; expected {allowed}"),
        ));
    }
    Ok(WorldBox {
        x0: lon_to_world_x(w),
        y0: lat_to_world_y(n),
        x1: lon_to_world_x(e),
        y1: lat_to_world_y(s),
    })
}
