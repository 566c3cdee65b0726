//! Positional reads from a byte range of a file.
//!
//! A payload inside an OTA zip is a stored entry: a contiguous range of the zip
//! file. Reading it through positional reads (`pread`) lets every worker thread
//! fetch its own operation's data with no shared cursor, no lock and no
//! temporary copy of the payload.
//!
//! A slice opened with [`FileSlice::open_scratch`] is a scratch file that is
//! read once: [`ReadAt::release`] frees the blocks behind what was read
//! (punches a hole), so a package written from scratch images takes its pages
//! from theirs instead of doubling the build's page-cache footprint.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A window `[base, base + len)` of a file, read with positional reads.
#[derive(Clone, Debug)]
pub struct FileSlice {
    file: Arc<File>,
    path: PathBuf,
    base: u64,
    len: u64,
    /// Released ranges are freed (see [`FileSlice::open_scratch`]).
    scratch: bool,
}

impl FileSlice {
    /// A window over an open file. `base + len` must lie within the file; the
    /// caller has checked it against the file's real size.
    pub fn new(file: Arc<File>, path: impl Into<PathBuf>, base: u64, len: u64) -> Self {
        FileSlice {
            file,
            path: path.into(),
            base,
            len,
            scratch: false,
        }
    }

    /// Opens a whole file as a slice.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(FileSlice::new(Arc::new(file), path, 0, len))
    }

    /// Opens a whole scratch file (one the caller made and nothing else
    /// reads): what [`ReadAt::release`] is told will not be read again is
    /// freed from it (its size stays). For a file system that cannot punch
    /// holes, releasing does nothing.
    pub fn open_scratch(path: &Path) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let len = file.metadata()?.len();
        let mut s = FileSlice::new(Arc::new(file), path, 0, len);
        s.scratch = true;
        Ok(s)
    }

    /// Frees the whole 4 KiB pages of `[offset, offset + len)` (within the
    /// window) of a scratch file.
    fn punch(&self, offset: u64, len: u64) {
        use std::os::fd::AsRawFd;
        const PAGE: u64 = 4096;
        let end = offset.saturating_add(len).min(self.len) + self.base;
        let start = (self.base + offset.min(self.len)).next_multiple_of(PAGE);
        let end = end / PAGE * PAGE;
        if !self.scratch || end <= start {
            return;
        }
        let (Ok(at), Ok(n)) = (
            libc::off_t::try_from(start),
            libc::off_t::try_from(end - start),
        ) else {
            return;
        };
        // SAFETY: fallocate on a descriptor this slice owns, with no pointer
        // arguments; a failure (EOPNOTSUPP and the like) only keeps the bytes.
        unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                at,
                n,
            );
        }
    }

    /// Length of the window.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file the window belongs to (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying file (for copies between files).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Where the window starts in its file.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Fills `buf` from `offset` within the window. Reading past the window's
    /// end is an `UnexpectedEof` error, never a short read.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "read of {} bytes at offset {offset} past the end ({} bytes)",
                        buf.len(),
                        self.len
                    ),
                )
            })?;
        debug_assert!(end <= self.len);
        self.file.read_exact_at(buf, self.base + offset)
    }

    /// Reads `len` bytes at `offset` into a new vector.
    pub fn read_vec(&self, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        if offset.checked_add(len).is_none_or(|e| e > self.len) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "read of {len} bytes at offset {offset} past the end ({} bytes)",
                    self.len
                ),
            ));
        }
        let mut v = vec![0u8; len as usize];
        self.read_exact_at(&mut v, offset)?;
        Ok(v)
    }
}

/// Random-access input: a file slice, an image map, bytes in memory.
pub trait ReadAt: Sync {
    /// Fills `buf` from `offset`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// Says that `[offset, offset + len)` will not be read again: a source
    /// made of scratch files frees those bytes; any other keeps them (the
    /// default).
    fn release(&self, _offset: u64, _len: u64) {}
}

impl ReadAt for FileSlice {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_exact_at(buf, offset)
    }

    fn release(&self, offset: u64, len: u64) {
        self.punch(offset, len);
    }
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_exact_at(buf, offset)
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let o = usize::try_from(offset).map_err(io::Error::other)?;
        let src = self
            .get(o..o + buf.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// Allocated bytes of `path`.
    fn allocated(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().blocks() * 512
    }

    /// A scratch slice frees the whole pages of what is released (its size
    /// stays, the bytes read as zeros); any other slice keeps its bytes.
    #[test]
    fn released_scratch_ranges_are_freed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        let data: Vec<u8> = (0..64 * 4096u32).map(|i| (i % 251) as u8 | 1).collect();
        std::fs::write(&path, &data).unwrap();
        let plain = FileSlice::open(&path).unwrap();
        plain.release(0, data.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), data);

        let scratch = FileSlice::open_scratch(&path).unwrap();
        let before = allocated(&path);
        // 100..(8 pages + 100): only pages 1 to 7 are whole.
        scratch.release(100, 8 * 4096);
        let now = std::fs::read(&path).unwrap();
        assert_eq!(now.len(), data.len());
        assert_eq!(now[..4096], data[..4096]);
        assert!(now[4096..8 * 4096].iter().all(|&b| b == 0));
        assert_eq!(now[8 * 4096..], data[8 * 4096..]);
        let after = allocated(&path);
        if after == before {
            eprintln!("the temporary folder's file system punches no holes");
        } else {
            assert!(after <= before - 7 * 4096, "{before} -> {after}");
        }
    }
}
