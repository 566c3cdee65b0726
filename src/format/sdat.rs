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

fn parse_ranges(s: &str, line: usize) -> Result<Vec<(u64, u64)>, String> {
    let nums: Vec<&str> = s.split(',').collect();
    let bad = |why: String| format!("line {line}: range set {s:?}: {why}");
    let count: usize = nums[0]
        .parse()
        .map_err(|_| bad("the count is not a number".into()))?;
    if count == 0 || !count.is_multiple_of(2) || count != nums.len() - 1 {
        return Err(bad(format!(
            "declares {count} numbers, has {}, and the count must be even and positive",
            nums.len() - 1
        )));
    }
    let mut v = Vec::with_capacity(count / 2);
    for pair in nums[1..].chunks(2) {
        let a: u64 = pair[0]
            .parse()
            .map_err(|_| bad(format!("{:?} is not a block number", pair[0])))?;
        let b: u64 = pair[1]
            .parse()
            .map_err(|_| bad(format!("{:?} is not a block number", pair[1])))?;
        if a >= b {
            return Err(bad(format!("range {a}..{b} is empty or reversed")));
        }
        if b > MAX_BLOCK {
            return Err(bad(format!(
                "range {a}..{b} runs past the largest image romkit accepts ({MAX_BLOCK} blocks)"
            )));
        }
        v.push((a, b));
    }
    Ok(v)
}

impl TransferList {
    /// Parses the text of a transfer list.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
        let mut next = |what: &str| {
            lines
                .next()
                .ok_or_else(|| format!("ends before the {what} line"))
        };
        let (_, v) = next("version")?;
        let version: u32 = v
            .parse()
            .ok()
            .filter(|v| (1..=4).contains(v))
            .ok_or_else(|| format!("line 1: version {v:?} is not 1, 2, 3 or 4"))?;
        let (_, n) = next("block count")?;
        let new_blocks: u64 = n
            .parse()
            .map_err(|_| format!("line 2: block count {n:?} is not a number"))?;
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
                    return Err(format!(
                        "line {no}: command {cmd:?} patches the previous build (an incremental OTA); only full block OTAs (new, zero, erase) can be converted"
                    ));
                }
                other => return Err(format!("line {no}: unknown command {other:?}")),
            };
            let ranges = parse_ranges(rest.trim(), no)?;
            if op == Op::New {
                written += ranges.iter().map(|(a, b)| b - a).sum::<u64>();
            }
            commands.push(Command { op, ranges });
        }
        if written != new_blocks {
            return Err(format!(
                "line 2 declares {new_blocks} new blocks, the new commands write {written}"
            ));
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
                .contains("incremental")
        );
        assert!(TransferList::parse("4\n1\n0\n0\nnew 3,0,1\n").is_err());
        assert!(
            TransferList::parse("4\n2\n0\n0\nnew 2,0,1\n")
                .unwrap_err()
                .contains("declares 2")
        );
        assert!(TransferList::parse("4\n1\n0\n0\nnew 2,5,4\n").is_err());
    }
}
