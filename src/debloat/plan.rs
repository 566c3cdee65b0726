//! The debloat plan: what each rule matches, what is removed, kept, skipped
//! or refused and why, the build.prop edits, and the space freed. The same
//! plan is what [`Plan::apply`] carries out on file trees, so a dry run
//! shows exactly what a build does.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::profile::{Condition, Level, Origin, Os, Profile, Rule, Selector};
use super::{protected_package, protected_path};
use crate::apps::{App, LoadedPartition, mount_prefix};
use crate::fs::tree::{FileData, InodeId, Kind, Tree};

/// Largest build.prop read.
pub const MAX_PROP_FILE: u64 = 4 << 20;

/// Options of planning.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlanOptions {
    /// Allow removing protected packages and paths.
    pub allow_unsafe: bool,
}

/// What happened to one match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Removed by this rule.
    Removed,
    /// Already removed by an earlier rule.
    AlreadyRemoved,
    /// A keep rule protects it.
    Kept,
    /// The rule's level is above the profile's `max_level`.
    Skipped,
    /// Protected; refused without `--allow-unsafe`.
    Refused,
}

/// One thing a rule matched.
#[derive(Clone, Debug, Serialize)]
pub struct Match {
    /// Partition.
    pub partition: String,
    /// Device path (app folder, loose APK, file or folder).
    pub path: String,
    /// The app's package, when the match is an app.
    pub package: Option<String>,
    /// Bytes of the files it covers.
    pub size: u64,
    /// What happened to it.
    pub status: Status,
    /// Why (keep rule, protection reason, level).
    pub detail: Option<String>,
}

/// Whether a rule's `when:` condition holds for the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Applies {
    /// It holds (or the rule has no condition): the rule is applied.
    Yes,
    /// The input's region or release is not known: the rule is applied, but
    /// matching nothing is no `--strict` error.
    Unknown,
    /// It does not hold: the rule is skipped.
    No,
}

/// What the plan knows about the input, for `when:` conditions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct InputFacts {
    /// The Xiaomi version code found in a build.prop.
    pub version: Option<String>,
    /// Two-letter region (`CN`, `MI`, `EU`…).
    pub region: Option<String>,
    /// Where the region came from: `version code` or `ro.miui.region`.
    pub region_from: Option<String>,
    /// OS release decoded from the version code.
    pub os: Option<Os>,
}

impl InputFacts {
    /// Whether `when` holds for this input, and if not (or unknown) why.
    pub fn check(&self, when: &Condition) -> (Applies, Option<String>) {
        let mut unknown = Vec::new();
        if !when.region.is_empty() {
            match &self.region {
                None => unknown.push("the input's region is unknown".to_string()),
                Some(code) if !when.region.iter().any(|r| r.covers(code)) => {
                    return (
                        Applies::No,
                        Some(format!("{when}; the input's region is {code}")),
                    );
                }
                Some(_) => {}
            }
        }
        if !when.os.is_empty() {
            match self.os {
                None => unknown.push("the input's OS release is unknown".to_string()),
                Some(os) if !when.os.contains(&os) => {
                    return (
                        Applies::No,
                        Some(format!("{when}; the input is {}", os.name())),
                    );
                }
                Some(_) => {}
            }
        }
        if unknown.is_empty() {
            (Applies::Yes, None)
        } else {
            (
                Applies::Unknown,
                Some(format!("{when}: {}", unknown.join(", "))),
            )
        }
    }
}

/// The region and release of the input, from its build.prop files: the
/// version code (`ro.build.version.incremental` or a partition's
/// `ro.PART.build.version.incremental`) first, then `ro.miui.region`.
pub fn input_facts(partitions: &[LoadedPartition]) -> InputFacts {
    use crate::rom::version::VersionCode;
    let mut facts = InputFacts::default();
    let mut miui_region = None;
    for lp in partitions {
        let Some(text) = build_prop_candidates(&lp.name)
            .into_iter()
            .find_map(|c| lp.files.iter().find(|f| f.path == c))
            .and_then(|f| read_small(&f.data))
        else {
            continue;
        };
        for (k, v) in parse_props(&text) {
            let incremental = k == "ro.build.version.incremental"
                || (k.starts_with("ro.") && k.ends_with(".build.version.incremental"));
            if incremental
                && facts.version.is_none()
                && let Some(vc) = VersionCode::parse(&v)
            {
                facts.os = Os::of(&vc);
                facts.region = Some(vc.region.clone());
                facts.region_from = Some("version code".into());
                facts.version = Some(vc.code);
            }
            if k == "ro.miui.region" && miui_region.is_none() && !v.is_empty() {
                miui_region = Some(v.to_ascii_uppercase());
            }
        }
    }
    if facts.region.is_none()
        && let Some(r) = miui_region
    {
        facts.region = Some(if r == "GLOBAL" { "MI".into() } else { r });
        facts.region_from = Some("ro.miui.region".into());
    }
    facts
}

/// How one profile of the chain fared on this input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProfileReport {
    /// Profile name.
    pub profile: String,
    /// Its removal rules.
    pub rules: usize,
    /// Rules whose conditions hold (or cannot be checked).
    pub applied: usize,
    /// Applied rules that matched something.
    pub matched: usize,
    /// Applied rules that matched nothing.
    pub unmatched: usize,
    /// Of those, the ones that are optional or whose condition could not be
    /// checked (no `--strict` error).
    pub unmatched_allowed: usize,
    /// Rules skipped because their region/release condition does not hold.
    pub skipped_by_condition: usize,
}

/// One rule and what it did.
#[derive(Clone, Debug, Serialize)]
pub struct RulePlan {
    /// 1-based index in the resolved profile.
    pub index: usize,
    /// The profile that declared it.
    pub profile: String,
    /// Where.
    pub origin: Origin,
    /// What it selects.
    pub selector: Selector,
    /// Its level.
    pub level: Level,
    /// Its reason.
    pub reason: Option<String>,
    /// Whether its `when:` condition holds for the input.
    pub applies: Applies,
    /// The condition, and why it does not hold or cannot be checked.
    pub condition: Option<String>,
    /// Matching nothing is no `--strict` error.
    pub optional: bool,
    /// What it matched.
    pub matches: Vec<Match>,
}

/// Something the plan removes.
#[derive(Clone, Debug, Serialize)]
pub struct Removal {
    /// Partition.
    pub partition: String,
    /// Device path of the folder or file removed.
    pub path: String,
    /// The app's package, for an app.
    pub package: Option<String>,
    /// Bytes freed.
    pub size: u64,
    /// Files removed.
    pub files: Vec<String>,
    /// The rule (1-based index).
    pub rule: usize,
    /// Where the rule is.
    pub origin: Origin,
    /// The rule's reason.
    pub reason: Option<String>,
}

/// A build.prop edit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PropChange {
    /// Partition.
    pub partition: String,
    /// The build.prop file (device path).
    pub file: String,
    /// Property.
    pub key: String,
    /// Value before (absent when added).
    pub old: Option<String>,
    /// Value after (absent when deleted).
    pub new: Option<String>,
}

/// The whole plan.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// Profile name.
    pub profile: String,
    /// Profile source.
    pub source: String,
    /// Profile hash.
    pub profile_sha256: String,
    /// The profile's `max_level`.
    pub max_level: Level,
    /// Whether protected items may go.
    pub allow_unsafe: bool,
    /// Every rule, in order.
    pub rules: Vec<RulePlan>,
    /// What is removed.
    pub removed: Vec<Removal>,
    /// Matches refused as protected.
    pub refused: Vec<Match>,
    /// build.prop edits.
    pub props: Vec<PropChange>,
    /// Bytes freed per partition.
    pub freed: BTreeMap<String, u64>,
    /// Total bytes freed.
    pub freed_total: u64,
    /// Rules and prop edits that matched nothing, and other warnings.
    pub warnings: Vec<String>,
    /// The number of those warnings that are unmatched rules or props
    /// (errors under `--strict`).
    pub unmatched: usize,
    /// Optional rules, and rules whose condition cannot be checked, that
    /// matched nothing (never `--strict` errors).
    pub notes: Vec<String>,
    /// The input's region and release, as conditions see them.
    pub input: InputFacts,
    /// Per profile of the chain (parents first): rules applied, matched,
    /// skipped by condition.
    pub profiles: Vec<ProfileReport>,
}

/// A glob over device paths: `*` and `?` within one component, `**` for any
/// number of components.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    fn comp(p: &[u8], s: &[u8]) -> bool {
        // Iterative wildcard match with backtracking on the last '*'.
        let (mut i, mut j) = (0, 0);
        let (mut star, mut mark) = (None, 0);
        while j < s.len() {
            if i < p.len() && (p[i] == b'?' || p[i] == s[j]) {
                i += 1;
                j += 1;
            } else if i < p.len() && p[i] == b'*' {
                star = Some(i);
                mark = j;
                i += 1;
            } else if let Some(st) = star {
                i = st + 1;
                mark += 1;
                j = mark;
            } else {
                return false;
            }
        }
        while i < p.len() && p[i] == b'*' {
            i += 1;
        }
        i == p.len()
    }
    fn go(p: &[&str], s: &[&str], budget: &mut u32) -> bool {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        match p.first() {
            None => s.is_empty(),
            Some(&"**") => (0..=s.len()).any(|k| go(&p[1..], &s[k..], budget)),
            Some(c) => {
                !s.is_empty() && comp(c.as_bytes(), s[0].as_bytes()) && go(&p[1..], &s[1..], budget)
            }
        }
    }
    let mut budget = 100_000;
    go(&p, &s, &mut budget)
}

/// What a selector can hit.
#[derive(Clone, Debug)]
enum Target {
    App(usize),
    Path {
        partition: String,
        path: String,
        files: Vec<String>,
        size: u64,
    },
}

/// Does `sel` (a keep rule) cover `path`/`package`? A keep path covers the
/// target when either contains the other.
fn keep_covers(sel: &Selector, path: &str, package: Option<&str>, app_files: &[String]) -> bool {
    let related = |k: &str| {
        k == path
            || k.strip_prefix(path).is_some_and(|r| r.starts_with('/'))
            || path.strip_prefix(k).is_some_and(|r| r.starts_with('/'))
    };
    match sel {
        Selector::Package(p) => package == Some(p.as_str()),
        Selector::Path(k) => related(k),
        Selector::Glob(g) => glob_match(g, path) || app_files.iter().any(|f| glob_match(g, f)),
    }
}

/// Plans `profile` against the apps and files of `partitions`.
///
/// Rules are judged in profile order, each match against what earlier rules
/// already removed; a target's risk is the highest level any rule gives it
/// (see `risk_by_target`).
pub fn plan(
    profile: &Profile,
    apps: &[App],
    partitions: &[LoadedPartition],
    opts: PlanOptions,
) -> Plan {
    let inv = Inventory::new(apps, partitions);
    let input = input_facts(partitions);
    let applies: Vec<(Applies, Option<String>)> = profile
        .remove
        .iter()
        .map(|r| match &r.when {
            Some(w) => input.check(w),
            None => (Applies::Yes, None),
        })
        .collect();
    // A rule whose condition does not hold selects nothing.
    let all_targets: Vec<Vec<Target>> = profile
        .remove
        .iter()
        .zip(&applies)
        .map(|(r, a)| {
            if a.0 == Applies::No {
                Vec::new()
            } else {
                inv.targets_of(r)
            }
        })
        .collect();
    let judge = Judge {
        profile,
        inv: &inv,
        risk: risk_by_target(profile, &inv, &all_targets),
        allow_unsafe: opts.allow_unsafe,
    };
    let mut ledger = Ledger::default();
    let mut rules = Vec::new();
    for (n, (rule, targets)) in profile.remove.iter().zip(all_targets).enumerate() {
        let index = n + 1;
        let (applies, condition) = applies[n].clone();
        if targets.is_empty() && applies != Applies::No {
            ledger.note_unmatched(rule, index, &applies, condition.as_deref());
        }
        let mut matches = Vec::new();
        for t in targets {
            matches.push(ledger.judge(&judge, rule, index, t));
        }
        rules.push(RulePlan {
            index,
            profile: rule.profile.clone(),
            origin: rule.origin.clone(),
            selector: rule.selector.clone(),
            level: rule.level,
            reason: rule.reason.clone(),
            applies,
            condition,
            optional: rule.optional,
            matches,
        });
    }
    let profiles = profile_reports(profile, &rules);
    let freed = inv.freed(&ledger.removed_files);
    let (props, prop_warnings) = plan_props(profile, partitions);
    ledger.unmatched += prop_warnings.len();
    ledger.warnings.extend(prop_warnings);
    Plan {
        profile: profile.name.clone(),
        source: profile.source.clone(),
        profile_sha256: profile.sha256.clone(),
        max_level: profile.max_level,
        allow_unsafe: opts.allow_unsafe,
        rules,
        removed: ledger.removed,
        refused: ledger.refused,
        props,
        freed_total: freed.values().sum(),
        freed,
        warnings: ledger.warnings,
        unmatched: ledger.unmatched,
        notes: ledger.notes,
        input,
        profiles,
    }
}

/// Every file of the input with its partition and size, and which app owns
/// it.
struct Inventory<'a> {
    apps: &'a [App],
    /// File to the index of the app that owns it.
    owner: HashMap<&'a str, usize>,
    /// File to its partition and size.
    sizes: HashMap<&'a str, (&'a str, u64)>,
    /// Every file, sorted.
    all_files: Vec<&'a str>,
}

impl<'a> Inventory<'a> {
    fn new(apps: &'a [App], partitions: &'a [LoadedPartition]) -> Self {
        let mut owner: HashMap<&str, usize> = HashMap::new();
        for (i, a) in apps.iter().enumerate() {
            for f in &a.files {
                owner.insert(f.as_str(), i);
            }
        }
        let mut sizes: HashMap<&str, (&str, u64)> = HashMap::new();
        for p in partitions {
            for f in &p.files {
                sizes.insert(f.path.as_str(), (p.name.as_str(), f.data.size()));
            }
        }
        let mut all_files: Vec<&str> = sizes.keys().copied().collect();
        all_files.sort_unstable();
        Inventory {
            apps,
            owner,
            sizes,
            all_files,
        }
    }

    /// Total size of those of `files` the input has.
    fn size_of<'f>(&self, files: impl IntoIterator<Item = &'f String>) -> u64 {
        files
            .into_iter()
            .filter_map(|f| self.sizes.get(f.as_str()))
            .map(|x| x.1)
            .sum()
    }

    /// Bytes freed per partition by removing `files`.
    fn freed(&self, files: &BTreeSet<String>) -> BTreeMap<String, u64> {
        let mut freed: BTreeMap<String, u64> = BTreeMap::new();
        for f in files {
            if let Some((p, s)) = self.sizes.get(f.as_str()) {
                *freed.entry(p.to_string()).or_default() += s;
            }
        }
        freed
    }

    /// The file or folder at `path` with every file in it; `None` when the
    /// input has no such file.
    fn path_target(&self, path: &str) -> Option<Target> {
        let prefix = format!("{path}/");
        let files: Vec<String> = self
            .all_files
            .iter()
            .filter(|f| **f == path || f.starts_with(&prefix))
            .map(|f| f.to_string())
            .collect();
        let first = files.first()?;
        let partition = self.sizes.get(first.as_str())?.0.to_string();
        let size = self.size_of(&files);
        Some(Target::Path {
            partition,
            path: path.to_string(),
            files,
            size,
        })
    }

    /// What `rule` selects: apps by package or path, else files and folders.
    fn targets_of(&self, rule: &Rule) -> Vec<Target> {
        let apps = self.apps;
        match &rule.selector {
            Selector::Package(p) => apps
                .iter()
                .enumerate()
                .filter(|(_, a)| a.package() == Some(p.as_str()))
                .map(|(i, _)| Target::App(i))
                .collect(),
            Selector::Path(p) => {
                if let Some(i) = apps.iter().position(|a| a.path == *p || a.apk == *p) {
                    vec![Target::App(i)]
                } else {
                    self.path_target(p).into_iter().collect()
                }
            }
            Selector::Glob(g) => {
                // Apps a glob leaves alone, with their files.
                let excepted: BTreeSet<usize> = apps
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| {
                        a.package()
                            .is_some_and(|p| rule.except.iter().any(|e| e == p))
                    })
                    .map(|(i, _)| i)
                    .collect();
                self.glob_targets(g, &excepted)
            }
        }
    }

    /// The apps a glob matches (but the `excepted` ones), then files and
    /// folders outside those apps: the shortest matching ancestor of each
    /// file.
    fn glob_targets(&self, g: &str, excepted: &BTreeSet<usize>) -> Vec<Target> {
        let mut out: Vec<Target> = self
            .apps
            .iter()
            .enumerate()
            .filter(|(i, a)| glob_match(g, &a.path) && !excepted.contains(i))
            .map(|(i, _)| Target::App(i))
            .collect();
        let taken: BTreeSet<usize> = out
            .iter()
            .filter_map(|t| match t {
                Target::App(i) => Some(*i),
                _ => None,
            })
            .collect();
        let mut seen = BTreeSet::new();
        for f in &self.all_files {
            if self
                .owner
                .get(f)
                .is_some_and(|i| taken.contains(i) || excepted.contains(i))
            {
                continue;
            }
            let comps: Vec<&str> = f.split('/').collect();
            for k in 1..=comps.len() {
                let anc = comps[..k].join("/");
                if seen.contains(&anc) {
                    break;
                }
                if glob_match(g, &anc) {
                    seen.insert(anc.clone());
                    if let Some(t) = self.path_target(&anc) {
                        out.push(t);
                    }
                    break;
                }
            }
        }
        out
    }

    /// The device path that identifies a target across rules.
    fn key(&self, t: &Target) -> String {
        match t {
            Target::App(i) => self.apps[*i].path.clone(),
            Target::Path { path, .. } => path.clone(),
        }
    }

    /// A target's partition, path, package, size and files.
    fn facts(&self, t: Target) -> TargetFacts {
        match t {
            Target::App(i) => {
                let a = &self.apps[i];
                TargetFacts {
                    partition: a.partition.clone(),
                    path: a.path.clone(),
                    package: a.package().map(str::to_string),
                    size: a.size,
                    files: a.files.clone(),
                }
            }
            Target::Path {
                partition,
                path,
                files,
                size,
            } => TargetFacts {
                partition,
                path,
                package: None,
                size,
                files,
            },
        }
    }
}

/// What a match is about.
struct TargetFacts {
    partition: String,
    path: String,
    package: Option<String>,
    size: u64,
    files: Vec<String>,
}

/// A target's risk: the highest level any rule gives it, and the (1-based)
/// rule that gives it. An app that a specific rule rates `expert` is not
/// removed by a broad `advanced` glob.
fn risk_by_target(
    profile: &Profile,
    inv: &Inventory,
    all_targets: &[Vec<Target>],
) -> HashMap<String, (Level, usize)> {
    let mut risk: HashMap<String, (Level, usize)> = HashMap::new();
    for (n, ts) in all_targets.iter().enumerate() {
        for t in ts {
            let e = risk.entry(inv.key(t)).or_insert((Level::Recommended, 0));
            if profile.remove[n].level > e.0 || e.1 == 0 {
                *e = (profile.remove[n].level.max(e.0), n + 1);
            }
        }
    }
    risk
}

/// What every match is judged by.
struct Judge<'a> {
    profile: &'a Profile,
    inv: &'a Inventory<'a>,
    risk: HashMap<String, (Level, usize)>,
    allow_unsafe: bool,
}

/// What the rules judged so far did, as the next one sees it.
#[derive(Default)]
struct Ledger {
    removed: Vec<Removal>,
    refused: Vec<Match>,
    /// Every file removed so far.
    removed_files: BTreeSet<String>,
    /// Path removed to the (1-based) rule that removed it.
    removed_paths: BTreeMap<String, usize>,
    warnings: Vec<String>,
    unmatched: usize,
    notes: Vec<String>,
}

impl Ledger {
    /// A rule that applies (or may) matched nothing: a note when that is
    /// allowed, else a warning (an error under `--strict`).
    fn note_unmatched(
        &mut self,
        rule: &Rule,
        index: usize,
        applies: &Applies,
        condition: Option<&str>,
    ) {
        let msg = format!(
            "{}: rule {index} ({}) matches nothing",
            rule.origin, rule.selector
        );
        if rule.optional {
            self.notes.push(format!("{msg} (optional)"));
        } else if *applies == Applies::Unknown {
            self.notes.push(format!(
                "{msg} ({})",
                condition.unwrap_or("condition unchecked")
            ));
        } else {
            self.unmatched += 1;
            self.warnings.push(msg);
        }
    }

    /// Judges one target of rule `index`: skipped by level, kept, already
    /// removed, refused as protected, or removed (in that order of checks).
    fn judge(&mut self, j: &Judge, rule: &Rule, index: usize, t: Target) -> Match {
        let TargetFacts {
            partition,
            path,
            package,
            size,
            files,
        } = j.inv.facts(t);
        let mut m = Match {
            partition: partition.clone(),
            path: path.clone(),
            package: package.clone(),
            size,
            status: Status::Removed,
            detail: None,
        };
        let protection = package
            .as_deref()
            .and_then(protected_package)
            .map(|why| format!("{} is protected: {why}", package.as_deref().unwrap_or("")))
            .or_else(|| protected_path(&path).map(|(p, why)| format!("{p} is protected: {why}")));
        let keep = j
            .profile
            .keep
            .iter()
            .find(|k| keep_covers(&k.selector, &path, package.as_deref(), &files));
        let max_level = j.profile.max_level;
        let (risk_level, risk_rule) = j.risk.get(&path).copied().unwrap_or((rule.level, index));
        if rule.level > max_level {
            m.status = Status::Skipped;
            m.detail = Some(format!(
                "level {} is above max_level {max_level}",
                rule.level
            ));
        } else if risk_level > max_level {
            m.status = Status::Skipped;
            m.detail = Some(format!(
                "rule {risk_rule} rates it {risk_level}, above max_level {max_level}"
            ));
        } else if let Some(k) = keep {
            m.status = Status::Kept;
            m.detail = Some(format!("kept by {} ({})", k.selector, k.origin));
        } else if let Some(i) = self.removed_paths.get(&path) {
            m.status = Status::AlreadyRemoved;
            m.detail = Some(format!("already removed by rule {i}"));
        } else if !files.is_empty() && files.iter().all(|f| self.removed_files.contains(f)) {
            m.status = Status::AlreadyRemoved;
            m.detail = Some("inside something an earlier rule removes".into());
        } else if let Some(why) = protection.clone().filter(|_| !j.allow_unsafe) {
            m.status = Status::Refused;
            m.detail = Some(format!("{why}; refused without --allow-unsafe"));
            self.refused.push(m.clone());
        } else {
            if let Some(why) = protection {
                self.warnings.push(format!(
                    "{}: removing {path} although {why} (--allow-unsafe)",
                    rule.origin
                ));
            }
            let fresh: Vec<String> = files
                .iter()
                .filter(|f| !self.removed_files.contains(*f))
                .cloned()
                .collect();
            let fresh_size = j.inv.size_of(&fresh);
            self.removed_files.extend(fresh.iter().cloned());
            self.removed_paths.insert(path.clone(), index);
            self.removed.push(Removal {
                partition,
                path,
                package,
                size: fresh_size,
                files,
                rule: index,
                origin: rule.origin.clone(),
                reason: rule.reason.clone(),
            });
        }
        m
    }
}

/// One report per profile of the chain, parents first.
fn profile_reports(profile: &Profile, rules: &[RulePlan]) -> Vec<ProfileReport> {
    let mut names: Vec<&str> = profile.extends.iter().map(String::as_str).collect();
    names.push(&profile.name);
    for r in rules {
        if !names.contains(&r.profile.as_str()) {
            names.push(&r.profile);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let mine: Vec<&RulePlan> = rules.iter().filter(|r| r.profile == name).collect();
            let applied: Vec<&&RulePlan> =
                mine.iter().filter(|r| r.applies != Applies::No).collect();
            let unmatched: Vec<&&&RulePlan> =
                applied.iter().filter(|r| r.matches.is_empty()).collect();
            ProfileReport {
                profile: name.to_string(),
                rules: mine.len(),
                applied: applied.len(),
                matched: applied.len() - unmatched.len(),
                unmatched: unmatched.len(),
                unmatched_allowed: unmatched
                    .iter()
                    .filter(|r| r.optional || r.applies == Applies::Unknown)
                    .count(),
                skipped_by_condition: mine.len() - applied.len(),
            }
        })
        .collect()
}

/// Where a partition keeps its build.prop (device paths, in order of preference).
pub fn build_prop_candidates(partition: &str) -> Vec<String> {
    if partition == "system" {
        vec!["system/build.prop".into()]
    } else {
        vec![
            format!("{partition}/etc/build.prop"),
            format!("{partition}/build.prop"),
        ]
    }
}

/// Parses build.prop lines into (key, value) in order; comments and blank
/// lines are skipped.
pub fn parse_props(text: &str) -> Vec<(String, String)> {
    crate::util::text::key_values(text).collect()
}

fn read_small(data: &FileData) -> Option<String> {
    if data.size() > MAX_PROP_FILE {
        return None;
    }
    let mut buf = Vec::new();
    data.read(&mut buf).ok()?;
    String::from_utf8(buf).ok()
}

fn plan_props(profile: &Profile, partitions: &[LoadedPartition]) -> (Vec<PropChange>, Vec<String>) {
    let mut changes = Vec::new();
    let mut warnings = Vec::new();
    for (part, edits) in &profile.props {
        let Some(lp) = partitions.iter().find(|p| p.name == *part) else {
            warnings.push(format!(
                "props for partition {part}: the package has no such partition with files"
            ));
            continue;
        };
        let found = build_prop_candidates(part)
            .into_iter()
            .find_map(|c| lp.files.iter().find(|f| f.path == c));
        let Some(file) = found else {
            warnings.push(format!("props for partition {part}: no build.prop found"));
            continue;
        };
        let Some(text) = read_small(&file.data) else {
            warnings.push(format!(
                "{}: unreadable or larger than {MAX_PROP_FILE} bytes",
                file.path
            ));
            continue;
        };
        let current: HashMap<String, String> = parse_props(&text).into_iter().collect();
        for (k, v) in &edits.set {
            let old = current.get(k).cloned();
            if old.as_deref() == Some(v.as_str()) {
                continue;
            }
            changes.push(PropChange {
                partition: part.clone(),
                file: file.path.clone(),
                key: k.clone(),
                old,
                new: Some(v.clone()),
            });
        }
        for k in &edits.delete {
            match current.get(k) {
                Some(old) => changes.push(PropChange {
                    partition: part.clone(),
                    file: file.path.clone(),
                    key: k.clone(),
                    old: Some(old.clone()),
                    new: None,
                }),
                None => warnings.push(format!(
                    "props for partition {part}: delete {k}: not in {}",
                    file.path
                )),
            }
        }
    }
    (changes, warnings)
}

/// Rewrites build.prop text: set values replace every line of their key (or
/// are appended), deleted keys lose their lines; everything else is kept
/// byte for byte.
pub fn edit_props(text: &str, changes: &[&PropChange]) -> String {
    let mut out = String::with_capacity(text.len() + 256);
    let mut done: BTreeSet<&str> = BTreeSet::new();
    for line in text.split_inclusive('\n') {
        let key = line
            .trim()
            .split_once('=')
            .filter(|_| !line.trim_start().starts_with('#'))
            .map(|(k, _)| k.trim());
        match key.and_then(|k| changes.iter().find(|c| c.key == k)) {
            Some(c) => {
                if let Some(v) = &c.new {
                    out.push_str(&format!("{}={v}\n", c.key));
                }
                done.insert(c.key.as_str());
            }
            None => out.push_str(line),
        }
    }
    for c in changes {
        if let Some(v) = &c.new
            && !done.contains(c.key.as_str())
        {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&format!("{}={v}\n", c.key));
        }
    }
    out
}

/// Why a plan could not be carried out on a partition's tree.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A planned path could not be removed.
    #[error("{partition}: removing {path}: {source}")]
    Remove {
        /// The partition.
        partition: String,
        /// The planned path.
        path: String,
        /// Why.
        source: crate::fs::tree::TreeError,
    },
    /// A build.prop to edit is missing.
    #[error("{partition}: {file}: {source}")]
    Missing {
        /// The partition.
        partition: String,
        /// The build.prop.
        file: String,
        /// Why.
        source: crate::fs::tree::TreeError,
    },
    /// A build.prop to edit is not a regular file.
    #[error("{partition}: {file} is not a regular file")]
    NotAFile {
        /// The partition.
        partition: String,
        /// The build.prop.
        file: String,
    },
    /// A build.prop to edit cannot be read (or is too large for one).
    #[error("{partition}: {file}: unreadable build.prop")]
    Unreadable {
        /// The partition.
        partition: String,
        /// The build.prop.
        file: String,
    },
}

impl Plan {
    /// The plan for one partition as an in-place image edit
    /// (`fs::erofs::edit`): the paths it removes, relative to the image's
    /// root, and each edited build.prop with its new content. `tree` is the
    /// partition's tree as read from the image (for the mount prefix and
    /// the old build.prop text). Apply it with `fs::erofs::edit::edit_image`.
    pub fn image_edit(
        &self,
        partition: &str,
        tree: &Tree,
    ) -> Result<crate::fs::erofs::edit::Edit, ApplyError> {
        let prefix = mount_prefix(partition, tree);
        let mut edit = crate::fs::erofs::edit::Edit::default();
        for r in self.removed.iter().filter(|r| r.partition == partition) {
            let inner = r.path.strip_prefix(&prefix).unwrap_or(&r.path);
            edit.remove.push(inner.to_string());
        }
        for (inner, _, text) in self.edited_props(partition, tree, &prefix)? {
            edit.replace.insert(inner, text.into_bytes());
        }
        Ok(edit)
    }

    /// Carries out the plan on one partition's tree: removes every planned
    /// folder and file, and rewrites its build.prop. Returns the number of
    /// entries removed.
    pub fn apply(&self, partition: &str, tree: &mut Tree) -> Result<usize, ApplyError> {
        let prefix = mount_prefix(partition, tree);
        let mut n = 0;
        for r in self.removed.iter().filter(|r| r.partition == partition) {
            let inner = r.path.strip_prefix(&prefix).unwrap_or(&r.path);
            tree.remove(inner).map_err(|source| ApplyError::Remove {
                partition: partition.to_string(),
                path: r.path.clone(),
                source,
            })?;
            n += 1;
        }
        for (_, id, text) in self.edited_props(partition, tree, &prefix)? {
            tree.inode_mut(id).kind =
                Kind::File(FileData::Bytes(std::sync::Arc::new(text.into_bytes())));
        }
        Ok(n)
    }

    /// Each build.prop of `partition` the plan edits: its path inside the
    /// tree, its inode and its new text.
    fn edited_props(
        &self,
        partition: &str,
        tree: &Tree,
        prefix: &str,
    ) -> Result<Vec<(String, InodeId, String)>, ApplyError> {
        let mut by_file: BTreeMap<&str, Vec<&PropChange>> = BTreeMap::new();
        for c in self.props.iter().filter(|c| c.partition == partition) {
            by_file.entry(c.file.as_str()).or_default().push(c);
        }
        let mut out = Vec::with_capacity(by_file.len());
        for (file, changes) in by_file {
            let inner = file.strip_prefix(prefix).unwrap_or(file);
            let id = tree.lookup(inner).map_err(|source| ApplyError::Missing {
                partition: partition.to_string(),
                file: file.to_string(),
                source,
            })?;
            let Kind::File(data) = &tree.inode(id).kind else {
                return Err(ApplyError::NotAFile {
                    partition: partition.to_string(),
                    file: file.to_string(),
                });
            };
            let text = read_small(data).ok_or_else(|| ApplyError::Unreadable {
                partition: partition.to_string(),
                file: file.to_string(),
            })?;
            out.push((inner.to_string(), id, edit_props(&text, &changes)));
        }
        Ok(out)
    }
}
