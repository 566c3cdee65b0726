//! What an in-place image edit is asked to do and what it did, shared by the
//! EROFS and ext4 editors so that `build` treats both alike.
//!
//! Invariant of every editor: bytes outside [`EditStats::changed`] are the
//! source's bytes at the same offsets. Outputs that reuse the source (payload
//! operations, sparse chunks) rely on it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Seek, SeekFrom, Write};
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

/// The image an editor writes: the source plus the blocks that change.
/// Blocks are addressed in units of `bs` bytes from the image's start.
pub struct Overlay<'a> {
    /// The source image.
    pub src: &'a [u8],
    /// Block size in bytes.
    pub bs: u64,
    /// Blocks with new bytes.
    blocks: BTreeMap<u64, Vec<u8>>,
    /// Blocks that become zero, kept as numbers: a large removal zeroes
    /// hundreds of MiB, which must not be held in memory.
    zero: BTreeSet<u64>,
}

/// A block of an [`Overlay`]: new bytes or zeros.
pub enum Changed<'a> {
    /// The block's new bytes (`bs` of them).
    Bytes(&'a [u8]),
    /// The block is all zero.
    Zero,
}

impl<'a> Overlay<'a> {
    /// An overlay that changes nothing yet.
    pub fn new(src: &'a [u8], bs: u64) -> Self {
        Overlay {
            src,
            bs,
            blocks: BTreeMap::new(),
            zero: BTreeSet::new(),
        }
    }

    /// Makes block `b` all zero.
    pub fn zero_block(&mut self, b: u64) {
        self.blocks.remove(&b);
        self.zero.insert(b);
    }

    /// Every changed block in address order.
    pub fn changed(&self) -> impl Iterator<Item = (u64, Changed<'_>)> {
        let mut bytes = self.blocks.iter().peekable();
        let mut zero = self.zero.iter().peekable();
        std::iter::from_fn(move || match (bytes.peek(), zero.peek()) {
            (Some(&(&a, _)), Some(&&z)) if z < a => zero.next().map(|&z| (z, Changed::Zero)),
            (Some(_), _) => bytes.next().map(|(&a, d)| (a, Changed::Bytes(d))),
            (None, Some(_)) => zero.next().map(|&z| (z, Changed::Zero)),
            (None, None) => None,
        })
    }

    /// The output's byte at `off`, without copying its block.
    pub fn byte(&self, off: u64) -> u8 {
        let b = off / self.bs;
        if let Some(d) = self.blocks.get(&b) {
            return d[(off % self.bs) as usize];
        }
        if self.zero.contains(&b) {
            return 0;
        }
        self.src.get(off as usize).copied().unwrap_or(0)
    }

    /// Block `b`'s current bytes, for changing them.
    pub fn block_mut(&mut self, b: u64) -> &mut Vec<u8> {
        let (src, bs) = (self.src, self.bs as usize);
        if self.zero.remove(&b) {
            return self.blocks.entry(b).or_insert_with(|| vec![0u8; bs]);
        }
        self.blocks.entry(b).or_insert_with(|| {
            let mut v = vec![0u8; bs];
            let s = (b as usize).saturating_mul(bs);
            if s < src.len() {
                let e = (s + bs).min(src.len());
                v[..e - s].copy_from_slice(&src[s..e]);
            }
            v
        })
    }

    /// Writes `bytes` at byte offset `off`.
    pub fn write(&mut self, off: u64, bytes: &[u8]) {
        let mut done = 0usize;
        while done < bytes.len() {
            let at = off + done as u64;
            let (b, o) = (at / self.bs, (at % self.bs) as usize);
            let n = (self.bs as usize - o).min(bytes.len() - done);
            self.block_mut(b)[o..o + n].copy_from_slice(&bytes[done..done + n]);
            done += n;
        }
    }

    /// Zeroes `len` bytes at `off`.
    pub fn zero(&mut self, off: u64, len: u64) {
        self.write(off, &vec![0u8; len as usize]);
    }

    /// Writes `content` from block `start`, zero-filling its last block.
    pub fn put_blocks(&mut self, start: u64, content: &[u8]) {
        for (i, c) in content.chunks(self.bs as usize).enumerate() {
            let blk = self.block_mut(start + i as u64);
            blk.fill(0);
            blk[..c.len()].copy_from_slice(c);
        }
    }

    /// `len` bytes at `off` as the output has them now.
    pub fn read(&mut self, off: u64, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut at = off;
        while out.len() < len {
            let (b, o) = (at / self.bs, (at % self.bs) as usize);
            let n = (self.bs as usize - o).min(len - out.len());
            out.extend_from_slice(&self.block_mut(b)[o..o + n]);
            at += n as u64;
        }
        out
    }
}

thread_local! {
    /// Set while an [`InPlace`] guard lives on this thread.
    static IN_PLACE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// While alive, [`write_out`] on this thread treats its output as the source
/// image's own file: it writes only the changed blocks and seeks over the
/// rest, which already holds the source's bytes. For editing a scratch copy
/// (a build's decoded image) without writing every byte again; the caller
/// must not need the source's old bytes afterwards.
pub struct InPlace(());

impl InPlace {
    /// Starts in-place writing on this thread.
    pub fn new() -> Self {
        IN_PLACE.with(|f| f.set(true));
        InPlace(())
    }
}

impl Default for InPlace {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for InPlace {
    fn drop(&mut self) {
        IN_PLACE.with(|f| f.set(false));
    }
}

/// Writes the overlay's image, `size` bytes, to `out` from offset 0.
pub fn write_out<W: Write + Seek>(o: &Overlay<'_>, size: u64, out: &mut W) -> io::Result<()> {
    out.seek(SeekFrom::Start(0))?;
    let in_place = IN_PLACE.with(|f| f.get());
    let mut at = 0u64;
    let bs = o.bs;
    // Runs of source bytes between changed blocks, then each changed block.
    let zeros = vec![0u8; bs as usize];
    for (b, data) in o.changed() {
        let s = b * bs;
        if s >= size {
            break;
        }
        if s > at {
            if in_place && s <= o.src.len() as u64 {
                out.seek(SeekFrom::Start(s))?;
            } else {
                copy_range(o.src, at, s, out)?;
            }
        }
        let end = (s + bs).min(size);
        let bytes = match data {
            Changed::Bytes(d) => d,
            Changed::Zero => &zeros,
        };
        out.write_all(&bytes[..(end - s) as usize])?;
        at = end;
    }
    if at < size && !(in_place && size <= o.src.len() as u64) {
        copy_range(o.src, at, size, out)?;
    }
    out.flush()
}

/// Bytes copied from the source between checks of the resident set.
const COPY_PIECE: u64 = 8 << 20;

/// Source bytes `from..to` (zeros past the source's end).
fn copy_range<W: Write>(src: &[u8], from: u64, to: u64, out: &mut W) -> io::Result<()> {
    let len = src.len() as u64;
    // In pieces, dropping each from memory once written when the source is
    // a registered file mapping (see `crate::util::pages`).
    let mut at = from;
    while at < to.min(len) {
        let end = (at + COPY_PIECE).min(to.min(len));
        let piece = &src[at as usize..end as usize];
        out.write_all(piece)?;
        crate::util::pages::release_if_mapped(piece);
        at = end;
    }
    let mut pos = from.max(len);
    let zeros = vec![0u8; 1 << 16];
    while pos < to {
        let n = (to - pos).min(zeros.len() as u64) as usize;
        out.write_all(&zeros[..n])?;
        pos += n as u64;
    }
    Ok(())
}

/// CRC32C (Castagnoli, reflected) without the final inversion, as EROFS and
/// ext4 store it: `crc32c_raw(!0, bytes)` or chained from a seed.
pub fn crc32c_raw(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ if crc & 1 != 0 { 0x82F6_3B78 } else { 0 };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::{crc32c_raw, push_range};

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(!crc32c_raw(!0, b"123456789"), 0xE306_9283);
    }

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
