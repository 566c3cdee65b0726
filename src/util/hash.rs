//! SHA-256 of files and streams, read in 1 MiB pieces.

use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

/// SHA-256 and length of everything `r` yields.
pub fn sha256_reader(mut r: impl Read) -> io::Result<([u8; 32], u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                h.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((h.finalize().into(), n))
}

/// SHA-256 (as lower-case hex) and size of a file.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let (h, n) = sha256_reader(std::fs::File::open(path)?)?;
    Ok((super::hex(&h), n))
}

/// SHA-256 of a byte string, as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    super::hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_digest() {
        // FIPS 180-2 example "abc".
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(super::sha256_hex(b"abc"), want);
        let (h, n) = super::sha256_reader(&b"abc"[..]).unwrap();
        assert_eq!((super::super::hex(&h).as_str(), n), (want, 3));
    }
}
