//! dm-verity hash trees and FEC against an independent implementation:
//! cryptsetup's `veritysetup format --no-superblock` writes the tree (levels
//! top first, salt prepended, format 1) and, with `--fec-device`, the
//! Reed–Solomon parity over data and tree with the same interleaving and
//! generator as Android's libfec. romkit's bytes must equal its bytes.

mod common;

use std::path::Path;

use common::{hex, noise, tool};
use romkit::format::verity::{
    FecParams, HashAlgorithm, TreeParams, check_fec, check_tree, compute_fec, compute_tree,
};

/// Runs `veritysetup format` over `data`; returns (tree, fec, root digest).
fn veritysetup(
    bin: &Path,
    dir: &Path,
    data: &[u8],
    alg: &str,
    salt: &[u8],
    roots: Option<u8>,
) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (d, h, f) = (dir.join("data"), dir.join("hash"), dir.join("fec"));
    std::fs::write(&d, data).unwrap();
    std::fs::write(&f, b"").unwrap();
    let fec = roots.map(|r| (f.as_path(), r));
    let root = common::veritysetup(bin, &d, &h, fec, alg, &hex(salt));
    let root = (0..root.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&root[i..i + 2], 16).unwrap())
        .collect();
    (std::fs::read(&h).unwrap(), std::fs::read(&f).unwrap(), root)
}

#[test]
fn trees_and_roots_equal_veritysetup() {
    let Some(bin) = tool("veritysetup") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // One block (no tree), two blocks, a three-level tree with SHA-1
    // (digests padded to 32 bytes) and SHA-256, several salts.
    let cases: [(usize, &str, &[u8]); 6] = [
        (1, "sha256", b"\x01\x02"),
        (2, "sha256", b""),
        (300, "sha256", &[0xAB; 32]),
        (129, "sha1", b"salt"),
        (16_500, "sha256", &[0x5A; 32]),
        (4_100, "sha1", &[0x11; 20]),
    ];
    for (blocks, alg, salt) in cases {
        let data = noise(blocks as u64, blocks * 4096);
        let (tree, _, root) = veritysetup(&bin, dir.path(), &data, alg, salt, None);
        let params = TreeParams {
            algorithm: HashAlgorithm::from_name(alg).unwrap(),
            block_size: 4096,
            salt: salt.to_vec(),
        };
        let ours = compute_tree(&data, data.len() as u64, &params).unwrap();
        assert_eq!(ours.root_digest, root, "{blocks} blocks {alg}: root digest");
        assert!(
            ours.tree == tree,
            "{blocks} blocks {alg}: tree bytes differ"
        );
        check_tree(&data, data.len() as u64, &params, &tree, &root).unwrap();
    }
}

#[test]
fn fec_parity_equals_veritysetup() {
    let Some(bin) = tool("veritysetup") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Covered sizes below, at and above one round of 253 blocks, and the
    // widest code dm-verity allows.
    for (blocks, roots) in [(1usize, 2u8), (200, 2), (300, 2), (600, 24), (2_000, 7)] {
        let data = noise(blocks as u64 + 77, blocks * 4096);
        let salt = [0x42u8; 32];
        let (tree, fec, _) = veritysetup(&bin, dir.path(), &data, "sha256", &salt, Some(roots));
        let covered: Vec<u8> = data.iter().chain(&tree).copied().collect();
        let params = FecParams {
            roots,
            block_size: 4096,
        };
        let ours = compute_fec(&covered, covered.len() as u64, params).unwrap();
        assert_eq!(
            ours.len(),
            fec.len(),
            "{blocks} blocks, {roots} roots: size"
        );
        assert!(
            ours == fec,
            "{blocks} blocks, {roots} roots: parity differs"
        );
        check_fec(&covered, covered.len() as u64, params, &fec).unwrap();
    }
}

#[test]
fn changed_data_is_a_mismatch_naming_the_offset() {
    let data = noise(5, 40 * 4096);
    let params = TreeParams {
        algorithm: HashAlgorithm::Sha256,
        block_size: 4096,
        salt: vec![1, 2, 3],
    };
    let good = compute_tree(&data, data.len() as u64, &params).unwrap();
    let mut bad = data.clone();
    bad[7 * 4096 + 5] ^= 1;
    let e = check_tree(
        &bad,
        bad.len() as u64,
        &params,
        &good.tree,
        &good.root_digest,
    )
    .unwrap_err()
    .to_string();
    // 40 blocks make a one-block tree: block 7's digest is at 7·32.
    assert!(e.contains("hash tree") && e.contains("at byte 224"), "{e}");

    let fp = FecParams {
        roots: 2,
        block_size: 4096,
    };
    let parity = compute_fec(&data, data.len() as u64, fp).unwrap();
    let e = check_fec(&bad, bad.len() as u64, fp, &parity)
        .unwrap_err()
        .to_string();
    assert!(e.contains("FEC parity"), "{e}");
}
