//! Stage 3, read trees and plan: the app partitions as file trees, the apps
//! in them identified, the profile matched against them. A plan that reaches
//! protected items, or (with `--strict`) has rules matching nothing, stops
//! the build here, before anything is written.

use std::collections::BTreeMap;
use std::path::Path;

use crate::apps::{self, App, LoadedPartition};
use crate::debloat::{self, Plan, PlanOptions, Profile};
use crate::error::{Error, Result};
use crate::fs::FsKind;
use crate::rom::PartInfo;
use crate::rom::Rom;

/// The app partitions read as trees.
pub(super) struct Trees {
    /// Every app partition that has a filesystem romkit reads.
    pub loaded: Vec<LoadedPartition>,
    /// Filesystem of each partition that has one, by name.
    pub filesystems: BTreeMap<String, FsKind>,
}

/// Reads the decoded app partitions `parts` as file trees.
pub(super) fn read_trees(rom: &Rom, parts: &[PartInfo], work: &Path, jobs: usize) -> Result<Trees> {
    let names: Vec<String> = parts.iter().map(|p| p.name.clone()).collect();
    let mut trees = Trees {
        loaded: Vec::new(),
        filesystems: BTreeMap::new(),
    };
    for d in rom.decode_trees_into(work, &names, false, jobs)? {
        let (Some(kind), Some(tree)) = (d.kind, d.tree) else {
            continue;
        };
        trees.filesystems.insert(d.name.clone(), kind);
        let files = apps::tree_files(&d.name, &tree);
        trees.loaded.push(LoadedPartition {
            name: d.name,
            tree: Some(tree),
            files,
            loose: false,
        });
    }
    Ok(trees)
}

/// Identifies the apps in `loaded` and plans the profile against them.
pub(super) fn plan(
    input: &Path,
    profile: &Profile,
    loaded: &[LoadedPartition],
    allow_unsafe: bool,
    strict: bool,
    jobs: usize,
) -> Result<(Vec<App>, Plan)> {
    let locations: Vec<_> = loaded
        .iter()
        .flat_map(|p| apps::locate(&p.name, &p.files, false))
        .collect();
    let app_list = apps::identify(locations, jobs);
    // An app that cannot be identified is kept: no rule can match it.
    for a in app_list.iter().filter(|a| a.error.is_some()) {
        tracing::warn!(
            "{}: {}: {}; kept as it is",
            input.display(),
            a.apk,
            a.error.as_deref().unwrap_or_default()
        );
    }
    let plan = debloat::plan(profile, &app_list, loaded, PlanOptions { allow_unsafe });
    refuse(&plan, strict)?;
    Ok((app_list, plan))
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
