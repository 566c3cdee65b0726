//! The lowest layer: small helpers every other layer shares, each written
//! once so that the copies cannot drift apart (hex, calendar and zip times,
//! `SOURCE_DATE_EPOCH`, SHA-256 of a stream, magic bytes, `KEY=value` text,
//! bounded reads, human sizes).
//!
//! Nothing here knows a package, a partition or a command-line flag, and
//! nothing here imports from another `crate::` module.

pub mod hash;
pub mod magic;
pub mod pages;
pub mod size;
pub mod text;
pub mod time;

/// Lower-case hex of a byte string (hashes in reports, manifests and errors).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lower_case_and_two_digits_a_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(super::hex(&[]), "");
    }
}
