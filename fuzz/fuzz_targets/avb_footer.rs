//! AVB footers of partition images: the footer, the vbmeta blob and its
//! hashtree descriptor (`read_hashtree_footer`), then, for what validates,
//! the hash tree and FEC recomputed and compared (`check_hashtree`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use romkit::format::avb::footer::{check_hashtree, read_hashtree_footer};

fuzz_target!(|data: &[u8]| {
    let image = data.to_vec();
    if let Ok(Some(found)) = read_hashtree_footer(&image, image.len() as u64) {
        let _ = check_hashtree(&image, &found);
    }
});
