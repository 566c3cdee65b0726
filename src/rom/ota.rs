//! Recovery OTA zips: `payload.bin` read in place plus the zip's metadata files.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use zip::CompressionMethod;

use crate::error::{Error, Result};
use crate::format::source::FileSlice;

/// Compressed entries larger than this are not inflated for the CRC check
/// (real ones are a few KiB; images are stored).
const MAX_CHECKED_ENTRY: u64 = 1 << 30;

/// Small text entries larger than this are refused (real ones are < 4 KiB).
const MAX_TEXT_ENTRY: u64 = 1 << 20;

/// One entry of the zip's central directory.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ZipEntry {
    /// Entry name as stored.
    pub name: String,
    /// Uncompressed size.
    pub size: u64,
    /// Compressed size.
    pub compressed_size: u64,
    /// Compression method name.
    pub method: String,
    /// CRC-32 from the central directory.
    pub crc32: u32,
}

/// `payload_properties.txt`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PayloadProperties {
    /// Base64 SHA-256 of payload.bin.
    pub file_hash: Option<String>,
    /// Size of payload.bin.
    pub file_size: Option<u64>,
    /// Base64 SHA-256 of header + manifest.
    pub metadata_hash: Option<String>,
    /// Header + manifest size.
    pub metadata_size: Option<u64>,
}

impl PayloadProperties {
    /// Parses the `KEY=value` lines.
    pub fn parse(text: &str) -> Self {
        let kv = parse_key_values(text);
        PayloadProperties {
            file_hash: kv.get("FILE_HASH").cloned(),
            file_size: kv.get("FILE_SIZE").and_then(|v| v.parse().ok()),
            metadata_hash: kv.get("METADATA_HASH").cloned(),
            metadata_size: kv.get("METADATA_SIZE").and_then(|v| v.parse().ok()),
        }
    }
}

/// `KEY=value` lines into a map; later keys win, blank and `#` lines skipped.
pub fn parse_key_values(text: &str) -> BTreeMap<String, String> {
    crate::util::text::key_values(text).collect()
}

/// An opened OTA zip.
#[derive(Debug)]
pub struct OtaZip {
    /// Central directory entries.
    pub entries: Vec<ZipEntry>,
    /// `META-INF/com/android/metadata` as key/value pairs.
    pub metadata: BTreeMap<String, String>,
    /// `payload_properties.txt`, if present.
    pub properties: Option<PayloadProperties>,
    /// Where payload.bin's data lies in the zip.
    pub payload: FileSlice,
    /// payload.bin's CRC-32 from the central directory.
    pub payload_crc32: u32,
}

fn zip_err(path: &Path, e: zip::result::ZipError) -> Error {
    match e {
        zip::result::ZipError::Io(io) => Error::io(path, io),
        other => Error::invalid(path, format!("not a readable zip: {other}")),
    }
}

/// Reads a small entry as text, bounded.
fn read_text(
    archive: &mut zip::ZipArchive<File>,
    path: &Path,
    name: &str,
) -> Result<Option<String>> {
    let Some(idx) = archive.index_for_name(name) else {
        return Ok(None);
    };
    let entry = archive.by_index(idx).map_err(|e| zip_err(path, e))?;
    let declared = entry.size();
    crate::util::text::read_bounded(entry, declared, MAX_TEXT_ENTRY)
        .map(Some)
        .map_err(|e| Error::invalid(path, format!("entry {name} {e}")))
}

impl OtaZip {
    /// Opens `path` as an OTA zip and locates payload.bin.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let shared = Arc::new(file.try_clone().map_err(|e| Error::io(path, e))?);
        let mut archive = super::zip_archive(path, file)?;
        let mut entries = Vec::with_capacity(archive.len());
        for i in 0..archive.len() {
            let e = archive.by_index_raw(i).map_err(|e| zip_err(path, e))?;
            entries.push(ZipEntry {
                name: String::from_utf8_lossy(e.name_raw()).into_owned(),
                size: e.size(),
                compressed_size: e.compressed_size(),
                method: e.compression().to_string(),
                crc32: e.crc32(),
            });
        }
        let idx = archive.index_for_name("payload.bin").ok_or_else(|| {
            Error::invalid(
                path,
                "zip has no payload.bin: not a recovery (A/B) OTA package",
            )
        })?;
        let (start, size, crc, method) = {
            let e = archive.by_index_raw(idx).map_err(|e| zip_err(path, e))?;
            (e.data_start(), e.size(), e.crc32(), e.compression())
        };
        if method != CompressionMethod::Stored {
            return Err(Error::invalid(
                path,
                format!(
                    "payload.bin is compressed ({method}); OTA packages store it uncompressed so that \
                     it can be read in place, and romkit needs that (recompress the zip with \
                     payload.bin stored, e.g. `zip -0`, or extract payload.bin and pass it directly)"
                ),
            ));
        }
        let start = start.ok_or_else(|| {
            Error::invalid(
                path,
                "payload.bin: local header offset could not be resolved",
            )
        })?;
        if start.checked_add(size).is_none_or(|e| e > file_len) {
            return Err(Error::invalid(
                path,
                format!(
                    "payload.bin data at offset {start} + {size} bytes runs past the end of the zip ({file_len} bytes)"
                ),
            ));
        }
        let metadata = read_text(&mut archive, path, "META-INF/com/android/metadata")?
            .map(|t| parse_key_values(&t))
            .unwrap_or_default();
        let properties = read_text(&mut archive, path, "payload_properties.txt")?
            .map(|t| PayloadProperties::parse(&t));
        Ok(OtaZip {
            entries,
            metadata,
            properties,
            payload: FileSlice::new(shared, path, start, size),
            payload_crc32: crc,
        })
    }

    /// Reads every entry except payload.bin to its end, which makes the zip
    /// reader check its CRC-32. Returns (entry, error) for each failure.
    pub fn check_entry_crcs(path: &Path) -> Result<Vec<(String, String)>> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut archive = super::zip_archive(path, file)?;
        let mut failures = local_header_mismatches(path, &mut archive)?;
        let mut buf = vec![0u8; 1 << 16];
        for i in 0..archive.len() {
            let mut e = match archive.by_index(i) {
                Ok(e) => e,
                Err(err) => {
                    failures.push((format!("#{i}"), err.to_string()));
                    continue;
                }
            };
            if e.name_raw() == b"payload.bin" {
                continue;
            }
            let name = String::from_utf8_lossy(e.name_raw()).into_owned();
            let declared = e.size();
            // Deflate cannot exceed about 1032:1; a larger claim is a bomb or a
            // lie. Stored entries (images of any size) read only what is there.
            let compressed = e.compression() != CompressionMethod::Stored;
            if compressed
                && (declared > MAX_CHECKED_ENTRY
                    || declared / super::MAX_DEFLATE_RATIO > e.compressed_size() + 1)
            {
                failures.push((
                    name,
                    format!(
                        "declares {declared} bytes from {} compressed bytes: refusing to inflate it",
                        e.compressed_size()
                    ),
                ));
                continue;
            }
            let mut total = 0u64;
            loop {
                match e.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        total += n as u64;
                        if total > declared {
                            failures.push((
                                name.clone(),
                                format!("inflates past its declared size of {declared} bytes"),
                            ));
                            break;
                        }
                    }
                    Err(err) => {
                        failures.push((name.clone(), err.to_string()));
                        break;
                    }
                }
            }
        }
        Ok(failures)
    }
}

/// Entries whose local header disagrees with the central directory about
/// the name, the method, the CRC-32 or the sizes: readers that walk local
/// headers (recovery's, streaming unzip) would see another package than the
/// one checked. Sizes and CRC are compared unless the local header defers
/// them (a data descriptor follows the data, or zip64 holds them).
fn local_header_mismatches(
    path: &Path,
    archive: &mut zip::ZipArchive<File>,
) -> Result<Vec<(String, String)>> {
    use std::os::unix::fs::FileExt;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let Ok(e) = archive.by_index_raw(i) else {
            continue;
        };
        let name = e.name_raw().to_vec();
        let label = String::from_utf8_lossy(&name).into_owned();
        let at = e.header_start();
        let mut h = vec![0u8; 30 + name.len()];
        if file.read_exact_at(&mut h, at).is_err() {
            out.push((
                label,
                format!("local header at offset {at} is past the end of the file"),
            ));
            continue;
        }
        let le16 = |o: usize| u16::from_le_bytes([h[o], h[o + 1]]);
        let le32 = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
        let mut bad = Vec::new();
        if &h[..4] != b"PK\x03\x04" {
            bad.push("signature".to_string());
        }
        if usize::from(le16(26)) != name.len() || h[30..] != name[..] {
            bad.push(format!(
                "name ({:?})",
                String::from_utf8_lossy(&h[30..30 + name.len().min(usize::from(le16(26)))])
            ));
        }
        let method: u16 = match e.compression() {
            CompressionMethod::Stored => 0,
            CompressionMethod::Deflated => 8,
            _ => le16(8),
        };
        if le16(8) != method {
            bad.push(format!("method ({})", le16(8)));
        }
        let deferred = le16(6) & 8 != 0;
        if !deferred && le32(14) != e.crc32() {
            bad.push(format!("CRC-32 ({:08x})", le32(14)));
        }
        let (csize, size) = (le32(18), le32(22));
        if !deferred && csize != u32::MAX && size != u32::MAX {
            if u64::from(csize) != e.compressed_size() {
                bad.push(format!("compressed size ({csize})"));
            }
            if u64::from(size) != e.size() {
                bad.push(format!("size ({size})"));
            }
        }
        if !bad.is_empty() {
            out.push((
                label,
                format!(
                    "local header at offset {at} disagrees with the central directory: {}",
                    bad.join(", ")
                ),
            ));
        }
    }
    Ok(out)
}
