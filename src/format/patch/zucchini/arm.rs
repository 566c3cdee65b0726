//! What Zucchini's ELF ARM disassemblers (`EA32`: AArch32, `EA64`: AArch64)
//! need beyond ELF parsing: the rel32 branch encodings, the scan that finds
//! them in executable sections, the ARM-vs-Thumb2 section heuristic and the
//! reference type table.
//!
//! Terms (as in Zucchini's `arm_utils.h`): `code` is the instruction as the
//! manual writes it (a Thumb2 32-bit instruction is stored as two
//! little-endian halfwords, the first one being the high half of `code`);
//! `disp` is the displacement the instruction stores; PC is `instr_rva + 8`
//! in ARM mode, `instr_rva + 4` in Thumb2 mode and `instr_rva` on AArch64;
//! `target_rva = PC + disp`, rounded down to the target alignment: 4 for a
//! Thumb2 `BLX` to ARM code (its `H` bit must be 0; a PC that is 2 mod 4
//! is rounded down), 2 for an ARM `BLX` to Thumb2 code (its `H` bit
//! supplies bit 1 of `disp`), else the instruction alignment.
//!
//! # Wiring into the ELF disassembler
//!
//! Type table ([`AARCH32_GROUPS`], [`AARCH64_GROUPS`]): type 0 is the
//! relocation table entries (`R_ARM_RELATIVE` / `R_AARCH64_RELATIVE`, width
//! `sizeof(r_offset)` = 4 / 8, pool 0), type 1 the abs32 pointers (width 4 /
//! 8, pool 1), then one type per [`ArmAddr`] in enum order, all in pool 2:
//! `EA32` A24 (2), T8 (3), T11 (4), T20 (5), T24 (6); `EA64` Immd14 (2),
//! Immd19 (3), Immd26 (4). [`ArmArch::groups`] returns the table,
//! [`ArmAddr::type_tag`] and [`ArmAddr::from_type_tag`] convert, and
//! [`ArmArch::abs32_width`] / [`ArmArch::relative_reloc`] give the abs32
//! width and the relocation type the abs32 locations come from.
//!
//! Parsing (Zucchini's `DisassemblerElfArm::ParseExecSection`), after the
//! abs32 locations are known (sorted, untranslatable and overlapping ones
//! removed): for each executable section (`SHT_PROGBITS` with
//! `SHF_EXECINSTR`, `sh_size > 0`, `sh_addr != 0`), in increasing
//! `sh_offset` order, call [`find_rel32_aarch32`] (with
//! `thumb2 = `[`is_exec_section_thumb2`]`(sh_addr, section bytes)`) or
//! [`find_rel32_aarch64`], passing the abs32 locations and the abs32 width
//! (4 / 8). The `target_offset` closure must return the target's file
//! offset exactly when Zucchini keeps the candidate: the RVA translates to
//! an offset (`RvaToOffsetCache::Convert` is not `kInvalidOffset`) and that
//! offset lies in an executable section
//! ([`super::elf::is_offset_in_sections`] over the
//! executable sections sorted by offset). Split the results by
//! [`Rel32::addr`] and sort each list by location (`PostProcessRel32`).
//!
//! Reading a type (`Rel32ReaderArm`): for each stored location in
//! `lo..hi`, [`read_target`] with the location's RVA; keep the reference
//! only when the target RVA translates to an offset. Writing
//! (`Rel32WriterArm`): translate the location and the target offset to RVAs
//! and call [`write_target`]. Zucchini's writer only logs a target it
//! cannot encode and leaves the instruction unchanged; [`write_target`]
//! reports it as an error and changes nothing.
//!
//! `image` is always the element as the ELF disassembler sees it (Zucchini
//! shrinks it to the ELF's extent, `offset_bound`); locations and target
//! offsets are relative to it.
//!
//! Invariants: nothing here panics on any input — reads past the image,
//! odd locations or misaligned RVAs give `None` / an error; every
//! displacement computation wraps in 32 bits as Zucchini's `rva_t` does;
//! a scan never reports a location whose instruction overlaps an abs32
//! location or leaves its section, and reports locations in increasing
//! order.

use super::ZucchiniError;
use super::disasm::RefGroup;

/// Relocation type (low bits of `r_info`) whose targets are `EA32`'s abs32
/// locations.
pub const R_ARM_RELATIVE: u32 = 23;
/// Relocation type (low 32 bits of `r_info`) whose targets are `EA64`'s
/// abs32 locations.
pub const R_AARCH64_RELATIVE: u32 = 1027;

/// Type tag of the relocation references (both architectures).
pub const TYPE_RELOC: u8 = 0;
/// Type tag of the abs32 references (both architectures).
pub const TYPE_ABS32: u8 = 1;
/// Pool of the relocation references.
pub const POOL_RELOC: u8 = 0;
/// Pool of the abs32 references.
pub const POOL_ABS32: u8 = 1;
/// Pool shared by every rel32 type.
pub const POOL_REL32: u8 = 2;

/// Share of words with condition `AL` (top nibble `0xE`) below which an
/// AArch32 section is taken for Thumb2 (`kAArch32BitCondAlwaysDensityThreshold`).
pub const THUMB2_COND_ALWAYS_THRESHOLD: f64 = 0.4;

const fn group(width: u32, type_tag: u8, pool_tag: u8) -> RefGroup {
    RefGroup {
        width,
        type_tag,
        pool_tag,
    }
}

/// `DisassemblerElfAArch32::MakeReferenceGroups`, by type tag.
pub const AARCH32_GROUPS: [RefGroup; 7] = [
    group(4, TYPE_RELOC, POOL_RELOC),
    group(4, TYPE_ABS32, POOL_ABS32),
    group(4, 2, POOL_REL32), // A24
    group(2, 3, POOL_REL32), // T8
    group(2, 4, POOL_REL32), // T11
    group(4, 5, POOL_REL32), // T20
    group(4, 6, POOL_REL32), // T24
];

/// `DisassemblerElfAArch64::MakeReferenceGroups`, by type tag.
pub const AARCH64_GROUPS: [RefGroup; 5] = [
    group(8, TYPE_RELOC, POOL_RELOC),
    group(8, TYPE_ABS32, POOL_ABS32),
    group(4, 2, POOL_REL32), // Immd14
    group(4, 3, POOL_REL32), // Immd19
    group(4, 4, POOL_REL32), // Immd26
];

/// A rel32 address type: one way a branch stores its displacement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ArmAddr {
    /// ARM `B`/`BL` (encoding A1, any condition but `0xF`) and `BLX`
    /// (encoding A2): signed 24-bit word displacement, `BLX` adds `H`.
    A24,
    /// Thumb2 16-bit conditional `B` (encoding T1, condition not `0xF`):
    /// signed 8-bit halfwords.
    T8,
    /// Thumb2 16-bit `B` (encoding T2): signed 11-bit halfwords.
    T11,
    /// Thumb2 32-bit conditional `B` (encoding T3, condition not `0xF`):
    /// signed 20-bit halfwords.
    T20,
    /// Thumb2 32-bit `B` (T4), `BL` (T1), `BLX` (T2): signed 24-bit halfwords.
    T24,
    /// AArch64 `TBZ`/`TBNZ`: signed 14-bit words.
    Immd14,
    /// AArch64 `B.cond`, `CBZ`/`CBNZ`: signed 19-bit words.
    Immd19,
    /// AArch64 `B`/`BL`: signed 26-bit words.
    Immd26,
}

/// Kinds of ARM element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArmArch {
    /// `EA32`: ELF `EM_ARM`.
    AArch32,
    /// `EA64`: ELF `EM_AARCH64`.
    AArch64,
}

impl ArmArch {
    /// The reference type table, by type tag.
    pub fn groups(self) -> &'static [RefGroup] {
        match self {
            ArmArch::AArch32 => &AARCH32_GROUPS,
            ArmArch::AArch64 => &AARCH64_GROUPS,
        }
    }

    /// Its rel32 types in type-tag order (tags 2 and up).
    pub fn rel32_types(self) -> &'static [ArmAddr] {
        match self {
            ArmArch::AArch32 => &ArmAddr::AARCH32,
            ArmArch::AArch64 => &ArmAddr::AARCH64,
        }
    }

    /// Bytes of an abs32 pointer (and of a relocation's `r_offset`):
    /// `kVAWidth`, 4 or 8.
    pub fn abs32_width(self) -> u32 {
        match self {
            ArmArch::AArch32 => 4,
            ArmArch::AArch64 => 8,
        }
    }

    /// The relocation type whose targets are the abs32 locations.
    pub fn relative_reloc(self) -> u32 {
        match self {
            ArmArch::AArch32 => R_ARM_RELATIVE,
            ArmArch::AArch64 => R_AARCH64_RELATIVE,
        }
    }
}

impl ArmAddr {
    /// `EA32` rel32 types in type-tag order.
    pub const AARCH32: [ArmAddr; 5] = [
        ArmAddr::A24,
        ArmAddr::T8,
        ArmAddr::T11,
        ArmAddr::T20,
        ArmAddr::T24,
    ];
    /// `EA64` rel32 types in type-tag order.
    pub const AARCH64: [ArmAddr; 3] = [ArmAddr::Immd14, ArmAddr::Immd19, ArmAddr::Immd26];

    /// Bytes the instruction occupies (the reference width).
    pub fn width(self) -> u32 {
        match self {
            ArmAddr::T8 | ArmAddr::T11 => 2,
            _ => 4,
        }
    }

    /// The architecture whose type table holds this type.
    pub fn arch(self) -> ArmArch {
        match self {
            ArmAddr::Immd14 | ArmAddr::Immd19 | ArmAddr::Immd26 => ArmArch::AArch64,
            _ => ArmArch::AArch32,
        }
    }

    /// Type tag in its architecture's table (2 and up).
    pub fn type_tag(self) -> u8 {
        let list = self.arch().rel32_types();
        2 + list.iter().position(|&a| a == self).unwrap_or(0) as u8
    }

    /// The rel32 type with tag `type_tag` in `arch`'s table (`None` for the
    /// reloc and abs32 tags and past the table).
    pub fn from_type_tag(arch: ArmArch, type_tag: u8) -> Option<ArmAddr> {
        let list = arch.rel32_types();
        list.get(usize::from(type_tag).checked_sub(2)?).copied()
    }

    /// Zucchini's name of the type, for messages.
    pub fn name(self) -> &'static str {
        match self {
            ArmAddr::A24 => "A24",
            ArmAddr::T8 => "T8",
            ArmAddr::T11 => "T11",
            ArmAddr::T20 => "T20",
            ArmAddr::T24 => "T24",
            ArmAddr::Immd14 => "Immd14",
            ArmAddr::Immd19 => "Immd19",
            ArmAddr::Immd26 => "Immd26",
        }
    }

    /// Alignment the instruction's own RVA must have.
    fn instr_align(self) -> u32 {
        match self {
            ArmAddr::T8 | ArmAddr::T11 | ArmAddr::T20 | ArmAddr::T24 => 2,
            _ => 4,
        }
    }

    /// PC minus the instruction's RVA.
    fn pc_bias(self) -> u32 {
        match self {
            ArmAddr::A24 => 8,
            ArmAddr::T8 | ArmAddr::T11 | ArmAddr::T20 | ArmAddr::T24 => 4,
            _ => 0,
        }
    }
}

/// Size of the Thumb2 instruction whose first halfword is `code16`: 4 for
/// the 32-bit encodings (top five bits `0b11101`, `0b11110`, `0b11111`),
/// else 2.
pub fn thumb2_instr_size(code16: u16) -> u32 {
    if code16 & 0xF000 == 0xF000 || code16 & 0xF800 == 0xE800 {
        4
    } else {
        2
    }
}

fn u16_at(image: &[u8], at: usize) -> Option<u16> {
    let b = image.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(image: &[u8], at: usize) -> Option<u32> {
    let b = image.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The instruction `code` of type `addr` at `location` (`None` if it does
/// not fit in `image`). Thumb2 32-bit codes are two halfwords, high first.
pub fn fetch_code(addr: ArmAddr, image: &[u8], location: u32) -> Option<u32> {
    let at = location as usize;
    match addr {
        ArmAddr::T8 | ArmAddr::T11 => u16_at(image, at).map(u32::from),
        ArmAddr::T20 | ArmAddr::T24 => {
            let hi = u16_at(image, at)?;
            let lo = u16_at(image, at.checked_add(2)?)?;
            Some(u32::from(hi) << 16 | u32::from(lo))
        }
        _ => u32_at(image, at),
    }
}

/// Stores `code` as [`fetch_code`] reads it; `false` (nothing written) if
/// it does not fit in `image`.
pub fn store_code(addr: ArmAddr, image: &mut [u8], location: u32, code: u32) -> bool {
    let at = location as usize;
    let Some(end) = at.checked_add(addr.width() as usize) else {
        return false;
    };
    let Some(dst) = image.get_mut(at..end) else {
        return false;
    };
    match addr {
        ArmAddr::T8 | ArmAddr::T11 => dst.copy_from_slice(&(code as u16).to_le_bytes()),
        ArmAddr::T20 | ArmAddr::T24 => {
            dst[..2].copy_from_slice(&((code >> 16) as u16).to_le_bytes());
            dst[2..].copy_from_slice(&(code as u16).to_le_bytes());
        }
        _ => dst.copy_from_slice(&code.to_le_bytes()),
    }
    true
}

/// Bits `lo..=hi` of `v`.
fn bits(v: u32, lo: u32, hi: u32) -> u32 {
    (v >> lo) & (u32::MAX >> (31 - (hi - lo)))
}

/// Bits `lo..=hi` of `v`, sign-extended from bit `hi`.
fn signed_bits(v: u32, lo: u32, hi: u32) -> i32 {
    ((v << (31 - hi)) as i32) >> (31 - hi + lo)
}

/// `v` sign-extended from bit `b`.
fn sign_extend(v: u32, b: u32) -> i32 {
    ((v << (31 - b)) as i32) >> (31 - b)
}

/// Whether `v` fits in a signed `n`-bit integer.
fn signed_fit(v: i32, n: u32) -> bool {
    let half = 1i64 << (n - 1);
    (-half..half).contains(&i64::from(v))
}

/// Whether `code` is an instruction of type `addr`; if so its displacement
/// and the alignment its target must have (2 or 4). Zucchini's `Decode*`.
pub fn decode(addr: ArmAddr, code: u32) -> Option<(i32, u32)> {
    match addr {
        ArmAddr::A24 => decode_a24(code),
        ArmAddr::T8 => {
            let c = code as u16;
            (c & 0xF000 == 0xD000 && c & 0x0F00 != 0x0F00)
                .then(|| (signed_bits(code, 0, 7) << 1, 2))
        }
        ArmAddr::T11 => {
            ((code as u16) & 0xF800 == 0xE000).then(|| (signed_bits(code, 0, 10) << 1, 2))
        }
        ArmAddr::T20 => decode_t20(code),
        ArmAddr::T24 => decode_t24(code),
        ArmAddr::Immd14 => matches!(code & 0x7F00_0000, 0x3600_0000 | 0x3700_0000)
            .then(|| (signed_bits(code, 5, 18) << 2, 4)),
        ArmAddr::Immd19 => is_immd19(code).then(|| (signed_bits(code, 5, 23) << 2, 4)),
        ArmAddr::Immd26 => matches!(code & 0xFC00_0000, 0x1400_0000 | 0x9400_0000)
            .then(|| (signed_bits(code, 0, 25) << 2, 4)),
    }
}

fn decode_a24(code: u32) -> Option<(i32, u32)> {
    if !matches!(bits(code, 24, 27), 0xA | 0xB) {
        return None;
    }
    let disp = signed_bits(code, 0, 23) << 2;
    if bits(code, 28, 31) == 0xF {
        // BLX encoding A2: H supplies bit 1, the target is Thumb2 code.
        return Some((disp | (bits(code, 24, 24) << 1) as i32, 2));
    }
    Some((disp, 4))
}

fn is_t20(code: u32) -> bool {
    code & 0xF800_D000 == 0xF000_8000 && code & 0x03C0_0000 != 0x03C0_0000
}

fn decode_t20(code: u32) -> Option<(i32, u32)> {
    if !is_t20(code) {
        return None;
    }
    // Note the swap: J1 (bit 13) becomes disp bit 18, J2 (bit 11) bit 19.
    let t = bits(code, 16, 21) << 12
        | bits(code, 0, 10) << 1
        | bits(code, 26, 26) << 20
        | bits(code, 11, 11) << 19
        | bits(code, 13, 13) << 18;
    Some((sign_extend(t, 20), 2))
}

/// The T24 forms: `B` T4, `BL` T1, `BLX` T2 (`0xF000C000`).
fn t24_form(code: u32) -> Option<u32> {
    let form = code & 0xF800_D000;
    matches!(form, 0xF000_9000 | 0xF000_D000 | 0xF000_C000).then_some(form)
}

fn decode_t24(code: u32) -> Option<(i32, u32)> {
    let form = t24_form(code)?;
    let s = bits(code, 26, 26);
    let i1 = bits(code, 13, 13) ^ s ^ 1;
    let i2 = bits(code, 11, 11) ^ s ^ 1;
    let t = bits(code, 16, 25) << 12 | bits(code, 0, 10) << 1 | s << 24 | i1 << 23 | i2 << 22;
    let disp = sign_extend(t, 24);
    if form == 0xF000_C000 {
        // BLX to ARM code: H must be 0, the target is rounded down to 4.
        return (code & 1 == 0).then_some((disp, 4));
    }
    Some((disp, 2))
}

fn is_immd19(code: u32) -> bool {
    code & 0xFF00_0010 == 0x5400_0000 || matches!(code & 0x7F00_0000, 0x3400_0000 | 0x3500_0000)
}

/// `code` with its displacement replaced by `disp`, if `code` is of type
/// `addr` and `disp` has the alignment and range the encoding allows.
/// Zucchini's `Encode*`.
pub fn encode(addr: ArmAddr, disp: i32, code: u32) -> Option<u32> {
    let d = disp as u32;
    match addr {
        ArmAddr::A24 => encode_a24(disp, code),
        ArmAddr::T8 => {
            let c = code as u16;
            let ok = c & 0xF000 == 0xD000 && c & 0x0F00 != 0x0F00;
            (ok && disp % 2 == 0 && signed_fit(disp, 9))
                .then_some((code & 0xFF00) | ((d >> 1) & 0xFF))
        }
        ArmAddr::T11 => {
            let ok = (code as u16) & 0xF800 == 0xE000;
            (ok && disp % 2 == 0 && signed_fit(disp, 12))
                .then_some((code & 0xF800) | ((d >> 1) & 0x07FF))
        }
        ArmAddr::T20 => encode_t20(disp, code),
        ArmAddr::T24 => encode_t24(disp, code),
        ArmAddr::Immd14 => {
            let ok = matches!(code & 0x7F00_0000, 0x3600_0000 | 0x3700_0000);
            (ok && disp % 4 == 0 && signed_fit(disp, 16))
                .then(|| (code & 0xFFF8_001F) | bits(d, 2, 15) << 5)
        }
        ArmAddr::Immd19 => (is_immd19(code) && disp % 4 == 0 && signed_fit(disp, 21))
            .then(|| (code & 0xFF00_001F) | bits(d, 2, 20) << 5),
        ArmAddr::Immd26 => {
            let ok = matches!(code & 0xFC00_0000, 0x1400_0000 | 0x9400_0000);
            (ok && disp % 4 == 0 && signed_fit(disp, 28))
                .then(|| (code & 0xFC00_0000) | bits(d, 2, 27))
        }
    }
}

fn encode_a24(disp: i32, code: u32) -> Option<u32> {
    if !matches!(bits(code, 24, 27), 0xA | 0xB) || !signed_fit(disp, 26) {
        return None;
    }
    let mut t = code;
    if bits(code, 28, 31) == 0xF {
        if disp % 2 != 0 {
            return None;
        }
        t = (t & 0xFEFF_FFFF) | bits(disp as u32, 1, 1) << 24;
    } else if disp % 4 != 0 {
        return None;
    }
    Some((t & 0xFF00_0000) | ((disp >> 2) as u32 & 0x00FF_FFFF))
}

fn encode_t20(disp: i32, code: u32) -> Option<u32> {
    if !is_t20(code) || disp % 2 != 0 || !signed_fit(disp, 21) {
        return None;
    }
    let d = disp as u32;
    Some(
        (code & 0xFBC0_D000)
            | bits(d, 20, 20) << 26
            | bits(d, 12, 17) << 16
            | bits(d, 18, 18) << 13
            | bits(d, 19, 19) << 11
            | bits(d, 1, 11),
    )
}

fn encode_t24(disp: i32, code: u32) -> Option<u32> {
    let form = t24_form(code)?;
    let d = disp as u32;
    if disp % 2 != 0 || (form == 0xF000_C000 && bits(d, 1, 1) != 0) || !signed_fit(disp, 25) {
        return None;
    }
    let s = bits(d, 24, 24);
    let j1 = bits(d, 23, 23) ^ s ^ 1;
    let j2 = bits(d, 22, 22) ^ s ^ 1;
    Some(form | s << 26 | bits(d, 12, 21) << 16 | j1 << 13 | j2 << 11 | bits(d, 1, 11))
}

/// The target RVA of instruction `code` of type `addr` at `instr_rva`, or
/// `None` if `code` is not of that type or `instr_rva` is misaligned for it.
/// Zucchini's `Read*`.
pub fn read_code(addr: ArmAddr, instr_rva: u32, code: u32) -> Option<u32> {
    if !instr_rva.is_multiple_of(addr.instr_align()) {
        return None;
    }
    let (disp, align) = decode(addr, code)?;
    let t = instr_rva
        .wrapping_add(addr.pc_bias())
        .wrapping_add(disp as u32);
    Some(t & !(align - 1))
}

/// Why [`write_code`] refused a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteRefusal {
    /// The bytes are not an instruction of the type.
    NotInstruction,
    /// The instruction's RVA is not aligned as its mode requires.
    InstrMisaligned,
    /// The target RVA is not aligned as the instruction's target must be.
    TargetMisaligned(u32),
    /// The displacement does not fit the encoding.
    OutOfRange(i32),
}

impl std::fmt::Display for WriteRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteRefusal::NotInstruction => write!(f, "is not an instruction of this type"),
            WriteRefusal::InstrMisaligned => write!(f, "lies at a misaligned RVA"),
            WriteRefusal::TargetMisaligned(a) => {
                write!(f, "cannot branch to a target not aligned to {a} bytes")
            }
            WriteRefusal::OutOfRange(d) => write!(f, "cannot encode displacement {d:#x}"),
        }
    }
}

/// `code` re-encoded to branch from `instr_rva` to `target_rva`.
/// Zucchini's `Write*`: the instruction and target RVAs must be aligned,
/// and the displacement (rounded up to the target alignment) must fit.
pub fn write_code(
    addr: ArmAddr,
    instr_rva: u32,
    target_rva: u32,
    code: u32,
) -> Result<u32, WriteRefusal> {
    if !instr_rva.is_multiple_of(addr.instr_align()) {
        return Err(WriteRefusal::InstrMisaligned);
    }
    let (_, align) = decode(addr, code).ok_or(WriteRefusal::NotInstruction)?;
    if !target_rva.is_multiple_of(align) {
        return Err(WriteRefusal::TargetMisaligned(align));
    }
    let pc = instr_rva.wrapping_add(addr.pc_bias());
    let raw = (target_rva as i32).wrapping_sub(pc as i32);
    let disp = raw.wrapping_add(raw.wrapping_neg() & (align as i32 - 1));
    encode(addr, disp, code).ok_or(WriteRefusal::OutOfRange(disp))
}

/// The target RVA of the type-`addr` instruction at element offset
/// `location`, whose RVA is `instr_rva`; `None` if it does not fit in
/// `image`, is not of that type, or is misaligned.
pub fn read_target(addr: ArmAddr, image: &[u8], location: u32, instr_rva: u32) -> Option<u32> {
    read_code(addr, instr_rva, fetch_code(addr, image, location)?)
}

/// Re-encodes the type-`addr` instruction at `location` (RVA `instr_rva`)
/// to branch to `target_rva`. On refusal nothing is written and the error
/// names the type tag, location, code, RVAs and the reason.
pub fn write_target(
    addr: ArmAddr,
    image: &mut [u8],
    location: u32,
    instr_rva: u32,
    target_rva: u32,
) -> Result<(), ZucchiniError> {
    let bad = |reason: String| ZucchiniError::BadReference {
        type_tag: addr.type_tag(),
        location,
        reason,
    };
    let Some(code) = fetch_code(addr, image, location) else {
        return Err(bad(format!(
            "{} instruction ({} bytes) does not fit in the {}-byte element",
            addr.name(),
            addr.width(),
            image.len()
        )));
    };
    let new = write_code(addr, instr_rva, target_rva, code).map_err(|why| {
        bad(format!(
            "{} instruction {code:#x} at RVA {instr_rva:#x} {why} (target RVA {target_rva:#x})",
            addr.name()
        ))
    })?;
    store_code(addr, image, location, new);
    Ok(())
}

/// The gaps of element range `lo..hi` between abs32 references (Zucchini's
/// `Abs32GapFinder`), shared with the x86 ELF disassembler.
pub use super::elf::abs32_gaps;

/// Zucchini's `IsExecSectionThumb2` for an AArch32 executable section at
/// `sh_addr` whose bytes are `data` (all `sh_size` of them): Thumb2 unless
/// the address and size are multiples of 4 and at least 40% of the
/// little-endian words have condition `AL` (top nibble `0xE`).
pub fn is_exec_section_thumb2(sh_addr: u32, data: &[u8]) -> bool {
    if !sh_addr.is_multiple_of(4) || !data.len().is_multiple_of(4) {
        return true;
    }
    let den = data.len() / 4;
    let num = data.chunks_exact(4).filter(|w| w[3] & 0xF0 == 0xE0).count();
    (num as f64) < (den as f64) * THUMB2_COND_ALWAYS_THRESHOLD
}

/// An executable section: its element offset, size and RVA (`sh_addr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecSection {
    /// `sh_offset`, relative to the element.
    pub offset: u32,
    /// `sh_size`.
    pub size: u32,
    /// `sh_addr`.
    pub rva: u32,
}

impl ExecSection {
    fn rva_of(&self, offset: u32) -> u32 {
        self.rva.wrapping_add(offset.wrapping_sub(self.offset))
    }
}

/// A rel32 reference found by a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rel32 {
    /// Its address type.
    pub addr: ArmAddr,
    /// Element offset of the instruction.
    pub location: u32,
    /// RVA it branches to.
    pub target_rva: u32,
    /// File offset of the target, as the caller's closure gave it.
    pub target: u32,
}

/// One section's scan: Zucchini's `Rel32Finder` loop over the gaps, with
/// the caller's target check.
struct Scan<'a> {
    image: &'a [u8],
    section: ExecSection,
    target_offset: &'a dyn Fn(u32) -> Option<u32>,
    out: Vec<Rel32>,
}

impl Scan<'_> {
    /// The gaps of the section between abs32 references, clipped to the
    /// image.
    fn ranges(&self, abs32: &[u32], width: u32) -> Vec<(u32, u32)> {
        let image_end = u32::try_from(self.image.len()).unwrap_or(u32::MAX);
        let end = self
            .section
            .offset
            .saturating_add(self.section.size)
            .min(image_end);
        abs32_gaps(self.section.offset, end, abs32, width)
    }

    /// Keeps candidate `addr` at `location` if its target translates.
    fn keep(&mut self, addr: ArmAddr, location: u32, target_rva: u32) {
        if let Some(target) = (self.target_offset)(target_rva) {
            self.out.push(Rel32 {
                addr,
                location,
                target_rva,
                target,
            });
        }
    }

    /// Fixed 4-byte steps over `lo..hi` from its first 4-aligned offset;
    /// the first of `types` that decodes wins.
    fn words(&mut self, lo: u32, hi: u32, types: &[ArmAddr]) {
        let mut cur = u64::from(lo).next_multiple_of(4);
        while cur + 4 <= u64::from(hi) {
            let at = cur as u32;
            let rva = self.section.rva_of(at);
            let code = u32_at(self.image, at as usize);
            let found =
                code.and_then(|c| types.iter().find_map(|&a| Some((a, read_code(a, rva, c)?))));
            if let Some((addr, target_rva)) = found {
                self.keep(addr, at, target_rva);
            }
            cur += 4;
        }
    }

    /// Thumb2 steps over `lo..hi` from its first even offset, by
    /// instruction size; a 32-bit instruction cut by `hi` is skipped.
    fn thumb2(&mut self, lo: u32, hi: u32) {
        let mut cur = u64::from(lo).next_multiple_of(2);
        while cur + 2 <= u64::from(hi) {
            let at = cur as u32;
            let Some(code16) = u16_at(self.image, at as usize) else {
                return;
            };
            let size = thumb2_instr_size(code16);
            let types: &[ArmAddr] = match size {
                2 => &[ArmAddr::T8, ArmAddr::T11],
                _ if cur + 4 <= u64::from(hi) => &[ArmAddr::T20, ArmAddr::T24],
                _ => &[],
            };
            let rva = self.section.rva_of(at);
            let found = types.iter().find_map(|&a| {
                let code = fetch_code(a, self.image, at)?;
                Some((a, read_code(a, rva, code)?))
            });
            if let Some((addr, target_rva)) = found {
                self.keep(addr, at, target_rva);
            }
            cur += u64::from(size);
        }
    }
}

/// Rel32 references of an AArch32 executable section: Zucchini's
/// `Rel32FinderAArch32` as `ParseExecSection` drives it. ARM mode tries
/// A24 at each 4-aligned offset of each gap; Thumb2 mode walks each gap
/// from its first even offset by instruction size (2 or 4 from the first
/// halfword), trying T8 then T11 on 16-bit instructions and T20 then T24 on
/// 32-bit ones that fit the gap. A candidate is kept when `target_offset`
/// maps its target RVA to an offset; either way the scan goes on after the
/// instruction. `abs32` are the sorted abs32 locations, `abs32_width` 4.
pub fn find_rel32_aarch32(
    image: &[u8],
    section: ExecSection,
    thumb2: bool,
    abs32: &[u32],
    abs32_width: u32,
    target_offset: &dyn Fn(u32) -> Option<u32>,
) -> Vec<Rel32> {
    let mut scan = Scan {
        image,
        section,
        target_offset,
        out: Vec::new(),
    };
    for (lo, hi) in scan.ranges(abs32, abs32_width) {
        if thumb2 {
            scan.thumb2(lo, hi);
        } else {
            scan.words(lo, hi, &[ArmAddr::A24]);
        }
    }
    scan.out
}

/// Rel32 references of an AArch64 executable section: Zucchini's
/// `Rel32FinderAArch64`: at each 4-aligned offset of each gap, tries
/// Immd14, Immd19, Immd26 in that order. Candidates are kept as in
/// [`find_rel32_aarch32`]; `abs32_width` is 8.
pub fn find_rel32_aarch64(
    image: &[u8],
    section: ExecSection,
    abs32: &[u32],
    abs32_width: u32,
    target_offset: &dyn Fn(u32) -> Option<u32>,
) -> Vec<Rel32> {
    let mut scan = Scan {
        image,
        section,
        target_offset,
        out: Vec::new(),
    };
    for (lo, hi) in scan.ranges(abs32, abs32_width) {
        scan.words(lo, hi, &ArmAddr::AARCH64);
    }
    scan.out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-field helpers on hand-computed values.
    #[test]
    fn bit_helpers() {
        assert_eq!(bits(0xABCD_0123, 8, 15), 0x01);
        assert_eq!(bits(0xABCD_0123, 0, 31), 0xABCD_0123);
        assert_eq!(bits(0x8000_0000, 31, 31), 1);
        assert_eq!(signed_bits(0x00FF_FFFF, 0, 23), -1);
        assert_eq!(signed_bits(0x007F_FFFF, 0, 23), 0x7F_FFFF);
        assert_eq!(signed_bits(0b1_0000_0000_0000_0000_0000, 5, 20), -0x8000);
        assert_eq!(sign_extend(0x10_0000, 20), -0x10_0000);
        assert_eq!(sign_extend(0x0F_FFFE, 20), 0x0F_FFFE);
        assert!(signed_fit(0xFE, 9) && signed_fit(-0x100, 9));
        assert!(!signed_fit(0x100, 9) && !signed_fit(-0x102, 9));
        assert!(signed_fit(i32::MIN, 32) && signed_fit(i32::MAX, 32));
    }

    /// 32-bit Thumb2 instructions start with 0b11101, 0b11110 or 0b11111
    /// (Arm ARM A6.1); everything else is 16-bit.
    #[test]
    fn thumb2_sizes() {
        for (code16, size) in [
            (0x0000, 2),
            (0xD0FF, 2),
            (0xE7FF, 2),
            (0xE800, 4),
            (0xEFFF, 4),
            (0xF000, 4),
            (0xF800, 4),
            (0xFFFF, 4),
        ] {
            assert_eq!(thumb2_instr_size(code16), size, "{code16:#x}");
        }
    }
}
