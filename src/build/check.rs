//! Stage 7, check: the output is re-opened as any input would be and every
//! partition image in it is compared with what was packaged. A mismatch
//! removes the output: nothing unchecked stays under the final name.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{BuiltPartition, OutputFormat, Space, sha256_file};
use crate::error::{Error, Result};
use crate::rom::Rom;

/// Re-opens the output and compares every partition image in it with what
/// was packaged.
pub(super) fn check_output(
    output: &Path,
    format: OutputFormat,
    expected: &[BuiltPartition],
    work: &Path,
    jobs: usize,
) -> Result<()> {
    let got = if format == OutputFormat::Images {
        expected
            .par_iter()
            .map(|p| {
                let f = output.join(format!("{}.img", p.name));
                Ok((p.name.clone(), sha256_file(&f)?))
            })
            .collect::<Result<_>>()?
    } else {
        read_back(output, work, jobs)?
    };
    compare(output, expected, &got)
}

/// Decodes every partition of the package `output` and hashes it.
fn read_back(output: &Path, work: &Path, jobs: usize) -> Result<Vec<(String, String)>> {
    let rom = Rom::open(output)?;
    let dir = work.join("check");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let requests: Vec<(String, PathBuf)> = rom
        .partitions()
        .into_iter()
        .map(|p| {
            let path = dir.join(format!("{}.img", p.name));
            (p.name, path)
        })
        .collect();
    rom.extract_partitions(&requests, jobs, false)?;
    requests
        .par_iter()
        .map(|(n, p)| {
            let h = sha256_file(p)?;
            let _ = std::fs::remove_file(p);
            Ok((n.clone(), h))
        })
        .collect()
}

fn compare(output: &Path, expected: &[BuiltPartition], got: &[(String, String)]) -> Result<()> {
    let fail = |msg: String| Error::CheckFailed {
        file: output.to_path_buf(),
        msg,
    };
    for e in expected {
        match got.iter().find(|(n, _)| *n == e.name) {
            None => {
                return Err(fail(format!(
                    "partition {} is missing from the output",
                    e.name
                )));
            }
            Some((_, h)) if *h != e.sha256 => {
                return Err(fail(format!(
                    "partition {} reads back as sha256 {h}, but {} was packaged",
                    e.name, e.sha256
                )));
            }
            _ => {}
        }
    }
    if got.len() != expected.len() {
        return Err(fail(format!(
            "the output has {} partitions, {} were packaged",
            got.len(),
            expected.len()
        )));
    }
    Ok(())
}

/// Removes a written output (after a failed check or manifest write).
pub(super) fn remove_output(output: &Path, format: OutputFormat) {
    let _ = if format == OutputFormat::Images {
        std::fs::remove_dir_all(output)
    } else {
        std::fs::remove_file(output)
    };
}

/// Fails, before anything is packaged, when the output's partitions no
/// longer fit a dynamic partition group or the super device: an in-place
/// edit appends blocks when a replaced file or a directory does not fit in
/// freed ones. The message names the space, the bytes missing and the
/// partitions that grew.
pub(super) fn check_fits(input: &Path, space: &[Space], parts: &[BuiltPartition]) -> Result<()> {
    let Some(full) = space.iter().find(|s| s.used > s.size) else {
        return Ok(());
    };
    let grown: Vec<String> = parts
        .iter()
        .filter(|p| p.size > p.source_size && p.source_size > 0)
        .map(|p| format!("{} +{} bytes", p.name, p.size - p.source_size))
        .collect();
    let grown = if grown.is_empty() {
        String::new()
    } else {
        format!(" (grown: {})", grown.join(", "))
    };
    Err(Error::invalid(
        input,
        format!(
            "the output does not fit: {} needs {} bytes, {} more than its {}{grown}; \
             remove less, or build with --repack to write the partitions smaller",
            full.name,
            full.used,
            full.used - full.size,
            full.size
        ),
    ))
}
