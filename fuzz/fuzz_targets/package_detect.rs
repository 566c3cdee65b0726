//! Package kind detection: `rom::sniff_bytes` on the first bytes, then
//! `Rom::open` on the whole input (zip, tgz, payload, sparse, super) and the
//! partition list and build facts every command starts from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romkit::rom::{Rom, sniff_bytes};
use romkit_fuzz::MemFile;

fuzz_target!(|data: &[u8]| {
    let _ = sniff_bytes(&data[..data.len().min(4100)]);
    let mem = MemFile::new(data);
    let Ok(rom) = Rom::open(&mem.path) else {
        return;
    };
    let _ = rom.partitions();
    let _ = rom.build_info();
    let _ = rom.partition_names();
});
