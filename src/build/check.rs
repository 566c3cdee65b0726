//! Stage 7, check: the output is re-opened as any input would be and every
//! partition image in it is compared with what was packaged. A mismatch
//! removes the output: nothing unchecked stays under the final name.
//!
//! An OTA made from a full payload is checked operation by operation: every
//! blob against its `data_sha256_hash`, and every operation that is not the
//! source's own (same type, destination and data hash) decoded and compared
//! with the packaged image's bytes. An operation copied from the source
//! writes the source's bytes, which are the packaged image's there: a
//! partition left alone is the source's image, and an edited one keeps the
//! source's bytes outside what the edit changed (the operations over those
//! were decoded, and hash-checked, when the partition was decoded).
//!
//! A copied blob the decode read is compared by CRC-32 instead: the decode
//! recorded the CRC-32 of the very bytes it checked against the same
//! `data_sha256_hash` ([`crate::format::payload::BlobCrcs`]), so equal
//! CRC-32s say the blob was copied whole to where the output's manifest
//! points, at a tenth of a SHA-256's cost. A blob the decode never read (a
//! partition copied without decoding) is hashed as before.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::{BuiltPartition, OutputFormat, Space, sha256_file};
use crate::error::{Error, Result};
use crate::format::payload::decode::decode_into;
use crate::format::payload::{Operation, Partition, Payload};
use crate::output::Remover;
use crate::rom::Rom;
use crate::util::hex;

/// Re-opens the output and compares every partition image in it with what
/// was packaged: by SHA-256, or by CRC-32 for an image whose CRC-32 the
/// writer took as it read it (`crcs`; see [`read_back`]). `copied_from` is
/// the full payload an OTA output copied operations from, if any; such an
/// OTA's check reads the packaged images in `work`, and gives each to
/// `remover` once done with it.
pub(super) fn check_output(
    output: &Path,
    format: OutputFormat,
    (expected, crcs): (&[BuiltPartition], &[(String, u32)]),
    (work, remover): (&Path, &Remover),
    jobs: usize,
    copied_from: Option<&Payload>,
) -> Result<()> {
    if let (OutputFormat::Ota, Some(source)) = (format, copied_from) {
        return check_payload(output, source, expected, (work, remover));
    }
    let got = if format == OutputFormat::Images {
        expected
            .par_iter()
            .map(|p| {
                let f = output.join(format!("{}.img", p.name));
                Ok((p.name.clone(), Found::Sha256(sha256_file(&f)?)))
            })
            .collect::<Result<_>>()?
    } else {
        read_back(output, work, jobs, crcs)?
    };
    compare(output, expected, crcs, &got)
}

/// What the check found of one partition: its SHA-256 (hex) or, where the
/// writer took one, its CRC-32.
enum Found {
    Sha256(String),
    Crc32(u32),
}

/// Hashes every partition of the package `output`: a fastboot package is
/// read where its images lie (after its zip CRC-32s are checked); other
/// packages are extracted into `work` and hashed. A partition named in
/// `crcs` gets a CRC-32 instead of a SHA-256: its writer took the CRC-32 of
/// the image it read (whose SHA-256 the build knows), so equal CRC-32s say
/// the package holds that image, for a tenth of a SHA-256's cost.
fn read_back(
    output: &Path,
    work: &Path,
    jobs: usize,
    crcs: &[(String, u32)],
) -> Result<Vec<(String, Found)>> {
    use crate::rom::images::{DigestKind, ImageDigest};
    let rom = Rom::open(output)?;
    let names: Vec<String> = rom.partitions().into_iter().map(|p| p.name).collect();
    if let Some(pkg) = rom.images() {
        let wanted: Vec<(String, DigestKind)> = names
            .into_iter()
            .map(|n| {
                let kind = if crcs.iter().any(|(c, _)| *c == n) {
                    DigestKind::Crc32
                } else {
                    DigestKind::Sha256
                };
                (n, kind)
            })
            .collect();
        let digests = pkg.digests(&wanted, work)?;
        return Ok(digests
            .into_iter()
            .map(|(n, d)| match d {
                ImageDigest::Sha256(h) => (n, Found::Sha256(hex(&h))),
                ImageDigest::Crc32(c) => (n, Found::Crc32(c)),
            })
            .collect());
    }
    let dir = work.join("check");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let requests: Vec<(String, PathBuf)> = names
        .into_iter()
        .map(|n| {
            let path = dir.join(format!("{n}.img"));
            (n, path)
        })
        .collect();
    rom.extract_partitions(&requests, jobs, false)?;
    requests
        .par_iter()
        .map(|(n, p)| {
            let h = sha256_file(p)?;
            let _ = std::fs::remove_file(p);
            Ok((n.clone(), Found::Sha256(h)))
        })
        .collect()
}

fn compare(
    output: &Path,
    expected: &[BuiltPartition],
    crcs: &[(String, u32)],
    got: &[(String, Found)],
) -> Result<()> {
    let fail = |msg: String| Error::CheckFailed {
        file: output.to_path_buf(),
        msg,
    };
    for e in expected {
        let crc = crcs.iter().find(|(n, _)| *n == e.name).map(|(_, c)| *c);
        match (got.iter().find(|(n, _)| *n == e.name), crc) {
            (None, _) => {
                return Err(fail(format!(
                    "partition {} is missing from the output",
                    e.name
                )));
            }
            (Some((_, Found::Sha256(h))), _) if *h != e.sha256 => {
                return Err(fail(format!(
                    "partition {} reads back as sha256 {h}, but {} was packaged",
                    e.name, e.sha256
                )));
            }
            (Some((_, Found::Crc32(c))), Some(want)) if *c == want => {}
            (Some((_, Found::Crc32(c))), want) => {
                return Err(fail(format!(
                    "partition {} reads back with CRC-32 {c:08x}, but the image packaged \
                     (sha256 {}) was read with {}",
                    e.name,
                    e.sha256,
                    want.map_or("none".to_string(), |w| format!("{w:08x}"))
                )));
            }
            _ => {}
        }
    }
    if got.len() != expected.len() {
        return Err(fail(format!(
            "the output has {} partitions, {} were packaged",
            got.len(),
            expected.len()
        )));
    }
    Ok(())
}

/// Removes a written output (after a failed check or manifest write).
pub(super) fn remove_output(output: &Path, format: OutputFormat) {
    let _ = if format == OutputFormat::Images {
        std::fs::remove_dir_all(output)
    } else {
        std::fs::remove_file(output)
    };
}

/// Fails, before anything is packaged, when the output's partitions no
/// longer fit a dynamic partition group or the super device: an in-place
/// edit appends blocks when a replaced file or a directory does not fit in
/// freed ones. The message names the space, the bytes missing and the
/// partitions that grew.
pub(super) fn check_fits(input: &Path, space: &[Space], parts: &[BuiltPartition]) -> Result<()> {
    let Some(full) = space.iter().find(|s| s.used > s.size) else {
        return Ok(());
    };
    let grown: Vec<String> = parts
        .iter()
        .filter(|p| p.size > p.source_size && p.source_size > 0)
        .map(|p| format!("{} +{} bytes", p.name, p.size - p.source_size))
        .collect();
    let grown = if grown.is_empty() {
        String::new()
    } else {
        format!(" (grown: {})", grown.join(", "))
    };
    Err(Error::invalid(
        input,
        format!(
            "the output does not fit: {} needs {} bytes, {} more than its {}{grown}; \
             remove less, or build with --repack to write the partitions smaller",
            full.name,
            full.used,
            full.used - full.size,
            full.size
        ),
    ))
}

/// Checks the OTA `output` made with operations of `source`: see the
/// module's documentation.
fn check_payload(
    output: &Path,
    source: &Payload,
    expected: &[BuiltPartition],
    (work, remover): (&Path, &Remover),
) -> Result<()> {
    let fail = |msg: String| Error::CheckFailed {
        file: output.to_path_buf(),
        msg,
    };
    let rom = Rom::open(output)?;
    let out = rom
        .payload()
        .ok_or_else(|| fail("the output has no payload".into()))?;
    if out.partitions.len() != expected.len() {
        return Err(fail(format!(
            "the output has {} partitions, {} were packaged",
            out.partitions.len(),
            expected.len()
        )));
    }
    for e in expected {
        let part = out
            .partition(&e.name)
            .ok_or_else(|| fail(format!("partition {} is missing from the output", e.name)))?;
        let hash = part.hash.map(|h| hex(&h)).unwrap_or_default();
        if part.size != e.size || hash != e.sha256 {
            return Err(fail(format!(
                "partition {}: the payload says {} bytes with sha256 {hash}, but {} bytes with \
                 sha256 {} were packaged",
                e.name, part.size, e.size, e.sha256
            )));
        }
        let image = work.join(format!("{}.img", e.name));
        let from = source.partition(&e.name).map(|p| (source, p));
        check_ops(output, out, part, from, &image)?;
        remover.remove(&image);
    }
    Ok(())
}

/// Checks the operations of the output's partition `part` (see
/// [`check_payload`]); `source` is the payload it was made from and its
/// partition of that name; `image` is the packaged image, needed only when
/// an operation is not the source's own.
fn check_ops(
    output: &Path,
    out: &Payload,
    part: &Partition,
    source: Option<(&Payload, &Partition)>,
    image: &Path,
) -> Result<()> {
    let fail = |msg: String| Error::CheckFailed {
        file: output.to_path_buf(),
        msg,
    };
    // The source's operations by data hash (ZERO and others without data
    // under none).
    let mut by_hash: HashMap<Option<[u8; 32]>, Vec<&Operation>> = HashMap::new();
    for o in source.iter().flat_map(|(_, s)| &s.ops) {
        by_hash.entry(o.data_hash).or_default().push(o);
    }
    // The source's operation `op` copies, if it is one.
    let own_op = |op: &Operation| {
        by_hash
            .get(&op.data_hash)?
            .iter()
            .copied()
            .find(|o| o.kind == op.kind && o.dst == op.dst)
    };
    let own = |op: &Operation| own_op(op).is_some();
    let crcs = source.map(|(p, _)| &p.blob_crcs);
    let source = source.map(|(_, s)| s);
    let all_own = part.ops.iter().all(own);
    if all_own && source.is_some_and(|s| s.hash != part.hash || s.size != part.size) {
        return Err(fail(format!(
            "partition {}: the source's operations, but not the source's image",
            part.name
        )));
    }
    let file = if all_own {
        None
    } else {
        Some(std::fs::File::open(image).map_err(|e| Error::io(image, e))?)
    };
    part.ops.par_iter().try_for_each(|op| {
        let what = || format!("partition {}, operation {}", part.name, op.index);
        let blob = out
            .read(op.data_offset, op.data_len)
            .map_err(|e| Error::payload(output, e))?;
        let recorded = own_op(op)
            .filter(|o| o.data_len == op.data_len)
            .and_then(|o| crcs?.get(o.data_offset, o.data_len));
        match recorded {
            _ if op.data_len == 0 => {}
            Some(want) => {
                let got = crc32fast::hash(&blob);
                if got != want {
                    return Err(fail(format!(
                        "{}: its data reads back with CRC-32 {got:08x}, the source's blob has \
                         {want:08x}",
                        what()
                    )));
                }
            }
            None => {
                let got: [u8; 32] = Sha256::digest(&blob).into();
                if op.data_hash != Some(got) {
                    return Err(fail(format!("{}: data_sha256_hash mismatch", what())));
                }
            }
        }
        let Some(file) = file.as_ref().filter(|_| !own(op)) else {
            return Ok(());
        };
        let kind = op
            .kind
            .map_err(|v| fail(format!("{}: unknown type {v}", what())))?;
        let mut decoded = vec![0u8; op.dst_len as usize];
        decode_into(kind, &blob, &mut decoded).map_err(|e| fail(format!("{}: {e}", what())))?;
        let mut at = 0usize;
        for r in &op.dst {
            let mut want = vec![0u8; r.len as usize];
            std::os::unix::fs::FileExt::read_exact_at(file, &mut want, r.offset)
                .map_err(|e| Error::io(image, e))?;
            if decoded[at..at + r.len as usize] != want[..] {
                return Err(fail(format!(
                    "{}: decodes to other bytes than the packaged image's at offset {}",
                    what(),
                    r.offset
                )));
            }
            at += r.len as usize;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::payload::extract::check_partition as check_payload_partition;
    use crate::format::payload::writer::{
        ImageInput, PayloadInput, PayloadOptions, prepare_payload, prepare_payload_from,
    };
    use crate::format::source::{Donor, FileSlice};

    fn built(name: &str, sha256: &str) -> BuiltPartition {
        BuiltPartition {
            name: name.into(),
            status: crate::manifest::PartitionStatus::Passthrough,
            changed_blocks: None,
            avb_footer: None,
            filesystem: None,
            source_size: 4096,
            size: 4096,
            sha256: sha256.into(),
        }
    }

    /// A partition whose CRC-32 the writer took is compared by it; others
    /// by SHA-256; a mismatch of either, or a CRC-32 where the writer took
    /// none, fails naming the partition.
    #[test]
    fn partitions_compare_by_what_the_writer_took() {
        let out = Path::new("out.zip");
        let expected = [built("system", "aa"), built("boot", "bb")];
        let crcs = [("system".to_string(), 0x1234_5678)];
        let got = |crc: u32, sha: &str| {
            vec![
                ("system".to_string(), Found::Crc32(crc)),
                ("boot".to_string(), Found::Sha256(sha.into())),
            ]
        };
        compare(out, &expected, &crcs, &got(0x1234_5678, "bb")).unwrap();
        let err = compare(out, &expected, &crcs, &got(0x1234_5679, "bb"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("partition system reads back with CRC-32 12345679"),
            "{err}"
        );
        let err = compare(out, &expected, &crcs, &got(0x1234_5678, "bc"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("partition boot reads back as sha256 bc"),
            "{err}"
        );
        let err = compare(out, &expected, &[], &got(0x1234_5678, "bb"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("was read with none"), "{err}");
    }

    /// A copied blob the decode checked is read back by CRC-32 against the
    /// decode's record; one it did not read, by SHA-256. Either way a
    /// damaged byte fails the check, and its message says which was used.
    #[test]
    fn copied_blobs_are_checked_against_the_decodes_records() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let img = d.join("system.img");
        std::fs::write(&img, crate::util::noise_then_text(3 << 16, 7)).unwrap();
        let opts = PayloadOptions {
            chunk_size: 1 << 16,
            ..PayloadOptions::default()
        };
        let write = |inputs: &[PayloadInput<'_>], to: &Path| {
            let p = prepare_payload_from(inputs, &opts, tempfile::tempfile().unwrap(), to).unwrap();
            let mut f = std::fs::File::create(to).unwrap();
            p.write_to(&mut f, to, &mut Donor::default()).unwrap();
        };
        let inputs = [ImageInput {
            name: "system".into(),
            path: img.clone(),
        }];
        let made = prepare_payload(&inputs, &opts, tempfile::tempfile().unwrap(), d).unwrap();
        let src_path = d.join("src.bin");
        let mut f = std::fs::File::create(&src_path).unwrap();
        made.write_to(&mut f, &src_path, &mut Donor::default())
            .unwrap();
        let open = |p: &Path| Payload::open(FileSlice::open(p).unwrap()).unwrap();
        let source = open(&src_path);
        let out_path = d.join("out.bin");
        write(
            &[PayloadInput::Copy {
                payload: &source,
                partition: "system",
            }],
            &out_path,
        );
        let check = |source: &Payload| {
            let out = open(&out_path);
            let part = out.partition("system").unwrap();
            let from = source.partition("system").map(|p| (source, p));
            check_ops(&out_path, &out, part, from, &img)
        };
        check(&source).unwrap();

        // The decode records what it checks.
        source.blob_crcs.keep();
        assert!(check_payload_partition(&source, 0));
        check(&source).unwrap();

        // One byte of operation 2's blob damaged in the output.
        let out = open(&out_path);
        let op = &out.partition("system").unwrap().ops[2];
        assert!(op.data_len > 100);
        let mut bytes = std::fs::read(&out_path).unwrap();
        bytes[(op.data_offset + 100) as usize] ^= 0x40;
        std::fs::write(&out_path, &bytes).unwrap();
        let err = check(&source).unwrap_err().to_string();
        assert!(
            err.contains("operation 2") && err.contains("reads back with CRC-32"),
            "{err}"
        );
        // Without the records the same damage fails the SHA-256.
        let fresh = open(&src_path);
        let err = check(&fresh).unwrap_err().to_string();
        assert!(
            err.contains("operation 2") && err.contains("data_sha256_hash mismatch"),
            "{err}"
        );
    }
}
