//! Zucchini ensemble patches (ZUCCHINI operations, and the inner patch of
//! Chromium-style PUF1 patches).
//!
//! Layout (all integers little-endian; "buffer" = u32 size + that many bytes):
//!
//! - header, 24 bytes: `"Zucc"`, u16 major version (1: AOSP external/zucchini,
//!   which update_engine uses; 2: Chromium since 2023, same layout), u16 minor,
//!   u32 old size, u32 old CRC-32, u32 new size, u32 new CRC-32;
//! - u32 element count, then per element:
//!   - element header, 22 bytes: u32 old offset, old length, new offset, new
//!     length, u32 executable type (four ASCII bytes: `NoOp`, `Ex86`, `Ex64`,
//!     `EA32`, `EA64`, `DEX `, `Px86`, `Px64`, `ZTF `), u16 element version (1);
//!   - equivalences: three buffers — src skips (signed varints), dst skips
//!     (unsigned varints), copy lengths (unsigned varints); each equivalence
//!     copies `length` old bytes at `prev_src_end + src_skip` to new offset
//!     `prev_dst_end + dst_skip` (offsets relative to the element regions);
//!   - extra data: one buffer filling, in order, every new byte no
//!     equivalence covers;
//!   - raw deltas: two buffers — skips (unsigned varints) and signed bytes;
//!     a delta adds its byte to the copied bytes at "copy offset"
//!     `prev + 1 + skip`, counted over the concatenated equivalences;
//!   - reference deltas: one buffer of signed varints;
//!   - u32 pool count, then per pool a u8 tag (not 0xff) and a buffer of
//!     extra targets (unsigned varints).
//!
//! Varints are LEB128 of at most 5 bytes (u32); signed ones map `2n` to `n`
//! and `2n + 1` to `!n`.
//!
//! Invariants checked before anything is written: elements cover the new file
//! contiguously from 0 and fit both files, every equivalence fits its element
//! regions in increasing new order, the extra data is exactly the bytes left,
//! every raw delta falls in a copied byte and is non-zero, every stream is
//! fully consumed, and the patch has no trailing bytes. The old file must
//! match the header's size and CRC-32, and the result the new CRC-32. The
//! output is allocated only after the header's new size passed the caller's
//! limit.
//!
//! Applying an element ([`mod@apply`]) follows Zucchini's `ApplyElement`:
//! equivalences and extra data, raw deltas, then reference correction with
//! the disassembler of the element's executable type ([`disasm`]): pools
//! of targets ([`target_pool`]) projected through the pruned equivalences
//! ([`offset_mapper`]; the header's major version picks the sort tie-break
//! Chromium changed in version 2), corrected by the reference delta stream,
//! which must be consumed exactly.
//!
//! Implemented element types: `NoOp` (no references), verified by Chromium
//! puffin's vectors; `Ex86`, `Ex64` ([`elf`], with [`address_translator`])
//! and `EA32`, `EA64` ([`elf_arm`] on the same ELF layer, with [`arm`]),
//! verified by Chromium's unit-test vectors for each building block and end
//! to end on ELF files built by gcc (x86) and GNU cross binutils (ARM) whose
//! references are derived from binutils; `DEX ` ([`dex`]: Chromium's
//! 42 reference types in 17 pools), verified by Chromium's reference-group
//! table and against `dexdump` and androguard on DEX files built by smali,
//! dx and d8, and end to end by an identity patch over a real DEX file.
//! `Px86`, `Px64` and `ZTF ` elements (Windows and text, which Android does
//! not emit) are parsed and validated but refused with
//! [`ZucchiniError::Unsupported`] before anything is written.
//!
//! Every hostile value (a disassembler that cannot parse the old or new
//! element, a key outside its pool, a missing or surplus reference delta, a
//! bad extra target, a write the new element refuses) is a [`ZucchiniError`]
//! naming the element, its type and, where it applies, the reference type
//! and location; nothing panics.

use std::io::{self, Read};

pub mod address_translator;
pub mod apply;
pub mod arm;
pub mod dex;
pub mod disasm;
pub mod elf;
pub mod elf_arm;
pub mod offset_mapper;
pub mod target_pool;

/// Magic at offset 0.
pub const MAGIC: &[u8; 4] = b"Zucc";
/// Size of the patch header.
pub const HEADER_SIZE: usize = 24;
/// Size of an element header.
pub const ELEMENT_HEADER_SIZE: usize = 22;
/// Pool tag that marks "no pool" and may not appear in a patch.
pub const NO_POOL_TAG: u8 = 0xff;

/// What is wrong with a Zucchini patch or with applying it.
#[derive(Debug, thiserror::Error)]
pub enum ZucchiniError {
    /// The patch ends inside a field.
    #[error("zucchini patch, offset {offset}: {field} needs {needed} bytes, {avail} left")]
    Truncated {
        /// Field being read.
        field: String,
        /// Its offset in the patch.
        offset: usize,
        /// Bytes it needs.
        needed: u64,
        /// Bytes left.
        avail: usize,
    },
    /// A header field has a value this applier refuses.
    #[error("zucchini patch, offset {offset}: {field} = {value} {reason}")]
    BadField {
        /// Field name (element-qualified where it applies).
        field: String,
        /// Its offset in the patch.
        offset: usize,
        /// Value found.
        value: u64,
        /// Why it is refused.
        reason: String,
    },
    /// A value inside one of an element's streams is invalid.
    #[error("zucchini element {element}, {stream} stream offset {offset}: {reason}")]
    BadStream {
        /// Element index.
        element: usize,
        /// Stream name.
        stream: &'static str,
        /// Offset inside the stream's buffer.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// An element type whose reference correction is not implemented.
    #[error(
        "zucchini element {element}: executable type {exe_type} needs a disassembler, which is not implemented (NoOp, Ex86, Ex64, EA32 and EA64 are)"
    )]
    Unsupported {
        /// Element index.
        element: usize,
        /// The type's four-character code.
        exe_type: String,
    },
    /// A reference that cannot be read or written as its type requires.
    #[error("zucchini: reference type {type_tag} at element offset {location:#x}: {reason}")]
    BadReference {
        /// Reference type tag.
        type_tag: u8,
        /// Element-relative location.
        location: u32,
        /// What is wrong.
        reason: String,
    },
    /// An element the disassembler of its type cannot parse.
    #[error("zucchini element {element} ({exe_type}): {reason}")]
    BadElement {
        /// Element index.
        element: usize,
        /// The type's four-character code.
        exe_type: String,
        /// What is wrong, with the offset where it applies.
        reason: String,
    },
    /// A reference the correction step cannot place: a key outside the
    /// target pool, a missing reference delta, or a write the new element
    /// refuses.
    #[error(
        "zucchini element {element} ({exe_type}), reference type {type_tag} at old element offset {location:#x}: {reason}"
    )]
    BadCorrection {
        /// Element index.
        element: usize,
        /// The type's four-character code.
        exe_type: String,
        /// Reference type tag.
        type_tag: u8,
        /// Location of the old reference (element-relative).
        location: u32,
        /// What is wrong.
        reason: String,
    },
    /// The old file is not the one the patch was made from.
    #[error("zucchini: old file {field} is {actual:#x}, the patch expects {expected:#x}")]
    OldMismatch {
        /// `size` or `crc32`.
        field: &'static str,
        /// Value in the header.
        expected: u64,
        /// Value of the given file.
        actual: u64,
    },
    /// The result does not match the header's CRC-32.
    #[error("zucchini: new file CRC-32 is {actual:#010x}, the patch header says {expected:#010x}")]
    NewCrc {
        /// CRC-32 in the header.
        expected: u32,
        /// CRC-32 of the result.
        actual: u32,
    },
    /// A size above the caller's limit.
    #[error("zucchini: {what} = {claimed} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Size claimed or reached.
        claimed: u64,
        /// Caller's limit.
        limit: u64,
    },
    /// The brotli layer failed.
    #[error("zucchini patch: brotli decompression failed after {offset} bytes: {source}")]
    Brotli {
        /// Decompressed bytes before the failure.
        offset: u64,
        /// Decoder error.
        source: io::Error,
    },
}

/// Executable type of an element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExeType {
    /// `NoOp`: raw bytes, no references.
    NoOp,
    /// `Px86`: Win32 PE x86.
    Win32X86,
    /// `Px64`: Win32 PE x64.
    Win32X64,
    /// `Ex86`: ELF x86.
    ElfX86,
    /// `Ex64`: ELF x86-64.
    ElfX64,
    /// `EA32`: ELF ARM32.
    ElfAArch32,
    /// `EA64`: ELF ARM64.
    ElfAArch64,
    /// `DEX `: Android DEX.
    Dex,
    /// `ZTF `: Zucchini text format.
    Ztf,
}

impl ExeType {
    /// Maps the stored u32 (four ASCII bytes, little-endian) to a type.
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match &v.to_le_bytes() {
            b"NoOp" => ExeType::NoOp,
            b"Px86" => ExeType::Win32X86,
            b"Px64" => ExeType::Win32X64,
            b"Ex86" => ExeType::ElfX86,
            b"Ex64" => ExeType::ElfX64,
            b"EA32" => ExeType::ElfAArch32,
            b"EA64" => ExeType::ElfAArch64,
            b"DEX " => ExeType::Dex,
            b"ZTF " => ExeType::Ztf,
            _ => return None,
        })
    }

    /// The element version Zucchini writes for this type (1 for all).
    pub fn version(self) -> u16 {
        1
    }
}

/// Printable form of a four-character code.
fn fourcc(v: u32) -> String {
    v.to_le_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// The 24-byte patch header as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawHeader {
    /// `"Zucc"`.
    pub magic: [u8; 4],
    /// Format major version.
    pub major_version: u16,
    /// Format minor version.
    pub minor_version: u16,
    /// Size of the old file.
    pub old_size: u32,
    /// CRC-32 of the old file.
    pub old_crc: u32,
    /// Size of the new file.
    pub new_size: u32,
    /// CRC-32 of the new file.
    pub new_crc: u32,
}

impl RawHeader {
    /// Checks the magic and that the major version is 1 or 2.
    pub fn validate(&self) -> Result<(), ZucchiniError> {
        if &self.magic != MAGIC {
            return Err(ZucchiniError::BadField {
                field: "magic".into(),
                offset: 0,
                value: u32::from_le_bytes(self.magic) as u64,
                reason: format!("({:02x?}) is not \"Zucc\"", self.magic),
            });
        }
        if !(1..=2).contains(&self.major_version) {
            return Err(ZucchiniError::BadField {
                field: "major_version".into(),
                offset: 4,
                value: self.major_version as u64,
                reason: "is neither 1 (AOSP) nor 2 (Chromium)".into(),
            });
        }
        Ok(())
    }
}

/// The 22-byte element header as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawElementHeader {
    /// Offset of the element in the old file.
    pub old_offset: u32,
    /// Length of the element in the old file.
    pub old_length: u32,
    /// Offset of the element in the new file.
    pub new_offset: u32,
    /// Length of the element in the new file.
    pub new_length: u32,
    /// Executable type code.
    pub exe_type: u32,
    /// Element (disassembler) version.
    pub version: u16,
}

impl RawElementHeader {
    /// Checks the type, its version, non-empty regions inside both files and
    /// that the new region starts at `expected_new_offset`. `offset` is where
    /// the header lies in the patch, for messages.
    pub fn validate(
        &self,
        index: usize,
        offset: usize,
        header: &RawHeader,
        expected_new_offset: u32,
    ) -> Result<ExeType, ZucchiniError> {
        let bad = |field: &str, at: usize, value: u64, reason: String| ZucchiniError::BadField {
            field: format!("element[{index}].{field}"),
            offset: offset + at,
            value,
            reason,
        };
        let exe = ExeType::from_u32(self.exe_type).ok_or_else(|| {
            bad(
                "exe_type",
                16,
                self.exe_type as u64,
                format!(
                    "({:?}) is not a known executable type",
                    fourcc(self.exe_type)
                ),
            )
        })?;
        if self.version != exe.version() {
            return Err(bad(
                "version",
                20,
                self.version as u64,
                format!(
                    "differs from version {} of type {}",
                    exe.version(),
                    fourcc(self.exe_type)
                ),
            ));
        }
        if self.old_length == 0 {
            return Err(bad("old_length", 4, 0, "is empty".into()));
        }
        if self.new_length == 0 {
            return Err(bad("new_length", 12, 0, "is empty".into()));
        }
        if self.old_offset as u64 + self.old_length as u64 > header.old_size as u64 {
            return Err(bad(
                "old_length",
                4,
                self.old_length as u64,
                format!(
                    "at old offset {} exceeds old_size {}",
                    self.old_offset, header.old_size
                ),
            ));
        }
        if self.new_offset != expected_new_offset {
            return Err(bad(
                "new_offset",
                8,
                self.new_offset as u64,
                format!("is not {expected_new_offset}, where the previous element ended"),
            ));
        }
        if self.new_offset as u64 + self.new_length as u64 > header.new_size as u64 {
            return Err(bad(
                "new_length",
                12,
                self.new_length as u64,
                format!(
                    "at new offset {} exceeds new_size {}",
                    self.new_offset, header.new_size
                ),
            ));
        }
        Ok(exe)
    }
}

/// One equivalence: `length` bytes from old element offset `src` to new
/// element offset `dst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Equivalence {
    /// Offset in the old element.
    pub src: u32,
    /// Offset in the new element.
    pub dst: u32,
    /// Number of bytes.
    pub length: u32,
}

/// A parsed, validated element patch.
#[derive(Clone, Debug)]
pub struct ElementPatch<'a> {
    /// Raw element header.
    pub header: RawElementHeader,
    /// Its executable type.
    pub exe_type: ExeType,
    /// Decoded equivalences, in new-file order.
    pub equivalences: Vec<Equivalence>,
    /// Extra data (new bytes outside equivalences).
    pub extra_data: &'a [u8],
    /// Raw deltas: (offset over the concatenated equivalences, byte added).
    pub raw_deltas: Vec<(u32, i8)>,
    /// Reference delta stream (signed varints), kept encoded.
    pub reference_delta: &'a [u8],
    /// Extra target pools: (pool tag, encoded targets).
    pub extra_targets: Vec<(u8, &'a [u8])>,
}

/// A parsed, validated ensemble patch.
#[derive(Clone, Debug)]
pub struct EnsemblePatch<'a> {
    /// Patch header.
    pub header: RawHeader,
    /// Elements, covering the new file in order.
    pub elements: Vec<ElementPatch<'a>>,
}

/// Cursor over the patch with offset-aware errors.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, field: &dyn Fn() -> String) -> Result<&'a [u8], ZucchiniError> {
        let avail = self.data.len() - self.pos;
        if n > avail {
            return Err(ZucchiniError::Truncated {
                field: field(),
                offset: self.pos,
                needed: n as u64,
                avail,
            });
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u32(&mut self, field: &dyn Fn() -> String) -> Result<u32, ZucchiniError> {
        Ok(u32::from_le_bytes(
            self.take(4, field)?.try_into().expect("4"),
        ))
    }

    fn buffer(&mut self, field: &dyn Fn() -> String) -> Result<&'a [u8], ZucchiniError> {
        let n = self.u32(&|| format!("{} size", field()))?;
        self.take(n as usize, field)
    }
}

/// Reads an unsigned LEB128 varint of at most 5 bytes (bits past 32 are
/// dropped, as Zucchini does). Returns the value and bytes used.
fn varuint(b: &[u8]) -> Option<(u32, usize)> {
    let mut v: u32 = 0;
    for (i, &x) in b.iter().enumerate().take(5) {
        v |= ((x & 0x7f) as u32).wrapping_shl(7 * i as u32);
        if x < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

fn varint(b: &[u8]) -> Option<(i32, usize)> {
    varuint(b).map(|(u, n)| {
        let v = if u & 1 != 0 {
            !((u >> 1) as i32)
        } else {
            (u >> 1) as i32
        };
        (v, n)
    })
}

/// Parses `patch` (uncompressed) and validates its structure.
pub fn parse(patch: &[u8]) -> Result<EnsemblePatch<'_>, ZucchiniError> {
    let mut c = Cursor {
        data: patch,
        pos: 0,
    };
    let h = c.take(HEADER_SIZE, &|| "header".into())?;
    let u = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().expect("4"));
    let header = RawHeader {
        magic: h[0..4].try_into().expect("4"),
        major_version: u16::from_le_bytes([h[4], h[5]]),
        minor_version: u16::from_le_bytes([h[6], h[7]]),
        old_size: u(8),
        old_crc: u(12),
        new_size: u(16),
        new_crc: u(20),
    };
    header.validate()?;
    let count_at = c.pos;
    let count = c.u32(&|| "element_count".into())?;
    // Each element takes at least its header and 8 buffer sizes + pool count.
    let min_element = ELEMENT_HEADER_SIZE + 4 * 8;
    if count as usize > (patch.len() - c.pos) / min_element {
        return Err(ZucchiniError::BadField {
            field: "element_count".into(),
            offset: count_at,
            value: count as u64,
            reason: format!("cannot fit in the {} bytes left", patch.len() - c.pos),
        });
    }
    let mut elements = Vec::with_capacity(count as usize);
    let mut new_end: u32 = 0;
    for i in 0..count as usize {
        let el = parse_element(&mut c, i, &header, new_end)?;
        new_end = el.header.new_offset + el.header.new_length;
        elements.push(el);
    }
    if new_end != header.new_size {
        return Err(ZucchiniError::BadField {
            field: "new_size".into(),
            offset: 16,
            value: header.new_size as u64,
            reason: format!("but the elements cover only 0..{new_end}"),
        });
    }
    if c.pos != patch.len() {
        return Err(ZucchiniError::BadField {
            field: "patch length".into(),
            offset: c.pos,
            value: patch.len() as u64,
            reason: format!(
                "has {} trailing bytes after the last element",
                patch.len() - c.pos
            ),
        });
    }
    Ok(EnsemblePatch { header, elements })
}

fn parse_element<'a>(
    c: &mut Cursor<'a>,
    i: usize,
    header: &RawHeader,
    new_offset: u32,
) -> Result<ElementPatch<'a>, ZucchiniError> {
    let at = c.pos;
    let h = c.take(ELEMENT_HEADER_SIZE, &|| format!("element[{i}] header"))?;
    let u = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().expect("4"));
    let eh = RawElementHeader {
        old_offset: u(0),
        old_length: u(4),
        new_offset: u(8),
        new_length: u(12),
        exe_type: u(16),
        version: u16::from_le_bytes([h[20], h[21]]),
    };
    let exe_type = eh.validate(i, at, header, new_offset)?;
    let f = |name: &'static str| move || format!("element[{i}].{name}");
    let src_skip = c.buffer(&f("src_skip"))?;
    let dst_skip = c.buffer(&f("dst_skip"))?;
    let copy_count = c.buffer(&f("copy_count"))?;
    let extra_data = c.buffer(&f("extra_data"))?;
    let raw_skip = c.buffer(&f("raw_delta_skip"))?;
    let raw_diff = c.buffer(&f("raw_delta_diff"))?;
    let reference_delta = c.buffer(&f("reference_delta"))?;
    let pools_at = c.pos;
    let pool_count = c.u32(&f("pool_count"))?;
    if pool_count > 256 {
        return Err(ZucchiniError::BadField {
            field: format!("element[{i}].pool_count"),
            offset: pools_at,
            value: pool_count as u64,
            reason: "exceeds the 255 possible pool tags".into(),
        });
    }
    let mut extra_targets: Vec<(u8, &[u8])> = Vec::new();
    for _ in 0..pool_count {
        let tag_at = c.pos;
        let tag = c.take(1, &f("pool_tag"))?[0];
        if tag == NO_POOL_TAG || extra_targets.iter().any(|(t, _)| *t == tag) {
            return Err(ZucchiniError::BadField {
                field: format!("element[{i}].pool_tag"),
                offset: tag_at,
                value: tag as u64,
                reason: "is 0xff (no pool) or repeated".into(),
            });
        }
        let targets = c.buffer(&f("extra_targets"))?;
        extra_targets.push((tag, targets));
    }

    let stream_err =
        |stream: &'static str, offset: usize, reason: String| ZucchiniError::BadStream {
            element: i,
            stream,
            offset,
            reason,
        };

    // Equivalences.
    let (mut ps, mut pd, mut pc) = (0usize, 0usize, 0usize);
    let (mut prev_src_end, mut prev_dst_end): (u64, u64) = (0, 0);
    let mut total: u64 = 0;
    let mut equivalences = Vec::new();
    while ps < src_skip.len() || pd < dst_skip.len() || pc < copy_count.len() {
        let (length, n) = varuint(&copy_count[pc..])
            .ok_or_else(|| stream_err("copy_count", pc, "bad or missing varint".into()))?;
        pc += n;
        let (sd, n) = varint(&src_skip[ps..])
            .ok_or_else(|| stream_err("src_skip", ps, "bad or missing varint".into()))?;
        ps += n;
        let (dd, n) = varuint(&dst_skip[pd..])
            .ok_or_else(|| stream_err("dst_skip", pd, "bad or missing varint".into()))?;
        pd += n;
        let src = prev_src_end as i64 + sd as i64;
        let dst = prev_dst_end + dd as u64;
        if src < 0 || src as u64 + length as u64 > eh.old_length as u64 {
            return Err(stream_err(
                "src_skip",
                ps - n,
                format!(
                    "equivalence {} copies old {src}..{} outside the {}-byte old element",
                    equivalences.len(),
                    src + length as i64,
                    eh.old_length
                ),
            ));
        }
        if dst + length as u64 > eh.new_length as u64 {
            return Err(stream_err(
                "dst_skip",
                pd - n,
                format!(
                    "equivalence {} writes new {dst}..{} outside the {}-byte new element",
                    equivalences.len(),
                    dst + length as u64,
                    eh.new_length
                ),
            ));
        }
        prev_src_end = src as u64 + length as u64;
        prev_dst_end = dst + length as u64;
        total += length as u64;
        equivalences.push(Equivalence {
            src: src as u32,
            dst: dst as u32,
            length,
        });
    }
    if extra_data.len() as u64 != eh.new_length as u64 - total {
        return Err(stream_err(
            "extra_data",
            0,
            format!(
                "holds {} bytes, the {}-byte new element less {total} copied bytes needs {}",
                extra_data.len(),
                eh.new_length,
                eh.new_length as u64 - total
            ),
        ));
    }

    // Raw deltas.
    let mut raw_deltas = Vec::with_capacity(raw_diff.len());
    let (mut pk, mut next): (usize, u64) = (0, 0);
    for (k, &d) in raw_diff.iter().enumerate() {
        let (skip, n) = varuint(&raw_skip[pk..])
            .ok_or_else(|| stream_err("raw_delta_skip", pk, format!("no varint for delta {k}")))?;
        pk += n;
        let off = next + skip as u64;
        if off >= total {
            return Err(stream_err(
                "raw_delta_skip",
                pk - n,
                format!("delta {k} at copy offset {off} is past the {total} copied bytes"),
            ));
        }
        if d == 0 {
            return Err(stream_err("raw_delta_diff", k, "delta is zero".into()));
        }
        raw_deltas.push((off as u32, d as i8));
        next = off + 1;
    }
    if pk != raw_skip.len() {
        return Err(stream_err(
            "raw_delta_skip",
            pk,
            format!("{} bytes left after the last delta", raw_skip.len() - pk),
        ));
    }

    Ok(ElementPatch {
        header: eh,
        exe_type,
        equivalences,
        extra_data,
        raw_deltas,
        reference_delta,
        extra_targets,
    })
}

/// CRC-32 (IEEE, as zlib) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut r = i as u32;
            for _ in 0..8 {
                r = if r & 1 != 0 {
                    (r >> 1) ^ 0xEDB8_8320
                } else {
                    r >> 1
                };
            }
            *e = r;
        }
        t
    });
    let mut c = !0u32;
    for &b in data {
        c = t[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// Decompresses a brotli stream (a ZUCCHINI operation's data, or the inner
/// patch of a PUF1 ZUCCHINI patch), refusing more than `limit` bytes.
pub fn decompress_brotli(data: &[u8], limit: u64) -> Result<Vec<u8>, ZucchiniError> {
    let mut out = Vec::new();
    let mut r = brotli_decompressor::Decompressor::new(data, 4096).take(limit.saturating_add(1));
    r.read_to_end(&mut out)
        .map_err(|source| ZucchiniError::Brotli {
            offset: out.len() as u64,
            source,
        })?;
    if out.len() as u64 > limit {
        return Err(ZucchiniError::TooLarge {
            what: "decompressed patch",
            claimed: out.len() as u64,
            limit,
        });
    }
    Ok(out)
}

/// Applies an uncompressed Zucchini patch to `old`, refusing a new size above
/// `new_len_limit`.
pub fn apply(old: &[u8], patch: &[u8], new_len_limit: u64) -> Result<Vec<u8>, ZucchiniError> {
    let p = parse(patch)?;
    if p.header.new_size as u64 > new_len_limit {
        return Err(ZucchiniError::TooLarge {
            what: "new_size",
            claimed: p.header.new_size as u64,
            limit: new_len_limit,
        });
    }
    let mut out = vec![0u8; p.header.new_size as usize];
    apply_parsed(old, &p, &mut out)?;
    Ok(out)
}

/// Applies a brotli-compressed Zucchini patch (a ZUCCHINI operation's data).
/// The decompressed patch may be at most `4 × new_len_limit + 1 MiB`.
pub fn apply_brotli(old: &[u8], data: &[u8], new_len_limit: u64) -> Result<Vec<u8>, ZucchiniError> {
    let raw = decompress_brotli(
        data,
        new_len_limit.saturating_mul(4).saturating_add(1 << 20),
    )?;
    apply(old, &raw, new_len_limit)
}

/// Applies a parsed patch into `out`, whose length must be the header's new
/// size. Checks the old file's size and CRC-32 first and the result's CRC-32
/// last.
pub fn apply_parsed(
    old: &[u8],
    p: &EnsemblePatch<'_>,
    out: &mut [u8],
) -> Result<(), ZucchiniError> {
    let h = &p.header;
    if out.len() as u64 != h.new_size as u64 {
        return Err(ZucchiniError::BadField {
            field: "new_size".into(),
            offset: 16,
            value: h.new_size as u64,
            reason: format!("differs from the {}-byte destination", out.len()),
        });
    }
    if old.len() as u64 != h.old_size as u64 {
        return Err(ZucchiniError::OldMismatch {
            field: "size",
            expected: h.old_size as u64,
            actual: old.len() as u64,
        });
    }
    let crc = crc32(old);
    if crc != h.old_crc {
        return Err(ZucchiniError::OldMismatch {
            field: "crc32",
            expected: h.old_crc as u64,
            actual: crc as u64,
        });
    }
    for (i, e) in p.elements.iter().enumerate() {
        if !apply::is_supported(e.exe_type) {
            return Err(ZucchiniError::Unsupported {
                element: i,
                exe_type: fourcc(e.header.exe_type),
            });
        }
    }
    for (i, e) in p.elements.iter().enumerate() {
        let eh = &e.header;
        let old_el = &old[eh.old_offset as usize..(eh.old_offset + eh.old_length) as usize];
        let new_el = &mut out[eh.new_offset as usize..(eh.new_offset + eh.new_length) as usize];
        apply::apply_element(i, old_el, e, new_el, h.major_version)?;
    }
    let crc = crc32(out);
    if crc != h.new_crc {
        return Err(ZucchiniError::NewCrc {
            expected: h.new_crc,
            actual: crc,
        });
    }
    Ok(())
}
