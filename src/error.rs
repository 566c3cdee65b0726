//! The library's error type and how it maps to the exit codes of GUIDE.md §2.

use std::path::PathBuf;

use crate::format::payload::PayloadError;

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

    /// A payload error about `file`.
    pub fn payload(file: impl Into<PathBuf>, source: PayloadError) -> Self {
        Error::Payload {
            file: file.into(),
            source: Box::new(source),
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

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
