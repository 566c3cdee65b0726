//! Editing an EROFS image in place: removing entries and replacing files
//! while every surviving inode keeps its nid and every surviving data block
//! its address and bytes.
//!
//! The edit reads the source image whole before writing anything, so a
//! damaged image fails with nothing written. It then:
//! - removes the entries from their parent directories, rewriting only those
//!   directories (in their own blocks when the new content fits, otherwise in
//!   freed or appended blocks, switching from inline to plain layout when the
//!   tail no longer fits next to the inode) and fixing link counts;
//! - zeroes the data blocks and pclusters that only removed inodes used
//!   (`refs`: hard links, deduplicated chunks and pclusters and the packed
//!   inode's fragments keep theirs), and the removed inodes' records;
//! - writes each replaced file uncompressed into freed or appended blocks and
//!   points its inode there, keeping its nid, owner, mode and xattrs;
//! - updates the superblock's block count and checksum.
//!
//! Without the fragments/dedupe feature bit, mkfs.erofs never shares a
//! pcluster between inodes, so only the removed and replaced compressed files
//! are read to find their pclusters; with it, every compressed file is (the
//! cost of such images is one decode of the image).
//!
//! What it cannot edit safely (a device table with extra devices, chunks on
//! other devices, compressed directories, features newer than it knows) is
//! an [`EditError::Unsupported`] naming the feature and the file.

pub mod dir;
mod probe;
pub mod refs;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Seek, Write};
use std::ops::Range;
use std::path::Path;

use super::layout::*;
use dir::{DirError, Dirent};
use refs::{Allocator, BlockSet};

use crate::fs::edit::{Changed, Overlay as Output, crc32c_raw, write_out};
pub use crate::fs::edit::{Edit, EditStats, push_range};

/// Why an image could not be edited.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// A field of the source image is out of range.
    #[error("invalid EROFS image: {field} = {value} at offset {offset}: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The value found.
        value: u64,
        /// Byte offset of the field in the image.
        offset: u64,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A directory's content is malformed.
    #[error("invalid EROFS image: directory /{path}: {source}")]
    Directory {
        /// The directory.
        path: String,
        /// What is wrong.
        source: DirError,
    },
    /// Reading a file's data through the EROFS reader failed.
    #[error("invalid EROFS image: /{path}: {message}")]
    Unreadable {
        /// The file.
        path: String,
        /// The reader's message.
        message: String,
    },
    /// The image uses something that cannot be edited safely.
    #[error("cannot edit /{path} in place: {feature}")]
    Unsupported {
        /// What cannot be edited.
        feature: String,
        /// The file (empty for the whole image).
        path: String,
    },
    /// A path of the edit is not in the image.
    #[error("/{path}: not in the image")]
    NotFound {
        /// The path.
        path: String,
    },
    /// A file to replace is not a regular file.
    #[error("/{path}: not a regular file, cannot replace its content")]
    NotRegular {
        /// The path.
        path: String,
    },
    /// Reading the source or writing the output failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The error.
        source: io::Error,
    },
}

impl EditError {
    /// The library error for editing the image file `image`, the partition
    /// named `source` for messages (`package.zip:product`): a source that
    /// cannot be read or an output that cannot be written is an I/O error
    /// about `image` (exit 4); a malformed image, a feature the editor
    /// refuses or a path the edit does not find makes the input invalid or
    /// unsupported (exit 3). A refused feature suggests `--repack`, which
    /// rebuilds the partition from its tree instead.
    pub fn into_error(self, image: &Path, source: &str) -> crate::Error {
        match self {
            EditError::Io { context, source } => crate::Error::io(
                image,
                io::Error::new(source.kind(), format!("{context}: {source}")),
            ),
            e @ EditError::Unsupported { .. } => crate::Error::invalid(
                source,
                format!("{e}; build with --repack to rebuild the partition instead"),
            ),
            e => crate::Error::invalid(source, e.to_string()),
        }
    }
}

type Result<T> = std::result::Result<T, EditError>;

fn invalid(field: &'static str, value: u64, offset: u64, why: &'static str) -> EditError {
    EditError::Invalid {
        field,
        value,
        offset,
        why,
    }
}

/// Compat feature: the superblock carries a CRC32C.
const COMPAT_SB_CHKSUM: u32 = 0x1;
const INCOMPAT_DEVICE_TABLE: u32 = 0x8;
/// Fragments and dedupe share this bit: pclusters may be shared.
const INCOMPAT_FRAGMENTS_DEDUPE: u32 = 0x20;
/// Every incompat feature up to erofs-utils 1.8: zero padding, compression
/// configs/big pclusters, chunks, device table, second head, ztailpacking,
/// fragments/dedupe, long xattr prefixes.
const INCOMPAT_KNOWN: u32 = 0x7f;
/// The null block address of chunk indexes (a hole).
const NULL_ADDR: u32 = u32::MAX;
const S_IFMT: u16 = 0o170000;
const S_IFDIR: u16 = 0o040000;
const S_IFREG: u16 = 0o100000;
const S_IFLNK: u16 = 0o120000;

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// The superblock fields the edit uses.
#[derive(Clone, Debug)]
struct Super {
    bs: u64,
    root_nid: u64,
    meta_blkaddr: u64,
    xattr_blkaddr: u64,
    blocks: u64,
    compat: u32,
    incompat: u32,
    packed_nid: Option<u64>,
}

fn parse_super(img: &[u8]) -> Result<Super> {
    let o = SUPER_OFFSET as usize;
    let sb = img
        .get(o..o + SUPER_SIZE)
        .ok_or_else(|| invalid("length", img.len() as u64, 0, "shorter than a superblock"))?;
    let magic = le32(sb, 0);
    if magic != MAGIC {
        return Err(invalid("magic", magic.into(), SUPER_OFFSET, "not EROFS"));
    }
    let bits = sb[12];
    if !(9..=16).contains(&bits) {
        return Err(invalid(
            "blkszbits",
            bits.into(),
            SUPER_OFFSET + 12,
            "block size must be 512 B to 64 KiB",
        ));
    }
    let bs = 1u64 << bits;
    let incompat = le32(sb, 80);
    if incompat & !INCOMPAT_KNOWN != 0 {
        return Err(EditError::Unsupported {
            feature: format!(
                "incompatible features {:#x} newer than erofs-utils 1.8",
                incompat & !INCOMPAT_KNOWN
            ),
            path: String::new(),
        });
    }
    let extra_devices = le16(sb, 86);
    if incompat & INCOMPAT_DEVICE_TABLE != 0 && extra_devices != 0 {
        return Err(EditError::Unsupported {
            feature: format!("{extra_devices} extra devices (multi-device image)"),
            path: String::new(),
        });
    }
    let blocks = u64::from(le32(sb, 36));
    if blocks.checked_mul(bs).is_none_or(|n| n > img.len() as u64) {
        return Err(invalid(
            "blocks",
            blocks,
            SUPER_OFFSET + 36,
            "more blocks than the image holds",
        ));
    }
    let packed = le64(sb, 96);
    Ok(Super {
        bs,
        root_nid: u64::from(le16(sb, 14)),
        meta_blkaddr: u64::from(le32(sb, 40)),
        xattr_blkaddr: u64::from(le32(sb, 44)),
        blocks,
        compat: le32(sb, 8),
        incompat,
        packed_nid: (incompat & INCOMPAT_FRAGMENTS_DEDUPE != 0 && packed != 0).then_some(packed),
    })
}

/// One on-disk inode.
#[derive(Clone, Debug)]
struct Ino {
    nid: u64,
    /// Byte offset of the inode.
    iloc: u64,
    extended: bool,
    layout: u16,
    format: u16,
    /// Core plus xattr area.
    base: u64,
    size: u64,
    i_u: u32,
    nlink: u32,
    mode: u16,
}

impl Ino {
    fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }
    fn has_data(&self) -> bool {
        matches!(self.mode & S_IFMT, S_IFDIR | S_IFREG | S_IFLNK)
    }
    fn compressed(&self) -> bool {
        matches!(
            self.layout,
            LAYOUT_COMPRESSED_FULL | LAYOUT_COMPRESSED_COMPACT
        )
    }
    fn nlink_at(&self) -> (u64, usize) {
        if self.extended {
            (self.iloc + 44, 4)
        } else {
            (self.iloc + 6, 2)
        }
    }
}

fn read_inode(img: &[u8], sb: &Super, nid: u64) -> Result<Ino> {
    let iloc = sb
        .meta_blkaddr
        .checked_mul(sb.bs)
        .and_then(|m| nid.checked_mul(ISLOT).and_then(|n| n.checked_add(m)))
        .filter(|&o| {
            o.checked_add(COMPACT_INODE as u64)
                .is_some_and(|e| e <= img.len() as u64)
        })
        .ok_or_else(|| invalid("nid", nid, 0, "inode outside the image"))?;
    let at = iloc as usize;
    let format = le16(img, at);
    let extended = format & I_VERSION_EXTENDED != 0;
    let core = if extended {
        EXTENDED_INODE
    } else {
        COMPACT_INODE
    };
    let c = img
        .get(at..at + core)
        .ok_or_else(|| invalid("nid", nid, iloc, "extended inode past the image end"))?;
    let layout = (format >> 1) & 0x7;
    if layout > LAYOUT_CHUNK_BASED {
        return Err(invalid(
            "i_format",
            format.into(),
            iloc,
            "unknown data layout",
        ));
    }
    let icount = u64::from(le16(c, 2));
    let xattr = if icount == 0 {
        0
    } else {
        12 + (icount - 1) * 4
    };
    let base = core as u64 + xattr;
    if iloc + base > img.len() as u64 {
        return Err(invalid(
            "i_xattr_icount",
            icount,
            iloc + 2,
            "xattrs past the image end",
        ));
    }
    let (size, nlink) = if extended {
        (le64(c, 8), le32(c, 44))
    } else {
        (u64::from(le32(c, 8)), u32::from(le16(c, 6)))
    };
    Ok(Ino {
        nid,
        iloc,
        extended,
        layout,
        format,
        base,
        size,
        i_u: le32(c, 16),
        nlink,
        mode: le16(c, 4),
    })
}

/// Blocks of a flat inode outside its record (`raw_blkaddr` onwards), and the
/// length of its inline tail.
fn flat_extent(sb: &Super, ino: &Ino) -> Result<(Range<u64>, u64)> {
    let (full, tail) = if ino.layout == LAYOUT_FLAT_INLINE {
        (ino.size / sb.bs, ino.size % sb.bs)
    } else {
        (ino.size.div_ceil(sb.bs), 0)
    };
    if tail > 0 && (ino.iloc + ino.base) % sb.bs + tail > sb.bs {
        return Err(invalid(
            "i_size",
            ino.size,
            ino.iloc + 8,
            "inline tail crosses a block boundary",
        ));
    }
    let raw = u64::from(ino.i_u);
    if full > 0 && (raw == 0 || raw + full > sb.blocks) {
        return Err(invalid(
            "raw_blkaddr",
            raw,
            ino.iloc + 16,
            "data outside the filesystem",
        ));
    }
    Ok((if full > 0 { raw..raw + full } else { 0..0 }, tail))
}

/// Chunk-based inode: block ranges of its chunks and the end of its index.
fn chunk_extents(img: &[u8], sb: &Super, ino: &Ino, path: &str) -> Result<(Vec<Range<u64>>, u64)> {
    let fmt = ino.i_u as u16;
    if fmt & !0x3f != 0 {
        return Err(invalid(
            "chunk format",
            fmt.into(),
            ino.iloc + 16,
            "unknown bits",
        ));
    }
    let bits = sb.bs.trailing_zeros() + u32::from(fmt & 0x1f);
    if bits > 40 {
        return Err(invalid(
            "chunk format",
            fmt.into(),
            ino.iloc + 16,
            "chunk too large",
        ));
    }
    let chunk = 1u64 << bits;
    let unit = if fmt & 0x20 != 0 { 8 } else { 4 };
    let start = (ino.iloc + ino.base).next_multiple_of(unit);
    let n = ino.size.div_ceil(chunk);
    let end = n
        .checked_mul(unit)
        .and_then(|l| l.checked_add(start))
        .filter(|&e| e <= img.len() as u64)
        .ok_or_else(|| {
            invalid(
                "i_size",
                ino.size,
                ino.iloc + 8,
                "chunk index past the image end",
            )
        })?;
    let mut out = Vec::new();
    for i in 0..n {
        let at = (start + i * unit) as usize;
        let (dev, blk) = if unit == 8 {
            (le16(img, at + 2), le32(img, at + 4))
        } else {
            (0, le32(img, at))
        };
        if blk == NULL_ADDR {
            continue;
        }
        if dev != 0 {
            return Err(EditError::Unsupported {
                feature: format!("chunk on extra device {dev}"),
                path: path.to_string(),
            });
        }
        let len = chunk.min(ino.size - i * chunk).div_ceil(sb.bs);
        let b = u64::from(blk);
        if b == 0 || b + len > sb.blocks {
            return Err(invalid(
                "chunk blkaddr",
                b,
                at as u64,
                "chunk outside the filesystem",
            ));
        }
        out.push(b..b + len);
    }
    Ok((out, end))
}

/// End of the record of a compressed inode: map header, lcluster index
/// (full, or compact in 4- and 2-byte packs, laid out as mkfs.erofs and the
/// kernel do) and the inline pcluster, counting one index entry more than
/// the file needs so that the bound is never short.
fn compressed_record_end(img: &[u8], sb: &Super, ino: &Ino) -> u64 {
    let h = (ino.iloc + ino.base).next_multiple_of(8);
    let Some(hdr) = img.get(h as usize..h as usize + 8) else {
        return h;
    };
    if hdr[7] & 0x80 != 0 {
        return h + 8; // the whole file is a fragment of the packed inode
    }
    let advise = le16(hdr, 4);
    let idata = if advise & 0x8 != 0 {
        u64::from(le16(hdr, 2))
    } else {
        0
    };
    let lbits = sb.bs.trailing_zeros() + u32::from(hdr[7] & 7);
    let total = (ino.size >> lbits) + 2;
    let index = if ino.layout == LAYOUT_COMPRESSED_FULL {
        8 + 8 * total
    } else {
        let ebase = h + 8;
        let (initial, two) = if advise & 0x1 != 0 && lbits == 12 {
            let initial = ((32 - ebase % 32) / 4) & 7;
            if initial > total {
                (0, 0)
            } else {
                (initial, (total - initial) / 16 * 16)
            }
        } else {
            (0, 0)
        };
        initial * 4 + two * 2 + (total - initial - two).div_ceil(2) * 8
    };
    h + 8 + index + idata
}

/// What the walk found.
struct Image {
    sb: Super,
    inodes: BTreeMap<u64, Ino>,
    /// Names pointing at each non-directory inode.
    links: BTreeMap<u64, u32>,
    /// Entries of each directory, by block.
    dirs: BTreeMap<u64, Vec<Vec<Dirent>>>,
    /// A path of each inode (for messages).
    paths: BTreeMap<u64, String>,
}

fn dir_content(img: &[u8], sb: &Super, ino: &Ino) -> Result<Vec<u8>> {
    if !matches!(ino.layout, LAYOUT_FLAT_PLAIN | LAYOUT_FLAT_INLINE) {
        return Err(EditError::Unsupported {
            feature: format!("directory with data layout {}", ino.layout),
            path: String::new(),
        });
    }
    if ino.size > 64 << 20 {
        return Err(invalid(
            "i_size",
            ino.size,
            ino.iloc + 8,
            "directory too large",
        ));
    }
    let (blocks, tail) = flat_extent(sb, ino)?;
    let mut v = Vec::with_capacity(ino.size as usize);
    let s = (blocks.start * sb.bs) as usize;
    let full = ((blocks.end - blocks.start) * sb.bs) as usize;
    v.extend_from_slice(&img[s..s + full]);
    v.truncate(ino.size as usize);
    if tail > 0 {
        let t = (ino.iloc + ino.base) as usize;
        let bytes = img.get(t..t + tail as usize).ok_or_else(|| {
            invalid(
                "i_size",
                ino.size,
                ino.iloc + 8,
                "inline tail past the image end",
            )
        })?;
        v.extend_from_slice(bytes);
    }
    Ok(v)
}

fn walk(img: &[u8]) -> Result<Image> {
    let sb = parse_super(img)?;
    let mut im = Image {
        sb: sb.clone(),
        inodes: BTreeMap::new(),
        links: BTreeMap::new(),
        dirs: BTreeMap::new(),
        paths: BTreeMap::new(),
    };
    let root = read_inode(img, &sb, sb.root_nid)?;
    if !root.is_dir() {
        return Err(invalid(
            "root_nid",
            sb.root_nid,
            SUPER_OFFSET + 14,
            "root is not a directory",
        ));
    }
    let max_inodes = img.len() as u64 / ISLOT;
    let mut stack = vec![(root, String::new())];
    while let Some((dir, path)) = stack.pop() {
        let content = dir_content(img, &sb, &dir).map_err(|e| match e {
            EditError::Unsupported { feature, .. } => EditError::Unsupported {
                feature,
                path: path.clone(),
            },
            e => e,
        })?;
        let blocks =
            dir::parse(&content, sb.bs as usize).map_err(|source| EditError::Directory {
                path: path.clone(),
                source,
            })?;
        let dnid = dir.nid;
        im.paths.insert(dnid, path.clone());
        im.inodes.insert(dnid, dir);
        for e in blocks.iter().flatten() {
            if e.name == b"." || e.name == b".." {
                continue;
            }
            let child_path = if path.is_empty() {
                String::from_utf8_lossy(&e.name).into_owned()
            } else {
                format!("{path}/{}", String::from_utf8_lossy(&e.name))
            };
            if let Some(seen) = im.inodes.get(&e.nid) {
                if seen.is_dir() {
                    return Err(invalid("nid", e.nid, 0, "directory reachable twice"));
                }
                *im.links.entry(e.nid).or_default() += 1;
                continue;
            }
            if im.inodes.len() as u64 >= max_inodes || stack.len() as u64 >= max_inodes {
                return Err(invalid(
                    "inodes",
                    max_inodes,
                    0,
                    "more inodes than the image can hold",
                ));
            }
            let ino = read_inode(img, &sb, e.nid)?;
            if ino.is_dir() {
                if stack.iter().any(|(d, _)| d.nid == e.nid) {
                    return Err(invalid("nid", e.nid, 0, "directory reachable twice"));
                }
                stack.push((ino, child_path));
            } else {
                im.links.insert(e.nid, 1);
                im.paths.insert(e.nid, child_path);
                im.inodes.insert(e.nid, ino);
            }
        }
        im.dirs.insert(dnid, blocks);
    }
    Ok(im)
}

impl Image {
    /// Finds `path`: (parent directory nid, the entry).
    fn lookup(&self, path: &str) -> Result<(u64, Dirent)> {
        let not_found = || EditError::NotFound {
            path: path.to_string(),
        };
        let mut cur = self.sb.root_nid;
        let mut found: Option<(u64, Dirent)> = None;
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            if let Some((_, e)) = &found {
                cur = e.nid;
            }
            let entries = self.dirs.get(&cur).ok_or_else(not_found)?;
            if comp == "." || comp == ".." {
                return Err(not_found());
            }
            let e = entries
                .iter()
                .flatten()
                .find(|e| e.name == comp.as_bytes())
                .ok_or_else(not_found)?;
            found = Some((cur, e.clone()));
        }
        found.ok_or_else(not_found)
    }

    fn path(&self, nid: u64) -> String {
        self.paths.get(&nid).cloned().unwrap_or_default()
    }
}

/// Edits the image in `src` and writes the result to `out` (from offset 0).
/// Nothing is written unless the whole edit can be made.
pub fn edit<W: Write + Seek>(src: &[u8], edit: &Edit, out: &mut W) -> Result<EditStats> {
    let im = walk(src)?;
    let sb = im.sb.clone();
    let bs = sb.bs;

    // What goes: entries per parent, links lost per inode, subdirs per parent.
    let mut paths: Vec<&str> = edit.remove.iter().map(|p| p.trim_matches('/')).collect();
    paths.sort_unstable();
    paths.dedup();
    let mut removed_names: BTreeMap<u64, BTreeSet<Vec<u8>>> = BTreeMap::new();
    let mut lost: BTreeMap<u64, u32> = BTreeMap::new();
    let mut gone_dirs: BTreeSet<u64> = BTreeSet::new();
    let mut lost_subdirs: BTreeMap<u64, u32> = BTreeMap::new();
    let mut kept: BTreeSet<&str> = BTreeSet::new();
    for p in paths {
        if p.is_empty() {
            return Err(EditError::Unsupported {
                feature: "removing the root directory".into(),
                path: String::new(),
            });
        }
        let inside_removed = p.match_indices('/').any(|(i, _)| kept.contains(&p[..i]));
        if inside_removed {
            continue;
        }
        kept.insert(p);
        let (parent, e) = im.lookup(p)?;
        removed_names
            .entry(parent)
            .or_default()
            .insert(e.name.clone());
        let is_dir = im.inodes.get(&e.nid).is_some_and(Ino::is_dir);
        if !is_dir {
            *lost.entry(e.nid).or_default() += 1;
            continue;
        }
        *lost_subdirs.entry(parent).or_default() += 1;
        let mut stack = vec![e.nid];
        while let Some(d) = stack.pop() {
            gone_dirs.insert(d);
            for c in im.dirs.get(&d).into_iter().flatten().flatten() {
                if c.name == b"." || c.name == b".." {
                    continue;
                }
                if im.dirs.contains_key(&c.nid) {
                    stack.push(c.nid);
                } else {
                    *lost.entry(c.nid).or_default() += 1;
                }
            }
        }
    }
    let gone = |nid: u64| -> bool {
        gone_dirs.contains(&nid)
            || lost
                .get(&nid)
                .is_some_and(|&n| n >= im.links.get(&nid).copied().unwrap_or(0))
    };

    let mut replaced: BTreeMap<u64, (&str, &[u8])> = BTreeMap::new();
    for (p, bytes) in &edit.replace {
        let p = p.trim_matches('/');
        let (_, e) = im.lookup(p)?;
        let ino = &im.inodes[&e.nid];
        if ino.mode & S_IFMT != S_IFREG {
            return Err(EditError::NotRegular { path: p.into() });
        }
        if gone(e.nid) {
            return Err(EditError::NotFound { path: p.into() });
        }
        if !ino.extended && bytes.len() as u64 > u64::from(u32::MAX) {
            return Err(EditError::Unsupported {
                feature: "content of 4 GiB or more in a compact inode".into(),
                path: p.into(),
            });
        }
        replaced.insert(e.nid, (p, bytes.as_slice()));
    }

    // Reference counting as sets: blocks of what goes (and of the old
    // content of replaced files) minus blocks anything else still uses.
    let shared = sb.incompat & INCOMPAT_FRAGMENTS_DEDUPE != 0;
    let mut probe: Option<probe::Probe> = None;
    let limit = (src.len() as u64).saturating_mul(256);
    let mut removed = BlockSet::new(sb.blocks);
    let mut live = BlockSet::new(sb.blocks);
    live.insert(0..1);
    let mut live_records: Vec<(u64, u64)> = Vec::new();
    let mut packed: Vec<Ino> = Vec::new();
    if let Some(nid) = sb.packed_nid {
        packed.push(read_inode(src, &sb, nid)?);
    }
    let mut removed_inodes = 0u64;
    let mut dead_records: Vec<(u64, u64)> = Vec::new();
    for ino in im.inodes.values().chain(packed.iter()) {
        let nid = ino.nid;
        let is_packed = sb.packed_nid == Some(nid) && !im.inodes.contains_key(&nid);
        let dead = !is_packed && gone(nid);
        let old_content_goes = dead || replaced.contains_key(&nid);
        let path = if is_packed {
            "(packed inode)".to_string()
        } else {
            im.path(nid)
        };
        // The record's extent and the data blocks.
        let mut data: Vec<Range<u64>> = Vec::new();
        let record_end;
        // What of a removed record is zeroed: only what is known exactly.
        let mut zero_end = ino.iloc + ino.base;
        if !ino.has_data() {
            record_end = ino.iloc + ino.base;
        } else if ino.compressed() {
            record_end = compressed_record_end(src, &sb, ino);
            if old_content_goes || shared {
                if probe.is_none() {
                    probe =
                        Some(
                            probe::Probe::new(src).map_err(|message| EditError::Unreadable {
                                path: String::new(),
                                message: message.to_string(),
                            })?,
                        );
                }
                let p = probe.as_ref().expect("just made");
                let ranges =
                    p.ranges(nid, ino.size, limit)
                        .map_err(|message| EditError::Unreadable {
                            path: path.clone(),
                            message,
                        })?;
                for r in ranges {
                    let inside_record = r.start >= ino.iloc && r.end <= record_end;
                    // Reads of this inode's own record (map header, index,
                    // inline pcluster) and of block 0 are metadata; whatever
                    // else a read touched is this file's data, whole blocks
                    // even when a plain extent is read from its middle.
                    if inside_record || r.start < bs {
                        continue;
                    }
                    data.push(r.start / bs..r.end.div_ceil(bs));
                }
            }
        } else if ino.layout == LAYOUT_CHUNK_BASED {
            let (chunks, end) = chunk_extents(src, &sb, ino, &path)?;
            data = chunks;
            record_end = end;
            zero_end = end;
        } else {
            let (blocks, tail) = flat_extent(&sb, ino)?;
            data.push(blocks);
            record_end = ino.iloc + ino.base + tail;
            zero_end = record_end;
        }
        for r in &data {
            if r.end > sb.blocks {
                return Err(invalid(
                    "blkaddr",
                    r.start,
                    ino.iloc,
                    "data outside the filesystem",
                ));
            }
        }
        if dead {
            removed_inodes += 1;
            dead_records.push((ino.iloc, zero_end));
        } else {
            live_records.push((ino.iloc, record_end));
            // Shared xattrs the inode refers to.
            shared_xattr_blocks(src, &sb, ino, &mut live)?;
        }
        for r in data {
            if old_content_goes {
                removed.insert(r);
            } else {
                live.insert(r);
            }
        }
    }
    for &(s, e) in &live_records {
        live.insert(s / bs..e.div_ceil(bs));
    }
    let mut freed = removed;
    freed.subtract(&live);

    // Trailing bytes after the filesystem stay where they are unless blocks
    // must be appended over them.
    let mut out_img = Output::new(src, bs);
    for b in freed.iter() {
        out_img.zero_block(b);
    }
    // Records of removed inodes: core and xattrs always, the rest up to the
    // next live record.
    live_records.sort_unstable();
    for (s, e) in dead_records {
        let next_live = live_records
            .iter()
            .map(|r| r.0)
            .find(|&l| l > s)
            .unwrap_or(u64::MAX);
        let e = e.min(next_live).min(src.len() as u64);
        if e > s {
            out_img.zero(s, e - s);
        }
    }
    let mut alloc = Allocator::new(freed, sb.blocks);

    // Directories that lose entries.
    let mut rewritten_dirs = 0u64;
    let mut nlink_delta: BTreeMap<u64, u32> = BTreeMap::new();
    for (&nid, n) in &lost {
        if !gone(nid) {
            nlink_delta.insert(nid, *n);
        }
    }
    for (&pnid, names) in &removed_names {
        if gone(pnid) {
            continue;
        }
        let ino = im.inodes[&pnid].clone();
        let path = im.path(pnid);
        let old = &im.dirs[&pnid];
        let new =
            dir::remove(old, |e| !names.contains(&e.name), bs as usize).map_err(|source| {
                EditError::Directory {
                    path: path.clone(),
                    source,
                }
            })?;
        let content = dir::serialize(&new, bs as usize).map_err(|source| EditError::Directory {
            path: path.clone(),
            source,
        })?;
        if content.is_empty() {
            // Only a directory without "." and ".." can become empty.
            return Err(invalid(
                "i_size",
                ino.size,
                ino.iloc + 8,
                "directory without \".\" and \"..\"",
            ));
        }
        rewrite_dir(&mut out_img, &mut alloc, &sb, &ino, &content)?;
        if let Some(&n) = lost_subdirs.get(&pnid) {
            nlink_delta.insert(pnid, n);
        }
        rewritten_dirs += 1;
    }
    for (&nid, &n) in &nlink_delta {
        let ino = &im.inodes[&nid];
        let (at, width) = ino.nlink_at();
        let v = ino.nlink.saturating_sub(n).max(1);
        if width == 2 {
            out_img.write(at, &(v as u16).to_le_bytes());
        } else {
            out_img.write(at, &v.to_le_bytes());
        }
    }

    // Replaced files: uncompressed, in freed or appended blocks.
    for (&nid, &(_, bytes)) in &replaced {
        let ino = im.inodes[&nid].clone();
        if ino.layout == LAYOUT_FLAT_INLINE {
            let tail = ino.size % bs;
            out_img.zero(ino.iloc + ino.base, tail);
        }
        let n = (bytes.len() as u64).div_ceil(bs);
        let start = if n > 0 { alloc.take(n).start } else { 0 };
        out_img.put_blocks(start, bytes);
        set_layout(
            &mut out_img,
            &ino,
            LAYOUT_FLAT_PLAIN,
            bytes.len() as u64,
            start,
        )?;
    }

    // Superblock: block count and checksum.
    let new_blocks = alloc.end;
    if new_blocks > sb.blocks {
        let tail = &src[((sb.blocks * bs) as usize).min(src.len())..];
        if let Some(i) = tail.iter().position(|&b| b != 0) {
            return Err(EditError::Unsupported {
                feature: format!(
                    "appending blocks over data after the filesystem (non-zero byte at offset {}; an AVB footer?)",
                    sb.blocks * bs + i as u64
                ),
                path: String::new(),
            });
        }
        let v = u32::try_from(new_blocks).map_err(|_| EditError::Unsupported {
            feature: "more than 2^32 blocks".into(),
            path: String::new(),
        })?;
        out_img.write(SUPER_OFFSET + 36, &v.to_le_bytes());
    }
    if sb.compat & COMPAT_SB_CHKSUM != 0 {
        let len = if bs > SUPER_OFFSET {
            bs - SUPER_OFFSET
        } else {
            bs
        };
        let mut region = out_img.read(SUPER_OFFSET, len as usize);
        region[4..8].fill(0);
        let crc = crc32c_raw(!0, &region);
        out_img.write(SUPER_OFFSET + 4, &crc.to_le_bytes());
    }

    // Statistics, then the output.
    let src_blocks = (src.len() as u64).div_ceil(bs);
    let mut changed = 0u64;
    let mut zeroed = 0u64;
    let mut changed_ranges = Vec::new();
    let mut zeroed_ranges = Vec::new();
    // Telling whether a zeroed block changed reads it: hundreds of MiB for
    // a large removal, whose mapping pages are dropped as the walk goes.
    let mut released = 0usize;
    for (b, data) in out_img.changed() {
        if b >= src_blocks {
            continue;
        }
        let s = (b * bs) as usize;
        let e = (s + bs as usize).min(src.len());
        if s - released.min(s) >= RELEASE_SPAN {
            crate::util::pages::release_if_mapped(&src[released..s]);
            released = s;
        }
        let differs = match data {
            Changed::Bytes(d) => d[..e - s] != src[s..e],
            Changed::Zero => src[s..e].iter().any(|&x| x != 0),
        };
        if differs {
            changed += 1;
            push_range(&mut changed_ranges, b * bs..b * bs + bs);
            let now_zero = match data {
                Changed::Zero => true,
                Changed::Bytes(d) => d.iter().all(|&x| x == 0),
            };
            if now_zero {
                push_range(&mut zeroed_ranges, b * bs..b * bs + bs);
            }
        }
        if b < sb.blocks && alloc.is_free(b) {
            zeroed += 1;
        }
    }
    let size = (src.len() as u64).max(new_blocks * bs);
    if size > src_blocks * bs {
        push_range(&mut changed_ranges, src_blocks * bs..size);
    }
    let stats = EditStats {
        block_size: bs,
        changed: changed_ranges,
        zeroed: zeroed_ranges,
        changed_blocks: changed,
        zeroed_blocks: zeroed,
        appended_blocks: new_blocks - sb.blocks,
        removed_inodes,
        rewritten_dirs,
        replaced_files: replaced.len() as u64,
        size,
    };
    write_out(&out_img, size, out).map_err(|source| EditError::Io {
        context: "writing the edited image",
        source,
    })?;
    Ok(stats)
}

/// Marks the blocks of the shared xattrs `ino` refers to as used.
fn shared_xattr_blocks(img: &[u8], sb: &Super, ino: &Ino, live: &mut BlockSet) -> Result<()> {
    let core = if ino.extended {
        EXTENDED_INODE
    } else {
        COMPACT_INODE
    } as u64;
    if ino.base == core {
        return Ok(());
    }
    let h = (ino.iloc + core) as usize;
    let count = u64::from(img[h + 4]);
    if core + 12 + count * 4 > ino.base {
        return Err(invalid(
            "h_shared_count",
            count,
            h as u64 + 4,
            "more shared xattr ids than the xattr area holds",
        ));
    }
    for i in 0..count {
        let at = h + 12 + 4 * i as usize;
        let id = u64::from(le32(img, at));
        let off = sb.xattr_blkaddr * sb.bs + id * 4;
        let Some(e) = img.get(off as usize..off as usize + 4) else {
            return Err(invalid(
                "shared xattr id",
                id,
                at as u64,
                "outside the image",
            ));
        };
        let len = 4 + u64::from(e[0]) + u64::from(le16(e, 2));
        live.insert(off / sb.bs..(off + len).div_ceil(sb.bs));
    }
    Ok(())
}

/// Updates an inode's layout, size and `i_u`.
fn set_layout(o: &mut Output<'_>, ino: &Ino, layout: u16, size: u64, i_u: u64) -> Result<()> {
    let fmt = (ino.format & !0b1110) | (layout << 1);
    o.write(ino.iloc, &fmt.to_le_bytes());
    if ino.extended {
        o.write(ino.iloc + 8, &size.to_le_bytes());
    } else {
        let s = u32::try_from(size).map_err(|_| EditError::Unsupported {
            feature: "size of 4 GiB or more in a compact inode".into(),
            path: String::new(),
        })?;
        o.write(ino.iloc + 8, &s.to_le_bytes());
    }
    let v = u32::try_from(i_u).map_err(|_| EditError::Unsupported {
        feature: "block address beyond 2^32".into(),
        path: String::new(),
    })?;
    o.write(ino.iloc + 16, &v.to_le_bytes());
    Ok(())
}

/// Writes a directory's new (smaller) content: inline tail where the old
/// one was when it fits, else plain blocks, in place or moved.
fn rewrite_dir(
    o: &mut Output<'_>,
    alloc: &mut Allocator,
    sb: &Super,
    ino: &Ino,
    content: &[u8],
) -> Result<()> {
    let bs = sb.bs;
    let (old_blocks, old_tail) = flat_extent(sb, ino)?;
    let old_full = old_blocks.end - old_blocks.start;
    let raw = u64::from(ino.i_u);
    let size = content.len() as u64;
    let m = size.div_ceil(bs).max(1);
    let last = size - (m - 1) * bs;
    let tail_at = ino.iloc + ino.base;
    if ino.layout == LAYOUT_FLAT_INLINE {
        // Only the old tail's own bytes are known to be free.
        let room = old_tail;
        if last < bs && last <= room && m - 1 <= old_full {
            let full = ((m - 1) * bs) as usize;
            if m > 1 {
                o.put_blocks(raw, &content[..full]);
            }
            free_blocks(o, alloc, raw + m - 1..raw + old_full);
            o.zero(tail_at, old_tail.max(last));
            o.write(tail_at, &content[full..]);
            return set_layout(
                o,
                ino,
                LAYOUT_FLAT_INLINE,
                size,
                if m > 1 { raw } else { u64::from(ino.i_u) },
            );
        }
        o.zero(tail_at, old_tail);
    }
    let start = if m <= old_full {
        free_blocks(o, alloc, raw + m..raw + old_full);
        raw
    } else {
        free_blocks(o, alloc, old_blocks.clone());
        alloc.take(m).start
    };
    o.put_blocks(start, content);
    set_layout(o, ino, LAYOUT_FLAT_PLAIN, size, start)
}

fn free_blocks(o: &mut Output<'_>, alloc: &mut Allocator, r: Range<u64>) {
    for b in r.clone() {
        o.zero_block(b);
    }
    if !r.is_empty() {
        alloc.release(r);
    }
}

/// Source bytes read between drops of their mapping pages (see
/// `util::pages`).
const RELEASE_SPAN: usize = 16 << 20;

/// Edits the image file `src` into `out` (written from offset 0; the caller
/// makes it atomic). The source is only read.
pub fn edit_image(src: &Path, e: &Edit, out: &mut std::fs::File) -> Result<EditStats> {
    let io_err = |source| EditError::Io {
        context: "reading the source image",
        source,
    };
    let file = std::fs::File::open(src).map_err(io_err)?;
    // SAFETY: the mapping is read-only and romkit never writes to its
    // source; a file changed underneath by another process can only yield
    // wrong bytes, which the checks after a build report.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?;
    let _mapped = crate::util::pages::MappedGuard::new(&map);
    let stats = edit(&map, e, out)?;
    // A reused output file may have been longer.
    out.set_len(stats.size).map_err(|source| EditError::Io {
        context: "writing the edited image",
        source,
    })?;
    Ok(stats)
}
