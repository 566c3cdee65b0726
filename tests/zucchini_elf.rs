//! Zucchini ELF elements end to end (`Ex86`, `Ex64` built by gcc from C;
//! `EA32` in ARM and Thumb2 mode and `EA64` assembled and linked by GNU
//! cross binutils), on
//! tests/data/zucchini-elf: sources, build script, and reference lists
//! derived from binutils.
//!
//! - the disassembler finds exactly the binutils-derived references;
//! - the identity patch (one equivalence, every reference delta 0) gives
//!   back the old file;
//! - an old -> new patch whose equivalences are chosen by hand from the
//!   section tables, with raw deltas everywhere except inside the bodies of
//!   the references it corrects, gives the real compiled new file: the
//!   reference deltas and extra targets are computed here from the
//!   binutils-derived lists with this file's own projection (so the result
//!   depends on the correction step writing every projected reference
//!   right);
//! - hostile elements and streams are errors, never panics.

use romkit::format::patch::zucchini::apply::make_disassembler;
use romkit::format::patch::zucchini::disasm::Disassembler;
use romkit::format::patch::zucchini::elf::DisassemblerElfIntel;
use romkit::format::patch::zucchini::{self, ExeType, ZucchiniError};

fn data(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/zucchini-elf")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A reference list: per type tag (0 reloc, 1 abs32, then rel32 types),
/// sorted (location, target) pairs.
type Refs = Vec<Vec<(u32, u32)>>;

/// Executable type and reference widths by type tag (Zucchini's tables:
/// pointers are 4 or 8 bytes, x86 rel32 4, ARM A24 4, T8 2, T11 2, T20 4,
/// T24 4, AArch64 Immd14/19/26 4). Types from 2 on share pool 2.
fn arch(name: &str) -> (&'static [u8; 4], &'static [u32]) {
    match &name[..3] {
        "x64" => (b"Ex64", &[8, 8, 4]),
        "x86" => (b"Ex86", &[4, 4, 4]),
        "a32" | "t32" => (b"EA32", &[4, 4, 4, 2, 2, 4, 4]),
        "a64" => (b"EA64", &[8, 8, 4, 4, 4]),
        _ => unreachable!(),
    }
}

fn exe_of(name: &str) -> &'static [u8; 4] {
    arch(name).0
}

fn refs(name: &str) -> Refs {
    let text = String::from_utf8(data(&format!("{name}.refs"))).unwrap();
    let mut r: Refs = vec![Vec::new(); arch(name).1.len()];
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let t = match f[0] {
            "reloc" => 0,
            "abs32" => 1,
            "rel32" => 2,
            k => k.strip_prefix("rel32:").unwrap().parse().unwrap(),
        };
        let n = |s: &str| u32::from_str_radix(s, 16).unwrap();
        r[t].push((n(f[1]), n(f[2])));
    }
    for v in &mut r {
        v.sort();
    }
    r
}

fn disasm(name: &str, image: &[u8]) -> Result<Box<dyn Disassembler>, ZucchiniError> {
    let exe = ExeType::from_u32(u32::from_le_bytes(*exe_of(name))).unwrap();
    make_disassembler(exe, image)
}

const OLD_FILES: [&str; 5] = ["x64_old", "x86_old", "a32_old", "t32_old", "a64_old"];
const FILES: [&str; 10] = [
    "x64_old", "x64_new", "x86_old", "x86_new", "a32_old", "a32_new", "t32_old", "t32_new",
    "a64_old", "a64_new",
];

#[test]
fn disassembler_matches_binutils() {
    for name in FILES {
        let image = data(name);
        let d = disasm(name, &image).unwrap();
        let want = refs(name);
        for t in 0..want.len() as u8 {
            let got: Vec<(u32, u32)> = d
                .read(&image, t, 0, image.len() as u32)
                .iter()
                .map(|r| (r.location, r.target))
                .collect();
            assert_eq!(got, want[t as usize], "{name} type {t}");
        }
        let want: Vec<(u32, u8, u8)> = arch(name)
            .1
            .iter()
            .enumerate()
            .map(|(t, &w)| (w, t as u8, t.min(2) as u8))
            .collect();
        let g: Vec<(u32, u8, u8)> = d
            .groups()
            .iter()
            .map(|g| (g.width, g.type_tag, g.pool_tag))
            .collect();
        assert_eq!(g, want, "{name}");
    }
}

// ---- patch construction -------------------------------------------------

fn varuint(mut v: u32, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint(v: i32, out: &mut Vec<u8>) {
    varuint(
        if v < 0 {
            ((!v as u32) << 1) | 1
        } else {
            (v as u32) << 1
        },
        out,
    );
}

fn buffer(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// The streams of one element.
#[derive(Default)]
struct Element {
    exe: [u8; 4],
    old_len: u32,
    new_len: u32,
    eqs: Vec<(u32, u32, u32)>,
    extra: Vec<u8>,
    raw: Vec<(u32, i8)>,
    ref_deltas: Vec<i32>,
    extra_targets: Vec<(u8, Vec<u32>)>,
}

/// A one-element patch from `old` to a file of `new_len` bytes with CRC
/// `new_crc`.
fn patch(major: u16, old: &[u8], new_len: u32, new_crc: u32, e: &Element) -> Vec<u8> {
    let mut p = b"Zucc".to_vec();
    p.extend_from_slice(&major.to_le_bytes());
    p.extend_from_slice(&0u16.to_le_bytes());
    for v in [old.len() as u32, zucchini::crc32(old), new_len, new_crc, 1] {
        p.extend_from_slice(&v.to_le_bytes());
    }
    for v in [0, e.old_len, 0, e.new_len, u32::from_le_bytes(e.exe)] {
        p.extend_from_slice(&v.to_le_bytes());
    }
    p.extend_from_slice(&1u16.to_le_bytes());
    let (mut ss, mut ds, mut cc) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ps, mut pd) = (0i64, 0u32);
    for &(s, d, l) in &e.eqs {
        varint((s as i64 - ps) as i32, &mut ss);
        varuint(d - pd, &mut ds);
        varuint(l, &mut cc);
        ps = (s + l) as i64;
        pd = d + l;
    }
    for b in [&ss, &ds, &cc, &e.extra] {
        buffer(b, &mut p);
    }
    let (mut skips, mut diffs, mut next) = (Vec::new(), Vec::new(), 0u32);
    for &(off, d) in &e.raw {
        varuint(off - next, &mut skips);
        diffs.push(d as u8);
        next = off + 1;
    }
    buffer(&skips, &mut p);
    buffer(&diffs, &mut p);
    let mut rd = Vec::new();
    for &d in &e.ref_deltas {
        varint(d, &mut rd);
    }
    buffer(&rd, &mut p);
    p.extend_from_slice(&(e.extra_targets.len() as u32).to_le_bytes());
    for (tag, targets) in &e.extra_targets {
        p.push(*tag);
        let (mut b, mut next) = (Vec::new(), 0u32);
        for &t in targets {
            varuint(t - next, &mut b);
            next = t + 1;
        }
        buffer(&b, &mut p);
    }
    p
}

/// The identity element of `image`: one equivalence, `n` zero deltas.
fn identity(exe: &[u8; 4], image: &[u8], n: usize) -> Element {
    Element {
        exe: *exe,
        old_len: image.len() as u32,
        new_len: image.len() as u32,
        eqs: vec![(0, 0, image.len() as u32)],
        ref_deltas: vec![0; n],
        ..Default::default()
    }
}

#[test]
fn identity_patch_gives_old() {
    for name in FILES {
        let old = data(name);
        let n: usize = refs(name).iter().map(Vec::len).sum();
        for major in [1, 2] {
            let p = patch(
                major,
                &old,
                old.len() as u32,
                zucchini::crc32(&old),
                &identity(exe_of(name), &old, n),
            );
            assert_eq!(
                zucchini::apply(&old, &p, 1 << 20).unwrap(),
                old,
                "{name} v{major}"
            );
        }
    }
}

// ---- an independent patch generator for old -> new ----------------------

/// Projects `t` through the equivalence nearest to it (inside: distance 0;
/// ties to the lower one), clamped to the new element.
fn project(eqs: &[(u32, u32, u32)], t: u32, new_len: u32) -> u32 {
    let dist = |&(s, _, l): &(u32, u32, u32)| {
        if t < s {
            s - t
        } else if t >= s + l {
            t - (s + l) + 1
        } else {
            0
        }
    };
    let mut sorted = eqs.to_vec();
    sorted.sort();
    let best = sorted.iter().min_by_key(|e| dist(e)).unwrap();
    (t as i64 - best.0 as i64 + best.1 as i64).clamp(0, new_len as i64 - 1) as u32
}

fn inside(eqs: &[(u32, u32, u32)], t: u32) -> Option<u32> {
    eqs.iter()
        .find(|&&(s, _, l)| s <= t && t < s + l)
        .map(|&(s, d, _)| t - s + d)
}

/// The element turning `old` (file `name`'s architecture) into `new` with
/// the hand-chosen `eqs`.
fn element(
    name: &str,
    old: &[u8],
    new: &[u8],
    eqs: &[(u32, u32, u32)],
    or: &Refs,
    nr: &Refs,
) -> Element {
    let (exe, width) = arch(name);
    let mut e = Element {
        exe: *exe,
        old_len: old.len() as u32,
        new_len: new.len() as u32,
        eqs: eqs.to_vec(),
        ..Default::default()
    };
    // New bytes the correction writes: bodies of old references inside an
    // equivalence, moved with it.
    let mut corrected = vec![false; new.len()];
    for (t, list) in or.iter().enumerate() {
        for &(loc, _) in list {
            if let Some(nl) = inside(eqs, loc) {
                corrected[nl as usize..(nl + width[t]) as usize].fill(true);
            }
        }
    }
    let (mut pos, mut copy) = (0u32, 0u32);
    for &(s, d, l) in eqs {
        e.extra.extend_from_slice(&new[pos as usize..d as usize]);
        for k in 0..l {
            let (o, n) = (old[(s + k) as usize], new[(d + k) as usize]);
            if o != n && !corrected[(d + k) as usize] {
                e.raw.push((copy + k, n.wrapping_sub(o) as i8));
            }
        }
        pos = d + l;
        copy += l;
    }
    e.extra.extend_from_slice(&new[pos as usize..]);
    // Pools: 0 (reloc), 1 (abs32), 2 (every rel32 type).
    let pools: Vec<Vec<usize>> = vec![vec![0], vec![1], (2..width.len()).collect()];
    for (tag, types) in pools.iter().enumerate() {
        let mut pool: Vec<u32> = types
            .iter()
            .flat_map(|&t| or[t].iter().filter_map(|&(_, tg)| inside(eqs, tg)))
            .collect();
        pool.sort();
        pool.dedup();
        let mut extra: Vec<u32> = types
            .iter()
            .flat_map(|&t| nr[t].iter().map(|&(_, tg)| tg))
            .filter(|tg| pool.binary_search(tg).is_err())
            .collect();
        extra.sort();
        extra.dedup();
        pool.extend(&extra);
        pool.sort();
        if !extra.is_empty() {
            e.extra_targets.push((tag as u8, extra));
        }
        let key_of = |x: u32| pool.iter().position(|&p| p == x).unwrap() as i32;
        let nearest = |x: u32| {
            (0..pool.len())
                .min_by_key(|&k| (pool[k].abs_diff(x), k))
                .unwrap_or(0) as i32
        };
        for &t in types {
            for &(s, d, l) in eqs {
                for &(loc, tg) in or[t].iter().filter(|r| s <= r.0 && r.0 < s + l) {
                    let new_loc = loc - s + d;
                    let actual = nr[t]
                        .iter()
                        .find(|r| r.0 == new_loc)
                        .unwrap_or_else(|| {
                            panic!("{name}: no new type {t} reference at {new_loc:#x}")
                        })
                        .1;
                    let expected = nearest(project(eqs, tg, new.len() as u32));
                    e.ref_deltas.push(key_of(actual) - expected);
                }
            }
        }
    }
    e
}

/// Hand-chosen equivalences (old offset, new offset, length), section by
/// section from `readelf -SW` of both files; the inserted function splits
/// `.text` after `add`.
const X64_EQS: [(u32, u32, u32); 9] = [
    (0x0, 0x0, 0x1f0),     // headers, .interp, .gnu.hash, .dynsym, .dynstr
    (0x1f0, 0x1f0, 0x90),  // .rela.dyn (the 6 old entries)
    (0x280, 0x2b0, 0x4),   // .text: add
    (0x284, 0x2ba, 0x76),  // .text: sub, mul, apply, entry
    (0x2fa, 0x330, 0xc),   // .rodata
    (0x310, 0x340, 0x18),  // .data.rel.ro
    (0x328, 0x360, 0x100), // .dynamic
    (0x430, 0x460, 0x18),  // .data
    (0x448, 0x480, 0x27),  // .comment
];
const X86_EQS: [(u32, u32, u32); 10] = [
    (0x0, 0x0, 0x134),    // headers, .interp, .gnu.hash, .dynsym, .dynstr
    (0x134, 0x134, 0x30), // .rel.dyn (the 6 old entries)
    (0x164, 0x174, 0x9),  // .text: add
    (0x16d, 0x189, 0x97), // .text: sub, mul, apply, entry, get_pc_thunk
    (0x204, 0x220, 0xc),  // .rodata
    (0x210, 0x230, 0xc),  // .data.rel.ro
    (0x21c, 0x240, 0x80), // .dynamic
    (0x29c, 0x2c0, 0xc),  // .got.plt
    (0x2a8, 0x2cc, 0xc),  // .data
    (0x2b4, 0x2dc, 0x27), // .comment
];

/// ARM (assembly, `a32_*.s`): `entry` gains `bl f3` after `bl f2`, `f3`
/// is inserted before `f2`, `table` gains an entry.
const A32_EQS: [(u32, u32, u32); 10] = [
    (0x0, 0x0, 0x134),    // headers, .interp, .gnu.hash, .dynsym, .dynstr
    (0x134, 0x134, 0x18), // .rel.dyn (the 3 old entries)
    (0x14c, 0x154, 0xc),  // entry: push, bl f1, bl f2
    (0x158, 0x164, 0x10), // entry: cmp, beq, bl f1, pop
    (0x168, 0x174, 0x8),  // f1
    (0x170, 0x184, 0x8),  // f2
    (0x178, 0x190, 0x80), // .dynamic
    (0x1f8, 0x210, 0xc),  // .got
    (0x204, 0x21c, 0xc),  // .data (the 3 old words)
    (0x210, 0x22c, 0x16), // .ARM.attributes
];
/// Thumb2 (`t32_*.s`): the same change, with 16- and 32-bit branches.
const T32_EQS: [(u32, u32, u32); 10] = [
    (0x0, 0x0, 0x134),    // headers, .interp, .gnu.hash, .dynsym, .dynstr
    (0x134, 0x134, 0x18), // .rel.dyn (the 3 old entries)
    (0x14c, 0x154, 0xa),  // entry: push, bl f1, bl f2
    (0x156, 0x162, 0x14), // entry: cmp, beq.n, bne.w, b.n, bl f1, b.w f2, pop
    (0x16a, 0x176, 0x4),  // f1
    (0x16e, 0x17e, 0x4),  // f2
    (0x174, 0x184, 0x80), // .dynamic
    (0x1f4, 0x204, 0xc),  // .got
    (0x200, 0x210, 0xc),  // .data (the 3 old words)
    (0x20c, 0x220, 0x14), // .ARM.attributes
];
/// AArch64 (`a64_*.s`): the same change.
const A64_EQS: [(u32, u32, u32); 9] = [
    (0x0, 0x0, 0x1e8),     // headers, .interp, .gnu.hash, .dynsym, .dynstr
    (0x1e8, 0x1e8, 0x48),  // .rela.dyn (the 3 old entries)
    (0x230, 0x248, 0x18),  // entry: stp, bl f1, cbz, tbz, b.eq, bl f2
    (0x248, 0x264, 0x8),   // entry: ldp, ret
    (0x250, 0x26c, 0x8),   // f1
    (0x258, 0x27c, 0x8),   // f2
    (0x260, 0x288, 0x100), // .dynamic
    (0x360, 0x388, 0x20),  // .got, .got.plt
    (0x380, 0x3a8, 0x18),  // .data (the 3 old pointers)
];

fn old_to_new(arch: &str) -> (Vec<u8>, Vec<u8>, Element) {
    let (o, n) = (format!("{arch}_old"), format!("{arch}_new"));
    let (old, new) = (data(&o), data(&n));
    let (or, nr) = (refs(&o), refs(&n));
    let eqs: &[(u32, u32, u32)] = match arch {
        "x64" => &X64_EQS,
        "x86" => &X86_EQS,
        "a32" => &A32_EQS,
        "t32" => &T32_EQS,
        _ => &A64_EQS,
    };
    let e = element(&o, &old, &new, eqs, &or, &nr);
    (old, new, e)
}

#[test]
fn old_to_new_patch_gives_the_compiled_new_file() {
    for arch in ["x64", "x86", "a32", "t32", "a64"] {
        let (old, new, e) = old_to_new(arch);
        // The correction has real work: some corrected references change
        // their bytes and some targets come only from the extra targets.
        assert!(
            e.ref_deltas.len() >= 10
                && e.ref_deltas.iter().any(|&d| d != 0)
                && !e.extra_targets.is_empty(),
            "{arch}"
        );
        for major in [1, 2] {
            let p = patch(major, &old, new.len() as u32, zucchini::crc32(&new), &e);
            let got = zucchini::apply(&old, &p, 1 << 20)
                .unwrap_or_else(|err| panic!("{arch} v{major}: {err}"));
            assert!(
                got == new,
                "{arch} v{major}: result differs from the compiled new file"
            );
        }
        // Without correction (a NoOp element with the same raw streams) the
        // result differs from the new file: the reference bodies are stale.
        let raw = Element {
            exe: *b"NoOp",
            ref_deltas: Vec::new(),
            extra_targets: Vec::new(),
            ..e
        };
        let p = patch(1, &old, new.len() as u32, zucchini::crc32(&new), &raw);
        assert!(
            matches!(
                zucchini::apply(&old, &p, 1 << 20),
                Err(ZucchiniError::NewCrc { .. })
            ),
            "{arch}"
        );
    }
}

// ---- hostile --------------------------------------------------------------

fn apply_identity(
    name: &str,
    old: &[u8],
    deltas: Vec<i32>,
    extra: Vec<(u8, Vec<u32>)>,
) -> Result<Vec<u8>, ZucchiniError> {
    let mut e = identity(exe_of(name), old, 0);
    e.ref_deltas = deltas;
    e.extra_targets = extra;
    let p = patch(1, old, old.len() as u32, zucchini::crc32(old), &e);
    zucchini::apply(old, &p, 1 << 20)
}

#[test]
fn reference_delta_count_must_match() {
    for name in ["x64_old", "x86_old"] {
        let old = data(name);
        let n: usize = refs(name).iter().map(Vec::len).sum();
        match apply_identity(name, &old, vec![0; n - 1], Vec::new()) {
            Err(ZucchiniError::BadCorrection {
                element: 0,
                type_tag: 2,
                reason,
                ..
            }) => {
                assert!(reason.contains("no reference delta left"), "{reason}")
            }
            other => panic!("{name}: too few deltas gave {other:?}"),
        }
        match apply_identity(name, &old, vec![0; n + 1], Vec::new()) {
            Err(ZucchiniError::BadStream {
                element: 0,
                stream: "reference_delta",
                ..
            }) => {}
            other => panic!("{name}: too many deltas gave {other:?}"),
        }
    }
}

#[test]
fn key_out_of_range_is_an_error() {
    let name = "x64_old";
    let old = data(name);
    let n: usize = refs(name).iter().map(Vec::len).sum();
    for bad in [6, -1, i32::MAX, i32::MIN] {
        let mut d = vec![0; n];
        d[0] = bad; // The first reloc reference (key 0 of 6).
        match apply_identity(name, &old, d, Vec::new()) {
            Err(ZucchiniError::BadCorrection {
                type_tag: 0,
                location: 0x1f0,
                reason,
                ..
            }) => {
                assert!(reason.contains("outside the pool's 6 targets"), "{reason}")
            }
            other => panic!("delta {bad} gave {other:?}"),
        }
    }
}

#[test]
fn target_without_address_is_refused_on_write() {
    // An extra target in the section header table (no address): pool 0 key 6.
    let name = "x64_old";
    let old = data(name);
    let n: usize = refs(name).iter().map(Vec::len).sum();
    let mut d = vec![0; n];
    d[0] = 6;
    match apply_identity(name, &old, d, vec![(0, vec![0x6c0])]) {
        Err(ZucchiniError::BadCorrection {
            type_tag: 0,
            location: 0x1f0,
            reason,
            ..
        }) => {
            assert!(reason.contains("0x6c0 has no address"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_extra_targets_are_errors() {
    let name = "x86_old";
    let old = data(name);
    let n: usize = refs(name).iter().map(Vec::len).sum();
    let mut e = identity(exe_of(name), &old, n);
    e.extra_targets = vec![(1, vec![])];
    let mut p = patch(1, &old, old.len() as u32, zucchini::crc32(&old), &e);
    // Replace the empty list by one unterminated varint.
    let at = p.len() - 4;
    p.truncate(at);
    p.extend_from_slice(&[1, 0, 0, 0, 0x80]);
    match zucchini::apply(&old, &p, 1 << 20) {
        Err(ZucchiniError::BadStream {
            stream: "extra_targets",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn references_pointing_outside_are_dropped() {
    // Point the first relocation (x64_old: .rela.dyn entry at 0x1f0) far
    // outside the image: Zucchini drops it and the abs32 pointer it located.
    let name = "x64_old";
    let mut old = data(name);
    old[0x1f0..0x1f8].copy_from_slice(&0x7000_0000u64.to_le_bytes());
    // And a rel32 (the call in `entry`, disp32 at 0x2e3) out of the image.
    old[0x2e3..0x2e7].copy_from_slice(&0x4000_0000u32.to_le_bytes());
    let d = DisassemblerElfIntel::new_x64(&old).unwrap();
    let count = |t| d.read(&old, t, 0, old.len() as u32).len();
    assert_eq!((count(0), count(1), count(2)), (5, 5, 2));
    let n = refs(name).iter().map(Vec::len).sum::<usize>() - 3;
    assert_eq!(
        apply_identity(name, &old, vec![0; n], Vec::new()).unwrap(),
        old
    );
}

#[test]
fn malformed_elf_elements_are_errors() {
    for name in OLD_FILES {
        let good = data(name);
        let n: usize = refs(name).iter().map(Vec::len).sum();
        let is_64 = good[4] == 2;
        let (shoff_at, shnum_at) = if is_64 { (40, 60) } else { (32, 48) };
        let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
        cases.push(("truncated", good[..good.len() - 10].to_vec()));
        cases.push(("header only", good[..if is_64 { 64 } else { 52 }].to_vec()));
        let mut v = good.clone();
        v[shoff_at + 1] = 0xff;
        cases.push(("section table past the end", v));
        let mut v = good.clone();
        v[shnum_at] = 0xff;
        cases.push(("too many sections", v));
        let mut v = good.clone();
        v[5] = 2;
        cases.push(("big-endian", v));
        let mut v = good.clone();
        v.extend_from_slice(&[0; 16]);
        cases.push(("trailing bytes", v));
        for (what, img) in cases {
            match apply_identity(name, &img, vec![0; n], Vec::new()) {
                Err(ZucchiniError::BadElement {
                    element: 0,
                    exe_type,
                    reason,
                }) => {
                    assert_eq!(exe_type, std::str::from_utf8(exe_of(name)).unwrap());
                    assert!(
                        reason.starts_with("old element: "),
                        "{name} {what}: {reason}"
                    );
                }
                other => panic!("{name} {what}: {other:?}"),
            }
        }
    }
}

/// Every single-byte change of the ELF, section and program headers, and a
/// few values each, parses or is refused without panicking; an identity
/// patch then applies or fails cleanly.
#[test]
fn header_mutations_do_not_panic() {
    for name in OLD_FILES {
        let good = data(name);
        let shoff_at = if good[4] == 2 { 40 } else { 32 };
        let shoff = u32::from_le_bytes(good[shoff_at..shoff_at + 4].try_into().unwrap()) as usize;
        let mut spots: Vec<usize> = (0..0x190).collect();
        spots.extend(shoff..good.len());
        for at in spots {
            for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut img = good.clone();
                if img[at] == v {
                    continue;
                }
                img[at] = v;
                let parsed = disasm(name, &img);
                let n = match &parsed {
                    Ok(d) => (0..3)
                        .map(|t| d.read(&img, t, 0, img.len() as u32).len())
                        .sum(),
                    Err(_) => 0,
                };
                let _ = apply_identity(name, &img, vec![0; n], Vec::new());
            }
        }
    }
}

#[test]
fn equivalence_cutting_an_abs32_pointer_is_an_error() {
    // x64_old has an abs32 pointer at 0x310 (8 bytes): two equivalences
    // that split the element at 0x314 cut it, which Zucchini's abs32 reader
    // refuses.
    let name = "x64_old";
    let old = data(name);
    let n: usize = refs(name).iter().map(Vec::len).sum();
    let len = old.len() as u32;
    let mut e = identity(exe_of(name), &old, n);
    e.eqs = vec![(0, 0, 0x314), (0x314, 0x314, len - 0x314)];
    let p = patch(1, &old, len, zucchini::crc32(&old), &e);
    match zucchini::apply(&old, &p, 1 << 20) {
        Err(ZucchiniError::BadCorrection {
            type_tag: 1,
            location: 0,
            reason,
            ..
        }) => assert!(
            reason.contains("cuts the 8-byte abs32 pointer at 0x310"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    // Split at the pointer's start instead: the same references, applied.
    e.eqs = vec![(0, 0, 0x310), (0x310, 0x310, len - 0x310)];
    let p = patch(1, &old, len, zucchini::crc32(&old), &e);
    assert_eq!(zucchini::apply(&old, &p, 1 << 20).unwrap(), old);
}

#[test]
fn new_element_that_is_not_an_elf_is_an_error() {
    // A raw delta turns the new element's magic byte 1 ('E') into 'F'.
    for name in OLD_FILES {
        let old = data(name);
        let n: usize = refs(name).iter().map(Vec::len).sum();
        let mut e = identity(exe_of(name), &old, n);
        e.raw = vec![(1, 1)];
        let mut new = old.clone();
        new[1] = b'F';
        let p = patch(2, &old, new.len() as u32, zucchini::crc32(&new), &e);
        match zucchini::apply(&old, &p, 1 << 20) {
            Err(ZucchiniError::BadElement {
                element: 0, reason, ..
            }) => assert!(reason.starts_with("new element: no ELF magic"), "{reason}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}
