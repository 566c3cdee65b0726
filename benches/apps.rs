//! `romkit apps` against the floor it cannot beat: reading every app's APK
//! bytes out of the images. Generates the fixture's partition images at the
//! given size (default 1536 MiB of images), opens them as trees, then times,
//! median of 3, with the same thread count:
//! - `read`: every base APK read from its image (in parallel);
//! - `read_sha256`: the same plus SHA-256 of every APK (which the listing reports);
//! - `read_parse`: read plus identity, without the hash;
//! - `apps`: the full listing: read, SHA-256, manifest, resources, signer.
//!
//! Prints one JSON line with both times and their ratio.
//! Run: `cargo bench --bench apps -- [SIZE_MIB] [JOBS]`

use std::time::Instant;

use rayon::prelude::*;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let size: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(1536) << 20;
    let jobs: usize = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let dir = tempfile::tempdir().expect("temp dir");
    romkit::fixture::write_images(dir.path(), size).expect("fixture images");
    let mut locations = Vec::new();
    let mut trees = Vec::new();
    for name in romkit::apps::APP_PARTITIONS {
        let img = dir.path().join(format!("{name}.img"));
        if !img.exists() {
            continue;
        }
        let tree = romkit::fs::read_tree(&img).expect("tree");
        let files = romkit::apps::tree_files(name, &tree);
        locations.extend(romkit::apps::locate(name, &files, false));
        trees.push(tree);
    }
    let apk_bytes: u64 = locations.iter().map(|l| l.apk.data.size()).sum();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .expect("pool");
    let median = |f: &dyn Fn()| {
        let mut t: Vec<f64> = (0..3)
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed().as_secs_f64()
            })
            .collect();
        t.sort_by(f64::total_cmp);
        t[1]
    };
    let read = median(&|| {
        pool.install(|| {
            locations.par_iter().for_each(|l| {
                let mut b = Vec::new();
                l.apk.data.read(&mut b).expect("read");
                std::hint::black_box(&b);
            })
        })
    });
    let apps = median(&|| {
        let list = romkit::apps::identify(locations.clone(), jobs);
        assert!(list.iter().all(|a| a.error.is_none()));
        std::hint::black_box(list);
    });
    let read_hash = median(&|| {
        pool.install(|| {
            locations.par_iter().for_each(|l| {
                let mut b = Vec::new();
                l.apk.data.read(&mut b).expect("read");
                std::hint::black_box(<sha2::Sha256 as sha2::Digest>::digest(&b));
            })
        })
    });
    let read_ident = median(&|| {
        pool.install(|| {
            locations.par_iter().for_each(|l| {
                let mut b = Vec::new();
                l.apk.data.read(&mut b).expect("read");
                std::hint::black_box(romkit::apk::identify(b).is_ok());
            })
        })
    });
    println!(
        "{{\"apps\":{},\"apk_bytes\":{apk_bytes},\"jobs\":{jobs},\"read_seconds\":{read:.4},\"read_sha256_seconds\":{read_hash:.4},\"read_parse_seconds\":{read_ident:.4},\"apps_seconds\":{apps:.4},\"ratio_to_read\":{:.3},\"ratio_to_read_sha256\":{:.3}}}",
        locations.len(),
        apps / read,
        apps / read_hash
    );
}
