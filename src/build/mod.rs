//! The pipeline `romkit build` runs, as stages, each in its own module:
//!
//! 1. `open`: refuse what can be refused (profile, protected items,
//!    existing outputs), open the input, check its zip CRCs;
//! 2. `decode`: choose which partitions become images and decode them;
//!    each app partition is read as a tree, its apps identified and every
//!    file hashed while the next one decodes (`plan::read_trees`);
//! 3. `plan`: plan the profile against the apps;
//! 4. `rebuild::apply`: apply the plan to the trees (for the manifest);
//! 5. `edit`: edit the touched partitions' images in place (the default),
//!    or with `--repack` write them again from their trees (`rebuild`);
//! 6. `package`: lay the images out in the output format;
//! 7. `check`: re-open the output and compare every image with what was
//!    packaged;
//! 8. `record`: the manifest and the report.
//!
//! The partitions outside the app set decode (and hash) while the app
//! partitions go through stages 2 to 5. Where each output image comes from is
//! decided once, as an [`ImageSource`].
//!
//! Everything is staged in a temporary folder beside the output (same
//! filesystem, so the final step is a rename); a failure or an interrupt
//! leaves nothing under the output's final name. Every image the build
//! decodes, edits or rebuilds is `NAME.img` in that folder.

mod check;
mod decode;
mod edit;
mod footer;
mod open;
pub(crate) mod package;
mod plan;
mod rebuild;
mod record;
mod sources;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::debloat::{Plan, Profile};
use crate::error::{Error, Result};
use crate::format::input_pages::InputPages;
use crate::fs::FsKind;
use crate::manifest::{Manifest, PartitionStatus};

pub use package::OtaReuse;
pub use sources::ImageSource;

/// What `build` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// A fastboot package (zip; `.tgz` or a folder by the output's name).
    Fastboot,
    /// A full recovery OTA zip with a new payload.bin.
    Ota,
    /// A folder of partition images.
    Images,
}

/// Options of a build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The profile (name or path).
    pub profile: String,
    /// Output kind.
    pub format: OutputFormat,
    /// Check the input's own hashes first (zip CRCs; payload and sparse
    /// hashes are always checked while decoding).
    pub verify: bool,
    /// Allow removing protected packages and paths.
    pub allow_unsafe: bool,
    /// Rules that match nothing fail the build.
    pub strict: bool,
    /// Split the fastboot package's super into parts of at most this size.
    pub split: Option<u64>,
    /// Layout and script names of a fastboot package.
    pub style: crate::package::fastboot::Style,
    /// Also write the manifest as YAML.
    pub manifest_yaml: bool,
    /// Replace existing outputs.
    pub force: bool,
    /// Estimate the space the build needs and fail before any work when
    /// the output's filesystem cannot hold it.
    pub space_check: bool,
    /// Rebuild the touched partitions from their trees (to shrink or
    /// recompress them) instead of editing their images in place.
    pub repack: bool,
    /// Convert touched ext4 partitions to EROFS (rebuilding them); the
    /// device's kernel must mount EROFS.
    pub ext4_to_erofs: bool,
    /// Worker threads.
    pub jobs: usize,
    /// Build from a previous build plus incremental packages instead of
    /// from one full package.
    pub chain: Option<Chain>,
}

/// A build's input as a previous build plus incremental packages: the last
/// step is the package built from, its payload applied to the images of
/// the steps before (checked against them before anything is written).
#[derive(Clone, Debug)]
pub struct Chain {
    /// The previous build: a full package, a folder of `PARTITION.img`
    /// images or one image.
    pub base: PathBuf,
    /// The incremental packages, in the order they apply.
    pub steps: Vec<PathBuf>,
}

impl Chain {
    /// The chain of `ROM [--source BASE] [--apply INC]…`: with a source,
    /// ROM is the first step; without, ROM is the base. `None` when nothing
    /// is applied.
    pub fn from_args(rom: &Path, source: Option<&Path>, apply: &[PathBuf]) -> Option<Chain> {
        match source {
            Some(base) => Some(Chain {
                base: base.to_path_buf(),
                steps: std::iter::once(rom.to_path_buf())
                    .chain(apply.iter().cloned())
                    .collect(),
            }),
            None if apply.is_empty() => None,
            None => Some(Chain {
                base: rom.to_path_buf(),
                steps: apply.to_vec(),
            }),
        }
    }
}

/// One partition of the output, as the report shows it.
#[derive(Clone, Debug, Serialize)]
pub struct BuiltPartition {
    /// Name.
    pub name: String,
    /// `passthrough`, `edited`, `rebuilt` or `patched`.
    pub status: PartitionStatus,
    /// For an edited partition, the blocks that differ from the source
    /// (appended ones included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_blocks: Option<u64>,
    /// For an edited partition with an AVB hashtree footer: whether the
    /// tree was recomputed or the footer stripped, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avb_footer: Option<String>,
    /// Filesystem, when it has one romkit reads.
    pub filesystem: Option<&'static str>,
    /// Size in the source.
    pub source_size: u64,
    /// Size in the output.
    pub size: u64,
    /// SHA-256 of the output image.
    pub sha256: String,
}

/// Room left in a dynamic partition group or the super device.
#[derive(Clone, Debug, Serialize)]
pub struct Space {
    /// `group NAME` or `super`.
    pub name: String,
    /// Its size (a group's maximum size).
    pub size: u64,
    /// Bytes the output's partitions take in it.
    pub used: u64,
    /// `size - used`.
    pub free: u64,
}

/// Seconds spent in each stage.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StageTimes {
    /// Opening and checking the input.
    pub open_verify: f64,
    /// Decoding the app partitions, each one's files read (apps identified,
    /// every file hashed for the manifest) while the next decodes.
    pub decode: f64,
    /// Decoding and hashing the other partitions the output needs as
    /// images, alongside decode, plan, manifest and rebuild.
    pub decode_other: f64,
    /// Planning the profile against the apps.
    pub plan: f64,
    /// Editing (or rebuilding) the changed filesystems.
    pub rebuild: f64,
    /// Applying the plan to the trees and recording every file in the
    /// manifest (with the hashes taken while decoding).
    pub manifest: f64,
    /// Writing the package.
    pub package: f64,
    /// Re-opening the output and checking it.
    pub verify_output: f64,
}

/// The result of a build.
#[derive(Debug, Serialize)]
pub struct BuildReport {
    /// The package (or folder) written.
    pub output: PathBuf,
    /// Its manifest.
    pub manifest: PathBuf,
    /// The YAML copy, if asked for.
    pub manifest_yaml: Option<PathBuf>,
    /// The output kind.
    pub format: OutputFormat,
    /// Every partition.
    pub partitions: Vec<BuiltPartition>,
    /// Apps removed.
    pub removed_apps: usize,
    /// Bytes freed in the file trees.
    pub freed: u64,
    /// build.prop edits made.
    pub prop_edits: usize,
    /// Room left in the dynamic partition groups and super.
    pub space: Vec<Space>,
    /// Warnings (unmatched rules and the like).
    pub warnings: Vec<String>,
    /// Stage timings.
    pub times: StageTimes,
    /// The fastboot package's scripts, checks and what was left out.
    pub fastboot: Option<crate::package::fastboot::FastbootSummary>,
    /// For an OTA, what became of the source payload's operations in each
    /// edited partition.
    pub ota_reuse: Vec<OtaReuse>,
    /// The plan that was applied.
    #[serde(skip)]
    pub plan: Plan,
}

/// `<output>.manifest.json` (and `.yaml`).
pub fn manifest_path(output: &Path, ext: &str) -> PathBuf {
    let mut s = output.as_os_str().to_owned();
    s.push(format!(".manifest.{ext}"));
    PathBuf::from(s)
}

fn sha256_file(path: &Path) -> Result<String> {
    crate::util::hash::sha256_file(path)
        .map(|(h, _)| h)
        .map_err(|e| Error::io(path, e))
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// Runs the whole pipeline.
pub fn build(input: &Path, output: &Path, opts: &BuildOptions) -> Result<BuildReport> {
    let mut times = StageTimes::default();
    let profile = open::load_profile(opts)?;
    let dest = open::destination(output, opts)?;
    let input = opts
        .chain
        .as_ref()
        .and_then(|c| c.steps.last())
        .map_or(input, PathBuf::as_path);
    let t = Instant::now();
    let mut source = open::open_and_verify(input, opts.verify)?;
    if opts.format == OutputFormat::Ota && source.rom.block().is_some() {
        // Block-based OTAs are made for devices without A/B slots, whose
        // recovery cannot apply a payload package.
        return Err(Error::Usage(format!(
            "{}: a block-based OTA is for a device without A/B slots, whose recovery cannot \
             flash the payload package --format ota writes; use --format fastboot or images",
            input.display()
        )));
    }
    if opts.format == OutputFormat::Fastboot {
        // An input whose scripts cannot be carried over fails now, not
        // after the rebuild.
        crate::package::fastboot::preflight(&source.rom)?;
    }
    times.open_verify = secs(t);

    // A build that decodes every partition reads its input only for that
    // and for the input's hash: the hash runs alongside the decode, and
    // each window of the input leaves the page cache once both are done
    // with it, for the decoded images to take its pages.
    let pages = decode::input_pages(&source.rom, input, opts.format).map(Arc::new);
    source.rom.input_pages = pages.clone();
    let mut input_hash = pages.map(InputHash::during_decode);

    let (parent, work) = open::work_dir(output)?;
    let work = work.path();
    // The steps before the last are applied beside the output; the last
    // one is applied while decoding, straight into the work folder.
    let prepared = match &opts.chain {
        Some(chain) => Some(open::prepare_chain(chain, &mut source, &parent, opts)?),
        None => None,
    };
    let t = Instant::now();
    let sel = decode::select(&source.rom, opts.format);
    // The package copies blobs the decode reads: their CRC-32s, taken as
    // they are read, spare the zip entry's CRC-32 a pass of its own.
    if let Some(p) = sel.copy_from {
        p.blob_crcs.keep();
    }
    if opts.space_check {
        decode::check_space(&source.rom, &sel, input, opts.format, &parent)?;
    }
    // The other partitions decode (and hash) while the app partitions are
    // read, planned and rebuilt.
    let (others, apps) = rayon::join(
        || decode::decode_others(&source.rom, &sel, work, opts.jobs),
        || app_stages(input, &source, &profile, &sel, work, opts, t),
    );
    let (mut apps, others) = (apps?, others?);
    times.decode_other = others.secs;
    apps.times.merge_into(&mut times);

    sources::sniff_others(&sel, input, work, &mut apps.filesystems)?;
    let patched = sources::patch_vbmeta(&sel, work)?;
    let images = sources::sources(&sel, &apps.changes, &patched, work);
    // The package writer hashes the edited images itself: an OTA that
    // reuses the source payload while it encodes their changed operations
    // again, a fastboot package while it writes super from them.
    let copy_payload = sel.copy_from.is_some();
    let later: BTreeSet<String> = images
        .iter()
        .filter(|_| match opts.format {
            OutputFormat::Ota => copy_payload,
            OutputFormat::Fastboot => true,
            OutputFormat::Images => false,
        })
        .filter(|(_, s)| matches!(s, ImageSource::Edited { .. }))
        .map(|(n, _)| n.clone())
        .collect();
    let mut partitions = record::partitions(
        &source.rom,
        &images,
        &apps.filesystems,
        &others.hashes,
        &later,
    )?;
    let space = record::space_report(&source.rom, &partitions);
    check::check_fits(input, &space, &partitions)?;
    if let Some((chain, _)) = &prepared {
        apps.manifest.input.chain = chain.clone();
    }

    // Otherwise the input is hashed for the manifest while the package is
    // written (which reads much of it too) and checked.
    if input_hash.is_none() && input.is_file() {
        input_hash = Some(InputHash::in_background(input));
    }
    let t = Instant::now();
    let packaged = package::package(
        &source,
        &images,
        &partitions,
        copy_payload,
        work,
        output,
        opts,
    );
    let packaged = packaged?;
    if let Err(e) = record::fill_hashes(&mut partitions, &packaged.image_hashes, output) {
        check::remove_output(output, opts.format);
        return Err(e);
    }
    times.package = secs(t);
    crate::util::pages::trim_heap();

    // The work images the check does not read are deleted while it runs
    // (an OTA's check reads the images it did not copy from the source,
    // and hands each on once checked).
    let remover = crate::output::Remover::default();
    let check_reads =
        |s: &ImageSource| opts.format == OutputFormat::Ota && copy_payload && !s.is_unchanged();
    for (_, s) in &images {
        if let Some(p) = s.path().filter(|_| !check_reads(s)) {
            remover.remove(p);
        }
    }
    let t = Instant::now();
    if let Err(e) = check::check_output(
        output,
        opts.format,
        (&partitions, &packaged.image_crcs),
        (work, &remover),
        opts.jobs,
        sel.copy_from,
    ) {
        check::remove_output(output, opts.format);
        return Err(e);
    }
    times.verify_output = secs(t);

    // The output's hash, taken while it was written, finishes alongside the
    // check.
    let written = match packaged.hash.map(crate::util::hash::Follower::wait) {
        Some(Ok(h)) => Some(crate::util::hex(&h)),
        Some(Err(e)) => {
            check::remove_output(output, opts.format);
            return Err(Error::io(output, e));
        }
        None => None,
    };
    if let Some(h) = input_hash {
        match h.join() {
            Ok(input_sha256) => apps.manifest.input.sha256 = Some(input_sha256),
            Err(e) => {
                check::remove_output(output, opts.format);
                return Err(Error::io(input, e));
            }
        }
    }
    if let Err(e) = record::write_manifest(
        apps.manifest,
        &partitions,
        output,
        written.as_deref(),
        &dest,
        opts,
    ) {
        check::remove_output(output, opts.format);
        let _ = std::fs::remove_file(&dest.manifest_json);
        return Err(e);
    }
    remover.finish();
    let mut r = report(output, dest, opts, partitions, space, apps.plan, times);
    r.fastboot = packaged.fastboot.map(|mut f| {
        f.sha256 = written;
        f
    });
    r.ota_reuse = packaged.ota_reuse;
    Ok(r)
}

/// The input's SHA-256 for the manifest, taken on a thread of its own; a
/// build that fails before it is joined stops it.
struct InputHash {
    pages: Option<Arc<InputPages>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<String>>>,
}

impl InputHash {
    /// Hashed alongside the decode, through `pages`, at the decode's own
    /// priority: the decode keeps every core busy, and the hash must pass
    /// each window before its pages can go.
    fn during_decode(pages: Arc<InputPages>) -> Self {
        let p = pages.clone();
        InputHash {
            pages: Some(pages),
            thread: Some(std::thread::spawn(move || {
                p.hash().map(|h| crate::util::hex(&h))
            })),
        }
    }

    /// Hashed on what cores the package's writer and the check leave: at a
    /// low priority, so that it never holds up their own threads.
    fn in_background(input: &Path) -> Self {
        let input = input.to_path_buf();
        InputHash {
            pages: None,
            thread: Some(std::thread::spawn(move || {
                crate::util::run_in_background();
                crate::util::hash::sha256_file(&input).map(|(h, _)| h)
            })),
        }
    }

    fn join(mut self) -> std::io::Result<String> {
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
            None => Err(std::io::Error::other("the input's hash was taken already")),
        }
    }
}

impl Drop for InputHash {
    fn drop(&mut self) {
        if let Some(p) = &self.pages {
            p.stop();
        }
    }
}

/// What the app stages hand on.
struct AppStages {
    times: AppTimes,
    filesystems: BTreeMap<String, FsKind>,
    changes: BTreeMap<String, sources::Change>,
    plan: Plan,
    manifest: Manifest,
}

/// Seconds spent in the app stages.
#[derive(Default)]
struct AppTimes {
    decode: f64,
    plan: f64,
    manifest: f64,
    rebuild: f64,
}

impl AppTimes {
    fn merge_into(&self, times: &mut StageTimes) {
        times.decode = self.decode;
        times.plan = self.plan;
        times.manifest = self.manifest;
        times.rebuild = self.rebuild;
    }
}

/// Stages 2 to 5 for the app partitions: decode, read trees and plan,
/// apply, edit or rebuild. `started` is when decoding began.
fn app_stages(
    input: &Path,
    source: &open::Source,
    profile: &Profile,
    sel: &decode::Selection<'_>,
    work: &Path,
    opts: &BuildOptions,
    started: Instant,
) -> Result<AppStages> {
    let mut times = AppTimes::default();
    // Every file is hashed as its partition is read (base APKs while they
    // are identified); the manifest takes those hashes.
    let hashes = crate::fs::tree::HashCache::default();
    let (mut trees, app_list) = plan::read_trees(&source.rom, &sel.apps, work, opts.jobs, &hashes)?;
    times.decode = secs(started);
    crate::util::pages::trim_heap();

    let t = Instant::now();
    let mut plan = plan::plan(input, profile, &trees.loaded, &app_list, opts)?;
    let mut manifest = record::start_manifest(input, &source.rom, profile, &app_list, &plan)?;
    drop(app_list);
    times.plan = secs(t);

    let t = Instant::now();
    let touched = rebuild::touched(&plan);
    let fs = &trees.filesystems;
    let methods = edit::methods(&plan, &trees.loaded, &touched, fs, input, opts)?;
    let converted = edit::converted(&methods, fs);
    rebuild::apply(
        &plan,
        &mut trees.loaded,
        &mut manifest,
        &hashes,
        input,
        work,
    )?;
    drop(hashes);
    times.manifest = secs(t);

    let t = Instant::now();
    crate::util::pages::trim_heap();
    let changes = write_touched(&mut trees, &methods, source, input, work, opts)?;
    times.rebuild = secs(t);
    if !converted.is_empty() {
        plan.warnings.push(edit::ext4_warning(&converted));
    }
    Ok(AppStages {
        times,
        filesystems: trees.filesystems,
        changes,
        plan,
        manifest,
    })
}

/// Edits in place, or rebuilds, every touched partition as `methods` says.
fn write_touched(
    trees: &mut plan::Trees,
    methods: &BTreeMap<String, edit::Method>,
    source: &open::Source,
    input: &Path,
    work: &Path,
    opts: &BuildOptions,
) -> Result<BTreeMap<String, sources::Change>> {
    // The edits read the images, not the trees.
    for lp in trees.loaded.iter_mut() {
        if matches!(methods.get(&lp.name), Some(edit::Method::Edit(_))) {
            lp.tree = None;
        }
    }
    let mut changes: BTreeMap<String, sources::Change> =
        edit::edit_all(methods, &trees.filesystems, input, work)?
            .into_iter()
            .map(|(n, e)| (n, sources::Change::Edited(e)))
            .collect();
    let rebuild: BTreeSet<String> = methods
        .iter()
        .filter(|(_, m)| **m == edit::Method::Rebuild)
        .map(|(n, _)| n.clone())
        .collect();
    let build_time = crate::util::time::source_date_epoch()?.or(source.info.timestamp);
    rebuild::rebuild(
        &mut trees.loaded,
        &rebuild,
        input,
        work,
        build_time,
        opts.jobs,
    )?;
    changes.extend(rebuild.into_iter().map(|n| (n, sources::Change::Rebuilt)));
    Ok(changes)
}

/// The report of a finished build.
fn report(
    output: &Path,
    dest: open::Destination,
    opts: &BuildOptions,
    partitions: Vec<BuiltPartition>,
    space: Vec<Space>,
    plan: Plan,
    times: StageTimes,
) -> BuildReport {
    BuildReport {
        output: output.to_path_buf(),
        manifest: dest.manifest_json,
        manifest_yaml: dest.manifest_yaml,
        format: opts.format,
        space,
        partitions,
        removed_apps: plan.removed.iter().filter(|r| r.package.is_some()).count(),
        freed: plan.freed_total,
        prop_edits: plan.props.len(),
        warnings: plan.warnings.clone(),
        times,
        fastboot: None,
        ota_reuse: Vec::new(),
        plan,
    }
}
