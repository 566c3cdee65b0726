//! Zucchini's ELF disassemblers (`Ex86`, `Ex64`, `EA32`, `EA64`) on an ELF
//! image taken from the input: parsing, reading every reference type over
//! the whole image and its second half, writing every reference back, and
//! applying an identity patch with one zero delta per reference.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romkit::format::patch::zucchini::apply::make_disassembler;
use romkit::format::patch::zucchini::{self, ExeType};

fn identity_patch(image: &[u8], exe: &[u8; 4], refs: usize) -> Vec<u8> {
    let n = image.len() as u32;
    let crc = zucchini::crc32(image);
    let mut p = b"Zucc\x01\x00\x00\x00".to_vec();
    for v in [n, crc, n, crc, 1, 0, n, 0, n, u32::from_le_bytes(*exe)] {
        p.extend_from_slice(&v.to_le_bytes());
    }
    p.extend_from_slice(&1u16.to_le_bytes());
    let mut copy = Vec::new();
    let mut v = n;
    while v >= 0x80 {
        copy.push(v as u8 | 0x80);
        v >>= 7;
    }
    copy.push(v as u8);
    for b in [&[0u8][..], &[0], &copy, &[], &[], &[], &vec![0; refs]] {
        p.extend_from_slice(&(b.len() as u32).to_le_bytes());
        p.extend_from_slice(b);
    }
    p.extend_from_slice(&0u32.to_le_bytes());
    p
}

fuzz_target!(|data: &[u8]| {
    let exes = [
        (ExeType::ElfX86, b"Ex86"),
        (ExeType::ElfX64, b"Ex64"),
        (ExeType::ElfAArch32, b"EA32"),
        (ExeType::ElfAArch64, b"EA64"),
    ];
    for (exe, code) in exes {
        let Ok(d) = make_disassembler(exe, data) else {
            continue;
        };
        let len = data.len() as u32;
        let mut image = data.to_vec();
        let mut refs = 0;
        for g in d.groups() {
            let all = d.read(data, g.type_tag, 0, len);
            refs += all.len();
            let _ = d.read(data, g.type_tag, len / 2, len);
            for r in all {
                let _ = d.write(&mut image, g.type_tag, r);
            }
        }
        let _ = zucchini::apply(data, &identity_patch(data, code, refs), 1 << 20);
    }
});
