//! Filesystems: the file-tree model and the filesystems read into it and
//! written from it.

pub mod edit;
pub mod erofs;
pub mod ext4;
pub mod extract;
pub mod sidecar;
pub mod tree;

use crate::util::magic::Magic;
use std::path::Path;

/// Why a filesystem image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening, mapping or reading the file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The image is malformed or uses a feature romkit does not read.
    #[error("invalid {0} image: {1}")]
    Invalid(&'static str, String),
}

/// What a filesystem image is, by its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsKind {
    /// EROFS (magic 0xE0F5E1E2 at byte 1024).
    Erofs,
    /// ext2/3/4 (magic 0xEF53 at byte 1080).
    Ext4,
}

impl FsKind {
    /// `erofs` or `ext4`.
    pub fn name(self) -> &'static str {
        match self {
            FsKind::Erofs => "erofs",
            FsKind::Ext4 => "ext4",
        }
    }

    /// Identifies the filesystem from an image's first bytes (2 KiB suffice).
    pub fn from_head(head: &[u8]) -> Option<FsKind> {
        match Magic::of(head) {
            Some(Magic::Erofs) => Some(FsKind::Erofs),
            Some(Magic::Ext4) => Some(FsKind::Ext4),
            _ => None,
        }
    }
}

/// Identifies the filesystem at the start of `path`.
pub fn sniff(path: &Path) -> std::io::Result<Option<FsKind>> {
    Ok(FsKind::from_head(&crate::util::magic::read_head(path)?))
}

/// Reads any filesystem image romkit understands into a tree. `Err(None)`
/// when the image holds no such filesystem; `Err(Some(message))` when it is
/// one but cannot be read.
pub fn read_tree(path: &Path) -> Result<tree::Tree, Option<String>> {
    match sniff(path).map_err(|e| Some(e.to_string()))? {
        Some(FsKind::Erofs) => erofs::reader::ErofsImage::open(path)
            .and_then(|i| i.tree())
            .map_err(|e| Some(e.to_string())),
        Some(FsKind::Ext4) => ext4::Ext4Image::open(path)
            .and_then(|i| i.tree())
            .map_err(|e| Some(e.to_string())),
        None => Err(None),
    }
}
