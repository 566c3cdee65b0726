//! `romkit unpack ROM -o DIR`: partition images, in parallel, checked.

use std::fmt::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::progress::Bars;
use super::{Ctx, emit, emit_json, human_size};
use crate::error::{Error, Result};
use crate::format::payload::PayloadError;
use crate::format::payload::extract::{self, Job, OutputFile};
use crate::output::{AtomicFile, check_overwrite};
use crate::rom::Rom;
use crate::util::hex;

/// Arguments of `unpack`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The package (OTA zip or payload.bin).
    pub rom: PathBuf,
    /// Output folder (created if missing).
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Only these partitions (comma-separated names).
    #[arg(short, long, value_delimiter = ',', value_name = "A,B")]
    pub partitions: Vec<String>,
    /// Skip the per-operation and per-partition hash checks.
    #[arg(long)]
    pub no_verify: bool,
    /// Overwrite existing images.
    #[arg(short, long)]
    pub force: bool,
    /// Also extract each filesystem's files to DIR/PARTITION/, with
    /// DIR/config/PARTITION_fs_config and DIR/config/PARTITION_file_contexts.
    #[arg(long)]
    pub files: bool,
    /// Skip the free-space estimate made before writing (a disk that fills
    /// up still fails cleanly, exit 4).
    #[arg(long)]
    pub no_space_check: bool,
}

#[derive(Serialize)]
struct Written {
    partition: String,
    path: PathBuf,
    size: u64,
    sha256: Option<String>,
    verified: bool,
    files: Option<crate::fs::extract::ExtractStats>,
}

/// Runs `unpack`.
pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    // A bare filesystem image: its files.
    if crate::fs::sniff(&args.rom)
        .map_err(|e| Error::io(&args.rom, e))?
        .is_some()
    {
        let name = args
            .rom
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| crate::format::payload::is_safe_partition_name(s))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{}: name the image PARTITION.img",
                    args.rom.display()
                ))
            })?
            .to_string();
        check_overwrite(&args.output.join(&name), args.force)?;
        std::fs::create_dir_all(&args.output).map_err(|e| Error::io(&args.output, e))?;
        let stats = extract_files(&args.output, &name, &args.rom, args.force, ctx.jobs)?;
        if ctx.json {
            emit_json(&stats)?;
        } else if let Some(s) = stats {
            emit(&format!(
                "{name}: {} files ({} bytes), {} directories, {} symlinks, {} hard links, {} special files recorded\n",
                s.files, s.bytes, s.dirs, s.symlinks, s.hardlinks, s.recorded
            ))?;
        }
        return Ok(0);
    }
    let rom = Rom::open(&args.rom)?;
    let Some(p) = rom.payload() else {
        return run_images(ctx, &args, &rom);
    };
    let selected: Vec<usize> = if args.partitions.is_empty() {
        (0..p.partitions.len()).collect()
    } else {
        let mut v = Vec::new();
        for name in &args.partitions {
            let idx = rom.partition_index(name)?;
            if !v.contains(&idx) {
                v.push(idx);
            }
        }
        v
    };
    // Refuse incremental payloads before creating anything.
    for &i in &selected {
        if let Some(op) = p.partitions[i].first_incremental_op() {
            return Err(Error::payload(
                rom.path.clone(),
                PayloadError::Incremental {
                    partition: p.partitions[i].name.clone(),
                    index: op.index,
                    kind: op.kind_name(),
                },
            ));
        }
    }
    let dests: Vec<PathBuf> = selected
        .iter()
        .map(|&i| args.output.join(format!("{}.img", p.partitions[i].name)))
        .collect();
    for d in &dests {
        check_overwrite(d, args.force)?;
    }
    if args.files {
        for &i in &selected {
            let name = &p.partitions[i].name;
            check_overwrite(&args.output.join(name), args.force)?;
        }
    }
    std::fs::create_dir_all(&args.output).map_err(|e| Error::io(&args.output, e))?;
    preflight(
        &args,
        &rom,
        selected.iter().map(|&i| p.partitions[i].name.as_str()),
    )?;
    let mut files = Vec::with_capacity(dests.len());
    for (d, &i) in dests.iter().zip(&selected) {
        let f = AtomicFile::create(d, args.force)?;
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
                .map(|c| OutputFile::new(c, f.tmp_path().to_path_buf()))
                .map_err(|e| Error::io(f.tmp_path(), e))
        })
        .collect::<Result<Vec<_>>>()?;
    let bars = Bars::new(
        ctx.progress,
        &selected
            .iter()
            .map(|&i| (p.partitions[i].name.clone(), p.partitions[i].size))
            .collect::<Vec<_>>(),
    );
    let verify = !args.no_verify;
    let outcome = extract::run(
        &Job {
            payload: p,
            partitions: selected.clone(),
            outputs: Some(outputs),
            verify,
            fail_fast: true,
            jobs: ctx.jobs,
        },
        &bars,
    );
    bars.finish();
    if let Some(e) = outcome.failures.into_iter().next() {
        // `files` drop here: every temporary image is removed.
        return Err(Error::payload(p.source.path(), e));
    }
    let mut written = Vec::with_capacity(files.len());
    for (f, po) in files.into_iter().zip(&outcome.partitions) {
        let path = f.commit()?;
        written.push(Written {
            partition: po.name.clone(),
            path,
            size: po.size,
            sha256: po.actual_hash.map(|h| hex(&h)),
            verified: verify && po.expected_hash.is_some() && po.actual_hash == po.expected_hash,
            files: None,
        });
    }
    report(ctx, &args, written, |x| {
        if x.verified {
            "verified"
        } else if verify {
            "no hash "
        } else {
            "unchecked"
        }
    })
}

/// Fails early (exit 4) when the output folder cannot hold the images (and,
/// with `--files`, about as much again for the trees).
fn preflight<'a>(args: &Args, rom: &Rom, names: impl Iterator<Item = &'a str>) -> Result<()> {
    if args.no_space_check {
        return Ok(());
    }
    let images: u64 = names.map(|n| rom.disk_estimate(n)).sum();
    let need = if args.files {
        images.saturating_mul(2)
    } else {
        images
    };
    crate::output::ensure_space(&args.output, need, "the partition images")
}

/// Extracts files when asked, then prints what was written.
fn report(
    ctx: &Ctx,
    args: &Args,
    mut written: Vec<Written>,
    status: impl Fn(&Written) -> &'static str,
) -> Result<u8> {
    if args.files {
        for i in 0..written.len() {
            let w = &written[i];
            match extract_files(&args.output, &w.partition, &w.path, args.force, ctx.jobs) {
                Ok(stats) => written[i].files = stats,
                Err(e) => {
                    // A tree that cannot be extracted fails the whole run:
                    // the images and trees written by this run go too.
                    for w in &written {
                        let _ = std::fs::remove_file(&w.path);
                        if w.files.is_some() {
                            let _ = std::fs::remove_dir_all(args.output.join(&w.partition));
                            for kind in ["fs_config", "file_contexts"] {
                                let _ = std::fs::remove_file(
                                    args.output
                                        .join("config")
                                        .join(format!("{}_{kind}", w.partition)),
                                );
                            }
                        }
                    }
                    let _ = std::fs::remove_dir(args.output.join("config"));
                    return Err(e);
                }
            }
        }
    }
    if ctx.json {
        emit_json(&written)?;
    } else {
        let mut s = String::new();
        let w = written
            .iter()
            .map(|x| x.partition.len())
            .max()
            .unwrap_or(4)
            .max(9);
        for x in &written {
            let _ = writeln!(
                s,
                "{:<w$}  {:>10}  {}  {}",
                x.partition,
                human_size(x.size),
                status(x),
                x.path.display()
            );
        }
        emit(&s)?;
    }
    Ok(0)
}

/// `unpack` for packages of images (fastboot, super, sparse, block OTA).
fn run_images(ctx: &Ctx, args: &Args, rom: &Rom) -> Result<u8> {
    let parts = rom.partitions();
    let mut names: Vec<String> = Vec::new();
    if args.partitions.is_empty() {
        names.extend(parts.iter().map(|p| p.name.clone()));
    } else {
        for n in &args.partitions {
            if !parts
                .iter()
                .any(|p| p.name == *n || p.lp_name.as_deref() == Some(n))
            {
                return Err(Error::Usage(format!(
                    "partition {n:?} is not in {} (it has: {})",
                    rom.path.display(),
                    parts
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    let requests: Vec<(String, PathBuf)> = names
        .iter()
        .map(|n| (n.clone(), args.output.join(format!("{n}.img"))))
        .collect();
    for (n, d) in &requests {
        check_overwrite(d, args.force)?;
        if args.files {
            check_overwrite(&args.output.join(n), args.force)?;
        }
    }
    std::fs::create_dir_all(&args.output).map_err(|e| Error::io(&args.output, e))?;
    preflight(args, rom, requests.iter().map(|(n, _)| n.as_str()))?;
    let sizes = rom.extract_partitions(&requests, ctx.jobs, args.force)?;
    let written: Vec<Written> = requests
        .iter()
        .zip(sizes)
        .map(|((n, d), size)| Written {
            partition: n.clone(),
            path: d.clone(),
            size,
            sha256: None,
            verified: !args.no_verify,
            files: None,
        })
        .collect();
    report(ctx, args, written, |_| "checked ")
}

/// Extracts the files of a filesystem image to `out/NAME/` with its sidecars;
/// `None` when the image holds no filesystem romkit reads.
fn extract_files(
    out: &std::path::Path,
    name: &str,
    image: &std::path::Path,
    force: bool,
    jobs: usize,
) -> Result<Option<crate::fs::extract::ExtractStats>> {
    use crate::fs::{extract, sidecar};
    let tree = match crate::fs::read_tree(image) {
        Ok(t) => t,
        Err(None) => return Ok(None),
        Err(Some(msg)) => return Err(Error::invalid(image, msg)),
    };
    let dest = out.join(name);
    let tmp = out.join(format!(".{name}.romkit-{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let stats = match extract::extract(&tree, &tmp, jobs) {
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
fn remove_tree(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    fn walk(p: &std::path::Path) {
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
