//! Incremental (delta) operations: what they read from the previous build's
//! partition image and how they turn it into the new bytes.
//!
//! The source of every operation that needs one is the *old* partition image,
//! a file of its own: operations never read the image being written. For the
//! in-place operations of minor version 1 (MOVE, BSDIFF), which update_engine
//! applies in manifest order on the partition itself, that is the same thing
//! as long as no operation reads blocks an earlier one wrote; [`check_sources`]
//! refuses a partition where one does, so every operation can run in parallel
//! and read its whole source before its output is written, whatever the
//! overlap of its own source and destination blocks.
//!
//! Invariants:
//! - [`check_sources`] runs before any output exists: each partition's source
//!   image has `old_partition_info.size` bytes and hashes to
//!   `old_partition_info.hash`, every operation's source blocks lie in it and
//!   hash to `src_sha256_hash`;
//! - an operation's source and destination are at most [`MAX_OP_OUTPUT`]
//!   bytes each, checked before anything is allocated, and a patch that claims
//!   more than the destination is refused before it is applied;
//! - a patch that produces fewer bytes than the destination (bsdiff's
//!   `dst_length` shorter than the last block) leaves zeros after its output,
//!   as update_engine does.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

use super::{MAX_OP_OUTPUT, OpType, Operation, Partition, Payload, PayloadError};
use crate::format::patch::{bsdiff, lz4diff, puffin, zucchini};
use crate::format::source::FileSlice;
use crate::util::hex;

/// Reads the source ranges of `op` from `src` into `buf`, after checking
/// that they lie in the image and that neither side of the operation exceeds
/// what romkit buffers for one operation.
pub fn read_source(
    part: &Partition,
    op: &Operation,
    src: &FileSlice,
    buf: &mut Vec<u8>,
) -> Result<(), PayloadError> {
    check_op_size(part, op)?;
    check_source_bounds(part, op, src)?;
    buf.resize(op.src_len as usize, 0);
    let mut at = 0usize;
    for r in &op.src {
        let n = r.len as usize;
        src.read_exact_at(&mut buf[at..at + n], r.offset)
            .map_err(|e| PayloadError::Io {
                path: src.path().to_path_buf(),
                offset: Some(r.offset),
                source: e,
            })?;
        at += n;
    }
    Ok(())
}

fn op_error(part: &Partition, op: &Operation, why: String) -> PayloadError {
    PayloadError::Op {
        partition: part.name.clone(),
        index: op.index,
        kind: op.kind_name(),
        why,
    }
}

fn patch_error(part: &Partition, op: &Operation, why: impl std::fmt::Display) -> PayloadError {
    PayloadError::Patch {
        partition: part.name.clone(),
        index: op.index,
        kind: op.kind_name(),
        why: why.to_string(),
    }
}

fn check_op_size(part: &Partition, op: &Operation) -> Result<(), PayloadError> {
    for (what, len) in [("reads", op.src_len), ("writes", op.dst_len)] {
        if len > MAX_OP_OUTPUT {
            return Err(op_error(
                part,
                op,
                format!(
                    "{what} {len} bytes, more than the {MAX_OP_OUTPUT} bytes romkit buffers for one operation"
                ),
            ));
        }
    }
    Ok(())
}

fn check_source_bounds(
    part: &Partition,
    op: &Operation,
    src: &FileSlice,
) -> Result<(), PayloadError> {
    for (i, r) in op.src.iter().enumerate() {
        if r.offset.checked_add(r.len).is_none_or(|e| e > src.len()) {
            return Err(op_error(
                part,
                op,
                format!(
                    "src_extents[{i}] (bytes {}..{}) lies past the end of the source image {} ({} bytes)",
                    r.offset,
                    r.offset.saturating_add(r.len),
                    src.path().display(),
                    src.len()
                ),
            ));
        }
    }
    Ok(())
}

/// Applies one operation of type `kind` that needs the old partition: `data`
/// is its blob, `src` its source ranges concatenated, `out` its destination
/// (exactly `op.dst_len` bytes).
pub fn apply(
    part: &Partition,
    op: &Operation,
    kind: OpType,
    data: &[u8],
    src: &[u8],
    out: &mut [u8],
) -> Result<(), PayloadError> {
    let fill = |out: &mut [u8], bytes: Vec<u8>, what: &str| {
        if bytes.len() > out.len() {
            return Err(patch_error(
                part,
                op,
                format!(
                    "the {what} patch produced {} bytes, more than the {} destination bytes",
                    bytes.len(),
                    out.len()
                ),
            ));
        }
        out[..bytes.len()].copy_from_slice(&bytes);
        out[bytes.len()..].fill(0);
        Ok(())
    };
    match kind {
        OpType::SourceCopy | OpType::Move => {
            if src.len() != out.len() {
                return Err(op_error(
                    part,
                    op,
                    format!(
                        "copies {} source bytes into {} destination bytes",
                        src.len(),
                        out.len()
                    ),
                ));
            }
            out.copy_from_slice(src);
            Ok(())
        }
        OpType::Bsdiff | OpType::SourceBsdiff | OpType::BrotliBsdiff => {
            let h = bsdiff::Header::parse(data).map_err(|e| patch_error(part, op, e))?;
            if h.new_size > out.len() as u64 {
                return Err(patch_error(
                    part,
                    op,
                    format!(
                        "bsdiff patch claims a {}-byte output, more than the {} destination bytes",
                        h.new_size,
                        out.len()
                    ),
                ));
            }
            let n = h.new_size as usize;
            bsdiff::apply_into(src, data, &mut out[..n]).map_err(|e| patch_error(part, op, e))?;
            out[n..].fill(0);
            Ok(())
        }
        OpType::Puffdiff => {
            let limits = puffin::Limits::for_output(out.len() as u64, src.len() as u64);
            let bytes = puffin::apply(src, data, limits).map_err(|e| patch_error(part, op, e))?;
            fill(out, bytes, "puffin")
        }
        OpType::Zucchini => {
            let bytes = zucchini::apply_brotli(src, data, out.len() as u64)
                .map_err(|e| patch_error(part, op, e))?;
            fill(out, bytes, "zucchini")
        }
        OpType::Lz4diffBsdiff | OpType::Lz4diffPuffdiff => {
            // The header's inner_type decides, as in update_engine.
            let limits = lz4diff::Limits::for_output(out.len() as u64, src.len() as u64);
            let bytes = lz4diff::apply(src, data, limits).map_err(|e| patch_error(part, op, e))?;
            fill(out, bytes, "lz4diff")
        }
        OpType::Replace
        | OpType::ReplaceBz
        | OpType::ReplaceXz
        | OpType::ReplaceZstd
        | OpType::Zero
        | OpType::Discard => Err(op_error(
            part,
            op,
            "is a full operation, not applied against a source".into(),
        )),
    }
}

/// The first in-place operation (MOVE, BSDIFF) that reads blocks an earlier
/// operation of the same partition writes: `(reader, writer)` indices.
pub fn in_place_conflict(part: &Partition) -> Option<(usize, usize)> {
    // Destination ranges written so far: start -> (end, op index). They never
    // overlap each other (validated when the payload was opened).
    let mut written: BTreeMap<u64, (u64, usize)> = BTreeMap::new();
    for op in &part.ops {
        if matches!(op.kind, Ok(OpType::Move | OpType::Bsdiff)) {
            for r in &op.src {
                let end = r.offset + r.len;
                if let Some((_, &(w_end, w_op))) = written.range(..end).next_back()
                    && w_end > r.offset
                {
                    return Some((op.index, w_op));
                }
            }
        }
        for r in &op.dst {
            written.insert(r.offset, (r.offset + r.len, op.index));
        }
    }
    None
}

enum Task {
    /// Hash the whole source image of selected partition `i`.
    Whole(usize),
    /// Hash the source ranges of operation `op` of selected partition `i`.
    Op(usize, usize),
}

/// Checks the source images of the selected partitions (`sources[i]` for
/// `payload.partitions[parts[i]]`) before anything is written: see the module
/// docs. Partitions without operations that need a source are not checked.
/// Returns every failure found, in partition and operation order (only the
/// first ones found with `fail_fast`).
pub fn check_sources(
    payload: &Payload,
    parts: &[usize],
    sources: &[Option<FileSlice>],
    jobs: usize,
    fail_fast: bool,
) -> Vec<PayloadError> {
    let mut errors = Vec::new();
    let mut tasks = Vec::new();
    for (i, &pi) in parts.iter().enumerate() {
        let part = &payload.partitions[pi];
        let Some(first) = part.first_incremental_op() else {
            continue;
        };
        let Some(src) = sources.get(i).and_then(|s| s.as_ref()) else {
            errors.push(PayloadError::Incremental {
                partition: part.name.clone(),
                index: first.index,
                kind: first.kind_name(),
            });
            continue;
        };
        if let Some(size) = part.old_size
            && size != src.len()
        {
            errors.push(PayloadError::OldPartition {
                partition: part.name.clone(),
                index: first.index,
                kind: first.kind_name(),
                why: format!(
                    "old_partition_info.size is {size} bytes, the source image {} has {} bytes",
                    src.path().display(),
                    src.len()
                ),
            });
            continue;
        }
        if let Some((reader, writer)) = in_place_conflict(part) {
            let op = &part.ops[reader];
            errors.push(op_error(
                part,
                op,
                format!(
                    "reads blocks that operation {writer} writes before it (in-place ordering); romkit applies in-place operations only when they read the old image"
                ),
            ));
            continue;
        }
        let mut bad = false;
        for op in &part.ops {
            if op.kind.is_ok_and(|k| k.needs_source())
                && let Err(e) = check_source_bounds(part, op, src)
            {
                errors.push(e);
                bad = true;
                break;
            }
        }
        if bad {
            continue;
        }
        if part.old_hash.is_some() {
            tasks.push(Task::Whole(i));
        }
        for (oi, op) in part.ops.iter().enumerate() {
            if op.src_hash.is_some() && op.kind.is_ok_and(|k| k.needs_source()) {
                tasks.push(Task::Op(i, oi));
            }
        }
    }
    if fail_fast && !errors.is_empty() {
        errors.truncate(1);
        return errors;
    }
    let cancel = AtomicBool::new(false);
    let found: Mutex<Vec<(usize, usize, PayloadError)>> = Mutex::new(Vec::new());
    let run_task = |t: &Task| {
        if cancel.load(Ordering::Relaxed) {
            return;
        }
        let (i, key, r) = match *t {
            Task::Whole(i) => (
                i,
                0,
                check_whole(&payload.partitions[parts[i]], &sources[i]),
            ),
            Task::Op(i, oi) => {
                let part = &payload.partitions[parts[i]];
                (i, oi + 1, check_op(part, &part.ops[oi], &sources[i]))
            }
        };
        if let Err(e) = r {
            if fail_fast {
                cancel.store(true, Ordering::Relaxed);
            }
            found
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((i, key, e));
        }
    };
    let run_all = || {
        use rayon::prelude::*;
        tasks.par_iter().for_each(run_task);
    };
    match rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
    {
        Ok(pool) => pool.install(run_all),
        Err(_) => tasks.iter().for_each(run_task),
    }
    let mut found = found.into_inner().unwrap_or_else(|e| e.into_inner());
    found.sort_by_key(|(i, key, _)| (*i, *key));
    errors.extend(found.into_iter().map(|(_, _, e)| e));
    if fail_fast {
        errors.truncate(1);
    }
    errors
}

fn check_whole(part: &Partition, src: &Option<FileSlice>) -> Result<(), PayloadError> {
    let (Some(src), Some(expected)) = (src, part.old_hash) else {
        return Ok(());
    };
    let mut sha = Sha256::new();
    hash_range(src, 0, src.len(), &mut sha)?;
    let actual: [u8; 32] = sha.finalize().into();
    if actual != expected {
        let first = part.first_incremental_op();
        return Err(PayloadError::OldPartition {
            partition: part.name.clone(),
            index: first.map_or(0, |o| o.index),
            kind: first.map_or_else(String::new, |o| o.kind_name()),
            why: format!(
                "old_partition_info.hash is {}, the source image {} hashes to {}",
                hex(&expected),
                src.path().display(),
                hex(&actual)
            ),
        });
    }
    Ok(())
}

fn check_op(part: &Partition, op: &Operation, src: &Option<FileSlice>) -> Result<(), PayloadError> {
    let (Some(src), Some(expected)) = (src, op.src_hash) else {
        return Ok(());
    };
    let mut sha = Sha256::new();
    for r in &op.src {
        hash_range(src, r.offset, r.len, &mut sha)?;
    }
    let actual: [u8; 32] = sha.finalize().into();
    if actual != expected {
        return Err(PayloadError::SourceHash {
            partition: part.name.clone(),
            index: op.index,
            kind: op.kind_name(),
            expected: hex(&expected),
            actual: hex(&actual),
        });
    }
    Ok(())
}

/// Feeds `len` bytes of `src` from `offset` to `sha`, 1 MiB at a time.
fn hash_range(
    src: &FileSlice,
    offset: u64,
    len: u64,
    sha: &mut Sha256,
) -> Result<(), PayloadError> {
    let mut buf = vec![0u8; len.min(1 << 20) as usize];
    let (mut at, end) = (offset, offset + len);
    while at < end {
        let n = (end - at).min(buf.len() as u64) as usize;
        src.read_exact_at(&mut buf[..n], at)
            .map_err(|e| PayloadError::Io {
                path: src.path().to_path_buf(),
                offset: Some(at),
                source: e,
            })?;
        sha.update(&buf[..n]);
        at += n as u64;
    }
    Ok(())
}
