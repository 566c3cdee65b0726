//! `romkit pack DIR -o IMAGE`: an EROFS image from an extracted tree and its
//! sidecars (the reverse of `unpack --files`).

use std::path::PathBuf;

use super::{Ctx, emit, emit_json};
use crate::error::{Error, Result};
use crate::fs::erofs::writer::{ErofsOptions, Lz4hc, write};
use crate::fs::extract::read_dir_tree;
use crate::output::AtomicFile;

/// Arguments of `pack`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The extracted partition folder (e.g. out/system).
    pub dir: PathBuf,
    /// The image to write.
    #[arg(short, long, value_name = "IMAGE")]
    pub output: PathBuf,
    /// Partition name used in the sidecars (default: the folder's name).
    #[arg(long)]
    pub mount: Option<String>,
    /// fs_config sidecar (default: DIR/../config/NAME_fs_config).
    #[arg(long, value_name = "FILE")]
    pub fs_config: Option<PathBuf>,
    /// file_contexts sidecar (default: DIR/../config/NAME_file_contexts).
    #[arg(long, value_name = "FILE")]
    pub file_contexts: Option<PathBuf>,
    /// Compression like mkfs.erofs: `lz4hc`, `lz4hc,LEVEL` or `none`.
    #[arg(short = 'z', long, default_value = "lz4hc,9")]
    pub compress: String,
    /// Largest physical cluster in bytes (like mkfs.erofs -C).
    #[arg(short = 'C', long, default_value_t = 4096)]
    pub cluster: u32,
    /// Overwrite IMAGE.
    #[arg(short, long)]
    pub force: bool,
}

fn parse_compress(s: &str, cluster: u32) -> Result<Option<Lz4hc>> {
    let (alg, level) = s.split_once(',').map_or((s, None), |(a, l)| (a, Some(l)));
    match alg {
        "none" => Ok(None),
        "lz4hc" => {
            let level = match level {
                None => 9,
                Some(l) => l
                    .parse()
                    .ok()
                    .filter(|l| (3..=12).contains(l))
                    .ok_or_else(|| Error::Usage(format!("LZ4HC level {l:?} must be 3-12")))?,
            };
            if cluster == 0 || !cluster.is_multiple_of(4096) || cluster > 1 << 20 {
                return Err(Error::Usage(format!(
                    "-C {cluster}: the cluster size must be a multiple of 4096 up to 1048576"
                )));
            }
            Ok(Some(Lz4hc {
                level,
                pcluster: cluster,
            }))
        }
        other => Err(Error::Usage(format!(
            "unknown compressor {other:?} (use lz4hc, lz4hc,LEVEL or none)"
        ))),
    }
}

/// Runs `pack`.
pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let compression = parse_compress(&args.compress, args.cluster)?;
    let mount = match &args.mount {
        Some(m) => m.clone(),
        None => args
            .dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{}: cannot tell the partition name; pass --mount",
                    args.dir.display()
                ))
            })?
            .to_string(),
    };
    let config_dir = args
        .dir
        .parent()
        .map(|p| p.join("config"))
        .unwrap_or_else(|| PathBuf::from("config"));
    let fs_config = args
        .fs_config
        .clone()
        .unwrap_or_else(|| config_dir.join(format!("{mount}_fs_config")));
    let file_contexts = args
        .file_contexts
        .clone()
        .unwrap_or_else(|| config_dir.join(format!("{mount}_file_contexts")));
    let read = |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| Error::io(p, e));
    let fixed_time = crate::util::time::source_date_epoch()?;
    let tree = read_dir_tree(
        &args.dir,
        &mount,
        &read(&fs_config)?,
        &read(&file_contexts)?,
        fixed_time,
    )
    .map_err(|e| Error::invalid(&args.dir, e.to_string()))?;
    let mut out = AtomicFile::create(&args.output, args.force)?;
    let opts = ErofsOptions {
        build_time: fixed_time,
        volume_name: Some(mount.clone()),
        compression,
        jobs: ctx.jobs,
    };
    let tmp = out.tmp_path().to_path_buf();
    let stats = write(&tree, &opts, out.file_mut()).map_err(|e| e.into_error(&tmp, &args.dir))?;
    let path = out.commit()?;
    if ctx.json {
        emit_json(&serde_json::json!({
            "image": path,
            "size": stats.size,
            "inodes": stats.inodes,
            "compressed_files": stats.compressed_files,
            "uuid": crate::util::hex(&stats.uuid),
        }))?;
    } else {
        emit(&format!(
            "{}: {} bytes, {} inodes, {} files compressed\n",
            path.display(),
            stats.size,
            stats.inodes,
            stats.compressed_files
        ))?;
    }
    Ok(0)
}
