//! In-place editing of EROFS images made by erofs-utils 1.5 (Debian) and 1.8,
//! checked with their fsck.erofs and dump.erofs: the edited image is clean,
//! extracts to the source tree minus the removed paths plus the replaced
//! files, keeps every surviving file's bytes at the same addresses and has
//! zeros where only removed files were.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use romkit::fs::erofs::edit::{Edit, EditError, edit};
use romkit::fs::erofs::reader::ErofsImage;
use romkit::fs::tree::{Kind, Tree};

const BS: u64 = 4096;

fn write(p: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// A system-like tree: apps (one a copy of another, for dedupe), a folder
/// of 300 entries spanning directory blocks, small inline files, a hard link,
/// a symlink, an empty file; labels from file_contexts, a capability and a
/// user xattr when the machine lets us set them.
fn source(root: &Path) -> PathBuf {
    let src = root.join("src");
    let alpha = mixed_image(1, 75);
    write(&src.join("app/Alpha/Alpha.apk"), &alpha);
    write(&src.join("app/Gamma/Gamma.apk"), &alpha);
    write(
        &src.join("app/Beta/Beta.apk"),
        &mixed_image(2, 30)[..120_001],
    );
    write(&src.join("app/Beta/lib/arm64/libb.so"), &noise(3, 50_000));
    write(&src.join("priv-app/Big/Big.apk"), &mixed_image(4, 300));
    write(
        &src.join("priv-app/Keep/Keep.apk"),
        &mixed_image(5, 22)[..90_000],
    );
    write(
        &src.join("etc/build.prop"),
        &b"ro.product.device=fuxi\nro.build.type=user\n".repeat(60),
    );
    write(&src.join("etc/small.txt"), &b"tiny inline file\n".repeat(6));
    for i in 0..300 {
        write(
            &src.join(format!(
                "etc/permissions/p{i:03}_com.example.permission.{}.xml",
                "x".repeat(i % 30)
            )),
            format!("<permission name=\"p{i}\" />\n").as_bytes(),
        );
    }
    write(&src.join("bin/sh"), &mixed_image(6, 18)[..70_000]);
    write(&src.join("lib64/libc.so"), &mixed_image(7, 100));
    std::fs::hard_link(src.join("lib64/libc.so"), src.join("bin/hard")).unwrap();
    std::os::unix::fs::symlink("/system/bin/sh", src.join("bin/ls")).unwrap();
    write(&src.join("empty"), b"");
    // Extended attributes mkfs.erofs copies from the source files.
    let _ = Command::new("setfattr")
        .args(["-n", "user.romkit", "-v", "kept"])
        .arg(src.join("bin/sh"))
        .output();
    let _ = Command::new("setfattr")
        .args(["-n", "security.capability", "-v"])
        .arg("0x0100000200200000000000000000000000000000")
        .arg(src.join("bin/sh"))
        .output();
    std::fs::write(
        root.join("file_contexts"),
        "/(.*)? u:object_r:system_file:s0\n/bin(/.*)? u:object_r:system_exec:s0\n\
         /app(/.*)? u:object_r:system_app_file:s0\n/etc/build\\.prop u:object_r:system_prop_file:s0\n",
    )
    .unwrap();
    src
}

fn the_edit() -> Edit {
    let mut replace = BTreeMap::new();
    replace.insert(
        "etc/build.prop".to_string(),
        b"ro.product.device=fuxi\nro.product.locale=en-GB\n".repeat(150),
    );
    replace.insert("etc/small.txt".to_string(), b"hello\n".to_vec());
    let mut remove = vec![
        "app/Beta".to_string(),
        "priv-app/Big".to_string(),
        "bin/hard".to_string(),
        "app/Alpha/Alpha.apk".to_string(),
        "app/Beta/lib".to_string(), // inside a removed folder
    ];
    // The first 120 permission files: whole directory blocks go.
    for i in 0..120 {
        remove.push(format!(
            "etc/permissions/p{i:03}_com.example.permission.{}.xml",
            "x".repeat(i % 30)
        ));
    }
    Edit { remove, replace }
}

fn is_removed(e: &Edit, path: &str) -> bool {
    e.remove
        .iter()
        .any(|r| path == r || path.starts_with(&format!("{r}/")))
}

/// Physical byte ranges of a file, from dump.erofs -e.
fn extents(dump: &Path, img: &Path, path: &str) -> Vec<(u64, u64)> {
    let out = run_ok(
        Command::new(dump)
            .arg("-e")
            .arg(format!("--path=/{path}"))
            .arg(img),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v = Vec::new();
    for line in text.lines() {
        // "   0:        0..   93953 |   93953 :       4096..     69632 |   65536"
        let Some((_, phys)) = line.split_once(" : ") else {
            continue;
        };
        let Some((range, _)) = phys.split_once('|') else {
            continue;
        };
        let Some((a, b)) = range.trim().split_once("..") else {
            continue;
        };
        // Holes of chunk-based files show as physical offset 0.
        if let (Ok(a), Ok(b)) = (a.trim().parse::<u64>(), b.trim().parse::<u64>())
            && b > a
            && a > 0
        {
            v.push((a, b));
        }
    }
    v
}

fn files_of(tree: &Tree) -> BTreeMap<String, u64> {
    // path -> nid-independent identity is not needed; regular files only.
    tree.walk()
        .into_iter()
        .filter(|(_, id)| matches!(tree.inode(*id).kind, Kind::File(_)))
        .map(|(p, _)| (p, 0))
        .collect()
}

fn content(tree: &Tree, path: &str) -> Vec<u8> {
    let Kind::File(d) = &tree.inode(tree.lookup(path).unwrap()).kind else {
        panic!("{path}: not a file")
    };
    let mut b = Vec::new();
    d.read(&mut b).unwrap();
    b
}

fn fsck_ok(fsck: &Path, img: &Path, label: &str) {
    let out = Command::new(fsck).arg(img).output().unwrap();
    assert!(
        out.status.success(),
        "{label}: {} rejects the edited image: {}{}",
        fsck.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check_variant(label: &str, mkfs: &Path, fscks: &[PathBuf], dump: Option<&Path>, opts: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let img = dir.path().join("src.img");
    let out = Command::new(mkfs)
        .args(opts)
        .args(["-T1700000000", "-U6f5d2b3c-1111-4222-8333-944455556666"])
        .arg(format!(
            "--file-contexts={}",
            dir.path().join("file_contexts").display()
        ))
        .arg(&img)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{label}: mkfs.erofs {opts:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let source_bytes = std::fs::read(&img).unwrap();
    let e = the_edit();
    let edited_path = dir.path().join("edited.img");
    let mut f = std::fs::File::create(&edited_path).unwrap();
    let stats = edit(&source_bytes, &e, &mut f).unwrap_or_else(|err| panic!("{label}: {err}"));
    drop(f);
    let edited = std::fs::read(&edited_path).unwrap();
    assert_eq!(edited.len() as u64, stats.size, "{label}: size");
    assert!(
        stats.changed_blocks > 0 && stats.removed_inodes >= 5,
        "{label}: {stats:?}"
    );
    assert_eq!(stats.replaced_files, 2, "{label}");
    check_ranges(label, &source_bytes, &edited, &stats);
    // Determinism.
    let mut again = std::io::Cursor::new(Vec::new());
    edit(&source_bytes, &e, &mut again).unwrap();
    assert!(
        again.into_inner() == edited,
        "{label}: same edit, same bytes"
    );

    for fsck in fscks {
        fsck_ok(fsck, &edited_path, label);
    }

    // romkit's reader: every surviving entry keeps its type, mode, owner,
    // xattrs (labels, capabilities) and content; replaced files have theirs.
    let before = ErofsImage::open(&img).unwrap().tree().unwrap();
    let after = ErofsImage::open(&edited_path)
        .unwrap()
        .tree()
        .unwrap_or_else(|err| panic!("{label}: romkit reads the edited image: {err}"));
    let want: BTreeSet<String> = before
        .walk()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| !is_removed(&e, p))
        .collect();
    let got: BTreeSet<String> = after.walk().into_iter().map(|(p, _)| p).collect();
    let diff: Vec<_> = got.symmetric_difference(&want).collect();
    assert!(diff.is_empty(), "{label}: entries differ: {diff:?}");
    let mut caps = 0;
    for p in &want {
        let (a, b) = (
            before.inode(before.lookup(p).unwrap()),
            after.inode(after.lookup(p).unwrap()),
        );
        assert_eq!(a.meta, b.meta, "{label}: {p} metadata");
        assert_eq!(a.kind.name(), b.kind.name(), "{label}: {p} kind");
        caps += usize::from(b.meta.capabilities().is_some());
        if let Kind::Symlink(t) = &a.kind {
            assert!(
                matches!(&b.kind, Kind::Symlink(u) if u == t),
                "{label}: {p}"
            );
        }
        if matches!(a.kind, Kind::File(_)) {
            let expect = e
                .replace
                .get(p)
                .cloned()
                .unwrap_or_else(|| content(&before, p));
            assert!(content(&after, p) == expect, "{label}: {p} content");
        }
    }
    if caps == 0 {
        eprintln!("{label}: no capability survived mkfs (setfattr unavailable?)");
    }
    assert_eq!(
        after.link_counts()[after.lookup("lib64/libc.so").unwrap()],
        1,
        "{label}: the hard link is gone, its target stays"
    );

    // fsck.erofs --extract equals the expected tree.
    for fsck in fscks {
        let x = dir
            .path()
            .join(format!("x{}", fsck.to_string_lossy().len()));
        run_ok(
            Command::new(fsck)
                .arg(format!("--extract={}", x.display()))
                .arg(&edited_path),
        );
        for p in &want {
            let on = x.join(p);
            let md = std::fs::symlink_metadata(&on)
                .unwrap_or_else(|err| panic!("{label}: {p} extracted: {err}"));
            let orig = src.join(p);
            if let Some(bytes) = e.replace.get(p) {
                assert!(std::fs::read(&on).unwrap() == *bytes, "{label}: {p}");
            } else if md.is_file() {
                assert!(
                    std::fs::read(&on).unwrap() == std::fs::read(&orig).unwrap(),
                    "{label}: {p} extracted content"
                );
            }
            let om = std::fs::symlink_metadata(&orig).unwrap();
            assert_eq!(md.mode() & 0o170000, om.mode() & 0o170000, "{label}: {p}");
        }
        let mut extracted = BTreeSet::new();
        for entry in walk(&x) {
            extracted.insert(entry);
        }
        let want_x: BTreeSet<String> = want.iter().filter(|p| !p.is_empty()).cloned().collect();
        let diff: Vec<_> = extracted.symmetric_difference(&want_x).collect();
        assert!(
            diff.is_empty(),
            "{label}: extracted entries differ: {diff:?}"
        );
    }

    // Addresses: surviving files keep their bytes where they were; blocks
    // only removed files used are zero.
    let Some(dump) = dump else { return };
    let mut live: BTreeSet<u64> = BTreeSet::new();
    let mut dead: BTreeMap<u64, String> = BTreeMap::new();
    for p in files_of(&before).keys() {
        let ranges = extents(dump, &img, p);
        if is_removed(&e, p) || e.replace.contains_key(p) {
            for &(a, b) in &ranges {
                if a % BS == 0 {
                    for blk in a / BS..b.div_ceil(BS) {
                        dead.insert(blk, format!("{p} {a}..{b}"));
                    }
                }
            }
            continue;
        }
        for &(a, b) in &ranges {
            live.extend(a / BS..b.div_ceil(BS));
            assert!(
                edited[a as usize..b as usize] == source_bytes[a as usize..b as usize],
                "{label}: {p}: bytes {a}..{b} moved or changed"
            );
        }
        let now = extents(dump, &edited_path, p);
        assert_eq!(now, ranges, "{label}: {p}: same extents after the edit");
    }
    // A removed file's block may now hold a replaced file or a moved
    // directory; everything else must be zero.
    let mut reused: BTreeSet<u64> = BTreeSet::new();
    for (p, id) in after.walk() {
        if e.replace.contains_key(&p) || matches!(after.inode(id).kind, Kind::Dir(_)) {
            for (a, z) in extents(dump, &edited_path, &p) {
                reused.extend(a / BS..z.div_ceil(BS));
            }
        }
    }
    let mut zero = 0;
    for (b, who) in dead.iter().filter(|(b, _)| !live.contains(b)) {
        let s = (b * BS) as usize;
        if reused.contains(b) {
            continue;
        }
        assert!(
            edited[s..s + BS as usize] == [0u8; BS as usize],
            "{label}: block {b} of removed files ({who}) is not zero"
        );
        zero += 1;
    }
    assert!(zero > 0, "{label}: removed files freed some blocks");
}

/// The changed and zeroed ranges an edit reports agree with the bytes,
/// compared here block by block: every differing block lies in `changed`,
/// every `zeroed` block is zero now and was not before.
fn check_ranges(label: &str, src: &[u8], out: &[u8], stats: &romkit::fs::edit::EditStats) {
    let bs = stats.block_size as usize;
    assert!(bs >= 512, "{label}: block size {bs}");
    let inside =
        |ranges: &[std::ops::Range<u64>], off: u64| ranges.iter().any(|r| r.contains(&off));
    let mut differing = 0u64;
    for (i, block) in out.chunks(bs).enumerate() {
        let off = (i * bs) as u64;
        let old = src
            .get(i * bs..((i + 1) * bs).min(src.len()))
            .unwrap_or(&[]);
        let same = old.len() == block.len() && old == block;
        if !same {
            differing += 1;
            assert!(
                inside(&stats.changed, off),
                "{label}: block {i} differs outside `changed`"
            );
        }
        if inside(&stats.zeroed, off) {
            assert!(
                block.iter().all(|&b| b == 0),
                "{label}: zeroed block {i} is not zero"
            );
            assert!(!same, "{label}: zeroed block {i} was already zero");
        }
    }
    let listed: u64 = stats
        .changed
        .iter()
        .map(|r| (r.end - r.start) / bs as u64)
        .sum();
    assert_eq!(
        listed, differing,
        "{label}: changed ranges cover exactly the differing blocks"
    );
    assert_eq!(stats.total_changed(), differing, "{label}: total_changed");
}

fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let p = entry.path();
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            if entry.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

#[test]
fn edits_images_of_erofs_utils_1_5() {
    let Some(mkfs) = tool("mkfs.erofs") else {
        return;
    };
    let Some(fsck) = tool("fsck.erofs") else {
        return;
    };
    let fsck18 = erofs18("fsck.erofs");
    let dump18 = erofs18("dump.erofs");
    let mut fscks = vec![fsck];
    fscks.extend(fsck18);
    for opts in [
        &[][..],
        &["-zlz4hc"][..],
        &["-zlz4"][..],
        &["-zlz4hc", "-C65536"][..],
        &["-zlz4hc", "-Eztailpacking"][..],
        &["-zlz4hc", "-Elegacy-compress"][..],
        &["-zlz4hc", "-Eforce-inode-extended"][..],
        &["--chunksize=4096"][..],
    ] {
        check_variant(
            &format!("1.5 {opts:?}"),
            &mkfs,
            &fscks,
            dump18.as_deref(),
            opts,
        );
    }
}

#[test]
fn edits_images_of_erofs_utils_1_8() {
    let Some(mkfs) = erofs18("mkfs.erofs") else {
        return;
    };
    let Some(fsck) = erofs18("fsck.erofs") else {
        return;
    };
    let dump = erofs18("dump.erofs");
    let mut fscks = vec![fsck];
    fscks.extend(tool("fsck.erofs"));
    for opts in [
        &[][..],
        &["-zlz4hc,9", "-C4096"][..],
        &["-zlz4"][..],
        &["-zlz4hc", "-C65536"][..],
        &["-zlz4hc", "-Eztailpacking"][..],
        &["-zlz4hc", "-Efragments"][..],
        &["-zlz4hc", "-Ededupe"][..],
        &["-zlz4hc", "-Efragments,dedupe,ztailpacking", "-C65536"][..],
        &["--chunksize=4096"][..],
        &["-zlz4hc", "-Elegacy-compress"][..],
        &["-zlz4hc", "-Eforce-inode-extended"][..],
        &["-zlibdeflate"][..],
    ] {
        // fsck.erofs 1.5 cannot read fragments, dedupe or DEFLATE images, and
        // misreads 1.8's deduplicated chunk maps (the source's as well).
        let new_only = opts.iter().any(|o| {
            ["fragments", "dedupe", "deflate", "chunksize"]
                .iter()
                .any(|f| o.contains(f))
        });
        let f: Vec<PathBuf> = if new_only {
            fscks[..1].to_vec()
        } else {
            fscks.clone()
        };
        check_variant(&format!("1.8 {opts:?}"), &mkfs, &f, dump.as_deref(), opts);
    }
}

/// An image of the source tree made by `mkfs` with `opts`: (its folder, the
/// source tree, the image, the image's bytes).
fn made_with(mkfs: &Path, opts: &[&str]) -> (tempfile::TempDir, PathBuf, PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let img = dir.path().join("src.img");
    run_ok(Command::new(mkfs).args(opts).arg(&img).arg(&src));
    let bytes = std::fs::read(&img).unwrap();
    (dir, src, img, bytes)
}

#[test]
fn a_damaged_image_fails_with_nothing_written() {
    let Some(mkfs) = tool("mkfs.erofs") else {
        return;
    };
    let (_dir, _, _, good) = made_with(&mkfs, &["-zlz4hc", "-T0"]);
    let e = the_edit();
    // Corruptions: the root nid, the block count, a directory block, a
    // compressed cluster of a removed file, the magic.
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut b = good.clone();
    b[1024 + 14] = 0xff;
    cases.push(("root nid", b));
    let mut b = good.clone();
    b[1024 + 36..1024 + 40].copy_from_slice(&u32::MAX.to_le_bytes());
    cases.push(("block count", b));
    let mut b = good.clone();
    b[1024] ^= 1;
    cases.push(("magic", b));
    cases.push(("truncated", good[..good.len() / 2].to_vec()));
    for (what, bytes) in cases {
        let mut out = std::io::Cursor::new(Vec::new());
        let r = edit(&bytes, &e, &mut out);
        assert!(r.is_err(), "{what}: must fail");
        assert!(out.get_ref().is_empty(), "{what}: nothing written");
    }
    // Every single-byte corruption in the metadata: an error or a clean
    // edit, never a panic.
    for at in (1024..good.len().min(64 << 10)).step_by(97) {
        let mut b = good.clone();
        b[at] ^= 0x5a;
        let mut out = std::io::Cursor::new(Vec::new());
        if edit(&b, &e, &mut out).is_err() {
            assert!(out.get_ref().is_empty(), "byte {at}: nothing written");
        }
    }
}

#[test]
fn what_cannot_be_edited_is_named() {
    let Some(mkfs) = tool("mkfs.erofs") else {
        return;
    };
    let (_dir, _, _, good) = made_with(&mkfs, &["-T0"]);
    let mut out = std::io::Cursor::new(Vec::new());
    let missing = Edit {
        remove: vec!["app/Nope".into()],
        ..Default::default()
    };
    let err = edit(&good, &missing, &mut out).unwrap_err();
    assert!(matches!(err, EditError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("/app/Nope"), "{err}");
    let mut replace = BTreeMap::new();
    replace.insert("bin".to_string(), b"x".to_vec());
    let err = edit(
        &good,
        &Edit {
            replace,
            ..Default::default()
        },
        &mut out,
    )
    .unwrap_err();
    assert!(matches!(err, EditError::NotRegular { .. }), "{err}");
    // A feature newer than romkit knows.
    let mut b = good.clone();
    b[1024 + 80] |= 0x80;
    let err = edit(&b, &the_edit(), &mut out).unwrap_err();
    assert!(
        err.to_string().contains("incompatible features 0x80"),
        "{err}"
    );
    assert!(out.get_ref().is_empty());
}

#[test]
fn a_replaced_file_larger_than_the_freed_space_is_appended() {
    let Some(mkfs) = tool("mkfs.erofs") else {
        return;
    };
    let Some(fsck) = tool("fsck.erofs") else {
        return;
    };
    let (dir, src, _, good) = made_with(&mkfs, &["-zlz4hc", "-T0"]);
    let big = noise(9, 3 << 20);
    let mut replace = BTreeMap::new();
    replace.insert("etc/small.txt".to_string(), big.clone());
    let e = Edit {
        remove: vec!["app/Beta".into()],
        replace,
    };
    let out_path = dir.path().join("edited.img");
    let mut f = std::fs::File::create(&out_path).unwrap();
    let stats = edit(&good, &e, &mut f).unwrap();
    drop(f);
    assert!(stats.appended_blocks > 0, "{stats:?}");
    assert_eq!(stats.size, std::fs::metadata(&out_path).unwrap().len());
    fsck_ok(&fsck, &out_path, "appended");
    let tree = ErofsImage::open(&out_path).unwrap().tree().unwrap();
    assert!(content(&tree, "etc/small.txt") == big);
    assert!(content(&tree, "bin/sh") == std::fs::read(src.join("bin/sh")).unwrap());
    // The source's bytes are a prefix of the output except where the edit
    // wrote: everything after the old end is the new file.
    assert!(std::fs::read(&out_path).unwrap().len() > good.len());

    // Data after the filesystem (an AVB footer, say) is never overwritten.
    let mut footer = good.clone();
    footer.extend_from_slice(b"AVBf");
    footer.resize(footer.len() + 60, 1);
    let mut out = std::io::Cursor::new(Vec::new());
    let err = edit(&footer, &e, &mut out).unwrap_err();
    assert!(err.to_string().contains("after the filesystem"), "{err}");
    assert!(out.get_ref().is_empty());
    // Without appending, the trailing bytes are kept as they are.
    let small = Edit {
        remove: vec!["app/Beta".into()],
        ..Default::default()
    };
    edit(&footer, &small, &mut out).unwrap();
    assert!(out.get_ref().ends_with(&footer[good.len()..]));
}

/// The plan of a shipped profile, applied as an in-place edit of each
/// sample partition, gives the tree that applying it to the partition's tree
/// gives (what a rebuild writes), with fsck.erofs content.
#[test]
fn a_profile_plan_applied_in_place_equals_the_plan_applied_to_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    romkit()
        .args(["unpack", "-o"])
        .arg(dir.path())
        .arg(sample())
        .assert()
        .success();
    let profile = romkit::debloat::load("xiaomi-eu").unwrap();
    let fsck = tool("fsck.erofs");
    let mut edited_parts = 0;
    for part in ["system", "system_ext", "product", "vendor", "odm", "mi_ext"] {
        let img = dir.path().join(format!("{part}.img"));
        let loaded = romkit::apps::load(&img, None, 1).unwrap();
        let apps = romkit::apps::identify(loaded.locate(), 1);
        let plan = romkit::debloat::plan(
            &profile,
            &apps,
            &loaded.partitions,
            romkit::debloat::PlanOptions {
                allow_unsafe: false,
            },
        );
        let source_tree = ErofsImage::open(&img).unwrap().tree().unwrap();
        let e = plan.image_edit(part, &source_tree).unwrap();
        if e.remove.is_empty() && e.replace.is_empty() {
            continue;
        }
        edited_parts += 1;
        let out_path = dir.path().join(format!("{part}.edited.img"));
        let mut f = std::fs::File::create(&out_path).unwrap();
        let stats = romkit::fs::erofs::edit::edit_image(&img, &e, &mut f)
            .unwrap_or_else(|err| panic!("{part}: {err}"));
        drop(f);
        assert!(stats.total_changed() > 0, "{part}: {stats:?}");
        if let Some(fsck) = &fsck {
            fsck_ok(fsck, &out_path, part);
        }
        let mut expect = source_tree.clone();
        plan.apply(part, &mut expect).unwrap();
        let got = ErofsImage::open(&out_path).unwrap().tree().unwrap();
        let (a, b): (Vec<String>, Vec<String>) = (
            expect.walk().into_iter().map(|(p, _)| p).collect(),
            got.walk().into_iter().map(|(p, _)| p).collect(),
        );
        assert_eq!(a, b, "{part}: entries");
        for p in &a {
            let (x, y) = (
                expect.inode(expect.lookup(p).unwrap()),
                got.inode(got.lookup(p).unwrap()),
            );
            assert_eq!(x.meta, y.meta, "{part}: {p}");
            if matches!(x.kind, Kind::File(_)) {
                assert!(content(&expect, p) == content(&got, p), "{part}: {p}");
            }
        }
    }
    assert!(edited_parts >= 2, "the profile edits several partitions");
}
