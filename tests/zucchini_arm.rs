//! Zucchini's ARM rel32 support (`src/format/patch/zucchini/arm.rs`)
//! against Chromium's own test vectors (each test names the upstream file
//! and test it transcribes), against GNU binutils (assembler, linker and
//! disassembler for ARM, Thumb2 and AArch64; skipped with a printed reason
//! when missing, unless ROMKIT_ORACLES=require), and against hostile input.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use romkit::format::patch::zucchini::arm::{self, ArmAddr, ArmArch, ExecSection, Rel32};

// ---------------------------------------------------------------------------
// components/zucchini/arm_utils_unittest.cc
// ---------------------------------------------------------------------------

// "Clean slate" codes (displacement 0, condition 0), from the upstream file.
const B_A1: u32 = 0x0A00_0000;
const BL_A1: u32 = 0x0B00_0000;
const BLX_A2: u32 = 0xFA00_0000;
const B_T1: u32 = 0xD000;
const B_T2: u32 = 0xE000;
const B_T3: u32 = 0xF000_8000;
const B_T4: u32 = 0xF000_9000 | 0x0000_2800;
const BL_T1: u32 = 0xF000_D000 | 0x0000_2800;
const BLX_T2: u32 = 0xF000_C000 | 0x0000_2800;
const TBZ_W: u32 = 0x3600_0000;
const TBZ_Z: u32 = 0xB600_0000;
const TBNZ_W: u32 = 0x3700_0000;
const TBNZ_Z: u32 = 0xB700_0000;
const B_COND64: u32 = 0x5400_0000;
const CBZ_W: u32 = 0x3400_0000;
const CBZ_Z: u32 = 0xB400_0000;
const CBNZ_W: u32 = 0x3500_0000;
const CBNZ_Z: u32 = 0xB500_0000;
const B64: u32 = 0x1400_0000;
const BL64: u32 = 0x9400_0000;

/// The upstream `SplitBits` helper: named bit fields of `value` under
/// `pattern` (`0`/`1` literals, `.` don't care, an uppercase letter or
/// `(Name)` a single bit that must be uniform, a lowercase letter a field
/// gathered high to low). `None` if a literal or a uniform bit mismatches.
fn split_bits(pattern: &str, value: u32) -> Option<BTreeMap<String, u32>> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().filter(|&c| c != ' ');
    while let Some(c) = chars.next() {
        if c == '(' {
            tokens.push(chars.by_ref().take_while(|&c| c != ')').collect::<String>());
        } else {
            tokens.push(c.to_string());
        }
    }
    assert!(
        tokens.len() == 32 || (tokens.len() == 16 && value <= 0xFFFF),
        "{pattern}"
    );
    let mut out = BTreeMap::new();
    for (i, tok) in tokens.iter().enumerate() {
        let bit = (value >> (tokens.len() - 1 - i)) & 1;
        let first = tok.chars().next().unwrap();
        if tok == "0" || tok == "1" {
            if tok != &bit.to_string() {
                return None;
            }
        } else if first.is_ascii_uppercase() {
            if *out.entry(tok.clone()).or_insert(bit) != bit {
                return None;
            }
        } else if first.is_ascii_lowercase() {
            let v = out.entry(tok.clone()).or_insert(0);
            *v = (*v << 1) | bit;
        }
    }
    Some(out)
}

/// Upstream `ArmTranslatorEncodeDecodeTest::Run`.
fn encode_decode(
    addr: ArmAddr,
    disp_pattern: &str,
    toks: &[&str],
    instrs: &[(&str, u32)],
    good: &[i32],
    bad: &[i32],
) {
    for &(code_pattern, clean) in instrs {
        assert!(split_bits(code_pattern, clean).is_some(), "{clean:#x}");
        for &disp in good {
            let code = arm::encode(addr, disp, clean)
                .unwrap_or_else(|| panic!("{addr:?} {clean:#x}: encode {disp:#x}"));
            let dc = split_bits(disp_pattern, disp as u32).expect("disp pattern");
            let cc = split_bits(code_pattern, code).expect("code pattern");
            for t in toks {
                assert_eq!(dc.get(*t), cc.get(*t), "{addr:?} {disp:#x} field {t}");
                assert!(dc.contains_key(*t), "{t}");
            }
            let (out, _) = arm::decode(addr, code).expect("decode");
            assert_eq!(out, disp, "{addr:?} {code:#x}");
            assert_eq!(arm::encode(addr, disp, code), Some(code));
            assert_eq!(arm::encode(addr, 0, code), Some(clean));
        }
        for &disp in bad {
            assert_eq!(
                arm::encode(addr, disp, clean),
                None,
                "{addr:?} {clean:#x} {disp:#x}"
            );
        }
    }
}

/// arm_utils_unittest.cc, `AArch32Rel32Translator.Fetch` and `.Store`.
#[test]
fn upstream_aarch32_fetch_store() {
    let bytes = [0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE];
    assert_eq!(arm::fetch_code(ArmAddr::A24, &bytes, 0), Some(0x7654_3210));
    assert_eq!(arm::fetch_code(ArmAddr::A24, &bytes, 4), Some(0xFEDC_BA98));
    assert_eq!(arm::fetch_code(ArmAddr::T8, &bytes, 0), Some(0x3210));
    assert_eq!(arm::fetch_code(ArmAddr::T11, &bytes, 6), Some(0xFEDC));
    assert_eq!(arm::fetch_code(ArmAddr::T24, &bytes, 0), Some(0x3210_7654));
    assert_eq!(arm::fetch_code(ArmAddr::T20, &bytes, 4), Some(0xBA98_FEDC));

    let expected = [
        0xFF, 0xFF, 0xFF, 0xFF, 0x10, 0x32, 0x54, 0x76, 0xFF, 0xFF, 0x42, 0x86, 0xFF, 0xFF, 0xDC,
        0xFE, 0x98, 0xBA, 0xFF, 0xFF, 0xFF, 0xFF,
    ];
    let mut buf = vec![0xFF; 22];
    assert!(arm::store_code(ArmAddr::A24, &mut buf, 4, 0x7654_3210));
    assert!(arm::store_code(ArmAddr::T8, &mut buf, 10, 0x8642));
    assert!(arm::store_code(ArmAddr::T24, &mut buf, 14, 0xFEDC_BA98));
    assert_eq!(buf, expected);
}

/// arm_utils_unittest.cc, `AArch32Rel32Translator.EncodeDecode`.
#[test]
fn upstream_aarch32_encode_decode() {
    let a24_good = [0x01FF_FFFC, -0x0200_0000, 0, 4, -4, 0x40, 0x44];
    let a24_bad = [2, -2, 0x41, 0x42, 0x43, 0x0200_0000, -0x0200_0004];
    let t8_good = [0x00FE, -0x0100, 0, 2, -2, 4, 0x40, 0x42];
    let t8_bad = [1, -1, 0x41, 0x43, 0x0100, -0x0102];
    let t20_good = [0x000F_FFFE, -0x0010_0000, 0, 2, -2, 4, 0x40, 0x42];
    let t20_bad = [1, -1, 0x41, 0x43, 0x0010_0000, -0x0010_0002];
    for cond in 0..=0xEu32 {
        encode_decode(
            ArmAddr::A24,
            "SSSSSSSi iiiiiiii iiiiiiii iiiiii00",
            &["S", "i"],
            &[
                ("cccc1010 Siiiiiii iiiiiiii iiiiiiii", B_A1 | cond << 28),
                ("cccc1011 Siiiiiii iiiiiiii iiiiiiii", BL_A1 | cond << 28),
            ],
            &a24_good,
            &a24_bad,
        );
        encode_decode(
            ArmAddr::T8,
            "SSSSSSSS SSSSSSSS SSSSSSSS iiiiiii0",
            &["S", "i"],
            &[("1101cccc Siiiiiii", B_T1 | cond << 8)],
            &t8_good,
            &t8_bad,
        );
        encode_decode(
            ArmAddr::T20,
            "SSSSSSSS SSSS(J2)(J1)ii iiiijjjj jjjjjjj0",
            &["S", "J2", "J1", "i", "j"],
            &[(
                "11110Scc cciiiiii 10(J1)0(J2)jjj jjjjjjjj",
                B_T3 | cond << 22,
            )],
            &t20_good,
            &t20_bad,
        );
    }
    encode_decode(
        ArmAddr::A24,
        "SSSSSSSi iiiiiiii iiiiiiii iiiiiiH0",
        &["S", "i", "H"],
        &[("1111101H Siiiiiii iiiiiiii iiiiiiii", BLX_A2)],
        &[
            0x01FF_FFFC,
            0x01FF_FFFE,
            -0x0200_0000,
            0,
            2,
            -2,
            4,
            0x40,
            0x42,
        ],
        &[1, -1, 0x41, 0x43, 0x0200_0000, -0x0200_0002],
    );
    // Condition 0xF is not a T8 (nor a T20) branch.
    let all = [0x00FE, -0x0100, 0, 2, 4, 0x40, 0x41, 0x0100, -0x0102];
    encode_decode(
        ArmAddr::T8,
        "",
        &[],
        &[("11011111 ........", B_T1 | 0xF << 8)],
        &[],
        &all,
    );
    let all = [
        0x000F_FFFE,
        -0x0010_0000,
        0,
        2,
        4,
        0x40,
        0x42,
        1,
        0x41,
        0x43,
        0x0010_0000,
        -0x0010_0002,
    ];
    let invalid_t3 = ("11110.11 11...... 10.0.... ........", B_T3 | 0xF << 22);
    encode_decode(ArmAddr::T20, "", &[], &[invalid_t3], &[], &all);
    encode_decode(
        ArmAddr::T11,
        "SSSSSSSS SSSSSSSS SSSSSiii iiiiiii0",
        &["S", "i"],
        &[("11100Sii iiiiiiii", B_T2)],
        &[0x07FE, -0x0800, 0, 2, -2, 4, 0x40, 0x42],
        &[1, -1, 0x41, 0x43, 0x0800, -0x0802],
    );
    encode_decode(
        ArmAddr::T24,
        "SSSSSSSS (I1)(I2)iiiiii iiiijjjj jjjjjjj0",
        &["S", "i", "j"],
        &[
            ("11110Sii iiiiiiii 10(J1)1(J2)jjj jjjjjjjj", B_T4),
            ("11110Sii iiiiiiii 11(J1)1(J2)jjj jjjjjjjj", BL_T1),
        ],
        &[0x00FF_FFFE, -0x0100_0000, 0, 2, -2, 4, -4, 0x40, 0x42],
        &[1, -1, 0x41, 0x43, 0x0100_0000, -0x0100_0002],
    );
    encode_decode(
        ArmAddr::T24,
        "SSSSSSSS (I1)(I2)iiiiii iiiijjjj jjjjjj00",
        &["S", "i", "j"],
        &[("11110Sii iiiiiiii 11(J1)0(J2)jjj jjjjjjj0", BLX_T2)],
        &[0x00FF_FFFC, -0x0100_0000, 0, 4, -4, 0x40],
        &[
            1,
            -1,
            2,
            -2,
            0x41,
            0x42,
            0x43,
            0x00FF_FFFE,
            0x0100_0000,
            -0x0100_0002,
        ],
    );
}

/// Upstream `ArmTranslatorWriteReadTest::Accept`.
fn accept(addr: ArmAddr, clean: u32, instr_rvas: &[u32], targets: &[u32]) {
    for &instr in instr_rvas {
        for &target in targets {
            let code = arm::write_code(addr, instr, target, clean)
                .unwrap_or_else(|e| panic!("{addr:?} {clean:#x} {instr:#x}->{target:#x}: {e}"));
            assert_eq!(arm::read_code(addr, instr, code), Some(target));
            assert_eq!(arm::write_code(addr, instr, target, code), Ok(code));
        }
    }
}

/// Upstream `ArmTranslatorWriteReadTest::Reject`.
fn reject(addr: ArmAddr, clean: u32, instr_rvas: &[u32], targets: &[u32]) {
    for &instr in instr_rvas {
        for &target in targets {
            let r = arm::write_code(addr, instr, target, clean);
            assert!(
                r.is_err(),
                "{addr:?} {clean:#x} {instr:#x}->{target:#x}: {r:?}"
            );
        }
    }
}

/// The RVAs 0x1FFC..=0x2010 split by alignment, as upstream `WriteRead`.
fn rva_sets() -> [Vec<u32>; 4] {
    let r = 0x1FFC..=0x2010u32;
    let [a4, m4, a2, m2] = [
        r.clone().filter(|v| v % 4 == 0).collect::<Vec<_>>(),
        r.clone().filter(|v| v % 4 != 0).collect(),
        r.clone().filter(|v| v % 2 == 0).collect(),
        r.filter(|v| v % 2 != 0).collect(),
    ];
    assert_eq!([a4.len(), m4.len(), a2.len(), m2.len()], [6, 15, 11, 10]);
    [a4, m4, a2, m2]
}

/// Accept aligned pairs, reject every pair with a misaligned side.
fn alignment_rules(addr: ArmAddr, clean: u32, instr: (&[u32], &[u32]), target: (&[u32], &[u32])) {
    accept(addr, clean, instr.0, target.0);
    reject(addr, clean, instr.0, target.1);
    reject(addr, clean, instr.1, target.0);
    reject(addr, clean, instr.1, target.1);
}

/// arm_utils_unittest.cc, `AArch32Rel32Translator.WriteRead`.
#[test]
fn upstream_aarch32_write_read() {
    let [a4, m4, a2, m2] = rva_sets();
    let arm = |x: u32| x + 8;
    let th = |x: u32| x + 4;
    for clean in [B_A1, BL_A1] {
        alignment_rules(ArmAddr::A24, clean, (&a4, &m4), (&a4, &m4));
        accept(
            ArmAddr::A24,
            clean,
            &[0x1500_0000],
            &[arm(0x1300_0000), arm(0x16FF_FFFC)],
        );
        let out = [arm(0x1300_0000 - 4), arm(0x16FF_FFFC + 4)];
        reject(ArmAddr::A24, clean, &[0x1500_0000], &out);
    }
    alignment_rules(ArmAddr::A24, BLX_A2, (&a4, &m4), (&a2, &m2));
    accept(
        ArmAddr::A24,
        BLX_A2,
        &[0x1500_0000],
        &[arm(0x1300_0000), arm(0x16FF_FFFE)],
    );
    let out = [
        arm(0x1300_0000 - 4),
        arm(0x1300_0000 - 2),
        arm(0x16FF_FFFE + 2),
        arm(0x16FF_FFFE + 4),
    ];
    reject(ArmAddr::A24, BLX_A2, &[0x1500_0000], &out);

    alignment_rules(ArmAddr::T8, B_T1, (&a2, &m2), (&a2, &m2));
    accept(
        ArmAddr::T8,
        B_T1,
        &[0x1000_0500],
        &[th(0x1000_0400), th(0x1000_05FE)],
    );
    reject(
        ArmAddr::T8,
        B_T1,
        &[0x1000_0500],
        &[th(0x1000_03FE), th(0x1000_0600)],
    );

    alignment_rules(ArmAddr::T11, B_T2, (&a2, &m2), (&a2, &m2));
    accept(
        ArmAddr::T11,
        B_T2,
        &[0x1000_3000],
        &[th(0x1000_2800), th(0x1000_37FE)],
    );
    reject(
        ArmAddr::T11,
        B_T2,
        &[0x1000_3000],
        &[th(0x1000_27FE), th(0x1000_3800)],
    );

    alignment_rules(ArmAddr::T20, B_T3, (&a2, &m2), (&a2, &m2));
    accept(
        ArmAddr::T20,
        B_T3,
        &[0x1030_0000],
        &[th(0x1020_0000), th(0x103F_FFFE)],
    );
    reject(
        ArmAddr::T20,
        B_T3,
        &[0x1030_0000],
        &[th(0x101F_FFFE), th(0x1040_0000)],
    );

    for clean in [B_T4, BL_T1] {
        alignment_rules(ArmAddr::T24, clean, (&a2, &m2), (&a2, &m2));
        accept(
            ArmAddr::T24,
            clean,
            &[0x1600_0000],
            &[th(0x1500_0000), th(0x16FF_FFFE)],
        );
        reject(
            ArmAddr::T24,
            clean,
            &[0x1600_0000],
            &[th(0x14FF_FFFE), th(0x1700_0000)],
        );
    }
    alignment_rules(ArmAddr::T24, BLX_T2, (&a2, &m2), (&a4, &m4));
    accept(
        ArmAddr::T24,
        BLX_T2,
        &[0x1600_0000],
        &[th(0x1500_0000), th(0x16FF_FFFC)],
    );
    let out = [
        th(0x1500_0000 - 4),
        th(0x1500_0000 - 2),
        th(0x16FF_FFFC + 2),
        th(0x16FF_FFFC + 4),
    ];
    reject(ArmAddr::T24, BLX_T2, &[0x1600_0000], &out);
}

/// One upstream "Main"/"BLXComplication" case: bytes at `instr_rva` decode
/// to `code`, `disp` and `target`, and encode back from the clean slate.
fn main_case(
    addr: ArmAddr,
    instr_rva: u32,
    bytes: &[u8],
    code: u32,
    disp: i32,
    clean: u32,
    target: u32,
) {
    assert_eq!(arm::fetch_code(addr, bytes, 0), Some(code));
    assert_eq!(arm::decode(addr, code).map(|d| d.0), Some(disp));
    assert_eq!(arm::encode(addr, disp, clean), Some(code));
    assert_eq!(arm::read_target(addr, bytes, 0, instr_rva), Some(target));
    let mut buf = bytes.to_vec();
    arm::store_code(addr, &mut buf, 0, clean);
    arm::write_target(addr, &mut buf, 0, instr_rva, target).unwrap();
    assert_eq!(buf, bytes);
}

/// arm_utils_unittest.cc, `AArch32Rel32Translator.Main` and
/// `.BLXComplication`, and `AArch64Rel32Translator.Main`.
#[test]
fn upstream_main_and_blx_complication() {
    let bal = B_A1 | 0xE << 28;
    main_case(
        ArmAddr::A24,
        0x0010_3050,
        &[0x00, 0x01, 0x02, 0xEA],
        0xEA02_0100,
        0x0008_0400,
        bal,
        0x0018_3458,
    );
    main_case(
        ArmAddr::T11,
        0x0010_30A2,
        &[0xF3, 0xE7],
        0xE7F3,
        -0x1A,
        B_T2,
        0x0010_308C,
    );
    main_case(
        ArmAddr::T24,
        0x0010_30A2,
        &[0x00, 0xF0, 0x01, 0xFA],
        0xF000_FA01,
        0x402,
        BL_T1,
        0x0010_34A8,
    );

    let b_t4 = [0x01, 0xF0, 0x06, 0xB0];
    main_case(
        ArmAddr::T24,
        0x0010_30A0,
        &b_t4,
        0xF001_B006,
        0x0040_100C,
        B_T4,
        0x0050_40B0,
    );
    main_case(
        ArmAddr::T24,
        0x0010_30A2,
        &b_t4,
        0xF001_B006,
        0x0040_100C,
        B_T4,
        0x0050_40B2,
    );
    let blx_t2 = [0x01, 0xF0, 0x06, 0xE0];
    main_case(
        ArmAddr::T24,
        0x0010_30A0,
        &blx_t2,
        0xF001_E006,
        0x0040_100C,
        BLX_T2,
        0x0050_40B0,
    );
    main_case(
        ArmAddr::T24,
        0x0010_30A2,
        &blx_t2,
        0xF001_E006,
        0x0040_100C,
        BLX_T2,
        0x0050_40B0,
    );

    main_case(
        ArmAddr::Immd26,
        0x0010_3050,
        &[0x02, 0x01, 0x02, 0x14],
        0x1402_0102,
        0x0008_0408,
        B64,
        0x0018_3458,
    );
}

/// arm_utils_unittest.cc, `AArch64Rel32Translator.FetchStore`.
#[test]
fn upstream_aarch64_fetch_store() {
    let mut bytes = vec![0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE];
    assert_eq!(
        arm::fetch_code(ArmAddr::Immd26, &bytes, 0),
        Some(0x7654_3210)
    );
    assert_eq!(
        arm::fetch_code(ArmAddr::Immd14, &bytes, 4),
        Some(0xFEDC_BA98)
    );
    assert!(arm::store_code(ArmAddr::Immd19, &mut bytes, 0, 0x1122_33AB));
    assert!(arm::store_code(ArmAddr::Immd19, &mut bytes, 4, 0x00FF_5A69));
    assert_eq!(bytes, [0xAB, 0x33, 0x22, 0x11, 0x69, 0x5A, 0xFF, 0x00]);
}

/// arm_utils_unittest.cc, `AArch64Rel32Translator.EncodeDecode`.
#[test]
fn upstream_aarch64_encode_decode() {
    let good14 = [0x0000_7FFC, -0x0000_8000, 0, 4, -4, 0x40, 0x44];
    let bad14 = [2, -2, 0x41, 0x42, 0x43, 0x0000_8000, -0x0000_8004];
    for b40 in [0u32, 1, 7, 31] {
        for rt in [0u32, 1, 15, 30] {
            let m = b40 << 19 | rt;
            let instrs = [
                ("00110110 bbbbbSii iiiiiiii iiittttt", TBZ_W | m),
                ("10110110 bbbbbSii iiiiiiii iiittttt", TBZ_Z | m),
                ("00110111 bbbbbSii iiiiiiii iiittttt", TBNZ_W | m),
                ("10110111 bbbbbSii iiiiiiii iiittttt", TBNZ_Z | m),
            ];
            let pat = "SSSSSSSS SSSSSSSS Siiiiiii iiiiii00";
            encode_decode(ArmAddr::Immd14, pat, &["S", "i"], &instrs, &good14, &bad14);
        }
    }
    let good19 = [0x000F_FFFC, -0x0010_0000, 0, 4, -4, 0x40, 0x44];
    let bad19 = [2, -2, 0x41, 0x42, 0x43, 0x0010_0000, -0x0010_0004];
    let pat19 = "SSSSSSSS SSSSiiii iiiiiiii iiiiii00";
    for cond in 0..=0xEu32 {
        let instrs = [("01010100 Siiiiiii iiiiiiii iii0cccc", B_COND64 | cond)];
        encode_decode(
            ArmAddr::Immd19,
            pat19,
            &["S", "i"],
            &instrs,
            &good19,
            &bad19,
        );
    }
    for rt in [0u32, 1, 15, 30] {
        let instrs = [
            ("00110100 Siiiiiii iiiiiiii iiittttt", CBZ_W | rt),
            ("10110100 Siiiiiii iiiiiiii iiittttt", CBZ_Z | rt),
            ("00110101 Siiiiiii iiiiiiii iiittttt", CBNZ_W | rt),
            ("10110101 Siiiiiii iiiiiiii iiittttt", CBNZ_Z | rt),
        ];
        encode_decode(
            ArmAddr::Immd19,
            pat19,
            &["S", "i"],
            &instrs,
            &good19,
            &bad19,
        );
    }
    encode_decode(
        ArmAddr::Immd26,
        "SSSSSiii iiiiiiii iiiiiiii iiiiii00",
        &["S", "i"],
        &[
            ("000101Si iiiiiiii iiiiiiii iiiiiiii", B64),
            ("100101Si iiiiiiii iiiiiiii iiiiiiii", BL64),
        ],
        &[0x07FF_FFFC, -0x0800_0000, 0, 4, -4, 0x40, 0x44],
        &[2, -2, 0x41, 0x42, 0x43, 0x0800_0000, -0x0800_0004],
    );
}

/// arm_utils_unittest.cc, `AArch64Rel32Translator.WriteRead`.
#[test]
fn upstream_aarch64_write_read() {
    let [a4, m4, _, _] = rva_sets();
    for clean in [TBZ_W, TBZ_Z, TBNZ_W, TBNZ_Z] {
        alignment_rules(ArmAddr::Immd14, clean, (&a4, &m4), (&a4, &m4));
        accept(
            ArmAddr::Immd14,
            clean,
            &[0x1004_0000],
            &[0x1003_8000, 0x1004_7FFC],
        );
        reject(
            ArmAddr::Immd14,
            clean,
            &[0x1500_0000],
            &[0x1003_7FFC, 0x1004_8000],
        );
    }
    for clean in [B_COND64, CBZ_W, CBZ_Z, CBNZ_W, CBNZ_Z] {
        alignment_rules(ArmAddr::Immd19, clean, (&a4, &m4), (&a4, &m4));
        accept(
            ArmAddr::Immd19,
            clean,
            &[0x1030_0000],
            &[0x1020_0000, 0x103F_FFFC],
        );
        reject(
            ArmAddr::Immd19,
            clean,
            &[0x1030_0000],
            &[0x101F_FFFC, 0x1040_0000],
        );
    }
    for clean in [B64, BL64] {
        alignment_rules(ArmAddr::Immd26, clean, (&a4, &m4), (&a4, &m4));
        accept(
            ArmAddr::Immd26,
            clean,
            &[0x3000_0000],
            &[0x2800_0000, 0x37FF_FFFC],
        );
        reject(
            ArmAddr::Immd26,
            clean,
            &[0x3000_0000],
            &[0x27FF_FFFC, 0x3800_0000],
        );
    }
}

// ---------------------------------------------------------------------------
// components/zucchini/rel32_finder_unittest.cc
// ---------------------------------------------------------------------------

/// Scans all of `image` (trivial translator: RVA = offset) accepting every
/// target, as upstream `ArmExtractRel32` does; (location, target, type).
fn scan_all(image: &[u8], arch: ArmArch, thumb2: bool, abs32: &[u32]) -> Vec<(u32, u32, ArmAddr)> {
    let section = ExecSection {
        offset: 0,
        size: image.len() as u32,
        rva: 0,
    };
    let any = |rva: u32| Some(rva);
    let found = match arch {
        ArmArch::AArch32 => arm::find_rel32_aarch32(image, section, thumb2, abs32, 4, &any),
        ArmArch::AArch64 => arm::find_rel32_aarch64(image, section, abs32, 8, &any),
    };
    found
        .iter()
        .map(|r| (r.location, r.target_rva, r.addr))
        .collect()
}

/// `kDataAarch32ArmMode`: seven `B` (encoding A1) words.
const ARM_MODE: [u8; 28] = [
    0x00, 0x01, 0x02, 0xEA, 0x00, 0x01, 0x02, 0xEA, 0x00, 0x01, 0x02, 0xEA, 0x00, 0x01, 0x02, 0xEA,
    0x00, 0x01, 0x02, 0xEA, 0x00, 0x01, 0x02, 0xEA, 0x00, 0x01, 0x02, 0xEA,
];

/// rel32_finder_unittest.cc, `Rel32FinderAArch32Test.IntegratedArmModeWithoutAbs32`
/// and `.IntegratedArmModeWithAbs32` (abs32 at 0x6 and 0x13).
#[test]
fn upstream_finder_aarch32_arm_mode() {
    use ArmAddr::A24;
    let all: Vec<_> = (0..7).map(|i| (i * 4, 0x80408 + i * 4, A24)).collect();
    assert_eq!(scan_all(&ARM_MODE, ArmArch::AArch32, false, &[]), all);
    let want = vec![
        (0x00, 0x80408, A24),
        (0x0C, 0x80414, A24),
        (0x18, 0x80420, A24),
    ];
    assert_eq!(
        scan_all(&ARM_MODE, ArmArch::AArch32, false, &[0x6, 0x13]),
        want
    );
}

/// `kDataAarch32Thumb2Mode`.
const THUMB2_MODE: [u8; 60] = [
    0x00, 0xDE, 0x00, 0xDE, 0x00, 0xDE, 0x00, 0xDE, // 00-06: B.AL (T1)
    0x00, 0xE0, 0x00, 0xE0, 0x00, 0xE0, 0x00, 0xE0, // 08-0E: B (T2)
    0x00, 0xF0, 0x00, 0x80, 0x00, 0xF0, 0x00, 0x80, // 10, 14: B (T3)
    0x00, 0xF0, 0x00, 0x80, 0x00, 0xF0, 0x00, 0x80, // 18, 1C: B (T3)
    0x00, 0xF0, 0x00, 0xB8, 0x00, 0xF0, 0x00, 0xB8, // 20, 24: B (T4)
    0xFE, 0xDE, // 28: B.AL (T1) to itself
    0x00, 0xF0, 0x00, 0xF8, // 2A: BL (T1)
    0x00, 0xF0, 0x00, 0xE8, // 2E: BLX (T2)
    0x00, 0x0B, // 32: not a branch
    0x00, 0xF0, 0x00, 0xE8, // 34: BLX (T2)
    0x00, 0xF0, 0x00, 0xB8, // 38: B (T4)
];

/// rel32_finder_unittest.cc, `Rel32FinderAArch32Test.IntegratedThumb2ModeWithoutAbs32`
/// and `.IntegratedThumb2ModeWithAbs32` (abs32 at 0x05, 0x0E, 0x18, 0x27;
/// the one at 0x27 shifts the scan to 0x2C, losing 0x2E).
#[test]
fn upstream_finder_aarch32_thumb2_mode() {
    use ArmAddr::{T8, T11, T20, T24};
    let all = vec![
        (0x00, 0x04, T8),
        (0x02, 0x06, T8),
        (0x04, 0x08, T8),
        (0x06, 0x0A, T8),
        (0x08, 0x0C, T11),
        (0x0A, 0x0E, T11),
        (0x0C, 0x10, T11),
        (0x0E, 0x12, T11),
        (0x10, 0x14, T20),
        (0x14, 0x18, T20),
        (0x18, 0x1C, T20),
        (0x1C, 0x20, T20),
        (0x20, 0x24, T24),
        (0x24, 0x28, T24),
        (0x28, 0x28, T8),
        (0x2A, 0x2E, T24),
        (0x2E, 0x30, T24),
        (0x34, 0x38, T24),
        (0x38, 0x3C, T24),
    ];
    assert_eq!(scan_all(&THUMB2_MODE, ArmArch::AArch32, true, &[]), all);
    let want = vec![
        (0x00, 0x04, T8),
        (0x02, 0x06, T8),
        (0x0A, 0x0E, T11),
        (0x0C, 0x10, T11),
        (0x14, 0x18, T20),
        (0x1C, 0x20, T20),
        (0x20, 0x24, T24),
        (0x34, 0x38, T24),
        (0x38, 0x3C, T24),
    ];
    let abs32 = [0x05, 0x0E, 0x18, 0x27];
    assert_eq!(scan_all(&THUMB2_MODE, ArmArch::AArch32, true, &abs32), want);
}

/// `kDataAarch64`.
const AARCH64: [u8; 40] = [
    0x0E, 0x00, 0x00, 0x36, 0x0E, 0x00, 0x00, 0x36, 0x0E, 0x00, 0x00, 0x36, // TBZ
    0x0E, 0x00, 0x00, 0x54, 0x0E, 0x00, 0x00, 0x54, 0x0E, 0x00, 0x00, 0x54, // B.AL
    0x00, 0x00, 0x00, 0x94, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x94, // BL, B, BL
    0x00, 0x00, 0x00, 0x14, // B
];

/// rel32_finder_unittest.cc, `Rel32FinderAArch64Test.IntegratedWithoutAbs32`
/// and `.IntegratedWithAbs32` (abs32 of width 8 at 0x07 and 0x14).
#[test]
fn upstream_finder_aarch64() {
    use ArmAddr::{Immd14, Immd19, Immd26};
    let types = [
        Immd14, Immd14, Immd14, Immd19, Immd19, Immd19, Immd26, Immd26, Immd26, Immd26,
    ];
    let all: Vec<_> = types
        .iter()
        .enumerate()
        .map(|(i, &t)| (i as u32 * 4, i as u32 * 4, t))
        .collect();
    assert_eq!(scan_all(&AARCH64, ArmArch::AArch64, false, &[]), all);
    let want = vec![
        (0x00, 0x00, Immd14),
        (0x10, 0x10, Immd19),
        (0x1C, 0x1C, Immd26),
        (0x20, 0x20, Immd26),
        (0x24, 0x24, Immd26),
    ];
    assert_eq!(
        scan_all(&AARCH64, ArmArch::AArch64, false, &[0x07, 0x14]),
        want
    );
}

// ---------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------

/// Truncated instructions, odd or huge locations, sections past the image
/// and out-of-range targets give `None`, errors or nothing, never a panic.
#[test]
fn hostile_inputs_are_refused() {
    let all = ArmAddr::AARCH32.iter().chain(&ArmAddr::AARCH64);
    for &addr in all {
        for loc in [0, 1, 2, 3, u32::MAX - 1, u32::MAX] {
            assert_eq!(
                arm::read_target(addr, &[0xEA, 0xF0, 0x00], loc, 0),
                None,
                "{addr:?} {loc}"
            );
            let mut img = [0u8; 3];
            let e = arm::write_target(addr, &mut img, loc, 0, 0).unwrap_err();
            assert!(e.to_string().contains(&format!("{loc:#x}")), "{e}");
            assert_eq!(img, [0; 3]);
        }
    }
    // A branch too far: the error names type, location and target; the
    // bytes stay as they were.
    let mut img = ARM_MODE.to_vec();
    let e = arm::write_target(ArmAddr::A24, &mut img, 8, 8, 0x0400_0000).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("0x8") && msg.contains("0x4000000") && msg.contains("A24"),
        "{msg}"
    );
    assert!(msg.contains("reference type 2"), "{msg}");
    assert_eq!(img, ARM_MODE);
    // Misaligned target of a B, misaligned instruction RVA.
    assert!(arm::write_target(ArmAddr::A24, &mut img, 0, 0, 0x102).is_err());
    assert!(arm::write_target(ArmAddr::A24, &mut img, 0, 2, 0x100).is_err());
    assert_eq!(img, ARM_MODE);
    // Not a branch at all.
    let mut zero = [0u8; 4];
    let e = arm::write_target(ArmAddr::Immd26, &mut zero, 0, 0, 8).unwrap_err();
    assert!(e.to_string().contains("not an instruction"), "{e}");

    // Sections reaching past the image, at odd offsets, or empty.
    let any = |rva: u32| Some(rva);
    for (offset, size) in [
        (0, 1000),
        (1, 27),
        (3, u32::MAX),
        (27, 1),
        (28, 0),
        (u32::MAX, 5),
    ] {
        let s = ExecSection {
            offset,
            size,
            rva: 0x1000,
        };
        for thumb2 in [false, true] {
            let found = arm::find_rel32_aarch32(&ARM_MODE, s, thumb2, &[], 4, &any);
            assert!(
                found
                    .iter()
                    .all(|r| r.location >= offset && r.location as usize + 2 <= ARM_MODE.len())
            );
        }
        let found = arm::find_rel32_aarch64(&AARCH64[..39], s, &[u32::MAX - 2], 8, &any);
        assert!(found.iter().all(|r| r.location as usize + 4 <= 39));
    }
    // A 32-bit Thumb2 instruction cut by the end of the section is skipped.
    let cut = [0x00, 0xDE, 0x00, 0xF0];
    assert_eq!(
        scan_all(&cut, ArmArch::AArch32, true, &[]),
        vec![(0, 4, ArmAddr::T8)]
    );
    // Unaligned section start: ARM mode starts at the next word.
    let s = ExecSection {
        offset: 1,
        size: 27,
        rva: 0x1001,
    };
    let found = arm::find_rel32_aarch32(&ARM_MODE, s, false, &[], 4, &any);
    assert_eq!(found.first().map(|r| r.location), Some(4));
    // Instructions at misaligned RVAs are not branches.
    let s = ExecSection {
        offset: 0,
        size: 28,
        rva: 0x1002,
    };
    assert!(arm::find_rel32_aarch32(&ARM_MODE, s, false, &[], 4, &any).is_empty());
}

/// A rejected target (the closure says no) does not stop the scan, and the
/// closure's offset is what the result carries.
#[test]
fn rejected_candidates_are_skipped() {
    let s = ExecSection {
        offset: 0,
        size: 28,
        rva: 0,
    };
    let only = |rva: u32| (rva == 0x80414 || rva == 0x80420).then_some(rva - 0x80000);
    let found = arm::find_rel32_aarch32(&ARM_MODE, s, false, &[], 4, &only);
    let want = [(0x0C, 0x80414, 0x414), (0x18, 0x80420, 0x420)];
    let got: Vec<_> = found
        .iter()
        .map(|r: &Rel32| (r.location, r.target_rva, r.target))
        .collect();
    assert_eq!(got, want);
}

/// The type tables as Zucchini's disassembler_elf.{h,cc} number them.
#[test]
fn type_tables_follow_zucchini() {
    let t32: Vec<_> = arm::AARCH32_GROUPS
        .iter()
        .map(|g| (g.type_tag, g.pool_tag, g.width))
        .collect();
    assert_eq!(
        t32,
        [
            (0, 0, 4),
            (1, 1, 4),
            (2, 2, 4),
            (3, 2, 2),
            (4, 2, 2),
            (5, 2, 4),
            (6, 2, 4)
        ]
    );
    let t64: Vec<_> = arm::AARCH64_GROUPS
        .iter()
        .map(|g| (g.type_tag, g.pool_tag, g.width))
        .collect();
    assert_eq!(t64, [(0, 0, 8), (1, 1, 8), (2, 2, 4), (3, 2, 4), (4, 2, 4)]);
    for (arch, list) in [
        (ArmArch::AArch32, &ArmAddr::AARCH32[..]),
        (ArmArch::AArch64, &ArmAddr::AARCH64[..]),
    ] {
        for &a in list {
            assert_eq!(ArmAddr::from_type_tag(arch, a.type_tag()), Some(a));
        }
        assert_eq!(ArmAddr::from_type_tag(arch, 0), None);
        assert_eq!(ArmAddr::from_type_tag(arch, 1), None);
        assert_eq!(ArmAddr::from_type_tag(arch, 2 + list.len() as u8), None);
    }
    assert_eq!((arm::R_ARM_RELATIVE, arm::R_AARCH64_RELATIVE), (23, 1027));
    assert_eq!(ArmArch::AArch32.groups(), &arm::AARCH32_GROUPS);
    assert_eq!(ArmArch::AArch64.groups(), &arm::AARCH64_GROUPS);
    assert_eq!(
        (
            ArmArch::AArch32.abs32_width(),
            ArmArch::AArch64.abs32_width()
        ),
        (4, 8)
    );
    assert_eq!(ArmArch::AArch64.relative_reloc(), 1027);
}

/// `IsExecSectionThumb2`: misaligned address or size means Thumb2; else
/// fewer than 40% `AL` words means Thumb2.
#[test]
fn thumb2_heuristic_threshold() {
    let words = |al: usize, total: usize| -> Vec<u8> {
        (0..total)
            .flat_map(|i| [0, 0, 0, if i < al { 0xEA } else { 0x1A }])
            .collect()
    };
    assert!(!arm::is_exec_section_thumb2(0x1000, &words(2, 5)));
    assert!(arm::is_exec_section_thumb2(0x1000, &words(1, 5)));
    assert!(!arm::is_exec_section_thumb2(0x1000, &words(4, 10)));
    assert!(arm::is_exec_section_thumb2(0x1000, &words(3, 10)));
    assert!(arm::is_exec_section_thumb2(0x1002, &words(10, 10)));
    assert!(arm::is_exec_section_thumb2(0x1000, &words(10, 10)[..38]));
    // Empty: 0 < 0 is false, so ARM.
    assert!(!arm::is_exec_section_thumb2(0x1000, &[]));
}

// ---------------------------------------------------------------------------
// GNU binutils oracle
// ---------------------------------------------------------------------------

/// Runs a tool, failing the test with its output if it fails.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cross tools with prefix `prefix`, or `None` (skip) when missing.
fn cross_tools(prefix: &str) -> Option<[std::path::PathBuf; 4]> {
    let names = ["as", "ld", "objcopy", "objdump"].map(|t| format!("{prefix}-{t}"));
    let found = names
        .iter()
        .map(|n| common::tool(n))
        .collect::<Option<Vec<_>>>()?;
    Some([
        found[0].clone(),
        found[1].clone(),
        found[2].clone(),
        found[3].clone(),
    ])
}

/// objdump's branches: instruction address -> (mnemonic, target address).
type Branches = BTreeMap<u32, (String, u32)>;

/// Assembles `src`, links `.text` at `base`, and returns the text bytes
/// and objdump's branches.
fn build(tools: &[std::path::PathBuf; 4], dir: &Path, src: &str, base: u32) -> (Vec<u8>, Branches) {
    let [asm, ld, objcopy, objdump] = tools;
    std::fs::write(dir.join("t.s"), src).unwrap();
    run(Command::new(asm)
        .arg("-o")
        .arg(dir.join("t.o"))
        .arg(dir.join("t.s")));
    let text = format!("-Ttext={base:#x}");
    run(Command::new(ld)
        .args([&text, "-e", "0", "-o"])
        .arg(dir.join("t.elf"))
        .arg(dir.join("t.o")));
    run(Command::new(objcopy)
        .args(["-O", "binary", "-j", ".text"])
        .arg(dir.join("t.elf"))
        .arg(dir.join("t.bin")));
    let dis = run(Command::new(objdump)
        .args(["-d", "-j", ".text"])
        .arg(dir.join("t.elf")));
    (
        std::fs::read(dir.join("t.bin")).unwrap(),
        objdump_branches(&dis),
    )
}

/// Branch lines of `objdump -d`: "addr:\t<raw>\t<mnemonic>\t[reg, ...]<hex> <sym>".
fn objdump_branches(dis: &str) -> Branches {
    let mut out = BTreeMap::new();
    for line in dis.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let (Some(addr), Some(mnem), Some(ops)) = (fields.first(), fields.get(2), fields.get(3))
        else {
            continue;
        };
        let mnem = mnem.trim();
        let is_branch = mnem.starts_with('b') || mnem.starts_with("cb") || mnem.starts_with("tb");
        let Some(sym) = ops.find(" <") else { continue };
        let Some(target) = ops[..sym].rsplit([' ', ',', '#']).next() else {
            continue;
        };
        let (Ok(a), Ok(t)) = (
            u32::from_str_radix(addr.trim().trim_end_matches(':'), 16),
            u32::from_str_radix(target.trim_start_matches("0x"), 16),
        ) else {
            continue;
        };
        if is_branch {
            out.insert(a, (mnem.to_string(), t));
        }
    }
    out
}

/// The displacement bits of each type, per the Arm ARM encodings (not
/// Zucchini's code): clearing them gives a zero-displacement instruction.
fn disp_mask(addr: ArmAddr, code: u32) -> u32 {
    match addr {
        ArmAddr::A24 if code >> 28 == 0xF => 0x01FF_FFFF, // BLX A2: H and imm24
        ArmAddr::A24 => 0x00FF_FFFF,
        ArmAddr::T8 => 0x00FF,
        ArmAddr::T11 => 0x07FF,
        ArmAddr::T20 => 0x043F_2FFF, // S, imm6, J1, J2, imm11
        ArmAddr::T24 => 0x07FF_2FFF, // S, imm10, J1, J2, imm11
        ArmAddr::Immd14 => 0x0007_FFE0,
        ArmAddr::Immd19 => 0x00FF_FFE0,
        ArmAddr::Immd26 => 0x03FF_FFFF,
    }
}

/// Every branch objdump lists in `range` (offsets in `bytes`) is found by
/// the scan with objdump's target, and re-encoding that target into the
/// instruction with its displacement cleared gives the assembled bytes.
fn check_against_objdump(
    bytes: &[u8],
    base: u32,
    branches: &Branches,
    found: &[Rel32],
    range: std::ops::Range<u32>,
) -> usize {
    let by_loc: BTreeMap<u32, &Rel32> = found.iter().map(|r| (r.location, r)).collect();
    let mut checked = 0;
    for (&addr, (_, target)) in branches.range(base + range.start..base + range.end) {
        let target = *target;
        let loc = addr - base;
        let r = by_loc
            .get(&loc)
            .unwrap_or_else(|| panic!("branch at {addr:#x} (to {target:#x}) not found: {found:?}"));
        assert_eq!(r.target_rva, target, "branch at {addr:#x} ({:?})", r.addr);
        let code = arm::fetch_code(r.addr, bytes, loc).unwrap();
        let clean = code & !disp_mask(r.addr, code);
        assert_eq!(
            arm::write_code(r.addr, addr, target, clean),
            Ok(code),
            "{:?} at {addr:#x}",
            r.addr
        );
        checked += 1;
    }
    for r in found.iter().filter(|r| range.contains(&r.location)) {
        assert!(
            branches.contains_key(&(base + r.location)),
            "spurious {r:?}"
        );
    }
    checked
}

/// ARM (A24: B, BL, Bcc, BLX to Thumb2) and Thumb2 (T8, T11, T20, T24: B,
/// BL, BLX to ARM at both halfword alignments) branches assembled and
/// linked by GNU binutils decode to objdump's targets and encode back.
#[test]
fn binutils_aarch32_branches() {
    let Some(tools) = cross_tools("arm-linux-gnueabi") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = r#"
        .syntax unified
        .arch armv7-a
        .text
        .arm
    arm_code:
        b far_arm
        bl far_arm
        bne arm_code
        blx thumb_a
        blx thumb_b
        bllt far_arm
        b .
        .balign 16
    arm_end:
        .thumb
    thumb_a:
        nop
    thumb_b:
        beq.n thumb_a
        b.n thumb_b
        bne.n near_t
        b.n near_t
        beq.w far_t
        bgt.w thumb_a
        b.w far_t
        bl far_t
        blx arm_code
        nop
        blx arm_code
        bl thumb_a
        cbz r0, near_t
        b.w thumb_a
    near_t:
        nop
        .space 0x3000
    far_t:
        nop
        nop
        .balign 4
    thumb_end:
        .arm
        .space 0x100000
    far_arm:
        bx lr
    "#;
    let base = 0x0001_0000;
    let (bytes, mut branches) = build(&tools, dir.path(), src, base);
    // CBZ/CBNZ are not Zucchini types: objdump lists them, the scan must not
    // report them (the spurious check below).
    let before = branches.len();
    branches.retain(|_, (m, _)| !m.starts_with("cb"));
    assert_eq!(before - branches.len(), 1, "{branches:x?}");
    let any = |rva: u32| Some(rva);
    // The ARM part is 8 words; the Thumb2 part runs to far_arm's padding
    // (its 0x3000 zero bytes decode as no branch in Thumb2).
    let arm_len = 32;
    let thumb_len = bytes.len() as u32 - 0x100004 - arm_len;
    let arm_sec = ExecSection {
        offset: 0,
        size: arm_len,
        rva: base,
    };
    let thumb_sec = ExecSection {
        offset: arm_len,
        size: thumb_len,
        rva: base + arm_len,
    };
    assert!(!arm::is_exec_section_thumb2(
        base,
        &bytes[..arm_len as usize]
    ));
    let thumb_bytes = &bytes[arm_len as usize..(arm_len + thumb_len) as usize];
    assert!(arm::is_exec_section_thumb2(base + arm_len, thumb_bytes));
    let found_arm = arm::find_rel32_aarch32(&bytes, arm_sec, false, &[], 4, &any);
    let found_thumb = arm::find_rel32_aarch32(&bytes, thumb_sec, true, &[], 4, &any);
    let n = check_against_objdump(&bytes, base, &branches, &found_arm, 0..arm_len);
    assert_eq!(n, 7, "{branches:x?}");
    let n = check_against_objdump(
        &bytes,
        base,
        &branches,
        &found_thumb,
        arm_len..arm_len + thumb_len,
    );
    assert_eq!(n, 12, "{branches:x?}");
}

/// AArch64 branches (Immd14: TBZ/TBNZ; Immd19: B.cond, CBZ/CBNZ; Immd26:
/// B, BL) assembled and linked by GNU binutils decode to objdump's targets
/// and encode back.
#[test]
fn binutils_aarch64_branches() {
    let Some(tools) = cross_tools("aarch64-linux-gnu") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = r#"
        .text
    start:
        b far
        bl far
        b.ne start
        b.al near
        cbz x3, near
        cbnz w7, start
        tbz x1, #33, near
        tbnz w2, #5, start
        bl start
        adr x0, near
        adrp x1, far
    near:
        ret
        .space 0x7000
        tbz x0, #0, start
        .space 0x0F0000
        cbnz x0, start
        .space 0x1000000
    far:
        b start
    "#;
    let base = 0x0040_0000;
    let (bytes, branches) = build(&tools, dir.path(), src, base);
    let any = |rva: u32| Some(rva);
    let sec = ExecSection {
        offset: 0,
        size: bytes.len() as u32,
        rva: base,
    };
    let found = arm::find_rel32_aarch64(&bytes, sec, &[], 8, &any);
    let n = check_against_objdump(&bytes, base, &branches, &found, 0..bytes.len() as u32);
    assert_eq!(n, 12, "{branches:x?}");
    // adr/adrp are not Zucchini types and objdump does not list them as
    // branches; the scan did not report them either (checked above).
}
