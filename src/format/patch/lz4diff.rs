//! LZ4DIFF patches (LZ4DIFF_BSDIFF and LZ4DIFF_PUFFDIFF operations).
//!
//! update_engine diffs LZ4-compressed files (EROFS files with lz4 or lz4hc
//! physical clusters) on their decompressed bytes: the applier decompresses
//! the source blocks, applies an inner bsdiff or PUF1 patch, and compresses
//! the result again block by block with the recorded algorithm and level.
//! Where the generator's recompression differed from the real target, a
//! block carries a postfix bsdiff patch from the recompressed bytes to the
//! target bytes.
//!
//! Layout (integers big-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 7 | `LZ4DIFF` |
//! | 7 | 4 | version, 1 |
//! | 11 | 4 | `pb_header_size`: length of the protobuf header |
//! | 15 | 1 | unused (zero) |
//! | 16 | `pb_header_size` | `Lz4diffHeader` protobuf (proto3) |
//! | … | rest | the inner patch (bsdiff, or PUF1 for PUFFDIFF) |
//!
//! update_engine's format header describes an 8-byte magic, but both its
//! writer and its reader put the version right after the 7 magic bytes; this
//! codec follows the code.
//!
//! Recompression uses liblz4's "fill the destination" entry points
//! (`LZ4_compress_destSize`, `LZ4_compress_HC_destSize`), given every
//! uncompressed byte from the block's start to the end of the blocks, as
//! update_engine does: the output is the longest prefix that fits in the
//! block's compressed length, so it matches mkfs.erofs clusters. liblz4 1.9.4
//! and 1.10 produce the same bytes for LZ4 and for LZ4HC levels 3 and up;
//! levels 1 and 2 changed in 1.10, and a patch made with the other version
//! then fails the per-block SHA-256 check with a message saying so.
//!
//! Invariants enforced before anything is decompressed:
//! - magic, version and the protobuf length are checked against the patch;
//! - each side's blocks are contiguous from offset 0 in uncompressed space,
//!   none is empty, a stored block (`compressed_length >= uncompressed_length`)
//!   has equal lengths, and the source blocks cover the source exactly;
//! - the uncompressed totals are at most the caller's working limit and at
//!   most 255 times the compressed bytes (LZ4's densest encoding), so no
//!   allocation exceeds what the caller allowed.

use prost::Message;
use sha2::{Digest, Sha256};

use super::{bsdiff, puffin};
use crate::util::hex;

/// The magic at offset 0.
pub const MAGIC: &[u8; 7] = b"LZ4DIFF";
/// The only version written by update_engine.
pub const VERSION: u32 = 1;
/// Bytes before the protobuf header.
pub const HEADER_SIZE: usize = 16;

/// Largest LZ4 expansion: one token byte plus length bytes of 255 each.
const MAX_RATIO: u64 = 255;
/// Leading zeros skipped before a zero-padded cluster (one EROFS block).
const PADDING_SCAN: usize = 4096;

/// `CompressionAlgorithm` (proto3).
#[derive(Clone, PartialEq, Message)]
pub struct CompressionAlgorithm {
    /// 0 uncompressed, 1 LZ4, 2 LZ4HC.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// LZ4HC level (liblz4 treats values below 1 as its default, 9, and
    /// values above 12 as 12).
    #[prost(int32, tag = "2")]
    pub level: i32,
}

/// `CompressedBlockInfo` (proto3): one compressed cluster.
#[derive(Clone, PartialEq, Message)]
pub struct CompressedBlockInfo {
    /// Offset of the block's bytes in the decompressed file.
    #[prost(uint64, tag = "1")]
    pub uncompressed_offset: u64,
    /// Decompressed length.
    #[prost(uint64, tag = "2")]
    pub uncompressed_length: u64,
    /// Length on disk; at least `uncompressed_length` for a stored block.
    #[prost(uint64, tag = "3")]
    pub compressed_length: u64,
    /// SHA-256 of the generator's recompressed block (destination only).
    #[prost(bytes = "vec", tag = "4")]
    pub sha256_hash: Vec<u8>,
    /// bsdiff patch from the recompressed block to the target block.
    #[prost(bytes = "vec", tag = "5")]
    pub postfix_bspatch: Vec<u8>,
}

/// `CompressionInfo` (proto3): one side's clusters.
#[derive(Clone, PartialEq, Message)]
pub struct CompressionInfo {
    /// How the compressed blocks were made.
    #[prost(message, optional, tag = "1")]
    pub algo: Option<CompressionAlgorithm>,
    /// The blocks, in order.
    #[prost(message, repeated, tag = "2")]
    pub block_info: Vec<CompressedBlockInfo>,
    /// EROFS zero padding: compressed data ends at the end of its block,
    /// preceded by zeros.
    #[prost(bool, tag = "3")]
    pub zero_padding_enabled: bool,
}

/// `Lz4diffHeader` (proto3).
#[derive(Clone, PartialEq, Message)]
pub struct Lz4diffHeader {
    /// Source clusters.
    #[prost(message, optional, tag = "1")]
    pub src_info: Option<CompressionInfo>,
    /// Destination clusters.
    #[prost(message, optional, tag = "2")]
    pub dst_info: Option<CompressionInfo>,
    /// 0 bsdiff, 1 PUF1.
    #[prost(int32, tag = "3")]
    pub inner_type: i32,
}

/// Which side of the patch a field belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// `src_info`.
    Src,
    /// `dst_info`.
    Dst,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Src => "src_info",
            Side::Dst => "dst_info",
        })
    }
}

/// What is wrong with an LZ4DIFF patch, or with applying it.
#[derive(Debug, thiserror::Error)]
pub enum Lz4diffError {
    /// The patch is shorter than the fixed header.
    #[error("lz4diff patch: {len} bytes is shorter than the {HEADER_SIZE}-byte header")]
    TooShort {
        /// Patch length.
        len: usize,
    },
    /// The first 7 bytes are not `LZ4DIFF`.
    #[error("lz4diff patch, offset 0: magic {found:02x?} is not \"LZ4DIFF\"")]
    BadMagic {
        /// The bytes found.
        found: Vec<u8>,
    },
    /// The version is not 1.
    #[error("lz4diff patch, offset 7: version {version}, romkit reads version {VERSION}")]
    BadVersion {
        /// Version found.
        version: u32,
    },
    /// The protobuf header runs past the patch.
    #[error(
        "lz4diff patch, offset 11: pb_header_size = {size}, but only {available} bytes follow the {HEADER_SIZE}-byte header"
    )]
    HeaderOverrun {
        /// Claimed size.
        size: u32,
        /// Bytes after the fixed header.
        available: usize,
    },
    /// The protobuf header does not decode.
    #[error("lz4diff patch, offset {HEADER_SIZE}: the Lz4diffHeader protobuf does not decode: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A field has a value this codec cannot use.
    #[error("lz4diff header: {field} = {value} {reason}")]
    BadField {
        /// Field path.
        field: String,
        /// Value found.
        value: i64,
        /// Why it is refused.
        reason: String,
    },
    /// A block's lengths or offset are inconsistent.
    #[error("lz4diff header: {side}.block_info[{index}]: {why}")]
    BadBlock {
        /// Which side.
        side: Side,
        /// Block index.
        index: usize,
        /// What is wrong.
        why: String,
    },
    /// A size claim exceeds what the caller allows.
    #[error("lz4diff patch: {what} is {claimed} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// What is claimed.
        what: String,
        /// The claim.
        claimed: u64,
        /// The limit.
        limit: u64,
    },
    /// A source cluster does not decompress to its recorded length.
    #[error(
        "lz4diff: src_info.block_info[{index}] (source bytes {offset}..{end}) does not decompress to {expected} bytes: {why}"
    )]
    Decompress {
        /// Block index.
        index: usize,
        /// Offset of the cluster in the source.
        offset: u64,
        /// End of the cluster.
        end: u64,
        /// Recorded uncompressed length.
        expected: u64,
        /// What went wrong.
        why: String,
    },
    /// The inner bsdiff patch failed.
    #[error("lz4diff inner patch: {0}")]
    InnerBsdiff(#[source] bsdiff::BsdiffError),
    /// The inner PUF1 patch failed.
    #[error("lz4diff inner patch: {0}")]
    InnerPuffin(#[from] puffin::PuffinError),
    /// The inner patch produced fewer bytes than the destination blocks need.
    #[error(
        "lz4diff: the inner patch produced {produced} bytes, fewer than the {needed} bytes dst_info's blocks cover"
    )]
    ShortInner {
        /// Bytes produced.
        produced: u64,
        /// Bytes the blocks cover.
        needed: u64,
    },
    /// liblz4 could not compress a destination block.
    #[error(
        "lz4diff: recompressing dst_info.block_info[{index}] into {compressed} bytes failed: {why}"
    )]
    Compress {
        /// Block index.
        index: usize,
        /// Its compressed length.
        compressed: u64,
        /// liblz4's answer.
        why: String,
    },
    /// A recompressed block differs from the generator's.
    #[error(
        "lz4diff: recompressed dst_info.block_info[{index}] hashes to {actual}, the patch records {expected} (the patch was made with an LZ4 that compresses differently)"
    )]
    BlockHash {
        /// Block index.
        index: usize,
        /// Recorded SHA-256.
        expected: String,
        /// SHA-256 of romkit's recompressed block.
        actual: String,
    },
    /// A postfix patch failed.
    #[error("lz4diff: dst_info.block_info[{index}].postfix_bspatch: {source}")]
    Postfix {
        /// Block index.
        index: usize,
        /// bsdiff's error.
        #[source]
        source: bsdiff::BsdiffError,
    },
}

/// How the destination blocks are compressed again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// No compressed block on this side (only stored blocks).
    Stored,
    /// `LZ4_compress_destSize`.
    Lz4,
    /// `LZ4_compress_HC_destSize` at this level.
    Lz4Hc(i32),
}

/// The inner patch's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inner {
    /// bsdiff (`BSDIFF40` or `BSDF2`): LZ4DIFF_BSDIFF.
    Bsdiff,
    /// PUF1: LZ4DIFF_PUFFDIFF.
    Puffdiff,
}

/// One validated cluster.
#[derive(Clone, Debug)]
pub struct Block {
    /// Offset in the decompressed file.
    pub offset: u64,
    /// Decompressed length.
    pub len: u64,
    /// Length on disk (equal to `len` for a stored block).
    pub compressed: u64,
    /// Recorded SHA-256 of the recompressed block.
    pub sha256: Option<[u8; 32]>,
    /// bsdiff from the recompressed block to the target block (may be empty).
    pub postfix: Vec<u8>,
}

impl Block {
    /// Whether the cluster holds LZ4 data (else its bytes are stored).
    pub fn is_compressed(&self) -> bool {
        self.compressed < self.len
    }
}

/// One side's validated clusters.
#[derive(Clone, Debug)]
pub struct Layout {
    /// How compressed blocks are made.
    pub algorithm: Algorithm,
    /// The clusters, contiguous from 0.
    pub blocks: Vec<Block>,
    /// EROFS zero padding.
    pub zero_padding: bool,
    /// Decompressed bytes the blocks cover.
    pub uncompressed_len: u64,
    /// Bytes the blocks occupy on disk.
    pub compressed_len: u64,
}

/// A parsed LZ4DIFF patch.
#[derive(Clone, Debug)]
pub struct Patch<'a> {
    /// Source clusters.
    pub src: Layout,
    /// Destination clusters.
    pub dst: Layout,
    /// Inner patch format.
    pub inner_type: Inner,
    /// The inner patch.
    pub inner: &'a [u8],
}

/// Memory limits for applying one patch.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest output accepted (the destination extents).
    pub out_len: u64,
    /// Largest decompressed file accepted, on either side.
    pub work_len: u64,
}

impl Limits {
    /// Limits for an output of at most `out_len` bytes from `src_len` source
    /// bytes: decompressed files up to 32 times the larger, at least 64 MiB,
    /// at most what liblz4's `int` sizes allow.
    pub fn for_output(out_len: u64, src_len: u64) -> Self {
        Limits {
            out_len,
            work_len: out_len
                .max(src_len)
                .saturating_mul(32)
                .max(64 << 20)
                .min(i32::MAX as u64),
        }
    }
}

impl<'a> Patch<'a> {
    /// Parses and validates the header of `patch`.
    pub fn parse(patch: &'a [u8]) -> Result<Self, Lz4diffError> {
        if patch.len() < HEADER_SIZE {
            return Err(Lz4diffError::TooShort { len: patch.len() });
        }
        if &patch[..7] != MAGIC {
            return Err(Lz4diffError::BadMagic {
                found: patch[..7].to_vec(),
            });
        }
        let be32 = |at: usize| {
            u32::from_be_bytes([patch[at], patch[at + 1], patch[at + 2], patch[at + 3]])
        };
        let version = be32(7);
        if version != VERSION {
            return Err(Lz4diffError::BadVersion { version });
        }
        let size = be32(11);
        let available = patch.len() - HEADER_SIZE;
        if size as usize > available {
            return Err(Lz4diffError::HeaderOverrun { size, available });
        }
        let pb_end = HEADER_SIZE + size as usize;
        let header = Lz4diffHeader::decode(&patch[HEADER_SIZE..pb_end])?;
        let inner_type = match header.inner_type {
            0 => Inner::Bsdiff,
            1 => Inner::Puffdiff,
            v => {
                return Err(Lz4diffError::BadField {
                    field: "inner_type".into(),
                    value: v.into(),
                    reason: "is neither 0 (BSDIFF) nor 1 (PUFFDIFF)".into(),
                });
            }
        };
        let src = Layout::validate(header.src_info.unwrap_or_default(), Side::Src)?;
        if src.blocks.is_empty() {
            return Err(Lz4diffError::BadField {
                field: "src_info.block_info".into(),
                value: 0,
                reason: "blocks: the source must have at least one".into(),
            });
        }
        let dst = Layout::validate(header.dst_info.unwrap_or_default(), Side::Dst)?;
        Ok(Patch {
            src,
            dst,
            inner_type,
            inner: &patch[pb_end..],
        })
    }
}

impl Layout {
    /// Checks one side's blocks (see the module docs) and keeps what the
    /// applier needs.
    pub fn validate(info: CompressionInfo, side: Side) -> Result<Self, Lz4diffError> {
        let bad = |index: usize, why: String| Lz4diffError::BadBlock { side, index, why };
        let mut blocks = Vec::with_capacity(info.block_info.len());
        let (mut ulen, mut clen) = (0u64, 0u64);
        let mut any_compressed = false;
        for (i, b) in info.block_info.into_iter().enumerate() {
            if b.uncompressed_offset != ulen {
                return Err(bad(
                    i,
                    format!(
                        "uncompressed_offset = {}, expected {ulen} (blocks must be contiguous from 0)",
                        b.uncompressed_offset
                    ),
                ));
            }
            if b.uncompressed_length == 0 || b.compressed_length == 0 {
                return Err(bad(
                    i,
                    format!(
                        "uncompressed_length = {}, compressed_length = {}: a block cannot be empty",
                        b.uncompressed_length, b.compressed_length
                    ),
                ));
            }
            if b.compressed_length > b.uncompressed_length {
                return Err(bad(
                    i,
                    format!(
                        "compressed_length = {} is more than uncompressed_length = {} (a stored block has equal lengths)",
                        b.compressed_length, b.uncompressed_length
                    ),
                ));
            }
            let compressed = b.compressed_length < b.uncompressed_length;
            if compressed && b.uncompressed_length > b.compressed_length.saturating_mul(MAX_RATIO) {
                return Err(bad(
                    i,
                    format!(
                        "uncompressed_length = {} is more than {MAX_RATIO} times compressed_length = {}, more than LZ4 can encode",
                        b.uncompressed_length, b.compressed_length
                    ),
                ));
            }
            let sha256 = match b.sha256_hash.len() {
                0 => None,
                32 => b.sha256_hash.as_slice().try_into().ok(),
                n => return Err(bad(i, format!("sha256_hash is {n} bytes, not 32"))),
            };
            any_compressed |= compressed;
            ulen = ulen
                .checked_add(b.uncompressed_length)
                .ok_or_else(|| bad(i, "uncompressed offsets overflow".into()))?;
            clen = clen
                .checked_add(b.compressed_length)
                .ok_or_else(|| bad(i, "compressed lengths overflow".into()))?;
            blocks.push(Block {
                offset: b.uncompressed_offset,
                len: b.uncompressed_length,
                compressed: b.compressed_length,
                sha256,
                postfix: b.postfix_bspatch,
            });
        }
        let algo = info.algo.unwrap_or_default();
        let algorithm = match algo.r#type {
            _ if !any_compressed => Algorithm::Stored,
            1 => Algorithm::Lz4,
            2 => Algorithm::Lz4Hc(algo.level),
            v => {
                return Err(Lz4diffError::BadField {
                    field: format!("{side}.algo.type"),
                    value: v.into(),
                    reason: "is neither 1 (LZ4) nor 2 (LZ4HC), but the side has compressed blocks"
                        .into(),
                });
            }
        };
        Ok(Layout {
            algorithm,
            blocks,
            zero_padding: info.zero_padding_enabled,
            uncompressed_len: ulen,
            compressed_len: clen,
        })
    }
}

/// Applies an LZ4DIFF patch to `src` (the concatenated source extents) and
/// returns the destination bytes, refusing sizes above `limits`.
pub fn apply(src: &[u8], patch: &[u8], limits: Limits) -> Result<Vec<u8>, Lz4diffError> {
    let p = Patch::parse(patch)?;
    if p.src.compressed_len != src.len() as u64 {
        return Err(Lz4diffError::BadField {
            field: "src_info.block_info".into(),
            value: p.src.compressed_len as i64,
            reason: format!(
                "compressed bytes in total, but the source extents hold {} bytes (they must match exactly)",
                src.len()
            ),
        });
    }
    for (side, l) in [(Side::Src, &p.src), (Side::Dst, &p.dst)] {
        if l.uncompressed_len > limits.work_len {
            return Err(Lz4diffError::TooLarge {
                what: format!("the decompressed {side} file"),
                claimed: l.uncompressed_len,
                limit: limits.work_len,
            });
        }
    }
    if p.dst.compressed_len > limits.out_len {
        return Err(Lz4diffError::TooLarge {
            what: "the dst_info blocks' compressed total".into(),
            claimed: p.dst.compressed_len,
            limit: limits.out_len,
        });
    }
    let plain_src = decompress(src, &p.src)?;
    let plain_dst = match p.inner_type {
        Inner::Bsdiff => bsdiff::apply(&plain_src, p.inner, limits.work_len)
            .map_err(Lz4diffError::InnerBsdiff)?,
        Inner::Puffdiff => puffin::apply(
            &plain_src,
            p.inner,
            puffin::Limits {
                new_len: limits.work_len,
                puff_len: limits.work_len.saturating_mul(16).saturating_add(1 << 20),
            },
        )?,
    };
    drop(plain_src);
    if (plain_dst.len() as u64) < p.dst.uncompressed_len {
        return Err(Lz4diffError::ShortInner {
            produced: plain_dst.len() as u64,
            needed: p.dst.uncompressed_len,
        });
    }
    compress(&plain_dst, &p.dst, limits.out_len)
}

/// Decompresses `src` block by block (the blocks cover it exactly).
pub fn decompress(src: &[u8], layout: &Layout) -> Result<Vec<u8>, Lz4diffError> {
    let mut out = vec![0u8; layout.uncompressed_len as usize];
    let mut at = 0usize;
    for (i, b) in layout.blocks.iter().enumerate() {
        let cluster = &src[at..at + b.compressed as usize];
        let dst = &mut out[b.offset as usize..(b.offset + b.len) as usize];
        if !b.is_compressed() {
            dst.copy_from_slice(cluster);
        } else {
            let margin = if layout.zero_padding {
                cluster
                    .iter()
                    .take(PADDING_SCAN)
                    .take_while(|&&c| c == 0)
                    .count()
            } else {
                0
            };
            let err = |why: String| Lz4diffError::Decompress {
                index: i,
                offset: at as u64,
                end: (at + cluster.len()) as u64,
                expected: b.len,
                why,
            };
            let n = lzzzz::lz4::decompress_partial(&cluster[margin..], dst, b.len as usize)
                .map_err(|e| err(format!("liblz4: {e}")))?;
            if n as u64 != b.len {
                return Err(err(format!("it holds only {n} bytes")));
            }
        }
        at += cluster.len();
    }
    Ok(out)
}

/// Compresses `plain` block by block as `layout` records, applies the
/// postfix patches, and appends the bytes after the last block unchanged.
pub fn compress(plain: &[u8], layout: &Layout, out_limit: u64) -> Result<Vec<u8>, Lz4diffError> {
    let end = layout.uncompressed_len as usize;
    let mut out = Vec::with_capacity(layout.compressed_len as usize + (plain.len() - end));
    for (i, b) in layout.blocks.iter().enumerate() {
        let start = b.offset as usize;
        let block = if b.is_compressed() {
            compress_block(i, &plain[start..end], b, layout)?
        } else {
            plain[start..start + b.len as usize].to_vec()
        };
        if let Some(expected) = b.sha256 {
            let actual: [u8; 32] = Sha256::digest(&block).into();
            if actual != expected {
                return Err(Lz4diffError::BlockHash {
                    index: i,
                    expected: hex(&expected),
                    actual: hex(&actual),
                });
            }
        }
        if b.postfix.is_empty() {
            out.extend_from_slice(&block);
        } else {
            let room = out_limit.saturating_sub(out.len() as u64);
            let fixed = bsdiff::apply(&block, &b.postfix, room)
                .map_err(|source| Lz4diffError::Postfix { index: i, source })?;
            out.extend_from_slice(&fixed);
        }
    }
    out.extend_from_slice(&plain[end..]);
    if out.len() as u64 > out_limit {
        return Err(Lz4diffError::TooLarge {
            what: "the recompressed output".into(),
            claimed: out.len() as u64,
            limit: out_limit,
        });
    }
    Ok(out)
}

/// Compresses the start of `rest` (every byte from the block's start to the
/// end of the blocks) into exactly `b.compressed` bytes, zero-padded at the
/// front or the back.
fn compress_block(
    index: usize,
    rest: &[u8],
    b: &Block,
    layout: &Layout,
) -> Result<Vec<u8>, Lz4diffError> {
    let mut buf = vec![0u8; b.compressed as usize];
    let result = match layout.algorithm {
        Algorithm::Lz4 => lzzzz::lz4::compress_fill(rest, &mut buf),
        Algorithm::Lz4Hc(level) => lzzzz::lz4_hc::compress_fill(rest, &mut buf, level),
        // Validation makes a side with compressed blocks name an algorithm.
        Algorithm::Stored => Ok((0, 0)),
    };
    let wrote = match result {
        Ok((_, wrote)) if wrote > 0 && wrote <= buf.len() => wrote,
        Ok((_, wrote)) => {
            return Err(Lz4diffError::Compress {
                index,
                compressed: b.compressed,
                why: format!("liblz4 wrote {wrote} bytes"),
            });
        }
        Err(e) => {
            return Err(Lz4diffError::Compress {
                index,
                compressed: b.compressed,
                why: e.to_string(),
            });
        }
    };
    // liblz4 may leave scratch bytes past what it reports.
    buf[wrote..].fill(0);
    if layout.zero_padding && wrote < buf.len() {
        let pad = buf.len() - wrote;
        buf.copy_within(..wrote, pad);
        buf[..pad].fill(0);
    }
    Ok(buf)
}
