//! The protobuf messages of update_engine's payload manifest (`DeltaArchiveManifest`).
//!
//! Written by hand from the format's field numbers (proto2, package
//! `chromeos_update_engine`). Every field is optional here, even the ones the
//! format calls required: a missing field must become a clear validation error
//! that names it, not a decode failure without context. Fields romkit does not
//! use are still declared when writers set them, so that re-encoding a manifest
//! keeps them.

/// A run of blocks: `num_blocks` blocks starting at `start_block`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Extent {
    /// First block of the run.
    #[prost(uint64, optional, tag = "1")]
    pub start_block: Option<u64>,
    /// Number of blocks in the run.
    #[prost(uint64, optional, tag = "2")]
    pub num_blocks: Option<u64>,
}

impl Extent {
    /// An extent of `num_blocks` blocks from `start_block`.
    pub fn new(start_block: u64, num_blocks: u64) -> Self {
        Extent {
            start_block: Some(start_block),
            num_blocks: Some(num_blocks),
        }
    }
    /// First block (0 when unset).
    pub fn start(&self) -> u64 {
        self.start_block.unwrap_or(0)
    }
    /// Block count (0 when unset).
    pub fn blocks(&self) -> u64 {
        self.num_blocks.unwrap_or(0)
    }
}

/// One signature over a hash, in a [`Signatures`] blob.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Signature {
    /// Deprecated key version.
    #[prost(uint32, optional, tag = "1")]
    pub version: Option<u32>,
    /// The raw signature bytes (for RSA: the modulus-sized PKCS#1 v1.5 block).
    #[prost(bytes = "vec", optional, tag = "2")]
    pub data: Option<Vec<u8>>,
    /// Signature size before padding to a fixed size (used for EC keys).
    #[prost(fixed32, optional, tag = "3")]
    pub unpadded_signature_size: Option<u32>,
}

/// The metadata-signature and payload-signature blobs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Signatures {
    /// One entry per signing key.
    #[prost(message, repeated, tag = "1")]
    pub signatures: Vec<Signature>,
}

/// Size and SHA-256 of a whole partition image.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PartitionInfo {
    /// Image size in bytes.
    #[prost(uint64, optional, tag = "1")]
    pub size: Option<u64>,
    /// SHA-256 of the image.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub hash: Option<Vec<u8>>,
}

/// One step that produces part of a partition.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstallOperation {
    /// Operation type, see [`OpType`].
    #[prost(int32, optional, tag = "1")]
    pub r#type: Option<i32>,
    /// Offset of the operation's data within the data section.
    #[prost(uint64, optional, tag = "2")]
    pub data_offset: Option<u64>,
    /// Length of the operation's data.
    #[prost(uint64, optional, tag = "3")]
    pub data_length: Option<u64>,
    /// Blocks read from the old partition (incremental operations).
    #[prost(message, repeated, tag = "4")]
    pub src_extents: Vec<Extent>,
    /// Bytes read from the source (for diff operations).
    #[prost(uint64, optional, tag = "5")]
    pub src_length: Option<u64>,
    /// Blocks written in the new partition.
    #[prost(message, repeated, tag = "6")]
    pub dst_extents: Vec<Extent>,
    /// Bytes written (for diff operations).
    #[prost(uint64, optional, tag = "7")]
    pub dst_length: Option<u64>,
    /// SHA-256 of the operation's data blob.
    #[prost(bytes = "vec", optional, tag = "8")]
    pub data_sha256_hash: Option<Vec<u8>>,
    /// SHA-256 of the source blocks (incremental operations).
    #[prost(bytes = "vec", optional, tag = "9")]
    pub src_sha256_hash: Option<Vec<u8>>,
}

/// A copy-on-write merge step of virtual A/B compression.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CowMergeOperation {
    /// COW_COPY = 0, COW_XOR = 1, COW_REPLACE = 2.
    #[prost(int32, optional, tag = "1")]
    pub r#type: Option<i32>,
    /// Source extent.
    #[prost(message, optional, tag = "2")]
    pub src_extent: Option<Extent>,
    /// Destination extent.
    #[prost(message, optional, tag = "3")]
    pub dst_extent: Option<Extent>,
    /// Byte offset within the source extent (XOR merges).
    #[prost(uint32, optional, tag = "4")]
    pub src_offset: Option<u32>,
}

/// Everything that updates one partition.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PartitionUpdate {
    /// Partition name without slot suffix (`system`, `boot`).
    #[prost(string, optional, tag = "1")]
    pub partition_name: Option<String>,
    /// Whether to run a post-install program from this partition.
    #[prost(bool, optional, tag = "2")]
    pub run_postinstall: Option<bool>,
    /// Path of the post-install program.
    #[prost(string, optional, tag = "3")]
    pub postinstall_path: Option<String>,
    /// Filesystem type for mounting the post-install program.
    #[prost(string, optional, tag = "4")]
    pub filesystem_type: Option<String>,
    /// Signatures over the new partition.
    #[prost(message, repeated, tag = "5")]
    pub new_partition_signature: Vec<Signature>,
    /// The source partition (incremental payloads).
    #[prost(message, optional, tag = "6")]
    pub old_partition_info: Option<PartitionInfo>,
    /// The resulting partition: size and SHA-256.
    #[prost(message, optional, tag = "7")]
    pub new_partition_info: Option<PartitionInfo>,
    /// Operations in application order.
    #[prost(message, repeated, tag = "8")]
    pub operations: Vec<InstallOperation>,
    /// Whether a failing post-install may be ignored.
    #[prost(bool, optional, tag = "9")]
    pub postinstall_optional: Option<bool>,
    /// Data covered by the dm-verity hash tree.
    #[prost(message, optional, tag = "10")]
    pub hash_tree_data_extent: Option<Extent>,
    /// Where the hash tree is written.
    #[prost(message, optional, tag = "11")]
    pub hash_tree_extent: Option<Extent>,
    /// Hash tree algorithm (`sha256`).
    #[prost(string, optional, tag = "12")]
    pub hash_tree_algorithm: Option<String>,
    /// Hash tree salt.
    #[prost(bytes = "vec", optional, tag = "13")]
    pub hash_tree_salt: Option<Vec<u8>>,
    /// Data covered by forward error correction.
    #[prost(message, optional, tag = "14")]
    pub fec_data_extent: Option<Extent>,
    /// Where FEC data is written.
    #[prost(message, optional, tag = "15")]
    pub fec_extent: Option<Extent>,
    /// FEC parity roots.
    #[prost(uint32, optional, tag = "16")]
    pub fec_roots: Option<u32>,
    /// Partition version string.
    #[prost(string, optional, tag = "17")]
    pub version: Option<String>,
    /// Virtual A/B merge sequence.
    #[prost(message, repeated, tag = "18")]
    pub merge_operations: Vec<CowMergeOperation>,
    /// Estimated COW size for virtual A/B.
    #[prost(uint64, optional, tag = "19")]
    pub estimate_cow_size: Option<u64>,
    /// Estimated maximum COW operation count.
    #[prost(uint64, optional, tag = "20")]
    pub estimate_op_count_max: Option<u64>,
}

/// A group of dynamic partitions sharing a size budget inside `super`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DynamicPartitionGroup {
    /// Group name (`qti_dynamic_partitions`, `main`).
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// Maximum total size of the group's partitions.
    #[prost(uint64, optional, tag = "2")]
    pub size: Option<u64>,
    /// Member partitions.
    #[prost(string, repeated, tag = "3")]
    pub partition_names: Vec<String>,
}

/// Virtual A/B compression features.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VabcFeatureSet {
    /// Threaded compression.
    #[prost(bool, optional, tag = "1")]
    pub threaded: Option<bool>,
    /// Batched writes.
    #[prost(bool, optional, tag = "2")]
    pub batch_writes: Option<bool>,
}

/// How the dynamic partitions are grouped and updated.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DynamicPartitionMetadata {
    /// The groups.
    #[prost(message, repeated, tag = "1")]
    pub groups: Vec<DynamicPartitionGroup>,
    /// Whether virtual A/B snapshots are used.
    #[prost(bool, optional, tag = "2")]
    pub snapshot_enabled: Option<bool>,
    /// Whether virtual A/B compression is used.
    #[prost(bool, optional, tag = "3")]
    pub vabc_enabled: Option<bool>,
    /// Compression for virtual A/B (`lz4`, `gz`, `none`).
    #[prost(string, optional, tag = "4")]
    pub vabc_compression_param: Option<String>,
    /// COW format version.
    #[prost(uint32, optional, tag = "5")]
    pub cow_version: Option<u32>,
    /// Virtual A/B compression features.
    #[prost(message, optional, tag = "6")]
    pub vabc_feature_set: Option<VabcFeatureSet>,
    /// COW compression factor.
    #[prost(uint64, optional, tag = "7")]
    pub compression_factor: Option<u64>,
}

/// An APEX shipped in the update.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ApexInfo {
    /// APEX package name.
    #[prost(string, optional, tag = "1")]
    pub package_name: Option<String>,
    /// APEX version.
    #[prost(int64, optional, tag = "2")]
    pub version: Option<i64>,
    /// Whether it is compressed.
    #[prost(bool, optional, tag = "3")]
    pub is_compressed: Option<bool>,
    /// Size once decompressed.
    #[prost(int64, optional, tag = "4")]
    pub decompressed_size: Option<i64>,
}

/// The payload manifest.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeltaArchiveManifest {
    /// Block size of every extent (4096).
    #[prost(uint32, optional, tag = "3")]
    pub block_size: Option<u32>,
    /// Offset of the payload-signature blob in the data section.
    #[prost(uint64, optional, tag = "4")]
    pub signatures_offset: Option<u64>,
    /// Size of the payload-signature blob.
    #[prost(uint64, optional, tag = "5")]
    pub signatures_size: Option<u64>,
    /// 0 for full payloads; >0 names the delta format version.
    #[prost(uint32, optional, tag = "12")]
    pub minor_version: Option<u32>,
    /// The partitions, in update order.
    #[prost(message, repeated, tag = "13")]
    pub partitions: Vec<PartitionUpdate>,
    /// Build timestamp; downgrades below it are refused by devices.
    #[prost(int64, optional, tag = "14")]
    pub max_timestamp: Option<i64>,
    /// Dynamic partition groups.
    #[prost(message, optional, tag = "15")]
    pub dynamic_partition_metadata: Option<DynamicPartitionMetadata>,
    /// Whether only some partitions are updated.
    #[prost(bool, optional, tag = "16")]
    pub partial_update: Option<bool>,
    /// APEX packages in the update.
    #[prost(message, repeated, tag = "17")]
    pub apex_info: Vec<ApexInfo>,
    /// Security patch level of the new build.
    #[prost(string, optional, tag = "18")]
    pub security_patch_level: Option<String>,
}

/// Operation types of `InstallOperation.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpType {
    /// Raw data written to the destination.
    Replace,
    /// bzip2-compressed data.
    ReplaceBz,
    /// Deprecated in-place move.
    Move,
    /// Deprecated in-place bsdiff.
    Bsdiff,
    /// Copy blocks from the old partition.
    SourceCopy,
    /// bsdiff against the old partition.
    SourceBsdiff,
    /// Write zeros.
    Zero,
    /// Discard blocks (contents unspecified; read back as zeros).
    Discard,
    /// xz-compressed data.
    ReplaceXz,
    /// puffin diff against the old partition.
    Puffdiff,
    /// brotli-compressed bsdiff.
    BrotliBsdiff,
    /// zucchini diff.
    Zucchini,
    /// bsdiff over LZ4-decompressed blocks.
    Lz4diffBsdiff,
    /// puffdiff over LZ4-decompressed blocks.
    Lz4diffPuffdiff,
    /// zstd-compressed data.
    ReplaceZstd,
}

impl OpType {
    /// Maps the wire value; `None` for values this version does not know.
    pub fn from_wire(v: i32) -> Option<Self> {
        Some(match v {
            0 => OpType::Replace,
            1 => OpType::ReplaceBz,
            2 => OpType::Move,
            3 => OpType::Bsdiff,
            4 => OpType::SourceCopy,
            5 => OpType::SourceBsdiff,
            6 => OpType::Zero,
            7 => OpType::Discard,
            8 => OpType::ReplaceXz,
            9 => OpType::Puffdiff,
            10 => OpType::BrotliBsdiff,
            11 => OpType::Zucchini,
            12 => OpType::Lz4diffBsdiff,
            13 => OpType::Lz4diffPuffdiff,
            14 => OpType::ReplaceZstd,
            _ => return None,
        })
    }

    /// The wire value.
    pub fn to_wire(self) -> i32 {
        match self {
            OpType::Replace => 0,
            OpType::ReplaceBz => 1,
            OpType::Move => 2,
            OpType::Bsdiff => 3,
            OpType::SourceCopy => 4,
            OpType::SourceBsdiff => 5,
            OpType::Zero => 6,
            OpType::Discard => 7,
            OpType::ReplaceXz => 8,
            OpType::Puffdiff => 9,
            OpType::BrotliBsdiff => 10,
            OpType::Zucchini => 11,
            OpType::Lz4diffBsdiff => 12,
            OpType::Lz4diffPuffdiff => 13,
            OpType::ReplaceZstd => 14,
        }
    }

    /// The name update_engine uses.
    pub fn name(self) -> &'static str {
        match self {
            OpType::Replace => "REPLACE",
            OpType::ReplaceBz => "REPLACE_BZ",
            OpType::Move => "MOVE",
            OpType::Bsdiff => "BSDIFF",
            OpType::SourceCopy => "SOURCE_COPY",
            OpType::SourceBsdiff => "SOURCE_BSDIFF",
            OpType::Zero => "ZERO",
            OpType::Discard => "DISCARD",
            OpType::ReplaceXz => "REPLACE_XZ",
            OpType::Puffdiff => "PUFFDIFF",
            OpType::BrotliBsdiff => "BROTLI_BSDIFF",
            OpType::Zucchini => "ZUCCHINI",
            OpType::Lz4diffBsdiff => "LZ4DIFF_BSDIFF",
            OpType::Lz4diffPuffdiff => "LZ4DIFF_PUFFDIFF",
            OpType::ReplaceZstd => "REPLACE_ZSTD",
        }
    }

    /// Whether the operation needs the old partition (an incremental payload).
    pub fn needs_source(self) -> bool {
        !matches!(
            self,
            OpType::Replace
                | OpType::ReplaceBz
                | OpType::ReplaceXz
                | OpType::ReplaceZstd
                | OpType::Zero
                | OpType::Discard
        )
    }

    /// Whether the operation carries a data blob.
    pub fn has_data(self) -> bool {
        !matches!(self, OpType::Zero | OpType::Discard | OpType::SourceCopy)
    }
}

impl std::fmt::Display for OpType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
