//! Cross-checks with third-party tools (GUIDE.md §7): the PyPI payload
//! extractor reads what romkit writes, and romkit reads what an independent
//! Python writer produces. Skipped with a printed reason when the tools are
//! missing, unless ROMKIT_ORACLES=require.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use predicates::prelude::*;

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn payload_dumper_extracts_what_romkit_writes() {
    let Some(dumper) = tool("payload-dumper") else {
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let (images, _, _) = romkit::fixture::write_images(src.path(), 6 << 20).unwrap();
    for (label, pkg) in [
        ("sample", sample()),
        ("2 MiB chunks", {
            // A package with update_engine's default 2 MiB operations.
            let d = src.path().join("big");
            let out = romkit()
                .args(["fixture", "--size", "64M", "--xz-level", "1", "-o"])
                .arg(&d)
                .assert()
                .success()
                .get_output()
                .stdout
                .clone();
            std::path::PathBuf::from(String::from_utf8(out).unwrap().trim())
        }),
    ] {
        let out = tempfile::tempdir().unwrap();
        run(Command::new(&dumper).arg("-o").arg(out.path()).arg(&pkg));
        if label == "sample" {
            for img in &images {
                let got = std::fs::read(out.path().join(format!("{}.img", img.name))).unwrap();
                assert!(
                    got == std::fs::read(&img.path).unwrap(),
                    "{label}: {} differs",
                    img.name
                );
            }
        } else {
            let mine = tempfile::tempdir().unwrap();
            romkit()
                .args(["unpack", "-o"])
                .arg(mine.path())
                .arg(&pkg)
                .assert()
                .success();
            let names = listing(mine.path());
            assert_eq!(names.len(), 10);
            assert_eq!(names, listing(out.path()));
            for n in names {
                let a = std::fs::read(mine.path().join(&n)).unwrap();
                let b = std::fs::read(out.path().join(&n)).unwrap();
                assert!(
                    a == b,
                    "{label}: {n} differs between romkit and payload-dumper"
                );
            }
        }
    }
}

/// Writes test images and returns `--part` arguments for write_payload.py.
/// (partition, image bytes, operation kinds for the Python writer)
type TestImages = Vec<(String, Vec<u8>, &'static str)>;

fn images(dir: &Path) -> TestImages {
    let v = vec![
        ("system".to_string(), mixed_image(1, 200), "xz,bz2,raw,zero"),
        ("vendor".to_string(), mixed_image(2, 64), "zero,xz"),
        ("boot".to_string(), noise(3, 16 * 4096), "raw,bz2"),
        ("odm".to_string(), vec![0u8; 48 * 4096], "zero"),
    ];
    for (n, b, _) in &v {
        std::fs::write(dir.join(format!("{n}.img")), b).unwrap();
    }
    v
}

fn python_payload(dir: &Path, extra: &[&str]) -> Option<(std::path::PathBuf, TestImages)> {
    let py = python_with(&["google.protobuf"])?;
    let imgs = images(dir);
    let mut cmd = Command::new(py);
    cmd.arg(root().join("tests/oracles/write_payload.py"))
        .arg(dir.join("payload.bin"));
    cmd.args(["--chunk", "65536", "--group", "main:0x4000000"]);
    for (n, _, ops) in &imgs {
        cmd.arg("--part").arg(format!(
            "{n}={}:{ops}",
            dir.join(format!("{n}.img")).display()
        ));
    }
    cmd.args(extra);
    run(&mut cmd);
    Some((dir.join("payload.bin"), imgs))
}

#[test]
fn romkit_extracts_what_an_independent_writer_writes() {
    for check in ["none", "crc64"] {
        let dir = tempfile::tempdir().unwrap();
        let zip = dir.path().join("ota.zip");
        let Some((payload, imgs)) = python_payload(
            dir.path(),
            &["--xz-check", check, "--zip", zip.to_str().unwrap()],
        ) else {
            return;
        };
        for pkg in [&payload, &zip] {
            let out = dir.path().join(format!(
                "out-{}",
                pkg.file_name().unwrap().to_string_lossy()
            ));
            romkit()
                .args(["unpack", "-o"])
                .arg(&out)
                .arg(pkg)
                .assert()
                .success();
            for (n, bytes, _) in &imgs {
                let got = std::fs::read(out.join(format!("{n}.img"))).unwrap();
                assert!(
                    &got == bytes,
                    "{n} from {} differs (xz check {check})",
                    pkg.display()
                );
            }
        }
        romkit()
            .arg("verify")
            .arg(&zip)
            .assert()
            .success()
            .stdout(predicate::str::contains("all checks passed"));
        romkit()
            .arg("inspect")
            .arg(&zip)
            .assert()
            .success()
            .stdout(predicate::str::contains("REPLACE_BZ×"))
            .stdout(predicate::str::contains("ZERO×"));
    }
}

#[test]
fn signatures_verify_with_the_right_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(openssl) = tool("openssl") else {
        return;
    };
    let gen_key = |name: &str, bits: &str| {
        run(Command::new(&openssl)
            .args(["genrsa", "-out"])
            .arg(d.join(name))
            .arg(bits));
    };
    gen_key("key.pem", "2048");
    gen_key("other.pem", "4096");
    run(Command::new(&openssl)
        .args(["rsa", "-pubout", "-in"])
        .arg(d.join("key.pem"))
        .arg("-out")
        .arg(d.join("pub.pem")));
    run(Command::new(&openssl)
        .args(["rsa", "-pubout", "-in"])
        .arg(d.join("other.pem"))
        .arg("-out")
        .arg(d.join("other.pub")));
    run(Command::new(&openssl)
        .args([
            "req",
            "-x509",
            "-new",
            "-subj",
            "/CN=romkit test",
            "-days",
            "1",
            "-key",
        ])
        .arg(d.join("key.pem"))
        .arg("-out")
        .arg(d.join("cert.pem")));
    run(Command::new(&openssl)
        .args(["rsa", "-pubin", "-RSAPublicKey_out", "-in"])
        .arg(d.join("pub.pem"))
        .arg("-out")
        .arg(d.join("pkcs1.pem")));
    let zip = d.join("signed.zip");
    let key = d.join("key.pem");
    let Some(_) = python_payload(
        d,
        &[
            "--sign",
            key.to_str().unwrap(),
            "--zip",
            zip.to_str().unwrap(),
        ],
    ) else {
        return;
    };
    romkit()
        .arg("inspect")
        .arg(&zip)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "metadata signed (1 signature), payload signed (1 signature)",
        ));
    for k in ["pub.pem", "cert.pem", "pkcs1.pem"] {
        let out = romkit()
            .args(["verify", "--json", "--key"])
            .arg(d.join(k))
            .arg(&zip)
            .assert()
            .success();
        let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
        for c in ["metadata signature", "payload signature"] {
            let check = v["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["check"] == c)
                .unwrap();
            assert_eq!(check["status"], "ok", "{k}: {c}: {check}");
        }
    }
    romkit()
        .args(["verify", "--key"])
        .arg(d.join("other.pub"))
        .arg(&zip)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "does not verify with the given key",
        ));
    // Without a key the signatures are reported, not judged.
    romkit()
        .arg("verify")
        .arg(&zip)
        .assert()
        .success()
        .stdout(predicate::str::contains("pass --key"));
    // An unsigned package fails when a key demands a signature.
    romkit()
        .args(["verify", "--key"])
        .arg(d.join("pub.pem"))
        .arg(sample())
        .assert()
        .code(1);
}
