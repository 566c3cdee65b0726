//! Positional reads from a byte range of a file.
//!
//! A payload inside an OTA zip is a stored entry: a contiguous range of the zip
//! file. Reading it through positional reads (`pread`) lets every worker thread
//! fetch its own operation's data with no shared cursor, no lock and no
//! temporary copy of the payload.

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
        }
    }

    /// Opens a whole file as a slice.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(FileSlice::new(Arc::new(file), path, 0, len))
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
}

impl ReadAt for FileSlice {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_exact_at(buf, offset)
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
