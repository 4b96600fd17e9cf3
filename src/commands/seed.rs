//! `seed`: renders tiles ahead of time into the disk tier.
//!
//! Seeding builds the layers exactly as `serve` does and asks the same [`TileService`] the tile
//! route uses for each tile (into the disk tier only), so every seeded tile is keyed as the
//! server keys it: a `hit-disk` for an equal request.
//! It is safe to stop at any moment: each tile file is published by an atomic rename and
//! leftover temp files are removed the next time the cache is opened, so a killed seed leaves
//! only whole tiles, and re-running the same command resumes where it stopped.

use super::area::{parse_bbox_arg, parse_zoom_arg, range_len, tile_range};
use super::signals::watch_signals;
use super::{fail, human, CommandError};
use crate::app::{build_core, load_config, Core, ServeArgs, StartError};
use crate::cache::TileCache;
use crate::layer::Layer;
use crate::metrics::Metrics;
use crate::progress::{grouped, per_second};
use crate::service::{TileRequest, TileService};
use crate::source::FilterValues;
use crate::style::{parse_filters, parse_with_filters, StyleError};
use crate::style::{StyleSpec, STYLE_PARAMS};
use crate::tile::{lat_to_world_y, lon_to_world_x, TileCoord, WorldBox};
use indicatif::ProgressBar;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// `seed`: the serve flags that build layers and the disk tier, plus what to render. The
/// serve flags that only matter to a listening server are hidden (by their field names).
#[derive(clap::Args, Debug)]
#[command(
    mut_arg("bind", |a| a.hide(true)),
    mut_arg("handoff_zoom", |a| a.hide(true)),
    mut_arg("public_url", |a| a.hide(true)),
    mut_arg("cache_memory", |a| a.hide(true)),
    mut_arg("cache_dir", |a| a.help("Folder of the disk cache to fill (required here, or cache.dir in the config)"))
)]
pub struct SeedArgs {
    /// Layer to seed (see /layers).
    #[arg(long, value_name = "NAME")]
    pub layer: String,
    /// Zooms to seed, e.g. 0-6, or one zoom.
    #[arg(long, value_name = "A-B")]
    pub zoom: String,
    /// Only tiles overlapping west,south,east,north in degrees [default: the layer's bounds,
    /// grown by the style's reach].
    #[arg(long, value_name = "W,S,E,N", allow_hyphen_values = true)]
    pub bbox: Option<String>,
    /// Style and filter parameters as in a tile URL's query string, e.g.
    /// 'style=dots&scheme=fire' [default: the default style].
    #[arg(long, value_name = "QUERY")]
    pub style: Option<String>,
    /// Seed the @2x (512-pixel) tiles instead of the 256-pixel ones.
    #[arg(long)]
    pub retina: bool,
    /// Tiles rendered at once [default: the number of CPUs].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=MAX_CONCURRENCY as i64))]
    pub concurrency: Option<u16>,
    /// Render at most this many tiles per second (e.g. 50, or 0.5), to leave a shared
    /// machine's CPU and disk to others; tiles already on disk are skipped at full speed
    /// [default: no limit].
    #[arg(long, value_name = "TILES_PER_SEC", value_parser = parse_max_rate)]
    pub max_rate: Option<f64>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Runs `seed` in an actix system, as `serve` runs (rendering uses its blocking pool).
pub fn run(mut args: SeedArgs) -> Result<(), CommandError> {
    // Seeding writes to disk only: a memory tier would just hold a second copy.
    args.serve.cache_memory = Some("0".into());
    let options = SeedOptions {
        layer: args.layer,
        zoom: args.zoom,
        bbox: args.bbox,
        style: args.style.unwrap_or_default(),
        retina: args.retina,
        concurrency: args.concurrency.map(usize::from),
        max_rate: args.max_rate,
    };
    actix_web::rt::System::new().block_on(seed(&options, &args.serve))
}

/// Most tiles rendered at once; more only adds memory (rendering is CPU-bound).
pub const MAX_CONCURRENCY: usize = 1024;

/// How long `seed` waits for the database watcher's first look at the database.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// Most tiles rendered per second; None = no limit.
    pub max_rate: Option<f64>,
}

/// Slowest `--max-rate`: one tile a day. Below it the spacing between tiles would not fit
/// a timer, and such a seed would never end anyway.
const MIN_RATE: f64 = 1.0 / 86_400.0;

/// `--max-rate`: a positive number of tiles per second.
fn parse_max_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of tiles per second, e.g. 50 or 0.5"))?;
    if !rate.is_finite() || rate < MIN_RATE {
        return Err(format!(
            "{text:?}: allowed a number of tiles per second from {MIN_RATE:e} (one a day) up"
        ));
    }
    Ok(rate)
}

/// Spaces renders at least `1 / rate` seconds apart (`--max-rate`): each render takes the
/// next free slot and waits for it, so however many tasks run at once, no more than `rate`
/// tiles start per second.
struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    fn new(rate: f64) -> Pacer {
        Pacer {
            interval: Duration::from_secs_f64(1.0 / rate),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this render's slot.
    async fn wait(&self) {
        let slot = {
            // Only whole-value writes happen under the lock, so a poisoned one is still valid.
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        actix_web::rt::time::sleep_until(slot.into()).await;
    }
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
    cache: Arc<TileCache>,
    tally: Arc<Tally>,
    progress: ProgressBar,
    /// `--max-rate`, when given.
    pacer: Option<Pacer>,
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
        let request = TileRequest::new(
            self.layer.clone(),
            coord,
            self.ratio,
            self.spec.clone(),
            self.filters.clone(),
        );
        let service = TileService::new(&self.cache, &self.metrics);
        // The service checks a file's checksum, so a damaged one is rendered again.
        let pace = || async {
            if let Some(pacer) = &self.pacer {
                pacer.wait().await;
            }
        };
        let written = service
            .fill_disk(&request, pace)
            .await
            .map_err(|e| e.to_string())?;
        Ok(written.map(|answer| answer.tile.png.len() as u64))
    }
}

/// `seed`: renders every tile of the zooms within the area into the disk tier, skipping
/// tiles already there. Call inside an actix `System` (rendering uses its blocking pool).
pub async fn seed(options: &SeedOptions, serve: &ServeArgs) -> Result<(), CommandError> {
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
    let config = load_config(serve).map_err(fail)?;
    let core = build_core(serve, &config).map_err(|e| match e {
        // A running server would not see the seeded tiles until it restarts, nor count
        // them against its budget: seed first, then start it.
        StartError::CacheFolderInUse(why) => fail(format!(
            "{why}; seed before starting the server (it reads the folder at start-up)"
        )),
        other => fail(other.to_string()),
    })?;
    let disk = core.cache.disk.clone().ok_or_else(|| {
        fail("seed writes to the disk cache: give --cache-dir DIR (or cache.dir in the config) and a --cache-disk budget above 0")
    })?;
    core.start_background();
    let layer = find_layer(&core, &options.layer).await?;
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
        metrics: core.metrics.clone(),
        cache: core.cache.clone(),
        tally: tally.clone(),
        progress: progress.clone(),
        pacer: options.max_rate.map(Pacer::new),
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
        return Err(CommandError::Interrupted {
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
async fn find_layer(core: &Core, name: &str) -> Result<Arc<Layer>, CommandError> {
    if let Some(db) = &core.database {
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
    core.layers.get(name).ok_or_else(|| {
        fail(format!(
            "--layer: unknown layer {name:?}; layers: {}",
            core.layers.names().join(", ")
        ))
    })
}

/// Parses `--style` exactly as a tile request's query string, so the canonical form (and so
/// the key) is the one the server computes for any equal request.
fn parse_style(layer: &Layer, style: &str) -> Result<(StyleSpec, FilterValues), CommandError> {
    let bad = |e: StyleError| fail(format!("--style: {e}"));
    // What the tile route does with a request's query string, step for step.
    let defs = layer.source.filters();
    let query = parse_with_filters(
        style.trim_start_matches('?'),
        &[STYLE_PARAMS],
        &defs,
        layer.source.attribute_schema(),
    )
    .map_err(bad)?;
    let spec = StyleSpec::from_query(&query).map_err(bad)?;
    let filters = parse_filters(&defs, layer.source.attribute_schema(), &query).map_err(bad)?;
    Ok((spec, filters))
}

/// The layer's bounds grown by how far the style reaches at zoom `z`: tiles just outside the
/// points still show their blur.
async fn default_area(
    layer: &Layer,
    spec: &StyleSpec,
    z: u8,
    ratio: u32,
) -> Result<WorldBox, CommandError> {
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
