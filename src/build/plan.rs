//! Stage 3, read trees and plan: the app partitions as file trees, the apps
//! in them identified, the profile matched against them. A plan that reaches
//! protected items, or (with `--strict`) has rules matching nothing, stops
//! the build here, before anything is written.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::apps::{self, App, LoadedPartition};
use crate::debloat::{self, Plan, PlanOptions, Profile};
use crate::error::{Error, Result};
use crate::fs::FsKind;
use crate::fs::tree::{FileData, HashCache};
use crate::rom::PartInfo;
use crate::rom::Rom;

/// The app partitions read as trees.
pub(super) struct Trees {
    /// Every app partition that has a filesystem romkit reads.
    pub loaded: Vec<LoadedPartition>,
    /// Filesystem of each partition that has one, by name.
    pub filesystems: BTreeMap<String, FsKind>,
}

/// Decodes the app partitions `parts` and reads them as file trees; the
/// apps in them are identified, and every file hashed into `hashes` (for
/// the manifest), as they come.
///
/// Partitions are decoded one after another, largest first, each with every
/// worker; while one decodes, the files of the one before are read. Each
/// partition's files are so read while its image is still in the page
/// cache, rather than after all are decoded, when the first ones may have
/// been written back and dropped; and the reading fills the gaps decoding
/// leaves in the cores. The last partition, the smallest, is read alone.
pub(super) fn read_trees(
    rom: &Rom,
    parts: &[PartInfo],
    work: &Path,
    jobs: usize,
    hashes: &HashCache,
) -> Result<(Trees, Vec<App>)> {
    let mut order: Vec<&PartInfo> = parts.iter().collect();
    order.sort_by_key(|p| std::cmp::Reverse(p.size));
    let mut trees = Trees {
        loaded: Vec::new(),
        filesystems: BTreeMap::new(),
    };
    let mut app_list = Vec::new();
    std::thread::scope(|s| -> Result<()> {
        let mut reading: Option<std::thread::ScopedJoinHandle<'_, Vec<App>>> = None;
        for p in order {
            let decoded = rom.decode_trees_into(work, std::slice::from_ref(&p.name), false, jobs);
            if let Some(r) = reading.take() {
                app_list.extend(r.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
            }
            for d in decoded? {
                let (Some(kind), Some(tree)) = (d.kind, d.tree) else {
                    continue;
                };
                trees.filesystems.insert(d.name.clone(), kind);
                let files = apps::tree_files(&d.name, &tree);
                let name = d.name.clone();
                let to_read = files.clone();
                reading = Some(s.spawn(move || identify_and_hash(&name, to_read, jobs, hashes)));
                trees.loaded.push(LoadedPartition {
                    name: d.name,
                    tree: Some(tree),
                    files,
                    loose: false,
                });
            }
        }
        if let Some(r) = reading.take() {
            app_list.extend(r.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        Ok(())
    })?;
    // Back in the input's order.
    let rank = |name: &str| parts.iter().position(|p| p.name == name);
    trees.loaded.sort_by_key(|lp| rank(&lp.name));
    apps::sort(&mut app_list);
    Ok((trees, app_list))
}

/// Identifies the apps among one partition's `files` and hashes every file
/// into `hashes` (base APKs while they are identified).
fn identify_and_hash(
    partition: &str,
    files: Vec<apps::FileEntry>,
    jobs: usize,
    hashes: &HashCache,
) -> Vec<App> {
    let locations = apps::locate(partition, &files, false);
    let apks: HashSet<_> = locations
        .iter()
        .filter_map(|l| l.apk.data.location())
        .collect();
    let others: Vec<&FileData> = files
        .iter()
        .map(|f| &f.data)
        .filter(|d| d.location().is_none_or(|l| !apks.contains(&l)))
        .collect();
    apps::identify_cached(locations, &others, jobs, hashes)
}

/// Plans the profile against the apps `app_list` found in `loaded`.
pub(super) fn plan(
    input: &Path,
    profile: &Profile,
    loaded: &[LoadedPartition],
    app_list: &[App],
    opts: &super::BuildOptions,
) -> Result<Plan> {
    // An app that cannot be identified is kept: no rule can match it.
    for a in app_list.iter().filter(|a| a.error.is_some()) {
        tracing::warn!(
            "{}: {}: {}; kept as it is",
            input.display(),
            a.apk,
            a.error.as_deref().unwrap_or_default()
        );
    }
    let allow_unsafe = opts.allow_unsafe;
    let plan = debloat::plan(profile, app_list, loaded, PlanOptions { allow_unsafe });
    refuse(&plan, opts.strict)?;
    Ok(plan)
}

/// Fails when the plan reaches protected items, or with `strict` when rules
/// or prop edits match nothing.
fn refuse(plan: &Plan, strict: bool) -> Result<()> {
    let fail = |msg: String| Error::CheckFailed {
        file: plan.source.clone().into(),
        msg,
    };
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
        return Err(fail(format!(
            "the profile reaches protected items; nothing was built: {}",
            list.join("; ")
        )));
    }
    if strict && plan.unmatched > 0 {
        return Err(fail(format!(
            "--strict: {} rule(s) or prop edit(s) match nothing: {}",
            plan.unmatched,
            plan.warnings.join("; ")
        )));
    }
    Ok(())
}
