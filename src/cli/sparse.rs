//! `romkit sparse RAW -o OUT [--split SIZE]` and `romkit unsparse PART… -o OUT`:
//! convert between raw and Android sparse images.

use std::path::PathBuf;

use serde::Serialize;

use super::{Ctx, emit, emit_json, human_size};
use crate::error::{Error, Result};
use crate::format::image::{CopyTask, ImageMap, copy_all};
use crate::format::sparse;
use crate::util::size::parse_size;

/// Arguments of `sparse`.
#[derive(clap::Args, Debug)]
pub struct SparseArgs {
    /// A raw image.
    pub image: PathBuf,
    /// The sparse image to write (with --split: OUT.0, OUT.1, …).
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Split into files of at most SIZE bytes (K/M/G suffixes), each a sparse
    /// image over the whole image, as xiaomi.eu ships super.
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub split: Option<u64>,
    /// Overwrite existing outputs.
    #[arg(short, long)]
    pub force: bool,
}

/// Arguments of `unsparse`.
#[derive(clap::Args, Debug)]
pub struct UnsparseArgs {
    /// A sparse image, or all the sparse parts of one image (merged, not concatenated).
    #[arg(required = true)]
    pub parts: Vec<PathBuf>,
    /// The raw image to write.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Overwrite an existing output.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Serialize)]
struct Written {
    path: PathBuf,
    size: u64,
    chunks: Option<u32>,
}

/// Runs `sparse`.
pub fn run_sparse(ctx: &Ctx, args: SparseArgs) -> Result<u8> {
    let opts = sparse::SparseOptions {
        block_size: 4096,
        split: args.split,
    };
    let (paths, parts) =
        crate::package::sparse_out::sparse_raw_file(&args.image, &args.output, &opts, args.force)?;
    let rows: Vec<Written> = paths
        .into_iter()
        .zip(parts)
        .map(|(path, p)| Written {
            path,
            size: p.size,
            chunks: Some(p.chunks),
        })
        .collect();
    report(ctx, &rows)
}

/// Runs `unsparse`.
pub fn run_unsparse(ctx: &Ctx, args: UnsparseArgs) -> Result<u8> {
    let refs: Vec<&std::path::Path> = args.parts.iter().map(PathBuf::as_path).collect();
    let map = ImageMap::open_files(&refs)?;
    if !map.is_sparse() {
        return Err(Error::invalid(
            &args.parts[0],
            "is not an Android sparse image",
        ));
    }
    for (k, s) in map.sparse.iter().enumerate() {
        if s.has_checksums() {
            s.check_crcs()
                .map_err(|e| Error::sparse(&args.parts[k], e))?;
        }
    }
    let out = crate::output::AtomicFile::create(&args.output, args.force)?;
    out.file()
        .set_len(map.size)
        .map_err(|e| Error::io(out.tmp_path(), e))?;
    copy_all(
        &[CopyTask {
            map: &map,
            off: 0,
            len: map.size,
            dest: 0,
            dest_off: 0,
        }],
        &[out.file()],
        ctx.jobs,
    )
    .map_err(|e| Error::io(out.tmp_path(), e))?;
    let path = out.commit()?;
    report(
        ctx,
        &[Written {
            path,
            size: map.size,
            chunks: None,
        }],
    )
}

fn report(ctx: &Ctx, rows: &[Written]) -> Result<u8> {
    if ctx.json {
        emit_json(&rows)?;
    } else {
        let s: String = rows
            .iter()
            .map(|r| format!("{}  {}\n", human_size(r.size), r.path.display()))
            .collect();
        emit(&s)?;
    }
    Ok(0)
}
