//! On-disk formats, one module each, reader and writer side by side.

pub mod image;
pub mod lp;
pub mod payload;
pub mod sdat;
pub mod source;
pub mod sparse;

/// Names what an image holds from its first 4 KiB, by magic bytes.
pub fn detect_content(head: &[u8]) -> Option<&'static str> {
    let at = |o: usize, m: &[u8]| head.get(o..o + m.len()) == Some(m);
    if at(1024, &0xE0F5_E1E2u32.to_le_bytes()) {
        Some("erofs")
    } else if at(1080, &0xEF53u16.to_le_bytes()) {
        Some("ext4")
    } else if at(1024, &0xF2F5_2010u32.to_le_bytes()) {
        Some("f2fs")
    } else if at(0, &0xED26_FF3Au32.to_le_bytes()) {
        Some("android-sparse")
    } else if at(0, b"ANDROID!") {
        Some("android-boot")
    } else if at(0, b"VNDRBOOT") {
        Some("vendor-boot")
    } else if at(0, b"AVB0") {
        Some("vbmeta")
    } else if at(0, &0xD7B7_AB1Eu32.to_be_bytes()) {
        Some("dtbo")
    } else if at(0, b"CrAU") {
        Some("payload")
    } else if at(0, b"PK\x03\x04") {
        Some("zip")
    } else if head.len() >= 8 && head.iter().all(|&b| b == 0) {
        Some("empty")
    } else {
        None
    }
}
