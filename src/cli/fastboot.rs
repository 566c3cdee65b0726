//! `romkit fastboot ROM -o OUT`: any package as a fastboot package — images,
//! a rebuilt sparse super (optionally split) and install scripts.

use std::path::PathBuf;

use super::fixture::parse_size;
use super::{Ctx, emit, emit_json};
use crate::error::{Error, Result};
use crate::format::image::ImageMap;
use crate::format::lp;
use crate::rom::fastboot::{FastbootSpec, PackageFormat, layout_for_groups, write_package};
use crate::rom::{PartInfo, Rom};

/// Arguments of `fastboot`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The package to convert (OTA, fastboot package, super image, …).
    pub rom: PathBuf,
    /// The package to write: OUT.zip, OUT.tgz or a folder.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Container (default: from the extension of OUT; a folder otherwise).
    #[arg(long, value_enum)]
    pub format: Option<PackageFormat>,
    /// Split super.img into parts of at most SIZE bytes (super.img.0 …).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub split: Option<u64>,
    /// Size of the super device (default: the source's, or the groups plus metadata).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub super_size: Option<u64>,
    /// Device codename the install scripts check (default: from the package).
    #[arg(long)]
    pub device: Option<String>,
    /// Overwrite OUT.
    #[arg(short, long)]
    pub force: bool,
}

/// Runs `fastboot`.
pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let rom = Rom::open(&args.rom)?;
    let format =
        args.format
            .unwrap_or_else(|| match args.output.extension().and_then(|e| e.to_str()) {
                Some("zip") => PackageFormat::Zip,
                Some("tgz") | Some("gz") => PackageFormat::Tgz,
                _ => PackageFormat::Dir,
            });
    crate::output::check_overwrite(&args.output, args.force)?;
    let info = rom.build_info();
    let device = args
        .device
        .clone()
        .or_else(|| {
            info.device
                .as_deref()
                .and_then(|d| d.split(',').next())
                .map(str::to_string)
        })
        .ok_or_else(|| {
            Error::Usage(format!(
                "{} does not name its device; pass --device CODENAME",
                rom.path.display()
            ))
        })?;
    let parent = args
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let work = tempfile::Builder::new()
        .prefix(".romkit-fastboot-src-")
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    let parts: Vec<PartInfo> = rom.partitions();
    let requests: Vec<(String, PathBuf)> = parts
        .iter()
        .map(|p| (p.name.clone(), work.path().join(format!("{}.img", p.name))))
        .collect();
    rom.extract_partitions(&requests, ctx.jobs, false)?;
    let path_of = |n: &str| work.path().join(format!("{n}.img"));

    // Which partitions live in super, under which LP name, and the layout.
    let mut logical: Vec<(String, String)> = Vec::new(); // (listed name, LP name)
    let mut layout = None;
    let mut ab = matches!(
        rom.kind,
        crate::rom::RomKind::RecoveryOta | crate::rom::RomKind::Payload
    );
    if let Some(s) = rom.images.as_ref().and_then(|p| p.super_image.as_ref()) {
        for p in &parts {
            if let Some(lp_name) = &p.lp_name {
                logical.push((p.name.clone(), lp_name.clone()));
            }
        }
        let sizes: Vec<(String, u64)> = parts
            .iter()
            .filter_map(|p| p.lp_name.clone().map(|n| (n, p.size)))
            .collect();
        let mut spec = lp::respec(&s.metadata, &sizes);
        if let Some(d) = args.super_size {
            spec.device_size = d;
        }
        ab = s.metadata.partitions.iter().any(|p| p.name.ends_with("_a"));
        layout = Some(spec);
    } else if let Some(d) = rom
        .payload()
        .and_then(|p| p.manifest.dynamic_partition_metadata.as_ref())
    {
        let groups: Vec<(String, u64, Vec<String>)> = d
            .groups
            .iter()
            .map(|g| {
                (
                    g.name.clone().unwrap_or_else(|| "main".into()),
                    g.size.unwrap_or(0),
                    g.partition_names.clone(),
                )
            })
            .collect();
        let sizes: Vec<(String, u64)> = parts.iter().map(|p| (p.name.clone(), p.size)).collect();
        for (_, _, names) in &groups {
            for n in names {
                logical.push((n.clone(), format!("{n}_a")));
            }
        }
        layout = Some(layout_for_groups(
            &groups,
            &sizes,
            d.snapshot_enabled.unwrap_or(false),
            args.super_size,
        ));
    }
    let maps: Vec<(String, ImageMap)> = logical
        .iter()
        .map(|(n, lp_name)| {
            let p = path_of(n);
            let src = crate::format::source::FileSlice::open(&p).map_err(|e| Error::io(&p, e))?;
            Ok((lp_name.clone(), ImageMap::raw(src)))
        })
        .collect::<Result<_>>()?;
    let images: Vec<(String, PathBuf)> = parts
        .iter()
        .filter(|p| !logical.iter().any(|(n, _)| *n == p.name))
        .map(|p| (p.name.clone(), path_of(&p.name)))
        .collect();
    let mtime = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .or(info.timestamp)
        .unwrap_or(315_532_800);
    let spec = FastbootSpec {
        device,
        images,
        super_layout: layout,
        logical: maps.iter().map(|(n, m)| (n.clone(), m)).collect(),
        split: args.split,
        ab,
        mtime,
    };
    let summary = write_package(&spec, &args.output, format, ctx.jobs, args.force)?;
    if ctx.json {
        emit_json(&summary)?;
    } else {
        let mut s = format!("{}\n", summary.path.display());
        for f in &summary.files {
            s.push_str(&format!("  {f}\n"));
        }
        emit(&s)?;
    }
    Ok(0)
}
