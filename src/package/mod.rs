//! Package writers: what [`crate::rom`] reads, written.
//!
//! - [`fastboot`]: a fastboot package (folder, zip or `.tgz`) with images,
//!   a rebuilt sparse super (optionally split) and install scripts;
//! - [`ota`]: a recovery OTA zip around a new `payload.bin`;
//! - [`images`]: a folder of raw partition images.
//!
//! Every writer takes its images from files already on disk, stages its
//! output beside the destination and moves it into place only when it is
//! complete (an interrupted or failed write leaves nothing under the final
//! name), and fixes entry order, modes and times (zip times through
//! [`crate::util::time::zip_time`]), so equal inputs give equal bytes.
//! The codecs they use (payload, sparse, LP) live in [`crate::format`];
//! `rom/` only reads.

pub mod fastboot;
pub mod images;
pub mod ota;
