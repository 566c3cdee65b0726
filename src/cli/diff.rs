//! `romkit diff A B`: what changed between two manifests or packages.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Ctx, emit};
use crate::error::{EXIT_CHECK, Error, Result};
use crate::manifest::{Manifest, diff::diff};

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

/// Whether `path` is a JSON document: a `.json` name, or a `{` first.
fn is_json(path: &Path) -> Result<bool> {
    if path.is_dir() {
        return Ok(false);
    }
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        return Ok(true);
    }
    let mut head = [0u8; 64];
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let n = f.read(&mut head).map_err(|e| Error::io(path, e))?;
    Ok(head[..n]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{'))
}

/// A manifest read from JSON, or made by describing a package.
pub fn load(path: &Path, jobs: usize) -> Result<Manifest> {
    if is_json(path)? {
        Manifest::read(path)
    } else {
        crate::manifest::describe(path, jobs)
    }
}

/// Runs `diff`.
pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let a = load(&args.a, ctx.jobs)?;
    let b = load(&args.b, ctx.jobs)?;
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
