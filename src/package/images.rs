//! Writing a folder of partition images (`NAME.img`, raw): what
//! `rom::images` reads as a folder input.

use std::path::Path;

use crate::error::{Error, Result};

/// Moves the images `names` from `work` (as `NAME.img`, on the same
/// filesystem as `dest`) into the folder `dest`, staged under `work` and
/// renamed into place; an existing `dest` is replaced only with `force`.
pub fn write_folder<'a>(
    work: &Path,
    names: impl IntoIterator<Item = &'a str>,
    dest: &Path,
    force: bool,
) -> Result<()> {
    let stage = work.join("images");
    std::fs::create_dir(&stage).map_err(|e| Error::io(&stage, e))?;
    for name in names {
        let to = stage.join(format!("{name}.img"));
        std::fs::rename(work.join(format!("{name}.img")), &to).map_err(|e| Error::io(&to, e))?;
    }
    if dest.exists() && force {
        std::fs::remove_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    }
    std::fs::rename(&stage, dest).map_err(|e| Error::io(dest, e))
}
