//! Writing fastboot packages (what `rom::images` reads): `images/` with the other images passed through
//! byte for byte and a rebuilt sparse `super.img` (optionally split into
//! `super.img.0 … N`, each a sparse image over the whole super, flashed one
//! after the other), plus install scripts for Linux/macOS (`.sh`) and
//! Windows (`.bat`): `flash_all` for a first install (erases user data) and
//! `flash_all_except_storage` for an update (keeps it). Like the official
//! scripts, each first checks `fastboot getvar product` against the device
//! codename and flashes nothing on a mismatch.
//!
//! A zip is written as its files are made (`package::fastboot_out`): images
//! stored with their data 4096-aligned, so that they can be read in place,
//! super's parts streamed from the partition images into their entries,
//! then the files carried over, the CRC lists (their CRCs taken while the
//! images were written), `md5sum.xml`, the README and the scripts, under a
//! temporary name until complete. A folder or `.tgz` is assembled in a
//! temporary folder beside the destination and then renamed or archived.
//! Entry order, names, modes and times are fixed, so equal inputs give
//! equal bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::fastboot_out::{Digest, PackageOut, may_be_large, mode_of};
use super::flash_script::{self, Script, Step};
use crate::error::{Error, Result};
use crate::format::crclist::{self, Entry};
use crate::format::image::ImageMap;
use crate::format::lp::{self, SuperSpec};
use crate::format::source::FileSlice;
use crate::format::sparse;
use crate::util::hash::Follower;
use crate::util::time::ZIP_EPOCH;

/// Container of the written package.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PackageFormat {
    /// A folder.
    Dir,
    /// A zip (xiaomi.eu style), images stored uncompressed.
    Zip,
    /// A gzip-compressed tar (official style).
    Tgz,
}

/// Layout and script names of the package.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    /// Xiaomi's: `flash_all.sh`, `flash_all_except_storage.sh` and their
    /// `.bat`s; super whole unless split is asked for.
    #[default]
    Official,
    /// xiaomi.eu's: `windows_fastboot_first_install_with_data_format.bat`,
    /// `windows_fastboot_update_rom.bat`, their Linux and macOS `.sh`
    /// counterparts and a README.txt; super always split into sparse
    /// chunks (`super.img.0 … N`).
    XiaomiEu,
}

/// Parts of super in a xiaomi.eu-style package unless `split` says
/// otherwise: small enough that fastboot sends each in one download.
pub const EU_SPLIT: u64 = 512 << 20;

/// What goes into a fastboot package.
pub struct FastbootSpec<'a> {
    /// Device codename the scripts check (`fuxi`).
    pub device: String,
    /// Images flashed as they are: (partition name, file).
    pub images: Vec<(String, PathBuf)>,
    /// The super layout, when the package has dynamic partitions.
    pub super_layout: Option<SuperSpec>,
    /// Images of the logical partitions, by LP name.
    pub logical: Vec<(String, &'a ImageMap)>,
    /// Split `super.img` into parts of at most this many bytes.
    pub split: Option<u64>,
    /// Whether the device has A/B slots (images flashed to both, slot a made active).
    pub ab: bool,
    /// Modification time of every entry (seconds since the epoch).
    pub mtime: i64,
    /// Flash vbmeta images with verity and verification disabled.
    pub disable_verification: bool,
    /// Layout and script names.
    pub style: Style,
    /// Images (by name) written as sparse images, as the input had them.
    pub sparse: BTreeSet<String>,
    /// Other files carried as they are: (path in the package, file), such
    /// as an official package's firmware, `misc.txt` and
    /// `images/anti_version.txt`.
    pub extra: Vec<(String, PathBuf)>,
    /// The flash sequences of the input's own scripts (first install,
    /// update), followed instead of the generated ones.
    pub official: Option<(Vec<Step>, Vec<Step>)>,
    /// The input's `md5sum.xml`, written with the new digests.
    pub md5sum: Option<String>,
    /// The device variable the anti-rollback check asks for, as the input's
    /// own scripts do (`rollback_ver` on MediaTek devices); `anti` if `None`.
    pub anti_var: Option<String>,
    /// What the report should say (dropped lock scripts, no anti version).
    pub notes: Vec<String>,
    /// Files of the input left out on purpose (lock scripts).
    pub dropped: Vec<String>,
}

/// What was written.
#[derive(Clone, Debug, Serialize)]
pub struct FastbootSummary {
    /// The package.
    pub path: PathBuf,
    /// Layout and script names.
    pub style: Style,
    /// Files in it (relative paths), in order.
    pub files: Vec<String>,
    /// The super image's parts.
    pub super_parts: usize,
    /// The install scripts.
    pub scripts: Vec<String>,
    /// Whether the scripts follow the input's own flash sequence.
    pub official_sequence: bool,
    /// The anti-rollback version the scripts check (`images/anti_version.txt`).
    pub anti_version: Option<String>,
    /// Partitions in `images/crclist.txt` and `images/sparsecrclist.txt`.
    pub crc_listed: usize,
    /// Files of the input left out (lock scripts: relocking the bootloader
    /// on a modified build leaves the phone unbootable).
    pub dropped: Vec<String>,
    /// Notes on how the package was made.
    pub notes: Vec<String>,
    /// SHA-256 of a zip package (taken as it was written; filled in from
    /// the follower the writers hand back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// SHA-256 of the images [`FromRom::hash`] named, taken as they were
    /// written.
    #[serde(skip)]
    pub image_hashes: Vec<(String, [u8; 32])>,
    /// CRC-32 of each image written into super, taken as super's writer
    /// read it ([`crate::format::source::FileSlice::crc_as_read`]): what the
    /// build's read-back check compares the package's partitions with.
    #[serde(skip)]
    pub image_crcs: Vec<(String, u32)>,
}

fn lp_err(dest: &Path, msg: String) -> Error {
    Error::invalid(dest, msg)
}

/// The script file names of a style: (first install, update) per OS.
fn script_names(style: Style) -> Vec<(&'static str, bool)> {
    match style {
        Style::Official => vec![
            ("flash_all.sh", true),
            ("flash_all_except_storage.sh", false),
            ("flash_all.bat", true),
            ("flash_all_except_storage.bat", false),
        ],
        Style::XiaomiEu => vec![
            ("linux_fastboot_first_install_with_data_format.sh", true),
            ("linux_fastboot_update_rom.sh", false),
            ("macos_fastboot_first_install_with_data_format.sh", true),
            ("macos_fastboot_update_rom.sh", false),
            ("windows_fastboot_first_install_with_data_format.bat", true),
            ("windows_fastboot_update_rom.bat", false),
        ],
    }
}

/// What [`write_package`] returns: the summary (its `sha256` not yet
/// filled in) and, for a zip, the follower taking the zip's SHA-256, which
/// may still be reading when the package is complete.
pub type Written = (FastbootSummary, Option<Follower>);

/// Writes the fastboot package `spec` at `dest` in `format`. A zip is
/// written as its files are made; a folder or `.tgz` is staged beside
/// `dest` first.
pub fn write_package(
    spec: &FastbootSpec<'_>,
    dest: &Path,
    format: PackageFormat,
    jobs: usize,
    force: bool,
) -> Result<Written> {
    let _ = jobs;
    if !crate::format::payload::is_safe_partition_name(&spec.device) {
        return Err(Error::Usage(format!(
            "device codename {:?} is not usable",
            spec.device
        )));
    }
    crate::output::check_overwrite(dest, force)?;
    let mut names: Vec<&(String, PathBuf)> = spec.images.iter().collect();
    names.sort_by_key(|(n, _)| (n.starts_with("vbmeta"), n.clone()));
    for (name, _) in &names {
        if !crate::format::payload::is_safe_partition_name(name) || name == "super" {
            return Err(Error::Usage(format!(
                "image name {name:?} is not usable here"
            )));
        }
    }
    for (rel, src) in &spec.extra {
        if !crate::rom::images::safe_path(rel) || rel.ends_with('/') {
            return Err(Error::invalid(
                src,
                format!("{rel:?} is no path in a package"),
            ));
        }
    }
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let (zip_file, stage) = match format {
        PackageFormat::Zip => (Some(crate::output::AtomicFile::create(dest, force)?), None),
        _ => (
            None,
            Some(crate::output::temp_dir_in(parent, ".romkit-fastboot-")?),
        ),
    };
    let mut out = match (&zip_file, &stage) {
        (Some(f), _) => PackageOut::zip(f.file(), f.tmp_path(), spec.mtime)?,
        (None, Some(stage)) => PackageOut::dir(stage.path().join("pkg"))?,
        (None, None) => unreachable!("a zip or a staging folder"),
    };
    let written = fill(spec, &names, &mut out, dest)?;
    let all = out.files.clone();
    let hash = out.finish()?;
    match (zip_file, stage) {
        (Some(f), _) => {
            f.commit()?;
        }
        (None, Some(stage)) => {
            let root = stage.path().join("pkg");
            if format == PackageFormat::Tgz {
                write_tgz(&root, &all, dest, spec.mtime, force)?;
            } else {
                if force && std::fs::symlink_metadata(dest).is_ok() {
                    std::fs::remove_dir_all(dest).map_err(|e| Error::io(dest, e))?;
                }
                std::fs::rename(&root, dest).map_err(|e| Error::io(dest, e))?;
            }
        }
        (None, None) => unreachable!("a zip or a staging folder"),
    }
    let summary = FastbootSummary {
        path: dest.to_path_buf(),
        files: all,
        ..written
    };
    Ok((summary, hash))
}

/// Writes every file of the package into `out`: the images, super, the
/// files carried over, the CRC lists, `md5sum.xml`, the README and the
/// scripts. `names` are the images in flashing order.
fn fill(
    spec: &FastbootSpec<'_>,
    names: &[&(String, PathBuf)],
    out: &mut PackageOut<'_>,
    dest: &Path,
) -> Result<FastbootSummary> {
    let split = match spec.style {
        Style::XiaomiEu => Some(spec.split.unwrap_or(EU_SPLIT)),
        Style::Official => spec.split,
    };
    let mut flash: Vec<(String, String)> = Vec::new();
    for (name, src) in names {
        let rel = format!("images/{name}.img");
        if spec.sparse.contains(name) {
            let slice = FileSlice::open(src).map_err(|e| Error::io(src, e))?;
            let len = slice.len();
            let blocks = u32::try_from(len.div_ceil(4096))
                .map_err(|_| Error::invalid(src, format!("{len} bytes are too many blocks")))?;
            let opts = sparse::SparseOptions::default();
            out.sparse(
                &rel,
                false,
                may_be_large(len, None),
                (4096, blocks),
                |sink| sparse::write_raw(&slice, len, &opts, sink),
            )?;
        } else {
            out.copy(&rel, src)?;
        }
        flash.push((name.clone(), rel));
    }
    let mut super_files = Vec::new();
    if let Some(layout) = &spec.super_layout {
        let m = layout
            .build()
            .map_err(|msg| lp_err(dest, msg.to_string()))?;
        let opts = sparse::SparseOptions {
            block_size: 4096,
            split,
        };
        let plan = lp::SuperPlan::new(&m, &spec.logical).map_err(|e| Error::layout(dest, e))?;
        let blocks = u32::try_from(plan.device_size.div_ceil(4096)).map_err(|_| {
            lp_err(
                dest,
                format!("a super of {} bytes has too many blocks", plan.device_size),
            )
        })?;
        let large = may_be_large(plan.device_size, split);
        let mut failed = None;
        super_files = out
            .sparse(
                "images/super.img",
                split.is_some(),
                large,
                (4096, blocks),
                |sink| {
                    plan.write_sparse(&opts, sink).map_err(|e| {
                        let msg = e.to_string();
                        failed = Some(e);
                        io::Error::other(msg)
                    })
                },
            )
            .map_err(|e| match failed.take() {
                Some(l) => Error::layout(dest, l),
                None => e,
            })?;
    }
    let mut extra: Vec<&(String, PathBuf)> = spec.extra.iter().collect();
    extra.sort_by(|a, b| a.0.cmp(&b.0));
    for (rel, src) in extra {
        out.copy(rel, src)?;
    }
    let mut notes = spec.notes.clone();
    let anti_version = spec
        .extra
        .iter()
        .find(|(rel, _)| rel == "images/anti_version.txt")
        .and_then(|(_, src)| std::fs::read_to_string(src).ok())
        .map(|s| s.trim().to_string());

    let has = |f: &str| out.digests.contains_key(f);
    let (official_sequence, first, update) = match &spec.official {
        Some((first, update)) => {
            let mut fix =
                |steps: &[Step]| follow_official(spec, steps, &has, &super_files, &mut notes);
            (true, fix(first), fix(update))
        }
        None => (
            false,
            generated_steps(spec, &flash, &super_files, true),
            generated_steps(spec, &flash, &super_files, false),
        ),
    };

    // The CRC lists cover every file the first install flashes.
    let (plain, sparse_list) = crc_entries(&out.digests, &first, &super_files)?;
    let crc_listed = plain.len() + sparse_list.len();
    out.text("images/crclist.txt", &crclist::render_crclist(&plain))?;
    out.text(
        "images/sparsecrclist.txt",
        &crclist::render_sparse(&sparse_list),
    )?;
    if let Some(text) = &spec.md5sum {
        match rewrite_md5sum(text, out)? {
            Ok(text) => out.text("md5sum.xml", &text)?,
            Err(why) => notes.push(format!(
                "the input's md5sum.xml is left out rather than carried with stale digests: {why}"
            )),
        }
    }
    if spec.style == Style::XiaomiEu {
        out.text("README.txt", &readme(spec, anti_version.as_deref()))?;
    }
    let mut scripts = Vec::new();
    for (name, wipe) in script_names(spec.style) {
        let script = Script {
            device: &spec.device,
            anti: anti_version
                .is_some()
                .then(|| spec.anti_var.as_deref().unwrap_or("anti")),
            crc_lists: true,
            wipe,
            name,
            steps: if wipe { &first } else { &update },
        };
        let text = if name.ends_with(".sh") {
            flash_script::sh(&script)
        } else {
            flash_script::bat(&script)
        };
        out.text(name, &text)?;
        scripts.push(name.to_string());
    }
    if anti_version.is_none() {
        notes.push(
            "the input carries no anti-rollback version (images/anti_version.txt): the scripts cannot check the device's (fastboot getvar anti)"
                .into(),
        );
    }
    for d in &spec.dropped {
        notes.push(format!(
            "{d} left out: relocking the bootloader on a modified build leaves the phone unbootable"
        ));
    }
    Ok(FastbootSummary {
        path: dest.to_path_buf(),
        style: spec.style,
        files: Vec::new(),
        super_parts: super_files.len(),
        scripts,
        official_sequence,
        anti_version,
        crc_listed,
        dropped: spec.dropped.clone(),
        notes,
        sha256: None,
        image_hashes: Vec::new(),
        image_crcs: Vec::new(),
    })
}

fn flash_target(spec: &FastbootSpec<'_>, name: &str) -> String {
    if spec.ab && name != "super" {
        format!("{name}_ab")
    } else {
        name.to_string()
    }
}

/// The generated sequence: `erase boot` first (an interrupted flash then
/// cannot boot a half-written system), the firmware, super, on a first
/// install `erase metadata` and `erase userdata`, the vbmeta images, boot
/// last, slot a active, reboot.
fn generated_steps(
    spec: &FastbootSpec<'_>,
    flash: &[(String, String)],
    super_files: &[String],
    wipe: bool,
) -> Vec<Step> {
    let fl = |name: &str, file: &str| Step::Flash {
        target: flash_target(spec, name),
        file: file.to_string(),
        disable_avb: spec.disable_verification && name.starts_with("vbmeta"),
    };
    let is_boot = |n: &str| n == "boot";
    let is_data = |n: &str| n == "userdata" || n == "metadata";
    let mut steps = vec![Step::Erase(flash_target(spec, "boot"))];
    for (n, rel) in flash {
        if !n.starts_with("vbmeta") && !is_boot(n) && !is_data(n) {
            steps.push(fl(n, rel));
        }
    }
    for rel in super_files {
        steps.push(fl("super", rel));
    }
    if wipe {
        for n in ["metadata", "userdata"] {
            steps.push(Step::Erase(n.into()));
            if let Some((_, rel)) = flash.iter().find(|(x, _)| x == n) {
                steps.push(fl(n, rel));
            }
        }
    }
    for (n, rel) in flash {
        if n.starts_with("vbmeta") {
            steps.push(fl(n, rel));
        }
    }
    for (n, rel) in flash {
        if is_boot(n) {
            steps.push(fl(n, rel));
        }
    }
    if spec.ab {
        steps.push(Step::SetActive("a".into()));
    }
    steps.push(Step::Reboot);
    steps
}

/// The input's own sequence, with only what the rebuilt images require
/// changed: super flashed as its parts, vbmeta with verification disabled
/// when the images were rebuilt, and flashes of files the package no
/// longer has left out (and noted).
fn follow_official(
    spec: &FastbootSpec<'_>,
    steps: &[Step],
    has: &dyn Fn(&str) -> bool,
    super_files: &[String],
    notes: &mut Vec<String>,
) -> Vec<Step> {
    let mut out = Vec::new();
    for s in steps {
        match s {
            Step::Flash { target, file, .. }
                if target == "super" && file.starts_with("images/super.img") =>
            {
                if out
                    .iter()
                    .any(|x: &Step| matches!(x, Step::Flash { target, .. } if target == "super"))
                {
                    continue;
                }
                for rel in super_files {
                    out.push(Step::Flash {
                        target: "super".into(),
                        file: rel.clone(),
                        disable_avb: false,
                    });
                }
            }
            Step::Flash { target, file, .. } => {
                if !has(file) {
                    notes.push(format!(
                        "the input's scripts flash {file} to {target}, which the package does not have: left out"
                    ));
                    continue;
                }
                out.push(Step::Flash {
                    target: target.clone(),
                    file: file.clone(),
                    disable_avb: spec.disable_verification && target.starts_with("vbmeta"),
                });
            }
            other => out.push(other.clone()),
        }
    }
    out
}

/// The CRC list entries of the files `steps` flash: sparse files (and the
/// parts of super, one list over all of them in flashing order) in
/// `sparsecrclist.txt`, the others in `crclist.txt`, under the partition
/// name without its slot suffix. `digests` are those taken as the package's
/// files were written.
fn crc_entries(
    digests: &BTreeMap<String, Digest>,
    steps: &[Step],
    super_files: &[String],
) -> Result<(Vec<Entry>, Vec<Entry>)> {
    let mut plain = Vec::new();
    let mut sparse_list: Vec<Entry> = Vec::new();
    let mut seen = BTreeSet::new();
    for s in steps {
        let Step::Flash { target, file, .. } = s else {
            continue;
        };
        let name = target.strip_suffix("_ab").unwrap_or(target).to_string();
        if !seen.insert(name.clone()) {
            continue;
        }
        let files: Vec<&String> = if name == "super" && super_files.contains(file) {
            super_files.iter().collect()
        } else {
            vec![file]
        };
        let mut crcs = Vec::new();
        let mut is_sparse = false;
        for f in files {
            let d = digests.get(f).ok_or_else(|| {
                Error::Usage(format!(
                    "the scripts flash {f}, which the package does not have"
                ))
            })?;
            match &d.sparse {
                Some(parts) => {
                    is_sparse = true;
                    crcs.extend_from_slice(parts);
                }
                None => crcs.push(d.crc32),
            }
        }
        let e = Entry {
            partition: name,
            crcs,
        };
        if is_sparse {
            sparse_list.push(e);
        } else {
            plain.push(e);
        }
    }
    Ok((plain, sparse_list))
}

/// The input's `md5sum.xml` ([`crate::format::md5sum`]) for the package
/// `out` holds: the digest of every file of `images/` recomputed, those of
/// files the package no longer has removed, the files it did not list
/// added; `Err` with the reason when it is not in the known form.
fn rewrite_md5sum(text: &str, out: &PackageOut<'_>) -> Result<std::result::Result<String, String>> {
    use crate::format::md5sum;
    let digests = match md5sum::parse(text) {
        Ok(d) => d,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let images: Vec<String> = out
        .files
        .iter()
        .filter(|f| f.strip_prefix("images/").is_some_and(|n| !n.contains('/')))
        .cloned()
        .collect();
    let fresh: BTreeMap<String, String> = out
        .md5s(&images)?
        .into_iter()
        .map(|(rel, h)| (rel["images/".len()..].to_string(), h))
        .collect();
    let added: Vec<(String, String)> = fresh
        .iter()
        .filter(|(n, _)| !digests.iter().any(|d| &d.name == *n))
        .map(|(n, h)| (n.clone(), h.clone()))
        .collect();
    Ok(Ok(md5sum::rewrite(
        text,
        &digests,
        |name| fresh.get(name).cloned(),
        &added,
    )))
}

fn readme(spec: &FastbootSpec<'_>, anti: Option<&str>) -> String {
    let d = &spec.device;
    let mut s = format!(
        "Fastboot package for {d}. The bootloader must be unlocked.\n\n\
         First install (ERASES all data):\n  Windows: windows_fastboot_first_install_with_data_format.bat\n  \
         Linux:   linux_fastboot_first_install_with_data_format.sh\n  macOS:   macos_fastboot_first_install_with_data_format.sh\n\n\
         Update (keeps data, only over the same kind of build):\n  Windows: windows_fastboot_update_rom.bat\n  \
         Linux:   linux_fastboot_update_rom.sh\n  macOS:   macos_fastboot_update_rom.sh\n\n\
         Run a script with the phone in fastboot mode, from this folder; `-s SERIAL` picks the device.\n\
         Each script first checks that the phone is a {d} (fastboot getvar product)"
    );
    if let Some(a) = anti {
        s.push_str(&format!(
            " and that its anti-rollback version (fastboot getvar anti) is not above {a}"
        ));
    }
    s.push_str(
        ", and flashes nothing otherwise.\n\
         Do not relock the bootloader with this build: a modified system does not boot on a locked bootloader.\n",
    );
    s
}

fn write_tgz(root: &Path, files: &[String], dest: &Path, mtime: i64, force: bool) -> Result<()> {
    let mut out = crate::output::AtomicFile::create(dest, force)?;
    let tmp = out.tmp_path().to_path_buf();
    let e = |err: io::Error| Error::io(&tmp, err);
    {
        let w = io::BufWriter::with_capacity(1 << 20, out.file_mut());
        let gz = flate2::GzBuilder::new()
            .mtime(mtime.clamp(0, u32::MAX as i64) as u32)
            .write(w, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        tar.mode(tar::HeaderMode::Deterministic);
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o755);
        dir.set_mtime(mtime.max(0) as u64);
        dir.set_size(0);
        tar.append_data(&mut dir, "images/", io::empty())
            .map_err(e)?;
        for rel in files {
            let p = root.join(rel);
            let f = File::open(&p).map_err(|err| Error::io(&p, err))?;
            let len = f.metadata().map_err(|err| Error::io(&p, err))?.len();
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(len);
            h.set_mode(mode_of(rel));
            h.set_mtime(mtime.max(0) as u64);
            h.set_uid(0);
            h.set_gid(0);
            tar.append_data(&mut h, rel, f).map_err(e)?;
        }
        let gz = tar.into_inner().map_err(e)?;
        let mut w = gz.finish().map_err(e)?;
        w.flush().map_err(e)?;
    }
    out.commit()?;
    Ok(())
}

/// How [`from_rom`] makes a fastboot package.
#[derive(Clone, Debug)]
pub struct FromRom {
    /// Device codename the scripts check.
    pub device: String,
    /// Split `super.img` into parts of at most this many bytes.
    pub split: Option<u64>,
    /// Size of the super device (default: from the source).
    pub super_size: Option<u64>,
    /// Flash vbmeta with verity and verification disabled (rebuilt images no
    /// longer match its hash descriptors).
    pub disable_verification: bool,
    /// Layout and script names.
    pub style: Style,
    /// Partitions whose image SHA-256 to take while the package is written
    /// (reported in [`FastbootSummary::image_hashes`]): super's are hashed
    /// by a thread reading just ahead of super's writer, which frees them.
    pub hash: BTreeSet<String>,
}

/// Writes a fastboot package for `rom` from its partition images, already
/// in `work` as `NAME.img` (edited ones may differ in size from the
/// source's: the super layout is sized from the files). They are scratch:
/// the images of super's partitions are freed as super is written from
/// them (their sizes stay), so that the package's pages are theirs.
#[allow(clippy::too_many_arguments)]
pub fn from_rom(
    rom: &crate::rom::Rom,
    work: &Path,
    opts: &FromRom,
    dest: &Path,
    format: PackageFormat,
    jobs: usize,
    force: bool,
) -> Result<Written> {
    use crate::format::image::ImageMap;
    let parts = rom.partitions();
    let info = rom.build_info();
    let size_of = |n: &str| {
        std::fs::metadata(work.join(format!("{n}.img")))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let path_of = |n: &str| work.join(format!("{n}.img"));

    // Which partitions live in super, under which LP name, and the layout.
    let mut logical: Vec<(String, String)> = Vec::new(); // (listed name, LP name)
    let mut layout = None;
    let mut ab = matches!(
        rom.kind,
        crate::rom::RomKind::RecoveryOta | crate::rom::RomKind::Payload
    );
    if let Some(s) = rom.images().and_then(|p| p.super_image.as_ref()) {
        for p in &parts {
            if let Some(lp_name) = &p.lp_name {
                logical.push((p.name.clone(), lp_name.clone()));
            }
        }
        let sizes: Vec<(String, u64)> = parts
            .iter()
            .filter_map(|p| p.lp_name.clone().map(|n| (n, size_of(&p.name))))
            .collect();
        let mut spec = lp::respec(&s.metadata, &sizes);
        if let Some(d) = opts.super_size {
            spec.device_size = d;
        }
        ab = s.metadata.partitions.iter().any(|p| p.name.ends_with("_a"));
        layout = Some(spec);
    } else if let Some(d) = rom
        .payload()
        .and_then(|p| p.manifest.dynamic_partition_metadata.as_ref())
    {
        let (groups, virtual_ab) = super::payload_groups(d);
        let sizes: Vec<(String, u64)> = parts
            .iter()
            .map(|p| (p.name.clone(), size_of(&p.name)))
            .collect();
        for (_, _, names) in &groups {
            for n in names {
                logical.push((n.clone(), format!("{n}_a")));
            }
        }
        layout = Some(layout_for_groups(
            &groups,
            &sizes,
            virtual_ab,
            opts.super_size,
        ));
    }
    let mut hashing = Vec::new();
    let mut crcs = Vec::new();
    let maps: Vec<(String, ImageMap)> = logical
        .iter()
        .map(|(n, lp_name)| {
            let p = path_of(n);
            // Scratch: super's writer frees each range it has read.
            let mut src =
                crate::format::source::FileSlice::open_scratch(&p).map_err(|e| Error::io(&p, e))?;
            if opts.hash.contains(n) {
                hashing.push((n.clone(), p, src.hash_ahead()));
            }
            src.crc_as_read();
            crcs.push((n.clone(), src.clone()));
            Ok((lp_name.clone(), ImageMap::raw(src)))
        })
        .collect::<Result<_>>()?;
    // The others are written whole, not freed: hashed now.
    let mut image_hashes = opts
        .hash
        .iter()
        .filter(|n| !logical.iter().any(|(l, _)| l == *n))
        .map(|n| {
            let p = path_of(n);
            let file = std::fs::File::open(&p).map_err(|e| Error::io(&p, e))?;
            let (h, _) = crate::util::hash::sha256_reader(file).map_err(|e| Error::io(&p, e))?;
            Ok((n.clone(), h))
        })
        .collect::<Result<Vec<_>>>()?;
    let images: Vec<(String, PathBuf)> = parts
        .iter()
        .filter(|p| !logical.iter().any(|(n, _)| *n == p.name))
        .map(|p| (p.name.clone(), path_of(&p.name)))
        .collect();
    let mtime = crate::util::time::source_date_epoch()?
        .or(info.timestamp)
        .unwrap_or(ZIP_EPOCH);
    let official = match rom.images() {
        Some(pkg) => from_official(pkg, work)?,
        None => FromOfficial::default(),
    };
    let spec = FastbootSpec {
        device: opts.device.clone(),
        images,
        super_layout: layout,
        logical: maps.iter().map(|(n, m)| (n.clone(), m)).collect(),
        split: opts.split,
        ab,
        mtime,
        disable_verification: opts.disable_verification,
        style: opts.style,
        sparse: official.sparse,
        extra: official.extra,
        official: official.sequences,
        md5sum: official.md5sum,
        anti_var: official.anti_var,
        notes: official.notes,
        dropped: official.dropped,
    };
    let (mut summary, follower) = write_package(&spec, dest, format, jobs, force)?;
    for (n, p, h) in hashing {
        image_hashes.push((n, h.finish().map_err(|e| Error::io(&p, e))?));
    }
    summary.image_hashes = image_hashes;
    summary.image_crcs = crcs
        .into_iter()
        .filter_map(|(n, src)| Some((n, src.read_crc()?)))
        .collect();
    Ok((summary, follower))
}

/// What an input fastboot package hands on to the package written from it.
#[derive(Default)]
struct FromOfficial {
    sparse: BTreeSet<String>,
    extra: Vec<(String, PathBuf)>,
    sequences: Option<(Vec<Step>, Vec<Step>)>,
    md5sum: Option<String>,
    anti_var: Option<String>,
    notes: Vec<String>,
    dropped: Vec<String>,
}

/// Whether an entry (relative to the package root) is written anew rather
/// than carried over: images, scripts, the CRC lists and md5sum.xml.
fn regenerated(rel: &str) -> bool {
    let file = rel.rsplit('/').next().unwrap_or(rel);
    let is_image = rel.starts_with("images/")
        && (file.ends_with(".img")
            || file
                .rsplit_once(".img.")
                .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())));
    let is_script = !rel.contains('/') && (file.ends_with(".sh") || file.ends_with(".bat"));
    is_image
        || is_script
        || rel == "images/crclist.txt"
        || rel == "images/sparsecrclist.txt"
        || file == "md5sum.xml"
}

/// An input fastboot package: its other files (firmware, `misc.txt`,
/// `images/anti_version.txt`, …) copied out of it into `work/passthrough/`,
/// its flash sequences when its scripts can be followed, its lock scripts
/// left out.
fn from_official(pkg: &crate::rom::images::ImagePackage, work: &Path) -> Result<FromOfficial> {
    let mut out = FromOfficial {
        sparse: pkg
            .images
            .iter()
            .enumerate()
            .filter(|(i, img)| img.sparse && pkg.super_image.as_ref().is_none_or(|s| s.image != *i))
            .map(|(_, img)| img.name.clone())
            .collect(),
        ..Default::default()
    };
    if pkg.archive == crate::rom::images::Archive::Bare {
        return Ok(out);
    }
    let root = pkg.root();
    let rels: Vec<&str> = pkg
        .entries
        .iter()
        .filter_map(|e| e.strip_prefix(root.as_str()))
        .filter(|r| !r.is_empty() && !r.ends_with('/'))
        .collect();
    let is_dir = |r: &str| rels.iter().any(|o| o.starts_with(&format!("{r}/")));
    let dir = work.join("passthrough");
    let mut wanted = BTreeMap::new();
    for rel in rels.iter().copied() {
        if is_dir(rel) {
            continue;
        }
        if is_lock_script(rel) {
            out.dropped.push(rel.to_string());
            continue;
        }
        if regenerated(rel) {
            continue;
        }
        let dest = dir.join(rel);
        if let Some(d) = dest.parent() {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        wanted.insert(format!("{root}{rel}"), dest.clone());
        out.extra.push((rel.to_string(), dest));
    }
    pkg.copy_entries(&wanted)?;
    official_checks(pkg, &dir, &mut out)?;
    out.md5sum = pkg
        .text("md5sum.xml")
        .or_else(|| pkg.text("images/md5sum.xml"))
        .map(str::to_string);
    let read = |name: &str| pkg.text(name).map(crate::rom::scripts::read_official);
    match (read("flash_all.sh"), read("flash_all_except_storage.sh")) {
        (Some(Ok(first)), Some(Ok(update))) => {
            for l in first.locks.iter().chain(&update.locks) {
                out.notes.push(format!("left out of the scripts: {l}"));
            }
            out.sequences = Some((first.steps, update.steps));
        }
        (None, _) | (_, None) => out.notes.push(
            "the input has no flash_all.sh and flash_all_except_storage.sh to follow: the scripts are generated".into(),
        ),
        (Some(Err(e)), _) | (_, Some(Err(e))) => out.notes.push(format!(
            "the input's scripts cannot be followed step by step ({}): the scripts are generated",
            e.0
        )),
    }
    Ok(out)
}

/// What the input's own scripts check that the written scripts carry on.
struct ScriptChecks {
    /// The variable the anti-rollback check asks for.
    anti_var: Option<String>,
    /// The anti-rollback version and where it is written, when only the
    /// scripts have it (no `images/anti_version.txt`).
    anti_from_scripts: Option<(String, u32)>,
}

/// Whether an entry at the package root is a lock script (left out).
fn is_lock_script(rel: &str) -> bool {
    !rel.contains('/') && (rel.ends_with(".sh") || rel.ends_with(".bat")) && rel.contains("lock")
}

/// Checks, before any work, that the scripts of an input fastboot package
/// can be carried over with every device check they make (see
/// [`from_rom`]); other inputs pass.
pub fn preflight(rom: &crate::rom::Rom) -> Result<()> {
    match rom.images() {
        Some(pkg) if pkg.archive != crate::rom::images::Archive::Bare => {
            scan_official(pkg).map(|_| ())
        }
        _ => Ok(()),
    }
}

/// The device checks of the input's own scripts (every `.sh` and `.bat` at
/// the package root but the lock scripts): the variable the anti-rollback
/// check asks for, and an anti-rollback version written in the scripts
/// (`CURRENT_ANTI_VER=N`). A check the written scripts cannot make is an
/// error rather than dropped, and so is a package whose scripts and
/// `images/anti_version.txt` disagree on the version.
fn scan_official(pkg: &crate::rom::images::ImagePackage) -> Result<ScriptChecks> {
    let root = pkg.root();
    // As the scripts read it: the digits of the file.
    let digits = |t: &str| {
        t.chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .ok()
    };
    let file = pkg.text("images/anti_version.txt");
    let mut versions: Vec<(String, u32)> = Vec::new();
    if let Some(t) = file {
        let v = digits(t).ok_or_else(|| {
            Error::invalid(
                &pkg.path,
                format!("images/anti_version.txt holds {:?}, not a number", t.trim()),
            )
        })?;
        versions.push(("images/anti_version.txt".into(), v));
    }
    let mut anti_var = None;
    for (name, text) in &pkg.texts {
        let Some(rel) = name.strip_prefix(root.as_str()) else {
            continue;
        };
        let is_script = rel.ends_with(".sh") || rel.ends_with(".bat");
        if !is_script || rel.contains('/') || is_lock_script(rel) {
            continue;
        }
        let c = crate::rom::scripts::read_checks(text);
        if let Some(line) = c.unknown.first() {
            return Err(Error::invalid(
                &pkg.path,
                format!(
                    "{rel} {line}: the input's script checks the device for something romkit's scripts do not check; refusing rather than dropping the check"
                ),
            ));
        }
        anti_var = anti_var.or(c.anti_var);
        if let Some(v) = c.anti_version {
            versions.push((format!("{rel} (CURRENT_ANTI_VER)"), v));
        }
    }
    if let Some((a, va)) = versions.first()
        && let Some((b, vb)) = versions.iter().find(|(_, v)| v != va)
    {
        return Err(Error::invalid(
            &pkg.path,
            format!(
                "the input disagrees with itself on its anti-rollback version: {a} says {va}, {b} says {vb}"
            ),
        ));
    }
    Ok(ScriptChecks {
        anti_var,
        anti_from_scripts: versions.into_iter().next().filter(|_| file.is_none()),
    })
}

/// The device checks of the input's scripts carried over ([`scan_official`]):
/// the anti-rollback variable, and a version only the scripts have written
/// to `images/anti_version.txt` (under `dir`), which the written scripts read.
fn official_checks(
    pkg: &crate::rom::images::ImagePackage,
    dir: &Path,
    out: &mut FromOfficial,
) -> Result<()> {
    let checks = scan_official(pkg)?;
    out.anti_var = checks.anti_var;
    if let Some((from, v)) = checks.anti_from_scripts {
        let rel = "images/anti_version.txt";
        let dest = dir.join(rel);
        if let Some(d) = dest.parent() {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        std::fs::write(&dest, format!("{v}\n")).map_err(|e| Error::io(&dest, e))?;
        out.extra.push((rel.to_string(), dest));
        out.notes.push(format!(
            "anti-rollback version {v} from {from} written to {rel}, which the scripts check"
        ));
    }
    Ok(())
}

/// The super layout for a package that has none yet (an OTA): one group per
/// slot (`GROUP_a`, `GROUP_b`) of the payload's group size, partitions
/// `NAME_a` with their images and empty `NAME_b`, virtual A/B (3 metadata
/// slots) when the payload says snapshots are enabled. The device is the
/// group size plus room for the metadata, unless `device_size` is given.
pub fn layout_for_groups(
    groups: &[super::Group],
    sizes: &[(String, u64)],
    virtual_ab: bool,
    device_size: Option<u64>,
) -> SuperSpec {
    let mut spec = SuperSpec {
        metadata_slots: if virtual_ab { 3 } else { 2 },
        virtual_ab,
        ..Default::default()
    };
    let mut total = 0u64;
    for (g, size, parts) in groups {
        // A group without a size gets exactly what its partitions need.
        let need: u64 = parts
            .iter()
            .filter_map(|p| {
                sizes
                    .iter()
                    .find(|(n, _)| n == p)
                    .map(|x| x.1.div_ceil(4096) * 4096)
            })
            .sum();
        let size = if *size == 0 { need } else { *size };
        total += size;
        for slot in ["_a", "_b"] {
            spec.groups.push((format!("{g}{slot}"), size));
        }
        for p in parts {
            let s = sizes.iter().find(|(n, _)| n == p).map_or(0, |x| x.1);
            spec.partitions.push(lp::PartitionSpec {
                name: format!("{p}_a"),
                group: format!("{g}_a"),
                attributes: lp::ATTR_READONLY,
                size: s,
            });
        }
        for p in parts {
            spec.partitions.push(lp::PartitionSpec {
                name: format!("{p}_b"),
                group: format!("{g}_b"),
                attributes: lp::ATTR_READONLY,
                size: 0,
            });
        }
    }
    // Metadata area rounded to the alignment, plus the groups of one slot
    // (virtual A/B keeps only one slot's partitions in super), plus 1 MiB of
    // alignment slack per partition.
    let nparts = spec.partitions.len() as u64 / 2;
    let slots = if virtual_ab { 1 } else { 2 };
    spec.device_size = device_size
        .unwrap_or(((total * slots + (2 + nparts * slots) * (1 << 20)).div_ceil(1 << 20)) << 20);
    spec
}
