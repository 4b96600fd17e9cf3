//! The configuration file (TOML): server settings and layers. Unknown keys are refused by
//! name; command-line flags and environment variables override the file.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The whole file. Every field is optional; defaults are documented in `config/example.toml`.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub bind: Option<String>,
    /// Base URL for links in TileJSON and `/layers` (behind a proxy); default: from the request.
    pub public_url: Option<String>,
    pub handoff_zoom: Option<u8>,
    pub tile_cache_control: Option<String>,
    /// `Access-Control-Allow-Origin` of every response: `*`, one origin, or "" for none
    /// (flag --cors-allow-origin, env TWINE_CORS_ALLOW_ORIGIN; default `*`).
    pub cors_allow_origin: Option<String>,
    /// Zooms whose densest tile holds more points are rendered from one-pixel bins,
    /// aggregated where the points are (in SQL for PostGIS); default 10000 for every source
    /// (see docs/aggregation.md).
    pub aggregate_above: Option<u64>,
    /// The layer `/twine.heatmap` (the proof of concept's route) serves when a request names
    /// none; default: the only layer.
    pub poc_layer: Option<String>,
    /// Serve the bundled demo layer even when other layers are configured.
    pub demo: Option<bool>,
    /// PostgreSQL URL (flag --database-url, env DATABASE_URL).
    pub database_url: Option<String>,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub points: PointsConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub layers: Vec<LayerConfig>,
}

/// Limits of the raw-points endpoints.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PointsConfig {
    pub default_limit: Option<u32>,
    pub max_limit: Option<u32>,
    /// Answers made at once (default: half the cores, at least 1); others wait for room.
    pub concurrent: Option<u32>,
    /// How long a request waits for room before a 503 with `Retry-After` (default 10000 ms).
    pub wait_ms: Option<u64>,
}

/// A layer: from a points file into memory, or over an existing PostGIS table.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LayerConfig {
    pub name: String,
    /// A points file (CSV, GeoJSON, seed JSON) loaded into memory.
    pub file: Option<PathBuf>,
    /// `schema.table` in the database (needs `database_url`); any SRID.
    pub table: Option<String>,
    /// Geometry column of points (default `geom`).
    pub geometry: Option<String>,
    /// Numeric weight column (default: every point weighs 1).
    pub weight: Option<String>,
    /// Column giving the points' drawing order for the dots style (default: none).
    pub seq: Option<String>,
    pub attribution: Option<String>,
    /// File layers: use the file's weights (default true); false counts every point once.
    pub weighted: Option<bool>,
    #[serde(default)]
    pub filters: Vec<FilterConfig>,
    /// The CSV column or GeoJSON property (file layers) or the column (table layers: a
    /// timestamptz, timestamp or date) holding each point's time (ISO 8601 in files),
    /// so requests can ask for a window (`from`, `to`).
    pub time: Option<String>,
    /// CSV columns, GeoJSON properties or table columns holding categories, so requests can
    /// ask for some of their values (`category=`, `category.COLUMN=`).
    #[serde(default)]
    pub categories: Vec<String>,
    /// The time step TileJSON announces: `hour`, `day`, `week` or `month` (default: chosen
    /// from the layer's time extent).
    pub time_bucket: Option<String>,
}

/// A query parameter bound to a column: `?{param}=value` keeps rows where `column op value`.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    pub param: String,
    pub column: String,
    /// One of `=`, `!=`, `<`, `<=`, `>`, `>=`.
    pub op: String,
}

/// The PostGIS connection and its limits.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Connections in the pool (default 16).
    pub pool_size: Option<usize>,
    /// How long a request waits for a free connection before a 503 (default 2000 ms).
    pub pool_wait_ms: Option<u64>,
    /// Longest statement; PostgreSQL cancels it and the request gets a 504 (default 10000 ms).
    pub statement_timeout_ms: Option<u64>,
}

/// The tile cache: sizes accept `0` (tier off), bytes, or units like `256MB`, `1GiB`.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Folder of the disk tier (flag --cache-dir); none: no disk tier.
    pub dir: Option<PathBuf>,
    /// Memory tier budget (flag --cache-memory; default 256MB).
    pub memory: Option<String>,
    /// Disk tier budget (flag --cache-disk; default 1GB).
    pub disk: Option<String>,
    /// `Cache-Control` per zoom band, first match wins; other zooms get `tile_cache_control`.
    #[serde(default)]
    pub control: Vec<CacheControlConfig>,
}

/// One zoom band's `Cache-Control`, e.g. `zooms = "0-8"`, `value = "public, max-age=86400"`.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheControlConfig {
    pub zooms: String,
    pub value: String,
}

/// Parses `0`, `1048576`, `256MB`, `1.5GB`, `512KiB`, `2GiB` (case-insensitive) to bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 256MB"))?;
    let factor: f64 = match unit.trim() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024f64.powi(4),
        _ => {
            return Err(format!(
                "{text:?}: unknown unit; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
            ))
        }
    };
    let bytes = value * factor;
    if !bytes.is_finite() || bytes > 1e18 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(bytes as u64)
}

/// Parses a zoom range `a-b` (or a single zoom `a`) within 0..=24.
pub fn parse_zoom_range(text: &str) -> Result<(u8, u8), String> {
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let parse = |v: &str| {
        v.trim()
            .parse::<u8>()
            .ok()
            .filter(|z| *z <= crate::tile::MAX_ZOOM)
    };
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) if a <= b => Ok((a, b)),
        _ => Err(format!(
            "{text:?} is not a zoom range like 0-8 within 0..={}",
            crate::tile::MAX_ZOOM
        )),
    }
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Reads and parses `path`; relative layer files are resolved against the file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for layer in &mut config.layers {
            if let Some(file) = layer.file.as_mut().filter(|f| f.is_relative()) {
                *file = base.join(&*file);
            }
        }
        Ok(config)
    }

    /// Parses TOML text; the message names the unknown or malformed key and its line.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        if let Some(z) = config.handoff_zoom {
            if z > crate::tile::MAX_ZOOM {
                return Err(format!(
                    "handoff_zoom = {z}: allowed 0..={}",
                    crate::tile::MAX_ZOOM
                ));
            }
        }
        if config.points.default_limit == Some(0) || config.points.max_limit == Some(0) {
            return Err("points limits must be at least 1".into());
        }
        if config.points.concurrent == Some(0) {
            return Err("points.concurrent must be at least 1".into());
        }
        if let (Some(d), Some(m)) = (config.points.default_limit, config.points.max_limit) {
            if d > m {
                return Err(format!(
                    "points.default_limit ({d}) is above points.max_limit ({m})"
                ));
            }
        }
        if let Some(name) = config
            .poc_layer
            .as_deref()
            .filter(|name| !crate::layer::valid_layer_name(name))
        {
            return Err(format!(
                "poc_layer {name:?}: use 1 to 64 ASCII letters, digits, '_' or '-'"
            ));
        }
        for layer in &config.layers {
            if !crate::layer::valid_layer_name(&layer.name) {
                return Err(format!(
                    "layer name {:?}: use 1 to 64 ASCII letters, digits, '_' or '-'",
                    layer.name
                ));
            }
            if layer.file.is_some() == layer.table.is_some() {
                return Err(format!(
                    "layer {:?}: give exactly one of `file` or `table`",
                    layer.name
                ));
            }
            if layer.file.is_some()
                && (layer.geometry.is_some()
                    || layer.weight.is_some()
                    || layer.seq.is_some()
                    || !layer.filters.is_empty())
            {
                return Err(format!(
                    "layer {:?}: geometry, weight, seq and filters apply to `table` layers only",
                    layer.name
                ));
            }
            check_attributes(layer)?;
            for f in &layer.filters {
                if crate::source::filter::Op::parse(&f.op).is_none() {
                    return Err(format!(
                        "layer {:?}, filter {:?}: op {:?} is not one of = != < <= > >=",
                        layer.name, f.param, f.op
                    ));
                }
                if crate::style::is_reserved_param(&f.param)
                    || f.param.is_empty()
                    || f.param.len() > 64
                {
                    return Err(format!(
                        "layer {:?}: filter parameter {:?} is empty, too long, or taken by the API",
                        layer.name, f.param
                    ));
                }
            }
        }
        Ok(config)
    }
}

/// Longest name of a time or category column.
const MAX_ATTRIBUTE_NAME: usize = 64;

/// `time` and `categories`: names 1 to 64 characters (a table's are also checked as SQL
/// identifiers when its layout is built), each column once.
fn check_attributes(layer: &LayerConfig) -> Result<(), String> {
    if let Some(bucket) = &layer.time_bucket {
        if layer.time.is_none() || crate::source::attributes::TimeBucket::parse(bucket).is_none() {
            return Err(format!(
                "layer {:?}: time_bucket {bucket:?} needs `time` and is one of hour, day, week, month",
                layer.name
            ));
        }
    }
    if layer.time.is_none() && layer.categories.is_empty() {
        return Ok(());
    }
    // A declared filter reading a parameter of the time or category columns would filter
    // the same request twice, by two rules.
    for f in &layer.filters {
        let time_param = layer.time.is_some() && (f.param == "from" || f.param == "to");
        let category_param = !layer.categories.is_empty()
            && (f.param == "category" || f.param.starts_with("category."));
        if time_param || category_param {
            return Err(format!(
                "layer {:?}: filter parameter {:?} is taken by the layer's `time` or `categories` (from, to, category, category.COLUMN)",
                layer.name, f.param
            ));
        }
    }
    let names: Vec<&String> = layer.time.iter().chain(&layer.categories).collect();
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() || name.chars().count() > MAX_ATTRIBUTE_NAME {
            return Err(format!(
                "layer {:?}: column name {name:?} must be 1 to {MAX_ATTRIBUTE_NAME} characters",
                layer.name
            ));
        }
        if names[..i].contains(name) {
            return Err(format!(
                "layer {:?}: column {name:?} is declared twice in `time` and `categories`",
                layer.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses() {
        let text = include_str!("../config/example.toml");
        let config = Config::parse(text).expect("example config");
        assert_eq!(config.handoff_zoom, Some(8));
    }

    #[test]
    fn time_and_categories_are_checked() {
        let layer = |extra: &str| format!("[[layers]]\nname = \"q\"\nfile = \"a.csv\"\n{extra}\n");
        let ok = Config::parse(&layer("time = \"t\"\ncategories = [\"a\", \"b\"]")).expect("valid");
        assert_eq!(ok.layers[0].time.as_deref(), Some("t"));
        assert_eq!(ok.layers[0].categories, vec!["a", "b"]);
        for bad in [
            "time = \"\"",
            "categories = [\"a\", \"a\"]",
            "time = \"a\"\ncategories = [\"a\"]",
            "time = \"t\"\ntime_bucket = \"year\"",
            "categories = [\"a\"]\ntime_bucket = \"day\"",
        ] {
            let e = Config::parse(&layer(bad)).expect_err(bad).to_string();
            assert!(e.contains("layer \"q\""), "{e}");
        }
        // Tables take them too: the column by name.
        let table =
            "[[layers]]\nname = \"q\"\ntable = \"public.q\"\ntime = \"t\"\ncategories = [\"k\"]\n";
        let ok = Config::parse(table).expect("a table with time");
        assert_eq!(ok.layers[0].time.as_deref(), Some("t"));
    }

    #[test]
    fn filters_cannot_take_a_parameter_of_the_api() {
        let layer = |param: &str| {
            format!(
                "[[layers]]\nname = \"q\"\ntable = \"public.q\"\n[[layers.filters]]\nparam = \"{param}\"\ncolumn = \"c\"\nop = \"=\"\n"
            )
        };
        // One of each route's own parameters: style, overlay, tile points, box points.
        for taken in ["radius", "scheme", "width", "limit", "zoom", "bbox"] {
            let err = Config::parse(&layer(taken)).expect_err(taken);
            assert!(err.contains("taken by the API"), "{taken}: {err}");
        }
        Config::parse(&layer("from")).expect("a free name");
        // Not free on a layer with time or categories: those take them.
        for (attributes, param) in [
            ("time = \"t\"\n", "to"),
            ("categories = [\"k\"]\n", "category"),
            ("categories = [\"k\"]\n", "category.k"),
        ] {
            let text = layer(param).replace(
                "[[layers.filters]]",
                &format!("{attributes}[[layers.filters]]"),
            );
            let err = Config::parse(&text).expect_err(param);
            assert!(
                err.contains("taken by the layer's `time`"),
                "{param}: {err}"
            );
        }
        let text = layer("from").replace(
            "[[layers.filters]]",
            "categories = [\"k\"]\n[[layers.filters]]",
        );
        Config::parse(&text).expect("from is free without a time column");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("bind = \"127.0.0.1:1\"\nbindd = 3\n").expect_err("unknown key");
        assert!(err.contains("bindd"), "{err}");
        let err = Config::parse("[[layers]]\nname = \"a\"\nfile = \"a.csv\"\ncolour = 1\n")
            .expect_err("unknown");
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn sizes_and_zoom_ranges_parse() {
        assert_eq!(parse_size("256MB"), Ok(256_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1.5kb"), Ok(1500));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-5MB").is_err());
        assert!(parse_size("5XB").is_err());
        assert_eq!(parse_zoom_range("0-8"), Ok((0, 8)));
        assert_eq!(parse_zoom_range("12"), Ok((12, 12)));
        assert!(parse_zoom_range("8-2").is_err());
        assert!(parse_zoom_range("0-30").is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Config::parse("handoff_zoom = 99").is_err());
        assert!(Config::parse("[points]\ndefault_limit = 10\nmax_limit = 5").is_err());
        assert!(Config::parse("[points]\nconcurrent = 0").is_err());
        assert!(Config::parse("[[layers]]\nname = \"a/b\"\nfile = \"a.csv\"").is_err());
        assert!(Config::parse("handoff_zoom = \"eight\"").is_err());
        let err = Config::parse("poc_layer = \"a/b\"").expect_err("bad poc_layer");
        assert!(err.contains("poc_layer"), "{err}");
        assert_eq!(
            Config::parse("poc_layer = \"demo\"").map(|c| c.poc_layer),
            Ok(Some("demo".into()))
        );
    }
}
