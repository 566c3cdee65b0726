//! Package kinds behind one [`Rom`] type: open by magic bytes, list
//! partitions, extract one (checked, atomically).
//!
//! Kinds: recovery OTA zips (A/B, `payload.bin`), bare `payload.bin`,
//! fastboot packages (`.tgz` or `.zip` with `images/`), block-based OTA zips
//! (`*.new.dat(.br)` + `*.transfer.list`), bare super images (raw or sparse,
//! whole or split) and bare sparse images. Whatever the kind, [`Rom::partitions`]
//! lists the partitions (logical partitions inside super included) and
//! [`Rom::extract_partition`] writes one.

pub mod block;
pub mod describe;
pub mod images;
pub mod incremental;
pub mod load;
pub mod ota;
pub mod scripts;
pub mod unpack;
pub mod verify;
pub mod version;
mod zip;

pub(crate) use zip::{MAX_DEFLATE_RATIO, open_zip, zip_archive};
use zip::{ZipKind, zip_kind};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::payload::Payload;
use crate::format::source::FileSlice;
pub use ota::OtaZip;
pub use version::VersionCode;

/// Which kind of package a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RomKind {
    /// A zip with `payload.bin`.
    RecoveryOta,
    /// A bare `payload.bin`.
    Payload,
    /// A fastboot package as gzip-compressed tar (official Xiaomi).
    FastbootTgz,
    /// A fastboot package as zip (xiaomi.eu style).
    FastbootZip,
    /// A block-based OTA zip (`*.new.dat.br` + `*.transfer.list`).
    BlockOta,
    /// A bare super image (raw or sparse, whole or split into parts).
    SuperImage,
    /// A bare Android sparse image (not super).
    SparseImage,
}

impl RomKind {
    /// Human name.
    pub fn describe(self) -> &'static str {
        match self {
            RomKind::RecoveryOta => "recovery OTA (A/B payload.bin in zip)",
            RomKind::Payload => "bare payload.bin",
            RomKind::FastbootTgz => "fastboot package (tgz with images/)",
            RomKind::FastbootZip => "fastboot package (zip with images/)",
            RomKind::BlockOta => "block-based OTA (new.dat + transfer.list in zip)",
            RomKind::SuperImage => "super image (LP metadata)",
            RomKind::SparseImage => "Android sparse image",
        }
    }
}

/// An opened package.
#[derive(Debug)]
pub struct Rom {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub file_size: u64,
    /// What kind it is.
    pub kind: RomKind,
    /// What was read of it, by family of kinds.
    pub content: Content,
    /// For an incremental package: the previous build's images its payload
    /// applies to (see [`incremental::prepare`]); decoding its partitions
    /// then applies the payload to them, source hashes checked first.
    pub source_images: Option<incremental::SourceImages>,
    /// For a build that reads its input only to decode it (and hash it in
    /// order): the input's cached pages, dropped as the decode and the hash
    /// are done with them (see [`crate::format::input_pages::InputPages`]).
    pub input_pages: Option<std::sync::Arc<crate::format::input_pages::InputPages>>,
}

/// What an opened package holds: one variant per family of package kinds,
/// so that code which needs one family matches on it once, and everything
/// else goes through [`Rom`]'s methods, which answer for every kind.
#[derive(Debug)]
pub enum Content {
    /// A payload: a recovery OTA zip (`zip` present) or a bare `payload.bin`.
    Payload {
        /// The OTA zip around the payload, if any.
        zip: Option<Box<OtaZip>>,
        /// The payload.
        payload: Box<Payload>,
    },
    /// Partition images: a fastboot package or a bare (super or sparse) image.
    Images(Box<images::ImagePackage>),
    /// A block-based OTA.
    Block(Box<block::BlockOta>),
}

/// One partition of a package, whatever its kind.
#[derive(Clone, Debug, Serialize)]
pub struct PartInfo {
    /// Name (`system`; a logical partition whose other slot is empty is
    /// listed without its slot suffix).
    pub name: String,
    /// Size of the image in bytes.
    pub size: u64,
    /// Dynamic partition group, for partitions inside super.
    pub group: Option<String>,
    /// Where it comes from: `payload.bin`, the image's path in the package,
    /// `super:system_a` for a logical partition, the transfer list.
    pub origin: String,
    /// Name in the LP metadata, for logical partitions.
    pub lp_name: Option<String>,
    /// Whether the image is stored sparse.
    pub sparse: bool,
}

/// What a package says about the build it carries.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BuildInfo {
    /// Xiaomi version code as found (`post-build-incremental`).
    pub version: Option<String>,
    /// Decoded version code.
    pub decoded: Option<VersionCode>,
    /// Device codename(s) (`pre-device`).
    pub device: Option<String>,
    /// Android release, from the fingerprint or SDK level.
    pub android: Option<String>,
    /// Build fingerprint (`post-build`).
    pub fingerprint: Option<String>,
    /// Security patch level.
    pub security_patch: Option<String>,
    /// Build timestamp (seconds since the epoch).
    pub timestamp: Option<i64>,
    /// OTA type (`AB`, `BLOCK`).
    pub ota_type: Option<String>,
}

fn sdk_to_release(sdk: &str) -> Option<&'static str> {
    Some(match sdk {
        "29" => "10",
        "30" => "11",
        "31" => "12",
        "32" => "12L",
        "33" => "13",
        "34" => "14",
        "35" => "15",
        "36" => "16",
        _ => return None,
    })
}

impl BuildInfo {
    /// Reads the facts from an OTA's `META-INF/com/android/metadata`.
    pub fn from_metadata(m: &BTreeMap<String, String>, payload: &Payload) -> Self {
        Self::from_metadata_opt(m, Some(payload))
    }

    /// Same, for packages that may have no payload (block-based OTAs).
    pub fn from_metadata_opt(m: &BTreeMap<String, String>, payload: Option<&Payload>) -> Self {
        let fingerprint = m.get("post-build").cloned();
        let android = fingerprint
            .as_deref()
            .and_then(|f| f.split(':').nth(1))
            .and_then(|s| s.split('/').next())
            .map(str::to_string)
            .or_else(|| {
                m.get("post-sdk-level")
                    .and_then(|s| sdk_to_release(s))
                    .map(str::to_string)
            });
        let version = m.get("post-build-incremental").cloned();
        BuildInfo {
            decoded: version.as_deref().and_then(VersionCode::parse),
            version,
            device: m.get("pre-device").cloned(),
            android,
            fingerprint,
            security_patch: m
                .get("post-security-patch-level")
                .cloned()
                .or_else(|| payload.and_then(|p| p.manifest.security_patch_level.clone())),
            timestamp: m
                .get("post-timestamp")
                .and_then(|t| t.parse().ok())
                .or(payload.and_then(|p| p.manifest.max_timestamp)),
            ota_type: m.get("ota-type").cloned(),
        }
    }
}

/// Identifies the package kind of a file from its first bytes.
fn sniff(path: &Path) -> Result<std::result::Result<RomKind, NotAPackage>> {
    let head = crate::util::magic::read_head(path).map_err(|e| Error::io(path, e))?;
    Ok(sniff_bytes(&head))
}

/// A file whose first bytes are not those of a package kind romkit reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAPackage {
    /// A filesystem image, which `ls`, `cat` and `apps` read but which is no package.
    #[error("an {0} image, not a package")]
    Filesystem(&'static str),
    /// Nothing romkit knows.
    #[error("not a package romkit recognises (first bytes {0:02x?})")]
    Unknown(Vec<u8>),
}

/// Identifies the package kind from the first bytes of a file
/// ([`crate::util::magic::HEAD_LEN`] bytes are enough for every kind; fewer
/// only when the file is smaller).
pub fn sniff_bytes(head: &[u8]) -> std::result::Result<RomKind, NotAPackage> {
    use crate::util::magic::Magic;
    match Magic::of(head) {
        Some(Magic::Zip) => Ok(RomKind::RecoveryOta),
        Some(Magic::Payload) => Ok(RomKind::Payload),
        Some(Magic::Gzip) => Ok(RomKind::FastbootTgz),
        Some(Magic::Sparse) => Ok(RomKind::SparseImage),
        Some(Magic::Super) => Ok(RomKind::SuperImage),
        Some(Magic::Erofs) => Err(NotAPackage::Filesystem("EROFS")),
        Some(Magic::Ext4) => Err(NotAPackage::Filesystem("ext4")),
        _ => Err(NotAPackage::Unknown(head[..head.len().min(8)].to_vec())),
    }
}

impl Rom {
    /// Opens a package, identified by its magic bytes.
    pub fn open(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Err(Error::invalid(
                path,
                "is a directory; expected a package file",
            ));
        }
        let mut kind = sniff(path)?.map_err(|why| Error::invalid(path, why.to_string()))?;
        let open_payload = |src: FileSlice| {
            Payload::open(src)
                .map(Box::new)
                .map_err(|source| Error::payload(path.to_path_buf(), source))
        };
        let content = match kind {
            RomKind::RecoveryOta | RomKind::FastbootZip | RomKind::BlockOta => {
                match zip_kind(path)? {
                    ZipKind::Payload => {
                        let z = OtaZip::open(path)?;
                        let payload = open_payload(z.payload.clone())?;
                        Content::Payload {
                            zip: Some(Box::new(z)),
                            payload,
                        }
                    }
                    ZipKind::Block => {
                        kind = RomKind::BlockOta;
                        Content::Block(Box::new(block::BlockOta::open(path)?))
                    }
                    ZipKind::Images => {
                        kind = RomKind::FastbootZip;
                        Content::Images(Box::new(images::ImagePackage::open_zip(path)?))
                    }
                    ZipKind::Other(names) => {
                        return Err(Error::invalid(
                            path,
                            format!(
                                "zip has no payload.bin, no images/ and no transfer list: not a package romkit reads{names}"
                            ),
                        ));
                    }
                }
            }
            RomKind::Payload => Content::Payload {
                zip: None,
                payload: open_payload(FileSlice::open(path).map_err(|e| Error::io(path, e))?)?,
            },
            RomKind::FastbootTgz => {
                Content::Images(Box::new(images::ImagePackage::open_tgz(path)?))
            }
            RomKind::SuperImage | RomKind::SparseImage => {
                let parts = split_siblings(path);
                let pkg = images::ImagePackage::open_bare(&parts)?;
                kind = if pkg.super_image.is_some() {
                    RomKind::SuperImage
                } else {
                    RomKind::SparseImage
                };
                Content::Images(Box::new(pkg))
            }
        };
        Ok(Rom {
            path: path.to_path_buf(),
            file_size: meta.len(),
            kind,
            content,
            source_images: None,
            input_pages: None,
        })
    }

    /// The payload, for payload-based kinds.
    pub fn payload(&self) -> Option<&Payload> {
        match &self.content {
            Content::Payload { payload, .. } => Some(payload),
            _ => None,
        }
    }

    /// The OTA zip around the payload, for recovery OTA zips.
    pub fn ota_zip(&self) -> Option<&OtaZip> {
        match &self.content {
            Content::Payload { zip, .. } => zip.as_deref(),
            _ => None,
        }
    }

    /// The images, for fastboot packages and bare images.
    pub fn images(&self) -> Option<&images::ImagePackage> {
        match &self.content {
            Content::Images(pkg) => Some(pkg),
            _ => None,
        }
    }

    /// The block-based OTA.
    pub fn block(&self) -> Option<&block::BlockOta> {
        match &self.content {
            Content::Block(b) => Some(b),
            _ => None,
        }
    }

    /// An upper bound of the bytes extracting `name` occupies on disk:
    /// zero-filled ranges of a payload stay holes; other kinds count the
    /// whole image.
    pub fn disk_estimate(&self, name: &str) -> u64 {
        use crate::format::payload::OpType;
        if let Some(part) = self.payload().and_then(|p| p.partition(name)) {
            return part
                .ops
                .iter()
                .filter(|o| !matches!(o.kind, Ok(OpType::Zero) | Ok(OpType::Discard)))
                .map(|o| o.dst_len)
                .sum::<u64>()
                .min(part.size);
        }
        self.partitions()
            .iter()
            .find(|p| p.name == name)
            .map_or(0, |p| p.size)
    }

    /// Every partition of the package, in package order.
    pub fn partitions(&self) -> Vec<PartInfo> {
        if let Some(p) = self.payload() {
            let dyn_meta = p.manifest.dynamic_partition_metadata.as_ref();
            return p
                .partitions
                .iter()
                .map(|part| PartInfo {
                    name: part.name.clone(),
                    size: part.size,
                    group: dyn_meta.and_then(|d| {
                        d.groups
                            .iter()
                            .find(|g| g.partition_names.contains(&part.name))
                            .and_then(|g| g.name.clone())
                    }),
                    origin: "payload.bin".into(),
                    lp_name: None,
                    sparse: false,
                })
                .collect();
        }
        if let Some(pkg) = self.images() {
            return pkg
                .sources()
                .into_iter()
                .map(|(name, size, src)| match src {
                    images::Source::Image(i) => {
                        let img = &pkg.images[i];
                        PartInfo {
                            name,
                            size,
                            group: None,
                            origin: img.files[0].path.clone(),
                            lp_name: None,
                            sparse: img.sparse,
                        }
                    }
                    images::Source::Logical(i) => {
                        let s = pkg
                            .super_image
                            .as_ref()
                            .expect("logical partitions come from super");
                        let l = &s.logical[i];
                        PartInfo {
                            name,
                            size,
                            group: Some(l.group.clone()),
                            origin: format!("{}:{}", pkg.images[s.image].name, l.lp_name),
                            lp_name: Some(l.lp_name.clone()),
                            sparse: pkg.images[s.image].sparse,
                        }
                    }
                })
                .collect();
        }
        if let Some(b) = self.block() {
            return b.partitions();
        }
        Vec::new()
    }

    /// What the package says about its build.
    pub fn build_info(&self) -> BuildInfo {
        if let Some(p) = self.payload() {
            return match self.ota_zip() {
                Some(z) => BuildInfo::from_metadata(&z.metadata, p),
                None => BuildInfo {
                    security_patch: p.manifest.security_patch_level.clone(),
                    timestamp: p.manifest.max_timestamp,
                    ..Default::default()
                },
            };
        }
        if let Some(b) = self.block() {
            return b.build_info();
        }
        let mut info = BuildInfo::from_file_name(&self.path);
        if let Some(pkg) = self.images()
            && let Some(d) = pkg.script_device()
        {
            info.device = Some(d);
        }
        info
    }
}

/// `X.0` given: `X.0`, `X.1`, … as long as they exist (split sparse parts).
fn split_siblings(path: &Path) -> Vec<PathBuf> {
    let s = path.to_string_lossy();
    if let Some(base) = s.strip_suffix(".0") {
        let mut v = vec![path.to_path_buf()];
        for i in 1.. {
            let p = PathBuf::from(format!("{base}.{i}"));
            if !p.is_file() {
                break;
            }
            v.push(p);
        }
        v
    } else {
        vec![path.to_path_buf()]
    }
}

impl BuildInfo {
    /// What a package's file name tells: Xiaomi names fastboot packages
    /// `fuxi_images_OS1.0.24.0.UMCCNXM_20240115.0000.00_14.0_cn_….tgz`.
    pub fn from_file_name(path: &Path) -> Self {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tokens: Vec<&str> = name.split(['_', '-']).collect();
        let mut info = BuildInfo::default();
        for (i, t) in tokens.iter().enumerate() {
            let t = t.trim_end_matches(".tgz").trim_end_matches(".zip");
            if info.decoded.is_none()
                && let Some(v) = VersionCode::parse(t)
            {
                info.version = Some(t.to_string());
                info.android = v.android.clone();
                info.decoded = Some(v);
            }
            if t == "images" && i > 0 {
                info.device = Some(tokens[i - 1].to_ascii_lowercase());
            }
        }
        info
    }
}

impl Rom {
    /// Names of the partitions the package carries, in package order.
    pub fn partition_names(&self) -> Vec<String> {
        self.partitions().into_iter().map(|p| p.name).collect()
    }

    /// Index of a payload partition by name; a usage error listing the
    /// partitions if absent (payload kinds only).
    pub fn partition_index(&self, name: &str) -> Result<usize> {
        let Some(p) = self.payload() else {
            return Err(self.unknown_partition(name));
        };
        p.partitions
            .iter()
            .position(|x| x.name == name)
            .ok_or_else(|| self.unknown_partition(name))
    }

    pub(crate) fn unknown_partition(&self, name: &str) -> Error {
        Error::Usage(format!(
            "partition {name:?} is not in {} (it has: {})",
            self.path.display(),
            self.partitions()
                .iter()
                .map(|x| x.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    /// Writes one partition image to `dest` (which must not exist yet unless
    /// `force`), checking every hash or checksum the package carries for it.
    /// The file appears under its final name only when complete and checked.
    pub fn extract_partition(
        &self,
        name: &str,
        dest: &Path,
        jobs: usize,
        force: bool,
    ) -> Result<()> {
        self.extract_partitions(&[(name.to_string(), dest.to_path_buf())], jobs, force)
            .map(|_| ())
    }

    /// Writes several partitions (name, destination) at once: one pass over
    /// the package where it can only be read in order. Returns their sizes.
    pub fn extract_partitions(
        &self,
        requests: &[(String, PathBuf)],
        jobs: usize,
        force: bool,
    ) -> Result<Vec<u64>> {
        if let Some(pkg) = self.images() {
            return pkg.extract(requests, jobs, force);
        }
        if let Some(b) = self.block() {
            return b.extract(requests, force);
        }
        let Some(p) = self.payload() else {
            return Err(Error::Usage(format!(
                "{} holds no partition images",
                self.path.display()
            )));
        };
        for (name, _) in requests {
            self.partition_index(name)?;
            if self.source_images.is_none() {
                unpack::refuse_incremental(self, p, name)?;
            }
        }
        let written = self.unpack_payload(
            p,
            requests,
            unpack::PayloadRun {
                verify: true,
                // The callers read the images back (trees, hashes, edits):
                // they had better be in the page cache.
                direct_io: false,
                force,
                jobs,
                source: self.source_images.as_ref(),
                pages: self.input_pages.as_deref(),
            },
            &crate::format::payload::extract::NoProgress,
        )?;
        Ok(written.into_iter().map(|w| w.size).collect())
    }
}
