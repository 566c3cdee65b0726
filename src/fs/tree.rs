//! The file-tree model every filesystem reads into and writes from.
//!
//! A tree is an arena of inodes. Directories map names to inode ids, so a file
//! reachable under several names (a hard link) is one inode with several
//! entries, exactly as on disk. File contents are referenced lazily through a
//! [`DataSource`]: reading a partition and removing some of it never copies the
//! untouched files' bytes into memory.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// Index of an inode in a [`Tree`].
pub type InodeId = usize;

/// Where a file's bytes come from.
pub trait DataSource: Send + Sync + fmt::Debug {
    /// Reads the whole content of the file identified by `key` into `out`
    /// (cleared first). The source checks that it produces `size` bytes.
    fn read(&self, key: u64, size: u64, out: &mut Vec<u8>) -> io::Result<()>;

    /// Writes the content to `w` piece by piece (sources that decode in
    /// chunks override this, so a consumer can hash while the data is hot).
    fn stream(&self, key: u64, size: u64, w: &mut dyn io::Write) -> io::Result<()> {
        let mut buf = Vec::new();
        self.read(key, size, &mut buf)?;
        w.write_all(&buf)
    }
}

/// A writer that only hashes and counts what it is given.
#[derive(Default)]
struct HashWriter {
    sha: Sha256,
    len: u64,
}

impl io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sha.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Length and SHA-256 of file contents already read, so that content read
/// once (an APK hashed while it was identified, a file under several names)
/// is not read again for the manifest. Entries are keyed by where the bytes
/// live, a lazily read file's source and key; the cache holds each source,
/// so its address cannot be reused by another while the entry exists. Files
/// held in memory are never cached.
#[derive(Default)]
pub struct HashCache(std::sync::Mutex<HashMap<Location, CachedHash>>);

/// Where a lazily read file's bytes live: its source's address and key.
pub type Location = (usize, u64);

/// One [`HashCache`] entry: the source it keeps alive, length, SHA-256.
type CachedHash = (Arc<dyn DataSource>, u64, [u8; 32]);

impl HashCache {
    fn key(data: &FileData) -> Option<(Location, &Arc<dyn DataSource>)> {
        match data {
            FileData::Bytes(_) => None,
            FileData::Lazy { source, .. } => Some((data.location()?, source)),
        }
    }

    /// Records that the content of `data` is `len` bytes hashing to
    /// `sha256`.
    pub fn insert(&self, data: &FileData, len: u64, sha256: [u8; 32]) {
        if let Some((k, source)) = Self::key(data) {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.insert(k, (Arc::clone(source), len, sha256));
        }
    }

    /// The length and SHA-256 of the content of `data`: recorded, or read
    /// (streamed, in bounded memory) and recorded.
    pub fn hash(&self, data: &FileData) -> io::Result<(u64, [u8; 32])> {
        if let Some((k, _)) = Self::key(data) {
            let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, len, sha)) = map.get(&k) {
                return Ok((*len, *sha));
            }
        }
        let mut h = HashWriter::default();
        data.stream(&mut h)?;
        let sha: [u8; 32] = h.sha.finalize().into();
        self.insert(data, h.len, sha);
        Ok((h.len, sha))
    }
}

/// The content of a regular file.
#[derive(Clone, Debug)]
pub enum FileData {
    /// Bytes held in memory (added or edited files).
    Bytes(Arc<Vec<u8>>),
    /// Bytes read on demand from an image.
    Lazy {
        /// The image.
        source: Arc<dyn DataSource>,
        /// What the source needs to find the file (an inode number).
        key: u64,
        /// File size.
        size: u64,
    },
}

impl FileData {
    /// File size.
    pub fn size(&self) -> u64 {
        match self {
            FileData::Bytes(b) => b.len() as u64,
            FileData::Lazy { size, .. } => *size,
        }
    }

    /// Reads the whole content.
    pub fn read(&self, out: &mut Vec<u8>) -> io::Result<()> {
        match self {
            FileData::Bytes(b) => {
                out.clear();
                out.extend_from_slice(b);
                Ok(())
            }
            FileData::Lazy { source, key, size } => source.read(*key, *size, out),
        }
    }

    /// Where a lazily read file's bytes live (its source's address and its
    /// key): two files with the same location have the same content.
    /// `None` for bytes in memory.
    pub fn location(&self) -> Option<Location> {
        match self {
            FileData::Bytes(_) => None,
            FileData::Lazy { source, key, .. } => {
                Some((Arc::as_ptr(source) as *const () as usize, *key))
            }
        }
    }

    /// Writes the whole content to `w`, in pieces for lazily read files.
    pub fn stream(&self, w: &mut dyn io::Write) -> io::Result<()> {
        match self {
            FileData::Bytes(b) => w.write_all(b),
            FileData::Lazy { source, key, size } => source.stream(*key, *size, w),
        }
    }
}

/// What an inode is.
#[derive(Clone, Debug)]
pub enum Kind {
    /// A directory: entry name to inode.
    Dir(BTreeMap<Vec<u8>, InodeId>),
    /// A regular file.
    File(FileData),
    /// A symbolic link and its target (never followed by romkit).
    Symlink(Vec<u8>),
    /// A character device and its device number.
    CharDev(u64),
    /// A block device and its device number.
    BlockDev(u64),
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
}

impl Kind {
    /// The `S_IFMT` bits of this kind.
    pub fn type_bits(&self) -> u32 {
        match self {
            Kind::Dir(_) => 0o040000,
            Kind::File(_) => 0o100000,
            Kind::Symlink(_) => 0o120000,
            Kind::CharDev(_) => 0o020000,
            Kind::BlockDev(_) => 0o060000,
            Kind::Fifo => 0o010000,
            Kind::Socket => 0o140000,
        }
    }

    /// A one-word name for listings.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Dir(_) => "dir",
            Kind::File(_) => "file",
            Kind::Symlink(_) => "symlink",
            Kind::CharDev(_) => "chardev",
            Kind::BlockDev(_) => "blockdev",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
        }
    }
}

/// Metadata of an inode, kept byte-exact.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Meta {
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    pub perm: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds of the modification time.
    pub mtime_nsec: u32,
    /// Extended attributes by full name (`security.selinux`), values as stored.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Meta {
    /// The SELinux label, without the trailing NUL that Android stores.
    pub fn selinux_label(&self) -> Option<String> {
        self.xattrs.get(&b"security.selinux"[..]).map(|v| {
            let v = v.strip_suffix(&[0]).unwrap_or(v);
            String::from_utf8_lossy(v).into_owned()
        })
    }

    /// The effective capability mask from `security.capability`
    /// (VFS_CAP_REVISION 2/3: permitted low and high words), if present.
    pub fn capabilities(&self) -> Option<u64> {
        let v = self.xattrs.get(&b"security.capability"[..])?;
        let word = |o: usize| {
            v.get(o..o + 4)
                .map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
        };
        let lo = word(4)?;
        let hi = word(12).unwrap_or(0);
        Some((u64::from(hi) << 32) | u64::from(lo))
    }
}

/// One inode.
#[derive(Clone, Debug)]
pub struct Inode {
    /// What it is.
    pub kind: Kind,
    /// Its metadata.
    pub meta: Meta,
}

/// A file tree.
#[derive(Clone, Debug)]
pub struct Tree {
    inodes: Vec<Option<Inode>>,
    root: InodeId,
}

/// Errors from tree operations.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// No such path.
    #[error("{0}: no such file or directory")]
    NotFound(String),
    /// A path component is not a directory.
    #[error("{0}: not a directory")]
    NotDir(String),
    /// The path already exists.
    #[error("{0}: already exists")]
    Exists(String),
    /// A name is not a single valid component.
    #[error("{0:?}: invalid file name (empty, '.', '..', or containing '/' or NUL)")]
    BadName(String),
}

/// Whether `name` is a single valid path component.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

/// One entry of a per-file listing (what the manifest records).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FileRecord {
    /// Path from the tree root, `/`-separated, without a leading slash.
    pub path: String,
    /// `dir`, `file`, `symlink`, ...
    pub kind: &'static str,
    /// Size in bytes (files), target length (symlinks), 0 otherwise.
    pub size: u64,
    /// SHA-256 of the content (files) or the target (symlinks).
    pub sha256: Option<String>,
    /// Full mode including the type bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// SELinux label.
    pub label: Option<String>,
    /// Capability mask, when `security.capability` is set.
    pub capabilities: Option<u64>,
    /// Symlink target.
    pub target: Option<String>,
}

impl Tree {
    /// A tree holding only an empty root directory with `meta`.
    pub fn new(root_meta: Meta) -> Self {
        Tree {
            inodes: vec![Some(Inode {
                kind: Kind::Dir(BTreeMap::new()),
                meta: root_meta,
            })],
            root: 0,
        }
    }

    /// The root directory.
    pub fn root(&self) -> InodeId {
        self.root
    }

    /// An inode by id. Panics on a removed id, which is a bug in the caller.
    pub fn inode(&self, id: InodeId) -> &Inode {
        self.inodes[id].as_ref().expect("live inode")
    }

    /// Mutable access to an inode.
    pub fn inode_mut(&mut self, id: InodeId) -> &mut Inode {
        self.inodes[id].as_mut().expect("live inode")
    }

    /// Adds an inode not yet linked anywhere.
    pub fn add_inode(&mut self, inode: Inode) -> InodeId {
        self.inodes.push(Some(inode));
        self.inodes.len() - 1
    }

    /// Links `child` into directory `dir` under `name`.
    pub fn link(&mut self, dir: InodeId, name: &[u8], child: InodeId) -> Result<(), TreeError> {
        if !valid_name(name) {
            return Err(TreeError::BadName(
                String::from_utf8_lossy(name).into_owned(),
            ));
        }
        match &mut self.inode_mut(dir).kind {
            Kind::Dir(entries) => {
                if entries.contains_key(name) {
                    return Err(TreeError::Exists(
                        String::from_utf8_lossy(name).into_owned(),
                    ));
                }
                entries.insert(name.to_vec(), child);
                Ok(())
            }
            _ => Err(TreeError::NotDir(
                String::from_utf8_lossy(name).into_owned(),
            )),
        }
    }

    /// Looks a `/`-separated path up from the root (no symlink following).
    pub fn lookup(&self, path: &str) -> Result<InodeId, TreeError> {
        let mut cur = self.root;
        for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
            match &self.inode(cur).kind {
                Kind::Dir(entries) => {
                    cur = *entries
                        .get(comp.as_bytes())
                        .ok_or_else(|| TreeError::NotFound(path.to_string()))?;
                }
                _ => return Err(TreeError::NotDir(path.to_string())),
            }
        }
        Ok(cur)
    }

    /// Removes the entry at `path` and everything below it. Inodes that are
    /// no longer linked anywhere are freed; a hard-linked file survives under
    /// its other names.
    pub fn remove(&mut self, path: &str) -> Result<(), TreeError> {
        let (parent, name) = match path.trim_matches('/').rsplit_once('/') {
            Some((p, n)) => (self.lookup(p)?, n),
            None => (self.root, path.trim_matches('/')),
        };
        let child = match &mut self.inode_mut(parent).kind {
            Kind::Dir(entries) => entries
                .remove(name.as_bytes())
                .ok_or_else(|| TreeError::NotFound(path.to_string()))?,
            _ => return Err(TreeError::NotDir(path.to_string())),
        };
        self.collect_garbage(child);
        Ok(())
    }

    /// Frees `id` and its descendants unless still reachable.
    fn collect_garbage(&mut self, _id: InodeId) {
        let mut reachable = vec![false; self.inodes.len()];
        let mut stack = vec![self.root];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut reachable[i], true) {
                continue;
            }
            if let Some(Inode {
                kind: Kind::Dir(entries),
                ..
            }) = &self.inodes[i]
            {
                stack.extend(entries.values().copied());
            }
        }
        for (i, r) in reachable.into_iter().enumerate() {
            if !r {
                self.inodes[i] = None;
            }
        }
    }

    /// Adds a regular file at `path` (its parent must exist).
    pub fn add_file(
        &mut self,
        path: &str,
        data: FileData,
        meta: Meta,
    ) -> Result<InodeId, TreeError> {
        let (parent, name) = match path.trim_matches('/').rsplit_once('/') {
            Some((p, n)) => (self.lookup(p)?, n),
            None => (self.root, path.trim_matches('/')),
        };
        let id = self.add_inode(Inode {
            kind: Kind::File(data),
            meta,
        });
        if let Err(e) = self.link(parent, name.as_bytes(), id) {
            self.inodes[id] = None;
            return Err(e);
        }
        Ok(id)
    }

    /// Every entry in depth-first order, directories before their contents and
    /// entries in byte order of their names: (path, inode). The root is `""`.
    /// A hard-linked inode appears once per name.
    pub fn walk(&self) -> Vec<(String, InodeId)> {
        let mut out = Vec::new();
        let mut stack = vec![(String::new(), self.root)];
        while let Some((path, id)) = stack.pop() {
            if let Kind::Dir(entries) = &self.inode(id).kind {
                for (name, child) in entries.iter().rev() {
                    let n = String::from_utf8_lossy(name);
                    let p = if path.is_empty() {
                        n.into_owned()
                    } else {
                        format!("{path}/{n}")
                    };
                    stack.push((p, *child));
                }
            }
            out.push((path, id));
        }
        out
    }

    /// Number of names each inode is reachable by (its link count, not
    /// counting `.` and `..` of directories).
    pub fn link_counts(&self) -> Vec<u32> {
        let mut n = vec![0u32; self.inodes.len()];
        n[self.root] = 1;
        for inode in self.inodes.iter().flatten() {
            if let Kind::Dir(entries) = &inode.kind {
                for c in entries.values() {
                    n[*c] += 1;
                }
            }
        }
        n
    }

    /// Number of live inodes.
    pub fn inode_count(&self) -> usize {
        self.inodes.iter().flatten().count()
    }

    /// The per-file listing the manifest uses, hashing every file's content.
    pub fn records(&self) -> io::Result<Vec<FileRecord>> {
        self.records_cached(&HashCache::default())
    }

    /// [`Tree::records`], taking the hashes of contents already read from
    /// `cache` (and adding those it reads).
    pub fn records_cached(&self, cache: &HashCache) -> io::Result<Vec<FileRecord>> {
        use rayon::prelude::*;
        // Files in parallel, each streamed through the hash: memory stays a
        // few buffers per worker whatever the largest file.
        self.walk()
            .into_par_iter()
            .map(|(path, id)| {
                let ino = self.inode(id);
                let (size, sha256, target) = match &ino.kind {
                    Kind::File(data) => {
                        let (len, sha) = cache.hash(data)?;
                        (len, Some(crate::util::hex(&sha)), None)
                    }
                    Kind::Symlink(t) => (
                        t.len() as u64,
                        Some(crate::util::hex(&Sha256::digest(t))),
                        Some(String::from_utf8_lossy(t).into_owned()),
                    ),
                    _ => (0, None, None),
                };
                Ok(FileRecord {
                    path,
                    kind: ino.kind.name(),
                    size,
                    sha256,
                    mode: ino.kind.type_bits() | ino.meta.perm,
                    uid: ino.meta.uid,
                    gid: ino.meta.gid,
                    label: ino.meta.selinux_label(),
                    capabilities: ino.meta.capabilities(),
                    target,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(perm: u32) -> Meta {
        Meta {
            perm,
            ..Default::default()
        }
    }

    fn dir(t: &mut Tree, parent: InodeId, name: &str) -> InodeId {
        let id = t.add_inode(Inode {
            kind: Kind::Dir(BTreeMap::new()),
            meta: meta(0o755),
        });
        t.link(parent, name.as_bytes(), id).unwrap();
        id
    }

    #[test]
    fn walk_lookup_remove_and_hard_links() {
        let mut t = Tree::new(meta(0o755));
        let app = dir(&mut t, 0, "app");
        let bin = dir(&mut t, 0, "bin");
        let f = t
            .add_file(
                "app/a.apk",
                FileData::Bytes(Arc::new(b"apk".to_vec())),
                meta(0o644),
            )
            .unwrap();
        t.link(bin, b"hard", f).unwrap();
        t.add_file("app/b.apk", FileData::Bytes(Arc::new(vec![])), meta(0o644))
            .unwrap();
        let paths: Vec<String> = t.walk().into_iter().map(|p| p.0).collect();
        assert_eq!(
            paths,
            ["", "app", "app/a.apk", "app/b.apk", "bin", "bin/hard"]
        );
        assert_eq!(t.lookup("/app/a.apk").unwrap(), f);
        assert_eq!(t.link_counts()[f], 2);
        assert!(matches!(t.lookup("app/a.apk/x"), Err(TreeError::NotDir(_))));
        assert!(matches!(t.link(app, b"..", f), Err(TreeError::BadName(_))));
        assert!(matches!(t.link(app, b"a/b", f), Err(TreeError::BadName(_))));
        assert!(matches!(
            t.link(app, b"b.apk", f),
            Err(TreeError::Exists(_))
        ));
        t.remove("app").unwrap();
        assert!(t.lookup("app").is_err());
        // The hard link keeps the file alive; b.apk is gone.
        assert_eq!(t.lookup("bin/hard").unwrap(), f);
        assert_eq!(t.inode_count(), 3);
        let recs = t.records().unwrap();
        assert_eq!(recs[2].path, "bin/hard");
        assert_eq!(recs[2].size, 3);
        assert_eq!(recs[2].mode, 0o100644);
    }

    #[test]
    fn label_and_capabilities() {
        let mut m = Meta::default();
        m.xattrs.insert(
            b"security.selinux".to_vec(),
            b"u:object_r:system_file:s0\0".to_vec(),
        );
        // VFS_CAP_REVISION_2, permitted = CAP_NET_RAW (bit 13) | CAP_SYS_NICE (bit 23)
        let mut cap = 0x0200_0001u32.to_le_bytes().to_vec();
        cap.extend_from_slice(&((1u32 << 13) | (1 << 23)).to_le_bytes());
        cap.extend_from_slice(&[0; 12]);
        m.xattrs.insert(b"security.capability".to_vec(), cap);
        assert_eq!(
            m.selinux_label().as_deref(),
            Some("u:object_r:system_file:s0")
        );
        assert_eq!(m.capabilities(), Some((1 << 13) | (1 << 23)));
    }
}
