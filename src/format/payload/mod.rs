//! update_engine's `payload.bin`: the A/B OTA payload format.
//!
//! Layout (major version 2):
//! ```text
//! header (24 bytes) | manifest | metadata signature | data blobs ... | payload signature
//! ```
//! Every operation's data lives at `data_offset` within the data section, which
//! starts after the metadata signature. The payload signature blob sits at
//! `signatures_offset` within the same data section, normally last.
//!
//! [`Payload::open`] reads and validates the header and manifest; every offset,
//! length and extent is checked against the real payload length and the
//! partition sizes here, once, so the extraction code can trust them.

mod blobs;
pub mod decode;
pub mod delta;
pub mod extract;
pub mod header;
pub mod proto;
pub mod reuse;
pub mod sign;
pub mod verity;
pub mod writer;

use std::collections::HashMap;

use prost::Message;
use sha2::{Digest, Sha256};

pub use crate::format::is_safe_partition_name;
use crate::format::source::FileSlice;
pub use header::Header;
pub use proto::{DeltaArchiveManifest, OpType};

/// Partitions larger than this are refused before anything is allocated.
/// The largest real dynamic partitions are a few tens of GiB.
pub const MAX_PARTITION_SIZE: u64 = 1 << 40;

/// Largest output of a single data-carrying operation that romkit buffers.
/// update_engine's generator splits full images into 2 MiB operations; a few
/// tools use bigger chunks, none anywhere near this.
pub const MAX_OP_OUTPUT: u64 = 256 << 20;

/// What is wrong with a payload. Messages name the field, the value and where.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The payload ends before a structure it declares.
    #[error(
        "payload truncated: the {what} at offset {offset} needs {need} bytes, only {have} remain"
    )]
    Truncated {
        /// The structure cut short.
        what: &'static str,
        /// Where it starts.
        offset: u64,
        /// Bytes it needs.
        need: u64,
        /// Bytes available.
        have: u64,
    },
    /// The file does not start with `CrAU`.
    #[error("not a payload: magic at offset 0 is {found:02x?}, expected \"CrAU\"")]
    BadMagic {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// Major version other than 2.
    #[error(
        "unsupported payload major version {version} at offset 4 (romkit reads version 2, used since Android 7)"
    )]
    UnsupportedVersion {
        /// The version found.
        version: u64,
    },
    /// A header or manifest field has an impossible value.
    #[error("{field} = {value} (at offset {offset}) is invalid: {why}")]
    Field {
        /// Field name.
        field: &'static str,
        /// Byte offset of the field or the structure holding it.
        offset: u64,
        /// The value found.
        value: u64,
        /// Why it cannot be right.
        why: String,
    },
    /// The manifest is not a decodable `DeltaArchiveManifest`.
    #[error("manifest ({size} bytes at offset 24) is not a valid DeltaArchiveManifest: {source}")]
    Manifest {
        /// Manifest size.
        size: u64,
        /// The protobuf error.
        source: prost::DecodeError,
    },
    /// A partition entry is unusable.
    #[error("partition {partition}: {why}")]
    Partition {
        /// Partition name (or its index if the name itself is the problem).
        partition: String,
        /// What is wrong.
        why: String,
    },
    /// An operation is structurally invalid.
    #[error("partition {partition}, operation {index} ({kind}): {why}")]
    Op {
        /// Partition name.
        partition: String,
        /// Operation index within the partition, as in the manifest.
        index: usize,
        /// Operation type name.
        kind: String,
        /// What is wrong.
        why: String,
    },
    /// An operation's data does not match its `data_sha256_hash`.
    #[error(
        "partition {partition}, operation {index} ({kind}, data at payload offset {offset}, {len} bytes): data_sha256_hash mismatch: expected {expected}, got {actual}"
    )]
    OpHash {
        /// Partition name.
        partition: String,
        /// Operation index.
        index: usize,
        /// Operation type name.
        kind: String,
        /// Absolute offset of the data in the payload.
        offset: u64,
        /// Data length.
        len: u64,
        /// Hash in the manifest (hex).
        expected: String,
        /// Hash of the data (hex).
        actual: String,
    },
    /// A rebuilt partition does not match `new_partition_info.hash`.
    #[error(
        "partition {partition}: new_partition_info.hash mismatch: expected {expected}, got {actual}"
    )]
    PartitionHash {
        /// Partition name.
        partition: String,
        /// Hash in the manifest (hex).
        expected: String,
        /// Hash of the extracted image (hex).
        actual: String,
    },
    /// Compressed data could not be decoded to exactly the declared size.
    #[error("partition {partition}, operation {index} ({kind}): {why}")]
    Decode {
        /// Partition name.
        partition: String,
        /// Operation index.
        index: usize,
        /// Operation type name.
        kind: String,
        /// What the decoder found.
        why: decode::DecodeError,
    },
    /// The payload is incremental and no source image was given.
    #[error(
        "incremental (delta) payload: partition {partition}, operation {index} is {kind}, which needs the previous build's partition; give it with --source BASE (a full package, a folder of images or an image), or start from BASE with --apply"
    )]
    Incremental {
        /// Partition name.
        partition: String,
        /// Operation index.
        index: usize,
        /// Operation type name.
        kind: String,
    },
    /// The source image is not the one the payload was made from: its size
    /// or SHA-256 differs from `old_partition_info`.
    #[error(
        "partition {partition}, operation {index} ({kind}) and every later one reading it: the source image is not the one this payload updates: {why}"
    )]
    OldPartition {
        /// Partition name.
        partition: String,
        /// The first operation that reads the source.
        index: usize,
        /// Its type name.
        kind: String,
        /// What differs.
        why: String,
    },
    /// An operation's source blocks do not match its `src_sha256_hash`.
    #[error(
        "partition {partition}, operation {index} ({kind}): src_sha256_hash mismatch: the source image is not the one this payload updates (expected {expected}, source blocks hash to {actual})"
    )]
    SourceHash {
        /// Partition name.
        partition: String,
        /// Operation index.
        index: usize,
        /// Operation type name.
        kind: String,
        /// Hash in the manifest (hex).
        expected: String,
        /// Hash of the source blocks (hex).
        actual: String,
    },
    /// A diff operation's patch is malformed or cannot be applied.
    #[error("partition {partition}, operation {index} ({kind}): {why}")]
    Patch {
        /// Partition name.
        partition: String,
        /// Operation index.
        index: usize,
        /// Operation type name.
        kind: String,
        /// What the patch codec found.
        why: String,
    },
    /// A signature is missing, malformed or does not verify.
    #[error("{what}: {why}")]
    Signature {
        /// Which signature (`metadata signature`, `payload signature`).
        what: &'static str,
        /// What is wrong.
        why: String,
    },
    /// Writing an extracted image failed (or its writer stopped).
    #[error("{}: {source}", path.display())]
    Io {
        /// The image file written.
        path: std::path::PathBuf,
        /// Where the write started, when one did.
        offset: Option<u64>,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Reading the payload failed.
    #[error("read error at payload offset {offset}: {source}")]
    Read {
        /// Where the read started.
        offset: u64,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl PayloadError {
    /// Whether this is a failed check (exit 1) rather than invalid input (exit 3).
    pub fn is_check_failure(&self) -> bool {
        matches!(
            self,
            PayloadError::OpHash { .. }
                | PayloadError::PartitionHash { .. }
                | PayloadError::OldPartition { .. }
                | PayloadError::SourceHash { .. }
                | PayloadError::Signature { .. }
        )
    }
}

/// One destination range of an operation, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// Offset in the partition.
    pub offset: u64,
    /// Length.
    pub len: u64,
}

/// A validated operation.
#[derive(Clone, Debug)]
pub struct Operation {
    /// Index within its partition, as in the manifest.
    pub index: usize,
    /// Type, or `Err(wire value)` for a type romkit does not know.
    pub kind: Result<OpType, i32>,
    /// Absolute offset of the data in the payload (meaningless when `data_len` is 0).
    pub data_offset: u64,
    /// Data length.
    pub data_len: u64,
    /// Destination ranges in bytes, in the order the output fills them.
    pub dst: Vec<ByteRange>,
    /// Total destination bytes.
    pub dst_len: u64,
    /// `data_sha256_hash`, when present and 32 bytes long.
    pub data_hash: Option<[u8; 32]>,
    /// Source ranges in bytes (of the old partition), in the order the
    /// operation reads them.
    pub src: Vec<ByteRange>,
    /// Total source bytes.
    pub src_len: u64,
    /// `src_sha256_hash`, when present and 32 bytes long.
    pub src_hash: Option<[u8; 32]>,
}

impl Operation {
    /// Type name for messages and listings.
    pub fn kind_name(&self) -> String {
        match self.kind {
            Ok(k) => k.name().to_string(),
            Err(v) => format!("UNKNOWN({v})"),
        }
    }
}

/// A validated partition.
#[derive(Clone, Debug)]
pub struct Partition {
    /// Name, checked to be a safe file name.
    pub name: String,
    /// Size of the new image in bytes.
    pub size: u64,
    /// SHA-256 of the new image, when the manifest carries one.
    pub hash: Option<[u8; 32]>,
    /// Size of the old image (`old_partition_info.size`), for incremental payloads.
    pub old_size: Option<u64>,
    /// SHA-256 of the old image (`old_partition_info.hash`), for incremental payloads.
    pub old_hash: Option<[u8; 32]>,
    /// The operations, in manifest order.
    pub ops: Vec<Operation>,
    /// The hash tree and FEC the device computes after the operations.
    pub verity: Option<verity::PartitionVerity>,
}

impl Partition {
    /// The first operation that needs the old partition, if any.
    pub fn first_incremental_op(&self) -> Option<&Operation> {
        self.ops
            .iter()
            .find(|o| o.kind.map(|k| k.needs_source()).unwrap_or(true))
    }

    /// Operation count per type name, sorted by name.
    pub fn op_counts(&self) -> Vec<(String, usize)> {
        let mut m: std::collections::BTreeMap<String, usize> = Default::default();
        for op in &self.ops {
            *m.entry(op.kind_name()).or_default() += 1;
        }
        m.into_iter().collect()
    }
}

/// An opened, validated payload.
#[derive(Debug)]
pub struct Payload {
    /// Where the payload bytes are.
    pub source: FileSlice,
    /// The header.
    pub header: Header,
    /// The decoded manifest, as found.
    pub manifest: DeltaArchiveManifest,
    /// Block size of every extent.
    pub block_size: u64,
    /// Validated partitions, in manifest order.
    pub partitions: Vec<Partition>,
    /// CRC-32s of the blobs read so far (see [`BlobCrcs`]).
    pub blob_crcs: BlobCrcs,
}

/// The CRC-32 of every blob read whole since [`BlobCrcs::keep`], by data
/// offset and length.
///
/// A payload written from this one copies most of its blobs, and the zip
/// entry it goes into needs its CRC-32 before its first byte. A build that
/// will write one calls [`BlobCrcs::keep`] before it decodes; the extractor
/// then records each blob it reads and checks against its
/// `data_sha256_hash` (about 0.07 s per GB, beside the SHA-256), and the
/// copied blobs' CRC-32s are combined from these instead of read once more
/// (see `writer::PreparedPayload::crc32`). The build's output check compares
/// the copied blobs it reads back with these, not by SHA-256 again.
/// Nothing is recorded otherwise, and nothing unchecked.
#[derive(Debug, Default)]
pub struct BlobCrcs {
    on: std::sync::atomic::AtomicBool,
    map: std::sync::Mutex<HashMap<(u64, u64), u32>>,
}

impl BlobCrcs {
    /// Starts recording.
    pub fn keep(&self) {
        self.on.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether [`BlobCrcs::keep`] was called.
    pub fn wanted(&self) -> bool {
        self.on.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records that the `len` bytes at data offset `offset` have CRC-32 `crc`.
    pub fn record(&self, offset: u64, len: u64, crc: u32) {
        if let Ok(mut m) = self.map.lock() {
            m.insert((offset, len), crc);
        }
    }

    /// The CRC-32 of the `len` bytes at data offset `offset`, if recorded.
    pub fn get(&self, offset: u64, len: u64) -> Option<u32> {
        self.map.lock().ok()?.get(&(offset, len)).copied()
    }
}

impl Payload {
    /// Reads the header and manifest from `source` and validates everything.
    pub fn open(source: FileSlice) -> Result<Self, PayloadError> {
        let len = source.len();
        let head_len = header::HEADER_SIZE.min(len) as usize;
        let mut head = vec![0u8; head_len];
        source
            .read_exact_at(&mut head, 0)
            .map_err(|e| PayloadError::Read {
                offset: 0,
                source: e,
            })?;
        let header = Header::parse(&head, len)?;
        let manifest_bytes = source
            .read_vec(header::HEADER_SIZE, header.manifest_size)
            .map_err(|e| PayloadError::Read {
                offset: header::HEADER_SIZE,
                source: e,
            })?;
        let manifest = DeltaArchiveManifest::decode(&manifest_bytes[..]).map_err(|e| {
            PayloadError::Manifest {
                size: header.manifest_size,
                source: e,
            }
        })?;
        let block_size = u64::from(manifest.block_size.unwrap_or(4096));
        if !block_size.is_power_of_two() || !(512..=(1 << 20)).contains(&block_size) {
            return Err(PayloadError::Field {
                field: "block_size",
                offset: header::HEADER_SIZE,
                value: block_size,
                why: "must be a power of two between 512 and 1 MiB".into(),
            });
        }
        let data_start = header.data_offset();
        let data_len = len - data_start;
        if let (Some(off), Some(size)) = (manifest.signatures_offset, manifest.signatures_size) {
            if off.checked_add(size).is_none_or(|e| e > data_len) {
                return Err(PayloadError::Truncated {
                    what: "payload signature",
                    offset: data_start.saturating_add(off),
                    need: size,
                    have: data_len.saturating_sub(off),
                });
            }
            if size > header::MAX_SIGNATURE_SIZE {
                return Err(PayloadError::Field {
                    field: "signatures_size",
                    offset: header::HEADER_SIZE,
                    value: size,
                    why: format!("must be at most {}", header::MAX_SIGNATURE_SIZE),
                });
            }
        }
        let mut partitions = Vec::with_capacity(manifest.partitions.len());
        let mut seen = HashMap::new();
        for (pi, p) in manifest.partitions.iter().enumerate() {
            let part = validate_partition(pi, p, block_size, data_start, data_len)?;
            if let Some(prev) = seen.insert(part.name.clone(), pi) {
                return Err(PayloadError::Partition {
                    partition: part.name,
                    why: format!("listed twice in the manifest (entries {prev} and {pi})"),
                });
            }
            partitions.push(part);
        }
        Ok(Payload {
            source,
            header,
            manifest,
            block_size,
            partitions,
            blob_crcs: BlobCrcs::default(),
        })
    }

    /// Looks a partition up by name.
    pub fn partition(&self, name: &str) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.name == name)
    }

    /// Whether any partition needs the previous build (incremental payload).
    pub fn is_incremental(&self) -> bool {
        self.partitions
            .iter()
            .any(|p| p.first_incremental_op().is_some())
    }

    /// Whether the payload carries a metadata signature blob.
    pub fn has_metadata_signature(&self) -> bool {
        self.header.metadata_signature_size > 0
    }

    /// Whether the payload carries a payload signature blob.
    pub fn has_payload_signature(&self) -> bool {
        self.manifest.signatures_size.unwrap_or(0) > 0
    }

    /// SHA-256 of header + manifest: what the metadata signature signs and what
    /// `METADATA_HASH` in payload_properties.txt records.
    pub fn metadata_hash(&self) -> Result<[u8; 32], PayloadError> {
        let bytes = self
            .source
            .read_vec(0, self.header.metadata_size())
            .map_err(|e| PayloadError::Read {
                offset: 0,
                source: e,
            })?;
        Ok(Sha256::digest(&bytes).into())
    }

    /// Reads `len` bytes at absolute payload offset `offset`.
    pub fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, PayloadError> {
        self.source
            .read_vec(offset, len)
            .map_err(|e| PayloadError::Read { offset, source: e })
    }
}

fn validate_partition(
    pi: usize,
    p: &proto::PartitionUpdate,
    block_size: u64,
    data_start: u64,
    data_section_len: u64,
) -> Result<Partition, PayloadError> {
    let name = p.partition_name.clone().unwrap_or_default();
    if !is_safe_partition_name(&name) {
        return Err(PayloadError::Partition {
            partition: format!("#{pi} ({name:?})"),
            why: "partition_name must be 1-64 characters of [A-Za-z0-9_.-]".into(),
        });
    }
    let perr = |why: String| PayloadError::Partition {
        partition: name.clone(),
        why,
    };
    let (size, hash) = new_partition_info(p, block_size).map_err(perr)?;
    let (old_size, old_hash) = old_partition_info(p).map_err(perr)?;
    let blocks = size / block_size;
    let check = OpCheck {
        partition: &name,
        block_size,
        blocks,
        // Source extents must lie in the old partition when its size is known.
        max_src_blocks: old_size
            .map_or(MAX_PARTITION_SIZE / block_size, |s| s.div_ceil(block_size)),
        data_start,
        data_section_len,
    };
    let ops = p
        .operations
        .iter()
        .enumerate()
        .map(|(oi, op)| check.operation(oi, op))
        .collect::<Result<Vec<_>, _>>()?;
    check_no_overlap(&ops, block_size).map_err(|p| perr(p.to_string()))?;
    let verity = verity::from_update(p, block_size, size).map_err(perr)?;
    Ok(Partition {
        name,
        size,
        hash,
        old_size,
        old_hash,
        ops,
        verity,
    })
}

/// A SHA-256 field: absent or empty is none, else exactly 32 bytes (`Err`
/// holds the length found).
fn optional_sha256(h: &Option<Vec<u8>>) -> Result<Option<[u8; 32]>, usize> {
    match h {
        None => Ok(None),
        Some(h) if h.is_empty() => Ok(None),
        Some(h) => <[u8; 32]>::try_from(&h[..]).map(Some).map_err(|_| h.len()),
    }
}

/// The new partition's size (a multiple of the block size, at most 1 TiB)
/// and hash.
fn new_partition_info(
    p: &proto::PartitionUpdate,
    block_size: u64,
) -> Result<(u64, Option<[u8; 32]>), String> {
    let info = p
        .new_partition_info
        .as_ref()
        .ok_or_else(|| "new_partition_info is missing".to_string())?;
    let size = info
        .size
        .ok_or_else(|| "new_partition_info.size is missing".to_string())?;
    if size > MAX_PARTITION_SIZE {
        return Err(format!(
            "new_partition_info.size = {size} bytes is more than the {} bytes (1 TiB) romkit accepts",
            MAX_PARTITION_SIZE
        ));
    }
    if size % block_size != 0 {
        return Err(format!(
            "new_partition_info.size = {size} is not a multiple of the block size {block_size}"
        ));
    }
    let hash = optional_sha256(&info.hash)
        .map_err(|n| format!("new_partition_info.hash is {n} bytes, expected 32 (SHA-256)"))?;
    Ok((size, hash))
}

/// The old partition's size (at most 1 TiB) and hash, for incremental
/// payloads.
fn old_partition_info(
    p: &proto::PartitionUpdate,
) -> Result<(Option<u64>, Option<[u8; 32]>), String> {
    let Some(old) = &p.old_partition_info else {
        return Ok((None, None));
    };
    let old_hash = optional_sha256(&old.hash)
        .map_err(|n| format!("old_partition_info.hash is {n} bytes, expected 32 (SHA-256)"))?;
    if let Some(s) = old.size
        && s > MAX_PARTITION_SIZE
    {
        return Err(format!(
            "old_partition_info.size = {s} bytes is more than the {MAX_PARTITION_SIZE} bytes (1 TiB) romkit accepts"
        ));
    }
    Ok((old.size, old_hash))
}

/// What one partition's operations are checked against.
struct OpCheck<'a> {
    partition: &'a str,
    block_size: u64,
    /// Blocks of the new partition.
    blocks: u64,
    /// Blocks source extents may reach.
    max_src_blocks: u64,
    /// Payload offset of the data section.
    data_start: u64,
    data_section_len: u64,
}

impl OpCheck<'_> {
    /// Checks operation `oi`: its type, data range and hash, extents, and
    /// what its type requires of them.
    fn operation(
        &self,
        oi: usize,
        op: &proto::InstallOperation,
    ) -> Result<Operation, PayloadError> {
        let wire = op.r#type.unwrap_or(0);
        let kind = OpType::from_wire(wire).ok_or(wire);
        let oerr = |why: String| PayloadError::Op {
            partition: self.partition.to_string(),
            index: oi,
            kind: match kind {
                Ok(k) => k.name().to_string(),
                Err(v) => format!("UNKNOWN({v})"),
            },
            why,
        };
        if op.r#type.is_none() {
            return Err(oerr("type is missing".into()));
        }
        let data_offset_rel = op.data_offset.unwrap_or(0);
        let data_len = op.data_length.unwrap_or(0);
        if data_len > 0
            && data_offset_rel
                .checked_add(data_len)
                .is_none_or(|e| e > self.data_section_len)
        {
            return Err(oerr(format!(
                "data at offset {data_offset_rel} + {data_len} bytes lies past the end of the data section ({} bytes from payload offset {})",
                self.data_section_len, self.data_start
            )));
        }
        let data_hash = optional_sha256(&op.data_sha256_hash)
            .map_err(|n| oerr(format!("data_sha256_hash is {n} bytes, expected 32")))?;
        let (dst, dst_len) = self
            .extents(&op.dst_extents, "dst_extents", self.blocks, "partition")
            .map_err(oerr)?;
        let (src, src_len) = self
            .extents(
                &op.src_extents,
                "src_extents",
                self.max_src_blocks,
                "old partition",
            )
            .map_err(oerr)?;
        let src_hash = optional_sha256(&op.src_sha256_hash)
            .map_err(|n| oerr(format!("src_sha256_hash is {n} bytes, expected 32")))?;
        if let Ok(k) = kind {
            check_kind(k, src.is_empty(), dst.is_empty(), data_len, dst_len)
                .map_err(|p| oerr(p.to_string()))?;
        }
        Ok(Operation {
            index: oi,
            kind,
            data_offset: self.data_start + data_offset_rel,
            data_len,
            dst,
            dst_len,
            data_hash,
            src,
            src_len,
            src_hash,
        })
    }

    /// Extents as byte ranges and their total length; each must be non-empty
    /// and end within `limit` blocks (of the `what`).
    fn extents(
        &self,
        exts: &[proto::Extent],
        field: &str,
        limit: u64,
        what: &str,
    ) -> Result<(Vec<ByteRange>, u64), String> {
        let block_size = self.block_size;
        let mut ranges = Vec::with_capacity(exts.len());
        let mut total: u64 = 0;
        for (ei, ext) in exts.iter().enumerate() {
            let (start, n) = (ext.start(), ext.blocks());
            if n == 0 {
                return Err(format!("{field}[{ei}] has num_blocks = 0"));
            }
            if start.checked_add(n).is_none_or(|e| e > limit) {
                return Err(format!(
                    "{field}[{ei}] = blocks {start}+{n} lies past the end of the {what} ({limit} blocks of {block_size} bytes)"
                ));
            }
            // end <= limit and limit * block_size <= 1 TiB: no overflow.
            ranges.push(ByteRange {
                offset: start * block_size,
                len: n * block_size,
            });
            total += n * block_size;
        }
        Ok((ranges, total))
    }
}

/// What is wrong with an operation's fields for its type, or with the
/// destinations of a partition's operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum OpProblem {
    #[error("has no src_extents")]
    NoSource,
    #[error("has no dst_extents")]
    NoDestination,
    #[error("data_length {data_len} differs from the {dst_len} destination bytes")]
    ReplaceLength { data_len: u64, dst_len: u64 },
    #[error("data_length is 0")]
    NoData,
    #[error(
        "writes {0} bytes, more than the {MAX_OP_OUTPUT} bytes romkit decodes in one operation"
    )]
    TooLarge(u64),
    #[error(
        "operations {first} and {second} write overlapping blocks (blocks {start}..{end} and from {next})"
    )]
    Overlap {
        first: usize,
        second: usize,
        start: u64,
        end: u64,
        next: u64,
    },
}

/// What an operation's type requires: source extents for incremental
/// types, destination extents for all that write, and a sane data length.
fn check_kind(
    k: OpType,
    no_src: bool,
    no_dst: bool,
    data_len: u64,
    dst_len: u64,
) -> Result<(), OpProblem> {
    if k.needs_source() && no_src {
        return Err(OpProblem::NoSource);
    }
    if no_dst && !matches!(k, OpType::Zero | OpType::Discard) {
        return Err(OpProblem::NoDestination);
    }
    match k {
        OpType::Replace if data_len != dst_len => {
            Err(OpProblem::ReplaceLength { data_len, dst_len })
        }
        OpType::ReplaceBz | OpType::ReplaceXz | OpType::ReplaceZstd if data_len == 0 => {
            Err(OpProblem::NoData)
        }
        OpType::Replace | OpType::ReplaceBz | OpType::ReplaceXz | OpType::ReplaceZstd
            if dst_len > MAX_OP_OUTPUT =>
        {
            Err(OpProblem::TooLarge(dst_len))
        }
        _ => Ok(()),
    }
}

/// No two operations may write the same block.
fn check_no_overlap(ops: &[Operation], block_size: u64) -> Result<(), OpProblem> {
    // (start_block, end_block, op index) of every destination extent.
    let mut spans: Vec<(u64, u64, usize)> = ops
        .iter()
        .flat_map(|op| {
            op.dst.iter().map(move |r| {
                (
                    r.offset / block_size,
                    (r.offset + r.len) / block_size,
                    op.index,
                )
            })
        })
        .collect();
    spans.sort_unstable();
    for w in spans.windows(2) {
        let ((s0, e0, o0), (s1, _, o1)) = (w[0], w[1]);
        if s1 < e0 {
            return Err(OpProblem::Overlap {
                first: o0,
                second: o1,
                start: s0,
                end: e0,
                next: s1,
            });
        }
    }
    Ok(())
}

impl Payload {
    /// The first `len` bytes of a partition's new image, decoded from the
    /// operation that writes offset 0 (zeros if none does). Used to identify
    /// what a partition holds without extracting it.
    pub fn partition_head(&self, part: &Partition, len: usize) -> Result<Vec<u8>, PayloadError> {
        let len = len.min(part.size as usize);
        let mut head = vec![0u8; len];
        let Some(op) = part
            .ops
            .iter()
            .find(|o| o.dst.first().is_some_and(|r| r.offset == 0))
        else {
            return Ok(head);
        };
        let kind = match op.kind {
            // A ZERO or DISCARD operation may cover the whole partition (up
            // to 1 TiB): the head is already its output, never decode it.
            Ok(OpType::Zero | OpType::Discard) => return Ok(head),
            Ok(k) if !k.needs_source() => k,
            _ => return Ok(head),
        };
        let data = self.read(op.data_offset, op.data_len)?;
        let mut out = vec![0u8; op.dst_len as usize];
        decode::decode_into(kind, &data, &mut out).map_err(|why| PayloadError::Decode {
            partition: part.name.clone(),
            index: op.index,
            kind: op.kind_name(),
            why,
        })?;
        let n = len.min(op.dst[0].len as usize);
        head[..n].copy_from_slice(&out[..n]);
        Ok(head)
    }
}

/// Results of one sequential pass over a whole payload.
#[derive(Clone, Copy, Debug)]
pub struct WholeFile {
    /// SHA-256 of every byte (`FILE_HASH`).
    pub sha256: [u8; 32],
    /// CRC-32 of every byte (the zip entry's CRC).
    pub crc32: u32,
    /// SHA-256 of what the payload signature signs, when asked for.
    pub signed_digest: Option<[u8; 32]>,
}

impl Payload {
    /// Reads the whole payload once, in order, computing its SHA-256 and
    /// CRC-32 and, with `signed`, the digest the payload signature covers
    /// (header + manifest, then the data section up to the signature blob).
    pub fn whole_file_pass(&self, signed: bool) -> Result<WholeFile, PayloadError> {
        let len = self.source.len();
        let meta_end = self.header.metadata_size();
        let data_start = self.header.data_offset();
        let signed_end =
            data_start.saturating_add(self.manifest.signatures_offset.unwrap_or(len - data_start));
        let mut sha = Sha256::new();
        let mut sig = signed.then(Sha256::new);
        let mut crc = crc32fast::Hasher::new();
        let mut buf = vec![0u8; 4 << 20];
        let mut at = 0u64;
        while at < len {
            let n = (len - at).min(buf.len() as u64) as usize;
            let chunk = &mut buf[..n];
            self.source
                .read_exact_at(chunk, at)
                .map_err(|e| PayloadError::Read {
                    offset: at,
                    source: e,
                })?;
            sha.update(&*chunk);
            crc.update(chunk);
            if let Some(sig) = sig.as_mut() {
                // The intersection of [at, at+n) with the two signed ranges.
                for (lo, hi) in [(0, meta_end), (data_start, signed_end)] {
                    let (s, e) = (lo.max(at), hi.min(at + n as u64));
                    if s < e {
                        sig.update(&chunk[(s - at) as usize..(e - at) as usize]);
                    }
                }
            }
            at += n as u64;
        }
        Ok(WholeFile {
            sha256: sha.finalize().into(),
            crc32: crc.finalize(),
            signed_digest: sig.map(|s| s.finalize().into()),
        })
    }
}
