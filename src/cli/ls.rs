//! `romkit ls TARGET [PATH]` and `romkit cat TARGET PATH`: a look inside a
//! partition, from a bare filesystem image or from a package.
//!
//! For a package, the first component of PATH names the partition
//! (`system/app`); the partition is decoded, with every hash checked, into a
//! temporary file that is removed afterwards.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Ctx, emit, emit_json};
use crate::error::{Error, Result};
use crate::fs::sniff;
use crate::fs::tree::{Kind, Tree};
use crate::rom::Rom;

/// Arguments of `ls`.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// A filesystem image (EROFS) or a package.
    pub target: PathBuf,
    /// Path inside the image; for a package, starting with the partition name.
    pub path: Option<String>,
    /// List subdirectories recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

/// Arguments of `cat`.
#[derive(clap::Args, Debug)]
pub struct CatArgs {
    /// A filesystem image (EROFS) or a package.
    pub target: PathBuf,
    /// File inside the image; for a package, starting with the partition name.
    pub path: String,
}

/// An opened filesystem and the path inside it the user asked for.
pub(crate) struct Opened {
    pub tree: Tree,
    pub inner: String,
    _tmp: Option<crate::output::TempDir>,
}

/// Opens TARGET (image or package) and resolves PATH.
pub(crate) fn open_target(ctx: &Ctx, target: &Path, path: Option<&str>) -> Result<Option<Opened>> {
    let path = path.unwrap_or("").trim_matches('/');
    match sniff(target).map_err(|e| Error::io(target, e))? {
        Some(_) => {
            let tree = crate::fs::read_tree(target)
                .map_err(|e| Error::invalid(target, e.unwrap_or_default()))?;
            Ok(Some(Opened {
                tree,
                inner: path.to_string(),
                _tmp: None,
            }))
        }
        None => {
            let rom = Rom::open(target)?;
            if path.is_empty() {
                return Ok(None);
            }
            let (part, inner) = path.split_once('/').unwrap_or((path, ""));
            let tmp = crate::output::temp_dir_in(&std::env::temp_dir(), "romkit-ls-")?;
            let img_path = tmp.path().join(format!("{part}.img"));
            rom.extract_partition(part, &img_path, ctx.jobs, false)?;
            let label = format!("{}:{part}", target.display());
            let tree = crate::fs::read_tree(&img_path).map_err(|e| match e {
                Some(msg) => Error::invalid(&label, msg),
                None => Error::invalid(
                    target,
                    format!("partition {part} holds no filesystem romkit can read"),
                ),
            })?;
            Ok(Some(Opened {
                tree,
                inner: inner.to_string(),
                _tmp: Some(tmp),
            }))
        }
    }
}

/// One listed entry.
#[derive(Serialize)]
struct Entry {
    path: String,
    kind: &'static str,
    mode: String,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: i64,
    label: Option<String>,
    capabilities: Option<String>,
    target: Option<String>,
}

/// `YYYY-MM-DD HH:MM` in UTC.
pub(crate) fn fmt_time(secs: i64) -> String {
    let (y, m, d, h, mi, _) = crate::util::time::utc_parts(secs);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}")
}

/// `drwxr-xr-x`-style mode string.
pub(crate) fn mode_string(kind: &Kind, perm: u32) -> String {
    let t = match kind {
        Kind::Dir(_) => 'd',
        Kind::File(_) => '-',
        Kind::Symlink(_) => 'l',
        Kind::CharDev(_) => 'c',
        Kind::BlockDev(_) => 'b',
        Kind::Fifo => 'p',
        Kind::Socket => 's',
    };
    let mut s = String::from(t);
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        let bit = 0o400 >> i;
        let special = match i {
            2 if perm & 0o4000 != 0 => Some('s'),
            5 if perm & 0o2000 != 0 => Some('s'),
            8 if perm & 0o1000 != 0 => Some('t'),
            _ => None,
        };
        s.push(match (perm & bit != 0, special) {
            (true, Some(sc)) => sc,
            (false, Some(sc)) => sc.to_ascii_uppercase(),
            (true, None) => c,
            (false, None) => '-',
        });
    }
    s
}

/// Runs `ls`.
pub fn run_ls(ctx: &Ctx, args: LsArgs) -> Result<u8> {
    let Some(opened) = open_target(ctx, &args.target, args.path.as_deref())? else {
        // A package without a path: its partitions.
        let rom = Rom::open(&args.target)?;
        let parts = rom.partitions();
        let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
        if ctx.json {
            emit_json(&names)?;
        } else {
            emit(&names.iter().map(|n| format!("{n}/\n")).collect::<String>())?;
        }
        return Ok(0);
    };
    let t = &opened.tree;
    let start = t
        .lookup(&opened.inner)
        .map_err(|e| Error::Usage(format!("{}: {e}", args.target.display())))?;
    let prefix = opened.inner.clone();
    let mut entries = Vec::new();
    let all = t.walk();
    for (path, id) in &all {
        // Entries under `start`: walk from the root and keep the subtree.
        let rel = if prefix.is_empty() {
            Some(path.as_str())
        } else if path == &prefix {
            Some("")
        } else {
            path.strip_prefix(&format!("{prefix}/"))
        };
        let Some(rel) = rel else { continue };
        let depth = if rel.is_empty() {
            0
        } else {
            rel.split('/').count()
        };
        let is_start_dir = matches!(t.inode(start).kind, Kind::Dir(_));
        let keep = if is_start_dir {
            depth == 1 || (args.recursive && depth >= 1)
        } else {
            depth == 0
        };
        if !keep {
            continue;
        }
        let ino = t.inode(*id);
        entries.push(Entry {
            path: path.clone(),
            kind: ino.kind.name(),
            mode: mode_string(&ino.kind, ino.meta.perm),
            uid: ino.meta.uid,
            gid: ino.meta.gid,
            size: match &ino.kind {
                Kind::File(d) => d.size(),
                Kind::Symlink(s) => s.len() as u64,
                _ => 0,
            },
            mtime: ino.meta.mtime,
            label: ino.meta.selinux_label(),
            capabilities: ino.meta.capabilities().map(|c| format!("{c:#x}")),
            target: match &ino.kind {
                Kind::Symlink(s) => Some(String::from_utf8_lossy(s).into_owned()),
                _ => None,
            },
        });
    }
    if ctx.json {
        emit_json(&entries)?;
    } else {
        let mut s = String::new();
        for e in &entries {
            let _ = write!(
                s,
                "{} {:>5} {:>5} {:>10} {} {:<32} {}",
                e.mode,
                e.uid,
                e.gid,
                e.size,
                fmt_time(e.mtime),
                e.label.as_deref().unwrap_or("-"),
                e.path
            );
            if let Some(t) = &e.target {
                let _ = write!(s, " -> {t}");
            }
            if let Some(c) = &e.capabilities {
                let _ = write!(s, " [caps {c}]");
            }
            s.push('\n');
        }
        emit(&s)?;
    }
    Ok(0)
}

/// Runs `cat`.
pub fn run_cat(ctx: &Ctx, args: CatArgs) -> Result<u8> {
    let Some(opened) = open_target(ctx, &args.target, Some(&args.path))? else {
        return Err(Error::Usage(
            "cat needs a path inside a partition, e.g. system/build.prop".into(),
        ));
    };
    let id = opened
        .tree
        .lookup(&opened.inner)
        .map_err(|e| Error::Usage(format!("{}: {e}", args.target.display())))?;
    let data = match &opened.tree.inode(id).kind {
        Kind::File(d) => d,
        other => {
            return Err(Error::Usage(format!(
                "{}: {} is a {}, not a regular file",
                args.target.display(),
                args.path,
                other.name()
            )));
        }
    };
    let mut buf = Vec::new();
    data.read(&mut buf)
        .map_err(|e| Error::invalid(&args.target, format!("{}: {e}", args.path)))?;
    let mut out = std::io::stdout().lock();
    match out.write_all(&buf).and_then(|_| out.flush()) {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Error::io("<stdout>", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_modes() {
        assert_eq!(fmt_time(0), "1970-01-01 00:00");
        assert_eq!(fmt_time(1_705_300_800), "2024-01-15 06:40");
        assert_eq!(fmt_time(951_782_400), "2000-02-29 00:00");
        assert_eq!(mode_string(&Kind::Fifo, 0o644), "prw-r--r--");
        assert_eq!(
            mode_string(&Kind::Dir(Default::default()), 0o1777),
            "drwxrwxrwt"
        );
        assert_eq!(mode_string(&Kind::Symlink(vec![]), 0o4754), "lrwsr-xr--");
        assert_eq!(mode_string(&Kind::Socket, 0o2640), "srw-r-S---");
    }
}
