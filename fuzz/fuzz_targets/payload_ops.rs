//! Operation decoding and application: builds a one-partition full payload
//! from the input (operation types, destination extents and data blobs all
//! come from the fuzz bytes), opens it with `Payload::open` and runs the
//! extractor on it, verifying, into an in-memory output file. Partitions are
//! at most 64 blocks of 4 KiB.
//!
//! Input layout, repeated until the bytes run out, after one byte of
//! partition size in blocks:
//! `[type][flags][dst start][dst blocks][len lo][len hi][len bytes of data]`.
//! `flags` bit 0: record the blob's SHA-256; bit 1: a second extent right
//! after the first; bit 2: record a wrong hash instead.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use romkit::format::payload::extract::{self, Job, NoProgress, OutputFile};
use romkit::format::payload::proto::{Extent, InstallOperation, PartitionInfo, PartitionUpdate};
use romkit::format::payload::{DeltaArchiveManifest, Header, Payload};
use romkit_fuzz::MemFile;
use sha2::{Digest, Sha256};

const BLOCK: u64 = 4096;
const MAX_BLOCKS: u64 = 64;

fn build(data: &[u8]) -> Option<Vec<u8>> {
    let (&size_blocks, mut rest) = data.split_first()?;
    let size_blocks = u64::from(size_blocks) % (MAX_BLOCKS + 1);
    let mut ops = Vec::new();
    let mut blobs = Vec::new();
    while rest.len() >= 6 && ops.len() < 64 {
        let (h, tail) = rest.split_at(6);
        let kind = i32::from(h[0] % 16);
        let flags = h[1];
        let start = u64::from(h[2]) % (MAX_BLOCKS + 2);
        let blocks = u64::from(h[3]) % 8;
        let len = usize::from(u16::from_le_bytes([h[4], h[5]])).min(tail.len());
        let (blob, tail) = tail.split_at(len);
        rest = tail;
        let mut dst = vec![Extent::new(start, blocks)];
        if flags & 2 != 0 {
            dst.push(Extent::new(start + blocks, 1));
        }
        let hash = if flags & 4 != 0 {
            Some(vec![0xAB; 32])
        } else if flags & 1 != 0 {
            Some(Sha256::digest(blob).to_vec())
        } else {
            None
        };
        ops.push(InstallOperation {
            r#type: Some(kind),
            data_offset: Some(blobs.len() as u64),
            data_length: Some(blob.len() as u64),
            dst_extents: dst,
            data_sha256_hash: hash,
            ..Default::default()
        });
        blobs.extend_from_slice(blob);
    }
    let manifest = DeltaArchiveManifest {
        block_size: Some(BLOCK as u32),
        minor_version: Some(0),
        partitions: vec![PartitionUpdate {
            partition_name: Some("system".into()),
            new_partition_info: Some(PartitionInfo {
                size: Some(size_blocks * BLOCK),
                hash: Some(vec![0; 32]),
            }),
            operations: ops,
            ..Default::default()
        }],
        ..Default::default()
    }
    .encode_to_vec();
    let header = Header {
        version: 2,
        manifest_size: manifest.len() as u64,
        metadata_signature_size: 0,
    };
    let mut out = header.to_bytes().to_vec();
    out.extend_from_slice(&manifest);
    out.extend_from_slice(&blobs);
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    // SAFETY (of the environment change): the targets are single-threaded
    // until the extractor starts its workers, after this call.
    unsafe { std::env::set_var("ROMKIT_NO_DIRECT_IO", "1") };
    let Some(bytes) = build(data) else { return };
    let mem = MemFile::new(&bytes);
    let Ok(payload) = Payload::open(mem.slice()) else {
        return;
    };
    let part = &payload.partitions[0];
    let _ = payload.partition_head(part, 4096);
    let out = MemFile::new(&[]);
    if out.file.set_len(part.size).is_err() {
        return;
    }
    let file = out.file.try_clone().expect("dup memfd");
    let outcome = extract::run(
        &Job {
            payload: &payload,
            partitions: vec![0],
            outputs: Some(vec![OutputFile::new(file, out.path.clone(), true)]),
            verify: true,
            fail_fast: false,
            sources: Vec::new(),
            pages: None,
            jobs: 1,
        },
        &NoProgress,
    );
    assert_eq!(outcome.partitions.len(), 1);
    let _ = outcome.partitions[0].ok();
});
