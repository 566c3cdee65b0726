//! AVB hashtree footers: images assembled by an independent Python writer
//! (`tests/oracles/avb_hashtree.py`, from libavb's format facts) around a
//! hash tree, FEC parity and root digest computed by cryptsetup's
//! `veritysetup`. romkit must read them, accept them, and after the
//! filesystem region changed, rewrite tree, parity and root digest into
//! exactly the image the same tools make from the edited data.

mod common;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{hex, noise, python_with, root, run_ok, tool};
use romkit::format::avb::footer::{check_hashtree, read_hashtree_footer, refresh_hashtree};

const PART: u64 = 2 * 1024 * 1024;
const SALT: &str = "5d0f81e2a4c3b6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f";

struct Oracles {
    veritysetup: PathBuf,
    python: PathBuf,
}

fn oracles() -> Option<Oracles> {
    Some(Oracles {
        veritysetup: tool("veritysetup")?,
        python: python_with(&["json", "struct"])?,
    })
}

/// An image of `data` with a footer: tree, parity and root from
/// veritysetup, laid out by the Python writer.
fn footer_image(
    o: &Oracles,
    dir: &Path,
    data: &[u8],
    alg: &str,
    roots: u8,
    signed: bool,
) -> Vec<u8> {
    let (d, h, f, out) = (dir.join("d"), dir.join("h"), dir.join("f"), dir.join("img"));
    std::fs::write(&d, data).unwrap();
    let fec = (roots > 0).then_some((f.as_path(), roots));
    let root_hex = common::veritysetup(&o.veritysetup, &d, &h, fec, alg, SALT);
    let mut p = Command::new(&o.python);
    p.arg(root().join("tests/oracles/avb_hashtree.py"))
        .arg("make")
        .arg(&out)
        .arg("--data")
        .arg(&d)
        .arg("--tree")
        .arg(&h)
        .args([
            "--root",
            &root_hex,
            "--salt",
            SALT,
            "--name",
            "product",
            "--algorithm",
            alg,
        ])
        .arg(format!("--partition-size={PART}"));
    if roots > 0 {
        p.arg("--fec").arg(&f).arg(format!("--roots={roots}"));
    }
    if signed {
        p.arg("--signed");
    }
    run_ok(&mut p);
    std::fs::read(&out).unwrap()
}

fn parse_with_python(o: &Oracles, image: &Path) -> serde_json::Value {
    common::avb_parse(&o.python, image)
}

fn open_rw(p: &Path) -> File {
    OpenOptions::new().read(true).write(true).open(p).unwrap()
}

#[test]
fn reads_and_checks_footers_written_by_others() {
    let Some(o) = oracles() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (alg, roots) in [("sha256", 2u8), ("sha1", 0), ("sha256", 16)] {
        let data = noise(3, 300 * 4096);
        let img = footer_image(&o, dir.path(), &data, alg, roots, false);
        let path = dir.path().join("img");
        let found = read_hashtree_footer(&img, img.len() as u64)
            .unwrap()
            .expect("a footer");
        let want = parse_with_python(&o, &path);
        let d = &found.descriptor;
        assert_eq!(want["image_size"], d.image_size);
        assert_eq!(want["tree_offset"], d.tree_offset);
        assert_eq!(want["tree_size"], d.tree_size);
        assert_eq!(want["fec_num_roots"], d.fec_num_roots);
        assert_eq!(want["fec_offset"], d.fec_offset);
        assert_eq!(want["fec_size"], d.fec_size);
        assert_eq!(want["hash_algorithm"], d.hash_algorithm.as_str());
        assert_eq!(want["partition_name"], d.partition_name.as_str());
        assert_eq!(want["salt"], hex(&d.salt).as_str());
        assert_eq!(want["root_digest"], hex(&d.root_digest).as_str());
        assert_eq!(want["vbmeta_offset"], found.footer.vbmeta_offset);
        check_hashtree(&img, &found).unwrap();

        let mut bad = img.clone();
        bad[4096 * 9] ^= 0x80;
        let e = check_hashtree(&bad, &found).unwrap_err().to_string();
        assert!(e.contains("hash tree"), "{alg}: {e}");
    }
}

/// The edit a debloat makes: some blocks of the filesystem change, and the
/// editor's output ends where the filesystem ends.
fn edit(data: &mut [u8]) {
    for b in [3usize, 40, 41, 250] {
        data[b * 4096..(b + 1) * 4096].copy_from_slice(&noise(b as u64 + 1000, 4096));
    }
}

#[test]
fn refresh_after_an_edit_equals_the_tools_output_for_the_edited_data() {
    let Some(o) = oracles() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (roots, signed, truncated) in [(2u8, false, true), (2, true, false), (0, false, true)] {
        // The filesystem is 280 blocks, zero-padded to 300 before the tree.
        let mut data = noise(11, 300 * 4096);
        data[280 * 4096..].fill(0);
        let img = footer_image(&o, dir.path(), &data, "sha256", roots, signed);
        let found = read_hashtree_footer(&img, img.len() as u64)
            .unwrap()
            .unwrap();

        let mut edited = data.clone();
        edit(&mut edited[..280 * 4096]);
        let want = footer_image(&o, dir.path(), &edited, "sha256", roots, signed);
        let want_root = parse_with_python(&o, &dir.path().join("img"))["root_digest"].clone();

        let path = dir.path().join("edited.img");
        let mut got = img.clone();
        got[..280 * 4096].copy_from_slice(&edited[..280 * 4096]);
        if truncated {
            got.truncate(280 * 4096);
        }
        std::fs::write(&path, &got).unwrap();
        let r = refresh_hashtree(&open_rw(&path), 280 * 4096, &found).unwrap();
        let got = std::fs::read(&path).unwrap();
        assert!(
            got == want,
            "roots {roots}, signed {signed}: image differs from the tools'"
        );
        assert_eq!(want_root, hex(&r.root_digest).as_str());
        assert_eq!(parse_with_python(&o, &path)["root_digest"], want_root);
        assert_ne!(r.old_root_digest, r.root_digest);
        assert_eq!(r.signed, signed);
        assert_eq!(r.fec.is_some(), roots > 0);
        assert_eq!(r.partition_name, "product");
    }
}

#[test]
fn a_grown_filesystem_is_refused_and_nothing_is_written() {
    let Some(o) = oracles() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = noise(12, 300 * 4096);
    let img = footer_image(&o, dir.path(), &data, "sha256", 2, false);
    let found = read_hashtree_footer(&img, img.len() as u64)
        .unwrap()
        .unwrap();
    let path = dir.path().join("grown.img");
    std::fs::write(&path, &img).unwrap();
    let e = refresh_hashtree(&open_rw(&path), 301 * 4096, &found).unwrap_err();
    assert!(
        e.to_string().contains("filesystem is now 1232896 bytes"),
        "{e}"
    );
    assert!(std::fs::read(&path).unwrap() == img, "nothing written");
}

#[test]
fn malformed_footers_and_descriptors_name_the_field() {
    let Some(o) = oracles() else { return };
    let dir = tempfile::tempdir().unwrap();
    let img = footer_image(&o, dir.path(), &noise(13, 300 * 4096), "sha256", 2, false);
    let len = img.len();
    let found = read_hashtree_footer(&img, len as u64).unwrap().unwrap();
    let desc = found.footer.vbmeta_offset as usize + 256; // unsigned: no auth block
    let cases: [(usize, &[u8], &str); 6] = [
        (len - 64 + 4, &[0, 0, 0, 2], "AVB footer: version_major"),
        (
            len - 64 + 28,
            &[0, 0, 0, 0, 0, 0x10, 0, 0],
            "AVB footer: vbmeta_size",
        ),
        (desc + 16, &[0, 0, 0, 2], "dm_verity_version"),
        (desc + 36 + 7, &[1], "tree_size"),
        (desc + 52 + 3, &[30], "fec_num_roots"),
        (desc + 72, b"md5\0\0\0", "hash algorithm \"md5\""),
    ];
    for (at, bytes, want) in cases {
        let mut bad = img.clone();
        bad[at..at + bytes.len()].copy_from_slice(bytes);
        let e = read_hashtree_footer(&bad, len as u64)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{want}: {e}");
    }
    // No footer at all is not an error.
    assert!(
        read_hashtree_footer(&noise(1, 8192), 8192)
            .unwrap()
            .is_none()
    );
}

/// A fastboot-style zip holding `images/product.img` (stored).
fn fastboot_zip(o: &Oracles, image: &Path, zip: &Path) {
    let script = "import sys, zipfile\n\
                  with zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_STORED) as z:\n    \
                  z.write(sys.argv[1], 'images/product.img')\n";
    run_ok(
        Command::new(&o.python)
            .args(["-c", script])
            .arg(image)
            .arg(zip),
    );
}

#[test]
fn verify_checks_the_hash_tree_of_a_packaged_image() {
    let Some(o) = oracles() else { return };
    let dir = tempfile::tempdir().unwrap();
    let imgs = dir.path().join("imgs");
    common::romkit()
        .arg("unpack")
        .arg(common::sample())
        .args(["--partitions", "product", "-o"])
        .arg(&imgs)
        .assert()
        .success();
    let data = std::fs::read(imgs.join("product.img")).unwrap();
    let img = footer_image(&o, dir.path(), &data, "sha256", 2, false);
    let path = dir.path().join("product.img");
    let zip = dir.path().join("fastboot.zip");
    std::fs::write(&path, &img).unwrap();
    fastboot_zip(&o, &path, &zip);
    let ok = common::romkit().arg("verify").arg(&zip).assert().success();
    let text = String::from_utf8_lossy(&ok.get_output().stdout).to_string();
    assert!(
        text.contains("AVB hashtree of") && text.contains("and FEC"),
        "{text}"
    );

    let mut bad = img.clone();
    bad[4096 * 3] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    fastboot_zip(&o, &path, &zip);
    let out = common::romkit().arg("verify").arg(&zip).assert().code(1);
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(text.contains("hash tree"), "{text}");
}
