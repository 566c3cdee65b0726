//! Sizes for people, both ways: `1.5 GiB` out, `768M` in.

/// A size for people: `512 B`, `1.5 GiB` (binary units, one decimal).
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A size argument that is not a positive number of bytes up to 16 TiB with
/// an optional K, M or G suffix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSize {
    /// The last character is a letter other than K, M or G.
    #[error("unknown size suffix {0:?} (use K, M or G)")]
    Suffix(char),
    /// What precedes the suffix is not a number.
    #[error("{0:?} is not a size")]
    NotANumber(String),
    /// Zero, negative or more than 16 TiB.
    #[error("size {0:?} must be positive and at most 16T")]
    OutOfRange(String),
}

/// Parses `123`, `64K`, `6M`, `1.5G` (binary units) into bytes.
pub fn parse_size(s: &str) -> Result<u64, BadSize> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(BadSize::Suffix(c)),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| BadSize::NotANumber(s.to_string()))?;
    if !(v.is_finite() && v > 0.0 && v * mult as f64 <= (1u64 << 44) as f64) {
        return Err(BadSize::OutOfRange(s.to_string()));
    }
    Ok((v * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
    }

    #[test]
    fn parse() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("768M"), Ok(768 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("2T"), Err(BadSize::Suffix('T')));
        assert!(matches!(parse_size(""), Err(BadSize::NotANumber(_))));
        assert!(matches!(parse_size("M"), Err(BadSize::NotANumber(_))));
        assert!(matches!(parse_size("-1G"), Err(BadSize::OutOfRange(_))));
        assert!(matches!(parse_size("17000G"), Err(BadSize::OutOfRange(_))));
    }
}
