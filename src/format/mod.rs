//! On-disk formats, one module each, reader and writer side by side.

pub mod avb;
pub mod crclist;
pub mod image;
pub mod input_pages;
pub mod lp;
pub mod md5sum;
pub mod patch;
pub mod payload;
pub mod sdat;
pub mod source;
pub mod sparse;
pub mod verity;
pub mod zip_write;

/// Whether `name` is usable as a partition and file name: 1-64 characters of
/// `[A-Za-z0-9_.-]`, not `.` or `..`. Payload and LP metadata name partitions
/// the same way, and every extracted image is written under this name.
pub fn is_safe_partition_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}
