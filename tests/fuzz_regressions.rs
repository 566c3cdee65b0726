//! Inputs the fuzzers found (fuzz/regressions/TARGET/*), fed to the same
//! entry points as the fuzz target of that name. Each once panicked, hung or
//! allocated without bound; now each must come back as a value (usually an
//! error) in bounded time.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use romkit::format::source::FileSlice;

fn regressions(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_file() {
                let b = std::fs::read(&p).expect("read regression input");
                out.push((p, b));
            }
        }
    }
    out.sort();
    out
}

/// The input as a file, for the readers that take one.
fn file_of(bytes: &[u8]) -> (tempfile::NamedTempFile, FileSlice) {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(bytes).expect("write temp file");
    f.flush().expect("flush");
    let slice = FileSlice::new(
        Arc::new(f.reopen().expect("reopen")),
        f.path(),
        0,
        bytes.len() as u64,
    );
    (f, slice)
}

/// Runs `f` on every regression input of `target`, each within `limit`.
fn each(target: &str, limit: Duration, f: impl Fn(&[u8])) {
    for (path, bytes) in regressions(target) {
        let t = Instant::now();
        f(&bytes);
        assert!(
            t.elapsed() < limit,
            "{}: took {:?}",
            path.display(),
            t.elapsed()
        );
    }
}

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn payload_manifest() {
    each("payload_manifest", LIMIT, |data| {
        let (_f, slice) = file_of(data);
        if let Ok(p) = romkit::format::payload::Payload::open(slice) {
            let _ = p.metadata_hash();
            let _ = p.payload_signature_blob();
            let _ = p.whole_file_pass(p.has_payload_signature());
            for part in &p.partitions {
                let _ = p.partition_head(part, 4096);
            }
            // `verify`: decode and hash everything, record failures. Up to
            // 4 GiB of declared partitions (hashing zeros is fast).
            let total: u64 = p.partitions.iter().map(|x| x.size).sum();
            if total <= 4 << 30 {
                use romkit::format::payload::extract::{self, Job, NoProgress};
                let outcome = extract::run(
                    &Job {
                        payload: &p,
                        partitions: (0..p.partitions.len()).collect(),
                        outputs: None,
                        verify: true,
                        fail_fast: false,
                        sources: Vec::new(),
                        pages: None,
                        jobs: 2,
                    },
                    &NoProgress,
                );
                assert_eq!(outcome.partitions.len(), p.partitions.len());
            }
        }
    });
}

#[test]
fn sparse() {
    use romkit::format::sparse::{self, SparseFile};
    each("sparse", LIMIT, |data| {
        let _ = sparse::check_stream(&mut &data[..]);
        let _ = sparse::expand_head(&mut &data[..], 8192);
        let (_f, slice) = file_of(data);
        if let Ok(sf) = SparseFile::open(slice) {
            let _ = sf.check_crcs();
        }
    });
}

#[test]
fn lp_metadata() {
    use romkit::format::lp::Metadata;
    each("lp_metadata", LIMIT, |data| {
        let image = data.to_vec();
        if let Ok((m, _)) = Metadata::read(&image, image.len() as u64, 0) {
            let _ = m.check_all_copies(&image, image.len() as u64);
            let _ = m.metadata_area();
        }
    });
}

#[test]
fn transfer_list() {
    each("transfer_list", LIMIT, |data| {
        let text = String::from_utf8_lossy(data);
        if let Ok(l) = romkit::format::sdat::TransferList::parse(&text) {
            let _ = l.image_size();
        }
    });
}

fn read_tree_files(tree: &romkit::fs::tree::Tree) {
    struct Capped(u64);
    impl Write for Capped {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if b.len() as u64 > self.0 {
                return Err(std::io::Error::other("cap"));
            }
            self.0 -= b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut sink = Capped(16 << 20);
    for (_, id) in tree.walk() {
        if let romkit::fs::tree::Kind::File(d) = &tree.inode(id).kind {
            let _ = d.stream(&mut sink);
        }
    }
}

#[test]
fn erofs_tree() {
    each("erofs_tree", LIMIT, |data| {
        let (f, _) = file_of(data);
        if let Ok(tree) = romkit::fs::read_tree(f.path()) {
            read_tree_files(&tree);
        }
    });
}

#[test]
fn erofs_edit() {
    use romkit::fs::erofs::edit::{Edit, edit};
    each("erofs_edit", LIMIT, |data| {
        // As the fuzz target: a first byte with the top bit set is followed
        // by a whole image, edited; an error must leave nothing written.
        let Some((&sel, rest)) = data.split_first() else {
            return;
        };
        if sel & 0x80 == 0 {
            return;
        }
        let mut replace = std::collections::BTreeMap::new();
        replace.insert("etc/build.prop".to_string(), b"ro.x=1\n".to_vec());
        let e = Edit {
            remove: vec!["app".into(), "bin/sh".into(), "etc/a/b".into()],
            replace,
        };
        let mut out = std::io::Cursor::new(Vec::new());
        if edit(rest, &e, &mut out).is_err() {
            assert!(out.get_ref().is_empty(), "an error after writing");
        }
    });
}

#[test]
fn ext4_xattr() {
    use romkit::fs::ext4::{self, Ext4Image};
    each("ext4_xattr", LIMIT, |data| {
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
        let (f, _) = file_of(data);
        if let Ok(img) = Ext4Image::open(f.path())
            && let Ok(tree) = img.tree()
        {
            read_tree_files(&tree);
        }
    });
}

#[test]
fn apk_identity() {
    each("apk_identity", LIMIT, |data| {
        let _ = romkit::apk::identify(data.to_vec());
    });
}

#[test]
fn profile_yaml() {
    each("profile_yaml", LIMIT, |data| {
        let _ = romkit::debloat::profile::parse_str(&String::from_utf8_lossy(data), "fuzz.yaml");
    });
}

#[test]
fn manifest_json() {
    use romkit::manifest::{Manifest, diff::diff};
    each("manifest_json", LIMIT, |data| {
        if let Ok(m) = Manifest::from_json(data) {
            assert!(diff(&m, &m).identical);
            let again = Manifest::from_json(&m.to_json()).expect("reads back");
            assert!(diff(&m, &again).identical);
        }
    });
}

#[test]
fn version_code() {
    use romkit::rom::{BuildInfo, VersionCode, ota};
    each("version_code", LIMIT, |data| {
        let text = String::from_utf8_lossy(data);
        if let Some(v) = VersionCode::parse(&text) {
            assert_eq!(VersionCode::parse(&v.code).as_ref(), Some(&v));
        }
        let _ = BuildInfo::from_metadata_opt(&ota::parse_key_values(&text), None);
    });
}

#[test]
fn package_detect() {
    each("package_detect", LIMIT, |data| {
        let _ = romkit::rom::sniff_bytes(&data[..data.len().min(4100)]);
        let (f, _) = file_of(data);
        if let Ok(rom) = romkit::rom::Rom::open(f.path()) {
            let _ = rom.partitions();
            let _ = rom.build_info();
        }
    });
}
