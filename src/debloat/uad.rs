//! Import of Universal Android Debloater lists (`uad_lists.json`, as
//! UAD-ng ships it: an object from package name to `list`, `description`,
//! `removal` level, `dependencies`, `neededBy`, `labels`) into a profile.
//!
//! The user brings the file: romkit ships none (the lists are GPL). Fields
//! romkit has no use for are ignored; a file that is not such an object is
//! an error naming line and column.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use super::profile::{Level, valid_package};
use super::protected_package;

/// Largest list file read (the full UAD-ng list is about 1 MiB).
pub const MAX_UAD_BYTES: u64 = 64 << 20;

/// One package of a UAD list.
#[derive(Clone, Debug, Deserialize)]
pub struct UadEntry {
    /// The list it belongs to: `Oem`, `Google`, `Aosp`, `Carrier`, `Misc`, `Pending`.
    #[serde(default)]
    pub list: String,
    /// What it is and why it may go.
    #[serde(default)]
    pub description: String,
    /// `Recommended`, `Advanced`, `Expert`, `Unsafe` (anything else: `Unlisted`).
    #[serde(default)]
    pub removal: String,
    /// Packages it depends on.
    #[serde(default)]
    pub dependencies: Vec<String>,
    /// Packages that need it.
    #[serde(default, rename = "neededBy")]
    pub needed_by: Vec<String>,
}

/// Reads and parses a UAD list file: at most [`MAX_UAD_BYTES`], UTF-8,
/// errors naming the file and the position.
pub fn read_file(path: &std::path::Path) -> crate::Result<UadList> {
    use crate::error::Error;
    let md = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if md.len() > MAX_UAD_BYTES {
        return Err(Error::invalid(
            path,
            format!(
                "{} bytes; a UAD list may be at most {MAX_UAD_BYTES}",
                md.len()
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::invalid(
            path,
            format!("not UTF-8 (byte offset {})", e.utf8_error().valid_up_to()),
        )
    })?;
    parse(&text).map_err(|m| Error::invalid(path, m.to_string()))
}

/// A parsed UAD list, by package.
pub type UadList = BTreeMap<String, UadEntry>;

/// A UAD list file that does not parse, with the position.
#[derive(Debug, thiserror::Error)]
#[error(
    "line {line} column {column}: not a UAD list (an object of package -> {{list, description, removal, ...}}): {what}"
)]
pub struct UadError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What the JSON reader found wrong.
    pub what: String,
}

/// Parses a list. The error names line and column.
pub fn parse(text: &str) -> Result<UadList, UadError> {
    serde_json::from_str(text).map_err(|e| {
        // serde_json ends its message with the position; ours leads with it.
        let msg = e.to_string();
        let what = msg.rsplit_once(" at line ").map_or(msg.as_str(), |m| m.0);
        UadError {
            line: e.line(),
            column: e.column(),
            what: what.to_string(),
        }
    })
}

/// Our level for a UAD removal level; `None` for `Unlisted` and others.
pub fn level(removal: &str) -> Option<Level> {
    match removal.to_ascii_lowercase().as_str() {
        "recommended" => Some(Level::Recommended),
        "advanced" => Some(Level::Advanced),
        "expert" => Some(Level::Expert),
        "unsafe" => Some(Level::Unsafe),
        _ => None,
    }
}

/// What to import.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Import rules up to this level; also the profile's `max_level`.
    pub max_level: Level,
    /// Only these lists (compared without case); empty for all.
    pub lists: Vec<String>,
    /// Only these packages (those present in a ROM); `None` for all.
    pub present: Option<Vec<String>>,
    /// The profile's name.
    pub name: String,
    /// Shown in the header comment.
    pub source: String,
}

/// What an import made.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The profile, as YAML.
    pub yaml: String,
    /// Rules written.
    pub rules: usize,
    /// Packages left out because romkit protects them.
    pub protected: Vec<String>,
    /// Packages left out because their name is not a package name.
    pub invalid: Vec<String>,
}

/// The first sentence of a description, on one line, at most 160 characters.
fn one_line(d: &str) -> String {
    let flat: String = d.split_whitespace().collect::<Vec<_>>().join(" ");
    let first = match flat.find(". ") {
        Some(i) => &flat[..=i],
        None => flat.as_str(),
    };
    if first.chars().count() > 160 {
        let cut: String = first.chars().take(157).collect();
        format!("{cut}...")
    } else {
        first.to_string()
    }
}

/// Turns a list into a profile: one `package` rule per entry at its UAD
/// level, up to `max_level`; protected packages are left out.
pub fn import(list: &UadList, opts: &ImportOptions) -> Imported {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut body = String::new();
    let mut rules = 0;
    let mut protected = Vec::new();
    let mut invalid = Vec::new();
    for (pkg, e) in list {
        if !opts.lists.is_empty() && !opts.lists.iter().any(|l| l.eq_ignore_ascii_case(&e.list)) {
            continue;
        }
        let Some(lvl) = level(&e.removal) else {
            continue;
        };
        if lvl > opts.max_level {
            continue;
        }
        if let Some(present) = &opts.present
            && !present.iter().any(|p| p == pkg)
        {
            continue;
        }
        if !valid_package(pkg) {
            invalid.push(pkg.clone());
            continue;
        }
        if protected_package(pkg).is_some() {
            protected.push(pkg.clone());
            continue;
        }
        let mut reason = format!("UAD {}: {}", e.list, one_line(&e.description));
        if !e.needed_by.is_empty() {
            let _ = write!(reason, " (needed by {})", e.needed_by.join(", "));
        }
        let _ = writeln!(body, "  - package: {}", q(pkg));
        let _ = writeln!(body, "    level: {lvl}");
        let _ = writeln!(body, "    reason: {}", q(reason.trim()));
        rules += 1;
    }
    let mut yaml = String::new();
    let _ = writeln!(
        yaml,
        "# Imported from the Universal Android Debloater list {} by romkit profile import-uad.",
        opts.source
    );
    if !protected.is_empty() {
        let _ = writeln!(
            yaml,
            "# Left out, protected by romkit: {}",
            protected.join(", ")
        );
    }
    let _ = writeln!(yaml, "name: {}", q(&opts.name));
    let _ = writeln!(
        yaml,
        "description: {}",
        q(&format!(
            "Universal Android Debloater rules up to {}",
            opts.max_level
        ))
    );
    let _ = writeln!(yaml, "max_level: {}", opts.max_level);
    if rules == 0 {
        yaml.push_str("remove: []\n");
    } else {
        yaml.push_str("remove:\n");
        yaml.push_str(&body);
    }
    Imported {
        yaml,
        rules,
        protected,
        invalid,
    }
}
