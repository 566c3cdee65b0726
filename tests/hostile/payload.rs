//! payload.bin operations writing outside their partition or reading
//! outside the data blob. The sample's payload is decoded, one field bent,
//! re-encoded and put back into an OTA zip without payload_properties.txt
//! (whose hashes would otherwise stop every run before the operations are
//! looked at).

use prost::Message;
use romkit::format::payload::proto::{DeltaArchiveManifest, InstallOperation};

use crate::harness::{Case, Expect, INVALID};
use crate::zipraw;

/// (manifest, data blob) of the sample's payload.bin.
fn sample_payload() -> (DeltaArchiveManifest, Vec<u8>) {
    let entries = zipraw::sample_entries();
    let p = &entries
        .iter()
        .find(|e| e.name == b"payload.bin")
        .unwrap()
        .data;
    let msize = u64::from_be_bytes(p[12..20].try_into().unwrap()) as usize;
    let ssize = u32::from_be_bytes(p[20..24].try_into().unwrap()) as usize;
    let m = DeltaArchiveManifest::decode(&p[24..24 + msize]).unwrap();
    (m, p[24 + msize + ssize..].to_vec())
}

/// An OTA zip (metadata + payload.bin) of the sample with `edit` applied
/// to the first operation of `system`.
fn ota_with(edit: impl FnOnce(&mut InstallOperation, u64)) -> Vec<u8> {
    let (mut m, blob) = sample_payload();
    let blob_len = blob.len() as u64;
    let part = m
        .partitions
        .iter_mut()
        .find(|p| p.partition_name.as_deref() == Some("system"))
        .unwrap();
    edit(&mut part.operations[0], blob_len);
    let payload = crate::common::raw_payload(&m, &blob);
    let mut entries = zipraw::sample_entries();
    entries.retain(|e| e.name != b"payload_properties.txt");
    for e in &mut entries {
        if e.name == b"payload.bin" {
            *e = zipraw::stored("payload.bin", &payload);
        }
    }
    zipraw::build(&entries)
}

#[test]
fn operations_outside_their_partition_or_blob() {
    type Edit = Box<dyn FnOnce(&mut InstallOperation, u64)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "dst_extents past new_partition_info.size",
            Box::new(|op: &mut InstallOperation, _| {
                // system is 1 MiB: 256 blocks.
                op.dst_extents[0].start_block = Some(250);
            }),
        ),
        (
            "num_blocks 2^40",
            Box::new(|op: &mut InstallOperation, _| op.dst_extents[0].num_blocks = Some(1 << 40)),
        ),
        (
            "start_block overflowing",
            Box::new(|op: &mut InstallOperation, _| {
                op.dst_extents[0].start_block = Some(u64::MAX - 1)
            }),
        ),
        (
            "data_offset past the blob",
            Box::new(|op: &mut InstallOperation, blob| op.data_offset = Some(blob + 4096)),
        ),
        (
            "data_length past the blob",
            Box::new(|op: &mut InstallOperation, _| op.data_length = Some(1 << 50)),
        ),
        (
            "data_offset + data_length overflowing",
            Box::new(|op: &mut InstallOperation, _| {
                op.data_offset = Some(u64::MAX - 10);
                op.data_length = Some(100);
            }),
        ),
    ];
    for (what, edit) in cases {
        let case = Case::new(&format!("payload {what}"), "ota.zip", &ota_with(edit));
        // Every message names the partition; exit 3: the manifest is invalid.
        case.check_package(Expect::Fail(INVALID, "system"));
    }
}

#[test]
fn partition_claiming_a_petabyte() {
    let (mut m, blob) = sample_payload();
    let part = m
        .partitions
        .iter_mut()
        .find(|p| p.partition_name.as_deref() == Some("system"))
        .unwrap();
    part.new_partition_info.as_mut().unwrap().size = Some(1 << 50);
    let payload = crate::common::raw_payload(&m, &blob);
    let mut entries = zipraw::sample_entries();
    entries.retain(|e| e.name != b"payload_properties.txt");
    for e in &mut entries {
        if e.name == b"payload.bin" {
            *e = zipraw::stored("payload.bin", &payload);
        }
    }
    let case = Case::new(
        "payload system size 1 PiB",
        "ota.zip",
        &zipraw::build(&entries),
    );
    case.check_package(Expect::Fail(INVALID, "system"));
}
