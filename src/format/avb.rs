//! AVB vbmeta image headers (`AvbVBMetaImageHeader` of AOSP's libavb): the
//! 256-byte big-endian header at the start of a vbmeta image, followed by the
//! authentication data block (hash, signature) and the auxiliary data block
//! (public key, its metadata, descriptors).
//!
//! romkit reads the header and sets its verification-disabled flags, as
//! `fastboot --disable-verity --disable-verification` does when it flashes a
//! vbmeta image: images rebuilt from edited trees no longer match the hash
//! descriptors, and a device only boots them with verification off. Like
//! fastboot, patching needs only the magic and the flags field; [`validate`]
//! checks the whole header for callers that go on to read the blocks.
//!
//! [`validate`]: VbmetaHeader::validate
//!
//! Partition images carry their vbmeta blob behind a footer; [`footer`] reads
//! it and refreshes the dm-verity data it describes.

use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::format::verity::VerityError;
use crate::util::read_up_to;

pub mod footer;

/// Magic at offset 0.
pub const MAGIC: [u8; 4] = *b"AVB0";
/// Size of the header.
pub const HEADER_SIZE: usize = 256;
/// Offset of the `flags` field.
pub const FLAGS_OFFSET: usize = 120;
/// Bytes needed to patch the flags: the header up to and including
/// `rollback_index_location`.
pub const PATCH_SIZE: usize = 128;
/// `flags` bit: the dm-verity hashtree is not set up.
pub const FLAG_HASHTREE_DISABLED: u32 = 1;
/// `flags` bit: descriptors are not verified at all.
pub const FLAG_VERIFICATION_DISABLED: u32 = 2;
/// The libavb major version romkit understands.
pub const VERSION_MAJOR: u32 = 1;
/// The newest libavb minor version romkit understands.
pub const VERSION_MINOR: u32 = 3;
/// Authentication and auxiliary blocks are multiples of this many bytes.
const BLOCK_ALIGN: u64 = 64;

/// Why a vbmeta header cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AvbError {
    /// Fewer bytes than the header needs.
    #[error("vbmeta header: {len} bytes, the header needs {need}")]
    Truncated {
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The image does not start with `AVB0`.
    #[error("vbmeta header: magic at offset 0 is {found:02x?}, not \"AVB0\"")]
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// A field holds a value romkit does not accept.
    #[error("vbmeta header: {field} at offset {offset} is {value}: {why}")]
    Field {
        /// The field's name in libavb.
        field: &'static str,
        /// Its value.
        value: u64,
        /// Its offset in the header.
        offset: usize,
        /// What is wrong with it.
        why: String,
    },
    /// A field of the footer at the end of a partition image is wrong.
    #[error("AVB footer: {field} at offset {offset} is {value}: {why}")]
    Footer {
        /// The field's name in libavb.
        field: &'static str,
        /// Its value.
        value: u64,
        /// Its offset in the image.
        offset: u64,
        /// What is wrong with it.
        why: String,
    },
    /// A field of a hashtree descriptor is wrong.
    #[error("hashtree descriptor: {field} at offset {offset} is {value}: {why}")]
    Descriptor {
        /// The field's name in libavb.
        field: &'static str,
        /// Its value.
        value: u64,
        /// Its offset in the image.
        offset: u64,
        /// What is wrong with it.
        why: String,
    },
    /// The footer's vbmeta blob describes no hash tree.
    #[error("AVB footer: the vbmeta blob has no hashtree descriptor")]
    NoHashtree,
    /// An edited filesystem is larger than the region the tree covers.
    #[error(
        "AVB footer: the filesystem is now {fs_len} bytes, the hash tree covers {image_size}; the footer cannot be kept"
    )]
    FilesystemGrew {
        /// The filesystem's size.
        fs_len: u64,
        /// The descriptor's `image_size`.
        image_size: u64,
    },
    /// The hash tree or FEC cannot be computed or does not match.
    #[error(transparent)]
    Verity(#[from] VerityError),
    /// Reading or writing the image failed.
    #[error("AVB: reading or writing the image: {0}")]
    Io(#[from] io::Error),
}

/// The vbmeta image header. Offsets are from the start of the image; all
/// integers are big-endian; `*_offset` fields are relative to the start of
/// the block they lie in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VbmetaHeader {
    /// 4: libavb major version needed to read the image (1).
    pub required_libavb_version_major: u32,
    /// 8: libavb minor version needed.
    pub required_libavb_version_minor: u32,
    /// 12: size of the authentication data block (a multiple of 64).
    pub authentication_data_block_size: u64,
    /// 20: size of the auxiliary data block (a multiple of 64).
    pub auxiliary_data_block_size: u64,
    /// 28: signing algorithm (0 = none).
    pub algorithm_type: u32,
    /// 32: offset of the hash in the authentication block.
    pub hash_offset: u64,
    /// 40: size of the hash.
    pub hash_size: u64,
    /// 48: offset of the signature in the authentication block.
    pub signature_offset: u64,
    /// 56: size of the signature.
    pub signature_size: u64,
    /// 64: offset of the public key in the auxiliary block.
    pub public_key_offset: u64,
    /// 72: size of the public key.
    pub public_key_size: u64,
    /// 80: offset of the public key metadata in the auxiliary block.
    pub public_key_metadata_offset: u64,
    /// 88: size of the public key metadata.
    pub public_key_metadata_size: u64,
    /// 96: offset of the descriptors in the auxiliary block.
    pub descriptors_offset: u64,
    /// 104: size of the descriptors.
    pub descriptors_size: u64,
    /// 112: rollback index.
    pub rollback_index: u64,
    /// 120: `FLAG_*` bits.
    pub flags: u32,
    /// 124: rollback index location.
    pub rollback_index_location: u32,
    /// 128: NUL-padded release string (`avbtool 1.3.0`).
    pub release_string: [u8; 48],
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    (u64::from(be32(b, at)) << 32) | u64::from(be32(b, at + 4))
}

fn field(field: &'static str, value: u64, offset: usize, why: String) -> AvbError {
    AvbError::Field {
        field,
        value,
        offset,
        why,
    }
}

/// Checks the magic of a header's first bytes.
fn check_magic(bytes: &[u8], need: usize) -> Result<(), AvbError> {
    if bytes.len() < need {
        return Err(AvbError::Truncated {
            len: bytes.len(),
            need,
        });
    }
    if bytes[..4] != MAGIC {
        let found = [bytes[0], bytes[1], bytes[2], bytes[3]];
        return Err(AvbError::BadMagic { found });
    }
    Ok(())
}

impl VbmetaHeader {
    /// Parses the header at the start of `bytes` (at least [`HEADER_SIZE`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, AvbError> {
        check_magic(bytes, HEADER_SIZE)?;
        let mut release_string = [0u8; 48];
        release_string.copy_from_slice(&bytes[128..176]);
        Ok(VbmetaHeader {
            required_libavb_version_major: be32(bytes, 4),
            required_libavb_version_minor: be32(bytes, 8),
            authentication_data_block_size: be64(bytes, 12),
            auxiliary_data_block_size: be64(bytes, 20),
            algorithm_type: be32(bytes, 28),
            hash_offset: be64(bytes, 32),
            hash_size: be64(bytes, 40),
            signature_offset: be64(bytes, 48),
            signature_size: be64(bytes, 56),
            public_key_offset: be64(bytes, 64),
            public_key_size: be64(bytes, 72),
            public_key_metadata_offset: be64(bytes, 80),
            public_key_metadata_size: be64(bytes, 88),
            descriptors_offset: be64(bytes, 96),
            descriptors_size: be64(bytes, 104),
            rollback_index: be64(bytes, 112),
            flags: be32(bytes, FLAGS_OFFSET),
            rollback_index_location: be32(bytes, 124),
            release_string,
        })
    }

    /// Checks what libavb checks before trusting the header: the version,
    /// block sizes that are multiples of 64 and, with checked arithmetic,
    /// that the header and both blocks fit in `data_len` bytes and that every
    /// item lies inside its block.
    pub fn validate(&self, data_len: u64) -> Result<(), AvbError> {
        if self.required_libavb_version_major != VERSION_MAJOR {
            let v = u64::from(self.required_libavb_version_major);
            let why = format!("only major version {VERSION_MAJOR} is supported");
            return Err(field("required_libavb_version_major", v, 4, why));
        }
        if self.required_libavb_version_minor > VERSION_MINOR {
            let v = u64::from(self.required_libavb_version_minor);
            let why = format!("minor versions up to {VERSION_MINOR} are supported");
            return Err(field("required_libavb_version_minor", v, 8, why));
        }
        let auth = self.authentication_data_block_size;
        let aux = self.auxiliary_data_block_size;
        for (name, value, offset) in [
            ("authentication_data_block_size", auth, 12),
            ("auxiliary_data_block_size", aux, 20),
        ] {
            if !value.is_multiple_of(BLOCK_ALIGN) {
                let why = format!("not a multiple of {BLOCK_ALIGN}");
                return Err(field(name, value, offset, why));
            }
        }
        let total = (HEADER_SIZE as u64)
            .checked_add(auth)
            .and_then(|n| n.checked_add(aux));
        if total.is_none_or(|t| t > data_len) {
            let why = format!("header and blocks run past the {data_len}-byte image");
            return Err(field("auxiliary_data_block_size", aux, 20, why));
        }
        self.items_inside_blocks()
    }

    /// Every (offset, size) item lies inside its block.
    fn items_inside_blocks(&self) -> Result<(), AvbError> {
        let auth = self.authentication_data_block_size;
        let aux = self.auxiliary_data_block_size;
        let items: [(&'static str, u64, u64, usize, u64); 5] = [
            ("hash_offset", self.hash_offset, self.hash_size, 32, auth),
            (
                "signature_offset",
                self.signature_offset,
                self.signature_size,
                48,
                auth,
            ),
            (
                "public_key_offset",
                self.public_key_offset,
                self.public_key_size,
                64,
                aux,
            ),
            (
                "public_key_metadata_offset",
                self.public_key_metadata_offset,
                self.public_key_metadata_size,
                80,
                aux,
            ),
            (
                "descriptors_offset",
                self.descriptors_offset,
                self.descriptors_size,
                96,
                aux,
            ),
        ];
        for (name, at, size, offset, block) in items {
            if at.checked_add(size).is_none_or(|end| end > block) {
                let why = format!("with size {size} it runs past its {block}-byte block");
                return Err(field(name, at, offset, why));
            }
        }
        Ok(())
    }

    /// The header as stored.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[..4].copy_from_slice(&MAGIC);
        let mut put = |at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        put(4, &self.required_libavb_version_major.to_be_bytes());
        put(8, &self.required_libavb_version_minor.to_be_bytes());
        put(12, &self.authentication_data_block_size.to_be_bytes());
        put(20, &self.auxiliary_data_block_size.to_be_bytes());
        put(28, &self.algorithm_type.to_be_bytes());
        put(32, &self.hash_offset.to_be_bytes());
        put(40, &self.hash_size.to_be_bytes());
        put(48, &self.signature_offset.to_be_bytes());
        put(56, &self.signature_size.to_be_bytes());
        put(64, &self.public_key_offset.to_be_bytes());
        put(72, &self.public_key_size.to_be_bytes());
        put(80, &self.public_key_metadata_offset.to_be_bytes());
        put(88, &self.public_key_metadata_size.to_be_bytes());
        put(96, &self.descriptors_offset.to_be_bytes());
        put(104, &self.descriptors_size.to_be_bytes());
        put(112, &self.rollback_index.to_be_bytes());
        put(FLAGS_OFFSET, &self.flags.to_be_bytes());
        put(124, &self.rollback_index_location.to_be_bytes());
        put(128, &self.release_string);
        b
    }
}

/// The flags with verity and verification disabled.
fn disabled(flags: u32) -> u32 {
    flags | FLAG_HASHTREE_DISABLED | FLAG_VERIFICATION_DISABLED
}

/// Sets the hashtree- and verification-disabled flags of the vbmeta header
/// at the start of `buf` (at least [`PATCH_SIZE`] bytes). Returns the
/// previous flags.
pub fn disable_verification_in(buf: &mut [u8]) -> Result<u32, AvbError> {
    check_magic(buf, PATCH_SIZE)?;
    let old = be32(buf, FLAGS_OFFSET);
    buf[FLAGS_OFFSET..FLAGS_OFFSET + 4].copy_from_slice(&disabled(old).to_be_bytes());
    Ok(old)
}

/// [`disable_verification_in`] on an image behind a handle, at its start:
/// only the flags field is written. Returns the previous flags.
pub fn disable_verification<F: Read + Write + Seek>(f: &mut F) -> Result<u32, AvbError> {
    let mut head = [0u8; PATCH_SIZE];
    f.seek(SeekFrom::Start(0))?;
    let got = read_up_to(f, &mut head)?;
    check_magic(&head[..got], PATCH_SIZE)?;
    let old = be32(&head, FLAGS_OFFSET);
    f.seek(SeekFrom::Start(FLAGS_OFFSET as u64))?;
    f.write_all(&disabled(old).to_be_bytes())?;
    f.flush()?;
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A well-formed header: 64-byte authentication block holding a 32-byte
    /// hash, 128-byte auxiliary block holding 64 bytes of descriptors.
    fn header() -> VbmetaHeader {
        let mut h = VbmetaHeader::parse(&[MAGIC.as_slice(), &[0u8; 252]].concat()).unwrap();
        h.required_libavb_version_major = 1;
        h.authentication_data_block_size = 64;
        h.auxiliary_data_block_size = 128;
        h.hash_size = 32;
        h.descriptors_size = 64;
        h.flags = 0;
        h.release_string[..13].copy_from_slice(b"avbtool 1.3.0");
        h
    }

    #[test]
    fn parses_what_it_writes_and_validates_a_good_header() {
        let h = header();
        let bytes = h.to_bytes();
        assert_eq!(VbmetaHeader::parse(&bytes).unwrap(), h);
        h.validate(256 + 64 + 128).unwrap();
    }

    #[test]
    fn malformed_headers_name_field_value_and_offset() {
        let short = header().validate(256 + 64).unwrap_err().to_string();
        assert!(
            short.contains("auxiliary_data_block_size at offset 20 is 128"),
            "{short}"
        );

        let mut h = header();
        h.required_libavb_version_major = 2;
        let e = h.validate(1 << 20).unwrap_err().to_string();
        assert!(
            e.contains("required_libavb_version_major at offset 4 is 2"),
            "{e}"
        );

        let mut h = header();
        h.descriptors_offset = u64::MAX;
        let e = h.validate(1 << 20).unwrap_err().to_string();
        assert!(
            e.contains(&format!("descriptors_offset at offset 96 is {}", u64::MAX)),
            "{e}"
        );

        let mut h = header();
        h.authentication_data_block_size = 65;
        let e = h.validate(1 << 20).unwrap_err().to_string();
        assert!(
            e.contains("authentication_data_block_size at offset 12 is 65"),
            "{e}"
        );

        let mut h = header();
        h.auxiliary_data_block_size = u64::MAX - 63;
        assert!(
            h.validate(u64::MAX).is_err(),
            "overflowing sizes are refused"
        );

        let mut bytes = header().to_bytes();
        bytes[..4].copy_from_slice(b"AVB1");
        assert!(matches!(
            VbmetaHeader::parse(&bytes),
            Err(AvbError::BadMagic { .. })
        ));
        assert!(matches!(
            VbmetaHeader::parse(&bytes[..100]),
            Err(AvbError::Truncated {
                len: 100,
                need: 256
            })
        ));
    }

    #[test]
    fn disabling_sets_both_flags_and_nothing_else() {
        let mut h = header();
        h.flags = 0x10;
        let mut image = h.to_bytes().to_vec();
        image.extend_from_slice(&[0xAA; 192]);
        let before = image.clone();

        let mut buf = image.clone();
        assert_eq!(disable_verification_in(&mut buf).unwrap(), 0x10);
        let mut handle = Cursor::new(image);
        assert_eq!(disable_verification(&mut handle).unwrap(), 0x10);
        let image = handle.into_inner();
        assert_eq!(buf, image, "buffer and handle agree");

        let patched = VbmetaHeader::parse(&image).unwrap();
        assert_eq!(patched.flags, 0x13);
        assert_eq!(image[..FLAGS_OFFSET], before[..FLAGS_OFFSET]);
        assert_eq!(image[FLAGS_OFFSET + 4..], before[FLAGS_OFFSET + 4..]);
    }

    #[test]
    fn disabling_refuses_other_images_and_short_ones() {
        let mut other = Cursor::new(vec![0u8; 4096]);
        assert!(matches!(
            disable_verification(&mut other),
            Err(AvbError::BadMagic {
                found: [0, 0, 0, 0]
            })
        ));
        assert_eq!(other.into_inner(), vec![0u8; 4096], "nothing written");
        let mut short = Cursor::new(b"AVB0\0\0".to_vec());
        assert!(matches!(
            disable_verification(&mut short),
            Err(AvbError::Truncated {
                len: 6,
                need: PATCH_SIZE
            })
        ));
    }
}
