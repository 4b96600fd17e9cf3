//! Loading a layer's points from a file, for the embedded in-memory store.
//!
//! `twine-heatmap serve --points FILE` reads FILE once at start-up. A file that cannot be read
//! or is malformed must stop start-up with a message the user can act on, so every error names
//! the file and, where there is one, the line (`points.csv:17: latitude 91.5 is outside -90..90`).
//!
//! The format comes from the name's extension, refined by the content:
//!
//! * CSV with a header row (`.csv`, `.csv.gz`): `lon,lat[,weight...]`. Longitude and latitude
//!   are found by header name (`lon|lng|long|longitude|x`, `lat|latitude|y`, any case), else
//!   they are the first two columns. The weight is the column named
//!   `weight|w|value|intensity|count|mag`, else the column right after longitude and latitude
//!   (the third in `lon,lat,weight`). Other columns are ignored. A first row whose first two
//!   fields are numbers and that names no column is taken as data, not as a header.
//! * GeoJSON (`.geojson`, or `.json` holding an object): a FeatureCollection, a Feature or a
//!   bare geometry; Point, MultiPoint and GeometryCollections of those. The weight is the
//!   feature's `weight|w|value|intensity|count|mag` property (any case), else 1.
//! * The seed's list (`.json` holding an array): `[[lat, lon], [lat, lon, weight], ...]`,
//!   latitude first as in Leaflet.heat.
//!
//! Any of them may be gzipped: gzip data is recognised by its magic bytes (which can never
//! start UTF-8 text), so `.csv.gz` works and a gzipped file with a plain name does too.
//! An empty file, or a header with no rows, is an empty layer, not an error.

#[cfg(test)]
mod attribute_tests;
mod csv;
mod geojson;
mod json;
mod locate;
mod seed_json;

use self::csv::parse_csv;
use crate::render::WorldPoint;
use crate::source::attributes::AttributeSchema;
use crate::source::memory::attributes::{Attributes, AttributesBuilder};
use crate::tile::{lat_to_world_y, lon_to_world_x};
use geojson::geojson;
use json::wrong_type;
use locate::{line_of_path, JsonPath};
use seed_json::seed_list;
use serde_json::Value;
use std::fmt;
use std::io::Read;
use std::path::Path;

/// How a file's third CSV column / point weight is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightMode {
    /// Each point weighs what the file says (1 where it says nothing).
    FromData,
    /// Each point weighs 1; weights in the file are not read at all.
    Unweighted,
}

/// Why a file could not be loaded. Every message names the file, and the line where there is one.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: unknown file type; expected a name ending in {ACCEPTED}")]
    UnknownFormat { file: String },
    #[error("{file}: invalid gzip data: {source}")]
    Gzip {
        file: String,
        source: std::io::Error,
    },
    /// A problem at a line (1-based; for gzipped files, a line of the decompressed text).
    #[error("{file}:{line}: {problem}")]
    Invalid {
        file: String,
        line: u64,
        problem: Problem,
    },
}

/// What is wrong at a line of a file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    #[error("invalid UTF-8")]
    InvalidUtf8,
    #[error("invalid CSV: {0}")]
    Csv(String),
    #[error("invalid JSON: {message} (column {column})")]
    Json { message: String, column: usize },
    #[error("{0}")]
    Header(String),
    /// `column` is 1-based.
    #[error("missing column {field} (column {column})")]
    MissingColumn { field: Field, column: usize },
    #[error("{field} {text:?} is not a finite number")]
    BadNumber { field: Field, text: String },
    #[error("{what} must be {expected}, found {found}")]
    WrongType {
        what: String,
        expected: &'static str,
        found: String,
    },
    #[error("latitude {0} is outside -90..90")]
    LatitudeOutOfRange(f64),
    #[error("longitude {0} is outside -180..180")]
    LongitudeOutOfRange(f64),
    #[error("weight {0} is negative")]
    NegativeWeight(f64),
    #[error("weight {0} is too large (at most {max:e})", max = f32::MAX)]
    WeightTooLarge(f64),
    #[error("{what}: geometry type {kind:?} is not supported (only Point, MultiPoint and GeometryCollection)")]
    UnsupportedGeometry { what: String, kind: String },
    #[error("{0}")]
    Structure(String),
    #[error("more than {max} points", max = u32::MAX)]
    TooManyPoints,
    #[error("time column {column:?}: {text:?} is not {formats}", formats = crate::source::attributes::INSTANT_FORMATS)]
    BadTime { column: String, text: String },
    #[error("{0}")]
    Attribute(String),
}

/// The value of a point that a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Longitude,
    Latitude,
    Weight,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Longitude => "longitude",
            Field::Latitude => "latitude",
            Field::Weight => "weight",
        })
    }
}

/// Loads points from `path`; format by extension and content: `.csv` (or `.csv.gz`, gzip),
/// `.geojson`, `.json`.
pub fn load_points_file(path: &Path, mode: WeightMode) -> Result<Vec<WorldPoint>, LoadError> {
    load_points_file_with(path, mode, &AttributeSchema::default()).map(|(points, _)| points)
}

/// [`load_points_file`], also keeping the values of the columns (CSV) or properties
/// (GeoJSON) that `schema` declares, one per point, in the points' order (`None` when it
/// declares none).
pub fn load_points_file_with(
    path: &Path,
    mode: WeightMode,
    schema: &AttributeSchema,
) -> Result<(Vec<WorldPoint>, Option<Attributes>), LoadError> {
    let file = path.display().to_string();
    // Check the name first so that a wrong kind of file is not read in full just to be refused.
    if format_of(&file).is_none() {
        return Err(LoadError::UnknownFormat { file });
    }
    match std::fs::read(path) {
        Ok(bytes) => parse_points_with(&file, &bytes, mode, schema),
        Err(source) => Err(LoadError::Read { file, source }),
    }
}

/// Parses bytes already read (`name` is used in messages and for the format: extension `.csv`,
/// `.csv.gz`, `.json`, `.geojson`).
pub fn parse_points(
    name: &str,
    bytes: &[u8],
    mode: WeightMode,
) -> Result<Vec<WorldPoint>, LoadError> {
    parse_points_with(name, bytes, mode, &AttributeSchema::default()).map(|(points, _)| points)
}

/// [`parse_points`] keeping the attributes `schema` declares (see [`load_points_file_with`]).
pub fn parse_points_with(
    name: &str,
    bytes: &[u8],
    mode: WeightMode,
    schema: &AttributeSchema,
) -> Result<(Vec<WorldPoint>, Option<Attributes>), LoadError> {
    let format = format_of(name).ok_or_else(|| LoadError::UnknownFormat {
        file: name.to_owned(),
    })?;
    let decompressed;
    let bytes = if is_gzip(bytes) {
        decompressed = gunzip(bytes).map_err(|source| LoadError::Gzip {
            file: name.to_owned(),
            source,
        })?;
        &decompressed[..]
    } else {
        bytes
    };
    let invalid = |e: LineError| LoadError::Invalid {
        file: name.to_owned(),
        line: e.line,
        problem: e.problem,
    };
    let text = utf8_text(bytes).map_err(invalid)?;
    let mut layer = Layer::new(schema);
    match format {
        Format::Csv => parse_csv(text, mode, &mut layer),
        Format::GeoJson | Format::Json => parse_json(text, format, mode, &mut layer),
    }
    .map_err(invalid)?;
    Ok((
        layer.points,
        layer.attributes.map(AttributesBuilder::finish),
    ))
}

/// Attribution of the bundled demo layer (HTML, as TileJSON's `attribution`).
pub const DEMO_ATTRIBUTION: &str =
    "Demo data: <a href=\"https://www.geonames.org/\">GeoNames</a> (CC BY 4.0)";

/// The demo layer shipped in the binary: 135,233 places of the world with at least 1,000
/// inhabitants (GeoNames, CC BY 4.0), each counting once.
pub fn demo_points() -> Result<Vec<WorldPoint>, LoadError> {
    const DEMO: &[u8] = include_bytes!("../../../data/cities1000.csv.gz");
    parse_points("cities1000.csv.gz", DEMO, WeightMode::Unweighted)
}

/// Attribution of the bundled storms layer (HTML, as TileJSON's `attribution`).
pub const STORMS_ATTRIBUTION: &str = "Storm tracks 1975\u{2013}2020: <a href=\"https://www.nhc.noaa.gov/data/#hurdat\">NOAA National Hurricane Center, HURDAT2</a> (public domain), via the R package dplyr 1.0.10 (MIT)";

/// The time demo layer shipped in the binary: 11,859 six-hourly positions of 512 Atlantic
/// storms, 1975-2020 (NOAA HURDAT2, public domain, via dplyr), each counting once, with
/// their time and the categories `status` and `saffir_simpson`.
pub fn storms_points() -> Result<(Vec<WorldPoint>, Option<Attributes>), LoadError> {
    const STORMS: &[u8] = include_bytes!("../../../data/storms-1975-2020.csv.gz");
    let schema = AttributeSchema {
        time: Some("time".to_owned()),
        categories: vec!["status".to_owned(), "saffir_simpson".to_owned()],
        time_bucket: None,
    };
    parse_points_with(
        "storms-1975-2020.csv.gz",
        STORMS,
        WeightMode::Unweighted,
        &schema,
    )
}

// ---------------------------------------------------------------------------------------------
// Format and decoding

const ACCEPTED: &str = ".csv, .csv.gz, .json, .geojson (or .json.gz, .geojson.gz)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    GeoJson,
    /// The seed's list when the file holds an array, GeoJSON when it holds an object.
    Json,
}

fn format_of(name: &str) -> Option<Format> {
    let lower = name.to_ascii_lowercase();
    let base = lower.strip_suffix(".gz").unwrap_or(&lower);
    if base.ends_with(".csv") {
        Some(Format::Csv)
    } else if base.ends_with(".geojson") {
        Some(Format::GeoJson)
    } else if base.ends_with(".json") {
        Some(Format::Json)
    } else {
        None
    }
}

fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Decompresses every gzip member in turn: concatenated gzip files are valid gzip.
fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4));
    flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

/// The text of the file without a UTF-8 byte order mark (spreadsheets write one, and neither
/// the csv crate's header matching nor serde_json expects it).
fn utf8_text(bytes: &[u8]) -> Result<&str, LineError> {
    let text = std::str::from_utf8(bytes).map_err(|e| LineError {
        line: line_at(bytes, e.valid_up_to()),
        problem: Problem::InvalidUtf8,
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// The 1-based line of byte `offset`.
fn line_at(bytes: &[u8], offset: usize) -> u64 {
    let before = bytes.get(..offset).unwrap_or(bytes);
    1 + before.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Property and column names that hold a point's weight, in order of preference.
const WEIGHT_NAMES: [&str; 6] = ["weight", "w", "value", "intensity", "count", "mag"];

/// A problem and the line it is at, before the file name is attached.
#[derive(Debug)]
struct LineError {
    line: u64,
    problem: Problem,
}

fn parse_json(
    text: &str,
    format: Format,
    mode: WeightMode,
    layer: &mut Layer,
) -> Result<(), LineError> {
    if text
        .bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return Ok(());
    }
    let value: Value = serde_json::from_str(text).map_err(|e| json_syntax_error(&e))?;
    let root = JsonPath::ROOT;
    let walked = match (&value, format) {
        (Value::Array(_), Format::Json) if !layer.schema.is_empty() => {
            Err(root.error(Problem::Attribute(
                "a list of [lat, lon] has no columns: `time` and `categories` need CSV or GeoJSON"
                    .to_owned(),
            )))
        }
        (Value::Array(items), Format::Json) => seed_list(items, &root, mode, layer),
        (Value::Object(_), _) => geojson(&value, &root, mode, layer),
        (_, Format::Json) => Err(root.error(wrong_type(
            "the file",
            "an array [[lat, lon(, weight)], ...] or a GeoJSON object",
            &value,
        ))),
        _ => Err(root.error(wrong_type("the file", "a GeoJSON object", &value))),
    };
    // Semantic errors carry a path; only now, on the error path, is it turned into a line.
    walked.map_err(|e| LineError {
        line: line_of_path(text.as_bytes(), &e.steps),
        problem: e.problem,
    })?;
    geojson::check_properties_seen(layer).map_err(|problem| LineError { line: 1, problem })
}

fn json_syntax_error(e: &serde_json::Error) -> LineError {
    // serde_json appends " at line L column C" to its message; the line goes in front instead.
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    LineError {
        line: e.line().max(1) as u64,
        problem: Problem::Json {
            message,
            column: e.column(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Points, common to every format

/// The points of a layer as they are read, in file order, with the attributes the layer
/// declares (the current row's or feature's values, given to each of its points).
struct Layer {
    points: Vec<WorldPoint>,
    schema: AttributeSchema,
    attributes: Option<AttributesBuilder>,
    /// Per declared attribute (time first, if declared, then each category): whether any
    /// feature had it, so that a GeoJSON property no feature has is refused as a CSV column
    /// missing from the header is.
    seen: Vec<bool>,
}

impl Layer {
    fn new(schema: &AttributeSchema) -> Layer {
        Layer {
            points: Vec::new(),
            schema: schema.clone(),
            attributes: (!schema.is_empty()).then(|| AttributesBuilder::new(schema)),
            seen: vec![false; usize::from(schema.time.is_some()) + schema.categories.len()],
        }
    }

    /// Adds a point after checking its position; `w` was checked by [`weight_value`].
    fn push(&mut self, lon: f64, lat: f64, w: f32) -> Result<(), Problem> {
        check_position(lon, lat)?;
        let seq = next_seq(self.points.len())?;
        self.points.push(WorldPoint {
            x: lon_to_world_x(lon),
            y: lat_to_world_y(lat),
            w,
            seq,
        });
        if let Some(attributes) = &mut self.attributes {
            attributes.push_point();
        }
        Ok(())
    }

    /// Sets the current row's time from its text: empty is no time.
    fn set_time_text(&mut self, text: &str) -> Result<(), Problem> {
        let Some(attributes) = &mut self.attributes else {
            return Ok(());
        };
        let time = if text.trim().is_empty() {
            None
        } else {
            let parsed = crate::source::attributes::parse_instant(text);
            Some(parsed.ok_or_else(|| Problem::BadTime {
                column: self.schema.time.clone().unwrap_or_default(),
                text: excerpt(text),
            })?)
        };
        attributes.set_time(time);
        Ok(())
    }

    fn set_category(&mut self, column: usize, value: &str) {
        if let Some(attributes) = &mut self.attributes {
            attributes.set_category(column, value);
        }
    }
}

/// The `seq` of the point after `len` points. A layer holds at most `u32::MAX` points, so
/// that every `seq` and also the count of points fit in a u32.
fn next_seq(len: usize) -> Result<u32, Problem> {
    u32::try_from(len)
        .ok()
        .filter(|&seq| seq < u32::MAX)
        .ok_or(Problem::TooManyPoints)
}

/// Latitudes beyond Web Mercator's limit but within ±90 are real places (Antarctic stations,
/// Svalbard): they are kept and `lat_to_world_y` clamps them to the map's edge.
fn check_position(lon: f64, lat: f64) -> Result<(), Problem> {
    if !(-90.0..=90.0).contains(&lat) {
        return Err(Problem::LatitudeOutOfRange(lat));
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err(Problem::LongitudeOutOfRange(lon));
    }
    Ok(())
}

/// A weight as stored: zero is allowed (a point that shows nothing), negative is not, and it
/// must stay finite as an f32 or it would poison every sum it enters.
fn weight_value(weight: f64) -> Result<f32, Problem> {
    if weight < 0.0 {
        Err(Problem::NegativeWeight(weight))
    } else if (0.0..=f64::from(f32::MAX)).contains(&weight) {
        Ok(weight as f32)
    } else {
        // Also NaN, which callers have already refused.
        Err(Problem::WeightTooLarge(weight))
    }
}

/// Keeps messages about huge fields short.
fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    match text.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}...", text.get(..end).unwrap_or(text)),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tile::{world_x_to_lon, world_y_to_lat, MAX_LAT};
    use std::io::Write;

    pub(super) fn parse(name: &str, text: &str) -> Result<Vec<WorldPoint>, LoadError> {
        parse_points(name, text.as_bytes(), WeightMode::FromData)
    }

    pub(super) fn ok(name: &str, text: &str) -> Vec<WorldPoint> {
        match parse(name, text) {
            Ok(points) => points,
            Err(e) => panic!("{name} should load, got: {e}"),
        }
    }

    /// The error message for `text`, checked to start with `file:line: `.
    pub(super) fn err_at(name: &str, text: &str, line: u64) -> String {
        err_bytes_at(name, text.as_bytes(), line)
    }

    pub(super) fn err_bytes_at(name: &str, bytes: &[u8], line: u64) -> String {
        let message = match parse_points(name, bytes, WeightMode::FromData) {
            Ok(points) => panic!("{name} should fail, got {} points", points.len()),
            Err(e) => e.to_string(),
        };
        let prefix = format!("{name}:{line}: ");
        assert!(
            message.starts_with(&prefix),
            "expected {prefix:?} at the start of {message:?}"
        );
        message
    }

    pub(super) fn assert_has(message: &str, part: &str) {
        assert!(
            message.contains(part),
            "{message:?} should contain {part:?}"
        );
    }

    /// (lon, lat, w, seq) of a point, back in degrees.
    pub(super) fn lonlat(p: &WorldPoint) -> (f64, f64, f32, u32) {
        let round = |v: f64| (v * 1e9).round() / 1e9;
        (
            round(world_x_to_lon(p.x)),
            round(world_y_to_lat(p.y)),
            p.w,
            p.seq,
        )
    }

    /// A FeatureCollection with every kind of point geometry, also mutated by the fuzz tests.
    pub(super) const COLLECTION: &str = r#"{
  "type": "FeatureCollection",
  "features": [
    {"type": "Feature", "properties": {"Mag": 2, "weight_note": "x"}, "geometry": {"type": "Point", "coordinates": [13.4, 52.5, 34]}},
    {"type": "Feature", "properties": {"count": 3}, "geometry": {"type": "MultiPoint", "coordinates": [[1, 2], [3, 4]]}},
    {"type": "Feature", "properties": {"name": "nowhere"}, "geometry": null},
    {"type": "Feature", "properties": null, "geometry": {"type": "GeometryCollection", "geometries": [
      {"type": "Point", "coordinates": [5, 6]},
      {"type": "MultiPoint", "coordinates": []},
      {"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [7, 8]}]}
    ]}},
    {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-9, -10]}}
  ]
}"#;

    pub(super) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("twine-load-{}-{name}", std::process::id()))
    }

    #[test]
    fn coordinates_out_of_range_are_errors_with_the_line() {
        let mut text = String::from("lon,lat\n");
        for i in 0..15 {
            text.push_str(&format!("{i},{i}\n"));
        }
        text.push_str("10,91.5\n");
        assert_eq!(
            err_at("points.csv", &text, 17),
            "points.csv:17: latitude 91.5 is outside -90..90"
        );
        assert_has(
            &err_at("p.csv", "lon,lat\n0,-90.5\n", 2),
            "latitude -90.5 is outside -90..90",
        );
        assert_has(
            &err_at("p.csv", "lon,lat\n180.5,0\n", 2),
            "longitude 180.5 is outside -180..180",
        );
        assert_has(
            &err_at("p.csv", "lon,lat\n-181,0\n", 2),
            "longitude -181 is outside -180..180",
        );
    }

    #[test]
    fn latitudes_beyond_the_mercator_edge_are_clamped() {
        let points = ok("p.csv", "lon,lat\n180,90\n-180,-90\n0,89.5\n0,-86\n");
        assert_eq!(points[0].y, lat_to_world_y(MAX_LAT));
        assert_eq!(points[1].y, lat_to_world_y(-MAX_LAT));
        assert_eq!((points[0].x, points[1].x), (1.0, 0.0));
        assert_eq!(points[2].y, points[0].y);
        assert_eq!(points[3].y, points[1].y);
    }

    #[test]
    fn weights_zero_is_allowed_negative_and_huge_are_not() {
        assert_eq!(ok("p.csv", "lon,lat,w\n1,2,0\n1,2,-0\n")[1].w, 0.0);
        assert_eq!(
            err_at("p.csv", "lon,lat,w\n1,2,-1\n", 2),
            "p.csv:2: weight -1 is negative"
        );
        assert_has(&err_at("p.csv", "lon,lat,w\n1,2,1e39\n", 2), "is too large");
    }

    #[test]
    fn invalid_utf8_is_an_error_with_the_line() {
        let message = err_bytes_at("p.csv", b"lon,lat\n1,2\n\xff,3\n", 3);
        assert_eq!(message, "p.csv:3: invalid UTF-8");
        let message = err_bytes_at("p.json", b"[\n[1, 2],\n[\"\xc3\", 3]]", 3);
        assert_eq!(message, "p.json:3: invalid UTF-8");
        let message = err_bytes_at("p.csv.gz", &gzip(b"lon,lat\n\x80"), 2);
        assert_eq!(message, "p.csv.gz:2: invalid UTF-8");
    }

    #[test]
    fn bad_gzip_is_an_error_naming_the_file() {
        let bytes = gzip(b"lon,lat\n1,2\n3,4\n");
        let truncated = &bytes[..bytes.len() - 6];
        let mut corrupt = bytes.clone();
        corrupt[12] ^= 0xff;
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(&[0x1f, 0x8b, 0, 1, 2]);
        for bad in [truncated, &corrupt[..], &trailing[..], &[0x1f, 0x8b][..]] {
            let e = parse_points("p.csv.gz", bad, WeightMode::FromData).unwrap_err();
            assert!(matches!(e, LoadError::Gzip { .. }), "{e:?}");
            assert!(
                e.to_string().starts_with("p.csv.gz: invalid gzip data: "),
                "{e}"
            );
        }
    }

    #[test]
    fn unknown_extension_is_an_error_listing_the_accepted_ones() {
        for name in ["points.txt", "points", "points.gz", "points.csv.zip"] {
            let message = parse(name, "lon,lat\n1,2\n").unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("{name}: unknown file type")),
                "{message}"
            );
            for ext in [".csv", ".csv.gz", ".json", ".geojson"] {
                assert_has(&message, ext);
            }
        }
    }

    #[test]
    fn json_syntax_errors_name_the_line_and_column() {
        let message = err_at(
            "p.geojson",
            "{\"type\": \"Point\",\n\"coordinates\": [1 2]}",
            2,
        );
        assert_eq!(
            message,
            "p.geojson:2: invalid JSON: expected `,` or `]` (column 19)"
        );
        assert_has(
            &err_at("p.json", "[[1, 2],\n[3, 4]\n[5, 6]]", 3),
            "invalid JSON",
        );
        assert_has(&err_at("p.json", "[[1, 2]]\n\nx", 3), "trailing characters");
        assert_has(&err_at("p.json", "[[1, 2],\n", 2), "EOF");
        assert_has(&err_at("p.json", "[[1e400, 2]]", 1), "number out of range");
    }

    // --- Files -----------------------------------------------------------------------------

    #[test]
    fn load_points_file_reads_and_names_the_path() {
        let path = temp_path("ok.csv");
        std::fs::write(&path, "lon,lat,w\n1,2,3\n4,5,x\n").unwrap();
        let message = load_points_file(&path, WeightMode::FromData)
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            format!("{}:3: weight \"x\" is not a finite number", path.display())
        );
        let points = load_points_file(&path, WeightMode::Unweighted).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(points.len(), 2);
    }

    #[test]
    fn unreadable_file_is_an_error_naming_it() {
        let path = temp_path("missing.csv");
        let e = load_points_file(&path, WeightMode::FromData).unwrap_err();
        assert!(matches!(e, LoadError::Read { .. }), "{e:?}");
        let message = e.to_string();
        assert!(
            message.starts_with(&format!("cannot read {}: ", path.display())),
            "{message}"
        );
        assert_has(&message, "No such file or directory");
        // A directory cannot be read as a file either.
        let dir = temp_path("dir.json");
        std::fs::create_dir_all(&dir).unwrap();
        let e = load_points_file(&dir, WeightMode::FromData).unwrap_err();
        std::fs::remove_dir(&dir).unwrap();
        assert!(matches!(e, LoadError::Read { .. }), "{e:?}");
    }

    #[test]
    fn unknown_extension_is_refused_before_reading() {
        let e = load_points_file(Path::new("/nonexistent/points.txt"), WeightMode::FromData)
            .unwrap_err();
        assert!(matches!(e, LoadError::UnknownFormat { .. }), "{e:?}");
    }

    // --- Limits ----------------------------------------------------------------------------

    #[test]
    fn more_than_u32_max_points_is_an_error() {
        assert_eq!(next_seq(0), Ok(0));
        assert_eq!(next_seq(u32::MAX as usize - 1), Ok(u32::MAX - 1));
        assert_eq!(next_seq(u32::MAX as usize), Err(Problem::TooManyPoints));
        let e = LoadError::Invalid {
            file: "p.csv".to_owned(),
            line: 4_294_967_297,
            problem: Problem::TooManyPoints,
        };
        assert_eq!(
            e.to_string(),
            "p.csv:4294967297: more than 4294967295 points"
        );
    }

    #[test]
    fn garbage_never_panics() {
        let inputs: [&[u8]; 8] = [
            b"\x00\x01\x02",
            b"\"",
            b"{\"type\":",
            b"[[[[[[[[[[",
            b"\x1f\x8b\x08\x00",
            b",,,\n,,,\n\"",
            b"lon,lat\n\"1,2",
            b"{\"type\":\"GeometryCollection\",\"geometries\":[{\"type\":\"GeometryCollection\"}]}",
        ];
        for bytes in inputs {
            for name in ["g.csv", "g.json", "g.geojson", "g.csv.gz"] {
                let _ = parse_points(name, bytes, WeightMode::FromData);
            }
        }
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse("g.json", &deep).is_err());
    }

    /// Every truncation and many random corruptions of valid files: never a panic, and every
    /// error names the file and a line that exists.
    #[test]
    fn mutated_files_never_panic_and_name_real_lines() {
        let csv_text =
            "lon,lat,population,name\n1.5,42.5,1052,\"El Tarter\"\n2.5,43,8022,\"Sant Julià\"\n";
        let seed = "[\n[52.5, 13.4],\n[48.85, 2.35, 0.5]\n]";
        let samples = [
            ("m.csv", csv_text.as_bytes().to_vec()),
            ("m.csv.gz", gzip(csv_text.as_bytes())),
            ("m.geojson", COLLECTION.as_bytes().to_vec()),
            ("m.json", seed.as_bytes().to_vec()),
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut random = move |n: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize % n
        };
        let alphabet = b"[]{},:\"\\ \n\r-.0123456789eE\x00\xff\xc3abcnull";
        for (name, bytes) in samples {
            let mut cases: Vec<Vec<u8>> = (0..bytes.len()).map(|n| bytes[..n].to_vec()).collect();
            for _ in 0..2000 {
                let mut mutated = bytes.clone();
                for _ in 0..1 + random(3) {
                    let at = random(mutated.len());
                    match random(3) {
                        0 => mutated[at] = alphabet[random(alphabet.len())],
                        1 => mutated.insert(at, alphabet[random(alphabet.len())]),
                        _ => {
                            mutated.remove(at);
                        }
                    }
                }
                cases.push(mutated);
            }
            for case in cases {
                let lines = 1 + case.iter().filter(|&&b| b == b'\n').count() as u64;
                if let Err(e) = parse_points(name, &case, WeightMode::FromData) {
                    assert!(e.to_string().contains(name), "{e}");
                    // (Lines of a gzipped file are lines of its decompressed text.)
                    if let (LoadError::Invalid { line, .. }, false) = (&e, name.ends_with(".gz")) {
                        assert!((1..=lines).contains(line), "{e} in {case:?}");
                    }
                }
            }
        }
    }

    // --- The demo data ---------------------------------------------------------------------

    fn cities_path() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/cities1000.csv.gz")
    }

    #[test]
    fn cities_file_loads_with_population_as_weight() {
        let start = std::time::Instant::now();
        let points = load_points_file(&cities_path(), WeightMode::FromData).unwrap();
        eprintln!(
            "loaded {} points from cities1000.csv.gz in {:?}",
            points.len(),
            start.elapsed()
        );
        assert_eq!(points.len(), 135_233);
        assert!(points.iter().enumerate().all(|(i, p)| p.seq as usize == i));
        assert_eq!(lonlat(&points[0]), (1.65362, 42.57952, 1052.0, 0));

        // The population sum, read independently: every population is an integer that f32
        // holds exactly (the largest, 22,315,474, is even), so the sums agree exactly.
        let mut text = String::new();
        let file = std::fs::File::open(cities_path()).unwrap();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .unwrap();
        let mut population: u64 = 0;
        for record in ::csv::Reader::from_reader(text.as_bytes()).records() {
            population += record.unwrap()[2].parse::<u64>().unwrap();
        }
        let total: f64 = points.iter().map(|p| f64::from(p.w)).sum();
        assert_eq!(population, 3_133_032_118);
        assert_eq!(total, population as f64);
    }

    #[test]
    fn demo_points_are_the_cities_unweighted() {
        let start = std::time::Instant::now();
        let points = demo_points().unwrap();
        eprintln!(
            "demo_points: {} points in {:?}",
            points.len(),
            start.elapsed()
        );
        assert_eq!(points.len(), 135_233);
        assert!(points.iter().all(|p| p.w == 1.0));
        assert!(points
            .iter()
            .all(|p| (0.0..=1.0).contains(&p.x) && (0.0..=1.0).contains(&p.y)));
    }
}
