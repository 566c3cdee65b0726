//! What a file or image holds, from its first bytes. The one table of magic
//! numbers: package kinds, filesystems and the images found beside them.

/// EROFS superblock magic, at byte 1024.
pub const EROFS_MAGIC: u32 = 0xE0F5_E1E2;
/// ext2/3/4 superblock magic, at byte 1080.
pub const EXT4_MAGIC: u16 = 0xEF53;
/// F2FS superblock magic, at byte 1024.
pub const F2FS_MAGIC: u32 = 0xF2F5_2010;
/// Android sparse image header magic, at byte 0.
pub const SPARSE_MAGIC: u32 = 0xED26_FF3A;
/// LP (super) geometry magic, at byte 4096.
pub const LP_GEOMETRY_MAGIC: u32 = 0x616c_4467;
/// Device tree blob container (dtbo) magic, big-endian at byte 0.
pub const DTBO_MAGIC: u32 = 0xD7B7_AB1E;

/// How many leading bytes [`Magic::of`] needs to tell every kind apart.
pub const HEAD_LEN: usize = 4100;

/// What the first bytes of a file are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Magic {
    /// EROFS filesystem.
    Erofs,
    /// ext2/3/4 filesystem.
    Ext4,
    /// F2FS filesystem.
    F2fs,
    /// Android sparse image.
    Sparse,
    /// LP metadata: a super image.
    Super,
    /// Android boot image.
    Boot,
    /// Android vendor boot image.
    VendorBoot,
    /// AVB vbmeta image.
    Vbmeta,
    /// dtbo image.
    Dtbo,
    /// update_engine payload (`CrAU`).
    Payload,
    /// Zip archive (a local header or an empty archive's end record).
    Zip,
    /// gzip stream (a `.tgz` package).
    Gzip,
    /// All zeroes (at least 8 bytes).
    Empty,
}

impl Magic {
    /// Identifies `head` (the first [`HEAD_LEN`] bytes of a file, or all of
    /// a smaller one). Containers are tried before filesystems: a sparse or
    /// super image may hold anything further in.
    pub fn of(head: &[u8]) -> Option<Magic> {
        let at = |o: usize, m: &[u8]| head.get(o..o + m.len()) == Some(m);
        Some(if at(0, b"PK\x03\x04") || at(0, b"PK\x05\x06") {
            Magic::Zip
        } else if at(0, b"CrAU") {
            Magic::Payload
        } else if at(0, &[0x1f, 0x8b]) {
            Magic::Gzip
        } else if at(0, &SPARSE_MAGIC.to_le_bytes()) {
            Magic::Sparse
        } else if at(4096, &LP_GEOMETRY_MAGIC.to_le_bytes()) {
            Magic::Super
        } else if at(1024, &EROFS_MAGIC.to_le_bytes()) {
            Magic::Erofs
        } else if at(1080, &EXT4_MAGIC.to_le_bytes()) {
            Magic::Ext4
        } else if at(1024, &F2FS_MAGIC.to_le_bytes()) {
            Magic::F2fs
        } else if at(0, b"ANDROID!") {
            Magic::Boot
        } else if at(0, b"VNDRBOOT") {
            Magic::VendorBoot
        } else if at(0, b"AVB0") {
            Magic::Vbmeta
        } else if at(0, &DTBO_MAGIC.to_be_bytes()) {
            Magic::Dtbo
        } else if head.len() >= 8 && head.iter().all(|&b| b == 0) {
            Magic::Empty
        } else {
            return None;
        })
    }

    /// The name reports use for what an image holds (`erofs`,
    /// `android-sparse`, `vbmeta`, …).
    pub fn name(self) -> &'static str {
        match self {
            Magic::Erofs => "erofs",
            Magic::Ext4 => "ext4",
            Magic::F2fs => "f2fs",
            Magic::Sparse => "android-sparse",
            Magic::Super => "super",
            Magic::Boot => "android-boot",
            Magic::VendorBoot => "vendor-boot",
            Magic::Vbmeta => "vbmeta",
            Magic::Dtbo => "dtbo",
            Magic::Payload => "payload",
            Magic::Zip => "zip",
            Magic::Gzip => "gzip",
            Magic::Empty => "empty",
        }
    }
}

/// Reads the first [`HEAD_LEN`] bytes of `path` (fewer for a smaller file).
pub fn read_head(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(HEAD_LEN);
    std::fs::File::open(path)?
        .take(HEAD_LEN as u64)
        .read_to_end(&mut head)?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(at: usize, bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![0x55u8; HEAD_LEN];
        v[at..at + bytes.len()].copy_from_slice(bytes);
        v
    }

    #[test]
    fn kinds() {
        assert_eq!(
            Magic::of(&with(1024, &[0xE2, 0xE1, 0xF5, 0xE0])),
            Some(Magic::Erofs)
        );
        assert_eq!(Magic::of(&with(1080, &[0x53, 0xEF])), Some(Magic::Ext4));
        assert_eq!(
            Magic::of(&with(0, &[0x3A, 0xFF, 0x26, 0xED])),
            Some(Magic::Sparse)
        );
        assert_eq!(Magic::of(&with(4096, b"gDla")), Some(Magic::Super));
        assert_eq!(Magic::of(&with(0, b"CrAU")), Some(Magic::Payload));
        assert_eq!(Magic::of(&with(0, b"AVB0")), Some(Magic::Vbmeta));
        assert_eq!(Magic::of(&[0u8; 16]), Some(Magic::Empty));
        assert_eq!(Magic::of(&with(0, b"nothing")), None);
        assert_eq!(Magic::of(&[]), None);
    }
}
