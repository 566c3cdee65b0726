//! The manifest (GUIDE.md §9): what a build or an official package holds —
//! input identity, profile and resolved rules, partitions, every app, every
//! file, the build props and the outputs' hashes — as canonical JSON (sorted
//! keys, fixed order, two-space indent, trailing newline) with a YAML
//! rendering. `build` writes one beside every output; `inspect --manifest`
//! describes any package the same way, and [`diff`] compares two.
//!
//! Canonical means byte-stable: records are kept in a fixed order (package
//! order for partitions, listing order for apps, tree order for files) and
//! every object's keys are sorted when written, so the same content always
//! gives the same bytes, and `from_json(to_json(m))` writes them again.

pub mod diff;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The schema identifier of this version of the manifest.
pub const SCHEMA: &str = "romkit.manifest/1";

/// Why [`Manifest::from_json`] refuses a document.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Larger than [`MAX_MANIFEST_BYTES`].
    #[error("{0} bytes is larger than the {mib} MiB a manifest may be", mib = MAX_MANIFEST_BYTES >> 20)]
    TooLarge(u64),
    /// Not a JSON object with a `schema` field.
    #[error(
        "not a romkit manifest (expected a JSON object with \"schema\": \"{SCHEMA}\"){}",
        .0.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
    )]
    NotManifest(Option<serde_json::Error>),
    /// Not JSON at all.
    #[error("malformed JSON: {0}")]
    Json(serde_json::Error),
    /// Another schema.
    #[error("schema is {0}, expected \"{SCHEMA}\" (not a romkit manifest, or a newer one)")]
    Schema(String),
    /// No schema field.
    #[error("no \"schema\": not a romkit manifest ({SCHEMA})")]
    NoSchema,
    /// The records do not match the schema.
    #[error("malformed manifest: {0}")]
    Malformed(serde_json::Error),
}

/// Largest manifest [`Manifest::from_json`] accepts.
pub const MAX_MANIFEST_BYTES: u64 = 512 << 20;

/// The whole manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Every app of the input, kept or removed.
    #[serde(default)]
    pub apps: Vec<AppRecord>,
    /// `SOURCE_DATE_EPOCH` when the manifest was made, when it was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
    /// Every entry of every partition read as a file tree.
    #[serde(default)]
    pub files: Vec<FileRecord>,
    /// What was read.
    pub input: InputRecord,
    /// What was written.
    #[serde(default)]
    pub outputs: Vec<OutputRecord>,
    /// The partitions.
    #[serde(default)]
    pub partitions: Vec<PartitionRecord>,
    /// The debloat profile, for builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileRecord>,
    /// Every property of each partition's build.prop: partition → key → value.
    #[serde(default)]
    pub props: BTreeMap<String, BTreeMap<String, String>>,
    /// [`SCHEMA`].
    pub schema: String,
    /// The tool that wrote it.
    pub tool: ToolRecord,
}

/// The tool that wrote a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRecord {
    /// `romkit`.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// A decoded Xiaomi version code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// Android version its letter stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android: Option<String>,
    /// Carrier code (`XM`: open market).
    pub carrier: String,
    /// The code as found (`OS1.0.24.0.UMCCNXM`).
    pub code: String,
    /// Two-letter device code.
    pub device_code: String,
    /// `HyperOS` or `MIUI`.
    pub os: String,
    /// Two-letter region.
    pub region: String,
    /// Dotted release (`1.0.24.0`).
    pub release: String,
}

impl From<&crate::rom::VersionCode> for VersionRecord {
    fn from(v: &crate::rom::VersionCode) -> Self {
        VersionRecord {
            android: v.android.clone(),
            carrier: v.carrier.clone(),
            code: v.code.clone(),
            device_code: v.device_code.clone(),
            os: v.os.to_string(),
            region: v.region.clone(),
            release: v.release.clone(),
        }
    }
}

/// The input's identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRecord {
    /// Device codename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// File name (never the full path: manifests do not depend on where a
    /// package was stored).
    pub file: String,
    /// Build fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Package kind (`recovery-ota`, `fastboot-tgz`, `erofs-image`, `folder`…).
    pub kind: String,
    /// Region, from the version code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// SHA-256 of the file (absent for folders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// File size (0 for folders).
    pub size: u64,
    /// Decoded version code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<VersionRecord>,
    /// For a build from a previous build plus incremental packages: the
    /// base first, then every package applied in order (the last is this
    /// input). Empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<SourceRecord>,
}

/// One step of a build's source chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// File name.
    pub file: String,
    /// Package kind, as in [`InputRecord::kind`].
    pub kind: String,
    /// `base` or `applied`.
    pub role: String,
    /// SHA-256 of the file (absent for folders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// File size (0 for folders).
    pub size: u64,
}

impl SourceRecord {
    /// The record of `path` (opened as `rom`, when it is a package) in the
    /// role `role`.
    pub fn of(path: &Path, rom: Option<&crate::rom::Rom>, role: &str) -> Result<Self> {
        let r = input_record(path, rom)?;
        Ok(SourceRecord {
            file: r.file,
            kind: r.kind,
            role: role.into(),
            sha256: r.sha256,
            size: r.size,
        })
    }
}

/// One rule of the profile, resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRecord {
    /// `remove` or `keep`.
    pub action: String,
    /// 1-based index among the resolved profile's rules of that action.
    pub index: usize,
    /// Safety level (remove rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// `file:line:column`.
    pub origin: String,
    /// The profile that declared it.
    pub profile: String,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `package NAME`, `path PATH` or `glob PATTERN`.
    pub selector: String,
}

/// build.prop edits of one partition, as the profile asks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropEditsRecord {
    /// Keys deleted.
    #[serde(default)]
    pub delete: Vec<String>,
    /// Keys set.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
}

/// The debloat profile of a build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileRecord {
    /// Profiles it extends, in application order.
    #[serde(default)]
    pub extends: Vec<String>,
    /// Its `max_level`.
    pub max_level: String,
    /// Name.
    pub name: String,
    /// build.prop edits by partition.
    #[serde(default)]
    pub props: BTreeMap<String, PropEditsRecord>,
    /// Every rule after `extends`: removals first, then keeps.
    #[serde(default)]
    pub rules: Vec<RuleRecord>,
    /// SHA-256 of the profile file and every file it extends.
    pub sha256: String,
}

/// What a build did with a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionStatus {
    /// Copied from the input unchanged.
    Passthrough,
    /// The input's image edited in place: only the removed entries' blocks,
    /// their directories and replaced files changed.
    Edited,
    /// Rebuilt from an edited tree.
    Rebuilt,
    /// The input's vbmeta image with AVB verification disabled in its header
    /// flags (OTA and image-folder outputs).
    Patched,
    /// As found in the input (`inspect --manifest`).
    Source,
}

impl PartitionStatus {
    /// The name manifests use (`passthrough`, `edited`, `rebuilt`,
    /// `patched`, `source`).
    pub fn name(self) -> &'static str {
        match self {
            PartitionStatus::Passthrough => "passthrough",
            PartitionStatus::Edited => "edited",
            PartitionStatus::Rebuilt => "rebuilt",
            PartitionStatus::Patched => "patched",
            PartitionStatus::Source => "source",
        }
    }
}

/// One partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// `erofs`, `ext4`, or absent for raw images (boot, vbmeta…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<String>,
    /// Name.
    pub name: String,
    /// SHA-256 of the image.
    pub sha256: String,
    /// Image size.
    pub size: u64,
    /// What the build did with it.
    pub status: PartitionStatus,
    /// For an `edited` partition, the blocks that differ from the input's
    /// image (appended blocks included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_blocks: Option<u64>,
    /// For an `edited` partition that carried an AVB hashtree footer: the
    /// tree, FEC and root digest were recomputed, or the footer stripped
    /// (and why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avb_footer: Option<String>,
}

/// Kept or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppStatus {
    /// Still in the output.
    Kept,
    /// Removed by a rule.
    Removed,
}

/// The rule that removed an app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    /// 1-based index among the resolved profile's removal rules.
    pub index: usize,
    /// `file:line:column`.
    pub origin: String,
    /// The rule's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the rule selects.
    pub selector: String,
}

/// One app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    /// Why the base APK could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Package name (absent when the APK could not be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// Partition.
    pub partition: String,
    /// The app folder or loose APK (device path).
    pub path: String,
    /// Installed as privileged (`priv-app`).
    pub privileged: bool,
    /// The rule that removed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleRef>,
    /// SHA-256 of the base APK.
    pub sha256: String,
    /// SHA-256 of the first signer's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// Total size of the app's files.
    pub size: u64,
    /// Kept or removed.
    pub status: AppStatus,
    /// `versionCode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_code: Option<u64>,
    /// `versionName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_name: Option<String>,
}

impl AppRecord {
    /// The package name, or the path when the APK was unreadable.
    pub fn name(&self) -> &str {
        self.package.as_deref().unwrap_or(&self.path)
    }
}

/// Octal modes (`"100644"`), as people read them.
mod octal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{mode:06o}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let s = String::deserialize(d)?;
        u32::from_str_radix(&s, 8)
            .map_err(|_| serde::de::Error::custom(format!("mode {s:?} is not an octal number")))
    }
}

/// One entry of a partition's tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Capability mask from `security.capability`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<u64>,
    /// Group.
    pub gid: u32,
    /// `dir`, `file`, `symlink`, `chardev`, `blockdev`, `fifo`, `socket`.
    pub kind: String,
    /// SELinux label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Full mode with the type bits, octal.
    #[serde(with = "octal")]
    pub mode: u32,
    /// Partition.
    pub partition: String,
    /// Device path without the leading `/` (a partition's root is its
    /// name; the root of a system-as-root image is `/`).
    pub path: String,
    /// SHA-256 of the content (files) or the target (symlinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Size (files), target length (symlinks), 0 otherwise.
    pub size: u64,
    /// Symlink target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Owner.
    pub uid: u32,
}

/// One output file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// File name.
    pub path: String,
    /// SHA-256.
    pub sha256: String,
    /// Size.
    pub size: u64,
}

/// SHA-256 and size of a file, streamed.
pub fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    crate::util::hash::sha256_file(path).map(|(h, n)| (n, h))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Sorts every object's keys, whatever map type serde_json was built with.
fn sort_keys(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

/// Canonical JSON of any serializable value: sorted keys, two-space indent,
/// trailing newline.
pub fn canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain data (strings, integers, maps with string keys)
    // cannot fail.
    let v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    let mut out = serde_json::to_vec_pretty(&sort_keys(v)).unwrap_or_default();
    out.push(b'\n');
    out
}

/// The properties of build.prop text as Android loads them: a `ro.` key
/// keeps its first value, any other key its last.
pub fn props_map(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (k, v) in crate::debloat::plan::parse_props(text) {
        if k.starts_with("ro.") && m.contains_key(&k) {
            continue;
        }
        m.insert(k, v);
    }
    m
}

impl Manifest {
    /// An empty manifest for `input`, schema and tool filled in; `created`
    /// is absent until [`Manifest::created_at`] sets it.
    pub fn new(input: InputRecord) -> Self {
        let created = None;
        Manifest {
            apps: Vec::new(),
            created,
            files: Vec::new(),
            input,
            outputs: Vec::new(),
            partitions: Vec::new(),
            profile: None,
            props: BTreeMap::new(),
            schema: SCHEMA.to_string(),
            tool: ToolRecord {
                name: env!("CARGO_PKG_NAME").to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
        }
    }

    /// Records when the manifest was made (`SOURCE_DATE_EPOCH`, which
    /// callers read through [`crate::util::time::source_date_epoch`]).
    pub fn created_at(mut self, created: Option<i64>) -> Self {
        self.created = created;
        self
    }

    /// Records the resolved profile: its identity, every rule and the prop
    /// edits.
    pub fn set_profile(&mut self, p: &crate::debloat::Profile) {
        let mut rules: Vec<RuleRecord> = p
            .remove
            .iter()
            .enumerate()
            .map(|(i, r)| RuleRecord {
                action: "remove".into(),
                index: i + 1,
                level: Some(r.level.to_string()),
                origin: r.origin.to_string(),
                profile: r.profile.clone(),
                reason: r.reason.clone(),
                selector: r.selector.to_string(),
            })
            .collect();
        rules.extend(p.keep.iter().enumerate().map(|(i, k)| RuleRecord {
            action: "keep".into(),
            index: i + 1,
            level: None,
            origin: k.origin.to_string(),
            profile: k.profile.clone(),
            reason: k.reason.clone(),
            selector: k.selector.to_string(),
        }));
        self.profile = Some(ProfileRecord {
            extends: p.extends.clone(),
            max_level: p.max_level.to_string(),
            name: p.name.clone(),
            props: p
                .props
                .iter()
                .map(|(part, e)| {
                    (
                        part.clone(),
                        PropEditsRecord {
                            delete: e.delete.clone(),
                            set: e.set.clone(),
                        },
                    )
                })
                .collect(),
            rules,
            sha256: p.sha256.clone(),
        });
    }

    /// Records a partition (replacing an earlier record of the same name).
    pub fn add_partition(&mut self, r: PartitionRecord) {
        match self.partitions.iter_mut().find(|p| p.name == r.name) {
            Some(p) => *p = r,
            None => self.partitions.push(r),
        }
    }

    /// Records apps: removed when `plan` removes the app's folder (or a
    /// folder holding it), with the rule that did; kept otherwise.
    pub fn add_apps(&mut self, apps: &[crate::apps::App], plan: Option<&crate::debloat::Plan>) {
        for a in apps {
            let removal = plan.and_then(|p| {
                p.removed.iter().find(|r| {
                    r.partition == a.partition
                        && (r.path == a.path
                            || r.path == a.apk
                            || a.path
                                .strip_prefix(r.path.as_str())
                                .is_some_and(|rest| rest.starts_with('/')))
                })
            });
            let rule = removal.map(|r| RuleRef {
                index: r.rule,
                origin: r.origin.to_string(),
                reason: r.reason.clone(),
                selector: plan
                    .and_then(|p| p.rules.iter().find(|x| x.index == r.rule))
                    .map(|x| x.selector.to_string())
                    .unwrap_or_default(),
            });
            let id = a.identity.as_ref();
            self.apps.push(AppRecord {
                error: a.error.clone(),
                package: id.map(|i| i.package.clone()),
                partition: a.partition.clone(),
                path: a.path.clone(),
                privileged: a.privileged,
                status: if rule.is_some() {
                    AppStatus::Removed
                } else {
                    AppStatus::Kept
                },
                rule,
                sha256: a.sha256.clone(),
                signer: id.and_then(|i| i.signer.clone()),
                size: a.size,
                version_code: id.and_then(|i| i.version_code),
                version_name: id.and_then(|i| i.version_name.clone()),
            });
        }
    }

    /// Records every entry of a partition's tree (hashing every file) and
    /// the properties of its build.prop. Replaces what an earlier call
    /// recorded for the same partition.
    pub fn add_tree(
        &mut self,
        partition: &str,
        tree: &crate::fs::tree::Tree,
    ) -> std::io::Result<()> {
        self.add_tree_cached(partition, tree, &crate::fs::tree::HashCache::default())
    }

    /// [`Manifest::add_tree`], taking the hashes of contents already read
    /// (the base APKs identified) from `cache`.
    pub fn add_tree_cached(
        &mut self,
        partition: &str,
        tree: &crate::fs::tree::Tree,
        cache: &crate::fs::tree::HashCache,
    ) -> std::io::Result<()> {
        let prefix = crate::apps::mount_prefix(partition, tree);
        let records = tree.records_cached(cache)?;
        self.files.retain(|f| f.partition != partition);
        self.files.extend(records.into_iter().map(|r| FileRecord {
            capabilities: r.capabilities,
            gid: r.gid,
            kind: r.kind.to_string(),
            label: r.label,
            mode: r.mode,
            partition: partition.to_string(),
            path: device_path(&prefix, &r.path),
            sha256: r.sha256,
            size: r.size,
            target: r.target,
            uid: r.uid,
        }));
        self.props.remove(partition);
        for candidate in crate::debloat::plan::build_prop_candidates(partition) {
            let inner = candidate.strip_prefix(&prefix).unwrap_or(&candidate);
            let Ok(id) = tree.lookup(inner) else { continue };
            let crate::fs::tree::Kind::File(data) = &tree.inode(id).kind else {
                continue;
            };
            if data.size() > crate::debloat::plan::MAX_PROP_FILE {
                continue;
            }
            let mut buf = Vec::new();
            data.read(&mut buf)?;
            self.props.insert(
                partition.to_string(),
                props_map(&String::from_utf8_lossy(&buf)),
            );
            break;
        }
        Ok(())
    }

    /// Records an output file: its name, size and SHA-256.
    pub fn add_output(&mut self, path: &Path) -> std::io::Result<()> {
        let (size, sha256) = hash_file(path)?;
        self.add_output_hashed(path, size, sha256);
        Ok(())
    }

    /// Records an output file whose size and SHA-256 (lower-case hex) the
    /// writer took as it wrote it.
    pub fn add_output_hashed(&mut self, path: &Path, size: u64, sha256: String) {
        let name = file_name(path);
        self.outputs.retain(|o| o.path != name);
        self.outputs.push(OutputRecord {
            path: name,
            sha256,
            size,
        });
    }

    /// Canonical JSON: sorted keys, two-space indent, trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        canonical_json(self)
    }

    /// The YAML rendering (keys in the same order as the JSON).
    pub fn to_yaml(&self) -> String {
        let v = sort_keys(serde_json::to_value(self).unwrap_or(serde_json::Value::Null));
        serde_saphyr::to_string(&v).unwrap_or_default()
    }

    /// Reads a manifest from JSON. Refuses documents larger than
    /// [`MAX_MANIFEST_BYTES`], other schemas and malformed records; the
    /// message says what and where.
    pub fn from_json(bytes: &[u8]) -> std::result::Result<Manifest, ManifestError> {
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(bytes.len() as u64));
        }
        // Check the schema first, so that another document gets a clear
        // message rather than the first missing field.
        #[derive(Deserialize)]
        struct Head {
            schema: Option<serde_json::Value>,
        }
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ManifestError::NotManifest(None));
        }
        let head: Head = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ManifestError::NotManifest(Some(e)),
            _ => ManifestError::Json(e),
        })?;
        match head.schema {
            Some(serde_json::Value::String(s)) if s == SCHEMA => {}
            Some(other) => return Err(ManifestError::Schema(other.to_string())),
            None => return Err(ManifestError::NoSchema),
        }
        serde_json::from_slice(bytes).map_err(ManifestError::Malformed)
    }

    /// Reads a manifest file (size checked before reading).
    pub fn read(path: &Path) -> Result<Manifest> {
        let md = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if md.len() > MAX_MANIFEST_BYTES {
            return Err(Error::invalid(
                path,
                format!(
                    "{} bytes is larger than the {} MiB a manifest may be",
                    md.len(),
                    MAX_MANIFEST_BYTES >> 20
                ),
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Manifest::from_json(&bytes).map_err(|e| Error::invalid(path, e.to_string()))
    }

    /// Apps still present (status kept).
    pub fn kept_apps(&self) -> impl Iterator<Item = &AppRecord> {
        self.apps.iter().filter(|a| a.status == AppStatus::Kept)
    }
}

/// The device path of tree path `rel` under mount prefix `prefix`.
fn device_path(prefix: &str, rel: &str) -> String {
    if rel.is_empty() {
        match prefix.trim_end_matches('/') {
            "" => "/".to_string(),
            p => p.to_string(),
        }
    } else {
        format!("{prefix}{rel}")
    }
}

/// The identity of an input: file name, size, SHA-256 (streamed), and what
/// the package says about its build.
pub fn input_record(path: &Path, rom: Option<&crate::rom::Rom>) -> Result<InputRecord> {
    let mut r = input_record_unhashed(path, rom)?;
    if r.kind != "folder" {
        let (size, sha256) = hash_file(path).map_err(|e| Error::io(path, e))?;
        r.size = size;
        r.sha256 = Some(sha256);
    }
    Ok(r)
}

/// [`input_record`] without the SHA-256 of a file input (`sha256` is
/// `None`), for a caller that hashes the input alongside other work and
/// fills it in.
pub fn input_record_unhashed(path: &Path, rom: Option<&crate::rom::Rom>) -> Result<InputRecord> {
    let md = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if md.is_dir() {
        return Ok(InputRecord {
            device: None,
            file: file_name(path),
            fingerprint: None,
            kind: "folder".into(),
            region: None,
            sha256: None,
            size: 0,
            version: None,
            chain: Vec::new(),
        });
    }
    let (kind, info) = match rom {
        Some(r) => (
            serde_json::to_value(r.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            r.build_info(),
        ),
        None => {
            let kind = match crate::fs::sniff(path).map_err(|e| Error::io(path, e))? {
                Some(crate::fs::FsKind::Erofs) => "erofs-image",
                Some(crate::fs::FsKind::Ext4) => "ext4-image",
                None => "file",
            };
            (
                kind.to_string(),
                crate::rom::BuildInfo::from_file_name(path),
            )
        }
    };
    Ok(InputRecord {
        device: info.device.clone(),
        file: file_name(path),
        fingerprint: info.fingerprint.clone(),
        kind,
        region: info.decoded.as_ref().map(|d| d.region.clone()),
        sha256: None,
        size: md.len(),
        version: info.decoded.as_ref().map(VersionRecord::from),
        chain: Vec::new(),
    })
}

fn fs_name(k: Option<crate::fs::FsKind>) -> Option<String> {
    k.map(|k| k.name().to_string())
}

/// Fills the build facts an image-only input lacks from its build.props.
fn facts_from_props(m: &mut Manifest) {
    let get = |key_of: &dyn Fn(&str) -> String| {
        ["system", "product", "vendor", "system_ext", "odm"]
            .iter()
            .find_map(|p| m.props.get(*p).and_then(|props| props.get(&key_of(p))))
            .cloned()
    };
    let scoped = |name: &'static str| {
        move |p: &str| {
            if p == "system" {
                format!("ro.{name}")
            } else {
                format!("ro.{p}.{name}")
            }
        }
    };
    let product = |name: &'static str| {
        move |p: &str| {
            if p == "system" {
                format!("ro.product.{name}")
            } else {
                format!("ro.product.{p}.{name}")
            }
        }
    };
    let fingerprint = get(&scoped("build.fingerprint"));
    let incremental = get(&scoped("build.version.incremental"));
    let device = get(&product("device"));
    let i = &mut m.input;
    if i.fingerprint.is_none() {
        i.fingerprint = fingerprint;
    }
    if i.device.is_none() {
        i.device = device;
    }
    if i.version.is_none()
        && let Some(v) = incremental
            .as_deref()
            .and_then(crate::rom::VersionCode::parse)
    {
        i.region = Some(v.region.clone());
        i.version = Some(VersionRecord::from(&v));
    }
}

/// Lists and identifies the apps of the trees (app partitions only, as
/// `romkit apps` does).
fn record_apps(m: &mut Manifest, trees: &[(String, crate::fs::tree::Tree)], jobs: usize) {
    let mut locations = Vec::new();
    for name in crate::apps::APP_PARTITIONS {
        for (part, tree) in trees.iter().filter(|(p, _)| p == name) {
            let files = crate::apps::tree_files(part, tree);
            locations.extend(crate::apps::locate(part, &files, false));
        }
    }
    let apps = crate::apps::identify(locations, jobs);
    m.add_apps(&apps, None);
}

/// The manifest of an input as found, without building: any package
/// [`crate::rom::Rom`] opens, a bare filesystem image, or a folder of
/// partition folders as `unpack --files` writes (with their `config/`
/// sidecars). Partitions are recorded with status `source` and the SHA-256
/// of their decoded images; every app is `kept`; files and props are
/// recorded for every partition with a filesystem.
pub fn describe(path: &Path, jobs: usize) -> Result<Manifest> {
    use crate::rom::load::{Input, open_input, read_image_tree};
    let rom = match open_input(path)? {
        Input::Folder(_) => return describe_folder(path, jobs),
        Input::Image { path, kind } => {
            let mut m = Manifest::new(input_record(&path, None)?)
                .created_at(crate::util::time::source_date_epoch()?);
            let name = file_name(&path).trim_end_matches(".img").to_string();
            let tree = read_image_tree(&path)?;
            let (size, sha256) = hash_file(&path).map_err(|e| Error::io(&path, e))?;
            m.add_partition(PartitionRecord {
                filesystem: fs_name(Some(kind)),
                name: name.clone(),
                sha256,
                size,
                status: PartitionStatus::Source,
                changed_blocks: None,
                avb_footer: None,
            });
            m.add_tree(&name, &tree).map_err(|e| Error::io(&path, e))?;
            let trees = vec![(name, tree)];
            record_apps(&mut m, &trees, jobs);
            facts_from_props(&mut m);
            return Ok(m);
        }
        Input::Package(rom) => rom,
    };
    let mut m = Manifest::new(input_record(path, Some(&rom))?)
        .created_at(crate::util::time::source_date_epoch()?);
    let decoded = rom.decode_trees(&rom.partition_names(), true, jobs)?;
    let mut trees = Vec::new();
    for p in decoded.partitions {
        let (sha256, size) = p.hash.unwrap_or_default();
        if let Some(tree) = p.tree {
            m.add_tree(&p.name, &tree)
                .map_err(|e| Error::io(format!("{}:{}", path.display(), p.name), e))?;
            trees.push((p.name.clone(), tree));
        }
        m.add_partition(PartitionRecord {
            filesystem: fs_name(p.kind),
            name: p.name,
            sha256,
            size,
            status: PartitionStatus::Source,
            changed_blocks: None,
            avb_footer: None,
        });
    }
    record_apps(&mut m, &trees, jobs);
    drop(trees);
    Ok(m)
}

/// [`describe`] for a folder: `unpack --files` output (partition folders
/// with `config/NAME_fs_config` and `config/NAME_file_contexts`).
fn describe_folder(path: &Path, jobs: usize) -> Result<Manifest> {
    let mut m = Manifest::new(input_record(path, None)?)
        .created_at(crate::util::time::source_date_epoch()?);
    let config = path.join("config");
    let mut names: Vec<String> = std::fs::read_dir(path)
        .map_err(|e| Error::io(path, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n != "config" && config.join(format!("{n}_fs_config")).is_file())
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(Error::invalid(
            path,
            "a folder to describe must hold partition folders with their config/NAME_fs_config and config/NAME_file_contexts (as `unpack --files` writes)",
        ));
    }
    let mut trees = Vec::new();
    for name in names {
        let read =
            |p: std::path::PathBuf| std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e));
        let fs_config = read(config.join(format!("{name}_fs_config")))?;
        let contexts = read(config.join(format!("{name}_file_contexts"))).unwrap_or_default();
        let dir = path.join(&name);
        let tree = crate::fs::extract::read_dir_tree(&dir, &name, &fs_config, &contexts, Some(0))
            .map_err(|e| Error::invalid(&dir, e.to_string()))?;
        m.add_tree(&name, &tree).map_err(|e| Error::io(&dir, e))?;
        trees.push((name, tree));
    }
    record_apps(&mut m, &trees, jobs);
    facts_from_props(&mut m);
    Ok(m)
}

/// Whether `path` is a JSON document: a `.json` name, or a `{` first.
fn is_json(path: &Path) -> Result<bool> {
    if path.is_dir() {
        return Ok(false);
    }
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        return Ok(true);
    }
    let mut head = [0u8; 64];
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let n = std::io::Read::read(&mut f, &mut head).map_err(|e| Error::io(path, e))?;
    Ok(head[..n]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{'))
}

/// A manifest read from JSON, or made by describing a package.
pub fn load(path: &Path, jobs: usize) -> Result<Manifest> {
    if is_json(path)? {
        Manifest::read(path)
    } else {
        describe(path, jobs)
    }
}
