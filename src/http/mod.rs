//! The HTTP API: routes, shared state, and the server's start and graceful stop.

pub mod bodies;
pub mod budget;
pub mod error;
pub mod head_guard;
pub mod host;
pub mod meta;
pub mod poc;
pub mod points;
pub mod request_id;
pub mod shutdown;
pub mod tiles;
pub mod webmap;

use crate::http::error::ApiError;
use crate::layer::Registry;
use crate::source::postgis::watch::Database;
use actix_web::dev::{Server, Service};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::{guard, web, App, HttpRequest};
use futures_util::future::{ready, Either};
use std::net::SocketAddr;
use std::time::Instant;

/// Settings the handlers read; fixed for the server's life.
#[derive(Clone)]
pub struct AppState {
    pub layers: Registry,
    /// The database, when the server reads PostGIS layers.
    pub database: Option<std::sync::Arc<Database>>,
    /// Zoom at which the web map hands off from tiles to client-side Leaflet.heat.
    pub handoff_zoom: u8,
    pub points_limit_default: u32,
    pub points_limit_max: u32,
    /// Public base URL for links in TileJSON and `/layers`; by default taken from the request.
    pub public_url: Option<String>,
    /// The layer `/twine.heatmap` serves when the request names none (config `poc_layer`).
    pub poc_layer: Option<String>,
    /// `Cache-Control` of tiles: the first band whose zoom range holds the tile's zoom,
    /// else `tile_cache_control`.
    pub tile_cache_control: HeaderValue,
    pub cache_control_bands: Vec<CacheControlBand>,
    /// `Access-Control-Allow-Origin` of every response (`*` by default), so pages on other
    /// origins can fetch tiles, TileJSON and points (MapLibre loads raster tiles with
    /// `fetch`); `None` sends no CORS headers.
    pub allow_origin: Option<HeaderValue>,
    /// Room for overlay pixels rendered at once (`/heatmap.png`).
    pub overlay_budget: std::sync::Arc<budget::RenderBudget>,
    /// Room for `/points` answers made at once.
    pub points_budget: std::sync::Arc<budget::PointsBudget>,
    pub cache: std::sync::Arc<crate::cache::TileCache>,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Notified when the server starts to stop (set by [`bind`]).
    pub stopping: Option<actix_server::GracefulShutdownSignal>,
}

/// `Cache-Control` for a range of zooms.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheControlBand {
    pub min_zoom: u8,
    pub max_zoom: u8,
    pub value: HeaderValue,
}

impl AppState {
    /// State with the documented defaults for `layers`.
    pub fn new(layers: Registry) -> AppState {
        AppState {
            layers,
            database: None,
            handoff_zoom: 8,
            points_limit_default: 20_000,
            points_limit_max: 200_000,
            public_url: None,
            poc_layer: None,
            tile_cache_control: HeaderValue::from_static("public, max-age=300"),
            cache_control_bands: Vec::new(),
            allow_origin: Some(HeaderValue::from_static("*")),
            overlay_budget: Default::default(),
            points_budget: Default::default(),
            // Without a configured cache: no memory or disk tier, single flight only.
            cache: std::sync::Arc::new(crate::cache::TileCache::new(None, None)),
            metrics: Default::default(),
            stopping: None,
        }
    }

    /// The layer named `name`: 404 when there is none, 503 while the database that may hold
    /// it has not been reached yet, 500 while its table is misconfigured. At start-up, until
    /// the database watcher's first look has
    /// ended, a request waits for it (bounded: [`Database::first_look`]), so that imported
    /// layers are known and declared filters typed.
    ///
    /// [`Database::first_look`]: crate::source::postgis::watch::Database::first_look
    pub async fn layer(&self, name: &str) -> Result<std::sync::Arc<crate::layer::Layer>, ApiError> {
        if let Some(db) = self.database.as_ref().filter(|db| !db.looked()) {
            db.first_look().await;
        }
        if let Some(layer) = self.layers.get(name) {
            // Before any cache: a table that cannot be drawn is named, never served stale.
            if let Some(problem) = layer.source.misconfigured() {
                return Err(ApiError::Misconfigured {
                    layer: name.to_string(),
                    problem,
                });
            }
            return Ok(layer);
        }
        if let Some(unknown) = self.layers_not_known() {
            return Err(unknown);
        }
        Err(ApiError::UnknownLayer {
            name: name.chars().take(64).collect(),
            known: self.layers.names(),
        })
    }

    /// The tile service over this server's cache.
    pub fn tiles(&self) -> crate::service::TileService<'_> {
        crate::service::TileService::new(&self.cache, &self.metrics)
    }

    /// The 503 for a layer name while the database that may hold it has not been reached.
    pub fn layers_not_known(&self) -> Option<ApiError> {
        let db = self.database.as_ref().filter(|db| !db.discovered())?;
        Some(ApiError::Unavailable {
            detail: "the database has not been reached yet, so its layers are not known"
                .to_string(),
            cause: db.last_error(),
        })
    }

    /// `Cache-Control` for a tile at zoom `z`.
    pub fn cache_control(&self, z: u8) -> &HeaderValue {
        self.cache_control_bands
            .iter()
            .find(|b| (b.min_zoom..=b.max_zoom).contains(&z))
            .map_or(&self.tile_cache_control, |b| &b.value)
    }

    /// The base URL clients use to reach this server: `public_url` when configured, else
    /// the request's scheme and `Host` (or the proxy's `Forwarded` / `X-Forwarded-Host` and
    /// `X-Forwarded-Proto`), accepted only when they are a plain `host[:port]` and `http` or
    /// `https`: links end up in answers that caches share, so a crafted `Host` must not
    /// steer them.
    pub fn base_url(&self, req: &HttpRequest) -> Result<String, ApiError> {
        if let Some(url) = &self.public_url {
            return Ok(url.trim_end_matches('/').to_string());
        }
        let info = req.connection_info();
        let (scheme, host) = (info.scheme(), info.host());
        if !matches!(scheme, "http" | "https") {
            return Err(ApiError::BadHeader {
                header: "X-Forwarded-Proto".into(),
                detail: "links are built from the request's scheme, which must be http or https; or configure public_url".into(),
            });
        }
        if !host::is_host_and_port(host) {
            return Err(ApiError::BadHeader {
                header: "Host".into(),
                detail: "links are built from the Host header (or Forwarded / X-Forwarded-Host), which must be a host name or IP literal with an optional :port; or configure public_url".into(),
            });
        }
        Ok(format!("{scheme}://{host}"))
    }
}

/// Response headers a page on another origin may read besides the CORS-safelisted ones.
const EXPOSED_HEADERS: &str = "ETag, X-Cache, Retry-After, X-Request-Id";

pub use error::ALLOWED_METHODS;

/// GET or HEAD: what every route answers (actix sends a HEAD answer's headers without its
/// body), as every HTTP resource should answer both. Other methods fall through to the
/// default service: a preflight answer or a 405.
fn reads() -> impl guard::Guard {
    guard::Any(guard::Get()).or(guard::Head())
}

/// A route for reading (GET and HEAD).
pub fn read() -> actix_web::Route {
    web::route().guard(reads())
}

/// Registers every route on an actix app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", read().to(meta::health))
        .route("/layers", read().to(meta::layers))
        .route("/metrics", read().to(meta::metrics))
        .route("/heatmap.png", read().to(tiles::overlay))
        // Tiles first: they are nearly all of the traffic, and a static prefix is matched
        // without a regex (the scope splits the rest itself).
        .service(
            web::scope("/tiles")
                .guard(reads())
                .default_service(web::to(tiles::under_tiles)),
        )
        .route("/points/{layer}", read().to(points::bbox_points))
        .route(
            "/points/{layer}/{z}/{x}/{file}",
            read().to(points::tile_points),
        )
        .configure(poc::routes)
        .configure(webmap::routes)
        .default_service(web::to(meta::not_found));
}

/// Whether the request's `If-None-Match` holds `etag` (or is `*`), so a 304 answers it
/// (RFC 9110 13.1.2: a list of entity tags, compared weakly for GET).
pub fn if_none_match_holds(req: &HttpRequest, etag: &[u8]) -> bool {
    req.headers()
        .get(actix_web::http::header::IF_NONE_MATCH)
        .is_some_and(|value| {
            value.as_bytes().split(|&b| b == b',').any(|tag| {
                let tag = tag.trim_ascii();
                tag == b"*" || tag.strip_prefix(b"W/").unwrap_or(tag) == etag
            })
        })
}

/// The `ETag` header of a stored entity tag. Shares the tag's bytes (no copy, no
/// allocation: memory hits send it), checking only that they are header-safe, which the
/// cache's quoted hex always is.
pub fn etag_header(etag: &bytes::Bytes) -> HeaderValue {
    HeaderValue::from_maybe_shared(etag.clone())
        .unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// The route of a request path, a fixed label for the latency metrics (never the raw path,
/// which is unbounded). Decided from the path's shape
/// rather than by `match_pattern`, which runs the router's regexes a second time for every
/// request (a few percent of the CPU of a cache hit).
fn route_name(path: &str) -> &'static str {
    let path = path.trim_start_matches('/');
    let (first, rest) = match path.find('/') {
        Some(at) => (
            &path[..at],
            1 + path[at + 1..].bytes().filter(|&b| b == b'/').count(),
        ),
        None => (path, 0),
    };
    match (first, rest) {
        ("tiles", 4) => "tile",
        ("tiles", 1) => "tilejson",
        ("heatmap.png", 0) => "overlay",
        ("points", 4) => "points_tile",
        ("points", 1) => "points_bbox",
        ("layers", 0) => "layers",
        ("health", 0) => "health",
        ("metrics", 0) => "metrics",
        _ => "other",
    }
}

/// Builds the app for `state` (used by `serve` and by the in-process tests).
pub fn app(
    state: AppState,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    // The middleware's own handle on the state: every request needs its metrics and CORS
    // origin, and memory hits are answered from it before routing.
    let shared = state.clone();
    App::new()
        .app_data(web::Data::new(state))
        .app_data(
            web::PathConfig::default()
                .error_handler(|err, _| ApiError::bad("path", err.to_string()).into()),
        )
        .wrap_fn(move |mut req, srv| {
            let started = Instant::now();
            let id = request_id::for_request(req.headers());
            head_guard::undisguise(&mut req);
            let head = req.method() == Method::HEAD;
            let route = route_name(req.path());
            let (metrics, allow_origin) = (shared.metrics.clone(), shared.allow_origin.clone());
            let reads = matches!(*req.method(), Method::GET | Method::HEAD);
            // No route reads a body: one that was announced is never waited for.
            let unread = bodies::take_unread(&mut req);
            // A memory hit is answered here, without routing (see `tiles::memory_hit`).
            let early = match (reads, &unread) {
                (true, Some(_)) => Some(bodies::refused()),
                (true, None) => tiles::memory_hit(&shared, req.request()),
                (false, _) => None,
            };
            let stopping = shared.stopping.clone();
            // Routed requests run with their id current, so that an error answer carries
            // it and logs its cause under it.
            let fut = match early {
                Some(answer) => Either::Left(ready(Ok(req.into_response(answer)))),
                None => {
                    let call = request_id::sync_scope(id.clone(), || srv.call(req));
                    Either::Right(request_id::scope(id.clone(), call))
                }
            };
            async move {
                let mut res = match stopping {
                    Some(signal) => shutdown::answer_or_stopping(fut, &signal).await?,
                    None => fut.await?,
                };
                if head {
                    res = head_guard::without_body(res);
                }
                let headers = res.headers_mut();
                headers.insert(request_id::X_REQUEST_ID, id.clone());
                // Browsers must take every answer for the type it says (an error's JSON is
                // never run as a script or page).
                headers.insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                // On every answer, errors included, so a page on another origin can read
                // the JSON error as well as the tile.
                if let Some(origin) = allow_origin {
                    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                    headers.insert(
                        header::ACCESS_CONTROL_EXPOSE_HEADERS,
                        HeaderValue::from_static(EXPOSED_HEADERS),
                    );
                }
                let seconds = started.elapsed().as_secs_f64();
                if let Some(unread) = unread {
                    res = bodies::close_after(res, unread);
                }
                metrics.observe_route(route, seconds);
                // One line per request is costly at tens of thousands of requests per second,
                // and a client's bad requests are not the operator's problem (a fuzzer would
                // fill the log): answers below 500 log at debug (RUST_LOG=twine_heatmap=debug).
                // Server-side failures log at warn, with the request id their cause was
                // logged under.
                let status = res.status().as_u16();
                let (method, path) = (res.request().method(), res.request().path());
                let id = id.to_str().unwrap_or_default();
                if status >= 500 {
                    tracing::warn!(%method, path, status, request_id = id, ms = seconds * 1e3, "request");
                } else {
                    tracing::debug!(%method, path, status, request_id = id, ms = seconds * 1e3, "request");
                }
                Ok(res)
            }
        })
        .configure(configure)
}

/// Binds the server without running it; returns it with the addresses it listens on.
/// Actix stops it gracefully on SIGINT or SIGTERM: it stops accepting and lets requests in
/// flight finish; those still running after [`shutdown::FINISH_WITHIN`] are answered 503,
/// and it returns within [`shutdown::STOP_LIMIT`].
///
/// Assembled from actix-server and actix-http as actix-web's `HttpServer` does (same timeouts
/// and backlog), because `HttpServer` cannot wrap a connection's socket, and each one here is
/// read through [`head_guard::GuardedStream`] so that HEAD requests cannot desynchronize
/// pipelined answers.
pub fn bind(state: AppState, addr: &str) -> std::io::Result<(Server, Vec<SocketAddr>)> {
    use actix_service::{map_config, IntoServiceFactory, ServiceFactoryExt as _};
    use actix_web::dev::AppConfig;
    use actix_web::rt::net::TcpStream;

    let mut builder =
        actix_server::ServerBuilder::default().shutdown_timeout(shutdown::FORCE_AFTER_SECS);
    let shutdown = builder.graceful_shutdown_signal();
    let mut state = state;
    state.stopping = Some(shutdown.clone());
    let mut addrs = Vec::new();
    let mut last_error = None;
    for local in std::net::ToSocketAddrs::to_socket_addrs(addr)? {
        let listener = match listen(local) {
            Ok(listener) => listener,
            // As HttpServer: bound if any of the addresses the name resolves to is.
            Err(e) => {
                last_error = Some(e);
                continue;
            }
        };
        let local = listener.local_addr()?;
        addrs.push(local);
        let (state, shutdown) = (state.clone(), shutdown.clone());
        builder = builder.listen(format!("twine-heatmap-{local}"), listener, move || {
            let shutdown = shutdown.clone();
            let http = actix_http::HttpService::build()
                .graceful_shutdown_signal(move || {
                    let shutdown = shutdown.clone();
                    async move { shutdown.notified().await }
                })
                // HttpServer's setting (actix-http's own default is no limit): a connection the
                // server ends is dropped if the client has not closed it within 1 s.
                .client_disconnect_timeout(std::time::Duration::from_secs(1))
                .local_addr(local)
                .finish(map_config(
                    app(state.clone())
                        .into_factory()
                        .map_err(|err| err.error_response()),
                    // Its host (localhost:8080) only names links for a request with no Host
                    // field; HttpServer put the bound address there, which an app cannot
                    // (AppConfig::new is private to actix-web). --public-url overrides both.
                    move |_| AppConfig::default(),
                ));
            actix_service::fn_service(|io: TcpStream| {
                // As nginx's tcp_nodelay: a response never waits for the previous one's ACK.
                let _ = io.set_nodelay(true);
                let peer = io.peer_addr().ok();
                let io = head_guard::GuardedStream::new(io);
                futures_util::future::ok::<_, actix_http::error::DispatchError>((
                    io,
                    actix_http::Protocol::Http1,
                    peer,
                ))
            })
            .and_then(http)
        })?;
    }
    match (addrs.is_empty(), last_error) {
        (true, Some(e)) => Err(e),
        (true, None) => Err(std::io::Error::other(format!("{addr}: no address to bind"))),
        _ => Ok((builder.run(), addrs)),
    }
}

/// A listening socket as HttpServer makes one: address reuse (a restart does not wait for
/// the old connections' TIME_WAIT) and a backlog of 1024.
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(state: AppState, addr: &str) -> std::io::Result<()> {
    let (server, addrs) = bind(state, addr)?;
    for addr in addrs {
        tracing::info!(%addr, "listening");
    }
    server.await?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{if_none_match_holds, route_name};
    use actix_web::http::header::{HeaderValue, IF_NONE_MATCH};
    use actix_web::test::TestRequest;

    #[test]
    fn if_none_match_takes_lists_stars_and_weak_tags() {
        let etag = br#""abc""#;
        for (header, holds) in [
            (&br#""abc""#[..], true),
            (br#"W/"abc""#, true),
            (br#""x", "abc""#, true),
            (br#""x" ,  W/"abc" "#, true),
            (b"*", true),
            (br#""abcd""#, false),
            (br#""ab""#, false),
            (b"abc", false),
            (br#"W/"x""#, false),
            (b"", false),
            (b"\xff\xfe", false),
        ] {
            let value = HeaderValue::from_bytes(header).expect("header bytes");
            let req = TestRequest::default()
                .insert_header((IF_NONE_MATCH, value))
                .to_http_request();
            assert_eq!(if_none_match_holds(&req, etag), holds, "{header:?}");
        }
        let req = TestRequest::default().to_http_request();
        assert!(!if_none_match_holds(&req, etag), "no header");
    }

    #[test]
    fn routes_are_named_from_the_path_shape() {
        for (path, route) in [
            ("/tiles/demo/3/4/2.png", "tile"),
            ("/tiles/demo/3/4/2@2x.png", "tile"),
            ("/tiles/demo.json", "tilejson"),
            ("/heatmap.png", "overlay"),
            ("/points/demo/9/1/2.json", "points_tile"),
            ("/points/demo", "points_bbox"),
            ("/layers", "layers"),
            ("/health", "health"),
            ("/metrics", "metrics"),
            ("/", "other"),
            ("/tiles/demo/3/4", "other"),
            ("/favicon.ico", "other"),
        ] {
            assert_eq!(route_name(path), route, "{path}");
            assert!(
                crate::metrics::ROUTES.contains(&route),
                "{route} has a histogram"
            );
        }
    }
}
