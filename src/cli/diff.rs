//! `romkit diff A B`: what changed between two manifests or packages.

use std::path::PathBuf;

use super::{Ctx, emit};
use crate::error::{EXIT_CHECK, Result};
use crate::manifest::diff::diff;

/// Output formats of `diff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One change a line.
    Text,
    /// Headings and tables, ready for release notes.
    Markdown,
    /// One canonical JSON document.
    Json,
}

/// Arguments of `diff`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The earlier side: a manifest (`*.manifest.json`, `inspect --manifest`
    /// output) or anything `inspect --manifest` reads.
    pub a: PathBuf,
    /// The later side.
    pub b: PathBuf,
    /// Output format (`--json` is the same as `--format json`).
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Exit 0 even when there are differences (CI steps that only report).
    #[arg(long)]
    pub exit_zero: bool,
}

/// Runs `diff`.
pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let a = crate::manifest::load(&args.a, ctx.jobs)?;
    let b = crate::manifest::load(&args.b, ctx.jobs)?;
    let d = diff(&a, &b);
    let format = if ctx.json { Format::Json } else { args.format };
    match format {
        Format::Text => emit(&d.to_text())?,
        Format::Markdown => emit(&d.to_markdown())?,
        Format::Json => emit(&String::from_utf8_lossy(&d.to_json()))?,
    }
    Ok(if d.identical || args.exit_zero {
        0
    } else {
        EXIT_CHECK
    })
}
