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
