//! The proof of concept's route (`/twine.heatmap`, `/twine.heatmap.php`): its request shape,
//! answered with a link to `/heatmap.png` or with the points `/points` gives.

use super::error::ApiError;
use super::points::answer;
use super::tiles::MAX_OVERLAY_SIDE;
use super::AppState;
use crate::service::PointsRequest;
use crate::style::OVERLAY_PARAMS;
use crate::style::{parse_bbox, parse_int, Query, StyleError, StyleSpec, STYLE_PARAMS};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::json;

/// Every parameter the route takes: the proof of concept's, plus `layer`.
pub(crate) const POC_PARAMS: &[&str] = &[
    "png", "dotSize", "opacity", "imgSize", "bounds", "scheme", "layer",
];

/// The paths of the route: its own, and the old script's name.
pub const POC_PATHS: [&str; 2] = ["/twine.heatmap", "/twine.heatmap.php"];

/// What `png` allows, for refusals.
const PNG_ALLOWED: &str = "true (a link to the overlay PNG) or false (the points)";

/// What `bounds` allows, for refusals.
const BOUNDS_ALLOWED: &str = "two corners [[lat,lng],[lat,lng]] (Leaflet's bounds, as JSON) or \
    lat,lng,lat,lng; latitudes within -85.0511..85.0511, longitudes within -180..180, \
    the corners apart";

/// Registers the route at both of its paths.
pub fn routes(cfg: &mut web::ServiceConfig) {
    for path in POC_PATHS {
        cfg.route(path, super::read().to(twine_heatmap));
    }
}

/// `GET /twine.heatmap?png=true|false&bounds=[[lat,lng],[lat,lng]][&imgSize=[w,h]]
/// [&dotSize=N&opacity=N&scheme=S][&layer=L]`.
async fn twine_heatmap(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(req.query_string(), &[POC_PARAMS])?;
    let png = match query.require("png", PNG_ALLOWED)? {
        "true" => true,
        "false" => false,
        other => {
            let shown: String = other.chars().take(64).collect();
            let detail = format!("{shown:?} is not a boolean; allowed: {PNG_ALLOWED}");
            return Err(ApiError::bad("png", detail));
        }
    };
    let overlay = OverlayRequest::parse(&query)?;
    let layer = state.layer(&layer_name(&state, &query).await?).await?;
    if png {
        // The box is numbers and commas, left readable; the layer name is escaped.
        let filename = format!(
            "{}/heatmap.png?layer={}&bbox={}&width={}&height={}&{}",
            state.base_url(&req)?,
            form_urlencoded::byte_serialize(layer.name.as_bytes()).collect::<String>(),
            overlay.bbox,
            overlay.width,
            overlay.height,
            overlay.style.canonical()
        );
        return Ok(HttpResponse::Ok().json(json!({ "filename": filename })));
    }
    // What `/points/{layer}?bbox=` answers for the same box, at the same cap, within the
    // same budget and off the I/O workers as it is.
    let request = PointsRequest {
        layer,
        area: overlay.area,
        tile: None,
        filters: Default::default(),
        limit: state.points_limit_default,
        pixel_scale: 1024.0 / (overlay.area.x1 - overlay.area.x0),
    };
    answer(&state, request, |points| PocPoints {
        data: points
            .data
            .iter()
            .map(|&[lat, lon, w]| PocPoint::of(lat, lon, w))
            .collect(),
        count: points.count,
        aggregated: points.aggregated,
    })
    .await
}

/// The `png=false` answer: `[lat, lon]` per point as the proof of concept gave them, with the
/// weight third where it is not 1 (Leaflet.heat reads both forms; aggregated bins carry
/// their points' summed weight).
#[derive(Serialize)]
struct PocPoints {
    data: Vec<PocPoint>,
    count: u64,
    aggregated: bool,
}

#[derive(Serialize)]
#[serde(untagged)]
enum PocPoint {
    Pair([f64; 2]),
    Weighted([f64; 3]),
}

impl PocPoint {
    fn of(lat: f64, lon: f64, w: f64) -> PocPoint {
        if w == 1.0 {
            PocPoint::Pair([lat, lon])
        } else {
            PocPoint::Weighted([lat, lon, w])
        }
    }
}

/// The overlay a request describes, checked as `/heatmap.png` checks it.
struct OverlayRequest {
    /// `west,south,east,north`, as `/heatmap.png` takes it.
    bbox: String,
    area: crate::tile::WorldBox,
    width: u32,
    height: u32,
    /// The `dots` style with the request's `dotSize`, `opacity` and `scheme`.
    style: StyleSpec,
}

impl OverlayRequest {
    fn parse(query: &Query) -> Result<OverlayRequest, ApiError> {
        let [w, s, e, n] = parse_bounds(query.require("bounds", BOUNDS_ALLOWED)?)?;
        let bbox = format!("{w},{s},{e},{n}");
        let (width, height) = match query.get("imgSize") {
            Some(text) => parse_img_size(text)?,
            None => (1024, 1024),
        };
        // The overlay's own parameters, checked by its own parsers; the proof of concept's
        // style options pass through under the same names.
        let mut pairs = vec![("bbox", bbox.as_str()), ("style", "dots")];
        for key in ["dotSize", "opacity", "scheme"] {
            if let Some(value) = query.get(key) {
                pairs.push((key, value));
            }
        }
        let overlay = Query::from_pairs(pairs, &[OVERLAY_PARAMS, STYLE_PARAMS])?;
        let area = parse_bbox(&overlay).map_err(|e| match e {
            StyleError::BadParam { detail, .. } => {
                let reason = detail.split(';').next().unwrap_or_default();
                StyleError::bad("bounds", format!("{reason}; allowed: {BOUNDS_ALLOWED}"))
            }
            other => other,
        })?;
        Ok(OverlayRequest {
            bbox,
            area,
            width,
            height,
            style: StyleSpec::from_query(&overlay)?,
        })
    }
}

/// `[[lat,lng],[lat,lng]]` (any two opposite corners, as Leaflet takes them) or the same
/// four numbers comma-separated, to `[west, south, east, north]`.
fn parse_bounds(text: &str) -> Result<[f64; 4], ApiError> {
    let refuse = |what: &str| ApiError::bad("bounds", format!("{what}; allowed: {BOUNDS_ALLOWED}"));
    let numbers: Vec<f64> = if text.trim_start().starts_with('[') {
        let corners: Vec<[f64; 2]> = serde_json::from_str(text)
            .map_err(|_| refuse("not two corners [lat,lng] of numbers in a JSON list"))?;
        corners.concat()
    } else {
        text.split(',')
            .map(|part| part.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| refuse("not a list of numbers"))?
    };
    let [lat_a, lng_a, lat_b, lng_b] = numbers[..] else {
        return Err(refuse(&format!(
            "{} numbers given, 4 expected",
            numbers.len()
        )));
    };
    if numbers.iter().any(|n| !n.is_finite()) {
        return Err(refuse("not finite numbers"));
    }
    Ok([
        lng_a.min(lng_b),
        lat_a.min(lat_b),
        lng_a.max(lng_b),
        lat_a.max(lat_b),
    ])
}

/// `[width,height]` or `width,height`, each in `1..=MAX_OVERLAY_SIDE` as `/heatmap.png`'s.
fn parse_img_size(text: &str) -> Result<(u32, u32), ApiError> {
    let inner = text.trim();
    let inner = inner
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(inner);
    let allowed =
        format!("[width,height] or width,height, integers in 1..={MAX_OVERLAY_SIDE} (pixels)");
    let sides: Vec<&str> = inner.split(',').map(str::trim).collect();
    let [width, height] = sides[..] else {
        return Err(ApiError::bad(
            "imgSize",
            format!(
                "{} values given, 2 expected; allowed: {allowed}",
                sides.len()
            ),
        ));
    };
    let side = |text: &str| {
        parse_int("imgSize", text, 1..=MAX_OVERLAY_SIDE).map_err(|e| match e {
            StyleError::BadParam { param, detail } => ApiError::BadParam {
                param,
                detail: format!("{detail} ({allowed})"),
            },
            other => other.into(),
        })
    };
    Ok((side(width)?, side(height)?))
}

/// The layer asked for: `layer`, else the config's `poc_layer`, else the only layer.
async fn layer_name(state: &AppState, query: &Query) -> Result<String, ApiError> {
    if let Some(name) = query.get("layer").or(state.poc_layer.as_deref()) {
        return Ok(name.to_string());
    }
    // Database layers are known once the watcher has had its first look.
    if let Some(db) = state.database.as_ref().filter(|db| !db.looked()) {
        db.first_look().await;
    }
    let names = state.layers.names();
    if let Some(unknown) = state.layers_not_known().filter(|_| names.is_empty()) {
        return Err(unknown);
    }
    match &names[..] {
        [only] => Ok(only.clone()),
        names => Err(ApiError::bad(
            "layer",
            format!(
                "required here: this server serves {} layers ({}) and its config sets no \
                 poc_layer; give layer=NAME",
                names.len(),
                names.join(", ")
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_refused<T: std::fmt::Debug>(param: &str, input: &str, got: Result<T, ApiError>) {
        match got {
            Err(ApiError::BadParam { param: p, .. }) => assert_eq!(p, param, "{input}"),
            other => panic!("{input}: expected a refusal of {param}, got {other:?}"),
        }
    }

    #[test]
    fn bounds_take_json_and_comma_forms_in_any_corner_order() {
        let want = [2.2, 48.8, 2.5, 48.9];
        for text in [
            "[[48.8,2.2],[48.9,2.5]]",
            "[[48.9,2.5],[48.8,2.2]]",
            " [ [48.8, 2.2], [48.9, 2.5] ] ",
            "48.8,2.2,48.9,2.5",
            "48.9, 2.2, 48.8, 2.5",
        ] {
            assert_eq!(parse_bounds(text).expect(text), want, "{text}");
        }
        for bad in [
            "",
            "[[48.8,2.2]]",
            "[[48.8,2.2],[48.9]]",
            "[48.8,2.2,48.9,2.5]",
            "[[48.8,2.2],[48.9,\"x\"]]",
            "48.8,2.2,48.9",
            "48.8,2.2,48.9,2.5,1",
            "a,b,c,d",
            "48.8,2.2,48.9,inf",
            "48.8,2.2,NaN,2.5",
        ] {
            assert_refused("bounds", bad, parse_bounds(bad));
        }
    }

    #[test]
    fn image_sizes_take_both_forms_within_the_overlay_limit() {
        assert_eq!(parse_img_size("[800,600]").expect("json"), (800, 600));
        assert_eq!(parse_img_size("800, 600").expect("comma"), (800, 600));
        for bad in [
            "",
            "800",
            "[800]",
            "0,600",
            "800,4097",
            "800.5,600",
            "-1,2",
            "[1,2,3]",
        ] {
            assert_refused("imgSize", bad, parse_img_size(bad));
        }
    }
}
