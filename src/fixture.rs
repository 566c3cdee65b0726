//! A synthetic, deterministic HyperOS-like recovery OTA for demos, tests and
//! benchmarks.
//!
//! The package mirrors a real Xiaomi 13 (`fuxi`) China build: the partitions a
//! HyperOS OTA carries, the dynamic partitions in one `qti_dynamic_partitions`
//! group, the zip layout and metadata of an official package. Partition
//! contents are synthetic: text-like runs (compress like configuration and
//! code), structured binary records, incompressible runs (like already
//! compressed resources) and free space at the end of each image (like a
//! filesystem's unused blocks, which become ZERO operations). Every byte is a
//! function of the partition name, the offset and the requested size alone.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::payload::hex;
use crate::format::payload::writer::{self, ImageInput, PayloadSummary, WriteOptions};

/// The build the fixture pretends to be.
pub const VERSION: &str = "OS1.0.24.0.UMCCNXM";
/// Device codename.
pub const DEVICE: &str = "fuxi";
/// Build timestamp: 2024-01-15 06:40:00 UTC.
pub const TIMESTAMP: i64 = 1_705_300_800;
/// The dynamic partition group.
pub const GROUP: &str = "qti_dynamic_partitions";

/// Fixture options.
#[derive(Clone, Debug)]
pub struct FixtureOptions {
    /// Total bytes of partition images (approximate; each image is rounded to 4 KiB).
    pub size: u64,
    /// xz preset for the payload.
    pub xz_level: u32,
    /// Worker threads.
    pub jobs: usize,
    /// Replace an existing package.
    pub force: bool,
}

/// (name, share of the total in thousandths, dynamic, header magic)
const PARTITIONS: [(&str, u64, bool, &[u8]); 10] = [
    ("boot", 20, false, b"ANDROID!"),
    ("vendor_boot", 15, false, b"VNDRBOOT"),
    ("dtbo", 5, false, &[0xd7, 0xb7, 0xab, 0x1e]),
    ("vbmeta", 0, false, b"AVB0"),
    ("system", 350, true, b""),
    ("system_ext", 80, true, b""),
    ("product", 250, true, b""),
    ("vendor", 240, true, b""),
    ("odm", 30, true, b""),
    ("mi_ext", 10, true, b""),
];

/// splitmix64: a tiny deterministic generator, good enough for test data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

const WORDS: [&str; 48] = [
    "android",
    "miui",
    "hyperos",
    "xiaomi",
    "system",
    "vendor",
    "product",
    "service",
    "permission",
    "activity",
    "intent",
    "provider",
    "receiver",
    "library",
    "config",
    "property",
    "persist",
    "ro.build",
    "ro.product",
    "selinux",
    "context",
    "u:object_r",
    "system_file",
    "vendor_file",
    "<?xml",
    "version=\"1.0\"",
    "encoding=\"utf-8\"",
    "<permissions>",
    "</permissions>",
    "<feature",
    "name=",
    "/system/bin",
    "/vendor/lib64",
    "libc.so",
    "libutils.so",
    "0x0000",
    "true",
    "false",
    "enable",
    "disable",
    "camera",
    "audio",
    "display",
    "thermal",
    "battery",
    "qcom",
    "sm8550",
    "fuxi",
];

fn fill_region(rng: &mut Rng, kind: u64, out: &mut [u8]) {
    match kind {
        // Text: words and punctuation.
        0..=4 => {
            let mut i = 0;
            while i < out.len() {
                let r = rng.next();
                let w = WORDS[(r % WORDS.len() as u64) as usize].as_bytes();
                let sep: &[u8] = match (r >> 8) % 7 {
                    0 => b"\n",
                    1 => b"=",
                    2 => b"/",
                    _ => b" ",
                };
                for &b in w.iter().chain(sep) {
                    if i == out.len() {
                        break;
                    }
                    out[i] = b;
                    i += 1;
                }
            }
        }
        // Structured binary records: counters, small fields, padding.
        5..=7 => {
            let mut counter = rng.next() & 0xffff;
            for rec in out.chunks_mut(32) {
                let r = rng.next();
                let mut b = [0u8; 32];
                b[0..8].copy_from_slice(&counter.to_le_bytes());
                b[8..12].copy_from_slice(&((r & 0xff) as u32).to_le_bytes());
                b[12..14].copy_from_slice(&(((r >> 8) & 0x3) as u16).to_le_bytes());
                b[16..20].copy_from_slice(b"ELF\x7f");
                counter += 1 + (r >> 60);
                let n = rec.len();
                rec.copy_from_slice(&b[..n]);
            }
        }
        // Incompressible: already-compressed resources.
        _ => {
            for c in out.chunks_mut(8) {
                let n = c.len();
                c.copy_from_slice(&rng.next().to_le_bytes()[..n]);
            }
        }
    }
}

/// Writes one image of `size` bytes for partition `name`.
fn write_image(path: &Path, name: &str, size: u64, magic: &[u8]) -> std::io::Result<()> {
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let mut rng = Rng(seed ^ size);
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    // The last fifth of a large image is free space; small images are all data.
    let used = if size >= 1 << 20 {
        (size - size / 5).div_ceil(4096) * 4096
    } else {
        size
    };
    const REGION: u64 = 64 << 10;
    let mut buf = vec![0u8; REGION as usize];
    let mut at = 0u64;
    while at < used {
        let n = REGION.min(used - at) as usize;
        let kind = rng.next() % 10;
        fill_region(&mut rng, kind, &mut buf[..n]);
        if at == 0 {
            let m = magic.len().min(n);
            buf[..m].copy_from_slice(&magic[..m]);
        }
        w.write_all(&buf[..n])?;
        at += n as u64;
    }
    let zeros = vec![0u8; 1 << 20];
    while at < size {
        let n = (1u64 << 20).min(size - at) as usize;
        w.write_all(&zeros[..n])?;
        at += n as u64;
    }
    w.flush()
}

/// The `META-INF/com/android/metadata` of the fixture.
pub fn metadata() -> BTreeMap<String, String> {
    let fp = format!("Xiaomi/{DEVICE}/{DEVICE}:14/UKQ1.230804.001/{VERSION}:user/release-keys");
    [
        ("ota-required-cache", "0".to_string()),
        ("ota-type", "AB".to_string()),
        ("post-build", fp),
        ("post-build-incremental", VERSION.to_string()),
        ("post-sdk-level", "34".to_string()),
        ("post-security-patch-level", "2024-01-01".to_string()),
        ("post-timestamp", TIMESTAMP.to_string()),
        ("pre-device", DEVICE.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Writes the fixture's partition images into `dir`. Returns the images and
/// the names of the dynamic partitions. Tests use this to compare extracted
/// images with what went into the package.
pub fn write_images(dir: &Path, size: u64) -> Result<(Vec<ImageInput>, Vec<String>, u64)> {
    let mut images = Vec::new();
    let mut dynamic = Vec::new();
    let mut dyn_total = 0;
    for (name, share, is_dyn, magic) in PARTITIONS {
        let img_size = if share == 0 {
            8192
        } else {
            (size * share / 1000).max(64 << 10).div_ceil(4096) * 4096
        };
        let path = dir.join(format!("{name}.img"));
        write_image(&path, name, img_size, magic).map_err(|e| Error::io(&path, e))?;
        if is_dyn {
            dynamic.push(name.to_string());
            dyn_total += img_size;
        }
        images.push(ImageInput {
            name: name.to_string(),
            path,
        });
    }
    Ok((images, dynamic, dyn_total))
}

/// Generates the package into `dir`; returns its path and payload summary.
pub fn generate(dir: &Path, opts: &FixtureOptions) -> Result<(PathBuf, PayloadSummary)> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let work = tempfile::Builder::new()
        .prefix(".romkit-fixture-")
        .tempdir_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    let (images, dynamic, dyn_total) = write_images(work.path(), opts.size)?;
    // Group size as on a device with room to spare: the dynamic images plus 25 %.
    let group_size = (dyn_total + dyn_total / 4).div_ceil(1 << 20) << 20;
    let wopts = WriteOptions {
        xz_level: opts.xz_level,
        jobs: opts.jobs,
        max_timestamp: Some(TIMESTAMP),
        security_patch_level: Some("2024-01-01".into()),
        groups: vec![(GROUP.to_string(), group_size, dynamic)],
        snapshot_enabled: true,
        // Small packages use smaller operations so that they still exercise
        // many operations per partition and ZERO operations for free space.
        chunk_size: if opts.size < 64 << 20 {
            256 << 10
        } else {
            2 << 20
        },
        ..Default::default()
    };
    let mut prepared = writer::prepare_payload(&images, &wopts, work.path())?;
    let pre = prepared
        .write_to(&mut std::io::sink())
        .map_err(|e| Error::io(work.path(), e))?;
    let name = format!(
        "miui_{}_{VERSION}_{}_14.0.zip",
        DEVICE.to_uppercase(),
        &hex(&pre.file_hash)[..10]
    );
    let dest = dir.join(name);
    let mtime = zip::DateTime::from_date_and_time(2024, 1, 15, 6, 40, 0)
        .map_err(|e| Error::invalid(dir, format!("fixture timestamp: {e}")))?;
    let summary =
        crate::rom::ota::write_ota_zip(&dest, &mut prepared, &metadata(), mtime, opts.force)?;
    Ok((dest, summary))
}
