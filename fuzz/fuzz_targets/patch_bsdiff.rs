//! bsdiff patches (`BSDIFF40`, `BSDF2` with none/bz2/brotli streams): the
//! input's first byte chooses how much of the rest is the old file, the rest
//! is the patch; applied with a small output limit and into an exact buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romkit::format::patch::bsdiff;

fuzz_target!(|data: &[u8]| {
    // The first two bytes (little-endian) say how much of the rest is the old file.
    if data.len() < 2 {
        return;
    }
    let (len, rest) = data.split_at(2);
    let cut = (u16::from_le_bytes([len[0], len[1]]) as usize).min(rest.len());
    let (old, patch) = rest.split_at(cut);
    if let Ok(h) = bsdiff::Header::parse(patch) {
        if h.new_size <= 1 << 16 {
            let mut out = vec![0u8; h.new_size as usize];
            let _ = bsdiff::apply_into(old, patch, &mut out);
        }
    }
    let _ = bsdiff::apply(old, patch, 1 << 16);
});
