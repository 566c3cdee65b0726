//! Stage 2, decode: which partitions become image files in the work folder,
//! and decoding them (hashes checked on the way).
//!
//! An OTA output made from a full payload copies the operations of every
//! partition the profile leaves alone, so only the app partitions (for their
//! trees), vbmeta (to patch) and partitions whose payload entry carries no
//! hash are decoded; every other output needs every image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use super::{OutputFormat, sha256_file};
use crate::apps::APP_PARTITIONS;
use crate::error::Result;
use crate::format::input_pages::InputPages;
use crate::format::payload::Payload;
use crate::format::source::FileSlice;
use crate::rom::{PartInfo, Rom};

/// A partition left encoded in the input's payload: its image is known by
/// the payload's `new_partition_info` (checked when the output is re-opened).
#[derive(Clone, Copy, Debug)]
pub(super) struct Encoded {
    /// Image size.
    pub size: u64,
    /// SHA-256 of the image.
    pub sha256: [u8; 32],
}

/// What the build decodes and what it leaves encoded.
pub(super) struct Selection<'a> {
    /// Every partition of the input, in its order.
    pub parts: Vec<PartInfo>,
    /// The full payload an OTA output copies untouched partitions from.
    pub copy_from: Option<&'a Payload>,
    /// App partitions: decoded, then read as trees.
    pub apps: Vec<PartInfo>,
    /// Other partitions decoded to images (and hashed) alongside the app stages.
    pub others: Vec<PartInfo>,
    /// Partitions left encoded, by name.
    pub encoded: BTreeMap<String, Encoded>,
}

/// Whether a partition holds system apps (and is read as a tree).
pub(super) fn is_app_partition(name: &str) -> bool {
    APP_PARTITIONS.contains(&name)
}

/// Path of a partition's image in the work folder.
pub(super) fn image_path(work: &Path, name: &str) -> PathBuf {
    work.join(format!("{name}.img"))
}

/// Decides, for every partition of `rom`, whether a build writing `format`
/// decodes it.
pub(super) fn select(rom: &Rom, format: OutputFormat) -> Selection<'_> {
    let copy_from = (format == OutputFormat::Ota)
        .then(|| rom.payload())
        .flatten()
        .filter(|p| !p.is_incremental());
    let mut sel = Selection {
        parts: rom.partitions(),
        copy_from,
        apps: Vec::new(),
        others: Vec::new(),
        encoded: BTreeMap::new(),
    };
    for p in &sel.parts {
        let keep_encoded = copy_from
            .filter(|_| !is_app_partition(&p.name) && !p.name.starts_with("vbmeta"))
            .and_then(|pl| pl.partition(&p.name))
            .and_then(|x| Some((x.size, x.hash?)));
        match keep_encoded {
            Some((size, sha256)) => {
                sel.encoded.insert(p.name.clone(), Encoded { size, sha256 });
            }
            None if is_app_partition(&p.name) => sel.apps.push(p.clone()),
            None => sel.others.push(p.clone()),
        }
    }
    sel
}

/// The input's pages to hand on to the decoded images (see
/// [`InputPages`]), for a build that reads its input only to hash it and to
/// decode every partition of its payload: every output but an OTA made from
/// a full payload, which copies the source's operations and so reads the
/// input again as it is written.
pub(super) fn input_pages(rom: &Rom, input: &Path, format: OutputFormat) -> Option<InputPages> {
    let p = rom.payload()?;
    if format == OutputFormat::Ota && !p.is_incremental() || p.source.path() != input {
        return None;
    }
    let file = FileSlice::open(input).ok()?;
    let base = p.source.base();
    let reads = p
        .partitions
        .iter()
        .flat_map(|part| &part.ops)
        .filter(|op| op.data_len > 0)
        .map(|op| {
            let at = base.saturating_add(op.data_offset);
            at..at.saturating_add(op.data_len)
        });
    Some(InputPages::new(file, reads))
}

/// Fails before any work when the output's filesystem cannot hold the
/// decoded images, one rebuilt partition beside its source at a time, and
/// the package (about the input's size; an image folder is renamed from the
/// work folder).
pub(super) fn check_space(
    rom: &Rom,
    sel: &Selection<'_>,
    input: &Path,
    format: OutputFormat,
    parent: &Path,
) -> Result<()> {
    let estimate = |p: &PartInfo| rom.disk_estimate(&p.name);
    let decode: u64 = sel.apps.iter().chain(&sel.others).map(estimate).sum();
    let rebuild = sel.apps.iter().map(estimate).max().unwrap_or(0);
    let package = match format {
        OutputFormat::Images => 0,
        _ => std::fs::metadata(input).map_or(0, |m| m.len()),
    };
    crate::output::ensure_space(
        parent,
        decode.saturating_add(rebuild).saturating_add(package),
        "the build (decoded images, rebuilt partitions, the package)",
    )
}

/// Decodes `parts` into the work folder.
pub(super) fn decode(rom: &Rom, parts: &[PartInfo], work: &Path, jobs: usize) -> Result<()> {
    let requests: Vec<(String, PathBuf)> = parts
        .iter()
        .map(|p| (p.name.clone(), image_path(work, &p.name)))
        .collect();
    rom.extract_partitions(&requests, jobs, false).map(|_| ())
}

/// The SHA-256 of partition `name` as decoded, when the input's payload
/// carries it: decoding checks every image against it (and fails
/// otherwise), so an image decoded and left unchanged need not be read
/// again to be hashed.
pub(super) fn verified_hash(rom: &Rom, name: &str) -> Option<[u8; 32]> {
    rom.payload()?.partition(name)?.hash
}

/// The partitions outside the app set, decoded and hashed.
pub(super) struct DecodedOthers {
    /// Seconds it took.
    pub secs: f64,
    /// SHA-256 of each image as decoded, by name.
    pub hashes: BTreeMap<String, String>,
}

/// Decodes and hashes the partitions outside the app set (run alongside the
/// app stages).
pub(super) fn decode_others(
    rom: &Rom,
    sel: &Selection<'_>,
    work: &Path,
    jobs: usize,
) -> Result<DecodedOthers> {
    let t = Instant::now();
    decode(rom, &sel.others, work, jobs)?;
    let hashes = sel
        .others
        .par_iter()
        .map(|p| {
            let sha = match verified_hash(rom, &p.name) {
                Some(h) => crate::util::hex(&h),
                None => sha256_file(&image_path(work, &p.name))?,
            };
            Ok((p.name.clone(), sha))
        })
        .collect::<Result<_>>()?;
    Ok(DecodedOthers {
        secs: t.elapsed().as_secs_f64(),
        hashes,
    })
}
