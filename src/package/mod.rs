//! Package writers: the code that turns decoded images into files on disk
//! (sparse images, and in time the fastboot, OTA and image-folder packages).
//!
//! The codecs in [`crate::format`] write into handles they are given; the
//! writers here choose the paths, create the files atomically and refuse to
//! overwrite without `force`.

pub mod sparse_out;
