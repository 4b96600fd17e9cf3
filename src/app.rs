//! Application assembly: how flags, environment and the config file combine into the
//! server's state (layers from files and the database, the cache tiers, HTTP settings).

use crate::cache::disk::DiskCache;
use crate::cache::memory::MemoryCache;
use crate::cache::TileCache;
use crate::config::{parse_size, parse_zoom_range, CacheConfig, Config, LayerConfig};
use crate::http::{AppState, CacheControlBand};
use crate::layer::{valid_layer_name, Layer};
use crate::layer::{Registry, DEFAULT_AGGREGATE_ABOVE};
use crate::metrics::Metrics;
use crate::source::attributes::AttributeSchema;
use crate::source::filter::{FilterDef, Op};
use crate::source::load::{
    demo_points, load_points_file_with, storms_points, WeightMode, DEMO_ATTRIBUTION,
    STORMS_ATTRIBUTION,
};
use crate::source::memory::MemoryStore;
use crate::source::postgis::attributes::AttributeColumns;
use crate::source::postgis::layer::TableLayout;
use crate::source::postgis::watch::Database;
use crate::source::postgis::{DbError, Ident, PoolSettings, TableName};
use actix_web::http::header::HeaderValue;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// `serve`'s disk budget when none is given (also what `cache stats` assumes).
pub const DEFAULT_CACHE_DISK: &str = "1GB";

/// What the server is built from: `serve`'s flags, which `seed` shares. Defined here, not
/// with the command line, so that assembling the state needs nothing from the CLI.
#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML configuration file (see config/example.toml).
    #[arg(long, env = "TWINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "TWINE_BIND")]
    pub bind: Option<String>,
    /// Add a layer from a points file (CSV, GeoJSON, or JSON [[lat, lon(, w)]]), named after
    /// the file name up to its first dot. Repeatable.
    #[arg(long = "points", value_name = "FILE")]
    pub points: Vec<PathBuf>,
    /// Zoom at which the web map hands off to client-side Leaflet.heat [default: 8].
    #[arg(long, env = "TWINE_HANDOFF_ZOOM")]
    pub handoff_zoom: Option<u8>,
    /// PostgreSQL URL: serve the layers `import` created and the config's table layers.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Folder of the disk cache tier [default: none, no disk tier].
    #[arg(long, env = "TWINE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Memory cache budget, e.g. 256MB; 0 turns the tier off [default: 256MB].
    #[arg(long, env = "TWINE_CACHE_MEMORY")]
    pub cache_memory: Option<String>,
    /// Disk cache budget, e.g. 1GB; 0 turns the tier off [default: 1GB].
    #[arg(long, env = "TWINE_CACHE_DISK")]
    pub cache_disk: Option<String>,
    /// Base URL for links in TileJSON and /layers [default: from the request].
    #[arg(long, env = "TWINE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Origin that pages may fetch from with CORS: `*` (any), one origin such as
    /// https://maps.example.org, or "" for no CORS headers [default: *].
    #[arg(long, env = "TWINE_CORS_ALLOW_ORIGIN", value_name = "ORIGIN")]
    pub cors_allow_origin: Option<String>,
}

/// A start-up failure, printed as one line naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Load(#[from] crate::source::load::LoadError),
    #[error("{0}")]
    Invalid(String),
    /// The cache folder is locked by another server or seed (the message names both).
    #[error("{0}")]
    CacheFolderInUse(String),
    #[error("cannot listen on {bind}: {source}")]
    Bind {
        bind: String,
        source: std::io::Error,
    },
}

/// A configured `Cache-Control` value, checked once at start-up: a value that is not a valid
/// header (a control character, say) would otherwise fail every tile response.
fn cache_control_value(key: &str, value: &str) -> Result<HeaderValue, StartError> {
    HeaderValue::from_str(value.trim()).map_err(|_| {
        StartError::Invalid(format!(
            "{key} {value:?}: not a valid Cache-Control header value (no control characters)"
        ))
    })
}

/// The configured CORS origin, checked once at start-up: `*`, or one origin
/// (`http(s)://host[:port]`, no path: browsers compare it with the page's origin
/// character for character); empty means no CORS headers.
fn allow_origin_value(value: &str) -> Result<Option<HeaderValue>, StartError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let host = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    let is_origin = host.is_some_and(|h| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b',')
    });
    if value != "*" && !is_origin {
        return Err(StartError::Invalid(format!(
            "cors_allow_origin {value:?}: expected *, one origin such as https://maps.example.org (scheme and host, no path), or \"\" for none"
        )));
    }
    HeaderValue::from_str(value).map(Some).map_err(|_| {
        StartError::Invalid(format!(
            "cors_allow_origin {value:?}: not a valid header value"
        ))
    })
}

/// What every command that reads layers needs, whatever it outputs: the layers, the
/// database they may live in, the cache tiers and the metrics. Nothing of HTTP.
pub struct Core {
    pub layers: Registry,
    pub database: Option<Arc<Database>>,
    pub cache: Arc<TileCache>,
    pub metrics: Arc<Metrics>,
}

impl Core {
    /// Starts the background tasks the layers need (the database watcher, which finds the
    /// imported layers and follows data versions). Call inside the runtime that will serve.
    pub fn start_background(&self) {
        start_background(self.database.as_ref(), &self.layers);
    }

    /// The tile service over this cache.
    pub fn tiles(&self) -> crate::service::TileService<'_> {
        crate::service::TileService::new(&self.cache, &self.metrics)
    }
}

/// Starts the database watcher of `layers`, when they come from a database.
pub fn start_background(database: Option<&Arc<Database>>, layers: &Registry) {
    if let Some(db) = database {
        crate::source::postgis::watch::spawn(db.clone(), layers.clone());
    }
}

/// The config file `--config` names, or the defaults.
pub fn load_config(args: &ServeArgs) -> Result<Config, StartError> {
    Ok(match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    })
}

/// Builds the server's state from flags, environment and config. No connection is made:
/// the database watcher ([`start_background`]) reaches it later.
pub fn build_state(args: &ServeArgs) -> Result<(AppState, String), StartError> {
    let config = load_config(args)?;
    let core = build_core(args, &config)?;
    let handoff_zoom = args.handoff_zoom.or(config.handoff_zoom).unwrap_or(8);
    if handoff_zoom > crate::tile::MAX_ZOOM {
        return Err(StartError::Invalid(format!(
            "--handoff-zoom {handoff_zoom}: allowed 0..={}",
            crate::tile::MAX_ZOOM
        )));
    }
    let mut state = AppState::new(core.layers);
    state.metrics = core.metrics;
    state.cache = core.cache;
    state.database = core.database;
    for band in &config.cache.control {
        let (min_zoom, max_zoom) = parse_zoom_range(&band.zooms)
            .map_err(|e| StartError::Invalid(format!("cache.control zooms: {e}")))?;
        state.cache_control_bands.push(CacheControlBand {
            min_zoom,
            max_zoom,
            value: cache_control_value("cache.control value", &band.value)?,
        });
    }
    state.handoff_zoom = handoff_zoom;
    state.points_limit_max = config.points.max_limit.unwrap_or(state.points_limit_max);
    state.points_limit_default = config
        .points
        .default_limit
        .unwrap_or(state.points_limit_default)
        .min(state.points_limit_max);
    state.points_budget = Arc::new(crate::http::budget::PointsBudget::new(
        config
            .points
            .concurrent
            .unwrap_or_else(crate::http::budget::default_points_concurrency),
        config
            .points
            .wait_ms
            .map_or(crate::http::budget::DEFAULT_WAIT, Duration::from_millis),
    ));
    state.public_url = args.public_url.clone().or(config.public_url);
    state.poc_layer = config.poc_layer;
    if let Some(value) = config.tile_cache_control {
        state.tile_cache_control = cache_control_value("tile_cache_control", &value)?;
    }
    if let Some(value) = args.cors_allow_origin.clone().or(config.cors_allow_origin) {
        state.allow_origin = allow_origin_value(&value)?;
    }
    let bind = args
        .bind
        .clone()
        .or(config.bind)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    Ok((state, bind))
}

/// The layers (from files, the demo, and the database the config or flags name), the cache
/// tiers and the metrics, from flags (first) and config. No connection is made.
pub fn build_core(args: &ServeArgs, config: &Config) -> Result<Core, StartError> {
    let layers = Registry::default();
    let aggregate_above = config.aggregate_above.unwrap_or(DEFAULT_AGGREGATE_ABOVE);
    let database_url = args.database_url.clone().or(config.database_url.clone());
    let metrics = Arc::new(Metrics::default());
    let database = match &database_url {
        Some(url) => Some(Arc::new(open_database(url, config, metrics.clone())?)),
        None => None,
    };
    for layer in &config.layers {
        // Config::parse has checked that each layer has a file or a table, not both.
        match (&layer.file, &layer.table) {
            (Some(file), _) => add_file_layer(
                &layers,
                &layer.name,
                file,
                layer.weighted.unwrap_or(true),
                layer.attribution.clone(),
                aggregate_above,
                &AttributeSchema {
                    time: layer.time.clone(),
                    categories: layer.categories.clone(),
                    time_bucket: layer
                        .time_bucket
                        .as_deref()
                        .and_then(crate::source::attributes::TimeBucket::parse),
                },
            )?,
            (None, Some(table)) => {
                let db = database.as_ref().ok_or_else(|| StartError::Invalid(format!(
                    "layer {:?} reads table {table:?}: give --database-url (or database_url, or DATABASE_URL)",
                    layer.name
                )))?;
                db.declare(&layers, &layer.name, table_layout(layer, table)?)
                    .map_err(StartError::Invalid)?
            }
            (None, None) => {
                return Err(StartError::Invalid(format!(
                    "layer {:?}: no file or table",
                    layer.name
                )))
            }
        }
    }
    for path in &args.points {
        add_file_layer(
            &layers,
            &layer_name_from_path(path)?,
            path,
            true,
            None,
            aggregate_above,
            &AttributeSchema::default(),
        )?;
    }
    // The demo layer when nothing else is served (a database may add layers later).
    if (layers.is_empty() && database.is_none()) || config.demo == Some(true) {
        let store = MemoryStore::new(demo_points()?, Some(DEMO_ATTRIBUTION.to_string()));
        insert_memory_layer(&layers, "demo", store, aggregate_above)?;
        // The time demo: storm tracks with their times and categories. A configured layer
        // of that name (from before the demo had it) keeps it.
        if !layers.contains("storms") {
            let (points, attributes) = storms_points()?;
            let attribution = Some(STORMS_ATTRIBUTION.to_string());
            let store = MemoryStore::with_attributes(points, attributes, attribution);
            insert_memory_layer(&layers, "storms", store, aggregate_above)?;
        }
    }
    Ok(Core {
        layers,
        database,
        cache: Arc::new(open_cache(args, &config.cache)?),
        metrics,
    })
}

/// Checks the tables the config declares, when the database answers: a table that cannot be
/// drawn (missing, not points, a missing column, a weight that is not a number...) stops
/// start-up with a message naming the layer, table, column and problem. A database that does
/// not answer does not stop it: the watcher checks the tables once it does, and `/health`
/// names any problem then.
pub async fn check_declared_tables(state: &AppState) -> Result<(), StartError> {
    let Some(db) = &state.database else {
        return Ok(());
    };
    match db.check_declared().await {
        Ok(problems) if problems.is_empty() => Ok(()),
        Ok(problems) => Err(StartError::Invalid(format!(
            "the config declares layers that cannot be drawn (fix the config or the tables): {}",
            problems.join("; ")
        ))),
        Err(e) => {
            tracing::warn!(error = %e, "database not reachable at start-up: the declared tables are checked once it answers");
            Ok(())
        }
    }
}

/// The cache tiers from flags (first) and config. A disk tier needs a folder.
pub fn open_cache(args: &ServeArgs, config: &CacheConfig) -> Result<TileCache, StartError> {
    let size = |flag: &Option<String>, file: &Option<String>, default: &str, what: &str| {
        let text = flag
            .clone()
            .or(file.clone())
            .unwrap_or_else(|| default.to_string());
        parse_size(&text).map_err(|e| StartError::Invalid(format!("{what}: {e}")))
    };
    let memory_budget = size(
        &args.cache_memory,
        &config.memory,
        "256MB",
        "--cache-memory",
    )?;
    let disk_budget = size(
        &args.cache_disk,
        &config.disk,
        DEFAULT_CACHE_DISK,
        "--cache-disk",
    )?;
    let memory = (memory_budget > 0).then(|| MemoryCache::new(memory_budget));
    let disk = match args.cache_dir.clone().or(config.dir.clone()) {
        Some(dir) if disk_budget > 0 => {
            let cache = DiskCache::open(&dir, disk_budget).map_err(|e| {
                // A folder held by another server: its message names the folder and holder.
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    return StartError::CacheFolderInUse(e.to_string());
                }
                StartError::Invalid(format!(
                    "cannot open the cache folder {}: {e}",
                    dir.display()
                ))
            })?;
            Some(Arc::new(cache))
        }
        _ => None,
    };
    Ok(TileCache::new(memory, disk))
}

fn open_database(
    url: &str,
    config: &Config,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<Database, StartError> {
    let defaults = PoolSettings::default();
    let db = &config.database;
    let settings = PoolSettings {
        max_size: db.pool_size.unwrap_or(defaults.max_size).max(1),
        wait: db.pool_wait_ms.map_or(defaults.wait, Duration::from_millis),
        statement_timeout: db
            .statement_timeout_ms
            .map_or(defaults.statement_timeout, Duration::from_millis),
    };
    let pool = crate::source::postgis::pool(url, settings)
        .map_err(|e| StartError::Invalid(e.to_string()))?;
    Ok(Database::new(
        pool,
        config.aggregate_above.unwrap_or(DEFAULT_AGGREGATE_ABOVE),
        metrics,
    ))
}

/// A config layer over an existing table; every name is checked as an identifier (`serve`
/// and `pyramid` read the same declaration).
pub fn table_layout(layer: &LayerConfig, table: &str) -> Result<TableLayout, StartError> {
    let invalid = |e: DbError| StartError::Invalid(format!("layer {:?}: {e}", layer.name));
    let ident = |name: &str| Ident::new(name).map_err(invalid);
    let mut filters = Vec::new();
    for f in &layer.filters {
        filters.push(FilterDef {
            param: f.param.clone(),
            column: ident(&f.column)?,
            op: Op::parse(&f.op).ok_or_else(|| {
                StartError::Invalid(format!("layer {:?}: bad op {:?}", layer.name, f.op))
            })?,
            ty: None,
        });
    }
    Ok(TableLayout {
        table: TableName::parse(table).map_err(invalid)?,
        geometry: ident(layer.geometry.as_deref().unwrap_or("geom"))?,
        weight: layer.weight.as_deref().map(ident).transpose()?,
        seq: layer.seq.as_deref().map(ident).transpose()?,
        filters: filters.into(),
        attribution: layer.attribution.clone(),
        attributes: AttributeColumns::new(
            layer.time.as_deref(),
            &layer.categories,
            layer
                .time_bucket
                .as_deref()
                .and_then(crate::source::attributes::TimeBucket::parse),
        )
        .map_err(invalid)?,
    })
}

fn add_file_layer(
    layers: &Registry,
    name: &str,
    file: &Path,
    weighted: bool,
    attribution: Option<String>,
    aggregate_above: u64,
    schema: &AttributeSchema,
) -> Result<(), StartError> {
    let mode = if weighted {
        WeightMode::FromData
    } else {
        WeightMode::Unweighted
    };
    // Files of a few million points take seconds to parse: say so on a terminal. The bin
    // pyramid that follows has a bar of its own.
    let large = std::fs::metadata(file).is_ok_and(|m| m.len() >= LARGE_FILE_BYTES);
    let spinner = if large {
        crate::progress::spinner(&format!("loading {}", file.display()))
    } else {
        indicatif::ProgressBar::hidden()
    };
    let loaded = load_points_file_with(file, mode, schema);
    spinner.finish_and_clear();
    let (points, attributes) = match loaded {
        Ok(loaded) => loaded,
        // The message names the file, line and column; with declared columns, the layer too.
        Err(e) if !schema.is_empty() => {
            return Err(StartError::Invalid(format!("layer {name:?}: {e}")))
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(layer = %name, file = %file.display(), points = points.len(), "loaded");
    insert_memory_layer(
        layers,
        name,
        MemoryStore::with_attributes(points, attributes, attribution),
        aggregate_above,
    )
}

/// Files from this size up show a spinner while they load (about a million points of CSV).
const LARGE_FILE_BYTES: u64 = 32 << 20;

/// Serves `store` as layer `name` (a file layer or the demo layer).
fn insert_memory_layer(
    layers: &Registry,
    name: &str,
    store: MemoryStore,
    aggregate_above: u64,
) -> Result<(), StartError> {
    let store = store.with_pyramid(aggregate_above);
    layers
        .insert(Layer::new(name, Arc::new(store)).with_aggregate_above(aggregate_above))
        .map_err(StartError::Invalid)
}

/// `data/quakes.csv.gz` is layer `quakes`.
fn layer_name_from_path(path: &Path) -> Result<String, StartError> {
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default();
    let name = file.split('.').next().unwrap_or_default().to_string();
    if valid_layer_name(&name) {
        Ok(name)
    } else {
        Err(StartError::Invalid(format!(
            "{}: the layer name {name:?} taken from the file name must be 1 to 64 ASCII letters, digits, '_' or '-'; rename the file",
            path.display()
        )))
    }
}
