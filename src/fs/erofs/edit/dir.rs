//! Directory contents: parsing the blocks of an EROFS directory and writing
//! them again without some of their entries.
//!
//! A directory's content is a sequence of blocks; each starts with an array of
//! 12-byte dirents (nid, name offset, file type) whose first name offset also
//! gives the entry count, followed by the names, unterminated. The last name
//! of a block ends at the first NUL or at the end of the block (or of the
//! content, for the last block). Names are sorted across the whole directory,
//! which lets readers search block by block; removing entries keeps that order.

use super::super::layout::DIRENT_SIZE;

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dirent {
    /// Inode number (nid) of the target.
    pub nid: u64,
    /// File type (`layout::ft`).
    pub ftype: u8,
    /// Name, 1..=255 bytes, no `/` and no NUL.
    pub name: Vec<u8>,
}

/// Why a directory's content cannot be read or written.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DirError {
    /// A field of a dirent is out of range.
    #[error("directory block {block}: {field} = {value} at byte {offset}: {why}")]
    Field {
        /// Block index within the directory.
        block: usize,
        /// Field name.
        field: &'static str,
        /// The value found.
        value: u64,
        /// Byte offset within the block.
        offset: usize,
        /// What is wrong with it.
        why: &'static str,
    },
    /// An entry does not fit in a block of this size.
    #[error("entry {name:?} does not fit in a {block_size}-byte block")]
    TooLong {
        /// The name.
        name: String,
        /// Block size.
        block_size: usize,
    },
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

/// Parses a directory's content (`size` bytes, already gathered from its
/// blocks and inline tail) into blocks of entries.
pub fn parse(content: &[u8], block_size: usize) -> Result<Vec<Vec<Dirent>>, DirError> {
    let mut blocks = Vec::with_capacity(content.len().div_ceil(block_size.max(1)));
    for (bi, blk) in content.chunks(block_size.max(1)).enumerate() {
        let err = |field, value: u64, offset, why| DirError::Field {
            block: bi,
            field,
            value,
            offset,
            why,
        };
        if blk.len() < DIRENT_SIZE {
            return Err(err("length", blk.len() as u64, 0, "shorter than a dirent"));
        }
        let first = usize::from(le16(blk, 8));
        if first < DIRENT_SIZE || !first.is_multiple_of(DIRENT_SIZE) || first >= blk.len() {
            return Err(err(
                "nameoff",
                first as u64,
                8,
                "first name offset gives no whole dirent array inside the block",
            ));
        }
        let n = first / DIRENT_SIZE;
        let mut entries = Vec::with_capacity(n);
        for j in 0..n {
            let d = j * DIRENT_SIZE;
            let nid = u64::from_le_bytes(blk[d..d + 8].try_into().expect("8 bytes"));
            let off = usize::from(le16(blk, d + 8));
            let end = if j + 1 < n {
                usize::from(le16(blk, d + DIRENT_SIZE + 8))
            } else {
                let tail = blk.get(off..).unwrap_or(&[]);
                off + tail.iter().position(|&b| b == 0).unwrap_or(tail.len())
            };
            if off < first || off >= end || end > blk.len() {
                return Err(err(
                    "nameoff",
                    off as u64,
                    d + 8,
                    "name outside the block, empty or out of order",
                ));
            }
            let name = &blk[off..end];
            if name.len() > 255 || name.contains(&b'/') || name.contains(&0) {
                return Err(err("name", name.len() as u64, off, "not a valid file name"));
            }
            entries.push(Dirent {
                nid,
                ftype: blk[d + 10],
                name: name.to_vec(),
            });
        }
        blocks.push(entries);
    }
    Ok(blocks)
}

/// Bytes the entries take in a block.
pub fn used(entries: &[Dirent]) -> usize {
    entries.iter().map(|e| DIRENT_SIZE + e.name.len()).sum()
}

/// Drops the entries `keep` rejects. Blocks keep their entries where they
/// are, so untouched blocks keep their bytes; only when a block would be left
/// empty (which no reader accepts) is the directory packed again from the
/// start, each block filled in order as mkfs.erofs does.
pub fn remove(
    blocks: &[Vec<Dirent>],
    keep: impl Fn(&Dirent) -> bool,
    block_size: usize,
) -> Result<Vec<Vec<Dirent>>, DirError> {
    let kept: Vec<Vec<Dirent>> = blocks
        .iter()
        .map(|b| b.iter().filter(|e| keep(e)).cloned().collect())
        .collect();
    if kept.iter().all(|b| !b.is_empty()) {
        return Ok(kept);
    }
    pack(kept.into_iter().flatten().collect(), block_size)
}

/// Packs entries into blocks, each as full as it can be.
pub fn pack(entries: Vec<Dirent>, block_size: usize) -> Result<Vec<Vec<Dirent>>, DirError> {
    let mut blocks: Vec<Vec<Dirent>> = vec![Vec::new()];
    let mut fill = 0usize;
    for e in entries {
        let need = DIRENT_SIZE + e.name.len();
        if need > block_size {
            return Err(DirError::TooLong {
                name: String::from_utf8_lossy(&e.name).into_owned(),
                block_size,
            });
        }
        if fill + need > block_size {
            blocks.push(Vec::new());
            fill = 0;
        }
        fill += need;
        blocks.last_mut().expect("one block at least").push(e);
    }
    Ok(blocks)
}

/// The content bytes of a directory: every block but the last padded with
/// zeros to the block size, the last as long as its entries.
pub fn serialize(blocks: &[Vec<Dirent>], block_size: usize) -> Result<Vec<u8>, DirError> {
    let mut out = Vec::with_capacity(blocks.len() * block_size);
    for (bi, b) in blocks.iter().enumerate() {
        let len = used(b);
        if len > block_size || len > usize::from(u16::MAX) {
            return Err(DirError::Field {
                block: bi,
                field: "length",
                value: len as u64,
                offset: 0,
                why: "entries exceed the block",
            });
        }
        let start = out.len();
        let mut nameoff = b.len() * DIRENT_SIZE;
        for e in b {
            out.extend_from_slice(&e.nid.to_le_bytes());
            out.extend_from_slice(&(nameoff as u16).to_le_bytes());
            out.push(e.ftype);
            out.push(0);
            nameoff += e.name.len();
        }
        for e in b {
            out.extend_from_slice(&e.name);
        }
        if bi + 1 < blocks.len() {
            out.resize(start + block_size, 0);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(name: &str, nid: u64) -> Dirent {
        Dirent {
            nid,
            ftype: 1,
            name: name.as_bytes().to_vec(),
        }
    }

    #[test]
    fn round_trip_and_removal() {
        let names: Vec<Dirent> = (0..200).map(|i| ent(&format!("f{i:04}"), i)).collect();
        let blocks = pack(names, 512).unwrap();
        assert!(blocks.len() > 2);
        let bytes = serialize(&blocks, 512).unwrap();
        assert_eq!(parse(&bytes, 512).unwrap(), blocks);
        // Removing a few entries keeps the blocks where they are.
        let fewer = remove(&blocks, |e| e.nid % 7 != 3, 512).unwrap();
        assert_eq!(fewer.len(), blocks.len());
        let again = parse(&serialize(&fewer, 512).unwrap(), 512).unwrap();
        assert_eq!(again, fewer);
        // Emptying the first block repacks.
        let first: Vec<u64> = blocks[0].iter().map(|e| e.nid).collect();
        let packed = remove(&blocks, |e| !first.contains(&e.nid), 512).unwrap();
        assert!(packed.iter().all(|b| !b.is_empty()));
        assert_eq!(packed.concat().len(), 200 - first.len());
    }

    #[test]
    fn hostile_blocks() {
        assert!(parse(&[0u8; 5], 4096).is_err());
        let mut b = vec![0u8; 24];
        b[8] = 13;
        assert!(parse(&b, 4096).is_err());
        b[8] = 12;
        assert!(parse(&b, 4096).is_err(), "empty name");
    }
}
