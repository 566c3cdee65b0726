//! The text files of a fastboot package: `md5sum.xml` (read, then
//! rewritten), the CRC lists and the official flash scripts (steps and
//! device checks). The first byte picks the reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romkit::format::{crclist, md5sum};
use romkit::rom::scripts;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 4 {
        0 => {
            if let Ok(digests) = md5sum::parse(&text) {
                let added = [("x.img".to_string(), "0".repeat(32))];
                let keep = |n: &str| n.len() % 2 == 0;
                let out =
                    md5sum::rewrite(&text, &digests, |n| keep(n).then(|| "f".repeat(32)), &added);
                // What was rewritten, a digest kept, reads back.
                if digests.iter().any(|d| keep(&d.name)) {
                    assert!(md5sum::parse(&out).is_ok());
                }
            }
        }
        1 => {
            let _ = crclist::parse_crclist(&text);
            let _ = crclist::parse_sparse(&text);
        }
        2 => {
            let _ = scripts::read_official(&text);
        }
        _ => {
            let _ = scripts::read_checks(&text);
        }
    }
});
