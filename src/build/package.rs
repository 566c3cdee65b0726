//! Stage 6, package: the images in the work folder laid out as the output
//! format asks, by the package writers.

use std::collections::BTreeSet;
use std::path::Path;

use super::open::Source;
use super::sources::ImageSource;
use super::{BuildOptions, OutputFormat};
use crate::error::{Error, Result};
use crate::rom::fastboot::{FromRom, PackageFormat};

/// Writes the output package from the images in `work`.
pub(super) fn package(
    source: &Source,
    sources: &[(String, ImageSource)],
    work: &Path,
    output: &Path,
    input: &Path,
    opts: &BuildOptions,
) -> Result<()> {
    match opts.format {
        OutputFormat::Fastboot => {
            let format = match output.extension().and_then(|e| e.to_str()) {
                Some("tgz") | Some("gz") => PackageFormat::Tgz,
                _ => PackageFormat::Zip,
            };
            let device = source
                .device
                .clone()
                .ok_or_else(|| Error::invalid(input, "the package does not name its device"))?;
            let from = FromRom {
                device,
                split: opts.split,
                super_size: None,
                disable_verification: true,
            };
            crate::rom::fastboot::from_rom(
                &source.rom,
                work,
                &from,
                output,
                format,
                opts.jobs,
                opts.force,
            )?;
        }
        OutputFormat::Ota => {
            // Unchanged partitions of a full payload keep their operations.
            let copy: BTreeSet<String> = sources
                .iter()
                .filter(|(_, s)| {
                    source.rom.payload().is_some_and(|p| !p.is_incremental()) && s.is_unchanged()
                })
                .map(|(n, _)| n.clone())
                .collect();
            super::write_ota(&source.rom, work, output, opts, &source.info, &copy)?
        }
        OutputFormat::Images => {
            let stage = work.join("images");
            std::fs::create_dir(&stage).map_err(|e| Error::io(&stage, e))?;
            for (name, _) in sources {
                let to = stage.join(format!("{name}.img"));
                std::fs::rename(work.join(format!("{name}.img")), &to)
                    .map_err(|e| Error::io(&to, e))?;
            }
            if output.exists() && opts.force {
                std::fs::remove_dir_all(output).map_err(|e| Error::io(output, e))?;
            }
            std::fs::rename(&stage, output).map_err(|e| Error::io(output, e))?;
        }
    }
    Ok(())
}
