//! Writing a full payload again for an image edited in place: unchanged
//! operations keep their blobs, long zero runs inside a changed operation
//! become ZERO operations of their own, only the rest is encoded again, at
//! the preset that reproduces the source's blobs, and the third-party
//! extractor gives the edited image back byte for byte.

mod common;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use romkit::format::payload::Payload;
use romkit::format::payload::writer::{
    ImageInput, PayloadInput, PayloadOptions, prepare_payload_from,
};
use romkit::format::source::{Donor, FileSlice};

const MIB: usize = 1 << 20;
const BLOCK: usize = 4096;

/// Compressible, position-dependent bytes (text-like lines).
fn image_bytes(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let mut i = 0u64;
    while v.len() < len {
        let line = format!(
            "entry {i} value {} name file_{}\n",
            i * 7919 % 10007,
            i % 97
        );
        v.extend_from_slice(line.as_bytes());
        i += 1;
    }
    v.truncate(len);
    v
}

fn write_payload(
    path: &Path,
    inputs: &[PayloadInput],
    level: u32,
) -> Vec<(String, romkit::format::payload::reuse::ReuseCounts)> {
    let opts = PayloadOptions {
        xz_level: level,
        jobs: 2,
        ..PayloadOptions::default()
    };
    let scratch = tempfile::tempfile().unwrap();
    let p = prepare_payload_from(inputs, &opts, scratch, path).unwrap();
    let mut out = File::create(path).unwrap();
    p.write_to(&mut out, path, &mut Donor::default()).unwrap();
    out.flush().unwrap();
    p.reused().to_vec()
}

fn open(path: &Path) -> Payload {
    Payload::open(FileSlice::open(path).unwrap()).unwrap()
}

fn dumper() -> Option<PathBuf> {
    let found = std::env::var_os("ROMKIT_PAYLOAD_DUMPER")
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .or_else(|| {
            let p = root().join("target/peers/bin/payload_dumper");
            p.exists().then_some(p)
        });
    need("payload_dumper 0.8.4 (target/peers/bin)", found)
}

#[test]
fn edited_image_reuses_blobs_and_splits_off_zero_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let old = image_bytes(8 * MIB);
    std::fs::write(d.join("old.img"), &old).unwrap();
    // The source payload, at xz preset 1 (not the options' default of 6).
    write_payload(
        &d.join("src.bin"),
        &[PayloadInput::Image(&ImageInput {
            name: "product".into(),
            path: d.join("old.img"),
        })],
        1,
    );
    let src = open(&d.join("src.bin"));

    // The edit: 64 blocks zeroed inside operation 1 (2..4 MiB), one block
    // rewritten in operation 2, operations 0 and 3 untouched.
    let mut new = old.clone();
    let zero_at = 2 * MIB + 40 * BLOCK;
    new[zero_at..zero_at + 64 * BLOCK].fill(0);
    let one = 4 * MIB + 3 * BLOCK;
    new[one..one + BLOCK].copy_from_slice(&[0x5a; BLOCK]);
    std::fs::write(d.join("new.img"), &new).unwrap();
    let changed = [
        zero_at as u64..(zero_at + 64 * BLOCK) as u64,
        one as u64..(one + BLOCK) as u64,
    ];
    let zeroed = [changed[0].clone()];
    let img = ImageInput {
        name: "product".into(),
        path: d.join("new.img"),
    };
    // Written at options' preset 6: the source's own preset must win.
    let counts = write_payload(
        &d.join("out.bin"),
        &[PayloadInput::Edited {
            payload: &src,
            partition: "product",
            image: &img,
            changed: &changed,
            zeroed: &zeroed,
            sha256: None,
        }],
        6,
    );
    let c = counts[0].1;
    assert_eq!(
        (c.copied, c.zeroed, c.encoded, c.split),
        (2, 0, 2, 1),
        "{c:?}"
    );
    assert_eq!(c.preset, Some(1), "{c:?}");
    assert_eq!(c.encoded_bytes, (4 * MIB - 64 * BLOCK) as u64, "{c:?}");

    let out = open(&d.join("out.bin"));
    let (sp, op) = (
        src.partition("product").unwrap(),
        out.partition("product").unwrap(),
    );
    let blob = |pl: &Payload, o: &romkit::format::payload::Operation| {
        pl.read(o.data_offset, o.data_len).unwrap()
    };
    let ops: Vec<(String, u64, u64)> = op
        .ops
        .iter()
        .map(|o| {
            assert_eq!(o.dst.len(), 1, "one extent per operation");
            (o.kind_name(), o.dst[0].offset, o.dst[0].len)
        })
        .collect();
    let (m, b) = (MIB as u64, BLOCK as u64);
    assert_eq!(
        ops,
        vec![
            ("REPLACE_XZ".into(), 0, 2 * m),
            ("REPLACE_XZ".into(), 2 * m, 40 * b),
            ("ZERO".into(), 2 * m + 40 * b, 64 * b),
            ("REPLACE_XZ".into(), 2 * m + 104 * b, 2 * m - 104 * b),
            ("REPLACE_XZ".into(), 4 * m, 2 * m),
            ("REPLACE_XZ".into(), 6 * m, 2 * m),
        ]
    );
    // Untouched operations: the very same blobs.
    assert_eq!(blob(&out, &op.ops[0]), blob(&src, &sp.ops[0]));
    assert_eq!(blob(&out, &op.ops[5]), blob(&src, &sp.ops[3]));
    // The operation encoded again whole is encoded as the source was: the
    // same bytes xz preset 1 gives, which differ from preset 6's.
    let level = |n: u32| {
        let mut e = liblzma::write::XzEncoder::new_stream(
            Vec::new(),
            liblzma::stream::Stream::new_stream_encoder(
                &{
                    let mut o = liblzma::stream::LzmaOptions::new_preset(n).unwrap();
                    o.dict_size(2 * MIB as u32);
                    let mut f = liblzma::stream::Filters::new();
                    f.lzma2(&o);
                    f
                },
                liblzma::stream::Check::None,
            )
            .unwrap(),
        );
        e.write_all(&new[4 * MIB..6 * MIB]).unwrap();
        e.finish().unwrap()
    };
    assert_eq!(blob(&out, &op.ops[4]), level(1));
    assert_ne!(level(1), level(6));

    // The third-party extractor gives the edited image byte for byte.
    let Some(dumper) = dumper() else {
        return;
    };
    let peer = d.join("peer");
    let st = Command::new(dumper)
        .arg(d.join("out.bin"))
        .arg("-o")
        .arg(&peer)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert!(
        std::fs::read(peer.join("product.img")).unwrap() == new,
        "product.img differs"
    );
}

/// A copied partition's blobs go from the source payload to the output when
/// the payload is streamed, byte for byte; a damaged source blob is caught
/// on the way unless the caller leaves that to its own read-back.
#[test]
fn copied_blobs_stream_from_the_source_and_are_checked_on_the_way() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a.img"), image_bytes(6 * MIB)).unwrap();
    write_payload(
        &d.join("src.bin"),
        &[PayloadInput::Image(&ImageInput {
            name: "odm".into(),
            path: d.join("a.img"),
        })],
        1,
    );
    let copy = |check_copied: bool, out: &Path| {
        let src = open(&d.join("src.bin"));
        let opts = PayloadOptions {
            jobs: 2,
            check_copied,
            ..PayloadOptions::default()
        };
        let input = [PayloadInput::Copy {
            payload: &src,
            partition: "odm",
        }];
        let p = prepare_payload_from(&input, &opts, tempfile::tempfile().unwrap(), out)?;
        let mut f = File::create(out).unwrap();
        p.write_to(&mut f, out, &mut Donor::default()).map(|_| ())
    };
    copy(true, &d.join("out.bin")).unwrap();
    let (src, out) = (open(&d.join("src.bin")), open(&d.join("out.bin")));
    let (s, o) = (src.partition("odm").unwrap(), out.partition("odm").unwrap());
    assert_eq!(s.ops.len(), 3);
    assert_eq!(o.hash, s.hash);
    for (a, b) in s.ops.iter().zip(&o.ops) {
        assert_eq!(b.data_hash, a.data_hash);
        assert_eq!(
            out.read(b.data_offset, b.data_len).unwrap(),
            src.read(a.data_offset, a.data_len).unwrap()
        );
    }

    // One byte of operation 1's blob damaged in the source.
    let at = s.ops[1].data_offset + 100;
    let mut bytes = std::fs::read(d.join("src.bin")).unwrap();
    bytes[at as usize] ^= 0x40;
    std::fs::write(d.join("src.bin"), &bytes).unwrap();
    let err = copy(true, &d.join("out2.bin")).unwrap_err().to_string();
    assert!(
        err.contains("operation 1") && err.contains("data_sha256_hash mismatch"),
        "{err}"
    );
    // Left to the caller: the damaged blob is written as it is.
    copy(false, &d.join("out3.bin")).unwrap();
    let out3 = open(&d.join("out3.bin"));
    let o3 = &out3.partition("odm").unwrap().ops[1];
    let blob = out3.read(o3.data_offset, o3.data_len).unwrap();
    assert_eq!(blob[100], bytes[at as usize]);
}
