//! What an in-place image edit is asked to do and what it did, shared by the
//! EROFS and ext4 editors so that `build` treats both alike.
//!
//! Invariant of every editor: bytes outside [`EditStats::changed`] are the
//! source's bytes at the same offsets. Outputs that reuse the source (payload
//! operations, sparse chunks) rely on it.

use std::collections::BTreeMap;
use std::ops::Range;

/// What to change in an image. Paths are relative to the image's root,
/// `/`-separated (`app/Foo`, `etc/build.prop`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Edit {
    /// Files, links and whole folders to remove.
    pub remove: Vec<String>,
    /// Regular files whose content becomes these bytes.
    pub replace: BTreeMap<String, Vec<u8>>,
}

/// What an edit changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EditStats {
    /// The filesystem's block size in bytes; the ranges below are multiples.
    pub block_size: u64,
    /// Blocks of the source extent whose bytes changed (zeroed ones included).
    pub changed_blocks: u64,
    /// Blocks freed and left zero.
    pub zeroed_blocks: u64,
    /// Blocks added after the source's last block.
    pub appended_blocks: u64,
    /// Inodes that no longer exist.
    pub removed_inodes: u64,
    /// Directories whose content was rewritten.
    pub rewritten_dirs: u64,
    /// Files given new content.
    pub replaced_files: u64,
    /// Size of the edited image in bytes.
    pub size: u64,
    /// Byte ranges of the output that differ from the source, appended bytes
    /// included: sorted, disjoint and merged when adjacent.
    pub changed: Vec<Range<u64>>,
    /// The part of [`EditStats::changed`] that is now all zero bytes (freed
    /// blocks): sorted, disjoint and merged when adjacent.
    pub zeroed: Vec<Range<u64>>,
}

impl EditStats {
    /// Blocks that differ from the source: changed plus appended.
    pub fn total_changed(&self) -> u64 {
        self.changed_blocks + self.appended_blocks
    }
}

/// Appends `r` to sorted, disjoint `ranges`, merging it with the last one
/// when they touch. `r` must not start before the last range's start.
pub fn push_range(ranges: &mut Vec<Range<u64>>, r: Range<u64>) {
    if r.is_empty() {
        return;
    }
    if let Some(last) = ranges.last_mut() {
        debug_assert!(r.start >= last.start);
        if r.start <= last.end {
            last.end = last.end.max(r.end);
            return;
        }
    }
    ranges.push(r);
}

#[cfg(test)]
mod tests {
    use super::push_range;

    #[test]
    fn ranges_merge_when_adjacent_or_overlapping() {
        let mut v = Vec::new();
        push_range(&mut v, 0..4096);
        push_range(&mut v, 4096..8192);
        push_range(&mut v, 16384..20480);
        push_range(&mut v, 20000..24576);
        push_range(&mut v, 30000..30000);
        assert_eq!(v, vec![0..8192, 16384..24576]);
    }
}
