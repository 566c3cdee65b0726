//! Inode records and the blocks they own: extent trees (leaves and index
//! blocks) and ext2/3 block maps (data and indirect blocks).

use super::layout::{Group, Super};
use super::{Ext4EditError, Result, invalid, le16, le32};

/// Inode flag: the inode's blocks are an extent tree.
pub const FL_EXTENTS: u32 = 0x8_0000;
/// Inode flag: the data lives in the inode (inline_data).
pub const FL_INLINE_DATA: u32 = 0x1000_0000;
/// Inode flag: `i_blocks` counts file-system blocks, not 512-byte sectors.
pub const FL_HUGE_FILE: u32 = 0x4_0000;
/// Inode flag: fs-verity file.
pub const FL_VERITY: u32 = 0x10_0000;
const EXTENT_MAGIC: u16 = 0xF30A;
/// File type bits of `i_mode`.
pub const S_IFMT: u16 = 0o170000;
/// Directory.
pub const S_IFDIR: u16 = 0o040000;
/// Regular file.
pub const S_IFREG: u16 = 0o100000;
/// Symbolic link.
pub const S_IFLNK: u16 = 0o120000;

/// One inode as read from the source.
#[derive(Clone, Debug)]
pub struct Ino {
    /// Inode number.
    pub n: u32,
    /// Byte offset of the record.
    pub at: u64,
    /// The record's bytes.
    pub raw: Vec<u8>,
}

impl Ino {
    /// `i_mode`.
    pub fn mode(&self) -> u16 {
        le16(&self.raw, 0)
    }
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode() & S_IFMT == S_IFDIR
    }
    /// `i_links_count`.
    pub fn links(&self) -> u16 {
        le16(&self.raw, 0x1A)
    }
    /// `i_flags`.
    pub fn flags(&self) -> u32 {
        le32(&self.raw, 0x20)
    }
    /// `i_generation`.
    pub fn generation(&self) -> u32 {
        le32(&self.raw, 0x64)
    }
    /// `i_size`.
    pub fn size(&self) -> u64 {
        u64::from(le32(&self.raw, 4)) | u64::from(le32(&self.raw, 0x6C)) << 32
    }
    /// The extended-attribute block, 0 when none.
    pub fn file_acl(&self) -> u64 {
        u64::from(le32(&self.raw, 0x68)) | u64::from(le16(&self.raw, 0x76)) << 32
    }
    /// Whether `i_block` holds no block numbers: device nodes, FIFOs,
    /// sockets and fast symlinks (target inside the inode).
    pub fn no_blocks(&self) -> bool {
        match self.mode() & S_IFMT {
            S_IFDIR | S_IFREG => false,
            S_IFLNK => self.size() < 60 && self.flags() & FL_EXTENTS == 0,
            _ => true,
        }
    }
}

/// Reads inode `n`, checking it lies in an initialised part of its group.
pub fn read(img: &[u8], sb: &Super, groups: &[Group], n: u32) -> Result<Ino> {
    if n == 0 || n > sb.inodes {
        return Err(invalid(
            "inode number",
            n.into(),
            0,
            "outside 1..=s_inodes_count",
        ));
    }
    let (g, i) = sb.inode_group(n);
    let grp = &groups[g as usize];
    let at = grp.inode_table * sb.bs + i * sb.inode_size;
    let raw = img[at as usize..(at + sb.inode_size) as usize].to_vec();
    let ino = Ino { n, at, raw };
    if ino.flags() & FL_INLINE_DATA != 0 {
        return Err(Ext4EditError::Unsupported {
            feature: format!("inline data (inode {n})"),
            path: String::new(),
        });
    }
    Ok(ino)
}

/// The blocks an inode owns.
#[derive(Debug, Default)]
pub struct Blocks {
    /// Data runs: logical block, physical block, length.
    pub data: Vec<(u64, u64, u64)>,
    /// Extent index blocks or indirect blocks.
    pub meta: Vec<u64>,
}

impl Blocks {
    /// Every block: data and metadata.
    pub fn all(&self) -> impl Iterator<Item = u64> + '_ {
        self.data
            .iter()
            .flat_map(|&(_, p, n)| p..p + n)
            .chain(self.meta.iter().copied())
    }
}

/// The blocks of `ino` (none for device nodes and fast symlinks).
pub fn blocks(img: &[u8], sb: &Super, ino: &Ino) -> Result<Blocks> {
    let mut out = Blocks::default();
    if ino.no_blocks() {
        return Ok(out);
    }
    let i_block = &ino.raw[0x28..0x64];
    if ino.flags() & FL_EXTENTS != 0 {
        extents(img, sb, ino, i_block, ino.at + 0x28, 5, &mut out)?;
    } else {
        let mut budget = sb.blocks;
        for (k, level) in [(12usize, 1u32), (13, 2), (14, 3)] {
            let b = u64::from(le32(i_block, k * 4));
            let l0 = match level {
                1 => 12,
                2 => 12 + sb.bs / 4,
                _ => 12 + sb.bs / 4 + (sb.bs / 4).pow(2),
            };
            indirect(img, sb, ino, b, level, l0, &mut budget, &mut out)?;
        }
        for k in 0..12 {
            let b = u64::from(le32(i_block, k * 4));
            if b != 0 {
                check_block(sb, ino, b, ino.at + 0x28 + 4 * k as u64)?;
                out.data.push((k as u64, b, 1));
            }
        }
        out.data.sort_unstable();
    }
    Ok(out)
}

fn check_block(sb: &Super, ino: &Ino, b: u64, at: u64) -> Result<()> {
    if b < sb.first_data_block.max(1) || b >= sb.blocks {
        return Err(Ext4EditError::Invalid {
            field: "block number",
            value: b,
            offset: at,
            why: format!("of inode {}: outside the filesystem", ino.n),
        });
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn indirect(
    img: &[u8],
    sb: &Super,
    ino: &Ino,
    b: u64,
    level: u32,
    first: u64,
    budget: &mut u64,
    out: &mut Blocks,
) -> Result<()> {
    if b == 0 {
        return Ok(());
    }
    check_block(sb, ino, b, ino.at + 0x28)?;
    *budget = budget.checked_sub(1).ok_or_else(|| {
        invalid(
            "indirect block",
            b,
            b * sb.bs,
            "block map larger than the filesystem",
        )
    })?;
    out.meta.push(b);
    let per = sb.bs / 4;
    let span = per.pow(level - 1);
    let blk = &img[(b * sb.bs) as usize..((b + 1) * sb.bs) as usize];
    for k in 0..per {
        let p = u64::from(le32(blk, 4 * k as usize));
        if p == 0 {
            continue;
        }
        if level == 1 {
            check_block(sb, ino, p, b * sb.bs + 4 * k)?;
            out.data.push((first + k, p, 1));
        } else {
            indirect(img, sb, ino, p, level - 1, first + k * span, budget, out)?;
        }
    }
    Ok(())
}

fn extents(
    img: &[u8],
    sb: &Super,
    ino: &Ino,
    node: &[u8],
    at: u64,
    depth_left: u16,
    out: &mut Blocks,
) -> Result<()> {
    if le16(node, 0) != EXTENT_MAGIC {
        return Err(Ext4EditError::Invalid {
            field: "eh_magic",
            value: le16(node, 0).into(),
            offset: at,
            why: format!("of inode {}: not 0xF30A", ino.n),
        });
    }
    let entries = usize::from(le16(node, 2));
    let depth = le16(node, 6);
    if 12 + entries * 12 > node.len() || depth >= depth_left {
        return Err(Ext4EditError::Invalid {
            field: "eh_entries",
            value: entries as u64,
            offset: at + 2,
            why: format!("of inode {}: more entries than fit, or too deep", ino.n),
        });
    }
    for e in 0..entries {
        let x = &node[12 + e * 12..24 + e * 12];
        let x_at = at + 12 + 12 * e as u64;
        if depth == 0 {
            let len = u64::from(le16(x, 4));
            let len = if len > 32768 { len - 32768 } else { len };
            let p = u64::from(le32(x, 8)) | u64::from(le16(x, 6)) << 32;
            if len > 0 {
                check_block(sb, ino, p, x_at)?;
                check_block(sb, ino, p + len - 1, x_at)?;
                out.data.push((u64::from(le32(x, 0)), p, len));
            }
        } else {
            let p = u64::from(le32(x, 4)) | u64::from(le16(x, 8)) << 32;
            check_block(sb, ino, p, x_at)?;
            out.meta.push(p);
            let child = &img[(p * sb.bs) as usize..((p + 1) * sb.bs) as usize];
            extents(img, sb, ino, child, p * sb.bs, depth, out)?;
        }
    }
    Ok(())
}

/// Writes `runs` (physical start, length) as a depth-0 extent tree into the
/// inode's `i_block` (at most 4 extents of up to 32768 blocks).
pub fn set_extents(i_block: &mut [u8], runs: &[(u64, u64)]) -> bool {
    let mut exts = Vec::new();
    let mut logical = 0u64;
    for &(p, n) in runs {
        let (mut p, mut n) = (p, n);
        while n > 0 {
            let k = n.min(32768);
            exts.push((logical, p, k));
            logical += k;
            p += k;
            n -= k;
        }
    }
    if exts.len() > 4 {
        return false;
    }
    i_block.fill(0);
    i_block[0..2].copy_from_slice(&EXTENT_MAGIC.to_le_bytes());
    i_block[2..4].copy_from_slice(&(exts.len() as u16).to_le_bytes());
    i_block[4..6].copy_from_slice(&4u16.to_le_bytes());
    for (i, &(l, p, n)) in exts.iter().enumerate() {
        let x = &mut i_block[12 + i * 12..24 + i * 12];
        x[0..4].copy_from_slice(&(l as u32).to_le_bytes());
        x[4..6].copy_from_slice(&(n as u16).to_le_bytes());
        x[6..8].copy_from_slice(&((p >> 32) as u16).to_le_bytes());
        x[8..12].copy_from_slice(&(p as u32).to_le_bytes());
    }
    true
}

/// Writes `runs` as direct block pointers (at most 12 blocks).
pub fn set_direct(i_block: &mut [u8], runs: &[(u64, u64)]) -> bool {
    let blocks: Vec<u64> = runs.iter().flat_map(|&(p, n)| p..p + n).collect();
    if blocks.len() > 12 || blocks.iter().any(|&b| b > u64::from(u32::MAX)) {
        return false;
    }
    i_block.fill(0);
    for (i, b) in blocks.iter().enumerate() {
        i_block[i * 4..i * 4 + 4].copy_from_slice(&(*b as u32).to_le_bytes());
    }
    true
}
