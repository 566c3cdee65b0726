//! Android sparse images: the indexed reader (`SparseFile::open`, the CRC
//! check over the expanded image, random reads through `ImageMap`) and the
//! two stream readers (`check_stream`, `expand_head`) on the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romkit::format::image::ImageMap;
use romkit::format::sparse::{self, Header, SparseFile};
use romkit_fuzz::MemFile;

fuzz_target!(|data: &[u8]| {
    if Header::is_sparse(data) {
        let _ = Header::parse(&data[..data.len().min(28)]);
    }
    let _ = sparse::check_stream(&mut &data[..]);
    let _ = sparse::expand_head(&mut &data[..], 8192);
    let mem = MemFile::new(data);
    let Ok(sf) = SparseFile::open(mem.slice()) else {
        return;
    };
    let _ = sf.has_checksums();
    let _ = sf.check_crcs();
    let size = sf.image_size();
    let Ok(map) = ImageMap::from_sparse(vec![sf]) else {
        return;
    };
    let mut buf = [0u8; 4096];
    for off in [0, size / 3, size.saturating_sub(4096)] {
        let n = (size - off.min(size)).min(4096) as usize;
        let _ = map.read_at(&mut buf[..n], off);
    }
    let _ = map.data_bytes(0, size);
});
