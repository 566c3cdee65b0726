//! Transfer lists of block-based OTAs (`system.transfer.list`, versions 1–4).
//!
//! The first line is the version, the second the number of blocks the `new`
//! commands write; versions 2 and later add two lines about the stash. Then
//! one command per line with a range set `N,a0,b0,a1,b1,…` (N numbers, half-
//! open block ranges). `new` takes its blocks, in order, from the
//! `.new.dat(.br)` stream; `zero` and `erase` leave zeros. The incremental
//! commands (`move`, `bsdiff`, `imgdiff`, `stash`, `free`) need the previous
//! build and are refused.

/// Block size of block-based OTAs.
pub const BLOCK: u64 = 4096;
/// Largest block number accepted (16 TiB of image).
const MAX_BLOCK: u64 = 1 << 32;

/// What a command does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Blocks from the new-data stream.
    New,
    /// Zeros.
    Zero,
    /// Discard (reads as zeros in a fresh image).
    Erase,
}

/// One command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// What it does.
    pub op: Op,
    /// Half-open block ranges.
    pub ranges: Vec<(u64, u64)>,
}

/// A parsed transfer list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferList {
    /// Version (1–4).
    pub version: u32,
    /// Blocks the `new` commands write, as declared.
    pub new_blocks: u64,
    /// The commands, in order.
    pub commands: Vec<Command>,
}

/// What is wrong with a transfer list. Lines are numbered from 1.
#[derive(Debug, thiserror::Error)]
pub enum SdatError {
    /// The text ends before a header line.
    #[error("ends before the {0} line")]
    Truncated(&'static str),
    /// The version line is not 1-4.
    #[error("line 1: version {0:?} is not 1, 2, 3 or 4")]
    Version(String),
    /// The block count line is not a number.
    #[error("line 2: block count {0:?} is not a number")]
    BlockCount(String),
    /// A command of an incremental OTA.
    #[error(
        "line {line}: command {command:?} patches the previous build (an incremental OTA); only full block OTAs (new, zero, erase) can be converted"
    )]
    Incremental {
        /// Line number.
        line: usize,
        /// The command.
        command: String,
    },
    /// An unknown command.
    #[error("line {line}: unknown command {command:?}")]
    UnknownCommand {
        /// Line number.
        line: usize,
        /// The command.
        command: String,
    },
    /// A range set is malformed.
    #[error("line {line}: range set {set:?}: {why}")]
    Ranges {
        /// Line number.
        line: usize,
        /// The range set as written.
        set: String,
        /// What is wrong with it.
        why: RangeError,
    },
    /// The `new` commands write another number of blocks than line 2 declares.
    #[error("line 2 declares {declared} new blocks, the new commands write {written}")]
    NewBlocks {
        /// Blocks declared on line 2.
        declared: u64,
        /// Blocks the `new` commands write.
        written: u64,
    },
}

/// What is wrong with a range set.
#[derive(Debug, thiserror::Error)]
pub enum RangeError {
    /// The leading count is not a number.
    #[error("the count is not a number")]
    Count,
    /// The count is odd, zero or not the number of values.
    #[error("declares {declared} numbers, has {found}, and the count must be even and positive")]
    CountMismatch {
        /// The count written.
        declared: usize,
        /// Numbers present.
        found: usize,
    },
    /// A value is not a block number.
    #[error("{0:?} is not a block number")]
    Block(String),
    /// A range is empty or reversed.
    #[error("range {0}..{1} is empty or reversed")]
    Reversed(u64, u64),
    /// A range ends past the largest accepted image.
    #[error("range {0}..{1} runs past the largest image romkit accepts ({MAX_BLOCK} blocks)")]
    TooLarge(u64, u64),
}

fn parse_ranges(s: &str, line: usize) -> Result<Vec<(u64, u64)>, SdatError> {
    let nums: Vec<&str> = s.split(',').collect();
    let bad = |why: RangeError| SdatError::Ranges {
        line,
        set: s.to_string(),
        why,
    };
    let count: usize = nums[0].parse().map_err(|_| bad(RangeError::Count))?;
    if count == 0 || !count.is_multiple_of(2) || count != nums.len() - 1 {
        return Err(bad(RangeError::CountMismatch {
            declared: count,
            found: nums.len() - 1,
        }));
    }
    let mut v = Vec::with_capacity(count / 2);
    for pair in nums[1..].chunks(2) {
        let a: u64 = pair[0]
            .parse()
            .map_err(|_| bad(RangeError::Block(pair[0].to_string())))?;
        let b: u64 = pair[1]
            .parse()
            .map_err(|_| bad(RangeError::Block(pair[1].to_string())))?;
        if a >= b {
            return Err(bad(RangeError::Reversed(a, b)));
        }
        if b > MAX_BLOCK {
            return Err(bad(RangeError::TooLarge(a, b)));
        }
        v.push((a, b));
    }
    Ok(v)
}

impl TransferList {
    /// Parses the text of a transfer list.
    pub fn parse(text: &str) -> Result<Self, SdatError> {
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
        let mut next = |what: &'static str| lines.next().ok_or(SdatError::Truncated(what));
        let (_, v) = next("version")?;
        let version: u32 = v
            .parse()
            .ok()
            .filter(|v| (1..=4).contains(v))
            .ok_or_else(|| SdatError::Version(v.to_string()))?;
        let (_, n) = next("block count")?;
        let new_blocks: u64 = n
            .parse()
            .map_err(|_| SdatError::BlockCount(n.to_string()))?;
        if version >= 2 {
            next("stash entries")?;
            next("stash size")?;
        }
        let mut commands = Vec::new();
        let mut written = 0u64;
        for (no, line) in lines {
            if line.is_empty() {
                continue;
            }
            let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
            let op = match cmd {
                "new" => Op::New,
                "zero" => Op::Zero,
                "erase" => Op::Erase,
                "move" | "bsdiff" | "imgdiff" | "stash" | "free" | "abort" => {
                    return Err(SdatError::Incremental {
                        line: no,
                        command: cmd.to_string(),
                    });
                }
                other => {
                    return Err(SdatError::UnknownCommand {
                        line: no,
                        command: other.to_string(),
                    });
                }
            };
            let ranges = parse_ranges(rest.trim(), no)?;
            if op == Op::New {
                written += ranges.iter().map(|(a, b)| b - a).sum::<u64>();
            }
            commands.push(Command { op, ranges });
        }
        if written != new_blocks {
            return Err(SdatError::NewBlocks {
                declared: new_blocks,
                written,
            });
        }
        Ok(TransferList {
            version,
            new_blocks,
            commands,
        })
    }

    /// Size of the image: up to the end of the highest range.
    pub fn image_size(&self) -> u64 {
        self.commands
            .iter()
            .flat_map(|c| c.ranges.iter().map(|r| r.1))
            .max()
            .unwrap_or(0)
            * BLOCK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_versions() {
        let t =
            TransferList::parse("4\n3\n0\n0\nerase 2,0,10\nnew 4,0,2,5,6\nzero 2,6,10\n").unwrap();
        assert_eq!(t.version, 4);
        assert_eq!(t.image_size(), 10 * 4096);
        assert_eq!(t.commands[1].ranges, vec![(0, 2), (5, 6)]);
        let t1 = TransferList::parse("1\n2\nnew 2,0,2\n").unwrap();
        assert_eq!(t1.new_blocks, 2);
        assert!(
            TransferList::parse("4\n1\n0\n0\nmove 2,0,1\n")
                .unwrap_err()
                .to_string()
                .contains("incremental")
        );
        assert!(TransferList::parse("4\n1\n0\n0\nnew 3,0,1\n").is_err());
        assert!(
            TransferList::parse("4\n2\n0\n0\nnew 2,0,1\n")
                .unwrap_err()
                .to_string()
                .contains("declares 2")
        );
        assert!(TransferList::parse("4\n1\n0\n0\nnew 2,5,4\n").is_err());
    }
}
