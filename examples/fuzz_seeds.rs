//! Writes the seed corpus of the fuzz targets (`fuzz/corpus/TARGET/`): small,
//! valid inputs made by romkit's own writers, so the fuzzers start from
//! inputs that reach deep into every parser.
//!
//! ```text
//! cargo run --release --example fuzz_seeds -- fuzz/corpus
//! ```
//!
//! ext4 seeds need `mke2fs` and are made by `fuzz/seeds.sh`, which runs this
//! too.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use prost::Message;
use romkit::format::lp::{PartitionSpec, SuperSpec};
use romkit::format::payload::proto::{Extent, InstallOperation, PartitionInfo, PartitionUpdate};
use romkit::format::payload::{DeltaArchiveManifest, Header, OpType};
use romkit::format::sparse::SparseOptions;
use romkit::fs::erofs::writer::{self as erofs, Lz4hc};
use romkit::fs::tree::{FileData, Kind, Meta, Tree};
use romkit::package::super_image::write_super;
use sha2::{Digest, Sha256};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn put(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> Res<()> {
    let d = dir.join(target);
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join(name), bytes)?;
    Ok(())
}

/// Deterministic bytes that do not compress.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn xz(b: &[u8]) -> Res<Vec<u8>> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(b)?;
    Ok(e.finish()?)
}

fn bz(b: &[u8]) -> Res<Vec<u8>> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    e.write_all(b)?;
    Ok(e.finish()?)
}

fn zstd(b: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(b, ruzstd::encoding::CompressionLevel::Fastest)
}

/// One operation of a seed payload: type, first block, blocks, data.
type SeedOp = (OpType, u64, u64, Vec<u8>);

/// A full payload of the given partitions (name, size in 4 KiB blocks,
/// operations), every hash filled in.
fn payload(parts: &[(&str, u64, Vec<SeedOp>)]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut updates = Vec::new();
    for (name, blocks, ops) in parts {
        let mut image = vec![0u8; (*blocks * 4096) as usize];
        let mut iops = Vec::new();
        for (kind, start, n, blob) in ops {
            let mut out = vec![0u8; (*n * 4096) as usize];
            if romkit::format::payload::decode::decode_into(*kind, blob, &mut out).is_ok() {
                let s = (*start * 4096) as usize;
                image[s..s + out.len()].copy_from_slice(&out);
            }
            iops.push(InstallOperation {
                r#type: Some(kind.to_wire()),
                data_offset: Some(data.len() as u64),
                data_length: Some(blob.len() as u64),
                dst_extents: vec![Extent::new(*start, *n)],
                data_sha256_hash: (!blob.is_empty()).then(|| Sha256::digest(blob).to_vec()),
                ..Default::default()
            });
            data.extend_from_slice(blob);
        }
        updates.push(PartitionUpdate {
            partition_name: Some(name.to_string()),
            new_partition_info: Some(PartitionInfo {
                size: Some(*blocks * 4096),
                hash: Some(Sha256::digest(&image).to_vec()),
            }),
            operations: iops,
            ..Default::default()
        });
    }
    let m = DeltaArchiveManifest {
        block_size: Some(4096),
        minor_version: Some(0),
        partitions: updates,
        max_timestamp: Some(1_700_000_000),
        security_patch_level: Some("2024-01-01".into()),
        ..Default::default()
    }
    .encode_to_vec();
    let h = Header {
        version: 2,
        manifest_size: m.len() as u64,
        metadata_signature_size: 0,
    };
    let mut out = h.to_bytes().to_vec();
    out.extend_from_slice(&m);
    out.extend_from_slice(&data);
    out
}

/// One operation in the layout the `payload_ops` target decodes.
fn op_record(kind: OpType, flags: u8, start: u8, blocks: u8, blob: &[u8]) -> Vec<u8> {
    let mut r = vec![kind.to_wire() as u8, flags, start, blocks];
    r.extend_from_slice(&(blob.len() as u16).to_le_bytes());
    r.extend_from_slice(blob);
    r
}

/// A sparse image of `raw` as romkit writes it.
fn sparse_of(raw: &[u8], tmp: &Path) -> Res<Vec<u8>> {
    let src = tmp.join("raw.img");
    std::fs::write(&src, raw)?;
    let dest = tmp.join("out.simg");
    let _ = std::fs::remove_file(&dest);
    romkit::package::sparse_out::sparse_raw_file(&src, &dest, &SparseOptions::default(), true)?;
    Ok(std::fs::read(&dest)?)
}

/// A hand-made sparse image with every chunk type, a CRC32 chunk and the
/// header checksum.
fn sparse_all_chunks() -> Vec<u8> {
    let block = noise(3, 4096);
    let fill = [0xA5u8, 0x5A, 0x01, 0x02];
    let mut crc = crc32fast::Hasher::new();
    crc.update(&block);
    let filled: Vec<u8> = fill.iter().copied().cycle().take(4096).collect();
    crc.update(&filled);
    crc.update(&[0u8; 4096]);
    let running = crc.clone().finalize();
    let mut out = Vec::new();
    let le16 = |v: u16| v.to_le_bytes();
    let le32 = |v: u32| v.to_le_bytes();
    out.extend_from_slice(&le32(0xED26_FF3A));
    out.extend_from_slice(&le16(1));
    out.extend_from_slice(&le16(0));
    out.extend_from_slice(&le16(28));
    out.extend_from_slice(&le16(12));
    out.extend_from_slice(&le32(4096));
    out.extend_from_slice(&le32(3));
    out.extend_from_slice(&le32(4));
    out.extend_from_slice(&le32(running));
    let chunk = |out: &mut Vec<u8>, kind: u16, blocks: u32, total: u32| {
        out.extend_from_slice(&le16(kind));
        out.extend_from_slice(&le16(0));
        out.extend_from_slice(&le32(blocks));
        out.extend_from_slice(&le32(total));
    };
    chunk(&mut out, 0xCAC1, 1, 12 + 4096);
    out.extend_from_slice(&block);
    chunk(&mut out, 0xCAC2, 1, 16);
    out.extend_from_slice(&fill);
    chunk(&mut out, 0xCAC3, 1, 12);
    chunk(&mut out, 0xCAC4, 0, 16);
    out.extend_from_slice(&le32(running));
    out
}

/// A small super image (raw) with two groups and three partitions.
fn super_image(tmp: &Path, slots: u32, vab: bool) -> Res<Vec<u8>> {
    let spec = SuperSpec {
        device_size: 128 << 10,
        metadata_max_size: 4096,
        metadata_slots: slots,
        alignment: 4096,
        virtual_ab: vab,
        groups: vec![("main".into(), 64 << 10)],
        partitions: vec![
            PartitionSpec {
                name: "system_a".into(),
                group: "main".into(),
                attributes: 1,
                size: 16 << 10,
            },
            PartitionSpec {
                name: "vendor_a".into(),
                group: "main".into(),
                attributes: 1,
                size: 8 << 10,
            },
            PartitionSpec {
                name: "system_b".into(),
                group: "default".into(),
                attributes: 0,
                size: 0,
            },
        ],
        ..Default::default()
    };
    let m = spec.build()?;
    let dest = tmp.join(format!("super{slots}{vab}.img"));
    let _ = std::fs::remove_file(&dest);
    write_super(&m, &[], &dest, None, true)?;
    Ok(std::fs::read(&dest)?)
}

/// A tiny tree: directories, files (empty, small, one that compresses, one
/// that does not), a symlink, a device node, a hard link and xattrs.
fn small_tree() -> Tree {
    let meta = |perm: u32, label: &str| Meta {
        perm,
        uid: 0,
        gid: 2000,
        mtime: 1_700_000_000,
        mtime_nsec: 0,
        xattrs: BTreeMap::from([(
            b"security.selinux".to_vec(),
            format!("u:object_r:{label}:s0\0").into_bytes(),
        )]),
    };
    let mut t = Tree::new(meta(0o755, "rootfs"));
    let root = t.root();
    let etc = t.add_inode(romkit::fs::tree::Inode {
        kind: Kind::Dir(Default::default()),
        meta: meta(0o755, "system_file"),
    });
    t.link(root, b"etc", etc).expect("link etc");
    let _ = t.add_file(
        "etc/build.prop",
        FileData::Bytes(
            b"ro.build.version.incremental=OS2.0.205.0.VNCCNXM\n"
                .to_vec()
                .into(),
        ),
        meta(0o644, "system_file"),
    );
    let _ = t.add_file(
        "etc/empty",
        FileData::Bytes(Vec::new().into()),
        meta(0o644, "system_file"),
    );
    let big: Vec<u8> = b"romkit ".iter().copied().cycle().take(20_000).collect();
    let id = t
        .add_file(
            "etc/text",
            FileData::Bytes(big.into()),
            meta(0o644, "system_file"),
        )
        .expect("add text");
    t.link(root, b"hardlink", id).expect("hard link");
    let mut caps = meta(0o755, "system_file");
    caps.xattrs.insert(
        b"security.capability".to_vec(),
        [2u8, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0].to_vec(),
    );
    let _ = t.add_file("bin", FileData::Bytes(noise(9, 5000).into()), caps);
    let link = t.add_inode(romkit::fs::tree::Inode {
        kind: Kind::Symlink(b"etc/build.prop".to_vec()),
        meta: meta(0o777, "system_file"),
    });
    t.link(root, b"prop", link).expect("symlink");
    let dev = t.add_inode(romkit::fs::tree::Inode {
        kind: Kind::CharDev((1 << 8) | 3),
        meta: meta(0o666, "null_device"),
    });
    t.link(root, b"null", dev).expect("device");
    t
}

fn erofs_image(tree: &Tree, compression: Option<Lz4hc>) -> Res<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    let opts = erofs::ErofsOptions {
        build_time: Some(1_700_000_000),
        volume_name: Some("system".into()),
        compression,
        jobs: 1,
    };
    erofs::write(tree, &opts, &mut out)?;
    Ok(out.into_inner())
}

fn zip_of(files: &[(&str, &[u8])], method: zip::CompressionMethod) -> Res<Vec<u8>> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, data) in files {
        w.start_file(*name, opts)?;
        w.write_all(data)?;
    }
    Ok(w.finish()?.into_inner())
}

fn tgz_of(files: &[(&str, &[u8])]) -> Res<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        tar.append_data(&mut h, name, *data)?;
    }
    Ok(tar.into_inner()?.finish()?)
}

fn main() -> Res<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    let tmp = tempfile::tempdir()?;
    let tmp = tmp.path();

    // payload.bin: every full operation type, two partitions, a ZERO range.
    let text: Vec<u8> = b"payload ".iter().copied().cycle().take(8192).collect();
    let rnd = noise(1, 4096);
    let pay = payload(&[
        (
            "system",
            6,
            vec![
                (OpType::Replace, 0, 1, rnd.clone()),
                (OpType::ReplaceXz, 1, 2, xz(&text)?),
                (OpType::ReplaceBz, 3, 1, bz(&text[..4096])?),
                (OpType::ReplaceZstd, 4, 1, zstd(&text[..4096])),
                (OpType::Zero, 5, 1, Vec::new()),
            ],
        ),
        (
            "vendor",
            1,
            vec![(OpType::Replace, 0, 1, text[..4096].to_vec())],
        ),
    ]);
    put(&dir, "payload_manifest", "full", &pay)?;
    let small = payload(&[("boot", 1, vec![(OpType::ReplaceXz, 0, 1, xz(&rnd)?)])]);
    put(&dir, "payload_manifest", "xz", &small)?;
    put(&dir, "package_detect", "payload", &small)?;

    // payload_ops records.
    let page = &text[..4096];
    let mut rec = vec![4u8];
    rec.extend(op_record(OpType::Replace, 1, 0, 1, &rnd));
    rec.extend(op_record(OpType::ReplaceXz, 1, 1, 1, &xz(page)?));
    rec.extend(op_record(OpType::Zero, 0, 2, 1, &[]));
    rec.extend(op_record(OpType::ReplaceBz, 0, 3, 1, &bz(page)?));
    put(&dir, "payload_ops", "mixed", &rec)?;
    let mut rec = vec![3u8];
    rec.extend(op_record(OpType::ReplaceZstd, 3, 0, 1, &zstd(&text)));
    put(&dir, "payload_ops", "zstd_two_extents", &rec)?;
    let mut rec = vec![2u8];
    rec.extend(op_record(OpType::ReplaceXz, 1, 0, 2, &xz(&text)?));
    put(&dir, "payload_ops", "xz", &rec)?;

    // Sparse images: romkit's writer (RAW, FILL) and every chunk type.
    let mut raw = noise(2, 4096 * 2);
    raw.extend(vec![0u8; 4096 * 2]);
    raw.extend([1u8, 2, 3, 4].iter().copied().cycle().take(4096));
    let simg = sparse_of(&raw, tmp)?;
    put(&dir, "sparse", "written", &simg)?;
    put(&dir, "sparse", "all_chunks", &sparse_all_chunks())?;
    put(&dir, "package_detect", "sparse", &simg)?;

    // LP super images.
    let sup = super_image(tmp, 2, false)?;
    put(&dir, "lp_metadata", "ab", &sup)?;
    put(&dir, "lp_metadata", "vab", &super_image(tmp, 3, true)?)?;
    put(&dir, "package_detect", "super", &sup)?;
    put(
        &dir,
        "package_detect",
        "super_sparse",
        &sparse_of(&sup, tmp)?,
    )?;

    // Transfer lists, versions 1 to 4.
    put(
        &dir,
        "transfer_list",
        "v1",
        b"1\n8\nerase 2,0,8\nnew 2,0,4\nzero 2,4,8\n",
    )?;
    put(
        &dir,
        "transfer_list",
        "v2",
        b"2\n8\n0\n0\nnew 4,0,2,4,6\nzero 4,2,4,6,8\n",
    )?;
    put(
        &dir,
        "transfer_list",
        "v3",
        b"3\n8\n0\n0\nerase 2,0,8\nnew 2,0,8\n",
    )?;
    put(
        &dir,
        "transfer_list",
        "v4",
        b"4\n10\n0\n0\nerase 2,0,10\nnew 4,0,3,5,10\nzero 2,3,5\n",
    )?;

    // EROFS: plain and LZ4HC.
    let tree = small_tree();
    put(&dir, "erofs_tree", "plain", &erofs_image(&tree, None)?)?;
    put(
        &dir,
        "erofs_tree",
        "lz4hc",
        &erofs_image(&tree, Some(Lz4hc::default()))?,
    )?;

    // APKs from the fixture generator's tree.
    let apps = romkit::fixture::trees::tree("system", 1 << 20);
    let mut n = 0;
    for (path, id) in apps.walk() {
        if !path.ends_with(".apk") || n >= 4 {
            continue;
        }
        if let Kind::File(data) = &apps.inode(id).kind {
            let mut b = Vec::new();
            data.read(&mut b)?;
            if b.len() <= 64 << 10 {
                let name = path.rsplit('/').next().unwrap_or("app.apk");
                put(&dir, "apk_identity", name, &b)?;
                n += 1;
            }
        }
    }

    // Profiles: the shipped ones and a small one that extends them.
    for (name, text) in romkit::debloat::profile::SHIPPED {
        put(&dir, "profile_yaml", name, text.as_bytes())?;
    }
    put(
        &dir,
        "profile_yaml",
        "extends",
        b"name: mine\nextends: [privacy]\nmax_level: expert\nremove:\n  - glob: product/data-app/*\n    level: advanced\n    reason: preloads\nkeep:\n  - package: com.miui.securitycenter\nprops:\n  product:\n    set: { ro.product.locale: en-GB }\n    delete: [ro.miui.region]\n",
    )?;

    // Version codes and OTA metadata.
    for (i, s) in [
        "OS2.0.205.0.VNCCNXM",
        "V14.0.5.0.TKHMIXM",
        "post-build=Xiaomi/fuxi/fuxi:14/UKQ1.230804.001/OS1.0.24.0.UMCCNXM:user/release-keys\npost-build-incremental=OS1.0.24.0.UMCCNXM\npre-device=fuxi\npost-sdk-level=34\npost-timestamp=1705300800\nota-type=AB\n",
        "fuxi_images_OS1.0.24.0.UMCCNXM_20240115.0000.00_14.0_cn_41fdb73651.tgz",
    ]
    .iter()
    .enumerate()
    {
        put(&dir, "version_code", &format!("s{i}"), s.as_bytes())?;
    }

    // Packages: recovery OTA, fastboot zip and tgz, block OTA.
    let metadata = b"ota-type=AB\npost-build-incremental=OS2.0.205.0.VNCCNXM\npre-device=fuxi\n";
    let ota = zip_of(
        &[
            ("META-INF/com/android/metadata", metadata),
            ("payload_properties.txt", b"FILE_HASH=\nFILE_SIZE=0\n"),
            ("payload.bin", &small),
        ],
        zip::CompressionMethod::Stored,
    )?;
    put(&dir, "package_detect", "ota.zip", &ota)?;
    let boot_img = vec![0u8; 8192];
    let fastboot = [
        ("images/super.img", &simg[..]),
        ("images/boot.img", &boot_img[..]),
        (
            "flash_all.sh",
            &b"fastboot flash boot images/boot.img\n"[..],
        ),
    ];
    put(
        &dir,
        "package_detect",
        "fastboot.zip",
        &zip_of(&fastboot, zip::CompressionMethod::Deflated)?,
    )?;
    let fastboot_tgz = [
        ("fuxi_images/images/super.img", &sup[..]),
        ("fuxi_images/images/boot.img", &boot_img[..]),
        ("fuxi_images/misc.txt", &b"device=fuxi\n"[..]),
    ];
    put(
        &dir,
        "package_detect",
        "fastboot.tgz",
        &tgz_of(&fastboot_tgz)?,
    )?;
    let block = zip_of(
        &[
            ("META-INF/com/android/metadata", &b"ota-type=BLOCK\n"[..]),
            ("system.transfer.list", &b"4\n2\n0\n0\nnew 2,0,2\n"[..]),
            ("system.new.dat", &noise(4, 4096 * 2)[..]),
            ("system.patch.dat", &b""[..]),
        ],
        zip::CompressionMethod::Deflated,
    )?;
    put(&dir, "package_detect", "block_ota.zip", &block)?;

    // Manifests as `inspect --manifest` writes them: an EROFS image (files,
    // labels, capabilities, props) and a recovery OTA.
    let img = tmp.join("system.img");
    std::fs::write(&img, erofs_image(&tree, None)?)?;
    let m = romkit::manifest::describe(&img, 1)?;
    put(&dir, "manifest_json", "image", &m.to_json())?;
    let pkg = tmp.join("ota.zip");
    std::fs::write(&pkg, &ota)?;
    let m = romkit::manifest::describe(&pkg, 1)?;
    put(&dir, "manifest_json", "ota", &m.to_json())?;
    Ok(())
}
