//! LP metadata: the dynamic-partition table of a `super` image (AOSP liblp).
//!
//! Layout of a super image: 4096 reserved bytes; the geometry (its SHA-256
//! over the 52-byte struct) at 4096 and its backup at 8192; then
//! `metadata_slot_count` primary metadata copies of `metadata_max_size` bytes
//! each, then as many backup copies; then, from the super block device's
//! `first_logical_sector`, the logical partitions' extents. Each metadata copy
//! is a header (128 bytes for v10.0/10.1, 256 for v10.2, which adds flags such
//! as "virtual A/B device") with SHA-256 checksums of itself and of the
//! tables that follow it: partitions, extents, groups, block devices.
//!
//! Reading validates every count, offset and size against the metadata area
//! and the device; an extent past the device or over the metadata area is an
//! error, as are overlapping extents. Writing lays partitions out in order,
//! each aligned to the device's alignment, checking group and device limits,
//! as `lpmake` does.

use std::io;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::format::image::ImageMap;
use crate::format::is_safe_partition_name;
use crate::format::source::ReadAt;
use crate::format::sparse;

/// Geometry magic ("gDla").
pub const GEOMETRY_MAGIC: u32 = 0x616c_4467;
/// Metadata header magic ("0PLA").
pub const HEADER_MAGIC: u32 = 0x414c_5030;
/// Bytes reserved at the start of the device.
pub const RESERVED_BYTES: u64 = 4096;
/// Space for one geometry copy.
pub const GEOMETRY_SIZE: u64 = 4096;
/// LP sectors are 512 bytes.
pub const SECTOR: u64 = 512;
/// Size of the geometry struct.
const GEOMETRY_STRUCT: usize = 52;
/// Header size for v10.0 and v10.1.
const HEADER_V1_0: u32 = 128;
/// Header size for v10.2.
const HEADER_V1_2: u32 = 256;
const PARTITION_ENTRY: u32 = 52;
const EXTENT_ENTRY: u32 = 24;
const GROUP_ENTRY: u32 = 48;
const BLOCK_DEVICE_ENTRY: u32 = 64;
/// Metadata larger than this is refused (real ones are 64 KiB).
const MAX_METADATA: u32 = 16 << 20;
/// More slots than this is refused (A/B uses 2, retrofit/virtual A/B 3).
const MAX_SLOTS: u32 = 64;

/// Partition attribute: read-only.
pub const ATTR_READONLY: u32 = 1;
/// Partition attribute: the name gets the slot suffix appended.
pub const ATTR_SLOT_SUFFIXED: u32 = 2;
/// Partition attribute: updated (v10.1).
pub const ATTR_UPDATED: u32 = 4;
/// Partition attribute: disabled (v10.1).
pub const ATTR_DISABLED: u32 = 8;
/// Header flag (v10.2): the device uses virtual A/B.
pub const HEADER_FLAG_VIRTUAL_AB: u32 = 1;
/// Extent target: linear mapping to a block device.
pub const TARGET_LINEAR: u32 = 0;
/// Extent target: reads as zeros.
pub const TARGET_ZERO: u32 = 1;

/// What is wrong with LP metadata.
#[derive(Debug, thiserror::Error)]
pub enum LpError {
    /// The structure is malformed or inconsistent.
    #[error("LP metadata, offset {offset}: {msg}")]
    Invalid {
        /// Offset in the super image.
        offset: u64,
        /// What is wrong.
        msg: String,
    },
    /// A SHA-256 checksum does not match.
    #[error("LP metadata, offset {offset}: {what} checksum mismatch")]
    Checksum {
        /// Offset of the structure in the super image.
        offset: u64,
        /// Which structure.
        what: String,
    },
    /// Reading failed.
    #[error("LP metadata: {0}")]
    Io(#[from] io::Error),
}

impl LpError {
    fn invalid(offset: u64, msg: impl Into<String>) -> Self {
        LpError::Invalid {
            offset,
            msg: msg.into(),
        }
    }
}

/// Why a super layout cannot be built or written.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// The block device name is not a usable name.
    #[error("device name {0:?} is not usable")]
    DeviceName(String),
    /// `metadata_slots` is out of range.
    #[error("metadata slots must be 1..={MAX_SLOTS}, not {0}")]
    Slots(u32),
    /// `metadata_max_size` is out of range or not sector-aligned.
    #[error("metadata max size must be a multiple of 512 between 512 and 16 MiB, not {0}")]
    MetadataMaxSize(u32),
    /// `block_size` is not a multiple of the sector size.
    #[error("block size must be a multiple of 512, not {0}")]
    BlockSize(u32),
    /// The device size is not a multiple of the sector size.
    #[error("device size {0} is not a multiple of 512")]
    DeviceSize(u64),
    /// The device cannot hold the metadata and one block.
    #[error("device of {size} bytes is too small: the metadata needs {need} bytes plus one block")]
    DeviceTooSmall {
        /// Device size.
        size: u64,
        /// Bytes the metadata area takes.
        need: u64,
    },
    /// A group name is not a usable name.
    #[error("group name {0:?} is not usable")]
    GroupName(String),
    /// A group is listed twice.
    #[error("group {0} is listed twice")]
    GroupTwice(String),
    /// A group is larger than the device.
    #[error("group {group} of {size} bytes is larger than the {device}-byte device")]
    GroupTooLarge {
        /// Group name.
        group: String,
        /// Its maximum size.
        size: u64,
        /// Device size.
        device: u64,
    },
    /// A partition name is not a usable name.
    #[error("partition name {0:?} is not usable")]
    PartitionName(String),
    /// A partition is listed twice.
    #[error("partition {0} is listed twice")]
    PartitionTwice(String),
    /// A partition names a group that is not defined.
    #[error("partition {partition} names group {group}, which is not defined")]
    UnknownGroup {
        /// Partition name.
        partition: String,
        /// The group it names.
        group: String,
    },
    /// The partitions of a group exceed its maximum size.
    #[error(
        "partitions of group {group} need {used} bytes (with {partition} of {size} bytes), the group allows {max}"
    )]
    GroupFull {
        /// Group name.
        group: String,
        /// Bytes its partitions need so far.
        used: u64,
        /// The partition that overflowed it.
        partition: String,
        /// That partition's size.
        size: u64,
        /// The group's maximum size.
        max: u64,
    },
    /// A partition does not fit on the device.
    #[error(
        "partition {partition} of {size} bytes does not fit: the {device}-byte device has {left} bytes left"
    )]
    NoRoom {
        /// Partition name.
        partition: String,
        /// Its size.
        size: u64,
        /// Device size.
        device: u64,
        /// Bytes left after the partitions before it.
        left: u64,
    },
    /// The serialized metadata is larger than `metadata_max_size`.
    #[error("metadata of {size} bytes exceeds the metadata max size of {max}")]
    MetadataTooLarge {
        /// Serialized size.
        size: u64,
        /// The limit.
        max: u32,
    },
    /// The metadata lists no block device.
    #[error("metadata lists no block device")]
    NoBlockDevice,
    /// An image is given for a partition the layout does not have.
    #[error("image for {0}, which the super layout does not have")]
    UnknownPartition(String),
    /// An image is larger than its partition.
    #[error("image for {partition} has {image} bytes, its partition {size}")]
    ImageTooLarge {
        /// Partition name.
        partition: String,
        /// Image size.
        image: u64,
        /// Partition size.
        size: u64,
    },
    /// An extent is not aligned to the sparse block size.
    #[error(
        "extent at byte {offset} of {len} bytes is not aligned to the {block}-byte sparse block"
    )]
    Unaligned {
        /// Byte offset of the extent in the super image.
        offset: u64,
        /// Its length.
        len: u64,
        /// The sparse block size.
        block: u64,
    },
    /// Reading an image or writing the super image failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The geometry block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Geometry {
    /// Maximum size of one metadata copy.
    pub metadata_max_size: u32,
    /// Number of metadata slots.
    pub metadata_slot_count: u32,
    /// Logical block size (4096).
    pub logical_block_size: u32,
}

impl Geometry {
    /// Bytes taken by the reserved area, geometries and all metadata copies.
    pub fn total_metadata_size(&self) -> u64 {
        RESERVED_BYTES
            + (GEOMETRY_SIZE
                + u64::from(self.metadata_max_size) * u64::from(self.metadata_slot_count))
                * 2
    }

    /// Offset of the primary metadata copy of `slot`.
    pub fn primary_offset(&self, slot: u32) -> u64 {
        RESERVED_BYTES + GEOMETRY_SIZE * 2 + u64::from(self.metadata_max_size) * u64::from(slot)
    }

    /// Offset of the backup metadata copy of `slot`.
    pub fn backup_offset(&self, slot: u32) -> u64 {
        self.primary_offset(self.metadata_slot_count)
            + u64::from(self.metadata_max_size) * u64::from(slot)
    }

    /// The 4096-byte geometry block with its checksum.
    pub fn to_block(&self) -> Vec<u8> {
        let mut b = vec![0u8; GEOMETRY_SIZE as usize];
        b[0..4].copy_from_slice(&GEOMETRY_MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&(GEOMETRY_STRUCT as u32).to_le_bytes());
        b[40..44].copy_from_slice(&self.metadata_max_size.to_le_bytes());
        b[44..48].copy_from_slice(&self.metadata_slot_count.to_le_bytes());
        b[48..52].copy_from_slice(&self.logical_block_size.to_le_bytes());
        let sum = Sha256::digest(&b[..GEOMETRY_STRUCT]);
        b[8..40].copy_from_slice(&sum);
        b
    }

    /// Parses and checks a geometry block read at `offset`.
    pub fn parse(b: &[u8], offset: u64) -> Result<Self, LpError> {
        if b.len() < GEOMETRY_STRUCT || le32(b, 0) != GEOMETRY_MAGIC {
            return Err(LpError::invalid(
                offset,
                "no LP geometry (magic 0x616c4467) here: not a super image",
            ));
        }
        if le32(b, 4) != GEOMETRY_STRUCT as u32 {
            return Err(LpError::invalid(
                offset + 4,
                format!("geometry struct size {} is not 52", le32(b, 4)),
            ));
        }
        let mut c = b[..GEOMETRY_STRUCT].to_vec();
        c[8..40].fill(0);
        if Sha256::digest(&c)[..] != b[8..40] {
            return Err(LpError::Checksum {
                offset,
                what: "geometry".into(),
            });
        }
        let g = Geometry {
            metadata_max_size: le32(b, 40),
            metadata_slot_count: le32(b, 44),
            logical_block_size: le32(b, 48),
        };
        if g.metadata_slot_count == 0 || g.metadata_slot_count > MAX_SLOTS {
            return Err(LpError::invalid(
                offset + 44,
                format!(
                    "metadata slot count {} is not in 1..={MAX_SLOTS}",
                    g.metadata_slot_count
                ),
            ));
        }
        if g.metadata_max_size < HEADER_V1_2
            || g.metadata_max_size > MAX_METADATA
            || u64::from(g.metadata_max_size) % SECTOR != 0
        {
            return Err(LpError::invalid(
                offset + 40,
                format!(
                    "metadata max size {} is not a multiple of 512 between 256 and {MAX_METADATA}",
                    g.metadata_max_size
                ),
            ));
        }
        if g.logical_block_size == 0 || u64::from(g.logical_block_size) % SECTOR != 0 {
            return Err(LpError::invalid(
                offset + 48,
                format!(
                    "logical block size {} is not a multiple of 512",
                    g.logical_block_size
                ),
            ));
        }
        Ok(g)
    }
}

/// A logical partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// Name (`system_a`).
    pub name: String,
    /// `ATTR_*` bits.
    pub attributes: u32,
    /// First extent in the extent table.
    pub first_extent: u32,
    /// Number of extents.
    pub num_extents: u32,
    /// Index in the group table.
    pub group: u32,
}

/// An extent of a logical partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Extent {
    /// Length in 512-byte sectors.
    pub num_sectors: u64,
    /// `TARGET_LINEAR` or `TARGET_ZERO`.
    pub target_type: u32,
    /// First physical sector (linear extents).
    pub target_data: u64,
    /// Block device index (linear extents).
    pub target_source: u32,
}

/// A partition group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Group {
    /// Name (`qti_dynamic_partitions_a`).
    pub name: String,
    /// Flags (bit 0: slot-suffixed).
    pub flags: u32,
    /// Maximum total size of its partitions (0: unlimited).
    pub maximum_size: u64,
}

/// A block device holding extents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockDevice {
    /// First sector usable by extents.
    pub first_logical_sector: u64,
    /// Alignment of extents in bytes.
    pub alignment: u32,
    /// Alignment offset in bytes.
    pub alignment_offset: u32,
    /// Size of the device in bytes.
    pub size: u64,
    /// Partition name of the device (`super`).
    pub name: String,
    /// Flags (bit 0: slot-suffixed).
    pub flags: u32,
}

/// One metadata copy, decoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Metadata {
    /// The geometry.
    pub geometry: Geometry,
    /// Major version (10).
    pub major: u16,
    /// Minor version (0, 1 or 2).
    pub minor: u16,
    /// Header flags (v10.2).
    pub flags: u32,
    /// Partitions.
    pub partitions: Vec<Partition>,
    /// Extents.
    pub extents: Vec<Extent>,
    /// Groups.
    pub groups: Vec<Group>,
    /// Block devices; the first is the super device itself.
    pub block_devices: Vec<BlockDevice>,
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]))
}
fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]))
}

/// A fixed-size, NUL-padded name field.
fn name_field(b: &[u8], offset: u64, what: &str) -> Result<String, LpError> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let s = std::str::from_utf8(&b[..end])
        .ok()
        .filter(|s| is_safe_partition_name(s) && s.len() < 36)
        .ok_or_else(|| {
            LpError::invalid(
                offset,
                format!(
                    "{what} name {:?} is not a usable name",
                    String::from_utf8_lossy(&b[..end])
                ),
            )
        })?;
    Ok(s.to_string())
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    let mut b = [0u8; 36];
    let n = name.len().min(35);
    b[..n].copy_from_slice(&name.as_bytes()[..n]);
    out.extend_from_slice(&b);
}

/// Reads the metadata header at `offset` and checks its magic, version,
/// size and checksum. Returns [`HEADER_V1_2`] bytes (the header and, for
/// older versions, what follows it).
fn read_header(src: &dyn ReadAt, offset: u64) -> Result<Vec<u8>, LpError> {
    let mut h = vec![0u8; HEADER_V1_2 as usize];
    src.read_at(&mut h, offset)?;
    if le32(&h, 0) != HEADER_MAGIC {
        return Err(LpError::invalid(
            offset,
            format!(
                "metadata header magic {:#010x} is not {HEADER_MAGIC:#010x}",
                le32(&h, 0)
            ),
        ));
    }
    let (major, minor) = (le16(&h, 4), le16(&h, 6));
    if major != 10 || minor > 2 {
        return Err(LpError::invalid(
            offset + 4,
            format!("metadata version {major}.{minor} is not 10.0, 10.1 or 10.2"),
        ));
    }
    let header_size = le32(&h, 8);
    let want = if minor >= 2 { HEADER_V1_2 } else { HEADER_V1_0 };
    if header_size != want {
        return Err(LpError::invalid(
            offset + 8,
            format!("header size {header_size} for version 10.{minor}, expected {want}"),
        ));
    }
    let mut hc = h[..header_size as usize].to_vec();
    hc[12..44].fill(0);
    if Sha256::digest(&hc)[..] != h[12..44] {
        return Err(LpError::Checksum {
            offset,
            what: "metadata header".into(),
        });
    }
    Ok(h)
}

/// A metadata copy's checked header and tables, for parsing table entries.
/// Every span [`Tables::span`] returns lies within the tables.
struct Tables<'a> {
    /// The header; its table descriptors are at 80..128.
    h: &'a [u8],
    /// The tables.
    t: &'a [u8],
    /// Image offset of the header.
    offset: u64,
    /// Image offset of the tables.
    at: u64,
}

impl Tables<'_> {
    /// Offset and count of table `i`, whose entries must be `entry` bytes.
    fn span(&self, i: usize, entry: u32, what: &str) -> Result<(usize, usize), LpError> {
        let (h, tables_size) = (self.h, self.t.len());
        let o = 80 + i * 12;
        let (off, n, size) = (le32(h, o), le32(h, o + 4), le32(h, o + 8));
        if size != entry {
            return Err(LpError::invalid(
                self.offset + o as u64 + 8,
                format!("{what} entry size {size}, expected {entry}"),
            ));
        }
        let end = u64::from(off) + u64::from(n) * u64::from(size);
        if end > tables_size as u64 {
            return Err(LpError::invalid(
                self.offset + o as u64,
                format!(
                    "{n} {what} entries at table offset {off} run past the {tables_size}-byte tables"
                ),
            ));
        }
        Ok((off as usize, n as usize))
    }

    /// Entry `i` of the table at `start`, with its image offset.
    fn entry(&self, start: usize, size: u32, i: usize) -> (&[u8], u64) {
        let o = start + i * size as usize;
        (&self.t[o..o + size as usize], self.at + o as u64)
    }

    fn groups(&self, start: usize, n: usize) -> Result<Vec<Group>, LpError> {
        (0..n)
            .map(|i| {
                let (b, at) = self.entry(start, GROUP_ENTRY, i);
                Ok(Group {
                    name: name_field(&b[..36], at, "group")?,
                    flags: le32(b, 36),
                    maximum_size: le64(b, 40),
                })
            })
            .collect()
    }

    fn block_devices(&self, start: usize, n: usize) -> Result<Vec<BlockDevice>, LpError> {
        (0..n)
            .map(|i| {
                let (b, at) = self.entry(start, BLOCK_DEVICE_ENTRY, i);
                Ok(BlockDevice {
                    first_logical_sector: le64(b, 0),
                    alignment: le32(b, 8),
                    alignment_offset: le32(b, 12),
                    size: le64(b, 16),
                    name: name_field(&b[24..60], at + 24, "block device")?,
                    flags: le32(b, 60),
                })
            })
            .collect()
    }

    fn extents(&self, start: usize, n: usize) -> Vec<Extent> {
        (0..n)
            .map(|i| {
                let (b, _) = self.entry(start, EXTENT_ENTRY, i);
                Extent {
                    num_sectors: le64(b, 0),
                    target_type: le32(b, 8),
                    target_data: le64(b, 12),
                    target_source: le32(b, 20),
                }
            })
            .collect()
    }

    /// Partitions, each with attributes known to version 10.`minor`, its
    /// extents among the `en` and its group among the `gn` of the tables.
    fn partitions(
        &self,
        start: usize,
        n: usize,
        minor: u16,
        en: usize,
        gn: usize,
    ) -> Result<Vec<Partition>, LpError> {
        let valid_attrs = ATTR_READONLY
            | ATTR_SLOT_SUFFIXED
            | if minor >= 1 {
                ATTR_UPDATED | ATTR_DISABLED
            } else {
                0
            };
        let mut partitions = Vec::with_capacity(n);
        for i in 0..n {
            let (b, at) = self.entry(start, PARTITION_ENTRY, i);
            let p = Partition {
                name: name_field(&b[..36], at, "partition")?,
                attributes: le32(b, 36),
                first_extent: le32(b, 40),
                num_extents: le32(b, 44),
                group: le32(b, 48),
            };
            if p.attributes & !valid_attrs != 0 {
                return Err(LpError::invalid(
                    at + 36,
                    format!(
                        "partition {} has unknown attributes {:#x} for version 10.{minor}",
                        p.name, p.attributes
                    ),
                ));
            }
            if u64::from(p.first_extent) + u64::from(p.num_extents) > en as u64 {
                return Err(LpError::invalid(
                    at + 40,
                    format!(
                        "partition {} uses extents {}..{}, the table has {en}",
                        p.name,
                        p.first_extent,
                        u64::from(p.first_extent) + u64::from(p.num_extents)
                    ),
                ));
            }
            if p.group as usize >= gn {
                return Err(LpError::invalid(
                    at + 48,
                    format!(
                        "partition {} is in group {}, the table has {gn}",
                        p.name, p.group
                    ),
                ));
            }
            partitions.push(p);
        }
        Ok(partitions)
    }
}

impl Metadata {
    /// Reads the geometry (primary, else backup) and the metadata of `slot`
    /// (primary copy, else backup) from a super image of `image_size` bytes.
    /// Returns the metadata and a note for every copy that had to be skipped.
    pub fn read(
        src: &dyn ReadAt,
        image_size: u64,
        slot: u32,
    ) -> Result<(Metadata, Vec<String>), LpError> {
        let mut notes = Vec::new();
        let geometry = match read_geometry(src, RESERVED_BYTES) {
            Ok(g) => g,
            Err(e @ LpError::Checksum { .. }) => {
                let g = read_geometry(src, RESERVED_BYTES + GEOMETRY_SIZE).map_err(|_| e)?;
                notes.push("primary geometry checksum mismatch; using the backup".to_string());
                g
            }
            Err(e) => return Err(e),
        };
        if slot >= geometry.metadata_slot_count {
            return Err(LpError::invalid(
                RESERVED_BYTES + 44,
                format!(
                    "metadata slot {slot} requested, the image has {}",
                    geometry.metadata_slot_count
                ),
            ));
        }
        if geometry.total_metadata_size() > image_size {
            return Err(LpError::invalid(
                RESERVED_BYTES + 40,
                format!(
                    "metadata area of {} bytes does not fit in the {image_size}-byte image",
                    geometry.total_metadata_size()
                ),
            ));
        }
        let primary = geometry.primary_offset(slot);
        let m = match Metadata::read_copy(src, &geometry, primary, image_size) {
            Ok(m) => m,
            Err(e @ (LpError::Checksum { .. } | LpError::Invalid { .. })) => {
                let backup = geometry.backup_offset(slot);
                let m = Metadata::read_copy(src, &geometry, backup, image_size).map_err(|_| e)?;
                notes.push(format!(
                    "primary metadata of slot {slot} is damaged; using the backup copy at offset {backup}"
                ));
                m
            }
            Err(e) => return Err(e),
        };
        Ok((m, notes))
    }

    /// Reads and validates the metadata copy at `offset`.
    pub fn read_copy(
        src: &dyn ReadAt,
        geometry: &Geometry,
        offset: u64,
        image_size: u64,
    ) -> Result<Metadata, LpError> {
        let h = read_header(src, offset)?;
        let (major, minor) = (le16(&h, 4), le16(&h, 6));
        let header_size = le32(&h, 8);
        let tables_size = le32(&h, 44);
        if u64::from(header_size) + u64::from(tables_size) > u64::from(geometry.metadata_max_size) {
            return Err(LpError::invalid(
                offset + 44,
                format!(
                    "tables of {tables_size} bytes do not fit in the {}-byte metadata slot",
                    geometry.metadata_max_size
                ),
            ));
        }
        let tables_at = offset + u64::from(header_size);
        let mut t = vec![0u8; tables_size as usize];
        src.read_at(&mut t, tables_at)?;
        if Sha256::digest(&t)[..] != h[48..80] {
            return Err(LpError::Checksum {
                offset: tables_at,
                what: "metadata tables".into(),
            });
        }
        let flags = if minor >= 2 { le32(&h, 128) } else { 0 };
        let tables = Tables {
            h: &h,
            t: &t,
            offset,
            at: tables_at,
        };
        let (po, pn) = tables.span(0, PARTITION_ENTRY, "partition")?;
        let (eo, en) = tables.span(1, EXTENT_ENTRY, "extent")?;
        let (go, gn) = tables.span(2, GROUP_ENTRY, "group")?;
        let (bo, bn) = tables.span(3, BLOCK_DEVICE_ENTRY, "block device")?;
        let groups = tables.groups(go, gn)?;
        let block_devices = tables.block_devices(bo, bn)?;
        let extents = tables.extents(eo, en);
        let partitions = tables.partitions(po, pn, minor, en, gn)?;
        let m = Metadata {
            geometry: *geometry,
            major,
            minor,
            flags,
            partitions,
            extents,
            groups,
            block_devices,
        };
        m.validate_layout(image_size, tables_at)?;
        Ok(m)
    }

    /// Checks the super device and every extent: inside its device, clear of
    /// the metadata area, not overlapping another extent.
    fn validate_layout(&self, image_size: u64, at: u64) -> Result<(), LpError> {
        let sup = self.block_devices.first().ok_or_else(|| {
            LpError::invalid(at, "metadata lists no block device (no super device)")
        })?;
        let meta_end = self.geometry.total_metadata_size();
        if sup
            .first_logical_sector
            .checked_mul(SECTOR)
            .is_none_or(|b| b < meta_end)
        {
            return Err(LpError::invalid(
                at,
                format!(
                    "first logical sector {} of {} lies inside the {meta_end}-byte metadata area",
                    sup.first_logical_sector, sup.name
                ),
            ));
        }
        if sup.size > image_size {
            return Err(LpError::invalid(
                at,
                format!(
                    "device {} declares {} bytes, the image has only {image_size}",
                    sup.name, sup.size
                ),
            ));
        }
        let mut used: Vec<(u64, u64, &str)> = Vec::new();
        for p in &self.partitions {
            for e in self.extents_of(p) {
                if e.target_type == TARGET_ZERO {
                    continue;
                }
                if e.target_type != TARGET_LINEAR {
                    return Err(LpError::invalid(
                        at,
                        format!(
                            "partition {}: extent target type {} is unknown",
                            p.name, e.target_type
                        ),
                    ));
                }
                let dev = self
                    .block_devices
                    .get(e.target_source as usize)
                    .ok_or_else(|| {
                        LpError::invalid(
                            at,
                            format!(
                                "partition {}: extent on block device {}, the table has {}",
                                p.name,
                                e.target_source,
                                self.block_devices.len()
                            ),
                        )
                    })?;
                let end = e.target_data.checked_add(e.num_sectors);
                if end.is_none_or(|end| end.checked_mul(SECTOR).is_none_or(|b| b > dev.size)) {
                    return Err(LpError::invalid(
                        at,
                        format!(
                            "partition {}: extent at sector {} of {} sectors runs past the end of {} ({} bytes)",
                            p.name, e.target_data, e.num_sectors, dev.name, dev.size
                        ),
                    ));
                }
                if e.target_data < dev.first_logical_sector {
                    return Err(LpError::invalid(
                        at,
                        format!(
                            "partition {}: extent at sector {} overlaps the metadata area of {} (logical data starts at sector {})",
                            p.name, e.target_data, dev.name, dev.first_logical_sector
                        ),
                    ));
                }
                if e.target_source == 0 {
                    used.push((e.target_data, e.target_data + e.num_sectors, &p.name));
                }
            }
        }
        for (i, g) in self.groups.iter().enumerate() {
            let need = self.group_used(i);
            if g.maximum_size > 0 && need > g.maximum_size {
                return Err(LpError::invalid(
                    at,
                    format!(
                        "group {} allows {} bytes, its partitions take {need}",
                        g.name, g.maximum_size
                    ),
                ));
            }
        }
        used.sort();
        for w in used.windows(2) {
            if w[0].1 > w[1].0 {
                return Err(LpError::invalid(
                    at,
                    format!(
                        "partitions {} and {} overlap at sector {}",
                        w[0].2, w[1].2, w[1].0
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The extents of `p`.
    pub fn extents_of(&self, p: &Partition) -> &[Extent] {
        let a = p.first_extent as usize;
        self.extents
            .get(a..a + p.num_extents as usize)
            .unwrap_or(&[])
    }

    /// Size of `p` in bytes.
    pub fn partition_size(&self, p: &Partition) -> u64 {
        self.extents_of(p)
            .iter()
            .map(|e| e.num_sectors * SECTOR)
            .sum()
    }

    /// A partition by name.
    pub fn partition(&self, name: &str) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.name == name)
    }

    /// Total size of the partitions in group `g`.
    pub fn group_used(&self, g: usize) -> u64 {
        self.partitions
            .iter()
            .filter(|p| p.group as usize == g)
            .map(|p| self.partition_size(p))
            .sum()
    }

    /// Whether the header says virtual A/B.
    pub fn virtual_ab(&self) -> bool {
        self.flags & HEADER_FLAG_VIRTUAL_AB != 0
    }

    /// The metadata copy as stored: header and tables, with checksums.
    pub fn serialize(&self) -> Vec<u8> {
        let mut parts = Vec::new();
        for p in &self.partitions {
            put_name(&mut parts, &p.name);
            parts.extend_from_slice(&p.attributes.to_le_bytes());
            parts.extend_from_slice(&p.first_extent.to_le_bytes());
            parts.extend_from_slice(&p.num_extents.to_le_bytes());
            parts.extend_from_slice(&p.group.to_le_bytes());
        }
        let mut exts = Vec::new();
        for e in &self.extents {
            exts.extend_from_slice(&e.num_sectors.to_le_bytes());
            exts.extend_from_slice(&e.target_type.to_le_bytes());
            exts.extend_from_slice(&e.target_data.to_le_bytes());
            exts.extend_from_slice(&e.target_source.to_le_bytes());
        }
        let mut groups = Vec::new();
        for g in &self.groups {
            put_name(&mut groups, &g.name);
            groups.extend_from_slice(&g.flags.to_le_bytes());
            groups.extend_from_slice(&g.maximum_size.to_le_bytes());
        }
        let mut devs = Vec::new();
        for d in &self.block_devices {
            devs.extend_from_slice(&d.first_logical_sector.to_le_bytes());
            devs.extend_from_slice(&d.alignment.to_le_bytes());
            devs.extend_from_slice(&d.alignment_offset.to_le_bytes());
            devs.extend_from_slice(&d.size.to_le_bytes());
            put_name(&mut devs, &d.name);
            devs.extend_from_slice(&d.flags.to_le_bytes());
        }
        let header_size = if self.minor >= 2 {
            HEADER_V1_2
        } else {
            HEADER_V1_0
        };
        let mut h = vec![0u8; header_size as usize];
        h[0..4].copy_from_slice(&HEADER_MAGIC.to_le_bytes());
        h[4..6].copy_from_slice(&self.major.to_le_bytes());
        h[6..8].copy_from_slice(&self.minor.to_le_bytes());
        h[8..12].copy_from_slice(&header_size.to_le_bytes());
        let offsets = [
            (0usize, self.partitions.len(), PARTITION_ENTRY),
            (parts.len(), self.extents.len(), EXTENT_ENTRY),
            (parts.len() + exts.len(), self.groups.len(), GROUP_ENTRY),
            (
                parts.len() + exts.len() + groups.len(),
                self.block_devices.len(),
                BLOCK_DEVICE_ENTRY,
            ),
        ];
        let mut tables = parts;
        tables.extend_from_slice(&exts);
        tables.extend_from_slice(&groups);
        tables.extend_from_slice(&devs);
        h[44..48].copy_from_slice(&(tables.len() as u32).to_le_bytes());
        h[48..80].copy_from_slice(&Sha256::digest(&tables));
        for (i, (off, n, size)) in offsets.into_iter().enumerate() {
            let o = 80 + i * 12;
            h[o..o + 4].copy_from_slice(&(off as u32).to_le_bytes());
            h[o + 4..o + 8].copy_from_slice(&(n as u32).to_le_bytes());
            h[o + 8..o + 12].copy_from_slice(&size.to_le_bytes());
        }
        if self.minor >= 2 {
            h[128..132].copy_from_slice(&self.flags.to_le_bytes());
        }
        let sum = Sha256::digest(&h);
        h[12..44].copy_from_slice(&sum);
        h.extend_from_slice(&tables);
        h
    }

    /// The whole metadata area (reserved bytes, both geometries, every
    /// primary and backup slot holding this metadata), as written to the
    /// start of the super image.
    pub fn metadata_area(&self) -> Result<Vec<u8>, LayoutError> {
        let blob = self.serialize();
        let g = &self.geometry;
        if blob.len() as u64 > u64::from(g.metadata_max_size) {
            return Err(LayoutError::MetadataTooLarge {
                size: blob.len() as u64,
                max: g.metadata_max_size,
            });
        }
        let mut area = vec![0u8; g.total_metadata_size() as usize];
        let geo = g.to_block();
        area[RESERVED_BYTES as usize..][..geo.len()].copy_from_slice(&geo);
        area[(RESERVED_BYTES + GEOMETRY_SIZE) as usize..][..geo.len()].copy_from_slice(&geo);
        for slot in 0..g.metadata_slot_count {
            for off in [g.primary_offset(slot), g.backup_offset(slot)] {
                area[off as usize..][..blob.len()].copy_from_slice(&blob);
            }
        }
        Ok(area)
    }

    /// Checks every geometry and metadata copy: returns (what, problem) for
    /// each that is damaged or differs from the primary copy of slot 0.
    pub fn check_all_copies(&self, src: &dyn ReadAt, image_size: u64) -> Vec<(String, String)> {
        let mut bad = Vec::new();
        for (what, off) in [
            ("primary geometry", RESERVED_BYTES),
            ("backup geometry", RESERVED_BYTES + GEOMETRY_SIZE),
        ] {
            match read_geometry(src, off) {
                Ok(g) if g == self.geometry => {}
                Ok(_) => bad.push((what.to_string(), "differs from the geometry in use".into())),
                Err(e) => bad.push((what.to_string(), e.to_string())),
            }
        }
        let g = &self.geometry;
        for slot in 0..g.metadata_slot_count {
            for (kind, off) in [
                ("primary", g.primary_offset(slot)),
                ("backup", g.backup_offset(slot)),
            ] {
                let what = format!("{kind} metadata slot {slot}");
                match Metadata::read_copy(src, g, off, image_size) {
                    Ok(m) if slot == 0 && m != *self => {
                        bad.push((what, "differs from the metadata in use".into()))
                    }
                    Ok(_) => {}
                    Err(e) => bad.push((what, e.to_string())),
                }
            }
        }
        bad
    }
}

fn read_geometry(src: &dyn ReadAt, offset: u64) -> Result<Geometry, LpError> {
    let mut b = vec![0u8; GEOMETRY_STRUCT];
    src.read_at(&mut b, offset)?;
    Geometry::parse(&b, offset)
}

// ---------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------

/// A partition to lay out.
#[derive(Clone, Debug)]
pub struct PartitionSpec {
    /// Name, with its slot suffix if any (`system_a`).
    pub name: String,
    /// Group name (must be one of `SuperSpec::groups`, or `default`).
    pub group: String,
    /// `ATTR_*` bits (lpmake's `readonly` is [`ATTR_READONLY`]).
    pub attributes: u32,
    /// Size in bytes (rounded up to the logical block size).
    pub size: u64,
}

/// What `lpmake` is told: device, metadata, groups, partitions.
#[derive(Clone, Debug)]
pub struct SuperSpec {
    /// Name of the super block device.
    pub device_name: String,
    /// Device size in bytes.
    pub device_size: u64,
    /// Maximum metadata size (65536 on phones).
    pub metadata_max_size: u32,
    /// Metadata slots (2 for A/B, 3 for virtual A/B builds).
    pub metadata_slots: u32,
    /// Extent alignment in bytes (1 MiB by default).
    pub alignment: u32,
    /// Alignment offset in bytes.
    pub alignment_offset: u32,
    /// Logical block size (4096).
    pub block_size: u32,
    /// Set the virtual A/B header flag (metadata v10.2).
    pub virtual_ab: bool,
    /// Groups other than `default`: (name, maximum size; 0 = unlimited).
    pub groups: Vec<(String, u64)>,
    /// Partitions, laid out in this order.
    pub partitions: Vec<PartitionSpec>,
}

impl Default for SuperSpec {
    fn default() -> Self {
        SuperSpec {
            device_name: "super".into(),
            device_size: 0,
            metadata_max_size: 65536,
            metadata_slots: 2,
            alignment: 1 << 20,
            alignment_offset: 0,
            block_size: 4096,
            virtual_ab: false,
            groups: Vec::new(),
            partitions: Vec::new(),
        }
    }
}

fn align_to(v: u64, align: u64, offset: u64) -> u64 {
    if align == 0 {
        return v;
    }
    // The smallest x >= v with x % align == offset % align.
    let o = offset % align;
    let base = v.saturating_sub(o).div_ceil(align) * align + o;
    if base < v { base + align } else { base }
}

impl SuperSpec {
    /// Lays the partitions out and returns the metadata, or a message naming
    /// what does not fit.
    pub fn build(&self) -> Result<Metadata, LayoutError> {
        self.check_metadata_params()?;
        let bs = u64::from(self.block_size);
        if bs == 0 || bs % SECTOR != 0 {
            return Err(LayoutError::BlockSize(self.block_size));
        }
        let geometry = Geometry {
            metadata_max_size: self.metadata_max_size,
            metadata_slot_count: self.metadata_slots,
            logical_block_size: self.block_size,
        };
        let first = self.first_usable(&geometry, bs)?;
        let groups = self.groups()?;
        let mut layout = Layout {
            spec: self,
            groups: &groups,
            bs,
            used: vec![0u64; groups.len()],
            cursor: first / SECTOR,
            end: self.device_size / SECTOR,
            partitions: Vec::new(),
            extents: Vec::new(),
            minor: 0,
        };
        for p in &self.partitions {
            layout.add(p)?;
        }
        let Layout {
            partitions,
            extents,
            mut minor,
            ..
        } = layout;
        let mut flags = 0;
        if self.virtual_ab {
            minor = 2;
            flags |= HEADER_FLAG_VIRTUAL_AB;
        }
        let m = Metadata {
            geometry,
            major: 10,
            minor,
            flags,
            partitions,
            extents,
            groups,
            block_devices: vec![BlockDevice {
                first_logical_sector: first / SECTOR,
                alignment: self.alignment,
                alignment_offset: self.alignment_offset,
                size: self.device_size,
                name: self.device_name.clone(),
                flags: 0,
            }],
        };
        let blob = m.serialize();
        if blob.len() as u64 > u64::from(self.metadata_max_size) {
            return Err(LayoutError::MetadataTooLarge {
                size: blob.len() as u64,
                max: self.metadata_max_size,
            });
        }
        Ok(m)
    }

    /// The device name, slot count and metadata size are ones liblp takes.
    fn check_metadata_params(&self) -> Result<(), LayoutError> {
        if !lp_name_ok(&self.device_name) {
            return Err(LayoutError::DeviceName(self.device_name.clone()));
        }
        if self.metadata_slots == 0 || self.metadata_slots > MAX_SLOTS {
            return Err(LayoutError::Slots(self.metadata_slots));
        }
        if self.metadata_max_size < HEADER_V1_2
            || self.metadata_max_size > MAX_METADATA
            || u64::from(self.metadata_max_size) % SECTOR != 0
        {
            return Err(LayoutError::MetadataMaxSize(self.metadata_max_size));
        }
        Ok(())
    }

    /// The first byte partitions may use: after the metadata area, aligned
    /// as the device asks (else to the block size); the device must hold at
    /// least one block more.
    fn first_usable(&self, geometry: &Geometry, bs: u64) -> Result<u64, LayoutError> {
        let align = u64::from(self.alignment);
        let align_off = u64::from(self.alignment_offset);
        let first = if align > 0 || align_off > 0 {
            align_to(geometry.total_metadata_size(), align, align_off)
        } else {
            align_to(geometry.total_metadata_size(), bs, 0)
        };
        if !self.device_size.is_multiple_of(SECTOR) {
            return Err(LayoutError::DeviceSize(self.device_size));
        }
        if self.device_size < first + bs {
            return Err(LayoutError::DeviceTooSmall {
                size: self.device_size,
                need: first,
            });
        }
        Ok(first)
    }

    /// `default` first (its size set when the spec names it), then the
    /// spec's other groups in order.
    fn groups(&self) -> Result<Vec<Group>, LayoutError> {
        let mut groups = vec![Group {
            name: "default".into(),
            flags: 0,
            maximum_size: 0,
        }];
        for (n, size) in &self.groups {
            if n == "default" {
                groups[0].maximum_size = *size;
                continue;
            }
            if !lp_name_ok(n) {
                return Err(LayoutError::GroupName(n.clone()));
            }
            if groups.iter().any(|g| &g.name == n) {
                return Err(LayoutError::GroupTwice(n.clone()));
            }
            if *size > self.device_size {
                return Err(LayoutError::GroupTooLarge {
                    group: n.clone(),
                    size: *size,
                    device: self.device_size,
                });
            }
            groups.push(Group {
                name: n.clone(),
                flags: 0,
                maximum_size: *size,
            });
        }
        Ok(groups)
    }
}

/// A name liblp stores: safe, and short enough for its 36-byte field.
fn lp_name_ok(n: &str) -> bool {
    is_safe_partition_name(n) && n.len() < 36
}

/// Partitions laid out so far by [`SuperSpec::build`]: each gets one
/// aligned linear extent after the previous one (none when empty).
struct Layout<'a> {
    spec: &'a SuperSpec,
    groups: &'a [Group],
    bs: u64,
    /// Bytes used per group.
    used: Vec<u64>,
    /// First free sector.
    cursor: u64,
    /// Sectors of the device.
    end: u64,
    partitions: Vec<Partition>,
    extents: Vec<Extent>,
    /// Metadata minor version the attributes need.
    minor: u16,
}

impl Layout<'_> {
    fn add(&mut self, p: &PartitionSpec) -> Result<(), LayoutError> {
        if !lp_name_ok(&p.name) {
            return Err(LayoutError::PartitionName(p.name.clone()));
        }
        if self.partitions.iter().any(|q| q.name == p.name) {
            return Err(LayoutError::PartitionTwice(p.name.clone()));
        }
        let gi = self
            .groups
            .iter()
            .position(|g| g.name == p.group)
            .ok_or_else(|| LayoutError::UnknownGroup {
                partition: p.name.clone(),
                group: p.group.clone(),
            })?;
        let size = p.size.div_ceil(self.bs) * self.bs;
        self.used[gi] += size;
        let g = &self.groups[gi];
        if g.maximum_size > 0 && self.used[gi] > g.maximum_size {
            return Err(LayoutError::GroupFull {
                group: g.name.clone(),
                used: self.used[gi],
                partition: p.name.clone(),
                size,
                max: g.maximum_size,
            });
        }
        if p.attributes & (ATTR_UPDATED | ATTR_DISABLED) != 0 {
            self.minor = self.minor.max(1);
        }
        let first_extent = self.extents.len() as u32;
        let num_extents = if size > 0 {
            self.add_extent(&p.name, size)?;
            1
        } else {
            0
        };
        self.partitions.push(Partition {
            name: p.name.clone(),
            attributes: p.attributes,
            first_extent,
            num_extents,
            group: gi as u32,
        });
        Ok(())
    }

    /// One linear extent of `size` bytes at the next aligned free sector.
    fn add_extent(&mut self, name: &str, size: u64) -> Result<(), LayoutError> {
        let align = u64::from(self.spec.alignment);
        let align_off = u64::from(self.spec.alignment_offset);
        let start = align_to(self.cursor * SECTOR, align, align_off).div_ceil(SECTOR);
        let sectors = size / SECTOR;
        if start + sectors > self.end {
            return Err(LayoutError::NoRoom {
                partition: name.to_string(),
                size,
                device: self.spec.device_size,
                left: self.end.saturating_sub(start) * SECTOR,
            });
        }
        self.extents.push(Extent {
            num_sectors: sectors,
            target_type: TARGET_LINEAR,
            target_data: start,
            target_source: 0,
        });
        self.cursor = start + sectors;
        Ok(())
    }
}

/// The spec that rebuilds `m` with new partition sizes (`sizes` by name;
/// partitions not named keep their size).
pub fn respec(m: &Metadata, sizes: &[(String, u64)]) -> SuperSpec {
    let sup = &m.block_devices[0];
    SuperSpec {
        device_name: sup.name.clone(),
        device_size: sup.size,
        metadata_max_size: m.geometry.metadata_max_size,
        metadata_slots: m.geometry.metadata_slot_count,
        alignment: sup.alignment,
        alignment_offset: sup.alignment_offset,
        block_size: m.geometry.logical_block_size,
        virtual_ab: m.virtual_ab(),
        groups: m
            .groups
            .iter()
            .map(|g| (g.name.clone(), g.maximum_size))
            .collect(),
        partitions: m
            .partitions
            .iter()
            .map(|p| PartitionSpec {
                name: p.name.clone(),
                group: m.groups[p.group as usize].name.clone(),
                attributes: p.attributes,
                size: sizes
                    .iter()
                    .find(|(n, _)| *n == p.name)
                    .map_or_else(|| m.partition_size(p), |(_, s)| *s),
            })
            .collect(),
    }
}

/// What a super image is made of: the metadata area at offset 0, then runs
/// of partition images, checked against the layout.
pub struct SuperPlan<'a> {
    /// The metadata area ([`Metadata::metadata_area`]).
    pub area: Vec<u8>,
    /// Size of the super block device.
    pub device_size: u64,
    /// (offset in the super image, length, image, offset in the image), by offset.
    pub runs: Vec<(u64, u64, &'a ImageMap, u64)>,
}

impl<'a> SuperPlan<'a> {
    /// Places the partition images (by LP name; partitions without an image
    /// stay empty) on the layout of `m`.
    pub fn new(m: &Metadata, images: &[(String, &'a ImageMap)]) -> Result<Self, LayoutError> {
        let area = m.metadata_area()?;
        let dev = m.block_devices.first().ok_or(LayoutError::NoBlockDevice)?;
        for (name, img) in images {
            let p = m
                .partition(name)
                .ok_or_else(|| LayoutError::UnknownPartition(name.clone()))?;
            let size = m.partition_size(p);
            if img.size > size {
                return Err(LayoutError::ImageTooLarge {
                    partition: name.clone(),
                    image: img.size,
                    size,
                });
            }
        }
        let mut runs: Vec<(u64, u64, &ImageMap, u64)> = Vec::new();
        for (name, img) in images {
            let Some(p) = m.partition(name) else { continue };
            let mut logical = 0u64;
            for e in m.extents_of(p) {
                let len = e.num_sectors * SECTOR;
                if e.target_type == TARGET_LINEAR && e.target_source == 0 && logical < img.size {
                    runs.push((e.target_data * SECTOR, len, img, logical));
                }
                logical += len;
            }
        }
        runs.sort_by_key(|r| r.0);
        Ok(SuperPlan {
            area,
            device_size: dev.size,
            runs,
        })
    }

    /// Writes the raw super image into `out` (sized to the device).
    pub fn write_raw(&self, out: &std::fs::File) -> io::Result<()> {
        out.set_len(self.device_size)?;
        std::os::unix::fs::FileExt::write_all_at(out, &self.area, 0)?;
        for (off, len, img, from) in &self.runs {
            let n = (*len).min(img.size - from);
            img.copy_to(*from, n, out, *off)?;
        }
        Ok(())
    }

    /// Writes the super image as a sparse image (or parts, as `opts` say)
    /// into `sink`, with everything outside the metadata and the partitions
    /// DONT_CARE.
    pub fn write_sparse(
        &self,
        opts: &sparse::SparseOptions,
        sink: &mut dyn sparse::PartSink,
    ) -> Result<Vec<sparse::PartSummary>, LayoutError> {
        let bs = u64::from(opts.block_size);
        if bs == 0 {
            return Err(LayoutError::Io(io::Error::other(
                "block size must be a positive multiple of 4",
            )));
        }
        let mut regions = vec![sparse::Region {
            offset: 0,
            len: (self.area.len() as u64).div_ceil(bs) * bs,
            src: &self.area,
            src_offset: 0,
            src_len: self.area.len() as u64,
        }];
        for (off, len, img, from) in &self.runs {
            if off % bs != 0 || len % bs != 0 {
                return Err(LayoutError::Unaligned {
                    offset: *off,
                    len: *len,
                    block: bs,
                });
            }
            regions.push(sparse::Region {
                offset: *off,
                len: *len,
                src: *img,
                src_offset: *from,
                src_len: img.size - from,
            });
        }
        let size = self.device_size.div_ceil(bs) * bs;
        Ok(sparse::write(size, &regions, opts, sink)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_serialize_read() {
        let spec = SuperSpec {
            device_size: 64 << 20,
            metadata_slots: 3,
            virtual_ab: true,
            groups: vec![("main_a".into(), 32 << 20), ("main_b".into(), 32 << 20)],
            partitions: vec![
                PartitionSpec {
                    name: "system_a".into(),
                    group: "main_a".into(),
                    attributes: ATTR_READONLY,
                    size: 5 << 20,
                },
                PartitionSpec {
                    name: "vendor_a".into(),
                    group: "main_a".into(),
                    attributes: ATTR_READONLY,
                    size: 3000,
                },
                PartitionSpec {
                    name: "system_b".into(),
                    group: "main_b".into(),
                    attributes: ATTR_READONLY,
                    size: 0,
                },
            ],
            ..Default::default()
        };
        let m = spec.build().unwrap();
        assert_eq!(m.minor, 2);
        let mut img = m.metadata_area().unwrap();
        img.resize(64 << 20, 0);
        let (r, notes) = Metadata::read(&img, img.len() as u64, 0).unwrap();
        assert!(notes.is_empty());
        assert_eq!(r, m);
        assert_eq!(r.partition_size(r.partition("vendor_a").unwrap()), 4096);
        assert!(r.check_all_copies(&img, img.len() as u64).is_empty());
        let mut big = spec.clone();
        big.partitions[0].size = 40 << 20;
        assert!(
            big.build()
                .unwrap_err()
                .to_string()
                .contains("group main_a")
        );
        // A flipped table byte is a checksum failure; the backup still reads.
        let off = m.geometry.primary_offset(0) as usize + 256 + 3;
        img[off] ^= 1;
        let (_, notes) = Metadata::read(&img, img.len() as u64, 0).unwrap();
        assert_eq!(notes.len(), 1);
        assert_eq!(r.check_all_copies(&img, img.len() as u64).len(), 1);
    }

    #[test]
    fn alignment() {
        assert_eq!(align_to(0, 1 << 20, 0), 0);
        assert_eq!(align_to(1, 1 << 20, 0), 1 << 20);
        assert_eq!(align_to(1 << 20, 1 << 20, 0), 1 << 20);
        assert_eq!(align_to(5, 16, 4), 20);
        assert_eq!(align_to(3, 16, 4), 4);
    }
}
