//! Helpers shared by the fuzz targets.
//!
//! Several romkit readers work on files (positional reads, memory maps,
//! paths). The targets hand them the fuzz input as an anonymous in-memory
//! file (`memfd`), reachable by path through `/proc/self/fd`, so a run never
//! touches the disk and nothing is left behind.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;
use std::sync::Arc;

use romkit::format::source::FileSlice;

/// The fuzz input as a file.
pub struct MemFile {
    /// The open file.
    pub file: Arc<File>,
    /// A path that opens the same file.
    pub path: PathBuf,
    /// Its length.
    pub len: u64,
}

impl MemFile {
    /// A new in-memory file holding `bytes`.
    pub fn new(bytes: &[u8]) -> MemFile {
        // SAFETY: memfd_create takes a NUL-terminated name and flags; the
        // returned descriptor is owned by the File from here on.
        let fd = unsafe { libc::memfd_create(c"romkit-fuzz".as_ptr(), 0) };
        assert!(fd >= 0, "memfd_create: {}", io::Error::last_os_error());
        let mut file = unsafe { File::from_raw_fd(fd) };
        file.write_all(bytes).expect("write to memfd");
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        MemFile {
            file: Arc::new(file),
            path,
            len: bytes.len() as u64,
        }
    }

    /// A slice over the whole file, as the payload and sparse readers take.
    pub fn slice(&self) -> FileSlice {
        FileSlice::new(self.file.clone(), self.path.clone(), 0, self.len)
    }
}

/// A writer that accepts at most `left` bytes and then fails: reading a
/// file's content must stay bounded even when the image claims huge files.
pub struct Capped {
    /// Bytes still accepted.
    pub left: u64,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(io::Error::other("content cap reached"));
        }
        self.left -= buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Streams every regular file of `tree` into a [`Capped`] writer of
/// `cap` bytes in total; returns how many files were read without error.
pub fn read_all_files(tree: &romkit::fs::tree::Tree, cap: u64) -> usize {
    let mut ok = 0;
    let mut sink = Capped { left: cap };
    for (_path, id) in tree.walk() {
        if let romkit::fs::tree::Kind::File(data) = &tree.inode(id).kind {
            if data.stream(&mut sink).is_ok() {
                ok += 1;
            }
            if sink.left == 0 {
                break;
            }
        }
    }
    ok
}
