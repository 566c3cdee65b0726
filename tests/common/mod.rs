//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use prost::Message;
use romkit::format::payload::proto::DeltaArchiveManifest;

/// The romkit binary under test.
pub fn romkit() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("romkit").expect("romkit binary");
    c.env_remove("ROMKIT_LOG");
    c
}

/// Repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether oracle tests must run (CI) rather than skip.
pub fn oracles_required() -> bool {
    std::env::var("ROMKIT_ORACLES").is_ok_and(|v| v == "require")
}

/// Skips (returns `None`, printing why) or fails when an oracle is missing.
pub fn need<T>(what: &str, found: Option<T>) -> Option<T> {
    if found.is_none() {
        if oracles_required() {
            panic!("oracle {what} is missing and ROMKIT_ORACLES=require");
        }
        eprintln!("SKIP: oracle {what} not available (set up with .ci/run)");
    }
    found
}

/// The Python of the oracle venv: `ROMKIT_PYTHON`, else `.venv/bin/python`,
/// provided it has the given modules.
pub fn python_with(modules: &[&str]) -> Option<PathBuf> {
    let py = std::env::var_os("ROMKIT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"));
    let probe = format!("import {}", modules.join(", "));
    let ok = Command::new(&py)
        .args(["-c", &probe])
        .output()
        .is_ok_and(|o| o.status.success());
    need(&format!("python modules {modules:?}"), ok.then_some(py))
}

/// A program on PATH or in the venv's bin folder.
pub fn tool(name: &str) -> Option<PathBuf> {
    let venv_bin = std::env::var_os("ROMKIT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"))
        .parent()
        .map(|p| p.join(name));
    let found = venv_bin.filter(|p| p.exists()).or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.exists())
        })
    });
    need(name, found)
}

/// Deterministic pseudo-random bytes (xorshift) for test images.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// An image mixing compressible text, noise and zero runs.
pub fn mixed_image(seed: u64, blocks: usize) -> Vec<u8> {
    let n = noise(seed, blocks * 4096);
    let mut out = Vec::with_capacity(blocks * 4096);
    for (i, block) in n.chunks(4096).enumerate() {
        match (i as u64 + seed) % 5 {
            0 | 1 => out.extend(
                block
                    .iter()
                    .map(|b| b"romkit test data "[(*b % 17) as usize]),
            ),
            2 => out.extend_from_slice(&[0u8; 4096]),
            3 => out.extend_from_slice(block),
            _ => out.extend(std::iter::repeat_n((i % 251) as u8, 4096)),
        }
    }
    out
}

/// header + manifest + data as a payload.bin, unsigned.
pub fn raw_payload(manifest: &DeltaArchiveManifest, data: &[u8]) -> Vec<u8> {
    let m = manifest.encode_to_vec();
    let mut out = b"CrAU".to_vec();
    out.extend_from_slice(&2u64.to_be_bytes());
    out.extend_from_slice(&(m.len() as u64).to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&m);
    out.extend_from_slice(data);
    out
}

/// Files (recursively) under `dir`, relative, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    fn walk(base: &Path, d: &Path, v: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(base, &p, v);
                } else {
                    v.push(p.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
    }
    walk(dir, dir, &mut v);
    v.sort();
    v
}

/// The committed sample package.
pub fn sample() -> PathBuf {
    let dir = root().join("fixtures");
    std::fs::read_dir(&dir)
        .expect("fixtures/")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "zip"))
        .expect("a committed sample zip in fixtures/")
}

/// Runs romkit with `args` then `path`, expects success and parses stdout as JSON.
pub fn json_ok(args: &[&str], path: &Path) -> serde_json::Value {
    let out = romkit().args(args).arg(path).assert().success();
    serde_json::from_slice(&out.get_output().stdout).expect("JSON on stdout")
}

/// Writes a zip at `path` holding one `payload.bin` compressed with `method`.
pub fn zip_with_payload(path: &Path, payload: &[u8], method: zip::CompressionMethod) {
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    w.start_file(
        "payload.bin",
        zip::write::SimpleFileOptions::default().compression_method(method),
    )
    .unwrap();
    std::io::Write::write_all(&mut w, payload).unwrap();
    w.finish().unwrap();
}

/// Lowercase hex.
#[allow(dead_code)]
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An AOSP LP tool (`lpmake`, `lpunpack`, `lpdump`): from the folder in
/// `ROMKIT_LPTOOLS` (where `.ci/run` builds them), else from PATH.
pub fn lptool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("ROMKIT_LPTOOLS")
        .map(|d| PathBuf::from(d).join(name))
        .filter(|p| p.exists())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.exists())
            })
        });
    need(name, found)
}

/// Runs a command and panics with its output unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Files in `dir` (not recursive), names sorted, with their contents.
pub fn read_dir_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// A small tmpfs mounted for a test (root only), unmounted when dropped.
pub struct Tmpfs {
    _dir: tempfile::TempDir,
    /// The mount point.
    pub mnt: PathBuf,
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

/// Mounts a tmpfs of `size` (`3M`); `None` when that is not possible here.
pub fn tmpfs(size: &str) -> Option<Tmpfs> {
    let d = tempfile::tempdir().ok()?;
    let m = d.path().join("mnt");
    std::fs::create_dir(&m).ok()?;
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(&m)
        .status()
        .ok()?
        .success();
    ok.then_some(Tmpfs { _dir: d, mnt: m })
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Sends signal `sig` to a child process.
pub fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc_kill(child.id() as i32, sig);
    }
}

/// A tool of erofs-utils 1.8 (`mkfs.erofs`, `fsck.erofs`, `dump.erofs`): from
/// the folder in `ROMKIT_EROFS18` (where `.ci/run` builds them), else from
/// `target/oracles/erofs-utils/bin`. Debian 12's PATH copy is 1.5, so PATH is
/// never searched.
pub fn erofs18(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("ROMKIT_EROFS18")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/oracles/erofs-utils/bin"));
    let p = dir.join(name);
    need(&format!("erofs-utils 1.8 {name}"), p.exists().then_some(p))
}

/// cryptsetup's `veritysetup format --no-superblock` over `data` with 4 KiB
/// blocks: the hash tree goes to `tree` and, with `fec = Some((file,
/// roots))`, the Reed–Solomon parity to `file`. Both are truncated first.
/// Returns the root digest in hex. An empty `salt_hex` means no salt.
pub fn veritysetup(
    bin: &Path,
    data: &Path,
    tree: &Path,
    fec: Option<(&Path, u8)>,
    alg: &str,
    salt_hex: &str,
) -> String {
    std::fs::write(tree, b"").unwrap();
    let mut cmd = Command::new(bin);
    cmd.args(["format", "--no-superblock", "--hash", alg])
        .args(["--data-block-size=4096", "--hash-block-size=4096"])
        .arg(format!(
            "--salt={}",
            if salt_hex.is_empty() { "-" } else { salt_hex }
        ));
    if let Some((f, roots)) = fec {
        std::fs::write(f, b"").unwrap();
        cmd.arg("--fec-device")
            .arg(f)
            .arg(format!("--fec-roots={roots}"));
    }
    let out = run_ok(cmd.arg(data).arg(tree));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .map(|v| v.trim().to_string())
        .expect("veritysetup prints the root hash")
}

/// The footer and hashtree descriptor of `image` as the independent Python
/// reader (`tests/oracles/avb_hashtree.py parse`) sees them.
pub fn avb_parse(python: &Path, image: &Path) -> serde_json::Value {
    let out = run_ok(
        Command::new(python)
            .arg(root().join("tests/oracles/avb_hashtree.py"))
            .arg("parse")
            .arg(image),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
