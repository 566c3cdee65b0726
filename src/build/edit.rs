//! Stage 5, edit or rebuild: how each touched partition is written.
//!
//! By default a touched partition is edited in place (`fs::erofs::edit`,
//! `fs::ext4::edit`):
//! every surviving inode keeps its nid and every surviving block its address
//! and bytes, and the edit reports which byte ranges changed and which became
//! zero, so that the package writers can reuse the rest of the source.
//! `--repack` rebuilds the partitions from their trees instead (to shrink or
//! recompress them); an ext4 partition becomes EROFS only with
//! `--ext4-to-erofs`, since many older kernels cannot mount EROFS.
//!
//! An image the editor refuses is an error naming the feature and the file,
//! never a silent rebuild.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::BuildOptions;
use super::decode::image_path;
use crate::apps::LoadedPartition;
use crate::debloat::Plan;
use crate::error::{Error, Result};
use crate::fs::FsKind;
use crate::fs::edit::{Edit, EditStats};

/// How a touched partition is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Method {
    /// Edited in place with this edit.
    Edit(Edit),
    /// Rebuilt from its edited tree as EROFS.
    Rebuild,
}

/// The ext4 partitions `methods` rebuilds, that is converts to EROFS.
pub(super) fn converted(
    methods: &BTreeMap<String, Method>,
    filesystems: &BTreeMap<String, FsKind>,
) -> Vec<String> {
    methods
        .iter()
        .filter(|(n, m)| **m == Method::Rebuild && filesystems.get(*n) == Some(&FsKind::Ext4))
        .map(|(n, _)| n.clone())
        .collect()
}

/// The warning printed (and reported) when ext4 partitions become EROFS.
pub(super) fn ext4_warning(names: &[String]) -> String {
    format!(
        "--ext4-to-erofs: {} converted from ext4 to EROFS; the device's kernel must mount \
         EROFS (Linux 5.4 or later with EROFS built in), or it will not boot",
        names.join(", ")
    )
}

/// Chooses how each partition in `touched` is written and, for the ones
/// edited in place, the edit the plan makes (read from the trees before the
/// plan is applied to them).
pub(super) fn methods(
    plan: &Plan,
    loaded: &[LoadedPartition],
    touched: &BTreeSet<String>,
    filesystems: &BTreeMap<String, FsKind>,
    input: &Path,
    opts: &BuildOptions,
) -> Result<BTreeMap<String, Method>> {
    let mut out = BTreeMap::new();
    for lp in loaded.iter().filter(|p| touched.contains(&p.name)) {
        let Some(tree) = lp.tree.as_ref() else {
            continue;
        };
        let at = || format!("{}:{}", input.display(), lp.name);
        let method = match (filesystems.get(&lp.name), opts.repack, opts.ext4_to_erofs) {
            (Some(FsKind::Ext4), _, true) | (Some(FsKind::Erofs), true, _) => Method::Rebuild,
            (Some(FsKind::Ext4), true, false) => {
                return Err(Error::Usage(format!(
                    "{}: --repack writes EROFS; converting this ext4 partition needs \
                     --ext4-to-erofs (check that the device's kernel mounts EROFS)",
                    at()
                )));
            }
            (Some(_), false, _) => Method::Edit(
                plan.image_edit(&lp.name, tree)
                    .map_err(|m| Error::invalid(input, m.to_string()))?,
            ),
            (None, ..) => {
                return Err(Error::invalid(at(), "no filesystem romkit can edit"));
            }
        };
        out.insert(lp.name.clone(), method);
    }
    Ok(out)
}

/// What an in-place edit did to one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edited {
    /// What changed; bytes outside `stats.changed` are the source's.
    pub stats: EditStats,
    /// What became of the image's AVB hashtree footer (recomputed or
    /// stripped), `None` when it had none.
    pub avb_footer: Option<String>,
}

/// Edits, in parallel, every partition `methods` edits in place; its image
/// `NAME.img` in `work` is replaced (atomically) by the edited one. Returns
/// what each edit changed, by partition.
pub(super) fn edit_all(
    methods: &BTreeMap<String, Method>,
    filesystems: &BTreeMap<String, FsKind>,
    input: &Path,
    work: &Path,
) -> Result<BTreeMap<String, Edited>> {
    let edits: Vec<(&String, &Edit)> = methods
        .iter()
        .filter_map(|(n, m)| match m {
            Method::Edit(e) => Some((n, e)),
            Method::Rebuild => None,
        })
        .collect();
    // One at a time: an edit is quick, and each maps its whole image, whose
    // pages the edit reads would add up in memory.
    edits
        .iter()
        .map(|&(name, e)| {
            let path = image_path(work, name);
            let kind = filesystems.get(name).copied();
            Ok((name.clone(), edit_image(kind, input, name, &path, e)?))
        })
        .collect()
}

/// Edits the image at `path` (partition `name` of `input`, filesystem
/// `kind`) in place: only the blocks that change are written. A failure
/// leaves the image half edited; it is the build's scratch copy, removed
/// with the work folder.
///
/// One call per filesystem; an image that carries an AVB hashtree footer
/// gets its tree, FEC and root digest recomputed after the edit (or the
/// footer stripped when that is impossible), see [`super::footer`].
fn edit_image(
    kind: Option<FsKind>,
    input: &Path,
    name: &str,
    path: &Path,
    e: &Edit,
) -> Result<Edited> {
    let source = format!("{}:{name}", input.display());
    // The image is the build's own decoded copy: the edit writes only the
    // blocks that change into it. What the footer refresh compares with
    // (the bytes after the filesystem) is kept aside first.
    let tail = super::footer::snapshot_tail(kind, path)?;
    let mut out = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|err| Error::io(path, err))?;
    let in_place = crate::fs::edit::InPlace::new();
    let mut stats = match kind {
        Some(FsKind::Erofs) => crate::fs::erofs::edit::edit_image(path, e, &mut out)
            .map_err(|err| err.into_error(path, &source))?,
        Some(FsKind::Ext4) => crate::fs::ext4::edit::edit_image(path, e, &mut out)
            .map_err(|err| err.into_error(path, &source))?,
        None => return Err(Error::invalid(source, "no filesystem romkit can edit")),
    };
    drop(in_place);
    let avb_footer = match &tail {
        Some(t) => super::footer::refresh(kind, t.path(), &out, path, &mut stats)?,
        None => None,
    };
    Ok(Edited { stats, avb_footer })
}
