//! Profiles and debloat plans: every profile error kind, `extends`/`keep`
//! semantics, `--strict`, the shipped profiles' plans on the fixture, and the
//! plan applied to the fixture's trees.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `profile check` must fail with exit 3 and a message naming the file, the
/// line and column, and containing `what`.
fn check_fails(dir: &Path, name: &str, text: &str, at: &str, what: &str) {
    let p = write(dir, name, text);
    let out = romkit().args(["profile", "check"]).arg(&p).assert().code(3);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    let loc = format!("{}:{at}:", p.display());
    assert!(err.contains(&loc), "{name}: wanted {loc} in {err}");
    assert!(err.contains(what), "{name}: wanted {what:?} in {err}");
}

#[test]
fn every_profile_error_names_file_line_column() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    check_fails(
        d,
        "unknown.yaml",
        "name: a\nremove:\n  - package: com.x\n    levle: advanced\n",
        "4:5",
        "unknown field `levle`",
    );
    check_fails(
        d,
        "top.yaml",
        "name: a\nfoo: 1\n",
        "2:1",
        "unknown field `foo`",
    );
    check_fails(
        d,
        "level.yaml",
        "name: a\nremove:\n  - package: com.x\n    level: risky\n",
        "4:12",
        "unknown variant `risky`",
    );
    check_fails(
        d,
        "maxlevel.yaml",
        "name: a\nmax_level: everything\n",
        "2:12",
        "unknown variant `everything`",
    );
    write(d, "b.yaml", "name: b\nextends: [c]\n");
    write(d, "c.yaml", "name: c\nextends: [a-cycle]\n");
    // The cycle is reported where it closes: c.yaml's extends.
    let a = write(d, "a-cycle.yaml", "name: a\nextends: [b]\n");
    let out = romkit().args(["profile", "check"]).arg(&a).assert().code(3);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains(&format!("{}:2:11:", d.join("c.yaml").display())),
        "{err}"
    );
    assert!(
        err.contains("a-cycle.yaml -> ") && err.contains("b.yaml -> "),
        "{err}"
    );
    check_fails(
        d,
        "self.yaml",
        "name: s\nextends: [self]\n",
        "2:11",
        "a cycle",
    );
    check_fails(
        d,
        "missing.yaml",
        "name: m\nextends:\n  - nowhere\n",
        "3:5",
        "cannot be found",
    );
    check_fails(
        d,
        "protected.yaml",
        "name: p\nremove:\n  - package: com.miui.securitycenter\n",
        "3:5",
        "com.miui.securitycenter is protected",
    );
    check_fails(
        d,
        "protpath.yaml",
        "name: p\nremove:\n  - path: system/framework/framework-res.apk\n",
        "3:5",
        "system/framework is protected",
    );
    check_fails(
        d,
        "dots.yaml",
        "name: p\nremove:\n  - path: product/../system/app\n",
        "3:5",
        "\"..\"",
    );
    check_fails(
        d,
        "dotsglob.yaml",
        "name: p\nremove:\n  - glob: product/app/**/../../x\n",
        "3:5",
        "\"..\"",
    );
    check_fails(
        d,
        "abs.yaml",
        "name: p\nremove:\n  - path: /product/app/X\n",
        "3:5",
        "absolute",
    );
    check_fails(
        d,
        "two.yaml",
        "name: t\nremove:\n  - package: com.x\n    path: a/b\n",
        "3:5",
        "exactly one of package, path or glob",
    );
    check_fails(
        d,
        "none.yaml",
        "name: t\nremove:\n  - level: advanced\n",
        "3:5",
        "exactly one of package, path or glob",
    );
    check_fails(
        d,
        "pkg.yaml",
        "name: t\nremove:\n  - package: \"com..x y\"\n",
        "3:5",
        "not a valid package name",
    );
    check_fails(
        d,
        "props.yaml",
        "name: t\nprops:\n  product:\n    set: {ro.a: x}\n    delete: [ro.a]\n",
        "4:5",
        "both set and deleted",
    );
    check_fails(
        d,
        "keeplevel.yaml",
        "name: t\nkeep:\n  - package: com.x\n    level: expert\n",
        "3:5",
        "a keep rule has no level",
    );
    // An alias bomb: thousands of aliases are stopped by the budget.
    let mut bomb = String::from("name: al\nremove:\n  - &r {package: com.x}\n");
    for _ in 0..5000 {
        bomb.push_str("  - *r\n");
    }
    check_fails(d, "bomb.yaml", &bomb, "1004:5", "budget");
    // Deep nesting is bounded (and not a valid rule either).
    let deep = format!(
        "name: d\nremove: {}{}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let p = write(d, "deep.yaml", &deep);
    romkit().args(["profile", "check"]).arg(&p).assert().code(3);
    // A file larger than any profile is refused before parsing.
    let big = format!("name: big\ndescription: \"{}\"\n", "x".repeat(2 << 20));
    let p = write(d, "big.yaml", &big);
    let out = romkit().args(["profile", "check"]).arg(&p).assert().code(3);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("at most"));
}

#[test]
fn allow_unsafe_accepts_protected_rules() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "p.yaml",
        "name: p\nremove:\n  - package: com.miui.home\n    level: unsafe\n",
    );
    romkit()
        .args(["profile", "check", "--allow-unsafe"])
        .arg(&p)
        .assert()
        .success();
}

fn plan(profile: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let out = romkit()
        .args(["debloat", "--json", "--dry-run", "--profile"])
        .arg(profile)
        .args(extra)
        .arg(sample())
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), v)
}

fn removed(v: &serde_json::Value) -> BTreeSet<String> {
    v["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect()
}

fn statuses(v: &serde_json::Value, status: &str) -> BTreeSet<String> {
    v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["matches"].as_array().unwrap().iter())
        .filter(|m| m["status"] == status)
        .map(|m| m["path"].as_str().unwrap().to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// What the shipped profiles remove from the committed sample, whose apps
// follow the HyperOS 1 China inventory (houji): folder of each package read
// from ../shared/real-builds/hyperos_apps_houji_V816.0.9.0.UNCCNXM.txt.
const MINIMAL: [&str; 6] = [
    "product/app/AnalyticsCore",
    "product/app/MiBugReport",
    "product/app/MSA",
    "product/app/CatchLog",
    "product/priv-app/MIUIYellowPage",
    "system/app/BasicDreams",
];

const PRIVACY_MORE: [&str; 12] = [
    "system_ext/app/MiuiDaemon",
    "system_ext/app/MiuiAudioMonitor",
    "product/priv-app/MIUIAICR",
    "product/app/SecurityOnetrackService",
    "product/app/MIUIReporter",
    "system_ext/app/MiSightService",
    "product/app/MiuiContentCatcherMIUI15",
    "product/priv-app/MIUIContentExtension",
    "product/app/HybridPlatform",
    "product/priv-app/MIUIPersonalAssistantPhoneMIUI15",
    "product/data-app/MIGalleryLockscreen-MIUI15",
    "product/priv-app/MiGameCenterSDKService",
];

const XIAOMI_EU_MORE: [&str; 36] = [
    "product/app/VoiceAssistAndroidT",
    "product/data-app/MIUIXiaoAiSpeechEngine",
    "product/priv-app/VoiceTrigger",
    "product/app/XiaoaiRecommendation",
    "product/app/MIUIAiasstService",
    "product/app/AiAsstVision",
    "product/app/XiaoaiEdgeEngine",
    "product/data-app/MIUIVirtualSim",
    "system_ext/app/VsimCore",
    "product/app/MITSMClient",
    "product/app/UPTsmService",
    "product/app/MINextpay",
    "product/app/PaymentService",
    "product/app/WMService",
    "product/app/MIS",
    "product/app/CarWith",
    "system_ext/app/digitalkey",
    "product/app/MIUIgreenguard",
    "product/priv-app/AutoRegistration",
    "product/priv-app/RegService",
    "product/app/MetokNLP",
    "product/data-app/MIService",
    "product/priv-app/MIUIBrowser",
    "product/priv-app/MIUIQuickSearchBox",
    "product/app/Music",
    "product/data-app/MIUICleanMaster",
    "product/data-app/BaiduIME",
    "product/data-app/com.iflytek.inputmethod.miui",
    // The product/data-app/* glob, past its everyday exceptions.
    "product/data-app/MIUIHuanji",
    "product/data-app/MIUIMiDrive",
    "product/data-app/MIUISecurityManager",
    "product/data-app/MIUIVipAccount",
    "product/data-app/SmartHome",
    "product/data-app/ThirdAppAssistant",
    "product/data-app/XMRemoteController",
    "product/data-app/wps-lite",
];

/// The expert rules the shipped profiles skip at max_level advanced.
const EXPERT: [&str; 2] = [
    "product/pangu/system/app/Joyose",
    "product/app/XiaomiServiceFrameworkCN",
];

#[test]
fn shipped_profiles_plan_exactly_as_written() {
    let profiles = root().join("profiles");
    // minimal
    let (code, v) = plan(&profiles.join("minimal.yaml"), &["--strict"]);
    assert_eq!(code, 0, "--strict passes on the China sample");
    assert_eq!(removed(&v), set(&MINIMAL));
    assert!(statuses(&v, "skipped").is_empty());
    assert_eq!(v["unmatched"], 0);
    // Game Center is optional (only some China releases ship it).
    assert_eq!(v["notes"].as_array().unwrap().len(), 1, "{}", v["notes"]);
    assert!(v["props"].as_array().unwrap().is_empty());
    // privacy
    let (code, v) = plan(&profiles.join("privacy.yaml"), &["--strict"]);
    assert_eq!(code, 0);
    let mut want = set(&MINIMAL);
    want.extend(set(&PRIVACY_MORE));
    assert_eq!(removed(&v), want);
    assert_eq!(statuses(&v, "skipped"), set(&EXPERT));
    assert_eq!(v["unmatched"], 0);
    // xiaomi-eu
    let (code, v) = plan(&profiles.join("xiaomi-eu.yaml"), &["--strict"]);
    assert_eq!(code, 0, "every rule that applies to a China build matches");
    want.extend(set(&XIAOMI_EU_MORE));
    assert_eq!(removed(&v), want);
    let mut skipped = set(&EXPERT);
    skipped.insert("product/app/MIUISuperMarket".into());
    assert_eq!(statuses(&v, "skipped"), skipped);
    assert!(v["refused"].as_array().unwrap().is_empty());
    assert_eq!(
        v["props"],
        serde_json::json!([
            {"partition": "product", "file": "product/etc/build.prop", "key": "ro.product.locale", "old": "zh-CN", "new": "en-GB"},
            {"partition": "product", "file": "product/etc/build.prop", "key": "ro.miui.region", "old": "CN", "new": null},
        ])
    );
    // Space freed adds up per partition.
    let total: u64 = v["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["size"].as_u64().unwrap())
        .sum();
    assert_eq!(v["freed_total"].as_u64().unwrap(), total);
    let per: u64 = v["freed"]
        .as_object()
        .unwrap()
        .values()
        .map(|x| x.as_u64().unwrap())
        .sum();
    assert_eq!(per, total);
}

#[test]
fn shipped_profiles_validate_and_touch_nothing_protected() {
    for name in ["minimal", "privacy", "xiaomi-eu"] {
        romkit().args(["profile", "check", name]).assert().success();
        let (_, v) = plan(Path::new(name), &[]);
        for r in v["removed"].as_array().unwrap() {
            if let Some(p) = r["package"].as_str() {
                assert!(
                    !romkit::debloat::PROTECTED_PACKAGES
                        .iter()
                        .any(|(n, _)| *n == p),
                    "{name} removes protected {p}"
                );
            }
        }
        // The resolved profile prints, and what it prints loads again.
        let out = romkit().args(["profile", "show", name]).assert().success();
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "shown.yaml",
            &String::from_utf8_lossy(&out.get_output().stdout),
        );
        romkit()
            .args(["profile", "check"])
            .arg(&p)
            .assert()
            .success();
        let (_, again) = plan(&p, &[]);
        assert_eq!(removed(&again), removed(&v), "{name}");
    }
}

#[test]
fn extends_keep_levels_and_props_merge() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "base.yaml",
        "name: base\nmax_level: expert\nremove:\n  - package: com.miui.notes\n  - package: com.miui.weather2\n    level: advanced\n  - path: product/etc/permissions\n    level: expert\nprops:\n  product:\n    set: {ro.product.locale: fr-FR, ro.extra: one}\n",
    );
    let child = write(
        d.path(),
        "child.yaml",
        "name: child\nextends: [base]\nkeep:\n  - package: com.miui.notes\nremove:\n  - glob: \"product/**/oat\"\nprops:\n  product:\n    set: {ro.product.locale: en-GB}\n    delete: [ro.extra, ro.miui.region]\n",
    );
    let (code, v) = plan(&child, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["max_level"], "expert", "inherited from base");
    assert_eq!(statuses(&v, "kept"), set(&["product/data-app/MIUINotes"]));
    // Weather's folder, a non-app folder, and the oat folders of the apps
    // that are not removed (Camera; Weather's went with it).
    assert_eq!(
        removed(&v),
        set(&[
            "product/data-app/MIUIWeather",
            "product/etc/permissions",
            "product/priv-app/MiuiCamera/oat",
        ])
    );
    let props: Vec<(String, serde_json::Value)> = v["props"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["key"].as_str().unwrap().to_string(), c["new"].clone()))
        .collect();
    assert_eq!(
        props,
        vec![
            ("ro.product.locale".to_string(), serde_json::json!("en-GB")),
            ("ro.miui.region".to_string(), serde_json::Value::Null),
        ],
        "the child's set wins; ro.extra is neither set nor present"
    );
    // ro.extra: deleted by the child and absent from build.prop: a warning.
    assert_eq!(v["unmatched"], 1);
    // Lower max_level: the advanced and expert rules are skipped.
    let low = write(
        d.path(),
        "low.yaml",
        "name: low\nextends: [base]\nmax_level: recommended\n",
    );
    let (_, v) = plan(&low, &[]);
    assert_eq!(removed(&v), set(&["product/data-app/MIUINotes"]));
    assert_eq!(
        statuses(&v, "skipped"),
        set(&["product/data-app/MIUIWeather", "product/etc/permissions"])
    );
}

#[test]
fn globs_hitting_protected_apps_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "greedy.yaml",
        "name: greedy\nmax_level: unsafe\nremove:\n  - glob: product/priv-app/*\n    level: unsafe\n",
    );
    let (code, v) = plan(&p, &[]);
    assert_eq!(code, 1, "refusals fail the dry run");
    let refused: BTreeSet<String> = v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["package"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        refused,
        set(&[
            "com.miui.home",
            "com.miui.securitycenter",
            "com.xiaomi.misettings"
        ])
    );
    assert!(removed(&v).contains("product/priv-app/MiuiCamera"));
    let (code, v) = plan(&p, &["--allow-unsafe"]);
    assert_eq!(code, 0);
    assert!(removed(&v).contains("product/priv-app/MiuiHome"));
}

#[test]
fn debloat_needs_dry_run() {
    romkit()
        .args(["debloat", "--profile", "minimal"])
        .arg(sample())
        .assert()
        .code(2);
}

#[test]
fn applying_the_plan_removes_exactly_the_plan() {
    use romkit::apps;
    let loaded = apps::load(&sample(), None, 2).unwrap();
    let before = apps::identify(loaded.locate(), 2);
    let profile =
        romkit::debloat::load(root().join("profiles/xiaomi-eu.yaml").to_str().unwrap()).unwrap();
    let plan = romkit::debloat::plan(
        &profile,
        &before,
        &loaded.partitions,
        romkit::debloat::PlanOptions::default(),
    );
    let gone: BTreeSet<String> = plan.removed.iter().map(|r| r.path.clone()).collect();
    let mut after = Vec::new();
    let mut product_props = String::new();
    for p in loaded.partitions {
        let mut tree = p.tree.unwrap();
        plan.apply(&p.name, &mut tree).unwrap();
        let files = apps::tree_files(&p.name, &tree);
        if p.name == "product" {
            let f = files
                .iter()
                .find(|f| f.path == "product/etc/build.prop")
                .unwrap();
            let mut b = Vec::new();
            f.data.read(&mut b).unwrap();
            product_props = String::from_utf8(b).unwrap();
        }
        after.extend(apps::identify(apps::locate(&p.name, &files, false), 2));
    }
    let before_paths: BTreeSet<String> = before.iter().map(|a| a.path.clone()).collect();
    let after_paths: BTreeSet<String> = after.iter().map(|a| a.path.clone()).collect();
    let expect: BTreeSet<String> = before_paths.difference(&gone).cloned().collect();
    assert_eq!(after_paths, expect);
    assert_eq!(
        before_paths.len() - after_paths.len(),
        MINIMAL.len() + PRIVACY_MORE.len() + XIAOMI_EU_MORE.len()
    );
    // Every kept app is byte-identical.
    for a in &after {
        let b = before.iter().find(|b| b.path == a.path).unwrap();
        assert_eq!(a.sha256, b.sha256);
    }
    assert!(product_props.contains("\nro.product.locale=en-GB\n"));
    assert!(!product_props.contains("ro.miui.region"));
    assert!(product_props.contains("ro.miui.ui.version.code=816\n"));
}

#[test]
fn condition_errors_name_file_line_column() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    check_fails(
        d,
        "region.yaml",
        "name: a\nremove:\n  - package: com.x\n    when: { region: [mars] }\n",
        "4:22",
        "unknown variant `mars`",
    );
    check_fails(
        d,
        "key.yaml",
        "name: a\nremove:\n  - package: com.x\n    when: { region: [china], model: [x] }\n",
        "4:30",
        "unknown field `model`",
    );
    check_fails(
        d,
        "os.yaml",
        "name: a\nremove:\n  - package: com.x\n    when:\n      os: [hyperos9]\n",
        "5:12",
        "unknown variant `hyperos9`",
    );
    check_fails(
        d,
        "empty.yaml",
        "name: a\nremove:\n  - package: com.x\n    when: {}\n",
        "4:11",
        "an empty when",
    );
    check_fails(
        d,
        "except.yaml",
        "name: a\nremove:\n  - package: com.x\n    except: [com.y]\n",
        "4:13",
        "except is for glob rules only",
    );
    check_fails(
        d,
        "exceptpkg.yaml",
        "name: a\nremove:\n  - glob: product/*\n    except: [com.y, \"a b\"]\n",
        "4:13",
        "\"a b\" is not a valid package name",
    );
    check_fails(
        d,
        "keepwhen.yaml",
        "name: a\nkeep:\n  - package: com.x\n    when: { region: [china] }\n",
        "3:5",
        "a keep rule has no when",
    );
    check_fails(
        d,
        "optional.yaml",
        "name: a\nremove:\n  - package: com.x\n    optional: maybe\n",
        "4:15",
        "",
    );
}

/// The per-profile reports of a plan: name -> (rules, applied, matched,
/// unmatched, unmatched_allowed, skipped_by_condition).
fn reports(v: &serde_json::Value) -> Vec<(String, [u64; 6])> {
    v["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let n = |k: &str| p[k].as_u64().unwrap();
            (
                p["profile"].as_str().unwrap().to_string(),
                [
                    n("rules"),
                    n("applied"),
                    n("matched"),
                    n("unmatched"),
                    n("unmatched_allowed"),
                    n("skipped_by_condition"),
                ],
            )
        })
        .collect()
}

#[test]
fn conditions_decide_what_applies_and_what_strict_checks() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "cond.yaml",
        "name: cond\nremove:\n  - package: com.miui.msa.global\n    when: { region: [global, eea] }\n  - package: com.miui.analytics\n    when: { region: [china], os: [hyperos1] }\n  - package: com.xiaomi.shop\n    optional: true\n  - package: com.miui.weather2\n    when: { os: [hyperos2, hyperos3] }\n",
    );
    // The sample is OS1.0.24.0.UMCCNXM: China, HyperOS 1.
    let (code, v) = plan(&p, &["--strict"]);
    assert_eq!(code, 0, "skipped and optional rules are no --strict errors");
    assert_eq!(v["input"]["region"], "CN");
    assert_eq!(v["input"]["region_from"], "version code");
    assert_eq!(v["input"]["os"], "hyperos1");
    assert_eq!(removed(&v), set(&["product/app/AnalyticsCore"]));
    let applies: Vec<&str> = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["applies"].as_str().unwrap())
        .collect();
    assert_eq!(applies, ["no", "yes", "yes", "no"]);
    assert!(
        v["rules"][0]["condition"]
            .as_str()
            .unwrap()
            .contains("region is CN"),
        "{}",
        v["rules"][0]
    );
    assert_eq!(v["unmatched"], 0);
    assert_eq!(reports(&v), [("cond".to_string(), [4, 2, 1, 1, 1, 2])]);
    // The same rule without optional is a --strict failure.
    let strict = write(
        d.path(),
        "strict.yaml",
        "name: strict\nremove:\n  - package: com.xiaomi.shop\n    when: { region: [china] }\n",
    );
    let (code, v) = plan(&strict, &["--strict"]);
    assert_eq!(code, 1);
    assert_eq!(v["unmatched"], 1);
    let (code, _) = plan(&strict, &[]);
    assert_eq!(code, 0, "without --strict it is a warning");
}

#[test]
fn region_from_miui_region_when_no_version_code() {
    // A folder whose build.props lost their version code: the region comes
    // from ro.miui.region, the release is unknown and a rule limited to a
    // release is applied without being a --strict error.
    let dir = tempfile::tempdir().unwrap();
    romkit()
        .args(["unpack", "--files", "--partitions", "system,product", "-o"])
        .arg(dir.path())
        .arg(sample())
        .assert()
        .success();
    for f in ["system/system/build.prop", "product/etc/build.prop"] {
        let p = dir.path().join(f);
        let text = std::fs::read_to_string(&p).unwrap();
        let kept: String = text
            .lines()
            .filter(|l| !l.contains("version.incremental") && !l.contains("fingerprint"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(kept, text, "{f} had a version code");
        std::fs::write(&p, kept).unwrap();
    }
    let prof = write(
        dir.path(),
        "p.yaml",
        "name: p\nremove:\n  - package: com.miui.systemAdSolution\n    when: { region: [china] }\n  - package: com.xiaomi.shop\n    when: { os: [hyperos2] }\n  - package: com.miui.msa.global\n    when: { region: [international] }\n",
    );
    let out = romkit()
        .args(["debloat", "--json", "--dry-run", "--strict", "--profile"])
        .arg(&prof)
        .arg(dir.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["input"]["region"], "CN");
    assert_eq!(v["input"]["region_from"], "ro.miui.region");
    assert_eq!(v["input"]["os"], serde_json::Value::Null);
    let applies: Vec<&str> = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["applies"].as_str().unwrap())
        .collect();
    assert_eq!(applies, ["yes", "unknown", "no"]);
    assert_eq!(removed(&v), set(&["product/app/MSA"]));
}

#[test]
fn dry_run_text_reports_each_profile() {
    let out = romkit()
        .args(["debloat", "--dry-run", "--profile", "privacy"])
        .arg(sample())
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    // minimal: 9 rules, 2 for Global builds only; Game Center (optional) is
    // not in the HyperOS 1 China inventory. privacy: 5 rules for every
    // region, 10 for China, 10 for Global/EEA; the HyperOS 2 game service
    // (optional) is missing.
    for line in [
        "input: region CN (from version code), hyperos1",
        "profile minimal: 9 rules, 7 applied (6 matched, 1 matched nothing, 1 of them optional or unchecked), 2 skipped by region/release conditions",
        "profile privacy: 25 rules, 15 applied (14 matched, 1 matched nothing, 1 of them optional or unchecked), 10 skipped by region/release conditions",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert!(text.contains("skipped by condition: region international; the input's region is CN"));
}
