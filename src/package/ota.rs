//! Writing recovery OTA zips: `META-INF/com/android/metadata`, a
//! `payload.bin` (stored, 4096-aligned, so that it is read in place) and its
//! `payload_properties.txt` — what `rom::ota` reads.
//!
//! [`from_rom`] makes a full OTA from a package's partition images: each
//! image is encoded anew, except the partitions it is told to copy, whose
//! operations are taken byte for byte from the source's full payload, and
//! the partitions edited in place, whose unchanged operations are.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::Group;
use crate::error::{Error, Result};
use crate::format::payload::reuse::{Reuse, classify};
use crate::format::payload::writer::{
    ImageInput, PayloadInput, PayloadOptions, PayloadSummary, PreparedPayload, prepare_payload_from,
};
use crate::format::source::{Donor, FileSlice};
use crate::fs::edit::EditStats;
use crate::rom::{BuildInfo, PartInfo, Rom};
use crate::util::hash::Follower;
use crate::util::time::{ZIP_EPOCH, source_date_epoch};

/// An image edited in place, for [`from_rom`].
pub struct EditedImage {
    /// What the edit changed.
    pub stats: EditStats,
    /// The edited image's SHA-256, when already known (it is read to hash
    /// it otherwise).
    pub sha256: Option<[u8; 32]>,
}

/// Writes a full OTA at `dest` for `rom` from its partition images, in
/// `work` as `NAME.img` (scratch: the images of the partitions in `copy`
/// are deleted once the payload is laid out); the partitions in `copy` are
/// copied from the source's payload instead (they need no image), and those
/// in `edited`
/// (images edited in place, with what changed) reuse every source operation
/// the edit left alone. The source's metadata is kept; the groups must hold
/// the new images. Copied blobs are not checked against their hashes on the
/// way: the caller reads the written OTA back and checks every blob (as
/// `build`'s check stage does). Returns what the payload holds and the
/// follower taking the zip's SHA-256.
pub fn from_rom(
    rom: &Rom,
    work: &Path,
    copy: &BTreeSet<String>,
    edited: &BTreeMap<String, EditedImage>,
    dest: &Path,
    jobs: usize,
    force: bool,
) -> Result<(PayloadSummary, Follower)> {
    let info = rom.build_info();
    let parts = rom.partitions();
    let images: Vec<ImageInput> = parts
        .iter()
        .map(|p| ImageInput {
            name: p.name.clone(),
            path: work.join(format!("{}.img", p.name)),
        })
        .collect();
    let inputs: Vec<PayloadInput> = images
        .iter()
        .map(|i| match (rom.payload(), edited.get(&i.name)) {
            (Some(payload), _) if copy.contains(&i.name) => PayloadInput::Copy {
                payload,
                partition: &i.name,
            },
            (Some(payload), Some(e)) if !payload.is_incremental() => PayloadInput::Edited {
                payload,
                partition: &i.name,
                image: i,
                changed: &e.stats.changed,
                zeroed: &e.stats.zeroed,
                sha256: e.sha256,
            },
            _ => PayloadInput::Image(i),
        })
        .collect();
    let (groups, snapshot_enabled) = groups(rom, &parts, work);
    check_groups(rom, &groups, work, copy, dest)?;
    let wopts = PayloadOptions {
        jobs,
        max_timestamp: info.timestamp,
        security_patch_level: info.security_patch.clone(),
        groups,
        snapshot_enabled,
        check_copied: false,
        ..Default::default()
    };
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let scratch = crate::output::scratch_file(parent)?;
    let prepared = prepare_payload_from(&inputs, &wopts, scratch, parent)?;
    let mut donor = donor(rom, work, copy, edited);
    let when = source_date_epoch()?.or(info.timestamp).unwrap_or(ZIP_EPOCH);
    write_ota_zip(
        dest,
        &prepared,
        &metadata(rom, &info),
        when,
        force,
        &mut donor,
    )
}

/// What the zip's pages can be taken from as it is written (see [`Donor`]):
/// the copied partitions' images (decoded for their files; nothing reads
/// them again, so they are deleted now: their pages go as the zip grows,
/// their blocks when the donor closes them), then the bytes of each edited
/// image under the operations copied from the source (the output check
/// reads an edited image only under the others).
fn donor(
    rom: &Rom,
    work: &Path,
    copy: &BTreeSet<String>,
    edited: &BTreeMap<String, EditedImage>,
) -> Donor {
    let mut donor = Donor::default();
    for n in copy {
        let path = work.join(format!("{n}.img"));
        if let Ok(slice) = FileSlice::open(&path) {
            let _ = std::fs::remove_file(&path);
            let len = slice.len();
            donor.add(slice, std::iter::once(0..len));
        }
    }
    let Some(payload) = rom.payload() else {
        return donor;
    };
    for (n, e) in edited {
        let (Some(part), Ok(slice)) = (
            payload.partition(n),
            FileSlice::open(&work.join(format!("{n}.img"))),
        ) else {
            continue;
        };
        let (changed, zeroed) = (&e.stats.changed, &e.stats.zeroed);
        let copied = part
            .ops
            .iter()
            .filter(|op| classify(op, changed, zeroed) == Reuse::Copy)
            .flat_map(|op| op.dst.iter().map(|r| r.offset..r.offset + r.len));
        donor.add(slice, copied.collect::<Vec<_>>());
    }
    donor
}

/// The dynamic partition groups of the new payload and whether snapshots
/// are enabled: the source payload's, or for a fastboot package one group
/// `main` holding its logical partitions, sized by their images.
fn groups(rom: &Rom, parts: &[PartInfo], work: &Path) -> (Vec<Group>, bool) {
    if let Some(d) = rom
        .payload()
        .and_then(|p| p.manifest.dynamic_partition_metadata.as_ref())
    {
        return super::payload_groups(d);
    }
    let logical: Vec<String> = parts
        .iter()
        .filter(|p| p.lp_name.is_some())
        .map(|p| p.name.clone())
        .collect();
    if logical.is_empty() {
        return (Vec::new(), false);
    }
    let size = logical
        .iter()
        .filter_map(|n| std::fs::metadata(work.join(format!("{n}.img"))).ok())
        .map(|m| m.len())
        .sum();
    (vec![("main".into(), size, logical)], false)
}

/// Fails when a group cannot hold its partitions' new images.
fn check_groups(
    rom: &Rom,
    groups: &[Group],
    work: &Path,
    copy: &BTreeSet<String>,
    dest: &Path,
) -> Result<()> {
    let image_size = |n: &str| -> Option<u64> {
        if copy.contains(n) {
            rom.payload()?.partition(n).map(|p| p.size)
        } else {
            std::fs::metadata(work.join(format!("{n}.img")))
                .ok()
                .map(|m| m.len())
        }
    };
    for (g, size, names) in groups {
        let need: u64 = names.iter().filter_map(|n| image_size(n)).sum();
        if *size > 0 && need > *size {
            return Err(Error::invalid(
                dest,
                format!("partitions of group {g} need {need} bytes, more than its {size}"),
            ));
        }
    }
    Ok(())
}

/// The OTA metadata: the source zip's, or for another package kind the
/// keys recovery needs from what the package says about its build.
fn metadata(rom: &Rom, info: &BuildInfo) -> BTreeMap<String, String> {
    if let Some(z) = rom.ota_zip() {
        return z.metadata.clone();
    }
    let mut m = BTreeMap::new();
    m.insert("ota-type".to_string(), "AB".to_string());
    if let Some(d) = &info.device {
        m.insert("pre-device".to_string(), d.clone());
    }
    if let Some(t) = info.timestamp {
        m.insert("post-timestamp".to_string(), t.to_string());
    }
    m
}

/// Writes an OTA zip at `dest` (atomically): `META-INF/com/android/metadata`,
/// then `payload.bin` stored with its data 4096-aligned, then
/// `payload_properties.txt`. Every entry is dated `mtime` (seconds since the
/// epoch, clamped to what zip can carry), so equal inputs give equal bytes.
/// `donor` frees scratch bytes as the payload is written. Returns what the
/// payload holds and the follower taking the zip's SHA-256 as it was
/// written (it may still be reading: [`Follower::wait`]).
pub fn write_ota_zip(
    dest: &Path,
    payload: &PreparedPayload<'_>,
    metadata: &BTreeMap<String, String>,
    mtime: i64,
    force: bool,
    donor: &mut Donor,
) -> Result<(PayloadSummary, Follower)> {
    use crate::format::zip_write::ZipOut;

    let out = crate::output::AtomicFile::create(dest, force)?;
    let tmp = out.tmp_path().to_path_buf();
    let e = |e: std::io::Error| Error::io(&tmp, e);
    let mut zip = ZipOut::new(out.file(), mtime).hashed().map_err(e)?;
    let text: String = metadata.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    zip.file(
        "META-INF/com/android/metadata",
        0o644,
        text.as_bytes(),
        false,
    )
    .map_err(e)?;
    // Its CRC-32 first (the data not decoded in this run read once more, in
    // parallel; the rest combined from the decode's records), so that its
    // local header is final and the zip's hash is taken while it streams.
    let crc = payload.crc32()?;
    zip.begin_known("payload.bin", 0o644, 4096, (payload.len(), crc))
        .map_err(e)?;
    let summary = payload.write_to(&mut zip, &tmp, donor)?;
    zip.end(&[]).map_err(e)?;
    let properties = summary.properties();
    zip.file(
        "payload_properties.txt",
        0o644,
        properties.as_bytes(),
        false,
    )
    .map_err(e)?;
    let done = zip.finish().map_err(e)?;
    let hash = done
        .hash
        .ok_or_else(|| Error::io(&tmp, std::io::Error::other("the zip was not hashed")))?;
    out.commit()?;
    Ok((summary, hash))
}
