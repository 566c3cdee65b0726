//! EROFS images with directory entries that must never become paths
//! (`/`, `..`, `.`, NUL), directory cycles and a 10,000-deep tree, as the
//! system image of a fastboot package.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use romkit::fs::erofs::writer::{ErofsOptions, write};
use romkit::fs::tree::{FileData, Inode, Kind, Meta, Tree};

use crate::harness::{Case, Expect, INVALID};
use crate::zipraw;

pub fn meta(perm: u32) -> Meta {
    let mut xattrs = BTreeMap::new();
    xattrs.insert(
        b"security.selinux".to_vec(),
        b"u:object_r:system_file:s0\0".to_vec(),
    );
    Meta {
        perm,
        uid: 0,
        gid: 0,
        mtime: 1_700_000_000,
        mtime_nsec: 0,
        xattrs,
    }
}

pub fn image_of(t: &Tree) -> Vec<u8> {
    let mut img = std::io::Cursor::new(Vec::new());
    write(t, &ErofsOptions::default(), &mut img).unwrap();
    img.into_inner()
}

/// The device check of a flash script, which names the device for `build`.
const FLASH_ALL: &[u8] =
    b"fastboot $* getvar product 2>&1 | grep -q \"^product: *fuxi *$\" || exit 1\n";

/// A fastboot zip whose `images/system.img` is `img`.
pub fn package(img: &[u8]) -> Vec<u8> {
    zipraw::build(&[
        zipraw::stored("flash_all.sh", FLASH_ALL),
        zipraw::stored("images/boot.img", &[0x42; 8192]),
        zipraw::stored("images/system.img", img),
    ])
}

/// `dir/{aa,bb,c}` and the nid of every path (root is "").
fn small_image() -> (Vec<u8>, HashMap<String, u64>) {
    let mut t = Tree::new(meta(0o755));
    let d = t.add_inode(Inode {
        kind: Kind::Dir(BTreeMap::new()),
        meta: meta(0o755),
    });
    t.link(t.root(), b"dir", d).unwrap();
    for (name, len) in [("dir/aa", 5), ("dir/bb", 9000), ("dir/c", 1)] {
        t.add_file(
            name,
            FileData::Bytes(Arc::new(vec![b'r'; len])),
            meta(0o644),
        )
        .unwrap();
    }
    let bytes = image_of(&t);
    let fs = erofs_rs::EroFS::new(erofs_rs::backend::SliceImage::new(&bytes)).unwrap();
    let mut nids = HashMap::new();
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

/// Offsets of `name`'s directory entry and of its name bytes in `dir_nid`.
fn dirent(bytes: &[u8], dir_nid: u64, name: &[u8]) -> (usize, usize) {
    let le16 = |o: usize| u16::from_le_bytes(bytes[o..o + 2].try_into().unwrap()) as usize;
    let ino = (dir_nid * 32) as usize;
    let format = le16(ino);
    // Small directories are inline after the inode (layout 2) or in block i_u.
    let base = if (format >> 1) & 7 == 2 {
        let icount = le16(ino + 2);
        let xattr = if icount == 0 {
            0
        } else {
            12 + (icount - 1) * 4
        };
        ino + if format & 1 == 1 { 64 } else { 32 } + xattr
    } else {
        u32::from_le_bytes(bytes[ino + 16..ino + 20].try_into().unwrap()) as usize * 4096
    };
    for i in 0..le16(base + 8) / 12 {
        let off = le16(base + i * 12 + 8);
        if bytes[base + off..].starts_with(name) {
            return (base + i * 12, base + off);
        }
    }
    panic!("entry {name:?} not found");
}

fn run_hostile(what: &str, img: &[u8]) {
    let case = Case::new(&format!("erofs {what}"), "fb.zip", &package(img));
    // Reading the image's tree fails and names the partition; inspect and
    // verify only read the package structure and succeed.
    case.check(&["inspect", "IN"], Expect::Ok);
    case.check(&["verify", "IN"], Expect::Ok);
    for args in [
        &["unpack", "--files", "IN", "-o", "OUT"][..],
        &["ls", "-R", "IN", "system"],
        &["apps", "IN"],
        &[
            "build",
            "--profile",
            crate::harness::PROFILE,
            "-o",
            "OUT/x.zip",
            "IN",
        ],
    ] {
        case.check(args, Expect::Fail(INVALID, "system"));
    }
    // The bare image too.
    let bare = Case::new(&format!("erofs {what} (bare)"), "system.img", img);
    bare.check(&["ls", "-R", "IN"], Expect::Fail(INVALID, "system.img"));
    bare.check(&["apps", "IN"], Expect::Fail(INVALID, "system.img"));
}

#[test]
fn directory_entries_that_are_not_names() {
    let (good, nids) = small_image();
    let dir = nids["dir"];
    for (what, name) in [("name with '/'", b'/'), ("name with NUL", 0u8)] {
        let mut b = good.clone();
        let (_, at) = dirent(&b, dir, b"aa");
        b[at] = name;
        run_hostile(what, &b);
    }
    let mut b = good.clone();
    let (_, at) = dirent(&b, dir, b"aa");
    b[at..at + 2].copy_from_slice(b"..");
    run_hostile("entry named ..", &b);
    let mut b = good.clone();
    let (_, at) = dirent(&b, dir, b"c");
    b[at] = b'.';
    run_hostile("entry named .", &b);
}

#[test]
fn directory_cycles() {
    let (good, nids) = small_image();
    for (what, target) in [
        ("entry pointing at the root", ""),
        ("entry pointing at its own dir", "dir"),
    ] {
        let mut b = good.clone();
        let (ent, _) = dirent(&b, nids["dir"], b"bb");
        b[ent..ent + 8].copy_from_slice(&nids[target].to_le_bytes());
        b[ent + 10] = 2; // file type: directory
        run_hostile(what, &b);
    }
}

#[test]
fn ten_thousand_deep_tree() {
    let mut t = Tree::new(meta(0o755));
    let mut parent = t.root();
    for _ in 0..10_000 {
        let d = t.add_inode(Inode {
            kind: Kind::Dir(BTreeMap::new()),
            meta: meta(0o755),
        });
        t.link(parent, b"d", d).unwrap();
        parent = d;
    }
    let img = image_of(&t);
    let case = Case::new("erofs 10000-deep tree", "fb.zip", &package(&img));
    // A legal tree that cannot become a folder (paths of 20,000 bytes):
    // reading it is fine, extracting it fails with exit 3 and no tree left.
    case.check(&["inspect", "IN"], Expect::Ok);
    case.check(&["verify", "IN"], Expect::Ok);
    case.check(
        &["unpack", "--files", "IN", "-o", "OUT"],
        Expect::Fail(INVALID, "system"),
    );
    case.check(&["ls", "-R", "IN", "system"], Expect::Ok);
    case.check(&["apps", "IN"], Expect::Ok);
    case.check(
        &[
            "build",
            "--profile",
            crate::harness::PROFILE,
            "-o",
            "OUT/x.zip",
            "IN",
        ],
        Expect::Ok,
    );
}
