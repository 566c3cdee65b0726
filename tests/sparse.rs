//! Android sparse images: romkit against img2simg/simg2img, and hostile inputs.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use predicates::prelude::*;

/// A sparse image written by hand: header, then (type, blocks, data) chunks.
fn handmade(path: &Path, total_blocks: u32, chunks: &[(u16, u32, Vec<u8>)]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xED26_FF3Au32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&28u16.to_le_bytes());
    out.extend_from_slice(&12u16.to_le_bytes());
    out.extend_from_slice(&4096u32.to_le_bytes());
    out.extend_from_slice(&total_blocks.to_le_bytes());
    out.extend_from_slice(&(chunks.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for (kind, blocks, data) in chunks {
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&blocks.to_le_bytes());
        out.extend_from_slice(&(12 + data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn romkit_sparse_and_split_parts_expand_with_simg2img() {
    let Some(simg2img) = tool("simg2img") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.img");
    let img = mixed_image(11, 700);
    std::fs::write(&raw, &img).unwrap();
    // One file, then parts of at most 600 KiB, merged by simg2img.
    let one = dir.path().join("one.simg");
    romkit()
        .args(["sparse", "-o"])
        .arg(&one)
        .arg(&raw)
        .assert()
        .success();
    let back = dir.path().join("back.img");
    run_ok(Command::new(&simg2img).arg(&one).arg(&back));
    assert_eq!(std::fs::read(&back).unwrap(), img);
    let split = dir.path().join("split.simg");
    romkit()
        .args(["sparse", "--split", "600K", "-o"])
        .arg(&split)
        .arg(&raw)
        .assert()
        .success();
    let mut parts: Vec<_> = (0..)
        .map(|i| dir.path().join(format!("split.simg.{i}")))
        .take_while(|p| p.exists())
        .collect();
    assert!(parts.len() > 2, "{} parts", parts.len());
    for p in &parts {
        assert!(std::fs::metadata(p).unwrap().len() <= 600 << 10);
    }
    let merged = dir.path().join("merged.img");
    run_ok(Command::new(&simg2img).args(&parts).arg(&merged));
    assert_eq!(std::fs::read(&merged).unwrap(), img);
    // romkit merges them too, in any order given.
    parts.reverse();
    let ours = dir.path().join("ours.img");
    romkit()
        .args(["unsparse", "-o"])
        .arg(&ours)
        .args(&parts)
        .assert()
        .success();
    assert_eq!(std::fs::read(&ours).unwrap(), img);
}

#[test]
fn img2simg_images_read_by_romkit() {
    let Some(img2simg) = tool("img2simg") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.img");
    let img = mixed_image(5, 513);
    std::fs::write(&raw, &img).unwrap();
    let s = dir.path().join("vendor_boot.img");
    run_ok(Command::new(&img2simg).arg(&raw).arg(&s));
    let back = dir.path().join("back.img");
    romkit()
        .args(["unsparse", "-o"])
        .arg(&back)
        .arg(&s)
        .assert()
        .success();
    assert_eq!(std::fs::read(&back).unwrap(), img);
    // A bare sparse image is a package of one partition.
    let out = dir.path().join("out");
    romkit()
        .args(["unpack", "-o"])
        .arg(&out)
        .arg(&s)
        .assert()
        .success();
    assert_eq!(std::fs::read(out.join("vendor_boot.img")).unwrap(), img);
    romkit()
        .arg("verify")
        .arg(&s)
        .assert()
        .success()
        .stdout(predicate::str::contains("sparse structure of 513 blocks"));
}

#[test]
fn chunk_past_declared_size_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.img");
    // Declares 4 blocks, the chunks cover 2 + 3.
    handmade(
        &p,
        4,
        &[(0xCAC1, 2, vec![7u8; 8192]), (0xCAC2, 3, vec![1, 2, 3, 4])],
    );
    let out = dir.path().join("out");
    romkit()
        .args(["unpack", "-o"])
        .arg(&out)
        .arg(&p)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("bad.img"))
        .stderr(predicate::str::contains("offset 8232"))
        .stderr(predicate::str::contains("past the declared 4 blocks"));
    assert!(!out.join("bad.img").exists());
    // A raw chunk whose data runs past the end of the file.
    handmade(&p, 4, &[(0xCAC1, 4, vec![7u8; 8192])]);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[28 + 8..28 + 12].copy_from_slice(&(12u32 + 4 * 4096).to_le_bytes());
    std::fs::write(&p, bytes).unwrap();
    romkit()
        .args(["unsparse", "-o"])
        .arg(dir.path().join("x.img"))
        .arg(&p)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("run past the end of the file"));
    assert!(!dir.path().join("x.img").exists());
}

#[test]
fn crc_mismatch_fails_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("crc.img");
    let data = noise(3, 8192);
    let mut h = crc32fast::Hasher::new();
    h.update(&data);
    h.update(&[0u8; 4096]);
    let good = h.finalize();
    let chunks = |crc: u32| {
        vec![
            (0xCAC1u16, 2u32, data.clone()),
            (0xCAC3, 1, vec![]),
            (0xCAC4, 0, crc.to_le_bytes().to_vec()),
        ]
    };
    handmade(&p, 3, &chunks(good));
    romkit()
        .arg("verify")
        .arg(&p)
        .assert()
        .success()
        .stdout(predicate::str::contains("1 CRC-32 checksum(s)"));
    handmade(&p, 3, &chunks(good ^ 1));
    romkit()
        .arg("verify")
        .arg(&p)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("CRC-32 mismatch"));
    let out = dir.path().join("out");
    romkit()
        .args(["unpack", "-o"])
        .arg(&out)
        .arg(&p)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("CRC-32 mismatch"));
    assert_eq!(listing(&out), Vec::<String>::new());
    romkit()
        .args(["unsparse", "-o"])
        .arg(dir.path().join("raw.img"))
        .arg(&p)
        .assert()
        .code(1);
    assert!(!dir.path().join("raw.img").exists());
}

#[test]
fn overlapping_parts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("s.img.0");
    let b = dir.path().join("s.img.1");
    handmade(&a, 4, &[(0xCAC2, 2, vec![1; 4]), (0xCAC3, 2, vec![])]);
    handmade(&b, 4, &[(0xCAC3, 1, vec![]), (0xCAC2, 3, vec![2; 4])]);
    romkit()
        .args(["unsparse", "-o"])
        .arg(dir.path().join("o.img"))
        .arg(&a)
        .arg(&b)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("defines too"));
}
