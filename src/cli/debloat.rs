//! `romkit profile check FILE`, `romkit profile show NAME`,
//! `romkit profile schema`, `romkit profile import-uad FILE` and
//! `romkit debloat ROM --profile P --dry-run`.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::{Ctx, emit, emit_json, human_size};
use crate::debloat::plan::{Applies, Status};
use crate::debloat::{self, Plan, PlanOptions, Profile, ProfileError};
use crate::error::{EXIT_CHECK, Error, Result};

/// `profile` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ProfileCmd {
    /// Validate a profile file (and everything it extends).
    Check(CheckArgs),
    /// Print a profile fully resolved (after `extends`).
    Show(ShowArgs),
    /// Print the JSON Schema of profile files (for editors, e.g.
    /// yaml-language-server's `# yaml-language-server: $schema=FILE`).
    Schema,
    /// Turn a Universal Android Debloater list (`uad_lists.json`) into a
    /// profile, printed on stdout.
    ImportUad(ImportUadArgs),
}

/// Arguments of `profile import-uad`.
#[derive(clap::Args, Debug)]
pub struct ImportUadArgs {
    /// The UAD list file (`uad_lists.json` format); romkit ships none.
    pub file: PathBuf,
    /// Import rules up to this level (also the profile's max_level).
    #[arg(long, value_name = "LEVEL", default_value = "recommended", value_parser = parse_level)]
    pub max_level: debloat::Level,
    /// Only these UAD lists (`Oem`, `Google`, `Aosp`, `Carrier`, `Misc`), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "LIST,...")]
    pub list: Vec<String>,
    /// Only packages present in this ROM (a package, an image or a folder).
    #[arg(long, value_name = "ROM")]
    pub present_in: Option<PathBuf>,
    /// The profile's name.
    #[arg(long, default_value = "uad")]
    pub name: String,
}

/// A `--max-level` that names no level.
#[derive(Debug, thiserror::Error)]
#[error("{0:?}: use recommended, advanced, expert or unsafe")]
struct UnknownLevel(String);

fn parse_level(s: &str) -> std::result::Result<debloat::Level, UnknownLevel> {
    debloat::uad::level(s).ok_or_else(|| UnknownLevel(s.to_string()))
}

/// Arguments of `profile check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The profile file (or a profile name).
    pub file: String,
    /// Accept rules that name protected packages or paths.
    #[arg(long)]
    pub allow_unsafe: bool,
}

/// Arguments of `profile show`.
#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// A profile name (`xiaomi-eu`, looked up in ./profiles, $ROMKIT_PROFILES
    /// and the shipped profiles) or a path.
    pub name: String,
}

/// Arguments of `debloat`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A package, a filesystem image or a folder.
    pub rom: PathBuf,
    /// The profile: a name or a path.
    #[arg(long, short = 'p')]
    pub profile: String,
    /// Print the plan without changing anything (required: `romkit build`
    /// applies a profile).
    #[arg(long)]
    pub dry_run: bool,
    /// Allow removing protected packages and paths.
    #[arg(long)]
    pub allow_unsafe: bool,
    /// Rules or prop edits that match nothing are errors (exit 1).
    #[arg(long)]
    pub strict: bool,
}

fn profile_error(e: ProfileError) -> Error {
    Error::Invalid {
        file: PathBuf::from(e.location),
        msg: e.message,
    }
}

/// Loads a profile and checks it against the protected set.
pub(crate) fn load_checked(name: &str, allow_unsafe: bool) -> Result<Profile> {
    let p = debloat::load(name).map_err(profile_error)?;
    debloat::check_protected(&p, allow_unsafe).map_err(profile_error)?;
    Ok(p)
}

/// Runs `profile check|show`.
pub fn run_profile(ctx: &Ctx, cmd: ProfileCmd) -> Result<u8> {
    match cmd {
        ProfileCmd::Check(a) => {
            let p = load_checked(&a.file, a.allow_unsafe)?;
            if ctx.json {
                #[derive(Serialize)]
                struct Ok<'a> {
                    ok: bool,
                    profile: &'a Profile,
                }
                emit_json(&Ok {
                    ok: true,
                    profile: &p,
                })?;
            } else {
                emit(&format!(
                    "{}: ok — profile {}, {} removal rules, {} keep rules, {} partitions with prop edits, max_level {}{}\n",
                    p.source,
                    p.name,
                    p.remove.len(),
                    p.keep.len(),
                    p.props.len(),
                    p.max_level,
                    if p.extends.is_empty() {
                        String::new()
                    } else {
                        format!(", extends {}", p.extends.join(", "))
                    }
                ))?;
            }
            Ok(0)
        }
        ProfileCmd::Show(a) => {
            let p = debloat::load(&a.name).map_err(profile_error)?;
            if ctx.json {
                emit_json(&p)?;
            } else {
                emit(&render_profile(&p))?;
            }
            Ok(0)
        }
        ProfileCmd::Schema => {
            emit_json(&debloat::schema::profile_schema())?;
            Ok(0)
        }
        ProfileCmd::ImportUad(a) => import_uad(ctx, a),
    }
}

/// Runs `profile import-uad`.
fn import_uad(ctx: &Ctx, a: ImportUadArgs) -> Result<u8> {
    let list = debloat::uad::read_file(&a.file)?;
    let present = match &a.present_in {
        Some(rom) => Some(crate::apps::packages_in(rom, ctx.jobs)?),
        None => None,
    };
    if !debloat::profile::valid_profile_name(&a.name) {
        return Err(Error::Usage(format!(
            "--name {:?}: use letters, digits, '-', '_' or '.' (at most 64)",
            a.name
        )));
    }
    let out = debloat::uad::import(
        &list,
        &debloat::uad::ImportOptions {
            max_level: a.max_level,
            lists: a.list.clone(),
            present,
            name: a.name.clone(),
            source: a
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        },
    );
    for p in &out.invalid {
        tracing::warn!(
            "{}: {p:?} is not a package name; left out",
            a.file.display()
        );
    }
    if !out.protected.is_empty() {
        tracing::warn!(
            "left out {} package(s) romkit protects: {}",
            out.protected.len(),
            out.protected.join(", ")
        );
    }
    // What we print must load: check it before anyone relies on it.
    debloat::profile::parse_str(&out.yaml, "<import-uad>").map_err(profile_error)?;
    if ctx.json {
        emit_json(&serde_json::json!({
            "rules": out.rules,
            "protected": out.protected,
            "invalid": out.invalid,
            "yaml": out.yaml,
        }))?;
    } else {
        emit(&out.yaml)?;
    }
    Ok(0)
}

/// A resolved profile as YAML in the profile schema (comments name each
/// rule's origin), loadable again.
fn render_profile(p: &Profile) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {} resolved from {} (sha256 {})",
        p.name, p.source, p.sha256
    );
    if !p.extends.is_empty() {
        let _ = writeln!(out, "# extends (applied first): {}", p.extends.join(", "));
    }
    let _ = writeln!(out, "name: {}", q(&p.name));
    if let Some(d) = &p.description {
        let _ = writeln!(out, "description: {}", q(d));
    }
    let _ = writeln!(out, "max_level: {}", p.max_level);
    let sel = |s: &debloat::Selector| match s {
        debloat::Selector::Package(v) => format!("package: {}", q(v)),
        debloat::Selector::Path(v) => format!("path: {}", q(v)),
        debloat::Selector::Glob(v) => format!("glob: {}", q(v)),
    };
    if !p.remove.is_empty() {
        out.push_str("remove:\n");
    }
    for r in &p.remove {
        let _ = writeln!(out, "  - {}    # {}", sel(&r.selector), r.origin);
        let _ = writeln!(out, "    level: {}", r.level);
        if let Some(w) = &r.when {
            let list = |v: Vec<&str>| v.join(", ");
            let mut keys = Vec::new();
            if !w.region.is_empty() {
                keys.push(format!(
                    "region: [{}]",
                    list(w.region.iter().map(|x| x.name()).collect())
                ));
            }
            if !w.os.is_empty() {
                keys.push(format!(
                    "os: [{}]",
                    list(w.os.iter().map(|x| x.name()).collect())
                ));
            }
            let _ = writeln!(out, "    when: {{ {} }}", keys.join(", "));
        }
        if r.optional {
            out.push_str("    optional: true\n");
        }
        if !r.except.is_empty() {
            let e: Vec<String> = r.except.iter().map(|x| q(x)).collect();
            let _ = writeln!(out, "    except: [{}]", e.join(", "));
        }
        if let Some(reason) = &r.reason {
            let _ = writeln!(out, "    reason: {}", q(reason));
        }
    }
    if !p.keep.is_empty() {
        out.push_str("keep:\n");
    }
    for k in &p.keep {
        let _ = writeln!(out, "  - {}    # {}", sel(&k.selector), k.origin);
        if let Some(reason) = &k.reason {
            let _ = writeln!(out, "    reason: {}", q(reason));
        }
    }
    if !p.props.is_empty() {
        out.push_str("props:\n");
    }
    for (part, e) in &p.props {
        let _ = writeln!(out, "  {part}:");
        if !e.set.is_empty() {
            out.push_str("    set:\n");
            for (k, v) in &e.set {
                let _ = writeln!(out, "      {k}: {}", q(v));
            }
        }
        if !e.delete.is_empty() {
            out.push_str("    delete:\n");
            for k in &e.delete {
                let _ = writeln!(out, "      - {k}");
            }
        }
    }
    out
}

/// The plan as text.
fn render_plan(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "profile {} ({}), max_level {}{}",
        plan.profile,
        plan.source,
        plan.max_level,
        if plan.allow_unsafe {
            ", unsafe removals allowed"
        } else {
            ""
        }
    );
    for r in &plan.rules {
        let _ = writeln!(
            out,
            "\nrule {} [{}] {} ({}){}",
            r.index,
            r.level,
            r.selector,
            r.origin,
            r.reason
                .as_deref()
                .map(|x| format!(" — {x}"))
                .unwrap_or_default()
        );
        match (r.applies, &r.condition) {
            (Applies::No, Some(c)) => {
                let _ = writeln!(out, "    skipped by condition: {c}");
            }
            (Applies::Unknown, Some(c)) => {
                let _ = writeln!(out, "    condition not checked: {c}");
            }
            _ => {}
        }
        if r.matches.is_empty() && r.applies != Applies::No {
            out.push_str(if r.optional {
                "    matches nothing (optional)\n"
            } else {
                "    matches nothing\n"
            });
        }
        for m in &r.matches {
            let status = match m.status {
                Status::Removed => "remove",
                Status::AlreadyRemoved => "already",
                Status::Kept => "keep",
                Status::Skipped => "skip",
                Status::Refused => "REFUSE",
            };
            let _ = writeln!(
                out,
                "    {status:<8} {:<11} {}{} {}{}",
                m.partition,
                m.path,
                m.package
                    .as_deref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default(),
                human_size(m.size),
                m.detail
                    .as_deref()
                    .map(|d| format!(" — {d}"))
                    .unwrap_or_default()
            );
        }
    }
    if !plan.props.is_empty() {
        out.push_str("\nbuild.prop edits:\n");
        for c in &plan.props {
            let _ = writeln!(
                out,
                "    {}: {} {} -> {}",
                c.file,
                c.key,
                c.old.as_deref().unwrap_or("(absent)"),
                c.new.as_deref().unwrap_or("(deleted)")
            );
        }
    }
    let i = &plan.input;
    let _ = writeln!(
        out,
        "\ninput: region {}{}, {}",
        i.region.as_deref().unwrap_or("unknown"),
        i.region_from
            .as_deref()
            .map(|f| format!(" (from {f})"))
            .unwrap_or_default(),
        i.os.map_or("release unknown", |o| o.name())
    );
    for p in &plan.profiles {
        let _ = writeln!(
            out,
            "profile {}: {} rules, {} applied ({} matched, {} matched nothing{}), {} skipped by region/release conditions",
            p.profile,
            p.rules,
            p.applied,
            p.matched,
            p.unmatched,
            if p.unmatched_allowed > 0 {
                format!(", {} of them optional or unchecked", p.unmatched_allowed)
            } else {
                String::new()
            },
            p.skipped_by_condition
        );
    }
    let _ = writeln!(
        out,
        "\n{} removals, {} refused, {} freed",
        plan.removed.len(),
        plan.refused.len(),
        human_size(plan.freed_total)
    );
    for (p, n) in &plan.freed {
        let _ = writeln!(out, "    {p:<11} {}", human_size(*n));
    }
    out
}

/// Runs `debloat`.
pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    if !args.dry_run {
        return Err(Error::Usage(
            "debloat only plans: add --dry-run (romkit build applies a profile to a package)"
                .into(),
        ));
    }
    let profile = load_checked(&args.profile, args.allow_unsafe)?;
    let loaded = crate::apps::load(&args.rom, None, ctx.jobs)?;
    let apps = crate::apps::identify(loaded.locate(), ctx.jobs);
    let plan = debloat::plan(
        &profile,
        &apps,
        &loaded.partitions,
        PlanOptions {
            allow_unsafe: args.allow_unsafe,
        },
    );
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    for n in &plan.notes {
        tracing::info!("{n}");
    }
    if ctx.json {
        emit_json(&plan)?;
    } else {
        emit(&render_plan(&plan))?;
    }
    let failed = !plan.refused.is_empty() || (args.strict && plan.unmatched > 0);
    if failed && !ctx.quiet {
        if !plan.refused.is_empty() {
            eprintln!(
                "romkit: {} protected item(s) refused; a build with this profile would stop",
                plan.refused.len()
            );
        }
        if args.strict && plan.unmatched > 0 {
            eprintln!(
                "romkit: --strict: {} rule(s) or prop edit(s) match nothing",
                plan.unmatched
            );
        }
    }
    Ok(if failed { EXIT_CHECK } else { 0 })
}
