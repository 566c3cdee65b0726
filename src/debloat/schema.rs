//! A JSON Schema (draft-07, what yaml-language-server reads) for profile
//! files, built from the same enums the loader parses so the two cannot
//! drift apart. `romkit profile schema` prints it; a test validates the
//! shipped profiles against it.
//!
//! The schema describes the file's shape. The loader checks more than a
//! schema can say (package name syntax, paths that leave their partition,
//! `extends` cycles, the protected set).

use serde_json::{Value, json};

use super::profile::{Level, Os, Region};

/// The `$id` of the schema.
pub const SCHEMA_ID: &str = "https://romkit.invalid/schema/profile.json";

fn levels() -> Vec<String> {
    [
        Level::Recommended,
        Level::Advanced,
        Level::Expert,
        Level::Unsafe,
    ]
    .iter()
    .map(|l| l.to_string())
    .collect()
}

/// The JSON Schema of a profile file.
pub fn profile_schema() -> Value {
    let regions: Vec<&str> = Region::ALL.iter().map(|r| r.name()).collect();
    let oses: Vec<&str> = Os::ALL.iter().map(|o| o.name()).collect();
    let selector = |extra: Value| {
        let mut props = json!({
            "package": {
                "type": "string",
                "description": "Every app with this package name, wherever it lives.",
                "pattern": "^[A-Za-z0-9_]+(\\.[A-Za-z0-9_]+)*$"
            },
            "path": {
                "type": "string",
                "description": "An app folder, a file or a folder, by device path (product/app/X)."
            },
            "glob": {
                "type": "string",
                "description": "Device paths: * and ? within a component, ** for any number of components."
            },
            "reason": {"type": "string", "description": "Why, in one line."}
        });
        if let (Some(p), Value::Object(e)) = (props.as_object_mut(), extra) {
            p.extend(e);
        }
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": props,
            "oneOf": [
                {"required": ["package"]},
                {"required": ["path"]},
                {"required": ["glob"]}
            ]
        })
    };
    let remove_extra = json!({
        "level": {"$ref": "#/definitions/level"},
        "when": {
            "type": "object",
            "description": "Apply the rule only to these regions and releases (decoded from the version code, else ro.miui.region).",
            "additionalProperties": false,
            "minProperties": 1,
            "properties": {
                "region": {"type": "array", "minItems": 1, "items": {"enum": regions}},
                "os": {"type": "array", "minItems": 1, "items": {"enum": oses}}
            }
        },
        "optional": {
            "type": "boolean",
            "description": "Some builds it applies to lack what it selects: matching nothing is no --strict error."
        },
        "except": {
            "type": "array",
            "description": "Packages a glob rule never removes.",
            "items": {"type": "string", "pattern": "^[A-Za-z0-9_]+(\\.[A-Za-z0-9_]+)*$"}
        }
    });
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_ID,
        "title": "romkit debloat profile",
        "type": "object",
        "additionalProperties": false,
        "required": ["name"],
        "definitions": {
            "level": {"enum": levels()},
            "remove": selector(remove_extra),
            "keep": selector(json!({}))
        },
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$"},
            "description": {"type": "string"},
            "extends": {
                "type": "array",
                "description": "Profiles applied first: a name (profiles/NAME.yaml) or a path.",
                "items": {"type": "string"}
            },
            "max_level": {"$ref": "#/definitions/level"},
            "remove": {"type": "array", "items": {"$ref": "#/definitions/remove"}},
            "keep": {"type": "array", "items": {"$ref": "#/definitions/keep"}},
            "props": {
                "type": "object",
                "description": "build.prop edits by partition.",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "set": {"type": "object", "additionalProperties": {"type": "string"}},
                        "delete": {"type": "array", "items": {"type": "string"}}
                    }
                }
            }
        }
    })
}
