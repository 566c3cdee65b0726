//! App identity from an APK: package, versions, SDK levels, shared user,
//! overlay target, split name and signer, read with `apk-info` from the APK's
//! bytes.
//!
//! Sizes are checked before anything is inflated: a manifest larger than any
//! real one, or a resource table past [`MAX_ARSC`], is an error for that APK
//! alone. The resource table is parsed only when the manifest refers to it
//! (a `versionName` given as `@string/...`).

pub mod sink;

use apk_info::{ARSC, AXML, Signature, ZipEntry};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Largest compressed `AndroidManifest.xml` accepted (real ones are tens of KiB).
pub const MAX_MANIFEST_COMPRESSED: u64 = 1 << 20;
/// Largest declared size of `AndroidManifest.xml`.
pub const MAX_MANIFEST: u64 = 16 << 20;
/// Largest `resources.arsc` parsed (framework-res's is tens of MiB).
pub const MAX_ARSC: u64 = 256 << 20;

/// What an APK says about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ApkIdentity {
    /// Package name.
    pub package: String,
    /// `android:versionCode` (with `versionCodeMajor` in the high 32 bits).
    pub version_code: Option<u64>,
    /// `android:versionName`, resolved through `resources.arsc` when it is a reference.
    pub version_name: Option<String>,
    /// `<uses-sdk android:minSdkVersion>`.
    pub min_sdk: Option<u32>,
    /// `<uses-sdk android:targetSdkVersion>`.
    pub target_sdk: Option<u32>,
    /// `android:sharedUserId`.
    pub shared_user_id: Option<String>,
    /// `<overlay android:targetPackage>` of a runtime resource overlay.
    pub overlay_target: Option<String>,
    /// The split name of a split APK (`split="config.arm64_v8a"`).
    pub split: Option<String>,
    /// SHA-256 of the first signer's certificate (lowercase hex).
    pub signer: Option<String>,
    /// Signature schemes present (`v1`, `v2`, `v3`, `v3.1`).
    pub schemes: Vec<String>,
}

/// An APK's identity plus the file facts.
#[derive(Clone, Debug, Serialize)]
pub struct ApkFile {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the file (lowercase hex).
    pub sha256: String,
    /// The identity, or why it could not be read.
    pub identity: Result<ApkIdentity, ApkError>,
}

/// Why an APK's identity could not be read. Serialized as its message.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ApkError {
    /// Smaller than the smallest zip.
    #[error("{0} bytes: too short for a zip archive")]
    TooShort(usize),
    /// The zip structure does not parse.
    #[error("not a valid zip archive: {0}")]
    NotZip(String),
    /// No `AndroidManifest.xml` entry.
    #[error("no AndroidManifest.xml")]
    NoManifest,
    /// The manifest entry claims an absurd size.
    #[error(
        "AndroidManifest.xml declares {size} bytes ({compressed} compressed); refusing more than {MAX_MANIFEST} ({MAX_MANIFEST_COMPRESSED})"
    )]
    ManifestTooLarge {
        /// Declared uncompressed size.
        size: u64,
        /// Declared compressed size.
        compressed: u64,
    },
    /// The manifest entry cannot be read.
    #[error("AndroidManifest.xml: {0}")]
    ManifestRead(String),
    /// The manifest is not binary XML.
    #[error("AndroidManifest.xml is not valid binary XML: {0}")]
    ManifestXml(String),
    /// The manifest names no package.
    #[error("AndroidManifest.xml has no package attribute")]
    NoPackage,
    /// `versionName` is a resource reference that does not resolve.
    #[error("versionName {0} does not resolve in resources.arsc")]
    VersionName(String),
    /// `resources.arsc` claims an absurd size.
    #[error("resources.arsc declares {0} bytes; refusing more than {MAX_ARSC}")]
    ArscTooLarge(u64),
    /// `resources.arsc` cannot be read.
    #[error("resources.arsc: {0}")]
    ArscRead(String),
    /// `resources.arsc` is not a resource table.
    #[error("resources.arsc is not a valid resource table: {0}")]
    ArscInvalid(String),
}

impl Serialize for ApkError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Hashes and identifies the APK in `bytes`.
pub fn read_apk(bytes: Vec<u8>) -> ApkFile {
    let size = bytes.len() as u64;
    let sha256 = crate::util::hex(&Sha256::digest(&bytes));
    ApkFile {
        size,
        sha256,
        identity: identify(bytes),
    }
}

fn parse_num(s: Option<String>) -> Option<u64> {
    let s = s?;
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x") {
        u64::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.is_empty())
}

/// Reads the identity of the APK in `bytes`.
pub fn identify(bytes: Vec<u8>) -> Result<ApkIdentity, ApkError> {
    if bytes.len() < 22 {
        return Err(ApkError::TooShort(bytes.len()));
    }
    let zip = ZipEntry::new(bytes).map_err(|e| ApkError::NotZip(e.to_string()))?;
    let info = zip
        .entry_info("AndroidManifest.xml")
        .ok_or(ApkError::NoManifest)?;
    if info.compressed_size > MAX_MANIFEST_COMPRESSED || info.uncompressed_size > MAX_MANIFEST {
        return Err(ApkError::ManifestTooLarge {
            size: info.uncompressed_size,
            compressed: info.compressed_size,
        });
    }
    let (manifest, _) = zip
        .read("AndroidManifest.xml")
        .map_err(|e| ApkError::ManifestRead(e.to_string()))?;
    let axml =
        AXML::new(&mut &manifest[..], None).map_err(|e| ApkError::ManifestXml(e.to_string()))?;
    let mut arsc: Option<ARSC> = None;
    let attr = |tag: &str, name: &str, arsc: Option<&ARSC>| {
        nonempty(axml.get_attribute_value(tag, name, arsc))
    };
    let package = attr("manifest", "package", None).ok_or(ApkError::NoPackage)?;
    let mut version_name = attr("manifest", "versionName", None);
    if version_name.as_deref().is_some_and(|v| v.starts_with('@')) {
        arsc = load_arsc(&zip)?;
        version_name = attr("manifest", "versionName", arsc.as_ref());
        if version_name.as_deref().is_some_and(|v| v.starts_with('@')) {
            return Err(ApkError::VersionName(version_name.unwrap_or_default()));
        }
    }
    let code = parse_num(attr("manifest", "versionCode", None));
    let major = parse_num(attr("manifest", "versionCodeMajor", None)).unwrap_or(0);
    let version_code = code.map(|c| (major << 32) | (c & 0xffff_ffff));
    let sdk = |name: &str| parse_num(attr("uses-sdk", name, arsc.as_ref())).map(|v| v as u32);
    let (signer, schemes) = signers(&zip);
    Ok(ApkIdentity {
        package,
        version_code,
        version_name,
        min_sdk: sdk("minSdkVersion"),
        target_sdk: sdk("targetSdkVersion"),
        shared_user_id: attr("manifest", "sharedUserId", arsc.as_ref()),
        overlay_target: attr("overlay", "targetPackage", arsc.as_ref()),
        split: attr("manifest", "split", None),
        signer,
        schemes,
    })
}

fn load_arsc(zip: &ZipEntry) -> Result<Option<ARSC>, ApkError> {
    let Some(info) = zip.entry_info("resources.arsc") else {
        return Ok(None);
    };
    if info.uncompressed_size > MAX_ARSC || info.compressed_size > MAX_ARSC {
        return Err(ApkError::ArscTooLarge(info.uncompressed_size));
    }
    let (data, _) = zip
        .read("resources.arsc")
        .map_err(|e| ApkError::ArscRead(e.to_string()))?;
    ARSC::new(&mut &data[..])
        .map(Some)
        .map_err(|e| ApkError::ArscInvalid(e.to_string()))
}

/// The first signer's certificate digest and the schemes present. Newer
/// schemes win: v3 and v2 blocks name the signer Android uses; v1 is only
/// consulted when there is no signing block.
fn signers(zip: &ZipEntry) -> (Option<String>, Vec<String>) {
    let mut schemes = Vec::new();
    let mut best: Option<(u8, String)> = None;
    let mut note = |rank: u8, name: &str, certs: &[apk_info::CertificateInfo]| {
        schemes.push(name.to_string());
        if let Some(c) = certs.first()
            && best.as_ref().is_none_or(|(r, _)| rank > *r)
        {
            best = Some((rank, c.sha256_fingerprint.to_lowercase()));
        }
    };
    if let Ok(Some(Signature::V1(certs))) = zip.get_signature_v1() {
        note(1, "v1", &certs);
    }
    if let Ok(others) = zip.get_signatures_other() {
        for s in others {
            match s {
                Signature::V2(c) => note(2, "v2", &c),
                Signature::V3(c) => note(3, "v3", &c),
                Signature::V31(c) => note(4, "v3.1", &c),
                _ => {}
            }
        }
    }
    schemes.sort();
    schemes.dedup();
    (best.map(|b| b.1), schemes)
}
