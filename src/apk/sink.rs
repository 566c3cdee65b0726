//! Holding an APK streamed out of an image in bounded memory.
//!
//! Identifying an app needs only a few parts of its base APK: the
//! `AndroidManifest.xml` and `resources.arsc` entries, the APK signing block
//! and the central directory (both at the end). The whole file streams
//! through to be hashed, and base APKs of real builds reach hundreds of MiB,
//! so holding each one whole (on every worker thread at once) would make the
//! largest APKs set a build's peak memory.
//!
//! [`ApkSink`] writes the stream into a zero-initialised buffer of the file's
//! size and follows the zip's local file headers as they pass: the data of
//! an entry that is not wanted is hashed but never stored (its pages are
//! never touched, so they cost neither memory nor page faults, and read as
//! zeros), and bytes stored before their entry was known to be unwanted are
//! given back to the system (`MADV_DONTNEED`: those pages read as zeros
//! afterwards). It stops
//! following, and keeps everything from there on, at the first thing that is
//! not a local file header it can skip exactly (the signing block, the
//! central directory, or an entry whose sizes follow its data).
//!
//! Invariant: every byte of a wanted entry (header, name, extra field,
//! data), and every byte from where following stopped to the end, is kept.
//! Anything else may read as zero. [`ApkSink::dropped`] says whether any
//! byte was given back, so that a caller whose parse fails can stream again
//! into a plain buffer.

use sha2::{Digest, Sha256};

/// Files smaller than this are held whole.
const MIN_BOUNDED: usize = 16 << 20;
/// Files larger than this are held as they come, like small ones.
const MAX_BOUNDED: usize = 4 << 30;
/// Local file header signature.
const LOCAL_SIG: u32 = 0x0403_4b50;
/// Fixed part of a local file header.
const LOCAL_LEN: usize = 30;
/// Entries kept whole.
const WANTED: [&[u8]; 2] = [b"AndroidManifest.xml", b"resources.arsc"];

/// A streaming writer that hashes an APK and keeps what identifying it needs.
pub struct ApkSink {
    bytes: Vec<u8>,
    /// Bytes written so far.
    pos: usize,
    hash: Sha256,
    /// Offset of the next local file header, while following them.
    next: Option<usize>,
    /// Byte ranges of wanted entries.
    keep: Vec<std::ops::Range<usize>>,
    /// Bytes before this offset were considered for dropping.
    dropped_to: usize,
    dropped: bool,
    /// The data of the last entry found not wanted: not stored.
    skip: std::ops::Range<usize>,
}

impl ApkSink {
    /// A sink for a file of `size` bytes; bounded only when `bounded` and the
    /// file is large.
    pub fn new(size: u64, bounded: bool) -> Self {
        let size = size.min(1 << 34) as usize;
        // The zeroed buffer is only reserved address space until written,
        // but a size no APK has (a damaged inode) is not worth reserving.
        let bounded = bounded && (MIN_BOUNDED..=MAX_BOUNDED).contains(&size);
        ApkSink {
            bytes: if bounded {
                vec![0u8; size]
            } else {
                Vec::with_capacity(size.min(1 << 30))
            },
            pos: 0,
            hash: Sha256::new(),
            next: bounded.then_some(0),
            keep: Vec::new(),
            dropped_to: 0,
            dropped: false,
            skip: 0..0,
        }
    }

    /// Whether some bytes were given back (and now read as zeros).
    pub fn dropped(&self) -> bool {
        self.dropped
    }

    /// The SHA-256 and the buffer (`size` bytes, or what was written).
    pub fn finish(mut self) -> ([u8; 32], Vec<u8>) {
        self.bytes.truncate(self.pos);
        (self.hash.finalize().into(), self.bytes)
    }

    /// Follows the local file headers now in the buffer.
    fn follow(&mut self) {
        while let Some(at) = self.next {
            let Some(h) = self
                .bytes
                .get(at..at + LOCAL_LEN)
                .filter(|_| at + LOCAL_LEN <= self.pos)
            else {
                return;
            };
            let le16 = |o: usize| usize::from(u16::from_le_bytes([h[o], h[o + 1]]));
            let le32 = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
            let flags = le16(6);
            let (name_len, extra_len) = (le16(26), le16(28));
            if le32(0) != LOCAL_SIG || flags & 0x8 != 0 || le32(18) == u32::MAX {
                // The signing block, the central directory, or sizes after
                // the data: keep everything from here.
                self.next = None;
                return;
            }
            let data = at + LOCAL_LEN + name_len + extra_len;
            if data > self.pos {
                return;
            }
            let end = data + le32(18) as usize;
            let name = &self.bytes[at + LOCAL_LEN..at + LOCAL_LEN + name_len];
            if WANTED.contains(&name) {
                self.keep.push(at..end);
            } else {
                self.skip = data..end;
            }
            self.next = Some(end);
        }
    }

    /// Gives back the whole pages before the settled point that hold no kept
    /// byte.
    fn release(&mut self) {
        const PAGE: usize = 4096;
        let limit = match self.next {
            Some(n) => n.min(self.pos),
            None => return,
        } / PAGE
            * PAGE;
        let mut from = self.dropped_to.next_multiple_of(PAGE);
        while from + PAGE <= limit {
            let mut to = limit;
            // Stop before the next kept range; skip over it.
            if let Some(k) = self.keep.iter().find(|k| k.end > from && k.start < to) {
                if k.start <= from {
                    from = k.end.next_multiple_of(PAGE);
                    continue;
                }
                to = k.start / PAGE * PAGE;
            }
            if to > from {
                self.give_back(from, to);
            }
            from = to.max(from + PAGE);
        }
        self.dropped_to = self.dropped_to.max(limit);
    }
}

impl ApkSink {
    /// Gives back the whole pages of `bytes[from..to]` (page boundaries are
    /// taken from the addresses: the buffer itself need not start on one).
    fn give_back(&mut self, from: usize, to: usize) {
        const PAGE: usize = 4096;
        let base = self.bytes.as_mut_ptr() as usize;
        let (start, end) = (
            (base + from).next_multiple_of(PAGE),
            (base + to) / PAGE * PAGE,
        );
        if end <= start {
            return;
        }
        // SAFETY: `start..end` lies inside this buffer's allocation (private
        // memory, ours alone) and is page-aligned; after MADV_DONTNEED its
        // pages read as zeros, which the module docs allow for bytes
        // outside the kept ranges (`from..to` holds none).
        let r =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        if r == 0 {
            self.dropped = true;
        }
    }
}

impl std::io::Write for ApkSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hash.update(buf);
        let end = self.pos + buf.len();
        if end > self.bytes.len() {
            // Unbounded, or more bytes than the file's size said.
            self.bytes.truncate(self.pos);
            self.bytes.extend_from_slice(buf);
            self.pos = end;
        } else {
            let mut rest = buf;
            while !rest.is_empty() {
                let at = self.pos;
                let following = self.next.is_some();
                let n = if following && self.skip.contains(&at) {
                    // Data of an entry not wanted: hashed, not stored.
                    self.dropped = true;
                    (self.skip.end - at).min(rest.len())
                } else {
                    let n = if following && self.skip.start > at {
                        (self.skip.start - at).min(rest.len())
                    } else {
                        rest.len()
                    };
                    self.bytes[at..at + n].copy_from_slice(&rest[..n]);
                    n
                };
                rest = &rest[n..];
                self.pos = at + n;
                if following {
                    // May find the entry whose data comes next not wanted.
                    self.follow();
                }
            }
        }
        if self.next.is_some() {
            self.follow();
            self.release();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Read, Write};

    /// A stored zip: the manifest first, a large asset, the resource table,
    /// a large dex, as APKs are laid out.
    fn apk() -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        let big = |n: usize, seed: u32| -> Vec<u8> {
            (0..n as u32)
                .map(|i| (i.wrapping_mul(seed) >> 7) as u8)
                .collect()
        };
        for (name, data) in [
            (
                "AndroidManifest.xml",
                b"<manifest package=\"a.b\"/>".repeat(40),
            ),
            ("assets/big.bin", big(24 << 20, 2_654_435_761)),
            ("resources.arsc", b"arsc".repeat(300)),
            ("classes.dex", big(12 << 20, 40_503)),
        ] {
            w.start_file(name, stored).unwrap();
            w.write_all(&data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn entry(zip_bytes: &[u8], name: &str) -> Vec<u8> {
        let mut z = zip::ZipArchive::new(Cursor::new(zip_bytes)).unwrap();
        let mut out = Vec::new();
        z.by_name(name).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn keeps_the_wanted_entries_and_the_end_and_gives_back_the_rest() {
        let apk = apk();
        // In pieces, and in pieces that cut local headers; in one write
        // (every entry in one buffer) the wanted ones are kept too, though
        // nothing could be left out.
        for piece_len in [100_000, 17, apk.len()] {
            check_kept(&apk, piece_len, piece_len < apk.len());
        }
    }

    fn check_kept(apk: &[u8], piece_len: usize, left_out: bool) {
        let mut sink = ApkSink::new(apk.len() as u64, true);
        for piece in apk.chunks(piece_len) {
            sink.write_all(piece).unwrap();
        }
        assert_eq!(sink.dropped(), left_out, "pieces of {piece_len}");
        let (hash, got) = sink.finish();
        assert_eq!(hash, <[u8; 32]>::from(Sha256::digest(apk)));
        assert_eq!(got.len(), apk.len());
        for name in ["AndroidManifest.xml", "resources.arsc"] {
            assert_eq!(entry(&got, name), entry(apk, name), "{name}");
        }
        // The central directory and everything after the last entry's data.
        let cd = apk.len() - 22;
        let cd_offset = u32::from_le_bytes(apk[cd + 16..cd + 20].try_into().unwrap()) as usize;
        assert_eq!(got[cd_offset..], apk[cd_offset..]);
        if !left_out {
            assert!(got == apk);
            return;
        }
        // The large entries were not kept: their bytes read as zero.
        let zeros = got.iter().zip(apk).filter(|(g, a)| g != a).count();
        assert!(zeros > 30 << 20, "{zeros} bytes differ");
    }

    #[test]
    fn small_files_and_unbounded_sinks_keep_every_byte() {
        let apk = apk();
        for (data, bounded) in [(&apk[..], false), (&apk[..1 << 20], true)] {
            let mut sink = ApkSink::new(data.len() as u64, bounded);
            for piece in data.chunks(65_536) {
                sink.write_all(piece).unwrap();
            }
            assert!(!sink.dropped());
            assert_eq!(sink.finish().1, data);
        }
    }

    #[test]
    fn a_stream_that_is_not_a_zip_is_kept_whole() {
        let data: Vec<u8> = (0..(20u32 << 20)).map(|i| (i % 251) as u8).collect();
        let mut sink = ApkSink::new(data.len() as u64, true);
        sink.write_all(&data).unwrap();
        assert!(!sink.dropped());
        assert_eq!(sink.finish().1, data);
    }
}
