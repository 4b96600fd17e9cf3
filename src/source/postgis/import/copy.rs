//! Rows encoded for PostgreSQL's binary COPY.
//!
//! The format: a header, then per row a field count and each field as a big-endian length and
//! its binary value, then -1. `geometry`'s binary input is (E)WKB.

use crate::render::WorldPoint;
use crate::tile::world_to_metres;

pub(super) const COPY_HEADER: [u8; 19] = *b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
pub(super) const COPY_TRAILER: [u8; 2] = (-1i16).to_be_bytes();
const EWKB_POINT_BYTES: usize = 25;
pub(super) const ROW_BYTES: usize = 2 + (4 + 8) + (4 + 4) + (4 + EWKB_POINT_BYTES);

/// EWKB's flag for "an SRID follows the type".
const EWKB_SRID_FLAG: u32 = 0x2000_0000;
const WKB_POINT: u32 = 1;
const SRID_WEB_MERCATOR: u32 = 3857;

/// One row's first fields: `seq` (bigint), `weight` (real), `geom` (EWKB Point in Web
/// Mercator metres); `extra` more fields follow ([`encode_time`], [`encode_text`]).
pub(super) fn encode_row(buf: &mut Vec<u8>, seq: i64, p: &WorldPoint, extra: usize) {
    let fields = i16::try_from(3 + extra).unwrap_or(i16::MAX);
    buf.extend_from_slice(&fields.to_be_bytes());
    buf.extend_from_slice(&8i32.to_be_bytes());
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(&4i32.to_be_bytes());
    buf.extend_from_slice(&p.w.to_be_bytes());
    buf.extend_from_slice(&(EWKB_POINT_BYTES as i32).to_be_bytes());
    let (mx, my) = world_to_metres(p.x, p.y);
    buf.extend_from_slice(&ewkb_point(mx, my));
}

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01T00:00:00Z).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A `timestamptz` field (microseconds since 2000-01-01 UTC) of an instant in milliseconds
/// since the Unix epoch; NULL for none.
pub(super) fn encode_time(buf: &mut Vec<u8>, ms: Option<i64>) {
    match ms {
        Some(ms) => {
            buf.extend_from_slice(&8i32.to_be_bytes());
            let micros = ms.saturating_mul(1000).saturating_sub(PG_EPOCH_MICROS);
            buf.extend_from_slice(&micros.to_be_bytes());
        }
        None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

/// A `text` field (its UTF-8 bytes).
pub(super) fn encode_text(buf: &mut Vec<u8>, text: &str) {
    let len = i32::try_from(text.len()).unwrap_or(i32::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&text.as_bytes()[..len as usize]);
}

/// A little-endian EWKB Point with SRID 3857.
fn ewkb_point(mx: f64, my: f64) -> [u8; EWKB_POINT_BYTES] {
    let mut out = [0u8; EWKB_POINT_BYTES];
    out[0] = 1; // little-endian
    out[1..5].copy_from_slice(&(WKB_POINT | EWKB_SRID_FLAG).to_le_bytes());
    out[5..9].copy_from_slice(&SRID_WEB_MERCATOR.to_le_bytes());
    out[9..17].copy_from_slice(&mx.to_le_bytes());
    out[17..25].copy_from_slice(&my.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::point;
    use super::*;

    #[test]
    fn ewkb_point_is_little_endian_with_srid() {
        let bytes = ewkb_point(1.5, -2.0);
        assert_eq!(bytes[..9], [1, 1, 0, 0, 0x20, 0x11, 0x0f, 0, 0]);
        assert_eq!(bytes[9..17], 1.5f64.to_le_bytes());
        assert_eq!(bytes[17..], (-2.0f64).to_le_bytes());
    }

    #[test]
    fn rows_are_encoded_in_binary_copy_layout() {
        let mut buf = Vec::new();
        let p = point(0.25, 0.75, 2.5, 0);
        encode_row(&mut buf, 42, &p, 0);
        assert_eq!(buf.len(), ROW_BYTES);
        assert_eq!(buf[..2], 3i16.to_be_bytes());
        assert_eq!(buf[2..6], 8i32.to_be_bytes());
        assert_eq!(buf[6..14], 42i64.to_be_bytes());
        assert_eq!(buf[14..18], 4i32.to_be_bytes());
        assert_eq!(buf[18..22], 2.5f32.to_be_bytes());
        assert_eq!(buf[22..26], 25i32.to_be_bytes());
        let (mx, my) = world_to_metres(0.25, 0.75);
        assert_eq!(buf[26..], ewkb_point(mx, my));
        assert_eq!(&COPY_HEADER[..11], b"PGCOPY\n\xff\r\n\0");
    }

    #[test]
    fn times_count_microseconds_from_2000_and_texts_their_bytes() {
        let mut buf = Vec::new();
        encode_row(&mut buf, 1, &point(0.5, 0.5, 1.0, 0), 2);
        assert_eq!(buf[..2], 5i16.to_be_bytes());
        buf.clear();
        // 2000-01-01T00:00:01.5Z
        encode_time(&mut buf, Some(946_684_801_500));
        encode_time(&mut buf, None);
        encode_text(&mut buf, "é");
        let mut expected = 8i32.to_be_bytes().to_vec();
        expected.extend_from_slice(&1_500_000i64.to_be_bytes());
        expected.extend_from_slice(&(-1i32).to_be_bytes());
        expected.extend_from_slice(&2i32.to_be_bytes());
        expected.extend_from_slice("é".as_bytes());
        assert_eq!(buf, expected);
    }
}
