//! Zucchini ensemble patches, raw and brotli-compressed: parsing every
//! element, equivalence, extra data, delta and pool, and applying raw
//! elements to an old file taken from the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romkit::format::patch::zucchini;

fuzz_target!(|data: &[u8]| {
    // The first two bytes (little-endian) say how much of the rest is the old file.
    if data.len() < 2 {
        return;
    }
    let (len, rest) = data.split_at(2);
    let cut = (u16::from_le_bytes([len[0], len[1]]) as usize).min(rest.len());
    let (old, patch) = rest.split_at(cut);
    let _ = zucchini::parse(patch);
    let _ = zucchini::apply(old, patch, 1 << 16);
    let _ = zucchini::apply_brotli(old, patch, 1 << 16);
});
