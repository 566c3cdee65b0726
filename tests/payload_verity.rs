//! Payload partitions whose hash tree and FEC the device computes
//! (update_metadata.proto fields 10–16). The independent Python writer
//! (`tests/oracles/write_payload.py --verity`) leaves the tree and parity
//! blocks out of the operations, as delta_generator does, and records
//! `new_partition_info.hash` over the whole image, whose tree and parity come
//! from cryptsetup's `veritysetup`. `unpack` must write that image byte for
//! byte and `verify` must accept it without writing images.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{hex, noise, python_with, romkit, root, run_ok, tool};

const SALT: [u8; 32] = [0x3c; 32];
const DATA_BLOCKS: usize = 700;

/// The full image of `data` with veritysetup's tree and FEC after it;
/// returns it with the tree and FEC sizes in blocks.
fn verity_image(veritysetup: &Path, dir: &Path, data: &[u8], roots: u8) -> (Vec<u8>, usize, usize) {
    let (d, h, f) = (dir.join("d"), dir.join("h"), dir.join("f"));
    std::fs::write(&d, data).unwrap();
    std::fs::write(&f, b"").unwrap();
    let fec = (roots > 0).then_some((f.as_path(), roots));
    common::veritysetup(veritysetup, &d, &h, fec, "sha256", &hex(&SALT));
    let (tree, fec) = (std::fs::read(&h).unwrap(), std::fs::read(&f).unwrap());
    let image = [data, &tree, &fec].concat();
    (image, tree.len() / 4096, fec.len() / 4096)
}

/// Writes an OTA zip with `system` (verity fields as given) and `vendor`
/// (none).
fn ota(py: &Path, dir: &Path, system: &[u8], verity: &str, name: &str) -> PathBuf {
    let sys = dir.join("system.img");
    let ven = dir.join("vendor.img");
    std::fs::write(&sys, system).unwrap();
    std::fs::write(&ven, noise(9, 64 * 4096)).unwrap();
    let zip = dir.join(format!("{name}.zip"));
    run_ok(
        Command::new(py)
            .arg(root().join("tests/oracles/write_payload.py"))
            .arg(dir.join(format!("{name}.bin")))
            .arg("--chunk=262144")
            .arg(format!("--part=system={}:xz,raw,zero", sys.display()))
            .arg(format!("--part=vendor={}", ven.display()))
            .arg(format!("--verity=system={verity}"))
            .arg("--zip")
            .arg(&zip),
    );
    zip
}

struct Tools {
    py: PathBuf,
    veritysetup: PathBuf,
}

fn tools() -> Option<Tools> {
    Some(Tools {
        py: python_with(&["google.protobuf"])?,
        veritysetup: tool("veritysetup")?,
    })
}

#[test]
fn unpack_and_verify_compute_tree_and_fec_as_the_device_does() {
    let Some(t) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for roots in [2u8, 0] {
        let mut data = noise(21, DATA_BLOCKS * 4096);
        data[100 * 4096..140 * 4096].fill(0); // a ZERO operation's range
        let (image, tree, fec) = verity_image(&t.veritysetup, d, &data, roots);
        let spec = format!("{DATA_BLOCKS},{tree},{fec},sha256,{},{roots}", hex(&SALT));
        let zip = ota(&t.py, d, &image, &spec, &format!("ota{roots}"));

        let out = d.join(format!("out{roots}"));
        romkit()
            .arg("unpack")
            .arg(&zip)
            .arg("-o")
            .arg(&out)
            .assert()
            .success();
        let got = std::fs::read(out.join("system.img")).unwrap();
        assert_eq!(got.len(), image.len());
        assert!(
            got == image,
            "roots {roots}: system.img differs from veritysetup's"
        );
        assert_eq!(
            std::fs::read(out.join("vendor.img")).unwrap(),
            noise(9, 64 * 4096)
        );

        romkit().arg("verify").arg(&zip).assert().success();
    }
}

#[test]
fn a_wrong_salt_fails_the_partition_hash() {
    let Some(t) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = noise(22, DATA_BLOCKS * 4096);
    let (image, tree, fec) = verity_image(&t.veritysetup, d, &data, 2);
    let spec = format!("{DATA_BLOCKS},{tree},{fec},sha256,{},2", hex(&[0x3d; 32]));
    let zip = ota(&t.py, d, &image, &spec, "wrong");
    let out = romkit().arg("verify").arg(&zip).assert().code(1);
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string()
        + &String::from_utf8_lossy(&out.get_output().stderr);
    assert!(text.contains("system"), "{text}");
    let dest = d.join("out");
    romkit()
        .arg("unpack")
        .arg(&zip)
        .arg("-o")
        .arg(&dest)
        .assert()
        .code(1);
    assert!(
        !dest.join("system.img").exists(),
        "nothing under the final name"
    );
}

#[test]
fn verity_fields_that_cannot_be_right_are_refused() {
    let Some(t) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = noise(23, DATA_BLOCKS * 4096);
    let (image, tree, fec) = verity_image(&t.veritysetup, d, &data, 2);
    let salt = hex(&SALT);
    for (spec, want) in [
        (
            format!("{DATA_BLOCKS},{},{fec},sha256,{salt},2", tree + 1),
            "hash_tree_extent is",
        ),
        (format!("{DATA_BLOCKS},{tree},{fec},md5,{salt},2"), "md5"),
        (
            format!("{DATA_BLOCKS},{tree},{fec},sha256,{salt},30"),
            "fec_roots = 30",
        ),
    ] {
        let img = [&image[..], &vec![0u8; 4096][..]].concat();
        let zip = ota(&t.py, d, &img, &spec, "bad");
        let out = romkit().arg("verify").arg(&zip).assert().code(3);
        let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(
            err.contains("partition system") && err.contains(want),
            "{want}: {err}"
        );
    }
}

#[test]
fn payload_dumper_leaves_the_verity_blocks_to_the_device() {
    // payload_dumper 0.8.4 applies the operations only: its image equals
    // romkit's over the data and is zero where the tree and FEC go, which
    // romkit fills as update_engine does.
    let Some(t) = tools() else { return };
    let found = std::env::var_os("ROMKIT_PAYLOAD_DUMPER")
        .map(PathBuf::from)
        .filter(|p| p.exists());
    let Some(dumper) = common::need("payload_dumper 0.8.4 (ROMKIT_PAYLOAD_DUMPER)", found) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = noise(24, DATA_BLOCKS * 4096);
    let (image, tree, fec) = verity_image(&t.veritysetup, d, &data, 2);
    let spec = format!("{DATA_BLOCKS},{tree},{fec},sha256,{},2", hex(&SALT));
    ota(&t.py, d, &image, &spec, "peer");
    let peer = d.join("peer-out");
    run_ok(
        Command::new(dumper)
            .arg(d.join("peer.bin"))
            .arg("-o")
            .arg(&peer),
    );
    let theirs = std::fs::read(peer.join("system.img")).unwrap();
    let n = DATA_BLOCKS * 4096;
    assert!(theirs[..n] == image[..n], "data region");
    assert!(
        theirs[n..].iter().all(|&b| b == 0),
        "payload_dumper writes no tree"
    );
}
