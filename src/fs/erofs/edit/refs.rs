//! Which blocks an edit frees, and where it puts new data.
//!
//! A block may be shared: by hard links (one inode, many names), by chunk
//! deduplication (several chunk indexes pointing at one block), by
//! `-Ededupe` (a pcluster referenced from several files) and by fragments (the
//! tails of many files packed into the packed inode). The edit therefore
//! counts references as sets: the blocks the removed inodes used, minus every
//! block a surviving inode or the filesystem's own metadata still uses. Only
//! what is left is freed (zeroed, and available for new data).

use std::ops::Range;

/// A set of block numbers below a bound, one bit each.
#[derive(Clone, Debug)]
pub struct BlockSet {
    bits: Vec<u64>,
    len: u64,
}

impl BlockSet {
    /// An empty set for blocks `0..len`.
    pub fn new(len: u64) -> Self {
        BlockSet {
            bits: vec![0; len.div_ceil(64) as usize],
            len,
        }
    }

    /// Adds the blocks of `r` (clipped to the bound).
    pub fn insert(&mut self, r: Range<u64>) {
        for b in r.start..r.end.min(self.len) {
            self.bits[(b / 64) as usize] |= 1 << (b % 64);
        }
    }

    /// Removes the blocks of `r`.
    pub fn remove(&mut self, r: Range<u64>) {
        for b in r.start..r.end.min(self.len) {
            self.bits[(b / 64) as usize] &= !(1 << (b % 64));
        }
    }

    /// Whether `b` is in the set.
    pub fn contains(&self, b: u64) -> bool {
        b < self.len && self.bits[(b / 64) as usize] & (1 << (b % 64)) != 0
    }

    /// Removes every block of `other`.
    pub fn subtract(&mut self, other: &BlockSet) {
        for (a, b) in self.bits.iter_mut().zip(&other.bits) {
            *a &= !b;
        }
    }

    /// The blocks in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.bits.iter().enumerate().flat_map(|(i, &w)| {
            (0..64)
                .filter(move |k| w & (1 << k) != 0)
                .map(move |k| i as u64 * 64 + k)
        })
    }

    /// Number of blocks in the set.
    pub fn count(&self) -> u64 {
        self.bits.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

/// Hands out contiguous runs of free blocks: the lowest run of freed blocks
/// that is long enough, else new blocks at the end of the filesystem.
#[derive(Debug)]
pub struct Allocator {
    free: BlockSet,
    /// First block after the filesystem (grows as blocks are appended).
    pub end: u64,
}

impl Allocator {
    /// Starts from the freed blocks and the filesystem's block count.
    pub fn new(free: BlockSet, end: u64) -> Self {
        Allocator { free, end }
    }

    /// Makes `r` available again.
    pub fn release(&mut self, r: Range<u64>) {
        self.free.insert(r);
    }

    /// `n` contiguous blocks, lowest address first; `n > 0`.
    pub fn take(&mut self, n: u64) -> Range<u64> {
        let mut run_start = 0;
        let mut run = 0;
        let mut found = None;
        for b in self.free.iter() {
            if run > 0 && b == run_start + run {
                run += 1;
            } else {
                run_start = b;
                run = 1;
            }
            if run == n {
                found = Some(run_start..run_start + n);
                break;
            }
        }
        if let Some(r) = found {
            self.free.remove(r.clone());
            return r;
        }
        let start = self.end;
        self.end += n;
        start..start + n
    }

    /// Whether `b` is still free.
    pub fn is_free(&self, b: u64) -> bool {
        self.free.contains(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_and_runs() {
        let mut s = BlockSet::new(200);
        s.insert(10..13);
        s.insert(20..30);
        s.insert(190..250);
        assert_eq!(s.count(), 3 + 10 + 10);
        let mut live = BlockSet::new(200);
        live.insert(25..26);
        s.subtract(&live);
        assert!(!s.contains(25) && s.contains(24));
        let mut a = Allocator::new(s, 200);
        assert_eq!(a.take(3), 10..13);
        assert_eq!(a.take(5), 20..25);
        assert_eq!(a.take(4), 26..30);
        assert_eq!(a.take(11), 200..211);
        assert_eq!(a.end, 211);
    }
}
