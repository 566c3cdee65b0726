//! Puffin `PUF1` patches (PUFFDIFF operations), and the puff ↔ deflate codec.
//!
//! A PUF1 patch is `"PUF1"`, a big-endian u32 header size, a protobuf
//! [`PatchHeader`] of that size, then the inner patch up to the end. The header
//! lists, for the source and the destination, the deflate streams as *bit*
//! extents of the file, the matching puffs as *bit* extents (always whole
//! bytes) of the "puffed" file, and the puffed file's size. The inner patch
//! (bsdiff, or brotli-compressed Zucchini) turns the puffed source into the
//! puffed destination, which is then "huffed" back to deflate.
//!
//! # The puffed file
//! Deflate extent `i` (`off`, `len` bits) is replaced by the puff of the
//! deflate blocks it holds; the bits between two extents (and before the first
//! and after the last) are kept as bytes: every file byte that holds at least
//! one of those gap bits gives one puffed byte, the gap bits shifted down to
//! bit 0 and the deflate bits masked out. After the last extent, the tail
//! holds as many bytes as the header's puffed size leaves. So the puffed size
//! of each gap is fixed by the deflate extents, and [`StreamLayout::validate`]
//! checks that the puff extents agree.
//!
//! # The puff format (one deflate extent)
//! A sequence of blocks, each:
//! - block metadata: u16 BE `n - 1`, then `n` bytes (1..=339): byte 0 is
//!   `BFINAL << 7 | BTYPE << 5 | pad` (`pad`: the value of the bits skipped to
//!   the byte boundary before a stored block's LEN, which must be below 32);
//!   dynamic blocks follow it with HLIT, HDIST, HCLEN (one byte each), the
//!   HCLEN+4 code-length code lengths two per byte (high nibble first), and one
//!   byte per code-length symbol: 0–15 as is, 16 + 2 extra bits as 16..=19,
//!   17 + 3 bits as 20..=27, 18 + 7 bits as 28..=155;
//! - then, until the end of block: literal runs `0x00 | (n - 1)` for 1..=127
//!   bytes or `0x7f`, u16 BE `n - 128` for up to 65663 bytes, followed by the
//!   bytes; length/distance pairs `0x80 | (len - 3)` for 3..=129 or `0xff`,
//!   `len - 130` for 130..=258, then u16 BE `distance - 1`; end of block
//!   `0xff 0x81`. A stored block holds one literal run (none when empty).
//!
//! Puffing never inflates: symbols are re-coded, so no window is kept, and
//! huffing re-codes them with the Huffman tables the block metadata describes,
//! giving back the original bits (length 258 always as code 285, as deflate
//! encoders write it).
//!
//! # Bounds
//! The header's puffed sizes are checked against [`Limits::puff_len`] and the
//! output size against [`Limits::new_len`] before anything is allocated; every
//! extent is checked against its file; every puff is checked to have exactly
//! the length the header gives. Hostile input gives an error, never a panic.

use std::fmt;

use super::{bsdiff, zucchini};

/// Magic at offset 0 of a PUF1 patch.
pub const MAGIC: &[u8; 4] = b"PUF1";
/// Largest block metadata: header byte, HLIT/HDIST/HCLEN, 286 + 30 + 19.
pub const MAX_METADATA_LEN: usize = 1 + 3 + 286 + 30 + 19;
/// Longest literal run one puff record holds.
pub const MAX_LITERAL_RUN: usize = (1 << 16) + 127;

/// A bit extent (protobuf `puffin.metadata.BitExtent`).
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct BitExtent {
    /// First bit.
    #[prost(uint64, tag = "1")]
    pub offset: u64,
    /// Length in bits.
    #[prost(uint64, tag = "2")]
    pub length: u64,
}

/// Deflate and puff locations of one side (protobuf `StreamInfo`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamInfo {
    /// Deflate extents in the deflate file, in bits.
    #[prost(message, repeated, tag = "1")]
    pub deflates: Vec<BitExtent>,
    /// Puff extents in the puffed file, in bits (multiples of 8).
    #[prost(message, repeated, tag = "2")]
    pub puffs: Vec<BitExtent>,
    /// Size of the puffed file in bytes.
    #[prost(uint64, tag = "3")]
    pub puff_length: u64,
}

/// Kind of the inner patch (protobuf `PatchHeader.PatchType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PatchType {
    /// bsdiff (`BSDIFF40` or `BSDF2`); the default when absent.
    Bsdiff = 0,
    /// brotli-compressed Zucchini ensemble patch.
    Zucchini = 1,
}

/// The PUF1 header (protobuf `puffin.metadata.PatchHeader`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PatchHeader {
    /// Header version (1 in current writers; not checked, as puffin does not).
    #[prost(int32, tag = "1")]
    pub version: i32,
    /// Source side.
    #[prost(message, optional, tag = "2")]
    pub src: Option<StreamInfo>,
    /// Destination side.
    #[prost(message, optional, tag = "3")]
    pub dst: Option<StreamInfo>,
    /// Inner patch kind.
    #[prost(enumeration = "PatchType", tag = "4")]
    pub r#type: i32,
}

/// Which side of a patch an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The source (old) file.
    Src,
    /// The destination (new) file.
    Dst,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Src => "src",
            Side::Dst => "dst",
        })
    }
}

/// What is wrong with a PUF1 patch, a deflate stream or a puff stream.
#[derive(Debug, thiserror::Error)]
pub enum PuffinError {
    /// The patch is too short or does not start with `PUF1`.
    #[error("puffin patch, offset 0: {0}")]
    BadMagic(String),
    /// The header size field exceeds the patch.
    #[error(
        "puffin patch, offset 4: header_size = {header_size} exceeds the {avail} bytes after it"
    )]
    BadHeaderSize {
        /// Value of the field.
        header_size: u32,
        /// Bytes after the field.
        avail: usize,
    },
    /// The protobuf header does not decode.
    #[error("puffin patch, offset 8: PatchHeader ({len} bytes) does not decode: {source}")]
    BadProto {
        /// Header size.
        len: u32,
        /// Decoder error.
        source: prost::DecodeError,
    },
    /// The header's patch type is unknown.
    #[error("puffin patch header: type = {0} is neither 0 (BSDIFF) nor 1 (ZUCCHINI)")]
    BadPatchType(i32),
    /// A side's extents are inconsistent.
    #[error("puffin patch header, {side} {field}[{index}]: {msg}")]
    BadLayout {
        /// Side.
        side: Side,
        /// `deflates`, `puffs` or `puff_length`.
        field: &'static str,
        /// Index of the extent.
        index: usize,
        /// What is wrong.
        msg: String,
    },
    /// A size is above the caller's limit.
    #[error("puffin patch: {what} = {claimed} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Which size.
        what: String,
        /// Size claimed.
        claimed: u64,
        /// Caller's limit.
        limit: u64,
    },
    /// A deflate stream is malformed.
    #[error("deflate stream, bit {bit}: {msg}")]
    Deflate {
        /// Bit offset in the deflate buffer being puffed.
        bit: u64,
        /// What is wrong.
        msg: String,
    },
    /// A puff stream is malformed.
    #[error("puff stream, offset {offset}: {msg}")]
    Puff {
        /// Byte offset in the puff being huffed.
        offset: usize,
        /// What is wrong.
        msg: String,
    },
    /// Puffing or huffing one extent did not give the size the header says.
    #[error("puffin {side} extent {index}: {msg}")]
    Extent {
        /// Side.
        side: Side,
        /// Index of the deflate/puff extent.
        index: usize,
        /// What differs.
        msg: String,
        /// Underlying error, if any.
        #[source]
        source: Option<Box<PuffinError>>,
    },
    /// The inner bsdiff patch failed.
    #[error("puffin inner bsdiff patch: {0}")]
    Bsdiff(#[from] bsdiff::BsdiffError),
    /// The inner Zucchini patch failed.
    #[error("puffin inner zucchini patch: {0}")]
    Zucchini(#[from] zucchini::ZucchiniError),
}

fn deflate_err(bit: u64, msg: impl Into<String>) -> PuffinError {
    PuffinError::Deflate {
        bit,
        msg: msg.into(),
    }
}

fn puff_err(offset: usize, msg: impl Into<String>) -> PuffinError {
    PuffinError::Puff {
        offset,
        msg: msg.into(),
    }
}

/// Memory bounds for [`apply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest destination (deflate) file accepted.
    pub new_len: u64,
    /// Largest puffed file accepted, on either side.
    pub puff_len: u64,
}

impl Limits {
    /// Limits for an output of at most `new_len` bytes: puffed files up to
    /// 16 × the larger of that and the source size, plus 1 MiB (a puff is at
    /// most about 16 times its deflate, reached only by long runs of matches).
    pub fn for_output(new_len: u64, src_len: u64) -> Self {
        Limits {
            new_len,
            puff_len: new_len
                .max(src_len)
                .saturating_mul(16)
                .saturating_add(1 << 20),
        }
    }
}

/// A parsed PUF1 patch: the header and the inner patch bytes.
#[derive(Clone, Debug)]
pub struct Patch<'a> {
    /// The decoded header.
    pub header: PatchHeader,
    /// Inner patch type.
    pub patch_type: PatchType,
    /// The inner patch (bsdiff, or brotli-compressed Zucchini).
    pub inner: &'a [u8],
}

impl<'a> Patch<'a> {
    /// Splits `patch` into header and inner patch; checks the magic, the
    /// header size and the patch type (not the extents: see [`StreamLayout`]).
    pub fn parse(patch: &'a [u8]) -> Result<Self, PuffinError> {
        use prost::Message;
        if patch.len() < 8 {
            return Err(PuffinError::BadMagic(format!(
                "{} bytes is shorter than magic and header size (8)",
                patch.len()
            )));
        }
        if &patch[..4] != MAGIC {
            return Err(PuffinError::BadMagic(format!(
                "magic {:02x?} is not \"PUF1\"",
                &patch[..4]
            )));
        }
        let header_size = u32::from_be_bytes(patch[4..8].try_into().expect("4 bytes"));
        let avail = patch.len() - 8;
        if header_size as usize > avail {
            return Err(PuffinError::BadHeaderSize { header_size, avail });
        }
        let end = 8 + header_size as usize;
        let header =
            PatchHeader::decode(&patch[8..end]).map_err(|source| PuffinError::BadProto {
                len: header_size,
                source,
            })?;
        let patch_type = PatchType::try_from(header.r#type)
            .map_err(|_| PuffinError::BadPatchType(header.r#type))?;
        Ok(Patch {
            header,
            patch_type,
            inner: &patch[end..],
        })
    }
}

/// Checked deflate/puff locations of one side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamLayout {
    /// Deflate extents `(first bit, bit length)`, sorted, disjoint.
    pub deflates: Vec<(u64, u64)>,
    /// Puff extents `(first byte, byte length)` in the puffed file.
    pub puffs: Vec<(u64, u64)>,
    /// Size of the puffed file.
    pub puff_len: u64,
}

impl StreamLayout {
    /// Checks `info`: as many puffs as deflates, both sorted and disjoint,
    /// puff extents whole bytes, every gap between puffs exactly the bytes
    /// the deflate extents leave (see the module docs), the last puff inside
    /// `puff_length`, which is at most `puff_limit`.
    pub fn validate(info: &StreamInfo, side: Side, puff_limit: u64) -> Result<Self, PuffinError> {
        let bad = |field: &'static str, index: usize, msg: String| PuffinError::BadLayout {
            side,
            field,
            index,
            msg,
        };
        if info.puff_length > puff_limit {
            return Err(PuffinError::TooLarge {
                what: format!("{side} puff_length"),
                claimed: info.puff_length,
                limit: puff_limit,
            });
        }
        if info.deflates.len() != info.puffs.len() {
            return Err(bad(
                "puffs",
                info.puffs.len().min(info.deflates.len()),
                format!(
                    "{} puff extents for {} deflate extents",
                    info.puffs.len(),
                    info.deflates.len()
                ),
            ));
        }
        let mut deflates = Vec::with_capacity(info.deflates.len());
        let mut puffs = Vec::with_capacity(info.puffs.len());
        let mut bit_pos: u64 = 0;
        let mut puff_pos: u64 = 0;
        for (i, (d, p)) in info.deflates.iter().zip(&info.puffs).enumerate() {
            let d_end = d
                .offset
                .checked_add(d.length)
                .filter(|e| *e <= u64::MAX - 16);
            let Some(d_end) = d_end else {
                return Err(bad(
                    "deflates",
                    i,
                    format!("offset {} + length {} overflows", d.offset, d.length),
                ));
            };
            if d.offset < bit_pos {
                return Err(bad(
                    "deflates",
                    i,
                    format!(
                        "starts at bit {} before the previous extent ends (bit {bit_pos})",
                        d.offset
                    ),
                ));
            }
            if d.length == 0 {
                return Err(bad("deflates", i, "is empty".into()));
            }
            if !p.offset.is_multiple_of(8) || !p.length.is_multiple_of(8) {
                return Err(bad(
                    "puffs",
                    i,
                    format!(
                        "offset {} / length {} bits are not whole bytes",
                        p.offset, p.length
                    ),
                ));
            }
            let (po, pl) = (p.offset / 8, p.length / 8);
            let gap = gap_bytes(bit_pos, d.offset);
            if po != puff_pos + gap {
                return Err(bad(
                    "puffs",
                    i,
                    format!(
                        "starts at byte {po}, but the bits before deflate bit {} give {gap} gap bytes after puffed byte {puff_pos}",
                        d.offset
                    ),
                ));
            }
            puff_pos = po
                .checked_add(pl)
                .filter(|e| *e <= info.puff_length)
                .ok_or_else(|| {
                    bad(
                        "puffs",
                        i,
                        format!("byte {po} + {pl} exceeds puff_length {}", info.puff_length),
                    )
                })?;
            bit_pos = d_end;
            deflates.push((d.offset, d.length));
            puffs.push((po, pl));
        }
        if !bit_pos.is_multiple_of(8) && info.puff_length == puff_pos {
            return Err(bad(
                "puff_length",
                deflates.len(),
                format!(
                    "{} leaves no tail byte although the last deflate ends inside a byte (bit {bit_pos})",
                    info.puff_length
                ),
            ));
        }
        Ok(StreamLayout {
            deflates,
            puffs,
            puff_len: info.puff_length,
        })
    }

    /// Size of the deflate file this layout describes (bytes covered by the
    /// deflates and gaps, plus the tail).
    pub fn deflate_len(&self) -> u64 {
        match (self.deflates.last(), self.puffs.last()) {
            (Some(&(o, l)), Some(&(po, pl))) => (o + l) / 8 + (self.puff_len - po - pl),
            _ => self.puff_len,
        }
    }
}

/// Number of puffed bytes the gap `[from_bit, to_bit)` takes: every byte
/// holding at least one of its bits.
fn gap_bytes(from_bit: u64, to_bit: u64) -> u64 {
    if to_bit <= from_bit {
        0
    } else {
        to_bit.div_ceil(8) - from_bit / 8
    }
}

/// Applies a PUF1 patch to `src` (the concatenated source extents) and
/// returns the destination, refusing sizes above `limits`.
pub fn apply(src: &[u8], patch: &[u8], limits: Limits) -> Result<Vec<u8>, PuffinError> {
    let p = Patch::parse(patch)?;
    let empty = StreamInfo::default();
    let src_layout = StreamLayout::validate(
        p.header.src.as_ref().unwrap_or(&empty),
        Side::Src,
        limits.puff_len,
    )?;
    let dst_layout = StreamLayout::validate(
        p.header.dst.as_ref().unwrap_or(&empty),
        Side::Dst,
        limits.puff_len,
    )?;
    let new_len = dst_layout.deflate_len();
    if new_len > limits.new_len {
        return Err(PuffinError::TooLarge {
            what: "dst size".into(),
            claimed: new_len,
            limit: limits.new_len,
        });
    }
    let puffed_src = puff_file(src, &src_layout)?;
    let puffed_dst = match p.patch_type {
        PatchType::Bsdiff => {
            let h = bsdiff::Header::parse(p.inner)?;
            if h.new_size != dst_layout.puff_len {
                return Err(PuffinError::BadLayout {
                    side: Side::Dst,
                    field: "puff_length",
                    index: 0,
                    msg: format!(
                        "{} differs from the inner bsdiff new size {}",
                        dst_layout.puff_len, h.new_size
                    ),
                });
            }
            bsdiff::apply(&puffed_src, p.inner, dst_layout.puff_len)?
        }
        PatchType::Zucchini => {
            let raw = zucchini::decompress_brotli(p.inner, limits.puff_len)?;
            let out = zucchini::apply(&puffed_src, &raw, dst_layout.puff_len)?;
            if out.len() as u64 != dst_layout.puff_len {
                return Err(PuffinError::BadLayout {
                    side: Side::Dst,
                    field: "puff_length",
                    index: 0,
                    msg: format!(
                        "{} differs from the inner zucchini new size {}",
                        dst_layout.puff_len,
                        out.len()
                    ),
                });
            }
            out
        }
    };
    huff_file(&puffed_dst, &dst_layout)
}

/// Builds the puffed file of `src` per `layout` (its `puff_len` bytes).
pub fn puff_file(src: &[u8], layout: &StreamLayout) -> Result<Vec<u8>, PuffinError> {
    let need = layout.deflate_len();
    if (src.len() as u64) < need {
        return Err(PuffinError::BadLayout {
            side: Side::Src,
            field: "puff_length",
            index: layout.deflates.len(),
            msg: format!(
                "the layout needs {need} source bytes, the source has {}",
                src.len()
            ),
        });
    }
    let mut out = Vec::with_capacity(layout.puff_len as usize);
    let mut bit_pos = 0u64;
    for (i, (&(off, len), &(po, pl))) in layout.deflates.iter().zip(&layout.puffs).enumerate() {
        push_gap(src, bit_pos, off, &mut out);
        debug_assert_eq!(out.len() as u64, po);
        let end = off + len;
        let first = (off / 8) as usize;
        let last = end.div_ceil(8) as usize;
        let region = &src[first..last];
        let before = out.len();
        let ext = |msg: String, source: Option<PuffinError>| PuffinError::Extent {
            side: Side::Src,
            index: i,
            msg,
            source: source.map(Box::new),
        };
        let stop = puff_deflate(region, off % 8, &mut out, pl as usize)
            .map_err(|e| ext(format!("deflate at bit {off} does not puff"), Some(e)))?;
        if stop.div_ceil(8) != region.len() as u64 {
            return Err(ext(
                format!(
                    "deflate at bit {off} ({len} bits) ends at bit {} of its {}-byte range",
                    stop,
                    region.len()
                ),
                None,
            ));
        }
        if (out.len() - before) as u64 != pl {
            return Err(ext(
                format!(
                    "puffs to {} bytes, the header says {pl}",
                    out.len() - before
                ),
                None,
            ));
        }
        bit_pos = end;
    }
    // Tail.
    let tail = layout.puff_len - out.len() as u64;
    let start = bit_pos / 8;
    for k in 0..tail {
        let b = src[(start + k) as usize];
        out.push(if k == 0 { b >> (bit_pos % 8) } else { b });
    }
    Ok(out)
}

/// Appends the gap bytes for bits `[from, to)` of `src`.
fn push_gap(src: &[u8], from: u64, to: u64, out: &mut Vec<u8>) {
    if to <= from {
        return;
    }
    for b in from / 8..to.div_ceil(8) {
        let lo = from.max(b * 8);
        let hi = to.min(b * 8 + 8);
        let n = (hi - lo) as u32;
        let v = (src[b as usize] >> (lo - b * 8)) as u32 & ((1u32 << n) - 1);
        out.push(v as u8);
    }
}

/// Rebuilds the deflate file from its puffed form per `layout`.
pub fn huff_file(puffed: &[u8], layout: &StreamLayout) -> Result<Vec<u8>, PuffinError> {
    if puffed.len() as u64 != layout.puff_len {
        return Err(PuffinError::BadLayout {
            side: Side::Dst,
            field: "puff_length",
            index: 0,
            msg: format!(
                "{} differs from the patched puff size {}",
                layout.puff_len,
                puffed.len()
            ),
        });
    }
    let mut w = BitWriter::with_capacity(layout.deflate_len() as usize);
    let mut ppos = 0usize;
    let mut bit_pos = 0u64;
    for (i, (&(off, len), &(po, pl))) in layout.deflates.iter().zip(&layout.puffs).enumerate() {
        if off > bit_pos {
            for b in bit_pos / 8..off.div_ceil(8) {
                let lo = bit_pos.max(b * 8);
                let hi = off.min(b * 8 + 8);
                w.write_bits((hi - lo) as u32, puffed[ppos] as u32);
                ppos += 1;
            }
        }
        debug_assert_eq!(ppos as u64, po);
        let puff = &puffed[po as usize..(po + pl) as usize];
        let ext = |msg: String, source: Option<PuffinError>| PuffinError::Extent {
            side: Side::Dst,
            index: i,
            msg,
            source: source.map(Box::new),
        };
        huff_deflate(puff, &mut w)
            .map_err(|e| ext(format!("puff at byte {po} does not huff"), Some(e)))?;
        if w.bit_len() != off + len {
            return Err(ext(
                format!(
                    "huffs to bits {off}..{}, the header says {len} bits",
                    w.bit_len()
                ),
                None,
            ));
        }
        ppos += pl as usize;
        bit_pos = off + len;
    }
    for (k, &b) in puffed[ppos..].iter().enumerate() {
        let n = if k == 0 { 8 - (bit_pos % 8) as u32 } else { 8 };
        w.write_bits(n, b as u32);
    }
    Ok(w.finish())
}

// ---------------------------------------------------------------- bits

/// LSB-first bit reader over a byte slice.
struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits.
    pos: u64,
}

impl<'a> BitReader<'a> {
    fn remaining(&self) -> u64 {
        self.data.len() as u64 * 8 - self.pos
    }

    /// The next `n` (≤ 24) bits, zero past the end.
    fn peek(&self, n: u32) -> u32 {
        let byte = (self.pos / 8) as usize;
        let mut v: u32 = 0;
        for k in 0..4 {
            if let Some(&b) = self.data.get(byte + k) {
                v |= (b as u32) << (8 * k);
            }
        }
        (v >> (self.pos % 8)) & ((1u32 << n) - 1)
    }

    fn bits(&mut self, n: u32) -> Result<u32, PuffinError> {
        if (n as u64) > self.remaining() {
            return Err(deflate_err(
                self.pos,
                format!("needs {n} bits, {} left", self.remaining()),
            ));
        }
        let v = self.peek(n);
        self.pos += n as u64;
        Ok(v)
    }
}

/// LSB-first bit writer into a growing byte vector.
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    nacc: u32,
}

impl BitWriter {
    fn with_capacity(n: usize) -> Self {
        BitWriter {
            out: Vec::with_capacity(n),
            acc: 0,
            nacc: 0,
        }
    }

    fn bit_len(&self) -> u64 {
        self.out.len() as u64 * 8 + self.nacc as u64
    }

    /// Writes the low `n` (≤ 32) bits of `v`.
    fn write_bits(&mut self, n: u32, v: u32) {
        if n == 0 {
            return;
        }
        let v = (v as u64) & ((1u64 << n) - 1);
        self.acc |= v << self.nacc;
        self.nacc += n;
        while self.nacc >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.nacc -= 8;
        }
    }

    fn write_bytes(&mut self, b: &[u8]) {
        debug_assert_eq!(self.nacc, 0);
        self.out.extend_from_slice(b);
    }

    /// Bytes so far; a partial last byte is zero-padded.
    fn finish(mut self) -> Vec<u8> {
        if self.nacc > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

// ---------------------------------------------------------------- Huffman

const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// Order of the code-length code lengths in a dynamic header.
const CLEN_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// A canonical Huffman code: a direct decoding table and the bit-reversed
/// codes for encoding.
struct Huffman {
    /// `symbol << 4 | length`, 0 where no code matches.
    table: Vec<u16>,
    max_bits: u32,
    /// Bit-reversed code and length per symbol (length 0: no code).
    codes: Vec<(u16, u8)>,
}

/// Code lengths that claim more codes than the bit lengths allow.
#[derive(Debug, thiserror::Error)]
#[error("oversubscribed Huffman code lengths")]
struct Oversubscribed;

impl Huffman {
    /// Builds the code of `lens` (lengths ≤ 15); refuses oversubscribed sets.
    /// Incomplete sets are accepted; their unused codes fail to decode.
    fn new(lens: &[u8]) -> Result<Self, Oversubscribed> {
        let mut count = [0u16; 16];
        for &l in lens {
            count[l as usize] += 1;
        }
        count[0] = 0;
        let mut left: i32 = 1;
        for c in &count[1..] {
            left = (left << 1) - *c as i32;
            if left < 0 {
                return Err(Oversubscribed);
            }
        }
        let max_bits = (1..16).rev().find(|&b| count[b] != 0).unwrap_or(0) as u32;
        let mut next = [0u16; 16];
        let mut code = 0u16;
        for b in 1..16 {
            code = (code + count[b - 1]) << 1;
            next[b] = code;
        }
        let mut table = vec![0u16; 1 << max_bits];
        let mut codes = vec![(0u16, 0u8); lens.len()];
        for (sym, &l) in lens.iter().enumerate() {
            if l == 0 {
                continue;
            }
            let c = next[l as usize];
            next[l as usize] += 1;
            let rev = c.reverse_bits() >> (16 - l as u32);
            codes[sym] = (rev, l);
            let mut i = rev as usize;
            while i < table.len() {
                table[i] = (sym as u16) << 4 | l as u16;
                i += 1 << l;
            }
        }
        Ok(Huffman {
            table,
            max_bits,
            codes,
        })
    }

    fn decode(&self, r: &mut BitReader<'_>, what: &str) -> Result<u16, PuffinError> {
        let e = self.table[r.peek(self.max_bits) as usize];
        let l = (e & 15) as u64;
        if l == 0 {
            return Err(deflate_err(
                r.pos,
                format!("no {what} code matches the bits here"),
            ));
        }
        if l > r.remaining() {
            return Err(deflate_err(
                r.pos,
                format!("{what} code runs past the end of the data"),
            ));
        }
        r.pos += l;
        Ok(e >> 4)
    }

    fn encode(
        &self,
        w: &mut BitWriter,
        sym: usize,
        offset: usize,
        what: &str,
    ) -> Result<(), PuffinError> {
        match self.codes.get(sym) {
            Some(&(c, l)) if l > 0 => {
                w.write_bits(l as u32, c as u32);
                Ok(())
            }
            _ => Err(puff_err(
                offset,
                format!("{what} symbol {sym} has no code in this block's table"),
            )),
        }
    }
}

fn fixed_tables() -> (Huffman, Huffman) {
    let mut lit = [0u8; 288];
    lit[..144].fill(8);
    lit[144..256].fill(9);
    lit[256..280].fill(7);
    lit[280..].fill(8);
    (
        Huffman::new(&lit).expect("fixed code"),
        Huffman::new(&[5u8; 30]).expect("fixed code"),
    )
}

// ---------------------------------------------------------------- puff

/// Writes puff records, bounded by a maximum size.
struct PuffWriter<'a> {
    out: &'a mut Vec<u8>,
    limit: usize,
    run: Vec<u8>,
}

impl PuffWriter<'_> {
    fn room(&self, n: usize, bit: u64) -> Result<(), PuffinError> {
        if self.out.len() + self.run.len() + n > self.limit {
            return Err(deflate_err(
                bit,
                format!("puff grows past the {} bytes the header allows", self.limit),
            ));
        }
        Ok(())
    }

    fn literal(&mut self, b: u8, bit: u64) -> Result<(), PuffinError> {
        self.room(1, bit)?;
        self.run.push(b);
        if self.run.len() == MAX_LITERAL_RUN {
            self.flush(bit)?;
        }
        Ok(())
    }

    fn literals(&mut self, b: &[u8], bit: u64) -> Result<(), PuffinError> {
        for &x in b {
            self.literal(x, bit)?;
        }
        Ok(())
    }

    fn flush(&mut self, bit: u64) -> Result<(), PuffinError> {
        let n = self.run.len();
        if n == 0 {
            return Ok(());
        }
        let hdr = if n <= 127 { 1 } else { 3 };
        if self.out.len() + hdr + n > self.limit {
            return Err(deflate_err(
                bit,
                format!("puff grows past the {} bytes the header allows", self.limit),
            ));
        }
        if n <= 127 {
            self.out.push((n - 1) as u8);
        } else {
            self.out.push(0x7f);
            self.out
                .extend_from_slice(&((n - 128) as u16).to_be_bytes());
        }
        self.out.extend_from_slice(&self.run);
        self.run.clear();
        Ok(())
    }

    fn raw(&mut self, b: &[u8], bit: u64) -> Result<(), PuffinError> {
        self.flush(bit)?;
        if self.out.len() + b.len() > self.limit {
            return Err(deflate_err(
                bit,
                format!("puff grows past the {} bytes the header allows", self.limit),
            ));
        }
        self.out.extend_from_slice(b);
        Ok(())
    }

    fn metadata(&mut self, m: &[u8], bit: u64) -> Result<(), PuffinError> {
        let mut rec = Vec::with_capacity(m.len() + 2);
        rec.extend_from_slice(&((m.len() - 1) as u16).to_be_bytes());
        rec.extend_from_slice(m);
        self.raw(&rec, bit)
    }

    fn len_dist(&mut self, len: u16, dist: u16, bit: u64) -> Result<(), PuffinError> {
        let d = (dist - 1).to_be_bytes();
        if len < 130 {
            self.raw(&[0x80 | (len - 3) as u8, d[0], d[1]], bit)
        } else {
            self.raw(&[0xff, (len - 130) as u8, d[0], d[1]], bit)
        }
    }

    fn end_of_block(&mut self, bit: u64) -> Result<(), PuffinError> {
        self.raw(&[0xff, 0x81], bit)
    }
}

/// Puffs the deflate blocks in `data` starting at bit `start_bit`, reading
/// block after block while at least 8 bits are left (puffin's rule: an extent
/// covers whole blocks and ends in its last byte). Appends at most
/// `max_len` bytes to `out`; returns the bit where the last block ended.
pub fn puff_deflate(
    data: &[u8],
    start_bit: u64,
    out: &mut Vec<u8>,
    max_len: usize,
) -> Result<u64, PuffinError> {
    let mut r = BitReader {
        data,
        pos: start_bit,
    };
    if start_bit > r.data.len() as u64 * 8 {
        return Err(deflate_err(start_bit, "start is past the end of the data"));
    }
    let limit = out.len().saturating_add(max_len);
    let mut w = PuffWriter {
        out,
        limit,
        run: Vec::new(),
    };
    let (fixed_lit, fixed_dist) = fixed_tables();
    while r.remaining() >= 8 {
        let block_bit = r.pos;
        let bfinal = r.bits(1)?;
        let btype = r.bits(2)?;
        let header = (bfinal << 7 | btype << 5) as u8;
        match btype {
            0 => {
                let pad_n = ((8 - r.pos % 8) % 8) as u32;
                let pad = r.bits(pad_n)?;
                if pad >= 32 {
                    return Err(deflate_err(
                        block_bit,
                        format!(
                            "stored block padding bits {pad:#x} do not fit the puff header's 5 bits"
                        ),
                    ));
                }
                let len = r.bits(16)?;
                let nlen = r.bits(16)?;
                if len ^ nlen != 0xffff {
                    return Err(deflate_err(
                        block_bit,
                        format!("stored block LEN {len:#06x} and NLEN {nlen:#06x} do not match"),
                    ));
                }
                let start = (r.pos / 8) as usize;
                let Some(bytes) = data.get(start..start + len as usize) else {
                    return Err(deflate_err(
                        r.pos,
                        format!("stored block of {len} bytes runs past the end"),
                    ));
                };
                w.metadata(&[header | pad as u8], block_bit)?;
                w.literals(bytes, block_bit)?;
                w.end_of_block(block_bit)?;
                r.pos += len as u64 * 8;
                continue;
            }
            1 => {
                w.metadata(&[header], block_bit)?;
                puff_symbols(&mut r, &mut w, &fixed_lit, &fixed_dist)?;
            }
            2 => {
                let mut meta = Vec::with_capacity(MAX_METADATA_LEN);
                meta.push(header);
                let (lit, dist) = read_dynamic_header(&mut r, &mut meta)?;
                w.metadata(&meta, block_bit)?;
                puff_symbols(&mut r, &mut w, &lit, &dist)?;
            }
            _ => return Err(deflate_err(block_bit, "block type 3 is reserved")),
        }
    }
    w.flush(r.pos)?;
    Ok(r.pos)
}

/// Reads a dynamic block's code lengths, recording them in puff form.
fn read_dynamic_header(
    r: &mut BitReader<'_>,
    meta: &mut Vec<u8>,
) -> Result<(Huffman, Huffman), PuffinError> {
    let at = r.pos;
    let hlit = r.bits(5)?;
    let hdist = r.bits(5)?;
    let hclen = r.bits(4)?;
    let (nlit, ndist, ncl) = (hlit as usize + 257, hdist as usize + 1, hclen as usize + 4);
    if nlit > 286 || ndist > 30 {
        return Err(deflate_err(
            at,
            format!("HLIT {nlit} > 286 or HDIST {ndist} > 30"),
        ));
    }
    meta.extend_from_slice(&[hlit as u8, hdist as u8, hclen as u8]);
    let mut cl = [0u8; 19];
    for i in 0..ncl {
        let v = r.bits(3)? as u8;
        cl[CLEN_ORDER[i]] = v;
        if i % 2 == 0 {
            meta.push(v << 4);
        } else {
            *meta.last_mut().expect("pushed") |= v;
        }
    }
    let clh = Huffman::new(&cl).map_err(|m| deflate_err(at, format!("code-length code: {m}")))?;
    let mut lens = Vec::with_capacity(nlit + ndist);
    while lens.len() < nlit + ndist {
        let sym_at = r.pos;
        let sym = clh.decode(r, "code-length")?;
        let (count, val, rec) = match sym {
            0..=15 => (1, sym as u8, sym as u8),
            16 => {
                let Some(&prev) = lens.last() else {
                    return Err(deflate_err(
                        sym_at,
                        "repeat code 16 with no previous length",
                    ));
                };
                let e = r.bits(2)?;
                (3 + e as usize, prev, 16 + e as u8)
            }
            17 => {
                let e = r.bits(3)?;
                (3 + e as usize, 0, 20 + e as u8)
            }
            _ => {
                let e = r.bits(7)?;
                (11 + e as usize, 0, 28 + e as u8)
            }
        };
        if lens.len() + count > nlit + ndist {
            return Err(deflate_err(
                sym_at,
                "code-length repeat runs past HLIT + HDIST",
            ));
        }
        lens.extend(std::iter::repeat_n(val, count));
        meta.push(rec);
    }
    let lit = Huffman::new(&lens[..nlit])
        .map_err(|m| deflate_err(at, format!("literal/length code: {m}")))?;
    let dist =
        Huffman::new(&lens[nlit..]).map_err(|m| deflate_err(at, format!("distance code: {m}")))?;
    Ok((lit, dist))
}

fn puff_symbols(
    r: &mut BitReader<'_>,
    w: &mut PuffWriter<'_>,
    lit: &Huffman,
    dist: &Huffman,
) -> Result<(), PuffinError> {
    loop {
        let at = r.pos;
        let sym = lit.decode(r, "literal/length")?;
        match sym {
            0..=255 => w.literal(sym as u8, at)?,
            256 => {
                w.end_of_block(at)?;
                return Ok(());
            }
            257..=285 => {
                let i = (sym - 257) as usize;
                let len = LENGTH_BASE[i] + r.bits(LENGTH_EXTRA[i] as u32)? as u16;
                if len > 258 {
                    return Err(deflate_err(at, format!("length {len} above 258")));
                }
                let ds = dist.decode(r, "distance")? as usize;
                if ds >= 30 {
                    return Err(deflate_err(at, format!("distance symbol {ds} is invalid")));
                }
                let d = DIST_BASE[ds] + r.bits(DIST_EXTRA[ds] as u32)? as u16;
                w.len_dist(len, d, at)?;
            }
            _ => {
                return Err(deflate_err(
                    at,
                    format!("literal/length symbol {sym} is invalid"),
                ));
            }
        }
    }
}

// ---------------------------------------------------------------- huff

/// Re-encodes one puff (a whole number of blocks) as deflate bits.
fn huff_deflate(puff: &[u8], w: &mut BitWriter) -> Result<(), PuffinError> {
    let mut i = 0usize;
    let (fixed_lit, fixed_dist) = fixed_tables();
    let take = |i: &mut usize, n: usize, what: &str| -> Result<&[u8], PuffinError> {
        let s = puff.get(*i..*i + n).ok_or_else(|| {
            puff_err(
                *i,
                format!("{what} ({n} bytes) runs past the end of the puff"),
            )
        })?;
        *i += n;
        Ok(s)
    };
    while i < puff.len() {
        let meta_at = i;
        let n = u16::from_be_bytes(
            take(&mut i, 2, "block metadata length")?
                .try_into()
                .expect("2"),
        ) as usize
            + 1;
        if n > MAX_METADATA_LEN {
            return Err(puff_err(
                meta_at,
                format!("block metadata of {n} bytes exceeds {MAX_METADATA_LEN}"),
            ));
        }
        let meta = take(&mut i, n, "block metadata")?;
        let header = meta[0];
        let btype = (header >> 5) & 3;
        w.write_bits(1, (header >> 7) as u32);
        w.write_bits(2, btype as u32);
        match btype {
            0 => {
                if n != 1 {
                    return Err(puff_err(
                        meta_at,
                        format!("stored block metadata is {n} bytes, not 1"),
                    ));
                }
                let pad_n = ((8 - w.bit_len() % 8) % 8) as u32;
                w.write_bits(pad_n, (header & 0x1f) as u32);
                let rec_at = i;
                let rec = *puff
                    .get(i)
                    .ok_or_else(|| puff_err(i, "stored block has no end of block"))?;
                if rec == 0xff {
                    take(&mut i, 2, "end of block").and_then(|b| {
                        if b[1] == 0x81 {
                            Ok(b)
                        } else {
                            Err(puff_err(
                                rec_at,
                                "stored block holds a length/distance pair",
                            ))
                        }
                    })?;
                    w.write_bits(16, 0);
                    w.write_bits(16, 0xffff);
                } else if rec & 0x80 != 0 {
                    return Err(puff_err(
                        rec_at,
                        "stored block holds a length/distance pair",
                    ));
                } else {
                    let len = read_run_len(puff, &mut i)?;
                    if len > 0xffff {
                        return Err(puff_err(
                            rec_at,
                            format!("stored block of {len} bytes exceeds 65535"),
                        ));
                    }
                    let bytes = take(&mut i, len, "stored block data")?;
                    w.write_bits(16, len as u32);
                    w.write_bits(16, !len as u32 & 0xffff);
                    w.write_bytes(bytes);
                    let eob_at = i;
                    let eob = take(&mut i, 2, "end of block")?;
                    if eob != [0xff, 0x81] {
                        return Err(puff_err(
                            eob_at,
                            "stored block does not end after its one literal run",
                        ));
                    }
                }
            }
            1 => {
                if n != 1 {
                    return Err(puff_err(
                        meta_at,
                        format!("fixed block metadata is {n} bytes, not 1"),
                    ));
                }
                huff_symbols(puff, &mut i, w, &fixed_lit, &fixed_dist)?;
            }
            2 => {
                let (lit, dist) = write_dynamic_header(&meta[1..], meta_at + 3, w)?;
                huff_symbols(puff, &mut i, w, &lit, &dist)?;
            }
            _ => return Err(puff_err(meta_at + 2, "block type 3 is reserved")),
        }
    }
    Ok(())
}

/// Reads a literal-run header at `*i` and returns the run length.
fn read_run_len(puff: &[u8], i: &mut usize) -> Result<usize, PuffinError> {
    let b = puff[*i];
    if b & 0x7f < 127 {
        *i += 1;
        Ok((b & 0x7f) as usize + 1)
    } else {
        let v = puff
            .get(*i + 1..*i + 3)
            .ok_or_else(|| puff_err(*i, "literal run length runs past the end of the puff"))?;
        *i += 3;
        Ok(u16::from_be_bytes([v[0], v[1]]) as usize + 128)
    }
}

fn write_dynamic_header(
    m: &[u8],
    at: usize,
    w: &mut BitWriter,
) -> Result<(Huffman, Huffman), PuffinError> {
    if m.len() < 3 {
        return Err(puff_err(at, "dynamic block metadata shorter than 4 bytes"));
    }
    let (hlit, hdist, hclen) = (m[0] as u32, m[1] as u32, m[2] as u32);
    if hlit > 29 || hdist > 29 || hclen > 15 {
        return Err(puff_err(
            at,
            format!("HLIT {hlit} / HDIST {hdist} / HCLEN {hclen} out of range"),
        ));
    }
    let (nlit, ndist, ncl) = (hlit as usize + 257, hdist as usize + 1, hclen as usize + 4);
    w.write_bits(5, hlit);
    w.write_bits(5, hdist);
    w.write_bits(4, hclen);
    let packed = ncl.div_ceil(2);
    if m.len() < 3 + packed {
        return Err(puff_err(
            at,
            "dynamic block metadata ends inside the code-length code lengths",
        ));
    }
    let mut cl = [0u8; 19];
    for k in 0..ncl {
        let byte = m[3 + k / 2];
        let v = if k % 2 == 0 { byte >> 4 } else { byte & 0x0f };
        if v > 7 {
            return Err(puff_err(
                at + 3 + k / 2,
                format!("code-length code length {v} above 7"),
            ));
        }
        cl[CLEN_ORDER[k]] = v;
        w.write_bits(3, v as u32);
    }
    let clh = Huffman::new(&cl).map_err(|e| puff_err(at, format!("code-length code: {e}")))?;
    let mut lens: Vec<u8> = Vec::with_capacity(nlit + ndist);
    let mut k = 3 + packed;
    while lens.len() < nlit + ndist {
        let rec_at = at + k;
        let Some(&p) = m.get(k) else {
            return Err(puff_err(
                rec_at,
                "dynamic block metadata ends before all code lengths",
            ));
        };
        k += 1;
        let (sym, extra_n, extra, count, val) = match p {
            0..=15 => (p as usize, 0, 0, 1, p),
            16..=19 => {
                let Some(&prev) = lens.last() else {
                    return Err(puff_err(rec_at, "repeat code 16 with no previous length"));
                };
                (16, 2, (p - 16) as u32, 3 + (p - 16) as usize, prev)
            }
            20..=27 => (17, 3, (p - 20) as u32, 3 + (p - 20) as usize, 0),
            28..=155 => (18, 7, (p - 28) as u32, 11 + (p - 28) as usize, 0),
            _ => {
                return Err(puff_err(
                    rec_at,
                    format!("code-length record {p} above 155"),
                ));
            }
        };
        if lens.len() + count > nlit + ndist {
            return Err(puff_err(
                rec_at,
                "code-length repeat runs past HLIT + HDIST",
            ));
        }
        clh.encode(w, sym, rec_at, "code-length")?;
        w.write_bits(extra_n, extra);
        lens.extend(std::iter::repeat_n(val, count));
    }
    if k != m.len() {
        return Err(puff_err(
            at + k,
            format!("{} unused bytes after the code lengths", m.len() - k),
        ));
    }
    let lit = Huffman::new(&lens[..nlit])
        .map_err(|e| puff_err(at, format!("literal/length code: {e}")))?;
    let dist =
        Huffman::new(&lens[nlit..]).map_err(|e| puff_err(at, format!("distance code: {e}")))?;
    Ok((lit, dist))
}

fn huff_symbols(
    puff: &[u8],
    i: &mut usize,
    w: &mut BitWriter,
    lit: &Huffman,
    dist: &Huffman,
) -> Result<(), PuffinError> {
    loop {
        let at = *i;
        let Some(&b) = puff.get(at) else {
            return Err(puff_err(at, "block has no end of block"));
        };
        if b & 0x80 == 0 {
            let n = read_run_len(puff, i)?;
            let run = puff.get(*i..*i + n).ok_or_else(|| {
                puff_err(
                    at,
                    format!("literal run of {n} bytes runs past the end of the puff"),
                )
            })?;
            *i += n;
            for &x in run {
                lit.encode(w, x as usize, at, "literal")?;
            }
            continue;
        }
        let len = if b & 0x7f < 127 {
            *i += 1;
            (b & 0x7f) as usize + 3
        } else {
            let Some(&x) = puff.get(at + 1) else {
                return Err(puff_err(at, "length runs past the end of the puff"));
            };
            *i += 2;
            x as usize + 130
        };
        if len == 259 {
            lit.encode(w, 256, at, "end of block")?;
            return Ok(());
        }
        if len > 259 {
            return Err(puff_err(at, format!("length {len} above 258")));
        }
        let Some(d) = puff.get(*i..*i + 2) else {
            return Err(puff_err(at, "distance runs past the end of the puff"));
        };
        *i += 2;
        let d = u16::from_be_bytes([d[0], d[1]]);
        if d >= 1 << 15 {
            return Err(puff_err(
                at,
                format!("distance {} above 32768", d as u32 + 1),
            ));
        }
        let dist_v = d + 1;
        let li = LENGTH_BASE
            .iter()
            .rposition(|&b| b as usize <= len)
            .expect("len >= 3");
        lit.encode(w, 257 + li, at, "length")?;
        w.write_bits(
            LENGTH_EXTRA[li] as u32,
            (len - LENGTH_BASE[li] as usize) as u32,
        );
        let di = DIST_BASE
            .iter()
            .rposition(|&b| b <= dist_v)
            .expect("dist >= 1");
        dist.encode(w, di, at, "distance")?;
        w.write_bits(DIST_EXTRA[di] as u32, (dist_v - DIST_BASE[di]) as u32);
    }
}

/// Puffs a single deflate stream held entirely in `data` (from bit 0) and
/// returns `(puff, end bit)`; the puff is at most `max_len` bytes.
pub fn puff(data: &[u8], max_len: usize) -> Result<(Vec<u8>, u64), PuffinError> {
    let mut out = Vec::new();
    let end = puff_deflate(data, 0, &mut out, max_len)?;
    Ok((out, end))
}

/// Huffs one puff (whole blocks) back to deflate bytes, the last byte
/// zero-padded.
pub fn huff(puff: &[u8]) -> Result<Vec<u8>, PuffinError> {
    let mut w = BitWriter::with_capacity(puff.len());
    huff_deflate(puff, &mut w)?;
    Ok(w.finish())
}
