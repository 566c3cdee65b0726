//! `romkit inspect ROM`: what the package is.

use std::fmt::Write;
use std::path::PathBuf;

use super::{Ctx, emit, emit_json, human_size};
use crate::error::Result;
use crate::format::payload::sign::SigStatus;
use crate::rom::Rom;
use crate::rom::describe::Description;

/// Arguments of `inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The package (any kind romkit reads); with `--manifest`, also a bare
    /// filesystem image or an `unpack --files` folder.
    pub rom: PathBuf,
    /// Print the package's manifest (GUIDE.md §9) as canonical JSON instead:
    /// partitions with the SHA-256 of their images, every app, every file,
    /// the build props. Decodes every partition.
    #[arg(long)]
    pub manifest: bool,
    /// Print the manifest as YAML.
    #[arg(long, conflicts_with = "manifest")]
    pub manifest_yaml: bool,
}

/// Runs `inspect`.
pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    if args.manifest || args.manifest_yaml {
        let m = crate::manifest::describe(&args.rom, ctx.jobs)?;
        if args.manifest_yaml {
            emit(&m.to_yaml())?;
        } else {
            emit(&String::from_utf8_lossy(&m.to_json()))?;
        }
        return Ok(0);
    }
    let rom = Rom::open(&args.rom)?;
    let d = rom.describe(ctx.jobs)?;
    if ctx.json {
        emit_json(&d)?;
    } else {
        emit(&render(&d))?;
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

fn render(d: &Description) -> String {
    let mut s = String::new();
    render_build(d, &mut s);
    render_payload(d, &mut s);
    render_groups(d, &mut s);
    render_images(d, &mut s);
    render_super(d, &mut s);
    render_partitions(d, &mut s);
    s
}

fn render_build(d: &Description, s: &mut String) {
    let r = d;
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
}

fn render_payload(d: &Description, s: &mut String) {
    let r = d;
    if let Some(p) = &r.payload {
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
    }
}

fn render_groups(d: &Description, s: &mut String) {
    let r = d;
    if r.super_image.is_none() {
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
    }
}

fn render_images(d: &Description, s: &mut String) {
    if !d.flash_scripts.is_empty() {
        let _ = writeln!(s, "Flash scripts:   {}", d.flash_scripts.join(", "));
    }
    if !d.images.is_empty() {
        let _ = writeln!(s, "\nImages ({}):", d.images.len());
        for i in &d.images {
            let _ = writeln!(
                s,
                "  {:<24} {:>10} {:<7} {}",
                i.name,
                human_size(i.size),
                if i.sparse { "sparse" } else { "raw" },
                if i.files.len() > 1 {
                    format!("{} parts: {}", i.files.len(), i.files.join(", "))
                } else {
                    i.files.join(", ")
                }
            );
        }
    }
}

fn render_super(d: &Description, s: &mut String) {
    if let Some(sp) = &d.super_image {
        let _ = writeln!(
            s,
            "\nSuper:           {} ({}), LP metadata {}, {} slot(s) of {} bytes, block {}, {}",
            sp.image,
            human_size(sp.device_size),
            sp.metadata_version,
            sp.metadata_slots,
            sp.metadata_max_size,
            sp.logical_block_size,
            if sp.virtual_ab {
                "virtual A/B"
            } else {
                "not virtual A/B"
            }
        );
        let _ = writeln!(
            s,
            "Device:          {}, data from byte {}, alignment {}, {} unallocated",
            sp.device,
            sp.first_logical_byte,
            sp.alignment,
            human_size(sp.free)
        );
        for g in &sp.groups {
            let _ = writeln!(
                s,
                "Group:           {} ({} used of {}{}): {}",
                g.name,
                human_size(g.used),
                if g.maximum_size == 0 {
                    "unlimited".to_string()
                } else {
                    human_size(g.maximum_size)
                },
                g.free
                    .map(|f| format!(", {} free", human_size(f)))
                    .unwrap_or_default(),
                g.partitions.join(", ")
            );
        }
        for p in &sp.partitions {
            let ext: Vec<String> = p
                .extents
                .iter()
                .map(|e| format!("{}+{}", e.sector, e.sectors))
                .collect();
            let _ = writeln!(
                s,
                "  {:<24} {:>10}  {:<26} {:<16} extents {}",
                p.name,
                human_size(p.size),
                p.group,
                p.attributes.join(","),
                if ext.is_empty() {
                    "-".into()
                } else {
                    ext.join(" ")
                }
            );
        }
        for n in &sp.notes {
            let _ = writeln!(s, "Note:            {n}");
        }
    }
}

fn render_partitions(d: &Description, s: &mut String) {
    let r = d;
    let _ = writeln!(s, "\nPartitions ({}):", d.partitions.len());
    let w = d
        .partitions
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    if r.payload.is_some() {
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
    } else {
        let _ = writeln!(
            s,
            "  {:<w$}  {:>10}  {:<14}  {:<26}  FROM",
            "NAME", "SIZE", "CONTENT", "GROUP"
        );
        for p in &d.partitions {
            let _ = writeln!(
                s,
                "  {:<w$}  {:>10}  {:<14}  {:<26}  {}",
                p.name,
                human_size(p.size),
                p.content.unwrap_or("-"),
                p.group.as_deref().unwrap_or("-"),
                p.origin
            );
        }
    }
}
