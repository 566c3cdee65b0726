//! payload.bin header and `DeltaArchiveManifest`: `Payload::open` validates
//! the header, decodes and checks the manifest; then every read the
//! `inspect` and `verify` commands make from the metadata, and, when the
//! partitions are small (16 MiB in all), `verify` itself: every operation
//! decoded and hashed, failures recorded, nothing written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romkit::format::payload::extract::{self, Job, NoProgress};
use romkit::format::payload::{Header, Payload, header::HEADER_SIZE};
use romkit_fuzz::MemFile;

fuzz_target!(|data: &[u8]| {
    let _ = Header::parse(
        &data[..data.len().min(HEADER_SIZE as usize)],
        data.len() as u64,
    );
    let mem = MemFile::new(data);
    let Ok(payload) = Payload::open(mem.slice()) else {
        return;
    };
    let _ = payload.is_incremental();
    let _ = payload.has_metadata_signature();
    let _ = payload.has_payload_signature();
    let _ = payload.metadata_hash();
    let _ = payload.payload_signature_blob();
    let _ = payload.whole_file_pass(payload.has_payload_signature());
    for part in &payload.partitions {
        let _ = part.op_counts();
        let _ = part.first_incremental_op();
        // What `inspect` reads to name a partition's filesystem.
        let _ = payload.partition_head(part, 4096);
    }
    let total: u64 = payload.partitions.iter().map(|p| p.size).sum();
    if total <= 16 << 20 {
        let outcome = extract::run(
            &Job {
                payload: &payload,
                partitions: (0..payload.partitions.len()).collect(),
                outputs: None,
                verify: true,
                fail_fast: false,
                sources: Vec::new(),
                pages: None,
                jobs: 1,
            },
            &NoProgress,
        );
        assert_eq!(outcome.partitions.len(), payload.partitions.len());
    }
});
