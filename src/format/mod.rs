//! On-disk formats, one module each, reader and writer side by side.

pub mod avb;
pub mod image;
pub mod lp;
pub mod payload;
pub mod sdat;
pub mod source;
pub mod sparse;
