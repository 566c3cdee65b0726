//! bsdiff: third-party vectors (zhuyie/bsdiff BSDIFF40, AOSP puffin BSDF2,
//! update_engine BSDIFF40) and hostile patches.

mod vectors;
use romkit::format::patch::bsdiff::{self, BsdiffError};
use vectors::read;

fn check(old: &str, patch: &str, new: &str) {
    let (old, patch, new) = (read(old), read(patch), read(new));
    let got = bsdiff::apply(&old, &patch, new.len() as u64).expect("apply");
    assert!(got == new, "output differs");
    let mut buf = vec![0u8; new.len()];
    bsdiff::apply_into(&old, &patch, &mut buf).expect("apply_into");
    assert!(buf == new);
    let mut w = Vec::new();
    bsdiff::apply_to_writer(&old, &patch, u64::MAX, &mut w).expect("apply_to_writer");
    assert!(w == new);
}

#[test]
fn zhuyie_simple() {
    check(
        "zhuyie-bsdiff/simple/v1",
        "zhuyie-bsdiff/simple/v1_v2.patch",
        "zhuyie-bsdiff/simple/v2",
    );
}

#[test]
fn zhuyie_putty() {
    check(
        "zhuyie-bsdiff/putty/0.75.exe",
        "zhuyie-bsdiff/putty/0.75_0.76.patch",
        "zhuyie-bsdiff/putty/0.76.exe",
    );
    check(
        "zhuyie-bsdiff/putty/0.76.exe",
        "zhuyie-bsdiff/putty/0.76_0.77.patch",
        "zhuyie-bsdiff/putty/0.77.exe",
    );
    check(
        "zhuyie-bsdiff/putty/0.75.exe",
        "zhuyie-bsdiff/putty/0.75_0.77.patch",
        "zhuyie-bsdiff/putty/0.77.exe",
    );
}

#[test]
fn aosp_puffin_inner_bsdf2() {
    let d = "aosp-puffin/";
    for (o, p, n) in [
        (
            "puffs_sample1.bin",
            "patch_1_to_2.inner.bsdf2",
            "puffs_sample2.bin",
        ),
        (
            "puffs_sample2.bin",
            "patch_2_to_1.inner.bsdf2",
            "puffs_sample1.bin",
        ),
        (
            "puffs_sample1.bin",
            "patch_1_to_empty.inner.bsdf2",
            "empty.bin",
        ),
        (
            "puffs_sample1.bin",
            "patch_1_to_nodeflate.inner.bsdf2",
            "raw_11_22_33_44.bin",
        ),
    ] {
        check(&format!("{d}{o}"), &format!("{d}{p}"), &format!("{d}{n}"));
    }
}

#[test]
fn update_engine_inner_bsdiff40() {
    let d = "aosp-update_engine-puffdiff/";
    check(
        &format!("{d}src_puffed.bin"),
        &format!("{d}puffdiff_patch.inner.bsdiff40"),
        &format!("{d}dst_puffed.bin"),
    );
}

// ---- hand-built patches: other compressions and hostile control entries ----

fn int(v: i64) -> [u8; 8] {
    let mut b = v.unsigned_abs().to_le_bytes();
    if v < 0 {
        b[7] |= 0x80;
    }
    b
}

fn ctrl(entries: &[(i64, i64, i64)]) -> Vec<u8> {
    entries
        .iter()
        .flat_map(|&(a, b, c)| [int(a), int(b), int(c)].concat())
        .collect()
}

/// BSDF2 with uncompressed streams.
fn bsdf2_raw(entries: &[(i64, i64, i64)], diff: &[u8], extra: &[u8], new_size: i64) -> Vec<u8> {
    let c = ctrl(entries);
    let mut p = b"BSDF2\0\0\0".to_vec();
    p.extend(int(c.len() as i64));
    p.extend(int(diff.len() as i64));
    p.extend(int(new_size));
    p.extend(c);
    p.extend(diff);
    p.extend(extra);
    p
}

#[test]
fn bsdf2_uncompressed_and_negative_seek() {
    let old = b"abcdefgh";
    // new = "abcd" (diff over old 0..4) + "XY" (extra), seek back to 2, then
    // "cde" (diff over old 2..5, +1 each) -> "def".
    let p = bsdf2_raw(&[(4, 2, -2), (3, 0, 0)], &[0, 0, 0, 0, 1, 1, 1], b"XY", 9);
    assert_eq!(bsdiff::apply(old, &p, 9).unwrap(), b"abcdXYdef");
}

#[test]
fn old_outside_range_counts_as_zero() {
    // Seek to -2: the first two diff bytes have no old byte under them.
    let p = bsdf2_raw(&[(0, 0, -2), (4, 0, 0)], &[5, 6, 1, 1], b"", 4);
    assert_eq!(bsdiff::apply(b"ab", &p, 4).unwrap(), [5, 6, b'b', b'c']);
}

#[test]
fn bsdf2_brotli_streams() {
    // Brotli "stored" (uncompressed meta-block) encoding built by hand: a
    // one-byte header WBITS=16, then an uncompressed meta-block, then ISLAST.
    fn brotli_stored(data: &[u8]) -> Vec<u8> {
        // WBITS: bit 0 = 0 -> window 16. Then meta-block: ISLAST=0, MNIBBLES=4
        // (code 0), MLEN-1 in 16 bits, ISUNCOMPRESSED=1, pad to byte, data,
        // then ISLAST=1, ISLASTEMPTY=1.
        let mut bits: Vec<bool> = Vec::new();
        let push = |bits: &mut Vec<bool>, v: u32, n: u32| {
            for i in 0..n {
                bits.push(v >> i & 1 == 1);
            }
        };
        push(&mut bits, 0, 1); // WBITS = 16
        let mut out = Vec::new();
        if !data.is_empty() {
            push(&mut bits, 0, 1); // ISLAST
            push(&mut bits, 0, 2); // MNIBBLES = 4
            push(&mut bits, data.len() as u32 - 1, 16);
            push(&mut bits, 1, 1); // ISUNCOMPRESSED
            while !bits.len().is_multiple_of(8) {
                bits.push(false);
            }
            for ch in bits.chunks(8) {
                out.push(
                    ch.iter()
                        .enumerate()
                        .fold(0u8, |a, (i, &b)| a | (b as u8) << i),
                );
            }
            out.extend_from_slice(data);
            bits.clear();
        }
        push(&mut bits, 1, 1); // ISLAST
        push(&mut bits, 1, 1); // ISLASTEMPTY
        while !bits.len().is_multiple_of(8) {
            bits.push(false);
        }
        for ch in bits.chunks(8) {
            out.push(
                ch.iter()
                    .enumerate()
                    .fold(0u8, |a, (i, &b)| a | (b as u8) << i),
            );
        }
        out
    }
    let c = brotli_stored(&ctrl(&[(2, 1, 0)]));
    let d = brotli_stored(&[1, 1]);
    let e = brotli_stored(b"Z");
    let mut p = b"BSDF2\x02\x02\x02".to_vec();
    p.extend(int(c.len() as i64));
    p.extend(int(d.len() as i64));
    p.extend(int(3));
    p.extend(c);
    p.extend(d);
    p.extend(e);
    assert_eq!(bsdiff::apply(b"ab", &p, 3).unwrap(), b"bcZ");
}

#[test]
fn hostile_huge_output_refused() {
    let p = bsdf2_raw(&[], &[], &[], i64::MAX);
    assert!(matches!(
        bsdiff::apply(b"", &p, 1 << 30),
        Err(BsdiffError::TooLarge { .. })
    ));
    let mut small = [0u8; 4];
    assert!(matches!(
        bsdiff::apply_into(b"", &p, &mut small),
        Err(BsdiffError::SizeMismatch { .. })
    ));
}

#[test]
fn hostile_control_entries() {
    // diff_size beyond the new size.
    let p = bsdf2_raw(&[(10, 0, 0)], &[0; 10], &[], 4);
    let e = bsdiff::apply(b"abcd", &p, 4).unwrap_err();
    assert!(
        matches!(
            e,
            BsdiffError::BadControl {
                field: "diff_size",
                ..
            }
        ),
        "{e}"
    );
    // negative extra size.
    let p = bsdf2_raw(&[(1, -1, 0)], &[0], &[], 4);
    let e = bsdiff::apply(b"abcd", &p, 4).unwrap_err();
    assert!(
        matches!(
            e,
            BsdiffError::BadControl {
                field: "extra_size",
                ..
            }
        ),
        "{e}"
    );
    // seek out of range.
    let p = bsdf2_raw(&[(1, 0, i64::MAX), (1, 0, 0)], &[0, 0], &[], 2);
    let e = bsdiff::apply(b"abcd", &p, 2).unwrap_err();
    assert!(
        matches!(e, BsdiffError::BadControl { field: "seek", .. }),
        "{e}"
    );
    // control stream ends before the new file is complete.
    let p = bsdf2_raw(&[(1, 0, 0)], &[0], &[], 4);
    let e = bsdiff::apply(b"abcd", &p, 4).unwrap_err();
    assert!(
        matches!(
            e,
            BsdiffError::Truncated {
                stream: bsdiff::Stream::Control,
                ..
            }
        ),
        "{e}"
    );
    // diff stream shorter than the control says.
    let p = bsdf2_raw(&[(4, 0, 0)], &[0], &[], 4);
    let e = bsdiff::apply(b"abcd", &p, 4).unwrap_err();
    assert!(
        matches!(
            e,
            BsdiffError::Truncated {
                stream: bsdiff::Stream::Diff,
                ..
            }
        ),
        "{e}"
    );
    println!("{e}");
}

#[test]
fn hostile_headers() {
    assert!(matches!(
        bsdiff::apply(b"", b"BSDIFF40", 10),
        Err(BsdiffError::TooShort { .. })
    ));
    let mut p = bsdf2_raw(&[], &[], &[], 0);
    p[6] = 7;
    assert!(matches!(
        bsdiff::apply(b"", &p, 10),
        Err(BsdiffError::BadCompression {
            offset: 6,
            value: 7,
            ..
        })
    ));
    let mut p = bsdf2_raw(&[], &[], &[], 0);
    p[0] = b'X';
    assert!(matches!(
        bsdiff::apply(b"", &p, 10),
        Err(BsdiffError::BadMagic { .. })
    ));
    let mut p = bsdf2_raw(&[], &[], &[], 0);
    p[8..16].copy_from_slice(&int(1000));
    assert!(matches!(
        bsdiff::apply(b"", &p, 10),
        Err(BsdiffError::BadHeaderField { offset: 8, .. })
    ));
    p[8..16].copy_from_slice(&int(-1));
    assert!(matches!(
        bsdiff::apply(b"", &p, 10),
        Err(BsdiffError::BadHeaderField { offset: 8, .. })
    ));
}

#[test]
fn hostile_truncated_and_corrupted_vectors() {
    let old = read("zhuyie-bsdiff/simple/v1");
    let patch = read("zhuyie-bsdiff/simple/v1_v2.patch");
    for cut in [0, 10, 31, 32, 40, patch.len() / 2, patch.len() - 1] {
        assert!(
            bsdiff::apply(&old, &patch[..cut], 1 << 20).is_err(),
            "cut at {cut}"
        );
    }
    // Flip each byte in turn: never panic (errors or a different output are fine).
    for i in 0..patch.len() {
        let mut p = patch.clone();
        p[i] ^= 0x55;
        let _ = bsdiff::apply(&old, &p, 1 << 20);
    }
}
