//! Small text files inside packages: `KEY=value` lines (build.prop,
//! `META-INF/com/android/metadata`, `payload_properties.txt`, `misc.txt`) and
//! reads bounded by a size limit.

use std::io::{self, Read};

/// The `KEY=value` lines of `text` in order, keys and values trimmed; blank
/// lines, `#` comments and lines without `=` skipped. Collect into a map for
/// "later keys win", or into a `Vec` to keep order and repeats.
pub fn key_values(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
}

/// Why a bounded text read failed.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// The container declares more bytes than a text of this kind may have.
    #[error("declares {declared} bytes; at most {limit} expected")]
    Declared {
        /// What the container says.
        declared: u64,
        /// The limit.
        limit: u64,
    },
    /// The data grew past the limit while being read (a lying size field or
    /// a decompression bomb).
    #[error("inflates past {limit} bytes")]
    TooLong {
        /// The limit.
        limit: u64,
    },
    /// Reading failed.
    #[error("cannot be read: {0}")]
    Io(#[from] io::Error),
}

/// Reads at most `limit` bytes of text from `r`, which its container says
/// holds `declared` bytes; invalid UTF-8 is replaced, never an error.
pub fn read_bounded(r: impl Read, declared: u64, limit: u64) -> Result<String, TextError> {
    if declared > limit {
        return Err(TextError::Declared { declared, limit });
    }
    let mut buf = Vec::new();
    r.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(TextError::TooLong { limit });
    }
    Ok(match String::from_utf8(buf) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_skip_comments_and_trim() {
        let got: Vec<_> = key_values("# c\n a = 1 \n\nnoeq\nb=x=y\na=2\n").collect();
        let want = [("a", "1"), ("b", "x=y"), ("a", "2")];
        assert_eq!(got.len(), want.len());
        for ((k, v), (wk, wv)) in got.iter().zip(want) {
            assert_eq!((k.as_str(), v.as_str()), (wk, wv));
        }
    }

    #[test]
    fn bounded_reads() {
        assert_eq!(read_bounded(&b"abc"[..], 3, 3).unwrap(), "abc");
        assert!(matches!(
            read_bounded(&b"abcd"[..], 3, 3),
            Err(TextError::TooLong { limit: 3 })
        ));
        assert!(matches!(
            read_bounded(&b""[..], 10, 3),
            Err(TextError::Declared { declared: 10, .. })
        ));
    }
}
