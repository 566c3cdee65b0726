//! Profile files: schema, loading, `extends` resolution and validation.
//!
//! A profile is YAML (GUIDE.md §8). Parsing is strict: unknown keys, bad
//! levels and malformed rules are errors naming the file, line and column.
//! `extends` names other profiles — a sibling `NAME.yaml` of the profile
//! that extends it, then `$ROMKIT_PROFILES/NAME.yaml`, then the profiles
//! shipped inside romkit — or gives a path. Parents apply first, in order;
//! `keep` always wins over `remove`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

/// Largest profile file read.
pub const MAX_PROFILE_BYTES: u64 = 1 << 20;
/// Deepest `extends` chain.
pub const MAX_EXTENDS_DEPTH: usize = 16;

/// The profiles shipped with romkit: (name, YAML).
pub const SHIPPED: [(&str, &str); 3] = [
    ("minimal", include_str!("../../profiles/minimal.yaml")),
    ("privacy", include_str!("../../profiles/privacy.yaml")),
    ("xiaomi-eu", include_str!("../../profiles/xiaomi-eu.yaml")),
];

/// How risky a removal is. Ordered: recommended < advanced < expert < unsafe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Safe on every build.
    #[default]
    Recommended,
    /// Safe, but users may miss the feature.
    Advanced,
    /// Breaks features some users rely on.
    Expert,
    /// Can break the system.
    Unsafe,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Recommended => "recommended",
            Level::Advanced => "advanced",
            Level::Expert => "expert",
            Level::Unsafe => "unsafe",
        })
    }
}

/// What a rule selects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Selector {
    /// Every app with this package name, wherever it lives.
    Package(String),
    /// An app folder, a file or a folder, by device path (`product/app/X`).
    Path(String),
    /// Device paths matching a glob: `*` and `?` within a component, `**`
    /// for any number of components.
    Glob(String),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Package(p) => write!(f, "package {p}"),
            Selector::Path(p) => write!(f, "path {p}"),
            Selector::Glob(p) => write!(f, "glob {p}"),
        }
    }
}

/// Where something was written: file, line, column.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Origin {
    /// The profile file (or `builtin:NAME`).
    pub file: String,
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A region a rule can be limited to: the region letters of the version code
/// (`…CNXM` China, `…MIXM` Global, `…EUXM` EEA) or `ro.miui.region`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Region {
    /// Mainland China (`CN`).
    China,
    /// Every build that is not a China build.
    International,
    /// Global (`MI`).
    Global,
    /// European Economic Area (`EU`).
    Eea,
    /// India (`IN`).
    India,
    /// Russia (`RU`).
    Russia,
    /// Turkey (`TR`).
    Turkey,
    /// Indonesia (`ID`).
    Indonesia,
    /// Taiwan (`TW`).
    Taiwan,
    /// Japan (`JP`).
    Japan,
    /// South Korea (`KR`).
    Korea,
}

impl Region {
    /// Every region, in schema order.
    pub const ALL: [Region; 11] = [
        Region::China,
        Region::International,
        Region::Global,
        Region::Eea,
        Region::India,
        Region::Russia,
        Region::Turkey,
        Region::Indonesia,
        Region::Taiwan,
        Region::Japan,
        Region::Korea,
    ];

    /// The name used in profiles.
    pub fn name(self) -> &'static str {
        match self {
            Region::China => "china",
            Region::International => "international",
            Region::Global => "global",
            Region::Eea => "eea",
            Region::India => "india",
            Region::Russia => "russia",
            Region::Turkey => "turkey",
            Region::Indonesia => "indonesia",
            Region::Taiwan => "taiwan",
            Region::Japan => "japan",
            Region::Korea => "korea",
        }
    }

    /// Does a build of two-letter region `code` (`CN`, `MI`, `EU`…) belong here?
    pub fn covers(self, code: &str) -> bool {
        match self {
            Region::China => code == "CN",
            Region::International => code != "CN",
            Region::Global => code == "MI",
            Region::Eea => code == "EU",
            Region::India => code == "IN",
            Region::Russia => code == "RU",
            Region::Turkey => code == "TR",
            Region::Indonesia => code == "ID",
            Region::Taiwan => code == "TW",
            Region::Japan => code == "JP",
            Region::Korea => code == "KR",
        }
    }
}

/// An OS release a rule can be limited to, decoded from the version code
/// (`V14.…` MIUI 14, `V816.…` and `OS1.…` HyperOS 1, `OS2.…` HyperOS 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    /// MIUI 14.
    Miui14,
    /// HyperOS 1.
    Hyperos1,
    /// HyperOS 2.
    Hyperos2,
    /// HyperOS 3.
    Hyperos3,
}

impl Os {
    /// Every release, in schema order.
    pub const ALL: [Os; 4] = [Os::Miui14, Os::Hyperos1, Os::Hyperos2, Os::Hyperos3];

    /// The name used in profiles.
    pub fn name(self) -> &'static str {
        match self {
            Os::Miui14 => "miui14",
            Os::Hyperos1 => "hyperos1",
            Os::Hyperos2 => "hyperos2",
            Os::Hyperos3 => "hyperos3",
        }
    }

    /// The release of a decoded version code, when it is one of these.
    pub fn of(v: &crate::rom::version::VersionCode) -> Option<Os> {
        let major = v.release.split('.').next().unwrap_or("");
        match (v.os, major) {
            ("MIUI", "14") => Some(Os::Miui14),
            ("MIUI", "816") | ("HyperOS", "1") => Some(Os::Hyperos1),
            ("MIUI", "817") | ("HyperOS", "2") => Some(Os::Hyperos2),
            ("MIUI", "818") | ("HyperOS", "3") => Some(Os::Hyperos3),
            _ => None,
        }
    }
}

/// When a rule applies: every listed key must hold (a key that is absent
/// holds always; a list holds when the input is any of its entries).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Regions the rule is for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub region: Vec<Region>,
    /// OS releases the rule is for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub os: Vec<Os>,
}

impl Condition {
    /// Whether the condition limits anything.
    pub fn is_empty(&self) -> bool {
        self.region.is_empty() && self.os.is_empty()
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.region.is_empty() {
            let r: Vec<&str> = self.region.iter().map(|r| r.name()).collect();
            parts.push(format!("region {}", r.join("|")));
        }
        if !self.os.is_empty() {
            let o: Vec<&str> = self.os.iter().map(|o| o.name()).collect();
            parts.push(format!("os {}", o.join("|")));
        }
        f.write_str(&parts.join(", "))
    }
}

/// A removal rule after loading.
#[derive(Clone, Debug, Serialize)]
pub struct Rule {
    /// What it selects.
    pub selector: Selector,
    /// Its safety level.
    pub level: Level,
    /// Why it goes.
    pub reason: Option<String>,
    /// The regions and releases it is limited to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    /// Not every build it applies to has what it selects: matching nothing
    /// is no `--strict` error.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// Packages a glob rule never removes, wherever they are.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
    /// The profile that declared it.
    pub profile: String,
    /// Where.
    pub origin: Origin,
}

/// A keep rule after loading.
#[derive(Clone, Debug, Serialize)]
pub struct Keep {
    /// What it protects.
    pub selector: Selector,
    /// Why.
    pub reason: Option<String>,
    /// The profile that declared it.
    pub profile: String,
    /// Where.
    pub origin: Origin,
}

/// build.prop edits of one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PropEdits {
    /// Properties to set (added when absent).
    pub set: BTreeMap<String, String>,
    /// Properties to delete.
    pub delete: Vec<String>,
}

/// A profile with its `extends` resolved.
#[derive(Clone, Debug, Serialize)]
pub struct Profile {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// The file it came from (or `builtin:NAME`).
    pub source: String,
    /// SHA-256 of the file, and of every file it extends, in load order.
    pub sha256: String,
    /// The profiles it extends, transitively, in application order.
    pub extends: Vec<String>,
    /// Rules above this level are not applied.
    pub max_level: Level,
    /// Removal rules, parents' first.
    pub remove: Vec<Rule>,
    /// Keep rules from every profile in the chain.
    pub keep: Vec<Keep>,
    /// build.prop edits by partition, merged.
    pub props: BTreeMap<String, PropEdits>,
}

// ---- the file schema ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProfile {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    extends: Vec<Spanned<String>>,
    #[serde(default)]
    max_level: Option<Level>,
    #[serde(default)]
    remove: Vec<Spanned<FileRule>>,
    #[serde(default)]
    keep: Vec<Spanned<FileRule>>,
    #[serde(default)]
    props: BTreeMap<String, Spanned<FileProps>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    #[serde(default)]
    package: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    glob: Option<String>,
    #[serde(default)]
    level: Option<Level>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    when: Option<Spanned<Condition>>,
    #[serde(default)]
    optional: Option<bool>,
    #[serde(default)]
    except: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProps {
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    delete: Vec<String>,
}

/// A profile error: where and what.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ProfileError {
    /// `file` or `file:line:column`.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

fn err_at(o: &Origin, message: impl Into<String>) -> ProfileError {
    ProfileError {
        location: o.to_string(),
        message: message.into(),
    }
}

fn origin(file: &str, loc: serde_saphyr::Location) -> Origin {
    Origin {
        file: file.to_string(),
        line: loc.line(),
        column: loc.column(),
    }
}

/// Where a profile's text came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProfileSource {
    /// A file on disk.
    File(PathBuf),
    /// A shipped profile.
    Builtin(&'static str),
    /// Text held in memory, under a label for messages. Like a shipped
    /// profile, it may extend shipped profiles only: it has no folder to
    /// look for siblings in.
    Text {
        /// Shown as the file in messages.
        label: String,
        /// The YAML.
        text: String,
    },
}

impl ProfileSource {
    fn label(&self) -> String {
        match self {
            ProfileSource::File(p) => p.display().to_string(),
            ProfileSource::Builtin(n) => format!("builtin:{n}"),
            ProfileSource::Text { label, .. } => label.clone(),
        }
    }

    fn text(&self) -> Result<String, ProfileError> {
        match self {
            ProfileSource::Text { text, .. } => {
                if text.len() as u64 > MAX_PROFILE_BYTES {
                    return Err(ProfileError {
                        location: self.label(),
                        message: format!(
                            "{} bytes; a profile may be at most {MAX_PROFILE_BYTES}",
                            text.len()
                        ),
                    });
                }
                Ok(text.clone())
            }
            ProfileSource::Builtin(n) => SHIPPED
                .iter()
                .find(|(name, _)| name == n)
                .map(|(_, t)| t.to_string())
                .ok_or_else(|| ProfileError {
                    location: self.label(),
                    message: "no such shipped profile".into(),
                }),
            ProfileSource::File(p) => {
                let fail = |m: String| ProfileError {
                    location: p.display().to_string(),
                    message: m,
                };
                let md = std::fs::metadata(p).map_err(|e| fail(e.to_string()))?;
                if !md.is_file() {
                    return Err(fail("not a regular file".into()));
                }
                if md.len() > MAX_PROFILE_BYTES {
                    return Err(fail(format!(
                        "{} bytes; a profile may be at most {MAX_PROFILE_BYTES}",
                        md.len()
                    )));
                }
                let bytes = std::fs::read(p).map_err(|e| fail(e.to_string()))?;
                String::from_utf8(bytes).map_err(|e| {
                    fail(format!(
                        "not UTF-8 (byte offset {})",
                        e.utf8_error().valid_up_to()
                    ))
                })
            }
        }
    }
}

/// Finds a profile by name or path. A NAME (no `/`, no `.yaml`) is looked up
/// as `DIR/NAME.yaml` for each of `dirs`, then `$ROMKIT_PROFILES/NAME.yaml`,
/// then among the shipped profiles.
pub fn find(name: &str, dirs: &[PathBuf]) -> Option<ProfileSource> {
    let is_path = name.contains('/') || name.ends_with(".yaml") || name.ends_with(".yml");
    if is_path {
        return Some(ProfileSource::File(PathBuf::from(name)));
    }
    if !valid_name(name) {
        return None;
    }
    let mut search: Vec<PathBuf> = dirs.to_vec();
    if let Some(env) = std::env::var_os("ROMKIT_PROFILES") {
        search.push(PathBuf::from(env));
    }
    for d in search {
        let p = d.join(format!("{name}.yaml"));
        if p.is_file() {
            return Some(ProfileSource::File(p));
        }
    }
    SHIPPED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, _)| ProfileSource::Builtin(n))
}

/// Whether `name` is a valid profile name: letters, digits, `-`, `_`, `.`
/// (not first), at most 64.
pub fn valid_profile_name(name: &str) -> bool {
    valid_name(name)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.')
}

fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_reader_input_bytes = Some(MAX_PROFILE_BYTES as usize);
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_depth = 32;
    budget.max_nodes = 100_000;
    budget.max_events = 200_000;
    budget.max_documents = 1;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// Checks a package name: Java-package-like segments.
pub(crate) fn valid_package(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 255
        && p.split('.').all(|seg| {
            !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

/// Checks a device path or glob: relative, no `.`/`..` components, no empty
/// components, printable.
fn check_path(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("is empty".into());
    }
    if p.starts_with('/') {
        return Err(format!(
            "{p:?} is absolute; write device paths without the leading / (e.g. product/app/X)"
        ));
    }
    if p.bytes().any(|b| b.is_ascii_control()) {
        return Err(format!("{p:?} contains control characters"));
    }
    for c in p.trim_end_matches('/').split('/') {
        match c {
            "" => return Err(format!("{p:?} has an empty path component")),
            "." | ".." => {
                return Err(format!(
                    "{p:?} contains {c:?}; paths may not leave their partition"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks a property name.
fn valid_prop(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 256
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'@'))
}

fn selector(r: &FileRule, at: &Origin) -> Result<Selector, ProfileError> {
    let mut set = Vec::new();
    if let Some(p) = &r.package {
        set.push(Selector::Package(p.clone()));
    }
    if let Some(p) = &r.path {
        set.push(Selector::Path(p.trim_end_matches('/').to_string()));
    }
    if let Some(p) = &r.glob {
        set.push(Selector::Glob(p.trim_end_matches('/').to_string()));
    }
    if set.len() != 1 {
        return Err(err_at(
            at,
            format!(
                "a rule needs exactly one of package, path or glob (found {})",
                set.len()
            ),
        ));
    }
    let s = set.pop().unwrap_or(Selector::Package(String::new()));
    match &s {
        Selector::Package(p) if !valid_package(p) => {
            return Err(err_at(at, format!("{p:?} is not a valid package name")));
        }
        Selector::Path(p) | Selector::Glob(p) => {
            check_path(p).map_err(|m| err_at(at, format!("path {m}")))?;
        }
        _ => {}
    }
    Ok(s)
}

/// One parsed (unresolved) profile file.
struct Parsed {
    name: String,
    description: Option<String>,
    extends: Vec<(String, Origin)>,
    max_level: Option<Level>,
    remove: Vec<Rule>,
    keep: Vec<Keep>,
    props: BTreeMap<String, PropEdits>,
}

fn parse(text: &str, label: &str) -> Result<Parsed, ProfileError> {
    let file: FileProfile =
        serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| {
            let location = match e.location() {
                Some(l) => format!("{label}:{}:{}", l.line(), l.column()),
                None => label.to_string(),
            };
            // The crate's message may carry a rendered snippet; the first
            // line is the message.
            let msg = e.to_string();
            let mut first = msg.lines().next().unwrap_or("invalid YAML");
            first = first.strip_prefix("error: ").unwrap_or(first);
            // Drop the crate's own "line L column C: " (the location is ours).
            if first.starts_with("line ")
                && let Some((_, rest)) = first.split_once(": ")
            {
                first = rest;
            }
            let first = first.to_string();
            ProfileError {
                location,
                message: first,
            }
        })?;
    let name_at = origin(label, file.name.referenced);
    if !valid_name(&file.name.value) {
        return Err(err_at(
            &name_at,
            format!(
                "name {:?}: use letters, digits, '-', '_' or '.' (at most 64)",
                file.name.value
            ),
        ));
    }
    let name = file.name.value;
    let mut remove = Vec::new();
    for r in file.remove {
        let at = origin(label, r.referenced);
        let sel = selector(&r.value, &at)?;
        let when = match &r.value.when {
            Some(w) if w.value.is_empty() => {
                return Err(err_at(
                    &origin(label, w.referenced),
                    "an empty when: name a region or an os",
                ));
            }
            Some(w) => Some(w.value.clone()),
            None => None,
        };
        let mut except = Vec::new();
        if let Some(e) = &r.value.except {
            let e_at = origin(label, e.referenced);
            if !matches!(sel, Selector::Glob(_)) {
                return Err(err_at(&e_at, "except is for glob rules only"));
            }
            for p in &e.value {
                if !valid_package(p) {
                    return Err(err_at(
                        &e_at,
                        format!("except: {p:?} is not a valid package name"),
                    ));
                }
            }
            except = e.value.clone();
        }
        remove.push(Rule {
            selector: sel,
            level: r.value.level.unwrap_or_default(),
            reason: r.value.reason.clone(),
            when,
            optional: r.value.optional.unwrap_or(false),
            except,
            profile: name.clone(),
            origin: at,
        });
    }
    let mut keep = Vec::new();
    for k in file.keep {
        let at = origin(label, k.referenced);
        if k.value.level.is_some() {
            return Err(err_at(&at, "a keep rule has no level"));
        }
        if k.value.when.is_some() || k.value.optional.is_some() || k.value.except.is_some() {
            return Err(err_at(
                &at,
                "a keep rule has no when, optional or except: it holds everywhere",
            ));
        }
        keep.push(Keep {
            selector: selector(&k.value, &at)?,
            reason: k.value.reason.clone(),
            profile: name.clone(),
            origin: at,
        });
    }
    let mut props = BTreeMap::new();
    for (part, edits) in file.props {
        let at = origin(label, edits.referenced);
        if !valid_name(&part) {
            return Err(err_at(&at, format!("{part:?} is not a partition name")));
        }
        for (k, v) in &edits.value.set {
            if !valid_prop(k) {
                return Err(err_at(&at, format!("{k:?} is not a property name")));
            }
            if v.contains(['\n', '\r', '\0']) {
                return Err(err_at(
                    &at,
                    format!("the value of {k} contains a line break"),
                ));
            }
        }
        for k in &edits.value.delete {
            if !valid_prop(k) {
                return Err(err_at(&at, format!("{k:?} is not a property name")));
            }
            if edits.value.set.contains_key(k) {
                return Err(err_at(&at, format!("{k} is both set and deleted")));
            }
        }
        props.insert(
            part,
            PropEdits {
                set: edits.value.set,
                delete: edits.value.delete,
            },
        );
    }
    Ok(Parsed {
        name,
        description: file.description,
        extends: file
            .extends
            .into_iter()
            .map(|e| (e.value, origin(label, e.referenced)))
            .collect(),
        max_level: file.max_level,
        remove,
        keep,
        props,
    })
}

/// Loads and resolves a profile: by name (see [`find`]) or by path.
pub fn load(name_or_path: &str) -> Result<Profile, ProfileError> {
    let cwd_profiles = PathBuf::from("profiles");
    let src = find(name_or_path, &[cwd_profiles]).ok_or_else(|| ProfileError {
        location: name_or_path.to_string(),
        message: format!(
            "no profile named {name_or_path:?} (looked in ./profiles, $ROMKIT_PROFILES and the shipped profiles: {})",
            SHIPPED.map(|s| s.0).join(", ")
        ),
    })?;
    load_source(&src)
}

/// Parses and resolves profile text held in memory, never touching the
/// filesystem: `extends` may name shipped profiles only. `label` stands for
/// the file in messages.
pub fn parse_str(text: &str, label: &str) -> Result<Profile, ProfileError> {
    load_source(&ProfileSource::Text {
        label: label.to_string(),
        text: text.to_string(),
    })
}

/// Loads and resolves the profile at `src`.
pub fn load_source(src: &ProfileSource) -> Result<Profile, ProfileError> {
    let mut chain: Vec<String> = Vec::new();
    let mut hasher = sha2::Sha256::new();
    let mut extends = Vec::new();
    let mut out = resolve(src, &mut chain, &mut hasher, &mut extends)?;
    use sha2::Digest;
    out.sha256 = crate::util::hex(&hasher.finalize());
    out.extends = extends;
    Ok(out)
}

fn identity(src: &ProfileSource) -> String {
    match src {
        ProfileSource::File(p) => std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.clone())
            .display()
            .to_string(),
        ProfileSource::Builtin(n) => format!("builtin:{n}"),
        ProfileSource::Text { label, .. } => format!("text:{label}"),
    }
}

use sha2::Digest as _;

fn resolve(
    src: &ProfileSource,
    chain: &mut Vec<String>,
    hasher: &mut sha2::Sha256,
    order: &mut Vec<String>,
) -> Result<Profile, ProfileError> {
    let label = src.label();
    let text = src.text()?;
    hasher.update(text.as_bytes());
    let parsed = parse(&text, &label)?;
    chain.push(identity(src));
    let dir = match src {
        ProfileSource::File(p) => p
            .parent()
            .map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".").to_path_buf()
                } else {
                    d.to_path_buf()
                }
            })
            .into_iter()
            .collect(),
        ProfileSource::Builtin(_) | ProfileSource::Text { .. } => Vec::new(),
    };
    let mut merged = Profile {
        name: parsed.name.clone(),
        description: parsed.description.clone(),
        source: label.clone(),
        sha256: String::new(),
        extends: Vec::new(),
        max_level: Level::Recommended,
        remove: Vec::new(),
        keep: Vec::new(),
        props: BTreeMap::new(),
    };
    let mut inherited_level = None;
    for (parent, at) in &parsed.extends {
        let psrc = match src {
            // A shipped or in-memory profile extends shipped profiles only.
            ProfileSource::Builtin(_) | ProfileSource::Text { .. } => SHIPPED
                .iter()
                .find(|(n, _)| n == parent)
                .map(|(n, _)| ProfileSource::Builtin(n)),
            ProfileSource::File(_) => {
                let rel = if parent.contains('/') || parent.ends_with(".yaml") {
                    dir.first().map(|d| d.join(parent)).map(ProfileSource::File)
                } else {
                    None
                };
                rel.or_else(|| find(parent, &dir))
            }
        }
        .ok_or_else(|| err_at(at, format!("extends {parent:?}, which cannot be found")))?;
        if let ProfileSource::File(p) = &psrc
            && !p.is_file()
        {
            return Err(err_at(
                at,
                format!("extends {}, which does not exist", p.display()),
            ));
        }
        let id = identity(&psrc);
        if let Some(pos) = chain.iter().position(|c| *c == id) {
            let mut cycle: Vec<String> = chain[pos..].to_vec();
            cycle.push(id);
            return Err(err_at(
                at,
                format!("extends {parent:?}, a cycle: {}", cycle.join(" -> ")),
            ));
        }
        if chain.len() >= MAX_EXTENDS_DEPTH {
            return Err(err_at(
                at,
                format!("extends chain deeper than {MAX_EXTENDS_DEPTH}"),
            ));
        }
        let p = resolve(&psrc, chain, hasher, order)?;
        if !order.contains(&p.name) {
            order.push(p.name.clone());
        }
        inherited_level = Some(inherited_level.map_or(p.max_level, |l: Level| l.max(p.max_level)));
        merged.remove.extend(p.remove);
        merged.keep.extend(p.keep);
        for (part, edits) in p.props {
            merge_props(merged.props.entry(part).or_default(), edits);
        }
    }
    chain.pop();
    merged.max_level = parsed
        .max_level
        .or(inherited_level)
        .unwrap_or(Level::Recommended);
    merged.remove.extend(parsed.remove);
    merged.keep.extend(parsed.keep);
    for (part, edits) in parsed.props {
        merge_props(merged.props.entry(part).or_default(), edits);
    }
    Ok(merged)
}

/// Applies a child's prop edits over a parent's: the later word wins.
fn merge_props(into: &mut PropEdits, child: PropEdits) {
    for (k, v) in child.set {
        into.delete.retain(|d| *d != k);
        into.set.insert(k, v);
    }
    for k in child.delete {
        into.set.remove(&k);
        if !into.delete.contains(&k) {
            into.delete.push(k);
        }
    }
}
