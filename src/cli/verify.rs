//! `romkit verify ROM`: every hash and signature the package carries.

use std::fmt::Write;
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::progress::Bars;
use super::{Ctx, check_code, emit, emit_json};
use crate::error::{EXIT_CHECK, Error, Result};
use crate::format::payload::PayloadError;
use crate::format::payload::extract::{self, Job};
use crate::format::payload::sign::{self, RsaPublicKey, SigStatus, base64_encode};
use crate::rom::Rom;
use crate::util::hex;

/// Arguments of `verify`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The package (OTA zip or payload.bin).
    pub rom: PathBuf,
    /// RSA public key (PEM or DER: certificate, SubjectPublicKeyInfo or PKCS#1)
    /// to check the metadata and payload signatures against.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
}

/// Result of one check.
#[derive(Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Failed,
    Skipped,
}

#[derive(Serialize)]
struct Check {
    check: String,
    status: Status,
    detail: String,
}

#[derive(Serialize)]
struct Report {
    file: PathBuf,
    ok: bool,
    checks: Vec<Check>,
}

/// Runs `verify`.
pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let key = match &args.key {
        Some(k) => {
            let bytes = std::fs::read(k).map_err(|e| Error::io(k, e))?;
            Some(RsaPublicKey::parse(&bytes).map_err(|why| Error::invalid(k, why))?)
        }
        None => None,
    };
    let rom = Rom::open(&args.rom)?;
    let Some(p) = rom.payload() else {
        return run_images(ctx, &rom);
    };
    let mut checks = Vec::new();
    let mut push = |check: &str, status: Status, detail: String| {
        checks.push(Check {
            check: check.to_string(),
            status,
            detail,
        })
    };
    let mut worst_invalid: Option<u8> = None;

    if let Some(_zip) = &rom.zip {
        let failures = crate::rom::OtaZip::check_entry_crcs(&rom.path)?;
        let n = rom.zip.as_ref().map_or(0, |z| z.entries.len());
        if failures.is_empty() {
            push(
                "zip entries",
                Status::Ok,
                format!(
                    "CRC-32 of {} entries besides payload.bin",
                    n.saturating_sub(1)
                ),
            );
        }
        for (name, why) in failures {
            push(&format!("zip entry {name}"), Status::Failed, why);
        }
    }

    // The sequential whole-file pass (FILE_HASH, zip CRC, payload-signature
    // digest) runs beside the parallel operation checks.
    let selected: Vec<usize> = (0..p.partitions.len()).collect();
    let incremental = p.is_incremental();
    let bars = Bars::new(
        ctx.progress && !incremental,
        &p.partitions
            .iter()
            .map(|x| (x.name.clone(), x.size))
            .collect::<Vec<_>>(),
    );
    let (whole, outcome) = std::thread::scope(|s| {
        let whole = s.spawn(|| p.whole_file_pass(key.is_some()));
        let outcome = if incremental {
            None
        } else {
            Some(extract::run(
                &Job {
                    payload: p,
                    partitions: selected.clone(),
                    outputs: None,
                    verify: true,
                    fail_fast: false,
                    jobs: ctx.jobs,
                },
                &bars,
            ))
        };
        (whole.join(), outcome)
    });
    bars.finish();
    let whole = match whole {
        Ok(r) => r.map_err(|source| Error::payload(rom.path.clone(), source))?,
        Err(_) => return Err(Error::invalid(&rom.path, "internal error while hashing")),
    };

    if let Some(zip) = &rom.zip {
        let ok = whole.crc32 == zip.payload_crc32;
        push(
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
        match &zip.properties {
            None => push(
                "payload_properties.txt",
                Status::Skipped,
                "not in the package".into(),
            ),
            Some(props) => {
                let file_hash = base64_encode(&whole.sha256);
                let meta_hash = p
                    .metadata_hash()
                    .map_err(|source| Error::payload(rom.path.clone(), source))?;
                let meta_hash = base64_encode(&meta_hash);
                let meta_size = p.header.metadata_size();
                let len = p.source.len();
                let mut prop = |name: &str, want: Option<String>, have: String| match want {
                    None => push(
                        &format!("payload_properties {name}"),
                        Status::Skipped,
                        "absent".into(),
                    ),
                    Some(w) if w == have => {
                        push(&format!("payload_properties {name}"), Status::Ok, have)
                    }
                    Some(w) => push(
                        &format!("payload_properties {name}"),
                        Status::Failed,
                        format!("expected {w}, payload has {have}"),
                    ),
                };
                prop("FILE_HASH", props.file_hash.clone(), file_hash);
                prop(
                    "FILE_SIZE",
                    props.file_size.map(|v| v.to_string()),
                    len.to_string(),
                );
                prop("METADATA_HASH", props.metadata_hash.clone(), meta_hash);
                prop(
                    "METADATA_SIZE",
                    props.metadata_size.map(|v| v.to_string()),
                    meta_size.to_string(),
                );
            }
        }
    } else {
        push("payload sha256", Status::Ok, hex(&whole.sha256));
    }

    let perr = |source: PayloadError| Error::payload(rom.path.clone(), source);
    let meta_blob = if p.has_metadata_signature() {
        Some(
            p.read(
                p.header.metadata_size(),
                p.header.metadata_signature_size.into(),
            )
            .map_err(perr)?,
        )
    } else {
        None
    };
    let sig_checks = [
        (
            "metadata signature",
            sign::check(
                "metadata signature",
                meta_blob,
                || p.metadata_hash(),
                key.as_ref(),
            ),
        ),
        (
            "payload signature",
            sign::check(
                "payload signature",
                p.payload_signature_blob().map_err(perr)?,
                || Ok(whole.signed_digest.unwrap_or_default()),
                key.as_ref(),
            ),
        ),
    ];
    for (name, st) in sig_checks {
        match st {
            Ok(SigStatus::Unsigned) => push(
                name,
                if key.is_some() {
                    Status::Failed
                } else {
                    Status::Skipped
                },
                "unsigned".into(),
            ),
            Ok(SigStatus::Present(n)) => push(
                name,
                Status::Skipped,
                format!("{n} signature(s) present; pass --key to check them"),
            ),
            Ok(SigStatus::Verified) => push(name, Status::Ok, "verified with the given key".into()),
            Ok(SigStatus::Mismatch) => push(
                name,
                Status::Failed,
                "does not verify with the given key".into(),
            ),
            Err(e) => push(name, Status::Failed, e.to_string()),
        }
    }

    match outcome {
        None => {
            // Incremental payload: the images cannot be rebuilt without the old
            // build, but every operation's data hash can still be checked.
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
                push(
                    &format!("partition {name}"),
                    Status::Failed,
                    format!("operation {idx}: data_sha256_hash mismatch"),
                );
            }
            push(
                "operations",
                if bad.is_empty() {
                    Status::Ok
                } else {
                    Status::Failed
                },
                format!(
                    "{} data hashes checked, {} mismatched; incremental payload: partition hashes need the previous build",
                    results.iter().filter(|r| r.2.is_some()).count(),
                    bad.len()
                ),
            );
        }
        Some(outcome) => {
            let failures: Vec<Error> = outcome
                .failures
                .into_iter()
                .map(|e| Error::payload(p.source.path(), e))
                .collect();
            for e in &failures {
                if e.exit_code() != EXIT_CHECK {
                    worst_invalid = Some(e.exit_code());
                }
            }
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
                        let _ =
                            write!(detail, "; image sha256 {} != expected {}", hex(&a), hex(&e));
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
                push(&format!("partition {}", po.name), status, detail);
            }
            for e in failures {
                if let Error::Payload { source, .. } = &e
                    && matches!(**source, PayloadError::PartitionHash { .. })
                {
                    continue; // already on the partition's line
                }
                push("operation", Status::Failed, e.to_string());
            }
        }
    }

    let report = render(ctx, &rom, checks)?;
    let failed = !report.ok;
    if failed
        && let Some(code) = worst_invalid
        && !report
            .checks
            .iter()
            .any(|c| c.status == Status::Failed && !c.check.starts_with("operation"))
    {
        return Ok(code);
    }
    Ok(check_code(failed))
}

/// `verify` for packages of images: archive checksums (zip CRC-32, gzip
/// CRC), sparse structure and CRC32 chunks, every LP geometry and metadata
/// copy, block OTA new-data lengths.
fn run_images(ctx: &Ctx, rom: &Rom) -> Result<u8> {
    use crate::rom::images::{Archive, Stored};
    use std::io::Read;
    let mut checks: Vec<Check> = Vec::new();
    let mut push = |check: String, status: Status, detail: String| {
        checks.push(Check {
            check,
            status,
            detail,
        })
    };
    let sparse_result = |r: std::result::Result<
        (crate::format::sparse::Header, usize),
        crate::format::sparse::SparseError,
    >| match r {
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
    };
    let mut worst_invalid = false;
    if let Some(pkg) = &rom.images {
        if pkg.archive == Archive::Zip {
            let failures = crate::rom::OtaZip::check_entry_crcs(&rom.path)?;
            if failures.is_empty() {
                push(
                    "zip entries".into(),
                    Status::Ok,
                    format!("CRC-32 of {} entries", pkg.entries.len()),
                );
            }
            for (name, why) in failures {
                push(format!("zip entry {name}"), Status::Failed, why);
            }
        }
        // Sparse images: structure and checksums, read as streams.
        let by_path: std::collections::BTreeMap<&str, bool> = pkg
            .images
            .iter()
            .flat_map(|i| i.files.iter().map(move |f| (f.path.as_str(), i.sparse)))
            .collect();
        match pkg.archive {
            Archive::Tgz => {
                let f = std::fs::File::open(&rom.path).map_err(|e| Error::io(&rom.path, e))?;
                let gz =
                    flate2::read::GzDecoder::new(std::io::BufReader::with_capacity(1 << 20, f));
                let mut tar = tar::Archive::new(gz);
                let mut n = 0;
                let res: std::io::Result<()> = (|| {
                    for e in tar.entries()? {
                        let mut e = e?;
                        let name = String::from_utf8_lossy(&e.path_bytes())
                            .trim_start_matches("./")
                            .to_string();
                        n += 1;
                        if by_path.get(name.as_str()) == Some(&true) {
                            let (st, d) =
                                sparse_result(crate::format::sparse::check_stream(&mut e));
                            push(format!("image {name}"), st, d);
                        }
                        std::io::copy(&mut e, &mut std::io::sink())?;
                    }
                    // The gzip trailer (CRC-32 and length) is checked at its end.
                    let mut rest = tar.into_inner();
                    std::io::copy(&mut rest, &mut std::io::sink())?;
                    Ok(())
                })();
                match res {
                    Ok(()) => push(
                        "tgz".into(),
                        Status::Ok,
                        format!("gzip CRC-32 and {n} tar entries"),
                    ),
                    Err(e) => push("tgz".into(), Status::Failed, e.to_string()),
                }
            }
            Archive::Zip | Archive::Bare => {
                for img in pkg.images.iter().filter(|i| i.sparse) {
                    for f in &img.files {
                        let r = match &f.stored {
                            Stored::InPlace(s) => {
                                crate::format::sparse::SparseFile::open(s.clone()).and_then(|sf| {
                                    let n = sf.check_crcs()?;
                                    Ok((sf.header, n))
                                })
                            }
                            Stored::Zip(idx) => {
                                let file = std::fs::File::open(&rom.path)
                                    .map_err(|e| Error::io(&rom.path, e))?;
                                let mut a = zip::ZipArchive::new(file)
                                    .map_err(|e| Error::invalid(&rom.path, e.to_string()))?;
                                let mut e = a
                                    .by_index(*idx)
                                    .map_err(|e| Error::invalid(&rom.path, e.to_string()))?;
                                let r = crate::format::sparse::check_stream(&mut e);
                                let _ = std::io::copy(&mut e, &mut std::io::sink());
                                r
                            }
                            Stored::Tar(_) => continue,
                        };
                        let (st, d) = sparse_result(r);
                        push(format!("image {}", f.path), st, d);
                    }
                }
            }
        }
        if let Some(s) = &pkg.super_image {
            let img = &pkg.images[s.image];
            let label = img.files[0].path.clone();
            let bad = match pkg.in_place_map(s.image) {
                Some(map) => s.metadata.check_all_copies(&map, img.size),
                None => s.metadata.check_all_copies(&img.head, img.size),
            };
            let m = &s.metadata;
            if bad.is_empty() {
                push(
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
                push(format!("LP {what}"), Status::Failed, why);
            }
        }
    }
    if let Some(b) = &rom.block {
        let failures = crate::rom::OtaZip::check_entry_crcs(&rom.path)?;
        if failures.is_empty() {
            push(
                "zip entries".into(),
                Status::Ok,
                "CRC-32 of every entry".into(),
            );
        }
        for (name, why) in failures {
            push(format!("zip entry {name}"), Status::Failed, why);
        }
        for p in &b.partitions {
            let f = std::fs::File::open(&rom.path).map_err(|e| Error::io(&rom.path, e))?;
            let mut a =
                zip::ZipArchive::new(f).map_err(|e| Error::invalid(&rom.path, e.to_string()))?;
            let e = a
                .by_name(&p.data_entry)
                .map_err(|e| Error::invalid(&rom.path, e.to_string()))?;
            let mut r: Box<dyn Read> = if p.brotli {
                Box::new(brotli_decompressor::Decompressor::new(e, 1 << 16))
            } else {
                Box::new(e)
            };
            let need = p.list.new_blocks * crate::format::sdat::BLOCK;
            match std::io::copy(&mut r, &mut std::io::sink()) {
                Ok(n) if n >= need => push(
                    format!("partition {}", p.name),
                    Status::Ok,
                    format!(
                        "transfer list v{}, {n} bytes of new data for {need} needed",
                        p.list.version
                    ),
                ),
                Ok(n) => {
                    worst_invalid = true;
                    push(
                        format!("partition {}", p.name),
                        Status::Failed,
                        format!("new data has {n} bytes, the transfer list needs {need}"),
                    )
                }
                Err(e) => push(
                    format!("partition {}", p.name),
                    Status::Failed,
                    e.to_string(),
                ),
            }
        }
    }
    let failed = !render(ctx, rom, checks)?.ok;
    if worst_invalid {
        return Ok(crate::error::EXIT_INVALID);
    }
    Ok(check_code(failed))
}

/// Prints the checks (table or JSON) and returns the report.
fn render(ctx: &Ctx, rom: &Rom, checks: Vec<Check>) -> Result<Report> {
    let failed = checks.iter().any(|c| c.status == Status::Failed);
    let report = Report {
        file: rom.path.clone(),
        ok: !failed,
        checks,
    };
    if ctx.json {
        emit_json(&report)?;
    } else {
        let mut s = String::new();
        for c in &report.checks {
            let tag = match c.status {
                Status::Ok => "ok     ",
                Status::Failed => "FAILED ",
                Status::Skipped => "skipped",
            };
            let _ = writeln!(s, "{tag}  {:<32} {}", c.check, c.detail);
        }
        let nfail = report
            .checks
            .iter()
            .filter(|c| c.status == Status::Failed)
            .count();
        if failed {
            let _ = writeln!(s, "\n{}: {nfail} check(s) FAILED", rom.path.display());
        } else {
            let _ = writeln!(s, "\n{}: all checks passed", rom.path.display());
        }
        emit(&s)?;
    }
    Ok(report)
}
