//! Stage 1, open and verify: everything that can be refused is refused here,
//! before any work — the profile (and the protected items it reaches), existing
//! outputs without `--force`, an input whose zip entries fail their CRC-32.

use std::path::{Path, PathBuf};

use super::{BuildOptions, Chain, manifest_path};
use crate::debloat::{self, Profile};
use crate::error::{Error, Result};
use crate::output::TempDir;
use crate::rom::{BuildInfo, Rom};

/// The files a build writes besides the package.
pub(super) struct Destination {
    /// `OUT.manifest.json`.
    pub manifest_json: PathBuf,
    /// `OUT.manifest.yaml`, when asked for.
    pub manifest_yaml: Option<PathBuf>,
}

/// The opened input.
pub(super) struct Source {
    /// Its path.
    pub input: PathBuf,
    /// The package.
    pub rom: Rom,
    /// What it says about its build.
    pub info: BuildInfo,
    /// Its device codename (the first one when it lists several).
    pub device: Option<String>,
}

/// Loads the profile; refuses one that reaches protected items unless
/// `allow_unsafe`.
pub(super) fn load_profile(opts: &BuildOptions) -> Result<Profile> {
    let refuse = |e: debloat::ProfileError| Error::Invalid {
        file: PathBuf::from(e.location),
        msg: e.message,
    };
    let profile = debloat::load(&opts.profile).map_err(refuse)?;
    debloat::check_protected(&profile, opts.allow_unsafe).map_err(refuse)?;
    Ok(profile)
}

/// The output's manifest paths; refuses any output that exists without `force`.
pub(super) fn destination(output: &Path, opts: &BuildOptions) -> Result<Destination> {
    let manifest_json = manifest_path(output, "json");
    let manifest_yaml = opts.manifest_yaml.then(|| manifest_path(output, "yaml"));
    crate::output::check_overwrite(output, opts.force)?;
    crate::output::check_overwrite(&manifest_json, opts.force)?;
    if let Some(y) = &manifest_yaml {
        crate::output::check_overwrite(y, opts.force)?;
    }
    Ok(Destination {
        manifest_json,
        manifest_yaml,
    })
}

/// Opens the input and, with `verify`, checks its zip entries' CRC-32s
/// (payload and sparse hashes are checked while decoding).
pub(super) fn open_and_verify(input: &Path, verify: bool) -> Result<Source> {
    let rom = Rom::open(input)?;
    if verify && rom.ota_zip().is_some() {
        let bad = crate::rom::ota::OtaZip::check_entry_crcs(input)?;
        if let Some((entry, msg)) = bad.first() {
            return Err(Error::CheckFailed {
                file: input.to_path_buf(),
                msg: format!("zip entry {entry}: {msg}"),
            });
        }
    }
    let info = rom.build_info();
    let device = info
        .device
        .as_deref()
        .and_then(|d| d.split(',').next())
        .map(str::to_string);
    Ok(Source {
        input: input.to_path_buf(),
        rom,
        info,
        device,
    })
}

/// The folder the output goes in (created) and a work folder inside it, so
/// that the final step is a rename on one filesystem.
pub(super) fn work_dir(output: &Path) -> Result<(PathBuf, TempDir)> {
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let work = crate::output::temp_dir_in(&parent, ".romkit-build-")?;
    Ok((parent, work))
}

/// Applies every step of `chain` but the last (in temporary folders in
/// `parent`) and gives the last step's package, `source`, the images it
/// applies to. Returns the chain as the manifest records it (file names,
/// kinds, sizes and SHA-256s, base first) and the folders to keep until
/// the build is done.
pub(super) fn prepare_chain(
    chain: &Chain,
    source: &mut Source,
    parent: &Path,
    opts: &BuildOptions,
) -> Result<(
    Vec<crate::manifest::SourceRecord>,
    crate::rom::incremental::Prepared,
)> {
    let before = chain.steps[..chain.steps.len().saturating_sub(1)]
        .iter()
        .map(|p| Rom::open(p))
        .collect::<Result<Vec<_>>>()?;
    let prepared =
        crate::rom::incremental::prepare(&chain.base, &before, &source.rom, parent, opts.jobs)?;
    // A base package is recorded by its kind; a folder or a bare image by
    // what it is on disk.
    let base_rom = Rom::open(&chain.base).ok();
    let mut records = vec![crate::manifest::SourceRecord::of(
        &chain.base,
        base_rom.as_ref(),
        "base",
    )?];
    let roms = before.iter().chain([&source.rom]);
    for (path, rom) in chain.steps.iter().zip(roms) {
        records.push(crate::manifest::SourceRecord::of(
            path,
            Some(rom),
            "applied",
        )?);
    }
    source.rom.source_images = Some(prepared.images.clone());
    Ok((records, prepared))
}
