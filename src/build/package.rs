//! Stage 6, package: the images in the work folder laid out as the output
//! format asks, by the package writers in [`crate::package`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::open::Source;
use super::sources::ImageSource;
use super::{BuildOptions, OutputFormat};
use crate::error::{Error, Result};
use crate::package::fastboot::{FastbootSummary, FromRom, PackageFormat};
use crate::package::ota::EditedImage;

/// What the package writers report back.
#[derive(Default)]
pub(super) struct Packaged {
    /// The fastboot package's scripts, checks and what was left out.
    pub fastboot: Option<FastbootSummary>,
    /// For an OTA, what became of the source payload's operations in each
    /// edited partition.
    pub ota_reuse: Vec<OtaReuse>,
    /// The follower taking the output file's SHA-256, when its writer
    /// hashed it (it may still be reading).
    pub hash: Option<crate::util::hash::Follower>,
    /// Image SHA-256s the writer took (for an OTA every partition's, as its
    /// payload declares it), among them those the record stage left.
    pub image_hashes: Vec<(String, [u8; 32])>,
    /// Image CRC-32s the writer took as it read the images (a fastboot
    /// package's super partitions), for the read-back check.
    pub image_crcs: Vec<(String, u32)>,
}

/// What became of the source payload's operations in one edited partition
/// of an OTA.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OtaReuse {
    /// The partition.
    pub partition: String,
    /// Operations copied, made ZERO, encoded again (and split), bytes
    /// encoded, the xz preset used.
    #[serde(flatten)]
    pub counts: crate::format::payload::reuse::ReuseCounts,
}

/// Writes the output package from the images in `work`. `copy_payload`
/// says whether the input has a full payload an OTA can copy unchanged
/// partitions, and the unchanged operations of edited ones, from.
pub(super) fn package(
    source: &Source,
    images: &[(String, ImageSource)],
    partitions: &[super::BuiltPartition],
    copy_payload: bool,
    work: &Path,
    output: &Path,
    opts: &BuildOptions,
) -> Result<Packaged> {
    match opts.format {
        OutputFormat::Fastboot => {
            // The record stage left these images' hashes to the writer.
            let later = partitions
                .iter()
                .filter(|p| p.sha256.is_empty())
                .map(|p| p.name.clone())
                .collect();
            fastboot(source, work, output, later, opts).map(|(mut f, hash)| Packaged {
                image_hashes: std::mem::take(&mut f.image_hashes),
                image_crcs: std::mem::take(&mut f.image_crcs),
                fastboot: Some(f),
                hash,
                ..Packaged::default()
            })
        }
        OutputFormat::Ota => {
            let copy: BTreeSet<String> = images
                .iter()
                .filter(|(_, s)| copy_payload && s.is_unchanged())
                .map(|(n, _)| n.clone())
                .collect();
            // The record stage hashed the edited images, unless it left
            // them to the payload writer (`None` here).
            let sha256 = |name: &str| {
                let p = partitions.iter().find(|p| p.name == name)?;
                crate::util::unhex32(&p.sha256)
            };
            let edited: BTreeMap<String, EditedImage> = images
                .iter()
                .filter(|_| copy_payload)
                .filter_map(|(n, s)| match s {
                    ImageSource::Edited { stats, .. } => Some((
                        n.clone(),
                        EditedImage {
                            stats: stats.clone(),
                            sha256: sha256(n),
                        },
                    )),
                    _ => None,
                })
                .collect();
            let rom = &source.rom;
            crate::package::ota::from_rom(rom, work, &copy, &edited, output, opts.jobs, opts.force)
                .map(|(s, hash)| Packaged {
                    ota_reuse: s
                        .reused
                        .into_iter()
                        .map(|(partition, counts)| OtaReuse { partition, counts })
                        .collect(),
                    hash: Some(hash),
                    image_hashes: s.image_hashes,
                    ..Packaged::default()
                })
        }
        OutputFormat::Images => {
            let names = images.iter().map(|(n, _)| n.as_str());
            crate::package::images::write_folder(work, names, output, opts.force)
                .map(|_| Packaged::default())
        }
    }
}

/// A fastboot package: `.tgz` by the output's extension, a zip otherwise;
/// vbmeta (its image already patched) is also flashed with verification
/// disabled.
fn fastboot(
    source: &Source,
    work: &Path,
    output: &Path,
    hash: BTreeSet<String>,
    opts: &BuildOptions,
) -> Result<crate::package::fastboot::Written> {
    let format = match output.extension().and_then(|e| e.to_str()) {
        Some("tgz") | Some("gz") => PackageFormat::Tgz,
        _ => PackageFormat::Zip,
    };
    let device = source
        .device
        .clone()
        .ok_or_else(|| Error::invalid(&source.input, "the package does not name its device"))?;
    let from = FromRom {
        device,
        split: opts.split,
        super_size: None,
        disable_verification: true,
        style: opts.style,
        hash,
    };
    crate::package::fastboot::from_rom(
        &source.rom,
        work,
        &from,
        output,
        format,
        opts.jobs,
        opts.force,
    )
}
