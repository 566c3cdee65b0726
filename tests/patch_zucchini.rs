//! Zucchini: Chromium puffin's raw-element vectors (major version 2), a
//! version-1 variant, and hostile patches.

mod vectors;
use romkit::format::patch::zucchini::{self, ZucchiniError};
use vectors::read;

const D: &str = "chromium-puffin-zucchini/";
const CASES: [(&str, &str, &str); 3] = [
    (
        "puffs_sample1.bin",
        "patch_1_to_2.inner.zuc",
        "puffs_sample2.bin",
    ),
    (
        "puffs_sample2.bin",
        "patch_2_to_1.inner.zuc",
        "puffs_sample1.bin",
    ),
    (
        "puffs_sample1.bin",
        "patch_1_to_nodeflate.inner.zuc",
        "raw_11_22_33_44.bin",
    ),
];

#[test]
fn chromium_raw_elements() {
    for (o, p, n) in CASES {
        let (old, patch, new) = (
            read(&format!("{D}{o}")),
            read(&format!("{D}{p}")),
            read(&format!("{D}{n}")),
        );
        assert_eq!(zucchini::apply(&old, &patch, 1 << 20).unwrap(), new, "{p}");
        // The brotli-compressed form (shape of a ZUCCHINI operation's data).
        let br = read(&format!("{D}{p}.br"));
        assert_eq!(zucchini::decompress_brotli(&br, 1 << 20).unwrap(), patch);
        assert_eq!(
            zucchini::apply_brotli(&old, &br, 1 << 20).unwrap(),
            new,
            "{p}.br"
        );
    }
}

#[test]
fn major_version_1_accepted() {
    let (old, mut patch, new) = (
        read(&format!("{D}puffs_sample1.bin")),
        read(&format!("{D}patch_1_to_2.inner.zuc")),
        read(&format!("{D}puffs_sample2.bin")),
    );
    patch[4] = 1;
    assert_eq!(zucchini::apply(&old, &patch, 1 << 20).unwrap(), new);
    patch[4] = 3;
    assert!(matches!(
        zucchini::apply(&old, &patch, 1 << 20),
        Err(ZucchiniError::BadField { offset: 4, .. })
    ));
}

#[test]
fn hostile() {
    let old = read(&format!("{D}puffs_sample1.bin"));
    let patch = read(&format!("{D}patch_1_to_2.inner.zuc"));
    // Wrong old file.
    let mut bad_old = old.clone();
    bad_old[3] ^= 1;
    assert!(matches!(
        zucchini::apply(&bad_old, &patch, 1 << 20),
        Err(ZucchiniError::OldMismatch { field: "crc32", .. })
    ));
    assert!(matches!(
        zucchini::apply(&old[1..], &patch, 1 << 20),
        Err(ZucchiniError::OldMismatch { field: "size", .. })
    ));
    // Output limit.
    assert!(matches!(
        zucchini::apply(&old, &patch, 10),
        Err(ZucchiniError::TooLarge { .. })
    ));
    // Every truncation errors; every single-byte corruption errors or (for
    // bytes the CRC cannot see) still never panics.
    for cut in 0..patch.len() {
        assert!(
            zucchini::apply(&old, &patch[..cut], 1 << 20).is_err(),
            "cut {cut}"
        );
    }
    for i in 0..patch.len() {
        for x in [0x01u8, 0x80, 0xff] {
            let mut p = patch.clone();
            p[i] ^= x;
            let _ = zucchini::apply(&old, &p, 1 << 20);
        }
    }
    // Executable element types without a disassembler are refused clearly,
    // and a raw element declared as ELF is not an ELF.
    let mut p = patch.clone();
    let at = 24 + 4 + 16;
    p[at..at + 4].copy_from_slice(b"ZTF ");
    let e = zucchini::apply(&old, &p, 1 << 20).unwrap_err();
    assert!(matches!(e, ZucchiniError::Unsupported { .. }), "{e}");
    p[at..at + 4].copy_from_slice(b"EA64");
    let e = zucchini::apply(&old, &p, 1 << 20).unwrap_err();
    assert!(
        matches!(&e, ZucchiniError::BadElement { element: 0, exe_type, .. } if exe_type == "EA64"),
        "{e}"
    );
    // Huge new size claimed in the header.
    let mut p = patch.clone();
    p[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(zucchini::apply(&old, &p, 1 << 20).is_err());
    // Brotli bomb limit.
    let br = read(&format!("{D}patch_1_to_2.inner.zuc.br"));
    assert!(matches!(
        zucchini::decompress_brotli(&br, 10),
        Err(ZucchiniError::TooLarge { .. })
    ));
    assert!(zucchini::decompress_brotli(&br[..br.len() / 2], 1 << 20).is_err());
}
