//! A super image written to a file: the LP layout codec of
//! [`crate::format::lp::SuperPlan`] over an atomically created output.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::image::ImageMap;
use crate::format::lp::{Metadata, SuperPlan};
use crate::format::sparse::SparseOptions;
use crate::output::{AtomicFile, PartFiles};

/// Writes a super image holding `m` and the partition images (by LP name;
/// partitions without an image are left empty) at `dest`: raw when `sparse`
/// is `None`, else as a sparse image (split into `dest.0 …` when the options
/// say so) with everything outside the metadata and the partitions
/// DONT_CARE. Existing outputs are refused unless `force`. Returns the files
/// written.
pub fn write_super(
    m: &Metadata,
    images: &[(String, &ImageMap)],
    dest: &Path,
    sparse: Option<&SparseOptions>,
    force: bool,
) -> Result<Vec<PathBuf>> {
    let plan = SuperPlan::new(m, images).map_err(|e| Error::layout(dest, e))?;
    match sparse {
        None => {
            let out = AtomicFile::create(dest, force)?;
            plan.write_raw(out.file())
                .map_err(|e| Error::io(out.tmp_path(), e))?;
            Ok(vec![out.commit()?])
        }
        Some(opts) => {
            let mut sink = PartFiles::new(dest, opts.split.is_some(), force);
            plan.write_sparse(opts, &mut sink)
                .map_err(|e| Error::layout(dest, e))?;
            sink.commit()
        }
    }
}
