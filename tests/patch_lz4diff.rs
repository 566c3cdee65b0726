//! lz4diff: the LZ4DIFF codec on its own. An inner PUF1 patch (AOSP puffin's
//! vector) wrapped by tests/oracles/write_lz4diff.py, and header checks on
//! hand-made bytes. The LZ4 paths run as payload operations in
//! tests/incremental.rs.

mod common;
mod vectors;

use common::*;
use romkit::format::patch::lz4diff::{self, Limits, Lz4diffError};

#[test]
fn inner_puffdiff_applies_the_aosp_puffin_vector() {
    let Some(py) = python_with(&["google.protobuf", "bsdiff4", "brotli", "lz4"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        std::process::Command::new(py)
            .arg(root().join("tests/oracles/write_lz4diff.py"))
            .arg(dir.path())
            .arg(root().join("../shared/incremental-vectors")),
    );
    let read = |n: &str| std::fs::read(dir.path().join(n)).unwrap();
    let (old, patch) = (read("puffdiff.old"), read("puffdiff.lz4diff"));
    let p = lz4diff::Patch::parse(&patch).unwrap();
    assert_eq!(p.inner_type, lz4diff::Inner::Puffdiff);
    let got = lz4diff::apply(&old, &patch, Limits::for_output(4096, old.len() as u64)).unwrap();
    assert_eq!(got, vectors::read("aosp-puffin/deflates_sample2.bin"));
    // An output limit below the result is refused before anything is built.
    let e = lz4diff::apply(&old, &patch, Limits::for_output(4, old.len() as u64)).unwrap_err();
    assert!(matches!(e, Lz4diffError::TooLarge { .. }), "{e}");
}

fn header(version: u32, pb: &[u8]) -> Vec<u8> {
    let mut v = b"LZ4DIFF".to_vec();
    v.extend_from_slice(&version.to_be_bytes());
    v.extend_from_slice(&(pb.len() as u32).to_be_bytes());
    v.push(0);
    v.extend_from_slice(pb);
    v
}

#[test]
fn malformed_headers_are_named() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"LZ4DIF".to_vec(), "shorter than the 16-byte header"),
        (header(2, &[]), "offset 7: version 2"),
        (
            {
                let mut h = header(1, &[]);
                h[11..15].copy_from_slice(&100u32.to_be_bytes());
                h
            },
            "offset 11: pb_header_size = 100",
        ),
        (b"LZ4DIFX\0\0\0\x01\0\0\0\0\0".to_vec(), "magic"),
        // inner_type = 7 (field 3, varint).
        (header(1, &[0x18, 0x07]), "inner_type = 7"),
        // No source blocks.
        (header(1, &[]), "src_info.block_info = 0"),
        // src_info { block_info { uncompressed_offset 5, lengths 10, 4 } }.
        (
            header(
                1,
                &[0x0a, 0x08, 0x12, 0x06, 0x08, 0x05, 0x10, 0x0a, 0x18, 0x04],
            ),
            "src_info.block_info[0]: uncompressed_offset = 5",
        ),
        // A compressed source block without an algorithm.
        (
            header(
                1,
                &[0x0a, 0x08, 0x12, 0x06, 0x08, 0x00, 0x10, 0x0a, 0x18, 0x04],
            ),
            "src_info.algo.type = 0",
        ),
    ];
    for (bytes, want) in cases {
        let e = lz4diff::Patch::parse(&bytes).unwrap_err().to_string();
        assert!(e.contains(want), "{e:?} does not say {want:?}");
    }
}
