//! EROFS images romkit writes, checked with erofs-utils (fsck.erofs, dump.erofs).

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use common::*;
use romkit::fs::erofs::writer::{ErofsOptions, write};
use romkit::fs::tree::{FileData, Inode, Kind, Meta, Tree};

fn meta(perm: u32, uid: u32, gid: u32, label: &str) -> Meta {
    let mut xattrs = BTreeMap::new();
    xattrs.insert(
        b"security.selinux".to_vec(),
        format!("{label}\0").into_bytes(),
    );
    Meta {
        perm,
        uid,
        gid,
        mtime: 1_700_000_000,
        mtime_nsec: 0,
        xattrs,
    }
}

/// A tree with every kind of entry and the sizes that exercise inline tails.
pub fn sample_tree() -> (Tree, Vec<(String, Vec<u8>)>) {
    let mut t = Tree::new(meta(0o755, 0, 0, "u:object_r:rootfs:s0"));
    let mut files = Vec::new();
    let mkdir = |t: &mut Tree, path: &str, label: &str| {
        let (parent, name) = match path.rsplit_once('/') {
            Some((p, n)) => (t.lookup(p).unwrap(), n),
            None => (t.root(), path),
        };
        let id = t.add_inode(Inode {
            kind: Kind::Dir(BTreeMap::new()),
            meta: meta(0o755, 0, 0, label),
        });
        t.link(parent, name.as_bytes(), id).unwrap();
    };
    for d in [
        "app",
        "app/Notes",
        "bin",
        "etc",
        "etc/permissions",
        "priv-app",
        "dev",
    ] {
        mkdir(&mut t, d, "u:object_r:system_file:s0");
    }
    for i in 0..300 {
        // Many entries: directories spanning several blocks.
        mkdir(
            &mut t,
            &format!("etc/permissions/d{i:03}_{}", "x".repeat(i % 40)),
            "u:object_r:system_file:s0",
        );
    }
    for (path, size, perm) in [
        ("app/Notes/Notes.apk", 10_000usize, 0o644),
        ("bin/empty", 0, 0o644),
        ("bin/exact", 8192, 0o755),
        ("bin/tiny", 5, 0o755),
        ("etc/build.prop", 3000, 0o600),
        ("priv-app/big.bin", 300_000, 0o644),
        ("bin/almost", 4095, 0o750),
    ] {
        let data: Vec<u8> = noise(size as u64 + 7, size);
        let mut m = meta(perm, 0, 2000, "u:object_r:system_file:s0");
        if path == "bin/tiny" {
            // A capability (CAP_NET_RAW) and an odd owner, like Android daemons.
            let mut cap = 0x0200_0001u32.to_le_bytes().to_vec();
            cap.extend_from_slice(&(1u32 << 13).to_le_bytes());
            cap.extend_from_slice(&[0; 12]);
            m.xattrs.insert(b"security.capability".to_vec(), cap);
            m.uid = 1000;
            m.mtime = 1_600_000_123;
            m.mtime_nsec = 42;
        }
        t.add_file(path, FileData::Bytes(Arc::new(data.clone())), m)
            .unwrap();
        files.push((path.to_string(), data));
    }
    // Compressible content: text and mixed binary, of sizes around the
    // segment and extent boundaries.
    for (path, data) in [
        (
            "etc/permissions/platform.xml",
            (0..6000u32)
                .flat_map(|i| {
                    format!("<permission name=\"android.permission.P{}\" />\n", i % 300)
                        .into_bytes()
                })
                .collect::<Vec<u8>>(),
        ),
        ("app/Notes/lib.so", mixed_image(11, 1500)),
        ("etc/small.txt", b"ro.product.device=fuxi\n".repeat(300)),
        ("etc/zeros.bin", vec![0u8; 5 * 1024 * 1024 + 123]),
    ] {
        t.add_file(
            path,
            FileData::Bytes(Arc::new(data.clone())),
            meta(0o644, 0, 0, "u:object_r:system_file:s0"),
        )
        .unwrap();
        files.push((path.to_string(), data));
    }
    let big = t.lookup("priv-app/big.bin").unwrap();
    t.link(t.lookup("bin").unwrap(), b"hardlink", big).unwrap();
    let link = t.add_inode(Inode {
        kind: Kind::Symlink(b"/system/bin/tiny".to_vec()),
        meta: meta(0o777, 0, 0, "u:object_r:system_file:s0"),
    });
    t.link(t.lookup("bin").unwrap(), b"sym", link).unwrap();
    let dev = t.lookup("dev").unwrap();
    let null = t.add_inode(Inode {
        kind: Kind::CharDev(0x103),
        meta: meta(0o666, 0, 0, "u:object_r:null_device:s0"),
    });
    t.link(dev, b"null", null).unwrap();
    let fifo = t.add_inode(Inode {
        kind: Kind::Fifo,
        meta: meta(0o600, 0, 0, "u:object_r:device:s0"),
    });
    t.link(dev, b"fifo", fifo).unwrap();
    (t, files)
}

fn option_sets() -> Vec<(&'static str, ErofsOptions)> {
    use romkit::fs::erofs::writer::Lz4hc;
    vec![
        ("plain", ErofsOptions::default()),
        (
            "lz4hc",
            ErofsOptions {
                compression: Some(Lz4hc::default()),
                ..Default::default()
            },
        ),
        (
            "lz4hc-64k",
            ErofsOptions {
                compression: Some(Lz4hc {
                    level: 12,
                    pcluster: 65536,
                }),
                ..Default::default()
            },
        ),
    ]
}

#[test]
fn fsck_erofs_accepts_and_extracts_what_romkit_writes() {
    let Some(fsck) = tool("fsck.erofs") else {
        return;
    };
    let (tree, files) = sample_tree();
    for (label, opts) in option_sets() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("system.img");
        let mut f = std::fs::File::create(&img).unwrap();
        let stats = write(&tree, &opts, &mut f).unwrap();
        drop(f);
        if label != "plain" {
            assert!(stats.compressed_files >= 1, "{label}: something compressed");
        }
        let out = Command::new(&fsck).arg(&img).output().unwrap();
        assert!(
            out.status.success(),
            "{label}: fsck.erofs: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let x = dir.path().join("x");
        let out = Command::new(&fsck)
            .arg(format!("--extract={}", x.display()))
            .arg("--preserve-perms")
            .arg(&img)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{label}: fsck.erofs --extract: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for (path, data) in &files {
            assert!(
                std::fs::read(x.join(path)).unwrap() == *data,
                "{label}: {path}"
            );
        }
        assert!(std::fs::read(x.join("bin/hardlink")).unwrap().len() == 300_000);
        assert_eq!(
            std::fs::read_link(x.join("bin/sym"))
                .unwrap()
                .to_str()
                .unwrap(),
            "/system/bin/tiny"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(x.join("etc/build.prop"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o600
        );
        assert_eq!(
            std::fs::read_dir(x.join("etc/permissions"))
                .unwrap()
                .count(),
            301
        );
        // Same tree, same bytes.
        let img2 = dir.path().join("again.img");
        let mut f = std::fs::File::create(&img2).unwrap();
        write(&tree, &opts, &mut f).unwrap();
        assert!(
            std::fs::read(&img).unwrap() == std::fs::read(&img2).unwrap(),
            "{label}: deterministic"
        );
    }
}

/// Everything about a tree that must survive a round trip, in walk order.
fn snapshot(t: &Tree) -> Vec<String> {
    let links = t.link_counts();
    t.walk()
        .into_iter()
        .map(|(path, id)| {
            let ino = t.inode(id);
            let m = &ino.meta;
            let content = match &ino.kind {
                Kind::File(d) => {
                    let mut b = Vec::new();
                    d.read(&mut b).unwrap();
                    format!(
                        "{:x?}",
                        sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&b))
                    )
                }
                Kind::Symlink(s) => String::from_utf8_lossy(s).into_owned(),
                Kind::CharDev(d) | Kind::BlockDev(d) => format!("dev {d:#x}"),
                _ => String::new(),
            };
            let nlink = if matches!(ino.kind, Kind::Dir(_)) {
                0
            } else {
                links[id]
            };
            format!(
                "{path} {} {:o} {}:{} {}.{} links={nlink} {:?} {content}",
                ino.kind.name(),
                m.perm,
                m.uid,
                m.gid,
                m.mtime,
                m.mtime_nsec,
                m.xattrs
            )
        })
        .collect()
}

#[test]
fn romkit_reads_back_what_it_writes() {
    let (tree, _) = sample_tree();
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("system.img");
    write(
        &tree,
        &ErofsOptions::default(),
        &mut std::fs::File::create(&img).unwrap(),
    )
    .unwrap();
    let back = romkit::fs::erofs::reader::ErofsImage::open(&img)
        .unwrap()
        .tree()
        .unwrap();
    assert_eq!(snapshot(&back), snapshot(&tree));
    // And a second generation is byte-identical to the first.
    let img2 = dir.path().join("again.img");
    write(
        &back,
        &ErofsOptions::default(),
        &mut std::fs::File::create(&img2).unwrap(),
    )
    .unwrap();
    assert!(std::fs::read(&img).unwrap() == std::fs::read(&img2).unwrap());
}

/// A source folder like a system partition, plus file_contexts for it.
fn source_dir(root: &std::path::Path) -> std::path::PathBuf {
    let src = root.join("src");
    for d in [
        "app/Weather",
        "priv-app/Settings",
        "etc/permissions",
        "bin",
        "lib64",
    ] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    let files: [(&str, usize); 7] = [
        ("app/Weather/Weather.apk", 150_000),
        ("priv-app/Settings/Settings.apk", 400_000),
        ("etc/permissions/platform.xml", 9000),
        ("etc/build.prop", 2500),
        ("bin/sh", 70_000),
        ("lib64/libc.so", 1_000_000),
        ("bin/empty", 0),
    ];
    for (p, n) in files {
        std::fs::write(
            src.join(p),
            mixed_image(n as u64, n.div_ceil(4096)).split_at(n).0,
        )
        .unwrap();
    }
    std::os::unix::fs::symlink("/system/bin/sh", src.join("bin/ls")).unwrap();
    std::fs::write(
        root.join("file_contexts"),
        "/(.*)? u:object_r:system_file:s0\n/bin(/.*)? u:object_r:system_exec:s0\n/app(/.*)? u:object_r:system_app_file:s0\n/etc/build\\.prop u:object_r:system_prop_file:s0\n",
    )
    .unwrap();
    src
}

fn label_for(path: &str) -> &'static str {
    if path == "etc/build.prop" {
        "u:object_r:system_prop_file:s0"
    } else if path == "bin" || path.starts_with("bin/") {
        "u:object_r:system_exec:s0"
    } else if path == "app" || path.starts_with("app/") {
        "u:object_r:system_app_file:s0"
    } else {
        "u:object_r:system_file:s0"
    }
}

#[test]
fn romkit_reads_what_mkfs_erofs_writes() {
    let Some(mkfs) = tool("mkfs.erofs") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = source_dir(dir.path());
    let fc = dir.path().join("file_contexts");
    for (name, opts) in [
        ("plain", &[][..]),
        ("lz4", &["-zlz4"][..]),
        ("lz4hc", &["-zlz4hc"][..]),
        ("lz4hc-64k", &["-zlz4hc,9", "-C65536"][..]),
        ("lz4hc-tail", &["-zlz4hc", "-Eztailpacking"][..]),
        ("legacy", &["-zlz4hc", "-Elegacy-compress"][..]),
    ] {
        let img = dir.path().join(format!("{name}.img"));
        let out = Command::new(&mkfs)
            .args(opts)
            .args([
                "-T1700000000",
                "-U6f5d2b3c-1111-4222-8333-944455556666",
                "--all-root",
            ])
            .arg(format!("--file-contexts={}", fc.display()))
            .arg(&img)
            .arg(&src)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tree = romkit::fs::erofs::reader::ErofsImage::open(&img)
            .unwrap()
            .tree()
            .unwrap();
        for (path, id) in tree.walk().into_iter().skip(1) {
            let ino = tree.inode(id);
            let on_disk = src.join(&path);
            let md = std::fs::symlink_metadata(&on_disk).unwrap();
            use std::os::unix::fs::MetadataExt;
            assert_eq!(
                ino.kind.type_bits() | ino.meta.perm,
                md.mode(),
                "{name}: {path} mode"
            );
            assert_eq!((ino.meta.uid, ino.meta.gid), (0, 0), "{name}: {path} owner");
            assert_eq!(
                ino.meta.selinux_label().as_deref(),
                Some(label_for(&path)),
                "{name}: {path} label"
            );
            match &ino.kind {
                Kind::File(d) => {
                    let mut b = Vec::new();
                    d.read(&mut b).unwrap();
                    assert!(
                        b == std::fs::read(&on_disk).unwrap(),
                        "{name}: {path} content"
                    );
                }
                Kind::Symlink(t) => assert_eq!(t, b"/system/bin/sh"),
                _ => {}
            }
        }
        assert_eq!(
            tree.walk().len(),
            1 + 5 + 2 + 7 + 1 + 1,
            "{name}: every entry"
        );
    }
}

/// erofs-utils 1.8 compresses with its own DEFLATE encoder (`-zdeflate`, window
/// recorded as 15) or with libdeflate (`-zlibdeflate`, window recorded as 0):
/// both are raw DEFLATE streams that romkit reads.
#[test]
fn romkit_reads_deflate_images_from_erofs_utils_1_8() {
    let Some(mkfs) = erofs18("mkfs.erofs") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = source_dir(dir.path());
    for z in ["deflate", "libdeflate", "libdeflate,9", "deflate,9"] {
        let img = dir.path().join(format!("{z}.img"));
        run_ok(
            Command::new(&mkfs)
                .arg(format!("-z{z}"))
                .args(["-C65536", "-T1700000000", "--all-root"])
                .arg(&img)
                .arg(&src),
        );
        let tree = romkit::fs::erofs::reader::ErofsImage::open(&img)
            .unwrap()
            .tree()
            .unwrap_or_else(|e| panic!("{z}: {e}"));
        let mut files = 0;
        for (path, id) in tree.walk() {
            if let Kind::File(d) = &tree.inode(id).kind {
                let mut b = Vec::new();
                d.read(&mut b)
                    .unwrap_or_else(|e| panic!("{z}: {path}: {e}"));
                assert!(b == std::fs::read(src.join(&path)).unwrap(), "{z}: {path}");
                files += 1;
            }
        }
        assert_eq!(files, 7, "{z}");
        // The source file is never changed by the reader's patched view.
        let raw = std::fs::read(&img).unwrap();
        let again = romkit::fs::erofs::reader::ErofsImage::open(&img).unwrap();
        drop(again);
        assert!(raw == std::fs::read(&img).unwrap(), "{z}: image untouched");
    }
}

#[test]
fn sample_partitions_are_erofs_that_fsck_accepts() {
    let Some(fsck) = tool("fsck.erofs") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    romkit()
        .args(["unpack", "-o"])
        .arg(dir.path())
        .arg(sample())
        .assert()
        .success();
    for part in ["system", "system_ext", "product", "vendor", "odm", "mi_ext"] {
        let img = dir.path().join(format!("{part}.img"));
        let x = dir.path().join(part);
        let out = Command::new(&fsck)
            .arg(format!("--extract={}", x.display()))
            .arg(&img)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{part}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let props = std::fs::read_to_string(dir.path().join("system/system/build.prop")).unwrap();
    assert!(props.contains("ro.build.version.incremental=OS1.0.24.0.UMCCNXM\n"));
    assert!(props.contains("ro.product.device=fuxi\n"));
    let vendor_props = std::fs::read_to_string(dir.path().join("vendor/build.prop")).unwrap();
    assert!(vendor_props.contains("ro.vendor.build.fingerprint=Xiaomi/fuxi/fuxi:14/"));
    // romkit cat gives the same bytes as fsck.erofs --extract.
    let out = romkit()
        .args(["cat"])
        .arg(sample())
        .arg("system/system/build.prop")
        .assert()
        .success();
    assert_eq!(out.get_output().stdout, props.as_bytes());
}

#[test]
fn ls_shows_labels_capabilities_and_links() {
    let v = json_ok(&["ls", "--json"], &sample());
    // Without a partition, ls lists the partitions.
    assert!(v.as_array().unwrap().iter().any(|x| x == "vendor"));
    let out = romkit()
        .args(["ls", "--json", "-R"])
        .arg(sample())
        .arg("vendor")
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let perf = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "bin/hw/vendor.qti.hardware.perf@2.0-service")
        .expect("the perf HAL");
    assert_eq!(perf["label"], "u:object_r:hal_perf_default_exec:s0");
    assert_eq!(perf["capabilities"], "0x1000800000");
    assert_eq!(perf["gid"], 2000);
    assert_eq!(perf["mode"], "-rwxr-xr-x");
    let out = romkit()
        .args(["ls"])
        .arg(sample())
        .arg("system")
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.contains("bin -> /system/bin"), "{text}");
    romkit()
        .args(["ls"])
        .arg(sample())
        .arg("system/nosuch")
        .assert()
        .code(2);
    romkit()
        .args(["cat"])
        .arg(sample())
        .arg("system/system")
        .assert()
        .code(2);
    romkit()
        .args(["ls"])
        .arg(sample())
        .arg("boot/x")
        .assert()
        .code(3);
}

#[test]
fn unpack_files_then_pack_gives_the_same_images() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    romkit()
        .args(["unpack", "--files", "-o"])
        .arg(&out)
        .arg(sample())
        .assert()
        .success();
    assert!(
        std::fs::symlink_metadata(out.join("system/bin"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_link(out.join("system/bin")).unwrap().to_str(),
        Some("/system/bin")
    );
    let fsc = std::fs::read_to_string(out.join("config/vendor_fs_config")).unwrap();
    assert!(fsc.contains("vendor/bin/hw/vendor.qti.hardware.perf@2.0-service 0 2000 0755 capabilities=0x1000800000\n"), "{fsc}");
    let fc = std::fs::read_to_string(out.join("config/vendor_file_contexts")).unwrap();
    assert!(
        fc.contains("/vendor/build\\.prop u:object_r:vendor_build_prop_file:s0\n"),
        "{fc}"
    );
    for part in ["system", "system_ext", "product", "vendor", "odm", "mi_ext"] {
        let img = dir.path().join(format!("{part}.img"));
        romkit()
            .args(["pack", "-o"])
            .arg(&img)
            .arg(out.join(part))
            .assert()
            .success();
        assert!(
            std::fs::read(&img).unwrap() == std::fs::read(out.join(format!("{part}.img"))).unwrap(),
            "{part}: repacked image differs from the original"
        );
    }
    // Refuses to overwrite the trees without --force.
    romkit()
        .args(["unpack", "--files", "-p", "odm", "-o"])
        .arg(&out)
        .arg(sample())
        .assert()
        .code(2);
    romkit()
        .args(["unpack", "--files", "--force", "-p", "odm", "-o"])
        .arg(&out)
        .arg(sample())
        .assert()
        .success();
}

#[test]
fn pack_names_what_disagrees_with_the_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    romkit()
        .args(["unpack", "--files", "-p", "odm", "-o"])
        .arg(&out)
        .arg(sample())
        .assert()
        .success();
    std::fs::write(out.join("odm/stray.txt"), b"x").unwrap();
    romkit()
        .args(["pack", "-o"])
        .arg(dir.path().join("a.img"))
        .arg(out.join("odm"))
        .assert()
        .code(3)
        .stderr(predicates::str::contains(
            "odm/stray.txt: on disk but not in fs_config",
        ));
    std::fs::remove_file(out.join("odm/stray.txt")).unwrap();
    std::fs::remove_file(out.join("odm/etc/build.prop")).unwrap();
    romkit()
        .args(["pack", "-o"])
        .arg(dir.path().join("b.img"))
        .arg(out.join("odm"))
        .assert()
        .code(3)
        .stderr(predicates::str::contains(
            "odm/etc/build.prop: in fs_config but missing",
        ));
    assert!(!dir.path().join("a.img").exists() && !dir.path().join("b.img").exists());
    romkit()
        .args(["pack", "-z", "zstd", "-o"])
        .arg(dir.path().join("c.img"))
        .arg(out.join("odm"))
        .assert()
        .code(2);
}

#[test]
fn extraction_never_leaves_the_destination() {
    use romkit::fs::{extract, sidecar};
    let (mut tree, _) = sample_tree();
    // Links that point outside: created as links, never followed.
    for (name, target) in [("escape", "../../../../etc/passwd"), ("abs", "/etc/shadow")] {
        let id = tree.add_inode(Inode {
            kind: Kind::Symlink(target.as_bytes().to_vec()),
            meta: meta(0o777, 0, 0, "u:object_r:system_file:s0"),
        });
        tree.link(tree.root(), name.as_bytes(), id).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("system");
    let stats = extract::write_tree(&tree, &dest, 2).unwrap();
    assert_eq!(
        stats.recorded, 2,
        "the device node and the FIFO are recorded, not created"
    );
    assert!(!dest.join("dev/null").exists());
    assert_eq!(
        std::fs::read_link(dest.join("escape")).unwrap().to_str(),
        Some("../../../../etc/passwd")
    );
    assert_eq!(
        listing(dir.path())
            .iter()
            .filter(|p| !p.starts_with("system/"))
            .count(),
        0
    );
    // Reading the folder back with its sidecars gives the same tree.
    let back = extract::read_dir_tree(
        &dest,
        "system",
        &sidecar::fs_config(&tree, "system"),
        &sidecar::file_contexts(&tree, "system"),
        None,
    )
    .unwrap();
    same(
        &snapshot(&back),
        &snapshot(&tree),
        "extract + read_dir_tree",
    );
}

/// Compares two snapshots and names the first difference.
fn same(a: &[String], b: &[String], what: &str) {
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x, y, "{what}");
    }
    assert_eq!(a.len(), b.len(), "{what}: entry count");
}

// ------------------------------------------------------------ hostile images

/// A small image with known entries; returns (bytes, nid of each path).
fn small_image() -> (Vec<u8>, std::collections::HashMap<String, u64>) {
    let mut t = Tree::new(meta(0o755, 0, 0, "u:object_r:rootfs:s0"));
    let d = t.add_inode(Inode {
        kind: Kind::Dir(BTreeMap::new()),
        meta: meta(0o755, 0, 0, "u:object_r:system_file:s0"),
    });
    t.link(t.root(), b"dir", d).unwrap();
    let mut m = meta(0o644, 0, 0, "u:object_r:system_file:s0");
    m.mtime = 5; // extended inode: 64-bit size
    t.add_file("dir/aa", FileData::Bytes(Arc::new(b"hello".to_vec())), m)
        .unwrap();
    t.add_file(
        "dir/bb",
        FileData::Bytes(Arc::new(vec![7u8; 9000])),
        meta(0o644, 0, 0, "u:object_r:system_file:s0"),
    )
    .unwrap();
    t.add_file(
        "dir/c",
        FileData::Bytes(Arc::new(b"c".to_vec())),
        meta(0o644, 0, 0, "u:object_r:system_file:s0"),
    )
    .unwrap();
    let mut img = std::io::Cursor::new(Vec::new());
    write(&t, &ErofsOptions::default(), &mut img).unwrap();
    let bytes = img.into_inner();
    let fs = erofs_rs::EroFS::new(erofs_rs::backend::SliceImage::new(&bytes)).unwrap();
    let mut nids = std::collections::HashMap::new();
    for e in fs.walk_dir("/").unwrap() {
        let e = e.unwrap();
        nids.insert(
            String::from_utf8_lossy(e.dir_entry.path().as_bytes())
                .trim_start_matches('/')
                .to_string(),
            e.inode.id(),
        );
    }
    nids.insert(String::new(), fs.super_block().root_inode_id());
    (bytes, nids)
}

/// Offset of `name`'s directory entry (and of its name bytes) in `dir`'s block.
fn dirent(bytes: &[u8], dir_nid: u64, name: &[u8]) -> (usize, usize) {
    let ino = (dir_nid * 32) as usize;
    let i_u = u32::from_le_bytes(bytes[ino + 16..ino + 20].try_into().unwrap()) as usize;
    let format = u16::from_le_bytes(bytes[ino..ino + 2].try_into().unwrap());
    // The test directory is small: its entries are inline after the inode
    // (layout 2) or in block i_u (layout 0).
    let base = if (format >> 1) & 7 == 2 {
        let icount = u16::from_le_bytes(bytes[ino + 2..ino + 4].try_into().unwrap()) as usize;
        let xattr = if icount == 0 {
            0
        } else {
            12 + (icount - 1) * 4
        };
        ino + if format & 1 == 1 { 64 } else { 32 } + xattr
    } else {
        i_u * 4096
    };
    let first_nameoff = u16::from_le_bytes(bytes[base + 8..base + 10].try_into().unwrap()) as usize;
    for i in 0..first_nameoff / 12 {
        let off = u16::from_le_bytes(
            bytes[base + i * 12 + 8..base + i * 12 + 10]
                .try_into()
                .unwrap(),
        ) as usize;
        if bytes[base + off..].starts_with(name) {
            return (base + i * 12, base + off);
        }
    }
    panic!("entry {name:?} not found");
}

fn expect_hostile(bytes: &[u8], what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("hostile.img");
    std::fs::write(&img, bytes).unwrap();
    let out = romkit().args(["ls", "-R"]).arg(&img).output().unwrap();
    let listing_failed = out.status.code() == Some(3);
    let cat = romkit()
        .args(["cat"])
        .arg(&img)
        .arg("dir/aa")
        .output()
        .unwrap();
    assert!(
        listing_failed || cat.status.code() == Some(3),
        "{what}: ls exit {:?}, cat exit {:?}",
        out.status.code(),
        cat.status.code()
    );
    for o in [&out, &cat] {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{what}: {err}");
        if o.status.code() == Some(3) {
            assert!(
                err.contains("hostile.img"),
                "{what}: message names the file: {err}"
            );
        }
    }
    assert_eq!(
        listing(dir.path()),
        vec!["hostile.img".to_string()],
        "{what}: nothing written"
    );
}

#[test]
fn hostile_erofs_images_are_refused() {
    let (good, nids) = small_image();
    let root = nids[""];
    let dirn = nids["dir"];
    // Sanity: the unmodified image lists fine.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("ok.img"), &good).unwrap();
    romkit()
        .args(["ls", "-R"])
        .arg(d.path().join("ok.img"))
        .assert()
        .success();

    for (what, name) in [("name with '/'", b'/'), ("name with NUL", 0u8)] {
        let mut b = good.clone();
        let (_, name_at) = dirent(&b, dirn, b"aa");
        b[name_at] = name;
        expect_hostile(&b, what);
    }
    let mut b = good.clone();
    let (_, name_at) = dirent(&b, dirn, b"aa");
    b[name_at..name_at + 2].copy_from_slice(b"..");
    expect_hostile(&b, "entry named ..");
    let mut b = good.clone();
    let (_, name_at) = dirent(&b, dirn, b"c");
    b[name_at] = b'.';
    expect_hostile(&b, "entry named .");
    // A directory that contains itself.
    let mut b = good.clone();
    let (ent, _) = dirent(&b, dirn, b"bb");
    b[ent..ent + 8].copy_from_slice(&root.to_le_bytes());
    b[ent + 10] = 2; // file type: directory
    expect_hostile(&b, "directory containing its ancestor");
    // An inode number past the end of the image.
    let mut b = good.clone();
    let (ent, _) = dirent(&b, dirn, b"aa");
    b[ent..ent + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    expect_hostile(&b, "nid past the end");
    // A file claiming 2^60 bytes (extended inode: i_size at offset 8).
    let mut b = good.clone();
    let ino = (nids["dir/aa"] * 32) as usize;
    assert_eq!(b[ino] & 1, 1, "dir/aa has an extended inode");
    b[ino + 8..ino + 16].copy_from_slice(&(1u64 << 60).to_le_bytes());
    expect_hostile(&b, "file size 2^60");
    // xattr count pointing far past the inode.
    let mut b = good.clone();
    let ino = (nids["dir/bb"] * 32) as usize;
    b[ino + 2..ino + 4].copy_from_slice(&0xfff0u16.to_le_bytes());
    expect_hostile(&b, "xattr size past the inode");
}

#[test]
fn compressed_cluster_claiming_a_huge_output_is_refused() {
    let mut t = Tree::new(meta(0o755, 0, 0, "u:object_r:rootfs:s0"));
    let d = t.add_inode(Inode {
        kind: Kind::Dir(BTreeMap::new()),
        meta: meta(0o755, 0, 0, "u:object_r:system_file:s0"),
    });
    t.link(t.root(), b"dir", d).unwrap();
    let text: Vec<u8> = b"romkit ".iter().cycle().take(50_000).copied().collect();
    let mut m = meta(0o644, 0, 0, "u:object_r:system_file:s0");
    m.mtime = 5;
    t.add_file("dir/aa", FileData::Bytes(Arc::new(text)), m)
        .unwrap();
    let mut img = std::io::Cursor::new(Vec::new());
    let opts = ErofsOptions {
        compression: Some(romkit::fs::erofs::writer::Lz4hc::default()),
        ..Default::default()
    };
    assert_eq!(write(&t, &opts, &mut img).unwrap().compressed_files, 1);
    let mut bytes = img.into_inner();
    let fs = erofs_rs::EroFS::new(erofs_rs::backend::SliceImage::new(&bytes)).unwrap();
    let nid = fs
        .walk_dir("/")
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.dir_entry.file_name() == b"aa")
        .unwrap()
        .inode
        .id();
    drop(fs);
    // The file now claims 1 TiB: its few pclusters would have to expand 10^7-fold.
    let ino = (nid * 32) as usize;
    bytes[ino + 8..ino + 16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    expect_hostile(&bytes, "compressed file claiming 1 TiB");
}
