//! In-place ext4 editing. Inputs whose first byte has the top bit clear are
//! one directory block: parsed, some live entries unlinked (chosen by the
//! first byte), parsed again, which must give the live entries that were
//! kept, in order, with records still covering the block. Inputs with the
//! top bit set are whole images: an edit that removes and replaces a few
//! paths (touching directories, bitmaps, descriptors and counts) either
//! succeeds or fails with nothing written, never panics.
#![no_main]

use std::collections::BTreeMap;
use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use romkit::fs::ext4::edit::dir;
use romkit::fs::ext4::edit::{Edit, edit};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    if sel & 0x80 != 0 {
        let mut replace = BTreeMap::new();
        replace.insert("etc/build.prop".to_string(), b"ro.x=1\n".repeat(usize::from(sel & 0x7f) * 40));
        let e = Edit {
            remove: vec!["app".into(), "bin/sh".into(), "etc/a/b".into()],
            replace,
        };
        let mut out = Cursor::new(Vec::new());
        match edit(rest, &e, &mut out) {
            Err(_) => assert!(out.get_ref().is_empty(), "an error after writing"),
            Ok(st) => assert_eq!(out.get_ref().len() as u64, st.size),
        }
        return;
    }
    let bs = [1024usize, 2048, 4096][usize::from(sel & 3) % 3];
    let mut block = rest.to_vec();
    block.resize(bs, 0);
    let Ok(mut entries) = dir::parse(&block) else {
        return;
    };
    let salt = u32::from(sel >> 2);
    let live = |es: &[dir::Entry]| -> Vec<(u32, Vec<u8>)> {
        es.iter()
            .filter(|e| e.inode != 0)
            .map(|e| (e.inode, e.name.clone()))
            .collect()
    };
    let before = live(&entries);
    let mut kept = Vec::new();
    for i in 0..entries.len() {
        let e = &entries[i];
        if e.inode == 0 {
            continue;
        }
        if (e.inode ^ salt) % 3 == 0 {
            dir::unlink(&mut block, &mut entries, i);
        } else {
            kept.push((e.inode, e.name.clone()));
        }
    }
    let again = dir::parse(&block).expect("unlinking keeps records valid");
    assert_eq!(live(&again), kept, "order and entries kept");
    assert!(kept.len() <= before.len());
    assert_eq!(again.iter().map(|e| e.rec_len).sum::<usize>(), bs, "records cover the block");
});
