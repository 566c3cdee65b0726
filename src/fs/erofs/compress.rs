//! LZ4HC compression of one file into EROFS extents ("fixed-output"
//! compression, as mkfs.erofs does it).
//!
//! The file is cut into extents, each either
//! - *compressed*: as much input as LZ4HC fits into one physical cluster
//!   (`pcluster` bytes at most, rounded up to whole blocks); the stream sits at
//!   the end of its blocks, zero-padded in front (the ZERO_PADDING feature);
//! - *plain*: at most one block of raw bytes, used where compression would not
//!   save a block.
//!
//! Extents never cross a segment boundary (every 4 MiB, block-aligned), so
//! large files compress in parallel; the cost is at most one short extent per
//! segment. Decoded extents are kept under 1 MiB, well inside what every
//! reader accepts.
//!
//! The lcluster index (one 8-byte entry per 4 KiB of file) is derived from the
//! extent starts: HEAD where a compressed extent starts, PLAIN where a plain
//! one (or the end of the file) starts, NONHEAD elsewhere with the distances
//! back to the last start and forward to the next.

use rayon::prelude::*;

use super::writer::BLOCK;

/// Independent compression segments of a file.
pub const SEGMENT: usize = 4 << 20;
/// Largest decoded size of one compressed extent.
pub const MAX_EXTENT: usize = 1 << 20;

/// lcluster index types (`di_advise` bits 0-1).
const TYPE_PLAIN: u16 = 0;
const TYPE_HEAD: u16 = 1;
const TYPE_NONHEAD: u16 = 2;
/// `delta[0]` flag: this NONHEAD carries the compressed block count.
const CBLKCNT: u16 = 1 << 11;
/// Map header advise: pclusters may span several blocks.
pub const ADVISE_BIG_PCLUSTER_1: u16 = 0x2;

/// One extent of a compressed file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// Logical start in the file.
    pub start: u64,
    /// Physical blocks (relative to the file's first block); 1 for plain extents.
    pub blocks: u32,
    /// Whether the extent is LZ4-compressed.
    pub compressed: bool,
}

/// A file as compressed extents.
#[derive(Clone, Debug)]
pub struct Compressed {
    /// Extents in file order.
    pub extents: Vec<Extent>,
    /// Every physical block, in extent order.
    pub data: Vec<u8>,
    /// Whether some pcluster spans more than one block.
    pub big: bool,
}

impl Compressed {
    /// Number of physical blocks.
    pub fn blocks(&self) -> u64 {
        self.data.len() as u64 / BLOCK
    }

    /// Size of the map header, padding and index array that follow the inode's xattrs.
    pub fn index_len(size: u64) -> u64 {
        16 + 8 * size.div_ceil(BLOCK)
    }

    /// The map header, 8 bytes of padding and the full lcluster index, with
    /// physical blocks starting at `first_block`.
    pub fn index(&self, size: u64, first_block: u32) -> Vec<u8> {
        let n = size.div_ceil(BLOCK) as usize;
        let mut out = vec![0u8; 16 + 8 * n];
        let advise = if self.big { ADVISE_BIG_PCLUSTER_1 } else { 0 };
        out[4..6].copy_from_slice(&advise.to_le_bytes());
        // Starts: (logical offset, type, block address, block count).
        let mut starts: Vec<(u64, u16, u32, u32)> = Vec::with_capacity(self.extents.len() + 1);
        let mut blk = first_block;
        for e in &self.extents {
            let t = if e.compressed { TYPE_HEAD } else { TYPE_PLAIN };
            starts.push((e.start, t, blk, e.blocks));
            blk += e.blocks;
        }
        // The end of the file is a pseudo-start when it falls in an lcluster of its own.
        if !size.is_multiple_of(BLOCK) && starts.last().is_none_or(|s| s.0 / BLOCK != size / BLOCK)
        {
            starts.push((size, TYPE_PLAIN, 0, 0));
        }
        let mut si = 0; // next start at or after the current lcluster
        let mut last_head: Option<(usize, u32, bool)> = None; // (lcluster, blocks, cblkcnt written)
        for lcn in 0..n {
            let lo = lcn as u64 * BLOCK;
            let e = &mut out[16 + 8 * lcn..24 + 8 * lcn];
            if si < starts.len() && starts[si].0 / BLOCK == lcn as u64 {
                let (off, t, addr, blocks) = starts[si];
                e[0..2].copy_from_slice(&t.to_le_bytes());
                e[2..4].copy_from_slice(&((off - lo) as u16).to_le_bytes());
                e[4..8].copy_from_slice(&addr.to_le_bytes());
                // Only a compressed HEAD has its block count announced.
                last_head = Some((lcn, blocks, t != TYPE_HEAD));
                si += 1;
            } else {
                let (h, blocks, done) = last_head.expect("lcluster 0 always holds a start");
                let next = starts.get(si).map_or(n, |s| (s.0 / BLOCK) as usize);
                let mut d0 = (lcn - h) as u16;
                if self.big && !done {
                    d0 = CBLKCNT | blocks as u16;
                    last_head = Some((h, blocks, true));
                }
                e[0..2].copy_from_slice(&TYPE_NONHEAD.to_le_bytes());
                e[4..6].copy_from_slice(&d0.to_le_bytes());
                e[6..8].copy_from_slice(&((next - lcn) as u16).to_le_bytes());
            }
        }
        out
    }
}

/// Compresses one segment starting at file offset `base`.
fn compress_segment(seg: &[u8], base: u64, level: i32, pcluster: usize) -> (Vec<Extent>, Vec<u8>) {
    let mut extents = Vec::new();
    let mut data = Vec::new();
    let mut dst = vec![0u8; pcluster];
    let mut pos = 0usize;
    while pos < seg.len() {
        let remaining = seg.len() - pos;
        if remaining > BLOCK as usize {
            let src = &seg[pos..pos + remaining.min(MAX_EXTENT)];
            if let Ok((read, wrote)) = lzzzz::lz4_hc::compress_fill(src, &mut dst, level) {
                let blocks = wrote.div_ceil(BLOCK as usize);
                if read > blocks * BLOCK as usize {
                    data.resize(data.len() + blocks * BLOCK as usize - wrote, 0);
                    data.extend_from_slice(&dst[..wrote]);
                    extents.push(Extent {
                        start: base + pos as u64,
                        blocks: blocks as u32,
                        compressed: true,
                    });
                    pos += read;
                    continue;
                }
            }
        }
        let n = remaining.min(BLOCK as usize);
        data.extend_from_slice(&seg[pos..pos + n]);
        data.resize(data.len().div_ceil(BLOCK as usize) * BLOCK as usize, 0);
        extents.push(Extent {
            start: base + pos as u64,
            blocks: 1,
            compressed: false,
        });
        pos += n;
    }
    (extents, data)
}

/// Compresses a file; `None` when storing it uncompressed takes no more space
/// (the same rule as mkfs.erofs: the compressed blocks plus the index must be
/// smaller than the file).
pub fn compress(file: &[u8], level: i32, pcluster: usize) -> Option<Compressed> {
    if file.len() <= BLOCK as usize {
        return None;
    }
    let parts: Vec<(Vec<Extent>, Vec<u8>)> = file
        .par_chunks(SEGMENT)
        .enumerate()
        .map(|(i, seg)| compress_segment(seg, (i * SEGMENT) as u64, level, pcluster))
        .collect();
    let mut extents = Vec::new();
    let mut data = Vec::new();
    for (e, d) in parts {
        extents.extend(e);
        data.extend_from_slice(&d);
    }
    let size = file.len() as u64;
    if data.len() as u64 + Compressed::index_len(size) >= size {
        return None;
    }
    let big = extents.iter().any(|e| e.blocks > 1);
    Some(Compressed { extents, data, big })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes an index the way readers do: each start's extent runs to the
    /// next start (or the end of the file).
    fn starts_from_index(idx: &[u8], size: u64) -> Vec<(u64, u16)> {
        let n = size.div_ceil(BLOCK) as usize;
        (0..n)
            .filter_map(|i| {
                let e = &idx[16 + 8 * i..24 + 8 * i];
                let t = u16::from_le_bytes([e[0], e[1]]) & 3;
                let ofs = u16::from_le_bytes([e[2], e[3]]) as u64;
                (t != TYPE_NONHEAD).then_some((i as u64 * BLOCK + ofs, t))
            })
            .collect()
    }

    #[test]
    fn text_compresses_and_index_points_at_every_start() {
        let text: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("line {} of the file\n", i % 977).into_bytes())
            .take(300_001)
            .collect();
        let c = compress(&text, 9, 4096).expect("compressible");
        assert!(c.blocks() * BLOCK < text.len() as u64 / 2);
        let size = text.len() as u64;
        let idx = c.index(size, 100);
        let starts = starts_from_index(&idx, size);
        let mut expect: Vec<(u64, u16)> = c
            .extents
            .iter()
            .map(|e| (e.start, if e.compressed { TYPE_HEAD } else { TYPE_PLAIN }))
            .collect();
        if !size.is_multiple_of(BLOCK) && expect.last().unwrap().0 / BLOCK != size / BLOCK {
            expect.push((size, TYPE_PLAIN));
        }
        assert_eq!(starts, expect);
        // Every compressed stream decodes to exactly its extent.
        let mut blk = 0usize;
        for (i, e) in c.extents.iter().enumerate() {
            let end = c.extents.get(i + 1).map_or(size, |n| n.start);
            let len = (end - e.start) as usize;
            let phys = &c.data[blk * 4096..(blk + e.blocks as usize) * 4096];
            let got = if e.compressed {
                let stream = &phys[phys.iter().position(|&b| b != 0).unwrap()..];
                let mut out = vec![0u8; len];
                lzzzz::lz4::decompress(stream, &mut out).unwrap();
                out
            } else {
                phys[..len].to_vec()
            };
            assert!(got == text[e.start as usize..end as usize], "extent {i}");
            blk += e.blocks as usize;
        }
    }

    #[test]
    fn random_data_stays_uncompressed() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let noise: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(compress(&noise, 9, 4096).is_none());
        assert!(compress(&[1u8; 4096], 9, 4096).is_none());
    }

    #[test]
    fn big_pclusters_carry_block_counts() {
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let c = compress(&text, 9, 65536).unwrap();
        assert!(c.big);
        let size = text.len() as u64;
        let idx = c.index(size, 7);
        assert_eq!(u16::from_le_bytes([idx[4], idx[5]]), ADVISE_BIG_PCLUSTER_1);
        // The first NONHEAD after lcluster 0's HEAD carries CBLKCNT | blocks.
        let d0 = u16::from_le_bytes([idx[16 + 8 + 4], idx[16 + 8 + 5]]);
        assert_eq!(d0, CBLKCNT | c.extents[0].blocks as u16);
    }
}
