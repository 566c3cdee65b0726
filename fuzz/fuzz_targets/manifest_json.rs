//! Build manifests as `romkit diff` reads them: `Manifest::from_json`, then
//! the diff against itself and against an empty manifest in every output
//! format; a manifest that was read must write back to JSON that reads
//! again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romkit::manifest::{Manifest, diff::diff};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Manifest::from_json(data) else {
        return;
    };
    let same = diff(&m, &m);
    assert!(same.identical, "a manifest differs from itself");
    let empty = Manifest::new(m.input.clone());
    for d in [diff(&empty, &m), diff(&m, &empty)] {
        let _ = d.to_text();
        let _ = d.to_markdown();
        let _ = d.to_json();
    }
    let json = m.to_json();
    let again = Manifest::from_json(&json).expect("written manifest reads back");
    assert!(
        diff(&m, &again).identical,
        "round trip changed the manifest"
    );
    let _ = m.to_yaml();
});
