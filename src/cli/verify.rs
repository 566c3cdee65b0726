//! `romkit verify ROM`: every hash and signature the package carries.

use std::fmt::Write;
use std::path::PathBuf;

use super::progress::Bars;
use super::{Ctx, emit, emit_json};
use crate::error::{Error, Result};
use crate::format::payload::sign::RsaPublicKey;
use crate::rom::Rom;
use crate::rom::verify::{Status, VerifyOptions, VerifyReport};

/// Arguments of `verify`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The package (any kind romkit reads).
    pub rom: PathBuf,
    /// RSA public key (PEM or DER: certificate, SubjectPublicKeyInfo or PKCS#1)
    /// to check the metadata and payload signatures against.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// The previous build, for an incremental ROM: a full package, a folder
    /// of PARTITION.img images or one PARTITION.img; the new images are
    /// rebuilt in memory and every hash checked, nothing written.
    #[arg(long, value_name = "BASE")]
    pub source: Option<PathBuf>,
    /// Apply this incremental package next (repeatable): ROM is then the
    /// base; intermediate images go to a temporary folder, the last step is
    /// checked in memory.
    #[arg(long = "apply", value_name = "INC")]
    pub apply: Vec<PathBuf>,
}

/// Runs `verify`.
pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let key = match &args.key {
        Some(k) => {
            let bytes = std::fs::read(k).map_err(|e| Error::io(k, e))?;
            Some(RsaPublicKey::parse(&bytes).map_err(|why| Error::invalid(k, why.to_string()))?)
        }
        None => None,
    };
    if let Some((base, steps)) =
        super::unpack::chain(&args.rom, args.source.as_deref(), &args.apply)?
    {
        let last = steps.last().expect("a chain has a step");
        let parts: Vec<(String, u64)> = last
            .payload()
            .map(|p| {
                p.partitions
                    .iter()
                    .map(|x| (x.name.clone(), x.size))
                    .collect()
            })
            .unwrap_or_default();
        let bars = Bars::new(ctx.progress, &parts);
        let report = crate::rom::incremental::verify_chain(
            &base,
            &steps,
            &VerifyOptions {
                key: key.as_ref(),
                jobs: ctx.jobs,
                progress: &bars,
                source: None,
            },
        )?;
        bars.finish();
        if ctx.json {
            emit_json(&report)?;
        } else {
            emit(&render(&report))?;
        }
        return Ok(report.exit_code());
    }
    let rom = Rom::open(&args.rom)?;
    // Bars for what is decoded: a full payload's partitions.
    let decoded: Vec<(String, u64)> = match rom.payload() {
        Some(p) if !p.is_incremental() => p
            .partitions
            .iter()
            .map(|x| (x.name.clone(), x.size))
            .collect(),
        _ => Vec::new(),
    };
    let bars = Bars::new(ctx.progress && !decoded.is_empty(), &decoded);
    let report = rom.verify(&VerifyOptions {
        key: key.as_ref(),
        jobs: ctx.jobs,
        progress: &bars,
        source: None,
    })?;
    bars.finish();
    if ctx.json {
        emit_json(&report)?;
    } else {
        emit(&render(&report))?;
    }
    Ok(report.exit_code())
}

fn render(report: &VerifyReport) -> String {
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
    if nfail > 0 {
        let _ = writeln!(s, "\n{}: {nfail} check(s) FAILED", report.file.display());
    } else {
        let _ = writeln!(s, "\n{}: all checks passed", report.file.display());
    }
    s
}
