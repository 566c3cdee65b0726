//! `romkit verify ROM`: every hash and signature the package carries.

use std::fmt::Write;
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::progress::Bars;
use super::{Ctx, check_code, emit, emit_json};
use crate::error::{EXIT_CHECK, Error, Result};
use crate::format::payload::extract::{self, Job};
use crate::format::payload::sign::{self, RsaPublicKey, SigStatus, base64_encode};
use crate::format::payload::{PayloadError, hex};
use crate::rom::Rom;

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
    let p = &rom.payload;
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
            for e in &outcome.failures {
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
            for e in outcome.failures {
                if let Error::Payload { source, .. } = &e
                    && matches!(**source, PayloadError::PartitionHash { .. })
                {
                    continue; // already on the partition's line
                }
                push("operation", Status::Failed, e.to_string());
            }
        }
    }

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
