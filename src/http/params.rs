//! Query-string parsing and validation: every parameter is checked against what is allowed,
//! and every refusal names the parameter and the allowed values.

use crate::error::ApiError;
use crate::render::palette::{parse_gradient, Scheme};
use crate::render::{ColorRamp, DensityScale, DotsParams, SmoothParams};
use crate::tile::{lat_to_world_y, lon_to_world_x, WorldBox, MAX_LAT};
use std::collections::BTreeMap;

/// Longest accepted query string and value; longer ones are refused rather than parsed.
pub const MAX_QUERY_LEN: usize = 4096;
pub const MAX_VALUE_LEN: usize = 512;

/// Style parameters, as tile and overlay requests name them (camelCase, like Leaflet.heat).
pub const STYLE_PARAMS: &[&str] = &[
    "style",
    "scheme",
    "gradient",
    "radius",
    "blur",
    "max",
    "minOpacity",
    "maxZoom",
    "dotSize",
    "opacity",
    "scale",
];

/// A parsed query string: each key at most once, only allowed keys.
#[derive(Debug, Default)]
pub struct Query(BTreeMap<String, String>);

impl Query {
    /// Parses `raw` and refuses duplicates, unknown keys, and over-long input.
    pub fn parse(raw: &str, allowed: &[&[&str]]) -> Result<Query, ApiError> {
        if raw.len() > MAX_QUERY_LEN {
            return Err(ApiError::bad(
                "query",
                format!(
                    "the query string is {} bytes; at most {MAX_QUERY_LEN} are allowed",
                    raw.len()
                ),
            ));
        }
        let mut map = BTreeMap::new();
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            let known = allowed.iter().any(|set| set.contains(&key.as_ref()));
            if !known {
                let names: Vec<&str> = allowed.iter().flat_map(|s| s.iter().copied()).collect();
                let detail = if names.is_empty() {
                    "unknown parameter; this route takes no query parameters".to_string()
                } else {
                    format!("unknown parameter; allowed here: {}", names.join(", "))
                };
                return Err(ApiError::bad(truncate(&key), detail));
            }
            if value.len() > MAX_VALUE_LEN {
                return Err(ApiError::bad(
                    key.as_ref(),
                    format!(
                        "value is {} bytes; at most {MAX_VALUE_LEN} are allowed",
                        value.len()
                    ),
                ));
            }
            if map.insert(key.to_string(), value.to_string()).is_some() {
                return Err(ApiError::bad(
                    key.as_ref(),
                    "given more than once; give it once",
                ));
            }
        }
        Ok(Query(map))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A required parameter.
    pub fn require(&self, key: &str, what: &str) -> Result<&str, ApiError> {
        self.get(key)
            .ok_or_else(|| ApiError::bad(key, format!("required: {what}")))
    }

    /// An integer in `range`, or `default` when absent.
    pub fn int(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<u32>,
        default: u32,
    ) -> Result<u32, ApiError> {
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
    ) -> Result<f64, ApiError> {
        let Some(text) = self.get(key) else {
            return Ok(default);
        };
        // Formatted only for an error.
        let allowed = || {
            let bracket = if open_low { "(" } else { "[" };
            format!("a finite number in {bracket}{low}, {high}]")
        };
        let value: f64 = text.trim().parse().map_err(|_| {
            ApiError::bad(
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
            return Err(ApiError::bad(
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
) -> Result<u32, ApiError> {
    // Formatted only for an error: tile requests parse three of these each.
    let allowed = || format!("an integer in {}..={}", range.start(), range.end());
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad(
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
        _ => Err(ApiError::bad(
            key,
            format!("{} is out of range; allowed: {}", truncate(text), allowed()),
        )),
    }
}

/// Cuts echoed user input short so error bodies stay small.
fn truncate(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

/// Which style a request asks for, with its options checked but not yet resolved against a
/// layer (density's `max` may still come from the layer's data).
#[derive(Debug, Clone, PartialEq)]
pub enum StyleRequest {
    Smooth(SmoothParams),
    Dots(DotsParams),
    Density {
        radius: u32,
        scale: DensityScale,
        max: Option<f64>,
    },
}

/// How many cache-key style strings each thread remembers ([`StyleSpec::key_style`]).
const RECENT_KEY_STYLES_LEN: usize = 8;

/// A remembered key style: the style, the filters' canonical text, and the shared key text.
type KeyStyle = (StyleSpec, String, std::sync::Arc<str>);

thread_local! {
    static RECENT_KEY_STYLES: std::cell::RefCell<Vec<KeyStyle>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A validated style plus color ramp: equal requests (any order, spelling of numbers, or
/// unused options) give equal values and equal [`StyleSpec::canonical`] strings.
#[derive(Debug, Clone, PartialEq)]
pub struct StyleSpec {
    pub style: StyleRequest,
    pub ramp: ColorRamp,
}

pub const MAX_RADIUS: u32 = 100;
pub const MAX_BLUR: u32 = 100;
pub const MAX_DOT_SIZE: u32 = 256;
pub const MAX_WEIGHT_MAX: f64 = 1e15;

impl StyleSpec {
    pub fn from_query(q: &Query) -> Result<StyleSpec, ApiError> {
        let style = match q.get("style").unwrap_or("smooth") {
            "smooth" => StyleRequest::Smooth(SmoothParams {
                radius: q.int("radius", 1..=MAX_RADIUS, 25)?,
                blur: q.int("blur", 0..=MAX_BLUR, 15)?,
                max: q.number("max", 0.0, MAX_WEIGHT_MAX, true, 1.0)?,
                min_opacity: q.number("minOpacity", 0.0, 1.0, false, 0.05)?,
                max_zoom: q.int("maxZoom", 0..=30, 18)? as f64,
            }),
            "dots" => StyleRequest::Dots(DotsParams {
                dot_size: q.int("dotSize", 1..=MAX_DOT_SIZE, 25)?,
                opacity: q.int("opacity", 0..=255, 128)? as u8,
            }),
            "density" => StyleRequest::Density {
                radius: q.int("radius", 1..=MAX_RADIUS, 25)?,
                scale: match q.get("scale").unwrap_or("linear") {
                    "linear" => DensityScale::Linear,
                    "sqrt" => DensityScale::Sqrt,
                    "log" => DensityScale::Log,
                    other => {
                        return Err(ApiError::bad(
                            "scale",
                            format!(
                                "{:?} is not a scale; allowed: linear, sqrt, log",
                                truncate(other)
                            ),
                        ))
                    }
                },
                max: match q.get("max") {
                    None => None,
                    Some(_) => Some(q.number("max", 0.0, MAX_WEIGHT_MAX, true, 1.0)?),
                },
            },
            other => {
                return Err(ApiError::bad(
                    "style",
                    format!(
                        "{:?} is not a style; allowed: smooth, dots, density",
                        truncate(other)
                    ),
                ))
            }
        };
        // Options of other styles are still validated, so a typo never passes silently.
        q.int("radius", 1..=MAX_RADIUS, 25)?;
        q.int("blur", 0..=MAX_BLUR, 15)?;
        q.number("max", 0.0, MAX_WEIGHT_MAX, true, 1.0)?;
        q.number("minOpacity", 0.0, 1.0, false, 0.05)?;
        q.int("maxZoom", 0..=30, 18)?;
        q.int("dotSize", 1..=MAX_DOT_SIZE, 25)?;
        q.int("opacity", 0..=255, 128)?;
        if let Some(s) = q.get("scale") {
            if !["linear", "sqrt", "log"].contains(&s) {
                return Err(ApiError::bad(
                    "scale",
                    format!(
                        "{:?} is not a scale; allowed: linear, sqrt, log",
                        truncate(s)
                    ),
                ));
            }
        }
        let ramp = match (q.get("scheme"), q.get("gradient")) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad(
                    "gradient",
                    "give either scheme or gradient, not both",
                ));
            }
            (Some(name), None) => ColorRamp::Scheme(Scheme::from_name(name).ok_or_else(|| {
                ApiError::bad(
                    "scheme",
                    format!(
                        "{:?} is not a scheme; allowed: classic, fire, omg, pbj, pgaitch",
                        truncate(name)
                    ),
                )
            })?),
            (None, Some(text)) => parse_gradient(text).map_err(|e| {
                ApiError::bad(
                    "gradient",
                    format!("{e}; expected stops like 0.4:blue,0.65:lime,1:red"),
                )
            })?,
            (None, None) => match style {
                StyleRequest::Dots(_) => ColorRamp::Scheme(Scheme::Classic),
                _ => ColorRamp::leaflet_default(),
            },
        };
        Ok(StyleSpec { style, ramp })
    }

    /// The style part of a tile's cache key: `{canonical}&{filters}`, where `filters` is
    /// the canonical text of the request's filter values.
    ///
    /// Every tile request needs it, and building it (float formatting, URL encoding) was a
    /// tenth of the server's CPU for a memory hit; clients send the same few styles over and
    /// over, so each thread remembers the last few it built, shared so a key costs no copy.
    pub fn key_style(&self, filters: &str) -> std::sync::Arc<str> {
        RECENT_KEY_STYLES.with(|recent| {
            let mut recent = recent.borrow_mut();
            if let Some(at) = recent
                .iter()
                .position(|(spec, f, _)| spec == self && f == filters)
            {
                // Move to the front so the styles in use stay while others age out.
                recent[..=at].rotate_right(1);
                return recent[0].2.clone();
            }
            let text: std::sync::Arc<str> = format!("{}&{filters}", self.canonical()).into();
            if recent.len() == RECENT_KEY_STYLES_LEN {
                recent.pop();
            }
            recent.insert(0, (self.clone(), filters.to_string(), text.clone()));
            text
        })
    }

    /// A canonical query string for this style: what tile URLs in TileJSON carry, and what
    /// cache keys are made of. Only the options the style uses appear, defaults included.
    pub fn canonical(&self) -> String {
        let style = match &self.style {
            StyleRequest::Smooth(p) => format!(
                "style=smooth&radius={}&blur={}&max={}&minOpacity={}&maxZoom={}",
                p.radius, p.blur, p.max, p.min_opacity, p.max_zoom
            ),
            StyleRequest::Dots(p) => {
                format!("style=dots&dotSize={}&opacity={}", p.dot_size, p.opacity)
            }
            StyleRequest::Density { radius, scale, max } => {
                let scale = match scale {
                    DensityScale::Linear => "linear",
                    DensityScale::Sqrt => "sqrt",
                    DensityScale::Log => "log",
                };
                match max {
                    Some(m) => format!("style=density&radius={radius}&scale={scale}&max={m}"),
                    None => format!("style=density&radius={radius}&scale={scale}"),
                }
            }
        };
        let ramp: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(std::iter::once(
                match self.ramp.canonical().split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (String::new(), String::new()),
                },
            ))
            .finish();
        format!("{style}&{ramp}")
    }
}

/// `bbox=w,s,e,n` in degrees: west < east, south < north, inside the mercator world.
pub fn parse_bbox(q: &Query) -> Result<WorldBox, ApiError> {
    let text = q.require("bbox", "west,south,east,north in degrees")?;
    let allowed = "four numbers west,south,east,north in degrees, west < east within -180..180, south < north within -85.0511..85.0511";
    let parts: Vec<&str> = text.split(',').collect();
    if parts.len() != 4 {
        return Err(ApiError::bad("bbox", format!("expected {allowed}")));
    }
    let mut v = [0.0f64; 4];
    for (slot, part) in v.iter_mut().zip(&parts) {
        *slot = part
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| {
                ApiError::bad(
                    "bbox",
                    format!("{:?} is not a number; expected {allowed}", truncate(part)),
                )
            })?;
    }
    let [w, s, e, n] = v;
    if !(-180.0..=180.0).contains(&w) || !(-180.0..=180.0).contains(&e) {
        return Err(ApiError::bad(
            "bbox",
            format!("longitude out of range; expected {allowed}"),
        ));
    }
    if !(-MAX_LAT - 1e-9..=MAX_LAT + 1e-9).contains(&s)
        || !(-MAX_LAT - 1e-9..=MAX_LAT + 1e-9).contains(&n)
    {
        return Err(ApiError::bad(
            "bbox",
            format!("latitude out of range; expected {allowed}"),
        ));
    }
    if w >= e || s >= n {
        return Err(ApiError::bad(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn q(raw: &str) -> Result<Query, ApiError> {
        Query::parse(raw, &[STYLE_PARAMS])
    }

    #[test]
    fn equal_requests_share_one_canonical_form() {
        let a =
            StyleSpec::from_query(&q("radius=25&blur=15&scheme=fire").expect("q")).expect("spec");
        let b = StyleSpec::from_query(&q("scheme=fire&style=smooth&max=1.0&dotSize=9").expect("q"))
            .expect("spec");
        assert_eq!(a, b);
        assert_eq!(a.canonical(), b.canonical());
        let g = StyleSpec::from_query(&q("gradient=0.4:blue,1:red").expect("q")).expect("spec");
        assert!(
            g.canonical()
                .contains("gradient=0.4%3A%230000ff%2C1%3A%23ff0000"),
            "{}",
            g.canonical()
        );
    }

    #[test]
    fn remembered_key_styles_match_freshly_built_ones() {
        // More distinct styles than a thread remembers, revisited in shifting orders and
        // with two filter texts, so entries are found, moved to the front and aged out.
        let specs: Vec<StyleSpec> = (1..=3 * RECENT_KEY_STYLES_LEN as u32)
            .map(|radius| {
                let raw = format!("radius={radius}&gradient=0.{radius}:blue,1:red");
                StyleSpec::from_query(&q(&raw).expect("q")).expect("spec")
            })
            .collect();
        for round in 0..4 {
            for (i, spec) in specs.iter().enumerate() {
                let again = &specs[(i * (round + 1)) % specs.len()];
                for s in [spec, again, spec] {
                    for filters in ["", "from=2024-01-01"] {
                        let built = format!("{}&{filters}", s.canonical());
                        assert_eq!(&*s.key_style(filters), built, "round {round}");
                    }
                }
            }
        }
        let texts: std::collections::HashSet<std::sync::Arc<str>> =
            specs.iter().map(|s| s.key_style("")).collect();
        assert_eq!(texts.len(), specs.len(), "distinct styles, distinct forms");
    }

    #[test]
    fn refusals_name_the_parameter() {
        for (raw, param) in [
            ("style=fuzzy", "style"),
            ("scheme=rainbow", "scheme"),
            ("radius=0", "radius"),
            ("radius=-3", "radius"),
            ("radius=NaN", "radius"),
            ("radius=2.5", "radius"),
            ("radius=99999999999999999999", "radius"),
            ("blur=101", "blur"),
            ("max=0", "max"),
            ("max=inf", "max"),
            ("max=NaN", "max"),
            ("max=-1", "max"),
            ("minOpacity=1.5", "minOpacity"),
            ("minOpacity=-0.1", "minOpacity"),
            ("dotSize=0", "dotSize"),
            ("dotSize=257", "dotSize"),
            ("opacity=256", "opacity"),
            ("opacity=abc", "opacity"),
            ("style=density&scale=cubic", "scale"),
            ("gradient=0.5:nocolor", "gradient"),
            ("gradient=0.4:blue&scheme=fire", "gradient"),
            ("radius=1&radius=2", "radius"),
            ("bogus=1", "bogus"),
        ] {
            match q(raw).and_then(|query| StyleSpec::from_query(&query)) {
                Err(ApiError::BadParam { param: p, detail }) => {
                    assert_eq!(p, param, "{raw}: {detail}");
                    assert!(!detail.is_empty());
                }
                other => panic!("{raw}: expected a refusal of {param}, got {other:?}"),
            }
        }
    }

    #[test]
    fn overlong_input_is_refused() {
        let long = format!("gradient={}", "a".repeat(MAX_VALUE_LEN + 1));
        assert!(matches!(q(&long), Err(ApiError::BadParam { param, .. }) if param == "gradient"));
        let huge = "x".repeat(MAX_QUERY_LEN + 1);
        assert!(matches!(q(&huge), Err(ApiError::BadParam { param, .. }) if param == "query"));
    }

    #[test]
    fn bboxes_are_checked() {
        let parse = |raw: &str| parse_bbox(&Query::parse(raw, &[&["bbox"]]).expect("q"));
        assert!(parse("bbox=-10,-10,10,10").is_ok());
        for bad in [
            "bbox=1,2,3",
            "bbox=a,b,c,d",
            "bbox=10,0,-10,5",
            "bbox=0,10,5,-10",
            "bbox=-200,0,0,1",
            "bbox=0,-89,1,0",
            "bbox=0,0,0,0",
            "bbox=0,0,1,NaN",
            "bbox=",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(
            matches!(parse_bbox(&Query::default()), Err(ApiError::BadParam { param, .. }) if param == "bbox")
        );
    }
}
