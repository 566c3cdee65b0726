//! Directory blocks: reading their records and unlinking an entry the way
//! the kernel does (the record joins the previous one's `rec_len`; the first
//! record of a block keeps its length and gets inode 0). Works on linear
//! directories and on the leaf blocks of hashed (htree) ones; the index
//! blocks of an htree read as one empty record and are never changed.

/// What is wrong with a directory block.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// A record's length is out of range.
    #[error("record at byte {offset} of the block: rec_len {rec_len} (name_len {name_len})")]
    RecLen {
        /// Offset of the record in the block.
        offset: usize,
        /// Its `rec_len`.
        rec_len: usize,
        /// Its `name_len`.
        name_len: usize,
    },
}

/// One record of a directory block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Offset in the block.
    pub off: usize,
    /// Inode number, 0 for an unused record.
    pub inode: u32,
    /// Record length.
    pub rec_len: usize,
    /// File type code (1 file, 2 directory, 7 symlink, …).
    pub file_type: u8,
    /// The name.
    pub name: Vec<u8>,
}

fn rec_len_from_disk(v: u16, bs: usize) -> usize {
    if bs >= 65536 && (v == 0 || v == 0xFFFF) {
        bs
    } else {
        usize::from(v)
    }
}

fn rec_len_to_disk(len: usize, bs: usize) -> u16 {
    if len >= 65536 && bs >= 65536 {
        0xFFFF
    } else {
        len as u16
    }
}

/// Every record of a block, unused ones included.
pub fn parse(block: &[u8]) -> Result<Vec<Entry>, DirError> {
    let bs = block.len();
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < bs {
        if off + 8 > bs {
            return Err(DirError::RecLen {
                offset: off,
                rec_len: bs - off,
                name_len: 0,
            });
        }
        let inode = u32::from_le_bytes(block[off..off + 4].try_into().expect("4 bytes"));
        let rec_len = rec_len_from_disk(u16::from_le_bytes([block[off + 4], block[off + 5]]), bs);
        let name_len = usize::from(block[off + 6]);
        if rec_len < 8 + name_len || !rec_len.is_multiple_of(4) || off + rec_len > bs {
            return Err(DirError::RecLen {
                offset: off,
                rec_len,
                name_len,
            });
        }
        out.push(Entry {
            off,
            inode,
            rec_len,
            file_type: block[off + 7],
            name: block[off + 8..off + 8 + name_len].to_vec(),
        });
        off += rec_len;
    }
    Ok(out)
}

/// Unlinks record `i` of `entries` (as [`parse`] returned them) in `block`.
pub fn unlink(block: &mut [u8], entries: &mut [Entry], i: usize) {
    let bs = block.len();
    let e = entries[i].clone();
    // The previous record, in use or not, absorbs this one; records are
    // contiguous, so it is the one whose end is this one's start.
    if let Some(p) = (0..i)
        .rev()
        .find(|&p| entries[p].off + entries[p].rec_len == e.off)
    {
        let len = entries[p].rec_len + e.rec_len;
        entries[p].rec_len = len;
        let at = entries[p].off + 4;
        block[at..at + 2].copy_from_slice(&rec_len_to_disk(len, bs).to_le_bytes());
        // Now inside the previous record: never anyone's predecessor.
        entries[i].rec_len = 0;
    } else {
        block[e.off..e.off + 4].fill(0);
    }
    entries[i].inode = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(inode: u32, rec_len: u16, name: &[u8]) -> Vec<u8> {
        let mut v = inode.to_le_bytes().to_vec();
        v.extend(rec_len.to_le_bytes());
        v.push(name.len() as u8);
        v.push(1);
        v.extend(name);
        v.resize(usize::from(rec_len), 0);
        v
    }

    #[test]
    fn unlink_merges_into_the_previous_record_or_clears_the_first() {
        let mut b = [rec(12, 12, b"a"), rec(13, 12, b"b"), rec(14, 40, b"c")].concat();
        let mut es = parse(&b).unwrap();
        unlink(&mut b, &mut es, 1);
        let after = parse(&b).unwrap();
        assert_eq!(after.len(), 2);
        assert_eq!((after[0].inode, after[0].rec_len), (12, 24));
        unlink(&mut b, &mut es, 0);
        let after = parse(&b).unwrap();
        assert_eq!((after[0].inode, after[0].rec_len), (0, 24));
        assert_eq!(after[1].name, b"c");
    }

    #[test]
    fn bad_record_lengths_are_errors() {
        let b = [rec(12, 12, b"a"), rec(13, 6, b"")].concat();
        let mut b = b;
        b.resize(24, 0);
        assert!(parse(&b).is_err());
    }
}
