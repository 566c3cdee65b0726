//! Manifests and diffs: `inspect --manifest` on the sample is deterministic
//! and complete, the JSON round-trips byte for byte, the YAML parses, and
//! `diff` of fixture release 1 against release 2 lists exactly the changes
//! the generator makes, in every format.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{json_ok, romkit, sample};
use romkit::manifest::Manifest;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `inspect --manifest` of the sample (made once per test run).
fn sample_manifest() -> &'static Vec<u8> {
    static M: OnceLock<Vec<u8>> = OnceLock::new();
    M.get_or_init(|| {
        romkit()
            .args(["inspect", "--manifest"])
            .arg(sample())
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    })
}

/// A scratch folder under the target directory, emptied.
fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("manifest-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Fixture release 2 and the manifests of both releases, as files.
struct Releases {
    r2: PathBuf,
    m1: PathBuf,
    m2: PathBuf,
}

fn releases() -> &'static Releases {
    static R: OnceLock<Releases> = OnceLock::new();
    R.get_or_init(|| {
        let dir = scratch("releases");
        let out = romkit()
            .args(["fixture", "--release", "2", "-o"])
            .arg(&dir)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let r2 = PathBuf::from(String::from_utf8(out).unwrap().trim());
        assert!(
            r2.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("miui_FUXI_OS1.0.25.0.UMCCNXM_"),
            "{}",
            r2.display()
        );
        let m1 = dir.join("r1.manifest.json");
        std::fs::write(&m1, sample_manifest()).unwrap();
        let m2 = dir.join("r2.manifest.json");
        let out = romkit()
            .args(["inspect", "--manifest"])
            .arg(&r2)
            .assert()
            .success();
        std::fs::write(&m2, &out.get_output().stdout).unwrap();
        Releases { r2, m1, m2 }
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn describe_is_deterministic() {
    let again = romkit()
        .args(["inspect", "--manifest"])
        .arg(sample())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(again == *sample_manifest(), "two runs give the same bytes");
    // -j 1 gives the same bytes as all cores.
    let one = romkit()
        .args(["-j", "1", "inspect", "--manifest"])
        .arg(sample())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(one == *sample_manifest(), "-j 1 gives the same bytes");
    let m: Value = serde_json::from_slice(sample_manifest()).unwrap();
    assert!(
        m.get("created").is_none(),
        "no SOURCE_DATE_EPOCH, no created"
    );
    let with_date = romkit()
        .env("SOURCE_DATE_EPOCH", "1705300800")
        .args(["inspect", "--manifest"])
        .arg(sample())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&with_date).unwrap();
    assert_eq!(v["created"], 1_705_300_800);
}

#[test]
fn describe_records_identity_partitions_and_props() {
    let m: Value = serde_json::from_slice(sample_manifest()).unwrap();
    assert_eq!(m["schema"], "romkit.manifest/1");
    assert_eq!(m["tool"]["name"], "romkit");
    let sample = sample();
    let bytes = std::fs::read(&sample).unwrap();
    let input = &m["input"];
    assert_eq!(
        input["file"],
        sample.file_name().unwrap().to_str().unwrap(),
        "the file name, not the path"
    );
    assert_eq!(input["size"], bytes.len());
    assert_eq!(input["sha256"], hex(&Sha256::digest(&bytes)));
    assert_eq!(input["kind"], "recovery-ota");
    assert_eq!(input["device"], "fuxi");
    assert_eq!(input["region"], "CN");
    assert_eq!(input["version"]["code"], "OS1.0.24.0.UMCCNXM");
    assert_eq!(input["version"]["release"], "1.0.24.0");
    assert_eq!(input["version"]["android"], "14");
    assert_eq!(
        input["fingerprint"],
        "Xiaomi/fuxi/fuxi:14/UKQ1.230804.001/OS1.0.24.0.UMCCNXM:user/release-keys"
    );
    // Every partition, in package order, with the hash of its image.
    let dir = scratch("images");
    romkit()
        .args(["unpack", "-o"])
        .arg(&dir)
        .arg(&sample)
        .assert()
        .success();
    let parts = m["partitions"].as_array().unwrap();
    let names: Vec<&str> = parts.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "boot",
            "vendor_boot",
            "dtbo",
            "vbmeta",
            "system",
            "system_ext",
            "product",
            "vendor",
            "odm",
            "mi_ext"
        ]
    );
    for p in parts {
        let name = p["name"].as_str().unwrap();
        let img = std::fs::read(dir.join(format!("{name}.img"))).unwrap();
        assert_eq!(p["sha256"], hex(&Sha256::digest(&img)), "{name}");
        assert_eq!(p["size"], img.len(), "{name}");
        assert_eq!(p["status"], "source");
        let fs = p.get("filesystem").and_then(Value::as_str);
        let dynamic = !["boot", "vendor_boot", "dtbo", "vbmeta"].contains(&name);
        assert_eq!(fs, dynamic.then_some("erofs"), "{name}");
    }
    // Every property of every build.prop.
    let props = &m["props"];
    assert_eq!(
        props
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["mi_ext", "odm", "product", "system", "system_ext", "vendor"]
    );
    assert_eq!(props["product"]["ro.miui.region"], "CN");
    assert_eq!(props["product"]["ro.miui.ui.version.code"], "816");
    assert_eq!(
        props["system"]["ro.build.version.incremental"],
        "OS1.0.24.0.UMCCNXM"
    );
    assert_eq!(props["vendor"]["ro.product.vendor.model"], "23127PN0CC");
    assert_eq!(props["system"].as_object().unwrap().len(), 13);
}

#[test]
fn describe_lists_every_app_and_every_file() {
    let m: Value = serde_json::from_slice(sample_manifest()).unwrap();
    // Every app `romkit apps` lists, with the same identity and hash.
    let apps = json_ok(&["apps", "--json"], &sample());
    let listed = apps["apps"].as_array().unwrap();
    let recorded = m["apps"].as_array().unwrap();
    assert_eq!(listed.len(), recorded.len());
    assert_eq!(listed.len(), romkit::fixture::trees::APPS.len());
    for (a, r) in listed.iter().zip(recorded) {
        for k in [
            "partition",
            "path",
            "package",
            "version_code",
            "version_name",
            "privileged",
            "size",
            "sha256",
            "signer",
        ] {
            assert_eq!(a[k], r[k], "{k} of {}", a["path"]);
        }
        assert_eq!(r["status"], "kept");
        assert!(r.get("rule").is_none());
    }
    // Every entry of every filesystem, with the hash of every file's bytes,
    // read here through the tree model rather than the manifest code.
    let dir = scratch("trees");
    romkit()
        .args(["unpack", "-o"])
        .arg(&dir)
        .arg(sample())
        .args([
            "--partitions",
            "system,system_ext,product,vendor,odm,mi_ext",
        ])
        .assert()
        .success();
    let files = m["files"].as_array().unwrap();
    let mut by_part: BTreeMap<&str, BTreeMap<&str, &Value>> = BTreeMap::new();
    for f in files {
        by_part
            .entry(f["partition"].as_str().unwrap())
            .or_default()
            .insert(f["path"].as_str().unwrap(), f);
    }
    assert_eq!(by_part.len(), 6);
    let mut total = 0;
    for (part, recs) in &by_part {
        let tree = romkit::fs::read_tree(&dir.join(format!("{part}.img"))).unwrap();
        let prefix = romkit::apps::mount_prefix(part, &tree);
        let walk = tree.walk();
        assert_eq!(walk.len(), recs.len(), "{part}: one record per entry");
        let mut buf = Vec::new();
        for (path, id) in walk {
            let dev = if path.is_empty() {
                match prefix.trim_end_matches('/') {
                    "" => "/".to_string(),
                    p => p.to_string(),
                }
            } else {
                format!("{prefix}{path}")
            };
            let r = recs
                .get(dev.as_str())
                .unwrap_or_else(|| panic!("{part}: {dev} missing"));
            let ino = tree.inode(id);
            assert_eq!(r["kind"], ino.kind.name(), "{dev}");
            assert_eq!(
                r["mode"],
                format!("{:06o}", ino.kind.type_bits() | ino.meta.perm),
                "{dev}"
            );
            assert_eq!(r["uid"], ino.meta.uid, "{dev}");
            assert_eq!(r["gid"], ino.meta.gid, "{dev}");
            assert_eq!(
                r.get("label").and_then(Value::as_str),
                ino.meta.selinux_label().as_deref(),
                "{dev}"
            );
            if let romkit::fs::tree::Kind::File(data) = &ino.kind {
                data.read(&mut buf).unwrap();
                assert_eq!(r["sha256"], hex(&Sha256::digest(&buf)), "{dev}");
                assert_eq!(r["size"], buf.len(), "{dev}");
            }
            total += 1;
        }
    }
    assert_eq!(total, files.len());
    // The capabilities the fixture gives its daemons.
    let caps = |p: &str| by_part.values().find_map(|m| m.get(p)).unwrap()["capabilities"].clone();
    assert_eq!(caps("system/bin/netd"), 1u64 << 13);
    assert_eq!(
        caps("vendor/bin/hw/vendor.qti.hardware.perf@2.0-service"),
        (1u64 << 23) | (1 << 36)
    );
    // Every app's base APK is among the files with the same hash.
    for a in m["apps"].as_array().unwrap() {
        let path = a["path"].as_str().unwrap();
        let apk = files
            .iter()
            .filter(|f| f["kind"] == "file")
            .find(|f| {
                let p = f["path"].as_str().unwrap();
                p == path || (p.starts_with(&format!("{path}/")) && f["sha256"] == a["sha256"])
            })
            .unwrap_or_else(|| panic!("{path}: no file"));
        assert_eq!(apk["sha256"], a["sha256"], "{path}");
    }
}

#[test]
fn json_round_trips_and_yaml_parses() {
    let bytes = sample_manifest();
    assert!(bytes.ends_with(b"}\n"));
    let m = Manifest::from_json(bytes).unwrap();
    assert!(
        m.to_json() == *bytes,
        "from_json(to_json) gives the same bytes"
    );
    // Keys are sorted at every level.
    fn sorted(v: &Value) -> bool {
        match v {
            Value::Object(o) => {
                let keys: Vec<&String> = o.keys().collect();
                let mut s = keys.clone();
                s.sort();
                keys == s && o.values().all(sorted)
            }
            Value::Array(a) => a.iter().all(sorted),
            _ => true,
        }
    }
    let text = String::from_utf8(bytes.clone()).unwrap();
    let first_keys: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  \"") && !l.starts_with("   "))
        .map(|l| l.trim().split('"').nth(1).unwrap())
        .collect();
    assert_eq!(
        first_keys,
        [
            "apps",
            "files",
            "input",
            "outputs",
            "partitions",
            "props",
            "schema",
            "tool"
        ]
    );
    assert!(sorted(&serde_json::from_slice(bytes).unwrap()));
    // YAML: parses back to the same manifest.
    let yaml = romkit()
        .args(["inspect", "--manifest-yaml"])
        .arg(sample())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let yaml = String::from_utf8(yaml).unwrap();
    assert!(yaml.contains("schema: romkit.manifest/1"));
    let back: Manifest = serde_saphyr::from_str(&yaml).expect("YAML parses");
    assert_eq!(back, m);
}

#[test]
fn describe_of_an_image_and_a_folder_agree_with_the_package() {
    let m = Manifest::from_json(sample_manifest()).unwrap();
    let dir = scratch("folder");
    romkit()
        .args(["unpack", "--files", "-p", "product,vendor", "-o"])
        .arg(&dir)
        .arg(sample())
        .assert()
        .success();
    let of = |m: &Manifest, part: &str| {
        (
            m.files
                .iter()
                .filter(|f| f.partition == part)
                .cloned()
                .collect::<Vec<_>>(),
            m.apps
                .iter()
                .filter(|a| a.partition == part)
                .cloned()
                .collect::<Vec<_>>(),
            m.props.get(part).cloned(),
        )
    };
    // A bare image: its name is the partition.
    let out = romkit()
        .args(["inspect", "--manifest"])
        .arg(dir.join("product.img"))
        .assert()
        .success();
    let img = Manifest::from_json(&out.get_output().stdout).unwrap();
    assert_eq!(img.input.kind, "erofs-image");
    assert_eq!(
        img.input.version.as_ref().unwrap().code,
        "OS1.0.24.0.UMCCNXM"
    );
    assert_eq!(img.partitions.len(), 1);
    assert_eq!(
        img.partitions[0],
        m.partitions
            .iter()
            .find(|p| p.name == "product")
            .unwrap()
            .clone()
    );
    assert_eq!(of(&img, "product"), of(&m, "product"));
    // The `unpack --files` folder: same files (mtimes aside, which the
    // manifest does not record), apps and props.
    std::fs::remove_file(dir.join("product.img")).unwrap();
    std::fs::remove_file(dir.join("vendor.img")).unwrap();
    let out = romkit()
        .args(["inspect", "--manifest"])
        .arg(&dir)
        .assert()
        .success();
    let folder = Manifest::from_json(&out.get_output().stdout).unwrap();
    assert_eq!(folder.input.kind, "folder");
    for part in ["product", "vendor"] {
        assert_eq!(of(&folder, part), of(&m, part), "{part}");
    }
}

/// The exact differences between fixture releases 1 and 2.
fn check_release_diff(d: &Value) {
    assert_eq!(d["identical"], false);
    assert_eq!(d["a"]["version"], "OS1.0.24.0.UMCCNXM");
    assert_eq!(d["b"]["version"], "OS1.0.25.0.UMCCNXM");
    let list = |v: &Value, f: &dyn Fn(&Value) -> String| -> Vec<String> {
        v.as_array().unwrap().iter().map(f).collect()
    };
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let apps = &d["apps"];
    assert_eq!(
        list(&apps["added"], &|a| format!(
            "{} {} {}",
            s(&a["package"]),
            s(&a["path"]),
            a["version_code"]
        )),
        [
            "com.miui.fm product/data-app/MiRadio 4030800",
            "com.xiaomi.youpin product/data-app/MIUIYoupin 1023100",
        ]
    );
    assert_eq!(
        list(&apps["removed"], &|a| format!(
            "{} {}",
            s(&a["package"]),
            s(&a["path"])
        )),
        [
            "com.miui.cleanmaster product/data-app/MIUICleanMaster",
            "com.miui.virtualsim product/data-app/MIUIVirtualSim",
        ]
    );
    assert_eq!(
        list(&apps["updated"], &|a| format!(
            "{} {} {} {} -> {} {}",
            s(&a["package"]),
            s(&a["direction"]),
            s(&a["from_name"]),
            a["from_code"],
            s(&a["to_name"]),
            a["to_code"]
        )),
        [
            "com.miui.gallery up 11.1.27 11012700 -> 11.2.27 11022700",
            "com.miui.home up 2.0.39 2003900 -> 2.1.39 2013900",
            "com.miui.player down 2.4.15 2041500 -> 2.3.15 2031500",
            "com.miui.weather2 up 14.7.17 14071700 -> 14.8.17 14081700",
        ]
    );
    let platform = hex(&Sha256::digest(
        romkit::fixture::apk::Key::Platform.certificate(),
    ));
    let release = hex(&Sha256::digest(
        romkit::fixture::apk::Key::Release.certificate(),
    ));
    assert_eq!(
        list(&apps["signer_changed"], &|a| format!(
            "{} {} {}",
            s(&a["package"]),
            s(&a["from"]),
            s(&a["to"])
        )),
        [format!("com.miui.bugreport {platform} {release}")]
    );
    assert_eq!(apps["moved"], serde_json::json!([]));
    assert_eq!(apps["content_changed"], serde_json::json!([]));
    // Every dynamic partition changed (each has a build.prop with the
    // version); the raw images did not.
    assert_eq!(
        list(&d["partitions"], &|p| s(&p["name"])),
        ["system", "system_ext", "product", "vendor", "odm", "mi_ext"]
    );
    for p in d["partitions"].as_array().unwrap() {
        assert_ne!(p["sha256_a"], p["sha256_b"]);
        let delta = p["size_b"].as_i64().unwrap() - p["size_a"].as_i64().unwrap();
        assert_eq!(p["delta"], delta);
        let change = match delta {
            0 => "changed",
            d if d > 0 => "grown",
            _ => "shrunk",
        };
        assert_eq!(p["change"], change);
    }
    assert_eq!(
        list(&d["files"], &|f| format!(
            "{} {} {}",
            s(&f["change"]),
            s(&f["path"]),
            list(&f["aspects"], &s).join(",")
        )),
        [
            "changed mi_ext/etc/build.prop content",
            "changed odm/etc/build.prop content",
            "changed product/app/MiBugReport/MiBugReport.apk content",
            "changed product/app/Music/Music.apk content",
            "removed product/data-app/MIUICleanMaster ",
            "removed product/data-app/MIUICleanMaster/MIUICleanMaster.apk ",
            "changed product/data-app/MIUIGallery/MIUIGallery.apk content",
            "removed product/data-app/MIUIVirtualSim ",
            "removed product/data-app/MIUIVirtualSim/MIUIVirtualSim.apk ",
            "changed product/data-app/MIUIWeather/MIUIWeather.apk content",
            "changed product/data-app/MIUIWeather/split_config.arm64_v8a.apk content",
            "added product/data-app/MIUIYoupin ",
            "added product/data-app/MIUIYoupin/MIUIYoupin.apk ",
            "added product/data-app/MiRadio ",
            "added product/data-app/MiRadio/MiRadio.apk ",
            "changed product/etc/build.prop content",
            "changed product/priv-app/MiuiHome/MiuiHome.apk content",
            "changed system/build.prop content",
            "changed system_ext/etc/build.prop content",
            "changed vendor/bin/thermal-engine mode",
            "changed vendor/build.prop content",
        ]
    );
    let thermal = d["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "vendor/bin/thermal-engine")
        .unwrap();
    assert_eq!(thermal["a"]["mode"], "100755");
    assert_eq!(thermal["b"]["mode"], "100750");
    // Props: the version, date and fingerprint of every partition, and the
    // release's own edits.
    let mut want: BTreeSet<String> = BTreeSet::new();
    for part in ["mi_ext", "odm", "product", "system", "system_ext", "vendor"] {
        let p = if part == "system" {
            String::new()
        } else {
            format!("{part}.")
        };
        want.insert(format!(
            "{part} ro.{p}build.date.utc changed 1705300800 1707720000"
        ));
        want.insert(format!(
            "{part} ro.{p}build.version.incremental changed OS1.0.24.0.UMCCNXM OS1.0.25.0.UMCCNXM"
        ));
        want.insert(format!(
            "{part} ro.{p}build.fingerprint changed \
             Xiaomi/fuxi/fuxi:14/UKQ1.230804.001/OS1.0.24.0.UMCCNXM:user/release-keys \
             Xiaomi/fuxi/fuxi:14/UKQ1.230804.001/OS1.0.25.0.UMCCNXM:user/release-keys"
        ));
    }
    want.insert("product ro.miui.ui.version.code changed 816 818".into());
    want.insert("product ro.miui.has_security_keyboard added  1".into());
    want.insert("odm ro.product.odm.model removed 23127PN0CC ".into());
    let got: Vec<String> = list(&d["props"], &|p| {
        format!(
            "{} {} {} {} {}",
            s(&p["partition"]),
            s(&p["key"]),
            s(&p["change"]),
            s(&p["a"]),
            s(&p["b"])
        )
    });
    assert_eq!(got.len(), want.len());
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want);
    let mut sorted = got.clone();
    sorted.sort_by(|x, y| {
        let k = |s: &String| s.split(' ').take(2).map(str::to_string).collect::<Vec<_>>();
        k(x).cmp(&k(y))
    });
    assert_eq!(got, sorted, "props by partition then key");
    assert_eq!(
        d["summary"],
        serde_json::json!({
            "apps": 9, "partitions": 6, "files_added": 4, "files_removed": 4,
            "files_changed": 13, "props": 21
        })
    );
}

fn diff_out(args: &[&str], a: &Path, b: &Path, code: i32) -> String {
    let out = romkit()
        .arg("diff")
        .arg(a)
        .arg(b)
        .args(args)
        .assert()
        .code(code)
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn diff_of_two_releases_json() {
    let r = releases();
    let json = diff_out(&["--format", "json"], &r.m1, &r.m2, 1);
    let d: Value = serde_json::from_str(&json).unwrap();
    check_release_diff(&d);
    // --json is the same; packages give the same diff as their manifests.
    assert_eq!(diff_out(&["--json"], &r.m1, &r.m2, 1), json);
    assert_eq!(diff_out(&["--format", "json"], &sample(), &r.r2, 1), json);
    // The reverse diff swaps every change.
    let rev: Value =
        serde_json::from_str(&diff_out(&["--format", "json"], &r.m2, &r.m1, 1)).unwrap();
    assert_eq!(rev["apps"]["added"], d["apps"]["removed"]);
    assert_eq!(rev["apps"]["updated"].as_array().unwrap().len(), 4);
    assert_eq!(rev["summary"]["files_added"], 4);
    assert_eq!(rev["summary"]["props"], 21);
}

#[test]
fn diff_of_two_releases_text_and_markdown() {
    let r = releases();
    let text = diff_out(&[], &r.m1, &r.m2, 1);
    assert_eq!(diff_out(&["--format", "text"], &r.m1, &r.m2, 1), text);
    for line in [
        "A: miui_FUXI_OS1.0.24.0.UMCCNXM_daf2425dda_14.0.zip (OS1.0.24.0.UMCCNXM)",
        "Apps: 2 added, 2 removed, 4 updated, 1 re-signed, 0 moved, 0 changed",
        "  + com.miui.fm  4.3.8 (4030800)  product/data-app/MiRadio",
        "  + com.xiaomi.youpin  1.2.31 (1023100)  product/data-app/MIUIYoupin",
        "  - com.miui.cleanmaster  8.0.17 (8001700)  product/data-app/MIUICleanMaster",
        "  - com.miui.virtualsim  13.6.35 (13063500)  product/data-app/MIUIVirtualSim",
        "  ^ com.miui.gallery  11.1.27 (11012700) -> 11.2.27 (11022700) (up)",
        "  ^ com.miui.home  2.0.39 (2003900) -> 2.1.39 (2013900) (up)",
        "  v com.miui.player  2.4.15 (2041500) -> 2.3.15 (2031500) (down)",
        "  ^ com.miui.weather2  14.7.17 (14071700) -> 14.8.17 (14081700) (up)",
        "  ! com.miui.bugreport  signer 14314a1ae17d52d7 -> d27f9280870acdce",
        "Partitions: 6 changed",
        "Files: 4 added, 4 removed, 13 changed",
        "  ~ vendor/bin/thermal-engine  mode 0755 -> 0750",
        "  - product/data-app/MIUICleanMaster/MIUICleanMaster.apk  file, 7.1 KiB",
        "Props: 21 changed",
        "  ~ product: ro.miui.ui.version.code: 816 -> 818",
        "  + product: ro.miui.has_security_keyboard=1",
        "  - odm: ro.product.odm.model=23127PN0CC",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "text lacks {line:?}:\n{text}"
        );
    }
    // One line per change under the headings.
    let changes = text
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .count();
    assert_eq!(changes, 9 + 6 + 21 + 21);

    let md = diff_out(&["--format", "markdown"], &r.m1, &r.m2, 1);
    assert!(md.starts_with("## Changes from OS1.0.24.0.UMCCNXM to OS1.0.25.0.UMCCNXM\n"));
    for line in [
        "### Apps",
        "| Change | Package | Path | Version |",
        "| added | `com.miui.fm` | `product/data-app/MiRadio` | 4.3.8 (4030800) |",
        "| removed | `com.miui.cleanmaster` | `product/data-app/MIUICleanMaster` | 8.0.17 (8001700) |",
        "| updated | `com.miui.gallery` | `product/data-app/MIUIGallery` | 11.1.27 (11012700) → 11.2.27 (11022700) |",
        "| downgraded | `com.miui.player` | `product/app/Music` | 2.4.15 (2041500) → 2.3.15 (2031500) |",
        "| signer changed | `com.miui.bugreport` | `product/app/MiBugReport` | `14314a1ae17d52d7` → `d27f9280870acdce` |",
        "### Partitions",
        "### Properties",
        "| product | `ro.miui.ui.version.code` | `816` | `818` |",
        "| product | `ro.miui.has_security_keyboard` | — | `1` |",
        "| odm | `ro.product.odm.model` | `23127PN0CC` | — |",
        "### Files",
        "<summary>4 added, 4 removed, 13 changed</summary>",
        "| changed | `vendor/bin/thermal-engine` | mode 0755 -&gt; 0750 |",
        "| added | `product/data-app/MiRadio` | dir |",
    ] {
        assert!(
            md.lines().any(|l| l == line),
            "markdown lacks {line:?}:\n{md}"
        );
    }
    // Every table row has as many cells as its header.
    let mut cols = 0;
    for l in md.lines() {
        if l.starts_with('|') {
            let n = l.replace("\\|", "").matches('|').count();
            if l.starts_with("| Change") || l.starts_with("| Partition") {
                cols = n;
            }
            assert_eq!(n, cols, "{l}");
        }
    }
    let rows = md
        .lines()
        .filter(|l| {
            l.starts_with("| ") && !l.starts_with("| Change") && !l.starts_with("| Partition")
        })
        .count();
    assert_eq!(rows, 9 + 6 + 21 + 21);
    // --exit-zero reports the same and exits 0.
    assert_eq!(
        diff_out(&["--format", "markdown", "--exit-zero"], &r.m1, &r.m2, 0),
        md
    );
}

#[test]
fn diff_of_a_manifest_with_itself_is_empty() {
    let dir = scratch("self");
    let m = dir.join("m.json");
    std::fs::write(&m, sample_manifest()).unwrap();
    let text = diff_out(&[], &m, &m, 0);
    assert!(text.ends_with("\nNo differences.\n"), "{text}");
    let d: Value = serde_json::from_str(&diff_out(&["--format", "json"], &m, &m, 0)).unwrap();
    assert_eq!(d["identical"], true);
    assert_eq!(d["files"], serde_json::json!([]));
    let md = diff_out(&["--format", "markdown"], &m, &m, 0);
    assert!(md.ends_with("No differences.\n"));
    // A manifest against the package it describes: identical too.
    assert!(diff_out(&[], &m, &sample(), 0).ends_with("No differences.\n"));
}

#[test]
fn diff_marks_removed_apps_of_a_build_as_gone() {
    // A build's manifest keeps removed apps with status "removed"; the diff
    // against the input lists them as removed, and a partition whose files
    // the build did not record (passthrough) is not a file change.
    let mut m = Manifest::from_json(sample_manifest()).unwrap();
    let before = m.clone();
    for a in m.apps.iter_mut() {
        if a.package.as_deref() == Some("com.miui.analytics") {
            a.status = romkit::manifest::AppStatus::Removed;
            a.rule = Some(romkit::manifest::RuleRef {
                index: 1,
                origin: "profiles/x.yaml:3:5".into(),
                reason: None,
                selector: "package com.miui.analytics".into(),
            });
        }
    }
    m.files.retain(|f| f.partition != "vendor");
    m.props.remove("vendor");
    for p in m.partitions.iter_mut() {
        p.status = romkit::manifest::PartitionStatus::Passthrough;
    }
    let d = romkit::manifest::diff::diff(&before, &m);
    assert!(!d.identical);
    assert_eq!(d.apps.removed.len(), 1);
    assert_eq!(d.apps.removed[0].package, "com.miui.analytics");
    assert!(d.files.is_empty() && d.props.is_empty() && d.partitions.is_empty());
}

#[test]
fn diff_refuses_bad_manifests() {
    let dir = scratch("bad");
    let good = dir.join("good.json");
    std::fs::write(&good, sample_manifest()).unwrap();
    let cases: [(&str, &[u8], &str); 5] = [
        (
            "truncated.json",
            &sample_manifest()[..1000],
            "malformed JSON",
        ),
        (
            "other.json",
            b"{\"schema\": \"something/2\"}",
            "schema is \"something/2\"",
        ),
        ("noschema.json", b"{\"apps\": []}", "no \"schema\""),
        ("array.json", b"[1, 2]", "not a romkit manifest"),
        (
            "fields.json",
            b"{\"schema\": \"romkit.manifest/1\", \"tool\": 5}",
            "malformed manifest",
        ),
    ];
    for (name, bytes, msg) in cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let out = romkit().arg("diff").arg(&good).arg(&p).assert().code(3);
        let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert!(err.contains(name) && err.contains(msg), "{name}: {err}");
    }
    // A huge document is refused before it is read (a sparse file).
    let huge = dir.join("huge.json");
    let f = std::fs::File::create(&huge).unwrap();
    std::io::Write::write_all(&mut &f, b"{").unwrap();
    f.set_len((512 << 20) + 1).unwrap();
    let out = romkit().arg("diff").arg(&huge).arg(&good).assert().code(3);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.contains("huge.json") && err.contains("larger than the 512 MiB"),
        "{err}"
    );
    // Neither a manifest nor a package.
    let junk = dir.join("junk.bin");
    std::fs::write(&junk, b"hello").unwrap();
    let out = romkit().arg("diff").arg(&good).arg(&junk).assert().code(3);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("junk.bin"));
    // A missing file is an I/O error.
    romkit()
        .arg("diff")
        .arg(&good)
        .arg(dir.join("missing.json"))
        .assert()
        .code(4);
    // Library: from_json refuses oversized input by length alone.
    assert!(Manifest::from_json(b"not json").is_err());
}

#[test]
fn completions_and_man_page() {
    for (shell, needle) in [
        ("bash", "_romkit()"),
        ("zsh", "#compdef romkit"),
        ("fish", "complete -c romkit"),
    ] {
        let out = romkit().args(["completions", shell]).assert().success();
        let s = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        assert!(s.contains(needle), "{shell}");
        assert!(s.contains("diff"), "{shell} knows diff");
    }
    romkit().args(["completions", "tcsh"]).assert().code(2);
    let out = romkit().arg("man").assert().success();
    let s = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(s.contains(".TH romkit 1"));
    assert!(s.contains("diff"));
    let dir = scratch("man");
    romkit().args(["man", "-o"]).arg(&dir).assert().success();
    for page in [
        "romkit.1",
        "romkit-diff.1",
        "romkit-inspect.1",
        "romkit-profile-check.1",
    ] {
        assert!(dir.join(page).is_file(), "{page}");
    }
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| n.ends_with(".1")), "{names:?}");
}

#[test]
fn weekly_workflow_is_valid_yaml_and_runs_build_and_diff() {
    let text = std::fs::read_to_string(common::root().join("examples/weekly-build.yml")).unwrap();
    let v: Value = serde_saphyr::from_str(&text).expect("the workflow is valid YAML");
    let job = &v["jobs"]["build"];
    assert!(
        job["strategy"]["matrix"]["include"]
            .as_array()
            .unwrap()
            .len()
            >= 2
    );
    let steps = job["steps"].as_array().unwrap();
    let uses: Vec<&str> = steps.iter().filter_map(|s| s["uses"].as_str()).collect();
    assert!(uses.iter().any(|u| u.starts_with("actions/cache@")));
    let runs: String = steps
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for needle in [
        "romkit build \"$PKG\" --profile \"$PROFILE\"",
        "--format fastboot",
        "gh release download",
        "--format markdown --exit-zero",
        "gh release create",
        "--notes-file diff.md",
    ] {
        assert!(runs.contains(needle), "{needle}");
    }
}

#[test]
fn builder_records_profile_removals_and_outputs() {
    // What the build pipeline records: the profile, apps kept or removed by
    // the plan's rules, the outputs' hashes.
    let profile = romkit::debloat::load("xiaomi-eu").unwrap();
    let loaded = romkit::apps::load(&sample(), None, 2).unwrap();
    let apps = romkit::apps::identify(loaded.locate(), 2);
    let plan = romkit::debloat::plan(
        &profile,
        &apps,
        &loaded.partitions,
        romkit::debloat::PlanOptions::default(),
    );
    assert!(!plan.removed.is_empty());
    let input = romkit::manifest::input_record(&sample(), None).unwrap();
    let mut m = Manifest::new(input);
    m.set_profile(&profile);
    m.add_apps(&apps, Some(&plan));
    let dir = scratch("builder");
    let out = dir.join("out.zip");
    std::fs::write(&out, b"output bytes").unwrap();
    m.add_output(&out).unwrap();
    m.add_output(&out).unwrap();
    assert_eq!(m.outputs.len(), 1, "recording an output twice replaces it");
    assert_eq!(m.outputs[0].path, "out.zip");
    assert_eq!(m.outputs[0].size, 12);
    assert_eq!(m.outputs[0].sha256, hex(&Sha256::digest(b"output bytes")));

    let p = m.profile.as_ref().unwrap();
    assert_eq!(p.name, "xiaomi-eu");
    assert_eq!(p.sha256, profile.sha256);
    assert_eq!(p.rules.len(), profile.remove.len() + profile.keep.len());
    assert_eq!(m.apps.len(), apps.len());
    let removed: Vec<&romkit::manifest::AppRecord> = m
        .apps
        .iter()
        .filter(|a| a.status == romkit::manifest::AppStatus::Removed)
        .collect();
    let planned: BTreeSet<&str> = plan
        .removed
        .iter()
        .filter(|r| apps.iter().any(|a| a.path == r.path))
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(
        removed
            .iter()
            .map(|a| a.path.as_str())
            .collect::<BTreeSet<_>>(),
        planned
    );
    for a in &removed {
        let rule = a.rule.as_ref().unwrap();
        let r = &profile.remove[rule.index - 1];
        assert_eq!(rule.origin, r.origin.to_string());
        assert_eq!(rule.selector, r.selector.to_string());
    }
    // The document round-trips with all of that, and a diff against the
    // package lists exactly the removed apps.
    let back = Manifest::from_json(&m.to_json()).unwrap();
    assert_eq!(back, m);
    let src = Manifest::from_json(sample_manifest()).unwrap();
    let d = romkit::manifest::diff::diff(&src, &m);
    assert_eq!(
        d.apps
            .removed
            .iter()
            .map(|a| a.path.as_str())
            .collect::<BTreeSet<_>>(),
        planned
    );
    assert!(d.apps.added.is_empty() && d.apps.updated.is_empty());
}
