//! CSV with a header row: columns found by name, else by position.

use super::{
    excerpt, line_at, weight_value, Field, Layer, LineError, Problem, WeightMode, WEIGHT_NAMES,
};
use crate::source::attributes::AttributeSchema;

const LON_NAMES: [&str; 5] = ["longitude", "lon", "lng", "long", "x"];
const LAT_NAMES: [&str; 3] = ["latitude", "lat", "y"];

/// Where a row's values are (0-based); `weight` is None when every point weighs 1.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Columns {
    lon: usize,
    lat: usize,
    weight: Option<usize>,
    /// The declared time column and category columns (in declaration order).
    time: Option<usize>,
    categories: Vec<usize>,
}

pub(super) fn parse_csv(text: &str, mode: WeightMode, layer: &mut Layer) -> Result<(), LineError> {
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
        match &columns {
            Some(cols) => csv_row(&record, cols, layer).map_err(at)?,
            None => {
                let (cols, header_is_data) =
                    header_columns(&record, mode, &layer.schema).map_err(at)?;
                if header_is_data {
                    csv_row(&record, &cols, layer).map_err(at)?;
                }
                columns = Some(cols);
            }
        }
    }
    Ok(())
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
    schema: &AttributeSchema,
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
    // Declared columns are found by their exact name, else by name in any case.
    let declared = |name: &String| {
        let found = header
            .iter()
            .position(|h| h == name)
            .or_else(|| header.iter().position(|h| h.eq_ignore_ascii_case(name)));
        match found {
            Some(i) if !header_is_data => Ok(i),
            _ => Err(Problem::Header(format!(
                "the header has no column {name:?} (declared by the layer's `time` or `categories`); it has: {}",
                header.iter().collect::<Vec<_>>().join(", ")
            ))),
        }
    };
    let time = schema.time.as_ref().map(declared).transpose()?;
    let categories = schema
        .categories
        .iter()
        .map(declared)
        .collect::<Result<Vec<_>, _>>()?;
    // A declared time or category column is never the weight, named like one or not.
    let attribute = |i: &usize| time == Some(*i) || categories.contains(i);
    let next = lon.max(lat) + 1;
    let weight = match mode {
        WeightMode::Unweighted => None,
        WeightMode::FromData => named_weight
            .filter(|i| !attribute(i))
            .or((next < header.len()).then_some(next))
            .filter(|i| !attribute(i)),
    };
    let columns = Columns {
        lon,
        lat,
        weight,
        time,
        categories,
    };
    Ok((columns, header_is_data))
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

fn csv_row(record: &csv::StringRecord, cols: &Columns, layer: &mut Layer) -> Result<(), Problem> {
    if let Some(i) = cols.time {
        layer.set_time_text(record.get(i).unwrap_or(""))?;
    }
    for (column, &i) in cols.categories.iter().enumerate() {
        // A short row lacks the value: the empty value, as an empty field.
        layer.set_category(column, record.get(i).unwrap_or(""));
    }
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

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_has, err_at, err_bytes_at, gzip, lonlat, ok};
    use super::super::{parse_points, WeightMode};
    use crate::tile::{lat_to_world_y, lon_to_world_x};
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
}
