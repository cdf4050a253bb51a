//! dm-verity hash trees, byte-compatible with `veritysetup format` (format version 1,
//! the superblock included).
//!
//! The tree is laid out as cryptsetup does: after the superblock (padded to one hash
//! block) come the levels from the root-most (one block) down to the level that
//! hashes the data blocks. Each hash is `H(salt ‖ block)` (hash type 1). Digests sit
//! in each hash block at a stride of the digest size rounded up to a power of two,
//! the rest of the block zero. The root hash is the hash of the top block.

mod sha256x2;
pub mod sig;
pub mod superblock;

use std::fs::File;
use std::os::unix::fs::FileExt;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

pub use superblock::VeritySuperblock;

#[derive(Debug, thiserror::Error)]
pub enum VerityError {
    #[error("invalid verity parameters: {0}")]
    Invalid(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("verification failed: {0}")]
    Mismatch(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> VerityError {
    let what = what.into();
    move |source| VerityError::Io { what, source }
}

/// What `veritysetup format` takes. Only sha256 is supported: it is what systemd's
/// Discoverable Disk Images use and what the kernel accelerates everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityParams {
    pub data_block_size: u32,
    pub hash_block_size: u32,
    pub salt: Vec<u8>,
    pub uuid: [u8; 16],
}

impl VerityParams {
    pub fn new(salt: Vec<u8>, uuid: [u8; 16]) -> VerityParams {
        VerityParams {
            data_block_size: 4096,
            hash_block_size: 4096,
            salt,
            uuid,
        }
    }

    fn check(&self) -> Result<(), VerityError> {
        for (what, size) in [
            ("data", self.data_block_size),
            ("hash", self.hash_block_size),
        ] {
            if !size.is_power_of_two() || !(512..=(1 << 20)).contains(&size) {
                return Err(VerityError::Invalid(format!(
                    "{what} block size {size} must be a power of two in 512..=1MiB"
                )));
            }
        }
        if self.salt.len() > 256 {
            return Err(VerityError::Invalid("salt longer than 256 bytes".into()));
        }
        Ok(())
    }
}

/// A deterministic 32-byte salt from a build seed, so that a rebuild of the same
/// inputs produces the same hash partition (and so the same root hash and UUIDs).
pub fn derive_salt(seed: &[u8], purpose: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"tessera-osimage verity salt v1\0");
    h.update(purpose.as_bytes());
    h.update([0]);
    h.update(seed);
    h.finalize().to_vec()
}

use sha256x2::{DIGEST, salted, salted_blocks};

/// Where each level of the tree lives, in hash blocks from the start of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeLayout {
    pub data_blocks: u64,
    pub hash_block_size: u32,
    /// Digests per hash block.
    pub fanout: u64,
    /// Byte stride of a digest inside a hash block.
    pub stride: usize,
    /// `levels[0]` hashes the data; the last level is one block.
    pub levels: Vec<Level>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub first_block: u64,
    pub blocks: u64,
}

impl TreeLayout {
    pub fn new(data_blocks: u64, hash_block_size: u32) -> TreeLayout {
        let stride = DIGEST.next_power_of_two();
        let fanout = (hash_block_size as usize / stride) as u64;
        let bits = fanout.trailing_zeros();
        let mut depth = 0u32;
        while bits * depth < 64 && data_blocks.saturating_sub(1) >> (bits * depth) != 0 {
            depth += 1;
        }
        // cryptsetup places the root-most level first.
        let mut levels = vec![
            Level {
                first_block: 0,
                blocks: 0
            };
            depth as usize
        ];
        let mut position = 0u64;
        for i in (0..depth).rev() {
            let shift = (i + 1) * bits;
            let blocks = if shift >= 64 {
                1
            } else {
                (data_blocks + (1u64 << shift) - 1) >> shift
            };
            levels[i as usize] = Level {
                first_block: position,
                blocks,
            };
            position += blocks;
        }
        TreeLayout {
            data_blocks,
            hash_block_size,
            fanout,
            stride,
            levels,
        }
    }

    /// Hash blocks in the tree (the superblock not counted).
    pub fn tree_blocks(&self) -> u64 {
        self.levels.iter().map(|l| l.blocks).sum()
    }

    /// Where the level that hashes the data lies in the hash device, in bytes; empty
    /// for a one-block device, whose root is the block's own hash.
    pub fn leaf_level_bytes(&self) -> std::ops::Range<usize> {
        let hbs = self.hash_block_size as usize;
        self.levels.first().map_or(0..0, |l| {
            let start = hbs * (1 + l.first_block as usize);
            start..start + hbs * l.blocks as usize
        })
    }

    /// Bytes of the whole hash device: superblock block plus tree.
    pub fn hash_device_size(&self) -> u64 {
        (1 + self.tree_blocks()) * self.hash_block_size as u64
    }
}

/// The result of formatting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityTree {
    pub root_hash: [u8; DIGEST],
    pub superblock: VeritySuperblock,
    pub layout: TreeLayout,
    /// The whole hash device image: superblock, padding, tree.
    pub hash_device: Vec<u8>,
}

/// Bytes read from the data device per batch by [`build_with_reader`]; each batch is
/// hashed on all cores.
const BATCH: usize = 32 << 20;

/// Data blocks hashed by one task of [`build`]: small enough that both cores finish
/// together, large enough that scheduling and progress reports cost nothing.
const BLOCKS_PER_TASK: u64 = 256;

/// Hashes `data_size` bytes of `data` from `offset` and returns the tree.
/// `data_size` must be a multiple of the data block size. `progress` is told of each
/// piece hashed, in bytes, from whichever worker thread hashed it.
pub fn build(
    data: &File,
    offset: u64,
    data_size: u64,
    params: &VerityParams,
    progress: impl Fn(u64) + Sync,
) -> Result<VerityTree, VerityError> {
    let dbs = check_data_size(data_size, params)? as usize;
    // The data is mapped rather than read so hashing runs on all cores straight from
    // the page cache with no copy, in one parallel pass: batches would leave a core
    // idle at the end of each.
    // SAFETY: the mapping is read-only and dropped before returning; a concurrent
    // writer could only make the hashes wrong, which verification would catch.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(data_size as usize)
            .map(data)
    }
    .map_err(io(format!("map {data_size} bytes of data at {offset}")))?;
    tree_with(data_size / dbs as u64, params, |layout, leaves| {
        let hbs = params.hash_block_size as usize;
        let (fanout, stride) = (layout.fanout as usize, layout.stride);
        let hash_blocks_per_task = BLOCKS_PER_TASK.div_ceil(layout.fanout) as usize;
        leaves
            .par_chunks_mut(hash_blocks_per_task * hbs)
            .zip(map.par_chunks(hash_blocks_per_task * fanout * dbs))
            .for_each(|(out, blocks)| {
                salted_blocks(&params.salt, blocks, dbs, |i, digest| {
                    let at = (i / fanout) * hbs + (i % fanout) * stride;
                    out[at..at + DIGEST].copy_from_slice(&digest);
                });
                // Unmapping a GiB at the end is tens of milliseconds of page-table
                // work on one core; dropping each piece's pages as it is done shares
                // that between the cores. The page cache keeps the data.
                let at = blocks.as_ptr() as usize - map.as_ptr() as usize;
                // SAFETY: the mapping is shared and read-only, so dropping its pages
                // loses nothing: a later read faults them in again from the file.
                let _ = unsafe {
                    map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, at, blocks.len())
                };
                progress(blocks.len() as u64);
            });
    })
}

/// Checks the parameters and that `data_size` is whole data blocks; returns the
/// data block size.
fn check_data_size(data_size: u64, params: &VerityParams) -> Result<u64, VerityError> {
    params.check()?;
    let dbs = params.data_block_size as u64;
    if data_size == 0 || !data_size.is_multiple_of(dbs) {
        return Err(VerityError::Invalid(format!(
            "data size {data_size} is not a non-zero multiple of the {dbs}-byte data block"
        )));
    }
    Ok(dbs)
}

/// Appends the digests of `chunk`'s data blocks to `out`, hashed on all cores.
fn hash_leaves(chunk: &[u8], params: &VerityParams, out: &mut Vec<[u8; DIGEST]>) {
    let dbs = params.data_block_size as usize;
    let start = out.len();
    out.resize(start + chunk.len() / dbs, [0; DIGEST]);
    out[start..]
        .par_chunks_mut(BLOCKS_PER_TASK as usize)
        .zip(chunk.par_chunks(BLOCKS_PER_TASK as usize * dbs))
        .for_each(|(digests, blocks)| {
            salted_blocks(&params.salt, blocks, dbs, |i, digest| digests[i] = digest);
        });
}

/// Hashes data as it streams past (an update being written), on all cores per chunk,
/// so the data is read exactly once.
#[derive(Debug)]
pub struct LeafHasher {
    params: VerityParams,
    leaves: Vec<[u8; DIGEST]>,
    partial: Vec<u8>,
}

impl LeafHasher {
    pub fn new(params: VerityParams) -> Result<LeafHasher, VerityError> {
        params.check()?;
        Ok(LeafHasher {
            params,
            leaves: Vec::new(),
            partial: Vec::new(),
        })
    }

    pub fn update(&mut self, mut data: &[u8]) {
        let bs = self.params.data_block_size as usize;
        if !self.partial.is_empty() {
            let take = (bs - self.partial.len()).min(data.len());
            self.partial.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.partial.len() == bs {
                let block = std::mem::take(&mut self.partial);
                hash_leaves(&block, &self.params, &mut self.leaves);
            }
        }
        let whole = data.len() - data.len() % bs;
        hash_leaves(&data[..whole], &self.params, &mut self.leaves);
        self.partial.extend_from_slice(&data[whole..]);
    }

    /// The tree over everything seen; the data must end on a block boundary.
    pub fn finish(self) -> Result<VerityTree, VerityError> {
        if !self.partial.is_empty() || self.leaves.is_empty() {
            return Err(VerityError::Invalid(
                "data is not a non-zero multiple of the data block size".into(),
            ));
        }
        assemble(self.leaves, &self.params)
    }
}

/// Like [`build`], for data read through `read_at(offset, buf)` (a partition behind
/// the [`crate::disk::Disk`] trait), in batches.
pub fn build_with_reader(
    mut read_at: impl FnMut(u64, &mut [u8]) -> std::io::Result<()>,
    data_size: u64,
    params: &VerityParams,
) -> Result<VerityTree, VerityError> {
    let dbs = check_data_size(data_size, params)?;
    let mut leaf_digests = Vec::with_capacity((data_size / dbs) as usize);
    let batch = (BATCH - BATCH % dbs as usize) as u64;
    let mut buf = vec![0u8; batch.min(data_size) as usize];
    let mut done = 0u64;
    while done < data_size {
        let n = batch.min(data_size - done) as usize;
        read_at(done, &mut buf[..n]).map_err(io(format!("read data at {done}")))?;
        hash_leaves(&buf[..n], params, &mut leaf_digests);
        done += n as u64;
    }
    assemble(leaf_digests, params)
}

/// The superblock for `layout`, and the hash device image holding it, padded to one
/// hash block, followed by a zeroed tree.
fn empty_hash_device(
    layout: &TreeLayout,
    params: &VerityParams,
) -> Result<(VeritySuperblock, Vec<u8>), VerityError> {
    let superblock = VeritySuperblock {
        hash_type: 1,
        uuid: params.uuid,
        algorithm: "sha256".into(),
        data_block_size: params.data_block_size,
        hash_block_size: params.hash_block_size,
        data_blocks: layout.data_blocks,
        salt: params.salt.clone(),
    };
    let mut hash_device = vec![0u8; layout.hash_device_size() as usize];
    let encoded = superblock.encode()?;
    hash_device[..encoded.len()].copy_from_slice(&encoded);
    Ok((superblock, hash_device))
}

/// Hashes each level of the tree in `hash_device` into the one above it, the leaf
/// level already filled, and returns the root hash.
fn hash_upper_levels(
    hash_device: &mut [u8],
    layout: &TreeLayout,
    params: &VerityParams,
) -> [u8; DIGEST] {
    let hbs = params.hash_block_size as usize;
    let (fanout, stride) = (layout.fanout as usize, layout.stride);
    let tree = &mut hash_device[hbs..];
    for pair in layout.levels.windows(2) {
        let (below, this) = (pair[0], pair[1]);
        // cryptsetup places the upper level before the lower one.
        let (upper, lower) = tree.split_at_mut(below.first_block as usize * hbs);
        let below_region = &lower[..below.blocks as usize * hbs];
        let this_region =
            &mut upper[this.first_block as usize * hbs..][..this.blocks as usize * hbs];
        this_region
            .par_chunks_mut(hbs)
            .zip(below_region.par_chunks(fanout * hbs))
            .for_each(|(out, blocks)| {
                salted_blocks(&params.salt, blocks, hbs, |i, digest| {
                    out[i * stride..i * stride + DIGEST].copy_from_slice(&digest);
                });
            });
    }
    let top = layout.levels[layout.levels.len() - 1];
    salted(&params.salt, &tree[top.first_block as usize * hbs..][..hbs])
}

/// The tree over leaf digests computed elsewhere (data hashed as it streamed past).
fn assemble(
    leaf_digests: Vec<[u8; DIGEST]>,
    params: &VerityParams,
) -> Result<VerityTree, VerityError> {
    tree_with(leaf_digests.len() as u64, params, |layout, leaves| {
        let stride = layout.stride;
        leaves
            .par_chunks_mut(params.hash_block_size as usize)
            .zip(leaf_digests.par_chunks(layout.fanout as usize))
            .for_each(|(out, digests)| {
                for (i, d) in digests.iter().enumerate() {
                    out[i * stride..i * stride + DIGEST].copy_from_slice(d);
                }
            });
    })
}

/// The tree over `data_blocks` blocks. `fill_leaves` writes the digest of data block
/// `i` at `(i / fanout) * hash_block_size + (i % fanout) * stride` of the bytes it is
/// given: the leaf level, or, for a one-block device, a digest-sized buffer whose
/// content is the root hash itself.
fn tree_with(
    data_blocks: u64,
    params: &VerityParams,
    fill_leaves: impl FnOnce(&TreeLayout, &mut [u8]),
) -> Result<VerityTree, VerityError> {
    let layout = TreeLayout::new(data_blocks, params.hash_block_size);
    let (superblock, mut hash_device) = empty_hash_device(&layout, params)?;
    let root_hash = if layout.levels.is_empty() {
        let mut root = [0u8; DIGEST];
        fill_leaves(&layout, &mut root);
        root
    } else {
        fill_leaves(&layout, &mut hash_device[layout.leaf_level_bytes()]);
        hash_upper_levels(&mut hash_device, &layout, params)
    };
    Ok(VerityTree {
        root_hash,
        superblock,
        layout,
        hash_device,
    })
}

/// Checks a data device against a hash device and an expected root hash, the way
/// `veritysetup verify` does: the tree is rebuilt from the data and must match the
/// stored one byte for byte, and its root must be `root_hash`.
pub fn verify(
    data: &File,
    data_offset: u64,
    hash: &File,
    hash_offset: u64,
    root_hash: &[u8],
) -> Result<VeritySuperblock, VerityError> {
    let mut sb_bytes = [0u8; superblock::SIZE];
    hash.read_exact_at(&mut sb_bytes, hash_offset)
        .map_err(io("read verity superblock"))?;
    let sb = VeritySuperblock::decode(&sb_bytes)?;
    let rebuilt = build(data, data_offset, sb.data_len(), &sb.params()?, |_| {})?;
    if rebuilt.root_hash.as_slice() != root_hash {
        return Err(VerityError::Mismatch(format!(
            "root hash is {}, expected {}",
            hex::encode(rebuilt.root_hash),
            hex::encode(root_hash)
        )));
    }
    let mut stored = vec![0u8; rebuilt.hash_device.len() - sb.hash_block_size as usize];
    hash.read_exact_at(&mut stored, hash_offset + sb.hash_block_size as u64)
        .map_err(io("read hash tree"))?;
    if stored != rebuilt.hash_device[sb.hash_block_size as usize..] {
        return Err(VerityError::Mismatch(
            "stored hash tree differs from the data".into(),
        ));
    }
    Ok(sb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_cryptsetup_for_known_sizes() {
        // One data block: no tree at all, the root is the block's hash.
        assert!(TreeLayout::new(1, 4096).levels.is_empty());
        // 128 blocks fit one hash block.
        let l = TreeLayout::new(128, 4096);
        assert_eq!(
            l.levels,
            [Level {
                first_block: 0,
                blocks: 1
            }]
        );
        // 129 blocks need two leaf blocks and a root block, root-most first.
        let l = TreeLayout::new(129, 4096);
        assert_eq!(
            l.levels,
            [
                Level {
                    first_block: 1,
                    blocks: 2
                },
                Level {
                    first_block: 0,
                    blocks: 1
                }
            ]
        );
        // 1 GiB of 4 KiB blocks: 2048 leaf blocks, 16, then 1.
        let l = TreeLayout::new(262_144, 4096);
        let sizes: Vec<u64> = l.levels.iter().map(|l| l.blocks).collect();
        assert_eq!(sizes, [2048, 16, 1]);
        assert_eq!(l.hash_device_size(), (1 + 2065) * 4096);
        // The leaves come last, after the superblock block and the 17 blocks above.
        assert_eq!(l.leaf_level_bytes(), 18 * 4096..(18 + 2048) * 4096);
        assert_eq!(TreeLayout::new(1, 4096).leaf_level_bytes(), 0..0);
    }

    #[test]
    fn salt_is_deterministic_and_purpose_bound() {
        assert_eq!(derive_salt(b"seed", "usr"), derive_salt(b"seed", "usr"));
        assert_ne!(derive_salt(b"seed", "usr"), derive_salt(b"seed", "root"));
        assert_eq!(derive_salt(b"s", "usr").len(), 32);
    }

    #[test]
    fn streaming_in_odd_chunks_gives_the_same_tree() {
        let data: Vec<u8> = (0..4096 * 300).map(|i| (i * 7 % 251) as u8).collect();
        let f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut &f, &data).unwrap();
        let p = VerityParams::new(vec![9; 32], [1; 16]);
        let whole = build(&f, 0, data.len() as u64, &p, |_| {}).unwrap();
        let mut h = LeafHasher::new(p.clone()).unwrap();
        for chunk in data.chunks(10_007) {
            h.update(chunk);
        }
        assert_eq!(h.finish().unwrap(), whole);
        let mut h = LeafHasher::new(p).unwrap();
        h.update(&data[..5000]);
        assert!(h.finish().is_err());
    }

    #[test]
    fn a_one_block_device_has_no_tree_and_the_block_hash_is_the_root() {
        let f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut &f, &[7u8; 4096]).unwrap();
        let p = VerityParams::new(vec![3; 32], [2; 16]);
        let tree = build(&f, 0, 4096, &p, |_| {}).unwrap();
        assert_eq!(tree.root_hash, salted(&p.salt, &[7u8; 4096]));
        assert_eq!(tree.hash_device.len(), 4096, "the superblock block alone");
        let mut h = LeafHasher::new(p).unwrap();
        h.update(&[7u8; 4096]);
        assert_eq!(h.finish().unwrap(), tree);
    }

    #[test]
    fn bad_sizes_are_rejected() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(4096 * 3).unwrap();
        let p = VerityParams::new(vec![1; 32], [0; 16]);
        assert!(build(&f, 0, 4096 * 2 + 1, &p, |_| {}).is_err());
        assert!(build(&f, 0, 0, &p, |_| {}).is_err());
        let mut bad = p.clone();
        bad.hash_block_size = 3000;
        assert!(build(&f, 0, 4096, &bad, |_| {}).is_err());
    }
}
