//! Fixture layouts against the real HyperOS app inventories in
//! `../shared/real-builds/`, and the shipped profiles on each layout: the
//! real bloat present goes, every everyday app stays, and `--strict` passes
//! for the region each profile is for.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use common::*;

/// (layout, real inventory it follows)
const LAYOUTS: [(&str, &str); 3] = [
    (
        "hyperos1-china",
        "hyperos_apps_houji_V816.0.9.0.UNCCNXM.txt",
    ),
    (
        "hyperos2-china",
        "hyperos_apps_fuxi_OS2.0.200.9.VMCCNXM.txt",
    ),
    (
        "hyperos1-global",
        "hyperos_apps_sapphiren_V816.0.3.0.UNHMIXM.txt",
    ),
];

/// The package of `layout`, generated once per test run.
fn fixture(layout: &str) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static MADE: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let base = DIR.get_or_init(|| tempfile::tempdir().unwrap()).path();
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = made.get(layout) {
        return p.clone();
    }
    let out = base.join(layout);
    romkit()
        .args(["fixture", "--xz-level", "0", "--layout", layout, "-o"])
        .arg(&out)
        .assert()
        .success();
    let zip = listing(&out)
        .into_iter()
        .find(|f| f.ends_with(".zip"))
        .map(|f| out.join(f))
        .unwrap();
    made.insert(layout.to_string(), zip.clone());
    zip
}

/// path -> package of every app.
fn apps(rom: &Path) -> BTreeMap<String, String> {
    let v = json_ok(&["apps", "--json"], rom);
    v["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["path"].as_str().unwrap().to_string(),
                a["package"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn real_builds() -> Option<PathBuf> {
    let d = root().join("../shared/real-builds");
    need("../shared/real-builds", d.is_dir().then_some(d))
}

#[test]
fn layouts_reproduce_the_real_inventories() {
    let Some(real) = real_builds() else { return };
    // folder -> package rows backed by Xiaomi's own index or public scripts.
    let mut known: BTreeMap<String, String> = BTreeMap::new();
    for l in std::fs::read_to_string(real.join("folder_to_package.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
    {
        let c: Vec<&str> = l.split('\t').collect();
        if c.len() >= 3 && (c[2] == "official" || c[2] == "script") {
            known.insert(c[0].to_string(), c[1].to_string());
        }
    }
    for (layout, inventory) in LAYOUTS {
        // Every base APK's folder, but product/prebuilts (resources, no app root).
        let want: BTreeSet<String> = std::fs::read_to_string(real.join(inventory))
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with("product/prebuilts/"))
            .map(|l| l.rsplit_once('/').unwrap().0.to_string())
            .collect();
        let got = apps(&fixture(layout));
        let folders: BTreeSet<String> = got
            .keys()
            .filter(|p| !p.ends_with(".apk"))
            .cloned()
            .collect();
        assert_eq!(folders, want, "{layout} vs {inventory}");
        let mut checked = 0;
        for (path, package) in &got {
            let folder = path.rsplit('/').next().unwrap();
            if let Some(p) = known.get(folder) {
                assert_eq!(package, p, "{layout}: {path}");
                checked += 1;
            }
        }
        assert!(checked >= 25, "{layout}: only {checked} packages checked");
    }
}

#[test]
fn layouts_put_apps_where_real_builds_do() {
    let china = apps(&fixture("china"));
    let global = apps(&fixture("global"));
    for (path, package) in [
        ("product/app/MSA", "com.miui.systemAdSolution"),
        ("product/pangu/system/app/Joyose", "com.xiaomi.joyose"),
        ("system_ext/app/MiuiDaemon", "com.miui.daemon"),
        ("system_ext/app/MiuiAudioMonitor", "com.miui.audiomonitor"),
        ("product/priv-app/MIUIYellowPage", "com.miui.yellowpage"),
        ("product/data-app/MIUIWeather", "com.miui.weather2"),
        ("product/data-app/MIUIVideo", "com.miui.video"),
        (
            "product/app/split-XiaomiServiceFrameworkCN",
            "com.xiaomi.xmsf",
        ),
    ] {
        assert_eq!(china.get(path).map(String::as_str), Some(package), "{path}");
    }
    let china_pkgs: BTreeSet<&str> = china.values().map(String::as_str).collect();
    for global_only in [
        "com.miui.msa.global",
        "com.xiaomi.mipicks",
        "com.android.bookmarkprovider",
        "com.miui.videoplayer",
    ] {
        assert!(!china_pkgs.contains(global_only), "{global_only}");
    }
    for (path, package) in [
        ("product/app/MSA-Global", "com.miui.msa.global"),
        ("mi_ext/product/app/MIUIMiPicks", "com.xiaomi.mipicks"),
        ("mi_ext/product/app/GameCenterGlobal", "com.xiaomi.glgm"),
        (
            "mi_ext/product/data-app/MISTORE_OVERSEA",
            "com.mi.global.shop",
        ),
        ("mi_ext/product/app/Joyose", "com.xiaomi.joyose"),
        (
            "system/app/BookmarkProvider",
            "com.android.bookmarkprovider",
        ),
        (
            "product/pangu/system/priv-app/facebook-services",
            "com.facebook.services",
        ),
    ] {
        assert_eq!(
            global.get(path).map(String::as_str),
            Some(package),
            "{path}"
        );
    }
    // Region and release reach the build.props the plan reads.
    let v = json_ok(
        &["debloat", "--json", "--dry-run", "--profile", "minimal"],
        &fixture("global"),
    );
    assert_eq!(v["input"]["region"], "MI");
    assert_eq!(v["input"]["os"], "hyperos1");
    let v = json_ok(
        &["debloat", "--json", "--dry-run", "--profile", "minimal"],
        &fixture("china"),
    );
    assert_eq!(v["input"]["region"], "CN");
    assert_eq!(v["input"]["os"], "hyperos2");
}

#[test]
fn split_folders_get_the_master_apk_as_base() {
    let v = json_ok(&["apps", "--json"], &fixture("china"));
    let xmsf: Vec<&serde_json::Value> = v["apps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["package"] == "com.xiaomi.xmsf")
        .collect();
    assert_eq!(xmsf.len(), 1);
    let d = "product/app/split-XiaomiServiceFrameworkCN";
    assert_eq!(
        xmsf[0]["apk"],
        format!("{d}/split-XiaomiServiceFrameworkCN-master.apk")
    );
    assert_eq!(
        xmsf[0]["splits"],
        serde_json::json!([format!("{d}/split-XiaomiServiceFrameworkCN-arm64-v8a.apk")])
    );
    // The base carries no split name; the split does.
    assert!(xmsf[0]["split"].is_null());
}

#[test]
fn committed_sample_is_the_default_layout() {
    let dir = tempfile::tempdir().unwrap();
    romkit()
        .args(["fixture", "-o"])
        .arg(dir.path())
        .assert()
        .success();
    let name = sample().file_name().unwrap().to_owned();
    let made = dir.path().join(&name);
    assert!(made.is_file(), "romkit fixture no longer makes {name:?}");
    assert!(std::fs::read(made).unwrap() == std::fs::read(sample()).unwrap());
    romkit()
        .args(["fixture", "--layout", "nowhere", "-o"])
        .arg(dir.path())
        .assert()
        .code(2);
    romkit()
        .args(["fixture", "--layout", "global", "--release", "2", "-o"])
        .arg(dir.path())
        .assert()
        .code(2);
}

/// Apps people use every day, by package, on any region.
const EVERYDAY: &[&str] = &[
    "com.miui.gallery",
    "com.android.deskclock",
    "com.android.calendar",
    "com.miui.calculator",
    "com.miui.weather2",
    "com.miui.notes",
    "com.android.fileexplorer",
    "com.mi.android.globalFileexplorer",
    "com.android.camera",
    "com.android.contacts",
    "com.android.incallui",
    "com.android.mms",
    "com.google.android.dialer",
    "com.google.android.contacts",
    "com.google.android.apps.messaging",
    "com.miui.securitycenter",
    "com.android.thememanager",
    "com.android.providers.downloads.ui",
];

const KEYBOARDS: &[&str] = &[
    "com.sohu.inputmethod.sogou.xiaomi",
    "com.baidu.input_mi",
    "com.iflytek.inputmethod.miui",
    "com.google.android.inputmethod.latin",
];

// The real bloat of the inventories, by region (the list).
const MINIMAL_ALL: &[&str] = &[
    "com.miui.analytics",
    "com.miui.bugreport",
    "com.miui.yellowpage",
    "com.android.dreams.basic",
];
const MINIMAL_CHINA: &[&str] = &[
    "com.miui.systemAdSolution",
    "com.bsp.catchlog",
    "com.xiaomi.gamecenter",
];
const MINIMAL_INTL: &[&str] = &["com.miui.msa.global", "com.android.bookmarkprovider"];
const PRIVACY_ALL: &[&str] = &[
    "com.miui.daemon",
    "com.miui.audiomonitor",
    "com.xiaomi.aicr",
];
const PRIVACY_CHINA: &[&str] = &[
    "com.xiaomi.security.onetrack",
    "com.miui.uireporter",
    "com.miui.misightservice",
    "com.miui.contentcatcher",
    "com.miui.contentextension",
    "com.miui.hybrid",
    "com.miui.personalassistant",
    "com.mfashiongallery.emag",
    "com.xiaomi.gamecenter.sdk.service",
    "com.xiaomi.migameservice",
];
const PRIVACY_INTL: &[&str] = &[
    "com.xiaomi.mipicks",
    "com.xiaomi.glgm",
    "android.autoinstalls.config.Xiaomi.model",
    "com.facebook.appmanager",
    "com.facebook.system",
    "com.facebook.services",
    "com.mi.globalbrowser",
    "com.mi.globalminusscreen",
    "com.miui.android.fashiongallery",
];
const XIAOMI_EU_CHINA: &[&str] = &[
    "com.miui.voiceassist",
    "com.xiaomi.mibrain.speech",
    "com.miui.voicetrigger",
    "com.xiaomi.aireco",
    "com.xiaomi.aiasst.service",
    "com.xiaomi.aiasst.vision",
    "com.miui.virtualsim",
    "com.miui.vsimcore",
    "com.miui.tsmclient",
    "com.miui.nextpay",
    "com.xiaomi.payment",
    "com.mipay.wallet",
    "com.miui.wmsvc",
    "com.xiaomi.mis",
    "com.miui.carlink",
    "com.xiaomi.digitalkey",
    "com.xiaomi.registration",
    "com.miui.dmregservice",
    "com.xiaomi.metoknlp",
    "com.miui.miservice",
    "com.android.browser",
    "com.android.quicksearchbox",
    "com.miui.player",
    "com.miui.video",
    "com.xiaomi.shop",
    "com.mi.health",
    "com.miui.cleanmaster",
    "com.baidu.input_mi",
    "com.iflytek.inputmethod.miui",
];
/// China bloat whose package is not verified: matched by folder.
const XIAOMI_EU_CHINA_FOLDERS: &[&str] = &[
    "product/app/UPTsmService",
    "product/app/MIUIgreenguard",
    "product/app/XiaoaiEdgeEngine",
];
/// Expert rules: listed, skipped at max_level advanced.
const EXPERT: &[&str] = &["com.xiaomi.joyose", "com.xiaomi.xmsf"];

fn plan_of(profile: &str, rom: &Path) -> (i32, serde_json::Value) {
    let out = romkit()
        .args(["debloat", "--json", "--dry-run", "--strict", "--profile"])
        .arg(root().join("profiles").join(format!("{profile}.yaml")))
        .arg(rom)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

#[test]
fn shipped_profiles_on_every_real_layout() {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for (layout, _) in LAYOUTS {
        let rom = fixture(layout);
        let china = layout.ends_with("china");
        let present: BTreeMap<String, String> = apps(&rom);
        let packages: BTreeSet<&str> = present.values().map(String::as_str).collect();
        for (profile, lists) in [
            (
                "minimal",
                [MINIMAL_ALL, MINIMAL_CHINA, MINIMAL_INTL, &[], &[], &[]],
            ),
            (
                "privacy",
                [
                    MINIMAL_ALL,
                    MINIMAL_CHINA,
                    MINIMAL_INTL,
                    PRIVACY_ALL,
                    PRIVACY_CHINA,
                    PRIVACY_INTL,
                ],
            ),
            (
                "xiaomi-eu",
                [
                    MINIMAL_ALL,
                    MINIMAL_CHINA,
                    MINIMAL_INTL,
                    PRIVACY_ALL,
                    PRIVACY_CHINA,
                    PRIVACY_INTL,
                ],
            ),
        ] {
            let (code, v) = plan_of(profile, &rom);
            let meant = profile != "xiaomi-eu" || china;
            if meant {
                assert_eq!(code, 0, "{profile} --strict on {layout}: {}", v["warnings"]);
            }
            let gone: BTreeSet<&str> = v["removed"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| r["package"].as_str())
                .collect();
            let gone_paths: BTreeSet<&str> = v["removed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["path"].as_str().unwrap())
                .collect();
            // Every everyday app stays, and at least one keyboard.
            for p in EVERYDAY {
                assert!(!gone.contains(p), "{profile} removes {p} on {layout}");
            }
            assert!(
                KEYBOARDS
                    .iter()
                    .any(|k| packages.contains(k) && !gone.contains(k)),
                "{profile} leaves no keyboard on {layout}"
            );
            // The real bloat present goes.
            let [all, cn, intl, p_all, p_cn, p_intl] = lists;
            let mut want: Vec<&str> = all.iter().chain(p_all).copied().collect();
            if china {
                want.extend(cn.iter().chain(p_cn));
            } else {
                want.extend(intl.iter().chain(p_intl));
            }
            if profile == "xiaomi-eu" && china {
                want.extend(XIAOMI_EU_CHINA);
                for f in XIAOMI_EU_CHINA_FOLDERS {
                    assert!(gone_paths.contains(f), "{profile} keeps {f} on {layout}");
                }
                // The China app store is the only one: listed at expert.
                assert!(packages.contains("com.xiaomi.market"));
                assert!(!gone.contains("com.xiaomi.market"));
            }
            for p in want {
                if packages.contains(p) {
                    seen.insert(p);
                    assert!(gone.contains(p), "{profile} keeps {p} on {layout}");
                }
            }
            for p in EXPERT {
                assert!(packages.contains(p), "{layout} lacks {p}");
                assert!(!gone.contains(p), "{profile} removes expert {p}");
            }
            if profile == "privacy" && !china {
                // The region pack's store apps, which product/data-app/* never reached.
                let mi_ext_data: Vec<&String> = present
                    .keys()
                    .filter(|p| p.starts_with("mi_ext/product/data-app/"))
                    .collect();
                assert!(mi_ext_data.len() >= 5, "{mi_ext_data:?}");
                for p in mi_ext_data {
                    assert!(gone_paths.contains(p.as_str()), "{profile} keeps {p}");
                }
            }
            if profile == "xiaomi-eu" && !china {
                // Every rule of its own is for China builds.
                let own = v["profiles"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["profile"] == "xiaomi-eu")
                    .unwrap();
                assert_eq!(own["applied"], 0);
                assert_eq!(own["skipped_by_condition"], own["rules"]);
            }
        }
    }
    // Each listed package is on at least one real layout: the lists test
    // something.
    for list in [
        MINIMAL_ALL,
        MINIMAL_CHINA,
        MINIMAL_INTL,
        PRIVACY_ALL,
        PRIVACY_CHINA,
        PRIVACY_INTL,
        XIAOMI_EU_CHINA,
    ] {
        for p in list {
            assert!(seen.contains(p), "{p} is on no layout");
        }
    }
}
