//! Reading an EROFS image into a [`Tree`] through the `erofs-rs` crate.
//!
//! The tree keeps a handle on the image: file contents are read on demand, so
//! listing a partition or removing files from it never loads untouched files.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use erofs_rs::EroFS;
use erofs_rs::backend::MmapImage;

use crate::fs::tree::{DataSource, FileData, Inode, InodeId, Kind, Meta, Tree};

/// Largest decoded-to-stored ratio accepted for a file: LZ4 cannot exceed
/// about 255:1, so a file claiming more than this times the image size is a
/// lie that must not make romkit produce endless zeros.
const MAX_EXPANSION: u64 = 256;

pub use crate::fs::ReadError;

/// An opened EROFS image.
#[derive(Clone)]
pub struct ErofsImage {
    fs: Arc<EroFS<MmapImage>>,
    len: u64,
}

impl std::fmt::Debug for ErofsImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErofsImage")
            .field("len", &self.len)
            .finish()
    }
}

fn invalid(e: impl std::fmt::Display) -> ReadError {
    ReadError::Invalid("EROFS", e.to_string())
}

impl ErofsImage {
    /// Opens an image file.
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        let len = std::fs::metadata(path)?.len();
        // SAFETY: the mapping is read-only and romkit never writes to an image
        // it reads; a file changed underneath by another process can only
        // produce wrong bytes, which the hash checks downstream report.
        let img = unsafe { MmapImage::new_from_path(path)? };
        let fs = EroFS::new(img).map_err(invalid)?;
        Ok(ErofsImage {
            fs: Arc::new(fs),
            len,
        })
    }

    /// Build time from the superblock.
    pub fn build_time(&self) -> i64 {
        self.fs.super_block().created_unix().map_or(0, |t| t.0)
    }

    /// Streams the content of inode `nid` (of `size` bytes) into `w`.
    pub fn copy_to(&self, nid: u64, size: u64, w: &mut dyn Write) -> io::Result<u64> {
        if size > self.len.saturating_mul(MAX_EXPANSION) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "inode {nid} claims {size} bytes, impossible in a {}-byte image",
                    self.len
                ),
            ));
        }
        let inode = self.fs.get_inode(nid).map_err(io::Error::other)?;
        let mut f = self.fs.open_inode_file(inode).map_err(io::Error::other)?;
        let mut buf = vec![0u8; 256 << 10];
        let mut total = 0u64;
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            total += n as u64;
            if total > size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("inode {nid} yields more than its {size} bytes"),
                ));
            }
            w.write_all(&buf[..n])?;
        }
        if total != size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("inode {nid} yields {total} bytes, expected {size}"),
            ));
        }
        Ok(total)
    }

    /// Reads the image into a tree.
    pub fn tree(&self) -> Result<Tree, ReadError> {
        let fs = &self.fs;
        let root_nid = fs.super_block().root_inode_id();
        let root = fs.get_inode(root_nid).map_err(invalid)?;
        if !root.is_dir() {
            return Err(ReadError::Invalid(
                "EROFS",
                format!("root inode {root_nid} is not a directory"),
            ));
        }
        let mut tree = Tree::new(self.meta(root)?);
        let source: Arc<dyn DataSource> = Arc::new(self.clone());
        let mut by_nid: HashMap<u64, InodeId> = HashMap::new();
        by_nid.insert(root_nid, tree.root());
        let mut by_path: HashMap<Vec<u8>, InodeId> = HashMap::new();
        by_path.insert(Vec::new(), tree.root());
        for entry in fs.walk_dir("/").map_err(invalid)? {
            let entry = entry.map_err(invalid)?;
            let path = entry.dir_entry.path();
            let path = path
                .as_bytes()
                .strip_prefix(b"/")
                .unwrap_or(path.as_bytes())
                .to_vec();
            let (parent_path, name) = match path.iter().rposition(|&b| b == b'/') {
                Some(i) => (&path[..i], &path[i + 1..]),
                None => (&path[..0], &path[..]),
            };
            let parent = *by_path.get(parent_path).ok_or_else(|| {
                ReadError::Invalid(
                    "EROFS",
                    format!(
                        "{}: parent directory not seen before it",
                        String::from_utf8_lossy(&path)
                    ),
                )
            })?;
            let inode = entry.inode;
            let nid = inode.id();
            let id = match by_nid.get(&nid) {
                Some(&id) if !inode.is_dir() => id, // a hard link
                Some(_) => {
                    return Err(ReadError::Invalid(
                        "EROFS",
                        format!(
                            "{}: directory inode {nid} reachable twice",
                            String::from_utf8_lossy(&path)
                        ),
                    ));
                }
                None => {
                    let raw = inode.file_type().as_raw_mode() & 0o170000;
                    let kind = match raw {
                        0o040000 => Kind::Dir(Default::default()),
                        0o100000 => Kind::File(FileData::Lazy {
                            source: source.clone(),
                            key: nid,
                            size: inode.data_size(),
                        }),
                        0o120000 => {
                            let t = fs.read_link_inode(inode).map_err(invalid)?;
                            Kind::Symlink(t.as_bytes().to_vec())
                        }
                        0o020000 | 0o060000 => {
                            let (maj, min) = inode.device().unwrap_or((0, 0));
                            let (maj, min) = (u64::from(maj), u64::from(min));
                            let dev = ((maj & 0xfff) << 8)
                                | ((maj & !0xfff) << 32)
                                | (min & 0xff)
                                | ((min & !0xff) << 12);
                            if raw == 0o020000 {
                                Kind::CharDev(dev)
                            } else {
                                Kind::BlockDev(dev)
                            }
                        }
                        0o010000 => Kind::Fifo,
                        0o140000 => Kind::Socket,
                        other => {
                            return Err(ReadError::Invalid(
                                "EROFS",
                                format!(
                                    "{}: unknown file type {other:o}",
                                    String::from_utf8_lossy(&path)
                                ),
                            ));
                        }
                    };
                    let id = tree.add_inode(Inode {
                        kind,
                        meta: self.meta(inode)?,
                    });
                    by_nid.insert(nid, id);
                    id
                }
            };
            tree.link(parent, name, id).map_err(|e| {
                ReadError::Invalid("EROFS", format!("{}: {e}", String::from_utf8_lossy(&path)))
            })?;
            if inode.is_dir() {
                by_path.insert(path, id);
            }
        }
        Ok(tree)
    }

    fn meta(&self, inode: erofs_rs::types::Inode) -> Result<Meta, ReadError> {
        use std::os::unix::fs::PermissionsExt;
        let (mtime, mtime_nsec) = inode.modified_unix();
        let xattrs = self.fs.xattrs_inode(inode).map_err(invalid)?;
        Ok(Meta {
            perm: inode.permissions().mode() & 0o7777,
            uid: inode.uid(),
            gid: inode.gid(),
            mtime,
            mtime_nsec,
            xattrs: xattrs.into_iter().collect(),
        })
    }
}

impl DataSource for ErofsImage {
    fn read(&self, key: u64, size: u64, out: &mut Vec<u8>) -> io::Result<()> {
        out.clear();
        // `copy_to` has checked nothing yet; reserve only what the image can hold.
        if size <= self.len.saturating_mul(MAX_EXPANSION) {
            out.reserve_exact(size as usize);
        }
        self.copy_to(key, size, out).map(|_| ())
    }

    fn stream(&self, key: u64, size: u64, w: &mut dyn io::Write) -> io::Result<()> {
        self.copy_to(key, size, w).map(|_| ())
    }
}
