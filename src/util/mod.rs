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

/// The 32 bytes that [`hex`] wrote as `s` (a SHA-256 in a report), or
/// `None` if `s` is not 64 hex digits.
pub fn unhex32(s: &str) -> Option<[u8; 32]> {
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(b[2 * i])? << 4 | digit(b[2 * i + 1])?;
    }
    Some(out)
}

/// Reads until `buf` is full or the input ends (retrying interrupted
/// reads); returns the bytes read.
pub fn read_up_to<R: std::io::Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Lowers the calling thread's scheduling priority (nice 10), so that it
/// runs on what cores the other threads leave: for work that has until the
/// end of a stage to finish (the input's hash during packaging) and must not
/// slow the stage's own threads. A failure leaves the priority as it was.
pub fn run_in_background() {
    // SAFETY: gettid and setpriority take no pointers; on Linux, a thread
    // id given to PRIO_PROCESS names that one thread.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}

/// `n` bytes of xorshift noise from `seed` (not 0): incompressible,
/// deterministic test data.
#[cfg(test)]
pub(crate) fn noise(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// `n` bytes of noise from `seed`, then `n` of build.prop-like text: an
/// image whose first half xz cannot shrink and whose second half it can.
#[cfg(test)]
pub(crate) fn noise_then_text(n: usize, seed: u64) -> Vec<u8> {
    let mut v = noise(n, seed);
    v.extend(b"ro.product.name=fuxi\n".iter().cycle().take(n));
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lower_case_and_two_digits_a_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(super::hex(&[]), "");
    }

    #[test]
    fn unhex32_reads_what_hex_writes_and_nothing_else() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 37 + 5) as u8);
        assert_eq!(super::unhex32(&super::hex(&bytes)), Some(bytes));
        assert_eq!(super::unhex32(&"A".repeat(64)), Some([0xaa; 32]));
        assert_eq!(super::unhex32(&"0".repeat(63)), None);
        assert_eq!(super::unhex32(&format!("{}g", "0".repeat(63))), None);
    }
}
