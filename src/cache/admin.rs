//! Offline administration of the tile cache: `seed` (render tiles ahead of time into the
//! disk tier), `cache purge` (remove tiles by layer, zoom and area) and `cache stats` (usage
//! per tier and layer).
//!
//! Seeding builds the layers exactly as `serve` does and keys each tile with the same
//! [`tile_key`] the tile route uses, so every seeded tile is a `hit-disk` for an equal request.
//! It is safe to stop at any moment: each tile file is published by an atomic rename and
//! leftover temp files are removed the next time the cache is opened, so a killed seed leaves
//! only whole tiles, and re-running the same command resumes where it stopped.

use crate::cache::disk::{DiskCache, DiskStats};
use crate::cache::key::TileKey;
use crate::cli::{build_state, ServeArgs};
use crate::config::{parse_size, parse_zoom_range};
use crate::error::ApiError;
use crate::http::params::{parse_bbox, Query, StyleSpec, STYLE_PARAMS};
use crate::http::tiles::{render_png, tile_key};
use crate::http::{self, AppState};
use crate::layer::{valid_layer_name, Layer};
use crate::metrics::Metrics;
use crate::progress::{grouped, per_second};
use crate::source::FilterValues;
use crate::style::{parse_filters, parse_with_filters, StyleError};
use crate::tile::{lat_to_world_y, lon_to_world_x, TileCoord, WorldBox, MAX_ZOOM};
use actix_web::web;
use indicatif::ProgressBar;
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};

/// Most tiles rendered at once; more only adds memory (rendering is CPU-bound).
pub const MAX_CONCURRENCY: usize = 1024;

/// How long `seed` waits for the database watcher's first look at the database.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Exit status after SIGINT, as shells report it (128 + 2).
const EXIT_SIGINT: u8 = 130;
/// Exit status after SIGTERM (128 + 15).
const EXIT_SIGTERM: u8 = 143;

/// Why an admin command failed; printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Failed(String),
    /// Stopped by a signal after finishing the tiles in flight; `code` is the exit status.
    #[error("{message}")]
    Interrupted { message: String, code: u8 },
}

impl AdminError {
    /// The process exit status: 130 (or 143) after SIGINT (SIGTERM), else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Failed(_) => 1,
            AdminError::Interrupted { code, .. } => *code,
        }
    }
}

fn fail(message: impl Into<String>) -> AdminError {
    AdminError::Failed(message.into())
}

/// Prints a failure as one line and gives the process's exit status.
pub fn finish(result: Result<(), AdminError>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("twine-heatmap: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}

/// What to seed (the layers, cache folder and budget come from the `serve` flags).
#[derive(Debug, Clone, Default)]
pub struct SeedOptions {
    pub layer: String,
    /// `A-B` or a single zoom.
    pub zoom: String,
    /// `w,s,e,n` in degrees; None = the layer's bounds grown by the style's reach.
    pub bbox: Option<String>,
    /// Style and filter parameters as in a tile URL's query string.
    pub style: String,
    /// Seed the `@2x` tiles instead of the 256-pixel ones.
    pub retina: bool,
    /// Tiles rendered at once; None = the number of CPUs.
    pub concurrency: Option<usize>,
}

/// What a seed run did.
#[derive(Debug, Default)]
struct Tally {
    seeded: AtomicU64,
    cached: AtomicU64,
    bytes: AtomicU64,
    /// The first failure: scheduling stops, tiles in flight finish.
    failure: Mutex<Option<String>>,
}

impl Tally {
    fn failed(&self) -> bool {
        self.lock().is_some()
    }

    fn fail(&self, message: String) {
        self.lock().get_or_insert(message);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // Only whole-value writes happen under the lock, so a poisoned one is still valid.
        self.failure.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Everything a tile task needs.
struct Job {
    layer: Arc<Layer>,
    spec: StyleSpec,
    filters: FilterValues,
    ratio: u32,
    metrics: Arc<Metrics>,
    disk: Arc<DiskCache>,
    tally: Arc<Tally>,
    progress: ProgressBar,
}

impl Job {
    /// Renders and stores one tile unless the disk already holds it.
    async fn run(&self, coord: TileCoord) {
        match self.seed_one(coord).await {
            Ok(Some(bytes)) => {
                self.tally.seeded.fetch_add(1, Ordering::Relaxed);
                self.tally.bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            Ok(None) => {
                self.tally.cached.fetch_add(1, Ordering::Relaxed);
            }
            Err(message) => self.tally.fail(format!(
                "tile {}/{}/{}: {message}",
                coord.z, coord.x, coord.y
            )),
        }
        self.progress.inc(1);
    }

    /// The bytes written, or None when the tile was already on disk.
    async fn seed_one(&self, coord: TileCoord) -> Result<Option<u64>, String> {
        // Keyed per tile, not once: a database layer's data version may change mid-run, and
        // the server keys by the version current at request time.
        let key = tile_key(&self.layer, &self.spec, &self.filters, self.ratio, coord);
        let (disk, k) = (self.disk.clone(), key.clone());
        // `get` checks the checksum, so a damaged file is dropped and rendered again.
        let on_disk = web::block(move || disk.get(&k).is_some())
            .await
            .map_err(|e| format!("disk read task failed: {e}"))?;
        if on_disk {
            return Ok(None);
        }
        let png = render_png(
            &self.layer,
            coord.viewport(self.ratio),
            &self.spec,
            Some(coord),
            &self.filters,
            &self.metrics,
        )
        .await
        .map_err(|e| api_message(&e.into()))?;

        let size = png.len() as u64;
        let disk = self.disk.clone();
        web::block(move || disk.put(&key, &png))
            .await
            .map_err(|e| format!("disk write task failed: {e}"))?;
        Ok(Some(size))
    }
}

/// `seed`: renders every tile of the zooms within the area into the disk tier, skipping
/// tiles already there. Call inside an actix `System` (rendering uses its blocking pool).
pub async fn seed(options: &SeedOptions, serve: &ServeArgs) -> Result<(), AdminError> {
    // Flag syntax first: a typo should not wait for points files to load.
    let zooms = parse_zoom_arg(&options.zoom)?;
    let area = options.bbox.as_deref().map(parse_bbox_arg).transpose()?;
    let concurrency = options.concurrency.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
        return Err(fail(format!(
            "--concurrency {concurrency}: allowed 1..={MAX_CONCURRENCY}"
        )));
    }
    let (state, _bind) = build_state(serve).map_err(|e| fail(e.to_string()))?;
    let disk = state.cache.disk.clone().ok_or_else(|| {
        fail("seed writes to the disk cache: give --cache-dir DIR (or cache.dir in the config) and a --cache-disk budget above 0")
    })?;
    http::start_background(&state);
    let layer = find_layer(&state, &options.layer).await?;
    let (spec, filters) = parse_style(&layer, &options.style)?;
    let ratio = if options.retina { 2 } else { 1 };

    let mut plan = Vec::new();
    for z in zooms.0..=zooms.1 {
        let area = match area {
            Some(area) => area,
            None => default_area(&layer, &spec, z, ratio).await?,
        };
        let (xs, ys) = tile_range(&area, z);
        plan.push((z, xs, ys));
    }
    let total: u64 = plan
        .iter()
        .map(|(_, xs, ys)| range_len(xs) * range_len(ys))
        .sum();
    let tiles = plan.into_iter().flat_map(|(z, xs, ys)| {
        xs.flat_map(move |x| ys.clone().map(move |y| TileCoord { z, x, y }))
    });

    let before = disk.stats();
    let progress = crate::progress::bar(&layer.name, total, "tiles");
    let tally = Arc::new(Tally::default());
    let job = Arc::new(Job {
        layer,
        spec,
        filters,
        ratio,
        metrics: state.metrics.clone(),
        disk: disk.clone(),
        tally: tally.clone(),
        progress: progress.clone(),
    });
    let mut signals = watch_signals().map_err(|e| fail(format!("cannot watch signals: {e}")))?;
    let semaphore = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    for coord in tiles {
        if signals.borrow().is_some() || tally.failed() {
            break;
        }
        let permit = tokio::select! {
            biased;
            _ = signals.wait_for(Option::is_some) => break,
            permit = semaphore.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let job = job.clone();
        actix_web::rt::spawn(async move {
            job.run(coord).await;
            drop(permit);
        });
    }
    // Every task holds a permit until its tile is written: holding all of them means no
    // write is still in flight.
    let _all = semaphore.acquire_many(concurrency as u32).await;
    let elapsed = started.elapsed().as_secs_f64();
    progress.finish_and_clear();

    let seeded = tally.seeded.load(Ordering::Relaxed);
    let cached = tally.cached.load(Ordering::Relaxed);
    let bytes = tally.bytes.load(Ordering::Relaxed);
    println!(
        "seeded {} tiles ({} already cached) in {elapsed:.1} s ({} tiles/s), {}",
        grouped(seeded),
        grouped(cached),
        per_second(seeded as f64 / elapsed),
        human(bytes)
    );
    let after = disk.stats();
    let evicted = after.evictions.saturating_sub(before.evictions);
    if evicted > 0 {
        eprintln!(
            "twine-heatmap: warning: {evicted} tiles were evicted to stay within the disk budget of {} bytes; raise --cache-disk (and give the server the same budget)",
            after.budget
        );
    }
    let write_errors = after.write_errors.saturating_sub(before.write_errors);
    if write_errors > 0 {
        return Err(fail(format!(
            "{write_errors} tiles could not be written to the cache folder (full or not writable?)"
        )));
    }
    let failure = tally.lock().take();
    if let Some(message) = failure {
        return Err(fail(format!(
            "seeding stopped: {message}; re-run the same command to resume"
        )));
    }
    let signal = *signals.borrow();
    if let Some((name, code)) = signal {
        return Err(AdminError::Interrupted {
            message: format!(
                "interrupted by {name} after {} of {} tiles; the cache is consistent, re-run the same command to resume",
                grouped(seeded + cached),
                grouped(total)
            ),
            code,
        });
    }
    Ok(())
}

/// The layer named `name`, once a database that may hold it has been read.
async fn find_layer(state: &AppState, name: &str) -> Result<Arc<Layer>, AdminError> {
    if let Some(db) = &state.database {
        // Database layers and their data versions are known only after the watcher's first
        // poll; keys made before it would carry a version the server never uses.
        let deadline = Instant::now() + DISCOVERY_TIMEOUT;
        while !db.discovered() {
            if Instant::now() > deadline {
                return Err(fail(format!(
                    "the database was not reached within {} s: {}",
                    DISCOVERY_TIMEOUT.as_secs(),
                    db.last_error().unwrap_or_default()
                )));
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
    state.layer(name).await.map_err(|e| match e {
        ApiError::UnknownLayer { known, .. } => fail(format!(
            "--layer: unknown layer {name:?}; layers: {}",
            known.join(", ")
        )),
        other => fail(format!("--layer {name:?}: {}", api_message(&other))),
    })
}

/// Parses `--style` exactly as a tile request's query string, so the canonical form (and so
/// the key) is the one the server computes for any equal request.
fn parse_style(layer: &Layer, style: &str) -> Result<(StyleSpec, FilterValues), AdminError> {
    let bad = |e: StyleError| fail(format!("--style: {}", api_message(&e.into())));
    // What the tile route does with a request's query string, step for step.
    let defs = layer.source.filters();
    let query =
        parse_with_filters(style.trim_start_matches('?'), &[STYLE_PARAMS], &defs).map_err(bad)?;
    let spec = StyleSpec::from_query(&query).map_err(bad)?;
    let filters = parse_filters(&defs, &query).map_err(bad)?;
    Ok((spec, filters))
}

/// The layer's bounds grown by how far the style reaches at zoom `z`: tiles just outside the
/// points still show their blur.
async fn default_area(
    layer: &Layer,
    spec: &StyleSpec,
    z: u8,
    ratio: u32,
) -> Result<WorldBox, AdminError> {
    let [w, s, e, n] = layer.info().bounds;
    let bounds = WorldBox {
        x0: lon_to_world_x(w),
        y0: lat_to_world_y(n),
        x1: lon_to_world_x(e),
        y1: lat_to_world_y(s),
    };
    let vp = TileCoord { z, x: 0, y: 0 }.viewport(ratio);
    let style = spec
        .style
        .resolve(layer, &vp, &crate::source::FilterValues::NONE)
        .await
        .map_err(|e| fail(format!("layer {:?}: {e}", layer.name)))?;
    let margin = style.reach_px(&vp) / vp.scale_x;
    Ok(bounds.expand(margin, margin))
}

/// The columns and rows of the tiles at zoom `z` that overlap `area` (touching an edge is
/// not overlapping; a zero-size area still gets the tile it lies in). `seed` and `purge` both
/// use it, so purging a seeded box removes exactly what was seeded.
pub fn tile_range(area: &WorldBox, z: u8) -> (RangeInclusive<u32>, RangeInclusive<u32>) {
    let n = TileCoord::count(z) as f64;
    let axis = |lo: f64, hi: f64| {
        let last = n - 1.0;
        let first = (lo * n).floor().clamp(0.0, last);
        let end = ((hi * n).ceil() - 1.0).clamp(first, last);
        // Both are whole numbers within 0..2^24, exact in u32.
        first as u32..=end as u32
    };
    (axis(area.x0, area.x1), axis(area.y0, area.y1))
}

fn range_len(r: &RangeInclusive<u32>) -> u64 {
    u64::from(r.end() - r.start()) + 1
}

fn parse_zoom_arg(text: &str) -> Result<(u8, u8), AdminError> {
    parse_zoom_range(text).map_err(|e| fail(format!("--zoom: {e}")))
}

/// `w,s,e,n` in degrees, with the same checks as the `bbox` query parameter.
fn parse_bbox_arg(text: &str) -> Result<WorldBox, AdminError> {
    let raw = form_urlencoded::Serializer::new(String::new())
        .append_pair("bbox", text)
        .finish();
    Query::parse(&raw, &[&["bbox"]])
        .and_then(|q| parse_bbox(&q))
        .map_err(|e| fail(format!("--bbox {text:?}: {}", api_message(&e.into()))))
}

/// An API error as one line for the terminal (the HTTP body's detail, without the JSON).
fn api_message(e: &ApiError) -> String {
    match e {
        ApiError::BadParam { param, detail } => format!("{param}: {detail}"),
        ApiError::UnknownLayer { name, known } => {
            format!("unknown layer {name:?}; layers: {}", known.join(", "))
        }
        ApiError::NotFound { detail }
        | ApiError::Internal { detail }
        | ApiError::Busy { detail } => detail.clone(),
        ApiError::Source(e) => e.to_string(),
        ApiError::MethodNotAllowed { .. } => e.to_string(),
    }
}

/// The signal that stopped the run (its name and exit status), once one arrives. Handlers are
/// installed before this returns, so no signal can slip past between set-up and the loop. A
/// second signal ends the process at once: every file on disk is whole at any instant.
fn watch_signals() -> std::io::Result<watch::Receiver<Option<(&'static str, u8)>>> {
    let (tx, rx) = watch::channel(None);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        async fn next(
            interrupt: &mut tokio::signal::unix::Signal,
            terminate: &mut tokio::signal::unix::Signal,
        ) -> (&'static str, u8) {
            tokio::select! {
                _ = interrupt.recv() => ("SIGINT", EXIT_SIGINT),
                _ = terminate.recv() => ("SIGTERM", EXIT_SIGTERM),
            }
        }
        actix_web::rt::spawn(async move {
            let first = next(&mut interrupt, &mut terminate).await;
            tx.send_replace(Some(first));
            eprintln!(
                "twine-heatmap: {}: finishing the tiles in flight (signal again to stop now)",
                first.0
            );
            let (_, code) = next(&mut interrupt, &mut terminate).await;
            std::process::exit(i32::from(code));
        });
    }
    #[cfg(not(unix))]
    actix_web::rt::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tx.send_replace(Some(("Ctrl-C", EXIT_SIGINT)));
        }
    });
    Ok(rx)
}

/// Opens an existing cache folder without evicting anything (the budget is the server's
/// business; an admin command must not shrink the cache).
fn open_existing(dir: &Path) -> Result<DiskCache, AdminError> {
    if !dir.is_dir() {
        return Err(fail(format!(
            "--cache-dir: {} is not a folder",
            dir.display()
        )));
    }
    DiskCache::open(dir, u64::MAX).map_err(|e| {
        fail(format!(
            "cannot open the cache folder {}: {e}",
            dir.display()
        ))
    })
}

/// What `cache purge` removes.
#[derive(Debug, Clone)]
pub struct PurgeFilter {
    pub layer: String,
    pub zooms: (u8, u8),
    pub area: Option<WorldBox>,
}

impl PurgeFilter {
    /// Parses the flags: `zoom` `A-B` (default all), `bbox` `w,s,e,n` (default everywhere).
    pub fn parse(
        layer: &str,
        zoom: Option<&str>,
        bbox: Option<&str>,
    ) -> Result<PurgeFilter, AdminError> {
        if !valid_layer_name(layer) {
            return Err(fail(format!(
                "--layer {layer:?}: a layer name is 1 to 64 ASCII letters, digits, '_' or '-'"
            )));
        }
        Ok(PurgeFilter {
            layer: layer.to_string(),
            zooms: zoom
                .map(parse_zoom_arg)
                .transpose()?
                .unwrap_or((0, MAX_ZOOM)),
            area: bbox.map(parse_bbox_arg).transpose()?,
        })
    }

    /// Every version, style and pixel ratio of the layer's tiles at those zooms and places.
    pub fn matches(&self, key: &TileKey) -> bool {
        *key.layer == *self.layer
            && (self.zooms.0..=self.zooms.1).contains(&key.z)
            && self.area.as_ref().map_or(true, |area| {
                let (xs, ys) = tile_range(area, key.z);
                xs.contains(&key.x) && ys.contains(&key.y)
            })
    }
}

/// `cache purge`: removes the matching tiles from the disk tier; returns (files, bytes).
pub fn purge(dir: &Path, filter: &PurgeFilter) -> Result<(u64, u64), AdminError> {
    let disk = open_existing(dir)?;
    let held = disk.stats().per_layer;
    let (files, bytes) = disk.purge(&|key| filter.matches(key));
    println!("removed {files} tiles ({bytes} bytes)");
    if !held.contains_key(&filter.layer) {
        let names: Vec<&str> = held.keys().map(String::as_str).collect();
        eprintln!(
            "twine-heatmap: note: the cache holds no tiles of layer {:?} (it holds: {})",
            filter.layer,
            if names.is_empty() {
                "nothing".to_string()
            } else {
                names.join(", ")
            }
        );
    }
    Ok((files, bytes))
}

/// A running server's cache counters, from its `/metrics`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ServerCache {
    pub memory_bytes: u64,
    pub memory_evictions: u64,
    pub disk_bytes: u64,
    pub hits_memory: u64,
    pub hits_disk: u64,
    pub misses: u64,
    pub rendered: u64,
}

impl ServerCache {
    /// Reads the counters from Prometheus text; absent ones are 0.
    pub fn from_metrics(text: &str) -> ServerCache {
        let value = |name: &str| {
            text.lines()
                .find_map(|line| {
                    let rest = line.strip_prefix(name)?;
                    rest.strip_prefix(' ')?.trim().parse::<f64>().ok()
                })
                .map_or(0, |v| v as u64)
        };
        ServerCache {
            memory_bytes: value("twine_cache_bytes{tier=\"memory\"}"),
            memory_evictions: value("twine_cache_evictions_total{tier=\"memory\"}"),
            disk_bytes: value("twine_cache_bytes{tier=\"disk\"}"),
            hits_memory: value("twine_cache_hits_total{tier=\"memory\"}"),
            hits_disk: value("twine_cache_hits_total{tier=\"disk\"}"),
            misses: value("twine_cache_misses_total"),
            rendered: value("twine_tiles_rendered_total"),
        }
    }
}

/// `cache stats`: the disk tier per layer against a budget, and with `server` that server's
/// memory tier and hit counters. The budget is `--cache-disk`; without it, the server's own
/// (from its `/health`) when it serves this folder; else the server default, 1GB.
pub fn stats(dir: &Path, budget: Option<&str>, server: Option<&str>) -> Result<(), AdminError> {
    let parse = |text| parse_size(text).map_err(|e| fail(format!("--cache-disk: {e}")));
    let budget = match budget {
        Some(text) => Budget {
            bytes: parse(text)?,
            source: "--cache-disk",
        },
        None => match server.and_then(|base| server_disk_budget(base, dir)) {
            Some(bytes) => Budget {
                bytes,
                source: "the server's",
            },
            None => Budget {
                bytes: parse(crate::cli::DEFAULT_CACHE_DISK)?,
                source: "the default; give --cache-disk",
            },
        },
    };
    let disk = open_existing(dir)?.stats();
    print!("{}", format_disk_stats(dir, &disk, &budget));
    if let Some(base) = server {
        let url = format!("{}/metrics", base.trim_end_matches('/'));
        let text = crate::cli::http_get(&url)
            .map_err(|e| fail(format!("--server: cannot read {url}: {e}")))?;
        print!(
            "{}",
            format_server_stats(base, &ServerCache::from_metrics(&text))
        );
    }
    Ok(())
}

/// A disk budget and where it came from, for the report.
struct Budget {
    bytes: u64,
    source: &'static str,
}

/// The disk budget of the server at `base`, if its disk tier is this folder (by its
/// `/health`); None when it cannot be read or the server caches elsewhere.
fn server_disk_budget(base: &str, dir: &Path) -> Option<u64> {
    let url = format!("{}/health", base.trim_end_matches('/'));
    let health: serde_json::Value = serde_json::from_str(&crate::cli::http_get(&url).ok()?).ok()?;
    let disk = &health["cache"]["disk"];
    let same_dir =
        std::fs::canonicalize(disk["dir"].as_str()?).ok()? == std::fs::canonicalize(dir).ok()?;
    same_dir.then(|| disk["budget"].as_u64()).flatten()
}

fn format_disk_stats(dir: &Path, disk: &DiskStats, budget: &Budget) -> String {
    let mut out = format!(
        "disk tier {}: {} tiles, {} bytes ({}) of a {} budget ({}; {:.1}% used)\n",
        dir.display(),
        disk.files,
        disk.bytes,
        human(disk.bytes),
        human(budget.bytes),
        budget.source,
        if budget.bytes == 0 {
            0.0
        } else {
            disk.bytes as f64 * 100.0 / budget.bytes as f64
        }
    );
    for (layer, (files, bytes)) in &disk.per_layer {
        out.push_str(&format!(
            "  layer {layer}: {files} tiles, {bytes} bytes ({})\n",
            human(*bytes)
        ));
    }
    if disk.bytes > budget.bytes {
        out.push_str("  over budget: a server with this budget evicts the oldest tiles when it opens the folder\n");
    }
    out
}

fn format_server_stats(base: &str, s: &ServerCache) -> String {
    format!(
        "memory tier ({base}): {} bytes ({}), {} evictions\n\
         server disk tier: {} bytes ({})\n\
         server hits: memory {}, disk {}; misses {}; tiles rendered {}\n",
        s.memory_bytes,
        human(s.memory_bytes),
        s.memory_evictions,
        s.disk_bytes,
        human(s.disk_bytes),
        s.hits_memory,
        s.hits_disk,
        s.misses,
        s.rendered
    )
}

/// `1234567` → `1.2 MB` (decimal units, like the size flags' default spelling).
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn degrees(w: f64, s: f64, e: f64, n: f64) -> WorldBox {
        WorldBox {
            x0: lon_to_world_x(w),
            y0: lat_to_world_y(n),
            x1: lon_to_world_x(e),
            y1: lat_to_world_y(s),
        }
    }

    #[test]
    fn tile_ranges_cover_the_overlapping_tiles_only() {
        let world = WorldBox {
            x0: 0.0,
            y0: 0.0,
            x1: 1.0,
            y1: 1.0,
        };
        assert_eq!(tile_range(&world, 0), (0..=0, 0..=0));
        assert_eq!(tile_range(&world, 3), (0..=7, 0..=7));
        // The east edge at 90° is a tile edge at zoom 3: the tile east of it only touches.
        let (xs, _) = tile_range(&degrees(0.0, 0.0, 90.0, 60.0), 3);
        assert_eq!(xs, 4..=5);
        let (xs, ys) = tile_range(&degrees(10.0, 10.0, 80.0, 50.0), 4);
        assert_eq!((xs, ys), (8..=11, 5..=7));
        // A point (a one-point layer) still gets its tile; boxes past the world are clamped.
        let point = degrees(13.4, 52.5, 13.4, 52.5);
        assert_eq!(tile_range(&point, 10).0, 550..=550);
        assert_eq!(tile_range(&world.expand(0.5, 0.5), 2), (0..=3, 0..=3));
    }

    #[test]
    fn purge_filters_match_layer_zoom_and_area() {
        let filter = PurgeFilter::parse("demo", Some("3-4"), Some("10,10,80,50")).expect("filter");
        let key = |layer: &str, z, x, y| TileKey {
            layer: layer.into(),
            version: 7,
            style: "s".into(),
            ratio: 2,
            z,
            x,
            y,
        };
        assert!(filter.matches(&key("demo", 3, 4, 2)));
        assert!(filter.matches(&key("demo", 4, 11, 7)));
        assert!(!filter.matches(&key("demo", 4, 12, 7)));
        assert!(!filter.matches(&key("demo", 2, 2, 1)));
        assert!(!filter.matches(&key("other", 3, 4, 2)));
        let everything = PurgeFilter::parse("demo", None, None).expect("filter");
        assert!(everything.matches(&key("demo", 24, 5, 5)));
        for (layer, zoom, bbox, what) in [
            ("demo", Some("9-2"), None, "--zoom"),
            ("demo", None, Some("1,2,3"), "--bbox"),
            ("demo", None, Some("10,0,-10,5"), "--bbox"),
            ("a/b", None, None, "--layer"),
        ] {
            match PurgeFilter::parse(layer, zoom, bbox) {
                Err(e) => assert!(e.to_string().starts_with(what), "{e}"),
                Ok(f) => panic!("{what}: accepted {f:?}"),
            }
        }
    }

    #[test]
    fn server_counters_come_from_prometheus_text() {
        let text = "# HELP twine_cache_bytes x\ntwine_cache_bytes{tier=\"memory\"} 42\n\
                    twine_cache_bytes{tier=\"disk\"} 7\n\
                    twine_cache_hits_total{tier=\"memory\"} 3\n\
                    twine_cache_misses_total 5\ntwine_tiles_rendered_total 6\n";
        let s = ServerCache::from_metrics(text);
        assert_eq!(
            s,
            ServerCache {
                memory_bytes: 42,
                disk_bytes: 7,
                hits_memory: 3,
                misses: 5,
                rendered: 6,
                ..ServerCache::default()
            }
        );
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human(999), "999 B");
        assert_eq!(human(1_234_567), "1.2 MB");
        assert_eq!(human(1_000_000_000), "1.0 GB");
    }
}
