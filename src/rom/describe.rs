//! `inspect` as data: what a package is, in one schema for every kind.
//!
//! Every field is present for every kind; what a kind does not have is
//! `null` (`payload` and `super`) or empty (`images`, `flash_scripts`,
//! `groups`), and partitions carry the payload's operation counts and the
//! image package's origin side by side. The JSON of `inspect --json` is this
//! structure, so it is the documented schema:
//!
//! `{file, file_size, kind, build, payload, groups[], images[], flash_scripts[],
//! super, partitions[]}`; a partition is `{name, size, content, group, origin,
//! lp_name, sparse, operations, operation_types, data_bytes, hash}`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;

use super::{BuildInfo, Rom, RomKind};
use crate::error::{Error, Result};
use crate::format::payload::sign::SigStatus;
use crate::util::magic::Magic;

/// What a package is.
#[derive(Serialize, Debug)]
pub struct Description {
    /// The package.
    pub file: PathBuf,
    /// Its size in bytes.
    pub file_size: u64,
    /// Its kind.
    pub kind: RomKind,
    /// What it says about the build it carries.
    pub build: BuildInfo,
    /// The payload's header and signatures, for payload kinds.
    pub payload: Option<PayloadRow>,
    /// Dynamic partition groups (from the payload or the LP metadata).
    pub groups: Vec<GroupRow>,
    /// The stored images, for image packages.
    pub images: Vec<ImageRow>,
    /// Flash scripts in the package.
    pub flash_scripts: Vec<String>,
    /// The super image's LP metadata.
    #[serde(rename = "super")]
    pub super_image: Option<SuperRow>,
    /// Every partition.
    pub partitions: Vec<PartRow>,
}

/// One partition.
#[derive(Serialize, Debug)]
pub struct PartRow {
    /// Name.
    pub name: String,
    /// Image size in bytes.
    pub size: u64,
    /// What its first bytes hold (`erofs`, `ext4`, `vbmeta`, …).
    pub content: Option<&'static str>,
    /// Dynamic partition group.
    pub group: Option<String>,
    /// Where it comes from (`payload.bin`, an image path, `super:system_a`).
    pub origin: String,
    /// Name in the LP metadata, for logical partitions.
    pub lp_name: Option<String>,
    /// Stored sparse.
    pub sparse: bool,
    /// Payload operations (0 for images).
    pub operations: usize,
    /// Payload operations by type.
    pub operation_types: BTreeMap<String, usize>,
    /// Payload data bytes.
    pub data_bytes: u64,
    /// `new_partition_info.hash` (hex), for payloads.
    pub hash: Option<String>,
}

/// A dynamic partition group.
#[derive(Serialize, Debug)]
pub struct GroupRow {
    /// Name.
    pub name: String,
    /// Maximum size (0: unlimited).
    pub size: u64,
    /// Bytes its partitions take.
    pub used: u64,
    /// Its partitions.
    pub partitions: Vec<String>,
}

/// A payload's header and signatures.
#[derive(Serialize, Debug)]
pub struct PayloadRow {
    /// Major version (2).
    pub major_version: u64,
    /// Minor version (0: full).
    pub minor_version: u32,
    /// A full payload (no operation reads the old build).
    pub full: bool,
    /// Block size.
    pub block_size: u64,
    /// Manifest size.
    pub manifest_size: u64,
    /// Offset of the data blobs.
    pub data_offset: u64,
    /// payload.bin's size.
    pub size: u64,
    /// Metadata signature state.
    pub metadata_signature: SigStatus,
    /// Payload signature state.
    pub payload_signature: SigStatus,
    /// Virtual A/B snapshots.
    pub snapshot_enabled: Option<bool>,
    /// Virtual A/B compression.
    pub vabc_compression: Option<String>,
}

/// One stored image.
#[derive(Serialize, Debug)]
pub struct ImageRow {
    /// Partition name the image is for.
    pub name: String,
    /// Its file(s) in the package (several for split sparse parts).
    pub files: Vec<String>,
    /// Bytes stored in the package.
    pub stored_size: u64,
    /// Size of the raw image.
    pub size: u64,
    /// Stored as Android sparse.
    pub sparse: bool,
}

/// One extent of a logical partition.
#[derive(Serialize, Debug)]
pub struct ExtentRow {
    /// First sector on the device (or 0 for zero extents).
    pub sector: u64,
    /// Length in sectors.
    pub sectors: u64,
    /// `linear` or `zero`.
    pub target: &'static str,
    /// Block device index.
    pub device: u32,
}

/// A logical partition in the LP metadata.
#[derive(Serialize, Debug)]
pub struct LpPartRow {
    /// Name with slot suffix.
    pub name: String,
    /// Its group.
    pub group: String,
    /// Size in bytes.
    pub size: u64,
    /// LP attribute names.
    pub attributes: Vec<&'static str>,
    /// Its extents.
    pub extents: Vec<ExtentRow>,
}

/// A group in the LP metadata.
#[derive(Serialize, Debug)]
pub struct LpGroupRow {
    /// Name with slot suffix.
    pub name: String,
    /// Maximum size (0: unlimited).
    pub maximum_size: u64,
    /// Bytes its partitions take.
    pub used: u64,
    /// Room left, when limited.
    pub free: Option<u64>,
    /// Its partitions.
    pub partitions: Vec<String>,
}

/// A super image's LP metadata.
#[derive(Serialize, Debug)]
pub struct SuperRow {
    /// The image file holding super.
    pub image: String,
    /// LP metadata version (`10.2`).
    pub metadata_version: String,
    /// Metadata slots.
    pub metadata_slots: u32,
    /// Bytes reserved per metadata copy.
    pub metadata_max_size: u32,
    /// Logical block size.
    pub logical_block_size: u32,
    /// Virtual A/B flag.
    pub virtual_ab: bool,
    /// Header flags as stored.
    pub header_flags: u32,
    /// Block device name.
    pub device: String,
    /// Block device size.
    pub device_size: u64,
    /// Where partition data may start.
    pub first_logical_byte: u64,
    /// Alignment of partition data.
    pub alignment: u32,
    /// Bytes no partition uses.
    pub free: u64,
    /// Groups.
    pub groups: Vec<LpGroupRow>,
    /// Logical partitions.
    pub partitions: Vec<LpPartRow>,
    /// What was noticed while reading (a damaged copy read from its backup, …).
    pub notes: Vec<String>,
}

fn attr_names(a: u32) -> Vec<&'static str> {
    use crate::format::lp::*;
    let mut v = Vec::new();
    for (bit, name) in [
        (ATTR_READONLY, "readonly"),
        (ATTR_SLOT_SUFFIXED, "slot-suffixed"),
        (ATTR_UPDATED, "updated"),
        (ATTR_DISABLED, "disabled"),
    ] {
        if a & bit != 0 {
            v.push(name);
        }
    }
    v
}

fn super_row(pkg: &super::images::ImagePackage) -> Option<SuperRow> {
    use crate::format::lp::{SECTOR, TARGET_LINEAR};
    let s = pkg.super_image.as_ref()?;
    let m = &s.metadata;
    let dev = m.block_devices.first()?;
    let used_total: u64 = m.partitions.iter().map(|p| m.partition_size(p)).sum();
    Some(SuperRow {
        image: pkg.images[s.image].files[0].path.clone(),
        metadata_version: format!("{}.{}", m.major, m.minor),
        metadata_slots: m.geometry.metadata_slot_count,
        metadata_max_size: m.geometry.metadata_max_size,
        logical_block_size: m.geometry.logical_block_size,
        virtual_ab: m.virtual_ab(),
        header_flags: m.flags,
        device: dev.name.clone(),
        device_size: dev.size,
        first_logical_byte: dev.first_logical_sector * SECTOR,
        alignment: dev.alignment,
        free: dev
            .size
            .saturating_sub(dev.first_logical_sector * SECTOR)
            .saturating_sub(used_total),
        groups: m
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let used = m.group_used(i);
                LpGroupRow {
                    name: g.name.clone(),
                    maximum_size: g.maximum_size,
                    used,
                    free: (g.maximum_size > 0).then(|| g.maximum_size.saturating_sub(used)),
                    partitions: m
                        .partitions
                        .iter()
                        .filter(|p| p.group as usize == i)
                        .map(|p| p.name.clone())
                        .collect(),
                }
            })
            .collect(),
        partitions: m
            .partitions
            .iter()
            .map(|p| LpPartRow {
                name: p.name.clone(),
                group: m.groups[p.group as usize].name.clone(),
                size: m.partition_size(p),
                attributes: attr_names(p.attributes),
                extents: m
                    .extents_of(p)
                    .iter()
                    .map(|e| ExtentRow {
                        sector: e.target_data,
                        sectors: e.num_sectors,
                        target: if e.target_type == TARGET_LINEAR {
                            "linear"
                        } else {
                            "zero"
                        },
                        device: e.target_source,
                    })
                    .collect(),
            })
            .collect(),
        notes: s.notes.clone(),
    })
}

impl Rom {
    /// What the package is; reads the head of every partition (in
    /// parallel, `jobs` threads) to say what it holds.
    pub fn describe(&self, jobs: usize) -> Result<Description> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs)
            .build()
            .ok();
        let parts = self.partitions();
        let heads = || -> Vec<Option<&'static str>> {
            parts.par_iter().map(|p| self.content_of(&p.name)).collect()
        };
        let contents = match &pool {
            Some(pool) => pool.install(heads),
            None => heads(),
        };
        let mut partitions: Vec<PartRow> = parts
            .into_iter()
            .zip(contents)
            .map(|(p, content)| PartRow {
                name: p.name,
                size: p.size,
                content,
                group: p.group,
                origin: p.origin,
                lp_name: p.lp_name,
                sparse: p.sparse,
                operations: 0,
                operation_types: BTreeMap::new(),
                data_bytes: 0,
                hash: None,
            })
            .collect();
        let mut d = Description {
            file: self.path.clone(),
            file_size: self.file_size,
            kind: self.kind,
            build: self.build_info(),
            payload: None,
            groups: self.groups(),
            images: Vec::new(),
            flash_scripts: Vec::new(),
            super_image: None,
            partitions: Vec::new(),
        };
        if let Some(p) = self.payload() {
            for row in &mut partitions {
                if let Some(part) = p.partition(&row.name) {
                    row.operations = part.ops.len();
                    row.operation_types = part.op_counts().into_iter().collect();
                    row.data_bytes = part.ops.iter().map(|o| o.data_len).sum();
                    row.hash = part.hash.map(|h| crate::util::hex(&h));
                }
            }
            d.payload = Some(self.payload_row(p)?);
        }
        if let Some(pkg) = self.images() {
            d.images = image_rows(pkg);
            d.flash_scripts = pkg
                .texts
                .keys()
                .filter(|k| k.ends_with(".sh") || k.ends_with(".bat"))
                .cloned()
                .collect();
            d.super_image = super_row(pkg);
        }
        d.partitions = partitions;
        Ok(d)
    }

    /// What the first 4 KiB of a partition hold; `None` when unknown or
    /// unreadable (`verify` names the problem).
    fn content_of(&self, name: &str) -> Option<&'static str> {
        Magic::of(&self.partition_head(name, 4096)?).map(Magic::name)
    }

    /// The first `len` bytes of a partition's image, decoded without
    /// extracting the rest; `None` for a partition that is not there, a kind
    /// that can only be read in order (block OTAs), or data that does not
    /// decode.
    pub fn partition_head(&self, name: &str, len: usize) -> Option<Vec<u8>> {
        if let Some(p) = self.payload() {
            p.partition_head(p.partition(name)?, len).ok()
        } else if let Some(pkg) = self.images() {
            let (_, _, src) = pkg.sources().into_iter().find(|(n, _, _)| n == name)?;
            pkg.partition_head(&src, len)
        } else {
            None
        }
    }

    /// Dynamic partition groups: the payload's dynamic metadata or the LP
    /// metadata of a super image, with the bytes their partitions use.
    pub fn groups(&self) -> Vec<GroupRow> {
        if let Some(p) = self.payload() {
            let Some(d) = p.manifest.dynamic_partition_metadata.as_ref() else {
                return Vec::new();
            };
            return d
                .groups
                .iter()
                .map(|g| GroupRow {
                    name: g.name.clone().unwrap_or_default(),
                    size: g.size.unwrap_or(0),
                    used: g
                        .partition_names
                        .iter()
                        .filter_map(|n| p.partition(n))
                        .map(|x| x.size)
                        .sum(),
                    partitions: g.partition_names.clone(),
                })
                .collect();
        }
        let Some(s) = self.images().and_then(|pkg| pkg.super_image.as_ref()) else {
            return Vec::new();
        };
        let m = &s.metadata;
        m.groups
            .iter()
            .enumerate()
            .map(|(i, g)| GroupRow {
                name: g.name.clone(),
                size: g.maximum_size,
                used: m.group_used(i),
                partitions: m
                    .partitions
                    .iter()
                    .filter(|p| p.group as usize == i)
                    .map(|p| p.name.clone())
                    .collect(),
            })
            .collect()
    }

    fn payload_row(&self, p: &crate::format::payload::Payload) -> Result<PayloadRow> {
        let perr = |source| Error::payload(self.path.clone(), source);
        let dyn_meta = p.manifest.dynamic_partition_metadata.as_ref();
        Ok(PayloadRow {
            major_version: p.header.version,
            minor_version: p.manifest.minor_version.unwrap_or(0),
            full: !p.is_incremental(),
            block_size: p.block_size,
            manifest_size: p.header.manifest_size,
            data_offset: p.header.data_offset(),
            size: p.source.len(),
            metadata_signature: p.check_metadata_signature(None).map_err(perr)?,
            payload_signature: p.check_payload_signature(None).map_err(perr)?,
            snapshot_enabled: dyn_meta.and_then(|d| d.snapshot_enabled),
            vabc_compression: dyn_meta.and_then(|d| d.vabc_compression_param.clone()),
        })
    }
}

fn image_rows(pkg: &super::images::ImagePackage) -> Vec<ImageRow> {
    pkg.images
        .iter()
        .map(|i| ImageRow {
            name: i.name.clone(),
            files: i.files.iter().map(|f| f.path.clone()).collect(),
            stored_size: i.files.iter().map(|f| f.size).sum(),
            size: i.size,
            sparse: i.sparse,
        })
        .collect()
}
