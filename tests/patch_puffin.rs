//! puffin: puff/huff against AOSP puffin's samples, PUF1 vectors from AOSP
//! puffin, update_engine and Chromium (inner Zucchini), hostile patches.

mod vectors;
use romkit::format::patch::puffin::{self, BitExtent, Limits, Side, StreamInfo, StreamLayout};
use vectors::read;

/// The sample layouts documented in aosp-puffin/README.txt.
fn layout(deflates: &[(u64, u64)], src: &[u8]) -> StreamLayout {
    // Compute puff extents the way puffdiff does: puff each deflate.
    let mut puffs = Vec::new();
    let mut pos_bit = 0u64;
    let mut puff_pos = 0u64;
    for &(off, len) in deflates {
        let gap = if off > pos_bit {
            off.div_ceil(8) - pos_bit / 8
        } else {
            0
        };
        let region = &src[(off / 8) as usize..(off + len).div_ceil(8) as usize];
        let mut out = Vec::new();
        puffin::puff_deflate(region, off % 8, &mut out, 1 << 20).unwrap();
        puffs.push(BitExtent {
            offset: (puff_pos + gap) * 8,
            length: out.len() as u64 * 8,
        });
        puff_pos += gap + out.len() as u64;
        pos_bit = off + len;
    }
    let tail = src.len() as u64 - pos_bit / 8;
    let info = StreamInfo {
        deflates: deflates
            .iter()
            .map(|&(offset, length)| BitExtent { offset, length })
            .collect(),
        puffs,
        puff_length: puff_pos + tail,
    };
    StreamLayout::validate(&info, Side::Src, 1 << 20).unwrap()
}

#[test]
fn puff_and_huff_samples() {
    for (d, p, ext) in [
        (
            "aosp-puffin/deflates_sample1.bin",
            "aosp-puffin/puffs_sample1.bin",
            [(16, 50), (80, 10), (96, 18)],
        ),
        (
            "aosp-puffin/deflates_sample2.bin",
            "aosp-puffin/puffs_sample2.bin",
            [(0, 50), (72, 80), (152, 18)],
        ),
    ] {
        let (deflates, puffs) = (read(d), read(p));
        let l = layout(&ext, &deflates);
        assert_eq!(l.puff_len, puffs.len() as u64);
        let got = puffin::puff_file(&deflates, &l).unwrap();
        assert_eq!(got, puffs, "puff {d}");
        let back = puffin::huff_file(&puffs, &l).unwrap();
        assert_eq!(back, deflates, "huff {p}");
    }
}

fn check_puf(old: &str, patch: &str, new: &str) {
    let (old, patch, new) = (read(old), read(patch), read(new));
    let got = puffin::apply(
        &old,
        &patch,
        Limits::for_output(new.len() as u64, old.len() as u64),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(got, new);
}

#[test]
fn aosp_puffin_puf1_bsdf2() {
    let d = "aosp-puffin/";
    for (o, p, n) in [
        (
            "deflates_sample1.bin",
            "patch_1_to_2.puf",
            "deflates_sample2.bin",
        ),
        (
            "deflates_sample2.bin",
            "patch_2_to_1.puf",
            "deflates_sample1.bin",
        ),
        ("deflates_sample1.bin", "patch_1_to_empty.puf", "empty.bin"),
        (
            "deflates_sample1.bin",
            "patch_1_to_nodeflate.puf",
            "raw_11_22_33_44.bin",
        ),
    ] {
        check_puf(&format!("{d}{o}"), &format!("{d}{p}"), &format!("{d}{n}"));
    }
}

#[test]
fn update_engine_puf1_bsdiff40() {
    let d = "aosp-update_engine-puffdiff/";
    check_puf(
        &format!("{d}src_deflates.bin"),
        &format!("{d}puffdiff_patch.puf"),
        &format!("{d}dst_deflates.bin"),
    );
}

#[test]
fn chromium_puf1_zucchini() {
    let d = "chromium-puffin-zucchini/";
    for (o, p, n) in [
        (
            "deflates_sample1.bin",
            "patch_1_to_2.puf",
            "deflates_sample2.bin",
        ),
        (
            "deflates_sample2.bin",
            "patch_2_to_1.puf",
            "deflates_sample1.bin",
        ),
        (
            "deflates_sample1.bin",
            "patch_1_to_nodeflate.puf",
            "raw_11_22_33_44.bin",
        ),
    ] {
        check_puf(&format!("{d}{o}"), &format!("{d}{p}"), &format!("{d}{n}"));
    }
}

/// Real zlib output (flate2) of several kinds round-trips byte-exact.
#[test]
fn flate2_round_trip() {
    use std::io::Write;
    let mut text = Vec::new();
    for i in 0..20000u32 {
        text.extend_from_slice(
            format!("line {i} {}\n", i.wrapping_mul(2654435761) % 1000).as_bytes(),
        );
    }
    let zeros = vec![0u8; 300_000];
    let mut noise = Vec::new();
    let mut x = 12345u32;
    for _ in 0..70_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push(x as u8);
    }
    for data in [&text[..], &zeros[..], &noise[..], b"", b"a"] {
        for level in [0, 1, 6, 9] {
            let mut e =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
            e.write_all(data).unwrap();
            let def = e.finish().unwrap();
            let (p, end) = puffin::puff(&def, 64 << 20).unwrap();
            assert!(end.div_ceil(8) == def.len() as u64);
            let back = puffin::huff(&p).unwrap();
            assert_eq!(back, def, "level {level}, {} bytes", data.len());
        }
    }
}

#[test]
fn hostile_puf1() {
    let src = read("aosp-puffin/deflates_sample1.bin");
    let patch = read("aosp-puffin/patch_1_to_2.puf");
    let lim = Limits::for_output(1 << 20, 1 << 20);
    for cut in 0..patch.len() {
        assert!(
            puffin::apply(&src, &patch[..cut], lim).is_err(),
            "cut {cut}"
        );
    }
    for i in 0..patch.len() {
        for x in [0x01, 0x80, 0xff] {
            let mut p = patch.clone();
            p[i] ^= x;
            let _ = puffin::apply(&src, &p, lim);
        }
    }
    // Tight limits refuse.
    let e = puffin::apply(
        &src,
        &patch,
        Limits {
            new_len: 5,
            puff_len: 1 << 20,
        },
    )
    .unwrap_err();
    assert!(matches!(e, puffin::PuffinError::TooLarge { .. }), "{e}");
    let e = puffin::apply(
        &src,
        &patch,
        Limits {
            new_len: 1 << 20,
            puff_len: 10,
        },
    )
    .unwrap_err();
    assert!(matches!(e, puffin::PuffinError::TooLarge { .. }), "{e}");
    // Source too short for the layout.
    assert!(puffin::apply(&src[..10], &patch, lim).is_err());
}

#[test]
fn hostile_puff_streams() {
    // Random puffs and deflates must not panic.
    let mut x = 0x9e3779b9u32;
    for n in 0..3000 {
        let len = n % 64;
        let mut b = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            b.push(x as u8);
        }
        let _ = puffin::huff(&b);
        let _ = puffin::puff(&b, 1 << 16);
    }
    // A puff limit is honoured.
    let zeros = vec![0u8; 100_000];
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(9));
    std::io::Write::write_all(&mut e, &zeros).unwrap();
    let def = e.finish().unwrap();
    assert!(puffin::puff(&def, 100).is_err());
}

/// Deflates packed at arbitrary bit offsets (adjacent, sharing a byte with a
/// few gap bits, and separated by bytes) puff and huff back to the same file.
#[test]
fn unaligned_layouts_round_trip() {
    use std::io::Write;
    let mk = |data: &[u8], level: u32| {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(data).unwrap();
        let def = e.finish().unwrap();
        let (_, end) = puffin::puff(&def, 1 << 20).unwrap();
        (def, end)
    };
    let (a, a_len) = mk(b"hello hello hello hello, puffin", 6);
    let (b, b_len) = mk(&[7u8; 1000], 9);
    for gap_bits in [0u64, 3, 5, 8, 13, 21] {
        for lead in [0u64, 1, 7, 8, 17] {
            // Bit-level file: `lead` one-bits, A, gap of alternating bits, B, C.
            let mut bits: Vec<bool> = Vec::new();
            let push_def = |bits: &mut Vec<bool>, d: &[u8], n: u64| {
                for i in 0..n {
                    bits.push(d[(i / 8) as usize] >> (i % 8) & 1 == 1);
                }
            };
            bits.extend((0..lead).map(|_| true));
            let a_off = bits.len() as u64;
            push_def(&mut bits, &a, a_len);
            bits.extend((0..gap_bits).map(|i| i % 2 == 0));
            let b_off = bits.len() as u64;
            push_def(&mut bits, &b, b_len);
            // C: a stored block written at this bit position (its padding
            // depends on where it starts).
            let c_off = bits.len() as u64;
            bits.extend([true, false, false]);
            while !bits.len().is_multiple_of(8) {
                bits.push(false);
            }
            for byte in [6u8, 0, 0xf9, 0xff].iter().chain(b"stored") {
                bits.extend((0..8).map(|i| byte >> i & 1 == 1));
            }
            let c_len = bits.len() as u64 - c_off;
            bits.extend([true, false, true]);
            while !bits.len().is_multiple_of(8) {
                bits.push(true);
            }
            bits.extend((0..16).map(|i| i % 3 == 0));
            let file: Vec<u8> = bits
                .chunks(8)
                .map(|ch| {
                    ch.iter()
                        .enumerate()
                        .fold(0u8, |acc, (i, &x)| acc | (x as u8) << i)
                })
                .collect();
            let l = layout(&[(a_off, a_len), (b_off, b_len), (c_off, c_len)], &file);
            let puffed = puffin::puff_file(&file, &l).unwrap();
            assert_eq!(puffed.len() as u64, l.puff_len);
            let back = puffin::huff_file(&puffed, &l).unwrap();
            assert_eq!(back, file, "gap {gap_bits}, lead {lead}");
        }
    }
}

/// A header claiming enormous puffed sizes or deflate extents is refused
/// before any allocation.
#[test]
fn hostile_huge_claims() {
    use prost::Message;
    use puffin::PatchHeader;
    let src = read("aosp-puffin/deflates_sample1.bin");
    let lim = Limits::for_output(1 << 20, 1 << 20);
    let build = |h: &PatchHeader| {
        let hb = h.encode_to_vec();
        let mut p = b"PUF1".to_vec();
        p.extend((hb.len() as u32).to_be_bytes());
        p.extend(hb);
        p.extend(b"BSDF2\x00\x00\x00");
        p
    };
    let mut h = PatchHeader {
        version: 1,
        src: Some(StreamInfo {
            deflates: vec![],
            puffs: vec![],
            puff_length: 17,
        }),
        dst: Some(StreamInfo {
            deflates: vec![],
            puffs: vec![],
            puff_length: u64::MAX / 2,
        }),
        r#type: 0,
    };
    let e = puffin::apply(&src, &build(&h), lim).unwrap_err();
    assert!(matches!(e, puffin::PuffinError::TooLarge { .. }), "{e}");
    // A deflate far beyond the puffed size.
    h.dst = Some(StreamInfo {
        deflates: vec![BitExtent {
            offset: 1 << 60,
            length: 8,
        }],
        puffs: vec![BitExtent {
            offset: 0,
            length: 8,
        }],
        puff_length: 100,
    });
    let e = puffin::apply(&src, &build(&h), lim).unwrap_err();
    assert!(matches!(e, puffin::PuffinError::BadLayout { .. }), "{e}");
    // Overflowing extent.
    h.dst = Some(StreamInfo {
        deflates: vec![BitExtent {
            offset: u64::MAX - 3,
            length: 8,
        }],
        puffs: vec![BitExtent {
            offset: 0,
            length: 8,
        }],
        puff_length: 100,
    });
    assert!(puffin::apply(&src, &build(&h), lim).is_err());
    // Unknown patch type.
    h.r#type = 7;
    assert!(matches!(
        puffin::apply(&src, &build(&h), lim),
        Err(puffin::PuffinError::BadPatchType(7))
    ));
}
