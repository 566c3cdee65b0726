//! Block-based OTA zips (older MIUI): `NAME.transfer.list` with
//! `NAME.new.dat.br` (brotli) or `NAME.new.dat`, converted to raw images.
//!
//! The new-data stream is read once, in order, straight from the zip entry
//! (whose CRC-32 the zip reader checks at its end), and its blocks are
//! written where the `new` commands say; `zero` and `erase` ranges stay
//! zeros in the freshly sized image.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::sdat::{BLOCK, Op, TransferList};
use crate::rom::{BuildInfo, PartInfo};

/// Transfer lists larger than this are refused (real ones are a few KiB).
const MAX_LIST: u64 = 64 << 20;

/// One partition of a block-based OTA.
#[derive(Clone, Debug)]
pub struct BlockPartition {
    /// Name (`system`).
    pub name: String,
    /// The transfer list.
    pub list: TransferList,
    /// Zip entry of the new data.
    pub data_entry: String,
    /// Whether the new data is brotli-compressed.
    pub brotli: bool,
}

/// An opened block-based OTA.
#[derive(Debug)]
pub struct BlockOta {
    /// The zip.
    pub path: PathBuf,
    /// Partitions, sorted by name.
    pub partitions: Vec<BlockPartition>,
    /// `META-INF/com/android/metadata`.
    pub metadata: BTreeMap<String, String>,
}

fn read_entry(
    archive: &mut zip::ZipArchive<File>,
    path: &Path,
    name: &str,
) -> Result<Option<String>> {
    let Some(i) = archive.index_for_name(name) else {
        return Ok(None);
    };
    let e = archive
        .by_index(i)
        .map_err(|e| Error::invalid(path, format!("zip entry {name}: {e}")))?;
    let declared = e.size();
    crate::util::text::read_bounded(e, declared, MAX_LIST)
        .map(Some)
        .map_err(|err| Error::invalid(path, format!("zip entry {name} {err}")))
}

impl BlockOta {
    /// Opens the zip and parses every transfer list.
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut archive = super::zip_archive(path, f)?;
        let names: Vec<String> = archive
            .file_names_raw()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        let mut partitions = Vec::new();
        for n in &names {
            let Some(stem) = n.strip_suffix(".transfer.list") else {
                continue;
            };
            let name = stem.rsplit('/').next().unwrap_or(stem).to_string();
            if !crate::format::payload::is_safe_partition_name(&name) {
                return Err(Error::invalid(
                    path,
                    format!("zip entry {n:?}: unusable partition name"),
                ));
            }
            let text = read_entry(&mut archive, path, n)?.unwrap_or_default();
            let list = TransferList::parse(&text)
                .map_err(|why| Error::invalid(path, format!("{n}: {why}")))?;
            let (data_entry, brotli) = if names.iter().any(|x| *x == format!("{stem}.new.dat.br")) {
                (format!("{stem}.new.dat.br"), true)
            } else if names.iter().any(|x| *x == format!("{stem}.new.dat")) {
                (format!("{stem}.new.dat"), false)
            } else {
                return Err(Error::invalid(
                    path,
                    format!("{n} has no {stem}.new.dat.br or {stem}.new.dat beside it"),
                ));
            };
            partitions.push(BlockPartition {
                name,
                list,
                data_entry,
                brotli,
            });
        }
        partitions.sort_by(|a, b| a.name.cmp(&b.name));
        let metadata = read_entry(&mut archive, path, "META-INF/com/android/metadata")?
            .map(|t| crate::rom::ota::parse_key_values(&t))
            .unwrap_or_default();
        Ok(BlockOta {
            path: path.to_path_buf(),
            partitions,
            metadata,
        })
    }

    /// The partitions as [`PartInfo`].
    pub fn partitions(&self) -> Vec<PartInfo> {
        self.partitions
            .iter()
            .map(|p| PartInfo {
                name: p.name.clone(),
                size: p.list.image_size(),
                group: None,
                origin: p.data_entry.clone(),
                lp_name: None,
                sparse: false,
            })
            .collect()
    }

    /// What the metadata says about the build.
    pub fn build_info(&self) -> BuildInfo {
        let mut b = BuildInfo::from_metadata_opt(&self.metadata, None);
        if b.version.is_none() {
            b = BuildInfo::from_file_name(&self.path);
        }
        b
    }

    /// Writes the requested partitions (name, destination), each atomically.
    pub fn extract(&self, requests: &[(String, PathBuf)], force: bool) -> Result<Vec<u64>> {
        let mut sizes = Vec::new();
        for (name, dest) in requests {
            let p = self
                .partitions
                .iter()
                .find(|p| p.name == *name)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "partition {name:?} is not in {} (it has: {})",
                        self.path.display(),
                        self.partitions
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            sizes.push(self.extract_one(p, dest, force)?);
        }
        Ok(sizes)
    }

    fn extract_one(&self, p: &BlockPartition, dest: &Path, force: bool) -> Result<u64> {
        let out = crate::output::AtomicFile::create(dest, force)?;
        let size = p.list.image_size();
        out.file()
            .set_len(size)
            .map_err(|e| Error::io(out.tmp_path(), e))?;
        let f = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let mut archive = super::zip_archive(&self.path, f)?;
        let entry = archive
            .by_name(&p.data_entry)
            .map_err(|e| Error::invalid(&self.path, format!("zip entry {}: {e}", p.data_entry)))?;
        let mut reader: Box<dyn Read> = if p.brotli {
            Box::new(brotli_decompressor::Decompressor::new(entry, 1 << 16))
        } else {
            Box::new(entry)
        };
        let bad = |what: String| Error::invalid(&self.path, format!("{}: {what}", p.data_entry));
        let mut buf = vec![0u8; 4 << 20];
        let mut consumed = 0u64;
        for c in &p.list.commands {
            if c.op != Op::New {
                continue;
            }
            for &(a, b) in &c.ranges {
                let mut at = a * BLOCK;
                let end = b * BLOCK;
                while at < end {
                    let n = (end - at).min(buf.len() as u64) as usize;
                    read_full(&mut reader, &mut buf[..n]).map_err(|e| {
                        if e.kind() == io::ErrorKind::UnexpectedEof {
                            bad(format!(
                                "new data ends after {consumed} bytes, the transfer list needs {} (block range {a}..{b} lies past the data)",
                                p.list.new_blocks * BLOCK
                            ))
                        } else {
                            bad(e.to_string())
                        }
                    })?;
                    out.file()
                        .write_all_at(&buf[..n], at)
                        .map_err(|e| Error::io(out.tmp_path(), e))?;
                    at += n as u64;
                    consumed += n as u64;
                }
            }
        }
        // Read to the end: the zip reader checks the entry's CRC-32 there.
        let extra = io::copy(&mut reader, &mut io::sink()).map_err(|e| bad(e.to_string()))?;
        if extra > 0 {
            tracing::warn!(
                "{}: {}: {extra} bytes of new data after the {consumed} the transfer list uses",
                self.path.display(),
                p.data_entry
            );
        }
        out.commit()?;
        Ok(size)
    }
}

fn read_full(r: &mut dyn Read, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match r.read(buf) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short")),
            Ok(n) => buf = &mut buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
