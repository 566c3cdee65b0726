//! Zucchini's `AddressTranslator`: file offset <-> RVA through "units"
//! (one per section that takes part in translation).
//!
//! A unit maps `offset_size` file bytes at `offset_begin` to the RVAs
//! `rva_begin..rva_begin + rva_size`; RVAs past `offset_size` are "dangling"
//! (no file bytes, e.g. `.bss`) and map to the fake offset
//! `fake_offset_begin + rva`, where `fake_offset_begin` is the end of the
//! furthest unit in the file.
//!
//! Initialisation (refusals are [`TranslatorError`]s): every unit must fit
//! below `OFFSET_BOUND` / `RVA_BOUND`; `offset_size` is cut to `rva_size`;
//! units without RVAs are dropped; units are sorted by (RVA, RVA size) and
//! exact duplicates dropped; RVA-overlapping units must have the same RVA to
//! offset shift and consistent dangling parts and are merged (touching
//! units are merged when consistent, else kept apart); the merged units must
//! not overlap in the file; and `fake_offset_begin + max RVA end` must stay
//! below `OFFSET_BOUND`.

use super::offset_mapper::{INVALID_OFFSET, OFFSET_BOUND};

/// Exclusive upper bound of valid RVAs (`kRvaBound`).
pub const RVA_BOUND: u32 = u32::MAX / 2;
/// The invalid RVA marker (`kInvalidRva`).
pub const INVALID_RVA: u32 = u32::MAX - 1;

/// One offset/RVA range pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unit {
    /// First file offset.
    pub offset_begin: u32,
    /// File bytes mapped.
    pub offset_size: u32,
    /// First RVA.
    pub rva_begin: u32,
    /// RVAs mapped (at least `offset_size` after initialisation).
    pub rva_size: u32,
}

impl Unit {
    fn offset_end(&self) -> u32 {
        self.offset_begin + self.offset_size
    }
    fn rva_end(&self) -> u32 {
        self.rva_begin + self.rva_size
    }
    fn covers_offset(&self, o: u32) -> bool {
        o >= self.offset_begin && o - self.offset_begin < self.offset_size
    }
    fn covers_rva(&self, r: u32) -> bool {
        r >= self.rva_begin && r - self.rva_begin < self.rva_size
    }
    fn has_dangling_rva(&self) -> bool {
        self.rva_size > self.offset_size
    }
}

/// Why a set of units cannot form a translator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TranslatorError {
    /// A unit reaches past the offset or RVA bound.
    #[error("a section's offset or address range overflows")]
    Overflow,
    /// Two units overlap with different shifts, or overlap in the file.
    #[error("two sections overlap inconsistently")]
    BadOverlap,
    /// Two overlapping units disagree on their dangling RVAs.
    #[error("two sections overlap with inconsistent dangling addresses")]
    BadOverlapDanglingRva,
    /// Fake offsets would pass the offset bound.
    #[error("the address space is too large for fake offsets")]
    FakeOffsetBeginTooLarge,
}

/// The translator of one image.
#[derive(Clone, Debug, Default)]
pub struct AddressTranslator {
    by_offset: Vec<Unit>,
    by_rva: Vec<Unit>,
    fake_offset_begin: u32,
}

fn bounded(begin: u32, size: u32, bound: u32) -> bool {
    begin < bound && size <= bound - begin
}

impl AddressTranslator {
    /// Builds the translator (see the module docs).
    pub fn new(mut units: Vec<Unit>) -> Result<Self, TranslatorError> {
        for u in &mut units {
            if !bounded(u.offset_begin, u.offset_size, OFFSET_BOUND)
                || !bounded(u.rva_begin, u.rva_size, RVA_BOUND)
            {
                return Err(TranslatorError::Overflow);
            }
            u.offset_size = u.offset_size.min(u.rva_size);
        }
        units.retain(|u| u.rva_size != 0);
        units.sort_by_key(|u| (u.rva_begin, u.rva_size));
        units.dedup();
        let mut units = merge_rva_overlaps(units)?;
        units.sort_by_key(|u| u.offset_begin);
        if units
            .windows(2)
            .any(|w| w[0].offset_end() > w[1].offset_begin)
        {
            return Err(TranslatorError::BadOverlap);
        }
        let offset_bound = units.iter().map(Unit::offset_end).max().unwrap_or(0);
        let rva_bound = units.iter().map(Unit::rva_end).max().unwrap_or(0);
        if !bounded(offset_bound, rva_bound, OFFSET_BOUND) {
            return Err(TranslatorError::FakeOffsetBeginTooLarge);
        }
        let by_offset = units.clone();
        units.sort_by_key(|u| u.rva_begin);
        Ok(AddressTranslator {
            by_offset,
            by_rva: units,
            fake_offset_begin: offset_bound,
        })
    }

    /// Where fake offsets start.
    pub fn fake_offset_begin(&self) -> u32 {
        self.fake_offset_begin
    }

    /// The merged units, by file offset.
    pub fn units_sorted_by_offset(&self) -> &[Unit] {
        &self.by_offset
    }

    /// The merged units, by RVA.
    pub fn units_sorted_by_rva(&self) -> &[Unit] {
        &self.by_rva
    }

    fn unit_of_rva(&self, rva: u32) -> Option<&Unit> {
        let i = self.by_rva.partition_point(|u| u.rva_begin <= rva);
        let u = self.by_rva.get(i.checked_sub(1)?)?;
        u.covers_rva(rva).then_some(u)
    }

    fn unit_of_offset(&self, offset: u32) -> Option<&Unit> {
        let i = self.by_offset.partition_point(|u| u.offset_begin <= offset);
        let u = self.by_offset.get(i.checked_sub(1)?)?;
        u.covers_offset(offset).then_some(u)
    }

    /// Whether `rva` belongs to a unit (`RvaToOffsetCache::IsValid`).
    pub fn rva_is_valid(&self, rva: u32) -> bool {
        rva != INVALID_RVA && self.unit_of_rva(rva).is_some()
    }

    /// The (possibly fake) offset of `rva`, or [`INVALID_OFFSET`].
    pub fn rva_to_offset(&self, rva: u32) -> u32 {
        match self.unit_of_rva(rva) {
            None => INVALID_OFFSET,
            Some(u) => {
                let delta = rva - u.rva_begin;
                if delta < u.offset_size {
                    delta + u.offset_begin
                } else {
                    self.fake_offset_begin.wrapping_add(rva)
                }
            }
        }
    }

    /// The RVA of `offset` (a fake offset gives its dangling RVA), or
    /// [`INVALID_RVA`].
    pub fn offset_to_rva(&self, offset: u32) -> u32 {
        if offset >= self.fake_offset_begin {
            let rva = offset - self.fake_offset_begin;
            return match self.unit_of_rva(rva) {
                Some(u) if u.has_dangling_rva() && rva - u.rva_begin >= u.offset_size => rva,
                _ => INVALID_RVA,
            };
        }
        match self.unit_of_offset(offset) {
            Some(u) => offset - u.offset_begin + u.rva_begin,
            None => INVALID_RVA,
        }
    }
}

/// Merges RVA-overlapping units sorted by RVA (the loop of `Initialize`).
fn merge_rva_overlaps(mut units: Vec<Unit>) -> Result<Vec<Unit>, TranslatorError> {
    if units.len() <= 1 {
        return Ok(units);
    }
    let mut slow = 0usize;
    for fast in 1..units.len() {
        let (s, f) = (units[slow], units[fast]);
        if s.rva_end() < f.rva_begin {
            slow += 1;
            units[slow] = f;
            continue;
        }
        let optional = s.rva_end() == f.rva_begin;
        let same_shift = f.offset_begin >= s.offset_begin
            && f.offset_begin - s.offset_begin == f.rva_begin - s.rva_begin;
        let dangling_bad = (f.has_dangling_rva() && f.offset_end() < s.offset_end())
            || (s.has_dangling_rva() && s.offset_end() < f.offset_end());
        if !same_shift || dangling_bad {
            if optional {
                slow += 1;
                units[slow] = f;
                continue;
            }
            return Err(if same_shift {
                TranslatorError::BadOverlapDanglingRva
            } else {
                TranslatorError::BadOverlap
            });
        }
        let m = &mut units[slow];
        m.rva_size = m.rva_size.max(f.rva_end() - m.rva_begin);
        m.offset_size = m.offset_size.max(f.offset_end() - m.offset_begin);
    }
    units.truncate(slow + 1);
    Ok(units)
}
