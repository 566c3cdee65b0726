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
//! from theirs instead of doubling the build's page-cache footprint. A
//! [`Donor`] frees the cached pages of bytes a writer does not read, a little
//! at a time, just ahead of the writer's need for pages.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::ops::Range;
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
    /// A thread hashing the window ([`FileSlice::hash_ahead`]): a release
    /// waits until it has read past the released bytes.
    ahead: Option<Arc<Ahead>>,
    /// The CRC-32 of what is read, in order ([`FileSlice::crc_as_read`]).
    read_crc: Option<Arc<std::sync::Mutex<ReadCrc>>>,
}

/// The CRC-32 of a window taken as a reader goes through it from its start
/// ([`FileSlice::crc_as_read`]).
#[derive(Debug, Default)]
pub struct ReadCrc {
    crc: crc32fast::Hasher,
    /// Bytes of the window taken so far.
    next: u64,
    /// A read skipped bytes: no CRC of the whole window.
    gap: bool,
}

impl ReadCrc {
    fn feed(&mut self, offset: u64, b: &[u8]) {
        let end = offset + b.len() as u64;
        if offset > self.next {
            self.gap = true;
        } else if end > self.next {
            self.crc.update(&b[(self.next - offset) as usize..]);
            self.next = end;
        }
    }
}

/// How far a [`FileSlice::hash_ahead`] thread has read.
#[derive(Debug, Default)]
struct Ahead {
    /// Bytes of the window hashed so far (`u64::MAX` once the thread has
    /// stopped, whatever the reason: nothing waits for it then).
    done: std::sync::Mutex<u64>,
    moved: std::sync::Condvar,
    /// The hash is no longer wanted.
    stop: std::sync::atomic::AtomicBool,
}

impl Ahead {
    fn set(&self, n: u64) {
        *self.done.lock().unwrap_or_else(|e| e.into_inner()) = n;
        self.moved.notify_all();
    }

    /// Waits until the thread has read `[0, end)` of the window.
    fn wait_past(&self, end: u64) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        while *done < end {
            done = self.moved.wait(done).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The SHA-256 of a window being taken by [`FileSlice::hash_ahead`].
pub struct HashAhead {
    ahead: Arc<Ahead>,
    thread: Option<std::thread::JoinHandle<io::Result<[u8; 32]>>>,
}

impl HashAhead {
    /// Waits for the hash of the whole window.
    pub fn finish(mut self) -> io::Result<[u8; 32]> {
        let t = self.thread.take().expect("joined once");
        t.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

impl Drop for HashAhead {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.ahead
                .stop
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = t.join();
        }
    }
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
            ahead: None,
            read_crc: None,
        }
    }

    /// From now on, takes the CRC-32 of the bytes this slice (and any clone
    /// made after) reads, in the order read: the writer of a package that
    /// reads an image once from its start gets the image's CRC-32 with no
    /// pass of its own, for the read-back check to compare. Bytes read again
    /// count once; [`Self::read_crc`] says `None` unless every byte of the
    /// window was read and none was skipped on the way.
    pub fn crc_as_read(&mut self) {
        self.read_crc = Some(Arc::default());
    }

    /// The CRC-32 of the whole window as read since
    /// [`Self::crc_as_read`], if it was read from start to end.
    pub fn read_crc(&self) -> Option<u32> {
        let c = self.read_crc.as_ref()?.lock().ok()?;
        (!c.gap && c.next == self.len).then(|| c.crc.clone().finalize())
    }

    /// Starts hashing the whole window (SHA-256) on a thread of its own,
    /// from its start to its end, at the speed of reading it: a writer that
    /// frees what it reads ([`ReadAt::release`]) can then take the hash of
    /// a scratch image with no pass of its own. From now on a release of
    /// this slice (or a clone made after) waits until the thread has read
    /// past the released bytes, so every byte is hashed before it goes.
    pub fn hash_ahead(&mut self) -> HashAhead {
        let ahead = Arc::new(Ahead::default());
        let (reader, state) = (self.clone(), ahead.clone());
        self.ahead = Some(ahead.clone());
        let thread = std::thread::spawn(move || {
            let r = hash_in_order(&reader, &state);
            state.set(u64::MAX);
            r
        });
        HashAhead {
            ahead,
            thread: Some(thread),
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
    /// window) of a scratch file. Pages not yet written to the disk are
    /// punched out (freed without being written); when none of them is
    /// dirty, they are only dropped from the page cache ([`Self::forget`]):
    /// punching blocks already on the disk frees them, which a file system
    /// mounted with `discard` makes wait for the device (about 0.3 s per GB
    /// measured), while their pages are just as free either way.
    fn punch(&self, offset: u64, len: u64) {
        use std::os::fd::AsRawFd;
        const PAGE: u64 = 4096;
        let end = offset.saturating_add(len).min(self.len) + self.base;
        let start = (self.base + offset.min(self.len)).next_multiple_of(PAGE);
        let end = end / PAGE * PAGE;
        if !self.scratch || end <= start {
            return;
        }
        if let Some(a) = &self.ahead {
            a.wait_past(end - self.base);
        }
        if dirty_pages(&self.file, start, end - start) == Some(0) {
            self.forget(start - self.base, end - start);
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

    /// Drops the page-cache pages of `[offset, offset + len)` (within the
    /// window) that are not dirty; the bytes stay in the file, and a later
    /// read gets them from the disk. Unlike [`ReadAt::release`] this frees
    /// no disk blocks, so it never waits for the device to discard them (a
    /// file system mounted with `discard` does that synchronously).
    pub fn forget(&self, offset: u64, len: u64) {
        use std::os::fd::AsRawFd;
        let end = offset.saturating_add(len).min(self.len) + self.base;
        let start = self.base + offset.min(self.len);
        let (Ok(at), Ok(n)) = (
            libc::off_t::try_from(start),
            libc::off_t::try_from(end - start),
        ) else {
            return;
        };
        if n == 0 {
            return;
        }
        // SAFETY: posix_fadvise on a descriptor this slice owns, with no
        // pointer arguments; advice is only a hint, so failure changes
        // nothing.
        unsafe {
            libc::posix_fadvise(self.file.as_raw_fd(), at, n, libc::POSIX_FADV_DONTNEED);
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
        self.file.read_exact_at(buf, self.base + offset)?;
        if let Some(c) = &self.read_crc {
            c.lock()
                .unwrap_or_else(|e| e.into_inner())
                .feed(offset, buf);
        }
        Ok(())
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
        read_new(&self.file, len as usize, self.base + offset)
    }
}

/// Hashes `slice` from start to end, telling `state` how far it got.
fn hash_in_order(slice: &FileSlice, state: &Ahead) -> io::Result<[u8; 32]> {
    use sha2::{Digest, Sha256};
    const STEP: u64 = 4 << 20;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; STEP as usize];
    let mut at = 0u64;
    while at < slice.len {
        if state.stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(io::Error::other("stopped"));
        }
        let n = (slice.len - at).min(STEP) as usize;
        slice.read_exact_at(&mut buf[..n], at)?;
        h.update(&buf[..n]);
        at += n as u64;
        state.set(at);
    }
    Ok(h.finalize().into())
}

/// Dirty pages of `file` in `[offset, offset + len)`, by the `cachestat`
/// system call (Linux 6.5); `None` where it is missing.
fn dirty_pages(file: &File, offset: u64, len: u64) -> Option<u64> {
    use std::os::fd::AsRawFd;
    /// `cachestat`'s number: the same on every architecture.
    const SYS_CACHESTAT: libc::c_long = 451;
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    if len == 0 {
        return Some(0);
    }
    let range = Range { off: offset, len };
    let mut stat = Stat::default();
    // SAFETY: cachestat reads `range` and writes `stat`, both live and of
    // the kernel's layout (struct cachestat_range, struct cachestat).
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &raw const range,
            &raw mut stat,
            0u32,
        )
    };
    (rc == 0).then_some(stat.nr_dirty)
}

/// `len` bytes of `file` at `offset`, read into a new vector without
/// zeroing it first (which cost as much as the read for the blobs a payload
/// copies).
fn read_new(file: &File, len: usize, offset: u64) -> io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut v: Vec<u8> = Vec::with_capacity(len);
    let mut filled = 0usize;
    while filled < len {
        let at = libc::off_t::try_from(offset + filled as u64).map_err(io::Error::other)?;
        // SAFETY: pread writes at most `len - filled` bytes into the
        // vector's spare capacity, which starts `filled` bytes in.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                v.as_mut_ptr().add(filled).cast(),
                len - filled,
                at,
            )
        };
        match n {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            n => filled += n as usize,
        }
    }
    // SAFETY: the loop above initialised all `len` bytes.
    unsafe { v.set_len(len) };
    Ok(v)
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

/// Bytes of files that will not be read again, whose cached pages are
/// freed ([`FileSlice::forget`]) a little at a time while an output is
/// written ([`Donor::give`] before each write).
///
/// Why not all at once: a page freed and then written again at once is
/// cheap, while on a virtual machine a page freed in bulk goes back to the
/// host within seconds (free page reporting) and costs a fault to get again;
/// writing into new page-cache pages measured about 2 s per GB there, into
/// just-freed ones about 0.3 s.
#[derive(Default)]
pub struct Donor {
    /// Slices and the ranges of each still to free, in the order they are
    /// given.
    held: VecDeque<(FileSlice, VecDeque<Range<u64>>)>,
    /// Bytes still to free.
    left: u64,
}

impl Donor {
    /// Adds `ranges` of `slice`.
    pub fn add(&mut self, slice: FileSlice, ranges: impl IntoIterator<Item = Range<u64>>) {
        let ranges: VecDeque<Range<u64>> = ranges.into_iter().filter(|r| !r.is_empty()).collect();
        self.left += ranges.iter().map(|r| r.end - r.start).sum::<u64>();
        if !ranges.is_empty() {
            self.held.push_back((slice, ranges));
        }
    }

    /// Frees the next `bytes` bytes (or what is left).
    pub fn give(&mut self, mut bytes: u64) {
        while bytes > 0 {
            let Some((slice, ranges)) = self.held.front_mut() else {
                return;
            };
            let Some(r) = ranges.front_mut() else {
                self.held.pop_front();
                continue;
            };
            let n = bytes.min(r.end - r.start);
            slice.forget(r.start, n);
            r.start += n;
            bytes -= n;
            self.left -= n;
            if r.is_empty() {
                ranges.pop_front();
            }
        }
    }

    /// Bytes not yet freed.
    pub fn left(&self) -> u64 {
        self.left
    }
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

/// Which 4 KiB pages of `path` are in the page cache, by `mincore` over a
/// mapping (for tests of what is dropped from it).
#[cfg(test)]
pub(crate) fn cached_pages(path: &Path) -> Vec<bool> {
    let file = File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    let pages = len.div_ceil(4096);
    let mut vec = vec![0u8; pages];
    // SAFETY: a read-only shared mapping of `len` bytes of an open
    // file, only passed to mincore and unmapped before returning.
    unsafe {
        use std::os::fd::AsRawFd;
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        assert_eq!(libc::mincore(p, len, vec.as_mut_ptr()), 0);
        libc::munmap(p, len);
    }
    vec.iter().map(|b| b & 1 == 1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// Allocated bytes of `path`.
    fn allocated(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().blocks() * 512
    }

    /// Released pages of a scratch file already on the disk leave the page
    /// cache and keep their blocks and bytes (freeing blocks would wait
    /// for the device's discard).
    #[test]
    fn released_clean_scratch_pages_are_dropped() {
        const U: u64 = 2 << 20;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        let data: Vec<u8> = (0..8 * U).map(|i| (i % 251) as u8 | 1).collect();
        std::fs::write(&path, &data).unwrap();
        File::open(&path).unwrap().sync_all().unwrap();
        std::fs::read(&path).unwrap();
        let scratch = FileSlice::open_scratch(&path).unwrap();
        if dirty_pages(scratch.file(), 0, 8 * U).is_none() || cached(&path).contains(&false) {
            eprintln!("skipped: no cachestat here, or the pages left the cache on their own");
            return;
        }
        let before = allocated(&path);
        scratch.release(2 * U, 4 * U);
        let c = cached(&path);
        let per = (U / 4096) as usize;
        assert!(c[..2 * per].iter().all(|&x| x));
        assert!(c[2 * per..6 * per].iter().all(|&x| !x));
        assert_eq!(allocated(&path), before);
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    /// The CRC-32 taken as read is the window's once every byte was read
    /// from the start, bytes read again counting once; a skipped range or a
    /// window not read to its end gives none.
    #[test]
    fn crc_as_read_is_the_windows_once_read_through() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let read = |ranges: &[(usize, usize)]| {
            let mut s = FileSlice::open(&path).unwrap();
            s.crc_as_read();
            let clone = s.clone();
            for &(a, b) in ranges {
                let mut buf = vec![0u8; b - a];
                clone.read_exact_at(&mut buf, a as u64).unwrap();
            }
            s.read_crc()
        };
        let whole = Some(crc32fast::hash(&data));
        assert_eq!(read(&[(0, 100_000), (100_000, 300_000)]), whole);
        // Read again, overlapping: counted once.
        assert_eq!(
            read(&[(0, 100_000), (50_000, 200_000), (0, 10), (200_000, 300_000)]),
            whole
        );
        assert_eq!(read(&[(0, 100_000), (100_001, 300_000)]), None);
        assert_eq!(read(&[(0, 100_000), (100_000, 299_999)]), None);
        // Not asked for: none.
        let s = FileSlice::open(&path).unwrap();
        let mut buf = vec![0u8; data.len()];
        s.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(s.read_crc(), None);
    }

    /// A slice hashed ahead gets the whole window's SHA-256 even when a
    /// writer frees it as it reads, in any order: each release waits for
    /// the hash to pass it.
    #[test]
    fn hash_ahead_sees_every_byte_before_it_is_freed() {
        use sha2::{Digest, Sha256};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        let data: Vec<u8> = (0..(40 << 20) + 12_345u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 1)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let mut scratch = FileSlice::open_scratch(&path).unwrap();
        let hash = scratch.hash_ahead();
        // The last part first, then the rest, as a writer would in pieces.
        let len = data.len() as u64;
        let mut buf = vec![0u8; 1 << 20];
        for (from, to) in [(len - (3 << 20), len), (0, len - (3 << 20))] {
            let mut at = from;
            while at < to {
                let n = (to - at).min(buf.len() as u64) as usize;
                scratch.read_exact_at(&mut buf[..n], at).unwrap();
                assert_eq!(buf[..n], data[at as usize..at as usize + n]);
                scratch.release(at, n as u64);
                at += n as u64;
            }
        }
        assert_eq!(hash.finish().unwrap()[..], Sha256::digest(&data)[..]);
        // Each whole page is freed (zeros where it was punched) or still
        // the source's (dropped from the cache once on the disk).
        let now = std::fs::read(&path).unwrap();
        assert_eq!(now.len(), data.len());
        for (a, b) in now.chunks(4096).zip(data.chunks(4096)).skip(1) {
            assert!(a == b || a.iter().all(|&x| x == 0));
        }
    }

    /// `read_vec` reads inside the window, refuses a read past its end and
    /// reports a file cut short under it.
    #[test]
    fn read_vec_in_window_and_short_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let s = FileSlice::new(file, &path, 1000, 90_000);
        assert_eq!(s.read_vec(5, 70_000).unwrap(), data[1005..71_005]);
        assert_eq!(s.read_vec(0, 0).unwrap(), Vec::<u8>::new());
        assert!(s.read_vec(80_000, 10_001).is_err());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(50_000)
            .unwrap();
        let e = s.read_vec(40_000, 20_000).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    use super::cached_pages as cached;

    /// A donor drops the cached pages it is given, in the order they were
    /// added, a part at a time and never more than it holds; the bytes
    /// stay. (Units of 2 MiB: the page cache may hold a file in folios
    /// larger than a page, which are dropped only whole.)
    #[test]
    fn donor_forgets_in_order() {
        const U: u64 = 2 << 20;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let data: Vec<u8> = (0..16 * U).map(|i| (i % 251) as u8).collect();
        for p in [&a, &b] {
            std::fs::write(p, &data).unwrap();
            // Clean pages (dirty ones are not dropped), read back in.
            File::open(p).unwrap().sync_all().unwrap();
            std::fs::read(p).unwrap();
        }
        let gone = |p: &Path| -> Vec<u64> {
            let c = cached(p);
            let per = (U / 4096) as usize;
            (0..16)
                .filter(|&i| !c[i as usize * per..(i as usize + 1) * per].contains(&true))
                .collect()
        };
        if !gone(&a).is_empty() || !gone(&b).is_empty() {
            eprintln!("skipped: the page cache dropped the files' pages on its own");
            return;
        }
        let mut donor = Donor::default();
        donor.add(FileSlice::open(&a).unwrap(), std::iter::once(U..3 * U));
        donor.add(
            FileSlice::open(&b).unwrap(),
            [0..U, 8 * U..8 * U, 10 * U..12 * U],
        );
        assert_eq!(donor.left(), 5 * U);
        donor.give(U);
        assert_eq!(gone(&a), [1]);
        assert_eq!(gone(&b), Vec::<u64>::new());
        donor.give(2 * U);
        assert_eq!(gone(&a), [1, 2]);
        assert_eq!(gone(&b), [0]);
        donor.give(100 * U);
        assert_eq!(donor.left(), 0);
        assert_eq!(gone(&b), [0, 10, 11]);
        assert_eq!(std::fs::read(&b).unwrap(), data);
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
