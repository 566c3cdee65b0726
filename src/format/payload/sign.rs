//! Payload signatures: RSA PKCS#1 v1.5 over SHA-256, as update_engine checks them.
//!
//! Two signatures may be present:
//! - the *metadata signature*, over SHA-256 of header + manifest
//!   (`payload[0..metadata_size]`), stored right after the manifest;
//! - the *payload signature*, over SHA-256 of header + manifest followed by the
//!   data section up to the signature blob (the metadata signature is skipped),
//!   stored at `signatures_offset` in the data section.
//!
//! Each is a serialized [`Signatures`] message. Only
//! public-key operations happen here (verification), so a plain big-integer
//! modular exponentiation is enough and no secret is ever handled.

use num_bigint::BigUint;
use prost::Message;

use super::proto::Signatures;
use super::{Payload, PayloadError};

/// An RSA public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaPublicKey {
    /// Modulus.
    pub n: BigUint,
    /// Public exponent.
    pub e: BigUint,
}

/// The DER `DigestInfo` prefix for SHA-256 (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// OID 1.2.840.113549.1.1.1 (rsaEncryption), DER content bytes.
const RSA_ENCRYPTION_OID: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// Why a public key cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The outer structure is not a SEQUENCE.
    #[error("key is not a DER SEQUENCE")]
    NotSequence,
    /// A PKCS#1 key's exponent is not an INTEGER.
    #[error("RSA public key: exponent is not an INTEGER")]
    Exponent,
    /// The key is not an RSA key.
    #[error("public key algorithm is not RSA (only RSA keys are supported)")]
    NotRsa,
    /// The key's BIT STRING is empty or has unused bits.
    #[error("public key BIT STRING is empty or not byte-aligned")]
    BitString,
    /// A certificate without its public key.
    #[error("certificate has no SubjectPublicKeyInfo")]
    NoKeyInfo,
    /// Neither a certificate nor a known key structure.
    #[error("unrecognised key structure")]
    Unrecognised,
    /// A DER element is cut short.
    #[error("DER truncated")]
    DerTruncated,
    /// A DER length field is malformed.
    #[error("DER length field invalid")]
    DerLength,
    /// A DER element is longer than the bytes left.
    #[error("DER element runs past the end of the key")]
    DerPastEnd,
    /// Not DER and not UTF-8 text.
    #[error("key file is neither DER nor PEM text")]
    NotText,
    /// Text without a PEM block.
    #[error("no PEM block (-----BEGIN ...) in key file")]
    NoPem,
    /// The PEM body is not base64.
    #[error("PEM body is not valid base64")]
    Base64,
}

impl RsaPublicKey {
    /// Modulus length in bytes.
    pub fn size(&self) -> usize {
        self.n.to_bytes_be().len()
    }

    /// Reads a key from PEM or DER: an X.509 certificate, a
    /// SubjectPublicKeyInfo (`PUBLIC KEY`) or a PKCS#1 `RSA PUBLIC KEY`.
    pub fn parse(bytes: &[u8]) -> Result<Self, KeyError> {
        let der = if bytes.starts_with(b"-----BEGIN") || bytes.iter().take(64).all(|b| b.is_ascii())
        {
            pem_body(bytes)?
        } else {
            bytes.to_vec()
        };
        Self::from_der(&der)
    }

    fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        let (tag, body, _) = der_next(der)?;
        if tag != 0x30 {
            return Err(KeyError::NotSequence);
        }
        let (t0, first, rest) = der_next(body)?;
        match t0 {
            // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
            0x02 => {
                let (t1, e, _) = der_next(rest)?;
                if t1 != 0x02 {
                    return Err(KeyError::Exponent);
                }
                Ok(RsaPublicKey {
                    n: BigUint::from_bytes_be(first),
                    e: BigUint::from_bytes_be(e),
                })
            }
            0x30 => {
                // Either SubjectPublicKeyInfo { algorithm SEQUENCE, key BIT STRING }
                // or Certificate { tbsCertificate SEQUENCE, ... }.
                let (t1, second, _) = der_next(rest)?;
                if t1 == 0x03 {
                    let (ot, oid, _) = der_next(first)?;
                    if ot != 0x06 || oid != RSA_ENCRYPTION_OID {
                        return Err(KeyError::NotRsa);
                    }
                    let key = second
                        .split_first()
                        .filter(|(unused, _)| **unused == 0)
                        .ok_or(KeyError::BitString)?
                        .1;
                    return Self::from_der(key);
                }
                // tbsCertificate: [0] version?, serial, signature alg, issuer,
                // validity, subject, subjectPublicKeyInfo.
                let mut tbs = first;
                let (t, _, r) = der_next(tbs)?;
                if t == 0xa0 {
                    tbs = r;
                }
                for _ in 0..5 {
                    tbs = der_next(tbs)?.2;
                }
                let (t, _, _) = der_next(tbs)?;
                if t != 0x30 {
                    return Err(KeyError::NoKeyInfo);
                }
                let len = der_len(tbs)?;
                Self::from_der(&tbs[..len])
            }
            _ => Err(KeyError::Unrecognised),
        }
    }

    /// Checks an RSASSA-PKCS1-v1_5 SHA-256 signature over `digest`.
    pub fn verify_digest(&self, digest: &[u8; 32], sig: &[u8]) -> bool {
        let k = self.size();
        if sig.len() != k || k < SHA256_DIGEST_INFO.len() + 32 + 11 {
            return false;
        }
        let s = BigUint::from_bytes_be(sig);
        if s >= self.n {
            return false;
        }
        let m = s.modpow(&self.e, &self.n).to_bytes_be();
        // to_bytes_be drops leading zeros: the block starts 0x00 0x01.
        let mut em = vec![0u8; k - m.len()];
        em.extend_from_slice(&m);
        let t_len = SHA256_DIGEST_INFO.len() + 32;
        let pad = k - 3 - t_len;
        em[0] == 0
            && em[1] == 1
            && em[2..2 + pad].iter().all(|&b| b == 0xff)
            && em[2 + pad] == 0
            && em[3 + pad..3 + pad + SHA256_DIGEST_INFO.len()] == SHA256_DIGEST_INFO
            && em[k - 32..] == digest[..]
    }
}

/// Splits one DER TLV: (tag, contents, rest).
pub(crate) fn der_next(b: &[u8]) -> Result<(u8, &[u8], &[u8]), KeyError> {
    let total = der_len(b)?;
    let hdr = total - content_len(b)?;
    Ok((b[0], &b[hdr..total], &b[total..]))
}

fn content_len(b: &[u8]) -> Result<usize, KeyError> {
    let first = *b.get(1).ok_or(KeyError::DerTruncated)?;
    if first < 0x80 {
        return Ok(first as usize);
    }
    let n = (first & 0x7f) as usize;
    if n == 0 || n > 4 || b.len() < 2 + n {
        return Err(KeyError::DerLength);
    }
    Ok(b[2..2 + n]
        .iter()
        .fold(0usize, |a, &x| (a << 8) | x as usize))
}

/// Total length (header + contents) of the TLV at the start of `b`.
pub(crate) fn der_len(b: &[u8]) -> Result<usize, KeyError> {
    let first = *b.get(1).ok_or(KeyError::DerTruncated)?;
    let hdr = if first < 0x80 {
        2
    } else {
        2 + (first & 0x7f) as usize
    };
    let total = hdr
        .checked_add(content_len(b)?)
        .filter(|&t| t <= b.len())
        .ok_or(KeyError::DerPastEnd)?;
    Ok(total)
}

/// Decodes the base64 body of the first PEM block.
fn pem_body(text: &[u8]) -> Result<Vec<u8>, KeyError> {
    let text = std::str::from_utf8(text).map_err(|_| KeyError::NotText)?;
    let mut body = String::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN") {
            inside = true;
        } else if line.starts_with("-----END") {
            break;
        } else if inside {
            body.push_str(line);
        }
    }
    if !inside {
        return Err(KeyError::NoPem);
    }
    base64_decode(&body).ok_or(KeyError::Base64)
}

/// Standard base64 with padding.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | val(c)?;
        }
        match chunk.len() {
            4 => out.extend_from_slice(&acc.to_be_bytes()[1..]),
            3 => out.extend_from_slice(&(acc << 6).to_be_bytes()[1..3]),
            2 => out.push((acc >> 4) as u8),
            _ => return None,
        }
    }
    Some(out)
}

/// Standard base64 with padding.
pub fn base64_encode(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// State of one signature blob.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SigStatus {
    /// No blob.
    Unsigned,
    /// A blob with this many signatures; no key given to check them.
    Present(usize),
    /// A signature verified against the given key.
    Verified,
    /// Signed, but no signature verifies with the given key.
    Mismatch,
}

/// Decodes a `Signatures` blob.
fn parse_blob(what: &'static str, blob: &[u8]) -> Result<Signatures, PayloadError> {
    Signatures::decode(blob).map_err(|e| PayloadError::Signature {
        what,
        why: format!(
            "blob of {} bytes is not a Signatures message: {e}",
            blob.len()
        ),
    })
}

/// Decodes a signature `blob` (if any) and checks it against `key` (if any)
/// over the digest `digest` computes.
pub fn check(
    what: &'static str,
    blob: Option<Vec<u8>>,
    digest: impl FnOnce() -> Result<[u8; 32], PayloadError>,
    key: Option<&RsaPublicKey>,
) -> Result<SigStatus, PayloadError> {
    let Some(blob) = blob else {
        return Ok(SigStatus::Unsigned);
    };
    let sigs = parse_blob(what, &blob)?;
    let Some(key) = key else {
        return Ok(SigStatus::Present(sigs.signatures.len()));
    };
    let d = digest()?;
    let ok = sigs.signatures.iter().any(|s| {
        let data = s.data.as_deref().unwrap_or_default();
        let len = s
            .unpadded_signature_size
            .map_or(data.len(), |u| (u as usize).min(data.len()));
        key.verify_digest(&d, &data[..len])
    });
    Ok(if ok {
        SigStatus::Verified
    } else {
        SigStatus::Mismatch
    })
}

impl Payload {
    /// The metadata signature's state, checked against `key` if given.
    pub fn check_metadata_signature(
        &self,
        key: Option<&RsaPublicKey>,
    ) -> Result<SigStatus, PayloadError> {
        let blob = if self.has_metadata_signature() {
            Some(self.read(
                self.header.metadata_size(),
                self.header.metadata_signature_size.into(),
            )?)
        } else {
            None
        };
        check("metadata signature", blob, || self.metadata_hash(), key)
    }

    /// The payload-signature blob, if the payload has one.
    pub fn payload_signature_blob(&self) -> Result<Option<Vec<u8>>, PayloadError> {
        if !self.has_payload_signature() {
            return Ok(None);
        }
        let off = self
            .header
            .data_offset()
            .saturating_add(self.manifest.signatures_offset.unwrap_or(0));
        Ok(Some(
            self.read(off, self.manifest.signatures_size.unwrap_or(0))?,
        ))
    }

    /// The payload signature's state, checked against `key` if given (which
    /// reads the whole payload once).
    pub fn check_payload_signature(
        &self,
        key: Option<&RsaPublicKey>,
    ) -> Result<SigStatus, PayloadError> {
        check(
            "payload signature",
            self.payload_signature_blob()?,
            || {
                self.whole_file_pass(true)
                    .map(|w| w.signed_digest.unwrap_or_default())
            },
            key,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for n in 0..20u8 {
            let v: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(base64_decode(&base64_encode(&v)).unwrap(), v);
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_decode("Zm9vYg==").unwrap(), b"foob");
        assert!(base64_decode("Zm9v!").is_none());
    }
}
