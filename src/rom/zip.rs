//! The one way packages open zips: the central directory read with the
//! errors named, and every entry checked before anything is read from it
//! (no absolute or `..` names, no symlinks, no data past the end of the file,
//! no sizes deflate cannot produce, no name listed twice).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Reads the central directory of `file` (opened from `path`). A failing
/// disk is an I/O error; a directory that ends early or makes no sense is
/// an invalid package.
pub(crate) fn zip_archive(path: &Path, file: File) -> Result<zip::ZipArchive<File>> {
    use std::io::ErrorKind;
    zip::ZipArchive::new(file).map_err(|e| match e {
        zip::result::ZipError::Io(io)
            if !matches!(io.kind(), ErrorKind::UnexpectedEof | ErrorKind::InvalidData) =>
        {
            Error::io(path, io)
        }
        other => Error::invalid(path, format!("not a readable zip: {other}")),
    })
}

/// Opens `path` and reads its central directory.
pub(crate) fn open_zip(path: &Path) -> Result<zip::ZipArchive<File>> {
    zip_archive(path, File::open(path).map_err(|e| Error::io(path, e))?)
}

/// The first name the central directory at `start` lists twice.
fn first_duplicate_name(path: &Path, start: u64) -> Option<String> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path).ok()?;
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut cd = Vec::new();
    f.take(64 << 20).read_to_end(&mut cd).ok()?;
    let mut seen = std::collections::HashSet::new();
    let mut at = 0usize;
    while cd.get(at..at + 4)? == b"PK\x01\x02" {
        let le16 = |o: usize| {
            cd.get(at + o..at + o + 2)
                .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
        };
        let (n, m, k) = (le16(28)?, le16(30)?, le16(32)?);
        let name = cd.get(at + 46..at + 46 + n)?;
        if !seen.insert(name) {
            return Some(String::from_utf8_lossy(name).into_owned());
        }
        at += 46 + n + m + k;
    }
    None
}

/// Deflate cannot expand more than about 1032:1; a larger claim is a bomb or a lie.
pub(crate) const MAX_DEFLATE_RATIO: u64 = 1100;

/// Why a zip entry cannot be part of a package: a path leaving the folder it
/// is extracted to, a symbolic link, data past the end of the file, or sizes
/// no real entry has (stored with two different sizes, deflate claiming more
/// than it can expand to). Messages follow the entry's name.
#[derive(Debug, thiserror::Error)]
enum ZipEntryError {
    #[error("has an absolute or '..' path")]
    UnsafePath,
    #[error("is a symbolic link; a package holds only files and folders")]
    Symlink,
    #[error(
        "has {packed} bytes of data at offset {start}, past the end of the file ({file_len} bytes)"
    )]
    PastEnd {
        packed: u64,
        start: u64,
        file_len: u64,
    },
    #[error("is stored uncompressed but declares {size} bytes for {packed} stored bytes")]
    StoredSize { size: u64, packed: u64 },
    #[error("declares {size} bytes from {packed} deflated bytes, more than deflate can expand to")]
    DeflateRatio { size: u64, packed: u64 },
}

fn check_zip_entry(
    e: &zip::read::ZipFile<'_, File>,
    file_len: u64,
) -> std::result::Result<(), ZipEntryError> {
    let name = String::from_utf8_lossy(e.name_raw());
    if !super::images::safe_path(&name) {
        return Err(ZipEntryError::UnsafePath);
    }
    if e.is_symlink() {
        return Err(ZipEntryError::Symlink);
    }
    let (size, packed) = (e.size(), e.compressed_size());
    if let Some(start) = e.data_start()
        && start.checked_add(packed).is_none_or(|end| end > file_len)
    {
        return Err(ZipEntryError::PastEnd {
            packed,
            start,
            file_len,
        });
    }
    match e.compression() {
        zip::CompressionMethod::Stored if size != packed => {
            Err(ZipEntryError::StoredSize { size, packed })
        }
        zip::CompressionMethod::Deflated if size / MAX_DEFLATE_RATIO > packed + 1 => {
            Err(ZipEntryError::DeflateRatio { size, packed })
        }
        _ => Ok(()),
    }
}

pub(super) enum ZipKind {
    Payload,
    Block,
    Images,
    Other(String),
}

/// What a zip holds, from its entry names, once every entry of its central
/// directory has passed [`check_zip_entry`] and no name appears twice (a
/// second `payload.bin` or image would be read while the other one is checked,
/// or the other way round).
pub(super) fn zip_kind(path: &Path) -> Result<ZipKind> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut a = zip_archive(path, f)?;
    let mut names: Vec<String> = Vec::with_capacity(a.len());
    for i in 0..a.len() {
        let e = a
            .by_index_raw(i)
            .map_err(|e| Error::invalid(path, format!("zip entry #{i}: {e}")))?;
        let name = String::from_utf8_lossy(e.name_raw()).into_owned();
        check_zip_entry(&e, file_len)
            .map_err(|why| Error::invalid(path, format!("zip entry {name:?} {why}")))?;
        names.push(name);
    }
    // The zip reader keeps one entry per name: a second `payload.bin` or
    // image would be invisible to it while another reader takes it.
    if a.has_duplicate_names() {
        let name =
            first_duplicate_name(path, a.central_directory_start()).unwrap_or_else(|| "?".into());
        return Err(Error::invalid(
            path,
            format!("zip entry {name:?} appears more than once in the central directory"),
        ));
    }
    Ok(if names.iter().any(|n| n == "payload.bin") {
        ZipKind::Payload
    } else if names.iter().any(|n| n.ends_with(".transfer.list")) {
        ZipKind::Block
    } else if names
        .iter()
        .any(|n| n.split('/').rev().nth(1) == Some("images") && n.contains(".img"))
    {
        ZipKind::Images
    } else {
        let mut shown: Vec<&str> = names.iter().map(String::as_str).take(8).collect();
        if names.len() > 8 {
            shown.push("…");
        }
        ZipKind::Other(format!(" (entries: {})", shown.join(", ")))
    })
}
