//! Package kinds behind one [`Rom`] type: open by magic bytes, list partitions.
//!
//! Recognised so far: recovery OTA zips (A/B, `payload.bin`) and bare
//! `payload.bin` files. Fastboot packages, block-based OTAs and raw images
//! are identified and refused with a message saying so.

pub mod ota;
pub mod version;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
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
}

impl RomKind {
    /// Human name.
    pub fn describe(self) -> &'static str {
        match self {
            RomKind::RecoveryOta => "recovery OTA (A/B payload.bin in zip)",
            RomKind::Payload => "bare payload.bin",
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
    /// The zip, for OTA packages.
    pub zip: Option<OtaZip>,
    /// The payload.
    pub payload: Payload,
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
                .or_else(|| payload.manifest.security_patch_level.clone()),
            timestamp: m
                .get("post-timestamp")
                .and_then(|t| t.parse().ok())
                .or(payload.manifest.max_timestamp),
            ota_type: m.get("ota-type").cloned(),
        }
    }
}

/// Identifies the package kind of the first bytes of a file; `Err` carries a
/// description of a recognised but unsupported kind.
fn sniff(path: &Path) -> Result<std::result::Result<RomKind, String>> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = [0u8; 4096];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    let head = &head[..n];
    let le32 = |o: usize| {
        head.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
    };
    Ok(
        if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            Ok(RomKind::RecoveryOta)
        } else if head.starts_with(b"CrAU") {
            Ok(RomKind::Payload)
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Err("a gzip/tgz archive (fastboot package), which this version cannot read yet".into())
        } else if le32(0) == Some(0xED26_FF3A) {
            Err("an Android sparse image, which this version cannot read yet".into())
        } else if le32(1024) == Some(0xE0F5_E1E2) {
            Err("an EROFS image, not a package".into())
        } else if head.get(1080..1082) == Some(&[0x53, 0xEF]) {
            Err("an ext4 image, not a package".into())
        } else {
            Err(format!(
                "not a package romkit recognises (first bytes {:02x?})",
                &head[..head.len().min(8)]
            ))
        },
    )
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
        let kind = sniff(path)?.map_err(|why| Error::invalid(path, why))?;
        let (zip, source) = match kind {
            RomKind::RecoveryOta => {
                let z = OtaZip::open(path).map_err(|e| match e {
                    Error::Invalid { file, msg } if msg.contains("no payload.bin") => {
                        let names = zip_names_hint(path);
                        Error::Invalid {
                            file,
                            msg: format!("{msg}{names}"),
                        }
                    }
                    other => other,
                })?;
                let src = z.payload.clone();
                (Some(z), src)
            }
            RomKind::Payload => (None, FileSlice::open(path).map_err(|e| Error::io(path, e))?),
        };
        let payload =
            Payload::open(source).map_err(|source| Error::payload(path.to_path_buf(), source))?;
        Ok(Rom {
            path: path.to_path_buf(),
            file_size: meta.len(),
            kind,
            zip,
            payload,
        })
    }

    /// What the package says about its build.
    pub fn build_info(&self) -> BuildInfo {
        match &self.zip {
            Some(z) => BuildInfo::from_metadata(&z.metadata, &self.payload),
            None => BuildInfo {
                security_patch: self.payload.manifest.security_patch_level.clone(),
                timestamp: self.payload.manifest.max_timestamp,
                ..Default::default()
            },
        }
    }
}

/// A hint naming the package kind when a zip has no payload.bin.
fn zip_names_hint(path: &Path) -> String {
    let Ok(f) = File::open(path) else {
        return String::new();
    };
    let Ok(a) = zip::ZipArchive::new(f) else {
        return String::new();
    };
    let names: Vec<String> = a
        .file_names_raw()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    if names
        .iter()
        .any(|n| n.ends_with(".new.dat.br") || n.ends_with(".transfer.list"))
    {
        " (it is a block-based OTA, which this version cannot read yet)".into()
    } else if names.iter().any(|n| n.contains("images/")) {
        " (it looks like a fastboot package, which this version cannot read yet)".into()
    } else {
        String::new()
    }
}

impl Rom {
    /// Names of the partitions the package carries, in package order.
    pub fn partition_names(&self) -> Vec<String> {
        self.payload
            .partitions
            .iter()
            .map(|p| p.name.clone())
            .collect()
    }

    /// Index of a partition by name; a usage error listing the partitions if absent.
    pub fn partition_index(&self, name: &str) -> Result<usize> {
        let parts = &self.payload.partitions;
        parts.iter().position(|x| x.name == name).ok_or_else(|| {
            Error::Usage(format!(
                "partition {name:?} is not in {} (it has: {})",
                self.path.display(),
                parts
                    .iter()
                    .map(|x| x.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// Decodes one partition into `dest` (which must not exist yet unless
    /// `force`), checking every hash. The file appears under its final name
    /// only when complete and verified.
    pub fn extract_partition(
        &self,
        name: &str,
        dest: &Path,
        jobs: usize,
        force: bool,
    ) -> Result<()> {
        use crate::format::payload::extract::{self, Job, NoProgress, OutputFile};
        let p = &self.payload;
        let idx = self.partition_index(name)?;
        let part = &p.partitions[idx];
        if let Some(op) = part.first_incremental_op() {
            return Err(Error::payload(
                &self.path,
                crate::format::payload::PayloadError::Incremental {
                    partition: part.name.clone(),
                    index: op.index,
                    kind: op.kind_name(),
                },
            ));
        }
        let f = crate::output::AtomicFile::create(dest, force)?;
        f.file()
            .set_len(part.size)
            .map_err(|e| Error::io(f.tmp_path(), e))?;
        let clone = f
            .file()
            .try_clone()
            .map_err(|e| Error::io(f.tmp_path(), e))?;
        let outcome = extract::run(
            &Job {
                payload: p,
                partitions: vec![idx],
                outputs: Some(vec![OutputFile::new(clone, f.tmp_path().to_path_buf())]),
                verify: true,
                fail_fast: true,
                jobs,
            },
            &NoProgress,
        );
        if let Some(e) = outcome.failures.into_iter().next() {
            return Err(e);
        }
        f.commit()?;
        Ok(())
    }
}
