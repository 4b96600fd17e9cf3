//! The web map: `GET /` and the files under `/web/...`, served from bytes embedded in the
//! binary so that `serve` works offline and from any working directory.
//!
//! The page's files live in `web/` (Leaflet and Leaflet.heat vendored under `web/vendor/`,
//! see `web/README.md`). `/web/schemes.json` is generated here from the server's own scheme
//! tables, so the page colors Leaflet.heat exactly as the tiles are colored.

use super::error::ApiError;
use crate::render::palette::Scheme;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use std::sync::OnceLock;

/// One embedded file: its path under `/web/`, its `Content-Type` and its bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const PNG: &str = "image/png";
const TEXT: &str = "text/plain; charset=utf-8";

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../../web/", $path)),
        }
    };
}

/// Every file of the page; a unit test checks that this list and `web/` agree.
const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("app.js", JS),
    asset!("filters.js", JS),
    asset!("player.js", JS),
    asset!("points.js", JS),
    asset!("styles.js", JS),
    asset!("style.css", CSS),
    asset!("vendor/VERSIONS", TEXT),
    asset!("vendor/leaflet/leaflet.js", JS),
    asset!("vendor/leaflet/leaflet.css", CSS),
    asset!("vendor/leaflet/images/layers.png", PNG),
    asset!("vendor/leaflet/images/layers-2x.png", PNG),
    asset!("vendor/leaflet/images/marker-icon.png", PNG),
    asset!("vendor/leaflet/LICENSE", TEXT),
    asset!("vendor/leaflet.heat/leaflet-heat.js", JS),
    asset!("vendor/leaflet.heat/LICENSE", TEXT),
];

/// Registers `GET /` and `GET /web/{file}`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", super::read().to(index))
        .route("/web/{file:.*}", super::read().to(file));
}

/// The map page's Content-Security-Policy: scripts, styles, fonts and fetches from this server
/// only (the page has no inline script or style), images also from the OpenStreetMap
/// basemap and `data:` (Leaflet's blank tile, the page's empty favicon); no plugins, frames,
/// `<base>` or form posts. A script injected into the page could not load or send anything.
pub const WEB_MAP_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: https://tile.openstreetmap.org; connect-src 'self'; font-src 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /`: the map page.
async fn index(req: HttpRequest) -> HttpResponse {
    let mut response = respond(&req, asset("index.html").expect("index.html is embedded"));
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(WEB_MAP_CSP),
    );
    response
}

/// `GET /web/{file}`: an embedded file, or `schemes.json`; anything else is the API's JSON 404.
async fn file(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let path = path.into_inner();
    if path == "schemes.json" {
        return Ok(respond(&req, schemes()));
    }
    let found = asset(&path).ok_or_else(|| ApiError::NotFound {
        detail: format!(
            "no web file {:?}; the map is at /, its files under /web/ ({})",
            path.chars().take(128).collect::<String>(),
            ASSETS.iter().map(|a| a.path).collect::<Vec<_>>().join(", ")
        ),
    })?;
    Ok(respond(&req, found))
}

/// A file ready to send: its bytes, type and a strong ETag of its content.
struct Served {
    content_type: &'static str,
    bytes: &'static [u8],
    etag: HeaderValue,
}

fn asset(path: &str) -> Option<&'static Served> {
    static SERVED: OnceLock<Vec<Served>> = OnceLock::new();
    let all = SERVED.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| Served {
                content_type: a.content_type,
                bytes: a.bytes,
                etag: etag(a.bytes),
            })
            .collect()
    });
    ASSETS.iter().position(|a| a.path == path).map(|i| &all[i])
}

/// `/web/schemes.json`: each scheme's 256 colors from coldest to hottest, as `#rrggbb`, in the
/// order the `smooth` style's palette uses them (entry i colors accumulated alpha i).
fn schemes() -> &'static Served {
    static SCHEMES: OnceLock<Served> = OnceLock::new();
    SCHEMES.get_or_init(|| {
        let map: serde_json::Map<String, serde_json::Value> = Scheme::ALL
            .iter()
            .map(|&s| {
                let colors: Vec<String> = crate::render::ColorRamp::Scheme(s)
                    .colors_cold_to_hot()
                    .iter()
                    .map(|[r, g, b]| format!("#{r:02x}{g:02x}{b:02x}"))
                    .collect();
                (s.name().to_string(), colors.into())
            })
            .collect();
        let bytes: &'static [u8] = serde_json::to_vec(&serde_json::json!({
            "order": "coldest to hottest; entry i colors accumulated alpha i",
            "schemes": map,
        }))
        .expect("schemes serialize")
        .leak();
        Served {
            content_type: "application/json",
            bytes,
            etag: etag(bytes),
        }
    })
}

fn etag(bytes: &[u8]) -> HeaderValue {
    super::etag_header(&crate::cache::strong_etag(&crate::cache::content_digest(
        bytes,
    )))
}

/// The file, or 304 when the client already holds this version. `no-cache` makes browsers
/// revalidate, so a new binary's page is picked up at once.
fn respond(req: &HttpRequest, served: &Served) -> HttpResponse {
    let matches = super::if_none_match_holds(req, served.etag.as_bytes());
    let mut response = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, served.etag.clone()))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if matches {
        return response.finish();
    }
    response
        .content_type(served.content_type)
        .body(served.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{body::to_bytes, test as web_test, App};
    use std::path::{Path, PathBuf};

    fn header_of(res: &actix_web::dev::ServiceResponse, name: header::HeaderName) -> &str {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// Files in `web/` that are served: everything but the npm and documentation files.
    fn page_files(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read web/") {
            let path = entry.expect("entry").path();
            let rel = path
                .strip_prefix(root)
                .expect("under web/")
                .to_string_lossy()
                .replace('\\', "/");
            if path.is_dir() {
                if rel != "node_modules" {
                    page_files(&path, root, out);
                }
            } else if ![
                "package.json",
                "package-lock.json",
                "README.md",
                "vendor.mjs",
            ]
            .contains(&rel.as_str())
            {
                out.push(rel);
            }
        }
    }

    #[test]
    fn every_page_file_is_embedded() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web");
        let mut on_disk = Vec::new();
        page_files(&root, &root, &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.path.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded, "web/ and ASSETS in webmap.rs disagree");
    }

    #[actix_web::test]
    async fn serves_the_page_files_and_a_json_404() {
        let app = web_test::init_service(App::new().configure(routes)).await;
        for (uri, content_type) in [
            ("/", HTML),
            ("/web/app.js", JS),
            ("/web/vendor/leaflet/leaflet.css", CSS),
            ("/web/vendor/leaflet/images/layers.png", PNG),
            ("/web/schemes.json", "application/json"),
        ] {
            let res =
                web_test::call_service(&app, web_test::TestRequest::get().uri(uri).to_request())
                    .await;
            assert_eq!(res.status(), 200, "{uri}");
            assert_eq!(header_of(&res, header::CONTENT_TYPE), content_type, "{uri}");
            let etag = header_of(&res, header::ETAG).to_string();
            let again = web_test::TestRequest::get()
                .uri(uri)
                .insert_header((header::IF_NONE_MATCH, etag))
                .to_request();
            let res = web_test::call_service(&app, again).await;
            assert_eq!(res.status(), 304, "{uri}");
        }
        let res = web_test::call_service(
            &app,
            web_test::TestRequest::get()
                .uri("/web/../Cargo.toml")
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), 404);
        assert_eq!(header_of(&res, header::CONTENT_TYPE), "application/json");
        let body: serde_json::Value =
            serde_json::from_slice(&to_bytes(res.into_body()).await.expect("body")).expect("json");
        assert!(body["detail"]
            .as_str()
            .expect("detail")
            .contains("no web file"));
    }

    #[test]
    fn schemes_json_matches_the_palettes() {
        let doc: serde_json::Value = serde_json::from_slice(schemes().bytes).expect("json");
        for s in Scheme::ALL {
            let list = doc["schemes"][s.name()].as_array().expect("scheme");
            assert_eq!(list.len(), 256);
            let [r, g, b] = s.table()[0];
            assert_eq!(list[255], format!("#{r:02x}{g:02x}{b:02x}"), "hottest last");
        }
    }
}
