//! LZ4DIFF patches: the header parser (magic, version, protobuf, block
//! layouts) and the whole applier (LZ4 decompression, inner patch,
//! recompression, postfix patches) on a source taken from the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romkit::format::patch::lz4diff;

fuzz_target!(|data: &[u8]| {
    // The first two bytes (little-endian) say how much of the rest is the source.
    if data.len() < 2 {
        return;
    }
    let (len, rest) = data.split_at(2);
    let cut = (u16::from_le_bytes([len[0], len[1]]) as usize).min(rest.len());
    let (src, patch) = rest.split_at(cut);
    let _ = lz4diff::Patch::parse(patch);
    let limits = lz4diff::Limits {
        out_len: 1 << 16,
        work_len: 1 << 20,
    };
    let _ = lz4diff::apply(src, patch, limits);
});
