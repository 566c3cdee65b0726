//! `romkit apps INPUT`: the system apps of a package, an image or a folder.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::{Ctx, emit, emit_json, human_size};
use crate::apps::{self, App};
use crate::error::{Error, Result};

/// Arguments of `apps`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A package, a filesystem image, or a folder (of partition folders, as
    /// `unpack --files` writes, or of one partition).
    pub input: PathBuf,
    /// Only these partitions (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub partition: Option<Vec<String>>,
    /// CSV instead of a table.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    input: String,
    count: usize,
    unreadable: usize,
    apps: &'a [App],
}

/// Quotes a CSV field when it needs it (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// The CSV rendering.
fn csv(apps: &[App]) -> String {
    let mut out = String::from(
        "partition,path,apk,package,version_code,version_name,min_sdk,target_sdk,shared_user_id,overlay_target,privileged,size,apk_size,sha256,signer,splits,error\n",
    );
    for a in apps {
        let id = a.identity.as_ref();
        let row = [
            a.partition.clone(),
            a.path.clone(),
            a.apk.clone(),
            opt(id.map(|i| &i.package)),
            opt(id.and_then(|i| i.version_code)),
            opt(id.and_then(|i| i.version_name.clone())),
            opt(id.and_then(|i| i.min_sdk)),
            opt(id.and_then(|i| i.target_sdk)),
            opt(id.and_then(|i| i.shared_user_id.clone())),
            opt(id.and_then(|i| i.overlay_target.clone())),
            a.privileged.to_string(),
            a.size.to_string(),
            a.apk_size.to_string(),
            a.sha256.clone(),
            opt(id.and_then(|i| i.signer.clone())),
            a.splits.join(" "),
            a.error.clone().unwrap_or_default(),
        ];
        let line: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// The aligned table.
fn table(apps: &[App]) -> String {
    let header = [
        "PARTITION",
        "PATH",
        "PACKAGE",
        "VERSION",
        "CODE",
        "PRIV",
        "SIZE",
        "SIGNER",
    ];
    let rows: Vec<[String; 8]> = apps
        .iter()
        .map(|a| {
            let id = a.identity.as_ref();
            [
                a.partition.clone(),
                a.path.clone(),
                match (id, &a.error) {
                    (Some(i), _) => i.package.clone(),
                    (None, Some(e)) => format!("(unreadable: {e})"),
                    (None, None) => String::new(),
                },
                opt(id.and_then(|i| i.version_name.clone())),
                opt(id.and_then(|i| i.version_code)),
                if a.privileged { "yes" } else { "" }.to_string(),
                human_size(a.size),
                id.and_then(|i| i.signer.as_deref())
                    .map(|s| s.chars().take(12).collect())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header.map(String::from));
    for r in &rows {
        line(r);
    }
    out
}

/// Runs `apps`.
pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let loaded = apps::load(&args.input, args.partition.as_deref(), ctx.jobs)?;
    if let Some(only) = &args.partition
        && let Some(bad) = only
            .iter()
            .find(|n| !loaded.partitions.iter().any(|p| &p.name == *n))
    {
        return Err(Error::Usage(format!(
            "{}: no partition {bad:?} with apps here",
            args.input.display()
        )));
    }
    let list = apps::identify(loaded.locate(), ctx.jobs);
    let unreadable = list.iter().filter(|a| a.error.is_some()).count();
    for a in list.iter().filter(|a| a.error.is_some()) {
        tracing::warn!(
            "{}: {}: {}",
            args.input.display(),
            a.apk,
            a.error.as_deref().unwrap_or_default()
        );
    }
    if ctx.json {
        emit_json(&Report {
            input: args.input.display().to_string(),
            count: list.len(),
            unreadable,
            apps: &list,
        })?;
    } else if args.csv {
        emit(&csv(&list))?;
    } else {
        emit(&table(&list))?;
        if !ctx.quiet {
            let size: u64 = list.iter().map(|a| a.size).sum();
            eprintln!(
                "{} apps, {} in total{}",
                list.len(),
                human_size(size),
                if unreadable > 0 {
                    format!(", {unreadable} unreadable")
                } else {
                    String::new()
                }
            );
        }
    }
    Ok(0)
}
