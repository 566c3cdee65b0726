//! Application of one element, as Zucchini's `ApplyElement`: equivalences
//! and extra data, raw deltas, then reference correction.
//!
//! Reference correction (`ApplyReferencesCorrection`): disassemblers of the
//! element's type are made from the old element and from the new element as
//! it stands after the raw steps; both must parse and span their whole
//! element. The equivalences are pruned into an [`OffsetMapper`]. Then, for
//! each pool tag of the old disassembler's reference types, in increasing
//! order:
//! - the pool's targets are the targets of every old reference of the
//!   pool's types (whole element), kept only where an equivalence's source
//!   range covers them and projected into the new element, plus the patch's
//!   extra targets of that pool tag (delta-coded: first target, then each
//!   `previous + 1 + value`), sorted and unique ([`TargetPool`]); extra
//!   target lists of pool tags the type does not have are ignored;
//! - for each type of the pool (by type tag), for each equivalence in patch
//!   order, for each old reference located in the equivalence's source
//!   range: its target is projected with
//!   [`OffsetMapper::extended_forward_project`], the nearest pool key is
//!   taken, the next reference delta (signed varint) is added (32-bit
//!   wrapping, as Zucchini's unsigned keys), and the key must name a pool
//!   target; the new disassembler writes that target at the location moved
//!   by the equivalence. A source range the type's reader refuses
//!   ([`Disassembler::check_range`]: Zucchini's abs32 reader stops on a
//!   bound inside a pointer) is an error.
//!
//! At the end the reference delta stream must be consumed exactly. Any
//! failure is an error naming the element, its type and the reference
//! type and location; nothing panics on hostile input.

use super::disasm::{Disassembler, NoOp, Reference};
use super::elf::DisassemblerElfIntel;
use super::elf_arm::DisassemblerElfArm;
use super::offset_mapper::OffsetMapper;
use super::target_pool::TargetPool;
use super::{ElementPatch, ExeType, ZucchiniError, fourcc, varint, varuint};

/// Whether elements of `exe` can be applied (their disassembler exists).
pub fn is_supported(exe: ExeType) -> bool {
    matches!(
        exe,
        ExeType::NoOp
            | ExeType::ElfX86
            | ExeType::ElfX64
            | ExeType::ElfAArch32
            | ExeType::ElfAArch64
            | ExeType::Dex
    )
}

/// Makes the disassembler of `exe` for `image`. Types without one are
/// [`ZucchiniError::Unsupported`]; a parse failure is
/// [`ZucchiniError::BadElement`] (element index 0: the caller names it).
pub fn make_disassembler(
    exe: ExeType,
    image: &[u8],
) -> Result<Box<dyn Disassembler>, ZucchiniError> {
    Ok(match exe {
        ExeType::NoOp => Box::new(NoOp),
        ExeType::ElfX86 => Box::new(DisassemblerElfIntel::new_x86(image)?),
        ExeType::ElfX64 => Box::new(DisassemblerElfIntel::new_x64(image)?),
        ExeType::ElfAArch32 => Box::new(DisassemblerElfArm::new_aarch32(image)?),
        ExeType::ElfAArch64 => Box::new(DisassemblerElfArm::new_aarch64(image)?),
        ExeType::Dex => Box::new(super::dex::DisassemblerDex::new(image)?),
        ExeType::Win32X86 | ExeType::Win32X64 | ExeType::Ztf => {
            return Err(ZucchiniError::Unsupported {
                element: 0,
                exe_type: exe_code(exe).into(),
            });
        }
    })
}

/// The four-character code of `exe`.
pub fn exe_code(exe: ExeType) -> &'static str {
    match exe {
        ExeType::NoOp => "NoOp",
        ExeType::Win32X86 => "Px86",
        ExeType::Win32X64 => "Px64",
        ExeType::ElfX86 => "Ex86",
        ExeType::ElfX64 => "Ex64",
        ExeType::ElfAArch32 => "EA32",
        ExeType::ElfAArch64 => "EA64",
        ExeType::Dex => "DEX ",
        ExeType::Ztf => "ZTF ",
    }
}

/// Applies element `index` of a validated patch: `old` and `new` are its
/// regions; `major_version` is the patch header's.
pub fn apply_element(
    index: usize,
    old: &[u8],
    e: &ElementPatch<'_>,
    new: &mut [u8],
    major_version: u16,
) -> Result<(), ZucchiniError> {
    apply_raw_element(old, e, new);
    let name = |which: &str, err: ZucchiniError| match err {
        ZucchiniError::BadElement { reason, .. } => ZucchiniError::BadElement {
            element: index,
            exe_type: fourcc(e.header.exe_type),
            reason: format!("{which} element: {reason}"),
        },
        ZucchiniError::Unsupported { exe_type, .. } => ZucchiniError::Unsupported {
            element: index,
            exe_type,
        },
        other => other,
    };
    let old_d = make_disassembler(e.exe_type, old).map_err(|err| name("old", err))?;
    let new_d = make_disassembler(e.exe_type, new).map_err(|err| name("new", err))?;
    let mut c = Correction {
        index,
        e,
        mapper: OffsetMapper::new(
            &e.equivalences,
            old.len() as u32,
            new.len() as u32,
            major_version,
        ),
        deltas: e.reference_delta,
        delta_pos: 0,
    };
    c.run(old, &*old_d, new, &*new_d)
}

/// State of one element's reference correction.
struct Correction<'p, 'a> {
    index: usize,
    e: &'p ElementPatch<'a>,
    mapper: OffsetMapper,
    deltas: &'a [u8],
    delta_pos: usize,
}

impl Correction<'_, '_> {
    fn run(
        &mut self,
        old: &[u8],
        od: &dyn Disassembler,
        new: &mut [u8],
        nd: &dyn Disassembler,
    ) -> Result<(), ZucchiniError> {
        let mut pools: Vec<u8> = od.groups().iter().map(|g| g.pool_tag).collect();
        pools.sort_unstable();
        pools.dedup();
        for pool in pools {
            let types: Vec<u8> = od
                .groups()
                .iter()
                .filter(|g| g.pool_tag == pool)
                .map(|g| g.type_tag)
                .collect();
            let targets = self.pool_targets(old, od, pool, &types)?;
            for &t in &types {
                self.correct_type(old, od, new, nd, t, &targets)?;
            }
        }
        if self.delta_pos != self.deltas.len() {
            return Err(self.stream_err(
                "reference_delta",
                self.delta_pos,
                format!(
                    "{} bytes left after the last reference",
                    self.deltas.len() - self.delta_pos
                ),
            ));
        }
        Ok(())
    }

    fn pool_targets(
        &self,
        old: &[u8],
        od: &dyn Disassembler,
        pool: u8,
        types: &[u8],
    ) -> Result<TargetPool, ZucchiniError> {
        let mut targets = TargetPool::default();
        for &t in types {
            targets.insert(
                od.read(old, t, 0, old.len() as u32)
                    .iter()
                    .map(|r| r.target),
            );
        }
        targets.filter_and_project(&self.mapper);
        targets.insert(self.extra_targets(pool)?);
        Ok(targets)
    }

    /// Decodes the extra targets of `pool` (none if the patch has no list).
    fn extra_targets(&self, pool: u8) -> Result<Vec<u32>, ZucchiniError> {
        let Some(&(_, data)) = self.e.extra_targets.iter().find(|(t, _)| *t == pool) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let (mut pos, mut next) = (0usize, 0u64);
        while pos < data.len() {
            let (v, n) = varuint(&data[pos..]).ok_or_else(|| {
                self.stream_err("extra_targets", pos, format!("pool {pool}: bad varint"))
            })?;
            let t = next + v as u64;
            if t >= u32::MAX as u64 {
                return Err(self.stream_err(
                    "extra_targets",
                    pos,
                    format!("pool {pool}: target {t} overflows 32 bits"),
                ));
            }
            out.push(t as u32);
            next = t + 1;
            pos += n;
        }
        Ok(out)
    }

    fn correct_type(
        &mut self,
        old: &[u8],
        od: &dyn Disassembler,
        new: &mut [u8],
        nd: &dyn Disassembler,
        type_tag: u8,
        targets: &TargetPool,
    ) -> Result<(), ZucchiniError> {
        for q in &self.e.equivalences {
            od.check_range(type_tag, q.src, q.src + q.length)
                .map_err(|reason| {
                    self.bad(
                        type_tag,
                        q.src,
                        format!("equivalence source range: {reason}"),
                    )
                })?;
            for r in od.read(old, type_tag, q.src, q.src + q.length) {
                let projected = self.mapper.extended_forward_project(r.target);
                let expected = targets.key_for_nearest_offset(projected);
                let delta = self.next_delta(type_tag, r.location)?;
                let key = expected.wrapping_add(delta as u32);
                let target = targets.offset_for_key(key).ok_or_else(|| {
                    self.bad(
                        type_tag,
                        r.location,
                        format!(
                            "key {expected} + delta {delta} is outside the pool's {} targets",
                            targets.len()
                        ),
                    )
                })?;
                let location = match r.location.checked_sub(q.src) {
                    Some(d) if d < q.length => d + q.dst,
                    _ => {
                        return Err(self.bad(
                            type_tag,
                            r.location,
                            "the disassembler read a reference outside the equivalence".into(),
                        ));
                    }
                };
                nd.write(new, type_tag, Reference { location, target })
                    .map_err(|err| match err {
                        ZucchiniError::BadReference { reason, .. } => self.bad(
                            type_tag,
                            r.location,
                            format!(
                                "writing target {target:#x} at new offset {location:#x}: {reason}"
                            ),
                        ),
                        other => other,
                    })?;
            }
        }
        Ok(())
    }

    fn next_delta(&mut self, type_tag: u8, location: u32) -> Result<i32, ZucchiniError> {
        let (d, n) = varint(&self.deltas[self.delta_pos..]).ok_or_else(|| {
            let what = if self.delta_pos == self.deltas.len() {
                "no reference delta left"
            } else {
                "bad reference delta varint"
            };
            self.bad(
                type_tag,
                location,
                format!("{what} at reference_delta offset {}", self.delta_pos),
            )
        })?;
        self.delta_pos += n;
        Ok(d)
    }

    fn bad(&self, type_tag: u8, location: u32, reason: String) -> ZucchiniError {
        ZucchiniError::BadCorrection {
            element: self.index,
            exe_type: fourcc(self.e.header.exe_type),
            type_tag,
            location,
            reason,
        }
    }

    fn stream_err(&self, stream: &'static str, offset: usize, reason: String) -> ZucchiniError {
        ZucchiniError::BadStream {
            element: self.index,
            stream,
            offset,
            reason,
        }
    }
}

/// Equivalences, extra data and raw deltas of one validated element.
pub fn apply_raw_element(old: &[u8], e: &ElementPatch<'_>, new: &mut [u8]) {
    // `parse` checked every range used here.
    let mut pos = 0usize;
    let mut extra = e.extra_data;
    for q in &e.equivalences {
        let gap = q.dst as usize - pos;
        new[pos..pos + gap].copy_from_slice(&extra[..gap]);
        extra = &extra[gap..];
        let (s, d, l) = (q.src as usize, q.dst as usize, q.length as usize);
        new[d..d + l].copy_from_slice(&old[s..s + l]);
        pos = d + l;
    }
    new[pos..].copy_from_slice(extra);
    // Raw deltas, over the concatenated equivalences (deltas are increasing).
    let mut qi = 0usize;
    let mut base: u64 = 0;
    for &(off, d) in &e.raw_deltas {
        while base + e.equivalences[qi].length as u64 <= off as u64 {
            base += e.equivalences[qi].length as u64;
            qi += 1;
        }
        let at = e.equivalences[qi].dst as usize + (off as u64 - base) as usize;
        new[at] = new[at].wrapping_add(d as u8);
    }
}
