//! Writing an EROFS image from a [`Tree`].
//!
//! Layout, in 4096-byte blocks:
//! ```text
//! block 0       1024 zero bytes, superblock, (compression config), root inode
//! file data     regular files in inode order: plain blocks or LZ4HC pclusters
//! dir data      directory blocks (and the rare symlink too long to inline)
//! shared xattrs (name, value) pairs used by two or more inodes
//! metadata      every other inode with its xattrs and its inline tail or
//!               compression index, 32-byte aligned
//! ```
//! `meta_blkaddr` is 0, so a nid is the inode's byte offset / 32. The root sits
//! right after the superblock so that its nid fits the superblock's 16 bits;
//! all other inodes follow the data, which lets file data be compressed in
//! parallel and streamed out before the metadata size is known.
//!
//! Inodes are compact (32 bytes) unless something does not fit: an mtime other
//! than the image's build time, ids or link counts above 65535, sizes of 4 GiB
//! or more. The build time is `SOURCE_DATE_EPOCH` when given, otherwise the
//! most common mtime, so most inodes stay compact. The UUID is derived from the
//! image content, so equal trees give equal bytes.
//!
//! [`write()`] goes in steps, each its own function: order the inodes, pick the
//! build time, gather the shared xattrs, plan every inode (size, format,
//! xattr area, whether its tail is inline), write file data then symlinks and
//! reserve directory blocks, place the inodes, fill the directories (which
//! need every nid), and last the metadata and block 0. File data is written
//! in inode order whatever the thread count, and nothing is written to block 0
//! until the rest of the image is hashed.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Seek, SeekFrom, Write};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::compress::{self, Compressed};
use super::layout::*;
use crate::fs::tree::{Inode, InodeId, Kind, Tree};

/// Block size romkit writes (Android's page size).
pub const BLOCK: u64 = 4096;

/// LZ4HC settings, as `mkfs.erofs -zlz4hc,LEVEL -C PCLUSTER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lz4hc {
    /// Compression level, 3-12 (mkfs.erofs's default is 9).
    pub level: i32,
    /// Largest physical cluster in bytes: a multiple of 4096, at most 1 MiB.
    pub pcluster: u32,
}

impl Default for Lz4hc {
    fn default() -> Self {
        Lz4hc {
            level: 9,
            pcluster: 4096,
        }
    }
}

/// Options for [`write()`].
#[derive(Clone, Debug)]
pub struct ErofsOptions {
    /// Build time for the superblock; `None` picks the most common mtime.
    pub build_time: Option<i64>,
    /// Volume name (at most 16 bytes).
    pub volume_name: Option<String>,
    /// Compress regular files with LZ4HC; `None` writes them uncompressed.
    pub compression: Option<Lz4hc>,
    /// Worker threads for compression.
    pub jobs: usize,
}

impl Default for ErofsOptions {
    fn default() -> Self {
        ErofsOptions {
            build_time: None,
            volume_name: None,
            compression: None,
            jobs: rayon::current_num_threads(),
        }
    }
}

/// What was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteStats {
    /// Image size in bytes.
    pub size: u64,
    /// Inodes written.
    pub inodes: u64,
    /// Files stored compressed.
    pub compressed_files: u64,
    /// Filesystem UUID.
    pub uuid: [u8; 16],
}

/// Why an image could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The tree holds something EROFS cannot represent.
    #[error("{path}: {why}")]
    Unrepresentable {
        /// Path in the tree.
        path: String,
        /// What cannot be stored.
        why: String,
    },
    /// Bad options.
    #[error("{0}")]
    Options(String),
    /// Reading a file's data or writing the image failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
}

impl WriteError {
    /// The library error for writing the image `image` from a tree read
    /// from `tree_source`: a failed read or write is an I/O error (exit 4), a
    /// tree EROFS cannot represent or unusable options make the input
    /// invalid (exit 3). Every command that writes EROFS maps through here,
    /// so one failure gives one exit code.
    pub fn into_error(
        self,
        image: &std::path::Path,
        tree_source: impl Into<std::path::PathBuf>,
    ) -> crate::Error {
        match self {
            WriteError::Io { context, source } => crate::Error::io(
                image,
                io::Error::new(source.kind(), format!("{context}: {source}")),
            ),
            other => crate::Error::invalid(tree_source, other.to_string()),
        }
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> WriteError {
    let context = context.into();
    move |source| WriteError::Io { context, source }
}

/// How an inode's content is stored.
#[derive(Debug, Default)]
enum Body {
    /// No content (devices, fifos, sockets, empty files).
    #[default]
    None,
    /// Blocks at `blkaddr`, the last `tail` bytes inline after the inode.
    Flat { blkaddr: u32, tail: Vec<u8> },
    /// LZ4HC extents from `blkaddr` (their data already written and dropped).
    Compressed {
        blkaddr: u32,
        c: Compressed,
        blocks: u64,
    },
}

/// Per-inode plan.
struct Plan {
    id: InodeId,
    path: String,
    extended: bool,
    /// Serialized xattr area (header, shared ids, inline entries); empty if none.
    xattrs: Vec<u8>,
    /// Content bytes for files, directories, symlinks.
    size: u64,
    /// Whether a tail may be inline (fits in a block with the inode).
    inline: bool,
    body: Body,
    /// Byte offset of the inode.
    offset: u64,
    nlink: u32,
    ftype: u8,
}

impl Plan {
    fn core_size(&self) -> u64 {
        if self.extended {
            EXTENDED_INODE as u64
        } else {
            COMPACT_INODE as u64
        }
    }
    fn base(&self) -> u64 {
        self.core_size() + self.xattrs.len() as u64
    }
    /// Blocks of content outside the metadata for flat layouts.
    fn flat_blocks(&self) -> u64 {
        if self.inline {
            self.size / BLOCK
        } else {
            self.size.div_ceil(BLOCK)
        }
    }
    /// Bytes the inode takes in the metadata area, from its start.
    fn record_len(&self) -> u64 {
        match &self.body {
            Body::Flat { tail, .. } => self.base() + tail.len() as u64,
            Body::Compressed { .. } => {
                (self.offset + self.base()).div_ceil(8) * 8 - self.offset
                    + Compressed::index_len(self.size)
            }
            Body::None => self.base(),
        }
    }
}

fn ftype(kind: &Kind) -> u8 {
    match kind {
        Kind::Dir(_) => ft::DIR,
        Kind::File(_) => ft::REG,
        Kind::Symlink(_) => ft::SYMLINK,
        Kind::CharDev(_) => ft::CHR,
        Kind::BlockDev(_) => ft::BLK,
        Kind::Fifo => ft::FIFO,
        Kind::Socket => ft::SOCK,
    }
}

/// Directory entries of one directory, in on-disk order, split into blocks.
fn dir_blocks(entries: &[(Vec<u8>, usize)]) -> Vec<&[(Vec<u8>, usize)]> {
    let mut blocks = Vec::new();
    let mut start = 0;
    let mut used = 0usize;
    for (i, (name, _)) in entries.iter().enumerate() {
        let need = DIRENT_SIZE + name.len();
        if used + need > BLOCK as usize {
            blocks.push(&entries[start..i]);
            start = i;
            used = 0;
        }
        used += need;
    }
    blocks.push(&entries[start..]);
    blocks
}

fn dir_size(blocks: &[&[(Vec<u8>, usize)]]) -> u64 {
    let last: usize = blocks
        .last()
        .map_or(0, |b| b.iter().map(|(n, _)| DIRENT_SIZE + n.len()).sum());
    (blocks.len() as u64 - 1) * BLOCK + last as u64
}

/// Serialized directory content (exactly `size` bytes).
fn dir_bytes(entries: &[(Vec<u8>, usize)], nids: &[u64], ftypes: &[u8]) -> Vec<u8> {
    let blocks = dir_blocks(entries);
    let mut bytes = Vec::with_capacity(blocks.len() * BLOCK as usize);
    for (bi, b) in blocks.iter().enumerate() {
        let mut blk = vec![0u8; BLOCK as usize];
        let mut nameoff = b.len() * DIRENT_SIZE;
        for (ei, (name, target)) in b.iter().enumerate() {
            let d = &mut blk[ei * DIRENT_SIZE..(ei + 1) * DIRENT_SIZE];
            d[0..8].copy_from_slice(&nids[*target].to_le_bytes());
            d[8..10].copy_from_slice(&(nameoff as u16).to_le_bytes());
            d[10] = ftypes[*target];
            blk[nameoff..nameoff + name.len()].copy_from_slice(name);
            nameoff += name.len();
        }
        if bi + 1 == blocks.len() {
            blk.truncate(nameoff);
        }
        bytes.extend_from_slice(&blk);
    }
    bytes
}

fn append_xattr_entry(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let (index, suffix) = split_xattr_name(name).expect("checked before");
    out.push(suffix.len() as u8);
    out.push(index);
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(suffix);
    out.extend_from_slice(value);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Writes blocks at the current position and hashes them.
struct Sink<'a, W: Write + Seek> {
    out: &'a mut W,
    hasher: Sha256,
    next_block: u64,
}

impl<W: Write + Seek> Sink<'_, W> {
    fn blocks(&mut self, bytes: &[u8]) -> Result<u32, WriteError> {
        let at = block_addr(self.next_block)?;
        self.out.write_all(bytes).map_err(io_err("writing image"))?;
        self.hasher.update(bytes);
        let pad = (bytes.len() as u64).div_ceil(BLOCK) * BLOCK - bytes.len() as u64;
        if pad > 0 {
            let z = vec![0u8; pad as usize];
            self.out.write_all(&z).map_err(io_err("writing image"))?;
            self.hasher.update(&z);
        }
        self.next_block += (bytes.len() as u64).div_ceil(BLOCK);
        Ok(at)
    }

    /// Writes the metadata area at `meta_start`, then block 0 with the
    /// superblock, whose UUID is the hash of all the rest. Returns the UUID.
    fn finish(
        mut self,
        meta: &[u8],
        mut block0: Vec<u8>,
        meta_start: u64,
        summary: &Summary,
        opts: &ErofsOptions,
    ) -> Result<[u8; 16], WriteError> {
        self.out
            .seek(SeekFrom::Start(meta_start))
            .map_err(io_err("seek"))?;
        self.out.write_all(meta).map_err(io_err("writing image"))?;
        self.hasher.update(meta);
        self.hasher.update(&block0);
        let uuid = content_uuid(self.hasher.finalize().as_slice());
        fill_block0(&mut block0, summary, &uuid, opts);
        self.out.seek(SeekFrom::Start(0)).map_err(io_err("seek"))?;
        self.out
            .write_all(&block0)
            .map_err(io_err("writing image"))?;
        self.out.flush().map_err(io_err("writing image"))?;
        Ok(uuid)
    }
}

/// Writes `tree` as an EROFS image into `out` (the image starts at offset 0).
pub fn write<W: Write + Seek>(
    tree: &Tree,
    opts: &ErofsOptions,
    out: &mut W,
) -> Result<WriteStats, WriteError> {
    check_options(opts)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build()
        .map_err(|e| WriteError::Options(format!("cannot start threads: {e}")))?;

    let order = InodeOrder::new(tree);
    let (build_time, build_nsec) = pick_build_time(tree, &order.order, opts);
    let shared = SharedXattrs::collect(tree, &order.order)?;
    let planner = Planner {
        tree,
        order: &order,
        links: tree.link_counts(),
        build_time,
        build_nsec,
        shared: &shared,
    };
    let (mut plans, dir_entries) = planner.plan_all()?;

    // Pass 1: data blocks from block 1 on: files, symlinks, then directories
    // (reserved only: their entries need nids).
    out.seek(SeekFrom::Start(BLOCK)).map_err(io_err("seek"))?;
    let mut sink = Sink {
        out,
        hasher: Sha256::new(),
        next_block: 1,
    };
    write_files(&pool, tree, opts, &mut plans, &mut sink)?;
    write_symlinks(tree, &mut plans, &mut sink)?;
    let dir_blk = reserve_dir_blocks(&mut plans, &mut sink)?;
    let dir_end = sink.next_block;
    let xattr_blkaddr = if shared.area.is_empty() { 0 } else { dir_end };
    let shared_blocks = (shared.area.len() as u64).div_ceil(BLOCK);
    let meta_start = (dir_end + shared_blocks) * BLOCK;

    let any_compressed = plans
        .iter()
        .any(|p| matches!(p.body, Body::Compressed { .. }));
    let big = plans
        .iter()
        .any(|p| matches!(&p.body, Body::Compressed { c, .. } if c.big));
    let total_blocks = place_inodes(&mut plans, meta_start, big)?;
    let nids: Vec<u64> = plans.iter().map(|p| p.offset / ISLOT).collect();

    // Pass 2: directory blocks, then the shared xattrs after them.
    fill_dirs(&mut plans, &dir_entries, &dir_blk, &nids, &mut sink)?;
    debug_assert!(sink.next_block <= dir_end);
    sink.next_block = dir_end;
    sink.out
        .seek(SeekFrom::Start(dir_end * BLOCK))
        .map_err(io_err("seek"))?;
    if !shared.area.is_empty() {
        sink.blocks(&shared.area)?;
    }

    // Metadata, then block 0 (which holds the UUID of everything else).
    let (meta, block0) = serialize_inodes(tree, &plans, meta_start, total_blocks);
    let summary = Summary {
        root_nid: nids[0],
        inodes: plans.len() as u64,
        build_time,
        build_nsec,
        total_blocks,
        xattr_blkaddr,
        any_compressed,
        big,
    };
    let uuid = sink.finish(&meta, block0, meta_start, &summary, opts)?;
    Ok(WriteStats {
        size: total_blocks * BLOCK,
        inodes: plans.len() as u64,
        compressed_files: plans
            .iter()
            .filter(|p| matches!(p.body, Body::Compressed { .. }))
            .count() as u64,
        uuid,
    })
}

/// Rejects compression settings mkfs.erofs would not accept either.
fn check_options(opts: &ErofsOptions) -> Result<(), WriteError> {
    if let Some(c) = opts.compression {
        if c.pcluster == 0 || !u64::from(c.pcluster).is_multiple_of(BLOCK) || c.pcluster > 1 << 20 {
            return Err(WriteError::Options(format!(
                "physical cluster size {} must be a multiple of 4096, at most 1 MiB",
                c.pcluster
            )));
        }
        if !(3..=12).contains(&c.level) {
            return Err(WriteError::Options(format!(
                "LZ4HC level {} must be 3-12",
                c.level
            )));
        }
    }
    Ok(())
}

/// Inodes in the order they are written: first appearance in the walk, root
/// first. A position in `order` is an inode's plan index everywhere below.
struct InodeOrder {
    /// Plan index of each inode.
    index: HashMap<InodeId, usize>,
    /// Path of first appearance and the inode, by plan index.
    order: Vec<(String, InodeId)>,
    /// Plan index of each directory's parent (0 for the root).
    parent: Vec<usize>,
    /// Number of subdirectories of each directory.
    subdirs: Vec<u32>,
}

impl InodeOrder {
    fn new(tree: &Tree) -> Self {
        let mut index: HashMap<InodeId, usize> = HashMap::new();
        let mut order: Vec<(String, InodeId)> = Vec::new();
        for (path, id) in tree.walk() {
            if let Entry::Vacant(e) = index.entry(id) {
                e.insert(order.len());
                order.push((path, id));
            }
        }
        let mut parent: Vec<usize> = vec![0; order.len()];
        let mut subdirs: Vec<u32> = vec![0; order.len()];
        for (i, (_, id)) in order.iter().enumerate() {
            if let Kind::Dir(entries) = &tree.inode(*id).kind {
                for child in entries.values() {
                    let c = index[child];
                    if matches!(tree.inode(*child).kind, Kind::Dir(_)) {
                        parent[c] = i;
                        subdirs[i] += 1;
                    }
                }
            }
        }
        InodeOrder {
            index,
            order,
            parent,
            subdirs,
        }
    }

    /// Entries of directory `i` with `.` and `..`, sorted by name as EROFS
    /// requires, each with its target's plan index.
    fn dir_list(&self, i: usize, entries: &BTreeMap<Vec<u8>, InodeId>) -> Vec<(Vec<u8>, usize)> {
        let mut list: Vec<(Vec<u8>, usize)> = Vec::with_capacity(entries.len() + 2);
        list.push((b".".to_vec(), i));
        list.push((b"..".to_vec(), self.parent[i]));
        for (name, c) in entries {
            list.push((name.clone(), self.index[c]));
        }
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }
}

/// Build time: the given one, else the most common mtime (ties go to the
/// earliest), so that most inodes stay compact.
fn pick_build_time(tree: &Tree, order: &[(String, InodeId)], opts: &ErofsOptions) -> (i64, u32) {
    if let Some(t) = opts.build_time {
        return (t, 0);
    }
    let mut counts: BTreeMap<(i64, u32), usize> = BTreeMap::new();
    for (_, id) in order {
        let m = &tree.inode(*id).meta;
        *counts.entry((m.mtime, m.mtime_nsec)).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(k, n)| (*n, std::cmp::Reverse(*k)))
        .map(|(k, _)| k)
        .unwrap_or((0, 0))
}

/// Xattr (name, value) pairs used by two or more inodes, stored once in the
/// shared area and referred to by id (the entry's offset / 4).
struct SharedXattrs<'t> {
    area: Vec<u8>,
    id: HashMap<(&'t [u8], &'t [u8]), u32>,
}

impl<'t> SharedXattrs<'t> {
    /// Checks every xattr can be stored and gathers the shared ones, in
    /// (name, value) order.
    fn collect(tree: &'t Tree, order: &[(String, InodeId)]) -> Result<Self, WriteError> {
        let mut pair_count: BTreeMap<(&[u8], &[u8]), usize> = BTreeMap::new();
        for (path, id) in order {
            for (k, v) in &tree.inode(*id).meta.xattrs {
                let (_, suffix) =
                    split_xattr_name(k).ok_or_else(|| WriteError::Unrepresentable {
                        path: path.clone(),
                        why: format!(
                            "xattr {:?} is in a namespace EROFS cannot store",
                            String::from_utf8_lossy(k)
                        ),
                    })?;
                if suffix.len() > 255 || v.len() > 65535 {
                    return Err(WriteError::Unrepresentable {
                        path: path.clone(),
                        why: format!("xattr {:?} is too long", String::from_utf8_lossy(k)),
                    });
                }
                *pair_count.entry((k.as_slice(), v.as_slice())).or_default() += 1;
            }
        }
        let mut area = Vec::new();
        let mut id: HashMap<(&[u8], &[u8]), u32> = HashMap::new();
        for ((k, v), n) in &pair_count {
            if *n >= 2 {
                id.insert((k, v), (area.len() / 4) as u32);
                append_xattr_entry(&mut area, k, v);
            }
        }
        Ok(SharedXattrs { area, id })
    }

    /// An inode's xattr area: header, shared ids, then its own entries;
    /// empty when it has no xattrs.
    fn inode_area(
        &self,
        path: &str,
        xattrs: &BTreeMap<Vec<u8>, Vec<u8>>,
    ) -> Result<Vec<u8>, WriteError> {
        let mut area = Vec::new();
        if xattrs.is_empty() {
            return Ok(area);
        }
        let shared: Vec<u32> = xattrs
            .iter()
            .filter_map(|(k, v)| self.id.get(&(k.as_slice(), v.as_slice())).copied())
            .collect();
        if shared.len() > 255 {
            return Err(WriteError::Unrepresentable {
                path: path.to_string(),
                why: "more than 255 shared xattrs".into(),
            });
        }
        area.extend_from_slice(&[0u8; 4]);
        area.push(shared.len() as u8);
        area.extend_from_slice(&[0u8; 7]);
        for s in &shared {
            area.extend_from_slice(&s.to_le_bytes());
        }
        for (k, v) in xattrs {
            if !self.id.contains_key(&(k.as_slice(), v.as_slice())) {
                append_xattr_entry(&mut area, k, v);
            }
        }
        Ok(area)
    }
}

/// A directory's entries, each a name and its target's plan index.
type DirEntries = Vec<(Vec<u8>, usize)>;

/// Everything needed to plan each inode before any data is written.
struct Planner<'a> {
    tree: &'a Tree,
    order: &'a InodeOrder,
    links: Vec<u32>,
    build_time: i64,
    build_nsec: u32,
    shared: &'a SharedXattrs<'a>,
}

impl Planner<'_> {
    /// One plan per inode in write order, and each directory's entries
    /// (empty for other inodes).
    fn plan_all(&self) -> Result<(Vec<Plan>, Vec<DirEntries>), WriteError> {
        let n = self.order.order.len();
        let mut plans = Vec::with_capacity(n);
        let mut dir_entries: Vec<DirEntries> = vec![Vec::new(); n];
        for (i, entries) in dir_entries.iter_mut().enumerate() {
            plans.push(self.plan(i, entries)?);
        }
        Ok((plans, dir_entries))
    }

    /// The plan of inode `i`: its size, inode format, xattr area and whether
    /// its tail can be inline. A directory's entries go to `dir_entries`.
    fn plan(&self, i: usize, dir_entries: &mut Vec<(Vec<u8>, usize)>) -> Result<Plan, WriteError> {
        let (path, id) = &self.order.order[i];
        let ino = self.tree.inode(*id);
        let m = &ino.meta;
        let size = match &ino.kind {
            Kind::File(d) => d.size(),
            Kind::Symlink(t) => t.len() as u64,
            Kind::Dir(entries) => {
                *dir_entries = self.order.dir_list(i, entries);
                dir_size(&dir_blocks(dir_entries))
            }
            _ => 0,
        };
        let nlink = match &ino.kind {
            Kind::Dir(_) => 2 + self.order.subdirs[i],
            _ => self.links[*id],
        };
        let extended = m.mtime != self.build_time
            || m.mtime_nsec != self.build_nsec
            || m.uid > 0xffff
            || m.gid > 0xffff
            || nlink > 0xffff
            || size > u64::from(u32::MAX);
        let xattrs = self.shared.inode_area(path, &m.xattrs)?;
        let base = if extended {
            EXTENDED_INODE
        } else {
            COMPACT_INODE
        } as u64
            + xattrs.len() as u64;
        if base > BLOCK {
            return Err(WriteError::Unrepresentable {
                path: path.clone(),
                why: format!("inode with its xattrs takes {base} bytes, more than a block"),
            });
        }
        let tail = size % BLOCK;
        let mut inline = tail > 0 && base + tail <= BLOCK;
        if i == 0 {
            // The root lives in block 0 after the superblock (and the
            // compression config record, 16 bytes, when present).
            inline &= SUPER_OFFSET + SUPER_SIZE as u64 + 32 + base + tail <= BLOCK;
        }
        let ft = ftype(&ino.kind);
        Ok(Plan {
            id: *id,
            path: path.clone(),
            extended,
            xattrs,
            size,
            inline: inline && matches!(ft, ft::REG | ft::DIR | ft::SYMLINK),
            body: Body::None,
            offset: 0,
            nlink,
            ftype: ft,
        })
    }
}

/// A block address, which EROFS keeps in 32 bits.
fn block_addr(block: u64) -> Result<u32, WriteError> {
    u32::try_from(block).map_err(|_| WriteError::Options("image larger than 16 TiB".into()))
}

/// Writes the full blocks of flat content at the sink and keeps the tail
/// for the inode when it is inline (all of it goes to blocks otherwise).
fn flat_body<W: Write + Seek>(
    p: &Plan,
    bytes: &[u8],
    sink: &mut Sink<'_, W>,
) -> Result<Body, WriteError> {
    let full = (p.flat_blocks() * BLOCK).min(p.size) as usize;
    let blkaddr = if full > 0 {
        sink.blocks(&bytes[..full])?
    } else {
        0
    };
    let tail = if p.inline {
        bytes[full..].to_vec()
    } else {
        Vec::new()
    };
    Ok(Body::Flat { blkaddr, tail })
}

/// A file's content and, when compression pays off, its compressed form.
type Prepared = (Vec<u8>, Option<Compressed>);

/// Reads one regular file and compresses it if asked to.
fn prepare_file(tree: &Tree, p: &Plan, compression: Option<Lz4hc>) -> Result<Prepared, WriteError> {
    let Kind::File(d) = &tree.inode(p.id).kind else {
        unreachable!("only regular files are in the window")
    };
    let mut buf = Vec::new();
    d.read(&mut buf)
        .map_err(io_err(format!("reading {}", p.path)))?;
    if buf.len() as u64 != p.size {
        return Err(WriteError::Io {
            context: format!("reading {}", p.path),
            source: io::Error::other(format!("got {} bytes, expected {}", buf.len(), p.size)),
        });
    }
    let c = compression.and_then(|z| compress::compress(&buf, z.level, z.pcluster as usize));
    Ok((buf, c))
}

/// File contents from the sink's block on, read and compressed in parallel
/// windows of about 64 MiB and written in inode order, so the image does
/// not depend on the thread count.
fn write_files<W: Write + Seek>(
    pool: &rayon::ThreadPool,
    tree: &Tree,
    opts: &ErofsOptions,
    plans: &mut [Plan],
    sink: &mut Sink<'_, W>,
) -> Result<(), WriteError> {
    let files: Vec<usize> = (0..plans.len())
        .filter(|&i| plans[i].ftype == ft::REG && plans[i].size > 0)
        .collect();
    let mut w = 0;
    while w < files.len() {
        let mut end = w;
        let mut bytes = 0u64;
        while end < files.len() && (end == w || bytes < 64 << 20) {
            bytes += plans[files[end]].size;
            end += 1;
        }
        let window = &files[w..end];
        let prepared: Vec<Result<Prepared, WriteError>> = pool.install(|| {
            window
                .par_iter()
                .map(|&i| prepare_file(tree, &plans[i], opts.compression))
                .collect()
        });
        for (&i, r) in window.iter().zip(prepared) {
            let (buf, c) = r?;
            let p = &mut plans[i];
            p.body = match c {
                Some(mut c) => {
                    let blkaddr = sink.blocks(&c.data)?;
                    let blocks = c.blocks();
                    c.data = Vec::new();
                    p.inline = false;
                    Body::Compressed { blkaddr, c, blocks }
                }
                None => flat_body(p, &buf, sink)?,
            };
        }
        w = end;
    }
    Ok(())
}

/// Symlink targets: inline when possible, else a data block.
fn write_symlinks<W: Write + Seek>(
    tree: &Tree,
    plans: &mut [Plan],
    sink: &mut Sink<'_, W>,
) -> Result<(), WriteError> {
    for p in plans.iter_mut().filter(|p| p.ftype == ft::SYMLINK) {
        let Kind::Symlink(t) = &tree.inode(p.id).kind else {
            unreachable!()
        };
        p.body = flat_body(p, t, sink)?;
    }
    Ok(())
}

/// Reserves the directories' blocks (filled by [`fill_dirs`] once nids are
/// known) and gives inline tails a placeholder of the right length. Returns
/// each directory's first block, by plan index.
fn reserve_dir_blocks<W: Write + Seek>(
    plans: &mut [Plan],
    sink: &mut Sink<'_, W>,
) -> Result<Vec<u32>, WriteError> {
    let mut dir_blk = vec![0u32; plans.len()];
    for (i, p) in plans
        .iter_mut()
        .enumerate()
        .filter(|(_, p)| p.ftype == ft::DIR)
    {
        let n = p.flat_blocks();
        if n > 0 {
            dir_blk[i] = block_addr(sink.next_block)?;
            sink.next_block += n;
        }
        let tail = if p.inline {
            vec![0u8; (p.size % BLOCK) as usize]
        } else {
            Vec::new()
        };
        p.body = Body::Flat {
            blkaddr: dir_blk[i],
            tail,
        };
    }
    Ok(dir_blk)
}

/// Places the root in block 0 after the superblock (and the compression
/// config when `big`), every other inode from `meta_start` on, 32-byte
/// aligned. Returns the image's size in blocks.
fn place_inodes(plans: &mut [Plan], meta_start: u64, big: bool) -> Result<u64, WriteError> {
    let root_at = SUPER_OFFSET + SUPER_SIZE as u64 + if big { 32 } else { 0 };
    plans[0].offset = root_at;
    if root_at + plans[0].record_len() > BLOCK {
        return Err(WriteError::Unrepresentable {
            path: "/".into(),
            why: "root inode and its xattrs do not fit after the superblock".into(),
        });
    }
    let mut cursor = meta_start;
    for p in plans.iter_mut().skip(1) {
        let mut at = cursor.div_ceil(ISLOT) * ISLOT;
        p.offset = at;
        // Core, xattrs and inline tail stay within one block; a compression
        // index may continue into the next ones.
        let keep = match p.body {
            Body::Compressed { .. } => p.base(),
            _ => p.record_len(),
        };
        if at % BLOCK + keep > BLOCK {
            at = at.div_ceil(BLOCK) * BLOCK;
            p.offset = at;
        }
        cursor = at + p.record_len();
    }
    // Never end the image right after an inode: readers look past it.
    let mut total_blocks = cursor.div_ceil(BLOCK).max(meta_start / BLOCK);
    if total_blocks * BLOCK - cursor < XATTR_IBODY_HEADER as u64 {
        total_blocks += 1;
    }
    Ok(total_blocks)
}

/// Writes each directory's full blocks where [`reserve_dir_blocks`] put
/// them and its inline tail into its plan.
fn fill_dirs<W: Write + Seek>(
    plans: &mut [Plan],
    dir_entries: &[Vec<(Vec<u8>, usize)>],
    dir_blk: &[u32],
    nids: &[u64],
    sink: &mut Sink<'_, W>,
) -> Result<(), WriteError> {
    let ftypes: Vec<u8> = plans.iter().map(|p| p.ftype).collect();
    for i in 0..plans.len() {
        if plans[i].ftype != ft::DIR {
            continue;
        }
        let bytes = dir_bytes(&dir_entries[i], nids, &ftypes);
        debug_assert_eq!(bytes.len() as u64, plans[i].size);
        let full = (plans[i].flat_blocks() * BLOCK).min(plans[i].size) as usize;
        if full > 0 {
            sink.next_block = u64::from(dir_blk[i]);
            sink.out
                .seek(SeekFrom::Start(u64::from(dir_blk[i]) * BLOCK))
                .map_err(io_err("seek"))?;
            sink.blocks(&bytes[..full])?;
        }
        if let Body::Flat { tail, .. } = &mut plans[i].body {
            *tail = bytes[full..].to_vec();
        }
    }
    Ok(())
}

/// The metadata area (from `meta_start` to the image's end) and block 0
/// with the root inode in it; the superblock is filled in later.
fn serialize_inodes(
    tree: &Tree,
    plans: &[Plan],
    meta_start: u64,
    total_blocks: u64,
) -> (Vec<u8>, Vec<u8>) {
    let mut meta = vec![0u8; (total_blocks * BLOCK - meta_start) as usize];
    let mut block0 = vec![0u8; BLOCK as usize];
    for (i, p) in plans.iter().enumerate() {
        let (buf, o) = if i == 0 {
            (&mut block0, p.offset as usize)
        } else {
            (&mut meta, (p.offset - meta_start) as usize)
        };
        serialize_inode(buf, o, (i + 1) as u32, p, tree.inode(p.id));
    }
    (meta, block0)
}

/// Writes inode number `ino_num` at `buf[o..]`: core, xattr area, then its
/// inline tail or compression index.
fn serialize_inode(buf: &mut [u8], o: usize, ino_num: u32, p: &Plan, ino: &Inode) {
    let m = &ino.meta;
    let layout = match &p.body {
        Body::Compressed { .. } => LAYOUT_COMPRESSED_FULL,
        Body::Flat { tail, .. } if !tail.is_empty() => LAYOUT_FLAT_INLINE,
        _ => LAYOUT_FLAT_PLAIN,
    };
    let format = (layout << 1) | if p.extended { I_VERSION_EXTENDED } else { 0 };
    let icount: u16 = if p.xattrs.is_empty() {
        0
    } else {
        ((p.xattrs.len() - XATTR_IBODY_HEADER) / 4 + 1) as u16
    };
    let mode = (ino.kind.type_bits() | (m.perm & 0o7777)) as u16;
    let i_u: u32 = match (&ino.kind, &p.body) {
        (Kind::CharDev(d) | Kind::BlockDev(d), _) => encode_dev(*d),
        (_, Body::Compressed { blocks, .. }) => *blocks as u32,
        (_, Body::Flat { blkaddr, .. }) => *blkaddr,
        _ => 0,
    };
    let core = &mut buf[o..o + p.core_size() as usize];
    core[0..2].copy_from_slice(&format.to_le_bytes());
    core[2..4].copy_from_slice(&icount.to_le_bytes());
    core[4..6].copy_from_slice(&mode.to_le_bytes());
    if p.extended {
        core[8..16].copy_from_slice(&p.size.to_le_bytes());
        core[16..20].copy_from_slice(&i_u.to_le_bytes());
        core[20..24].copy_from_slice(&ino_num.to_le_bytes());
        core[24..28].copy_from_slice(&m.uid.to_le_bytes());
        core[28..32].copy_from_slice(&m.gid.to_le_bytes());
        core[32..40].copy_from_slice(&(m.mtime as u64).to_le_bytes());
        core[40..44].copy_from_slice(&m.mtime_nsec.to_le_bytes());
        core[44..48].copy_from_slice(&p.nlink.to_le_bytes());
    } else {
        core[6..8].copy_from_slice(&(p.nlink as u16).to_le_bytes());
        core[8..12].copy_from_slice(&(p.size as u32).to_le_bytes());
        core[16..20].copy_from_slice(&i_u.to_le_bytes());
        core[20..24].copy_from_slice(&ino_num.to_le_bytes());
        core[24..26].copy_from_slice(&(m.uid as u16).to_le_bytes());
        core[26..28].copy_from_slice(&(m.gid as u16).to_le_bytes());
    }
    let xo = o + p.core_size() as usize;
    buf[xo..xo + p.xattrs.len()].copy_from_slice(&p.xattrs);
    let after = xo + p.xattrs.len();
    match &p.body {
        Body::Flat { tail, .. } => buf[after..after + tail.len()].copy_from_slice(tail),
        Body::Compressed { blkaddr, c, .. } => {
            let h = (p.offset + p.base()).div_ceil(8) * 8 - p.offset;
            let idx = c.index(p.size, *blkaddr);
            let s = o + h as usize;
            buf[s..s + idx.len()].copy_from_slice(&idx);
        }
        Body::None => {}
    }
}

/// A name-based (v5-style) UUID from the digest of every block but block 0's
/// superblock, so equal trees give equal UUIDs.
fn content_uuid(digest: &[u8]) -> [u8; 16] {
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&digest[..16]);
    uuid[6] = (uuid[6] & 0x0f) | 0x50;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    uuid
}

/// What the superblock records about the image.
struct Summary {
    root_nid: u64,
    inodes: u64,
    build_time: i64,
    build_nsec: u32,
    total_blocks: u64,
    xattr_blkaddr: u64,
    any_compressed: bool,
    /// Some pcluster spans more than one block (needs the config record).
    big: bool,
}

/// Fills in the superblock and, for big pclusters, the compression config
/// record after it.
fn fill_block0(block0: &mut [u8], s: &Summary, uuid: &[u8; 16], opts: &ErofsOptions) {
    let mut incompat = 0u32;
    if s.any_compressed {
        incompat |= FEATURE_INCOMPAT_ZERO_PADDING;
    }
    if s.big {
        incompat |= FEATURE_INCOMPAT_BIG_PCLUSTER;
    }
    let sb = &mut block0[SUPER_OFFSET as usize..SUPER_OFFSET as usize + SUPER_SIZE];
    sb[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    sb[12] = 12; // blkszbits
    sb[14..16].copy_from_slice(&(s.root_nid as u16).to_le_bytes());
    sb[16..24].copy_from_slice(&s.inodes.to_le_bytes());
    sb[24..32].copy_from_slice(&(s.build_time as u64).to_le_bytes());
    sb[32..36].copy_from_slice(&s.build_nsec.to_le_bytes());
    sb[36..40].copy_from_slice(&(s.total_blocks as u32).to_le_bytes());
    sb[44..48].copy_from_slice(&(s.xattr_blkaddr as u32).to_le_bytes());
    sb[48..64].copy_from_slice(uuid);
    if let Some(v) = &opts.volume_name {
        let b = v.as_bytes();
        let n = b.len().min(16);
        sb[64..64 + n].copy_from_slice(&b[..n]);
    }
    sb[SB_FEATURE_INCOMPAT..SB_FEATURE_INCOMPAT + 4].copy_from_slice(&incompat.to_le_bytes());
    if s.big {
        // With compression configs the union holds the algorithm bitmap (LZ4).
        sb[84..86].copy_from_slice(&1u16.to_le_bytes());
        // Config record: le16 size, then z_erofs_lz4_cfgs.
        let max_blocks = opts.compression.map_or(1, |c| c.pcluster / BLOCK as u32) as u16;
        let r = SUPER_OFFSET as usize + SUPER_SIZE;
        block0[r..r + 2].copy_from_slice(&14u16.to_le_bytes());
        block0[r + 2..r + 4].copy_from_slice(&0xffffu16.to_le_bytes());
        block0[r + 4..r + 6].copy_from_slice(&max_blocks.to_le_bytes());
    }
}
