//! Xiaomi version codes (`OS2.0.205.0.VNCCNXM`, `V14.0.5.0.TKHCNXM`) and the
//! build facts read around them: OTA metadata key/values and package file
//! names.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use romkit::rom::{BuildInfo, VersionCode, ota};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(v) = VersionCode::parse(&text) {
        assert_eq!(VersionCode::parse(&v.code).as_ref(), Some(&v));
    }
    let kv = ota::parse_key_values(&text);
    let _ = BuildInfo::from_metadata_opt(&kv, None);
    if !text.contains(['/', '\0']) {
        let _ = BuildInfo::from_file_name(Path::new(text.as_ref()));
    }
});
