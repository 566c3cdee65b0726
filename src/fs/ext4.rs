//! Reading ext4 images (MIUI-era system partitions) into a [`Tree`].
//!
//! In-house, because reading a partition for a rebuild needs what the
//! `ext4-view` crate keeps private: inode numbers (hard links), link counts,
//! device numbers and extended attributes (SELinux labels, capabilities); it
//! also refuses timestamps outside 1970-2038 and cannot be shared across
//! threads. `ext4-view` serves as an independent cross-check in the tests.
//!
//! Supported: 1-64 KiB blocks, 32- and 64-bit group descriptors, extents and
//! ext2/3 block maps, linear and hashed directories (read linearly), fast and
//! slow symlinks, device nodes in both encodings, in-inode and EA-block xattrs.
//! Refused with a message: inline data, meta_bg, xattr values in EA inodes.
//! Every block number, count, offset and size is checked against the image
//! before use.

pub mod edit;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use crate::fs::tree::{DataSource, FileData, Inode, InodeId, Kind, Meta, Tree};

const MAGIC: u16 = 0xEF53;
const INCOMPAT_FILETYPE: u32 = 0x2;
const INCOMPAT_META_BG: u32 = 0x10;
const INCOMPAT_EXTENTS: u32 = 0x40;
const INCOMPAT_64BIT: u32 = 0x80;
const FLAG_EXTENTS: u32 = 0x80000;
const FLAG_INLINE_DATA: u32 = 0x1000_0000;
const XATTR_MAGIC: u32 = 0xEA02_0000;
const EXTENT_MAGIC: u16 = 0xF30A;
const ROOT_INODE: u32 = 2;

/// Why an ext4 image could not be read.
pub type Ext4Error = crate::fs::ReadError;

fn bad(msg: impl Into<String>) -> Ext4Error {
    Ext4Error::Invalid("ext4", msg.into())
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// An opened ext4 image.
#[derive(Debug)]
pub struct Ext4Image {
    file: File,
    len: u64,
    block: u64,
    blocks: u64,
    inodes: u32,
    inode_size: usize,
    inodes_per_group: u32,
    desc_size: usize,
    gdt_start: u64,
    groups: u64,
    incompat: u32,
}

/// One mapped run of a file: logical block, physical block, count, unwritten.
type Run = (u64, u64, u64, bool);

impl Ext4Image {
    /// Opens and validates the superblock.
    pub fn open(path: &Path) -> Result<Arc<Self>, Ext4Error> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let mut sb = [0u8; 1024];
        if len < 2048 {
            return Err(bad(format!("{len} bytes is too small for a superblock")));
        }
        file.read_exact_at(&mut sb, 1024)?;
        if le16(&sb, 0x38) != MAGIC {
            return Err(bad("no ext4 magic 0xEF53 at byte 1080"));
        }
        let log = le32(&sb, 0x18);
        if log > 6 {
            return Err(bad(format!("s_log_block_size {log} (blocks over 64 KiB)")));
        }
        let block = 1024u64 << log;
        let incompat = le32(&sb, 0x60);
        if incompat & INCOMPAT_META_BG != 0 {
            return Err(bad("meta_bg layouts are not supported"));
        }
        if incompat & INCOMPAT_FILETYPE == 0 {
            return Err(bad(
                "directories without file types (pre-ext2 rev 1) are not supported",
            ));
        }
        let blocks = u64::from(le32(&sb, 0x04))
            | if incompat & INCOMPAT_64BIT != 0 {
                u64::from(le32(&sb, 0x150)) << 32
            } else {
                0
            };
        let blocks_per_group = u64::from(le32(&sb, 0x20));
        let inodes_per_group = le32(&sb, 0x28);
        let inodes = le32(&sb, 0x00);
        let rev = le32(&sb, 0x4C);
        let inode_size = if rev == 0 {
            128
        } else {
            usize::from(le16(&sb, 0x58))
        };
        if !(128..=4096).contains(&inode_size) || !inode_size.is_power_of_two() {
            return Err(bad(format!("inode size {inode_size}")));
        }
        if blocks_per_group == 0 || inodes_per_group == 0 || blocks == 0 {
            return Err(bad("zero blocks or inodes per group"));
        }
        let desc_size = if incompat & INCOMPAT_64BIT != 0 {
            usize::from(le16(&sb, 0xFE)).max(32)
        } else {
            32
        };
        if desc_size > 1024 {
            return Err(bad(format!("group descriptor size {desc_size}")));
        }
        let first_data_block = u64::from(le32(&sb, 0x14));
        let groups = (blocks - first_data_block.min(blocks)).div_ceil(blocks_per_group);
        if groups.saturating_mul(u64::from(inodes_per_group)) < u64::from(inodes) {
            return Err(bad("inode count exceeds the groups' capacity"));
        }
        let img = Ext4Image {
            file,
            len,
            block,
            blocks,
            inodes,
            inode_size,
            inodes_per_group,
            desc_size,
            gdt_start: (first_data_block + 1) * block,
            groups,
            incompat,
        };
        if img.gdt_start + groups * desc_size as u64 > len {
            return Err(bad("group descriptors run past the end of the image"));
        }
        Ok(Arc::new(img))
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<(), Ext4Error> {
        if off
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.len)
        {
            return Err(bad(format!(
                "read of {} bytes at {off} is past the end ({} bytes)",
                buf.len(),
                self.len
            )));
        }
        Ok(self.file.read_exact_at(buf, off)?)
    }

    fn block_at(&self, b: u64, what: &str) -> Result<u64, Ext4Error> {
        if b == 0 || b >= self.blocks {
            return Err(bad(format!(
                "{what}: block {b} outside the filesystem ({} blocks)",
                self.blocks
            )));
        }
        Ok(b * self.block)
    }

    /// The raw bytes of inode `n`.
    fn inode(&self, n: u32) -> Result<Vec<u8>, Ext4Error> {
        if n == 0 || n > self.inodes {
            return Err(bad(format!("inode {n} outside 1..={}", self.inodes)));
        }
        let group = u64::from((n - 1) / self.inodes_per_group);
        let index = u64::from((n - 1) % self.inodes_per_group);
        if group >= self.groups {
            return Err(bad(format!(
                "inode {n} in group {group} of {}",
                self.groups
            )));
        }
        let mut gd = vec![0u8; self.desc_size];
        self.read_at(&mut gd, self.gdt_start + group * self.desc_size as u64)?;
        let table = u64::from(le32(&gd, 0x08))
            | if self.desc_size >= 64 {
                u64::from(le32(&gd, 0x28)) << 32
            } else {
                0
            };
        let at = self.block_at(table, &format!("inode table of group {group}"))?
            + index * self.inode_size as u64;
        let mut raw = vec![0u8; self.inode_size];
        self.read_at(&mut raw, at)?;
        Ok(raw)
    }

    fn size_of(raw: &[u8]) -> u64 {
        u64::from(le32(raw, 0x04)) | (u64::from(le32(raw, 0x6C)) << 32)
    }

    /// The block runs of an inode's data.
    fn runs(&self, n: u32, raw: &[u8]) -> Result<Vec<Run>, Ext4Error> {
        let flags = le32(raw, 0x20);
        if flags & FLAG_INLINE_DATA != 0 {
            return Err(bad(format!("inode {n}: inline data is not supported")));
        }
        let mut runs = Vec::new();
        if flags & FLAG_EXTENTS != 0 {
            if self.incompat & INCOMPAT_EXTENTS == 0 {
                return Err(bad(format!(
                    "inode {n}: extent flag without the extents feature"
                )));
            }
            self.extents(n, &raw[0x28..0x28 + 60], 0, &mut runs)?;
        } else {
            let size_blocks = Self::size_of(raw).div_ceil(self.block);
            let i_block: Vec<u64> = (0..15)
                .map(|i| u64::from(le32(raw, 0x28 + 4 * i)))
                .collect();
            let mut logical = 0u64;
            for &b in &i_block[..12] {
                if logical >= size_blocks {
                    break;
                }
                if b != 0 {
                    self.block_at(b, &format!("inode {n} block map"))?;
                    runs.push((logical, b, 1, false));
                }
                logical += 1;
            }
            for (depth, &b) in i_block[12..].iter().enumerate() {
                if logical >= size_blocks {
                    break;
                }
                self.indirect(n, b, depth as u32 + 1, &mut logical, size_blocks, &mut runs)?;
            }
        }
        Ok(runs)
    }

    fn indirect(
        &self,
        n: u32,
        b: u64,
        depth: u32,
        logical: &mut u64,
        limit: u64,
        runs: &mut Vec<Run>,
    ) -> Result<(), Ext4Error> {
        let per = self.block / 4;
        let span = per.pow(depth);
        if b == 0 {
            *logical += span;
            return Ok(());
        }
        let at = self.block_at(b, &format!("inode {n} indirect block"))?;
        let mut blk = vec![0u8; self.block as usize];
        self.read_at(&mut blk, at)?;
        for i in 0..per as usize {
            if *logical >= limit {
                break;
            }
            let p = u64::from(le32(&blk, 4 * i));
            if depth == 1 {
                if p != 0 {
                    self.block_at(p, &format!("inode {n} block map"))?;
                    runs.push((*logical, p, 1, false));
                }
                *logical += 1;
            } else {
                self.indirect(n, p, depth - 1, logical, limit, runs)?;
            }
        }
        Ok(())
    }

    fn extents(
        &self,
        n: u32,
        node: &[u8],
        level: u32,
        runs: &mut Vec<Run>,
    ) -> Result<(), Ext4Error> {
        if level > 5 {
            return Err(bad(format!("inode {n}: extent tree deeper than 5")));
        }
        if node.len() < 12 || le16(node, 0) != EXTENT_MAGIC {
            return Err(bad(format!("inode {n}: bad extent header")));
        }
        let entries = usize::from(le16(node, 2));
        let depth = le16(node, 6);
        if 12 + entries * 12 > node.len() {
            return Err(bad(format!(
                "inode {n}: {entries} extents do not fit their node"
            )));
        }
        for i in 0..entries {
            let e = &node[12 + 12 * i..24 + 12 * i];
            if depth == 0 {
                let logical = u64::from(le32(e, 0));
                let mut len = u64::from(le16(e, 4));
                let unwritten = len > 32768;
                if unwritten {
                    len -= 32768;
                }
                let start = (u64::from(le16(e, 6)) << 32) | u64::from(le32(e, 8));
                if len > 0 {
                    self.block_at(start, &format!("inode {n} extent"))?;
                    self.block_at(start + len - 1, &format!("inode {n} extent end"))?;
                    runs.push((logical, start, len, unwritten));
                }
            } else {
                let leaf = (u64::from(le16(e, 8)) << 32) | u64::from(le32(e, 4));
                let at = self.block_at(leaf, &format!("inode {n} extent index"))?;
                let mut blk = vec![0u8; self.block as usize];
                self.read_at(&mut blk, at)?;
                if le16(&blk, 6) + 1 != depth {
                    return Err(bad(format!("inode {n}: extent tree depth mismatch")));
                }
                self.extents(n, &blk, level + 1, runs)?;
            }
        }
        Ok(())
    }

    /// Reads `size` bytes of an inode's data; holes and unwritten extents read as zeros.
    fn data(&self, n: u32, raw: &[u8], size: u64, out: &mut Vec<u8>) -> Result<(), Ext4Error> {
        if size > self.len.saturating_mul(16) {
            return Err(bad(format!(
                "inode {n} claims {size} bytes in a {}-byte image",
                self.len
            )));
        }
        out.clear();
        out.resize(size as usize, 0);
        for (logical, phys, len, unwritten) in self.runs(n, raw)? {
            if unwritten {
                continue;
            }
            let start = logical.saturating_mul(self.block);
            if start >= size {
                continue;
            }
            let bytes = (len * self.block).min(size - start) as usize;
            let s = start as usize;
            self.read_at(&mut out[s..s + bytes], phys * self.block)?;
        }
        Ok(())
    }

    fn xattrs(&self, n: u32, raw: &[u8]) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, Ext4Error> {
        let mut out = inode_xattrs(raw, n)?;
        let acl = u64::from(le32(raw, 0x68)) | (u64::from(le16(raw, 0x76)) << 32);
        if acl != 0 {
            let at = self.block_at(acl, &format!("inode {n} xattr block"))?;
            let mut blk = vec![0u8; self.block as usize];
            self.read_at(&mut blk, at)?;
            out.append(&mut block_xattrs(&blk, n)?);
        }
        Ok(out)
    }

    fn meta(&self, n: u32, raw: &[u8]) -> Result<Meta, Ext4Error> {
        let mode = u32::from(le16(raw, 0));
        let uid = u32::from(le16(raw, 0x02)) | (u32::from(le16(raw, 0x78)) << 16);
        let gid = u32::from(le16(raw, 0x18)) | (u32::from(le16(raw, 0x7A)) << 16);
        let mut mtime = i64::from(le32(raw, 0x10) as i32);
        let mut nsec = 0;
        if self.inode_size > 128 && usize::from(le16(raw, 0x80)) >= 0x8C - 0x80 {
            let extra = le32(raw, 0x88);
            mtime += i64::from(extra & 3) << 32;
            nsec = extra >> 2;
            if nsec >= 1_000_000_000 {
                return Err(bad(format!("inode {n}: mtime nanoseconds {nsec}")));
            }
        }
        Ok(Meta {
            perm: mode & 0o7777,
            uid,
            gid,
            mtime,
            mtime_nsec: nsec,
            xattrs: self.xattrs(n, raw)?,
        })
    }

    /// Reads the image into a tree.
    pub fn tree(self: &Arc<Self>) -> Result<Tree, Ext4Error> {
        let root_raw = self.inode(ROOT_INODE)?;
        if le16(&root_raw, 0) & 0o170000 != 0o040000 {
            return Err(bad("root inode is not a directory"));
        }
        let mut tree = Tree::new(self.meta(ROOT_INODE, &root_raw)?);
        let source: Arc<dyn DataSource> = self.clone();
        let mut ids: HashMap<u32, InodeId> = HashMap::new();
        ids.insert(ROOT_INODE, tree.root());
        let mut visited: HashSet<u32> = HashSet::new();
        visited.insert(ROOT_INODE);
        let mut stack = vec![(ROOT_INODE, root_raw, tree.root(), String::new())];
        let mut buf = Vec::new();
        while let Some((n, raw, dir_id, path)) = stack.pop() {
            let size = Self::size_of(&raw);
            self.data(n, &raw, size, &mut buf)?;
            let mut at = 0usize;
            let mut names: Vec<(Vec<u8>, u32)> = Vec::new();
            while at + 8 <= buf.len() {
                let ino = le32(&buf, at);
                let rec_len = usize::from(le16(&buf, at + 4));
                let name_len = usize::from(buf[at + 6]);
                if rec_len < 8 || at + rec_len > buf.len() || 8 + name_len > rec_len {
                    return Err(bad(format!(
                        "/{path}: directory entry at {at} has rec_len {rec_len}"
                    )));
                }
                let name = &buf[at + 8..at + 8 + name_len];
                if ino != 0 && name != b"." && name != b".." {
                    names.push((name.to_vec(), ino));
                }
                at += rec_len;
            }
            for (name, ino) in names {
                let child_path = if path.is_empty() {
                    String::from_utf8_lossy(&name).into_owned()
                } else {
                    format!("{path}/{}", String::from_utf8_lossy(&name))
                };
                let id = if let Some(&id) = ids.get(&ino) {
                    if matches!(tree.inode(id).kind, Kind::Dir(_)) {
                        return Err(bad(format!(
                            "/{child_path}: directory inode {ino} reachable twice"
                        )));
                    }
                    id
                } else {
                    let raw = self.inode(ino)?;
                    let meta = self.meta(ino, &raw)?;
                    let fmt = u32::from(le16(&raw, 0)) & 0o170000;
                    let size = Self::size_of(&raw);
                    let kind = match fmt {
                        0o040000 => Kind::Dir(Default::default()),
                        0o100000 => Kind::File(FileData::Lazy {
                            source: source.clone(),
                            key: u64::from(ino),
                            size,
                        }),
                        0o120000 => {
                            let flags = le32(&raw, 0x20);
                            if size < 60 && flags & (FLAG_EXTENTS | FLAG_INLINE_DATA) == 0 {
                                Kind::Symlink(raw[0x28..0x28 + size as usize].to_vec())
                            } else {
                                let mut t = Vec::new();
                                if size > 4096 {
                                    return Err(bad(format!(
                                        "/{child_path}: symlink target of {size} bytes"
                                    )));
                                }
                                self.data(ino, &raw, size, &mut t)?;
                                Kind::Symlink(t)
                            }
                        }
                        0o020000 | 0o060000 => {
                            let old = le32(&raw, 0x28);
                            let dev = if old != 0 {
                                u64::from(((old >> 8) & 0xff) << 8 | (old & 0xff))
                            } else {
                                super::erofs::layout::decode_dev(le32(&raw, 0x2C))
                            };
                            if fmt == 0o020000 {
                                Kind::CharDev(dev)
                            } else {
                                Kind::BlockDev(dev)
                            }
                        }
                        0o010000 => Kind::Fifo,
                        0o140000 => Kind::Socket,
                        other => {
                            return Err(bad(format!("/{child_path}: unknown file type {other:o}")));
                        }
                    };
                    let is_dir = matches!(kind, Kind::Dir(_));
                    let id = tree.add_inode(Inode { kind, meta });
                    ids.insert(ino, id);
                    if is_dir {
                        if !visited.insert(ino) {
                            return Err(bad(format!("/{child_path}: directory cycle")));
                        }
                        stack.push((ino, raw, id, child_path.clone()));
                    }
                    id
                };
                tree.link(dir_id, &name, id)
                    .map_err(|e| bad(format!("/{child_path}: {e}")))?;
            }
        }
        Ok(tree)
    }
}

/// Parses the extended attributes kept in the body of an ext4 inode: `raw` is
/// the whole on-disk inode (its size is the filesystem's inode size), `n` its
/// number for messages. Inodes of 128 bytes have no room for any.
///
/// Public so that the parser can be exercised on its own (fuzzing, tests);
/// [`Ext4Image::tree`] uses it for every inode.
pub fn inode_xattrs(raw: &[u8], n: u32) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, Ext4Error> {
    let mut out = BTreeMap::new();
    if raw.len() < 128 {
        return Err(bad(format!(
            "inode {n}: {} bytes is shorter than an inode",
            raw.len()
        )));
    }
    if raw.len() > 128 {
        if raw.len() < 0x82 {
            return Err(bad(format!(
                "inode {n}: {} bytes is too short for i_extra_isize",
                raw.len()
            )));
        }
        let extra = usize::from(le16(raw, 0x80));
        if 128 + extra > raw.len() || extra % 4 != 0 {
            return Err(bad(format!(
                "inode {n}: i_extra_isize {extra} does not fit a {}-byte inode",
                raw.len()
            )));
        }
        let start = 128 + extra;
        if start + 4 <= raw.len() && le32(raw, start) == XATTR_MAGIC {
            let region = &raw[start + 4..];
            xattr_entries(region, 0, 0, n, &mut out)?;
        }
    }
    Ok(out)
}

/// Parses an ext4 extended-attribute block (`blk`, one filesystem block, the
/// target of an inode's `i_file_acl`) of inode `n`.
pub fn block_xattrs(blk: &[u8], n: u32) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, Ext4Error> {
    if blk.len() < 32 || le32(blk, 0) != XATTR_MAGIC {
        return Err(bad(format!("inode {n}: xattr block has no magic")));
    }
    let mut out = BTreeMap::new();
    xattr_entries(blk, 32, 0, n, &mut out)?;
    Ok(out)
}

fn xattr_entries(
    region: &[u8],
    entries_at: usize,
    values_base: usize,
    n: u32,
    out: &mut BTreeMap<Vec<u8>, Vec<u8>>,
) -> Result<(), Ext4Error> {
    let mut at = entries_at;
    while at + 4 <= region.len() && le32(region, at) != 0 {
        if at + 16 > region.len() {
            return Err(bad(format!("inode {n}: xattr entry past its region")));
        }
        let name_len = usize::from(region[at]);
        let index = region[at + 1];
        let value_off = usize::from(le16(region, at + 2));
        let value_inum = le32(region, at + 4);
        let value_size = le32(region, at + 8) as usize;
        if value_inum != 0 {
            return Err(bad(format!(
                "inode {n}: xattr value in an EA inode is not supported"
            )));
        }
        let name_end = at + 16 + name_len;
        let vs = values_base + value_off;
        if name_end > region.len() || vs.checked_add(value_size).is_none_or(|e| e > region.len()) {
            return Err(bad(format!(
                "inode {n}: xattr name or value runs past its region"
            )));
        }
        let suffix = &region[at + 16..name_end];
        let prefix: Option<&[u8]> = match index {
            1 => Some(b"user."),
            2 => Some(b"system.posix_acl_access"),
            3 => Some(b"system.posix_acl_default"),
            4 => Some(b"trusted."),
            6 => Some(b"security."),
            7 => Some(b"system."),
            _ => None,
        };
        let Some(prefix) = prefix else {
            return Err(bad(format!(
                "inode {n}: xattr name index {index} is unknown"
            )));
        };
        out.insert(
            [prefix, suffix].concat(),
            region[vs..vs + value_size].to_vec(),
        );
        at += (16 + name_len).div_ceil(4) * 4;
    }
    Ok(())
}

impl DataSource for Ext4Image {
    fn read(&self, key: u64, size: u64, out: &mut Vec<u8>) -> io::Result<()> {
        let n = u32::try_from(key).map_err(io::Error::other)?;
        let raw = self.inode(n).map_err(io::Error::other)?;
        self.data(n, &raw, size, out).map_err(io::Error::other)
    }
}
