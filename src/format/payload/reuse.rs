//! A partition of a full payload written again for an image edited in place
//! (see [`super::writer::PayloadInput::Edited`]): the edit says which byte
//! ranges of the image changed and which became zero, and every bit of the
//! source payload that still describes the image is kept.
//!
//! For each source operation, in manifest order:
//! - no byte of its destination changed: the operation and its blob are
//!   copied byte for byte (the blob checked against its
//!   `data_sha256_hash`; only `data_offset` moves);
//! - every byte of its destination is now zero: a ZERO operation over the
//!   same extents, without data;
//! - otherwise its destination is read from the edited image and encoded
//!   again over the same extents: REPLACE_XZ as update_engine's generator
//!   writes (whatever compression the source used), or REPLACE when xz does
//!   not make it smaller.
//!
//! Blocks appended after the source image's end get new operations, one per
//! chunk, as a new image's would. Operations are prepared in parallel in
//! windows and appended in order, so the output depends only on the inputs.

use std::fs::File;
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::proto::{InstallOperation, OpType, PartitionInfo, PartitionUpdate};
use super::writer::{
    Chunk, ImageInput, PayloadOptions, PayloadWriteError, append_chunk, check_copyable,
    compress_xz, hash_file, read_chunk, read_copied_blob,
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReuseCounts {
    /// Source operations copied byte for byte.
    pub copied: usize,
    /// Source operations turned into ZERO.
    pub zeroed: usize,
    /// Source operations encoded again.
    pub encoded: usize,
    /// New operations for appended blocks.
    pub appended: usize,
}

/// One prepared operation: the manifest entry and its blob (empty for
/// none).
struct Prepared {
    op: InstallOperation,
    blob: Vec<u8>,
}

/// Writes the partition `name` of `payload` for its edited image `img`,
/// appending blobs to `writer` at `offset`. Returns the manifest entry.
#[allow(clippy::too_many_arguments)]
pub(super) fn edited_partition(
    payload: &Payload,
    name: &str,
    img: &ImageInput,
    changed: &[Range<u64>],
    zeroed: &[Range<u64>],
    opts: &PayloadOptions,
    pool: &rayon::ThreadPool,
    writer: &mut (impl Write + Send),
    offset: &mut u64,
    data_path: &Path,
) -> Result<(PartitionUpdate, ReuseCounts)> {
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
    let window = (opts.jobs.max(1) * 16).max(1);
    let (image_hash, written) = pool.install(|| {
        rayon::join(
            || hash_file(&file, size),
            || -> Result<Vec<InstallOperation>> {
                let mut ops = Vec::with_capacity(part.ops.len());
                for w in part.ops.chunks(window) {
                    let prepared: Vec<Result<(Reuse, Prepared)>> = w
                        .par_iter()
                        .map(|op| {
                            let proto =
                                update.operations.get(op.index).cloned().ok_or_else(|| {
                                    PayloadWriteError::CopyMissingOp {
                                        payload: payload.source.path().to_path_buf(),
                                        partition: name.to_string(),
                                        index: op.index,
                                    }
                                })?;
                            let how = classify(op, changed, zeroed);
                            let p = prepare(payload, name, op, proto, how, &file, opts)
                                .map_err(|e| e.at(&img.path))?;
                            Ok((how, p))
                        })
                        .collect();
                    for p in prepared {
                        let (how, p) = p?;
                        match how {
                            Reuse::Copy => counts.copied += 1,
                            Reuse::Zero => counts.zeroed += 1,
                            Reuse::Encode => counts.encoded += 1,
                        }
                        ops.push(place(p, writer, offset).map_err(&data_err)?);
                    }
                }
                let tail = tail_chunks(part.size, size, &file, opts).map_err(&img_err)?;
                counts.appended = tail.len();
                for c in tail {
                    ops.push(append_chunk(c, writer, offset).map_err(&data_err)?);
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

/// A failure while preparing an operation: reading the image (named by
/// the caller) or anything else.
enum PrepError {
    Image(io::Error),
    Other(PayloadWriteError),
}

impl PrepError {
    fn at(self, image: &Path) -> PayloadWriteError {
        match self {
            PrepError::Image(source) => PayloadWriteError::Io {
                path: image.to_path_buf(),
                source,
            },
            PrepError::Other(e) => e,
        }
    }
}

/// The new operation (and blob) for the source operation `op`, whose
/// manifest entry is `proto`.
fn prepare(
    payload: &Payload,
    name: &str,
    op: &Operation,
    mut proto: InstallOperation,
    how: Reuse,
    image: &File,
    opts: &PayloadOptions,
) -> std::result::Result<Prepared, PrepError> {
    proto.src_extents.clear();
    proto.src_length = None;
    proto.src_sha256_hash = None;
    match how {
        Reuse::Copy => {
            let blob = if op.data_len == 0 {
                Vec::new()
            } else {
                read_copied_blob(payload, name, op).map_err(PrepError::Other)?
            };
            Ok(Prepared { op: proto, blob })
        }
        Reuse::Zero => {
            proto.r#type = Some(OpType::Zero.to_wire());
            clear_data(&mut proto);
            Ok(Prepared {
                op: proto,
                blob: Vec::new(),
            })
        }
        Reuse::Encode => {
            let mut raw = Vec::with_capacity(op.dst_len as usize);
            for r in &op.dst {
                let at = raw.len();
                raw.resize(at + r.len as usize, 0);
                image
                    .read_exact_at(&mut raw[at..], r.offset)
                    .map_err(PrepError::Image)?;
            }
            let xz =
                compress_xz(&raw, opts.xz_level, raw.len() as u32).map_err(PrepError::Image)?;
            let (kind, blob) = if xz.len() < raw.len() {
                (OpType::ReplaceXz, xz)
            } else {
                (OpType::Replace, raw)
            };
            proto.r#type = Some(kind.to_wire());
            clear_data(&mut proto);
            Ok(Prepared { op: proto, blob })
        }
    }
}

fn clear_data(op: &mut InstallOperation) {
    op.data_offset = None;
    op.data_length = None;
    op.data_sha256_hash = None;
}

/// Appends `p`'s blob at `offset` and returns its operation pointing there.
fn place(p: Prepared, writer: &mut impl Write, offset: &mut u64) -> io::Result<InstallOperation> {
    let mut op = p.op;
    if !p.blob.is_empty() {
        if op.data_sha256_hash.is_none() {
            op.data_sha256_hash = Some(Sha256::digest(&p.blob).to_vec());
        }
        op.data_offset = Some(*offset);
        op.data_length = Some(p.blob.len() as u64);
        writer.write_all(&p.blob)?;
        *offset += p.blob.len() as u64;
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
}
