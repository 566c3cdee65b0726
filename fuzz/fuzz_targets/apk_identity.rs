//! APK identity: zip, binary AndroidManifest.xml, resources.arsc (when the
//! version name is a resource) and the signing blocks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = romkit::apk::identify(data.to_vec());
});
