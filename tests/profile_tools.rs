//! `romkit profile schema` (the shipped profiles validate against it, bad
//! profiles do not) and `romkit profile import-uad` on a small handwritten
//! list in the Universal Android Debloater format.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

fn schema() -> Value {
    let out = romkit().args(["profile", "schema"]).assert().success();
    serde_json::from_slice(&out.get_output().stdout).unwrap()
}

/// A JSON Schema (draft-07) validator for the keywords the profile schema
/// uses: type, enum, properties, additionalProperties, required, items,
/// minItems, minProperties, oneOf and local $ref. `pattern` is not checked
/// (the loader checks names). Returns the first violation.
fn validate(root: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r
            .strip_prefix("#/definitions/")
            .ok_or(format!("unsupported $ref {r}"))?;
        return validate(root, &root["definitions"][name], v, at);
    }
    if let Some(t) = schema["type"].as_str() {
        let ok = match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            other => return Err(format!("unsupported type {other}")),
        };
        if !ok {
            return Err(format!("{at}: not a {t}: {v}"));
        }
    }
    if let Some(e) = schema["enum"].as_array()
        && !e.contains(v)
    {
        return Err(format!("{at}: {v} not in {e:?}"));
    }
    if let Some(obj) = v.as_object() {
        if let Some(req) = schema["required"].as_array() {
            for k in req {
                if !obj.contains_key(k.as_str().unwrap()) {
                    return Err(format!("{at}: missing {k}"));
                }
            }
        }
        if let Some(n) = schema["minProperties"].as_u64()
            && (obj.len() as u64) < n
        {
            return Err(format!("{at}: fewer than {n} properties"));
        }
        for (k, val) in obj {
            let here = format!("{at}/{k}");
            match schema["properties"].get(k) {
                Some(s) => validate(root, s, val, &here)?,
                None => match &schema["additionalProperties"] {
                    Value::Bool(false) => return Err(format!("{here}: not allowed")),
                    s @ Value::Object(_) => validate(root, s, val, &here)?,
                    _ => {}
                },
            }
        }
    }
    if let Some(arr) = v.as_array() {
        if let Some(n) = schema["minItems"].as_u64()
            && (arr.len() as u64) < n
        {
            return Err(format!("{at}: fewer than {n} items"));
        }
        if schema.get("items").is_some() {
            for (i, item) in arr.iter().enumerate() {
                validate(root, &schema["items"], item, &format!("{at}/{i}"))?;
            }
        }
    }
    if let Some(one) = schema["oneOf"].as_array() {
        let n = one
            .iter()
            .filter(|s| validate(root, s, v, at).is_ok())
            .count();
        if n != 1 {
            return Err(format!("{at}: matches {n} of oneOf, not 1"));
        }
    }
    Ok(())
}

fn yaml_to_json(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap()
}

/// Profiles the loader rejects for their shape; the schema must too.
const BAD: &[(&str, &str)] = &[
    ("top key", "name: a\nfoo: 1\n"),
    ("no name", "remove: []\n"),
    (
        "rule key",
        "name: a\nremove:\n  - package: com.x\n    levle: advanced\n",
    ),
    (
        "level",
        "name: a\nremove:\n  - package: com.x\n    level: risky\n",
    ),
    ("max_level", "name: a\nmax_level: everything\n"),
    (
        "two selectors",
        "name: a\nremove:\n  - package: com.x\n    path: a/b\n",
    ),
    ("no selector", "name: a\nremove:\n  - level: advanced\n"),
    (
        "region",
        "name: a\nremove:\n  - package: com.x\n    when: { region: [mars] }\n",
    ),
    (
        "condition key",
        "name: a\nremove:\n  - package: com.x\n    when: { model: [x] }\n",
    ),
    (
        "empty when",
        "name: a\nremove:\n  - package: com.x\n    when: {}\n",
    ),
    (
        "optional type",
        "name: a\nremove:\n  - package: com.x\n    optional: [yes]\n",
    ),
    (
        "keep level",
        "name: a\nkeep:\n  - package: com.x\n    level: expert\n",
    ),
    ("props", "name: a\nprops:\n  product:\n    change: {}\n"),
];

#[test]
fn shipped_profiles_validate_against_the_schema() {
    let s = schema();
    assert_eq!(s["$schema"], "http://json-schema.org/draft-07/schema#");
    let d = tempfile::tempdir().unwrap();
    for name in ["minimal", "privacy", "xiaomi-eu"] {
        let text = std::fs::read_to_string(root().join(format!("profiles/{name}.yaml"))).unwrap();
        let v = yaml_to_json(&text);
        validate(&s, &s, &v, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        // The resolved form `profile show` prints validates too.
        let out = romkit().args(["profile", "show", name]).assert().success();
        let shown = String::from_utf8_lossy(&out.get_output().stdout).to_string();
        validate(&s, &s, &yaml_to_json(&shown), name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // Every feature at once: valid for both the schema and the loader.
    let all = "name: all\ndescription: d\nextends: [minimal]\nmax_level: expert\nremove:\n  - package: com.x\n    level: advanced\n    when: { region: [china, eea], os: [hyperos2] }\n    optional: true\n    reason: r\n  - glob: product/data-app/*\n    except: [com.miui.gallery]\n  - path: product/app/X\nkeep:\n  - package: com.y\nprops:\n  product:\n    set: { ro.a: b }\n    delete: [ro.c]\n";
    validate(&s, &s, &yaml_to_json(all), "all").unwrap();
    let p = d.path().join("all.yaml");
    std::fs::write(&p, all).unwrap();
    romkit()
        .args(["profile", "check"])
        .arg(&p)
        .assert()
        .success();
    // What the loader rejects, the schema rejects.
    for (what, text) in BAD {
        let p = d.path().join("bad.yaml");
        std::fs::write(&p, text).unwrap();
        romkit().args(["profile", "check"]).arg(&p).assert().code(3);
        assert!(
            validate(&s, &s, &yaml_to_json(text), "bad").is_err(),
            "schema accepts {what}"
        );
    }
    // A second opinion from Python's jsonschema, when it is installed (CI
    // installs it into ROMKIT_PYTHON's venv).
    let python = std::env::var("ROMKIT_PYTHON").unwrap_or_else(|_| "python3".into());
    let py = Command::new(&python)
        .args(["-c", "import jsonschema"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !py {
        eprintln!("SKIP: python3 jsonschema not installed; the in-test validator ran");
        return;
    }
    let sp = d.path().join("schema.json");
    std::fs::write(&sp, s.to_string()).unwrap();
    let check = |v: &Value| -> bool {
        let vp = d.path().join("doc.json");
        std::fs::write(&vp, v.to_string()).unwrap();
        let code = "import json,sys,jsonschema\nschema=json.load(open(sys.argv[1]))\njsonschema.Draft7Validator.check_schema(schema)\njsonschema.validate(json.load(open(sys.argv[2])),schema)";
        Command::new(&python)
            .args(["-c", code])
            .arg(&sp)
            .arg(&vp)
            .output()
            .unwrap()
            .status
            .success()
    };
    for name in ["minimal", "privacy", "xiaomi-eu"] {
        let text = std::fs::read_to_string(root().join(format!("profiles/{name}.yaml"))).unwrap();
        assert!(check(&yaml_to_json(&text)), "jsonschema rejects {name}");
    }
    for (what, text) in BAD {
        assert!(!check(&yaml_to_json(text)), "jsonschema accepts {what}");
    }
}

// A UAD-format list written for this test: package -> list, description,
// dependencies, neededBy, labels, removal (plus a field UAD does not have).
const UAD: &str = r#"{
  "com.miui.analytics": {
    "list": "Oem",
    "description": "Xiaomi analytics.\nSends usage data to Xiaomi.",
    "dependencies": [],
    "neededBy": [],
    "labels": [],
    "removal": "Recommended",
    "futureField": {"x": 1}
  },
  "com.miui.hybrid": {
    "list": "Oem",
    "description": "Quick apps runtime",
    "dependencies": [],
    "neededBy": ["com.miui.player"],
    "labels": [],
    "removal": "Advanced"
  },
  "com.google.android.youtube": {
    "list": "Google",
    "description": "YouTube",
    "dependencies": [],
    "neededBy": [],
    "labels": [],
    "removal": "Recommended"
  },
  "com.miui.home": {
    "list": "Oem",
    "description": "The launcher",
    "dependencies": [],
    "neededBy": [],
    "labels": [],
    "removal": "Recommended"
  },
  "com.xiaomi.joyose": {
    "list": "Oem",
    "description": "Joyose",
    "dependencies": [],
    "neededBy": [],
    "labels": [],
    "removal": "Expert"
  },
  "com.miui.securitycenter": {
    "list": "Oem",
    "description": "Security",
    "dependencies": [],
    "neededBy": [],
    "labels": [],
    "removal": "Unsafe"
  },
  "com.example.unlisted": {
    "list": "Misc",
    "description": "Not rated",
    "dependencies": [],
    "neededBy": [],
    "labels": [],
    "removal": "Unlisted"
  }
}
"#;

/// Imports with `args`, checks the profile loads, returns package -> level.
fn import(dir: &Path, list: &Path, args: &[&str]) -> BTreeMap<String, String> {
    let out = romkit()
        .args(["profile", "import-uad"])
        .arg(list)
        .args(args)
        .assert()
        .success();
    let p = dir.join("imported.yaml");
    std::fs::write(&p, &out.get_output().stdout).unwrap();
    romkit()
        .args(["profile", "check"])
        .arg(&p)
        .assert()
        .success();
    let shown = romkit()
        .args(["--json", "profile", "show"])
        .arg(&p)
        .assert()
        .success();
    let v: Value = serde_json::from_slice(&shown.get_output().stdout).unwrap();
    v["remove"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["selector"]["package"].as_str().unwrap().to_string(),
                r["level"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn map(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn import_uad_keeps_levels_and_filters() {
    let d = tempfile::tempdir().unwrap();
    let list = d.path().join("uad_lists.json");
    std::fs::write(&list, UAD).unwrap();
    // Default: recommended only; the launcher is protected and left out.
    assert_eq!(
        import(d.path(), &list, &[]),
        map(&[
            ("com.google.android.youtube", "recommended"),
            ("com.miui.analytics", "recommended"),
        ])
    );
    // Up to expert, OEM list only: UAD's levels become ours.
    assert_eq!(
        import(d.path(), &list, &["--max-level", "expert", "--list", "oem"]),
        map(&[
            ("com.miui.analytics", "recommended"),
            ("com.miui.hybrid", "advanced"),
            ("com.xiaomi.joyose", "expert"),
        ])
    );
    // Only what the sample ships (it has no YouTube).
    assert_eq!(
        import(
            d.path(),
            &list,
            &[
                "--max-level",
                "unsafe",
                "--list",
                "Oem,Google",
                "--present-in",
                sample().to_str().unwrap(),
            ]
        ),
        map(&[
            ("com.miui.analytics", "recommended"),
            ("com.miui.hybrid", "advanced"),
            ("com.xiaomi.joyose", "expert"),
        ])
    );
    // The reason is the description's first sentence, with who needs it.
    let out = romkit()
        .args(["profile", "import-uad", "--max-level", "advanced"])
        .arg(&list)
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(
        text.contains("reason: \"UAD Oem: Xiaomi analytics.\""),
        "{text}"
    );
    assert!(text.contains("(needed by com.miui.player)"), "{text}");
    assert!(text.contains("max_level: advanced"), "{text}");
    romkit()
        .args(["profile", "import-uad", "--max-level", "risky"])
        .arg(&list)
        .assert()
        .code(2);
}

#[test]
fn malformed_uad_lists_exit_3_naming_the_position() {
    let d = tempfile::tempdir().unwrap();
    for (name, text, at) in [
        (
            "type.json",
            "{\n  \"com.a\": {\"list\": \"Oem\",\n    \"removal\": [1]}\n}\n",
            "line 3 column",
        ),
        (
            "cut.json",
            "{\n  \"com.a\": {\"list\": \"Oem\",\n",
            "line 3 column",
        ),
        ("array.json", "[{\"id\": \"com.a\"}]\n", "line 1 column"),
    ] {
        let p = d.path().join(name);
        std::fs::write(&p, text).unwrap();
        let out = romkit()
            .args(["profile", "import-uad"])
            .arg(&p)
            .assert()
            .code(3);
        let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(err.contains(name), "{name}: {err}");
        assert!(err.contains(at), "{name}: wanted {at:?} in {err}");
    }
    romkit()
        .args(["profile", "import-uad"])
        .arg(d.path().join("missing.json"))
        .assert()
        .code(4);
}
