//! Writing fastboot packages (what `rom::images` reads): `images/` with the other images passed through
//! byte for byte and a rebuilt sparse `super.img` (optionally split into
//! `super.img.0 … N`, each a sparse image over the whole super, flashed one
//! after the other), plus install scripts for Linux/macOS (`.sh`) and
//! Windows (`.bat`): `flash_all` for a first install (erases user data) and
//! `flash_all_except_storage` for an update (keeps it). Like the official
//! scripts, each first checks `fastboot getvar product` against the device
//! codename and flashes nothing on a mismatch.
//!
//! The package is assembled in a temporary folder beside the destination and
//! then renamed (folder output) or archived into a zip (images stored, so
//! that they can be read in place) or a `.tgz`, written atomically. Entry
//! order, names, modes and times are fixed, so equal inputs give equal bytes.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::image::ImageMap;
use crate::format::lp::{self, SuperSpec};
use crate::format::sparse;
use crate::util::time::{ZIP_EPOCH, zip_time};

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
}

/// What was written.
#[derive(Clone, Debug, Serialize)]
pub struct FastbootSummary {
    /// The package.
    pub path: PathBuf,
    /// Files in it (relative paths), in order.
    pub files: Vec<String>,
    /// The super image's parts.
    pub super_parts: usize,
}

fn lp_err(dest: &Path, msg: String) -> Error {
    Error::invalid(dest, msg)
}

/// Writes the fastboot package `spec` at `dest` in `format`.
pub fn write_package(
    spec: &FastbootSpec<'_>,
    dest: &Path,
    format: PackageFormat,
    jobs: usize,
    force: bool,
) -> Result<FastbootSummary> {
    let _ = jobs;
    if !crate::format::payload::is_safe_partition_name(&spec.device) {
        return Err(Error::Usage(format!(
            "device codename {:?} is not usable",
            spec.device
        )));
    }
    crate::output::check_overwrite(dest, force)?;
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let stage = crate::output::temp_dir_in(parent, ".romkit-fastboot-")?;
    let root = stage.path().join("pkg");
    let images_dir = root.join("images");
    std::fs::create_dir_all(&images_dir).map_err(|e| Error::io(&images_dir, e))?;
    let mut files: Vec<String> = Vec::new();
    let mut flash: Vec<(String, String)> = Vec::new();
    let mut names: Vec<&(String, PathBuf)> = spec.images.iter().collect();
    names.sort_by_key(|(n, _)| (n.starts_with("vbmeta"), n.clone()));
    for (name, src) in &names {
        if !crate::format::payload::is_safe_partition_name(name) || name == "super" {
            return Err(Error::Usage(format!(
                "image name {name:?} is not usable here"
            )));
        }
        let rel = format!("images/{name}.img");
        let to = root.join(&rel);
        if std::fs::hard_link(src, &to).is_err() {
            std::fs::copy(src, &to).map_err(|e| Error::io(src, e))?;
        }
        files.push(rel.clone());
        flash.push((name.clone(), rel));
    }
    let mut super_parts = 0;
    if let Some(layout) = &spec.super_layout {
        let m = layout
            .build()
            .map_err(|msg| lp_err(dest, msg.to_string()))?;
        let opts = sparse::SparseOptions {
            block_size: 4096,
            split: spec.split,
        };
        let written = super::super_image::write_super(
            &m,
            &spec.logical,
            &images_dir.join("super.img"),
            Some(&opts),
            true,
        )?;
        super_parts = written.len();
        let mut parts = Vec::new();
        for (i, _) in written.iter().enumerate() {
            let rel = if spec.split.is_some() {
                format!("images/super.img.{i}")
            } else {
                "images/super.img".to_string()
            };
            parts.push(rel);
        }
        // Super goes before vbmeta, after the other images.
        let at = flash
            .iter()
            .position(|(n, _)| n.starts_with("vbmeta"))
            .unwrap_or(flash.len());
        for (k, rel) in parts.iter().enumerate() {
            flash.insert(at + k, ("super".into(), rel.clone()));
        }
        files.extend(parts);
    }
    files.sort();
    let scripts = [
        ("flash_all.sh", script_sh(spec, &flash, true)),
        (
            "flash_all_except_storage.sh",
            script_sh(spec, &flash, false),
        ),
        ("flash_all.bat", script_bat(spec, &flash, true)),
        (
            "flash_all_except_storage.bat",
            script_bat(spec, &flash, false),
        ),
    ];
    for (name, text) in &scripts {
        let p = root.join(name);
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
        files.push(name.to_string());
    }
    let all = files.clone();
    match format {
        PackageFormat::Dir => {
            if force && std::fs::symlink_metadata(dest).is_ok() {
                std::fs::remove_dir_all(dest).map_err(|e| Error::io(dest, e))?;
            }
            std::fs::rename(&root, dest).map_err(|e| Error::io(dest, e))?;
        }
        PackageFormat::Zip => write_zip(&root, &all, dest, spec.mtime, force)?,
        PackageFormat::Tgz => write_tgz(&root, &all, dest, spec.mtime, force)?,
    }
    Ok(FastbootSummary {
        path: dest.to_path_buf(),
        files: all,
        super_parts,
    })
}

fn flash_target(spec: &FastbootSpec<'_>, name: &str) -> String {
    if spec.ab && name != "super" {
        format!("{name}_ab")
    } else {
        name.to_string()
    }
}

/// fastboot options for flashing `name`: vbmeta images go with verity and
/// verification disabled when the package's images were rebuilt.
fn avb_flags(spec: &FastbootSpec<'_>, name: &str) -> &'static str {
    if spec.disable_verification && name.starts_with("vbmeta") {
        "--disable-verity --disable-verification "
    } else {
        ""
    }
}

fn script_sh(spec: &FastbootSpec<'_>, flash: &[(String, String)], wipe: bool) -> String {
    let d = &spec.device;
    let mut s = String::new();
    s.push_str("#!/bin/sh\n");
    s.push_str(if wipe {
        "# First install: flashes every image and ERASES user data.\n"
    } else {
        "# Update: flashes every image and keeps user data.\n"
    });
    s.push_str("# Usage: sh flash_all.sh [-s SERIAL]\n");
    s.push_str("cd \"$(dirname \"$0\")\" || exit 1\n");
    s.push_str(&format!(
        "if ! fastboot $* getvar product 2>&1 | grep -q \"^product: *{d} *$\"; then\n  echo \"This package is for {d}; the connected device is not (fastboot getvar product). Nothing was flashed.\"\n  exit 1\nfi\n"
    ));
    for (name, rel) in flash {
        let t = flash_target(spec, name);
        let avb = avb_flags(spec, name);
        s.push_str(&format!(
            "fastboot $* {avb}flash {t} {rel} || {{ echo \"Flashing {t} failed\"; exit 1; }}\n"
        ));
    }
    if wipe {
        s.push_str("fastboot $* erase userdata || { echo \"Erasing userdata failed\"; exit 1; }\n");
        s.push_str("fastboot $* erase metadata || { echo \"Erasing metadata failed\"; exit 1; }\n");
    }
    if spec.ab {
        s.push_str(
            "fastboot $* set_active a || { echo \"Setting slot a active failed\"; exit 1; }\n",
        );
    }
    s.push_str("fastboot $* reboot\n");
    s
}

fn script_bat(spec: &FastbootSpec<'_>, flash: &[(String, String)], wipe: bool) -> String {
    let d = &spec.device;
    let mut s = String::new();
    s.push_str("@echo off\r\n");
    s.push_str(if wipe {
        "rem First install: flashes every image and ERASES user data.\r\n"
    } else {
        "rem Update: flashes every image and keeps user data.\r\n"
    });
    s.push_str("cd /d \"%~dp0\"\r\n");
    s.push_str(&format!(
        "fastboot %* getvar product 2>&1 | findstr /r /c:\"^product: *{d} *$\" >nul || (echo This package is for {d}; the connected device is not. Nothing was flashed. & exit /B 1)\r\n"
    ));
    for (name, rel) in flash {
        let t = flash_target(spec, name);
        let rel = rel.replace('/', "\\");
        let avb = avb_flags(spec, name);
        s.push_str(&format!(
            "fastboot %* {avb}flash {t} {rel} || (echo Flashing {t} failed & exit /B 1)\r\n"
        ));
    }
    if wipe {
        s.push_str("fastboot %* erase userdata || (echo Erasing userdata failed & exit /B 1)\r\n");
        s.push_str("fastboot %* erase metadata || (echo Erasing metadata failed & exit /B 1)\r\n");
    }
    if spec.ab {
        s.push_str(
            "fastboot %* set_active a || (echo Setting slot a active failed & exit /B 1)\r\n",
        );
    }
    s.push_str("fastboot %* reboot\r\n");
    s
}

fn mode_of(rel: &str) -> u32 {
    if rel.ends_with(".sh") { 0o755 } else { 0o644 }
}

fn write_zip(root: &Path, files: &[String], dest: &Path, mtime: i64, force: bool) -> Result<()> {
    use zip::write::SimpleFileOptions;
    let mut out = crate::output::AtomicFile::create(dest, force)?;
    let tmp = out.tmp_path().to_path_buf();
    let zerr = |e: zip::result::ZipError| match e {
        zip::result::ZipError::Io(io) => Error::io(&tmp, io),
        other => Error::io(&tmp, io::Error::other(other)),
    };
    {
        let w = io::BufWriter::with_capacity(1 << 20, out.file_mut());
        let mut zw = zip::ZipWriter::new(w);
        let base = SimpleFileOptions::default().last_modified_time(zip_time(mtime));
        zw.add_directory("images/", base.unix_permissions(0o755))
            .map_err(zerr)?;
        for rel in files {
            let p = root.join(rel);
            let len = std::fs::metadata(&p).map_err(|e| Error::io(&p, e))?.len();
            let opts = if rel.starts_with("images/") {
                base.compression_method(zip::CompressionMethod::Stored)
                    .with_android_alignment(4096)
                    .large_file(len >= u32::MAX as u64)
            } else {
                base.compression_method(zip::CompressionMethod::Deflated)
            };
            zw.start_file(rel.as_str(), opts.unix_permissions(mode_of(rel)))
                .map_err(zerr)?;
            let mut f = File::open(&p).map_err(|e| Error::io(&p, e))?;
            io::copy(&mut f, &mut zw).map_err(|e| Error::io(&tmp, e))?;
        }
        let mut w = zw.finish().map_err(zerr)?;
        w.flush().map_err(|e| Error::io(&tmp, e))?;
    }
    out.commit()?;
    Ok(())
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
}

/// Writes a fastboot package for `rom` from its partition images, already
/// in `work` as `NAME.img` (edited ones may differ in size from the
/// source's: the super layout is sized from the files).
#[allow(clippy::too_many_arguments)]
pub fn from_rom(
    rom: &crate::rom::Rom,
    work: &Path,
    opts: &FromRom,
    dest: &Path,
    format: PackageFormat,
    jobs: usize,
    force: bool,
) -> Result<FastbootSummary> {
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
    let maps: Vec<(String, ImageMap)> = logical
        .iter()
        .map(|(n, lp_name)| {
            let p = path_of(n);
            let src = crate::format::source::FileSlice::open(&p).map_err(|e| Error::io(&p, e))?;
            Ok((lp_name.clone(), ImageMap::raw(src)))
        })
        .collect::<Result<_>>()?;
    let images: Vec<(String, PathBuf)> = parts
        .iter()
        .filter(|p| !logical.iter().any(|(n, _)| *n == p.name))
        .map(|p| (p.name.clone(), path_of(&p.name)))
        .collect();
    let mtime = crate::util::time::source_date_epoch()?
        .or(info.timestamp)
        .unwrap_or(ZIP_EPOCH);
    let spec = FastbootSpec {
        device: opts.device.clone(),
        images,
        super_layout: layout,
        logical: maps.iter().map(|(n, m)| (n.clone(), m)).collect(),
        split: opts.split,
        ab,
        mtime,
        disable_verification: opts.disable_verification,
    };
    write_package(&spec, dest, format, jobs, force)
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
