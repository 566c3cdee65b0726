//! Zucchini's ELF ARM disassemblers (`DisassemblerElfAArch32` for `EA32`,
//! `DisassemblerElfAArch64` for `EA64`): the ELF layer of [`super::elf`]
//! (`EM_ARM` / `EM_AARCH64`, relocations `R_ARM_RELATIVE` /
//! `R_AARCH64_RELATIVE`, the same validation, abs32 and reloc references)
//! plus the rel32 branch types of [`super::arm`].
//!
//! Rel32 locations: each executable section, by file offset, is scanned
//! between abs32 bodies (AArch32: ARM or Thumb2 mode by Zucchini's
//! condition-code heuristic); a candidate is kept when its target RVA
//! translates to an offset inside an executable section. Locations are
//! kept per type, sorted. Reading a type re-decodes each stored location
//! and keeps it when the target RVA still translates; writing re-encodes
//! the instruction and refuses (changing nothing) a target it cannot reach.
//! Types: 0 reloc, 1 abs32 (pools 0 and 1), then the rel32 types in
//! [`ArmAddr`] order, all in pool 2 ([`AARCH32_GROUPS`], [`AARCH64_GROUPS`]).

use super::ZucchiniError;
use super::address_translator::INVALID_RVA;
use super::arm::{self, AARCH32_GROUPS, AARCH64_GROUPS, ArmAddr, ArmArch};
use super::disasm::{Disassembler, RefGroup, Reference};
use super::elf::{
    ELF_AARCH32, ELF_AARCH64, ElfArch, ElfCore, TYPE_ABS32, TYPE_RELOC, is_offset_in_sections,
};
use super::offset_mapper::INVALID_OFFSET;

/// An `EA32` or `EA64` element's disassembler.
#[derive(Clone, Debug)]
pub struct DisassemblerElfArm {
    core: ElfCore,
    arch: ArmArch,
    /// Sorted rel32 locations, by type tag - 2.
    rel32: Vec<Vec<u32>>,
}

impl DisassemblerElfArm {
    /// Parses an `EA32` element (ELF32 ARM).
    pub fn new_aarch32(image: &[u8]) -> Result<Self, ZucchiniError> {
        Self::new(image, ELF_AARCH32, ArmArch::AArch32)
    }

    /// Parses an `EA64` element (ELF64 AArch64).
    pub fn new_aarch64(image: &[u8]) -> Result<Self, ZucchiniError> {
        Self::new(image, ELF_AARCH64, ArmArch::AArch64)
    }

    fn new(image: &[u8], elf: ElfArch, arch: ArmArch) -> Result<Self, ZucchiniError> {
        let core = ElfCore::parse(image, elf).map_err(|reason| ZucchiniError::BadElement {
            element: 0,
            exe_type: if elf.is_64 { "EA64" } else { "EA32" }.into(),
            reason,
        })?;
        let n = Self::groups_of(arch).len() - 2;
        let mut rel32 = vec![Vec::new(); n];
        let target_offset = |rva: u32| {
            let o = core.translator.rva_to_offset(rva);
            (o != INVALID_OFFSET && is_offset_in_sections(&core.exec_sections, o)).then_some(o)
        };
        let w = elf.width();
        for s in &core.exec_sections {
            let sec = arm::ExecSection {
                offset: s.offset,
                size: s.size,
                rva: s.addr,
            };
            let found = match arch {
                ArmArch::AArch32 => {
                    let data = &image[s.offset as usize..(s.offset + s.size) as usize];
                    let thumb2 = arm::is_exec_section_thumb2(s.addr, data);
                    arm::find_rel32_aarch32(
                        image,
                        sec,
                        thumb2,
                        &core.abs32_locations,
                        w,
                        &target_offset,
                    )
                }
                ArmArch::AArch64 => {
                    arm::find_rel32_aarch64(image, sec, &core.abs32_locations, w, &target_offset)
                }
            };
            for r in found {
                if let Some(list) = rel32.get_mut(usize::from(r.addr.type_tag()) - 2) {
                    list.push(r.location);
                }
            }
        }
        for list in &mut rel32 {
            list.sort_unstable();
        }
        Ok(DisassemblerElfArm { core, arch, rel32 })
    }

    fn groups_of(arch: ArmArch) -> &'static [RefGroup] {
        match arch {
            ArmArch::AArch32 => &AARCH32_GROUPS,
            ArmArch::AArch64 => &AARCH64_GROUPS,
        }
    }

    /// The ELF layer.
    pub fn core(&self) -> &ElfCore {
        &self.core
    }

    fn read_rel32(&self, image: &[u8], addr: ArmAddr, lo: u32, hi: u32) -> Vec<Reference> {
        let t = &self.core.translator;
        let list = &self.rel32[usize::from(addr.type_tag()) - 2];
        let from = list.partition_point(|&l| l < lo);
        list[from..]
            .iter()
            .take_while(|&&l| l < hi)
            .filter_map(|&l| {
                let target_rva = arm::read_target(addr, image, l, t.offset_to_rva(l))?;
                let target = t.rva_to_offset(target_rva);
                (target != INVALID_OFFSET).then_some(Reference {
                    location: l,
                    target,
                })
            })
            .collect()
    }
}

impl Disassembler for DisassemblerElfArm {
    fn groups(&self) -> &[RefGroup] {
        Self::groups_of(self.arch)
    }

    fn read(&self, image: &[u8], type_tag: u8, lo: u32, hi: u32) -> Vec<Reference> {
        match type_tag {
            TYPE_RELOC => self.core.read_relocs(image, lo, hi),
            TYPE_ABS32 => self.core.read_abs32(image, lo, hi),
            _ => match ArmAddr::from_type_tag(self.arch, type_tag) {
                Some(addr) => self.read_rel32(image, addr, lo, hi),
                None => Vec::new(),
            },
        }
    }

    fn check_range(&self, type_tag: u8, lo: u32, hi: u32) -> Result<(), String> {
        self.core.check_range(type_tag, lo, hi)
    }

    fn write(&self, image: &mut [u8], type_tag: u8, r: Reference) -> Result<(), ZucchiniError> {
        match type_tag {
            TYPE_RELOC => self.core.write_reloc(image, r),
            TYPE_ABS32 => self.core.write_abs32(image, r),
            _ => {
                let bad = |reason: String| ZucchiniError::BadReference {
                    type_tag,
                    location: r.location,
                    reason,
                };
                let addr = ArmAddr::from_type_tag(self.arch, type_tag)
                    .ok_or_else(|| bad(format!("no such type in {:?}", self.arch)))?;
                let target_rva = self.core.target_rva(type_tag, r)?;
                let instr_rva = self.core.translator.offset_to_rva(r.location);
                if instr_rva == INVALID_RVA {
                    return Err(bad("the location has no address".into()));
                }
                arm::write_target(addr, image, r.location, instr_rva, target_rva)
            }
        }
    }
}
