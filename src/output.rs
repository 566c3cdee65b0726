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
    _tracked: Tracked,
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
        let tracked = track(&tmp);
        Ok(AtomicFile {
            file: Some(file),
            tmp,
            dest: dest.to_path_buf(),
            committed: false,
            _tracked: tracked,
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

    /// Every queued file is gone once the remover finishes; a missing one
    /// is no error, and a file not queued stays.
    #[test]
    fn remover_deletes_what_it_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["a.img", "b.img", "keep.img"];
        for n in names {
            std::fs::write(dir.path().join(n), n).unwrap();
        }
        let r = Remover::default();
        r.remove(&dir.path().join("a.img"));
        r.remove(&dir.path().join("missing.img"));
        r.remove(&dir.path().join("b.img"));
        r.finish();
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["keep.img"]);
    }
}

/// Temporary files and folders of this process, removed when a signal ends it.
static TRACKED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Keeps a temporary path registered for removal on SIGINT/SIGTERM/SIGHUP;
/// unregisters it when dropped (the owner removes it in the normal course).
#[derive(Debug)]
pub struct Tracked(PathBuf);

/// Registers `path` for removal if a signal ends the process.
pub fn track(path: &Path) -> Tracked {
    if let Ok(mut t) = TRACKED.lock() {
        t.push(path.to_path_buf());
    }
    Tracked(path.to_path_buf())
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Ok(mut t) = TRACKED.lock()
            && let Some(i) = t.iter().rposition(|p| *p == self.0)
        {
            t.remove(i);
        }
    }
}

/// A temporary folder in `parent` (same filesystem as the output, so results
/// can be renamed into place), removed when dropped or when a signal ends
/// the process.
#[derive(Debug)]
pub struct TempDir {
    dir: tempfile::TempDir,
    _tracked: Tracked,
}

impl TempDir {
    /// The folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Creates a tracked temporary folder `parent/PREFIXxxxxxx`.
pub fn temp_dir_in(parent: &Path, prefix: &str) -> Result<TempDir> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    let tracked = track(dir.path());
    Ok(TempDir {
        dir,
        _tracked: tracked,
    })
}

/// Removes every tracked temporary path (best effort).
pub fn remove_tracked() {
    let paths: Vec<PathBuf> = match TRACKED.lock() {
        Ok(t) => t.clone(),
        Err(p) => p.into_inner().clone(),
    };
    for p in paths.iter().rev() {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir_all(p);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(p);
            }
            Err(_) => {}
        }
    }
}

/// Makes SIGINT, SIGTERM and SIGHUP remove every tracked temporary path and
/// exit with 128 + the signal number. Call before any other thread starts:
/// the signals are blocked in this thread (and so in every thread started
/// later) and received by a dedicated thread.
pub fn install_signal_cleanup() {
    // SAFETY: plain libc signal-set calls on a local, zero-initialised set;
    // pthread_sigmask only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return;
        }
        let _ = std::thread::Builder::new()
            .name("romkit-signals".into())
            .spawn(move || {
                let mut sig: libc::c_int = 0;
                // SAFETY: `set` is a valid, initialised signal set owned by this closure.
                if libc::sigwait(&set, &mut sig) == 0 {
                    remove_tracked();
                    eprintln!("romkit: interrupted (signal {sig}); temporary files removed");
                    libc::_exit(128 + sig);
                }
            });
    }
}

/// Bytes an unprivileged process may still write on the filesystem that
/// holds `dir`.
pub fn free_space(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: statvfs writes into a zeroed struct we own; `c` is a valid
    // NUL-terminated path.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
    }
}

/// The disk-space preflight: fails (exit 4) before any work when the
/// filesystem holding `dir` has less than `need` bytes free. `what` says
/// what the bytes are for.
pub fn ensure_space(dir: &Path, need: u64, what: &str) -> Result<()> {
    let free = free_space(dir).map_err(|e| Error::io(dir, e))?;
    if need > free {
        let mib = |b: u64| b.div_ceil(1 << 20);
        return Err(Error::io(
            dir,
            std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!(
                    "not enough space: {what} needs about {} MiB, {} MiB free \
                     (No space left on device; --no-space-check skips this estimate)",
                    mib(need),
                    mib(free)
                ),
            ),
        ));
    }
    Ok(())
}

/// Sparse image parts written atomically: `BASE` for a single file, or
/// `BASE.0`, `BASE.1`, … when split, each created under a temporary name
/// (registered for signal cleanup) and renamed by [`PartFiles::commit`].
pub struct PartFiles {
    base: PathBuf,
    split: bool,
    force: bool,
    files: Vec<AtomicFile>,
}

impl PartFiles {
    /// Files for `base` (split: `base.N`); existing files are refused unless `force`.
    pub fn new(base: &Path, split: bool, force: bool) -> Self {
        PartFiles {
            base: base.to_path_buf(),
            split,
            force,
            files: Vec::new(),
        }
    }

    /// The final path of part `index`.
    pub fn part_path(base: &Path, split: bool, index: usize) -> PathBuf {
        if split {
            let mut s = base.as_os_str().to_owned();
            s.push(format!(".{index}"));
            PathBuf::from(s)
        } else {
            base.to_path_buf()
        }
    }

    fn current(&mut self) -> std::io::Result<&mut File> {
        self.files
            .last_mut()
            .map(AtomicFile::file_mut)
            .ok_or_else(|| std::io::Error::other("no part started"))
    }

    /// Renames every part to its final name; returns the paths.
    pub fn commit(self) -> Result<Vec<PathBuf>> {
        self.files.into_iter().map(|f| f.commit()).collect()
    }
}

impl crate::format::sparse::PartSink for PartFiles {
    fn start(&mut self, index: usize) -> std::io::Result<()> {
        use std::io::Write;
        if !self.split && index > 0 {
            return Err(std::io::Error::other("more than one part without --split"));
        }
        let path = Self::part_path(&self.base, self.split, index);
        let mut f = AtomicFile::create(&path, self.force)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        f.file_mut()
            .write_all(&[0; crate::format::sparse::FILE_HEADER_SIZE])?;
        self.files.push(f);
        Ok(())
    }

    fn write(&mut self, body: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        self.current()?.write_all(body)
    }

    fn finish(
        &mut self,
        header: &[u8; crate::format::sparse::FILE_HEADER_SIZE],
    ) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.current()?.write_all_at(header, 0)
    }
}

/// An unnamed read-write scratch file in `dir` (on the same disk as the
/// output that will be made from it). It has no name, so nothing is left
/// behind however the process ends. Errors name `dir`.
pub fn scratch_file(dir: &Path) -> Result<File> {
    tempfile::tempfile_in(dir).map_err(|e| Error::io(dir, e))
}

/// Deletes files on a background thread, in the order given: freeing a
/// large file's blocks can wait for the device (on a file system mounted
/// with `discard`, about 0.3 s per GB), which the work that follows need not
/// wait for. [`Remover::finish`] (or dropping it) waits until all are gone.
/// Failures are ignored: the files are scratch files inside a folder that
/// is removed anyway.
pub struct Remover {
    tx: Option<std::sync::mpsc::Sender<PathBuf>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Default for Remover {
    fn default() -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<PathBuf>();
        let thread = std::thread::spawn(move || {
            for path in rx {
                let _ = std::fs::remove_file(path);
            }
        });
        Remover {
            tx: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Remover {
    /// Queues `path` for deletion.
    pub fn remove(&self, path: &Path) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(path.to_path_buf());
        }
    }

    /// Waits until every queued file is deleted.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Remover {
    fn drop(&mut self) {
        self.stop();
    }
}
