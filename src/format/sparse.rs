//! Android sparse images (`0xED26FF3A`): reader, merge of split parts, writer.
//!
//! A sparse image is a 28-byte header and a list of chunks, each describing
//! `chunk_sz` output blocks: RAW (the blocks follow), FILL (one 4-byte
//! pattern repeated), DONT_CARE (nothing is stored; the flasher leaves the
//! blocks alone, an unsparser leaves zeros) and CRC32 (a running CRC-32 of the
//! output so far, zero-filled DONT_CARE blocks included).
//!
//! Reading builds an index of the chunks with positional reads, checking every
//! size against the real file, so that any byte range of the expanded image
//! can be copied without expanding the rest ([`crate::format::image::ImageMap`]).
//! Writing classifies blocks as they stream past (FILL for a block that is one
//! repeated 4-byte word, RAW otherwise), leaves space outside the given
//! regions as DONT_CARE, and can split the result into several files of at
//! most N bytes, each a valid sparse image spanning the whole image (as
//! xiaomi.eu's `super.img.0 … N`): flashing or unsparsing all of them in turn
//! gives the image.

use std::io::{self, Read};
use std::path::Path;

use crate::format::source::FileSlice;
pub use crate::format::source::ReadAt;

/// Magic number at offset 0, little-endian.
pub const MAGIC: u32 = 0xED26_FF3A;
/// Size of the file header this crate writes.
pub const FILE_HEADER_SIZE: usize = 28;
/// Size of a chunk header this crate writes.
pub const CHUNK_HEADER_SIZE: usize = 12;
/// Chunk type: raw blocks follow.
pub const CHUNK_RAW: u16 = 0xCAC1;
/// Chunk type: a 4-byte pattern fills the blocks.
pub const CHUNK_FILL: u16 = 0xCAC2;
/// Chunk type: blocks left unspecified.
pub const CHUNK_DONT_CARE: u16 = 0xCAC3;
/// Chunk type: CRC-32 of the output so far.
pub const CHUNK_CRC32: u16 = 0xCAC4;

/// Refuse images declaring more output than this (16 TiB): real ones are a
/// few GiB, and the limit keeps every product of sizes far from overflow.
const MAX_IMAGE: u64 = 1 << 44;

/// What is wrong with a sparse image.
#[derive(Debug, thiserror::Error)]
pub enum SparseError {
    /// The structure is malformed.
    #[error("sparse image, offset {offset}: {msg}")]
    Invalid {
        /// Byte offset in the sparse file of the offending header or chunk.
        offset: u64,
        /// What is wrong.
        msg: String,
    },
    /// A CRC32 chunk (or the header's image checksum) does not match the data.
    #[error(
        "sparse image, offset {offset}: CRC-32 mismatch: {what} says {expected:08x}, the data before it gives {actual:08x}"
    )]
    Crc {
        /// Offset of the CRC32 chunk (0 for the header checksum).
        offset: u64,
        /// Which checksum.
        what: &'static str,
        /// Stored value.
        expected: u32,
        /// Computed value.
        actual: u32,
    },
    /// Reading failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl SparseError {
    fn invalid(offset: u64, msg: impl Into<String>) -> Self {
        SparseError::Invalid {
            offset,
            msg: msg.into(),
        }
    }
}

/// The file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Header {
    /// Major version (1).
    pub major: u16,
    /// Minor version (0).
    pub minor: u16,
    /// Size of this header as stored (28, or more with unknown trailing fields).
    pub file_header_size: u16,
    /// Size of each chunk header as stored (12, or more).
    pub chunk_header_size: u16,
    /// Output block size in bytes (a multiple of 4).
    pub block_size: u32,
    /// Output blocks in the whole image.
    pub total_blocks: u32,
    /// Chunks in this file.
    pub total_chunks: u32,
    /// CRC-32 of the whole expanded image, or 0 when not recorded.
    pub image_checksum: u32,
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

impl Header {
    /// Whether `head` starts with the sparse magic.
    pub fn is_sparse(head: &[u8]) -> bool {
        head.len() >= 4 && le32(head, 0) == MAGIC
    }

    /// Parses and validates the first 28 bytes.
    pub fn parse(b: &[u8]) -> Result<Self, SparseError> {
        if b.len() < FILE_HEADER_SIZE {
            return Err(SparseError::invalid(
                0,
                format!(
                    "file of {} bytes is shorter than the 28-byte header",
                    b.len()
                ),
            ));
        }
        if le32(b, 0) != MAGIC {
            return Err(SparseError::invalid(
                0,
                format!("magic {:#010x} is not {MAGIC:#010x}", le32(b, 0)),
            ));
        }
        let h = Header {
            major: le16(b, 4),
            minor: le16(b, 6),
            file_header_size: le16(b, 8),
            chunk_header_size: le16(b, 10),
            block_size: le32(b, 12),
            total_blocks: le32(b, 16),
            total_chunks: le32(b, 20),
            image_checksum: le32(b, 24),
        };
        if h.major != 1 {
            return Err(SparseError::invalid(
                4,
                format!("major version {} is not 1", h.major),
            ));
        }
        if usize::from(h.file_header_size) < FILE_HEADER_SIZE {
            return Err(SparseError::invalid(
                8,
                format!("file header size {} is below 28", h.file_header_size),
            ));
        }
        if usize::from(h.chunk_header_size) < CHUNK_HEADER_SIZE {
            return Err(SparseError::invalid(
                10,
                format!("chunk header size {} is below 12", h.chunk_header_size),
            ));
        }
        if h.block_size == 0 || !h.block_size.is_multiple_of(4) || h.block_size > 1 << 24 {
            return Err(SparseError::invalid(
                12,
                format!(
                    "block size {} is not a positive multiple of 4 up to 16 MiB",
                    h.block_size
                ),
            ));
        }
        if h.image_size() > MAX_IMAGE {
            return Err(SparseError::invalid(
                16,
                format!(
                    "{} blocks of {} bytes exceed the 16 TiB limit",
                    h.total_blocks, h.block_size
                ),
            ));
        }
        Ok(h)
    }

    /// Size of the expanded image in bytes.
    pub fn image_size(&self) -> u64 {
        u64::from(self.total_blocks) * u64::from(self.block_size)
    }

    /// The 28 bytes this header is written as (with standard header sizes).
    pub fn to_bytes(&self) -> [u8; FILE_HEADER_SIZE] {
        let mut b = [0u8; FILE_HEADER_SIZE];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..6].copy_from_slice(&self.major.to_le_bytes());
        b[6..8].copy_from_slice(&self.minor.to_le_bytes());
        b[8..10].copy_from_slice(&(FILE_HEADER_SIZE as u16).to_le_bytes());
        b[10..12].copy_from_slice(&(CHUNK_HEADER_SIZE as u16).to_le_bytes());
        b[12..16].copy_from_slice(&self.block_size.to_le_bytes());
        b[16..20].copy_from_slice(&self.total_blocks.to_le_bytes());
        b[20..24].copy_from_slice(&self.total_chunks.to_le_bytes());
        b[24..28].copy_from_slice(&self.image_checksum.to_le_bytes());
        b
    }
}

/// What a chunk holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkKind {
    /// Raw blocks stored in the file at [`Chunk::data`].
    Raw,
    /// A 4-byte pattern (as stored, little-endian bytes) repeated.
    Fill([u8; 4]),
    /// Nothing stored.
    DontCare,
    /// CRC-32 of every output byte before this chunk.
    Crc32(u32),
}

/// One chunk of an indexed sparse file.
#[derive(Clone, Copy, Debug)]
pub struct Chunk {
    /// What the chunk holds.
    pub kind: ChunkKind,
    /// First output block.
    pub block: u32,
    /// Output blocks covered.
    pub blocks: u32,
    /// Offset of the chunk header in the sparse file.
    pub offset: u64,
    /// Offset of the chunk's data in the sparse file.
    pub data: u64,
}

/// Parses one chunk header (the first 12 bytes of `b`) and checks it against
/// the file header; `at` is its offset, `block` the output block it starts at.
fn parse_chunk_header(
    h: &Header,
    b: &[u8],
    at: u64,
    block: u64,
) -> Result<(u16, u32, u64), SparseError> {
    let kind = le16(b, 0);
    let blocks = le32(b, 4);
    let total = u64::from(le32(b, 8));
    let hdr = u64::from(h.chunk_header_size);
    let data_len = total.checked_sub(hdr).ok_or_else(|| {
        SparseError::invalid(
            at,
            format!("chunk total size {total} is smaller than its {hdr}-byte header"),
        )
    })?;
    let expect = match kind {
        CHUNK_RAW => u64::from(blocks) * u64::from(h.block_size),
        CHUNK_FILL | CHUNK_CRC32 => 4,
        CHUNK_DONT_CARE => 0,
        other => {
            return Err(SparseError::invalid(
                at,
                format!("unknown chunk type {other:#06x}"),
            ));
        }
    };
    if data_len != expect {
        return Err(SparseError::invalid(
            at,
            format!(
                "chunk type {kind:#06x} of {blocks} blocks declares {data_len} data bytes, expected {expect}"
            ),
        ));
    }
    let end = block + u64::from(blocks);
    if kind != CHUNK_CRC32 && end > u64::from(h.total_blocks) {
        return Err(SparseError::invalid(
            at,
            format!(
                "chunk covers blocks {block}..{end}, past the declared {} blocks",
                h.total_blocks
            ),
        ));
    }
    Ok((kind, blocks, data_len))
}

/// An indexed sparse file, read with positional reads.
#[derive(Clone, Debug)]
pub struct SparseFile {
    /// The file header.
    pub header: Header,
    /// Every chunk, in file (and output) order.
    pub chunks: Vec<Chunk>,
    /// The sparse file.
    pub source: FileSlice,
}

impl SparseFile {
    /// Indexes the sparse file in `source`, validating every chunk header
    /// against the file header and the real file size.
    pub fn open(source: FileSlice) -> Result<Self, SparseError> {
        let mut hb = [0u8; FILE_HEADER_SIZE];
        if source.len() < FILE_HEADER_SIZE as u64 {
            return Err(SparseError::invalid(
                0,
                format!(
                    "file of {} bytes is shorter than the 28-byte header",
                    source.len()
                ),
            ));
        }
        source.read_exact_at(&mut hb, 0)?;
        let header = Header::parse(&hb)?;
        let hdr = u64::from(header.chunk_header_size);
        // Each chunk needs at least its header in the file: bound the count
        // before allocating for it.
        let room = source.len().saturating_sub(header.file_header_size.into()) / hdr;
        if u64::from(header.total_chunks) > room {
            return Err(SparseError::invalid(
                20,
                format!(
                    "{} chunks declared, but the file has room for at most {room}",
                    header.total_chunks
                ),
            ));
        }
        let mut chunks = Vec::with_capacity(header.total_chunks as usize);
        let mut at = u64::from(header.file_header_size);
        let mut block = 0u64;
        // Chunk headers are small and consecutive with the data between them:
        // read them through a window to avoid one system call each.
        let mut win = Window::new(&source);
        for i in 0..header.total_chunks {
            let b = win.get(at, CHUNK_HEADER_SIZE).map_err(|e| {
                SparseError::invalid(
                    at,
                    format!(
                        "chunk {i} of {}: header past the end of the file ({e})",
                        header.total_chunks
                    ),
                )
            })?;
            let (kind, blocks, data_len) = parse_chunk_header(&header, b, at, block)?;
            let data = at + hdr;
            if data.checked_add(data_len).is_none_or(|e| e > source.len()) {
                return Err(SparseError::invalid(
                    at,
                    format!(
                        "chunk {i}: {data_len} data bytes at offset {data} run past the end of the file ({} bytes)",
                        source.len()
                    ),
                ));
            }
            let kind = match kind {
                CHUNK_RAW => ChunkKind::Raw,
                CHUNK_DONT_CARE => ChunkKind::DontCare,
                CHUNK_FILL => {
                    let v = win.get(data, 4)?;
                    ChunkKind::Fill([v[0], v[1], v[2], v[3]])
                }
                _ => ChunkKind::Crc32(le32(win.get(data, 4)?, 0)),
            };
            let blocks = if matches!(kind, ChunkKind::Crc32(_)) {
                0
            } else {
                blocks
            };
            chunks.push(Chunk {
                kind,
                block: block as u32,
                blocks,
                offset: at,
                data,
            });
            block += u64::from(blocks);
            at = data + data_len;
        }
        if block != u64::from(header.total_blocks) {
            return Err(SparseError::invalid(
                16,
                format!(
                    "chunks cover {block} blocks, the header declares {}",
                    header.total_blocks
                ),
            ));
        }
        Ok(SparseFile {
            header,
            chunks,
            source,
        })
    }

    /// Opens a file by path.
    pub fn open_path(path: &Path) -> Result<Self, SparseError> {
        SparseFile::open(FileSlice::open(path)?)
    }

    /// Size of the expanded image.
    pub fn image_size(&self) -> u64 {
        self.header.image_size()
    }

    /// Whether the file carries any checksum (CRC32 chunks or a header checksum).
    pub fn has_checksums(&self) -> bool {
        self.header.image_checksum != 0
            || self
                .chunks
                .iter()
                .any(|c| matches!(c.kind, ChunkKind::Crc32(_)))
    }

    /// Recomputes the running CRC-32 over the expanded image and checks every
    /// CRC32 chunk and the header's image checksum (when not 0). Returns how
    /// many checksums were checked.
    pub fn check_crcs(&self) -> Result<usize, SparseError> {
        let bs = u64::from(self.header.block_size);
        let mut crc = crc32fast::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut checked = 0;
        for c in &self.chunks {
            let len = u64::from(c.blocks) * bs;
            match c.kind {
                ChunkKind::Raw => {
                    let mut done = 0u64;
                    while done < len {
                        let n = (len - done).min(buf.len() as u64) as usize;
                        self.source.read_exact_at(&mut buf[..n], c.data + done)?;
                        crc.update(&buf[..n]);
                        done += n as u64;
                    }
                }
                ChunkKind::Fill(p) => {
                    fill_pattern(&mut buf, p);
                    feed_repeated(&mut crc, &buf, len);
                }
                ChunkKind::DontCare => {
                    buf.fill(0);
                    feed_repeated(&mut crc, &buf, len);
                }
                ChunkKind::Crc32(want) => {
                    let have = crc.clone().finalize();
                    if have != want {
                        return Err(SparseError::Crc {
                            offset: c.offset,
                            what: "CRC32 chunk",
                            expected: want,
                            actual: have,
                        });
                    }
                    checked += 1;
                }
            }
        }
        if self.header.image_checksum != 0 {
            let have = crc.finalize();
            if have != self.header.image_checksum {
                return Err(SparseError::Crc {
                    offset: 24,
                    what: "the header's image checksum",
                    expected: self.header.image_checksum,
                    actual: have,
                });
            }
            checked += 1;
        }
        Ok(checked)
    }
}

/// Feeds `len` bytes of `buf` repeated (then a prefix of it) to `crc`.
///
/// A FILL or DONT_CARE chunk of a few bytes may stand for terabytes of
/// image: hashing them one by one would let a tiny file keep romkit busy for
/// hours. The CRC of `2k` copies is the CRC of `k` copies combined with
/// itself, so whole copies cost a logarithmic number of combinations.
fn feed_repeated(crc: &mut crc32fast::Hasher, buf: &[u8], len: u64) {
    if buf.is_empty() {
        return;
    }
    let copies = len / buf.len() as u64;
    let rest = (len % buf.len() as u64) as usize;
    if copies > 0 {
        let mut power = crc32fast::Hasher::new();
        power.update(buf);
        let mut left = copies;
        loop {
            if left & 1 == 1 {
                crc.combine(&power);
            }
            left >>= 1;
            if left == 0 {
                break;
            }
            let same = power.clone();
            power.combine(&same);
        }
    }
    crc.update(&buf[..rest]);
}

/// Fills `buf` with the 4-byte pattern (buf's length is a multiple of 4).
pub fn fill_pattern(buf: &mut [u8], p: [u8; 4]) {
    for w in buf.chunks_mut(4) {
        let n = w.len();
        w.copy_from_slice(&p[..n]);
    }
}

/// A read window over a file for many small consecutive reads.
struct Window<'a> {
    src: &'a FileSlice,
    buf: Vec<u8>,
    start: u64,
}

impl<'a> Window<'a> {
    fn new(src: &'a FileSlice) -> Self {
        Window {
            src,
            buf: Vec::new(),
            start: 0,
        }
    }

    fn get(&mut self, at: u64, n: usize) -> io::Result<&[u8]> {
        let inside = at >= self.start && at + n as u64 <= self.start + self.buf.len() as u64;
        if !inside {
            let len = (64u64 << 10)
                .max(n as u64)
                .min(self.src.len().saturating_sub(at));
            if len < n as u64 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{n} bytes at offset {at} past the end"),
                ));
            }
            self.buf.resize(len as usize, 0);
            self.src.read_exact_at(&mut self.buf, at)?;
            self.start = at;
        }
        let o = (at - self.start) as usize;
        Ok(&self.buf[o..o + n])
    }
}

/// Expands the first `n` bytes of a sparse image read as a stream (from a
/// tar or compressed zip entry), for identifying content and reading LP
/// metadata without the rest. Returns fewer bytes only if the image is smaller.
pub fn expand_head(r: &mut dyn Read, n: usize) -> Result<Vec<u8>, SparseError> {
    let mut hb = [0u8; FILE_HEADER_SIZE];
    r.read_exact(&mut hb)?;
    let h = Header::parse(&hb)?;
    skip(r, u64::from(h.file_header_size) - FILE_HEADER_SIZE as u64)?;
    let want = (n as u64).min(h.image_size()) as usize;
    let mut out = Vec::with_capacity(want);
    let bs = u64::from(h.block_size);
    let mut at = u64::from(h.file_header_size);
    let mut block = 0u64;
    let mut ch = vec![0u8; usize::from(h.chunk_header_size)];
    for _ in 0..h.total_chunks {
        if out.len() >= want {
            break;
        }
        r.read_exact(&mut ch)?;
        let (kind, blocks, data_len) = parse_chunk_header(&h, &ch, at, block)?;
        let len = u64::from(blocks) * bs;
        let take = (want - out.len()).min(len.min(usize::MAX as u64) as usize);
        match kind {
            CHUNK_RAW => {
                let s = out.len();
                out.resize(s + take, 0);
                r.read_exact(&mut out[s..])?;
                skip(r, data_len - take as u64)?;
            }
            CHUNK_FILL => {
                let mut p = [0u8; 4];
                r.read_exact(&mut p)?;
                let s = out.len();
                out.resize(s + take, 0);
                fill_pattern(&mut out[s..], p);
            }
            CHUNK_DONT_CARE => out.resize(out.len() + take, 0),
            _ => skip(r, data_len)?,
        }
        if kind != CHUNK_CRC32 {
            block += u64::from(blocks);
        }
        at += u64::from(h.chunk_header_size) + data_len;
    }
    Ok(out)
}

/// Reads a whole sparse image as a stream, checking its structure and every
/// CRC32 chunk (and the header checksum when not 0). Returns the header and
/// how many checksums were checked.
pub fn check_stream(r: &mut dyn Read) -> Result<(Header, usize), SparseError> {
    let mut hb = [0u8; FILE_HEADER_SIZE];
    r.read_exact(&mut hb)?;
    let h = Header::parse(&hb)?;
    skip(r, u64::from(h.file_header_size) - FILE_HEADER_SIZE as u64)?;
    let bs = u64::from(h.block_size);
    let mut at = u64::from(h.file_header_size);
    let mut block = 0u64;
    let mut crc = crc32fast::Hasher::new();
    let mut checked = 0;
    let mut ch = vec![0u8; usize::from(h.chunk_header_size)];
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..h.total_chunks {
        r.read_exact(&mut ch).map_err(|e| {
            SparseError::invalid(at, format!("chunk header past the end of the data ({e})"))
        })?;
        let (kind, blocks, data_len) = parse_chunk_header(&h, &ch, at, block)?;
        let len = u64::from(blocks) * bs;
        match kind {
            CHUNK_RAW => read_raw(r, &mut crc, len, &mut buf, at)?,
            CHUNK_FILL => {
                let mut p = [0u8; 4];
                r.read_exact(&mut p)?;
                fill_pattern(&mut buf, p);
                feed_repeated(&mut crc, &buf, len);
            }
            CHUNK_DONT_CARE => {
                buf.fill(0);
                feed_repeated(&mut crc, &buf, len);
            }
            _ => {
                let mut p = [0u8; 4];
                r.read_exact(&mut p)?;
                let want = u32::from_le_bytes(p);
                let have = crc.clone().finalize();
                if want != have {
                    return Err(SparseError::Crc {
                        offset: at,
                        what: "CRC32 chunk",
                        expected: want,
                        actual: have,
                    });
                }
                checked += 1;
            }
        }
        if kind != CHUNK_CRC32 {
            block += u64::from(blocks);
        }
        at += u64::from(h.chunk_header_size) + data_len;
    }
    if block != u64::from(h.total_blocks) {
        return Err(SparseError::invalid(
            16,
            format!(
                "chunks cover {block} blocks, the header declares {}",
                h.total_blocks
            ),
        ));
    }
    if h.image_checksum != 0 {
        let have = crc.finalize();
        if have != h.image_checksum {
            return Err(SparseError::Crc {
                offset: 24,
                what: "the header's image checksum",
                expected: h.image_checksum,
                actual: have,
            });
        }
        checked += 1;
    }
    Ok((h, checked))
}

/// fastboot's largest download on the Xiaomi devices whose bootloaders
/// check `sparsecrclist.txt` (`getvar max-download-size`): 768 MiB.
pub const XIAOMI_MAX_DOWNLOAD: u64 = 768 << 20;

/// The CRC-32 of each part a sparse image is flashed in, as Xiaomi's
/// bootloader checks them against `sparsecrclist.txt`: the image is cut
/// into downloads of at most `max_download` bytes, and each part's CRC-32
/// covers the data it writes (RAW bytes and expanded FILL blocks;
/// DONT_CARE and CRC32 chunks add nothing). See [`DownloadCrcs`] for the
/// cut; this reads the file `r` holds, header first.
pub fn download_part_crcs(r: &mut dyn Read, max_download: u64) -> Result<Vec<u32>, SparseError> {
    let mut hb = [0u8; FILE_HEADER_SIZE];
    r.read_exact(&mut hb)?;
    let h = Header::parse(&hb)?;
    let mut crcs = DownloadCrcs::new(&h, max_download)?;
    let mut buf = vec![0u8; 1 << 20];
    while !crcs.done() {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        crcs.update(&buf[..n])?;
    }
    crcs.finish()
}

/// The download-part CRC-32s of a sparse file ([`download_part_crcs`]),
/// fed its bytes after the file header as they are written.
///
/// The cut follows the rule of Xiaomi's list generator
/// (`flash_gen_crc_list.py` in their packages): a part is budgeted at
/// `max_download` minus 56 bytes (a file header, two chunk headers and a
/// CRC); a chunk that fits joins the current part; one that does not fit
/// into a part already 7/8 full starts the next part whole (or, larger
/// than a part, is cut into whole blocks filling fresh parts); otherwise a
/// RAW chunk is cut at a block boundary, its head ending the current part.
pub struct DownloadCrcs {
    h: Header,
    budget: u64,
    parts: Vec<crc32fast::Hasher>,
    /// Bytes the current part holds, as the generator counts them.
    used: u64,
    /// Offset in the file of the chunk being read.
    at: u64,
    /// Output block the chunk being read starts at.
    block: u64,
    /// Chunks read.
    chunks: u32,
    /// The chunk header being gathered, and how much of it is in.
    head: [u8; CHUNK_HEADER_SIZE],
    have: usize,
    /// The chunk whose data is being read, if any.
    data: Option<ChunkData>,
}

/// The data of one chunk, cut into pieces by [`DownloadCrcs::cut`].
struct ChunkData {
    kind: u16,
    blocks: u32,
    /// Pieces still to read: (data bytes, a part starts before, a part
    /// starts after).
    pieces: std::collections::VecDeque<(u64, bool, bool)>,
    /// Bytes of the front piece already read.
    into: u64,
    /// A FILL chunk's pattern as it comes in.
    fill: [u8; 4],
}

impl DownloadCrcs {
    /// CRC-32s for a file with header `h` (its `total_chunks` ends the
    /// file; `u32::MAX` while it is not known).
    pub fn new(h: &Header, max_download: u64) -> Result<Self, SparseError> {
        const HDR: u64 = FILE_HEADER_SIZE as u64;
        const CHDR: u64 = CHUNK_HEADER_SIZE as u64;
        if h.file_header_size as usize != FILE_HEADER_SIZE
            || h.chunk_header_size as usize != CHUNK_HEADER_SIZE
        {
            return Err(SparseError::invalid(
                8,
                "header sizes other than 28 and 12 are not flashed by fastboot parts",
            ));
        }
        let budget = max_download
            .checked_sub(HDR + 2 * CHDR + 4)
            .filter(|b| *b > 0)
            .ok_or_else(|| {
                SparseError::invalid(0, format!("download size {max_download} is too small"))
            })?;
        Ok(DownloadCrcs {
            h: *h,
            budget,
            parts: vec![crc32fast::Hasher::new()],
            used: HDR,
            at: HDR,
            block: 0,
            chunks: 0,
            head: [0; CHUNK_HEADER_SIZE],
            have: 0,
            data: None,
        })
    }

    /// Whether every chunk the header declares has been read.
    pub fn done(&self) -> bool {
        self.data.is_none() && self.chunks == self.h.total_chunks
    }

    /// Feeds the next bytes of the file (after its header). Bytes after the
    /// last declared chunk are ignored.
    pub fn update(&mut self, mut b: &[u8]) -> Result<(), SparseError> {
        while !b.is_empty() && !self.done() {
            let Some(d) = self.data.as_mut() else {
                let n = (CHUNK_HEADER_SIZE - self.have).min(b.len());
                self.head[self.have..self.have + n].copy_from_slice(&b[..n]);
                self.have += n;
                b = &b[n..];
                if self.have == CHUNK_HEADER_SIZE {
                    self.have = 0;
                    self.start_chunk()?;
                }
                continue;
            };
            let &(len, _, after) = d.pieces.front().expect("a chunk with data has pieces");
            let n = (len - d.into).min(b.len() as u64) as usize;
            match d.kind {
                CHUNK_RAW => self.parts.last_mut().expect("a part").update(&b[..n]),
                CHUNK_FILL => d.fill[d.into as usize..d.into as usize + n].copy_from_slice(&b[..n]),
                _ => {}
            }
            d.into += n as u64;
            b = &b[n..];
            if d.into < len {
                continue;
            }
            if d.kind == CHUNK_FILL {
                let mut buf = vec![0u8; 1 << 16];
                fill_pattern(&mut buf, d.fill);
                let bs = u64::from(self.h.block_size);
                feed_repeated(
                    self.parts.last_mut().expect("a part"),
                    &buf,
                    u64::from(d.blocks) * bs,
                );
            }
            self.end_piece(after);
        }
        Ok(())
    }

    /// The chunk's front piece is read: on to the next (in a new part when
    /// one starts `after` it).
    fn end_piece(&mut self, after: bool) {
        if let Some(d) = self.data.as_mut() {
            d.pieces.pop_front();
            d.into = 0;
        }
        if after {
            self.parts.push(crc32fast::Hasher::new());
        }
        self.next_piece();
    }

    /// [`Self::update`] with the CRC-32 of `b` already taken (`crc`): bytes
    /// that all fall in one download's share of a RAW chunk's data (a long
    /// raw run written on its own) are combined, not read again.
    pub fn update_known(&mut self, b: &[u8], crc: &crc32fast::Hasher) -> Result<(), SparseError> {
        let Some(d) = self.data.as_mut().filter(|d| d.kind == CHUNK_RAW) else {
            return self.update(b);
        };
        let Some(&(len, _, after)) = d.pieces.front() else {
            return self.update(b);
        };
        if b.is_empty() || len - d.into < b.len() as u64 {
            return self.update(b);
        }
        d.into += b.len() as u64;
        let ended = d.into == len;
        self.parts.last_mut().expect("a part").combine(crc);
        if ended {
            self.end_piece(after);
        }
        Ok(())
    }

    /// The CRC-32 of each download; an error if the file ended inside a
    /// chunk or before the chunks its header declares.
    pub fn finish(self) -> Result<Vec<u32>, SparseError> {
        let total = self.h.total_chunks;
        let msg = if self.data.is_some() {
            format!(
                "the file ends inside the data of chunk {} of {total}",
                self.chunks
            )
        } else if self.have > 0 {
            format!(
                "the file ends inside the header of chunk {} of {total}",
                self.chunks + 1
            )
        } else if total != u32::MAX && self.chunks < total {
            format!("the file ends after {} of its {total} chunks", self.chunks)
        } else {
            String::new()
        };
        if !msg.is_empty() {
            return Err(SparseError::invalid(self.at, msg));
        }
        Ok(self.parts.into_iter().map(|c| c.finalize()).collect())
    }

    /// A chunk header is in: cut its data and start reading it.
    fn start_chunk(&mut self) -> Result<(), SparseError> {
        let (kind, blocks, data_len) =
            parse_chunk_header(&self.h, &self.head, self.at, self.block)?;
        let pieces = self.cut(kind, data_len)?;
        if kind != CHUNK_CRC32 {
            self.block += u64::from(blocks);
        }
        self.at += CHUNK_HEADER_SIZE as u64 + data_len;
        self.chunks += 1;
        self.data = Some(ChunkData {
            kind,
            blocks,
            pieces,
            into: 0,
            fill: [0; 4],
        });
        self.next_piece();
        Ok(())
    }

    /// Starts the chunk's front piece (a part before it, pieces without
    /// data done at once); ends the chunk when no piece is left.
    fn next_piece(&mut self) {
        while let Some(d) = self.data.as_mut() {
            let Some(&(len, before, after)) = d.pieces.front() else {
                self.data = None;
                return;
            };
            if before && d.into == 0 {
                self.parts.push(crc32fast::Hasher::new());
                d.pieces[0].1 = false;
            }
            if len > 0 {
                return;
            }
            d.pieces.pop_front();
            if after {
                self.parts.push(crc32fast::Hasher::new());
            }
        }
    }

    /// Where the parts break in a chunk of `data_len` data bytes.
    fn cut(
        &mut self,
        kind: u16,
        data_len: u64,
    ) -> Result<std::collections::VecDeque<(u64, bool, bool)>, SparseError> {
        const HDR: u64 = FILE_HEADER_SIZE as u64;
        const CHDR: u64 = CHUNK_HEADER_SIZE as u64;
        let (budget, bs) = (self.budget, u64::from(self.h.block_size));
        let mut pieces = std::collections::VecDeque::new();
        // `left` data bytes of the chunk still to place.
        let mut left = data_len;
        loop {
            let real = self.used.saturating_sub(CHDR + 4);
            if real + left <= budget {
                self.used += left + CHDR;
                pieces.push_back((left, false, false));
                break;
            }
            if real >= budget * 7 / 8 && left + CHDR <= budget {
                self.used = left + CHDR + HDR + CHDR;
                pieces.push_back((left, true, false));
                break;
            }
            let over = real >= budget * 7 / 8;
            let room = if over { budget } else { budget - real };
            let split = bs * (room / bs);
            if split == 0 || kind != CHUNK_RAW {
                return Err(SparseError::invalid(
                    self.at,
                    "chunk cannot be cut into fastboot downloads",
                ));
            }
            if over {
                self.used = split + CHDR;
            } else {
                self.used = CHDR + HDR;
            }
            pieces.push_back((split, over, !over));
            left -= split;
            if left == 0 {
                break;
            }
        }
        Ok(pieces)
    }
}

/// Reads `len` bytes of RAW chunk data (the chunk at `at`) into `crc`.
fn read_raw(
    r: &mut dyn Read,
    crc: &mut crc32fast::Hasher,
    len: u64,
    buf: &mut [u8],
    at: u64,
) -> Result<(), SparseError> {
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        r.read_exact(&mut buf[..n])
            .map_err(|e| SparseError::invalid(at, format!("raw chunk data ends early ({e})")))?;
        crc.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

fn skip(r: &mut dyn Read, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.take(n), &mut io::sink())?;
    if copied != n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "sparse stream ends early",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------

/// A defined region of the image to write: `len` bytes at `offset`, read
/// from `src` at `src_offset`. Bytes past the end of `src` read as zeros.
pub struct Region<'a> {
    /// Where the region starts in the image (a multiple of the block size).
    pub offset: u64,
    /// Its length (rounded up to whole blocks with zeros).
    pub len: u64,
    /// Where its bytes come from.
    pub src: &'a dyn ReadAt,
    /// Offset in `src`.
    pub src_offset: u64,
    /// How many bytes `src` really has from `src_offset` (the rest is zeros).
    pub src_len: u64,
}

/// Options of the writer.
#[derive(Clone, Copy, Debug)]
pub struct SparseOptions {
    /// Output block size (4096 for everything Android flashes).
    pub block_size: u32,
    /// Split into files of at most this many bytes (`None`: one file).
    pub split: Option<u64>,
}

impl Default for SparseOptions {
    fn default() -> Self {
        SparseOptions {
            block_size: 4096,
            split: None,
        }
    }
}

/// What one written file holds.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PartSummary {
    /// Bytes written.
    pub size: u64,
    /// Chunks in it.
    pub chunks: u32,
}

/// Where the writer puts its files. Each file is written in order:
/// `start`, its bytes after the file header through `write` (never to be
/// changed afterwards), then `finish` with the file header, which belongs
/// at the start of the file (its chunk count is only known at the end).
pub trait PartSink {
    /// Starts file number `index` (0, 1, …).
    fn start(&mut self, index: usize) -> io::Result<()>;
    /// Appends bytes of the current file (after its header).
    fn write(&mut self, body: &[u8]) -> io::Result<()>;
    /// Appends bytes of the current file whose CRC-32 the caller took
    /// (`crc`, of `body` alone): a sink that keeps a CRC-32 of what it is
    /// given combines it instead of reading `body` once more.
    fn write_crc(&mut self, body: &[u8], crc: &crc32fast::Hasher) -> io::Result<()> {
        let _ = crc;
        self.write(body)
    }
    /// Ends the current file; `header` is its first bytes.
    fn finish(&mut self, header: &[u8; FILE_HEADER_SIZE]) -> io::Result<()>;
}

/// Writes the image of `size` bytes made of `regions` (sorted, block-aligned,
/// not overlapping; everything else DONT_CARE) as one or more sparse files.
pub fn write(
    size: u64,
    regions: &[Region<'_>],
    opts: &SparseOptions,
    sink: &mut dyn PartSink,
) -> io::Result<Vec<PartSummary>> {
    let bs = u64::from(opts.block_size);
    if bs == 0 || bs % 4 != 0 {
        return Err(io::Error::other(
            "block size must be a positive multiple of 4",
        ));
    }
    if !size.is_multiple_of(bs) {
        return Err(io::Error::other(format!(
            "image size {size} is not a multiple of the block size {bs}"
        )));
    }
    let total_blocks = u32::try_from(size / bs)
        .map_err(|_| io::Error::other(format!("image of {size} bytes has too many blocks")))?;
    if let Some(s) = opts.split {
        // Header, leading and trailing DONT_CARE and one raw block must fit.
        let min = (FILE_HEADER_SIZE + 3 * CHUNK_HEADER_SIZE) as u64 + bs;
        if s < min {
            return Err(io::Error::other(format!(
                "split size {s} is below the minimum of {min} bytes for {bs}-byte blocks"
            )));
        }
    }
    let mut prev_end = 0u64;
    for r in regions {
        if r.offset % bs != 0 || r.offset < prev_end || r.offset + r.len > size {
            return Err(io::Error::other(format!(
                "region at {} (+{}) is not block-aligned, overlaps the previous one or runs past {size}",
                r.offset, r.len
            )));
        }
        prev_end = r.offset + r.len.div_ceil(bs) * bs;
    }
    let mut w = ChunkWriter::new(opts, total_blocks, sink)?;
    // Reading and classifying run on a thread of their own so that reads and
    // writes overlap.
    std::thread::scope(|s| -> io::Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Batch>>(3);
        let (ret_tx, ret_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let reader = s.spawn(move || {
            for r in regions {
                let mut done = 0u64;
                let len = r.len.div_ceil(bs) * bs;
                while done < len {
                    let n = (len - done).min(BATCH as u64);
                    let mut buf = ret_rx.try_recv().unwrap_or_default();
                    buf.resize(n as usize, 0);
                    let avail = r.src_len.saturating_sub(done).min(n) as usize;
                    if let Err(e) = r.src.read_at(&mut buf[..avail], r.src_offset + done) {
                        let _ = tx.send(Err(e));
                        return;
                    }
                    // Each byte of a region is read once.
                    r.src.release(r.src_offset + done, avail as u64);
                    buf[avail..].fill(0);
                    let kinds = classify(&buf, bs as usize);
                    let batch = Batch {
                        block: (r.offset + done) / bs,
                        buf,
                        kinds,
                    };
                    if tx.send(Ok(batch)).is_err() {
                        return;
                    }
                    done += n;
                }
            }
        });
        let mut result = Ok(());
        for batch in rx {
            match batch.and_then(|b| {
                let r = w.push(&b);
                let _ = ret_tx.send(b.buf);
                r
            }) {
                Ok(()) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let _ = reader.join();
        result
    })?;
    w.finish()
}

const BATCH: usize = 8 << 20;

/// Raw runs at least this long skip the chunk writer's buffer
/// ([`ChunkWriter::push_raw_direct`]).
const DIRECT: usize = 1 << 20;

struct Batch {
    block: u64,
    buf: Vec<u8>,
    /// Per block: `None` raw, `Some(pattern)` fill.
    kinds: Vec<Option<[u8; 4]>>,
}

/// Classifies each block as one repeated 4-byte word or raw.
fn classify(buf: &[u8], bs: usize) -> Vec<Option<[u8; 4]>> {
    buf.chunks(bs)
        .map(|b| {
            let p = [b[0], b[1], b[2], b[3]];
            let w = u32::from_ne_bytes(p);
            let words = b.chunks_exact(8).all(|c| {
                u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]))
                    == (u64::from(w) | (u64::from(w) << 32))
            });
            (words && b.len() % 8 == 0 || b.chunks_exact(4).all(|c| c == p)).then_some(p)
        })
        .collect()
}

/// A chunk being extended.
#[derive(Clone, Copy)]
enum Pending {
    None,
    /// A raw chunk whose header is at `hdr` (absolute offset in the part).
    Raw {
        hdr: u64,
        block: u64,
        blocks: u64,
    },
    Fill {
        block: u64,
        blocks: u64,
        p: [u8; 4],
    },
}

struct ChunkWriter<'s> {
    sink: &'s mut dyn PartSink,
    bs: u64,
    total_blocks: u32,
    split: Option<u64>,
    parts: Vec<PartSummary>,
    /// Bytes of the current part already handed to the sink (its header
    /// counted, although the sink gets it last).
    flushed: u64,
    out: Vec<u8>,
    chunks: u32,
    /// Output block the current part has covered up to.
    cursor: u64,
    pending: Pending,
}

impl<'s> ChunkWriter<'s> {
    fn new(
        opts: &SparseOptions,
        total_blocks: u32,
        sink: &'s mut dyn PartSink,
    ) -> io::Result<Self> {
        let mut w = ChunkWriter {
            sink,
            bs: u64::from(opts.block_size),
            total_blocks,
            split: opts.split,
            parts: Vec::new(),
            flushed: 0,
            out: Vec::with_capacity(BATCH + 4096),
            chunks: 0,
            cursor: 0,
            pending: Pending::None,
        };
        w.open_part(0)?;
        Ok(w)
    }

    fn pos(&self) -> u64 {
        self.flushed + self.out.len() as u64
    }

    /// Starts a part whose first chunk will be at output block `block`.
    fn open_part(&mut self, block: u64) -> io::Result<()> {
        self.sink.start(self.parts.len())?;
        self.flushed = FILE_HEADER_SIZE as u64;
        self.out.clear();
        self.chunks = 0;
        self.cursor = 0;
        self.dont_care_to(block);
        Ok(())
    }

    /// Room left in the current part, keeping 12 bytes for the trailing DONT_CARE.
    fn room(&self) -> u64 {
        match self.split {
            None => u64::MAX,
            Some(s) => s.saturating_sub(self.pos() + CHUNK_HEADER_SIZE as u64),
        }
    }

    fn header(&mut self, kind: u16, blocks: u64, total: u64) {
        self.out.extend_from_slice(&kind.to_le_bytes());
        self.out.extend_from_slice(&0u16.to_le_bytes());
        self.out.extend_from_slice(&(blocks as u32).to_le_bytes());
        self.out.extend_from_slice(&(total as u32).to_le_bytes());
        self.chunks += 1;
    }

    fn dont_care_to(&mut self, block: u64) {
        if block > self.cursor {
            let n = block - self.cursor;
            self.header(CHUNK_DONT_CARE, n, CHUNK_HEADER_SIZE as u64);
            self.cursor = block;
        }
    }

    /// Hands the buffered bytes to the sink. A RAW chunk being extended
    /// ends here (its header is in the buffer, and nothing handed over
    /// changes again): the next block starts a new one.
    fn flush_out(&mut self) -> io::Result<()> {
        if matches!(self.pending, Pending::Raw { .. }) {
            self.end_pending()?;
        }
        if !self.out.is_empty() {
            self.sink.write(&self.out)?;
            self.flushed += self.out.len() as u64;
            self.out.clear();
        }
        Ok(())
    }

    /// Overwrites bytes at absolute offset `at` of the current part, which
    /// must still be in the buffer.
    fn patch(&mut self, at: u64, bytes: &[u8]) -> io::Result<()> {
        let o = at.checked_sub(self.flushed).ok_or_else(|| {
            io::Error::other(format!("sparse writer: offset {at} already written"))
        })? as usize;
        self.out[o..o + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    fn end_pending(&mut self) -> io::Result<()> {
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::None => Ok(()),
            Pending::Raw { hdr, blocks, .. } => {
                let total = CHUNK_HEADER_SIZE as u64 + blocks * self.bs;
                let mut b = [0u8; 8];
                b[..4].copy_from_slice(&(blocks as u32).to_le_bytes());
                b[4..].copy_from_slice(&(total as u32).to_le_bytes());
                self.patch(hdr + 4, &b)
            }
            Pending::Fill { block, blocks, p } => {
                self.make_room(block, 16)?;
                self.dont_care_to(block);
                self.header(CHUNK_FILL, blocks, 16);
                self.out.extend_from_slice(&p);
                self.cursor = block + blocks;
                Ok(())
            }
        }
    }

    /// Moves to a new part unless `need` bytes (plus a DONT_CARE header when
    /// there is a gap before `block`) fit in the current one.
    fn make_room(&mut self, block: u64, need: u64) -> io::Result<()> {
        let gap = if block > self.cursor {
            CHUNK_HEADER_SIZE as u64
        } else {
            0
        };
        if self.room() < need + gap {
            self.close_part()?;
            self.open_part(block)?;
        }
        Ok(())
    }

    /// Ends the current part: pending chunk, trailing DONT_CARE, header.
    fn close_part(&mut self) -> io::Result<()> {
        self.end_pending()?;
        self.dont_care_to(u64::from(self.total_blocks));
        let h = Header {
            major: 1,
            minor: 0,
            file_header_size: FILE_HEADER_SIZE as u16,
            chunk_header_size: CHUNK_HEADER_SIZE as u16,
            block_size: self.bs as u32,
            total_blocks: self.total_blocks,
            total_chunks: self.chunks,
            image_checksum: 0,
        };
        self.flush_out()?;
        self.sink.finish(&h.to_bytes())?;
        self.parts.push(PartSummary {
            size: self.flushed,
            chunks: self.chunks,
        });
        Ok(())
    }

    /// Largest number of blocks one raw chunk may hold (its size is a u32).
    fn max_raw_blocks(&self) -> u64 {
        (u64::from(u32::MAX) - CHUNK_HEADER_SIZE as u64) / self.bs
    }

    fn push_raw(&mut self, mut block: u64, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let contiguous = matches!(self.pending,
                Pending::Raw { block: b, blocks, .. } if b + blocks == block);
            if !contiguous {
                self.end_pending()?;
                self.make_room(block, CHUNK_HEADER_SIZE as u64 + self.bs)?;
                self.dont_care_to(block);
                let hdr = self.pos();
                self.header(CHUNK_RAW, 0, CHUNK_HEADER_SIZE as u64);
                self.pending = Pending::Raw {
                    hdr,
                    block,
                    blocks: 0,
                };
            }
            let Pending::Raw {
                hdr,
                block: start,
                blocks,
            } = self.pending
            else {
                unreachable!("a raw chunk is pending")
            };
            let fit = (self.room() / self.bs)
                .min(self.max_raw_blocks() - blocks)
                .min(data.len() as u64 / self.bs);
            if fit == 0 {
                // The part (or the chunk) is full: continue in a new one.
                self.end_pending()?;
                if self.room() < CHUNK_HEADER_SIZE as u64 + self.bs {
                    self.close_part()?;
                    self.open_part(block)?;
                }
                continue;
            }
            let n = (fit * self.bs) as usize;
            self.out.extend_from_slice(&data[..n]);
            self.pending = Pending::Raw {
                hdr,
                block: start,
                blocks: blocks + fit,
            };
            self.cursor = start + blocks + fit;
            block += fit;
            data = &data[n..];
            if self.out.len() >= BATCH {
                self.flush_out()?;
            }
        }
        Ok(())
    }

    /// Writes a long raw run as chunks of its own, each handed to the sink
    /// straight from the batch (after the buffered bytes before it): its
    /// length is known, so no header waits for data still to come, and the
    /// data is not copied into the buffer.
    fn push_raw_direct(&mut self, mut block: u64, mut data: &[u8]) -> io::Result<()> {
        const CHDR: u64 = CHUNK_HEADER_SIZE as u64;
        while !data.is_empty() {
            self.end_pending()?;
            self.make_room(block, CHDR + self.bs)?;
            self.dont_care_to(block);
            let fit = (self.room().saturating_sub(CHDR) / self.bs)
                .min(self.max_raw_blocks())
                .min(data.len() as u64 / self.bs);
            if fit == 0 {
                // make_room left less than a block: a fresh part.
                self.close_part()?;
                self.open_part(block)?;
                continue;
            }
            self.header(CHUNK_RAW, fit, CHDR + fit * self.bs);
            let n = (fit * self.bs) as usize;
            self.flush_out()?;
            self.sink.write(&data[..n])?;
            self.flushed += n as u64;
            self.cursor = block + fit;
            block += fit;
            data = &data[n..];
        }
        Ok(())
    }

    fn push(&mut self, b: &Batch) -> io::Result<()> {
        let bs = self.bs as usize;
        let mut i = 0;
        while i < b.kinds.len() {
            let block = b.block + i as u64;
            match b.kinds[i] {
                Some(p) => {
                    match self.pending {
                        Pending::Fill {
                            block: s,
                            blocks,
                            p: q,
                        } if q == p && s + blocks == block && blocks < u64::from(u32::MAX) => {
                            self.pending = Pending::Fill {
                                block: s,
                                blocks: blocks + 1,
                                p,
                            };
                        }
                        _ => {
                            self.end_pending()?;
                            self.pending = Pending::Fill {
                                block,
                                blocks: 1,
                                p,
                            };
                        }
                    }
                    i += 1;
                }
                None => {
                    let mut j = i + 1;
                    while j < b.kinds.len() && b.kinds[j].is_none() {
                        j += 1;
                    }
                    let run = &b.buf[i * bs..j * bs];
                    if run.len() >= DIRECT {
                        self.push_raw_direct(block, run)?;
                    } else {
                        self.push_raw(block, run)?;
                    }
                    i = j;
                }
            }
        }
        if self.out.len() >= BATCH {
            self.flush_out()?;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<Vec<PartSummary>> {
        self.close_part()?;
        Ok(self.parts)
    }
}

/// Writes the raw image of `len` bytes read from `src` as a sparse image (or
/// parts) into `sink`. The image is padded with zeros to whole blocks; blocks
/// of one repeated 4-byte word become FILL chunks; nothing is DONT_CARE.
pub fn write_raw(
    src: &dyn ReadAt,
    len: u64,
    opts: &SparseOptions,
    sink: &mut dyn PartSink,
) -> io::Result<Vec<PartSummary>> {
    let bs = u64::from(opts.block_size);
    if bs == 0 {
        return Err(io::Error::other(
            "block size must be a positive multiple of 4",
        ));
    }
    let size = len.div_ceil(bs) * bs;
    let region = Region {
        offset: 0,
        len: size,
        src,
        src_offset: 0,
        src_len: len,
    };
    let regions: &[Region<'_>] = if size == 0 { &[] } else { &[region] };
    write(size, regions, opts, sink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    fn chunk(kind: u16, blocks: u32, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(&0u16.to_le_bytes());
        v.extend_from_slice(&blocks.to_le_bytes());
        v.extend_from_slice(&(12 + data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn download_parts_follow_xiaomis_cut() {
        let bs = 4096usize;
        let raw: Vec<u8> = (0..10 * bs).map(|i| (i * 7 % 251) as u8).collect();
        let tail: Vec<u8> = (0..3 * bs).map(|i| (i * 13 % 241) as u8).collect();
        let chunks = [
            chunk(CHUNK_RAW, 10, &raw),
            chunk(CHUNK_FILL, 2, &[1, 2, 3, 4]),
            chunk(CHUNK_DONT_CARE, 5, &[]),
            chunk(CHUNK_RAW, 2, &tail[..2 * bs]),
            chunk(CHUNK_RAW, 1, &tail[2 * bs..]),
        ];
        let h = Header {
            major: 1,
            minor: 0,
            file_header_size: 28,
            chunk_header_size: 12,
            block_size: bs as u32,
            total_blocks: 20,
            total_chunks: chunks.len() as u32,
            image_checksum: 0,
        };
        let mut img = h.to_bytes().to_vec();
        for c in &chunks {
            img.extend_from_slice(c);
        }
        let fill: Vec<u8> = [1u8, 2, 3, 4].repeat(2 * bs / 4);
        let crc = |parts: &[&[u8]]| {
            let mut h = crc32fast::Hasher::new();
            for p in parts {
                h.update(p);
            }
            h.finalize()
        };
        // Everything fits one 768 MiB download.
        let one = download_part_crcs(&mut &img[..], XIAOMI_MAX_DOWNLOAD).unwrap();
        assert_eq!(one, vec![crc(&[&raw, &fill, &tail])]);
        // Room for 4 blocks (and 100 bytes) per part: the first chunk is cut
        // twice at block boundaries; the last no longer fits a part 7/8 full
        // and starts a part of its own.
        let parts = download_part_crcs(&mut &img[..], 56 + 4 * bs as u64 + 100).unwrap();
        assert_eq!(
            parts,
            vec![
                crc(&[&raw[..4 * bs]]),
                crc(&[&raw[4 * bs..8 * bs]]),
                crc(&[&raw[8 * bs..], &fill, &tail[..2 * bs]]),
                crc(&[&tail[2 * bs..]]),
            ]
        );
        // Fed as it is written (header unknown, bytes in odd slices), the
        // same parts; a file cut inside a chunk is an error.
        let max = 56 + 4 * bs as u64 + 100;
        for step in [1usize, 7, 4096, 1 << 20] {
            let open = Header {
                total_chunks: u32::MAX,
                ..h
            };
            let mut push = DownloadCrcs::new(&open, max).unwrap();
            // And with each slice's CRC-32 known: combined where a slice
            // lies in one part's share of a RAW chunk, read otherwise.
            let mut known = DownloadCrcs::new(&open, max).unwrap();
            for piece in img[28..].chunks(step) {
                push.update(piece).unwrap();
                let mut crc = crc32fast::Hasher::new();
                crc.update(piece);
                known.update_known(piece, &crc).unwrap();
            }
            assert_eq!(push.finish().unwrap(), parts, "slices of {step}");
            assert_eq!(known.finish().unwrap(), parts, "known slices of {step}");
        }
        // Slices that are exactly the RAW pieces: all combined.
        let mut known = DownloadCrcs::new(&h, max).unwrap();
        let body = &img[28..];
        let cuts = [0, 12, 12 + 4 * bs, 12 + 8 * bs, 12 + 10 * bs, body.len()];
        for w in cuts.windows(2) {
            let piece = &body[w[0]..w[1]];
            let mut crc = crc32fast::Hasher::new();
            crc.update(piece);
            known.update_known(piece, &crc).unwrap();
        }
        assert_eq!(known.finish().unwrap(), parts);
        let cut = &img[..img.len() - 5];
        let err = download_part_crcs(&mut &cut[..], max).unwrap_err();
        assert!(
            err.to_string().contains("inside the data of chunk 5 of 5"),
            "{err}"
        );
    }

    #[test]
    fn repeated_crc_matches_byte_by_byte() {
        let mut buf = vec![0u8; 64];
        fill_pattern(&mut buf, [1, 2, 3, 4]);
        for len in [0u64, 3, 64, 65, 64 * 7 + 12, 64 * 1000 + 60] {
            let mut fast = crc32fast::Hasher::new();
            fast.update(b"prefix");
            feed_repeated(&mut fast, &buf, len);
            let mut slow = crc32fast::Hasher::new();
            slow.update(b"prefix");
            for i in 0..len as usize {
                slow.update(&buf[i % 64..i % 64 + 1]);
            }
            assert_eq!(fast.finalize(), slow.finalize(), "{len}");
        }
    }

    struct MemSink(Vec<tempfile::NamedTempFile>);
    impl PartSink for MemSink {
        fn start(&mut self, _: usize) -> io::Result<()> {
            let mut f = tempfile::NamedTempFile::new()?;
            f.write_all(&[0; FILE_HEADER_SIZE])?;
            self.0.push(f);
            Ok(())
        }
        fn write(&mut self, body: &[u8]) -> io::Result<()> {
            self.0.last_mut().expect("started").write_all(body)
        }
        fn finish(&mut self, header: &[u8; FILE_HEADER_SIZE]) -> io::Result<()> {
            self.0
                .last()
                .expect("started")
                .as_file()
                .write_all_at(header, 0)
        }
    }

    /// The whole image of `len` bytes from `src`, as one region.
    fn whole(src: &dyn ReadAt, len: usize) -> Region<'_> {
        Region {
            offset: 0,
            len: len as u64,
            src,
            src_offset: 0,
            src_len: len as u64,
        }
    }

    /// Each region is read once, and released: a scratch source is empty
    /// (all holes) once its sparse image is written, which is the image.
    #[test]
    fn a_scratch_source_is_freed_as_it_is_written() {
        let data = image(40);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scratch.img");
        std::fs::write(&path, &data).unwrap();
        let map = crate::format::image::ImageMap::raw(FileSlice::open_scratch(&path).unwrap());
        let region = whole(&map, data.len());
        let mut sink = MemSink(Vec::new());
        write(
            data.len() as u64,
            &[region],
            &SparseOptions::default(),
            &mut sink,
        )
        .unwrap();
        assert_eq!(expand(&sink.0, data.len()), data);
        let left = std::fs::read(&path).unwrap();
        assert_eq!(left.len(), data.len());
        assert!(left.iter().all(|&b| b == 0), "every byte released");
    }

    fn image(blocks: usize) -> Vec<u8> {
        let mut v = Vec::new();
        let mut x = 7u64;
        for i in 0..blocks {
            match i % 7 {
                0 | 1 => v.extend(std::iter::repeat_n(0u8, 4096)),
                2 => v.extend(std::iter::repeat_n([1u8, 2, 3, 4], 1024).flatten()),
                _ => (0..4096).for_each(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    v.push(x as u8)
                }),
            }
        }
        v
    }

    fn expand(parts: &[tempfile::NamedTempFile], size: usize) -> Vec<u8> {
        let mut out = vec![0u8; size];
        for p in parts {
            let s = SparseFile::open(FileSlice::open(p.path()).unwrap()).unwrap();
            assert_eq!(s.image_size(), size as u64);
            let bs = 4096usize;
            for c in &s.chunks {
                let o = c.block as usize * bs;
                let n = c.blocks as usize * bs;
                match c.kind {
                    ChunkKind::Raw => s.source.read_exact_at(&mut out[o..o + n], c.data).unwrap(),
                    ChunkKind::Fill(p) => fill_pattern(&mut out[o..o + n], p),
                    _ => {}
                }
            }
        }
        out
    }

    #[test]
    fn round_trip_and_split() {
        let img = image(300);
        for split in [None, Some(64 << 10), Some(200 << 10), Some(4096 + 64)] {
            let region = whole(&img, img.len());
            let mut sink = MemSink(Vec::new());
            let opts = SparseOptions {
                block_size: 4096,
                split,
            };
            let parts = write(img.len() as u64, &[region], &opts, &mut sink).unwrap();
            assert_eq!(parts.len(), sink.0.len());
            for (p, f) in parts.iter().zip(&sink.0) {
                assert_eq!(p.size, f.as_file().metadata().unwrap().len());
                if let Some(s) = split {
                    assert!(p.size <= s, "{} > {s}", p.size);
                }
            }
            if split.is_some_and(|s| s < 1 << 20) {
                assert!(parts.len() > 1);
            }
            assert_eq!(expand(&sink.0, img.len()), img, "split {split:?}");
        }
    }

    /// Raw runs of a MiB and more go to the sink as chunks of their own,
    /// cut by parts as any other; every part reads back, and the download
    /// CRC-32s taken from the writes (their CRC-32s known) are the files'.
    #[test]
    fn long_raw_runs_are_written_from_the_batch() {
        /// Keeps each part and feeds its download CRC-32s as a package
        /// writer does.
        struct Crcs {
            files: MemSink,
            header: Header,
            now: Option<DownloadCrcs>,
            done: Vec<Vec<u32>>,
        }
        impl PartSink for Crcs {
            fn start(&mut self, i: usize) -> io::Result<()> {
                self.now = Some(DownloadCrcs::new(&self.header, 1 << 20).unwrap());
                self.files.start(i)
            }
            fn write(&mut self, body: &[u8]) -> io::Result<()> {
                let mut crc = crc32fast::Hasher::new();
                crc.update(body);
                let d = self.now.as_mut().unwrap();
                d.update_known(body, &crc).map_err(io::Error::other)?;
                self.files.write(body)
            }
            fn finish(&mut self, header: &[u8; FILE_HEADER_SIZE]) -> io::Result<()> {
                self.done.push(self.now.take().unwrap().finish().unwrap());
                self.files.finish(header)
            }
        }
        let raw = |n: usize, seed: u64| crate::util::noise(n * 4096, seed);
        let mut img = raw(300, 1);
        img.extend(vec![0u8; 10 * 4096]);
        img.extend(raw(600, 2));
        img.extend([9u8, 8, 7, 6].repeat(3 * 1024));
        img.extend(raw(260, 3));
        for split in [None, Some(1 << 20), Some(300 << 10), Some(4096 + 64)] {
            let opts = SparseOptions {
                block_size: 4096,
                split,
            };
            let mut sink = Crcs {
                files: MemSink(Vec::new()),
                header: Header {
                    major: 1,
                    minor: 0,
                    file_header_size: FILE_HEADER_SIZE as u16,
                    chunk_header_size: CHUNK_HEADER_SIZE as u16,
                    block_size: 4096,
                    total_blocks: (img.len() / 4096) as u32,
                    total_chunks: u32::MAX,
                    image_checksum: 0,
                },
                now: None,
                done: Vec::new(),
            };
            let region = whole(&img, img.len());
            let parts = write(img.len() as u64, &[region], &opts, &mut sink).unwrap();
            assert_eq!(sink.done.len(), parts.len());
            for (i, (p, f)) in parts.iter().zip(&sink.files.0).enumerate() {
                assert_eq!(p.size, f.as_file().metadata().unwrap().len());
                assert!(split.is_none_or(|s| p.size <= s), "{} > {split:?}", p.size);
                let bytes = std::fs::read(f.path()).unwrap();
                let want = download_part_crcs(&mut &bytes[..], 1 << 20).unwrap();
                assert_eq!(sink.done[i], want, "part {i}, split {split:?}");
            }
            assert_eq!(expand(&sink.files.0, img.len()), img, "split {split:?}");
        }
    }

    #[test]
    fn dont_care_outside_regions() {
        let img = image(20);
        let region = Region {
            offset: 8192,
            len: 5 * 4096,
            src: &img,
            src_offset: 4096 * 3,
            src_len: 3 * 4096,
        };
        let mut sink = MemSink(Vec::new());
        write(40 * 4096, &[region], &SparseOptions::default(), &mut sink).unwrap();
        let out = expand(&sink.0, 40 * 4096);
        let mut want = vec![0u8; 40 * 4096];
        want[8192..8192 + 3 * 4096].copy_from_slice(&img[3 * 4096..6 * 4096]);
        assert_eq!(out, want);
        let s = SparseFile::open(FileSlice::open(sink.0[0].path()).unwrap()).unwrap();
        assert_eq!(s.chunks.first().unwrap().kind, ChunkKind::DontCare);
        assert_eq!(s.chunks.last().unwrap().kind, ChunkKind::DontCare);
    }
}
