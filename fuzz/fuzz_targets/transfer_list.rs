//! Block-OTA transfer lists (`*.transfer.list`, versions 1-4).
#![no_main]

use libfuzzer_sys::fuzz_target;
use romkit::format::sdat::TransferList;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(list) = TransferList::parse(&text) {
        let _ = list.image_size();
    }
});
