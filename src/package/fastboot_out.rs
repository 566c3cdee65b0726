//! Where the files of a fastboot package go as they are made: straight into
//! the zip ([`crate::format::zip_write`]), or into a staging folder that
//! becomes the package folder or is archived into a `.tgz`.
//!
//! Every file's CRC-32, and for a sparse file the CRC-32 of each fastboot
//! download ([`crate::format::sparse::DownloadCrcs`]), is taken while it is
//! written: the CRC lists need no second pass over gigabytes of images.
//! Only `md5sum.xml` reads files back ([`PackageOut::md5s`]), and only when
//! the input had one.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::sparse::{self, DownloadCrcs, FILE_HEADER_SIZE, PartSink, PartSummary};
use crate::format::zip_write::ZipOut;
use crate::output::PartFiles;
use crate::util::hash::Follower;

/// What the CRC lists need of one file of the package.
#[derive(Clone, Debug)]
pub(super) struct Digest {
    /// CRC-32 of the whole file.
    pub crc32: u32,
    /// For a sparse file, the CRC-32 of each fastboot download.
    pub sparse: Option<Vec<u32>>,
}

enum Dest<'f> {
    /// The staging folder (the package root).
    Dir(PathBuf),
    /// The zip, and where each entry's data lies in it.
    Zip {
        zip: Box<ZipOut<'f>>,
        file: &'f File,
        tmp: PathBuf,
        places: BTreeMap<String, (u64, u64)>,
    },
}

/// A fastboot package being written.
pub(super) struct PackageOut<'f> {
    dest: Dest<'f>,
    /// Files written, in order.
    pub files: Vec<String>,
    /// Their digests.
    pub digests: BTreeMap<String, Digest>,
    /// MD5s of the files written from memory (lowercase hex).
    md5: BTreeMap<String, String>,
}

/// Unix mode of a package file: scripts are executable.
pub(super) fn mode_of(rel: &str) -> u32 {
    if rel.ends_with(".sh") { 0o755 } else { 0o644 }
}

/// Files outside `images/` up to this size are deflated in the zip.
const DEFLATE_MAX: u64 = 64 << 20;

/// Whether a sparse image of an `image_size`-byte image in parts of at most
/// `split` bytes may reach 4 GiB (one chunk header per block at worst).
pub(super) fn may_be_large(image_size: u64, split: Option<u64>) -> bool {
    let worst = |n: u64| 28 + 12 + n.div_ceil(4096) * (12 + 4096);
    split.unwrap_or_else(|| worst(image_size)) >= u64::from(u32::MAX)
}

impl<'f> PackageOut<'f> {
    /// A package staged in the folder `root` (created here).
    pub fn dir(root: PathBuf) -> Result<Self> {
        let images = root.join("images");
        std::fs::create_dir_all(&images).map_err(|e| Error::io(&images, e))?;
        Ok(PackageOut {
            dest: Dest::Dir(root),
            files: Vec::new(),
            digests: BTreeMap::new(),
            md5: BTreeMap::new(),
        })
    }

    /// A package written as a zip into `file` (its path `tmp`), every entry
    /// dated `mtime`; its SHA-256 is taken as it is written.
    pub fn zip(file: &'f File, tmp: &Path, mtime: i64) -> Result<Self> {
        let mut zip = ZipOut::new(file, mtime)
            .hashed()
            .map_err(|e| Error::io(tmp, e))?;
        zip.dir("images/", 0o755).map_err(|e| Error::io(tmp, e))?;
        Ok(PackageOut {
            dest: Dest::Zip {
                zip: Box::new(zip),
                file,
                tmp: tmp.to_path_buf(),
                places: BTreeMap::new(),
            },
            files: Vec::new(),
            digests: BTreeMap::new(),
            md5: BTreeMap::new(),
        })
    }

    fn add(&mut self, rel: &str, d: Digest) {
        self.files.push(rel.to_string());
        self.digests.insert(rel.to_string(), d);
    }

    /// The file `rel` copied from `src` (hard-linked into a folder when it
    /// can be). Files of `images/` are stored in a zip with their data
    /// 4096-aligned, so that they can be read in place.
    pub fn copy(&mut self, rel: &str, src: &Path) -> Result<()> {
        let digest = match &mut self.dest {
            Dest::Dir(root) => {
                let to = root.join(rel);
                if let Some(dir) = to.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                }
                if std::fs::hard_link(src, &to).is_err() {
                    std::fs::copy(src, &to).map_err(|e| Error::io(src, e))?;
                }
                let f = File::open(&to).map_err(|e| Error::io(&to, e))?;
                digest_stream(f, &to, |_| Ok(()))?
            }
            Dest::Zip {
                zip, tmp, places, ..
            } => {
                let f = File::open(src).map_err(|e| Error::io(src, e))?;
                let len = f.metadata().map_err(|e| Error::io(src, e))?.len();
                if !rel.starts_with("images/") && len <= DEFLATE_MAX {
                    let mut data = Vec::with_capacity(len as usize);
                    (&f).read_to_end(&mut data).map_err(|e| Error::io(src, e))?;
                    zip.file(rel, mode_of(rel), &data, true)
                        .map_err(|e| Error::io(&*tmp, e))?;
                    self.md5.insert(rel.to_string(), md5_hex(&data));
                    digest_stream(&data[..], src, |_| Ok(()))?
                } else {
                    let large = len >= u64::from(u32::MAX);
                    zip.begin(rel, mode_of(rel), 4096, large, 0)
                        .map_err(|e| Error::io(&*tmp, e))?;
                    let d =
                        digest_stream(f, src, |b| zip.write(b).map_err(|e| Error::io(&*tmp, e)))?;
                    let w = zip.end(&[]).map_err(|e| Error::io(&*tmp, e))?;
                    places.insert(rel.to_string(), (w.offset, w.len));
                    d
                }
            }
        };
        self.add(rel, digest);
        Ok(())
    }

    /// A text file (in a zip, stored like every file of `images/`, deflated
    /// elsewhere).
    pub fn text(&mut self, rel: &str, text: &str) -> Result<()> {
        match &mut self.dest {
            Dest::Dir(root) => {
                let p = root.join(rel);
                std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
                set_mode(&p, mode_of(rel))?;
            }
            Dest::Zip {
                zip, tmp, places, ..
            } => {
                let e = |e| Error::io(&*tmp, e);
                if rel.starts_with("images/") {
                    zip.begin(rel, mode_of(rel), 4096, false, 0).map_err(e)?;
                    zip.write(text.as_bytes()).map_err(e)?;
                    let w = zip.end(&[]).map_err(e)?;
                    places.insert(rel.to_string(), (w.offset, w.len));
                } else {
                    zip.file(rel, mode_of(rel), text.as_bytes(), true)
                        .map_err(e)?;
                }
            }
        }
        let d = digest_stream(text.as_bytes(), Path::new(rel), |_| Ok(()))?;
        self.add(rel, d);
        self.md5.insert(rel.to_string(), md5_hex(text.as_bytes()));
        Ok(())
    }

    /// A sparse image written by `write` into the sink it is given: at
    /// `rel`, or split into `rel.0 … N` when `split`. `large`: a part may
    /// reach 4 GiB ([`may_be_large`]). `block_size` and `total_blocks` are
    /// the image's. Returns the files written.
    pub fn sparse(
        &mut self,
        rel: &str,
        split: bool,
        large: bool,
        (block_size, total_blocks): (u32, u32),
        write: impl FnOnce(&mut dyn PartSink) -> io::Result<Vec<PartSummary>>,
    ) -> Result<Vec<String>> {
        let name = |i: usize| PartFiles::part_path(Path::new(rel), split, i);
        let names = |n: usize| -> Vec<String> {
            (0..n)
                .map(|i| name(i).to_string_lossy().into_owned())
                .collect()
        };
        let header = sparse::Header {
            major: 1,
            minor: 0,
            file_header_size: FILE_HEADER_SIZE as u16,
            chunk_header_size: sparse::CHUNK_HEADER_SIZE as u16,
            block_size,
            total_blocks,
            total_chunks: u32::MAX,
            image_checksum: 0,
        };
        let (written, digests) = match &mut self.dest {
            Dest::Dir(root) => {
                let base = root.join(rel);
                let mut files = PartFiles::new(&base, split, false);
                let mut tally = Tally::new(&mut files, header);
                write(&mut tally).map_err(|e| Error::io(&base, e))?;
                let digests = tally.finish().map_err(|e| e.into_error(&base))?;
                files.commit()?;
                (names(digests.len()), digests)
            }
            Dest::Zip {
                zip, tmp, places, ..
            } => {
                let mut parts = ZipParts {
                    zip,
                    name: &name,
                    split,
                    large,
                    written: Vec::new(),
                };
                let mut tally = Tally::new(&mut parts, header);
                write(&mut tally).map_err(|e| Error::io(&*tmp, e))?;
                let digests = tally.finish().map_err(|e| e.into_error(tmp))?;
                let rels = names(digests.len());
                for (r, w) in rels.iter().zip(&parts.written) {
                    places.insert(r.clone(), (w.offset, w.len));
                }
                (rels, digests)
            }
        };
        for (r, d) in written.iter().zip(digests) {
            self.add(r, d);
        }
        Ok(written)
    }

    /// The MD5 (lowercase hex) of each file `rels` names, read back, on
    /// every core.
    pub fn md5s(&self, rels: &[String]) -> Result<BTreeMap<String, String>> {
        use md5::Digest as _;
        use rayon::prelude::*;
        rels.par_iter()
            .map(|rel| {
                if let Some(known) = self.md5.get(rel) {
                    return Ok((rel.clone(), known.clone()));
                }
                let mut h = md5::Md5::new();
                let mut feed = |b: &[u8]| h.update(b);
                match &self.dest {
                    Dest::Dir(root) => {
                        let p = root.join(rel);
                        let f = File::open(&p).map_err(|e| Error::io(&p, e))?;
                        each_block(f, &p, &mut feed)?;
                    }
                    Dest::Zip {
                        file, tmp, places, ..
                    } => {
                        let &(off, len) = places.get(rel).ok_or_else(|| {
                            Error::io(&*tmp, io::Error::other(format!("{rel} is not in the zip")))
                        })?;
                        let r = FileRange {
                            file,
                            at: off,
                            end: off + len,
                        };
                        each_block(r, tmp, &mut feed)?;
                    }
                }
                Ok((rel.clone(), crate::util::hex(&h.finalize())))
            })
            .collect()
    }

    /// Ends the package: a zip gets its central directory, and the
    /// follower taking its SHA-256 is returned (it may still be reading).
    pub fn finish(self) -> Result<Option<Follower>> {
        match self.dest {
            Dest::Zip { zip, tmp, .. } => Ok(zip.finish().map_err(|e| Error::io(&tmp, e))?.hash),
            Dest::Dir(_) => Ok(None),
        }
    }
}

fn md5_hex(b: &[u8]) -> String {
    use md5::Digest as _;
    crate::util::hex(&md5::Md5::digest(b))
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(|e| Error::io(p, e))
}

/// Bytes `[at, end)` of a file, read in order.
struct FileRange<'a> {
    file: &'a File,
    at: u64,
    end: u64,
}

impl Read for FileRange<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.end - self.at).min(buf.len() as u64) as usize;
        let n = self.file.read_at(&mut buf[..n], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Feeds everything `r` (read from `path`) holds to `f`, a block at a time.
fn each_block(mut r: impl Read, path: &Path, mut f: impl FnMut(&[u8])) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = r.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if k == 0 {
            return Ok(());
        }
        f(&buf[..k]);
    }
}

/// Reads everything from `r` (the file `path`), handing each block to
/// `out`, and takes its digest: a file that starts with the sparse magic is
/// parsed as one (an error names `path` and the offset).
fn digest_stream(
    mut r: impl Read,
    path: &Path,
    mut out: impl FnMut(&[u8]) -> Result<()>,
) -> Result<Digest> {
    let mut buf = vec![0u8; 1 << 20];
    let mut crc = crc32fast::Hasher::new();
    let mut downloads: Option<DownloadCrcs> = None;
    let mut first = true;
    loop {
        let n = crate::util::read_up_to(&mut r, &mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        let b = &buf[..n];
        crc.update(b);
        out(b)?;
        let body = if first && sparse::Header::is_sparse(b) {
            let h = sparse::Header::parse(b).map_err(|e| e.into_error(path))?;
            downloads = Some(
                DownloadCrcs::new(&h, sparse::XIAOMI_MAX_DOWNLOAD)
                    .map_err(|e| e.into_error(path))?,
            );
            &b[FILE_HEADER_SIZE.min(n)..]
        } else {
            b
        };
        first = false;
        if let Some(d) = downloads.as_mut() {
            d.update(body).map_err(|e| e.into_error(path))?;
        }
    }
    let sparse = match downloads {
        Some(d) => Some(d.finish().map_err(|e| e.into_error(path))?),
        None => None,
    };
    Ok(Digest {
        crc32: crc.finalize(),
        sparse,
    })
}

/// Sparse parts written into zip entries.
struct ZipParts<'z, 'f, F: Fn(usize) -> PathBuf> {
    zip: &'z mut ZipOut<'f>,
    name: &'z F,
    split: bool,
    large: bool,
    written: Vec<crate::format::zip_write::Written>,
}

impl<F: Fn(usize) -> PathBuf> PartSink for ZipParts<'_, '_, F> {
    fn start(&mut self, index: usize) -> io::Result<()> {
        if !self.split && index > 0 {
            return Err(io::Error::other("more than one part without --split"));
        }
        let name = (self.name)(index).to_string_lossy().into_owned();
        self.zip
            .begin(&name, 0o644, 4096, self.large, FILE_HEADER_SIZE)
    }

    fn write(&mut self, body: &[u8]) -> io::Result<()> {
        self.zip.write(body)
    }

    fn write_crc(&mut self, body: &[u8], crc: &crc32fast::Hasher) -> io::Result<()> {
        self.zip.write_crc(body, crc)
    }

    fn finish(&mut self, header: &[u8; FILE_HEADER_SIZE]) -> io::Result<()> {
        let w = self.zip.end(header)?;
        self.written.push(w);
        Ok(())
    }
}

/// A sink that passes every part on and takes its digest on the way.
struct Tally<'s> {
    inner: &'s mut dyn PartSink,
    header: sparse::Header,
    body: crc32fast::Hasher,
    downloads: Option<DownloadCrcs>,
    done: Vec<std::result::Result<Digest, sparse::SparseError>>,
}

impl<'s> Tally<'s> {
    fn new(inner: &'s mut dyn PartSink, header: sparse::Header) -> Self {
        Tally {
            inner,
            header,
            body: crc32fast::Hasher::new(),
            downloads: None,
            done: Vec::new(),
        }
    }

    fn finish(self) -> std::result::Result<Vec<Digest>, sparse::SparseError> {
        self.done.into_iter().collect()
    }
}

impl PartSink for Tally<'_> {
    fn start(&mut self, index: usize) -> io::Result<()> {
        self.body = crc32fast::Hasher::new();
        self.downloads = Some(
            DownloadCrcs::new(&self.header, sparse::XIAOMI_MAX_DOWNLOAD)
                .map_err(io::Error::other)?,
        );
        self.inner.start(index)
    }

    fn write(&mut self, body: &[u8]) -> io::Result<()> {
        // One pass for the part's CRC-32, the sink's (the zip entry's) and,
        // for a long raw run written alone, its download's.
        let mut crc = crc32fast::Hasher::new();
        crc.update(body);
        self.body.combine(&crc);
        if let Some(d) = self.downloads.as_mut() {
            d.update_known(body, &crc).map_err(io::Error::other)?;
        }
        self.inner.write_crc(body, &crc)
    }

    fn finish(&mut self, header: &[u8; FILE_HEADER_SIZE]) -> io::Result<()> {
        self.inner.finish(header)?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(header);
        crc.combine(&self.body);
        let downloads = self
            .downloads
            .take()
            .ok_or_else(|| io::Error::other("sparse part finished before it started"))?;
        self.done.push(downloads.finish().map(|s| Digest {
            crc32: crc.finalize(),
            sparse: Some(s),
        }));
        Ok(())
    }
}
