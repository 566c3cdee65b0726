//! `romkit inspect ROM`: what the package is.

use std::fmt::Write;
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;

use super::{Ctx, emit, emit_json, human_size};
use crate::error::Result;
use crate::format::payload::sign::SigStatus;
use crate::rom::{BuildInfo, Rom, RomKind};
use crate::util::magic::Magic;

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
    let Some(p) = rom.payload() else {
        return run_images(ctx, &rom);
    };
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
                    .and_then(|h| Magic::of(&h).map(Magic::name))
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
            hash: part.hash.map(|h| crate::util::hex(&h)),
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

/// A partition of an image package in the report.
#[derive(Serialize)]
struct ImagePartRow {
    name: String,
    size: u64,
    content: Option<&'static str>,
    group: Option<String>,
    origin: String,
    lp_name: Option<String>,
    sparse: bool,
}

/// One stored image.
#[derive(Serialize)]
struct ImageRow {
    name: String,
    files: Vec<String>,
    stored_size: u64,
    size: u64,
    sparse: bool,
}

#[derive(Serialize)]
struct ExtentRow {
    sector: u64,
    sectors: u64,
    target: &'static str,
    device: u32,
}

#[derive(Serialize)]
struct LpPartRow {
    name: String,
    group: String,
    size: u64,
    attributes: Vec<&'static str>,
    extents: Vec<ExtentRow>,
}

#[derive(Serialize)]
struct LpGroupRow {
    name: String,
    maximum_size: u64,
    used: u64,
    free: Option<u64>,
    partitions: Vec<String>,
}

#[derive(Serialize)]
struct SuperRow {
    image: String,
    metadata_version: String,
    metadata_slots: u32,
    metadata_max_size: u32,
    logical_block_size: u32,
    virtual_ab: bool,
    header_flags: u32,
    device: String,
    device_size: u64,
    first_logical_byte: u64,
    alignment: u32,
    free: u64,
    groups: Vec<LpGroupRow>,
    partitions: Vec<LpPartRow>,
    notes: Vec<String>,
}

#[derive(Serialize)]
struct ImagesReport {
    file: PathBuf,
    file_size: u64,
    kind: RomKind,
    build: BuildInfo,
    images: Vec<ImageRow>,
    flash_scripts: Vec<String>,
    #[serde(rename = "super")]
    super_image: Option<SuperRow>,
    partitions: Vec<ImagePartRow>,
}

fn attr_names(a: u32) -> Vec<&'static str> {
    use crate::format::lp::*;
    let mut v = Vec::new();
    for (bit, name) in [
        (ATTR_READONLY, "readonly"),
        (ATTR_SLOT_SUFFIXED, "slot-suffixed"),
        (ATTR_UPDATED, "updated"),
        (ATTR_DISABLED, "disabled"),
    ] {
        if a & bit != 0 {
            v.push(name);
        }
    }
    v
}

fn super_row(pkg: &crate::rom::images::ImagePackage) -> Option<SuperRow> {
    use crate::format::lp::{SECTOR, TARGET_LINEAR};
    let s = pkg.super_image.as_ref()?;
    let m = &s.metadata;
    let dev = m.block_devices.first()?;
    let used_total: u64 = m.partitions.iter().map(|p| m.partition_size(p)).sum();
    Some(SuperRow {
        image: pkg.images[s.image].files[0].path.clone(),
        metadata_version: format!("{}.{}", m.major, m.minor),
        metadata_slots: m.geometry.metadata_slot_count,
        metadata_max_size: m.geometry.metadata_max_size,
        logical_block_size: m.geometry.logical_block_size,
        virtual_ab: m.virtual_ab(),
        header_flags: m.flags,
        device: dev.name.clone(),
        device_size: dev.size,
        first_logical_byte: dev.first_logical_sector * SECTOR,
        alignment: dev.alignment,
        free: dev
            .size
            .saturating_sub(dev.first_logical_sector * SECTOR)
            .saturating_sub(used_total),
        groups: m
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let used = m.group_used(i);
                LpGroupRow {
                    name: g.name.clone(),
                    maximum_size: g.maximum_size,
                    used,
                    free: (g.maximum_size > 0).then(|| g.maximum_size.saturating_sub(used)),
                    partitions: m
                        .partitions
                        .iter()
                        .filter(|p| p.group as usize == i)
                        .map(|p| p.name.clone())
                        .collect(),
                }
            })
            .collect(),
        partitions: m
            .partitions
            .iter()
            .map(|p| LpPartRow {
                name: p.name.clone(),
                group: m.groups[p.group as usize].name.clone(),
                size: m.partition_size(p),
                attributes: attr_names(p.attributes),
                extents: m
                    .extents_of(p)
                    .iter()
                    .map(|e| ExtentRow {
                        sector: e.target_data,
                        sectors: e.num_sectors,
                        target: if e.target_type == TARGET_LINEAR {
                            "linear"
                        } else {
                            "zero"
                        },
                        device: e.target_source,
                    })
                    .collect(),
            })
            .collect(),
        notes: s.notes.clone(),
    })
}

/// `inspect` for packages of images.
fn run_images(ctx: &Ctx, rom: &Rom) -> Result<u8> {
    let parts = rom.partitions();
    let mut rows: Vec<ImagePartRow> = parts
        .iter()
        .map(|p| ImagePartRow {
            name: p.name.clone(),
            size: p.size,
            content: None,
            group: p.group.clone(),
            origin: p.origin.clone(),
            lp_name: p.lp_name.clone(),
            sparse: p.sparse,
        })
        .collect();
    let mut images = Vec::new();
    let mut flash_scripts = Vec::new();
    let mut super_image = None;
    if let Some(pkg) = rom.images() {
        for (row, (_, _, src)) in rows.iter_mut().zip(pkg.sources()) {
            row.content = pkg
                .partition_head(&src, 4096)
                .and_then(|h| Magic::of(&h).map(Magic::name));
        }
        images = pkg
            .images
            .iter()
            .map(|i| ImageRow {
                name: i.name.clone(),
                files: i.files.iter().map(|f| f.path.clone()).collect(),
                stored_size: i.files.iter().map(|f| f.size).sum(),
                size: i.size,
                sparse: i.sparse,
            })
            .collect();
        flash_scripts = pkg
            .texts
            .keys()
            .filter(|k| k.ends_with(".sh") || k.ends_with(".bat"))
            .cloned()
            .collect();
        super_image = super_row(pkg);
    }
    let report = ImagesReport {
        file: rom.path.clone(),
        file_size: rom.file_size,
        kind: rom.kind,
        build: rom.build_info(),
        images,
        flash_scripts,
        super_image,
        partitions: rows,
    };
    if ctx.json {
        return emit_json(&report).map(|_| 0);
    }
    let mut s = String::new();
    let b = &report.build;
    let _ = writeln!(
        s,
        "File:            {} ({})",
        report.file.display(),
        human_size(report.file_size)
    );
    let _ = writeln!(s, "Kind:            {}", report.kind.describe());
    if let Some(v) = &b.version {
        let _ = writeln!(s, "Version:         {v}");
    }
    for (label, val) in [
        ("Device:         ", &b.device),
        ("Android:        ", &b.android),
        ("Fingerprint:    ", &b.fingerprint),
    ] {
        if let Some(v) = val {
            let _ = writeln!(s, "{label} {v}");
        }
    }
    if !report.flash_scripts.is_empty() {
        let _ = writeln!(s, "Flash scripts:   {}", report.flash_scripts.join(", "));
    }
    if !report.images.is_empty() {
        let _ = writeln!(s, "\nImages ({}):", report.images.len());
        for i in &report.images {
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
    if let Some(sp) = &report.super_image {
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
    let _ = writeln!(s, "\nPartitions ({}):", report.partitions.len());
    let w = report
        .partitions
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        s,
        "  {:<w$}  {:>10}  {:<14}  {:<26}  FROM",
        "NAME", "SIZE", "CONTENT", "GROUP"
    );
    for p in &report.partitions {
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
    emit(&s)?;
    Ok(0)
}
