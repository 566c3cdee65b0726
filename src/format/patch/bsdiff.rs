//! bsdiff patches: classic `BSDIFF40` and AOSP's `BSDF2`.
//!
//! Layout (all integers are 8-byte *sign-magnitude* little-endian values:
//! the low 63 bits are the magnitude, the top bit of the last byte the sign):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | `BSDIFF40`, or `BSDF2` followed by one compression byte per stream (control, diff, extra): 0 none, 1 bzip2, 2 brotli |
//! | 8 | 8 | length of the compressed control stream |
//! | 16 | 8 | length of the compressed diff stream |
//! | 24 | 8 | size of the new file |
//! | 32 | … | control stream, diff stream, then the extra stream up to the end of the patch |
//!
//! `BSDIFF40` compresses all three streams with bzip2. The control stream is a
//! list of triples `(diff_size, extra_size, seek)`: the next `diff_size` new
//! bytes are diff-stream bytes added (mod 256) to old bytes from the current
//! old position, the next `extra_size` new bytes are copied from the extra
//! stream, then the old position moves by `diff_size + seek`. Application
//! stops as soon as the new file is complete, as in AOSP's bspatch.
//!
//! Invariants enforced here:
//! - the header lengths are non-negative and fit in the patch; the new size is
//!   at most the caller's limit (or exactly the caller's buffer size), so no
//!   allocation ever exceeds what the caller allowed;
//! - every control entry has non-negative sizes that stay within the new file
//!   and an old position that stays within ±2^62, so no arithmetic overflows;
//! - old bytes outside `0..old.len()` count as zero, exactly as AOSP bspatch
//!   and bsdiff 4.3 do (real bsdiff never emits such entries, but the
//!   reference appliers accept them, so refusing them would reject patches
//!   update_engine applies);
//! - a stream that ends before the control entries say, or fails to
//!   decompress, is an error naming the stream and the decompressed offset;
//!   a compressed stream must also reach its proper end (AOSP bspatch does not
//!   check this; a patch written by any bsdiff always passes it).

use std::io::{self, Read, Write};

/// Magic of the classic format (bzip2 streams).
pub const BSDIFF40_MAGIC: &[u8; 8] = b"BSDIFF40";
/// Magic prefix of AOSP's format; three compression bytes follow.
pub const BSDF2_MAGIC: &[u8; 5] = b"BSDF2";
/// Size of the fixed header of both formats.
pub const HEADER_SIZE: usize = 32;

/// Largest old-position magnitude accepted (keeps every sum far from overflow).
const MAX_OLD_POS: i64 = 1 << 62;
/// Chunk size used when streaming to a writer.
const CHUNK: usize = 64 * 1024;

/// What is wrong with a bsdiff patch, or with applying it.
#[derive(Debug, thiserror::Error)]
pub enum BsdiffError {
    /// The patch is shorter than the fixed header.
    #[error("bsdiff patch: {len} bytes is shorter than the {HEADER_SIZE}-byte header")]
    TooShort {
        /// Patch length.
        len: usize,
    },
    /// The first 8 bytes are neither `BSDIFF40` nor `BSDF2…`.
    #[error("bsdiff patch, offset 0: magic {found:02x?} is neither \"BSDIFF40\" nor \"BSDF2\"")]
    BadMagic {
        /// The bytes found.
        found: [u8; 8],
    },
    /// A BSDF2 compression byte is not 0, 1 or 2.
    #[error(
        "bsdiff patch, offset {offset}: {stream} stream compression type {value} is not 0 (none), 1 (bzip2) or 2 (brotli)"
    )]
    BadCompression {
        /// Byte offset of the compression byte (5, 6 or 7).
        offset: usize,
        /// Which stream.
        stream: Stream,
        /// The value found.
        value: u8,
    },
    /// A header length is negative or does not fit in the patch.
    #[error("bsdiff patch, offset {offset}: {field} = {value} {reason}")]
    BadHeaderField {
        /// Byte offset of the field.
        offset: usize,
        /// Field name.
        field: &'static str,
        /// Value decoded (sign-magnitude).
        value: i64,
        /// Why it is refused.
        reason: String,
    },
    /// The header claims a new file larger than the caller allows.
    #[error("bsdiff patch, offset 24: new_size = {claimed} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size in the header.
        claimed: u64,
        /// Caller's limit.
        limit: u64,
    },
    /// The header's new size differs from the size the caller expects.
    #[error(
        "bsdiff patch, offset 24: new_size = {claimed}, but the destination is {expected} bytes"
    )]
    SizeMismatch {
        /// Size in the header.
        claimed: u64,
        /// Size of the caller's buffer.
        expected: u64,
    },
    /// A control entry is out of range.
    #[error(
        "bsdiff control entry {index} (control stream offset {offset}): {field} = {value} {reason}"
    )]
    BadControl {
        /// Index of the entry (0-based).
        index: u64,
        /// Decompressed offset of the field in the control stream.
        offset: u64,
        /// Field name.
        field: &'static str,
        /// Value decoded.
        value: i64,
        /// Why it is refused.
        reason: String,
    },
    /// A stream ended before the control entries said.
    #[error(
        "bsdiff {stream} stream ends at decompressed offset {offset}, {needed} more bytes needed"
    )]
    Truncated {
        /// Which stream.
        stream: Stream,
        /// Decompressed bytes read so far.
        offset: u64,
        /// Bytes still needed.
        needed: u64,
    },
    /// A stream failed to decompress.
    #[error("bsdiff {stream} stream ({compression:?}), decompressed offset {offset}: {source}")]
    Decompress {
        /// Which stream.
        stream: Stream,
        /// Its compression.
        compression: Compression,
        /// Decompressed bytes read before the failure.
        offset: u64,
        /// Decoder error.
        source: io::Error,
    },
    /// Writing the output failed.
    #[error("bsdiff: writing the new file at offset {offset}: {source}")]
    Write {
        /// Bytes written before the failure.
        offset: u64,
        /// Writer error.
        source: io::Error,
    },
}

/// One of the three streams of a patch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Control triples.
    Control,
    /// Bytes added to old data.
    Diff,
    /// Bytes copied verbatim.
    Extra,
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stream::Control => "control",
            Stream::Diff => "diff",
            Stream::Extra => "extra",
        })
    }
}

/// Compression of one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Stored as is (BSDF2 type 0).
    None,
    /// bzip2 (BSDF2 type 1, and all `BSDIFF40` streams).
    Bzip2,
    /// brotli (BSDF2 type 2).
    Brotli,
}

/// Which of the two formats a patch uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `BSDIFF40`: bzip2 streams.
    Bsdiff40,
    /// `BSDF2`: per-stream compression.
    Bsdf2,
}

/// The 32-byte header as stored, before any check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawHeader {
    /// `BSDIFF40`, or `BSDF2` and three compression bytes.
    pub magic: [u8; 8],
    /// Sign-magnitude length of the compressed control stream.
    pub ctrl_len: [u8; 8],
    /// Sign-magnitude length of the compressed diff stream.
    pub diff_len: [u8; 8],
    /// Sign-magnitude size of the new file.
    pub new_size: [u8; 8],
}

/// A checked header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Format of the patch.
    pub format: Format,
    /// Compression of the control, diff and extra streams.
    pub compression: [Compression; 3],
    /// Length of the compressed control stream (bytes after the header).
    pub ctrl_len: u64,
    /// Length of the compressed diff stream (after the control stream).
    pub diff_len: u64,
    /// Size of the new file.
    pub new_size: u64,
}

/// Decodes an 8-byte sign-magnitude little-endian integer.
pub fn decode_int(b: [u8; 8]) -> i64 {
    let mag = (u64::from_le_bytes(b) & !(1 << 63)) as i64;
    if b[7] & 0x80 != 0 { -mag } else { mag }
}

impl RawHeader {
    /// Splits the first 32 bytes of `patch` into fields.
    pub fn parse(patch: &[u8]) -> Result<Self, BsdiffError> {
        if patch.len() < HEADER_SIZE {
            return Err(BsdiffError::TooShort { len: patch.len() });
        }
        let f = |o: usize| -> [u8; 8] { patch[o..o + 8].try_into().expect("8 bytes") };
        Ok(RawHeader {
            magic: f(0),
            ctrl_len: f(8),
            diff_len: f(16),
            new_size: f(24),
        })
    }

    /// Checks the magic, the compression bytes and that both stream lengths
    /// are non-negative and fit in a patch of `patch_len` bytes.
    pub fn validate(&self, patch_len: usize) -> Result<Header, BsdiffError> {
        let (format, compression) = if &self.magic == BSDIFF40_MAGIC {
            (Format::Bsdiff40, [Compression::Bzip2; 3])
        } else if &self.magic[..5] == BSDF2_MAGIC {
            let mut c = [Compression::None; 3];
            for (i, s) in [Stream::Control, Stream::Diff, Stream::Extra]
                .into_iter()
                .enumerate()
            {
                c[i] = match self.magic[5 + i] {
                    0 => Compression::None,
                    1 => Compression::Bzip2,
                    2 => Compression::Brotli,
                    value => {
                        return Err(BsdiffError::BadCompression {
                            offset: 5 + i,
                            stream: s,
                            value,
                        });
                    }
                };
            }
            (Format::Bsdf2, c)
        } else {
            return Err(BsdiffError::BadMagic { found: self.magic });
        };
        let avail = (patch_len - HEADER_SIZE) as u64;
        let field = |offset: usize, field: &'static str, raw: [u8; 8], room: u64| {
            let value = decode_int(raw);
            if value < 0 {
                return Err(BsdiffError::BadHeaderField {
                    offset,
                    field,
                    value,
                    reason: "is negative".into(),
                });
            }
            if value as u64 > room {
                return Err(BsdiffError::BadHeaderField {
                    offset,
                    field,
                    value,
                    reason: format!("exceeds the {room} bytes left in the patch"),
                });
            }
            Ok(value as u64)
        };
        let ctrl_len = field(8, "ctrl_len", self.ctrl_len, avail)?;
        let diff_len = field(16, "diff_len", self.diff_len, avail - ctrl_len)?;
        let new_size = field(24, "new_size", self.new_size, i64::MAX as u64)?;
        Ok(Header {
            format,
            compression,
            ctrl_len,
            diff_len,
            new_size,
        })
    }
}

impl Header {
    /// Parses and validates the header of `patch`.
    pub fn parse(patch: &[u8]) -> Result<Self, BsdiffError> {
        RawHeader::parse(patch)?.validate(patch.len())
    }
}

/// Whether `patch` starts with a bsdiff magic (either format).
pub fn is_bsdiff(patch: &[u8]) -> bool {
    patch.starts_with(BSDIFF40_MAGIC) || patch.starts_with(BSDF2_MAGIC)
}

/// Applies `patch` to `old` and returns the new file, refusing a patch whose
/// header claims more than `new_len_limit` bytes.
pub fn apply(old: &[u8], patch: &[u8], new_len_limit: u64) -> Result<Vec<u8>, BsdiffError> {
    let header = Header::parse(patch)?;
    if header.new_size > new_len_limit {
        return Err(BsdiffError::TooLarge {
            claimed: header.new_size,
            limit: new_len_limit,
        });
    }
    let len = usize::try_from(header.new_size).map_err(|_| BsdiffError::TooLarge {
        claimed: header.new_size,
        limit: usize::MAX as u64,
    })?;
    let mut out = vec![0u8; len];
    run(old, patch, &header, &mut SliceSink { out: &mut out })?;
    Ok(out)
}

/// Applies `patch` to `old`, writing into `out`, whose length must be exactly
/// the new size recorded in the patch (the size the caller expects).
pub fn apply_into(old: &[u8], patch: &[u8], out: &mut [u8]) -> Result<(), BsdiffError> {
    let header = Header::parse(patch)?;
    if header.new_size != out.len() as u64 {
        return Err(BsdiffError::SizeMismatch {
            claimed: header.new_size,
            expected: out.len() as u64,
        });
    }
    run(old, patch, &header, &mut SliceSink { out })
}

/// Applies `patch` to `old`, streaming the new file to `w` in 64 KiB pieces
/// (memory use does not depend on the new size). Returns the number of bytes
/// written, which is the header's new size, at most `new_len_limit`.
pub fn apply_to_writer<W: Write>(
    old: &[u8],
    patch: &[u8],
    new_len_limit: u64,
    w: W,
) -> Result<u64, BsdiffError> {
    let header = Header::parse(patch)?;
    if header.new_size > new_len_limit {
        return Err(BsdiffError::TooLarge {
            claimed: header.new_size,
            limit: new_len_limit,
        });
    }
    let mut sink = WriterSink {
        w,
        buf: vec![0u8; CHUNK.min(header.new_size as usize)],
        written: 0,
    };
    run(old, patch, &header, &mut sink)?;
    Ok(header.new_size)
}

/// Destination of the new bytes: hands out a buffer for the next `len` bytes.
trait Sink {
    /// Calls `f` with a buffer for new bytes `pos..pos + len` (`len <= CHUNK`),
    /// then commits them.
    fn piece(
        &mut self,
        pos: u64,
        len: usize,
        f: &mut dyn FnMut(&mut [u8]) -> Result<(), BsdiffError>,
    ) -> Result<(), BsdiffError>;
}

struct SliceSink<'a> {
    out: &'a mut [u8],
}

impl Sink for SliceSink<'_> {
    fn piece(
        &mut self,
        pos: u64,
        len: usize,
        f: &mut dyn FnMut(&mut [u8]) -> Result<(), BsdiffError>,
    ) -> Result<(), BsdiffError> {
        // `run` keeps pos + len within new_size == out.len().
        let p = pos as usize;
        f(&mut self.out[p..p + len])
    }
}

struct WriterSink<W: Write> {
    w: W,
    buf: Vec<u8>,
    written: u64,
}

impl<W: Write> Sink for WriterSink<W> {
    fn piece(
        &mut self,
        _pos: u64,
        len: usize,
        f: &mut dyn FnMut(&mut [u8]) -> Result<(), BsdiffError>,
    ) -> Result<(), BsdiffError> {
        let b = &mut self.buf[..len];
        f(b)?;
        self.w.write_all(b).map_err(|source| BsdiffError::Write {
            offset: self.written,
            source,
        })?;
        self.written += len as u64;
        Ok(())
    }
}

/// A decompressing reader over one stream, counting decompressed bytes.
struct StreamReader<'a> {
    stream: Stream,
    compression: Compression,
    inner: Box<dyn Read + 'a>,
    pos: u64,
}

impl<'a> StreamReader<'a> {
    fn new(stream: Stream, compression: Compression, data: &'a [u8]) -> Self {
        let inner: Box<dyn Read + 'a> = match compression {
            Compression::None => Box::new(data),
            Compression::Bzip2 => Box::new(bzip2::bufread::BzDecoder::new(data)),
            Compression::Brotli => Box::new(brotli_decompressor::Decompressor::new(data, 4096)),
        };
        StreamReader {
            stream,
            compression,
            inner,
            pos: 0,
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), BsdiffError> {
        let mut done = 0;
        while done < buf.len() {
            match self.inner.read(&mut buf[done..]) {
                Ok(0) => {
                    return Err(BsdiffError::Truncated {
                        stream: self.stream,
                        offset: self.pos,
                        needed: (buf.len() - done) as u64,
                    });
                }
                Ok(n) => {
                    done += n;
                    self.pos += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(BsdiffError::Decompress {
                        stream: self.stream,
                        compression: self.compression,
                        offset: self.pos,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Drives the decoder to the end of its stream: a compressed stream cut
    /// short (a missing end-of-stream marker or checksum) is an error even when
    /// every byte the control entries asked for was already produced. Bytes
    /// left unread are allowed, as the reference appliers allow them.
    fn finish(&mut self) -> Result<(), BsdiffError> {
        let mut b = [0u8; 1];
        loop {
            return match self.inner.read(&mut b) {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => Err(BsdiffError::Decompress {
                    stream: self.stream,
                    compression: self.compression,
                    offset: self.pos,
                    source,
                }),
            };
        }
    }

    fn read_int(&mut self) -> Result<(i64, u64), BsdiffError> {
        let at = self.pos;
        let mut b = [0u8; 8];
        self.read_exact(&mut b)?;
        Ok((decode_int(b), at))
    }
}

/// The application loop shared by every entry point.
fn run(old: &[u8], patch: &[u8], h: &Header, sink: &mut dyn Sink) -> Result<(), BsdiffError> {
    let c_start = HEADER_SIZE;
    let d_start = c_start + h.ctrl_len as usize;
    let e_start = d_start + h.diff_len as usize;
    let mut ctrl = StreamReader::new(Stream::Control, h.compression[0], &patch[c_start..d_start]);
    let mut diff = StreamReader::new(Stream::Diff, h.compression[1], &patch[d_start..e_start]);
    let mut extra = StreamReader::new(Stream::Extra, h.compression[2], &patch[e_start..]);

    let old_len = old.len() as i128;
    let mut new_pos: u64 = 0;
    let mut old_pos: i64 = 0;
    let mut index: u64 = 0;
    while new_pos < h.new_size {
        let (diff_size, d_off) = ctrl.read_int()?;
        let (extra_size, e_off) = ctrl.read_int()?;
        let (seek, s_off) = ctrl.read_int()?;
        let left = h.new_size - new_pos;
        let bad = |offset: u64, field: &'static str, value: i64, reason: String| {
            BsdiffError::BadControl {
                index,
                offset,
                field,
                value,
                reason,
            }
        };
        if diff_size < 0 || diff_size as u64 > left {
            return Err(bad(
                d_off,
                "diff_size",
                diff_size,
                format!("is outside 0..={left} (new bytes left at new offset {new_pos})"),
            ));
        }
        let left_after = left - diff_size as u64;
        if extra_size < 0 || extra_size as u64 > left_after {
            return Err(bad(
                e_off,
                "extra_size",
                extra_size,
                format!(
                    "is outside 0..={left_after} (new bytes left at new offset {})",
                    new_pos + diff_size as u64
                ),
            ));
        }
        // Diff: new = diff byte + old byte (old bytes outside `old` count as 0).
        let mut done: u64 = 0;
        while done < diff_size as u64 {
            let n = (diff_size as u64 - done).min(CHUNK as u64) as usize;
            let base = old_pos as i128 + done as i128;
            sink.piece(new_pos + done, n, &mut |buf| {
                diff.read_exact(buf)?;
                // Overlap of [base, base + n) with [0, old_len).
                let lo = base.clamp(0, old_len);
                let hi = (base + n as i128).clamp(0, old_len);
                if lo < hi {
                    let src = &old[lo as usize..hi as usize];
                    let dst = &mut buf[(lo - base) as usize..(hi - base) as usize];
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d = d.wrapping_add(*s);
                    }
                }
                Ok(())
            })?;
            done += n as u64;
        }
        new_pos += diff_size as u64;
        // Extra: copied verbatim.
        let mut done: u64 = 0;
        while done < extra_size as u64 {
            let n = (extra_size as u64 - done).min(CHUNK as u64) as usize;
            sink.piece(new_pos + done, n, &mut |buf| extra.read_exact(buf))?;
            done += n as u64;
        }
        new_pos += extra_size as u64;
        let next = old_pos as i128 + diff_size as i128 + seek as i128;
        let range = -(MAX_OLD_POS as i128)..=MAX_OLD_POS as i128;
        if !range.contains(&next) {
            return Err(bad(
                s_off,
                "seek",
                seek,
                format!("moves the old offset from {old_pos} out of ±2^62"),
            ));
        }
        old_pos = next as i64;
        index += 1;
    }
    ctrl.finish()?;
    diff.finish()?;
    extra.finish()
}
