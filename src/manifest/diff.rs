//! Comparing two manifests: apps added, removed, updated (version up or
//! down), re-signed, moved or changed; partitions added, removed, grown,
//! shrunk or changed; files added, removed or changed (content, mode, owner,
//! label, capabilities, kind, symlink target); props added, removed or
//! changed. Rendered as text, markdown (release notes) or canonical JSON.
//!
//! Apps count only while `kept`: an app a build removed is absent from its
//! output. Files and props are compared per partition where both manifests
//! record them; a partition whose files one side did not record (a build's
//! passthrough partition) is compared by its image hash alone.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use super::{AppRecord, FileRecord, Manifest, PartitionRecord};

/// One side of the comparison.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Side {
    /// The input's file name.
    pub file: String,
    /// Its version code, when known.
    pub version: Option<String>,
}

/// An app as listed in a diff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppSummary {
    /// Package (or path when unreadable).
    pub package: String,
    /// Partition.
    pub partition: String,
    /// Folder or loose APK.
    pub path: String,
    /// versionCode.
    pub version_code: Option<u64>,
    /// versionName.
    pub version_name: Option<String>,
    /// Total size.
    pub size: u64,
}

impl From<&AppRecord> for AppSummary {
    fn from(a: &AppRecord) -> Self {
        AppSummary {
            package: a.name().to_string(),
            partition: a.partition.clone(),
            path: a.path.clone(),
            version_code: a.version_code,
            version_name: a.version_name.clone(),
            size: a.size,
        }
    }
}

/// An app whose version changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppUpdate {
    /// Package.
    pub package: String,
    /// Partition (in B).
    pub partition: String,
    /// Path (in B).
    pub path: String,
    /// `up`, `down`, or `renamed` (same code, other versionName).
    pub direction: String,
    /// versionCode in A.
    pub from_code: Option<u64>,
    /// versionName in A.
    pub from_name: Option<String>,
    /// versionCode in B.
    pub to_code: Option<u64>,
    /// versionName in B.
    pub to_name: Option<String>,
}

/// An app signed by another certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SignerChange {
    /// Package.
    pub package: String,
    /// Path (in B).
    pub path: String,
    /// Signer in A.
    pub from: Option<String>,
    /// Signer in B.
    pub to: Option<String>,
}

/// An app found at another place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppMove {
    /// Package.
    pub package: String,
    /// `partition:path` in A.
    pub from: String,
    /// `partition:path` in B.
    pub to: String,
}

/// What changed among the apps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AppChanges {
    /// In B only.
    pub added: Vec<AppSummary>,
    /// In A only.
    pub removed: Vec<AppSummary>,
    /// Version changed.
    pub updated: Vec<AppUpdate>,
    /// Signing certificate changed.
    pub signer_changed: Vec<SignerChange>,
    /// Found at another path or partition.
    pub moved: Vec<AppMove>,
    /// The base APK changed with the same version and signer.
    pub content_changed: Vec<AppSummary>,
}

impl AppChanges {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.updated.is_empty()
            && self.signer_changed.is_empty()
            && self.moved.is_empty()
            && self.content_changed.is_empty()
    }
}

/// A partition that changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionChange {
    /// Name.
    pub name: String,
    /// `added`, `removed`, `grown`, `shrunk` or `changed` (same size).
    pub change: String,
    /// Size in A.
    pub size_a: Option<u64>,
    /// Size in B.
    pub size_b: Option<u64>,
    /// B minus A.
    pub delta: i64,
    /// SHA-256 in A.
    pub sha256_a: Option<String>,
    /// SHA-256 in B.
    pub sha256_b: Option<String>,
    /// When B's partition was edited in place: the blocks that differ from
    /// its input's image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_blocks_b: Option<u64>,
}

/// A file (any tree entry) that changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileChange {
    /// Partition.
    pub partition: String,
    /// Device path.
    pub path: String,
    /// `added`, `removed` or `changed`.
    pub change: String,
    /// For `changed`: which of `kind`, `content`, `target`, `mode`,
    /// `owner`, `label`, `capabilities`.
    pub aspects: Vec<String>,
    /// The entry in A.
    pub a: Option<FileRecord>,
    /// The entry in B.
    pub b: Option<FileRecord>,
}

/// A property that changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PropChange {
    /// Partition.
    pub partition: String,
    /// Key.
    pub key: String,
    /// `added`, `removed` or `changed`.
    pub change: String,
    /// Value in A.
    pub a: Option<String>,
    /// Value in B.
    pub b: Option<String>,
}

/// Counts for the summary line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Apps added, removed, updated, re-signed, moved or changed.
    pub apps: usize,
    /// Partitions changed.
    pub partitions: usize,
    /// Files added.
    pub files_added: usize,
    /// Files removed.
    pub files_removed: usize,
    /// Files changed.
    pub files_changed: usize,
    /// Props added, removed or changed.
    pub props: usize,
}

/// The differences between two manifests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// The first manifest.
    pub a: Side,
    /// The second.
    pub b: Side,
    /// Whether they differ at all.
    pub identical: bool,
    /// Counts.
    pub summary: Summary,
    /// Apps.
    pub apps: AppChanges,
    /// Partitions, in B's order then A's.
    pub partitions: Vec<PartitionChange>,
    /// Files, by partition then path.
    pub files: Vec<FileChange>,
    /// Props, by partition then key.
    pub props: Vec<PropChange>,
}

fn side(m: &Manifest) -> Side {
    Side {
        file: m.input.file.clone(),
        version: m.input.version.as_ref().map(|v| v.code.clone()),
    }
}

/// Keys apps by package; a package present more than once in a manifest is
/// keyed by package and path.
fn app_keys(m: &Manifest) -> BTreeMap<String, &AppRecord> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for a in m.kept_apps() {
        *count.entry(a.name()).or_default() += 1;
    }
    m.kept_apps()
        .map(|a| {
            let k = if count[a.name()] > 1 {
                format!("{}@{}:{}", a.name(), a.partition, a.path)
            } else {
                a.name().to_string()
            };
            (k, a)
        })
        .collect()
}

fn diff_apps(a: &Manifest, b: &Manifest) -> AppChanges {
    let ka = app_keys(a);
    let kb = app_keys(b);
    let mut out = AppChanges::default();
    for (k, x) in &ka {
        let Some(y) = kb.get(k) else {
            out.removed.push(AppSummary::from(*x));
            continue;
        };
        let pkg = y.name().to_string();
        if x.version_code != y.version_code || x.version_name != y.version_name {
            let direction = match (x.version_code, y.version_code) {
                (Some(p), Some(q)) if q > p => "up",
                (Some(p), Some(q)) if q < p => "down",
                (None, Some(_)) => "up",
                (Some(_), None) => "down",
                _ => "renamed",
            };
            out.updated.push(AppUpdate {
                package: pkg.clone(),
                partition: y.partition.clone(),
                path: y.path.clone(),
                direction: direction.into(),
                from_code: x.version_code,
                from_name: x.version_name.clone(),
                to_code: y.version_code,
                to_name: y.version_name.clone(),
            });
        }
        if x.signer != y.signer {
            out.signer_changed.push(SignerChange {
                package: pkg.clone(),
                path: y.path.clone(),
                from: x.signer.clone(),
                to: y.signer.clone(),
            });
        }
        if x.partition != y.partition || x.path != y.path {
            out.moved.push(AppMove {
                package: pkg.clone(),
                from: format!("{}:{}", x.partition, x.path),
                to: format!("{}:{}", y.partition, y.path),
            });
        }
        if x.sha256 != y.sha256
            && x.version_code == y.version_code
            && x.version_name == y.version_name
            && x.signer == y.signer
        {
            out.content_changed.push(AppSummary::from(*y));
        }
    }
    for (k, y) in &kb {
        if !ka.contains_key(k) {
            out.added.push(AppSummary::from(*y));
        }
    }
    out
}

fn diff_partitions(a: &Manifest, b: &Manifest) -> Vec<PartitionChange> {
    let find = |m: &Manifest, n: &str| m.partitions.iter().find(|p| p.name == n).cloned();
    let mut names: Vec<&str> = b.partitions.iter().map(|p| p.name.as_str()).collect();
    for p in &a.partitions {
        if !names.contains(&p.name.as_str()) {
            names.push(&p.name);
        }
    }
    let mut out = Vec::new();
    for n in names {
        let (x, y): (Option<PartitionRecord>, Option<PartitionRecord>) = (find(a, n), find(b, n));
        let change = match (&x, &y) {
            (Some(x), Some(y)) if x.sha256 == y.sha256 && x.size == y.size => continue,
            (Some(x), Some(y)) if y.size > x.size => "grown",
            (Some(x), Some(y)) if y.size < x.size => "shrunk",
            (Some(_), Some(_)) => "changed",
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            (None, None) => continue,
        };
        let size_a = x.as_ref().map(|p| p.size);
        let size_b = y.as_ref().map(|p| p.size);
        out.push(PartitionChange {
            name: n.to_string(),
            change: change.into(),
            size_a,
            size_b,
            delta: size_b.unwrap_or(0) as i64 - size_a.unwrap_or(0) as i64,
            sha256_a: x.map(|p| p.sha256),
            edited_blocks_b: y.as_ref().and_then(|p| p.changed_blocks),
            sha256_b: y.map(|p| p.sha256),
        });
    }
    out
}

/// Whether the per-partition records (files, props) of `part` are compared:
/// when both sides have them, or when one side has them and the other has
/// no such partition (all added or all removed). One side without records
/// for a partition it still has (a build's passthrough partition) is left to
/// the partition comparison.
fn comparable(a: &Manifest, b: &Manifest, part: &str, in_a: bool, in_b: bool) -> bool {
    let has = |m: &Manifest| m.partitions.iter().any(|p| p.name == part);
    match (in_a, in_b) {
        (true, true) => true,
        (true, false) => !has(b),
        (false, true) => !has(a),
        (false, false) => false,
    }
}

fn aspects(x: &FileRecord, y: &FileRecord) -> Vec<String> {
    let mut v = Vec::new();
    if x.kind != y.kind {
        v.push("kind");
    }
    if x.sha256 != y.sha256 || x.size != y.size {
        v.push(if x.kind == "symlink" && y.kind == "symlink" {
            "target"
        } else {
            "content"
        });
    }
    if x.mode & 0o7777 != y.mode & 0o7777 {
        v.push("mode");
    }
    if x.uid != y.uid || x.gid != y.gid {
        v.push("owner");
    }
    if x.label != y.label {
        v.push("label");
    }
    if x.capabilities != y.capabilities {
        v.push("capabilities");
    }
    v.into_iter().map(str::to_string).collect()
}

fn diff_files(a: &Manifest, b: &Manifest) -> Vec<FileChange> {
    let index = |m: &Manifest| {
        let mut by: BTreeMap<String, BTreeMap<String, FileRecord>> = BTreeMap::new();
        for f in &m.files {
            by.entry(f.partition.clone())
                .or_default()
                .insert(f.path.clone(), f.clone());
        }
        by
    };
    let (ia, ib) = (index(a), index(b));
    let parts: BTreeSet<&String> = ia.keys().chain(ib.keys()).collect();
    let empty = BTreeMap::new();
    let mut out = Vec::new();
    for part in parts {
        let fa = ia.get(part).unwrap_or(&empty);
        let fb = ib.get(part).unwrap_or(&empty);
        if !comparable(a, b, part, ia.contains_key(part), ib.contains_key(part)) {
            continue;
        }
        let paths: BTreeSet<&String> = fa.keys().chain(fb.keys()).collect();
        for path in paths {
            let (x, y) = (fa.get(path), fb.get(path));
            let (change, asp) = match (x, y) {
                (Some(x), Some(y)) => {
                    let asp = aspects(x, y);
                    if asp.is_empty() {
                        continue;
                    }
                    ("changed", asp)
                }
                (None, Some(_)) => ("added", Vec::new()),
                (Some(_), None) => ("removed", Vec::new()),
                (None, None) => continue,
            };
            out.push(FileChange {
                partition: part.clone(),
                path: path.clone(),
                change: change.into(),
                aspects: asp,
                a: x.cloned(),
                b: y.cloned(),
            });
        }
    }
    out
}

fn diff_props(a: &Manifest, b: &Manifest) -> Vec<PropChange> {
    let parts: BTreeSet<&String> = a.props.keys().chain(b.props.keys()).collect();
    let empty = BTreeMap::new();
    let mut out = Vec::new();
    for part in parts {
        if !comparable(
            a,
            b,
            part,
            a.props.contains_key(part),
            b.props.contains_key(part),
        ) {
            continue;
        }
        let pa = a.props.get(part).unwrap_or(&empty);
        let pb = b.props.get(part).unwrap_or(&empty);
        let keys: BTreeSet<&String> = pa.keys().chain(pb.keys()).collect();
        for k in keys {
            let (x, y) = (pa.get(k), pb.get(k));
            let change = match (x, y) {
                (Some(x), Some(y)) if x == y => continue,
                (Some(_), Some(_)) => "changed",
                (None, Some(_)) => "added",
                (Some(_), None) => "removed",
                (None, None) => continue,
            };
            out.push(PropChange {
                partition: part.clone(),
                key: k.clone(),
                change: change.into(),
                a: x.cloned(),
                b: y.cloned(),
            });
        }
    }
    out
}

/// Compares manifest `a` (before) with `b` (after).
pub fn diff(a: &Manifest, b: &Manifest) -> Diff {
    let apps = diff_apps(a, b);
    let partitions = diff_partitions(a, b);
    let files = diff_files(a, b);
    let props = diff_props(a, b);
    let count = |c: &str| files.iter().filter(|f| f.change == c).count();
    let summary = Summary {
        apps: apps.added.len()
            + apps.removed.len()
            + apps.updated.len()
            + apps.signer_changed.len()
            + apps.moved.len()
            + apps.content_changed.len(),
        partitions: partitions.len(),
        files_added: count("added"),
        files_removed: count("removed"),
        files_changed: count("changed"),
        props: props.len(),
    };
    Diff {
        a: side(a),
        b: side(b),
        identical: apps.is_empty() && partitions.is_empty() && files.is_empty() && props.is_empty(),
        summary,
        apps,
        partitions,
        files,
        props,
    }
}

fn version(code: Option<u64>, name: Option<&str>) -> String {
    match (name, code) {
        (Some(n), Some(c)) => format!("{n} ({c})"),
        (Some(n), None) => n.to_string(),
        (None, Some(c)) => format!("({c})"),
        (None, None) => "?".to_string(),
    }
}

fn short(s: Option<&str>) -> String {
    s.map(|s| s.chars().take(16).collect())
        .unwrap_or_else(|| "none".to_string())
}

use crate::util::size::human_size as human;

fn signed_size(d: i64) -> String {
    let s = human(d.unsigned_abs());
    if d < 0 {
        format!("-{s}")
    } else {
        format!("+{s}")
    }
}

/// What changed about a file, for people.
fn file_detail(f: &FileChange) -> String {
    let (Some(x), Some(y)) = (&f.a, &f.b) else {
        let r = f.a.as_ref().or(f.b.as_ref());
        return r
            .map(|r| match r.kind.as_str() {
                "file" => format!("file, {}", human(r.size)),
                "symlink" => format!("symlink -> {}", r.target.as_deref().unwrap_or("")),
                k => k.to_string(),
            })
            .unwrap_or_default();
    };
    f.aspects
        .iter()
        .map(|asp| match asp.as_str() {
            "kind" => format!("kind {} -> {}", x.kind, y.kind),
            "content" => format!(
                "content {} -> {} ({})",
                short(x.sha256.as_deref().map(|s| &s[..s.len().min(12)])),
                short(y.sha256.as_deref().map(|s| &s[..s.len().min(12)])),
                signed_size(y.size as i64 - x.size as i64)
            ),
            "target" => format!(
                "target {} -> {}",
                x.target.as_deref().unwrap_or(""),
                y.target.as_deref().unwrap_or("")
            ),
            "mode" => format!("mode {:04o} -> {:04o}", x.mode & 0o7777, y.mode & 0o7777),
            "owner" => format!("owner {}:{} -> {}:{}", x.uid, x.gid, y.uid, y.gid),
            "label" => format!(
                "label {} -> {}",
                x.label.as_deref().unwrap_or("none"),
                y.label.as_deref().unwrap_or("none")
            ),
            "capabilities" => format!(
                "capabilities {} -> {}",
                x.capabilities
                    .map_or("none".to_string(), |c| format!("{c:#x}")),
                y.capabilities
                    .map_or("none".to_string(), |c| format!("{c:#x}"))
            ),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn side_text(s: &Side) -> String {
    match &s.version {
        Some(v) => format!("{} ({v})", s.file),
        None => s.file.clone(),
    }
}

fn opt(v: Option<&str>) -> &str {
    v.unwrap_or("(unset)")
}

impl Diff {
    /// Plain text, one change a line under a heading per section.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "A: {}", side_text(&self.a));
        let _ = writeln!(s, "B: {}", side_text(&self.b));
        if self.identical {
            s.push_str("\nNo differences.\n");
            return s;
        }
        self.text_apps(&mut s);
        self.text_partitions(&mut s);
        self.text_files(&mut s);
        self.text_props(&mut s);
        s
    }

    /// Apps: a count per kind of change, then a line per app.
    fn text_apps(&self, s: &mut String) {
        let ap = &self.apps;
        if !ap.is_empty() {
            let _ = writeln!(
                s,
                "\nApps: {} added, {} removed, {} updated, {} re-signed, {} moved, {} changed",
                ap.added.len(),
                ap.removed.len(),
                ap.updated.len(),
                ap.signer_changed.len(),
                ap.moved.len(),
                ap.content_changed.len()
            );
            for x in &ap.added {
                let _ = writeln!(
                    s,
                    "  + {}  {}  {}",
                    x.package,
                    version(x.version_code, x.version_name.as_deref()),
                    x.path
                );
            }
            for x in &ap.removed {
                let _ = writeln!(
                    s,
                    "  - {}  {}  {}",
                    x.package,
                    version(x.version_code, x.version_name.as_deref()),
                    x.path
                );
            }
            for x in &ap.updated {
                let arrow = match x.direction.as_str() {
                    "up" => "^",
                    "down" => "v",
                    _ => "~",
                };
                let _ = writeln!(
                    s,
                    "  {arrow} {}  {} -> {} ({})",
                    x.package,
                    version(x.from_code, x.from_name.as_deref()),
                    version(x.to_code, x.to_name.as_deref()),
                    x.direction
                );
            }
            for x in &ap.signer_changed {
                let _ = writeln!(
                    s,
                    "  ! {}  signer {} -> {}",
                    x.package,
                    short(x.from.as_deref()),
                    short(x.to.as_deref())
                );
            }
            for x in &ap.moved {
                let _ = writeln!(s, "  > {}  {} -> {}", x.package, x.from, x.to);
            }
            for x in &ap.content_changed {
                let _ = writeln!(
                    s,
                    "  ~ {}  APK changed, same version {}",
                    x.package,
                    version(x.version_code, x.version_name.as_deref())
                );
            }
        }
    }

    /// Partitions: a line per changed partition with its sizes.
    fn text_partitions(&self, s: &mut String) {
        if !self.partitions.is_empty() {
            let _ = writeln!(s, "\nPartitions: {} changed", self.partitions.len());
            for p in &self.partitions {
                let size = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
                let edited = p
                    .edited_blocks_b
                    .map_or(String::new(), |n| format!(", edited in place: {n} blocks"));
                let _ = writeln!(
                    s,
                    "  {} {}  {} -> {} bytes ({}{edited})",
                    match p.change.as_str() {
                        "added" => "+",
                        "removed" => "-",
                        _ => "~",
                    },
                    p.name,
                    size(p.size_a),
                    size(p.size_b),
                    if p.change == "changed" {
                        "same size, content changed".to_string()
                    } else {
                        format!("{}, {}", p.change, signed_size(p.delta))
                    }
                );
            }
        }
    }

    /// Files: the counts, then a line per file.
    fn text_files(&self, s: &mut String) {
        if !self.files.is_empty() {
            let _ = writeln!(
                s,
                "\nFiles: {} added, {} removed, {} changed",
                self.summary.files_added, self.summary.files_removed, self.summary.files_changed
            );
            for f in &self.files {
                let mark = match f.change.as_str() {
                    "added" => "+",
                    "removed" => "-",
                    _ => "~",
                };
                let _ = writeln!(s, "  {mark} {}  {}", f.path, file_detail(f));
            }
        }
    }

    /// Props: a line per property added, removed or changed.
    fn text_props(&self, s: &mut String) {
        if !self.props.is_empty() {
            let _ = writeln!(s, "\nProps: {} changed", self.props.len());
            for p in &self.props {
                match p.change.as_str() {
                    "added" => {
                        let _ =
                            writeln!(s, "  + {}: {}={}", p.partition, p.key, opt(p.b.as_deref()));
                    }
                    "removed" => {
                        let _ =
                            writeln!(s, "  - {}: {}={}", p.partition, p.key, opt(p.a.as_deref()));
                    }
                    _ => {
                        let _ = writeln!(
                            s,
                            "  ~ {}: {}: {} -> {}",
                            p.partition,
                            p.key,
                            opt(p.a.as_deref()),
                            opt(p.b.as_deref())
                        );
                    }
                }
            }
        }
    }

    /// Markdown for release notes: a heading, then a table per section
    /// (the file list folded in a `<details>` block).
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let title = |x: &Side| x.version.clone().unwrap_or_else(|| x.file.clone());
        let _ = writeln!(
            s,
            "## Changes from {} to {}\n",
            md(&title(&self.a)),
            md(&title(&self.b))
        );
        let _ = writeln!(
            s,
            "Compared `{}` with `{}`.\n",
            tick(&self.a.file),
            tick(&self.b.file)
        );
        if self.identical {
            s.push_str("No differences.\n");
            return s;
        }
        let sm = &self.summary;
        let _ = writeln!(
            s,
            "- Apps: {} changes\n- Partitions: {} changed\n- Files: {} added, {} removed, {} changed\n- Props: {} changed\n",
            sm.apps, sm.partitions, sm.files_added, sm.files_removed, sm.files_changed, sm.props
        );
        self.md_apps(&mut s);
        self.md_partitions(&mut s);
        self.md_props(&mut s);
        self.md_files(&mut s);
        s
    }

    /// The apps table, one row per change, by kind of change.
    fn md_apps(&self, s: &mut String) {
        let ap = &self.apps;
        if !ap.is_empty() {
            s.push_str("### Apps\n\n| Change | Package | Path | Version |\n|---|---|---|---|\n");
            for x in &ap.added {
                let _ = writeln!(
                    s,
                    "| added | {} | {} | {} |",
                    code(&x.package),
                    code(&x.path),
                    md(&version(x.version_code, x.version_name.as_deref()))
                );
            }
            for x in &ap.removed {
                let _ = writeln!(
                    s,
                    "| removed | {} | {} | {} |",
                    code(&x.package),
                    code(&x.path),
                    md(&version(x.version_code, x.version_name.as_deref()))
                );
            }
            for x in &ap.updated {
                let what = match x.direction.as_str() {
                    "up" => "updated",
                    "down" => "downgraded",
                    _ => "renamed version",
                };
                let _ = writeln!(
                    s,
                    "| {what} | {} | {} | {} → {} |",
                    code(&x.package),
                    code(&x.path),
                    md(&version(x.from_code, x.from_name.as_deref())),
                    md(&version(x.to_code, x.to_name.as_deref()))
                );
            }
            for x in &ap.signer_changed {
                let _ = writeln!(
                    s,
                    "| signer changed | {} | {} | {} → {} |",
                    code(&x.package),
                    code(&x.path),
                    code(&short(x.from.as_deref())),
                    code(&short(x.to.as_deref()))
                );
            }
            for x in &ap.moved {
                let _ = writeln!(
                    s,
                    "| moved | {} | {} → {} | |",
                    code(&x.package),
                    code(&x.from),
                    code(&x.to)
                );
            }
            for x in &ap.content_changed {
                let _ = writeln!(
                    s,
                    "| changed | {} | {} | {} (same) |",
                    code(&x.package),
                    code(&x.path),
                    md(&version(x.version_code, x.version_name.as_deref()))
                );
            }
            s.push('\n');
        }
    }

    /// The partitions table, with sizes before and after.
    fn md_partitions(&self, s: &mut String) {
        if !self.partitions.is_empty() {
            s.push_str(
                "### Partitions\n\n| Partition | Change | Before | After | Difference |\n|---|---|---:|---:|---:|\n",
            );
            for p in &self.partitions {
                let size = |v: Option<u64>| v.map_or("—".to_string(), human);
                let edited = p
                    .edited_blocks_b
                    .map_or(String::new(), |n| format!(" (edited in place: {n} blocks)"));
                let _ = writeln!(
                    s,
                    "| {} | {}{edited} | {} | {} | {} |",
                    code(&p.name),
                    p.change,
                    size(p.size_a),
                    size(p.size_b),
                    signed_size(p.delta)
                );
            }
            s.push('\n');
        }
    }

    /// The properties table.
    fn md_props(&self, s: &mut String) {
        if !self.props.is_empty() {
            s.push_str(
                "### Properties\n\n| Partition | Property | Before | After |\n|---|---|---|---|\n",
            );
            for p in &self.props {
                let v = |x: Option<&str>| x.map_or("—".to_string(), code);
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} |",
                    md(&p.partition),
                    code(&p.key),
                    v(p.a.as_deref()),
                    v(p.b.as_deref())
                );
            }
            s.push('\n');
        }
    }

    /// The files table, folded under a summary line.
    fn md_files(&self, s: &mut String) {
        let sm = &self.summary;
        if !self.files.is_empty() {
            let _ = writeln!(
                s,
                "### Files\n\n<details>\n<summary>{} added, {} removed, {} changed</summary>\n\n| Change | Path | Details |\n|---|---|---|",
                sm.files_added, sm.files_removed, sm.files_changed
            );
            for f in &self.files {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} |",
                    f.change,
                    code(&f.path),
                    md(&file_detail(f))
                );
            }
            s.push_str("\n</details>\n");
        }
    }

    /// Canonical JSON (sorted keys, trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        super::canonical_json(self)
    }
}

/// Markdown table text: pipes, angle brackets and line breaks escaped.
fn md(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\n', '\r'], " ")
}

/// Text inside a code span: backticks cannot be escaped there, so they
/// become quotes.
fn tick(s: &str) -> String {
    s.replace('`', "'").replace(['\n', '\r'], " ")
}

/// A table cell as code.
fn code(s: &str) -> String {
    format!("`{}`", tick(s).replace('|', "\\|"))
}
