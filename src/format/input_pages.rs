//! Handing the page cache of an input read once on to what a build writes.
//!
//! On a virtual machine whose host takes back the memory its guest leaves
//! free (virtio-balloon free page reporting), a page the kernel has not used
//! for a couple of seconds costs about ten times more to fill than one freed
//! a moment ago: writing 2 GiB into fresh page-cache pages measured 5.1 s of
//! system time on the development machine, into the pages of a file just
//! dropped from the cache 0.5 s. A build that decodes every partition of a
//! payload writes gigabytes of images into the page cache, and reads every
//! byte of its input twice: once in order, for the manifest's hash of the
//! input, and once per operation, in the order the partitions decode; after
//! that it never reads the input again.
//!
//! [`InputPages`] keeps each 2 MiB window of the input both readers are done
//! with, and the images' writer drops as many of them from the page cache as
//! it is about to write ([`InputPages::give`]), so that its writes take those
//! pages. The writer must drop them itself: a page freed on one core goes to
//! that core's list of free pages, and only there is it taken again at once
//! (dropping on the reading threads measured no gain at all). Invariants:
//! - a window is given only once the in-order reader ([`InputPages::hash`])
//!   has passed its end *and* every operation read counted in it at
//!   construction has been reported ([`InputPages::read`]); a read that was
//!   not counted changes nothing;
//! - dropping is advice to the kernel (`POSIX_FADV_DONTNEED` on clean
//!   pages): the file is unchanged, and a later read by anything gets the
//!   same bytes from the disk.
//!
//! Windows are 2 MiB-aligned because the page cache holds a file in folios
//! of up to 2 MiB, each aligned to its size, and drops a folio only whole.

use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::source::FileSlice;

/// Size (and alignment) of the windows dropped at once.
const WINDOW: u64 = 2 << 20;

/// The cached pages of an input read once in order and once by operations,
/// dropped window by window once both are done with them (see the module's
/// documentation).
#[derive(Debug)]
pub struct InputPages {
    /// The whole input file.
    file: FileSlice,
    /// For each window, the counted reads not yet reported.
    pending: Vec<AtomicU32>,
    /// Bytes from the start the in-order reader has passed.
    hashed: AtomicU64,
    /// The hash is no longer wanted ([`InputPages::stop`]).
    stopped: AtomicBool,
    /// Windows both readers are done with, not yet dropped, oldest first.
    ready: Mutex<VecDeque<usize>>,
}

impl InputPages {
    /// Tracks `file` (a whole file: its window must start at 0) for `reads`,
    /// the byte ranges that will each be reported once read.
    pub fn new(file: FileSlice, reads: impl IntoIterator<Item = Range<u64>>) -> Self {
        let mut pending = vec![0u32; file.len().div_ceil(WINDOW) as usize];
        for r in reads {
            for w in windows(&r, file.len()) {
                pending[w] = pending[w].saturating_add(1);
            }
        }
        InputPages {
            file,
            pending: pending.into_iter().map(AtomicU32::new).collect(),
            hashed: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            ready: Mutex::new(VecDeque::new()),
        }
    }

    /// End of window `w` (the file's end for the last one).
    fn window_end(&self, w: usize) -> u64 {
        ((w as u64 + 1) * WINDOW).min(self.file.len())
    }

    /// Reports that `r` (file offsets), counted at construction, has been
    /// read; the windows it completes are ready to go if the in-order
    /// reader has passed them.
    pub fn read(&self, r: Range<u64>) {
        for w in windows(&r, self.file.len()) {
            let Some(count) = self.pending.get(w) else {
                return;
            };
            let last = count
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
                .is_ok_and(|before| before == 1);
            // Either this load sees the in-order reader past the window, or
            // that reader, storing its position before it loads this
            // count, sees the count at zero: one of the two (or both) hands
            // it on.
            if last && self.hashed.load(Ordering::SeqCst) >= self.window_end(w) {
                self.ready(w);
            }
        }
    }

    /// Reads the whole file in order and returns its SHA-256, handing on
    /// each window it passes that has no read left to come. After
    /// [`InputPages::stop`] it ends early with an `Interrupted` error.
    pub fn hash(&self) -> io::Result<[u8; 32]> {
        let mut h = Sha256::new();
        let mut buf = vec![0u8; WINDOW as usize];
        for w in 0..self.pending.len() {
            if self.stopped.load(Ordering::Relaxed) {
                return Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    "the input's hash was no longer wanted",
                ));
            }
            let start = w as u64 * WINDOW;
            let end = self.window_end(w);
            let chunk = &mut buf[..(end - start) as usize];
            self.file.read_exact_at(chunk, start)?;
            h.update(&*chunk);
            self.hashed.store(end, Ordering::SeqCst);
            if self.pending[w].load(Ordering::SeqCst) == 0 {
                self.ready(w);
            }
        }
        Ok(h.finalize().into())
    }

    /// Makes a running [`InputPages::hash`] stop at its next window (a
    /// build that failed no longer wants it).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Drops ready windows from the page cache, oldest first, until at
    /// least `bytes` are gone or none is left: called by a writer just
    /// before it writes `bytes` into the page cache.
    pub fn give(&self, bytes: u64) {
        let mut given = 0;
        while given < bytes {
            let next = self
                .ready
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            let Some(w) = next else {
                return;
            };
            let start = w as u64 * WINDOW;
            let len = self.window_end(w) - start;
            self.file.forget(start, len);
            given += len;
        }
    }

    fn ready(&self, w: usize) {
        // Both readers may hand the same window on (see `read`); dropping
        // it twice only costs a call.
        self.ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(w);
    }
}

/// The windows `r` overlaps in a file of `len` bytes.
fn windows(r: &Range<u64>, len: u64) -> Range<usize> {
    if r.is_empty() {
        return 0..0;
    }
    let first = (r.start / WINDOW) as usize;
    let last = r.end.div_ceil(WINDOW).min(len.div_ceil(WINDOW)) as usize;
    first.min(last)..last
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Pages of `path` in the page cache.
    fn cached_pages(path: &Path) -> usize {
        crate::format::source::cached_pages(path)
            .iter()
            .filter(|&&c| c)
            .count()
    }

    /// Writes `data` to `path`, on the disk (the page cache drops only
    /// clean pages), and reads it into the page cache.
    fn write_cached(path: &Path, data: &[u8]) {
        std::fs::write(path, data).unwrap();
        std::fs::File::open(path).unwrap().sync_all().unwrap();
        let _ = std::fs::read(path).unwrap();
    }

    #[test]
    fn windows_go_once_both_readers_are_done() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input");
        // Three windows and a bit; the last one is short.
        let len = 3 * WINDOW + 12345;
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        write_cached(&path, &data);
        // A file system whose files live in the page cache (tmpfs) ignores
        // the advice to drop them: nothing to test there.
        FileSlice::open(&path).unwrap().forget(0, len);
        if cached_pages(&path) != 0 {
            eprintln!("skipped: this file system keeps its files' pages (tmpfs?)");
            return;
        }
        let _ = std::fs::read(&path).unwrap();
        let before = cached_pages(&path);
        if before != len.div_ceil(4096) as usize {
            eprintln!("skipped: the page cache does not keep the test file");
            return;
        }
        // Reads: one inside window 0, one across windows 1 and 2; nothing
        // counted in window 3.
        let reads = [100..5000, WINDOW + 10..2 * WINDOW + 20];
        let pages = InputPages::new(FileSlice::open(&path).unwrap(), reads.clone());
        // A read that was not counted changes nothing.
        pages.read(3 * WINDOW..3 * WINDOW + 10);
        // Operations first: nothing is ready before the in-order reader
        // passes.
        pages.read(reads[0].clone());
        pages.give(u64::MAX);
        assert_eq!(cached_pages(&path), before);
        let hash = pages.hash().unwrap();
        assert_eq!(hash, <[u8; 32]>::from(Sha256::digest(&data)));
        // Windows 0 (read, then passed) and 3 (no read counted) are ready;
        // 1 and 2 wait for their read. Nothing goes until it is given.
        assert_eq!(cached_pages(&path), before);
        let window_pages = (WINDOW / 4096) as usize;
        // One byte asked for: one window, the oldest, goes.
        pages.give(1);
        assert_eq!(cached_pages(&path), before - window_pages);
        pages.give(u64::MAX);
        assert_eq!(cached_pages(&path), 2 * window_pages);
        pages.read(reads[1].clone());
        pages.give(2 * WINDOW);
        assert_eq!(cached_pages(&path), 0);
        // The bytes are the file's, read again from the disk.
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    #[test]
    fn a_stopped_hash_ends_with_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input");
        std::fs::write(&path, vec![1u8; 3 * WINDOW as usize]).unwrap();
        let pages = InputPages::new(FileSlice::open(&path).unwrap(), []);
        pages.stop();
        let e = pages.hash().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Interrupted);
        // Stopped before the first window: nothing was passed.
        assert_eq!(pages.hashed.load(Ordering::SeqCst), 0);
    }
}
