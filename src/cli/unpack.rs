//! `romkit unpack ROM -o DIR`: partition images, in parallel, checked.

use std::fmt::Write;
use std::path::PathBuf;

use super::progress::Bars;
use super::{Ctx, emit, emit_json, human_size};
use crate::error::{Error, Result};
use crate::rom::Rom;
use crate::rom::unpack::{Checked, UnpackOptions, Written, unpack_image_files};

/// Arguments of `unpack`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The package (any kind romkit reads), or a filesystem image
    /// `PARTITION.img` whose files to extract.
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
    /// The previous build, for an incremental ROM: a full package, a folder
    /// of PARTITION.img images or one PARTITION.img.
    #[arg(long, value_name = "BASE")]
    pub source: Option<PathBuf>,
    /// Apply this incremental package next (repeatable, in order): ROM is
    /// then the base, and each package's source hashes are checked against
    /// the previous step's images.
    #[arg(long = "apply", value_name = "INC")]
    pub apply: Vec<PathBuf>,
}

/// The base and the incremental steps of `ROM [--source BASE] [--apply INC]...`,
/// or `None` when nothing is applied.
pub(super) fn chain(
    rom: &std::path::Path,
    source: Option<&std::path::Path>,
    apply: &[PathBuf],
) -> Result<Option<(PathBuf, Vec<Rom>)>> {
    let (base, steps): (PathBuf, Vec<&std::path::Path>) = match source {
        Some(s) => (
            s.to_path_buf(),
            std::iter::once(rom)
                .chain(apply.iter().map(PathBuf::as_path))
                .collect(),
        ),
        None if apply.is_empty() => return Ok(None),
        None => (
            rom.to_path_buf(),
            apply.iter().map(PathBuf::as_path).collect(),
        ),
    };
    let steps = steps
        .into_iter()
        .map(Rom::open)
        .collect::<Result<Vec<_>>>()?;
    Ok(Some((base, steps)))
}

/// Runs `unpack`.
pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    if crate::fs::sniff(&args.rom)
        .map_err(|e| Error::io(&args.rom, e))?
        .is_some()
    {
        let (name, stats) = unpack_image_files(&args.rom, &args.output, args.force, ctx.jobs)?;
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
    let opts = UnpackOptions {
        output: &args.output,
        partitions: &args.partitions,
        verify: !args.no_verify,
        force: args.force,
        files: args.files,
        space_check: !args.no_space_check,
        jobs: ctx.jobs,
        source: None,
    };
    let (bars, written) = match chain(&args.rom, args.source.as_deref(), &args.apply)? {
        Some((base, steps)) => {
            let last = steps.last().expect("a chain has a step");
            let have = last.partition_names();
            let names: Vec<String> = args
                .partitions
                .iter()
                .filter(|n| have.contains(n))
                .cloned()
                .collect();
            let bars = Bars::new(
                ctx.progress,
                &if names.is_empty() && !args.partitions.is_empty() {
                    Vec::new()
                } else {
                    last.select(&names)?
                },
            );
            let written = crate::rom::incremental::unpack_chain(&base, &steps, &opts, &bars);
            (bars, written)
        }
        None => {
            let rom = Rom::open(&args.rom)?;
            let bars = Bars::new(
                ctx.progress && rom.payload().is_some(),
                &rom.select(&args.partitions)?,
            );
            let written = rom.unpack(&opts, &bars);
            (bars, written)
        }
    };
    bars.finish();
    let written = written?;
    if ctx.json {
        emit_json(&written)?;
    } else {
        emit(&render(&written))?;
    }
    Ok(0)
}

fn render(written: &[Written]) -> String {
    let mut s = String::new();
    let w = written
        .iter()
        .map(|x| x.partition.len())
        .max()
        .unwrap_or(4)
        .max(9);
    for x in written {
        let status = match x.checked {
            Checked::Verified => "verified",
            Checked::NoHash => "no hash ",
            Checked::Unchecked => "unchecked",
            Checked::Checksums => "checked ",
            Checked::Unchanged => "unchanged",
        };
        let _ = writeln!(
            s,
            "{:<w$}  {:>10}  {status}  {}",
            x.partition,
            human_size(x.size),
            x.path.display()
        );
    }
    s
}
