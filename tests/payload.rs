//! The payload commands on the committed sample and on hostile payloads.

mod common;

use std::path::Path;

use common::*;
use predicates::prelude::*;
use romkit::format::payload::proto::{
    DeltaArchiveManifest, Extent, InstallOperation, OpType, PartitionInfo, PartitionUpdate,
};
use sha2::{Digest, Sha256};

#[test]
fn fixture_regenerates_byte_identical() {
    let committed = sample();
    let dir = tempfile::tempdir().unwrap();
    let out = romkit()
        .args(["-j", "1", "fixture", "-o"])
        .arg(dir.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let path = String::from_utf8(out).unwrap();
    let path = Path::new(path.trim());
    assert_eq!(
        path.file_name(),
        committed.file_name(),
        "same name (it embeds the payload hash)"
    );
    assert!(
        std::fs::read(path).unwrap() == std::fs::read(&committed).unwrap(),
        "identical bytes"
    );
    assert!(std::fs::metadata(&committed).unwrap().len() <= 5 << 20);
}

#[test]
fn inspect_decodes_the_sample() {
    let v = json_ok(&["inspect", "--json"], &sample());
    assert_eq!(v["kind"], "recovery-ota");
    assert_eq!(v["build"]["version"], "OS1.0.24.0.UMCCNXM");
    assert_eq!(v["build"]["decoded"]["release"], "1.0.24.0");
    assert_eq!(v["build"]["decoded"]["android"], "14");
    assert_eq!(v["build"]["decoded"]["region"], "CN");
    assert_eq!(v["build"]["device"], "fuxi");
    let names: Vec<&str> = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "boot",
            "vendor_boot",
            "dtbo",
            "vbmeta",
            "system",
            "system_ext",
            "product",
            "vendor",
            "odm",
            "mi_ext"
        ]
    );
    assert_eq!(v["groups"][0]["name"], "qti_dynamic_partitions");
    assert_eq!(v["partitions"][0]["content"], "android-boot");
    assert_eq!(v["payload"]["metadata_signature"], "unsigned");
    let system = &v["partitions"][4];
    assert!(system["operation_types"]["REPLACE_XZ"].as_u64().unwrap() > 1);
    for (i, content) in [
        (4, "erofs"),
        (5, "erofs"),
        (6, "erofs"),
        (7, "erofs"),
        (8, "erofs"),
        (9, "erofs"),
        (1, "vendor-boot"),
        (3, "vbmeta"),
    ] {
        assert_eq!(v["partitions"][i]["content"], content, "partition {i}");
    }
    romkit()
        .arg("inspect")
        .arg(sample())
        .assert()
        .success()
        .stdout(predicate::str::contains("HyperOS 1.0.24.0, Android 14"))
        .stdout(predicate::str::contains("REPLACE_XZ×"));
}

#[test]
fn unpack_matches_the_source_images() {
    let src = tempfile::tempdir().unwrap();
    let (images, _, _) = romkit::fixture::write_images(src.path(), 6 << 20).unwrap();
    let out = tempfile::tempdir().unwrap();
    romkit()
        .args(["unpack", "-o"])
        .arg(out.path())
        .arg(sample())
        .assert()
        .success();
    for img in &images {
        let got = std::fs::read(out.path().join(format!("{}.img", img.name))).unwrap();
        assert!(
            got == std::fs::read(&img.path).unwrap(),
            "{} differs from its source image",
            img.name
        );
    }
    assert_eq!(listing(out.path()).len(), images.len(), "no stray files");
    // Refuses to overwrite without --force, and leaves the images alone.
    romkit()
        .args(["unpack", "-o"])
        .arg(out.path())
        .arg(sample())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--force"));
    // --partitions, -j 1, --force.
    let before = std::fs::read(out.path().join("boot.img")).unwrap();
    romkit()
        .args([
            "-j",
            "1",
            "unpack",
            "--force",
            "--partitions",
            "vbmeta,boot",
            "-o",
        ])
        .arg(out.path())
        .arg(sample())
        .assert()
        .success();
    assert_eq!(std::fs::read(out.path().join("boot.img")).unwrap(), before);
    romkit()
        .args(["unpack", "-p", "nosuch", "-o"])
        .arg(out.path().join("x"))
        .arg(sample())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nosuch"));
    assert!(!out.path().join("x").exists());
}

#[test]
fn verify_passes_on_the_sample() {
    let v = json_ok(&["verify", "--json"], &sample());
    assert_eq!(v["ok"], true);
    let checks: Vec<String> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "ok")
        .map(|c| c["check"].as_str().unwrap().to_string())
        .collect();
    for c in [
        "payload_properties FILE_HASH",
        "payload_properties METADATA_HASH",
        "zip entry payload.bin",
        "partition system",
    ] {
        assert!(checks.iter().any(|x| x == c), "{c} checked: {checks:?}");
    }
}

/// Copies the sample and flips one byte in the data of `partition`'s
/// operation `op`; returns the copy.
fn corrupt_sample(dir: &Path, partition: &str, op: usize) -> std::path::PathBuf {
    let rom = romkit::rom::Rom::open(&sample()).unwrap();
    let part = rom.payload().unwrap().partition(partition).unwrap();
    let o = &part.ops[op];
    assert!(o.data_len > 10);
    let at = rom.payload().unwrap().source.base() + o.data_offset + o.data_len / 2;
    let mut bytes = std::fs::read(sample()).unwrap();
    bytes[at as usize] ^= 0x40;
    let p = dir.join("corrupt.zip");
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn flipped_byte_is_named_and_nothing_is_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let bad = corrupt_sample(dir.path(), "product", 2);
    romkit()
        .arg("verify")
        .arg(&bad)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("partition product, operation 2"))
        .stdout(predicate::str::contains("FILE_HASH"));
    let out = dir.path().join("out");
    romkit()
        .args(["unpack", "-o"])
        .arg(&out)
        .arg(&bad)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("partition product, operation 2"))
        .stderr(predicate::str::contains("data_sha256_hash mismatch"));
    assert_eq!(listing(&out), Vec::<String>::new(), "no output left behind");
    // Without verification the bad byte decodes to garbage or fails to decode;
    // either way the run must not panic.
    let r = romkit()
        .args(["unpack", "--no-verify", "-o"])
        .arg(dir.path().join("nv"))
        .arg(&bad)
        .assert();
    let code = r.get_output().status.code().unwrap();
    assert!(code == 0 || code == 3, "exit {code}");
}

// ---------------------------------------------------------------- hostile

fn op(kind: OpType, data_offset: u64, data: &[u8], dst: &[(u64, u64)]) -> InstallOperation {
    InstallOperation {
        r#type: Some(kind.to_wire()),
        data_offset: (!data.is_empty()).then_some(data_offset),
        data_length: (!data.is_empty()).then_some(data.len() as u64),
        dst_extents: dst.iter().map(|&(s, n)| Extent::new(s, n)).collect(),
        data_sha256_hash: (!data.is_empty()).then(|| Sha256::digest(data).to_vec()),
        ..Default::default()
    }
}

fn part(name: &str, size: u64, ops: Vec<InstallOperation>) -> PartitionUpdate {
    PartitionUpdate {
        partition_name: Some(name.into()),
        new_partition_info: Some(PartitionInfo {
            size: Some(size),
            hash: None,
        }),
        operations: ops,
        ..Default::default()
    }
}

fn manifest(parts: Vec<PartitionUpdate>) -> DeltaArchiveManifest {
    DeltaArchiveManifest {
        block_size: Some(4096),
        minor_version: Some(0),
        partitions: parts,
        ..Default::default()
    }
}

/// Runs inspect, verify and unpack on `bytes` written as payload.bin and
/// expects `code` and `msg` from each; checks nothing is left in the output.
fn expect_rejected(bytes: &[u8], code: i32, msg: &str) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("payload.bin");
    std::fs::write(&p, bytes).unwrap();
    for cmd in [&["verify"][..], &["inspect"][..]] {
        romkit()
            .args(cmd)
            .arg(&p)
            .assert()
            .code(code)
            .stderr(predicate::str::contains(msg));
    }
    let out = dir.path().join("out");
    romkit()
        .args(["unpack", "-o"])
        .arg(&out)
        .arg(&p)
        .assert()
        .code(code)
        .stderr(predicate::str::contains(msg))
        .stderr(predicate::str::contains("panicked").not());
    assert_eq!(listing(&out), Vec::<String>::new());
}

#[test]
fn hostile_headers() {
    let block = vec![7u8; 4096];
    let good = raw_payload(
        &manifest(vec![part(
            "a",
            4096,
            vec![op(OpType::Replace, 0, &block, &[(0, 1)])],
        )]),
        &block,
    );
    expect_rejected(&good[..10], 3, "header");
    let mut magic = good.clone();
    magic[..4].copy_from_slice(b"CrAX");
    // A bare file without the magic is not recognised at all; inside an OTA
    // zip the payload's own magic check names it.
    expect_rejected(&magic, 3, "not a package");
    let dir = tempfile::tempdir().unwrap();
    let z = dir.path().join("ota.zip");
    zip_with_payload(&z, &magic, zip::CompressionMethod::Stored);
    romkit()
        .arg("verify")
        .arg(&z)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("magic at offset 0"));
    let mut version = good.clone();
    version[11] = 3;
    expect_rejected(&version, 3, "major version 3");
    let mut msize = good.clone();
    msize[12..20].copy_from_slice(&(1u64 << 20).to_be_bytes());
    expect_rejected(&msize, 3, "manifest");
    let mut garbage = good.clone();
    for b in &mut garbage[24..40] {
        *b = 0xff;
    }
    expect_rejected(&garbage, 3, "DeltaArchiveManifest");
}

#[test]
fn hostile_operations() {
    let block = vec![7u8; 4096];
    // Data past the end of the file.
    let m = manifest(vec![part(
        "a",
        8192,
        vec![
            op(OpType::Replace, 0, &block, &[(0, 1)]),
            op(OpType::Replace, 4096, &block, &[(1, 1)]),
        ],
    )]);
    expect_rejected(
        &raw_payload(&m, &block),
        3,
        "past the end of the data section",
    );
    // Destination past the partition.
    let m = manifest(vec![part(
        "a",
        4096,
        vec![op(OpType::Replace, 0, &block, &[(1, 1)])],
    )]);
    expect_rejected(&raw_payload(&m, &block), 3, "past the end of the partition");
    // Overlapping destinations.
    let two = [block.clone(), block.clone()].concat();
    let mut o2 = op(OpType::Replace, 4096, &block, &[(0, 1)]);
    o2.data_offset = Some(4096);
    let m = manifest(vec![part(
        "a",
        8192,
        vec![op(OpType::Replace, 0, &block, &[(0, 1)]), o2],
    )]);
    expect_rejected(&raw_payload(&m, &two), 3, "overlapping");
    // A partition claiming 1 PiB, refused before allocating anything.
    let m = manifest(vec![part(
        "a",
        1 << 50,
        vec![op(OpType::Zero, 0, &[], &[(0, 1)])],
    )]);
    expect_rejected(&raw_payload(&m, &[]), 3, "1 TiB");
    // A partition name that would escape the output folder.
    let m = manifest(vec![part(
        "../../evil",
        4096,
        vec![op(OpType::Replace, 0, &block, &[(0, 1)])],
    )]);
    expect_rejected(&raw_payload(&m, &block), 3, "partition_name");
    // An xz stream that claims more output than its destination.
    let big = vec![0u8; 3 * 4096];
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
    std::io::Write::write_all(&mut enc, &big).unwrap();
    let xz = enc.finish().unwrap();
    let m = manifest(vec![part(
        "a",
        4096,
        vec![op(OpType::ReplaceXz, 0, &xz, &[(0, 1)])],
    )]);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("payload.bin");
    std::fs::write(&p, raw_payload(&m, &xz)).unwrap();
    romkit()
        .args(["unpack", "-o"])
        .arg(dir.path().join("out"))
        .arg(&p)
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "partition a, operation 0 (REPLACE_XZ)",
        ))
        .stderr(predicate::str::contains(
            "more than the 4096 destination bytes",
        ));
    assert_eq!(listing(&dir.path().join("out")), Vec::<String>::new());
}

#[test]
fn incremental_payload_is_named_and_refused() {
    let block = vec![1u8; 4096];
    let mut copy = op(OpType::SourceCopy, 0, &[], &[(0, 1)]);
    copy.src_extents = vec![Extent::new(0, 1)];
    let m = manifest(vec![part(
        "system",
        8192,
        vec![copy, op(OpType::Replace, 0, &block, &[(1, 1)])],
    )]);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("payload.bin");
    std::fs::write(&p, raw_payload(&m, &block)).unwrap();
    romkit()
        .arg("inspect")
        .arg(&p)
        .assert()
        .success()
        .stdout(predicate::str::contains("SOURCE_COPY×1"))
        .stdout(predicate::str::contains("incremental"));
    romkit()
        .args(["unpack", "-o"])
        .arg(dir.path().join("out"))
        .arg(&p)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("incremental"))
        .stderr(predicate::str::contains("SOURCE_COPY"));
    assert!(!dir.path().join("out").exists());
    // verify still checks the data hashes it can.
    romkit()
        .arg("verify")
        .arg(&p)
        .assert()
        .success()
        .stdout(predicate::str::contains("1 data hashes checked"));
}

#[test]
fn compressed_payload_in_zip_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let payload = std::fs::read(sample()).unwrap();
    // Take payload.bin out of the sample and put it back deflated.
    let mut src = zip::ZipArchive::new(std::io::Cursor::new(payload)).unwrap();
    let mut inner = Vec::new();
    std::io::Read::read_to_end(&mut src.by_name("payload.bin").unwrap(), &mut inner).unwrap();
    let p = dir.path().join("deflated.zip");
    zip_with_payload(&p, &inner, zip::CompressionMethod::Deflated);
    romkit()
        .arg("inspect")
        .arg(&p)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("payload.bin is compressed"))
        .stderr(predicate::str::contains("stored"));
}

#[test]
fn not_a_package() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.bin");
    std::fs::write(&p, b"hello world").unwrap();
    romkit()
        .arg("inspect")
        .arg(&p)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("not a package"));
    romkit()
        .arg("inspect")
        .arg(dir.path().join("missing"))
        .assert()
        .code(4);
    let z = dir.path().join("empty.zip");
    let w = zip::ZipWriter::new(std::fs::File::create(&z).unwrap());
    w.finish().unwrap();
    romkit()
        .arg("verify")
        .arg(&z)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("no payload.bin"));
}

#[test]
fn out_of_order_and_split_extents_hash_in_image_order() {
    // Image of 6 blocks; ops listed in reverse order, one op writing two
    // non-adjacent extents, one block left to a ZERO op, one block never written.
    let img: Vec<u8> = (0..6 * 4096)
        .map(|i| {
            if (4096..8192).contains(&i) || i >= 5 * 4096 {
                0
            } else {
                (i % 241) as u8 + 1
            }
        })
        .collect();
    let blk = |b: usize| &img[b * 4096..(b + 1) * 4096];
    let split = [blk(0), blk(3)].concat(); // blocks 0 and 3, in that order
    let b2 = blk(2).to_vec();
    let b4 = blk(4).to_vec();
    let mut data = Vec::new();
    let mut ops = Vec::new();
    for (bytes, dst) in [
        (&b4, vec![(4, 1)]),
        (&split, vec![(0, 1), (3, 1)]),
        (&b2, vec![(2, 1)]),
    ] {
        ops.push(op(OpType::Replace, data.len() as u64, bytes, &dst));
        data.extend_from_slice(bytes);
    }
    ops.push(op(OpType::Zero, 0, &[], &[(1, 1)]));
    let mut p = part("odd", img.len() as u64, ops);
    p.new_partition_info.as_mut().unwrap().hash = Some(Sha256::digest(&img).to_vec());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payload.bin");
    std::fs::write(&path, raw_payload(&manifest(vec![p]), &data)).unwrap();
    for jobs in ["1", "2", "8"] {
        romkit()
            .args(["-j", jobs, "verify"])
            .arg(&path)
            .assert()
            .success();
        let out = dir.path().join(format!("out{jobs}"));
        romkit()
            .args(["-j", jobs, "unpack", "-o"])
            .arg(&out)
            .arg(&path)
            .assert()
            .success();
        assert!(std::fs::read(out.join("odd.img")).unwrap() == img);
    }
    // The same payload with a wrong partition hash fails both, naming it.
    let mut bad = img.clone();
    bad[0] ^= 1;
    let mut p = part("odd", img.len() as u64, vec![]);
    p.new_partition_info.as_mut().unwrap().hash = Some(Sha256::digest(&bad).to_vec());
    let m = manifest(vec![p]);
    std::fs::write(&path, raw_payload(&m, &[])).unwrap();
    romkit()
        .arg("verify")
        .arg(&path)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("partition odd"));
    romkit()
        .args(["unpack", "-o"])
        .arg(dir.path().join("bad"))
        .arg(&path)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("new_partition_info.hash mismatch"));
    assert_eq!(listing(&dir.path().join("bad")), Vec::<String>::new());
}

#[test]
fn sample_zip_layout_is_what_devices_expect() {
    let f = std::fs::File::open(sample()).unwrap();
    let mut z = zip::ZipArchive::new(f).unwrap();
    let names: Vec<String> = z
        .file_names_raw()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "META-INF/com/android/metadata",
            "payload.bin",
            "payload_properties.txt"
        ]
    );
    let e = z.by_name("payload.bin").unwrap();
    assert_eq!(e.compression(), zip::CompressionMethod::Stored);
    assert_eq!(
        e.data_start().unwrap() % 4096,
        0,
        "payload.bin data is 4096-aligned"
    );
    drop(e);
    let mut props = String::new();
    std::io::Read::read_to_string(
        &mut z.by_name("payload_properties.txt").unwrap(),
        &mut props,
    )
    .unwrap();
    let keys: Vec<&str> = props
        .lines()
        .map(|l| l.split('=').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["FILE_HASH", "FILE_SIZE", "METADATA_HASH", "METADATA_SIZE"]
    );
    let mut meta = String::new();
    std::io::Read::read_to_string(
        &mut z.by_name("META-INF/com/android/metadata").unwrap(),
        &mut meta,
    )
    .unwrap();
    assert!(meta.contains("ota-type=AB\n"));
    assert!(meta.contains("pre-device=fuxi\n"));
    assert!(meta.contains("post-build-incremental=OS1.0.24.0.UMCCNXM\n"));
}

#[test]
fn buffered_and_direct_writes_give_the_same_images() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("direct"), dir.path().join("buffered"));
    romkit()
        .args(["unpack", "-o"])
        .arg(&a)
        .arg(sample())
        .assert()
        .success();
    romkit()
        .env("ROMKIT_NO_DIRECT_IO", "1")
        .args(["unpack", "-o"])
        .arg(&b)
        .arg(sample())
        .assert()
        .success();
    let names = listing(&a);
    assert_eq!(names, listing(&b));
    for n in names {
        assert!(
            std::fs::read(a.join(&n)).unwrap() == std::fs::read(b.join(&n)).unwrap(),
            "{n}"
        );
    }
}
