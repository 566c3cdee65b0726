//! Corruption is always caught: random byte flips in the committed OTA
//! sample and in a fastboot package made from it. A flip inside data that a
//! hash covers (every zip entry's data is covered by its CRC-32, and inside
//! it payload.bin's blobs, manifest, sparse chunks and LP metadata by their
//! own hashes) must make `verify` fail; a flip in a field that says where or
//! what the data is (names, sizes, CRCs, offsets, methods) too. Flips in
//! fields nothing depends on (times, versions, attributes, alignment
//! padding) may pass. Nothing may panic, and `build` on a damaged package
//! writes nothing.

mod common;

use std::ops::Range;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use common::*;

/// Fixed seed of the flips; printed with every failure.
const SEED: u64 = 0x5EED_0007_C0DE_2026;
/// Flips per package inside hashed data, and outside it.
const DATA_FLIPS: usize = 80;
const OTHER_FLIPS: usize = 80;
/// Damaged packages `build` is run on, per package.
const BUILDS: usize = 10;

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Where a byte of a zip is, and whether a flip there must be caught.
#[derive(Debug)]
struct Region {
    range: Range<u64>,
    what: String,
    /// Must a flip here make verify fail?
    checked: bool,
}

/// The regions of a zip, from its central directory: entry data (CRC-32),
/// the fields of local headers, central directory records and the end
/// record that locate or describe data (checked), and the rest (not).
fn regions(bytes: &[u8]) -> Vec<Region> {
    let mut a = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut v = Vec::new();
    let le16 = |o: u64| {
        u64::from(u16::from_le_bytes([
            bytes[o as usize],
            bytes[o as usize + 1],
        ]))
    };
    let mut add = |start: u64, len: u64, what: String, checked: bool| {
        if len > 0 {
            v.push(Region {
                range: start..start + len,
                what,
                checked,
            });
        }
    };
    let mut cd_end = 0;
    for i in 0..a.len() {
        let e = a.by_index_raw(i).unwrap();
        let name = String::from_utf8_lossy(e.name_raw()).into_owned();
        let h = e.header_start();
        let (n, m) = (le16(h + 26), le16(h + 28));
        let data = e.data_start().unwrap();
        assert_eq!(data, h + 30 + n + m);
        // Local header: signature, version, flags, method, time, date, crc,
        // sizes, name and extra lengths, name, extra.
        add(h, 4, format!("{name}: local signature"), true);
        add(h + 4, 4, format!("{name}: local version and flags"), false);
        add(h + 8, 2, format!("{name}: local method"), true);
        add(h + 10, 4, format!("{name}: local time"), false);
        add(h + 14, 12, format!("{name}: local crc and sizes"), true);
        add(
            h + 26,
            4,
            format!("{name}: local name and extra lengths"),
            true,
        );
        add(h + 30, n, format!("{name}: local name"), true);
        add(h + 30 + n, m, format!("{name}: local extra field"), false);
        add(
            data,
            e.compressed_size(),
            format!("{name}: data (CRC-32)"),
            true,
        );
        let c = e.central_header_start();
        let (n, m, k) = (le16(c + 28), le16(c + 30), le16(c + 32));
        add(c, 4, format!("{name}: central signature"), true);
        add(
            c + 4,
            6,
            format!("{name}: central versions and flags"),
            false,
        );
        add(c + 10, 2, format!("{name}: central method"), true);
        add(c + 12, 4, format!("{name}: central time"), false);
        add(
            c + 16,
            18,
            format!("{name}: central crc, sizes, lengths"),
            true,
        );
        add(
            c + 34,
            8,
            format!("{name}: central disk and attributes"),
            false,
        );
        add(
            c + 42,
            4,
            format!("{name}: central local header offset"),
            true,
        );
        add(c + 46, n, format!("{name}: central name"), true);
        add(
            c + 46 + n,
            m + k,
            format!("{name}: central extra and comment"),
            false,
        );
        cd_end = cd_end.max(c + 46 + n + m + k);
    }
    let eocd = bytes.len() as u64 - 22;
    assert_eq!(
        &bytes[eocd as usize..eocd as usize + 4],
        b"PK\x05\x06",
        "no comment"
    );
    assert_eq!(
        cd_end, eocd,
        "nothing between the central directory and its end"
    );
    add(eocd, 20, "end of central directory".into(), true);
    add(
        eocd + 20,
        2,
        "end of central directory: comment length".into(),
        true,
    );
    v.sort_by_key(|r| r.range.start);
    // What no structure claims (alignment padding) is not checked.
    let mut gaps = Vec::new();
    let mut at = 0;
    for r in &v {
        if r.range.start > at {
            gaps.push(Region {
                range: at..r.range.start,
                what: "between entries".into(),
                checked: false,
            });
        }
        at = at.max(r.range.end);
    }
    v.extend(gaps);
    v.sort_by_key(|r| r.range.start);
    v
}

struct Run {
    code: Option<i32>,
    signal: Option<i32>,
    out: String,
}

fn romkit_in(dir: &Path, args: &[&str], pkg: &Path) -> Run {
    let o = romkit()
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", "1705300800")
        .args(args)
        .arg(pkg)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    Run {
        code: o.status.code(),
        signal: o.status.signal(),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

/// The regions of a `.tgz` without a file name in its gzip header: magic
/// and method (checked), flags, time and OS (not), then the deflate stream
/// and the trailer (CRC-32 and length of everything: checked).
fn tgz_regions(bytes: &[u8]) -> Vec<Region> {
    assert_eq!(bytes[3], 0, "no optional gzip header fields");
    let n = bytes.len() as u64;
    let r = |range: Range<u64>, what: &str, checked: bool| Region {
        range,
        what: what.into(),
        checked,
    };
    vec![
        r(0..3, "gzip magic and method", true),
        r(3..10, "gzip flags, time, extra flags, OS", false),
        r(10..n - 8, "deflate stream (CRC-32)", true),
        r(n - 8..n, "gzip trailer (CRC-32)", true),
    ]
}

/// Flips bytes of `original` and runs verify (and, on some, build) on each.
fn flip_and_check(label: &str, original: &[u8], file_name: &str, regions: Vec<Region>) {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join(file_name);
    let out = dir.path().join("out");
    std::fs::write(&pkg, original).unwrap();
    let clean = romkit_in(dir.path(), &["verify"], &pkg);
    assert_eq!(
        clean.code,
        Some(0),
        "{label}: the unbent package verifies: {}",
        clean.out
    );

    let mut rng = Rng(SEED
        ^ label
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b)));
    let data: Vec<&Region> = regions
        .iter()
        .filter(|r| r.what.ends_with("(CRC-32)"))
        .collect();
    let other: Vec<&Region> = regions
        .iter()
        .filter(|r| !r.what.ends_with("(CRC-32)"))
        .collect();
    let data_len: u64 = data.iter().map(|r| r.range.end - r.range.start).sum();
    let other_len: u64 = other.iter().map(|r| r.range.end - r.range.start).sum();
    let pick = |rng: &mut Rng, set: &[&Region], total: u64| -> u64 {
        let mut k = rng.below(total);
        for r in set {
            let len = r.range.end - r.range.start;
            if k < len {
                return r.range.start + k;
            }
            k -= len;
        }
        unreachable!()
    };
    let mut failures = Vec::new();
    let mut passed_unchecked = 0;
    let mut builds = 0;
    for i in 0..DATA_FLIPS + OTHER_FLIPS {
        let off = if i < DATA_FLIPS {
            pick(&mut rng, &data, data_len)
        } else {
            pick(&mut rng, &other, other_len)
        };
        let mask = (rng.below(255) + 1) as u8;
        let region = regions.iter().find(|r| r.range.contains(&off)).unwrap();
        let mut bytes = original.to_vec();
        bytes[off as usize] ^= mask;
        std::fs::write(&pkg, &bytes).unwrap();
        let r = romkit_in(dir.path(), &["verify"], &pkg);
        let at = format!(
            "{label} seed {SEED:#x} flip #{i}: byte {off} ^= {mask:#04x} in {} ({}..{})",
            region.what, region.range.start, region.range.end
        );
        if r.signal.is_some() || r.code == Some(101) || r.out.contains("panicked") {
            failures.push(format!(
                "{at}: crashed (exit {:?} signal {:?}): {}",
                r.code, r.signal, r.out
            ));
            continue;
        }
        match r.code {
            Some(1) | Some(3) => {}
            Some(0) if !region.checked => passed_unchecked += 1,
            other => failures.push(format!("{at}: verify exit {other:?}: {}", r.out)),
        }
        if region.checked && builds < BUILDS && i % 7 == 0 {
            builds += 1;
            let b = romkit_in(
                dir.path(),
                &[
                    "build",
                    "--profile",
                    &root().join("profiles/minimal.yaml").display().to_string(),
                    "-o",
                    "out/x.zip",
                ],
                &pkg,
            );
            if b.code == Some(0) || b.signal.is_some() || b.code == Some(101) {
                failures.push(format!(
                    "{at}: build exit {:?} signal {:?}: {}",
                    b.code, b.signal, b.out
                ));
            }
            let left = listing(&out);
            if !left.is_empty() {
                failures.push(format!("{at}: build left {left:?}"));
            }
            let _ = std::fs::remove_dir_all(&out);
            let strays: Vec<String> = listing(dir.path())
                .into_iter()
                .filter(|p| p != file_name)
                .collect();
            if !strays.is_empty() {
                failures.push(format!("{at}: build left {strays:?} beside the package"));
            }
        }
    }
    eprintln!(
        "{label}: {} flips ({DATA_FLIPS} in entry data), {passed_unchecked} passed in unchecked fields, {builds} builds, seed {SEED:#x}",
        DATA_FLIPS + OTHER_FLIPS
    );
    assert!(builds >= BUILDS / 2, "{label}: only {builds} builds ran");
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn flips_in_the_ota_sample_are_caught() {
    let bytes = std::fs::read(sample()).unwrap();
    flip_and_check("ota", &bytes, "ota.zip", regions(&bytes));
}

#[test]
fn flips_in_a_fastboot_zip_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let fb: PathBuf = dir.path().join("fuxi_images.zip");
    romkit()
        .env("SOURCE_DATE_EPOCH", "1705300800")
        .args(["fastboot", "--device", "fuxi", "-o"])
        .arg(&fb)
        .arg(sample())
        .assert()
        .success();
    let bytes = std::fs::read(&fb).unwrap();
    flip_and_check("fastboot zip", &bytes, "fb.zip", regions(&bytes));
}

#[test]
fn flips_in_a_fastboot_tgz_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let fb: PathBuf = dir.path().join("fuxi_images.tgz");
    romkit()
        .env("SOURCE_DATE_EPOCH", "1705300800")
        .args(["fastboot", "--device", "fuxi", "-o"])
        .arg(&fb)
        .arg(sample())
        .assert()
        .success();
    let bytes = std::fs::read(&fb).unwrap();
    flip_and_check("fastboot tgz", &bytes, "fb.tgz", tgz_regions(&bytes));
}
