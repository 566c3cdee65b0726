//! The one loader from any input to partitions and their file trees, used by
//! `ls`, `cat`, `apps`, `inspect --manifest` and `build`.
//!
//! An input is a package (any kind [`Rom`] opens), a bare filesystem image or
//! a folder. A package's partitions are decoded, every hash checked, into a
//! temporary folder that is tracked for signal cleanup and removed when the
//! [`Decoded`] value is dropped.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::Rom;
use crate::error::{Error, Result};
use crate::fs::FsKind;
use crate::fs::tree::Tree;
use crate::output::TempDir;

/// What an input path is.
pub enum Input {
    /// A package.
    Package(Box<Rom>),
    /// A bare filesystem image.
    Image {
        /// The image.
        path: PathBuf,
        /// Its filesystem.
        kind: FsKind,
    },
    /// A folder (an `unpack --files` output, one partition's files, or APKs).
    Folder(PathBuf),
}

/// Tells what `path` is; a package is opened (and its structure checked).
pub fn open_input(path: &Path) -> Result<Input> {
    let md = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if md.is_dir() {
        return Ok(Input::Folder(path.to_path_buf()));
    }
    if let Some(kind) = crate::fs::sniff(path).map_err(|e| Error::io(path, e))? {
        return Ok(Input::Image {
            path: path.to_path_buf(),
            kind,
        });
    }
    Ok(Input::Package(Box::new(Rom::open(path)?)))
}

/// Reads a bare filesystem image's tree; the error names the image.
pub fn read_image_tree(path: &Path) -> Result<Tree> {
    crate::fs::read_tree(path).map_err(|e| match e {
        Some(msg) => Error::invalid(path, msg),
        None => Error::invalid(path, "holds no filesystem romkit can read"),
    })
}

/// One decoded partition.
pub struct DecodedPartition {
    /// Partition name.
    pub name: String,
    /// The decoded image, inside the [`Decoded`] folder.
    pub image: PathBuf,
    /// Its filesystem, if romkit reads it.
    pub kind: Option<FsKind>,
    /// Its file tree, when it holds a filesystem romkit reads.
    pub tree: Option<Tree>,
    /// SHA-256 (hex) and size of the image, when asked for.
    pub hash: Option<(String, u64)>,
}

/// Partitions decoded from a package, with their trees. The images live as
/// long as this value.
pub struct Decoded {
    /// The partitions, in the order asked for.
    pub partitions: Vec<DecodedPartition>,
    _dir: TempDir,
}

impl Rom {
    /// Decodes `names` (every hash checked) into a tracked temporary folder
    /// and reads each image's tree (and, with `hash`, its SHA-256) in
    /// parallel on `jobs` threads. A filesystem that cannot be read is an
    /// error naming the package and partition.
    pub fn decode_trees(&self, names: &[String], hash: bool, jobs: usize) -> Result<Decoded> {
        let dir = crate::output::temp_dir_in(&std::env::temp_dir(), "romkit-load-")?;
        let partitions = self.decode_trees_into(dir.path(), names, hash, jobs)?;
        Ok(Decoded {
            partitions,
            _dir: dir,
        })
    }

    /// [`Rom::decode_trees`] into a folder the caller owns (and cleans up):
    /// each image is `dir/NAME.img`.
    pub fn decode_trees_into(
        &self,
        dir: &Path,
        names: &[String],
        hash: bool,
        jobs: usize,
    ) -> Result<Vec<DecodedPartition>> {
        let requests: Vec<(String, PathBuf)> = names
            .iter()
            .map(|n| (n.clone(), dir.join(format!("{n}.img"))))
            .collect();
        self.extract_partitions(&requests, jobs, false)?;
        let run = || {
            requests
                .par_iter()
                .map(|(name, image)| self.read_decoded(name, image, hash))
                .collect::<Result<Vec<_>>>()
        };
        match rayon::ThreadPoolBuilder::new().num_threads(jobs).build() {
            Ok(pool) => pool.install(run),
            Err(_) => run(),
        }
    }

    fn read_decoded(&self, name: &str, image: &Path, hash: bool) -> Result<DecodedPartition> {
        let hash = if hash {
            Some(crate::util::hash::sha256_file(image).map_err(|e| Error::io(image, e))?)
        } else {
            None
        };
        let kind = crate::fs::sniff(image).map_err(|e| Error::io(image, e))?;
        let tree = match kind {
            Some(_) => Some(crate::fs::read_tree(image).map_err(|e| {
                Error::invalid(
                    format!("{}:{name}", self.path.display()),
                    e.unwrap_or_default(),
                )
            })?),
            None => None,
        };
        Ok(DecodedPartition {
            name: name.to_string(),
            image: image.to_path_buf(),
            kind,
            tree,
            hash,
        })
    }
}
