//! Inode and block bitmaps and the counts that follow them: group
//! descriptor free counts and used-directory counts, bitmap and descriptor
//! checksums, and the superblock's free counts and checksum. With `flex_bg`
//! a group's bitmaps may live in another group; the descriptors say where.

use std::collections::BTreeMap;

use super::csum;
use super::layout::{BG_BLOCK_UNINIT, Group, SUPER, Super};
use super::{Ext4EditError, Result, invalid};
use crate::fs::edit::Overlay;

/// Changes to one group's counts.
#[derive(Clone, Copy, Debug, Default)]
struct Delta {
    free_blocks: i64,
    free_inodes: i64,
    dirs: i64,
}

/// The bitmaps of an image being edited and the count changes they imply.
pub struct Bitmaps<'s> {
    sb: &'s Super,
    groups: &'s [Group],
    delta: BTreeMap<u64, Delta>,
}

fn bit(o: &Overlay<'_>, bitmap: u64, bs: u64, i: u64) -> bool {
    o.byte(bitmap * bs + i / 8) >> (i % 8) & 1 != 0
}

fn set_bit(o: &mut Overlay<'_>, bitmap: u64, bs: u64, i: u64, v: bool) {
    let at = bitmap * bs + i / 8;
    let mut byte = o.byte(at);
    if v {
        byte |= 1 << (i % 8);
    } else {
        byte &= !(1 << (i % 8));
    }
    o.write(at, &[byte]);
}

impl<'s> Bitmaps<'s> {
    /// Bitmaps described by `groups`.
    pub fn new(sb: &'s Super, groups: &'s [Group]) -> Self {
        Bitmaps {
            sb,
            groups,
            delta: BTreeMap::new(),
        }
    }

    /// Marks block `b` free; it must be in use.
    pub fn free_block(&mut self, o: &mut Overlay<'_>, b: u64) -> Result<()> {
        let (g, i) = self.sb.block_group(b);
        let grp = &self.groups[g as usize];
        if grp.flags & BG_BLOCK_UNINIT != 0 || !bit(o, grp.block_bitmap, self.sb.bs, i) {
            return Err(invalid(
                "block bitmap",
                b,
                grp.block_bitmap * self.sb.bs + i / 8,
                "a block the edit releases is already marked free",
            ));
        }
        set_bit(o, grp.block_bitmap, self.sb.bs, i, false);
        self.delta.entry(g).or_default().free_blocks += 1;
        Ok(())
    }

    /// Marks inode `n` free; it must be in use.
    pub fn free_inode(&mut self, o: &mut Overlay<'_>, n: u32, dir: bool) -> Result<()> {
        let (g, i) = self.sb.inode_group(n);
        let grp = &self.groups[g as usize];
        if !bit(o, grp.inode_bitmap, self.sb.bs, i) {
            return Err(Ext4EditError::Invalid {
                field: "inode bitmap",
                value: n.into(),
                offset: grp.inode_bitmap * self.sb.bs + i / 8,
                why: format!("inode {n}, still linked, is marked free"),
            });
        }
        set_bit(o, grp.inode_bitmap, self.sb.bs, i, false);
        let d = self.delta.entry(g).or_default();
        d.free_inodes += 1;
        d.dirs -= i64::from(dir);
        Ok(())
    }

    /// Whether block `b` is free for allocation (in a group whose block
    /// bitmap is initialised).
    fn is_free(&self, o: &Overlay<'_>, b: u64) -> bool {
        let (g, i) = self.sb.block_group(b);
        let grp = &self.groups[g as usize];
        grp.flags & BG_BLOCK_UNINIT == 0 && !bit(o, grp.block_bitmap, self.sb.bs, i)
    }

    /// Allocates `n` blocks: the first run of `n` free blocks from `goal`
    /// on (wrapping), else the first free blocks wherever they are. Returns
    /// runs (start, length).
    pub fn alloc(&mut self, o: &mut Overlay<'_>, n: u64, goal: u64) -> Option<Vec<(u64, u64)>> {
        let sb = self.sb;
        let first = sb.first_data_block;
        let goal = goal.clamp(first, sb.blocks - 1);
        let order = || (goal..sb.blocks).chain(first..goal);
        let mut pick: Vec<u64> = Vec::new();
        let mut run = 0u64;
        let mut prev = None;
        for b in order() {
            if n == 0 {
                break;
            }
            run = if self.is_free(o, b) && prev.is_none_or(|p| p + 1 == b) {
                run + 1
            } else {
                u64::from(self.is_free(o, b))
            };
            prev = Some(b);
            if run == n {
                pick = (b + 1 - n..=b).collect();
                break;
            }
        }
        if pick.is_empty() {
            pick = order()
                .filter(|&b| self.is_free(o, b))
                .take(n as usize)
                .collect();
        }
        if (pick.len() as u64) < n {
            return None;
        }
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for b in pick {
            let (g, i) = sb.block_group(b);
            set_bit(o, self.groups[g as usize].block_bitmap, sb.bs, i, true);
            self.delta.entry(g).or_default().free_blocks -= 1;
            match runs.last_mut() {
                Some((s, l)) if *s + *l == b => *l += 1,
                _ => runs.push((b, 1)),
            }
        }
        Some(runs)
    }

    /// Writes the changed groups' counts and checksums, then the
    /// superblock's free counts (the sums over all groups) and checksum.
    pub fn finish(self, o: &mut Overlay<'_>) -> Result<()> {
        let sb = self.sb;
        let wide = sb.desc_size >= 64;
        for (&g, d) in &self.delta {
            let at = sb.desc_at(g);
            for (lo, hi, delta, name, max) in [
                (
                    0x0C,
                    0x2C,
                    d.free_blocks,
                    "bg_free_blocks_count",
                    sb.blocks_per_group,
                ),
                (
                    0x0E,
                    0x2E,
                    d.free_inodes,
                    "bg_free_inodes_count",
                    sb.inodes_per_group.into(),
                ),
                (
                    0x10,
                    0x30,
                    d.dirs,
                    "bg_used_dirs_count",
                    sb.inodes_per_group.into(),
                ),
            ] {
                let old = read16x2(o, at, lo, hi, wide);
                let new = old as i64 + delta;
                if new < 0 || new as u64 > max {
                    return Err(invalid(
                        name,
                        old,
                        at + lo,
                        "count does not match the bitmaps",
                    ));
                }
                o.write(at + lo, &(new as u16).to_le_bytes());
                if wide {
                    o.write(at + hi, &((new >> 16) as u16).to_le_bytes());
                }
            }
            let grp = &self.groups[g as usize];
            csum::bitmaps(o, sb, g, grp.block_bitmap, grp.inode_bitmap);
            csum::descriptor(o, sb, g);
        }
        let (mut blocks, mut inodes) = (0u64, 0u64);
        for g in 0..sb.groups {
            let at = sb.desc_at(g);
            blocks += read16x2(o, at, 0x0C, 0x2C, wide);
            inodes += read16x2(o, at, 0x0E, 0x2E, wide);
        }
        o.write(SUPER + 0x0C, &(blocks as u32).to_le_bytes());
        if sb.incompat & super::layout::INCOMPAT_64BIT != 0 {
            o.write(SUPER + 0x158, &((blocks >> 32) as u32).to_le_bytes());
        }
        o.write(SUPER + 0x10, &(inodes as u32).to_le_bytes());
        csum::superblock(o, sb);
        Ok(())
    }
}

/// A descriptor count split in a low and (64-byte descriptors) high half.
fn read16x2(o: &Overlay<'_>, at: u64, lo: u64, hi: u64, wide: bool) -> u64 {
    let r = |off: u64| u64::from(o.byte(at + off)) | u64::from(o.byte(at + off + 1)) << 8;
    r(lo) | if wide { r(hi) << 16 } else { 0 }
}
