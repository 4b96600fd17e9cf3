//! The command line: `serve` and `healthcheck`, and how flags, environment and the config
//! file combine into the server's state.

use crate::config::{Config, LayerConfig};
use crate::http::{self, AppState};
use crate::layer::{valid_layer_name, Layer, Layers};
use crate::source::load::{demo_points, load_points_file, WeightMode};
use crate::source::memory::MemoryStore;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "twine-heatmap",
    version,
    about = "Heatmap tile server: seamless heatmap PNG tiles from points"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve tiles, overlays and points over HTTP (the bundled demo layer when no layer is given).
    Serve(ServeArgs),
    /// Load points files into PostGIS as layer NAME (created with a GiST index if missing).
    Import(crate::source::postgis::import::ImportArgs),
    /// Exit 0 when the server at --url answers /health with 200 (for container health checks).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080/health")]
        url: String,
    },
}

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
    /// Base URL for links in TileJSON and /layers [default: from the request].
    #[arg(long, env = "TWINE_PUBLIC_URL")]
    pub public_url: Option<String>,
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
    #[error("cannot listen on {bind}: {source}")]
    Bind {
        bind: String,
        source: std::io::Error,
    },
}

/// Builds the server's state from flags, environment and config (no network yet).
pub fn build_state(args: &ServeArgs) -> Result<(AppState, String), StartError> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let mut layers = Layers::default();
    for layer in &config.layers {
        add_file_layer(&mut layers, layer)?;
    }
    for path in &args.points {
        let name = layer_name_from_path(path)?;
        add_file_layer(
            &mut layers,
            &LayerConfig {
                name,
                file: path.clone(),
                attribution: None,
                weighted: Some(true),
            },
        )?;
    }
    if layers.is_empty() || config.demo == Some(true) {
        let store = MemoryStore::new(
            demo_points()?,
            Some(http::meta::DEMO_ATTRIBUTION.to_string()),
        );
        layers
            .insert(Layer::new("demo", Arc::new(store)))
            .map_err(StartError::Invalid)?;
    }
    let handoff_zoom = args.handoff_zoom.or(config.handoff_zoom).unwrap_or(8);
    if handoff_zoom > crate::tile::MAX_ZOOM {
        return Err(StartError::Invalid(format!(
            "--handoff-zoom {handoff_zoom}: allowed 0..={}",
            crate::tile::MAX_ZOOM
        )));
    }
    let mut state = AppState::new(layers);
    state.handoff_zoom = handoff_zoom;
    state.points_limit_max = config.points.max_limit.unwrap_or(state.points_limit_max);
    state.points_limit_default = config
        .points
        .default_limit
        .unwrap_or(state.points_limit_default)
        .min(state.points_limit_max);
    state.public_url = args.public_url.clone().or(config.public_url);
    if let Some(value) = config.tile_cache_control {
        state.tile_cache_control = value;
    }
    let bind = args
        .bind
        .clone()
        .or(config.bind)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    Ok((state, bind))
}

fn add_file_layer(layers: &mut Layers, layer: &LayerConfig) -> Result<(), StartError> {
    let mode = if layer.weighted.unwrap_or(true) {
        WeightMode::FromData
    } else {
        WeightMode::Unweighted
    };
    let points = load_points_file(&layer.file, mode)?;
    tracing::info!(layer = %layer.name, file = %layer.file.display(), points = points.len(), "loaded");
    let store = MemoryStore::new(points, layer.attribution.clone());
    layers
        .insert(Layer::new(layer.name.clone(), Arc::new(store)))
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

/// Runs `serve` until SIGINT or SIGTERM.
pub async fn serve(args: ServeArgs) -> Result<(), StartError> {
    let (state, bind) = build_state(&args)?;
    http::serve(state, &bind)
        .await
        .map_err(|source| StartError::Bind { bind, source })
}

/// A minimal HTTP/1.0 GET with the standard library, so the container needs no curl.
pub fn healthcheck(url: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let timeout = std::time::Duration::from_secs(3);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host)
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{host}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let status = response.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("unhealthy: {status}"))
    }
}
