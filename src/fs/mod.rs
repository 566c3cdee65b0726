//! Filesystems: the file-tree model and the filesystems read into it and
//! written from it.

pub mod erofs;
pub mod tree;
