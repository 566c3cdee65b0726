//! The DEX on-disk structures Zucchini's DEX disassembler reads: the header,
//! the map list, and the variable-length item lists (type lists, annotation
//! sets and set-ref lists, annotations directories) whose members it indexes.
//!
//! Every check here is one Zucchini's `ReadDexHeader`, `ParseHeader`,
//! `ParseItemOffsets` and `ParseAnnotationsDirectoryItems` make, with the same
//! outcome: what they refuse is refused, what they accept is accepted (for
//! example an unaligned `map_off`, or a `header_size` other than 0x70, is
//! accepted). All integers are little-endian. Counts read from the image are
//! checked against the bytes left before anything is sized by them.

use super::bad;
use crate::format::patch::zucchini::ZucchiniError;

/// Size of `header_item`.
pub const HEADER_SIZE: u32 = 0x70;
/// Most entries a map list may have (the number of DEX type codes).
pub const MAX_MAP_ITEMS: u32 = 21;
/// Size of one `map_item`.
pub const MAP_ITEM_SIZE: u32 = 12;

/// Type codes of `map_item.type`.
pub mod type_code {
    /// `header_item`.
    pub const HEADER_ITEM: u16 = 0x0000;
    /// `string_id_item`.
    pub const STRING_ID_ITEM: u16 = 0x0001;
    /// `type_id_item`.
    pub const TYPE_ID_ITEM: u16 = 0x0002;
    /// `proto_id_item`.
    pub const PROTO_ID_ITEM: u16 = 0x0003;
    /// `field_id_item`.
    pub const FIELD_ID_ITEM: u16 = 0x0004;
    /// `method_id_item`.
    pub const METHOD_ID_ITEM: u16 = 0x0005;
    /// `class_def_item`.
    pub const CLASS_DEF_ITEM: u16 = 0x0006;
    /// `call_site_id_item` (DEX 038+).
    pub const CALL_SITE_ID_ITEM: u16 = 0x0007;
    /// `method_handle_item` (DEX 038+).
    pub const METHOD_HANDLE_ITEM: u16 = 0x0008;
    /// `map_list`.
    pub const MAP_LIST: u16 = 0x1000;
    /// `type_list`.
    pub const TYPE_LIST: u16 = 0x1001;
    /// `annotation_set_ref_list`.
    pub const ANNOTATION_SET_REF_LIST: u16 = 0x1002;
    /// `annotation_set_item`.
    pub const ANNOTATION_SET_ITEM: u16 = 0x1003;
    /// `class_data_item`.
    pub const CLASS_DATA_ITEM: u16 = 0x2000;
    /// `code_item`.
    pub const CODE_ITEM: u16 = 0x2001;
    /// `string_data_item`.
    pub const STRING_DATA_ITEM: u16 = 0x2002;
    /// `debug_info_item`.
    pub const DEBUG_INFO_ITEM: u16 = 0x2003;
    /// `annotation_item`.
    pub const ANNOTATION_ITEM: u16 = 0x2004;
    /// `encoded_array_item`.
    pub const ENCODED_ARRAY_ITEM: u16 = 0x2005;
    /// `annotations_directory_item`.
    pub const ANNOTATIONS_DIRECTORY_ITEM: u16 = 0x2006;
    /// `hiddenapi_class_data_item`.
    pub const HIDDENAPI_CLASS_DATA_ITEM: u16 = 0xF000;
}

/// Byte sizes of the fixed-size items and records.
pub mod size {
    /// `string_id_item`.
    pub const STRING_ID: u32 = 4;
    /// `type_id_item`.
    pub const TYPE_ID: u32 = 4;
    /// `proto_id_item`.
    pub const PROTO_ID: u32 = 12;
    /// `field_id_item`.
    pub const FIELD_ID: u32 = 8;
    /// `method_id_item`.
    pub const METHOD_ID: u32 = 8;
    /// `class_def_item`.
    pub const CLASS_DEF: u32 = 32;
    /// `call_site_id_item`.
    pub const CALL_SITE_ID: u32 = 4;
    /// `method_handle_item`.
    pub const METHOD_HANDLE: u32 = 8;
    /// The 16-byte header of a `code_item`.
    pub const CODE_ITEM_HEADER: u32 = 16;
    /// `try_item`.
    pub const TRY_ITEM: u32 = 8;
    /// `type_item` (a member of a `type_list`).
    pub const TYPE_ITEM: u32 = 2;
    /// `annotation_set_ref_item` and `annotation_off_item`.
    pub const OFF_ITEM: u32 = 4;
    /// The 16-byte head of an `annotations_directory_item`.
    pub const ANNOTATIONS_DIRECTORY: u32 = 16;
    /// `field_annotation`, `method_annotation`, `parameter_annotation`.
    pub const MEMBER_ANNOTATION: u32 = 8;
}

/// One entry of the map list: `size` items of type `type_code` at `offset`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapItem {
    /// `map_item.type`.
    pub type_code: u16,
    /// Number of items (not bytes).
    pub size: u32,
    /// File offset of the first item.
    pub offset: u32,
}

/// Lower bound of one item's size, used to refuse a map entry whose items
/// cannot fit: exact for fixed-size items, the fixed head for the
/// variable-length ones Zucchini parses, 1 for every other type.
pub fn item_base_size(type_code: u16) -> u32 {
    use self::type_code as t;
    match type_code {
        t::STRING_ID_ITEM => size::STRING_ID,
        t::TYPE_ID_ITEM => size::TYPE_ID,
        t::PROTO_ID_ITEM => size::PROTO_ID,
        t::FIELD_ID_ITEM => size::FIELD_ID,
        t::METHOD_ID_ITEM => size::METHOD_ID,
        t::CLASS_DEF_ITEM => size::CLASS_DEF,
        t::CALL_SITE_ID_ITEM => size::CALL_SITE_ID,
        t::METHOD_HANDLE_ITEM => size::METHOD_HANDLE,
        t::TYPE_LIST | t::ANNOTATION_SET_REF_LIST | t::ANNOTATION_SET_ITEM => 4,
        t::CODE_ITEM => size::CODE_ITEM_HEADER,
        t::ANNOTATIONS_DIRECTORY_ITEM => size::ANNOTATIONS_DIRECTORY,
        _ => 1,
    }
}

/// Whether `len` bytes hold `count` items of `elt` bytes at `offset`
/// (Zucchini's `covers_array`: `offset` may equal `len` when `count` is 0).
pub fn covers_array(len: u64, offset: u64, count: u64, elt: u64) -> bool {
    offset <= len && (len - offset) / elt >= count
}

/// Little-endian u16 at `at`, if inside `b`.
pub fn u16_at(b: &[u8], at: u64) -> Option<u16> {
    let at = usize::try_from(at).ok()?;
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// Little-endian u32 at `at`, if inside `b`.
pub fn u32_at(b: &[u8], at: u64) -> Option<u32> {
    let at = usize::try_from(at).ok()?;
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// What the header tells: the version and the two fields Zucchini uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The three magic digits as a number (35, 37, 38 or 39).
    pub version: u32,
    /// `file_size`: the DEX ends there, whatever follows in the element.
    pub file_size: u32,
    /// `map_off`: offset of the map list.
    pub map_off: u32,
}

/// Reads and checks the header: `"dex\n"`, three digits, NUL; version 035,
/// 037, 038 or 039; `0x70 <= file_size <= image.len()`; `map_off >= 0x70`.
pub fn read_header(image: &[u8]) -> Result<Header, ZucchiniError> {
    if image.len() < HEADER_SIZE as usize {
        return Err(bad(format!(
            "DEX header needs {HEADER_SIZE} bytes, the element has {}",
            image.len()
        )));
    }
    let magic = &image[..8];
    let digits = &magic[4..7];
    if &magic[..4] != b"dex\n" || magic[7] != 0 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad(format!(
            "DEX header magic at offset 0 is {magic:02x?}, not \"dex\\n\" + 3 digits + NUL"
        )));
    }
    let version = digits
        .iter()
        .fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
    if !matches!(version, 35 | 37 | 38 | 39) {
        return Err(bad(format!(
            "DEX header magic at offset 4: version {version:03} is not 035, 037, 038 or 039"
        )));
    }
    let file_size = u32_at(image, 32).expect("header checked");
    let map_off = u32_at(image, 52).expect("header checked");
    if file_size as u64 > image.len() as u64 || file_size < HEADER_SIZE {
        return Err(bad(format!(
            "DEX header file_size (offset 32) = {file_size} is outside {HEADER_SIZE}..={} (the element's size)",
            image.len()
        )));
    }
    if map_off < HEADER_SIZE {
        return Err(bad(format!(
            "DEX header map_off (offset 52) = {map_off:#x} points into the header"
        )));
    }
    Ok(Header {
        version,
        file_size,
        map_off,
    })
}

/// Reads the map list at `map_off` of `dex` (the image cut to `file_size`):
/// at most [`MAX_MAP_ITEMS`] entries, each type at most once, and each
/// entry's items fitting in `dex` at [`item_base_size`] bytes apiece.
pub fn read_map(dex: &[u8], map_off: u32) -> Result<Vec<MapItem>, ZucchiniError> {
    let count = u32_at(dex, map_off as u64).ok_or_else(|| {
        bad(format!(
            "DEX map_list.size at map_off {map_off:#x} is past the {}-byte file",
            dex.len()
        ))
    })?;
    if count > MAX_MAP_ITEMS {
        return Err(bad(format!(
            "DEX map_list.size at {map_off:#x} = {count} exceeds the {MAX_MAP_ITEMS} type codes"
        )));
    }
    let list = map_off as u64 + 4;
    if !covers_array(dex.len() as u64, list, count as u64, MAP_ITEM_SIZE as u64) {
        return Err(bad(format!(
            "DEX map_list at {map_off:#x}: {count} entries of {MAP_ITEM_SIZE} bytes pass the {}-byte file",
            dex.len()
        )));
    }
    let mut items: Vec<MapItem> = Vec::with_capacity(count as usize);
    for i in 0..count as u64 {
        let at = list + i * MAP_ITEM_SIZE as u64;
        let item = MapItem {
            type_code: u16_at(dex, at).expect("covered"),
            size: u32_at(dex, at + 4).expect("covered"),
            offset: u32_at(dex, at + 8).expect("covered"),
        };
        let base = item_base_size(item.type_code);
        if !covers_array(
            dex.len() as u64,
            item.offset as u64,
            item.size as u64,
            base as u64,
        ) {
            return Err(bad(format!(
                "DEX map_item {i} at {at:#x} (type {:#06x}): {} items of at least {base} bytes at offset {:#x} pass the {}-byte file",
                item.type_code,
                item.size,
                item.offset,
                dex.len()
            )));
        }
        if items.iter().any(|m| m.type_code == item.type_code) {
            return Err(bad(format!(
                "DEX map_item {i} at {at:#x}: type {:#06x} is listed twice",
                item.type_code
            )));
        }
        items.push(item);
    }
    Ok(items)
}

/// A read position over the DEX (Zucchini's `BufferSource`).
pub struct Cursor<'a> {
    /// The DEX, cut to `file_size`.
    pub dex: &'a [u8],
    /// Current offset (never past `dex.len()`).
    pub pos: u64,
}

impl Cursor<'_> {
    /// Bytes left.
    pub fn remaining(&self) -> u64 {
        self.dex.len() as u64 - self.pos
    }

    /// Moves to the next multiple of 4, if that is not past the end.
    pub fn align4(&mut self) -> bool {
        let to = self.pos.next_multiple_of(4);
        if to > self.dex.len() as u64 {
            return false;
        }
        self.pos = to;
        true
    }

    /// Skips `n` bytes if that many are left.
    pub fn skip(&mut self, n: u64) -> bool {
        if n > self.remaining() {
            self.pos = self.dex.len() as u64;
            return false;
        }
        self.pos += n;
        true
    }

    /// Reads a u32 if 4 bytes are left.
    pub fn u32(&mut self) -> Option<u32> {
        let v = u32_at(self.dex, self.pos)?;
        self.pos += 4;
        Some(v)
    }

    /// Reads a ULEB128 of at most 5 bytes; bits past 32 are dropped.
    pub fn uleb128(&mut self) -> Option<u32> {
        let (v, n) = leb128(&self.dex[self.pos as usize..])?;
        self.pos += n;
        Some(v)
    }

    /// Reads an SLEB128 of at most 5 bytes, sign-extended from its last
    /// byte's bit 6 (a 5-byte value keeps bit 31 as its sign).
    pub fn sleb128(&mut self) -> Option<i32> {
        let (v, n) = leb128(&self.dex[self.pos as usize..])?;
        self.pos += n;
        let bits = 7 * n as u32;
        Some(if bits >= 32 {
            v as i32
        } else {
            ((v << (32 - bits)) as i32) >> (32 - bits)
        })
    }
}

/// The raw bits of a LEB128 of at most 5 bytes, and its length.
fn leb128(b: &[u8]) -> Option<(u32, u64)> {
    let mut v = 0u32;
    for (i, &x) in b.iter().take(5).enumerate() {
        // At i = 4 the shift drops the top 3 payload bits, as Zucchini does.
        v |= u32::from(x & 0x7f) << (7 * i as u32);
        if x & 0x80 == 0 {
            return Some((v, i as u64 + 1));
        }
    }
    None
}

/// Offsets of every member of the `count` lists at `start`, each list a u32
/// length and then that many `width`-byte members, 4-aligned
/// (`type_list`, `annotation_set_ref_list`, `annotation_set_item`). `what`
/// names the list type for errors.
pub fn list_members(
    dex: &[u8],
    what: &str,
    start: u32,
    count: u32,
    width: u32,
) -> Result<Vec<u32>, ZucchiniError> {
    let mut c = Cursor {
        dex,
        pos: start as u64,
    };
    let mut members = Vec::new();
    for i in 0..count {
        if !c.align4() {
            return Err(bad(format!(
                "DEX {what} {i}: 4-aligning {:#x} passes the end",
                c.pos
            )));
        }
        let at = c.pos;
        let n = c
            .u32()
            .ok_or_else(|| bad(format!("DEX {what} {i}: size at {at:#x} is past the end")))?;
        take_members(&mut c, &mut members, n, width).map_err(|()| {
            bad(format!(
                "DEX {what} {i} at {at:#x}: size {n} of {width}-byte members passes the {}-byte file",
                dex.len()
            ))
        })?;
    }
    Ok(members)
}

/// Records the offsets of `n` members of `width` bytes at the cursor and
/// moves past them; fails when they do not fit.
fn take_members(c: &mut Cursor<'_>, out: &mut Vec<u32>, n: u32, width: u32) -> Result<(), ()> {
    if !covers_array(c.remaining(), 0, n as u64, width as u64) {
        return Err(());
    }
    out.extend((0..n as u64).map(|k| (c.pos + k * width as u64) as u32));
    c.pos += n as u64 * width as u64;
    Ok(())
}

/// Offsets found in the annotations directories.
#[derive(Debug, Default)]
pub struct AnnotationsDirectories {
    /// Each `annotations_directory_item` (its `class_annotations_off`).
    pub directories: Vec<u32>,
    /// Each `field_annotation`.
    pub fields: Vec<u32>,
    /// Each `method_annotation`.
    pub methods: Vec<u32>,
    /// Each `parameter_annotation`.
    pub parameters: Vec<u32>,
}

/// Walks `count` annotations directories at `start`: each 4-aligned, a
/// 16-byte head with the three list sizes, then 8-byte field, method and
/// parameter annotations.
pub fn annotations_directories(
    dex: &[u8],
    start: u32,
    count: u32,
) -> Result<AnnotationsDirectories, ZucchiniError> {
    let mut c = Cursor {
        dex,
        pos: start as u64,
    };
    let mut out = AnnotationsDirectories::default();
    for i in 0..count {
        if !c.align4() {
            return Err(bad(format!(
                "DEX annotations_directory_item {i}: 4-aligning {:#x} passes the end",
                c.pos
            )));
        }
        let at = c.pos;
        if c.remaining() < size::ANNOTATIONS_DIRECTORY as u64 {
            return Err(bad(format!(
                "DEX annotations_directory_item {i} at {at:#x}: its 16-byte head passes the end"
            )));
        }
        out.directories.push(at as u32);
        c.pos += 4; // class_annotations_off
        let counts = [c.u32(), c.u32(), c.u32()];
        let lists = [
            ("fields_size", &mut out.fields),
            ("annotated_methods_size", &mut out.methods),
            ("annotated_parameters_size", &mut out.parameters),
        ];
        for ((field, list), n) in lists.into_iter().zip(counts) {
            let n = n.expect("head checked");
            take_members(&mut c, list, n, size::MEMBER_ANNOTATION).map_err(|()| {
                bad(format!(
                    "DEX annotations_directory_item {i} at {at:#x}: {field} = {n} passes the {}-byte file",
                    dex.len()
                ))
            })?;
        }
    }
    Ok(out)
}
