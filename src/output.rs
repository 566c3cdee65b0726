//! Atomic outputs: write under a temporary name in the destination folder,
//! rename to the final name only once complete and checked.
//!
//! An interrupted or failed run therefore never leaves a half-written file
//! under a final name; the temporary file is removed when the guard is dropped
//! without being committed.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A file being written under a temporary name.
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

/// Refuses to replace an existing `dest` unless `force`.
pub fn check_overwrite(dest: &Path, force: bool) -> Result<()> {
    if !force && std::fs::symlink_metadata(dest).is_ok() {
        return Err(Error::Usage(format!(
            "{} already exists; pass --force to overwrite it",
            dest.display()
        )));
    }
    Ok(())
}

impl AtomicFile {
    /// Creates the temporary file for `dest`. With `force` false an existing
    /// `dest` is an error.
    pub fn create(dest: &Path, force: bool) -> Result<Self> {
        check_overwrite(dest, force)?;
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".into());
        let tmp = dir.join(format!(".{name}.romkit-{}.tmp", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        Ok(AtomicFile {
            file: Some(file),
            tmp,
            dest: dest.to_path_buf(),
            committed: false,
        })
    }

    /// The open temporary file.
    pub fn file(&self) -> &File {
        self.file.as_ref().expect("file open until commit")
    }

    /// Mutable access to the open temporary file.
    pub fn file_mut(&mut self) -> &mut File {
        self.file.as_mut().expect("file open until commit")
    }

    /// The temporary path.
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// The final path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Closes the file and renames it to its final name.
    pub fn commit(mut self) -> Result<PathBuf> {
        drop(self.file.take());
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        self.committed = true;
        Ok(self.dest.clone())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            drop(self.file.take());
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn commit_and_abandon() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a.img");
        let mut f = AtomicFile::create(&dest, false).unwrap();
        f.file_mut().write_all(b"hello").unwrap();
        assert!(!dest.exists());
        f.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        assert!(matches!(
            AtomicFile::create(&dest, false),
            Err(Error::Usage(_))
        ));
        let f = AtomicFile::create(&dest, true).unwrap();
        let tmp = f.tmp_path().to_path_buf();
        assert!(tmp.exists());
        drop(f);
        assert!(!tmp.exists());
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
