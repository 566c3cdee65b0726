//! Hash tree and FEC fields of a partition update (update_metadata.proto
//! fields 10–16), applied as update_engine's verity writer applies them.
//!
//! delta_generator leaves the blocks of the dm-verity hash tree and of the
//! FEC parity out of the operations when it fills these fields: the device
//! computes them after the operations, over `hash_tree_data_extent` (the
//! filesystem) into `hash_tree_extent`, then over `fec_data_extent` (the
//! filesystem and the tree) into `fec_extent`, and `new_partition_info.hash`
//! covers the result. [`ImageHasher`] does the same while the image streams
//! past in order: it hashes the data blocks into the tree's first level,
//! feeds every covered byte to the interleaved Reed–Solomon codewords, and
//! hashes the computed tree and parity in place of whatever the operations
//! left in their blocks, so that verifying needs no image on disk. The
//! caller writes [`VerityBytes`] into the image when it has one.

use std::ops::Range;

use sha2::{Digest, Sha256};

use super::proto::{Extent, PartitionUpdate};
use crate::format::verity::{self, FecParams, HashAlgorithm, ReedSolomon, TreeLayout, TreeParams};

/// Where the tree comes from and goes, in bytes of the partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeSpec {
    /// The bytes hashed.
    pub data: Range<u64>,
    /// Where the tree is written.
    pub tree: Range<u64>,
    /// Algorithm, block size and salt.
    pub params: TreeParams,
}

/// Where the FEC parity comes from and goes, in bytes of the partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FecSpec {
    /// The bytes covered (filesystem and tree).
    pub data: Range<u64>,
    /// Where the parity is written.
    pub fec: Range<u64>,
    /// Roots and interleaving block size.
    pub params: FecParams,
}

/// The verity fields of a partition, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionVerity {
    /// The hash tree, when `hash_tree_extent` is set.
    pub tree: Option<TreeSpec>,
    /// The FEC parity, when `fec_extent` is set.
    pub fec: Option<FecSpec>,
}

/// An extent in bytes, checked to lie in a `size`-byte partition.
fn range(e: &Option<Extent>, field: &str, bs: u64, size: u64) -> Result<Range<u64>, String> {
    let e = e.as_ref().ok_or_else(|| format!("{field} is missing"))?;
    let (start, n) = (e.start_block.unwrap_or(0), e.num_blocks.unwrap_or(0));
    let r = start
        .checked_mul(bs)
        .and_then(|s| n.checked_mul(bs).and_then(|l| s.checked_add(l)).map(|end| s..end))
        .filter(|r| r.end <= size && !r.is_empty())
        .ok_or_else(|| {
            format!("{field} (start_block {start}, num_blocks {n}) is empty or outside the {size}-byte partition")
        })?;
    Ok(r)
}

/// The partition's verity fields, `None` when it has neither a tree nor FEC.
/// The layout must let the image be processed in one pass, as Android lays
/// it out: each output after the data it is computed from.
pub fn from_update(
    p: &PartitionUpdate,
    block_size: u64,
    size: u64,
) -> Result<Option<PartitionVerity>, String> {
    let has_tree = p
        .hash_tree_extent
        .as_ref()
        .is_some_and(|e| e.num_blocks.unwrap_or(0) > 0);
    let has_fec = p
        .fec_extent
        .as_ref()
        .is_some_and(|e| e.num_blocks.unwrap_or(0) > 0);
    if !has_tree && !has_fec {
        return Ok(None);
    }
    let bs32 = u32::try_from(block_size).map_err(|_| "block size over 4 GiB".to_string())?;
    let tree = has_tree
        .then(|| tree_spec(p, block_size, bs32, size))
        .transpose()?;
    let fec = has_fec
        .then(|| fec_spec(p, block_size, bs32, size))
        .transpose()?;
    if let (Some(t), Some(f)) = (&tree, &fec)
        && t.tree.start < f.fec.end
        && f.fec.start < t.tree.end
    {
        return Err("hash_tree_extent and fec_extent overlap".into());
    }
    Ok(Some(PartitionVerity { tree, fec }))
}

fn tree_spec(p: &PartitionUpdate, bs: u64, bs32: u32, size: u64) -> Result<TreeSpec, String> {
    let data = range(&p.hash_tree_data_extent, "hash_tree_data_extent", bs, size)?;
    let tree = range(&p.hash_tree_extent, "hash_tree_extent", bs, size)?;
    let alg = p.hash_tree_algorithm.as_deref().unwrap_or("");
    let algorithm = HashAlgorithm::from_name(alg).map_err(|e| e.to_string())?;
    let params = TreeParams {
        algorithm,
        block_size: bs32,
        salt: p.hash_tree_salt.clone().unwrap_or_default(),
    };
    params.validate().map_err(|e| e.to_string())?;
    let layout =
        TreeLayout::new(data.end - data.start, bs32, algorithm).map_err(|e| e.to_string())?;
    if layout.size != tree.end - tree.start {
        return Err(format!(
            "hash_tree_extent is {} bytes, a tree over {} bytes of hash_tree_data_extent is {}",
            tree.end - tree.start,
            data.end - data.start,
            layout.size
        ));
    }
    if tree.start < data.end {
        return Err(format!(
            "hash_tree_extent starts at byte {}, before the end of hash_tree_data_extent ({})",
            tree.start, data.end
        ));
    }
    Ok(TreeSpec { data, tree, params })
}

fn fec_spec(p: &PartitionUpdate, bs: u64, bs32: u32, size: u64) -> Result<FecSpec, String> {
    let data = range(&p.fec_data_extent, "fec_data_extent", bs, size)?;
    let fec = range(&p.fec_extent, "fec_extent", bs, size)?;
    let roots = p.fec_roots.unwrap_or(u32::from(verity::DEFAULT_ROOTS));
    let params = FecParams {
        roots: u8::try_from(roots).unwrap_or(0),
        block_size: bs32,
    };
    if params.validate().is_err() {
        return Err(format!("fec_roots = {roots} is not from 2 to 24"));
    }
    let want = params.parity_size(data.end - data.start);
    if fec.end - fec.start != want {
        return Err(format!(
            "fec_extent is {} bytes, {roots} roots over {} bytes of fec_data_extent need {want}",
            fec.end - fec.start,
            data.end - data.start
        ));
    }
    if fec.start < data.end {
        return Err(format!(
            "fec_extent starts at byte {}, before the end of fec_data_extent ({})",
            fec.start, data.end
        ));
    }
    Ok(FecSpec { data, fec, params })
}

/// The computed tree and parity, and where they go in the partition.
#[derive(Clone, Debug, Default)]
pub struct VerityBytes {
    /// (offset, bytes) of the tree.
    pub tree: Option<(u64, Vec<u8>)>,
    /// (offset, bytes) of the parity.
    pub fec: Option<(u64, Vec<u8>)>,
}

/// The tree being built from the stream.
struct TreeState {
    spec: TreeSpec,
    layout: TreeLayout,
    /// The whole tree; its first level fills as data blocks complete.
    tree: Vec<u8>,
    /// The data block being collected.
    block: Vec<u8>,
    /// Data blocks hashed so far.
    blocks: usize,
    done: bool,
}

/// The parity being computed from the stream.
struct FecState {
    spec: FecSpec,
    code: ReedSolomon,
    rounds: u64,
    /// Per round, the remainders of its `block_size` codewords.
    parity: Vec<u8>,
    done: bool,
}

/// SHA-256 of a partition image fed in order, with the tree and parity
/// computed from the stream and hashed in place of their blocks.
pub struct ImageHasher {
    sha: Sha256,
    pos: u64,
    tree: Option<TreeState>,
    fec: Option<FecState>,
}

impl ImageHasher {
    /// A hasher for a partition with these verity fields (if any).
    pub fn new(verity: Option<&PartitionVerity>) -> Self {
        // from_update() checked that the layout exists; a spec without one
        // would have been refused with the manifest.
        let tree = verity.and_then(|v| v.tree.clone()).and_then(|spec| {
            let data_len = spec.data.end - spec.data.start;
            let layout =
                TreeLayout::new(data_len, spec.params.block_size, spec.params.algorithm).ok()?;
            Some(TreeState {
                tree: Vec::new(),
                block: Vec::with_capacity(spec.params.block_size as usize),
                layout,
                spec,
                blocks: 0,
                done: false,
            })
        });
        let fec = verity.and_then(|v| v.fec.clone()).map(|spec| {
            let covered = spec.data.end - spec.data.start;
            FecState {
                code: ReedSolomon::new(spec.params.roots),
                rounds: spec.params.rounds(covered),
                parity: Vec::new(),
                spec,
                done: false,
            }
        });
        ImageHasher {
            sha: Sha256::new(),
            pos: 0,
            tree,
            fec,
        }
    }

    /// The next position where what happens to the bytes changes.
    fn next_boundary(&self) -> u64 {
        let mut cuts = Vec::with_capacity(8);
        if let Some(t) = &self.tree {
            cuts.extend([
                t.spec.data.start,
                t.spec.data.end,
                t.spec.tree.start,
                t.spec.tree.end,
            ]);
        }
        if let Some(f) = &self.fec {
            cuts.extend([
                f.spec.data.start,
                f.spec.data.end,
                f.spec.fec.start,
                f.spec.fec.end,
            ]);
        }
        cuts.into_iter()
            .filter(|&c| c > self.pos)
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Feeds the next bytes of the image.
    pub fn update(&mut self, mut bytes: &[u8]) {
        if self.tree.is_none() && self.fec.is_none() {
            self.sha.update(bytes);
            self.pos += bytes.len() as u64;
            return;
        }
        while !bytes.is_empty() {
            let n = (self.next_boundary() - self.pos).min(bytes.len() as u64) as usize;
            let (piece, rest) = bytes.split_at(n);
            self.piece(piece);
            bytes = rest;
        }
    }

    /// Bytes that lie within one region of each kind.
    fn piece(&mut self, given: &[u8]) {
        let pos = self.pos;
        let n = given.len() as u64;
        let mut substitute: Option<Vec<u8>> = None;
        if let Some(t) = &mut self.tree
            && t.spec.tree.contains(&pos)
        {
            t.finish();
            let at = (pos - t.spec.tree.start) as usize;
            substitute = Some(t.tree[at..at + n as usize].to_vec());
        }
        if let Some(f) = &mut self.fec
            && f.spec.fec.contains(&pos)
        {
            f.finish();
            let at = (pos - f.spec.fec.start) as usize;
            substitute = Some(f.parity[at..at + n as usize].to_vec());
        }
        let bytes = substitute.as_deref().unwrap_or(given);
        self.sha.update(bytes);
        if let Some(t) = &mut self.tree
            && t.spec.data.contains(&pos)
        {
            t.feed(bytes);
        }
        if let Some(f) = &mut self.fec
            && f.spec.data.contains(&pos)
        {
            f.feed(pos - f.spec.data.start, bytes);
        }
        self.pos += n;
    }

    /// The image's SHA-256 and the computed tree and parity.
    pub fn finish(mut self) -> ([u8; 32], VerityBytes) {
        let mut out = VerityBytes::default();
        if let Some(mut t) = self.tree.take() {
            t.finish();
            out.tree = Some((t.spec.tree.start, t.tree));
        }
        if let Some(mut f) = self.fec.take() {
            f.finish();
            out.fec = Some((f.spec.fec.start, f.parity));
        }
        (self.sha.finalize().into(), out)
    }
}

impl TreeState {
    /// Collects data bytes; each complete block's digest goes to the first level.
    fn feed(&mut self, mut bytes: &[u8]) {
        self.allocate();
        let bs = self.spec.params.block_size as usize;
        let slot = self.spec.params.algorithm.slot_size();
        let digest = self.spec.params.algorithm.digest_size();
        let level0 = self.layout.levels.first().map_or(0, |l| l.0 as usize);
        while !bytes.is_empty() {
            let take = (bs - self.block.len()).min(bytes.len());
            self.block.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.block.len() == bs {
                let at = level0 + self.blocks * slot;
                if self.layout.levels.is_empty() {
                    // One block of data: its digest is the root; nothing stored.
                } else {
                    let out = &mut self.tree[at..at + digest];
                    self.spec
                        .params
                        .algorithm
                        .hash_into(&self.spec.params.salt, &self.block, out);
                }
                self.blocks += 1;
                self.block.clear();
            }
        }
    }

    /// The tree's memory, taken when the stream reaches the data, so that
    /// partitions waiting their turn hold none.
    fn allocate(&mut self) {
        if self.tree.len() as u64 != self.layout.size {
            self.tree = vec![0u8; self.layout.size as usize];
        }
    }

    /// Builds the levels above the first once the data is complete.
    fn finish(&mut self) {
        self.allocate();
        if !self.done {
            if !self.layout.levels.is_empty() {
                verity::upper_levels(&mut self.tree, &self.layout, &self.spec.params);
            }
            self.done = true;
        }
    }
}

impl FecState {
    /// Feeds covered bytes starting `off` bytes into the covered range.
    fn feed(&mut self, mut off: u64, mut bytes: &[u8]) {
        self.allocate();
        let bs = u64::from(self.spec.params.block_size);
        let roots = usize::from(self.spec.params.roots);
        while !bytes.is_empty() {
            let (block, k) = (off / bs, (off % bs) as usize);
            let n = ((bs as usize) - k).min(bytes.len());
            let round = (block % self.rounds) as usize;
            let start = (round * bs as usize + k) * roots;
            let state = &mut self.parity[start..start + n * roots];
            self.code.push(state, Some(&bytes[..n]), n);
            bytes = &bytes[n..];
            off += n as u64;
        }
    }

    /// The parity's memory, taken when the stream reaches the covered range.
    fn allocate(&mut self) {
        let size = self
            .spec
            .params
            .parity_size(self.spec.data.end - self.spec.data.start);
        if self.parity.len() as u64 != size {
            self.parity = vec![0u8; size as usize];
        }
    }

    /// Feeds the zeros that stand for blocks past the covered range.
    fn finish(&mut self) {
        self.allocate();
        if self.done {
            return;
        }
        let bs = self.spec.params.block_size as usize;
        let roots = usize::from(self.spec.params.roots);
        let covered = self.spec.data.end - self.spec.data.start;
        let blocks = covered.div_ceil(bs as u64);
        let rs_n = self.spec.params.rs_n() as u64;
        for round in 0..self.rounds {
            let fed = (blocks - round).div_ceil(self.rounds);
            let state = &mut self.parity[round as usize * bs * roots..][..bs * roots];
            for _ in fed..rs_n {
                self.code.push(state, None, bs);
            }
        }
        self.done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stream gives the same tree and parity as the whole-image
    /// functions, whatever the pieces it is fed in.
    #[test]
    fn streaming_equals_whole_image() {
        let bs = 4096u64;
        let data_blocks = 300u64;
        let params = TreeParams {
            algorithm: HashAlgorithm::Sha256,
            block_size: 4096,
            salt: vec![9; 32],
        };
        let layout = TreeLayout::new(data_blocks * bs, 4096, HashAlgorithm::Sha256).unwrap();
        let tree_end = data_blocks * bs + layout.size;
        let fp = FecParams {
            roots: 2,
            block_size: 4096,
        };
        let fec_len = fp.parity_size(tree_end);
        let size = tree_end + fec_len;
        let mut image: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let v = PartitionVerity {
            tree: Some(TreeSpec {
                data: 0..data_blocks * bs,
                tree: data_blocks * bs..tree_end,
                params: params.clone(),
            }),
            fec: Some(FecSpec {
                data: 0..tree_end,
                fec: tree_end..size,
                params: fp,
            }),
        };
        let mut h = ImageHasher::new(Some(&v));
        for piece in image.chunks(7919) {
            h.update(piece);
        }
        let (sha, bytes) = h.finish();
        let whole = verity::compute_tree(&image, data_blocks * bs, &params).unwrap();
        let (at, tree) = bytes.tree.unwrap();
        assert_eq!(at, data_blocks * bs);
        assert!(tree == whole.tree);
        image[at as usize..tree_end as usize].copy_from_slice(&tree);
        let parity = verity::compute_fec(&image, tree_end, fp).unwrap();
        let (at, fec) = bytes.fec.unwrap();
        assert_eq!(at, tree_end);
        assert!(fec == parity);
        image[tree_end as usize..].copy_from_slice(&parity);
        assert_eq!(sha, <[u8; 32]>::from(Sha256::digest(&image)));
    }
}
