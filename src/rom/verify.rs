//! `verify` as data: every hash, checksum and signature a package carries,
//! checked without writing images, returned as a list of [`Check`]s.
//!
//! Each check has a [`CheckKind`] that says what a failure of it means:
//! [`CheckKind::Integrity`] (a hash, checksum or signature did not match:
//! the bytes changed) or [`CheckKind::Structure`] (the package is malformed:
//! data missing or undecodable). [`VerifyReport::exit_code`] follows from
//! the kinds of the failed checks, never from their names.

use std::fmt::Write;
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Rom;
use crate::error::{EXIT_CHECK, EXIT_INVALID, Error, Result};
use crate::format::payload::delta;
use crate::format::payload::extract::{self, Job, Progress};
use crate::format::payload::sign::{self, RsaPublicKey, SigStatus, base64_encode};
use crate::format::payload::{Payload, PayloadError};
use crate::util::hex;

/// How a check came out.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Checked and matched.
    Ok,
    /// Checked and did not match, or could not be checked because the data is broken.
    Failed,
    /// Not checked (nothing to check against, or a key is needed).
    Skipped,
}

/// What a failed check means.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// A hash, checksum or signature: a failure means the bytes changed (exit 1).
    Integrity,
    /// The structure of the package: a failure means it is malformed (exit 3).
    Structure,
    /// A fact that matters when flashing (the anti-rollback version, lock
    /// scripts): reported, never failed.
    Info,
}

/// One check: what was checked, how it came out and the details.
#[derive(Serialize, Clone, Debug)]
pub struct Check {
    /// What was checked (`zip entry payload.bin`, `partition system`, …).
    pub check: String,
    /// What a failure means.
    pub kind: CheckKind,
    /// The outcome.
    pub status: Status,
    /// Hashes, counts or what went wrong.
    pub detail: String,
}

/// Every check of one package.
#[derive(Serialize, Debug)]
pub struct VerifyReport {
    /// The package.
    pub file: PathBuf,
    /// No check failed.
    pub ok: bool,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
}

impl VerifyReport {
    fn new(file: PathBuf, checks: Vec<Check>) -> Self {
        VerifyReport {
            file,
            ok: !checks.iter().any(|c| c.status == Status::Failed),
            checks,
        }
    }

    /// 0 when every check passed; 1 when an integrity check failed; 3 when
    /// only structure checks failed.
    pub fn exit_code(&self) -> u8 {
        let failed = |k: CheckKind| {
            self.checks
                .iter()
                .any(|c| c.status == Status::Failed && c.kind == k)
        };
        if failed(CheckKind::Integrity) {
            EXIT_CHECK
        } else if failed(CheckKind::Structure) {
            EXIT_INVALID
        } else {
            0
        }
    }
}

/// What `verify` needs besides the package.
pub struct VerifyOptions<'a> {
    /// RSA public key to check payload signatures against.
    pub key: Option<&'a RsaPublicKey>,
    /// Worker threads.
    pub jobs: usize,
    /// Told about decoded bytes (payload operations).
    pub progress: &'a dyn Progress,
    /// The previous build's images, to rebuild an incremental payload's
    /// partitions in memory and check them.
    pub source: Option<&'a super::incremental::SourceImages>,
}

#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn push(&mut self, check: impl Into<String>, kind: CheckKind, status: Status, detail: String) {
        self.0.push(Check {
            check: check.into(),
            kind,
            status,
            detail,
        });
    }

    fn integrity(&mut self, check: impl Into<String>, status: Status, detail: String) {
        self.push(check, CheckKind::Integrity, status, detail);
    }

    /// Zip CRC-32s and local headers of every entry (but `payload.bin`,
    /// checked in the whole-file pass).
    fn zip_entries(&mut self, rom: &Rom, ok_detail: String) -> Result<()> {
        let failures = super::OtaZip::check_entry_crcs(&rom.path)?;
        if failures.is_empty() {
            self.integrity("zip entries", Status::Ok, ok_detail);
        }
        for (name, why) in failures {
            self.integrity(format!("zip entry {name}"), Status::Failed, why);
        }
        Ok(())
    }
}

impl Rom {
    /// Checks everything the package carries; see the module docs.
    pub fn verify(&self, opts: &VerifyOptions<'_>) -> Result<VerifyReport> {
        let checks = match self.payload() {
            Some(p) => self.verify_payload(p, opts)?,
            None => self.verify_images()?,
        };
        Ok(VerifyReport::new(self.path.clone(), checks))
    }

    fn verify_payload(&self, p: &Payload, opts: &VerifyOptions<'_>) -> Result<Vec<Check>> {
        let mut c = Checks::default();
        if let Some(zip) = self.ota_zip() {
            let n = zip.entries.len().saturating_sub(1);
            c.zip_entries(self, format!("CRC-32 of {n} entries besides payload.bin"))?;
        }
        // The sequential whole-file pass (FILE_HASH, zip CRC, payload-signature
        // digest) runs beside the parallel operation checks.
        let incremental = p.is_incremental();
        let all: Vec<usize> = (0..p.partitions.len()).collect();
        let sources = match opts.source {
            Some(images) if incremental => super::incremental::open_sources(p, &all, images)?,
            _ => Vec::new(),
        };
        let (whole, outcome) = std::thread::scope(|s| {
            let whole = s.spawn(|| p.whole_file_pass(opts.key.is_some()));
            let outcome = (!incremental || opts.source.is_some()).then(|| {
                let wrong = if incremental {
                    delta::check_sources(p, &all, &sources, opts.jobs, false)
                } else {
                    Vec::new()
                };
                if !wrong.is_empty() {
                    return Err(wrong);
                }
                Ok(extract::run(
                    &Job {
                        payload: p,
                        partitions: all.clone(),
                        outputs: None,
                        verify: true,
                        fail_fast: false,
                        jobs: opts.jobs,
                        sources: sources.clone(),
                        pages: None,
                    },
                    opts.progress,
                ))
            });
            (whole.join(), outcome)
        });
        let perr = |source: PayloadError| Error::payload(self.path.clone(), source);
        let whole = match whole {
            Ok(r) => r.map_err(perr)?,
            Err(_) => return Err(Error::invalid(&self.path, "internal error while hashing")),
        };
        self.payload_file_checks(&mut c, p, &whole)?;
        signature_checks(&mut c, p, &whole, opts.key).map_err(perr)?;
        match outcome {
            None => data_hash_checks(&mut c, p),
            Some(Ok(outcome)) => operation_checks(&mut c, outcome, p.source.path()),
            Some(Err(wrong)) => {
                data_hash_checks(&mut c, p);
                for e in wrong {
                    let e = Error::payload(p.source.path(), e);
                    let kind = if e.exit_code() == EXIT_CHECK {
                        CheckKind::Integrity
                    } else {
                        CheckKind::Structure
                    };
                    c.push("source", kind, Status::Failed, e.to_string());
                }
            }
        }
        Ok(c.0)
    }

    /// payload.bin's zip CRC and `payload_properties.txt`, or the bare
    /// payload's SHA-256.
    fn payload_file_checks(
        &self,
        c: &mut Checks,
        p: &Payload,
        whole: &crate::format::payload::WholeFile,
    ) -> Result<()> {
        let Some(zip) = self.ota_zip() else {
            c.integrity("payload sha256", Status::Ok, hex(&whole.sha256));
            return Ok(());
        };
        let ok = whole.crc32 == zip.payload_crc32;
        c.integrity(
            "zip entry payload.bin",
            if ok { Status::Ok } else { Status::Failed },
            if ok {
                format!("CRC-32 {:08x}", whole.crc32)
            } else {
                format!(
                    "CRC-32 mismatch: central directory {:08x}, data {:08x}",
                    zip.payload_crc32, whole.crc32
                )
            },
        );
        let Some(props) = &zip.properties else {
            c.integrity(
                "payload_properties.txt",
                Status::Skipped,
                "not in the package".into(),
            );
            return Ok(());
        };
        let meta_hash = p
            .metadata_hash()
            .map_err(|source| Error::payload(self.path.clone(), source))?;
        let fields = [
            (
                "FILE_HASH",
                props.file_hash.clone(),
                base64_encode(&whole.sha256),
            ),
            (
                "FILE_SIZE",
                props.file_size.map(|v| v.to_string()),
                p.source.len().to_string(),
            ),
            (
                "METADATA_HASH",
                props.metadata_hash.clone(),
                base64_encode(&meta_hash),
            ),
            (
                "METADATA_SIZE",
                props.metadata_size.map(|v| v.to_string()),
                p.header.metadata_size().to_string(),
            ),
        ];
        for (name, want, have) in fields {
            let check = format!("payload_properties {name}");
            match want {
                None => c.integrity(check, Status::Skipped, "absent".into()),
                Some(w) if w == have => c.integrity(check, Status::Ok, have),
                Some(w) => c.integrity(
                    check,
                    Status::Failed,
                    format!("expected {w}, payload has {have}"),
                ),
            }
        }
        Ok(())
    }
}

/// The metadata and payload signatures, checked against `key` when given.
fn signature_checks(
    c: &mut Checks,
    p: &Payload,
    whole: &crate::format::payload::WholeFile,
    key: Option<&RsaPublicKey>,
) -> std::result::Result<(), PayloadError> {
    let meta_blob = if p.has_metadata_signature() {
        Some(p.read(
            p.header.metadata_size(),
            p.header.metadata_signature_size.into(),
        )?)
    } else {
        None
    };
    let results = [
        (
            "metadata signature",
            sign::check("metadata signature", meta_blob, || p.metadata_hash(), key),
        ),
        (
            "payload signature",
            sign::check(
                "payload signature",
                p.payload_signature_blob()?,
                || Ok(whole.signed_digest.unwrap_or_default()),
                key,
            ),
        ),
    ];
    for (name, st) in results {
        let (status, detail) = match st {
            Ok(SigStatus::Unsigned) if key.is_some() => (Status::Failed, "unsigned".into()),
            Ok(SigStatus::Unsigned) => (Status::Skipped, "unsigned".into()),
            Ok(SigStatus::Present(n)) => (
                Status::Skipped,
                format!("{n} signature(s) present; pass --key to check them"),
            ),
            Ok(SigStatus::Verified) => (Status::Ok, "verified with the given key".into()),
            Ok(SigStatus::Mismatch) => {
                (Status::Failed, "does not verify with the given key".into())
            }
            Err(e) => (Status::Failed, e.to_string()),
        };
        c.integrity(name, status, detail);
    }
    Ok(())
}

/// Incremental payload: the images cannot be rebuilt without the old build,
/// but every operation's data hash can still be checked.
fn data_hash_checks(c: &mut Checks, p: &Payload) {
    let results: Vec<(String, usize, Option<bool>)> = p
        .partitions
        .par_iter()
        .flat_map(|part| part.ops.par_iter().map(move |op| (part, op)))
        .filter(|(_, op)| op.data_len > 0)
        .map(|(part, op)| {
            let ok = op.data_hash.map(|h| {
                p.read(op.data_offset, op.data_len)
                    .map(|d| <[u8; 32]>::from(Sha256::digest(&d)) == h)
                    .unwrap_or(false)
            });
            (part.name.clone(), op.index, ok)
        })
        .collect();
    let bad: Vec<_> = results.iter().filter(|r| r.2 == Some(false)).collect();
    for (name, idx, _) in &bad {
        c.integrity(
            format!("partition {name}"),
            Status::Failed,
            format!("operation {idx}: data_sha256_hash mismatch"),
        );
    }
    c.integrity(
        "operations",
        if bad.is_empty() {
            Status::Ok
        } else {
            Status::Failed
        },
        format!(
            "{} data hashes checked, {} mismatched; incremental payload: partition hashes need the previous build (--source BASE)",
            results.iter().filter(|r| r.2.is_some()).count(),
            bad.len()
        ),
    );
}

/// Full payload: one line per partition (operations hashed, image hash) and
/// one per failed operation.
fn operation_checks(c: &mut Checks, outcome: extract::Outcome, file: &std::path::Path) {
    for po in &outcome.partitions {
        let status = if po.ok() { Status::Ok } else { Status::Failed };
        let mut detail = format!("{} operations hashed", po.ops_verified);
        if po.ops_unhashed > 0 {
            let _ = write!(detail, ", {} without data_sha256_hash", po.ops_unhashed);
        }
        if po.ops_failed > 0 {
            let _ = write!(detail, ", {} FAILED", po.ops_failed);
        }
        match (po.expected_hash, po.actual_hash) {
            (Some(e), Some(a)) if e == a => {
                let _ = write!(detail, "; image sha256 {}", hex(&a));
            }
            (Some(e), Some(a)) => {
                let _ = write!(detail, "; image sha256 {} != expected {}", hex(&a), hex(&e));
            }
            (None, Some(a)) => {
                let _ = write!(
                    detail,
                    "; no new_partition_info.hash (image sha256 {})",
                    hex(&a)
                );
            }
            _ => {}
        }
        c.integrity(format!("partition {}", po.name), status, detail);
    }
    for e in outcome.failures {
        let e = Error::payload(file, e);
        if let Error::Payload { source, .. } = &e
            && matches!(**source, PayloadError::PartitionHash { .. })
        {
            continue; // already on the partition's line
        }
        let kind = if e.exit_code() == EXIT_CHECK {
            CheckKind::Integrity
        } else {
            CheckKind::Structure
        };
        c.push("operation", kind, Status::Failed, e.to_string());
    }
}

/// The outcome of a sparse structure and CRC check as a check line.
fn sparse_line(
    r: std::result::Result<
        (crate::format::sparse::Header, usize),
        crate::format::sparse::SparseError,
    >,
) -> (Status, String) {
    match r {
        Ok((h, n)) => (
            Status::Ok,
            format!(
                "sparse structure of {} blocks{}",
                h.total_blocks,
                if n > 0 {
                    format!(", {n} CRC-32 checksum(s)")
                } else {
                    ", no checksums recorded".into()
                }
            ),
        ),
        Err(e) => (Status::Failed, e.to_string()),
    }
}

impl Rom {
    /// Packages of images: archive checksums (zip CRC-32, gzip CRC), sparse
    /// structure and CRC32 chunks, every LP geometry and metadata copy,
    /// block OTA new-data lengths.
    fn verify_images(&self) -> Result<Vec<Check>> {
        let mut c = Checks::default();
        if let Some(pkg) = self.images() {
            self.verify_image_package(&mut c, pkg)?;
        }
        if let Some(b) = self.block() {
            c.zip_entries(self, "CRC-32 of every entry".into())?;
            for p in &b.partitions {
                let (kind, status, detail) = self.check_block_partition(p)?;
                c.push(format!("partition {}", p.name), kind, status, detail);
            }
        }
        Ok(c.0)
    }

    fn verify_image_package(
        &self,
        c: &mut Checks,
        pkg: &super::images::ImagePackage,
    ) -> Result<()> {
        use super::images::Archive;
        if pkg.archive == Archive::Zip {
            c.zip_entries(self, format!("CRC-32 of {} entries", pkg.entries.len()))?;
        }
        match pkg.archive {
            Archive::Tgz => self.verify_tgz(c, pkg)?,
            Archive::Zip | Archive::Bare => self.verify_sparse_files(c, pkg)?,
        }
        self.verify_flash_safety(c, pkg)?;
        verify_avb_footers(c, pkg);
        if let Some(s) = &pkg.super_image {
            let img = &pkg.images[s.image];
            let label = img.files[0].path.clone();
            let bad = match pkg.in_place_map(s.image) {
                Some(map) => s.metadata.check_all_copies(&map, img.size),
                None => s.metadata.check_all_copies(&img.head, img.size),
            };
            let m = &s.metadata;
            if bad.is_empty() {
                c.integrity(
                    format!("LP metadata of {label}"),
                    Status::Ok,
                    format!(
                        "geometry and backup, {} slot(s) × primary and backup: SHA-256 checksums match, {} partitions, extents inside the device",
                        m.geometry.metadata_slot_count,
                        m.partitions.len()
                    ),
                );
            }
            for (what, why) in bad {
                c.integrity(format!("LP {what}"), Status::Failed, why);
            }
        }
        Ok(())
    }

    /// A `.tgz`: one pass that checks every sparse image as a stream and the
    /// gzip trailer (CRC-32 and length) at the end.
    fn verify_tgz(&self, c: &mut Checks, pkg: &super::images::ImagePackage) -> Result<()> {
        let sparse_paths: std::collections::BTreeSet<&str> = pkg
            .images
            .iter()
            .filter(|i| i.sparse)
            .flat_map(|i| i.files.iter().map(|f| f.path.as_str()))
            .collect();
        let f = std::fs::File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let gz = flate2::read::GzDecoder::new(std::io::BufReader::with_capacity(1 << 20, f));
        let mut tar = tar::Archive::new(gz);
        let mut n = 0;
        let res: std::io::Result<()> = (|| {
            for e in tar.entries()? {
                let mut e = e?;
                let name = String::from_utf8_lossy(&e.path_bytes())
                    .trim_start_matches("./")
                    .to_string();
                n += 1;
                if sparse_paths.contains(name.as_str()) {
                    let (st, d) = sparse_line(crate::format::sparse::check_stream(&mut e));
                    c.integrity(format!("image {name}"), st, d);
                }
                std::io::copy(&mut e, &mut std::io::sink())?;
            }
            let mut rest = tar.into_inner();
            std::io::copy(&mut rest, &mut std::io::sink())?;
            Ok(())
        })();
        match res {
            Ok(()) => c.integrity(
                "tgz",
                Status::Ok,
                format!("gzip CRC-32 and {n} tar entries"),
            ),
            Err(e) => c.integrity("tgz", Status::Failed, e.to_string()),
        }
        Ok(())
    }

    /// Sparse images stored in place or as zip entries: structure and CRCs.
    fn verify_sparse_files(&self, c: &mut Checks, pkg: &super::images::ImagePackage) -> Result<()> {
        use super::images::Stored;
        for img in pkg.images.iter().filter(|i| i.sparse) {
            for f in &img.files {
                let r = match &f.stored {
                    Stored::InPlace(s) => crate::format::sparse::SparseFile::open(s.clone())
                        .and_then(|sf| {
                            let n = sf.check_crcs()?;
                            Ok((sf.header, n))
                        }),
                    Stored::Zip(idx) => {
                        let mut a = super::open_zip(&self.path)?;
                        let mut e = a
                            .by_index(*idx)
                            .map_err(|e| Error::invalid(&self.path, e.to_string()))?;
                        let r = crate::format::sparse::check_stream(&mut e);
                        let _ = std::io::copy(&mut e, &mut std::io::sink());
                        r
                    }
                    Stored::Tar(_) => continue,
                };
                let (st, d) = sparse_line(r);
                c.integrity(format!("image {}", f.path), st, d);
            }
        }
        Ok(())
    }

    /// What a fastboot package tells the device before flashing: its
    /// anti-rollback version and lock scripts (reported), and its CRC lists,
    /// each entry checked against the file the scripts flash to that
    /// partition (a mismatch is an integrity failure: the bootloader would
    /// refuse the flash).
    fn verify_flash_safety(&self, c: &mut Checks, pkg: &super::images::ImagePackage) -> Result<()> {
        use crate::format::crclist;
        let root = pkg.root();
        if let Some(a) = pkg.text("images/anti_version.txt") {
            c.push(
                "anti-rollback version",
                CheckKind::Info,
                Status::Ok,
                format!(
                    "images/anti_version.txt: {} (the scripts refuse a device whose getvar anti is higher)",
                    a.trim()
                ),
            );
        }
        for name in pkg.texts.keys() {
            let Some(rel) = name.strip_prefix(root.as_str()) else {
                continue;
            };
            let is_script = rel.ends_with(".sh") || rel.ends_with(".bat");
            if is_script && !rel.contains('/') && rel.contains("lock") {
                c.push(
                    format!("lock script {rel}"),
                    CheckKind::Info,
                    Status::Ok,
                    "present: relocking the bootloader on a modified build leaves the phone unbootable".into(),
                );
            }
        }
        let lists = [
            ("images/crclist.txt", false),
            ("images/sparsecrclist.txt", true),
        ];
        let mut wanted: Vec<ListedEntry> = Vec::new();
        for (rel, sparse_list) in lists {
            let Some(text) = pkg.text(rel) else {
                continue;
            };
            let parsed = if sparse_list {
                crclist::parse_sparse(text)
            } else {
                crclist::parse_crclist(text)
            };
            match parsed {
                Ok(entries) => {
                    for e in entries {
                        let files = flashed_files(pkg, &root, &e.partition);
                        wanted.push((rel.to_string(), e.partition, sparse_list, e.crcs, files));
                    }
                }
                Err(e) => c.push(rel, CheckKind::Structure, Status::Failed, e.to_string()),
            }
        }
        let digests = md5_digests(c, pkg);
        if wanted.is_empty() && digests.is_empty() {
            return Ok(());
        }
        let paths: std::collections::BTreeSet<String> =
            wanted.iter().flat_map(|w| w.4.iter().cloned()).collect();
        let md5s = digests
            .iter()
            .map(|d| format!("{root}images/{}", d.name))
            .collect();
        let crcs = self.entry_crcs(pkg, &paths, &md5s)?;
        for d in &digests {
            let check = format!("md5sum.xml {}", d.name);
            match crcs
                .get(&format!("{root}images/{}", d.name))
                .and_then(|e| e.2.as_ref())
            {
                None => c.integrity(
                    check,
                    Status::Failed,
                    format!("images/{} is not in the package", d.name),
                ),
                Some(h) if h.eq_ignore_ascii_case(&d.hex) => {
                    c.integrity(check, Status::Ok, format!("{h} matches"))
                }
                Some(h) => c.integrity(
                    check,
                    Status::Failed,
                    format!(
                        "images/{}: md5sum.xml says {}, the file's MD5 is {h}",
                        d.name, d.hex
                    ),
                ),
            }
        }
        for (list, part, sparse_list, want, files) in wanted {
            let check = format!("{list} {part}");
            if files.is_empty() || files.iter().any(|f| !crcs.contains_key(f)) {
                c.integrity(
                    check,
                    Status::Failed,
                    format!("partition {part}: no file in the package is flashed to it"),
                );
                continue;
            }
            let have: Vec<u32> = if sparse_list {
                files
                    .iter()
                    .flat_map(|f| crcs[f].1.clone().unwrap_or_default())
                    .collect()
            } else {
                files.iter().map(|f| crcs[f].0).collect()
            };
            let show = |v: &[u32]| {
                v.iter()
                    .map(|x| format!("{x:#x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            if have == want {
                c.integrity(check, Status::Ok, format!("{} matches", show(&have)));
            } else {
                c.integrity(
                    check,
                    Status::Failed,
                    format!(
                        "partition {part}: the list says {}, {} gives {}",
                        show(&want),
                        files.join(", "),
                        show(&have)
                    ),
                );
            }
        }
        Ok(())
    }

    /// The CRC-32 of each archive entry in `paths` and, for sparse ones,
    /// of each fastboot download ([`crate::format::sparse::download_part_crcs`]);
    /// the MD5 of those in `md5s` too.
    fn entry_crcs(
        &self,
        pkg: &super::images::ImagePackage,
        paths: &std::collections::BTreeSet<String>,
        md5s: &std::collections::BTreeSet<String>,
    ) -> Result<std::collections::BTreeMap<String, EntryCrcs>> {
        use super::images::Archive;
        let mut out = std::collections::BTreeMap::new();
        let bad = |e: std::io::Error| Error::invalid(&self.path, e.to_string());
        match pkg.archive {
            Archive::Zip => {
                let mut a = super::open_zip(&self.path)?;
                for p in paths.union(md5s) {
                    if let Ok(mut e) = a.by_name(p) {
                        let md5 = md5s.contains(p);
                        out.insert(p.clone(), stream_crcs(&mut e, md5).map_err(bad)?);
                    }
                }
            }
            Archive::Tgz => {
                let f = std::fs::File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
                let gz =
                    flate2::read::GzDecoder::new(std::io::BufReader::with_capacity(1 << 20, f));
                let mut tar = tar::Archive::new(gz);
                for e in tar.entries().map_err(bad)? {
                    let mut e = e.map_err(bad)?;
                    let name = String::from_utf8_lossy(&e.path_bytes())
                        .trim_start_matches("./")
                        .to_string();
                    if paths.contains(&name) || md5s.contains(&name) {
                        let md5 = md5s.contains(&name);
                        out.insert(name, stream_crcs(&mut e, md5).map_err(bad)?);
                        if out.len() == paths.union(md5s).count() {
                            break;
                        }
                    }
                }
            }
            Archive::Bare => {}
        }
        Ok(out)
    }

    /// A block OTA partition: its new data must hold every block the
    /// transfer list writes (a short stream is a structure failure).
    fn check_block_partition(
        &self,
        p: &super::block::BlockPartition,
    ) -> Result<(CheckKind, Status, String)> {
        use std::io::Read;
        let mut a = super::open_zip(&self.path)?;
        let e = a
            .by_name(&p.data_entry)
            .map_err(|e| Error::invalid(&self.path, e.to_string()))?;
        let mut r: Box<dyn Read> = if p.brotli {
            Box::new(brotli_decompressor::Decompressor::new(e, 1 << 16))
        } else {
            Box::new(e)
        };
        let need = p.list.new_blocks * crate::format::sdat::BLOCK;
        Ok(match std::io::copy(&mut r, &mut std::io::sink()) {
            Ok(n) if n >= need => (
                CheckKind::Integrity,
                Status::Ok,
                format!(
                    "transfer list v{}, {n} bytes of new data for {need} needed",
                    p.list.version
                ),
            ),
            Ok(n) => (
                CheckKind::Structure,
                Status::Failed,
                format!("new data has {n} bytes, the transfer list needs {need}"),
            ),
            Err(e) => (CheckKind::Integrity, Status::Failed, e.to_string()),
        })
    }
}

/// The digests of the package's `md5sum.xml` (beside `images/` or in
/// it); one that cannot be read is a structure failure.
fn md5_digests(
    c: &mut Checks,
    pkg: &super::images::ImagePackage,
) -> Vec<crate::format::md5sum::Digest> {
    let Some((rel, text)) = ["md5sum.xml", "images/md5sum.xml"]
        .into_iter()
        .find_map(|r| pkg.text(r).map(|t| (r, t)))
    else {
        return Vec::new();
    };
    match crate::format::md5sum::parse(text) {
        Ok(d) => d,
        Err(e) => {
            c.push(rel, CheckKind::Structure, Status::Failed, e.to_string());
            Vec::new()
        }
    }
}

/// A CRC list entry to check: (list, partition, sparse list, listed CRCs,
/// the archive paths flashed to the partition).
type ListedEntry = (String, String, bool, Vec<u32>, Vec<String>);

/// The CRC-32 of a file and, when sparse, of each of its fastboot downloads.
type EntryCrcs = (u32, Option<Vec<u32>>, Option<String>);

/// The archive paths of the files a fastboot package flashes to
/// `partition`: the image `images/NAME.img` (or its split parts), else the
/// file its `flash_all.sh` flashes to `NAME` or `NAME_ab`.
fn flashed_files(pkg: &super::images::ImagePackage, root: &str, partition: &str) -> Vec<String> {
    if let Some(img) = pkg.images.iter().find(|i| i.name == partition) {
        return img.files.iter().map(|f| f.path.clone()).collect();
    }
    let Some(Ok(script)) = pkg
        .text("flash_all.sh")
        .map(crate::rom::scripts::read_official)
    else {
        return Vec::new();
    };
    let mut files: Vec<String> = Vec::new();
    for s in script.steps {
        if let super::scripts::Step::Flash { target, file, .. } = s
            && target.strip_suffix("_ab").unwrap_or(&target) == partition
        {
            let path = format!("{root}{file}");
            if !files.contains(&path) {
                files.push(path);
            }
        }
    }
    files
}

/// The CRC-32 of a stream and, when it is a sparse image, of each of its
/// fastboot downloads.
fn stream_crcs(r: &mut dyn std::io::Read, md5: bool) -> std::io::Result<EntryCrcs> {
    use std::io::Read;
    struct Tee<'a> {
        inner: &'a mut dyn Read,
        crc: crc32fast::Hasher,
        md5: Option<md5::Md5>,
    }
    impl Read for Tee<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.crc.update(&buf[..n]);
            if let Some(h) = &mut self.md5 {
                md5::Digest::update(h, &buf[..n]);
            }
            Ok(n)
        }
    }
    let mut t = Tee {
        inner: r,
        crc: crc32fast::Hasher::new(),
        md5: md5.then(<md5::Md5 as md5::Digest>::new),
    };
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < 4 {
        match t.read(&mut magic[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let parts = if crate::format::sparse::Header::is_sparse(&magic[..n]) {
        let mut chained = std::io::Cursor::new(magic[..n].to_vec()).chain(&mut t);
        crate::format::sparse::download_part_crcs(
            &mut chained,
            crate::format::sparse::XIAOMI_MAX_DOWNLOAD,
        )
        .ok()
    } else {
        None
    };
    std::io::copy(&mut t, &mut std::io::sink())?;
    let md5 = t.md5.map(|h| crate::util::hex(&md5::Digest::finalize(h)));
    Ok((t.crc.finalize(), parts, md5))
}

/// The dm-verity data of every image readable in place that ends with an
/// AVB hashtree footer: tree, root digest and FEC parity recomputed and
/// compared. Images without a footer add no check.
fn verify_avb_footers(c: &mut Checks, pkg: &super::images::ImagePackage) {
    use crate::format::avb::{AvbError, footer};
    for (i, img) in pkg.images.iter().enumerate() {
        let Some(map) = pkg.in_place_map(i) else {
            continue;
        };
        let label = format!("AVB hashtree of {}", img.files[0].path);
        let found = match footer::read_hashtree_footer(&map, img.size) {
            Ok(None) | Err(AvbError::NoHashtree) => continue,
            Ok(Some(f)) => f,
            Err(e) => {
                c.push(label, CheckKind::Structure, Status::Failed, e.to_string());
                continue;
            }
        };
        let d = &found.descriptor;
        match footer::check_hashtree(&map, &found) {
            Ok(()) => c.integrity(
                label,
                Status::Ok,
                format!(
                    "partition {}: {} tree over {} bytes{}, root digest {}",
                    d.partition_name,
                    d.hash_algorithm,
                    d.image_size,
                    if d.fec_num_roots > 0 { " and FEC" } else { "" },
                    hex(&d.root_digest)
                ),
            ),
            Err(e) => c.integrity(label, Status::Failed, e.to_string()),
        }
    }
}
