//! Fastboot packages: written from the sample OTA, read back (zip, tgz,
//! folder, split super), official-style tgz layout, hostile archives.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use predicates::prelude::*;

/// The sample OTA unpacked (reference images).
fn ota_images(dir: &Path) -> PathBuf {
    let out = dir.join("ota");
    romkit()
        .args(["unpack", "-o"])
        .arg(&out)
        .arg(sample())
        .assert()
        .success();
    out
}

fn assert_same_images(a: &Path, b: &Path) {
    let x = read_dir_files(a);
    let y = read_dir_files(b);
    assert_eq!(
        x.iter().map(|f| &f.0).collect::<Vec<_>>(),
        y.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for (f, g) in x.iter().zip(&y) {
        assert!(f.1 == g.1, "{} differs", f.0);
    }
}

#[test]
fn ota_as_fastboot_zip_tgz_and_folder_unpack_identically() {
    let dir = tempfile::tempdir().unwrap();
    let reference = ota_images(dir.path());
    for (out, extra) in [
        ("fb.zip", vec!["--split", "1M"]),
        ("fb.tgz", vec![]),
        ("fbdir", vec!["--split", "700K"]),
    ] {
        let pkg = dir.path().join(out);
        romkit()
            .arg("fastboot")
            .args(&extra)
            .arg("-o")
            .arg(&pkg)
            .arg(sample())
            .assert()
            .success();
        // A folder package is opened through its (split) super image.
        let target = if pkg.is_dir() {
            pkg.join("images/super.img.0")
        } else {
            pkg.clone()
        };
        let x = dir.path().join(format!("x-{out}"));
        romkit()
            .args(["unpack", "-o"])
            .arg(&x)
            .arg(&target)
            .assert()
            .success();
        if pkg.is_dir() {
            for n in ["system", "system_ext", "product", "vendor", "odm", "mi_ext"] {
                assert_eq!(
                    std::fs::read(x.join(format!("{n}.img"))).unwrap(),
                    std::fs::read(reference.join(format!("{n}.img"))).unwrap(),
                    "{n}"
                );
            }
        } else {
            assert_same_images(&x, &reference);
        }
        if !pkg.is_dir() {
            romkit().arg("verify").arg(&pkg).assert().success();
            romkit()
                .args(["cat"])
                .arg(&pkg)
                .arg("system/system/build.prop")
                .assert()
                .success()
                .stdout(predicate::str::contains("ro.build"));
        }
    }
    // Deterministic: the same input gives the same bytes.
    let again = dir.path().join("again.zip");
    romkit()
        .args(["fastboot", "--split", "1M", "-o"])
        .arg(&again)
        .arg(sample())
        .assert()
        .success();
    assert!(std::fs::read(&again).unwrap() == std::fs::read(dir.path().join("fb.zip")).unwrap());
    // The zip is a fastboot package in every respect, so it converts again.
    let twice = dir.path().join("twice.tgz");
    romkit()
        .args(["fastboot", "-o"])
        .arg(&twice)
        .arg(dir.path().join("fb.zip"))
        .assert()
        .success();
    let x = dir.path().join("x-twice");
    romkit()
        .args(["unpack", "-o"])
        .arg(&x)
        .arg(&twice)
        .assert()
        .success();
    assert_same_images(&x, &reference);
}

#[test]
fn install_scripts_check_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("fb");
    romkit()
        .args(["fastboot", "--split", "1M", "-o"])
        .arg(&pkg)
        .arg(sample())
        .assert()
        .success();
    for name in ["flash_all.sh", "flash_all_except_storage.sh"] {
        let text = std::fs::read_to_string(pkg.join(name)).unwrap();
        assert!(text.contains("getvar product"), "{name}");
        assert!(text.contains("^product: *fuxi *$"), "{name}");
        assert!(text.contains("flash super images/super.img.0"), "{name}");
        assert!(text.contains("flash super images/super.img.1"), "{name}");
        assert!(text.contains("flash boot_ab images/boot.img"), "{name}");
        assert_eq!(text.contains("erase userdata"), name == "flash_all.sh");
        run_ok(Command::new("sh").arg("-n").arg(pkg.join(name)));
    }
    for name in ["flash_all.bat", "flash_all_except_storage.bat"] {
        let text = std::fs::read_to_string(pkg.join(name)).unwrap();
        assert!(text.contains("\r\n"));
        assert!(text.contains("findstr /r /c:\"^product: *fuxi *$\""));
        assert!(text.contains("images\\super.img.0"));
        assert_eq!(text.contains("erase userdata"), name == "flash_all.bat");
    }
    // A fake fastboot on PATH: the device check stops a mismatching device.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.path().join("log");
    let fake = format!(
        "#!/bin/sh\necho \"$@\" >> {}\nif [ \"$1\" = getvar ]; then echo \"product: $FAKE_PRODUCT\" >&2; fi\n",
        log.display()
    );
    std::fs::write(bin.join("fastboot"), fake).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("fastboot"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let st = Command::new("sh")
        .arg(pkg.join("flash_all.sh"))
        .env("PATH", &path)
        .env("FAKE_PRODUCT", "ishtar")
        .output()
        .unwrap();
    assert!(!st.status.success());
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "getvar product\n");
    std::fs::remove_file(&log).unwrap();
    let st = Command::new("sh")
        .arg(pkg.join("flash_all_except_storage.sh"))
        .env("PATH", &path)
        .env("FAKE_PRODUCT", "fuxi")
        .output()
        .unwrap();
    assert!(st.status.success());
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(calls.contains("flash super images/super.img.0"));
    assert!(!calls.contains("erase"));
    assert!(calls.ends_with("reboot\n"));
}

/// Writes a tgz with the official layout (`DEVICE_images_…/images/…`) from
/// a fastboot folder.
fn official_tgz(folder: &Path, dest: &Path, top: &str) {
    let f = std::fs::File::create(dest).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut t = tar::Builder::new(gz);
    for rel in listing(folder) {
        t.append_path_with_name(folder.join(&rel), format!("{top}/{rel}"))
            .unwrap();
    }
    t.into_inner().unwrap().finish().unwrap();
}

#[test]
fn official_style_tgz_reads_like_the_ota() {
    let dir = tempfile::tempdir().unwrap();
    let reference = ota_images(dir.path());
    let folder = dir.path().join("fb");
    romkit()
        .args(["fastboot", "-o"])
        .arg(&folder)
        .arg(sample())
        .assert()
        .success();
    let top = "fuxi_images_OS1.0.24.0.UMCCNXM_20240115.0000.00_14.0_cn";
    let tgz = dir.path().join(format!("{top}_6dc3ae67d6.tgz"));
    official_tgz(&folder, &tgz, top);
    let v = json_ok(&["inspect", "--json"], &tgz);
    assert_eq!(v["kind"], "fastboot-tgz");
    assert_eq!(v["build"]["version"], "OS1.0.24.0.UMCCNXM");
    assert_eq!(v["build"]["device"], "fuxi");
    assert_eq!(v["build"]["android"], "14");
    assert_eq!(v["super"]["metadata_version"], "10.2");
    let names: Vec<&str> = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"system") && names.contains(&"boot"),
        "{names:?}"
    );
    let ls = romkit().arg("ls").arg(&tgz).assert().success();
    assert!(String::from_utf8_lossy(&ls.get_output().stdout).contains("vendor/"));
    romkit().arg("verify").arg(&tgz).assert().success();
    let x = dir.path().join("x");
    romkit()
        .args(["unpack", "-o"])
        .arg(&x)
        .arg(&tgz)
        .assert()
        .success();
    assert_same_images(&x, &reference);
    // No spool folder is left beside the output.
    assert!(
        std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with(".romkit"))
    );
    romkit()
        .args(["unpack", "-p", "vendor,boot", "-o"])
        .arg(dir.path().join("y"))
        .arg(&tgz)
        .assert()
        .success();
    assert_eq!(listing(&dir.path().join("y")), ["boot.img", "vendor.img"]);
}

/// A tgz made by Python's tarfile, which writes what it is told.
fn python_tgz(dest: &Path, script: &str) -> bool {
    let code = format!(
        "import tarfile, io, sys\nt = tarfile.open(sys.argv[1], 'w:gz')\ndef add(name, data=b'x', kind=tarfile.REGTYPE, link=''):\n    i = tarfile.TarInfo(name); i.type = kind; i.linkname = link; i.size = len(data) if kind == tarfile.REGTYPE else 0\n    t.addfile(i, io.BytesIO(data) if kind == tarfile.REGTYPE else None)\n{script}\nt.close()\n"
    );
    Command::new("python3")
        .args(["-c", &code])
        .arg(dest)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn hostile_tgz_entries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let img = "b'\\0' * 8192";
    for (name, script, msg) in [
        (
            "dotdot.tgz",
            format!("add('pkg/images/boot.img', {img})\nadd('pkg/../../evil.img', {img})"),
            "'..' path",
        ),
        (
            "abs.tgz",
            format!("add('/etc/images/boot.img', {img})"),
            "absolute",
        ),
        (
            "symlink.tgz",
            format!(
                "add('pkg/images/boot.img', {img})\nadd('pkg/images/system.img', kind=tarfile.SYMTYPE, link='/etc/passwd')"
            ),
            "is a link",
        ),
        (
            "hardlink.tgz",
            format!(
                "add('pkg/images/boot.img', {img})\nadd('pkg/images/x.img', kind=tarfile.LNKTYPE, link='../../x')"
            ),
            "is a link",
        ),
    ] {
        let p = dir.path().join(name);
        if !python_tgz(&p, &script) {
            eprintln!("SKIP: python3 cannot write {name}");
            return;
        }
        let out = dir.path().join("out");
        romkit()
            .args(["unpack", "-o"])
            .arg(&out)
            .arg(&p)
            .assert()
            .code(3)
            .stderr(predicate::str::contains(name))
            .stderr(predicate::str::contains(msg));
        assert!(!out.exists());
    }
    assert!(!dir.path().join("evil.img").exists());
    // A truncated tgz: invalid input, nothing written.
    let good = dir.path().join("good.tgz");
    assert!(python_tgz(
        &good,
        &format!("add('pkg/images/boot.img', {img})")
    ));
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.tgz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    romkit()
        .args(["unpack", "-o"])
        .arg(dir.path().join("o2"))
        .arg(&cut)
        .assert()
        .code(3);
}
