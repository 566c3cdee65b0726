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
use crate::fs::tree::{Kind, Tree};
use crate::rom::load::{Decoded, Input, open_input, read_image_tree};

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
    _decoded: Option<Decoded>,
}

/// What TARGET and PATH name: a tree and a path in it, or a package's
/// partitions (a package without a path).
pub(crate) enum Target {
    Tree(Opened),
    Partitions(Vec<String>),
}

/// Opens TARGET (image or package) and resolves PATH.
pub(crate) fn open_target(ctx: &Ctx, target: &Path, path: Option<&str>) -> Result<Target> {
    let path = path.unwrap_or("").trim_matches('/');
    let rom = match open_input(target)? {
        Input::Image { path: image, .. } => {
            return Ok(Target::Tree(Opened {
                tree: read_image_tree(&image)?,
                inner: path.to_string(),
                _decoded: None,
            }));
        }
        Input::Folder(_) => {
            return Err(Error::invalid(
                target,
                "is a directory; expected a package or a filesystem image",
            ));
        }
        Input::Package(rom) => rom,
    };
    if path.is_empty() {
        return Ok(Target::Partitions(rom.partition_names()));
    }
    let (part, inner) = path.split_once('/').unwrap_or((path, ""));
    let mut decoded = rom.decode_trees(&[part.to_string()], false, ctx.jobs)?;
    let tree = decoded.partitions[0].tree.take().ok_or_else(|| {
        Error::invalid(
            target,
            format!("partition {part} holds no filesystem romkit can read"),
        )
    })?;
    Ok(Target::Tree(Opened {
        tree,
        inner: inner.to_string(),
        _decoded: Some(decoded),
    }))
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
    let opened = match open_target(ctx, &args.target, args.path.as_deref())? {
        Target::Tree(opened) => opened,
        Target::Partitions(names) => {
            if ctx.json {
                emit_json(&names)?;
            } else {
                emit(&names.iter().map(|n| format!("{n}/\n")).collect::<String>())?;
            }
            return Ok(0);
        }
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
    let Target::Tree(opened) = open_target(ctx, &args.target, Some(&args.path))? else {
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
