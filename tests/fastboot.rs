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
    // The update keeps user data; boot is erased first, as in Xiaomi's scripts.
    assert!(!calls.contains("erase userdata") && !calls.contains("erase metadata"));
    assert!(calls.contains("\nerase boot_ab\n"));
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

/// A fake `fastboot` in `dir/bin` that logs each call to `dir/log` and
/// answers `getvar product/anti/crc/rollback_ver` from FAKE_PRODUCT,
/// FAKE_ANTI, FAKE_CRC and FAKE_ROLLBACK. Returns the PATH to run scripts with.
fn fake_fastboot(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = format!(
        "#!/bin/sh\necho \"$*\" >> {}\ncase \"$1 $2\" in\n  \"getvar product\") echo \"product: $FAKE_PRODUCT\" >&2 ;;\n  \"getvar anti\") if [ -n \"$FAKE_ANTI\" ]; then echo \"anti: $FAKE_ANTI\" >&2; fi ;;\n  \"getvar crc\") echo \"crc: ${{FAKE_CRC:-0}}\" >&2 ;;\n  \"getvar rollback_ver\") if [ -n \"$FAKE_ROLLBACK\" ]; then echo \"rollback_ver: $FAKE_ROLLBACK\" >&2; fi ;;\nesac\nexit 0\n",
        dir.join("log").display()
    );
    std::fs::write(bin.join("fastboot"), fake).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("fastboot"), std::fs::Permissions::from_mode(0o755)).unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs `script` against the fake fastboot; returns (success, calls).
fn run_script(dir: &Path, path: &str, script: &Path, env: &[(&str, &str)]) -> (bool, Vec<String>) {
    let log = dir.join("log");
    let _ = std::fs::remove_file(&log);
    let mut cmd = Command::new("sh");
    cmd.arg(script).env("PATH", path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let st = cmd.output().unwrap();
    let calls = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    (st.status.success(), calls)
}

/// The fastboot commands of the Windows script beside `sh` (`flash_all.bat`
/// for `flash_all.sh`, `windows_…` for `linux_…`/`macos_…`), in the order
/// its lines hold them (every branch taken), as the fake fastboot logs
/// them; they must be the `calls` of the `.sh` run that took every branch.
fn assert_bat_matches(sh: &Path, calls: &[String]) {
    let name = sh.file_name().unwrap().to_string_lossy();
    let name = name
        .replacen("linux_", "windows_", 1)
        .replacen("macos_", "windows_", 1)
        .replace(".sh", ".bat");
    let text = std::fs::read_to_string(sh.with_file_name(&name)).unwrap();
    let mut got = Vec::new();
    for line in text.split("\r\n") {
        for (i, _) in line.match_indices("fastboot %* ") {
            let rest = &line[i + "fastboot %* ".len()..];
            let end = [" 2>&1", " 2^>", " ||", " |", "'", ")"]
                .iter()
                .filter_map(|m| rest.find(m))
                .min()
                .unwrap_or(rest.len());
            got.push(rest[..end].trim().replace('\\', "/"));
        }
    }
    assert_eq!(got, calls, "{name}");
}

fn shellcheck_all(scripts: &[PathBuf]) {
    let found = Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if need("shellcheck", found.then_some(())).is_none() {
        return;
    }
    for s in scripts {
        run_ok(Command::new("shellcheck").arg(s));
    }
}

/// The CRC lists of the package folder `pkg`, checked with Python's zlib
/// (independently of romkit): crclist entries are the CRC-32 of the file,
/// sparsecrclist entries that of the data each sparse file writes (the
/// test images are far below one 768 MiB download).
fn python_checks_crc_lists(pkg: &Path, files: &[(&str, &str)]) {
    let Some(py) = python_with(&["zlib"]) else {
        return;
    };
    let map: String = files
        .iter()
        .map(|(p, f)| format!("'{p}': ['{f}'],"))
        .collect();
    let code = format!(
        r#"
import os, struct, sys, zlib
root = sys.argv[1]
files = {{{map}}}
def path_of(p):
    if p in files: return files[p]
    img = 'images/%s.img' % p
    if os.path.exists(os.path.join(root, img)): return [img]
    parts = sorted((f for f in os.listdir(os.path.join(root, 'images')) if f.startswith(p + '.img.')), key=lambda f: int(f.rsplit('.', 1)[1]))
    return ['images/' + f for f in parts]
def sparse_crc(data):
    magic, _, _, fhs, chs, bs, blocks, chunks, _ = struct.unpack('<I4H4I', data[:28])
    assert magic == 0xED26FF3A
    at, crc = fhs, 0
    for _ in range(chunks):
        kind, _, n, total = struct.unpack('<2H2I', data[at:at+12])
        body = data[at+chs:at+total]
        if kind == 0xCAC1: crc = zlib.crc32(body, crc)
        elif kind == 0xCAC2: crc = zlib.crc32(body * (bs // 4) * n, crc)
        at += total
    return crc
lines = open(os.path.join(root, 'images/crclist.txt')).read().split('\n')
assert lines[0] == 'CRC-LIST', lines[0]
n = 0
for l in filter(None, lines[1:]):
    p, c = l.split()
    [f] = path_of(p)
    want = zlib.crc32(open(os.path.join(root, f), 'rb').read())
    assert int(c, 16) == want, (p, c, hex(want))
    n += 1
lines = open(os.path.join(root, 'images/sparsecrclist.txt')).read().split('\n')
assert lines[0] == 'SPARSECRC-LIST', lines[0]
for l in filter(None, lines[1:]):
    w = l.split()
    got = [sparse_crc(open(os.path.join(root, f), 'rb').read()) for f in path_of(w[0])]
    assert int(w[1]) == len(got) and [int(x, 16) for x in w[2:]] == got, (w, [hex(x) for x in got])
    n += 1
assert n >= 3, n
print('ok', n)
"#
    );
    let out = run_ok(Command::new(&py).args(["-c", &code]).arg(pkg));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok"));
}

/// The package folder's `md5sum.xml` checked with Python's ElementTree and
/// hashlib: one MD5 digest per file of `images/`, each right, the rest of
/// the document kept.
fn python_checks_md5sum(pkg: &Path) {
    let Some(py) = python_with(&["hashlib"]) else {
        return;
    };
    let code = r#"
import hashlib, os, sys, xml.etree.ElementTree as ET
root = sys.argv[1]
doc = ET.parse(os.path.join(root, 'md5sum.xml')).getroot()
assert doc.tag == 'root' and doc.find('security-patch-level/level').text == '2024-01-01'
got = {d.get('name'): d.text for d in doc.find('digests') if d.get('hash') == 'md5'}
images = os.path.join(root, 'images')
files = sorted(f for f in os.listdir(images) if os.path.isfile(os.path.join(images, f)))
assert sorted(got) == files, (sorted(got), files)
for f in files:
    want = hashlib.md5(open(os.path.join(images, f), 'rb').read()).hexdigest()
    assert got[f] == want, (f, got[f], want)
print('ok', len(files))
"#;
    let out = run_ok(Command::new(&py).args(["-c", code]).arg(pkg));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok"));
}

/// An official-style package: the generated folder with its scripts
/// replaced by ones shaped like Xiaomi's (anti-rollback, CRC block, erase
/// boot_ab first, firmware, super, vbmeta, erase metadata, boot last), a
/// lock script, anti_version.txt, stale CRC lists, a firmware file and
/// misc.txt.
fn official_folder(dir: &Path) -> PathBuf {
    let folder = dir.join("official");
    romkit()
        .args(["fastboot", "-o"])
        .arg(&folder)
        .arg(sample())
        .assert()
        .success();
    for f in listing(&folder) {
        if f.ends_with(".sh") || f.ends_with(".bat") || f.ends_with("crclist.txt") {
            std::fs::remove_file(folder.join(f)).unwrap();
        }
    }
    std::fs::write(folder.join("images/abl.elf"), noise(7, 40000)).unwrap();
    std::fs::write(folder.join("images/anti_version.txt"), "3\n").unwrap();
    std::fs::write(
        folder.join("images/crclist.txt"),
        "CRC-LIST\nboot 0x1\nabl 0x2\n",
    )
    .unwrap();
    std::fs::write(
        folder.join("images/sparsecrclist.txt"),
        "SPARSECRC-LIST\nsuper 1 0x3\n",
    )
    .unwrap();
    std::fs::write(
        folder.join("misc.txt"),
        "device=fuxi\nbuild_number=OS1.0.24.0.UMCCNXM\n",
    )
    .unwrap();
    // md5sum.xml as Xiaomi's packages carry it (MiFlash checks it), with
    // stale digests and one for a file the package does not have.
    std::fs::write(
        folder.join("md5sum.xml"),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<root>\n  <digests>\n    \
         <digest hash=\"md5\" name=\"boot.img\">2e169a483b7c35d9c2056ae9c7e61469</digest>\n    \
         <digest hash=\"md5\" name=\"cust.img\">03b39b71267428b46c11f5052385d482</digest>\n    \
         <digest hash=\"md5\" name=\"abl.elf\">fb7f517fb46757282f409dc2a8a0719b</digest>\n  \
         </digests>\n  <security-patch-level>\n    <level>2024-01-01</level>\n  </security-patch-level>\n</root>\n",
    )
    .unwrap();
    let step = |cmd: &str, what: &str| {
        format!("fastboot $* {cmd}\nif [ $? -ne 0 ] ; then echo \"{what} error\"; exit 1; fi\n")
    };
    let head = "fastboot $* getvar product 2>&1 | grep \"^product: *fuxi\"\n\
        if [ $? -ne 0  ] ; then echo \"Missmatching image and device\"; exit 1; fi\n\
        #check anti_version\n\
        if [ -e $(dirname $0)/images/anti_version.txt ]; then\n\
        CURRENT_ANTI_VER=`cat $(dirname $0)/images/anti_version.txt`\nfi\n\
        if [ -z \"$CURRENT_ANTI_VER\" ]; then CURRENT_ANTI_VER=0; fi\n\
        ver=`fastboot $* getvar anti 2>&1 | grep -oP \"anti: \\K[0-9]+\"`\n\
        if [ -z \"$ver\" ]; then ver=0; fi\n\
        if [ $ver -gt $CURRENT_ANTI_VER ]; then echo \"anti error\"; exit 1; fi\n\
        fastboot $* getvar crc 2>&1 | grep \"^crc: 1\"\nif [ $? -eq 0 ]; then\n"
        .to_string()
        + &step("flash crclist `dirname $0`/images/crclist.txt", "crclist")
        + &step(
            "flash sparsecrclist `dirname $0`/images/sparsecrclist.txt",
            "sparsecrclist",
        )
        + "fi\n";
    let body = |wipe: bool, lock: bool| {
        let mut s = head.clone();
        for (cmd, what) in [
            ("erase boot_ab", "Erase boot"),
            ("flash abl_ab `dirname $0`/images/abl.elf", "abl"),
            ("flash super `dirname $0`/images/super.img", "super"),
            (
                "flash vendor_boot_ab `dirname $0`/images/vendor_boot.img",
                "vendor_boot",
            ),
            ("flash dtbo_ab `dirname $0`/images/dtbo.img", "dtbo"),
            ("flash vbmeta_ab `dirname $0`/images/vbmeta.img", "vbmeta"),
        ] {
            s += &step(cmd, what);
        }
        if wipe {
            s += &step("erase metadata", "Erase metadata");
        }
        s += "#fastboot $* flash modemfirmware_ab `dirname $0`/images/MODEM-FW.bin\n";
        s += &step("flash boot_ab `dirname $0`/images/boot.img", "boot");
        if lock {
            s += &step("oem lock", "lock");
        }
        s += &step("set_active a", "set_active");
        s += &step("reboot", "reboot");
        s
    };
    for (name, wipe, lock) in [
        ("flash_all", true, false),
        ("flash_all_except_storage", false, false),
        ("flash_all_lock", true, true),
    ] {
        std::fs::write(folder.join(format!("{name}.sh")), body(wipe, lock)).unwrap();
        std::fs::write(
            folder.join(format!("{name}.bat")),
            body(wipe, lock).replace('\n', "\r\n"),
        )
        .unwrap();
    }
    folder
}

#[test]
fn official_package_keeps_its_checks_and_order_and_loses_its_lock_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let folder = official_folder(dir.path());
    let top = "fuxi_images_OS1.0.24.0.UMCCNXM_20240115.0000.00_14.0_cn";
    let tgz = dir.path().join(format!("{top}.tgz"));
    official_tgz(&folder, &tgz, top);
    // romkit reports the input's anti version and lock scripts; its stale
    // CRC lists fail.
    let v = romkit()
        .args(["verify", "--json"])
        .arg(&tgz)
        .assert()
        .code(1);
    let v: serde_json::Value = serde_json::from_slice(&v.get_output().stdout).unwrap();
    let checks = v["checks"].as_array().unwrap();
    let find = |name: &str| checks.iter().find(|c| c["check"] == name).cloned();
    assert_eq!(find("anti-rollback version").unwrap()["kind"], "info");
    assert_eq!(
        find("lock script flash_all_lock.sh").unwrap()["kind"],
        "info"
    );
    assert_eq!(find("images/crclist.txt boot").unwrap()["status"], "failed");
    assert_eq!(find("md5sum.xml boot.img").unwrap()["status"], "failed");
    assert_eq!(find("md5sum.xml cust.img").unwrap()["status"], "failed");

    let out = dir.path().join("out");
    let r = romkit()
        .args(["--json", "fastboot", "-o"])
        .arg(&out)
        .arg(&tgz)
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&r.get_output().stdout).unwrap();
    assert_eq!(v["official_sequence"], true, "{v}");
    assert_eq!(v["anti_version"], "3");
    assert_eq!(
        v["dropped"],
        serde_json::json!(["flash_all_lock.bat", "flash_all_lock.sh"])
    );
    let files = listing(&out);
    assert!(!files.iter().any(|f| f.contains("lock")), "{files:?}");
    for f in ["images/abl.elf", "images/anti_version.txt", "misc.txt"] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(folder.join(f)).unwrap(),
            "{f}"
        );
    }
    // Text report says so too.
    let text = romkit()
        .args(["fastboot", "-o"])
        .arg(dir.path().join("out2.zip"))
        .arg(&tgz)
        .assert()
        .success();
    let text = String::from_utf8_lossy(&text.get_output().stdout).into_owned();
    assert!(
        text.contains("dropped: flash_all_lock.sh (lock script)"),
        "{text}"
    );
    assert!(text.contains("anti-rollback: checked against 3"), "{text}");

    python_checks_crc_lists(&out, &[("abl", "images/abl.elf")]);
    python_checks_md5sum(&out);

    // Every script against a fake device.
    let path = fake_fastboot(dir.path());
    let scripts: Vec<PathBuf> = ["flash_all.sh", "flash_all_except_storage.sh"]
        .iter()
        .map(|s| out.join(s))
        .collect();
    shellcheck_all(&scripts);
    let checks = ["getvar product", "getvar anti", "getvar crc"];
    let lists = [
        "flash crclist images/crclist.txt",
        "flash sparsecrclist images/sparsecrclist.txt",
    ];
    for (script, wipe) in scripts.iter().zip([true, false]) {
        let (ok, calls) = run_script(dir.path(), &path, script, &[("FAKE_PRODUCT", "ishtar")]);
        assert!(!ok);
        assert_eq!(calls, ["getvar product"]);
        let (ok, calls) = run_script(
            dir.path(),
            &path,
            script,
            &[("FAKE_PRODUCT", "fuxi"), ("FAKE_ANTI", "4")],
        );
        assert!(!ok);
        assert_eq!(calls, ["getvar product", "getvar anti"]);
        let (ok, calls) = run_script(
            dir.path(),
            &path,
            script,
            &[
                ("FAKE_PRODUCT", "fuxi"),
                ("FAKE_ANTI", "3"),
                ("FAKE_CRC", "1"),
            ],
        );
        assert!(ok);
        let mut want: Vec<&str> = checks.iter().chain(&lists).copied().collect();
        want.extend([
            "erase boot_ab",
            "flash abl_ab images/abl.elf",
            "flash super images/super.img",
            "flash vendor_boot_ab images/vendor_boot.img",
            "flash dtbo_ab images/dtbo.img",
            "flash vbmeta_ab images/vbmeta.img",
        ]);
        if wipe {
            want.push("erase metadata");
        }
        want.extend(["flash boot_ab images/boot.img", "set_active a", "reboot"]);
        assert_eq!(calls, want, "{}", script.display());
        assert_bat_matches(script, &calls);
        // Without CRC checking in the bootloader the lists are not flashed.
        let (ok, calls) = run_script(dir.path(), &path, script, &[("FAKE_PRODUCT", "fuxi")]);
        assert!(ok);
        assert!(!calls.iter().any(|c| c.contains("crclist")));
    }
    for bat in ["flash_all.bat", "flash_all_except_storage.bat"] {
        let t = std::fs::read_to_string(out.join(bat)).unwrap();
        for needle in [
            "getvar product",
            "getvar anti",
            "anti_version.txt",
            "getvar crc",
            "flash crclist",
        ] {
            assert!(t.contains(needle), "{bat}: {needle}");
        }
        assert!(t.find("erase boot_ab").unwrap() < t.find("flash abl_ab").unwrap());
    }

    // A package whose CRC list no longer matches: verify fails naming it.
    romkit()
        .arg("verify")
        .arg(out.join("images/super.img"))
        .assert()
        .success();
    let again = dir.path().join(format!("{top}-again.tgz"));
    official_tgz(&out, &again, top);
    romkit().arg("verify").arg(&again).assert().success();
    let list = out.join("images/crclist.txt");
    let text = std::fs::read_to_string(&list).unwrap();
    let dtbo = text
        .lines()
        .find(|l| l.starts_with("dtbo "))
        .unwrap()
        .to_string();
    std::fs::write(&list, text.replace(&dtbo, "dtbo 0xdeadbeef")).unwrap();
    let bad = dir.path().join("bad.tgz");
    official_tgz(&out, &bad, top);
    romkit()
        .arg("verify")
        .arg(&bad)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("partition dtbo"));
}

#[test]
fn xiaomi_eu_style_has_its_scripts_split_super_and_readme() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("eu");
    romkit()
        .args(["fastboot", "--style", "xiaomi-eu", "--split", "1M", "-o"])
        .arg(&pkg)
        .arg(sample())
        .assert()
        .success();
    let files = listing(&pkg);
    for f in [
        "README.txt",
        "windows_fastboot_first_install_with_data_format.bat",
        "windows_fastboot_update_rom.bat",
        "linux_fastboot_first_install_with_data_format.sh",
        "linux_fastboot_update_rom.sh",
        "macos_fastboot_first_install_with_data_format.sh",
        "macos_fastboot_update_rom.sh",
        "images/super.img.0",
        "images/super.img.1",
    ] {
        assert!(files.contains(&f.to_string()), "{f}: {files:?}");
    }
    assert!(!files.iter().any(|f| f.starts_with("flash_all")));
    python_checks_crc_lists(&pkg, &[]);
    let path = fake_fastboot(dir.path());
    let scripts: Vec<PathBuf> = files
        .iter()
        .filter(|f| f.ends_with(".sh"))
        .map(|f| pkg.join(f))
        .collect();
    assert_eq!(scripts.len(), 4);
    shellcheck_all(&scripts);
    for s in &scripts {
        let wipe = s.to_string_lossy().contains("first_install");
        let (ok, calls) = run_script(dir.path(), &path, s, &[("FAKE_PRODUCT", "ishtar")]);
        assert!(!ok);
        assert_eq!(calls, ["getvar product"]);
        let (ok, calls) = run_script(
            dir.path(),
            &path,
            s,
            &[("FAKE_PRODUCT", "fuxi"), ("FAKE_CRC", "1")],
        );
        assert!(ok);
        let mut want = vec![
            "getvar product",
            "getvar crc",
            "flash crclist images/crclist.txt",
            "flash sparsecrclist images/sparsecrclist.txt",
            "erase boot_ab",
            "flash dtbo_ab images/dtbo.img",
            "flash vendor_boot_ab images/vendor_boot.img",
        ];
        let supers: Vec<String> = files
            .iter()
            .filter(|f| f.starts_with("images/super.img."))
            .map(|f| format!("flash super {f}"))
            .collect();
        want.extend(supers.iter().map(String::as_str));
        if wipe {
            want.extend(["erase metadata", "erase userdata"]);
        }
        want.extend([
            "flash vbmeta_ab images/vbmeta.img",
            "flash boot_ab images/boot.img",
            "set_active a",
            "reboot",
        ]);
        assert_eq!(calls, want, "{}", s.display());
        assert_bat_matches(s, &calls);
    }
    let readme = std::fs::read_to_string(pkg.join("README.txt")).unwrap();
    assert!(readme.contains("windows_fastboot_update_rom.bat"));
    // As a zip it verifies, CRC lists included.
    let zip = dir.path().join("eu.zip");
    romkit()
        .args(["fastboot", "--style", "xiaomi-eu", "-o"])
        .arg(&zip)
        .arg(sample())
        .assert()
        .success();
    romkit()
        .arg("verify")
        .arg(&zip)
        .assert()
        .success()
        .stdout(predicate::str::contains("sparsecrclist.txt super"));
}

/// The official-style folder as a tgz, after `edit` changed the text of
/// each of its scripts (`.bat`s edited with `\n` line ends) and `anti`
/// replaced `images/anti_version.txt` (`None`: removed).
fn official_variant(
    dir: &Path,
    name: &str,
    edit: impl Fn(&str, &str) -> String,
    anti: Option<&str>,
) -> PathBuf {
    let folder = official_folder(&dir.join(name));
    for f in listing(&folder) {
        if f.ends_with(".sh") || f.ends_with(".bat") {
            let p = folder.join(&f);
            let text = std::fs::read_to_string(&p).unwrap().replace("\r\n", "\n");
            let mut text = edit(&f, &text);
            if f.ends_with(".bat") {
                text = text.replace('\n', "\r\n");
            }
            std::fs::write(&p, text).unwrap();
        }
    }
    let anti_path = folder.join("images/anti_version.txt");
    match anti {
        Some(a) => std::fs::write(&anti_path, a).unwrap(),
        None => std::fs::remove_file(&anti_path).unwrap(),
    }
    let top = "fuxi_images_OS1.0.24.0.UMCCNXM_20240115.0000.00_14.0_cn";
    let tgz = dir.join(format!("{name}.tgz"));
    official_tgz(&folder, &tgz, top);
    tgz
}

/// How the official-style scripts read their anti-rollback version.
const ANTI_FROM_FILE: &str = "if [ -e $(dirname $0)/images/anti_version.txt ]; then\n\
    CURRENT_ANTI_VER=`cat $(dirname $0)/images/anti_version.txt`\nfi\n";

#[test]
fn anti_rollback_in_the_script_and_mediatek_variable_are_carried() {
    // MediaTek-shaped scripts: the version written in the script, the
    // device asked for rollback_ver, no anti_version.txt.
    let dir = tempfile::tempdir().unwrap();
    let tgz = official_variant(
        dir.path(),
        "mtk",
        |_, t| {
            t.replace(ANTI_FROM_FILE, "CURRENT_ANTI_VER=2\n").replace(
                "getvar anti 2>&1 | grep -oP \"anti: \\K[0-9]+\"",
                "getvar rollback_ver 2>&1 | grep \"rollback_ver:\" | awk -F \": \" '{print $2}'",
            )
        },
        None,
    );
    let out = dir.path().join("out");
    let r = romkit()
        .args(["--json", "fastboot", "-o"])
        .arg(&out)
        .arg(&tgz)
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&r.get_output().stdout).unwrap();
    assert_eq!(v["anti_version"], "2", "{v}");
    assert!(
        v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("CURRENT_ANTI_VER")),
        "{v}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("images/anti_version.txt")).unwrap(),
        "2\n"
    );
    let path = fake_fastboot(dir.path());
    let scripts = [
        out.join("flash_all.sh"),
        out.join("flash_all_except_storage.sh"),
    ];
    shellcheck_all(&scripts);
    for script in &scripts {
        let fuxi = ("FAKE_PRODUCT", "fuxi");
        // The device's rollback_ver is what counts, not anti.
        let (ok, calls) = run_script(dir.path(), &path, script, &[fuxi, ("FAKE_ROLLBACK", "3")]);
        assert!(!ok);
        assert_eq!(calls, ["getvar product", "getvar rollback_ver"]);
        let (ok, calls) = run_script(
            dir.path(),
            &path,
            script,
            &[fuxi, ("FAKE_ROLLBACK", "2"), ("FAKE_ANTI", "9")],
        );
        assert!(ok);
        assert_eq!(
            calls[..3],
            ["getvar product", "getvar rollback_ver", "getvar crc"]
        );
        assert!(calls.contains(&"flash boot_ab images/boot.img".to_string()));
    }
    for bat in ["flash_all.bat", "flash_all_except_storage.bat"] {
        let t = std::fs::read_to_string(out.join(bat)).unwrap();
        assert!(t.contains("getvar rollback_ver"), "{bat}");
        assert!(!t.contains("getvar anti"), "{bat}");
    }
}

#[test]
fn an_official_check_romkit_cannot_make_is_refused_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    // Only the Windows script checks the security patch level.
    let tgz = official_variant(
        dir.path(),
        "spl",
        |name, t| {
            if name == "flash_all.bat" {
                t.replace(
                    "fastboot $* erase boot_ab",
                    "fastboot $* getvar security-patch-level 2>&1 | findstr /r /c:\"2024\" || exit /B 1\nfastboot $* erase boot_ab",
                )
            } else {
                t.to_string()
            }
        },
        Some("3\n"),
    );
    let out = dir.path().join("out");
    romkit()
        .args(["fastboot", "-o"])
        .arg(&out)
        .arg(&tgz)
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("flash_all.bat line ")
                .and(predicate::str::contains("security-patch-level"))
                .and(predicate::str::contains("refusing rather than dropping")),
        );
    assert!(!out.exists());
    // build refuses it before any work.
    let built = dir.path().join("built.tgz");
    romkit()
        .args([
            "build",
            "--profile",
            "minimal",
            "--format",
            "fastboot",
            "-o",
        ])
        .arg(&built)
        .arg(&tgz)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("flash_all.bat line "));
    assert!(!built.exists());

    // The scripts and anti_version.txt disagree on the version.
    let tgz = official_variant(
        dir.path(),
        "disagree",
        |_, t| t.replace(ANTI_FROM_FILE, "CURRENT_ANTI_VER=1\n"),
        Some("3\n"),
    );
    romkit()
        .args(["fastboot", "-o"])
        .arg(&out)
        .arg(&tgz)
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("images/anti_version.txt says 3")
                .and(predicate::str::contains("CURRENT_ANTI_VER) says 1")),
        );
    assert!(!out.exists());
}

/// `ImagePackage::sha256s` (the build's output check) hashes each partition
/// where it lies in the zip, split super included, to the SHA-256 of the
/// image `unpack` writes; a damaged byte in a stored entry fails on the
/// entry's CRC-32 before anything is hashed.
#[test]
fn partitions_hash_in_place_as_they_unpack() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let reference = ota_images(dir.path());
    let pkg = dir.path().join("fb.zip");
    romkit()
        .args(["fastboot", "--split", "1M", "-o"])
        .arg(&pkg)
        .arg(sample())
        .assert()
        .success();
    let rom = romkit::rom::Rom::open(&pkg).unwrap();
    let names: Vec<String> = rom.partitions().into_iter().map(|p| p.name).collect();
    let got = rom.images().unwrap().sha256s(&names, dir.path()).unwrap();
    assert_eq!(got.len(), read_dir_files(&reference).len());
    for (name, h) in &got {
        let want: [u8; 32] =
            Sha256::digest(std::fs::read(reference.join(format!("{name}.img"))).unwrap()).into();
        assert_eq!(*h, want, "{name}");
    }
    // One byte of the product partition's data, inside the zip, flipped.
    let mut bytes = std::fs::read(&pkg).unwrap();
    let product = std::fs::read(reference.join("product.img")).unwrap();
    let start = (0..product.len() - 64)
        .step_by(4096)
        .find(|&o| {
            let w = &product[o..o + 64];
            w.iter().collect::<std::collections::BTreeSet<_>>().len() > 32
        })
        .expect("product has varied bytes");
    let probe = &product[start..start + 64];
    let at = bytes
        .windows(probe.len())
        .position(|w| w == probe)
        .expect("product's bytes are stored in the zip");
    bytes[at] ^= 0xff;
    let damaged = dir.path().join("damaged.zip");
    std::fs::write(&damaged, &bytes).unwrap();
    let rom = romkit::rom::Rom::open(&damaged).unwrap();
    let err = rom
        .images()
        .unwrap()
        .sha256s(&names, dir.path())
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("CRC-32") && msg.contains("images/super.img."),
        "{msg}"
    );
}

/// Python's zipfile (independently of romkit) reads the zips romkit writes
/// as they stream: every entry's CRC-32 checks, stored images have their
/// data 4096-aligned, and an entry begun as large carries its sizes in a
/// Zip64 extra field.
#[test]
fn python_reads_streamed_zips() {
    let Some(py) = python_with(&["zipfile"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("fb.zip");
    romkit()
        .args(["fastboot", "--style", "xiaomi-eu", "--split", "1M", "-o"])
        .arg(&pkg)
        .arg(sample())
        .assert()
        .success();
    // A zip of one large entry with a reserved head.
    let large = dir.path().join("large.zip");
    let f = std::fs::File::create(&large).unwrap();
    let mut z = romkit::format::zip_write::ZipOut::new(&f, 1_705_300_800);
    z.begin("images/x.img", 0o644, 4096, true, 4).unwrap();
    z.write(&vec![7u8; 100_000]).unwrap();
    z.end(b"HEAD").unwrap();
    z.file("notes.txt", 0o644, b"notes notes notes", true)
        .unwrap();
    z.finish().unwrap();
    let code = r#"
import struct, sys, zipfile
for path in sys.argv[1:]:
    raw = open(path, 'rb').read()
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None, path
        n = 0
        for i in z.infolist():
            if i.filename.startswith('images/') and not i.is_dir():
                name_len, extra_len = struct.unpack('<HH', raw[i.header_offset + 26:i.header_offset + 30])
                at = i.header_offset + 30 + name_len + extra_len
                assert at % 4096 == 0, (path, i.filename, at)
                assert i.compress_type == zipfile.ZIP_STORED
                n += 1
        assert n >= 2 or path.endswith('large.zip'), (path, n)
    if path.endswith('large.zip'):
        with zipfile.ZipFile(path) as z:
            data = z.read('images/x.img')
            assert data == b'HEAD' + b'\x07' * 100000
            local = z.getinfo('images/x.img').header_offset
            assert struct.unpack('<I', raw[local + 22:local + 26])[0] == 0xffffffff
print('ok')
"#;
    let out = run_ok(Command::new(&py).args(["-c", code]).arg(&pkg).arg(&large));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok"));
}
