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

use crate::render::WorldPoint;
use crate::tile::{lat_to_world_y, lon_to_world_x};
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
    let file = path.display().to_string();
    // Check the name first so that a wrong kind of file is not read in full just to be refused.
    if format_of(&file).is_none() {
        return Err(LoadError::UnknownFormat { file });
    }
    match std::fs::read(path) {
        Ok(bytes) => parse_points(&file, &bytes, mode),
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
    match format {
        Format::Csv => parse_csv(text, mode),
        Format::GeoJson | Format::Json => parse_json(text, format, mode),
    }
    .map_err(invalid)
}

/// The demo layer shipped in the binary: 135,233 places of the world with at least 1,000
/// inhabitants (GeoNames, CC BY 4.0), each counting once.
pub fn demo_points() -> Result<Vec<WorldPoint>, LoadError> {
    const DEMO: &[u8] = include_bytes!("../../data/cities1000.csv.gz");
    parse_points("cities1000.csv.gz", DEMO, WeightMode::Unweighted)
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

/// A problem and the line it is at, before the file name is attached.
#[derive(Debug)]
struct LineError {
    line: u64,
    problem: Problem,
}

// ---------------------------------------------------------------------------------------------
// Points, common to every format

/// The points of a layer as they are read, in file order.
#[derive(Default)]
struct Layer {
    points: Vec<WorldPoint>,
}

impl Layer {
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
        Ok(())
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

// ---------------------------------------------------------------------------------------------
// CSV

const LON_NAMES: [&str; 5] = ["longitude", "lon", "lng", "long", "x"];
const LAT_NAMES: [&str; 3] = ["latitude", "lat", "y"];
const WEIGHT_NAMES: [&str; 6] = ["weight", "w", "value", "intensity", "count", "mag"];

/// Where a row's values are (0-based); `weight` is None when every point weighs 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Columns {
    lon: usize,
    lat: usize,
    weight: Option<usize>,
}

fn parse_csv(text: &str, mode: WeightMode) -> Result<Vec<WorldPoint>, LineError> {
    // Headers are handled here rather than by the crate so that the header row gets the same
    // line numbers and blank-row skipping as the data; `flexible` lets short rows through to
    // be reported by the column they lack.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();
    let mut columns = None;
    let mut layer = Layer::default();
    loop {
        let more = reader.read_record(&mut record).map_err(|e| LineError {
            line: csv_line(text, e.position()),
            problem: Problem::Csv(e.to_string()),
        })?;
        if !more {
            break;
        }
        // Rows of empty fields (",,,", "  ") are blank lines to a person; spreadsheets pad with them.
        if record.iter().all(str::is_empty) {
            continue;
        }
        let at = |problem| LineError {
            line: csv_line(text, record.position()),
            problem,
        };
        match columns {
            Some(cols) => csv_row(&record, cols, &mut layer).map_err(at)?,
            None => {
                let (cols, header_is_data) = header_columns(&record, mode).map_err(at)?;
                if header_is_data {
                    csv_row(&record, cols, &mut layer).map_err(at)?;
                }
                columns = Some(cols);
            }
        }
    }
    Ok(layer.points)
}

/// The line where the record at `position` starts.
///
/// Not `Position::line()`: the csv crate records where the previous record ended, which is
/// before any blank lines and, with CRLF line ends, before the previous record's "\n", so
/// its line can be one or more too low. The byte offset is right; the record starts at the
/// first byte after it that is not a line end.
fn csv_line(text: &str, position: Option<&csv::Position>) -> u64 {
    let bytes = text.as_bytes();
    let offset = position.map_or(0, csv::Position::byte);
    let mut offset = usize::try_from(offset).unwrap_or(bytes.len());
    while bytes
        .get(offset)
        .is_some_and(|b| matches!(b, b'\r' | b'\n'))
    {
        offset += 1;
    }
    line_at(bytes, offset)
}

/// The columns named by the header row, and whether that row is in fact data (a file
/// without a header whose first row would otherwise be lost).
fn header_columns(
    header: &csv::StringRecord,
    mode: WeightMode,
) -> Result<(Columns, bool), Problem> {
    let lon = find_column(header, &LON_NAMES);
    let lat = find_column(header, &LAT_NAMES);
    let named_weight = find_column(header, &WEIGHT_NAMES);
    let (lon, lat, header_is_data) = match (lon, lat) {
        (Some(lon), Some(lat)) => (lon, lat, false),
        (None, None) => (
            0,
            1,
            named_weight.is_none() && starts_with_two_numbers(header),
        ),
        (Some(_), None) => return Err(half_named_header("longitude", "latitude", &LAT_NAMES)),
        (None, Some(_)) => return Err(half_named_header("latitude", "longitude", &LON_NAMES)),
    };
    let next = lon.max(lat) + 1;
    let weight = match mode {
        WeightMode::Unweighted => None,
        WeightMode::FromData => named_weight.or((next < header.len()).then_some(next)),
    };
    Ok((Columns { lon, lat, weight }, header_is_data))
}

/// The first column whose name is one of `names`, trying the names in order of preference
/// (so that `lon` wins over `x` wherever they stand).
fn find_column(header: &csv::StringRecord, names: &[&str]) -> Option<usize> {
    names
        .iter()
        .find_map(|name| header.iter().position(|h| h.eq_ignore_ascii_case(name)))
}

fn starts_with_two_numbers(record: &csv::StringRecord) -> bool {
    let number = |i| {
        record
            .get(i)
            .and_then(|s: &str| s.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    };
    number(0) && number(1)
}

fn half_named_header(found: &str, missing: &str, names: &[&str]) -> Problem {
    Problem::Header(format!(
        "the header names a {found} column but no {missing} column (one of {})",
        names.join(", ")
    ))
}

fn csv_row(record: &csv::StringRecord, cols: Columns, layer: &mut Layer) -> Result<(), Problem> {
    let lon = csv_number(record, cols.lon, Field::Longitude)?;
    let lat = csv_number(record, cols.lat, Field::Latitude)?;
    let w = match cols.weight {
        Some(i) => weight_value(csv_number(record, i, Field::Weight)?)?,
        None => 1.0,
    };
    layer.push(lon, lat, w)
}

fn csv_number(record: &csv::StringRecord, column: usize, field: Field) -> Result<f64, Problem> {
    let text = record.get(column).ok_or(Problem::MissingColumn {
        field,
        column: column + 1,
    })?;
    // Rust's parser accepts "NaN" and "inf"; neither is a position or a weight.
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(Problem::BadNumber {
            field,
            text: excerpt(text),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON: the seed's list and GeoJSON

const GEOMETRY_TYPES: [&str; 7] = [
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
];

fn parse_json(text: &str, format: Format, mode: WeightMode) -> Result<Vec<WorldPoint>, LineError> {
    if text
        .bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_str(text).map_err(|e| json_syntax_error(&e))?;
    let mut layer = Layer::default();
    let root = JsonPath::ROOT;
    let walked = match (&value, format) {
        (Value::Array(items), Format::Json) => seed_list(items, &root, mode, &mut layer),
        (Value::Object(_), _) => geojson(&value, &root, mode, &mut layer),
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
    Ok(layer.points)
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

/// `[[lat, lon], [lat, lon, weight], ...]`: latitude first, as Leaflet.heat takes them.
fn seed_list(
    items: &[Value],
    path: &JsonPath,
    mode: WeightMode,
    layer: &mut Layer,
) -> Result<(), JsonError> {
    for (i, item) in items.iter().enumerate() {
        let item_path = path.index(i);
        let (lat, lon, weight) = match item.as_array().map(Vec::as_slice) {
            Some([lat, lon]) => (lat, lon, None),
            Some([lat, lon, weight]) => (lat, lon, Some(weight)),
            _ => {
                return Err(item_path.error(wrong_type(
                    &format!("element {i}"),
                    "[lat, lon] or [lat, lon, weight]",
                    item,
                )))
            }
        };
        let lat = json_number(lat, &item_path.index(0), Field::Latitude)?;
        let lon = json_number(lon, &item_path.index(1), Field::Longitude)?;
        let w = match (mode, weight) {
            (WeightMode::FromData, Some(weight)) => {
                let weight_path = item_path.index(2);
                let weight = json_number(weight, &weight_path, Field::Weight)?;
                weight_value(weight).map_err(|p| weight_path.error(p))?
            }
            _ => 1.0,
        };
        layer.push(lon, lat, w).map_err(|p| item_path.error(p))?;
    }
    Ok(())
}

fn geojson(
    value: &Value,
    path: &JsonPath,
    mode: WeightMode,
    layer: &mut Layer,
) -> Result<(), JsonError> {
    match value.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => feature_collection(value, path, mode, layer),
        Some("Feature") => feature(value, path, None, mode, layer),
        Some(kind) if GEOMETRY_TYPES.contains(&kind) => {
            geometry(value, path, Subject::Geometry, 1.0, layer)
        }
        _ => Err(path.error(Problem::Structure(
            "not GeoJSON: expected \"type\" FeatureCollection, Feature or a geometry type"
                .to_owned(),
        ))),
    }
}

fn feature_collection(
    value: &Value,
    path: &JsonPath,
    mode: WeightMode,
    layer: &mut Layer,
) -> Result<(), JsonError> {
    let features_path = path.key("features");
    let features = match value.get("features") {
        Some(Value::Array(features)) => features,
        Some(other) => {
            return Err(features_path.error(wrong_type("\"features\"", "an array", other)))
        }
        None => {
            return Err(path.error(Problem::Structure(
                "the FeatureCollection has no \"features\"".to_owned(),
            )))
        }
    };
    for (i, f) in features.iter().enumerate() {
        let feature_path = features_path.index(i);
        if f.get("type").and_then(Value::as_str) != Some("Feature") {
            return Err(feature_path.error(wrong_type(
                &format!("features[{i}]"),
                "an object with \"type\": \"Feature\"",
                f,
            )));
        }
        feature(f, &feature_path, Some(i), mode, layer)?;
    }
    Ok(())
}

/// Which part of the file a geometry belongs to, for messages.
#[derive(Debug, Clone, Copy)]
enum Subject<'v> {
    /// `index` is the position in "features", None for a lone Feature; `id` its "id" member.
    Feature {
        index: Option<usize>,
        id: Option<&'v Value>,
    },
    Geometry,
}

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = match self {
            Subject::Feature { index: Some(i), id } => {
                write!(f, "features[{i}]")?;
                id
            }
            Subject::Feature { index: None, id } => {
                f.write_str("the feature")?;
                id
            }
            Subject::Geometry => return f.write_str("the geometry"),
        };
        // GeoJSON ids are strings or numbers; anything else is not worth quoting.
        match id {
            Some(Value::String(s)) => write!(f, " (id {:?})", excerpt(s)),
            Some(Value::Number(n)) => write!(f, " (id {n})"),
            _ => Ok(()),
        }
    }
}

/// A Feature; `index` is its position in "features", None for a lone Feature.
fn feature(
    value: &Value,
    path: &JsonPath,
    index: Option<usize>,
    mode: WeightMode,
    layer: &mut Layer,
) -> Result<(), JsonError> {
    // A feature without a location (null geometry) has nowhere to be drawn.
    let geometry_value = match value.get("geometry") {
        None | Some(Value::Null) => return Ok(()),
        Some(g) => g,
    };
    let w = match mode {
        WeightMode::FromData => feature_weight(value, path)?,
        WeightMode::Unweighted => 1.0,
    };
    let subject = Subject::Feature {
        index,
        id: value.get("id"),
    };
    geometry(geometry_value, &path.key("geometry"), subject, w, layer)
}

fn feature_weight(feature: &Value, path: &JsonPath) -> Result<f32, JsonError> {
    let properties_path = path.key("properties");
    let properties = match feature.get("properties") {
        None | Some(Value::Null) => return Ok(1.0),
        Some(Value::Object(properties)) => properties,
        Some(other) => {
            return Err(properties_path.error(wrong_type(
                "\"properties\"",
                "an object or null",
                other,
            )))
        }
    };
    let found = WEIGHT_NAMES.iter().find_map(|name| {
        properties
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
    });
    let Some((key, value)) = found else {
        return Ok(1.0);
    };
    let weight_path = properties_path.key(key);
    let weight = json_number(value, &weight_path, Field::Weight)?;
    weight_value(weight).map_err(|p| weight_path.error(p))
}

fn geometry(
    value: &Value,
    path: &JsonPath,
    subject: Subject,
    w: f32,
    layer: &mut Layer,
) -> Result<(), JsonError> {
    let coordinates_path = path.key("coordinates");
    let coordinates = || {
        value.get("coordinates").ok_or_else(|| {
            path.error(Problem::Structure(format!(
                "{subject}: the geometry has no \"coordinates\""
            )))
        })
    };
    match value.get("type").and_then(Value::as_str) {
        Some("Point") => position(coordinates()?, &coordinates_path, w, layer),
        Some("MultiPoint") => {
            let positions = json_array(coordinates()?, &coordinates_path, "\"coordinates\"")?;
            for (i, p) in positions.iter().enumerate() {
                position(p, &coordinates_path.index(i), w, layer)?;
            }
            Ok(())
        }
        Some("GeometryCollection") => {
            let geometries_path = path.key("geometries");
            let geometries = value.get("geometries").ok_or_else(|| {
                path.error(Problem::Structure(format!(
                    "{subject}: the GeometryCollection has no \"geometries\""
                )))
            })?;
            // serde_json refuses nesting deeper than 128, which bounds this recursion.
            for (i, g) in json_array(geometries, &geometries_path, "\"geometries\"")?
                .iter()
                .enumerate()
            {
                geometry(g, &geometries_path.index(i), subject, w, layer)?;
            }
            Ok(())
        }
        Some(kind) => Err(path.key("type").error(Problem::UnsupportedGeometry {
            what: subject.to_string(),
            kind: kind.to_owned(),
        })),
        None => Err(path.error(wrong_type(
            &format!("{subject}: the geometry"),
            "an object with a \"type\"",
            value,
        ))),
    }
}

/// A GeoJSON position `[lon, lat(, altitude...)]`; altitude is ignored.
fn position(value: &Value, path: &JsonPath, w: f32, layer: &mut Layer) -> Result<(), JsonError> {
    let Some([lon, lat, ..]) = value.as_array().map(Vec::as_slice) else {
        return Err(path.error(wrong_type("a position", "[lon, lat]", value)));
    };
    let lon = json_number(lon, &path.index(0), Field::Longitude)?;
    let lat = json_number(lat, &path.index(1), Field::Latitude)?;
    layer.push(lon, lat, w).map_err(|p| path.error(p))
}

fn json_array<'v>(
    value: &'v Value,
    path: &JsonPath,
    what: &str,
) -> Result<&'v Vec<Value>, JsonError> {
    value
        .as_array()
        .ok_or_else(|| path.error(wrong_type(what, "an array", value)))
}

fn json_number(value: &Value, path: &JsonPath, field: Field) -> Result<f64, JsonError> {
    // Without serde_json's arbitrary_precision every JSON number is a finite f64.
    value
        .as_f64()
        .ok_or_else(|| path.error(wrong_type(&field.to_string(), "a number", value)))
}

fn wrong_type(what: &str, expected: &'static str, found: &Value) -> Problem {
    Problem::WrongType {
        what: what.to_owned(),
        expected,
        found: describe(found),
    }
}

/// A JSON value as a message shows it: its kind, and the value itself when short.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {:?}", excerpt(s)),
        Value::Array(a) if a.len() == 1 => "an array of 1 element".to_owned(),
        Value::Array(a) => format!("an array of {} elements", a.len()),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// Where a value sits in the JSON document, kept as a chain of borrowed steps on the stack so
/// that walking a large file costs nothing until an error needs the location.
#[derive(Debug, Clone, Copy)]
struct JsonPath<'a> {
    parent: Option<&'a JsonPath<'a>>,
    step: Option<Step<'a>>,
}

#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OwnedStep {
    Key(String),
    Index(usize),
}

/// A problem at a place in a JSON document, before the place is turned into a line.
#[derive(Debug)]
struct JsonError {
    steps: Vec<OwnedStep>,
    problem: Problem,
}

impl<'a> JsonPath<'a> {
    const ROOT: JsonPath<'static> = JsonPath {
        parent: None,
        step: None,
    };

    fn key(&'a self, key: &'a str) -> JsonPath<'a> {
        JsonPath {
            parent: Some(self),
            step: Some(Step::Key(key)),
        }
    }

    fn index(&'a self, index: usize) -> JsonPath<'a> {
        JsonPath {
            parent: Some(self),
            step: Some(Step::Index(index)),
        }
    }

    fn error(&self, problem: Problem) -> JsonError {
        let mut steps = Vec::new();
        let mut at = Some(self);
        while let Some(path) = at {
            match path.step {
                Some(Step::Key(k)) => steps.push(OwnedStep::Key(k.to_owned())),
                Some(Step::Index(i)) => steps.push(OwnedStep::Index(i)),
                None => {}
            }
            at = path.parent;
        }
        steps.reverse();
        JsonError { steps, problem }
    }
}

// ---------------------------------------------------------------------------------------------
// Finding a JSON value's line: serde_json's Value keeps no positions, so the (already
// validated) text is scanned again along the path.

/// The line where the value at `steps` starts; the deepest part of the path that can be
/// found if the rest cannot (which only a scanner bug would cause).
fn line_of_path(text: &[u8], steps: &[OwnedStep]) -> u64 {
    let offset = (0..=steps.len())
        .rev()
        .find_map(|n| {
            steps
                .get(..n)
                .and_then(|prefix| offset_of_path(text, prefix))
        })
        .unwrap_or(0);
    line_at(text, offset)
}

fn offset_of_path(text: &[u8], steps: &[OwnedStep]) -> Option<usize> {
    let mut pos = skip_ws(text, 0);
    for step in steps {
        pos = match step {
            OwnedStep::Index(i) => element_offset(text, pos, *i)?,
            OwnedStep::Key(k) => member_offset(text, pos, k)?,
        };
    }
    Some(pos)
}

/// The start of element `index` of the array starting at `pos`.
fn element_offset(text: &[u8], pos: usize, index: usize) -> Option<usize> {
    if text.get(pos) != Some(&b'[') {
        return None;
    }
    let mut pos = skip_ws(text, pos + 1);
    for _ in 0..index {
        pos = skip_ws(text, value_end(text, pos)?);
        if text.get(pos) != Some(&b',') {
            return None;
        }
        pos = skip_ws(text, pos + 1);
    }
    Some(pos)
}

/// The start of the value of member `key` of the object starting at `pos`; the last one if
/// the key repeats, as serde_json keeps the last.
fn member_offset(text: &[u8], pos: usize, key: &str) -> Option<usize> {
    if text.get(pos) != Some(&b'{') {
        return None;
    }
    let mut pos = skip_ws(text, pos + 1);
    let mut found = None;
    while text.get(pos) == Some(&b'"') {
        let key_end = string_end(text, pos)?;
        let is_key = key_matches(text.get(pos..key_end)?, key);
        pos = skip_ws(text, key_end);
        if text.get(pos) != Some(&b':') {
            return None;
        }
        pos = skip_ws(text, pos + 1);
        if is_key {
            found = Some(pos);
        }
        pos = skip_ws(text, value_end(text, pos)?);
        if text.get(pos) != Some(&b',') {
            break;
        }
        pos = skip_ws(text, pos + 1);
    }
    found
}

/// Whether the quoted JSON string `quoted` is `key`; only keys with escapes need decoding.
fn key_matches(quoted: &[u8], key: &str) -> bool {
    match quoted.get(1..quoted.len().saturating_sub(1)) {
        Some(raw) if !raw.contains(&b'\\') => raw == key.as_bytes(),
        _ => serde_json::from_slice::<String>(quoted).is_ok_and(|s| s == key),
    }
}

fn skip_ws(text: &[u8], mut pos: usize) -> usize {
    while text
        .get(pos)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        pos += 1;
    }
    pos
}

/// The offset just past the string whose opening quote is at `pos`.
fn string_end(text: &[u8], pos: usize) -> Option<usize> {
    let mut i = pos + 1;
    loop {
        match text.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// The offset just past the value starting at `pos`.
fn value_end(text: &[u8], pos: usize) -> Option<usize> {
    match text.get(pos)? {
        b'"' => string_end(text, pos),
        b'{' | b'[' => container_end(text, pos),
        _ => {
            let mut i = pos;
            while text
                .get(i)
                .is_some_and(|b| !matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                i += 1;
            }
            Some(i)
        }
    }
}

/// The offset just past the object or array starting at `pos`, counting depth rather than
/// recursing so that no input can exhaust the stack.
fn container_end(text: &[u8], pos: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = pos;
    loop {
        match text.get(i)? {
            b'"' => {
                i = string_end(text, i)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tile::{world_x_to_lon, world_y_to_lat, MAX_LAT};
    use std::io::Write;

    fn parse(name: &str, text: &str) -> Result<Vec<WorldPoint>, LoadError> {
        parse_points(name, text.as_bytes(), WeightMode::FromData)
    }

    fn ok(name: &str, text: &str) -> Vec<WorldPoint> {
        match parse(name, text) {
            Ok(points) => points,
            Err(e) => panic!("{name} should load, got: {e}"),
        }
    }

    /// The error message for `text`, checked to start with `file:line: `.
    fn err_at(name: &str, text: &str, line: u64) -> String {
        err_bytes_at(name, text.as_bytes(), line)
    }

    fn err_bytes_at(name: &str, bytes: &[u8], line: u64) -> String {
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

    fn assert_has(message: &str, part: &str) {
        assert!(
            message.contains(part),
            "{message:?} should contain {part:?}"
        );
    }

    /// (lon, lat, w, seq) of a point, back in degrees.
    fn lonlat(p: &WorldPoint) -> (f64, f64, f32, u32) {
        let round = |v: f64| (v * 1e9).round() / 1e9;
        (
            round(world_x_to_lon(p.x)),
            round(world_y_to_lat(p.y)),
            p.w,
            p.seq,
        )
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("twine-load-{}-{name}", std::process::id()))
    }

    // --- CSV -------------------------------------------------------------------------------

    #[test]
    fn csv_finds_columns_by_name_in_any_order_and_case() {
        let points = ok(
            "p.csv",
            "id,LAT,Lon,name,Count\n1,52.5,13.4,\"Berlin, DE\",3\n2,-33.9,151.2,Sydney,0\n",
        );
        assert_eq!(lonlat(&points[0]), (13.4, 52.5, 3.0, 0));
        assert_eq!(lonlat(&points[1]), (151.2, -33.9, 0.0, 1));
        assert_eq!(points[0].x, lon_to_world_x(13.4));
        assert_eq!(points[0].y, lat_to_world_y(52.5));
    }

    #[test]
    fn csv_prefers_specific_names_over_x_and_y() {
        let points = ok("p.csv", "x,y,longitude,latitude\n1,2,3,4\n");
        assert_eq!(lonlat(&points[0]), (3.0, 4.0, 1.0, 0));
    }

    #[test]
    fn csv_without_names_uses_the_first_columns_and_the_third_as_weight() {
        let points = ok("p.csv", "a,b,c,d\n13.4,52.5,2.5,x\n");
        assert_eq!(lonlat(&points[0]), (13.4, 52.5, 2.5, 0));
        let points = ok("p.csv", "a,b\n13.4,52.5\n");
        assert_eq!(points[0].w, 1.0);
    }

    #[test]
    fn csv_weight_is_the_column_after_lon_and_lat_unless_one_is_named() {
        assert_eq!(ok("p.csv", "id,lon,lat,pop\n7,1,2,10\n")[0].w, 10.0);
        assert_eq!(ok("p.csv", "name,lat,lon\nx,1,2\n")[0].w, 1.0);
        assert_eq!(
            ok("p.csv", "lon,lat,name,intensity\n1,2,x,0.25\n")[0].w,
            0.25
        );
    }

    #[test]
    fn csv_ignores_other_columns_with_quotes_commas_newlines_and_non_ascii() {
        let text = "lon,lat,population,name,country\n\
                    1.65362,42.57952,1052,\"El Tarter\",AD\n\
                    1.49129,42.46372,8022,\"Sant Julià de Lòria, \"\"the\"\"\nsecond line\",AD\n\
                    1,95,1,\"x\",AD\n";
        let points = parse_points("p.csv", text.as_bytes(), WeightMode::FromData);
        // The quoted name spans lines 3 and 4, so the bad row is on line 5.
        let message = points.unwrap_err().to_string();
        assert_eq!(message, "p.csv:5: latitude 95 is outside -90..90");
        let good: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
        let points = ok("p.csv", &good);
        assert_eq!(lonlat(&points[1]), (1.49129, 42.46372, 8022.0, 1));
    }

    #[test]
    fn csv_unweighted_reads_no_weights() {
        let points = parse_points(
            "p.csv",
            b"lon,lat,w\n1,2,abc\n3,4\n5,6,-1\n",
            WeightMode::Unweighted,
        )
        .unwrap();
        assert_eq!(
            points.iter().map(|p| p.w).collect::<Vec<_>>(),
            [1.0, 1.0, 1.0]
        );
    }

    #[test]
    fn csv_skips_blank_lines_and_still_counts_them() {
        let text = "lon,lat\n\n1,2\n\n,,\n  \n3,4\n1,95\n";
        let message = err_at("p.csv", text, 8);
        assert_has(&message, "latitude 95 is outside -90..90");
        let points = ok("p.csv", "\n\nlon,lat\n\n1,2\n\n3,4\n\n");
        assert_eq!(points.len(), 2);
        assert_eq!(points[1].seq, 1);
    }

    #[test]
    fn csv_with_crlf_line_ends_counts_lines() {
        let message = err_at("p.csv", "lon,lat\r\n1,2\r\n1,x\r\n", 3);
        assert_has(&message, "latitude \"x\" is not a finite number");
        err_at("p.csv", "\r\nlon,lat\r\n\r\n\r\n1,x\r\n", 5);
        err_at("p.csv", "lon,lat\n1,2\n\n\n1,x", 5);
    }

    #[test]
    fn csv_empty_file_or_header_only_is_an_empty_layer() {
        for text in [
            "",
            "\n\n",
            "lon,lat,weight\n",
            "lon,lat,weight",
            "lon,lat\r\n\r\n",
        ] {
            assert_eq!(ok("p.csv", text), [], "{text:?}");
        }
    }

    #[test]
    fn csv_first_row_of_numbers_is_data() {
        let points = ok("p.csv", "13.4,52.5,2\n2.35,48.85,1\n");
        assert_eq!(lonlat(&points[0]), (13.4, 52.5, 2.0, 0));
        assert_eq!(points.len(), 2);
        let message = err_at("p.csv", "13.4,95\n", 1);
        assert_has(&message, "latitude 95");
    }

    #[test]
    fn csv_byte_order_mark_is_ignored() {
        let points = ok("p.csv", "\u{feff}lat,lon\n1,2\n");
        assert_eq!(lonlat(&points[0]), (2.0, 1.0, 1.0, 0));
    }

    #[test]
    fn csv_gzip_is_read_by_extension_and_by_content() {
        let bytes = gzip(b"lon,lat,w\n1,2,3\n");
        for name in ["p.csv.gz", "p.csv", "P.CSV.GZ"] {
            let points = parse_points(name, &bytes, WeightMode::FromData).unwrap();
            assert_eq!(lonlat(&points[0]), (1.0, 2.0, 3.0, 0), "{name}");
        }
        // Concatenated gzip members are one file.
        let mut two = gzip(b"lon,lat\n1,2\n");
        two.extend(gzip(b"3,4\n"));
        assert_eq!(
            parse_points("p.csv.gz", &two, WeightMode::FromData)
                .unwrap()
                .len(),
            2
        );
        // A .csv.gz that is plain text (already decompressed on download) still loads.
        assert_eq!(ok("p.csv.gz", "lon,lat\n1,2\n").len(), 1);
    }

    #[test]
    fn csv_line_numbers_are_of_the_decompressed_text() {
        let bytes = gzip(b"lon,lat\n1,2\n1,-91\n");
        let message = err_bytes_at("p.csv.gz", &bytes, 3);
        assert_has(&message, "latitude -91 is outside -90..90");
    }

    #[test]
    fn csv_bad_numbers_are_errors_with_the_line() {
        let cases = [
            (
                "lon,lat\n1,2\nabc,2\n",
                3,
                "longitude \"abc\" is not a finite number",
            ),
            (
                "lon,lat\n1,NaN\n",
                2,
                "latitude \"NaN\" is not a finite number",
            ),
            (
                "lon,lat\ninf,1\n",
                2,
                "longitude \"inf\" is not a finite number",
            ),
            ("lon,lat\n,2\n", 2, "longitude \"\" is not a finite number"),
            (
                "lon,lat,w\n1,2,3\n1,2,-inf\n",
                3,
                "weight \"-inf\" is not a finite number",
            ),
            (
                "lon,lat,w\n1,2,heavy\n",
                2,
                "weight \"heavy\" is not a finite number",
            ),
            (
                "lon,lat,w\n1,2,1,5\n1,2,1e400\n",
                3,
                "weight \"1e400\" is not a finite number",
            ),
        ];
        for (text, line, part) in cases {
            assert_has(&err_at("points.csv", text, line), part);
        }
    }

    #[test]
    fn csv_long_bad_fields_are_shortened_in_messages() {
        let text = format!("lon,lat\n{},1\n", "é".repeat(100));
        let message = err_at("p.csv", &text, 2);
        assert_has(&message, &format!("\"{}...\"", "é".repeat(40)));
    }

    #[test]
    fn csv_missing_columns_are_errors_with_the_line() {
        assert_eq!(
            err_at("p.csv", "lon,lat\n1,2\n3\n", 3),
            "p.csv:3: missing column latitude (column 2)"
        );
        assert_eq!(
            err_at("p.csv", "lon,lat,population\n1,2,3\n4,5\n", 3),
            "p.csv:3: missing column weight (column 3)"
        );
        assert_eq!(
            err_at("p.csv", "id,lat,lon\n1,2,3\n4,5\n", 3),
            "p.csv:3: missing column longitude (column 3)"
        );
    }

    #[test]
    fn csv_header_naming_only_one_coordinate_is_an_error() {
        let message = err_at("p.csv", "\nlon,foo\n1,2\n", 2);
        assert_has(&message, "names a longitude column but no latitude column");
        let message = err_at("p.csv", "y,foo\n1,2\n", 1);
        assert_has(&message, "names a latitude column but no longitude column");
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

    // --- GeoJSON ---------------------------------------------------------------------------

    const COLLECTION: &str = r#"{
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

    #[test]
    fn geojson_feature_collection_points_multipoints_and_collections() {
        let points = ok("p.geojson", COLLECTION);
        let got: Vec<_> = points.iter().map(lonlat).collect();
        assert_eq!(
            got,
            [
                (13.4, 52.5, 2.0, 0),
                (1.0, 2.0, 3.0, 1),
                (3.0, 4.0, 3.0, 2),
                (5.0, 6.0, 1.0, 3),
                (7.0, 8.0, 1.0, 4),
                (-9.0, -10.0, 1.0, 5),
            ]
        );
        // A .json file holding an object is GeoJSON too.
        assert_eq!(ok("p.json", COLLECTION), points);
        let unweighted =
            parse_points("p.geojson", COLLECTION.as_bytes(), WeightMode::Unweighted).unwrap();
        assert!(unweighted.iter().all(|p| p.w == 1.0));
    }

    #[test]
    fn geojson_lone_feature_and_bare_geometries() {
        let feature = r#"{"type": "Feature", "properties": {"w": 0.5}, "geometry": {"type": "Point", "coordinates": [1, 2]}}"#;
        assert_eq!(lonlat(&ok("p.geojson", feature)[0]), (1.0, 2.0, 0.5, 0));
        let point = r#"{"type": "Point", "coordinates": [1, 2]}"#;
        assert_eq!(lonlat(&ok("p.geojson", point)[0]), (1.0, 2.0, 1.0, 0));
        let multi = r#"{"type": "MultiPoint", "coordinates": [[1, 2], [3, 4]]}"#;
        assert_eq!(ok("p.json", multi).len(), 2);
        let empty = r#"{"type": "FeatureCollection", "features": []}"#;
        assert_eq!(ok("p.geojson", empty), []);
        assert_eq!(ok("p.geojson", " \n"), []);
    }

    #[test]
    fn geojson_unsupported_geometry_names_the_feature_and_line() {
        let text = "{\"type\": \"FeatureCollection\", \"features\": [\n\
                    {\"type\": \"Feature\", \"geometry\": {\"type\": \"Point\", \"coordinates\": [1, 2]}},\n\
                    {\"type\": \"Feature\", \"id\": 7, \"geometry\":\n\
                    {\"type\": \"LineString\", \"coordinates\": [[1, 2], [3, 4]]}}\n]}";
        let message = err_at("p.geojson", text, 4);
        assert_has(
            &message,
            "features[1] (id 7): geometry type \"LineString\" is not supported",
        );
        let bare = "{\"type\": \"Polygon\", \"coordinates\": []}";
        assert_has(
            &err_at("p.geojson", bare, 1),
            "the geometry: geometry type \"Polygon\"",
        );
        let nested = "{\"type\": \"Feature\", \"geometry\": {\"type\": \"GeometryCollection\", \"geometries\": [\n{\"type\": \"Point\", \"coordinates\": [1, 2]},\n{\"type\": \"MultiPolygon\", \"coordinates\": []}]}}";
        assert_has(
            &err_at("p.geojson", nested, 3),
            "the feature: geometry type \"MultiPolygon\"",
        );
        let named = nested.replace(
            "{\"type\": \"Feature\",",
            "{\"type\": \"Feature\", \"id\": \"road-1\",",
        );
        assert_has(
            &err_at("p.geojson", &named, 3),
            "the feature (id \"road-1\"): geometry type",
        );
    }

    #[test]
    fn geojson_non_numeric_weight_is_an_error_at_its_line() {
        let text = "{\"type\": \"FeatureCollection\", \"features\": [\n\
                    {\"type\": \"Feature\", \"properties\": {\"weight\": 1}, \"geometry\": {\"type\": \"Point\", \"coordinates\": [1, 2]}},\n\
                    {\"type\": \"Feature\", \"properties\": {\n\"name\": \"x\",\n\"Weight\": \"heavy\"}, \"geometry\": {\"type\": \"Point\", \"coordinates\": [1, 2]}}\n]}";
        let message = err_at("p.geojson", text, 5);
        assert_has(
            &message,
            "weight must be a number, found the string \"heavy\"",
        );
        let null_weight = text.replace("\"heavy\"", "null");
        assert_has(
            &err_at("p.geojson", &null_weight, 5),
            "weight must be a number, found null",
        );
        let negative = text.replace("\"heavy\"", "-2");
        assert_has(&err_at("p.geojson", &negative, 5), "weight -2 is negative");
        // Not read at all when unweighted.
        assert_eq!(
            parse_points("p.geojson", text.as_bytes(), WeightMode::Unweighted)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn geojson_coordinate_errors_name_the_line() {
        let mut text = String::from("{\"type\": \"FeatureCollection\",\n\"features\": [\n");
        for i in 0..5 {
            let lat = if i == 3 { 91.0 } else { 1.0 };
            let sep = if i < 4 { "," } else { "" };
            text.push_str(&format!(
                "{{\"type\": \"Feature\", \"geometry\": {{\"type\": \"Point\", \"coordinates\": [0, {lat}]}}}}{sep}\n"
            ));
        }
        text.push_str("]}\n");
        assert_eq!(
            err_at("p.geojson", &text, 6),
            "p.geojson:6: latitude 91 is outside -90..90"
        );
        let multi = "{\"type\": \"MultiPoint\", \"coordinates\": [\n[1, 2],\n[200, 2]]}";
        assert_has(
            &err_at("p.geojson", multi, 3),
            "longitude 200 is outside -180..180",
        );
        let short = "{\"type\": \"Point\",\n\"coordinates\": [1]}";
        assert_has(
            &err_at("p.geojson", short, 2),
            "a position must be [lon, lat], found an array of 1 element",
        );
        let text_number = "{\"type\": \"Point\", \"coordinates\": [1,\n\"2\"]}";
        assert_has(
            &err_at("p.geojson", text_number, 2),
            "latitude must be a number, found the string \"2\"",
        );
        let missing = "{\"type\": \"Point\"}";
        assert_has(&err_at("p.geojson", missing, 1), "has no \"coordinates\"");
    }

    #[test]
    fn geojson_structure_errors() {
        assert_has(&err_at("p.geojson", "{\"foo\": 1}", 1), "not GeoJSON");
        assert_has(
            &err_at("p.geojson", "[[1, 2]]", 1),
            "the file must be a GeoJSON object, found an array",
        );
        assert_has(
            &err_at(
                "p.geojson",
                "{\"type\": \"FeatureCollection\", \"features\": {}}",
                1,
            ),
            "\"features\" must be an array, found an object",
        );
        assert_has(
            &err_at("p.geojson", "{\"type\": \"FeatureCollection\"}", 1),
            "has no \"features\"",
        );
        let not_feature = "{\"type\": \"FeatureCollection\", \"features\": [\n{\"type\": \"Point\", \"coordinates\": [1, 2]}]}";
        assert_has(
            &err_at("p.geojson", not_feature, 2),
            "features[0] must be an object with \"type\": \"Feature\"",
        );
        let bad_properties = "{\"type\": \"Feature\", \"properties\": [1], \"geometry\": {\"type\": \"Point\", \"coordinates\": [1, 2]}}";
        assert_has(
            &err_at("p.geojson", bad_properties, 1),
            "\"properties\" must be an object or null",
        );
        let bad_geometry = "{\"type\": \"Feature\", \"geometry\": 5}";
        assert_has(
            &err_at("p.geojson", bad_geometry, 1),
            "the feature: the geometry must be an object",
        );
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

    // --- The seed's list -------------------------------------------------------------------

    #[test]
    fn seed_list_is_latitude_first() {
        let points = ok("p.json", "[[52.5, 13.4], [48.85, 2.35, 0.5]]");
        assert_eq!(lonlat(&points[0]), (13.4, 52.5, 1.0, 0));
        assert_eq!(lonlat(&points[1]), (2.35, 48.85, 0.5, 1));
        let points = parse_points("p.json", b"[[1, 2, \"x\"]]", WeightMode::Unweighted).unwrap();
        assert_eq!(points[0].w, 1.0);
        assert_eq!(ok("p.json", "[]"), []);
        assert_eq!(ok("p.json", ""), []);
        assert_eq!(ok("p.json", "\u{feff}[[1, 2]]").len(), 1);
    }

    #[test]
    fn seed_list_errors_name_the_element_line() {
        let text = "[\n[1, 2],\n[3, 4, 1],\n[91, 5]\n]";
        assert_eq!(
            err_at("p.json", text, 4),
            "p.json:4: latitude 91 is outside -90..90"
        );
        let lon = "[[1, 2],\n  [3, 190]]";
        assert_has(
            &err_at("p.json", lon, 2),
            "longitude 190 is outside -180..180",
        );
        let object = "[[1, 2],\n{\"lat\": 1, \"lng\": 2}]";
        assert_has(
            &err_at("p.json", object, 2),
            "element 1 must be [lat, lon] or [lat, lon, weight], found an object",
        );
        let long = "[[1, 2, 3, 4]]";
        assert_has(&err_at("p.json", long, 1), "found an array of 4 elements");
        let string = "[[1, 2],\n[3,\n\"4\"]]";
        assert_has(
            &err_at("p.json", string, 3),
            "longitude must be a number, found the string \"4\"",
        );
        let negative = "[[1, 2],\n[3, 4,\n-1]]";
        assert_eq!(
            err_at("p.json", negative, 3),
            "p.json:3: weight -1 is negative"
        );
        let weight = "[[1, 2, null]]";
        assert_has(
            &err_at("p.json", weight, 1),
            "weight must be a number, found null",
        );
        assert_has(&err_at("p.json", "5", 1), "the file must be an array");
    }

    // --- Locating JSON values --------------------------------------------------------------

    fn steps(path: &[&str]) -> Vec<OwnedStep> {
        path.iter()
            .map(|s| match s.parse() {
                Ok(i) => OwnedStep::Index(i),
                Err(_) => OwnedStep::Key((*s).to_owned()),
            })
            .collect()
    }

    #[test]
    fn scanner_skips_strings_escapes_and_nesting() {
        let text = br#"{"a\"b": "x]}\"{[", "features": [ {"s": "[,]", "t": [[], {}]},
            {"k": [1, {"z": "\\"}]},
            3.5e2 ], "q\u0041": 1}"#;
        assert_eq!(line_of_path(text, &steps(&["features", "2"])), 3);
        assert_eq!(
            line_of_path(text, &steps(&["features", "1", "k", "1", "z"])),
            2
        );
        assert_eq!(line_of_path(text, &steps(&["qA"])), 3);
        assert_eq!(line_of_path(text, &steps(&["a\"b"])), 1);
        // Past the end of the document: the deepest part found.
        assert_eq!(
            line_of_path(text, &steps(&["features", "1", "nothing", "3"])),
            2
        );
        assert_eq!(line_of_path(text, &steps(&["features", "9"])), 1);
    }

    #[test]
    fn scanner_takes_the_last_of_repeated_keys_like_serde_json() {
        let text = "{\"type\": \"Point\",\n\"coordinates\": [1, 2],\n\"coordinates\": [1, 95]}";
        assert_eq!(
            err_at("p.geojson", text, 3),
            "p.geojson:3: latitude 95 is outside -90..90"
        );
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
        for record in csv::Reader::from_reader(text.as_bytes()).records() {
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
