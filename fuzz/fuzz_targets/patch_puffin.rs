//! PUF1 patches: header, stream layouts, puffing the source, the inner
//! bsdiff or Zucchini patch, huffing back; plus the bare puff/huff codec.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romkit::format::patch::puffin;

fuzz_target!(|data: &[u8]| {
    // The first two bytes (little-endian) say how much of the rest is the old file.
    if data.len() < 2 {
        return;
    }
    let (len, rest) = data.split_at(2);
    let cut = (u16::from_le_bytes([len[0], len[1]]) as usize).min(rest.len());
    let (src, patch) = rest.split_at(cut);
    let _ = puffin::apply(src, patch, puffin::Limits::for_output(1 << 16, src.len() as u64));
    if let Ok((p, _)) = puffin::puff(src, 1 << 18) {
        let _ = puffin::huff(&p);
    }
    let _ = puffin::huff(patch);
});
