//! Zucchini's DEX disassembler on hostile DEX elements: parsing, reading
//! every reference type over the whole element and over a split, and writing
//! each reference's own target back (which must leave the bytes unchanged
//! when it is accepted).
#![no_main]

use libfuzzer_sys::fuzz_target;
use romkit::format::patch::zucchini::dex;
use romkit::format::patch::zucchini::disasm::Disassembler;

fuzz_target!(|data: &[u8]| {
    let Ok(d) = dex::new(data) else {
        return;
    };
    let mut copy = data.to_vec();
    let mid = data.len() as u32 / 2;
    for g in d.groups() {
        let refs = d.read(data, g.type_tag, 0, u32::MAX);
        assert!(refs.windows(2).all(|w| w[0].location < w[1].location));
        let low = d.read(data, g.type_tag, 0, mid);
        assert!(low.iter().eq(refs.iter().filter(|r| r.location < mid)));
        for r in refs {
            assert!(r.location as u64 + g.width as u64 <= d.file_size() as u64);
            if d.write(&mut copy, g.type_tag, r).is_ok() {
                assert_eq!(copy, data);
            }
            copy.copy_from_slice(data);
        }
    }
});
