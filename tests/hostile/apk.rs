//! An APK inside a system image whose AndroidManifest.xml entry declares
//! gibibytes.

use std::collections::BTreeMap;
use std::sync::Arc;

use romkit::fs::tree::{FileData, Inode, Kind, Tree};

use crate::erofs::{image_of, meta, package};
use crate::harness::{Case, Expect};
use crate::zipraw::{self, Entry};

fn system_with_apk(apk: Vec<u8>) -> Vec<u8> {
    let mut t = Tree::new(meta(0o755));
    for d in ["system", "system/app", "system/app/Huge"] {
        let id = t.add_inode(Inode {
            kind: Kind::Dir(BTreeMap::new()),
            meta: meta(0o755),
        });
        let (parent, name) = d.rsplit_once('/').unwrap_or(("", d));
        let p = if parent.is_empty() {
            t.root()
        } else {
            t.lookup(parent).unwrap()
        };
        t.link(p, name.as_bytes(), id).unwrap();
    }
    t.add_file(
        "system/build.prop",
        FileData::Bytes(Arc::new(b"ro.build.version.sdk=34\n".to_vec())),
        meta(0o644),
    )
    .unwrap();
    t.add_file(
        "system/app/Huge/Huge.apk",
        FileData::Bytes(Arc::new(apk)),
        meta(0o644),
    )
    .unwrap();
    image_of(&t)
}

#[test]
fn manifest_entry_declaring_gibibytes() {
    for (what, declared) in [
        ("4 GiB", 4u64 << 30),
        ("1 TiB", 1 << 40),
        ("16 MiB", 16 << 20),
    ] {
        let manifest = Entry {
            size: declared,
            ..zipraw::deflated("AndroidManifest.xml", &[0x03, 0x00, 0x08, 0x00])
        };
        let apk = zipraw::build(&[manifest, zipraw::stored("classes.dex", b"dex\n035\0")]);
        let img = system_with_apk(apk);
        let case = Case::new(
            &format!("apk manifest declaring {what}"),
            "fb.zip",
            &package(&img),
        );
        // The app is reported and skipped, the others are listed: exit 0
        // with a warning naming the APK, nothing inflated.
        case.check(&["apps", "IN"], Expect::Warned("Huge.apk"));
        case.check(
            &[
                "build",
                "--profile",
                crate::harness::PROFILE,
                "-o",
                "OUT/x.zip",
                "IN",
            ],
            Expect::Warned("Huge.apk"),
        );
        // Identified by neither: verify and unpack only read images.
        case.check(&["verify", "IN"], Expect::Ok);
        let bare = Case::new(
            &format!("apk manifest declaring {what} (bare)"),
            "system.img",
            &img,
        );
        bare.check(&["apps", "IN"], Expect::Warned("Huge.apk"));
    }
}
