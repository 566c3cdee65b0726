//! EROFS: the read-only filesystem of HyperOS system partitions.

pub mod compress;
pub mod edit;
pub mod layout;
pub mod reader;
pub mod writer;
