//! A raw image file written out as an Android sparse image (or split parts).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::source::FileSlice;
use crate::format::sparse::{self, PartSummary, SparseOptions};
use crate::output::PartFiles;

/// Writes the raw image file `src` as a sparse image at `dest` (split into
/// `dest.0`, `dest.1`, … when `opts.split` is set). Blocks of one repeated
/// 4-byte word become FILL chunks; nothing is DONT_CARE. Existing outputs
/// are refused unless `force`. Returns the files written and what each holds.
pub fn sparse_raw_file(
    src: &Path,
    dest: &Path,
    opts: &SparseOptions,
    force: bool,
) -> Result<(Vec<PathBuf>, Vec<PartSummary>)> {
    let slice = FileSlice::open(src).map_err(|e| Error::io(src, e))?;
    let mut sink = PartFiles::new(dest, opts.split.is_some(), force);
    let parts =
        sparse::write_raw(&slice, slice.len(), opts, &mut sink).map_err(|e| Error::io(dest, e))?;
    let paths = sink.commit()?;
    Ok((paths, parts))
}
