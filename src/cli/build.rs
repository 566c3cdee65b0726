//! `romkit build ROM --profile P -o OUT`: the main job.

use std::path::PathBuf;

use super::{Ctx, emit, emit_json, human_size};
use crate::build::{BuildOptions, Chain, OutputFormat, build};
use crate::error::Result;
use crate::util::size::parse_size;

/// Arguments of `build`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The official package (any kind romkit reads).
    pub rom: PathBuf,
    /// The debloat profile: a name (`xiaomi-eu`) or a path.
    #[arg(long, short = 'p')]
    pub profile: String,
    /// The output package (or folder, for `--format images`).
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// What to write.
    #[arg(long, value_enum, default_value = "fastboot")]
    pub format: OutputFormat,
    /// Skip the input's zip CRC pass (payload and sparse hashes are still
    /// checked while decoding, and the output is always checked).
    #[arg(long)]
    pub no_verify: bool,
    /// Allow removing protected packages and paths.
    #[arg(long)]
    pub allow_unsafe: bool,
    /// Rules or prop edits that match nothing fail the build (exit 1).
    #[arg(long)]
    pub strict: bool,
    /// Split the fastboot package's super.img into parts of at most SIZE.
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub split: Option<u64>,
    /// Fastboot package layout and script names: Xiaomi's (`flash_all.sh` …)
    /// or xiaomi.eu's (`windows_fastboot_first_install_with_data_format.bat`
    /// …, super split into sparse chunks, README.txt).
    #[arg(long, value_enum, default_value = "official")]
    pub style: crate::package::fastboot::Style,
    /// Also write the manifest as YAML (`OUT.manifest.yaml`).
    #[arg(long)]
    pub manifest_yaml: bool,
    /// Replace existing outputs.
    #[arg(short, long)]
    pub force: bool,
    /// Rebuild the touched partitions from their file trees (to shrink or
    /// recompress them) instead of editing their images in place.
    #[arg(long)]
    pub repack: bool,
    /// Rebuild touched ext4 partitions as EROFS. The device's kernel must
    /// mount EROFS (Linux 5.4 or later with EROFS built in); many older
    /// devices' kernels cannot, and then the build does not boot.
    #[arg(long)]
    pub ext4_to_erofs: bool,
    /// Skip the free-space estimate made before any work (a disk that fills
    /// up still fails cleanly, exit 4).
    #[arg(long)]
    pub no_space_check: bool,
    /// The previous build, for an incremental ROM: a full package, a folder
    /// of PARTITION.img images or one PARTITION.img.
    #[arg(long, value_name = "BASE")]
    pub source: Option<PathBuf>,
    /// Apply this incremental package next (repeatable, in order): ROM is
    /// then the base, and the build starts from the last package applied.
    #[arg(long = "apply", value_name = "INC")]
    pub apply: Vec<PathBuf>,
}

/// Runs `build`.
pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    // A bad SOURCE_DATE_EPOCH is a usage error before any work is done.
    crate::util::time::source_date_epoch()?;
    let report = build(
        &args.rom,
        &args.output,
        &BuildOptions {
            profile: args.profile,
            format: args.format,
            verify: !args.no_verify,
            allow_unsafe: args.allow_unsafe,
            strict: args.strict,
            split: args.split,
            style: args.style,
            manifest_yaml: args.manifest_yaml,
            force: args.force,
            space_check: !args.no_space_check,
            repack: args.repack,
            ext4_to_erofs: args.ext4_to_erofs,
            jobs: ctx.jobs,
            chain: Chain::from_args(&args.rom, args.source.as_deref(), &args.apply),
        },
    )?;
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    if ctx.json {
        emit_json(&report)?;
        return Ok(0);
    }
    let mut s = String::new();
    for p in &report.partitions {
        let changed = p
            .changed_blocks
            .map_or(String::new(), |n| format!("  {n} blocks changed"));
        s.push_str(&format!(
            "  {:<12} {:<11} {:>10}{changed}\n",
            p.name,
            p.status.name(),
            human_size(p.size)
        ));
        if let Some(note) = &p.avb_footer {
            s.push_str(&format!("  {:<12} {note}\n", ""));
        }
    }
    for sp in &report.space {
        s.push_str(&format!(
            "{}: {} of {} used, {} free\n",
            sp.name,
            human_size(sp.used),
            human_size(sp.size),
            human_size(sp.free)
        ));
    }
    s.push_str(&format!(
        "{} apps removed, {} freed, {} build.prop edits\noutput:   {}\nmanifest: {}\n",
        report.removed_apps,
        human_size(report.freed),
        report.prop_edits,
        report.output.display(),
        report.manifest.display()
    ));
    for r in &report.ota_reuse {
        let c = &r.counts;
        let preset = c.preset.map_or_else(
            || {
                let d = crate::format::payload::writer::PayloadOptions::default().xz_level;
                format!("preset {d} (no xz preset reproduces the source's blobs)")
            },
            |p| format!("preset {p} (as the source)"),
        );
        s.push_str(&format!(
            "payload {}: {} operations copied, {} made ZERO, {} encoded again ({} split), {} encoded at xz {preset}\n",
            r.partition,
            c.copied,
            c.zeroed,
            c.encoded,
            c.split,
            human_size(c.encoded_bytes)
        ));
    }
    if let Some(f) = &report.fastboot {
        s.push_str(&super::fastboot::fastboot_notes(f));
    }
    emit(&s)?;
    Ok(0)
}
