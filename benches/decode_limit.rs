//! The "decode limit" of a payload: the single-thread time to read and decode
//! every operation, which no parallel extractor can beat by more than the core
//! count. Prints one JSON line:
//! `{"ops":N,"bytes":B,"decode_seconds":X,"hash_seconds":Y}` where Y is the
//! single-thread time for the hashing `verify` adds (operation data, images,
//! and the whole payload file).
//!
//! Run: `cargo bench --bench decode_limit -- PACKAGE_OR_PAYLOAD`

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use romkit::format::payload::decode::decode_into;

fn main() {
    let path = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .expect("usage: decode_limit PACKAGE");
    let rom = romkit::rom::Rom::open(std::path::Path::new(&path)).expect("open package");
    let p = rom.payload().expect("a payload package");
    let mut decode = Duration::ZERO;
    let mut hash = Duration::ZERO;
    let (mut ops, mut bytes) = (0usize, 0u64);
    let mut data = Vec::new();
    let mut out = Vec::new();
    for part in &p.partitions {
        let mut image_hash = Sha256::new();
        for op in &part.ops {
            let Ok(kind) = op.kind else { continue };
            if matches!(
                kind,
                romkit::format::payload::OpType::Zero | romkit::format::payload::OpType::Discard
            ) {
                continue;
            }
            let t = Instant::now();
            data.resize(op.data_len as usize, 0);
            p.source
                .read_exact_at(&mut data, op.data_offset)
                .expect("read");
            out.resize(op.dst_len as usize, 0);
            decode_into(kind, &data, &mut out).expect("decode");
            decode += t.elapsed();
            let t = Instant::now();
            std::hint::black_box(Sha256::digest(&data));
            image_hash.update(&out);
            hash += t.elapsed();
            ops += 1;
            bytes += op.dst_len;
        }
        std::hint::black_box(image_hash.finalize());
    }
    let t = Instant::now();
    std::hint::black_box(p.whole_file_pass(false).expect("whole-file pass"));
    hash += t.elapsed();
    println!(
        "{{\"ops\":{ops},\"bytes\":{bytes},\"decode_seconds\":{:.3},\"hash_seconds\":{:.3}}}",
        decode.as_secs_f64(),
        hash.as_secs_f64()
    );
}
