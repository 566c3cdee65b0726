//! The library's error type and how it maps to the exit codes of GUIDE.md §2.

use std::path::PathBuf;

use crate::format::image::OpenError;
use crate::format::lp::{LayoutError, LpError};
use crate::format::payload::PayloadError;
use crate::format::payload::writer::PayloadWriteError;
use crate::format::sparse::SparseError;

/// What went wrong, grouped by what the caller should conclude from it.
///
/// Every variant carries the file it concerns, so a message printed on its own
/// still tells the user where to look.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed (disk full, permission, missing file).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A payload.bin is malformed or unsupported.
    #[error("{}: {source}", file.display())]
    Payload {
        /// The package or payload file.
        file: PathBuf,
        /// What is wrong with it.
        source: Box<PayloadError>,
    },
    /// A sparse image is malformed, fails its CRC-32 or cannot be read.
    #[error("{}: {source}", file.display())]
    Sparse {
        /// The sparse file.
        file: PathBuf,
        /// What is wrong with it.
        source: Box<SparseError>,
    },
    /// LP metadata (a super image's partition table) is malformed, fails its
    /// SHA-256 or cannot be read.
    #[error("{}: {}", file.display(), lp_message(source))]
    Lp {
        /// The super image.
        file: PathBuf,
        /// What is wrong with it.
        source: Box<LpError>,
    },
    /// The input is not a package romkit can read, or is malformed outside payload.bin.
    #[error("{}: {msg}", file.display())]
    Invalid {
        /// The offending file.
        file: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A hash, checksum or signature did not match.
    #[error("{}: {msg}", file.display())]
    CheckFailed {
        /// The file whose content failed the check.
        file: PathBuf,
        /// Which check, what was expected and what was found.
        msg: String,
    },
    /// The command line asks for something impossible (unknown partition,
    /// output exists without `--force`).
    #[error("{0}")]
    Usage(String),
}

/// Exit code: a check failed.
pub const EXIT_CHECK: u8 = 1;
/// Exit code: usage error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: invalid or unsupported input.
pub const EXIT_INVALID: u8 = 3;
/// Exit code: I/O or environment error.
pub const EXIT_IO: u8 = 4;

impl Error {
    /// The process exit code this error maps to (GUIDE.md §2).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Io { .. } => EXIT_IO,
            Error::Payload { source, .. } => {
                if source.is_check_failure() {
                    EXIT_CHECK
                } else {
                    EXIT_INVALID
                }
            }
            Error::Sparse { source, .. } => match &**source {
                SparseError::Crc { .. } => EXIT_CHECK,
                SparseError::Io(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => EXIT_IO,
                _ => EXIT_INVALID,
            },
            Error::Lp { source, .. } => match &**source {
                LpError::Checksum { .. } => EXIT_CHECK,
                LpError::Io(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => EXIT_IO,
                _ => EXIT_INVALID,
            },
            Error::Invalid { .. } => EXIT_INVALID,
            Error::CheckFailed { .. } => EXIT_CHECK,
            Error::Usage(_) => EXIT_USAGE,
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A payload error about `file`. A failed write names the file written
    /// and is an I/O error.
    pub fn payload(file: impl Into<PathBuf>, source: PayloadError) -> Self {
        match source {
            PayloadError::Io { path, source, .. } => Error::Io { path, source },
            source => Error::Payload {
                file: file.into(),
                source: Box::new(source),
            },
        }
    }

    /// A sparse-image error about `file`: a CRC mismatch is a failed check
    /// (exit 1), a read error I/O (exit 4), the rest invalid input (exit 3).
    pub fn sparse(file: impl Into<PathBuf>, source: SparseError) -> Self {
        Error::Sparse {
            file: file.into(),
            source: Box::new(source),
        }
    }

    /// An LP metadata error about `file`: a checksum mismatch is a failed
    /// check (exit 1), a read error I/O (exit 4), the rest invalid input (exit 3).
    pub fn lp(file: impl Into<PathBuf>, source: LpError) -> Self {
        Error::Lp {
            file: file.into(),
            source: Box::new(source),
        }
    }

    /// A super layout that cannot be built or written at `dest`: an image
    /// for a partition the layout lacks is a usage error, a failed read or
    /// write I/O, the rest invalid input.
    pub fn layout(dest: impl Into<PathBuf>, source: LayoutError) -> Self {
        match source {
            e @ LayoutError::UnknownPartition(_) => Error::Usage(e.to_string()),
            LayoutError::Io(e) => Error::io(dest, e),
            e => Error::invalid(dest, e.to_string()),
        }
    }

    /// An invalid-input error about `file`.
    pub fn invalid(file: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Invalid {
            file: file.into(),
            msg: msg.into(),
        }
    }
}

impl From<crate::util::time::BadSourceDateEpoch> for Error {
    fn from(e: crate::util::time::BadSourceDateEpoch) -> Self {
        Error::Usage(e.to_string())
    }
}

/// The text after the file name for an LP error: a read error reads as the
/// I/O error alone, as for every other file.
fn lp_message(e: &LpError) -> String {
    match e {
        LpError::Io(io) if io.kind() != std::io::ErrorKind::UnexpectedEof => io.to_string(),
        e => e.to_string(),
    }
}

impl From<OpenError> for Error {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Io { path, source } => Error::Io { path, source },
            OpenError::NotSparse { path } => Error::invalid(
                path,
                "not an Android sparse image; only sparse parts can be merged",
            ),
            OpenError::Sparse { path, source } => Error::sparse(path, source),
        }
    }
}

impl From<PayloadWriteError> for Error {
    fn from(e: PayloadWriteError) -> Self {
        use PayloadWriteError as W;
        match e {
            W::BlockSize(_) | W::ChunkSize { .. } | W::Threads { .. } | W::PartitionName(_) => {
                Error::Usage(e.to_string())
            }
            W::Io { path, source } => Error::Io { path, source },
            W::ImageSize { ref path, .. } => Error::invalid(path.clone(), e.to_string()),
            W::CopyBlockSize { ref payload, .. }
            | W::CopyMissing { ref payload, .. }
            | W::CopyIncremental { ref payload, .. }
            | W::CopyMissingOp { ref payload, .. } => {
                Error::invalid(payload.clone(), e.to_string())
            }
            W::CopyHash { ref payload, .. } => Error::CheckFailed {
                file: payload.clone(),
                msg: e.to_string(),
            },
            W::Read { payload, source } => Error::payload(payload, *source),
        }
    }
}

// The conversions the format errors once carried themselves, kept for the
// callers that still use them.
impl SparseError {
    /// Same as [`Error::sparse`].
    pub fn into_error(self, file: &std::path::Path) -> Error {
        Error::sparse(file, self)
    }
}

impl LpError {
    /// Same as [`Error::lp`].
    pub fn into_error(self, file: &std::path::Path) -> Error {
        Error::lp(file, self)
    }
}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
