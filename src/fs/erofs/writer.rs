//! Writing an EROFS image from a [`Tree`].
//!
//! Layout, all in 4096-byte blocks:
//! ```text
//! block 0      1024 zero bytes, superblock, then the first inodes
//! metadata     every inode (root first) with its xattrs and inline tail,
//!              32-byte aligned, never crossing a block boundary
//! shared xattrs (name, value) pairs used by two or more inodes
//! data         full blocks of files, directories and symlinks, in inode order
//! ```
//! `meta_blkaddr` is 0, so a nid is simply the inode's byte offset / 32 and the
//! root, placed right after the superblock, gets nid 36 as with mkfs.erofs.
//!
//! Inodes are compact (32 bytes) unless something does not fit: an mtime other
//! than the image's build time, ids or link counts above 65535, sizes of 4 GiB
//! or more. The build time is `SOURCE_DATE_EPOCH` when given, otherwise the
//! most common mtime, so most inodes stay compact. The UUID is derived from the
//! image content, so equal trees give equal bytes.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Seek, SeekFrom, Write};

use sha2::{Digest, Sha256};

use super::layout::*;
use crate::fs::tree::{InodeId, Kind, Tree};

/// Block size romkit writes (Android's page size).
pub const BLOCK: u64 = 4096;

/// Options for [`write`].
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// Build time for the superblock; `None` picks the most common mtime.
    pub build_time: Option<i64>,
    /// Volume name (at most 16 bytes).
    pub volume_name: Option<String>,
}

/// What was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteStats {
    /// Image size in bytes.
    pub size: u64,
    /// Inodes written.
    pub inodes: u64,
    /// Filesystem UUID.
    pub uuid: [u8; 16],
}

/// Why an image could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The tree holds something EROFS cannot represent.
    #[error("{path}: {why}")]
    Unrepresentable {
        /// Path in the tree.
        path: String,
        /// What cannot be stored.
        why: String,
    },
    /// Reading a file's data or writing the image failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> WriteError {
    let context = context.into();
    move |source| WriteError::Io { context, source }
}

/// Per-inode plan.
struct Plan {
    id: InodeId,
    path: String,
    extended: bool,
    /// Serialized xattr area (header, shared ids, inline entries); empty if none.
    xattrs: Vec<u8>,
    /// Content bytes for files, directories, symlinks.
    size: u64,
    /// Whether the tail lives inline after the inode.
    inline: bool,
    /// Byte offset of the inode.
    offset: u64,
    /// First data block.
    blkaddr: u32,
    nlink: u32,
    ftype: u8,
}

impl Plan {
    fn core_size(&self) -> u64 {
        if self.extended {
            EXTENDED_INODE as u64
        } else {
            COMPACT_INODE as u64
        }
    }
    fn tail(&self) -> u64 {
        self.size % BLOCK
    }
    fn full_blocks(&self) -> u64 {
        if self.inline {
            self.size / BLOCK
        } else {
            self.size.div_ceil(BLOCK)
        }
    }
}

fn ftype(kind: &Kind) -> u8 {
    match kind {
        Kind::Dir(_) => ft::DIR,
        Kind::File(_) => ft::REG,
        Kind::Symlink(_) => ft::SYMLINK,
        Kind::CharDev(_) => ft::CHR,
        Kind::BlockDev(_) => ft::BLK,
        Kind::Fifo => ft::FIFO,
        Kind::Socket => ft::SOCK,
    }
}

/// Directory entries of one directory, in on-disk order, split into blocks.
fn dir_blocks(entries: &[(Vec<u8>, usize)]) -> Vec<&[(Vec<u8>, usize)]> {
    let mut blocks = Vec::new();
    let mut start = 0;
    let mut used = 0usize;
    for (i, (name, _)) in entries.iter().enumerate() {
        let need = DIRENT_SIZE + name.len();
        if used + need > BLOCK as usize {
            blocks.push(&entries[start..i]);
            start = i;
            used = 0;
        }
        used += need;
    }
    blocks.push(&entries[start..]);
    blocks
}

fn dir_size(blocks: &[&[(Vec<u8>, usize)]]) -> u64 {
    let last: usize = blocks
        .last()
        .map_or(0, |b| b.iter().map(|(n, _)| DIRENT_SIZE + n.len()).sum());
    (blocks.len() as u64 - 1) * BLOCK + last as u64
}

/// Writes `tree` as an EROFS image into `out` (positioned anywhere; the image
/// starts at offset 0).
pub fn write<W: Write + Seek>(
    tree: &Tree,
    opts: &WriteOptions,
    out: &mut W,
) -> Result<WriteStats, WriteError> {
    // Inode order: first appearance in the walk (root first).
    let walk = tree.walk();
    let mut index: HashMap<InodeId, usize> = HashMap::new();
    let mut order: Vec<(String, InodeId)> = Vec::new();
    for (path, id) in &walk {
        if !index.contains_key(id) {
            index.insert(*id, order.len());
            order.push((path.clone(), *id));
        }
    }
    let links = tree.link_counts();
    let mut parent: Vec<usize> = vec![0; order.len()];
    let mut subdirs: Vec<u32> = vec![0; order.len()];
    for (i, (_, id)) in order.iter().enumerate() {
        if let Kind::Dir(entries) = &tree.inode(*id).kind {
            for child in entries.values() {
                let c = index[child];
                if matches!(tree.inode(*child).kind, Kind::Dir(_)) {
                    parent[c] = i;
                    subdirs[i] += 1;
                }
            }
        }
    }

    // Build time: the given one, else the most common mtime.
    let (build_time, build_nsec) = match opts.build_time {
        Some(t) => (t, 0),
        None => {
            let mut counts: BTreeMap<(i64, u32), usize> = BTreeMap::new();
            for (_, id) in &order {
                let m = &tree.inode(*id).meta;
                *counts.entry((m.mtime, m.mtime_nsec)).or_default() += 1;
            }
            counts
                .into_iter()
                .max_by_key(|(k, n)| (*n, std::cmp::Reverse(*k)))
                .map(|(k, _)| k)
                .unwrap_or((0, 0))
        }
    };

    // Shared xattrs: pairs used by two or more inodes.
    let mut pair_count: BTreeMap<(&[u8], &[u8]), usize> = BTreeMap::new();
    for (path, id) in &order {
        for (k, v) in &tree.inode(*id).meta.xattrs {
            let (_, suffix) = split_xattr_name(k).ok_or_else(|| WriteError::Unrepresentable {
                path: path.clone(),
                why: format!(
                    "xattr {:?} is in a namespace EROFS cannot store",
                    String::from_utf8_lossy(k)
                ),
            })?;
            if suffix.len() > 255 || v.len() > 65535 {
                return Err(WriteError::Unrepresentable {
                    path: path.clone(),
                    why: format!("xattr {:?} is too long", String::from_utf8_lossy(k)),
                });
            }
            *pair_count.entry((k.as_slice(), v.as_slice())).or_default() += 1;
        }
    }
    let mut shared_area = Vec::new();
    let mut shared_id: HashMap<(&[u8], &[u8]), u32> = HashMap::new();
    for ((k, v), n) in &pair_count {
        if *n >= 2 {
            shared_id.insert((k, v), (shared_area.len() / 4) as u32);
            append_xattr_entry(&mut shared_area, k, v);
        }
    }

    // Plans.
    let mut plans = Vec::with_capacity(order.len());
    let mut dir_entries: Vec<Vec<(Vec<u8>, usize)>> = vec![Vec::new(); order.len()];
    for (i, (path, id)) in order.iter().enumerate() {
        let ino = tree.inode(*id);
        let m = &ino.meta;
        let size = match &ino.kind {
            Kind::File(d) => d.size(),
            Kind::Symlink(t) => t.len() as u64,
            Kind::Dir(entries) => {
                let mut list: Vec<(Vec<u8>, usize)> = Vec::with_capacity(entries.len() + 2);
                list.push((b".".to_vec(), i));
                list.push((b"..".to_vec(), parent[i]));
                for (name, c) in entries {
                    list.push((name.clone(), index[c]));
                }
                list.sort_by(|a, b| a.0.cmp(&b.0));
                let size = dir_size(&dir_blocks(&list));
                dir_entries[i] = list;
                size
            }
            _ => 0,
        };
        let nlink = match &ino.kind {
            Kind::Dir(_) => 2 + subdirs[i],
            _ => links[*id],
        };
        let extended = m.mtime != build_time
            || m.mtime_nsec != build_nsec
            || m.uid > 0xffff
            || m.gid > 0xffff
            || nlink > 0xffff
            || size > u64::from(u32::MAX);
        // xattr area: header, shared ids, inline entries.
        let mut xattrs = Vec::new();
        if !m.xattrs.is_empty() {
            let shared: Vec<u32> = m
                .xattrs
                .iter()
                .filter_map(|(k, v)| shared_id.get(&(k.as_slice(), v.as_slice())).copied())
                .collect();
            xattrs.extend_from_slice(&[0u8; 4]);
            xattrs.push(shared.len() as u8);
            xattrs.extend_from_slice(&[0u8; 7]);
            for s in &shared {
                xattrs.extend_from_slice(&s.to_le_bytes());
            }
            for (k, v) in &m.xattrs {
                if !shared_id.contains_key(&(k.as_slice(), v.as_slice())) {
                    append_xattr_entry(&mut xattrs, k, v);
                }
            }
            if shared.len() > 255 {
                return Err(WriteError::Unrepresentable {
                    path: path.clone(),
                    why: "more than 255 shared xattrs".into(),
                });
            }
        }
        plans.push(Plan {
            id: *id,
            path: path.clone(),
            extended,
            xattrs,
            size,
            inline: false,
            offset: 0,
            blkaddr: 0,
            nlink,
            ftype: ftype(&ino.kind),
        });
    }

    // Metadata placement.
    let mut cursor = SUPER_OFFSET + SUPER_SIZE as u64;
    for p in plans.iter_mut() {
        let base = p.core_size() + p.xattrs.len() as u64;
        if base > BLOCK {
            return Err(WriteError::Unrepresentable {
                path: p.path.clone(),
                why: format!("inode with its xattrs takes {base} bytes, more than a block"),
            });
        }
        let tail = p.tail();
        p.inline =
            matches!(p.ftype, ft::REG | ft::DIR | ft::SYMLINK) && tail > 0 && base + tail <= BLOCK;
        let need = base + if p.inline { tail } else { 0 };
        let mut at = cursor.div_ceil(ISLOT) * ISLOT;
        if at % BLOCK + need > BLOCK {
            at = at.div_ceil(BLOCK) * BLOCK;
        }
        p.offset = at;
        cursor = at + need;
    }
    if plans[0].offset / ISLOT > u64::from(u16::MAX) {
        return Err(WriteError::Unrepresentable {
            path: "/".into(),
            why: "root inode placed beyond nid 65535".into(),
        });
    }
    let meta_blocks = cursor.div_ceil(BLOCK);
    let shared_blocks = (shared_area.len() as u64).div_ceil(BLOCK);
    let xattr_blkaddr = if shared_area.is_empty() {
        0
    } else {
        meta_blocks
    };
    let mut next_block = meta_blocks + shared_blocks;
    for p in plans.iter_mut() {
        let n = p.full_blocks();
        if n > 0 {
            p.blkaddr = u32::try_from(next_block).map_err(|_| WriteError::Unrepresentable {
                path: p.path.clone(),
                why: "image larger than 16 TiB".into(),
            })?;
            next_block += n;
        }
    }
    // fsck.erofs reads an xattr header's worth past every inode: never let
    // the image end right after the last one.
    let total_blocks = if next_block == meta_blocks {
        next_block + 1
    } else {
        next_block
    };
    let nids: Vec<u64> = plans.iter().map(|p| p.offset / ISLOT).collect();

    // Serialize metadata (block 0 included; the superblock is filled in last).
    let mut meta = vec![0u8; (meta_blocks * BLOCK) as usize];
    let mut dir_data: Vec<Vec<u8>> = vec![Vec::new(); plans.len()];
    for (i, p) in plans.iter().enumerate() {
        let ino = tree.inode(p.id);
        let m = &ino.meta;
        let layout = if p.inline {
            LAYOUT_FLAT_INLINE
        } else {
            LAYOUT_FLAT_PLAIN
        };
        let format = (layout << 1) | if p.extended { I_VERSION_EXTENDED } else { 0 };
        let icount: u16 = if p.xattrs.is_empty() {
            0
        } else {
            ((p.xattrs.len() - XATTR_IBODY_HEADER) / 4 + 1) as u16
        };
        let mode = (ino.kind.type_bits() | (m.perm & 0o7777)) as u16;
        let i_u: u32 = match &ino.kind {
            Kind::CharDev(d) | Kind::BlockDev(d) => encode_dev(*d),
            _ => p.blkaddr,
        };
        let ino_num = (i + 1) as u32;
        let o = p.offset as usize;
        let core = &mut meta[o..o + p.core_size() as usize];
        core[0..2].copy_from_slice(&format.to_le_bytes());
        core[2..4].copy_from_slice(&icount.to_le_bytes());
        core[4..6].copy_from_slice(&mode.to_le_bytes());
        if p.extended {
            core[8..16].copy_from_slice(&p.size.to_le_bytes());
            core[16..20].copy_from_slice(&i_u.to_le_bytes());
            core[20..24].copy_from_slice(&ino_num.to_le_bytes());
            core[24..28].copy_from_slice(&m.uid.to_le_bytes());
            core[28..32].copy_from_slice(&m.gid.to_le_bytes());
            core[32..40].copy_from_slice(&(m.mtime as u64).to_le_bytes());
            core[40..44].copy_from_slice(&m.mtime_nsec.to_le_bytes());
            core[44..48].copy_from_slice(&p.nlink.to_le_bytes());
        } else {
            core[6..8].copy_from_slice(&(p.nlink as u16).to_le_bytes());
            core[8..12].copy_from_slice(&(p.size as u32).to_le_bytes());
            core[16..20].copy_from_slice(&i_u.to_le_bytes());
            core[20..24].copy_from_slice(&ino_num.to_le_bytes());
            core[24..26].copy_from_slice(&(m.uid as u16).to_le_bytes());
            core[26..28].copy_from_slice(&(m.gid as u16).to_le_bytes());
        }
        let xo = o + p.core_size() as usize;
        meta[xo..xo + p.xattrs.len()].copy_from_slice(&p.xattrs);
        // Content that needs no file read: directories and symlinks.
        let content: Option<Vec<u8>> = match &ino.kind {
            Kind::Dir(_) => {
                let blocks = dir_blocks(&dir_entries[i]);
                let mut bytes = Vec::with_capacity(blocks.len() * BLOCK as usize);
                for (bi, b) in blocks.iter().enumerate() {
                    let mut blk = vec![0u8; BLOCK as usize];
                    let mut nameoff = b.len() * DIRENT_SIZE;
                    for (ei, (name, target)) in b.iter().enumerate() {
                        let d = &mut blk[ei * DIRENT_SIZE..(ei + 1) * DIRENT_SIZE];
                        d[0..8].copy_from_slice(&nids[*target].to_le_bytes());
                        d[8..10].copy_from_slice(&(nameoff as u16).to_le_bytes());
                        d[10] = plans[*target].ftype;
                        blk[nameoff..nameoff + name.len()].copy_from_slice(name);
                        nameoff += name.len();
                    }
                    if bi + 1 == blocks.len() {
                        blk.truncate(nameoff);
                    }
                    bytes.extend_from_slice(&blk);
                }
                debug_assert_eq!(bytes.len() as u64, p.size);
                Some(bytes)
            }
            Kind::Symlink(t) => Some(t.clone()),
            _ => None,
        };
        if p.inline {
            let tail_at = xo + p.xattrs.len();
            let tail = p.tail() as usize;
            let src = match &content {
                Some(c) => c[c.len() - tail..].to_vec(),
                None => Vec::new(), // file tails are copied when the data is read
            };
            if !src.is_empty() {
                meta[tail_at..tail_at + tail].copy_from_slice(&src);
            }
        }
        dir_data[i] = content.unwrap_or_default();
    }

    // File tails that go inline need the file's bytes: read them now, and
    // write the data area in one pass below.
    let mut hasher = Sha256::new();
    out.seek(SeekFrom::Start(0)).map_err(io_err("seek"))?;
    // Data area first into position, streamed.
    let data_start = (meta_blocks + shared_blocks) * BLOCK;
    out.seek(SeekFrom::Start(data_start))
        .map_err(io_err("seek"))?;
    let mut buf = Vec::new();
    for (i, p) in plans.iter().enumerate() {
        let ino = tree.inode(p.id);
        let bytes: &[u8] = match &ino.kind {
            Kind::File(d) => {
                d.read(&mut buf)
                    .map_err(io_err(format!("reading {}", p.path)))?;
                if buf.len() as u64 != p.size {
                    return Err(WriteError::Io {
                        context: format!("reading {}", p.path),
                        source: io::Error::other(format!(
                            "got {} bytes, expected {}",
                            buf.len(),
                            p.size
                        )),
                    });
                }
                &buf
            }
            Kind::Dir(_) | Kind::Symlink(_) => &dir_data[i],
            _ => &[],
        };
        if p.inline && matches!(ino.kind, Kind::File(_)) {
            let tail = p.tail() as usize;
            let tail_at = p.offset as usize + p.core_size() as usize + p.xattrs.len();
            meta[tail_at..tail_at + tail].copy_from_slice(&bytes[bytes.len() - tail..]);
        }
        let n = p.full_blocks();
        if n > 0 {
            let body = &bytes[..((n * BLOCK) as usize).min(bytes.len())];
            hasher.update(body);
            out.write_all(body).map_err(io_err("writing image"))?;
            let pad = (n * BLOCK) as usize - body.len();
            if pad > 0 {
                out.write_all(&vec![0u8; pad])
                    .map_err(io_err("writing image"))?;
                hasher.update(vec![0u8; pad]);
            }
        }
    }
    // Shared xattrs.
    out.seek(SeekFrom::Start(meta_blocks * BLOCK))
        .map_err(io_err("seek"))?;
    let mut shared_block = shared_area.clone();
    shared_block.resize((shared_blocks * BLOCK) as usize, 0);
    out.write_all(&shared_block)
        .map_err(io_err("writing image"))?;
    hasher.update(&shared_block);
    // Metadata and superblock.
    hasher.update(&meta);
    let digest = hasher.finalize();
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&digest[..16]);
    uuid[6] = (uuid[6] & 0x0f) | 0x50; // name-based (v5-style) UUID
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    let sb = &mut meta[SUPER_OFFSET as usize..SUPER_OFFSET as usize + SUPER_SIZE];
    sb[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    sb[12] = 12; // blkszbits
    sb[14..16].copy_from_slice(&(nids[0] as u16).to_le_bytes());
    sb[16..24].copy_from_slice(&(plans.len() as u64).to_le_bytes());
    sb[24..32].copy_from_slice(&(build_time as u64).to_le_bytes());
    sb[32..36].copy_from_slice(&build_nsec.to_le_bytes());
    sb[36..40].copy_from_slice(&(total_blocks as u32).to_le_bytes());
    sb[40..44].copy_from_slice(&0u32.to_le_bytes());
    sb[44..48].copy_from_slice(&(xattr_blkaddr as u32).to_le_bytes());
    sb[48..64].copy_from_slice(&uuid);
    if let Some(v) = &opts.volume_name {
        let b = v.as_bytes();
        let n = b.len().min(16);
        sb[64..64 + n].copy_from_slice(&b[..n]);
    }
    out.seek(SeekFrom::Start(0)).map_err(io_err("seek"))?;
    out.write_all(&meta).map_err(io_err("writing image"))?;
    if total_blocks > next_block {
        out.seek(SeekFrom::Start(next_block * BLOCK))
            .map_err(io_err("seek"))?;
        out.write_all(&vec![0u8; ((total_blocks - next_block) * BLOCK) as usize])
            .map_err(io_err("writing image"))?;
    }
    out.flush().map_err(io_err("writing image"))?;
    Ok(WriteStats {
        size: total_blocks * BLOCK,
        inodes: plans.len() as u64,
        uuid,
    })
}

fn append_xattr_entry(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let (index, suffix) = split_xattr_name(name).expect("checked before");
    out.push(suffix.len() as u8);
    out.push(index);
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(suffix);
    out.extend_from_slice(value);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}
