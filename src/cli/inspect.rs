//! `romkit inspect ROM`: what the package is.

use std::fmt::Write;
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;

use super::{Ctx, emit, emit_json, human_size};
use crate::error::Result;
use crate::format::detect_content;
use crate::format::payload::sign::SigStatus;
use crate::rom::{BuildInfo, Rom, RomKind};

/// Arguments of `inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The package (OTA zip or payload.bin).
    pub rom: PathBuf,
}

/// One partition in the report.
#[derive(Serialize)]
struct PartRow {
    name: String,
    size: u64,
    content: Option<&'static str>,
    operations: usize,
    operation_types: std::collections::BTreeMap<String, usize>,
    data_bytes: u64,
    hash: Option<String>,
    group: Option<String>,
}

/// A dynamic partition group in the report.
#[derive(Serialize)]
struct GroupRow {
    name: String,
    size: u64,
    used: u64,
    partitions: Vec<String>,
}

/// The whole report.
#[derive(Serialize)]
struct Report {
    file: PathBuf,
    file_size: u64,
    kind: RomKind,
    build: BuildInfo,
    payload: PayloadRow,
    groups: Vec<GroupRow>,
    partitions: Vec<PartRow>,
}

#[derive(Serialize)]
struct PayloadRow {
    major_version: u64,
    minor_version: u32,
    full: bool,
    block_size: u64,
    manifest_size: u64,
    data_offset: u64,
    size: u64,
    metadata_signature: SigStatus,
    payload_signature: SigStatus,
    snapshot_enabled: Option<bool>,
    vabc_compression: Option<String>,
}

/// Runs `inspect`.
pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let rom = Rom::open(&args.rom)?;
    let p = &rom.payload;
    let perr = |source| crate::Error::payload(rom.path.clone(), source);
    let dyn_meta = p.manifest.dynamic_partition_metadata.as_ref();
    let group_of = |name: &str| {
        dyn_meta.and_then(|d| {
            d.groups
                .iter()
                .find(|g| g.partition_names.iter().any(|n| n == name))
                .and_then(|g| g.name.clone())
        })
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(ctx.jobs)
        .build()
        .ok();
    let detect = || {
        p.partitions
            .par_iter()
            .map(|part| {
                // A partition whose first operation cannot be decoded is
                // reported as unidentified here; `verify` names the problem.
                p.partition_head(part, 4096)
                    .ok()
                    .and_then(|h| detect_content(&h))
            })
            .collect::<Vec<_>>()
    };
    let contents = match &pool {
        Some(pool) => pool.install(detect),
        None => detect(),
    };
    let partitions: Vec<PartRow> = p
        .partitions
        .iter()
        .zip(contents)
        .map(|(part, content)| PartRow {
            name: part.name.clone(),
            size: part.size,
            content,
            operations: part.ops.len(),
            operation_types: part.op_counts().into_iter().collect(),
            data_bytes: part.ops.iter().map(|o| o.data_len).sum(),
            hash: part.hash.map(|h| crate::format::payload::hex(&h)),
            group: group_of(&part.name),
        })
        .collect();
    let groups = dyn_meta
        .map(|d| {
            d.groups
                .iter()
                .map(|g| GroupRow {
                    name: g.name.clone().unwrap_or_default(),
                    size: g.size.unwrap_or(0),
                    used: g
                        .partition_names
                        .iter()
                        .filter_map(|n| p.partition(n))
                        .map(|x| x.size)
                        .sum(),
                    partitions: g.partition_names.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let report = Report {
        file: rom.path.clone(),
        file_size: rom.file_size,
        kind: rom.kind,
        build: rom.build_info(),
        payload: PayloadRow {
            major_version: p.header.version,
            minor_version: p.manifest.minor_version.unwrap_or(0),
            full: !p.is_incremental(),
            block_size: p.block_size,
            manifest_size: p.header.manifest_size,
            data_offset: p.header.data_offset(),
            size: p.source.len(),
            metadata_signature: p.check_metadata_signature(None).map_err(perr)?,
            payload_signature: p.check_payload_signature(None).map_err(perr)?,
            snapshot_enabled: dyn_meta.and_then(|d| d.snapshot_enabled),
            vabc_compression: dyn_meta.and_then(|d| d.vabc_compression_param.clone()),
        },
        groups,
        partitions,
    };
    if ctx.json {
        emit_json(&report)?;
    } else {
        emit(&render(&report))?;
    }
    Ok(0)
}

fn sig_text(s: &SigStatus) -> String {
    match s {
        SigStatus::Unsigned => "unsigned".into(),
        SigStatus::Present(n) => {
            format!("signed ({n} signature{})", if *n == 1 { "" } else { "s" })
        }
        SigStatus::Verified => "verified".into(),
        SigStatus::Mismatch => "MISMATCH".into(),
    }
}

fn render(r: &Report) -> String {
    let mut s = String::new();
    let b = &r.build;
    let _ = writeln!(
        s,
        "File:            {} ({})",
        r.file.display(),
        human_size(r.file_size)
    );
    let _ = writeln!(s, "Kind:            {}", r.kind.describe());
    if let Some(v) = &b.version {
        match &b.decoded {
            Some(d) => {
                let _ = writeln!(
                    s,
                    "Version:         {v} ({} {}, Android {}, device code {}, region {}{}, carrier {})",
                    d.os,
                    d.release,
                    d.android.as_deref().unwrap_or("?"),
                    d.device_code,
                    d.region,
                    d.region_name.map(|n| format!(" {n}")).unwrap_or_default(),
                    d.carrier
                );
            }
            None => {
                let _ = writeln!(s, "Version:         {v}");
            }
        }
    }
    for (label, val) in [
        ("Device:         ", &b.device),
        ("Android:        ", &b.android),
        ("Fingerprint:    ", &b.fingerprint),
        ("Security patch: ", &b.security_patch),
        ("OTA type:       ", &b.ota_type),
    ] {
        if let Some(v) = val {
            let _ = writeln!(s, "{label} {v}");
        }
    }
    if let Some(t) = b.timestamp {
        let _ = writeln!(s, "Build time:      {t}");
    }
    let p = &r.payload;
    let _ = writeln!(
        s,
        "Payload:         version {}, {} (minor {}), block size {}, {} manifest, {}",
        p.major_version,
        if p.full { "full" } else { "incremental" },
        p.minor_version,
        p.block_size,
        human_size(p.manifest_size),
        human_size(p.size),
    );
    let _ = writeln!(
        s,
        "Signatures:      metadata {}, payload {}",
        sig_text(&p.metadata_signature),
        sig_text(&p.payload_signature)
    );
    if let Some(snap) = p.snapshot_enabled {
        let _ = writeln!(
            s,
            "Virtual A/B:     {}{}",
            if snap { "yes" } else { "no" },
            p.vabc_compression
                .as_deref()
                .map(|c| format!(", compression {c}"))
                .unwrap_or_default()
        );
    }
    for g in &r.groups {
        let _ = writeln!(
            s,
            "Group:           {} ({} of {} used, {} free): {}",
            g.name,
            human_size(g.used),
            human_size(g.size),
            human_size(g.size.saturating_sub(g.used)),
            g.partitions.join(", ")
        );
    }
    let _ = writeln!(s, "\nPartitions ({}):", r.partitions.len());
    let w = r
        .partitions
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        s,
        "  {:<w$}  {:>10}  {:>10}  {:<14}  {:>5}  TYPES",
        "NAME", "SIZE", "DATA", "CONTENT", "OPS"
    );
    for p in &r.partitions {
        let types: Vec<String> = p
            .operation_types
            .iter()
            .map(|(k, n)| format!("{k}×{n}"))
            .collect();
        let _ = writeln!(
            s,
            "  {:<w$}  {:>10}  {:>10}  {:<14}  {:>5}  {}",
            p.name,
            human_size(p.size),
            human_size(p.data_bytes),
            p.content.unwrap_or("-"),
            p.operations,
            types.join(", ")
        );
    }
    s
}
