//! The superblock and group descriptor fields the editor reads, validated
//! once against the image's size.

use super::{Ext4EditError, Result, invalid, le16, le32};

/// Byte offset of the primary superblock.
pub const SUPER: u64 = 1024;
const MAGIC: u16 = 0xEF53;

/// incompat: directory entries carry a file type (required).
pub const INCOMPAT_FILETYPE: u32 = 0x2;
/// incompat: extent trees.
pub const INCOMPAT_EXTENTS: u32 = 0x40;
/// incompat: 64-bit block numbers and descriptors.
pub const INCOMPAT_64BIT: u32 = 0x80;
/// incompat: the metadata checksum seed is stored in the superblock.
pub const INCOMPAT_CSUM_SEED: u32 = 0x2000;
/// ro_compat: group descriptors carry a CRC16.
pub const RO_GDT_CSUM: u32 = 0x10;
/// ro_compat: every metadata block carries a CRC32C.
pub const RO_METADATA_CSUM: u32 = 0x400;
/// ro_compat: blocks may be shared between inodes (Android's deduplicated
/// read-only images, `e2fsdroid -s`).
pub const RO_SHARED_BLOCKS: u32 = 0x4000;

/// incompat features the editor knows how to keep consistent: filetype,
/// extents, 64bit, mmp, flex_bg, csum_seed, largedir.
const INCOMPAT_EDITABLE: u32 = 0x2 | 0x40 | 0x80 | 0x100 | 0x200 | 0x2000 | 0x4000;
/// ro_compat features likewise: sparse_super, large_file, btree_dir,
/// huge_file, gdt_csum, dir_nlink, extra_isize, metadata_csum, readonly,
/// shared_blocks, verity.
const RO_EDITABLE: u32 =
    0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x40 | 0x400 | 0x1000 | 0x4000 | 0x8000;

/// Names of features the editor refuses, for the message.
const REFUSED: &[(&str, u32, u32)] = &[
    ("compression", 0x1, 0),
    (
        "needs_recovery (replay the journal with e2fsck first)",
        0x4,
        0,
    ),
    ("journal_dev", 0x8, 0),
    ("meta_bg", 0x10, 0),
    ("ea_inode", 0x400, 0),
    ("dirdata", 0x1000, 0),
    ("inline_data", 0x8000, 0),
    ("encrypt", 0x10000, 0),
    ("casefold", 0x20000, 0),
    ("quota (usage would go stale)", 0, 0x100),
    ("bigalloc", 0, 0x200),
    ("project quota", 0, 0x2000),
    (
        "orphan_present (replay the orphan file with e2fsck first)",
        0,
        0x10000,
    ),
];

/// The superblock fields the edit uses.
#[derive(Clone, Debug)]
pub struct Super {
    /// Block size in bytes.
    pub bs: u64,
    /// Blocks in the filesystem.
    pub blocks: u64,
    /// The first block of group 0 (1 for 1 KiB blocks, else 0).
    pub first_data_block: u64,
    /// Blocks per group.
    pub blocks_per_group: u64,
    /// Inodes in the filesystem.
    pub inodes: u32,
    /// Inodes per group.
    pub inodes_per_group: u32,
    /// Bytes per inode record.
    pub inode_size: u64,
    /// Bytes per group descriptor.
    pub desc_size: u64,
    /// Number of groups.
    pub groups: u64,
    /// incompat features.
    pub incompat: u32,
    /// ro_compat features.
    pub ro_compat: u32,
    /// The filesystem UUID (seeds the CRC16 of descriptors).
    pub uuid: [u8; 16],
    /// CRC32C seed of every metadata checksum (`metadata_csum`).
    pub csum_seed: u32,
    /// Byte offset of the group descriptor table.
    pub gdt: u64,
}

impl Super {
    /// Whether `metadata_csum` is on.
    pub fn metadata_csum(&self) -> bool {
        self.ro_compat & RO_METADATA_CSUM != 0
    }

    /// Whether descriptors carry a checksum of either kind.
    pub fn desc_csum(&self) -> bool {
        self.ro_compat & (RO_METADATA_CSUM | RO_GDT_CSUM) != 0
    }

    /// Byte offset of group `g`'s descriptor.
    pub fn desc_at(&self, g: u64) -> u64 {
        self.gdt + g * self.desc_size
    }

    /// The group of block `b` and its bit in the group's bitmap.
    pub fn block_group(&self, b: u64) -> (u64, u64) {
        let r = b - self.first_data_block;
        (r / self.blocks_per_group, r % self.blocks_per_group)
    }

    /// The group of inode `n` and its index in the group.
    pub fn inode_group(&self, n: u32) -> (u64, u64) {
        let r = u64::from(n - 1);
        let ipg = u64::from(self.inodes_per_group);
        (r / ipg, r % ipg)
    }
}

/// Reads and checks the superblock; refuses features the editor cannot keep
/// consistent, naming them.
pub fn parse_super(img: &[u8]) -> Result<Super> {
    let s = SUPER as usize;
    let Some(sb) = img.get(s..s + 1024) else {
        return Err(invalid(
            "image size",
            img.len() as u64,
            0,
            "too small for a superblock",
        ));
    };
    if le16(sb, 0x38) != MAGIC {
        return Err(invalid(
            "s_magic",
            le16(sb, 0x38).into(),
            SUPER + 0x38,
            "not 0xEF53",
        ));
    }
    let log = le32(sb, 0x18);
    if log > 6 {
        return Err(invalid(
            "s_log_block_size",
            log.into(),
            SUPER + 0x18,
            "blocks over 64 KiB",
        ));
    }
    let (incompat, ro_compat) = (le32(sb, 0x60), le32(sb, 0x64));
    check_features(incompat, ro_compat)?;
    let state = le16(sb, 0x3A);
    if state & 1 == 0 || state & 2 != 0 {
        return Err(Ext4EditError::Unsupported {
            feature: format!(
                "s_state {state:#x}: not cleanly unmounted or has errors (run e2fsck first)"
            ),
            path: String::new(),
        });
    }
    let bs = 1024u64 << log;
    let hi = if incompat & INCOMPAT_64BIT != 0 {
        u64::from(le32(sb, 0x150)) << 32
    } else {
        0
    };
    let blocks = u64::from(le32(sb, 0x04)) | hi;
    let first_data_block = u64::from(le32(sb, 0x14));
    let blocks_per_group = u64::from(le32(sb, 0x20));
    let inodes_per_group = le32(sb, 0x28);
    let inodes = le32(sb, 0x00);
    let inode_size = if le32(sb, 0x4C) == 0 {
        128
    } else {
        u64::from(le16(sb, 0x58))
    };
    if !(128..=bs).contains(&inode_size) || !inode_size.is_power_of_two() {
        return Err(invalid(
            "s_inode_size",
            inode_size,
            SUPER + 0x58,
            "not a power of two in 128..=block size",
        ));
    }
    if blocks_per_group == 0 || blocks_per_group > bs * 8 {
        return Err(invalid(
            "s_blocks_per_group",
            blocks_per_group,
            SUPER + 0x20,
            "not in 1..=8 × block size",
        ));
    }
    if inodes_per_group == 0 || u64::from(inodes_per_group) > bs * 8 {
        return Err(invalid(
            "s_inodes_per_group",
            inodes_per_group.into(),
            SUPER + 0x28,
            "not in 1..=8 × block size",
        ));
    }
    if blocks <= first_data_block || blocks.checked_mul(bs).is_none_or(|e| e > img.len() as u64) {
        return Err(invalid(
            "s_blocks_count",
            blocks,
            SUPER + 0x04,
            "more blocks than the image holds",
        ));
    }
    let desc_size = if incompat & INCOMPAT_64BIT != 0 {
        u64::from(le16(sb, 0xFE))
    } else {
        32
    };
    if !(32..=1024).contains(&desc_size) || !desc_size.is_power_of_two() {
        return Err(invalid(
            "s_desc_size",
            desc_size,
            SUPER + 0xFE,
            "not a power of two in 32..=1024",
        ));
    }
    let groups = (blocks - first_data_block).div_ceil(blocks_per_group);
    if groups * u64::from(inodes_per_group) < u64::from(inodes) {
        return Err(invalid(
            "s_inodes_count",
            inodes.into(),
            SUPER,
            "more than the groups hold",
        ));
    }
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&sb[0x68..0x78]);
    let csum_seed = if incompat & INCOMPAT_CSUM_SEED != 0 {
        le32(sb, 0x270)
    } else {
        crate::fs::edit::crc32c_raw(!0, &uuid)
    };
    let gdt = (first_data_block + 1) * bs;
    if gdt + groups * desc_size > blocks * bs {
        return Err(invalid(
            "s_blocks_count",
            blocks,
            SUPER + 0x04,
            "group descriptors run past the filesystem",
        ));
    }
    Ok(Super {
        bs,
        blocks,
        first_data_block,
        blocks_per_group,
        inodes,
        inodes_per_group,
        inode_size,
        desc_size,
        groups,
        incompat,
        ro_compat,
        uuid,
        csum_seed,
        gdt,
    })
}

fn check_features(incompat: u32, ro_compat: u32) -> Result<()> {
    for &(name, i, r) in REFUSED {
        if incompat & i != 0 || ro_compat & r != 0 {
            return Err(Ext4EditError::Unsupported {
                feature: format!("the {name} feature"),
                path: String::new(),
            });
        }
    }
    if incompat & INCOMPAT_FILETYPE == 0 {
        return Err(Ext4EditError::Unsupported {
            feature: "directories without file types (no filetype feature)".into(),
            path: String::new(),
        });
    }
    let unknown_i = incompat & !INCOMPAT_EDITABLE;
    let unknown_r = ro_compat & !RO_EDITABLE;
    if unknown_i != 0 || unknown_r != 0 {
        return Err(Ext4EditError::Unsupported {
            feature: format!("unknown features incompat {unknown_i:#x} ro_compat {unknown_r:#x}"),
            path: String::new(),
        });
    }
    Ok(())
}

/// Group descriptor fields the editor reads (the counters are read and
/// written through the output when they change).
#[derive(Clone, Copy, Debug)]
pub struct Group {
    /// Block of the block bitmap.
    pub block_bitmap: u64,
    /// Block of the inode bitmap.
    pub inode_bitmap: u64,
    /// First block of the inode table.
    pub inode_table: u64,
    /// `bg_flags`.
    pub flags: u16,
    /// Inodes at the end of the group never used (`bg_itable_unused`).
    pub itable_unused: u32,
}

/// `bg_flags`: the inode table and bitmap are not initialised.
pub const BG_INODE_UNINIT: u16 = 0x1;
/// `bg_flags`: the block bitmap is not initialised.
pub const BG_BLOCK_UNINIT: u16 = 0x2;

/// Reads every group descriptor and checks its block numbers.
pub fn parse_groups(img: &[u8], sb: &Super) -> Result<Vec<Group>> {
    let wide = sb.desc_size >= 64;
    let mut out = Vec::with_capacity(sb.groups as usize);
    let itable_blocks = (u64::from(sb.inodes_per_group) * sb.inode_size).div_ceil(sb.bs);
    for g in 0..sb.groups {
        let at = sb.desc_at(g);
        let d = &img[at as usize..(at + sb.desc_size) as usize];
        let hi = |o: usize| if wide { u64::from(le32(d, o)) << 32 } else { 0 };
        let hi16 = |o: usize| if wide { u32::from(le16(d, o)) << 16 } else { 0 };
        let grp = Group {
            block_bitmap: u64::from(le32(d, 0x00)) | hi(0x20),
            inode_bitmap: u64::from(le32(d, 0x04)) | hi(0x24),
            inode_table: u64::from(le32(d, 0x08)) | hi(0x28),
            flags: le16(d, 0x12),
            itable_unused: u32::from(le16(d, 0x1C)) | hi16(0x32),
        };
        for (field, v, o, n) in [
            ("bg_block_bitmap", grp.block_bitmap, 0x00, 1),
            ("bg_inode_bitmap", grp.inode_bitmap, 0x04, 1),
            ("bg_inode_table", grp.inode_table, 0x08, itable_blocks),
        ] {
            if v == 0 || v.checked_add(n).is_none_or(|e| e > sb.blocks) {
                return Err(invalid(field, v, at + o, "outside the filesystem"));
            }
        }
        out.push(grp);
    }
    Ok(out)
}
