//! Super images: romkit against AOSP lpmake/lpunpack/lpdump, and hostile LP metadata.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use predicates::prelude::*;
use romkit::format::lp::{self, Metadata, PartitionSpec, SuperSpec};

/// Writes test partition images; returns (name, path, size).
fn images(dir: &Path) -> Vec<(String, PathBuf, u64)> {
    [
        ("system", 300usize),
        ("vendor", 130),
        ("product", 211),
        ("odm", 9),
    ]
    .iter()
    .enumerate()
    .map(|(i, (n, blocks))| {
        let p = dir.join(format!("{n}.img"));
        std::fs::write(&p, mixed_image(i as u64 + 1, *blocks)).unwrap();
        (n.to_string(), p, (*blocks * 4096) as u64)
    })
    .collect()
}

/// lpmake with virtual A/B, 3 metadata slots, two groups per slot and data
/// in both slots; `sparse` selects `--sparse`.
fn lpmake_super(dir: &Path, sparse: bool) -> Option<PathBuf> {
    let lpmake = lptool("lpmake")?;
    let imgs = images(dir);
    let out = dir.join(if sparse { "super.img" } else { "super.raw" });
    let mut c = Command::new(lpmake);
    c.args([
        "--metadata-size",
        "65536",
        "--super-name",
        "super",
        "--metadata-slots",
        "3",
        "--virtual-ab",
        "--device",
        "super:16777216",
        "--group",
        "main_a:6291456",
        "--group",
        "main_b:6291456",
        "--group",
        "extra_a:1048576",
        "--group",
        "extra_b:1048576",
    ]);
    for slot in ["a", "b"] {
        for (n, p, size) in &imgs {
            let group = if n == "odm" { "extra" } else { "main" };
            // Slot b holds system and odm only (like a device mid-update).
            let (size, with_image) = if slot == "b" && (n == "vendor" || n == "product") {
                (0, false)
            } else {
                (*size, true)
            };
            c.arg("--partition")
                .arg(format!("{n}_{slot}:readonly:{size}:{group}_{slot}"));
            if with_image {
                c.arg("--image").arg(format!("{n}_{slot}={}", p.display()));
            }
        }
    }
    if sparse {
        c.arg("--sparse");
    }
    c.arg("--output").arg(&out);
    run_ok(&mut c);
    Some(out)
}

#[test]
fn lpmake_virtual_ab_super_reads_like_lpunpack() {
    let dir = tempfile::tempdir().unwrap();
    let Some(sup) = lpmake_super(dir.path(), true) else {
        return;
    };
    let Some(simg2img) = tool("simg2img") else {
        return;
    };
    let Some(lpunpack) = lptool("lpunpack") else {
        return;
    };
    let raw = dir.path().join("raw.img");
    run_ok(Command::new(simg2img).arg(&sup).arg(&raw));
    let v = json_ok(&["inspect", "--json"], &sup);
    let s = &v["super"];
    assert_eq!(s["metadata_version"], "10.2");
    assert_eq!(s["metadata_slots"], 3);
    assert_eq!(s["virtual_ab"], true);
    let groups: Vec<&str> = s["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        ["default", "main_a", "main_b", "extra_a", "extra_b"]
    );
    let main_a = &s["groups"][1];
    assert_eq!(main_a["used"], (300 + 130 + 211) * 4096);
    assert_eq!(main_a["free"], 6291456 - (300 + 130 + 211) * 4096);
    // Both slots hold system and odm: listed with suffixes; vendor and
    // product only in slot a: listed plain.
    let names: Vec<&str> = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "system_a", "vendor", "product", "odm_a", "system_b", "odm_b"
        ]
    );
    for slot in ["0", "1"] {
        let lpu = dir.path().join(format!("lpunpack{slot}"));
        std::fs::create_dir_all(&lpu).unwrap();
        run_ok(
            Command::new(&lpunpack)
                .arg(format!("--slot={slot}"))
                .arg(&raw)
                .arg(&lpu),
        );
    }
    // romkit on the sparse image and on the raw one, against lpunpack.
    for input in [&sup, &raw] {
        let out = dir.path().join(format!(
            "romkit-{}",
            input.file_name().unwrap().to_string_lossy()
        ));
        romkit()
            .args(["unpack", "-o"])
            .arg(&out)
            .arg(input)
            .assert()
            .success();
        for (ours, theirs) in [
            ("system_a", "system_a"),
            ("vendor", "vendor_a"),
            ("product", "product_a"),
            ("odm_a", "odm_a"),
            ("system_b", "system_b"),
            ("odm_b", "odm_b"),
        ] {
            let a = std::fs::read(out.join(format!("{ours}.img"))).unwrap();
            for slot in ["0", "1"] {
                let b = std::fs::read(
                    dir.path()
                        .join(format!("lpunpack{slot}"))
                        .join(format!("{theirs}.img")),
                )
                .unwrap();
                assert!(
                    a == b,
                    "{ours} differs from lpunpack's {theirs} (slot {slot})"
                );
            }
        }
    }
    // The images that went in come out.
    let out = dir.path().join("romkit-super.img");
    assert_eq!(
        std::fs::read(out.join("vendor.img")).unwrap(),
        std::fs::read(dir.path().join("vendor.img")).unwrap()
    );
    romkit()
        .arg("verify")
        .arg(&sup)
        .assert()
        .success()
        .stdout(predicate::str::contains("3 slot(s)"));
}

#[test]
fn lpmake_plain_super_v10_0() {
    let Some(lpmake) = lptool("lpmake") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path());
    let out = dir.path().join("super.raw");
    let mut c = Command::new(lpmake);
    c.args([
        "-d",
        "16777216",
        "-m",
        "65536",
        "-s",
        "2",
        "-g",
        "main:12582912",
    ]);
    for (n, p, size) in &imgs {
        c.arg("-p").arg(format!("{n}:none:{size}:main"));
        c.arg("-i").arg(format!("{n}={}", p.display()));
    }
    run_ok(c.arg("-o").arg(&out));
    let v = json_ok(&["inspect", "--json"], &out);
    assert_eq!(v["kind"], "super-image");
    assert_eq!(v["super"]["metadata_version"], "10.0");
    assert_eq!(v["super"]["virtual_ab"], false);
    let x = dir.path().join("x");
    romkit()
        .args(["unpack", "-o"])
        .arg(&x)
        .arg(&out)
        .assert()
        .success();
    for (n, p, _) in &imgs {
        assert_eq!(
            std::fs::read(x.join(format!("{n}.img"))).unwrap(),
            std::fs::read(p).unwrap(),
            "{n}"
        );
    }
}

#[test]
fn romkit_super_accepted_by_lpdump_and_lpunpack() {
    let Some(lpdump) = lptool("lpdump") else {
        return;
    };
    let Some(lpunpack) = lptool("lpunpack") else {
        return;
    };
    let Some(simg2img) = tool("simg2img") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The sample OTA as a fastboot folder with a split super.
    let fb = dir.path().join("fb");
    romkit()
        .args(["fastboot", "--split", "1M", "-o"])
        .arg(&fb)
        .arg(sample())
        .assert()
        .success();
    let mut parts: Vec<PathBuf> = (0..)
        .map(|i| fb.join(format!("images/super.img.{i}")))
        .take_while(|p| p.exists())
        .collect();
    assert!(parts.len() > 1);
    parts.sort();
    let raw = dir.path().join("super.raw");
    run_ok(Command::new(simg2img).args(&parts).arg(&raw));
    let dump = run_ok(Command::new(lpdump).arg(&raw));
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(text.contains("Metadata version: 10.2"), "{text}");
    assert!(text.contains("Name: system_a"), "{text}");
    assert!(text.contains("qti_dynamic_partitions_a"), "{text}");
    let lpu = dir.path().join("lpu");
    std::fs::create_dir_all(&lpu).unwrap();
    run_ok(Command::new(lpunpack).arg(&raw).arg(&lpu));
    let ota = dir.path().join("ota");
    romkit()
        .args(["unpack", "-o"])
        .arg(&ota)
        .arg(sample())
        .assert()
        .success();
    for n in ["system", "system_ext", "product", "vendor", "odm", "mi_ext"] {
        assert_eq!(
            std::fs::read(lpu.join(format!("{n}_a.img"))).unwrap(),
            std::fs::read(ota.join(format!("{n}.img"))).unwrap(),
            "{n}"
        );
        assert_eq!(
            std::fs::metadata(lpu.join(format!("{n}_b.img")))
                .unwrap()
                .len(),
            0
        );
    }
}

/// A raw super image holding `m` (images all zeros), for hostile variants.
fn raw_super(path: &Path, m: &Metadata) {
    let mut area = m.metadata_area().unwrap();
    area.resize(m.block_devices[0].size as usize, 0);
    std::fs::write(path, area).unwrap();
}

fn spec() -> SuperSpec {
    SuperSpec {
        device_size: 8 << 20,
        groups: vec![("main".into(), 4 << 20)],
        partitions: vec![
            PartitionSpec {
                name: "system".into(),
                group: "main".into(),
                attributes: lp::ATTR_READONLY,
                size: 1 << 20,
            },
            PartitionSpec {
                name: "vendor".into(),
                group: "main".into(),
                attributes: lp::ATTR_READONLY,
                size: 1 << 20,
            },
        ],
        ..Default::default()
    }
}

#[test]
fn hostile_extents_and_groups_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("super.img");
    let good = spec().build().unwrap();
    raw_super(&p, &good);
    romkit().arg("verify").arg(&p).assert().success();
    type Edit = Box<dyn Fn(&mut Metadata)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "runs past the end of super",
            Box::new(|m: &mut Metadata| m.extents[1].target_data = (8 << 20) / 512 - 100),
        ),
        (
            "overlaps the metadata area",
            Box::new(|m: &mut Metadata| m.extents[0].target_data = 8),
        ),
        (
            "overlap at sector",
            Box::new(|m: &mut Metadata| m.extents[1].target_data = m.extents[0].target_data + 8),
        ),
        (
            "group main allows 1048576 bytes, its partitions take 2097152",
            Box::new(|m: &mut Metadata| m.groups[1].maximum_size = 1 << 20),
        ),
        (
            "uses extents 0..9",
            Box::new(|m: &mut Metadata| m.partitions[0].num_extents = 9),
        ),
    ];
    for (msg, f) in cases {
        let mut m = good.clone();
        f(&mut m);
        raw_super(&p, &m);
        let out = dir.path().join("out");
        romkit()
            .args(["unpack", "-o"])
            .arg(&out)
            .arg(&p)
            .assert()
            .code(3)
            .stderr(predicate::str::contains("super.img"))
            .stderr(predicate::str::contains(msg));
        assert!(!out.exists() || listing(&out).is_empty(), "{msg}");
    }
    // A group smaller than its partitions, when building.
    let mut s = spec();
    s.groups[0].1 = 1 << 20;
    assert!(
        s.build()
            .unwrap_err()
            .to_string()
            .contains("the group allows 1048576")
    );
    let mut s = spec();
    s.partitions[1].size = 7 << 20;
    s.groups[0].1 = 0;
    assert!(s.build().unwrap_err().to_string().contains("does not fit"));
}

#[test]
fn checksum_mismatches_fail_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("super.img");
    let m = spec().build().unwrap();
    let g = m.geometry;
    raw_super(&p, &m);
    let flip = |off: u64| {
        let mut b = std::fs::read(&p).unwrap();
        b[off as usize] ^= 0x20;
        std::fs::write(&p, b).unwrap();
    };
    // Primary copy of slot 0 damaged: read from the backup, verify fails.
    flip(g.primary_offset(0) + 256 + 2);
    romkit()
        .arg("verify")
        .arg(&p)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("primary metadata slot 0"))
        .stdout(predicate::str::contains("checksum mismatch"));
    let out = dir.path().join("out");
    romkit()
        .args(["unpack", "-o"])
        .arg(&out)
        .arg(&p)
        .assert()
        .success();
    // Backup damaged too: nothing to read from.
    flip(g.backup_offset(0) + 256 + 2);
    romkit()
        .args(["unpack", "--force", "-o"])
        .arg(&out)
        .arg(&p)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "metadata tables checksum mismatch",
        ));
    // Both geometries damaged.
    raw_super(&p, &m);
    flip(4096 + 45);
    flip(8192 + 45);
    romkit()
        .arg("inspect")
        .arg(&p)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("geometry checksum mismatch"));
}
