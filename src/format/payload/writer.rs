//! Writing a full payload from partition images.
//!
//! Each image is cut into chunks (2 MiB by default, like update_engine's
//! generator). An all-zero chunk becomes a ZERO operation without data; any
//! other chunk is xz-compressed and stored as REPLACE_XZ, or as REPLACE when
//! compression does not make it smaller. Chunks are compressed in parallel in
//! windows and appended in order, so the output depends only on the inputs and
//! options, never on thread timing.
//!
//! The manifest needs every data offset and hash, so the data section is laid
//! out first (the private `blobs` module): blobs made here go to a scratch file the
//! caller provides (best on the destination's disk), blobs copied from a
//! source payload are only noted. The payload is then streamed as header +
//! manifest + data into any writer, hashed on the way, copied blobs read
//! from the source and checked as they pass.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use prost::Message;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::PayloadError;
use super::blobs::Blobs;
use super::header::{HEADER_SIZE, Header, MAJOR_VERSION};
use super::proto::{
    DeltaArchiveManifest, DynamicPartitionGroup, DynamicPartitionMetadata, Extent,
    InstallOperation, OpType, PartitionInfo, PartitionUpdate,
};
use crate::format::source::Donor;

/// Why a payload cannot be written. Errors about a file name it.
#[derive(Debug, thiserror::Error)]
pub enum PayloadWriteError {
    /// The block size option is unusable.
    #[error("block size {0} must be a power of two between 512 and 1 MiB")]
    BlockSize(u64),
    /// The chunk size option is unusable.
    #[error(
        "chunk size {chunk} must be a non-zero multiple of the block size {block}, at most 64 MiB"
    )]
    ChunkSize {
        /// The chunk size asked for.
        chunk: u64,
        /// The block size.
        block: u64,
    },
    /// The worker threads could not be started.
    #[error("cannot start {jobs} threads: {why}")]
    Threads {
        /// Threads asked for.
        jobs: usize,
        /// Why not.
        why: String,
    },
    /// A partition name is not usable as a partition and file name.
    #[error("partition name {0:?} must be 1-64 characters of [A-Za-z0-9_.-]")]
    PartitionName(String),
    /// Reading an image or writing the scratch file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file read or written.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// An image is not a whole number of blocks.
    #[error("image size {size} is not a multiple of the block size {block}")]
    ImageSize {
        /// The image file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The block size.
        block: u64,
    },
    /// A partition to copy comes from a payload with another block size.
    #[error(
        "cannot copy partition {partition}: the payload's block size {theirs} differs from {ours}"
    )]
    CopyBlockSize {
        /// The source payload.
        payload: PathBuf,
        /// Partition name.
        partition: String,
        /// The source payload's block size.
        theirs: u64,
        /// The block size being written.
        ours: u64,
    },
    /// The source payload has no such partition (or operation).
    #[error("the payload has no partition {partition}")]
    CopyMissing {
        /// The source payload.
        payload: PathBuf,
        /// Partition name.
        partition: String,
    },
    /// A partition to copy has an operation that needs the previous build.
    #[error(
        "cannot copy partition {partition}: operation {index} ({kind}) needs the previous build"
    )]
    CopyIncremental {
        /// The source payload.
        payload: PathBuf,
        /// Partition name.
        partition: String,
        /// Operation index.
        index: usize,
        /// Operation type name.
        kind: String,
    },
    /// An operation of a partition to copy is missing from the manifest.
    #[error("partition {partition}: operation {index} is missing")]
    CopyMissingOp {
        /// The source payload.
        payload: PathBuf,
        /// Partition name.
        partition: String,
        /// Operation index.
        index: usize,
    },
    /// A copied blob does not match its `data_sha256_hash`.
    #[error(
        "partition {partition}, operation {index}: data_sha256_hash mismatch at payload offset {offset}"
    )]
    CopyHash {
        /// The source payload.
        payload: PathBuf,
        /// Partition name.
        partition: String,
        /// Operation index.
        index: usize,
        /// Offset of the blob in the payload.
        offset: u64,
    },
    /// Reading the source payload failed.
    #[error("{source}")]
    Read {
        /// The source payload.
        payload: PathBuf,
        /// What went wrong.
        source: Box<PayloadError>,
    },
}

impl PayloadWriteError {
    pub(super) fn io(path: &Path) -> impl Fn(io::Error) -> Self + '_ {
        move |source| PayloadWriteError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

type Result<T, E = PayloadWriteError> = std::result::Result<T, E>;

/// Options for [`prepare_payload`].
#[derive(Clone, Debug)]
pub struct PayloadOptions {
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
    /// Whether blobs copied from a source payload are checked against their
    /// `data_sha256_hash` as the payload is streamed. A caller that reads
    /// the written payload back and checks every blob (as `build` does) can
    /// leave it to that check.
    pub check_copied: bool,
}

impl Default for PayloadOptions {
    fn default() -> Self {
        PayloadOptions {
            chunk_size: 2 << 20,
            block_size: 4096,
            xz_level: 6,
            jobs: rayon::current_num_threads(),
            max_timestamp: None,
            security_patch_level: None,
            groups: Vec::new(),
            snapshot_enabled: false,
            check_copied: true,
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
    /// blobs are copied byte for byte (only `data_offset` changes); each
    /// blob is checked against its `data_sha256_hash` on the way unless
    /// [`PayloadOptions::check_copied`] is off.
    Copy {
        /// The source payload.
        payload: &'a super::Payload,
        /// The partition's name in it.
        partition: &'a str,
    },
    /// A partition of an existing full payload whose image was edited in
    /// place: operations whose destination did not change are copied byte
    /// for byte, the others become ZERO or are encoded again from `image`
    /// (see [`super::reuse`]).
    Edited {
        /// The source payload.
        payload: &'a super::Payload,
        /// The partition's name in it.
        partition: &'a str,
        /// The edited image.
        image: &'a ImageInput,
        /// Byte ranges of the image that differ from the source's (sorted,
        /// disjoint), appended bytes included.
        changed: &'a [std::ops::Range<u64>],
        /// The part of `changed` that is now all zero (sorted, disjoint,
        /// merged).
        zeroed: &'a [std::ops::Range<u64>],
        /// The edited image's SHA-256 when the caller knows it (the image is
        /// read to hash it otherwise).
        sha256: Option<[u8; 32]>,
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
    /// What became of the source's operations in each partition written
    /// for an edited image (see [`super::reuse`]), in payload order.
    pub reused: Vec<(String, super::reuse::ReuseCounts)>,
    /// Every partition's new image SHA-256 (its `new_partition_info`), in
    /// payload order.
    pub image_hashes: Vec<(String, [u8; 32])>,
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

/// A payload laid out: its manifest made, its own blobs compressed and
/// waiting in the scratch file, its copied blobs still in their source.
pub struct PreparedPayload<'a> {
    manifest_bytes: Vec<u8>,
    data: super::blobs::Data<'a>,
    data_path: PathBuf,
    jobs: usize,
    check_copied: bool,
    reused: Vec<(String, super::reuse::ReuseCounts)>,
    image_hashes: Vec<(String, [u8; 32])>,
}

impl PreparedPayload<'_> {
    /// Total payload length.
    pub fn len(&self) -> u64 {
        HEADER_SIZE + self.manifest_bytes.len() as u64 + self.data.len()
    }

    /// For each edited partition ([`PayloadInput::Edited`]), how many
    /// operations were copied, zeroed, encoded again and appended.
    pub fn reused(&self) -> &[(String, super::reuse::ReuseCounts)] {
        &self.reused
    }

    /// Whether the payload is empty (never: it has at least a header).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The CRC-32 of the payload [`Self::write_to`] writes, from the data
    /// section read once (in parallel) first, except the copied blobs the
    /// extractor has already read (their CRC-32s are combined).
    pub fn crc32(&self) -> Result<u32> {
        let header = Header {
            version: MAJOR_VERSION,
            manifest_size: self.manifest_bytes.len() as u64,
            metadata_signature_size: 0,
        };
        let mut h = crc32fast::Hasher::new();
        h.update(&header.to_bytes());
        h.update(&self.manifest_bytes);
        let pool = thread_pool(self.jobs)?;
        let data = self.data.crc32(&pool, &self.data_path)?;
        h.combine(&crc32fast::Hasher::new_with_initial_len(
            data,
            self.data.len(),
        ));
        Ok(h.finalize())
    }

    /// Streams the payload into `out` (the file `out_path`, for errors),
    /// hashing it on the way; copied blobs are read from their source and
    /// checked against their hashes as they pass. `donor` frees scratch
    /// bytes as the data section is written (see [`Donor`]). Can be called
    /// again.
    pub fn write_to(
        &self,
        out: &mut dyn Write,
        out_path: &Path,
        donor: &mut Donor,
    ) -> Result<PayloadSummary> {
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
            out.write_all(part)
                .map_err(PayloadWriteError::io(out_path))?;
        }
        let pool = thread_pool(self.jobs)?;
        let paths = (self.data_path.as_path(), out_path);
        self.data
            .stream(out, &mut file_hash, &pool, self.check_copied, donor, paths)?;
        Ok(PayloadSummary {
            file_hash: file_hash.finalize().into(),
            file_size: self.len(),
            metadata_hash: meta_hash.finalize().into(),
            metadata_size: header.metadata_size(),
            reused: self.reused.clone(),
            image_hashes: self.image_hashes.clone(),
        })
    }
}

/// One compressed chunk.
pub(super) struct Chunk {
    kind: OpType,
    data: Vec<u8>,
    start_block: u64,
    num_blocks: u64,
}

/// Bytes of each sample [`looks_incompressible`] encodes.
const SAMPLE: usize = 32 << 10;

/// Whether xz at `level` cannot shrink `raw`, judged from three samples
/// (its start, middle and end) that it does not shrink at all: so that
/// incompressible data (APKs, already compressed files) is not encoded
/// whole for nothing. Data under 16 samples is never judged so.
fn looks_incompressible(raw: &[u8], level: u32) -> bool {
    if raw.len() < 16 * SAMPLE {
        return false;
    }
    let mid = raw.len() / 2 - SAMPLE / 2;
    [0, mid, raw.len() - SAMPLE].into_iter().all(|at| {
        compress_xz(&raw[at..at + SAMPLE], level, SAMPLE as u32).is_ok_and(|x| x.len() >= SAMPLE)
    })
}

/// The full operation for `raw`, as update_engine's generator chooses:
/// REPLACE_XZ (at `level`, dictionary `dict`) when xz makes it smaller,
/// else REPLACE. Data that [`looks_incompressible`] is not encoded whole.
pub(super) fn replace_op(raw: Vec<u8>, level: u32, dict: u32) -> io::Result<(OpType, Vec<u8>)> {
    if looks_incompressible(&raw, level) {
        return Ok((OpType::Replace, raw));
    }
    let xz = compress_xz(&raw, level, dict)?;
    Ok(if xz.len() < raw.len() {
        (OpType::ReplaceXz, xz)
    } else {
        (OpType::Replace, raw)
    })
}

pub(super) fn compress_xz(raw: &[u8], level: u32, dict: u32) -> io::Result<Vec<u8>> {
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

/// Compresses every image and builds the manifest. `data` is an empty
/// read-write scratch file that receives the compressed blobs (best on the
/// destination's disk, and unnamed so nothing is left behind); `data_path`
/// names it in errors.
pub fn prepare_payload<'a>(
    images: &'a [ImageInput],
    opts: &PayloadOptions,
    data: File,
    data_path: &Path,
) -> Result<PreparedPayload<'a>> {
    let inputs: Vec<PayloadInput> = images.iter().map(PayloadInput::Image).collect();
    prepare_payload_from(&inputs, opts, data, data_path)
}

/// [`prepare_payload`] where some partitions are copied from another payload.
pub fn prepare_payload_from<'a>(
    inputs: &[PayloadInput<'a>],
    opts: &PayloadOptions,
    data: File,
    data_path: &Path,
) -> Result<PreparedPayload<'a>> {
    check_options(opts)?;
    let data_err = PayloadWriteError::io(data_path);
    let pool = thread_pool(opts.jobs)?;
    let mut blobs = Blobs::new(data).map_err(&data_err)?;
    let mut reused = Vec::new();
    let mut partitions = Vec::with_capacity(inputs.len());
    for input in inputs {
        let update = match *input {
            PayloadInput::Image(img) => image_partition(img, opts, &pool, &mut blobs, data_path)?,
            PayloadInput::Edited {
                payload,
                partition,
                image,
                changed,
                zeroed,
                sha256,
            } => {
                let edit = super::reuse::Edit {
                    image,
                    changed,
                    zeroed,
                    sha256,
                };
                let (update, counts) = super::reuse::edited_partition(
                    payload, partition, &edit, opts, &pool, &mut blobs, data_path,
                )?;
                reused.push((partition.to_string(), counts));
                update
            }
            PayloadInput::Copy { payload, partition } => {
                copy_partition(payload, partition, opts, &mut blobs)?
            }
        };
        partitions.push(update);
    }
    let image_hashes = partitions
        .iter()
        .filter_map(|p| {
            let hash = p.new_partition_info.as_ref()?.hash.as_deref()?;
            Some((p.partition_name.clone()?, hash.try_into().ok()?))
        })
        .collect();
    Ok(PreparedPayload {
        manifest_bytes: manifest(opts, partitions).encode_to_vec(),
        image_hashes,
        data: blobs.finish().map_err(&data_err)?,
        data_path: data_path.to_path_buf(),
        jobs: opts.jobs,
        check_copied: opts.check_copied,
        reused,
    })
}

/// A pool of `jobs` worker threads (at least one).
fn thread_pool(jobs: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .map_err(|e| PayloadWriteError::Threads {
            jobs,
            why: e.to_string(),
        })
}

/// Block size a power of two from 512 bytes to 1 MiB; chunk size a
/// multiple of it, at most 64 MiB.
fn check_options(opts: &PayloadOptions) -> Result<()> {
    let bs = opts.block_size;
    if !bs.is_power_of_two() || !(512..=(1 << 20)).contains(&bs) {
        return Err(PayloadWriteError::BlockSize(bs));
    }
    if opts.chunk_size == 0 || !opts.chunk_size.is_multiple_of(bs) || opts.chunk_size > 64 << 20 {
        return Err(PayloadWriteError::ChunkSize {
            chunk: opts.chunk_size,
            block: bs,
        });
    }
    Ok(())
}

/// Cuts one image into chunks, compresses them in parallel windows (while
/// another task hashes the whole image) and appends their blobs in order to
/// `blobs`. Returns the partition's manifest entry.
fn image_partition(
    img: &ImageInput,
    opts: &PayloadOptions,
    pool: &rayon::ThreadPool,
    blobs: &mut Blobs<'_>,
    data_path: &Path,
) -> Result<PartitionUpdate> {
    if !crate::format::is_safe_partition_name(&img.name) {
        return Err(PayloadWriteError::PartitionName(img.name.clone()));
    }
    let bs = opts.block_size;
    let img_err = PayloadWriteError::io(&img.path);
    let file = File::open(&img.path).map_err(&img_err)?;
    let size = file.metadata().map_err(&img_err)?.len();
    if size % bs != 0 {
        return Err(PayloadWriteError::ImageSize {
            path: img.path.clone(),
            size,
            block: bs,
        });
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
                    let out: Vec<io::Result<Chunk>> = (w0..w1)
                        .into_par_iter()
                        .map(|c| {
                            let start = c * opts.chunk_size;
                            let len = opts.chunk_size.min(size - start);
                            read_chunk(&file, start, len, opts)
                        })
                        .collect();
                    for chunk in out {
                        let chunk = chunk.map_err(&img_err)?;
                        let op =
                            append_chunk(chunk, blobs).map_err(PayloadWriteError::io(data_path))?;
                        ops.push(op);
                    }
                    w0 = w1;
                }
                Ok(())
            },
        )
    });
    compressed?;
    let image_hash = image_hash.map_err(&img_err)?;
    Ok(PartitionUpdate {
        partition_name: Some(img.name.clone()),
        new_partition_info: Some(PartitionInfo {
            size: Some(size),
            hash: Some(image_hash.to_vec()),
        }),
        operations: ops,
        ..Default::default()
    })
}

/// Reads the `len` bytes at `start` of an image as one chunk: ZERO when
/// all zeros, else REPLACE_XZ, or REPLACE when xz does not make it smaller.
pub(super) fn read_chunk(
    file: &File,
    start: u64,
    len: u64,
    opts: &PayloadOptions,
) -> io::Result<Chunk> {
    let mut raw = vec![0u8; len as usize];
    file.read_exact_at(&mut raw, start)?;
    let (start_block, num_blocks) = (start / opts.block_size, len / opts.block_size);
    if raw.iter().all(|&b| b == 0) {
        return Ok(Chunk {
            kind: OpType::Zero,
            data: Vec::new(),
            start_block,
            num_blocks,
        });
    }
    let (kind, data) = replace_op(raw, opts.xz_level, len as u32)?;
    Ok(Chunk {
        kind,
        data,
        start_block,
        num_blocks,
    })
}

/// The operation for one chunk; its blob, if any, is appended to `blobs`.
pub(super) fn append_chunk(chunk: Chunk, blobs: &mut Blobs<'_>) -> io::Result<InstallOperation> {
    let mut op = InstallOperation {
        r#type: Some(chunk.kind.to_wire()),
        dst_extents: vec![Extent::new(chunk.start_block, chunk.num_blocks)],
        ..Default::default()
    };
    if !chunk.data.is_empty() {
        op.data_length = Some(chunk.data.len() as u64);
        op.data_sha256_hash = Some(Sha256::digest(&chunk.data).to_vec());
        op.data_offset = Some(blobs.push(&chunk.data)?);
    }
    Ok(op)
}

/// The manifest of a full payload (minor version 0) with `partitions`.
fn manifest(opts: &PayloadOptions, partitions: Vec<PartitionUpdate>) -> DeltaArchiveManifest {
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
    DeltaArchiveManifest {
        block_size: Some(opts.block_size as u32),
        minor_version: Some(0),
        partitions,
        max_timestamp: opts.max_timestamp,
        dynamic_partition_metadata,
        security_patch_level: opts.security_patch_level.clone(),
        ..Default::default()
    }
}

/// The partition `name` of `payload`, checked to be copyable into a full
/// payload written with `opts`, and its manifest entry without anything
/// describing a source.
pub(super) fn check_copyable<'p>(
    payload: &'p super::Payload,
    name: &str,
    opts: &PayloadOptions,
) -> Result<(&'p super::Partition, PartitionUpdate)> {
    let path = payload.source.path().to_path_buf();
    let missing = || PayloadWriteError::CopyMissing {
        payload: path.clone(),
        partition: name.to_string(),
    };
    if u64::from(payload.manifest.block_size.unwrap_or(4096)) != opts.block_size {
        return Err(PayloadWriteError::CopyBlockSize {
            payload: path.clone(),
            partition: name.to_string(),
            theirs: payload.block_size,
            ours: opts.block_size,
        });
    }
    let part = payload.partition(name).ok_or_else(missing)?;
    if let Some(op) = part.first_incremental_op() {
        return Err(PayloadWriteError::CopyIncremental {
            payload: path.clone(),
            partition: name.to_string(),
            index: op.index,
            kind: op.kind_name(),
        });
    }
    let mut update = payload
        .manifest
        .partitions
        .iter()
        .find(|p| p.partition_name.as_deref() == Some(name))
        .cloned()
        .ok_or_else(missing)?;
    // A full payload has no source; drop anything describing one.
    update.old_partition_info = None;
    Ok((part, update))
}

/// The blob of operation `op` of partition `name`, checked against its
/// `data_sha256_hash` when `check` is set.
pub(super) fn read_copied_blob(
    payload: &super::Payload,
    name: &str,
    op: &super::Operation,
    check: bool,
) -> Result<Vec<u8>> {
    let path = || payload.source.path().to_path_buf();
    let data = payload
        .read(op.data_offset, op.data_len)
        .map_err(|source| PayloadWriteError::Read {
            payload: path(),
            source: Box::new(source),
        })?;
    if let Some(want) = op.data_hash.filter(|_| check) {
        let got: [u8; 32] = Sha256::digest(&data).into();
        if got != want {
            return Err(PayloadWriteError::CopyHash {
                payload: path(),
                partition: name.to_string(),
                index: op.index,
                offset: op.data_offset,
            });
        }
    }
    Ok(data)
}

/// One partition's operations copied from `payload`: the manifest entry,
/// with each blob noted in `blobs` (read and checked when the payload is
/// streamed) and its new data offset.
fn copy_partition<'a>(
    payload: &'a super::Payload,
    name: &'a str,
    opts: &PayloadOptions,
    blobs: &mut Blobs<'a>,
) -> Result<PartitionUpdate> {
    let (part, mut update) = check_copyable(payload, name, opts)?;
    for op in part.ops.iter().filter(|op| op.data_len > 0) {
        let proto = update.operations.get_mut(op.index).ok_or_else(|| {
            PayloadWriteError::CopyMissingOp {
                payload: payload.source.path().to_path_buf(),
                partition: name.to_string(),
                index: op.index,
            }
        })?;
        proto.data_offset = Some(blobs.push_source(payload, name, op));
    }
    Ok(update)
}

pub(super) fn hash_file(file: &File, size: u64) -> io::Result<[u8; 32]> {
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::util::noise;

    #[test]
    fn replace_op_skips_xz_only_for_incompressible_data() {
        let text: Vec<u8> = b"ro.product.name=fuxi\n".repeat(50_000);
        let (kind, blob) = replace_op(text.clone(), 1, 1 << 20).unwrap();
        assert_eq!(kind, OpType::ReplaceXz);
        let mut back = vec![0u8; text.len()];
        crate::format::payload::decode::decode_into(kind, &blob, &mut back).unwrap();
        assert_eq!(back, text);
        for n in [100 << 10, 1 << 20] {
            let raw = noise(n, 7);
            assert!(looks_incompressible(&raw, 1) == (n >= 16 * SAMPLE), "{n}");
            assert_eq!(
                replace_op(raw.clone(), 1, n as u32).unwrap(),
                (OpType::Replace, raw)
            );
        }
        // The samples decide: noise where they fall, text between them.
        let mut mixed = text[..1 << 20].to_vec();
        let mid = mixed.len() / 2 - SAMPLE / 2;
        for at in [0, mid, mixed.len() - SAMPLE] {
            mixed[at..at + SAMPLE].copy_from_slice(&noise(SAMPLE, at as u64 + 1));
        }
        assert_eq!(replace_op(mixed, 1, 1 << 20).unwrap().0, OpType::Replace);
        // One compressible sample is enough to encode it all.
        let mut half = noise(1 << 20, 3);
        half[mid..mid + SAMPLE].copy_from_slice(&text[..SAMPLE]);
        assert_eq!(replace_op(half, 1, 1 << 20).unwrap().0, OpType::ReplaceXz);
    }

    /// A copied blob's CRC-32 comes from what the extractor recorded as it
    /// read the blob (once asked to keep them); blobs it did not read are
    /// read for it. Either way the CRC-32 is the payload's.
    #[test]
    fn copied_blobs_crc_from_what_the_extractor_recorded() {
        use crate::format::payload::Payload;
        use crate::format::source::FileSlice;
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("system.img");
        std::fs::write(&img, crate::util::noise_then_text(3 << 16, 5)).unwrap();
        let input = [ImageInput {
            name: "system".into(),
            path: img,
        }];
        let opts = PayloadOptions {
            chunk_size: 1 << 16,
            ..PayloadOptions::default()
        };
        let scratch = Path::new("scratch");
        let write = |p: &PreparedPayload<'_>| {
            let mut out = Vec::new();
            p.write_to(&mut out, Path::new("out"), &mut Donor::default())
                .unwrap();
            out
        };
        let made = prepare_payload(&input, &opts, tempfile::tempfile().unwrap(), scratch).unwrap();
        let path = dir.path().join("payload.bin");
        std::fs::write(&path, write(&made)).unwrap();
        let source = Payload::open(FileSlice::open(&path).unwrap()).unwrap();
        let copy = || {
            let inputs = [PayloadInput::Copy {
                payload: &source,
                partition: "system",
            }];
            prepare_payload_from(&inputs, &opts, tempfile::tempfile().unwrap(), scratch).unwrap()
        };
        let ops = &source.partitions[0].ops;
        assert!(ops.len() >= 6, "{}", ops.len());
        let want = crc32fast::hash(&write(&copy()));
        assert_eq!(copy().crc32().unwrap(), want);

        let extract = || crate::format::payload::extract::check_partition(&source, 0);
        let recorded = || {
            ops.iter()
                .filter(|op| source.blob_crcs.get(op.data_offset, op.data_len).is_some())
                .count()
        };
        // Nothing is recorded until asked for.
        assert!(extract());
        assert_eq!(recorded(), 0);
        source.blob_crcs.keep();
        assert!(extract());
        assert!(recorded() >= 6);
        for op in ops.iter().filter(|op| op.data_len > 0) {
            let blob = source.read(op.data_offset, op.data_len).unwrap();
            let got = source.blob_crcs.get(op.data_offset, op.data_len);
            assert_eq!(got, Some(crc32fast::hash(&blob)), "operation {}", op.index);
        }
        assert_eq!(copy().crc32().unwrap(), want);
        // The recorded value is what counts: a wrong one gives a wrong CRC.
        let op = &ops[2];
        let right = source.blob_crcs.get(op.data_offset, op.data_len).unwrap();
        source.blob_crcs.record(op.data_offset, op.data_len, !right);
        assert_ne!(copy().crc32().unwrap(), want);
    }
}
