//! The system apps of a partition: where they are, which files belong to
//! each, and who each one is.
//!
//! An app is a folder under one of Android's app roots (`app`, `priv-app`,
//! `data-app`, `overlay`, `framework`, and the same under `system/`,
//! `product/`… in partitions that carry another one's tree, like `mi_ext`)
//! holding one or more APKs — the base APK, its splits — and everything else
//! in the folder (`oat/`, `lib/`), or a loose APK directly in an app root
//! (overlays, `framework-res.apk`). Paths are device paths without the
//! leading `/`: `product/app/Weather`, and `system/priv-app/Settings` for the
//! system-as-root system image.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::apk::{ApkFile, ApkIdentity};
use crate::fs::tree::{FileData, HashCache, Kind, Tree};

/// Folders that hold apps.
pub const APP_ROOTS: [&str; 5] = ["app", "priv-app", "data-app", "overlay", "framework"];

/// Partitions that carry apps, in the order listings use.
pub const APP_PARTITIONS: [&str; 9] = [
    "system",
    "system_ext",
    "product",
    "vendor",
    "odm",
    "mi_ext",
    "system_dlkm",
    "vendor_dlkm",
    "odm_dlkm",
];

/// A regular file of a partition, by device path.
#[derive(Clone, Debug)]
pub struct FileEntry {
    /// Device path without the leading `/`.
    pub path: String,
    /// Its content.
    pub data: FileData,
}

/// Where the files of a partition's tree live on the device: `""` for a
/// system-as-root system image (its root is `/`), else `"NAME/"`.
pub fn mount_prefix(partition: &str, tree: &Tree) -> String {
    if partition == "system"
        && (tree.lookup("system/build.prop").is_ok() || tree.lookup("system/app").is_ok())
    {
        String::new()
    } else {
        format!("{partition}/")
    }
}

/// Every regular file of a tree, with device paths.
pub fn tree_files(partition: &str, tree: &Tree) -> Vec<FileEntry> {
    let prefix = mount_prefix(partition, tree);
    tree.walk()
        .into_iter()
        .filter_map(|(path, id)| match &tree.inode(id).kind {
            Kind::File(data) => Some(FileEntry {
                path: format!("{prefix}{path}"),
                data: data.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Every regular file under folder `dir` (symlinks are not followed), with
/// device paths for partition `partition` (or, without `partition`, paths
/// relative to `dir`).
pub fn dir_files(partition: Option<&str>, dir: &Path) -> std::io::Result<Vec<FileEntry>> {
    let mut found: Vec<(String, std::path::PathBuf, u64)> = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, rel)) = stack.pop() {
        for e in std::fs::read_dir(&path)? {
            let e = e?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let child = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            let md = std::fs::symlink_metadata(e.path())?;
            if md.is_dir() {
                stack.push((e.path(), child));
            } else if md.is_file() {
                found.push((child, e.path(), md.len()));
            }
        }
    }
    found.sort();
    let sar = partition == Some("system") && found.iter().any(|f| f.0 == "system/build.prop");
    let prefix = match partition {
        Some(p) if !sar => format!("{p}/"),
        _ => String::new(),
    };
    let source = Arc::new(crate::fs::extract::DiskSource::new(
        found.iter().map(|f| f.1.clone()).collect(),
    ));
    Ok(found
        .into_iter()
        .enumerate()
        .map(|(i, (rel, _, size))| FileEntry {
            path: format!("{prefix}{rel}"),
            data: FileData::Lazy {
                source: source.clone(),
                key: i as u64,
                size,
            },
        })
        .collect())
}

/// An app found in a partition, before its APK is read.
#[derive(Clone, Debug)]
pub struct AppLocation {
    /// Partition.
    pub partition: String,
    /// The app folder, or the loose APK's path.
    pub path: String,
    /// The base APK.
    pub apk: FileEntry,
    /// Split APKs (device paths).
    pub splits: Vec<String>,
    /// Every file that belongs to the app, base APK included (device paths).
    pub files: Vec<String>,
    /// Total size of those files.
    pub size: u64,
}

/// Is `dir` (a device path) an app root: `.../{app,priv-app,...}` at most
/// three levels deep?
fn is_app_root(dir: &str) -> bool {
    let depth = dir.split('/').count();
    let last = dir.rsplit('/').next().unwrap_or(dir);
    depth <= 4 && APP_ROOTS.contains(&last)
}

/// The base APK of app folder `dir` (named `name`) among its APKs: `NAME.apk`;
/// else `NAME-master.apk` or another `*-master.apk` (HyperOS split folders such
/// as `split-XiaomiServiceFrameworkCN/`, whose splits are hyphenated too);
/// else `base.apk` (as installers write); else the first APK that is not
/// named like a split (`split_*`, `split-*`, `config.*`); else the first.
fn base_apk<'f>(dir: &str, name: &str, apks: &[&'f FileEntry]) -> Option<&'f FileEntry> {
    let file = |f: &FileEntry| f.path[dir.len() + 1..].to_string();
    let named = |want: &str| apks.iter().copied().find(|f| file(f) == want);
    named(&format!("{name}.apk"))
        .or_else(|| named(&format!("{name}-master.apk")))
        .or_else(|| {
            apks.iter()
                .copied()
                .find(|f| file(f).ends_with("-master.apk"))
        })
        .or_else(|| named("base.apk"))
        .or_else(|| {
            apks.iter().copied().find(|f| {
                let n = file(f);
                !(n.starts_with("split_") || n.starts_with("split-") || n.starts_with("config."))
            })
        })
        .or_else(|| apks.first().copied())
}

/// Finds the apps among a partition's files. With `loose_anywhere`, an APK
/// outside every app root is an app of its own (a plain folder of APKs).
pub fn locate(partition: &str, files: &[FileEntry], loose_anywhere: bool) -> Vec<AppLocation> {
    // Group files by app: the first path component below an app root.
    let mut groups: BTreeMap<String, Vec<&FileEntry>> = BTreeMap::new();
    let mut loose: Vec<&FileEntry> = Vec::new();
    for f in files {
        let parts: Vec<&str> = f.path.split('/').collect();
        // The deepest app root wins (system/app inside mi_ext's product/…).
        let Some(root_len) = (1..parts.len())
            .rev()
            .find(|&i| is_app_root(&parts[..i].join("/")))
        else {
            if loose_anywhere && f.path.ends_with(".apk") {
                loose.push(f);
            }
            continue;
        };
        let rest = &parts[root_len..];
        if rest.len() == 1 {
            if rest[0].ends_with(".apk") {
                loose.push(f);
            }
        } else if parts[root_len - 1] != "framework" {
            groups
                .entry(parts[..root_len + 1].join("/"))
                .or_default()
                .push(f);
        }
    }
    let mut out = Vec::new();
    for f in loose {
        out.push(AppLocation {
            partition: partition.to_string(),
            path: f.path.clone(),
            apk: f.clone(),
            splits: Vec::new(),
            files: vec![f.path.clone()],
            size: f.data.size(),
        });
    }
    for (dir, members) in groups {
        let name = dir.rsplit('/').next().unwrap_or(&dir);
        let apks: Vec<&FileEntry> = members
            .iter()
            .copied()
            .filter(|f| f.path.ends_with(".apk") && f.path[dir.len() + 1..].split('/').count() == 1)
            .collect();
        let base = base_apk(&dir, name, &apks);
        let Some(base) = base else { continue };
        out.push(AppLocation {
            partition: partition.to_string(),
            path: dir.clone(),
            apk: base.clone(),
            splits: apks
                .iter()
                .filter(|f| f.path != base.path)
                .map(|f| f.path.clone())
                .collect(),
            files: members.iter().map(|f| f.path.clone()).collect(),
            size: members.iter().map(|f| f.data.size()).sum(),
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// An app with its identity.
#[derive(Clone, Debug, Serialize)]
pub struct App {
    /// Partition.
    pub partition: String,
    /// The app folder or loose APK.
    pub path: String,
    /// The base APK.
    pub apk: String,
    /// Installed as privileged (`priv-app`).
    pub privileged: bool,
    /// Size of the base APK.
    pub apk_size: u64,
    /// SHA-256 of the base APK.
    pub sha256: String,
    /// Total size of the app's files.
    pub size: u64,
    /// Split APKs.
    pub splits: Vec<String>,
    /// Every file of the app.
    pub files: Vec<String>,
    /// What the base APK says (absent when it cannot be read).
    #[serde(flatten)]
    pub identity: Option<ApkIdentity>,
    /// Why the base APK could not be read.
    pub error: Option<String>,
}

impl App {
    /// The package name, if the APK could be read.
    pub fn package(&self) -> Option<&str> {
        self.identity.as_ref().map(|i| i.package.as_str())
    }
}

/// Streams a base APK out of its image, hashing it (while the data is in
/// cache) and identifying it, in bounded memory (see [`crate::apk::sink`]);
/// streams it again whole in the rare case the bounded copy missed a part
/// the identification needed.
fn read_apk(data: &FileData, cache: &HashCache) -> std::io::Result<ApkFile> {
    let mut sink = crate::apk::sink::ApkSink::new(data.size(), true);
    data.stream(&mut sink)?;
    let dropped = sink.dropped();
    let (hash, bytes) = sink.finish();
    let size = bytes.len() as u64;
    cache.insert(data, size, hash);
    let mut identity = crate::apk::identify(bytes);
    if identity.is_err() && dropped {
        let mut whole = crate::apk::sink::ApkSink::new(data.size(), false);
        data.stream(&mut whole)?;
        identity = crate::apk::identify(whole.finish().1);
    }
    Ok(ApkFile {
        size,
        sha256: crate::util::hex(&hash),
        identity,
    })
}

/// Reads every app's base APK in parallel (`jobs` threads). One unreadable
/// APK gives that app an error and never stops the others.
pub fn identify(locations: Vec<AppLocation>, jobs: usize) -> Vec<App> {
    identify_cached(locations, &[], jobs, &HashCache::default())
}

/// [`identify`], recording each base APK's hash in `cache`, and hashing
/// the files `also` into `cache` in the same pass (for the manifest, which
/// then reads nothing again). The pass hands the largest file still waiting
/// to the next free thread, so that it ends when the work does rather than
/// when the one large APK a thread met last does.
pub fn identify_cached(
    locations: Vec<AppLocation>,
    also: &[&FileData],
    jobs: usize,
    cache: &HashCache,
) -> Vec<App> {
    enum Work<'w> {
        App(AppLocation),
        Hash(&'w FileData),
    }
    let size = |w: &Work<'_>| match w {
        Work::App(loc) => loc.apk.data.size(),
        Work::Hash(d) => d.size(),
    };
    let mut work: Vec<Work> = locations.into_iter().map(Work::App).collect();
    work.extend(also.iter().map(|d| Work::Hash(d)));
    work.sort_by_key(|w| std::cmp::Reverse(size(w)));
    let work: Vec<std::sync::Mutex<Option<Work>>> = work
        .into_iter()
        .map(|w| std::sync::Mutex::new(Some(w)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let run = || {
        let mut apps = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(slot) = work.get(i) else {
                return apps;
            };
            match slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                Some(Work::App(loc)) => apps.push(identify_one(loc, cache)),
                // A file that cannot be read is read again, and the error
                // reported, by the manifest.
                Some(Work::Hash(d)) => drop(cache.hash(d)),
                None => {}
            }
        }
    };
    let mut apps: Vec<App> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..jobs.max(1)).map(|_| s.spawn(run)).collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    sort(&mut apps);
    apps
}

/// Reads one app's base APK (its hash recorded in `cache`); an unreadable
/// APK gives the app an error.
fn identify_one(loc: AppLocation, cache: &HashCache) -> App {
    let (file, error) = match read_apk(&loc.apk.data, cache) {
        Ok(f) => {
            let err = f.identity.as_ref().err().map(ToString::to_string);
            (Some(f), err)
        }
        Err(e) => (None, Some(format!("reading {}: {e}", loc.apk.path))),
    };
    let privileged = loc.path.split('/').any(|c| c == "priv-app");
    App {
        partition: loc.partition,
        privileged,
        apk_size: loc.apk.data.size(),
        sha256: file.as_ref().map(|f| f.sha256.clone()).unwrap_or_default(),
        size: loc.size,
        splits: loc.splits,
        files: loc.files,
        identity: file.and_then(|f| f.identity.ok()),
        error,
        apk: loc.apk.path,
        path: loc.path,
    }
}

/// Sorts apps by partition (in [`APP_PARTITIONS`] order) then path.
pub fn sort(apps: &mut [App]) {
    let rank = |p: &str| {
        APP_PARTITIONS
            .iter()
            .position(|x| *x == p)
            .unwrap_or(APP_PARTITIONS.len())
    };
    apps.sort_by(|a, b| {
        (rank(&a.partition), &a.partition, &a.path).cmp(&(
            rank(&b.partition),
            &b.partition,
            &b.path,
        ))
    });
}

/// One partition's files, loaded from a package, an image or a folder.
pub struct LoadedPartition {
    /// Partition name.
    pub name: String,
    /// The file tree (absent for a plain folder).
    pub tree: Option<Tree>,
    /// Its regular files, by device path.
    pub files: Vec<FileEntry>,
    /// A plain folder of APKs: every APK is an app, wherever it is.
    pub loose: bool,
}

/// The partitions of an input that carry apps. Temporary images (decoded
/// from a package) live as long as this value.
pub struct Loaded {
    /// The partitions, in [`APP_PARTITIONS`] order.
    pub partitions: Vec<LoadedPartition>,
    _tmp: Option<crate::rom::load::Decoded>,
}

impl Loaded {
    /// Locates the apps of every partition.
    pub fn locate(&self) -> Vec<AppLocation> {
        self.partitions
            .iter()
            .flat_map(|p| locate(&p.name, &p.files, p.loose))
            .collect()
    }
}

fn wanted(name: &str, only: Option<&[String]>) -> bool {
    only.is_none_or(|o| o.iter().any(|x| x == name))
}

/// Loads the app-carrying partitions of `input`: a package (each partition is
/// decoded, hashes checked, into a temporary image), a bare filesystem image
/// (its name without `.img` is the partition), a folder of partition folders
/// (as `unpack --files` writes), or one partition's folder.
pub fn load(input: &Path, only: Option<&[String]>, jobs: usize) -> crate::Result<Loaded> {
    use crate::error::Error;
    let md = std::fs::metadata(input).map_err(|e| Error::io(input, e))?;
    let stem = input
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".img").to_string())
        .unwrap_or_default();
    if md.is_dir() {
        let mut parts = Vec::new();
        for name in APP_PARTITIONS {
            let dir = input.join(name);
            if dir.is_dir() && wanted(name, only) {
                let files = dir_files(Some(name), &dir).map_err(|e| Error::io(&dir, e))?;
                parts.push(LoadedPartition {
                    name: name.to_string(),
                    tree: None,
                    files,
                    loose: false,
                });
            }
        }
        if parts.is_empty() && !APP_PARTITIONS.iter().any(|n| input.join(n).is_dir()) {
            let files = dir_files(None, input).map_err(|e| Error::io(input, e))?;
            parts.push(LoadedPartition {
                name: stem,
                tree: None,
                files,
                loose: true,
            });
        }
        return Ok(Loaded {
            partitions: parts,
            _tmp: None,
        });
    }
    if input
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("apk"))
    {
        let source = Arc::new(crate::fs::extract::DiskSource::new(vec![
            input.to_path_buf(),
        ]));
        let name = input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Ok(Loaded {
            partitions: vec![LoadedPartition {
                name: ".".into(),
                tree: None,
                files: vec![FileEntry {
                    path: name,
                    data: FileData::Lazy {
                        source,
                        key: 0,
                        size: md.len(),
                    },
                }],
                loose: true,
            }],
            _tmp: None,
        });
    }
    if crate::fs::sniff(input)
        .map_err(|e| Error::io(input, e))?
        .is_some()
    {
        let tree = crate::fs::read_tree(input)
            .map_err(|e| Error::invalid(input, e.unwrap_or_default()))?;
        let files = tree_files(&stem, &tree);
        return Ok(Loaded {
            partitions: vec![LoadedPartition {
                name: stem,
                tree: Some(tree),
                files,
                loose: false,
            }],
            _tmp: None,
        });
    }
    let rom = crate::rom::Rom::open(input)?;
    let present = rom.partition_names();
    if let Some(o) = only
        && let Some(bad) = o.iter().find(|n| !present.contains(n))
    {
        return Err(Error::Usage(format!(
            "partition {bad:?} is not in {} (it has: {})",
            input.display(),
            present.join(", ")
        )));
    }
    let names: Vec<String> = APP_PARTITIONS
        .iter()
        .filter(|n| present.iter().any(|p| p == *n) && wanted(n, only))
        .map(|n| n.to_string())
        .collect();
    let mut decoded = rom.decode_trees(&names, false, jobs)?;
    let parts = decoded
        .partitions
        .iter_mut()
        .filter_map(|p| {
            let tree = p.tree.take()?;
            Some(LoadedPartition {
                name: p.name.clone(),
                files: tree_files(&p.name, &tree),
                tree: Some(tree),
                loose: false,
            })
        })
        .collect();
    Ok(Loaded {
        partitions: parts,
        _tmp: Some(decoded),
    })
}

/// The package names of the apps in `input` (anything [`load`] reads).
pub fn packages_in(input: &Path, jobs: usize) -> crate::Result<Vec<String>> {
    let loaded = load(input, None, jobs)?;
    Ok(identify(loaded.locate(), jobs)
        .iter()
        .filter_map(|x| x.package().map(str::to_string))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> FileEntry {
        FileEntry {
            path: path.to_string(),
            data: FileData::Bytes(Arc::new(Vec::new())),
        }
    }

    fn base_of(dir: &str, names: &[&str]) -> String {
        let files: Vec<FileEntry> = names.iter().map(|n| entry(&format!("{dir}/{n}"))).collect();
        let apks: Vec<&FileEntry> = files.iter().collect();
        let name = dir.rsplit('/').next().unwrap();
        base_apk(dir, name, &apks).unwrap().path.clone()
    }

    #[test]
    fn base_apk_of_plain_split_and_installed_folders() {
        let d = "product/app/split-XiaomiServiceFrameworkCN";
        assert_eq!(
            base_of(
                d,
                &[
                    "split-XiaomiServiceFrameworkCN-arm64-v8a.apk",
                    "split-XiaomiServiceFrameworkCN-master.apk",
                    "split-XiaomiServiceFrameworkCN-xxhdpi.apk",
                ]
            ),
            format!("{d}/split-XiaomiServiceFrameworkCN-master.apk")
        );
        let d = "product/app/Weather";
        assert_eq!(
            base_of(d, &["split_config.arm64_v8a.apk", "Weather.apk"]),
            format!("{d}/Weather.apk")
        );
        let d = "data/app/x";
        assert_eq!(
            base_of(d, &["split_config.en.apk", "base.apk"]),
            format!("{d}/base.apk")
        );
        assert_eq!(
            base_of(d, &["config.xxhdpi.apk", "other.apk"]),
            format!("{d}/other.apk")
        );
    }
}
