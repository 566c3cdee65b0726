//! Decoding one full-payload operation's data into its destination bytes.
//!
//! Every decoder writes into a buffer of exactly the destination size and must
//! end exactly there: a stream that stops short or would produce more is an
//! error, so a hostile stream can never write past its operation or make
//! romkit allocate more than the manifest (already validated) declares.

use std::io::Read;

use super::proto::OpType;

/// Memory an xz stream may ask for. update_engine's generator uses at most a
/// 64 MiB dictionary; liblzma only touches the pages a stream really uses.
pub const XZ_MEMLIMIT: u64 = 128 << 20;

/// Largest zstd window accepted (the zstd default maximum for decoders).
pub const ZSTD_MAX_WINDOW: u64 = 128 << 20;

/// Why an operation's data does not decode to its destination.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// REPLACE data of another length than the destination.
    #[error("REPLACE data is {data} bytes, destination is {dest}")]
    ReplaceLength {
        /// Data length.
        data: usize,
        /// Destination length.
        dest: usize,
    },
    /// The decoder cannot start or the frame header is unusable.
    #[error("{what}: {why}")]
    Setup {
        /// Which decoder (`xz decoder`, `zstd frame header`).
        what: &'static str,
        /// The decoder's message.
        why: String,
    },
    /// The stream ends before the destination is full.
    #[error("{what} stream ends after {filled} bytes, destination is {dest} bytes")]
    Short {
        /// Format name.
        what: &'static str,
        /// Bytes decoded.
        filled: usize,
        /// Destination length.
        dest: usize,
    },
    /// The stream is corrupt.
    #[error("corrupt {what} data after {filled} output bytes: {source}")]
    Corrupt {
        /// Format name.
        what: &'static str,
        /// Bytes decoded before the error.
        filled: usize,
        /// The decoder's error.
        source: std::io::Error,
    },
    /// The stream would produce more than the destination holds.
    #[error("{what} stream decodes to more than the {dest} destination bytes")]
    Long {
        /// Format name.
        what: &'static str,
        /// Destination length.
        dest: usize,
    },
    /// The stream is corrupt after the last destination byte.
    #[error("corrupt {what} data at end of stream: {source}")]
    CorruptEnd {
        /// Format name.
        what: &'static str,
        /// The decoder's error.
        source: std::io::Error,
    },
    /// The operation needs the previous build's partition.
    #[error("{0} needs the previous build's partition and cannot be decoded alone")]
    NeedsSource(OpType),
}

/// Decodes `data` of an operation of type `kind` into `out`, which has the
/// operation's exact destination size.
pub fn decode_into(kind: OpType, data: &[u8], out: &mut [u8]) -> Result<(), DecodeError> {
    match kind {
        OpType::Replace => {
            if data.len() != out.len() {
                return Err(DecodeError::ReplaceLength {
                    data: data.len(),
                    dest: out.len(),
                });
            }
            out.copy_from_slice(data);
            Ok(())
        }
        OpType::Zero | OpType::Discard => {
            out.fill(0);
            Ok(())
        }
        OpType::ReplaceXz => {
            let stream =
                liblzma::stream::Stream::new_stream_decoder(XZ_MEMLIMIT, 0).map_err(|e| {
                    DecodeError::Setup {
                        what: "xz decoder",
                        why: e.to_string(),
                    }
                })?;
            let dec = liblzma::bufread::XzDecoder::new_stream(data, stream);
            read_exactly(dec, out, "xz")
        }
        OpType::ReplaceBz => read_exactly(bzip2::bufread::BzDecoder::new(data), out, "bzip2"),
        OpType::ReplaceZstd => {
            let mut src = data;
            let dec = ruzstd::decoding::StreamingDecoder::new_with_max_window_size(
                &mut src,
                ZSTD_MAX_WINDOW,
            )
            .map_err(|e| DecodeError::Setup {
                what: "zstd frame header",
                why: e.to_string(),
            })?;
            read_exactly(dec, out, "zstd")
        }
        other => Err(DecodeError::NeedsSource(other)),
    }
}

/// Fills `out` from `r` and checks that the stream ends exactly there.
fn read_exactly<R: Read>(mut r: R, out: &mut [u8], what: &'static str) -> Result<(), DecodeError> {
    let mut filled = 0;
    while filled < out.len() {
        match r.read(&mut out[filled..]) {
            Ok(0) => {
                return Err(DecodeError::Short {
                    what,
                    filled,
                    dest: out.len(),
                });
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(DecodeError::Corrupt {
                    what,
                    filled,
                    source,
                });
            }
        }
    }
    let mut probe = [0u8; 1];
    loop {
        match r.read(&mut probe) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                return Err(DecodeError::Long {
                    what,
                    dest: out.len(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => return Err(DecodeError::CorruptEnd { what, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn xz_exact_short_long() {
        let data: Vec<u8> = (0..10000u32).map(|i| (i % 251) as u8).collect();
        let c = xz(&data);
        let mut out = vec![0u8; data.len()];
        decode_into(OpType::ReplaceXz, &c, &mut out).unwrap();
        assert_eq!(out, data);
        let mut short = vec![0u8; data.len() - 1];
        assert!(
            decode_into(OpType::ReplaceXz, &c, &mut short)
                .unwrap_err()
                .to_string()
                .contains("more than")
        );
        let mut long = vec![0u8; data.len() + 1];
        assert!(
            decode_into(OpType::ReplaceXz, &c, &mut long)
                .unwrap_err()
                .to_string()
                .contains("ends after")
        );
        let mut bad = c.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        assert!(decode_into(OpType::ReplaceXz, &bad, &mut out).is_err());
    }

    #[test]
    fn bz_and_zstd_and_raw() {
        let data: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 13) as u8).collect();
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
        e.write_all(&data).unwrap();
        let bz = e.finish().unwrap();
        let mut out = vec![0u8; data.len()];
        decode_into(OpType::ReplaceBz, &bz, &mut out).unwrap();
        assert_eq!(out, data);
        // zstd frame made by ruzstd's own encoder would test ruzstd against itself;
        // the frame below is a raw (uncompressed) block, hand-assembled from RFC 8878.
        let payload = b"hello zstd";
        let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd];
        frame.push(0x20); // FHD: single segment, FCS 1 byte
        frame.push(payload.len() as u8);
        let bh = ((payload.len() as u32) << 3) | 1; // last block, raw
        frame.extend_from_slice(&bh.to_le_bytes()[..3]);
        frame.extend_from_slice(payload);
        let mut out = vec![0u8; payload.len()];
        decode_into(OpType::ReplaceZstd, &frame, &mut out).unwrap();
        assert_eq!(&out, payload);
        let mut out = vec![1u8; 4];
        decode_into(OpType::Zero, &[], &mut out).unwrap();
        assert_eq!(out, [0; 4]);
        assert!(decode_into(OpType::Replace, b"abc", &mut out).is_err());
        assert!(decode_into(OpType::SourceCopy, b"", &mut out).is_err());
    }
}
