//! EROFS on-disk constants and structures (the subset romkit writes).
//!
//! All integers are little-endian. Offsets in the doc comments are relative to
//! the start of the structure.

/// Superblock magic at byte 1024.
pub const MAGIC: u32 = 0xE0F5_E1E2;
/// Byte offset of the superblock.
pub const SUPER_OFFSET: u64 = 1024;
/// Size of the superblock structure.
pub const SUPER_SIZE: usize = 128;
/// Inode slots are 32 bytes: `nid = (inode offset - meta_blkaddr * block) / 32`.
pub const ISLOT: u64 = 32;
/// Size of a compact inode.
pub const COMPACT_INODE: usize = 32;
/// Size of an extended inode.
pub const EXTENDED_INODE: usize = 64;
/// Size of a directory entry header.
pub const DIRENT_SIZE: usize = 12;
/// Size of the in-inode xattr header.
pub const XATTR_IBODY_HEADER: usize = 12;
/// Size of an xattr entry header (before name and value).
pub const XATTR_ENTRY_HEADER: usize = 4;

/// `i_format` bit 0: extended inode.
pub const I_VERSION_EXTENDED: u16 = 1;
/// Data layout: plain blocks from `raw_blkaddr`.
pub const LAYOUT_FLAT_PLAIN: u16 = 0;
/// Data layout: compressed, full (legacy) lcluster indexes.
pub const LAYOUT_COMPRESSED_FULL: u16 = 1;
/// Data layout: plain blocks plus a tail stored right after the inode.
pub const LAYOUT_FLAT_INLINE: u16 = 2;
/// Data layout: compressed, compact lcluster indexes.
pub const LAYOUT_COMPRESSED_COMPACT: u16 = 3;
/// Data layout: chunk-based.
pub const LAYOUT_CHUNK_BASED: u16 = 4;

/// Incompat feature: LZ4 data is zero-padded at the start of its pcluster.
pub const FEATURE_INCOMPAT_ZERO_PADDING: u32 = 0x1;
/// Incompat feature: physical clusters of more than one block.
pub const FEATURE_INCOMPAT_BIG_PCLUSTER: u32 = 0x2;
/// Incompat feature: per-algorithm compression configurations follow the
/// superblock (the same bit as [`FEATURE_INCOMPAT_BIG_PCLUSTER`]).
pub const FEATURE_INCOMPAT_COMPR_CFGS: u32 = 0x2;
/// Offset of `feature_incompat` in the superblock.
pub const SB_FEATURE_INCOMPAT: usize = 0x50;

/// Directory entry file types.
pub mod ft {
    /// Regular file.
    pub const REG: u8 = 1;
    /// Directory.
    pub const DIR: u8 = 2;
    /// Character device.
    pub const CHR: u8 = 3;
    /// Block device.
    pub const BLK: u8 = 4;
    /// FIFO.
    pub const FIFO: u8 = 5;
    /// Socket.
    pub const SOCK: u8 = 6;
    /// Symbolic link.
    pub const SYMLINK: u8 = 7;
}

/// xattr name prefixes by index, as EROFS (and ext4) number them.
pub const XATTR_PREFIXES: [(u8, &[u8]); 5] = [
    (1, b"user."),
    (2, b"system.posix_acl_access"),
    (3, b"system.posix_acl_default"),
    (4, b"trusted."),
    (6, b"security."),
];

/// Splits a full xattr name into (index, suffix); `None` for a namespace
/// EROFS cannot store without long-prefix support.
pub fn split_xattr_name(name: &[u8]) -> Option<(u8, &[u8])> {
    XATTR_PREFIXES
        .iter()
        .find(|(_, p)| name.starts_with(p))
        .map(|(i, p)| (*i, &name[p.len()..]))
}

/// Joins an (index, suffix) pair back into a full name.
pub fn join_xattr_name(index: u8, suffix: &[u8]) -> Option<Vec<u8>> {
    XATTR_PREFIXES
        .iter()
        .find(|(i, _)| *i == index)
        .map(|(_, p)| [p, suffix].concat())
}

/// Bytes an xattr entry takes, padded to 4.
pub fn xattr_entry_size(suffix_len: usize, value_len: usize) -> usize {
    (XATTR_ENTRY_HEADER + suffix_len + value_len).div_ceil(4) * 4
}

/// The device number encoding EROFS uses in `i_u` (Linux `new_encode_dev`).
pub fn encode_dev(rdev: u64) -> u32 {
    let major = ((rdev >> 8) & 0xfff) as u32 | (((rdev >> 32) & !0xfff) as u32);
    let minor = (rdev & 0xff) as u32 | (((rdev >> 12) & !0xff) as u32);
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// Inverse of [`encode_dev`], giving a glibc-style `dev_t`.
pub fn decode_dev(v: u32) -> u64 {
    let major = u64::from((v & 0xfff00) >> 8);
    let minor = u64::from((v & 0xff) | ((v >> 12) & 0xfff00));
    ((major & 0xfff) << 8) | ((major & !0xfff) << 32) | (minor & 0xff) | ((minor & !0xff) << 12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_round_trip() {
        for (maj, min) in [(1u64, 3u64), (10, 200), (259, 70000), (0, 0)] {
            let dev = ((maj & 0xfff) << 8)
                | ((maj & !0xfff) << 32)
                | (min & 0xff)
                | ((min & !0xff) << 12);
            assert_eq!(decode_dev(encode_dev(dev)), dev, "{maj}:{min}");
        }
        // /dev/null is 1:3 -> 0x103 in the new encoding.
        assert_eq!(encode_dev(0x103), 0x103);
    }

    #[test]
    fn xattr_names() {
        assert_eq!(
            split_xattr_name(b"security.selinux"),
            Some((6, &b"selinux"[..]))
        );
        assert_eq!(split_xattr_name(b"user.x"), Some((1, &b"x"[..])));
        assert_eq!(split_xattr_name(b"system.other"), None);
        assert_eq!(
            join_xattr_name(6, b"capability").unwrap(),
            b"security.capability"
        );
        assert_eq!(xattr_entry_size(7, 26), 40);
    }
}
