//! `romkit build` end to end: every output format checked by romkit and by
//! the third-party tools, reproducibility, and the failure paths.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const EPOCH: &str = "1705300800";

fn build(out: &Path, format: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
    romkit()
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .args(["build", "--profile", "xiaomi-eu", "--format", format, "-o"])
        .arg(out)
        .args(extra)
        .arg(sample())
        .assert()
}

/// (path, sha256) of every app.
fn apps_of(target: &Path) -> BTreeSet<(String, String)> {
    let v = json_ok(&["apps", "--json"], target);
    v["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["path"].as_str().unwrap().to_string(),
                a["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The app folders the xiaomi-eu plan removes from the sample.
fn planned_removals() -> BTreeSet<String> {
    let out = romkit()
        .args(["debloat", "--json", "--dry-run", "--profile", "xiaomi-eu"])
        .arg(sample())
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    v["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect()
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_format_is_verified_complete_and_exactly_debloated() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    let fastboot = dir.path().join("fuxi.zip");
    let ota = dir.path().join("fuxi-ota.zip");
    build(&images, "images", &[]).success();
    build(&fastboot, "fastboot", &["--manifest-yaml"]).success();
    build(&ota, "ota", &[]).success();

    // Every manifest gives the input's SHA-256, whether it was taken
    // alongside the decode (images, fastboot: the input's pages handed on
    // as they are read) or while the package was written (ota).
    let input_sha256: String = {
        use sha2::Digest;
        let h = sha2::Sha256::digest(read(&sample()));
        h.iter().map(|b| format!("{b:02x}")).collect()
    };
    for out in [&images, &fastboot, &ota] {
        let mut name = out.as_os_str().to_owned();
        name.push(".manifest.json");
        let m: serde_json::Value = serde_json::from_slice(&read(Path::new(&name))).unwrap();
        assert_eq!(m["input"]["sha256"], input_sha256, "{}", out.display());
    }

    // Apps: exactly the plan's removals are gone, every other app is
    // byte-identical to the input's.
    let input = apps_of(&sample());
    let gone = planned_removals();
    // 6 minimal + 12 privacy + 36 xiaomi-eu removals on the HyperOS 1 China
    // layout (tests/debloat.rs lists them).
    assert_eq!(gone.len(), 54);
    let expect: BTreeSet<(String, String)> = input
        .iter()
        .filter(|(p, _)| !gone.contains(p))
        .cloned()
        .collect();
    assert_eq!(apps_of(&fastboot), expect);
    assert_eq!(apps_of(&ota), expect);
    for part in ["system", "system_ext", "product"] {
        let from_image: BTreeSet<_> = apps_of(&images.join(format!("{part}.img")));
        assert!(from_image.is_subset(&expect));
    }

    // romkit's own verification of the packages.
    romkit().arg("verify").arg(&fastboot).assert().success();
    romkit().arg("verify").arg(&ota).assert().success();

    // The OTA carries the operations of every partition the profile leaves
    // alone byte for byte (only data offsets move); rebuilt and patched
    // partitions are new.
    {
        let src = romkit::rom::Rom::open(&sample()).unwrap();
        let out = romkit::rom::Rom::open(&ota).unwrap();
        let (sp, op) = (src.payload().unwrap(), out.payload().unwrap());
        let mut copied = Vec::new();
        for part in &sp.partitions {
            let new = op.partition(&part.name).unwrap();
            let blobs = |pl: &romkit::format::payload::Payload,
                         p: &romkit::format::payload::Partition| {
                p.ops
                    .iter()
                    .map(|o| {
                        (
                            o.kind,
                            o.dst.clone(),
                            pl.read(o.data_offset, o.data_len).unwrap(),
                        )
                    })
                    .collect::<Vec<_>>()
            };
            let same = blobs(sp, part) == blobs(op, new);
            let rebuilt = ["system", "system_ext", "product", "vbmeta", "vbmeta_system"]
                .contains(&part.name.as_str());
            assert_eq!(same, !rebuilt, "{}: copied = {same}", part.name);
            if same {
                copied.push(part.name.clone());
            }
        }
        assert!(copied.len() >= 5, "{copied:?}");
    }

    // Every rebuilt EROFS image passes fsck.erofs.
    if let Some(fsck) = tool("fsck.erofs") {
        for part in ["system", "system_ext", "product"] {
            run(Command::new(&fsck).arg(images.join(format!("{part}.img"))));
        }
    }

    // The OTA extracts with the PyPI payload extractor byte-identical to
    // the rebuilt images (vbmeta with verification disabled included).
    if let Some(dumper) = tool("payload-dumper") {
        let out = tempfile::tempdir().unwrap();
        run(Command::new(&dumper).arg("-o").arg(out.path()).arg(&ota));
        let names = listing(&images);
        assert_eq!(names.len(), 10);
        assert_eq!(listing(out.path()), names);
        for n in &names {
            assert!(
                read(&out.path().join(n)) == read(&images.join(n)),
                "{n} differs"
            );
        }
        let vbmeta = read(&images.join("vbmeta.img"));
        assert_eq!(&vbmeta[..4], b"AVB0");
        assert_eq!(vbmeta[123] & 3, 3, "verity and verification disabled");
    }

    // The fastboot package: simg2img reads its super, lpdump accepts it,
    // lpunpack extracts the rebuilt partitions byte-identical.
    let unz = tempfile::tempdir().unwrap();
    {
        let f = std::fs::File::open(&fastboot).unwrap();
        let mut z = zip::ZipArchive::new(f).unwrap();
        let mut e = z.by_name("images/super.img").unwrap();
        let mut w = std::fs::File::create(unz.path().join("super.img")).unwrap();
        std::io::copy(&mut e, &mut w).unwrap();
    }
    let scripts = {
        let f = std::fs::File::open(&fastboot).unwrap();
        let mut z = zip::ZipArchive::new(f).unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut z.by_name("flash_all.sh").unwrap(), &mut s).unwrap();
        s
    };
    assert!(scripts.contains("--disable-verity --disable-verification flash vbmeta"));
    if let (Some(simg2img), Some(lpdump), Some(lpunpack)) =
        (tool("simg2img"), lptool("lpdump"), lptool("lpunpack"))
    {
        let raw = unz.path().join("super.raw");
        run(Command::new(&simg2img)
            .arg(unz.path().join("super.img"))
            .arg(&raw));
        run(Command::new(&lpdump).arg(&raw));
        let parts = unz.path().join("parts");
        std::fs::create_dir(&parts).unwrap();
        run(Command::new(&lpunpack).arg(&raw).arg(&parts));
        for n in ["system", "system_ext", "product", "vendor", "odm", "mi_ext"] {
            assert!(
                read(&parts.join(format!("{n}_a.img"))) == read(&images.join(format!("{n}.img"))),
                "{n}_a differs"
            );
        }
    }

    // Manifests beside every output; a zip's records its size and SHA-256
    // (taken while it was written) as the finished file has them.
    for out in [&images, &fastboot, &ota] {
        let mut m = out.as_os_str().to_owned();
        m.push(".manifest.json");
        assert!(PathBuf::from(&m).is_file(), "{}", out.display());
        if out.is_file() {
            let v: serde_json::Value = serde_json::from_slice(&read(Path::new(&m))).unwrap();
            let bytes = read(out);
            let want = romkit::util::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            assert_eq!(
                v["outputs"][0]["sha256"],
                want.as_str(),
                "{}",
                out.display()
            );
            assert_eq!(v["outputs"][0]["size"], bytes.len() as u64);
        }
    }
    let mut y = fastboot.as_os_str().to_owned();
    y.push(".manifest.yaml");
    assert!(PathBuf::from(y).is_file());
}

#[test]
fn building_twice_gives_identical_bytes() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for d in [&a, &b] {
        build(&d.path().join("out.zip"), "fastboot", &[]).success();
        build(&d.path().join("ota.zip"), "ota", &[]).success();
    }
    for n in [
        "out.zip",
        "ota.zip",
        "out.zip.manifest.json",
        "ota.zip.manifest.json",
    ] {
        assert!(
            read(&a.path().join(n)) == read(&b.path().join(n)),
            "{n} differs between two builds"
        );
    }
}

#[test]
fn protected_profiles_fail_before_any_work() {
    let d = tempfile::tempdir().unwrap();
    let profile = d.path().join("p.yaml");
    std::fs::write(&profile, "name: p\nremove:\n  - package: com.miui.home\n").unwrap();
    let out_dir = d.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = romkit()
        .args(["build", "--profile"])
        .arg(&profile)
        .arg("-o")
        .arg(out_dir.join("x.zip"))
        .arg(sample())
        .assert()
        .code(3);
    assert!(
        String::from_utf8_lossy(&out.get_output().stderr).contains("com.miui.home is protected")
    );
    assert!(listing(&out_dir).is_empty());
    // A glob that reaches protected apps: refused after planning, before
    // anything is written.
    std::fs::write(
        &profile,
        "name: p\nmax_level: unsafe\nremove:\n  - glob: product/priv-app/*\n",
    )
    .unwrap();
    romkit()
        .args(["build", "--profile"])
        .arg(&profile)
        .arg("-o")
        .arg(out_dir.join("x.zip"))
        .arg(sample())
        .assert()
        .code(1);
    assert!(std::fs::read_dir(&out_dir).unwrap().next().is_none());
}

#[test]
fn existing_output_needs_force() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("o.zip");
    std::fs::write(&out, b"keep me").unwrap();
    build(&out, "fastboot", &[]).code(2);
    assert_eq!(read(&out), b"keep me");
}

#[test]
fn full_disk_exits_4_and_leaves_nothing() {
    let Some(fs) = need("a tmpfs mount (root)", tmpfs("3M")) else {
        return;
    };
    let mnt = fs.mnt.clone();
    let out = mnt.join("fuxi.zip");
    let r = romkit()
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .args(["build", "--profile", "xiaomi-eu", "-o"])
        .arg(&out)
        .arg(sample())
        .output()
        .unwrap();
    let left = listing(&mnt);
    assert_eq!(
        r.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(String::from_utf8_lossy(&r.stderr).contains("No space left"));
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn sigint_mid_build_leaves_nothing() {
    // A package large enough to interrupt mid-way.
    let src = tempfile::tempdir().unwrap();
    let out = romkit()
        .args(["fixture", "--size", "96M", "--xz-level", "0", "-o"])
        .arg(src.path())
        .assert()
        .success();
    let pkg = PathBuf::from(String::from_utf8_lossy(&out.get_output().stdout).trim());
    let d = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("romkit");
    let mut child = Command::new(bin)
        .args(["-j", "1", "build", "--profile", "xiaomi-eu", "-o"])
        .arg(d.path().join("out.zip"))
        .arg(&pkg)
        .spawn()
        .unwrap();
    // Wait until the build has staged something, then interrupt it.
    let start = std::time::Instant::now();
    while std::fs::read_dir(d.path()).unwrap().next().is_none() {
        assert!(start.elapsed().as_secs() < 60, "build never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    signal(&child, 2);
    let status = child.wait().unwrap();
    if status.success() {
        // The build won the race; nothing to learn from this run.
        return;
    }
    assert_eq!(status.code(), Some(130));
    assert!(
        std::fs::read_dir(d.path()).unwrap().next().is_none(),
        "left behind: {:?}",
        listing(d.path())
    );
}

#[test]
fn manifest_diff_of_input_and_output_is_exactly_the_plan() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("fuxi.zip");
    build(&out, "fastboot", &[]).success();
    let input = d.path().join("in.json");
    let o = romkit()
        .args(["inspect", "--manifest"])
        .arg(sample())
        .assert()
        .success();
    std::fs::write(&input, &o.get_output().stdout).unwrap();
    let mut m = out.as_os_str().to_owned();
    m.push(".manifest.json");
    let r = romkit()
        .args(["diff", "--format", "json"])
        .arg(&input)
        .arg(PathBuf::from(m))
        .assert()
        .code(1);
    let v: serde_json::Value = serde_json::from_slice(&r.get_output().stdout).unwrap();
    let gone = planned_removals();
    let removed_apps: BTreeSet<String> = v["apps"]["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            a["a"]["path"]
                .as_str()
                .or(a["path"].as_str())
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(removed_apps, gone);
    for k in [
        "added",
        "updated",
        "signer_changed",
        "content_changed",
        "moved",
    ] {
        assert!(
            v["apps"][k].as_array().unwrap().is_empty(),
            "apps.{k}: {}",
            v["apps"][k]
        );
    }
    // Files: everything under the removed apps, and the edited build.prop.
    for f in v["files"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        match f["change"].as_str().unwrap() {
            "removed" => assert!(
                gone.iter()
                    .any(|g| path == g || path.starts_with(&format!("{g}/"))),
                "{path}"
            ),
            "changed" => assert_eq!(path, "product/etc/build.prop"),
            other => panic!("{other} {path}"),
        }
    }
    let props: Vec<(String, String)> = v["props"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["key"].as_str().unwrap().to_string(),
                p["change"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        props,
        vec![
            ("ro.miui.region".to_string(), "removed".to_string()),
            ("ro.product.locale".to_string(), "changed".to_string())
        ]
    );
    let parts: BTreeSet<String> = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    // The rebuilt partitions, and vbmeta with its verification-disabled
    // flags set (in every output format, fastboot included).
    assert_eq!(
        parts,
        ["product", "system", "system_ext", "vbmeta"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
}

#[test]
fn the_report_gives_the_room_left_in_the_dynamic_group() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("fuxi.zip");
    let r = romkit()
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .args(["--json", "build", "--profile", "xiaomi-eu", "-o"])
        .arg(&out)
        .arg(sample())
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&r.get_output().stdout).unwrap();
    let dynamic = ["system", "system_ext", "product", "vendor", "odm", "mi_ext"];
    let used: u64 = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| dynamic.contains(&p["name"].as_str().unwrap()))
        .map(|p| p["size"].as_u64().unwrap())
        .sum();
    // The group's size as the input's payload declares it.
    let rom = romkit::rom::Rom::open(&sample()).unwrap();
    let groups = &rom
        .payload()
        .unwrap()
        .manifest
        .dynamic_partition_metadata
        .as_ref()
        .unwrap()
        .groups;
    let size = groups[0].size.unwrap();
    let space = &v["space"][0];
    assert_eq!(
        space["name"],
        format!("group {}", groups[0].name.as_deref().unwrap())
    );
    assert_eq!(space["size"].as_u64(), Some(size));
    assert_eq!(space["used"].as_u64(), Some(used));
    assert_eq!(space["free"].as_u64(), Some(size - used));
    assert!(used < size);
}

#[test]
fn xiaomi_eu_fastboot_build_carries_disabled_vbmeta_and_its_scripts() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("fuxi-eu.zip");
    let r = romkit()
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .args([
            "--json",
            "build",
            "--profile",
            "xiaomi-eu",
            "--style",
            "xiaomi-eu",
            "-o",
        ])
        .arg(&out)
        .arg(sample())
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&r.get_output().stdout).unwrap();
    let fb = &v["fastboot"];
    assert_eq!(fb["style"], "xiaomi-eu", "{fb}");
    assert!(fb["super_parts"].as_u64().unwrap() >= 1);
    assert!(
        fb["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("anti-rollback")),
        "{fb}"
    );
    let vb = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "vbmeta")
        .unwrap();
    assert_eq!(vb["status"], "patched");
    let f = std::fs::File::open(&out).unwrap();
    let mut z = zip::ZipArchive::new(f).unwrap();
    let mut vbmeta = Vec::new();
    std::io::Read::read_to_end(&mut z.by_name("images/vbmeta.img").unwrap(), &mut vbmeta).unwrap();
    assert_eq!(&vbmeta[..4], b"AVB0");
    assert_eq!(
        vbmeta[123] & 3,
        3,
        "verity and verification disabled in the image"
    );
    for name in [
        "README.txt",
        "images/super.img.0",
        "images/crclist.txt",
        "images/sparsecrclist.txt",
        "windows_fastboot_first_install_with_data_format.bat",
        "linux_fastboot_update_rom.sh",
        "macos_fastboot_update_rom.sh",
    ] {
        assert!(z.by_name(name).is_ok(), "{name}");
    }
    romkit().arg("verify").arg(&out).assert().success();
}

/// payload_dumper 0.8.4 (third-party), from `ROMKIT_PAYLOAD_DUMPER` or
/// `target/peers/bin`.
fn payload_dumper() -> Option<PathBuf> {
    let found = std::env::var_os("ROMKIT_PAYLOAD_DUMPER")
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .or_else(|| {
            let p = root().join("target/peers/bin/payload_dumper");
            p.exists().then_some(p)
        });
    need("payload_dumper 0.8.4 (target/peers/bin)", found)
}

/// The 4 KiB blocks in which two images differ (the longer one's extra
/// blocks included), computed here from the bytes.
fn differing_blocks(a: &[u8], b: &[u8]) -> BTreeSet<u64> {
    let n = a.len().max(b.len()).div_ceil(4096);
    (0..n)
        .filter(|&i| {
            let r = |v: &[u8]| {
                v.get(i * 4096..((i + 1) * 4096).min(v.len()))
                    .map(<[u8]>::to_vec)
            };
            r(a) != r(b)
        })
        .map(|i| i as u64)
        .collect()
}

#[test]
fn ota_of_edited_partitions_copies_every_unchanged_operation() {
    let dir = tempfile::tempdir().unwrap();
    let (images, ota, src) = (
        dir.path().join("images"),
        dir.path().join("ota.zip"),
        dir.path().join("src"),
    );
    build(&images, "images", &[]).success();
    build(&ota, "ota", &[]).success();
    romkit()
        .args(["unpack", "-o"])
        .arg(&src)
        .arg(sample())
        .assert()
        .success();

    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&dir.path().join("images.manifest.json"))).unwrap();
    // `diff` of the input and the build says which partitions were edited.
    let out = romkit()
        .args(["diff", "--json"])
        .arg(sample())
        .arg(dir.path().join("images.manifest.json"))
        .assert()
        .code(1);
    let diff_json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let sp = romkit::rom::Rom::open(&sample()).unwrap();
    let op = romkit::rom::Rom::open(&ota).unwrap();
    let (sp, op) = (sp.payload().unwrap(), op.payload().unwrap());
    let blob = |pl: &romkit::format::payload::Payload, o: &romkit::format::payload::Operation| {
        pl.read(o.data_offset, o.data_len).unwrap()
    };
    let mut total_copied = 0;
    for name in ["system", "system_ext", "product"] {
        let old = read(&src.join(format!("{name}.img")));
        let new = read(&images.join(format!("{name}.img")));
        let diff = differing_blocks(&old, &new);
        assert!(!diff.is_empty(), "{name}: the edit changed nothing");
        // The manifest says edited, with the count of blocks that differ.
        let rec = manifest["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap();
        assert_eq!(rec["status"], "edited", "{name}");
        assert_eq!(rec["changed_blocks"], diff.len() as u64, "{name}");
        let change = diff_json["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap();
        assert_eq!(change["edited_blocks_b"], diff.len() as u64, "{name}");
        let (part, out) = (sp.partition(name).unwrap(), op.partition(name).unwrap());
        let (mut copied, mut zeroed, mut split) = (0, 0, 0);
        let blocks_of = |o: &romkit::format::payload::Operation| -> Vec<u64> {
            o.dst
                .iter()
                .flat_map(|r| r.offset / 4096..(r.offset + r.len) / 4096)
                .collect()
        };
        let zero_block = |b: u64| {
            new[(b * 4096) as usize..((b + 1) * 4096) as usize]
                .iter()
                .all(|&x| x == 0)
        };
        for o in &part.ops {
            let blocks = blocks_of(o);
            let untouched = blocks.iter().all(|b| !diff.contains(b));
            // The output operations writing this operation's blocks: together
            // exactly its blocks.
            let parts: Vec<_> = out
                .ops
                .iter()
                .filter(|x| blocks_of(x).iter().any(|b| blocks.contains(b)))
                .collect();
            let mut covered: Vec<u64> = parts.iter().flat_map(|x| blocks_of(x)).collect();
            covered.sort_unstable();
            let mut want = blocks.clone();
            want.sort_unstable();
            assert_eq!(
                covered, want,
                "{name}: op {} is not rewritten exactly",
                o.index
            );
            if untouched {
                // Same type, same destination, the very same blob bytes.
                assert_eq!(parts.len(), 1, "{name}: op {}", o.index);
                assert_eq!(parts[0].dst, o.dst, "{name}: op {}", o.index);
                assert_eq!(parts[0].kind, o.kind, "{name}: op {}", o.index);
                assert_eq!(blob(op, parts[0]), blob(sp, o), "{name}: op {}", o.index);
                copied += 1;
            } else if blocks.iter().all(|&b| zero_block(b)) {
                assert_eq!(parts.len(), 1, "{name}: op {}", o.index);
                assert_eq!(
                    parts[0].kind.unwrap().name(),
                    "ZERO",
                    "{name}: op {}",
                    o.index
                );
                assert_eq!(parts[0].data_len, 0);
                zeroed += 1;
            } else {
                // Blocks now all zero may be split off as a ZERO operation;
                // only the others are encoded again.
                for x in &parts {
                    let kind = x.kind.unwrap().name();
                    if kind == "ZERO" {
                        assert!(
                            blocks_of(x).into_iter().all(zero_block),
                            "{name}: op {}",
                            o.index
                        );
                    } else {
                        assert!(matches!(kind, "REPLACE_XZ" | "REPLACE"), "{name}: {kind}");
                    }
                }
                split += usize::from(parts.len() > 1);
            }
        }
        assert!(copied < part.ops.len(), "{name}: every operation copied");
        total_copied += copied;
        eprintln!(
            "{name}: {copied} of {} operations copied, {zeroed} became ZERO, {split} split",
            part.ops.len()
        );
    }

    assert!(total_copied > 0, "no operation was copied");

    // Python's zipfile finds every entry's CRC-32 right: payload.bin's was
    // combined from the CRC-32s the decode recorded for the copied blobs.
    if let Some(py) = python_with(&["zipfile"]) {
        let code = "import sys, zipfile\n\
                    z = zipfile.ZipFile(sys.argv[1])\n\
                    assert z.testzip() is None\n\
                    assert z.getinfo('payload.bin').compress_type == zipfile.ZIP_STORED\n\
                    print('ok')";
        let out = run_ok(Command::new(py).args(["-c", code]).arg(&ota));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok"));
    }

    // The third-party extractor gives the edited images byte for byte.
    let Some(dumper) = payload_dumper() else {
        return;
    };
    let unz = dir.path().join("payload.bin");
    {
        let mut z = zip::ZipArchive::new(std::fs::File::open(&ota).unwrap()).unwrap();
        let mut e = z.by_name("payload.bin").unwrap();
        std::io::copy(&mut e, &mut std::fs::File::create(&unz).unwrap()).unwrap();
    }
    let out = dir.path().join("peer");
    run(Command::new(dumper).arg(&unz).arg("-o").arg(&out));
    for n in listing(&images) {
        assert!(read(&out.join(&n)) == read(&images.join(&n)), "{n} differs");
    }
}

/// The output block ranges of the RAW chunks of a sparse image, as
/// `simg_dump -v` lists them.
fn raw_chunks(simg_dump: &Path, sparse: &Path) -> Vec<std::ops::Range<u64>> {
    let out = run_ok(Command::new(simg_dump).arg("-v").arg(sparse));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut raw = Vec::new();
    for line in text.lines().filter(|l| l.contains("Raw data")) {
        let f: Vec<u64> = line
            .split_whitespace()
            .take(5)
            .map(|w| w.parse().unwrap())
            .collect();
        raw.push(f[3]..f[3] + f[4]);
    }
    assert!(!raw.is_empty(), "{text}");
    raw
}

/// The first extent of `part` in a raw super image, in bytes, as lpdump
/// lists it (`0 .. 2255 linear super 8192`, in 512-byte sectors).
fn lp_extent(lpdump: &Path, super_raw: &Path, part: &str) -> u64 {
    let out = run_ok(Command::new(lpdump).arg(super_raw));
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text
        .find(&format!("Name: {part}\n"))
        .unwrap_or_else(|| panic!("{part} not in lpdump's listing: {text}"));
    let line = text[at..]
        .lines()
        .find(|l| l.contains(" linear super "))
        .unwrap();
    let sector: u64 = line.split_whitespace().last().unwrap().parse().unwrap();
    sector * 512
}

#[test]
fn fastboot_super_stores_no_block_an_edit_zeroed() {
    let (Some(simg_dump), Some(simg2img), Some(lpdump)) =
        (tool("simg_dump"), tool("simg2img"), lptool("lpdump"))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (images, fastboot, src) = (d.join("images"), d.join("fb.zip"), d.join("src"));
    build(&images, "images", &[]).success();
    build(&fastboot, "fastboot", &[]).success();
    romkit()
        .args(["unpack", "-o"])
        .arg(&src)
        .arg(sample())
        .assert()
        .success();
    let sparse = d.join("super.img");
    {
        let mut z = zip::ZipArchive::new(std::fs::File::open(&fastboot).unwrap()).unwrap();
        let mut e = z.by_name("images/super.img").unwrap();
        std::io::copy(&mut e, &mut std::fs::File::create(&sparse).unwrap()).unwrap();
    }
    let raw_super = d.join("super.raw");
    run(Command::new(&simg2img).arg(&sparse).arg(&raw_super));
    let raw = raw_chunks(&simg_dump, &sparse);
    let mut zeroed_total = 0;
    for name in ["system", "system_ext", "product"] {
        let old = read(&src.join(format!("{name}.img")));
        let new = read(&images.join(format!("{name}.img")));
        let start = lp_extent(&lpdump, &raw_super, &format!("{name}_a")) / 4096;
        for b in differing_blocks(&old, &new) {
            let s = b as usize * 4096;
            if new[s..s + 4096].iter().any(|&x| x != 0) {
                continue;
            }
            zeroed_total += 1;
            let at = start + b;
            assert!(
                !raw.iter().any(|r| r.contains(&at)),
                "{name}: zeroed block {b} (super block {at}) stored as RAW"
            );
        }
    }
    assert!(zeroed_total > 0, "the edits zeroed no block");
    eprintln!("{zeroed_total} zeroed blocks, none stored as RAW");
}

#[test]
fn an_edit_that_outgrows_its_group_fails_clearly_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Two build.prop values of 900 KB each (a profile is at most 1 MiB)
    // make product grow past the 1.4 MiB its group has left.
    std::fs::write(
        d.join("filler.yaml"),
        format!(
            "name: filler\ndescription: test\nprops:\n  product:\n    set: {{ ro.filler1: \"{}\" }}\n",
            "a".repeat(900_000)
        ),
    )
    .unwrap();
    let big = d.join("big.yaml");
    std::fs::write(
        &big,
        format!(
            "name: big\ndescription: test\nextends: [filler.yaml]\nprops:\n  product:\n    set: {{ ro.filler2: \"{}\" }}\n",
            "b".repeat(900_000)
        ),
    )
    .unwrap();
    for format in ["ota", "fastboot"] {
        let out = d.join(format!("out-{format}.zip"));
        let a = romkit()
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .args(["build", "--format", format, "--profile"])
            .arg(&big)
            .arg("-o")
            .arg(&out)
            .arg(sample())
            .assert()
            .code(3);
        let err = String::from_utf8_lossy(&a.get_output().stderr).to_string();
        assert!(
            err.contains("does not fit: group qti_dynamic_partitions needs")
                && err.contains("grown: product +"),
            "{err}"
        );
        assert!(!out.exists());
        assert!(!d.join(format!("out-{format}.zip.manifest.json")).exists());
    }
    let left: Vec<_> = std::fs::read_dir(d).unwrap().collect();
    assert_eq!(left.len(), 2, "only the profiles are left: {left:?}");
}

#[test]
fn repack_rebuilds_and_converting_ext4_takes_its_own_flag() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // --repack: the touched partitions are rebuilt, without a block count.
    let images = d.join("repacked");
    build(&images, "images", &["--repack"]).success();
    let m: serde_json::Value =
        serde_json::from_slice(&read(&d.join("repacked.manifest.json"))).unwrap();
    for p in m["partitions"].as_array().unwrap() {
        if ["system", "system_ext", "product"].contains(&p["name"].as_str().unwrap()) {
            assert_eq!(p["status"], "rebuilt", "{p}");
            assert!(p.get("changed_blocks").is_none(), "{p}");
        }
    }

    // A fastboot zip whose product is ext4 (mke2fs -d).
    let Some(mke2fs) = tool("mke2fs") else {
        return;
    };
    let tree = d.join("tree");
    std::fs::create_dir_all(tree.join("app/Foo")).unwrap();
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("app/Foo/Foo.apk"), b"not an apk").unwrap();
    std::fs::write(tree.join("etc/build.prop"), b"ro.product.name=x\n").unwrap();
    let img = d.join("product.img");
    run(Command::new(mke2fs)
        .args(["-q", "-t", "ext4", "-b", "4096", "-d"])
        .arg(&tree)
        .arg(&img)
        .arg("8M"));
    let pkg = d.join("ext4.zip");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&pkg).unwrap());
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        z.start_file("images/product.img", o).unwrap();
        std::io::Write::write_all(&mut z, &read(&img)).unwrap();
        z.finish().unwrap();
    }
    let profile = d.join("foo.yaml");
    std::fs::write(
        &profile,
        "name: foo\ndescription: test\nremove:\n  - path: product/app/Foo\n    reason: test\n",
    )
    .unwrap();
    let out = d.join("out");
    let run_build = |extra: &[&str]| {
        romkit()
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .args(["build", "--format", "images", "--profile"])
            .arg(&profile)
            .arg("-o")
            .arg(&out)
            .args(extra)
            .arg(&pkg)
            .assert()
    };
    let stderr = |a: &assert_cmd::assert::Assert| {
        String::from_utf8_lossy(&a.get_output().stderr).to_string()
    };
    // In place (the default): still ext4, edited.
    run_build(&[]).success();
    let edited = read(&out.join("product.img"));
    assert_eq!(&edited[1080..1082], &[0x53, 0xEF]);
    let m: serde_json::Value = serde_json::from_slice(&read(&d.join("out.manifest.json"))).unwrap();
    assert_eq!(m["partitions"][0]["status"], "edited", "{m}");
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_file(d.join("out.manifest.json")).unwrap();
    // --repack alone does not convert.
    let a = run_build(&["--repack"]).code(2);
    assert!(stderr(&a).contains("--ext4-to-erofs"), "{}", stderr(&a));
    assert!(!out.exists());
    // --ext4-to-erofs converts, with a warning about kernel support.
    let a = run_build(&["--ext4-to-erofs"]).success();
    assert!(
        stderr(&a).contains("kernel must mount EROFS"),
        "{}",
        stderr(&a)
    );
    let new = read(&out.join("product.img"));
    assert_eq!(&new[1024..1028], &0xE0F5_E1E2u32.to_le_bytes());
    if let Some(fsck) = tool("fsck.erofs") {
        let x = d.join("x");
        run(Command::new(fsck)
            .arg(format!("--extract={}", x.display()))
            .arg(out.join("product.img")));
        assert!(x.join("etc/build.prop").exists());
        assert!(!x.join("app/Foo").exists());
    }
}
