//! A zip writer that writes what it is told: any name, any declared size,
//! any mode, duplicates. The zip crate's writer refuses most of these.

use std::io::Write;

/// One entry as it will be stored.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Name bytes, as stored.
    pub name: Vec<u8>,
    /// 0 stored, 8 deflate.
    pub method: u16,
    /// The stored (possibly compressed) bytes.
    pub data: Vec<u8>,
    /// CRC-32 of the uncompressed content.
    pub crc: u32,
    /// Declared uncompressed size (central directory).
    pub size: u64,
    /// Declared uncompressed size in the local header, when it differs.
    pub local_size: Option<u64>,
    /// Unix mode, recorded in the external attributes (`0o120777` is a symlink).
    pub mode: u32,
}

/// A stored entry holding `content`.
pub fn stored(name: &str, content: &[u8]) -> Entry {
    Entry {
        name: name.as_bytes().to_vec(),
        method: 0,
        data: content.to_vec(),
        crc: crc32fast::hash(content),
        size: content.len() as u64,
        local_size: None,
        mode: 0o100644,
    }
}

/// A deflated entry holding `content`.
pub fn deflated(name: &str, content: &[u8]) -> Entry {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(content).unwrap();
    Entry {
        method: 8,
        data: enc.finish().unwrap(),
        ..stored(name, content)
    }
}

/// A deflated entry of `len` zero bytes, compressed in a stream.
pub fn deflated_zeros(name: &str, len: u64) -> Entry {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    let mut crc = crc32fast::Hasher::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        enc.write_all(&chunk[..n]).unwrap();
        crc.update(&chunk[..n]);
        left -= n as u64;
    }
    Entry {
        name: name.as_bytes().to_vec(),
        method: 8,
        data: enc.finish().unwrap(),
        crc: crc.finalize(),
        size: len,
        local_size: None,
        mode: 0o100644,
    }
}

fn zip64_extra(size: u64, csize: u64) -> Vec<u8> {
    let mut x = Vec::new();
    x.extend_from_slice(&1u16.to_le_bytes());
    x.extend_from_slice(&16u16.to_le_bytes());
    x.extend_from_slice(&size.to_le_bytes());
    x.extend_from_slice(&csize.to_le_bytes());
    x
}

/// The zip of `entries`, in order; sizes of 4 GiB and more get zip64 fields.
pub fn build(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let offset = out.len() as u32;
        let csize = e.data.len() as u64;
        let lsize = e.local_size.unwrap_or(e.size);
        let big = |v: u64| v >= u32::MAX as u64;
        let local64 = big(lsize) || big(csize);
        let central64 = big(e.size) || big(csize);
        let field = |v: u64, wide: bool| if wide { u32::MAX } else { v as u32 };
        // Local header.
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&(if local64 { 45u16 } else { 20u16 }).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // flags
        out.extend_from_slice(&e.method.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // time
        out.extend_from_slice(&0x5821u16.to_le_bytes()); // date 2024-01-01
        out.extend_from_slice(&e.crc.to_le_bytes());
        out.extend_from_slice(&field(csize, local64).to_le_bytes());
        out.extend_from_slice(&field(lsize, local64).to_le_bytes());
        out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        let lx = if local64 {
            zip64_extra(lsize, csize)
        } else {
            Vec::new()
        };
        out.extend_from_slice(&(lx.len() as u16).to_le_bytes());
        out.extend_from_slice(&e.name);
        out.extend_from_slice(&lx);
        out.extend_from_slice(&e.data);
        // Central directory record.
        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&((3u16 << 8) | 45).to_le_bytes()); // made by: unix
        central.extend_from_slice(&(if central64 { 45u16 } else { 20u16 }).to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&e.method.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0x5821u16.to_le_bytes());
        central.extend_from_slice(&e.crc.to_le_bytes());
        central.extend_from_slice(&field(csize, central64).to_le_bytes());
        central.extend_from_slice(&field(e.size, central64).to_le_bytes());
        central.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        let cx = if central64 {
            zip64_extra(e.size, csize)
        } else {
            Vec::new()
        };
        central.extend_from_slice(&(cx.len() as u16).to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes()); // comment
        central.extend_from_slice(&0u16.to_le_bytes()); // disk
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        central.extend_from_slice(&(e.mode << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(&e.name);
        central.extend_from_slice(&cx);
    }
    let cd_offset = out.len() as u32;
    let n = entries.len() as u16;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// Every entry of a zip, decompressed, as stored entries (same names, in order).
pub fn entries_of(zip_bytes: &[u8]) -> Vec<Entry> {
    let mut a = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).unwrap();
    (0..a.len())
        .map(|i| {
            let mut f = a.by_index(i).unwrap();
            let name = String::from_utf8_lossy(f.name_raw()).into_owned();
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut v).unwrap();
            if f.is_dir() {
                Entry {
                    mode: 0o040755,
                    ..stored(&name, &v)
                }
            } else {
                stored(&name, &v)
            }
        })
        .collect()
}

/// The committed sample's entries.
pub fn sample_entries() -> Vec<Entry> {
    entries_of(&std::fs::read(crate::common::sample()).unwrap())
}
