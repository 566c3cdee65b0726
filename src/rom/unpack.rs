//! `unpack` as a library call: partition images of any package kind written
//! to a folder, every hash checked, and with `files` each filesystem's tree
//! beside them with its sidecars.
//!
//! Invariants: nothing is created before every name is checked (unknown
//! partitions, incremental payloads, existing outputs without `force`); an
//! image appears under its final name only when complete and checked; a run
//! that fails removes every image and tree it wrote.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Rom;
use super::incremental::SourceImages;
use crate::error::{Error, Result};
use crate::format::input_pages::InputPages;
use crate::format::payload::PayloadError;
use crate::format::payload::extract::{self, Job, OutputFile, Progress};
use crate::fs::extract::ExtractStats;
use crate::output::{AtomicFile, check_overwrite};
use crate::util::hex;

/// What `unpack` is asked to do.
pub struct UnpackOptions<'a> {
    /// The output folder (created if missing).
    pub output: &'a Path,
    /// Only these partitions (all when empty).
    pub partitions: &'a [String],
    /// Check every hash while decoding.
    pub verify: bool,
    /// Replace existing outputs.
    pub force: bool,
    /// Also extract each filesystem's files with their sidecars.
    pub files: bool,
    /// Estimate the space needed before writing.
    pub space_check: bool,
    /// Worker threads.
    pub jobs: usize,
    /// The previous build's partition images, for an incremental payload.
    pub source: Option<&'a SourceImages>,
}

/// How far an image written by `unpack` was checked.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Checked {
    /// Its SHA-256 equals the one the payload records.
    Verified,
    /// Every operation was checked, but the payload records no image hash.
    NoHash,
    /// Checks were turned off.
    Unchecked,
    /// The package's own checksums (sparse CRCs, LP checksums) were checked.
    Checksums,
    /// Copied unchanged from the source (a partition a partial update leaves alone).
    Unchanged,
}

/// One image `unpack` wrote.
#[derive(Serialize, Debug)]
pub struct Written {
    /// The partition.
    pub partition: String,
    /// The image file.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// Its SHA-256, when computed while decoding.
    pub sha256: Option<String>,
    /// Whether its hash matched the payload's.
    pub verified: bool,
    /// How far it was checked.
    #[serde(skip)]
    pub checked: Checked,
    /// Its files, when asked for and the image holds a filesystem romkit reads.
    pub files: Option<ExtractStats>,
}

impl Rom {
    /// The partitions `unpack` would write for `names` (all when empty), in
    /// package order, with their sizes; a usage error names an unknown one.
    pub fn select(&self, names: &[String]) -> Result<Vec<(String, u64)>> {
        let parts = self.partitions();
        if names.is_empty() {
            return Ok(parts.into_iter().map(|p| (p.name, p.size)).collect());
        }
        let mut v: Vec<(String, u64)> = Vec::new();
        for n in names {
            let p = parts
                .iter()
                .find(|p| p.name == *n || p.lp_name.as_deref() == Some(n))
                .ok_or_else(|| self.unknown_partition(n))?;
            if !v.iter().any(|(x, _)| x == n) {
                v.push((n.clone(), p.size));
            }
        }
        Ok(v)
    }

    /// Writes the selected partitions' images (and trees) to the output
    /// folder; `progress` hears of every decoded byte of a payload.
    pub fn unpack(
        &self,
        opts: &UnpackOptions<'_>,
        progress: &dyn Progress,
    ) -> Result<Vec<Written>> {
        let (selected, carried) = self.select_with_source(opts.partitions, opts.source)?;
        if let Some(p) = self.payload()
            && opts.source.is_none()
        {
            for (name, _) in &selected {
                refuse_incremental(self, p, name)?;
            }
        }
        let requests: Vec<(String, PathBuf)> = selected
            .iter()
            .map(|(n, _)| (n.clone(), opts.output.join(format!("{n}.img"))))
            .collect();
        let carried: Vec<(String, PathBuf, PathBuf)> = carried
            .into_iter()
            .map(|(n, src)| {
                let d = opts.output.join(format!("{n}.img"));
                (n, src, d)
            })
            .collect();
        let all_dests = requests
            .iter()
            .map(|(n, d)| (n, d))
            .chain(carried.iter().map(|(n, _, d)| (n, d)));
        for (n, d) in all_dests {
            check_overwrite(d, opts.force)?;
            if opts.files {
                check_overwrite(&opts.output.join(n), opts.force)?;
            }
        }
        std::fs::create_dir_all(opts.output).map_err(|e| Error::io(opts.output, e))?;
        if opts.space_check {
            let images: u64 = requests
                .iter()
                .map(|(n, _)| self.disk_estimate(n))
                .sum::<u64>()
                + carried
                    .iter()
                    .map(|(_, s, _)| std::fs::metadata(s).map_or(0, |m| m.len()))
                    .sum::<u64>();
            let need = if opts.files {
                images.saturating_mul(2)
            } else {
                images
            };
            crate::output::ensure_space(opts.output, need, "the partition images")?;
        }
        let mut written = match self.payload() {
            Some(p) => self.unpack_payload(
                p,
                &requests,
                PayloadRun {
                    verify: opts.verify,
                    direct_io: true,
                    force: opts.force,
                    jobs: opts.jobs,
                    source: opts.source,
                    pages: None,
                },
                progress,
            )?,
            None => self.unpack_images(&requests, opts)?,
        };
        if let Err(e) = copy_unchanged(&carried, opts.force, &mut written) {
            for w in &written {
                let _ = std::fs::remove_file(&w.path);
            }
            return Err(e);
        }
        if opts.files {
            extract_trees(&mut written, opts)?;
        }
        Ok(written)
    }

    /// The payload partitions to decode for `names` (all when empty) and,
    /// for a partial update applied to `source`, the source images of the
    /// partitions it leaves alone (copied unchanged).
    pub fn select_with_source(
        &self,
        names: &[String],
        source: Option<&SourceImages>,
    ) -> Result<(Vec<(String, u64)>, Carried)> {
        let partial = self
            .payload()
            .is_some_and(|p| p.manifest.partial_update == Some(true));
        let Some(source) = source.filter(|_| partial) else {
            return Ok((self.select(names)?, Vec::new()));
        };
        let here = self.partition_names();
        let carried: Vec<(String, PathBuf)> = source
            .iter()
            .filter(|(n, _)| !here.contains(n) && (names.is_empty() || names.contains(n)))
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect();
        let wanted: Vec<String> = names
            .iter()
            .filter(|n| !carried.iter().any(|(c, _)| c == *n))
            .cloned()
            .collect();
        let selected = if wanted.is_empty() && !names.is_empty() {
            Vec::new()
        } else {
            self.select(&wanted)?
        };
        Ok((selected, carried))
    }

    /// Decodes payload partitions (name, destination) in one parallel run;
    /// with a source, checks it first (nothing is created when it is wrong).
    pub(super) fn unpack_payload(
        &self,
        p: &crate::format::payload::Payload,
        requests: &[(String, PathBuf)],
        run: PayloadRun<'_>,
        progress: &dyn Progress,
    ) -> Result<Vec<Written>> {
        let PayloadRun {
            verify,
            direct_io,
            force,
            jobs,
            source,
            pages,
        } = run;
        let selected = requests
            .iter()
            .map(|(n, _)| self.partition_index(n))
            .collect::<Result<Vec<usize>>>()?;
        let sources = match source {
            Some(images) => {
                let sources = super::incremental::open_sources(p, &selected, images)?;
                let errors = crate::format::payload::delta::check_sources(
                    p, &selected, &sources, jobs, true,
                );
                if let Some(e) = errors.into_iter().next() {
                    return Err(Error::payload(p.source.path(), e));
                }
                sources
            }
            None => Vec::new(),
        };
        let mut files = Vec::with_capacity(requests.len());
        for ((_, d), &i) in requests.iter().zip(&selected) {
            let f = AtomicFile::create(d, force)?;
            f.file()
                .set_len(p.partitions[i].size)
                .map_err(|e| Error::io(f.tmp_path(), e))?;
            files.push(f);
        }
        let outputs = files
            .iter()
            .map(|f| {
                f.file()
                    .try_clone()
                    .map(|c| OutputFile::new(c, f.tmp_path().to_path_buf(), direct_io))
                    .map_err(|e| Error::io(f.tmp_path(), e))
            })
            .collect::<Result<Vec<_>>>()?;
        let outcome = extract::run(
            &Job {
                payload: p,
                partitions: selected,
                outputs: Some(outputs),
                verify,
                fail_fast: true,
                jobs,
                sources,
                pages,
            },
            progress,
        );
        if let Some(e) = outcome.failures.into_iter().next() {
            // `files` drop here: every temporary image is removed.
            return Err(Error::payload(p.source.path(), e));
        }
        let mut written = Vec::with_capacity(files.len());
        for (f, po) in files.into_iter().zip(&outcome.partitions) {
            let path = f.commit()?;
            let verified =
                verify && po.expected_hash.is_some() && po.actual_hash == po.expected_hash;
            written.push(Written {
                partition: po.name.clone(),
                path,
                size: po.size,
                sha256: po.actual_hash.map(|h| hex(&h)),
                verified,
                checked: match (verified, verify) {
                    (true, _) => Checked::Verified,
                    (false, true) => Checked::NoHash,
                    (false, false) => Checked::Unchecked,
                },
                files: None,
            });
        }
        Ok(written)
    }

    fn unpack_images(
        &self,
        requests: &[(String, PathBuf)],
        opts: &UnpackOptions<'_>,
    ) -> Result<Vec<Written>> {
        let sizes = self.extract_partitions(requests, opts.jobs, opts.force)?;
        Ok(requests
            .iter()
            .zip(sizes)
            .map(|((n, d), size)| Written {
                partition: n.clone(),
                path: d.clone(),
                size,
                sha256: None,
                verified: opts.verify,
                checked: Checked::Checksums,
                files: None,
            })
            .collect())
    }
}

/// Partitions copied unchanged from the source: (name, source image).
pub type Carried = Vec<(String, PathBuf)>;

/// How [`Rom::unpack_payload`] runs.
#[derive(Clone, Copy)]
pub(super) struct PayloadRun<'a> {
    pub verify: bool,
    /// Write the images with direct I/O where the filesystem allows: for
    /// images nobody reads back at once (see [`OutputFile`]).
    pub direct_io: bool,
    pub force: bool,
    pub jobs: usize,
    pub source: Option<&'a SourceImages>,
    /// The input's pages to report each operation's read to.
    pub pages: Option<&'a InputPages>,
}

/// Copies the images a partial update leaves alone (name, source,
/// destination), appending them to `written`.
fn copy_unchanged(
    carried: &[(String, PathBuf, PathBuf)],
    force: bool,
    written: &mut Vec<Written>,
) -> Result<()> {
    let mut files = Vec::with_capacity(carried.len());
    for (n, src, d) in carried {
        let mut f = AtomicFile::create(d, force)?;
        let mut input = std::fs::File::open(src).map_err(|e| Error::io(src, e))?;
        let size =
            std::io::copy(&mut input, f.file_mut()).map_err(|e| Error::io(f.tmp_path(), e))?;
        files.push((n, f, size));
    }
    for (n, f, size) in files {
        let path = f.commit()?;
        written.push(Written {
            partition: n.clone(),
            path,
            size,
            sha256: None,
            verified: false,
            checked: Checked::Unchanged,
            files: None,
        });
    }
    Ok(())
}

pub(super) fn refuse_incremental(
    rom: &Rom,
    p: &crate::format::payload::Payload,
    name: &str,
) -> Result<()> {
    let Some(part) = p.partition(name) else {
        return Ok(());
    };
    match part.first_incremental_op() {
        Some(op) => Err(Error::payload(
            rom.path.clone(),
            PayloadError::Incremental {
                partition: part.name.clone(),
                index: op.index,
                kind: op.kind_name(),
            },
        )),
        None => Ok(()),
    }
}

/// Extracts the trees of the written images. A tree that cannot be
/// extracted fails the whole run: the images and trees written go too.
fn extract_trees(written: &mut [Written], opts: &UnpackOptions<'_>) -> Result<()> {
    for i in 0..written.len() {
        let w = &written[i];
        match extract_files(opts.output, &w.partition, &w.path, opts.force, opts.jobs) {
            Ok(stats) => written[i].files = stats,
            Err(e) => {
                for w in written.iter() {
                    let _ = std::fs::remove_file(&w.path);
                    if w.files.is_some() {
                        remove_tree(&opts.output.join(&w.partition));
                        for kind in ["fs_config", "file_contexts"] {
                            let _ = std::fs::remove_file(
                                opts.output
                                    .join("config")
                                    .join(format!("{}_{kind}", w.partition)),
                            );
                        }
                    }
                }
                let _ = std::fs::remove_dir(opts.output.join("config"));
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The files of a bare filesystem image `PARTITION.img` into
/// `out/PARTITION/` with its sidecars.
pub fn unpack_image_files(
    image: &Path,
    out: &Path,
    force: bool,
    jobs: usize,
) -> Result<(String, Option<ExtractStats>)> {
    let name = image
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| crate::format::payload::is_safe_partition_name(s))
        .ok_or_else(|| Error::Usage(format!("{}: name the image PARTITION.img", image.display())))?
        .to_string();
    check_overwrite(&out.join(&name), force)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let stats = extract_files(out, &name, image, force, jobs)?;
    Ok((name, stats))
}

/// Extracts the files of a filesystem image to `out/NAME/` with its sidecars;
/// `None` when the image holds no filesystem romkit reads.
fn extract_files(
    out: &Path,
    name: &str,
    image: &Path,
    force: bool,
    jobs: usize,
) -> Result<Option<ExtractStats>> {
    use crate::fs::{extract, sidecar};
    let tree = match crate::fs::read_tree(image) {
        Ok(t) => t,
        Err(None) => return Ok(None),
        Err(Some(msg)) => return Err(Error::invalid(image, msg)),
    };
    let dest = out.join(name);
    let tmp = out.join(format!(".{name}.romkit-{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let stats = match extract::write_tree(&tree, &tmp, jobs) {
        Ok(s) => s,
        Err(e) => {
            remove_tree(&tmp);
            return Err(Error::invalid(image, format!("extracting files: {e}")));
        }
    };
    let config = out.join("config");
    std::fs::create_dir_all(&config).map_err(|e| Error::io(&config, e))?;
    for (file, text) in [
        (format!("{name}_fs_config"), sidecar::fs_config(&tree, name)),
        (
            format!("{name}_file_contexts"),
            sidecar::file_contexts(&tree, name),
        ),
    ] {
        let mut f = AtomicFile::create(&config.join(file), force)?;
        std::io::Write::write_all(f.file_mut(), text.as_bytes())
            .map_err(|e| Error::io(f.tmp_path(), e))?;
        f.commit()?;
    }
    if force && std::fs::symlink_metadata(&dest).is_ok() {
        remove_tree(&dest);
    }
    std::fs::rename(&tmp, &dest).map_err(|e| {
        remove_tree(&tmp);
        Error::io(&dest, e)
    })?;
    Ok(Some(stats))
}

/// Removes an extracted tree, making read-only folders writable first.
fn remove_tree(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fn walk(p: &Path) {
        if let Ok(md) = std::fs::symlink_metadata(p)
            && md.is_dir()
        {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    walk(&e.path());
                }
            }
        }
    }
    walk(path);
    let _ = std::fs::remove_dir_all(path);
}
