//! EROFS images romkit writes, checked with erofs-utils (fsck.erofs, dump.erofs).

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use common::*;
use romkit::fs::erofs::writer::{WriteOptions, write};
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

#[test]
fn fsck_erofs_accepts_and_extracts_what_romkit_writes() {
    let Some(fsck) = tool("fsck.erofs") else {
        return;
    };
    let (tree, files) = sample_tree();
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("system.img");
    let mut f = std::fs::File::create(&img).unwrap();
    write(&tree, &WriteOptions::default(), &mut f).unwrap();
    drop(f);
    let out = Command::new(&fsck).arg(&img).output().unwrap();
    assert!(
        out.status.success(),
        "fsck.erofs: {}{}",
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
        "fsck.erofs --extract: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for (path, data) in &files {
        assert!(std::fs::read(x.join(path)).unwrap() == *data, "{path}");
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
        300
    );
    // Same tree, same bytes.
    let img2 = dir.path().join("again.img");
    let mut f = std::fs::File::create(&img2).unwrap();
    write(&tree, &WriteOptions::default(), &mut f).unwrap();
    assert!(std::fs::read(&img).unwrap() == std::fs::read(&img2).unwrap());
}
