//! Reading an EROFS image into a [`Tree`] through the `erofs-rs` crate.
//!
//! The tree keeps a handle on the image: file contents are read on demand, so
//! listing a partition or removing files from it never loads untouched files.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use erofs_rs::EroFS;
use erofs_rs::backend::MmapImage;

use super::layout::{MAGIC, SUPER_OFFSET, SUPER_SIZE};
use crate::fs::tree::{DataSource, FileData, Inode, InodeId, Kind, Meta, Tree};

/// Largest decoded-to-stored ratio accepted for a file: LZ4 cannot exceed
/// about 255:1, so a file claiming more than this times the image size is a
/// lie that must not make romkit produce endless zeros.
const MAX_EXPANSION: u64 = 256;

/// Content bytes read between two drops of the mapping's pages.
const TRIM_EVERY: u64 = 16 << 20;

/// The start of the mapping that stays resident: it holds the superblock
/// and the compression records `patch_deflate_window` may have written to.
const KEEP_RESIDENT: usize = 64 << 10;

pub use crate::fs::ReadError;

/// An opened EROFS image.
#[derive(Clone)]
pub struct ErofsImage {
    fs: Arc<EroFS<MmapImage>>,
    len: u64,
    /// The mapping's address range, for dropping pages already read.
    map_range: (usize, usize),
    /// Bytes of file content read since pages were last dropped.
    since_trim: Arc<AtomicU64>,
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
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        // SAFETY: the mapping is private (copy-on-write): the byte patched
        // below changes this process's view only, never the file; a file
        // changed underneath by another process can only produce wrong bytes,
        // which the hash checks downstream report.
        let mut map = unsafe { memmap2::MmapOptions::new().map_copy(&file)? };
        patch_deflate_window(&mut map);
        let map = map.make_read_only()?;
        let map_range = (map.as_ptr() as usize, map.as_ptr() as usize + map.len());
        let img = MmapImage::new(map);
        let fs = EroFS::new(img).map_err(invalid)?;
        Ok(ErofsImage {
            fs: Arc::new(fs),
            len,
            map_range,
            since_trim: Arc::new(AtomicU64::new(0)),
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
            // Inside the loop: one APK can be hundreds of MiB.
            self.trim(n as u64);
        }
        if total != size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("inode {nid} yields {total} bytes, expected {size}"),
            ));
        }
        Ok(total)
    }

    /// Counts `read` bytes of content and, every [`TRIM_EVERY`] bytes, drops
    /// the mapping's pages from memory (see `crate::util::pages`): reading
    /// every file of a partition, as the manifest does, must not keep the
    /// whole image resident.
    fn trim(&self, read: u64) {
        if self.since_trim.fetch_add(read, Ordering::Relaxed) + read < TRIM_EVERY {
            return;
        }
        self.since_trim.store(0, Ordering::Relaxed);
        let (start, end) = self.map_range;
        let from = start + KEEP_RESIDENT.min(end - start);
        // SAFETY: the range is part of this image's file mapping, alive as
        // long as `self.fs`; its only page written to (the deflate window
        // patch, in the superblock's compression records) lies in the first
        // KEEP_RESIDENT bytes, which are excluded.
        unsafe {
            crate::util::pages::drop_mapped(std::slice::from_raw_parts(
                from as *const u8,
                end - from,
            ))
        }
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

/// erofs-utils 1.8 compressing with libdeflate records the DEFLATE window as
/// `ilog2(0)`, that is 0 (libdeflate has no window setting, so mkfs never
/// learns a dictionary size). The kernel only rejects windows above 15 and
/// decodes any raw DEFLATE stream with a 32 KiB history, but erofs-rs demands
/// 8..=15. The stream itself is ordinary raw DEFLATE, so the mapping is made
/// to say 15, the window every DEFLATE decoder supports.
pub(crate) fn patch_deflate_window(map: &mut [u8]) {
    const COMPR_CFGS: u32 = 0x2;
    const DEFLATE: u32 = 2;
    let sb = SUPER_OFFSET as usize;
    let Some(head) = map.get(sb..sb + SUPER_SIZE) else {
        return;
    };
    let le16 = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let incompat = u32::from_le_bytes([head[80], head[81], head[82], head[83]]);
    let algs = u32::from(le16(head, 84));
    if u32::from_le_bytes([head[0], head[1], head[2], head[3]]) != MAGIC
        || incompat & COMPR_CFGS == 0
        || algs & (1 << DEFLATE) == 0
    {
        return;
    }
    // Records follow the superblock and its extension slots: for each
    // algorithm in the bitmap, lowest first, a 4-aligned le16 length and the
    // algorithm's configuration.
    let mut at = sb + SUPER_SIZE + usize::from(head[13]) * 16;
    for alg in 0..16 {
        if algs & (1 << alg) == 0 {
            continue;
        }
        at = at.next_multiple_of(4);
        let Some(len) = map.get(at..at + 2).map(|b| usize::from(le16(b, 0))) else {
            return;
        };
        if alg == DEFLATE {
            // Only inside the part of the mapping that stays resident.
            if len >= 1 && at + 2 < KEEP_RESIDENT && map.get(at + 2) == Some(&0) {
                map[at + 2] = 15;
            }
            return;
        }
        at += 2 + len;
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
