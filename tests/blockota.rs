//! Block-based OTAs: romkit against sdat2img-brotli, and hostile transfer lists.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use predicates::prelude::*;

/// An image, its transfer list (v4: erase, new in two commands with holes,
/// zero) and the new data.
fn block_image() -> (Vec<u8>, String, Vec<u8>) {
    let blocks = 300usize;
    let mut img = mixed_image(9, blocks);
    // Blocks 100..120 are a `zero` range and 280..300 never written: zeros.
    img[100 * 4096..120 * 4096].fill(0);
    img[280 * 4096..].fill(0);
    let new_ranges = [(0usize, 100usize), (120, 200), (200, 280)];
    let mut data = Vec::new();
    for (a, b) in new_ranges {
        data.extend_from_slice(&img[a * 4096..b * 4096]);
    }
    let list = "4\n260\n0\n0\nerase 2,0,300\nnew 4,0,100,120,200\nzero 2,100,120\nnew 2,200,280\nerase 2,280,300\n"
        .to_string();
    (img, list, data)
}

fn zip_with(path: &Path, files: &[(&str, &[u8])]) {
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, data) in files {
        w.start_file(
            *name,
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored),
        )
        .unwrap();
        std::io::Write::write_all(&mut w, data).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn brotli_block_ota_matches_sdat2img() {
    let Some(brotli) = tool("brotli") else { return };
    let Some(sdat2img) = tool("sdat2img-brotli") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (img, list, data) = block_image();
    let dat = dir.path().join("system.new.dat");
    std::fs::write(&dat, &data).unwrap();
    run_ok(
        Command::new(brotli)
            .args(["-q", "5", "-f", "-o"])
            .arg(dir.path().join("system.new.dat.br"))
            .arg(&dat),
    );
    let br = std::fs::read(dir.path().join("system.new.dat.br")).unwrap();
    let tl = dir.path().join("system.transfer.list");
    std::fs::write(&tl, &list).unwrap();
    let meta = b"post-build=Xiaomi/cupid/cupid:12/SKQ1/V13.0.5.0.SLCCNXM:user/release-keys\npost-build-incremental=V13.0.5.0.SLCCNXM\npre-device=cupid\nota-type=BLOCK\n";
    let z = dir
        .path()
        .join("miui_CUPID_V13.0.5.0.SLCCNXM_0123456789_12.0.zip");
    zip_with(
        &z,
        &[
            ("META-INF/com/android/metadata", meta),
            ("system.transfer.list", list.as_bytes()),
            ("system.new.dat.br", &br),
            ("system.patch.dat", b""),
        ],
    );
    let v = json_ok(&["inspect", "--json"], &z);
    assert_eq!(v["kind"], "block-ota");
    assert_eq!(v["build"]["device"], "cupid");
    assert_eq!(v["partitions"][0]["name"], "system");
    assert_eq!(v["partitions"][0]["size"], 300 * 4096);
    romkit().arg("verify").arg(&z).assert().success();
    let out = dir.path().join("out");
    romkit()
        .args(["unpack", "-o"])
        .arg(&out)
        .arg(&z)
        .assert()
        .success();
    let ours = std::fs::read(out.join("system.img")).unwrap();
    assert!(ours == img, "romkit's image differs from the source image");
    // sdat2img-brotli on the same files (its exit code is not meaningful).
    let theirs = dir.path().join("sdat2img.img");
    let _ = Command::new(sdat2img)
        .arg("-d")
        .arg(dir.path().join("system.new.dat.br"))
        .arg("-t")
        .arg(&tl)
        .arg("-o")
        .arg(&theirs)
        .output()
        .unwrap();
    assert!(
        std::fs::read(&theirs).unwrap() == ours,
        "sdat2img-brotli disagrees"
    );
}

#[test]
fn uncompressed_v1_list() {
    let dir = tempfile::tempdir().unwrap();
    let (img, _, data) = block_image();
    let list = "1\n260\nerase 2,0,300\nnew 6,0,100,120,200,200,280\n";
    let z = dir.path().join("ota.zip");
    zip_with(
        &z,
        &[
            ("vendor.transfer.list", list.as_bytes()),
            ("vendor.new.dat", &data),
        ],
    );
    let out = dir.path().join("out");
    romkit()
        .args(["unpack", "-o"])
        .arg(&out)
        .arg(&z)
        .assert()
        .success();
    let ours = std::fs::read(out.join("vendor.img")).unwrap();
    assert_eq!(ours.len(), 300 * 4096);
    assert!(ours == img);
}

#[test]
fn hostile_transfer_lists() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, data) = block_image();
    for (list, msg) in [
        // Ranges past the new data: 300 blocks wanted, 260 given.
        ("4\n300\n0\n0\nnew 2,0,300\n", "lies past the data"),
        ("4\n260\n0\n0\nnew 2,5,4\n", "empty or reversed"),
        (
            "4\n1\n0\n0\nnew 2,0,1\nmove 2,0,1 2,1,2\n",
            "incremental OTA",
        ),
        ("4\n1\n0\n0\nbsdiff 0 1 2,0,1\n", "incremental OTA"),
        ("4\n1\n0\n0\nnew 2,0,99999999999\n", "largest image"),
        ("4\n5\n0\n0\nnew 2,0,1\n", "declares 5 new blocks"),
        ("9\n1\n", "version"),
    ] {
        let z = dir.path().join("bad.zip");
        zip_with(
            &z,
            &[
                ("system.transfer.list", list.as_bytes()),
                ("system.new.dat", &data),
            ],
        );
        let out = dir.path().join("out");
        romkit()
            .args(["unpack", "-o"])
            .arg(&out)
            .arg(&z)
            .assert()
            .code(3)
            .stderr(predicate::str::contains("bad.zip"))
            .stderr(predicate::str::contains(msg));
        assert!(!out.join("system.img").exists(), "{msg}");
    }
}
