//! Zucchini's DEX disassembler against `dexdump` (Debian's `dexdump`, ART's
//! tool): the references found in code items (indices per instruction,
//! branch targets), in class definitions, id tables, call sites and method
//! handles, and the code item walk, on DEX files assembled by smali from the
//! sources in tests/data/dex (README there). Writes are checked by writing
//! each reference's own target (byte-identical file) and new targets (only
//! the reference's bytes change, and dexdump then reports the new value).
//! References in id items and variable-length lists (type lists, annotation
//! sets, set-ref lists and directories) are checked against androguard's DEX
//! parser (tests/oracles/dex_lists.py). Both oracles also check the real DEX
//! files (dx, d8 and app builds, DEX 035–039) that Debian's androguard ships
//! among its examples. The oracle tests skip when their tool is missing,
//! unless ROMKIT_ORACLES=require.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use romkit::format::patch::zucchini::dex::{self, DisassemblerDex, RefType};
use romkit::format::patch::zucchini::disasm::{Disassembler, Reference};

const FILES: [&str; 2] = ["alpha_v39.dex", "beta_v35.dex"];

fn data(name: &str) -> Vec<u8> {
    let p = common::root().join("tests/data/dex").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn dexdump(path: &Path, flags: &str) -> Option<String> {
    let tool = common::tool("dexdump")?;
    let out = Command::new(tool)
        .arg(flags)
        .arg(path)
        .output()
        .expect("run dexdump");
    assert!(out.status.success(), "dexdump {flags} {}", path.display());
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every reference of one type in the whole file.
fn all(d: &DisassemblerDex, image: &[u8], t: RefType) -> Vec<Reference> {
    d.read(image, t as u8, 0, image.len() as u32)
}

/// Asserts equal reference lists, showing the first difference.
fn same_refs(got: &[Reference], want: &[Reference], what: &str) {
    if got == want {
        return;
    }
    let i = got.iter().zip(want).take_while(|(a, b)| a == b).count();
    panic!(
        "{what}: {} references found, {} expected; first difference at #{i}: found {:?}, expected {:?}",
        got.len(),
        want.len(),
        got.get(i),
        want.get(i)
    );
}

/// The first number of `value` (decimal, may be negative).
fn num(value: &str) -> i64 {
    let v = value.trim();
    let end = v
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(v.len(), |(i, _)| i);
    v[..end]
        .parse()
        .unwrap_or_else(|_| panic!("number in {value:?}"))
}

/// `key : value` lines of the file header (`-f`).
fn header_fields(dump: &str) -> BTreeMap<String, i64> {
    let mut f = BTreeMap::new();
    for line in dump.lines() {
        if line.starts_with("Class #") {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && v.trim().starts_with(|c: char| c.is_ascii_digit())
        {
            f.insert(k.trim().to_string(), num(v));
        }
    }
    f
}

/// The `-h` class headers, in class order.
fn class_headers(dump: &str) -> Vec<BTreeMap<String, i64>> {
    let mut out: Vec<BTreeMap<String, i64>> = Vec::new();
    let mut inside = false;
    for line in dump.lines() {
        if line.starts_with("Class #") && line.ends_with("header:") {
            out.push(BTreeMap::new());
            inside = true;
        } else if line.trim().is_empty() {
            inside = false;
        } else if inside {
            let (k, v) = line.split_once(':').expect("key: value");
            out.last_mut().unwrap().insert(k.trim().to_string(), num(v));
        }
    }
    out
}

/// A disassembled instruction: file offset, text after `|addr: `.
struct Line {
    off: u32,
    text: String,
}

/// The instructions of `-d` (payload pseudo-instructions excluded), and the
/// code item offsets (`|[offset] method` lines).
fn instructions(dump: &str) -> (Vec<Line>, Vec<u32>) {
    let (mut insns, mut items): (Vec<Line>, Vec<u32>) = (Vec::new(), Vec::new());
    for line in dump.lines() {
        // A string constant with line breaks continues on the next lines,
        // up to its `// string@` comment.
        if let Some(last) = insns.last_mut()
            && last.text.starts_with("const-string")
            && !last.text.contains("// string@")
        {
            last.text.push('\n');
            last.text.push_str(line);
            continue;
        }
        let Some((off, rest)) = line.split_once(": ") else {
            continue;
        };
        let Ok(off) = u32::from_str_radix(off, 16) else {
            continue;
        };
        let Some((_, right)) = rest.split_once('|') else {
            continue;
        };
        if let Some(item) = right.strip_prefix('[') {
            items.push(u32::from_str_radix(&item[..6], 16).unwrap());
            continue;
        }
        let text = right[6..].to_string();
        let op = text.split_whitespace().next().unwrap_or("");
        if !matches!(
            op,
            "array-data" | "packed-switch-data" | "sparse-switch-data"
        ) {
            insns.push(Line { off, text });
        }
    }
    (insns, items)
}

/// The hex number after `key` in `text`.
fn after(text: &str, key: &str) -> Option<u32> {
    let rest = &text[text.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(rest.len());
    Some(u32::from_str_radix(&rest[..end], 16).unwrap())
}

/// Offset and item count of a map list entry, read here independently.
fn map_entry(image: &[u8], type_code: u16) -> (u32, u32) {
    let u32_at = |o: usize| u32::from_le_bytes(image[o..o + 4].try_into().unwrap());
    let map = u32_at(52) as usize;
    for i in 0..u32_at(map) as usize {
        let e = map + 4 + 12 * i;
        if u16::from_le_bytes([image[e], image[e + 1]]) == type_code {
            return (u32_at(e + 8), u32_at(e + 4));
        }
    }
    (0, 0)
}

/// What dexdump says the code references are, by type.
fn expected_code_refs(image: &[u8], dump: &str) -> BTreeMap<u8, Vec<Reference>> {
    let h = header_fields(dump);
    let off = |k: &str| h[k] as u32;
    let (call_sites, _) = map_entry(image, 0x0007);
    let (handles, _) = map_entry(image, 0x0008);
    let mut out: BTreeMap<u8, Vec<Reference>> = BTreeMap::new();
    let mut add = |t: RefType, location: u32, target: u32| {
        out.entry(t as u8)
            .or_default()
            .push(Reference { location, target });
    };
    let (insns, _) = instructions(dump);
    for Line { off: at, text } in &insns {
        let at = *at;
        let op = text.split_whitespace().next().unwrap();
        if let Some(i) = after(text, "string@") {
            let t = if op == "const-string/jumbo" {
                RefType::CodeToStringId32
            } else {
                RefType::CodeToStringId16
            };
            add(t, at + 2, off("string_ids_off") + 4 * i);
        }
        if let Some(i) = after(text, "type@") {
            add(RefType::CodeToTypeId, at + 2, off("type_ids_off") + 4 * i);
        }
        if let Some(i) = after(text, "field@") {
            add(RefType::CodeToFieldId, at + 2, off("field_ids_off") + 8 * i);
        }
        if let Some(i) = after(text, "method@") {
            add(
                RefType::CodeToMethodId,
                at + 2,
                off("method_ids_off") + 8 * i,
            );
        }
        if let Some(i) = after(text, "proto@") {
            let operand = if op.starts_with("invoke-polymorphic") {
                6
            } else {
                2
            };
            add(
                RefType::CodeToProtoId,
                at + operand,
                off("proto_ids_off") + 12 * i,
            );
        }
        if let Some(i) = after(text, "call_site@") {
            add(RefType::CodeToCallSiteId, at + 2, call_sites + 4 * i);
        }
        if let Some(i) = after(text, "method_handle@") {
            add(RefType::CodeToMethodHandle, at + 2, handles + 8 * i);
        }
        let (t, operand) = match op {
            "goto" => (RefType::CodeToRelCode8, 1),
            "goto/16" => (RefType::CodeToRelCode16, 2),
            _ if op.starts_with("if-") => (RefType::CodeToRelCode16, 2),
            "goto/32" | "fill-array-data" | "packed-switch" | "sparse-switch" => {
                (RefType::CodeToRelCode32, 2)
            }
            _ => continue,
        };
        let units = if op == "goto/32" {
            after(text, "#").unwrap() as i32 as i64
        } else if let Some(r) = after(text, "// +") {
            r as i64
        } else {
            -(after(text, "// -").expect("branch offset") as i64)
        };
        // Zucchini's target is `operand + (delta - 1) * 2`: the instruction's
        // target for 16/32-bit operands (2 bytes in), one byte before it
        // for the 8-bit `goto` operand (1 byte in) — upstream's formula.
        let location = at + operand;
        add(t, location, (location as i64 + 2 * (units - 1)) as u32);
    }
    // dexdump lists methods by class, not by file offset.
    for refs in out.values_mut() {
        refs.sort();
    }
    out
}

const CODE_TYPES: [RefType; 11] = [
    RefType::CodeToStringId16,
    RefType::CodeToStringId32,
    RefType::CodeToTypeId,
    RefType::CodeToProtoId,
    RefType::CodeToFieldId,
    RefType::CodeToMethodId,
    RefType::CodeToCallSiteId,
    RefType::CodeToMethodHandle,
    RefType::CodeToRelCode8,
    RefType::CodeToRelCode16,
    RefType::CodeToRelCode32,
];

#[test]
fn code_references_match_dexdump() {
    for name in FILES {
        let path = common::root().join("tests/data/dex").join(name);
        let Some(dump) = dexdump(&path, "-df") else {
            return;
        };
        let image = data(name);
        let d = dex::new(&image).unwrap();
        let expected = expected_code_refs(&image, &dump);
        for t in CODE_TYPES {
            let want = expected.get(&(t as u8)).cloned().unwrap_or_default();
            assert_eq!(all(&d, &image, t), want, "{name}: {t:?}");
        }
        if name.starts_with("alpha") {
            // Every code type occurs in Alpha.smali.
            assert_eq!(expected.len(), CODE_TYPES.len(), "{name}");
        }
        // Code items: the ones dexdump lists, in file order.
        let (insns, mut items) = instructions(&dump);
        items.sort();
        assert_eq!(d.code_items(), items, "{name}: code items");
        // The instruction walk decodes what dexdump decodes, lengths included.
        let mut walked = Vec::new();
        for &item in d.code_items() {
            walked.extend(dex::code::Instructions::new(&image, item).map(|(at, i)| (at, i.units)));
        }
        let offsets: Vec<u32> = walked.iter().map(|&(at, _)| at).collect();
        let listed: Vec<u32> = insns.iter().map(|l| l.off).collect();
        assert_eq!(offsets, listed, "{name}: instruction offsets");
        for w in walked.windows(2) {
            if !items.contains(&(w[1].0 - 16)) {
                assert_eq!(
                    w[0].0 + 2 * w[0].1 as u32,
                    w[1].0,
                    "{name}: length at {:#x}",
                    w[0].0
                );
            }
        }
    }
}

#[test]
fn table_references_match_dexdump() {
    for name in FILES {
        let path = common::root().join("tests/data/dex").join(name);
        let Some(found) = check_tables(&path) else {
            return;
        };
        if name.starts_with("alpha") {
            assert!(found.iter().all(|&n| n > 0), "{name}: {found:?}");
        }
    }
}

/// Checks the id-table, class-definition, call-site and method-handle
/// references of the DEX at `path` against `dexdump -f -h`; returns how many
/// call sites, field handles and method handles it found.
fn check_tables(path: &Path) -> Option<[usize; 3]> {
    let name = path.display();
    let (Some(head), Some(classes)) = (dexdump(path, "-dfj"), dexdump(path, "-hj")) else {
        return None;
    };
    let image = std::fs::read(path).unwrap();
    let d = dex::new(&image).unwrap();
    let h = header_fields(&head);
    let off = |k: &str| h[k] as u32;
    let count = |k: &str| h[k] as u32;
    let locations =
        |t: RefType| -> Vec<u32> { all(&d, &image, t).iter().map(|r| r.location).collect() };
    let every = |table: &str, size: u32, field: u32| -> Vec<u32> {
        let base = off(&format!("{table}_off"));
        (0..count(&format!("{table}_size")))
            .map(|i| base + size * i + field)
            .collect()
    };
    use RefType as R;
    for (t, table, size, field) in [
        (R::StringIdToStringData, "string_ids", 4, 0),
        (R::TypeIdToDescriptorStringId, "type_ids", 4, 0),
        (R::ProtoIdToShortyStringId, "proto_ids", 12, 0),
        (R::ProtoIdToReturnTypeId, "proto_ids", 12, 4),
        (R::FieldIdToClassTypeId, "field_ids", 8, 0),
        (R::FieldIdToTypeId, "field_ids", 8, 2),
        (R::FieldIdToNameStringId, "field_ids", 8, 4),
        (R::MethodIdToClassTypeId, "method_ids", 8, 0),
        (R::MethodIdToProtoId, "method_ids", 8, 2),
        (R::MethodIdToNameStringId, "method_ids", 8, 4),
    ] {
        assert_eq!(locations(t), every(table, size, field), "{name}: {t:?}");
    }
    // Class definitions: dexdump -h prints their index and offset fields.
    let cd = off("class_defs_off");
    let class_types = [
        R::ClassDefToClassTypeId,
        R::ClassDefToSuperClassTypeId,
        R::ClassDefToInterfacesTypeList,
        R::ClassDefToSourceFileStringId,
        R::ClassDefToAnnotationDirectory,
        R::ClassDefToClassData,
    ];
    let mut want: BTreeMap<u8, Vec<Reference>> =
        class_types.iter().map(|&t| (t as u8, Vec::new())).collect();
    let headers = class_headers(&classes);
    assert_eq!(headers.len() as u32, count("class_defs_size"), "{name}");
    for (k, c) in headers.iter().enumerate() {
        let base = cd + 32 * k as u32;
        for (t, field, key, scale, table) in [
            (R::ClassDefToClassTypeId, 0, "class_idx", 4, "type_ids_off"),
            (
                R::ClassDefToSuperClassTypeId,
                8,
                "superclass_idx",
                4,
                "type_ids_off",
            ),
            (R::ClassDefToInterfacesTypeList, 12, "interfaces_off", 0, ""),
            (
                R::ClassDefToSourceFileStringId,
                16,
                "source_file_idx",
                4,
                "string_ids_off",
            ),
            (
                R::ClassDefToAnnotationDirectory,
                20,
                "annotations_off",
                0,
                "",
            ),
            (R::ClassDefToClassData, 24, "class_data_off", 0, ""),
        ] {
            let v = c[key];
            let absent = if scale == 0 {
                v == 0
            } else {
                v < 0 || v == 0xFFFF_FFFF
            };
            if !absent {
                let target = if scale == 0 {
                    v as u32
                } else {
                    off(table) + scale * v as u32
                };
                want.entry(t as u8).or_default().push(Reference {
                    location: base + field,
                    target,
                });
            }
        }
    }
    for (t, refs) in &want {
        assert_eq!(
            &d.read(&image, *t, 0, image.len() as u32),
            refs,
            "{name}: type {t}"
        );
    }
    // Call sites ("Call site #i: // offset N") and method handles.
    let (cs_ids, _) = map_entry(&image, 0x0007);
    let mut sites = Vec::new();
    let (mut field_handles, mut method_handles) = (Vec::new(), Vec::new());
    let (mh, _) = map_entry(&image, 0x0008);
    let mut handle = 0u32;
    for line in head.lines() {
        if let Some(rest) = line.strip_prefix("Call site #") {
            let i: u32 = num(rest) as u32;
            let target = num(rest.split("offset").nth(1).unwrap()) as u32;
            sites.push(Reference {
                location: cs_ids + 4 * i,
                target,
            });
        }
        if let Some(rest) = line.strip_prefix("Method handle #") {
            handle = num(rest) as u32;
        }
        if let Some(kind) = line.trim().strip_prefix("type        : ") {
            let loc = mh + 8 * handle + 4;
            if kind.starts_with("invoke-") {
                method_handles.push(loc);
            } else {
                field_handles.push(loc);
            }
        }
    }
    assert_eq!(all(&d, &image, R::CallSiteIdToCallSite), sites, "{name}");
    assert_eq!(locations(R::MethodHandleToFieldId), field_handles, "{name}");
    assert_eq!(
        locations(R::MethodHandleToMethodId),
        method_handles,
        "{name}"
    );
    Some([sites.len(), field_handles.len(), method_handles.len()])
}

#[test]
fn writing_own_targets_is_identity() {
    for name in FILES {
        let image = data(name);
        let d = dex::new(&image).unwrap();
        let mut copy = image.clone();
        let mut total = 0;
        for g in d.groups() {
            for r in d.read(&image, g.type_tag, 0, image.len() as u32) {
                d.write(&mut copy, g.type_tag, r).unwrap();
                total += 1;
            }
        }
        assert_eq!(copy, image, "{name}");
        assert!(total > 30, "{name}: only {total} references");
    }
}

/// Writes `target` into the first reference of `t` at `location`, checks
/// that only its `width` bytes changed, and returns the new image.
fn rewrite(d: &DisassemblerDex, image: &[u8], t: RefType, location: u32, target: u32) -> Vec<u8> {
    let mut out = image.to_vec();
    d.write(&mut out, t as u8, Reference { location, target })
        .unwrap();
    let width = d.groups()[t as usize].width;
    for (i, (a, b)) in image.iter().zip(&out).enumerate() {
        let inside = (location as usize..(location + width) as usize).contains(&i);
        assert!(
            inside || a == b,
            "{t:?}: byte {i:#x} changed outside the reference"
        );
    }
    assert_ne!(out, image, "{t:?}: nothing changed");
    assert!(
        d.read(&out, t as u8, location, location + 1)
            .contains(&Reference { location, target })
    );
    out
}

#[test]
fn new_targets_as_dexdump_reads_them() {
    let name = "alpha_v39.dex";
    let image = data(name);
    let d = dex::new(&image).unwrap();
    let path = common::root().join("tests/data/dex").join(name);
    let Some(before) = dexdump(&path, "-df") else {
        return;
    };
    let h = header_fields(&before);
    let table = |k: &str| {
        (
            h[&format!("{k}_off")] as u32,
            h[&format!("{k}_size")] as u32,
        )
    };
    let handles = map_entry(&image, 0x0008);
    // Each index type: its first reference gets the next index of its table.
    let mut out = image.clone();
    let mut want_text = Vec::new();
    for (t, (base, count), size, key, digits) in [
        (
            RefType::CodeToStringId16,
            table("string_ids"),
            4,
            "string@",
            4,
        ),
        (
            RefType::CodeToStringId32,
            table("string_ids"),
            4,
            "string@",
            8,
        ),
        (RefType::CodeToTypeId, table("type_ids"), 4, "type@", 4),
        (RefType::CodeToFieldId, table("field_ids"), 8, "field@", 4),
        (
            RefType::CodeToMethodId,
            table("method_ids"),
            8,
            "method@",
            4,
        ),
        (RefType::CodeToProtoId, table("proto_ids"), 12, "proto@", 4),
        (RefType::CodeToMethodHandle, handles, 8, "method_handle@", 4),
    ] {
        let r = all(&d, &image, t)[0];
        let new_idx = ((r.target - base) / size + 1) % count;
        out = rewrite(&d, &out, t, r.location, base + size * new_idx);
        want_text.push((r.location, format!("{key}{new_idx:0digits$x}")));
    }
    // A 16-bit branch to the instruction after the one it targeted, and the
    // 32-bit goto to the instruction before its target.
    let r16 = all(&d, &image, RefType::CodeToRelCode16)[0];
    out = rewrite(
        &d,
        &out,
        RefType::CodeToRelCode16,
        r16.location,
        r16.target + 4,
    );
    let goto32 = all(&d, &image, RefType::CodeToRelCode32)
        .into_iter()
        .find(|r| image[r.location as usize - 2] == 0x2A)
        .unwrap();
    out = rewrite(
        &d,
        &out,
        RefType::CodeToRelCode32,
        goto32.location,
        goto32.target - 2,
    );
    let tmp = tempfile::tempdir().unwrap();
    let new_path = tmp.path().join("new.dex");
    std::fs::write(&new_path, &out).unwrap();
    // -i: the checksum no longer matches; -j: no verification.
    let Some(after_dump) = dexdump(&new_path, "-dij") else {
        return;
    };
    let (mut insns, _) = instructions(&after_dump);
    insns.sort_by_key(|l| l.off);
    let at = |off: u32| &insns.iter().find(|l| l.off == off).unwrap().text;
    for (location, text) in &want_text {
        let line = insns.iter().rev().find(|l| l.off <= *location).unwrap();
        assert!(
            line.text.contains(text.as_str()),
            "{} lacks {text}",
            line.text
        );
    }
    let want16 = (r16.target + 4 - (r16.location - 2)) / 2;
    assert!(
        at(r16.location - 2).ends_with(&format!("// +{want16:04x}")),
        "{}",
        at(r16.location - 2)
    );
    let want32 = (goto32.target - 2 - (goto32.location - 2)) / 2;
    assert!(
        at(goto32.location - 2).ends_with(&format!("#{want32:08x}")),
        "{}",
        at(goto32.location - 2)
    );
    // The 8-bit backward goto of Beta.count, moved one unit further back.
    let beta = data("beta_v35.dex");
    let db = dex::new(&beta).unwrap();
    let g8 = all(&db, &beta, RefType::CodeToRelCode8)[0];
    let out8 = rewrite(
        &db,
        &beta,
        RefType::CodeToRelCode8,
        g8.location,
        g8.target - 2,
    );
    std::fs::write(&new_path, &out8).unwrap();
    let dump8 = dexdump(&new_path, "-dij").unwrap();
    let (insns8, _) = instructions(&dump8);
    let text = &insns8
        .iter()
        .find(|l| l.off == g8.location - 1)
        .unwrap()
        .text;
    assert!(text.ends_with("// -0007"), "{text}");
}

#[test]
fn unencodable_targets_are_refused() {
    let image = data("alpha_v39.dex");
    let d = dex::new(&image).unwrap();
    let mut copy = image.clone();
    let s = all(&d, &image, RefType::CodeToStringId16)[0];
    let g8 = all(&d, &image, RefType::CodeToRelCode8)[0];
    for (t, r) in [
        // Not the start of a string_id_item.
        (
            RefType::CodeToStringId16,
            Reference {
                target: s.target + 1,
                ..s
            },
        ),
        // Before the table, and past its end.
        (RefType::CodeToStringId16, Reference { target: 0x10, ..s }),
        (
            RefType::CodeToStringId16,
            Reference {
                target: 0x7fff_fff0,
                ..s
            },
        ),
        // Odd distance, and too far for 8 bits.
        (
            RefType::CodeToRelCode8,
            Reference {
                target: g8.target + 1,
                ..g8
            },
        ),
        (
            RefType::CodeToRelCode8,
            Reference {
                target: g8.location + 400,
                ..g8
            },
        ),
        // Past the element.
        (
            RefType::StringIdToStringData,
            Reference {
                location: image.len() as u32 - 2,
                target: 0,
            },
        ),
    ] {
        assert!(d.write(&mut copy, t as u8, r).is_err(), "{t:?} {r:?}");
    }
    assert!(d.write(&mut copy, dex::NUM_TYPES as u8, s).is_err());
    assert_eq!(copy, image);
}

/// Debian's androguard (system python3) running tests/oracles/dex_lists.py.
fn androguard_refs(path: &Path) -> Option<serde_json::Value> {
    let python = Path::new("/usr/bin/python3");
    let ok = Command::new(python)
        .args(["-c", "import androguard.core.bytecodes.dvm"])
        .output()
        .is_ok_and(|o| o.status.success());
    common::need(
        "androguard (Debian package, /usr/bin/python3)",
        ok.then_some(()),
    )?;
    let script = common::root().join("tests/oracles/dex_lists.py");
    let out = Command::new(python).arg(script).arg(path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// The types tests/oracles/dex_lists.py computes.
const LIST_TYPES: [RefType; 16] = {
    use RefType as R;
    [
        R::TypeIdToDescriptorStringId,
        R::ProtoIdToShortyStringId,
        R::ProtoIdToReturnTypeId,
        R::TypeListToTypeId,
        R::AnnotationsDirectoryToFieldId,
        R::AnnotationsDirectoryToMethodId,
        R::AnnotationsDirectoryToParameterMethodId,
        R::ProtoIdToParametersTypeList,
        R::AnnotationsDirectoryToParameterAnnotationSetRef,
        R::AnnotationSetRefListToAnnotationSet,
        R::AnnotationsDirectoryToClassAnnotationSet,
        R::AnnotationsDirectoryToFieldAnnotationSet,
        R::AnnotationsDirectoryToMethodAnnotationSet,
        R::StringIdToStringData,
        R::AnnotationSetToAnnotation,
        R::ClassDefToStaticValuesEncodedArray,
    ]
};

/// The oracle's references of type `t` (none when it lists none).
fn oracle_refs(json: &serde_json::Value, t: RefType) -> Vec<Reference> {
    json.get((t as u8).to_string())
        .and_then(|v| v.as_array())
        .map(|refs| {
            refs.iter()
                .map(|p| Reference {
                    location: p[0].as_u64().unwrap() as u32,
                    target: p[1].as_u64().unwrap() as u32,
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn item_and_list_references_match_androguard() {
    let types = LIST_TYPES;
    for name in FILES {
        let path = common::root().join("tests/data/dex").join(name);
        let Some(want) = androguard_refs(&path) else {
            return;
        };
        let image = data(name);
        let d = dex::new(&image).unwrap();
        for t in types {
            let expected = oracle_refs(&want, t);
            if name.starts_with("alpha") {
                assert!(!expected.is_empty(), "{name}: androguard found no {t:?}");
            }
            assert_eq!(all(&d, &image, t), expected, "{name}: {t:?}");
        }
    }
}

/// Real DEX files written by dx, d8 and others, shipped with Debian's
/// androguard (its examples): up to this size, to keep the test quick.
const REAL_MAX: u64 = 1 << 20;

fn real_dex_files() -> Option<Vec<std::path::PathBuf>> {
    let dir = Path::new("/usr/share/doc/androguard/examples");
    common::need(
        "androguard examples (Debian androguard)",
        dir.is_dir().then_some(()),
    )?;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "dex")
                && p.metadata().unwrap().len() <= REAL_MAX
            {
                out.push(p);
            }
        }
    }
    out.sort();
    Some(out)
}

#[test]
fn real_dex_files_match_dexdump_and_androguard() {
    let Some(files) = real_dex_files() else {
        return;
    };
    assert!(files.len() >= 20, "{files:?}");
    let mut checked = 0;
    for path in &files {
        let name = path.display();
        let image = std::fs::read(path).unwrap();
        let version = &image[4..7];
        let d = match dex::new(&image) {
            Ok(d) => d,
            Err(e) => {
                // Zucchini refuses DEX 036 (never a released format).
                assert_eq!(version, b"036", "{name}: {e}");
                continue;
            }
        };
        let Some(dump) = dexdump(path, "-dfj") else {
            return;
        };
        if check_tables(path).is_none() {
            return;
        }
        let expected = expected_code_refs(&image, &dump);
        for t in CODE_TYPES {
            let want = expected.get(&(t as u8)).cloned().unwrap_or_default();
            same_refs(&all(&d, &image, t), &want, &format!("{name}: {t:?}"));
        }
        let Some(lists) = androguard_refs(path) else {
            return;
        };
        for t in LIST_TYPES {
            let got = all(&d, &image, t);
            same_refs(&got, &oracle_refs(&lists, t), &format!("{name}: {t:?}"));
        }
        // Every reference's own target writes back unchanged.
        let mut copy = image.clone();
        for g in d.groups() {
            for r in d.read(&image, g.type_tag, 0, image.len() as u32) {
                d.write(&mut copy, g.type_tag, r).unwrap();
            }
        }
        assert!(copy == image, "{name}: writing own targets changed bytes");
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} files checked");
}

/// A one-element `DEX ` patch from `old` to itself: one equivalence over the
/// whole file, no extra data or raw deltas, `deltas` reference deltas (each
/// zero) and no extra targets.
fn identity_patch(major: u16, old: &[u8], deltas: usize) -> Vec<u8> {
    let leb = |mut v: u32, out: &mut Vec<u8>| loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    };
    let crc = romkit::format::patch::zucchini::crc32(old);
    let len = old.len() as u32;
    let mut p = b"Zucc".to_vec();
    p.extend_from_slice(&major.to_le_bytes());
    p.extend_from_slice(&0u16.to_le_bytes());
    for v in [len, crc, len, crc, 1, 0, len, 0, len] {
        p.extend_from_slice(&v.to_le_bytes());
    }
    p.extend_from_slice(b"DEX ");
    p.extend_from_slice(&1u16.to_le_bytes());
    let (mut src, mut dst, mut copy) = (Vec::new(), Vec::new(), Vec::new());
    leb(0, &mut src);
    leb(0, &mut dst);
    leb(len, &mut copy);
    let zero_deltas = vec![0u8; deltas]; // varint 0 is one zero byte
    for b in [
        &src,
        &dst,
        &copy,
        &Vec::new(),
        &Vec::new(),
        &Vec::new(),
        &zero_deltas,
    ] {
        p.extend_from_slice(&(b.len() as u32).to_le_bytes());
        p.extend_from_slice(b);
    }
    p.extend_from_slice(&0u32.to_le_bytes());
    p
}

#[test]
fn dex_elements_go_through_reference_correction() {
    use romkit::format::patch::zucchini;
    for name in FILES {
        let old = data(name);
        let d = DisassemblerDex::new(&old).unwrap();
        let n: usize = d
            .groups()
            .iter()
            .map(|g| d.read(&old, g.type_tag, 0, old.len() as u32).len())
            .sum();
        assert!(n > 20, "{name}: {n} references");
        for major in [1, 2] {
            let p = identity_patch(major, &old, n);
            assert_eq!(
                zucchini::apply(&old, &p, 1 << 20).unwrap(),
                old,
                "{name} v{major}"
            );
            // One delta short or one too many: the stream must be consumed exactly.
            for wrong in [n - 1, n + 1] {
                let p = identity_patch(major, &old, wrong);
                assert!(
                    zucchini::apply(&old, &p, 1 << 20).is_err(),
                    "{name} {wrong}"
                );
            }
        }
    }
}
