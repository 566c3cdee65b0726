//! Code items and the Dalvik instruction walk, as Zucchini's
//! `CodeItemParser` and `InstructionParser` do them.
//!
//! A code item is a 16-byte head (`registers_size`, `ins_size`, `outs_size`,
//! `tries_size` as u16; `debug_info_off`, `insns_size` as u32), then
//! `insns_size` 16-bit code units, then (when `tries_size > 0`) padding to 4
//! bytes, `tries_size` 8-byte try items and the ULEB128/SLEB128-encoded
//! catch handler list. Code items follow each other 4-aligned.
//!
//! The walk decodes instructions from the first code unit: an opcode's low
//! byte picks an entry of Zucchini's instruction table (length in units and a
//! format class); it stops at an unknown opcode, at an instruction that does
//! not fit, and at the earliest payload (`fill-array-data`, `packed-switch`,
//! `sparse-switch` data) an instruction points to, which must lie after that
//! instruction and inside the code item.

use super::bad;
use super::layout::{Cursor, MapItem, covers_array, size, u16_at, u32_at};
use crate::format::patch::zucchini::ZucchiniError;

/// Zucchini's format classes (`dex::FormatId`), by the letter of the
/// Dalvik format ids they group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// 22b.
    B,
    /// 21c, 22c, 31c, 35c, 3rc, 45cc, 4rcc: an index into an id table.
    C,
    /// 21h.
    H,
    /// 31i.
    I,
    /// 51l.
    L,
    /// 11n.
    N,
    /// 21s, 22s.
    S,
    /// 10t, 20t, 21t, 22t, 30t, 31t: a branch or payload offset.
    T,
    /// 10x, 11x, 12x, 22x, 23x, 32x: no index or offset.
    X,
}

/// A table entry: the first opcode of a run sharing length and format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// First opcode of the run (e.g. 0x52 for every `iget*`/`iput*`).
    pub opcode: u8,
    /// Length in 16-bit code units.
    pub units: u8,
    /// Format class.
    pub format: Format,
}

/// Zucchini's `kByteCode`: (first opcode, units, format, run length).
/// Opcodes 0x3E–0x43, 0x73, 0x79–0x7A and 0xE3–0xF9 are unused: unknown.
const BYTECODE: [(u8, u8, Format, u8); 64] = {
    use Format::*;
    [
        (0x00, 1, X, 1),
        (0x01, 1, X, 1),
        (0x02, 2, X, 1),
        (0x03, 3, X, 1),
        (0x04, 1, X, 1),
        (0x05, 2, X, 1),
        (0x06, 3, X, 1),
        (0x07, 1, X, 1),
        (0x08, 2, X, 1),
        (0x09, 3, X, 1),
        (0x0A, 1, X, 1),
        (0x0B, 1, X, 1),
        (0x0C, 1, X, 1),
        (0x0D, 1, X, 1),
        (0x0E, 1, X, 1),
        (0x0F, 1, X, 1),
        (0x10, 1, X, 1),
        (0x11, 1, X, 1),
        (0x12, 1, N, 1),
        (0x13, 2, S, 1),
        (0x14, 3, I, 1),
        (0x15, 2, H, 1),
        (0x16, 2, S, 1),
        (0x17, 3, I, 1),
        (0x18, 5, L, 1),
        (0x19, 2, H, 1),
        (0x1A, 2, C, 1),
        (0x1B, 3, C, 1),
        (0x1C, 2, C, 1),
        (0x1D, 1, X, 1),
        (0x1E, 1, X, 1),
        (0x1F, 2, C, 1),
        (0x20, 2, C, 1),
        (0x21, 1, X, 1),
        (0x22, 2, C, 1),
        (0x23, 2, C, 1),
        (0x24, 3, C, 1),
        (0x25, 3, C, 1),
        (0x26, 3, T, 1),
        (0x27, 1, X, 1),
        (0x28, 1, T, 1),
        (0x29, 2, T, 1),
        (0x2A, 3, T, 1),
        (0x2B, 3, T, 1),
        (0x2C, 3, T, 1),
        (0x2D, 2, X, 5),
        (0x32, 2, T, 6),
        (0x38, 2, T, 6),
        (0x44, 2, X, 14),
        (0x52, 2, C, 14),
        (0x60, 2, C, 14),
        (0x6E, 3, C, 5),
        (0x74, 3, C, 5),
        (0x7B, 1, X, 21),
        (0x90, 2, X, 32),
        (0xB0, 1, X, 32),
        (0xD0, 2, S, 8),
        (0xD8, 2, B, 11),
        (0xFA, 4, C, 1),
        (0xFB, 4, C, 1),
        (0xFC, 3, C, 1),
        (0xFD, 3, C, 1),
        (0xFE, 2, C, 1),
        (0xFF, 2, C, 1),
    ]
};

/// [`BYTECODE`] expanded to one entry per opcode.
const BY_OPCODE: [Option<Insn>; 256] = {
    let mut t = [None; 256];
    let mut i = 0;
    while i < BYTECODE.len() {
        let (opcode, units, format, run) = BYTECODE[i];
        let mut k = 0;
        while k < run as usize {
            t[opcode as usize + k] = Some(Insn {
                opcode,
                units,
                format,
            });
            k += 1;
        }
        i += 1;
    }
    t
};

/// The table entry of `opcode`, or `None` for an unused opcode.
pub fn lookup(opcode: u8) -> Option<Insn> {
    BY_OPCODE[opcode as usize]
}

/// Offsets of the `map.size` code items from `map.offset`, walked as
/// Zucchini does; a DEX without code items is refused.
pub fn code_items(dex: &[u8], map: MapItem) -> Result<Vec<u32>, ZucchiniError> {
    if !covers_array(
        dex.len() as u64,
        map.offset as u64,
        map.size as u64,
        size::CODE_ITEM_HEADER as u64,
    ) {
        return Err(bad(format!(
            "DEX code_item map entry: {} items at {:#x} pass the {}-byte file",
            map.size,
            map.offset,
            dex.len()
        )));
    }
    let mut c = Cursor {
        dex,
        pos: map.offset as u64,
    };
    let mut offsets = Vec::with_capacity(map.size as usize);
    for i in 0..map.size {
        let start = c.pos;
        let at = next_code_item(&mut c)
            .map_err(|why| bad(format!("DEX code_item {i} (from {start:#x}): {why}")))?;
        offsets.push(at);
    }
    if offsets.is_empty() {
        return Err(bad("DEX has no code items".into()));
    }
    Ok(offsets)
}

/// Moves the cursor over one code item; returns its offset.
fn next_code_item(c: &mut Cursor<'_>) -> Result<u32, String> {
    if !c.align4() || c.remaining() < size::CODE_ITEM_HEADER as u64 {
        return Err(format!("its 16-byte head at {:#x} passes the end", c.pos));
    }
    let at = c.pos;
    let tries = u16_at(c.dex, at + 6).expect("head checked");
    let insns = u32_at(c.dex, at + 12).expect("head checked");
    c.pos += size::CODE_ITEM_HEADER as u64;
    if !c.skip(insns as u64 * 2) {
        return Err(format!(
            "insns_size (at {:#x}) = {insns} units pass the end",
            at + 12
        ));
    }
    if tries == 0 {
        return Ok(at as u32);
    }
    if !c.align4() || !c.skip(tries as u64 * size::TRY_ITEM as u64) {
        return Err(format!(
            "tries_size (at {:#x}) = {tries} try items pass the end",
            at + 6
        ));
    }
    skip_handlers(c).map_err(|why| format!("catch handlers of the code item at {at:#x}: {why}"))?;
    Ok(at as u32)
}

/// Moves over an `encoded_catch_handler_list`.
fn skip_handlers(c: &mut Cursor<'_>) -> Result<(), String> {
    let list_at = c.pos;
    let count = c
        .uleb128()
        .ok_or_else(|| format!("bad handlers_size ULEB128 at {list_at:#x}"))?;
    if c.remaining() < count as u64 {
        return Err(format!(
            "handlers_size {count} at {list_at:#x} exceeds the bytes left"
        ));
    }
    for k in 0..count {
        let at = c.pos;
        let n = c
            .sleb128()
            .ok_or_else(|| format!("handler {k}: bad size SLEB128 at {at:#x}"))?;
        let pairs = n.unsigned_abs() as u64;
        if c.remaining() < pairs {
            return Err(format!(
                "handler {k}: size {n} at {at:#x} exceeds the bytes left"
            ));
        }
        let lebs = pairs * 2 + u64::from(n <= 0);
        for _ in 0..lebs {
            if c.uleb128().is_none() {
                return Err(format!(
                    "handler {k} (at {at:#x}): a type/address LEB128 passes the end"
                ));
            }
        }
    }
    Ok(())
}

/// The instructions of one code item, in order, as (file offset, entry).
pub struct Instructions<'a> {
    image: &'a [u8],
    pos: u64,
    end: u64,
    payload: u64,
}

impl<'a> Instructions<'a> {
    /// Walks the code item at `code_item` of `image` (none when its head or
    /// instructions do not fit).
    pub fn new(image: &'a [u8], code_item: u32) -> Self {
        let start = code_item as u64 + size::CODE_ITEM_HEADER as u64;
        let end = u32_at(image, code_item as u64 + 12)
            .map(|n| start + n as u64 * 2)
            .filter(|&end| end <= image.len() as u64)
            .unwrap_or(start);
        Instructions {
            image,
            pos: start,
            end,
            payload: end,
        }
    }
}

impl Iterator for Instructions<'_> {
    type Item = (u32, Insn);

    fn next(&mut self) -> Option<(u32, Insn)> {
        if self.pos >= self.payload {
            return None;
        }
        let at = self.pos;
        let insn = lookup(self.image[at as usize])?;
        let units_left = (self.end - at) / 2;
        if units_left < insn.units as u64 {
            self.payload = at;
            return None;
        }
        if matches!(insn.opcode, 0x26 | 0x2B | 0x2C) {
            let rel = u32_at(self.image, at + 2).expect("instruction fits") as i32;
            if rel < insn.units as i32 || rel as u64 >= units_left {
                self.payload = at;
                return None;
            }
            self.payload = self.payload.min(at + rel as u64 * 2);
        }
        self.pos = at + insn.units as u64 * 2;
        Some((at as u32, insn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chromium `type_dex.h`, `kByteCode`: the opcodes marked unused
    /// (0x3E+6, 0x73, 0x79+2, 0xE3+29) are unknown, every other one is
    /// known; spot lengths from its rows.
    #[test]
    fn opcode_table_is_upstreams() {
        for op in 0..=255u8 {
            let unused = matches!(op, 0x3E..=0x43 | 0x73 | 0x79..=0x7A | 0xE3..=0xF9);
            assert_eq!(lookup(op).is_none(), unused, "opcode {op:#04x}");
        }
        let units = |op| lookup(op).unwrap().units;
        assert_eq!(
            [
                units(0x18),
                units(0x1B),
                units(0x5F),
                units(0x78),
                units(0xE2),
                units(0xFA)
            ],
            [5, 3, 2, 3, 2, 4]
        );
        assert_eq!(lookup(0x5F).unwrap().opcode, 0x52);
        assert_eq!(lookup(0x3D).unwrap().format, Format::T);
    }

    /// An instruction walk stops at a payload pointer that is not past the
    /// instruction or not inside the code item, and at the payload itself.
    #[test]
    fn payload_bounds() {
        // Code item head (16 bytes), then: packed-switch v0, +rel; nop; nop;
        // then 2 "payload" units that would decode as instructions.
        let item = |rel: i32| {
            let mut b = vec![0u8; 16];
            b[12..16].copy_from_slice(&7u32.to_le_bytes());
            b.extend_from_slice(&[0x2B, 0x00]);
            b.extend_from_slice(&rel.to_le_bytes());
            b.extend_from_slice(&[0, 0, 0, 0, 0x0E, 0, 0x0E, 0]);
            b
        };
        let walk =
            |rel| -> Vec<u32> { Instructions::new(&item(rel), 0).map(|(at, _)| at).collect() };
        assert_eq!(walk(5), [16, 22, 24]);
        assert_eq!(walk(6), [16, 22, 24, 26]);
        assert_eq!(walk(7), Vec::<u32>::new());
        assert_eq!(walk(2), Vec::<u32>::new());
        assert_eq!(walk(-1), Vec::<u32>::new());
        // Truncated: the last instruction does not fit.
        let mut b = item(5);
        b[16] = 0x14; // const v0, #+BBBBBBBB (3 units) at the end
        b[12..16].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(Instructions::new(&b, 0).count(), 0);
    }
}
