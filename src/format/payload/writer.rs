//! Writing a full payload from partition images.
//!
//! Each image is cut into chunks (2 MiB by default, like update_engine's
//! generator). An all-zero chunk becomes a ZERO operation without data; any
//! other chunk is xz-compressed and stored as REPLACE_XZ, or as REPLACE when
//! compression does not make it smaller. Chunks are compressed in parallel in
//! windows and appended in order, so the output depends only on the inputs and
//! options, never on thread timing.
//!
//! The manifest needs every data offset and hash, so data blobs go to a
//! temporary file in the destination folder first; the payload is then
//! streamed as header + manifest + data into any writer, hashed on the way.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use prost::Message;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::header::{HEADER_SIZE, Header, MAJOR_VERSION};
use super::proto::{
    DeltaArchiveManifest, DynamicPartitionGroup, DynamicPartitionMetadata, Extent,
    InstallOperation, OpType, PartitionInfo, PartitionUpdate,
};
use crate::error::{Error, Result};

/// Options for [`write_payload`].
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// Bytes per operation; a multiple of `block_size`.
    pub chunk_size: u64,
    /// Block size (4096 on every Android device).
    pub block_size: u64,
    /// xz preset, 0-9.
    pub xz_level: u32,
    /// Worker threads.
    pub jobs: usize,
    /// `max_timestamp` of the manifest (the build's UTC timestamp).
    pub max_timestamp: Option<i64>,
    /// `security_patch_level` of the manifest.
    pub security_patch_level: Option<String>,
    /// Dynamic partition groups: (name, size, member partitions).
    pub groups: Vec<(String, u64, Vec<String>)>,
    /// Whether the device uses virtual A/B snapshots.
    pub snapshot_enabled: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            chunk_size: 2 << 20,
            block_size: 4096,
            xz_level: 6,
            jobs: rayon::current_num_threads(),
            max_timestamp: None,
            security_patch_level: None,
            groups: Vec::new(),
            snapshot_enabled: false,
        }
    }
}

/// A partition image to put into the payload.
#[derive(Clone, Debug)]
pub struct ImageInput {
    /// Partition name.
    pub name: String,
    /// Raw image file.
    pub path: PathBuf,
}

/// What one partition of a new payload is made from.
#[derive(Clone, Copy, Debug)]
pub enum PayloadInput<'a> {
    /// A raw image, cut into chunks and compressed.
    Image(&'a ImageInput),
    /// A partition of an existing full payload whose operations and data
    /// blobs are copied byte for byte (only `data_offset` changes); every
    /// blob is checked against its `data_sha256_hash` on the way.
    Copy {
        /// The source payload.
        payload: &'a super::Payload,
        /// The partition's name in it.
        partition: &'a str,
    },
}

/// The facts payload_properties.txt records about a written payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadSummary {
    /// SHA-256 of the whole payload.
    pub file_hash: [u8; 32],
    /// Payload length.
    pub file_size: u64,
    /// SHA-256 of header + manifest.
    pub metadata_hash: [u8; 32],
    /// Header + manifest length.
    pub metadata_size: u64,
}

impl PayloadSummary {
    /// The text of `payload_properties.txt`.
    pub fn properties(&self) -> String {
        use super::sign::base64_encode;
        format!(
            "FILE_HASH={}\nFILE_SIZE={}\nMETADATA_HASH={}\nMETADATA_SIZE={}\n",
            base64_encode(&self.file_hash),
            self.file_size,
            base64_encode(&self.metadata_hash),
            self.metadata_size
        )
    }
}

/// A payload whose data is compressed and waiting in a temporary file.
pub struct PreparedPayload {
    manifest_bytes: Vec<u8>,
    data: File,
    data_path: PathBuf,
    data_len: u64,
    _tracked: crate::output::Tracked,
}

impl Drop for PreparedPayload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.data_path);
    }
}

impl PreparedPayload {
    /// Total payload length.
    pub fn len(&self) -> u64 {
        HEADER_SIZE + self.manifest_bytes.len() as u64 + self.data_len
    }

    /// Whether the payload is empty (never: it has at least a header).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Streams the payload into `out`, hashing it on the way.
    pub fn write_to(&mut self, out: &mut dyn Write) -> io::Result<PayloadSummary> {
        let header = Header {
            version: MAJOR_VERSION,
            manifest_size: self.manifest_bytes.len() as u64,
            metadata_signature_size: 0,
        };
        let mut file_hash = Sha256::new();
        let mut meta_hash = Sha256::new();
        for part in [&header.to_bytes()[..], &self.manifest_bytes[..]] {
            file_hash.update(part);
            meta_hash.update(part);
            out.write_all(part)?;
        }
        self.data.rewind()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut left = self.data_len;
        while left > 0 {
            let n = (left.min(buf.len() as u64)) as usize;
            self.data.read_exact(&mut buf[..n])?;
            file_hash.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            left -= n as u64;
        }
        Ok(PayloadSummary {
            file_hash: file_hash.finalize().into(),
            file_size: self.len(),
            metadata_hash: meta_hash.finalize().into(),
            metadata_size: header.metadata_size(),
        })
    }
}

/// One compressed chunk.
struct Chunk {
    kind: OpType,
    data: Vec<u8>,
    start_block: u64,
    num_blocks: u64,
}

fn compress_xz(raw: &[u8], level: u32, dict: u32) -> io::Result<Vec<u8>> {
    let mut opts = liblzma::stream::LzmaOptions::new_preset(level).map_err(io::Error::other)?;
    // A dictionary larger than the chunk buys nothing and costs decoder memory.
    opts.dict_size(dict.max(4096));
    let mut filters = liblzma::stream::Filters::new();
    filters.lzma2(&opts);
    // update_engine's generator writes xz without an integrity check:
    // data_sha256_hash already covers every blob.
    let stream =
        liblzma::stream::Stream::new_stream_encoder(&filters, liblzma::stream::Check::None)
            .map_err(io::Error::other)?;
    let mut enc = liblzma::write::XzEncoder::new_stream(Vec::with_capacity(raw.len() / 2), stream);
    enc.write_all(raw)?;
    enc.finish()
}

/// Compresses every image and builds the manifest. `tmp_dir` receives the
/// temporary data file (use the destination's folder so it is on the same disk).
pub fn prepare_payload(
    images: &[ImageInput],
    opts: &WriteOptions,
    tmp_dir: &Path,
) -> Result<PreparedPayload> {
    let inputs: Vec<PayloadInput> = images.iter().map(PayloadInput::Image).collect();
    prepare_payload_from(&inputs, opts, tmp_dir)
}

/// [`prepare_payload`] where some partitions are copied from another payload.
pub fn prepare_payload_from(
    inputs: &[PayloadInput],
    opts: &WriteOptions,
    tmp_dir: &Path,
) -> Result<PreparedPayload> {
    let bs = opts.block_size;
    if !bs.is_power_of_two() || !(512..=(1 << 20)).contains(&bs) {
        return Err(Error::Usage(format!(
            "block size {bs} must be a power of two between 512 and 1 MiB"
        )));
    }
    if opts.chunk_size == 0 || !opts.chunk_size.is_multiple_of(bs) || opts.chunk_size > 64 << 20 {
        return Err(Error::Usage(format!(
            "chunk size {} must be a non-zero multiple of the block size {bs}, at most 64 MiB",
            opts.chunk_size
        )));
    }
    let data_path = tmp_dir.join(format!(".romkit-payload-data-{}.tmp", std::process::id()));
    let data = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&data_path)
        .map_err(|e| Error::io(&data_path, e))?;
    let mut prepared = PreparedPayload {
        manifest_bytes: Vec::new(),
        data,
        data_path: data_path.clone(),
        data_len: 0,
        _tracked: crate::output::track(&data_path),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build()
        .map_err(|e| Error::Usage(format!("cannot start {} threads: {e}", opts.jobs)))?;

    let mut partitions = Vec::with_capacity(inputs.len());
    let mut writer = BufWriter::with_capacity(1 << 20, &prepared.data);
    let mut offset = 0u64;
    for input in inputs {
        let img = match *input {
            PayloadInput::Image(img) => img,
            PayloadInput::Copy { payload, partition } => {
                let update =
                    copy_partition(payload, partition, opts, &pool, &mut writer, &mut offset)
                        .map_err(|e| match e {
                            CopyError::Write(e) => Error::io(&data_path, e),
                            CopyError::Other(e) => e,
                        })?;
                partitions.push(update);
                continue;
            }
        };
        if !super::is_safe_partition_name(&img.name) {
            return Err(Error::Usage(format!(
                "partition name {:?} must be 1-64 characters of [A-Za-z0-9_.-]",
                img.name
            )));
        }
        let file = File::open(&img.path).map_err(|e| Error::io(&img.path, e))?;
        let size = file.metadata().map_err(|e| Error::io(&img.path, e))?.len();
        if size % bs != 0 {
            return Err(Error::invalid(
                &img.path,
                format!("image size {size} is not a multiple of the block size {bs}"),
            ));
        }
        let chunks = size.div_ceil(opts.chunk_size);
        let window = (opts.jobs.max(1) * 32) as u64;
        let mut ops = Vec::with_capacity(chunks as usize);
        let (image_hash, compressed) = pool.install(|| {
            rayon::join(
                || hash_file(&file, size),
                || -> Result<()> {
                    let mut w0 = 0;
                    while w0 < chunks {
                        let w1 = (w0 + window).min(chunks);
                        let out: Vec<Result<Chunk>> = (w0..w1)
                            .into_par_iter()
                            .map(|c| {
                                let start = c * opts.chunk_size;
                                let len = opts.chunk_size.min(size - start);
                                let mut raw = vec![0u8; len as usize];
                                file.read_exact_at(&mut raw, start)
                                    .map_err(|e| Error::io(&img.path, e))?;
                                let (start_block, num_blocks) = (start / bs, len / bs);
                                if raw.iter().all(|&b| b == 0) {
                                    return Ok(Chunk {
                                        kind: OpType::Zero,
                                        data: Vec::new(),
                                        start_block,
                                        num_blocks,
                                    });
                                }
                                let xz = compress_xz(&raw, opts.xz_level, len as u32)
                                    .map_err(|e| Error::io(&img.path, e))?;
                                Ok(if xz.len() < raw.len() {
                                    Chunk {
                                        kind: OpType::ReplaceXz,
                                        data: xz,
                                        start_block,
                                        num_blocks,
                                    }
                                } else {
                                    Chunk {
                                        kind: OpType::Replace,
                                        data: raw,
                                        start_block,
                                        num_blocks,
                                    }
                                })
                            })
                            .collect();
                        for chunk in out {
                            let chunk = chunk?;
                            let mut op = InstallOperation {
                                r#type: Some(chunk.kind.to_wire()),
                                dst_extents: vec![Extent::new(chunk.start_block, chunk.num_blocks)],
                                ..Default::default()
                            };
                            if !chunk.data.is_empty() {
                                op.data_offset = Some(offset);
                                op.data_length = Some(chunk.data.len() as u64);
                                op.data_sha256_hash = Some(Sha256::digest(&chunk.data).to_vec());
                                writer
                                    .write_all(&chunk.data)
                                    .map_err(|e| Error::io(&data_path, e))?;
                                offset += chunk.data.len() as u64;
                            }
                            ops.push(op);
                        }
                        w0 = w1;
                    }
                    Ok(())
                },
            )
        });
        compressed?;
        let image_hash = image_hash.map_err(|e| Error::io(&img.path, e))?;
        partitions.push(PartitionUpdate {
            partition_name: Some(img.name.clone()),
            new_partition_info: Some(PartitionInfo {
                size: Some(size),
                hash: Some(image_hash.to_vec()),
            }),
            operations: ops,
            ..Default::default()
        });
    }
    writer.flush().map_err(|e| Error::io(&data_path, e))?;
    drop(writer);
    prepared.data_len = offset;

    let dynamic_partition_metadata = (!opts.groups.is_empty()).then(|| DynamicPartitionMetadata {
        groups: opts
            .groups
            .iter()
            .map(|(name, size, members)| DynamicPartitionGroup {
                name: Some(name.clone()),
                size: Some(*size),
                partition_names: members.clone(),
            })
            .collect(),
        snapshot_enabled: Some(opts.snapshot_enabled),
        ..Default::default()
    });
    let manifest = DeltaArchiveManifest {
        block_size: Some(bs as u32),
        minor_version: Some(0),
        partitions,
        max_timestamp: opts.max_timestamp,
        dynamic_partition_metadata,
        security_patch_level: opts.security_patch_level.clone(),
        ..Default::default()
    };
    prepared.manifest_bytes = manifest.encode_to_vec();
    Ok(prepared)
}

enum CopyError {
    Write(io::Error),
    Other(Error),
}

/// Copies one partition's operations from `payload`, appending their blobs
/// to `writer` at `offset` and returning the partition's manifest entry with
/// the new data offsets.
fn copy_partition(
    payload: &super::Payload,
    name: &str,
    opts: &WriteOptions,
    pool: &rayon::ThreadPool,
    writer: &mut impl Write,
    offset: &mut u64,
) -> std::result::Result<PartitionUpdate, CopyError> {
    let path = payload.source.path().to_path_buf();
    let other = |msg: String| CopyError::Other(Error::invalid(&path, msg));
    if u64::from(payload.manifest.block_size.unwrap_or(4096)) != opts.block_size {
        return Err(other(format!(
            "cannot copy partition {name}: the payload's block size {} differs from {}",
            payload.block_size, opts.block_size
        )));
    }
    let part = payload
        .partition(name)
        .ok_or_else(|| other(format!("the payload has no partition {name}")))?;
    if let Some(op) = part.first_incremental_op() {
        return Err(other(format!(
            "cannot copy partition {name}: operation {} ({}) needs the previous build",
            op.index,
            op.kind_name()
        )));
    }
    let mut update = payload
        .manifest
        .partitions
        .iter()
        .find(|p| p.partition_name.as_deref() == Some(name))
        .cloned()
        .ok_or_else(|| other(format!("the payload has no partition {name}")))?;
    // A full payload has no source; drop anything describing one.
    update.old_partition_info = None;
    let window = (opts.jobs.max(1) * 16).max(1);
    for ops in part.ops.chunks(window) {
        let blobs: Vec<std::result::Result<Vec<u8>, CopyError>> = pool.install(|| {
            ops.par_iter()
                .map(|op| {
                    if op.data_len == 0 {
                        return Ok(Vec::new());
                    }
                    let data = payload
                        .read(op.data_offset, op.data_len)
                        .map_err(|e| CopyError::Other(Error::payload(path.clone(), e)))?;
                    if let Some(want) = op.data_hash {
                        let got: [u8; 32] = Sha256::digest(&data).into();
                        if got != want {
                            return Err(CopyError::Other(Error::CheckFailed {
                                file: path.clone(),
                                msg: format!(
                                    "partition {name}, operation {}: data_sha256_hash mismatch at payload offset {}",
                                    op.index, op.data_offset
                                ),
                            }));
                        }
                    }
                    Ok(data)
                })
                .collect()
        });
        for (op, blob) in ops.iter().zip(blobs) {
            let blob = blob?;
            if blob.is_empty() {
                continue;
            }
            let proto = update.operations.get_mut(op.index).ok_or_else(|| {
                other(format!(
                    "partition {name}: operation {} is missing",
                    op.index
                ))
            })?;
            proto.data_offset = Some(*offset);
            writer.write_all(&blob).map_err(CopyError::Write)?;
            *offset += blob.len() as u64;
        }
    }
    Ok(update)
}

fn hash_file(file: &File, size: u64) -> io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < size {
        let n = (size - at).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], at)?;
        h.update(&buf[..n]);
        at += n as u64;
    }
    Ok(h.finalize().into())
}
