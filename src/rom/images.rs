//! Packages of partition images: fastboot packages (`.tgz` or `.zip` with
//! `images/*.img`, raw or sparse, the super image whole or split into
//! `super.img.0 … N`), bare super images (raw or sparse) and bare sparse
//! images.
//!
//! Logical partitions inside super are listed beside the other images. When
//! only one slot of an A/B pair holds data (`system_a` with an empty
//! `system_b`, as every factory image has) the partition is listed under its
//! plain name (`system`), like in an OTA; the LP name works too.
//!
//! Random access: files on disk and zip entries stored uncompressed are read
//! in place. Compressed zip entries and tar entries cannot be read at random,
//! so the images an extraction needs are first copied (still sparse, so no
//! larger than in the package) into a temporary folder next to the output,
//! removed afterwards: one pass over a `.tgz` for all of them.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::image::{CopyTask, ImageMap, copy_all};
use crate::format::lp::{self, Metadata};
use crate::format::source::FileSlice;
use crate::format::sparse::{self, Header as SparseHeader};

/// Heads of images kept in memory: enough for the LP metadata of any
/// real super (the metadata area is 405504 bytes with 3 slots of 64 KiB).
const HEAD: usize = 2 << 20;
/// The part of a head kept for images that are not super.
const SMALL_HEAD: usize = 4096;
/// Entries larger than this are refused (real images are below 16 GiB).
const MAX_ENTRY: u64 = 1 << 40;
/// Text entries (flash scripts, misc.txt) larger than this are not kept.
const MAX_TEXT: u64 = 1 << 20;

/// How the package is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Archive {
    /// Loose image file(s).
    Bare,
    /// A zip.
    Zip,
    /// A gzip-compressed tar.
    Tgz,
}

/// Where the bytes of one stored file are.
#[derive(Clone, Debug)]
pub enum Stored {
    /// Readable in place: a file on disk or a zip entry stored uncompressed.
    InPlace(FileSlice),
    /// A compressed zip entry (by index).
    Zip(usize),
    /// A tar entry (by path in the archive).
    Tar(String),
}

/// One stored file of an image.
#[derive(Clone, Debug)]
pub struct StoredFile {
    /// Path in the archive (or on disk).
    pub path: String,
    /// Stored (uncompressed) size.
    pub size: u64,
    /// CRC-32 the zip's central directory records (zip entries only).
    pub crc32: Option<u32>,
    /// Where it is.
    pub stored: Stored,
}

/// One image of the package.
#[derive(Clone, Debug)]
pub struct ImageEntry {
    /// Partition name (file name without `.img`).
    pub name: String,
    /// Its files: one, or the split parts in order.
    pub files: Vec<StoredFile>,
    /// Whether it is stored as an Android sparse image.
    pub sparse: bool,
    /// Size of the (expanded) image.
    pub size: u64,
    /// Its first bytes, expanded.
    pub head: Vec<u8>,
}

/// A logical partition inside super.
#[derive(Clone, Debug, Serialize)]
pub struct Logical {
    /// Name it is listed under.
    pub name: String,
    /// Name in the LP metadata.
    pub lp_name: String,
    /// Size.
    pub size: u64,
    /// Group name.
    pub group: String,
}

/// The super image of a package.
#[derive(Clone, Debug)]
pub struct SuperInfo {
    /// Index of its image in [`ImagePackage::images`].
    pub image: usize,
    /// Metadata of slot 0.
    pub metadata: Metadata,
    /// Damaged copies skipped while reading.
    pub notes: Vec<String>,
    /// Logical partitions with data.
    pub logical: Vec<Logical>,
}

/// An opened image package.
#[derive(Debug)]
pub struct ImagePackage {
    /// The package file.
    pub path: PathBuf,
    /// How it is stored.
    pub archive: Archive,
    /// The images, in package order.
    pub images: Vec<ImageEntry>,
    /// The super image, when there is one with LP metadata.
    pub super_image: Option<SuperInfo>,
    /// Small text files (flash scripts, `misc.txt`) by path.
    pub texts: BTreeMap<String, String>,
    /// Every entry path of the archive.
    pub entries: Vec<String>,
}

/// Where a partition comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// The whole image `images[i]`.
    Image(usize),
    /// Logical partition `super_image.logical[i]`.
    Logical(usize),
}

/// A stored file found in a package: (image name, split part number, the
/// file, sparse, expanded image size, expanded head).
type Found = (String, Option<u32>, StoredFile, bool, u64, Vec<u8>);

/// Checks an archive path: relative, no `..`, no empty components.
pub(crate) fn safe_path(p: &str) -> bool {
    !p.starts_with('/') && !p.contains('\\') && p.split('/').all(|c| c != ".." && !c.contains('\0'))
}

/// `images/super.img.3` → (`super`, Some(3)); `images/boot.img` → (`boot`, None).
fn image_name(path: &str) -> Option<(String, Option<u32>)> {
    let file = path.rsplit('/').next()?;
    let in_images = path.split('/').rev().nth(1) == Some("images");
    let (stem, part) = match file.rsplit_once(".img.") {
        Some((stem, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (stem, n.parse().ok())
        }
        _ => (file.strip_suffix(".img")?, None),
    };
    (in_images && crate::format::payload::is_safe_partition_name(stem))
        .then(|| (stem.to_string(), part))
}

fn is_text(path: &str) -> bool {
    let f = path.rsplit('/').next().unwrap_or(path);
    f.ends_with(".sh") || f.ends_with(".bat") || f.ends_with(".txt") || f == "md5sum.xml"
}

/// Reads the expanded head of an image from a stream of its stored bytes.
fn stream_head(r: &mut dyn Read, first: &[u8]) -> io::Result<(bool, u64, Vec<u8>)> {
    let sparse = SparseHeader::is_sparse(first);
    let mut chained = io::Cursor::new(first.to_vec()).chain(r);
    if sparse {
        let mut hb = [0u8; sparse::FILE_HEADER_SIZE];
        hb.copy_from_slice(&first[..sparse::FILE_HEADER_SIZE]);
        let h = SparseHeader::parse(&hb).map_err(io::Error::other)?;
        let head = sparse::expand_head(&mut chained, HEAD).map_err(io::Error::other)?;
        Ok((true, h.image_size(), head))
    } else {
        let mut head = Vec::new();
        (&mut chained).take(HEAD as u64).read_to_end(&mut head)?;
        Ok((false, 0, head))
    }
}

impl ImagePackage {
    /// Opens a fastboot zip.
    pub fn open_zip(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let shared = Arc::new(file.try_clone().map_err(|e| Error::io(path, e))?);
        let mut archive = super::zip_archive(path, file)?;
        let mut pkg = ImagePackage {
            path: path.to_path_buf(),
            archive: Archive::Zip,
            images: Vec::new(),
            super_image: None,
            texts: BTreeMap::new(),
            entries: Vec::new(),
        };
        let mut found: Vec<Found> = Vec::new();
        for i in 0..archive.len() {
            let (name, size, stored, dir, crc32) = {
                let e = archive
                    .by_index_raw(i)
                    .map_err(|e| Error::invalid(path, format!("zip entry #{i}: {e}")))?;
                let name = String::from_utf8_lossy(e.name_raw()).into_owned();
                let stored = if e.compression() == zip::CompressionMethod::Stored {
                    let start = e.data_start().unwrap_or(u64::MAX);
                    if start.checked_add(e.size()).is_none_or(|end| end > file_len) {
                        return Err(Error::invalid(
                            path,
                            format!("zip entry {name}: data runs past the end of the file"),
                        ));
                    }
                    Stored::InPlace(FileSlice::new(shared.clone(), path, start, e.size()))
                } else {
                    Stored::Zip(i)
                };
                (name, e.size(), stored, e.is_dir(), e.crc32())
            };
            if !safe_path(&name) {
                return Err(Error::invalid(
                    path,
                    format!("zip entry {name:?} has an absolute or '..' path"),
                ));
            }
            pkg.entries.push(name.clone());
            if dir {
                continue;
            }
            if is_text(&name) && size <= MAX_TEXT {
                let e = archive
                    .by_index(i)
                    .map_err(|e| Error::invalid(path, format!("zip entry {name}: {e}")))?;
                let s = crate::util::text::read_bounded(e, size, MAX_TEXT)
                    .map_err(|e| Error::invalid(path, format!("zip entry {name} {e}")))?;
                pkg.texts.insert(name, s);
                continue;
            }
            let Some((img, part)) = image_name(&name) else {
                continue;
            };
            if size > MAX_ENTRY {
                return Err(Error::invalid(
                    path,
                    format!("zip entry {name} declares {size} bytes, more than any image"),
                ));
            }
            let mut first = vec![0u8; sparse::FILE_HEADER_SIZE.min(size as usize)];
            let mut e = archive
                .by_index(i)
                .map_err(|e| Error::invalid(path, format!("zip entry {name}: {e}")))?;
            e.read_exact(&mut first)
                .map_err(|err| Error::invalid(path, format!("zip entry {name}: {err}")))?;
            let (sp, isize, head) = stream_head(&mut e, &first)
                .map_err(|err| Error::invalid(path, format!("zip entry {name}: {err}")))?;
            let f = StoredFile {
                path: name.clone(),
                size,
                crc32: Some(crc32),
                stored,
            };
            found.push((img, part, f, sp, if sp { isize } else { size }, head));
        }
        pkg.collect(found)?;
        Ok(pkg)
    }

    /// Opens a fastboot `.tgz`: one pass over the archive lists it and keeps
    /// each image's head.
    pub fn open_tgz(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let gz = flate2::read::GzDecoder::new(io::BufReader::with_capacity(1 << 20, file));
        let mut tar = tar::Archive::new(gz);
        let mut pkg = ImagePackage {
            path: path.to_path_buf(),
            archive: Archive::Tgz,
            images: Vec::new(),
            super_image: None,
            texts: BTreeMap::new(),
            entries: Vec::new(),
        };
        let mut found = Vec::new();
        let terr = |what: String, e: io::Error| Error::invalid(path, format!("{what}: {e}"));
        let entries = tar
            .entries()
            .map_err(|e| terr("not a readable tar.gz".into(), e))?;
        // An archive ending inside an entry's declared data shows when the
        // next entry is looked for: the error names the entry before.
        let mut previous: Option<(String, u64)> = None;
        for (i, entry) in entries.enumerate() {
            let mut e = entry.map_err(|e| match &previous {
                Some((name, size)) => terr(
                    format!("tar entry #{i}, after {name} (which declares {size} bytes)"),
                    e,
                ),
                None => terr(format!("tar entry #{i}"), e),
            })?;
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let name = name.trim_start_matches("./").to_string();
            if !safe_path(&name) {
                return Err(Error::invalid(
                    path,
                    format!("tar entry {name:?} has an absolute or '..' path"),
                ));
            }
            let kind = e.header().entry_type();
            if kind.is_symlink() || kind.is_hard_link() {
                let target = e
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                return Err(Error::invalid(
                    path,
                    format!(
                        "tar entry {name:?} is a link (to {target:?}); a fastboot package holds only files and folders"
                    ),
                ));
            }
            pkg.entries.push(name.clone());
            previous = Some((name.clone(), e.size()));
            if !kind.is_file() {
                continue;
            }
            let size = e.size();
            if size > MAX_ENTRY {
                return Err(Error::invalid(
                    path,
                    format!("tar entry {name} declares {size} bytes, more than any image"),
                ));
            }
            if is_text(&name) && size <= MAX_TEXT {
                let s = crate::util::text::read_bounded(&mut e, size, MAX_TEXT)
                    .map_err(|err| Error::invalid(path, format!("tar entry {name} {err}")))?;
                pkg.texts.insert(name, s);
                continue;
            }
            let Some((img, part)) = image_name(&name) else {
                continue;
            };
            let mut first = vec![0u8; sparse::FILE_HEADER_SIZE.min(size as usize)];
            e.read_exact(&mut first)
                .map_err(|err| terr(format!("tar entry {name}"), err))?;
            let (sp, isize, head) = stream_head(&mut e, &first)
                .map_err(|err| terr(format!("tar entry {name}"), err))?;
            let f = StoredFile {
                path: name.clone(),
                size,
                crc32: None,
                stored: Stored::Tar(name.clone()),
            };
            found.push((img, part, f, sp, if sp { isize } else { size }, head));
        }
        pkg.collect(found)?;
        Ok(pkg)
    }

    /// Opens loose image files: one raw or sparse image, or the sparse parts
    /// of one image.
    pub fn open_bare(paths: &[PathBuf]) -> Result<Self> {
        let first = paths
            .first()
            .ok_or_else(|| Error::Usage("no image given".into()))?;
        let stem = first
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| {
                let n = n.split_once(".img").map_or(n, |(a, _)| a);
                n.split('.').next().unwrap_or(n)
            })
            .filter(|n| crate::format::payload::is_safe_partition_name(n))
            .unwrap_or("image")
            .to_string();
        let mut found = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            let src = FileSlice::open(p).map_err(|e| Error::io(p, e))?;
            let mut head = vec![0u8; (HEAD as u64).min(src.len()) as usize];
            src.read_exact_at(&mut head, 0)
                .map_err(|e| Error::io(p, e))?;
            let sp = SparseHeader::is_sparse(&head);
            let size = src.len();
            let (isize, head) = if sp {
                let s = sparse::SparseFile::open(src.clone()).map_err(|e| e.into_error(p))?;
                let map =
                    ImageMap::from_sparse(vec![s.clone()]).map_err(|(_, e)| e.into_error(p))?;
                let n = (HEAD as u64).min(s.image_size()) as usize;
                let head = map.read_vec(0, n).map_err(|e| Error::io(p, e))?;
                (s.image_size(), head)
            } else {
                (size, head)
            };
            let f = StoredFile {
                path: p.display().to_string(),
                size,
                crc32: None,
                stored: Stored::InPlace(src),
            };
            let part = (paths.len() > 1).then_some(i as u32);
            found.push((stem.clone(), part, f, sp, isize, head));
        }
        let mut pkg = ImagePackage {
            path: first.clone(),
            archive: Archive::Bare,
            images: Vec::new(),
            super_image: None,
            texts: BTreeMap::new(),
            entries: paths.iter().map(|p| p.display().to_string()).collect(),
        };
        pkg.collect(found)?;
        Ok(pkg)
    }

    /// Groups found files into images (split parts by number), reads the LP
    /// metadata of super from its head.
    fn collect(&mut self, mut found: Vec<Found>) -> Result<()> {
        found.sort_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));
        let mut images: Vec<ImageEntry> = Vec::new();
        for (name, part, f, sp, size, head) in found {
            if let Some(last) = images.last_mut()
                && last.name == name
            {
                if part.is_none() || !sp || !last.sparse {
                    return Err(Error::invalid(
                        &self.path,
                        format!(
                            "image {name} is stored more than once ({} and {}); only sparse parts {name}.img.N can be combined",
                            last.files[0].path, f.path
                        ),
                    ));
                }
                if size != last.size {
                    return Err(Error::invalid(
                        &self.path,
                        format!(
                            "{}: sparse part describes {size} bytes, {} describes {}",
                            f.path, last.files[0].path, last.size
                        ),
                    ));
                }
                // Parts do not overlap, so the merged head is their union;
                // what a part does not define reads as zeros in its head.
                for (a, b) in last.head.iter_mut().zip(&head) {
                    *a |= *b;
                }
                last.files.push(f);
                continue;
            }
            images.push(ImageEntry {
                name,
                files: vec![f],
                sparse: sp,
                size,
                head,
            });
        }
        for (i, img) in images.iter_mut().enumerate() {
            let geo = img.head.get(4096..4100) == Some(&lp::GEOMETRY_MAGIC.to_le_bytes()[..]);
            if geo && self.super_image.is_none() {
                let label = format!("{}: {}", self.path.display(), img.files[0].path);
                let (metadata, notes) = Metadata::read(&img.head, img.size, 0).map_err(|e| {
                    let e = match e {
                        LpError::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
                            LpError::Invalid {
                                offset: 0,
                                msg: format!(
                                    "metadata lies past the first {} bytes of the image ({io})",
                                    img.head.len()
                                ),
                            }
                        }
                        other => other,
                    };
                    e.into_error(Path::new(&label))
                })?;
                for n in &notes {
                    tracing::warn!("{label}: {n}");
                }
                let logical = logical_names(&metadata);
                self.super_image = Some(SuperInfo {
                    image: i,
                    metadata,
                    notes,
                    logical,
                });
            } else {
                img.head.truncate(SMALL_HEAD);
            }
        }
        self.images = images;
        Ok(())
    }

    /// Every partition: images (except super when its metadata was read),
    /// then the logical partitions.
    pub fn sources(&self) -> Vec<(String, u64, Source)> {
        let mut v = Vec::new();
        let sup = self.super_image.as_ref().map(|s| s.image);
        for (i, img) in self.images.iter().enumerate() {
            if Some(i) != sup {
                v.push((img.name.clone(), img.size, Source::Image(i)));
            }
        }
        if let Some(s) = &self.super_image {
            for (i, l) in s.logical.iter().enumerate() {
                let name = if v.iter().any(|(n, _, _)| *n == l.name) {
                    l.lp_name.clone()
                } else {
                    l.name.clone()
                };
                v.push((name, l.size, Source::Logical(i)));
            }
        }
        v
    }

    /// Finds a partition by listed name or LP name.
    pub fn find(&self, name: &str) -> Option<(String, u64, Source)> {
        let all = self.sources();
        if let Some(x) = all.iter().find(|(n, _, _)| n == name) {
            return Some(x.clone());
        }
        let s = self.super_image.as_ref()?;
        let i = s.logical.iter().position(|l| l.lp_name == name)?;
        all.into_iter()
            .find(|(_, _, src)| matches!(src, Source::Logical(j) if *j == i))
    }

    /// Image maps for the images `needed`, spooling entries that cannot be
    /// read in place into `spool` (a folder that the caller removes).
    pub fn resolve(&self, needed: &[usize], spool: &Path) -> Result<BTreeMap<usize, ImageMap>> {
        let mut out = BTreeMap::new();
        // Tar entries to spool: path -> destination.
        let mut tar_wanted: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut slices: BTreeMap<usize, Vec<FileSlice>> = BTreeMap::new();
        let mut pending: Vec<(usize, Vec<PathBuf>)> = Vec::new();
        for &i in needed {
            let img = &self.images[i];
            let mut spooled = Vec::new();
            let mut inplace = Vec::new();
            for (k, f) in img.files.iter().enumerate() {
                match &f.stored {
                    Stored::InPlace(s) => inplace.push(s.clone()),
                    Stored::Zip(idx) => {
                        let dest = spool.join(format!("{}.{k}", img.name));
                        self.spool_zip(*idx, &f.path, &dest)?;
                        spooled.push(dest);
                    }
                    Stored::Tar(p) => {
                        let dest = spool.join(format!("{}.{k}", img.name));
                        tar_wanted.insert(p.clone(), dest.clone());
                        spooled.push(dest);
                    }
                }
            }
            if spooled.is_empty() {
                slices.insert(i, inplace);
            } else {
                pending.push((i, spooled));
            }
        }
        if !tar_wanted.is_empty() {
            self.spool_tar(&tar_wanted)?;
        }
        for (i, s) in slices {
            out.insert(i, self.map_of(i, s, None)?);
        }
        for (i, paths) in pending {
            let s = paths
                .iter()
                .map(|p| FileSlice::open(p).map_err(|e| Error::io(p, e)))
                .collect::<Result<Vec<_>>>()?;
            out.insert(i, self.map_of(i, s, Some(&paths))?);
        }
        Ok(out)
    }

    /// The image map of image `i` when all its files are readable in place.
    pub fn in_place_map(&self, i: usize) -> Option<ImageMap> {
        let files = &self.images.get(i)?.files;
        let slices: Option<Vec<FileSlice>> = files
            .iter()
            .map(|f| match &f.stored {
                Stored::InPlace(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        self.map_of(i, slices?, None).ok()
    }

    /// The first `n` bytes of a partition, when readable without spooling.
    pub fn partition_head(&self, src: &Source, n: usize) -> Option<Vec<u8>> {
        match src {
            Source::Image(i) => Some(self.images[*i].head.clone()),
            Source::Logical(l) => {
                let s = self.super_image.as_ref()?;
                let p = s.metadata.partition(&s.logical[*l].lp_name)?;
                let e = s.metadata.extents_of(p).first()?;
                let map = self.in_place_map(s.image)?;
                let len = (n as u64).min(e.num_sectors * lp::SECTOR) as usize;
                if e.target_type != lp::TARGET_LINEAR {
                    return Some(vec![0; len]);
                }
                map.read_vec(e.target_data * lp::SECTOR, len).ok()
            }
        }
    }

    fn map_of(
        &self,
        i: usize,
        slices: Vec<FileSlice>,
        _spooled: Option<&[PathBuf]>,
    ) -> Result<ImageMap> {
        let img = &self.images[i];
        let label = |k: usize| {
            PathBuf::from(format!(
                "{}: {}",
                self.path.display(),
                img.files.get(k).map_or("?", |f| f.path.as_str())
            ))
        };
        if !img.sparse {
            let s = slices
                .into_iter()
                .next()
                .ok_or_else(|| Error::invalid(&self.path, "image without data"))?;
            return Ok(ImageMap::raw(s));
        }
        let mut parts = Vec::new();
        for (k, s) in slices.into_iter().enumerate() {
            parts.push(sparse::SparseFile::open(s).map_err(|e| e.into_error(&label(k)))?);
        }
        ImageMap::from_sparse(parts).map_err(|(k, e)| e.into_error(&label(k)))
    }

    fn spool_zip(&self, index: usize, name: &str, dest: &Path) -> Result<()> {
        let file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let mut archive = super::zip_archive(&self.path, file)?;
        let mut e = archive
            .by_index(index)
            .map_err(|e| Error::invalid(&self.path, format!("zip entry {name}: {e}")))?;
        let declared = e.size();
        let mut out = io::BufWriter::with_capacity(
            1 << 20,
            File::create(dest).map_err(|e| Error::io(dest, e))?,
        );
        let n = io::copy(&mut (&mut e).take(declared + 1), &mut out)
            .map_err(|err| Error::invalid(&self.path, format!("zip entry {name}: {err}")))?;
        if n != declared {
            return Err(Error::invalid(
                &self.path,
                format!("zip entry {name} inflates to {n} bytes, declared {declared}"),
            ));
        }
        io::Write::flush(&mut out).map_err(|e| Error::io(dest, e))
    }

    fn spool_tar(&self, wanted: &BTreeMap<String, PathBuf>) -> Result<()> {
        let path = &self.path;
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let gz = flate2::read::GzDecoder::new(io::BufReader::with_capacity(1 << 20, file));
        let mut tar = tar::Archive::new(gz);
        let terr = |what: String, e: io::Error| Error::invalid(path, format!("{what}: {e}"));
        let mut left = wanted.len();
        for entry in tar.entries().map_err(|e| terr("tar.gz".into(), e))? {
            let mut e = entry.map_err(|e| terr("tar entry".into(), e))?;
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let name = name.trim_start_matches("./").to_string();
            let Some(dest) = wanted.get(&name) else {
                continue;
            };
            let declared = e.size();
            let mut out = io::BufWriter::with_capacity(
                1 << 20,
                File::create(dest).map_err(|e| Error::io(dest, e))?,
            );
            let n = io::copy(&mut (&mut e).take(declared), &mut out)
                .map_err(|err| terr(format!("tar entry {name}"), err))?;
            if n != declared {
                return Err(Error::invalid(
                    path,
                    format!("tar entry {name} ends after {n} of {declared} bytes"),
                ));
            }
            io::Write::flush(&mut out).map_err(|e| Error::io(dest, e))?;
            left -= 1;
            if left == 0 {
                break;
            }
        }
        if left > 0 {
            return Err(Error::invalid(
                path,
                "the archive changed while being read: entries are missing",
            ));
        }
        // The gzip trailer's CRC-32 is the only hash over the images: read
        // to it, or damage that still inflates would go unnoticed.
        io::copy(&mut tar.into_inner(), &mut io::sink()).map_err(|e| {
            Error::invalid(
                path,
                format!("gzip stream (its CRC-32 covers the images): {e}"),
            )
        })?;
        Ok(())
    }

    /// Where the bytes of partition `name` lie.
    fn placement(&self, name: &str) -> Result<Placement> {
        let (_, size, src) = self.find(name).ok_or_else(|| self.unknown(name))?;
        let img = match src {
            Source::Image(i) => i,
            Source::Logical(_) => self.super_image.as_ref().map_or(0, |s| s.image),
        };
        let mut runs = Vec::new();
        match src {
            Source::Image(_) => runs.push((0, size, 0)),
            Source::Logical(l) => {
                let s = self.super_image.as_ref().ok_or_else(|| self.unknown(""))?;
                let m = &s.metadata;
                let p = m
                    .partition(&s.logical[l].lp_name)
                    .ok_or_else(|| self.unknown(&s.logical[l].lp_name))?;
                let mut logical = 0;
                for e in m.extents_of(p) {
                    let len = e.num_sectors * lp::SECTOR;
                    if e.target_type == lp::TARGET_LINEAR {
                        if e.target_source != 0 {
                            return Err(Error::invalid(
                                &self.path,
                                format!(
                                    "partition {} has an extent on block device {}, which is not in this image (retrofit super)",
                                    p.name, e.target_source
                                ),
                            ));
                        }
                        runs.push((e.target_data * lp::SECTOR, len, logical));
                    }
                    logical += len;
                }
            }
        }
        Ok(Placement { size, img, runs })
    }

    /// The image maps of the images `needed`, with every checksum the
    /// package carries for them checked first (zip CRC-32s of entries read
    /// in place, CRC32 chunks of sparse images). Entries that cannot be read
    /// in place are spooled into `spool`.
    fn checked_maps(&self, needed: &[usize], spool: &Path) -> Result<BTreeMap<usize, ImageMap>> {
        let maps = self.resolve(needed, spool)?;
        self.check_in_place_crcs(needed)?;
        for (i, m) in &maps {
            if m.sparse.iter().any(|s| s.has_checksums()) {
                for (k, s) in m.sparse.iter().enumerate() {
                    s.check_crcs().map_err(|e| {
                        e.into_error(&PathBuf::from(format!(
                            "{}: {}",
                            self.path.display(),
                            self.images[*i].files[k].path
                        )))
                    })?;
                }
            }
        }
        Ok(maps)
    }

    /// Extracts partitions (name, destination) on `jobs` threads; each output
    /// appears under its final name only once complete. Sparse images with
    /// CRC32 chunks have them checked first.
    pub fn extract(
        &self,
        requests: &[(String, PathBuf)],
        jobs: usize,
        force: bool,
    ) -> Result<Vec<u64>> {
        let mut plan = Vec::new();
        let mut needed = Vec::new();
        for (name, dest) in requests {
            let p = self.placement(name)?;
            crate::output::check_overwrite(dest, force)?;
            if !needed.contains(&p.img) {
                needed.push(p.img);
            }
            plan.push((p, dest.clone()));
        }
        let spool_parent = requests
            .first()
            .and_then(|(_, d)| d.parent())
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let spool = crate::output::temp_dir_in(spool_parent, ".romkit-spool-")?;
        let maps = self.checked_maps(&needed, spool.path())?;
        let mut outs = Vec::new();
        for (p, dest) in &plan {
            let f = crate::output::AtomicFile::create(dest, force)?;
            f.file()
                .set_len(p.size)
                .map_err(|e| Error::io(f.tmp_path(), e))?;
            outs.push(f);
        }
        let tasks: Vec<CopyTask<'_>> = plan
            .iter()
            .enumerate()
            .flat_map(|(k, (p, _))| {
                let map = &maps[&p.img];
                p.runs.iter().map(move |&(off, len, dest_off)| CopyTask {
                    map,
                    off,
                    len,
                    dest: k,
                    dest_off,
                })
            })
            .collect();
        let files: Vec<&File> = outs.iter().map(|f| f.file()).collect();
        copy_all(&tasks, &files, jobs)
            .map_err(|e| Error::io(outs.first().map_or(spool_parent, |f| f.tmp_path()), e))?;
        drop(files);
        let sizes = plan.iter().map(|(p, _)| p.size).collect();
        for f in outs {
            f.commit()?;
        }
        Ok(sizes)
    }

    /// The SHA-256 of each partition in `names`, read where it lies (no
    /// image is written out), after the same checks as [`Self::extract`]:
    /// [`Self::digests`] with SHA-256 for every partition.
    pub fn sha256s(
        &self,
        names: &[String],
        spool_parent: &Path,
    ) -> Result<Vec<(String, [u8; 32])>> {
        let wanted: Vec<(String, DigestKind)> = names
            .iter()
            .map(|n| (n.clone(), DigestKind::Sha256))
            .collect();
        Ok(self
            .digests(&wanted, spool_parent)?
            .into_iter()
            .filter_map(|(n, d)| match d {
                ImageDigest::Sha256(h) => Some((n, h)),
                ImageDigest::Crc32(_) => None,
            })
            .collect())
    }

    /// The digest of each partition in `names` (of the kind asked for),
    /// read where it lies (no image is written out), after the same checks
    /// as [`Self::extract`]. Partitions are read in parallel, largest first;
    /// entries that cannot be read in place are spooled into a temporary
    /// folder in `spool_parent`.
    pub fn digests(
        &self,
        names: &[(String, DigestKind)],
        spool_parent: &Path,
    ) -> Result<Vec<(String, ImageDigest)>> {
        use rayon::prelude::*;
        let mut plan = Vec::new();
        let mut needed = Vec::new();
        for (name, kind) in names {
            let p = self.placement(name)?;
            if !needed.contains(&p.img) {
                needed.push(p.img);
            }
            plan.push((name.clone(), *kind, p));
        }
        let spool = crate::output::temp_dir_in(spool_parent, ".romkit-spool-")?;
        let maps = self.checked_maps(&needed, spool.path())?;
        let mut order: Vec<usize> = (0..plan.len()).collect();
        order.sort_by_key(|&k| std::cmp::Reverse(plan[k].2.size));
        let mut digests: Vec<(usize, ImageDigest)> = order
            .par_iter()
            .with_max_len(1)
            .map(|&k| {
                let (_, kind, p) = &plan[k];
                let r = PartitionReader {
                    map: &maps[&p.img],
                    p,
                    pos: 0,
                    run: 0,
                };
                let d = match kind {
                    DigestKind::Sha256 => {
                        crate::util::hash::sha256_reader(r).map(|(h, _)| ImageDigest::Sha256(h))
                    }
                    DigestKind::Crc32 => crc32_reader(r).map(ImageDigest::Crc32),
                };
                Ok((k, d.map_err(|e| Error::io(&self.path, e))?))
            })
            .collect::<Result<_>>()?;
        digests.sort_by_key(|(k, _)| *k);
        Ok(digests
            .into_iter()
            .map(|(k, d)| (plan[k].0.clone(), d))
            .collect())
    }

    /// Zip entries read in place bypass the zip reader and with it their
    /// CRC-32, the only hash a fastboot zip carries for raw images and for
    /// the data of super's partitions: checked here before anything is
    /// written.
    fn check_in_place_crcs(&self, needed: &[usize]) -> Result<()> {
        use rayon::prelude::*;
        let files: Vec<&StoredFile> = needed
            .iter()
            .flat_map(|&i| self.images[i].files.iter())
            .collect();
        files.par_iter().with_max_len(1).try_for_each(|f| {
            let (Stored::InPlace(s), Some(expected)) = (&f.stored, f.crc32) else {
                return Ok(());
            };
            let mut buf = vec![0u8; 1 << 20];
            let mut h = crc32fast::Hasher::new();
            let mut at = 0;
            while at < s.len() {
                let n = (s.len() - at).min(buf.len() as u64) as usize;
                s.read_exact_at(&mut buf[..n], at)
                    .map_err(|e| Error::io(&self.path, e))?;
                h.update(&buf[..n]);
                at += n as u64;
            }
            let found = h.finalize();
            if found != expected {
                return Err(Error::CheckFailed {
                    file: self.path.clone(),
                    msg: format!(
                        "zip entry {}: CRC-32 is {found:08x}, the central directory records {expected:08x}",
                        f.path
                    ),
                });
            }
            Ok(())
        })
    }

    fn unknown(&self, name: &str) -> Error {
        Error::Usage(format!(
            "partition {name:?} is not in {} (it has: {})",
            self.path.display(),
            self.sources()
                .iter()
                .map(|s| s.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    /// The folder of the archive that holds `images/` (`""` or
    /// `fuxi_images_…/`), where the flash scripts and `misc.txt` are.
    pub fn root(&self) -> String {
        self.entries
            .iter()
            .find_map(|e| {
                let i = e.find("images/")?;
                (i == 0 || e.as_bytes()[i - 1] == b'/').then(|| e[..i].to_string())
            })
            .unwrap_or_default()
    }

    /// A small text file at `rel` under [`Self::root`] (`images/anti_version.txt`).
    pub fn text(&self, rel: &str) -> Option<&str> {
        self.texts
            .get(&format!("{}{rel}", self.root()))
            .map(String::as_str)
    }

    /// Copies archive entries (path in the archive → destination file) out
    /// of a zip or `.tgz`; loose images have no other entries.
    pub fn copy_entries(&self, wanted: &BTreeMap<String, PathBuf>) -> Result<()> {
        if wanted.is_empty() {
            return Ok(());
        }
        match self.archive {
            Archive::Tgz => self.spool_tar(wanted),
            Archive::Zip => {
                let file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
                let archive = super::zip_archive(&self.path, file)?;
                for (name, dest) in wanted {
                    let i = archive.index_for_name(name).ok_or_else(|| {
                        Error::invalid(&self.path, format!("zip entry {name} is missing"))
                    })?;
                    self.spool_zip(i, name, dest)?;
                }
                Ok(())
            }
            Archive::Bare => Err(Error::invalid(
                &self.path,
                "loose images carry no other files",
            )),
        }
    }

    /// The device codename the flash scripts check (`getvar product`).
    pub fn script_device(&self) -> Option<String> {
        for text in self.texts.values() {
            for line in text.lines() {
                if let Some(i) = line.find("product:") {
                    let rest = line[i + 8..].trim_start_matches([' ', '*']);
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        return Some(name);
                    }
                }
            }
        }
        None
    }
}

use crate::format::lp::LpError;

/// Names for the logical partitions with data: the plain name when the
/// other slot of the pair is empty or absent.
fn logical_names(m: &Metadata) -> Vec<Logical> {
    let size_of = |n: &str| m.partition(n).map_or(0, |p| m.partition_size(p));
    m.partitions
        .iter()
        .filter(|p| m.partition_size(p) > 0)
        .map(|p| {
            let base = p
                .name
                .strip_suffix("_a")
                .map(|b| (b, "_b"))
                .or_else(|| p.name.strip_suffix("_b").map(|b| (b, "_a")));
            let name = match base {
                Some((b, other)) if size_of(&format!("{b}{other}")) == 0 => b.to_string(),
                _ => p.name.clone(),
            };
            Logical {
                name,
                lp_name: p.name.clone(),
                size: m.partition_size(p),
                group: m.groups[p.group as usize].name.clone(),
            }
        })
        .collect()
}

/// Where the bytes of one partition lie in the image map of `images[img]`:
/// runs `(offset in the map, length, offset in the partition)`, sorted by
/// the last; the rest of its `size` bytes are zeros.
struct Placement {
    size: u64,
    img: usize,
    runs: Vec<(u64, u64, u64)>,
}

/// Reads a partition's bytes in order from its image map.
/// Which digest [`ImagePackage::digests`] takes of a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestKind {
    /// SHA-256: what manifests and payloads record.
    Sha256,
    /// CRC-32: for comparing with bytes whose CRC-32 was taken as they were
    /// written (a tenth of a SHA-256's cost).
    Crc32,
}

/// A digest [`ImagePackage::digests`] took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageDigest {
    /// SHA-256 of the image.
    Sha256([u8; 32]),
    /// CRC-32 of the image.
    Crc32(u32),
}

/// The CRC-32 of everything `r` holds.
fn crc32_reader(mut r: impl Read) -> io::Result<u32> {
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(h.finalize()),
            Ok(k) => h.update(&buf[..k]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

struct PartitionReader<'a> {
    map: &'a ImageMap,
    p: &'a Placement,
    pos: u64,
    /// The first run that does not end before `pos`.
    run: usize,
}

impl Read for PartitionReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.p.size.saturating_sub(self.pos);
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let runs = &self.p.runs;
        while runs
            .get(self.run)
            .is_some_and(|&(_, len, at)| at + len <= self.pos)
        {
            self.run += 1;
        }
        let most = left.min(buf.len() as u64);
        let n = match runs.get(self.run) {
            Some(&(off, len, at)) if at <= self.pos => {
                let n = most.min(at + len - self.pos) as usize;
                self.map.read_at(&mut buf[..n], off + (self.pos - at))?;
                n
            }
            next => {
                let gap = next.map_or(left, |&(_, _, at)| at - self.pos);
                let n = most.min(gap) as usize;
                buf[..n].fill(0);
                n
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}
