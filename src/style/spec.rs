//! Typed styles: what a request asks to draw and with which colors, checked, in one
//! canonical form for URLs and cache keys, and resolved against a layer for each viewport.

use super::error::StyleError;
use super::query::{truncate, Query};
use crate::layer::Layer;
use crate::render::palette::{parse_gradient, Scheme};
use crate::render::{
    ColorRamp, DensityParams, DensityScale, DotsParams, SmoothParams, Style, Viewport,
};
use crate::source::{FilterValues, SourceError};

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

impl StyleRequest {
    /// The style drawn for one viewport of `layer`: density without an explicit `max` takes
    /// the layer's reference for the viewport's scale, from the points the request draws
    /// (after its filters).
    pub async fn resolve(
        &self,
        layer: &Layer,
        vp: &Viewport,
        filters: &FilterValues,
    ) -> Result<Style, SourceError> {
        Ok(match self {
            StyleRequest::Smooth(p) => Style::Smooth(*p),
            StyleRequest::Dots(p) => Style::Dots(*p),
            StyleRequest::Density { radius, scale, max } => {
                let max = match max {
                    Some(m) => *m,
                    None => {
                        let kernel_cell = *radius as f64 * vp.pixel_ratio / vp.scale_x;
                        layer.density_reference(kernel_cell, filters).await?
                    }
                };
                Style::Density(DensityParams {
                    radius: *radius,
                    scale: *scale,
                    max,
                })
            }
        })
    }
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
    pub fn from_query(q: &Query) -> Result<StyleSpec, StyleError> {
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
                        return Err(StyleError::bad(
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
                return Err(StyleError::bad(
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
                return Err(StyleError::bad(
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
                return Err(StyleError::bad(
                    "gradient",
                    "give either scheme or gradient, not both",
                ));
            }
            (Some(name), None) => ColorRamp::Scheme(Scheme::from_name(name).ok_or_else(|| {
                StyleError::bad(
                    "scheme",
                    format!(
                        "{:?} is not a scheme; allowed: classic, fire, omg, pbj, pgaitch",
                        truncate(name)
                    ),
                )
            })?),
            (None, Some(text)) => parse_gradient(text).map_err(|e| {
                StyleError::bad(
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

    /// The style given as key/value pairs (CLI flags, for one), checked exactly as a query
    /// string's style parameters, so equal styles get equal canonical forms and cache keys.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<StyleSpec, StyleError> {
        StyleSpec::from_query(&Query::from_pairs(pairs, &[STYLE_PARAMS])?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::style::query::{parse_bbox, MAX_QUERY_LEN, MAX_VALUE_LEN};

    fn q(raw: &str) -> Result<Query, StyleError> {
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
    fn pairs_give_the_style_their_query_string_gives() {
        let pairs = [("style", "density"), ("radius", "30"), ("scheme", "fire")];
        let from_pairs = StyleSpec::from_pairs(pairs).expect("pairs");
        let query = q("style=density&radius=30&scheme=fire").expect("q");
        assert_eq!(from_pairs, StyleSpec::from_query(&query).expect("spec"));
        assert_eq!(
            StyleSpec::from_pairs([("radius", "1"), ("radius", "2")]),
            Err(StyleError::bad(
                "radius",
                "given more than once; give it once"
            ))
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
                Err(StyleError::BadParam { param: p, detail }) => {
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
        assert!(matches!(q(&long), Err(StyleError::BadParam { param, .. }) if param == "gradient"));
        let huge = "x".repeat(MAX_QUERY_LEN + 1);
        assert!(matches!(q(&huge), Err(StyleError::BadParam { param, .. }) if param == "query"));
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
            matches!(parse_bbox(&Query::default()), Err(StyleError::BadParam { param, .. }) if param == "bbox")
        );
    }
}
