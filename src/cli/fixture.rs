//! `romkit fixture -o DIR`: generate the synthetic sample package.

use std::path::PathBuf;

use super::{Ctx, emit, emit_json};
use crate::error::{Error, Result};
use crate::fixture::miui::generate_block_ota;
use crate::fixture::{FixtureOptions, LAYOUTS, generate_release, layout, layout_release, release};
use crate::util::hex;

/// Arguments of `fixture`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output folder.
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Total size of the partition images: bytes, or with K/M/G suffix (binary).
    #[arg(long, default_value = "6M", value_parser = parse_size)]
    pub size: u64,
    /// xz preset (0-9) for the payload.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=9))]
    pub xz_level: u32,
    /// Overwrite an existing package.
    #[arg(short, long)]
    pub force: bool,
    /// Which release: 1 (OS1.0.24.0, the committed sample) or 2 (OS1.0.25.0:
    /// the next build, with apps added, removed, updated and re-signed, props
    /// and a file mode changed; for `diff` demos and tests).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=2))]
    pub release: u32,
    /// Whose apps: a layout from a real HyperOS build's app inventory
    /// (folders, partitions, package names). `hyperos1-china` (alias
    /// `sample`, the default and the committed sample), `hyperos2-china`
    /// (alias `china`), `hyperos1-global` (alias `global`). `--release 2`
    /// exists for the default layout only.
    #[arg(long, value_name = "NAME")]
    pub layout: Option<String>,
    /// Which era: `hyperos` (a recovery OTA with payload.bin and EROFS
    /// partitions, the default) or `miui` (a MIUI 14 block-based OTA:
    /// `*.new.dat.br` and transfer lists of ext4 system, vendor and product
    /// images, made with e2fsprogs' mke2fs).
    #[arg(long, value_enum, default_value = "hyperos")]
    pub era: Era,
}

/// The package era `fixture` generates.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    /// HyperOS recovery OTA (payload.bin, EROFS).
    Hyperos,
    /// MIUI-era block-based OTA (new.dat.br, ext4).
    Miui,
}

use crate::util::size::parse_size;

/// Runs `fixture`.
pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    if args.size < 1 << 20 {
        return Err(Error::Usage("--size must be at least 1M".into()));
    }
    let opts = FixtureOptions {
        size: args.size,
        xz_level: args.xz_level,
        jobs: ctx.jobs,
        force: args.force,
    };
    if args.era == Era::Miui {
        if args.release != 1 || args.layout.is_some() {
            return Err(Error::Usage(
                "--era miui takes no --release or --layout".into(),
            ));
        }
        let path = generate_block_ota(&args.output, &opts)?;
        if ctx.json {
            emit_json(&serde_json::json!({ "path": path }))?;
        } else {
            emit(&format!("{}\n", path.display()))?;
        }
        return Ok(0);
    }
    let mut rel = release(args.release)
        .ok_or_else(|| Error::Usage(format!("no fixture release {}", args.release)))?;
    if let Some(name) = &args.layout {
        let l = layout(name).ok_or_else(|| {
            Error::Usage(format!(
                "no fixture layout {name:?} (known: {})",
                LAYOUTS.map(|l| l.name).join(", ")
            ))
        })?;
        if l != rel.layout {
            if args.release != 1 {
                return Err(Error::Usage(format!(
                    "--release {} exists for layout {} only",
                    args.release, LAYOUTS[0].name
                )));
            }
            rel = layout_release(l);
        }
    }
    let (path, summary) = generate_release(&args.output, &opts, &rel)?;
    if ctx.json {
        emit_json(&serde_json::json!({
            "path": path,
            "payload_size": summary.file_size,
            "payload_sha256": hex(&summary.file_hash),
        }))?;
    } else {
        emit(&format!("{}\n", path.display()))?;
    }
    Ok(0)
}
