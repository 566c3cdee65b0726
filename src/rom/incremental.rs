//! Incremental packages applied to a base build: `--source BASE` and
//! `--apply` chains, for `unpack` and `verify`.
//!
//! A base is a full package (decoded, every hash checked, into a temporary
//! folder beside the output), a folder of `PARTITION.img` images, or one bare
//! image named `PARTITION.img`. Each step of a chain is an OTA package whose
//! payload is applied to the images of the step before: its
//! `old_partition_info` and `src_sha256_hash` values are checked against them
//! before anything is written, so a chain whose step does not start from the
//! previous result stops there (exit 1) and leaves nothing behind.
//! Intermediate results live in tracked temporary folders, removed when the
//! next step is done, when the run fails or when a signal ends it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Rom;
use super::unpack::{UnpackOptions, Written};
use super::verify::{Check, CheckKind, Status, VerifyOptions, VerifyReport};
use crate::error::{Error, Result};
use crate::format::payload::Payload;
use crate::format::payload::extract::{NoProgress, Progress};
use crate::format::source::FileSlice;
use crate::output::{TempDir, temp_dir_in};

/// The previous build's partition images, by partition name.
pub type SourceImages = BTreeMap<String, PathBuf>;

/// A base build's images, and the temporary folder holding them when they
/// were decoded from a package.
#[derive(Debug)]
pub struct Base {
    /// The images.
    pub images: SourceImages,
    /// What the base was (`full package`, `folder`, `image`), for messages.
    pub kind: &'static str,
    _tmp: Option<TempDir>,
}

/// Opens the source image of each selected payload partition
/// (`p.partitions[selected[i]]`); `None` where the base has none.
pub fn open_sources(
    p: &Payload,
    selected: &[usize],
    images: &SourceImages,
) -> Result<Vec<Option<FileSlice>>> {
    selected
        .iter()
        .map(|&i| match images.get(&p.partitions[i].name) {
            Some(path) => FileSlice::open(path)
                .map(Some)
                .map_err(|e| Error::io(path, e)),
            None => Ok(None),
        })
        .collect()
}

/// Resolves a base: a folder of images, a bare image or a full package. A
/// package's partitions (`names`, all when empty) are decoded into a
/// temporary folder in `tmp_parent`.
pub fn resolve_base(path: &Path, tmp_parent: &Path, names: &[String], jobs: usize) -> Result<Base> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        let mut images = SourceImages::new();
        let rd = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
        for e in rd {
            let e = e.map_err(|e| Error::io(path, e))?;
            let p = e.path();
            if let Some(name) = image_name(&p)
                && p.is_file()
            {
                images.insert(name, p);
            }
        }
        if images.is_empty() {
            return Err(Error::Usage(format!(
                "{}: no PARTITION.img images in this folder",
                path.display()
            )));
        }
        return Ok(Base {
            images,
            kind: "folder",
            _tmp: None,
        });
    }
    let head = crate::util::magic::read_head(path).map_err(|e| Error::io(path, e))?;
    if super::sniff_bytes(&head).is_err() {
        let name = image_name(path).ok_or_else(|| {
            Error::Usage(format!(
                "{}: a bare source image must be named PARTITION.img",
                path.display()
            ))
        })?;
        return Ok(Base {
            images: [(name, path.to_path_buf())].into(),
            kind: "image",
            _tmp: None,
        });
    }
    let rom = Rom::open(path)?;
    if rom.payload().is_some_and(|p| p.is_incremental()) {
        return Err(Error::Usage(format!(
            "{} is itself an incremental package; start from the full package it applies to (FULL --apply INC)",
            path.display()
        )));
    }
    let wanted: Vec<String> = if names.is_empty() {
        Vec::new()
    } else {
        let have = rom.partition_names();
        names.iter().filter(|n| have.contains(n)).cloned().collect()
    };
    let tmp = temp_dir_in(tmp_parent, ".romkit-base-")?;
    if wanted.is_empty() && !names.is_empty() {
        return Ok(Base {
            images: SourceImages::new(),
            kind: "full package",
            _tmp: Some(tmp),
        });
    }
    let written = unpack_checked(&rom, tmp.path(), &wanted, jobs, None)?;
    Ok(Base {
        images: images_of(&written),
        kind: "full package",
        _tmp: Some(tmp),
    })
}

/// Unpacks the `wanted` partitions of `rom` into `output` as images, every
/// hash checked, applied to `source` when `rom` is incremental.
fn unpack_checked(
    rom: &Rom,
    output: &Path,
    wanted: &[String],
    jobs: usize,
    source: Option<&SourceImages>,
) -> Result<Vec<Written>> {
    rom.unpack(
        &UnpackOptions {
            output,
            partitions: wanted,
            verify: true,
            force: false,
            files: false,
            space_check: true,
            jobs,
            source,
        },
        &NoProgress,
    )
}

fn image_name(p: &Path) -> Option<String> {
    if p.extension()? != "img" {
        return None;
    }
    let stem = p.file_stem()?.to_str()?;
    crate::format::payload::is_safe_partition_name(stem).then(|| stem.to_string())
}

fn images_of(written: &[Written]) -> SourceImages {
    written
        .iter()
        .map(|w| (w.partition.clone(), w.path.clone()))
        .collect()
}

/// Checks that every step is a payload package.
fn check_steps(steps: &[Rom]) -> Result<()> {
    if steps.is_empty() {
        return Err(Error::Usage("no incremental package to apply".into()));
    }
    steps.iter().try_for_each(check_step)
}

fn check_step(s: &Rom) -> Result<()> {
    if s.payload().is_none() {
        return Err(Error::Usage(format!(
            "{}: only OTA packages with a payload.bin can be applied to a base",
            s.path.display()
        )));
    }
    Ok(())
}

/// Applies every step but the last to `base`, each into a temporary folder
/// in `tmp_parent`; returns the images the last step starts from and the
/// folder holding them.
fn apply_all_but_last(
    base: &Base,
    steps: &[Rom],
    tmp_parent: &Path,
    names: &[String],
    jobs: usize,
) -> Result<(SourceImages, Option<TempDir>)> {
    apply_steps(base, &steps[..steps.len() - 1], tmp_parent, names, jobs)
}

/// Applies `steps` to `base`, each into a temporary folder in
/// `tmp_parent`; returns the last images and the folder holding them.
fn apply_steps(
    base: &Base,
    steps: &[Rom],
    tmp_parent: &Path,
    names: &[String],
    jobs: usize,
) -> Result<(SourceImages, Option<TempDir>)> {
    let mut current = base.images.clone();
    let mut held: Option<TempDir> = None;
    for step in steps {
        let tmp = temp_dir_in(tmp_parent, ".romkit-step-")?;
        let wanted: Vec<String> = names
            .iter()
            .filter(|n| step.partition_names().contains(n) || current.contains_key(*n))
            .cloned()
            .collect();
        let written = unpack_checked(step, tmp.path(), &wanted, jobs, Some(&current))?;
        current = images_of(&written);
        // The previous step's folder goes now that its images were used.
        held = Some(tmp);
    }
    Ok((current, held))
}

/// `unpack` of a chain: `base` with every step of `steps` applied in order;
/// the last step's images (and trees) are written as `opts` says.
pub fn unpack_chain(
    base: &Path,
    steps: &[Rom],
    opts: &UnpackOptions<'_>,
    progress: &dyn Progress,
) -> Result<Vec<Written>> {
    check_steps(steps)?;
    std::fs::create_dir_all(opts.output).map_err(|e| Error::io(opts.output, e))?;
    let last = &steps[steps.len() - 1];
    // Refuse existing outputs before the long work.
    for n in last.partition_names() {
        if opts.partitions.is_empty() || opts.partitions.contains(&n) {
            crate::output::check_overwrite(&opts.output.join(format!("{n}.img")), opts.force)?;
        }
    }
    let base = resolve_base(base, opts.output, opts.partitions, opts.jobs)?;
    let (images, _held) =
        apply_all_but_last(&base, steps, opts.output, opts.partitions, opts.jobs)?;
    last.unpack(
        &UnpackOptions {
            source: Some(&images),
            ..*opts
        },
        progress,
    )
}

/// `verify` of a chain: `base` with every step but the last applied in
/// temporary folders, then every check of the last step, its partitions
/// rebuilt in memory from the images before it.
pub fn verify_chain(base: &Path, steps: &[Rom], opts: &VerifyOptions<'_>) -> Result<VerifyReport> {
    check_steps(steps)?;
    let tmp_parent = std::env::temp_dir();
    let base_res = resolve_base(base, &tmp_parent, &[], opts.jobs)?;
    let (images, _held) = apply_all_but_last(&base_res, steps, &tmp_parent, &[], opts.jobs)?;
    let last = &steps[steps.len() - 1];
    let mut report = last.verify(&VerifyOptions {
        source: Some(&images),
        ..*opts
    })?;
    let mut detail = format!(
        "{} ({}, {} images)",
        base.display(),
        base_res.kind,
        base_res.images.len()
    );
    for s in &steps[..steps.len() - 1] {
        detail.push_str(&format!(
            ", then {} (applied, every hash matched)",
            s.path.display()
        ));
    }
    report.checks.insert(
        0,
        Check {
            check: "source".into(),
            kind: CheckKind::Integrity,
            status: Status::Ok,
            detail,
        },
    );
    Ok(report)
}

/// The images the last step of a chain applies to, and the temporary
/// folders holding them (removed when this is dropped).
#[derive(Debug)]
pub struct Prepared {
    /// The images, by partition name.
    pub images: SourceImages,
    /// What the base was, for messages.
    pub base_kind: &'static str,
    _base: Base,
    _held: Option<TempDir>,
}

/// Resolves `base` and applies the steps `before` `last`, in temporary
/// folders in `tmp_parent`: the images `last`'s payload applies to (see
/// [`Rom::source_images`]). Every step must be a payload package; a partial
/// update as `last` is refused, since the partitions it leaves alone would
/// be missing from its partition list.
pub fn prepare(
    base: &Path,
    before: &[Rom],
    last: &Rom,
    tmp_parent: &Path,
    jobs: usize,
) -> Result<Prepared> {
    before.iter().chain([last]).try_for_each(check_step)?;
    if last
        .payload()
        .is_some_and(|p| p.manifest.partial_update == Some(true))
    {
        return Err(Error::Usage(format!(
            "{} is a partial update: unpack it with --source, then build from the full package",
            last.path.display()
        )));
    }
    let base_res = resolve_base(base, tmp_parent, &[], jobs)?;
    let (images, held) = apply_steps(&base_res, before, tmp_parent, &[], jobs)?;
    Ok(Prepared {
        images,
        base_kind: base_res.kind,
        _base: base_res,
        _held: held,
    })
}
