//! In-place editing of ext4 images made by `mke2fs -d` (with and without
//! metadata_csum and a journal, 1 and 4 KiB blocks, extents and ext3 block
//! maps, htree directories, hard links, symlinks, xattrs in the inode and in
//! blocks), checked with e2fsprogs and ext4-view: `e2fsck -fn` finds the
//! edited image clean; ext4-view reads the source tree minus the removed
//! paths plus the replaced files, with modes and owners; debugfs lists the
//! same xattrs, says the removed inodes and blocks are free and that every
//! surviving file keeps its blocks, whose bytes are the source's.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use romkit::fs::ext4::edit::{Edit, EditStats, Ext4EditError, edit, edit_image};

fn write(p: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

fn setfattr(p: &Path, name: &str, value: &str) {
    // Best effort: security.* needs privileges on some machines.
    let _ = Command::new("setfattr")
        .args(["-n", name, "-v", value])
        .arg(p)
        .output();
}

fn perm_name(i: usize) -> String {
    format!(
        "etc/permissions/p{i:03}_com.example.permission.{}.xml",
        "x".repeat(i % 40)
    )
}

/// A system-like tree: apps (one hard-linked from outside its folder), a
/// folder of 400 entries (an htree), a big fragmented-enough file, fast and
/// slow symlinks, an empty file, xattrs in the inode and in a block.
fn source(root: &Path) -> PathBuf {
    let src = root.join("src");
    write(&src.join("app/Alpha/Alpha.apk"), &mixed_image(1, 75));
    write(
        &src.join("app/Alpha/oat/arm64/Alpha.odex"),
        &noise(11, 9000),
    );
    write(
        &src.join("app/Beta/Beta.apk"),
        &mixed_image(2, 30)[..120_001],
    );
    write(&src.join("app/Beta/lib/arm64/libb.so"), &noise(3, 50_000));
    write(&src.join("app/Keep/Keep.apk"), &noise(12, 33_000));
    write(&src.join("priv-app/Big/Big.apk"), &noise(4, 6 << 20));
    write(
        &src.join("etc/build.prop"),
        &b"ro.product.device=fuxi\nro.build.type=user\n".repeat(60),
    );
    write(&src.join("etc/small.prop"), &b"ro.small=1\n".repeat(500));
    for i in 0..400 {
        write(
            &src.join(perm_name(i)),
            format!("<permission name=\"p{i}\" />\n").as_bytes(),
        );
    }
    write(&src.join("bin/sh"), &noise(6, 70_000));
    write(&src.join("bin/big-xattr"), &noise(8, 5000));
    write(&src.join("lib64/libc.so"), &noise(7, 100_000));
    std::fs::create_dir_all(src.join("data")).unwrap();
    std::fs::hard_link(src.join("lib64/libc.so"), src.join("bin/hard")).unwrap();
    std::fs::hard_link(
        src.join("app/Beta/Beta.apk"),
        src.join("data/beta-link.apk"),
    )
    .unwrap();
    write(&src.join("xbin/one"), &noise(9, 30_000));
    std::fs::hard_link(src.join("xbin/one"), src.join("xbin/two")).unwrap();
    std::os::unix::fs::symlink("/system/bin/sh", src.join("bin/ls")).unwrap();
    std::os::unix::fs::symlink("/system/bin/sh", src.join("bin/cat")).unwrap();
    let long = format!("/system/{}/toybox", "very-long-folder-name".repeat(6));
    std::os::unix::fs::symlink(&long, src.join("bin/slow")).unwrap();
    std::os::unix::fs::symlink(&long, src.join("bin/slow-kept")).unwrap();
    write(&src.join("empty"), b"");
    setfattr(
        &src.join("bin/sh"),
        "security.selinux",
        "u:object_r:system_file:s0",
    );
    setfattr(&src.join("bin/sh"), "user.romkit", "kept");
    setfattr(
        &src.join("bin/sh"),
        "security.capability",
        "0x0100000200200000000000000000000000000000",
    );
    let big = "v".repeat(700);
    setfattr(&src.join("bin/big-xattr"), "user.big", &big);
    setfattr(&src.join("lib64/libc.so"), "user.big", &big);
    setfattr(
        &src.join("app/Keep"),
        "security.selinux",
        "u:object_r:system_app_file:s0",
    );
    src
}

fn the_edit(big_prop: bool) -> Edit {
    let mut replace = BTreeMap::new();
    let prop: &[u8] = b"ro.product.device=fuxi\nro.product.locale=en-GB\n";
    replace.insert(
        "etc/build.prop".to_string(),
        prop.repeat(if big_prop { 300 } else { 2 }),
    );
    replace.insert("etc/small.prop".to_string(), b"ro.small=0\n".to_vec());
    let mut remove: Vec<String> = [
        "app/Beta",
        "priv-app/Big",
        "bin/hard",
        "bin/slow",
        "bin/cat",
        "bin/big-xattr",
        "xbin/one", // both names of a hard link
        "xbin/two",
        "app/Alpha/Alpha.apk",
        "app/Alpha/oat",
        "/app/Beta/lib/", // inside a removed folder, with slashes
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for i in 0..150 {
        remove.push(perm_name(i * 2));
    }
    Edit { remove, replace }
}

fn is_removed(e: &Edit, path: &str) -> bool {
    e.remove.iter().any(|r| {
        let r = r.trim_matches('/');
        path == r || path.starts_with(&format!("{r}/"))
    })
}

/// Every entry under `dir`, relative, with its metadata.
fn walk(dir: &Path) -> BTreeMap<String, std::fs::Metadata> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let md = e.path().symlink_metadata().unwrap();
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            if md.is_dir() {
                todo.push(e.path());
            }
            out.insert(rel, md);
        }
    }
    out
}

fn mke2fs(root: &Path, src: &Path, name: &str, opts: &[&str], size: &str) -> Option<PathBuf> {
    let mke2fs = need("mke2fs", tool("mke2fs"))?;
    let img = root.join(format!("{name}.img"));
    run_ok(
        Command::new(mke2fs)
            .env("E2FSPROGS_FAKE_TIME", "1700000000")
            .args(["-q", "-F", "-U", "5a1b7f3e-0c1d-4e2f-8a9b-0123456789ab"])
            .args(["-E", "hash_seed=0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"])
            .args(opts)
            .arg("-d")
            .arg(src)
            .arg(&img)
            .arg(size),
    );
    // mke2fs -d writes linear directories; e2fsck -D indexes the big ones
    // (htree), as a kernel would have when they grew.
    let st = Command::new("e2fsck")
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .arg("-fyD")
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        st.status.code().is_some_and(|c| c <= 1),
        "e2fsck -fyD: {st:?}"
    );
    Some(img)
}

/// Runs debugfs commands on `img`; the output of each.
fn debugfs(img: &Path, cmds: &[String]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cmds");
    std::fs::write(&f, cmds.join("\n") + "\n").unwrap();
    let out = run_ok(Command::new("debugfs").arg("-f").arg(&f).arg(img));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let parts: Vec<String> = text
        .split("debugfs: ")
        .skip(1)
        .map(|p| p.split_once('\n').map_or("", |x| x.1).to_string())
        .collect();
    assert_eq!(parts.len(), cmds.len(), "debugfs output: {text}");
    parts
}

fn e2fsck_clean(img: &Path) {
    let out = Command::new("e2fsck").arg("-fn").arg(img).output().unwrap();
    assert!(
        out.status.success(),
        "e2fsck -fn {}: {}\n{}",
        img.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn inode_no(stat: &str) -> u32 {
    stat.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn block_list(s: &str) -> Vec<u64> {
    s.split_whitespace().map(|b| b.parse().unwrap()).collect()
}

/// Every block that differs between the images is inside `changed`; every
/// range of `changed` holds a difference in each block; `zeroed` is zero.
fn check_ranges(src: &[u8], out: &[u8], st: &EditStats) {
    let bs = st.block_size as usize;
    assert_eq!(out.len(), src.len());
    let in_ranges = |r: &[std::ops::Range<u64>], b: usize| {
        r.iter()
            .any(|x| x.start <= (b * bs) as u64 && ((b + 1) * bs) as u64 <= x.end)
    };
    let mut differing = 0;
    for b in 0..src.len() / bs {
        let differs = src[b * bs..(b + 1) * bs] != out[b * bs..(b + 1) * bs];
        assert_eq!(
            differs,
            in_ranges(&st.changed, b),
            "block {b}: changed ranges"
        );
        differing += usize::from(differs);
        if in_ranges(&st.zeroed, b) {
            assert!(
                differs && out[b * bs..(b + 1) * bs].iter().all(|&x| x == 0),
                "block {b}"
            );
        }
    }
    assert_eq!(differing as u64, st.changed_blocks);
    for w in st.changed.windows(2).chain(st.zeroed.windows(2)) {
        assert!(w[0].end < w[1].start, "sorted, merged ranges");
    }
}

/// The edited image's tree (ext4-view) is the source's minus the removed
/// paths plus the replaced files, with modes, owners and targets.
fn check_tree(src: &Path, img: &Path, e: &Edit) {
    let fs = ext4_view::Ext4::load_from_path(img).unwrap();
    let mut seen = BTreeSet::new();
    let mut todo = vec![String::new()];
    while let Some(d) = todo.pop() {
        for entry in fs.read_dir(format!("/{d}").as_str()).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().as_str().unwrap().to_string();
            if name == "." || name == ".." || name == "lost+found" {
                continue;
            }
            let p = if d.is_empty() {
                name
            } else {
                format!("{d}/{name}")
            };
            if entry.file_type().unwrap().is_dir() {
                todo.push(p.clone());
            }
            seen.insert(p);
        }
    }
    let expected: BTreeMap<String, std::fs::Metadata> = walk(src)
        .into_iter()
        .filter(|(p, _)| !is_removed(e, p))
        .collect();
    assert_eq!(seen, expected.keys().cloned().collect::<BTreeSet<_>>());
    for (p, md) in &expected {
        let path = format!("/{p}");
        let m = fs.symlink_metadata(path.as_str()).unwrap();
        assert_eq!(
            u32::from(m.mode()) & 0o7777,
            md.mode() & 0o7777,
            "{p}: mode"
        );
        assert_eq!((m.uid(), m.gid()), (md.uid(), md.gid()), "{p}: owner");
        if md.file_type().is_symlink() {
            let t = fs.read_link(path.as_str()).unwrap();
            assert_eq!(
                t.to_str().unwrap(),
                std::fs::read_link(src.join(p)).unwrap().to_str().unwrap()
            );
        } else if md.is_file() {
            let want = e
                .replace
                .get(p)
                .cloned()
                .unwrap_or_else(|| std::fs::read(src.join(p)).unwrap());
            assert!(fs.read(path.as_str()).unwrap() == want, "{p}: content");
        }
    }
}

/// Edits an image of `src` made with `opts`, and checks it every way.
fn check_variant(root: &Path, src: &Path, name: &str, opts: &[&str], big_prop: bool) {
    let Some(img) = mke2fs(root, src, name, opts, "48M") else {
        return;
    };
    if need("debugfs", tool("debugfs")).is_none() || need("e2fsck", tool("e2fsck")).is_none() {
        return;
    }
    e2fsck_clean(&img);
    let flags = &debugfs(&img, &["stat /etc/permissions".to_string()])[0];
    let flags = flags
        .split("Flags: 0x")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert!(
        u32::from_str_radix(flags, 16).unwrap() & 0x1000 != 0,
        "{name}: etc/permissions is an htree"
    );
    if name == "1k" {
        let stat = &debugfs(&img, &["stat /priv-app/Big/Big.apk".to_string()])[0];
        assert!(
            stat.contains("(ETB0)"),
            "{name}: Big.apk has an extent index block: {stat}"
        );
    }
    let e = the_edit(big_prop);
    let source = std::fs::read(&img).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    let st = edit(&source, &e, &mut out).unwrap_or_else(|err| panic!("{name}: {err}"));
    let edited = out.into_inner();
    let out_img = root.join(format!("{name}.edited.img"));
    std::fs::write(&out_img, &edited).unwrap();
    e2fsck_clean(&out_img);
    check_ranges(&source, &edited, &st);
    check_tree(src, &out_img, &e);

    // Inodes and blocks, from the source image through debugfs.
    let all = walk(src);
    let regular: Vec<&String> = all
        .iter()
        .filter(|(_, m)| m.is_file())
        .map(|(p, _)| p)
        .collect();
    let mut cmds: Vec<String> = all.keys().map(|p| format!("stat \"/{p}\"")).collect();
    cmds.extend(regular.iter().map(|p| format!("blocks \"/{p}\"")));
    let before = debugfs(&img, &cmds);
    let ino_of: BTreeMap<&String, u32> = all
        .keys()
        .zip(&before)
        .map(|(p, s)| (p, inode_no(s)))
        .collect();
    let blocks_of: BTreeMap<&String, Vec<u64>> = regular
        .iter()
        .zip(&before[all.len()..])
        .map(|(p, s)| (*p, block_list(s)))
        .collect();
    let live_inodes: BTreeSet<u32> = ino_of
        .iter()
        .filter(|(p, _)| !is_removed(&e, p))
        .map(|(_, &n)| n)
        .collect();
    let dead_inodes: BTreeSet<u32> = ino_of
        .iter()
        .filter(|(p, n)| is_removed(&e, p) && !live_inodes.contains(n))
        .map(|(_, &n)| n)
        .collect();
    assert_eq!(
        st.removed_inodes,
        dead_inodes.len() as u64,
        "{name}: removed inodes"
    );
    let live_blocks: BTreeSet<u64> = blocks_of
        .iter()
        .filter(|(p, _)| !is_removed(&e, p))
        .flat_map(|(_, b)| b.iter().copied())
        .collect();
    // Replaced files may take blocks removed files had.
    let replaced_paths: Vec<String> = e
        .replace
        .keys()
        .map(|p| format!("blocks \"/{p}\""))
        .collect();
    let new_blocks: BTreeSet<u64> = debugfs(&out_img, &replaced_paths)
        .iter()
        .flat_map(|s| block_list(s))
        .collect();
    let dead_blocks: BTreeSet<u64> = blocks_of
        .iter()
        .filter(|(p, _)| is_removed(&e, p))
        .flat_map(|(_, b)| b.iter().copied())
        .filter(|b| !live_blocks.contains(b) && !new_blocks.contains(b))
        .collect();
    assert!(!dead_blocks.is_empty());
    let mut cmds: Vec<String> = dead_inodes.iter().map(|n| format!("testi <{n}>")).collect();
    cmds.extend(dead_blocks.iter().map(|b| format!("testb {b}")));
    let kept: Vec<&String> = regular
        .iter()
        .copied()
        .filter(|p| !is_removed(&e, p) && !e.replace.contains_key(*p))
        .collect();
    cmds.extend(kept.iter().map(|p| format!("blocks \"/{p}\"")));
    let xattr_paths: Vec<&String> = all.keys().filter(|p| !is_removed(&e, p)).collect();
    cmds.extend(xattr_paths.iter().map(|p| format!("ea_list \"/{p}\"")));
    let after = debugfs(&out_img, &cmds);
    let (tests, rest) = after.split_at(dead_inodes.len() + dead_blocks.len());
    for t in tests {
        assert!(t.contains("not in use"), "{name}: {t}");
    }
    let bs = st.block_size as usize;
    for b in &dead_blocks {
        let b = *b as usize;
        assert!(
            edited[b * bs..(b + 1) * bs].iter().all(|&x| x == 0),
            "{name}: block {b} zeroed"
        );
    }
    let (blocks_after, eas_after) = rest.split_at(kept.len());
    for (p, s) in kept.iter().zip(blocks_after) {
        let list = block_list(s);
        assert_eq!(&list, &blocks_of[*p], "{name}: /{p} keeps its blocks");
        for b in list {
            let b = b as usize;
            assert!(
                edited[b * bs..(b + 1) * bs] == source[b * bs..(b + 1) * bs],
                "{name}: /{p}"
            );
        }
    }
    let eas_before = debugfs(
        &img,
        &xattr_paths
            .iter()
            .map(|p| format!("ea_list \"/{p}\""))
            .collect::<Vec<_>>(),
    );
    assert_eq!(eas_before, eas_after, "{name}: xattrs");
    assert!(eas_after.iter().any(|s| s.contains("security.selinux")) || !is_root());

    // Deterministic.
    let mut again = std::io::Cursor::new(Vec::new());
    let st2 = edit(&source, &e, &mut again).unwrap();
    assert_eq!(st, st2);
    assert!(again.into_inner() == edited, "{name}: deterministic");
    eprintln!(
        "{name}: {st:?}",
        st = (st.changed_blocks, st.zeroed_blocks, st.removed_inodes)
    );
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    })
}

#[test]
fn edits_default_ext4_with_metadata_csum_and_journal() {
    let t = tempfile::tempdir().unwrap();
    let src = source(t.path());
    check_variant(
        t.path(),
        &src,
        "default",
        &["-t", "ext4", "-b", "4096"],
        true,
    );
}

#[test]
fn edits_ext4_without_metadata_csum() {
    let t = tempfile::tempdir().unwrap();
    let src = source(t.path());
    check_variant(
        t.path(),
        &src,
        "gdtcsum",
        &["-t", "ext4", "-O", "^metadata_csum,uninit_bg"],
        false,
    );
    check_variant(
        t.path(),
        &src,
        "nocsum",
        &["-t", "ext4", "-O", "^metadata_csum,^uninit_bg"],
        true,
    );
}

#[test]
fn edits_1k_blocks_without_journal_and_extent_index_blocks() {
    let t = tempfile::tempdir().unwrap();
    let src = source(t.path());
    check_variant(
        t.path(),
        &src,
        "1k",
        &[
            "-t",
            "ext4",
            "-b",
            "1024",
            "-g",
            "1024",
            "-O",
            "^has_journal",
        ],
        true,
    );
}

#[test]
fn edits_ext3_block_maps() {
    let t = tempfile::tempdir().unwrap();
    let src = source(t.path());
    check_variant(t.path(), &src, "ext3", &["-t", "ext3", "-b", "1024"], false);
}

#[test]
fn damaged_or_unsupported_images_fail_with_nothing_written() {
    let t = tempfile::tempdir().unwrap();
    let src = source(t.path());
    let Some(img) = mke2fs(
        t.path(),
        &src,
        "hostile",
        &["-t", "ext4", "-b", "4096"],
        "48M",
    ) else {
        return;
    };
    let good = std::fs::read(&img).unwrap();
    let e = the_edit(false);
    let try_edit = |bytes: &[u8]| {
        let mut out = std::io::Cursor::new(Vec::new());
        let r = edit(bytes, &e, &mut out);
        assert!(out.into_inner().is_empty(), "nothing written");
        r.expect_err("must fail")
    };
    // needs_recovery.
    let mut bad = good.clone();
    bad[1024 + 0x60] |= 0x4;
    let err = try_edit(&bad);
    assert!(
        matches!(err, Ext4EditError::Unsupported { .. })
            && err.to_string().contains("needs_recovery"),
        "{err}"
    );
    // A truncated image.
    let err = try_edit(&good[..good.len() / 2]);
    assert!(err.to_string().contains("s_blocks_count"), "{err}");
    // A directory record whose length runs past its block: the block of
    // etc/permissions that holds p000.
    let stat = &debugfs(&img, &["blocks /etc/permissions".to_string()])[0];
    let bs = 4096usize;
    let mut bad = good.clone();
    let name = perm_name(0);
    let leaf = std::path::Path::new(&name)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .as_bytes()
        .to_vec();
    let b = block_list(stat)
        .into_iter()
        .find(|&b| {
            good[b as usize * bs..(b as usize + 1) * bs]
                .windows(leaf.len())
                .any(|w| w == leaf)
        })
        .unwrap() as usize;
    bad[b * bs + 4..b * bs + 6].copy_from_slice(&60000u16.to_le_bytes());
    let err = try_edit(&bad);
    assert!(
        err.to_string().contains("etc/permissions")
            && err.to_string().contains(&format!("block {b}")),
        "{err}"
    );
    // A path that is not there; a folder to replace.
    let mut out = std::io::Cursor::new(Vec::new());
    let missing = Edit {
        remove: vec!["app/Nope".into()],
        replace: BTreeMap::new(),
    };
    assert!(matches!(
        edit(&good, &missing, &mut out),
        Err(Ext4EditError::NotFound { .. })
    ));
    let mut replace = BTreeMap::new();
    replace.insert("app".to_string(), b"x".to_vec());
    let folder = Edit {
        remove: vec![],
        replace,
    };
    assert!(matches!(
        edit(&good, &folder, &mut out),
        Err(Ext4EditError::NotRegular { .. })
    ));
    assert!(out.into_inner().is_empty());
    // Through a file: a failed edit leaves the output empty.
    let bad_path = t.path().join("bad.img");
    std::fs::write(&bad_path, &bad).unwrap();
    let mut f = std::fs::File::create(t.path().join("out.img")).unwrap();
    assert!(edit_image(&bad_path, &e, &mut f).is_err());
    assert_eq!(f.metadata().unwrap().len(), 0);
}

/// Android's deduplicated images (`shared_blocks`): a block stays in use
/// while a surviving inode maps it, and goes with the last one.
#[test]
fn shared_blocks_are_reference_counted() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    write(&src.join("a/A"), &noise(21, 20_000));
    write(&src.join("a/B"), b"");
    write(&src.join("a/C"), &noise(22, 9000));
    let Some(img) = mke2fs(
        t.path(),
        &src,
        "shared",
        &["-t", "ext4", "-b", "4096", "-O", "^has_journal"],
        "8M",
    ) else {
        return;
    };
    // B becomes a second inode over A's blocks, as e2fsdroid -s makes them.
    debugfs_w(&img, "copy_inode /a/A /a/B");
    debugfs_w(&img, "feature shared_blocks");
    e2fsck_clean(&img);
    let source = std::fs::read(&img).unwrap();
    let blocks = block_list(&debugfs(&img, &["blocks /a/A".to_string()])[0]);
    for (remove, freed) in [(vec!["a/A"], false), (vec!["a/A", "a/B"], true)] {
        let e = Edit {
            remove: remove.iter().map(|s| s.to_string()).collect(),
            replace: BTreeMap::new(),
        };
        let mut out = std::io::Cursor::new(Vec::new());
        let st = edit(&source, &e, &mut out).unwrap();
        let out_img = t.path().join("shared.edited.img");
        std::fs::write(&out_img, out.get_ref()).unwrap();
        e2fsck_clean(&out_img);
        check_ranges(&source, out.get_ref(), &st);
        let tests = debugfs(
            &out_img,
            &blocks
                .iter()
                .map(|b| format!("testb {b}"))
                .collect::<Vec<_>>(),
        );
        for s in tests {
            assert_eq!(s.contains("not in use"), freed, "{remove:?}: {s}");
        }
        if !freed {
            let fs = ext4_view::Ext4::load_from_path(&out_img).unwrap();
            assert!(fs.read("/a/B").unwrap() == noise(21, 20_000));
        }
    }
}

fn debugfs_w(img: &Path, cmd: &str) {
    run_ok(Command::new("debugfs").args(["-w", "-R", cmd]).arg(img));
}

/// `fixture --era miui` makes a reproducible block OTA whose ext4 images
/// e2fsck finds clean (and sdat2img-brotli converts to the same images);
/// `build` debloats it by editing those images in place.
#[test]
fn miui_fixture_builds_by_editing_ext4_in_place() {
    if need("mke2fs", tool("mke2fs")).is_none() || need("e2fsck", tool("e2fsck")).is_none() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let make = |d: &str| {
        let out = romkit()
            .args(["fixture", "--era", "miui", "--size", "16M", "-o"])
            .arg(t.path().join(d))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    };
    let (a, b) = (make("a"), make("b"));
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "fixture is reproducible"
    );
    let v = json_ok(&["inspect", "--json"], &a);
    assert_eq!(v["kind"], "block-ota");
    let src = t.path().join("src");
    romkit()
        .args(["unpack", "-o"])
        .arg(&src)
        .arg(&a)
        .assert()
        .success();
    for p in ["system", "vendor", "product"] {
        e2fsck_clean(&src.join(format!("{p}.img")));
    }
    if let (Some(brotli), Some(sdat2img)) = (tool("brotli"), tool("sdat2img-brotli")) {
        let z = zip::ZipArchive::new(std::fs::File::open(&a).unwrap());
        let mut z = z.unwrap();
        for p in ["system", "product"] {
            for name in [format!("{p}.new.dat.br"), format!("{p}.transfer.list")] {
                let mut f = z.by_name(&name).unwrap();
                let mut out = std::fs::File::create(t.path().join(&name)).unwrap();
                std::io::copy(&mut f, &mut out).unwrap();
            }
            let _ = brotli;
            let theirs = t.path().join(format!("{p}.sdat2img.img"));
            let _ = Command::new(&sdat2img)
                .arg("-d")
                .arg(t.path().join(format!("{p}.new.dat.br")))
                .arg("-t")
                .arg(t.path().join(format!("{p}.transfer.list")))
                .arg("-o")
                .arg(&theirs)
                .output()
                .unwrap();
            assert!(
                std::fs::read(&theirs).unwrap()
                    == std::fs::read(src.join(format!("{p}.img"))).unwrap(),
                "{p}: sdat2img-brotli disagrees"
            );
        }
    }
    // A payload package cannot be flashed by a non-A/B recovery.
    let ota = romkit()
        .args(["build", "--profile", "xiaomi-eu", "--format", "ota", "-o"])
        .arg(t.path().join("ota.zip"))
        .arg(&a)
        .output()
        .unwrap();
    assert_eq!(ota.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&ota.stderr).contains("without A/B slots"),
        "{}",
        String::from_utf8_lossy(&ota.stderr)
    );
    assert!(!t.path().join("ota.zip").exists());
    let out = t.path().join("out");
    let res = romkit()
        .args([
            "build",
            "--profile",
            "xiaomi-eu",
            "--format",
            "images",
            "-o",
        ])
        .arg(&out)
        .arg(&a)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("out.manifest.json")).unwrap())
            .unwrap();
    let status: BTreeMap<String, String> = manifest["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(status["product"], "edited", "{status:?}");
    let mut removed = 0;
    for p in ["system", "vendor", "product"] {
        let img = out.join(format!("{p}.img"));
        e2fsck_clean(&img);
        let before = ext4_view::Ext4::load_from_path(src.join(format!("{p}.img"))).unwrap();
        let after = ext4_view::Ext4::load_from_path(&img).unwrap();
        for app in manifest["apps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["partition"] == p)
        {
            let path = format!("/{}", app["path"].as_str().unwrap());
            let path = path
                .strip_prefix(&format!("/{p}/"))
                .map_or(path.clone(), |r| {
                    // system is system-as-root: its paths keep the prefix.
                    if p == "system" {
                        path.clone()
                    } else {
                        format!("/{r}")
                    }
                });
            let exists = after.exists(path.as_str()).unwrap();
            if app["status"] == "removed" {
                assert!(!exists, "{path} removed");
                removed += 1;
            } else {
                assert!(exists, "{path} kept");
                if !after.metadata(path.as_str()).unwrap().is_dir() {
                    assert!(
                        after.read(path.as_str()).unwrap() == before.read(path.as_str()).unwrap()
                    );
                    continue;
                }
                for e in after.read_dir(path.as_str()).unwrap() {
                    let e = e.unwrap();
                    if e.file_type().unwrap().is_regular_file() {
                        let f = e.path();
                        assert!(after.read(&f).unwrap() == before.read(&f).unwrap(), "{f:?}");
                    }
                }
            }
        }
    }
    assert!(removed > 10, "{removed} apps removed");
}
