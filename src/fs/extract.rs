//! Extracting a tree to a folder without root, and reading a folder back.
//!
//! Extraction never follows a link: every parent of an entry is a directory
//! romkit itself just created, files are created with `O_EXCL | O_NOFOLLOW`,
//! and symbolic links are created as links with their target untouched,
//! whatever it points at. Names come from the tree, which accepts no `/`, `.`,
//! `..` or NUL, so nothing can land outside the destination. Device nodes,
//! FIFOs and sockets are recorded in the sidecar instead of created.
//! Ownership is recorded, not applied; permissions and times are applied.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::sidecar::{self, ConfigEntry, Special};
use super::tree::{DataSource, FileData, Inode, InodeId, Kind, Meta, Tree};

/// Counts of what was extracted.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExtractStats {
    /// Directories created.
    pub dirs: u64,
    /// Regular files written (hard links counted once).
    pub files: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Symbolic links created.
    pub symlinks: u64,
    /// Device nodes, FIFOs and sockets recorded in the sidecar only.
    pub recorded: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

fn time_of(secs: i64, nsec: u32) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
            + Duration::from_nanos(u64::from(nsec))
    }
}

fn set_symlink_time(path: &Path, secs: i64, nsec: u32) -> io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let t = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: nsec as libc::c_long,
    };
    let times = [t, t];
    // SAFETY: valid NUL-terminated path and a two-element timespec array.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Writes `tree` under `dest` (which must not exist; its parent must), file
/// contents in parallel on `jobs` threads.
pub fn write_tree(tree: &Tree, dest: &Path, jobs: usize) -> io::Result<ExtractStats> {
    use rayon::prelude::*;
    std::fs::create_dir(dest)?;
    let mut stats = ExtractStats::default();
    let mut first: HashMap<InodeId, PathBuf> = HashMap::new();
    let mut dirs: Vec<(PathBuf, InodeId)> = Vec::new();
    let mut files: Vec<(String, PathBuf, InodeId)> = Vec::new();
    let mut links: Vec<(PathBuf, InodeId)> = Vec::new();
    // Pass 1: the skeleton, in walk order (parents first).
    for (rel, id) in tree.walk() {
        let path = if rel.is_empty() {
            dest.to_path_buf()
        } else {
            dest.join(&rel)
        };
        let ino = tree.inode(id);
        let m = &ino.meta;
        match &ino.kind {
            Kind::Dir(_) => {
                if !rel.is_empty() {
                    std::fs::create_dir(&path)?;
                }
                stats.dirs += 1;
                dirs.push((path, id));
            }
            Kind::File(_) => {
                if let std::collections::hash_map::Entry::Vacant(e) = first.entry(id) {
                    e.insert(path.clone());
                    files.push((rel, path, id));
                } else {
                    links.push((path, id));
                }
            }
            Kind::Symlink(target) => {
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &path)?;
                set_symlink_time(&path, m.mtime, m.mtime_nsec)?;
                stats.symlinks += 1;
            }
            Kind::CharDev(_) | Kind::BlockDev(_) | Kind::Fifo | Kind::Socket => {
                stats.recorded += 1;
            }
        }
    }
    // Pass 2: file contents, in parallel.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .map_err(io::Error::other)?;
    let written: Vec<u64> = pool.install(|| {
        files
            .par_iter()
            .map_init(Vec::new, |buf, (rel, path, id)| -> io::Result<u64> {
                let ino = tree.inode(*id);
                let Kind::File(data) = &ino.kind else {
                    return Ok(0);
                };
                let f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(0o600)
                    .open(path)?;
                data.read(buf)
                    .map_err(|e| io::Error::new(e.kind(), format!("{rel}: {e}")))?;
                (&f).write_all(buf)?;
                f.set_permissions(std::fs::Permissions::from_mode(ino.meta.perm))?;
                f.set_modified(time_of(ino.meta.mtime, ino.meta.mtime_nsec))?;
                Ok(buf.len() as u64)
            })
            .collect::<io::Result<Vec<u64>>>()
    })?;
    stats.files = written.len() as u64;
    stats.bytes = written.iter().sum();
    // Pass 3: hard links to the files just written.
    for (path, id) in &links {
        std::fs::hard_link(&first[id], path)?;
        stats.hardlinks += 1;
    }
    // Directory permissions and times last, deepest first, so that read-only
    // directories can still be filled and their times are not disturbed.
    for (path, id) in dirs.iter().rev() {
        let m = &tree.inode(*id).meta;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m.perm | 0o700))?;
        let d = File::open(path)?;
        d.set_modified(time_of(m.mtime, m.mtime_nsec))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m.perm))?;
    }
    Ok(stats)
}

/// File contents read from a folder on disk.
#[derive(Debug)]
pub struct DiskSource {
    paths: Vec<PathBuf>,
}

impl DiskSource {
    /// A source whose key `i` is the file `paths[i]`.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        DiskSource { paths }
    }
}

impl DataSource for DiskSource {
    fn read(&self, key: u64, size: u64, out: &mut Vec<u8>) -> io::Result<()> {
        let path = self
            .paths
            .get(key as usize)
            .ok_or_else(|| io::Error::other("bad file key"))?;
        out.clear();
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        io::Read::read_to_end(&mut io::Read::take(&f, size + 1), out)?;
        if out.len() as u64 != size {
            return Err(io::Error::other(format!(
                "{} changed size while being read ({} bytes, expected {size})",
                path.display(),
                out.len()
            )));
        }
        Ok(())
    }
}

/// Why a folder and its sidecars could not become a tree.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// Reading the folder failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The sidecar and the folder disagree, or a sidecar is malformed.
    #[error("{0}")]
    Mismatch(String),
}

/// Reads folder `dir` (the partition `mount`) with its `fs_config` and
/// `file_contexts` into a tree. Every entry on disk must be in `fs_config` and
/// every `fs_config` entry on disk (or recorded as a special file). With
/// `fixed_time`, every mtime becomes that time (reproducible builds).
pub fn read_dir_tree(
    dir: &Path,
    mount: &str,
    fs_config: &str,
    file_contexts: &str,
    fixed_time: Option<i64>,
) -> Result<Tree, PackError> {
    let config = sidecar::parse_fs_config(fs_config, mount)
        .map_err(|e| PackError::Mismatch(format!("fs_config {e}")))?;
    let labels = sidecar::parse_file_contexts(file_contexts, mount)
        .map_err(|e| PackError::Mismatch(format!("file_contexts {e}")))?;
    let mut by_path: HashMap<&str, &ConfigEntry> = HashMap::new();
    for e in &config {
        if by_path.insert(e.path.as_str(), e).is_some() {
            return Err(PackError::Mismatch(format!(
                "fs_config lists {mount}/{} twice",
                e.path
            )));
        }
    }
    let root_md = std::fs::symlink_metadata(dir).map_err(disk_err(dir))?;
    if !root_md.is_dir() {
        return Err(PackError::Mismatch(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let side = Sidecar {
        mount,
        by_path,
        labels,
        fixed_time,
    };
    let mut reader = DirReader {
        tree: Tree::new(side.meta_for("", Some(&root_md))?),
        source: DiskSource { paths: Vec::new() },
        pending: Vec::new(),
        seen_inodes: HashMap::new(),
        on_disk: std::iter::once(String::new()).collect(),
    };
    reader.walk(dir, &side)?;
    reader.add_specials(&config, &side, dir)?;
    Ok(reader.finish())
}

fn disk_err(path: &Path) -> impl FnOnce(io::Error) -> PackError + use<> {
    let path = path.to_path_buf();
    move |source| PackError::Io { path, source }
}

/// The fs_config and file_contexts of a folder being read back.
struct Sidecar<'a> {
    mount: &'a str,
    /// fs_config entries by path relative to the mount point.
    by_path: HashMap<&'a str, &'a ConfigEntry>,
    /// SELinux labels by relative path.
    labels: BTreeMap<String, String>,
    fixed_time: Option<i64>,
}

impl Sidecar<'_> {
    /// Metadata of `rel` (empty for the mount point): ids, mode, caps and
    /// label from the sidecar; the time fixed, else from disk (`md`), else
    /// from fs_config. Everything on disk must be in fs_config.
    fn meta_for(&self, rel: &str, md: Option<&std::fs::Metadata>) -> Result<Meta, PackError> {
        let e = self.by_path.get(rel).ok_or_else(|| {
            let shown = if rel.is_empty() {
                self.mount.to_string()
            } else {
                format!("{}/{rel}", self.mount)
            };
            PackError::Mismatch(format!(
                "{shown}: on disk but not in fs_config (add a line `{shown} UID GID MODE`)"
            ))
        })?;
        let mut m = Meta::default();
        sidecar::apply(&mut m, e, self.labels.get(rel).map(String::as_str));
        let (t, ns) = match (self.fixed_time, md, e.mtime) {
            (Some(t), _, _) => (t, 0),
            (None, Some(md), _) => (md.mtime(), md.mtime_nsec() as u32),
            (None, None, Some(t)) => t,
            (None, None, None) => (0, 0),
        };
        m.mtime = t;
        m.mtime_nsec = ns;
        Ok(m)
    }
}

/// A tree being read from a folder. Files are read lazily: each is a
/// placeholder until [`DirReader::finish`] points it at its path on disk.
/// Hard links to one file become one inode.
struct DirReader {
    tree: Tree,
    source: DiskSource,
    /// (inode, key in `source`, size) of every file.
    pending: Vec<(InodeId, u64, u64)>,
    /// Inode of each (device, inode number) with more than one link.
    seen_inodes: HashMap<(u64, u64), InodeId>,
    /// Relative paths found on disk.
    on_disk: std::collections::HashSet<String>,
}

impl DirReader {
    /// Adds everything below `dir`, each folder's entries in name order.
    fn walk(&mut self, dir: &Path, side: &Sidecar) -> Result<(), PackError> {
        let mut stack = vec![(dir.to_path_buf(), String::new(), self.tree.root())];
        while let Some((path, rel, parent)) = stack.pop() {
            let mut entries: Vec<_> = std::fs::read_dir(&path)
                .map_err(disk_err(&path))?
                .collect::<Result<_, _>>()
                .map_err(disk_err(&path))?;
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let name = entry.file_name();
                let name_str = name.to_str().ok_or_else(|| {
                    PackError::Mismatch(format!(
                        "{}: file name is not UTF-8",
                        entry.path().display()
                    ))
                })?;
                let child_rel = if rel.is_empty() {
                    name_str.to_string()
                } else {
                    format!("{rel}/{name_str}")
                };
                let p = entry.path();
                let id = self.add_entry(&p, &child_rel, side, &mut stack)?;
                self.tree
                    .link(parent, name_str.as_bytes(), id)
                    .map_err(|e| PackError::Mismatch(format!("{}: {e}", p.display())))?;
            }
        }
        Ok(())
    }

    /// The inode for the entry at `p` (`rel` below the mount point): a new
    /// one, or the existing one for another link to a file. A folder is
    /// pushed on `stack` to be read next.
    fn add_entry(
        &mut self,
        p: &Path,
        rel: &str,
        side: &Sidecar,
        stack: &mut Vec<(PathBuf, String, InodeId)>,
    ) -> Result<InodeId, PackError> {
        let md = std::fs::symlink_metadata(p).map_err(disk_err(p))?;
        self.on_disk.insert(rel.to_string());
        let meta = side.meta_for(rel, Some(&md))?;
        let ft = md.file_type();
        if ft.is_dir() {
            let id = self.tree.add_inode(Inode {
                kind: Kind::Dir(Default::default()),
                meta,
            });
            stack.push((p.to_path_buf(), rel.to_string(), id));
            Ok(id)
        } else if ft.is_symlink() {
            let t = std::fs::read_link(p).map_err(disk_err(p))?;
            Ok(self.tree.add_inode(Inode {
                kind: Kind::Symlink(t.as_os_str().as_bytes().to_vec()),
                meta,
            }))
        } else if ft.is_file() {
            if md.nlink() > 1
                && let Some(&id) = self.seen_inodes.get(&(md.dev(), md.ino()))
            {
                return Ok(id);
            }
            let key = self.source.paths.len() as u64;
            self.source.paths.push(p.to_path_buf());
            let id = self.tree.add_inode(Inode {
                kind: Kind::File(FileData::Bytes(Arc::new(Vec::new()))),
                meta,
            });
            self.pending.push((id, key, md.len()));
            self.seen_inodes.insert((md.dev(), md.ino()), id);
            Ok(id)
        } else {
            Err(PackError::Mismatch(format!(
                "{}: device nodes, FIFOs and sockets belong in fs_config (type=...), not on disk",
                p.display()
            )))
        }
    }

    /// Adds the special files fs_config records (devices, FIFOs, sockets);
    /// any other entry not found on disk is an error.
    fn add_specials(
        &mut self,
        config: &[ConfigEntry],
        side: &Sidecar,
        dir: &Path,
    ) -> Result<(), PackError> {
        let mount = side.mount;
        for e in config {
            if self.on_disk.contains(&e.path) {
                continue;
            }
            let kind = match &e.special {
                Some(Special::Chr(a, b)) => Kind::CharDev(sidecar::dev_join(*a, *b)),
                Some(Special::Blk(a, b)) => Kind::BlockDev(sidecar::dev_join(*a, *b)),
                Some(Special::Fifo) => Kind::Fifo,
                Some(Special::Sock) => Kind::Socket,
                None => {
                    return Err(PackError::Mismatch(format!(
                        "{mount}/{}: in fs_config but missing from {}",
                        e.path,
                        dir.display()
                    )));
                }
            };
            let meta = side.meta_for(&e.path, None)?;
            let tree = &mut self.tree;
            let (parent, name) = match e.path.rsplit_once('/') {
                Some((p, n)) => (
                    tree.lookup(p)
                        .map_err(|x| PackError::Mismatch(format!("{mount}/{}: {x}", e.path)))?,
                    n,
                ),
                None => (tree.root(), e.path.as_str()),
            };
            let id = tree.add_inode(Inode { kind, meta });
            tree.link(parent, name.as_bytes(), id)
                .map_err(|x| PackError::Mismatch(format!("{mount}/{}: {x}", e.path)))?;
        }
        Ok(())
    }

    /// The tree, every file now reading from its path on disk.
    fn finish(mut self) -> Tree {
        let source: Arc<dyn DataSource> = Arc::new(self.source);
        for (id, key, size) in self.pending {
            self.tree.inode_mut(id).kind = Kind::File(FileData::Lazy {
                source: source.clone(),
                key,
                size,
            });
        }
        self.tree
    }
}
