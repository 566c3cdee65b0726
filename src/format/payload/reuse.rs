//! A partition of a full payload written again for an image edited in place
//! (see [`super::writer::PayloadInput::Edited`]): the edit says which byte
//! ranges of the image changed and which became zero, and every bit of the
//! source payload that still describes the image is kept.
//!
//! For each source operation, in manifest order:
//! - no byte of its destination changed: the operation and its blob are
//!   copied byte for byte (the blob read from the source, and checked
//!   against its `data_sha256_hash`, only when the payload is streamed; only
//!   `data_offset` moves);
//! - every byte of its destination is now zero: a ZERO operation over the
//!   same extents, without data;
//! - otherwise its destination is read from the edited image and encoded
//!   again over the same extents: REPLACE_XZ as update_engine's generator
//!   writes (whatever compression the source used), or REPLACE when xz does
//!   not make it smaller.
//!
//! Blocks appended after the source image's end get new operations, one per
//! chunk, as a new image's would. The operations to encode again are encoded
//! all at once in parallel, each blob stored in the payload's scratch file as
//! it is made; every operation is then laid out in manifest order, so the
//! output depends only on the inputs.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::blobs::{Blobs, Stash, Stored};
use super::proto::{Extent, InstallOperation, OpType, PartitionInfo, PartitionUpdate};
use super::writer::{
    Chunk, ImageInput, PayloadOptions, PayloadWriteError, append_chunk, check_copyable,
    compress_xz, hash_file, read_chunk, replace_op,
};
use super::{Operation, Payload};

type Result<T, E = PayloadWriteError> = std::result::Result<T, E>;

/// What the edit means for one source operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// Copied with its blob.
    Copy,
    /// Became a ZERO operation.
    Zero,
    /// Encoded again from the edited image.
    Encode,
}

/// Decides what becomes of `op` given the sorted, disjoint byte ranges of
/// the image that `changed`, and the part of them that is now `zeroed`.
pub fn classify(op: &Operation, changed: &[Range<u64>], zeroed: &[Range<u64>]) -> Reuse {
    let touches = |r: &super::ByteRange| overlaps(changed, r.offset..r.offset + r.len);
    if !op.dst.iter().any(touches) {
        return Reuse::Copy;
    }
    let all_zero = op
        .dst
        .iter()
        .all(|r| covers(zeroed, r.offset..r.offset + r.len));
    if all_zero { Reuse::Zero } else { Reuse::Encode }
}

/// Whether any range of the sorted, disjoint `ranges` overlaps `r`.
fn overlaps(ranges: &[Range<u64>], r: Range<u64>) -> bool {
    // The first range ending after r.start is the only candidate.
    let i = ranges.partition_point(|x| x.end <= r.start);
    ranges.get(i).is_some_and(|x| x.start < r.end) && !r.is_empty()
}

/// Whether the sorted, disjoint (and merged) `ranges` cover all of `r`.
fn covers(ranges: &[Range<u64>], r: Range<u64>) -> bool {
    let i = ranges.partition_point(|x| x.end <= r.start);
    ranges
        .get(i)
        .is_some_and(|x| x.start <= r.start && x.end >= r.end)
}

/// How many operations of each kind an edited partition got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReuseCounts {
    /// Source operations copied byte for byte.
    pub copied: usize,
    /// Source operations turned into ZERO.
    pub zeroed: usize,
    /// Source operations encoded again.
    pub encoded: usize,
    /// Of those, the ones whose all-zero blocks became a ZERO operation of
    /// their own, so that only the other blocks were encoded.
    pub split: usize,
    /// Bytes encoded again.
    pub encoded_bytes: u64,
    /// The xz preset found to reproduce the source's own blobs, used for
    /// the operations encoded again (`None`: the options' preset).
    pub preset: Option<u32>,
    /// New operations for appended blocks.
    pub appended: usize,
}

/// One prepared operation: the manifest entry and its data.
struct Prepared<'a> {
    op: InstallOperation,
    blob: Blob<'a>,
    /// Image bytes this operation encoded (0 for a copy or ZERO).
    encoded: u64,
}

/// The data of a [`Prepared`] operation.
enum Blob<'a> {
    /// None (a ZERO operation).
    None,
    /// The blob of this source operation, copied.
    Copied(&'a Operation),
    /// Made here, in memory.
    Made(Vec<u8>),
    /// Made here and already in the scratch file (its hash in the entry).
    Stored(Stored),
}

impl Prepared<'_> {
    /// Writes a blob made here to `stash`, its hash into the entry.
    fn store(mut self, stash: &Stash<'_>) -> io::Result<Self> {
        if let Blob::Made(b) = &self.blob {
            if b.is_empty() {
                self.blob = Blob::None;
            } else {
                self.op.data_sha256_hash = Some(Sha256::digest(b).to_vec());
                self.op.data_length = Some(b.len() as u64);
                self.blob = Blob::Stored(stash.write(b)?);
            }
        }
        Ok(self)
    }
}

/// An edited image and what the edit changed.
pub(super) struct Edit<'e> {
    /// The edited image.
    pub image: &'e ImageInput,
    /// Byte ranges that differ from the source's (sorted, disjoint).
    pub changed: &'e [Range<u64>],
    /// The part of `changed` that is now all zero (sorted, disjoint, merged).
    pub zeroed: &'e [Range<u64>],
    /// The edited image's SHA-256, if known.
    pub sha256: Option<[u8; 32]>,
}

/// Writes the partition `name` of `payload` for its edited image, laying
/// its blobs out in `blobs`. Returns the manifest entry.
pub(super) fn edited_partition<'a>(
    payload: &'a Payload,
    name: &'a str,
    edit: &Edit<'_>,
    opts: &PayloadOptions,
    pool: &rayon::ThreadPool,
    blobs: &mut Blobs<'a>,
    data_path: &Path,
) -> Result<(PartitionUpdate, ReuseCounts)> {
    let Edit {
        image: img,
        changed,
        zeroed,
        sha256,
    } = *edit;
    let (part, mut update) = check_copyable(payload, name, opts)?;
    let img_err = PayloadWriteError::io(&img.path);
    let file = File::open(&img.path).map_err(&img_err)?;
    let size = file.metadata().map_err(&img_err)?.len();
    if size < part.size || size % opts.block_size != 0 {
        return Err(PayloadWriteError::ImageSize {
            path: img.path.clone(),
            size,
            block: opts.block_size,
        });
    }
    let data_err = PayloadWriteError::io(data_path);
    let mut counts = ReuseCounts::default();
    let preset = source_preset(payload, &part.ops, changed, &file, opts.block_size);
    let opts = &PayloadOptions {
        xz_level: preset.unwrap_or(opts.xz_level),
        ..opts.clone()
    };
    counts.preset = preset;
    let (image_hash, written) = pool.install(|| {
        rayon::join(
            || sha256.map_or_else(|| hash_file(&file, size), Ok),
            || -> Result<Vec<InstallOperation>> {
                let how: Vec<Reuse> = part
                    .ops
                    .iter()
                    .map(|op| classify(op, changed, zeroed))
                    .collect();
                // Every operation to encode again is encoded at once, in
                // parallel, its blobs stored as they are made: no operation
                // waits for a slower one before it.
                let made = blobs
                    .stash(|stash| {
                        part.ops
                            .par_iter()
                            .zip(&how)
                            .filter(|(_, h)| **h == Reuse::Encode)
                            .map(|(op, _)| {
                                let proto = source_proto(&update, op, payload, name)?;
                                prepare(op, proto, Reuse::Encode, zeroed, &file, opts)
                                    .and_then(|p| p.into_iter().map(|p| p.store(stash)).collect())
                                    .map_err(&img_err)
                            })
                            .collect::<Result<Vec<Vec<Prepared<'a>>>>>()
                    })
                    .map_err(&data_err)??;
                let mut made = made.into_iter();
                let mut ops = Vec::with_capacity(part.ops.len());
                for (op, how) in part.ops.iter().zip(how) {
                    let p = match how {
                        Reuse::Encode => made.next().expect("one per operation to encode"),
                        _ => {
                            let proto = source_proto(&update, op, payload, name)?;
                            prepare(op, proto, how, zeroed, &file, opts).map_err(&img_err)?
                        }
                    };
                    match how {
                        Reuse::Copy => counts.copied += 1,
                        Reuse::Zero => counts.zeroed += 1,
                        Reuse::Encode => {
                            counts.encoded += 1;
                            counts.split += usize::from(p.len() > 1);
                            counts.encoded_bytes += p.iter().map(|x| x.encoded).sum::<u64>();
                        }
                    }
                    for p in p {
                        ops.push(place(p, payload, name, blobs).map_err(&data_err)?);
                    }
                }
                let tail = tail_chunks(part.size, size, &file, opts).map_err(&img_err)?;
                counts.appended = tail.len();
                for c in tail {
                    ops.push(append_chunk(c, blobs).map_err(&data_err)?);
                }
                Ok(ops)
            },
        )
    });
    update.operations = written?;
    update.new_partition_info = Some(PartitionInfo {
        size: Some(size),
        hash: Some(image_hash.map_err(&img_err)?.to_vec()),
    });
    Ok((update, counts))
}

/// The manifest entry of the source operation `op` of partition `name`.
fn source_proto(
    update: &PartitionUpdate,
    op: &Operation,
    payload: &Payload,
    name: &str,
) -> Result<InstallOperation> {
    update
        .operations
        .get(op.index)
        .cloned()
        .ok_or_else(|| PayloadWriteError::CopyMissingOp {
            payload: payload.source.path().to_path_buf(),
            partition: name.to_string(),
            index: op.index,
        })
}

/// The new operations (and blobs) for the source operation `op`, whose
/// manifest entry is `proto`: one, or two when an operation to encode again
/// has blocks that are now all zero (a ZERO operation for those, and the
/// rest encoded over the remaining extents, in destination order).
fn prepare<'a>(
    op: &'a Operation,
    mut proto: InstallOperation,
    how: Reuse,
    zeroed: &[Range<u64>],
    image: &File,
    opts: &PayloadOptions,
) -> io::Result<Vec<Prepared<'a>>> {
    proto.src_extents.clear();
    proto.src_length = None;
    proto.src_sha256_hash = None;
    match how {
        Reuse::Copy => Ok(vec![Prepared {
            op: proto,
            blob: Blob::Copied(op),
            encoded: 0,
        }]),
        Reuse::Zero => Ok(vec![zero_op(proto)]),
        Reuse::Encode => {
            let segments = split_zeroed(op, zeroed, opts.block_size);
            if segments.len() == 1 {
                let all: Vec<Range<u64>> =
                    op.dst.iter().map(|r| r.offset..r.offset + r.len).collect();
                return Ok(vec![encode(proto, op, &all, image, opts)?]);
            }
            segments
                .into_iter()
                .map(|(zero, r)| {
                    let mut p = proto.clone();
                    p.dst_extents = extents(std::slice::from_ref(&r), opts.block_size);
                    if zero {
                        Ok(zero_op(p))
                    } else {
                        encode(p, op, &[r], image, opts)
                    }
                })
                .collect()
        }
    }
}

/// Input bytes of the probe that [`source_preset`] encodes.
const PROBE_INPUT: usize = 256 << 10;
/// LZMA bytes the probe compares (after the headers, which hold sizes).
const PROBE_COMPARE: usize = 512;
/// Presets tried, most likely first (6 is update_engine's and xz's default;
/// 7 to 9 differ from 6 only in dictionary size, which a 2 MiB chunk caps).
const PROBE_PRESETS: [u32; 7] = [6, 1, 0, 2, 3, 4, 5];

/// The xz preset whose encoder reproduces the source payload's own blobs
/// for this partition, so that the operations encoded again are encoded as
/// the source's were: the first unchanged REPLACE_XZ operation's first
/// [`PROBE_INPUT`] bytes are encoded at each candidate preset, with the
/// source's dictionary size, and the LZMA data compared with the source
/// blob's. `None` when no candidate matches (another encoder, such as
/// update_engine's LZMA SDK, or other filters) or nothing can be probed.
fn source_preset(
    payload: &Payload,
    ops: &[Operation],
    changed: &[Range<u64>],
    image: &File,
    bs: u64,
) -> Option<u32> {
    let op = ops.iter().find(|o| {
        o.kind == Ok(OpType::ReplaceXz)
            && o.dst_len >= 2 * PROBE_INPUT as u64
            && o.data_len >= 4096
            && classify(o, changed, &[]) == Reuse::Copy
    })?;
    let blob = payload.read(op.data_offset, 4096.min(op.data_len)).ok()?;
    let skip = lzma_data_start(&blob)?;
    let want = blob.get(skip..skip + PROBE_COMPARE)?;
    let mut raw = vec![0u8; PROBE_INPUT];
    let mut at = 0usize;
    for r in &op.dst {
        let n = (r.len as usize).min(PROBE_INPUT - at);
        image.read_exact_at(&mut raw[at..at + n], r.offset).ok()?;
        at += n;
        if at == PROBE_INPUT {
            break;
        }
    }
    let dict = u32::try_from(op.dst_len.div_ceil(bs) * bs).ok()?;
    PROBE_PRESETS.into_iter().find(|&p| {
        compress_xz(&raw, p, dict).is_ok_and(|out| {
            lzma_data_start(&out).and_then(|s| out.get(s..s + PROBE_COMPARE)) == Some(want)
        })
    })
}

/// Offset of the LZMA data in an xz stream: after the 12-byte stream
/// header, the block header (its first byte gives its size) and the first
/// LZMA2 chunk's 6-byte header (which holds the chunk's sizes).
fn lzma_data_start(xz: &[u8]) -> Option<usize> {
    if xz.get(..6)? != b"\xFD7zXZ\0" {
        return None;
    }
    let block_header = (usize::from(*xz.get(12)?) + 1) * 4;
    let chunk = 12 + block_header;
    // A chunk that resets the dictionary and sets new properties.
    (*xz.get(chunk)? >= 0xE0).then_some(chunk + 6)
}

/// `proto` as a ZERO operation over its destination.
fn zero_op<'a>(mut proto: InstallOperation) -> Prepared<'a> {
    proto.r#type = Some(OpType::Zero.to_wire());
    clear_data(&mut proto);
    Prepared {
        op: proto,
        blob: Blob::None,
        encoded: 0,
    }
}

/// `proto` (whose extents are `ranges`, part or all of the source
/// operation `source`'s) encoded from the edited image as the source was:
/// REPLACE where the source's generator found that xz could not shrink
/// these bytes (the edit zeroed or rewrote some of them, which does not
/// make the rest compressible), else REPLACE_XZ, or REPLACE when xz does not
/// make it smaller ([`replace_op`]).
fn encode<'a>(
    mut proto: InstallOperation,
    source: &Operation,
    ranges: &[Range<u64>],
    image: &File,
    opts: &PayloadOptions,
) -> io::Result<Prepared<'a>> {
    let total: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    let mut raw = Vec::with_capacity(total as usize);
    for r in ranges {
        let at = raw.len();
        raw.resize(at + (r.end - r.start) as usize, 0);
        image.read_exact_at(&mut raw[at..], r.start)?;
    }
    let dict = raw.len() as u32;
    let (kind, blob) = if source.kind == Ok(OpType::Replace) {
        (OpType::Replace, raw)
    } else {
        replace_op(raw, opts.xz_level, dict)?
    };
    proto.r#type = Some(kind.to_wire());
    clear_data(&mut proto);
    Ok(Prepared {
        op: proto,
        blob: Blob::Made(blob),
        encoded: total,
    })
}

/// Zero runs shorter than this many blocks stay inside the operation
/// encoded around them: xz makes little of them, and more operations cost
/// manifest bytes.
const MIN_ZERO_RUN: u64 = 16;

/// The destination of `op` cut into contiguous segments, in destination
/// order: `(true, range)` for runs of at least [`MIN_ZERO_RUN`] blocks that
/// are wholly inside `zeroed`, `(false, range)` for what lies between them.
/// Every segment lies in one destination extent, so each becomes an
/// operation with a single extent (what every extractor handles).
fn split_zeroed(op: &Operation, zeroed: &[Range<u64>], bs: u64) -> Vec<(bool, Range<u64>)> {
    let mut out: Vec<(bool, Range<u64>)> = Vec::new();
    for r in &op.dst {
        let end = r.offset + r.len;
        let mut rest = r.offset;
        let mut b = r.offset;
        while b < end {
            if !covers(zeroed, b..(b + bs).min(end)) {
                b += bs;
                continue;
            }
            let run = b;
            while b < end && covers(zeroed, b..(b + bs).min(end)) {
                b += bs;
            }
            let b_end = b.min(end);
            if (b_end - run).div_ceil(bs) >= MIN_ZERO_RUN {
                if run > rest {
                    out.push((false, rest..run));
                }
                out.push((true, run..b_end));
                rest = b_end;
            }
        }
        if end > rest {
            out.push((false, rest..end));
        }
    }
    out
}

/// Block-aligned byte ranges as manifest extents.
fn extents(ranges: &[Range<u64>], bs: u64) -> Vec<Extent> {
    ranges
        .iter()
        .map(|r| Extent {
            start_block: Some(r.start / bs),
            num_blocks: Some((r.end - r.start).div_ceil(bs)),
        })
        .collect()
}

fn clear_data(op: &mut InstallOperation) {
    op.data_offset = None;
    op.data_length = None;
    op.data_sha256_hash = None;
}

/// Lays `p`'s blob out in `blobs` (the source blob it copies from
/// partition `name` of `payload`, or its own) and returns its operation
/// pointing there.
fn place<'a>(
    p: Prepared<'a>,
    payload: &'a Payload,
    name: &'a str,
    blobs: &mut Blobs<'a>,
) -> io::Result<InstallOperation> {
    let mut op = p.op;
    match p.blob {
        Blob::None => {}
        Blob::Copied(src) => {
            if src.data_len > 0 {
                op.data_offset = Some(blobs.push_source(payload, name, src));
            }
        }
        Blob::Made(b) => {
            if !b.is_empty() {
                op.data_sha256_hash = Some(Sha256::digest(&b).to_vec());
                op.data_length = Some(b.len() as u64);
                op.data_offset = Some(blobs.push(&b)?);
            }
        }
        Blob::Stored(s) => op.data_offset = Some(blobs.push_stored(s)),
    }
    Ok(op)
}

/// The chunks of the bytes `from..to` of the image (blocks the edit
/// appended), one new operation each.
fn tail_chunks(from: u64, to: u64, image: &File, opts: &PayloadOptions) -> io::Result<Vec<Chunk>> {
    let starts: Vec<u64> = (from..to).step_by(opts.chunk_size as usize).collect();
    starts
        .par_iter()
        .map(|&s| read_chunk(image, s, opts.chunk_size.min(to - s), opts))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_overlap_and_cover() {
        let v = vec![4096..8192, 16384..24576];
        assert!(!overlaps(&v, 0..4096));
        assert!(overlaps(&v, 0..4097));
        assert!(!overlaps(&v, 8192..16384));
        assert!(overlaps(&v, 20000..30000));
        assert!(!overlaps(&v, 24576..30000));
        assert!(covers(&v, 16384..24576));
        assert!(covers(&v, 17000..18000));
        assert!(!covers(&v, 8192..16385));
        assert!(!covers(&v, 4096..16384));
    }

    /// An operation encoded again keeps the source's choice: REPLACE stays
    /// REPLACE even where xz would now shrink the bytes; REPLACE_XZ is
    /// encoded with xz again.
    #[test]
    fn encoded_again_as_the_source_was() {
        use std::io::Write as _;
        let mut f = tempfile::tempfile().unwrap();
        // Compressible bytes: xz shrinks them a lot.
        let raw: Vec<u8> = (0..64 * 4096u32).map(|i| (i % 7) as u8).collect();
        f.write_all(&raw).unwrap();
        let op = |kind: OpType| Operation {
            index: 0,
            kind: Ok(kind),
            data_offset: 0,
            data_len: 1,
            dst: vec![crate::format::payload::ByteRange {
                offset: 0,
                len: raw.len() as u64,
            }],
            dst_len: raw.len() as u64,
            data_hash: None,
            src: Vec::new(),
            src_len: 0,
            src_hash: None,
        };
        let opts = PayloadOptions::default();
        let all = 0..raw.len() as u64;
        let kind_of = |kind: OpType| {
            let ranges = std::slice::from_ref(&all);
            let p = encode(InstallOperation::default(), &op(kind), ranges, &f, &opts).unwrap();
            let Blob::Made(blob) = p.blob else {
                panic!("encode makes its blob")
            };
            (p.op.r#type, blob.len())
        };
        assert_eq!(
            kind_of(OpType::Replace),
            (Some(OpType::Replace.to_wire()), raw.len())
        );
        let (kind, len) = kind_of(OpType::ReplaceXz);
        assert_eq!(kind, Some(OpType::ReplaceXz.to_wire()));
        assert!(len < raw.len() / 10, "{len}");
    }
}
