//! Faults in the environment: the output on a full filesystem (caught by the
//! free-space preflight, or mid-write when the estimate is skipped), the
//! input shrinking under a running command, SIGINT and SIGTERM mid-run.
//! An EROFS write failure (full disk, a tree EROFS cannot hold) exits alike
//! from `build` and `pack`.
//! Every case: the exit code GUIDE.md §2 gives, no temporary file left,
//! earlier outputs untouched.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;

/// Every entry (hidden ones included) directly in `dir`.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A generated package large enough to be caught mid-run (made once, shared
/// by the tests of this file).
fn big_package() -> &'static Path {
    static PKG: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    &PKG.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = romkit()
            .args(["fixture", "--size", "160M", "--xz-level", "0", "-o"])
            .arg(dir.path())
            .assert()
            .success();
        let p = PathBuf::from(String::from_utf8_lossy(&out.get_output().stdout).trim());
        (dir, p)
    })
    .1
}

/// Waits until `dir` holds an entry that was not there before (the running
/// command has staged its first temporary file).
fn wait_for_new_entry(dir: &Path, before: &[String], child: &mut Child) -> bool {
    let start = Instant::now();
    loop {
        if entries(dir).len() > before.len() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "never started");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn preflight_refuses_a_destination_too_small_before_writing() {
    let Some(fs) = need("a tmpfs mount (root)", tmpfs("1M")) else {
        return;
    };
    let out = fs.mnt.join("images");
    let r = romkit()
        .args(["unpack", "-o"])
        .arg(&out)
        .arg(sample())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(4), "{err}");
    assert!(err.contains("not enough space"), "{err}");
    assert!(err.contains(&fs.mnt.display().to_string()), "{err}");
    assert!(entries(&out).is_empty(), "{:?}", entries(&out));

    let r = romkit()
        .args(["build", "--profile", "minimal", "-o"])
        .arg(fs.mnt.join("out.zip"))
        .arg(sample())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(4), "{err}");
    assert!(err.contains("not enough space"), "{err}");
    assert_eq!(entries(&fs.mnt), vec!["images".to_string()]);
}

#[test]
fn disk_filling_up_mid_write_exits_4_and_keeps_earlier_outputs() {
    let Some(fs) = need("a tmpfs mount (root)", tmpfs("2M")) else {
        return;
    };
    let out = fs.mnt.join("images");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("boot.img"), b"an earlier output").unwrap();
    let r = romkit()
        .args(["unpack", "--no-space-check", "--force", "-o"])
        .arg(&out)
        .arg(sample())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(4), "{err}");
    assert!(err.contains("No space left"), "{err}");
    assert_eq!(entries(&out), vec!["boot.img".to_string()]);
    assert_eq!(
        std::fs::read(out.join("boot.img")).unwrap(),
        b"an earlier output"
    );

    for format in ["fastboot", "ota"] {
        let r = romkit()
            .args(["build", "--no-space-check", "--profile", "minimal"])
            .args(["--format", format, "-o"])
            .arg(fs.mnt.join("out.zip"))
            .arg(sample())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(4), "{format}: {err}");
        assert_eq!(entries(&fs.mnt), vec!["images".to_string()], "{format}");
    }
}

#[test]
fn input_shrinking_mid_run_fails_cleanly() {
    let src = tempfile::tempdir().unwrap();
    let pkg = big_package();
    let len = std::fs::metadata(pkg).unwrap().len();
    for (cmd, args) in [
        ("unpack", vec!["-j", "1", "unpack", "-o"]),
        (
            "build",
            vec!["-j", "1", "build", "--profile", "minimal", "-o"],
        ),
    ] {
        let work = src.path().join(format!("copy-{cmd}.zip"));
        std::fs::copy(pkg, &work).unwrap();
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let target = if cmd == "build" {
            out.join("x.zip")
        } else {
            out.clone()
        };
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("romkit"))
            .args(&args)
            .arg(&target)
            .arg(&work)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if !wait_for_new_entry(&out, &[], &mut child) {
            panic!("{cmd} ended before writing anything");
        }
        // Freeze it, cut the input to a third, let it run on.
        signal(&child, libc_sigstop());
        let f = std::fs::OpenOptions::new().write(true).open(&work).unwrap();
        f.set_len(len / 3).unwrap();
        drop(f);
        signal(&child, libc_sigcont());
        let r = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        let code = r.status.code();
        assert!(
            matches!(code, Some(1) | Some(3) | Some(4)),
            "{cmd}: exit {code:?}: {err}"
        );
        assert!(err.contains(&work.display().to_string()), "{cmd}: {err}");
        assert!(entries(&out).is_empty(), "{cmd}: {:?}", entries(&out));
    }
}

fn libc_sigstop() -> i32 {
    19
}

fn libc_sigcont() -> i32 {
    18
}

#[test]
fn sigint_and_sigterm_mid_unpack_keep_earlier_outputs() {
    let pkg = big_package();
    for (sig, code) in [(2, 130), (15, 143)] {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        // Earlier outputs: the sample's images and a file of the user's.
        romkit()
            .args(["unpack", "-o"])
            .arg(&out)
            .arg(sample())
            .assert()
            .success();
        std::fs::write(out.join("notes.txt"), b"mine").unwrap();
        let before = read_dir_files(&out);
        let names: Vec<String> = before.iter().map(|(n, _)| n.clone()).collect();
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("romkit"))
            .args(["-j", "1", "unpack", "--force", "-o"])
            .arg(&out)
            .arg(pkg)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if !wait_for_new_entry(&out, &names, &mut child) {
            panic!("unpack ended before writing anything");
        }
        std::thread::sleep(Duration::from_millis(50));
        signal(&child, sig);
        let r = child.wait_with_output().unwrap();
        assert_eq!(
            r.status.code(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(String::from_utf8_lossy(&r.stderr).contains("temporary files removed"));
        assert!(
            read_dir_files(&out) == before,
            "signal {sig}: the output folder changed: {:?}",
            entries(&out)
        );
    }
}

/// Bytes in use on the filesystem of `dir`.
fn used_bytes(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=used"])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().nth(1).unwrap().trim().parse().unwrap()
}

#[test]
fn an_erofs_write_failure_exits_alike_from_build_and_pack() {
    // What the decoded images take on a tmpfs (holes included), so that a
    // build's decode fits and its first rebuilt partition does not.
    let Some(big) = need("a tmpfs mount (root)", tmpfs("1G")) else {
        return;
    };
    let tree = tempfile::tempdir().unwrap();
    romkit()
        .args(["unpack", "--files", "--partitions", "system", "-o"])
        .arg(tree.path())
        .arg(sample())
        .assert()
        .success();
    romkit()
        .args(["unpack", "--no-space-check", "-o"])
        .arg(big.mnt.join("images"))
        .arg(sample())
        .assert()
        .success();
    let decoded = used_bytes(&big.mnt);
    drop(big);

    let fs = tmpfs(&format!("{}", decoded + (64 << 10))).expect("a tmpfs mount");
    // `--repack`: the EROFS writer, not the in-place editor, must fail here.
    let r = romkit()
        .args([
            "build",
            "--repack",
            "--no-space-check",
            "--profile",
            "minimal",
        ])
        .args(["--format", "images", "-o"])
        .arg(fs.mnt.join("out"))
        .arg(sample())
        .output()
        .unwrap();
    let build_err = String::from_utf8_lossy(&r.stderr).into_owned();
    let build_code = r.status.code();
    assert!(build_err.contains("writing image"), "{build_err}");
    assert!(entries(&fs.mnt).is_empty(), "{:?}", entries(&fs.mnt));
    drop(fs);

    let fs = tmpfs("256K").expect("a tmpfs mount");
    let r = romkit()
        .arg("pack")
        .arg(tree.path().join("system"))
        .arg("-o")
        .arg(fs.mnt.join("system.img"))
        .output()
        .unwrap();
    let pack_err = String::from_utf8_lossy(&r.stderr);
    assert!(pack_err.contains("writing image"), "{pack_err}");
    assert!(entries(&fs.mnt).is_empty(), "{:?}", entries(&fs.mnt));

    assert_eq!(build_code, Some(4), "{build_err}");
    assert_eq!(
        r.status.code(),
        build_code,
        "pack: {pack_err}\nbuild: {build_err}"
    );
}

#[test]
fn erofs_write_errors_map_to_one_exit_code_each() {
    use romkit::fs::erofs::writer::WriteError;
    let img = Path::new("out.img");
    let io = WriteError::Io {
        context: "writing image".into(),
        source: std::io::Error::from_raw_os_error(28),
    };
    let e = io.into_error(img, "in:system");
    assert_eq!(e.exit_code(), 4);
    assert!(e.to_string().starts_with("out.img: writing image: "), "{e}");
    let unrepresentable = WriteError::Unrepresentable {
        path: "/a".into(),
        why: "inode with its xattrs takes 5000 bytes, more than a block".into(),
    };
    let e = unrepresentable.into_error(img, "in:system");
    assert_eq!(e.exit_code(), 3);
    assert!(e.to_string().starts_with("in:system: /a: "), "{e}");
}

#[test]
fn a_tree_erofs_cannot_hold_exits_3_from_pack() {
    let dir = tempfile::tempdir().unwrap();
    romkit()
        .args(["unpack", "--files", "--partitions", "system", "-o"])
        .arg(dir.path())
        .arg(sample())
        .assert()
        .success();
    // A label so long that the inode and its xattrs cannot fit a block.
    let fc = dir.path().join("config/system_file_contexts");
    let text = std::fs::read_to_string(&fc).unwrap();
    let label = format!("u:object_r:{}:s0", "x".repeat(5000));
    let edited: String = text
        .lines()
        .map(|l| match l.split_once(' ') {
            Some(("/system/bin", _)) => format!("/system/bin {label}\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    assert_ne!(edited, text, "the sidecar lists /system/bin");
    std::fs::write(&fc, edited).unwrap();
    let r = romkit()
        .arg("pack")
        .arg(dir.path().join("system"))
        .arg("-o")
        .arg(dir.path().join("out.img"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(3), "{err}");
    assert!(err.contains("more than a block"), "{err}");
    assert!(!dir.path().join("out.img").exists());
}

#[test]
fn interrupted_inspect_manifest_leaves_no_temporary_folder() {
    let pkg = big_package();
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("romkit"))
        .args(["-j", "1", "inspect", "--manifest"])
        .arg(pkg)
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if !wait_for_new_entry(tmp.path(), &[], &mut child) {
        panic!("inspect --manifest ended before making its temporary folder");
    }
    std::thread::sleep(Duration::from_millis(50));
    signal(&child, 2);
    let r = child.wait_with_output().unwrap();
    assert_eq!(
        r.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(entries(tmp.path()), Vec::<String>::new());
}

#[test]
fn a_bad_source_date_epoch_is_the_same_usage_error_everywhere() {
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    let runs: Vec<Vec<std::ffi::OsString>> = vec![
        vec![
            "build".into(),
            sample().into(),
            "--profile".into(),
            "minimal".into(),
            "-o".into(),
            d.path().join("b.zip").into(),
        ],
        vec![
            "pack".into(),
            tree.clone().into(),
            "-o".into(),
            d.path().join("p.img").into(),
        ],
        vec![
            "fastboot".into(),
            sample().into(),
            "-o".into(),
            d.path().join("f.zip").into(),
        ],
        vec!["inspect".into(), "--manifest".into(), sample().into()],
    ];
    for args in runs {
        let out = romkit()
            .args(&args)
            .env("SOURCE_DATE_EPOCH", "last tuesday")
            .assert()
            .code(2)
            .get_output()
            .clone();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("SOURCE_DATE_EPOCH=\"last tuesday\" is not a number"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(entries(d.path()), vec!["tree".to_string()]);
}
