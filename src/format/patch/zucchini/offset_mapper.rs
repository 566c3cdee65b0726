//! Zucchini's `OffsetMapper`: projects old-element offsets to new-element
//! offsets through an element's equivalences.
//!
//! Construction prunes the equivalences so their old ("source") ranges are
//! disjoint, sorted by source offset, and non-empty:
//! - sorted by source offset; ties are broken by descending length, then
//!   ascending new offset in patch format major version 2 (Chromium's fix for
//!   crbug.com/1429086). Version 1 sorts by source offset only with an
//!   unstable sort; this port keeps the patch (new-offset) order among ties,
//!   which is what an insertion sort — used by the C++ libraries for short
//!   runs — also does;
//! - then, walking in order, an equivalence that overlaps a longer later one
//!   (a "reaper") is cut short where the reaper starts and everything between
//!   them is dropped; otherwise every later equivalence that overlaps it is
//!   trimmed at its front (source and new offsets advanced together);
//! - empty equivalences are dropped.
//!
//! Offsets at or past the old size are "fake" offsets (Zucchini maps RVAs
//! without file bytes, e.g. in `.bss`, to offsets past the image): they are
//! shifted by the size difference, saturating at `OFFSET_BOUND - 1`.

use super::Equivalence;

/// Exclusive upper bound of valid offsets (`kOffsetBound`).
pub const OFFSET_BOUND: u32 = u32::MAX / 2;
/// The invalid offset marker (`kInvalidOffset`).
pub const INVALID_OFFSET: u32 = u32::MAX - 1;

/// Equivalences pruned and sorted by source offset, with the element sizes.
#[derive(Clone, Debug)]
pub struct OffsetMapper {
    equivalences: Vec<Equivalence>,
    old_size: u32,
    new_size: u32,
}

impl OffsetMapper {
    /// Builds the mapper from the patch's equivalences (in patch order).
    /// `major_version` selects the sort tie-break (see the module docs).
    /// `new_size` must be non-zero (elements are never empty).
    pub fn new(
        equivalences: &[Equivalence],
        old_size: u32,
        new_size: u32,
        major_version: u16,
    ) -> Self {
        let mut equivalences = equivalences.to_vec();
        prune_and_sort_by_source(&mut equivalences, major_version);
        OffsetMapper {
            equivalences,
            old_size,
            new_size,
        }
    }

    /// A mapper over equivalences that are already pruned and sorted.
    pub fn from_pruned(equivalences: Vec<Equivalence>, old_size: u32, new_size: u32) -> Self {
        OffsetMapper {
            equivalences,
            old_size,
            new_size,
        }
    }

    /// The pruned equivalences, by source offset.
    pub fn equivalences(&self) -> &[Equivalence] {
        &self.equivalences
    }

    /// `offset - src + dst` of `unit`, clamped to `0..new_size`.
    pub fn naive_extended_forward_project(&self, unit: &Equivalence, offset: u32) -> u32 {
        let v = offset as i64 - unit.src as i64 + unit.dst as i64;
        v.clamp(0, self.new_size as i64 - 1) as u32
    }

    /// Projects any old offset: through the equivalence whose source range
    /// is nearest (ties to the lower one), clamped into the new element; fake
    /// offsets are shifted. Needs at least one equivalence; without any, an
    /// old offset maps to itself clamped (Zucchini requires equivalences
    /// here; a patch without them has no references to correct).
    pub fn extended_forward_project(&self, offset: u32) -> u32 {
        if offset < self.old_size {
            let eqs = &self.equivalences;
            if eqs.is_empty() {
                return offset.min(self.new_size - 1);
            }
            // First equivalence starting after `offset`.
            let mut pos = eqs.partition_point(|e| e.src <= offset);
            if pos > 0 {
                let prev = &eqs[pos - 1];
                let prev_end = prev.src + prev.length;
                if pos == eqs.len()
                    || offset < prev_end
                    || offset - prev_end < eqs[pos].src - offset
                {
                    pos -= 1;
                }
            }
            return self.naive_extended_forward_project(&eqs[pos], offset);
        }
        let delta = offset - self.old_size;
        // Unsigned 32-bit arithmetic, as Zucchini's.
        if delta < OFFSET_BOUND.wrapping_sub(self.new_size) {
            self.new_size.wrapping_add(delta)
        } else {
            OFFSET_BOUND - 1
        }
    }

    /// Projects one old offset that lies inside an equivalence's source
    /// range (`None` otherwise): the single-offset form of
    /// [`OffsetMapper::forward_project_all`].
    pub fn forward_project(&self, offset: u32) -> Option<u32> {
        let i = self.equivalences.partition_point(|e| e.src <= offset);
        let e = self.equivalences.get(i.checked_sub(1)?)?;
        (offset - e.src < e.length).then(|| offset - e.src + e.dst)
    }

    /// Projects sorted `offsets` that lie inside an equivalence's source
    /// range and drops the others (the result is not re-sorted).
    pub fn forward_project_all(&self, offsets: &mut Vec<u32>) {
        let eqs = &self.equivalences;
        let mut cur = 0usize;
        offsets.retain_mut(|o| {
            while cur < eqs.len() && eqs[cur].src + eqs[cur].length <= *o {
                cur += 1;
            }
            if cur < eqs.len() && eqs[cur].src <= *o {
                *o = *o - eqs[cur].src + eqs[cur].dst;
                true
            } else {
                false
            }
        });
    }
}

/// Zucchini's `PruneEquivalencesAndSortBySource` (see the module docs).
pub fn prune_and_sort_by_source(eqs: &mut Vec<Equivalence>, major_version: u16) {
    if major_version >= 2 {
        // `-length` as a u32: longer first, and empty ones before all others.
        eqs.sort_by_key(|e| (e.src, 0u32.wrapping_sub(e.length), e.dst));
    } else {
        eqs.sort_by_key(|e| e.src);
    }
    let mut i = 0usize;
    while i < eqs.len() {
        if eqs[i].length == 0 {
            i += 1;
            continue;
        }
        let cur_end = eqs[i].src + eqs[i].length;
        let mut next = i + 1;
        let mut reaper = false;
        while next < eqs.len() && eqs[next].src < cur_end {
            if eqs[i].length < eqs[next].length {
                eqs[i].length -= cur_end - eqs[next].src;
                reaper = true;
                break;
            }
            next += 1;
        }
        if reaper {
            for e in &mut eqs[i + 1..next] {
                e.length = 0;
            }
            i = next;
        } else {
            for e in &mut eqs[i + 1..next] {
                let capped = (cur_end - e.src).min(e.length);
                e.length -= capped;
                e.src = cur_end;
                e.dst += capped;
            }
            i += 1;
        }
    }
    eqs.retain(|e| e.length != 0);
}
