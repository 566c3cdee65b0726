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

pub mod decode;
pub mod delta;
pub mod extract;
pub mod header;
pub mod proto;
pub mod sign;
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
    let info = p
        .new_partition_info
        .as_ref()
        .ok_or_else(|| perr("new_partition_info is missing".into()))?;
    let size = info
        .size
        .ok_or_else(|| perr("new_partition_info.size is missing".into()))?;
    if size > MAX_PARTITION_SIZE {
        return Err(perr(format!(
            "new_partition_info.size = {size} bytes is more than the {} bytes (1 TiB) romkit accepts",
            MAX_PARTITION_SIZE
        )));
    }
    if size % block_size != 0 {
        return Err(perr(format!(
            "new_partition_info.size = {size} is not a multiple of the block size {block_size}"
        )));
    }
    let hash = match &info.hash {
        None => None,
        Some(h) if h.is_empty() => None,
        Some(h) => Some(<[u8; 32]>::try_from(&h[..]).map_err(|_| {
            perr(format!(
                "new_partition_info.hash is {} bytes, expected 32 (SHA-256)",
                h.len()
            ))
        })?),
    };
    let (old_size, old_hash) = match &p.old_partition_info {
        None => (None, None),
        Some(old) => {
            let old_hash = match &old.hash {
                None => None,
                Some(h) if h.is_empty() => None,
                Some(h) => Some(<[u8; 32]>::try_from(&h[..]).map_err(|_| {
                    perr(format!(
                        "old_partition_info.hash is {} bytes, expected 32 (SHA-256)",
                        h.len()
                    ))
                })?),
            };
            if let Some(s) = old.size
                && s > MAX_PARTITION_SIZE
            {
                return Err(perr(format!(
                    "old_partition_info.size = {s} bytes is more than the {MAX_PARTITION_SIZE} bytes (1 TiB) romkit accepts"
                )));
            }
            (old.size, old_hash)
        }
    };
    let blocks = size / block_size;
    // Source extents must lie in the old partition when its size is known.
    let max_src_blocks =
        old_size.map_or(MAX_PARTITION_SIZE / block_size, |s| s.div_ceil(block_size));
    let mut ops = Vec::with_capacity(p.operations.len());
    // (start_block, end_block, op index) of every destination extent, to find overlaps.
    let mut spans: Vec<(u64, u64, usize)> = Vec::new();
    for (oi, op) in p.operations.iter().enumerate() {
        let wire = op.r#type.unwrap_or(0);
        let kind = OpType::from_wire(wire).ok_or(wire);
        let kind_name = match kind {
            Ok(k) => k.name().to_string(),
            Err(v) => format!("UNKNOWN({v})"),
        };
        let oerr = |why: String| PayloadError::Op {
            partition: name.clone(),
            index: oi,
            kind: kind_name.clone(),
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
                .is_none_or(|e| e > data_section_len)
        {
            return Err(oerr(format!(
                "data at offset {data_offset_rel} + {data_len} bytes lies past the end of the data section ({data_section_len} bytes from payload offset {data_start})"
            )));
        }
        let data_hash = match &op.data_sha256_hash {
            None => None,
            Some(h) if h.is_empty() => None,
            Some(h) => Some(<[u8; 32]>::try_from(&h[..]).map_err(|_| {
                oerr(format!(
                    "data_sha256_hash is {} bytes, expected 32",
                    h.len()
                ))
            })?),
        };
        let mut dst = Vec::with_capacity(op.dst_extents.len());
        let mut dst_len: u64 = 0;
        for (ei, ext) in op.dst_extents.iter().enumerate() {
            let (start, n) = (ext.start(), ext.blocks());
            if n == 0 {
                return Err(oerr(format!("dst_extents[{ei}] has num_blocks = 0")));
            }
            let end = start.checked_add(n).filter(|&e| e <= blocks).ok_or_else(|| {
                oerr(format!(
                    "dst_extents[{ei}] = blocks {start}+{n} lies past the end of the partition ({blocks} blocks of {block_size} bytes)"
                ))
            })?;
            spans.push((start, end, oi));
            // end <= blocks and size = blocks * block_size <= 1 TiB: no overflow.
            dst.push(ByteRange {
                offset: start * block_size,
                len: n * block_size,
            });
            dst_len += n * block_size;
        }
        let mut src = Vec::with_capacity(op.src_extents.len());
        let mut src_len: u64 = 0;
        for (ei, ext) in op.src_extents.iter().enumerate() {
            let (start, n) = (ext.start(), ext.blocks());
            if n == 0 {
                return Err(oerr(format!("src_extents[{ei}] has num_blocks = 0")));
            }
            start.checked_add(n).filter(|&e| e <= max_src_blocks).ok_or_else(|| {
                oerr(format!(
                    "src_extents[{ei}] = blocks {start}+{n} lies past the end of the old partition ({max_src_blocks} blocks of {block_size} bytes)"
                ))
            })?;
            // end <= max_src_blocks and that times block_size <= 1 TiB: no overflow.
            src.push(ByteRange {
                offset: start * block_size,
                len: n * block_size,
            });
            src_len += n * block_size;
        }
        let src_hash =
            match &op.src_sha256_hash {
                None => None,
                Some(h) if h.is_empty() => None,
                Some(h) => Some(<[u8; 32]>::try_from(&h[..]).map_err(|_| {
                    oerr(format!("src_sha256_hash is {} bytes, expected 32", h.len()))
                })?),
            };
        if let Ok(k) = kind {
            if k.needs_source() && src.is_empty() {
                return Err(oerr("has no src_extents".into()));
            }
            if dst.is_empty() && !matches!(k, OpType::Zero | OpType::Discard) {
                return Err(oerr("has no dst_extents".into()));
            }
            match k {
                OpType::Replace if data_len != dst_len => {
                    return Err(oerr(format!(
                        "data_length {data_len} differs from the {dst_len} destination bytes"
                    )));
                }
                OpType::ReplaceBz | OpType::ReplaceXz | OpType::ReplaceZstd if data_len == 0 => {
                    return Err(oerr("data_length is 0".into()));
                }
                OpType::Replace | OpType::ReplaceBz | OpType::ReplaceXz | OpType::ReplaceZstd
                    if dst_len > MAX_OP_OUTPUT =>
                {
                    return Err(oerr(format!(
                        "writes {dst_len} bytes, more than the {MAX_OP_OUTPUT} bytes romkit decodes in one operation"
                    )));
                }
                _ => {}
            }
        }
        ops.push(Operation {
            index: oi,
            kind,
            data_offset: data_start + data_offset_rel,
            data_len,
            dst,
            dst_len,
            data_hash,
            src,
            src_len,
            src_hash,
        });
    }
    spans.sort_unstable();
    for w in spans.windows(2) {
        let ((s0, e0, o0), (s1, _, o1)) = (w[0], w[1]);
        if s1 < e0 {
            return Err(perr(format!(
                "operations {o0} and {o1} write overlapping blocks (blocks {s0}..{e0} and from {s1})"
            )));
        }
    }
    Ok(Partition {
        name,
        size,
        hash,
        old_size,
        old_hash,
        ops,
    })
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
