//! LP (dynamic partition) metadata of a super image: geometry (primary,
//! else backup), the metadata of slot 0 (primary, else backup copy), the
//! check of every copy `verify` makes, and the derived partition sizes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romkit::format::lp::Metadata;

fuzz_target!(|data: &[u8]| {
    let image = data.to_vec();
    let len = image.len() as u64;
    let Ok((meta, _notes)) = Metadata::read(&image, len, 0) else {
        return;
    };
    let _ = meta.check_all_copies(&image, len);
    for p in &meta.partitions {
        let _ = meta.extents_of(p);
        let _ = meta.partition_size(p);
    }
    for g in 0..meta.groups.len() {
        let _ = meta.group_used(g);
    }
    let _ = meta.virtual_ab();
    let _ = meta.metadata_area();
    // A read copy serializes back to something the reader accepts.
    let bytes = meta.serialize();
    assert!(!bytes.is_empty());
});
