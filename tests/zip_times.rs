//! Zip entry times clamp the same way in every zip romkit writes: a
//! `SOURCE_DATE_EPOCH` before 1980 becomes 1980-01-01 00:00:00 and one after
//! 2107 becomes 2107-12-31 23:59:58, in the central directory and in every
//! local header, for `build --format fastboot`, `build --format ota` and
//! `fastboot`. The zips are read here byte by byte, independently of the
//! zip crate romkit writes them with.

mod common;

use std::path::Path;

use common::*;

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// An MS-DOS (time, date) pair.
type DosTime = (u16, u16);

/// (name, central directory time, local header time) of every entry.
fn dos_times(zip: &Path) -> Vec<(String, DosTime, DosTime)> {
    let b = std::fs::read(zip).unwrap();
    let eocd = (0..=b.len() - 22)
        .rev()
        .find(|&i| le32(&b, i) == 0x0605_4b50)
        .expect("end of central directory");
    let count = le16(&b, eocd + 10) as usize;
    let mut at = le32(&b, eocd + 16) as usize;
    let mut out = Vec::new();
    for _ in 0..count {
        assert_eq!(le32(&b, at), 0x0201_4b50, "central header at {at}");
        let name_len = le16(&b, at + 28) as usize;
        let extra_len = le16(&b, at + 30) as usize;
        let comment_len = le16(&b, at + 32) as usize;
        let name = String::from_utf8_lossy(&b[at + 46..at + 46 + name_len]).into_owned();
        let local = le32(&b, at + 42) as usize;
        assert_eq!(le32(&b, local), 0x0403_4b50, "local header of {name}");
        out.push((
            name,
            (le16(&b, at + 12), le16(&b, at + 14)),
            (le16(&b, local + 10), le16(&b, local + 12)),
        ));
        at += 46 + name_len + extra_len + comment_len;
    }
    out
}

fn dos(y: u16, mo: u16, d: u16, h: u16, mi: u16, s: u16) -> DosTime {
    (
        (h << 11) | (mi << 5) | (s / 2),
        ((y - 1980) << 9) | (mo << 5) | d,
    )
}

#[test]
fn every_zip_writer_clamps_times_alike() {
    let cases = [
        ("0", dos(1980, 1, 1, 0, 0, 0)),
        ("-86400", dos(1980, 1, 1, 0, 0, 0)),
        ("5000000000", dos(2107, 12, 31, 23, 59, 58)),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (epoch, want) in cases {
        let out = |n: &str| dir.path().join(format!("{n}-{epoch}.zip"));
        for format in ["fastboot", "ota"] {
            romkit()
                .env("SOURCE_DATE_EPOCH", epoch)
                .args(["build", "--profile", "minimal", "--format", format, "-o"])
                .arg(out(format))
                .arg(sample())
                .assert()
                .success();
        }
        romkit()
            .env("SOURCE_DATE_EPOCH", epoch)
            .arg("fastboot")
            .arg(sample())
            .arg("-o")
            .arg(out("convert"))
            .assert()
            .success();
        for name in ["fastboot", "ota", "convert"] {
            let entries = dos_times(&out(name));
            assert!(entries.len() >= 3, "{name}: {entries:?}");
            for (entry, central, local) in entries {
                assert_eq!(central, want, "{name} {epoch}: {entry} (central directory)");
                assert_eq!(local, want, "{name} {epoch}: {entry} (local header)");
            }
        }
    }
}
