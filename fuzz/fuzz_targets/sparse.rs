//! Android sparse images: the indexed reader (`SparseFile::open`, the CRC
//! check over the expanded image, random reads through `ImageMap`), the
//! two stream readers (`check_stream`, `expand_head`) and the download-part
//! CRC-32s (read whole, and fed in 7-byte slices as a writer would) on the
//! same bytes.
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
    // Small downloads, so that chunks get cut.
    let max = 56 + 4096 * u64::from(data.get(28).copied().unwrap_or(0) % 8 + 1);
    if let (Ok(whole), Ok(h)) = (
        sparse::download_part_crcs(&mut &data[..], max),
        Header::parse(&data[..data.len().min(28)]),
    ) {
        let mut fed = sparse::DownloadCrcs::new(&h, max).expect("accepted whole");
        for piece in data[28..].chunks(7) {
            fed.update(piece).expect("accepted whole");
        }
        assert_eq!(fed.finish().expect("complete whole"), whole);
    }
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
