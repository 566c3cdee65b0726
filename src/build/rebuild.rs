//! Stage 4, apply, and the rebuild half of stage 5: the plan edits the
//! trees in memory (every tree's files are recorded in the manifest on the
//! way); with `--repack` (or `--ext4-to-erofs`) a touched partition is then
//! written again as EROFS beside its source image and renamed over it.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;

use super::decode::image_path;
use crate::apps::LoadedPartition;
use crate::debloat::Plan;
use crate::error::{Error, Result};
use crate::fs::erofs::writer::{self, Lz4hc};
use crate::fs::tree::{HashCache, Tree};
use crate::manifest::Manifest;

/// The partitions a plan changes.
pub(super) fn touched(plan: &Plan) -> BTreeSet<String> {
    plan.removed
        .iter()
        .map(|r| r.partition.clone())
        .chain(plan.props.iter().map(|c| c.partition.clone()))
        .collect()
}

/// Applies `plan` to the trees it touches and records every tree's files
/// (contents whose hashes `hashes` holds are not read again).
pub(super) fn apply(
    plan: &Plan,
    loaded: &mut [LoadedPartition],
    manifest: &mut Manifest,
    hashes: &HashCache,
    input: &Path,
    work: &Path,
) -> Result<()> {
    let touched = touched(plan);
    for lp in loaded.iter_mut() {
        let Some(tree) = lp.tree.as_mut() else {
            continue;
        };
        if touched.contains(&lp.name) {
            plan.apply(&lp.name, tree)
                .map_err(|m| Error::invalid(input, m.to_string()))?;
        }
        manifest
            .add_tree_cached(&lp.name, tree, hashes)
            .map_err(|e| Error::io(image_path(work, &lp.name), e))?;
    }
    Ok(())
}

/// Writes every partition in `names` again as EROFS from its edited tree,
/// with `build_time` in its superblock (ext4 ones too: the caller decided
/// to convert them).
pub(super) fn rebuild(
    loaded: &mut [LoadedPartition],
    names: &BTreeSet<String>,
    input: &Path,
    work: &Path,
    build_time: Option<i64>,
    jobs: usize,
) -> Result<()> {
    for lp in loaded.iter_mut().filter(|p| names.contains(&p.name)) {
        let Some(tree) = lp.tree.as_ref() else {
            continue;
        };
        let path = image_path(work, &lp.name);
        let new_path = work.join(format!("{}.rebuilt", lp.name));
        let tree_source = format!("{}:{}", input.display(), lp.name);
        write_erofs(
            tree,
            &tree_source,
            &lp.name,
            &path,
            &new_path,
            build_time,
            jobs,
        )?;
        // The trees read lazily from the old image: drop it only now.
        lp.tree = None;
        std::fs::rename(&new_path, &path).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// Writes `tree` (read from `tree_source`, for messages) as the EROFS image
/// `dest`, compressed like `source` was (LZ4HC, as HyperOS does, when
/// `source` is ext4).
fn write_erofs(
    tree: &Tree,
    tree_source: &str,
    name: &str,
    source: &Path,
    dest: &Path,
    build_time: Option<i64>,
    jobs: usize,
) -> Result<()> {
    let opts = writer::ErofsOptions {
        build_time,
        volume_name: Some(name.to_string()),
        compression: compress_like(source)?.then(Lz4hc::default),
        jobs,
    };
    let mut f = File::create(dest).map_err(|e| Error::io(dest, e))?;
    writer::write(tree, &opts, &mut f).map_err(|e| e.into_error(dest, tree_source))?;
    f.sync_all().map_err(|e| Error::io(dest, e))
}

/// Whether a rebuild of the image `source` compresses: when it is a
/// compressed EROFS image or an ext4 image being converted.
fn compress_like(source: &Path) -> Result<bool> {
    let ext4 = crate::fs::sniff(source).map_err(|e| Error::io(source, e))?;
    if ext4 == Some(crate::fs::FsKind::Ext4) {
        return Ok(true);
    }
    crate::fs::erofs::is_compressed(source).map_err(|e| Error::io(source, e))
}
