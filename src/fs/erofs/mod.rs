//! EROFS: the read-only filesystem of HyperOS system partitions.

pub mod compress;
pub mod edit;
pub mod layout;
pub mod reader;
pub mod writer;

use std::io;
use std::path::Path;

use layout::{
    FEATURE_INCOMPAT_COMPR_CFGS, FEATURE_INCOMPAT_ZERO_PADDING, MAGIC, SB_FEATURE_INCOMPAT,
    SUPER_OFFSET,
};

/// The superblock's `feature_incompat` flags, from an image's first bytes
/// (at least 1108); `None` when they hold no EROFS superblock.
pub fn incompat_features(head: &[u8]) -> Option<u32> {
    let sb = head.get(SUPER_OFFSET as usize..)?;
    let le32 = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(sb.get(at..at + 4)?.try_into().ok()?))
    };
    (le32(0)? == MAGIC).then_some(())?;
    le32(SB_FEATURE_INCOMPAT)
}

/// Whether the EROFS image at `path` stores compressed data: mkfs.erofs
/// (and romkit's writer) set ZERO_PADDING or COMPR_CFGS in the superblock of
/// a compressed image and neither in an uncompressed one. `false` for a file
/// that is not EROFS.
pub fn is_compressed(path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut head = vec![0u8; SUPER_OFFSET as usize + SB_FEATURE_INCOMPAT + 4];
    let f = std::fs::File::open(path)?;
    match f.read_exact_at(&mut head, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let compressed = FEATURE_INCOMPAT_ZERO_PADDING | FEATURE_INCOMPAT_COMPR_CFGS;
    Ok(incompat_features(&head).is_some_and(|f| f & compressed != 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::tree::{FileData, Meta, Tree};

    #[test]
    fn compression_is_read_from_the_superblock() {
        let dir = tempfile::tempdir().unwrap();
        let meta = |perm| Meta {
            perm,
            ..Default::default()
        };
        for (name, compression) in [("plain", None), ("lz4hc", Some(writer::Lz4hc::default()))] {
            let mut t = Tree::new(meta(0o755));
            let data = FileData::Bytes(std::sync::Arc::new(vec![7u8; 20_000]));
            t.add_file("a", data, meta(0o644)).unwrap();
            let path = dir.path().join(name);
            let opts = writer::ErofsOptions {
                compression,
                ..Default::default()
            };
            writer::write(&t, &opts, &mut std::fs::File::create(&path).unwrap()).unwrap();
            assert_eq!(
                is_compressed(&path).unwrap(),
                compression.is_some(),
                "{name}"
            );
        }
        let other = dir.path().join("zeros");
        std::fs::write(&other, vec![0u8; 8192]).unwrap();
        assert!(!is_compressed(&other).unwrap());
        assert_eq!(incompat_features(&[0u8; 10]), None);
    }
}
