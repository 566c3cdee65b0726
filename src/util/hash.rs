//! SHA-256 of files and streams, read in 1 MiB pieces.
//!
//! [`Follower`] hashes a file while it is written: a thread of its own
//! reads back each byte once the writer says no write will change it again,
//! so the output's hash costs the writer nothing and is ready when the last
//! byte is.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

/// SHA-256 and length of everything `r` yields.
pub fn sha256_reader(mut r: impl Read) -> io::Result<([u8; 32], u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                h.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((h.finalize().into(), n))
}

/// SHA-256 (as lower-case hex) and size of a file.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let (h, n) = sha256_reader(std::fs::File::open(path)?)?;
    Ok((super::hex(&h), n))
}

/// SHA-256 of a byte string, as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    super::hex(&Sha256::digest(bytes))
}

/// How far a [`Follower`] may read.
#[derive(Default)]
struct Mark {
    /// Bytes `[0, settled)` are final.
    settled: u64,
    /// No more bytes will come (the file ends at `settled`).
    done: bool,
    /// The hash is no longer wanted: stop.
    dropped: bool,
}

/// The SHA-256 of a file being written, read back by a thread of its own
/// behind the writer (see the module's documentation). The writer calls
/// [`Follower::settle`] as bytes become final and [`Follower::finish`] at
/// the end; a follower dropped unfinished stops.
pub struct Follower {
    mark: Arc<(Mutex<Mark>, Condvar)>,
    thread: Option<JoinHandle<io::Result<[u8; 32]>>>,
}

impl Follower {
    /// Starts following `file` (written from its start; opened for reading
    /// too).
    pub fn start(file: &File) -> io::Result<Follower> {
        let file = file.try_clone()?;
        let mark = Arc::new((Mutex::new(Mark::default()), Condvar::new()));
        let m = Arc::clone(&mark);
        let thread = std::thread::Builder::new()
            .name("output-sha256".into())
            .spawn(move || follow(&file, &m))?;
        Ok(Follower {
            mark,
            thread: Some(thread),
        })
    }

    fn set(&self, settled: u64, done: bool) {
        let (lock, cv) = &*self.mark;
        let mut m = lock.lock().unwrap_or_else(|e| e.into_inner());
        m.settled = m.settled.max(settled);
        m.done |= done;
        cv.notify_one();
    }

    /// Bytes `[0, upto)` of the file will not change again.
    pub fn settle(&self, upto: u64) {
        self.set(upto, false);
    }

    /// The file is complete at `len` bytes: its SHA-256, once read.
    pub fn finish(self, len: u64) -> io::Result<[u8; 32]> {
        self.end(len);
        self.wait()
    }

    /// The file is complete at `len` bytes; the follower reads on, and
    /// [`Self::wait`] gives the hash (so that other work can run meanwhile).
    pub fn end(&self, len: u64) {
        self.set(len, true);
    }

    /// The SHA-256, once the follower has read up to where [`Self::end`]
    /// said the file ends.
    pub fn wait(mut self) -> io::Result<[u8; 32]> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(e)) => std::panic::resume_unwind(e),
            None => Err(io::Error::other("output hash: already finished")),
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let (lock, cv) = &*self.mark;
            lock.lock().unwrap_or_else(|e| e.into_inner()).dropped = true;
            cv.notify_one();
            let _ = t.join();
        }
    }
}

/// The follower's thread: hashes `[0, settled)` as it grows, until done.
fn follow(file: &File, mark: &(Mutex<Mark>, Condvar)) -> io::Result<[u8; 32]> {
    let (lock, cv) = mark;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    loop {
        let (upto, done) = {
            let mut m = lock.lock().unwrap_or_else(|e| e.into_inner());
            while m.settled <= pos && !m.done && !m.dropped {
                m = cv.wait(m).unwrap_or_else(|e| e.into_inner());
            }
            if m.dropped {
                return Err(io::Error::other("output hash: no longer wanted"));
            }
            (m.settled, m.done)
        };
        while pos < upto {
            let n = (upto - pos).min(buf.len() as u64) as usize;
            file.read_exact_at(&mut buf[..n], pos)?;
            h.update(&buf[..n]);
            pos += n as u64;
        }
        if done {
            return Ok(h.finalize().into());
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_digest() {
        // FIPS 180-2 example "abc".
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(super::sha256_hex(b"abc"), want);
        let (h, n) = super::sha256_reader(&b"abc"[..]).unwrap();
        assert_eq!((super::super::hex(&h).as_str(), n), (want, 3));
    }

    /// The follower's hash is the whole file's, whatever happens to bytes
    /// past what was settled before they are.
    #[test]
    fn follower_hashes_the_final_bytes() {
        use sha2::{Digest, Sha256};
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let f = super::Follower::start(&file).unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        file.write_all_at(&data[..1_000_000], 0).unwrap();
        f.settle(500_000);
        // Bytes after the settled mark are still overwritten.
        file.write_all_at(&[0xaa; 1000], 600_000).unwrap();
        file.write_all_at(&data[600_000..601_000], 600_000).unwrap();
        f.settle(1_000_000);
        file.write_all_at(&data[1_000_000..], 1_000_000).unwrap();
        let got = f.finish(data.len() as u64).unwrap();
        assert_eq!(got, <[u8; 32]>::from(Sha256::digest(&data)));
        // Finishing short of what the file holds hashes only that much.
        let f = super::Follower::start(&file).unwrap();
        let got = f.finish(10).unwrap();
        assert_eq!(got, <[u8; 32]>::from(Sha256::digest(&data[..10])));
        // A truncated file is an error, not a wrong hash.
        let f = super::Follower::start(&file).unwrap();
        assert!(f.finish(data.len() as u64 + 1).is_err());
        // Dropped unfinished: the thread stops.
        drop(super::Follower::start(&file).unwrap());
    }
}
