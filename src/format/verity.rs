//! dm-verity hash trees and their Reed–Solomon forward error correction, laid
//! out as Android lays them out (avbtool's `add_hashtree_footer`,
//! update_engine's verity writer, libfec).
//!
//! **Hash tree.** Every `block_size` block of the data is hashed with the salt
//! *prepended* (dm-verity format 1); a partial last block is hashed as if
//! padded with zeros. Each digest occupies the next power of two of its size
//! (SHA-1: 20 bytes of digest, 12 of zeros), the digests of a level are
//! padded with zeros to a whole block, and the next level hashes those blocks
//! until a level fits in one block. Levels are stored top level first; the
//! root digest is the salted hash of the top level's block. Data of exactly
//! one block has no tree: its root digest is the salted hash of that block.
//!
//! **FEC.** Reed–Solomon codewords of 255 bytes over GF(2^8) (field polynomial
//! 0x11d, generator roots α^0 … α^(roots−1)), `roots` parity bytes each, so
//! `rs_n = 255 − roots` data bytes per codeword. The covered bytes (data and
//! hash tree, in that order) are split into `rounds = ⌈blocks / rs_n⌉`
//! stripes; codeword `k` of round `i` takes byte `k` of blocks `i`,
//! `i + rounds`, `i + 2·rounds`, … (blocks past the end read as zeros), and
//! its parity lands at `(i · block_size + k) · roots`. That spreads each
//! codeword over the whole image, so a run of damaged blocks costs each
//! codeword at most one byte. The parity alone is what AVB stores after the
//! tree; libfec's `fec --encode` appends a block holding a [`FecHeader`] at
//! its start and a copy in its last 60 bytes.
//!
//! Both computations read the data with positional reads in parallel (rayon)
//! and keep only the output (the tree is about 1/128 of the data with
//! SHA-256 and 4 KiB blocks; the parity `roots`/253 of it) plus one window of
//! blocks per worker in memory.

use std::io;

use rayon::prelude::*;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::format::source::ReadAt;

/// Bytes in a Reed–Solomon codeword (parity included).
pub const RS_CODEWORD: usize = 255;
/// Fewest parity bytes per codeword that dm-verity accepts.
pub const MIN_ROOTS: u8 = 2;
/// Most parity bytes per codeword that dm-verity accepts (about 10 %).
pub const MAX_ROOTS: u8 = 24;
/// Android's default number of parity bytes per codeword.
pub const DEFAULT_ROOTS: u8 = 2;
/// Magic of libfec's header (`FEC_MAGIC`), stored little-endian.
pub const FEC_MAGIC: u32 = 0xFECF_ECFE;
/// Size of libfec's header (`sizeof(fec_header)`).
pub const FEC_HEADER_SIZE: usize = 60;
/// Data blocks hashed per parallel work item (1 MiB with 4 KiB blocks).
const CHUNK_BLOCKS: usize = 256;

/// Why a tree or its FEC cannot be computed or does not match.
#[derive(Debug, thiserror::Error)]
pub enum VerityError {
    /// A parameter is outside what dm-verity accepts.
    #[error("verity: {field} is {value}: {why}")]
    Param {
        /// The parameter.
        field: &'static str,
        /// Its value.
        value: u64,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The hash algorithm is not one Android uses for dm-verity.
    #[error("verity: hash algorithm {0:?} is not supported (sha1, sha256)")]
    Algorithm(String),
    /// Stored bytes differ from the recomputed ones.
    #[error("verity: stored {what} differs from the recomputed one at byte {offset}")]
    Mismatch {
        /// `hash tree`, `root digest` or `FEC parity`.
        what: &'static str,
        /// First differing byte, from the start of that item.
        offset: u64,
    },
    /// A libfec header field holds a value that cannot be right.
    #[error("FEC header: {field} at offset {offset} is {value}: {why}")]
    Header {
        /// The field's name in libfec.
        field: &'static str,
        /// Its value.
        value: u64,
        /// Its offset in the header.
        offset: usize,
        /// What is wrong with it.
        why: String,
    },
    /// Reading the data failed.
    #[error("verity: reading the data: {0}")]
    Io(#[from] io::Error),
}

fn param(field: &'static str, value: u64, why: &'static str) -> VerityError {
    VerityError::Param { field, value, why }
}

/// Block sizes dm-verity accepts: powers of two from 512 bytes to 1 MiB.
fn check_block_size(field: &'static str, b: u32) -> Result<(), VerityError> {
    if !b.is_power_of_two() || !(512..=1 << 20).contains(&b) {
        return Err(param(
            field,
            b.into(),
            "not a power of two from 512 to 1 MiB",
        ));
    }
    Ok(())
}

/// The digests Android's dm-verity trees use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// SHA-1 (old devices): 20-byte digests stored in 32-byte slots.
    Sha1,
    /// SHA-256 (every current device).
    Sha256,
}

impl HashAlgorithm {
    /// The algorithm named as avbtool and update_engine name it (`sha256`).
    pub fn from_name(name: &str) -> Result<Self, VerityError> {
        match name {
            "sha1" => Ok(HashAlgorithm::Sha1),
            "sha256" => Ok(HashAlgorithm::Sha256),
            other => Err(VerityError::Algorithm(other.to_string())),
        }
    }

    /// The name avbtool stores in hashtree descriptors.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha1 => "sha1",
            HashAlgorithm::Sha256 => "sha256",
        }
    }

    /// Bytes in a digest.
    pub fn digest_size(self) -> usize {
        match self {
            HashAlgorithm::Sha1 => 20,
            HashAlgorithm::Sha256 => 32,
        }
    }

    /// Bytes a digest occupies in the tree: the next power of two.
    pub fn slot_size(self) -> usize {
        self.digest_size().next_power_of_two()
    }

    /// Hashes `salt` then `block` into `out` (`digest_size` bytes).
    pub(crate) fn hash_into(self, salt: &[u8], block: &[u8], out: &mut [u8]) {
        match self {
            HashAlgorithm::Sha1 => {
                let mut h = Sha1::new();
                h.update(salt);
                h.update(block);
                out.copy_from_slice(&h.finalize());
            }
            HashAlgorithm::Sha256 => {
                let mut h = Sha256::new();
                h.update(salt);
                h.update(block);
                out.copy_from_slice(&h.finalize());
            }
        }
    }
}

/// What a tree is computed with. Android uses the same size for data and
/// hash blocks, as avbtool and update_engine require.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeParams {
    /// The digest.
    pub algorithm: HashAlgorithm,
    /// Data and hash block size: a power of two from 512 to 1 MiB.
    pub block_size: u32,
    /// Prepended to every hashed block.
    pub salt: Vec<u8>,
}

impl TreeParams {
    /// Checks the block size.
    pub fn validate(&self) -> Result<(), VerityError> {
        check_block_size("block_size", self.block_size)?;
        if self.salt.len() > 1024 {
            return Err(param(
                "salt length",
                self.salt.len() as u64,
                "over 1024 bytes",
            ));
        }
        Ok(())
    }
}

/// Where each level lies in the tree: `levels[0]` hashes the data and is
/// stored last, the top level is stored at offset 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeLayout {
    /// `(offset in the tree, size)` per level, the data's level first.
    pub levels: Vec<(u64, u64)>,
    /// Total bytes of the tree.
    pub size: u64,
}

impl TreeLayout {
    /// The layout of the tree over `data_size` bytes (avbtool's
    /// `calc_hash_level_offsets`).
    pub fn new(
        data_size: u64,
        block_size: u32,
        algorithm: HashAlgorithm,
    ) -> Result<Self, VerityError> {
        if data_size == 0 {
            return Err(param(
                "data size",
                0,
                "a hash tree needs at least one block",
            ));
        }
        let bs = u64::from(block_size);
        let slot = algorithm.slot_size() as u64;
        let mut sizes = Vec::new();
        let mut size = data_size;
        while size > bs {
            let level = size.div_ceil(bs) * slot;
            let level = level.div_ceil(bs) * bs;
            sizes.push(level);
            size = level;
        }
        let total = sizes.iter().sum();
        let levels = (0..sizes.len())
            .map(|n| (sizes[n + 1..].iter().sum(), sizes[n]))
            .collect();
        Ok(TreeLayout {
            levels,
            size: total,
        })
    }
}

/// A computed hash tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashTree {
    /// The root digest (`digest_size` bytes).
    pub root_digest: Vec<u8>,
    /// The tree as stored, top level first (empty for one block of data).
    pub tree: Vec<u8>,
}

/// Computes the hash tree over the first `data_size` bytes of `data`.
pub fn compute_tree<R: ReadAt + ?Sized>(
    data: &R,
    data_size: u64,
    params: &TreeParams,
) -> Result<HashTree, VerityError> {
    params.validate()?;
    let layout = TreeLayout::new(data_size, params.block_size, params.algorithm)?;
    let bs = params.block_size as usize;
    let alg = params.algorithm;
    let tree_len = usize::try_from(layout.size)
        .map_err(|_| param("tree size", layout.size, "does not fit in memory"))?;
    let mut tree = vec![0u8; tree_len];
    if layout.levels.is_empty() {
        let mut block = vec![0u8; bs];
        let mut root = vec![0u8; alg.digest_size()];
        data.read_at(&mut block[..data_size as usize], 0)?;
        alg.hash_into(&params.salt, &block, &mut root);
        return Ok(HashTree {
            root_digest: root,
            tree,
        });
    }
    let (off0, size0) = layout.levels[0];
    hash_data_level(
        data,
        data_size,
        params,
        &mut tree[off0 as usize..(off0 + size0) as usize],
    )?;
    let root = upper_levels(&mut tree, &layout, params);
    Ok(HashTree {
        root_digest: root,
        tree,
    })
}

/// Fills every level above the first of `tree` (whose first level, at
/// `layout.levels[0]`, holds the data's digests) and returns the root digest.
pub(crate) fn upper_levels(tree: &mut [u8], layout: &TreeLayout, params: &TreeParams) -> Vec<u8> {
    for n in 1..layout.levels.len() {
        let (below_off, below_size) = layout.levels[n - 1];
        let (off, size) = layout.levels[n];
        // Levels are stored top first, so the level below lies after this one.
        let (head, rest) = tree.split_at_mut(below_off as usize);
        let below = &rest[..below_size as usize];
        let out = &mut head[off as usize..(off + size) as usize];
        hash_blocks(below, params, out);
    }
    let mut root = vec![0u8; params.algorithm.digest_size()];
    let top = &tree[..params.block_size as usize];
    params.algorithm.hash_into(&params.salt, top, &mut root);
    root
}

/// Hashes the data blocks into the first level, a chunk of blocks per task.
fn hash_data_level<R: ReadAt + ?Sized>(
    data: &R,
    data_size: u64,
    params: &TreeParams,
    out: &mut [u8],
) -> Result<(), VerityError> {
    let bs = params.block_size as usize;
    let slot = params.algorithm.slot_size();
    let blocks = data_size.div_ceil(bs as u64) as usize;
    out[..blocks * slot]
        .par_chunks_mut(CHUNK_BLOCKS * slot)
        .enumerate()
        .try_for_each(|(chunk, digests)| {
            let start = (chunk * CHUNK_BLOCKS * bs) as u64;
            let len = ((data_size - start) as usize).min(CHUNK_BLOCKS * bs);
            let mut buf = vec![0u8; len.div_ceil(bs) * bs];
            data.read_at(&mut buf[..len], start)?;
            hash_blocks(&buf, params, digests);
            Ok(())
        })
}

/// Hashes each block of `blocks` into its slot of `out`.
pub(crate) fn hash_blocks(blocks: &[u8], params: &TreeParams, out: &mut [u8]) {
    let bs = params.block_size as usize;
    let alg = params.algorithm;
    let slot = alg.slot_size();
    let digest = alg.digest_size();
    out.par_chunks_mut(slot)
        .zip(blocks.par_chunks(bs))
        .for_each(|(o, b)| alg.hash_into(&params.salt, b, &mut o[..digest]));
}

/// Recomputes the tree over `data` and compares it and the root digest with
/// the stored ones.
pub fn check_tree<R: ReadAt + ?Sized>(
    data: &R,
    data_size: u64,
    params: &TreeParams,
    stored_tree: &[u8],
    root_digest: &[u8],
) -> Result<(), VerityError> {
    let computed = compute_tree(data, data_size, params)?;
    first_difference("hash tree", &computed.tree, stored_tree)?;
    first_difference("root digest", &computed.root_digest, root_digest)
}

/// `Mismatch` at the first byte where `stored` differs from `computed`.
fn first_difference(what: &'static str, computed: &[u8], stored: &[u8]) -> Result<(), VerityError> {
    let at = computed
        .iter()
        .zip(stored)
        .position(|(a, b)| a != b)
        .or((computed.len() != stored.len()).then(|| computed.len().min(stored.len())));
    match at {
        Some(offset) => Err(VerityError::Mismatch {
            what,
            offset: offset as u64,
        }),
        None => Ok(()),
    }
}

/// Reed–Solomon parameters: parity bytes per codeword and the block size of
/// the interleaving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FecParams {
    /// Parity bytes per 255-byte codeword ([`MIN_ROOTS`]..=[`MAX_ROOTS`]).
    pub roots: u8,
    /// The block size the codewords are interleaved by (4096 on Android).
    pub block_size: u32,
}

impl FecParams {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), VerityError> {
        if !(MIN_ROOTS..=MAX_ROOTS).contains(&self.roots) {
            return Err(param("FEC roots", self.roots.into(), "not from 2 to 24"));
        }
        check_block_size("FEC block size", self.block_size)
    }

    /// Data bytes per codeword.
    pub(crate) fn rs_n(self) -> usize {
        RS_CODEWORD - usize::from(self.roots)
    }

    /// Interleaving stripes over `covered` bytes.
    pub fn rounds(self, covered: u64) -> u64 {
        covered
            .div_ceil(u64::from(self.block_size))
            .div_ceil(self.rs_n() as u64)
    }

    /// Bytes of parity over `covered` bytes (without libfec's header block).
    pub fn parity_size(self, covered: u64) -> u64 {
        self.rounds(covered) * u64::from(self.roots) * u64::from(self.block_size)
    }
}

/// Computes the parity over the first `covered` bytes of `data` (data and
/// hash tree for dm-verity), one interleaving round per task.
pub fn compute_fec<R: ReadAt + ?Sized>(
    data: &R,
    covered: u64,
    params: FecParams,
) -> Result<Vec<u8>, VerityError> {
    params.validate()?;
    let size = usize::try_from(params.parity_size(covered)).map_err(|_| {
        param(
            "FEC size",
            params.parity_size(covered),
            "does not fit in memory",
        )
    })?;
    let code = ReedSolomon::new(params.roots);
    let rounds = params.rounds(covered);
    let bs = params.block_size as usize;
    let mut parity = vec![0u8; size];
    parity
        .par_chunks_mut(usize::from(params.roots) * bs)
        .enumerate()
        .try_for_each(|(round, out)| {
            let stripe = read_stripe(data, covered, params, rounds, round as u64)?;
            encode_stripe(&code, &stripe, params, out);
            Ok::<(), VerityError>(())
        })?;
    Ok(parity)
}

/// The `rs_n` blocks of one round, block `j` being block `round + j·rounds`
/// of the input (zeros past its end).
fn read_stripe<R: ReadAt + ?Sized>(
    data: &R,
    covered: u64,
    params: FecParams,
    rounds: u64,
    round: u64,
) -> io::Result<Vec<u8>> {
    let bs = params.block_size as usize;
    let mut stripe = vec![0u8; params.rs_n() * bs];
    for (j, block) in stripe.chunks_mut(bs).enumerate() {
        let at = (round + j as u64 * rounds) * bs as u64;
        if at < covered {
            let n = ((covered - at) as usize).min(bs);
            data.read_at(&mut block[..n], at)?;
        }
    }
    Ok(stripe)
}

/// Encodes the `block_size` codewords of a stripe: codeword `k` is byte `k`
/// of each block; its parity goes to `out[k·roots..]`.
fn encode_stripe(code: &ReedSolomon, stripe: &[u8], params: FecParams, out: &mut [u8]) {
    let bs = params.block_size as usize;
    let roots = usize::from(params.roots);
    let mut word = vec![0u8; params.rs_n()];
    for (k, parity) in out.chunks_mut(roots).enumerate() {
        for (j, w) in word.iter_mut().enumerate() {
            *w = stripe[j * bs + k];
        }
        code.encode(&word, parity);
    }
}

/// Recomputes the parity over `data` and compares it with the stored one.
pub fn check_fec<R: ReadAt + ?Sized>(
    data: &R,
    covered: u64,
    params: FecParams,
    stored: &[u8],
) -> Result<(), VerityError> {
    let computed = compute_fec(data, covered, params)?;
    first_difference("FEC parity", &computed, stored)
}

/// GF(2^8) with the field polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11d).
struct Gf {
    exp: [u8; 512],
    log: [u8; 256],
}

impl Gf {
    fn new() -> Self {
        let mut exp = [0u8; 512];
        let mut log = [0u8; 256];
        let mut x: u16 = 1;
        for (i, e) in exp.iter_mut().take(255).enumerate() {
            *e = x as u8;
            log[x as usize] = i as u8;
            x <<= 1;
            if x & 0x100 != 0 {
                x ^= 0x11d;
            }
        }
        exp.copy_within(..255, 255);
        exp[510] = exp[0];
        Gf { exp, log }
    }

    fn mul(&self, a: u8, b: u8) -> u8 {
        if a == 0 || b == 0 {
            return 0;
        }
        self.exp[usize::from(self.log[usize::from(a)]) + usize::from(self.log[usize::from(b)])]
    }
}

/// A systematic Reed–Solomon encoder: parity = data(x)·x^roots mod g(x),
/// g(x) = ∏ (x − α^i) for i in 0..roots, highest coefficients first.
pub(crate) struct ReedSolomon {
    /// For each coefficient of g below the leading 1 (highest degree first),
    /// the products of every byte with it.
    tables: Vec<[u8; 256]>,
}

impl ReedSolomon {
    pub(crate) fn new(roots: u8) -> Self {
        let gf = Gf::new();
        // g as coefficients, highest degree first, starting from g = 1.
        let mut g = vec![1u8];
        for i in 0..usize::from(roots) {
            let root = gf.exp[i];
            let mut next = vec![0u8; g.len() + 1];
            for (d, &c) in g.iter().enumerate() {
                next[d] ^= c;
                next[d + 1] ^= gf.mul(c, root);
            }
            g = next;
        }
        let tables = g[1..]
            .iter()
            .map(|&c| std::array::from_fn(|b| gf.mul(b as u8, c)))
            .collect();
        ReedSolomon { tables }
    }

    /// Feeds one more byte of each of `data.len()` interleaved codewords:
    /// byte `k` of `data` goes to the codeword whose parity-so-far is
    /// `state[k·roots..(k+1)·roots]` (the remainder of the bytes fed so far).
    /// A missing byte (past the end of the input) is fed as zero.
    pub(crate) fn push(&self, state: &mut [u8], data: Option<&[u8]>, count: usize) {
        let roots = self.tables.len();
        let last = roots - 1;
        for (k, p) in state.chunks_exact_mut(roots).take(count).enumerate() {
            let feedback = usize::from(data.map_or(0, |d| d[k]) ^ p[0]);
            for r in 0..last {
                p[r] = p[r + 1] ^ self.tables[r][feedback];
            }
            p[last] = self.tables[last][feedback];
        }
    }

    /// Writes the parity of `data` (at most 255 − roots bytes) into `parity`.
    fn encode(&self, data: &[u8], parity: &mut [u8]) {
        parity.fill(0);
        let last = parity.len() - 1;
        for &d in data {
            let feedback = usize::from(d ^ parity[0]);
            parity.copy_within(1.., 0);
            parity[last] = 0;
            for (p, table) in parity.iter_mut().zip(&self.tables) {
                *p ^= table[feedback];
            }
        }
    }
}

/// libfec's header (`struct fec_header`, little-endian), written by
/// `fec --encode` after the parity in a block of its own, at the block's
/// start and again in its last [`FEC_HEADER_SIZE`] bytes; readers look for it
/// at the end of the partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FecHeader {
    /// 0: [`FEC_MAGIC`].
    pub magic: u32,
    /// 4: format version (0).
    pub version: u32,
    /// 8: size of this header (60).
    pub size: u32,
    /// 12: parity bytes per codeword.
    pub roots: u32,
    /// 16: bytes of parity before the header block.
    pub fec_size: u32,
    /// 20: bytes the parity covers (data and hash tree).
    pub inp_size: u64,
    /// 28: SHA-256 of the parity.
    pub hash: [u8; 32],
}

impl FecHeader {
    /// The header of `parity` over `inp_size` bytes.
    pub fn new(parity: &[u8], roots: u8, inp_size: u64) -> Result<Self, VerityError> {
        let fec_size = u32::try_from(parity.len())
            .map_err(|_| param("FEC size", parity.len() as u64, "over 4 GiB"))?;
        Ok(FecHeader {
            magic: FEC_MAGIC,
            version: 0,
            size: FEC_HEADER_SIZE as u32,
            roots: roots.into(),
            fec_size,
            inp_size,
            hash: Sha256::digest(parity).into(),
        })
    }

    /// The header as stored.
    pub fn to_bytes(&self) -> [u8; FEC_HEADER_SIZE] {
        let mut b = [0u8; FEC_HEADER_SIZE];
        b[0..4].copy_from_slice(&self.magic.to_le_bytes());
        b[4..8].copy_from_slice(&self.version.to_le_bytes());
        b[8..12].copy_from_slice(&self.size.to_le_bytes());
        b[12..16].copy_from_slice(&self.roots.to_le_bytes());
        b[16..20].copy_from_slice(&self.fec_size.to_le_bytes());
        b[20..28].copy_from_slice(&self.inp_size.to_le_bytes());
        b[28..60].copy_from_slice(&self.hash);
        b
    }

    /// Parses the header in the first [`FEC_HEADER_SIZE`] bytes of `b`.
    pub fn parse(b: &[u8]) -> Result<Self, VerityError> {
        let b = b
            .get(..FEC_HEADER_SIZE)
            .ok_or_else(|| VerityError::Header {
                field: "header",
                value: b.len() as u64,
                offset: 0,
                why: format!("needs {FEC_HEADER_SIZE} bytes"),
            })?;
        let le32 = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let mut inp = [0u8; 8];
        inp.copy_from_slice(&b[20..28]);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&b[28..60]);
        Ok(FecHeader {
            magic: le32(0),
            version: le32(4),
            size: le32(8),
            roots: le32(12),
            fec_size: le32(16),
            inp_size: u64::from_le_bytes(inp),
            hash,
        })
    }

    /// Checks magic, version, size and roots, and that the parity size is
    /// the one `inp_size` and `roots` give with `block_size` interleaving.
    pub fn validate(&self, block_size: u32) -> Result<(), VerityError> {
        let bad = |field, value: u64, offset, why: String| {
            Err(VerityError::Header {
                field,
                value,
                offset,
                why,
            })
        };
        if self.magic != FEC_MAGIC {
            return bad("magic", self.magic.into(), 0, "not 0xfecfecfe".into());
        }
        if self.version != 0 {
            return bad(
                "version",
                self.version.into(),
                4,
                "only version 0 exists".into(),
            );
        }
        if self.size != FEC_HEADER_SIZE as u32 {
            return bad("size", self.size.into(), 8, "not 60".into());
        }
        let roots = u8::try_from(self.roots).unwrap_or(0);
        let params = FecParams { roots, block_size };
        if params.validate().is_err() {
            return bad("roots", self.roots.into(), 12, "not from 2 to 24".into());
        }
        let want = params.parity_size(self.inp_size);
        if u64::from(self.fec_size) != want {
            let why = format!("{} bytes with {} roots need {want}", self.inp_size, roots);
            return bad("fec_size", self.fec_size.into(), 16, why);
        }
        Ok(())
    }

    /// The block `fec --encode` writes after the parity: the header at its
    /// start and in its last [`FEC_HEADER_SIZE`] bytes.
    pub fn trailer_block(&self, block_size: u32) -> Vec<u8> {
        let mut block = vec![0u8; block_size as usize];
        let h = self.to_bytes();
        block[..FEC_HEADER_SIZE].copy_from_slice(&h);
        let end = block.len() - FEC_HEADER_SIZE;
        block[end..].copy_from_slice(&h);
        block
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_of_one_two_and_many_blocks() {
        let a = HashAlgorithm::Sha256;
        assert_eq!(TreeLayout::new(4096, 4096, a).unwrap().size, 0);
        let two = TreeLayout::new(8192, 4096, a).unwrap();
        assert_eq!(two.levels, vec![(0, 4096)]);
        // 300 blocks: 3 blocks of digests, then one block over those.
        let many = TreeLayout::new(300 * 4096, 4096, a).unwrap();
        assert_eq!(many.levels, vec![(4096, 3 * 4096), (0, 4096)]);
        assert!(TreeLayout::new(0, 4096, a).is_err());
    }

    #[test]
    fn codewords_are_multiples_of_the_generator() {
        // A codeword (data then parity) evaluates to zero at every root
        // α^0..α^(roots-1); checked with Horner's rule, independently of
        // the encoder's division.
        let gf = Gf::new();
        for roots in [2u8, 4, 24] {
            let code = ReedSolomon::new(roots);
            let data: Vec<u8> = (0..(255 - roots as usize))
                .map(|i| (i * 7 + 3) as u8)
                .collect();
            let mut parity = vec![0u8; roots.into()];
            code.encode(&data, &mut parity);
            let word: Vec<u8> = data.iter().chain(&parity).copied().collect();
            for i in 0..usize::from(roots) {
                let x = gf.exp[i];
                let v = word.iter().fold(0u8, |acc, &c| gf.mul(acc, x) ^ c);
                assert_eq!(v, 0, "roots {roots}, root α^{i}");
            }
        }
    }

    #[test]
    fn fec_header_round_trips_and_validates() {
        let p = FecParams {
            roots: 2,
            block_size: 4096,
        };
        let parity = vec![7u8; p.parity_size(304 * 4096) as usize];
        let h = FecHeader::new(&parity, 2, 304 * 4096).unwrap();
        h.validate(4096).unwrap();
        let block = h.trailer_block(4096);
        assert_eq!(FecHeader::parse(&block).unwrap(), h);
        assert_eq!(FecHeader::parse(&block[4096 - 60..]).unwrap(), h);
        let mut bad = h.clone();
        bad.fec_size += 1;
        let e = bad.validate(4096).unwrap_err().to_string();
        assert!(e.contains("fec_size at offset 16"), "{e}");
    }
}
