//! `romkit apps`: identities checked against `aapt dump badging`, real APKs
//! written by others, malformed manifests and broken APKs.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use sha2::{Digest, Sha256};

/// (package, versionCode, versionName) from `aapt dump badging`.
fn aapt_badging(aapt: &Path, apk: &Path) -> Option<(String, String, String)> {
    let out = Command::new(aapt)
        .args(["dump", "badging"])
        .arg(apk)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("package:"))?;
    let field = |name: &str| {
        let key = format!("{name}='");
        line.split(&key)
            .nth(1)
            .and_then(|r| r.split('\'').next())
            .unwrap_or("")
            .to_string()
    };
    Some((field("name"), field("versionCode"), field("versionName")))
}

fn apps_json(target: &Path) -> serde_json::Value {
    json_ok(&["apps", "--json"], target)
}

fn s(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(x) => x.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[test]
fn fixture_apps_match_aapt_and_signers() {
    let Some(aapt) = need("aapt", tool("aapt")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    romkit()
        .args(["unpack", "--files", "-o"])
        .arg(dir.path())
        .arg(sample())
        .assert()
        .success();
    let report = apps_json(dir.path());
    let apps = report["apps"].as_array().unwrap();
    assert!(apps.len() >= 60, "{} apps", apps.len());
    assert_eq!(report["unreadable"], 0);
    let platform = common::hex(&Sha256::digest(
        std::fs::read(root().join("fixtures/keys/platform.x509.der")).unwrap(),
    ));
    let release = common::hex(&Sha256::digest(
        std::fs::read(root().join("fixtures/keys/release.x509.der")).unwrap(),
    ));
    let mut checked = 0;
    for a in apps {
        let apk_dev = s(&a["apk"]);
        // Device path -> extracted file: system-as-root keeps its prefix inside out/system/.
        let part = s(&a["partition"]);
        let inner = if part == "system" {
            apk_dev.clone()
        } else {
            apk_dev
                .strip_prefix(&format!("{part}/"))
                .unwrap()
                .to_string()
        };
        let file = dir.path().join(&part).join(inner);
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(s(&a["sha256"]), common::hex(&Sha256::digest(&bytes)));
        assert_eq!(a["apk_size"].as_u64().unwrap(), bytes.len() as u64);
        let (pkg, code, name) = aapt_badging(&aapt, &file).expect("aapt reads every fixture APK");
        assert_eq!(s(&a["package"]), pkg, "{apk_dev}");
        assert_eq!(s(&a["version_code"]), code, "{apk_dev}");
        assert_eq!(s(&a["version_name"]), name, "{apk_dev}");
        let signer = s(&a["signer"]);
        let expect = if apk_dev.contains("/data-app/") {
            &release
        } else {
            &platform
        };
        assert_eq!(&signer, expect, "{apk_dev}");
        assert_eq!(a["schemes"], serde_json::json!(["v2"]));
        assert_eq!(
            a["privileged"].as_bool().unwrap(),
            apk_dev.contains("/priv-app/")
        );
        checked += 1;
    }
    assert_eq!(checked, apps.len());
    // Splits, oat files and overlays belong to their apps.
    let camera = apps
        .iter()
        .find(|a| a["package"] == "com.android.camera")
        .unwrap();
    assert_eq!(
        camera["splits"],
        serde_json::json!(["product/priv-app/MiuiCamera/split_config.arm64_v8a.apk"])
    );
    let files: Vec<String> = camera["files"].as_array().unwrap().iter().map(s).collect();
    assert!(files.contains(&"product/priv-app/MiuiCamera/oat/arm64/MiuiCamera.odex".to_string()));
    let overlay = apps
        .iter()
        .find(|a| a["package"] == "com.miui.systemui.overlay")
        .unwrap();
    assert_eq!(overlay["overlay_target"], "com.android.systemui");
    let settings = apps
        .iter()
        .find(|a| a["package"] == "com.android.settings")
        .unwrap();
    assert_eq!(settings["shared_user_id"], "android.uid.system");
    // HyperOS keeps Settings in system_ext, not system (real-builds inventories).
    assert_eq!(settings["path"], "system_ext/priv-app/Settings");
}

#[test]
fn package_image_and_folder_agree() {
    let pkg = apps_json(&sample());
    let dir = tempfile::tempdir().unwrap();
    romkit()
        .args(["unpack", "--files", "-o"])
        .arg(dir.path())
        .arg(sample())
        .assert()
        .success();
    let folder = apps_json(dir.path());
    let strip = |v: &serde_json::Value| {
        v["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    s(&a["path"]),
                    s(&a["package"]),
                    s(&a["sha256"]),
                    s(&a["size"]),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&pkg), strip(&folder));
    // One image: only its apps, sorted by path.
    let image = apps_json(&dir.path().join("product.img"));
    let product: Vec<_> = strip(&pkg)
        .into_iter()
        .filter(|a| a.0.starts_with("product/"))
        .collect();
    assert_eq!(strip(&image), product);
    // --partition filters a package.
    let out = romkit()
        .args(["apps", "--json", "--partition", "vendor"])
        .arg(sample())
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert!(
        v["apps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["partition"] == "vendor")
    );
    // The ten vendor/app folders of the HyperOS 1 China inventory and the
    // QTI framework overlay.
    assert_eq!(v["count"], 11);
    romkit()
        .args(["apps", "--partition", "nope"])
        .arg(sample())
        .assert()
        .code(2);
}

#[test]
fn table_and_csv() {
    let out = romkit().arg("apps").arg(sample()).assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("PARTITION"));
    // Aligned: the PACKAGE column starts at the same offset on every line.
    let col = lines[0].find("PACKAGE").unwrap();
    let weather = lines
        .iter()
        .find(|l| l.contains("com.miui.weather2"))
        .unwrap();
    assert_eq!(weather.find("com.miui.weather2"), Some(col));
    let out = romkit()
        .args(["apps", "--csv"])
        .arg(sample())
        .assert()
        .success();
    let csv = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert_eq!(header.len(), 17);
    assert_eq!(csv.lines().count(), lines.len());
    for l in csv.lines() {
        assert_eq!(l.split(',').count(), 17, "{l}");
    }
}

/// Real APKs written by others: Debian's framework-res, the androguard
/// signing examples, and any in `$ROMKIT_REAL_APKS` (a folder).
fn real_apks() -> Vec<PathBuf> {
    let mut v = Vec::new();
    let fw = PathBuf::from("/usr/share/android-framework-res/framework-res.apk");
    if fw.is_file() {
        v.push(fw);
    }
    let mut dirs = vec![PathBuf::from("/usr/share/doc/androguard/examples/signing")];
    if let Some(d) = std::env::var_os("ROMKIT_REAL_APKS") {
        dirs.push(PathBuf::from(d));
    }
    for d in dirs {
        for f in listing(&d) {
            if f.ends_with(".apk") {
                v.push(d.join(f));
            }
        }
    }
    v.sort();
    v
}

#[test]
fn real_apks_match_aapt() {
    let Some(aapt) = need("aapt", tool("aapt")) else {
        return;
    };
    let apks = real_apks();
    let have_fw = apks.iter().any(|p| p.ends_with("framework-res.apk"));
    let have_env = std::env::var_os("ROMKIT_REAL_APKS").is_some();
    if need(
        "real APKs (android-framework-res, $ROMKIT_REAL_APKS)",
        (have_fw && have_env).then_some(()),
    )
    .is_none()
    {
        return;
    }
    let mut compared = 0;
    for apk in &apks {
        let Some((pkg, code, name)) = aapt_badging(&aapt, apk) else {
            continue;
        };
        if pkg.is_empty() {
            continue;
        }
        let v = apps_json(apk);
        let a = &v["apps"][0];
        assert_eq!(s(&a["package"]), pkg, "{}", apk.display());
        assert_eq!(s(&a["version_code"]), code, "{}", apk.display());
        assert_eq!(s(&a["version_name"]), name, "{}", apk.display());
        compared += 1;
    }
    assert!(compared >= 3, "only {compared} real APKs compared");
}

/// The v1 signer certificate of an APK, through openssl.
fn openssl_v1_signer(apk: &Path) -> Option<String> {
    let f = std::fs::File::open(apk).ok()?;
    let mut z = zip::ZipArchive::new(f).ok()?;
    let name = (0..z.len())
        .filter_map(|i| {
            z.by_index(i)
                .ok()
                .map(|e| String::from_utf8_lossy(e.name_raw()).into_owned())
        })
        .find(|n| {
            n.starts_with("META-INF/")
                && (n.ends_with(".RSA") || n.ends_with(".DSA") || n.ends_with(".EC"))
        })?;
    let mut block = Vec::new();
    std::io::Read::read_to_end(&mut z.by_name(&name).ok()?, &mut block).ok()?;
    let dir = tempfile::tempdir().ok()?;
    std::fs::write(dir.path().join("b"), &block).ok()?;
    let certs = Command::new("openssl")
        .args(["pkcs7", "-inform", "DER", "-print_certs", "-in"])
        .arg(dir.path().join("b"))
        .output()
        .ok()?;
    std::fs::write(dir.path().join("c.pem"), &certs.stdout).ok()?;
    let der = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(dir.path().join("c.pem"))
        .output()
        .ok()?;
    (!der.stdout.is_empty()).then(|| common::hex(&Sha256::digest(&der.stdout)))
}

#[test]
fn v1_signers_match_openssl() {
    let apks: Vec<PathBuf> = real_apks()
        .into_iter()
        .filter(|p| {
            let n = p.to_string_lossy();
            // openssl re-encodes a BER certificate as DER; Android (and
            // romkit) digest the certificate as stored, so skip that one.
            n.contains("v1-only-with-rsa") && !n.contains("not-der")
        })
        .collect();
    if need(
        "androguard signing examples",
        (!apks.is_empty()).then_some(()),
    )
    .is_none()
    {
        return;
    }
    let mut n = 0;
    for apk in apks {
        let Some(expect) = openssl_v1_signer(&apk) else {
            continue;
        };
        let v = apps_json(&apk);
        assert_eq!(s(&v["apps"][0]["signer"]), expect, "{}", apk.display());
        n += 1;
    }
    assert!(n >= 1);
}

fn apk_with_manifest(manifest: &[u8]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let o = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    w.start_file("AndroidManifest.xml", o).unwrap();
    w.write_all(manifest).unwrap();
    w.finish().unwrap().into_inner()
}

#[test]
fn androguard_malformed_manifests_never_panic() {
    let src = PathBuf::from("/usr/share/doc/androguard/examples/axml");
    if need("androguard examples/axml", src.is_dir().then_some(())).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    for name in listing(&src) {
        let bytes = std::fs::read(src.join(&name)).unwrap();
        let apk = dir.path().join(name.replace(".xml", ".apk"));
        std::fs::write(apk, apk_with_manifest(&bytes)).unwrap();
        n += 1;
    }
    let v = apps_json(dir.path());
    let apps = v["apps"].as_array().unwrap();
    assert_eq!(apps.len(), n, "every APK is listed");
    for a in apps {
        assert!(
            a["package"].is_string() || a["error"].is_string(),
            "{a}: an identity or an error"
        );
    }
    // The well-formed ones among them are read.
    let ok = apps.iter().filter(|a| a["package"].is_string()).count();
    assert!(ok >= n / 2, "{ok} of {n} read");
}

#[test]
fn broken_apks_get_errors_not_panics() {
    // A real fixture APK, then damaged copies of it.
    let dir = tempfile::tempdir().unwrap();
    romkit()
        .args(["unpack", "--files", "--partitions", "product", "-o"])
        .arg(dir.path())
        .arg(sample())
        .assert()
        .success();
    let good = std::fs::read(
        dir.path()
            .join("product/data-app/MIUIWeather/MIUIWeather.apk"),
    )
    .unwrap();
    let bad = tempfile::tempdir().unwrap();
    let mut cases: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    cases.insert("good.apk".into(), good.clone());
    cases.insert("empty.apk".into(), Vec::new());
    cases.insert("garbage.apk".into(), noise(7, 5000));
    for cut in [10usize, 100, 1000, good.len() / 2, good.len() - 30] {
        cases.insert(format!("cut{cut}.apk"), good[..cut].to_vec());
    }
    for (i, at) in [40usize, 200, good.len() - 10].into_iter().enumerate() {
        let mut v = good.clone();
        for b in &mut v[at..at + 8] {
            *b ^= 0x5a;
        }
        cases.insert(format!("flip{i}.apk"), v);
    }
    // A zip without a manifest, and one whose manifest claims 3 GiB.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("classes.dex", zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(b"dex\n035\0").unwrap();
    cases.insert("nomanifest.apk".into(), w.finish().unwrap().into_inner());
    let mut huge = apk_with_manifest(&[0u8; 64]);
    patch_uncompressed_size(&mut huge, 3 << 30);
    cases.insert("hugemanifest.apk".into(), huge);
    // A manifest of garbage bytes.
    cases.insert("badxml.apk".into(), apk_with_manifest(&noise(3, 700)));
    for (name, bytes) in &cases {
        std::fs::write(bad.path().join(name), bytes).unwrap();
    }
    let v = apps_json(bad.path());
    let apps = v["apps"].as_array().unwrap();
    assert_eq!(apps.len(), cases.len());
    let by: BTreeMap<String, &serde_json::Value> = apps.iter().map(|a| (s(&a["apk"]), a)).collect();
    assert_eq!(by["good.apk"]["package"], "com.miui.weather2");
    for (name, a) in &by {
        if name == "good.apk" {
            continue;
        }
        assert!(a["error"].is_string(), "{name}: {a}");
    }
    assert!(s(&by["hugemanifest.apk"]["error"]).contains("refusing"));
    assert!(s(&by["nomanifest.apk"]["error"]).contains("AndroidManifest.xml"));
    assert_eq!(v["unreadable"].as_u64().unwrap() as usize, cases.len() - 1);
}

/// Sets the uncompressed size of the first entry in both headers.
fn patch_uncompressed_size(zip: &mut [u8], size: u32) {
    // Local header: uncompressed size at offset 22.
    zip[22..26].copy_from_slice(&size.to_le_bytes());
    let cd = zip
        .windows(4)
        .position(|w| w == [0x50, 0x4b, 0x01, 0x02])
        .unwrap();
    zip[cd + 24..cd + 28].copy_from_slice(&size.to_le_bytes());
}
