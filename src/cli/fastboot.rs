//! `romkit fastboot ROM -o OUT`: any package as a fastboot package — images,
//! a rebuilt sparse super (optionally split) and install scripts.

use std::path::PathBuf;

use super::{Ctx, emit, emit_json};
use crate::error::{Error, Result};
use crate::package::fastboot::{FromRom, PackageFormat, Style};
use crate::rom::{PartInfo, Rom};
use crate::util::size::parse_size;

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
    /// Layout and script names: Xiaomi's (`flash_all.sh` …) or xiaomi.eu's
    /// (`windows_fastboot_first_install_with_data_format.bat` …, super split
    /// into sparse chunks, README.txt).
    #[arg(long, value_enum, default_value = "official")]
    pub style: Style,
    /// Overwrite OUT.
    #[arg(short, long)]
    pub force: bool,
}

/// Runs `fastboot`.
pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    // A bad SOURCE_DATE_EPOCH is a usage error before any work is done.
    crate::util::time::source_date_epoch()?;
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
    let work = crate::output::temp_dir_in(parent, ".romkit-fastboot-src-")?;
    let parts: Vec<PartInfo> = rom.partitions();
    let requests: Vec<(String, PathBuf)> = parts
        .iter()
        .map(|p| (p.name.clone(), work.path().join(format!("{}.img", p.name))))
        .collect();
    rom.extract_partitions(&requests, ctx.jobs, false)?;
    let (mut summary, hash) = crate::package::fastboot::from_rom(
        &rom,
        work.path(),
        &FromRom {
            device,
            split: args.split,
            super_size: args.super_size,
            disable_verification: false,
            style: args.style,
            hash: Default::default(),
        },
        &args.output,
        format,
        ctx.jobs,
        args.force,
    )?;
    if let Some(h) = hash {
        let h = h.wait().map_err(|e| Error::io(&args.output, e))?;
        summary.sha256 = Some(crate::util::hex(&h));
    }
    if ctx.json {
        emit_json(&summary)?;
    } else {
        let mut s = format!("{}\n", summary.path.display());
        for f in &summary.files {
            s.push_str(&format!("  {f}\n"));
        }
        s.push_str(&fastboot_notes(&summary));
        emit(&s)?;
    }
    Ok(0)
}

/// The safety lines of a fastboot package report (also under `build`).
pub(crate) fn fastboot_notes(summary: &crate::package::fastboot::FastbootSummary) -> String {
    let mut s = format!(
        "scripts: {} ({})\n",
        summary.scripts.join(", "),
        if summary.official_sequence {
            "the input's flash sequence"
        } else {
            "generated sequence"
        }
    );
    match &summary.anti_version {
        Some(a) => s.push_str(&format!("anti-rollback: checked against {a}\n")),
        None => s.push_str("anti-rollback: no version in the input, not checked\n"),
    }
    s.push_str(&format!(
        "CRC lists: {} partitions (flashed first when getvar crc is 1)\n",
        summary.crc_listed
    ));
    for d in &summary.dropped {
        s.push_str(&format!("dropped: {d} (lock script)\n"));
    }
    for n in &summary.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s
}
