//! Descriptive routes: `/layers`, TileJSON, `/health`, and the JSON 404.

use super::error::ApiError;
use super::AppState;
use crate::cache::disk::Rejection;
use crate::layer::Layer;
use crate::metrics::Gauges;
use crate::source::attributes::{format_instant, AttributeSummary};
use crate::style::{Query, StyleSpec, STYLE_PARAMS};
use crate::tile::MAX_ZOOM;
use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

/// `GET /layers`: name, bounds, point count and TileJSON URL of every layer.
pub async fn layers(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    Query::parse(req.query_string(), &[])?;
    let base = state.base_url(&req)?;
    let list: Vec<_> = state
        .layers
        .all()
        .iter()
        .map(|layer| {
            let info = layer.info();
            json!({
                "name": &*layer.name,
                "bounds": info.bounds,
                "count": info.count,
                "tilejson": format!("{base}/tiles/{}.json", layer.name),
                "attribution": info.attribution,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(list))
}

/// `GET /tiles/{layer}.json`: TileJSON 3.0.0; style parameters given here are carried into
/// the tile URL template, so a client configured from this URL gets those tiles.
pub async fn tilejson(
    state: &AppState,
    req: &HttpRequest,
    file: &str,
) -> Result<HttpResponse, ApiError> {
    let name = file
        .strip_suffix(".json")
        .ok_or_else(|| ApiError::NotFound {
            detail: "TileJSON is at /tiles/{layer}.json; tiles at /tiles/{layer}/{z}/{x}/{y}.png"
                .into(),
        })?;
    let query = Query::parse(req.query_string(), &[STYLE_PARAMS])?;
    let spec = StyleSpec::from_query(&query)?;
    let layer = state.layer(name).await?;
    let mut doc = tilejson_doc(state, &state.base_url(req)?, &layer, &spec);
    doc["heatmap"]["aggregatedZooms"] = json!(layer.aggregated_zooms().await?);
    if let Some(summary) = layer.source.attribute_summary() {
        attributes_json(&mut doc["heatmap"], &summary);
    }
    Ok(HttpResponse::Ok().json(doc))
}

/// `"time": {"column", "min", "max", "bucket"}` (min and max ISO 8601 in UTC, null when no
/// point has a time) and `"categories": [{"column", "values": [{"value", "count"}],
/// "distinct", "capped"}]` for a layer that declares them.
fn attributes_json(heatmap: &mut serde_json::Value, summary: &AttributeSummary) {
    if let Some(time) = &summary.time {
        heatmap["time"] = json!({
            "column": time.column,
            "min": time.extent.map(|(lo, _)| format_instant(lo)),
            "max": time.extent.map(|(_, hi)| format_instant(hi)),
            "bucket": time.bucket.name(),
        });
    }
    if !summary.categories.is_empty() {
        heatmap["categories"] = summary
            .categories
            .iter()
            .map(|c| {
                json!({
                    "column": c.column,
                    "values": c.values.iter().map(|(v, n)| json!({"value": v, "count": n})).collect::<Vec<_>>(),
                    "distinct": c.distinct,
                    "capped": c.distinct > c.values.len(),
                })
            })
            .collect();
    }
}

fn tilejson_doc(
    state: &AppState,
    base: &str,
    layer: &Layer,
    spec: &StyleSpec,
) -> serde_json::Value {
    let info = layer.info();
    let [w, s, e, n] = info.bounds;
    let center_zoom = 2;
    json!({
        "tilejson": "3.0.0",
        "name": &*layer.name,
        "description": format!("Heatmap of {} points", info.count),
        "scheme": "xyz",
        "tiles": [format!("{base}/tiles/{}/{{z}}/{{x}}/{{y}}.png?{}", layer.name, spec.canonical())],
        "minzoom": 0,
        "maxzoom": MAX_ZOOM,
        "bounds": info.bounds,
        "center": [(w + e) / 2.0, (s + n) / 2.0, center_zoom],
        "attribution": info.attribution,
        "heatmap": {
            "handoffZoom": state.handoff_zoom,
            "points": format!("{base}/points/{}/{{z}}/{{x}}/{{y}}.json", layer.name),
            "style": spec.canonical(),
        },
    })
}

/// `GET /health`: status `ok` while everything is reachable, `degraded` while the database
/// is down, as the last contact with it found (any request's or the watcher's). Always 200:
/// the process is alive, serves what it can and recovers by itself.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let layers = state.layers.all();
    let points: u64 = layers.iter().map(|l| l.info().count).sum();
    let (status, database) = match &state.database {
        None => ("ok", json!("not configured")),
        Some(db) if db.reachable() => ("ok", json!({"status": "ok", "pool": pool_json(&db.pool)})),
        Some(db) => (
            "degraded",
            // State only: the cause (which may name the database's user, host or tables)
            // is in the log. `checked` says whether the server has tried it yet.
            json!({"status": "unavailable", "checked": db.looked(), "pool": pool_json(&db.pool)}),
        ),
    };
    let mut database = database;
    if let (Some(db), Some(fields)) = (&state.database, database.as_object_mut()) {
        // Declared tables whose writes are not seen (no trigger: see `db init`).
        let untracked = db.tables_without_trigger();
        if !untracked.is_empty() {
            fields.insert("tables_without_version_trigger".into(), json!(untracked));
        }
    }
    // Layers whose tables cannot be drawn: degraded, and named, as retrying cannot cure them.
    let misconfigured: Vec<serde_json::Value> = state
        .database
        .as_ref()
        .map(|db| db.misconfigured())
        .unwrap_or_default()
        .into_iter()
        .map(|(layer, problem)| json!({"layer": layer, "problem": problem}))
        .collect();
    let status = if misconfigured.is_empty() {
        status
    } else {
        "degraded"
    };
    let body = json!({
        "status": status,
        "misconfigured_layers": misconfigured,
        "layers": layers.len(),
        "points": points,
        "database": database,
        "cache": cache_json(&state.cache),
    });
    HttpResponse::Ok().json(body)
}

/// Each tier's use against its budget; `"off"` for a tier that is not configured. A disk tier
/// whose writes fail says so (`writable: false`): the server still answers from memory and
/// renders, so this alone does not make it unhealthy.
fn cache_json(cache: &crate::cache::TileCache) -> serde_json::Value {
    let memory = cache.memory.as_ref().map_or(
        json!("off"),
        |m| json!({"tiles": m.tiles(), "bytes": m.bytes(), "budget": m.budget()}),
    );
    let disk = cache.disk.as_ref().map_or(json!("off"), |d| {
        let s = d.stats();
        json!({
            "dir": d.dir().display().to_string(),
            "tiles": s.files,
            "bytes": s.bytes,
            "budget": s.budget,
            "writable": !s.write_failing,
            "write_errors": s.write_errors,
            "corrupt_discarded": s.corrupt,
            "rejected_files": Rejection::ALL
                .iter()
                .zip(s.rejected)
                .map(|(why, n)| (why.label().to_string(), json!(n)))
                .collect::<serde_json::Map<_, _>>(),
        })
    });
    json!({"memory": memory, "disk": disk})
}

fn pool_json(pool: &deadpool_postgres::Pool) -> serde_json::Value {
    let s = pool.status();
    json!({"size": s.size, "available": s.available, "waiting": s.waiting, "max_size": s.max_size})
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let cache = &state.cache;
    // In-memory counters under the index lock: no file I/O, so no blocking thread.
    let disk = cache.disk.as_ref().map(|d| d.totals());
    let gauges = Gauges {
        memory_bytes: cache.memory.as_ref().map_or(0, |m| m.bytes()),
        memory_evictions: cache.memory.as_ref().map_or(0, |m| m.evictions()),
        disk_bytes: disk.map_or(0, |d| d.bytes),
        disk_evictions: disk.map_or(0, |d| d.evictions),
        disk_rejected: disk.map_or_else(Vec::new, |d| {
            let reasons = Rejection::ALL.iter().map(|r| r.label());
            reasons.zip(d.rejected).collect()
        }),
        pool: state.database.as_ref().map(|db| {
            let s = db.pool.status();
            (s.size, s.available, s.waiting)
        }),
    };
    let text = state
        .metrics
        .render(&gauges)
        .map_err(|e| ApiError::Internal {
            cause: format!("encoding the metrics: {e}"),
        })?;
    Ok(HttpResponse::Ok()
        .content_type(prometheus::TEXT_FORMAT)
        .body(text))
}

/// Any other path: a JSON 404 listing the routes.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    match *req.method() {
        Method::GET | Method::HEAD => {}
        // A CORS preflight (a page on another origin sending a non-simple header such as
        // If-None-Match by hand): every route reads, with any request header.
        Method::OPTIONS => {
            let mut answer = HttpResponse::NoContent();
            answer.insert_header((header::ALLOW, super::error::ALLOWED_METHODS));
            answer.insert_header((
                header::ACCESS_CONTROL_ALLOW_METHODS,
                super::error::ALLOWED_METHODS,
            ));
            if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                answer.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone()));
            }
            answer.insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"));
            return Ok(answer.finish());
        }
        _ => {
            return Err(ApiError::MethodNotAllowed {
                method: req.method().to_string(),
            })
        }
    }
    Err(ApiError::NotFound {
        detail: format!(
            "no route for {} {}; routes: /layers, /tiles/{{layer}}.json, /tiles/{{layer}}/{{z}}/{{x}}/{{y}}.png, /heatmap.png, /points/{{layer}}/{{z}}/{{x}}/{{y}}.json, /points/{{layer}}?bbox=, /health",
            req.method(),
            req.path().chars().take(128).collect::<String>()
        ),
    })
}
