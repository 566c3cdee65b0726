//! Debloat profiles: YAML parsing, rule validation and `extends` resolution
//! (against the shipped profiles), from text in memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(p) = romkit::debloat::profile::parse_str(&text, "fuzz.yaml") {
        assert!(!p.name.is_empty());
    }
});
