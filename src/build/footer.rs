//! AVB hashtree footers of images edited in place.
//!
//! A partition image signed for dm-verity ends with a hash tree, FEC parity,
//! a vbmeta blob and a footer (`format::avb::footer`). The in-place editor
//! changes the filesystem and keeps the rest of the file, so the tree, the
//! parity and the root digest no longer match the filesystem. After the edit,
//! [`refresh`] recomputes them in the edited image so that it is internally
//! consistent (the vbmeta signature cannot be renewed without the owner's
//! key; the output's vbmeta keeps verification disabled), or, when that is
//! impossible (the filesystem grew into the tree, the footer is malformed),
//! zeroes everything after the filesystem so that no stale footer survives.
//! Either way the report and the manifest say which.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::format::avb::AvbError;
use crate::format::avb::footer::{Refreshed, read_hashtree_footer, refresh_hashtree};
use crate::fs::FsKind;
use crate::fs::edit::{EditStats, push_range};
use crate::util::hex;

/// Offset of the EROFS and ext4 superblocks.
const SUPER: u64 = 1024;
/// EROFS: block-size bits and block count in the superblock.
const EROFS_BLKSZBITS: usize = 12;
const EROFS_BLOCKS: usize = 36;
/// ext4: block count (low, high), log2(block size) − 10, incompatible
/// features and their 64-bit flag.
const EXT4_BLOCKS_LO: usize = 0x4;
const EXT4_LOG_BLOCK_SIZE: usize = 0x18;
const EXT4_INCOMPAT: usize = 0x60;
const EXT4_INCOMPAT_64BIT: u32 = 0x80;
const EXT4_BLOCKS_HI: usize = 0x150;

/// Refreshes or strips the AVB hashtree footer that the source image `src`
/// carries, in `out`, its in-place edit (at `tmp`, for messages). Keeps
/// `stats` true: the edit's ranges end at the filesystem and the tail's
/// changed (and zeroed) blocks are added. Returns the report's note, `None`
/// when the source has no footer.
pub(super) fn refresh(
    kind: Option<FsKind>,
    src: &Path,
    out: &File,
    tmp: &Path,
    stats: &mut EditStats,
) -> Result<Option<String>> {
    let source = File::open(src).map_err(|e| Error::io(src, e))?;
    let len = source.metadata().map_err(|e| Error::io(src, e))?.len();
    let found = match read_hashtree_footer(&source, len) {
        Ok(None) => return Ok(None),
        Ok(Some(f)) => Ok(f),
        Err(AvbError::Io(e)) => return Err(Error::io(src, e)),
        Err(e) => Err(e),
    };
    let fs_len = fs_len(kind, out).map_err(|e| Error::io(tmp, e))?;
    clip(stats, fs_len);
    let outcome = found.and_then(|f| refresh_hashtree(out, fs_len, &f));
    match outcome {
        Ok(r) => {
            tail_changes(&source, out, fs_len, len, stats).map_err(|e| Error::io(tmp, e))?;
            stats.size = len;
            Ok(Some(note(&r)))
        }
        Err(AvbError::Io(e)) => Err(Error::io(tmp, e)),
        Err(e) => {
            // Zeroed, not cut: the image keeps the partition's size, which
            // the package writers reuse the source's layout for.
            let out_len = stats.size.max(fs_len);
            out.set_len(fs_len).map_err(|e| Error::io(tmp, e))?;
            out.set_len(out_len).map_err(|e| Error::io(tmp, e))?;
            tail_changes(&source, out, fs_len, len.min(out_len), stats)
                .map_err(|e| Error::io(tmp, e))?;
            Ok(Some(format!(
                "AVB footer stripped ({e}): every byte after the filesystem is zero"
            )))
        }
    }
}

/// A copy of what follows the filesystem in the image at `path` (hash tree,
/// FEC, vbmeta blob, footer), for [`refresh`] to compare the edited image
/// with once the image itself is edited: a sparse file of the image's
/// length, beside it, holding those bytes at their offsets. `None` when the
/// image has no AVB footer.
pub(super) fn snapshot_tail(
    kind: Option<FsKind>,
    path: &Path,
) -> Result<Option<tempfile::NamedTempFile>> {
    let io = |e| Error::io(path, e);
    let image = File::open(path).map_err(io)?;
    let len = image.metadata().map_err(io)?.len();
    match read_hashtree_footer(&image, len) {
        Ok(None) => return Ok(None),
        Err(AvbError::Io(e)) => return Err(io(e)),
        Ok(Some(_)) | Err(_) => {}
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let tail = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    tail.as_file()
        .set_len(len)
        .map_err(|e| Error::io(tail.path(), e))?;
    let from = fs_len(kind, &image).map_err(io)?.min(len);
    let mut buf = vec![0u8; 1 << 20];
    let mut at = from;
    while at < len {
        let n = (len - at).min(buf.len() as u64) as usize;
        image.read_exact_at(&mut buf[..n], at).map_err(io)?;
        tail.as_file()
            .write_all_at(&buf[..n], at)
            .map_err(|e| Error::io(tail.path(), e))?;
        at += n as u64;
    }
    Ok(Some(tail))
}

/// What the report says of a refreshed footer.
fn note(r: &Refreshed) -> String {
    let fec = r
        .fec
        .map_or(String::new(), |(_, size)| format!(", FEC ({size} bytes)"));
    let signed = if r.signed {
        "; its vbmeta signature no longer matches (verification stays disabled)"
    } else {
        ""
    };
    format!(
        "AVB hashtree recomputed: tree ({} bytes){fec}, root digest {}{signed}",
        r.tree.1,
        hex(&r.root_digest)
    )
}

/// The edited filesystem's length: its block count times its block size,
/// from the superblock the editor wrote.
fn fs_len(kind: Option<FsKind>, out: &File) -> std::io::Result<u64> {
    let mut sb = [0u8; 1024];
    out.read_exact_at(&mut sb, SUPER)?;
    let le32 = |at: usize| u32::from_le_bytes([sb[at], sb[at + 1], sb[at + 2], sb[at + 3]]);
    Ok(match kind {
        Some(FsKind::Ext4) => {
            let hi = if le32(EXT4_INCOMPAT) & EXT4_INCOMPAT_64BIT != 0 {
                u64::from(le32(EXT4_BLOCKS_HI))
            } else {
                0
            };
            let blocks = (hi << 32) | u64::from(le32(EXT4_BLOCKS_LO));
            blocks.saturating_mul(1 << (10 + le32(EXT4_LOG_BLOCK_SIZE).min(6)))
        }
        _ => {
            let bits = u32::from(sb[EROFS_BLKSZBITS]).min(16);
            u64::from(le32(EROFS_BLOCKS)).saturating_mul(1 << bits)
        }
    })
}

/// Drops the parts of the edit's ranges past the filesystem: the editor
/// counts the source's tail as appended when the file is longer than the
/// filesystem.
fn clip(stats: &mut EditStats, fs_len: u64) {
    for ranges in [&mut stats.changed, &mut stats.zeroed] {
        ranges.retain(|r| r.start < fs_len);
        if let Some(last) = ranges.last_mut() {
            last.end = last.end.min(fs_len);
        }
    }
}

/// Adds the blocks of `[from, len)` where `out` differs from `source`.
fn tail_changes(
    source: &File,
    out: &File,
    from: u64,
    len: u64,
    stats: &mut EditStats,
) -> std::io::Result<()> {
    let bs = stats.block_size.max(512);
    let mut a = vec![0u8; bs as usize];
    let mut b = vec![0u8; bs as usize];
    let mut at = from;
    while at < len {
        let n = (len - at).min(bs) as usize;
        source.read_exact_at(&mut a[..n], at)?;
        out.read_exact_at(&mut b[..n], at)?;
        if a[..n] != b[..n] {
            push_range(&mut stats.changed, at..at + n as u64);
            stats.changed_blocks += 1;
            if b[..n].iter().all(|&x| x == 0) {
                push_range(&mut stats.zeroed, at..at + n as u64);
            }
        }
        at += n as u64;
    }
    Ok(())
}
