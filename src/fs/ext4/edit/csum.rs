//! The checksums ext4 keeps over metadata: CRC32C seeded from the UUID
//! (`metadata_csum`) or CRC16 (`gdt_csum`) over group descriptors, and
//! CRC32C over the superblock, inodes, bitmaps, directory blocks and
//! extended-attribute blocks. Each is recomputed from the output's current
//! bytes after the edit changed them.

use super::layout::Super;
use crate::fs::edit::{Overlay, crc32c_raw};

/// CRC16 (poly 0x8005, reflected) as `gdt_csum` descriptors use it.
pub fn crc16(mut crc: u16, bytes: &[u8]) -> u16 {
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ if crc & 1 != 0 { 0xA001 } else { 0 };
        }
    }
    crc
}

/// The per-inode seed of directory, extent and inode checksums.
pub fn inode_seed(sb: &Super, ino: u32, generation: u32) -> u32 {
    let c = crc32c_raw(sb.csum_seed, &ino.to_le_bytes());
    crc32c_raw(c, &generation.to_le_bytes())
}

/// Recomputes the superblock checksum (`metadata_csum`).
pub fn superblock(o: &mut Overlay<'_>, sb: &Super) {
    if sb.metadata_csum() {
        let raw = o.read(super::layout::SUPER, 0x3FC);
        o.write(
            super::layout::SUPER + 0x3FC,
            &crc32c_raw(!0, &raw).to_le_bytes(),
        );
    }
}

/// Recomputes group `g`'s descriptor checksum.
pub fn descriptor(o: &mut Overlay<'_>, sb: &Super, g: u64) {
    let at = sb.desc_at(g);
    let mut d = o.read(at, sb.desc_size as usize);
    let group = (g as u32).to_le_bytes();
    let v = if sb.metadata_csum() {
        d[0x1E..0x20].fill(0);
        let c = crc32c_raw(sb.csum_seed, &group);
        (crc32c_raw(c, &d) & 0xFFFF) as u16
    } else if sb.desc_csum() {
        let mut c = crc16(!0, &sb.uuid);
        c = crc16(c, &group);
        c = crc16(c, &d[..0x1E]);
        crc16(c, &d[0x20..])
    } else {
        return;
    };
    o.write(at + 0x1E, &v.to_le_bytes());
}

/// Recomputes the checksums of group `g`'s bitmaps into its descriptor.
pub fn bitmaps(o: &mut Overlay<'_>, sb: &Super, g: u64, block_bitmap: u64, inode_bitmap: u64) {
    if !sb.metadata_csum() {
        return;
    }
    let at = sb.desc_at(g);
    for (bitmap, bits, lo, hi) in [
        (block_bitmap, sb.blocks_per_group, 0x18, 0x38),
        (inode_bitmap, u64::from(sb.inodes_per_group), 0x1A, 0x3A),
    ] {
        let bytes = o.read(bitmap * sb.bs, (bits / 8) as usize);
        let c = crc32c_raw(sb.csum_seed, &bytes);
        o.write(at + lo, &(c as u16).to_le_bytes());
        if sb.desc_size >= 64 {
            o.write(at + hi, &((c >> 16) as u16).to_le_bytes());
        }
    }
}

/// Recomputes the checksum of inode `n`'s record at byte `at`.
pub fn inode(o: &mut Overlay<'_>, sb: &Super, n: u32, at: u64) {
    if !sb.metadata_csum() {
        return;
    }
    let mut raw = o.read(at, sb.inode_size as usize);
    let has_hi = sb.inode_size > 128 && u16::from_le_bytes([raw[0x80], raw[0x81]]) >= 4;
    raw[0x7C..0x7E].fill(0);
    if has_hi {
        raw[0x82..0x84].fill(0);
    }
    let generation = u32::from_le_bytes(raw[0x64..0x68].try_into().expect("4 bytes"));
    let c = crc32c_raw(inode_seed(sb, n, generation), &raw);
    o.write(at + 0x7C, &(c as u16).to_le_bytes());
    if has_hi {
        o.write(at + 0x82, &((c >> 16) as u16).to_le_bytes());
    }
}

/// Whether a directory block ends in the 12-byte checksum tail.
pub fn has_dir_tail(block: &[u8]) -> bool {
    let t = &block[block.len() - 12..];
    t[..4] == [0; 4] && t[4..6] == 12u16.to_le_bytes() && t[6] == 0 && t[7] == 0xDE
}

/// Recomputes a directory leaf block's tail checksum, when it has a tail.
pub fn dir_block(o: &mut Overlay<'_>, sb: &Super, block: u64, seed: u32) {
    if !sb.metadata_csum() {
        return;
    }
    let bs = sb.bs as usize;
    let data = o.read(block * sb.bs, bs);
    if has_dir_tail(&data) {
        let c = crc32c_raw(seed, &data[..bs - 12]);
        o.write(block * sb.bs + sb.bs - 4, &c.to_le_bytes());
    }
}

/// Recomputes an extended-attribute block's checksum.
pub fn xattr_block(o: &mut Overlay<'_>, sb: &Super, block: u64) {
    if !sb.metadata_csum() {
        return;
    }
    let mut data = o.read(block * sb.bs, sb.bs as usize);
    data[0x10..0x14].fill(0);
    let c = crc32c_raw(sb.csum_seed, &block.to_le_bytes());
    let c = crc32c_raw(c, &data);
    o.write(block * sb.bs + 0x10, &c.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::crc16;

    #[test]
    fn crc16_matches_the_arc_check_value() {
        // CRC-16/ARC of "123456789" (init 0) is 0xBB3D.
        assert_eq!(crc16(0, b"123456789"), 0xBB3D);
    }
}
