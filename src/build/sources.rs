//! Where each output image comes from, decided once after the touched
//! partitions are written: decoded from the input unchanged, edited in
//! place, rebuilt from an edited tree, patched in place (vbmeta), or left
//! encoded in the input's payload and copied operation by operation into an
//! OTA.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::decode::{Selection, image_path, is_app_partition};
use crate::error::{Error, Result};
use crate::format::avb::{self, AvbError};
use crate::fs::FsKind;
use crate::fs::edit::EditStats;
use crate::manifest::PartitionStatus;

/// How a touched partition was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Edited in place; what changed.
    Edited(EditStats),
    /// Rebuilt from its tree.
    Rebuilt,
}

/// Where an output partition image comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSource {
    /// Decoded from the input and left as it was.
    Decoded(PathBuf),
    /// The input's image edited in place: bytes outside `stats.changed`
    /// are the source's.
    Edited {
        /// The edited image.
        path: PathBuf,
        /// What the edit changed.
        stats: EditStats,
    },
    /// Written again from a tree the profile edited.
    Rebuilt(PathBuf),
    /// Decoded, then its vbmeta header patched to disable verification.
    Patched(PathBuf),
    /// Never decoded: an OTA output copies its payload operations; the
    /// image is the one the payload's `new_partition_info` describes.
    Copied {
        /// Image size.
        size: u64,
        /// SHA-256 of the image.
        sha256: [u8; 32],
    },
}

impl ImageSource {
    /// What the manifest and the report call it.
    pub fn status(&self) -> PartitionStatus {
        match self {
            ImageSource::Decoded(_) | ImageSource::Copied { .. } => PartitionStatus::Passthrough,
            ImageSource::Edited { .. } => PartitionStatus::Edited,
            ImageSource::Rebuilt(_) => PartitionStatus::Rebuilt,
            ImageSource::Patched(_) => PartitionStatus::Patched,
        }
    }

    /// The image file in the work folder, unless the image is left encoded.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ImageSource::Decoded(p)
            | ImageSource::Edited { path: p, .. }
            | ImageSource::Rebuilt(p)
            | ImageSource::Patched(p) => Some(p),
            ImageSource::Copied { .. } => None,
        }
    }

    /// Blocks that differ from the source, for an edited image.
    pub fn changed_blocks(&self) -> Option<u64> {
        match self {
            ImageSource::Edited { stats, .. } => Some(stats.total_changed()),
            _ => None,
        }
    }

    /// Whether the image is the input's own (an OTA may copy it from the
    /// input's payload).
    pub fn is_unchanged(&self) -> bool {
        matches!(self, ImageSource::Decoded(_) | ImageSource::Copied { .. })
    }
}

/// Adds the filesystems of the partitions outside the app set: sniffed from
/// the decoded image, or from the first bytes of a partition left encoded.
pub(super) fn sniff_others(
    sel: &Selection<'_>,
    input: &Path,
    work: &Path,
    filesystems: &mut BTreeMap<String, FsKind>,
) -> Result<()> {
    for p in sel.parts.iter().filter(|p| !is_app_partition(&p.name)) {
        let kind = match (sel.encoded.contains_key(&p.name), sel.copy_from) {
            (true, Some(pl)) => {
                let Some(part) = pl.partition(&p.name) else {
                    continue;
                };
                let head = pl
                    .partition_head(part, 2048)
                    .map_err(|e| Error::payload(input, e))?;
                FsKind::from_head(&head)
            }
            _ => {
                let path = image_path(work, &p.name);
                crate::fs::sniff(&path).map_err(|e| Error::io(&path, e))?
            }
        };
        if let Some(k) = kind {
            filesystems.insert(p.name.clone(), k);
        }
    }
    Ok(())
}

/// Every output carries vbmeta with verification disabled in its flags, so
/// that any way of flashing it (xiaomi.eu's scripts flash vbmeta without
/// `--disable-verity --disable-verification`, recoveries apply OTAs) boots
/// the rebuilt partitions. Returns the partitions patched.
pub(super) fn patch_vbmeta(sel: &Selection<'_>, work: &Path) -> Result<BTreeSet<String>> {
    let mut patched = BTreeSet::new();
    for p in sel.parts.iter().filter(|p| p.name.starts_with("vbmeta")) {
        if disable_avb(&image_path(work, &p.name))? {
            patched.insert(p.name.clone());
        }
    }
    Ok(patched)
}

/// The source of every output image, in the input's partition order.
pub(super) fn sources(
    sel: &Selection<'_>,
    changes: &BTreeMap<String, Change>,
    patched: &BTreeSet<String>,
    work: &Path,
) -> Vec<(String, ImageSource)> {
    sel.parts
        .iter()
        .map(|p| {
            let path = image_path(work, &p.name);
            let source = if let Some(c) = changes.get(&p.name) {
                match c {
                    Change::Edited(stats) => ImageSource::Edited {
                        path,
                        stats: stats.clone(),
                    },
                    Change::Rebuilt => ImageSource::Rebuilt(path),
                }
            } else if patched.contains(&p.name) {
                ImageSource::Patched(path)
            } else if let Some(e) = sel.encoded.get(&p.name) {
                ImageSource::Copied {
                    size: e.size,
                    sha256: e.sha256,
                }
            } else {
                ImageSource::Decoded(path)
            };
            (p.name.clone(), source)
        })
        .collect()
}

/// Sets the verification-disabled flags of the vbmeta image at `img`;
/// `false` when it is not a vbmeta image.
fn disable_avb(img: &Path) -> Result<bool> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(img)
        .map_err(|e| Error::io(img, e))?;
    match avb::disable_verification(&mut f) {
        Ok(_) => Ok(true),
        Err(AvbError::BadMagic { .. } | AvbError::Truncated { .. }) => Ok(false),
        Err(AvbError::Io(e)) => Err(Error::io(img, e)),
        Err(e) => Err(Error::invalid(img, e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_are_the_serialized_ones() {
        for s in [
            ImageSource::Decoded(PathBuf::new()),
            ImageSource::Edited {
                path: PathBuf::new(),
                stats: EditStats::default(),
            },
            ImageSource::Rebuilt(PathBuf::new()),
            ImageSource::Patched(PathBuf::new()),
            ImageSource::Copied {
                size: 0,
                sha256: [0; 32],
            },
        ] {
            let status = s.status();
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.name()));
        }
    }
}
