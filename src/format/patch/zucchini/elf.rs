//! Zucchini's ELF disassemblers: the architecture-independent ELF layer
//! ([`ElfCore`]: headers, address translation, relocations, abs32) and the
//! Intel disassemblers (`Ex86`: ELF32 x86, `Ex64`: ELF64 x86-64).
//!
//! What Zucchini (and this port) refuses, in order:
//! - quick detection: no `\x7fELF`, a truncated header, another class than
//!   the type's (ELF32/ELF64), big-endian data, `e_type` other than
//!   `ET_EXEC`/`ET_DYN`, `e_version` or `EI_VERSION` not 1, another
//!   `e_machine`, `e_shentsize` not the section header size;
//! - no section header, or the section or program header table outside the
//!   image (`e_phentsize` is not checked: Zucchini strides by its own
//!   struct size); `e_shstrndx` out of range, or a non-empty name table
//!   outside the image or not ending in NUL;
//! - a segment whose file range overflows 32 bits or leaves the image;
//! - a section whose address range leaves `0..0x7fff0000`, or whose file
//!   range leaves the image (`SHT_NOBITS`: `0..0x7fff0000`);
//! - address translation units that conflict (see
//!   [`super::address_translator`]), from every section of non-zero size and
//!   address except `SHT_NOBITS` ones at file offset 0 or with `SHF_TLS`;
//! - an image larger than the furthest byte the headers account for (table
//!   ends, segment ends, ends of sections with file bytes and an address):
//!   Zucchini shrinks the image there and then refuses the element because
//!   the disassembler's size differs from the element's.
//!
//! References, by type tag (= pool tag): 0 `reloc`: the `r_offset` field of
//! every `R_386_RELATIVE` / `R_X86_64_RELATIVE` relocation (width 4 / 8) in
//! `SHT_REL`/`SHT_RELA` sections with the exact entry size, whose target
//! (the translated `r_offset`) leaves room for a pointer in the image; its
//! target is that pointer's offset. 1 `abs32`: those pointers (width 4 /
//! 8), sorted, dropping ones whose value is not a translatable RVA (image
//! base 0) and ones overlapping the previous kept one. 2 `rel32` (width 4):
//! found in executable `SHT_PROGBITS` sections, between abs32 bodies, by
//! Zucchini's opcode heuristics (`E8`/`E9`, `0F 8x`; on x86-64 also `FF
//! 15`/`FF 25` and `89`/`8B`/`8D` with a RIP-relative ModR/M), keeping a
//! candidate whose target RVA exists and lies in the same section (RIP-
//! relative data accesses may point anywhere).
//!
//! Writers refuse (rather than write Zucchini's "invalid" marker) a target
//! with no RVA or a body outside the image.
//!
//! ARM (`EA32`/`EA64`, [`super::elf_arm`]) reuses [`ElfCore`] with
//! [`ELF_AARCH32`] / [`ELF_AARCH64`]: its rel32 types follow type tags 0
//! and 1, are found in [`ElfCore::exec_sections`] between abs32 bodies, and
//! keep targets that [`ElfCore::is_target_offset_in_exec_section`].

use super::ZucchiniError;
use super::address_translator::{AddressTranslator, INVALID_RVA, RVA_BOUND, Unit};
use super::disasm::{Disassembler, RefGroup, Reference};
use super::offset_mapper::INVALID_OFFSET;

/// Type (and pool) tag of relocation references.
pub const TYPE_RELOC: u8 = 0;
/// Type (and pool) tag of abs32 references.
pub const TYPE_ABS32: u8 = 1;
/// Type (and pool) tag of x86/x64 rel32 references.
pub const TYPE_REL32: u8 = 2;

const SHT_PROGBITS: u32 = 1;
const SHT_RELA: u32 = 4;
const SHT_NOBITS: u32 = 8;
const SHT_REL: u32 = 9;
const SHF_EXECINSTR: u64 = 4;
const SHF_TLS: u64 = 0x400;
const SIZE_BOUND: u64 = 0x7fff_0000;

/// Machine-specific constants of one ELF executable type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElfArch {
    /// Zucchini's name of the type.
    pub name: &'static str,
    /// Whether the class is ELF64 (pointer width 8) rather than ELF32 (4).
    pub is_64: bool,
    /// Required `e_machine`.
    pub machine: u16,
    /// The relocation type whose entries locate abs32 pointers.
    pub rel_type: u32,
}

impl ElfArch {
    /// Width of a pointer (`r_offset`, abs32 body).
    pub fn width(&self) -> u32 {
        if self.is_64 { 8 } else { 4 }
    }
}

/// ELF32 x86 (`EM_386`, `R_386_RELATIVE`).
pub const ELF_X86: ElfArch = ElfArch {
    name: "ELF x86",
    is_64: false,
    machine: 3,
    rel_type: 8,
};
/// ELF64 x86-64 (`EM_X86_64`, `R_X86_64_RELATIVE`).
pub const ELF_X64: ElfArch = ElfArch {
    name: "ELF x64",
    is_64: true,
    machine: 62,
    rel_type: 8,
};
/// ELF32 ARM (`EM_ARM`, `R_ARM_RELATIVE`).
pub const ELF_AARCH32: ElfArch = ElfArch {
    name: "ELF ARM",
    is_64: false,
    machine: 40,
    rel_type: 23,
};
/// ELF64 AArch64 (`EM_AARCH64`, `R_AARCH64_RELATIVE`).
pub const ELF_AARCH64: ElfArch = ElfArch {
    name: "ELF ARM64",
    is_64: true,
    machine: 183,
    rel_type: 1027,
};

/// A section header, widened to 64 bits.
#[derive(Clone, Copy, Debug)]
struct Shdr {
    sh_type: u32,
    flags: u64,
    addr: u64,
    offset: u64,
    size: u64,
    entsize: u64,
}

/// File range of a relocation section and its entry size.
#[derive(Clone, Copy, Debug)]
struct RelocDims {
    offset: u32,
    size: u32,
    entsize: u32,
}

/// An executable section: file range and address (all fit in 32 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecSection {
    /// File offset.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
    /// Address (RVA; Zucchini's ELF image base is 0).
    pub addr: u32,
}

fn rd(b: &[u8], at: u64, n: usize) -> Option<u64> {
    let at = usize::try_from(at).ok()?;
    let s = b.get(at..at.checked_add(n)?)?;
    Some(s.iter().rev().fold(0u64, |v, &x| (v << 8) | x as u64))
}

/// Whether `offset..offset + size` fits in `0..bound` (`BufferRegion::FitsIn`).
fn fits_in(offset: u64, size: u64, bound: u64) -> bool {
    offset <= bound && bound - offset >= size
}

/// The parsed ELF layer shared by all ELF disassemblers.
#[derive(Clone, Debug)]
pub struct ElfCore {
    /// The architecture it was parsed as.
    pub arch: ElfArch,
    /// Image size (equal to the element's).
    pub size: u32,
    /// Offset <-> RVA translation built from the sections.
    pub translator: AddressTranslator,
    reloc_sections: Vec<RelocDims>,
    /// Executable sections, by file offset.
    pub exec_sections: Vec<ExecSection>,
    /// Sorted, non-overlapping abs32 locations.
    pub abs32_locations: Vec<u32>,
}

impl ElfCore {
    /// Parses and validates `image` as Zucchini does; the error says what
    /// is refused and where.
    pub fn parse(image: &[u8], arch: ElfArch) -> Result<Self, String> {
        let size = u32::try_from(image.len())
            .map_err(|_| format!("image of {} bytes exceeds 4 GiB", image.len()))?;
        let (sections, table_bound) = parse_headers(image, arch)?;
        let (units, offset_bound) = translation_units(image, &sections, table_bound)?;
        let translator =
            AddressTranslator::new(units).map_err(|e| format!("address translation: {e}"))?;
        if offset_bound != image.len() as u64 {
            return Err(format!(
                "the headers account for {offset_bound} bytes, the element has {}",
                image.len()
            ));
        }
        let mut core = ElfCore {
            arch,
            size,
            translator,
            reloc_sections: Vec::new(),
            exec_sections: Vec::new(),
            abs32_locations: Vec::new(),
        };
        core.extract_interesting_sections(image, &sections);
        core.abs32_locations = core.find_abs32(image);
        Ok(core)
    }

    fn extract_interesting_sections(&mut self, image: &[u8], sections: &[Shdr]) {
        let (rel, rela) = if self.arch.is_64 { (16, 24) } else { (8, 12) };
        for s in sections {
            if judge(image.len() as u64, s) & MAYBE_POINTERS == 0 {
                continue;
            }
            let is_reloc = (s.sh_type == SHT_REL && s.entsize == rel)
                || (s.sh_type == SHT_RELA && s.entsize == rela);
            if is_reloc {
                self.reloc_sections.push(RelocDims {
                    offset: s.offset as u32,
                    size: s.size as u32,
                    entsize: s.entsize as u32,
                });
            } else if s.sh_type == SHT_PROGBITS && s.flags & SHF_EXECINSTR != 0 {
                self.exec_sections.push(ExecSection {
                    offset: s.offset as u32,
                    size: s.size as u32,
                    addr: s.addr as u32,
                });
            }
        }
        self.reloc_sections.sort_by_key(|d| d.offset);
        self.exec_sections.sort_by_key(|s| s.offset);
    }

    fn find_abs32(&self, image: &[u8]) -> Vec<u32> {
        let mut locs: Vec<u32> = self
            .read_relocs(image, 0, self.size)
            .iter()
            .map(|r| r.target)
            .collect();
        locs.sort_unstable();
        locs.retain(|&l| self.abs32_target(image, l).is_some());
        let w = self.arch.width();
        let mut kept: Vec<u32> = Vec::with_capacity(locs.len());
        for l in locs {
            match kept.last() {
                Some(&p) if l - p < w => {}
                _ => kept.push(l),
            }
        }
        kept
    }

    /// The (possibly fake) target offset of the abs32 pointer at `loc`.
    fn abs32_target(&self, image: &[u8], loc: u32) -> Option<u32> {
        let value = rd(image, loc as u64, self.arch.width() as usize)?;
        if value >= RVA_BOUND as u64 {
            return None;
        }
        let t = self.translator.rva_to_offset(value as u32);
        (t != INVALID_OFFSET).then_some(t)
    }

    /// Relocation references whose entry starts in `lo..hi`, exactly as
    /// Zucchini's `RelocReaderElf` visits them.
    pub fn read_relocs(&self, image: &[u8], lo: u32, hi: u32) -> Vec<Reference> {
        let dims = &self.reloc_sections;
        let mut out = Vec::new();
        if dims.is_empty() {
            return out;
        }
        let align = |v: u64, a: u64| v.div_ceil(a) * a;
        let mut sec = dims.partition_point(|d| d.offset <= lo).saturating_sub(1);
        let mut cursor = dims[sec].offset as u64;
        if cursor < lo as u64 {
            cursor += align(lo as u64 - cursor, dims[sec].entsize as u64);
        }
        let mut hi_ = hi as u64;
        let end = dims.partition_point(|d| d.offset <= hi);
        if end > 0 {
            let e = &dims[end - 1];
            if (hi - e.offset) < e.size {
                hi_ = e.offset as u64 + align((hi - e.offset) as u64, e.entsize as u64);
            }
        }
        let mut ent = dims[sec].entsize as u64;
        let mut sec_end = dims[sec].offset as u64 + dims[sec].size as u64;
        while cursor + ent <= hi_ {
            while cursor >= sec_end {
                sec += 1;
                let Some(d) = dims.get(sec) else {
                    return out;
                };
                ent = d.entsize as u64;
                cursor = d.offset as u64;
                if cursor + ent > hi_ {
                    return out;
                }
                sec_end = d.offset as u64 + d.size as u64;
            }
            if let Some(target) = self.reloc_target(image, cursor) {
                out.push(Reference {
                    location: cursor as u32,
                    target,
                });
            }
            cursor += ent;
        }
        out
    }

    /// The target of the relocation entry at `at`, if it is of the
    /// architecture's relative type and its pointer fits in the image.
    fn reloc_target(&self, image: &[u8], at: u64) -> Option<u32> {
        let rva = if self.arch.is_64 {
            let (off, info) = (rd(image, at, 8)?, rd(image, at + 8, 8)?);
            if info as u32 != self.arch.rel_type || off > u32::MAX as u64 {
                return None;
            }
            off as u32
        } else {
            let (off, info) = (rd(image, at, 4)?, rd(image, at + 4, 4)?);
            if info & 0xff != self.arch.rel_type as u64 {
                return None;
            }
            off as u32
        };
        let target = self.translator.rva_to_offset(rva);
        if target == INVALID_OFFSET
            || !fits_in(target as u64, self.arch.width() as u64, self.size as u64)
        {
            return None;
        }
        Some(target)
    }

    /// Abs32 references located in `lo..hi`.
    pub fn read_abs32(&self, image: &[u8], lo: u32, hi: u32) -> Vec<Reference> {
        let a = &self.abs32_locations;
        let from = a.partition_point(|&l| l < lo);
        let to = a.partition_point(|&l| l < hi);
        a[from..to.max(from)]
            .iter()
            .filter_map(|&l| {
                self.abs32_target(image, l).map(|target| Reference {
                    location: l,
                    target,
                })
            })
            .collect()
    }

    /// Writes `r.target`'s RVA as the `r_offset` of the relocation entry at
    /// `r.location`.
    pub fn write_reloc(&self, image: &mut [u8], r: Reference) -> Result<(), ZucchiniError> {
        self.write_pointer(image, TYPE_RELOC, r)
    }

    /// Writes `r.target`'s RVA as the pointer at `r.location`.
    pub fn write_abs32(&self, image: &mut [u8], r: Reference) -> Result<(), ZucchiniError> {
        self.write_pointer(image, TYPE_ABS32, r)
    }

    fn write_pointer(&self, image: &mut [u8], tag: u8, r: Reference) -> Result<(), ZucchiniError> {
        let rva = self.target_rva(tag, r)?;
        let bytes = (rva as u64).to_le_bytes();
        put(image, tag, r.location, &bytes[..self.arch.width() as usize])
    }

    /// The RVA of `r.target`, or the error naming the reference.
    pub fn target_rva(&self, tag: u8, r: Reference) -> Result<u32, ZucchiniError> {
        let rva = self.translator.offset_to_rva(r.target);
        if rva == INVALID_RVA {
            return Err(bad_ref(
                tag,
                r.location,
                format!("target offset {:#x} has no address", r.target),
            ));
        }
        Ok(rva)
    }

    /// Zucchini's abs32 reader refuses (a `CHECK`) a range bound strictly
    /// inside an abs32 body; other types accept every range.
    pub fn check_range(&self, type_tag: u8, lo: u32, hi: u32) -> Result<(), String> {
        if type_tag != TYPE_ABS32 {
            return Ok(());
        }
        let a = &self.abs32_locations;
        for bound in [lo, hi] {
            let i = a.partition_point(|&l| l < bound);
            if i > 0 && bound - a[i - 1] < self.arch.width() {
                return Err(format!(
                    "range bound {bound:#x} cuts the {}-byte abs32 pointer at {:#x}",
                    self.arch.width(),
                    a[i - 1]
                ));
            }
        }
        Ok(())
    }

    /// The gaps between abs32 bodies inside `lo..hi`.
    pub fn abs32_gaps(&self, lo: u32, hi: u32) -> Vec<(u32, u32)> {
        abs32_gaps(lo, hi, &self.abs32_locations, self.arch.width())
    }

    /// Whether `offset` lies in an executable section.
    pub fn is_target_offset_in_exec_section(&self, offset: u32) -> bool {
        is_offset_in_sections(&self.exec_sections, offset)
    }
}

/// Zucchini's `IsTargetOffsetInElfSectionList`: whether `offset` lies in
/// one of `sorted` (by file offset, not overlapping).
pub fn is_offset_in_sections(sorted: &[ExecSection], offset: u32) -> bool {
    let i = sorted.partition_point(|s| s.offset <= offset);
    i > 0 && offset - sorted[i - 1].offset < sorted[i - 1].size
}

/// Writes `bytes` at `location`, refusing a body past the image.
pub fn put(image: &mut [u8], tag: u8, location: u32, bytes: &[u8]) -> Result<(), ZucchiniError> {
    let at = location as usize;
    match image.get_mut(at..at.saturating_add(bytes.len())) {
        Some(dst) if dst.len() == bytes.len() => {
            dst.copy_from_slice(bytes);
            Ok(())
        }
        _ => Err(bad_ref(
            tag,
            location,
            format!(
                "a {}-byte body leaves the {}-byte image",
                bytes.len(),
                image.len()
            ),
        )),
    }
}

fn bad_ref(type_tag: u8, location: u32, reason: String) -> ZucchiniError {
    ZucchiniError::BadReference {
        type_tag,
        location,
        reason,
    }
}

/// Zucchini's `Abs32GapFinder`: the non-empty ranges of `lo..hi` not covered
/// by a `width`-byte body at one of the sorted `locations` (a body starting
/// before `lo` may cover its start).
pub fn abs32_gaps(lo: u32, hi: u32, locations: &[u32], width: u32) -> Vec<(u32, u32)> {
    let mut i = locations.partition_point(|&l| l < lo);
    let mut cur = lo as u64;
    if i > 0 {
        cur = cur.max(locations[i - 1] as u64 + width as u64);
    }
    let mut out = Vec::new();
    while i < locations.len() && locations[i] < hi {
        let l = locations[i] as u64;
        if cur < l {
            out.push((cur as u32, l as u32));
        }
        cur = l + width as u64;
        i += 1;
    }
    if cur < hi as u64 {
        out.push((cur as u32, hi));
    }
    out
}

// Section judgement bits (Zucchini's `JudgeSection`).
const SAFE: u8 = 1;
const TRANSLATE: u8 = 2;
const OFFSET_BOUND_BIT: u8 = 4;
const MAYBE_POINTERS: u8 = 8;

fn judge(image_size: u64, s: &Shdr) -> u8 {
    if !fits_in(s.addr, s.size, SIZE_BOUND) {
        return 0;
    }
    let bound = if s.sh_type == SHT_NOBITS {
        SIZE_BOUND
    } else {
        image_size
    };
    if !fits_in(s.offset, s.size, bound) {
        return 0;
    }
    if s.size == 0 || s.addr == 0 {
        return SAFE;
    }
    if s.sh_type == SHT_NOBITS {
        if s.offset == 0 || s.flags & SHF_TLS != 0 {
            return SAFE;
        }
        return SAFE | TRANSLATE;
    }
    SAFE | TRANSLATE | OFFSET_BOUND_BIT | MAYBE_POINTERS
}

/// Zucchini's `QuickDetect`: the ELF identification and header fields that
/// must match `arch` (see the module docs).
pub fn quick_detect(image: &[u8], arch: ElfArch) -> Result<(), String> {
    let len = image.len();
    let ehdr_size = if arch.is_64 { 64 } else { 52 };
    if !image.starts_with(b"\x7fELF") {
        return Err("no ELF magic at offset 0".into());
    }
    if image.len() < ehdr_size {
        return Err(format!(
            "the {ehdr_size}-byte ELF header is truncated at {len}"
        ));
    }
    let h = |at: u64, n: usize| rd(image, at, n).unwrap_or(0);
    let want_class = if arch.is_64 { 2 } else { 1 };
    let shentsize_at = if arch.is_64 { 58 } else { 46 };
    let checks: [(bool, &str, u64, u64); 6] = [
        (image[4] != want_class, "EI_CLASS", 4, image[4] as u64),
        (
            image[5] != 1,
            "EI_DATA (little-endian only)",
            5,
            image[5] as u64,
        ),
        (
            !matches!(h(16, 2), 2 | 3),
            "e_type (ET_EXEC/ET_DYN only)",
            16,
            h(16, 2),
        ),
        (
            h(20, 4) != 1 || image[6] != 1,
            "e_version / EI_VERSION",
            20,
            h(20, 4),
        ),
        (h(18, 2) != arch.machine as u64, "e_machine", 18, h(18, 2)),
        (
            h(shentsize_at, 2) != if arch.is_64 { 64 } else { 40 },
            "e_shentsize",
            shentsize_at,
            h(shentsize_at, 2),
        ),
    ];
    match checks.iter().find(|c| c.0) {
        Some((_, field, at, v)) => Err(format!(
            "{field} = {v} at offset {at} does not fit {}",
            arch.name
        )),
        None => Ok(()),
    }
}

/// Header, table, name-table and segment checks; returns the section
/// headers and the furthest table or segment end.
fn parse_headers(image: &[u8], arch: ElfArch) -> Result<(Vec<Shdr>, u64), String> {
    quick_detect(image, arch)?;
    let len = image.len() as u64;
    let w = if arch.is_64 { 8 } else { 4 };
    let h = |at: u64, n: usize| rd(image, at, n).unwrap_or(0);
    let (phoff, shoff) = (h(24 + w, w as usize), h(24 + 2 * w, w as usize));
    let base = if arch.is_64 { 56 } else { 44 };
    let (phnum, shnum, shstrndx) = (h(base, 2), h(base + 4, 2), h(base + 6, 2));
    let (shsize, phsize) = if arch.is_64 { (64, 56) } else { (40, 32) };
    if shnum == 0 || !fits_in(shoff, shnum * shsize, len) {
        return Err(format!(
            "{shnum} section headers at offset {shoff} do not fit in {len} bytes"
        ));
    }
    if phnum > 0 && !fits_in(phoff, phnum * phsize, len) {
        return Err(format!(
            "{phnum} program headers at offset {phoff} do not fit in {len} bytes"
        ));
    }
    let sections: Vec<Shdr> = (0..shnum)
        .map(|i| shdr(image, shoff + i * shsize, arch.is_64))
        .collect();
    let names = sections
        .get(shstrndx as usize)
        .ok_or_else(|| format!("e_shstrndx = {shstrndx} is not below e_shnum = {shnum}"))?;
    if names.size > 0 {
        let end = names.offset.checked_add(names.size).filter(|&e| e <= len);
        if end.is_none_or(|e| image[e as usize - 1] != 0) {
            return Err(format!(
                "section name table at offset {} ({} bytes) is outside the image or not NUL-terminated",
                names.offset, names.size
            ));
        }
    }
    let mut bound = (shoff + shnum * shsize).max(if phnum > 0 {
        phoff + phnum * phsize
    } else {
        phoff.min(len)
    });
    for i in 0..phnum {
        let at = phoff + i * phsize;
        let (off, filesz) = if arch.is_64 {
            (h(at + 8, 8), h(at + 32, 8))
        } else {
            (h(at + 4, 4), h(at + 16, 4))
        };
        let end = off.checked_add(filesz).filter(|&e| e <= u32::MAX as u64);
        if end.is_none() || !fits_in(off, filesz, len) {
            return Err(format!(
                "segment {i}: file range {off}+{filesz} leaves the {len}-byte image"
            ));
        }
        bound = bound.max(off + filesz);
    }
    Ok((sections, bound))
}

fn shdr(image: &[u8], at: u64, is_64: bool) -> Shdr {
    let h = |o: u64, n: usize| rd(image, at + o, n).unwrap_or(0);
    if is_64 {
        Shdr {
            sh_type: h(4, 4) as u32,
            flags: h(8, 8),
            addr: h(16, 8),
            offset: h(24, 8),
            size: h(32, 8),
            entsize: h(56, 8),
        }
    } else {
        Shdr {
            sh_type: h(4, 4) as u32,
            flags: h(8, 4),
            addr: h(12, 4),
            offset: h(16, 4),
            size: h(20, 4),
            entsize: h(36, 4),
        }
    }
}

/// Judges every section; returns the translation units and the offset
/// bound grown from `bound` by the sections with file bytes.
fn translation_units(
    image: &[u8],
    sections: &[Shdr],
    mut bound: u64,
) -> Result<(Vec<Unit>, u64), String> {
    let mut units = Vec::new();
    for (i, s) in sections.iter().enumerate() {
        let j = judge(image.len() as u64, s);
        if j & SAFE == 0 {
            return Err(format!(
                "section {i}: address {:#x} / offset {:#x} + size {:#x} out of bounds",
                s.addr, s.offset, s.size
            ));
        }
        if j & TRANSLATE != 0 {
            units.push(Unit {
                offset_begin: s.offset as u32,
                offset_size: s.size as u32,
                rva_begin: s.addr as u32,
                rva_size: s.size as u32,
            });
        }
        if j & OFFSET_BOUND_BIT != 0 {
            bound = bound.max(s.offset + s.size);
        }
    }
    Ok((units, bound))
}

/// A rel32 candidate from the Intel finder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rel32Candidate {
    /// Offset of the 4-byte displacement.
    pub location: u32,
    /// `rva(location) + 4 + displacement` (wrapping).
    pub target_rva: u32,
    /// Whether the target may lie outside the section (RIP-relative data).
    pub can_point_outside_section: bool,
}

/// Zucchini's `Rel32FinderX86` / `Rel32FinderX64` over `image[lo..hi]`: for
/// each candidate, `accept` decides; an accepted candidate resumes the scan
/// after its instruction, a rejected one at the next byte.
pub fn scan_rel32_intel(
    image: &[u8],
    lo: u32,
    hi: u32,
    x64: bool,
    offset_to_rva: impl Fn(u32) -> u32,
    mut accept: impl FnMut(Rel32Candidate) -> bool,
) {
    let hi = (hi as usize).min(image.len());
    let mut cur = lo as usize;
    while cur < hi {
        let b0 = image[cur];
        let b1 = image.get(cur + 1).copied().unwrap_or(0);
        let found = if cur + 5 <= hi && (b0 == 0xE8 || b0 == 0xE9) {
            Some((1, false))
        } else if cur + 6 <= hi && b0 == 0x0F && b1 & 0xF0 == 0x80 {
            Some((2, false))
        } else if x64
            && cur + 6 <= hi
            && ((b0 == 0xFF && (b1 == 0x15 || b1 == 0x25))
                || (matches!(b0, 0x89 | 0x8B | 0x8D) && b1 & 0xC7 == 0x05))
        {
            Some((2, true))
        } else {
            None
        };
        let Some((op, outside)) = found else {
            cur += 1;
            continue;
        };
        let location = (cur + op) as u32;
        let disp = u32::from_le_bytes(image[cur + op..cur + op + 4].try_into().expect("4"));
        let c = Rel32Candidate {
            location,
            target_rva: offset_to_rva(location).wrapping_add(4).wrapping_add(disp),
            can_point_outside_section: outside,
        };
        cur += if accept(c) { op + 4 } else { 1 };
    }
}

/// Zucchini's `DisassemblerElfX86` / `DisassemblerElfX64`.
#[derive(Clone, Debug)]
pub struct DisassemblerElfIntel {
    core: ElfCore,
    rel32_locations: Vec<u32>,
    groups: [RefGroup; 3],
}

impl DisassemblerElfIntel {
    /// Parses an `Ex86` element (ELF32 x86).
    pub fn new_x86(image: &[u8]) -> Result<Self, ZucchiniError> {
        Self::new(image, ELF_X86)
    }

    /// Parses an `Ex64` element (ELF64 x86-64).
    pub fn new_x64(image: &[u8]) -> Result<Self, ZucchiniError> {
        Self::new(image, ELF_X64)
    }

    fn new(image: &[u8], arch: ElfArch) -> Result<Self, ZucchiniError> {
        let core = ElfCore::parse(image, arch).map_err(|reason| ZucchiniError::BadElement {
            element: 0,
            exe_type: if arch.is_64 { "Ex64" } else { "Ex86" }.into(),
            reason,
        })?;
        let w = arch.width();
        let groups = [
            RefGroup {
                width: w,
                type_tag: TYPE_RELOC,
                pool_tag: TYPE_RELOC,
            },
            RefGroup {
                width: w,
                type_tag: TYPE_ABS32,
                pool_tag: TYPE_ABS32,
            },
            RefGroup {
                width: 4,
                type_tag: TYPE_REL32,
                pool_tag: TYPE_REL32,
            },
        ];
        let rel32_locations = find_rel32(&core, image);
        Ok(DisassemblerElfIntel {
            core,
            rel32_locations,
            groups,
        })
    }

    /// The ELF layer.
    pub fn core(&self) -> &ElfCore {
        &self.core
    }

    /// Sorted rel32 locations.
    pub fn rel32_locations(&self) -> &[u32] {
        &self.rel32_locations
    }

    fn read_rel32(&self, image: &[u8], lo: u32, hi: u32) -> Vec<Reference> {
        let t = &self.core.translator;
        let from = self.rel32_locations.partition_point(|&l| l < lo);
        self.rel32_locations[from..]
            .iter()
            .take_while(|&&l| l < hi)
            .filter_map(|&l| {
                let disp = rd(image, l as u64, 4)? as u32;
                let rva = t.offset_to_rva(l).wrapping_add(4).wrapping_add(disp);
                Some(Reference {
                    location: l,
                    target: t.rva_to_offset(rva),
                })
            })
            .collect()
    }

    fn write_rel32(&self, image: &mut [u8], r: Reference) -> Result<(), ZucchiniError> {
        let target = self.core.target_rva(TYPE_REL32, r)?;
        let loc = self.core.translator.offset_to_rva(r.location);
        if loc == INVALID_RVA {
            return Err(bad_ref(
                TYPE_REL32,
                r.location,
                "the location has no address".into(),
            ));
        }
        let code = target.wrapping_sub(loc.wrapping_add(4));
        put(image, TYPE_REL32, r.location, &code.to_le_bytes())
    }
}

/// Rel32 locations of every executable section, sorted (`ParseExecSection`
/// of `DisassemblerElfIntel`, then `PostProcessRel32`).
fn find_rel32(core: &ElfCore, image: &[u8]) -> Vec<u32> {
    let t = &core.translator;
    let mut out = Vec::new();
    for s in &core.exec_sections {
        let (start, end) = (s.addr, s.addr + s.size);
        for (lo, hi) in core.abs32_gaps(s.offset, s.offset + s.size) {
            scan_rel32_intel(
                image,
                lo,
                hi,
                core.arch.is_64,
                |o| t.offset_to_rva(o),
                |c| {
                    let ok = t.rva_is_valid(c.target_rva)
                        && (c.can_point_outside_section
                            || (start <= c.target_rva && c.target_rva < end));
                    if ok {
                        out.push(c.location);
                    }
                    ok
                },
            );
        }
    }
    out.sort_unstable();
    out
}

impl Disassembler for DisassemblerElfIntel {
    fn groups(&self) -> &[RefGroup] {
        &self.groups
    }

    fn read(&self, image: &[u8], type_tag: u8, lo: u32, hi: u32) -> Vec<Reference> {
        match type_tag {
            TYPE_RELOC => self.core.read_relocs(image, lo, hi),
            TYPE_ABS32 => self.core.read_abs32(image, lo, hi),
            TYPE_REL32 => self.read_rel32(image, lo, hi),
            _ => Vec::new(),
        }
    }

    fn check_range(&self, type_tag: u8, lo: u32, hi: u32) -> Result<(), String> {
        self.core.check_range(type_tag, lo, hi)
    }

    fn write(&self, image: &mut [u8], type_tag: u8, r: Reference) -> Result<(), ZucchiniError> {
        match type_tag {
            TYPE_RELOC => self.core.write_reloc(image, r),
            TYPE_ABS32 => self.core.write_abs32(image, r),
            TYPE_REL32 => self.write_rel32(image, r),
            _ => Err(bad_ref(
                type_tag,
                r.location,
                "ELF x86/x64 has reference types 0..=2".into(),
            )),
        }
    }
}
