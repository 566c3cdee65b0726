//! The writing half of an edit: directories, link counts, released inodes
//! and blocks, replaced files, then the statistics and the output.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Seek, Write};

use super::bitmap::Bitmaps;
use super::inode::{self, FL_EXTENTS, FL_HUGE_FILE, FL_VERITY, Ino};
use super::layout::{BG_INODE_UNINIT, INCOMPAT_EXTENTS, RO_SHARED_BLOCKS};
use super::{
    Changed, EditStats, Ext4EditError, Fs, Overlay, Plan, Result, csum, dir, invalid, le32,
};
use crate::fs::edit::{push_range, write_out};

const XATTR_MAGIC: u32 = 0xEA02_0000;

/// What the release did.
pub(super) struct Released {
    /// Blocks released and left zero.
    zeroed: BTreeSet<u64>,
    removed_inodes: u64,
    rewritten_dirs: u64,
}

/// A file to replace: its inode, path and new content.
pub(super) type Replacement<'e> = (Ino, String, &'e [u8]);

/// Applies the plan to `o`: every change but the statistics.
pub(super) fn release(
    fs: &Fs<'_>,
    plan: &Plan,
    replaced: &[Replacement<'_>],
    o: &mut Overlay<'_>,
) -> Result<Released> {
    let sb = &fs.sb;
    let mut dead: BTreeMap<u32, Ino> = BTreeMap::new();
    for &d in &plan.dead_dirs {
        dead.insert(d, fs.inode(d)?);
    }
    let mut relink = Vec::new();
    for (&n, &lost) in &plan.lost_names {
        let ino = fs.inode(n)?;
        if u32::from(ino.links()) <= lost {
            dead.insert(n, ino);
        } else {
            let links = ino.links() - lost as u16;
            relink.push((ino, links));
        }
    }
    let mut freed = BTreeSet::new();
    let mut xattr: BTreeMap<u64, u32> = BTreeMap::new();
    for ino in dead.values() {
        freed.extend(inode::blocks(fs.img, sb, ino)?.all());
        let acl = ino.file_acl();
        if acl != 0 {
            if acl >= sb.blocks || acl <= sb.first_data_block {
                return Err(invalid(
                    "i_file_acl",
                    acl,
                    ino.at + 0x68,
                    "outside the filesystem",
                ));
            }
            *xattr.entry(acl).or_default() += 1;
        }
    }
    let mut old_maps = Vec::new();
    for (ino, path, _) in replaced {
        if ino.flags() & (FL_VERITY | FL_HUGE_FILE) != 0 {
            return Err(Ext4EditError::Unsupported {
                feature: "replacing an fs-verity or huge_file-flagged file".into(),
                path: path.clone(),
            });
        }
        let m = inode::blocks(fs.img, sb, ino)?;
        freed.extend(m.all());
        old_maps.push(m);
    }
    if sb.ro_compat & RO_SHARED_BLOCKS != 0 {
        let skip: BTreeSet<u32> = dead
            .keys()
            .copied()
            .chain(replaced.iter().map(|r| r.0.n))
            .collect();
        let live = live_blocks(fs, &skip)?;
        freed.retain(|b| !live.contains(b));
    }
    let rewritten_dirs = unlink_all(fs, plan, o)?;
    for (&p, &n) in &plan.lost_subdirs {
        if plan.dead_dirs.contains(&p) {
            continue;
        }
        let ino = fs.inode(p)?;
        // With dir_nlink a count of 1 means "too many to count": it stays.
        if ino.links() > 1 {
            let links = ino
                .links()
                .checked_sub(n)
                .filter(|&l| l >= 2)
                .ok_or_else(|| {
                    invalid(
                        "i_links_count",
                        ino.links().into(),
                        ino.at + 0x1A,
                        "fewer links than subdirectories",
                    )
                })?;
            relink.push((ino, links));
        }
    }
    for (ino, links) in &relink {
        o.write(ino.at + 0x1A, &links.to_le_bytes());
        csum::inode(o, sb, ino.n, ino.at);
    }
    let mut bm = Bitmaps::new(sb, &fs.groups);
    for &b in &freed {
        bm.free_block(o, b)?;
        o.zero_block(b);
    }
    for (&b, &dec) in &xattr {
        release_xattr(fs, o, &mut bm, &mut freed, b, dec)?;
    }
    for ino in dead.values() {
        bm.free_inode(o, ino.n, ino.is_dir())?;
        o.zero(ino.at, sb.inode_size);
    }
    let mut taken = BTreeSet::new();
    for ((ino, path, bytes), old) in replaced.iter().zip(&old_maps) {
        taken.extend(replace(fs, o, &mut bm, ino, path, bytes, old)?);
    }
    bm.finish(o)?;
    Ok(Released {
        zeroed: freed.difference(&taken).copied().collect(),
        removed_inodes: dead.len() as u64,
        rewritten_dirs,
    })
}

/// Drops `dec` references to the extended-attribute block `b`, releasing it
/// when none is left.
fn release_xattr(
    fs: &Fs<'_>,
    o: &mut Overlay<'_>,
    bm: &mut Bitmaps<'_>,
    freed: &mut BTreeSet<u64>,
    b: u64,
    dec: u32,
) -> Result<()> {
    let at = (b * fs.sb.bs) as usize;
    let magic = le32(fs.img, at);
    if magic != XATTR_MAGIC {
        return Err(invalid(
            "h_magic",
            magic.into(),
            at as u64,
            "xattr block without 0xEA020000",
        ));
    }
    let refs = le32(fs.img, at + 4);
    if refs < dec {
        return Err(Ext4EditError::Invalid {
            field: "h_refcount",
            value: refs.into(),
            offset: at as u64 + 4,
            why: format!("{dec} removed inodes refer to the block"),
        });
    }
    if refs == dec {
        if freed.insert(b) {
            bm.free_block(o, b)?;
        }
        o.zero_block(b);
    } else {
        o.write(at as u64 + 4, &(refs - dec).to_le_bytes());
        csum::xattr_block(o, &fs.sb, b);
    }
    Ok(())
}

/// Writes a replaced file's content into free blocks from its old first
/// block on and points its inode there. Returns the blocks it took.
fn replace(
    fs: &Fs<'_>,
    o: &mut Overlay<'_>,
    bm: &mut Bitmaps<'_>,
    ino: &Ino,
    path: &str,
    bytes: &[u8],
    old: &inode::Blocks,
) -> Result<Vec<u64>> {
    let sb = &fs.sb;
    let need = (bytes.len() as u64).div_ceil(sb.bs);
    let goal = old.data.first().map_or(0, |d| d.1);
    let runs = bm
        .alloc(o, need, goal)
        .ok_or_else(|| Ext4EditError::NoSpace {
            path: path.into(),
            blocks: need,
        })?;
    let mut done = 0usize;
    for &(p, n) in &runs {
        let end = (done + (n * sb.bs) as usize).min(bytes.len());
        o.put_blocks(p, &bytes[done..end]);
        done = end;
    }
    let mut raw = o.read(ino.at, sb.inode_size as usize);
    let extents = ino.flags() & FL_EXTENTS != 0 || sb.incompat & INCOMPAT_EXTENTS != 0;
    let fits = if extents {
        let flags = ino.flags() | FL_EXTENTS;
        raw[0x20..0x24].copy_from_slice(&flags.to_le_bytes());
        inode::set_extents(&mut raw[0x28..0x64], &runs)
    } else {
        inode::set_direct(&mut raw[0x28..0x64], &runs)
    };
    if !fits {
        return Err(Ext4EditError::Unsupported {
            feature: format!(
                "new content in {} pieces of free space (the inode holds 4 extents or 12 blocks)",
                runs.len()
            ),
            path: path.into(),
        });
    }
    let size = bytes.len() as u64;
    raw[4..8].copy_from_slice(&(size as u32).to_le_bytes());
    raw[0x6C..0x70].copy_from_slice(&((size >> 32) as u32).to_le_bytes());
    let sectors = sb.bs / 512;
    let i_blocks =
        u64::from(le32(&raw, 0x1C)) | u64::from(u16::from_le_bytes([raw[0x74], raw[0x75]])) << 32;
    let i_blocks = i_blocks.saturating_sub(old.all().count() as u64 * sectors) + need * sectors;
    raw[0x1C..0x20].copy_from_slice(&(i_blocks as u32).to_le_bytes());
    raw[0x74..0x76].copy_from_slice(&((i_blocks >> 32) as u16).to_le_bytes());
    o.write(ino.at, &raw);
    csum::inode(o, sb, ino.n, ino.at);
    Ok(runs.iter().flat_map(|&(p, n)| p..p + n).collect())
}

/// Unlinks the plan's names from the surviving directories; returns how many
/// directories changed.
fn unlink_all(fs: &Fs<'_>, plan: &Plan, o: &mut Overlay<'_>) -> Result<u64> {
    let bs = fs.sb.bs;
    let mut rewritten = 0;
    for (&p, names) in &plan.unlink {
        if plan.dead_dirs.contains(&p) {
            continue;
        }
        let d = fs.inode(p)?;
        let path = plan.paths.get(&p).map_or("", String::as_str);
        let seed = csum::inode_seed(&fs.sb, d.n, d.generation());
        for (_, pb) in fs.dir_blocks(&d)? {
            let mut es = fs.entries(&d, pb, path)?;
            let mut block = o.read(pb * bs, bs as usize);
            let mut changed = false;
            for i in 0..es.len() {
                let e = &es[i];
                if e.inode != 0 && e.name != b"." && e.name != b".." && names.contains(&e.name) {
                    dir::unlink(&mut block, &mut es, i);
                    changed = true;
                }
            }
            if changed {
                o.write(pb * bs, &block);
                csum::dir_block(o, &fs.sb, pb, seed);
            }
        }
        rewritten += 1;
    }
    Ok(rewritten)
}

/// Blocks mapped by any in-use inode outside `skip` (for `shared_blocks`).
fn live_blocks(fs: &Fs<'_>, skip: &BTreeSet<u32>) -> Result<BTreeSet<u64>> {
    let sb = &fs.sb;
    let first_ino = if le32(fs.img, 1024 + 0x4C) == 0 {
        11
    } else {
        le32(fs.img, 1024 + 0x54)
    };
    let mut live = BTreeSet::new();
    for (g, grp) in fs.groups.iter().enumerate() {
        if grp.flags & BG_INODE_UNINIT != 0 {
            continue;
        }
        let used = if sb.desc_csum() {
            sb.inodes_per_group.saturating_sub(grp.itable_unused)
        } else {
            sb.inodes_per_group
        };
        for i in 0..used {
            let n = g as u32 * sb.inodes_per_group + i + 1;
            if n > sb.inodes || skip.contains(&n) {
                continue;
            }
            let Ok(ino) = fs.inode(n) else { continue };
            if ino.links() == 0 && n >= first_ino {
                continue;
            }
            match inode::blocks(fs.img, sb, &ino) {
                Ok(m) => live.extend(m.all()),
                Err(e) if n >= first_ino => return Err(e),
                Err(_) => {}
            }
        }
    }
    Ok(live)
}

/// Counts what changed and writes the output.
pub(super) fn finish<W: Write + Seek>(
    fs: &Fs<'_>,
    o: Overlay<'_>,
    r: &Released,
    replaced_files: u64,
    out: &mut W,
) -> Result<EditStats> {
    let src = fs.img;
    let bs = fs.sb.bs;
    let mut stats = EditStats {
        block_size: bs,
        removed_inodes: r.removed_inodes,
        rewritten_dirs: r.rewritten_dirs,
        replaced_files,
        size: src.len() as u64,
        zeroed_blocks: r.zeroed.len() as u64,
        ..EditStats::default()
    };
    for (b, data) in o.changed() {
        let s = (b * bs) as usize;
        let e = (s + bs as usize).min(src.len());
        if s >= e {
            continue;
        }
        let (differs, now_zero) = match data {
            Changed::Bytes(d) => (d[..e - s] != src[s..e], d[..e - s].iter().all(|&x| x == 0)),
            Changed::Zero => (src[s..e].iter().any(|&x| x != 0), true),
        };
        if differs {
            stats.changed_blocks += 1;
            push_range(&mut stats.changed, s as u64..e as u64);
            if now_zero {
                push_range(&mut stats.zeroed, s as u64..e as u64);
            }
        }
    }
    write_out(&o, stats.size, out).map_err(|source| Ext4EditError::Io {
        context: "writing the edited image",
        source,
    })?;
    Ok(stats)
}
