//! A random-access view of a partition image, whether stored raw, as one
//! Android sparse image or as several sparse parts that together cover it.
//!
//! The view is a sorted list of segments (file bytes or a 4-byte fill
//! pattern); everything between them reads as zeros. Copying a range of the
//! image to an output file touches only the segments in that range, with
//! `copy_file_range` where the kernel allows it (no copy through user space)
//! and positional reads and writes otherwise, so that many ranges can be
//! copied in parallel.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::format::source::FileSlice;
use crate::format::sparse::{ChunkKind, SparseError, SparseFile};

/// Why the files of an image cannot be opened; each names its file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Opening or reading the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// One of several files is not a sparse image.
    #[error("{}: not an Android sparse image; only sparse parts can be merged", path.display())]
    NotSparse {
        /// The file.
        path: PathBuf,
    },
    /// A sparse file (or the set of parts) is malformed.
    #[error("{}: {source}", path.display())]
    Sparse {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: SparseError,
    },
}

/// Where a segment's bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegData {
    /// Bytes of source `src` from offset `off`.
    File {
        /// Index into [`ImageMap::sources`].
        src: usize,
        /// Offset in that source.
        off: u64,
    },
    /// A 4-byte pattern repeated (never all zeros: zero fills are dropped).
    Fill([u8; 4]),
}

/// A run of defined bytes of the image.
#[derive(Clone, Copy, Debug)]
pub struct Seg {
    /// Offset in the image.
    pub start: u64,
    /// Length.
    pub len: u64,
    /// Content.
    pub data: SegData,
}

/// A random-access view of an image.
#[derive(Clone, Debug)]
pub struct ImageMap {
    /// Size of the image.
    pub size: u64,
    /// The files the segments read from.
    pub sources: Vec<FileSlice>,
    /// Defined runs, sorted, not overlapping.
    pub segs: Vec<Seg>,
    /// The sparse parts, when the image is stored sparse (for CRC checks).
    pub sparse: Vec<SparseFile>,
}

impl ImageMap {
    /// A raw image: the whole file.
    pub fn raw(src: FileSlice) -> Self {
        let size = src.len();
        ImageMap {
            size,
            segs: if size == 0 {
                Vec::new()
            } else {
                vec![Seg {
                    start: 0,
                    len: size,
                    data: SegData::File { src: 0, off: 0 },
                }]
            },
            sources: vec![src],
            sparse: Vec::new(),
        }
    }

    /// Merges sparse parts that together describe one image (each spanning
    /// the whole image, as xiaomi.eu's `super.img.0 … N`). Parts must agree on
    /// block size and block count, and no block may be defined by two of them.
    /// The error names the part (by index) and what is wrong.
    pub fn from_sparse(parts: Vec<SparseFile>) -> Result<Self, (usize, SparseError)> {
        let Some(first) = parts.first() else {
            return Err((
                0,
                SparseError::Invalid {
                    offset: 0,
                    msg: "no sparse parts".into(),
                },
            ));
        };
        let (bs, total) = (first.header.block_size, first.header.total_blocks);
        let mut all: Vec<(u64, u64, SegData, usize, u64)> = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            if p.header.block_size != bs || p.header.total_blocks != total {
                return Err((
                    i,
                    SparseError::Invalid {
                        offset: 12,
                        msg: format!(
                            "part describes {} blocks of {} bytes, part 0 {total} blocks of {bs} bytes",
                            p.header.total_blocks, p.header.block_size
                        ),
                    },
                ));
            }
            let bs = u64::from(bs);
            for c in &p.chunks {
                let data = match c.kind {
                    ChunkKind::Raw => SegData::File {
                        src: i,
                        off: c.data,
                    },
                    ChunkKind::Fill(p) => SegData::Fill(p),
                    _ => continue,
                };
                if c.blocks > 0 {
                    all.push((
                        u64::from(c.block) * bs,
                        u64::from(c.blocks) * bs,
                        data,
                        i,
                        c.offset,
                    ));
                }
            }
        }
        all.sort_by_key(|s| s.0);
        for w in all.windows(2) {
            if w[0].0 + w[0].1 > w[1].0 {
                return Err((
                    w[1].3,
                    SparseError::Invalid {
                        offset: w[1].4,
                        msg: format!(
                            "chunk defines image bytes from {} that part {} (chunk at offset {}) defines too",
                            w[1].0, w[0].3, w[0].4
                        ),
                    },
                ));
            }
        }
        let mut segs: Vec<Seg> = Vec::with_capacity(all.len());
        for (start, len, data, _, _) in all {
            if data == SegData::Fill([0; 4]) {
                continue;
            }
            // Raw chunks that continue each other in the same file merge into
            // one segment (fewer, larger copies).
            if let Some(last) = segs.last_mut()
                && let (SegData::File { src: a, off: o }, SegData::File { src: b, off: p }) =
                    (last.data, data)
                && a == b
                && last.start + last.len == start
                && o + last.len == p
            {
                last.len += len;
                continue;
            }
            segs.push(Seg { start, len, data });
        }
        Ok(ImageMap {
            size: first.image_size(),
            sources: parts.iter().map(|p| p.source.clone()).collect(),
            segs,
            sparse: parts,
        })
    }

    /// Opens the files of one image: a raw image, a sparse image, or several
    /// sparse parts. Errors name the file.
    pub fn open_files(paths: &[&Path]) -> Result<Self, OpenError> {
        let mut sparse = Vec::new();
        for p in paths {
            let io_err = |source| OpenError::Io {
                path: p.to_path_buf(),
                source,
            };
            let src = FileSlice::open(p).map_err(io_err)?;
            let mut head = [0u8; 4];
            if src.len() >= 4 {
                src.read_exact_at(&mut head, 0).map_err(io_err)?;
            }
            if !crate::format::sparse::Header::is_sparse(&head) {
                if paths.len() == 1 {
                    return Ok(ImageMap::raw(src));
                }
                return Err(OpenError::NotSparse {
                    path: p.to_path_buf(),
                });
            }
            sparse.push(SparseFile::open(src).map_err(|source| OpenError::Sparse {
                path: p.to_path_buf(),
                source,
            })?);
        }
        ImageMap::from_sparse(sparse).map_err(|(i, source)| OpenError::Sparse {
            path: paths[i].to_path_buf(),
            source,
        })
    }

    /// Whether the image is stored sparse.
    pub fn is_sparse(&self) -> bool {
        !self.sparse.is_empty()
    }

    /// Index of the first segment ending after `off`.
    fn first_seg(&self, off: u64) -> usize {
        self.segs.partition_point(|s| s.start + s.len <= off)
    }

    /// Reads `buf.len()` bytes at `off` (zeros where nothing is defined).
    pub fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        let end = off
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "read of {} bytes at {off} past the image's end ({} bytes)",
                        buf.len(),
                        self.size
                    ),
                )
            })?;
        // Zeros only between the segments: the bytes they cover are
        // written once (a raw image's whole read is one file read).
        let mut filled = off;
        for s in &self.segs[self.first_seg(off)..] {
            if s.start >= end {
                break;
            }
            let a = s.start.max(off);
            let b = (s.start + s.len).min(end);
            if a > filled {
                buf[(filled - off) as usize..(a - off) as usize].fill(0);
            }
            filled = filled.max(b);
            let dst = &mut buf[(a - off) as usize..(b - off) as usize];
            match s.data {
                SegData::File { src, off: so } => {
                    self.sources[src].read_exact_at(dst, so + (a - s.start))?
                }
                SegData::Fill(p) => {
                    let phase = ((a - s.start) % 4) as usize;
                    for (i, d) in dst.iter_mut().enumerate() {
                        *d = p[(phase + i) % 4];
                    }
                }
            }
        }
        buf[(filled - off) as usize..].fill(0);
        Ok(())
    }

    /// Reads `len` bytes at `off` into a new vector.
    pub fn read_vec(&self, off: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.read_at(&mut v, off)?;
        Ok(v)
    }

    /// Copies image bytes `[off, off + len)` to `dest` at `dest_off`. Bytes
    /// the image leaves undefined are not written: `dest` must read as zeros
    /// there already (a file freshly sized with `set_len`).
    pub fn copy_to(&self, off: u64, len: u64, dest: &File, dest_off: u64) -> io::Result<()> {
        let end = off + len;
        if end > self.size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "range {off}..{end} runs past the image's end ({} bytes)",
                    self.size
                ),
            ));
        }
        for s in &self.segs[self.first_seg(off)..] {
            if s.start >= end {
                break;
            }
            let a = s.start.max(off);
            let b = (s.start + s.len).min(end);
            let d = dest_off + (a - off);
            match s.data {
                SegData::File { src, off: so } => {
                    let src = &self.sources[src];
                    copy_between(src.file(), src.base() + so + (a - s.start), dest, d, b - a)?
                }
                SegData::Fill(p) => {
                    let phase = ((a - s.start) % 4) as usize;
                    let mut pat = [0u8; 4];
                    for (i, x) in pat.iter_mut().enumerate() {
                        *x = p[(phase + i) % 4];
                    }
                    let n = (b - a).min(1 << 20) as usize;
                    let mut buf = vec![0u8; n.div_ceil(4) * 4];
                    crate::format::sparse::fill_pattern(&mut buf, pat);
                    let mut done = 0u64;
                    while done < b - a {
                        let k = (b - a - done).min(buf.len() as u64) as usize;
                        dest.write_all_at(&buf[..k], d + done)?;
                        done += k as u64;
                    }
                }
            }
        }
        Ok(())
    }

    /// Bytes of file data (not fills) in `[off, off + len)`: the work a copy does.
    pub fn data_bytes(&self, off: u64, len: u64) -> u64 {
        let end = off + len;
        self.segs[self.first_seg(off)..]
            .iter()
            .take_while(|s| s.start < end)
            .map(|s| (s.start + s.len).min(end) - s.start.max(off))
            .sum()
    }
}

/// One range to copy: image bytes `[off, off + len)` of `map` to `dest` at `dest_off`.
pub struct CopyTask<'a> {
    /// The image.
    pub map: &'a ImageMap,
    /// Offset in the image.
    pub off: u64,
    /// Length.
    pub len: u64,
    /// Output file (index into the `dests` of [`copy_all`]).
    pub dest: usize,
    /// Offset in the output.
    pub dest_off: u64,
}

/// Copies every task, split into pieces of at most 32 MiB, on `jobs` threads.
pub fn copy_all(tasks: &[CopyTask<'_>], dests: &[&File], jobs: usize) -> io::Result<()> {
    const PIECE: u64 = 32 << 20;
    let mut pieces = Vec::new();
    for (i, t) in tasks.iter().enumerate() {
        let mut o = 0;
        while o < t.len {
            let n = (t.len - o).min(PIECE);
            pieces.push((i, o, n));
            o += n;
        }
    }
    let run = || {
        pieces.par_iter().try_for_each(|&(i, o, n)| {
            let t = &tasks[i];
            t.map.copy_to(t.off + o, n, dests[t.dest], t.dest_off + o)
        })
    };
    match rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
    {
        Ok(pool) => pool.install(run),
        Err(_) => run(),
    }
}

static NO_COPY_FILE_RANGE: AtomicBool = AtomicBool::new(false);

/// Copies `len` bytes between two files at given offsets.
pub fn copy_between(src: &File, soff: u64, dst: &File, doff: u64, len: u64) -> io::Result<()> {
    let (mut so, mut d, mut left) = (soff, doff, len);
    if !NO_COPY_FILE_RANGE.load(Ordering::Relaxed) {
        while left > 0 {
            let mut a = so as libc::loff_t;
            let mut b = d as libc::loff_t;
            let n = left.min(1 << 30) as usize;
            // SAFETY: both descriptors are open for the duration of the call
            // and the offsets are passed by pointer to locals.
            let r = unsafe {
                libc::copy_file_range(src.as_raw_fd(), &mut a, dst.as_raw_fd(), &mut b, n, 0)
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(
                        libc::EXDEV | libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL | libc::EBADF,
                    ) => {
                        NO_COPY_FILE_RANGE.store(true, Ordering::Relaxed);
                        break;
                    }
                    Some(libc::EINTR) => continue,
                    _ => return Err(e),
                }
            }
            if r == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("source ends before offset {so}"),
                ));
            }
            so += r as u64;
            d += r as u64;
            left -= r as u64;
        }
    }
    let mut buf = vec![0u8; left.min(1 << 20) as usize];
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        src.read_exact_at(&mut buf[..n], so)?;
        dst.write_all_at(&buf[..n], d)?;
        so += n as u64;
        d += n as u64;
        left -= n as u64;
    }
    Ok(())
}

impl crate::format::source::ReadAt for ImageMap {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        ImageMap::read_at(self, buf, offset)
    }

    fn release(&self, offset: u64, len: u64) {
        let end = offset.saturating_add(len).min(self.size);
        for s in &self.segs[self.first_seg(offset)..] {
            if s.start >= end {
                break;
            }
            if let SegData::File { src, off } = s.data {
                let a = s.start.max(offset);
                let b = (s.start + s.len).min(end);
                if a < b {
                    crate::format::source::ReadAt::release(
                        &self.sources[src],
                        off + (a - s.start),
                        b - a,
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read over file bytes, a fill and the gaps around them gives each
    /// its bytes and zeros in the gaps, whatever the buffer held before.
    #[test]
    fn reads_zeros_only_between_segments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("src");
        let data: Vec<u8> = (0..100u8).collect();
        std::fs::write(&path, &data).unwrap();
        let map = ImageMap {
            size: 200,
            sources: vec![FileSlice::open(&path).unwrap()],
            segs: vec![
                Seg {
                    start: 10,
                    len: 50,
                    data: SegData::File { src: 0, off: 20 },
                },
                Seg {
                    start: 60,
                    len: 8,
                    data: SegData::Fill([1, 2, 3, 4]),
                },
                Seg {
                    start: 100,
                    len: 20,
                    data: SegData::File { src: 0, off: 0 },
                },
            ],
            sparse: Vec::new(),
        };
        let mut want = [0u8; 200];
        want[10..60].copy_from_slice(&data[20..70]);
        want[60..68].copy_from_slice(&[1, 2, 3, 4, 1, 2, 3, 4]);
        want[100..120].copy_from_slice(&data[..20]);
        for (a, b) in [
            (0, 200),
            (5, 12),
            (15, 105),
            (62, 99),
            (61, 64),
            (119, 200),
            (0, 0),
        ] {
            let mut buf = vec![0xee; b - a];
            map.read_at(&mut buf, a as u64).unwrap();
            assert_eq!(buf, want[a..b], "{a}..{b}");
        }
    }
}
