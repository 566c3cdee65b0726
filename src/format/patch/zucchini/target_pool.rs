//! Zucchini's `TargetPool`: the sorted, duplicate-free targets of one pool,
//! addressed by key (index).
//!
//! Invariant: `targets()` is sorted and unique after every insertion;
//! [`TargetPool::filter_and_project`] keeps it sorted (the projection is
//! injective because pruned equivalences have disjoint source and new
//! ranges).

use super::offset_mapper::OffsetMapper;

/// Sorted unique target offsets of one pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetPool {
    targets: Vec<u32>,
}

impl TargetPool {
    /// A pool over already sorted, unique targets.
    pub fn from_sorted(targets: Vec<u32>) -> Self {
        TargetPool { targets }
    }

    /// The targets, by key.
    pub fn targets(&self) -> &[u32] {
        &self.targets
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether the pool has no targets.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Adds `targets`, then sorts and removes duplicates.
    pub fn insert(&mut self, targets: impl IntoIterator<Item = u32>) {
        self.targets.extend(targets);
        self.targets.sort_unstable();
        self.targets.dedup();
    }

    /// Keeps the targets inside an equivalence's source range, projected
    /// into the new element, sorted.
    pub fn filter_and_project(&mut self, mapper: &OffsetMapper) {
        mapper.forward_project_all(&mut self.targets);
        self.targets.sort_unstable();
    }

    /// The key of the target nearest to `offset`; at equal distance the
    /// lower key. An empty pool answers 0 (not a valid key).
    pub fn key_for_nearest_offset(&self, offset: u32) -> u32 {
        let mut pos = self.targets.partition_point(|&t| t < offset);
        if pos > 0
            && (pos == self.targets.len()
                || self.targets[pos] - offset >= offset - self.targets[pos - 1])
        {
            pos -= 1;
        }
        pos as u32
    }

    /// The target of `key`, if the key is valid.
    pub fn offset_for_key(&self, key: u32) -> Option<u32> {
        self.targets.get(key as usize).copied()
    }
}
