//! The pipeline `romkit build` runs: open any package → verify → decode its
//! partitions → read the app partitions as file trees → plan and apply the
//! debloat profile → rebuild only the changed partitions → package → write
//! the manifest → re-open the output and check every image in it against
//! what was packaged.
//!
//! Everything is staged in a temporary folder beside the output (same
//! filesystem, so the final step is a rename); a failure or an interrupt
//! leaves nothing under the output's final name.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::apps::{self, LoadedPartition};
use crate::debloat::{self, Plan, PlanOptions};
use crate::error::{Error, Result};
use crate::rom::fastboot::{FromRom, PackageFormat};
use crate::rom::{PartInfo, Rom};
use crate::util::hex;

/// What `build` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// A fastboot package (zip; `.tgz` or a folder by the output's name).
    Fastboot,
    /// A full recovery OTA zip with a new payload.bin.
    Ota,
    /// A folder of partition images.
    Images,
}

/// Options of a build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The profile (name or path).
    pub profile: String,
    /// Output kind.
    pub format: OutputFormat,
    /// Check the input's own hashes first (zip CRCs; payload and sparse
    /// hashes are always checked while decoding).
    pub verify: bool,
    /// Allow removing protected packages and paths.
    pub allow_unsafe: bool,
    /// Rules that match nothing fail the build.
    pub strict: bool,
    /// Split the fastboot package's super into parts of at most this size.
    pub split: Option<u64>,
    /// Also write the manifest as YAML.
    pub manifest_yaml: bool,
    /// Replace existing outputs.
    pub force: bool,
    /// Estimate the space the build needs and fail before any work when
    /// the output's filesystem cannot hold it.
    pub space_check: bool,
    /// Worker threads.
    pub jobs: usize,
}

/// What happened to one partition.
#[derive(Clone, Debug, Serialize)]
pub struct PartitionOutcome {
    /// Name.
    pub name: String,
    /// `passthrough` or `rebuilt`.
    pub status: &'static str,
    /// Filesystem, when it has one romkit reads.
    pub filesystem: Option<&'static str>,
    /// Size in the source.
    pub source_size: u64,
    /// Size in the output.
    pub size: u64,
    /// SHA-256 of the output image.
    pub sha256: String,
}

/// Room left in a dynamic partition group or the super device.
#[derive(Clone, Debug, Serialize)]
pub struct Space {
    /// `group NAME` or `super`.
    pub name: String,
    /// Its size (a group's maximum size).
    pub size: u64,
    /// Bytes the output's partitions take in it.
    pub used: u64,
    /// `size - used`.
    pub free: u64,
}

/// Seconds spent in each stage.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StageTimes {
    /// Opening and checking the input.
    pub open_verify: f64,
    /// Decoding the app partitions.
    pub decode: f64,
    /// Decoding and hashing the other partitions the output needs as
    /// images, alongside decode, plan, manifest and rebuild.
    pub decode_other: f64,
    /// Reading trees, identifying apps, planning.
    pub plan: f64,
    /// Applying the plan and writing the changed filesystems.
    pub rebuild: f64,
    /// Hashing every file of the app partitions for the manifest.
    pub manifest: f64,
    /// Writing the package.
    pub package: f64,
    /// Re-opening the output and checking it.
    pub verify_output: f64,
}

/// The result of a build.
#[derive(Debug, Serialize)]
pub struct BuildReport {
    /// The package (or folder) written.
    pub output: PathBuf,
    /// Its manifest.
    pub manifest: PathBuf,
    /// The YAML copy, if asked for.
    pub manifest_yaml: Option<PathBuf>,
    /// The output kind.
    pub format: OutputFormat,
    /// Every partition.
    pub partitions: Vec<PartitionOutcome>,
    /// Apps removed.
    pub removed_apps: usize,
    /// Bytes freed in the file trees.
    pub freed: u64,
    /// build.prop edits made.
    pub prop_edits: usize,
    /// Room left in the dynamic partition groups and super.
    pub space: Vec<Space>,
    /// Warnings (unmatched rules and the like).
    pub warnings: Vec<String>,
    /// Stage timings.
    pub times: StageTimes,
    /// The plan that was applied.
    #[serde(skip)]
    pub plan: Plan,
}

/// `<output>.manifest.json` (and `.yaml`).
pub fn manifest_path(output: &Path, ext: &str) -> PathBuf {
    let mut s = output.as_os_str().to_owned();
    s.push(format!(".manifest.{ext}"));
    PathBuf::from(s)
}

fn sha256_file(path: &Path) -> Result<String> {
    crate::util::hash::sha256_file(path)
        .map(|(h, _)| h)
        .map_err(|e| Error::io(path, e))
}

/// Whether an EROFS image uses compression (superblock incompat features
/// ZERO_PADDING / COMPR_CFGS, which mkfs.erofs sets for compressed images).
fn erofs_compressed(img: &Path) -> bool {
    let mut sb = [0u8; 4];
    let ok = File::open(img).and_then(|f| {
        use std::os::unix::fs::FileExt;
        f.read_exact_at(&mut sb, 1024 + 0x50)
    });
    ok.is_ok() && u32::from_le_bytes(sb) & 0x3 != 0
}

/// Sets the AVB "verification disabled" and "hashtree disabled" flags of a
/// vbmeta image (big-endian `flags` at offset 120 of the header), as
/// `fastboot --disable-verity --disable-verification` does. Returns whether
/// the image was a vbmeta image.
pub fn disable_avb(img: &Path) -> Result<bool> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(img)
        .map_err(|e| Error::io(img, e))?;
    let mut head = [0u8; 128];
    if f.read_exact_at(&mut head, 0).is_err() || &head[..4] != b"AVB0" {
        return Ok(false);
    }
    let flags = u32::from_be_bytes([head[120], head[121], head[122], head[123]]) | 0x3;
    f.write_all_at(&flags.to_be_bytes(), 120)
        .map_err(|e| Error::io(img, e))?;
    Ok(true)
}

/// Runs the whole pipeline.
pub fn build(input: &Path, output: &Path, opts: &BuildOptions) -> Result<BuildReport> {
    let mut times = StageTimes::default();
    // Everything that can be refused is refused before any work.
    let profile = debloat::load(&opts.profile).map_err(|e| Error::Invalid {
        file: PathBuf::from(e.location),
        msg: e.message,
    })?;
    debloat::check_protected(&profile, opts.allow_unsafe).map_err(|e| Error::Invalid {
        file: PathBuf::from(e.location),
        msg: e.message,
    })?;
    let manifest_json = manifest_path(output, "json");
    let manifest_yaml = opts.manifest_yaml.then(|| manifest_path(output, "yaml"));
    crate::output::check_overwrite(output, opts.force)?;
    crate::output::check_overwrite(&manifest_json, opts.force)?;
    if let Some(y) = &manifest_yaml {
        crate::output::check_overwrite(y, opts.force)?;
    }
    let t = Instant::now();
    let rom = Rom::open(input)?;
    if opts.verify && rom.ota_zip().is_some() {
        let bad = crate::rom::ota::OtaZip::check_entry_crcs(input)?;
        if let Some((entry, msg)) = bad.first() {
            return Err(Error::CheckFailed {
                file: input.to_path_buf(),
                msg: format!("zip entry {entry}: {msg}"),
            });
        }
    }
    let info = rom.build_info();
    let device = info
        .device
        .as_deref()
        .and_then(|d| d.split(',').next())
        .map(str::to_string);
    times.open_verify = t.elapsed().as_secs_f64();

    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let work = crate::output::temp_dir_in(&parent, ".romkit-build-")?;
    let img = |n: &str| work.path().join(format!("{n}.img"));

    // Decode the partitions that are needed as images (hashes checked on
    // the way). An OTA from a full payload copies the operations of every
    // partition the profile leaves alone, so only the app partitions (for
    // their trees) and vbmeta (to patch) are decoded; every other output
    // needs every image.
    let t = Instant::now();
    let parts = rom.partitions();
    let copy_from = (opts.format == OutputFormat::Ota)
        .then(|| rom.payload())
        .flatten()
        .filter(|p| !p.is_incremental());
    let decoded: BTreeSet<String> = parts
        .iter()
        .filter(|p| {
            copy_from.is_none_or(|pl| {
                apps::APP_PARTITIONS.contains(&p.name.as_str())
                    || p.name.starts_with("vbmeta")
                    || pl.partition(&p.name).is_none_or(|x| x.hash.is_none())
            })
        })
        .map(|p| p.name.clone())
        .collect();
    if opts.space_check {
        // Decoded images, one rebuilt partition beside its source at a
        // time, and the package (about the input's size; an image folder is
        // renamed from the work folder).
        let decode: u64 = decoded.iter().map(|n| rom.disk_estimate(n)).sum();
        let rebuild = decoded
            .iter()
            .filter(|n| apps::APP_PARTITIONS.contains(&n.as_str()))
            .map(|n| rom.disk_estimate(n))
            .max()
            .unwrap_or(0);
        let package = match opts.format {
            OutputFormat::Images => 0,
            _ => std::fs::metadata(input).map_or(0, |m| m.len()),
        };
        crate::output::ensure_space(
            &parent,
            decode.saturating_add(rebuild).saturating_add(package),
            "the build (decoded images, rebuilt partitions, the package)",
        )?;
    }
    let (app_parts, other_parts): (Vec<&PartInfo>, Vec<&PartInfo>) = parts
        .iter()
        .filter(|p| decoded.contains(&p.name))
        .partition(|p| apps::APP_PARTITIONS.contains(&p.name.as_str()));
    let extract = |list: &[&PartInfo]| -> Result<()> {
        let requests: Vec<(String, PathBuf)> = list
            .iter()
            .map(|p| (p.name.clone(), img(&p.name)))
            .collect();
        rom.extract_partitions(&requests, opts.jobs, false)
            .map(|_| ())
    };
    // The other partitions decode (and hash) while the app partitions are
    // read, planned and rebuilt.
    let (others, main) = rayon::join(
        || -> Result<(f64, Vec<(String, String)>)> {
            let t = Instant::now();
            extract(&other_parts)?;
            let hashes = other_parts
                .par_iter()
                .map(|p| Ok((p.name.clone(), sha256_file(&img(&p.name))?)))
                .collect::<Result<_>>()?;
            Ok((t.elapsed().as_secs_f64(), hashes))
        },
        || -> Result<_> {
            extract(&app_parts)?;
            let decode_time = t.elapsed().as_secs_f64();
            let mut ptimes = StageTimes {
                decode: decode_time,
                ..Default::default()
            };
            // Trees, apps, the plan.
            let t = Instant::now();
            let mut loaded: Vec<LoadedPartition> = Vec::new();
            let mut fs_kind: Vec<(String, &'static str)> = Vec::new();
            for p in &app_parts {
                let path = img(&p.name);
                let kind = crate::fs::sniff(&path).map_err(|e| Error::io(&path, e))?;
                if let Some(k) = kind {
                    fs_kind.push((p.name.clone(), k.name()));
                }
                if !apps::APP_PARTITIONS.contains(&p.name.as_str()) || kind.is_none() {
                    continue;
                }
                let tree = crate::fs::read_tree(&path).map_err(|e| {
                    Error::invalid(
                        format!("{}:{}", input.display(), p.name),
                        e.unwrap_or_default(),
                    )
                })?;
                let files = apps::tree_files(&p.name, &tree);
                loaded.push(LoadedPartition {
                    name: p.name.clone(),
                    tree: Some(tree),
                    files,
                    loose: false,
                });
            }
            let locations: Vec<_> = loaded
                .iter()
                .flat_map(|p| apps::locate(&p.name, &p.files, false))
                .collect();
            let app_list = apps::identify(locations, opts.jobs);
            // An app that cannot be identified is kept: no rule can match it.
            for a in app_list.iter().filter(|a| a.error.is_some()) {
                tracing::warn!(
                    "{}: {}: {}; kept as it is",
                    input.display(),
                    a.apk,
                    a.error.as_deref().unwrap_or_default()
                );
            }
            let plan = debloat::plan(
                &profile,
                &app_list,
                &loaded,
                PlanOptions {
                    allow_unsafe: opts.allow_unsafe,
                },
            );
            if !plan.refused.is_empty() {
                let list: Vec<String> = plan
                    .refused
                    .iter()
                    .map(|m| {
                        format!(
                            "{} ({})",
                            m.path,
                            m.detail.as_deref().unwrap_or("protected")
                        )
                    })
                    .collect();
                return Err(Error::CheckFailed {
                    file: PathBuf::from(&plan.source),
                    msg: format!(
                        "the profile reaches protected items; nothing was built: {}",
                        list.join("; ")
                    ),
                });
            }
            if opts.strict && plan.unmatched > 0 {
                return Err(Error::CheckFailed {
                    file: PathBuf::from(&plan.source),
                    msg: format!(
                        "--strict: {} rule(s) or prop edit(s) match nothing: {}",
                        plan.unmatched,
                        plan.warnings.join("; ")
                    ),
                });
            }
            let mut manifest =
                crate::manifest::Manifest::new(crate::manifest::input_record(input, Some(&rom))?)
                    .created_at(crate::util::time::source_date_epoch()?);
            manifest.set_profile(&profile);
            manifest.add_apps(&app_list, Some(&plan));
            ptimes.plan = t.elapsed().as_secs_f64();

            // Apply and rebuild the touched partitions; record every tree's files.
            let t = Instant::now();
            for lp in loaded.iter_mut() {
                let Some(tree) = lp.tree.as_mut() else {
                    continue;
                };
                if touched_names(&plan).contains(&lp.name) {
                    plan.apply(&lp.name, tree)
                        .map_err(|m| Error::invalid(input, m))?;
                }
                manifest
                    .add_tree(&lp.name, tree)
                    .map_err(|e| Error::io(img(&lp.name), e))?;
            }
            ptimes.manifest = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let touched = touched_names(&plan);
            let build_time = crate::util::time::source_date_epoch()?.or(info.timestamp);
            for lp in loaded.iter_mut().filter(|p| touched.contains(&p.name)) {
                let path = img(&lp.name);
                if fs_kind.iter().any(|(n, k)| *n == lp.name && *k == "ext4") {
                    return Err(Error::invalid(
                        format!("{}:{}", input.display(), lp.name),
                        "the profile changes an ext4 partition; romkit rebuilds EROFS partitions only",
                    ));
                }
                let Some(tree) = lp.tree.as_mut() else {
                    continue;
                };
                let compression =
                    erofs_compressed(&path).then(crate::fs::erofs::writer::Lz4hc::default);
                let wopts = crate::fs::erofs::writer::WriteOptions {
                    build_time,
                    volume_name: Some(lp.name.clone()),
                    compression,
                    jobs: opts.jobs,
                };
                let new_path = work.path().join(format!("{}.rebuilt", lp.name));
                {
                    let mut f = File::create(&new_path).map_err(|e| Error::io(&new_path, e))?;
                    crate::fs::erofs::writer::write(tree, &wopts, &mut f)
                        .map_err(|e| Error::io(&new_path, std::io::Error::other(e.to_string())))?;
                    f.sync_all().map_err(|e| Error::io(&new_path, e))?;
                }
                // The trees read lazily from the old image: drop it only now.
                lp.tree = None;
                std::fs::rename(&new_path, &path).map_err(|e| Error::io(&path, e))?;
            }
            ptimes.rebuild = t.elapsed().as_secs_f64();
            drop(loaded);
            Ok((ptimes, fs_kind, plan, manifest, app_list))
        },
    );
    let (ptimes, mut fs_kind, plan, mut manifest, app_list) = main?;
    let (decode_other, other_hashes) = others?;
    drop(app_list);
    times.decode = ptimes.decode;
    times.decode_other = decode_other;
    times.plan = ptimes.plan;
    times.manifest = ptimes.manifest;
    times.rebuild = ptimes.rebuild;
    let touched = touched_names(&plan);

    // Filesystems of the partitions outside the app set.
    for p in parts
        .iter()
        .filter(|p| !apps::APP_PARTITIONS.contains(&p.name.as_str()))
    {
        let kind = if decoded.contains(&p.name) {
            let path = img(&p.name);
            crate::fs::sniff(&path).map_err(|e| Error::io(&path, e))?
        } else {
            let pl = copy_from.expect("partitions are only left encoded when copying");
            let part = pl.partition(&p.name).expect("listed by the payload");
            let head = pl
                .partition_head(part, 2048)
                .map_err(|e| Error::payload(input, e))?;
            crate::fs::FsKind::from_head(&head)
        };
        if let Some(k) = kind {
            fs_kind.push((p.name.clone(), k.name()));
        }
    }
    // Outputs other than fastboot packages carry vbmeta with verification
    // disabled in its flags (a fastboot package's scripts flash it so).
    let mut patched = BTreeSet::new();
    if opts.format != OutputFormat::Fastboot {
        for p in parts.iter().filter(|p| p.name.starts_with("vbmeta")) {
            if disable_avb(&img(&p.name))? {
                patched.insert(p.name.clone());
            }
        }
    }

    // Hashes of what goes into the package: a partition copied from the
    // payload is the image its new_partition_info.hash names (checked when
    // the output is re-opened below).
    let outcomes: Vec<PartitionOutcome> = parts
        .par_iter()
        .map(|p| {
            let (size, sha256) = if !decoded.contains(&p.name) {
                let part = copy_from
                    .and_then(|pl| pl.partition(&p.name))
                    .expect("only payload partitions with a hash stay encoded");
                (part.size, hex(&part.hash.expect("checked above")))
            } else {
                let path = img(&p.name);
                let size = std::fs::metadata(&path)
                    .map_err(|e| Error::io(&path, e))?
                    .len();
                let known = other_hashes.iter().find(|(n, _)| *n == p.name);
                let sha = match known {
                    Some((_, h)) if !patched.contains(&p.name) => h.clone(),
                    _ => sha256_file(&path)?,
                };
                (size, sha)
            };
            Ok(PartitionOutcome {
                name: p.name.clone(),
                status: if touched.contains(&p.name) {
                    "rebuilt"
                } else if patched.contains(&p.name) {
                    "patched"
                } else {
                    "passthrough"
                },
                filesystem: fs_kind.iter().find(|(n, _)| *n == p.name).map(|x| x.1),
                source_size: p.size,
                size,
                sha256,
            })
        })
        .collect::<Result<_>>()?;

    // Package.
    let t = Instant::now();
    match opts.format {
        OutputFormat::Fastboot => {
            let format = match output.extension().and_then(|e| e.to_str()) {
                Some("tgz") | Some("gz") => PackageFormat::Tgz,
                _ => PackageFormat::Zip,
            };
            let device = device
                .clone()
                .ok_or_else(|| Error::invalid(input, "the package does not name its device"))?;
            crate::rom::fastboot::from_rom(
                &rom,
                work.path(),
                &FromRom {
                    device,
                    split: opts.split,
                    super_size: None,
                    disable_verification: true,
                },
                output,
                format,
                opts.jobs,
                opts.force,
            )?;
        }
        OutputFormat::Ota => {
            let copy: BTreeSet<String> = parts
                .iter()
                .filter(|p| {
                    copy_from.is_some() && !touched.contains(&p.name) && !patched.contains(&p.name)
                })
                .map(|p| p.name.clone())
                .collect();
            write_ota(&rom, work.path(), output, opts, &info, &copy)?
        }
        OutputFormat::Images => {
            let stage = work.path().join("images");
            std::fs::create_dir(&stage).map_err(|e| Error::io(&stage, e))?;
            for p in &parts {
                let to = stage.join(format!("{}.img", p.name));
                std::fs::rename(img(&p.name), &to).map_err(|e| Error::io(&to, e))?;
            }
            if output.exists() && opts.force {
                std::fs::remove_dir_all(output).map_err(|e| Error::io(output, e))?;
            }
            std::fs::rename(&stage, output).map_err(|e| Error::io(output, e))?;
        }
    }
    times.package = t.elapsed().as_secs_f64();

    // Re-open what was written and check every image against what went in.
    let t = Instant::now();
    let check = check_output(output, opts.format, &outcomes, work.path(), opts.jobs);
    if let Err(e) = check {
        remove_output(output, opts.format);
        return Err(e);
    }
    times.verify_output = t.elapsed().as_secs_f64();

    for o in &outcomes {
        manifest.add_partition(crate::manifest::PartitionRecord {
            filesystem: o.filesystem.map(str::to_string),
            name: o.name.clone(),
            sha256: o.sha256.clone(),
            size: o.size,
            status: match o.status {
                "rebuilt" => crate::manifest::PartitionStatus::Rebuilt,
                "patched" => crate::manifest::PartitionStatus::Patched,
                _ => crate::manifest::PartitionStatus::Passthrough,
            },
        });
    }
    if opts.format == OutputFormat::Images {
        for o in &outcomes {
            let f = output.join(format!("{}.img", o.name));
            manifest.add_output(&f).map_err(|e| Error::io(&f, e))?;
        }
    } else {
        manifest
            .add_output(output)
            .map_err(|e| Error::io(output, e))?;
    }
    let written = (|| -> Result<()> {
        let mut f = crate::output::AtomicFile::create(&manifest_json, opts.force)?;
        std::io::Write::write_all(f.file_mut(), &manifest.to_json())
            .map_err(|e| Error::io(&manifest_json, e))?;
        f.commit()?;
        if let Some(y) = &manifest_yaml {
            let mut f = crate::output::AtomicFile::create(y, opts.force)?;
            std::io::Write::write_all(f.file_mut(), manifest.to_yaml().as_bytes())
                .map_err(|e| Error::io(y, e))?;
            f.commit()?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        remove_output(output, opts.format);
        let _ = std::fs::remove_file(&manifest_json);
        return Err(e);
    }

    let removed_apps = plan.removed.iter().filter(|r| r.package.is_some()).count();
    let space = space_report(&rom, &outcomes);
    Ok(BuildReport {
        output: output.to_path_buf(),
        manifest: manifest_json,
        manifest_yaml,
        format: opts.format,
        partitions: outcomes,
        removed_apps,
        freed: plan.freed_total,
        prop_edits: plan.props.len(),
        space,
        warnings: plan.warnings.clone(),
        times,
        plan,
    })
}

/// Sizes of the dynamic partition groups (and the super device, for a
/// package that has one) against what the output's partitions take.
fn space_report(rom: &Rom, outcomes: &[PartitionOutcome]) -> Vec<Space> {
    let size_of = |n: &str| outcomes.iter().find(|o| o.name == n).map_or(0, |o| o.size);
    let space = |name: String, size: u64, used: u64| Space {
        name,
        size,
        used,
        free: size.saturating_sub(used),
    };
    let mut out = Vec::new();
    if let Some(d) = rom
        .payload()
        .and_then(|p| p.manifest.dynamic_partition_metadata.as_ref())
    {
        for g in &d.groups {
            let size = g.size.unwrap_or(0);
            if size > 0 {
                let used = g.partition_names.iter().map(|n| size_of(n)).sum();
                let name = g.name.as_deref().unwrap_or("main");
                out.push(space(format!("group {name}"), size, used));
            }
        }
    } else if let Some(s) = rom.images().and_then(|p| p.super_image.as_ref()) {
        let parts = rom.partitions();
        let lp_of = |n: &str| {
            parts
                .iter()
                .find(|p| p.lp_name.as_deref() == Some(n))
                .map_or(0, |p| size_of(&p.name))
        };
        let meta = &s.metadata;
        for (gi, g) in meta.groups.iter().enumerate() {
            if g.maximum_size == 0 {
                continue;
            }
            let used = meta
                .partitions
                .iter()
                .filter(|p| p.group as usize == gi)
                .map(|p| lp_of(&p.name))
                .sum();
            out.push(space(format!("group {}", g.name), g.maximum_size, used));
        }
        if let Some(dev) = meta.block_devices.first() {
            let used = meta
                .partitions
                .iter()
                .map(|p| lp_of(&p.name))
                .sum::<u64>()
                .saturating_add(dev.first_logical_sector.saturating_mul(512));
            out.push(space("super".into(), dev.size, used));
        }
    }
    out
}

/// The partitions a plan changes.
fn touched_names(plan: &Plan) -> BTreeSet<String> {
    plan.removed
        .iter()
        .map(|r| r.partition.clone())
        .chain(plan.props.iter().map(|c| c.partition.clone()))
        .collect()
}

fn remove_output(output: &Path, format: OutputFormat) {
    let _ = if format == OutputFormat::Images {
        std::fs::remove_dir_all(output)
    } else {
        std::fs::remove_file(output)
    };
}

/// A full OTA: a new payload from every image, the source's metadata.
fn write_ota(
    rom: &Rom,
    work: &Path,
    output: &Path,
    opts: &BuildOptions,
    info: &crate::rom::BuildInfo,
    copy: &BTreeSet<String>,
) -> Result<()> {
    use crate::format::payload::writer::{
        ImageInput, PayloadInput, WriteOptions, prepare_payload_from,
    };
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
        .map(|i| match rom.payload() {
            Some(payload) if copy.contains(&i.name) => PayloadInput::Copy {
                payload,
                partition: &i.name,
            },
            _ => PayloadInput::Image(i),
        })
        .collect();
    let image_size = |n: &str| -> Option<u64> {
        if copy.contains(n) {
            rom.payload()?.partition(n).map(|p| p.size)
        } else {
            std::fs::metadata(work.join(format!("{n}.img")))
                .ok()
                .map(|m| m.len())
        }
    };
    let mut wopts = WriteOptions {
        jobs: opts.jobs,
        max_timestamp: info.timestamp,
        security_patch_level: info.security_patch.clone(),
        ..Default::default()
    };
    if let Some(d) = rom
        .payload()
        .and_then(|p| p.manifest.dynamic_partition_metadata.as_ref())
    {
        wopts.groups = d
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
        wopts.snapshot_enabled = d.snapshot_enabled.unwrap_or(false);
    } else {
        // From a fastboot package: the logical partitions form one group.
        let logical: Vec<String> = parts
            .iter()
            .filter(|p| p.lp_name.is_some())
            .map(|p| p.name.clone())
            .collect();
        if !logical.is_empty() {
            let size = logical
                .iter()
                .filter_map(|n| std::fs::metadata(work.join(format!("{n}.img"))).ok())
                .map(|m| m.len())
                .sum();
            wopts.groups = vec![("main".into(), size, logical)];
        }
    }
    // The group must hold the rebuilt partitions: report, then fail clearly.
    for (g, size, names) in &wopts.groups {
        let need: u64 = names.iter().filter_map(|n| image_size(n)).sum();
        if *size > 0 && need > *size {
            return Err(Error::invalid(
                output,
                format!("partitions of group {g} need {need} bytes, more than its {size}"),
            ));
        }
    }
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let scratch = crate::output::scratch_file(parent)?;
    let mut prepared = prepare_payload_from(&inputs, &wopts, scratch, parent)?;
    let metadata = match rom.ota_zip() {
        Some(z) => z.metadata.clone(),
        None => {
            let mut m = std::collections::BTreeMap::new();
            m.insert("ota-type".to_string(), "AB".to_string());
            if let Some(d) = &info.device {
                m.insert("pre-device".to_string(), d.clone());
            }
            if let Some(t) = info.timestamp {
                m.insert("post-timestamp".to_string(), t.to_string());
            }
            m
        }
    };
    let when = crate::util::time::source_date_epoch()?
        .or(info.timestamp)
        .unwrap_or(315_532_800);
    let mtime = zip_time(when);
    crate::rom::ota::write_ota_zip(output, &mut prepared, &metadata, mtime, opts.force)?;
    Ok(())
}

use crate::util::time::zip_time;

/// Re-opens the output and compares every partition image in it with what
/// was packaged.
fn check_output(
    output: &Path,
    format: OutputFormat,
    expected: &[PartitionOutcome],
    work: &Path,
    jobs: usize,
) -> Result<()> {
    let fail = |msg: String| Error::CheckFailed {
        file: output.to_path_buf(),
        msg,
    };
    let got: Vec<(String, String)> = if format == OutputFormat::Images {
        expected
            .par_iter()
            .map(|p| {
                let f = output.join(format!("{}.img", p.name));
                Ok((p.name.clone(), sha256_file(&f)?))
            })
            .collect::<Result<_>>()?
    } else {
        let rom = Rom::open(output)?;
        let dir = work.join("check");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let names: Vec<String> = rom.partitions().into_iter().map(|p| p.name).collect();
        let requests: Vec<(String, PathBuf)> = names
            .iter()
            .map(|n| (n.clone(), dir.join(format!("{n}.img"))))
            .collect();
        rom.extract_partitions(&requests, jobs, false)?;
        requests
            .par_iter()
            .map(|(n, p)| {
                let h = sha256_file(p)?;
                let _ = std::fs::remove_file(p);
                Ok((n.clone(), h))
            })
            .collect::<Result<Vec<_>>>()?
    };
    for e in expected {
        match got.iter().find(|(n, _)| *n == e.name) {
            None => {
                return Err(fail(format!(
                    "partition {} is missing from the output",
                    e.name
                )));
            }
            Some((_, h)) if *h != e.sha256 => {
                return Err(fail(format!(
                    "partition {} reads back as sha256 {h}, but {} was packaged",
                    e.name, e.sha256
                )));
            }
            _ => {}
        }
    }
    if got.len() != expected.len() {
        return Err(fail(format!(
            "the output has {} partitions, {} were packaged",
            got.len(),
            expected.len()
        )));
    }
    Ok(())
}
