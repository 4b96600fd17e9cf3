//! `cache purge` (remove tiles by layer, zoom and area) and `cache stats` (usage per tier
//! and layer): offline administration of the disk tier.

use super::area::{parse_bbox_arg, parse_zoom_arg, tile_range};
use super::healthcheck::http_get;
use super::{fail, human, CommandError};
use crate::app::DEFAULT_CACHE_DISK;
use crate::cache::disk::{DiskCache, DiskStats};
use crate::cache::key::TileKey;
use crate::config::parse_size;
use crate::layer::valid_layer_name;
use crate::tile::{WorldBox, MAX_ZOOM};
use clap::Subcommand;
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// Remove a layer's tiles from the disk tier, optionally only some zooms and an area.
    ///
    /// Every style, pixel ratio and data version of the matching tiles goes. A running
    /// server's memory tier keeps purged tiles until they age out or the layer's data version
    /// changes; restart it to drop them at once.
    Purge(PurgeArgs),
    /// Print the cache's usage per tier and layer (the memory tier from a running server).
    Stats(StatsArgs),
}

#[derive(clap::Args, Debug)]
pub struct PurgeArgs {
    /// Folder of the disk cache.
    #[arg(long, env = "TWINE_CACHE_DIR")]
    pub cache_dir: PathBuf,
    /// Layer whose tiles to remove.
    #[arg(long, value_name = "NAME")]
    pub layer: String,
    /// Only tiles overlapping west,south,east,north in degrees [default: everywhere].
    #[arg(long, value_name = "W,S,E,N", allow_hyphen_values = true)]
    pub bbox: Option<String>,
    /// Only these zooms, e.g. 8-12, or one zoom [default: all].
    #[arg(long, value_name = "A-B")]
    pub zoom: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// Folder of the disk cache.
    #[arg(long, env = "TWINE_CACHE_DIR")]
    pub cache_dir: PathBuf,
    /// The server's disk budget, to show usage against [default: with --server, that
    /// server's own when it serves this folder; else 1GB].
    #[arg(long, env = "TWINE_CACHE_DISK")]
    pub cache_disk: Option<String>,
    /// Also read a running server's /metrics for its memory tier and hit counters, e.g.
    /// http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

/// Runs `cache purge` or `cache stats`.
pub fn run(command: CacheCommand) -> Result<(), CommandError> {
    match command {
        CacheCommand::Purge(args) => {
            let filter =
                PurgeFilter::parse(&args.layer, args.zoom.as_deref(), args.bbox.as_deref())?;
            purge(&args.cache_dir, &filter).map(|_| ())
        }
        CacheCommand::Stats(args) => stats(
            &args.cache_dir,
            args.cache_disk.as_deref(),
            args.server.as_deref(),
        ),
    }
}

/// Opens an existing cache folder without evicting anything (the budget is the server's
/// business; an admin command must not shrink the cache), and without its lock: stats and
/// purges work beside a running server (a purge only removes tiles, which the server then
/// finds gone), and delete no temp file, which may be that server's write in flight.
fn open_existing(dir: &Path) -> Result<DiskCache, CommandError> {
    if !dir.is_dir() {
        return Err(fail(format!(
            "--cache-dir: {} is not a folder",
            dir.display()
        )));
    }
    DiskCache::open_unlocked(dir).map_err(|e| {
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
    ) -> Result<PurgeFilter, CommandError> {
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
pub fn purge(dir: &Path, filter: &PurgeFilter) -> Result<(u64, u64), CommandError> {
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
pub fn stats(dir: &Path, budget: Option<&str>, server: Option<&str>) -> Result<(), CommandError> {
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
                bytes: parse(DEFAULT_CACHE_DISK)?,
                source: "the default; give --cache-disk",
            },
        },
    };
    let disk = open_existing(dir)?.stats();
    print!("{}", format_disk_stats(dir, &disk, &budget));
    if let Some(base) = server {
        let url = format!("{}/metrics", base.trim_end_matches('/'));
        let text = http_get(&url).map_err(|e| fail(format!("--server: cannot read {url}: {e}")))?;
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
    let health: serde_json::Value = serde_json::from_str(&http_get(&url).ok()?).ok()?;
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
    out.push_str(&format!(
        "  folders, layer names and lock: {} bytes ({})\n",
        disk.folder_bytes,
        human(disk.folder_bytes)
    ));
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
