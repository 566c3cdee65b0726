//! EROFS images through romkit's tree reader (`fs::read_tree`, the path
//! `ls`, `cat`, `apps` and `build` take): the whole tree, metadata and
//! xattrs, then every regular file's content, 16 MiB in all at most.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romkit_fuzz::{MemFile, read_all_files};

fuzz_target!(|data: &[u8]| {
    let mem = MemFile::new(data);
    let Ok(tree) = romkit::fs::read_tree(&mem.path) else {
        return;
    };
    let _ = tree.link_counts();
    for (_, id) in tree.walk() {
        let meta = &tree.inode(id).meta;
        let _ = meta.selinux_label();
        let _ = meta.capabilities();
    }
    read_all_files(&tree, 16 << 20);
});
