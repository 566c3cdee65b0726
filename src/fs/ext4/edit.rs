//! Editing an ext4 image in place: removing entries and replacing files
//! while every surviving inode keeps its number and every surviving block
//! its address and bytes (what a kernel `rm` and a rewrite would do, minus
//! the journal and the timestamps, so the output is deterministic).
//!
//! The edit reads the whole source before writing anything, so a damaged
//! image fails with nothing written. It then:
//! - unlinks the entries from their parent directories the kernel's way
//!   ([`dir`]), in linear directories and htree leaf blocks (index blocks
//!   are left as they are: unlinking never changes a hash), updating the
//!   blocks' checksum tails; folders go with everything under them, and
//!   parents lose the link of each removed subdirectory;
//! - releases the inodes no name points at any more (hard links only lose a
//!   name) and their blocks: extent trees with their index blocks, ext2/3
//!   block maps with their indirect blocks, extended-attribute blocks by
//!   their reference count; with `shared_blocks`, a block is released only
//!   when no surviving inode maps it. Released blocks and inode records are
//!   zeroed;
//! - writes each replaced file into free blocks, from its own old ones on,
//!   so a file that still fits stays where it was;
//! - updates the bitmaps, group descriptor counts and checksums and the
//!   superblock's free counts and checksum (the `bitmap` and `csum` modules).
//!
//! Refused with a message naming the feature: a journal that needs
//! recovery, inline data, meta_bg, bigalloc, quota, encryption, casefold,
//! ea_inode and features newer than it knows.

mod bitmap;
mod csum;
pub mod dir;
mod inode;
mod layout;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Seek, Write};
use std::path::Path;

use crate::fs::edit::{Changed, Overlay, write_out};
pub use crate::fs::edit::{Edit, EditStats, push_range};
use dir::{DirError, Entry};
use inode::Ino;
use layout::{Group, Super};

/// Why an ext4 image could not be edited.
#[derive(Debug, thiserror::Error)]
pub enum Ext4EditError {
    /// A field of the source image is out of range.
    #[error("invalid ext4 image: {field} = {value} at offset {offset}: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The value found.
        value: u64,
        /// Byte offset of the field in the image.
        offset: u64,
        /// What is wrong with it.
        why: String,
    },
    /// A directory block is malformed.
    #[error("invalid ext4 image: directory /{path} (inode {inode}), block {block}: {source}")]
    Directory {
        /// The directory.
        path: String,
        /// Its inode.
        inode: u32,
        /// The physical block.
        block: u64,
        /// What is wrong.
        source: DirError,
    },
    /// The image or a file uses something that cannot be edited safely.
    #[error("cannot edit /{path} in place: {feature}")]
    Unsupported {
        /// What cannot be edited.
        feature: String,
        /// The file (empty for the whole image).
        path: String,
    },
    /// A path of the edit is not in the image.
    #[error("/{path}: not in the image")]
    NotFound {
        /// The path.
        path: String,
    },
    /// A file to replace is not a regular file.
    #[error("/{path}: not a regular file, cannot replace its content")]
    NotRegular {
        /// The path.
        path: String,
    },
    /// No room for a replaced file's content.
    #[error("/{path}: no {blocks} free blocks for the new content")]
    NoSpace {
        /// The file.
        path: String,
        /// Blocks needed.
        blocks: u64,
    },
    /// Reading the source or writing the output failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The error.
        source: io::Error,
    },
}

impl Ext4EditError {
    /// The library error for editing the image file `image`, the partition
    /// named `source` for messages (`package.zip:system`): a source that
    /// cannot be read or an output that cannot be written is an I/O error
    /// about `image` (exit 4); a malformed image, a feature the editor
    /// refuses or a path it does not find makes the input invalid or
    /// unsupported (exit 3). A refused feature names the way out: a rebuild
    /// as EROFS, only for kernels that mount it.
    pub fn into_error(self, image: &Path, source: &str) -> crate::Error {
        match self {
            Ext4EditError::Io { context, source } => crate::Error::io(
                image,
                io::Error::new(source.kind(), format!("{context}: {source}")),
            ),
            e @ Ext4EditError::Unsupported { .. } => crate::Error::invalid(
                source,
                format!(
                    "{e}; --repack --ext4-to-erofs rebuilds it as EROFS \
                     instead (only for kernels that mount EROFS)"
                ),
            ),
            e => crate::Error::invalid(source, e.to_string()),
        }
    }
}

type Result<T> = std::result::Result<T, Ext4EditError>;

fn invalid(field: &'static str, value: u64, offset: u64, why: &str) -> Ext4EditError {
    Ext4EditError::Invalid {
        field,
        value,
        offset,
        why: why.to_string(),
    }
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

const ROOT: u32 = 2;
const FT_DIR: u8 = 2;

/// The source image, parsed.
struct Fs<'a> {
    img: &'a [u8],
    sb: Super,
    groups: Vec<Group>,
}

impl Fs<'_> {
    fn inode(&self, n: u32) -> Result<Ino> {
        inode::read(self.img, &self.sb, &self.groups, n)
    }

    /// A directory's blocks in logical order: (logical, physical).
    fn dir_blocks(&self, d: &Ino) -> Result<Vec<(u64, u64)>> {
        let map = inode::blocks(self.img, &self.sb, d)?;
        let count = d.size().div_ceil(self.sb.bs);
        let mut out = Vec::new();
        for &(l, p, n) in &map.data {
            for k in 0..n {
                if l + k < count {
                    out.push((l + k, p + k));
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn entries(&self, d: &Ino, p: u64, path: &str) -> Result<Vec<Entry>> {
        let bs = self.sb.bs;
        dir::parse(&self.img[(p * bs) as usize..((p + 1) * bs) as usize]).map_err(|source| {
            Ext4EditError::Directory {
                path: path.to_string(),
                inode: d.n,
                block: p,
                source,
            }
        })
    }

    /// The live entries of directory `d` (not "." and "..").
    fn children(&self, d: &Ino, path: &str) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for (_, p) in self.dir_blocks(d)? {
            for e in self.entries(d, p, path)? {
                if e.inode != 0 && e.name != b"." && e.name != b".." {
                    out.push(e);
                }
            }
        }
        Ok(out)
    }

    /// Resolves `path` to its parent directory and its entry there.
    fn lookup(&self, path: &str) -> Result<(Ino, Entry)> {
        let not_found = || Ext4EditError::NotFound {
            path: path.to_string(),
        };
        let mut dir = self.inode(ROOT)?;
        let parts: Vec<&str> = path.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            if !dir.is_dir() || part.is_empty() || *part == "." || *part == ".." {
                return Err(not_found());
            }
            let here = parts[..i].join("/");
            let e = self
                .children(&dir, &here)?
                .into_iter()
                .find(|e| e.name == part.as_bytes())
                .ok_or_else(not_found)?;
            if i + 1 == parts.len() {
                return Ok((dir, e));
            }
            dir = self.inode(e.inode)?;
        }
        Err(not_found())
    }
}

/// What the edit removes, found by walking the paths.
#[derive(Default)]
struct Plan {
    /// Names to unlink, by parent directory inode.
    unlink: BTreeMap<u32, BTreeSet<Vec<u8>>>,
    /// Names removed from each non-directory inode.
    lost_names: BTreeMap<u32, u32>,
    /// Directories removed with everything in them.
    dead_dirs: BTreeSet<u32>,
    /// Subdirectories each surviving parent loses.
    lost_subdirs: BTreeMap<u32, u16>,
    /// A path of each inode involved (for messages).
    paths: BTreeMap<u32, String>,
}

impl Plan {
    fn remove(&mut self, fs: &Fs<'_>, path: &str) -> Result<()> {
        let (parent, e) = fs.lookup(path)?;
        self.unlink
            .entry(parent.n)
            .or_default()
            .insert(e.name.clone());
        self.paths.insert(e.inode, path.to_string());
        let parent_path = path.rsplit_once('/').map_or("", |(p, _)| p);
        self.paths
            .entry(parent.n)
            .or_insert_with(|| parent_path.to_string());
        let child = fs.inode(e.inode)?;
        if child.is_dir() || e.file_type == FT_DIR {
            *self.lost_subdirs.entry(parent.n).or_default() += 1;
            self.collect(fs, &child, path)
        } else {
            *self.lost_names.entry(e.inode).or_default() += 1;
            Ok(())
        }
    }

    /// Everything under directory `d`, which goes.
    fn collect(&mut self, fs: &Fs<'_>, d: &Ino, path: &str) -> Result<()> {
        if d.n == ROOT || !self.dead_dirs.insert(d.n) {
            return Err(Ext4EditError::Invalid {
                field: "directory entry",
                value: d.n.into(),
                offset: d.at,
                why: format!("/{path} links back to a directory above it"),
            });
        }
        for e in fs.children(d, path)? {
            let p = format!("{path}/{}", String::from_utf8_lossy(&e.name));
            let child = fs.inode(e.inode)?;
            self.paths.insert(e.inode, p.clone());
            if child.is_dir() {
                self.collect(fs, &child, &p)?;
            } else {
                *self.lost_names.entry(e.inode).or_default() += 1;
            }
        }
        Ok(())
    }
}

/// The paths of an edit, without a leading `/`, sorted, and without those
/// inside another removed folder.
fn removal_paths(e: &Edit) -> Vec<String> {
    let mut paths: Vec<String> = e
        .remove
        .iter()
        .map(|p| p.trim_matches('/').to_string())
        .collect();
    paths.sort();
    paths.dedup();
    let mut out: Vec<String> = Vec::new();
    for p in paths {
        if out.last().is_some_and(|l| p.starts_with(&format!("{l}/"))) {
            continue;
        }
        out.push(p);
    }
    out
}

/// Edits the ext4 image `src` (whole, in memory) into `out`, written from
/// offset 0; the output has the source's size.
pub fn edit<W: Write + Seek>(src: &[u8], e: &Edit, out: &mut W) -> Result<EditStats> {
    let sb = layout::parse_super(src)?;
    let groups = layout::parse_groups(src, &sb)?;
    let fs = Fs {
        img: src,
        sb,
        groups,
    };
    let mut plan = Plan::default();
    for p in removal_paths(e) {
        plan.remove(&fs, &p)?;
    }
    let mut replaced = Vec::new();
    for (path, bytes) in &e.replace {
        let path = path.trim_matches('/');
        let (_, entry) = fs.lookup(path)?;
        let ino = fs.inode(entry.inode)?;
        if ino.mode() & inode::S_IFMT != inode::S_IFREG {
            return Err(Ext4EditError::NotRegular { path: path.into() });
        }
        if plan.lost_names.contains_key(&ino.n) {
            return Err(Ext4EditError::Unsupported {
                feature: "a file both removed and replaced".into(),
                path: path.into(),
            });
        }
        replaced.push((ino, path.to_string(), bytes.as_slice()));
    }
    let mut o = Overlay::new(src, fs.sb.bs);
    let released = apply::release(&fs, &plan, &replaced, &mut o)?;
    let stats = apply::finish(&fs, o, &released, replaced.len() as u64, out)?;
    Ok(stats)
}

mod apply;

/// Edits the image file `src` into `out` (written from offset 0; the caller
/// makes it atomic). The source is only read.
pub fn edit_image(src: &Path, e: &Edit, out: &mut std::fs::File) -> Result<EditStats> {
    let io_err = |source| Ext4EditError::Io {
        context: "reading the source image",
        source,
    };
    let file = std::fs::File::open(src).map_err(io_err)?;
    // SAFETY: the mapping is read-only and romkit never writes to its
    // source; a file changed underneath by another process can only yield
    // wrong bytes, which the checks after a build report.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?;
    let _mapped = crate::util::pages::MappedGuard::new(&map);
    let stats = edit(&map, e, out)?;
    out.set_len(stats.size)
        .map_err(|source| Ext4EditError::Io {
            context: "writing the edited image",
            source,
        })?;
    Ok(stats)
}

/// Sets the change and access times of every inode in use to `seconds`
/// (nanoseconds 0), recomputing inode checksums: `mke2fs -d` takes them
/// from the source folder, where the kernel sets them (reading a file moves
/// its access time), so images made from the same tree differ without this.
/// Returns the number of inodes changed.
pub fn set_times(img: &mut [u8], seconds: u32) -> Result<u64> {
    let sb = layout::parse_super(img)?;
    let groups = layout::parse_groups(img, &sb)?;
    let mut o = Overlay::new(img, sb.bs);
    let mut n_set = 0u64;
    for n in 1..=sb.inodes {
        let (g, i) = sb.inode_group(n);
        let grp = &groups[g as usize];
        if grp.flags & layout::BG_INODE_UNINIT != 0 {
            continue;
        }
        let at = grp.inode_table * sb.bs + i * sb.inode_size;
        let raw = &img[at as usize..(at + sb.inode_size) as usize];
        if le16(raw, 0) == 0 {
            continue;
        }
        o.write(at + 0x08, &seconds.to_le_bytes());
        o.write(at + 0x0C, &seconds.to_le_bytes());
        let extra = if sb.inode_size > 128 {
            le16(raw, 0x80)
        } else {
            0
        };
        if extra >= 8 {
            o.write(at + 0x84, &0u32.to_le_bytes());
        }
        if extra >= 16 {
            o.write(at + 0x8C, &0u32.to_le_bytes());
        }
        csum::inode(&mut o, &sb, n, at);
        n_set += 1;
    }
    let mut out = std::io::Cursor::new(Vec::with_capacity(img.len()));
    write_out(&o, img.len() as u64, &mut out).map_err(|source| Ext4EditError::Io {
        context: "setting change times",
        source,
    })?;
    img.copy_from_slice(out.get_ref());
    Ok(n_set)
}
