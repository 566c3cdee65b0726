//! Zip and tar.gz containers: paths leaving the output folder, links,
//! duplicates, bombs and nested archives, in OTA zips and fastboot packages.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::harness::{CHECK, Case, Expect, INVALID};
use crate::zipraw::{self, Entry};

/// A fastboot package converted from the sample by `romkit fastboot`,
/// as zip or tgz, made once per run.
pub fn fastboot_base(ext: &str) -> Vec<u8> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hostile-bases");
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for e in ["zip", "tgz"] {
            crate::common::romkit()
                .env("SOURCE_DATE_EPOCH", "1705300800")
                .args(["fastboot", "--device", "fuxi", "-o"])
                .arg(d.join(format!("fuxi_images.{e}")))
                .arg(crate::common::sample())
                .assert()
                .success();
        }
        d
    });
    std::fs::read(dir.join(format!("fuxi_images.{ext}"))).unwrap()
}

fn fastboot_zip_entries() -> Vec<Entry> {
    zipraw::entries_of(&fastboot_base("zip"))
}

/// A tar entry with raw name (and link) bytes, as a hostile writer makes it.
fn tar_entry(
    b: &mut tar::Builder<impl Write>,
    name: &[u8],
    kind: tar::EntryType,
    link: &[u8],
    data: &[u8],
    declared: u64,
) {
    let mut h = tar::Header::new_gnu();
    {
        let g = h.as_gnu_mut().unwrap();
        g.name[..name.len()].copy_from_slice(name);
        g.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(declared);
    h.set_mtime(1_705_300_800);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

/// The base tgz's entries (name, bytes), in order.
fn tgz_entries() -> Vec<(String, Vec<u8>)> {
    let gz = flate2::read::GzDecoder::new(std::io::Cursor::new(fastboot_base("tgz")));
    let mut a = tar::Archive::new(gz);
    let mut v = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        v.push((name, data));
    }
    v
}

/// The base tgz with `extra` appended (by a closure writing raw entries).
fn tgz_with(extra: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in tgz_entries() {
        let kind = if name.ends_with('/') {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        };
        tar_entry(&mut b, name.as_bytes(), kind, b"", &data, data.len() as u64);
    }
    extra(&mut b);
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn with(mut base: Vec<Entry>, extra: Vec<Entry>) -> Vec<u8> {
    base.extend(extra);
    zipraw::build(&base)
}

fn symlink(name: &str, target: &str) -> Entry {
    Entry {
        mode: 0o120777,
        ..zipraw::stored(name, target.as_bytes())
    }
}

/// A deflate entry whose sizes claim 2 TiB (central directory and local header).
fn claims_terabytes(name: &str) -> Entry {
    Entry {
        size: 2 << 40,
        ..zipraw::deflated(name, b"a few real bytes")
    }
}

/// A real deflate stream of 1 GiB of zeros declared as `declared` bytes.
fn expands_past(name: &str, declared: u64) -> Entry {
    Entry {
        size: declared,
        ..zipraw::deflated_zeros(name, 1 << 30)
    }
}

const ESCAPES: [&str; 3] = ["../x", "a/../../x", crate::harness::ABSOLUTE_TARGET];

#[test]
fn ota_zip_entries_leaving_the_folder() {
    for name in ESCAPES {
        let bytes = with(
            zipraw::sample_entries(),
            vec![zipraw::stored(name, b"escaped")],
        );
        let case = Case::new(&format!("ota zip entry {name}"), "ota.zip", &bytes);
        case.check_package(Expect::Fail(INVALID, name));
    }
}

#[test]
fn fastboot_zip_entries_leaving_the_folder() {
    for name in ESCAPES {
        let bytes = with(
            fastboot_zip_entries(),
            vec![zipraw::stored(name, b"escaped")],
        );
        let case = Case::new(&format!("fastboot zip entry {name}"), "fb.zip", &bytes);
        case.check_package(Expect::Fail(INVALID, name));
    }
}

#[test]
fn fastboot_tgz_entries_leaving_the_folder() {
    for name in ESCAPES {
        let bytes = tgz_with(|b| {
            tar_entry(
                b,
                name.as_bytes(),
                tar::EntryType::Regular,
                b"",
                b"escaped",
                7,
            )
        });
        let case = Case::new(&format!("fastboot tgz entry {name}"), "fb.tgz", &bytes);
        case.check_package(Expect::Fail(INVALID, name));
    }
}

#[test]
fn links_in_archives() {
    let bytes = tgz_with(|b| {
        tar_entry(
            b,
            b"images/x.img",
            tar::EntryType::Symlink,
            b"/etc/passwd",
            b"",
            0,
        )
    });
    Case::new("tgz symlink images/x.img", "fb.tgz", &bytes)
        .check_package(Expect::Fail(INVALID, "images/x.img"));
    let bytes = tgz_with(|b| {
        tar_entry(
            b,
            b"images/y.img",
            tar::EntryType::Link,
            b"images/boot.img",
            b"",
            0,
        )
    });
    Case::new("tgz hard link images/y.img", "fb.tgz", &bytes)
        .check_package(Expect::Fail(INVALID, "images/y.img"));
    // A symlink that leaves the folder, then a file written through it.
    let bytes = tgz_with(|b| {
        tar_entry(b, b"images/up", tar::EntryType::Symlink, b"../..", b"", 0);
        tar_entry(
            b,
            b"images/up/x",
            tar::EntryType::Regular,
            b"",
            b"escaped",
            7,
        );
    });
    Case::new("tgz symlink images/up -> ../..", "fb.tgz", &bytes)
        .check_package(Expect::Fail(INVALID, "images/up"));

    let bytes = with(
        fastboot_zip_entries(),
        vec![symlink("images/x.img", "/etc/passwd")],
    );
    Case::new("fastboot zip symlink images/x.img", "fb.zip", &bytes)
        .check_package(Expect::Fail(INVALID, "images/x.img"));
    let bytes = with(
        zipraw::sample_entries(),
        vec![symlink("META-INF/com/android/otacert", "/etc/passwd")],
    );
    Case::new("ota zip symlink otacert", "ota.zip", &bytes)
        .check_package(Expect::Fail(INVALID, "META-INF/com/android/otacert"));
}

#[test]
fn duplicate_entry_names() {
    let entries = zipraw::sample_entries();
    let payload = entries
        .iter()
        .find(|e| e.name == b"payload.bin")
        .unwrap()
        .clone();
    let mut other = payload.clone();
    other.data[100] ^= 1;
    other.crc = crc32fast::hash(&other.data);
    Case::new(
        "ota zip two payload.bin",
        "ota.zip",
        &with(entries, vec![other]),
    )
    .check_package(Expect::Fail(INVALID, "payload.bin"));

    let entries = fastboot_zip_entries();
    let boot = entries
        .iter()
        .find(|e| e.name == b"images/boot.img")
        .unwrap()
        .clone();
    Case::new(
        "fastboot zip two images/boot.img",
        "fb.zip",
        &with(entries, vec![boot]),
    )
    .check_package(Expect::Fail(INVALID, "images/boot.img"));

    let bytes = tgz_with(|b| {
        tar_entry(
            b,
            b"images/boot.img",
            tar::EntryType::Regular,
            b"",
            &[1; 4096],
            4096,
        )
    });
    Case::new("fastboot tgz two images/boot.img", "fb.tgz", &bytes)
        .check_package(Expect::Fail(INVALID, "images/boot.img"));
}

#[test]
fn zip_bombs() {
    // Sizes claiming terabytes: refused from the central directory, before
    // anything is inflated.
    let bytes = with(
        zipraw::sample_entries(),
        vec![claims_terabytes("care_map.pb")],
    );
    Case::new("ota zip entry claiming 2 TiB", "ota.zip", &bytes)
        .check_package(Expect::Fail(INVALID, "care_map.pb"));
    let mut entries = fastboot_zip_entries();
    entries.retain(|e| e.name != b"images/boot.img");
    let bytes = with(entries, vec![claims_terabytes("images/boot.img")]);
    Case::new("fastboot zip image claiming 2 TiB", "fb.zip", &bytes)
        .check_package(Expect::Fail(INVALID, "images/boot.img"));
    // A stored payload.bin claiming 2 TiB: past the end of the file.
    let mut entries = zipraw::sample_entries();
    for e in &mut entries {
        if e.name == b"payload.bin" {
            e.size = 2 << 40;
        }
    }
    Case::new(
        "ota zip payload.bin claiming 2 TiB",
        "ota.zip",
        &zipraw::build(&entries),
    )
    .check_package(Expect::Fail(INVALID, "payload.bin"));

    // Real deflate streams that expand far past their declared size.
    let mut entries = zipraw::sample_entries();
    entries.retain(|e| e.name != b"META-INF/com/android/metadata");
    let bytes = with(
        entries,
        vec![expands_past("META-INF/com/android/metadata", 256)],
    );
    Case::new("ota zip metadata inflating to 1 GiB", "ota.zip", &bytes)
        .check_package(Expect::Fail(INVALID, "META-INF/com/android/metadata"));

    // An entry romkit never needs (care_map.pb): only verify and build
    // inflate it, and they stop at its declared size. Reading the rest of
    // the package is safe, so inspect, unpack, ls and apps succeed.
    let bytes = with(
        zipraw::sample_entries(),
        vec![expands_past("care_map.pb", 4096)],
    );
    let case = Case::new("ota zip care_map.pb inflating to 1 GiB", "ota.zip", &bytes);
    case.check(&["inspect", "IN"], Expect::Ok);
    // Exit 1: the entry's content does not match what the zip declares.
    case.check(&["verify", "IN"], Expect::Fail(CHECK, "care_map.pb"));
    case.check(&["unpack", "IN", "-o", "OUT"], Expect::Ok);
    case.check(&["ls", "IN"], Expect::Ok);
    case.check(&["apps", "IN"], Expect::Ok);
    case.check(
        &[
            "build",
            "--profile",
            crate::harness::PROFILE,
            "-o",
            "OUT/x.zip",
            "IN",
        ],
        Expect::Fail(&[1, 3], "care_map.pb"),
    );

    let mut entries = fastboot_zip_entries();
    entries.retain(|e| e.name != b"images/boot.img");
    let bytes = with(entries, vec![expands_past("images/boot.img", 126_976)]);
    // An image is read (its head) as soon as the package is opened: the
    // zip reader stops at the declared size and every command fails.
    Case::new("fastboot zip boot.img inflating to 1 GiB", "fb.zip", &bytes)
        .check_package(Expect::Fail(INVALID, "images/boot.img"));

    // A tar entry declaring 512 GiB whose data ends after a few bytes.
    let bytes = tgz_with(|b| {
        tar_entry(
            b,
            b"images/odm.img",
            tar::EntryType::Regular,
            b"",
            &[],
            512 << 30,
        )
    });
    Case::new("fastboot tgz image declaring 512 GiB", "fb.tgz", &bytes)
        .check_package(Expect::Fail(INVALID, "images/odm.img"));
}

#[test]
fn nested_archives() {
    let sample = std::fs::read(crate::common::sample()).unwrap();
    let bytes = zipraw::build(&[zipraw::stored("update.zip", &sample)]);
    Case::new("zip holding an OTA zip", "nested.zip", &bytes)
        .check_package(Expect::Fail(INVALID, "update.zip"));
    let bytes = zipraw::build(&[zipraw::stored("fuxi_images.tgz", &fastboot_base("tgz"))]);
    Case::new("zip holding a fastboot tgz", "nested.zip", &bytes)
        .check_package(Expect::Fail(INVALID, "fuxi_images.tgz"));
    // A zip posing as an image of a fastboot package: read as a raw image
    // (it is one, byte for byte), never opened as an archive. Odd, handled.
    let mut entries = fastboot_zip_entries();
    entries.push(zipraw::stored("images/cust.img", &sample));
    let case = Case::new(
        "fastboot zip with a zip as images/cust.img",
        "fb.zip",
        &zipraw::build(&entries),
    );
    case.check(&["inspect", "IN"], Expect::Ok);
    case.check(&["verify", "IN"], Expect::Ok);
    case.check(
        &["unpack", "IN", "-o", "OUT", "--partitions", "cust"],
        Expect::Ok,
    );
}

/// A fastboot zip at `path` holding one stored image of `len` zero bytes,
/// written as a sparse file (the data is a hole).
fn sparse_stored_zip(path: &std::path::Path, name: &str, len: u64) {
    use std::io::{Seek, SeekFrom};
    let mut crc = crc32fast::Hasher::new();
    let chunk = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        crc.update(&chunk[..n]);
        left -= n as u64;
    }
    let crc = crc.finalize();
    let n = name.len() as u16;
    let mut local = b"PK\x03\x04".to_vec();
    for v in [20u16, 0, 0, 0, 0x5821] {
        local.extend_from_slice(&v.to_le_bytes());
    }
    local.extend_from_slice(&crc.to_le_bytes());
    local.extend_from_slice(&(len as u32).to_le_bytes());
    local.extend_from_slice(&(len as u32).to_le_bytes());
    local.extend_from_slice(&n.to_le_bytes());
    local.extend_from_slice(&0u16.to_le_bytes());
    local.extend_from_slice(name.as_bytes());
    let mut central = b"PK\x01\x02".to_vec();
    for v in [(3u16 << 8) | 20, 20, 0, 0, 0, 0x5821] {
        central.extend_from_slice(&v.to_le_bytes());
    }
    central.extend_from_slice(&crc.to_le_bytes());
    central.extend_from_slice(&(len as u32).to_le_bytes());
    central.extend_from_slice(&(len as u32).to_le_bytes());
    for v in [n, 0, 0, 0, 0] {
        central.extend_from_slice(&v.to_le_bytes());
    }
    central.extend_from_slice(&(0o100644u32 << 16).to_le_bytes());
    central.extend_from_slice(&0u32.to_le_bytes());
    central.extend_from_slice(name.as_bytes());
    let cd_at = local.len() as u64 + len;
    let mut end = b"PK\x05\x06".to_vec();
    for v in [0u16, 0, 1, 1] {
        end.extend_from_slice(&v.to_le_bytes());
    }
    end.extend_from_slice(&(central.len() as u32).to_le_bytes());
    end.extend_from_slice(&(cd_at as u32).to_le_bytes());
    end.extend_from_slice(&0u16.to_le_bytes());
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&local).unwrap();
    f.seek(SeekFrom::Start(cd_at)).unwrap();
    f.write_all(&central).unwrap();
    f.write_all(&end).unwrap();
}

#[test]
fn large_stored_image_is_not_a_bomb() {
    // A stored image larger than the limit on inflating compressed entries
    // (1 GiB): stored data is read as it is, so verify checks its CRC-32
    // like any other. Odd (all zeros) but valid: exit 0.
    let case = Case::new("fastboot zip stored 1 GiB + 4 KiB image", "fb.zip", b"");
    sparse_stored_zip(&case.input, "images/userdata.img", (1 << 30) + 4096);
    case.check(&["inspect", "IN"], Expect::Ok);
    case.check(&["verify", "IN"], Expect::Ok);
}
