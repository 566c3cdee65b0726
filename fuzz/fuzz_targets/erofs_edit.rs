//! In-place EROFS editing. Inputs whose first byte has the top bit clear are
//! one directory's content: parsed, stripped of some entries (chosen by the
//! first byte), written again and parsed back, which must give what was
//! kept, in order. Inputs with the top bit set are whole images: an edit
//! that removes and replaces a few paths either succeeds or fails with
//! nothing written, never panics.
#![no_main]

use std::collections::BTreeMap;
use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use romkit::fs::erofs::edit::dir::{self, Dirent};
use romkit::fs::erofs::edit::{Edit, edit};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    if sel & 0x80 != 0 {
        let mut replace = BTreeMap::new();
        replace.insert("etc/build.prop".to_string(), b"ro.x=1\n".to_vec());
        let e = Edit {
            remove: vec!["app".into(), "bin/sh".into(), "etc/a/b".into()],
            replace,
        };
        let mut out = Cursor::new(Vec::new());
        if edit(rest, &e, &mut out).is_err() {
            assert!(out.get_ref().is_empty(), "an error after writing");
        }
        return;
    }
    let bs = [512usize, 1024, 2048, 4096][usize::from(sel & 3)];
    let Ok(blocks) = dir::parse(rest, bs) else {
        return;
    };
    let salt = u64::from(sel >> 2);
    let keep = |e: &Dirent| e.name == b"." || (e.nid ^ salt) % 3 != 0;
    let new = dir::remove(&blocks, keep, bs).expect("parsed entries always fit a block");
    let kept: Vec<Dirent> = blocks.concat().into_iter().filter(|e| keep(e)).collect();
    assert_eq!(new.concat(), kept, "order and entries kept");
    if kept.is_empty() {
        return;
    }
    assert!(new.iter().all(|b| !b.is_empty()), "no empty block");
    let bytes = dir::serialize(&new, bs).expect("entries from blocks fit");
    let again = dir::parse(&bytes, bs).expect("what serialize writes parses");
    assert_eq!(again, new);
});
