//! Package writers: what [`crate::rom`] reads, written.
//!
//! - [`fastboot`]: a fastboot package (folder, zip or `.tgz`) with images,
//!   a rebuilt sparse super (optionally split) and install scripts;
//! - [`ota`]: a recovery OTA zip around a new `payload.bin`;
//! - [`images`]: a folder of raw partition images;
//! - [`super_image`] and [`sparse_out`]: a super image and a sparse image
//!   written to files.
//!
//! The codecs in [`crate::format`] write into handles they are given; the
//! writers here choose the paths, take their images from files already on
//! disk, create their outputs atomically (staged beside the destination and
//! moved into place only when complete, so an interrupted or failed write
//! leaves nothing under the final name) and refuse to overwrite without
//! `force`. Entry order, modes and times are fixed (zip times through
//! [`crate::util::time::zip_time`]), so equal inputs give equal bytes.
//! `rom/` only reads.

pub mod fastboot;
mod fastboot_out;
pub mod flash_script;
pub mod images;
pub mod ota;
pub mod sparse_out;
pub mod super_image;

use crate::format::payload::proto::DynamicPartitionMetadata;

/// A dynamic partition group: (name, maximum size, partitions).
pub type Group = (String, u64, Vec<String>);

/// The groups a payload's dynamic partition metadata declares (a group
/// without a name is `main`, one without a size has 0) and whether it
/// enables Virtual A/B snapshots.
fn payload_groups(d: &DynamicPartitionMetadata) -> (Vec<Group>, bool) {
    let groups = d
        .groups
        .iter()
        .map(|g| {
            (
                g.name.clone().unwrap_or_else(|| "main".into()),
                g.size.unwrap_or(0),
                g.partition_names.clone(),
            )
        })
        .collect();
    (groups, d.snapshot_enabled.unwrap_or(false))
}
