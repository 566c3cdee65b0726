//! AVB footers on partition images (`AvbFooter` and `AvbHashtreeDescriptor`
//! of libavb) and refreshing their dm-verity data after the filesystem
//! changed.
//!
//! avbtool's `add_hashtree_footer` lays a partition out as: the filesystem,
//! zero-padded to `image_size` (a multiple of the block size); the hash tree
//! at `tree_offset` (= `image_size`); the FEC parity over filesystem and tree
//! at `fec_offset`; a vbmeta blob whose auxiliary block holds the hashtree
//! descriptor (sizes, offsets, salt, root digest); zeros; and in the last 64
//! bytes the footer, which points at the vbmeta blob and records the size the
//! image had before avbtool touched it. All integers are big-endian.
//!
//! [`refresh_hashtree`] recomputes tree, parity and root digest in place so
//! that an edited image is internally consistent. A vbmeta blob signed with
//! the owner's key cannot be re-signed: [`Refreshed::signed`] says the
//! signature is now stale, and the device boots the image only with
//! verification disabled in the top-level vbmeta, as romkit's outputs have.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::{AvbError, HEADER_SIZE, VbmetaHeader, be32, be64};
use crate::format::source::ReadAt;
use crate::format::verity::{
    self, FecParams, HashAlgorithm, TreeLayout, TreeParams, check_fec, check_tree,
};

/// Magic at the start of the footer.
pub const FOOTER_MAGIC: [u8; 4] = *b"AVBf";
/// Size of the footer, the last bytes of the partition.
pub const FOOTER_SIZE: usize = 64;
/// The footer major version romkit understands.
pub const FOOTER_VERSION_MAJOR: u32 = 1;
/// Largest vbmeta blob libavb loads from a partition.
pub const MAX_VBMETA_SIZE: u64 = 64 * 1024;
/// Descriptor tag of a hashtree descriptor.
pub const TAG_HASHTREE: u64 = 1;
/// Fixed part of a hashtree descriptor, its 16-byte tag header included.
pub const HASHTREE_DESCRIPTOR_SIZE: usize = 180;

/// The footer in the last [`FOOTER_SIZE`] bytes of a partition image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Footer {
    /// 4: footer major version (1).
    pub version_major: u32,
    /// 8: footer minor version.
    pub version_minor: u32,
    /// 12: size of the image before avbtool added tree, FEC and vbmeta.
    pub original_image_size: u64,
    /// 20: where the vbmeta blob starts.
    pub vbmeta_offset: u64,
    /// 28: size of the vbmeta blob.
    pub vbmeta_size: u64,
}

fn footer_err(field: &'static str, value: u64, offset: u64, why: String) -> AvbError {
    AvbError::Footer {
        field,
        value,
        offset,
        why,
    }
}

impl Footer {
    /// Parses the footer in `bytes` (the last 64 bytes of the image); `None`
    /// when they do not start with `AVBf` (the image has no footer).
    pub fn parse(bytes: &[u8; FOOTER_SIZE]) -> Option<Self> {
        (bytes[..4] == FOOTER_MAGIC).then(|| Footer {
            version_major: be32(bytes, 4),
            version_minor: be32(bytes, 8),
            original_image_size: be64(bytes, 12),
            vbmeta_offset: be64(bytes, 20),
            vbmeta_size: be64(bytes, 28),
        })
    }

    /// The footer as stored.
    pub fn to_bytes(&self) -> [u8; FOOTER_SIZE] {
        let mut b = [0u8; FOOTER_SIZE];
        b[..4].copy_from_slice(&FOOTER_MAGIC);
        b[4..8].copy_from_slice(&self.version_major.to_be_bytes());
        b[8..12].copy_from_slice(&self.version_minor.to_be_bytes());
        b[12..20].copy_from_slice(&self.original_image_size.to_be_bytes());
        b[20..28].copy_from_slice(&self.vbmeta_offset.to_be_bytes());
        b[28..36].copy_from_slice(&self.vbmeta_size.to_be_bytes());
        b
    }

    /// Checks the version and that the vbmeta blob lies after the original
    /// image and before the footer of an image of `image_len` bytes.
    /// Offsets in errors are from the start of the image.
    pub fn validate(&self, image_len: u64) -> Result<(), AvbError> {
        let at = image_len - FOOTER_SIZE as u64;
        if self.version_major != FOOTER_VERSION_MAJOR {
            let why = format!("only major version {FOOTER_VERSION_MAJOR} is supported");
            return Err(footer_err(
                "version_major",
                self.version_major.into(),
                at + 4,
                why,
            ));
        }
        if self.vbmeta_size < HEADER_SIZE as u64 || self.vbmeta_size > MAX_VBMETA_SIZE {
            let why = format!("not from {HEADER_SIZE} to {MAX_VBMETA_SIZE} bytes");
            return Err(footer_err("vbmeta_size", self.vbmeta_size, at + 28, why));
        }
        if self.vbmeta_offset < self.original_image_size
            || self
                .vbmeta_offset
                .checked_add(self.vbmeta_size)
                .is_none_or(|e| e > at)
        {
            let why = format!(
                "the {}-byte blob must lie between the original image ({} bytes) and the footer at {at}",
                self.vbmeta_size, self.original_image_size
            );
            return Err(footer_err(
                "vbmeta_offset",
                self.vbmeta_offset,
                at + 20,
                why,
            ));
        }
        Ok(())
    }
}

/// A hashtree descriptor (`AvbHashtreeDescriptor`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashtreeDescriptor {
    /// 16: dm-verity version (1).
    pub dm_verity_version: u32,
    /// 20: bytes hashed: the filesystem padded to a block.
    pub image_size: u64,
    /// 28: where the tree starts in the partition.
    pub tree_offset: u64,
    /// 36: size of the tree.
    pub tree_size: u64,
    /// 44: data block size.
    pub data_block_size: u32,
    /// 48: hash block size.
    pub hash_block_size: u32,
    /// 52: parity bytes per codeword (0: no FEC).
    pub fec_num_roots: u32,
    /// 56: where the FEC parity starts.
    pub fec_offset: u64,
    /// 64: size of the parity (without libfec's header block).
    pub fec_size: u64,
    /// 72: hash algorithm, NUL-padded (`sha256`).
    pub hash_algorithm: String,
    /// 116: flags (`do_not_use_ab`, `check_at_most_once`).
    pub flags: u32,
    /// The partition's name.
    pub partition_name: String,
    /// The salt prepended to every hashed block.
    pub salt: Vec<u8>,
    /// The root digest (empty when the device keeps it as a persistent value).
    pub root_digest: Vec<u8>,
}

/// Where an item of a descriptor lies, for messages and patching.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DescriptorAt {
    /// Offset of the descriptor in the image.
    image: u64,
    /// Offset of its root digest in the vbmeta blob.
    digest_in_blob: usize,
}

fn desc_err(field: &'static str, value: u64, offset: u64, why: String) -> AvbError {
    AvbError::Descriptor {
        field,
        value,
        offset,
        why,
    }
}

impl HashtreeDescriptor {
    /// Parses a hashtree descriptor from `d` (its tag header included).
    /// `at` is its offset in the image, for messages.
    pub fn parse(d: &[u8], at: u64) -> Result<Self, AvbError> {
        if d.len() < HASHTREE_DESCRIPTOR_SIZE {
            let why = format!("a hashtree descriptor needs {HASHTREE_DESCRIPTOR_SIZE} bytes");
            return Err(desc_err("num_bytes_following", d.len() as u64, at + 8, why));
        }
        let lens = [be32(d, 104), be32(d, 108), be32(d, 112)];
        let total: u64 = lens.iter().map(|&l| u64::from(l)).sum();
        if (HASHTREE_DESCRIPTOR_SIZE as u64 + total) > d.len() as u64 {
            let why = format!(
                "name, salt and digest run past the {}-byte descriptor",
                d.len()
            );
            return Err(desc_err(
                "partition_name_len",
                lens[0].into(),
                at + 104,
                why,
            ));
        }
        let (n, s) = (lens[0] as usize, lens[1] as usize);
        let var = &d[HASHTREE_DESCRIPTOR_SIZE..];
        let text = |b: &[u8], field, off| {
            String::from_utf8(b.to_vec())
                .map_err(|_| desc_err(field, b.len() as u64, at + off, "not UTF-8".into()))
        };
        let alg = &d[72..104];
        let alg_len = alg.iter().position(|&c| c == 0).unwrap_or(alg.len());
        Ok(HashtreeDescriptor {
            dm_verity_version: be32(d, 16),
            image_size: be64(d, 20),
            tree_offset: be64(d, 28),
            tree_size: be64(d, 36),
            data_block_size: be32(d, 44),
            hash_block_size: be32(d, 48),
            fec_num_roots: be32(d, 52),
            fec_offset: be64(d, 56),
            fec_size: be64(d, 64),
            hash_algorithm: text(&alg[..alg_len], "hash_algorithm", 72)?,
            flags: be32(d, 116),
            partition_name: text(&var[..n], "partition_name", 180)?,
            salt: var[n..n + s].to_vec(),
            root_digest: var[n + s..n + s + lens[2] as usize].to_vec(),
        })
    }

    /// The tree parameters.
    pub fn tree_params(&self) -> Result<TreeParams, AvbError> {
        Ok(TreeParams {
            algorithm: HashAlgorithm::from_name(&self.hash_algorithm)?,
            block_size: self.data_block_size,
            salt: self.salt.clone(),
        })
    }

    /// The FEC parameters, `None` without FEC.
    pub fn fec_params(&self) -> Option<FecParams> {
        (self.fec_num_roots != 0).then(|| FecParams {
            roots: u8::try_from(self.fec_num_roots).unwrap_or(0),
            block_size: self.data_block_size,
        })
    }

    /// Checks what must hold before the image is hashed or written: version,
    /// block sizes, algorithm, digest length, the tree and FEC sizes that
    /// `image_size` implies, and that data, tree and parity lie in order
    /// before `end` (the vbmeta blob). `at` is the descriptor's offset in
    /// the image.
    pub fn validate(&self, end: u64, at: u64) -> Result<(), AvbError> {
        let err =
            |field, value: u64, off: u64, why: String| Err(desc_err(field, value, at + off, why));
        if self.dm_verity_version != 1 {
            return err(
                "dm_verity_version",
                self.dm_verity_version.into(),
                16,
                "only version 1 is supported".into(),
            );
        }
        if self.hash_block_size != self.data_block_size {
            let why = format!("differs from data_block_size {}", self.data_block_size);
            return err("hash_block_size", self.hash_block_size.into(), 48, why);
        }
        let params = self.tree_params()?;
        if params.validate().is_err() {
            return err(
                "data_block_size",
                self.data_block_size.into(),
                44,
                "not a power of two from 512 to 1 MiB".into(),
            );
        }
        let bs = u64::from(self.data_block_size);
        if self.image_size == 0 || !self.image_size.is_multiple_of(bs) {
            return err(
                "image_size",
                self.image_size,
                20,
                format!("not a positive multiple of {bs}"),
            );
        }
        let digest = params.algorithm.digest_size();
        if !self.root_digest.is_empty() && self.root_digest.len() != digest {
            let why = format!("{} needs {digest} bytes", params.algorithm.name());
            return err("root_digest_len", self.root_digest.len() as u64, 112, why);
        }
        let layout = TreeLayout::new(self.image_size, self.data_block_size, params.algorithm)?;
        if self.tree_size != layout.size {
            let why = format!(
                "{} bytes of data need a {}-byte tree",
                self.image_size, layout.size
            );
            return err("tree_size", self.tree_size, 36, why);
        }
        let tree_end = self.tree_offset.checked_add(self.tree_size);
        if self.tree_offset < self.image_size || tree_end.is_none_or(|e| e > end) {
            let why = format!(
                "the tree must lie between the data ({} bytes) and the vbmeta blob at {end}",
                self.image_size
            );
            return err("tree_offset", self.tree_offset, 28, why);
        }
        self.validate_fec(end, at)
    }

    /// The FEC part of [`validate`](Self::validate).
    fn validate_fec(&self, end: u64, at: u64) -> Result<(), AvbError> {
        let err =
            |field, value: u64, off: u64, why: String| Err(desc_err(field, value, at + off, why));
        let Some(fec) = self.fec_params() else {
            if self.fec_size != 0 {
                return err(
                    "fec_size",
                    self.fec_size,
                    64,
                    "FEC data without fec_num_roots".into(),
                );
            }
            return Ok(());
        };
        if fec.validate().is_err() {
            return err(
                "fec_num_roots",
                self.fec_num_roots.into(),
                52,
                "not from 2 to 24".into(),
            );
        }
        if self.tree_offset != self.image_size {
            let why = "FEC covers data and tree only when the tree follows the data".to_string();
            return err("tree_offset", self.tree_offset, 28, why);
        }
        let covered = self.image_size + self.tree_size;
        let want = fec.parity_size(covered);
        if self.fec_size != want {
            let why = format!("{covered} bytes with {} roots need {want}", fec.roots);
            return err("fec_size", self.fec_size, 64, why);
        }
        if self.fec_offset < covered || self.fec_offset.checked_add(want).is_none_or(|e| e > end) {
            let why = format!(
                "the parity must lie between the tree's end ({covered}) and the vbmeta blob at {end}"
            );
            return err("fec_offset", self.fec_offset, 56, why);
        }
        Ok(())
    }
}

/// A partition image's footer, vbmeta blob and hashtree descriptor, read and
/// validated against the image's length.
#[derive(Clone, Debug)]
pub struct HashtreeFooter {
    /// The footer.
    pub footer: Footer,
    /// The vbmeta blob's header.
    pub header: VbmetaHeader,
    /// The hashtree descriptor.
    pub descriptor: HashtreeDescriptor,
    /// The vbmeta blob as stored.
    pub vbmeta: Vec<u8>,
    /// The image's length (the partition size).
    pub image_len: u64,
    at: DescriptorAt,
}

/// Reads the footer at the end of an `image_len`-byte image. `None` when the
/// image has no footer; an error when the footer, vbmeta blob or hashtree
/// descriptor is malformed or the vbmeta blob has no hashtree descriptor.
pub fn read_hashtree_footer<R: ReadAt + ?Sized>(
    image: &R,
    image_len: u64,
) -> Result<Option<HashtreeFooter>, AvbError> {
    if image_len < FOOTER_SIZE as u64 {
        return Ok(None);
    }
    let mut raw = [0u8; FOOTER_SIZE];
    image.read_at(&mut raw, image_len - FOOTER_SIZE as u64)?;
    let Some(footer) = Footer::parse(&raw) else {
        return Ok(None);
    };
    footer.validate(image_len)?;
    let mut vbmeta = vec![0u8; footer.vbmeta_size as usize];
    image.read_at(&mut vbmeta, footer.vbmeta_offset)?;
    let header = VbmetaHeader::parse(&vbmeta)?;
    header.validate(footer.vbmeta_size)?;
    let (descriptor, at) = find_hashtree(&header, &vbmeta, footer.vbmeta_offset)?;
    descriptor.validate(footer.vbmeta_offset, at.image)?;
    Ok(Some(HashtreeFooter {
        footer,
        header,
        descriptor,
        vbmeta,
        image_len,
        at,
    }))
}

/// The first hashtree descriptor among the blob's descriptors.
fn find_hashtree(
    header: &VbmetaHeader,
    vbmeta: &[u8],
    blob_at: u64,
) -> Result<(HashtreeDescriptor, DescriptorAt), AvbError> {
    // validate() checked that the descriptors lie inside the blob.
    let start =
        HEADER_SIZE as u64 + header.authentication_data_block_size + header.descriptors_offset;
    let mut pos = start as usize;
    let end = pos + header.descriptors_size as usize;
    while pos + 16 <= end {
        let tag = be64(vbmeta, pos);
        let following = be64(vbmeta, pos + 8);
        let image_at = blob_at + pos as u64;
        let len = following
            .checked_add(16)
            .filter(|&l| following.is_multiple_of(8) && l <= (end - pos) as u64)
            .ok_or_else(|| {
                let why = format!(
                    "not a multiple of 8 that fits the {} descriptor bytes left",
                    end - pos
                );
                desc_err("num_bytes_following", following, image_at + 8, why)
            })? as usize;
        if tag == TAG_HASHTREE {
            let d = HashtreeDescriptor::parse(&vbmeta[pos..pos + len], image_at)?;
            let digest = pos + HASHTREE_DESCRIPTOR_SIZE + d.partition_name.len() + d.salt.len();
            let at = DescriptorAt {
                image: image_at,
                digest_in_blob: digest,
            };
            return Ok((d, at));
        }
        pos += len;
    }
    Err(AvbError::NoHashtree)
}

/// What [`refresh_hashtree`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refreshed {
    /// The partition named in the descriptor.
    pub partition_name: String,
    /// Bytes hashed (the filesystem and its zero padding).
    pub image_size: u64,
    /// Where the tree was written, and its size.
    pub tree: (u64, u64),
    /// Where the parity was written and its size (`None` without FEC).
    pub fec: Option<(u64, u64)>,
    /// The root digest before.
    pub old_root_digest: Vec<u8>,
    /// The root digest now (written into the descriptor unless the
    /// descriptor keeps none).
    pub root_digest: Vec<u8>,
    /// The vbmeta blob is signed; its signature no longer matches.
    pub signed: bool,
}

/// Recomputes the hash tree, the FEC parity and the root digest of `image`
/// whose first `fs_len` bytes are a filesystem edited since `found` was read
/// from it, and writes the whole AVB tail: zeros up to `image_size`, tree,
/// parity, the vbmeta blob with the new root digest, and the footer, at the
/// offsets and in the partition size `found` records. The image may have been
/// truncated to its filesystem meanwhile (editors that write a new file).
///
/// Fails, writing nothing, when the filesystem no longer fits in
/// `image_size`: the caller must then drop the footer and say so.
pub fn refresh_hashtree(
    image: &File,
    fs_len: u64,
    found: &HashtreeFooter,
) -> Result<Refreshed, AvbError> {
    let d = &found.descriptor;
    if fs_len > d.image_size {
        return Err(AvbError::FilesystemGrew {
            fs_len,
            image_size: d.image_size,
        });
    }
    image.set_len(fs_len)?;
    image.set_len(found.image_len)?;
    let tree = verity::compute_tree(image, d.image_size, &d.tree_params()?)?;
    image.write_all_at(&tree.tree, d.tree_offset)?;
    let fec = match d.fec_params() {
        Some(p) => {
            let parity = verity::compute_fec(image, d.tree_offset + d.tree_size, p)?;
            image.write_all_at(&parity, d.fec_offset)?;
            Some((d.fec_offset, parity.len() as u64))
        }
        None => None,
    };
    let mut vbmeta = found.vbmeta.clone();
    if !d.root_digest.is_empty() {
        let at = found.at.digest_in_blob;
        vbmeta[at..at + tree.root_digest.len()].copy_from_slice(&tree.root_digest);
    }
    image.write_all_at(&vbmeta, found.footer.vbmeta_offset)?;
    let footer_at = found.image_len - FOOTER_SIZE as u64;
    image.write_all_at(&found.footer.to_bytes(), footer_at)?;
    Ok(Refreshed {
        partition_name: d.partition_name.clone(),
        image_size: d.image_size,
        tree: (d.tree_offset, d.tree_size),
        fec,
        old_root_digest: d.root_digest.clone(),
        root_digest: tree.root_digest,
        signed: found.header.algorithm_type != 0,
    })
}

/// Checks an image against its footer: the stored tree, root digest (when
/// the descriptor keeps one) and FEC parity equal the recomputed ones.
pub fn check_hashtree<R: ReadAt + ?Sized>(
    image: &R,
    found: &HashtreeFooter,
) -> Result<(), AvbError> {
    let d = &found.descriptor;
    let mut stored = vec![0u8; d.tree_size as usize];
    image.read_at(&mut stored, d.tree_offset)?;
    let params = d.tree_params()?;
    if d.root_digest.is_empty() {
        let computed = verity::compute_tree(image, d.image_size, &params)?;
        if computed.tree != stored {
            return Err(verity::VerityError::Mismatch {
                what: "hash tree",
                offset: 0,
            }
            .into());
        }
    } else {
        check_tree(image, d.image_size, &params, &stored, &d.root_digest)?;
    }
    if let Some(p) = d.fec_params() {
        let mut parity = vec![0u8; d.fec_size as usize];
        image.read_at(&mut parity, d.fec_offset)?;
        check_fec(image, d.tree_offset + d.tree_size, p, &parity)?;
    }
    Ok(())
}
