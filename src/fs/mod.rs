//! Filesystems: the file-tree model and the filesystems read into it and
//! written from it.

pub mod erofs;
pub mod extract;
pub mod sidecar;
pub mod tree;

use std::io::Read;
use std::path::Path;

/// What a filesystem image is, by its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsKind {
    /// EROFS (magic 0xE0F5E1E2 at byte 1024).
    Erofs,
    /// ext2/3/4 (magic 0xEF53 at byte 1080).
    Ext4,
}

/// Identifies the filesystem in the first 2 KiB of `path`.
pub fn sniff(path: &Path) -> std::io::Result<Option<FsKind>> {
    let mut head = vec![0u8; 2048];
    let mut f = std::fs::File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    head.truncate(n);
    Ok(match crate::format::detect_content(&head) {
        Some("erofs") => Some(FsKind::Erofs),
        Some("ext4") => Some(FsKind::Ext4),
        _ => None,
    })
}
