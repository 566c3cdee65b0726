//! Zucchini's DEX disassembler (`DEX ` elements): where an Android DEX file
//! holds references, what they point to, and how a corrected target is
//! written back — Chromium's `components/zucchini/disassembler_dex.cc` with
//! its 42 reference types in 17 pools (DEX 035, 037, 038 and 039).
//!
//! Parsing ([`DisassemblerDex::new`]) reads the header and map list
//! ([`layout`]), the members of every type list, annotation set, annotation
//! set-ref list and annotations directory, and the offset of every code item
//! ([`code`]); anything Zucchini refuses is a [`ZucchiniError::BadElement`]
//! naming the structure, field, value and offset. The element may extend past
//! the header's `file_size`; only `..file_size` is the DEX.
//!
//! References, by where they are:
//! - fields of the fixed-size id items (`string_id_item`, `type_id_item`,
//!   `proto_id_item`, `field_id_item`, `method_id_item`, `class_def_item`,
//!   `call_site_id_item`, `method_handle_item`), found through the map list;
//!   a target of 0 or index `0xFFFFFFFF` (absent) is skipped, and an invalid
//!   one ends the list, as Zucchini's `ItemReferenceReader` does;
//! - members of the variable-length lists above; a 0 offset is skipped and an
//!   invalid target ends the list (`CachedItemListReferenceReader`);
//! - operands of Dalvik instructions in code items ([`code::Instructions`]);
//!   an invalid target is skipped (`InstructionReferenceReader`).
//!
//! Targets, by how they are encoded:
//! - an index into an id table: the target is the offset of that id item
//!   (`table offset + index × item size`); an index past the table is invalid;
//!   writing maps an item offset back to its index, refusing an offset that is
//!   not the start of an item of the table;
//! - an absolute 32-bit file offset: valid below `file_size`, written as is;
//! - a branch of `delta` code units from its instruction: the target is
//!   `location + (delta − 1) × 2` (8/16-bit: wrapping 32-bit arithmetic as
//!   Zucchini's; 32-bit: must lie in `0..0x7fffffff`). For the 16/32-bit
//!   operands (2 bytes into the instruction) that is the branch destination;
//!   for the 8-bit `goto` operand (1 byte in) it is one byte before it —
//!   upstream's formula, kept because targets must match Zucchini's;
//!   writing refuses an odd distance or a delta that does not fit the width.
//!
//! Invariants: `read` returns references in increasing location order, each
//! inside the DEX; `write` changes only the reference's `width` bytes.
//! Errors from `new` carry element index 0: the applier, which knows the
//! element's index, relabels them.

pub mod code;
pub mod layout;

use super::ZucchiniError;
use super::disasm::{Disassembler, RefGroup, Reference};
use code::{Format, Insn, Instructions};
use layout::{MapItem, size, type_code, u16_at, u32_at};

/// A [`ZucchiniError::BadElement`] for a DEX element (index 0, see the
/// module docs).
pub(crate) fn bad(reason: String) -> ZucchiniError {
    ZucchiniError::BadElement {
        element: 0,
        exe_type: "DEX ".into(),
        reason,
    }
}

/// Zucchini's `DisassemblerDex::ReferencePool`: target pools, in the DEX
/// type-code order of what they point to.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Pool {
    StringId = 0,
    TypeId,
    ProtoId,
    FieldId,
    MethodId,
    CallSiteId,
    MethodHandle,
    TypeList,
    AnnotationSetRefList,
    AnnotationSet,
    ClassData,
    Code,
    StringData,
    Annotation,
    EncodedArray,
    AnnotationsDirectory,
    CallSite,
}

/// Zucchini's `DisassemblerDex::ReferenceType`: the type tag of each kind of
/// reference, named `<where it is>To<what it points to>`; grouped by pool.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RefType {
    TypeIdToDescriptorStringId = 0,
    ProtoIdToShortyStringId,
    FieldIdToNameStringId,
    MethodIdToNameStringId,
    ClassDefToSourceFileStringId,
    CodeToStringId16,
    CodeToStringId32,
    ProtoIdToReturnTypeId,
    FieldIdToClassTypeId,
    FieldIdToTypeId,
    MethodIdToClassTypeId,
    ClassDefToClassTypeId,
    ClassDefToSuperClassTypeId,
    TypeListToTypeId,
    CodeToTypeId,
    CodeToProtoId,
    MethodIdToProtoId,
    CodeToFieldId,
    MethodHandleToFieldId,
    AnnotationsDirectoryToFieldId,
    CodeToMethodId,
    MethodHandleToMethodId,
    AnnotationsDirectoryToMethodId,
    AnnotationsDirectoryToParameterMethodId,
    CodeToCallSiteId,
    CodeToMethodHandle,
    ProtoIdToParametersTypeList,
    ClassDefToInterfacesTypeList,
    AnnotationsDirectoryToParameterAnnotationSetRef,
    AnnotationSetRefListToAnnotationSet,
    AnnotationsDirectoryToClassAnnotationSet,
    AnnotationsDirectoryToFieldAnnotationSet,
    AnnotationsDirectoryToMethodAnnotationSet,
    ClassDefToClassData,
    CodeToRelCode8,
    CodeToRelCode16,
    CodeToRelCode32,
    StringIdToStringData,
    AnnotationSetToAnnotation,
    ClassDefToStaticValuesEncodedArray,
    ClassDefToAnnotationDirectory,
    CallSiteIdToCallSite,
}

/// Number of reference types.
pub const NUM_TYPES: usize = 42;

/// An id table (a fixed-size item array found through the map list).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Table {
    StringIds,
    TypeIds,
    ProtoIds,
    FieldIds,
    MethodIds,
    ClassDefs,
    CallSiteIds,
    MethodHandles,
}

impl Table {
    const ALL: [Table; 8] = [
        Table::StringIds,
        Table::TypeIds,
        Table::ProtoIds,
        Table::FieldIds,
        Table::MethodIds,
        Table::ClassDefs,
        Table::CallSiteIds,
        Table::MethodHandles,
    ];

    /// Map list type code, item size, name.
    fn info(self) -> (u16, u32, &'static str) {
        use type_code as t;
        match self {
            Table::StringIds => (t::STRING_ID_ITEM, size::STRING_ID, "string_ids"),
            Table::TypeIds => (t::TYPE_ID_ITEM, size::TYPE_ID, "type_ids"),
            Table::ProtoIds => (t::PROTO_ID_ITEM, size::PROTO_ID, "proto_ids"),
            Table::FieldIds => (t::FIELD_ID_ITEM, size::FIELD_ID, "field_ids"),
            Table::MethodIds => (t::METHOD_ID_ITEM, size::METHOD_ID, "method_ids"),
            Table::ClassDefs => (t::CLASS_DEF_ITEM, size::CLASS_DEF, "class_defs"),
            Table::CallSiteIds => (t::CALL_SITE_ID_ITEM, size::CALL_SITE_ID, "call_site_ids"),
            Table::MethodHandles => (t::METHOD_HANDLE_ITEM, size::METHOD_HANDLE, "method_handles"),
        }
    }
}

/// A list of variable-length-structure members whose offsets are cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum List {
    TypeItems,
    AnnotationSetRefItems,
    AnnotationOffItems,
    Directories,
    FieldAnnotations,
    MethodAnnotations,
    ParameterAnnotations,
}

/// Which instructions carry a reference of a code type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Code {
    StringId16,
    StringId32,
    TypeId,
    ProtoId,
    CallSiteId,
    MethodHandle,
    FieldId,
    MethodId,
    Rel8,
    Rel16,
    Rel32,
}

/// Where the references of a type are.
#[derive(Clone, Copy, Debug)]
enum Loc {
    /// A field at this offset of every item of an id table.
    Items(Table, u32),
    /// `method_handle_item.field_or_method_id` of the items whose
    /// `method_handle_type` is in this range.
    Handles(u16, u16),
    /// A field at this offset of every member of a list.
    Members(List, u32),
    /// Instruction operands.
    Insns(Code),
}

/// How the references of a type encode their target.
#[derive(Clone, Copy, Debug)]
enum Val {
    /// An index into an id table.
    Index(Table),
    /// An absolute 32-bit file offset.
    Abs32,
    /// A branch in code units.
    Rel,
}

/// One reference type: width in bytes, pool, location, encoding.
struct Spec(u8, Pool, Loc, Val);

/// `method_handle_type` ranges: field accessors and method invokers.
const HANDLE_FIELD: (u16, u16) = (0x00, 0x03);
const HANDLE_METHOD: (u16, u16) = (0x04, 0x08);
/// `method_handle_type` values from here on are invalid.
const HANDLE_TYPE_END: u16 = 0x09;

/// Index sentinel (`NO_INDEX`), kept as the target of an absent index.
const NO_INDEX: u32 = 0xFFFF_FFFF;
/// Zucchini's `kInvalidOffset`.
const INVALID: u32 = 0xFFFF_FFFE;
/// Zucchini's `kOffsetBound`.
const OFFSET_BOUND: u32 = 0x7FFF_FFFF;

/// The reference types, by type tag (Zucchini's `MakeReferenceGroups`).
const SPECS: [Spec; NUM_TYPES] = {
    use Loc::*;
    use Pool as P;
    use Table as T;
    use Val::*;
    [
        Spec(4, P::StringId, Items(T::TypeIds, 0), Index(T::StringIds)),
        Spec(4, P::StringId, Items(T::ProtoIds, 0), Index(T::StringIds)),
        Spec(4, P::StringId, Items(T::FieldIds, 4), Index(T::StringIds)),
        Spec(4, P::StringId, Items(T::MethodIds, 4), Index(T::StringIds)),
        Spec(4, P::StringId, Items(T::ClassDefs, 16), Index(T::StringIds)),
        Spec(2, P::StringId, Insns(Code::StringId16), Index(T::StringIds)),
        Spec(4, P::StringId, Insns(Code::StringId32), Index(T::StringIds)),
        Spec(4, P::TypeId, Items(T::ProtoIds, 4), Index(T::TypeIds)),
        Spec(2, P::TypeId, Items(T::FieldIds, 0), Index(T::TypeIds)),
        Spec(2, P::TypeId, Items(T::FieldIds, 2), Index(T::TypeIds)),
        Spec(2, P::TypeId, Items(T::MethodIds, 0), Index(T::TypeIds)),
        Spec(4, P::TypeId, Items(T::ClassDefs, 0), Index(T::TypeIds)),
        Spec(4, P::TypeId, Items(T::ClassDefs, 8), Index(T::TypeIds)),
        Spec(2, P::TypeId, Members(List::TypeItems, 0), Index(T::TypeIds)),
        Spec(2, P::TypeId, Insns(Code::TypeId), Index(T::TypeIds)),
        Spec(2, P::ProtoId, Insns(Code::ProtoId), Index(T::ProtoIds)),
        Spec(2, P::ProtoId, Items(T::MethodIds, 2), Index(T::ProtoIds)),
        Spec(2, P::FieldId, Insns(Code::FieldId), Index(T::FieldIds)),
        Spec(
            2,
            P::FieldId,
            Handles(HANDLE_FIELD.0, HANDLE_FIELD.1),
            Index(T::FieldIds),
        ),
        Spec(
            4,
            P::FieldId,
            Members(List::FieldAnnotations, 0),
            Index(T::FieldIds),
        ),
        Spec(2, P::MethodId, Insns(Code::MethodId), Index(T::MethodIds)),
        Spec(
            2,
            P::MethodId,
            Handles(HANDLE_METHOD.0, HANDLE_METHOD.1),
            Index(T::MethodIds),
        ),
        Spec(
            4,
            P::MethodId,
            Members(List::MethodAnnotations, 0),
            Index(T::MethodIds),
        ),
        Spec(
            4,
            P::MethodId,
            Members(List::ParameterAnnotations, 0),
            Index(T::MethodIds),
        ),
        Spec(
            2,
            P::CallSiteId,
            Insns(Code::CallSiteId),
            Index(T::CallSiteIds),
        ),
        Spec(
            2,
            P::MethodHandle,
            Insns(Code::MethodHandle),
            Index(T::MethodHandles),
        ),
        Spec(4, P::TypeList, Items(T::ProtoIds, 8), Abs32),
        Spec(4, P::TypeList, Items(T::ClassDefs, 12), Abs32),
        Spec(
            4,
            P::AnnotationSetRefList,
            Members(List::ParameterAnnotations, 4),
            Abs32,
        ),
        Spec(
            4,
            P::AnnotationSet,
            Members(List::AnnotationSetRefItems, 0),
            Abs32,
        ),
        Spec(4, P::AnnotationSet, Members(List::Directories, 0), Abs32),
        Spec(
            4,
            P::AnnotationSet,
            Members(List::FieldAnnotations, 4),
            Abs32,
        ),
        Spec(
            4,
            P::AnnotationSet,
            Members(List::MethodAnnotations, 4),
            Abs32,
        ),
        Spec(4, P::ClassData, Items(T::ClassDefs, 24), Abs32),
        Spec(1, P::Code, Insns(Code::Rel8), Rel),
        Spec(2, P::Code, Insns(Code::Rel16), Rel),
        Spec(4, P::Code, Insns(Code::Rel32), Rel),
        Spec(4, P::StringData, Items(T::StringIds, 0), Abs32),
        Spec(
            4,
            P::Annotation,
            Members(List::AnnotationOffItems, 0),
            Abs32,
        ),
        Spec(4, P::EncodedArray, Items(T::ClassDefs, 28), Abs32),
        Spec(4, P::AnnotationsDirectory, Items(T::ClassDefs, 20), Abs32),
        Spec(4, P::CallSite, Items(T::CallSiteIds, 0), Abs32),
    ]
};

/// [`SPECS`] as the interface's groups.
const GROUPS: [RefGroup; NUM_TYPES] = {
    let mut g = [RefGroup {
        width: 0,
        type_tag: 0,
        pool_tag: 0,
    }; NUM_TYPES];
    let mut i = 0;
    while i < NUM_TYPES {
        g[i] = RefGroup {
            width: SPECS[i].0 as u32,
            type_tag: i as u8,
            pool_tag: SPECS[i].1 as u8,
        };
        i += 1;
    }
    g
};

/// Offset of the reference inside an instruction of `code`'s kind, if
/// `insn` is one.
fn code_operand(code: Code, insn: Insn) -> Option<u32> {
    let op = insn.opcode;
    let (format, at) = match code {
        Code::StringId16 if op == 0x1A => (Format::C, 2),
        Code::StringId32 if op == 0x1B => (Format::C, 2),
        Code::TypeId if matches!(op, 0x1C | 0x1F | 0x20 | 0x22..=0x25) => (Format::C, 2),
        Code::ProtoId if matches!(op, 0xFA | 0xFB) => (Format::C, 6),
        Code::ProtoId if op == 0xFF => (Format::C, 2),
        Code::CallSiteId if matches!(op, 0xFC | 0xFD) => (Format::C, 2),
        Code::MethodHandle if op == 0xFE => (Format::C, 2),
        Code::FieldId if matches!(op, 0x52 | 0x60) => (Format::C, 2),
        Code::MethodId if matches!(op, 0x6E | 0x74 | 0xFA | 0xFB) => (Format::C, 2),
        Code::Rel8 if op == 0x28 => (Format::T, 1),
        Code::Rel16 if matches!(op, 0x29 | 0x32 | 0x38) => (Format::T, 2),
        Code::Rel32 if matches!(op, 0x26 | 0x2A | 0x2B | 0x2C) => (Format::T, 2),
        _ => return None,
    };
    (insn.format == format).then_some(at)
}

/// A parsed DEX element.
#[derive(Debug)]
pub struct DisassemblerDex {
    version: u32,
    file_size: u32,
    /// Map entries of the id tables, by [`Table`] (absent: all zero).
    tables: [MapItem; 8],
    /// Code item offsets, increasing.
    code_items: Vec<u32>,
    /// Member offsets of each [`List`], increasing.
    lists: [Vec<u32>; 7],
}

/// Parses and validates a DEX element as Zucchini's `DisassemblerDex::Parse`.
pub fn new(image: &[u8]) -> Result<DisassemblerDex, ZucchiniError> {
    DisassemblerDex::new(image)
}

impl DisassemblerDex {
    /// Parses and validates a DEX element (see the module docs).
    pub fn new(image: &[u8]) -> Result<Self, ZucchiniError> {
        let header = layout::read_header(image)?;
        let dex = &image[..header.file_size as usize];
        let map = layout::read_map(dex, header.map_off)?;
        let find = |code: u16| {
            map.iter()
                .copied()
                .find(|m| m.type_code == code)
                .unwrap_or_default()
        };
        let tables = Table::ALL.map(|t| find(t.info().0));
        let members = |code: u16, what: &str, width: u32| {
            let m = find(code);
            layout::list_members(dex, what, m.offset, m.size, width)
        };
        let type_items = members(type_code::TYPE_LIST, "type_list", size::TYPE_ITEM)?;
        let set_refs = members(
            type_code::ANNOTATION_SET_REF_LIST,
            "annotation_set_ref_list",
            size::OFF_ITEM,
        )?;
        let sets = members(
            type_code::ANNOTATION_SET_ITEM,
            "annotation_set_item",
            size::OFF_ITEM,
        )?;
        let dirs_map = find(type_code::ANNOTATIONS_DIRECTORY_ITEM);
        let dirs = layout::annotations_directories(dex, dirs_map.offset, dirs_map.size)?;
        let code_items = code::code_items(dex, find(type_code::CODE_ITEM))?;
        Ok(DisassemblerDex {
            version: header.version,
            file_size: header.file_size,
            tables,
            code_items,
            lists: [
                type_items,
                set_refs,
                sets,
                dirs.directories,
                dirs.fields,
                dirs.methods,
                dirs.parameters,
            ],
        })
    }

    /// The DEX version (35, 37, 38 or 39).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The header's `file_size`: the DEX's length within the element.
    pub fn file_size(&self) -> u32 {
        self.file_size
    }

    /// Offsets of the code items, increasing.
    pub fn code_items(&self) -> &[u32] {
        &self.code_items
    }

    fn table(&self, t: Table) -> (MapItem, u32) {
        (self.tables[t as usize], t.info().1)
    }

    /// The target the reference of `val` at `loc` encodes: `None` when
    /// invalid; 0 and [`NO_INDEX`] are sentinels the readers treat as theirs.
    fn target(&self, dex: &[u8], width: u8, val: Val, loc: u32) -> Option<u32> {
        let at = loc as u64;
        match val {
            Val::Index(t) => {
                let (m, size) = self.table(t);
                let idx = match width {
                    2 => u32::from(u16_at(dex, at)?),
                    _ => u32_at(dex, at)?,
                };
                if idx == NO_INDEX {
                    return Some(NO_INDEX);
                }
                (idx < m.size).then(|| m.offset + idx * size)
            }
            Val::Abs32 => {
                let off = u32_at(dex, at)?;
                (off < self.file_size).then_some(off)
            }
            Val::Rel => {
                let delta = match width {
                    1 => i64::from(*dex.get(loc as usize)? as i8),
                    2 => i64::from(u16_at(dex, at)? as i16),
                    _ => i64::from(u32_at(dex, at)? as i32),
                };
                let units = (delta - 1) * 2;
                if width == 4 {
                    let t = at as i64 + units;
                    return (0..OFFSET_BOUND as i64).contains(&t).then_some(t as u32);
                }
                let t = loc.wrapping_add(units as u32);
                (t != INVALID).then_some(t)
            }
        }
    }

    /// Target of a method handle's `field_or_method_id` at `item`:
    /// [`NO_INDEX`] (skip) for a handle of the other kind.
    fn handle_target(&self, dex: &[u8], item: u32, kinds: (u16, u16), val: Val) -> Option<u32> {
        let kind = u16_at(dex, item as u64)?;
        if kind >= HANDLE_TYPE_END {
            return None;
        }
        if kind < kinds.0 || kind > kinds.1 {
            return Some(NO_INDEX);
        }
        self.target(dex, 2, val, item + 4)
    }

    /// References in an id table's items (Zucchini's `ItemReferenceReader`).
    fn read_items(&self, dex: &[u8], spec: &Spec, lo: u32, hi: u32) -> Vec<Reference> {
        let (t, field, handle) = match spec.2 {
            Loc::Items(t, field) => (t, field, None),
            Loc::Handles(a, b) => (Table::MethodHandles, 4, Some((a, b))),
            _ => unreachable!("read_items is only called for item types"),
        };
        let (m, size) = self.table(t);
        let mut out = Vec::new();
        if m.offset == 0 {
            return out;
        }
        let item_at = |i: u32| m.offset as u64 + i as u64 * size as u64;
        let mut i = if lo < m.offset {
            0
        } else if (lo as u64) < item_at(m.size) {
            let i = (lo - m.offset) / size;
            i + u32::from(lo as u64 > item_at(i) + field as u64)
        } else {
            m.size
        };
        while i < m.size {
            let item = item_at(i) as u32;
            let loc = item + field;
            if loc >= hi {
                break;
            }
            let target = match handle {
                Some(kinds) => self.handle_target(dex, item, kinds, spec.3),
                None => self.target(dex, spec.0, spec.3, loc),
            };
            match target {
                Some(0) | Some(NO_INDEX) => {}
                Some(target) => out.push(Reference {
                    location: loc,
                    target,
                }),
                None => break,
            }
            i += 1;
        }
        out
    }

    /// References in list members (`CachedItemListReferenceReader`).
    fn read_list(&self, dex: &[u8], spec: &Spec, lo: u32, hi: u32) -> Vec<Reference> {
        let Loc::Members(list, field) = spec.2 else {
            unreachable!("read_list is only called for list types")
        };
        let offsets = &self.lists[list as usize];
        let mut i = offsets.partition_point(|&o| o <= lo);
        if i > 0 && offsets[i - 1] as u64 + field as u64 >= lo as u64 {
            i -= 1;
        }
        let mut out = Vec::new();
        for &member in &offsets[i..] {
            let loc = member + field;
            if loc >= hi {
                break;
            }
            match self.target(dex, spec.0, spec.3, loc) {
                Some(0) => {}
                Some(target) => out.push(Reference {
                    location: loc,
                    target,
                }),
                None => break,
            }
        }
        out
    }

    /// References in instructions (`InstructionReferenceReader`).
    fn read_code(&self, dex: &[u8], spec: &Spec, lo: u32, hi: u32) -> Vec<Reference> {
        let Loc::Insns(kind) = spec.2 else {
            unreachable!("read_code is only called for code types")
        };
        let first = self
            .code_items
            .partition_point(|&o| o <= lo)
            .saturating_sub(1);
        let mut out = Vec::new();
        for &item in &self.code_items[first..] {
            for (at, insn) in Instructions::new(dex, item) {
                if at >= hi {
                    return out;
                }
                let Some(operand) = code_operand(kind, insn) else {
                    continue;
                };
                let loc = at + operand;
                if loc < lo {
                    continue;
                }
                if loc >= hi {
                    return out;
                }
                if let Some(target) = self.target(dex, spec.0, spec.3, loc) {
                    out.push(Reference {
                        location: loc,
                        target,
                    });
                }
            }
        }
        out
    }

    /// The bytes encoding `r.target` for a reference of `spec` (little-endian,
    /// `spec.0` of them used), or why it cannot be encoded.
    fn encode(&self, spec: &Spec, r: Reference) -> Result<[u8; 4], String> {
        let width = spec.0;
        match spec.3 {
            Val::Abs32 => Ok(r.target.to_le_bytes()),
            Val::Index(t) => {
                let (m, size) = self.table(t);
                let name = t.info().2;
                let rel = r.target.checked_sub(m.offset).filter(|d| d % size == 0);
                let idx = rel.map(|d| d / size).ok_or_else(|| {
                    format!(
                        "target {:#x} is not the start of a {size}-byte {name} item from {:#x}",
                        r.target, m.offset
                    )
                })?;
                let limit = if width == 2 {
                    m.size.min(0x1_0000)
                } else {
                    m.size
                };
                if idx >= limit {
                    return Err(format!(
                        "target {:#x} is {name} index {idx}, past the {} items{}",
                        r.target,
                        m.size,
                        if width == 2 { " or 16 bits" } else { "" }
                    ));
                }
                Ok(idx.to_le_bytes())
            }
            Val::Rel => {
                let diff = r.target as i64 - r.location as i64;
                if diff % 2 != 0 {
                    return Err(format!(
                        "target {:#x} is an odd distance from the operand",
                        r.target
                    ));
                }
                let delta = diff / 2 + 1;
                let bits = 8 * width as u32;
                let (min, max) = (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1);
                if delta < min || delta > max {
                    return Err(format!(
                        "target {:#x} is {delta} code units away, beyond a {bits}-bit branch",
                        r.target
                    ));
                }
                Ok((delta as i32).to_le_bytes())
            }
        }
    }
}

impl Disassembler for DisassemblerDex {
    fn groups(&self) -> &[RefGroup] {
        &GROUPS
    }

    fn read(&self, image: &[u8], type_tag: u8, lo: u32, hi: u32) -> Vec<Reference> {
        let Some(spec) = SPECS.get(type_tag as usize) else {
            return Vec::new();
        };
        let dex = &image[..image.len().min(self.file_size as usize)];
        match spec.2 {
            Loc::Items(..) | Loc::Handles(..) => self.read_items(dex, spec, lo, hi),
            Loc::Members(..) => self.read_list(dex, spec, lo, hi),
            Loc::Insns(_) => self.read_code(dex, spec, lo, hi),
        }
    }

    fn write(&self, image: &mut [u8], type_tag: u8, r: Reference) -> Result<(), ZucchiniError> {
        let fail = |reason: String| ZucchiniError::BadReference {
            type_tag,
            location: r.location,
            reason: format!("DEX: {reason}"),
        };
        let spec = SPECS
            .get(type_tag as usize)
            .ok_or_else(|| fail(format!("there are {NUM_TYPES} DEX reference types")))?;
        let width = spec.0 as usize;
        let at = r.location as usize;
        let body = image
            .get_mut(at..at.saturating_add(width))
            .filter(|b| b.len() == width)
            .ok_or_else(|| fail(format!("a {width}-byte reference passes the element's end")))?;
        let bytes = self.encode(spec, r).map_err(fail)?;
        body.copy_from_slice(&bytes[..width]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALPHA: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/dex/alpha_v39.dex"
    ));
    const BETA: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/dex/beta_v35.dex"
    ));

    /// Chromium `disassembler_dex.cc`, `DisassemblerDex::MakeReferenceGroups`
    /// (with `ReferenceType` / `ReferencePool` of `disassembler_dex.h`):
    /// (width, type tag, pool tag) in order.
    const UPSTREAM_GROUPS: [(u32, u8, u8); 42] = [
        (4, 0, 0),   // kTypeIdToDescriptorStringId, kStringId
        (4, 1, 0),   // kProtoIdToShortyStringId
        (4, 2, 0),   // kFieldIdToNameStringId
        (4, 3, 0),   // kMethodIdToNameStringId
        (4, 4, 0),   // kClassDefToSourceFileStringId
        (2, 5, 0),   // kCodeToStringId16
        (4, 6, 0),   // kCodeToStringId32
        (4, 7, 1),   // kProtoIdToReturnTypeId, kTypeId
        (2, 8, 1),   // kFieldIdToClassTypeId
        (2, 9, 1),   // kFieldIdToTypeId
        (2, 10, 1),  // kMethodIdToClassTypeId
        (4, 11, 1),  // kClassDefToClassTypeId
        (4, 12, 1),  // kClassDefToSuperClassTypeId
        (2, 13, 1),  // kTypeListToTypeId
        (2, 14, 1),  // kCodeToTypeId
        (2, 15, 2),  // kCodeToProtoId, kProtoId
        (2, 16, 2),  // kMethodIdToProtoId
        (2, 17, 3),  // kCodeToFieldId, kFieldId
        (2, 18, 3),  // kMethodHandleToFieldId
        (4, 19, 3),  // kAnnotationsDirectoryToFieldId
        (2, 20, 4),  // kCodeToMethodId, kMethodId
        (2, 21, 4),  // kMethodHandleToMethodId
        (4, 22, 4),  // kAnnotationsDirectoryToMethodId
        (4, 23, 4),  // kAnnotationsDirectoryToParameterMethodId
        (2, 24, 5),  // kCodeToCallSiteId, kCallSiteId
        (2, 25, 6),  // kCodeToMethodHandle, kMethodHandle
        (4, 26, 7),  // kProtoIdToParametersTypeList, kTypeList
        (4, 27, 7),  // kClassDefToInterfacesTypeList
        (4, 28, 8),  // kAnnotationsDirectoryToParameterAnnotationSetRef
        (4, 29, 9),  // kAnnotationSetRefListToAnnotationSet, kAnnotionSet
        (4, 30, 9),  // kAnnotationsDirectoryToClassAnnotationSet
        (4, 31, 9),  // kAnnotationsDirectoryToFieldAnnotationSet
        (4, 32, 9),  // kAnnotationsDirectoryToMethodAnnotationSet
        (4, 33, 10), // kClassDefToClassData, kClassData
        (1, 34, 11), // kCodeToRelCode8, kCode
        (2, 35, 11), // kCodeToRelCode16
        (4, 36, 11), // kCodeToRelCode32
        (4, 37, 12), // kStringIdToStringData, kStringData
        (4, 38, 13), // kAnnotationSetToAnnotation, kAnnotation
        (4, 39, 14), // kClassDefToStaticValuesEncodedArray, kEncodedArray
        (4, 40, 15), // kClassDefToAnnotationDirectory, kAnnotationsDirectory
        (4, 41, 16), // kCallSiteIdToCallSite, kCallSite
    ];

    #[test]
    fn groups_are_upstreams() {
        let d = new(ALPHA).unwrap();
        let got: Vec<(u32, u8, u8)> = d
            .groups()
            .iter()
            .map(|g| (g.width, g.type_tag, g.pool_tag))
            .collect();
        assert_eq!(got, UPSTREAM_GROUPS);
        assert_eq!(RefType::CallSiteIdToCallSite as usize, NUM_TYPES - 1);
        assert_eq!(Pool::CallSite as u8, 16);
    }

    /// Chromium `disassembler_dex_unittest.cc`, `DisassemblerDexTest.
    /// ReferenceGroups`: every type once, in order; pools non-decreasing.
    #[test]
    fn upstream_reference_groups_invariants() {
        let d = new(BETA).unwrap();
        let types: Vec<u8> = d.groups().iter().map(|g| g.type_tag).collect();
        let pools: Vec<u8> = d.groups().iter().map(|g| g.pool_tag).collect();
        assert_eq!(types, (0..NUM_TYPES as u8).collect::<Vec<_>>());
        assert!(pools.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn versions_and_sizes() {
        let a = new(ALPHA).unwrap();
        assert_eq!((a.version(), a.file_size()), (39, ALPHA.len() as u32));
        let b = new(BETA).unwrap();
        assert_eq!(b.version(), 35);
        // Bytes after file_size are not part of the DEX.
        let mut longer = BETA.to_vec();
        longer.extend_from_slice(&[0xff; 64]);
        let l = new(&longer).unwrap();
        assert_eq!(l.file_size(), BETA.len() as u32);
        for t in 0..NUM_TYPES as u8 {
            assert_eq!(
                l.read(&longer, t, 0, longer.len() as u32),
                b.read(BETA, t, 0, BETA.len() as u32)
            );
        }
    }

    fn get32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn put32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// Offset of the map entry of `code` in `b`.
    fn map_entry(b: &[u8], code: u16) -> usize {
        let map = get32(b, 52) as usize;
        (0..get32(b, map) as usize)
            .map(|i| map + 4 + 12 * i)
            .find(|&e| u16::from_le_bytes([b[e], b[e + 1]]) == code)
            .expect("map entry")
    }

    fn refused(b: &[u8], needle: &str) {
        match new(b) {
            Err(ZucchiniError::BadElement { reason, .. }) => {
                assert!(reason.contains(needle), "{reason:?} lacks {needle:?}")
            }
            other => panic!("expected a BadElement with {needle:?}, got {other:?}"),
        }
    }

    #[test]
    fn hostile_headers() {
        for len in 0..0x70 {
            refused(&BETA[..len], "header needs 112 bytes");
        }
        let mut b = BETA.to_vec();
        b[3] = b'\r';
        refused(&b, "magic at offset 0");
        for v in [b"036", b"040", b"0a5"] {
            let mut b = BETA.to_vec();
            b[4..7].copy_from_slice(v);
            refused(&b, if v[1] == b'a' { "magic" } else { "version" });
        }
        let mut b = BETA.to_vec();
        put32(&mut b, 32, BETA.len() as u32 + 1);
        refused(&b, "file_size (offset 32)");
        put32(&mut b, 32, 0x6f);
        refused(&b, "file_size (offset 32) = 111");
        let mut b = BETA.to_vec();
        put32(&mut b, 52, 0x6c);
        refused(&b, "map_off (offset 52) = 0x6c");
        put32(&mut b, 52, BETA.len() as u32 - 2);
        refused(&b, "map_list.size at map_off");
        // A file_size that cuts the map list off.
        let mut b = BETA.to_vec();
        put32(&mut b, 32, get32(BETA, 52) + 8);
        refused(&b, "entries of 12 bytes pass");
    }

    #[test]
    fn hostile_map() {
        let map = get32(BETA, 52) as usize;
        let mut b = BETA.to_vec();
        put32(&mut b, map, 22);
        refused(&b, "= 22 exceeds the 21 type codes");
        put32(&mut b, map, 0xffff_ffff);
        refused(&b, "exceeds the 21 type codes");
        // An id table whose count passes the end.
        let mut b = BETA.to_vec();
        put32(&mut b, map_entry(BETA, 1) + 4, 0x4000_0000);
        refused(&b, "(type 0x0001): 1073741824 items of at least 4 bytes");
        // An offset past the end.
        let mut b = BETA.to_vec();
        put32(&mut b, map_entry(BETA, 2) + 8, BETA.len() as u32 + 4);
        refused(&b, "(type 0x0002)");
        // A type listed twice.
        let mut b = BETA.to_vec();
        let e = map_entry(BETA, 3);
        b[e..e + 2].copy_from_slice(&2u16.to_le_bytes());
        refused(&b, "type 0x0002 is listed twice");
    }

    #[test]
    fn hostile_lists_and_code() {
        // A type list whose size passes the end.
        let mut b = BETA.to_vec();
        let tl = get32(BETA, map_entry(BETA, 0x1001) + 8) as usize;
        put32(&mut b, tl, 0x7fff_ffff);
        refused(&b, "DEX type_list 0 at");
        // No code items.
        let mut b = BETA.to_vec();
        put32(&mut b, map_entry(BETA, 0x2001) + 4, 0);
        refused(&b, "no code items");
        // More code items than there are.
        let mut b = BETA.to_vec();
        put32(&mut b, map_entry(BETA, 0x2001) + 4, 9);
        refused(&b, "DEX code_item");
        // insns_size past the end.
        let code = get32(BETA, map_entry(BETA, 0x2001) + 8) as usize;
        let mut b = BETA.to_vec();
        put32(&mut b, code + 12, 0x8000_0000);
        refused(&b, "insns_size");
        // tries past the end.
        let mut b = BETA.to_vec();
        b[code + 6..code + 8].copy_from_slice(&0xffffu16.to_le_bytes());
        refused(&b, "tries_size");
    }

    #[test]
    fn hostile_catch_handlers() {
        // Alpha's `join` has one try item; its handler list follows it.
        let d = new(ALPHA).unwrap();
        let item = d
            .code_items()
            .iter()
            .map(|&o| o as usize)
            .find(|&o| u16::from_le_bytes([ALPHA[o + 6], ALPHA[o + 7]]) == 1)
            .expect("a code item with tries");
        let insns = get32(ALPHA, item + 12) as usize;
        let list = (item + 16 + 2 * insns).next_multiple_of(4) + 8;
        for (bytes, needle) in [
            (
                &[0xff, 0xff, 0xff, 0xff, 0xff][..],
                "bad handlers_size ULEB128",
            ),
            (&[0xff, 0xff, 0x03][..], "exceeds the bytes left"),
            (
                &[0x01, 0xff, 0xff, 0xff, 0xff, 0xff][..],
                "bad size SLEB128",
            ),
            (&[0x01, 0xff, 0xff, 0x01][..], "exceeds the bytes left"),
        ] {
            let mut b = ALPHA.to_vec();
            b[list..list + bytes.len()].copy_from_slice(bytes);
            refused(&b, needle);
        }
    }

    #[test]
    fn hostile_annotations_directory() {
        let mut b = ALPHA.to_vec();
        let dir = get32(ALPHA, map_entry(ALPHA, 0x2006) + 8) as usize;
        put32(&mut b, dir + 8, 0x1000_0000);
        refused(&b, "annotated_methods_size = 268435456");
    }

    /// Checks the interface invariants on whatever parses.
    fn exercise(b: &[u8]) {
        let Ok(d) = new(b) else { return };
        let mut copy = b.to_vec();
        for g in d.groups() {
            let refs = d.read(b, g.type_tag, 0, u32::MAX);
            assert!(refs.windows(2).all(|w| w[0].location < w[1].location));
            for r in &refs {
                assert!(r.location as u64 + g.width as u64 <= d.file_size() as u64);
                // Own targets either write back unchanged or are refused.
                if d.write(&mut copy, g.type_tag, *r).is_ok() {
                    assert_eq!(copy, b, "type {} at {:#x}", g.type_tag, r.location);
                }
                copy.copy_from_slice(b);
            }
            // A split read: the low half is the full read's prefix; the high
            // half holds the rest (and more where the full read stopped at
            // an invalid target below `mid`).
            let mid = b.len() as u32 / 2;
            let (lo, hi) = (
                d.read(b, g.type_tag, 0, mid),
                d.read(b, g.type_tag, mid, u32::MAX),
            );
            let (below, above): (Vec<Reference>, Vec<Reference>) =
                refs.iter().partition(|r| r.location < mid);
            assert_eq!(lo, below, "type {}", g.type_tag);
            assert!(above.iter().all(|r| hi.contains(r)), "type {}", g.type_tag);
        }
    }

    #[test]
    fn mutations_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for base in [ALPHA, BETA] {
            exercise(base);
            for len in (0x70..base.len()).step_by(7) {
                let mut b = base[..len].to_vec();
                put32(&mut b, 32, len as u32);
                exercise(&b);
            }
            for _ in 0..400 {
                let mut b = base.to_vec();
                for _ in 0..1 + next() % 4 {
                    let at = 0x20 + (next() as usize % (b.len() - 0x20));
                    b[at] = next() as u8;
                }
                exercise(&b);
            }
        }
    }
}
