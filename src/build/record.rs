//! Stage 8, record: what went into the package (size and SHA-256 of every
//! image), the manifest written beside it, the room left in the dynamic
//! partition groups.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rayon::prelude::*;

use super::open::Destination;
use super::sources::ImageSource;
use super::{BuildOptions, BuiltPartition, OutputFormat, Space, sha256_file};
use crate::apps::App;
use crate::debloat::{Plan, Profile};
use crate::error::{Error, Result};
use crate::fs::FsKind;
use crate::manifest::{self, Manifest};
use crate::rom::Rom;
use crate::util::hex;

/// The manifest as far as the plan: input, profile, apps and the plan's
/// decision on each.
pub(super) fn start_manifest(
    input: &Path,
    rom: &Rom,
    profile: &Profile,
    apps: &[App],
    plan: &Plan,
) -> Result<Manifest> {
    // The input's SHA-256 is filled in by the build, which hashes the
    // input while it packages.
    let mut manifest = Manifest::new(manifest::input_record_unhashed(input, Some(rom))?)
        .created_at(crate::util::time::source_date_epoch()?);
    manifest.set_profile(profile);
    manifest.add_apps(apps, Some(plan));
    Ok(manifest)
}

/// Size and SHA-256 of every image that goes into the package. A decoded
/// image hashed while decoding, or whose payload hash decoding verified, is
/// not read again; the images in `later` are not hashed here (their
/// `sha256` is empty until [`fill_hashes`]): the package writer hashes them
/// while it does other work.
pub(super) fn partitions(
    rom: &Rom,
    sources: &[(String, ImageSource)],
    filesystems: &BTreeMap<String, FsKind>,
    decoded_hashes: &BTreeMap<String, String>,
    later: &BTreeSet<String>,
) -> Result<Vec<BuiltPartition>> {
    let parts = rom.partitions();
    sources
        .par_iter()
        .map(|(name, source)| {
            let (size, sha256) = match source {
                ImageSource::Copied { size, sha256 } => (*size, hex(sha256)),
                ImageSource::Decoded(path)
                | ImageSource::Edited { path, .. }
                | ImageSource::Rebuilt(path)
                | ImageSource::Patched(path) => {
                    let size = std::fs::metadata(path)
                        .map_err(|e| Error::io(path, e))?
                        .len();
                    let known = decoded_hashes
                        .get(name)
                        .cloned()
                        .or_else(|| super::decode::verified_hash(rom, name).map(|h| hex(&h)))
                        .filter(|_| source.is_unchanged());
                    let sha = match known {
                        Some(h) => h,
                        None if later.contains(name) => String::new(),
                        None => sha256_file(path)?,
                    };
                    (size, sha)
                }
            };
            Ok(BuiltPartition {
                name: name.clone(),
                status: source.status(),
                changed_blocks: source.changed_blocks(),
                avb_footer: source.avb_footer(),
                filesystem: filesystems.get(name).map(|k| k.name()),
                source_size: parts.iter().find(|p| p.name == *name).map_or(0, |p| p.size),
                size,
                sha256,
            })
        })
        .collect()
}

/// Fills in the SHA-256 of every partition [`partitions`] left to the
/// package writer, from the hashes it reports (`hashes`). The images may
/// have been freed by then, so one it did not report is an error.
pub(super) fn fill_hashes(
    partitions: &mut [BuiltPartition],
    hashes: &[(String, [u8; 32])],
    output: &Path,
) -> Result<()> {
    for p in partitions.iter_mut().filter(|p| p.sha256.is_empty()) {
        let (_, h) = hashes.iter().find(|(n, _)| *n == p.name).ok_or_else(|| {
            Error::invalid(
                output,
                format!("the package writer did not report the hash of {}", p.name),
            )
        })?;
        p.sha256 = hex(h);
    }
    Ok(())
}

/// Records the partitions and outputs in the manifest and writes it (and its
/// YAML copy) atomically.
pub(super) fn write_manifest(
    mut manifest: Manifest,
    partitions: &[BuiltPartition],
    output: &Path,
    output_sha256: Option<&str>,
    dest: &Destination,
    opts: &BuildOptions,
) -> Result<()> {
    let (format, force) = (opts.format, opts.force);
    for o in partitions {
        manifest.add_partition(manifest::PartitionRecord {
            filesystem: o.filesystem.map(str::to_string),
            name: o.name.clone(),
            sha256: o.sha256.clone(),
            size: o.size,
            status: o.status,
            changed_blocks: o.changed_blocks,
            avb_footer: o.avb_footer.clone(),
        });
    }
    if format == OutputFormat::Images {
        for o in partitions {
            let f = output.join(format!("{}.img", o.name));
            manifest.add_output(&f).map_err(|e| Error::io(&f, e))?;
        }
    } else if let Some(sha256) = output_sha256 {
        // Taken by the package writer as it wrote the file.
        let size = std::fs::metadata(output)
            .map_err(|e| Error::io(output, e))?
            .len();
        manifest.add_output_hashed(output, size, sha256.to_string());
    } else {
        manifest
            .add_output(output)
            .map_err(|e| Error::io(output, e))?;
    }
    write_atomic(&dest.manifest_json, &manifest.to_json(), force)?;
    if let Some(y) = &dest.manifest_yaml {
        write_atomic(y, manifest.to_yaml().as_bytes(), force)?;
    }
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    let mut f = crate::output::AtomicFile::create(path, force)?;
    std::io::Write::write_all(f.file_mut(), bytes).map_err(|e| Error::io(path, e))?;
    f.commit()?;
    Ok(())
}

/// Sizes of the dynamic partition groups (and the super device, for a
/// package that has one) against what the output's partitions take.
pub(super) fn space_report(rom: &Rom, partitions: &[BuiltPartition]) -> Vec<Space> {
    let size_of = |n: &str| {
        partitions
            .iter()
            .find(|o| o.name == n)
            .map_or(0, |o| o.size)
    };
    if let Some(d) = rom
        .payload()
        .and_then(|p| p.manifest.dynamic_partition_metadata.as_ref())
    {
        d.groups
            .iter()
            .filter(|g| g.size.unwrap_or(0) > 0)
            .map(|g| {
                let used = g.partition_names.iter().map(|n| size_of(n)).sum();
                let name = g.name.as_deref().unwrap_or("main");
                space(format!("group {name}"), g.size.unwrap_or(0), used)
            })
            .collect()
    } else if let Some(s) = rom.images().and_then(|p| p.super_image.as_ref()) {
        let parts = rom.partitions();
        let lp_of = |n: &str| {
            parts
                .iter()
                .find(|p| p.lp_name.as_deref() == Some(n))
                .map_or(0, |p| size_of(&p.name))
        };
        super_space(&s.metadata, lp_of)
    } else {
        Vec::new()
    }
}

/// The groups of an LP metadata and its first block device, with the size
/// of each logical partition from `size_of_lp`.
fn super_space(meta: &crate::format::lp::Metadata, size_of_lp: impl Fn(&str) -> u64) -> Vec<Space> {
    let mut out = Vec::new();
    for (gi, g) in meta.groups.iter().enumerate() {
        if g.maximum_size == 0 {
            continue;
        }
        let used = meta
            .partitions
            .iter()
            .filter(|p| p.group as usize == gi)
            .map(|p| size_of_lp(&p.name))
            .sum();
        out.push(space(format!("group {}", g.name), g.maximum_size, used));
    }
    if let Some(dev) = meta.block_devices.first() {
        let used = meta
            .partitions
            .iter()
            .map(|p| size_of_lp(&p.name))
            .sum::<u64>()
            .saturating_add(dev.first_logical_sector.saturating_mul(512));
        out.push(space("super".into(), dev.size, used));
    }
    out
}

fn space(name: String, size: u64, used: u64) -> Space {
    Space {
        name,
        size,
        used,
        free: size.saturating_sub(used),
    }
}
