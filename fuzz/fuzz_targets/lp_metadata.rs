//! LP (dynamic partition) metadata of a super image: geometry (primary,
//! else backup), the metadata of slot 0 (primary, else backup copy), the
//! check of every copy `verify` makes, and the derived partition sizes.
//!
//! Every geometry and metadata copy carries a SHA-256 the fuzzer cannot
//! forge, so unless the input's first byte (in the reserved area the reader
//! never looks at) is odd, the target first writes the right checksums into
//! whatever the input holds; odd first bytes keep the checksums as they are,
//! to reach the damaged-copy paths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romkit::format::lp::{
    GEOMETRY_MAGIC, GEOMETRY_SIZE, Geometry, HEADER_MAGIC, Metadata, RESERVED_BYTES,
};
use sha2::{Digest, Sha256};

fn le32(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

fn fix_geometry(img: &mut [u8], at: usize) {
    let Some(g) = img.get_mut(at..at + 52) else {
        return;
    };
    if le32(g, 0) != Some(GEOMETRY_MAGIC) || le32(g, 4) != Some(52) {
        return;
    }
    g[8..40].fill(0);
    let sum = Sha256::digest(&g[..]);
    g[8..40].copy_from_slice(&sum);
}

fn fix_metadata(img: &mut [u8], at: u64) {
    let Ok(at) = usize::try_from(at) else { return };
    let Some(h) = img.get(at..at + 256) else {
        return;
    };
    if le32(h, 0) != Some(HEADER_MAGIC) {
        return;
    }
    let header_size = le32(h, 8).unwrap_or(0) as usize;
    let tables_size = le32(h, 44).unwrap_or(0) as usize;
    if header_size > 256 || header_size < 80 {
        return;
    }
    let start = at + header_size;
    let Some(tables) = img.get(start..start.saturating_add(tables_size)) else {
        return;
    };
    let tsum = Sha256::digest(tables);
    img[at + 48..at + 80].copy_from_slice(&tsum);
    img[at + 12..at + 44].fill(0);
    let hsum = Sha256::digest(&img[at..at + header_size]);
    img[at + 12..at + 44].copy_from_slice(&hsum);
}

fuzz_target!(|data: &[u8]| {
    let mut image = data.to_vec();
    if image.first().is_some_and(|b| b & 1 == 0) {
        for at in [RESERVED_BYTES, RESERVED_BYTES + GEOMETRY_SIZE] {
            fix_geometry(&mut image, at as usize);
        }
        let geo = image
            .get(RESERVED_BYTES as usize..)
            .and_then(|g| Geometry::parse(g, RESERVED_BYTES).ok());
        if let Some(g) = geo {
            for slot in 0..g.metadata_slot_count.min(4) {
                fix_metadata(&mut image, g.primary_offset(slot));
                fix_metadata(&mut image, g.backup_offset(slot));
            }
        }
    }
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
    // What `fastboot` and `build` do with read metadata: lay it out again.
    let _ = romkit::format::lp::respec(&meta, &[]).build();
    let bytes = meta.serialize();
    assert!(!bytes.is_empty());
});
