//! Xiaomi's CRC lists, which a fastboot package flashes first when the
//! bootloader answers `getvar crc` with 1; the bootloader then refuses any
//! image whose CRC-32 differs from the list:
//!
//! ```text
//! images/crclist.txt        CRC-LIST
//!                           <partition> 0x<CRC-32 of the image file>
//! images/sparsecrclist.txt  SPARSECRC-LIST
//!                           <partition> <n> 0x<CRC-32 of part 1> … 0x<CRC-32 of part n>
//! ```
//!
//! Values are lowercase hex without leading zeros (`0x11ffca6`), as Xiaomi's
//! generator writes them. The parts of a sparse image are the downloads
//! fastboot sends it in ([`crate::format::sparse::download_part_crcs`]).

/// First line of `crclist.txt`.
pub const CRC_HEADER: &str = "CRC-LIST";
/// First line of `sparsecrclist.txt`.
pub const SPARSE_HEADER: &str = "SPARSECRC-LIST";

/// What is wrong with a CRC list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrcListError {
    /// The first line is not the list's header.
    #[error("line 1: expected {expected:?}, found {found:?}")]
    Header {
        /// The header the list needs.
        expected: &'static str,
        /// What the line says.
        found: String,
    },
    /// A line is not `<partition> …` with valid values.
    #[error("line {line}: {msg}")]
    Line {
        /// Line number (from 1).
        line: usize,
        /// What is wrong.
        msg: String,
    },
}

/// One line of either list: a partition and its CRC-32s (one for
/// `crclist.txt`, one per part for `sparsecrclist.txt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Partition name (`boot`, `super`).
    pub partition: String,
    /// CRC-32 values.
    pub crcs: Vec<u32>,
}

fn parse_hex(line: usize, s: &str) -> Result<u32, CrcListError> {
    s.strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| CrcListError::Line {
            line,
            msg: format!("{s:?} is not a 0x-prefixed CRC-32"),
        })
}

fn lines(text: &str, header: &'static str) -> Result<Vec<(usize, Vec<String>)>, CrcListError> {
    let mut it = text.lines().enumerate();
    let first = it.next().map_or("", |(_, l)| l.trim());
    if first != header {
        return Err(CrcListError::Header {
            expected: header,
            found: first.to_string(),
        });
    }
    Ok(it
        .map(|(i, l)| (i + 1, l.split_whitespace().map(str::to_string).collect()))
        .filter(|(_, w): &(usize, Vec<String>)| !w.is_empty())
        .collect())
}

/// Parses `crclist.txt`.
pub fn parse_crclist(text: &str) -> Result<Vec<Entry>, CrcListError> {
    lines(text, CRC_HEADER)?
        .into_iter()
        .map(|(line, w)| {
            if w.len() != 2 {
                return Err(CrcListError::Line {
                    line,
                    msg: format!("expected <partition> 0x<crc>, found {} words", w.len()),
                });
            }
            Ok(Entry {
                partition: w[0].clone(),
                crcs: vec![parse_hex(line, &w[1])?],
            })
        })
        .collect()
}

/// Parses `sparsecrclist.txt`.
pub fn parse_sparse(text: &str) -> Result<Vec<Entry>, CrcListError> {
    lines(text, SPARSE_HEADER)?
        .into_iter()
        .map(|(line, w)| {
            let n: usize = w
                .get(1)
                .and_then(|n| n.parse().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| CrcListError::Line {
                    line,
                    msg: "expected <partition> <parts> 0x<crc>…".into(),
                })?;
            if w.len() != n + 2 {
                return Err(CrcListError::Line {
                    line,
                    msg: format!("declares {n} parts but lists {} CRCs", w.len() - 2),
                });
            }
            Ok(Entry {
                partition: w[0].clone(),
                crcs: w[2..]
                    .iter()
                    .map(|s| parse_hex(line, s))
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

/// `crclist.txt` for `entries` (one CRC each).
pub fn render_crclist(entries: &[Entry]) -> String {
    let mut s = format!("{CRC_HEADER}\n");
    for e in entries {
        for c in &e.crcs {
            s.push_str(&format!("{} {c:#x}\n", e.partition));
        }
    }
    s
}

/// `sparsecrclist.txt` for `entries`.
pub fn render_sparse(entries: &[Entry]) -> String {
    let mut s = format!("{SPARSE_HEADER}\n");
    for e in entries {
        s.push_str(&format!("{} {}", e.partition, e.crcs.len()));
        for c in &e.crcs {
            s.push_str(&format!(" {c:#x}"));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip_in_xiaomis_spelling() {
        let text = "CRC-LIST\nboot 0xa6c00daf\nmultiimgoem 0x11ffca6\n";
        let e = parse_crclist(text).unwrap();
        assert_eq!(e[1].crcs, vec![0x011f_fca6]);
        assert_eq!(render_crclist(&e), text);
        let text = "SPARSECRC-LIST\nsuper 2 0x531d3681 0xb5cc636\nmetadata 1 0x0\n";
        let e = parse_sparse(text).unwrap();
        assert_eq!(e[0].crcs.len(), 2);
        assert_eq!(render_sparse(&e), text);
    }

    #[test]
    fn malformed_lists_name_the_line() {
        assert!(matches!(
            parse_crclist("SPARSECRC-LIST\n"),
            Err(CrcListError::Header { .. })
        ));
        assert_eq!(
            parse_sparse("SPARSECRC-LIST\nsuper 3 0x1 0x2\n"),
            Err(CrcListError::Line {
                line: 2,
                msg: "declares 3 parts but lists 2 CRCs".into()
            })
        );
        assert!(matches!(
            parse_crclist("CRC-LIST\nboot 12\n"),
            Err(CrcListError::Line { line: 2, .. })
        ));
    }
}
