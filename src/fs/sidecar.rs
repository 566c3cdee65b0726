//! Metadata sidecars beside an extracted tree, in the formats ROM kitchens use:
//!
//! - `fs_config`: one line per entry, `PATH UID GID MODE capabilities=0xMASK`,
//!   PATH prefixed with the partition name (the root is the name alone). Entries
//!   that cannot exist as files for an unprivileged user (device nodes, FIFOs,
//!   sockets) carry `type=chr:MAJOR:MINOR`, `type=blk:…`, `type=fifo` or
//!   `type=sock` and `mtime=SECONDS.NANOS`; xattrs other than the SELinux label
//!   and the capabilities carry `xattr:NAME=HEX`. Spaces, newlines and
//!   backslashes in paths are written as `\040`, `\012`, `\134`.
//! - `file_contexts`: `/PARTITION/PATH LABEL`, the path regex-escaped so that
//!   each line matches exactly one entry.

use crate::util::hex;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::fs::tree::{Kind, Meta, Tree};

/// One parsed `fs_config` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Path relative to the partition root (`""` for the root).
    pub path: String,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permission bits (`mode & 0o7777`).
    pub perm: u32,
    /// Capability mask (0: none).
    pub capabilities: u64,
    /// For entries not present on disk: what they are.
    pub special: Option<Special>,
    /// mtime for entries not present on disk.
    pub mtime: Option<(i64, u32)>,
    /// Other xattrs.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Entries recorded rather than created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Special {
    /// Character device (major, minor).
    Chr(u64, u64),
    /// Block device (major, minor).
    Blk(u64, u64),
    /// FIFO.
    Fifo,
    /// Socket.
    Sock,
}

fn escape_path(p: &str) -> String {
    let mut s = String::with_capacity(p.len());
    for c in p.chars() {
        match c {
            ' ' => s.push_str("\\040"),
            '\n' => s.push_str("\\012"),
            '\\' => s.push_str("\\134"),
            '\t' => s.push_str("\\011"),
            c => s.push(c),
        }
    }
    s
}

/// A line of a sidecar file that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {why}")]
pub struct SidecarError {
    /// 1-based line number in the sidecar file.
    pub line: usize,
    /// What is wrong with it, naming the field and its value.
    pub why: String,
}

fn unescape_path(p: &str) -> Result<String, &'static str> {
    let b = p.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let oct = b.get(i + 1..i + 4).ok_or("truncated \\ escape")?;
            let s = std::str::from_utf8(oct).map_err(|_| "bad \\ escape")?;
            out.push(u8::from_str_radix(s, 8).map_err(|_| "bad \\ escape")?);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "path is not UTF-8")
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Major and minor of a glibc-style `dev_t`.
pub fn dev_split(d: u64) -> (u64, u64) {
    (
        ((d >> 8) & 0xfff) | ((d >> 32) & !0xfff),
        (d & 0xff) | ((d >> 12) & !0xff),
    )
}

/// A glibc-style `dev_t` from major and minor.
pub fn dev_join(major: u64, minor: u64) -> u64 {
    ((major & 0xfff) << 8) | ((major & !0xfff) << 32) | (minor & 0xff) | ((minor & !0xff) << 12)
}

fn full(mount: &str, path: &str) -> String {
    if path.is_empty() {
        mount.to_string()
    } else {
        format!("{mount}/{path}")
    }
}

/// The `fs_config` text for a tree mounted at `mount`.
pub fn fs_config(tree: &Tree, mount: &str) -> String {
    let mut s = String::new();
    for (path, id) in tree.walk() {
        let ino = tree.inode(id);
        let m = &ino.meta;
        let _ = write!(
            s,
            "{} {} {} {:04o} capabilities={:#x}",
            escape_path(&full(mount, &path)),
            m.uid,
            m.gid,
            m.perm,
            m.capabilities().unwrap_or(0)
        );
        let special = match &ino.kind {
            Kind::CharDev(d) => Some(format!("chr:{}:{}", dev_split(*d).0, dev_split(*d).1)),
            Kind::BlockDev(d) => Some(format!("blk:{}:{}", dev_split(*d).0, dev_split(*d).1)),
            Kind::Fifo => Some("fifo".into()),
            Kind::Socket => Some("sock".into()),
            _ => None,
        };
        if let Some(t) = special {
            let _ = write!(s, " type={t} mtime={}.{:09}", m.mtime, m.mtime_nsec);
        }
        // A capability xattr in any other form than the one `capabilities=`
        // rebuilds is kept verbatim.
        let canonical = m
            .xattrs
            .get(&b"security.capability"[..])
            .is_none_or(|v| *v == capability_xattr(m.capabilities().unwrap_or(0)));
        for (k, v) in &m.xattrs {
            if k != b"security.selinux" && (k != b"security.capability" || !canonical) {
                let _ = write!(s, " xattr:{}={}", String::from_utf8_lossy(k), hex(v));
            }
        }
        s.push('\n');
    }
    s
}

fn regex_escape(p: &str) -> String {
    let mut s = String::with_capacity(p.len() + 8);
    for c in p.chars() {
        if c.is_whitespace() || c.is_control() {
            // The file is split on whitespace: write such bytes as \xHH.
            let mut b = [0u8; 4];
            for byte in c.encode_utf8(&mut b).bytes() {
                s.push_str(&format!("\\x{byte:02x}"));
            }
            continue;
        }
        if ".^$*+?()[]{}|\\".contains(c) {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

/// The `file_contexts` text for a tree mounted at `/mount`.
pub fn file_contexts(tree: &Tree, mount: &str) -> String {
    let mut s = String::new();
    for (path, id) in tree.walk() {
        if let Some(label) = tree.inode(id).meta.selinux_label() {
            let _ = writeln!(s, "/{} {label}", regex_escape(&full(mount, &path)));
        }
    }
    s
}

/// Parses `fs_config` text; paths are returned relative to `mount`.
pub fn parse_fs_config(text: &str, mount: &str) -> Result<Vec<ConfigEntry>, SidecarError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |why: String| SidecarError { line: n + 1, why };
        let mut f = line.split(' ');
        let path = unescape_path(f.next().unwrap_or("")).map_err(|w| err(w.to_string()))?;
        let rel = if path == mount {
            String::new()
        } else {
            path.strip_prefix(&format!("{mount}/"))
                .ok_or_else(|| err(format!("{path:?} is not under {mount}")))?
                .to_string()
        };
        let num = |s: Option<&str>, what: &str, radix: u32| -> Result<u32, SidecarError> {
            let s = s.ok_or_else(|| err(format!("missing {what}")))?;
            u32::from_str_radix(s, radix).map_err(|_| err(format!("{what} {s:?} is not a number")))
        };
        let uid = num(f.next(), "uid", 10)?;
        let gid = num(f.next(), "gid", 10)?;
        let perm = num(f.next(), "mode", 8)?;
        if perm > 0o7777 {
            return Err(err(format!("mode {perm:o} has bits beyond 07777")));
        }
        let mut e = ConfigEntry {
            path: rel,
            uid,
            gid,
            perm,
            capabilities: 0,
            special: None,
            mtime: None,
            xattrs: BTreeMap::new(),
        };
        for field in f {
            if let Some(v) = field.strip_prefix("capabilities=") {
                e.capabilities = u64::from_str_radix(v.trim_start_matches("0x"), 16)
                    .map_err(|_| err(format!("capabilities {v:?} is not hex")))?;
            } else if let Some(v) = field.strip_prefix("type=") {
                let parts: Vec<&str> = v.split(':').collect();
                let dev = |i: usize| -> Result<u64, SidecarError> {
                    parts
                        .get(i)
                        .and_then(|x| x.parse().ok())
                        .ok_or_else(|| err(format!("bad device in {v:?}")))
                };
                e.special = Some(match parts[0] {
                    "chr" => Special::Chr(dev(1)?, dev(2)?),
                    "blk" => Special::Blk(dev(1)?, dev(2)?),
                    "fifo" => Special::Fifo,
                    "sock" => Special::Sock,
                    other => return Err(err(format!("unknown type {other:?}"))),
                });
            } else if let Some(v) = field.strip_prefix("mtime=") {
                let (s, ns) = v.split_once('.').unwrap_or((v, "0"));
                e.mtime = Some((
                    s.parse().map_err(|_| err(format!("bad mtime {v:?}")))?,
                    ns.parse().map_err(|_| err(format!("bad mtime {v:?}")))?,
                ));
            } else if let Some(v) = field.strip_prefix("xattr:") {
                let (k, val) = v
                    .split_once('=')
                    .ok_or_else(|| err(format!("bad xattr {v:?}")))?;
                let val = unhex(val).ok_or_else(|| err(format!("xattr {k} value is not hex")))?;
                e.xattrs.insert(k.as_bytes().to_vec(), val);
            } else if !field.is_empty() {
                return Err(err(format!("unknown field {field:?}")));
            }
        }
        out.push(e);
    }
    Ok(out)
}

/// Parses `file_contexts` lines of exact (escaped) paths into path → label,
/// paths relative to `/mount`. Lines for other mount points are ignored;
/// regular-expression patterns are refused, since a sidecar must name each
/// entry exactly.
pub fn parse_file_contexts(
    text: &str,
    mount: &str,
) -> Result<BTreeMap<String, String>, SidecarError> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |why: String| SidecarError { line: n + 1, why };
        let mut f = line.split_whitespace();
        let pat = f.next().unwrap_or("");
        let label = f.next().ok_or_else(|| err("missing label".into()))?;
        let label = f.last().map_or(label, |l| l); // `PATH -- LABEL` form: last field
        let mut bytes = Vec::with_capacity(pat.len());
        let mut it = pat.bytes();
        while let Some(c) = it.next() {
            if c == b'\\' {
                match it.next() {
                    Some(b'x') => {
                        let hex: Vec<u8> = it.by_ref().take(2).collect();
                        let v = std::str::from_utf8(&hex)
                            .ok()
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                            .ok_or_else(|| err(format!("bad \\x escape in {pat:?}")))?;
                        bytes.push(v);
                    }
                    Some(other) => bytes.push(other),
                    None => return Err(err("trailing backslash".into())),
                }
            } else if b".^$*+?()[]{}|".contains(&c) {
                return Err(err(format!(
                    "{pat:?} is a pattern; sidecars list exact paths"
                )));
            } else {
                bytes.push(c);
            }
        }
        let path = String::from_utf8(bytes).map_err(|_| err(format!("{pat:?} is not UTF-8")))?;
        let Some(rest) = path.strip_prefix('/') else {
            return Err(err(format!("{pat:?} is not absolute")));
        };
        let rel = if rest == mount {
            String::new()
        } else if let Some(r) = rest.strip_prefix(&format!("{mount}/")) {
            r.to_string()
        } else {
            continue;
        };
        out.insert(rel, label.to_string());
    }
    Ok(out)
}

/// Builds `security.capability` for a capability mask the way Android's
/// image tools do: revision 2, effective, permitted = mask, nothing inheritable.
pub fn capability_xattr(mask: u64) -> Vec<u8> {
    let mut v = 0x0200_0001u32.to_le_bytes().to_vec();
    v.extend_from_slice(&(mask as u32).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&((mask >> 32) as u32).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v
}

/// Applies a config entry and label to metadata (mtime left alone).
pub fn apply(meta: &mut Meta, e: &ConfigEntry, label: Option<&str>) {
    meta.perm = e.perm;
    meta.uid = e.uid;
    meta.gid = e.gid;
    meta.xattrs = e.xattrs.clone();
    if let Some(l) = label {
        meta.xattrs
            .insert(b"security.selinux".to_vec(), format!("{l}\0").into_bytes());
    }
    if e.capabilities != 0 && !meta.xattrs.contains_key(&b"security.capability"[..]) {
        meta.xattrs.insert(
            b"security.capability".to_vec(),
            capability_xattr(e.capabilities),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        for p in ["a b", "x\\y", "n\nl", "plain/path.apk"] {
            assert_eq!(unescape_path(&escape_path(p)).unwrap(), p);
        }
        let (maj, min) = (259, 70000);
        assert_eq!(dev_split(dev_join(maj, min)), (maj, min));
    }

    #[test]
    fn parse_errors_name_the_line() {
        assert!(
            parse_fs_config("system 0 0 0755\nsystem/x 0 zero 0644\n", "system")
                .unwrap_err()
                .to_string()
                .starts_with("line 2")
        );
        assert!(
            parse_fs_config("vendor/x 0 0 0644\n", "system")
                .unwrap_err()
                .why
                .contains("not under system")
        );
        assert!(parse_fs_config("system/x 0 0 17777\n", "system").is_err());
        let e = parse_fs_config(
            "system/dev/null 0 0 0666 capabilities=0x0 type=chr:1:3 mtime=5.000000007\n",
            "system",
        )
        .unwrap();
        assert_eq!(e[0].special, Some(Special::Chr(1, 3)));
        assert_eq!(e[0].mtime, Some((5, 7)));
        assert!(
            parse_file_contexts("/system/app(/.*)? u:object_r:system_file:s0\n", "system").is_err()
        );
        let m = parse_file_contexts("/system u:object_r:rootfs:s0\n/system/a\\.apk u:object_r:x:s0\n/vendor/b u:object_r:y:s0\n", "system").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m["a.apk"], "u:object_r:x:s0");
        assert_eq!(m[""], "u:object_r:rootfs:s0");
    }
}
