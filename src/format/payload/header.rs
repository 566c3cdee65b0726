//! The fixed 24-byte header at the start of every major-version-2 payload.

use super::PayloadError;

/// `CrAU`: the payload magic.
pub const MAGIC: [u8; 4] = *b"CrAU";
/// Size of the version-2 header.
pub const HEADER_SIZE: u64 = 24;
/// The only major version romkit reads and writes (Android 7 and later).
pub const MAJOR_VERSION: u64 = 2;
/// Manifests larger than this are refused before allocating (real ones are a
/// few hundred KiB; a full payload of a 16 GiB super with 2 MiB chunks stays
/// under 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 64 << 20;
/// Signature blobs larger than this are refused (an RSA-4096 signature is 512 bytes).
pub const MAX_SIGNATURE_SIZE: u64 = 1 << 20;

/// The payload header.
///
/// On disk, big-endian:
/// ```text
/// 0   magic                   "CrAU"
/// 4   file_format_version     u64  (2)
/// 12  manifest_size           u64
/// 20  metadata_signature_size u32
/// 24  manifest, then metadata signature, then the data section
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `file_format_version`: always 2 here.
    pub version: u64,
    /// Length of the serialized `DeltaArchiveManifest` that follows the header.
    pub manifest_size: u64,
    /// Length of the metadata `Signatures` blob after the manifest (0 when unsigned).
    pub metadata_signature_size: u32,
}

impl Header {
    /// Parses and validates the header against the payload's real length.
    pub fn parse(bytes: &[u8], payload_len: u64) -> Result<Self, PayloadError> {
        if bytes.len() < HEADER_SIZE as usize || payload_len < HEADER_SIZE {
            return Err(PayloadError::Truncated {
                what: "header",
                offset: 0,
                need: HEADER_SIZE,
                have: payload_len,
            });
        }
        if bytes[0..4] != MAGIC {
            return Err(PayloadError::BadMagic {
                found: [bytes[0], bytes[1], bytes[2], bytes[3]],
            });
        }
        let be64 = |o: usize| u64::from_be_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
        let version = be64(4);
        if version != MAJOR_VERSION {
            return Err(PayloadError::UnsupportedVersion { version });
        }
        let manifest_size = be64(12);
        let metadata_signature_size =
            u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes"));
        let header = Header {
            version,
            manifest_size,
            metadata_signature_size,
        };
        if manifest_size == 0 || manifest_size > MAX_MANIFEST_SIZE {
            return Err(PayloadError::Field {
                field: "manifest_size",
                offset: 12,
                value: manifest_size,
                why: format!("must be between 1 and {MAX_MANIFEST_SIZE}"),
            });
        }
        if u64::from(metadata_signature_size) > MAX_SIGNATURE_SIZE {
            return Err(PayloadError::Field {
                field: "metadata_signature_size",
                offset: 20,
                value: metadata_signature_size.into(),
                why: format!("must be at most {MAX_SIGNATURE_SIZE}"),
            });
        }
        // Both sizes are bounded above, so these sums cannot overflow.
        if header.metadata_size() > payload_len {
            return Err(PayloadError::Truncated {
                what: "manifest",
                offset: HEADER_SIZE,
                need: manifest_size,
                have: payload_len - HEADER_SIZE,
            });
        }
        if header.data_offset() > payload_len {
            return Err(PayloadError::Truncated {
                what: "metadata signature",
                offset: header.metadata_size(),
                need: metadata_signature_size.into(),
                have: payload_len - header.metadata_size(),
            });
        }
        Ok(header)
    }

    /// Header plus manifest: the bytes the metadata signature covers.
    pub fn metadata_size(&self) -> u64 {
        HEADER_SIZE + self.manifest_size
    }

    /// Where the data section starts.
    pub fn data_offset(&self) -> u64 {
        self.metadata_size() + u64::from(self.metadata_signature_size)
    }

    /// Serializes the header.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE as usize] {
        let mut out = [0u8; HEADER_SIZE as usize];
        out[0..4].copy_from_slice(&MAGIC);
        out[4..12].copy_from_slice(&self.version.to_be_bytes());
        out[12..20].copy_from_slice(&self.manifest_size.to_be_bytes());
        out[20..24].copy_from_slice(&self.metadata_signature_size.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes(version: u64, manifest: u64, sig: u32) -> Vec<u8> {
        let mut b = b"CrAU".to_vec();
        b.extend_from_slice(&version.to_be_bytes());
        b.extend_from_slice(&manifest.to_be_bytes());
        b.extend_from_slice(&sig.to_be_bytes());
        b
    }

    #[test]
    fn parses_and_round_trips() {
        let b = header_bytes(2, 100, 10);
        let h = Header::parse(&b, 1000).unwrap();
        assert_eq!(h.manifest_size, 100);
        assert_eq!(h.metadata_size(), 124);
        assert_eq!(h.data_offset(), 134);
        assert_eq!(h.to_bytes().to_vec(), b);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            Header::parse(b"CrAU", 4),
            Err(PayloadError::Truncated { what: "header", .. })
        ));
        assert!(
            Header::parse(&header_bytes(2, 100, 0)[..], 24)
                .unwrap_err()
                .to_string()
                .contains("manifest")
        );
        let mut bad = header_bytes(2, 100, 0);
        bad[0] = b'X';
        assert!(matches!(
            Header::parse(&bad, 1000),
            Err(PayloadError::BadMagic { .. })
        ));
        assert!(matches!(
            Header::parse(&header_bytes(1, 100, 0), 1000),
            Err(PayloadError::UnsupportedVersion { version: 1 })
        ));
        assert!(matches!(
            Header::parse(&header_bytes(2, u64::MAX, 0), u64::MAX),
            Err(PayloadError::Field {
                field: "manifest_size",
                ..
            })
        ));
    }
}
