//! The tile file format: encoding, checking and decoding one tile file.
//!
//! Little-endian, in this order:
//! `magic "TWTC"`, `format version u8` (2), `key text length u32`, `key text`,
//! `payload length u64`, `payload (PNG)`, `content digest (16 bytes, the tile's ETag)`,
//! `CRC-32 of everything before it (u32)`.
//!
//! The CRC sits at the end, so a truncated or torn file fails it; the key text is compared with
//! the key asked for, which catches hash collisions. A file of another format version is
//! discarded and its tile rendered again.

use super::files::{open_regular, Opened};
use crate::cache::key::TileKey;
use crate::cache::ContentDigest;
use crate::tile::TILE_SIZE;
use std::io::Read;
use std::path::Path;

const MAGIC: &[u8; 4] = b"TWTC";
/// Version 2: the tail is the tile's content digest (its ETag) and a CRC-32 of the whole
/// file before it. (Version 1 ended in a SHA-256 of the file; a hit then hashed the PNG
/// twice, once to verify and once for the ETag.
/// Version 1 files are discarded as unknown and re-rendered.)
const FORMAT_VERSION: u8 = 2;
/// Magic, format version and key text length: what precedes the key text.
pub(super) const HEAD_LEN: usize = 4 + 1 + 4;
pub(super) const PAYLOAD_LEN_BYTES: usize = 8;
const DIGEST_LEN: usize = 16;
/// Content digest, then CRC-32 (little-endian) of everything before the CRC.
pub(super) const CHECKSUM_LEN: usize = DIGEST_LEN + 4;
pub(super) const UNKNOWN_FORMAT: &str = "unknown format version";
/// Keys are short; a larger length field means a damaged header, and refusing it keeps a
/// corrupt file from asking for a huge allocation.
const MAX_KEY_TEXT: usize = 64 * 1024;
/// The largest PNG the disk tier stores: four bytes per pixel of the largest tile, @2x
/// (512 x 512 pixels at one palette index each, 256 KiB raw). An indexed PNG holds about one
/// byte per pixel, a little more when deflate cannot shrink the data, so every tile the server
/// renders fits with room to spare; `encode` refuses anything larger, so no file the server
/// writes is ever larger than [`MAX_FILE_LEN`].
pub(super) const MAX_TILE_PNG: usize = 4 * (2 * TILE_SIZE as usize) * (2 * TILE_SIZE as usize);
/// The largest tile file the server writes; a larger file in the folder is not ours, and is
/// refused before a byte of it is read.
pub(super) const MAX_FILE_LEN: u64 =
    (HEAD_LEN + MAX_KEY_TEXT + PAYLOAD_LEN_BYTES + MAX_TILE_PNG + CHECKSUM_LEN) as u64;

/// The file bytes for a tile, or None if the key text or the PNG can't be stored (longer
/// than [`MAX_KEY_TEXT`] or [`MAX_TILE_PNG`]).
pub(super) fn encode(key_text: &str, payload: &[u8], digest: &ContentDigest) -> Option<Vec<u8>> {
    if key_text.len() > MAX_KEY_TEXT || payload.len() > MAX_TILE_PNG {
        return None;
    }
    let key_len = u32::try_from(key_text.len()).ok()?;
    let total = HEAD_LEN + key_text.len() + PAYLOAD_LEN_BYTES + payload.len() + CHECKSUM_LEN;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&key_len.to_le_bytes());
    out.extend_from_slice(key_text.as_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(digest);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Some(out)
}

/// The payload (as a range of `file`) and content digest of a tile file, if the file is
/// whole, of this format, and for `key_text`. The CRC-32 catches truncation and damage (a
/// torn or flipped byte); the key text is compared in full.
pub(super) fn decode(
    file: &[u8],
    key_text: &str,
) -> Result<(std::ops::Range<usize>, ContentDigest), &'static str> {
    let key_len = parse_head(file)?;
    let checked_len = file.len().checked_sub(4).ok_or("truncated")?;
    let (checked, crc) = file.split_at(checked_len);
    let body_len = checked.len().checked_sub(DIGEST_LEN).ok_or("truncated")?;
    let (body, digest) = checked.split_at(body_len);
    let key_end = HEAD_LEN + key_len;
    let payload_start = key_end + PAYLOAD_LEN_BYTES;
    if body.len() < payload_start {
        return Err("truncated");
    }
    if crc32fast::hash(checked).to_le_bytes() != crc {
        return Err("checksum mismatch");
    }
    if &body[HEAD_LEN..key_end] != key_text.as_bytes() {
        return Err("key mismatch");
    }
    let payload_len = read_u64(&body[key_end..payload_start]);
    if (body.len() - payload_start) as u64 != payload_len {
        return Err("payload length mismatch");
    }
    let mut content = [0u8; DIGEST_LEN];
    content.copy_from_slice(digest);
    Ok((payload_start..body.len(), content))
}

/// Checks magic and format version; returns the key text length.
fn parse_head(file: &[u8]) -> Result<usize, &'static str> {
    let head = file.get(..HEAD_LEN).ok_or("truncated")?;
    if &head[..4] != MAGIC {
        return Err("bad magic");
    }
    if head[4] != FORMAT_VERSION {
        return Err(UNKNOWN_FORMAT);
    }
    let key_len = u32::from_le_bytes([head[5], head[6], head[7], head[8]]) as usize;
    if key_len > MAX_KEY_TEXT {
        return Err("bad key length");
    }
    Ok(key_len)
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(buf)
}

/// The key named in a tile file's header, reading only the header; None for anything but a
/// regular file of at most [`MAX_FILE_LEN`] bytes (opened as [`open_regular`] does).
pub(super) fn read_key(path: &Path) -> Option<TileKey> {
    let Opened::Regular(mut file, _) = open_regular(path, MAX_FILE_LEN).ok()? else {
        return None;
    };
    let mut head = [0u8; HEAD_LEN];
    file.read_exact(&mut head).ok()?;
    let key_len = parse_head(&head).ok()?;
    let mut text = vec![0u8; key_len];
    file.read_exact(&mut text).ok()?;
    TileKey::parse_text(std::str::from_utf8(&text).ok()?)
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::*;
    use super::*;

    /// The bound on tile files holds for the worst tile the renderer can make: the largest
    /// size (@2x), every pixel a pseudo-random index of all 256, which deflate cannot shrink.
    #[test]
    fn the_largest_tile_the_renderer_makes_fits_the_bound() {
        use crate::render::palette::Palette;
        use crate::render::IndexedImage;
        let side = 2 * TILE_SIZE;
        let mut state = 0x2545_f491_u32;
        let pixels = (0..side * side)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 24) as u8
            })
            .collect();
        let palette = Palette(std::array::from_fn(|i| [i as u8, 0, 0, (i / 2) as u8]));
        let image = IndexedImage {
            width: side,
            height: side,
            pixels,
            palette,
        };
        let png = crate::render::png::encode_indexed(&image).unwrap();
        assert!(
            png.len() > (side * side) as usize,
            "incompressible: {}",
            png.len()
        );
        assert!(png.len() <= MAX_TILE_PNG, "{} > {MAX_TILE_PNG}", png.len());
        let k = key("l", 1, 0);
        assert!(encode(&k.text(), &png, &content_digest(&png)).is_some());
        assert!(encode(&k.text(), &vec![0; MAX_TILE_PNG + 1], &[0; 16]).is_none());
    }

    #[test]
    fn truncated_file_is_discarded() {
        let dir = TempDir::new("truncated");
        let cache = DiskCache::open(&dir.0, 1 << 20).unwrap();
        let k = key("l", 1, 1);
        cache.put(&k, &png(1, 400));
        let path = path_of(&cache, &k);
        let len = fs::metadata(&path).unwrap().len();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 10)
            .unwrap();

        assert_eq!(cache.get(&k), None);
        assert!(!path.exists());
        let s = cache.stats();
        assert_eq!((s.corrupt, s.files, tile_bytes(&s)), (1, 0, 0));
        // Gone for good, not re-counted.
        assert_eq!(cache.get(&k), None);
        assert_eq!(cache.stats().corrupt, 1);
    }

    #[test]
    fn corrupted_byte_is_discarded() {
        let dir = TempDir::new("corrupt");
        let cache = DiskCache::open(&dir.0, 1 << 20).unwrap();
        // Flip a byte in the payload, in the key text, in the content digest, in the CRC,
        // and the version.
        let offsets = |k: &TileKey| {
            let key_end = HEAD_LEN + k.text().len();
            [
                key_end + PAYLOAD_LEN_BYTES + 100,
                HEAD_LEN + 3,
                key_end + PAYLOAD_LEN_BYTES + 400 + 5,
                key_end + PAYLOAD_LEN_BYTES + 400 + DIGEST_LEN + 2,
                4,
            ]
        };
        for (i, &at) in offsets(&key("l", 1, 0)).iter().enumerate() {
            let k = key("l", 1, i as u32);
            cache.put(&k, &png(1, 400));
            let path = path_of(&cache, &k);
            let mut bytes = fs::read(&path).unwrap();
            bytes[at] ^= 0x40;
            fs::write(&path, &bytes).unwrap();
            assert_eq!(cache.get(&k), None, "flip at {at}");
            assert!(!path.exists());
        }
        assert_eq!(cache.stats().corrupt, 5);
        assert_eq!(cache.stats().files, 0);
    }
    #[test]
    fn file_for_another_key_is_discarded() {
        // Stands in for a hash collision: a whole, valid file naming a different key.
        let dir = TempDir::new("mismatch");
        let cache = DiskCache::open(&dir.0, 1 << 20).unwrap();
        let (a, b) = (key("l", 1, 1), key("l", 1, 2));
        cache.put(&a, &png(1, 100));
        cache.put(&b, &png(2, 100));
        fs::copy(path_of(&cache, &a), path_of(&cache, &b)).unwrap();
        assert_eq!(cache.get(&b), None);
        assert_eq!(cache.get(&a), Some(png(1, 100)));
        assert_eq!(cache.stats().corrupt, 1);
    }
}
