//! ext4 extended attributes, parsed in-house: the in-inode area and the EA
//! block parsers on slices of the input, then the whole input as an ext4
//! image through `Ext4Image` (every inode's metadata and xattrs, every
//! file's content, 16 MiB in all at most).
#![no_main]

use libfuzzer_sys::fuzz_target;
use romkit::fs::ext4::{self, Ext4Image};
use romkit_fuzz::{MemFile, read_all_files};

fuzz_target!(|data: &[u8]| {
    for size in [128usize, 256, 512] {
        if let Some(raw) = data.get(..size) {
            let _ = ext4::inode_xattrs(raw, 1);
        }
    }
    for block in [1024usize, 4096] {
        if let Some(blk) = data.get(..block) {
            let _ = ext4::block_xattrs(blk, 1);
        }
    }
    if data.len() < 2048 {
        return;
    }
    let mem = MemFile::new(data);
    let Ok(img) = Ext4Image::open(&mem.path) else {
        return;
    };
    let Ok(tree) = img.tree() else { return };
    for (_, id) in tree.walk() {
        let _ = tree.inode(id).meta.selinux_label();
    }
    read_all_files(&tree, 16 << 20);
});
