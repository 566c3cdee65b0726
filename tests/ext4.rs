//! ext4 images made by e2fsprogs (`mke2fs -d`) are read by romkit with every
//! byte, mode, owner, time, label, capability, link and device intact; the
//! `ext4-view` crate reads the same contents independently.

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::*;
use romkit::fs::tree::Kind;

fn setxattr(p: &Path, name: &str, value: &[u8]) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: valid C strings and buffer.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr {name} on {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn is_root() -> bool {
    // SAFETY: no arguments, no side effects.
    unsafe { libc::geteuid() == 0 }
}

/// A source folder with every kind of entry, and the image mke2fs makes of it.
fn image(dir: &Path) -> Option<std::path::PathBuf> {
    let mke2fs = tool("mke2fs")?;
    let src = dir.join("src");
    for d in ["app/Notes", "bin", "etc/permissions"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    std::fs::write(src.join("app/Notes/Notes.apk"), noise(1, 300_000)).unwrap();
    std::fs::write(src.join("bin/sh"), mixed_image(2, 5)).unwrap();
    std::fs::write(src.join("etc/build.prop"), b"ro.product.device=fuxi\n").unwrap();
    std::fs::write(src.join("etc/empty"), b"").unwrap();
    std::fs::hard_link(src.join("bin/sh"), src.join("bin/sh2")).unwrap();
    std::os::unix::fs::symlink("/system/bin/sh", src.join("bin/fast")).unwrap();
    std::os::unix::fs::symlink(format!("/{}/target", "x".repeat(100)), src.join("bin/slow"))
        .unwrap();
    for p in [
        "",
        "app",
        "app/Notes",
        "app/Notes/Notes.apk",
        "bin",
        "bin/sh",
        "etc",
        "etc/permissions",
        "etc/build.prop",
        "etc/empty",
    ] {
        setxattr(
            &src.join(p),
            "security.selinux",
            b"u:object_r:system_file:s0\0",
        );
    }
    // CAP_NET_RAW, revision 2, effective.
    let mut cap = 0x0200_0001u32.to_le_bytes().to_vec();
    cap.extend_from_slice(&(1u32 << 13).to_le_bytes());
    cap.extend_from_slice(&[0; 12]);
    if is_root() {
        let c = CString::new(src.join("bin/null").as_os_str().as_bytes()).unwrap();
        // SAFETY: valid path; creating a device node in our own temp folder.
        assert_eq!(
            unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) },
            0
        );
        // Before the capability: changing the owner drops file capabilities.
        std::os::unix::fs::chown(src.join("bin/sh"), Some(1000), Some(2000)).unwrap();
    }
    setxattr(&src.join("bin/sh"), "security.capability", &cap);
    setxattr(
        &src.join("app/Notes/Notes.apk"),
        "user.note",
        &vec![b'v'; 300],
    );
    let img = dir.join("system.img");
    let out = Command::new(mke2fs)
        .args(["-q", "-t", "ext4", "-b", "4096", "-I", "256", "-d"])
        .arg(&src)
        .arg(&img)
        .arg("32M")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mke2fs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(img)
}

#[test]
fn romkit_reads_what_mke2fs_writes() {
    let dir = tempfile::tempdir().unwrap();
    let Some(img) = image(dir.path()) else { return };
    let src = dir.path().join("src");
    let tree = romkit::fs::read_tree(&img).unwrap();
    let ext4 = ext4_view::Ext4::load_from_path(&img).unwrap();
    let mut seen = 0;
    for (path, id) in tree.walk().into_iter().skip(1) {
        if path == "lost+found" {
            continue;
        }
        seen += 1;
        let ino = tree.inode(id);
        let md = std::fs::symlink_metadata(src.join(&path)).unwrap();
        assert_eq!(
            ino.kind.type_bits() | ino.meta.perm,
            md.mode(),
            "{path}: mode"
        );
        assert_eq!(
            (ino.meta.uid, ino.meta.gid),
            (md.uid(), md.gid()),
            "{path}: owner"
        );
        // mke2fs stores what it stores (it may drop nanoseconds of folders):
        // ext4-view's reading of the same inode is the reference.
        let t = ext4
            .symlink_metadata(format!("/{path}").as_str())
            .unwrap()
            .modified();
        assert_eq!(
            (ino.meta.mtime, ino.meta.mtime_nsec),
            (t.seconds(), t.nanoseconds()),
            "{path}: mtime"
        );
        match &ino.kind {
            Kind::File(d) => {
                let mut b = Vec::new();
                d.read(&mut b).unwrap();
                assert!(
                    b == std::fs::read(src.join(&path)).unwrap(),
                    "{path}: content"
                );
                assert!(
                    b == ext4.read(format!("/{path}").as_str()).unwrap(),
                    "{path}: ext4-view agrees"
                );
            }
            Kind::Symlink(t) => assert_eq!(
                t.as_slice(),
                std::fs::read_link(src.join(&path))
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
            ),
            Kind::CharDev(d) => assert_eq!(*d, md.rdev(), "{path}: device"),
            _ => {}
        }
    }
    assert_eq!(seen, if is_root() { 13 } else { 12 });
    let sh = tree.inode(tree.lookup("bin/sh").unwrap());
    assert_eq!(
        sh.meta.selinux_label().as_deref(),
        Some("u:object_r:system_file:s0")
    );
    assert_eq!(sh.meta.capabilities(), Some(1 << 13));
    assert_eq!(
        tree.lookup("bin/sh").unwrap(),
        tree.lookup("bin/sh2").unwrap(),
        "hard link"
    );
    let apk = tree.inode(tree.lookup("app/Notes/Notes.apk").unwrap());
    assert_eq!(
        apk.meta.xattrs[&b"user.note"[..]],
        vec![b'v'; 300],
        "xattr in the EA block"
    );
    // The CLI lists the image like any other.
    romkit()
        .args(["ls", "-R"])
        .arg(&img)
        .assert()
        .success()
        .stdout(predicates::str::contains("bin/fast -> /system/bin/sh"));
}

#[test]
fn ext4_converts_to_erofs_that_fsck_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let Some(img) = image(dir.path()) else { return };
    let Some(fsck) = tool("fsck.erofs") else {
        return;
    };
    let out = dir.path().join("out");
    romkit()
        .args(["unpack", "-o"])
        .arg(&out)
        .arg(&img)
        .assert()
        .success();
    let erofs = dir.path().join("system.erofs");
    romkit()
        .args(["pack", "-o"])
        .arg(&erofs)
        .arg(out.join("system"))
        .assert()
        .success();
    let r = Command::new(fsck)
        .arg("--extract")
        .arg(&erofs)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let a = romkit::fs::read_tree(&img).unwrap();
    let b = romkit::fs::read_tree(&erofs).unwrap();
    let la: Vec<_> = a
        .records()
        .unwrap()
        .into_iter()
        .filter(|r| !r.path.starts_with("lost+found"))
        .collect();
    let lb: Vec<_> = b
        .records()
        .unwrap()
        .into_iter()
        .filter(|r| !r.path.starts_with("lost+found"))
        .collect();
    for (x, y) in la.iter().zip(&lb) {
        assert_eq!(x, y);
    }
    assert_eq!(la.len(), lb.len());
}

#[test]
fn hostile_ext4_images_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let Some(img) = image(dir.path()) else { return };
    let good = std::fs::read(&img).unwrap();
    let block = 4096usize;
    // Group descriptor 0 -> inode table; root inode is #2 (index 1).
    let gd = &good[block..block + 64];
    let table = u32::from_le_bytes(gd[8..12].try_into().unwrap()) as usize;
    let root = table * block + 256;
    type Patch = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Patch)> = vec![
        (
            "extent magic",
            Box::new(move |b: &mut Vec<u8>| b[root + 0x28] ^= 0xff),
        ),
        (
            "extent past the end",
            Box::new(move |b: &mut Vec<u8>| {
                b[root + 0x28 + 12 + 8..root + 0x28 + 12 + 12]
                    .copy_from_slice(&0x7fff_fff0u32.to_le_bytes())
            }),
        ),
        (
            "size 2^60",
            Box::new(move |b: &mut Vec<u8>| {
                b[root + 0x6C..root + 0x70].copy_from_slice(&(1u32 << 28).to_le_bytes())
            }),
        ),
        (
            "xattr count past the inode",
            Box::new(move |b: &mut Vec<u8>| {
                b[root + 0x80..root + 0x82].copy_from_slice(&0x1000u16.to_le_bytes())
            }),
        ),
    ];
    for (what, patch) in cases {
        let mut b = good.clone();
        patch(&mut b);
        let p = dir.path().join("bad.img");
        std::fs::write(&p, &b).unwrap();
        let r = romkit().args(["ls", "-R"]).arg(&p).output().unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!err.contains("panicked"), "{what}: {err}");
        assert_eq!(r.status.code(), Some(3), "{what}: {err}");
        assert!(err.contains("bad.img"), "{what}: {err}");
    }
}
