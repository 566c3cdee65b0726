//! `build` on partitions that carry AVB hashtree footers: the in-place edit
//! changes the filesystem, and the tree, FEC and root digest must follow.
//! Inputs: the sample's images with footers laid out by the independent
//! Python writer (`tests/oracles/avb_hashtree.py`) around veritysetup's tree
//! and parity, packed by `tests/oracles/write_payload.py`. Outputs are
//! checked with veritysetup (tree, parity, root digest recomputed over the
//! edited filesystem region) and the Python reader.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{python_with, romkit, root, run_ok, sample, tool};

const SALT: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const EPOCH: &str = "1705300800";

struct Tools {
    py: PathBuf,
    veritysetup: PathBuf,
}

/// veritysetup's tree, parity (when `roots` > 0) and root digest over `data`.
fn verity(t: &Tools, dir: &Path, data: &Path, roots: u8) -> (Vec<u8>, Vec<u8>, String) {
    let (h, f) = (dir.join("tree"), dir.join("fec"));
    std::fs::write(&f, b"").unwrap();
    let fec = (roots > 0).then_some((f.as_path(), roots));
    let root = common::veritysetup(&t.veritysetup, data, &h, fec, "sha256", SALT);
    (std::fs::read(&h).unwrap(), std::fs::read(&f).unwrap(), root)
}

/// Puts a footer on `img` in place: `alg` is what the descriptor names
/// (the tree is always SHA-256, so another name makes it unusable).
fn add_footer(t: &Tools, dir: &Path, img: &Path, roots: u8, signed: bool, alg: &str) {
    let (_, _, root_hex) = verity(t, dir, img, roots);
    let len = std::fs::metadata(img).unwrap().len();
    let mut cmd = Command::new(&t.py);
    cmd.arg(root().join("tests/oracles/avb_hashtree.py"))
        .arg("make")
        .arg(dir.join("footed"))
        .arg("--data")
        .arg(img)
        .arg("--tree")
        .arg(dir.join("tree"))
        .args([
            "--root",
            &root_hex,
            "--salt",
            SALT,
            "--name",
            "p",
            "--algorithm",
            alg,
        ])
        .arg(format!("--partition-size={}", len + 256 * 1024));
    if roots > 0 {
        cmd.arg("--fec")
            .arg(dir.join("fec"))
            .arg(format!("--roots={roots}"));
    }
    if signed {
        cmd.arg("--signed");
    }
    run_ok(&mut cmd);
    std::fs::rename(dir.join("footed"), img).unwrap();
}

fn parse(t: &Tools, img: &Path) -> serde_json::Value {
    common::avb_parse(&t.py, img)
}

/// The sample's images, product with a footer and FEC, system_ext with a
/// signed footer without FEC, system with a footer romkit cannot use; as an
/// OTA zip.
fn input(t: &Tools, dir: &Path) -> PathBuf {
    let imgs = dir.join("imgs");
    romkit()
        .arg("unpack")
        .arg(sample())
        .arg("-o")
        .arg(&imgs)
        .assert()
        .success();
    add_footer(t, dir, &imgs.join("product.img"), 2, false, "sha256");
    add_footer(t, dir, &imgs.join("system_ext.img"), 0, true, "sha256");
    add_footer(t, dir, &imgs.join("system.img"), 2, false, "md5");
    let mut cmd = Command::new(&t.py);
    cmd.arg(root().join("tests/oracles/write_payload.py"))
        .arg(dir.join("in.bin"));
    let mut names: Vec<_> = std::fs::read_dir(&imgs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        let n = p.file_stem().unwrap().to_string_lossy().to_string();
        cmd.arg(format!("--part={n}={}", p.display()));
    }
    let zip = dir.join("in.zip");
    run_ok(cmd.arg("--zip").arg(&zip));
    zip
}

/// The edited image's tree, parity and root digest are veritysetup's over
/// its data region.
fn assert_consistent(t: &Tools, dir: &Path, img: &Path, roots: u8) -> serde_json::Value {
    let p = parse(t, img);
    let bytes = std::fs::read(img).unwrap();
    let size = p["image_size"].as_u64().unwrap() as usize;
    let data = dir.join("data-region");
    std::fs::write(&data, &bytes[..size]).unwrap();
    let (tree, fec, root_hex) = verity(t, dir, &data, roots);
    assert_eq!(p["root_digest"], root_hex.as_str(), "{}", img.display());
    let at = p["tree_offset"].as_u64().unwrap() as usize;
    assert!(
        bytes[at..at + tree.len()] == tree[..],
        "{}: tree",
        img.display()
    );
    if roots > 0 {
        let at = p["fec_offset"].as_u64().unwrap() as usize;
        assert!(
            bytes[at..at + fec.len()] == fec[..],
            "{}: FEC",
            img.display()
        );
    }
    p
}

#[test]
fn edited_images_get_their_hash_tree_recomputed_or_their_footer_stripped() {
    let Some(t) = (|| {
        Some(Tools {
            py: python_with(&["google.protobuf"])?,
            veritysetup: tool("veritysetup")?,
        })
    })() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zip = input(&t, d);
    let before = parse(&t, &d.join("imgs/product.img"));

    let out = d.join("out");
    romkit()
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .args([
            "build",
            "--profile",
            "xiaomi-eu",
            "--format",
            "images",
            "-o",
        ])
        .arg(&out)
        .arg(&zip)
        .assert()
        .success();
    let after = assert_consistent(&t, d, &out.join("product.img"), 2);
    assert_ne!(
        before["root_digest"], after["root_digest"],
        "the edit changed data"
    );
    assert_eq!(before["tree_offset"], after["tree_offset"]);
    let ext = assert_consistent(&t, d, &out.join("system_ext.img"), 0);
    assert_eq!(ext["partition_name"], "p");

    // system's footer names an unknown algorithm: stripped, every byte
    // after the filesystem zero, the partition's size kept.
    let system = std::fs::read(out.join("system.img")).unwrap();
    let source_len = std::fs::metadata(d.join("imgs/system.img")).unwrap().len();
    assert_eq!(system.len() as u64, source_len);
    let blocks = u32::from_le_bytes(system[1024 + 36..1024 + 40].try_into().unwrap());
    assert!(system[blocks as usize * 4096..].iter().all(|&b| b == 0));

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("out.manifest.json")).unwrap()).unwrap();
    let note = |name: &str| {
        manifest["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["avb_footer"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        note("product").contains(&format!(
            "root digest {}",
            after["root_digest"].as_str().unwrap()
        )),
        "{}",
        note("product")
    );
    assert!(
        note("system_ext").contains("signature no longer matches"),
        "{}",
        note("system_ext")
    );
    assert!(
        note("system").contains("stripped") && note("system").contains("md5"),
        "{}",
        note("system")
    );

    // An OTA build reuses the source operations outside the changed ranges
    // the edit reports; its images must be the same bytes.
    let ota = d.join("ota.zip");
    romkit()
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .args(["build", "--profile", "xiaomi-eu", "--format", "ota", "-o"])
        .arg(&ota)
        .arg(&zip)
        .assert()
        .success();
    romkit().arg("verify").arg(&ota).assert().success();
    let back = d.join("back");
    romkit()
        .arg("unpack")
        .arg(&ota)
        .arg("-o")
        .arg(&back)
        .assert()
        .success();
    for n in ["product", "system_ext", "system"] {
        let a = std::fs::read(out.join(format!("{n}.img"))).unwrap();
        let b = std::fs::read(back.join(format!("{n}.img"))).unwrap();
        assert!(a == b, "{n}: OTA and images builds differ");
    }
}
