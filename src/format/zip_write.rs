//! Writing zip archives whose large entries stream in.
//!
//! What the zip crate's writer cannot do for a fastboot package: a stored
//! entry here may begin with bytes that are only known once the rest of it
//! is written (a sparse image's file header carries its chunk count). Such
//! an entry reserves them ([`ZipOut::begin`] with `head`), streams the rest
//! and supplies them at [`ZipOut::end`]; its CRC-32 is the head's combined
//! with the rest's, so no byte is read twice.
//!
//! Layout (PKWARE APPNOTE 6.3): every entry is a local header, its name, an
//! extra field, the data; then the central directory and the end records.
//! - Stored entries have their data aligned (to 4096 for images, so they can
//!   be read in place and mapped) by an Android zipalign extra field (id
//!   `0xd935`: the alignment, then zero padding).
//! - A streamed entry's CRC-32 and sizes are written into its local header
//!   when it ends (no data descriptor, so every reader finds them there).
//! - An entry that may reach 4 GiB is declared large when it begins: its
//!   local header carries a Zip64 extra field with the two sizes, and the
//!   32-bit fields say `0xffffffff`. The central directory uses Zip64 extra
//!   fields only where a size or offset needs them, and the Zip64 end
//!   records follow when the directory's offset, size or count does.
//!
//! The archive is appended in order through a 1 MiB buffer; the only bytes
//! written out of order are the reserved head and the local header's CRC and
//! sizes, by positioned writes (or in the buffer when still there).
//! Entries carry one fixed MS-DOS time, a Unix mode and no comment, so equal
//! inputs give equal bytes.
//!
//! With [`ZipOut::hashed`], the archive's SHA-256 is taken while it is
//! written: every byte before the open entry's local header is final, and a
//! [`Follower`] reads it back up to there.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

use crate::util::hash::Follower;

const LOCAL: u32 = 0x0403_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const END: u32 = 0x0605_4b50;
const END64: u32 = 0x0606_4b50;
const LOCATOR64: u32 = 0x0706_4b50;
const ZIP64_EXTRA: u16 = 0x0001;
const ALIGN_EXTRA: u16 = 0xd935;
const STORED: u16 = 0;
const DEFLATED: u16 = 8;
/// Version 4.5 (Zip64) made on Unix (3).
const MADE_BY: u16 = (3 << 8) | 45;
const MAX32: u64 = 0xffff_ffff;
const BUF: usize = 1 << 20;

/// One entry of the central directory.
struct Central {
    name: String,
    method: u16,
    crc: u32,
    compressed: u64,
    size: u64,
    offset: u64,
    /// Unix mode with the file type bits.
    mode: u32,
}

/// The entry being streamed.
struct Open {
    central: Central,
    large: bool,
    /// Where the data starts.
    data: u64,
    head: usize,
    crc: crc32fast::Hasher,
    len: u64,
    /// Size and CRC-32 declared at [`ZipOut::begin_known`] (its local
    /// header is then final when begun).
    declared: Option<(u64, u32)>,
}

/// Where an ended entry's data lies in the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Offset of the first data byte.
    pub offset: u64,
    /// Data bytes.
    pub len: u64,
    /// CRC-32 of the data.
    pub crc32: u32,
}

/// A zip archive being written into a file, from its start.
pub struct ZipOut<'f> {
    file: &'f File,
    buf: Vec<u8>,
    /// Bytes already in the file (the buffer follows them).
    flushed: u64,
    entries: Vec<Central>,
    /// MS-DOS (time, date) of every entry.
    time: (u16, u16),
    open: Option<Open>,
    /// Hashes the archive behind the writer ([`ZipOut::hashed`]).
    follower: Option<Follower>,
}

/// A finished archive.
pub struct Finished {
    /// Its size.
    pub len: u64,
    /// For an archive written [`ZipOut::hashed`], the follower still
    /// reading its last bytes: [`Follower::wait`] gives the SHA-256.
    pub hash: Option<Follower>,
}

impl<'f> ZipOut<'f> {
    /// An archive written into `file` (empty), every entry dated `mtime`
    /// (seconds since the epoch, clamped to what zip can carry).
    pub fn new(file: &'f File, mtime: i64) -> Self {
        ZipOut {
            file,
            buf: Vec::with_capacity(BUF),
            flushed: 0,
            entries: Vec::new(),
            time: crate::util::time::dos_time(mtime),
            open: None,
            follower: None,
        }
    }

    /// The same archive, its SHA-256 taken as it is written (by a thread
    /// reading back what no later write changes) and handed on by
    /// [`Self::finish`].
    pub fn hashed(mut self) -> io::Result<Self> {
        self.follower = Some(Follower::start(self.file)?);
        Ok(self)
    }

    /// Tells the follower how far the file is final: up to the open entry's
    /// local header (its CRC and sizes, and a reserved head, are written
    /// when it ends) unless they were declared, else all that is flushed.
    fn settle(&self) {
        if let Some(f) = &self.follower {
            let open = self
                .open
                .as_ref()
                .filter(|o| o.declared.is_none())
                .map_or(u64::MAX, |o| o.central.offset);
            f.settle(self.flushed.min(open));
        }
    }

    fn pos(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        self.file.write_all_at(&self.buf, self.flushed)?;
        self.flushed += self.buf.len() as u64;
        self.buf.clear();
        self.settle();
        Ok(())
    }

    fn append(&mut self, b: &[u8]) -> io::Result<()> {
        if self.buf.len() + b.len() > BUF {
            self.flush_buf()?;
        }
        if b.len() >= BUF {
            self.file.write_all_at(b, self.flushed)?;
            self.flushed += b.len() as u64;
            self.settle();
        } else {
            self.buf.extend_from_slice(b);
        }
        Ok(())
    }

    /// Overwrites bytes already appended at `at`.
    fn patch(&mut self, at: u64, b: &[u8]) -> io::Result<()> {
        let end = at + b.len() as u64;
        if end > self.pos() {
            return Err(io::Error::other(format!(
                "zip writer: patch at {at} (+{}) past what is written",
                b.len()
            )));
        }
        let split = self.flushed.clamp(at, end);
        let (on_disk, buffered) = b.split_at((split - at) as usize);
        if !on_disk.is_empty() {
            self.file.write_all_at(on_disk, at)?;
        }
        if !buffered.is_empty() {
            let o = (split - self.flushed) as usize;
            self.buf[o..o + buffered.len()].copy_from_slice(buffered);
        }
        Ok(())
    }

    fn check_name(name: &str) -> io::Result<()> {
        if name.is_empty() || name.len() > 0xffff || name.starts_with('/') {
            return Err(io::Error::other(format!(
                "zip entry name {name:?} is not usable"
            )));
        }
        Ok(())
    }

    /// Writes a local header for `c` (CRC and sizes as `c` has them) with
    /// its data aligned to `align` (1: not aligned).
    fn local_header(&mut self, c: &Central, large: bool, align: u64) -> io::Result<()> {
        let mut extra = Vec::new();
        if large {
            extra.extend_from_slice(&ZIP64_EXTRA.to_le_bytes());
            extra.extend_from_slice(&16u16.to_le_bytes());
            extra.extend_from_slice(&c.size.to_le_bytes());
            extra.extend_from_slice(&c.compressed.to_le_bytes());
        }
        let fixed = 30 + c.name.len() as u64 + extra.len() as u64;
        if align > 1 {
            let end = self.pos() + fixed;
            let mut pad = (align - end % align) % align;
            if pad > 0 {
                while pad < 6 {
                    pad += align;
                }
                extra.extend_from_slice(&ALIGN_EXTRA.to_le_bytes());
                extra.extend_from_slice(&((pad - 4) as u16).to_le_bytes());
                extra.extend_from_slice(&(align as u16).to_le_bytes());
                extra.resize(extra.len() + pad as usize - 6, 0);
            }
        }
        let (size32, comp32) = if large {
            (MAX32 as u32, MAX32 as u32)
        } else {
            (c.size as u32, c.compressed as u32)
        };
        let mut h = Vec::with_capacity(30 + c.name.len() + extra.len());
        h.extend_from_slice(&LOCAL.to_le_bytes());
        let needed = if large { 45 } else { 20 };
        self.shared_fields(&mut h, needed, c, (comp32, size32), extra.len());
        h.extend_from_slice(c.name.as_bytes());
        h.extend_from_slice(&extra);
        self.append(&h)
    }

    /// The fields local and central headers share, from the version needed
    /// to extract to the extra field's length.
    fn shared_fields(
        &self,
        h: &mut Vec<u8>,
        needed: u16,
        c: &Central,
        (comp32, size32): (u32, u32),
        extra: usize,
    ) {
        h.extend_from_slice(&needed.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // flags
        h.extend_from_slice(&c.method.to_le_bytes());
        h.extend_from_slice(&self.time.0.to_le_bytes());
        h.extend_from_slice(&self.time.1.to_le_bytes());
        h.extend_from_slice(&c.crc.to_le_bytes());
        h.extend_from_slice(&comp32.to_le_bytes());
        h.extend_from_slice(&size32.to_le_bytes());
        h.extend_from_slice(&(c.name.len() as u16).to_le_bytes());
        h.extend_from_slice(&(extra as u16).to_le_bytes());
    }

    /// Adds a folder entry (`name` ends with `/`).
    pub fn dir(&mut self, name: &str, mode: u32) -> io::Result<()> {
        self.add_entry(name, STORED, &[], 0o040000 | (mode & 0o7777), 1)
    }

    /// Adds a whole entry: `data` stored (data aligned to `align`) or, with
    /// `deflate`, compressed.
    pub fn file(&mut self, name: &str, mode: u32, data: &[u8], deflate: bool) -> io::Result<()> {
        let mode = 0o100000 | (mode & 0o7777);
        if !deflate {
            return self.add_entry(name, STORED, data, mode, 1);
        }
        let mut enc =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data)?;
        let packed = enc.finish()?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(data);
        self.whole(
            name,
            DEFLATED,
            &packed,
            crc.finalize(),
            data.len() as u64,
            mode,
            1,
        )
    }

    fn add_entry(
        &mut self,
        name: &str,
        method: u16,
        data: &[u8],
        mode: u32,
        align: u64,
    ) -> io::Result<()> {
        let mut crc = crc32fast::Hasher::new();
        crc.update(data);
        self.whole(
            name,
            method,
            data,
            crc.finalize(),
            data.len() as u64,
            mode,
            align,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn whole(
        &mut self,
        name: &str,
        method: u16,
        packed: &[u8],
        crc: u32,
        size: u64,
        mode: u32,
        align: u64,
    ) -> io::Result<()> {
        self.check_idle()?;
        Self::check_name(name)?;
        let large = size >= MAX32 || packed.len() as u64 >= MAX32;
        let c = Central {
            name: name.to_string(),
            method,
            crc,
            compressed: packed.len() as u64,
            size,
            offset: self.pos(),
            mode,
        };
        self.local_header(&c, large, align)?;
        self.append(packed)?;
        self.entries.push(c);
        Ok(())
    }

    fn check_idle(&self) -> io::Result<()> {
        match &self.open {
            Some(o) => Err(io::Error::other(format!(
                "zip writer: entry {} is still open",
                o.central.name
            ))),
            None => Ok(()),
        }
    }

    /// Starts a stored entry whose data is aligned to `align` and streamed
    /// with [`Self::write`]. `large`: it may reach 4 GiB (decided now, as
    /// the local header's size depends on it). Its first `head` bytes are
    /// reserved and supplied to [`Self::end`].
    pub fn begin(
        &mut self,
        name: &str,
        mode: u32,
        align: u64,
        large: bool,
        head: usize,
    ) -> io::Result<()> {
        self.begin_entry(name, mode, align, large, head, None)
    }

    /// Starts a stored entry whose size and CRC-32 are known before its
    /// data streams in: its local header is final at once (so a follower
    /// hashing the archive reads on through the entry), and [`Self::end`]
    /// fails if the data streamed does not match.
    pub fn begin_known(
        &mut self,
        name: &str,
        mode: u32,
        align: u64,
        (len, crc32): (u64, u32),
    ) -> io::Result<()> {
        self.begin_entry(name, mode, align, len >= MAX32, 0, Some((len, crc32)))
    }

    fn begin_entry(
        &mut self,
        name: &str,
        mode: u32,
        align: u64,
        large: bool,
        head: usize,
        declared: Option<(u64, u32)>,
    ) -> io::Result<()> {
        self.check_idle()?;
        Self::check_name(name)?;
        let (size, crc) = declared.unwrap_or((0, 0));
        let central = Central {
            name: name.to_string(),
            method: STORED,
            crc,
            compressed: size,
            size,
            offset: self.pos(),
            mode: 0o100000 | (mode & 0o7777),
        };
        self.local_header(&central, large, align)?;
        let data = self.pos();
        self.append(&vec![0u8; head])?;
        self.open = Some(Open {
            central,
            large,
            data,
            head,
            crc: crc32fast::Hasher::new(),
            len: head as u64,
            declared,
        });
        Ok(())
    }

    /// Appends data to the entry begun.
    pub fn write(&mut self, b: &[u8]) -> io::Result<()> {
        self.write_with(b, |crc| crc.update(b))
    }

    /// Appends data to the entry begun whose CRC-32 the caller took (`crc`,
    /// of `b` alone, from the same bytes): combined into the entry's instead
    /// of taken again.
    pub fn write_crc(&mut self, b: &[u8], crc: &crc32fast::Hasher) -> io::Result<()> {
        self.write_with(b, |c| c.combine(crc))
    }

    /// Appends `b` to the entry begun, `add` bringing its CRC-32 in.
    fn write_with(&mut self, b: &[u8], add: impl FnOnce(&mut crc32fast::Hasher)) -> io::Result<()> {
        let o = self
            .open
            .as_mut()
            .ok_or_else(|| io::Error::other("zip writer: no entry begun"))?;
        add(&mut o.crc);
        o.len += b.len() as u64;
        self.append(b)
    }

    /// Ends the entry begun, with its reserved first bytes `head`; fills in
    /// its local header.
    pub fn end(&mut self, head: &[u8]) -> io::Result<Written> {
        let mut o = self
            .open
            .take()
            .ok_or_else(|| io::Error::other("zip writer: no entry begun"))?;
        if head.len() != o.head {
            return Err(io::Error::other(format!(
                "zip writer: entry {}: {} head bytes for the {} reserved",
                o.central.name,
                head.len(),
                o.head
            )));
        }
        if !o.large && o.len >= MAX32 {
            return Err(io::Error::other(format!(
                "zip writer: entry {} reached {} bytes but was not begun as large",
                o.central.name, o.len
            )));
        }
        self.patch(o.data, head)?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(head);
        crc.combine(&o.crc);
        let crc = crc.finalize();
        if let Some((len, want)) = o.declared {
            if (o.len, crc) != (len, want) {
                return Err(io::Error::other(format!(
                    "zip writer: entry {}: {} bytes with CRC-32 {crc:08x} streamed, {len} bytes \
                     with {want:08x} declared",
                    o.central.name, o.len
                )));
            }
            let w = Written {
                offset: o.data,
                len,
                crc32: crc,
            };
            self.entries.push(o.central);
            self.settle();
            return Ok(w);
        }
        let c = &mut o.central;
        c.crc = crc;
        c.size = o.len;
        c.compressed = o.len;
        // CRC-32 at +14, then the 32-bit sizes, or the Zip64 extra's sizes
        // after the name.
        self.patch(c.offset + 14, &crc.to_le_bytes())?;
        if o.large {
            let mut sizes = [0u8; 16];
            sizes[..8].copy_from_slice(&o.len.to_le_bytes());
            sizes[8..].copy_from_slice(&o.len.to_le_bytes());
            self.patch(c.offset + 30 + c.name.len() as u64 + 4, &sizes)?;
        } else {
            let mut sizes = [0u8; 8];
            sizes[..4].copy_from_slice(&(o.len as u32).to_le_bytes());
            sizes[4..].copy_from_slice(&(o.len as u32).to_le_bytes());
            self.patch(c.offset + 18, &sizes)?;
        }
        let w = Written {
            offset: o.data,
            len: o.len,
            crc32: crc,
        };
        self.entries.push(o.central);
        self.settle();
        Ok(w)
    }

    /// Writes the central directory and the end records; returns the
    /// archive's size (and its hash to come, when [`Self::hashed`]).
    pub fn finish(mut self) -> io::Result<Finished> {
        self.check_idle()?;
        let start = self.pos();
        let entries = std::mem::take(&mut self.entries);
        for c in &entries {
            let mut extra = Vec::new();
            let mut field = |v: u64| {
                if v >= MAX32 {
                    extra.extend_from_slice(&v.to_le_bytes());
                    MAX32 as u32
                } else {
                    v as u32
                }
            };
            let size32 = field(c.size);
            let comp32 = field(c.compressed);
            let off32 = field(c.offset);
            if !extra.is_empty() {
                let mut x = ZIP64_EXTRA.to_le_bytes().to_vec();
                x.extend_from_slice(&(extra.len() as u16).to_le_bytes());
                x.extend_from_slice(&extra);
                extra = x;
            }
            let needed: u16 = if extra.is_empty() { 20 } else { 45 };
            let mut h = Vec::with_capacity(46 + c.name.len() + extra.len());
            h.extend_from_slice(&CENTRAL.to_le_bytes());
            h.extend_from_slice(&MADE_BY.to_le_bytes());
            self.shared_fields(&mut h, needed, c, (comp32, size32), extra.len());
            h.extend_from_slice(&0u16.to_le_bytes()); // comment
            h.extend_from_slice(&0u16.to_le_bytes()); // disk
            h.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
            let dos_dir = if c.mode & 0o040000 != 0 { 0x10 } else { 0 };
            h.extend_from_slice(&((c.mode << 16) | dos_dir).to_le_bytes());
            h.extend_from_slice(&off32.to_le_bytes());
            h.extend_from_slice(c.name.as_bytes());
            h.extend_from_slice(&extra);
            self.append(&h)?;
        }
        let size = self.pos() - start;
        let count = entries.len() as u64;
        let zip64 = start >= MAX32 || size >= MAX32 || count >= 0xffff;
        if zip64 {
            let at = self.pos();
            let mut r = Vec::with_capacity(76);
            r.extend_from_slice(&END64.to_le_bytes());
            r.extend_from_slice(&44u64.to_le_bytes());
            r.extend_from_slice(&MADE_BY.to_le_bytes());
            r.extend_from_slice(&45u16.to_le_bytes());
            r.extend_from_slice(&0u32.to_le_bytes());
            r.extend_from_slice(&0u32.to_le_bytes());
            r.extend_from_slice(&count.to_le_bytes());
            r.extend_from_slice(&count.to_le_bytes());
            r.extend_from_slice(&size.to_le_bytes());
            r.extend_from_slice(&start.to_le_bytes());
            r.extend_from_slice(&LOCATOR64.to_le_bytes());
            r.extend_from_slice(&0u32.to_le_bytes());
            r.extend_from_slice(&at.to_le_bytes());
            r.extend_from_slice(&1u32.to_le_bytes());
            self.append(&r)?;
        }
        let count16 = count.min(0xffff) as u16;
        let mut e = Vec::with_capacity(22);
        e.extend_from_slice(&END.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        e.extend_from_slice(&count16.to_le_bytes());
        e.extend_from_slice(&count16.to_le_bytes());
        e.extend_from_slice(&(size.min(MAX32) as u32).to_le_bytes());
        e.extend_from_slice(&(start.min(MAX32) as u32).to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        self.append(&e)?;
        self.flush_buf()?;
        let hash = self.follower.take();
        if let Some(f) = &hash {
            f.end(self.flushed);
        }
        Ok(Finished {
            len: self.flushed,
            hash,
        })
    }
}

impl Write for ZipOut<'_> {
    /// Appends to the entry begun ([`ZipOut::write`]).
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        ZipOut::write(self, b)?;
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// The body of `images/x.img`: over the buffer, so the entry is
    /// flushed while open and its head patched on disk.
    fn body() -> Vec<u8> {
        (0..3 * BUF as u32).map(|i| (i % 253) as u8).collect()
    }

    fn archive(large: bool) -> Vec<u8> {
        use sha2::{Digest, Sha256};
        let f = tempfile::tempfile().unwrap();
        let mut z = ZipOut::new(&f, 1_705_300_800).hashed().unwrap();
        z.dir("images/", 0o755).unwrap();
        z.file("a.txt", 0o644, b"hello hello hello hello", true)
            .unwrap();
        z.begin("images/x.img", 0o644, 4096, large, 4).unwrap();
        z.write(&body()).unwrap();
        let w = z.end(b"HEAD").unwrap();
        assert_eq!(w.offset % 4096, 0);
        assert_eq!(w.len, 4 + 3 * BUF as u64);
        z.file("run.sh", 0o755, b"#!/bin/sh\n", false).unwrap();
        let done = z.finish().unwrap();
        let mut v = Vec::new();
        (&f).read_to_end(&mut v).unwrap();
        assert_eq!(v.len() as u64, done.len);
        assert_eq!(&v[w.offset as usize..][..4], b"HEAD");
        // The hash taken behind the writer is the finished file's.
        let got = done.hash.unwrap().wait().unwrap();
        assert_eq!(got, <[u8; 32]>::from(Sha256::digest(&v)));
        v
    }

    #[test]
    fn the_zip_crate_reads_what_is_written() {
        for large in [false, true] {
            let v = archive(large);
            let mut a = zip::ZipArchive::new(io::Cursor::new(v)).unwrap();
            assert_eq!(a.len(), 4);
            let mut s = String::new();
            a.by_name("a.txt").unwrap().read_to_string(&mut s).unwrap();
            assert_eq!(s, "hello hello hello hello");
            let mut x = a.by_name("images/x.img").unwrap();
            assert_eq!(x.compression(), zip::CompressionMethod::Stored);
            let mut b = Vec::new();
            x.read_to_end(&mut b).unwrap();
            assert_eq!((&b[..4], &b[4..]), (&b"HEAD"[..], &body()[..]));
            drop(x);
            assert_eq!(a.by_name("run.sh").unwrap().unix_mode(), Some(0o100755));
            assert!(a.by_name("images/").unwrap().is_dir());
        }
    }

    /// An entry whose size and CRC are declared up front: read back as
    /// written, hashed through while open; data that does not match what
    /// was declared is an error at its end.
    #[test]
    fn declared_entries_are_checked_and_hashed_through() {
        use sha2::{Digest, Sha256};
        let data = body();
        let crc = crc32fast::hash(&data);
        let f = tempfile::tempfile().unwrap();
        let mut z = ZipOut::new(&f, 0).hashed().unwrap();
        z.begin_known("payload.bin", 0o644, 4096, (data.len() as u64, crc))
            .unwrap();
        z.write(&data).unwrap();
        z.end(&[]).unwrap();
        let done = z.finish().unwrap();
        let mut v = Vec::new();
        (&f).read_to_end(&mut v).unwrap();
        let got = done.hash.unwrap().wait().unwrap();
        assert_eq!(got, <[u8; 32]>::from(Sha256::digest(&v)));
        let mut a = zip::ZipArchive::new(io::Cursor::new(v)).unwrap();
        let mut back = Vec::new();
        a.by_name("payload.bin")
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data);

        let f = tempfile::tempfile().unwrap();
        let mut z = ZipOut::new(&f, 0);
        z.begin_known("a", 0o644, 1, (4, crc32fast::hash(b"abcd")))
            .unwrap();
        z.write(b"abce").unwrap();
        let e = z.end(&[]).unwrap_err().to_string();
        assert!(e.contains("declared"), "{e}");
    }

    /// Data whose CRC-32 the caller took ends in the same entry, with the
    /// same CRC-32, as data the writer hashes itself: the zip crate checks
    /// it on reading.
    #[test]
    fn crcs_taken_by_the_caller_are_combined() {
        let data = body();
        let (a, b) = data.split_at(data.len() / 3);
        let f = tempfile::tempfile().unwrap();
        let mut z = ZipOut::new(&f, 0);
        z.begin("images/super.img", 0o644, 4096, false, 0).unwrap();
        z.write(a).unwrap();
        let mut crc = crc32fast::Hasher::new();
        crc.update(b);
        z.write_crc(b, &crc).unwrap();
        let w = z.end(&[]).unwrap();
        z.finish().unwrap();
        assert_eq!(w.crc32, crc32fast::hash(&data));
        let mut v = Vec::new();
        (&f).read_to_end(&mut v).unwrap();
        let mut zip = zip::ZipArchive::new(io::Cursor::new(v)).unwrap();
        let mut back = Vec::new();
        let mut e = zip.by_name("images/super.img").unwrap();
        assert_eq!(e.crc32(), crc32fast::hash(&data));
        e.read_to_end(&mut back).unwrap();
        assert!(back == data);
    }

    #[test]
    fn equal_inputs_equal_bytes_and_misuse_is_an_error() {
        assert_eq!(archive(true), archive(true));
        let f = tempfile::tempfile().unwrap();
        let mut z = ZipOut::new(&f, 0);
        assert!(z.end(b"").is_err());
        z.begin("a", 0o644, 1, false, 2).unwrap();
        assert!(z.file("b", 0o644, b"", false).is_err());
        assert!(z.end(b"x").is_err());
        assert!(z.begin("/abs", 0o644, 1, false, 0).is_err());
    }
}
